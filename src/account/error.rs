//! How transitions fail: [`DomainError`] (nothing happened) and [`Refusal`] (a code was
//! refused; the attempt itself is kept and audited).

use crate::otp::CodeError;

use super::recovery::RecoveryCodeError;
use crate::vocabulary::FailureReason;

/// A precondition of a transition does not hold. The record is unchanged and there is nothing
/// to record: retrying with the same input fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The user has no active authenticator.
    #[error("two-factor authentication is not enabled")]
    NotEnrolled,
    /// The user already has an active authenticator (rotate it, or disable it first).
    #[error("two-factor authentication is already enabled")]
    AlreadyEnrolled,
    /// There is no enrollment waiting for its confirming code.
    #[error("no enrollment is pending")]
    NoPendingEnrollment,
    /// There is no login waiting for a mailed code.
    #[error("no login is pending")]
    NoPendingLogin,
    /// The [`PendingLogin`](super::PendingLogin) passed to `finish_login` (or
    /// `resend_mailed_code`) has expired: nothing was checked or counted. Log in again.
    #[error("the login has expired")]
    LoginExpired,
    /// A login ticket ([`PendingLogin`](super::PendingLogin)) that this deployment did not
    /// issue, or that was altered (any edit, another kind of token, another server key).
    /// Nothing was checked, counted or saved.
    #[error("the login ticket is not valid; log in again")]
    InvalidTicket,
    /// A [`SecondFactorProof`](super::SecondFactorProof) that this deployment did not issue,
    /// that was altered, or that is for another user or revoked. Nothing was changed.
    #[error("the second-factor proof is not valid")]
    InvalidProof,
    /// A [`SecondFactorProof`](super::SecondFactorProof) sealed by a version of this crate
    /// before proofs carried assurance claims (encoding version 1). Proofs live minutes: ask
    /// for the second factor again (the service maps it to
    /// `Error::SecondFactorRequired`).
    #[error("the second-factor proof is of an outdated format; verify the second factor again")]
    OutdatedProof,
    /// The policy requires two-factor authentication for this user: it cannot be turned off.
    #[error("two-factor authentication is required for this account")]
    RequiredByPolicy,
    /// The password check is missing or too old for this operation.
    #[error("re-authentication required")]
    ReauthenticationRequired,
    /// A second factor is needed first: the policy asks this unenrolled user for a mailed
    /// code and no proof of one from this session (younger than
    /// [`Settings::reauth_max_age`](super::Settings::reauth_max_age)) was given, so the
    /// password alone may not enroll an authenticator (log in with the mailed code first and
    /// pass its proof); or a [`SecondFactorProof`](super::SecondFactorProof) given to a
    /// sensitive call is too old or of a factor that call does not take.
    #[error("a login with the mailed code is required first")]
    SecondFactorRequired,
    /// No trusted device has this id.
    #[error("unknown device")]
    UnknownDevice,
    /// None of the user's authenticators has this id.
    #[error("unknown authenticator")]
    UnknownAuthenticator,
    /// The user has several authenticators: name the one to replace
    /// ([`TwoFactorRecord::start_replacing_authenticator`](super::TwoFactorRecord::start_replacing_authenticator)).
    #[error("several authenticators: name the one to replace")]
    AuthenticatorNotNamed,
    /// The label is not one a user may give an authenticator.
    #[error("invalid authenticator label: {0}")]
    InvalidLabel(#[source] super::LabelError),
    /// Another authenticator of the user has this label (case ignored).
    #[error("another authenticator already has this label")]
    LabelTaken,
    /// The user already has as many authenticators as
    /// [`Settings::max_authenticators`](super::Settings::max_authenticators) allows.
    #[error("at most {max} authenticators per user")]
    TooManyAuthenticators {
        /// The limit.
        max: usize,
    },
    /// The account name cannot go into an `otpauth://` URI (empty, or `:` without an issuer).
    #[error("invalid account name for the authenticator app: {0}")]
    InvalidAccountName(#[source] crate::provision::UriError),
    /// The provisioning URI does not fit in a QR code (issuer and account names of well over a
    /// thousand bytes).
    #[error("the issuer and account names are too long for a QR code")]
    NamesTooLong,
    /// A key or secret given to [`ServiceKeys`](super::ServiceKeys) is unusable (too short).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The random number generator failed: fail closed.
    #[error("the random number generator failed")]
    Rng,
    /// The TOTP secret this operation needs is sealed (encrypted at rest): the record was
    /// loaded without the cipher. Read the store through
    /// [`SealedStore`](crate::seal::SealedStore). Fails closed; nothing is changed.
    #[error("the stored TOTP secret is sealed and was not opened")]
    SecretSealed,
    /// The stored recovery codes or mailed code were hashed under a
    /// [`CodeKey`](super::CodeKey) these settings do not hold (a key rotated out too early, or
    /// the key not configured on this server). Fails closed: nothing is checked or changed.
    /// Configure the key (as an old key after a rotation) and retry.
    #[error("the stored codes were hashed under code key {key_id}, which is not configured")]
    UnknownCodeKey {
        /// The missing key's [`id`](super::CodeKey::id).
        key_id: String,
    },
    /// A security key operation could not run (feature `webauthn`): not configured, no
    /// ceremony waiting, or the key is already registered. Nothing was changed.
    #[error("security key: {0}")]
    SecurityKey(#[source] crate::vocabulary::SecurityKeyFailure),
    /// The policy requires a phishing-resistant factor (a security key) of this user, and
    /// this call offered another (see [`Requirement::PhishingResistant`]).
    ///
    /// [`Requirement::PhishingResistant`]: crate::Requirement::PhishingResistant
    #[error("a security key is required for this account")]
    PhishingResistantRequired,
}

/// Input that is not a code at all: wrong characters or length. Not counted against the
/// throttle (nothing was checked) but audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedInput {
    /// Not a TOTP or mailed code of the expected length.
    #[error("malformed code: {0}")]
    Code(#[from] CodeError),
    /// Not a recovery code.
    #[error("malformed recovery code: {0}")]
    RecoveryCode(#[from] RecoveryCodeError),
    /// Neither a TOTP code nor a recovery code ([`Factor::parse`](super::Factor::parse)).
    #[error("malformed code: {0}")]
    Factor(#[from] super::FactorParseError),
}

/// A code check that did not pass. The [`Transition`](super::Transition) carrying it still holds
/// the counted attempt and the audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Checked and refused; the reason is for the audit trail only.
    #[error("invalid code")]
    Invalid(FailureReason),
    /// Not a code at all: not checked, not counted.
    #[error(transparent)]
    Malformed(MalformedInput),
    /// Too many checks recently; nothing was checked.
    #[error("too many attempts; retry at {retry_at}")]
    Throttled {
        /// Unix time from which a check is admitted again.
        retry_at: u64,
    },
    /// A security key's answer was refused (feature `webauthn`); audited with the reason.
    /// Nothing was saved.
    #[error("security key refused: {0}")]
    SecurityKey(crate::vocabulary::SecurityKeyFailure),
}

impl Refusal {
    /// The audit reason, if the refusal came from a check.
    #[must_use]
    pub const fn reason(&self) -> Option<FailureReason> {
        match self {
            Refusal::Invalid(r) => Some(*r),
            Refusal::Malformed(_) => Some(FailureReason::Malformed),
            Refusal::Throttled { .. } | Refusal::SecurityKey(_) => None,
        }
    }
}

/// The outcome of a transition that checks a code: the value, or why the code was refused.
pub type Checked<T> = Result<T, Refusal>;
