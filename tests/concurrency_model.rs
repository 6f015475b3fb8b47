//! Concurrency explored, not sampled (issue 13, item 10).
//!
//! The compare-and-swap, the login snapshot cache and the checks of what a login was handed
//! run under [`shuttle`]'s depth-first scheduler, exhaustively (every test asserts that the
//! search ran out of schedules, not into its bound), over the memory store. Two service
//! operations race; after every schedule, invariants are checked against the history of that
//! schedule.
//!
//! # The model
//!
//! [`ModelStore`] wraps a fresh [`MemoryStore`] per schedule. The memory store's futures never
//! yield, so on their own two tasks would run one after the other; the wrapper yields to
//! shuttle before and after every load and every save. Each load and each save is one atomic
//! step (as the memory store's mutex makes it), and the scheduler picks which task runs at
//! every boundary. The service code between two store calls (a transition, the snapshot
//! cache's take/put/remove, the audit events) runs as one step in between, and an actor also
//! yields between its two requests ([`think`]). So every interleaving of the service's loads,
//! saves and snapshot-cache uses is explored. Two scheduling points with only task-local work
//! between them are merged ([`ModelStore::before`]), and the first actor runs on shuttle's
//! main task: both only remove schedules that repeat others.
//!
//! The wrapper records a history (one per schedule, in the order the steps ran): each service
//! call's invocation and return, and each load and save with the versions it saw and made. The
//! store's versions order the writes totally, so the checks are linearizability checks: a call
//! that changed the record takes effect at its successful save (version `v`), and its verdict
//! was computed on the record at the version it expected (the compare-and-swap proves the
//! record was that one); a verdict that saved nothing rests on its last load. "Granted after a
//! reset" means: the login's save comes after the reset's in the version order, or the login
//! was invoked after the reset had returned (real time). Neither ever happens; and a refusal
//! always rests on a record that already held the competing write (no valid code is refused
//! for nothing). After every schedule [`check_common`] also holds: no grant without a saved
//! compare-and-swap of its own, the audit trail tells exactly the grants the callers saw, no
//! refusal is an infrastructure error or a give-up after conflicts.
//!
//! Two topologies: one service (both requests on one app server, sharing its snapshot cache)
//! and two services on one store (two app servers: the other server's writes are invisible to
//! this server's snapshot cache until its compare-and-swap fails). Each race also asserts that
//! its exploration reached a `finish_login` on a stale snapshot and one on a current one, and
//! exactly the expected set of outcomes (each serialization that can happen did).
//!
//! # What the checker is shown to catch
//!
//! [`Fault`] breaks the store on purpose: a save that ignores the expected version, and a
//! compare-and-swap split into a check and a write with a step between them. Two tests assert
//! that the exploration finds a double grant with either (shuttle panics with the invariant's
//! message and prints the failing schedule; the test catches the panic).
//!
//! # Adding a race
//!
//! [`explore`] takes a [`Race`]: two actors (each an [`Op`], a `fn` that runs service calls
//! through [`World::call`]), an optional prelude run before them, and a check over the
//! [`Run`]. The login-ticket races (revocation, single use) are written out at the end of the
//! file, commented out until `TwoFactor::revoke_login_tickets` lands.
//!
//! # Schedules explored (exact) and cost (debug build, one thread)
//!
//! | race | one server | two servers |
//! |---|---|---|
//! | two logins, same TOTP code | 845 | 702 |
//! | two logins, same recovery code | 845 | 702 |
//! | login vs admin reset | 202 | 185 |
//! | login vs rotation (`start_rotation` + `finish_enrollment`) | 5,814 | 5,889 |
//! | snapshot cached, then another login with the same code | 36 | 36 |
//! | snapshot cached, then a reset | 19 | 19 |
//! | snapshot cached, then a rotation | 180 | 180 |
//!
//! 15,654 schedules in all, about 22 s of CPU (the rotations, which render a QR code each,
//! take 18 s of it). The faults are found at schedule 14 (version ignored) and 37
//! (check-then-write).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use shuttle::future::yield_now;
use shuttle::scheduler::DfsScheduler;
use shuttle::{Config, FailurePersistence, Runner};

use twofactor::account::{Factor, LoginDecision, PendingLogin, Reauthenticated, Settings};
use twofactor::account::{LoginContext, TwoFactorRecord};
use twofactor::audit::AuditKind;
use twofactor::store::{MemoryStoreError, SaveOutcome, UserStore, Version, Versioned};
use twofactor::testing::{ManualClock, RecordingAudit, RecordingMailer};
use twofactor::{
    EnrollmentStatus, Error, KeyUri, MemoryStore, Principal, Requirement, Secret, Totp, TwoFactor,
    UserId,
};

/// Enrollment time of the fixture.
const T0: u64 = 1_700_000_010;
/// The time of every race: three TOTP steps after enrollment.
const T1: u64 = T0 + 90;
/// The exploration's safety bound: every scenario must finish well below it (asserted), so
/// each search is exhaustive.
const SCHEDULE_BOUND: usize = 100_000;

const ALICE: &str = "alice";

type Policy = fn(&Principal, &EnrollmentStatus, u64) -> Requirement;

fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}

fn alice() -> UserId {
    UserId::new(ALICE)
}

fn code(secret: &Secret, now: u64) -> String {
    Totp::default().generate(secret, now).to_string()
}

fn settings() -> Settings {
    Settings::builder().issuer("ACME").build().unwrap()
}

/// Runs a future that never waits (the plain memory store's, and the service's on it).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

// ----- the fixture: alice enrolled at T0, made once per test -----

/// Alice's enrolled record and the codes the races type, made once (enrollment renders a QR
/// code and hashes ten recovery codes: too slow to repeat in every schedule).
struct Fixture {
    record: TwoFactorRecord,
    /// The old authenticator's code at `T1`: what the logins type.
    totp_now: String,
    /// Its code one step earlier (still in the skew window): what `start_rotation` is given, so
    /// that a login and a rotation do not compete for one step.
    totp_prev: String,
    recovery: Vec<String>,
}

