//! Step-up (issue 14, section 2): `verify_second_factor` proves a second factor again for a
//! logged-in user, with no login side effects, under the same throttle, replay protection and
//! audit as a login; the host chooses how recent a proof must be; and a trusted-device cookie
//! never counts as one.

#[allow(unused_imports)] // this binary uses the flows, not the store fixtures
mod common;

use std::sync::Arc;

use common::flows::{Harness, T0, code, required, wrong};
use serde_json::Value;
use twofactor::account::{Aal, AuthMethod, Factor, LoginContext, Reauthenticated};
use twofactor::audit::{AuditKind, Operation};
use twofactor::mail::NoticeKind;
use twofactor::service::Error;
use twofactor::vocabulary::{FactorKind, FailureReason};
use twofactor::{
    LoginDecision, LoginGranted, MemoryStore, Principal, SecondFactorProof, Secret, UserId,
};

type H = Harness<MemoryStore>;

fn harness() -> (H, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (Harness::new(store.clone(), required), store)
}

fn stored(store: &MemoryStore, user: &UserId) -> Value {
    let (json, _) = store.json(user).expect("a stored record");
    serde_json::from_str(&json).expect("JSON")
}

fn ctx() -> LoginContext {
    LoginContext::new().device("Firefox on Linux")
}

/// A login 30 s from now with a TOTP code, asking to remember the device: its grant.
async fn login_remembered(h: &H, who: &Principal, secret: &Secret) -> LoginGranted {
    h.clock.advance(30);
    let pending = h.challenge(who).await;
    let code = code(secret, h.now());
    h.tf.finish_login(&pending, Factor::Totp(&code), Some("Firefox"), &ctx())
        .await
        .expect("login")
}

/// Whether a step-up of `factor` was refused for `reason`, in the audit trail.
fn step_up_failed(h: &H, user: &UserId, factor: FactorKind, reason: FailureReason) -> bool {
    h.audit
        .kinds_for(user)
        .contains(&AuditKind::VerificationFailed {
            operation: Operation::StepUp,
            factor,
            reason,
        })
}

async fn step_up(h: &H, user: &UserId, factor: Factor<'_>) -> Result<SecondFactorProof, Error> {
    h.tf.verify_second_factor(user, factor, &ctx()).await
}

/// A step-up changes the throttle counter and the replay state of the factor it used, and
/// nothing else: no trusted device, no login ticket used up (the open login still completes),
/// no login waiting for a code or enrollment opened or closed, no "new sign-in" notice, no
/// `LoginSucceeded`.
#[tokio::test]
async fn a_step_up_has_no_login_side_effects() {
    let (h, store) = harness();
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    // A remembered device from an earlier login, and a login in progress elsewhere.
    let granted = login_remembered(&h, &alice, &secret).await;
    assert!(granted.device_token.is_some());
    let open = h.challenge(&alice).await;
    h.tf.mailer().clear();
    h.audit.clear();

    let fields = |v: &Value| -> Vec<(String, Value)> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    for (i, factor) in ["totp", "recovery"].into_iter().enumerate() {
        h.clock.advance(30);
        let before = stored(&store, &alice.user);
        let typed = code(&secret, h.now());
        let f = match factor {
            "totp" => Factor::Totp(&typed),
            _ => Factor::RecoveryCode(&codes[i]),
        };
        let proof = step_up(&h, &alice.user, f).await.expect("step-up");
        assert_eq!(proof.verified_at(), h.now());
        let after = stored(&store, &alice.user);
        let changed: Vec<String> = fields(&before)
            .into_iter()
            .zip(fields(&after))
            .filter(|((_, a), (_, b))| a != b)
            .map(|((k, _), _)| k)
            .collect();
        let used = if factor == "totp" {
            "authenticators"
        } else {
            "recovery"
        };
        // The throttle was reset by the success (it had no count: unchanged), and the
        // factor's replay state moved: nothing else.
        assert_eq!(changed, [used], "{factor}: {changed:?}");
        if factor == "totp" {
            let (b, a) = (&before["authenticators"][0], &after["authenticators"][0]);
            let mut b2 = b.clone();
            b2["factor"]["totp"]["last_used_step"] = a["factor"]["totp"]["last_used_step"].clone();
            b2["last_used_at"] = a["last_used_at"].clone();
            assert_eq!(
                &b2, a,
                "only the replay step (and last use) of the authenticator moved"
            );
        }
        assert_eq!(after["devices"], before["devices"]);
        assert_eq!(after["tickets"], before["tickets"]);
    }
    let kinds = h.audit.kinds_for(&alice.user);
    assert!(
        !kinds.iter().any(|k| matches!(
            k,
            AuditKind::LoginSucceeded { .. } | AuditKind::DeviceTrusted { .. }
        )),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| matches!(k, AuditKind::SecondFactorVerified { .. }))
            .count(),
        2
    );
    // The only notice: the recovery code's (with the count left).
    assert_eq!(
        h.tf.mailer().kinds_for(&alice.user),
        [NoticeKind::RecoveryCodeUsed]
    );
    assert_eq!(h.tf.list_devices(&alice.user).await.unwrap().len(), 1);
    // The login in progress was not touched: its ticket still completes it.
    h.clock.advance(30);
    h.finish_totp(&open, &code(&secret, h.now()))
        .await
        .expect("the open login completes");
}

