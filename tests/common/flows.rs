//! The domain flows through the [`TwoFactor`] service, generic over the store: every store
//! runs them (`tests/store_conformance.rs`), so a store that breaks replay protection, one-time
//! recovery codes or the throttle under concurrency fails here, not in production.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Barrier;

use super::counting::{Counting, Pause};
use twofactor::account::Enrolled;
use twofactor::account::TwoFactorRecord;
use twofactor::account::{
    Factor, FailureReason, LoginContext, LoginDecision, Reauthenticated, Settings,
};
use twofactor::audit::AuditKind;
use twofactor::service::{Error, TwoFactor};
use twofactor::store::UserStore;
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, EnrollmentStatus, KeyUri, MemoryStore, Principal, Requirement, Secret, Totp, UserId,
};
use twofactor::{LoginGranted, PendingLogin};

/// A Unix time at the start of a 30 s step.
pub const T0: u64 = 1_700_000_010;

/// A policy as a plain function.
pub type Policy = fn(&Principal, &EnrollmentStatus, u64) -> Requirement;

/// 2FA required for everyone.
pub fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}

/// 2FA if enrolled.
pub fn optional(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::optional()
}

/// The service type the flows drive: the store under test behind an `Arc`.
pub type Service<S> =
    TwoFactor<Arc<S>, Arc<RecordingMailer>, Policy, Arc<ManualClock>, Arc<RecordingAudit>>;

/// A service on `store` with a manual clock at [`T0`] and recording mailer and audit.
pub struct Harness<S: UserStore> {
    pub tf: Arc<Service<S>>,
    pub clock: Arc<ManualClock>,
    pub audit: Arc<RecordingAudit>,
}

impl<S: UserStore> Harness<S> {
    pub fn new(store: Arc<S>, policy: Policy) -> Self {
        Self::with_settings(store, policy, Settings::default())
    }

