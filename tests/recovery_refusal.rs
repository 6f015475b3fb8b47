//! A used recovery code is refused exactly like a code that was never issued, at the service a
//! host calls: the same error, the same audit events, the same notices, the same record saved,
//! the same `tracing` output and the same allocations. Anything the refusal does differently
//! is something whoever typed the code could time (`benches/dudect.rs`, rows
//! "finish_login: recovery code ..."): it would tell them the code was once issued to this
//! user. 0.1.0 audited the used code as `Replayed` (and branched on it to get there), so
//! every comparison of events below fails there.
//!
//! Each attempt starts from the same stored row (planted with `MemoryStore::insert_json`), at
//! the same clock time, with the mailbox and the audit trail emptied, so that everything it
//! produces can be compared whole.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use allocation_counter::measure;
use tracing::field::{Field, Visit};
use tracing::span;

use twofactor::account::{CodeKey, FactorKind, FailureReason, Refusal, TwoFactorRecord};
use twofactor::audit::{AuditEvent, AuditKind, AuditSink, TracingAudit};
use twofactor::mail::NoticeKind;
use twofactor::service::{DEFAULT_LOGIN_SNAPSHOT_CAPACITY, Error, TwoFactor};
use twofactor::store::UserStore;
use twofactor::testing::{ManualClock, RecordingAudit, RecordingMailer};
use twofactor::{
    Factor, KeyUri, LoginContext, MemoryStore, Optional, PendingLogin, Principal, Reauthenticated,
    Settings, Totp, UserId,
};

const T0: u64 = 1_700_000_000;

/// Polls a future to completion on this thread: the memory store, the recording mailer and the
/// manual clock never wait (and no runtime allocates behind the count).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Records every event, and also writes it through `tracing` as the default sink does.
#[derive(Default)]
struct Audit(RecordingAudit);

impl AuditSink for Audit {
    fn record(&self, event: &AuditEvent) {
        self.0.record(event);
        TracingAudit.record(event);
    }
}

type Service = TwoFactor<MemoryStore, RecordingMailer, Optional, ManualClock, Audit>;

/// Every `tracing` span and event, with its fields, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Capture {
    fn push(&self, line: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut fields = Fields(String::new());
        span.record(&mut fields);
        self.push(format!("span {}{}", span.metadata().name(), fields.0));
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut fields = Fields(String::new());
        values.record(&mut fields);
        self.push(format!("record{}", fields.0));
    }
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let m = event.metadata();
        self.push(format!("{} {}{}", m.level(), m.target(), fields.0));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Alice enrolled with ten recovery codes, the first one used to log in once.
struct Fixture {
    tf: Service,
    alice: Principal,
    codes: Vec<String>,
    /// Alice's row after that login.
    row: String,
    ctx: LoginContext,
}

fn fixture(code_key: bool, snapshots: usize) -> Fixture {
    let mut settings = Settings::builder();
    if code_key {
        settings = settings.code_key(CodeKey::from_bytes(&[7; 32]));
    }
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .clock(ManualClock::new(T0))
        .audit(Audit::default())
        // Both digest schemes are under test: with `code_key`, the settings carry the key.
        .unkeyed_mailed_codes_dangerous()
        .settings(settings.build().unwrap())
        .login_snapshot_capacity(snapshots)
        .build();
    let alice = Principal::new("alice");
    let ctx = LoginContext::new().device("Firefox on Linux");
    let started = block_on(tf.start_enrollment(&alice, "alice", Reauthenticated::at(T0))).unwrap();
    let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
    let code = Totp::default().generate(&secret, T0).to_string();
    let codes: Vec<String> = block_on(tf.finish_enrollment(&alice.user, &code))
        .unwrap()
        .into_recovery_codes()
        .expose_secret()
        .into_iter()
        .map(str::to_owned)
        .collect();
    tf.clock().advance(60);
    let pending = start(&tf, &alice, &ctx);
    let granted =
        block_on(tf.finish_login(&pending, Factor::RecoveryCode(&codes[0]), None, &ctx)).unwrap();
    assert_eq!(granted.recovery_codes_left, Some(9));
    let (row, _) = tf.store().json(&alice.user).unwrap();
    Fixture {
        tf,
        alice,
        codes,
        row,
        ctx,
    }
}

fn start(tf: &Service, alice: &Principal, ctx: &LoginContext) -> PendingLogin {
    block_on(tf.start_login(alice, None, ctx))
        .unwrap()
        .into_pending()
        .expect("a challenge")
}

/// A code of the same shape as `code` that was never issued: every letter and digit replaced
/// by another of the same kind.
fn never_issued(code: &str, codes: &[String]) -> String {
    let never: String = code
        .chars()
        .map(|c| match c {
            '0'..='8' => char::from(c as u8 + 1),
            '9' => '0',
            'z' => 'a',
            'h' => 'j',
            'k' => 'm',
            'n' => 'p',
            't' => 'v',
            'a'..='y' => char::from(c as u8 + 1),
            other => other,
        })
        .collect();
    assert!(!codes.contains(&never));
    never
}

/// Everything a refusal produces that a host, its logs or its store can see.
#[derive(Debug, PartialEq)]
struct Seen {
    error: String,
    events: Vec<AuditEvent>,
    notices: Vec<(UserId, String)>,
    row: String,
    versions_written: u64,
    snapshots_after: usize,
    tracing: Vec<String>,
}

