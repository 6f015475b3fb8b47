//! Re-sealing (`seal::reseal`): every record of a store rewritten under the keyring's current
//! key, so that a retired key can be dropped from the ring; on memory, SQLite and PostgreSQL.
//!
//! - rotate, re-seal, drop the old key: every user still logs in, and the old key alone
//!   opens nothing;
//! - a re-seal is idempotent (current records are only read), reports what it could not
//!   rewrite (a stripped tag, a tampered row) and leaves those rows untouched;
//! - rows that never had a tag are adopted only when the options say so;
//! - a login racing a re-seal is never lost and never granted twice, whichever save wins.
#![cfg(all(feature = "seal", feature = "serde"))]

#[allow(unused_imports)]
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use common::flows::{Harness, code, required};
use twofactor::account::{Factor, LoginContext, ServiceKeys, Settings, TwoFactorRecord};
use twofactor::seal::{
    Keyring, ResealFailure, ResealOptions, ResealReport, SealedStore, SealedStoreError, reseal,
};
use twofactor::service::Error;
use twofactor::store::{ListUsers, SaveOutcome, UserStore, Version, Versioned};
use twofactor::{MemoryStore, Principal, Secret, UserId};

const K1: [u8; 32] = [1; 32];
const K2: [u8; 32] = [2; 32];

fn old_ring() -> Keyring {
    Keyring::new("k1", &K1).expect("key")
}

/// The new key current, the old one still in the ring.
fn rotated() -> Keyring {
    Keyring::new("k2", &K2)
        .expect("key")
        .with_old_key("k1", &K1)
        .expect("old key")
}

/// The new key alone: the old one dropped.
fn new_only() -> Keyring {
    Keyring::new("k2", &K2).expect("key")
}

/// Settings holding the code keys of `keys` (what the service builder's `keys` sets).
fn settings_with(keys: &ServiceKeys) -> Settings {
    let mut builder = Settings::builder().code_key(keys.code_key().clone());
    for k in keys.old_code_keys() {
        builder = builder.old_code_key(k.clone());
    }
    builder.build().expect("settings")
}

/// A service over `inner` sealed with `ring`, its code keys from the same ring.
fn service<S: UserStore + 'static>(
    inner: Arc<S>,
    ring: Keyring,
) -> Harness<SealedStore<Arc<S>, Keyring>> {
    let settings = settings_with(&ring.service_keys());
    Harness::with_settings(Arc::new(SealedStore::new(inner, ring)), required, settings)
}

/// One TOTP login at the next time step.
async fn login_next_step<S: UserStore>(
    h: &Harness<S>,
    who: &Principal,
    secret: &Secret,
) -> Result<(), Error> {
    h.clock.advance(30);
    let pending = h.challenge(who).await;
    h.finish_totp(&pending, &code(secret, h.now())).await
}

fn names(users: &[(UserId, ResealFailure<impl std::error::Error>)]) -> Vec<&str> {
    users.iter().map(|(u, _)| u.as_str()).collect()
}

