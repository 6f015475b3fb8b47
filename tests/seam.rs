//! The seam with the host, attacked as issue 13 describes it. Each test is an attack that got
//! through on main 90027a0 (the review's findings) and must be refused now.
//!
//! These tests cannot compile against 90027a0 (its `PendingLogin` was plain serde with public
//! fields in its JSON, and there were no proofs): the same attacks were re-played there with
//! the old signatures and succeeded (see the closing note of issue 13).

use std::sync::Arc;

use twofactor::account::{Factor, LoginContext, Reauthenticated};
use twofactor::audit::AuditKind;
use twofactor::service::Error;
use twofactor::testing::{ManualClock, RecordingAudit, RecordingMailer, test_keys};
use twofactor::{
    Clock, EnrollmentStatus, KeyUri, MemoryStore, PendingLogin, Principal, Requirement, Secret,
    ServiceKeys, Totp, TwoFactor, UserId, WhenUnenrolled,
};

type Tf<P> = TwoFactor<MemoryStore, RecordingMailer, P, Arc<ManualClock>, Arc<RecordingAudit>>;

const T0: u64 = 1_700_000_000;

struct Host<P> {
    tf: Tf<P>,
    clock: Arc<ManualClock>,
    audit: Arc<RecordingAudit>,
}

fn host_with<P: twofactor::EnforcementPolicy>(policy: P, keys: ServiceKeys) -> Host<P> {
    let clock = Arc::new(ManualClock::new(T0));
    let audit = Arc::new(RecordingAudit::new());
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .policy(policy)
        .clock(clock.clone())
        .audit(audit.clone())
        .keys(keys)
        .build();
    Host { tf, clock, audit }
}

fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}

fn optional(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Optional {
        trusted_devices: true,
    }
}

/// Employees are asked for a mailed code until they enroll; everyone else may opt in.
fn employees_mail(p: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    if p.has_role("employee") {
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            grace_until: None,
            trusted_devices: true,
        }
    } else {
        Requirement::Optional {
            trusted_devices: true,
        }
    }
}

fn ctx() -> LoginContext {
    LoginContext::new()
}

impl<P: twofactor::EnforcementPolicy> Host<P> {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn code(&self, secret: &Secret) -> String {
        Totp::default().generate(secret, self.now()).to_string()
    }

    /// Enrolls `who` from an account page (fresh password check) and returns the app secret.
    async fn enroll(&self, who: &Principal) -> Secret {
        let started = self
            .tf
            .start_enrollment(who, who.user.as_str(), Reauthenticated::at(self.now()))
            .await
            .expect("start enrollment");
        let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
        self.tf
            .finish_enrollment(&who.user, &self.code(&secret))
            .await
            .expect("finish enrollment");
        self.clock.advance(30);
        secret
    }

    async fn pending(&self, who: &Principal) -> PendingLogin {
        self.tf
            .start_login(who, None, &ctx())
            .await
            .expect("start login")
            .into_pending()
            .expect("a second step")
    }

    async fn code_checks_refused(&self, user: &UserId) -> usize {
        self.audit
            .events()
            .iter()
            .filter(|e| &e.user == user && matches!(e.kind, AuditKind::LoginFailed { .. }))
            .count()
    }
}

/// Every byte-level edit of a ticket's hex, in each position: the class "anything the client
/// can edit".
fn edits(token: &str) -> impl Iterator<Item = String> + '_ {
    (0..token.len()).filter_map(move |i| {
        let mut b = token.as_bytes().to_vec();
        b[i] = match b[i] {
            b'.' => return None,
            b'0' => b'f',
            _ => b'0',
        };
        String::from_utf8(b).ok()
    })
}

#[tokio::test]
async fn an_edited_ticket_never_enrolls_nor_logs_in_nor_throttles_the_user_it_names() {
    let h = host_with(required, test_keys());
    let victim = Principal::new("victim");
    // The attacker has their own account and its password.
    let attacker = Principal::new("attacker");
    let attacker_app = h.enroll(&attacker).await;
    let victim_app = h.enroll(&victim).await;

    let ticket = h.pending(&attacker).await;
    let token = ticket.as_str().to_owned();
    let mut refused = 0;
    for edited in edits(&token) {
        let Ok(forged) = edited.parse::<PendingLogin>() else {
            refused += 1;
            continue;
        };
        // Whatever the edit named (another user, a later deadline, another step), it goes
        // nowhere: not a login with the attacker's code, not a forced set-up.
        let code = h.code(&attacker_app);
        let r =
            h.tf.finish_login(&forged, Factor::Totp(&code), None, &ctx())
                .await;
        assert!(matches!(r, Err(Error::InvalidTicket)), "{r:?}");
        let r = h.tf.start_forced_enrollment(&forged, "attacker").await;
        assert!(matches!(r, Err(Error::InvalidTicket)), "{r:?}");
        refused += 1;
    }
    assert_eq!(refused, token.len() - 1);
    // No throttle charge to anyone, no event: the victim still logs in first time.
    assert_eq!(h.code_checks_refused(&victim.user).await, 0);
    assert_eq!(h.code_checks_refused(&attacker.user).await, 0);
    let pending = h.pending(&victim).await;
    let code = h.code(&victim_app);
    h.tf.finish_login(&pending, Factor::Totp(&code), None, &ctx())
        .await
        .expect("the victim is not throttled");
}

