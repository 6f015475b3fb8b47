//! Reference scenario: Odoo's opt-in two-factor authentication (reference docs 000 and 001).
//!
//! A user enables 2FA from "My Profile → Account Security" after confirming their password,
//! scans the QR code (or clicks "Cannot scan it?" and types the key), enters the verification
//! code and clicks "Activate". Later logins ask for the code; "don't ask again on this device"
//! skips it until the trust expires or is revoked. A user who loses their phone asks an
//! administrator to deactivate 2FA, logs in with the password alone, and can enable it again.

use twofactor::account::{
    Factor, FactorKind, GrantReason, LoginContext, LoginDecision, Reauthenticated, Settings,
};
use twofactor::audit::AuditKind;
use twofactor::mail::{DisabledBy, Notice, NoticeKind};
use twofactor::provision::OtpKind;
use twofactor::service::{Error, TwoFactor};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{Clock, KeyUri, MemoryStore, Optional, Principal, Secret, Totp, UserId};

const T0: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

type Service = TwoFactor<MemoryStore, RecordingMailer, Optional, ManualClock, RecordingAudit>;

fn odoo() -> Service {
    TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .keys(twofactor::testing::test_keys())
        .policy(Optional)
        .clock(ManualClock::new(T0))
        .audit(RecordingAudit::new())
        .settings(
            Settings::builder()
                .issuer("Odoo")
                .build()
                .expect("settings"),
        )
        .build()
}

fn now(tf: &Service) -> u64 {
    tf.clock().now()
}

/// What the authenticator app shows for `secret` right now.
fn app_code(tf: &Service, secret: &Secret) -> String {
    Totp::default().generate(secret, now(tf)).to_string()
}

/// A code from a different secret: what a wrong guess looks like.
fn wrong_code(tf: &Service, secret: &Secret) -> String {
    let right = app_code(tf, secret);
    let other = Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").expect("secret");
    let mut code = Totp::default().generate(&other, now(tf)).to_string();
    if code == right {
        code = if right == "000000" {
            "000001"
        } else {
            "000000"
        }
        .to_owned();
    }
    code
}

/// Profile → Account Security → toggle → password → QR → code → Activate. Returns the secret
/// the app stored (parsed from the QR code's URI, as an app does).
async fn enable_from_profile(tf: &Service, user: &UserId) -> Secret {
    let started = tf
        .start_enrollment(
            &Principal::new(user.clone()),
            "mitchell@example.com",
            Reauthenticated::at(now(tf)),
        )
        .await
        .expect("start enrollment");
    let scanned = KeyUri::parse(started.uri()).expect("the QR code holds a Key URI");
    let secret = scanned.secret().clone();
    let code = app_code(tf, &secret);
    tf.finish_enrollment(user, &code).await.expect("activate");
    secret
}

