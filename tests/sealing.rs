//! Encryption at rest: `SealedStore` with `Keyring` over the SQLite store (which writes the
//! record as JSON text) and the memory store.
//!
//! - secrets reach the store only sealed, and every flow works through the wrapper;
//! - a sealed record read without the cipher is never "no 2FA": logins fail closed;
//! - a ciphertext moved to another user, a tampered one, a wrong key and an unknown key id
//!   do not open; a plaintext secret planted in the table is refused unless migrating;
//! - key rotation: old records open, the next save seals with the new key.
#![cfg(all(feature = "seal", feature = "sqlite"))]

#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use common::flows::{Harness, code, required};
use twofactor::account::{LoginContext, LoginDecision};
use twofactor::seal::{Keyring, SealError, SealedStore, SealedStoreError, SecretCipher};
use twofactor::service::Error;
use twofactor::store::{SaveOutcome, UserStore};
use twofactor::{MemoryStore, Principal, SqliteStore, UserId};

const KEY_1: [u8; 32] = [1; 32];
const KEY_2: [u8; 32] = [2; 32];

fn keyring() -> Keyring {
    Keyring::new("k1", &KEY_1).expect("key")
}

/// The JSON text the SQL store holds for `user`.
async fn stored_json(store: &SqliteStore, user: &UserId) -> String {
    sqlx::query_scalar("SELECT record FROM twofactor_records WHERE user_id = $1")
        .bind(user.as_str())
        .fetch_one(store.pool())
        .await
        .expect("row")
}

/// An enrolled user on a sealed SQLite store: the store and the secret.
async fn enrolled_on_sqlite(
    user: &Principal,
) -> (Arc<SealedStore<SqliteStore, Keyring>>, twofactor::Secret) {
    let inner = SqliteStore::in_memory().await.expect("sqlite");
    let store = Arc::new(SealedStore::new(inner, keyring()));
    let h = Harness::new(store.clone(), required);
    let (secret, _) = h.enroll(&user.user).await;
    (store, secret)
}

/// The stored row of `user`, which must exist.
async fn row<S: UserStore>(store: &S, user: &UserId) -> twofactor::store::Versioned {
    store.load(user).await.expect("load").expect("row")
}

/// Whether `result` is the record (checked first) or its sealed secret failing
/// authentication.
fn failed_authentication<T, E>(result: &Result<T, SealedStoreError<E>>) -> bool {
    matches!(
        result,
        Err(SealedStoreError::Seal {
            source: SealError::Authentication,
            ..
        } | SealedStoreError::Tampered {
            source: SealError::Authentication,
            ..
        })
    )
}

/// Whether `result` names a key the keyring does not hold (the record tag names it first).
fn unknown_key<T, E>(result: &Result<T, SealedStoreError<E>>, id: &str) -> bool {
    matches!(
        result,
        Err(SealedStoreError::Tampered {
            source: SealError::UnknownKey { key_id },
            ..
        }) if key_id == id
    )
}

/// One login at the next time step with the code of `secret`.
async fn login_next_step<S: UserStore>(
    h: &Harness<S>,
    who: &Principal,
    secret: &twofactor::Secret,
) -> Result<(), Error> {
    h.clock.advance(30);
    let pending = h.challenge(who).await;
    h.finish_totp(&pending, &code(secret, h.now())).await
}

#[tokio::test]
async fn secrets_are_stored_sealed_and_every_login_works() {
    let alice = Principal::new("alice");
    let inner = SqliteStore::in_memory().await.expect("sqlite");
    let store = Arc::new(SealedStore::new(inner, keyring()));
    let h = Harness::new(store.clone(), required);

    // Pending: sealed already.
    let started =
        h.tf.start_enrollment(
            &alice,
            "alice",
            twofactor::account::Reauthenticated::at(h.now()),
        )
        .await
        .expect("start");
    let secret = twofactor::KeyUri::parse(started.uri())
        .expect("uri")
        .into_secret();
    let base32 = secret.to_base32();
    let json = stored_json(store.inner(), &alice.user).await;
    assert!(
        !json.contains(base32.as_str()),
        "pending secret in the clear"
    );
    assert!(json.contains(r#""key":"k1""#), "{json}");

    h.tf.finish_enrollment(&alice.user, &code(&secret, h.now()))
        .await
        .expect("enrolled through the sealed store");
    login_next_step(&h, &alice, &secret).await.expect("login");
    // Replay protection still holds across the wrapper.
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.finish_totp(&pending, &code(&secret, h.now())).await,
        Err(Error::InvalidCode)
    ));

    let json = stored_json(store.inner(), &alice.user).await;
    assert!(
        !json.contains(base32.as_str()),
        "active secret in the clear"
    );
    let raw = row(store.inner(), &alice.user).await;
    assert!(raw.record.has_sealed_secret());
    assert!(raw.record.is_enrolled());
    let opened = row(&store, &alice.user).await;
    assert!(!opened.record.has_sealed_secret());
}