#[tokio::test]
async fn a_ticket_naming_the_victim_made_under_another_key_is_refused() {
    // The attacker runs the same library with a key of their own and forges a MustEnroll
    // ticket for the (unenrolled) victim, or a challenge ticket for the enrolled one.
    let h = host_with(required, test_keys());
    let evil = host_with(required, ServiceKeys::derive(&[1u8; 32]).unwrap());
    let victim = Principal::new("victim");
    let forged = evil.pending(&victim).await; // MustEnroll, sealed under the other key
    assert!(matches!(
        h.tf.start_forced_enrollment(&forged, "victim").await,
        Err(Error::InvalidTicket)
    ));
    // Parsed back from the cookie it would travel in: still refused.
    let from_cookie: PendingLogin = forged.as_str().parse().unwrap();
    assert!(matches!(
        h.tf.finish_forced_enrollment(&from_cookie, "123456").await,
        Err(Error::InvalidTicket)
    ));
    assert!(!h.tf.status(&victim.user).await.unwrap().is_enrolled());
    assert!(
        h.tf.status(&victim.user)
            .await
            .unwrap()
            .pending_enrollment_expires_at
            .is_none()
    );

    h.enroll(&victim).await;
    let attacker_app = evil.enroll(&victim).await; // "victim" on the attacker's own server
    let forged = evil.pending(&victim).await;
    let code = evil.code(&attacker_app);
    assert!(matches!(
        h.tf.finish_login(&forged, Factor::Totp(&code), None, &ctx())
            .await,
        Err(Error::InvalidTicket)
    ));
    assert_eq!(h.code_checks_refused(&victim.user).await, 0);
}

#[tokio::test]
async fn a_ticket_is_single_use() {
    let h = host_with(required, test_keys());
    let alice = Principal::new("alice");
    let app = h.enroll(&alice).await;
    let pending = h.pending(&alice).await;
    let code = h.code(&app);
    h.tf.finish_login(&pending, Factor::Totp(&code), None, &ctx())
        .await
        .unwrap();
    // Within its deadline, with a fresh valid code: refused, and not counted.
    h.clock.advance(30);
    let code = h.code(&app);
    for ticket in [pending.clone(), pending.as_str().parse().unwrap()] {
        assert!(matches!(
            h.tf.finish_login(&ticket, Factor::Totp(&code), None, &ctx())
                .await,
            Err(Error::LoginExpired)
        ));
    }
    assert_eq!(h.code_checks_refused(&alice.user).await, 0);
    // A fresh ticket works with that same code.
    let fresh = h.pending(&alice).await;
    h.tf.finish_login(&fresh, Factor::Totp(&code), None, &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_forced_set_up_ticket_completes_one_login_only() {
    let h = host_with(required, test_keys());
    let bob = Principal::new("bob");
    let pending = h.pending(&bob).await;
    assert!(matches!(
        pending.step(),
        twofactor::account::PendingStep::Enrollment
    ));
    let started = h.tf.start_forced_enrollment(&pending, "bob").await.unwrap();
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    let done =
        h.tf.finish_forced_enrollment(&pending, &h.code(&secret))
            .await
            .unwrap();
    assert!(done.login_completed());
    assert_eq!(done.proof().user(), &bob.user);
    // The ticket is used up: it neither logs in nor starts another set-up.
    h.clock.advance(30);
    assert!(matches!(
        h.tf.start_forced_enrollment(&pending, "bob").await,
        Err(Error::LoginExpired)
    ));
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::Totp(&h.code(&secret)), None, &ctx())
            .await,
        Err(Error::LoginExpired)
    ));
}

