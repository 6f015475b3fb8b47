//! `TwoFactor::builder(store)`: the defaults (no mailer, the opt-in policy) and the
//! type-changing builder methods.

use twofactor::account::Reauthenticated;
use twofactor::mail::NoMailer;
use twofactor::mail::{NoMailerError, NoticeKind};
use twofactor::testing::{ManualClock, RecordingMailer};
use twofactor::{
    EnforcementPolicy, EnrollmentStatus, Error, MemoryStore, Optional, Principal, RequiredForAll,
    Requirement, TwoFactor, UserId, WhenUnenrolled,
};

const T0: u64 = 1_700_000_000;

#[test]
fn the_defaults_are_no_mailer_and_the_opt_in_policy() {
    let tf = TwoFactor::builder(MemoryStore::new()).build();
    let _: &NoMailer = tf.mailer();
    assert_eq!(*tf.policy(), Optional);
    let someone = Principal::new("anyone").with_role("admin");
    assert_eq!(
        tf.policy()
            .requirement(&someone, &EnrollmentStatus::unenrolled(), T0),
        Requirement::optional()
    );
    // `new` is the builder with every default.
    let tf = TwoFactor::new(MemoryStore::new());
    assert_eq!(*tf.policy(), Optional);
}

#[tokio::test]
async fn without_a_mailer_notices_that_must_arrive_fail_loudly() {
    let clock = ManualClock::new(T0);
    let tf = TwoFactor::builder(MemoryStore::new()).clock(&clock).build();
    let alice = UserId::new("alice");
    let admin = UserId::new("root");

    let err = tf
        .invite(&alice, &admin, "https://example.com/enroll")
        .await;
    let Err(Error::Mailer(source)) = err else {
        panic!("an invitation without a mailer must fail, got {err:?}");
    };
    assert_eq!(
        source.downcast_ref::<NoMailerError>(),
        Some(&NoMailerError(NoticeKind::Invitation))
    );
    assert!(!tf.status(&alice).await.unwrap().is_enrolled());

    // Informational notices are dropped, not failed: enrolling works without a mailer.
    let started = tf
        .start_enrollment(
            &Principal::new("alice"),
            "alice@example.com",
            Reauthenticated::at(T0),
        )
        .await;
    assert!(started.is_ok(), "{started:?}");
}

#[tokio::test]
async fn mailer_and_policy_replace_the_defaults() {
    let clock = ManualClock::new(T0);
    let tf = TwoFactor::builder(MemoryStore::new())
        .policy(RequiredForAll::new(WhenUnenrolled::MailCode))
        .mailer(RecordingMailer::new())
        .clock(&clock)
        .build();
    assert!(matches!(
        tf.policy()
            .requirement(&Principal::new("bob"), &EnrollmentStatus::unenrolled(), T0),
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            ..
        }
    ));
    let alice = UserId::new("alice");
    tf.invite(&alice, &UserId::new("root"), "https://example.com/enroll")
        .await
        .unwrap();
    assert_eq!(tf.mailer().kinds_for(&alice), [NoticeKind::Invitation]);
}
