//! The `TwoFactor` service end to end: MemoryStore + ManualClock + RecordingMailer +
//! RecordingAudit, and stores and mailers that fail on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[allow(dead_code, unreachable_pub)]
#[path = "common/counting.rs"]
mod counting;

use counting::{Counting, Pause};

#[allow(dead_code, unreachable_pub)]
#[path = "common/tickets.rs"]
mod tickets;

use twofactor::PendingLogin;
use twofactor::account::PendingStep;
use twofactor::account::TwoFactorRecord;
use twofactor::account::{
    Factor, FactorKind, FailureReason, GrantReason, LoginContext, LoginDecision, Reauthenticated,
    Settings,
};
use twofactor::audit::AuditKind;
use twofactor::mail::{DisabledBy, Mailer, NoMailer, Notice, NoticeKind};
use twofactor::policy::NoTrustedDevices;
use twofactor::service::{Error, TwoFactor};
use twofactor::store::{SaveOutcome, UserStore, Version, Versioned};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, EnforcementPolicy, EnrollmentStatus, KeyUri, MemoryStore, Optional, Principal,
    Requirement, Secret, Totp, UserId, WhenUnenrolled,
};

const T0: u64 = 1_700_000_010;

type Policy = fn(&Principal, &EnrollmentStatus, u64) -> Requirement;

fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}
fn optional(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::optional()
}
fn no_devices(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
        grace_until: None,
        trusted_devices: false,
    }
}
fn optional_no_devices(p: &Principal, s: &EnrollmentStatus, now: u64) -> Requirement {
    NoTrustedDevices::new(Optional).requirement(p, s, now)
}
fn mail_code(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

struct Harness<S: UserStore = MemoryStore> {
    tf: TwoFactor<S, Arc<RecordingMailer>, Policy, Arc<ManualClock>, Arc<RecordingAudit>>,
    clock: Arc<ManualClock>,
    mailer: Arc<RecordingMailer>,
    audit: Arc<RecordingAudit>,
}

fn harness(policy: Policy) -> Harness {
    harness_with(MemoryStore::new(), policy)
}

fn harness_with<S: UserStore>(store: S, policy: Policy) -> Harness<S> {
    let clock = Arc::new(ManualClock::new(T0));
    let mailer = Arc::new(RecordingMailer::new());
    let audit = Arc::new(RecordingAudit::new());
    let tf = TwoFactor::builder(store)
        .mailer(mailer.clone())
        .policy(policy)
        .clock(clock.clone())
        .audit(audit.clone())
        .settings(Settings::builder().issuer("ACME").build().unwrap())
        .keys(twofactor::testing::test_keys())
        .build();
    Harness {
        tf,
        clock,
        mailer,
        audit,
    }
}

fn ctx() -> LoginContext {
    LoginContext::new()
        .ip("203.0.113.9".parse().unwrap())
        .device("Firefox on Linux")
}

/// The user's authenticator app.
struct App(Secret);

impl App {
    fn code(&self, now: u64) -> String {
        Totp::default().generate(&self.0, now).to_string()
    }
}

impl<S: UserStore> Harness<S> {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Enrolls `user` now (after a login with a mailed code, when the policy asks for one);
    /// returns the app and the recovery codes.
    async fn enroll(&self, user: &UserId) -> (App, Vec<String>) {
        let p = Principal::new(user.clone());
        let start = || {
            self.tf
                .start_enrollment(&p, "alice@example.com", Reauthenticated::at(self.now()))
        };
        let started = match start().await {
            Err(Error::SecondFactorRequired) => {
                let pending = self
                    .tf
                    .start_login(&p, None, &ctx())
                    .await
                    .unwrap()
                    .into_pending()
                    .expect("a pending login");
                let code = self.mailer.last_login_code_for(user).unwrap();
                let granted = self
                    .tf
                    .finish_login(&pending, Factor::MailedCode(&code), None, &ctx())
                    .await
                    .unwrap();
                // The proof of the mailed code from this session opens enrollment.
                self.tf
                    .start_enrollment_with_proof(
                        &p,
                        "alice@example.com",
                        Reauthenticated::at(self.now()),
                        &granted.proof,
                    )
                    .await
                    .unwrap()
            }
            started => started.unwrap(),
        };
        let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
        let enrolled = self
            .tf
            .finish_enrollment(user, &app.code(self.now()))
            .await
            .unwrap();
        let codes = enrolled
            .recovery_codes()
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect();
        (app, codes)
    }

    /// start_login, expecting a challenge.
    async fn challenge(&self, p: &Principal) -> PendingLogin {
        let d = self.tf.start_login(p, None, &ctx()).await.unwrap();
        match d {
            LoginDecision::Challenge { pending } => pending,
            d => panic!("expected a challenge, got {d:?}"),
        }
    }
}

/// A pending TOTP challenge for `p` at `now`, as the host keeps it from `start_login`, for
/// the calls where `start_login` cannot run here (a store that is down, a user the policy
/// grants without a code). Tickets cannot be made up any more (`PendingLogin::new` is gone):
/// this is a genuine one, handed out by another app server of the deployment (same keys)
/// where `p` is enrolled, at ticket generation `generation` (that of `p`'s record here: each
/// revocation or administrator's reset bumps it by one).
async fn held(p: &Principal, now: u64, generation: u64) -> PendingLogin {
    let elsewhere = harness(required);
    elsewhere.clock.set(now);
    elsewhere.enroll(&p.user).await;
    for _ in 0..generation {
        elsewhere.tf.revoke_login_tickets(&p.user).await.unwrap();
    }
    let pending = elsewhere.challenge(p).await;
    assert_eq!(
        pending.methods(),
        &[FactorKind::Totp, FactorKind::RecoveryCode]
    );
    pending
}

/// The ticket generation of `user`'s stored record (0 when there is none).
async fn generation<S: UserStore>(store: &S, user: &UserId) -> u64 {
    match store.load(user).await {
        Ok(Some(v)) => serde_json::to_value(&v.record).unwrap()["tickets"]["generation"]
            .as_u64()
            .unwrap(),
        _ => 0,
    }
}

fn wrong(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_owned()
}

#[tokio::test]
async fn enroll_then_login_then_replay_refused() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let user = &alice.user;

    let decision = h.tf.start_login(&alice, None, &ctx()).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let started =
        h.tf.start_enrollment(
            &Principal::new(user.clone()),
            "alice@example.com",
            Reauthenticated::at(T0),
        )
        .await
        .unwrap();
    assert!(
        started
            .uri()
            .starts_with("otpauth://totp/ACME:alice@example.com?secret=")
    );
    assert_eq!(started.expires_at(), T0 + 900);
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    let enrolled = h.tf.finish_enrollment(user, &app.code(T0)).await.unwrap();
    assert_eq!(enrolled.recovery_codes().len(), 10);
    assert_eq!(h.mailer.kinds_for(user), [NoticeKind::Enabled]);
    let status = h.tf.status(user).await.unwrap();
    assert!(status.is_enrolled());
    assert_eq!(status.recovery_codes_left, 10);

    // The confirming code cannot log in.
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp(&app.code(T0)), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));

    h.clock.advance(30);
    let code = app.code(h.now());
    let granted =
        h.tf.finish_login(&pending, Factor::Totp(&code), None, &ctx())
            .await
            .unwrap();
    assert_eq!(granted.factor, FactorKind::Totp);

    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp(&code), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    let kinds = h.audit.kinds_for(user);
    assert!(kinds.contains(&AuditKind::Enrolled));
    assert!(kinds.contains(&AuditKind::LoginSucceeded {
        factor: FactorKind::Totp
    }));
    assert_eq!(kinds.iter().filter(|k| k.is_replay()).count(), 2);
    // Login events carry the request context; none carries a secret.
    let last = h.audit.last().unwrap();
    assert_eq!(last.context, Some(ctx()));
    assert_eq!(last.at, T0 + 30);
    let dump = format!("{:?} {:?}", h.audit.events(), h.mailer.sent());
    assert!(!dump.contains(&code));
    assert!(!dump.contains(app.0.to_base32().as_str()));
}

