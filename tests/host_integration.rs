//! Host integration: a store, mailer and policy chosen at run time behind one service type,
//! one input box for the second factor (`Factor::parse`), and trusted-device cookies
//! (`cookie::DeviceCookie`, `LoginDecision::forget_device_cookie`).
#![cfg(feature = "serde")]

#[allow(unused_imports)] // this binary uses the flows and the suite, not the fixtures
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use common::{conformance, flows};
use twofactor::account::{
    Factor, FactorKind, GrantReason, LoginContext, LoginDecision, ServiceKeys,
};
use twofactor::cookie::DeviceCookie;
use twofactor::mail::{DynMailer, NoMailer};
use twofactor::policy::{NoTrustedDevices, Optional, RequiredForAll, WhenUnenrolled};
use twofactor::store::DynStore;
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingMailer;
use twofactor::vocabulary::DynError;
use twofactor::{
    Clock, EnforcementPolicy, EnrollmentStatus, Error, MemoryStore, Principal, Requirement, Secret,
    Settings, TwoFactor, UserId,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One service type, whatever the configuration says.
type App = TwoFactor<DynStore, DynMailer, Arc<dyn EnforcementPolicy>, Arc<ManualClock>>;

/// What a host does with its configuration: one return type for every store.
async fn store_from_config(kind: &str) -> Result<DynStore, BoxError> {
    Ok(match kind {
        "memory" => Arc::new(MemoryStore::new()),
        #[cfg(feature = "sqlite")]
        "sqlite" => Arc::new(twofactor::store::SqliteStore::in_memory().await?),
        #[cfg(feature = "postgres")]
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = twofactor::store::PostgresStore::connect(url).await?;
            store.migrate().await?;
            Arc::new(store)
        }
        other => return Err(format!("unknown store {other:?}").into()),
    })
}

fn mailer_from_config(kind: &str) -> DynMailer {
    match kind {
        "recording" => Arc::new(RecordingMailer::new()),
        _ => Arc::new(NoMailer),
    }
}

fn policy_from_config(kind: &str) -> Arc<dyn EnforcementPolicy> {
    match kind {
        "required" => Arc::new(RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled)),
        "off" => Arc::new(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Off),
        _ => Arc::new(Optional),
    }
}

fn app(store: DynStore, policy: &str, clock: &Arc<ManualClock>) -> App {
    TwoFactor::builder(store)
        .mailer(mailer_from_config("recording"))
        .keys(twofactor::testing::test_keys())
        .policy(policy_from_config(policy))
        .clock(clock.clone())
        .build()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(flows::T0))
}

async fn enroll(tf: &App, clock: &ManualClock, user: &UserId) -> (Secret, Vec<String>) {
    let started = tf
        .start_enrollment(
            &Principal::new(user.clone()),
            "user@example.com",
            twofactor::Reauthenticated::at(clock.now()),
        )
        .await
        .expect("start enrollment");
    let secret = twofactor::KeyUri::parse(started.uri())
        .expect("key URI")
        .into_secret();
    let enrolled = tf
        .finish_enrollment(user, &flows::code(&secret, clock.now()))
        .await
        .expect("finish enrollment");
    let codes = enrolled
        .recovery_codes()
        .expose_secret()
        .into_iter()
        .map(str::to_owned)
        .collect();
    clock.advance(30);
    (secret, codes)
}

