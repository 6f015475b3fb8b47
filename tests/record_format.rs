//! The stored format of `TwoFactorRecord`: strict, versioned, canonical, and the migration
//! rules for rows and sealed rows written by earlier versions.
#![cfg(feature = "serde")]

#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use common::flows::{Harness, code, optional, required};
use common::legacy::to_format_4;
use proptest::prelude::*;
use serde_json::Value;
use twofactor::account::{Factor, LoginContext, LoginDecision};
use twofactor::service::{Error, TwoFactor};
use twofactor::store::codec::{decode_record, encode_record};
use twofactor::store::{MemoryStoreError, UserStore};
use twofactor::testing::{FlakyMailer, ManualClock};
use twofactor::{MemoryStore, Principal};

/// A row as the code before format 2 wrote it (generated from that code, committed before
/// the format changed): enrolled, a pending rotation, recovery codes, a trusted device, a
/// mailed code, both open logins, throttle counters.
const V1_FULL: &str = include_str!("fixtures/record_v1_full.json");
/// `TwoFactorRecord::default()` as that code wrote it.
const V1_DEFAULT: &str = include_str!("fixtures/record_v1_default.json");
/// A row in format 2 as the code before format 3 wrote it (generated from that code, see
/// `fixtures/record_v2.md`): enrolled, a trusted device, a used recovery code, a counted
/// wrong code, a pending rotation; at store version 6.
const V2_FULL: &str = include_str!("fixtures/record_v2_full.json");
/// Its app secret.
const V2_SECRET: &str = "LSQN7VAUUJYNVTEZT75CWCQEDSSEMBQZ";
/// A row in format 3 as the code before format 4 wrote it (generated from that code, see
/// `fixtures/record_v3.md`): `marc`, unenrolled, a mailed-code login completed, a second
/// one waiting for its mailed code (valid until 1700003670), a wrong code counted; at store
/// version 4.
const V3_MAILED: &str = include_str!("fixtures/record_v3_mailed.json");
/// Its mailed code.
const V3_CODE: &str = "757215";
/// A row in format 3 of an enrolled user (generated from the code before format 4, see
/// `fixtures/record_v3.md`): a trusted device, a used recovery code, a counted wrong code,
/// used tickets, a pending rotation; at store version 7.
const V3_FULL: &str = include_str!("fixtures/record_v3_full.json");
/// Its app secret.
const V3_SECRET: &str = "G44YTA5GZUORIR6GPHPKXVSRC264MYGW";
/// The same history in format 4, as the code before format 5 wrote it (`fixtures/record_v4.md`).
const V4_FULL: &str = include_str!("fixtures/record_v4_full.json");
/// Its app secret.
const V4_SECRET: &str = "W6E23PQ34U6PZSOTQVHPTT3AIHTN2PSP";
/// A row of an older format: its format, its text, its app secret, and how a format-5 row
/// turns back into that format's shape.
type OldRow = (u32, &'static str, &'static str, fn(Value) -> Value);
/// The rows of an enrolled user written before several authenticators.
const ENROLLED_ROWS: [OldRow; 2] = [
    (3, V3_FULL, V3_SECRET, to_format_3),
    (4, V4_FULL, V4_SECRET, to_format_4),
];

/// A TOTP login of `who` at 1700000130 (after the history of every fixture here) with the app
/// secret `secret` (base32), through `store`.
async fn login_at_130<S: UserStore>(
    store: Arc<S>,
    who: &Principal,
    secret: &str,
) -> Result<(), Error> {
    let h = Harness::new(store, required);
    h.clock.set(1_700_000_130);
    let secret = twofactor::Secret::from_base32(secret).expect("secret");
    let pending = h.challenge(who).await;
    h.finish_totp(&pending, &code(&secret, h.now())).await
}

fn value(json: &str) -> Value {
    serde_json::from_str(json).expect("JSON")
}

/// A format-5 (or format-4) row turned back into the format-3 shape: `"v": 3`, without `outgoing` and
/// `mail_attempts`.
fn to_format_3(row: Value) -> Value {
    let mut row = to_format_4(row);
    let map = row.as_object_mut().expect("object");
    map.insert("v".into(), Value::from(3));
    for key in ["outgoing", "mail_attempts"] {
        map.remove(key);
    }
    row
}

/// A format-5 (or older) row turned back into the format-2 shape: `"v": 2`, without
/// `tickets`, `mailed_login_required`, `outgoing` and `mail_attempts`.
fn to_format_2(row: Value) -> Value {
    let mut row = to_format_3(row);
    let map = row.as_object_mut().expect("object");
    map.insert("v".into(), Value::from(2));
    for key in ["tickets", "mailed_login_required"] {
        map.remove(key);
    }
    row
}

