//! Several named authenticators per user, through the service: adding a second phone (fresh
//! password and a second factor), losing one of two phones, the last one is 2FA itself, labels,
//! the per-user limit, the throttle counting a submission once, the host naming the
//! authenticator, replacing one by id, an administrator's reset, and a drifting phone.
#![cfg(feature = "serde")]

#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use common::flows::{Harness, code, optional, required, wrong};
use twofactor::account::{
    AuthenticatorId, DEFAULT_LABEL, Factor, LabelError, LoginContext, MAX_LABEL_CHARS,
    Reauthenticated, Settings,
};
use twofactor::audit::AuditKind;
use twofactor::mail::Notice;
use twofactor::service::Error;
use twofactor::{MemoryStore, Principal, Secret};

fn harness() -> Harness<MemoryStore> {
    Harness::new(Arc::new(MemoryStore::new()), required)
}

/// Alice enrolled (her phone), 30 s later.
async fn enrolled(h: &Harness<MemoryStore>) -> (Principal, Secret, Vec<String>) {
    let alice = Principal::new("alice");
    let (phone, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    (alice, phone, codes)
}

/// A TOTP login at the next step with `secret`: the authenticator named in the grant (and,
/// the same, in its assurance claims and its proof's).
async fn login(
    h: &Harness<MemoryStore>,
    who: &Principal,
    secret: &Secret,
) -> Result<Option<AuthenticatorId>, Error> {
    h.clock.advance(30);
    let pending = h.challenge(who).await;
    let granted =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&code(secret, h.now())),
            None,
            &LoginContext::new(),
        )
        .await?;
    let named = |claims: &twofactor::account::AssuranceClaims| {
        claims
            .methods()
            .iter()
            .find(|m| m.method == twofactor::account::AuthMethod::Otp)
            .and_then(|m| m.authenticator.clone())
    };
    let id = granted
        .authenticator
        .as_ref()
        .map(|id| id.as_str().to_owned());
    assert_eq!(named(&granted.claims), id);
    assert_eq!(named(granted.proof.claims()), id);
    Ok(granted.authenticator)
}

/// `start_adding_authenticator` ("Tablet") with a password checked at `reauth`.
async fn start_adding(
    h: &Harness<MemoryStore>,
    who: &Principal,
    reauth: u64,
    verification: Factor<'_>,
) -> Result<twofactor::account::EnrollmentStarted, Error> {
    h.tf.start_adding_authenticator(
        &who.user,
        "Tablet",
        "alice",
        verification,
        Reauthenticated::at(reauth),
    )
    .await
}

/// Adds "`label`" to enrolled `who`, proving the second factor with a code of `with`.
async fn add(
    h: &Harness<MemoryStore>,
    who: &Principal,
    label: &str,
    with: &Secret,
) -> (Secret, AuthenticatorId) {
    h.add_authenticator(&who.user, label, Factor::Totp(&code(with, h.now())).into())
        .await
}

/// Removes `id` with a fresh password and a code of `with`, through `h`'s policy.
async fn remove(
    h: &Harness<MemoryStore>,
    who: &Principal,
    id: &AuthenticatorId,
    with: &Secret,
) -> Result<(), Error> {
    h.tf.remove_authenticator(
        who,
        id,
        Reauthenticated::at(h.now()),
        Factor::Totp(&code(with, h.now())),
    )
    .await
}

/// Replaces `id` (a code of `with` proves the second factor) and confirms the new secret.
async fn replace(
    h: &Harness<MemoryStore>,
    who: &Principal,
    id: &AuthenticatorId,
    with: &Secret,
) -> (Secret, twofactor::account::Enrolled) {
    let started =
        h.tf.start_replacing_authenticator(
            &who.user,
            id,
            "alice",
            Factor::Totp(&code(with, h.now())),
            Reauthenticated::at(h.now()),
        )
        .await
        .unwrap();
    let fresh = twofactor::KeyUri::parse(started.uri())
        .unwrap()
        .into_secret();
    let enrolled =
        h.tf.finish_enrollment(&who.user, &code(&fresh, h.now()))
            .await
            .unwrap();
    (fresh, enrolled)
}

fn notices(h: &Harness<MemoryStore>, who: &Principal) -> Vec<Notice> {
    h.tf.mailer().sent_to(&who.user)
}

