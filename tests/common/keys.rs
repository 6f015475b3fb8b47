//! A software security key (webauthn-authenticator-rs's `SoftToken`, CTAP2 in memory) that
//! answers the service's JSON options as a browser would, and the flows every store runs with
//! it (`tests/store_conformance.rs`).

use std::sync::Arc;

use serde_json::Value;
use twofactor::account::{
    KeyChallenge, LoginContext, Reauthenticated, RelyingParty, SecondFactorProof, SecurityKeyAdded,
    Settings,
};
use twofactor::service::Error;
use twofactor::store::{SecurityKeyIndex, UserStore};
use twofactor::vocabulary::{FactorKind, SecurityKeyFailure};
use twofactor::{Principal, UserId};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use super::flows::{Harness, Policy};

/// The relying party of the tests: `example.com`, served from `https://example.com`.
pub const ORIGIN: &str = "https://example.com";

pub fn relying_party() -> RelyingParty {
    RelyingParty::new("example.com", ORIGIN, "Example").expect("a relying party")
}

/// Settings with security keys on.
pub fn settings() -> Settings {
    Settings::builder()
        .security_keys(relying_party())
        .build()
        .expect("settings")
}

/// A harness with security keys on.
pub fn harness<S: UserStore>(store: Arc<S>, policy: Policy) -> Harness<S> {
    Harness::with_settings(store, policy, settings())
}

/// A software security key.
pub struct SoftKey {
    inner: WebauthnAuthenticator<SoftToken>,
    origin: Url,
}

impl SoftKey {
    /// A new key that answers for `https://example.com`.
    pub fn new() -> Self {
        Self::at(ORIGIN)
    }

    /// A key whose browser is at `origin` (a phishing site, for the tests that need one).
    pub fn at(origin: &str) -> Self {
        let (token, _) = SoftToken::new(true).expect("a soft token");
        SoftKey {
            inner: WebauthnAuthenticator::new(token),
            origin: Url::parse(origin).expect("an origin"),
        }
    }

    /// The browser's answer to `navigator.credentials.create(options)`, as JSON.
    pub fn register(&mut self, options: &str) -> String {
        let options: CreationChallengeResponse =
            serde_json::from_str(options).expect("creation options");
        let answer = self
            .inner
            .do_registration(self.origin.clone(), options)
            .expect("the key registers");
        serde_json::to_string(&answer).expect("JSON")
    }

    /// The browser's answer to `navigator.credentials.get(options)`, as JSON.
    pub fn sign(&mut self, options: &str) -> String {
        self.try_sign(options).expect("the key signs")
    }

    /// As [`sign`](Self::sign), `None` when the key holds none of the allowed credentials.
    pub fn try_sign(&mut self, options: &str) -> Option<String> {
        let options: RequestChallengeResponse =
            serde_json::from_str(options).expect("request options");
        let answer = self
            .inner
            .do_authentication(self.origin.clone(), options)
            .ok()?;
        Some(serde_json::to_string(&answer).expect("JSON"))
    }

    /// The same key answering from another origin.
    pub fn moved_to(mut self, origin: &str) -> Self {
        self.origin = Url::parse(origin).expect("an origin");
        self
    }
}

impl Default for SoftKey {
    fn default() -> Self {
        Self::new()
    }
}

/// The credential id (base64url, as stored) an answer claims.
pub fn raw_id(answer: &str) -> String {
    let v: Value = serde_json::from_str(answer).expect("JSON");
    v["rawId"].as_str().expect("rawId").to_owned()
}

impl<S: UserStore> Harness<S> {
    /// Registers `key` as `label` for `who`, who has no authenticator yet (the key turns 2FA
    /// on): the registration.
    pub async fn register_first_key(
        &self,
        who: &Principal,
        key: &mut SoftKey,
        label: &str,
    ) -> SecurityKeyAdded
    where
        S: SecurityKeyIndex,
    {
        let options = self
            .tf
            .start_security_key_registration(
                who,
                label,
                who.user.as_str(),
                who.user.as_str(),
                Reauthenticated::at(self.now()),
                None,
            )
            .await
            .expect("start registration");
        let answer = key.register(options.options_json());
        self.tf
            .finish_security_key_registration(&who.user, &answer)
            .await
            .expect("finish registration")
    }

    /// A step-up of `user` with `key`: the proof.
    pub async fn step_up(&self, user: &UserId, key: &mut SoftKey) -> SecondFactorProof {
        let options = self
            .tf
            .start_security_key_step_up(user)
            .await
            .expect("start step-up");
        self.tf
            .finish_security_key_step_up(
                user,
                &key.sign(options.options_json()),
                &LoginContext::new(),
            )
            .await
            .expect("finish step-up")
    }

    /// Starts registering a key named `label` for `who`, with a fresh password check and
    /// `proof`: the options.
    pub async fn start_key(
        &self,
        who: &Principal,
        label: &str,
        proof: &SecondFactorProof,
    ) -> KeyChallenge {
        self.tf
            .start_security_key_registration(
                who,
                label,
                who.user.as_str(),
                who.user.as_str(),
                Reauthenticated::at(self.now()),
                Some(proof.into()),
            )
            .await
            .expect("start registration")
    }