/// One throttle for logins and step-ups: failures of either count against both, and a
/// throttled step-up checks nothing (a right code is refused too).
#[tokio::test]
async fn step_up_and_login_share_the_throttle() {
    let (h, _) = harness();
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let good = code(&secret, h.now());
    for _ in 0..3 {
        let pending = h.challenge(&alice).await;
        assert!(matches!(
            h.finish_totp(&pending, &wrong(&good)).await,
            Err(Error::InvalidCode)
        ));
    }
    for _ in 0..2 {
        assert!(matches!(
            step_up(&h, &alice.user, Factor::Totp(&wrong(&good))).await,
            Err(Error::InvalidCode)
        ));
    }
    // Five checks this hour: the next step-up is throttled, with the right code, and so is
    // the next login.
    let e = step_up(&h, &alice.user, Factor::Totp(&good))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
    assert!(matches!(
        step_up(&h, &alice.user, Factor::RecoveryCode(&codes[0])).await,
        Err(Error::Throttled { .. })
    ));
    assert!(matches!(
        h.tf.start_login(&alice, None, &ctx()).await,
        Err(Error::Throttled { .. })
    ));
    // Audited like a login's failures, with the operation named.
    let failed = h
        .audit
        .kinds_for(&alice.user)
        .into_iter()
        .filter(|k| {
            matches!(
                k,
                AuditKind::VerificationFailed {
                    operation: Operation::StepUp,
                    factor: FactorKind::Totp,
                    reason: FailureReason::WrongCode,
                }
            )
        })
        .count();
    assert_eq!(failed, 2);
    assert_eq!(h.wrong_codes(&alice.user), 3);
    // Once the window has passed, a success resets the count for both.
    h.clock.advance(3_600);
    step_up(&h, &alice.user, Factor::Totp(&code(&secret, h.now())))
        .await
        .expect("admitted again");
    let e = step_up(&h, &alice.user, Factor::Totp(&wrong(&good)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidCode));
}