/// Enrolled users under the old key, rotation, re-seal, the old key dropped: everyone logs
/// in; the old key alone opens nothing; recovery codes hashed under the old key's code key
/// are listed, and fail closed (never as a wrong code) once it is gone.
async fn rotate_reseal_drop<S: ListUsers + 'static>(inner: Arc<S>) {
    let enrolled: Vec<UserId> = (0..5).map(|i| UserId::new(format!("user-{i}"))).collect();
    let before = service(inner.clone(), old_ring());
    let mut secrets = Vec::new();
    for user in &enrolled {
        secrets.push(before.enroll(user).await);
    }
    // A user halfway through enrollment: a pending secret, sealed too.
    let pending_user = Principal::new("pending");
    let _ = before
        .tf
        .start_enrollment(
            &pending_user,
            "pending@example.com",
            twofactor::account::Reauthenticated::at(before.now()),
        )
        .await
        .expect("start enrollment");

    let ring = rotated();
    let report = reseal(&*inner, &ring, &ResealOptions::new().page_size(2))
        .await
        .expect("reseal");
    assert_eq!(
        (report.rewritten, report.already_current, report.adopted),
        (6, 0, 0),
        "{report:?}"
    );
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        report.old_code_hashes, enrolled,
        "their recovery codes are under the old key's code key"
    );
    // Again: nothing left to do, nothing written.
    let again = reseal(&*inner, &ring, &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!(
        (again.rewritten, again.already_current),
        (0, 6),
        "{again:?}"
    );
    let version = inner
        .load(&enrolled[0])
        .await
        .expect("load")
        .expect("row")
        .version;
    let _ = reseal(&*inner, &ring, &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!(
        inner
            .load(&enrolled[0])
            .await
            .expect("load")
            .expect("row")
            .version,
        version,
        "a current record is only read"
    );

    // The old key alone no longer opens anything: every record names the new one.
    let old_only = SealedStore::new(inner.clone(), old_ring());
    for user in enrolled.iter().chain([&pending_user.user]) {
        let loaded = old_only.load(user).await;
        assert!(
            matches!(
                &loaded,
                Err(SealedStoreError::Tampered {
                    source: twofactor::seal::SealError::UnknownKey { key_id },
                    ..
                }) if key_id == "k2"
            ),
            "{user}: {loaded:?}"
        );
    }

    // The old key dropped: every user logs in with their authenticator.
    let after = service(inner.clone(), new_only());
    for (user, (secret, _)) in enrolled.iter().zip(&secrets) {
        login_next_step(&after, &Principal::new(user.clone()), secret)
            .await
            .unwrap_or_else(|e| panic!("{user} logs in after the old key is dropped: {e:?}"));
    }
    assert!(
        after
            .tf
            .store()
            .load(&pending_user.user)
            .await
            .expect("the pending secret opens")
            .is_some()
    );
    // A recovery code hashed under the dropped key's code key: the typed error, before any
    // attempt is counted (the report said who must regenerate).
    after.clock.advance(30);
    let who = Principal::new(enrolled[1].clone());
    let pending = after.challenge(&who).await;
    let err = after
        .tf
        .finish_login(
            &pending,
            Factor::RecoveryCode(&secrets[1].1[0]),
            None,
            &LoginContext::new(),
        )
        .await
        .expect_err("its code key is gone");
    assert!(matches!(err, Error::UnknownCodeKey { .. }), "{err:?}");
}

#[tokio::test]
async fn memory_rotate_reseal_then_drop_the_old_key() {
    rotate_reseal_drop(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_rotate_reseal_then_drop_the_old_key() {
    let f = common::stores::SqliteFile::new().await;
    rotate_reseal_drop(common::stores::Fixture::store(&f)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotate_reseal_then_drop_the_old_key() {
    let f = common::stores::Postgres::new().await;
    rotate_reseal_drop(common::stores::Fixture::store(&f)).await;
}

/// A row as a table writer leaves it: `edit` applied to its JSON, the version bumped.
fn edit_row(store: &MemoryStore, user: &UserId, edit: impl FnOnce(&mut serde_json::Value)) {
    let (json, _) = store.json(user).expect("row");
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("json");
    edit(&mut v);
    let _ = store.insert_json(user, v.to_string());
}

#[tokio::test]
async fn rows_that_fail_authentication_are_reported_and_left_as_they_are() {
    let inner = Arc::new(MemoryStore::new());
    let h = service(inner.clone(), old_ring());
    let (good, stripped, tampered) = (
        UserId::new("good"),
        UserId::new("stripped"),
        UserId::new("tampered"),
    );
    for user in [&good, &stripped, &tampered] {
        let _ = h.enroll(user).await;
    }
    edit_row(&inner, &stripped, |v| v["mac"] = serde_json::Value::Null);
    edit_row(&inner, &tampered, |v| {
        v["code_checks"] = serde_json::json!([])
    });
    let rows_before = [inner.json(&stripped), inner.json(&tampered)];

    let report = reseal(&*inner, &rotated(), &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!(report.rewritten, 1, "{report:?}");
    assert!(!report.is_complete());
    assert_eq!(names(&report.failed), ["stripped", "tampered"]);
    assert!(matches!(
        report.failed[0].1,
        ResealFailure::Load(SealedStoreError::Untagged { .. })
    ));
    assert!(matches!(
        report.failed[1].1,
        ResealFailure::Load(SealedStoreError::Tampered { .. })
    ));
    // Never a secret in what an operator prints.
    let printed = format!("{report:?}");
    for (_, failure) in &report.failed {
        let _ = std::error::Error::source(failure).expect("the cause");
    }
    assert!(!printed.contains("\"ct\""), "{printed}");
    assert_eq!([inner.json(&stripped), inner.json(&tampered)], rows_before);
    // Even while adopting untagged rows, a stripped tag is not adopted.
    let options = ResealOptions::new()
        .accept_untagged(true)
        .accept_unsealed(true);
    let report = reseal(&*inner, &rotated(), &options).await.expect("reseal");
    assert_eq!(names(&report.failed), ["stripped", "tampered"]);
    assert_eq!([inner.json(&stripped), inner.json(&tampered)], rows_before);
}

/// The format-1 shape of a record: only the nine fields 0.1.0 wrote (no `v`, no tag), with no
/// recovery set and no mailed code (their later shapes differ).
fn as_format_1(v: &mut serde_json::Value) {
    *v = common::legacy::to_format_4(v.take());
    let mut out = serde_json::Map::new();
    for field in [
        "active",
        "pending",
        "devices",
        "challenge",
        "login_awaiting_enrollment",
        "code_checks",
        "mail_sends",
    ] {
        out.insert(field.to_owned(), v[field].clone());
    }
    out.insert("recovery".into(), serde_json::Value::Null);
    out.insert("mailed".into(), serde_json::Value::Null);
    *v = serde_json::Value::Object(out);
}

#[tokio::test]
async fn rows_that_never_had_a_tag_are_adopted_only_when_asked() {
    let inner = Arc::new(MemoryStore::new());
    // A 0.1.0 row (format 1, sealed, no tag) and a bare store's row (format 2, in the clear).
    let (old, bare) = (Principal::new("old"), Principal::new("bare"));
    let (old_secret, _) = service(inner.clone(), old_ring()).enroll(&old.user).await;
    edit_row(&inner, &old.user, as_format_1);
    let unsealed = Harness::new(inner.clone(), required);
    let (bare_secret, _) = unsealed.enroll(&bare.user).await;

    let report = reseal(&*inner, &rotated(), &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!(report.rewritten, 0);
    assert_eq!(names(&report.failed), ["bare", "old"]);

    let report = reseal(
        &*inner,
        &rotated(),
        &ResealOptions::new().accept_untagged(true),
    )
    .await
    .expect("reseal");
    assert_eq!((report.rewritten, report.adopted), (1, 1), "{report:?}");
    assert_eq!(
        names(&report.failed),
        ["bare"],
        "a bare row needs accept_unsealed"
    );
    assert!(matches!(
        report.failed[0].1,
        ResealFailure::Load(SealedStoreError::Unsealed { .. })
    ));

    let report = reseal(
        &*inner,
        &rotated(),
        &ResealOptions::new().accept_unsealed(true),
    )
    .await
    .expect("reseal");
    assert_eq!(
        (report.rewritten, report.adopted, report.already_current),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(report.is_complete());
    assert!(
        !inner
            .json(&bare.user)
            .expect("row")
            .0
            .contains(bare_secret.to_base32().as_str())
    );
    // Both open under the new key alone, with every switch off.
    let after = service(inner.clone(), new_only());
    login_next_step(&after, &old, &old_secret)
        .await
        .expect("the adopted 0.1.0 row");
    login_next_step(&after, &bare, &bare_secret)
        .await
        .expect("the adopted bare row");
}

/// A hook run once before the next save: the other side of a race, at the worst moment.
type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store that runs its hook (once) before the next save, between that save's load and the
/// compare-and-swap.
struct BeforeSave<S> {
    inner: Arc<S>,
    hook: Mutex<Option<Hook>>,
}

impl<S> BeforeSave<S> {
    fn new(inner: Arc<S>) -> Self {
        BeforeSave {
            inner,
            hook: Mutex::new(None),
        }
    }
    fn arm(&self, hook: impl Future<Output = ()> + Send + 'static) {
        *self.hook.lock().expect("lock") = Some(Box::pin(hook));
    }
}

impl<S: UserStore> UserStore for BeforeSave<S> {
    type Error = S::Error;
    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, S::Error> {
        self.inner.load(user).await
    }
    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, S::Error> {
        let hook = self.hook.lock().expect("lock").take();
        if let Some(hook) = hook {
            hook.await;
        }
        self.inner.save(user, record, expected).await
    }
}

impl<S: ListUsers> ListUsers for BeforeSave<S> {
    async fn list_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, S::Error> {
        self.inner.list_users(after, limit).await
    }
}

/// The login's save wins: the re-seal's compare-and-swap conflicts, it loads again and finds
/// the record current (the login sealed it under the new key). The login is not undone: its
/// code is refused when replayed.
#[tokio::test]
async fn a_login_that_saves_first_is_kept_and_not_granted_twice() {
    let inner = Arc::new(MemoryStore::new());
    let alice = Principal::new("alice");
    let (secret, _) = service(inner.clone(), old_ring()).enroll(&alice.user).await;
    let h = Arc::new(service(inner.clone(), rotated()));
    h.clock.advance(30);
    let step_code = code(&secret, h.now());

    let racing = BeforeSave::new(inner.clone());
    let (h2, who, c) = (h.clone(), alice.clone(), step_code.clone());
    racing.arm(async move {
        let pending = h2.challenge(&who).await;
        h2.finish_totp(&pending, &c)
            .await
            .expect("the racing login");
    });
    let version = inner
        .load(&alice.user)
        .await
        .expect("load")
        .expect("row")
        .version;
    let report = reseal(&racing, &rotated(), &ResealOptions::new())
        .await
        .expect("reseal");
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.rewritten, report.already_current),
        (0, 1),
        "{report:?}"
    );
    assert_eq!(h.successes(&alice.user), 1);
    assert_eq!(
        inner
            .load(&alice.user)
            .await
            .expect("load")
            .expect("row")
            .version,
        Version(version.0 + 1),
        "the login's save, and nothing over it"
    );
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.finish_totp(&pending, &step_code).await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(h.successes(&alice.user), 1);
    // Under the new key alone (at the step after the raced one).
    let after = service(inner.clone(), new_only());
    after.clock.advance(30);
    login_next_step(&after, &alice, &secret)
        .await
        .expect("login");
}

/// The re-seal's save wins: the login's compare-and-swap conflicts, the service reloads the
/// re-sealed record and checks the code again: granted once, replay refused.
#[tokio::test]
async fn a_login_racing_a_reseal_that_saves_first_is_granted_once() {
    let inner = Arc::new(MemoryStore::new());
    let alice = Principal::new("alice");
    let (secret, _) = service(inner.clone(), old_ring()).enroll(&alice.user).await;
    let racing = Arc::new(BeforeSave::new(inner.clone()));
    let ring = rotated();
    let h = Harness::with_settings(
        Arc::new(SealedStore::new(racing.clone(), ring)),
        required,
        settings_with(&rotated().service_keys()),
    );
    h.clock.advance(30);
    let step_code = code(&secret, h.now());
    let pending = h.challenge(&alice).await;

    let reports: Arc<Mutex<Vec<ResealReport<twofactor::store::MemoryStoreError>>>> = Arc::default();
    let (store, out) = (inner.clone(), reports.clone());
    racing.arm(async move {
        let report = reseal(&*store, &rotated(), &ResealOptions::new())
            .await
            .expect("reseal");
        out.lock().expect("lock").push(report);
    });
    h.finish_totp(&pending, &step_code)
        .await
        .expect("granted after the conflict");
    let report = reports
        .lock()
        .expect("lock")
        .pop()
        .expect("the re-seal ran");
    assert_eq!((report.rewritten, report.already_current), (1, 0));
    assert_eq!(h.successes(&alice.user), 1);
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.finish_totp(&pending, &step_code).await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(h.successes(&alice.user), 1);
    // Everything under the new key now.
    let again = reseal(&*inner, &rotated(), &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!((again.rewritten, again.already_current), (0, 1));
}

/// Many logins and re-seals at once over a store that yields between load and save: every
/// login is granted exactly once, nothing is lost, and in the end every record is current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_and_reseals_lose_nothing() {
    use common::counting::{Counting, Pause};
    let inner = Arc::new(MemoryStore::new());
    let users: Vec<Principal> = (0..12)
        .map(|i| Principal::new(format!("u{i:02}")))
        .collect();
    let enroll = service(inner.clone(), old_ring());
    let mut secrets = Vec::new();
    for who in &users {
        secrets.push(enroll.enroll(&who.user).await.0);
    }
    let counted = Arc::new(Counting::new(inner.clone(), Pause::Yield));
    let h = Arc::new(Harness::with_settings(
        Arc::new(SealedStore::new(counted.clone(), rotated())),
        required,
        settings_with(&rotated().service_keys()),
    ));
    h.clock.advance(30);
    let now = h.now();

    let mut tasks = Vec::new();
    for (who, secret) in users.iter().zip(&secrets) {
        let (h, who, c) = (h.clone(), who.clone(), code(secret, now));
        tasks.push(tokio::spawn(async move {
            let pending = h.challenge(&who).await;
            h.finish_totp(&pending, &c).await.map(|()| who)
        }));
    }
    let resealers: Vec<_> = (0..2)
        .map(|_| {
            let store = counted.clone();
            tokio::spawn(async move {
                reseal(&*store, &rotated(), &ResealOptions::new().page_size(3))
                    .await
                    .expect("reseal")
            })
        })
        .collect();
    for task in tasks {
        let who = task.await.expect("task").expect("every login is granted");
        assert_eq!(h.successes(&who.user), 1);
    }
    for r in resealers {
        let report = r.await.expect("task");
        assert!(report.is_complete(), "{report:?}");
    }
    let last = reseal(&*inner, &rotated(), &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!(
        (last.rewritten, last.already_current),
        (0, users.len()),
        "{last:?}"
    );
    // No code granted twice: each replay is refused.
    for (who, secret) in users.iter().zip(&secrets) {
        let pending = h.challenge(who).await;
        assert!(matches!(
            h.finish_totp(&pending, &code(secret, now)).await,
            Err(Error::InvalidCode)
        ));
        assert_eq!(h.successes(&who.user), 1);
    }
}

/// A record sealed and tagged before subkeys (see tests/fixtures/sealed_pre_subkeys.md) is not
/// current even under the same key: re-sealing rewrites it in the subkey forms.
#[tokio::test]
async fn records_in_the_forms_before_subkeys_are_rewritten_under_the_same_key() {
    let inner = MemoryStore::new();
    let lena = UserId::new("lena");
    let _ = inner.insert_json(&lena, "{}");
    assert_eq!(
        inner.insert_json(&lena, include_str!("fixtures/sealed_pre_subkeys.json")),
        Version(2),
        "the version its tag binds"
    );
    let ring = Keyring::new("legacy-1", &[0x5e; 32]).expect("key");
    let report = reseal(&inner, &ring, &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!(
        (report.rewritten, report.already_current),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(
        report.old_code_hashes,
        [lena],
        "its recovery codes are under the legacy code key"
    );
    let again = reseal(&inner, &ring, &ResealOptions::new())
        .await
        .expect("reseal");
    assert_eq!((again.rewritten, again.already_current), (0, 1));
}
