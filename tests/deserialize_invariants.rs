//! Every deserialized value keeps its constructor's invariants.
//!
//! A derived `Deserialize` skips the checked constructor. For each OTP type with invariants
//! (`Hotp`, `Totp`, `Secret`), any JSON that deserializes must be a value the constructor
//! accepts, and it must work (generate and verify without panicking). The JSON shapes stay
//! what they were, so stored records keep loading.
#![cfg(feature = "serde")]

use proptest::prelude::*;
use serde_json::json;
use twofactor::otp::{Algorithm, Hotp};
use twofactor::otp::{MAX_DIGITS, MAX_LOOK_AHEAD, MAX_SECRET_BYTES, MAX_SKEW, MIN_DIGITS};
use twofactor::{Secret, Totp};

const SECRET: &[u8] = b"12345678901234567890";

fn secret() -> Secret {
    Secret::from_bytes(SECRET.to_vec()).expect("valid secret")
}

/// The attack from the review: nine digits panicked in `generate` (index out of bounds), and a
/// look-ahead of 255 (cap 20) was accepted.
#[test]
fn hotp_out_of_range_fields_do_not_deserialize() {
    for bad in [
        json!({"algorithm": "Sha1", "digits": 9, "look_ahead": 0}),
        json!({"algorithm": "Sha1", "digits": 255, "look_ahead": 0}),
        json!({"algorithm": "Sha1", "digits": 0, "look_ahead": 0}),
        json!({"algorithm": "Sha1", "digits": 5, "look_ahead": 0}),
        json!({"algorithm": "Sha256", "digits": 6, "look_ahead": 21}),
        json!({"algorithm": "Sha512", "digits": 8, "look_ahead": 255}),
        json!({"algorithm": "Sha1", "digits": 6, "look_ahead": 70_000}),
        json!({"algorithm": "Sha1", "digits": -6, "look_ahead": 0}),
        json!({"algorithm": "Md5", "digits": 6, "look_ahead": 0}),
        json!({"algorithm": "Sha1", "digits": 6}),
    ] {
        let parsed = serde_json::from_value::<Hotp>(bad.clone());
        assert!(parsed.is_err(), "{bad} deserialized to {parsed:?}");
    }
    // And the message names the parameter, not a serde internals error.
    let err = serde_json::from_str::<Hotp>(r#"{"algorithm":"Sha1","digits":9,"look_ahead":0}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("digits"), "{err}");
}

#[test]
fn totp_out_of_range_fields_do_not_deserialize() {
    for bad in [
        json!({"algorithm": "Sha1", "digits": 9, "period": 30, "skew": 1}),
        json!({"algorithm": "Sha1", "digits": 6, "period": 0, "skew": 1}),
        json!({"algorithm": "Sha1", "digits": 6, "period": 30, "skew": 11}),
        json!({"algorithm": "Sha1", "digits": 6, "period": 30, "skew": 255}),
        // Stored parameters are exactly what this crate writes: none missing, none extra.
        json!({"algorithm": "Sha1", "digits": 6, "period": 30}),
        json!({"digits": 6, "period": 30, "skew": 1}),
        json!({}),
        json!({"algorithm": "Sha1", "digits": 6, "period": 30, "skew": 1, "extra": 0}),
    ] {
        assert!(
            serde_json::from_value::<Totp>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

/// The JSON shapes are unchanged: what older versions wrote still loads, and what this one
/// writes is byte for byte what they wrote.
#[test]
fn json_shapes_are_unchanged() {
    let hotp = Hotp::new(Algorithm::Sha256, 8, 20).unwrap();
    let text = serde_json::to_string(&hotp).unwrap();
    assert_eq!(text, r#"{"algorithm":"Sha256","digits":8,"look_ahead":20}"#);
    assert_eq!(serde_json::from_str::<Hotp>(&text).unwrap(), hotp);
    let default = r#"{"algorithm":"Sha1","digits":6,"look_ahead":0}"#;
    assert_eq!(
        serde_json::from_str::<Hotp>(default).unwrap(),
        Hotp::default()
    );

    let totp = Totp::builder()
        .digits(7)
        .period(60)
        .skew(2)
        .build()
        .unwrap();
    let text = serde_json::to_string(&totp).unwrap();
    assert_eq!(
        text,
        r#"{"algorithm":"Sha1","digits":7,"period":60,"skew":2}"#
    );
    assert_eq!(serde_json::from_str::<Totp>(&text).unwrap(), totp);

    let s = serde_json::to_string(&secret()).unwrap();
    assert_eq!(s, r#""GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ""#);
}

fn algorithm_name() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => prop_oneof![Just("Sha1"), Just("Sha256"), Just("Sha512")].prop_map(|s| json!(s)),
        1 => "[A-Za-z0-9-]{0,8}".prop_map(|s| json!(s)),
        1 => any::<i64>().prop_map(|n| json!(n)),
    ]
}

/// Numbers around every bound, plus anything at all (negative and huge included).
fn number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        6 => (0u64..=40).prop_map(|n| json!(n)),
        6 => (5u64..=9).prop_map(|n| json!(n)),
        1 => any::<u64>().prop_map(|n| json!(n)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|n| json!(n)),
        1 => Just(json!(null)),
        1 => Just(json!("6")),
    ]
}

fn algorithm_of(value: &serde_json::Value) -> Algorithm {
    serde_json::from_value(value.clone()).expect("the algorithm deserialized as part of a whole")
}

fn as_u32(value: &serde_json::Value) -> u32 {
    u32::try_from(value.as_u64().expect("an unsigned number")).expect("fits u32")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any `Hotp` that deserializes is one `Hotp::new` builds from the same fields, and works.
    #[test]
    fn deserialized_hotp_satisfies_new(
        algorithm in algorithm_name(),
        digits in number(),
        look_ahead in number(),
        counter in any::<u64>(),
        typed in "[0-9]{6,8}",
    ) {
        let value = json!({"algorithm": algorithm, "digits": digits, "look_ahead": look_ahead});
        if let Ok(hotp) = serde_json::from_value::<Hotp>(value) {
            let built = Hotp::new(algorithm_of(&algorithm), as_u32(&digits), as_u32(&look_ahead));
            prop_assert_eq!(built, Ok(hotp));
            prop_assert!((MIN_DIGITS..=MAX_DIGITS).contains(&hotp.digits()));
            prop_assert!(hotp.look_ahead() <= MAX_LOOK_AHEAD);
            let code = hotp.generate(&secret(), counter);
            prop_assert_eq!(code.to_string().len(), usize::from(hotp.digits()));
            prop_assert_eq!(hotp.verify(&secret(), &code.to_string(), counter), Ok(counter));
            let _ = hotp.verify(&secret(), &typed, counter);
        }
    }

    /// Any `Totp` that deserializes is one the builder accepts from the same fields, and works.
    #[test]
    fn deserialized_totp_satisfies_build(
        algorithm in algorithm_name(),
        digits in number(),
        period in number(),
        skew in number(),
        now in any::<u64>(),
        last in proptest::option::of(any::<u64>()),
    ) {
        let value = json!({"algorithm": algorithm, "digits": digits, "period": period, "skew": skew});
        if let Ok(totp) = serde_json::from_value::<Totp>(value) {
            let built = Totp::builder()
                .algorithm(algorithm_of(&algorithm))
                .digits(as_u32(&digits))
                .period(period.as_u64().expect("an unsigned number"))
                .skew(as_u32(&skew))
                .build();
            prop_assert_eq!(built, Ok(totp));
            prop_assert!(totp.skew() <= MAX_SKEW);
            let code = totp.generate(&secret(), now).to_string();
            prop_assert_eq!(code.len(), usize::from(totp.digits()));
            let _ = totp.verify(&secret(), &code, now, last);
        }
    }

    /// Any `Secret` that deserializes is one `Secret::from_base32` accepts, within the bounds.
    #[test]
    fn deserialized_secret_satisfies_from_base32(text in prop_oneof![
        "[A-Za-z2-7 =-]{0,40}",
        "[A-Z2-7]{0,1800}",
        ".{0,20}",
    ]) {
        if let Ok(s) = serde_json::from_value::<Secret>(json!(text)) {
            let direct = Secret::from_base32(&text).expect("the constructor accepts it too");
            prop_assert_eq!(direct.expose_secret(), s.expose_secret());
            prop_assert!((1..=MAX_SECRET_BYTES).contains(&s.len()));
            let _ = Totp::default().generate(&s, 0);
        }
    }
}