    pub fn with_settings(store: Arc<S>, policy: Policy, settings: Settings) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let audit = Arc::new(RecordingAudit::new());
        let tf = TwoFactor::builder(store)
            .mailer(Arc::new(RecordingMailer::new()))
            .policy(policy)
            .clock(clock.clone())
            .audit(audit.clone())
            // Every harness of every test shares these keys: a ticket one hands out is good
            // at another (as between the app servers of one deployment). Keys carried by
            // `settings` (a test's own code or ticket key) take precedence.
            .keys(twofactor::testing::test_keys())
            .settings(settings)
            .build();
        Harness {
            tf: Arc::new(tf),
            clock,
            audit,
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Enrolls `user` now: the authenticator's secret and the recovery codes.
    pub async fn enroll(&self, user: &UserId) -> (Secret, Vec<String>) {
        let started = self
            .tf
            .start_enrollment(
                &Principal::new(user.clone()),
                "user@example.com",
                Reauthenticated::at(self.now()),
            )
            .await
            .expect("start enrollment");
        let secret = KeyUri::parse(started.uri())
            .expect("a valid key URI")
            .into_secret();
        let enrolled = self
            .tf
            .finish_enrollment(user, &code(&secret, self.now()))
            .await
            .expect("finish enrollment");
        (secret, codes_of(&enrolled))
    }

    /// Forced set-up after `MustEnroll`: enrolls `pending`'s user with the ticket, which
    /// completes the login it stands for. The authenticator's secret and the recovery codes.
    pub async fn enroll_forced(&self, pending: &PendingLogin) -> (Secret, Vec<String>) {
        let (secret, enrolled) = self.forced_enrollment(pending).await;
        assert!(
            enrolled.login_completed(),
            "forced set-up completes the login"
        );
        (secret, codes_of(&enrolled))
    }

    /// Forced set-up after `MustEnroll`, now: the authenticator's secret and what the
    /// confirmation handed out.
    pub async fn forced_enrollment(&self, pending: &PendingLogin) -> (Secret, Enrolled) {
        let started = self
            .tf
            .start_forced_enrollment(pending, "user@example.com")
            .await
            .expect("start forced enrollment");
        let secret = KeyUri::parse(started.uri())
            .expect("a valid key URI")
            .into_secret();
        let enrolled = self
            .tf
            .finish_forced_enrollment(pending, &code(&secret, self.now()))
            .await
            .expect("finish forced enrollment");
        (secret, enrolled)
    }

    /// A login of `who` now, with the code `secret` shows now: its grant.
    pub async fn totp_login(&self, who: &Principal, secret: &Secret) -> LoginGranted {
        let pending = self.challenge(who).await;
        self.tf
            .finish_login(
                &pending,
                Factor::Totp(&code(secret, self.now())),
                None,
                &LoginContext::new(),
            )
            .await
            .expect("TOTP login")
    }

    /// Adds another authenticator named `label` to enrolled `user`, proving the second
    /// factor with `verification` (a proof, or a code from an existing authenticator), and
    /// confirms it with a code from the new one: its secret and id.
    pub async fn add_authenticator(
        &self,
        user: &UserId,
        label: &str,
        verification: twofactor::account::Verification<'_>,
    ) -> (Secret, twofactor::account::AuthenticatorId) {
        let started = self
            .tf
            .start_adding_authenticator(
                user,
                label,
                "user@example.com",
                verification,
                Reauthenticated::at(self.now()),
            )
            .await
            .expect("start adding an authenticator");
        let secret = KeyUri::parse(started.uri())
            .expect("a valid key URI")
            .into_secret();
        let added = self
            .tf
            .finish_adding_authenticator(user, &code(&secret, self.now()))
            .await
            .expect("finish adding an authenticator");
        assert_eq!(added.info().label(), label.trim());
        (secret, added.info().id().clone())
    }

    /// `start_login`, expecting a challenge: its pending login.
    pub async fn challenge(&self, who: &Principal) -> PendingLogin {
        let decision = self
            .tf
            .start_login(who, None, &LoginContext::new())
            .await
            .expect("begin login");
        match decision {
            LoginDecision::Challenge { pending } => {
                assert_eq!(pending.principal(), who);
                pending
            }
            other => panic!("{other:?}"),
        }
    }

    /// The pending login of a TOTP challenge for `who` at this time, as a host keeps it from
    /// an earlier `start_login` (for the calls where `start_login` cannot run, or to play
    /// an attacker who holds one): a genuine ticket (tickets cannot be made up any more),
    /// handed out by another service with the same keys (another app server of the
    /// deployment) on a store of its own where `who` is enrolled. Its ticket generation is
    /// that of a record never revoked.
    pub async fn pending_for(&self, who: &Principal) -> PendingLogin {
        let elsewhere = Harness::new(Arc::new(MemoryStore::new()), required);
        elsewhere.clock.set(self.now());
        elsewhere.enroll(&who.user).await;
        let pending = elsewhere.challenge(who).await;
        assert_eq!(
            pending.methods(),
            &[
                twofactor::vocabulary::FactorKind::Totp,
                twofactor::vocabulary::FactorKind::RecoveryCode
            ]
        );
        pending
    }

    /// `finish_login` with a TOTP code.
    pub async fn finish_totp(&self, pending: &PendingLogin, code: &str) -> Result<(), Error> {
        self.tf
            .finish_login(pending, Factor::Totp(code), None, &LoginContext::new())
            .await
            .map(drop)
    }

    fn count_events(&self, user: &UserId, what: impl Fn(&AuditKind) -> bool) -> usize {
        self.audit
            .kinds_for(user)
            .iter()
            .filter(|k| what(k))
            .count()
    }

    pub fn successes(&self, user: &UserId) -> usize {
        self.count_events(user, |k| matches!(k, AuditKind::LoginSucceeded { .. }))
    }

    pub fn wrong_codes(&self, user: &UserId) -> usize {
        self.count_events(user, |k| {
            matches!(
                k,
                AuditKind::LoginFailed {
                    reason: FailureReason::WrongCode,
                    ..
                }
            )
        })
    }
}

/// The recovery codes an enrollment handed out.
pub fn codes_of(enrolled: &Enrolled) -> Vec<String> {
    let codes = enrolled.recovery_codes().expose_secret();
    codes.into_iter().map(str::to_owned).collect()
}

/// The code `secret` shows at `now`.
pub fn code(secret: &Secret, now: u64) -> String {
    Totp::default().generate(secret, now).to_string()
}

/// A well-formed code other than `good`.
pub fn wrong(good: &str) -> String {
    if good == "000000" { "000001" } else { "000000" }.to_owned()
}

/// Two records for the store suite: the empty one and a real, enrolled one (two
/// authenticators with their secrets, labels, TOTP parameters and last used steps, hashed
/// recovery codes, one used, a throttle counter).
pub async fn sample_records() -> (TwoFactorRecord, TwoFactorRecord) {
    let store = Arc::new(MemoryStore::new());
    let h = Harness::new(store.clone(), required);
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("login");
    let pending = h.challenge(&alice).await;
    h.tf.finish_login(
        &pending,
        Factor::RecoveryCode(&codes[3]),
        None,
        &LoginContext::new(),
    )
    .await
    .expect("recovery code");
    // A second authenticator, used once: two of them with their own steps.
    h.clock.advance(30);
    let (spare, _) = h
        .add_authenticator(
            &alice.user,
            "Ersatz-Telefon",
            Factor::Totp(&code(&secret, h.now())).into(),
        )
        .await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&spare, h.now()))
        .await
        .expect("login with the second authenticator");
    let record = store
        .load(&alice.user)
        .await
        .expect("load")
        .expect("record")
        .record;
    assert!(record.is_enrolled());
    assert_eq!(record.authenticators().len(), 2);
    (TwoFactorRecord::default(), record)
}

