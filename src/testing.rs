//! Test doubles: a clock you move by hand, a mailer and an audit sink that keep what they
//! are given, so that tests can assert on notices and events.
//!
//! Nothing here belongs in production: [`RecordingMailer`] hands login codes and provisioned
//! secrets back to the application, which a real mailer never does.
//!
//! ```
//! use twofactor::testing::{ManualClock, RecordingAudit, RecordingMailer};
//! use twofactor::{MemoryStore, TwoFactor};
//!
//! let clock = ManualClock::new(1_700_000_000);
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
//!     .audit(RecordingAudit::new())
//!     .clock(&clock)
//!     .build();
//! assert!(tf.audit().events().is_empty());
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::audit::{AuditEvent, AuditKind, AuditSink};
use crate::clock::Clock;
use crate::mail::{Mailer, Notice, NoticeKind};
use crate::vocabulary::UserId;

/// A clock that moves only when told to: for tests and simulations.
///
/// ```
/// use twofactor::clock::Clock;
/// use twofactor::testing::ManualClock;
/// let clock = ManualClock::new(1_000);
/// clock.advance(30);
/// assert_eq!(clock.now(), 1_030);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock that reads `unix_time` until changed.
    #[must_use]
    pub fn new(unix_time: u64) -> Self {
        ManualClock(AtomicU64::new(unix_time))
    }
    /// Sets the time.
    pub fn set(&self, unix_time: u64) {
        self.0.store(unix_time, Ordering::SeqCst);
    }
    /// Moves the time forward by `seconds` (saturating).
    pub fn advance(&self, seconds: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(seconds))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Keeps every notice in memory instead of sending it: for tests and examples.
///
/// ```
/// # use twofactor::mail::{Mailer, Notice};
/// # use twofactor::testing::RecordingMailer;
/// # use twofactor::UserId;
/// # futures_lite_block_on(async {
/// let mailer = RecordingMailer::new();
/// mailer.send(&UserId::new("alice"), &Notice::Enabled).await.unwrap();
/// assert_eq!(mailer.count_for(&UserId::new("alice")), 1);
/// # });
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<(UserId, Notice)>>,
}

impl RecordingMailer {
    /// An empty mailbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Every notice sent so far, in order.
    #[must_use]
    pub fn sent(&self) -> Vec<(UserId, Notice)> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    /// The notices sent to `user`, in order.
    #[must_use]
    pub fn sent_to(&self, user: &UserId) -> Vec<Notice> {
        self.sent()
            .into_iter()
            .filter(|(u, _)| u == user)
            .map(|(_, n)| n)
            .collect()
    }
    /// The kinds of the notices sent to `user`, in order.
    #[must_use]
    pub fn kinds_for(&self, user: &UserId) -> Vec<NoticeKind> {
        self.sent_to(user).iter().map(Notice::kind).collect()
    }
    /// How many notices `user` received.
    #[must_use]
    pub fn count_for(&self, user: &UserId) -> usize {
        self.sent_to(user).len()
    }
    /// The last notice sent to `user`.
    #[must_use]
    pub fn last_for(&self, user: &UserId) -> Option<Notice> {
        self.sent_to(user).pop()
    }
    /// The code of the last login-code notice sent to `user`.
    ///
    /// # Security warning
    /// For tests: a real mailer never hands codes back to the application.
    #[must_use]
    pub fn last_login_code_for(&self, user: &UserId) -> Option<String> {
        self.sent_to(user)
            .iter()
            .rev()
            .find_map(|n| n.expose_login_code().map(str::to_owned))
    }
    /// The URI of the last provisioned-secret notice sent to `user`.
    ///
    /// # Security warning
    /// For tests: contains an authenticator secret.
    #[must_use]
    pub fn last_provisioning_uri_for(&self, user: &UserId) -> Option<String> {
        self.sent_to(user)
            .iter()
            .rev()
            .find_map(|n| n.expose_provisioning_uri().map(str::to_owned))
    }
    /// Forgets everything recorded.
    pub fn clear(&self) {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Mailer for RecordingMailer {
    type Error = std::convert::Infallible;
    async fn send(&self, user: &UserId, notice: &Notice) -> Result<(), Self::Error> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((user.clone(), notice.clone()));
        Ok(())
    }
}

/// A mailer that can be taken down, around one that cannot fail ([`RecordingMailer`] by
/// default): while down, every send fails with [`MailerDown`] and nothing reaches the inner
/// mailer. For testing what a host shows when the mail server is down, and that a resend
/// works once it is back.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::testing::{FlakyMailer, ManualClock};
/// use twofactor::{LoginContext, LoginDecision, MemoryStore, Principal, RequiredForAll};
/// use twofactor::{TwoFactor, WhenUnenrolled};
///
/// let tf = TwoFactor::builder(MemoryStore::new())
///     .mailer(FlakyMailer::default())
///     .keys(twofactor::testing::test_keys())
///     .policy(RequiredForAll::new(WhenUnenrolled::MailCode))
///     .build();
/// let (marc, ctx) = (Principal::new("marc"), LoginContext::new());
/// tf.mailer().set_down(true);
/// let decision = tf.start_login(&marc, None, &ctx).await?;
/// let LoginDecision::CodeNotSent { pending, error } = decision else { panic!() };
/// assert_eq!(error.to_string(), "the mail server is down (a test mailer)");
/// tf.mailer().set_down(false);
/// tf.resend_mailed_code(&pending, &ctx).await?;
/// assert!(tf.mailer().inner().last_login_code_for(&marc.user).is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FlakyMailer<M = RecordingMailer> {
    inner: M,
    down: AtomicBool,
}