/// One replay state: a TOTP code accepted at login is refused at step-up and the other way
/// round, and a recovery code works once across both.
#[tokio::test]
async fn step_up_and_login_share_replay_protection() {
    let (h, _) = harness();
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let c = code(&secret, h.now());
    h.finish_totp(&h.challenge(&alice).await, &c).await.unwrap();
    assert!(matches!(
        step_up(&h, &alice.user, Factor::Totp(&c)).await,
        Err(Error::InvalidCode)
    ));
    assert!(step_up_failed(
        &h,
        &alice.user,
        FactorKind::Totp,
        FailureReason::Replayed
    ));
    h.clock.advance(30);
    let c = code(&secret, h.now());
    step_up(&h, &alice.user, Factor::Totp(&c)).await.unwrap();
    assert!(matches!(
        h.finish_totp(&h.challenge(&alice).await, &c).await,
        Err(Error::InvalidCode)
    ));
    // An earlier code than the last accepted one is a replay too.
    let earlier = code(&secret, h.now() - 30);
    assert!(matches!(
        step_up(&h, &alice.user, Factor::Totp(&earlier)).await,
        Err(Error::InvalidCode)
    ));
    // A recovery code: once, whichever comes first.
    step_up(&h, &alice.user, Factor::RecoveryCode(&codes[0]))
        .await
        .unwrap();
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.tf.finish_login(&pending, Factor::RecoveryCode(&codes[0]), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    h.tf.finish_login(&pending, Factor::RecoveryCode(&codes[1]), None, &ctx())
        .await
        .unwrap();
    assert!(matches!(
        step_up(&h, &alice.user, Factor::RecoveryCode(&codes[1])).await,
        Err(Error::InvalidCode)
    ));
}

/// A trusted-device cookie never counts as a step-up: the login it allows carries no proof
/// and claims AAL1, the cookie typed as a code is refused (and counted), a mailed code is not
/// a step-up factor, and a step-up guard without a proof sends the user to step up.
#[tokio::test]
async fn a_trusted_device_never_counts_as_a_step_up() {
    let (h, _) = harness();
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    let granted = login_remembered(&h, &alice, &secret).await;
    let cookie = granted
        .device_token
        .expect("trusted")
        .expose_secret()
        .to_owned();
    h.clock.advance(86_400);
    let decision =
        h.tf.start_login(&alice, Some(&cookie), &ctx())
            .await
            .unwrap();
    let LoginDecision::Granted { claims, .. } = &decision else {
        panic!("{decision:?}")
    };
    assert_eq!(claims.aal(), Aal::Aal1);
    assert!(claims.completed(AuthMethod::RememberedDevice).is_some());
    let e = claims.satisfies(Aal::Aal2, 600, h.now()).unwrap_err();
    assert_eq!(e.needed, [AuthMethod::Otp, AuthMethod::RecoveryCode]);
    // The cookie's value, typed into the step-up box in every way, is no factor.
    for factor in [
        Factor::Totp(&cookie),
        Factor::RecoveryCode(&cookie),
        Factor::MailedCode(&cookie),
    ] {
        let e = step_up(&h, &alice.user, factor).await.unwrap_err();
        assert!(
            matches!(e, Error::Malformed(_) | Error::InvalidCode),
            "{e:?}"
        );
    }
    if let Ok(factor) = Factor::parse(&cookie) {
        assert!(step_up(&h, &alice.user, factor).await.is_err());
    }
    // A mailed code is not a step-up factor, even a right-looking one: counted, refused.
    assert!(matches!(
        step_up(&h, &alice.user, Factor::MailedCode("123456")).await,
        Err(Error::InvalidCode)
    ));
    assert!(step_up_failed(
        &h,
        &alice.user,
        FactorKind::MailedCode,
        FailureReason::NoPendingFactor
    ));
    assert!(
        !h.audit
            .kinds_for(&alice.user)
            .iter()
            .any(|k| matches!(k, AuditKind::SecondFactorVerified { .. }))
    );
}

/// The host chooses the window: `check_proof(max_age)` accepts a proof younger than
/// `max_age` and refuses it from `max_age` on, whatever the library's own window; the
/// library's sensitive calls keep theirs (`Settings::reauth_max_age`, 10 minutes).
#[tokio::test]
async fn the_host_chooses_how_recent_a_step_up_must_be() {
    let (h, _) = harness();
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let at = h.now();
    let proof = step_up(&h, &alice.user, Factor::Totp(&code(&secret, at)))
        .await
        .unwrap();
    for (age, max_age, ok) in [
        (0, 300, true),
        (299, 300, true),
        (300, 300, false),
        (301, 300, false),
        (3_599, 3_600, true),
        (3_600, 3_600, false),
        (7_000, 7_200, true),
        (100, 0, false),
    ] {
        h.clock.set(at + age);
        let checked = h.tf.check_proof(&alice.user, &proof, max_age).await;
        assert_eq!(
            checked.is_ok(),
            ok,
            "{age} s old, window {max_age}: {checked:?}"
        );
        if let Err(e) = checked {
            assert!(matches!(e, Error::SecondFactorRequired), "{e:?}");
        } else {
            assert_eq!(checked.unwrap(), *proof.claims());
        }
    }
    // 20 minutes later the host's 2-hour window still accepts it; the library's own
    // sensitive calls do not (10 minutes).
    h.clock.set(at + 1_200);
    h.tf.check_proof(&alice.user, &proof, 7_200).await.unwrap();
    assert!(matches!(
        h.tf.regenerate_recovery_codes(&alice.user, Reauthenticated::at(h.now()), &proof)
            .await,
        Err(Error::SecondFactorRequired)
    ));
    // Another user's proof, a revoked one: refused whatever the window.
    let bob = UserId::new("bob");
    assert!(matches!(
        h.tf.check_proof(&bob, &proof, u64::MAX).await,
        Err(Error::InvalidProof)
    ));
    h.tf.revoke_login_tickets(&alice.user).await.unwrap();
    assert!(matches!(
        h.tf.check_proof(&alice.user, &proof, u64::MAX).await,
        Err(Error::InvalidProof)
    ));
    // The step-up proves the factor alone: merged into the login's claims it is AAL2 now.
    h.clock.advance(30);
    let login = h.totp_login(&alice, &secret).await;
    h.clock.advance(3_600);
    let step = step_up(&h, &alice.user, Factor::Totp(&code(&secret, h.now())))
        .await
        .unwrap();
    let step_claims = h.tf.check_proof(&alice.user, &step, 600).await.unwrap();
    assert!(step_claims.satisfies(Aal::Aal2, 600, h.now()).is_err());
    assert!(login.claims.satisfies(Aal::Aal2, 600, h.now()).is_err());
    let session = login.claims.merge(&step_claims);
    assert_eq!(session.satisfies(Aal::Aal2, 600, h.now()), Ok(()));
    assert_eq!(session.amr(), ["pwd", "otp", "mfa"]);
    let _ = T0;
}
