//! Security review point 4: under a mailed-code policy, the password alone must not be enough
//! to enroll an authenticator (and then log in with it): the mailbox factor would never have
//! been used. Played against every policy shape that yields `WhenUnenrolled::MailCode`.

use std::sync::Arc;
use std::time::Duration;

use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
use twofactor::policy::{GracePeriod, UnknownTenant};
use twofactor::service::{Error, TwoFactor};
use twofactor::testing::{ManualClock, RecordingMailer};
use twofactor::vocabulary::FactorKind;
use twofactor::{
    Clock, EnforcementPolicy, KeyUri, MemoryStore, PerTenant, Principal, RequiredForAll,
    RequiredForRoles, SecondFactorProof, Totp, WhenUnenrolled,
};

const T0: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

type Service =
    TwoFactor<MemoryStore, RecordingMailer, Arc<dyn EnforcementPolicy>, Arc<ManualClock>>;

fn service(policy: Arc<dyn EnforcementPolicy>) -> (Service, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .keys(twofactor::testing::test_keys())
        .policy(policy)
        .clock(clock.clone())
        .build();
    (tf, clock)
}

/// Every shape of policy that asks an unenrolled `principal` for a mailed code at `T0`.
fn mail_code_policies() -> Vec<(&'static str, Arc<dyn EnforcementPolicy>, Principal)> {
    let mail = WhenUnenrolled::MailCode;
    let tenant = PerTenant::new(RequiredForAll::new(mail), UnknownTenant::OptIn);
    tenant.enable("acme");
    let enforced = PerTenant::new(RequiredForAll::new(mail), UnknownTenant::Enforce);
    vec![
        (
            "RequiredForAll",
            Arc::new(RequiredForAll::new(mail)),
            Principal::new("mallory"),
        ),
        (
            "RequiredForRoles",
            Arc::new(RequiredForRoles::new(["staff"], mail)),
            Principal::new("mallory").with_role("staff"),
        ),
        (
            "PerTenant(RequiredForAll)",
            Arc::new(tenant),
            Principal::new("mallory").in_tenant("acme"),
        ),
        (
            "PerTenant(RequiredForAll), unknown tenant enforced",
            Arc::new(enforced),
            Principal::new("mallory").in_tenant("Acme "),
        ),
        (
            "GracePeriod(RequiredForAll), expired",
            Arc::new(GracePeriod::since(
                RequiredForAll::new(mail),
                T0 - 40 * DAY,
                Duration::from_secs(30 * DAY),
            )),
            Principal::new("mallory"),
        ),
        (
            "GracePeriod after account creation, expired",
            Arc::new(GracePeriod::after_account_creation(
                RequiredForRoles::new(["staff"], mail),
                Duration::from_secs(7 * DAY),
            )),
            Principal::new("mallory")
                .with_role("staff")
                .created_at(T0 - 8 * DAY),
        ),
    ]
}

/// Logs `who` in with the code mailed to them: the [`SecondFactorProof`] this session keeps.
async fn mailed_code_login(tf: &Service, who: &Principal) -> SecondFactorProof {
    let ctx = LoginContext::new();
    let decision = tf.start_login(who, None, &ctx).await.unwrap();
    let LoginDecision::CodeMailed { pending } = decision else {
        panic!("{}: expected CodeMailed, got {decision:?}", who.user);
    };
    let code = tf.mailer().last_login_code_for(&who.user).unwrap();
    let granted = tf
        .finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .unwrap();
    assert_eq!(granted.proof.factor(), FactorKind::MailedCode);
    assert_eq!(granted.proof.user(), &who.user);
    granted.proof
}

/// The attack: the password is known, the mailbox is not. Skip the mailed code, enroll an
/// authenticator of one's own, and log in with it.
#[tokio::test]
async fn password_alone_cannot_enroll_under_a_mail_code_policy() {
    for (name, policy, mallory) in mail_code_policies() {
        let (tf, clock) = service(policy);
        let ctx = LoginContext::new();
        let password_checked_at = clock.now();
        let decision = tf.start_login(&mallory, None, &ctx).await.unwrap();
        assert!(
            matches!(decision, LoginDecision::CodeMailed { .. }),
            "{name}: {decision:?}"
        );
        // The mailed code goes unread. Enroll instead:
        let started = tf
            .start_enrollment(
                &mallory,
                "mallory",
                Reauthenticated::at(password_checked_at),
            )
            .await;
        let Ok(started) = started else {
            assert!(
                matches!(started, Err(Error::SecondFactorRequired)),
                "{name}: {started:?}"
            );
            assert!(!tf.status(&mallory.user).await.unwrap().is_enrolled());
            continue;
        };
        let app = KeyUri::parse(started.uri()).unwrap().into_secret();
        let code = Totp::default().generate(&app, clock.now()).to_string();
        tf.finish_enrollment(&mallory.user, &code).await.unwrap();
        clock.advance(30);
        let pending = tf
            .start_login(&mallory, None, &ctx)
            .await
            .unwrap()
            .into_pending()
            .expect("a pending login");
        let code = Totp::default().generate(&app, clock.now()).to_string();
        let granted = tf
            .finish_login(&pending, Factor::Totp(&code), None, &ctx)
            .await;
        panic!("{name}: logged in without the mailbox: {granted:?}");
    }
}

