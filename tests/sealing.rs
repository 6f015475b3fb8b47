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

use common::flows::{Harness, code, optional, required};
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
    // Nor can the secret be disabled or rotated with a TOTP code. (Disabling is asked under
    // an opt-in policy: where 2FA is required it is refused before any code is looked at.)
    let now = twofactor::account::Reauthenticated::at(h.now());
    let totp = code(&secret, h.now());
    let err =
        h.tf.disable(&alice, now, twofactor::account::Factor::Totp(&totp))
            .await
            .expect_err("no disable where 2FA is required");
    assert!(matches!(err, Error::RequiredByPolicy), "{err:?}");
    let opt_in = Harness::new(bare.clone(), optional);
    opt_in.clock.set(h.now());
    let err = opt_in
        .tf
        .disable(&alice, now, twofactor::account::Factor::Totp(&totp))
        .await
        .expect_err("no disable without the cipher");
    assert!(matches!(err, Error::SecretSealed), "{err:?}");
    let err =
        h.tf.start_rotation(&alice.user, "alice", totp.as_str(), now)
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

/// The (first) authenticator's sealed secret in `user`'s row of the memory store under the
/// wrapper.
fn active_secret(inner: &MemoryStore, user: &UserId) -> serde_json::Value {
    let (json, _) = inner.json(user).expect("row");
    let row: serde_json::Value = serde_json::from_str(&json).expect("json");
    common::legacy::first_secret(&row).clone()
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

// --- Key hygiene: a subkey per purpose, legacy forms read, tags never stripped (issue 13) ---

/// Settings holding the code keys of `keys` (what the service builder's `keys` sets).
fn settings_with(keys: &twofactor::account::ServiceKeys) -> twofactor::account::Settings {
    let mut builder = twofactor::account::Settings::builder().code_key(keys.code_key().clone());
    for k in keys.old_code_keys() {
        builder = builder.old_code_key(k.clone());
    }
    builder.build().expect("settings")
}

/// `HKDF-SHA256(key, "twofactor hkdf salt v1", label)`, computed here independently of the
/// crate (the derivation `Keyring` documents).
fn hkdf(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"twofactor hkdf salt v1"), key)
        .expand(label, &mut out)
        .expect("32 bytes");
    out
}

/// Opens the active secret of a stored row (JSON) of `user` with XChaCha20-Poly1305 under
/// `key` directly.
fn open_active_with(json: &str, user: &str, key: &[u8]) -> Option<Vec<u8>> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    let hex = |s: &serde_json::Value| -> Vec<u8> {
        let s = s.as_str().expect("hex");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    };
    let sealed = common::legacy::first_secret(&v);
    let nonce: [u8; 24] = hex(&sealed["nonce"]).try_into().expect("24-byte nonce");
    let ct = hex(&sealed["ct"]);
    let aad = format!("twofactor/secret/v1\0active\0{user}");
    chacha20poly1305::XChaCha20Poly1305::new_from_slice(key)
        .expect("key")
        .decrypt(
            &chacha20poly1305::XNonce::from(nonce),
            Payload {
                msg: &ct,
                aad: aad.as_bytes(),
            },
        )
        .ok()
}

const LEGACY_FIXTURE: &str = include_str!("fixtures/sealed_pre_subkeys.json");
const LEGACY_KEY: [u8; 32] = [0x5e; 32];
const LEGACY_SECRET: &str = "AMNM4AJGH2FB3U7QX7XDBXGPVNKTH6QU";
const LEGACY_RECOVERY: &str = "whxr-7zhc-9wsv-62ky";

/// The legacy fixture as `lena`'s row at version 2 (what its tag binds).
async fn legacy_row(inner: &SqliteStore) {
    sqlx::query("INSERT INTO twofactor_records (user_id, version, record) VALUES ($1, 2, $2)")
        .bind("lena")
        .bind(LEGACY_FIXTURE)
        .execute(inner.pool())
        .await
        .expect("insert the fixture");
}

