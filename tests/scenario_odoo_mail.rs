//! Reference scenario: Odoo's "2FA by mail" enforcement (reference doc 000, "Enforce two-factor
//! authentication").
//!
//! Settings → Permissions → "Enforce two-factor authentication", for "Employees only" or "All
//! users" (portal users too). An enforced user without an authenticator app receives a login
//! code by e-mail: 6 digits, valid one hour, which they may ask for again; sends and failed
//! checks are limited to 5 per hour.

#[allow(dead_code, unreachable_pub)]
#[path = "common/tickets.rs"]
mod tickets;

use twofactor::PendingLogin;
use twofactor::account::PendingStep;
use twofactor::account::{
    Factor, FactorKind, FailureReason, GrantReason, LoginContext, LoginDecision, Reauthenticated,
};
use twofactor::audit::AuditKind;
use twofactor::mail::{Notice, NoticeKind};
use twofactor::service::{Error, TwoFactor};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, EnforcementPolicy, KeyUri, MemoryStore, Principal, RequiredForAll, RequiredForRoles,
    Totp, WhenUnenrolled,
};

const T0: u64 = 1_700_000_000;
const HOUR: u64 = 3_600;

type Service<P> = TwoFactor<MemoryStore, RecordingMailer, P, ManualClock, RecordingAudit>;

/// The radio buttons under "Enforce two-factor authentication".
fn employees_only() -> RequiredForRoles {
    RequiredForRoles::new(["employee"], WhenUnenrolled::MailCode)
}
fn all_users() -> RequiredForAll {
    RequiredForAll::new(WhenUnenrolled::MailCode)
}

fn odoo<P: EnforcementPolicy>(policy: P) -> Service<P> {
    TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .keys(twofactor::testing::test_keys())
        .policy(policy)
        .clock(ManualClock::new(T0))
        .audit(RecordingAudit::new())
        .build()
}

fn employee() -> Principal {
    Principal::new("marc.demo").with_role("employee")
}
fn portal_user() -> Principal {
    Principal::new("joel.willis").with_role("portal")
}

/// The code in the last login e-mail to `p`.
fn mailed_code<P: EnforcementPolicy>(tf: &Service<P>, p: &Principal) -> String {
    tf.mailer()
        .last_login_code_for(&p.user)
        .expect("a login code was mailed")
}

/// Six digits that are not `code`.
fn other_code(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

fn login_codes_sent<P: EnforcementPolicy>(tf: &Service<P>, p: &Principal) -> usize {
    tf.mailer()
        .kinds_for(&p.user)
        .iter()
        .filter(|k| **k == NoticeKind::LoginCode)
        .count()
}

#[tokio::test]
async fn employees_only_mails_a_code_to_employees_and_leaves_portal_users_alone() {
    let tf = odoo(employees_only());
    let ctx = LoginContext::new().device("Chrome on Windows");

    // The employee has no authenticator app: a code is mailed at login.
    let marc = employee();
    let decision = tf.start_login(&marc, None, &ctx).await.unwrap();
    let pending = code_mailed(&decision, T0 + HOUR);
    let Some(Notice::LoginCode {
        expires_at,
        context,
        ..
    }) = tf.mailer().last_for(&marc.user)
    else {
        panic!("expected a login code notice");
    };
    assert_eq!(expires_at, T0 + HOUR);
    assert_eq!(context.device.as_deref(), Some("Chrome on Windows"));
    let code = mailed_code(&tf, &marc);
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));

    // The password alone is not enough: a wrong code fails, the mailed one works.
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&other_code(&code)), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    let granted = tf
        .finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .unwrap();
    assert_eq!(granted.factor, FactorKind::MailedCode);
    assert!(
        tf.audit()
            .kinds_for(&marc.user)
            .contains(&AuditKind::LoginSucceeded {
                factor: FactorKind::MailedCode
            })
    );

    // A portal user is not enforced under "Employees only": password only, no mail.
    let joel = portal_user();
    assert_eq!(
        tf.start_login(&joel, None, &ctx)
            .await
            .unwrap()
            .grant_reason(),
        Some(&GrantReason::NotRequired)
    );
    assert_eq!(tf.mailer().count_for(&joel.user), 0);
}