#[tokio::test]
async fn enrollment_after_must_enroll_completes_and_audits_the_login() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let user = &alice.user;

    // The password is right at T0; the ticket carries that time (forced set-up takes it as
    // the re-authentication).
    let password_checked_at = h.now();
    let decision = h.tf.start_login(&alice, None, &ctx()).await.unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(pending.password_checked_at(), password_checked_at);
    h.clock.advance(120);
    let started =
        h.tf.start_forced_enrollment(&pending, "alice")
            .await
            .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    h.clock.advance(60);
    let enrolled =
        h.tf.finish_forced_enrollment(&pending, &app.code(h.now()))
            .await
            .unwrap();
    assert!(enrolled.login_completed());
    assert!(h.tf.status(user).await.unwrap().is_enrolled());
    let events = h.audit.events();
    let tail: Vec<_> = events[events.len() - 2..]
        .iter()
        .map(|e| (e.kind.clone(), e.at))
        .collect();
    assert_eq!(
        tail,
        [
            (AuditKind::Enrolled, T0 + 180),
            (
                AuditKind::LoginSucceeded {
                    factor: FactorKind::Totp
                },
                T0 + 180
            )
        ]
    );

    // Too late: the forced set-up calls refuse the ticket once its deadline has passed; 2FA
    // can still be turned on from the account page, but the login that had to enroll is over.
    let bob = Principal::new("bob");
    let decision = h.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    h.clock.advance(900);
    assert!(matches!(
        h.tf.start_forced_enrollment(&pending, "bob").await,
        Err(Error::LoginExpired)
    ));
    let started =
        h.tf.start_enrollment(&bob, "bob", Reauthenticated::at(h.now()))
            .await
            .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    let enrolled =
        h.tf.finish_enrollment(&bob.user, &app.code(h.now()))
            .await
            .unwrap();
    assert!(!enrolled.login_completed());
    assert_eq!(
        h.audit.kinds_for(&bob.user).last(),
        Some(&AuditKind::Enrolled)
    );
    assert!(
        !h.audit
            .kinds_for(&bob.user)
            .contains(&AuditKind::LoginSucceeded {
                factor: FactorKind::Totp
            })
    );
    assert!(matches!(
        h.tf.finish_forced_enrollment(&pending, &app.code(h.now()))
            .await,
        Err(Error::LoginExpired)
    ));

    // In time, but set up from the account page (not with the ticket): only the forced
    // calls complete the login.
    let carol = Principal::new("carol");
    let decision = h.tf.start_login(&carol, None, &ctx()).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let started =
        h.tf.start_enrollment(&carol, "carol", Reauthenticated::at(h.now()))
            .await
            .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    let enrolled =
        h.tf.finish_enrollment(&carol.user, &app.code(h.now()))
            .await
            .unwrap();
    assert!(!enrolled.login_completed());
    assert!(
        !h.audit
            .kinds_for(&carol.user)
            .contains(&AuditKind::LoginSucceeded {
                factor: FactorKind::Totp
            })
    );
}

#[tokio::test]
async fn malformed_input_is_its_own_error_and_not_counted() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    for _ in 0..10 {
        assert!(matches!(
            h.tf.finish_login(&pending, Factor::Totp("12x456"), None, &ctx())
                .await,
            Err(Error::Malformed(_))
        ));
    }
    h.tf.finish_login(&pending, Factor::Totp(&app.code(h.now())), None, &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn recovery_code_works_once() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let (_, codes) = h.enroll(&alice.user).await;

    let pending = h.challenge(&alice).await;
    let typed = codes[0].to_uppercase();
    let granted =
        h.tf.finish_login(&pending, Factor::RecoveryCode(&typed), None, &ctx())
            .await
            .unwrap();
    assert_eq!(granted.recovery_codes_left, Some(9));
    assert_eq!(granted.proof.factor(), FactorKind::RecoveryCode);
    assert_eq!(
        h.mailer.last_for(&alice.user).map(|n| n.kind()),
        Some(NoticeKind::RecoveryCodeUsed)
    );

    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::RecoveryCode(&codes[0]), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    // Regenerating needs a fresh password check (and a second factor: the login's proof)
    // and voids the old set.
    assert!(matches!(
        h.tf.regenerate_recovery_codes(&alice.user, Reauthenticated::at(T0 - 600), &granted.proof)
            .await,
        Err(Error::ReauthenticationRequired)
    ));
    let fresh =
        h.tf.regenerate_recovery_codes(&alice.user, Reauthenticated::at(h.now()), &granted.proof)
            .await
            .unwrap();
    assert_eq!(fresh.len(), 10);
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::RecoveryCode(&codes[1]), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    h.tf.finish_login(
        &pending,
        Factor::RecoveryCode(fresh.expose_secret()[1]),
        None,
        &ctx(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn trusted_device_skip_revoke_and_expiry() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);

    let pending = h.challenge(&alice).await;
    let granted =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&app.code(h.now())),
            Some("Firefox on Linux"),
            &ctx(),
        )
        .await
        .unwrap();
    let token = granted.device_token.unwrap();
    assert_eq!(token.expires_at(), h.now() + 90 * 86_400);
    let devices = h.tf.list_devices(&alice.user).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].label, "Firefox on Linux");

    let d =
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    assert!(matches!(
        d,
        LoginDecision::Granted {
            reason: GrantReason::TrustedDevice { .. },
            ..
        }
    ));

    // Revoke it: challenged again.
    h.tf.revoke_device(&alice.user, token.id()).await.unwrap();
    assert!(matches!(
        h.tf.revoke_device(&alice.user, token.id()).await,
        Err(Error::UnknownDevice)
    ));
    let d =
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    assert!(matches!(d, LoginDecision::Challenge { .. }));

    // A new one, then it expires. (The ticket that logged in above is used up: a new login
    // needs a new one.)
    h.clock.advance(30);
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp(&app.code(h.now())), None, &ctx())
            .await,
        Err(Error::LoginExpired)
    ));
    let pending = d.into_pending().expect("the challenge above");
    let token =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&app.code(h.now())),
            Some("phone"),
            &ctx(),
        )
        .await
        .unwrap()
        .device_token
        .unwrap();
    h.clock.set(token.expires_at() - 1);
    assert!(matches!(
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap(),
        LoginDecision::Granted { .. }
    ));
    h.clock.set(token.expires_at());
    let decision =
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    assert!(h.tf.list_devices(&alice.user).await.unwrap().is_empty());
    // `start_login` no longer writes to prune it: the expired entry (its token refused above)
    // stays stored until a device is trusted or all are revoked, and is counted by this call,
    // which documents that it includes expired ones.
    assert_eq!(h.tf.revoke_all_devices(&alice.user).await.unwrap(), 1);
    assert_eq!(h.tf.revoke_all_devices(&alice.user).await.unwrap(), 0);
    let decision =
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
}