/// Fails on 8b57fda: `Keyring::service_keys` does not exist there. Replayed with that commit's
/// API (`code_key(keyring.code_key())`), the logins pass but the re-saved secret is sealed
/// under the raw key, which the last assertions refuse: the raw key both encrypted the
/// secrets and keyed the MACs.
#[tokio::test]
async fn records_sealed_before_subkeys_still_open_codes_still_check_and_saves_use_the_subkeys() {
    let inner = SqliteStore::in_memory().await.expect("sqlite");
    legacy_row(&inner).await;
    let lena = Principal::new("lena");
    let keyring = Keyring::new("legacy-1", &LEGACY_KEY).expect("key");
    let keys = keyring.service_keys();
    let store = Arc::new(SealedStore::new(inner.clone(), keyring));
    let h = common::flows::Harness::with_settings(store.clone(), required, settings_with(&keys));
    let secret = twofactor::Secret::from_base32(LEGACY_SECRET).expect("secret");

    // The legacy tag verifies and the raw-key ciphertext opens.
    login_next_step(&h, &lena, &secret)
        .await
        .expect("TOTP login on a record sealed before subkeys");
    // The recovery codes were hashed under the legacy code key: they still check.
    h.clock.advance(30);
    let pending = h.challenge(&lena).await;
    h.tf.finish_login(
        &pending,
        twofactor::account::Factor::RecoveryCode(LEGACY_RECOVERY),
        None,
        &LoginContext::new(),
    )
    .await
    .expect("a recovery code hashed under the legacy code key");

    // Saved again: sealed under the secret-encryption subkey, never under the raw key.
    let json = stored_json(&inner, &lena.user).await;
    let subkey = hkdf(&LEGACY_KEY, b"twofactor/v2/secret-encryption");
    assert_eq!(
        open_active_with(&json, "lena", &subkey).as_deref(),
        Some(secret.expose_secret()),
        "the new ciphertext opens under the subkey"
    );
    assert_eq!(open_active_with(&json, "lena", &LEGACY_KEY), None);
    let before: serde_json::Value = serde_json::from_str(LEGACY_FIXTURE).expect("json");
    assert!(
        open_active_with(LEGACY_FIXTURE, "lena", &LEGACY_KEY).is_some(),
        "the fixture itself is sealed under the raw key"
    );
    let after: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_ne!(before["mac"]["tag"], after["mac"]["tag"]);
}

#[test]
fn the_keyrings_service_keys_are_a_direct_derivation_of_its_current_key() {
    use twofactor::account::ServiceKeys;
    for bytes in [[1u8; 32], [0x5e; 32], *b"0123456789abcdef0123456789abcdef"] {
        let direct = ServiceKeys::derive(&bytes).expect("derive");
        for ring in [
            Keyring::new("a", &bytes).expect("key"),
            Keyring::new("b", &bytes)
                .expect("key")
                .with_old_key("c", &KEY_2)
                .expect("old"),
        ] {
            let keys = ring.service_keys();
            assert_eq!(keys.code_key(), direct.code_key());
            assert_eq!(keys.code_key().id(), direct.code_key().id());
            // The ring's derivation never hands out the sealing key itself.
            assert_ne!(keys.code_key().expose_secret(), &bytes);
            assert!(!keys.old_code_keys().contains(direct.code_key()));
        }
    }
    // The older key's code-hash subkey is kept, so are both legacy code keys.
    let rotated = Keyring::new("new", &KEY_2)
        .expect("key")
        .with_old_key("old", &KEY_1)
        .expect("old");
    let old_subkey = ServiceKeys::derive(&KEY_1).expect("derive");
    assert!(
        rotated
            .service_keys()
            .old_code_keys()
            .contains(old_subkey.code_key())
    );
    assert_eq!(rotated.service_keys().old_code_keys().len(), 3);
}

/// The row of an enrolled user with its tag removed and 2FA turned off, as a table writer
/// would write it.
fn stripped(json: &str, turn_off: bool) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).expect("json");
    v["mac"] = serde_json::Value::Null;
    if turn_off {
        v["authenticators"] = serde_json::Value::Array(vec![]);
        v["recovery"] = serde_json::Value::Null;
    }
    v.to_string()
}

async fn write_row(inner: &SqliteStore, user: &UserId, json: &str) {
    sqlx::query("UPDATE twofactor_records SET record = $1 WHERE user_id = $2")
        .bind(json)
        .bind(user.as_str())
        .execute(inner.pool())
        .await
        .expect("write the row");
}