fn fixture() -> Arc<Fixture> {
    loop {
        let clock = ManualClock::new(T0);
        let tf = TwoFactor::builder(MemoryStore::new())
            .mailer(RecordingMailer::new())
            .policy(required as Policy)
            .clock(&clock)
            .audit(RecordingAudit::new())
            .settings(settings())
            .keys(twofactor::testing::test_keys())
            .build();
        let started =
            ready(tf.start_enrollment(&Principal::new(ALICE), ALICE, Reauthenticated::at(T0)))
                .unwrap();
        let secret = KeyUri::parse(started.uri()).unwrap().into_secret();
        let enrolled = ready(tf.finish_enrollment(&alice(), &code(&secret, T0))).unwrap();
        let recovery = enrolled
            .recovery_codes()
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let totp_now = code(&secret, T1);
        let totp_prev = code(&secret, T1 - 30);
        // One secret in a million shows the same code at both steps: draw again.
        if totp_now == totp_prev {
            continue;
        }
        let record = ready(tf.store().load(&alice())).unwrap().unwrap().record;
        assert!(record.is_enrolled());
        assert_eq!(record.enrolled_at(), Some(T0));
        return Arc::new(Fixture {
            record,
            totp_now,
            totp_prev,
            recovery,
        });
    }
}

// ----- the history of one schedule -----

/// Who runs a sequence of service calls (one shuttle task), and on which app server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Actor {
    name: &'static str,
    server: usize,
}

impl Actor {
    const fn on(name: &'static str, server: usize) -> Self {
        Actor { name, server }
    }
}

/// What a service call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Res {
    /// A login was granted.
    Granted,
    /// `start_login` handed out a pending login (the decision's kind).
    Pending(&'static str),
    /// Any other success.
    Done,
    /// The error's `Debug` text (`"InvalidCode"`).
    Refused(String),
}

impl Res {
    fn refused(e: &str) -> Self {
        Res::Refused(e.to_owned())
    }
}

impl fmt::Display for Res {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Res::Granted => f.write_str("granted"),
            Res::Pending(kind) => f.write_str(kind),
            Res::Done => f.write_str("ok"),
            Res::Refused(e) => write!(f, "refused({e})"),
        }
    }
}

/// One step of a schedule, in the order the steps ran.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A service call began (before any of its code ran).
    Call {
        actor: &'static str,
        call: &'static str,
    },
    /// It returned.
    Return {
        actor: &'static str,
        call: &'static str,
        res: Res,
    },
    /// A load returned this version (`None`: no record).
    Load {
        actor: &'static str,
        version: Option<u64>,
    },
    /// A compare-and-swap save expecting `expected` made version `saved` (`None`: conflict).
    Save {
        actor: &'static str,
        expected: Option<u64>,
        saved: Option<u64>,
    },
    /// Something an op observed that a check must know.
    Note {
        actor: &'static str,
        note: &'static str,
    },
}

impl Event {
    fn actor(&self) -> &'static str {
        match self {
            Event::Call { actor, .. }
            | Event::Return { actor, .. }
            | Event::Load { actor, .. }
            | Event::Save { actor, .. }
            | Event::Note { actor, .. } => actor,
        }
    }
}

#[derive(Default)]
struct History {
    events: Mutex<Vec<Event>>,
    /// The actors whose last step was a scheduling point right after a store call, with only
    /// task-local work since (see [`ModelStore::before`]).
    settled: Mutex<Vec<&'static str>>,
}

impl History {
    fn push(&self, e: Event) {
        if let Event::Call { actor, .. } | Event::Return { actor, .. } = e {
            // A service call's boundary: the snapshot cache may be used next.
            self.settled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|a| *a != actor);
        }
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The actor whose task is running (set by [`explore`] when it starts the task).
fn current_actor() -> &'static str {
    shuttle::current::get_label_for_task::<Actor>(shuttle::current::me())
        .map_or("setup", |a| a.name)
}

// ----- the store under the checker -----

/// How [`ModelStore`] saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// A correct compare-and-swap (the memory store's).
    None,
    /// Broken: writes whatever version is stored (last writer wins).
    IgnoresVersion,
    /// Broken: checks the version, lets other tasks run, then writes unconditionally (a CAS
    /// done as a read and a write without a transaction).
    CheckThenWrite,
}

/// A [`MemoryStore`] whose loads and saves are scheduling points, recorded in the history.
struct ModelStore {
    inner: MemoryStore,
    history: Arc<History>,
    fault: Fault,
}

impl ModelStore {
    /// A scheduling point before a store call: the scheduler may run any other task here.
    ///
    /// Skipped when the actor's last step was the scheduling point after its previous store
    /// call and it did only task-local work since (a transition between the load and the save
    /// of one attempt, or the reload after a conflict): another task running at either point
    /// gives the same states, so one point is enough, and no interleaving is lost: within one
    /// service call there is no shared access between two store calls (the snapshot cache is
    /// used only before the first and after the last), and a service call's boundary clears
    /// the mark.
    async fn before(&self) {
        let actor = current_actor();
        let settled = self.history.settled.lock().unwrap().contains(&actor);
        if !settled {
            yield_now().await;
        }
    }

    /// The scheduling point after a store call.
    async fn after(&self) {
        yield_now().await;
        self.history.settled.lock().unwrap().push(current_actor());
    }

    async fn stored_version(&self, user: &UserId) -> Result<Option<Version>, MemoryStoreError> {
        Ok(self.inner.load(user).await?.map(|v| v.version))
    }
}