#[tokio::test]
async fn adding_and_removing_a_second_phone() {
    let h = harness();
    let (alice, phone, _) = enrolled(&h).await;
    let phone_id = h.tf.authenticators(&alice.user).await.unwrap()[0]
        .id()
        .clone();
    // The session's proof of the login is the second factor adding needs.
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let granted =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&code(&phone, h.now())),
            None,
            &LoginContext::new(),
        )
        .await
        .unwrap();
    let (spare, spare_id) = h
        .add_authenticator(&alice.user, "  Spare phone ", (&granted.proof).into())
        .await;
    let list = h.tf.authenticators(&alice.user).await.unwrap();
    assert_eq!(
        list.iter().map(|a| a.label()).collect::<Vec<_>>(),
        [DEFAULT_LABEL, "Spare phone"]
    );
    assert_eq!(list[1].created_at(), h.now());
    assert!(
        notices(&h, &alice)
            .iter()
            .any(|n| matches!(n, Notice::AuthenticatorAdded { label } if label == "Spare phone"))
    );
    assert!(
        h.audit
            .kinds_for(&alice.user)
            .contains(&AuditKind::AuthenticatorAdded {
                authenticator: spare_id.clone(),
                label: "Spare phone".into()
            })
    );
    // The first one still works (a peer silently replaced it when a second was added), and
    // the second one too; each login names its authenticator.
    assert_eq!(
        login(&h, &alice, &phone).await.unwrap(),
        Some(phone_id.clone())
    );
    assert_eq!(
        login(&h, &alice, &spare).await.unwrap(),
        Some(spare_id.clone())
    );
    assert_eq!(
        h.tf.status(&alice.user).await.unwrap().recovery_codes_left,
        10
    );
    // Removing the spare (with the phone's code) leaves the phone untouched.
    h.clock.advance(30);
    remove(&h, &alice, &spare_id, &phone).await.unwrap();
    let list = h.tf.authenticators(&alice.user).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id(), &phone_id);
    assert!(
        h.audit
            .kinds_for(&alice.user)
            .contains(&AuditKind::AuthenticatorRemoved {
                authenticator: spare_id.clone(),
                label: "Spare phone".into()
            })
    );
    assert!(matches!(
        notices(&h, &alice).last(),
        Some(Notice::AuthenticatorRemoved { label }) if label == "Spare phone"
    ));
    assert!(matches!(
        login(&h, &alice, &spare).await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(login(&h, &alice, &phone).await.unwrap(), Some(phone_id));
}

#[tokio::test]
async fn adding_needs_a_fresh_password_and_a_second_factor_and_touches_nothing_else() {
    let h = harness();
    let (alice, phone, codes) = enrolled(&h).await;
    let c = code(&phone, h.now());
    // A stale password check.
    assert!(matches!(
        start_adding(&h, &alice, h.now() - 3_600, Factor::Totp(&c)).await,
        Err(Error::ReauthenticationRequired)
    ));
    // A wrong code: refused, counted, nothing pending.
    assert!(matches!(
        start_adding(&h, &alice, h.now(), Factor::Totp(&wrong(&c))).await,
        Err(Error::InvalidCode)
    ));
    assert!(
        h.tf.status(&alice.user)
            .await
            .unwrap()
            .pending_enrollment_expires_at
            .is_none()
    );
    // Not enrolled: the first authenticator is enrolled, not added.
    let bob = Principal::new("bob");
    assert!(matches!(
        h.tf.start_adding_authenticator(
            &bob.user,
            "x",
            "bob",
            Factor::Totp("123456"),
            Reauthenticated::at(h.now())
        )
        .await,
        Err(Error::NotEnrolled)
    ));
    // A recovery code is a second factor too; the devices and the other codes stay.
    let started = start_adding(&h, &alice, h.now(), Factor::RecoveryCode(&codes[0]))
        .await
        .unwrap();
    let tablet = twofactor::KeyUri::parse(started.uri())
        .unwrap()
        .into_secret();
    // The pending authenticator is not confirmed by `finish_enrollment` (which would have
    // replaced the phone), only by `finish_adding_authenticator`.
    assert!(matches!(
        h.tf.finish_enrollment(&alice.user, &code(&tablet, h.now()))
            .await,
        Err(Error::NoPendingEnrollment)
    ));
    // Its code does not log in before it is confirmed.
    assert!(matches!(
        login(&h, &alice, &tablet).await,
        Err(Error::InvalidCode)
    ));
    // A code of the phone does not confirm it.
    assert!(matches!(
        h.tf.finish_adding_authenticator(&alice.user, &code(&phone, h.now()))
            .await,
        Err(Error::InvalidCode)
    ));
    h.tf.finish_adding_authenticator(&alice.user, &code(&tablet, h.now()))
        .await
        .unwrap();
    assert_eq!(
        h.tf.status(&alice.user).await.unwrap().recovery_codes_left,
        9
    );
    assert!(login(&h, &alice, &phone).await.is_ok());
    assert!(login(&h, &alice, &tablet).await.is_ok());
}

#[tokio::test]
async fn losing_one_of_two_phones() {
    let h = Harness::new(Arc::new(MemoryStore::new()), optional);
    let (alice, phone, _) = enrolled(&h).await;
    let (spare, spare_id) = add(&h, &alice, "Spare", &phone).await;
    // A remembered device, to see that removing a phone does not forget it.
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.tf.finish_login(
        &pending,
        Factor::Totp(&code(&spare, h.now())),
        Some("Laptop"),
        &LoginContext::new(),
    )
    .await
    .unwrap();
    // The phone is lost: the spare removes it.
    let phone_id = h.tf.authenticators(&alice.user).await.unwrap()[0]
        .id()
        .clone();
    h.clock.advance(30);
    remove(&h, &alice, &phone_id, &spare).await.unwrap();
    assert!(matches!(
        login(&h, &alice, &phone).await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(
        login(&h, &alice, &spare).await.unwrap(),
        Some(spare_id.clone())
    );
    let status = h.tf.status(&alice.user).await.unwrap();
    assert!(status.is_enrolled());
    assert_eq!(status.trusted_devices, 1);
    assert_eq!(status.recovery_codes_left, 10);
    // Removing the last one is turning 2FA off, with its rules.
    h.clock.advance(30);
    let strict = Harness::new(h.tf.store().clone(), required);
    strict.clock.set(h.now());
    assert!(matches!(
        remove(&strict, &alice, &spare_id, &spare).await,
        Err(Error::RequiredByPolicy)
    ));
    remove(&h, &alice, &spare_id, &spare).await.unwrap();
    let status = h.tf.status(&alice.user).await.unwrap();
    assert!(!status.is_enrolled());
    assert_eq!(status.trusted_devices, 0);
    let kinds = h.audit.kinds_for(&alice.user);
    assert!(matches!(
        kinds.as_slice(),
        [
            ..,
            AuditKind::Disabled { .. },
            AuditKind::AuthenticatorRemoved { .. }
        ]
    ));
    // An unknown id is refused before anything is checked.
    assert!(matches!(
        h.tf.rename_authenticator(&alice.user, &spare_id, "x").await,
        Err(Error::UnknownAuthenticator)
    ));
}

#[tokio::test]
async fn labels_are_the_users_unique_and_checked() {
    let h = harness();
    let (alice, phone, _) = enrolled(&h).await;
    let id = h.tf.authenticators(&alice.user).await.unwrap()[0]
        .id()
        .clone();
    let too_long = "x".repeat(MAX_LABEL_CHARS + 1);
    for (label, error) in [
        ("", LabelError::Empty),
        ("   ", LabelError::Empty),
        ("Work\nphone", LabelError::ControlCharacter { position: 4 }),
        ("\u{1b}[31m", LabelError::ControlCharacter { position: 0 }),
        (
            too_long.as_str(),
            LabelError::TooLong {
                max: MAX_LABEL_CHARS,
            },
        ),
    ] {
        let e = h.tf.rename_authenticator(&alice.user, &id, label).await;
        assert!(
            matches!(&e, Err(Error::InvalidLabel(got)) if *got == error),
            "{label:?}: {e:?}"
        );
        let e =
            h.tf.start_adding_authenticator(
                &alice.user,
                label,
                "alice",
                Factor::Totp(&code(&phone, h.now())),
                Reauthenticated::at(h.now()),
            )
            .await;
        assert!(matches!(e, Err(Error::InvalidLabel(_))), "{label:?}");
        assert_eq!(e.unwrap_err().kind(), twofactor::ErrorKind::MalformedInput);
    }
    h.tf.rename_authenticator(&alice.user, &id, " Work phone ")
        .await
        .unwrap();
    assert!(matches!(
        notices(&h, &alice).last(),
        Some(Notice::AuthenticatorRenamed { from, to }) if from == DEFAULT_LABEL && to == "Work phone"
    ));
    let (_, spare) = add(&h, &alice, "Spare", &phone).await;
    // Unique per user, case ignored, for renames and additions alike.
    assert!(matches!(
        h.tf.rename_authenticator(&alice.user, &spare, "WORK PHONE")
            .await,
        Err(Error::LabelTaken)
    ));
    h.clock.advance(30);
    assert!(matches!(
        h.tf.start_adding_authenticator(
            &alice.user,
            "spare",
            "alice",
            Factor::Totp(&code(&phone, h.now())),
            Reauthenticated::at(h.now()),
        )
        .await,
        Err(Error::LabelTaken)
    ));
    // Another user may use the same labels.
    let bob = Principal::new("bob");
    h.enroll(&bob.user).await;
    let bob_id = h.tf.authenticators(&bob.user).await.unwrap()[0]
        .id()
        .clone();
    h.tf.rename_authenticator(&bob.user, &bob_id, "Work phone")
        .await
        .unwrap();
    // Another user's authenticator id is unknown to alice.
    assert!(matches!(
        h.tf.rename_authenticator(&alice.user, &bob_id, "Mine")
            .await,
        Err(Error::UnknownAuthenticator)
    ));
}

#[tokio::test]
async fn the_limit_bounds_the_authenticators_and_the_throttle_counts_a_submission_once() {
    assert!(Settings::builder().max_authenticators(0).build().is_err());
    assert!(
        Settings::builder()
            .max_authenticators(Settings::MAX_MAX_AUTHENTICATORS + 1)
            .build()
            .is_err()
    );
    assert_eq!(Settings::default().max_authenticators(), 5);
    let h = harness();
    let (alice, phone, _) = enrolled(&h).await;
    let mut secrets = vec![phone.clone()];
    for i in 1..5 {
        h.clock.advance(30);
        let (s, _) = add(&h, &alice, &format!("Phone {i}"), &phone).await;
        secrets.push(s);
    }
    h.clock.advance(30);
    assert!(matches!(
        h.tf.start_adding_authenticator(
            &alice.user,
            "Sixth",
            "alice",
            Factor::Totp(&code(&phone, h.now())),
            Reauthenticated::at(h.now()),
        )
        .await,
        Err(Error::TooManyAuthenticators { max: 5 })
    ));
    // Five authenticators: a wrong code is still one submission for the throttle (5 an
    // hour by default), however many secrets it was checked against.
    let good = code(&secrets[4], h.now());
    let bad = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| {
            secrets
                .iter()
                .all(|s| (-1i64..=1).all(|d| code(s, (h.now() as i64 + 30 * d) as u64) != *c))
        })
        .unwrap();
    for _ in 0..5 {
        let pending = h.challenge(&alice).await;
        assert!(matches!(
            h.finish_totp(&pending, &bad).await,
            Err(Error::InvalidCode)
        ));
    }
    assert_eq!(h.wrong_codes(&alice.user), 5);
    // The sixth submission is refused unchecked, even the right code.
    let pending = h.pending_for(&alice).await;
    assert!(matches!(
        h.finish_totp(&pending, &good).await,
        Err(Error::Throttled { .. })
    ));
}

#[tokio::test]
async fn the_host_may_name_the_authenticator_the_user_picked() {
    let h = harness();
    let (alice, phone, _) = enrolled(&h).await;
    let phone_id = h.tf.authenticators(&alice.user).await.unwrap()[0]
        .id()
        .clone();
    let (spare, spare_id) = add(&h, &alice, "Spare", &phone).await;
    h.clock.advance(30);
    let ctx = LoginContext::new();
    let spare_code = code(&spare, h.now());
    // Named the phone: the spare's code is not tried.
    let pending = h.challenge(&alice).await;
    assert!(matches!(
        h.tf.finish_login_from(&pending, Factor::Totp(&spare_code), &phone_id, None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    // Not one of hers: refused before anything is counted.
    let checks = h.wrong_codes(&alice.user);
    assert!(matches!(
        h.tf.finish_login_from(
            &pending,
            Factor::Totp(&spare_code),
            &AuthenticatorId::new("nope"),
            None,
            &ctx
        )
        .await,
        Err(Error::UnknownAuthenticator)
    ));
    assert_eq!(h.wrong_codes(&alice.user), checks);
    let granted =
        h.tf.finish_login_from(&pending, Factor::Totp(&spare_code), &spare_id, None, &ctx)
            .await
            .unwrap();
    assert_eq!(granted.authenticator, Some(spare_id));
}

#[tokio::test]
async fn replacing_one_named_authenticator_keeps_the_others() {
    let h = harness();
    let (alice, phone, _) = enrolled(&h).await;
    let (spare, spare_id) = add(&h, &alice, "Spare", &phone).await;
    h.clock.advance(30);
    // Which one? `start_rotation` replaces the only one; with two it asks.
    assert!(matches!(
        h.tf.start_rotation(
            &alice.user,
            "alice",
            code(&phone, h.now()).as_str(),
            Reauthenticated::at(h.now())
        )
        .await,
        Err(Error::AuthenticatorNotNamed)
    ));
    let (new_spare, enrolled) = replace(&h, &alice, &spare_id, &phone).await;
    assert!(enrolled.rotated());
    assert_eq!(enrolled.authenticator().label(), "Spare");
    assert_ne!(enrolled.authenticator().id(), &spare_id);
    let list = h.tf.authenticators(&alice.user).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].id(), enrolled.authenticator().id());
    assert!(matches!(
        login(&h, &alice, &spare).await,
        Err(Error::InvalidCode)
    ));
    assert!(login(&h, &alice, &new_spare).await.is_ok());
    assert!(login(&h, &alice, &phone).await.is_ok());
}

#[tokio::test]
async fn an_administrators_reset_removes_every_authenticator() {
    let h = harness();
    let (alice, phone, _) = enrolled(&h).await;
    add(&h, &alice, "Spare", &phone).await;
    h.tf.reset_by_admin(&alice.user, &"root".into())
        .await
        .unwrap();
    assert!(h.tf.authenticators(&alice.user).await.unwrap().is_empty());
    assert!(!h.tf.status(&alice.user).await.unwrap().is_enrolled());
}

/// A phone whose clock runs ahead, a step every few days: each login teaches the service a
/// little more, and the phone keeps working where a fixed window of ±1 step would have
/// refused it; never more than ten steps away from the server's time.
#[tokio::test]
async fn a_drifting_phone() {
    let h = harness();
    let (alice, phone, _) = enrolled(&h).await;
    let (drifting, id) = add(&h, &alice, "Old phone", &phone).await;
    let ahead = |steps: u64, now: u64| code(&drifting, now + 30 * steps);
    let mut refused_without_learning = 0;
    for steps in 1..=4u64 {
        for _ in 0..2 {
            h.clock.advance(3_600);
            let pending = h.challenge(&alice).await;
            let result = h.finish_totp(&pending, &ahead(steps, h.now())).await;
            assert!(result.is_ok(), "{steps} steps ahead: {result:?}");
            // A fixed ±1 window would refuse it.
            if steps > 1 {
                refused_without_learning += 1;
            }
        }
        let info =
            h.tf.authenticators(&alice.user)
                .await
                .unwrap()
                .into_iter()
                .find(|a| a.id() == &id)
                .unwrap();
        assert_eq!(info.clock_offset_seconds(), 30 * steps as i64);
    }
    assert_eq!(refused_without_learning, 6);
    let learned: Vec<_> = h
        .audit
        .kinds_for(&alice.user)
        .into_iter()
        .filter_map(|k| match k {
            AuditKind::ClockOffsetLearned {
                authenticator,
                to_seconds,
                ..
            } => Some((authenticator, to_seconds)),
            _ => None,
        })
        .collect();
    assert_eq!(
        learned,
        (1..=4).map(|s| (id.clone(), 30 * s)).collect::<Vec<_>>()
    );
    // The other phone learned nothing and still works.
    assert_eq!(
        h.tf.authenticators(&alice.user).await.unwrap()[0].clock_offset_seconds(),
        0
    );
    assert!(login(&h, &alice, &phone).await.is_ok());
    // Replaced, the drifting phone starts again with no offset.
    h.clock.advance(30);
    let (_, enrolled) = replace(&h, &alice, &id, &phone).await;
    assert_eq!(enrolled.authenticator().clock_offset_seconds(), 0);
}