/// The attack: a table writer strips the tag of a tagged row and turns 2FA off while an
/// operator migrates 0.1.0 rows with `accept_untagged(true)`. Fails on 8b57fda: there the row
/// loaded (any untagged row did) and the login was granted on the password alone.
#[tokio::test]
async fn a_stripped_tag_is_refused_even_while_accepting_untagged_rows() {
    let alice = Principal::new("alice");
    let (store, _) = enrolled_on_sqlite(&alice).await;
    let inner = store.inner().clone();
    let json = stored_json(&inner, &alice.user).await;

    for turn_off in [true, false] {
        write_row(&inner, &alice.user, &stripped(&json, turn_off)).await;
        let migrating = Arc::new(SealedStore::new(inner.clone(), keyring()).accept_untagged(true));
        let loaded = migrating.load(&alice.user).await;
        assert!(
            matches!(loaded, Err(SealedStoreError::Untagged { .. })),
            "turn_off {turn_off}: {loaded:?}"
        );
        let h = Harness::new(migrating, common::flows::optional);
        let decision = h.tf.start_login(&alice, None, &LoginContext::new()).await;
        assert!(
            matches!(decision, Err(Error::Store(_))),
            "never granted on the password alone: {decision:?}"
        );
    }
    // While adopting a bare store: a row with a sealed secret was written by a sealed store,
    // so a missing tag was stripped; refused too.
    write_row(&inner, &alice.user, &stripped(&json, false)).await;
    let adopting = SealedStore::new(inner.clone(), keyring()).accept_unsealed(true);
    assert!(matches!(
        adopting.load(&alice.user).await,
        Err(SealedStoreError::Untagged { .. })
    ));
    // The row as the store wrote it still loads.
    write_row(&inner, &alice.user, &json).await;
    assert!(store.load(&alice.user).await.expect("load").is_some());
}

/// The format-1 shape of a record: only the nine fields 0.1.0 wrote (no `v`, no tag), with no
/// recovery set and no mailed code (their format-2 shapes differ).
fn as_format_1(json: &str) -> String {
    let v = common::legacy::to_format_4(serde_json::from_str(json).expect("json"));
    let mut out = serde_json::Map::new();
    for field in [
        "active",
        "pending",
        "recovery",
        "devices",
        "mailed",
        "challenge",
        "login_awaiting_enrollment",
        "code_checks",
        "mail_sends",
    ] {
        out.insert(field.to_owned(), v[field].clone());
    }
    out.insert("recovery".into(), serde_json::Value::Null);
    out.insert("mailed".into(), serde_json::Value::Null);
    serde_json::Value::Object(out).to_string()
}

#[tokio::test]
async fn format_1_rows_load_untagged_while_migrating_and_are_tagged_by_their_next_save() {
    let alice = Principal::new("alice");
    let (store, secret) = enrolled_on_sqlite(&alice).await;
    let inner = store.inner().clone();
    let format_1 = as_format_1(&stored_json(&inner, &alice.user).await);
    assert!(!format_1.contains("\"v\""), "{format_1}");
    write_row(&inner, &alice.user, &format_1).await;

    assert!(matches!(
        store.load(&alice.user).await,
        Err(SealedStoreError::Untagged { .. })
    ));
    let migrating = Arc::new(SealedStore::new(inner.clone(), keyring()).accept_untagged(true));
    let h = Harness::new(migrating, required);
    login_next_step(&h, &alice, &secret)
        .await
        .expect("a format-1 row loads untagged while migrating");
    // Tagged by that save: the strict store opens it.
    assert!(store.load(&alice.user).await.expect("tagged").is_some());
}

#[tokio::test]
async fn a_bare_stores_rows_are_adopted_through_accept_unsealed_not_accept_untagged() {
    // Written by a service on the bare store: format 2, secrets in the clear, no tag.
    let inner = SqliteStore::in_memory().await.expect("sqlite");
    let bare = Harness::new(Arc::new(inner.clone()), required);
    let alice = Principal::new("alice");
    let (secret, _) = bare.enroll(&alice.user).await;
    // A user with a record but no secret (a throttled, never enrolled user).
    let bob = UserId::new("bob");
    let _ = inner
        .save(&bob, &twofactor::account::TwoFactorRecord::default(), None)
        .await
        .expect("save");

    let untagged_only = SealedStore::new(inner.clone(), keyring()).accept_untagged(true);
    assert!(matches!(
        untagged_only.load(&alice.user).await,
        Err(SealedStoreError::Unsealed { .. })
    ));
    assert!(matches!(
        untagged_only.load(&bob).await,
        Err(SealedStoreError::Untagged { .. })
    ));

    let adopting = Arc::new(SealedStore::new(inner.clone(), keyring()).accept_unsealed(true));
    assert!(adopting.load(&bob).await.expect("bare row").is_some());
    let h = Harness::new(adopting, required);
    h.clock.advance(60);
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("login while adopting");
    let strict = SealedStore::new(inner.clone(), keyring());
    assert!(
        strict
            .load(&alice.user)
            .await
            .expect("sealed and tagged")
            .is_some()
    );
    assert!(
        !stored_json(&inner, &alice.user)
            .await
            .contains(secret.to_base32().as_str())
    );
}