#[tokio::test]
async fn a_password_change_or_an_admin_reset_revokes_every_outstanding_ticket() {
    let h = host_with(required, test_keys());
    let alice = Principal::new("alice");
    let app = h.enroll(&alice).await;
    let laptop = h.pending(&alice).await;
    let phone = h.pending(&alice).await;
    h.tf.revoke_login_tickets(&alice.user).await.unwrap();
    let code = h.code(&app);
    for t in [&laptop, &phone] {
        assert!(matches!(
            h.tf.finish_login(t, Factor::Totp(&code), None, &ctx())
                .await,
            Err(Error::LoginExpired)
        ));
    }
    // A ticket issued after the revocation works.
    let after = h.pending(&alice).await;
    let granted =
        h.tf.finish_login(&after, Factor::Totp(&code), None, &ctx())
            .await
            .unwrap();

    // An administrator's reset revokes both tickets and proofs.
    h.clock.advance(30);
    let before_reset = h.pending(&alice).await;
    h.tf.reset_by_admin(&alice.user, &UserId::new("root"))
        .await
        .unwrap();
    let app = h.enroll(&alice).await;
    let code = h.code(&app);
    assert!(matches!(
        h.tf.finish_login(&before_reset, Factor::Totp(&code), None, &ctx())
            .await,
        Err(Error::LoginExpired)
    ));
    let r =
        h.tf.regenerate_recovery_codes(&alice.user, Reauthenticated::at(h.now()), &granted.proof)
            .await;
    assert!(matches!(r, Err(Error::InvalidProof)), "{r:?}");
    let _ = app;
}

#[tokio::test]
async fn enrolling_under_a_mail_policy_needs_this_sessions_mailed_code_proof() {
    let h = host_with(employees_mail, test_keys());
    let emma = Principal::new("emma").with_role("employee");
    let mallory = Principal::new("mallory").with_role("employee");

    // Emma logs in with the code from her mailbox: her session gets the proof.
    let pending = h.pending(&emma).await;
    let code = h.tf.mailer().last_login_code_for(&emma.user).unwrap();
    let emma_session =
        h.tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx())
            .await
            .unwrap();
    assert_eq!(
        emma_session.proof.factor(),
        twofactor::vocabulary::FactorKind::MailedCode
    );

    // Someone with only Emma's password, in another session, right after: no proof.
    let reauth = Reauthenticated::at(h.now());
    for principal in [emma.clone(), Principal::new("emma")] {
        // The full principal, and a bare one (roles forgotten: the policy alone says
        // "optional", but the record knows Emma is asked for a mailed code).
        assert!(matches!(
            h.tf.start_enrollment(&principal, "emma", reauth).await,
            Err(Error::SecondFactorRequired)
        ));
    }
    // Mallory's own mailed-code proof does not open Emma's enrollment.
    let p = h.pending(&mallory).await;
    let code = h.tf.mailer().last_login_code_for(&mallory.user).unwrap();
    let mallory_session =
        h.tf.finish_login(&p, Factor::MailedCode(&code), None, &ctx())
            .await
            .unwrap();
    assert!(matches!(
        h.tf.start_enrollment_with_proof(&emma, "emma", reauth, &mallory_session.proof)
            .await,
        Err(Error::InvalidProof)
    ));
    assert!(
        h.tf.status(&emma.user)
            .await
            .unwrap()
            .pending_enrollment_expires_at
            .is_none()
    );

    // Emma's own session, with her proof: allowed.
    h.tf.start_enrollment_with_proof(&emma, "emma", reauth, &emma_session.proof)
        .await
        .unwrap();
    // Her proof expires with the re-authentication window.
    h.tf.cancel_enrollment(&emma.user).await.unwrap();
    h.clock.advance(11 * 60);
    assert!(matches!(
        h.tf.start_enrollment_with_proof(
            &emma,
            "emma",
            Reauthenticated::at(h.now()),
            &emma_session.proof
        )
        .await,
        Err(Error::SecondFactorRequired)
    ));
}

