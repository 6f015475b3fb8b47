//! Someone who can write the table (points 1 and 3 of the security review). Every test here
//! is an attack that succeeded before the stored format was made strict and the record was
//! authenticated under sealing; each must now be refused with a store error, with nothing
//! written over the row.
//!
//! - A row that is valid JSON but not a record this crate wrote (an array, `{}`, an object
//!   that lost fields or gained some, wrong types at any depth) is a corrupt row on SQLite and
//!   PostgreSQL, under both an opt-in and an enforcing policy: never "no 2FA", never a fresh
//!   record saved over it.
//! - Under `SealedStore`: a planted trusted device (of a token the attacker holds), planted
//!   recovery codes, cleared throttle counters, a secret rolled back after a rotation, a row
//!   copied from another user, a row moved to another version, and any change to any field;
//!   also the ticket ledger of format 3: a used ticket made usable again by clearing the
//!   record's list of used tickets, and a revocation undone by rolling the ticket generation
//!   back.
#![cfg(all(feature = "seal", feature = "sqlite"))]

#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use common::flows::{Harness, code, optional, required, wrong};
use serde_json::Value;
use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
use twofactor::seal::{Keyring, SealedStore};
use twofactor::service::Error;
use twofactor::store::UserStore;
use twofactor::{Principal, SqliteStore, UserId};

/// Raw access to a SQL store's table, bypassing the store (what an attacker with write
/// access to the database does).
trait RawTable: UserStore + Sized + 'static {
    async fn read_row(&self, user: &UserId) -> (i64, String);
    async fn write_row(&self, user: &UserId, json: &str);
    async fn insert_row(&self, user: &UserId, json: &str);
    async fn set_version(&self, user: &UserId, version: i64);
}

macro_rules! raw_table {
    ($store:ty) => {
        impl RawTable for $store {
            async fn read_row(&self, user: &UserId) -> (i64, String) {
                sqlx::query_as("SELECT version, record FROM twofactor_records WHERE user_id = $1")
                    .bind(user.as_str())
                    .fetch_one(self.pool())
                    .await
                    .expect("row")
            }
            async fn write_row(&self, user: &UserId, json: &str) {
                sqlx::query("UPDATE twofactor_records SET record = $1 WHERE user_id = $2")
                    .bind(json)
                    .bind(user.as_str())
                    .execute(self.pool())
                    .await
                    .expect("tamper");
            }
            async fn insert_row(&self, user: &UserId, json: &str) {
                sqlx::query(
                    "INSERT INTO twofactor_records (user_id, version, record, updated_at) \
                     VALUES ($1, 1, $2, CURRENT_TIMESTAMP)",
                )
                .bind(user.as_str())
                .bind(json)
                .execute(self.pool())
                .await
                .expect("plant a row");
            }
            async fn set_version(&self, user: &UserId, version: i64) {
                sqlx::query("UPDATE twofactor_records SET version = $1 WHERE user_id = $2")
                    .bind(version)
                    .bind(user.as_str())
                    .execute(self.pool())
                    .await
                    .expect("set version");
            }
        }
    };
}
raw_table!(SqliteStore);
#[cfg(feature = "postgres")]
raw_table!(twofactor::store::PostgresStore);

fn parse(json: &str) -> Value {
    serde_json::from_str(json).expect("stored JSON")
}

// ---------------------------------------------------------------------------------------
// Point 1: rows of the wrong shape, on the bare SQL stores.
// ---------------------------------------------------------------------------------------

