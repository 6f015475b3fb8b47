//! [`TwoFactor`]: the async service a host calls.
//!
//! Every operation reads the clock once, loads the user's record, runs **one** pure transition
//! from [`account`](crate::account), saves the result with compare-and-swap (reloading and
//! re-running the transition on a conflict, a bounded number of times), and only then records
//! the audit events and sends the notices. A mailed login code is the one notice whose
//! outcome is saved too: stored as on its way before the mailer is called, then marked sent
//! or not sent by a second compare-and-swap (see [`CodeSend`]). No business rule lives here.
//!
//! # API summary
//!
//! | flow | call | returns |
//! |---|---|---|
//! | enroll | [`start_enrollment`](TwoFactor::start_enrollment)`(&Principal, account, Reauthenticated)` | [`EnrollmentStarted`]: QR SVG, URI, manual key, expiry |
//! | | [`finish_enrollment`](TwoFactor::finish_enrollment)`(user, code)` | [`Enrolled`]: recovery codes, shown once |
//! | | [`cancel_enrollment`](TwoFactor::cancel_enrollment)`(user)` | |
//! | rotate | [`start_rotation`](TwoFactor::start_rotation)`(user, account, current_code, Reauthenticated)`, then `finish_enrollment` | [`EnrollmentStarted`] |
//! | turn off | [`disable`](TwoFactor::disable)`(user, Reauthenticated, Factor)` | |
//! | admin | [`reset_by_admin`](TwoFactor::reset_by_admin)`(user, admin)`, [`invite`](TwoFactor::invite)`(user, admin, link)`, [`start_enrollment_by_mail_dangerous`](TwoFactor::start_enrollment_by_mail_dangerous)`(user, admin, account)` | |
//! | log in | [`start_login`](TwoFactor::start_login)`(&Principal, device_token, &LoginContext)` | [`LoginDecision`], with a [`PendingLogin`] to keep in the session |
//! | | [`finish_login`](TwoFactor::finish_login)`(&PendingLogin, Factor, remember_device, &LoginContext)` | [`LoginGranted`] (+ device token) |
//! | | [`resend_mailed_code`](TwoFactor::resend_mailed_code)`(&PendingLogin, &LoginContext)` | new expiry (also after [`LoginDecision::CodeNotSent`]) |
//! | devices | [`list_devices`](TwoFactor::list_devices), [`revoke_device`](TwoFactor::revoke_device), [`revoke_all_devices`](TwoFactor::revoke_all_devices) | |
//! | recovery | [`regenerate_recovery_codes`](TwoFactor::regenerate_recovery_codes)`(user, Reauthenticated)` | [`RecoveryCodes`] |
//! | account page | [`status`](TwoFactor::status)`(user)` | [`TwoFactorStatus`] |
//!
//! ## `&Principal` or `&UserId`
//!
//! A call takes the [`Principal`] (the user, their roles and tenant) when its outcome depends
//! on the [policy](crate::policy): [`start_login`](TwoFactor::start_login) (is a second
//! factor required, may a code be mailed) and [`start_enrollment`](TwoFactor::start_enrollment)
//! (may this user enroll without a second factor). [`finish_login`](TwoFactor::finish_login)
//! takes the [`PendingLogin`] that `start_login` handed out, which carries the principal the
//! policy saw. Every other call acts on the user's record alone and takes the [`UserId`]
//! (`&principal.user`): the policy cannot change what it does, so the host need not rebuild
//! roles for it. Paired calls are named alike: `start_enrollment`/`finish_enrollment` and
//! `start_login`/`finish_login`.
//!
//! ## Building one
//!
//! [`TwoFactor::builder`]`(store)` starts from defaults a new host can adopt safely
//! ([`NoMailer`], the [`Optional`] policy, [`SystemClock`], [`TracingAudit`]); set the rest
//! with [`mailer`](TwoFactorBuilder::mailer), [`policy`](TwoFactorBuilder::policy),
//! [`clock`](TwoFactorBuilder::clock), [`audit`](TwoFactorBuilder::audit) and
//! [`settings`](TwoFactorBuilder::settings).
//!
//! Callers see one [`Error::InvalidCode`] for a wrong code, a replayed code, a late mailed code
//! or a factor that is not pending; the audit trail tells them apart (except a used recovery
//! code, audited like a wrong one: see the
//! [manual](crate::manual#what-the-caller-sees-and-what-the-audit-trail-sees)). A user without
//! a record and a user without 2FA behave the same. Store failures fail closed. Every error
//! has an [`ErrorKind`] ([`Error::kind`]) and an HTTP status: one `match` in the host covers
//! them all, throttling included (see the table on [`Error`]).
//!
//! # Example
//!
//! A store, a mailer and a policy, through enrollment and login:
//!
//! ```
//! use twofactor::account::{Factor, LoginContext, LoginDecision};
//! use twofactor::testing::RecordingMailer;
//! use twofactor::service::{Error, TwoFactor};
//! use twofactor::{Clock, EnrollmentStatus, KeyUri, MemoryStore, Principal, Requirement, Totp};
//! use twofactor::testing::ManualClock;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!
//! // Staff must use 2FA; everyone else may.
//! let policy = |p: &Principal, _: &EnrollmentStatus, _now: u64| {
//!     if p.has_role("staff") { Requirement::required() } else { Requirement::optional() }
//! };
//! let clock = ManualClock::new(1_700_000_000);
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
//!     .policy(policy)
//!     .clock(&clock)
//!     .build();
//!
//! let alice = Principal::new("alice").with_role("staff");
//! let ctx = LoginContext::new();
//!
//! // First login after the password check: she must enroll. Keep the login ticket in her
//! // session (`pending.as_str()`), and cycle the session id when you store it.
//! let decision = tf.start_login(&alice, None, &ctx).await?;
//! let LoginDecision::MustEnroll { pending } = decision else { panic!("{decision:?}") };
//!
//! // Forced set-up: the ticket stands for that (fresh) password check.
//! let started = tf.start_forced_enrollment(&pending, "alice@example.com").await?;
//! assert!(started.qr_svg().starts_with("<svg"));
//! // ... her app scans the QR code and shows a code:
//! let app = KeyUri::parse(started.uri())?;
//! let code = Totp::default().generate(app.secret(), clock.now()).to_string();
//! let enrolled = tf.finish_forced_enrollment(&pending, &code).await?;
//! assert_eq!(enrolled.recovery_codes().len(), 10); // shown once
//! assert!(enrolled.login_completed()); // the login is complete: cycle the session id, log in
//!
//! // Next login: password, then a code with the ticket `start_login` handed out.
//! clock.advance(30);
//! let decision = tf.start_login(&alice, None, &ctx).await?;
//! let LoginDecision::Challenge { pending } = decision else { panic!("{decision:?}") };
//! let code = Totp::default().generate(app.secret(), clock.now()).to_string();
//! let granted = tf.finish_login(&pending, Factor::Totp(&code), None, &ctx).await?;
//! assert!(granted.device_token.is_none());
//!
//! // The same code again is refused, like any wrong code.
//! let pending = tf.start_login(&alice, None, &ctx).await?.into_pending().unwrap();
//! assert!(matches!(
//!     tf.finish_login(&pending, Factor::Totp(&code), None, &ctx).await,
//!     Err(Error::InvalidCode)
//! ));
//! # Ok(())
//! # }
//! ```

use core::fmt;
use core::marker::PhantomData;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rand::rngs::SysRng;

use crate::account::{AddedAuthenticator, AuthenticatorInfo};
use crate::account::{
    AssuranceClaims, CodeKey, CodeSend, CookieKey, SecondFactorProof, ServiceKeys, Verification,
};
use crate::account::{
    Checked, DeviceId, DeviceInfo, DomainError, Enrolled, EnrollmentStarted, Factor, LoginContext,
    LoginDecision, LoginGranted, MalformedInput, PendingLogin, PendingStep, Reauthenticated,
    RecoveryCodes, Refusal, Settings, Transition, TwoFactorRecord, TwoFactorStatus, UserId,
};
use crate::audit::{AuditEvent, AuditKind, AuditSink, TracingAudit};
use crate::clock::{Clock, SystemClock};
use crate::mail::{MailFailure, Mailer, NoMailer, Notice, NoticeKind};
use crate::policy::{EnforcementPolicy, Optional, Principal};
use crate::provision::UriError;
use crate::store::{SaveOutcome, UserStore, Version};
use crate::vocabulary::AuthenticatorId;
use crate::vocabulary::BoxError;

#[cfg(feature = "webauthn")]
mod security_keys;

/// How many times an operation reloads and retries after a compare-and-swap conflict before
/// giving up with [`Error::Contention`].
pub const DEFAULT_MAX_SAVE_ATTEMPTS: u32 = 16;

/// How many users' login snapshots a [`TwoFactor`] keeps by default (see
/// [`TwoFactorBuilder::login_snapshot_capacity`]).
pub const DEFAULT_LOGIN_SNAPSHOT_CAPACITY: usize = 10_000;

/// The record `start_login` ended with, for `finish_login` to start from.
struct Snapshot {
    record: TwoFactorRecord,
    version: Option<Version>,
    loaded_at: u64,
}

/// A bounded, in-process map from user to the record `start_login` loaded (or saved).
///
/// Only an optimisation: `finish_login` saves with the snapshot's version, so a stale
/// snapshot ends in a compare-and-swap conflict and a fresh load, never in a verdict.
struct LoginSnapshots {
    capacity: usize,
    inner: Mutex<SnapshotMap>,
}

#[derive(Default)]
struct SnapshotMap {
    entries: HashMap<UserId, Snapshot>,
    /// Clock time of the last sweep of expired entries (sweeps are O(n): at most one a second).
    swept_at: u64,
}

