//! Point 2 of the security review: a copy of the table (backup, replica) must not let anyone
//! test guesses of recovery or mailed codes offline, and recovery codes carry at least 80 bits.
//! Records written by 0.1.0 (salted SHA-256, 10-symbol codes) keep working until regenerated.
#![cfg(feature = "serde")]

use rand::rngs::SysRng;
use sha2::{Digest as _, Sha256};
use twofactor::account::TwoFactorRecord;
use twofactor::account::{
    CodeKey, DomainError, Factor, FailureReason, LoginContext, LoginDecision, PendingLogin,
    RECOVERY_CODE_ALPHABET, Reauthenticated, RecoveryCodes, Refusal, Settings, UserId,
};
use twofactor::{Principal, Requirement, Secret};

const NOW: u64 = 1_700_000_010;

/// A user enrolled at `NOW` under `settings`, and the recovery codes shown to them.
fn enrolled(settings: &Settings) -> (TwoFactorRecord, RecoveryCodes) {
    let t = TwoFactorRecord::default()
        .start_enrollment(
            NOW,
            &UserId::new("u"),
            &Requirement::optional(),
            Reauthenticated::at(NOW),
            None,
            "alice",
            settings,
            &mut SysRng,
        )
        .unwrap();
    let secret = Secret::from_base32(t.outcome().manual_key()).unwrap();
    let code = settings.totp().generate(&secret, NOW).to_string();
    let t = t
        .record()
        .finish_enrollment(NOW, &UserId::new("u"), &code, None, settings, &mut SysRng)
        .unwrap();
    let (record, _, outcome, _, _) = t.into_parts();
    (record, outcome.unwrap().into_recovery_codes())
}

fn symbols(code: &str) -> String {
    code.chars().filter(|c| *c != '-').collect()
}

/// What the reviewer's offline attack computes for a guess: the 0.1.0 digest scheme.
fn old_offline_digest(label: &str, salt_hex: &str, guess: &[u8]) -> String {
    let salt: Vec<u8> = (0..salt_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&salt_hex[i..i + 2], 16).unwrap())
        .collect();
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update([0u8]);
    h.update(&salt);
    h.update(guess);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn recovery_codes_carry_at_least_80_bits_and_stay_easy_to_type() {
    let settings = Settings::default();
    let mut counts = [0u32; 32];
    let mut total = 0u32;
    for _ in 0..20 {
        let (_, codes) = enrolled(&settings);
        for code in codes.expose_secret() {
            // xxxx-xxxx-xxxx-xxxx
            assert_eq!(code.len(), 19, "{code}");
            for (i, c) in code.chars().enumerate() {
                if i % 5 == 4 {
                    assert_eq!(c, '-');
                } else {
                    let k = RECOVERY_CODE_ALPHABET
                        .find(c)
                        .expect("symbol in the alphabet");
                    counts[k] += 1;
                    total += 1;
                }
            }
            let s = symbols(code);
            // 16 symbols of a 32-symbol alphabet: 80 bits.
            assert!(s.len() as f64 * (RECOVERY_CODE_ALPHABET.len() as f64).log2() >= 80.0);
            // No ambiguous letters are ever printed.
            assert!(!s.contains(['i', 'l', 'o', 'u']));
        }
    }
    // Distribution sanity: every symbol appears, none wildly over-represented (3200 symbols,
    // 100 expected each; a chi-square over 31 degrees of freedom stays far below 100).
    let expected = f64::from(total) / 32.0;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    assert!(chi2 < 100.0, "chi2 = {chi2}, counts {counts:?}");
}

#[test]
fn a_new_recovery_code_is_accepted_once_in_any_typing() {
    let settings = Settings::default();
    let (record, codes) = enrolled(&settings);
    let code = codes.expose_secret()[9].to_uppercase().replace('-', " ");
    let t = login(&record, NOW + 60, Factor::RecoveryCode(&code), &settings).unwrap();
    assert!(t.outcome().is_ok());
    let again = login(t.record(), NOW + 61, Factor::RecoveryCode(&code), &settings).unwrap();
    assert_eq!(
        again.outcome().as_ref().unwrap_err(),
        // Used: refused like a code never issued.
        &Refusal::Invalid(FailureReason::WrongCode)
    );
}

