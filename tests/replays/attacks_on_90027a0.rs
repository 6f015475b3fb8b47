//! Issue 13's attacks replayed against 90027a0 with its own signatures (not compiled here: it
//! is written for that API). To replay: `git worktree add ../old 90027a0 && cp
//! tests/replays/attacks_on_90027a0.rs ../old/tests/ && (cd ../old && cargo test
//! --all-features --test attacks_on_90027a0)`: all five pass there, i.e. every attack works. Each test asserts
//! that the attack SUCCEEDS here (it documents the hole); tests/seam.rs on the new main asserts
//! it is refused.

use std::sync::Arc;

use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
use twofactor::testing::{ManualClock, RecordingMailer};
use twofactor::{
    Clock, EnrollmentStatus, KeyUri, MemoryStore, PendingLogin, Principal, Requirement, Secret,
    Totp, TwoFactor, WhenUnenrolled,
};

const T0: u64 = 1_700_000_000;

fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}

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

fn code(s: &Secret, now: u64) -> String {
    Totp::default().generate(s, now).to_string()
}

fn edit(p: &PendingLogin, f: impl FnOnce(&mut serde_json::Value)) -> PendingLogin {
    let mut v = serde_json::to_value(p).unwrap();
    f(&mut v);
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn edited_pending_login_enrolls_the_attackers_authenticator_and_logs_in_as_the_victim() {
    let clock = Arc::new(ManualClock::new(T0));
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .policy(required)
        .clock(clock.clone())
        .build();
    let ctx = LoginContext::new();
    // The attacker logs in to their own account and gets a MustEnroll pending login.
    let mine = tf
        .start_login(&Principal::new("attacker"), None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .unwrap();
    // ... edits the user in the cookie: the victim (never logged in, no password known).
    let forged = edit(&mine, |v| v["principal"]["user"] = "victim".into());
    let started = tf
        .start_enrollment(forged.principal(), "victim", forged.reauthenticated())
        .await
        .expect("ATTACK: enrollment started on the victim's account");
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    tf.finish_enrollment(forged.user(), &code(&secret, clock.now()))
        .await
        .expect("ATTACK: the attacker's authenticator is the victim's");
    // Later: a forged second-factor step for the victim plus the attacker's code logs in.
    clock.advance(30);
    let mine = tf
        .start_login(&Principal::new("attacker"), None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .unwrap();
    let forged = edit(&mine, |v| {
        v["principal"]["user"] = "victim".into();
        v["step"] = serde_json::json!({"second_factor": {"methods": ["totp"]}});
    });
    tf.finish_login(&forged, Factor::Totp(&code(&secret, clock.now())), None, &ctx)
        .await
        .expect("ATTACK: logged in as the victim without their password");
}

#[tokio::test]
async fn five_edited_pending_logins_throttle_any_user() {
    let clock = Arc::new(ManualClock::new(T0));
    let tf = TwoFactor::builder(MemoryStore::new())
        .policy(required)
        .clock(clock.clone())
        .build();
    let ctx = LoginContext::new();
    let victim = Principal::new("victim");
    let s = tf
        .start_enrollment(&victim, "victim", Reauthenticated::at(clock.now()))
        .await
        .unwrap();
    let secret = KeyUri::parse(s.uri()).unwrap().into_secret();
    tf.finish_enrollment(&victim.user, &code(&secret, clock.now()))
        .await
        .unwrap();
    clock.advance(30);
    let template = tf
        .start_login(&Principal::new("attacker"), None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .unwrap();
    let forged = edit(&template, |v| {
        v["principal"]["user"] = "victim".into();
        v["step"] = serde_json::json!({"second_factor": {"methods": ["totp"]}});
    });
    for _ in 0..5 {
        let _ = tf
            .finish_login(&forged, Factor::Totp("000000"), None, &ctx)
            .await;
    }
    let real = tf.start_login(&victim, None, &ctx).await;
    assert!(
        matches!(real, Err(twofactor::Error::Throttled { .. })),
        "ATTACK: the victim is locked out: {real:?}"
    );
}

#[tokio::test]
async fn a_completed_pending_login_is_reusable_and_survives_revocation() {
    let clock = Arc::new(ManualClock::new(T0));
    let tf = TwoFactor::builder(MemoryStore::new())
        .policy(required)
        .clock(clock.clone())
        .build();
    let ctx = LoginContext::new();
    let alice = Principal::new("alice");
    let s = tf
        .start_enrollment(&alice, "alice", Reauthenticated::at(clock.now()))
        .await
        .unwrap();
    let secret = KeyUri::parse(s.uri()).unwrap().into_secret();
    tf.finish_enrollment(&alice.user, &code(&secret, clock.now()))
        .await
        .unwrap();
    clock.advance(30);
    let pending = tf
        .start_login(&alice, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .unwrap();
    tf.finish_login(&pending, Factor::Totp(&code(&secret, clock.now())), None, &ctx)
        .await
        .unwrap();
    clock.advance(30);
    // (a password change here has no call to make on 90027a0)
    tf.finish_login(&pending, Factor::Totp(&code(&secret, clock.now())), None, &ctx)
        .await
        .expect("ATTACK: the used pending login logs in again");
}

#[tokio::test]
async fn someone_with_the_password_enrolls_right_after_the_victims_mailed_code_login() {
    let clock = Arc::new(ManualClock::new(T0));
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .policy(employees_mail)
        .clock(clock.clone())
        .build();
    let ctx = LoginContext::new();
    let emma = Principal::new("emma").with_role("employee");
    let LoginDecision::CodeMailed { pending } = tf.start_login(&emma, None, &ctx).await.unwrap()
    else {
        panic!()
    };
    let mailed = tf.mailer().last_login_code_for(&emma.user).unwrap();
    tf.finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx)
        .await
        .unwrap();
    // Another session, password only:
    tf.start_enrollment(&emma, "emma", Reauthenticated::at(clock.now()))
        .await
        .expect("ATTACK: enrolled with the password alone after the victim's own login");
    tf.cancel_enrollment(&emma.user).await.unwrap();
    // And with a bare principal, no mailed-code login needed at all:
    let ana = Principal::new("ana").with_role("employee");
    let _ = tf.start_login(&ana, None, &ctx).await.unwrap(); // ana is asked for a code
    tf.start_enrollment(&Principal::new("ana"), "ana", Reauthenticated::at(clock.now()))
        .await
        .expect("ATTACK: a bare principal skips the mailed-code check");
}

#[tokio::test]
async fn password_alone_regenerates_recovery_codes_then_disables_and_required_users_disable() {
    let clock = Arc::new(ManualClock::new(T0));
    let tf = TwoFactor::builder(MemoryStore::new())
        .policy(required)
        .clock(clock.clone())
        .build();
    let alice = Principal::new("alice");
    let s = tf
        .start_enrollment(&alice, "alice", Reauthenticated::at(clock.now()))
        .await
        .unwrap();
    let first = s.uri().to_owned();
    // A reload makes a new secret: the QR already scanned stops working.
    let s = tf
        .start_enrollment(&alice, "alice", Reauthenticated::at(clock.now()))
        .await
        .unwrap();
    assert_ne!(s.uri(), first, "ATTACK/bug: a reload changes the secret");
    let secret = KeyUri::parse(s.uri()).unwrap().into_secret();
    tf.finish_enrollment(&alice.user, &code(&secret, clock.now()))
        .await
        .unwrap();
    // A session thief with the password only:
    let codes = tf
        .regenerate_recovery_codes(&alice.user, Reauthenticated::at(clock.now()))
        .await
        .expect("ATTACK: new recovery codes on the password alone");
    tf.disable(
        &alice.user,
        Reauthenticated::at(clock.now()),
        Factor::RecoveryCode(codes.expose_secret()[0]),
    )
    .await
    .expect("ATTACK: 2FA off without the second factor, though the policy requires it");
}