impl LoginSnapshots {
    fn new(capacity: usize) -> Self {
        LoginSnapshots {
            capacity,
            inner: Mutex::new(SnapshotMap::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SnapshotMap> {
        // The map holds no invariant a panic could break half-way.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(s: &Snapshot, now: u64, ttl: u64) -> bool {
        s.loaded_at <= now && now - s.loaded_at < ttl
    }

    /// Forgets the user's snapshot.
    fn remove(&self, user: &UserId) {
        if self.capacity > 0 {
            drop(self.lock().entries.remove(user));
        }
    }

    /// Removes and returns the user's snapshot if it is younger than `ttl`.
    fn take(&self, user: &UserId, now: u64, ttl: u64) -> Option<Snapshot> {
        if self.capacity == 0 {
            return None;
        }
        let taken = self.lock().entries.remove(user)?;
        Self::fresh(&taken, now, ttl).then_some(taken)
    }

    /// Keeps `snapshot` for the user, within the capacity: when full, expired entries go
    /// first, then an arbitrary one.
    fn put(&self, user: &UserId, snapshot: Snapshot, now: u64, ttl: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.lock();
        let full = !map.entries.contains_key(user) && map.entries.len() >= self.capacity;
        // Expired snapshots (abandoned logins) do not linger: swept a minute apart, or a
        // second apart when the map is full.
        let since = now.saturating_sub(map.swept_at);
        if since >= SNAPSHOT_SWEEP_INTERVAL || (full && since > 0) {
            map.swept_at = now;
            map.entries.retain(|_, s| Self::fresh(s, now, ttl));
        }
        if full {
            while map.entries.len() >= self.capacity {
                let Some(victim) = map.entries.keys().next().cloned() else {
                    break;
                };
                map.entries.remove(&victim);
            }
        }
        let evicted = map.entries.insert(user.clone(), snapshot);
        drop(map);
        drop(evicted);
    }

    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Seconds between sweeps of expired login snapshots.
const SNAPSHOT_SWEEP_INTERVAL: u64 = 60;

/// What an operation does with the user's login snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotUse {
    /// Forget it (every operation but the two steps of a login).
    Invalidate,
    /// Replace it with the record this operation ends with (`start_login`).
    Write,
    /// Start the first attempt from it, if young enough (`finish_login`).
    Take,
}

/// Why a [`TwoFactor`] operation failed.
///
/// Match on [`Error::kind`] to decide what to do; the variants say more, for logs. Whatever
/// the error, do not log the user in: the service fails closed.
///
/// | [`ErrorKind`] | variants | HTTP ([`http_status`](Error::http_status)) | what the host does |
/// |---|---|---|---|
/// | [`WrongCode`](ErrorKind::WrongCode) | [`InvalidCode`](Error::InvalidCode) | 401 | "invalid code", let them retry |
/// | [`Throttled`](ErrorKind::Throttled) | [`Throttled`](Error::Throttled) | 429 + `Retry-After: `[`retry_after`](Error::retry_after) | "too many attempts, try again in …" |
/// | [`MalformedInput`](ErrorKind::MalformedInput) | [`Malformed`](Error::Malformed), [`InvalidAccountName`](Error::InvalidAccountName), [`NamesTooLong`](Error::NamesTooLong), [`InvalidLabel`](Error::InvalidLabel) | 400 | show the form again (a malformed code reads "invalid code" too) |
/// | [`NotAllowedNow`](ErrorKind::NotAllowedNow) | [`ReauthenticationRequired`](Error::ReauthenticationRequired), [`LoginExpired`](Error::LoginExpired), [`SecondFactorRequired`](Error::SecondFactorRequired) | 403 | ask for the password again (log in again) / for a login with the mailed code first |
/// | [`Conflict`](ErrorKind::Conflict) | [`NotEnrolled`](Error::NotEnrolled), [`AlreadyEnrolled`](Error::AlreadyEnrolled), [`NoPendingEnrollment`](Error::NoPendingEnrollment), [`NoPendingLogin`](Error::NoPendingLogin), [`UnknownDevice`](Error::UnknownDevice), [`UnknownAuthenticator`](Error::UnknownAuthenticator), [`AuthenticatorNotNamed`](Error::AuthenticatorNotNamed), [`LabelTaken`](Error::LabelTaken), [`TooManyAuthenticators`](Error::TooManyAuthenticators) | 409 | the state changed under the request: reload the page, start the flow again |
/// | [`Unavailable`](ErrorKind::Unavailable) | [`Store`](Error::Store), [`Mailer`](Error::Mailer), [`Contention`](Error::Contention) | 503 | transient: retry later |
/// | [`Misconfigured`](ErrorKind::Misconfigured) | [`SecretSealed`](Error::SecretSealed), [`UnknownCodeKey`](Error::UnknownCodeKey), [`Rng`](Error::Rng) | 500 | page the operator |
///
/// Throttling is reported one way, as [`Error::Throttled`], by every call that can be
/// throttled: [`start_login`](TwoFactor::start_login), [`finish_login`](TwoFactor::finish_login),
/// [`resend_mailed_code`](TwoFactor::resend_mailed_code) and the calls that check a code.
///
/// ```
/// use twofactor::{Error, ErrorKind};
///
/// let e = Error::Throttled { retry_at: 1_000 };
/// assert_eq!(e.kind(), ErrorKind::Throttled);
/// assert_eq!(e.http_status(), 429);
/// assert_eq!(e.retry_after(940), Some(60)); // the Retry-After header, in seconds
/// assert_eq!(Error::InvalidCode.http_status(), 401);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The code was wrong, already used, too late, or for a factor that is not pending. The
    /// audit trail has the reason.
    #[error("invalid code")]
    InvalidCode,
    /// The input is not a code at all (letters, wrong length). Not counted against the
    /// throttle.
    #[error(transparent)]
    Malformed(MalformedInput),
    /// Too many attempts; nothing was checked.
    #[error("too many attempts; retry at {retry_at}")]
    Throttled {
        /// Unix time from which an attempt is admitted again.
        retry_at: u64,
    },
    /// The password check is missing or too old: ask for the password again.
    #[error("re-authentication required")]
    ReauthenticationRequired,
    /// The [`PendingLogin`] has expired (its
    /// [`expires_at`](crate::PendingLogin::expires_at) passed): nothing was checked or
    /// counted. Drop the half-logged-in session and ask for the password again.
    #[error("the login has expired; log in again")]
    LoginExpired,
    /// A fresh proof of a second factor is needed and none (or a too old one, or one of
    /// another factor) was given: under a mailed-code policy, enrolling needs the
    /// [`SecondFactorProof`] of a mailed-code login from this session
    /// ([`LoginGranted::proof`](crate::LoginGranted::proof)); other sensitive calls take a
    /// proof or a code. Ask for the second factor again
    /// ([`TwoFactor::verify_second_factor`]), then retry.
    #[error("a fresh second factor is required first")]
    SecondFactorRequired,
    /// The login ticket was not issued by this deployment or was altered (any edit, another
    /// server key). Nothing was checked, counted or saved: drop it and ask for the password
    /// again.
    #[error("the login ticket is not valid; log in again")]
    InvalidTicket,
    /// The [`SecondFactorProof`] was not issued by this deployment, was altered, is another
    /// user's, or was revoked (tickets revoked, 2FA reset). Nothing was changed.
    #[error("the second-factor proof is not valid")]
    InvalidProof,
    /// The policy requires 2FA for this user: it cannot be turned off (an administrator can
    /// reset it after a lost phone).
    #[error("two-factor authentication is required for this account")]
    RequiredByPolicy,
    /// The user has no active authenticator.
    #[error("two-factor authentication is not enabled")]
    NotEnrolled,
    /// The user already has an active authenticator.
    #[error("two-factor authentication is already enabled")]
    AlreadyEnrolled,
    /// No enrollment is waiting for a code (never started, cancelled or expired): start again.
    #[error("no enrollment is pending")]
    NoPendingEnrollment,
    /// No login is waiting for a mailed code: log in again.
    #[error("no login is pending")]
    NoPendingLogin,
    /// No trusted device has this id.
    #[error("unknown device")]
    UnknownDevice,
    /// None of the user's authenticators has this id (removed meanwhile, or not theirs).
    #[error("unknown authenticator")]
    UnknownAuthenticator,
    /// The user has several authenticators: name the one to replace
    /// ([`TwoFactor::start_replacing_authenticator`]).
    #[error("several authenticators: name the one to replace")]
    AuthenticatorNotNamed,
    /// The label is empty, too long or holds a control character: show the form again.
    #[error("invalid authenticator label")]
    InvalidLabel(#[source] crate::account::LabelError),
    /// Another authenticator of the user has this label: ask for another.
    #[error("another authenticator already has this label")]
    LabelTaken,
    /// The user has as many authenticators as
    /// [`Settings::max_authenticators`](crate::account::Settings::max_authenticators) allows:
    /// remove one first.
    #[error("at most {max} authenticators per user")]
    TooManyAuthenticators {
        /// The limit.
        max: usize,
    },
    /// The account name cannot go into an `otpauth://` URI.
    #[error("invalid account name for the authenticator app")]
    InvalidAccountName(#[source] UriError),
    /// Issuer and account names too long for a QR code.
    #[error("the issuer and account names are too long for a QR code")]
    NamesTooLong,
    /// The store failed. Nothing was changed.
    #[error("the 2FA store failed")]
    Store(#[source] BoxError),
    /// A notice that is the outcome of the operation (a login code asked for again with
    /// `resend_mailed_code`, an invitation, a provisioned secret) could not be sent. The
    /// change was saved; a login code that could not be sent is recorded as such, and the
    /// login waits for a resend (`start_login` answers
    /// [`LoginDecision::CodeNotSent`] instead of this error).
    #[error("a notice could not be sent")]
    Mailer(#[source] BoxError),
    /// Concurrent updates kept conflicting; nothing was changed by this call.
    #[error("too many concurrent updates ({attempts} attempts)")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// The operating system's random number generator failed. Nothing was changed.
    #[error("the random number generator failed")]
    Rng,
    /// The TOTP secret is sealed (encrypted at rest) and the store did not open it: wrap the
    /// store in [`SealedStore`](crate::seal::SealedStore) with its cipher. Nothing was
    /// changed; the login is refused.
    #[error("the stored TOTP secret is sealed and was not opened")]
    SecretSealed,
    /// The user's stored recovery codes or mailed code were hashed under a code key this
    /// service was not given (see [`TwoFactorBuilder::code_key`]): a server error. Nothing was
    /// checked or changed; the login is refused.
    #[error("the stored codes were hashed under code key {key_id}, which is not configured")]
    UnknownCodeKey {
        /// The missing key's [`id`](crate::account::CodeKey::id).
        key_id: String,
    },
    /// A configured key is unusable (a service secret shorter than 32 bytes).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A security key (feature `webauthn`) was refused, or its ceremony could not run: the
    /// [`SecurityKeyFailure`](crate::vocabulary::SecurityKeyFailure) says which. Its
    /// [`kind`](Error::kind): `Malformed` → [`ErrorKind::MalformedInput`]; `Refused`,
    /// `UnknownCredential`, `PossiblyCloned` → [`ErrorKind::WrongCode`]; `NoCeremony` →
    /// [`ErrorKind::NotAllowedNow`] (start again); `AlreadyRegistered` →
    /// [`ErrorKind::Conflict`]; `NotConfigured` → [`ErrorKind::Misconfigured`]. Nothing was
    /// saved.
    #[error("security key: {0}")]
    SecurityKey(crate::vocabulary::SecurityKeyFailure),
    /// The policy requires a phishing-resistant factor (a security key) of this user: a
    /// TOTP or recovery code does not do ([`Requirement::PhishingResistant`](crate::Requirement::PhishingResistant)).
    #[error("a security key is required for this account")]
    PhishingResistantRequired,
}

/// What kind of failure an [`Error`] is: the one thing a host matches on to answer the user
/// (and the HTTP status to answer with). See the table on [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The code was wrong, replayed, late, or for no pending factor. HTTP 401.
    WrongCode,
    /// Too many attempts; retry at [`Error::retry_at`]. HTTP 429 with `Retry-After`.
    Throttled,
    /// The input cannot be used at all (not a code, an account name that does not fit an
    /// authenticator app). HTTP 400.
    MalformedInput,
    /// The user must first do something else: check the password again, or log in with the
    /// mailed code. HTTP 403.
    NotAllowedNow,
    /// The operation does not fit the user's current 2FA state (not enrolled, already
    /// enrolled, nothing pending, unknown device): the state changed or the flow is out of
    /// order. HTTP 409.
    Conflict,
    /// A dependency failed or was too busy (store, mailer, concurrent updates): retry later.
    /// HTTP 503.
    Unavailable,
    /// The deployment is broken (a sealed secret without its cipher, no working random
    /// number generator): retrying will not help. HTTP 500.
    Misconfigured,
}

impl ErrorKind {
    /// The HTTP status code that fits this kind (see the table on [`Error`]).
    ///
    /// ```
    /// use twofactor::ErrorKind;
    /// assert_eq!(ErrorKind::Conflict.http_status(), 409);
    /// ```
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorKind::WrongCode => 401,
            ErrorKind::Throttled => 429,
            ErrorKind::MalformedInput => 400,
            ErrorKind::NotAllowedNow => 403,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::Misconfigured => 500,
        }
    }

    /// Whether the same request may succeed later without the user doing anything else
    /// ([`Throttled`](Self::Throttled) after its retry time, [`Unavailable`](Self::Unavailable)).
    ///
    /// ```
    /// use twofactor::ErrorKind;
    /// assert!(ErrorKind::Unavailable.is_transient());
    /// assert!(!ErrorKind::WrongCode.is_transient());
    /// ```
    #[must_use]
    pub const fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Unavailable)
    }
}

impl Error {
    /// The kind of failure, for one `match` in the host (see the table on [`Error`]).
    ///
    /// ```
    /// use twofactor::{Error, ErrorKind};
    /// assert_eq!(Error::NoPendingEnrollment.kind(), ErrorKind::Conflict);
    /// ```
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidCode => ErrorKind::WrongCode,
            Error::Throttled { .. } => ErrorKind::Throttled,
            Error::Malformed(_)
            | Error::InvalidAccountName(_)
            | Error::NamesTooLong
            | Error::InvalidLabel(_) => ErrorKind::MalformedInput,
            Error::ReauthenticationRequired
            | Error::LoginExpired
            | Error::SecondFactorRequired
            | Error::InvalidTicket
            | Error::InvalidProof
            | Error::RequiredByPolicy => ErrorKind::NotAllowedNow,
            Error::NotEnrolled
            | Error::AlreadyEnrolled
            | Error::NoPendingEnrollment
            | Error::NoPendingLogin
            | Error::UnknownDevice
            | Error::UnknownAuthenticator
            | Error::AuthenticatorNotNamed
            | Error::LabelTaken
            | Error::TooManyAuthenticators { .. } => ErrorKind::Conflict,
            Error::Store(_) | Error::Mailer(_) | Error::Contention { .. } => ErrorKind::Unavailable,
            Error::SecretSealed
            | Error::UnknownCodeKey { .. }
            | Error::InvalidKey(_)
            | Error::Rng => ErrorKind::Misconfigured,
            Error::PhishingResistantRequired => ErrorKind::NotAllowedNow,
            Error::SecurityKey(f) => {
                use crate::vocabulary::SecurityKeyFailure as F;
                match f {
                    F::Malformed => ErrorKind::MalformedInput,
                    F::NoCeremony => ErrorKind::NotAllowedNow,
                    F::AlreadyRegistered => ErrorKind::Conflict,
                    F::NotConfigured => ErrorKind::Misconfigured,
                    F::Refused | F::UnknownCredential | F::PossiblyCloned => ErrorKind::WrongCode,
                }
            }
        }
    }

    /// The HTTP status code that fits this error: `self.kind().http_status()`.
    ///
    /// ```
    /// use twofactor::Error;
    /// assert_eq!(Error::ReauthenticationRequired.http_status(), 403);
    /// ```
    #[must_use]
    pub const fn http_status(&self) -> u16 {
        self.kind().http_status()
    }

    /// For [`Error::Throttled`]: the Unix time from which an attempt is admitted again.
    ///
    /// ```
    /// use twofactor::Error;
    /// assert_eq!(Error::Throttled { retry_at: 5 }.retry_at(), Some(5));
    /// assert_eq!(Error::InvalidCode.retry_at(), None);
    /// ```
    #[must_use]
    pub const fn retry_at(&self) -> Option<u64> {
        match self {
            Error::Throttled { retry_at } => Some(*retry_at),
            _ => None,
        }
    }

    /// For [`Error::Throttled`]: the seconds to wait from `now`, for a `Retry-After` header.
    /// At least 1 (a `Retry-After: 0` invites an immediate retry that the throttle may still
    /// refuse at a coarser clock).
    ///
    /// ```
    /// use twofactor::Error;
    /// let e = Error::Throttled { retry_at: 1_000 };
    /// assert_eq!(e.retry_after(400), Some(600));
    /// assert_eq!(e.retry_after(2_000), Some(1)); // already past: retry now
    /// assert_eq!(Error::InvalidCode.retry_after(400), None);
    /// ```
    #[must_use]
    pub const fn retry_after(&self, now: u64) -> Option<u64> {
        match self.retry_at() {
            Some(at) if at > now => Some(at - now),
            Some(_) => Some(1),
            None => None,
        }
    }
}

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotEnrolled => Error::NotEnrolled,
            DomainError::AlreadyEnrolled => Error::AlreadyEnrolled,
            DomainError::NoPendingEnrollment => Error::NoPendingEnrollment,
            DomainError::NoPendingLogin => Error::NoPendingLogin,
            DomainError::ReauthenticationRequired => Error::ReauthenticationRequired,
            DomainError::LoginExpired => Error::LoginExpired,
            DomainError::SecondFactorRequired => Error::SecondFactorRequired,
            DomainError::UnknownDevice => Error::UnknownDevice,
            DomainError::UnknownAuthenticator => Error::UnknownAuthenticator,
            DomainError::AuthenticatorNotNamed => Error::AuthenticatorNotNamed,
            DomainError::InvalidLabel(e) => Error::InvalidLabel(e),
            DomainError::LabelTaken => Error::LabelTaken,
            DomainError::TooManyAuthenticators { max } => Error::TooManyAuthenticators { max },
            DomainError::InvalidAccountName(e) => Error::InvalidAccountName(e),
            DomainError::NamesTooLong => Error::NamesTooLong,
            DomainError::Rng => Error::Rng,
            DomainError::SecretSealed => Error::SecretSealed,
            DomainError::UnknownCodeKey { key_id } => Error::UnknownCodeKey { key_id },
            DomainError::InvalidKey(why) => Error::InvalidKey(why),
            DomainError::InvalidTicket => Error::InvalidTicket,
            DomainError::InvalidProof => Error::InvalidProof,
            DomainError::OutdatedProof => Error::SecondFactorRequired,
            DomainError::RequiredByPolicy => Error::RequiredByPolicy,
            DomainError::SecurityKey(f) => Error::SecurityKey(f),
            DomainError::PhishingResistantRequired => Error::PhishingResistantRequired,
        }
    }
}