/// A format-5 (or older) row turned back into the format-1 shape: without `v`,
/// `mailed_code_login_at`, `tickets`, `mailed_login_required`, `outgoing`, `mail_attempts`
/// and `mac`, and without the code-hash scheme of the recovery set and the mailed code.
fn to_format_1(row: Value) -> Value {
    let mut row = to_format_4(row);
    let map = row.as_object_mut().expect("object");
    for key in [
        "v",
        "mailed_code_login_at",
        "tickets",
        "mailed_login_required",
        "outgoing",
        "mail_attempts",
        "mac",
    ] {
        map.remove(key);
    }
    if let Some(Value::Object(set)) = map.get_mut("recovery") {
        set.remove("hash");
        set.remove("symbols");
    }
    if let Some(Value::Object(code)) = map.get_mut("mailed") {
        code.remove("hash");
    }
    row
}

/// What every row of an older format says in the fields of format 4: nothing stored before
/// its mailer answered (a mailed code was delivered), no send attempts counted.
fn assert_format_4_fields_empty(rewritten: &Value) {
    assert_eq!(rewritten["outgoing"], Value::Null);
    assert_eq!(rewritten["mail_attempts"], serde_json::json!([]));
}

#[test]
fn format_1_rows_load_and_are_rewritten_as_format_5_losing_nothing() {
    for fixture in [V1_FULL, V1_DEFAULT] {
        let record = decode_record(fixture).expect("today's rows decode");
        let current = encode_record(&record).expect("encode");
        assert!(current.starts_with(r#"{"v":8,"#), "{current}");
        // Everything the old row said is still said; only the fields of formats 2 to 4 were
        // added, with the values that mean what format 1 meant.
        let rewritten = value(&current);
        assert_eq!(rewritten["v"], Value::from(8));
        assert_eq!(
            rewritten["key_ceremonies"],
            serde_json::json!({"registration": null, "authentication": null})
        );
        assert_format_4_fields_empty(&rewritten);
        assert_eq!(rewritten["mailed_code_login_at"], Value::Null);
        assert_eq!(
            rewritten["tickets"],
            serde_json::json!({"generation": 0, "used": [], "through": 0, "at_through": []})
        );
        assert_eq!(rewritten["mailed_login_required"], Value::Bool(false));
        assert_eq!(rewritten["mac"], Value::Null);
        for scheme in [&rewritten["recovery"]["hash"], &rewritten["mailed"]["hash"]] {
            assert!(scheme.is_null() || *scheme == serde_json::json!({"alg": "sha256"}));
        }
        assert!(
            rewritten["recovery"].is_null() || rewritten["recovery"]["symbols"] == 10,
            "{current}"
        );
        assert_eq!(to_format_1(rewritten), value(fixture));
        // Canonical: decoding the rewrite and encoding again gives the same bytes.
        assert_eq!(
            encode_record(&decode_record(&current).expect("decode")).expect("encode"),
            current
        );
    }
    let record = decode_record(V1_FULL).expect("decode");
    assert!(record.is_enrolled());
    assert_eq!(record.recovery_codes_left(), 10);
    assert_eq!(record.pending_enrollment_expires_at(), Some(1_700_001_300));
    assert_eq!(record.trusted_devices(1_700_000_500).len(), 1);
}

#[test]
fn format_2_rows_load_and_are_rewritten_as_format_5_losing_nothing() {
    let record = decode_record(V2_FULL).expect("format-2 rows decode");
    let current = encode_record(&record).expect("encode");
    assert!(current.starts_with(r#"{"v":8,"#), "{current}");
    // Format 3 only adds the ticket ledger (no ticket used, generation 0) and the flag that
    // the user was asked for a mailed code (not yet), format 4 the outgoing code and the send
    // attempts (none): everything else is as it was.
    let rewritten = value(&current);
    assert_format_4_fields_empty(&rewritten);
    assert_eq!(
        rewritten["tickets"],
        serde_json::json!({"generation": 0, "used": [], "through": 0, "at_through": []})
    );
    assert_eq!(rewritten["mailed_login_required"], Value::Bool(false));
    assert_eq!(to_format_2(rewritten), value(V2_FULL));
    assert_eq!(
        encode_record(&decode_record(&current).expect("decode")).expect("encode"),
        current
    );
    assert!(record.is_enrolled());
    assert_eq!(record.recovery_codes_left(), 9);
    assert_eq!(record.trusted_devices(1_700_000_100).len(), 1);
    // Format 2 has exactly its own fields: none of format 3's.
    let mut mixed = value(V2_FULL);
    mixed["mailed_login_required"] = Value::Bool(false);
    assert!(decode_record(&mixed.to_string()).is_err());
}

#[test]
fn format_3_rows_load_and_are_rewritten_as_format_5_losing_nothing() {
    let record = decode_record(V3_MAILED).expect("format-3 rows decode");
    let current = encode_record(&record).expect("encode");
    assert!(current.starts_with(r#"{"v":8,"#), "{current}");
    // Format 4 only adds the outgoing code (none: the mailed code of a format-3 row was
    // delivered, and stays the `mailed` code) and the send attempts (none counted).
    let rewritten = value(&current);
    assert_format_4_fields_empty(&rewritten);
    assert_eq!(rewritten["mailed"], value(V3_MAILED)["mailed"]);
    assert_eq!(to_format_3(rewritten), value(V3_MAILED));
    assert_eq!(
        encode_record(&decode_record(&current).expect("decode")).expect("encode"),
        current
    );
    // Format 3 has exactly its own fields: none of format 4's, and all of its own.
    for (key, field) in [
        ("outgoing", Value::Null),
        ("mail_attempts", Value::Array(vec![])),
    ] {
        let mut mixed = value(V3_MAILED);
        mixed[key] = field;
        assert!(decode_record(&mixed.to_string()).is_err(), "{key}");
    }
    let mut short = value(&current);
    short.as_object_mut().expect("object").remove("outgoing");
    assert!(decode_record(&short.to_string()).is_err());
}

/// A service on `store` at the fixture's time, whose mail server is down.
fn mail_down<S: UserStore>(
    store: Arc<S>,
) -> TwoFactor<Arc<S>, FlakyMailer, common::flows::Policy, Arc<ManualClock>> {
    let tf = TwoFactor::builder(store)
        .mailer(FlakyMailer::default())
        .keys(twofactor::testing::test_keys())
        .policy(common::flows::mail_code as common::flows::Policy)
        .clock(Arc::new(ManualClock::new(1_700_000_130)))
        .build();
    tf.mailer().set_down(true);
    tf
}

/// The code of a format-3 row was delivered: it still logs in after the upgrade, even when
/// the new login's own code cannot be sent; the save writes the current format (6).
#[tokio::test]
async fn a_format_3_rows_mailed_code_still_logs_in_and_is_saved_as_format_5() {
    let store = Arc::new(MemoryStore::new());
    let marc = Principal::new("marc");
    for _ in 0..4 {
        store.insert_json(&marc.user, V3_MAILED);
    }
    let tf = mail_down(store.clone());
    let ctx = LoginContext::new();
    let LoginDecision::CodeNotSent { pending, .. } =
        tf.start_login(&marc, None, &ctx).await.expect("decision")
    else {
        panic!("the mail server is down")
    };
    let (json, _) = store.json(&marc.user).expect("row");
    assert_eq!(value(&json)["v"], 8);
    assert_eq!(value(&json)["outgoing"]["delivery"], "not_sent");
    assert_eq!(value(&json)["mailed"], value(V3_MAILED)["mailed"]);
    tf.finish_login(&pending, Factor::MailedCode(V3_CODE), None, &ctx)
        .await
        .expect("the code mailed before the upgrade logs in");
    let (json, version) = store.json(&marc.user).expect("row");
    assert_eq!(version.0, 7, "the send, its failure, the login");
    let row = value(&json);
    assert_eq!(
        (&row["mailed"], &row["outgoing"]),
        (&Value::Null, &Value::Null)
    );
}

/// A format-2 row in a store logs in (with its app's code) and is saved in the current format (8) by that
/// login, with the used ticket's deadline in its ledger.
#[tokio::test]
async fn a_format_2_row_logs_in_and_is_saved_as_format_5() {
    let store = Arc::new(MemoryStore::new());
    let alice = Principal::new("alice");
    for _ in 0..6 {
        store.insert_json(&alice.user, V2_FULL);
    }
    let h = Harness::new(store.clone(), required);
    h.clock.set(1_700_000_130);
    let secret = twofactor::Secret::from_base32(V2_SECRET).expect("secret");
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("login on a format-2 row");
    let (json, version) = store.json(&alice.user).expect("row");
    assert_eq!(version.0, 7);
    let row = value(&json);
    assert_eq!(row["v"], 8);
    assert_eq!(
        row["tickets"],
        serde_json::json!({
            "generation": 0,
            "used": [],
            "through": pending.password_checked_at(),
            "at_through": [common::tickets::nonce_hex(&pending)],
        })
    );
}

/// A format-6 row whose ledger lists used tickets: each stays refused after the row loads,
/// and after the next save (formats 7 and 8 keep the list until the tickets expire), so a ticket
/// used before the upgrade never completes a second login. The row is made by this version
/// in format 8 and turned into the format-6 shape, with the ticket of its login listed as
/// format 6 listed it.
#[tokio::test]
async fn tickets_used_under_format_6_stay_used_after_the_upgrade() {
    let store = Arc::new(MemoryStore::new());
    let alice = Principal::new("alice");
    let h = Harness::new(store.clone(), required);
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let used = h.challenge(&alice).await;
    h.clock.advance(10);
    let waiting = h.challenge(&alice).await; // started after it, never used
    h.finish_totp(&used, &code(&secret, h.now()))
        .await
        .expect("login");
    // The row as format 6 wrote it: the used ticket listed, no deadline.
    let (json, _) = store.json(&alice.user).expect("row");
    let row = value(&json);
    assert_eq!(row["tickets"]["through"], used.password_checked_at());
    let mut row = common::legacy::to_format_7(row);
    row["v"] = Value::from(6);
    row["tickets"] = serde_json::json!({
        "generation": 0,
        "used": [{"nonce": common::tickets::nonce_hex(&used), "expires_at": used.expires_at()}],
    });
    store.insert_json(&alice.user, row.to_string());
    h.clock.advance(30);
    assert!(matches!(
        h.finish_totp(&used, &code(&secret, h.now())).await,
        Err(Error::LoginExpired)
    ));
    // The ticket started later was never used: it logs in, and the save is format 8.
    h.finish_totp(&waiting, &code(&secret, h.now()))
        .await
        .expect("a ticket never used");
    let (json, _) = store.json(&alice.user).expect("row");
    let row = value(&json);
    assert_eq!(row["v"], 8);
    assert_eq!(row["tickets"]["through"], waiting.password_checked_at());
    assert_eq!(
        row["tickets"]["used"][0]["nonce"],
        common::tickets::nonce_hex(&used),
        "kept until it expires"
    );
    h.clock.advance(30);
    for ticket in [&used, &waiting] {
        assert!(matches!(
            h.finish_totp(ticket, &code(&secret, h.now())).await,
            Err(Error::LoginExpired)
        ));
    }
}

/// A format-3 row (one `active` factor) is one authenticator: the default label, created
/// when the factor was confirmed, an id derived from that time (the same at every load of a
/// row never saved again), its replay step; the pending rotation replaces it. Rewritten as
/// format 4 and turned back, it is the row it was.
#[test]
fn rows_of_formats_3_and_4_load_as_one_authenticator_with_a_stable_id() {
    for (format, row_text, _, back) in ENROLLED_ROWS {
        let record = decode_record(row_text).expect("older rows decode");
        let again = decode_record(row_text).expect("decode");
        let list = record.authenticators();
        assert_eq!(list.len(), 1);
        assert_eq!(list, again.authenticators());
        assert_eq!(list[0].label(), twofactor::account::DEFAULT_LABEL);
        assert_eq!(list[0].created_at(), 1_700_000_010);
        assert_eq!(list[0].last_used_at(), None);
        assert_eq!(list[0].clock_offset_seconds(), 0);
        let row = value(row_text);
        assert_eq!(
            record.last_used_step(),
            row["active"]["last_used_step"].as_u64()
        );
        let current = encode_record(&record).expect("encode");
        let rewritten = value(&current);
        assert_eq!(rewritten["v"], 8);
        assert_eq!(rewritten["authenticators"][0]["id"], list[0].id().as_str());
        assert_eq!(
            rewritten["pending"]["purpose"],
            serde_json::json!({"replace": list[0].id().as_str()})
        );
        assert_eq!(back(rewritten), row, "format {format}");
        // An older format has exactly its own fields: not those of format 5.
        let mut mixed = row.clone();
        mixed["authenticators"] = Value::Array(vec![]);
        assert!(decode_record(&mixed.to_string()).is_err());
        let mut mixed = row;
        mixed["pending"]["label"] = Value::from("x");
        assert!(decode_record(&mixed.to_string()).is_err());
    }
}

/// A row of format 3 or 4 in a store logs in with its app's code, names its one
/// authenticator, and is saved in the current format (6) with the same id; its pending rotation, confirmed,
/// replaces it.
#[tokio::test]
async fn rows_of_formats_3_and_4_log_in_and_their_rotation_replaces_their_factor() {
    for (_, row, secret, _) in ENROLLED_ROWS {
        an_enrolled_old_row_logs_in_and_its_rotation_replaces_its_factor(row, secret).await;
    }
}

async fn an_enrolled_old_row_logs_in_and_its_rotation_replaces_its_factor(
    row: &str,
    app_secret: &str,
) {
    let store = Arc::new(MemoryStore::new());
    let alice = Principal::new("alice");
    for _ in 0..7 {
        store.insert_json(&alice.user, row);
    }
    let id = decode_record(row).unwrap().authenticators()[0].id().clone();
    let h = Harness::new(store.clone(), required);
    h.clock.set(1_700_000_130);
    let secret = twofactor::Secret::from_base32(app_secret).expect("secret");
    let pending = h.challenge(&alice).await;
    let granted =
        h.tf.finish_login(
            &pending,
            twofactor::Factor::Totp(&code(&secret, h.now())),
            None,
            &LoginContext::new(),
        )
        .await
        .expect("login on an older row");
    assert_eq!(granted.authenticator, Some(id.clone()));
    let (json, version) = store.json(&alice.user).expect("row");
    assert_eq!(version.0, 8);
    assert_eq!(value(&json)["v"], 8);
    assert_eq!(h.tf.authenticators(&alice.user).await.unwrap()[0].id(), &id);
    // The rotation started in format 3 is confirmed with the new app's code.
    let pending_secret = value(row)["pending"]["secret"]
        .as_str()
        .map(|s| twofactor::Secret::from_base32(s).expect("secret"))
        .expect("a pending secret");
    let enrolled =
        h.tf.finish_enrollment(&alice.user, &code(&pending_secret, h.now()))
            .await
            .expect("the rotation completes");
    assert!(enrolled.rotated());
    let list = h.tf.authenticators(&alice.user).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_ne!(list[0].id(), &id);
}

#[test]
fn format_1_is_accepted_only_in_its_exact_shape() {
    let v1 = value(V1_FULL);
    let top = v1.as_object().expect("object");
    for key in top.keys() {
        let mut missing = top.clone();
        missing.remove(key);
        assert!(
            decode_record(&Value::Object(missing).to_string()).is_err(),
            "without {key}"
        );
    }
    for extra in ["mac", "enabled", "V", "version"] {
        let mut more = top.clone();
        more.insert(extra.into(), Value::Null);
        assert!(
            decode_record(&Value::Object(more).to_string()).is_err(),
            "with {extra}"
        );
    }
}

proptest! {
    /// Any subset of the fields of a format-4 record (other than all of them), and any
    /// unknown field added, is refused.
    #[test]
    fn partial_or_extended_records_are_refused(
        keep in proptest::collection::vec(any::<bool>(), 17),
        extra in "[a-z_]{1,12}",
    ) {
        let full = value(&encode_record(&decode_record(V1_FULL).unwrap()).unwrap());
        let top = full.as_object().unwrap();
        let partial: serde_json::Map<String, Value> = top
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|((name, v), _)| (name.clone(), v.clone()))
            .collect();
        prop_assert_eq!(keep.len(), top.len(), "one switch per field");
        // Even the nine top-level fields of format 1 are refused here: the nested recovery
        // set and mailed code carry format 2's `hash` and `symbols`, and formats never mix.
        // Nor do the eleven of format 2 pass with `"v": 4`, nor the thirteen of format 3 (nor
        // with their own version, which has none of the later fields).
        if partial.len() < top.len() {
            prop_assert!(decode_record(&Value::Object(partial).to_string()).is_err());
        }
        if !top.contains_key(&extra) {
            let mut more = top.clone();
            more.insert(extra, Value::Array(vec![]));
            prop_assert!(decode_record(&Value::Object(more).to_string()).is_err());
        }
    }
}

/// The memory store decodes raw rows through the same codec: wrong shapes are corrupt rows,
/// logins fail closed under both policies, and nothing is written over the row.
#[tokio::test]
async fn memory_store_refuses_wrong_shapes_and_keeps_the_row() {
    let store = Arc::new(MemoryStore::new());
    let alice = Principal::new("alice");
    let h = Harness::new(store.clone(), required);
    h.enroll(&alice.user).await;
    let (good, _) = store.json(&alice.user).expect("row");
    let mut shapes = vec![
        "[]".to_owned(),
        "{}".to_owned(),
        "null".to_owned(),
        "7".to_owned(),
        r#"{"active":null}"#.to_owned(),
        "{ not json".to_owned(),
    ];
    let top = value(&good);
    for key in top.as_object().expect("object").keys() {
        let mut missing = top.clone();
        missing.as_object_mut().expect("object").remove(key);
        shapes.push(missing.to_string());
    }
    // A ticket alice holds from an earlier `start_login` (it passes the ticket checks, so
    // `finish_login` reaches the row).
    let pending = h.pending_for(&alice).await;
    for bad in shapes {
        let version = store.insert_json(&alice.user, bad.clone());
        match store.load(&alice.user).await {
            Err(MemoryStoreError::Corrupt { user, .. }) => assert_eq!(user, alice.user),
            other => panic!("{bad}: {other:?}"),
        }
        for policy in [optional as common::flows::Policy, required] {
            let h = Harness::new(store.clone(), policy);
            let begin = h.tf.start_login(&alice, None, &LoginContext::new()).await;
            assert!(matches!(begin, Err(Error::Store(_))), "{bad}: {begin:?}");
            let finish = h.finish_totp(&pending, "123456").await;
            assert!(matches!(finish, Err(Error::Store(_))), "{bad}: {finish:?}");
        }
        assert_eq!(
            store.json(&alice.user),
            Some((bad.clone(), version)),
            "{bad}"
        );
    }
    // A good row put back raw loads again.
    store.insert_json(&alice.user, good);
    assert!(store.load(&alice.user).await.expect("load").is_some());
}

#[cfg(feature = "seal")]
mod sealed {
    use super::*;
    use twofactor::seal::{Keyring, SealError, SealedStore, SealedStoreError};

    fn keyring() -> Keyring {
        Keyring::new("k1", &[1; 32]).expect("key")
    }

    /// A sealed, tagged row of an enrolled user in format 3 or 4 (as the code before format 4,
    /// or 5, wrote it, for `alice` at store version 7) verifies after the upgrade, over a store that keeps the stored text
    /// and over one that does not (the tag is then checked over the record encoded again in
    /// its format); it logs in and the save re-tags it in the current format (6). Moved to another version
    /// or user, or with its factor edited, it is refused.
    #[tokio::test]
    async fn enrolled_sealed_rows_of_formats_3_and_4_verify_on_both_paths_and_are_retagged() {
        for (row, secret) in [
            (
                include_str!("fixtures/record_v3_sealed.json"),
                "P5ZHEA5AL7GUUT6S6RJJE6RVKVPKU5PF",
            ),
            (
                include_str!("fixtures/record_v4_sealed.json"),
                "5CAA6FZZRXTU44ZDRGYBOCNNMGVCRP3M",
            ),
        ] {
            an_enrolled_sealed_row_verifies_on_both_paths(row, secret).await;
        }
    }

    async fn an_enrolled_sealed_row_verifies_on_both_paths(row: &str, secret: &str) {
        let alice = Principal::new("alice");
        for text_path in [true, false] {
            let inner = Arc::new(MemoryStore::new());
            for _ in 0..7 {
                inner.insert_json(&alice.user, row);
            }
            if text_path {
                let strict = Arc::new(SealedStore::new(inner.clone(), keyring()));
                let loaded = strict.load(&alice.user).await.expect("verifies");
                assert_eq!(loaded.expect("row").version.0, 7);
                login_at_130(strict.clone(), &alice, secret)
                    .await
                    .expect("login on an older sealed row");
                assert!(strict.load(&alice.user).await.expect("load").is_some());
            } else {
                let plain = Arc::new(SealedStore::new(
                    common::stores::PlainOnly(inner.clone()),
                    keyring(),
                ));
                let loaded = plain.load(&alice.user).await.expect("verifies");
                assert_eq!(loaded.expect("row").version.0, 7);
                login_at_130(plain.clone(), &alice, secret)
                    .await
                    .expect("login on an older sealed row");
                assert!(plain.load(&alice.user).await.expect("load").is_some());
            }
            let (json, version) = inner.json(&alice.user).expect("row");
            assert_eq!(version.0, 8);
            assert_eq!(value(&json)["v"], 8);
            assert_eq!(value(&json)["mac"]["key"], "k1");
        }
        // At another version, or with its factor's replay step rolled back (at its own
        // version, 7): refused.
        let inner = Arc::new(MemoryStore::new());
        inner.insert_json(&alice.user, row);
        tampered_on_both_paths(&inner, &alice.user).await;
        let inner = Arc::new(MemoryStore::new());
        let mut edited = value(row);
        let step = if edited["active"].is_object() {
            &mut edited["active"]["last_used_step"]
        } else {
            &mut edited["authenticators"][0]["factor"]["totp"]["last_used_step"]
        };
        assert!(step.is_u64(), "{row}");
        *step = Value::from(1);
        for _ in 0..6 {
            inner.insert_json(&alice.user, row);
        }
        assert_eq!(inner.insert_json(&alice.user, edited.to_string()).0, 7);
        tampered_on_both_paths(&inner, &alice.user).await;
    }

    /// Both ways of checking a tag (over the stored text, and over the record encoded again)
    /// refuse `user`'s row in `inner` as tampered with.
    async fn tampered_on_both_paths(inner: &Arc<MemoryStore>, user: &twofactor::UserId) {
        let strict = SealedStore::new(inner.clone(), keyring());
        let plain = SealedStore::new(common::stores::PlainOnly(inner.clone()), keyring());
        assert!(matches!(
            strict.load(user).await,
            Err(SealedStoreError::Tampered { .. })
        ));
        assert!(matches!(
            plain.load(user).await,
            Err(SealedStoreError::Tampered { .. })
        ));
    }

    /// A sealed, tagged format-7 row (as the code before format 8 wrote it, for `alice` at
    /// store version 7: `fixtures/record_v7.md`) verifies after the upgrade over a store that
    /// keeps the stored text and over one that does not (the tag then covers the record
    /// encoded again with its recovery codes as a list, as format 7 wrote them); a login saves
    /// it in format 8, tagged, with its recovery codes as two columns, none lost, the used one
    /// still used. A recovery code's time of use rolled back is refused as an edit.
    #[tokio::test]
    async fn a_sealed_format_7_row_verifies_on_both_paths_and_is_retagged_as_format_8() {
        const ROW: &str = include_str!("fixtures/record_v7_sealed.json");
        const SECRET: &str = "XZK72CNZPUZMFDA2WLFKDOIMRASGSXJL";
        let before = value(ROW);
        assert_eq!(before["v"], 7);
        assert_eq!(
            before["recovery"]["codes"].as_array().map(Vec::len),
            Some(10)
        );
        an_enrolled_sealed_row_verifies_on_both_paths(ROW, SECRET).await;
        // The login's save: the same digests in the same order, the fourth code still used.
        let alice = Principal::new("alice");
        let inner = Arc::new(MemoryStore::new());
        for _ in 0..7 {
            inner.insert_json(&alice.user, ROW);
        }
        let strict = Arc::new(SealedStore::new(inner.clone(), keyring()));
        login_at_130(strict.clone(), &alice, SECRET)
            .await
            .expect("login");
        let (json, _) = inner.json(&alice.user).expect("row");
        let after = value(&json);
        let codes = before["recovery"]["codes"].as_array().expect("codes");
        let column = |field: &str| Value::Array(codes.iter().map(|c| c[field].clone()).collect());
        assert_eq!(after["recovery"]["digests"], column("digest"));
        assert_eq!(after["recovery"]["used_at"], column("used_at"));
        assert_eq!(after["recovery"]["used_at"][3], 1_700_000_040);
        assert!(after["recovery"].get("codes").is_none());
        let loaded = strict.load(&alice.user).await.expect("load").expect("row");
        assert_eq!(loaded.record.recovery_codes_left(), 9);
        // The used code made unused again, in the old row: refused on both paths.
        let mut edited = before.clone();
        edited["recovery"]["codes"][3]["used_at"] = Value::Null;
        // At version 7, where the tag is good for the row as written.
        let inner = Arc::new(MemoryStore::new());
        for _ in 0..6 {
            inner.insert_json(&alice.user, ROW);
        }
        assert_eq!(inner.insert_json(&alice.user, edited.to_string()).0, 7);
        tampered_on_both_paths(&inner, &alice.user).await;
    }

    /// A sealed row as the version before record tags wrote it: the current sealed row
    /// without `v` and `mac` (its shape is otherwise unchanged).
    fn untagged(json: &str) -> String {
        to_format_1(value(json)).to_string()
    }

    #[tokio::test]
    async fn untagged_sealed_rows_are_refused_unless_migrating_then_tagged_by_the_next_save() {
        let inner = Arc::new(MemoryStore::new());
        let strict = Arc::new(SealedStore::new(inner.clone(), keyring()));
        let alice = Principal::new("alice");
        let h = Harness::new(strict.clone(), required);
        let (secret, _) = h.enroll(&alice.user).await;
        let (tagged, _) = inner.json(&alice.user).expect("row");
        assert!(value(&tagged)["mac"]["key"] == "k1", "{tagged}");

        inner.insert_json(&alice.user, untagged(&tagged));
        assert!(matches!(
            strict.load(&alice.user).await,
            Err(SealedStoreError::Untagged { .. })
        ));
        let begin = h.tf.start_login(&alice, None, &LoginContext::new()).await;
        assert!(matches!(begin, Err(Error::Store(_))), "{begin:?}");

        // While migrating, a tagged record must still verify: tampering stays refused.
        let migrating = Arc::new(SealedStore::new(inner.clone(), keyring()).accept_untagged(true));
        let mut forged = value(&tagged);
        forged["code_checks"] = Value::Array(vec![]);
        forged["recovery"] = Value::Null;
        inner.insert_json(&alice.user, forged.to_string());
        assert!(matches!(
            migrating.load(&alice.user).await,
            Err(SealedStoreError::Tampered {
                source: SealError::Authentication,
                ..
            })
        ));

        inner.insert_json(&alice.user, untagged(&tagged));
        let h = Harness::new(migrating, required);
        h.clock.advance(30);
        let pending = h.challenge(&alice).await;
        h.finish_totp(&pending, &code(&secret, h.now()))
            .await
            .expect("login while migrating");
        let (now_tagged, _) = inner.json(&alice.user).expect("row");
        assert!(value(&now_tagged)["mac"].is_object(), "tagged by the save");
        assert!(strict.load(&alice.user).await.expect("load").is_some());
    }

    /// A sealed, tagged row in format 2 (as the code before format 3 wrote it, for `alice` at
    /// store version 6 under this keyring) still verifies after the upgrade: its tag covers
    /// the record as format 2 encoded it. It logs in, and the save re-tags it in the current format (6).
    #[tokio::test]
    async fn format_2_sealed_rows_still_verify_and_are_retagged_as_format_5() {
        const V2_SEALED: &str = include_str!("fixtures/record_v2_sealed.json");
        const SECRET: &str = "D3HZ7WXSUUHE5BD75D7GZQRZFW5H2QGA";
        let inner = Arc::new(MemoryStore::new());
        let alice = Principal::new("alice");
        for _ in 0..6 {
            inner.insert_json(&alice.user, V2_SEALED);
        }
        let strict = Arc::new(SealedStore::new(inner.clone(), keyring()));
        let loaded = strict.load(&alice.user).await;
        assert!(
            matches!(loaded, Ok(Some(_))),
            "a format-2 sealed row is refused after the upgrade: {:?}",
            loaded.map(|v| v.map(|v| v.version))
        );
        login_at_130(strict.clone(), &alice, SECRET)
            .await
            .expect("login on a format-2 sealed row");
        let (json, version) = inner.json(&alice.user).expect("row");
        assert_eq!(version.0, 7);
        assert_eq!(value(&json)["v"], 8);
        assert_eq!(value(&json)["mac"]["key"], "k1");
        assert!(strict.load(&alice.user).await.expect("load").is_some());
        // Moved to another version, it is refused like any other tampering.
        inner.insert_json(&alice.user, V2_SEALED);
        assert!(matches!(
            strict.load(&alice.user).await,
            Err(SealedStoreError::Tampered { .. })
        ));
    }

    /// A sealed, tagged row in format 3 (as the code before format 4 wrote it, for `marc` at
    /// store version 4 under this keyring) still verifies after the upgrade, over the stored
    /// text and, for a store that keeps only the decoded record, over the format-3 encoding
    /// the record reproduces. Its mailed code still logs in; the saves re-tag it in the current format (6).
    #[tokio::test]
    async fn format_3_sealed_rows_still_verify_and_are_retagged_as_format_5() {
        const V3_SEALED: &str = include_str!("fixtures/record_v3_mailed_sealed.json");
        const CODE: &str = "996009";
        let marc = Principal::new("marc");
        let inner = Arc::new(MemoryStore::new());
        for _ in 0..4 {
            inner.insert_json(&marc.user, V3_SEALED);
        }
        let plain_only = SealedStore::new(common::stores::PlainOnly(inner.clone()), keyring());
        assert!(
            matches!(plain_only.load(&marc.user).await, Ok(Some(_))),
            "the tag is checked over the format-3 encoding"
        );
        let strict = Arc::new(SealedStore::new(inner.clone(), keyring()));
        let tf = mail_down(strict.clone());
        let ctx = LoginContext::new();
        let decision = tf.start_login(&marc, None, &ctx).await.expect("decision");
        let LoginDecision::CodeNotSent { pending, .. } = decision else {
            panic!("{decision:?}")
        };
        tf.finish_login(&pending, Factor::MailedCode(CODE), None, &ctx)
            .await
            .expect("the code mailed before the upgrade logs in");
        let (json, version) = inner.json(&marc.user).expect("row");
        assert_eq!(version.0, 7);
        assert_eq!(value(&json)["v"], 8);
        assert_eq!(value(&json)["mac"]["key"], "k1");
        assert!(strict.load(&marc.user).await.expect("load").is_some());
        // Moved to another version, it is refused like any other tampering.
        inner.insert_json(&marc.user, V3_SEALED);
        assert!(matches!(
            strict.load(&marc.user).await,
            Err(SealedStoreError::Tampered { .. })
        ));
    }

    #[tokio::test]
    async fn sealed_memory_store_refuses_a_record_of_another_user_or_version() {
        let inner = Arc::new(MemoryStore::new());
        let store = SealedStore::new(inner.clone(), keyring());
        let (alice, bob) = (
            twofactor::UserId::new("alice"),
            twofactor::UserId::new("bob"),
        );
        let record = twofactor::account::TwoFactorRecord::default();
        let _ = store.save(&alice, &record, None).await.expect("save");
        let (row, version) = inner.json(&alice).expect("row");
        assert_eq!(version.0, 1);
        // Bob's row, same version, alice's bytes.
        inner.insert_json(&bob, row.clone());
        assert!(matches!(
            store.load(&bob).await,
            Err(SealedStoreError::Tampered { .. })
        ));
        // Alice's own bytes at version 2.
        inner.insert_json(&alice, row);
        assert!(matches!(
            store.load(&alice).await,
            Err(SealedStoreError::Tampered { .. })
        ));
    }
}