/// From the same row, at the same time: `start_login`, then `finish_login` with `code`.
fn refuse(f: &Fixture, code: &str) -> Seen {
    let store = f.tf.store();
    let before = store.insert_json(&f.alice.user, f.row.clone());
    f.tf.clock().set(T0 + 3_600);
    let pending = start(&f.tf, &f.alice, &f.ctx);
    f.tf.mailer().clear();
    f.tf.audit().0.clear();
    let capture = Capture::default();
    let result = tracing::subscriber::with_default(capture.clone(), || {
        block_on(f.tf.finish_login(&pending, Factor::RecoveryCode(code), None, &f.ctx))
    });
    let (row, after) = store.json(&f.alice.user).unwrap();
    Seen {
        error: format!("{:?}", result.unwrap_err()),
        events: f.tf.audit().0.events(),
        notices: f
            .tf
            .mailer()
            .sent()
            .into_iter()
            .map(|(user, notice)| (user, format!("{notice:?}")))
            .collect(),
        row,
        versions_written: after.0 - before.0,
        snapshots_after: f.tf.login_snapshots(),
        tracing: capture.lines(),
    }
}

#[test]
fn a_used_code_and_a_code_never_issued_are_one_refusal_at_the_service() {
    for code_key in [true, false] {
        for snapshots in [DEFAULT_LOGIN_SNAPSHOT_CAPACITY, 0] {
            let f = fixture(code_key, snapshots);
            let used = f.codes[0].clone();
            let never = never_issued(&used, &f.codes);
            let seen_used = refuse(&f, &used);
            let seen_never = refuse(&f, &never);
            assert_eq!(
                seen_used, seen_never,
                "code key {code_key}, snapshots {snapshots}"
            );

            // And that one refusal is a wrong code, counted, with nothing else changed.
            assert_eq!(seen_used.error, format!("{:?}", Error::InvalidCode));
            let kinds: Vec<AuditKind> = seen_used.events.iter().map(|e| e.kind.clone()).collect();
            assert_eq!(
                kinds,
                [AuditKind::LoginFailed {
                    factor: FactorKind::RecoveryCode,
                    reason: FailureReason::WrongCode,
                }]
            );
            assert!(!kinds[0].is_replay());
            assert_eq!(seen_used.notices.len(), 1);
            assert!(
                f.tf.mailer()
                    .kinds_for(&f.alice.user)
                    .iter()
                    .all(|k| *k == NoticeKind::FailedCodeAttempt)
            );
            assert_eq!(seen_used.versions_written, 1);
            assert!(
                seen_used
                    .tracing
                    .iter()
                    .any(|l| l.contains("twofactor::audit") && l.contains("WrongCode")),
                "{:?}",
                seen_used.tracing
            );
            let saved = block_on(f.tf.store().load(&f.alice.user))
                .unwrap()
                .unwrap()
                .record;
            assert_eq!(saved.recovery_codes_left(), 9);
        }
    }
}

#[test]
fn the_domain_transition_is_the_same_for_both() {
    let f = fixture(true, DEFAULT_LOGIN_SNAPSHOT_CAPACITY);
    let record: TwoFactorRecord = block_on(f.tf.store().load(&f.alice.user))
        .unwrap()
        .unwrap()
        .record;
    let now = T0 + 3_600;
    f.tf.clock().set(now);
    let pending = start(&f.tf, &f.alice, &f.ctx);
    let requirement = twofactor::Requirement::optional();
    let attempt = |code: &str| {
        record
            .finish_login(
                &pending,
                now,
                &requirement,
                Factor::RecoveryCode(code),
                None,
                &f.ctx,
                f.tf.settings(),
                &mut FailingRng,
            )
            .unwrap()
    };
    let used = attempt(&f.codes[0]);
    let never = attempt(&never_issued(&f.codes[0], &f.codes));
    assert_eq!(
        serde_json::to_string(used.record()).unwrap(),
        serde_json::to_string(never.record()).unwrap()
    );
    assert_eq!(used.is_changed(), never.is_changed());
    assert_eq!(used.events(), never.events());
    assert_eq!(
        format!("{:?}", used.notices()),
        format!("{:?}", never.notices())
    );
    assert_eq!(
        used.outcome().as_ref().unwrap_err(),
        &Refusal::Invalid(FailureReason::WrongCode)
    );
    assert_eq!(
        used.outcome().as_ref().unwrap_err(),
        never.outcome().as_ref().unwrap_err()
    );
}

#[test]
fn both_refusals_allocate_alike() {
    let f = fixture(true, DEFAULT_LOGIN_SNAPSHOT_CAPACITY);
    let used = f.codes[0].clone();
    let never = never_issued(&used, &f.codes);
    let count = |code: &str| {
        f.tf.store().insert_json(&f.alice.user, f.row.clone());
        f.tf.clock().set(T0 + 3_600);
        let pending = start(&f.tf, &f.alice, &f.ctx);
        f.tf.mailer().clear();
        f.tf.audit().0.clear();
        let info = measure(|| {
            let r = block_on(f.tf.finish_login(&pending, Factor::RecoveryCode(code), None, &f.ctx));
            assert!(matches!(r, Err(Error::InvalidCode)));
        });
        (info.count_total, info.bytes_total)
    };
    // Warm up whatever is initialised lazily, then compare.
    let _ = count(&never);
    let a = count(&used);
    let b = count(&never);
    assert!(a.0 > 0, "the counter sees the call's allocations");
    assert_eq!(a, b);
}

/// The domain call draws no randomness on a refusal: a generator that always fails proves it.
struct FailingRng;

impl rand::TryRng for FailingRng {
    type Error = std::io::Error;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Err(std::io::Error::other("no randomness on a refusal"))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Err(std::io::Error::other("no randomness on a refusal"))
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
        Err(std::io::Error::other("no randomness on a refusal"))
    }
}

impl rand::TryCryptoRng for FailingRng {}