/// `Factor::parse(input)?` in a function that returns [`Error`]: input that is neither a TOTP
/// code nor a recovery code is [`Error::Malformed`] (kind
/// [`MalformedInput`](ErrorKind::MalformedInput), HTTP 400).
///
/// ```
/// use twofactor::{Error, ErrorKind, Factor};
/// fn factor(input: &str) -> Result<Factor<'_>, Error> {
///     Ok(Factor::parse(input)?)
/// }
/// assert_eq!(factor("12 34!").unwrap_err().kind(), ErrorKind::MalformedInput);
/// assert!(factor("123 456").is_ok());
/// ```
impl From<crate::account::FactorParseError> for Error {
    fn from(e: crate::account::FactorParseError) -> Self {
        Error::Malformed(MalformedInput::Factor(e))
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(_) => Error::InvalidCode,
            Refusal::Malformed(m) => Error::Malformed(m),
            Refusal::Throttled { retry_at } => Error::Throttled { retry_at },
            Refusal::SecurityKey(f) => Error::SecurityKey(f),
        }
    }
}

fn checked<T>(outcome: Checked<T>) -> Result<T, Error> {
    outcome.map_err(Error::from)
}

/// The 2FA service: a store, a mailer, a policy, a clock and an audit sink around the pure
/// domain. Cheap to share (`Arc<TwoFactor<..>>`); every method takes `&self`.
///
/// Make one with [`TwoFactor::builder`]`(store)`; see the [module documentation](self) for
/// which calls take a [`Principal`] and which a [`UserId`].
pub struct TwoFactor<S, M, P, C = SystemClock, A = TracingAudit> {
    store: S,
    mailer: M,
    policy: P,
    clock: C,
    audit: A,
    settings: Settings,
    /// Names trusted-device cookies; `None`: this process's random key.
    cookie_key: Option<CookieKey>,
    max_save_attempts: u32,
    snapshots: LoginSnapshots,
}

impl<S, M, P, C, A> fmt::Debug for TwoFactor<S, M, P, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactor")
            .field("settings", &self.settings)
            .field("max_save_attempts", &self.max_save_attempts)
            .field("login_snapshot_capacity", &self.snapshots.capacity)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TwoFactor`]; see [`TwoFactor::builder`].
#[must_use]
pub struct TwoFactorBuilder<S, M, P, C = SystemClock, A = TracingAudit, K = keying::Unchosen> {
    inner: TwoFactor<S, M, P, C, A>,
    keying: PhantomData<K>,
}

/// Whether a [`TwoFactorBuilder`] was told how mailed codes are hashed: a builder with a
/// mailer builds only once it was ([`TwoFactorBuilder::keys`], `sealed` with the `seal`
/// feature, [`TwoFactorBuilder::code_key`], or the named opt-out
/// [`TwoFactorBuilder::unkeyed_mailed_codes_dangerous`]).
///
/// A mailer and no keys does not compile:
///
/// ```compile_fail
/// use twofactor::{MemoryStore, TwoFactor};
/// use twofactor::testing::RecordingMailer;
/// let tf = TwoFactor::builder(MemoryStore::new()).mailer(RecordingMailer::new()).build();
/// ```
///
/// The same with keys does, and so does a builder with no mailer at all:
///
/// ```
/// use twofactor::{MemoryStore, ServiceKeys, TwoFactor};
/// use twofactor::testing::RecordingMailer;
/// let secret = [7u8; 32]; // from your secret manager
/// let tf = TwoFactor::builder(MemoryStore::new())
///     .mailer(RecordingMailer::new())
///     .keys(ServiceKeys::derive(&secret)?)
///     .build();
/// let totp_only = TwoFactor::builder(MemoryStore::new()).build();
/// # let _ = (tf, totp_only);
/// # Ok::<(), twofactor::account::DomainError>(())
/// ```
pub mod keying {
    /// Not chosen yet.
    #[derive(Debug)]
    pub struct Unchosen;
    /// Chosen.
    #[derive(Debug)]
    pub struct Chosen;

    /// The builder states that may [`build`](super::TwoFactorBuilder::build): no mailer (no
    /// code is ever mailed), or any mailer once the hashing of mailed codes was chosen.
    #[diagnostic::on_unimplemented(
        message = "choose how mailed codes are stored before `build()`",
        label = "this builder has a mailer but no keys",
        note = "call `.keys(ServiceKeys::derive(&secret)?)`, `.sealed(keyring)` (feature `seal`), or, knowing that a table reader then recovers live login codes, `.unkeyed_mailed_codes_dangerous()`"
    )]
    pub trait CanBuild: private::Sealed {}
    impl CanBuild for (crate::mail::NoMailer, Unchosen) {}
    impl<M> CanBuild for (M, Chosen) {}

    mod private {
        pub trait Sealed {}
        impl Sealed for (crate::mail::NoMailer, super::Unchosen) {}
        impl<M> Sealed for (M, super::Chosen) {}
    }
}

impl<S, M, P, C, A, K> fmt::Debug for TwoFactorBuilder<S, M, P, C, A, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorBuilder")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S: UserStore> TwoFactor<S, NoMailer, Optional> {
    /// A service on `store` with every default (see [`builder`](Self::builder)); the same as
    /// `TwoFactor::builder(store).build()`.
    ///
    /// ```
    /// use twofactor::{MemoryStore, TwoFactor};
    ///
    /// let tf = TwoFactor::new(MemoryStore::new());
    /// # let _ = tf;
    /// ```
    pub fn new(store: S) -> Self {
        Self::builder(store).build()
    }

    /// Starts a service on `store` with the defaults, to change with the builder's methods:
    ///
    /// | part | default | change with |
    /// |---|---|---|
    /// | mailer | [`NoMailer`] | [`mailer`](TwoFactorBuilder::mailer) |
    /// | policy | [`Optional`]: 2FA is opt-in | [`policy`](TwoFactorBuilder::policy) |
    /// | clock | [`SystemClock`] | [`clock`](TwoFactorBuilder::clock) |
    /// | audit sink | [`TracingAudit`] | [`audit`](TwoFactorBuilder::audit) |
    /// | settings | [`Settings::default`] | [`settings`](TwoFactorBuilder::settings) |
    ///
    /// **Mailer.** [`NoMailer`] drops informational notices ("2FA was turned off") and fails
    /// every notice that must reach the user (mailed login codes: `start_login` answers
    /// [`LoginDecision::CodeNotSent`]; invitations, secrets provisioned by mail:
    /// [`Error::Mailer`]): nobody is let in and nothing is stored as sent, but those flows do
    /// not work until you give a [`Mailer`]. A service whose
    /// policy mails codes (`WhenUnenrolled::MailCode`) or that sends invitations needs one.
    ///
    /// **Policy.** [`Optional`] lets users turn 2FA on and never forces it: adding the
    /// library to an existing application locks nobody out, and every user who enrolled is
    /// challenged at every login (a policy never lets an enrolled user in on the password
    /// alone). Require it with [`policy`](TwoFactorBuilder::policy).
    ///
    /// ```
    /// use twofactor::account::Settings;
    /// use twofactor::testing::{ManualClock, RecordingAudit, RecordingMailer};
    /// use twofactor::{MemoryStore, RequiredForAll, TwoFactor, WhenUnenrolled};
    ///
    /// let tf = TwoFactor::builder(MemoryStore::new())
    ///     .mailer(RecordingMailer::new())
    ///     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
    ///     .policy(RequiredForAll::new(WhenUnenrolled::MailCode))
    ///     .clock(ManualClock::new(0))
    ///     .audit(RecordingAudit::new())
    ///     .settings(Settings::builder().issuer("ACME").build()?)
    ///     .build();
    /// assert_eq!(tf.settings().issuer(), Some("ACME"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(store: S) -> TwoFactorBuilder<S, NoMailer, Optional> {
        TwoFactorBuilder {
            keying: PhantomData,
            inner: TwoFactor {
                store,
                mailer: NoMailer,
                policy: Optional,
                clock: SystemClock,
                audit: TracingAudit,
                settings: Settings::default(),
                cookie_key: None,
                max_save_attempts: DEFAULT_MAX_SAVE_ATTEMPTS,
                snapshots: LoginSnapshots::new(DEFAULT_LOGIN_SNAPSHOT_CAPACITY),
            },
        }
    }
}

impl<S, M, P, C, A, K> TwoFactorBuilder<S, M, P, C, A, K> {
    /// Sends notices through `mailer` (default [`NoMailer`]: see
    /// [`TwoFactor::builder`]).
    pub fn mailer<M2: Mailer>(self, mailer: M2) -> TwoFactorBuilder<S, M2, P, C, A, K> {
        let i = self.inner;
        TwoFactorBuilder {
            keying: PhantomData,
            inner: TwoFactor {
                store: i.store,
                mailer,
                policy: i.policy,
                clock: i.clock,
                audit: i.audit,
                settings: i.settings,
                cookie_key: i.cookie_key,
                max_save_attempts: i.max_save_attempts,
                snapshots: i.snapshots,
            },
        }
    }

    /// Decides who must use 2FA with `policy` (default [`Optional`]: see
    /// [`TwoFactor::builder`]). A closure `|&Principal, &EnrollmentStatus, now| Requirement`
    /// is a policy.
    pub fn policy<P2: EnforcementPolicy>(self, policy: P2) -> TwoFactorBuilder<S, M, P2, C, A, K> {
        let i = self.inner;
        TwoFactorBuilder {
            keying: PhantomData,
            inner: TwoFactor {
                store: i.store,
                mailer: i.mailer,
                policy,
                clock: i.clock,
                audit: i.audit,
                settings: i.settings,
                cookie_key: i.cookie_key,
                max_save_attempts: i.max_save_attempts,
                snapshots: i.snapshots,
            },
        }
    }