impl UserStore for ModelStore {
    type Error = MemoryStoreError;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, MemoryStoreError> {
        self.before().await;
        let loaded = self.inner.load(user).await?;
        self.history.push(Event::Load {
            actor: current_actor(),
            version: loaded.as_ref().map(|v| v.version.0),
        });
        self.after().await;
        Ok(loaded)
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, MemoryStoreError> {
        self.before().await;
        let outcome = match self.fault {
            Fault::None => self.inner.save(user, record, expected).await?,
            Fault::IgnoresVersion => {
                let stored = self.stored_version(user).await?;
                self.inner.save(user, record, stored).await?
            }
            Fault::CheckThenWrite => {
                if self.stored_version(user).await? == expected {
                    yield_now().await;
                    let stored = self.stored_version(user).await?;
                    self.inner.save(user, record, stored).await?
                } else {
                    SaveOutcome::Conflict
                }
            }
        };
        self.history.push(Event::Save {
            actor: current_actor(),
            expected: expected.map(|v| v.0),
            saved: match outcome {
                SaveOutcome::Saved(v) => Some(v.0),
                SaveOutcome::Conflict => None,
            },
        });
        self.after().await;
        Ok(outcome)
    }
}

// ----- one schedule's world -----

type Service =
    TwoFactor<Arc<ModelStore>, RecordingMailer, Policy, Arc<ManualClock>, RecordingAudit>;

/// What one schedule runs on: alice's enrolled record (version 1) in a fresh store, one or two
/// app servers on it, the clock at `T1`.
struct World {
    store: Arc<ModelStore>,
    servers: Vec<Service>,
    history: Arc<History>,
    fx: Arc<Fixture>,
    /// A pending login a prelude handed out, for the actors to finish.
    prepared: Mutex<Option<PendingLogin>>,
}

impl World {
    fn new(fx: &Arc<Fixture>, servers: usize, fault: Fault) -> Arc<World> {
        let history = Arc::new(History::default());
        let inner = MemoryStore::new();
        assert_eq!(
            ready(inner.save(&alice(), &fx.record, None)).unwrap(),
            SaveOutcome::Saved(Version(1))
        );
        let store = Arc::new(ModelStore {
            inner,
            history: history.clone(),
            fault,
        });
        let clock = Arc::new(ManualClock::new(T1));
        let servers = (0..servers)
            .map(|_| {
                TwoFactor::builder(store.clone())
                    .mailer(RecordingMailer::new())
                    .policy(required as Policy)
                    .clock(clock.clone())
                    .audit(RecordingAudit::new())
                    .settings(settings())
                    .keys(twofactor::testing::test_keys())
                    .build()
            })
            .collect();
        Arc::new(World {
            store,
            servers,
            history,
            fx: fx.clone(),
            prepared: Mutex::new(None),
        })
    }

    /// The app server `actor` talks to (actors of a one-server race share it).
    fn server(&self, actor: Actor) -> &Service {
        &self.servers[actor.server % self.servers.len()]
    }

    /// Runs one service call, recording its invocation and return.
    async fn call<T>(
        &self,
        actor: Actor,
        call: &'static str,
        fut: impl Future<Output = Result<T, Error>>,
        ok: impl FnOnce(&T) -> Res,
    ) -> Result<T, Error> {
        let actor = actor.name;
        self.history.push(Event::Call { actor, call });
        let out = fut.await;
        let res = match &out {
            Ok(t) => ok(t),
            Err(e) => Res::Refused(format!("{e:?}")),
        };
        self.history.push(Event::Return { actor, call, res });
        out
    }

    fn note(&self, actor: Actor, note: &'static str) {
        self.history.push(Event::Note {
            actor: actor.name,
            note,
        });
    }
}

// ----- the operations actors run -----

type OpFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A sequence of service calls one actor makes.
type Op = fn(Arc<World>, Actor) -> OpFuture;

const START_LOGIN: &str = "start_login";
const FINISH_LOGIN: &str = "finish_login";
const RESET: &str = "reset_by_admin";
const START_ROTATION: &str = "start_rotation";
const FINISH_ENROLLMENT: &str = "finish_enrollment";

/// Which valid code a login types.
#[derive(Debug, Clone, Copy)]
enum Typed {
    /// The (old) authenticator's code at `T1`.
    Totp,
    /// The first recovery code.
    Recovery,
}

fn factor(fx: &Fixture, typed: Typed) -> Factor<'_> {
    match typed {
        Typed::Totp => Factor::Totp(&fx.totp_now),
        Typed::Recovery => Factor::RecoveryCode(&fx.recovery[0]),
    }
}

fn decision_kind(d: &LoginDecision) -> Res {
    match d {
        LoginDecision::Granted { .. } => Res::Granted,
        LoginDecision::Challenge { .. } => Res::Pending("challenge"),
        LoginDecision::MustEnroll { .. } => Res::Pending("must_enroll"),
        LoginDecision::CodeMailed { .. } => Res::Pending("code_mailed"),
        _ => Res::Pending("other"),
    }
}

/// `start_login` after the password check; the pending login it hands out, if any.
async fn start_login(w: &World, me: Actor) -> Option<PendingLogin> {
    let tf = w.server(me);
    let (principal, ctx) = (Principal::new(ALICE), LoginContext::new());
    let started = w.call(
        me,
        START_LOGIN,
        tf.start_login(&principal, None, &ctx),
        decision_kind,
    );
    started.await.ok()?.into_pending()
}

/// `finish_login` with `typed`, whatever `pending` asks for (as an attacker holding a valid
/// code would).
async fn finish_login(w: &World, me: Actor, pending: &PendingLogin, typed: Typed) {
    let tf = w.server(me);
    let ctx = LoginContext::new();
    let finished = w.call(
        me,
        FINISH_LOGIN,
        tf.finish_login(pending, factor(&w.fx, typed), None, &ctx),
        |_| Res::Granted,
    );
    let _ = finished.await;
}

/// Between two requests of one actor (the user reads the page, types the code): any other
/// task may run here.
async fn think() {
    yield_now().await;
}

async fn login(w: &World, me: Actor, typed: Typed) {
    if let Some(pending) = start_login(w, me).await {
        think().await;
        finish_login(w, me, &pending, typed).await;
    }
}

/// A full login with the TOTP code.
fn login_totp(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move { login(&w, me, Typed::Totp).await })
}

/// A full login with the first recovery code.
fn login_recovery(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move { login(&w, me, Typed::Recovery).await })
}

/// Prelude: `start_login`, its pending login kept for [`finish_prepared_totp`] (and the
/// service's snapshot of the record kept in its cache).
fn prepare_login(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move {
        let pending = start_login(&w, me).await;
        assert!(pending.is_some(), "alice is challenged");
        *w.prepared.lock().unwrap() = pending;
    })
}

fn prepared(w: &World) -> PendingLogin {
    w.prepared.lock().unwrap().clone().expect("a prelude ran")
}

/// `finish_login` with the TOTP code on the prelude's pending login.
fn finish_prepared_totp(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move {
        let pending = prepared(&w);
        finish_login(&w, me, &pending, Typed::Totp).await;
    })
}

/// An administrator resets alice's 2FA.
fn reset(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move {
        let tf = w.server(me);
        let root = UserId::new("root");
        let _ = w
            .call(me, RESET, tf.reset_by_admin(&alice(), &root), |()| {
                Res::Done
            })
            .await;
    })
}