#[tokio::test]
async fn without_the_cipher_a_sealed_record_fails_closed() {
    let alice = Principal::new("alice");
    let (sealed, secret) = enrolled_on_sqlite(&alice).await;
    // The same table through the bare store: a host that forgot the wrapper.
    let bare = Arc::new(sealed.inner().clone());
    let h = Harness::new(bare.clone(), required);
    h.clock.advance(30);
    // Still enrolled: a challenge, never "no 2FA".
    let pending = h.challenge(&alice).await;
    let before = row(&bare, &alice.user).await.version;
    let err = h
        .finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect_err("no login without the cipher");
    assert!(matches!(err, Error::SecretSealed), "{err:?}");
    let after = row(&bare, &alice.user).await.version;
    assert_eq!(before, after, "nothing written, no attempt counted");
    // Nor can the secret be disabled or rotated with a TOTP code.
    let now = twofactor::account::Reauthenticated::at(h.now());
    let totp = code(&secret, h.now());
    let err =
        h.tf.disable(&alice.user, now, twofactor::account::Factor::Totp(&totp))
            .await
            .expect_err("no disable without the cipher");
    assert!(matches!(err, Error::SecretSealed), "{err:?}");
    let err =
        h.tf.start_rotation(&alice.user, "alice", &totp, now)
            .await
            .expect_err("no rotation without the cipher");
    assert!(matches!(err, Error::SecretSealed), "{err:?}");
    assert_eq!(row(&bare, &alice.user).await.version, after);
    // The same code still logs in through the wrapper.
    let h = Harness::new(sealed, required);
    login_next_step(&h, &alice, &secret)
        .await
        .expect("login through the wrapper");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_user_does_not_open() {
    let alice = Principal::new("alice");
    let (store, _) = enrolled_on_sqlite(&alice).await;
    let raw = row(store.inner(), &alice.user).await;
    let mallory = UserId::new("mallory");
    let _ = store
        .inner()
        .save(&mallory, &raw.record, None)
        .await
        .expect("copy the row");
    let loaded = store.load(&mallory).await;
    assert!(failed_authentication(&loaded), "bound to alice: {loaded:?}");
    // A login for mallory is refused, not granted.
    let h = Harness::new(store, required);
    let err =
        h.tf.start_login(&Principal::new("mallory"), None, &LoginContext::new())
            .await
            .expect_err("fails closed");
    assert!(matches!(err, Error::Store(_)), "{err:?}");
}

#[tokio::test]
async fn tampered_ciphertext_wrong_key_and_unknown_key_do_not_open() {
    let alice = Principal::new("alice");
    let (store, _) = enrolled_on_sqlite(&alice).await;
    let json = stored_json(store.inner(), &alice.user).await;

    // Flip one hex digit of the ciphertext.
    let at = json.find(r#""ct":""#).expect("sealed") + 6;
    let mut tampered = json.clone().into_bytes();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("utf8");
    sqlx::query("UPDATE twofactor_records SET record = $1 WHERE user_id = $2")
        .bind(&tampered)
        .bind(alice.user.as_str())
        .execute(store.inner().pool())
        .await
        .expect("tamper");
    let loaded = store.load(&alice.user).await;
    assert!(failed_authentication(&loaded), "tampered: {loaded:?}");

    // Restore, then read with the wrong key under the same id, and with another id.
    sqlx::query("UPDATE twofactor_records SET record = $1 WHERE user_id = $2")
        .bind(&json)
        .bind(alice.user.as_str())
        .execute(store.inner().pool())
        .await
        .expect("restore");
    let wrong_key = SealedStore::new(
        store.inner().clone(),
        Keyring::new("k1", &KEY_2).expect("key"),
    );
    assert!(failed_authentication(&wrong_key.load(&alice.user).await));
    let other_id = SealedStore::new(
        store.inner().clone(),
        Keyring::new("k2", &KEY_1).expect("key"),
    );
    let loaded = other_id.load(&alice.user).await;
    assert!(
        unknown_key(&loaded, "k1"),
        "expected an unknown key: {loaded:?}"
    );
    assert!(store.load(&alice.user).await.expect("load").is_some());
}

#[tokio::test]
async fn plaintext_secrets_are_refused_unless_migrating_and_sealed_by_the_next_save() {
    let alice = Principal::new("alice");
    // Written before sealing was turned on.
    let inner = SqliteStore::in_memory().await.expect("sqlite");
    let h = Harness::new(Arc::new(inner.clone()), required);
    let (secret, _) = h.enroll(&alice.user).await;
    let base32 = secret.to_base32();
    assert!(
        stored_json(&inner, &alice.user)
            .await
            .contains(base32.as_str())
    );

    let strict = SealedStore::new(inner.clone(), keyring());
    assert!(matches!(
        strict.load(&alice.user).await,
        Err(SealedStoreError::Unsealed { .. })
    ));

    let migrating = Arc::new(SealedStore::new(inner.clone(), keyring()).accept_unsealed(true));
    let h = Harness::new(migrating, required);
    login_next_step(&h, &alice, &secret)
        .await
        .expect("login while migrating");
    assert!(
        !stored_json(&inner, &alice.user)
            .await
            .contains(base32.as_str())
    );
    assert!(
        strict
            .load(&alice.user)
            .await
            .expect("sealed now")
            .is_some()
    );
}

#[tokio::test]
async fn rotation_opens_old_records_and_reseals_with_the_new_key() {
    let alice = Principal::new("alice");
    let (store, secret) = enrolled_on_sqlite(&alice).await;
    assert!(
        stored_json(store.inner(), &alice.user)
            .await
            .contains(r#""key":"k1""#)
    );
    let rotated = Keyring::new("k2", &KEY_2)
        .expect("key")
        .with_old_key("k1", &KEY_1)
        .expect("old key");
    assert_eq!(rotated.current_key_id(), "k2");
    let store2 = Arc::new(SealedStore::new(store.inner().clone(), rotated));
    let h = Harness::new(store2.clone(), required);
    h.clock.advance(30);
    let decision =
        h.tf.start_login(&alice, None, &LoginContext::new())
            .await
            .expect("begin");
    assert!(matches!(decision, LoginDecision::Challenge { .. }));
    let pending = decision.into_pending().expect("a challenge");
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("login with the old key's record");
    let json = stored_json(store.inner(), &alice.user).await;
    assert!(json.contains(r#""key":"k2""#), "{json}");
    // The old keyring alone can no longer open it.
    assert!(unknown_key(&store.load(&alice.user).await, "k2"));
}

#[tokio::test]
async fn compare_and_swap_passes_through() {
    let store = SealedStore::new(MemoryStore::new(), keyring());
    let user = UserId::new("bob");
    let record = common::flows::sample_records().await.1;
    let SaveOutcome::Saved(v1) = store.save(&user, &record, None).await.expect("save") else {
        panic!("insert");
    };
    assert_eq!(
        store.save(&user, &record, None).await.expect("save"),
        SaveOutcome::Conflict
    );
    let loaded = row(&store, &user).await;
    assert_eq!(loaded.version, v1);
    assert!(!loaded.record.has_sealed_secret());
    assert!(row(store.inner(), &user).await.record.has_sealed_secret());
}

/// The active slot's sealed secret in `user`'s row of the memory store under the wrapper.
fn active_secret(inner: &MemoryStore, user: &UserId) -> serde_json::Value {
    let (json, _) = inner.json(user).expect("row");
    let row: serde_json::Value = serde_json::from_str(&json).expect("json");
    row["active"]["secret"].clone()
}

#[tokio::test]
async fn an_unchanged_secret_keeps_its_ciphertext_and_any_other_is_sealed_afresh() {
    let alice = Principal::new("alice");
    let inner = Arc::new(MemoryStore::new());
    let store = Arc::new(SealedStore::new(inner.clone(), keyring()));
    let h = Harness::new(store.clone(), required);
    let started =
        h.tf.start_enrollment(
            &alice,
            "alice",
            twofactor::account::Reauthenticated::at(h.now()),
        )
        .await
        .expect("start");
    let secret = twofactor::KeyUri::parse(started.uri())
        .expect("uri")
        .into_secret();
    let (json, _) = inner.json(&alice.user).expect("row");
    let stored: serde_json::Value = serde_json::from_str(&json).expect("json");
    let pending = stored["pending"]["secret"].clone();
    assert!(pending["nonce"].is_string(), "{json}");
    h.tf.finish_enrollment(&alice.user, &code(&secret, h.now()))
        .await
        .expect("enrolled");
    // Confirmed: the same secret, now in the active slot, sealed again for that slot.
    let enrolled = active_secret(&inner, &alice.user);
    assert_ne!(enrolled["nonce"], pending["nonce"]);

    // Logins save the record (the used step) and keep the ciphertext the secret was loaded
    // from: it is still bound to alice and the active slot.
    let before = inner.json(&alice.user).expect("row");
    for _ in 0..3 {
        login_next_step(&h, &alice, &secret).await.expect("login");
    }
    let after = inner.json(&alice.user).expect("row");
    assert_ne!(before, after, "saved");
    assert_eq!(active_secret(&inner, &alice.user), enrolled);

    // After a key rotation the next save seals it under the new key, afresh; the saves after
    // that keep that ciphertext.
    let rotated = Keyring::new("k2", &KEY_2)
        .expect("key")
        .with_old_key("k1", &KEY_1)
        .expect("old key");
    let now = h.now();
    let h = Harness::new(Arc::new(SealedStore::new(inner.clone(), rotated)), required);
    h.clock.set(now);
    login_next_step(&h, &alice, &secret)
        .await
        .expect("login after rotation");
    let resealed = active_secret(&inner, &alice.user);
    assert_eq!(resealed["key"], "k2");
    assert_ne!(resealed["nonce"], enrolled["nonce"]);
    login_next_step(&h, &alice, &secret).await.expect("login");
    assert_eq!(active_secret(&inner, &alice.user), resealed);
    assert!(!inner.json(&alice.user).expect("row").0.contains("\"k1\""));

    // A ciphertext kept for alice is not reused for another user: a record loaded for alice
    // and saved for bob is sealed afresh for bob, and opens for him.
    let loaded = row(h.tf.store(), &alice.user).await;
    let bob = UserId::new("bob");
    let _ =
        h.tf.store()
            .save(&bob, &loaded.record, None)
            .await
            .expect("save");
    let bobs = active_secret(&inner, &bob);
    assert_ne!(bobs["nonce"], resealed["nonce"]);
    assert!(row(h.tf.store(), &bob).await.record.is_enrolled());
}

#[tokio::test]
async fn the_tag_covers_the_stored_bytes_as_they_are() {
    let alice = Principal::new("alice");
    let (store, secret) = enrolled_on_sqlite(&alice).await;
    let json = stored_json(store.inner(), &alice.user).await;
    // What the sealed store writes is the canonical encoding of the record it tagged.
    let raw = row(store.inner(), &alice.user).await;
    assert_eq!(
        twofactor::store::codec::encode_record(&raw.record).expect("encode"),
        json
    );
    let write = |text: String| {
        let pool = store.inner().pool().clone();
        let user = alice.user.clone();
        async move {
            sqlx::query("UPDATE twofactor_records SET record = $1 WHERE user_id = $2")
                .bind(text)
                .bind(user.as_str())
                .execute(&pool)
                .await
                .expect("write");
        }
    };
    // The same record spelled otherwise (a space; what a JSON column that reformats gives
    // back) decodes to the same record, but is not the text the tag was made over: refused.
    let spaced = json.replacen(",", ", ", 1);
    assert_eq!(
        twofactor::store::codec::encode_record(
            &twofactor::store::codec::decode_record(&spaced).expect("decodes")
        )
        .expect("encode"),
        json
    );
    write(spaced.clone()).await;
    assert!(failed_authentication(&store.load(&alice.user).await));
    // Through a store that only loads and saves records (no stored text), the sealed store
    // encodes the record again and checks the tag over that: the spaced row verifies there.
    let plain_only = SealedStore::new(common::stores::PlainOnly(store.inner().clone()), keyring());
    assert!(plain_only.load(&alice.user).await.expect("load").is_some());
    // Put back as written, it loads and logs in.
    write(json).await;
    let h = Harness::new(store, required);
    login_next_step(&h, &alice, &secret).await.expect("login");
}

#[test]
fn keyring_refuses_bad_keys_and_never_prints_them() {
    assert!(matches!(
        Keyring::new("k", &[0; 16]),
        Err(SealError::InvalidKey(_))
    ));
    assert!(matches!(
        Keyring::new("", &KEY_1),
        Err(SealError::InvalidKey(_))
    ));
    assert!(matches!(
        Keyring::new("a b", &KEY_1),
        Err(SealError::InvalidKey(_))
    ));
    assert!(matches!(
        keyring().with_old_key("k1", &KEY_2),
        Err(SealError::InvalidKey(_))
    ));
    let k = keyring();
    let debug = format!("{k:?}");
    assert!(
        debug.contains("k1") && !debug.contains("1, 1, 1"),
        "{debug}"
    );
    // Fresh nonces: the same plaintext seals differently every time.
    let a = k.seal(b"same", b"ad").expect("seal");
    let b = k.seal(b"same", b"ad").expect("seal");
    assert_ne!(a.nonce(), b.nonce());
    assert_ne!(a.ciphertext(), b.ciphertext());
    assert!(!format!("{a:?}").contains("ciphertext: ["));
    let key = Keyring::random_key().expect("rng");
    assert_ne!(*key, [0; 32]);
}
