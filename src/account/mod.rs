//! The 2FA domain, sans-IO: one [`TwoFactorRecord`] per user and pure transitions on it.
//!
//! Nothing here awaits, reads a clock or touches the operating system: every transition takes
//! the record, `now` (Unix seconds), the user's input, the [`Settings`] and a cryptographic RNG,
//! and returns a [`Transition`]: the next record, the outcome, the [`AuditKind`]s to record and
//! the [`Notice`]s to send. The [service](crate::service) does the I/O around it: load, one
//! transition, compare-and-swap save, then notices and audit events.
//!
//! ```text
//!   load ──► TwoFactorRecord ──transition(now, input, settings, rng)──► Transition
//!                                                                       ├─ record   ──► save (CAS)
//!                                                                       ├─ outcome  ──► caller
//!                                                                       ├─ events   ──► AuditSink
//!                                                                       └─ notices  ──► Mailer
//! ```
//!
//! Transitions fail in two ways:
//! - `Err(`[`DomainError`]`)`: a precondition does not hold (not enrolled, stale
//!   re-authentication, ...). Nothing changed, nothing to record.
//! - `Ok(transition)` whose outcome is `Err(`[`Refusal`]`)`: a code was checked and refused, or
//!   the check was throttled. The transition still carries what must be kept (the attempt was
//!   counted) and recorded (the audit event says why).
//!
//! [`AuditKind`]: crate::audit::AuditKind
//! [`Notice`]: crate::mail::Notice

pub(crate) mod crypto;
mod devices;
#[doc(hidden)]
pub mod dudect_support;
mod enrollment;
mod error;
mod login;
mod mailed;
mod reauth;
mod record;
#[cfg(feature = "serde")]
pub(crate) use record::required;
mod recovery;
mod settings;
mod throttle;
mod transition;

pub use crypto::CodeKey;
pub use devices::{DeviceId, DeviceInfo, DeviceToken};
pub use enrollment::{Enrolled, EnrollmentStarted};
pub use error::{Checked, DomainError, FailureReason, MalformedInput, Refusal};
pub use login::{
    Factor, FactorKind, FactorParseError, GrantReason, LoginContext, LoginDecision, LoginGranted,
    PendingLogin, PendingLoginError, PendingStep,
};
pub use reauth::Reauthenticated;
pub use record::{TwoFactorRecord, TwoFactorStatus};
pub use recovery::{
    LEGACY_RECOVERY_CODE_LEN, RECOVERY_CODE_ALPHABET, RECOVERY_CODE_LEN, RECOVERY_CODE_LENGTHS,
    RecoveryCodeError, RecoveryCodes, is_recovery_code_shape,
};
pub use settings::*;
pub use transition::Transition;

use core::fmt;

/// Identifies a user of the host application.
///
/// Hosts key users by integers, UUIDs or names; all convert into this string newtype.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct UserId(String);

impl UserId {
    /// Wraps a host's user identifier.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        UserId(id.into())
    }
    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        UserId(s.to_owned())
    }
}
impl From<String> for UserId {
    fn from(s: String) -> Self {
        UserId(s)
    }
}
impl From<u64> for UserId {
    fn from(n: u64) -> Self {
        UserId(n.to_string())
    }
}
impl From<i64> for UserId {
    fn from(n: i64) -> Self {
        UserId(n.to_string())
    }
}
impl From<u32> for UserId {
    fn from(n: u32) -> Self {
        UserId(n.to_string())
    }
}
impl From<i32> for UserId {
    fn from(n: i32) -> Self {
        UserId(n.to_string())
    }
}