/// Alice replaces her authenticator: `start_rotation` with the old authenticator's previous
/// code, then `finish_enrollment` with the new one's code.
fn rotate(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move {
        let tf = w.server(me);
        let user = alice();
        let started = w.call(
            me,
            START_ROTATION,
            tf.start_rotation(&user, ALICE, &w.fx.totp_prev, Reauthenticated::at(T1)),
            |_| Res::Done,
        );
        let Ok(started) = started.await else { return };
        think().await;
        let new = KeyUri::parse(started.uri()).unwrap().into_secret();
        // One new secret in a few hundred thousand shows the old code in the window: the old
        // code is then a valid new code, and the checks let it be.
        if [T1 - 30, T1, T1 + 30]
            .iter()
            .any(|&t| code(&new, t) == w.fx.totp_now)
        {
            w.note(me, "old code valid for the new secret");
        }
        let _ = w
            .call(
                me,
                FINISH_ENROLLMENT,
                tf.finish_enrollment(&user, &code(&new, T1)),
                |_| Res::Done,
            )
            .await;
    })
}

// ----- exploring a race -----

/// Two actors racing, an optional prelude, and what must hold after every schedule.
#[derive(Clone, Copy)]
struct Race {
    name: &'static str,
    /// 1: one app server (shared snapshot cache); 2: actor `i` talks to server `i`.
    servers: usize,
    fault: Fault,
    /// Runs to completion before the actors start.
    prelude: Option<(Actor, Op)>,
    actors: [(Actor, Op); 2],
    check: fn(&Run),
}

/// The history of one finished schedule and the store it left.
struct Run {
    events: Vec<Event>,
    /// Alice's record at the end.
    last: Versioned,
    /// `LoginSucceeded` audit events, all servers.
    audited_grants: usize,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history of the schedule:")?;
        for e in &self.events {
            writeln!(f, "  {e:?}")?;
        }
        Ok(())
    }
}

impl Run {
    fn call_index(&self, actor: &str, call: &str) -> Option<usize> {
        self.events.iter().position(
            |e| matches!(e, Event::Call { actor: a, call: c } if *a == actor && *c == call),
        )
    }

    fn return_index(&self, actor: &str, call: &str) -> Option<usize> {
        self.events.iter().position(
            |e| matches!(e, Event::Return { actor: a, call: c, .. } if *a == actor && *c == call),
        )
    }

    /// What `actor`'s `call` returned (`None`: not called, or not returned).
    fn result(&self, actor: &str, call: &str) -> Option<&Res> {
        self.events.iter().find_map(|e| match e {
            Event::Return {
                actor: a,
                call: c,
                res,
            } if *a == actor && *c == call => Some(res),
            _ => None,
        })
    }

    /// `actor`'s store steps during `call`.
    fn steps_of(&self, actor: &str, call: &str) -> Vec<&Event> {
        let (Some(from), Some(to)) = (self.call_index(actor, call), self.return_index(actor, call))
        else {
            return Vec::new();
        };
        self.events[from..to]
            .iter()
            .filter(|e| e.actor() == actor && matches!(e, Event::Load { .. } | Event::Save { .. }))
            .collect()
    }

    /// The version `actor`'s `call` made with its successful save: where it takes effect in
    /// the store's version order. A service call saves at most once.
    fn commit(&self, actor: &str, call: &str) -> Option<u64> {
        let saves: Vec<u64> = self
            .steps_of(actor, call)
            .into_iter()
            .filter_map(|e| match e {
                Event::Save { saved, .. } => *saved,
                _ => None,
            })
            .collect();
        assert!(saves.len() <= 1, "{actor} {call} saved twice\n{self}");
        saves.first().copied()
    }

    /// The version of the record `actor`'s `call` computed its verdict on: the version its
    /// successful save expected (the compare-and-swap proves the record was that one), or for
    /// a verdict that saved nothing, the version of its last load (0: no record).
    fn decided_on(&self, actor: &str, call: &str) -> Option<u64> {
        self.steps_of(actor, call)
            .into_iter()
            .rev()
            .find_map(|e| match e {
                Event::Save {
                    expected,
                    saved: Some(_),
                    ..
                } => Some(expected.unwrap_or(0)),
                Event::Load { version, .. } => Some(version.unwrap_or(0)),
                _ => None,
            })
    }

    /// Whether `actor`'s `call` returned before `other`'s `other_call` was invoked.
    fn returned_before_call(&self, actor: &str, call: &str, other: &str, other_call: &str) -> bool {
        match (
            self.return_index(actor, call),
            self.call_index(other, other_call),
        ) {
            (Some(r), Some(c)) => r < c,
            _ => false,
        }
    }

