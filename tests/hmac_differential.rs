//! The OTP core computes HMAC from precomputed pad states over the hash crates' compression
//! functions (RFC 2104 §4), for speed. This pins it to the `hmac` crate, exhaustively over
//! every key length a `Secret` can hold (1 to 1,024 bytes: keys longer than the 64- or
//! 128-byte block are hashed first, RFC 2104 §2), every algorithm and digit count, and
//! counters that exercise every byte of the counter block.
use hmac::{Hmac, KeyInit, Mac};
use twofactor::Secret;
use twofactor::otp::MAX_SECRET_BYTES;
use twofactor::otp::{Algorithm, Hotp};

fn reference(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> u32 {
    fn mac<M: Mac + KeyInit>(key: &[u8], counter: u64) -> Vec<u8> {
        let mut m = <M as KeyInit>::new_from_slice(key).expect("any key length");
        m.update(&counter.to_be_bytes());
        m.finalize().into_bytes().to_vec()
    }
    let out = match algorithm {
        Algorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(key, counter),
        Algorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(key, counter),
        Algorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(key, counter),
    };
    let offset = usize::from(out[out.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        out[offset],
        out[offset + 1],
        out[offset + 2],
        out[offset + 3],
    ]) & 0x7fff_ffff;
    bin % 10u32.pow(digits)
}

#[test]
fn every_key_length_algorithm_and_digit_count_matches_the_hmac_crate() {
    let counters = [
        0u64,
        1,
        0xff,
        0x0102_0304_0506_0708,
        u64::MAX / 3,
        u64::MAX - 1,
        u64::MAX,
    ];
    let mut checked = 0;
    for len in 1..=MAX_SECRET_BYTES {
        // A key with every byte distinct from its neighbours, different for each length.
        let key: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(151).wrapping_add(len as u8))
            .collect();
        let secret = Secret::from_bytes(key.clone()).unwrap();
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for digits in 6..=8 {
                let hotp = Hotp::new(algorithm, digits, 0).unwrap();
                for counter in counters {
                    assert_eq!(
                        hotp.generate(&secret, counter).value(),
                        reference(algorithm, &key, counter, digits),
                        "{algorithm}, {len}-byte key, {digits} digits, counter {counter}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, MAX_SECRET_BYTES * 3 * 3 * counters.len());
}