#[tokio::test]
async fn enable_from_profile_after_confirming_the_password_then_log_in_with_a_code() {
    let tf = odoo();
    let mitchell = Principal::new("mitchell").with_role("employee");
    let user = &mitchell.user;
    let ctx = LoginContext::new().device("Firefox on Linux");

    // Before: opt-in, not enabled, the password is enough.
    assert_eq!(
        tf.start_login(&mitchell, None, &ctx)
            .await
            .unwrap()
            .grant_reason(),
        Some(&GrantReason::NotRequired)
    );

    // "Security Control": the toggle needs a password confirmation; an old one is refused.
    let stale = Reauthenticated::at(now(&tf) - 11 * 60);
    assert!(matches!(
        tf.start_enrollment(&Principal::new(user.clone()), "mitchell@example.com", stale)
            .await,
        Err(Error::ReauthenticationRequired)
    ));
    assert!(
        tf.status(user)
            .await
            .unwrap()
            .pending_enrollment_expires_at
            .is_none()
    );

    // Password confirmed: the activation pop-up with the QR code.
    let started = tf
        .start_enrollment(
            &Principal::new(user.clone()),
            "mitchell@example.com",
            Reauthenticated::at(now(&tf)),
        )
        .await
        .unwrap();
    assert!(started.qr_svg().starts_with("<svg"));
    let scanned = KeyUri::parse(started.uri()).unwrap();
    assert_eq!(scanned.issuer(), Some("Odoo"));
    assert_eq!(scanned.account(), "mitchell@example.com");
    assert_eq!(scanned.kind(), &OtpKind::Totp(Totp::default()));

    // "Cannot scan it?": the grouped key typed by hand is the same secret.
    let key = started.manual_key();
    assert!(key.split(' ').all(|group| group.len() <= 4), "{key:?}");
    let typed = Secret::from_base32(key).unwrap();
    assert_eq!(typed.expose_secret(), scanned.secret().expose_secret());
    assert_eq!(typed.bits(), 160);
    let secret = typed;

    // A mistyped verification code does not activate.
    let wrong = wrong_code(&tf, &secret);
    assert!(matches!(
        tf.finish_enrollment(user, &wrong).await,
        Err(Error::InvalidCode)
    ));
    assert!(!tf.status(user).await.unwrap().is_enrolled());

    // The right one does: recovery codes shown once, a notice, an audit entry.
    let code = app_code(&tf, &secret);
    let enrolled = tf.finish_enrollment(user, &code).await.unwrap();
    assert_eq!(enrolled.recovery_codes().len(), 10);
    let status = tf.status(user).await.unwrap();
    assert_eq!(status.enrolled_at, Some(T0));
    assert_eq!(status.recovery_codes_left, 10);
    assert_eq!(tf.mailer().kinds_for(user), [NoticeKind::Enabled]);
    assert!(tf.audit().kinds_for(user).contains(&AuditKind::Enrolled));

    // Log out, log in: the password is no longer enough.
    let decision = tf.start_login(&mitchell, None, &ctx).await.unwrap();
    let LoginDecision::Challenge { pending } = decision else {
        panic!("expected a challenge, got {decision:?}");
    };
    assert!(pending.accepts(FactorKind::Totp));
    assert!(pending.accepts(FactorKind::RecoveryCode));
    assert!(!pending.accepts(FactorKind::MailedCode));
    assert_eq!(pending.principal(), &mitchell);

    // The code that activated 2FA cannot be used to log in (same time step).
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    assert!(tf.audit().kinds_for(user).iter().any(AuditKind::is_replay));

    // Half a minute later the app shows the next code: "Log in".
    tf.clock().advance(30);
    let code = app_code(&tf, &secret);
    let granted = tf
        .finish_login(&pending, Factor::Totp(&code), None, &ctx)
        .await
        .unwrap();
    assert_eq!(granted.factor, FactorKind::Totp);
    assert!(granted.device_token.is_none());
    assert!(
        tf.audit()
            .kinds_for(user)
            .contains(&AuditKind::LoginSucceeded {
                factor: FactorKind::Totp
            })
    );

    // Each login asks again; a wrong code is refused.
    tf.clock().advance(30);
    let decision = tf.start_login(&mitchell, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    let wrong = wrong_code(&tf, &secret);
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&wrong), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
}

