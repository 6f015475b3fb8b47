//! Reference scenario: Bista Solutions' Two-Factor Authentication module for Odoo (reference
//! doc 002).
//!
//! An administrator creates 2FA for a user and clicks "Send Secret Key By Email"; the user gets
//! the e-mail, scans the QR code with Google Authenticator and confirms with a code. At login
//! the user is asked for the code, which works once; the deployment decides how long each code
//! is valid (here a 60-second period instead of the usual 30).

use std::sync::Arc;

use twofactor::account::{Factor, FactorKind, LoginContext, LoginDecision, Settings};
use twofactor::audit::AuditKind;
use twofactor::mail::{Notice, NoticeKind};
use twofactor::provision::OtpKind;
use twofactor::service::{Error, TwoFactor};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    KeyUri, MemoryStore, Principal, RequiredForAll, Secret, Totp, UserId, WhenUnenrolled,
};

/// A multiple of 60 (and 30): step boundaries line up with round numbers below.
const T0: u64 = 1_700_000_040;
const DAY: u64 = 86_400;

type Service =
    TwoFactor<Arc<MemoryStore>, RecordingMailer, RequiredForAll, ManualClock, RecordingAudit>;

fn sixty_seconds() -> Totp {
    Totp::builder().period(60).build().expect("60 s period")
}

fn bista(store: Arc<MemoryStore>, totp: Totp, at: u64) -> Service {
    TwoFactor::builder(store)
        .mailer(RecordingMailer::new())
        .keys(twofactor::testing::test_keys())
        .policy(RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled))
        .clock(ManualClock::new(at))
        .audit(RecordingAudit::new())
        .settings(
            Settings::builder()
                .issuer("Bista ERP")
                .totp(totp)
                .build()
                .expect("settings"),
        )
        .build()
}

/// Admin → Two Factor Authentication → "Send Secret Key By Email"; the user opens the e-mail
/// and scans the QR code. Returns the app's view of the key.
async fn provision_by_mail(tf: &Service, user: &UserId, admin: &UserId) -> KeyUri {
    tf.start_enrollment_by_mail_dangerous(user, admin, "sales@example.com")
        .await
        .expect("provision");
    let uri = tf
        .mailer()
        .last_provisioning_uri_for(user)
        .expect("the secret was mailed to the user");
    KeyUri::parse(&uri).expect("a Key URI")
}

fn app_totp(key: &KeyUri) -> Totp {
    match key.kind() {
        OtpKind::Totp(t) => *t,
        OtpKind::Hotp { .. } => panic!("expected TOTP"),
    }
}