#[tokio::test]
async fn policy_without_trusted_devices_neither_issues_nor_honours_tokens() {
    for policy in [no_devices as Policy, optional_no_devices] {
        let h = harness(policy);
        let alice = Principal::new("alice");
        let (app, _) = h.enroll(&alice.user).await;
        h.clock.advance(30);
        let pending = h.challenge(&alice).await;
        let granted =
            h.tf.finish_login(
                &pending,
                Factor::Totp(&app.code(h.now())),
                Some("x"),
                &ctx(),
            )
            .await
            .unwrap();
        assert!(granted.device_token.is_none());
        assert!(h.tf.list_devices(&alice.user).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_opt_in_deployment_can_stop_honouring_remembered_devices() {
    let store = Arc::new(MemoryStore::new());
    let opt_in = harness_with(Arc::clone(&store), optional);
    let alice = Principal::new("alice");
    let (app, _) = opt_in.enroll(&alice.user).await;
    opt_in.clock.advance(30);
    let pending = opt_in.challenge(&alice).await;
    let granted = opt_in
        .tf
        .finish_login(
            &pending,
            Factor::Totp(&app.code(opt_in.now())),
            Some("x"),
            &ctx(),
        )
        .await
        .unwrap();
    let token = granted.device_token.expect("opt-in allows devices");

    // The deployment forbids remembered devices: the cookie no longer skips the code.
    let strict = harness_with(Arc::clone(&store), optional_no_devices);
    strict.clock.set(opt_in.now() + 30);
    let d = strict
        .tf
        .start_login(&alice, Some(token.expose_secret()), &ctx())
        .await
        .unwrap();
    assert!(matches!(d, LoginDecision::Challenge { .. }), "{d:?}");
}

#[tokio::test]
async fn mailed_code_login() {
    let h = harness(mail_code);
    let bob = Principal::new("bob");
    let d = h.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::CodeMailed { pending } = d else {
        panic!("{d:?}")
    };
    assert_eq!(pending.principal(), &bob);
    assert_eq!(pending.password_checked_at(), T0);
    assert_eq!(pending.expires_at(), T0 + 3_600);
    assert_eq!(
        pending.step(),
        &PendingStep::MailedCode {
            code_expires_at: T0 + 3_600
        }
    );
    let first = h.mailer.last_login_code_for(&bob.user).unwrap();
    assert_eq!(
        h.mailer.last_for(&bob.user).unwrap().context(),
        Some(&ctx())
    );

    h.clock.advance(60);
    let expires = h.tf.resend_mailed_code(&pending, &ctx()).await.unwrap();
    assert_eq!(expires, T0 + 60 + 3_600);
    let second = h.mailer.last_login_code_for(&bob.user).unwrap();
    if first != second {
        assert!(matches!(
            h.tf.finish_login(&pending, Factor::MailedCode(&first), None, &ctx())
                .await,
            Err(Error::InvalidCode)
        ));
    }
    let granted =
        h.tf.finish_login(
            &pending,
            Factor::MailedCode(&second),
            Some("laptop"),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(granted.factor, FactorKind::MailedCode);
    assert!(granted.device_token.is_some());
    // The ticket is used up: refused for the code and for a resend.
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::MailedCode(&second), None, &ctx())
            .await,
        Err(Error::LoginExpired)
    ));
    assert!(matches!(
        h.tf.resend_mailed_code(&pending, &ctx()).await,
        Err(Error::LoginExpired)
    ));
    // And the code is used up: on a new login it is refused.
    let d = h.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::CodeMailed { pending } = d else {
        panic!("{d:?}")
    };
    let third = h.mailer.last_login_code_for(&bob.user).unwrap();
    if third != second {
        assert!(matches!(
            h.tf.finish_login(&pending, Factor::MailedCode(&second), None, &ctx())
                .await,
            Err(Error::InvalidCode)
        ));
    }
    let kinds = h.audit.kinds_for(&bob.user);
    assert!(kinds.contains(&AuditKind::LoginSucceeded {
        factor: FactorKind::MailedCode
    }));
}

/// Was `a_late_mailed_code_is_audited_as_expired`. The ticket of a mailed-code login ends
/// when its code does, so a late code is refused (`LoginExpired`) before the record is
/// loaded; a ticket edited to a later deadline used to reach the record (which refused the
/// code, audited `Expired`) and is now refused outright (`InvalidTicket`), with nothing
/// audited or saved. A genuine ticket whose stored login was closed otherwise (here: by a
/// trusted-device login) still reaches the record and is audited `ExpiredChallenge`.
#[tokio::test]
async fn a_late_mailed_code_is_refused_before_the_record() {
    let h = harness_with(Counting::new(MemoryStore::new(), Pause::None), mail_code);
    let bob = Principal::new("bob");
    let pending =
        h.tf.start_login(&bob, None, &ctx())
            .await
            .unwrap()
            .into_pending()
            .expect("a pending login");
    let code = h.mailer.last_login_code_for(&bob.user).unwrap();
    // The code, the login waiting for it and the pending login end at the same instant.
    assert_eq!(pending.expires_at(), T0 + 3_600);
    h.clock.set(T0 + 3_600);
    let events = h.audit.events().len();
    h.tf.store().reset();
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx())
            .await,
        Err(Error::LoginExpired)
    ));
    // A ticket edited to a later deadline: refused before anything is loaded.
    let edited = tickets::edited(&pending, |c| c.expires_at = T0 + 7_200);
    assert_eq!(edited.expires_at(), T0 + 7_200);
    assert!(matches!(
        h.tf.finish_login(&edited, Factor::MailedCode(&code), None, &ctx())
            .await,
        Err(Error::InvalidTicket)
    ));
    assert_eq!(h.tf.store().counts(), (0, 0, 0), "the store was used");
    assert_eq!(h.audit.events().len(), events, "audited");

    // A stored login closed by a trusted-device login: the mailed code of an open ticket
    // reaches the record and is refused as `ExpiredChallenge`.
    h.clock.set(T0 + 7_200);
    let pending =
        h.tf.start_login(&bob, None, &ctx())
            .await
            .unwrap()
            .into_pending()
            .expect("a pending login");
    let code = h.mailer.last_login_code_for(&bob.user).unwrap();
    let token =
        h.tf.finish_login(&pending, Factor::MailedCode(&code), Some("pc"), &ctx())
            .await
            .unwrap()
            .device_token
            .expect("a device token");
    h.clock.advance(60);
    let waiting =
        h.tf.start_login(&bob, None, &ctx())
            .await
            .unwrap()
            .into_pending()
            .expect("a pending login");
    let code = h.mailer.last_login_code_for(&bob.user).unwrap();
    let d =
        h.tf.start_login(&bob, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    assert!(
        matches!(
            d,
            LoginDecision::Granted {
                reason: GrantReason::TrustedDevice { .. },
                ..
            }
        ),
        "{d:?}"
    );
    assert!(matches!(
        h.tf.finish_login(&waiting, Factor::MailedCode(&code), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(
        h.audit.kinds_for(&bob.user).last(),
        Some(&AuditKind::LoginFailed {
            factor: FactorKind::MailedCode,
            reason: FailureReason::ExpiredChallenge
        })
    );
}

#[tokio::test]
async fn mail_sends_are_limited() {
    let h = harness(mail_code);
    let bob = Principal::new("bob");
    let mut last = None;
    for _ in 0..5 {
        last =
            h.tf.start_login(&bob, None, &ctx())
                .await
                .unwrap()
                .into_pending();
        h.clock.advance(1);
    }
    let pending = last.expect("a pending login");
    assert_eq!(h.mailer.count_for(&bob.user), 5);
    assert!(matches!(
        h.tf.resend_mailed_code(&pending, &ctx()).await,
        Err(Error::Throttled { retry_at }) if retry_at == T0 + 3_600
    ));
    // The last code still works.
    let code = h.mailer.last_login_code_for(&bob.user).unwrap();
    h.tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx())
        .await
        .unwrap();
    // No valid code left and no send allowed: the same Throttled as resend_mailed_code.
    let throttled = h.tf.start_login(&bob, None, &ctx()).await.unwrap_err();
    assert!(matches!(throttled, Error::Throttled { retry_at } if retry_at == T0 + 3_600));
    assert_eq!(throttled.retry_after(h.now()), Some(T0 + 3_600 - h.now()));
    assert_eq!(h.mailer.count_for(&bob.user), 5);
}

#[tokio::test]
async fn code_checks_are_throttled() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let good = app.code(h.now());
    for _ in 0..5 {
        assert!(matches!(
            h.tf.finish_login(&pending, Factor::Totp(&wrong(&good)), None, &ctx())
                .await,
            Err(Error::InvalidCode)
        ));
    }
    let retry = T0 + 30 + 3_600;
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp(&good), None, &ctx()).await,
        Err(Error::Throttled { retry_at }) if retry_at == retry
    ));
    assert_eq!(
        h.tf.status(&alice.user).await.unwrap().throttled_until,
        Some(retry)
    );
    // start_login reports it the same way as finish_login.
    assert!(matches!(
        h.tf.start_login(&alice, None, &ctx()).await,
        Err(Error::Throttled { retry_at }) if retry_at == retry
    ));
    // Each failure mailed a warning (the password was right).
    assert_eq!(
        h.mailer
            .kinds_for(&alice.user)
            .iter()
            .filter(|k| **k == NoticeKind::FailedCodeAttempt)
            .count(),
        5
    );
    h.clock.set(retry);
    let pending = h.challenge(&alice).await;
    h.tf.finish_login(&pending, Factor::Totp(&app.code(retry)), None, &ctx())
        .await
        .unwrap();
}

