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

mod authenticators;
mod claims;
pub(crate) mod crypto;
mod devices;
#[doc(hidden)]
pub mod dudect_support;
mod enrollment;
mod error;
mod keys;
mod login;
mod mailed;
mod reauth;
mod record;
mod security_keys;
#[cfg(feature = "serde")]
pub(crate) use record::required;
mod recovery;
mod settings;
mod throttle;
mod ticket;
mod transition;

pub(crate) use authenticators::AuthenticatorFactor;
pub use authenticators::{
    AddedAuthenticator, AuthenticatorInfo, AuthenticatorKind, DEFAULT_LABEL, LabelError,
    MAX_LABEL_CHARS, check_label,
};
pub use claims::{
    Aal, AssuranceClaims, AuthMethod, CompletedMethod, UnknownClaimName, Unsatisfied,
};
pub use crypto::CodeKey;
pub use devices::{DeviceInfo, DeviceToken};
pub use enrollment::{Enrolled, EnrollmentStarted};
pub use error::{Checked, DomainError, MalformedInput, Refusal};
pub use keys::{CookieKey, MIN_SERVICE_SECRET_BYTES, ServiceKeys};
pub(crate) use keys::{TicketKey, process_cookie_key};
#[allow(unused_imports)] // used by the keyring (feature `seal`)
pub(crate) use keys::{derive as hkdf_derive, label as key_label};
pub use login::{
    Factor, FactorParseError, GrantReason, LoginDecision, LoginGranted, PendingLogin,
    PendingLoginError, PendingStep,
};
pub use mailed::CodeSend;
pub use reauth::Reauthenticated;
pub use record::{TwoFactorRecord, TwoFactorStatus};
pub use recovery::{
    LEGACY_RECOVERY_CODE_LEN, RECOVERY_CODE_ALPHABET, RECOVERY_CODE_LEN, RECOVERY_CODE_LENGTHS,
    RecoveryCodeError, RecoveryCodes, is_recovery_code_shape,
};
#[cfg(feature = "webauthn")]
pub use security_keys::{
    KeyChallenge, RelyingParty, RelyingPartyError, SecurityKeyAdded, claimed_credential_id,
};
pub use settings::*;
pub use ticket::{SecondFactorProof, Verification};
pub use transition::Transition;

/// The shared vocabulary, also reachable here (defined in [`crate::vocabulary`]).
pub use crate::vocabulary::{
    AuthenticatorId, DeviceId, FactorKind, FailureReason, KeyCeremony, LoginContext,
    SecurityKeyFailure, UserId,
};