#[tokio::test]
async fn the_same_code_never_logs_in_twice() {
    let tf = odoo();
    let mitchell = Principal::new("mitchell");
    let ctx = LoginContext::new();
    let secret = enable_from_profile(&tf, &mitchell.user).await;

    tf.clock().advance(60);
    let code = app_code(&tf, &secret);
    let pending = tf
        .start_login(&mitchell, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
        .await
        .unwrap();
    // An attacker who saw the code over the user's shoulder, within the same 30 s.
    tf.clock().advance(5);
    let pending = tf
        .start_login(&mitchell, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    assert!(
        tf.audit()
            .kinds_for(&mitchell.user)
            .iter()
            .any(AuditKind::is_replay)
    );
}

#[tokio::test]
async fn dont_ask_again_on_this_device_until_expiry_or_revocation() {
    let tf = odoo();
    let mitchell = Principal::new("mitchell");
    let user = &mitchell.user;
    let firefox = LoginContext::new().device("Firefox on Linux");
    let secret = enable_from_profile(&tf, user).await;

    // Log in with a code and tick "Don't ask again on this device".
    tf.clock().advance(30);
    let pending = tf
        .start_login(&mitchell, None, &firefox)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = app_code(&tf, &secret);
    let granted = tf
        .finish_login(
            &pending,
            Factor::Totp(&code),
            Some("Firefox on Linux"),
            &firefox,
        )
        .await
        .unwrap();
    let token = granted.device_token.expect("a device token for the cookie");
    let trusted_at = now(&tf);
    assert_eq!(token.expires_at(), trusted_at + 90 * DAY);
    assert_eq!(
        tf.mailer().kinds_for(user).last(),
        Some(&NoticeKind::DeviceTrusted)
    );
    let devices = tf.list_devices(user).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].label, "Firefox on Linux");

    // Next week, same browser: no code asked.
    tf.clock().advance(7 * DAY);
    assert_eq!(
        tf.start_login(&mitchell, Some(token.expose_secret()), &firefox)
            .await
            .unwrap()
            .grant_reason(),
        Some(&GrantReason::TrustedDevice {
            device: token.id().clone()
        })
    );
    // Another browser (no cookie, or a forged one) is still asked.
    let decision = tf.start_login(&mitchell, None, &firefox).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let forged = "0".repeat(64);
    let decision = tf
        .start_login(&mitchell, Some(&forged), &firefox)
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );

    // One second before 90 days: still trusted. At 90 days: asked again.
    tf.clock().set(trusted_at + 90 * DAY - 1);
    assert!(matches!(
        tf.start_login(&mitchell, Some(token.expose_secret()), &firefox)
            .await
            .unwrap(),
        LoginDecision::Granted {
            reason: GrantReason::TrustedDevice { .. },
            ..
        }
    ));
    tf.clock().set(trusted_at + 90 * DAY);
    let decision = tf
        .start_login(&mitchell, Some(token.expose_secret()), &firefox)
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    assert_eq!(
        tf.audit().kinds_for(user).last(),
        Some(&AuditKind::DeviceTokenRefused)
    );

    // Trust it again, then revoke it from the account page: asked again at once.
    let code = app_code(&tf, &secret);
    let granted = tf
        .finish_login(
            &pending,
            Factor::Totp(&code),
            Some("Firefox on Linux"),
            &firefox,
        )
        .await
        .unwrap();
    let token = granted.device_token.unwrap();
    tf.clock().advance(60);
    assert!(matches!(
        tf.start_login(&mitchell, Some(token.expose_secret()), &firefox)
            .await
            .unwrap(),
        LoginDecision::Granted { .. }
    ));
    tf.revoke_device(user, token.id()).await.unwrap();
    assert!(tf.list_devices(user).await.unwrap().is_empty());
    let decision = tf
        .start_login(&mitchell, Some(token.expose_secret()), &firefox)
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
}