/// The proof is per session, not per user: right after the owner of the mailbox logs in with
/// the mailed code (in their own session), someone who has only the password is still refused
/// (the per-user "mailed-code login in the last 10 minutes" rule let them through).
#[tokio::test]
async fn the_victims_mailed_code_login_gives_the_password_holder_nothing() {
    for (name, policy, bob) in mail_code_policies() {
        let (tf, clock) = service(policy);
        // Bob logs in with the code from his mailbox; the proof stays in his session.
        let _bobs_session = mailed_code_login(&tf, &bob).await;
        // Mallory, with the password only, a second later: no proof of her own to show.
        clock.advance(1);
        let refused = tf
            .start_enrollment(&bob, "mallory", Reauthenticated::at(clock.now()))
            .await;
        assert!(
            matches!(refused, Err(Error::SecondFactorRequired)),
            "{name}: {refused:?}"
        );
        assert!(!tf.status(&bob.user).await.unwrap().is_enrolled(), "{name}");
    }
}

/// The owner of the mailbox enrolls with the proof of the mailed-code login of this session,
/// under every shape, but only while that proof is fresh (`reauth_max_age`, 10 minutes).
#[tokio::test]
async fn this_sessions_mailed_code_proof_opens_enrollment_for_ten_minutes() {
    for (name, policy, bob) in mail_code_policies() {
        let (tf, clock) = service(policy);
        let proof = mailed_code_login(&tf, &bob).await;
        // Ten minutes later the mailed-code login is too old, whatever the password check.
        clock.advance(600);
        let late = tf
            .start_enrollment_with_proof(&bob, "bob", Reauthenticated::at(clock.now()), &proof)
            .await;
        assert!(
            matches!(late, Err(Error::SecondFactorRequired)),
            "{name}: {late:?}"
        );
        let bare = tf
            .start_enrollment(&bob, "bob", Reauthenticated::at(clock.now()))
            .await;
        assert!(
            matches!(bare, Err(Error::SecondFactorRequired)),
            "{name}: {bare:?}"
        );
        // A new login with a mailed code; then the set-up page works, end to end.
        let proof = mailed_code_login(&tf, &bob).await;
        clock.advance(599);
        let started = tf
            .start_enrollment_with_proof(&bob, "bob", Reauthenticated::at(clock.now()), &proof)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let app = KeyUri::parse(started.uri()).unwrap().into_secret();
        let code = Totp::default().generate(&app, clock.now()).to_string();
        tf.finish_enrollment(&bob.user, &code).await.unwrap();
        assert!(tf.status(&bob.user).await.unwrap().is_enrolled(), "{name}");
    }
}

/// A proof of another user's mailed-code login (the attacker's own mailbox) does not open
/// the victim's enrollment.
#[tokio::test]
async fn a_proof_of_another_user_is_refused() {
    for (name, policy, bob) in mail_code_policies() {
        let (tf, clock) = service(policy);
        // Mallory has the same roles, tenant and creation date as bob, and her own mailbox.
        let mut mallory = bob.clone();
        mallory.user = "mallory-own".into();
        let proof = mailed_code_login(&tf, &mallory).await;
        // Bob was asked for a mailed code too (the record remembers it).
        let decision = tf
            .start_login(&bob, None, &LoginContext::new())
            .await
            .unwrap();
        assert!(
            matches!(decision, LoginDecision::CodeMailed { .. }),
            "{name}"
        );
        let refused = tf
            .start_enrollment_with_proof(&bob, "bob", Reauthenticated::at(clock.now()), &proof)
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidProof)),
            "{name}: {refused:?}"
        );
        assert!(!tf.status(&bob.user).await.unwrap().is_enrolled(), "{name}");
        assert!(
            tf.status(&bob.user)
                .await
                .unwrap()
                .pending_enrollment_expires_at
                .is_none(),
            "{name}"
        );
    }
}

