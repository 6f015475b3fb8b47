//! RFC 4226 Appendix D known-answer tests.
use twofactor::Secret;
use twofactor::otp::Hotp;

const SECRET: &[u8] = b"12345678901234567890";
const EXPECTED: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

#[test]
fn appendix_d_hotp_values() {
    let secret = Secret::from_bytes(SECRET.to_vec()).unwrap();
    let hotp = Hotp::default();
    for (counter, expected) in EXPECTED.iter().enumerate() {
        let counter = counter as u64;
        assert_eq!(hotp.generate(&secret, counter).to_string(), *expected);
        assert_eq!(hotp.verify(&secret, expected, counter).unwrap(), counter);
    }
}

#[test]
fn hotp_look_ahead_finds_later_counter_and_not_earlier() {
    let secret = Secret::from_bytes(SECRET.to_vec()).unwrap();
    let hotp = Hotp::new(twofactor::otp::Algorithm::Sha1, 6, 5).unwrap();
    assert_eq!(hotp.verify(&secret, EXPECTED[7], 3).unwrap(), 7);
    assert!(hotp.verify(&secret, EXPECTED[2], 3).is_err());
    assert!(Hotp::default().verify(&secret, EXPECTED[4], 3).is_err());
}