/// The documented choice (manual, "Rate limits"): one code-check budget per user, so bogus
/// second steps before set-up throttle the confirming code too.
#[tokio::test]
async fn bogus_second_steps_before_set_up_spend_the_same_budget_as_enrollment() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let user = &alice.user;
    let decision = h.tf.start_login(&alice, None, &ctx()).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    // Someone with the password submits codes although no factor exists.
    for _ in 0..5 {
        assert!(matches!(
            h.tf.finish_login(&pending, Factor::Totp("123456"), None, &ctx())
                .await,
            Err(Error::InvalidCode)
        ));
    }
    let started =
        h.tf.start_forced_enrollment(&pending, "alice")
            .await
            .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    assert!(matches!(
        h.tf.finish_forced_enrollment(&pending, &app.code(T0)).await,
        Err(Error::Throttled { retry_at }) if retry_at == T0 + 3_600
    ));
    // The same from the account page.
    assert!(matches!(
        h.tf.finish_enrollment(user, &app.code(T0)).await,
        Err(Error::Throttled { retry_at }) if retry_at == T0 + 3_600
    ));
    // And the other way round: wrong confirming codes throttle the login's second step.
    // Under the mailed-code policy bob logs in with a mailed code before he may set up an app.
    let h = harness(mail_code);
    let bob = Principal::new("bob");
    let pending =
        h.tf.start_login(&bob, None, &ctx())
            .await
            .unwrap()
            .into_pending()
            .expect("a pending login");
    let mailed = h.mailer.last_login_code_for(&bob.user).unwrap();
    let granted =
        h.tf.finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx())
            .await
            .unwrap();
    let started =
        h.tf.start_enrollment_with_proof(&bob, "bob", Reauthenticated::at(T0), &granted.proof)
            .await
            .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    for _ in 0..5 {
        assert!(matches!(
            h.tf.finish_enrollment(&bob.user, &wrong(&app.code(T0)))
                .await,
            Err(Error::InvalidCode)
        ));
    }
    // The next login is refused before a code is even mailed.
    assert!(matches!(
        h.tf.start_login(&bob, None, &ctx()).await,
        Err(Error::Throttled { retry_at }) if retry_at == T0 + 3_600
    ));
    assert_eq!(h.mailer.count_for(&bob.user), 1);
    // The block lifts by itself an hour later: a new mailed-code login, then the set-up.
    h.clock.set(T0 + 3_600);
    let pending =
        h.tf.start_login(&bob, None, &ctx())
            .await
            .unwrap()
            .into_pending()
            .expect("a pending login");
    let mailed = h.mailer.last_login_code_for(&bob.user).unwrap();
    let granted =
        h.tf.finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx())
            .await
            .unwrap();
    let started = h
        .tf
        .start_enrollment_with_proof(&bob, "bob", Reauthenticated::at(T0 + 3_600), &granted.proof)
        .await
        .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    h.tf.finish_enrollment(&bob.user, &app.code(T0 + 3_600))
        .await
        .unwrap();
}