    /// Uses another clock (a [`ManualClock`](crate::testing::ManualClock) in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> TwoFactorBuilder<S, M, P, C2, A, K> {
        let i = self.inner;
        TwoFactorBuilder {
            keying: PhantomData,
            inner: TwoFactor {
                store: i.store,
                mailer: i.mailer,
                policy: i.policy,
                clock,
                audit: i.audit,
                settings: i.settings,
                cookie_key: i.cookie_key,
                max_save_attempts: i.max_save_attempts,
                snapshots: i.snapshots,
            },
        }
    }

    /// Uses another audit sink.
    pub fn audit<A2: AuditSink>(self, audit: A2) -> TwoFactorBuilder<S, M, P, C, A2, K> {
        let i = self.inner;
        TwoFactorBuilder {
            keying: PhantomData,
            inner: TwoFactor {
                store: i.store,
                mailer: i.mailer,
                policy: i.policy,
                clock: i.clock,
                audit,
                settings: i.settings,
                cookie_key: i.cookie_key,
                max_save_attempts: i.max_save_attempts,
                snapshots: i.snapshots,
            },
        }
    }

    /// Uses these settings (built and checked with [`Settings::builder`]). Code keys given
    /// with [`code_key`](Self::code_key) before are kept unless `settings` carry their own.
    pub fn settings(mut self, mut settings: Settings) -> Self {
        if settings.code_keys.is_empty() {
            settings.code_keys = core::mem::take(&mut self.inner.settings.code_keys);
        }
        if settings.ticket_key.is_none() {
            settings.ticket_key = self.inner.settings.ticket_key.take();
        }
        self.inner.settings = settings;
        self
    }

    /// Hashes recovery codes and mailed login codes with HMAC-SHA-256 under this server-side
    /// key, so that a copy of the table cannot test guesses offline (see [`CodeKey`] and the
    /// manual's [offline guessing](crate::manual#offline-guessing-of-recovery-and-mailed-codes)
    /// section). Every server of a deployment needs the same key. Without one, codes are
    /// stored as salted SHA-256: still safe for 80-bit recovery codes, not for mailed codes.
    ///
    /// To rotate, make the new key current and keep the old one with
    /// [`old_code_key`](Self::old_code_key) until every user has regenerated their recovery
    /// codes; a record hashed under a key the service lacks fails with
    /// [`Error::UnknownCodeKey`].
    ///
    /// ```
    /// use twofactor::account::CodeKey;
    /// use twofactor::testing::RecordingMailer;
    /// use twofactor::service::TwoFactor;
    /// use twofactor::{MemoryStore, Requirement};
    ///
    /// let key = CodeKey::from_bytes(&[0x42; 32]); // from your secret manager
    /// let id = key.id().to_owned();
    /// let tf = TwoFactor::builder(MemoryStore::new())
    ///     .mailer(RecordingMailer::new())
    ///     .policy(|_: &_, _: &_, _| {
    ///     Requirement::required()
    /// })
    /// .code_key(key)
    /// .build();
    /// assert_eq!(tf.settings().code_key_id(), Some(id.as_str()));
    /// ```
    pub fn code_key(mut self, key: CodeKey) -> TwoFactorBuilder<S, M, P, C, A, keying::Chosen> {
        self.inner.settings.code_keys.current = Some(key);
        self.chosen()
    }

    fn chosen(self) -> TwoFactorBuilder<S, M, P, C, A, keying::Chosen> {
        TwoFactorBuilder {
            inner: self.inner,
            keying: PhantomData,
        }
    }

    /// Every key from one server secret ([`ServiceKeys`]): recovery and mailed codes are
    /// stored as keyed hashes, login tickets and second-factor proofs are sealed under a key
    /// all app servers share, and trusted-device cookies get keyed names. Under sealing,
    /// `sealed(keyring)` (feature `seal`) sets these from the keyring instead.
    pub fn keys(mut self, keys: ServiceKeys) -> TwoFactorBuilder<S, M, P, C, A, keying::Chosen> {
        self.inner.settings.code_keys.current = Some(keys.code.clone());
        self.inner.settings.code_keys.old = keys.old_code.clone();
        self.inner.settings.ticket_key = Some(keys.ticket.clone());
        self.inner.cookie_key = Some(keys.cookie);
        self.chosen()
    }

    /// Seals the store and keys the service from one keyring, in one call: the store is
    /// wrapped in a [`SealedStore`](crate::seal::SealedStore) (TOTP secrets encrypted, every
    /// record authenticated) and the service gets
    /// [`keyring.service_keys()`](crate::seal::Keyring::service_keys) (code hashes, tickets
    /// and proofs, cookie names; codes hashed under the keyring's older keys keep checking).
    /// One secret to manage, and no way to seal the secrets but forget the code key.
    ///
    /// ```
    /// use twofactor::seal::Keyring;
    /// use twofactor::testing::RecordingMailer;
    /// use twofactor::{MemoryStore, TwoFactor};
    /// let keyring = Keyring::new("2026-12", &[7u8; 32])?; // from your secret manager
    /// let tf = TwoFactor::builder(MemoryStore::new())
    ///     .mailer(RecordingMailer::new())
    ///     .sealed(keyring)
    ///     .build();
    /// assert_eq!(tf.store().cipher().current_key_id(), "2026-12");
    /// # Ok::<(), twofactor::seal::SealError>(())
    /// ```
    #[cfg(feature = "seal")]
    pub fn sealed(
        self,
        keyring: crate::seal::Keyring,
    ) -> TwoFactorBuilder<
        crate::seal::SealedStore<S, crate::seal::Keyring>,
        M,
        P,
        C,
        A,
        keying::Chosen,
    > {
        let keys = keyring.service_keys();
        let i = self.inner;
        TwoFactorBuilder {
            keying: PhantomData::<K>,
            inner: TwoFactor {
                store: crate::seal::SealedStore::new(i.store, keyring),
                mailer: i.mailer,
                policy: i.policy,
                clock: i.clock,
                audit: i.audit,
                settings: i.settings,
                cookie_key: i.cookie_key,
                max_save_attempts: i.max_save_attempts,
                snapshots: i.snapshots,
            },
        }
        .keys(keys)
    }

    /// Stores mailed login codes (and recovery codes) as unkeyed hashes: anyone who reads the
    /// table (a backup, a replica) recovers a live 6-digit login code in well under a second,
    /// and tests recovery-code guesses offline. Only for a deployment that accepts that (a
    /// single process with an in-memory store, say); prefer [`keys`](Self::keys). Login
    /// tickets are then sealed under a random key of this process.
    pub fn unkeyed_mailed_codes_dangerous(self) -> TwoFactorBuilder<S, M, P, C, A, keying::Chosen> {
        self.chosen()
    }

    /// A retired code key: still checks what was hashed under it, hashes nothing new.
    pub fn old_code_key(mut self, key: CodeKey) -> Self {
        self.inner.settings.code_keys.old.push(key);
        self
    }

    /// How many times to reload and retry after a save conflict (at least 1; default
    /// [`DEFAULT_MAX_SAVE_ATTEMPTS`]).
    pub fn max_save_attempts(mut self, attempts: u32) -> Self {
        self.inner.max_save_attempts = attempts.max(1);
        self
    }

    /// How many users' login snapshots to keep (default [`DEFAULT_LOGIN_SNAPSHOT_CAPACITY`];
    /// `0` turns them off).
    ///
    /// [`TwoFactor::start_login`] keeps the record it ended with, in memory, for
    /// [`TwoFactor::finish_login`]'s first attempt: a full login is then one load and one
    /// save instead of two loads and a save. It is only ever a starting point: the save is
    /// the usual compare-and-swap with the snapshot's version, so a record changed meanwhile
    /// (by another app server, an admin, another request) is reloaded and checked afresh, and
    /// a verdict that saves nothing is never given from a snapshot. Snapshots are younger
    /// than [`Settings::login_challenge_ttl`], dropped by any other operation on the user
    /// through this service, and their secrets are zeroized on drop. Turn them off to keep
    /// no 2FA records in memory, or if your store can give a user's record a version it
    /// had before (for example by deleting and re-creating rows outside the service).
    ///
    /// ```
    /// use twofactor::testing::RecordingMailer;
    /// use twofactor::service::TwoFactor;
    /// use twofactor::{MemoryStore, Requirement};
    ///
    /// let tf = TwoFactor::builder(MemoryStore::new())
    ///     .mailer(RecordingMailer::new())
    ///     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
    ///     .policy(|_: &_, _: &_, _| {
    ///     Requirement::required()
    /// })
    /// .login_snapshot_capacity(0) // every finish_login loads the record
    /// .build();
    /// assert_eq!(tf.login_snapshot_capacity(), 0);
    /// ```
    pub fn login_snapshot_capacity(mut self, capacity: usize) -> Self {
        self.inner.snapshots = LoginSnapshots::new(capacity);
        self
    }

    /// The service.
    pub fn build(self) -> TwoFactor<S, M, P, C, A>
    where
        (M, K): keying::CanBuild,
    {
        self.inner
    }
}

/// Read access to the parts, with no trait bounds: a generic helper that only reads the
/// settings or the clock need not repeat the service's bounds.
impl<S, M, P, C, A> TwoFactor<S, M, P, C, A> {
    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
    /// The mailer.
    pub fn mailer(&self) -> &M {
        &self.mailer
    }
    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }
    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
    /// The audit sink.
    pub fn audit(&self) -> &A {
        &self.audit
    }
    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    /// How many login snapshots this service keeps at most (`0`: none); see
    /// [`TwoFactorBuilder::login_snapshot_capacity`].
    pub fn login_snapshot_capacity(&self) -> usize {
        self.snapshots.capacity
    }
    /// How many login snapshots this service holds now (at most
    /// [`login_snapshot_capacity`](Self::login_snapshot_capacity)).
    pub fn login_snapshots(&self) -> usize {
        self.snapshots.len()
    }
}