    /// Registers `key` as `label` beside `who`'s authenticators, with `proof`.
    pub async fn add_key(
        &self,
        who: &Principal,
        key: &mut SoftKey,
        label: &str,
        proof: &SecondFactorProof,
    ) -> SecurityKeyAdded
    where
        S: SecurityKeyIndex,
    {
        let options = self.start_key(who, label, proof).await;
        self.tf
            .finish_security_key_registration(&who.user, &key.register(options.options_json()))
            .await
            .expect("finish registration")
    }

    /// A login of `who` with `key`: the password step, then the key.
    pub async fn key_login(
        &self,
        who: &Principal,
        key: &mut SoftKey,
    ) -> Result<twofactor::LoginGranted, Error> {
        let pending = self.challenge(who).await;
        assert!(pending.accepts(FactorKind::SecurityKey), "{pending:?}");
        let options = self.tf.start_security_key_login(&pending).await?;
        let answer = key.sign(options.options_json());
        self.tf
            .finish_security_key_login(&pending, &answer, None, &LoginContext::new())
            .await
    }
}

/// Loads `user`'s record as JSON, lets `edit` change it, and saves it back (through the
/// store's own save: a sealed store tags it, as if the library had written it).
pub async fn edit_record<S: UserStore>(store: &S, user: &UserId, edit: impl FnOnce(&mut Value)) {
    let loaded = store.load(user).await.expect("load").expect("a record");
    let mut json = serde_json::to_value(&loaded.record).expect("JSON");
    edit(&mut json);
    let record = serde_json::from_value(json).expect("still a record");
    let saved = store
        .save(user, &record, Some(loaded.version))
        .await
        .expect("save");
    assert!(matches!(saved, twofactor::store::SaveOutcome::Saved(_)));
}

/// The stored credentials of `record` (JSON), in order.
pub fn stored_keys(record: &Value) -> Vec<Value> {
    record["authenticators"]
        .as_array()
        .expect("authenticators")
        .iter()
        .filter_map(|a| a["factor"].get("security_key").cloned())
        .collect()
}

/// The flows every store with a [`SecurityKeyIndex`] runs: a key registered, logged in with
/// (the record round trips with the updated counter), a second user refused the first one's
/// credential id (found through the store), and the key removed.
pub async fn security_keys_on_store<S: SecurityKeyIndex + 'static>(store: Arc<S>) {
    let h = harness(store.clone(), super::flows::required);
    let alice = Principal::new("alice");
    let bob = Principal::new("bob");
    let mut alices_key = SoftKey::new();
    let added = h
        .register_first_key(&alice, &mut alices_key, "YubiKey")
        .await;
    assert_eq!(added.recovery_codes().map(|c| c.len()), Some(10));
    h.clock.advance(30);
    let granted = h
        .key_login(&alice, &mut alices_key)
        .await
        .expect("key login");
    assert_eq!(granted.factor, FactorKind::SecurityKey);
    assert_eq!(granted.authenticator.as_ref(), Some(added.info().id()));

    // Bob registers a key whose credential id is, in the store, already Alice's: refused,
    // and nothing of Bob's is saved.
    let mut bobs_key = SoftKey::new();
    h.clock.advance(30);
    let options =
        h.tf.start_security_key_registration(
            &bob,
            "Bob's key",
            "bob",
            "Bob",
            Reauthenticated::at(h.now()),
            None,
        )
        .await
        .expect("start");
    let answer = bobs_key.register(options.options_json());
    let claimed = raw_id(&answer);
    edit_record(&*store, &alice.user, |json| {
        let a = &mut json["authenticators"][0]["factor"]["security_key"]["credential"]["cred"];
        a["cred_id"] = Value::String(claimed.clone());
    })
    .await;
    assert_eq!(
        store
            .security_key_owner(&b64(&claimed))
            .await
            .expect("look-up"),
        Some(alice.user.clone())
    );
    let before = store
        .load(&bob.user)
        .await
        .expect("load")
        .map(|v| v.version);
    assert!(matches!(
        h.tf.finish_security_key_registration(&bob.user, &answer)
            .await,
        Err(Error::SecurityKey(SecurityKeyFailure::AlreadyRegistered))
    ));
    let after = store
        .load(&bob.user)
        .await
        .expect("load")
        .map(|v| v.version);
    assert_eq!(before, after, "nothing saved");
    assert_eq!(
        store.security_key_owner(&[1, 2, 3]).await.expect("look-up"),
        None
    );

    // A record with a key (and its counter) round trips through the store.
    let loaded = store
        .load(&alice.user)
        .await
        .expect("load")
        .expect("record");
    assert!(loaded.record.has_security_key());
    assert_eq!(loaded.record.authenticators().len(), 1);

    // Without a TOTP authenticator, login offers the key and the recovery codes only.
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    assert_eq!(
        pending.methods(),
        [FactorKind::SecurityKey, FactorKind::RecoveryCode]
    );
}

/// base64url (no padding) to bytes.
pub fn b64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}