#[tokio::test]
async fn admin_reset_clears_everything() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let admin = UserId::new("root");
    let (app, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let token =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&app.code(h.now())),
            Some("pc"),
            &ctx(),
        )
        .await
        .unwrap()
        .device_token
        .unwrap();

    h.tf.reset_by_admin(&alice.user, &admin).await.unwrap();
    let status = h.tf.status(&alice.user).await.unwrap();
    assert!(!status.is_enrolled());
    assert_eq!(status.recovery_codes_left, 0);
    assert_eq!(status.trusted_devices, 0);
    assert!(matches!(
        h.mailer.last_for(&alice.user),
        Some(Notice::Disabled { by: DisabledBy::Admin { admin: a } }) if a == admin
    ));
    assert!(
        h.audit
            .kinds_for(&alice.user)
            .contains(&AuditKind::ResetByAdmin {
                admin: admin.clone(),
                devices_revoked: 1
            })
    );
    // The old device token, codes and authenticator are dead; the user must enroll again.
    let decision =
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::RecoveryCode(&codes[0]), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    assert!(matches!(
        h.tf.reset_by_admin(&alice.user, &admin).await,
        Err(Error::NotEnrolled)
    ));
    h.enroll(&alice.user).await;
}

/// Under an opt-in policy the user turns 2FA off with a fresh password check and a code;
/// where the policy requires 2FA for them, `disable` is refused (`RequiredByPolicy`) even
/// with both, and nothing changes.
#[tokio::test]
async fn user_disables_with_password_and_code() {
    let h = harness(optional);
    let alice = Principal::new("alice");
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let now = h.now();
    assert!(matches!(
        h.tf.disable(
            &alice,
            Reauthenticated::at(now - 601),
            Factor::Totp(&app.code(now))
        )
        .await,
        Err(Error::ReauthenticationRequired)
    ));
    assert!(matches!(
        h.tf.disable(
            &alice,
            Reauthenticated::at(now),
            Factor::Totp(&wrong(&app.code(now)))
        )
        .await,
        Err(Error::InvalidCode)
    ));
    h.tf.disable(
        &alice,
        Reauthenticated::at(now),
        Factor::Totp(&app.code(now)),
    )
    .await
    .unwrap();
    assert!(matches!(
        h.mailer.last_for(&alice.user),
        Some(Notice::Disabled {
            by: DisabledBy::User
        })
    ));
    assert_eq!(
        h.tf.start_login(&alice, None, &ctx())
            .await
            .unwrap()
            .grant_reason(),
        Some(&GrantReason::NotRequired)
    );

    // Where the policy requires 2FA: refused before the code is looked at, and still on.
    let h = harness(required);
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let now = h.now();
    let r =
        h.tf.disable(
            &alice,
            Reauthenticated::at(now),
            Factor::Totp(&app.code(now)),
        )
        .await;
    assert!(matches!(r, Err(Error::RequiredByPolicy)), "{r:?}");
    let status = h.tf.status_for(&alice).await.unwrap();
    assert!(status.is_enrolled());
    assert_eq!(status.required, Some(true));
    let pending = h.challenge(&alice).await;
    h.tf.finish_login(&pending, Factor::Totp(&app.code(now)), None, &ctx())
        .await
        .expect("the code was not used by the refused call");
}

