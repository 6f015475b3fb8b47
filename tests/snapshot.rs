//! The login snapshot: `finish_login` starts from the record `start_login` kept, and a stale
//! snapshot never decides anything.

use std::sync::Arc;

#[allow(dead_code, unreachable_pub)]
#[path = "common/counting.rs"]
mod counting;

use counting::{Counting, Pause};

use twofactor::account::{
    Factor, LoginContext, LoginDecision, PendingLogin, Reauthenticated, Settings,
};
use twofactor::audit::AuditKind;
use twofactor::service::{Error, TwoFactor};
use twofactor::store::{SaveOutcome, UserStore, Version};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, EnrollmentStatus, KeyUri, MemoryStore, Principal, Requirement, Secret, Totp, UserId,
};

const T0: u64 = 1_700_000_010;

type Policy = fn(&Principal, &EnrollmentStatus, u64) -> Requirement;

fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}

/// A MemoryStore that counts its statements.
type Counted = Counting<MemoryStore>;

type Service =
    TwoFactor<Arc<Counted>, Arc<RecordingMailer>, Policy, Arc<ManualClock>, Arc<RecordingAudit>>;

/// One "app server": a service on the shared store and clock, with the keys every server of
/// the deployment shares (a ticket one hands out is good at the others).
fn server(store: &Arc<Counted>, clock: &Arc<ManualClock>, capacity: Option<usize>) -> Service {
    let builder = TwoFactor::builder(store.clone())
        .mailer(Arc::new(RecordingMailer::new()))
        .policy(required as Policy)
        .clock(clock.clone())
        .audit(Arc::new(RecordingAudit::new()))
        .settings(Settings::builder().issuer("ACME").build().unwrap())
        .keys(twofactor::testing::test_keys());
    match capacity {
        Some(c) => builder.login_snapshot_capacity(c),
        None => builder,
    }
    .build()
}

fn ctx() -> LoginContext {
    LoginContext::new()
}

fn code(secret: &Secret, now: u64) -> String {
    Totp::default().generate(secret, now).to_string()
}

fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

async fn enroll(tf: &Service, user: &UserId) -> Secret {
    let now = tf.clock().now();
    let started = tf
        .start_enrollment(
            &Principal::new(user.clone()),
            "alice",
            Reauthenticated::at(now),
        )
        .await
        .unwrap();
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    tf.finish_enrollment(user, &code(&secret, now))
        .await
        .unwrap();
    secret
}

fn setup() -> (Arc<Counted>, Arc<ManualClock>) {
    (
        Arc::new(Counting::new(MemoryStore::new(), Pause::None)),
        Arc::new(ManualClock::new(T0)),
    )
}

async fn challenge(tf: &Service, p: &Principal) -> PendingLogin {
    let d = tf.start_login(p, None, &ctx()).await.unwrap();
    match d {
        LoginDecision::Challenge { pending } => pending,
        d => panic!("{d:?}"),
    }
}

fn successes(tf: &Service, user: &UserId) -> usize {
    tf.audit()
        .kinds_for(user)
        .iter()
        .filter(|k| matches!(k, AuditKind::LoginSucceeded { .. }))
        .count()
}

