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
        .keys(twofactor::testing::test_keys())
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

/// A builder with a mailer builds only once told how mailed codes are stored (a builder that
/// is not told does not compile: see the `compile_fail` example on `service::keying`): with
/// the service keys they are keyed hashes, and the unkeyed storage has to be asked for by its
/// dangerous name.
#[test]
fn with_a_mailer_the_storage_of_mailed_codes_is_an_explicit_choice() {
    let keys = twofactor::testing::test_keys();
    let id = keys.code_key().id().to_owned();
    let keyed = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .keys(keys)
        .build();
    assert_eq!(keyed.settings().code_key_id(), Some(id.as_str()));
    let unkeyed = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .unkeyed_mailed_codes_dangerous()
        .build();
    assert_eq!(unkeyed.settings().code_key_id(), None);
    // Without a mailer no code is ever mailed: the defaults build as they are.
    assert_eq!(
        TwoFactor::builder(MemoryStore::new())
            .build()
            .settings()
            .code_key_id(),
        None
    );
}

/// The keys survive a later `.settings(..)`: two app servers built in either order share
/// tickets (a ticket from one is taken by the other) and code keys.
#[tokio::test]
async fn keys_given_before_the_settings_are_kept() {
    use twofactor::account::{LoginContext, LoginDecision, Settings};
    let clock = ManualClock::new(T0);
    let required = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    let store = std::sync::Arc::new(MemoryStore::new());
    let keys_first = TwoFactor::builder(store.clone())
        .mailer(RecordingMailer::new())
        .policy(required)
        .clock(&clock)
        .keys(twofactor::testing::test_keys())
        .settings(Settings::builder().issuer("ACME").build().unwrap())
        .build();
    let settings_first = TwoFactor::builder(store)
        .mailer(RecordingMailer::new())
        .policy(required)
        .clock(&clock)
        .settings(Settings::builder().issuer("ACME").build().unwrap())
        .keys(twofactor::testing::test_keys())
        .build();
    assert_eq!(
        keys_first.settings().code_key_id(),
        settings_first.settings().code_key_id()
    );
    assert!(keys_first.settings().code_key_id().is_some());
    let alice = Principal::new("alice");
    let decision = keys_first
        .start_login(&alice, None, &LoginContext::new())
        .await
        .unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    // Taken by the other server (a ticket under another key would be `InvalidTicket`).
    let started = settings_first
        .start_forced_enrollment(&pending, "alice")
        .await;
    assert!(started.is_ok(), "{:?}", started.map(|_| ()));
}
