//! Reference scenario: kw_2fa, "Forced Two-Factor Authentication" for Odoo (reference doc 003).
//!
//! Every user must configure TOTP before accessing the system; existing users are prompted on
//! their next login and blocked until set-up is complete ("no backdoor for unenrolled
//! accounts"). There is no "trusted device / remember me": a code at every login. Only the
//! superuser (Odoo's root) bypasses the enforcement, and the audit trail shows it.

use std::sync::Arc;

use twofactor::account::{
    Factor, FactorKind, GrantReason, LoginContext, LoginDecision, Reauthenticated,
};
use twofactor::audit::AuditKind;
use twofactor::mail::NoticeKind;
use twofactor::policy::PolicyExt;
use twofactor::policy::SUPERUSER_EXEMPTION;
use twofactor::service::{Error, TwoFactor};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, EnforcementPolicy, KeyUri, MemoryStore, Optional, Principal, RequiredForAll,
    Requirement, Secret, Totp, UserId, WhenUnenrolled,
};

const T0: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

type Service<P> = TwoFactor<Arc<MemoryStore>, RecordingMailer, P, ManualClock, RecordingAudit>;

/// kw_2fa's `_mfa_type`: TOTP forced for everyone but the root user, no remembered devices.
fn kw_2fa_policy() -> impl EnforcementPolicy {
    RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled)
        .without_trusted_devices()
        .exempt_superuser()
}

fn service<P: EnforcementPolicy>(store: Arc<MemoryStore>, policy: P, at: u64) -> Service<P> {
    TwoFactor::builder(store)
        .mailer(RecordingMailer::new())
        .keys(twofactor::testing::test_keys())
        .policy(policy)
        .clock(ManualClock::new(at))
        .audit(RecordingAudit::new())
        .build()
}

fn kw_2fa() -> Service<impl EnforcementPolicy> {
    service(Arc::new(MemoryStore::new()), kw_2fa_policy(), T0)
}

fn code_at(secret: &Secret, now: u64) -> String {
    Totp::default().generate(secret, now).to_string()
}

/// The QR set-up page kw_2fa redirects to; returns the secret the app stored.
async fn set_up_totp<P: EnforcementPolicy>(tf: &Service<P>, user: &UserId) -> Secret {
    let now = tf.clock().now();
    let started = tf
        .start_enrollment(
            &Principal::new(user.clone()),
            user.as_str(),
            Reauthenticated::at(now),
        )
        .await
        .expect("start enrollment");
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    tf.finish_enrollment(user, &code_at(&secret, now))
        .await
        .expect("finish enrollment");
    secret
}

#[test]
fn the_policy_is_required_without_trusted_devices_and_exempts_only_root() {
    let policy = kw_2fa_policy();
    let status = twofactor::EnrollmentStatus::unenrolled();
    assert_eq!(
        policy.requirement(&Principal::new("demo"), &status, T0),
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: None,
            trusted_devices: false,
        }
    );
    assert_eq!(
        policy.requirement(&Principal::new("__system__").superuser(true), &status, T0),
        Requirement::Exempt {
            reason: SUPERUSER_EXEMPTION.to_owned()
        }
    );
}

