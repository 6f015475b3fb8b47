//! Reference scenario: Onum's tenant-wide two-factor authentication (reference doc 004).
//!
//! An owner switches the "Two-factor authentication" toggle on for a tenant; at their next login
//! every user of that tenant verifies their identity again, scans a QR code, enters the 6-digit
//! code, clicks "Enable" and receives a confirmation e-mail. From then on each login asks for a
//! code. When the owner switches the toggle off, the tenant goes back to e-mail + password, even
//! for users who enabled 2FA (an explicit exemption, recorded in the audit trail at each such
//! login). Other tenants are not affected. A tenant the switch does not know (never switched,
//! misspelled, switches not yet restored after a restart) never lets a user who enabled 2FA in
//! on the password alone.

use std::sync::Arc;

use twofactor::account::{Factor, GrantReason, LoginContext, LoginDecision, Reauthenticated};
use twofactor::audit::AuditKind;
use twofactor::mail::NoticeKind;
use twofactor::policy::UnknownTenant;
use twofactor::service::{Error, TwoFactor};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, KeyUri, MemoryStore, PerTenant, Principal, RequiredForAll, Secret, Totp, UserId,
};

const T0: u64 = 1_700_000_000;

type Service = TwoFactor<MemoryStore, RecordingMailer, Arc<PerTenant>, ManualClock, RecordingAudit>;

/// The service, and the owner's handle on the same tenant switch.
fn onum() -> (Service, Arc<PerTenant>) {
    // Tenants nobody switched are opt-in: password only until someone enables 2FA.
    let toggle = Arc::new(PerTenant::new(
        RequiredForAll::default(),
        UnknownTenant::OptIn,
    ));
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .keys(twofactor::testing::test_keys())
        .policy(Arc::clone(&toggle))
        .clock(ManualClock::new(T0))
        .audit(RecordingAudit::new())
        .build();
    (tf, toggle)
}

fn code_now(tf: &Service, secret: &Secret) -> String {
    Totp::default()
        .generate(secret, tf.clock().now())
        .to_string()
}

/// Identity verified at `verified_at`: the configuration screen, QR scanned, code, "Enable".
async fn enable(tf: &Service, user: &UserId, verified_at: u64) -> Result<Secret, Error> {
    let started = tf
        .start_enrollment(
            &Principal::new(user.clone()),
            user.as_str(),
            Reauthenticated::at(verified_at),
        )
        .await?;
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    tf.finish_enrollment(user, &code_now(tf, &secret)).await?;
    Ok(secret)
}

const OFF: Option<GrantReason> = Some(GrantReason::Off);

/// Why `start_login` let `who` in (`None`: it did not).
async fn reason(tf: &Service, who: &Principal) -> Option<GrantReason> {
    let decision = tf.start_login(who, None, &LoginContext::new()).await;
    decision.unwrap().grant_reason().cloned()
}

