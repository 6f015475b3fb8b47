//! Replays every committed fuzz seed (`fuzz/corpus/<target>/*`) through the same checks the
//! cargo-fuzz targets run, so the invariants are tested on stable Rust in every `cargo test`.
use std::fs;
use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
mod checks;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read the seed corpus {}: {err}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
        replayed += 1;
    }
    assert!(
        replayed >= 5,
        "{target}: only {replayed} seeds in {}",
        dir.display()
    );
}

#[test]
fn uri_parse_seeds() {
    replay("uri_parse", checks::check_uri_parse);
}

#[test]
fn base32_decode_seeds() {
    replay("base32_decode", checks::check_base32_decode);
}

#[test]
fn verify_code_seeds() {
    replay("verify_code", checks::check_verify_code);
}

#[cfg(feature = "serde")]
#[test]
fn record_decode_seeds() {
    replay("record_decode", checks::check_record_decode);
}

/// The record seeds reach both sides of the decoder: valid records (open, sealed, lenient
/// base32) and refused ones.
#[cfg(feature = "serde")]
#[test]
fn record_seeds_cover_valid_and_refused_records() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/record_decode");
    let decode = |name: &str| {
        let data = fs::read(dir.join(name)).unwrap();
        serde_json::from_slice::<twofactor::account::TwoFactorRecord>(&data)
    };
    // Formats 1 to 4 (rows written by earlier versions) still decode, and so does format 5.
    for valid in [
        "v8_full",
        "v8_tagged",
        "v8_two_authenticators",
        "v7_full",
        "v7_tagged",
        "v7_two_authenticators",
        "v6_full",
        "v6_tagged",
        "v6_two_authenticators",
        "v5_full",
        "v5_tagged",
        "v5_two_authenticators",
        "enrolled",
        "v1_default",
        "v1_full",
        "v2_full",
        "v2_lenient_base32",
        "v2_tagged",
        "v3_full",
        "v3_tagged",
        "v4_full",
        "v4_tagged",
    ] {
        assert!(decode(valid).is_ok(), "{valid}");
    }
    // The format-8 seeds are canonical: what this version writes, byte for byte; a format-7
    // seed is written as its format-8 seed (the recovery set's codes as two columns), and so
    // are a format-6 seed (its listed used tickets kept, no ticket used since), a format-5
    // seed (no ceremony waiting) and a format-4 seed (one authenticator, a derived id).
    for canonical in ["v8_full", "v8_tagged", "v8_two_authenticators"] {
        let data = fs::read_to_string(dir.join(canonical)).unwrap();
        let encoded = serde_json::to_string(&decode(canonical).unwrap()).unwrap();
        assert_eq!(encoded, data, "{canonical}");
    }
    for (old, new) in [
        ("v4_full", "v8_full"),
        ("v4_tagged", "v8_tagged"),
        ("v5_full", "v8_full"),
        ("v5_tagged", "v8_tagged"),
        ("v6_full", "v8_full"),
        ("v6_tagged", "v8_tagged"),
        ("v7_full", "v8_full"),
        ("v7_tagged", "v8_tagged"),
        ("v7_two_authenticators", "v8_two_authenticators"),
    ] {
        let data = fs::read_to_string(dir.join(new)).unwrap();
        let encoded = serde_json::to_string(&decode(old).unwrap()).unwrap();
        assert_eq!(encoded, data, "{old} -> {new}");
    }
    // The store's encoder writes exactly serde_json's bytes for every seed that decodes (it
    // is a faster path to the same canonical text, and falls back to serde_json).
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(record) = twofactor::store::codec::decode_record(&String::from_utf8_lossy(
            &fs::read(&path).unwrap(),
        )) else {
            continue;
        };
        assert_eq!(
            twofactor::store::codec::encode_record(&record).unwrap(),
            serde_json::to_string(&record).unwrap(),
            "{}",
            path.display()
        );
    }
    let two = decode("v5_two_authenticators").unwrap();
    assert_eq!(two.authenticators().len(), 2);
    assert_eq!(two.authenticators()[1].clock_offset_seconds(), -90);
    // A format-2 seed is the format-3 record with no tickets used, generation 0 and no
    // mailed login required.
    let v2 = serde_json::to_value(decode("v2_full").unwrap()).unwrap();
    let v3 = serde_json::to_value(decode("v3_full").unwrap()).unwrap();
    assert_eq!(
        v2["tickets"],
        serde_json::json!({"generation": 0, "used": [], "through": 0, "at_through": []})
    );
    assert_eq!(v2["mailed_login_required"], false);
    for (key, value) in v2.as_object().unwrap() {
        if !["tickets", "mailed_login_required"].contains(&key.as_str()) {
            assert_eq!(value, &v3[key], "{key}");
        }
    }
    // A format-3 seed is the format-4 record with no outgoing code and no send attempts:
    // its mailed code was delivered.
    let v3 = serde_json::to_value(decode("v3_full").unwrap()).unwrap();
    let v4 = serde_json::to_value(decode("v4_full").unwrap()).unwrap();
    assert_eq!(v3["outgoing"], serde_json::Value::Null);
    assert_eq!(v3["mail_attempts"], serde_json::json!([]));
    assert_eq!(v3["mailed"], v4["mailed"]);
    assert_eq!(v4["outgoing"]["delivery"], "sending");
    assert!(decode("sealed_active").unwrap().has_sealed_secret());
    assert!(!decode("enrolled").unwrap().has_sealed_secret());
    // Not records this crate wrote: wrong shapes are refused, never "no 2FA".
    for refused in [
        // The recovery set in the other shape, in both directions, or in both at once;
        // columns of two lengths; a missing column; a digest of the wrong length.
        "v8_recovery_as_codes",
        "v7_recovery_as_columns",
        "v8_recovery_codes_and_columns",
        "v8_recovery_columns_of_two_lengths",
        "v8_recovery_without_used_at",
        "v8_recovery_short_digest",
        "v7_without_through",
        "v6_with_through",
        "v7_at_through_not_a_nonce",
        "v7_at_through_too_many",
        "v7_tickets_extra_field",
        "empty_object",
        "pending_lenient_base32", // format 1 without its other fields
        "unknown_fields",
        "secret_wrong_type",
        "sealed_extra_field",
        "sealed_pending_bad_hex",
        "array",
        "null",
        "number",
        "string",
        "only_version",
        "v1_missing_field",
        "v1_extra_field",
        "v1_with_mac",
        "v2_without_mac",
        "v2_version_null",
        "v3", // the fields of format 2 under `"v": 3`
        "v2_nested_extra_field",
        "v2_nested_missing_option",
        "v2_devices_wrong_type",
        "v2_duplicate_key",
        "v2_recovery_in_format_1_shape",
        "v1_mailed_with_hash",
        "v2_hash_extra_field",
        // Format 3: exactly its own fields, strictly, and no other version.
        "v3_without_tickets",
        "v3_without_mailed_login_required",
        "v3_tickets_extra_field",
        "v3_used_ticket_extra_field",
        "v3_generation_wrong_type",
        "v2_with_format_3_fields",
        "v4", // the fields of format 3 under `"v": 4`
        // Format 4: exactly its own fields, strictly, and no other version.
        "v4_without_outgoing",
        "v4_without_mail_attempts",
        "v4_outgoing_extra_field",
        "v4_outgoing_unknown_delivery",
        "v4_outgoing_code_without_hash",
        "v4_outgoing_without_delivery",
        "v3_with_format_4_fields",
        "v5", // the fields of format 4 under `"v": 5`
        // Format 5: authenticators with unique ids and labels of the right shape, offsets
        // within their bound, at most ten, a known kind; a pending enrollment says its purpose.
        "v5_duplicate_label",
        "v5_duplicate_id",
        "v5_offset_beyond_bound",
        "v5_candidate_beyond_bound",
        "v5_label_control",
        "v5_id_shape",
        "v5_too_many",
        "v5_pending_without_purpose",
        "v5_unknown_kind",
        // Format 6: the WebAuthn ceremonies, exactly in format 6.
        "v6_without_ceremonies",
        "v6_ceremony_fields_missing",
        "v5_with_ceremonies",
        "v4_pending_with_format_5_fields",
    ] {
        assert!(decode(refused).is_err(), "{refused}");
    }
}

#[test]
fn empty_and_tiny_inputs() {
    for data in [&b""[..], b"\0", b"\xff", b"otpauth://", b"=", b" "] {
        checks::check_uri_parse(data);
        checks::check_base32_decode(data);
        checks::check_verify_code(data);
        #[cfg(feature = "serde")]
        checks::check_record_decode(data);
    }
}