/// Enrollment, a TOTP login from the one input box with "remember this device", the cookie
/// round trip, and a recovery code typed sloppily: all through `DynStore`, `DynMailer` and an
/// `Arc<dyn EnforcementPolicy>`.
async fn full_host_flow(store_kind: &str) {
    let store = store_from_config(store_kind).await.expect("store");
    let clock = clock();
    let tf = app(store, "required", &clock);
    let alice = Principal::new("alice");
    let ctx = LoginContext::new();
    let decision = tf.start_login(&alice, None, &ctx).await.unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    // Forced set-up with the login ticket (the host keeps `pending.as_str()` in the
    // half-logged-in session and parses it back on the next request).
    let kept: twofactor::PendingLogin = pending.as_str().parse().unwrap();
    let started = tf.start_forced_enrollment(&kept, "alice").await.unwrap();
    let secret = twofactor::KeyUri::parse(started.uri())
        .expect("key URI")
        .into_secret();
    let enrolled = tf
        .finish_forced_enrollment(&kept, &flows::code(&secret, clock.now()))
        .await
        .unwrap();
    assert!(enrolled.login_completed());
    let codes: Vec<String> = enrolled
        .recovery_codes()
        .expose_secret()
        .into_iter()
        .map(str::to_owned)
        .collect();
    clock.advance(30);

    // TOTP, typed as the app shows it.
    let decision = tf.start_login(&alice, None, &ctx).await.unwrap();
    let LoginDecision::Challenge { pending } = decision else {
        panic!("{decision:?}")
    };
    let code = flows::code(&secret, clock.now());
    let typed = format!("{} {}", &code[..3], &code[3..]);
    let factor = Factor::parse(&typed).unwrap();
    assert_eq!(factor.kind(), FactorKind::Totp);
    let granted = tf
        .finish_login(&pending, factor, Some("Firefox on Linux"), &ctx)
        .await
        .unwrap();
    let token = granted.device_token.as_ref().expect("a device token");

    // The cookie the browser stores, and sends back; named under the service's cookie key.
    let cookies = tf.device_cookie();
    assert_ne!(
        cookies.name_for(&alice.user),
        DeviceCookie::new(ServiceKeys::ephemeral().unwrap().cookie_key()).name_for(&alice.user)
    );
    let set_cookie = cookies.set_cookie_header(&alice.user, token);
    let ttl = Settings::default().trusted_device_ttl();
    assert_eq!(
        set_cookie,
        format!(
            "{}={}; Max-Age={ttl}; Path=/; HttpOnly; Secure; SameSite=Lax",
            cookies.name_for(&alice.user),
            token.expose_secret()
        )
    );
    let (pair, _) = set_cookie.split_once(';').unwrap();
    let request = format!("lang=fr; {pair}");
    let presented = cookies.token_from_header(&request, &alice.user);
    assert_eq!(presented, Some(token.expose_secret()));
    clock.advance(60);
    let decision = tf.start_login(&alice, presented, &ctx).await.unwrap();
    assert!(
        matches!(
            &decision,
            LoginDecision::Granted { reason: GrantReason::TrustedDevice { device }, .. }
                if device == token.id()
        ),
        "{decision:?}"
    );
    assert!(!decision.forget_device_cookie());

    // A recovery code, typed in capitals with spaces: the same input box.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let factor = Factor::parse(&typed).unwrap();
    assert_eq!(factor.kind(), FactorKind::RecoveryCode);
    let pending = tf
        .start_login(&alice, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    let granted = tf.finish_login(&pending, factor, None, &ctx).await.unwrap();
    assert_eq!(granted.factor, FactorKind::RecoveryCode);
    // ...once: not again with that (used-up) ticket, nor with a new login's.
    assert!(matches!(
        tf.finish_login(&pending, Factor::parse(&typed).unwrap(), None, &ctx)
            .await,
        Err(Error::LoginExpired)
    ));
    let pending = tf
        .start_login(&alice, None, &ctx)
        .await
        .unwrap()
        .into_pending()
        .expect("a pending login");
    assert!(matches!(
        tf.finish_login(&pending, Factor::parse(&typed).unwrap(), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_chosen_at_run_time() {
    full_host_flow("memory").await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_chosen_at_run_time() {
    full_host_flow("sqlite").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_chosen_at_run_time() {
    let url = common::pg::PgServer::shared()
        .fresh_database("hostapi")
        .await;
    full_host_flow(&url).await;
}

#[tokio::test]
async fn an_unknown_store_is_a_configuration_error() {
    assert!(store_from_config("mysql").await.is_err());
}

/// The boxed adapter keeps the store contract: the shared conformance suite and the
/// concurrency flows over `Arc<DynStore>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dyn_store_passes_the_store_conformance_suite() {
    for kind in [
        "memory",
        #[cfg(feature = "sqlite")]
        "sqlite",
    ] {
        let (a, b) = flows::sample_records().await;
        let store = || async { Arc::new(store_from_config(kind).await.unwrap()) };
        conformance::load_unknown_is_none(&*store().await).await;
        conformance::insert_if_absent(&*store().await, &b).await;
        conformance::save_bumps_version_by_one(&*store().await).await;
        conformance::stale_version_conflicts(&*store().await, &a, &b).await;
        conformance::round_trip(&*store().await, &[a.clone(), b.clone(), a.clone()]).await;
        conformance::concurrent_insert_race(store().await, 16).await;
        conformance::no_lost_update(store().await, 32).await;
        flows::enroll_login_replay(store().await).await;
        flows::recovery_code_once(store().await).await;
    }
}

/// Infrastructure errors come through the box, keep their type and fail closed.
#[tokio::test]
async fn dyn_store_errors_fail_closed_and_keep_their_type() {
    #[derive(Debug, thiserror::Error)]
    #[error("database down")]
    struct Down;
    struct Broken;
    impl twofactor::UserStore for Broken {
        type Error = Down;
        async fn load(&self, _: &UserId) -> Result<Option<twofactor::store::Versioned>, Down> {
            Err(Down)
        }
        async fn save(
            &self,
            _: &UserId,
            _: &twofactor::account::TwoFactorRecord,
            _: Option<twofactor::store::Version>,
        ) -> Result<twofactor::store::SaveOutcome, Down> {
            Err(Down)
        }
    }
    let clock = clock();
    let tf = app(Arc::new(Broken), "required", &clock);
    let err = tf
        .start_login(&Principal::new("alice"), None, &LoginContext::new())
        .await
        .unwrap_err();
    let Error::Store(source) = &err else {
        panic!("{err:?}")
    };
    let dyn_err = source.downcast_ref::<DynError>().expect("a DynError");
    assert!(dyn_err.downcast_ref::<Down>().is_some());
    assert_eq!(dyn_err.to_string(), "database down");
}

// ---- trusted-device cookies: the signal to delete a cookie that no longer works ----

/// A policy the operator switches at run time (0: required, 1: required without trusted
/// devices, 2: everyone exempt), delegating to policies chosen from configuration. ("Off" is
/// no longer a way to ask for nothing: an enrolled user is challenged under it, fail closed.)
fn switchable(mode: Arc<AtomicU8>) -> Arc<dyn EnforcementPolicy> {
    let choices: [Arc<dyn EnforcementPolicy>; 3] = [
        policy_from_config("required"),
        Arc::new(NoTrustedDevices::new(RequiredForAll::new(
            WhenUnenrolled::BlockUntilEnrolled,
        ))),
        Arc::new(
            |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Exempt {
                reason: "maintenance".into(),
            },
        ),
    ];
    Arc::new(move |p: &Principal, s: &EnrollmentStatus, now: u64| {
        let i = usize::from(mode.load(Ordering::SeqCst)).min(2);
        choices[i].requirement(p, s, now)
    })
}

struct Trusted {
    tf: App,
    clock: Arc<ManualClock>,
    mode: Arc<AtomicU8>,
    token: String,
}

/// Alice enrolled under a required policy, with a trusted device.
async fn with_trusted_device() -> Trusted {
    let clock = clock();
    let mode = Arc::new(AtomicU8::new(0));
    let tf = TwoFactor::builder(store_from_config("memory").await.unwrap())
        .mailer(mailer_from_config("recording"))
        .keys(twofactor::testing::test_keys())
        .policy(switchable(mode.clone()))
        .clock(clock.clone())
        .build();
    let alice = Principal::new("alice");
    let (secret, _) = enroll(&tf, &clock, &alice.user).await;
    let pending = tf
        .start_login(&alice, None, &LoginContext::new())
        .await
        .unwrap()
        .into_pending()
        .unwrap();
    let granted = tf
        .finish_login(
            &pending,
            Factor::Totp(&flows::code(&secret, clock.now())),
            Some("Firefox"),
            &LoginContext::new(),
        )
        .await
        .unwrap();
    let token = granted.device_token.unwrap().expose_secret().to_owned();
    Trusted {
        tf,
        clock,
        mode,
        token,
    }
}

async fn begin(tf: &App, who: &str, token: Option<&str>) -> LoginDecision {
    tf.start_login(&Principal::new(who), token, &LoginContext::new())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_token_keeps_its_cookie() {
    let t = with_trusted_device().await;
    t.clock
        .advance(Settings::default().trusted_device_ttl() - 1);
    let decision = begin(&t.tf, "alice", Some(&t.token)).await;
    assert!(matches!(
        decision,
        LoginDecision::Granted {
            reason: GrantReason::TrustedDevice { .. },
            ..
        }
    ));
    assert!(!decision.forget_device_cookie());
}

#[tokio::test]
async fn an_expired_token_says_forget_the_cookie() {
    let t = with_trusted_device().await;
    t.clock.advance(Settings::default().trusted_device_ttl());
    let decision = begin(&t.tf, "alice", Some(&t.token)).await;
    assert!(matches!(decision, LoginDecision::Challenge { .. }));
    assert!(decision.forget_device_cookie());
}

#[tokio::test]
async fn a_revoked_token_says_forget_the_cookie() {
    let t = with_trusted_device().await;
    let alice = UserId::new("alice");
    assert_eq!(t.tf.revoke_all_devices(&alice).await.unwrap(), 1);
    let decision = begin(&t.tf, "alice", Some(&t.token)).await;
    assert!(matches!(decision, LoginDecision::Challenge { .. }));
    assert!(decision.forget_device_cookie());
}

#[tokio::test]
async fn another_users_token_says_forget_the_cookie() {
    let t = with_trusted_device().await;
    let bob = UserId::new("bob");
    enroll(&t.tf, &t.clock, &bob).await;
    let decision = begin(&t.tf, "bob", Some(&t.token)).await;
    assert!(matches!(decision, LoginDecision::Challenge { .. }));
    assert!(decision.forget_device_cookie());
    // Two accounts on one browser keep a cookie each.
    let cookies = t.tf.device_cookie();
    assert_ne!(
        cookies.name_for(&bob),
        cookies.name_for(&UserId::new("alice"))
    );
}

#[tokio::test]
async fn a_garbage_token_says_forget_the_cookie() {
    let t = with_trusted_device().await;
    let mut flipped = t.token.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let upper = t.token.to_uppercase();
    for garbage in [
        "",
        "zzz",
        &t.token[..63],
        &flipped,
        "'; DROP TABLE twofactor; --",
    ] {
        let decision = begin(&t.tf, "alice", Some(garbage)).await;
        assert!(
            matches!(decision, LoginDecision::Challenge { .. }),
            "{garbage:?}"
        );
        assert!(decision.forget_device_cookie(), "{garbage:?}");
    }
    // The token is still good (hex in either case).
    assert!(
        !begin(&t.tf, "alice", Some(&upper))
            .await
            .forget_device_cookie()
    );
    // The cookie parser never hands garbage over: the host passes None, and the decision
    // still says forget.
    let cookies = t.tf.device_cookie();
    let alice = UserId::new("alice");
    let header = format!("{}=zzz", cookies.name_for(&alice));
    assert_eq!(cookies.token_from_header(&header, &alice), None);
    assert!(begin(&t.tf, "alice", None).await.forget_device_cookie());
}

#[tokio::test]
async fn a_token_the_policy_no_longer_honours_says_forget_the_cookie() {
    let t = with_trusted_device().await;
    t.mode.store(1, Ordering::SeqCst);
    let decision = begin(&t.tf, "alice", Some(&t.token)).await;
    assert!(matches!(decision, LoginDecision::Challenge { .. }));
    assert!(decision.forget_device_cookie());
}

#[tokio::test]
async fn a_policy_that_asks_for_nothing_keeps_the_cookie() {
    // Everyone exempt: the token is not looked at and is good again once 2FA is back.
    let t = with_trusted_device().await;
    t.mode.store(2, Ordering::SeqCst);
    let decision = begin(&t.tf, "alice", Some(&t.token)).await;
    assert_eq!(
        decision.grant_reason(),
        Some(&GrantReason::Exempt {
            reason: "maintenance".into()
        })
    );
    assert!(!decision.forget_device_cookie());
    t.mode.store(0, Ordering::SeqCst);
    assert!(
        !begin(&t.tf, "alice", Some(&t.token))
            .await
            .forget_device_cookie()
    );
}