/// A cipher over a [`Keyring`] that counts the record tags it checks and the secrets it
/// opens (to see when a `SealedStore` answers from its cache of opened rows), whose keyring
/// can be replaced at run time (a KMS withdrawing a key), and which lets the cache remember
/// its verdicts (a generation that changes with the keyring) or not (the trait's default).
struct TestCipher {
    ring: std::sync::RwLock<Keyring>,
    generation: std::sync::atomic::AtomicU64,
    cacheable: bool,
    verifies: std::sync::atomic::AtomicUsize,
    opens: std::sync::atomic::AtomicUsize,
}

impl TestCipher {
    fn new(ring: Keyring) -> Arc<Self> {
        Self::with(ring, true)
    }

    fn with(ring: Keyring, cacheable: bool) -> Arc<Self> {
        Arc::new(TestCipher {
            ring: std::sync::RwLock::new(ring),
            generation: 0.into(),
            cacheable,
            verifies: 0.into(),
            opens: 0.into(),
        })
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.ring.read().expect("ring")
    }

    /// Replaces the keyring at run time (a new generation: what was cached is checked again).
    fn swap(&self, ring: Keyring) {
        *self.ring.write().expect("ring") = ring;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// (tags checked, secrets opened) so far.
    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.verifies.load(SeqCst), self.opens.load(SeqCst))
    }
}

