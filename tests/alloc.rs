//! Verification and generation allocate nothing.
//!
//! `allocation-counter` installs a counting global allocator for this test binary only, and
//! `measure` counts the allocations made by the current thread while its closure runs, so tests
//! running in parallel on other threads do not disturb the counts. Everything the closures need
//! (secrets, inputs, output buffers) is built before measuring.

use std::fmt::Write as _;
use std::hint::black_box;

use allocation_counter::measure;
use twofactor::otp::{Algorithm, Code, Hotp, VerifyError};
use twofactor::{Secret, Totp};

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
const NOW: u64 = 1_700_000_000;

/// What a verify result must look like.
type Expect = fn(&Result<u64, VerifyError>) -> bool;

fn secret() -> Secret {
    Secret::from_bytes(
        (0u8..20)
            .map(|i| i.wrapping_mul(37) ^ 0xa5)
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

/// Allocations made by `f`, run a few times so that no one-off lazy initialisation is mistaken
/// for per-call allocation, nor hides behind it (every run is counted).
fn allocations(mut f: impl FnMut()) -> u64 {
    f(); // warm up: anything lazily initialised happens here, outside the count
    measure(|| {
        for _ in 0..3 {
            f();
        }
    })
    .count_total
}

#[test]
fn the_counter_sees_allocations() {
    // Without this, a broken counter would make every other test pass vacuously.
    assert!(allocations(|| drop(black_box(vec![0u8; 32]))) >= 3);
    assert!(allocations(|| drop(black_box(String::from("x")))) >= 3);
    // An allocation inside a verify call's input preparation is seen too.
    let totp = Totp::default();
    let secret = secret();
    assert!(
        allocations(|| {
            let typed = format!("{:06}", 123_456);
            let _ = black_box(totp.verify(&secret, &typed, NOW, None));
        }) >= 3
    );
}

#[test]
fn totp_verify_allocates_nothing() {
    let secret = secret();
    for algorithm in ALGORITHMS {
        for digits in [6, 8] {
            let totp = Totp::builder()
                .algorithm(algorithm)
                .digits(digits)
                .build()
                .unwrap();
            let good = totp.generate(&secret, NOW).to_string();
            let step = totp.step_at(NOW);
            let wrong = (0u32..)
                .map(|n| format!("{:0w$}", n, w = digits as usize))
                .find(|c| totp.verify(&secret, c, NOW, None).is_err())
                .unwrap();
            let spaced = format!(" {} {} ", &good[..3], &good[3..]);
            let code = totp.generate(&secret, NOW);

            let cases: [(&str, &str, Option<u64>, Expect); 8] = [
                ("success", &good, None, |r| r.is_ok()),
                ("success, spaced", &spaced, None, |r| r.is_ok()),
                ("success after an older step", &good, Some(1), |r| r.is_ok()),
                ("wrong code", &wrong, None, |r| {
                    *r == Err(VerifyError::Invalid)
                }),
                ("replayed", &good, Some(step + 1), |r| {
                    *r == Err(VerifyError::Replayed)
                }),
                ("malformed: letters", "12a456", None, |r| {
                    matches!(r, Err(VerifyError::Malformed(_)))
                }),
                ("malformed: too short", "123", None, |r| {
                    matches!(r, Err(VerifyError::Malformed(_)))
                }),
                ("malformed: empty", "  ", None, |r| {
                    matches!(r, Err(VerifyError::Malformed(_)))
                }),
            ];
            for (what, input, used, expect) in cases {
                let mut result = Ok(0);
                let n = allocations(|| {
                    result = black_box(totp.verify(
                        black_box(&secret),
                        black_box(input),
                        black_box(NOW),
                        black_box(used),
                    ));
                });
                assert!(
                    expect(&result),
                    "{algorithm} {digits} digits, {what}: unexpected {result:?}"
                );
                assert_eq!(n, 0, "{algorithm} {digits} digits, {what}: allocated");
            }
            let n = allocations(|| {
                let _ = black_box(totp.verify_code(&secret, black_box(code), NOW, None));
            });
            assert_eq!(n, 0, "{algorithm}: verify_code allocated");
        }
    }
}

#[test]
fn hotp_verify_allocates_nothing() {
    let secret = secret();
    for algorithm in ALGORITHMS {
        let hotp = Hotp::new(algorithm, 6, 20).unwrap();
        let good = hotp.generate(&secret, 1_000).to_string();
        let mut result = Err(VerifyError::Invalid);
        let n = allocations(|| result = black_box(hotp.verify(&secret, black_box(&good), 990)));
        assert_eq!(n, 0, "{algorithm}: HOTP verify allocated");
        assert!(result.as_ref().is_ok_and(|&c| c >= 1_000), "{result:?}");
    }
}

#[test]
fn generate_and_display_into_a_presized_buffer_allocate_nothing() {
    let secret = secret();
    for algorithm in ALGORITHMS {
        for digits in [6, 7, 8] {
            let totp = Totp::builder()
                .algorithm(algorithm)
                .digits(digits)
                .build()
                .unwrap();
            let hotp = Hotp::new(algorithm, digits, 0).unwrap();

            let n = allocations(|| {
                black_box(totp.generate(black_box(&secret), black_box(NOW)));
            });
            assert_eq!(n, 0, "{algorithm}: Totp::generate allocated");
            let n = allocations(|| {
                black_box(hotp.generate(black_box(&secret), black_box(7)));
            });
            assert_eq!(n, 0, "{algorithm}: Hotp::generate allocated");

            let mut buffer = String::with_capacity(16);
            let n = allocations(|| {
                buffer.clear();
                write!(buffer, "{}", totp.generate(black_box(&secret), NOW)).unwrap();
            });
            assert_eq!(n, 0, "{algorithm}: Display of a Code allocated");
            assert_eq!(buffer, totp.generate(&secret, NOW).to_string());
            assert_eq!(buffer.len(), usize::from(totp.digits()));
        }
    }
}

#[test]
fn code_parse_allocates_nothing() {
    for (input, valid) in [
        ("123456", true),
        (" 123 456 ", true),
        ("12345678", false),
        ("12a456", false),
        ("", false),
        ("1234567890123", false),
    ] {
        let mut parsed = None;
        let n = allocations(|| parsed = Some(black_box(Code::parse(black_box(input), 6))));
        assert_eq!(n, 0, "Code::parse({input:?}) allocated");
        assert_eq!(parsed.unwrap().is_ok(), valid, "{input:?}");
    }
}

/// Keys longer than a hash block (hashed first, RFC 2104 §2) and keys of exactly a block or
/// 64 bytes verify without allocating too: the key hash runs on the stack.
#[test]
fn verify_with_short_block_sized_and_long_keys_allocates_nothing() {
    for len in [
        1,
        20,
        63,
        64,
        65,
        127,
        128,
        129,
        200,
        twofactor::otp::MAX_SECRET_BYTES,
    ] {
        let secret = Secret::from_bytes(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(151) ^ 0x3c)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for algorithm in ALGORITHMS {
            let totp = Totp::builder().algorithm(algorithm).build().unwrap();
            let good = totp.generate(&secret, NOW).to_string();
            let mut result = Err(VerifyError::Invalid);
            let n = allocations(|| {
                result = black_box(totp.verify(&secret, black_box(&good), NOW, None));
            });
            assert_eq!(n, 0, "{algorithm}, {len}-byte key: verify allocated");
            assert_eq!(result, Ok(totp.step_at(NOW)), "{algorithm}, {len}-byte key");
        }
    }
}