/// Wrong shapes derived from an enrolled user's row `json` as the store wrote it.
fn wrong_shapes(json: &str) -> Vec<(String, String)> {
    let row = parse(json);
    let Value::Object(top) = &row else {
        panic!("a record is an object")
    };
    let mut shapes: Vec<(String, String)> = [
        ("array", "[]"),
        ("array of the record", "[{}]"),
        ("null", "null"),
        ("number", "42"),
        ("string", r#""record""#),
        ("true", "true"),
        ("empty object", "{}"),
        ("only active null", r#"{"active":null}"#),
        ("other keys only", r#"{"user":"alice","enabled":false}"#),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    for key in top.keys() {
        // Each field missing.
        let mut missing = top.clone();
        missing.remove(key);
        shapes.push((format!("without {key}"), Value::Object(missing).to_string()));
        // Each field of the wrong type.
        let mut wrong_type = top.clone();
        let replacement = if top[key].is_string() || top[key].is_number() {
            Value::Array(vec![])
        } else {
            Value::String("x".into())
        };
        wrong_type.insert(key.clone(), replacement);
        shapes.push((
            format!("{key} of the wrong type"),
            Value::Object(wrong_type).to_string(),
        ));
    }
    // An extra field at the top and in every nested object this crate writes.
    let mut extra = top.clone();
    extra.insert("enabled".into(), Value::Bool(false));
    shapes.push((
        "extra top-level field".into(),
        Value::Object(extra).to_string(),
    ));
    for (path, value) in nested_objects(&row) {
        let mut mutated = row.clone();
        if let Some(Value::Object(obj)) = mutated.pointer_mut(&path) {
            obj.insert("extra".into(), Value::Null);
        }
        let _ = value;
        shapes.push((format!("extra field in {path}"), mutated.to_string()));
    }
    shapes
}

/// Every object below the top, with its JSON pointer.
fn nested_objects(value: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(map) => {
                if !path.is_empty() {
                    out.push((path.clone(), v.clone()));
                }
                for (k, child) in map {
                    walk(child, format!("{path}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// An enrolled user with a trusted device, a pending rotation, a mailed-code-free record:
/// a row with every nested object this crate writes.
async fn enrolled_row<S: UserStore + 'static, R: RawTable>(
    store: &Arc<S>,
    raw: &R,
    user: &Principal,
) -> (i64, String) {
    let h = Harness::new(store.clone(), required);
    let (secret, _) = h.enroll(&user.user).await;
    h.clock.advance(30);
    let pending = h.challenge(user).await;
    h.tf.finish_login(
        &pending,
        Factor::Totp(&code(&secret, h.now())),
        Some("Firefox"),
        &LoginContext::new(),
    )
    .await
    .expect("login remembering the device");
    h.clock.advance(30);
    h.tf.start_rotation(
        &user.user,
        "alice",
        code(&secret, h.now()).as_str(),
        Reauthenticated::at(h.now()),
    )
    .await
    .expect("pending rotation");
    raw.read_row(&user.user).await
}

/// Every wrong shape of an enrolled user's row is a store error for `start_login` and
/// `finish_login` under an opt-in and an enforcing policy, and the row is never rewritten.
async fn wrong_shapes_refused<S: RawTable>(store: Arc<S>) {
    let alice = Principal::new("alice");
    let (_, json) = enrolled_row(&store, &*store, &alice).await;
    let shapes = wrong_shapes(&json);
    assert!(shapes.len() > 30, "{}", shapes.len());
    // A ticket alice holds from an earlier `start_login` (sealed under the keys every harness
    // shares): it passes the ticket checks, so `finish_login` reaches the row.
    let pending = Harness::new(store.clone(), required)
        .pending_for(&alice)
        .await;
    for (what, bad) in shapes {
        store.write_row(&alice.user, &bad).await;
        let before = store.read_row(&alice.user).await;
        assert!(store.load(&alice.user).await.is_err(), "{what}: loads");
        for policy in [optional as common::flows::Policy, required] {
            let h = Harness::new(store.clone(), policy);
            match h.tf.start_login(&alice, None, &LoginContext::new()).await {
                Err(Error::Store(_)) => {}
                other => panic!("{what}: start_login answered {other:?}"),
            }
            match h.finish_totp(&pending, "123456").await {
                Err(Error::Store(_)) => {}
                other => panic!("{what}: finish_login answered {other:?}"),
            }
        }
        assert_eq!(
            store.read_row(&alice.user).await,
            before,
            "{what}: row rewritten"
        );
    }
}

#[tokio::test]
async fn wrong_shapes_are_corrupt_rows_on_sqlite() {
    wrong_shapes_refused(Arc::new(SqliteStore::in_memory().await.expect("sqlite"))).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn wrong_shapes_are_corrupt_rows_on_postgres() {
    let pg = common::stores::Postgres::new().await;
    use common::stores::Fixture as _;
    wrong_shapes_refused(pg.store()).await;
}

/// A row planted for a user who has none: `{}` (or any wrong shape) must not read as
/// "no 2FA" either, and enrollment must not write over it.
#[tokio::test]
async fn planted_empty_row_is_not_a_user_without_2fa() {
    let store = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
    let bob = Principal::new("bob");
    store.insert_row(&bob.user, "{}").await;
    let h = Harness::new(store.clone(), required);
    let outcome = h.tf.start_login(&bob, None, &LoginContext::new()).await;
    assert!(matches!(outcome, Err(Error::Store(_))), "{outcome:?}");
    assert_eq!(store.read_row(&bob.user).await, (1, "{}".to_owned()));
}

// ---------------------------------------------------------------------------------------
// Point 3: under SealedStore, every part of the record is authenticated.
// ---------------------------------------------------------------------------------------

type Sealed = SealedStore<SqliteStore, Keyring>;

fn keyring() -> Keyring {
    Keyring::new("k1", &[1; 32]).expect("key")
}

struct World {
    inner: Arc<SqliteStore>,
    store: Arc<Sealed>,
}

async fn world() -> World {
    let inner = SqliteStore::in_memory().await.expect("sqlite");
    World {
        inner: Arc::new(inner.clone()),
        store: Arc::new(SealedStore::new(inner, keyring())),
    }
}

/// Replaces `key` of `victim`'s row with the same key of `donor`'s row.
async fn transplant(w: &World, key: &str, donor: &UserId, victim: &UserId) {
    let donor_row = parse(&w.inner.read_row(donor).await.1);
    let mut row = parse(&w.inner.read_row(victim).await.1);
    row[key] = donor_row[key].clone();
    w.inner.write_row(victim, &row.to_string()).await;
}

/// Asserts that `start_login` for `who` (with `token`) is refused with a store error and that
/// the row is unchanged.
async fn refused(w: &World, who: &Principal, token: Option<&str>) {
    let before = w.inner.read_row(&who.user).await;
    let h = Harness::new(w.store.clone(), optional);
    let outcome = h.tf.start_login(who, token, &LoginContext::new()).await;
    assert!(matches!(outcome, Err(Error::Store(_))), "{outcome:?}");
    assert_eq!(w.inner.read_row(&who.user).await, before, "row rewritten");
}

#[tokio::test]
async fn planted_trusted_device_of_a_chosen_token_is_refused() {
    let w = world().await;
    let (alice, mallory) = (Principal::new("alice"), Principal::new("mallory"));
    let h = Harness::new(w.store.clone(), required);
    h.enroll(&alice.user).await;
    // Mallory, who can write the table, trusts a device of her own account: she holds its
    // token, and its digest is in her row.
    let (secret, _) = h.enroll(&mallory.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&mallory).await;
    let granted =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&code(&secret, h.now())),
            Some("mallory's laptop"),
            &LoginContext::new(),
        )
        .await
        .expect("mallory logs in");
    let token = granted.device_token.expect("a device token");
    transplant(&w, "devices", &mallory.user, &alice.user).await;
    refused(&w, &alice, Some(token.expose_secret())).await;
}

#[tokio::test]
async fn planted_recovery_codes_are_refused() {
    let w = world().await;
    let (alice, mallory) = (Principal::new("alice"), Principal::new("mallory"));
    let h = Harness::new(w.store.clone(), required);
    h.enroll(&alice.user).await;
    let (_, mallory_codes) = h.enroll(&mallory.user).await;
    transplant(&w, "recovery", &mallory.user, &alice.user).await;
    let before = w.inner.read_row(&alice.user).await;
    let pending = h.pending_for(&alice).await;
    let outcome =
        h.tf.finish_login(
            &pending,
            Factor::RecoveryCode(&mallory_codes[0]),
            None,
            &LoginContext::new(),
        )
        .await;
    assert!(matches!(outcome, Err(Error::Store(_))), "{outcome:?}");
    assert_eq!(w.inner.read_row(&alice.user).await, before, "row rewritten");
}

#[tokio::test]
async fn cleared_throttle_counters_are_refused() {
    let w = world().await;
    let alice = Principal::new("alice");
    let h = Harness::new(w.store.clone(), required);
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    for _ in 0..3 {
        let pending = h.challenge(&alice).await;
        let wrong_code = wrong(&code(&secret, h.now()));
        assert!(h.finish_totp(&pending, &wrong_code).await.is_err());
    }
    let mut row = parse(&w.inner.read_row(&alice.user).await.1);
    assert_eq!(row["code_checks"].as_array().map(Vec::len), Some(3));
    row["code_checks"] = Value::Array(vec![]);
    w.inner.write_row(&alice.user, &row.to_string()).await;
    assert!(
        w.store.load(&alice.user).await.is_err(),
        "cleared counters load"
    );
    refused(&w, &alice, None).await;
}

#[tokio::test]
async fn secret_rolled_back_after_rotation_is_refused() {
    let w = world().await;
    let alice = Principal::new("alice");
    let h = Harness::new(w.store.clone(), required);
    let (old_secret, _) = h.enroll(&alice.user).await;
    let (_, before_rotation) = w.inner.read_row(&alice.user).await;
    // Rotate: the old secret is revoked.
    h.clock.advance(30);
    let started =
        h.tf.start_rotation(
            &alice.user,
            "alice",
            code(&old_secret, h.now()).as_str(),
            Reauthenticated::at(h.now()),
        )
        .await
        .expect("start rotation");
    let new_secret = twofactor::KeyUri::parse(started.uri())
        .expect("uri")
        .into_secret();
    h.tf.finish_enrollment(&alice.user, &code(&new_secret, h.now()))
        .await
        .expect("rotated");
    // Write the record sealed before the rotation back (the version column stays).
    w.inner.write_row(&alice.user, &before_rotation).await;
    h.clock.advance(30);
    let outcome = h.tf.start_login(&alice, None, &LoginContext::new()).await;
    assert!(matches!(outcome, Err(Error::Store(_))), "{outcome:?}");
    let login = h
        .finish_totp(&h.pending_for(&alice).await, &code(&old_secret, h.now()))
        .await;
    assert!(
        matches!(login, Err(Error::Store(_))),
        "revoked secret: {login:?}"
    );
}

#[tokio::test]
async fn row_copied_from_another_user_is_refused() {
    let w = world().await;
    let (alice, mallory) = (Principal::new("alice"), Principal::new("mallory"));
    let h = Harness::new(w.store.clone(), required);
    h.enroll(&alice.user).await;
    h.enroll(&mallory.user).await;
    let (_, mallory_row) = w.inner.read_row(&mallory.user).await;
    w.inner.write_row(&alice.user, &mallory_row).await;
    refused(&w, &alice, None).await;
    // Also for a user who had no row at all.
    let carol = Principal::new("carol");
    w.inner.insert_row(&carol.user, &mallory_row).await;
    refused(&w, &carol, None).await;
}

#[tokio::test]
async fn any_change_to_any_field_of_a_sealed_record_is_refused() {
    let w = world().await;
    let alice = Principal::new("alice");
    let (_, json) = enrolled_row(&w.store, &*w.inner, &alice).await;
    assert!(w.store.load(&alice.user).await.is_ok());
    let row = parse(&json);
    let mutations = leaf_mutations(&row);
    assert!(mutations.len() > 40, "{}", mutations.len());
    for (what, mutated) in mutations {
        w.inner.write_row(&alice.user, &mutated.to_string()).await;
        let loaded = w.store.load(&alice.user).await;
        assert!(loaded.is_err(), "{what}: loads");
    }
    w.inner.write_row(&alice.user, &json).await;
    assert!(w.store.load(&alice.user).await.is_ok(), "restored");
}

/// Every leaf changed (numbers moved, strings altered, nulls and arrays filled or emptied).
fn leaf_mutations(row: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: String, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    walk(child, format!("{path}/{k}"), out);
                }
            }
            Value::Array(items) => {
                out.push(path.clone());
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{path}/{i}"), out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut paths = Vec::new();
    walk(row, String::new(), &mut paths);
    let mut out = Vec::new();
    for path in paths {
        let mut mutated = row.clone();
        let Some(leaf) = mutated.pointer_mut(&path) else {
            continue;
        };
        let replacement = match &*leaf {
            Value::Number(n) => Value::from(n.as_u64().map_or(1, |n| n ^ 1)),
            Value::String(s) => {
                let mut chars: Vec<char> = s.chars().collect();
                match chars.last_mut() {
                    Some(c) => *c = if *c == 'a' || *c == 'A' { 'b' } else { 'a' },
                    None => chars.push('a'),
                }
                // Keep hex hex and base32 base32 where it matters: a lowercase 'a'/'b' is
                // both valid hex and (case-insensitively) valid base32.
                Value::String(chars.into_iter().collect())
            }
            Value::Null => Value::from(1_700_000_000u64),
            Value::Bool(b) => Value::Bool(!b),
            Value::Array(items) if items.is_empty() => {
                Value::Array(vec![Value::from(1_700_000_000u64)])
            }
            Value::Array(items) => Value::Array(items[..items.len() - 1].to_vec()),
            Value::Object(_) => continue,
        };
        *leaf = replacement;
        out.push((format!("{path} changed"), mutated));
    }
    out
}

/// A ticket that completed a login is remembered in the row (`tickets.through` and
/// `at_through`): a table writer who rolls them back to log in again with the same ticket
/// (and a code seen over the victim's shoulder, say) is refused like any other tampering.
#[tokio::test]
async fn a_used_ticket_made_usable_again_by_rolling_the_ledger_back_is_refused() {
    let w = world().await;
    let alice = Principal::new("alice");
    let h = Harness::new(w.store.clone(), required);
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("login");
    h.clock.advance(30);
    assert!(matches!(
        h.finish_totp(&pending, &code(&secret, h.now())).await,
        Err(Error::LoginExpired)
    ));
    let mut row = parse(&w.inner.read_row(&alice.user).await.1);
    assert_eq!(row["tickets"]["through"], pending.password_checked_at());
    row["tickets"]["through"] = Value::from(0);
    row["tickets"]["at_through"] = Value::Array(vec![]);
    w.inner.write_row(&alice.user, &row.to_string()).await;
    let before = w.inner.read_row(&alice.user).await;
    let login = h.finish_totp(&pending, &code(&secret, h.now())).await;
    assert!(matches!(login, Err(Error::Store(_))), "{login:?}");
    assert_eq!(w.inner.read_row(&alice.user).await, before, "row rewritten");
    refused(&w, &alice, None).await;
}

/// A revocation (a password change) bumps the row's ticket generation: a table writer who
/// rolls it back to revive the tickets issued before is refused.
#[tokio::test]
async fn a_revocation_undone_by_rolling_the_generation_back_is_refused() {
    let w = world().await;
    let alice = Principal::new("alice");
    let h = Harness::new(w.store.clone(), required);
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.tf.revoke_login_tickets(&alice.user)
        .await
        .expect("revoke");
    assert!(matches!(
        h.finish_totp(&pending, &code(&secret, h.now())).await,
        Err(Error::LoginExpired)
    ));
    let mut row = parse(&w.inner.read_row(&alice.user).await.1);
    assert_eq!(row["tickets"]["generation"].as_u64(), Some(1));
    row["tickets"]["generation"] = Value::from(0u64);
    w.inner.write_row(&alice.user, &row.to_string()).await;
    let before = w.inner.read_row(&alice.user).await;
    let login = h.finish_totp(&pending, &code(&secret, h.now())).await;
    assert!(matches!(login, Err(Error::Store(_))), "{login:?}");
    assert_eq!(w.inner.read_row(&alice.user).await, before, "row rewritten");
}

#[tokio::test]
async fn a_row_moved_to_another_version_is_refused() {
    let w = world().await;
    let alice = Principal::new("alice");
    let h = Harness::new(w.store.clone(), required);
    let (secret, _) = h.enroll(&alice.user).await;
    let (version, _) = w.inner.read_row(&alice.user).await;
    w.inner.set_version(&alice.user, version + 5).await;
    refused(&w, &alice, None).await;
    w.inner.set_version(&alice.user, version).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("its own version logs in");
}

#[tokio::test]
async fn untampered_logins_still_work_and_start_login_decides() {
    let w = world().await;
    let alice = Principal::new("alice");
    let h = Harness::new(w.store.clone(), required);
    let (secret, codes) = h.enroll(&alice.user).await;
    for _ in 0..3 {
        h.clock.advance(30);
        let pending = h.challenge(&alice).await;
        h.finish_totp(&pending, &code(&secret, h.now()))
            .await
            .expect("login");
    }
    let pending = h.challenge(&alice).await;
    let granted =
        h.tf.finish_login(
            &pending,
            Factor::RecoveryCode(&codes[0]),
            None,
            &LoginContext::new(),
        )
        .await
        .expect("recovery code");
    assert_eq!(granted.recovery_codes_left, Some(codes.len() - 1));
    let decision =
        h.tf.start_login(&Principal::new("nobody"), None, &LoginContext::new())
            .await
            .expect("unknown user");
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
}