#[tokio::test]
async fn rotation_replaces_the_authenticator() {
    let h = harness(required);
    let alice = Principal::new("alice");
    let (old, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let token =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&old.code(h.now())),
            Some("pc"),
            &ctx(),
        )
        .await
        .unwrap()
        .device_token
        .unwrap();
    h.clock.advance(30);
    let now = h.now();
    assert!(matches!(
        h.tf.start_enrollment(&alice, "alice", Reauthenticated::at(now))
            .await,
        Err(Error::AlreadyEnrolled)
    ));
    let started =
        h.tf.start_rotation(
            &alice.user,
            "alice",
            old.code(now).as_str(),
            Reauthenticated::at(now),
        )
        .await
        .unwrap();
    let new = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    h.clock.advance(30);
    let done =
        h.tf.finish_enrollment(&alice.user, &new.code(h.now()))
            .await
            .unwrap();
    assert!(done.rotated());
    assert_eq!(
        h.mailer.last_for(&alice.user).map(|n| n.kind()),
        Some(NoticeKind::Rotated)
    );
    // Devices revoked; the old app no longer works, the new one does.
    let decision =
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    h.clock.advance(30);
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp(&old.code(h.now())), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    h.tf.finish_login(&pending, Factor::Totp(&new.code(h.now())), None, &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn enrollment_cancel_restart_and_expiry() {
    let h = harness(required);
    let user = UserId::new("alice");
    let first =
        h.tf.start_enrollment(
            &Principal::new(user.clone()),
            "alice",
            Reauthenticated::at(T0),
        )
        .await
        .unwrap();
    h.tf.cancel_enrollment(&user).await.unwrap();
    assert!(matches!(
        h.tf.cancel_enrollment(&user).await,
        Err(Error::NoPendingEnrollment)
    ));
    let first = App(KeyUri::parse(first.uri()).unwrap().into_secret());
    assert!(matches!(
        h.tf.finish_enrollment(&user, &first.code(T0)).await,
        Err(Error::NoPendingEnrollment)
    ));
    let second =
        h.tf.start_enrollment(
            &Principal::new(user.clone()),
            "alice",
            Reauthenticated::at(T0),
        )
        .await
        .unwrap();
    let second = App(KeyUri::parse(second.uri()).unwrap().into_secret());
    h.clock.advance(900);
    assert!(matches!(
        h.tf.finish_enrollment(&user, &second.code(h.now())).await,
        Err(Error::NoPendingEnrollment)
    ));
    assert!(matches!(
        h.tf.start_enrollment(
            &Principal::new(user.clone()),
            "alice",
            Reauthenticated::at(T0)
        )
        .await,
        Err(Error::ReauthenticationRequired)
    ));
}

#[tokio::test]
async fn admin_invitation_and_mailed_provisioning() {
    let h = harness(required);
    let admin = UserId::new("root");
    let bob = Principal::new("bob");
    h.tf.invite(&bob.user, &admin, "https://erp.example/2fa")
        .await
        .unwrap();
    assert!(matches!(
        h.mailer.last_for(&bob.user),
        Some(Notice::Invitation { link, .. }) if link == "https://erp.example/2fa"
    ));
    let expires =
        h.tf.start_enrollment_by_mail_dangerous(&bob.user, &admin, "bob@example.com")
            .await
            .unwrap();
    assert_eq!(expires, T0 + 86_400);
    let uri = h.mailer.last_provisioning_uri_for(&bob.user).unwrap();
    let app = App(KeyUri::parse(&uri).unwrap().into_secret());
    h.clock.advance(3_600);
    h.tf.finish_enrollment(&bob.user, &app.code(h.now()))
        .await
        .unwrap();
    assert!(h.tf.status(&bob.user).await.unwrap().is_enrolled());
    assert!(matches!(
        h.tf.invite(&bob.user, &admin, "x").await,
        Err(Error::AlreadyEnrolled)
    ));
}

#[tokio::test]
async fn unknown_user_and_user_without_2fa_look_the_same() {
    for policy in [optional as Policy, required, mail_code] {
        let h = harness(policy);
        // "carol" had 2FA once (a record exists, now empty); "dave" never had a record.
        let carol = Principal::new("carol");
        let dave = Principal::new("dave");
        h.enroll(&carol.user).await;
        h.tf.reset_by_admin(&carol.user, &UserId::new("root"))
            .await
            .unwrap();
        let a = h.tf.start_login(&carol, None, &ctx()).await.unwrap();
        let b = h.tf.start_login(&dave, None, &ctx()).await.unwrap();
        // The same answer, but for the principal asked about.
        let shape = |d: &LoginDecision| {
            let pending = d.pending().map(|p| {
                let times = (p.password_checked_at(), p.expires_at());
                (p.step().clone(), times)
            });
            (std::mem::discriminant(d), pending)
        };
        assert_eq!(shape(&a), shape(&b));
        for (p, d) in [(&carol, &a), (&dave, &b)] {
            if let Some(pending) = d.pending() {
                assert_eq!(pending.principal(), p);
            }
            let pending = match d.pending() {
                Some(pending) => pending.clone(),
                None => held(p, h.now(), generation(h.tf.store(), &p.user).await).await,
            };
            assert!(matches!(
                h.tf.finish_login(&pending, Factor::Totp("123456"), None, &ctx())
                    .await,
                Err(Error::InvalidCode)
            ));
            assert!(matches!(
                h.tf.finish_login(&pending, Factor::RecoveryCode("abcd-efgh-jk"), None, &ctx())
                    .await,
                Err(Error::InvalidCode)
            ));
        }
        let mut sc = h.tf.status(&carol.user).await.unwrap();
        let mut sd = h.tf.status(&dave.user).await.unwrap();
        sc.throttled_until = None;
        sd.throttled_until = None;
        assert_eq!(sc, sd);
    }
}

/// A service on a [`yielding_store`], shared by concurrent requests.
type Contended = TwoFactor<
    Counting<MemoryStore>,
    Arc<RecordingMailer>,
    Policy,
    Arc<ManualClock>,
    Arc<RecordingAudit>,
>;

/// `n` requests submit `code` for `who` at once (a barrier releases them together), each with
/// a ticket of its own from `start_login` (as `n` sessions that passed the password check).
async fn submit_at_once(
    tf: &Arc<Contended>,
    who: &Principal,
    code: &str,
    n: usize,
) -> Vec<Result<twofactor::account::LoginGranted, Error>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut pendings = Vec::with_capacity(n);
    for _ in 0..n {
        let d = tf.start_login(who, None, &ctx()).await.unwrap();
        pendings.push(d.into_pending().expect("a challenge"));
    }
    let tasks: Vec<_> = pendings
        .into_iter()
        .map(|pending| {
            let (tf, barrier, code) = (tf.clone(), barrier.clone(), code.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                tf.finish_login(&pending, Factor::Totp(&code), None, &ctx())
                    .await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_of_one_code_succeed_once() {
    let store = yielding_store();
    let h = harness_with(store, required);
    let alice = Principal::new("alice");
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    h.challenge(&alice).await;
    let code = app.code(h.now());

    let tf = Arc::new(h.tf);
    let (mut ok, mut invalid, mut throttled, mut other) = (0, 0, 0, 0);
    for result in submit_at_once(&tf, &alice, &code, 64).await {
        match result {
            Ok(_) => ok += 1,
            Err(Error::InvalidCode) => invalid += 1,
            Err(Error::Throttled { .. }) => throttled += 1,
            Err(e) => {
                other += 1;
                eprintln!("{e}");
            }
        }
    }
    assert_eq!(ok, 1, "exactly one request may use the code");
    // Everyone else: the challenge is closed or the step used (counted), or throttled; under
    // heavy contention a few may give up (fail closed).
    assert_eq!(invalid + throttled + other, 63);
    assert!(invalid <= 5, "{invalid} checks admitted after the success");
    let successes = h
        .audit
        .kinds_for(&alice.user)
        .into_iter()
        .filter(|k| matches!(k, AuditKind::LoginSucceeded { .. }))
        .count();
    assert_eq!(successes, 1);
    eprintln!(
        "ok {ok}, invalid {invalid}, throttled {throttled}, other {other}, conflicts {}",
        tf.store().conflicts()
    );
    assert!(
        tf.store().conflicts() > 0,
        "the test must exercise compare-and-swap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_codes_never_exceed_the_limit() {
    let h = harness_with(yielding_store(), required);
    let alice = Principal::new("alice");
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    h.challenge(&alice).await;
    let bad = wrong(&app.code(h.now()));
    let tf = Arc::new(h.tf);
    let invalid = submit_at_once(&tf, &alice, &bad, 32)
        .await
        .into_iter()
        .filter(|r| matches!(r, Err(Error::InvalidCode)))
        .count();
    assert_eq!(invalid, 5, "exactly the limit was checked");
    let checked = h
        .audit
        .kinds_for(&alice.user)
        .into_iter()
        .filter(|k| {
            matches!(
                k,
                AuditKind::LoginFailed {
                    reason: FailureReason::WrongCode,
                    ..
                }
            )
        })
        .count();
    assert_eq!(checked, 5);
    assert!(
        tf.store().conflicts() > 0,
        "the test must exercise compare-and-swap"
    );
}

// ----- failing edges -----

/// A memory store whose loads wait long enough for other requests to load the same
/// version, counting conflicting saves.
fn yielding_store() -> Counting<MemoryStore> {
    Counting::new(
        MemoryStore::new(),
        Pause::Sleep(std::time::Duration::from_millis(2)),
    )
}

#[derive(Debug, thiserror::Error)]
#[error("database unavailable")]
struct DbDown;

/// A store whose loads fail.
struct DownStore;

impl UserStore for DownStore {
    type Error = DbDown;
    async fn load(&self, _: &UserId) -> Result<Option<Versioned>, DbDown> {
        Err(DbDown)
    }
    async fn save(
        &self,
        _: &UserId,
        _: &TwoFactorRecord,
        _: Option<Version>,
    ) -> Result<SaveOutcome, DbDown> {
        Err(DbDown)
    }
}

/// A store where every save conflicts.
struct AlwaysConflict(AtomicU32);

impl UserStore for AlwaysConflict {
    type Error = DbDown;
    async fn load(&self, _: &UserId) -> Result<Option<Versioned>, DbDown> {
        Ok(None)
    }
    async fn save(
        &self,
        _: &UserId,
        _: &TwoFactorRecord,
        _: Option<Version>,
    ) -> Result<SaveOutcome, DbDown> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(SaveOutcome::Conflict)
    }
}

#[tokio::test]
async fn store_failure_fails_closed_with_its_cause() {
    let h = harness_with(DownStore, required);
    let alice = Principal::new("alice");
    let err = h.tf.start_login(&alice, None, &ctx()).await.unwrap_err();
    assert!(matches!(err, Error::Store(_)));
    let source = std::error::Error::source(&err).unwrap();
    assert!(source.downcast_ref::<DbDown>().is_some());
    let pending = held(&alice, h.now(), 0).await;
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp("123456"), None, &ctx())
            .await,
        Err(Error::Store(_))
    ));
    assert!(h.audit.events().is_empty());
    assert!(h.mailer.sent().is_empty());
}

/// A MemoryStore whose saves fail once `broken` is set (loads keep working).
struct SavesFail(MemoryStore, std::sync::atomic::AtomicBool);

impl UserStore for SavesFail {
    type Error = DbDown;
    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, DbDown> {
        Ok(self.0.load(user).await.expect("memory store"))
    }
    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, DbDown> {
        if self.1.load(Ordering::SeqCst) {
            return Err(DbDown);
        }
        Ok(self
            .0
            .save(user, record, expected)
            .await
            .expect("memory store"))
    }
}

#[tokio::test]
async fn start_login_for_a_code_writes_nothing_and_the_second_step_still_fails_closed() {
    let store = SavesFail(
        MemoryStore::new(),
        std::sync::atomic::AtomicBool::new(false),
    );
    let h = harness_with(store, required);
    let alice = Principal::new("alice");
    let (app, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let version =
        h.tf.store()
            .0
            .load(&alice.user)
            .await
            .unwrap()
            .unwrap()
            .version;
    // Every save fails from now on: a TOTP challenge needs none.
    h.tf.store().1.store(true, Ordering::SeqCst);
    let decision = h.tf.start_login(&alice, None, &ctx()).await.unwrap();
    let LoginDecision::Challenge { pending } = decision else {
        panic!("{decision:?}")
    };
    // What a held challenge carries (each ticket has its own nonce, so compare the claims).
    let like = held(&alice, h.now(), 0).await;
    assert_eq!(pending.principal(), like.principal());
    assert_eq!(pending.password_checked_at(), like.password_checked_at());
    assert_eq!(pending.expires_at(), like.expires_at());
    assert_eq!(pending.step(), like.step());
    // A refused device token is still audited, though nothing is saved.
    let decision =
        h.tf.start_login(&alice, Some(&"5a".repeat(32)), &ctx())
            .await
            .unwrap();
    assert!(matches!(decision, LoginDecision::Challenge { .. }));
    assert_eq!(
        h.audit.kinds_for(&alice.user).last(),
        Some(&AuditKind::DeviceTokenRefused)
    );
    assert_eq!(
        h.tf.store()
            .0
            .load(&alice.user)
            .await
            .unwrap()
            .unwrap()
            .version,
        version
    );
    // The second step must save (the used step, the counted check): it fails closed.
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp(&app.code(h.now())), None, &ctx())
            .await,
        Err(Error::Store(_))
    ));
    // Answers that need new state fail closed too.
    let bob = Principal::new("bob");
    assert!(matches!(
        h.tf.start_login(&bob, None, &ctx()).await,
        Err(Error::Store(_))
    ));
    // Nothing claims a login happened.
    assert!(
        !h.audit
            .kinds_for(&alice.user)
            .iter()
            .any(|k| matches!(k, AuditKind::LoginSucceeded { .. }))
    );
}