impl<S, M, P, C, A> TwoFactor<S, M, P, C, A>
where
    S: UserStore,
    M: Mailer,
    P: EnforcementPolicy,
    C: Clock,
    A: AuditSink,
{
    /// Loads a user's record; a user without one gets the empty record (no 2FA).
    async fn load(
        &self,
        user: &UserId,
    ) -> Result<(TwoFactorRecord, Option<crate::store::Version>), Error> {
        let loaded = self
            .store
            .load(user)
            .await
            .map_err(|e| Error::Store(Box::new(e)))?;
        Ok(match loaded {
            Some(v) => (v.record, Some(v.version)),
            None => (TwoFactorRecord::default(), None),
        })
    }

    /// Load, one transition, compare-and-swap save (retrying on conflict), then audit events and
    /// notices. Forgets the user's login snapshot.
    async fn run<T, F>(
        &self,
        user: &UserId,
        context: Option<&LoginContext>,
        step: F,
    ) -> Result<T, Error>
    where
        F: FnMut(&TwoFactorRecord, u64, &mut SysRng) -> Result<Transition<T>, DomainError>,
    {
        self.run_with(user, context, SnapshotUse::Invalidate, step)
            .await
    }

    /// The policy's answer for `principal`, whose record is `record`, at `now`.
    fn requirement_of(
        &self,
        principal: &Principal,
        record: &TwoFactorRecord,
        now: u64,
    ) -> crate::policy::Requirement {
        self.policy
            .requirement(principal, &record.enrollment_status(), now)
    }

    /// [`run`](Self::run) for a step whose outcome may be a refusal: the refusal as an error.
    async fn run_checked<T, F>(
        &self,
        user: &UserId,
        context: Option<&LoginContext>,
        step: F,
    ) -> Result<T, Error>
    where
        F: FnMut(&TwoFactorRecord, u64, &mut SysRng) -> Result<Transition<Checked<T>>, DomainError>,
    {
        checked(self.run(user, context, step).await?)
    }

    /// [`run`](Self::run), with a choice of what to do with the user's login snapshot. A login
    /// code the mailer could not send is [`Error::Mailer`].
    async fn run_with<T, F>(
        &self,
        user: &UserId,
        context: Option<&LoginContext>,
        snapshot_use: SnapshotUse,
        step: F,
    ) -> Result<T, Error>
    where
        F: FnMut(&TwoFactorRecord, u64, &mut SysRng) -> Result<Transition<T>, DomainError>,
    {
        match self.run_mailing(user, context, snapshot_use, step).await? {
            (outcome, None) => Ok(outcome),
            (_, Some(failure)) => Err(Error::Mailer(failure)),
        }
    }

    /// [`run_with`](Self::run_with), answering also whether a login code the transition
    /// mailed could not be sent (the mailer's error).
    ///
    /// With [`SnapshotUse::Take`] the first attempt may start from the snapshot instead of a
    /// load. Its result counts only if it is validated: a save with the snapshot's version
    /// that succeeds proves the stored record was the snapshot. Anything else from that
    /// attempt — a conflict, a transition that saves nothing (its verdict would rest on
    /// unvalidated data), an error — is discarded and the operation starts over from a fresh
    /// load, which does not count against `max_save_attempts`.
    ///
    /// A transition that mails a login code stored it as on its way
    /// ([`TwoFactorRecord::code_send`]); once the notices are sent, the mailer's answer is
    /// saved by a second compare-and-swap ([`confirm_code_send`](Self::confirm_code_send)).
    async fn run_mailing<T, F>(
        &self,
        user: &UserId,
        context: Option<&LoginContext>,
        snapshot_use: SnapshotUse,
        mut step: F,
    ) -> Result<(T, Option<BoxError>), Error>
    where
        F: FnMut(&TwoFactorRecord, u64, &mut SysRng) -> Result<Transition<T>, DomainError>,
    {
        let now = self.clock.now();
        let ttl = self.settings.login_challenge_ttl;
        let mut snapshot = match snapshot_use {
            SnapshotUse::Take => self.snapshots.take(user, now, ttl),
            SnapshotUse::Invalidate | SnapshotUse::Write => {
                self.snapshots.remove(user);
                None
            }
        };
        let mut loads = 0;
        while loads < self.max_save_attempts {
            let from_snapshot = snapshot.is_some();
            let (record, version) = match snapshot.take() {
                Some(s) => (s.record, s.version),
                None => {
                    loads += 1;
                    self.load(user).await?
                }
            };
            let transition = match step(&record, now, &mut SysRng) {
                Ok(t) => t,
                Err(_) if from_snapshot => {
                    tracing::debug!("error on the login snapshot; reloading");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let (next, changed, outcome, events, notices) = transition.into_parts();
            let mut kept = (record, version);
            if changed {
                let saved = self
                    .store
                    .save(user, &next, version)
                    .await
                    .map_err(|e| Error::Store(Box::new(e)))?;
                match saved {
                    SaveOutcome::Conflict => {
                        tracing::debug!(from_snapshot, "save conflict; reloading");
                        continue;
                    }
                    SaveOutcome::Saved(v) => kept = (next, Some(v)),
                }
            } else {
                drop(next);
                if from_snapshot {
                    // Nothing would validate the snapshot: check it on a fresh load.
                    tracing::debug!("unchanged on the login snapshot; reloading");
                    continue;
                }
            }
            // The login code this transition stored, if it mailed one.
            let sending = notices
                .iter()
                .any(|n| n.kind() == NoticeKind::LoginCode)
                .then(|| kept.0.code_send())
                .flatten();
            let code_failure = self.publish(user, now, context, events, notices).await?;
            let kept = match sending {
                Some(send) => {
                    self.confirm_code_send(user, &send, code_failure.is_none(), kept)
                        .await
                }
                None => Some(kept),
            };
            match kept {
                Some((record, version)) if snapshot_use == SnapshotUse::Write => {
                    let snapshot = Snapshot {
                        record,
                        version,
                        loaded_at: now,
                    };
                    self.snapshots.put(user, snapshot, now, ttl);
                }
                // The record is not known: `finish_login` loads it.
                None => self.snapshots.remove(user),
                Some(_) => {}
            }
            return Ok((outcome, code_failure));
        }
        tracing::warn!(
            attempts = self.max_save_attempts,
            "giving up after save conflicts"
        );
        Err(Error::Contention {
            attempts: self.max_save_attempts,
        })
    }

    /// Saves what the mailer said of the login code `send` (delivered: it replaces the code
    /// mailed before; failed: marked not sent and taken off the send limit), by
    /// compare-and-swap, starting from `saved`: the record the first save wrote, at its
    /// version (the usual case needs no load). Returns the record it ends with and its
    /// version, for the login snapshot.
    ///
    /// If it cannot save (the store fails, or keeps conflicting), the code stays stored as on
    /// its way, exactly as when the process dies between the mailer and this save: accepted,
    /// and counted as sent (see [`CodeSend`]). That is logged and the operation's answer
    /// stands; `None`: the record is not known.
    async fn confirm_code_send(
        &self,
        user: &UserId,
        send: &CodeSend,
        delivered: bool,
        saved: (TwoFactorRecord, Option<Version>),
    ) -> Option<(TwoFactorRecord, Option<Version>)> {
        let not_saved = |error: &dyn fmt::Display| {
            tracing::warn!(%error, delivered, "the mailer's answer about a login code was not saved");
        };
        let mut current = Some(saved);
        for _ in 0..self.max_save_attempts {
            let (record, version) = match current.take() {
                Some(known) => known,
                None => match self.load(user).await {
                    Ok(loaded) => loaded,
                    Err(e) => {
                        not_saved(&e);
                        return None;
                    }
                },
            };
            let t = if delivered {
                record.mailed_code_sent(send)
            } else {
                record.mailed_code_not_sent(send)
            };
            if !t.is_changed() {
                return Some((record, version));
            }
            let (next, ..) = t.into_parts();
            match self.store.save(user, &next, version).await {
                Ok(SaveOutcome::Saved(v)) => return Some((next, Some(v))),
                Ok(SaveOutcome::Conflict) => {
                    tracing::debug!("save conflict on the mailer's answer; reloading");
                }
                Err(e) => {
                    not_saved(&e);
                    return None;
                }
            }
        }
        not_saved(&"save conflicts");
        None
    }

    /// Records the events, then sends the notices. A failed notice is audited; it fails the
    /// operation only if it must be delivered. A login code that could not be sent does not:
    /// its error is the answer, for the caller to handle (the login waits for a resend).
    async fn publish(
        &self,
        user: &UserId,
        now: u64,
        context: Option<&LoginContext>,
        events: Vec<AuditKind>,
        notices: Vec<Notice>,
    ) -> Result<Option<BoxError>, Error> {
        let event = |kind| AuditEvent::new(user.clone(), now, kind, context.cloned());
        for kind in events {
            self.audit.record(&event(kind));
        }
        let mut failure = None;
        let mut code_failure = None;
        for notice in notices {
            if let Err(e) = self.mailer.send(user, &notice).await {
                tracing::warn!(notice = ?notice.kind(), error = %e, "notice not sent");
                self.audit.record(&event(AuditKind::NoticeFailed {
                    notice: notice.kind(),
                }));
                if notice.kind() == NoticeKind::LoginCode {
                    code_failure.get_or_insert_with(|| -> BoxError { Box::new(e) });
                } else if notice.must_deliver() && failure.is_none() {
                    failure = Some(Error::Mailer(Box::new(e)));
                }
            }
        }
        failure.map_or(Ok(code_failure), Err)
    }

    // ----- enrollment -----

    /// Starts enrolling an authenticator (from the account page): returns the QR code, URI and
    /// manual key to show, and keeps the secret pending until
    /// [`finish_enrollment`](Self::finish_enrollment) (15 minutes by default). Calling it again
    /// while that enrollment is pending resumes it (same secret, same expiry: a reload keeps
    /// the QR code the user scanned); call [`cancel_enrollment`](Self::cancel_enrollment)
    /// first for a new secret.
    ///
    /// `account` is the name the app shows under the issuer (login or e-mail address);
    /// `reauth` proves the host checked the password within the last 10 minutes. It takes
    /// the [`Principal`] because whether the password is enough depends on the policy: when
    /// the policy asks this (unenrolled) user for a mailed code at login
    /// (`Required { when_unenrolled: MailCode, .. }`, outside a running grace period), or
    /// asked them for one at their last login (the record remembers, whatever principal is
    /// passed now), the password is not enough: use
    /// [`start_enrollment_with_proof`](Self::start_enrollment_with_proof) with the proof of
    /// the mailed-code login this session completed. Otherwise someone with the password but
    /// not the mailbox could enroll an authenticator of their own and use it instead of the
    /// mailed code. After [`LoginDecision::MustEnroll`] use
    /// [`start_forced_enrollment`](Self::start_forced_enrollment) instead; a running grace
    /// period needs only the password check. See the [manual](crate::manual#who-may-enroll).
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`], [`Error::SecondFactorRequired`] (log in with the
    /// mailed code first, and pass its proof), [`Error::AlreadyEnrolled`] (use
    /// [`start_rotation`](Self::start_rotation)), [`Error::InvalidAccountName`],
    /// [`Error::NamesTooLong`], and the infrastructure errors ([`Error::Store`],
    /// [`Error::Contention`], [`Error::Rng`]).
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// // Right after the password check:
    /// let started = tf
    ///     .start_enrollment(&Principal::new("alice"), "alice@example.com", Reauthenticated::at(clock.now()))
    ///     .await?;
    /// // Inline the QR code; offer the manual key under "Cannot scan it?".
    /// assert!(started.qr_svg().starts_with("<svg"));
    /// assert!(started.uri().starts_with("otpauth://totp/alice@example.com?secret="));
    /// assert_eq!(started.manual_key().split(' ').count(), 8);
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %principal.user))]
    pub async fn start_enrollment(
        &self,
        principal: &Principal,
        account: &str,
        reauth: Reauthenticated,
    ) -> Result<EnrollmentStarted, Error> {
        self.enroll(principal, account, reauth, None).await
    }

    /// [`start_enrollment`](Self::start_enrollment) for a user the policy asks for a mailed
    /// code at login: `proof` is the [`SecondFactorProof`] of the mailed-code login this
    /// session completed ([`LoginGranted::proof`](crate::LoginGranted::proof), younger than
    /// [`Settings::reauth_max_age`]). A proof from another session is not in this session,
    /// which is the point: the victim's own mailed-code login gives someone who has only the
    /// password nothing.
    ///
    /// # Errors
    /// As [`start_enrollment`](Self::start_enrollment), and [`Error::InvalidProof`].
    #[tracing::instrument(skip_all, fields(user.id = %principal.user))]
    pub async fn start_enrollment_with_proof(
        &self,
        principal: &Principal,
        account: &str,
        reauth: Reauthenticated,
        proof: &SecondFactorProof,
    ) -> Result<EnrollmentStarted, Error> {
        self.enroll(principal, account, reauth, Some(proof)).await
    }

    async fn enroll(
        &self,
        principal: &Principal,
        account: &str,
        reauth: Reauthenticated,
        proof: Option<&SecondFactorProof>,
    ) -> Result<EnrollmentStarted, Error> {
        self.run(&principal.user, None, |r, now, rng| {
            let requirement = self.requirement_of(principal, r, now);
            r.start_enrollment(
                now,
                &principal.user,
                &requirement,
                reauth,
                proof,
                account,
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// Forced set-up after [`LoginDecision::MustEnroll`]: starts (or, while one is pending,
    /// resumes: audited `EnrollmentResumed`) enrollment for the user of the login ticket
    /// `pending`, whose password check is the re-authentication. A set-up page that is
    /// reloaded shows it with [`show_forced_enrollment`](Self::show_forced_enrollment), a
    /// read. The ticket is checked (seal, deadline, not used, not revoked, an
    /// enrollment step) before anything is loaded. Confirm with
    /// [`finish_forced_enrollment`](Self::finish_forced_enrollment).
    ///
    /// # Errors
    /// [`Error::InvalidTicket`], [`Error::LoginExpired`], and as
    /// [`start_enrollment`](Self::start_enrollment).
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn start_forced_enrollment(
        &self,
        pending: &PendingLogin,
        account: &str,
    ) -> Result<EnrollmentStarted, Error> {
        self.check_ticket(pending)?;
        if !matches!(pending.step(), PendingStep::Enrollment) {
            return Err(Error::InvalidTicket);
        }
        let reauth = Reauthenticated::at(pending.password_checked_at());
        self.run(pending.user(), None, |r, now, rng| {
            r.ensure_ticket_usable(pending, now, &self.settings)?;
            let requirement = self.requirement_of(pending.principal(), r, now);
            r.start_enrollment(
                now,
                pending.user(),
                &requirement,
                reauth,
                None,
                account,
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// The forced set-up already started for the login ticket `pending`, shown again (same
    /// secret, same expiry): for a set-up page that is reloaded. **Read-only**: nothing is
    /// saved and no audit event is recorded (a reload is not an event; the start was
    /// recorded as `EnrollmentStarted`), unlike a second
    /// [`start_forced_enrollment`](Self::start_forced_enrollment), which resumes it and
    /// records `EnrollmentResumed`. The ticket and the policy are checked exactly as that call
    /// checks them, so it shows nothing that call would refuse.
    ///
    /// `None` when no set-up started by the user is open: none was started, it expired, or it
    /// is a key an administrator mailed
    /// ([`start_enrollment_by_mail_dangerous`](Self::start_enrollment_by_mail_dangerous)),
    /// which is never shown on a page: ask for its code.
    ///
    /// # Errors
    /// As [`start_forced_enrollment`](Self::start_forced_enrollment), except
    /// [`Error::Contention`] and [`Error::Rng`].
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{LoginContext, LoginDecision};
    /// # use twofactor::audit::AuditKind;
    /// # use twofactor::testing::{ManualClock, RecordingAudit};
    /// # use twofactor::{MemoryStore, Principal, RequiredForAll, TwoFactor};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let audit = RecordingAudit::new();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .policy(RequiredForAll::default())
    /// #     .clock(ManualClock::new(1_700_000_000))
    /// #     .audit(&audit)
    /// #     .build();
    /// let decision = tf.start_login(&Principal::new("alice"), None, &LoginContext::new()).await?;
    /// let LoginDecision::MustEnroll { pending } = decision else { panic!("{decision:?}") };
    /// assert!(tf.show_forced_enrollment(&pending, "alice").await?.is_none()); // not started yet
    ///
    /// let started = tf.start_forced_enrollment(&pending, "alice").await?; // the login POST
    /// let shown = tf.show_forced_enrollment(&pending, "alice").await?; // the set-up page
    /// assert_eq!(shown.map(|s| s.manual_key().to_owned()).as_deref(), Some(started.manual_key()));
    /// assert!(!audit.kinds().iter().any(|k| matches!(k, AuditKind::EnrollmentResumed { .. })));
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn show_forced_enrollment(
        &self,
        pending: &PendingLogin,
        account: &str,
    ) -> Result<Option<EnrollmentStarted>, Error> {
        self.check_ticket(pending)?;
        if !matches!(pending.step(), PendingStep::Enrollment) {
            return Err(Error::InvalidTicket);
        }
        let now = self.clock.now();
        let (record, _) = self.load(pending.user()).await?;
        record.ensure_ticket_usable(pending, now, &self.settings)?;
        let requirement = self.requirement_of(pending.principal(), &record, now);
        Ok(record.waiting_enrollment(
            now,
            pending.user(),
            &requirement,
            Reauthenticated::at(pending.password_checked_at()),
            None,
            account,
            &self.settings,
        )?)
    }

    /// Confirms forced set-up with the first code of the new authenticator and completes the
    /// login the ticket `pending` stands for ([`Enrolled::login_completed`]); the ticket is
    /// used up. Log the session in (cycling its session id) when `login_completed()` is true.
    ///
    /// # Errors
    /// [`Error::InvalidTicket`], [`Error::LoginExpired`], and as
    /// [`finish_enrollment`](Self::finish_enrollment).
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn finish_forced_enrollment(
        &self,
        pending: &PendingLogin,
        code: &str,
    ) -> Result<Enrolled, Error> {
        self.check_ticket(pending)?;
        self.run_checked(pending.user(), None, |r, now, rng| {
            // Asked now, as `finish_login` does: a user whom the policy wants on a
            // security key is let in with the new app's code only to add one.
            let requirement = self.requirement_of(pending.principal(), r, now);
            r.finish_enrollment(
                now,
                pending.user(),
                code,
                Some((pending, &requirement)),
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// Checks a ticket's seal and deadline before anything is loaded: a forged or edited one
    /// costs nothing and charges no throttle.
    fn check_ticket(&self, pending: &PendingLogin) -> Result<(), Error> {
        pending.verify(&self.settings)?;
        if !pending.is_open(self.clock.now()) {
            return Err(Error::LoginExpired);
        }
        Ok(())
    }

    /// Confirms the pending enrollment (or rotation) with a code from the new authenticator:
    /// 2FA is on, the code cannot be used again, the user is notified, and the recovery codes
    /// are returned — show them now, they are never shown again.
    ///
    /// It completes no login ([`Enrolled::login_completed`] is `false`): after a
    /// [`LoginDecision::MustEnroll`], confirm with
    /// [`finish_forced_enrollment`](Self::finish_forced_enrollment), which takes the login
    /// ticket; see the [manual](crate::manual#forced-enrollment-at-login). The outcome
    /// carries a proof of the new authenticator ([`Enrolled::proof`]).
    ///
    /// # Errors
    /// [`Error::InvalidCode`], [`Error::Malformed`], [`Error::Throttled`],
    /// [`Error::NoPendingEnrollment`] (start again), and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let started = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(started.uri())?.into_secret();
    /// let code = Totp::default().generate(&app, clock.now()).to_string(); // what the app shows
    /// let enrolled = tf.finish_enrollment(&alice, &code).await?;
    /// for code in enrolled.recovery_codes().expose_secret() {
    ///     println!("{code}"); // show once, e.g. "7k3m-q9xa-2f"
    /// }
    /// assert!(tf.status(&alice).await?.is_enrolled());
    /// assert!(!enrolled.login_completed()); // from the account page: no login was waiting
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn finish_enrollment(&self, user: &UserId, code: &str) -> Result<Enrolled, Error> {
        self.run_checked(user, None, |r, now, rng| {
            r.finish_enrollment(now, user, code, None, &self.settings, rng)
        })
        .await
    }

    /// Abandons the pending enrollment or rotation.
    ///
    /// # Errors
    /// [`Error::NoPendingEnrollment`], and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// tf.cancel_enrollment(&alice).await?;
    /// assert!(matches!(tf.finish_enrollment(&alice, "123456").await, Err(Error::NoPendingEnrollment)));
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn cancel_enrollment(&self, user: &UserId) -> Result<(), Error> {
        self.run(user, None, |r, _, _| r.cancel_enrollment()).await
    }

    /// Starts replacing the active authenticator (new phone): needs a fresh password check and
    /// a second factor of `user`: a fresh [`SecondFactorProof`] from this session (`&proof`)
    /// or a code typed now (a `&str` from the current authenticator, or a [`Factor`]). Confirm
    /// with [`finish_enrollment`](Self::finish_enrollment), which revokes trusted devices and
    /// returns new recovery codes; until then the current authenticator keeps working.
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`], [`Error::NotEnrolled`], [`Error::InvalidCode`],
    /// [`Error::Malformed`], [`Error::Throttled`], [`Error::InvalidProof`],
    /// [`Error::SecondFactorRequired`] (a proof too old, or of a mailed code),
    /// [`Error::InvalidAccountName`], [`Error::NamesTooLong`], and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// let current = Totp::default().generate(&app, clock.now()).to_string();
    /// let started = tf
    ///     .start_rotation(&alice, "alice", current.as_str(), Reauthenticated::at(clock.now()))
    ///     .await?;
    /// let new_app = KeyUri::parse(started.uri())?.into_secret();
    /// let code = Totp::default().generate(&new_app, clock.now()).to_string();
    /// assert!(tf.finish_enrollment(&alice, &code).await?.rotated());
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn start_rotation<'v>(
        &self,
        user: &UserId,
        account: &str,
        verification: impl Into<Verification<'v>>,
        reauth: Reauthenticated,
    ) -> Result<EnrollmentStarted, Error> {
        let verification = verification.into();
        self.run_checked(user, None, |r, now, rng| {
            r.start_rotation(
                now,
                user,
                reauth,
                verification,
                account,
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// The user turns 2FA off, with a fresh password check and a second factor: a fresh
    /// [`SecondFactorProof`] from this session (`&proof`) or a code typed now (TOTP or
    /// recovery code). Secrets, recovery codes and trusted devices are deleted; the user is
    /// notified. `principal` is the user as the policy sees them (as for
    /// [`start_login`](Self::start_login)): where the policy requires 2FA of them, it cannot
    /// be turned off (check [`status_for`](Self::status_for) before offering it).
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`], [`Error::NotEnrolled`],
    /// [`Error::RequiredByPolicy`], [`Error::InvalidCode`], [`Error::Malformed`],
    /// [`Error::Throttled`], [`Error::InvalidProof`], [`Error::SecondFactorRequired`] (a proof
    /// too old, or of a mailed code), and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::optional();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// // Lost the phone but kept the recovery codes:
    /// let principal = Principal::new("alice"); // as for `start_login`
    /// let recovery = codes.expose_secret()[0];
    /// tf.disable(&principal, Reauthenticated::at(clock.now()), Factor::RecoveryCode(recovery))
    ///     .await?;
    /// assert!(!tf.status(&alice).await?.is_enrolled());
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %principal.user))]
    pub async fn disable<'v>(
        &self,
        principal: &Principal,
        reauth: Reauthenticated,
        verification: impl Into<Verification<'v>>,
    ) -> Result<(), Error> {
        let verification = verification.into();
        let user = &principal.user;
        self.run_checked(user, None, |r, now, _| {
            let requirement = self.requirement_of(principal, r, now);
            r.disable(
                now,
                user,
                &requirement,
                reauth,
                verification,
                &self.settings,
            )
        })
        .await
    }

    /// Refuses every login ticket and second-factor proof of `user` issued so far: half-done
    /// logins anywhere must start again with the password. Call it whenever the user's
    /// password changes (and on "sign out everywhere"). Trusted devices are not touched
    /// (see [`revoke_all_devices`](Self::revoke_all_devices)). An administrator's
    /// [`reset_by_admin`](Self::reset_by_admin) revokes them too.
    ///
    /// # Errors
    /// The infrastructure errors ([`Error::Store`], [`Error::Contention`]).
    ///
    /// # Example
    /// ```
    /// # use twofactor::{Error, LoginContext, LoginDecision, MemoryStore, Principal, TwoFactor, Requirement, EnrollmentStatus};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .policy(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required())
    /// #     .build();
    /// let alice = Principal::new("alice");
    /// let pending = tf.start_login(&alice, None, &LoginContext::new()).await?.into_pending().unwrap();
    /// // ... alice changes her password on another device:
    /// tf.revoke_login_tickets(&alice.user).await?;
    /// assert!(matches!(tf.start_forced_enrollment(&pending, "alice").await, Err(Error::LoginExpired)));
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn revoke_login_tickets(&self, user: &UserId) -> Result<(), Error> {
        self.run(user, None, |r, _, _| Ok(r.revoke_login_tickets()))
            .await
    }

    /// Step-up: the logged-in `user` proves a second factor again (a TOTP or recovery code)
    /// before a sensitive action, with no login side effects: counted by the same throttle as
    /// a login, replay-protected (a code accepted at login is refused here, and the other way
    /// round), audited (`SecondFactorVerified`, or `VerificationFailed` with the reason). No
    /// trusted device is created, no login ticket is used up, no login waiting for a mailed
    /// code is touched. A recovery code used here is notified and audited with the count
    /// left.
    ///
    /// Returns a fresh [`SecondFactorProof`] to keep in the session. Before your own
    /// sensitive action, check it with [`check_proof`](Self::check_proof) and the window
    /// **you** choose ("a second factor in the last 10 minutes": `max_age` 600); pass it to
    /// the library's ([`disable`](Self::disable),
    /// [`regenerate_recovery_codes`](Self::regenerate_recovery_codes),
    /// [`start_rotation`](Self::start_rotation)), which take it while it is younger than
    /// [`Settings::reauth_max_age`](crate::account::Settings::reauth_max_age). Its
    /// [claims](SecondFactorProof::claims) name the factor alone (`otp`, AAL1 on its own):
    /// [`merge`](crate::account::AssuranceClaims::merge) them into the claims of the session's login
    /// to ask for AAL2.
    ///
    /// A trusted-device cookie never counts: there is no [`Factor`] for it, and no proof of
    /// one can be made or parsed.
    ///
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, Reauthenticated};
    /// # use twofactor::{KeyUri, MemoryStore, Principal, Totp, TwoFactor, UserId, Clock};
    /// # use twofactor::testing::ManualClock;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let tf = TwoFactor::builder(MemoryStore::new()).clock(&clock).build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let login_claims = tf.finish_enrollment(&alice, &code).await?.proof().claims().clone();
    /// # clock.advance(3_600);
    /// // Before "delete my account": a second factor within the last 10 minutes.
    /// let code = Totp::default().generate(&app, clock.now()).to_string();
    /// let proof = tf.verify_second_factor(&alice, Factor::Totp(&code), &LoginContext::new()).await?;
    /// let claims = tf.check_proof(&alice, &proof, 10 * 60).await?; // the host's window
    /// assert_eq!(claims.amr(), ["otp"]);
    /// # let _ = login_claims;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotEnrolled`], [`Error::InvalidCode`], [`Error::Malformed`],
    /// [`Error::Throttled`], and the infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn verify_second_factor(
        &self,
        user: &UserId,
        factor: Factor<'_>,
        context: &LoginContext,
    ) -> Result<SecondFactorProof, Error> {
        self.run_checked(user, Some(context), |r, now, rng| {
            r.verify_second_factor(now, user, factor, &self.settings, rng)
        })
        .await
    }

    /// Checks a [`SecondFactorProof`] the host kept in the session, before a sensitive action
    /// of its own (a step-up guard: "a second factor proven in the last `max_age` seconds"):
    /// sealed by this deployment, `user`'s, not revoked since (the user's tickets revoked,
    /// 2FA reset), of a second factor (a TOTP, recovery or mailed code), and no older than
    /// `max_age`. One load of the record; nothing is saved or counted. Returns the proof's
    /// [`AssuranceClaims`](crate::account::AssuranceClaims), now checked: ask them for a level
    /// ([`satisfies`](crate::account::AssuranceClaims::satisfies)) when a mailed code should not do.
    ///
    /// `max_age` is the host's choice, per action (GitHub's sudo mode keeps 2 hours; a
    /// payment may want 5 minutes); the library's own sensitive calls use
    /// [`Settings::reauth_max_age`](crate::account::Settings::reauth_max_age).
    /// [`SecondFactorProof::is_fresh`] alone reads the proof's claims; this also checks them.
    ///
    /// # Errors
    /// [`Error::InvalidProof`] (forged, altered, another user's, revoked),
    /// [`Error::SecondFactorRequired`] (too old: ask for a code again with
    /// [`verify_second_factor`](Self::verify_second_factor)), and [`Error::Store`].
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn check_proof(
        &self,
        user: &UserId,
        proof: &SecondFactorProof,
        max_age: u64,
    ) -> Result<AssuranceClaims, Error> {
        use crate::vocabulary::FactorKind;
        let (record, _) = self.load(user).await?;
        let factors = [
            FactorKind::Totp,
            FactorKind::RecoveryCode,
            FactorKind::MailedCode,
            FactorKind::SecurityKey,
        ];
        let now = self.clock.now();
        record.check_proof_within(proof, user, &factors, now, max_age, &self.settings)?;
        Ok(proof.claims().clone())
    }

    /// An administrator resets a user's 2FA (lost phone): no code needed. Secrets, recovery
    /// codes and trusted devices are deleted, the user is notified, and the audit event names
    /// `admin`. Check the administrator's rights before calling.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] when there is nothing to reset, and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// let admin = UserId::new("root"); // after checking that root may do this
    /// tf.reset_by_admin(&alice, &admin).await?;
    /// assert!(!tf.status(&alice).await?.is_enrolled());
    /// assert!(matches!(tf.reset_by_admin(&alice, &admin).await, Err(Error::NotEnrolled)));
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user, admin.id = %admin))]
    pub async fn reset_by_admin(&self, user: &UserId, admin: &UserId) -> Result<(), Error> {
        self.run(user, None, |r, _, _| r.reset_by_admin(admin))
            .await
    }

    /// An administrator invites a user to enable 2FA: mails them `link` (your enrollment page).
    ///
    /// # Errors
    /// [`Error::AlreadyEnrolled`], [`Error::Mailer`], and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// let admin = UserId::new("root");
    /// tf.invite(&alice, &admin, "https://erp.example/account/security").await?;
    /// assert_eq!(tf.mailer().count_for(&alice), 1);
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user, admin.id = %admin))]
    pub async fn invite(&self, user: &UserId, admin: &UserId, link: &str) -> Result<(), Error> {
        self.run(user, None, |r, _, _| r.invite(admin, link)).await
    }

    /// An administrator provisions an authenticator secret for a user and it is **mailed** to
    /// them (Bista-style); the user confirms with a code through
    /// [`finish_enrollment`](Self::finish_enrollment). Returns when the pending enrollment
    /// expires (a day by default).
    ///
    /// Dangerous, hence the name: the secret travels by e-mail, so anyone who can read the
    /// mailbox can clone the authenticator. Prefer [`invite`](Self::invite).
    ///
    /// # Errors
    /// [`Error::AlreadyEnrolled`] (reset first), [`Error::InvalidAccountName`],
    /// [`Error::NamesTooLong`], [`Error::Mailer`], and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// let admin = UserId::new("root");
    /// let expires_at = tf
    ///     .start_enrollment_by_mail_dangerous(&alice, &admin, "alice@example.com")
    ///     .await?;
    /// assert_eq!(expires_at, clock.now() + 86_400);
    /// // Alice scans the QR code from the mail, then confirms with a code:
    /// # let uri = tf.mailer().last_provisioning_uri_for(&alice).unwrap();
    /// # let app = KeyUri::parse(&uri)?.into_secret();
    /// let code = Totp::default().generate(&app, clock.now()).to_string();
    /// tf.finish_enrollment(&alice, &code).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user, admin.id = %admin))]
    pub async fn start_enrollment_by_mail_dangerous(
        &self,
        user: &UserId,
        admin: &UserId,
        account: &str,
    ) -> Result<u64, Error> {
        self.run(user, None, |r, now, rng| {
            r.start_enrollment_by_mail_dangerous(now, admin, account, &self.settings, rng)
        })
        .await
    }

    // ----- login -----

    /// After the password was accepted: does this login need a second factor? The policy is
    /// asked fresh, a valid trusted-device token skips the challenge (when the policy allows
    /// trusted devices), and under a mail-code policy the code is mailed now. Call it right
    /// after the password check: its time is the password check the answer records.
    ///
    /// Every answer that waits for a second step ([`LoginDecision::Challenge`],
    /// [`LoginDecision::CodeMailed`], [`LoginDecision::CodeNotSent`],
    /// [`LoginDecision::MustEnroll`]) carries a
    /// sealed login ticket ([`PendingLogin`]) for `principal`: keep it in the half-logged-in
    /// session ([`PendingLogin::as_str`]; any edit is refused, so an unsigned cookie will
    /// do), cycle the session id, and pass it to [`finish_login`](Self::finish_login), which
    /// enforces its seal, deadline, single use and the factors it accepts. On `MustEnroll`,
    /// call [`start_forced_enrollment`](Self::start_forced_enrollment) and
    /// [`finish_forced_enrollment`](Self::finish_forced_enrollment) with it; confirmed within
    /// 15 minutes, that completes the login.
    ///
    /// A login code the mailer could not send (the mail server is down, refuses, times out)
    /// is not an error: the answer is [`LoginDecision::CodeNotSent`], with the ticket and the
    /// mailer's error. Keep the ticket, say the code could not be sent, and offer
    /// [`resend_mailed_code`](Self::resend_mailed_code), which mails a fresh code once the
    /// server is back. The failed send is not counted against the send limit
    /// ([`Settings::mail_sends_per_window`]), only against the attempts
    /// ([`Settings::mail_send_attempts_per_window`]).
    ///
    /// Saves only when the answer needs new state: a mailed code, a login waiting for
    /// enrollment, a trusted device's last use. A [`LoginDecision::Challenge`] (TOTP or
    /// recovery code) stores nothing, nor do policy grants and throttled logins: it is one
    /// load and no write (see the [manual](crate::manual#login-challenges)).
    /// The record it ends with is kept in memory for [`finish_login`](Self::finish_login)
    /// (see [`TwoFactorBuilder::login_snapshot_capacity`]).
    ///
    /// Log the user in only on [`LoginDecision::Granted`].
    ///
    /// # Errors
    /// [`Error::Throttled`] when the login would need a code but too many were checked
    /// recently, or a mailed code but too many were sent and none is still valid (a valid
    /// trusted-device token still logs in, as does a mailed code sent earlier that is still
    /// valid); and the infrastructure errors. Any error means: do not log the user in.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// let principal = Principal::new("alice").with_role("staff");
    /// let token_cookie: Option<&str> = None;
    /// match tf.start_login(&principal, token_cookie, &LoginContext::new()).await? {
    ///     LoginDecision::Granted { .. } => { /* log in */ }
    ///     LoginDecision::Challenge { pending } => {
    ///         /* keep `pending` in the session, ask for a code, then finish_login(&pending, ..) */
    ///     }
    ///     LoginDecision::MustEnroll { pending } => {
    ///         /* keep `pending`; start_forced_enrollment(&pending, ..), then finish_forced_enrollment */
    ///     }
    ///     LoginDecision::CodeMailed { pending } => { /* keep `pending`; ask for the mailed code */ }
    ///     LoginDecision::CodeNotSent { pending, error } => {
    ///         /* log `error`; keep `pending`; "we could not send the code", offer a resend */
    ///     }
    ///     _ => { /* a future answer: refuse */ }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %principal.user))]
    pub async fn start_login(
        &self,
        principal: &Principal,
        device_token: Option<&str>,
        context: &LoginContext,
    ) -> Result<LoginDecision, Error> {
        let (decision, code_failure) = self
            .run_mailing(
                &principal.user,
                Some(context),
                SnapshotUse::Write,
                |r, now, rng| {
                    let requirement = self.requirement_of(principal, r, now);
                    r.start_login(
                        principal,
                        now,
                        &requirement,
                        device_token,
                        context,
                        &self.settings,
                        rng,
                    )
                },
            )
            .await?;
        let decision = checked(decision)?;
        Ok(match (decision, code_failure) {
            (LoginDecision::CodeMailed { pending }, Some(error)) => LoginDecision::CodeNotSent {
                pending,
                error: MailFailure::from(error),
            },
            (decision, _) => decision,
        })
    }

    /// The second step of a login: checks a TOTP code, a recovery code or a mailed code for
    /// the [`PendingLogin`] that [`start_login`](Self::start_login) handed out. There is no
    /// other way to check a login's second factor.
    ///
    /// A ticket this deployment did not seal, or an edited one, is refused with
    /// [`Error::InvalidTicket`], and one past its [`expires_at`](PendingLogin::expires_at)
    /// with [`Error::LoginExpired`], before loading anything (nothing checked, nothing
    /// counted); so is one that already completed a login or was revoked
    /// ([`revoke_login_tickets`](Self::revoke_login_tickets)), once loaded. A
    /// factor `pending` does not accept (a mailed code on a TOTP challenge, a TOTP code on a
    /// mailed-code login, anything on a `MustEnroll`) is counted and refused as
    /// [`Error::InvalidCode`]. Otherwise the check is counted against the throttle first,
    /// replays are refused, and the policy is asked fresh about `pending.principal()`. A
    /// TOTP or recovery code needs an enrolled user, not a stored challenge (`start_login`
    /// stores none); a mailed code must also arrive while its stored login is open. Whatever
    /// `pending` says and the policy answers, nothing is granted without a factor verified
    /// against the stored record. On success the result carries a [`SecondFactorProof`]
    /// (`granted.proof`): keep it in the (new) session for the sensitive calls. With
    /// `remember_device` (a label such as "Firefox on Linux") and a policy that allows
    /// trusted devices, the result carries a device token for a cookie.
    ///
    /// Its first attempt starts from the record this service's `start_login` kept for the
    /// user, if it is younger than [`Settings::login_challenge_ttl`], instead of loading it:
    /// a full login is one load and one save. The snapshot only counts if the
    /// compare-and-swap save with its version succeeds; on a conflict, or when the verdict
    /// would save nothing, the check is run again on a fresh load. See
    /// [`TwoFactorBuilder::login_snapshot_capacity`] and the
    /// [manual](crate::manual#one-record-one-compare-and-swap).
    ///
    /// # Errors
    /// [`Error::InvalidTicket`], [`Error::LoginExpired`] (log in again),
    /// [`Error::InvalidCode`] (wrong, replayed, a late mailed code, or no such factor
    /// pending — including a user without 2FA),
    /// [`Error::Malformed`], [`Error::Throttled`], and the infrastructure errors. Any error
    /// means: do not log the user in.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// let principal = Principal::new("alice");
    /// let ctx = LoginContext::new().device("Firefox on Linux");
    /// let decision = tf.start_login(&principal, None, &ctx).await?;
    /// let pending = decision.pending().expect("a challenge"); // kept in the session
    /// let code = Totp::default().generate(&app, clock.now()).to_string();
    /// let granted = tf
    ///     .finish_login(pending, Factor::Totp(&code), Some("Firefox on Linux"), &ctx)
    ///     .await?;
    /// let cookie = granted.device_token.expect("the policy allows trusted devices");
    /// // Next time, the cookie skips the code:
    /// let decision = tf.start_login(&principal, Some(cookie.expose_secret()), &ctx).await?;
    /// assert!(matches!(decision, LoginDecision::Granted { .. }));
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn finish_login(
        &self,
        pending: &PendingLogin,
        factor: Factor<'_>,
        remember_device: Option<&str>,
        context: &LoginContext,
    ) -> Result<LoginGranted, Error> {
        self.finish_login_with(pending, factor, None, remember_device, context)
            .await
    }

    /// [`finish_login`](Self::finish_login) where the user picked the authenticator the code
    /// comes from (a list of their authenticators on the second step): a TOTP code is checked
    /// against that one only. Without it, every TOTP authenticator of the user is tried.
    /// Recovery and mailed codes ignore it.
    ///
    /// # Errors
    /// As [`finish_login`](Self::finish_login), and [`Error::UnknownAuthenticator`] for an id
    /// that is not one of the user's (nothing checked or counted).
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn finish_login_from(
        &self,
        pending: &PendingLogin,
        factor: Factor<'_>,
        authenticator: &AuthenticatorId,
        remember_device: Option<&str>,
        context: &LoginContext,
    ) -> Result<LoginGranted, Error> {
        self.finish_login_with(
            pending,
            factor,
            Some(authenticator),
            remember_device,
            context,
        )
        .await
    }

    async fn finish_login_with(
        &self,
        pending: &PendingLogin,
        factor: Factor<'_>,
        authenticator: Option<&AuthenticatorId>,
        remember_device: Option<&str>,
        context: &LoginContext,
    ) -> Result<LoginGranted, Error> {
        // Refused before any load: nothing checked, nothing counted.
        self.check_ticket(pending)?;
        checked(
            self.run_with(
                pending.user(),
                Some(context),
                SnapshotUse::Take,
                |r, now, rng| {
                    let requirement = self.requirement_of(pending.principal(), r, now);
                    r.finish_login_from(
                        pending,
                        now,
                        &requirement,
                        factor,
                        authenticator,
                        remember_device,
                        context,
                        &self.settings,
                        rng,
                    )
                },
            )
            .await?,
        )
    }

    /// Mails a new login code for a login waiting for one (`pending` from
    /// [`LoginDecision::CodeMailed`], or from [`LoginDecision::CodeNotSent`] once the mail
    /// server is back). Returns the new code's expiry; `pending` stays valid until its own
    /// [`expires_at`](PendingLogin::expires_at).
    ///
    /// The new code is stored before it is sent, and replaces the code mailed before only
    /// once the mailer delivered it: a resend that fails takes nothing away (the code the user
    /// already has still works), is not counted against the send limit, and can be tried
    /// again with the same `pending`.
    ///
    /// # Errors
    /// [`Error::NoPendingLogin`] (`pending` is not a mailed-code login, or the stored one is
    /// over: log in again), [`Error::LoginExpired`] (log in again), [`Error::Throttled`] when
    /// too many codes were sent, or tried (a code sent before still works),
    /// [`Error::Mailer`] when the mailer failed (`pending` stays good: say so and offer to try
    /// again), and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Required {
    /// #     when_unenrolled: twofactor::WhenUnenrolled::MailCode,
    /// #     grace_until: None,
    /// #     trusted_devices: true,
    /// # };
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// let ctx = LoginContext::new();
    /// let decision = tf.start_login(&Principal::new("alice"), None, &ctx).await?;
    /// let LoginDecision::CodeMailed { pending } = decision else { panic!("{decision:?}") };
    /// let expires_at = tf.resend_mailed_code(&pending, &ctx).await?;
    /// assert_eq!(expires_at, clock.now() + 3_600);
    /// let code = tf.mailer().last_login_code_for(&alice).unwrap();
    /// tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn resend_mailed_code(
        &self,
        pending: &PendingLogin,
        context: &LoginContext,
    ) -> Result<u64, Error> {
        self.check_ticket(pending)?;
        if !matches!(pending.step(), PendingStep::MailedCode { .. }) {
            return Err(Error::NoPendingLogin);
        }
        self.run_checked(pending.user(), Some(context), |r, now, rng| {
            r.ensure_ticket_usable(pending, now, &self.settings)?;
            r.resend_mailed_code(now, context, &self.settings, rng)
        })
        .await
    }

    // ----- devices, recovery codes, status -----

    /// The user's trusted devices (not expired).
    ///
    /// # Errors
    /// [`Error::Store`].
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// # let p = Principal::new("alice");
    /// # let ctx = LoginContext::new();
    /// # let pending = tf.start_login(&p, None, &ctx).await?.into_pending().unwrap();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # tf.finish_login(&pending, Factor::Totp(&code), Some("phone"), &ctx).await?;
    /// for device in tf.list_devices(&alice).await? {
    ///     println!("{} trusted since {}", device.label, device.created_at);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn list_devices(&self, user: &UserId) -> Result<Vec<DeviceInfo>, Error> {
        let now = self.clock.now();
        Ok(self.load(user).await?.0.trusted_devices(now))
    }

    /// Revokes one trusted device (its token stops working at once).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], and the infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// # let p = Principal::new("alice");
    /// # let ctx = LoginContext::new();
    /// # let pending = tf.start_login(&p, None, &ctx).await?.into_pending().unwrap();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # tf.finish_login(&pending, Factor::Totp(&code), Some("phone"), &ctx).await?;
    /// let devices = tf.list_devices(&alice).await?;
    /// tf.revoke_device(&alice, &devices[0].id).await?;
    /// assert!(tf.list_devices(&alice).await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn revoke_device(&self, user: &UserId, device: &DeviceId) -> Result<(), Error> {
        self.run(user, None, |r, _, _| {
            r.revoke_device(device).map(|t| t.map(|_| ()))
        })
        .await
    }

    /// Revokes every trusted device; returns how many there were.
    ///
    /// # Errors
    /// The infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// # let p = Principal::new("alice");
    /// # let ctx = LoginContext::new();
    /// # let pending = tf.start_login(&p, None, &ctx).await?.into_pending().unwrap();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # tf.finish_login(&pending, Factor::Totp(&code), Some("phone"), &ctx).await?;
    /// assert_eq!(tf.revoke_all_devices(&alice).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn revoke_all_devices(&self, user: &UserId) -> Result<usize, Error> {
        self.run(user, None, |r, _, _| Ok(r.revoke_all_devices()))
            .await
    }

    // ----- authenticators -----

    /// The user's authenticators (a phone, a spare phone, a password manager), in the order
    /// they were added, for the account page: id, label, kind, dates and the learned clock
    /// offset ([`AuthenticatorInfo::clock_offset_seconds`]: "your phone's clock is about N
    /// seconds off"). No secrets.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn authenticators(&self, user: &UserId) -> Result<Vec<AuthenticatorInfo>, Error> {
        Ok(self.load(user).await?.0.authenticators())
    }

    /// Renames one of the user's authenticators. The label is trimmed, 1 to
    /// [`MAX_LABEL_CHARS`](crate::account::MAX_LABEL_CHARS) characters, without control
    /// characters, and unique among the user's authenticators (case ignored). Audited and
    /// notified.
    ///
    /// # Errors
    /// [`Error::UnknownAuthenticator`], [`Error::InvalidLabel`], [`Error::LabelTaken`], and
    /// the infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn rename_authenticator(
        &self,
        user: &UserId,
        authenticator: &AuthenticatorId,
        label: &str,
    ) -> Result<(), Error> {
        self.run(user, None, |r, _, _| {
            r.rename_authenticator(authenticator, label)
        })
        .await
    }

    /// Starts adding another authenticator for an enrolled user, named `label`: needs a fresh
    /// password check **and** a second factor (a fresh [`SecondFactorProof`] of this session,
    /// or a code from an existing authenticator, or a recovery code). Returns the QR code and
    /// key to show; confirm with a code from the **new** authenticator through
    /// [`finish_adding_authenticator`](Self::finish_adding_authenticator). Nothing else
    /// changes: the existing authenticators, recovery codes and trusted devices stay. At most
    /// [`Settings::max_authenticators`] per user (5 by default): every authenticator is one
    /// more secret a guessed code may match (see the
    /// [manual](crate::manual#several-authenticators)).
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`], [`Error::NotEnrolled`] (enroll the first one with
    /// [`start_enrollment`](Self::start_enrollment)), [`Error::InvalidLabel`],
    /// [`Error::LabelTaken`], [`Error::TooManyAuthenticators`], [`Error::InvalidProof`],
    /// [`Error::SecondFactorRequired`], [`Error::InvalidCode`], [`Error::Malformed`],
    /// [`Error::Throttled`], and the infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn start_adding_authenticator<'v>(
        &self,
        user: &UserId,
        label: &str,
        account: &str,
        verification: impl Into<Verification<'v>>,
        reauth: Reauthenticated,
    ) -> Result<EnrollmentStarted, Error> {
        let verification = verification.into();
        self.run_checked(user, None, |r, now, rng| {
            r.start_adding_authenticator(
                now,
                user,
                label,
                reauth,
                verification,
                account,
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// Confirms the authenticator being added with a code from it: it is added after the
    /// others (which keep working) and the user is notified.
    ///
    /// # Errors
    /// [`Error::NoPendingEnrollment`] (none being added, or expired), [`Error::InvalidCode`],
    /// [`Error::Malformed`], [`Error::Throttled`], [`Error::LabelTaken`] /
    /// [`Error::TooManyAuthenticators`] (changed meanwhile), and the infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn finish_adding_authenticator(
        &self,
        user: &UserId,
        code: &str,
    ) -> Result<AddedAuthenticator, Error> {
        self.run_checked(user, None, |r, now, rng| {
            r.finish_adding_authenticator(now, user, code, &self.settings, rng)
        })
        .await
    }

    /// Starts replacing one named authenticator (a new phone for "Work phone"): as
    /// [`start_rotation`](Self::start_rotation), which replaces the authenticator of a user
    /// who has one. Confirmed with [`finish_enrollment`](Self::finish_enrollment), the new
    /// secret takes the old one's place and label under a new id, with a fresh clock offset;
    /// the other authenticators stay. As for a rotation, the recovery codes are renewed and
    /// trusted devices revoked.
    ///
    /// # Errors
    /// As [`start_rotation`](Self::start_rotation), and [`Error::UnknownAuthenticator`].
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn start_replacing_authenticator<'v>(
        &self,
        user: &UserId,
        authenticator: &AuthenticatorId,
        account: &str,
        verification: impl Into<Verification<'v>>,
        reauth: Reauthenticated,
    ) -> Result<EnrollmentStarted, Error> {
        let verification = verification.into();
        self.run_checked(user, None, |r, now, rng| {
            r.start_replacing_authenticator(
                now,
                user,
                authenticator,
                reauth,
                verification,
                account,
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// Removes one authenticator (a lost phone, with the other one's code): needs a fresh
    /// password check and a second factor (a fresh proof, a code from any authenticator, or a
    /// recovery code). The other authenticators, the recovery codes and the trusted devices
    /// are not touched. Removing the **last** one is [`disable`](Self::disable), with its
    /// rules: refused with [`Error::RequiredByPolicy`] where the policy requires 2FA of
    /// `principal`.
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`], [`Error::NotEnrolled`],
    /// [`Error::UnknownAuthenticator`], [`Error::RequiredByPolicy`], [`Error::InvalidProof`],
    /// [`Error::SecondFactorRequired`], [`Error::InvalidCode`], [`Error::Malformed`],
    /// [`Error::Throttled`], and the infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %principal.user))]
    pub async fn remove_authenticator<'v>(
        &self,
        principal: &Principal,
        authenticator: &AuthenticatorId,
        reauth: Reauthenticated,
        verification: impl Into<Verification<'v>>,
    ) -> Result<(), Error> {
        let verification = verification.into();
        let user = &principal.user;
        self.run_checked(user, None, |r, now, _| {
            let requirement = self.requirement_of(principal, r, now);
            r.remove_authenticator(
                now,
                user,
                authenticator,
                &requirement,
                reauth,
                verification,
                &self.settings,
            )
        })
        .await
    }

    /// Replaces the recovery codes with a new set (the old ones stop working) and returns the
    /// new codes — show them once. Needs a fresh password check and a second factor of `user`:
    /// a fresh [`SecondFactorProof`] from this session (`&granted.proof` from the login, or
    /// one from [`verify_second_factor`](Self::verify_second_factor)) or a code typed now.
    /// The password alone is not enough: new recovery codes would turn 2FA off.
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`], [`Error::NotEnrolled`], [`Error::InvalidProof`],
    /// [`Error::SecondFactorRequired`] (a proof too old, or of a mailed code),
    /// [`Error::InvalidCode`], [`Error::Malformed`], [`Error::Throttled`], and the
    /// infrastructure errors.
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let enrolled = tf.finish_enrollment(&alice, &code).await?;
    /// # let proof = enrolled.proof().clone();
    /// # let codes = enrolled.into_recovery_codes();
    /// # clock.advance(30);
    /// // `proof`: the session's proof of a second factor (`granted.proof` at login).
    /// let fresh = tf
    ///     .regenerate_recovery_codes(&alice, Reauthenticated::at(clock.now()), &proof)
    ///     .await?;
    /// assert_eq!(fresh.len(), 10); // the old set no longer works
    /// # let _ = codes;
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn regenerate_recovery_codes<'v>(
        &self,
        user: &UserId,
        reauth: Reauthenticated,
        verification: impl Into<Verification<'v>>,
    ) -> Result<RecoveryCodes, Error> {
        let verification = verification.into();
        self.run_checked(user, None, |r, now, rng| {
            r.regenerate_recovery_codes(now, user, reauth, verification, &self.settings, rng)
        })
        .await
    }

    /// A summary of the user's 2FA for their account page or an admin screen.
    ///
    /// # Errors
    /// [`Error::Store`].
    ///
    /// # Example
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
    /// # use twofactor::{Error, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::{ManualClock, RecordingMailer};
    /// # use twofactor::{Clock, EnrollmentStatus, Requirement, Totp, TwoFactor, UserId};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # let codes = tf.finish_enrollment(&alice, &code).await?.into_recovery_codes();
    /// # clock.advance(30);
    /// let status = tf.status(&alice).await?;
    /// assert!(status.is_enrolled());
    /// assert_eq!(status.recovery_codes_left, 10);
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn status(&self, user: &UserId) -> Result<TwoFactorStatus, Error> {
        let now = self.clock.now();
        Ok(self.load(user).await?.0.status(now, &self.settings))
    }

    /// [`status`](Self::status) for the account page, with
    /// [`required`](TwoFactorStatus::required) filled in: whether the policy requires 2FA of
    /// `principal` now (then hide "turn off": [`disable`](Self::disable) refuses it).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn status_for(&self, principal: &Principal) -> Result<TwoFactorStatus, Error> {
        let now = self.clock.now();
        let record = self.load(&principal.user).await?.0;
        let requirement = self.requirement_of(principal, &record, now);
        let mut status = record.status(now, &self.settings);
        status.required = Some(requirement.is_required());
        status.needs_security_key = Some(
            matches!(requirement, crate::policy::Requirement::PhishingResistant)
                && !record.has_security_key(),
        );
        Ok(status)
    }

    /// The trusted-device cookie helper of this service: cookie names are keyed with the
    /// service's cookie key ([`ServiceKeys::cookie_key`]; without keys, a random key of this
    /// process, so remembered devices are asked for a code again after a restart).
    #[must_use]
    pub fn device_cookie(&self) -> crate::cookie::DeviceCookie {
        crate::cookie::DeviceCookie::new(self.cookie_key())
    }

    fn cookie_key(&self) -> &CookieKey {
        match &self.cookie_key {
            Some(k) => k,
            None => crate::account::process_cookie_key(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::CodeError;
    use proptest::prelude::*;

    /// Every variant of [`Error`], once. The `match` has no wildcard: a new variant does not
    /// compile until it is listed here, and so until the table below says what kind it is.
    fn every_variant() -> Vec<Error> {
        let io = || Box::new(std::io::Error::other("down")) as BoxError;
        let all = vec![
            Error::InvalidCode,
            Error::Malformed(MalformedInput::Code(CodeError::Empty)),
            Error::Throttled { retry_at: 100 },
            Error::ReauthenticationRequired,
            Error::LoginExpired,
            Error::SecondFactorRequired,
            Error::InvalidTicket,
            Error::InvalidProof,
            Error::RequiredByPolicy,
            Error::NotEnrolled,
            Error::AlreadyEnrolled,
            Error::NoPendingEnrollment,
            Error::NoPendingLogin,
            Error::UnknownDevice,
            Error::UnknownAuthenticator,
            Error::AuthenticatorNotNamed,
            Error::InvalidLabel(crate::account::LabelError::Empty),
            Error::LabelTaken,
            Error::TooManyAuthenticators { max: 5 },
            Error::InvalidAccountName(UriError::MissingSecret),
            Error::NamesTooLong,
            Error::Store(io()),
            Error::Mailer(io()),
            Error::Contention { attempts: 16 },
            Error::Rng,
            Error::SecretSealed,
            Error::UnknownCodeKey {
                key_id: "0123456789abcdef".into(),
            },
            Error::InvalidKey("too short"),
            Error::PhishingResistantRequired,
            Error::SecurityKey(crate::vocabulary::SecurityKeyFailure::Malformed),
            Error::SecurityKey(crate::vocabulary::SecurityKeyFailure::Refused),
            Error::SecurityKey(crate::vocabulary::SecurityKeyFailure::UnknownCredential),
            Error::SecurityKey(crate::vocabulary::SecurityKeyFailure::PossiblyCloned),
            Error::SecurityKey(crate::vocabulary::SecurityKeyFailure::NoCeremony),
            Error::SecurityKey(crate::vocabulary::SecurityKeyFailure::AlreadyRegistered),
            Error::SecurityKey(crate::vocabulary::SecurityKeyFailure::NotConfigured),
        ];
        for e in &all {
            match e {
                Error::InvalidCode
                | Error::Malformed(_)
                | Error::Throttled { .. }
                | Error::ReauthenticationRequired
                | Error::LoginExpired
                | Error::SecondFactorRequired
                | Error::InvalidTicket
                | Error::InvalidProof
                | Error::RequiredByPolicy
                | Error::NotEnrolled
                | Error::AlreadyEnrolled
                | Error::NoPendingEnrollment
                | Error::NoPendingLogin
                | Error::UnknownDevice
                | Error::UnknownAuthenticator
                | Error::AuthenticatorNotNamed
                | Error::InvalidLabel(_)
                | Error::LabelTaken
                | Error::TooManyAuthenticators { .. }
                | Error::InvalidAccountName(_)
                | Error::NamesTooLong
                | Error::Store(_)
                | Error::Mailer(_)
                | Error::Contention { .. }
                | Error::Rng
                | Error::SecretSealed
                | Error::UnknownCodeKey { .. }
                | Error::InvalidKey(_)
                | Error::PhishingResistantRequired
                | Error::SecurityKey(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_variant_has_the_documented_kind_and_status() {
        use ErrorKind as K;
        let expected = [
            (K::WrongCode, 401),
            (K::MalformedInput, 400),
            (K::Throttled, 429),
            (K::NotAllowedNow, 403),
            (K::NotAllowedNow, 403),
            (K::NotAllowedNow, 403),
            (K::NotAllowedNow, 403),
            (K::NotAllowedNow, 403),
            (K::NotAllowedNow, 403),
            (K::Conflict, 409),
            (K::Conflict, 409),
            (K::Conflict, 409),
            (K::Conflict, 409),
            (K::Conflict, 409),
            (K::Conflict, 409),
            (K::Conflict, 409),
            (K::MalformedInput, 400),
            (K::Conflict, 409),
            (K::Conflict, 409),
            (K::MalformedInput, 400),
            (K::MalformedInput, 400),
            (K::Unavailable, 503),
            (K::Unavailable, 503),
            (K::Unavailable, 503),
            (K::Misconfigured, 500),
            (K::Misconfigured, 500),
            (K::Misconfigured, 500),
            (K::Misconfigured, 500),
            (K::NotAllowedNow, 403),
            (K::MalformedInput, 400),
            (K::WrongCode, 401),
            (K::WrongCode, 401),
            (K::WrongCode, 401),
            (K::NotAllowedNow, 403),
            (K::Conflict, 409),
            (K::Misconfigured, 500),
        ];
        let all = every_variant();
        assert_eq!(all.len(), expected.len());
        for (e, (kind, status)) in all.iter().zip(expected) {
            assert_eq!(e.kind(), kind, "{e:?}");
            assert_eq!(e.http_status(), status, "{e:?}");
            assert_eq!(kind.http_status(), status);
            // Only throttling carries a retry time, and it is the only 429.
            assert_eq!(e.retry_at().is_some(), kind == K::Throttled, "{e:?}");
            assert_eq!(e.retry_after(0).is_some(), status == 429, "{e:?}");
            assert_eq!(
                kind.is_transient(),
                matches!(kind, K::Throttled | K::Unavailable)
            );
        }
        // Every kind is reached, and no two kinds share a status.
        let mut kinds: Vec<_> = all.iter().map(Error::kind).collect();
        kinds.sort_by_key(|k| k.http_status());
        kinds.dedup();
        assert_eq!(kinds.len(), 7);
        let mut statuses: Vec<_> = kinds.iter().map(|k| k.http_status()).collect();
        statuses.dedup();
        assert_eq!(statuses.len(), 7);
    }

    #[test]
    fn domain_errors_are_never_transient_and_refusals_keep_their_kind() {
        let domain = [
            DomainError::NotEnrolled,
            DomainError::AlreadyEnrolled,
            DomainError::NoPendingEnrollment,
            DomainError::NoPendingLogin,
            DomainError::ReauthenticationRequired,
            DomainError::LoginExpired,
            DomainError::SecondFactorRequired,
            DomainError::InvalidTicket,
            DomainError::InvalidProof,
            DomainError::RequiredByPolicy,
            DomainError::UnknownDevice,
            DomainError::UnknownAuthenticator,
            DomainError::AuthenticatorNotNamed,
            DomainError::InvalidLabel(crate::account::LabelError::Empty),
            DomainError::LabelTaken,
            DomainError::TooManyAuthenticators { max: 5 },
            DomainError::InvalidAccountName(UriError::MissingSecret),
            DomainError::NamesTooLong,
            DomainError::Rng,
            DomainError::SecretSealed,
            DomainError::UnknownCodeKey {
                key_id: "0123456789abcdef".into(),
            },
            DomainError::InvalidKey("too short"),
        ];
        for d in domain {
            // A precondition that fails the same way on retry is never "retry later".
            let e = Error::from(d.clone());
            assert!(!e.kind().is_transient(), "{d:?} -> {e:?}");
        }
        let throttled = Error::from(Refusal::Throttled { retry_at: 7 });
        assert_eq!(throttled.retry_at(), Some(7));
        let wrong = Error::from(Refusal::Invalid(crate::account::FailureReason::Replayed));
        assert_eq!(wrong.kind(), ErrorKind::WrongCode);
    }

    proptest! {
        /// `Retry-After` is never 0 and never tells the client to come back too early.
        #[test]
        fn retry_after_is_at_least_one_and_never_early(retry_at: u64, now: u64) {
            let after = Error::Throttled { retry_at }.retry_after(now).unwrap();
            prop_assert!(after >= 1);
            prop_assert!(now.saturating_add(after) >= retry_at);
            if retry_at > now {
                prop_assert_eq!(after, retry_at - now);
            }
        }
    }
}