#[tokio::test]
async fn the_admin_creates_2fa_the_secret_reaches_the_user_by_mail_and_the_user_confirms() {
    let tf = bista(Arc::new(MemoryStore::new()), Totp::default(), T0);
    let admin = UserId::new("admin");
    let sales = Principal::new("sales");
    let ctx = LoginContext::new();

    // The admin gets only the expiry of the pending set-up, never the secret.
    let expires_at = tf
        .start_enrollment_by_mail_dangerous(&sales.user, &admin, "sales@example.com")
        .await
        .unwrap();
    assert_eq!(expires_at, T0 + DAY);
    assert_eq!(tf.mailer().count_for(&admin), 0);
    assert_eq!(
        tf.mailer().kinds_for(&sales.user),
        [NoticeKind::ProvisionedSecret]
    );
    assert!(
        tf.audit()
            .kinds_for(&sales.user)
            .contains(&AuditKind::EnrollmentProvisionedByMail {
                admin: admin.clone(),
                expires_at
            })
    );

    // The e-mail: QR code (URI), the key to type, who sent it, until when.
    let mail = tf.mailer().last_for(&sales.user).unwrap();
    let Notice::ProvisionedSecret {
        expires_at: mail_expiry,
        provisioned_by,
        ..
    } = &mail
    else {
        panic!("expected the provisioned secret");
    };
    assert_eq!(*provisioned_by, admin);
    assert_eq!(*mail_expiry, expires_at);
    let manual_key = mail.expose_manual_key().expect("the key to type");
    let key = KeyUri::parse(&tf.mailer().last_provisioning_uri_for(&sales.user).unwrap()).unwrap();
    assert_eq!(key.issuer(), Some("Bista ERP"));
    assert_eq!(key.account(), "sales@example.com");
    let typed = Secret::from_base32(manual_key).unwrap();
    assert_eq!(typed.expose_secret(), key.secret().expose_secret());
    // Debug output (logs) never shows it.
    assert!(!format!("{:?}", tf.mailer().sent()).contains(key.secret().to_base32().as_str()));

    // Not enrolled until the user confirms: the login still goes to set-up.
    let decision = tf.start_login(&sales, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );

    // The user scans it and confirms with the code the app shows.
    let totp = app_totp(&key);
    let code = totp.generate(key.secret(), T0).to_string();
    tf.finish_enrollment(&sales.user, &code).await.unwrap();
    assert!(tf.status(&sales.user).await.unwrap().is_enrolled());

    // Login: "the user will be asked to add the secret code password", for one-time use.
    tf.clock().set(T0 + 60);
    let decision = tf.start_login(&sales, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    let code = totp.generate(key.secret(), T0 + 60).to_string();
    let granted = tf
        .finish_login(&pending, Factor::Totp(&code), None, &ctx)
        .await
        .unwrap();
    assert_eq!(granted.factor, FactorKind::Totp);
    let pending = tf
        .start_login(&sales, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
}

#[tokio::test]
async fn the_mailed_secret_must_be_confirmed_within_a_day_and_not_over_an_active_one() {
    let tf = bista(Arc::new(MemoryStore::new()), Totp::default(), T0);
    let admin = UserId::new("admin");
    let user = UserId::new("sales");

    let key = provision_by_mail(&tf, &user, &admin).await;
    tf.clock().set(T0 + DAY);
    let code = app_totp(&key).generate(key.secret(), T0 + DAY).to_string();
    assert!(matches!(
        tf.finish_enrollment(&user, &code).await,
        Err(Error::NoPendingEnrollment)
    ));

    // Provision again, confirm; provisioning over an active authenticator needs a reset.
    let key = provision_by_mail(&tf, &user, &admin).await;
    let code = app_totp(&key).generate(key.secret(), T0 + DAY).to_string();
    tf.finish_enrollment(&user, &code).await.unwrap();
    assert!(matches!(
        tf.start_enrollment_by_mail_dangerous(&user, &admin, "sales@example.com")
            .await,
        Err(Error::AlreadyEnrolled)
    ));
    tf.reset_by_admin(&user, &admin).await.unwrap();
    let fresh = provision_by_mail(&tf, &user, &admin).await;
    assert_ne!(fresh.secret().expose_secret(), key.secret().expose_secret());
}

#[tokio::test]
async fn a_deployment_chooses_a_60_second_code_period() {
    let tf = bista(Arc::new(MemoryStore::new()), sixty_seconds(), T0);
    let admin = UserId::new("admin");
    let sales = Principal::new("sales");
    let ctx = LoginContext::new();

    let key = provision_by_mail(&tf, &sales.user, &admin).await;
    // The QR code tells the app about the period.
    let totp = app_totp(&key);
    assert_eq!(totp.period(), 60);
    assert!(
        tf.mailer()
            .last_provisioning_uri_for(&sales.user)
            .unwrap()
            .contains("period=60")
    );
    tf.finish_enrollment(&sales.user, &totp.generate(key.secret(), T0).to_string())
        .await
        .unwrap();
    let secret = key.secret();
    let step = |t: u64| t / 60;
    let e = step(T0);

    // A code from the right 60 s step works anywhere in that step...
    let t = (e + 5) * 60 + 59;
    tf.clock().set(t);
    let pending = tf
        .start_login(&sales, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let right = sixty_seconds().generate_at_step(secret, e + 5).to_string();
    tf.finish_login(&pending, Factor::Totp(&right), None, &ctx)
        .await
        .unwrap();

    // ... and one step late (clock drift, slow typing), but not two.
    tf.clock().set((e + 8) * 60 + 59);
    let pending = tf
        .start_login(&sales, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let late_by_one = sixty_seconds().generate_at_step(secret, e + 7).to_string();
    tf.finish_login(&pending, Factor::Totp(&late_by_one), None, &ctx)
        .await
        .unwrap();
    let now = (e + 12) * 60;
    tf.clock().set(now);
    let pending = tf
        .start_login(&sales, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let late_by_two = sixty_seconds().generate_at_step(secret, e + 10).to_string();
    let window: Vec<String> = (e + 11..=e + 13)
        .map(|s| sixty_seconds().generate_at_step(secret, s).to_string())
        .collect();
    if !window.contains(&late_by_two) {
        assert!(matches!(
            tf.finish_login(&pending, Factor::Totp(&late_by_two), None, &ctx)
                .await,
            Err(Error::InvalidCode)
        ));
    }

    // The code a 30-second app would show now is the wrong period's code: refused.
    let wrong_period = Totp::default().generate(secret, now).to_string();
    if !window.contains(&wrong_period) {
        assert!(matches!(
            tf.finish_login(&pending, Factor::Totp(&wrong_period), None, &ctx)
                .await,
            Err(Error::InvalidCode)
        ));
    }
    // The right period's code at the same moment is accepted.
    let right = sixty_seconds().generate(secret, now).to_string();
    tf.finish_login(&pending, Factor::Totp(&right), None, &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn changing_the_period_later_keeps_enrolled_users_on_theirs() {
    let store = Arc::new(MemoryStore::new());
    let admin = UserId::new("admin");
    let sales = Principal::new("sales");
    let ctx = LoginContext::new();

    let sixty = bista(Arc::clone(&store), sixty_seconds(), T0);
    let key = provision_by_mail(&sixty, &sales.user, &admin).await;
    sixty
        .finish_enrollment(
            &sales.user,
            &sixty_seconds().generate(key.secret(), T0).to_string(),
        )
        .await
        .unwrap();

    // The deployment switches back to 30 s for new enrollments.
    let later = T0 + 10 * 60;
    let thirty = bista(Arc::clone(&store), Totp::default(), later);
    assert_eq!(
        thirty.status(&sales.user).await.unwrap().enrolled_at,
        Some(T0)
    );
    let pending = thirty
        .start_login(&sales, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = sixty_seconds().generate(key.secret(), later).to_string();
    thirty
        .finish_login(&pending, Factor::Totp(&code), None, &ctx)
        .await
        .unwrap();
}
