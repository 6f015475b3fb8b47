//! Properties of the OTP core, for any secret, parameters, time and last-used step.
//!
//! Different steps can produce the same code by chance (one in 10^digits), so window
//! properties are stated about the step `verify` returns, or checked against a brute-force
//! model of the window, never as "a code from elsewhere is refused".

use proptest::prelude::*;
use twofactor::otp::{Algorithm, Code, CodeError, Hotp, ParamsError, SecretError, VerifyError};
use twofactor::otp::{MAX_SECRET_BYTES, MAX_SKEW};
use twofactor::{Secret, Totp};

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

fn secret_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..=64),
        1 => prop::collection::vec(any::<u8>(), 65..=MAX_SECRET_BYTES),
    ]
}

/// Times anywhere, plus the edges where arithmetic could overflow.
fn time() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..100_000,
        0u64..(1 << 35),
        (u64::MAX - 100_000)..=u64::MAX,
    ]
}

fn period() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 1u64..=120,
        1 => 1u64..=u64::MAX,
        1 => Just(u64::MAX),
    ]
}

fn totp() -> impl Strategy<Value = Totp> {
    (algorithm(), 6u32..=8, period(), 0..=u32::from(MAX_SKEW)).prop_map(|(a, d, p, s)| {
        Totp::builder()
            .algorithm(a)
            .digits(d)
            .period(p)
            .skew(s)
            .build()
            .expect("parameters in range")
    })
}

/// The window `verify` must check, computed independently.
fn window(totp: &Totp, time: u64) -> (u64, u64) {
    let now = time / totp.period();
    let skew = u64::from(totp.skew());
    (now.saturating_sub(skew), now.saturating_add(skew))
}

/// What `verify` must return, by brute force over the window: the highest step above
/// `last_used` whose code matches; else `Replayed` if a used step matches; else `Invalid`.
fn model(
    totp: &Totp,
    secret: &Secret,
    code: u32,
    time: u64,
    last_used: Option<u64>,
) -> Result<u64, VerifyError> {
    let (lo, hi) = window(totp, time);
    let matching: Vec<u64> = (lo..=hi)
        .filter(|&s| totp.generate_at_step(secret, s).value() == code)
        .collect();
    let fresh = matching
        .iter()
        .copied()
        .filter(|&s| last_used.is_none_or(|u| s > u))
        .max();
    match (fresh, matching.is_empty()) {
        (Some(s), _) => Ok(s),
        (None, false) => Err(VerifyError::Replayed),
        (None, true) => Err(VerifyError::Invalid),
    }
}

