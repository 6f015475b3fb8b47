//! Recovery codes that warn before they run out (issue 14, section 4): every use is notified
//! and audited with the count left, wherever it is used; at 3 or fewer (configurable) logins
//! and the status carry a hint; with none left every login says the user must make new ones,
//! until they do; making new ones replaces the whole set.

#[allow(unused_imports)] // this binary uses the flows, not the store fixtures
mod common;

use std::sync::Arc;

use common::flows::{Harness, optional};
use twofactor::account::{Factor, LoginContext, Reauthenticated, Settings};
use twofactor::audit::AuditKind;
use twofactor::mail::{EnglishMessages, Messages, Recipient};
use twofactor::service::Error;
use twofactor::vocabulary::FactorKind;
use twofactor::{LoginGranted, MemoryStore, Notice, Principal, Secret, UserId};

type H = Harness<MemoryStore>;

/// Optional 2FA (so that it can be turned off), under `settings`.
fn harness(settings: Settings) -> H {
    Harness::with_settings(Arc::new(MemoryStore::new()), optional, settings)
}

fn five_codes_low_at_3() -> Settings {
    Settings::builder()
        .recovery_codes(5)
        .recovery_codes_low_at(3)
        .build()
        .unwrap()
}

/// The last `RecoveryCodeUsed` notice to `user`: (remaining, low).
fn last_used_notice(h: &H, user: &UserId) -> Option<(usize, bool)> {
    h.tf.mailer()
        .sent_to(user)
        .into_iter()
        .rev()
        .find_map(|n| match n {
            Notice::RecoveryCodeUsed { remaining, low, .. } => Some((remaining, low)),
            _ => None,
        })
}

fn used_events(h: &H, user: &UserId) -> Vec<usize> {
    h.audit
        .kinds_for(user)
        .into_iter()
        .filter_map(|k| match k {
            AuditKind::RecoveryCodeUsed { remaining } => Some(remaining),
            _ => None,
        })
        .collect()
}

async fn login(h: &H, who: &Principal, factor: Factor<'_>) -> Result<LoginGranted, Error> {
    h.clock.advance(30);
    let pending = h.challenge(who).await;
    h.tf.finish_login(&pending, factor, None, &LoginContext::new())
        .await
}

async fn totp_login(h: &H, who: &Principal, secret: &Secret) -> LoginGranted {
    h.clock.advance(30);
    h.totp_login(who, secret).await
}

/// Each use, wherever: at login, at step-up, to start replacing the authenticator. Each is
/// notified (with the count left and whether it is low) and audited with the count left; the
/// mail says it in plain English.
#[tokio::test]
async fn every_use_is_notified_and_audited_with_the_count_left() {
    let h = harness(five_codes_low_at_3());
    let alice = Principal::new("alice");
    let (_, codes) = h.enroll(&alice.user).await;
    assert_eq!(codes.len(), 5);

    let g = login(&h, &alice, Factor::RecoveryCode(&codes[0]))
        .await
        .unwrap();
    assert_eq!(g.recovery_codes_left, Some(4));
    assert_eq!(last_used_notice(&h, &alice.user), Some((4, false)));

    h.tf.verify_second_factor(
        &alice.user,
        Factor::RecoveryCode(&codes[1]),
        &LoginContext::new(),
    )
    .await
    .unwrap();
    assert_eq!(last_used_notice(&h, &alice.user), Some((3, true)));

    h.tf.start_rotation(
        &alice.user,
        "alice",
        Factor::RecoveryCode(&codes[2]),
        Reauthenticated::at(h.now()),
    )
    .await
    .unwrap();
    assert_eq!(last_used_notice(&h, &alice.user), Some((2, true)));
    assert_eq!(used_events(&h, &alice.user), [4, 3, 2]);

    // What the user reads.
    let text = |remaining, low| {
        EnglishMessages::new("Acme")
            .render(
                &Recipient::new("alice@example.com"),
                &Notice::RecoveryCodeUsed {
                    remaining,
                    low,
                    context: LoginContext::new(),
                },
                h.now(),
            )
            .text()
            .to_owned()
    };
    assert!(text(4, false).contains("You have 4 recovery codes left."));
    assert!(text(2, true).contains("You have 2 recovery codes left: make new ones soon"));
    assert!(text(0, true).contains("You have no recovery codes left. Make new ones now"));

    // Turning 2FA off with a recovery code: audited with the count; the notice is about 2FA.
    h.tf.mailer().clear();
    h.tf.disable(
        &alice,
        Reauthenticated::at(h.now()),
        Factor::RecoveryCode(&codes[3]),
    )
    .await
    .unwrap();
    assert_eq!(used_events(&h, &alice.user), [4, 3, 2, 1]);
    assert_eq!(last_used_notice(&h, &alice.user), None);
}