#[tokio::test]
async fn endless_conflicts_give_up_without_side_effects() {
    let h = harness_with(AlwaysConflict(AtomicU32::new(0)), required);
    let err =
        h.tf.start_enrollment(&Principal::new("a"), "a", Reauthenticated::at(T0))
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Contention { attempts: 16 }));
    assert_eq!(h.tf.store().0.load(Ordering::SeqCst), 16);
    assert!(h.audit.events().is_empty());
}

#[derive(Debug, thiserror::Error)]
#[error("smtp down")]
struct SmtpDown;

struct DownMailer;

impl Mailer for DownMailer {
    type Error = SmtpDown;
    async fn send(&self, _: &UserId, _: &Notice) -> Result<(), SmtpDown> {
        Err(SmtpDown)
    }
}

#[tokio::test]
async fn mail_failures_fail_only_operations_whose_outcome_is_the_mail() {
    let clock = Arc::new(ManualClock::new(T0));
    let audit = Arc::new(RecordingAudit::new());
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(DownMailer)
        .policy(mail_code as Policy)
        .clock(clock.clone())
        .audit(audit.clone())
        .keys(twofactor::testing::test_keys())
        .build();
    let bob = Principal::new("bob");
    // A login code that cannot be sent is not an error: the login waits for a resend.
    let decision = tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::CodeNotSent { pending, error } = decision else {
        panic!("{decision:?}")
    };
    assert!(error.downcast_ref::<SmtpDown>().is_some());
    assert!(audit.kinds().contains(&AuditKind::NoticeFailed {
        notice: NoticeKind::LoginCode
    }));
    // A resend that fails is: the mailer's error, typed.
    let err = tf.resend_mailed_code(&pending, &ctx()).await.unwrap_err();
    assert!(matches!(err, Error::Mailer(_)));
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .downcast_ref::<SmtpDown>()
            .is_some()
    );

    // Without the mailed code, the password alone does not enroll under this policy.
    assert!(matches!(
        tf.start_enrollment(&bob, "bob", Reauthenticated::at(T0))
            .await,
        Err(Error::SecondFactorRequired)
    ));

    // "2FA enabled" is informational: enrollment succeeds (its recovery codes must not be lost).
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(DownMailer)
        .policy(required as Policy)
        .clock(clock.clone())
        .audit(audit.clone())
        .keys(twofactor::testing::test_keys())
        .build();
    let started = tf
        .start_enrollment(&bob, "bob", Reauthenticated::at(T0))
        .await
        .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    let enrolled = tf
        .finish_enrollment(&bob.user, &app.code(T0))
        .await
        .unwrap();
    assert_eq!(enrolled.recovery_codes().len(), 10);
    assert!(audit.kinds().contains(&AuditKind::NoticeFailed {
        notice: NoticeKind::Enabled
    }));
}

#[tokio::test]
async fn no_mailer_refuses_only_what_must_be_delivered() {
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(NoMailer)
        .policy(mail_code as Policy)
        .clock(ManualClock::new(T0))
        .audit(RecordingAudit::new())
        .build();
    let bob = Principal::new("bob");
    let decision = tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::CodeNotSent { error, .. } = decision else {
        panic!("{decision:?}")
    };
    assert!(
        error
            .downcast_ref::<twofactor::mail::NoMailerError>()
            .is_some()
    );
    // No mailed code, no enrollment on the password alone: closed, not open.
    assert!(matches!(
        tf.start_enrollment(&bob, "bob", Reauthenticated::at(T0))
            .await,
        Err(Error::SecondFactorRequired)
    ));
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(NoMailer)
        .policy(required as Policy)
        .clock(ManualClock::new(T0))
        .audit(RecordingAudit::new())
        .build();
    let started = tf
        .start_enrollment(&bob, "bob", Reauthenticated::at(T0))
        .await
        .unwrap();
    let app = App(KeyUri::parse(started.uri()).unwrap().into_secret());
    tf.finish_enrollment(&bob.user, &app.code(T0))
        .await
        .unwrap();
}