/// A proof of a TOTP code is not a proof of the mailbox. Erin enrolled while 2FA was off for
/// her tenant and logged in with her authenticator (a TOTP proof in her session), then turned
/// 2FA off; the tenant switched to mailed codes. Re-enrolling needs the mailed code.
#[tokio::test]
async fn a_proof_of_a_totp_code_is_not_a_proof_of_the_mailbox() {
    let policy = Arc::new(PerTenant::new(
        RequiredForAll::new(WhenUnenrolled::MailCode),
        UnknownTenant::OptIn,
    ));
    let (tf, clock) = service(policy.clone());
    let erin = Principal::new("erin").in_tenant("acme");
    let ctx = LoginContext::new();
    let started = tf
        .start_enrollment(&erin, "erin", Reauthenticated::at(clock.now()))
        .await
        .expect("2FA off for the tenant: the password is enough");
    let app = KeyUri::parse(started.uri()).unwrap().into_secret();
    let code = Totp::default().generate(&app, clock.now()).to_string();
    tf.finish_enrollment(&erin.user, &code).await.unwrap();
    clock.advance(30);
    let pending = tf
        .start_login(&erin, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a TOTP challenge");
    let code = Totp::default().generate(&app, clock.now()).to_string();
    let proof = tf
        .finish_login(&pending, Factor::Totp(&code), None, &ctx)
        .await
        .unwrap()
        .proof;
    assert_eq!(proof.factor(), FactorKind::Totp);
    tf.disable(&erin, Reauthenticated::at(clock.now()), &proof)
        .await
        .expect("not required while the tenant has 2FA off");
    policy.enable("acme");
    let refused = tf
        .start_enrollment_with_proof(&erin, "erin", Reauthenticated::at(clock.now()), &proof)
        .await;
    assert!(
        matches!(refused, Err(Error::SecondFactorRequired)),
        "{refused:?}"
    );
    assert!(!tf.status(&erin.user).await.unwrap().is_enrolled());
    // The mailed code of this session does it.
    let proof = mailed_code_login(&tf, &erin).await;
    tf.start_enrollment_with_proof(&erin, "erin", Reauthenticated::at(clock.now()), &proof)
        .await
        .unwrap();
}

/// Under a role- or tenant-scoped mail policy, passing a bare `Principal::new(user)` (no roles,
/// no tenant: the policy would not ask it for anything) after the user was asked for a mailed
/// code does not skip the check: the record remembers that it was asked.
#[tokio::test]
async fn a_bare_principal_does_not_skip_the_mailed_code() {
    let mail = WhenUnenrolled::MailCode;
    let tenant = PerTenant::new(RequiredForAll::new(mail), UnknownTenant::OptIn);
    tenant.enable("acme");
    let scoped: [(&str, Arc<dyn EnforcementPolicy>, Principal); 2] = [
        (
            "RequiredForRoles",
            Arc::new(RequiredForRoles::new(["staff"], mail)),
            Principal::new("mallory").with_role("staff"),
        ),
        (
            "PerTenant",
            Arc::new(tenant),
            Principal::new("mallory").in_tenant("acme"),
        ),
    ];
    for (name, policy, mallory) in scoped {
        let (tf, clock) = service(policy);
        let decision = tf
            .start_login(&mallory, None, &LoginContext::new())
            .await
            .unwrap();
        assert!(
            matches!(decision, LoginDecision::CodeMailed { .. }),
            "{name}: {decision:?}"
        );
        let bare = Principal::new(mallory.user.clone());
        let refused = tf
            .start_enrollment(&bare, "mallory", Reauthenticated::at(clock.now()))
            .await;
        assert!(
            matches!(refused, Err(Error::SecondFactorRequired)),
            "{name}: {refused:?}"
        );
        assert!(
            !tf.status(&mallory.user).await.unwrap().is_enrolled(),
            "{name}"
        );
    }
}

/// A trusted-device login is not a mailed-code login: a stolen cookie plus the password must
/// not become a factor of the thief's own. The cookie yields no proof, and the proof of the
/// mailed-code login that trusted the device is long stale.
#[tokio::test]
async fn a_trusted_device_login_does_not_open_enrollment() {
    let (tf, clock) = service(Arc::new(RequiredForAll::new(WhenUnenrolled::MailCode)));
    let bob = Principal::new("bob");
    let ctx = LoginContext::new();
    let pending = tf
        .start_login(&bob, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let code = tf.mailer().last_login_code_for(&bob.user).unwrap();
    let granted = tf
        .finish_login(&pending, Factor::MailedCode(&code), Some("laptop"), &ctx)
        .await
        .unwrap();
    let old_proof = granted.proof;
    let token = granted.device_token.expect("trusted devices allowed");
    clock.advance(3_600);
    let decision = tf
        .start_login(&bob, Some(token.expose_secret()), &ctx)
        .await
        .unwrap();
    assert!(matches!(decision, LoginDecision::Granted { .. }));
    let refused = tf
        .start_enrollment(&bob, "bob", Reauthenticated::at(clock.now()))
        .await;
    assert!(matches!(refused, Err(Error::SecondFactorRequired)));
    let refused = tf
        .start_enrollment_with_proof(&bob, "bob", Reauthenticated::at(clock.now()), &old_proof)
        .await;
    assert!(matches!(refused, Err(Error::SecondFactorRequired)));
}

/// During a grace period the password alone logs in, and enrolling is what the grace period
/// is for; forced enrollment (`BlockUntilEnrolled`) goes through the login ticket of the
/// `MustEnroll` answer, whose password check is enough.
#[tokio::test]
async fn grace_period_and_forced_enrollment_need_only_the_password() {
    // Grace period: granted on the password; the account page enrolls without a proof.
    let running = GracePeriod::since(
        RequiredForAll::new(WhenUnenrolled::MailCode),
        T0 - DAY,
        Duration::from_secs(30 * DAY),
    );
    let (tf, clock) = service(Arc::new(running));
    let carol = Principal::new("carol");
    let password_checked_at = clock.now();
    let decision = tf
        .start_login(&carol, None, &LoginContext::new())
        .await
        .unwrap();
    assert!(
        matches!(decision, LoginDecision::Granted { .. }),
        "{decision:?}"
    );
    let started = tf
        .start_enrollment(&carol, "carol", Reauthenticated::at(password_checked_at))
        .await
        .unwrap();
    let app = KeyUri::parse(started.uri()).unwrap().into_secret();
    let code = Totp::default().generate(&app, clock.now()).to_string();
    let enrolled = tf.finish_enrollment(&carol.user, &code).await.unwrap();
    assert!(!enrolled.login_completed());

    // Forced enrollment: the ticket of `MustEnroll`, and the login completes with it.
    let (tf, clock) = service(Arc::new(RequiredForAll::new(
        WhenUnenrolled::BlockUntilEnrolled,
    )));
    let decision = tf
        .start_login(&carol, None, &LoginContext::new())
        .await
        .unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}");
    };
    let started = tf.start_forced_enrollment(&pending, "carol").await.unwrap();
    let app = KeyUri::parse(started.uri()).unwrap().into_secret();
    let code = Totp::default().generate(&app, clock.now()).to_string();
    let enrolled = tf.finish_forced_enrollment(&pending, &code).await.unwrap();
    assert!(enrolled.login_completed());
}

