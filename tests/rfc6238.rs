//! RFC 6238 Appendix B known-answer tests (all 18 vectors).
use twofactor::otp::Algorithm;
use twofactor::{Secret, Totp};

fn seed(algorithm: Algorithm) -> Secret {
    let base = b"1234567890";
    let len = match algorithm {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    };
    Secret::from_bytes(base.iter().copied().cycle().take(len).collect::<Vec<u8>>()).unwrap()
}

const VECTORS: [(u64, &str, Algorithm, &str); 18] = [
    (59, "0000000000000001", Algorithm::Sha1, "94287082"),
    (59, "0000000000000001", Algorithm::Sha256, "46119246"),
    (59, "0000000000000001", Algorithm::Sha512, "90693936"),
    (1111111109, "00000000023523EC", Algorithm::Sha1, "07081804"),
    (
        1111111109,
        "00000000023523EC",
        Algorithm::Sha256,
        "68084774",
    ),
    (
        1111111109,
        "00000000023523EC",
        Algorithm::Sha512,
        "25091201",
    ),
    (1111111111, "00000000023523ED", Algorithm::Sha1, "14050471"),
    (
        1111111111,
        "00000000023523ED",
        Algorithm::Sha256,
        "67062674",
    ),
    (
        1111111111,
        "00000000023523ED",
        Algorithm::Sha512,
        "99943326",
    ),
    (1234567890, "000000000273EF07", Algorithm::Sha1, "89005924"),
    (
        1234567890,
        "000000000273EF07",
        Algorithm::Sha256,
        "91819424",
    ),
    (
        1234567890,
        "000000000273EF07",
        Algorithm::Sha512,
        "93441116",
    ),
    (2000000000, "0000000003F940AA", Algorithm::Sha1, "69279037"),
    (
        2000000000,
        "0000000003F940AA",
        Algorithm::Sha256,
        "90698825",
    ),
    (
        2000000000,
        "0000000003F940AA",
        Algorithm::Sha512,
        "38618901",
    ),
    (20000000000, "0000000027BC86AA", Algorithm::Sha1, "65353130"),
    (
        20000000000,
        "0000000027BC86AA",
        Algorithm::Sha256,
        "77737706",
    ),
    (
        20000000000,
        "0000000027BC86AA",
        Algorithm::Sha512,
        "47863826",
    ),
];

#[test]
fn appendix_b_totp_vectors() {
    for (time, step_hex, algorithm, expected) in VECTORS {
        let totp = Totp::builder()
            .algorithm(algorithm)
            .digits(8)
            .build()
            .unwrap();
        let secret = seed(algorithm);
        let step = u64::from_str_radix(step_hex, 16).unwrap();
        assert_eq!(totp.step_at(time), step, "T at {time}");
        assert_eq!(
            totp.generate(&secret, time).to_string(),
            expected,
            "{algorithm} at {time}"
        );
        assert_eq!(totp.verify(&secret, expected, time, None), Ok(step));
        // Recorded as used, the same code is refused.
        assert!(totp.verify(&secret, expected, time, Some(step)).is_err());
    }
}

#[test]
fn six_digit_codes_are_the_last_six_digits() {
    for (time, _, algorithm, expected) in VECTORS {
        let totp = Totp::builder().algorithm(algorithm).build().unwrap();
        assert_eq!(
            totp.generate(&seed(algorithm), time).to_string(),
            expected[2..]
        );
    }
}

#[test]
fn extreme_times_do_not_panic() {
    let secret = seed(Algorithm::Sha1);
    for period in [1, 30, u64::MAX] {
        let totp = Totp::builder().period(period).skew(10).build().unwrap();
        for t in [0, 1, u64::MAX - 1, u64::MAX] {
            let code = totp.generate(&secret, t).to_string();
            assert_eq!(code.len(), 6);
            assert_eq!(totp.verify(&secret, &code, t, None), Ok(totp.step_at(t)));
            assert!(totp.verify(&secret, &code, t, Some(u64::MAX)).is_err());
            let _ = totp.next_step_starts_at(t);
        }
    }
}

/// With the RFC secret, steps 910737 and 910738 share the code 911617 (adjacent steps collide
/// about once in a million). The highest step is returned and recorded, so the same digits are
/// not accepted a second time while they are still in the window.
#[test]
fn colliding_adjacent_steps_accept_the_digits_once() {
    let secret = seed(Algorithm::Sha1);
    let totp = Totp::default();
    let (first, second) = (910_737u64, 910_738u64);
    assert_eq!(totp.generate_at_step(&secret, first).to_string(), "911617");
    assert_eq!(totp.generate_at_step(&secret, second).to_string(), "911617");

    // Typed during the first step, the digits match both; the later step is returned.
    let at_first = first * 30 + 5;
    assert_eq!(totp.verify(&secret, "911617", at_first, None), Ok(second));
    // Recorded, they are refused for the rest of the window: the same OTP is not accepted twice.
    let at_second = second * 30 + 5;
    assert_eq!(
        totp.verify(&secret, "911617", at_second, Some(second)),
        Err(twofactor::otp::VerifyError::Replayed)
    );
    // Had only the first step been used, the second step's (identical) digits would be fresh.
    assert_eq!(
        totp.verify(&secret, "911617", at_second, Some(first)),
        Ok(second)
    );
}