    fn noted(&self, note: &str) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Note { note: n, .. } if *n == note))
    }

    fn granted(&self, actor: &str) -> bool {
        self.result(actor, FINISH_LOGIN) == Some(&Res::Granted)
    }

    /// How `actor`'s `finish_login` began: `Some(true)` on a snapshot the store still held
    /// (its save succeeded), `Some(false)` on a stale snapshot (its save conflicted, a reload
    /// followed), `None` on a load.
    fn snapshot_use(&self, actor: &str) -> Option<bool> {
        match self.steps_of(actor, FINISH_LOGIN).first()? {
            Event::Save { saved, .. } => Some(saved.is_some()),
            _ => None,
        }
    }

    /// The outcome class of the schedule: what each actor's calls returned.
    fn outcome(&self, actors: &[Actor]) -> String {
        actors
            .iter()
            .map(|a| {
                let calls: Vec<String> = self
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Return { actor, call, res } if *actor == a.name => {
                            Some(format!("{call}={res}"))
                        }
                        _ => None,
                    })
                    .collect();
                format!("{}: {}", a.name, calls.join(" "))
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// What must hold after every schedule of every race.
fn check_common(run: &Run) {
    let mut grants = 0;
    let mut saves = 0;
    for e in &run.events {
        match e {
            Event::Return { res, .. } => {
                if let Res::Refused(err) = res {
                    // A refusal is a verdict, never an infrastructure failure or given-up retry.
                    assert!(
                        !err.starts_with("Contention") && !err.starts_with("Store"),
                        "{err}\n{run}"
                    );
                }
                if *res == Res::Granted {
                    grants += 1;
                }
            }
            Event::Save { saved: Some(_), .. } => saves += 1,
            _ => {}
        }
    }
    // No grant without a second factor (the policy requires one; no device token is used).
    for e in &run.events {
        if let Event::Return { actor, call, res } = e {
            assert!(
                *res != Res::Granted || *call == FINISH_LOGIN,
                "{actor} {call} granted without a code\n{run}"
            );
        }
    }
    // Every grant was validated by a successful compare-and-swap save of its own.
    for e in &run.events {
        if let Event::Return {
            actor,
            call: FINISH_LOGIN,
            res: Res::Granted,
        } = e
        {
            assert!(
                run.commit(actor, FINISH_LOGIN).is_some(),
                "{actor} was granted without a save\n{run}"
            );
        }
    }
    // The audit trail tells exactly the grants the callers saw.
    assert_eq!(run.audited_grants, grants, "{run}");
    // The history holds every write: version 1 (the fixture) plus one per recorded save.
    assert_eq!(run.last.version, Version(1 + saves), "{run}");
}

/// What exploring a race found.
#[derive(Debug, Default)]
struct Tally {
    schedules: usize,
    outcomes: BTreeMap<String, usize>,
    /// Schedules in which an actor's `finish_login` started from the snapshot and that
    /// snapshot was still current (validated by its save).
    snapshot_validated: usize,
    /// Schedules in which an actor's `finish_login` started from a snapshot another request
    /// had made stale (its save conflicted; it reloaded).
    snapshot_stale: usize,
    elapsed: Duration,
}

/// Explores every schedule of `race` (exhaustive DFS) and checks each; returns the tally.
/// Panics (with shuttle's failing schedule on stderr) on the first schedule that breaks an
/// invariant.
fn explore(race: Race) -> Tally {
    explore_counting(race, &Arc::new(AtomicUsize::new(0)))
}

/// [`explore`], counting the schedules run in `schedules` (readable after a failure).
fn explore_counting(race: Race, schedules: &Arc<AtomicUsize>) -> Tally {
    let fx = fixture();
    let outcomes = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let validated = Arc::new(AtomicUsize::new(0));
    let stale = Arc::new(AtomicUsize::new(0));
    let body = {
        let (schedules, outcomes) = (schedules.clone(), outcomes.clone());
        let (validated, stale) = (validated.clone(), stale.clone());
        move || {
            schedules.fetch_add(1, Ordering::Relaxed);
            let w = World::new(&fx, race.servers, race.fault);
            shuttle::future::block_on({
                let w = w.clone();
                async move {
                    let me = shuttle::current::me();
                    if let Some((actor, op)) = race.prelude {
                        shuttle::current::set_label_for_task(me, actor);
                        op(w.clone(), actor).await;
                    }
                    // The first actor runs on the main task, the second on a task of its own:
                    // a main task that only waited for two tasks would become runnable when
                    // the first ended and multiply the schedules by the choices of when it
                    // runs, for nothing.
                    let [(first, first_op), (second, second_op)] = race.actors;
                    let second_task = shuttle::future::spawn({
                        let w = w.clone();
                        async move {
                            shuttle::current::set_label_for_task(shuttle::current::me(), second);
                            second_op(w, second).await;
                        }
                    });
                    shuttle::current::set_label_for_task(me, first);
                    first_op(w.clone(), first).await;
                    second_task.await.unwrap();
                }
            });
            let run = Run {
                events: w.history.take(),
                last: ready(w.store.inner.load(&alice())).unwrap().unwrap(),
                audited_grants: w
                    .servers
                    .iter()
                    .flat_map(|s| s.audit().kinds_for(&alice()))
                    .filter(|k| matches!(k, AuditKind::LoginSucceeded { .. }))
                    .count(),
            };
            check_common(&run);
            (race.check)(&run);
            let actors = race.actors.map(|(a, _)| a);
            *outcomes
                .lock()
                .unwrap()
                .entry(run.outcome(&actors))
                .or_default() += 1;
            let uses: Vec<_> = actors.iter().map(|a| run.snapshot_use(a.name)).collect();
            if uses.contains(&Some(true)) {
                validated.fetch_add(1, Ordering::Relaxed);
            }
            if uses.contains(&Some(false)) {
                stale.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    // On a failure shuttle prints the schedule (pass it to `shuttle::replay` to re-run it).
    let mut config = Config::default();
    config.failure_persistence = FailurePersistence::Print;
    // Shuttle's default task stack (60 KiB) is too small for the unoptimised service.
    config.stack_size = 1 << 20;
    let started = Instant::now();
    let ran = Runner::new(DfsScheduler::new(Some(SCHEDULE_BOUND), false), config).run(body);
    let tally = Tally {
        schedules: schedules.load(Ordering::Relaxed),
        outcomes: outcomes.lock().unwrap().clone(),
        snapshot_validated: validated.load(Ordering::Relaxed),
        snapshot_stale: stale.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    };
    println!(
        "{}: {} schedules (exhaustive) in {:.2?}; finish_login on a current snapshot in {}, \
         on a stale one in {}",
        race.name, tally.schedules, tally.elapsed, tally.snapshot_validated, tally.snapshot_stale
    );
    for (outcome, n) in &tally.outcomes {
        println!("    {n:>6}  {outcome}");
    }
    assert_eq!(ran, tally.schedules);
    assert!(
        tally.schedules < SCHEDULE_BOUND,
        "{}: the search hit its bound, it is not exhaustive",
        race.name
    );
    tally
}

/// Both topologies of a race: one app server, then two.
fn both_topologies(race: impl Fn(usize) -> Race) -> [Tally; 2] {
    [1, 2].map(|servers| explore(race(servers)))
}

/// Every scenario here can hand `finish_login` a snapshot the other actor then makes stale:
/// the exploration must reach that, and the plain case too.
fn assert_snapshot_races_explored(t: &Tally) {
    assert!(t.snapshot_validated > 0, "{t:?}");
    assert!(t.snapshot_stale > 0, "{t:?}");
}

/// The outcome classes the exploration met are exactly `expected`.
fn assert_outcomes(t: &Tally, expected: &[&str]) {
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    let seen: Vec<&str> = t.outcomes.keys().map(String::as_str).collect();
    assert_eq!(seen, expected);
}

// ----- (1) two logins with the same code -----

const LOGIN: &str = "login";
const LOGIN_B: &str = "login B";
const ADMIN: &str = "admin";
const ROTATION: &str = "rotation";

/// Exactly one of two logins with one valid code is granted; the other's refusal was
/// computed on a record that already held the grant.
fn check_one_grant(run: &Run) {
    let granted: Vec<&str> = [LOGIN, LOGIN_B]
        .into_iter()
        .filter(|a| run.granted(a))
        .collect();
    assert!(granted.len() < 2, "one code granted twice\n{run}");
    assert_eq!(
        granted.len(),
        1,
        "a valid code refused to both logins\n{run}"
    );
    let (winner, loser) = if granted[0] == LOGIN {
        (LOGIN, LOGIN_B)
    } else {
        (LOGIN_B, LOGIN)
    };
    assert_eq!(
        run.result(loser, FINISH_LOGIN),
        Some(&Res::refused("InvalidCode")),
        "{run}"
    );
    let won_at = run.commit(winner, FINISH_LOGIN).unwrap();
    let lost_on = run.decided_on(loser, FINISH_LOGIN).unwrap();
    assert!(
        lost_on >= won_at,
        "refused on v{lost_on}, a record that had not seen the grant (v{won_at})\n{run}"
    );
}

fn same_code_race(name: &'static str, servers: usize, op: Op, fault: Fault) -> Race {
    Race {
        name,
        servers,
        fault,
        prelude: None,
        actors: [(Actor::on(LOGIN, 0), op), (Actor::on(LOGIN_B, 1), op)],
        check: check_one_grant,
    }
}

const GRANTED_A: &str = "login: start_login=challenge finish_login=granted | login B: start_login=challenge finish_login=refused(InvalidCode)";
const GRANTED_B: &str = "login: start_login=challenge finish_login=refused(InvalidCode) | login B: start_login=challenge finish_login=granted";

// Schedules: one server 845, two servers 702 (under a second each).
#[test]
fn two_logins_with_the_same_totp_code_grant_once_in_every_schedule() {
    let name = "same TOTP code twice";
    for t in both_topologies(|n| same_code_race(name, n, login_totp, Fault::None)) {
        assert_outcomes(&t, &[GRANTED_A, GRANTED_B]);
        assert_snapshot_races_explored(&t);
    }
}

// Schedules: one server 845, two servers 702.
#[test]
fn two_logins_with_the_same_recovery_code_grant_once_in_every_schedule() {
    let name = "same recovery code twice";
    for t in both_topologies(|n| same_code_race(name, n, login_recovery, Fault::None)) {
        assert_outcomes(&t, &[GRANTED_A, GRANTED_B]);
        assert_snapshot_races_explored(&t);
    }
}

// ----- (2) a login racing an administrator's reset -----

/// A login is granted only if its save precedes the reset's in the store's version order,
/// never when it was invoked after the reset returned; a refusal was computed on a record the
/// reset had already cleared. The reset always succeeds, and leaves alice unenrolled.
fn check_reset(run: &Run) {
    assert_eq!(run.result(ADMIN, RESET), Some(&Res::Done), "{run}");
    let reset_at = run.commit(ADMIN, RESET).unwrap();
    let decided_on = run
        .decided_on(LOGIN, FINISH_LOGIN)
        .expect("finish_login ran");
    if run.granted(LOGIN) {
        let decided_at = run.commit(LOGIN, FINISH_LOGIN).unwrap();
        assert!(
            decided_at < reset_at,
            "granted at v{decided_at}, after the reset's v{reset_at}\n{run}"
        );
        assert!(
            !run.returned_before_call(ADMIN, RESET, LOGIN, FINISH_LOGIN),
            "granted to a finish_login invoked after the reset returned\n{run}"
        );
    } else {
        // A ticket issued before the reset was revoked by it: refused as expired, before any
        // code is looked at. One issued after it is a forced set-up ticket: a code on it is
        // counted and refused.
        let expected = if run.result(LOGIN, START_LOGIN) == Some(&Res::Pending("must_enroll")) {
            "InvalidCode"
        } else {
            "LoginExpired"
        };
        assert_eq!(
            run.result(LOGIN, FINISH_LOGIN),
            Some(&Res::refused(expected)),
            "{run}"
        );
        assert!(
            decided_on >= reset_at,
            "refused on v{decided_on}, before the reset (v{reset_at}): a valid code refused\n{run}"
        );
    }
    assert!(!run.last.record.is_enrolled(), "{run}");
}

fn reset_race(name: &'static str, servers: usize, prelude: bool) -> Race {
    Race {
        name,
        servers,
        fault: Fault::None,
        prelude: prelude.then_some((Actor::on(LOGIN, 0), prepare_login as Op)),
        actors: [
            (
                Actor::on(LOGIN, 0),
                if prelude {
                    finish_prepared_totp
                } else {
                    login_totp
                },
            ),
            (Actor::on(ADMIN, 1), reset),
        ],
        check: check_reset,
    }
}

// Schedules: one server 202, two servers 185.
#[test]
fn a_login_racing_an_admin_reset_is_never_granted_after_it() {
    let name = "login vs reset";
    for t in both_topologies(|n| reset_race(name, n, false)) {
        assert_outcomes(
            &t,
            &[
                "login: start_login=challenge finish_login=granted | admin: reset_by_admin=ok",
                "login: start_login=challenge finish_login=refused(LoginExpired) | admin: reset_by_admin=ok",
                "login: start_login=must_enroll finish_login=refused(InvalidCode) | admin: reset_by_admin=ok",
            ],
        );
        assert_snapshot_races_explored(&t);
    }
}

// ----- (3) a login racing a rotation -----

/// The old authenticator's code is granted only if the login's save precedes the rotation's
/// `finish_enrollment` save (and the login was not invoked after it returned); refused only
/// on a record where the new authenticator is active. A rotation refused because the login
/// used a later step of the old code first is a correct serialization too.
fn check_rotation(run: &Run) {
    if run.noted("old code valid for the new secret") {
        return;
    }
    let login = run.result(LOGIN, FINISH_LOGIN).expect("finish_login runs");
    let login_on = run.decided_on(LOGIN, FINISH_LOGIN).unwrap();
    match run.result(ROTATION, START_ROTATION) {
        Some(Res::Done) => {
            assert_eq!(
                run.result(ROTATION, FINISH_ENROLLMENT),
                Some(&Res::Done),
                "{run}"
            );
            let rotated_at = run.commit(ROTATION, FINISH_ENROLLMENT).unwrap();
            if *login == Res::Granted {
                let login_at = run.commit(LOGIN, FINISH_LOGIN).unwrap();
                assert!(
                    login_at < rotated_at,
                    "old code granted at v{login_at}, after the rotation's v{rotated_at}\n{run}"
                );
                assert!(
                    !run.returned_before_call(ROTATION, FINISH_ENROLLMENT, LOGIN, FINISH_LOGIN),
                    "old code granted to a finish_login invoked after the rotation completed\n{run}"
                );
            } else {
                assert_eq!(*login, Res::refused("InvalidCode"), "{run}");
                assert!(
                    login_on >= rotated_at,
                    "old code refused before the rotation completed\n{run}"
                );
            }
            assert_eq!(run.last.record.enrolled_at(), Some(T1), "{run}");
        }
        Some(Res::Refused(e)) => {
            assert_eq!(e, "InvalidCode", "{run}");
            assert_eq!(*login, Res::Granted, "{run}");
            let login_at = run.commit(LOGIN, FINISH_LOGIN).unwrap();
            let rotation_on = run.decided_on(ROTATION, START_ROTATION).unwrap();
            assert!(
                rotation_on >= login_at,
                "start_rotation refused before the login used a later step\n{run}"
            );
            assert_eq!(run.result(ROTATION, FINISH_ENROLLMENT), None);
            assert_eq!(run.last.record.enrolled_at(), Some(T0), "{run}");
        }
        other => panic!("start_rotation: {other:?}\n{run}"),
    }
}

fn rotation_race(name: &'static str, servers: usize, prelude: bool) -> Race {
    Race {
        name,
        servers,
        fault: Fault::None,
        prelude: prelude.then_some((Actor::on(LOGIN, 0), prepare_login as Op)),
        actors: [
            (
                Actor::on(LOGIN, 0),
                if prelude {
                    finish_prepared_totp
                } else {
                    login_totp
                },
            ),
            (Actor::on(ROTATION, 1), rotate),
        ],
        check: check_rotation,
    }
}

const ROTATED_THEN_REFUSED: &str = "login: start_login=challenge finish_login=refused(InvalidCode) | rotation: start_rotation=ok finish_enrollment=ok";
const GRANTED_THEN_ROTATED: &str = "login: start_login=challenge finish_login=granted | rotation: start_rotation=ok finish_enrollment=ok";
const GRANTED_ROTATION_REFUSED: &str = "login: start_login=challenge finish_login=granted | rotation: start_rotation=refused(InvalidCode)";

/// Explores the login-vs-rotation race on `servers` app servers.
fn explore_rotation(servers: usize) {
    let t = explore(rotation_race("login vs rotation", servers, false));
    assert_outcomes(
        &t,
        &[
            GRANTED_ROTATION_REFUSED,
            GRANTED_THEN_ROTATED,
            ROTATED_THEN_REFUSED,
        ],
    );
    assert_snapshot_races_explored(&t);
}

// The two topologies are two tests, so that a parallel runner runs them side by side: each
// explores about 5,800 schedules and takes about 9 s of CPU (every schedule renders the
// rotation's QR code).

// Schedules: 5,814.
#[test]
fn the_old_code_is_never_granted_after_a_rotation_completed_on_one_server() {
    explore_rotation(1);
}

// Schedules: 5,889.
#[test]
fn the_old_code_is_never_granted_after_a_rotation_completed_on_another_server() {
    explore_rotation(2);
}

// ----- (4) the snapshot cache: start_login, then concurrent writers, then finish_login -----

// The races above already start `start_login` and the writer together. Here `start_login`
// has returned (its snapshot is in the cache) before anything else runs; `finish_login` on
// that pending login then races a writer on the same server (whose first step drops the
// snapshot) or on another server (which only the compare-and-swap can notice).

fn same_code_after_prelude(name: &'static str, servers: usize) -> Race {
    Race {
        name,
        servers,
        fault: Fault::None,
        prelude: Some((Actor::on(LOGIN, 0), prepare_login)),
        actors: [
            (Actor::on(LOGIN, 0), finish_prepared_totp),
            (Actor::on(LOGIN_B, 1), login_totp),
        ],
        check: check_one_grant,
    }
}

// Schedules (one server + two servers): same code 36 + 36, reset 19 + 19, rotation 180 + 180.
#[test]
fn a_stale_login_snapshot_never_decides_a_login() {
    let name = "snapshot, then another login with the same code";
    for t in both_topologies(|n| same_code_after_prelude(name, n)) {
        assert_outcomes(&t, &[GRANTED_A, GRANTED_B]);
        assert_snapshot_races_explored(&t);
    }

    let name = "snapshot, then a reset";
    for t in both_topologies(|n| reset_race(name, n, true)) {
        assert_outcomes(
            &t,
            &[
                "login: start_login=challenge finish_login=granted | admin: reset_by_admin=ok",
                "login: start_login=challenge finish_login=refused(LoginExpired) | admin: reset_by_admin=ok",
            ],
        );
        assert_snapshot_races_explored(&t);
    }

    let name = "snapshot, then a rotation";
    for t in both_topologies(|n| rotation_race(name, n, true)) {
        assert_outcomes(
            &t,
            &[
                GRANTED_ROTATION_REFUSED,
                GRANTED_THEN_ROTATED,
                ROTATED_THEN_REFUSED,
            ],
        );
        assert_snapshot_races_explored(&t);
    }
}

// ----- the checker catches a broken compare-and-swap -----

/// Explores `race` expecting a failure; returns the panic message and the number of the
/// schedule that failed.
fn explore_expecting_failure(race: Race) -> (String, usize) {
    let schedules = Arc::new(AtomicUsize::new(0));
    let failure = std::panic::catch_unwind(|| explore_counting(race, &schedules))
        .expect_err("the checker must find the broken store's double grant");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| failure.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    let found_at = schedules.load(Ordering::Relaxed);
    println!("{}: failed at schedule {found_at}", race.name);
    (message, found_at)
}

// The faults below break the scenarios of `two_logins_with_the_same_*_code_*`, which pass on
// the correct store: the failures come from the faults, not from the scenario. Neither is found
// by the first schedule (the tasks one after the other): each needs an interleaving.

// Found at schedule 14 of the DFS order, in milliseconds.
#[test]
fn the_checker_finds_a_double_grant_when_the_store_ignores_the_version() {
    let (message, found_at) = explore_expecting_failure(same_code_race(
        "same TOTP code twice, store ignores the version",
        2,
        login_totp,
        Fault::IgnoresVersion,
    ));
    assert!(message.starts_with("one code granted twice"), "{message}");
    assert!(found_at > 1, "found at schedule {found_at}");
}

// Found at schedule 37: only schedules that run the other task between the check and the write
// of a save show it.
#[test]
fn the_checker_finds_a_double_grant_when_the_cas_is_a_check_then_a_write() {
    let (message, found_at) = explore_expecting_failure(same_code_race(
        "same recovery code twice, CAS as check-then-write",
        1,
        login_recovery,
        Fault::CheckThenWrite,
    ));
    assert!(message.starts_with("one code granted twice"), "{message}");
    assert!(found_at > 1, "found at schedule {found_at}");
}

// ----- (5) login tickets: revocation and single use -----
//
// `start_login` hands out a sealed ticket that `finish_login` takes;
// `TwoFactor::revoke_login_tickets(&UserId)` revokes every ticket of a user (a generation kept
// in the record, saved once); a ticket that completed a login is refused.
const REVOKE: &str = "revoke_login_tickets";

/// A password change: every ticket of alice is revoked.
fn revoke_tickets(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move {
        let tf = w.server(me);
        let user = alice();
        let revoked = tf.revoke_login_tickets(&user);
        let _ = w.call(me, REVOKE, revoked, |_| Res::Done).await;
    })
}

/// `finish_login` with the first recovery code on the prelude's ticket (the other actor
/// uses the TOTP code on the same ticket: two valid factors, one ticket).
fn finish_prepared_recovery(w: Arc<World>, me: Actor) -> OpFuture {
    Box::pin(async move {
        let pending = prepared(&w);
        finish_login(&w, me, &pending, Typed::Recovery).await;
    })
}

/// For a ticket issued before the revocation (`start_login` read a record older than the
/// revocation's save), like `check_reset`: a grant's save precedes the revocation's, and no
/// grant goes to a finish_login invoked after the revocation returned; a refusal rests on
/// a record that holds the revocation. A ticket issued after it logs in. Alice stays
/// enrolled.
fn check_revocation(run: &Run) {
    assert_eq!(run.result(ADMIN, REVOKE), Some(&Res::Done), "{run}");
    let revoked_at = run.commit(ADMIN, REVOKE).expect("a revocation saves");
    let issued_on = run.decided_on(LOGIN, START_LOGIN).expect("start_login ran");
    let decided_on = run
        .decided_on(LOGIN, FINISH_LOGIN)
        .expect("finish_login ran");
    if issued_on >= revoked_at {
        assert!(
            run.granted(LOGIN),
            "a ticket issued after the revocation refused\n{run}"
        );
    } else if run.granted(LOGIN) {
        let decided_at = run.commit(LOGIN, FINISH_LOGIN).unwrap();
        assert!(
            decided_at < revoked_at,
            "granted after the revocation\n{run}"
        );
        assert!(
            !run.returned_before_call(ADMIN, REVOKE, LOGIN, FINISH_LOGIN),
            "granted to a finish_login invoked after the revocation returned\n{run}"
        );
    } else {
        assert!(
            decided_on >= revoked_at,
            "refused before the revocation\n{run}"
        );
    }
    assert!(run.last.record.is_enrolled(), "{run}");
}

/// One ticket, two valid factors: exactly one grant (single use), and the other's refusal
/// rests on a record that holds the grant (so it holds across app servers).
fn check_single_use(run: &Run) {
    let granted: Vec<&str> = [LOGIN, LOGIN_B]
        .into_iter()
        .filter(|a| run.granted(a))
        .collect();
    assert!(granted.len() < 2, "one ticket granted twice\n{run}");
    assert_eq!(granted.len(), 1, "both refused\n{run}");
    let (winner, loser) = if granted[0] == LOGIN {
        (LOGIN, LOGIN_B)
    } else {
        (LOGIN_B, LOGIN)
    };
    let won_at = run.commit(winner, FINISH_LOGIN).unwrap();
    let lost_on = run.decided_on(loser, FINISH_LOGIN).unwrap();
    assert!(
        lost_on >= won_at,
        "refused on a record without the grant\n{run}"
    );
}

#[test]
fn a_revoked_login_ticket_never_grants() {
    let name = "ticket vs revocation";
    for t in both_topologies(|servers| Race {
        name,
        servers,
        fault: Fault::None,
        prelude: Some((Actor::on(LOGIN, 0), prepare_login)),
        actors: [
            (Actor::on(LOGIN, 0), finish_prepared_totp),
            (Actor::on(ADMIN, 1), revoke_tickets),
        ],
        check: check_revocation,
    }) {
        assert_eq!(t.outcomes.len(), 2, "{t:?}"); // granted first, and revoked first
        assert_snapshot_races_explored(&t);
    }
    // The same with the whole login (start_login included) racing the revocation.
    let name = "login vs revocation";
    for t in both_topologies(|servers| Race {
        name,
        servers,
        fault: Fault::None,
        prelude: None,
        actors: [
            (Actor::on(LOGIN, 0), login_totp),
            (Actor::on(ADMIN, 1), revoke_tickets),
        ],
        check: check_revocation,
    }) {
        assert!(t.outcomes.len() >= 2, "{t:?}");
    }
}

#[test]
fn a_login_ticket_completes_one_login_in_every_schedule() {
    let name = "one ticket, two valid factors";
    for t in both_topologies(|servers| Race {
        name,
        servers,
        fault: Fault::None,
        prelude: Some((Actor::on(LOGIN, 0), prepare_login)),
        actors: [
            (Actor::on(LOGIN, 0), finish_prepared_totp),
            (Actor::on(LOGIN_B, 1), finish_prepared_recovery),
        ],
        check: check_single_use,
    }) {
        assert_eq!(t.outcomes.len(), 2, "{t:?}"); // either factor may win
    }
}