#[test]
fn the_old_offline_test_does_not_verify_a_real_code_from_a_table_dump() {
    // The attack of the review: take the stored salt and digests, hash a guess the 0.1.0 way
    // and compare. Here the guess is the real code; the dump must not confirm it.
    let settings = keyed_settings();
    let (record, codes) = enrolled(&settings);
    let dump = serde_json::to_value(&record).unwrap();
    let set = &dump["recovery"];
    let salt = set["salt"].as_str().unwrap();
    let stored: Vec<&str> = set["digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for code in codes.expose_secret() {
        let guess =
            old_offline_digest("twofactor recovery code v1", salt, symbols(code).as_bytes());
        assert!(
            !stored.contains(&guess.as_str()),
            "the dump confirms {code}"
        );
    }
}

fn key() -> CodeKey {
    CodeKey::from_bytes(&[0x5a; 32])
}

/// Settings with the server-side code key.
fn keyed_settings() -> Settings {
    Settings::builder().code_key(key()).build().unwrap()
}

fn mail_code() -> Requirement {
    Requirement::Required {
        when_unenrolled: twofactor::WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

fn login(
    r: &TwoFactorRecord,
    now: u64,
    factor: Factor<'_>,
    settings: &Settings,
) -> Result<
    twofactor::account::Transition<twofactor::account::Checked<twofactor::account::LoginGranted>>,
    DomainError,
> {
    let pending = ticket(now, &factor, settings);
    r.finish_login(
        &pending,
        now,
        &Requirement::required(),
        factor,
        None,
        &LoginContext::default(),
        settings,
        &mut SysRng,
    )
}

/// The login ticket `start_login` hands out at `now` for this kind of factor (tickets cannot
/// be made up any more: `PendingLogin::new` is gone): a genuine one for user `u` at ticket
/// generation 0 (that of every record here), from a record in the state that asks for that
/// factor: an enrolled one for a TOTP or recovery code, an unenrolled one under a mailed-code
/// policy for a mailed code.
fn ticket(now: u64, factor: &Factor<'_>, settings: &Settings) -> PendingLogin {
    let (record, requirement) = match factor {
        Factor::MailedCode(_) => (TwoFactorRecord::default(), mail_code()),
        _ => (enrolled(settings).0, Requirement::required()),
    };
    let t = record
        .start_login(
            &Principal::new("u"),
            now,
            &requirement,
            None,
            &LoginContext::default(),
            settings,
            &mut SysRng,
        )
        .unwrap();
    match t.outcome().clone().unwrap() {
        LoginDecision::Challenge { pending } | LoginDecision::CodeMailed { pending } => pending,
        other => panic!("{other:?}"),
    }
}

fn refusal<T: std::fmt::Debug>(
    t: &twofactor::account::Transition<twofactor::account::Checked<T>>,
) -> Refusal {
    t.outcome().as_ref().unwrap_err().clone()
}

#[test]
fn a_mailed_code_cannot_be_tested_offline_with_a_key() {
    // Six digits: the whole space is a million hashes. With the key the dump confirms none of
    // them; without it, exactly the mailed one (what the key is for).
    for (settings, keyed) in [(keyed_settings(), true), (Settings::default(), false)] {
        let t = TwoFactorRecord::default()
            .start_login(
                &twofactor::Principal::new("u"),
                NOW,
                &mail_code(),
                None,
                &LoginContext::default(),
                &settings,
                &mut SysRng,
            )
            .unwrap();
        let code = t.notices()[0].expose_login_code().unwrap().to_owned();
        // Stored before it is sent (the outgoing code), then, delivered, as the mailed code:
        // the same digest either way.
        let send = t.record().code_send().unwrap();
        let delivered = t.record().mailed_code_sent(&send).into_parts().0;
        let before = serde_json::to_value(t.record()).unwrap();
        let after = serde_json::to_value(&delivered).unwrap();
        assert_eq!(before["outgoing"]["code"], after["mailed"]);
        let mailed = &after["mailed"];
        let stored = mailed["digest"].as_str().unwrap();
        let guess = old_offline_digest(
            "twofactor mailed code v1",
            mailed["salt"].as_str().unwrap(),
            code.as_bytes(),
        );
        assert_eq!(guess == stored, !keyed);
        assert_eq!(mailed["hash"]["alg"] == "hmac_sha256", keyed);
        // Either way the code itself logs in, once.
        let pending = t.outcome().clone().unwrap().into_pending().unwrap();
        let ok = delivered
            .finish_login(
                &pending,
                NOW + 5,
                &mail_code(),
                Factor::MailedCode(&code),
                None,
                &LoginContext::default(),
                &settings,
                &mut SysRng,
            )
            .unwrap();
        assert!(ok.outcome().is_ok());
    }
}

/// The record fixture written by 0.1.0 (see tests/fixtures/legacy_record_v0.md).
fn legacy() -> TwoFactorRecord {
    serde_json::from_str(include_str!("fixtures/legacy_record_v0.json")).unwrap()
}

const LEGACY_CODES: [&str; 10] = [
    "qztt-weqr-ae",
    "9kw5-j3mt-bx",
    "hmj3-nshv-1j",
    "e2z0-g5rc-7m",
    "mbhm-67k4-aa",
    "hc5g-1tcp-eb",
    "qmbj-rdeg-4p",
    "ks4w-fawd-cr",
    "1djp-9gkb-4f",
    "48xq-mrsc-f6",
];

#[test]
fn a_legacy_set_keeps_working_once_per_code_until_regenerated() {
    // With or without a key configured: the set says it is salted SHA-256.
    for settings in [Settings::default(), keyed_settings()] {
        let record = legacy();
        assert_eq!(record.recovery_codes_left(), 9);
        // The one used before the upgrade stays used.
        let used = login(
            &record,
            NOW,
            Factor::RecoveryCode(LEGACY_CODES[0]),
            &settings,
        )
        .unwrap();
        assert_eq!(refusal(&used), Refusal::Invalid(FailureReason::WrongCode));
        let t = login(
            &record,
            NOW,
            Factor::RecoveryCode(&LEGACY_CODES[9].to_uppercase()),
            &settings,
        )
        .unwrap();
        assert!(t.outcome().is_ok(), "{:?}", t.outcome());
        assert_eq!(t.record().recovery_codes_left(), 8);
        let again = login(
            t.record(),
            NOW + 1,
            Factor::RecoveryCode(LEGACY_CODES[9]),
            &settings,
        )
        .unwrap();
        assert_eq!(refusal(&again), Refusal::Invalid(FailureReason::WrongCode));
        // Saved and loaded again (now with its scheme written out), it still works.
        let json = serde_json::to_string(t.record()).unwrap();
        assert!(json.contains(r#""hash":{"alg":"sha256"}"#), "{json}");
        let back: TwoFactorRecord = serde_json::from_str(&json).unwrap();
        let t2 = login(
            &back,
            NOW + 2,
            Factor::RecoveryCode(LEGACY_CODES[5]),
            &settings,
        )
        .unwrap();
        assert!(t2.outcome().is_ok());
        // Regenerated (with the proof of the login just made): 16-symbol codes under the
        // current scheme; the old codes are gone.
        let proof = &t2.outcome().as_ref().unwrap().proof;
        let regen = t2
            .record()
            .regenerate_recovery_codes(
                NOW + 3,
                &UserId::new("u"),
                Reauthenticated::at(NOW + 3),
                proof.into(),
                &settings,
                &mut SysRng,
            )
            .unwrap();
        let new_code = regen.outcome().as_ref().unwrap().expose_secret()[0].to_owned();
        assert_eq!(new_code.len(), 19);
        let old = login(
            regen.record(),
            NOW + 4,
            Factor::RecoveryCode(LEGACY_CODES[1]),
            &settings,
        )
        .unwrap();
        assert_eq!(refusal(&old), Refusal::Invalid(FailureReason::WrongCode));
        let new = login(
            regen.record(),
            NOW + 4,
            Factor::RecoveryCode(&new_code),
            &settings,
        )
        .unwrap();
        assert!(new.outcome().is_ok());
    }
}

#[test]
fn a_legacy_mailed_code_keeps_working() {
    let record = legacy();
    // The fixture user is enrolled; the mailed code is checked as stored all the same.
    let t = login(
        &record,
        1_700_000_030,
        Factor::MailedCode("306020"),
        &keyed_settings(),
    )
    .unwrap();
    assert!(t.outcome().is_ok(), "{:?}", t.outcome());
}

#[test]
fn a_set_under_a_missing_key_fails_closed_with_a_typed_error() {
    let (record, codes) = enrolled(&keyed_settings());
    let code = codes.expose_secret()[0].to_owned();
    let other = CodeKey::from_bytes(&[0x77; 32]);
    for settings in [
        Settings::default(),
        Settings::builder().code_key(other.clone()).build().unwrap(),
    ] {
        // The right code and a wrong one: both the same typed error, nothing counted.
        for input in [code.as_str(), "zzzz-zzzz-zzzz-zzzz"] {
            let err = login(&record, NOW + 60, Factor::RecoveryCode(input), &settings).err();
            assert_eq!(
                err,
                Some(DomainError::UnknownCodeKey {
                    key_id: key().id().to_owned()
                })
            );
        }
        // TOTP is unaffected: a key problem with the recovery codes blocks only them.
        let t = login(&record, NOW + 60, Factor::Totp("000000"), &settings).unwrap();
        assert!(matches!(refusal(&t), Refusal::Invalid(_)));
    }
    // Rotated: the new key current, the old kept; the set still works, new sets use the new key.
    let rotated = Settings::builder()
        .code_key(other.clone())
        .old_code_key(key())
        .build()
        .unwrap();
    let t = login(&record, NOW + 60, Factor::RecoveryCode(&code), &rotated).unwrap();
    assert!(t.outcome().is_ok());
    let proof = &t.outcome().as_ref().unwrap().proof;
    let regen = t
        .record()
        .regenerate_recovery_codes(
            NOW + 61,
            &UserId::new("u"),
            Reauthenticated::at(NOW + 61),
            proof.into(),
            &rotated,
            &mut SysRng,
        )
        .unwrap();
    assert!(regen.outcome().is_ok());
    let dump = serde_json::to_value(regen.record()).unwrap();
    assert_eq!(dump["recovery"]["hash"]["key_id"], other.id());
}

#[test]
fn stored_code_shapes_are_strict() {
    let mut dump = serde_json::to_value(legacy()).unwrap();
    dump["recovery"]["extra"] = serde_json::json!(1);
    assert!(serde_json::from_value::<TwoFactorRecord>(dump).is_err());
    let mut dump = serde_json::to_value(legacy()).unwrap();
    dump["mailed"]["hash"] = serde_json::json!("md5");
    assert!(serde_json::from_value::<TwoFactorRecord>(dump).is_err());
    let mut dump = serde_json::to_value(legacy()).unwrap();
    dump["recovery"]["digests"][0] = serde_json::json!({"digest": dump["recovery"]["digests"][0]});
    assert!(serde_json::from_value::<TwoFactorRecord>(dump).is_err());
    let mut dump = serde_json::to_value(legacy()).unwrap();
    dump["recovery"]["used_at"][0] = serde_json::json!("never");
    assert!(serde_json::from_value::<TwoFactorRecord>(dump).is_err());
}

#[cfg(feature = "seal")]
#[test]
fn a_code_key_derived_from_the_sealing_keyring_survives_its_rotation() {
    use twofactor::account::ServiceKeys;
    use twofactor::seal::Keyring;
    /// Settings with the code keys of `keys` (what the service builder's `keys` sets).
    fn settings_of(keys: &ServiceKeys) -> Settings {
        let mut builder = Settings::builder().code_key(keys.code_key().clone());
        for k in keys.old_code_keys() {
            builder = builder.old_code_key(k.clone());
        }
        builder.build().unwrap()
    }
    let old = Keyring::new("2026-01", &[1; 32]).unwrap();
    let settings = settings_of(&old.service_keys());
    let (record, codes) = enrolled(&settings);
    // The derived key is no sealing key (and not the raw bytes).
    assert_ne!(
        *old.service_keys().code_key(),
        CodeKey::from_bytes(&[1; 32])
    );
    let rotated = Keyring::new("2026-11", &[2; 32])
        .unwrap()
        .with_old_key("2026-01", &[1; 32])
        .unwrap();
    let after = settings_of(&rotated.service_keys());
    let t = login(
        &record,
        NOW + 60,
        Factor::RecoveryCode(codes.expose_secret()[3]),
        &after,
    )
    .unwrap();
    assert!(t.outcome().is_ok());
    // Without the old keys: the typed error, not a wrong code.
    let only_new = Settings::builder()
        .code_key(rotated.service_keys().code_key().clone())
        .build()
        .unwrap();
    assert!(matches!(
        login(
            &record,
            NOW + 60,
            Factor::RecoveryCode(codes.expose_secret()[3]),
            &only_new
        ),
        Err(DomainError::UnknownCodeKey { .. })
    ));
}