#[tokio::test]
async fn lost_phone_admin_deactivates_password_only_then_enroll_again() {
    let tf = odoo();
    let mitchell = Principal::new("mitchell");
    let user = &mitchell.user;
    let admin = UserId::new("admin");
    let ctx = LoginContext::new();
    let old_secret = enable_from_profile(&tf, user).await;
    let old_recovery: Vec<String> = {
        // A fresh set to keep, as the user printed them (a code from the app proves the
        // second factor: the password alone no longer regenerates them).
        tf.clock().advance(30);
        let code = app_code(&tf, &old_secret);
        let codes = tf
            .regenerate_recovery_codes(user, Reauthenticated::at(now(&tf)), Factor::Totp(&code))
            .await
            .unwrap();
        codes
            .expose_secret()
            .iter()
            .map(|c| (*c).to_owned())
            .collect()
    };

    // A trusted browser from before the loss.
    tf.clock().advance(30);
    let pending = tf
        .start_login(&mitchell, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = app_code(&tf, &old_secret);
    let token = tf
        .finish_login(&pending, Factor::Totp(&code), Some("old laptop"), &ctx)
        .await
        .unwrap()
        .device_token
        .unwrap();

    // The phone is lost: without the authenticator the login cannot finish.
    tf.clock().advance(3_600);
    let decision = tf.start_login(&mitchell, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");

    // The administrator deactivates 2FA on the account.
    tf.reset_by_admin(user, &admin).await.unwrap();
    assert!(!tf.status(user).await.unwrap().is_enrolled());
    assert!(tf.list_devices(user).await.unwrap().is_empty());
    assert!(matches!(
        tf.mailer().last_for(user),
        Some(Notice::Disabled {
            by: DisabledBy::Admin { admin: a }
        }) if a == admin
    ));
    assert!(
        tf.audit()
            .kinds_for(user)
            .contains(&AuditKind::ResetByAdmin {
                admin: admin.clone(),
                devices_revoked: 1
            })
    );

    // Password only.
    assert_eq!(
        tf.start_login(&mitchell, None, &ctx)
            .await
            .unwrap()
            .grant_reason(),
        Some(&GrantReason::NotRequired)
    );
    // Whoever finds the phone, the old cookie or the printed codes gets nothing from them.
    // The login started before the reset is revoked by it: refused before any code is looked
    // at (it used to get as far as checking the code).
    let code = app_code(&tf, &old_secret);
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    assert!(matches!(
        tf.finish_login(&pending, Factor::RecoveryCode(&old_recovery[0]), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(
        tf.start_login(&mitchell, Some(token.expose_secret()), &ctx)
            .await
            .unwrap()
            .grant_reason(),
        Some(&GrantReason::NotRequired)
    );

    // Enroll again with the new phone: a new secret; the old one stays useless.
    tf.clock().advance(60);
    let new_secret = enable_from_profile(&tf, user).await;
    assert_ne!(new_secret.expose_secret(), old_secret.expose_secret());
    tf.clock().advance(30);
    let decision = tf
        .start_login(&mitchell, Some(token.expose_secret()), &ctx)
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    let old = app_code(&tf, &old_secret);
    let new = app_code(&tf, &new_secret);
    if old != new {
        assert!(matches!(
            tf.finish_login(&pending, Factor::Totp(&old), None, &ctx)
                .await,
            Err(Error::InvalidCode)
        ));
    }
    tf.finish_login(&pending, Factor::Totp(&new), None, &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn recovery_code_when_the_phone_is_not_at_hand() {
    let tf = odoo();
    let mitchell = Principal::new("mitchell");
    let ctx = LoginContext::new();
    let started = tf
        .start_enrollment(&mitchell, "m", Reauthenticated::at(now(&tf)))
        .await
        .unwrap();
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    let code = app_code(&tf, &secret);
    let enrolled = tf.finish_enrollment(&mitchell.user, &code).await.unwrap();
    let recovery: Vec<String> = enrolled
        .recovery_codes()
        .expose_secret()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();

    tf.clock().advance(DAY);
    let pending = tf
        .start_login(&mitchell, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let granted = tf
        .finish_login(&pending, Factor::RecoveryCode(&recovery[3]), None, &ctx)
        .await
        .unwrap();
    assert_eq!(granted.factor, FactorKind::RecoveryCode);
    assert_eq!(granted.recovery_codes_left, Some(9));
    assert_eq!(
        tf.mailer().kinds_for(&mitchell.user).last(),
        Some(&NoticeKind::RecoveryCodeUsed)
    );

    // Used once, never again: not with the ticket that completed the login (used up), nor
    // with a new login's.
    assert!(matches!(
        tf.finish_login(&pending, Factor::RecoveryCode(&recovery[3]), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    let pending = tf
        .start_login(&mitchell, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    assert!(matches!(
        tf.finish_login(&pending, Factor::RecoveryCode(&recovery[3]), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(
        tf.status(&mitchell.user).await.unwrap().recovery_codes_left,
        9
    );
}