/// Several authenticators on one store: a second phone is added (with a code of the first),
/// codes of either log in and name theirs, each is accepted once per step of its own
/// authenticator, the first is removed with a code of the second (the lost phone), and every
/// state survives the store (labels, ids, replay steps, clock offsets, last uses).
pub async fn several_authenticators<S: UserStore>(store: Arc<S>) {
    let h = Harness::new(store.clone(), required);
    let alice = Principal::new("alice");
    let (phone, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let (spare, spare_id) = h
        .add_authenticator(
            &alice.user,
            "Spare phone ✓",
            Factor::Totp(&code(&phone, h.now())).into(),
        )
        .await;
    let listed = h.tf.authenticators(&alice.user).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].label(), twofactor::account::DEFAULT_LABEL);
    assert_eq!(listed[1].label(), "Spare phone ✓");
    assert_eq!(listed[1].id(), &spare_id);
    let phone_id = listed[0].id().clone();
    // Each authenticator logs in, named in the grant; each code once per its own step.
    for (secret, id) in [(&phone, &phone_id), (&spare, &spare_id)] {
        h.clock.advance(30);
        let c = code(secret, h.now());
        let pending = h.challenge(&alice).await;
        let granted =
            h.tf.finish_login(&pending, Factor::Totp(&c), None, &LoginContext::new())
                .await
                .expect("login");
        assert_eq!(granted.authenticator.as_ref(), Some(id));
        let pending = h.challenge(&alice).await;
        assert!(matches!(
            h.finish_totp(&pending, &c).await,
            Err(Error::InvalidCode)
        ));
    }
    // The spare's step is used; the phone's code of the same step still works.
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&phone, h.now()))
        .await
        .expect("the phone's own step is fresh");
    // What the store keeps, read back.
    let record = store
        .load(&alice.user)
        .await
        .expect("load")
        .expect("row")
        .record;
    assert_eq!(
        record.authenticators(),
        h.tf.authenticators(&alice.user).await.unwrap()
    );
    assert_eq!(record.authenticators().len(), 2);
    // The phone is lost: removed with the spare's code; nothing else changes.
    h.clock.advance(30);
    h.tf.remove_authenticator(
        &alice,
        &phone_id,
        Reauthenticated::at(h.now()),
        Factor::Totp(&code(&spare, h.now())),
    )
    .await
    .expect("remove the lost phone");
    let listed = h.tf.authenticators(&alice.user).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id(), &spare_id);
    assert_eq!(
        h.tf.status(&alice.user).await.unwrap().recovery_codes_left,
        10
    );
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.finish_totp(&pending, &code(&phone, h.now())).await,
        Err(Error::InvalidCode)
    ));
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&spare, h.now()))
        .await
        .expect("the spare still works");
    let pending = h.challenge(&alice).await;
    h.tf.finish_login(
        &pending,
        Factor::RecoveryCode(&codes[0]),
        None,
        &LoginContext::new(),
    )
    .await
    .expect("the recovery codes still work");
}