/// At 3 or fewer every login carries the hint, whatever factor it used, and so does the
/// status; the mark is the host's.
#[tokio::test]
async fn logins_and_status_carry_the_low_hint() {
    let h = harness(five_codes_low_at_3());
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    let g = totp_login(&h, &alice, &secret).await;
    assert_eq!(g.recovery_codes_low, None);
    let status = h.tf.status_for(&alice).await.unwrap();
    assert_eq!(
        (status.recovery_codes_left, status.recovery_codes_low),
        (5, None)
    );
    login(&h, &alice, Factor::RecoveryCode(&codes[0]))
        .await
        .unwrap();
    let g = login(&h, &alice, Factor::RecoveryCode(&codes[1]))
        .await
        .unwrap();
    assert_eq!(g.recovery_codes_low, Some(3));
    let g = totp_login(&h, &alice, &secret).await;
    assert_eq!(
        (g.recovery_codes_left, g.recovery_codes_low),
        (None, Some(3))
    );
    assert!(!g.must_regenerate_recovery_codes);
    let status = h.tf.status(&alice.user).await.unwrap();
    assert_eq!(status.recovery_codes_low, Some(3));
    assert!(!status.must_regenerate_recovery_codes);

    // A host that warns only when none are left.
    let h = harness(
        Settings::builder()
            .recovery_codes(5)
            .recovery_codes_low_at(0)
            .build()
            .unwrap(),
    );
    let (secret, codes) = h.enroll(&alice.user).await;
    for c in &codes[..4] {
        let g = login(&h, &alice, Factor::RecoveryCode(c)).await.unwrap();
        assert_eq!(g.recovery_codes_low, None);
    }
    assert_eq!(last_used_notice(&h, &alice.user), Some((1, false)));
    let g = login(&h, &alice, Factor::RecoveryCode(&codes[4]))
        .await
        .unwrap();
    assert_eq!(g.recovery_codes_low, Some(0));
    assert!(g.must_regenerate_recovery_codes);
    assert_eq!(last_used_notice(&h, &alice.user), Some((0, true)));
    let g = totp_login(&h, &alice, &secret).await;
    assert!(g.must_regenerate_recovery_codes);
}

/// With none left: the login that used the last one and every later login say the user must
/// make new ones; no recovery code is offered at the second step; making new ones (with the
/// login's proof) ends it.
#[tokio::test]
async fn none_left_means_regenerate_at_the_next_login() {
    let h = harness(five_codes_low_at_3());
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    for (i, c) in codes.iter().enumerate() {
        let g = login(&h, &alice, Factor::RecoveryCode(c)).await.unwrap();
        assert_eq!(g.must_regenerate_recovery_codes, i == 4);
    }
    assert_eq!(used_events(&h, &alice.user), [4, 3, 2, 1, 0]);
    assert_eq!(last_used_notice(&h, &alice.user), Some((0, true)));
    assert!(
        h.tf.status(&alice.user)
            .await
            .unwrap()
            .must_regenerate_recovery_codes
    );
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    assert_eq!(pending.methods(), [FactorKind::Totp]);
    for _ in 0..2 {
        let g = totp_login(&h, &alice, &secret).await;
        assert!(g.must_regenerate_recovery_codes);
        assert_eq!(g.recovery_codes_low, Some(0));
    }
    let g = totp_login(&h, &alice, &secret).await;
    let fresh =
        h.tf.regenerate_recovery_codes(&alice.user, Reauthenticated::at(h.now()), &g.proof)
            .await
            .unwrap();
    assert_eq!(fresh.len(), 5);
    let g = totp_login(&h, &alice, &secret).await;
    assert!(!g.must_regenerate_recovery_codes);
    assert_eq!(g.recovery_codes_low, None);
    let status = h.tf.status(&alice.user).await.unwrap();
    assert!(!status.must_regenerate_recovery_codes);
    assert_eq!(status.recovery_codes_left, 5);
}

/// Regenerating replaces the whole set: the old codes left unused stop working (refused like
/// codes never issued), the new ones work, and the count starts over.
#[tokio::test]
async fn regenerating_replaces_the_whole_set() {
    let h = harness(five_codes_low_at_3());
    let alice = Principal::new("alice");
    let (secret, old) = h.enroll(&alice.user).await;
    let g = login(&h, &alice, Factor::RecoveryCode(&old[0]))
        .await
        .unwrap();
    assert_eq!(g.recovery_codes_left, Some(4));
    let new =
        h.tf.regenerate_recovery_codes(&alice.user, Reauthenticated::at(h.now()), &g.proof)
            .await
            .unwrap();
    let new: Vec<String> = new.expose_secret().into_iter().map(str::to_owned).collect();
    assert_eq!(new.len(), 5);
    for unused in &old[1..] {
        assert!(!new.contains(unused));
        let e = login(&h, &alice, Factor::RecoveryCode(unused))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidCode), "{e:?}");
        // The throttle counts them: pass the window between tries.
        h.clock.advance(3_600);
    }
    let g = login(&h, &alice, Factor::RecoveryCode(&new[0]))
        .await
        .unwrap();
    assert_eq!(g.recovery_codes_left, Some(4));
    assert_eq!(g.recovery_codes_low, None);
    let _ = totp_login(&h, &alice, &secret).await;
}