/// The administrator's provisioning by mail still works under a mailed-code policy: the
/// secret goes to the mailbox, so confirming it uses the mailbox.
#[tokio::test]
async fn provisioning_by_mail_is_unaffected() {
    let (tf, clock) = service(Arc::new(RequiredForAll::new(WhenUnenrolled::MailCode)));
    let dave = Principal::new("dave");
    tf.start_enrollment_by_mail_dangerous(&dave.user, &"root".into(), "dave")
        .await
        .unwrap();
    let uri = tf.mailer().last_provisioning_uri_for(&dave.user).unwrap();
    let app = KeyUri::parse(&uri).unwrap().into_secret();
    let code = Totp::default().generate(&app, clock.now()).to_string();
    tf.finish_enrollment(&dave.user, &code).await.unwrap();
    assert!(tf.status(&dave.user).await.unwrap().is_enrolled());
}

/// The check is made at `start_enrollment`, not again at `finish_enrollment`: an enrollment
/// started while 2FA was off for the tenant (the password alone logs in, and may enroll) can be
/// confirmed after the tenant switches to mailed codes. Re-checking would add nothing: the same
/// authenticator confirmed a second before the switch survives the switch anyway. What the
/// switch does change is every *new* start.
#[tokio::test]
async fn the_policy_is_asked_when_enrollment_starts() {
    let policy = Arc::new(PerTenant::new(
        RequiredForAll::new(WhenUnenrolled::MailCode),
        UnknownTenant::OptIn,
    ));
    let (tf, clock) = service(policy.clone());
    let erin = Principal::new("erin").in_tenant("acme");
    let started = tf
        .start_enrollment(&erin, "erin", Reauthenticated::at(clock.now()))
        .await
        .expect("2FA off for the tenant: the password is enough");
    policy.enable("acme");
    // A new start now needs the mailed code...
    assert!(matches!(
        tf.start_enrollment(&erin, "erin", Reauthenticated::at(clock.now()))
            .await,
        Err(Error::SecondFactorRequired)
    ));
    // ...and the refused restart left the pending secret alone, which still confirms.
    let app = KeyUri::parse(started.uri()).unwrap().into_secret();
    let code = Totp::default().generate(&app, clock.now()).to_string();
    tf.finish_enrollment(&erin.user, &code).await.unwrap();
}