/// Rows as formats 1 to 4 wrote them (`tests/fixtures`), put in a SQL table as they are: each
/// loads as one authenticator labelled "Authenticator app" whose id is the same at every
/// load, logs in with its app's code, and is saved as format 5 keeping that id.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub async fn old_rows_load_and_log_in<F: super::stores::SqlFixture>(f: &F)
where
    F::Store: 'static,
{
    const ROWS: [(&str, i64, &str, Option<&str>); 4] = [
        (
            "v1",
            3,
            include_str!("../fixtures/record_v1_full.json"),
            None,
        ),
        (
            "v2",
            6,
            include_str!("../fixtures/record_v2_full.json"),
            Some("LSQN7VAUUJYNVTEZT75CWCQEDSSEMBQZ"),
        ),
        (
            "v3",
            7,
            include_str!("../fixtures/record_v3_full.json"),
            Some("G44YTA5GZUORIR6GPHPKXVSRC264MYGW"),
        ),
        (
            "v4",
            7,
            include_str!("../fixtures/record_v4_full.json"),
            Some("W6E23PQ34U6PZSOTQVHPTT3AIHTN2PSP"),
        ),
    ];
    let store = f.store();
    for (name, version, json, secret) in ROWS {
        let who = Principal::new(format!("old-{name}"));
        f.write_row(&who.user, version, json).await;
        let first = store.load(&who.user).await.expect("load").expect("row");
        let again = store.load(&who.user).await.expect("load").expect("row");
        let list = first.record.authenticators();
        assert_eq!(list.len(), 1, "{name}");
        assert_eq!(list[0].label(), twofactor::account::DEFAULT_LABEL);
        assert_eq!(list, again.record.authenticators(), "{name}: a stable id");
        assert_eq!(first.version.0, version as u64);
        let Some(secret) = secret else { continue };
        let h = Harness::new(store.clone(), required);
        h.clock.set(1_700_000_130);
        let secret = Secret::from_base32(secret).expect("secret");
        let pending = h.challenge(&who).await;
        let granted =
            h.tf.finish_login(
                &pending,
                Factor::Totp(&code(&secret, h.now())),
                None,
                &LoginContext::new(),
            )
            .await
            .expect("login on an old row");
        assert_eq!(granted.authenticator.as_ref(), Some(list[0].id()), "{name}");
        let saved = store.load(&who.user).await.expect("load").expect("row");
        assert_eq!(saved.version.0, version as u64 + 1);
        assert_eq!(saved.record.authenticators()[0].id(), list[0].id());
        assert_eq!(
            twofactor::store::codec::encode_record(&saved.record)
                .expect("encode")
                .get(..6),
            Some(r#"{"v":8"#)
        );
    }
}

/// A record of a user under a mailed-code policy: a code delivered at [`T0`], then a resend
/// at `T0 + 60` the mailer could not send (stored as not sent, off the send limit, counted
/// as an attempt).
pub async fn sample_mail_record() -> TwoFactorRecord {
    let store = Arc::new(MemoryStore::new());
    let tf = TwoFactor::builder(store.clone())
        .mailer(twofactor::testing::FlakyMailer::default())
        .policy(mail_code as Policy)
        .clock(Arc::new(ManualClock::new(T0)))
        .keys(twofactor::testing::test_keys())
        .build();
    let marc = Principal::new("marc");
    let decision = tf
        .start_login(&marc, None, &LoginContext::new())
        .await
        .expect("begin");
    let pending = decision.into_pending().expect("a mailed-code login");
    tf.clock().set(T0 + 60);
    tf.mailer().set_down(true);
    assert!(matches!(
        tf.resend_mailed_code(&pending, &LoginContext::new()).await,
        Err(Error::Mailer(_))
    ));
    let record = store
        .load(&marc.user)
        .await
        .expect("load")
        .expect("record")
        .record;
    #[cfg(feature = "serde")]
    {
        let json = twofactor::store::codec::encode_record(&record).expect("encode");
        assert!(json.contains(r#""delivery":"not_sent""#), "{json}");
        assert!(
            json.contains(r#""mail_attempts":[1700000010,1700000070]"#),
            "{json}"
        );
    }
    record
}

/// 2FA required; without an authenticator, a code is mailed.
pub fn mail_code(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: twofactor::WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

/// Enroll, log in with a TOTP code, the same code again is refused (replay), the next step's
/// code works; the store holds the last used step.
pub async fn enroll_login_replay<S: UserStore>(store: Arc<S>) {
    let h = Harness::new(store.clone(), required);
    let alice = Principal::new("alice");
    let decision =
        h.tf.start_login(&alice, None, &LoginContext::new())
            .await
            .expect("begin");
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    // Forced set-up with the ticket completes the blocked login.
    let (secret, _) = h.enroll_forced(&pending).await;
    let enrolled = store
        .load(&alice.user)
        .await
        .expect("load")
        .expect("record");
    assert!(enrolled.record.is_enrolled());

    h.clock.advance(30);
    let now = h.now();
    let pending = h.challenge(&alice).await;
    let typed = code(&secret, now);
    h.finish_totp(&pending, &typed)
        .await
        .expect("login with TOTP");
    let after = store
        .load(&alice.user)
        .await
        .expect("load")
        .expect("record");
    assert_eq!(after.record.last_used_step(), Some(now / 30));
    assert!(after.version > enrolled.version);

    let pending = h.challenge(&alice).await;
    assert!(
        matches!(
            h.finish_totp(&pending, &typed).await,
            Err(Error::InvalidCode)
        ),
        "a replayed code must be refused"
    );
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("the next step's code");
    // The blocked first login, completed by enrolling, and the two logins with a code.
    assert_eq!(h.successes(&alice.user), 3);
}

/// A full login with a TOTP code is one write: `start_login` answers `Challenge` without
/// saving (the stored version is unchanged), `finish_login` saves the used step once. The
/// ticket is then used up: a second `finish_login` with it is refused (`LoginExpired`) with
/// nothing counted or saved, even with a fresh code; a replayed code on a new ticket is
/// refused and counted.
pub async fn full_login_is_one_write<S: UserStore>(store: Arc<S>) {
    let h = Harness::new(store.clone(), required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    let version = |store: Arc<S>, user: UserId| async move {
        store
            .load(&user)
            .await
            .expect("load")
            .expect("record")
            .version
    };
    h.clock.advance(30);
    let before = version(store.clone(), alice.user.clone()).await;
    let pending = h.challenge(&alice).await;
    assert_eq!(
        version(store.clone(), alice.user.clone()).await,
        before,
        "start_login wrote the record for a TOTP challenge"
    );
    let typed = code(&secret, h.now());
    h.finish_totp(&pending, &typed).await.expect("login");
    let after = version(store.clone(), alice.user.clone()).await;
    assert_eq!(after.0, before.0 + 1, "a full login is exactly one save");

    // The same ticket again (before this ticket was single-use, a fresh code logged in with
    // it until its deadline): refused, with the replayed code and with a fresh one alike,
    // and nothing is counted or saved.
    assert!(matches!(
        h.finish_totp(&pending, &typed).await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(version(store.clone(), alice.user.clone()).await, after);
    // On a new ticket the replay is refused and counted (one save), a fresh code is accepted.
    let again = h.challenge(&alice).await;
    assert!(matches!(
        h.finish_totp(&again, &typed).await,
        Err(Error::InvalidCode)
    ));
    h.clock.advance(30);
    assert!(matches!(
        h.finish_totp(&pending, &code(&secret, h.now())).await,
        Err(Error::LoginExpired)
    ));
    h.finish_totp(&again, &code(&secret, h.now()))
        .await
        .expect("a fresh code on the new ticket");
    let loaded = store
        .load(&alice.user)
        .await
        .expect("load")
        .expect("record");
    assert_eq!(loaded.record.last_used_step(), Some(h.now() / 30));
    assert_eq!(loaded.version.0, after.0 + 2);
}

/// A recovery code logs in once, never twice.
pub async fn recovery_code_once<S: UserStore>(store: Arc<S>) {
    let h = Harness::new(store.clone(), required);
    let alice = Principal::new("alice");
    let (_, codes) = h.enroll(&alice.user).await;
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
    let loaded = store
        .load(&alice.user)
        .await
        .expect("load")
        .expect("record");
    assert_eq!(loaded.record.recovery_codes_left(), codes.len() - 1);

    let pending = h.challenge(&alice).await;
    let again =
        h.tf.finish_login(
            &pending,
            Factor::RecoveryCode(&codes[0]),
            None,
            &LoginContext::new(),
        )
        .await;
    assert!(matches!(again, Err(Error::InvalidCode)), "used twice");
}

/// The default throttle: 5 wrong codes, then even the right code is not checked until the
/// window has passed; the counters live in the store.
pub async fn throttle<S: UserStore>(store: Arc<S>) {
    let h = Harness::new(store, required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let good = code(&secret, h.now());
    let limit = Settings::default().code_checks_per_window() as usize;
    for _ in 0..limit {
        assert!(matches!(
            h.finish_totp(&pending, &wrong(&good)).await,
            Err(Error::InvalidCode)
        ));
    }
    assert!(matches!(
        h.finish_totp(&pending, &good).await,
        Err(Error::Throttled { .. })
    ));
    let status = h.tf.status(&alice.user).await.expect("status");
    let retry = status.throttled_until.expect("throttled");
    h.clock.set(retry);
    let pending = h.challenge(&alice).await;
    h.finish_totp(&pending, &code(&secret, retry))
        .await
        .expect("login after the window");
    assert_eq!(h.wrong_codes(&alice.user), limit);
}

/// The user's record cannot be read: the login is refused with a store error, whatever the
/// policy (with `optional`, "no record" would mean "log in without 2FA").
pub async fn unreadable_record_refuses_login<S: UserStore>(store: Arc<S>, user: &UserId) {
    for policy in [optional as Policy, required as Policy] {
        let h = Harness::new(store.clone(), policy);
        let who = Principal::new(user.as_str());
        match h.tf.start_login(&who, None, &LoginContext::new()).await {
            Err(Error::Store(_)) => {}
            other => panic!("start_login on an unreadable record: {other:?}"),
        }
        let pending = h.pending_for(&who).await;
        match h.finish_totp(&pending, "123456").await {
            Err(Error::Store(_)) => {}
            other => panic!("finish_login on an unreadable record: {other:?}"),
        }
    }
}

/// `clients` tasks submit the same valid code `submissions` times in all, in bursts (each
/// submission a `start_login` then `finish_login`, as an attacker who knows the password
/// and saw the code would), for `steps` time steps: exactly one acceptance per step.
///
/// The throttle is opened to its maximum so that as many checks as possible race; the
/// compare-and-swap on the last used step is all that keeps the second acceptance out.
pub async fn same_code_storm<S: UserStore + 'static>(
    store: Arc<S>,
    clients: usize,
    submissions: usize,
    steps: u64,
) {
    let settings = Settings::builder()
        .code_checks_per_window(twofactor::account::Settings::MAX_CODE_CHECKS_PER_WINDOW)
        .code_check_window(twofactor::account::Settings::MIN_WINDOW)
        .build()
        .expect("settings");
    let window = settings.code_check_window();
    let store = Arc::new(Counting::new(store, Pause::Yield));
    let h = Harness::with_settings(store.clone(), required, settings);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    let bursts = submissions.div_ceil(clients);
    let errors = Arc::new(AtomicU64::new(0));
    for step in 0..steps {
        // A new step, and a fresh throttle window.
        h.clock.advance(window + 30);
        let typed = code(&secret, h.now());
        let pending = h.challenge(&alice).await;
        let before = h.successes(&alice.user);
        let barrier = Arc::new(Barrier::new(clients));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (tf, alice, typed) = (h.tf.clone(), alice.clone(), typed.clone());
                let pending = pending.clone();
                let (barrier, errors) = (barrier.clone(), errors.clone());
                tokio::spawn(async move {
                    let mut accepted = 0u32;
                    for _ in 0..bursts {
                        barrier.wait().await;
                        let ctx = LoginContext::new();
                        let _ = tf.start_login(&alice, None, &ctx).await;
                        match tf
                            .finish_login(&pending, Factor::Totp(&typed), None, &ctx)
                            .await
                        {
                            Ok(_) => accepted += 1,
                            // A replay, or the ticket that one client already used up.
                            Err(
                                Error::InvalidCode | Error::Throttled { .. } | Error::LoginExpired,
                            ) => {}
                            // Fail closed under contention: refused, never accepted.
                            Err(Error::Contention { .. } | Error::NoPendingLogin) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("unexpected error: {e:?}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            accepted += task.await.expect("client");
        }
        assert_eq!(
            accepted,
            1,
            "step {step}: {accepted} acceptances of one code among {} submissions",
            bursts * clients
        );
        assert_eq!(h.successes(&alice.user) - before, 1, "step {step}: audit");
    }
    let refused = errors.load(Ordering::Relaxed);
    assert!(
        refused < (submissions as u64 * steps) / 10,
        "{refused} submissions gave up on contention"
    );
    assert!(
        store.conflicts() > 0,
        "no save conflicted: the test did not exercise compare-and-swap"
    );
}

/// `clients` tasks hammer wrong codes (`submissions` in all): no more than the throttle's
/// limit are ever checked, the rest are refused unchecked.
pub async fn wrong_code_storm<S: UserStore + 'static>(
    store: Arc<S>,
    clients: usize,
    submissions: usize,
) {
    // Only the first few checks write (the rest are refused by the throttle unwritten), so a
    // yield is too little for them to overlap on a busy machine: a CI run on 2 cores saw none
    // conflict. Sleeping after each load holds every client of a burst between its load and
    // its save, so the first burst's checks race on one version.
    let store = Arc::new(Counting::new(store, Pause::Sleep(Duration::from_millis(5))));
    let h = Harness::new(store.clone(), required);
    let limit = Settings::default().code_checks_per_window() as usize;
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let bad = wrong(&code(&secret, h.now()));
    let pending = h.challenge(&alice).await;
    let bursts = submissions.div_ceil(clients);
    let barrier = Arc::new(Barrier::new(clients));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (tf, alice, bad, barrier) =
                (h.tf.clone(), alice.clone(), bad.clone(), barrier.clone());
            let pending = pending.clone();
            tokio::spawn(async move {
                let (mut checked, mut throttled) = (0usize, 0usize);
                for _ in 0..bursts {
                    barrier.wait().await;
                    let ctx = LoginContext::new();
                    let _ = tf.start_login(&alice, None, &ctx).await;
                    match tf
                        .finish_login(&pending, Factor::Totp(&bad), None, &ctx)
                        .await
                    {
                        Ok(_) => panic!("a wrong code was accepted"),
                        Err(Error::InvalidCode) => checked += 1,
                        Err(Error::Throttled { .. }) => throttled += 1,
                        Err(Error::Contention { .. } | Error::NoPendingLogin) => {}
                        Err(e) => panic!("unexpected error: {e:?}"),
                    }
                }
                (checked, throttled)
            })
        })
        .collect();
    let (mut checked, mut throttled) = (0, 0);
    for task in tasks {
        let (c, t) = task.await.expect("client");
        checked += c;
        throttled += t;
    }
    // `InvalidCode` also answers a finish_login without a pending challenge; the audit trail
    // counts real code checks.
    let wrong_checks = h.wrong_codes(&alice.user);
    assert!(
        wrong_checks <= limit,
        "{wrong_checks} wrong codes were checked; the limit is {limit}"
    );
    assert_eq!(wrong_checks, limit, "the limit is reached, not undershot");
    assert!(checked >= wrong_checks);
    assert!(throttled > 0);
    assert!(
        store.conflicts() > 0,
        "no save conflicted: the test did not exercise compare-and-swap"
    );
    // And the right code is refused unchecked until the window passes.
    let _ = h.tf.start_login(&alice, None, &LoginContext::new()).await;
    assert!(matches!(
        h.finish_totp(&pending, &code(&secret, h.now())).await,
        Err(Error::Throttled { .. })
    ));
}