impl SecretCipher for TestCipher {
    fn seal(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<twofactor::seal::SealedSecret, SealError> {
        self.ring().seal(plaintext, associated_data)
    }
    fn open(
        &self,
        sealed: &twofactor::seal::SealedSecret,
        associated_data: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError> {
        self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.ring().open(sealed, associated_data)
    }
    fn open_with_form(
        &self,
        sealed: &twofactor::seal::SealedSecret,
        associated_data: &[u8],
    ) -> Result<(zeroize::Zeroizing<Vec<u8>>, bool), SealError> {
        self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.ring().open_with_form(sealed, associated_data)
    }
    fn tag_record(&self, message: &[u8]) -> Result<twofactor::seal::RecordTag, SealError> {
        self.ring().tag_record(message)
    }
    fn verify_record(
        &self,
        tag: &twofactor::seal::RecordTag,
        message: &[u8],
    ) -> Result<(), SealError> {
        self.verifies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.ring().verify_record(tag, message)
    }
    fn cache_generation(&self) -> Option<u64> {
        self.cacheable
            .then(|| self.generation.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// The record's stored encoding (secrets as loaded, in the clear), to compare two loads.
fn encoded(record: &twofactor::account::TwoFactorRecord) -> String {
    twofactor::store::codec::encode_record(record).expect("encode")
}

/// What a load gave, to compare a store with the cache against one without: the version and
/// the whole record (secrets included), or the error.
fn outcome<E: std::fmt::Debug>(
    loaded: Result<Option<twofactor::store::Versioned>, SealedStoreError<E>>,
) -> String {
    match loaded {
        Ok(Some(v)) => format!("v{} {}", v.version.0, encoded(&v.record)),
        Ok(None) => "none".to_owned(),
        Err(err) => format!("{err:?}"),
    }
}

async fn set_row(inner: &SqliteStore, user: &UserId, json: &str, version: i64) {
    sqlx::query(
        "INSERT INTO twofactor_records (user_id, record, version) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET record = excluded.record, version = excluded.version",
    )
    .bind(user.as_str())
    .bind(json)
    .bind(version)
    .execute(inner.pool())
    .await
    .expect("write the row");
}

/// The row of `user` as the table holds it: text and version.
async fn table_row(inner: &SqliteStore, user: &UserId) -> (String, i64) {
    let version = row(inner, user).await.version.0;
    let version = i64::try_from(version).expect("version");
    (stored_json(inner, user).await, version)
}

/// An enrolled alice on a sealed SQLite store whose cipher counts: the inner store, the
/// sealed one, its cipher, the service and alice's secret.
async fn counted_alice() -> (
    SqliteStore,
    Arc<SealedStore<SqliteStore, Arc<TestCipher>>>,
    Arc<TestCipher>,
    Harness<SealedStore<SqliteStore, Arc<TestCipher>>>,
    twofactor::Secret,
) {
    let inner = SqliteStore::in_memory().await.expect("sqlite");
    let cipher = TestCipher::new(keyring());
    let store = Arc::new(SealedStore::new(inner.clone(), cipher.clone()));
    let h = Harness::new(store.clone(), required);
    let (secret, _) = h.enroll(&UserId::new("alice")).await;
    (inner, store, cipher, h, secret)
}

/// The cache of opened rows answers exactly the bytes, at exactly the version, that the
/// store authenticated or wrote for that user, and what it answers is what a store without
/// the cache returns; logins go through it without checking a tag or opening a secret.
#[tokio::test]
async fn the_opened_row_cache_serves_only_the_bytes_it_authenticated() {
    let alice = Principal::new("alice");
    let (inner, store, cipher, h, secret) = counted_alice().await;

    // The save cached what it wrote: the load checks nothing, and returns what a store
    // without a cache returns.
    let before = cipher.counts();
    let cached = row(&*store, &alice.user).await;
    assert_eq!(cipher.counts(), before, "served from the cache");
    let fresh = SealedStore::new(inner.clone(), keyring()).cache_capacity(0);
    assert_eq!(
        outcome::<std::convert::Infallible>(Ok(Some(cached))),
        outcome(fresh.load(&alice.user).await)
    );
    for _ in 0..3 {
        login_next_step(&h, &alice, &secret).await.expect("login");
    }
    assert_eq!(cipher.counts(), before, "logins: no tag check, no opening");
    let (json, v) = table_row(&inner, &alice.user).await;

    // The same text at another version: checked again, and refused (the tag binds it).
    let (verifies, _) = cipher.counts();
    set_row(&inner, &alice.user, &json, v + 1).await;
    assert!(failed_authentication(&store.load(&alice.user).await));
    assert_eq!(cipher.counts().0, verifies + 1, "checked again");
    // Put back, it is checked again (the refusal dropped the entry), loads, and is cached.
    set_row(&inner, &alice.user, &json, v).await;
    assert!(store.load(&alice.user).await.expect("load").is_some());
    assert!(store.load(&alice.user).await.expect("load").is_some());
    assert_eq!(cipher.counts().0, verifies + 2);

    // The same text and version under another user: never alice's cached row.
    let bob = UserId::new("bob");
    set_row(&inner, &bob, &json, v).await;
    assert!(failed_authentication(&store.load(&bob).await));
    assert_eq!(cipher.counts().0, verifies + 3);

    // Turned off, every load checks and opens.
    let off_cipher = TestCipher::new(keyring());
    let off = SealedStore::new(inner.clone(), off_cipher.clone()).cache_capacity(0);
    for _ in 0..3 {
        assert!(off.load(&alice.user).await.expect("load").is_some());
    }
    assert_eq!(off_cipher.counts(), (3, 3));
    assert_eq!(off.cached_users(), 0);
}

/// A table writer rewrites a row the store has cached: one byte changed anywhere in it (every
/// position) is refused, as it is without the cache; the row put back loads again.
#[tokio::test]
async fn any_byte_of_a_cached_row_changed_is_refused() {
    let alice = UserId::new("alice");
    let (inner, store, cipher, _h, _) = counted_alice().await;
    let (json, v) = table_row(&inner, &alice).await;
    let (verifies, _) = cipher.counts();
    assert!(store.load(&alice).await.expect("load").is_some());
    assert_eq!(cipher.counts().0, verifies, "cached before the edits");

    let bytes = json.as_bytes();
    for at in 0..bytes.len() {
        let mut edited = bytes.to_vec();
        edited[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        let edited = String::from_utf8(edited).expect("ascii");
        set_row(&inner, &alice, &edited, v).await;
        let loaded = store.load(&alice).await;
        assert!(loaded.is_err(), "byte {at} changed, loaded: {edited}");
        // The row as written loads again.
        set_row(&inner, &alice, &json, v).await;
        assert!(store.load(&alice).await.expect("load").is_some());
    }
    // And a byte added at the end, a field's spacing changed: other bytes, refused too.
    for edited in [format!("{json} "), json.replacen("\":", "\" :", 1)] {
        set_row(&inner, &alice, &edited, v).await;
        assert!(store.load(&alice).await.is_err(), "{edited}");
    }
}

/// A table writer writes back rows the user really had (the current one, older ones, each
/// at every version): a store with the cache answers each exactly as a store without it,
/// and only the genuine rows it checked are answered from the cache.
#[tokio::test]
async fn restored_rows_load_exactly_as_without_the_cache() {
    let alice = Principal::new("alice");
    let (inner, store, cipher, h, secret) = counted_alice().await;
    let mut rows = vec![table_row(&inner, &alice.user).await];
    for _ in 0..3 {
        login_next_step(&h, &alice, &secret).await.expect("login");
        rows.push(table_row(&inner, &alice.user).await);
    }
    let off = SealedStore::new(inner.clone(), keyring()).cache_capacity(0);
    let (verifies, _) = cipher.counts();
    let mut loads = 0;
    for (text, _) in &rows {
        for (_, version) in &rows {
            set_row(&inner, &alice.user, text, *version).await;
            for _ in 0..2 {
                let with = outcome(store.load(&alice.user).await);
                let without = outcome(off.load(&alice.user).await);
                assert_eq!(with, without, "text of one version at v{version}");
                loads += 1;
            }
        }
    }
    // Each genuine row was checked on its first load and answered from the cache on its
    // second; every other row was checked both times.
    assert_eq!(cipher.counts().0 - verifies, loads - rows.len());
}

/// Another server (its own `SealedStore` and cache over the same table) writes: this
/// server's next load sees that write, and a code the other server accepted is refused here.
#[tokio::test]
async fn another_servers_write_is_seen_through_the_cache() {
    let alice = Principal::new("alice");
    let (inner, store_a, _, a, secret) = counted_alice().await;
    let store_b = Arc::new(SealedStore::new(inner.clone(), keyring()));
    let b = Harness::new(store_b.clone(), required);
    let off = SealedStore::new(inner.clone(), keyring()).cache_capacity(0);
    for round in 0..3 {
        // A logs in (and caches what it wrote), then B, one step later.
        login_next_step(&a, &alice, &secret).await.expect("A");
        b.clock.set(a.now());
        login_next_step(&b, &alice, &secret).await.expect("B");
        a.clock.set(b.now());
        assert_eq!(
            outcome(store_a.load(&alice.user).await),
            outcome(off.load(&alice.user).await),
            "round {round}: A sees B's write"
        );
        // B's code again, at A: a replay.
        let pending = a.challenge(&alice).await;
        assert!(
            matches!(
                a.finish_totp(&pending, &code(&secret, a.now())).await,
                Err(Error::InvalidCode)
            ),
            "round {round}: replayed at A"
        );
    }
}

/// Alice's row cached by a store whose keyring is k1, then re-sealed under k2 by another
/// process (k1 kept as an old key): the inner store, the sealed store, its cipher, the
/// number of tags checked so far, and the k1 row as the table held it (text, version).
async fn cached_under_k1_then_resealed() -> (
    SqliteStore,
    Arc<SealedStore<SqliteStore, Arc<TestCipher>>>,
    Arc<TestCipher>,
    usize,
    (String, i64),
) {
    let alice = UserId::new("alice");
    let (inner, store, cipher, _h, _) = counted_alice().await;
    let old = table_row(&inner, &alice).await;
    let (verifies, _) = cipher.counts();
    assert!(store.load(&alice).await.expect("load").is_some());
    assert_eq!(cipher.counts().0, verifies, "cached under k1");
    let rotated = Keyring::new("k2", &KEY_2)
        .expect("key")
        .with_old_key("k1", &KEY_1)
        .expect("old key");
    let report = twofactor::seal::reseal(&inner, &rotated, &twofactor::seal::ResealOptions::new())
        .await
        .expect("reseal");
    assert!(report.is_complete());
    assert_ne!(table_row(&inner, &alice).await, old, "rewritten");
    (inner, store, cipher, verifies, old)
}

/// Key rotation with a `Keyring`: a rotation is a new keyring, so a new `SealedStore` with a
/// cache of its own. After a re-seal and the old key dropped, a row sealed under the old key
/// and written back is refused, even though the store with the old key had it cached.
#[tokio::test]
async fn a_store_with_a_new_keyring_trusts_nothing_an_old_one_cached() {
    let alice = UserId::new("alice");
    let (inner, old_store, _, _, (old_json, old_v)) = cached_under_k1_then_resealed().await;
    let new_store = SealedStore::new(inner.clone(), Keyring::new("k2", &KEY_2).expect("key"));
    assert!(new_store.load(&alice).await.expect("resealed").is_some());

    // The attack: the row sealed under k1 written back.
    set_row(&inner, &alice, &old_json, old_v).await;
    assert!(unknown_key(&new_store.load(&alice).await, "k1"));
    // The old store (k1 still its key) answers as it would without a cache.
    let old_off = SealedStore::new(inner.clone(), keyring()).cache_capacity(0);
    assert_eq!(
        outcome(old_store.load(&alice).await),
        outcome(old_off.load(&alice).await)
    );
}

/// Key rotation inside a running cipher (a KMS that withdraws a key): what was cached under
/// the old keys is not trusted once the cipher's generation changes, and a cipher that does
/// not say (the trait's default) has nothing cached at all.
#[tokio::test]
async fn the_cache_does_not_outlive_a_key_withdrawn_at_run_time() {
    let alice = UserId::new("alice");
    let (inner, store, cipher, verifies, (old_json, old_v)) = cached_under_k1_then_resealed().await;
    // Re-sealed under k2 (elsewhere), then k1 withdrawn from this server's cipher.
    let (new_json, new_v) = table_row(&inner, &alice).await;
    cipher.swap(Keyring::new("k2", &KEY_2).expect("key"));

    // The attack: the k1 row this store has cached, written back.
    set_row(&inner, &alice, &old_json, old_v).await;
    assert!(unknown_key(&store.load(&alice).await, "k1"));
    assert_eq!(cipher.counts().0, verifies + 1, "checked again");
    set_row(&inner, &alice, &new_json, new_v).await;
    assert!(store.load(&alice).await.expect("k2 row").is_some());

    // A cipher that does not vouch for its verdicts: every load checks and opens.
    let silent = TestCipher::with(keyring(), false);
    let other = SqliteStore::in_memory().await.expect("sqlite");
    set_row(&other, &alice, &old_json, old_v).await;
    let unvouched = SealedStore::new(other, silent.clone());
    for _ in 0..3 {
        assert!(unvouched.load(&alice).await.expect("load").is_some());
    }
    assert_eq!(silent.counts(), (3, 3));
    assert_eq!(unvouched.cached_users(), 0);
}

/// A row let through untagged while migrating is never cached, and changing what the store
/// accepts empties the cache: once migration is turned off, that row is refused.
#[tokio::test]
async fn rows_let_through_while_migrating_are_not_cached() {
    let alice = UserId::new("alice");
    let (inner, store, _, _h, _) = counted_alice().await;
    assert_eq!(store.cached_users(), 1);
    let (json, v) = table_row(&inner, &alice).await;
    set_row(&inner, &alice, &as_format_1(&json), v).await;

    let cipher = TestCipher::new(keyring());
    let migrating = SealedStore::new(inner.clone(), cipher.clone()).accept_untagged(true);
    for _ in 0..2 {
        assert!(migrating.load(&alice).await.expect("format 1").is_some());
    }
    assert_eq!(migrating.cached_users(), 0);
    assert_eq!(cipher.counts(), (0, 2), "no tag to check; opened each time");
    let strict = migrating.accept_untagged(false);
    assert!(matches!(
        strict.load(&alice).await,
        Err(SealedStoreError::Untagged { .. })
    ));

    // A tagged row cached, then the store reconfigured: nothing carried over.
    set_row(&inner, &alice, &json, v).await;
    let store = SealedStore::new(inner.clone(), keyring());
    assert!(store.load(&alice).await.expect("load").is_some());
    assert_eq!(store.cached_users(), 1);
    assert_eq!(store.accept_unsealed(true).cached_users(), 0);
}

/// What a save caches is what a load of the written row returns (both secret slots: an
/// authenticator being replaced), and a save from the cached record keeps its ciphertexts.
#[tokio::test]
async fn a_save_caches_what_a_load_of_its_row_returns() {
    let alice = Principal::new("alice");
    let (inner, store, cipher, h, secret) = counted_alice().await;
    h.clock.advance(30);
    let current = code(&secret, h.now());
    let started =
        h.tf.start_rotation(
            &alice.user,
            "alice",
            current.as_str(),
            twofactor::account::Reauthenticated::at(h.now()),
        )
        .await
        .expect("start rotation");
    let (verifies, opens) = cipher.counts();
    let cached = row(&*store, &alice.user).await;
    assert_eq!(cipher.counts(), (verifies, opens), "served from the cache");
    let off = SealedStore::new(inner.clone(), keyring()).cache_capacity(0);
    let checked = row(&off, &alice.user).await;
    let both = encoded(&cached.record);
    assert_eq!(both, encoded(&checked.record));
    let pending = twofactor::KeyUri::parse(started.uri())
        .expect("uri")
        .into_secret();
    assert!(both.contains(pending.to_base32().as_str()), "pending slot");
    assert!(both.contains(secret.to_base32().as_str()), "active slot");

    // Saved again as cached: the same ciphertexts (kept, not sealed anew).
    let before = stored_json(&inner, &alice.user).await;
    let saved = store
        .save(&alice.user, &cached.record, Some(cached.version))
        .await
        .expect("save");
    assert!(matches!(saved, SaveOutcome::Saved(_)));
    let after = stored_json(&inner, &alice.user).await;
    let ciphertexts = |json: &str| {
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        (
            v["active"]["secret"].clone(),
            v["pending"]["secret"].clone(),
        )
    };
    assert_eq!(ciphertexts(&before), ciphertexts(&after));
    assert!(ciphertexts(&after).1.is_object(), "{after}");
}

/// The cache is bounded: past its capacity an entry is evicted (that user's next load is
/// checked again), and `0` keeps nothing.
#[tokio::test]
async fn the_opened_row_cache_is_bounded() {
    let (inner, _, _, _h, _) = counted_alice().await;
    let writer = SealedStore::new(inner.clone(), keyring()).cache_capacity(0);
    let record = row(&writer, &UserId::new("alice")).await.record;
    let users: Vec<UserId> = (0..10).map(|i| UserId::new(format!("u{i}"))).collect();
    for user in &users {
        let _ = writer.save(user, &record, None).await.expect("save");
    }
    for capacity in [0, 1, 3, 100] {
        let cipher = TestCipher::new(keyring());
        let store = SealedStore::new(inner.clone(), cipher.clone()).cache_capacity(capacity);
        for user in users.iter().chain(&users) {
            assert!(store.load(user).await.expect("load").is_some());
            assert!(store.cached_users() <= capacity);
        }
        // Twenty loads of ten users: at most `capacity` of the second pass are answered
        // from the cache (all ten when they fit).
        let checked = cipher.counts().0;
        assert!(
            checked >= 20 - capacity.min(10) && checked <= 20,
            "capacity {capacity}: {checked}"
        );
        if capacity >= users.len() {
            assert_eq!(checked, 10);
        }
    }
    let store = SealedStore::new(inner.clone(), keyring()).cache_capacity(1);
    let alice = UserId::new("alice");
    assert!(store.load(&alice).await.expect("load").is_some());
    assert_eq!(store.cached_users(), 1);
}

/// The cache holds opened secrets: they zeroize when dropped, and neither the store's
/// `Debug` nor a loaded record's prints them (or the stored text).
#[tokio::test]
async fn cached_secrets_zeroize_and_never_print() {
    fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroized_on_drop::<twofactor::Secret>();

    let alice = UserId::new("alice");
    let (inner, store, _, _h, secret) = counted_alice().await;
    let loaded = row(&*store, &alice).await;
    assert_eq!(store.cached_users(), 1);
    let json = stored_json(&inner, &alice).await;
    let hex: String = secret
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for printed in [format!("{store:?}"), format!("{loaded:?}")] {
        for secret_text in [secret.to_base32().as_str(), hex.as_str(), json.as_str()] {
            assert!(!printed.contains(secret_text), "{printed}");
        }
        assert!(!printed.contains("\"mac\""), "{printed}");
    }
    assert!(format!("{store:?}").contains("cache_capacity"));
}