#[tokio::test]
async fn a_full_totp_login_is_one_load_and_one_save() {
    let (store, clock) = setup();
    let tf = server(&store, &clock, None);
    let alice = Principal::new("alice");
    let secret = enroll(&tf, &alice.user).await;
    clock.advance(30);

    store.reset();
    let pending = challenge(&tf, &alice).await;
    assert_eq!(tf.login_snapshots(), 1);
    tf.finish_login(
        &pending,
        Factor::Totp(&code(&secret, clock.now())),
        None,
        &ctx(),
    )
    .await
    .unwrap();
    assert_eq!(store.counts(), (1, 1, 0));
    assert_eq!(tf.login_snapshots(), 0, "finish_login takes the snapshot");

    // A wrong code too: the counted check is the save that validates the snapshot.
    clock.advance(30);
    store.reset();
    let pending = challenge(&tf, &alice).await;
    let bad = wrong(&code(&secret, clock.now()));
    assert!(matches!(
        tf.finish_login(&pending, Factor::Totp(&bad), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(store.counts(), (1, 1, 0));
}

#[tokio::test]
async fn disabled_snapshots_load_twice_as_before() {
    let (store, clock) = setup();
    let tf = server(&store, &clock, Some(0));
    assert_eq!(tf.login_snapshot_capacity(), 0);
    let alice = Principal::new("alice");
    let secret = enroll(&tf, &alice.user).await;
    clock.advance(30);
    store.reset();
    let pending = challenge(&tf, &alice).await;
    assert_eq!(tf.login_snapshots(), 0);
    tf.finish_login(
        &pending,
        Factor::Totp(&code(&secret, clock.now())),
        None,
        &ctx(),
    )
    .await
    .unwrap();
    assert_eq!(store.counts(), (2, 1, 0));
}

#[tokio::test]
async fn a_code_accepted_by_another_server_meanwhile_is_refused() {
    let (store, clock) = setup();
    let a = server(&store, &clock, None);
    let b = server(&store, &clock, None);
    let alice = Principal::new("alice");
    let secret = enroll(&a, &alice.user).await;
    clock.advance(30);
    let typed = code(&secret, clock.now());

    let on_a = challenge(&a, &alice).await; // a's snapshot: the step is unused
    let on_b = challenge(&b, &alice).await;
    b.finish_login(&on_b, Factor::Totp(&typed), None, &ctx())
        .await
        .unwrap();

    store.reset();
    assert!(matches!(
        a.finish_login(&on_a, Factor::Totp(&typed), None, &ctx())
            .await,
        Err(Error::InvalidCode)
    ));
    // The snapshot's save conflicted; the replay was found on a fresh load (and counted).
    assert_eq!(store.counts(), (1, 2, 1));
    assert_eq!(successes(&a, &alice.user), 0);
    assert_eq!(successes(&b, &alice.user), 1);
}

#[tokio::test]
async fn a_user_reset_meanwhile_is_not_let_in_with_the_old_code() {
    let (store, clock) = setup();
    let a = server(&store, &clock, None);
    let b = server(&store, &clock, None);
    let alice = Principal::new("alice");
    let root = UserId::new("root");
    let secret = enroll(&a, &alice.user).await;
    clock.advance(30);

    // Reset on another server: only the compare-and-swap can tell. (The reset also revokes
    // the tickets issued before it: the fresh load refuses this one, `LoginExpired`.)
    let pending = challenge(&a, &alice).await;
    b.reset_by_admin(&alice.user, &root).await.unwrap();
    store.reset();
    assert!(matches!(
        a.finish_login(
            &pending,
            Factor::Totp(&code(&secret, clock.now())),
            None,
            &ctx()
        )
        .await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(
        store.counts().1,
        1,
        "the snapshot's save conflicted, nothing else was saved"
    );
    assert_eq!(successes(&a, &alice.user), 0);
    assert!(!a.status(&alice.user).await.unwrap().is_enrolled());
    // A ticket issued after the reset does not take the old code either.
    let decision = a.start_login(&alice, None, &ctx()).await.unwrap();
    let after = decision.into_pending().expect("must enroll");
    assert!(matches!(
        a.finish_login(
            &after,
            Factor::Totp(&code(&secret, clock.now())),
            None,
            &ctx()
        )
        .await,
        Err(Error::InvalidCode)
    ));
    assert_eq!(successes(&a, &alice.user), 0);

    // Reset on the same server: the snapshot is dropped at once.
    let secret = enroll(&a, &alice.user).await;
    clock.advance(30);
    let pending = challenge(&a, &alice).await;
    assert_eq!(a.login_snapshots(), 1);
    a.reset_by_admin(&alice.user, &root).await.unwrap();
    assert_eq!(a.login_snapshots(), 0);
    store.reset();
    assert!(matches!(
        a.finish_login(
            &pending,
            Factor::Totp(&code(&secret, clock.now())),
            None,
            &ctx()
        )
        .await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(store.counts().0, 1, "loaded, not taken from a snapshot");
    assert_eq!(successes(&a, &alice.user), 0);
    assert!(!a.status(&alice.user).await.unwrap().is_enrolled());
}

#[tokio::test]
async fn a_refusal_that_saves_nothing_is_rechecked_on_a_fresh_load() {
    let (store, clock) = setup();
    let a = server(&store, &clock, None);
    let alice = Principal::new("alice");
    let secret = enroll(&a, &alice.user).await;
    clock.advance(30);
    let before_throttle = store.inner().load(&alice.user).await.unwrap().unwrap();

    // Throttle alice; a's start_login keeps the throttled record.
    let pending = challenge(&a, &alice).await;
    let bad = wrong(&code(&secret, clock.now()));
    for _ in 0..Settings::default().code_checks_per_window() {
        assert!(matches!(
            a.finish_login(&pending, Factor::Totp(&bad), None, &ctx())
                .await,
            Err(Error::InvalidCode)
        ));
    }
    let d = a.start_login(&alice, None, &ctx()).await;
    assert!(matches!(d, Err(Error::Throttled { .. })), "{d:?}");
    assert_eq!(a.login_snapshots(), 1);

    // Meanwhile an operator's tool lifts the throttle in the database.
    let throttled = store.inner().load(&alice.user).await.unwrap().unwrap();
    assert_eq!(
        store
            .inner()
            .save(
                &alice.user,
                &before_throttle.record,
                Some(throttled.version)
            )
            .await
            .unwrap(),
        SaveOutcome::Saved(Version(throttled.version.0 + 1))
    );

    // On the snapshot the code would be refused unchecked, saving nothing: that verdict is
    // not trusted, the fresh record lets the right code in.
    store.reset();
    a.finish_login(
        &pending,
        Factor::Totp(&code(&secret, clock.now())),
        None,
        &ctx(),
    )
    .await
    .unwrap();
    assert_eq!(store.counts(), (1, 1, 0));
}

#[tokio::test]
async fn snapshots_expire_and_stay_bounded() {
    let (store, clock) = setup();
    let tf = server(&store, &clock, Some(3));
    let alice = Principal::new("alice");
    let secret = enroll(&tf, &alice.user).await;
    clock.advance(30);

    // As old as the login challenge: the pending login has expired with the snapshot, and is
    // refused before anything is loaded or counted.
    let pending = challenge(&tf, &alice).await;
    clock.advance(Settings::default().login_challenge_ttl());
    store.reset();
    assert!(matches!(
        tf.finish_login(
            &pending,
            Factor::Totp(&code(&secret, clock.now())),
            None,
            &ctx(),
        )
        .await,
        Err(Error::LoginExpired)
    ));
    assert_eq!(store.counts(), (0, 0, 0));
    let pending = challenge(&tf, &alice).await;
    tf.finish_login(
        &pending,
        Factor::Totp(&code(&secret, clock.now())),
        None,
        &ctx(),
    )
    .await
    .unwrap();

    // Many users: never more than the capacity, the newest kept.
    for i in 0..50 {
        tf.start_login(&Principal::new(format!("user{i}")), None, &ctx())
            .await
            .unwrap();
        assert!(tf.login_snapshots() <= 3);
        if i % 10 == 0 {
            clock.advance(1);
        }
    }
    assert_eq!(tf.login_snapshots(), 3);
    clock.advance(30);
    let pending = challenge(&tf, &alice).await;
    assert_eq!(tf.login_snapshots(), 3);
    store.reset();
    tf.finish_login(
        &pending,
        Factor::Totp(&code(&secret, clock.now())),
        None,
        &ctx(),
    )
    .await
    .unwrap();
    assert_eq!(store.counts(), (0, 1, 0), "the newest snapshot was kept");

    // Abandoned logins do not linger: expired snapshots are swept. (Users the cache has not
    // seen: which earlier users survived eviction depends on the hash map's random order.)
    for i in 0..2 {
        tf.start_login(&Principal::new(format!("abandoned{i}")), None, &ctx())
            .await
            .unwrap();
    }
    assert_eq!(tf.login_snapshots(), 3);
    clock.advance(Settings::default().login_challenge_ttl() + 60);
    tf.start_login(&Principal::new("late"), None, &ctx())
        .await
        .unwrap();
    assert_eq!(tf.login_snapshots(), 1);
    assert_eq!(
        TwoFactor::builder(MemoryStore::new())
            .mailer(RecordingMailer::new())
            .policy(required as Policy)
            .keys(twofactor::testing::test_keys())
            .build()
            .login_snapshot_capacity(),
        twofactor::service::DEFAULT_LOGIN_SNAPSHOT_CAPACITY
    );
}