impl<M> FlakyMailer<M> {
    /// Up, around `inner`.
    #[must_use]
    pub fn new(inner: M) -> Self {
        FlakyMailer {
            inner,
            down: AtomicBool::new(false),
        }
    }
    /// Takes the mail server down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    /// Whether it is down.
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
    /// The inner mailer (what reached it).
    #[must_use]
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl Default for FlakyMailer<RecordingMailer> {
    /// Up, around an empty [`RecordingMailer`].
    fn default() -> Self {
        FlakyMailer::new(RecordingMailer::new())
    }
}

/// What a [`FlakyMailer`] that is down answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the mail server is down (a test mailer)")]
pub struct MailerDown;

impl<M: Mailer<Error = std::convert::Infallible>> Mailer for FlakyMailer<M> {
    type Error = MailerDown;
    async fn send(&self, user: &UserId, notice: &Notice) -> Result<(), MailerDown> {
        if self.is_down() {
            return Err(MailerDown);
        }
        match self.inner.send(user, notice).await {
            Ok(()) => Ok(()),
            Err(never) => match never {},
        }
    }
}

/// Keeps every event in memory: for tests.
///
/// ```
/// use twofactor::audit::{AuditEvent, AuditKind, AuditSink};
/// use twofactor::testing::RecordingAudit;
/// let audit = RecordingAudit::new();
/// audit.record(&AuditEvent::new("alice".into(), 0, AuditKind::Enrolled, None));
/// assert_eq!(audit.kinds(), [AuditKind::Enrolled]);
/// ```
#[derive(Debug, Default)]
pub struct RecordingAudit {
    events: Mutex<Vec<AuditEvent>>,
}

impl RecordingAudit {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Every event so far, in order.
    #[must_use]
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    /// The kinds of every event so far, in order.
    #[must_use]
    pub fn kinds(&self) -> Vec<AuditKind> {
        self.events().into_iter().map(|e| e.kind).collect()
    }
    /// The kinds of the events about `user`, in order.
    #[must_use]
    pub fn kinds_for(&self, user: &UserId) -> Vec<AuditKind> {
        self.events()
            .into_iter()
            .filter(|e| &e.user == user)
            .map(|e| e.kind)
            .collect()
    }
    /// The last event.
    #[must_use]
    pub fn last(&self) -> Option<AuditEvent> {
        self.events().pop()
    }
    /// Forgets everything recorded.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl AuditSink for RecordingAudit {
    fn record(&self, event: &AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
    }
}

/// Fixed [`ServiceKeys`](crate::account::ServiceKeys) for tests and examples (derived from a
/// constant secret: **never** use them in production, where the secret comes from a secret
/// manager).
///
/// ```
/// use twofactor::{MemoryStore, TwoFactor};
/// use twofactor::testing::{RecordingMailer, test_keys};
/// let tf = TwoFactor::builder(MemoryStore::new())
///     .mailer(RecordingMailer::new())
///     .keys(test_keys())
///     .build();
/// # let _ = tf;
/// ```
#[must_use]
pub fn test_keys() -> crate::account::ServiceKeys {
    match crate::account::ServiceKeys::derive(&[0x5a; 32]) {
        Ok(keys) => keys,
        Err(_) => unreachable!("a 32-byte secret is long enough"),
    }
}