#[tokio::test]
async fn owner_switches_2fa_on_and_every_user_enables_it_at_next_login() {
    let (tf, owner) = onum();
    let ctx = LoginContext::new();
    let ana = Principal::new("ana@acme.example").in_tenant("acme");
    let ben = Principal::new("ben@acme.example").in_tenant("acme");

    // Before: e-mail + password.
    assert_eq!(reason(&tf, &ana).await, OFF);
    // Ana was logged in (password checked) an hour before the owner flips the toggle.
    let ana_session_started = tf.clock().now();
    tf.clock().advance(3_600);
    owner.enable("acme");
    assert!(owner.is_enabled("acme"));

    // Next login of every tenant user: set up 2FA first.
    for p in [&ana, &ben] {
        let decision = tf.start_login(p, None, &ctx).await.unwrap();
        assert!(
            matches!(decision, LoginDecision::MustEnroll { .. }),
            "{decision:?}"
        );
    }

    // Ana's old session is not proof enough: she must verify her identity again.
    assert!(matches!(
        enable(&tf, &ana.user, ana_session_started).await,
        Err(Error::ReauthenticationRequired)
    ));
    assert!(tf.mailer().kinds_for(&ana.user).is_empty());

    // After re-entering her password: QR, 6-digit code, "Enable", and a confirmation e-mail.
    let secret = enable(&tf, &ana.user, tf.clock().now()).await.unwrap();
    assert_eq!(tf.mailer().kinds_for(&ana.user), [NoticeKind::Enabled]);

    // Every later login asks for a 6-digit code from the app.
    tf.clock().advance(30);
    let decision = tf.start_login(&ana, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    let code = code_now(&tf, &secret);
    assert_eq!(code.len(), 6);
    tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
        .await
        .unwrap();

    // Ana's ticket did its job: used up, it lets nobody else in.
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&code), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    // Ben has not enabled it yet: still sent to set-up, whatever he types.
    let ben_pending = tf
        .start_login(&ben, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("MustEnroll");
    assert!(matches!(
        tf.finish_login(&ben_pending, Factor::Totp(&code), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    let decision = tf.start_login(&ben, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
}

#[tokio::test]
async fn switched_off_means_password_only_even_for_enrolled_users() {
    let (tf, owner) = onum();
    let ctx = LoginContext::new();
    let ana = Principal::new("ana@acme.example").in_tenant("acme");
    owner.enable("acme");
    let secret = enable(&tf, &ana.user, tf.clock().now()).await.unwrap();

    // A login is waiting for Ana's code when the owner switches 2FA off.
    tf.clock().advance(30);
    let decision = tf.start_login(&ana, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    owner.disable("acme");
    assert!(!owner.is_enabled("acme"));

    // She logs in again: e-mail + password only, though her authenticator is still enrolled;
    // the owner's choice is an exemption the audit trail records.
    assert_eq!(
        reason(&tf, &ana).await,
        Some(GrantReason::Exempt {
            reason: twofactor::policy::TENANT_DISABLED_EXEMPTION.into()
        })
    );
    assert!(
        tf.audit()
            .kinds_for(&ana.user)
            .contains(&AuditKind::PolicyExemptionApplied {
                reason: "tenant-2fa-disabled".into()
            })
    );
    assert!(tf.status(&ana.user).await.unwrap().is_enrolled());
    assert!(
        !tf.mailer()
            .kinds_for(&ana.user)
            .contains(&NoticeKind::Disabled)
    );

    // Switched on again: her existing authenticator is asked for, no new set-up.
    tf.clock().advance(30);
    owner.enable("acme");
    let decision = tf.start_login(&ana, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    tf.finish_login(&pending, Factor::Totp(&code_now(&tf, &secret)), None, &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn another_tenant_is_unaffected() {
    let (tf, owner) = onum();
    let ctx = LoginContext::new();
    let ana = Principal::new("ana@acme.example").in_tenant("acme");
    let gil = Principal::new("gil@globex.example").in_tenant("globex");
    owner.enable("acme");

    let decision = tf.start_login(&ana, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    assert_eq!(reason(&tf, &gil).await, OFF);

    // Globex's owner switches it on later; turning Acme off does not turn Globex off.
    owner.enable("globex");
    owner.disable("acme");
    assert_eq!(reason(&tf, &ana).await, OFF);
    let decision = tf.start_login(&gil, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
}

#[tokio::test]
async fn one_user_in_two_tenants_follows_the_tenant_being_logged_into() {
    let (tf, owner) = onum();
    let ctx = LoginContext::new();
    // The same person works in Tenant A and Tenant B; the admin switches 2FA on in B only.
    let in_a = Principal::new("carla@example.com").in_tenant("tenant-a");
    let in_b = Principal::new("carla@example.com").in_tenant("tenant-b");
    owner.enable("tenant-b");

    assert_eq!(reason(&tf, &in_a).await, OFF);
    let decision = tf.start_login(&in_b, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::MustEnroll { .. }),
        "{decision:?}"
    );
    let secret = enable(&tf, &in_b.user, tf.clock().now()).await.unwrap();

    tf.clock().advance(30);
    let decision = tf.start_login(&in_b, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    tf.finish_login(&pending, Factor::Totp(&code_now(&tf, &secret)), None, &ctx)
        .await
        .unwrap();
    // Tenant A never switched 2FA on, but Carla has an authenticator now: she is asked for it
    // there too (an unknown tenant never lets an enrolled user in on the password alone).
    tf.clock().advance(30);
    let decision = tf.start_login(&in_a, None, &ctx).await.unwrap();
    assert!(
        matches!(decision, LoginDecision::Challenge { .. }),
        "{decision:?}"
    );
    let pending = decision.into_pending().expect("a pending login");
    tf.finish_login(&pending, Factor::Totp(&code_now(&tf, &secret)), None, &ctx)
        .await
        .unwrap();
    // Once A's owner explicitly switches 2FA off, A is password only for her (audited).
    owner.disable("tenant-a");
    assert!(matches!(
        tf.start_login(&in_a, None, &ctx).await.unwrap(),
        LoginDecision::Granted {
            reason: GrantReason::Exempt { .. },
            ..
        }
    ));
}

#[tokio::test]
async fn a_misspelled_tenant_or_a_restart_never_drops_an_enrolled_users_second_factor() {
    let (tf, owner) = onum();
    let ctx = LoginContext::new();
    let ana = Principal::new("ana@acme.example").in_tenant("acme");
    owner.enable("acme");
    let secret = enable(&tf, &ana.user, tf.clock().now()).await.unwrap();
    tf.clock().advance(30);

    // The host passes "Acme" (or "acme ", or no tenant) instead of "acme".
    for who in [
        Principal::new("ana@acme.example").in_tenant("Acme"),
        Principal::new("ana@acme.example").in_tenant("acme "),
        Principal::new("ana@acme.example"),
    ] {
        let decision = tf.start_login(&who, None, &ctx).await.unwrap();
        assert!(
            matches!(decision, LoginDecision::Challenge { .. }),
            "{decision:?}"
        );
    }

    // After a restart, before the owners' switches are replayed: still a challenge.
    let fresh = PerTenant::new(RequiredForAll::default(), UnknownTenant::OptIn);
    assert_eq!(fresh.switch("acme"), None);
    use twofactor::{EnforcementPolicy, EnrollmentStatus};
    assert_eq!(
        fresh.requirement(&ana, &EnrollmentStatus::enrolled_at(0), 0),
        twofactor::Requirement::optional()
    );
    let pending = tf
        .start_login(&ana, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a challenge");
    tf.finish_login(&pending, Factor::Totp(&code_now(&tf, &secret)), None, &ctx)
        .await
        .unwrap();
}
