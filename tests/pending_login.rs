//! The typed pending login: `finish_login` takes what `start_login` handed out, enforces its
//! deadline and the factors it accepts, and an edited value (serialized, changed, read back, as
//! from a session the client could write) never gets further than the stored record allows.

#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use common::flows::{Harness, code, required};
use serde_json::Value;
use twofactor::account::PendingStep;
use twofactor::account::{Factor, FailureReason, LoginContext, LoginDecision, Reauthenticated};
use twofactor::audit::AuditKind;
use twofactor::service::Error;
use twofactor::vocabulary::FactorKind;
use twofactor::{
    EnrollmentStatus, MemoryStore, PendingLogin, Principal, Requirement, Settings, WhenUnenrolled,
};

fn ctx() -> LoginContext {
    LoginContext::new()
}

/// Staff must use 2FA; the role "break-glass" is exempt (as a host's policy may say).
fn roles(p: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    if p.has_role("break-glass") {
        Requirement::Exempt {
            reason: "break-glass".into(),
        }
    } else {
        Requirement::required()
    }
}

fn mail_code(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

/// Serializes `pending`, lets `edit` change the JSON, and reads it back (strictly).
fn tampered(pending: &PendingLogin, edit: impl FnOnce(&mut Value)) -> PendingLogin {
    let mut json = serde_json::to_value(pending).expect("serialize");
    edit(&mut json);
    serde_json::from_value(json).expect("a well-formed edit reads back")
}

fn wrong(good: &str) -> String {
    if good == "000000" { "000001" } else { "000000" }.to_owned()
}

fn logins(h: &Harness<MemoryStore>, who: &Principal) -> usize {
    h.successes(&who.user)
}

#[tokio::test]
async fn the_pending_login_carries_what_start_login_decided() {
    let h = Harness::new(Arc::new(MemoryStore::new()), roles);
    let alice = Principal::new("alice").with_role("staff").in_tenant("acme");
    h.enroll(&alice.user).await;
    let pending = h.challenge(&alice).await;
    assert_eq!(pending.principal(), &alice);
    assert_eq!(pending.user(), &alice.user);
    assert_eq!(pending.password_checked_at(), h.now());
    let ttl = Settings::default().login_challenge_ttl();
    assert_eq!(pending.expires_at(), h.now() + ttl);
    assert_eq!(pending.reauthenticated(), Reauthenticated::at(h.now()));
    assert_eq!(
        pending.methods(),
        &[FactorKind::Totp, FactorKind::RecoveryCode]
    );
    // It survives the host's session store unchanged, and holds nothing secret.
    let json = serde_json::to_string(&pending).unwrap();
    assert_eq!(
        serde_json::from_str::<PendingLogin>(&json).unwrap(),
        pending
    );
    let (secret, codes) = h.enroll(&Principal::new("bob").user).await;
    assert!(!json.contains(secret.to_base32().as_str()));
    assert!(!codes.iter().any(|c| json.contains(c.as_str())));
}

#[tokio::test]
async fn an_expired_pending_login_is_refused_and_nothing_is_checked_or_counted() {
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.clock.set(pending.expires_at());
    let before = h.audit.kinds_for(&alice.user).len();
    for factor in [
        Factor::Totp(&code(&secret, h.now())),
        Factor::RecoveryCode("zzzz-zzzz-zzzz-zzzz"),
        Factor::MailedCode("123456"),
    ] {
        let r = h.tf.finish_login(&pending, factor, None, &ctx()).await;
        assert!(matches!(r, Err(Error::LoginExpired)), "{factor:?}: {r:?}");
    }
    let e = Error::LoginExpired;
    assert_eq!(e.kind(), twofactor::ErrorKind::NotAllowedNow);
    assert_eq!(e.http_status(), 403);
    assert_eq!(h.audit.kinds_for(&alice.user).len(), before, "audited");
    let status = h.tf.status(&alice.user).await.unwrap();
    assert_eq!(status.throttled_until, None);
    // One second earlier the same code is accepted.
    h.clock.set(pending.expires_at() - 1);
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("in time");
}

#[tokio::test]
async fn another_users_name_in_the_pending_login_needs_that_users_factor() {
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let (alice, mallory) = (Principal::new("alice"), Principal::new("mallory"));
    let (alice_secret, _) = h.enroll(&alice.user).await;
    let (mallory_secret, _) = h.enroll(&mallory.user).await;
    h.clock.advance(30);
    // Mallory passes her own password check and edits her pending login to name alice.
    let own = h.challenge(&mallory).await;
    let forged = tampered(&own, |v| v["principal"]["user"] = "alice".into());
    assert_eq!(forged.user(), &alice.user);
    // Her own authenticator's code means nothing for alice, and every try is counted on
    // alice's record (the throttle), as a guess at alice's code.
    let mine = code(&mallory_secret, h.now());
    if mine != code(&alice_secret, h.now()) {
        assert!(matches!(
            h.finish_totp(&forged, &mine).await,
            Err(Error::InvalidCode)
        ));
    }
    for _ in 0..4 {
        let guess = wrong(&code(&alice_secret, h.now()));
        assert!(matches!(
            h.finish_totp(&forged, &guess).await,
            Err(Error::InvalidCode)
        ));
    }
    assert!(matches!(
        h.finish_totp(&forged, &code(&alice_secret, h.now())).await,
        Err(Error::Throttled { .. })
    ));
    assert_eq!(logins(&h, &alice), 0);
    assert_eq!(
        h.wrong_codes(&alice.user),
        4 + usize::from(mine != code(&alice_secret, h.now()))
    );
}

#[tokio::test]
async fn edited_roles_never_turn_a_required_factor_into_a_grant() {
    let h = Harness::new(Arc::new(MemoryStore::new()), roles);
    let alice = Principal::new("alice").with_role("staff");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    // The edit makes the policy answer Exempt at finish_login.
    let forged = tampered(&pending, |v| {
        v["principal"]["roles"] = serde_json::json!(["break-glass"]);
        v["principal"]["tenant"] = "other".into();
        v["principal"]["superuser"] = true.into();
    });
    let good = code(&secret, h.now());
    for bad in [wrong(&good), "not a code".to_owned(), String::new()] {
        let r =
            h.tf.finish_login(&forged, Factor::Totp(&bad), Some("laptop"), &ctx())
                .await;
        assert!(
            matches!(r, Err(Error::InvalidCode | Error::Malformed(_))),
            "{bad:?}: {r:?}"
        );
    }
    assert_eq!(logins(&h, &alice), 0);
    // With her real code she gets in (as her record allows), and the exempting answer only
    // means that no device token is issued.
    let granted =
        h.tf.finish_login(&forged, Factor::Totp(&good), Some("laptop"), &ctx())
            .await
            .expect("her own code");
    assert!(granted.device_token.is_none());
    assert!(h.tf.list_devices(&alice.user).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_later_deadline_does_not_lift_the_throttle_or_replay_protection() {
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let forever = tampered(&pending, |v| v["expires_at"] = u64::MAX.into());
    h.clock
        .advance(Settings::default().login_challenge_ttl() + 30);
    assert!(matches!(
        h.finish_totp(&pending, &code(&secret, h.now())).await,
        Err(Error::LoginExpired)
    ));
    let good = code(&secret, h.now());
    for _ in 0..5 {
        assert!(matches!(
            h.finish_totp(&forever, &wrong(&good)).await,
            Err(Error::InvalidCode)
        ));
    }
    assert!(matches!(
        h.finish_totp(&forever, &good).await,
        Err(Error::Throttled { .. })
    ));
    h.clock.advance(3_600);
    let good = code(&secret, h.now());
    h.finish_totp(&forever, &good).await.expect("her code");
    assert!(matches!(
        h.finish_totp(&forever, &good).await,
        Err(Error::InvalidCode)
    ));
}

#[tokio::test]
async fn other_accepted_factors_reach_only_what_the_record_holds() {
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    // A TOTP challenge does not take a mailed code: refused and counted.
    let r =
        h.tf.finish_login(&pending, Factor::MailedCode("123456"), None, &ctx())
            .await;
    assert!(matches!(r, Err(Error::InvalidCode)), "{r:?}");
    assert!(
        h.audit
            .kinds_for(&alice.user)
            .contains(&AuditKind::LoginFailed {
                factor: FactorKind::MailedCode,
                reason: FailureReason::NoPendingFactor
            })
    );
    // Edited to accept mailed codes: there is no mailed code in the record to match.
    let forged = tampered(&pending, |v| {
        v["step"] = serde_json::json!({"mailed_code": {"code_expires_at": u64::MAX}});
    });
    for guess in ["123456", "999999"] {
        let r =
            h.tf.finish_login(&forged, Factor::MailedCode(guess), None, &ctx())
                .await;
        assert!(matches!(r, Err(Error::InvalidCode)), "{r:?}");
    }
    // ... and it no longer takes the authenticator's code or a recovery code.
    let r = h.finish_totp(&forged, &code(&secret, h.now())).await;
    assert!(matches!(r, Err(Error::InvalidCode)), "{r:?}");
    let r =
        h.tf.finish_login(&forged, Factor::RecoveryCode(&codes[0]), None, &ctx())
            .await;
    assert!(matches!(r, Err(Error::InvalidCode)), "{r:?}");
    assert_eq!(logins(&h, &alice), 0);
    // Listing a factor no step takes is refused when the session is read.
    let mut json = serde_json::to_value(&pending).unwrap();
    json["step"] = serde_json::json!({"second_factor": {"methods": ["trusted_device"]}});
    assert!(serde_json::from_value::<PendingLogin>(json).is_err());
}

#[tokio::test]
async fn a_must_enroll_pending_login_refuses_every_factor_and_supplies_enrollment() {
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let alice = Principal::new("alice").with_role("staff");
    let decision = h.tf.start_login(&alice, None, &ctx()).await.unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(pending.step(), &PendingStep::Enrollment);
    assert!(pending.methods().is_empty());
    for factor in [
        Factor::Totp("123456"),
        Factor::RecoveryCode("zzzz-zzzz-zzzz-zzzz"),
        Factor::MailedCode("123456"),
    ] {
        let r = h.tf.finish_login(&pending, factor, None, &ctx()).await;
        assert!(matches!(r, Err(Error::InvalidCode)), "{factor:?}: {r:?}");
    }
    assert!(matches!(
        h.tf.resend_mailed_code(&pending, &ctx()).await,
        Err(Error::NoPendingLogin)
    ));
    // What enrollment needs comes from the pending login; the login is completed by it.
    h.clock.advance(60);
    let started =
        h.tf.start_enrollment(pending.principal(), "alice", pending.reauthenticated())
            .await
            .unwrap();
    let secret = twofactor::KeyUri::parse(started.uri())
        .unwrap()
        .into_secret();
    let enrolled =
        h.tf.finish_enrollment(pending.user(), &code(&secret, h.now()))
            .await
            .unwrap();
    assert!(enrolled.login_completed());
    // The password check it carries goes stale like any other.
    let later = h.challenge(&alice).await;
    h.clock.advance(Settings::default().reauth_max_age() + 1);
    assert!(matches!(
        h.tf.start_rotation(
            later.user(),
            "alice",
            &code(&secret, h.now()),
            later.reauthenticated()
        )
        .await,
        Err(Error::ReauthenticationRequired)
    ));
}

#[tokio::test]
async fn a_forged_must_enroll_under_a_mail_code_policy_does_not_open_enrollment() {
    let h = Harness::new(Arc::new(MemoryStore::new()), mail_code);
    let bob = Principal::new("bob");
    let decision = h.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::CodeMailed { pending } = decision else {
        panic!("{decision:?}")
    };
    let forged = tampered(&pending, |v| v["step"] = "enrollment".into());
    assert_eq!(forged.step(), &PendingStep::Enrollment);
    // Enrollment asks the policy and the stored record, not the pending value.
    let r =
        h.tf.start_enrollment(forged.principal(), "bob", forged.reauthenticated())
            .await;
    assert!(matches!(r, Err(Error::SecondFactorRequired)), "{r:?}");
    // Nor does the forged value take the mailed code (it waits for enrollment).
    let mailed = h.tf.mailer().last_login_code_for(&bob.user).unwrap();
    let r =
        h.tf.finish_login(&forged, Factor::MailedCode(&mailed), None, &ctx())
            .await;
    assert!(matches!(r, Err(Error::InvalidCode)), "{r:?}");
    // The real one does, and then enrollment opens.
    h.tf.finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx())
        .await
        .expect("the mailed code");
    h.tf.start_enrollment(pending.principal(), "bob", pending.reauthenticated())
        .await
        .expect("after the mailed code");
}

#[tokio::test]
async fn resending_needs_a_mailed_code_pending_login_that_is_still_open() {
    let h = Harness::new(Arc::new(MemoryStore::new()), mail_code);
    let bob = Principal::new("bob");
    let decision = h.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let pending = decision.into_pending().unwrap();
    h.clock.advance(60);
    let expires = h.tf.resend_mailed_code(&pending, &ctx()).await.unwrap();
    assert_eq!(expires, h.now() + Settings::default().mailed_code_ttl());
    // A resent code does not extend the pending login.
    assert!(pending.expires_at() < expires);
    h.clock.set(pending.expires_at());
    assert!(matches!(
        h.tf.resend_mailed_code(&pending, &ctx()).await,
        Err(Error::LoginExpired)
    ));
    let challenge = PendingLogin::new(
        bob.clone(),
        h.now(),
        900,
        PendingStep::SecondFactor {
            methods: vec![FactorKind::Totp],
        },
    );
    assert!(matches!(
        h.tf.resend_mailed_code(&challenge, &ctx()).await,
        Err(Error::NoPendingLogin)
    ));
}