#[tokio::test]
async fn first_login_is_sent_to_set_up_and_nothing_else_gets_in() {
    let tf = kw_2fa();
    let demo = Principal::new("demo").with_role("employee");
    let user = &demo.user;
    let ctx = LoginContext::new();

    let decision = tf.start_login(&demo, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    assert_eq!(
        tf.audit().kinds_for(user).last(),
        Some(&AuditKind::LoginBlockedUntilEnrolled)
    );

    // Every way around the set-up page is closed.
    let attempts: [Factor<'_>; 5] = [
        Factor::Totp("123456"),
        Factor::Totp("000000"),
        Factor::RecoveryCode("ABCD-EFGH-JKMN-PQRS"),
        Factor::MailedCode("123456"),
        Factor::Totp("not a code"),
    ];
    for factor in attempts {
        let r = tf
            .finish_login(&pending, factor, Some("my laptop"), &ctx)
            .await;
        assert!(
            matches!(r, Err(Error::InvalidCode | Error::Malformed(_))),
            "{factor:?} got through: {r:?}"
        );
    }
    assert!(matches!(
        tf.resend_mailed_code(&pending, &ctx).await,
        Err(Error::NoPendingLogin)
    ));
    let forged_token = "ab".repeat(32);
    let decision = tf
        .start_login(&demo, Some(&forged_token), &ctx)
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    // No code is ever mailed in place of the app, and waiting changes nothing (no grace).
    assert!(!tf.mailer().kinds_for(user).contains(&NoticeKind::LoginCode));
    tf.clock().advance(30 * DAY);
    let decision = tf.start_login(&demo, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");

    // A started but unconfirmed set-up is no backdoor either: the pending secret's code does
    // not log in, and the next login still goes to set-up.
    let now = tf.clock().now();
    let started = tf.start_forced_enrollment(&pending, "demo").await.unwrap();
    let pending_secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    assert!(matches!(
        tf.finish_login(
            &pending,
            Factor::Totp(&code_at(&pending_secret, now)),
            None,
            &ctx
        )
        .await,
        Err(Error::InvalidCode)
    ));
    let decision = tf.start_login(&demo, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    // Reloading the set-up page shows the same secret: the one already scanned keeps working.
    let resumed = tf.start_forced_enrollment(&pending, "demo").await.unwrap();
    assert_eq!(resumed.uri(), started.uri());

    // Scan once with any authenticator and you are in.
    tf.clock().advance(30);
    let now = tf.clock().now();
    let enrolled = tf
        .finish_forced_enrollment(&pending, &code_at(&pending_secret, now))
        .await
        .unwrap();
    assert!(enrolled.login_completed());
    assert!(tf.audit().kinds_for(user).contains(&AuditKind::Enrolled));

    // From now on: a code at every login.
    tf.clock().advance(30);
    let decision = tf.start_login(&demo, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    let now = tf.clock().now();
    let granted = tf
        .finish_login(
            &pending,
            Factor::Totp(&code_at(&pending_secret, now)),
            None,
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(granted.factor, FactorKind::Totp);
}

#[tokio::test]
async fn existing_users_are_prompted_on_next_login() {
    // Before kw_2fa is installed: Odoo's opt-in. One user enabled 2FA, one did not.
    let store = Arc::new(MemoryStore::new());
    let before = service(Arc::clone(&store), Optional, T0);
    let ctx = LoginContext::new();
    let careful = Principal::new("careful");
    let casual = Principal::new("casual");
    let secret = set_up_totp(&before, &careful.user).await;
    assert_eq!(
        before
            .start_login(&casual, None, &ctx)
            .await
            .unwrap()
            .grant_reason(),
        Some(&GrantReason::NotRequired)
    );

    // kw_2fa installed on the same database.
    let after = service(Arc::clone(&store), kw_2fa_policy(), T0 + DAY);
    let decision = after.start_login(&casual, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let decision = after.start_login(&careful, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    after
        .finish_login(
            &pending,
            Factor::Totp(&code_at(&secret, T0 + DAY)),
            None,
            &ctx,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn no_trusted_devices_a_code_at_every_login() {
    let store = Arc::new(MemoryStore::new());
    let ctx = LoginContext::new().device("Firefox on Linux");
    let demo = Principal::new("demo");

    // A device remembered under Odoo's built-in opt-in, before kw_2fa was installed.
    let before = service(Arc::clone(&store), Optional, T0);
    let secret = set_up_totp(&before, &demo.user).await;
    before.clock().advance(30);
    let pending = before
        .start_login(&demo, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let old_token = before
        .finish_login(
            &pending,
            Factor::Totp(&code_at(&secret, T0 + 30)),
            Some("Firefox on Linux"),
            &ctx,
        )
        .await
        .unwrap()
        .device_token
        .expect("opt-in allows remembering the device");

    let tf = service(Arc::clone(&store), kw_2fa_policy(), T0 + 60);
    // The old cookie never skips the challenge.
    let decision = tf
        .start_login(&demo, Some(old_token.expose_secret()), &ctx)
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    // "Remember this device" is ignored: no token, nothing trusted, nothing mailed about it.
    let granted = tf
        .finish_login(
            &pending,
            Factor::Totp(&code_at(&secret, T0 + 60)),
            Some("Firefox on Linux"),
            &ctx,
        )
        .await
        .unwrap();
    assert!(granted.device_token.is_none());
    assert!(
        !tf.audit()
            .kinds_for(&demo.user)
            .iter()
            .any(|k| matches!(k, AuditKind::DeviceTrusted { .. }))
    );
    assert!(
        !tf.mailer()
            .kinds_for(&demo.user)
            .contains(&NoticeKind::DeviceTrusted)
    );

    // The next login, on the same device, a minute later: asked again.
    tf.clock().advance(60);
    let decision = tf
        .start_login(&demo, Some(old_token.expose_secret()), &ctx)
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
}

#[tokio::test]
async fn the_superuser_is_exempt_and_the_audit_trail_says_so_every_time() {
    let tf = kw_2fa();
    let ctx = LoginContext::new();
    let root = Principal::new("__system__").superuser(true);
    let admin = Principal::new("admin").with_role("admin");

    for _ in 0..2 {
        assert_eq!(
            tf.start_login(&root, None, &ctx)
                .await
                .unwrap()
                .grant_reason(),
            Some(&GrantReason::Exempt {
                reason: "superuser".to_owned()
            })
        );
        tf.clock().advance(60);
    }
    let exemptions: Vec<_> = tf
        .audit()
        .events()
        .into_iter()
        .filter(|e| e.user == root.user)
        .filter(|e| {
            e.kind
                == AuditKind::PolicyExemptionApplied {
                    reason: "superuser".to_owned(),
                }
        })
        .map(|e| e.at)
        .collect();
    assert_eq!(exemptions, [T0, T0 + 60]);

    // Administrators other than root are not exempt.
    let decision = tf.start_login(&admin, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );

    // Root may still set up TOTP; then root answers its own challenge like everyone.
    let secret = set_up_totp(&tf, &root.user).await;
    tf.clock().advance(30);
    let decision = tf.start_login(&root, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    let now = tf.clock().now();
    tf.finish_login(&pending, Factor::Totp(&code_at(&secret, now)), None, &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_enrollment_history_is_in_the_audit_trail() {
    let tf = kw_2fa();
    let demo = Principal::new("demo");
    let ctx = LoginContext::new();
    let blocked = tf
        .start_login(&demo, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("MustEnroll");
    // The set-up page kw_2fa redirects the blocked login to.
    let now = tf.clock().now();
    let started = tf.start_forced_enrollment(&blocked, "demo").await.unwrap();
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    assert!(
        tf.finish_forced_enrollment(&blocked, &code_at(&secret, now))
            .await
            .unwrap()
            .login_completed()
    );
    tf.clock().advance(30);
    let pending = tf
        .start_login(&demo, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let now = tf.clock().now();
    tf.finish_login(&pending, Factor::Totp(&code_at(&secret, now)), None, &ctx)
        .await
        .unwrap();

    let kinds = tf.audit().kinds_for(&demo.user);
    assert!(
        matches!(
            kinds.as_slice(),
            [
                AuditKind::LoginBlockedUntilEnrolled,
                AuditKind::EnrollmentStarted {
                    rotation: false,
                    ..
                },
                AuditKind::Enrolled,
                // The blocked login, completed by the enrollment.
                AuditKind::LoginSucceeded {
                    factor: FactorKind::Totp
                },
                // The next login, with a code, from the one authenticator.
                AuditKind::LoginSucceeded {
                    factor: FactorKind::Totp
                },
                AuditKind::AuthenticatorUsed { .. },
            ]
        ),
        "{kinds:?}"
    );
}