/// HOTP by an implementation nobody here wrote (totp-rs at a 1-second step).
fn reference_hotp(algorithm: Algorithm, digits: u8, key: &[u8], counter: u64) -> String {
    let algorithm = match algorithm {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
    };
    totp_rs::Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_step_duration(1)
        .with_secret(key.to_vec())
        .build_noncompliant()
        .generate(counter)
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn codes_match_an_independent_hmac(
        key in secret_bytes(),
        algorithm in algorithm(),
        digits in 6u32..=8,
        counter in time(),
    ) {
        let secret = Secret::from_bytes(key.clone()).unwrap();
        let hotp = Hotp::new(algorithm, digits, 0).unwrap();
        prop_assert_eq!(
            hotp.generate(&secret, counter).to_string(),
            reference_hotp(algorithm, digits as u8, &key, counter)
        );
    }

    #[test]
    fn generate_then_verify_round_trips(
        key in secret_bytes(),
        totp in totp(),
        time in time(),
    ) {
        let secret = Secret::from_bytes(key).unwrap();
        let code = totp.generate(&secret, time);
        let text = code.to_string();
        prop_assert_eq!(text.len(), usize::from(totp.digits()));
        prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));

        let now = totp.step_at(time);
        let (lo, hi) = window(&totp, time);
        let step = totp.verify(&secret, &text, time, None).expect("own code verifies");
        // The highest matching step is returned: at least `now`, within the window, and
        // producing this very code (a later step only by collision).
        prop_assert!(step >= now && step <= hi && step >= lo);
        prop_assert_eq!(totp.generate_at_step(&secret, step).value(), code.value());
        prop_assert_eq!(totp.verify_code(&secret, code, time, None), Ok(step));
        // Recorded as used, it is refused.
        prop_assert_eq!(totp.verify(&secret, &text, time, Some(step)), Err(VerifyError::Replayed));
    }

    #[test]
    fn verify_agrees_with_a_brute_force_model(
        key in secret_bytes(),
        totp in totp(),
        time in time(),
        offset in -12i64..=12,
        last_used in prop::option::of(prop_oneof![any::<u64>(), 0u64..100]),
        relative_used in prop::option::of(-12i64..=12),
    ) {
        let secret = Secret::from_bytes(key).unwrap();
        let now = totp.step_at(time);
        // A code from a step near `now`: inside the window or just outside it.
        let from_step = now.saturating_add_signed(offset);
        let code = totp.generate_at_step(&secret, from_step);
        // last_used either anywhere or near `now`, where it matters.
        let used = relative_used.map(|r| now.saturating_add_signed(r)).or(last_used);

        let got = totp.verify(&secret, &code.to_string(), time, used);
        prop_assert_eq!(got.clone(), model(&totp, &secret, code.value(), time, used));

        let (lo, hi) = window(&totp, time);
        if let Ok(step) = got {
            // Never outside [now - skew, now + skew], never at or below last_used.
            prop_assert!(lo <= step && step <= hi, "step {} outside [{}, {}]", step, lo, hi);
            prop_assert!(used.is_none_or(|u| step > u), "step {} <= last used {:?}", step, used);
            prop_assert_eq!(totp.generate_at_step(&secret, step).value(), code.value());
        }
        if from_step < lo || from_step > hi {
            // A code from outside the window is accepted only through a collision with a
            // step inside it, and then for that step.
            if let Ok(step) = got {
                prop_assert_ne!(step, from_step);
            }
        } else if used.is_none_or(|u| from_step > u) {
            // From inside the window and fresh: always accepted, at its step or a higher one.
            prop_assert!(got.clone().is_ok_and(|s| s >= from_step), "{:?}", got);
        } else if got.is_err() {
            prop_assert_eq!(got, Err(VerifyError::Replayed));
        }
    }

    #[test]
    fn hotp_look_ahead_finds_the_counter(
        key in secret_bytes(),
        algorithm in algorithm(),
        digits in 6u32..=8,
        look_ahead in 0u32..=20,
        next in time(),
        ahead in 0u64..=25,
    ) {
        let secret = Secret::from_bytes(key).unwrap();
        let hotp = Hotp::new(algorithm, digits, look_ahead).unwrap();
        let last = next.saturating_add(u64::from(look_ahead));
        let counter = next.saturating_add(ahead);
        let code = hotp.generate(&secret, counter).to_string();
        match hotp.verify(&secret, &code, next) {
            Ok(matched) => {
                prop_assert!(next <= matched && matched <= last);
                prop_assert_eq!(hotp.generate(&secret, matched).to_string(), code);
                if counter <= last {
                    prop_assert!(matched >= counter);
                }
            }
            Err(e) => {
                prop_assert_eq!(e, VerifyError::Invalid);
                prop_assert!(counter > last, "counter {} in [{}, {}] refused", counter, next, last);
            }
        }
    }

    #[test]
    fn no_panic_for_any_parameters(
        key in secret_bytes(),
        algorithm in algorithm(),
        digits in any::<u32>(),
        period in any::<u64>(),
        skew in any::<u32>(),
        time in any::<u64>(),
        used in any::<Option<u64>>(),
        input in "[0-9 ]{0,12}",
    ) {
        let secret = Secret::from_bytes(key).unwrap();
        let built = Totp::builder()
            .algorithm(algorithm)
            .digits(digits)
            .period(period)
            .skew(skew)
            .build();
        let valid = (6..=8).contains(&digits) && period >= 1 && skew <= u32::from(MAX_SKEW);
        prop_assert_eq!(built.is_ok(), valid);
        match built {
            Ok(totp) => {
                let _ = totp.next_step_starts_at(time);
                let code = totp.generate(&secret, time);
                let _ = totp.verify(&secret, &input, time, used);
                prop_assert!(totp.verify_code(&secret, code, time, used).is_ok() || used.is_some());
            }
            Err(ParamsError::Digits(d)) => prop_assert_eq!(d, digits),
            Err(ParamsError::Period(p)) => prop_assert_eq!(p, period),
            Err(ParamsError::Skew(s)) => prop_assert_eq!(s, skew),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
        let hotp = Hotp::new(algorithm, digits, skew);
        if let Ok(hotp) = hotp {
            let _ = hotp.verify(&secret, &input, time);
            let code = hotp.generate(&secret, time).to_string();
            prop_assert!(hotp.verify(&secret, &code, time).is_ok());
        }
    }

    #[test]
    fn base32_round_trips_in_every_pasted_style(
        key in secret_bytes(),
        lowercase in prop::collection::vec(any::<bool>(), 0..=104),
        separators in prop::collection::vec(prop_oneof![
            6 => Just(None),
            1 => Just(Some(' ')),
            1 => Just(Some('-')),
            1 => Just(Some('\t')),
            1 => Just(Some('\n')),
        ], 0..=104),
        pad in any::<bool>(),
        trailing in prop::option::of(prop_oneof![Just(' '), Just('\n'), Just('-')]),
    ) {
        let secret = Secret::from_bytes(key.clone()).unwrap();
        let plain = secret.to_base32();
        prop_assert_eq!(plain.len(), (key.len() * 8).div_ceil(5));
        prop_assert!(plain.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        prop_assert_eq!(Secret::from_base32(&plain).unwrap().expose_secret().to_vec(), key.clone());
        let grouped = secret.to_base32_grouped();
        prop_assert_eq!(grouped.replace(' ', ""), plain.as_str());
        prop_assert!(grouped.split(' ').all(|g| (1..=4).contains(&g.len())));
        prop_assert_eq!(Secret::from_base32(&grouped).unwrap().expose_secret().to_vec(), key.clone());

        // As people paste it: mixed case, separators anywhere, optional padding.
        let mut messy = String::new();
        for (i, c) in plain.chars().enumerate() {
            if let Some(Some(sep)) = separators.get(i) {
                messy.push(*sep);
            }
            if lowercase.get(i).copied().unwrap_or(false) {
                messy.push(c.to_ascii_lowercase());
            } else {
                messy.push(c);
            }
        }
        if pad {
            messy.extend(std::iter::repeat_n('=', padding_len(key.len())));
        }
        if let Some(t) = trailing {
            messy.push(t);
        }
        prop_assert_eq!(
            Secret::from_base32(&messy).map(|s| s.expose_secret().to_vec()),
            Ok(key.clone()),
            "input {:?}", messy
        );
    }

    #[test]
    fn base32_length_rules(symbols in prop_oneof!["[A-Z2-7]{0,120}", "[A-Z2-7]{1630,1660}"]) {
        let n = symbols.len();
        let result = Secret::from_base32(&symbols);
        match n {
            0 => prop_assert_eq!(result.unwrap_err(), SecretError::Empty),
            _ if matches!(n % 8, 1 | 3 | 6) => {
                prop_assert_eq!(result.unwrap_err(), SecretError::InvalidLength { symbols: n });
            }
            _ if n * 5 / 8 > MAX_SECRET_BYTES => {
                prop_assert_eq!(result.unwrap_err(), SecretError::TooLong { bytes: n * 5 / 8 });
            }
            _ => prop_assert_eq!(result.unwrap().len(), n * 5 / 8),
        }
    }

    #[test]
    fn code_parse_accepts_exactly_the_right_shapes(
        chars in prop::collection::vec(prop_oneof![
            8 => proptest::char::range('0', '9'),
            2 => Just(' '),
            1 => prop_oneof![
                Just('\t'), Just('\n'), Just('\u{a0}'), Just('\u{3000}'), Just('a'), Just('Z'),
                Just('-'), Just('+'), Just('.'), Just('\u{663}'), Just('\u{ff11}'), Just('²'),
            ],
        ], 0..=14),
        digits in 6u8..=8,
    ) {
        let input: String = chars.iter().collect();
        let result = Code::parse(&input, digits);
        // The specification, written out: white space anywhere is ignored; the first other
        // character that is not an ASCII digit is reported; then the digit count must match.
        let bad = chars
            .iter()
            .position(|c| !c.is_whitespace() && !c.is_ascii_digit());
        let kept: String = chars.iter().filter(|c| c.is_ascii_digit()).collect();
        let expected = match bad {
            Some(position) => Err(CodeError::NotDigits { position }),
            None if kept.is_empty() => Err(CodeError::Empty),
            None if kept.len() != usize::from(digits) => Err(CodeError::WrongLength {
                expected: digits,
                actual: kept.len(),
            }),
            None => Ok(kept.clone()),
        };
        prop_assert_eq!(result.map(|c| c.to_string()), expected.clone(), "input {:?}", input);
        if let Ok(digits_only) = expected {
            let code = Code::parse(&input, digits).unwrap();
            prop_assert_eq!(code.digits(), digits);
            prop_assert_eq!(code.value(), digits_only.parse::<u32>().unwrap());
        }
    }
}

/// `=` characters RFC 4648 pads `len` bytes with.
fn padding_len(len: usize) -> usize {
    match len % 5 {
        0 => 0,
        1 => 6,
        2 => 4,
        3 => 3,
        _ => 1,
    }
}