#[tokio::test]
async fn all_users_mails_a_code_to_portal_users_too() {
    let tf = odoo(all_users());
    let ctx = LoginContext::new();
    for p in [employee(), portal_user()] {
        let decision = tf.start_login(&p, None, &ctx).await.unwrap();
        let pending = code_mailed(&decision, T0 + HOUR);
        let code = mailed_code(&tf, &p);
        tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_enforced_user_with_an_app_is_asked_for_the_app_code_not_mailed() {
    let tf = odoo(employees_only());
    let marc = employee();
    let ctx = LoginContext::new();
    // Logged in with the mailed code (the password alone does not open the set-up page under
    // this policy), marc sets up an app from his preferences.
    assert!(matches!(
        tf.start_enrollment(&marc, "marc", Reauthenticated::at(T0))
            .await,
        Err(Error::SecondFactorRequired)
    ));
    let pending = tf
        .start_login(&marc, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let mailed = mailed_code(&tf, &marc);
    let proof = tf
        .finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx)
        .await
        .unwrap()
        .proof;
    // Still not on the password alone: the proof of this session's mailed-code login opens it.
    assert!(matches!(
        tf.start_enrollment(&marc, "marc", Reauthenticated::at(T0))
            .await,
        Err(Error::SecondFactorRequired)
    ));
    let started = tf
        .start_enrollment_with_proof(&marc, "marc", Reauthenticated::at(T0), &proof)
        .await
        .unwrap();
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    let code = Totp::default().generate(&secret, T0).to_string();
    tf.finish_enrollment(&marc.user, &code).await.unwrap();

    tf.clock().advance(30);
    let decision = tf.start_login(&marc, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    assert_eq!(
        login_codes_sent(&tf, &marc),
        1,
        "no code mailed once enrolled"
    );
    let code = Totp::default()
        .generate(&secret, tf.clock().now())
        .to_string();
    tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_mailed_code_is_valid_for_one_hour_and_only_once() {
    let tf = odoo(employees_only());
    let marc = employee();
    let ctx = LoginContext::new();

    // Valid at 59:59.
    let pending = tf
        .start_login(&marc, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = mailed_code(&tf, &marc);
    tf.clock().set(T0 + HOUR - 1);
    tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .unwrap();
    // Once: the ticket that completed the login is used up (refused before anything is
    // checked or counted), and the code does not work for a new login either.
    let events = tf.audit().kinds_for(&marc.user).len();
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(tf.audit().kinds_for(&marc.user).len(), events);
    let again = tf
        .start_login(&marc, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    if mailed_code(&tf, &marc) != code {
        assert!(matches!(
            tf.finish_login(&again, Factor::MailedCode(&code), None, &ctx)
                .await,
            Err(Error::InvalidCode)
        ));
    }

    // Invalid at 60:00 and later.
    let sent_at = T0 + 2 * HOUR;
    tf.clock().set(sent_at);
    let pending = tf
        .start_login(&marc, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = mailed_code(&tf, &marc);
    assert_eq!(pending.expires_at(), sent_at + HOUR);
    tf.clock().set(sent_at + HOUR);
    // The pending login ends with the code: log in again. Nothing is checked or counted.
    let events = tf.audit().kinds_for(&marc.user).len();
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(tf.audit().kinds_for(&marc.user).len(), events);
    tf.clock().set(sent_at + HOUR + 600);
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    // A pending login edited to claim a later deadline (and a later code expiry) is refused
    // before anything is loaded: nothing checked, nothing counted, nothing audited. (It used
    // to be built with `PendingLogin::new` and get as far as the expired stored code; the
    // sealed ticket cannot be forged, so the edit is refused outright.)
    let forged = tickets::edited(&pending, |c| {
        c.expires_at = sent_at + 2 * HOUR;
        c.step = tickets::Step::MailedCode(sent_at + 2 * HOUR);
    });
    assert_eq!(forged.expires_at(), sent_at + 2 * HOUR);
    let events = tf.audit().kinds_for(&marc.user).len();
    let before = tf.status(&marc.user).await.unwrap();
    assert!(matches!(
        tf.finish_login(&forged, Factor::MailedCode(&code), None, &ctx)
            .await,
        Err(Error::InvalidTicket)
    ));
    assert!(matches!(
        tf.resend_mailed_code(&forged, &ctx).await,
        Err(Error::InvalidTicket)
    ));
    assert_eq!(tf.audit().kinds_for(&marc.user).len(), events);
    assert_eq!(tf.status(&marc.user).await.unwrap(), before);
}

#[tokio::test]
async fn asking_again_mails_a_new_code_that_replaces_the_old_one() {
    let tf = odoo(employees_only());
    let marc = employee();
    let ctx = LoginContext::new();
    let pending = tf
        .start_login(&marc, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let first = mailed_code(&tf, &marc);

    tf.clock().advance(120);
    let expires_at = tf.resend_mailed_code(&pending, &ctx).await.unwrap();
    assert_eq!(expires_at, T0 + 120 + HOUR);
    assert_eq!(login_codes_sent(&tf, &marc), 2);
    let second = mailed_code(&tf, &marc);
    if first != second {
        assert!(matches!(
            tf.finish_login(&pending, Factor::MailedCode(&first), None, &ctx)
                .await,
            Err(Error::InvalidCode)
        ));
    }
    tf.finish_login(&pending, Factor::MailedCode(&second), None, &ctx)
        .await
        .unwrap();

    // Nothing to resend once the login is finished: its ticket is used up.
    assert!(matches!(
        tf.resend_mailed_code(&pending, &ctx).await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(login_codes_sent(&tf, &marc), 2);
}

#[tokio::test]
async fn at_most_five_codes_are_mailed_per_hour() {
    let tf = odoo(employees_only());
    let marc = employee();
    let ctx = LoginContext::new();

    let pending = tf
        .start_login(&marc, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    for _ in 0..4 {
        tf.clock().advance(60);
        tf.resend_mailed_code(&pending, &ctx).await.unwrap();
    }
    assert_eq!(login_codes_sent(&tf, &marc), 5);
    let last = mailed_code(&tf, &marc);

    // The sixth within the hour is refused; the last code still works.
    tf.clock().advance(60);
    assert!(matches!(
        tf.resend_mailed_code(&pending, &ctx).await,
        Err(Error::Throttled { retry_at }) if retry_at == T0 + HOUR
    ));
    // A new login points at the code still valid.
    let decision = tf.start_login(&marc, None, &ctx).await.unwrap();
    let pending = code_mailed(&decision, T0 + 4 * 60 + HOUR);
    assert_eq!(login_codes_sent(&tf, &marc), 5);
    assert!(
        tf.audit()
            .kinds_for(&marc.user)
            .contains(&AuditKind::MailThrottled {
                retry_at: T0 + HOUR
            })
    );
    tf.finish_login(&pending, Factor::MailedCode(&last), None, &ctx)
        .await
        .unwrap();

    // Still within the hour of the first send, with no valid code left: throttled, no mail.
    let throttled = tf.start_login(&marc, None, &ctx).await.unwrap_err();
    assert!(
        matches!(throttled, Error::Throttled { retry_at } if retry_at == T0 + HOUR),
        "{throttled:?}"
    );
    assert_eq!(throttled.http_status(), 429);
    assert_eq!(login_codes_sent(&tf, &marc), 5);

    // An hour after the first send, one more may go.
    tf.clock().set(T0 + HOUR);
    let decision = tf.start_login(&marc, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::CodeMailed { .. }),
        "{decision:?}"
    );
    assert_eq!(login_codes_sent(&tf, &marc), 6);
}

#[tokio::test]
async fn at_most_five_failed_checks_per_hour() {
    let tf = odoo(employees_only());
    let marc = employee();
    let ctx = LoginContext::new();
    let pending = tf
        .start_login(&marc, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = mailed_code(&tf, &marc);
    let wrong = other_code(&code);

    for i in 0..5 {
        tf.clock().set(T0 + 10 * i);
        assert!(matches!(
            tf.finish_login(&pending, Factor::MailedCode(&wrong), None, &ctx)
                .await,
            Err(Error::InvalidCode)
        ));
    }
    // The sixth check is refused without looking at the code, even the right one.
    tf.clock().set(T0 + 100);
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
            .await,
        Err(Error::Throttled { retry_at }) if retry_at == T0 + HOUR
    ));
    assert_eq!(
        tf.status(&marc.user).await.unwrap().throttled_until,
        Some(T0 + HOUR)
    );
    // A new login is refused while throttled, the same way, and no code is mailed for it.
    assert!(matches!(
        tf.start_login(&marc, None, &ctx).await,
        Err(Error::Throttled { retry_at }) if retry_at == T0 + HOUR
    ));
    assert_eq!(login_codes_sent(&tf, &marc), 1);
    let failures = tf
        .audit()
        .kinds_for(&marc.user)
        .iter()
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
    assert_eq!(failures, 5);

    // Typing letters is not a check: not counted, but still no way in.
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode("abcdef"), None, &ctx)
            .await,
        Err(Error::Malformed(_))
    ));

    // An hour after the last failure: the first code has expired with its login, a new login
    // mails a new one.
    tf.clock().set(T0 + HOUR + 40);
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    let decision = tf.start_login(&marc, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::CodeMailed { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    let code = mailed_code(&tf, &marc);
    tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_mailed_code_is_not_an_app_code_nor_a_recovery_code() {
    let tf = odoo(all_users());
    let joel = portal_user();
    let ctx = LoginContext::new();
    let pending = tf
        .start_login(&joel, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = mailed_code(&tf, &joel);
    // Submitted as a TOTP code by a user without an app: refused.
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    // The mailed code itself still works.
    tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .unwrap();
}

/// The pending login of a `CodeMailed` answer whose code expires at `code_expires_at`.
fn code_mailed(decision: &LoginDecision, code_expires_at: u64) -> PendingLogin {
    match decision {
        LoginDecision::CodeMailed { pending } => {
            assert_eq!(pending.step(), &PendingStep::MailedCode { code_expires_at });
            assert_eq!(pending.expires_at(), code_expires_at);
            pending.clone()
        }
        other => panic!("expected CodeMailed, got {other:?}"),
    }
}