#[tokio::test]
async fn recovery_codes_do_not_regenerate_on_the_password_alone() {
    let h = host_with(optional, test_keys());
    let alice = Principal::new("alice");
    let app = h.enroll(&alice).await;
    let reauth = Reauthenticated::at(h.now());
    // A session thief with the password but no second factor: every way of asking is refused.
    let stale = {
        let p = h.pending(&alice).await;
        let code = h.code(&app);
        h.tf.finish_login(&p, Factor::Totp(&code), None, &ctx())
            .await
            .unwrap()
            .proof
    };
    h.clock.advance(11 * 60);
    let reauth_now = Reauthenticated::at(h.now());
    assert!(matches!(
        h.tf.regenerate_recovery_codes(&alice.user, reauth_now, &stale)
            .await,
        Err(Error::SecondFactorRequired)
    ));
    assert!(matches!(
        h.tf.regenerate_recovery_codes(&alice.user, reauth_now, Factor::Totp("000000"))
            .await,
        Err(Error::InvalidCode)
    ));
    // Nor can they turn 2FA off.
    assert!(matches!(
        h.tf.disable(&alice, reauth_now, &stale).await,
        Err(Error::SecondFactorRequired)
    ));
    let _ = reauth;
    // A fresh step-up proof does both.
    let code = h.code(&app);
    let proof =
        h.tf.verify_second_factor(&alice.user, Factor::Totp(&code), &ctx())
            .await
            .unwrap();
    let codes =
        h.tf.regenerate_recovery_codes(&alice.user, reauth_now, &proof)
            .await
            .unwrap();
    assert_eq!(codes.len(), 10);
    h.tf.disable(&alice, reauth_now, &proof).await.unwrap();
    assert!(!h.tf.status(&alice.user).await.unwrap().is_enrolled());
}

#[tokio::test]
async fn a_user_the_policy_requires_cannot_turn_2fa_off_and_the_status_says_so() {
    let h = host_with(employees_mail, test_keys());
    let emma = Principal::new("emma").with_role("employee");
    // Emma logs in with the mailed code, then enrolls with that session's proof.
    let pending = h.pending(&emma).await;
    let code = h.tf.mailer().last_login_code_for(&emma.user).unwrap();
    let session =
        h.tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx())
            .await
            .unwrap();
    let started = h
        .tf
        .start_enrollment_with_proof(&emma, "emma", Reauthenticated::at(h.now()), &session.proof)
        .await
        .unwrap();
    let app = KeyUri::parse(started.uri()).unwrap().into_secret();
    let enrolled =
        h.tf.finish_enrollment(&emma.user, &h.code(&app))
            .await
            .unwrap();
    h.clock.advance(30);
    let status = h.tf.status_for(&emma).await.unwrap();
    assert_eq!(status.required, Some(true));
    let code = h.code(&app);
    let r =
        h.tf.disable(&emma, Reauthenticated::at(h.now()), Factor::Totp(&code))
            .await;
    assert!(matches!(r, Err(Error::RequiredByPolicy)), "{r:?}");
    let r =
        h.tf.disable(&emma, Reauthenticated::at(h.now()), enrolled.proof())
            .await;
    assert!(matches!(r, Err(Error::RequiredByPolicy)), "{r:?}");
    assert!(h.tf.status(&emma.user).await.unwrap().is_enrolled());
    // A portal user may.
    let paul = Principal::new("paul");
    let app = h.enroll(&paul).await;
    assert_eq!(h.tf.status_for(&paul).await.unwrap().required, Some(false));
    let code = h.code(&app);
    h.tf.disable(&paul, Reauthenticated::at(h.now()), Factor::Totp(&code))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reload_resumes_set_up_with_the_same_secret_and_costs_no_check() {
    let h = host_with(required, test_keys());
    let ana = Principal::new("ana");
    let pending = h.pending(&ana).await;
    let first = h.tf.start_forced_enrollment(&pending, "ana").await.unwrap();
    h.clock.advance(40);
    for _ in 0..7 {
        // More reloads than the throttle allows checks.
        let again = h.tf.start_forced_enrollment(&pending, "ana").await.unwrap();
        assert_eq!(again.uri(), first.uri());
        assert_eq!(again.expires_at(), first.expires_at());
    }
    // The account page resumes the same enrollment too.
    let page =
        h.tf.start_enrollment(&ana, "ana", Reauthenticated::at(h.now()))
            .await
            .unwrap();
    assert_eq!(page.uri(), first.uri());
    // The QR scanned first still confirms; cancelling gives a new secret.
    let secret = KeyUri::parse(first.uri()).unwrap().into_secret();
    h.tf.cancel_enrollment(&ana.user).await.unwrap();
    let fresh = h.tf.start_forced_enrollment(&pending, "ana").await.unwrap();
    assert_ne!(fresh.uri(), first.uri());
    let new_secret = KeyUri::parse(fresh.uri()).unwrap().into_secret();
    assert!(matches!(
        h.tf.finish_forced_enrollment(&pending, &h.code(&secret))
            .await,
        Err(Error::InvalidCode)
    ));
    assert!(
        h.tf.finish_forced_enrollment(&pending, &h.code(&new_secret))
            .await
            .unwrap()
            .login_completed()
    );
}