#[tokio::test]
async fn service_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let h = harness(required);
    let alice = Principal::new("alice");
    let c = ctx();
    let pending = held(&alice, T0, 0).await;
    assert_send(&h.tf.start_login(&alice, None, &c));
    assert_send(&h.tf.finish_login(&pending, Factor::Totp("1"), None, &c));
    assert_send(&h.tf.start_enrollment(&alice, "a", Reauthenticated::at(0)));
    assert_send(&h.tf.finish_enrollment(&alice.user, "1"));
    assert_send(&h.tf.start_forced_enrollment(&pending, "a"));
    assert_send(&h.tf.finish_forced_enrollment(&pending, "1"));
    assert_send(
        &h.tf
            .verify_second_factor(&alice.user, Factor::Totp("1"), &c),
    );
    assert_send(
        &h.tf
            .disable(&alice, Reauthenticated::at(0), Factor::Totp("1")),
    );
    assert_send(&h.tf.status(&alice.user));
}

#[tokio::test]
async fn totp_period_is_a_deployment_setting() {
    let clock = Arc::new(ManualClock::new(T0));
    let totp = Totp::builder().period(60).build().unwrap();
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .policy(required as Policy)
        .clock(clock.clone())
        .audit(RecordingAudit::new())
        .settings(Settings::builder().totp(totp).build().unwrap())
        .keys(twofactor::testing::test_keys())
        .build();
    let alice = Principal::new("alice");
    let started = tf
        .start_enrollment(&alice, "alice", Reauthenticated::at(T0))
        .await
        .unwrap();
    assert!(started.uri().contains("period=60"));
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    tf.finish_enrollment(&alice.user, &totp.generate(&secret, T0).to_string())
        .await
        .unwrap();
    // 60 s later is the next 60-second step: a fresh code.
    clock.advance(60);
    let pending = tf
        .start_login(&alice, None, &ctx())
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    tf.finish_login(
        &pending,
        Factor::Totp(&totp.generate(&secret, clock.now()).to_string()),
        None,
        &ctx(),
    )
    .await
    .unwrap();
}

/// Reads the parts of any service: no trait bounds to repeat (this does not compile if the
/// accessors require them).
fn describe<S, M, P, C, A>(tf: &TwoFactor<S, M, P, C, A>) -> (Option<&str>, &C, &A) {
    let _: (&S, &M, &P) = (tf.store(), tf.mailer(), tf.policy());
    (tf.settings().issuer(), tf.clock(), tf.audit())
}

#[test]
fn accessors_need_no_trait_bounds() {
    let h = harness(required);
    let (issuer, clock, audit) = describe(&h.tf);
    assert_eq!(issuer, Some("ACME"));
    assert_eq!(clock.now(), T0);
    assert!(audit.events().is_empty());
}

/// Throttling arrives one way, `Error::Throttled` (kind `Throttled`, HTTP 429, a retry time),
/// from every call that can be throttled: the two login steps, the calls that check a code,
/// and the mail sends.
///
/// (Opt-in policy: where 2FA is required, `disable` is refused before any code is checked,
/// with `RequiredByPolicy`; see `user_disables_with_password_and_code`.)
#[tokio::test]
async fn throttling_is_one_error_from_every_call() {
    let h = harness(optional);
    let alice = Principal::new("alice");
    let (app, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let good = app.code(h.now());
    let pending = h.challenge(&alice).await;
    for _ in 0..5 {
        let _ =
            h.tf.finish_login(&pending, Factor::Totp(&wrong(&good)), None, &ctx())
                .await;
    }
    let retry = T0 + 30 + 3_600;
    let now = h.now();
    let reauth = Reauthenticated::at(now);
    let errors = vec![
        (
            "start_login",
            h.tf.start_login(&alice, None, &ctx()).await.err(),
        ),
        (
            "finish_login",
            h.tf.finish_login(&pending, Factor::Totp(&good), None, &ctx())
                .await
                .err(),
        ),
        (
            "finish_login (recovery)",
            h.tf.finish_login(&pending, Factor::RecoveryCode(&codes[0]), None, &ctx())
                .await
                .err(),
        ),
        (
            "start_rotation",
            h.tf.start_rotation(&alice.user, "alice", good.as_str(), reauth)
                .await
                .err(),
        ),
        (
            "disable",
            h.tf.disable(&alice, reauth, Factor::Totp(&good))
                .await
                .err(),
        ),
        (
            "regenerate_recovery_codes",
            h.tf.regenerate_recovery_codes(&alice.user, reauth, Factor::Totp(&good))
                .await
                .err(),
        ),
        (
            "verify_second_factor",
            h.tf.verify_second_factor(&alice.user, Factor::Totp(&good), &ctx())
                .await
                .err(),
        ),
    ];
    for (call, e) in errors {
        let e = e.unwrap_or_else(|| panic!("{call} was not refused"));
        assert!(
            matches!(e, Error::Throttled { retry_at } if retry_at == retry),
            "{call}: {e:?}"
        );
        assert_eq!(e.kind(), twofactor::ErrorKind::Throttled, "{call}");
        assert_eq!(e.http_status(), 429, "{call}");
        assert_eq!(e.retry_after(now), Some(retry - now), "{call}");
    }

    // Mail sends: five codes in the hour, the last one used; no valid code is left.
    let h = harness(mail_code);
    let bob = Principal::new("bob");
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(
            h.tf.start_login(&bob, None, &ctx())
                .await
                .unwrap()
                .into_pending()
                .expect("a pending login"),
        );
    }
    let pending = tickets.pop().expect("a pending login");
    let code = h.mailer.last_login_code_for(&bob.user).unwrap();
    h.tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx())
        .await
        .unwrap();
    let begin = h.tf.start_login(&bob, None, &ctx()).await.unwrap_err();
    // The ticket that logged in is used up; an earlier one, still open and unused, asks for a
    // resend that is refused.
    assert!(matches!(
        h.tf.resend_mailed_code(&pending, &ctx()).await,
        Err(Error::LoginExpired)
    ));
    let earlier = tickets.pop().expect("an earlier ticket");
    let resend = h.tf.resend_mailed_code(&earlier, &ctx()).await;
    assert!(matches!(begin, Error::Throttled { retry_at } if retry_at == T0 + 3_600));
    assert!(
        matches!(
            resend,
            Err(Error::NoPendingLogin) | Err(Error::Throttled { .. })
        ),
        "{resend:?}"
    );
    assert_eq!(h.mailer.count_for(&bob.user), 5);
}
