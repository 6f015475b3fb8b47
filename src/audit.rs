//! The audit trail: typed [`AuditEvent`]s, recorded through an [`AuditSink`] after the change
//! they describe was saved.
//!
//! Events never contain secrets, codes or tokens. They are where the reasons live that callers
//! do not see: a caller gets one [`InvalidCode`](crate::service::Error::InvalidCode), the audit
//! trail says whether the code was wrong, replayed or late.
//!
//! [`TracingAudit`] (the default) emits each event through `tracing` under the target
//! `twofactor::audit`; [`RecordingAudit`](crate::testing::RecordingAudit) keeps them in memory for tests.

use crate::mail::NoticeKind;
use crate::vocabulary::{
    AuthenticatorId, DeviceId, FactorKind, FailureReason, KeyCeremony, LoginContext,
    SecurityKeyFailure, UserId,
};

/// Which sensitive operation a code was checked for (other than login and enrollment, which
/// have their own events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Operation {
    /// Starting to replace the authenticator.
    Rotation,
    /// Turning 2FA off.
    Disable,
    /// New recovery codes.
    RegenerateRecoveryCodes,
    /// Proving the second factor again (step-up), with no login.
    StepUp,
    /// Starting to add another authenticator.
    AddAuthenticator,
    /// Removing one authenticator (not the last).
    RemoveAuthenticator,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum AuditKind {
    /// An enrollment (or a rotation) was started; a secret is pending.
    EnrollmentStarted {
        /// When the pending secret expires.
        expires_at: u64,
        /// Whether it will replace an active authenticator.
        rotation: bool,
    },
    /// An administrator provisioned a secret and it was mailed to the user.
    EnrollmentProvisionedByMail {
        /// The administrator.
        admin: UserId,
        /// When the pending secret expires.
        expires_at: u64,
    },
    /// An authenticator was confirmed: 2FA is on.
    Enrolled,
    /// A confirming code was refused.
    EnrollmentFailed {
        /// Why.
        reason: FailureReason,
    },
    /// The user abandoned a pending enrollment.
    EnrollmentCancelled,
    /// A new authenticator replaced the active one.
    Rotated {
        /// Trusted devices revoked with the old authenticator.
        devices_revoked: usize,
    },
    /// A second factor was accepted at login.
    LoginSucceeded {
        /// Which.
        factor: FactorKind,
    },
    /// A second factor was refused at login.
    LoginFailed {
        /// What was submitted.
        factor: FactorKind,
        /// Why it was refused (wrong, replayed, challenge expired, malformed, ...).
        reason: FailureReason,
    },
    /// A code check was refused without looking at the code: too many recent checks.
    LoginThrottled {
        /// When checks are admitted again.
        retry_at: u64,
    },
    /// A code for a sensitive operation (rotation, disabling) was refused.
    VerificationFailed {
        /// The operation.
        operation: Operation,
        /// What was submitted.
        factor: FactorKind,
        /// Why.
        reason: FailureReason,
    },
    /// A login without 2FA was allowed because the grace period has not ended.
    GracePeriodLogin {
        /// When the grace period ends.
        enroll_by: u64,
    },
    /// The policy exempted the user from 2FA at this login.
    PolicyExemptionApplied {
        /// The policy's reason.
        reason: String,
    },
    /// A login was stopped until the user enrolls.
    LoginBlockedUntilEnrolled,
    /// A trusted-device token was presented but is unknown, expired or revoked.
    DeviceTokenRefused,
    /// A recovery code was used.
    RecoveryCodeUsed {
        /// Unused codes left.
        remaining: usize,
    },
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesRegenerated,
    /// Every login ticket and second-factor proof of the user issued so far was revoked (a
    /// password change, or the host's own reason).
    LoginTicketsRevoked,
    /// The user proved a second factor again (step-up), with no login.
    SecondFactorVerified {
        /// The factor proved.
        factor: FactorKind,
    },
    /// An enrollment was started while the same one was pending: the same secret and expiry
    /// were shown again.
    EnrollmentResumed {
        /// When the resumed enrollment expires.
        expires_at: u64,
    },
    /// A device was trusted.
    DeviceTrusted {
        /// Its id.
        device: DeviceId,
    },
    /// A trusted device was revoked.
    DeviceRevoked {
        /// Its id.
        device: DeviceId,
    },
    /// Every trusted device was revoked.
    AllDevicesRevoked {
        /// How many.
        count: usize,
    },
    /// A login code was handed to the mailer (a [`NoticeFailed`](Self::NoticeFailed) for
    /// [`NoticeKind::LoginCode`] follows if it could not be sent).
    CodeMailed {
        /// When it expires.
        expires_at: u64,
    },
    /// A login code was not mailed: too many sent recently.
    MailThrottled {
        /// When one may be sent again.
        retry_at: u64,
    },
    /// The user turned 2FA off.
    Disabled {
        /// Trusted devices revoked with it.
        devices_revoked: usize,
    },
    /// An administrator reset the user's 2FA.
    ResetByAdmin {
        /// The administrator.
        admin: UserId,
        /// Trusted devices revoked with it.
        devices_revoked: usize,
    },
    /// An administrator invited the user to enable 2FA.
    InvitationSent {
        /// The administrator.
        admin: UserId,
    },
    /// Another authenticator was added (the others are unchanged).
    AuthenticatorAdded {
        /// Its id.
        authenticator: AuthenticatorId,
        /// The label the user gave it.
        label: String,
    },
    /// An authenticator was removed (the others are unchanged; removing the last one is
    /// recorded as `Disabled` too).
    AuthenticatorRemoved {
        /// Its id.
        authenticator: AuthenticatorId,
        /// Its label.
        label: String,
    },
    /// An authenticator was renamed.
    AuthenticatorRenamed {
        /// Its id.
        authenticator: AuthenticatorId,
        /// The old label.
        from: String,
        /// The new label.
        to: String,
    },
    /// A TOTP code from this authenticator was accepted (after the `LoginSucceeded`,
    /// `SecondFactorVerified` or the sensitive operation it was for).
    AuthenticatorUsed {
        /// Which one.
        authenticator: AuthenticatorId,
    },
    /// The clock offset learned for an authenticator changed (two consecutive codes agreed
    /// on a new one; see the manual's "Clock drift").
    ClockOffsetLearned {
        /// Which one.
        authenticator: AuthenticatorId,
        /// The offset before, in seconds (positive: the device's clock is ahead).
        from_seconds: i64,
        /// The offset now, in seconds.
        to_seconds: i64,
    },
    /// A security key ceremony started (registration, login or step-up): its state is kept in
    /// the record until it expires or is used.
    SecurityKeyCeremonyStarted {
        /// Which ceremony.
        ceremony: KeyCeremony,
        /// When it expires.
        expires_at: u64,
    },
    /// A security key's answer was refused (nothing was saved).
    SecurityKeyRefused {
        /// In which ceremony.
        ceremony: KeyCeremony,
        /// Why.
        reason: SecurityKeyFailure,
    },
    /// A security key's signature counter went backwards: the key may have been cloned. The
    /// answer was refused. Alert on it; the user may remove the key.
    SecurityKeyPossiblyCloned {
        /// Which key.
        authenticator: AuthenticatorId,
    },
    /// A notice could not be delivered (the change it describes was saved).
    NoticeFailed {
        /// Which notice.
        notice: NoticeKind,
    },
}

impl AuditKind {
    /// Whether this records a refused replay of a TOTP code (a used recovery code is audited
    /// as a wrong code: see [`FailureReason::Replayed`]).
    #[must_use]
    pub const fn is_replay(&self) -> bool {
        matches!(
            self,
            AuditKind::LoginFailed {
                reason: FailureReason::Replayed,
                ..
            } | AuditKind::VerificationFailed {
                reason: FailureReason::Replayed,
                ..
            } | AuditKind::EnrollmentFailed {
                reason: FailureReason::Replayed
            }
        )
    }

    /// Whether this records a refusal, failure or throttle (for alerting).
    #[must_use]
    pub const fn is_failure(&self) -> bool {
        matches!(
            self,
            AuditKind::EnrollmentFailed { .. }
                | AuditKind::LoginFailed { .. }
                | AuditKind::LoginThrottled { .. }
                | AuditKind::VerificationFailed { .. }
                | AuditKind::DeviceTokenRefused
                | AuditKind::MailThrottled { .. }
                | AuditKind::NoticeFailed { .. }
                | AuditKind::SecurityKeyRefused { .. }
                | AuditKind::SecurityKeyPossiblyCloned { .. }
        )
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct AuditEvent {
    /// Whose 2FA it concerns.
    pub user: UserId,
    /// When (Unix seconds, the operation's `now`).
    pub at: u64,
    /// What happened.
    pub kind: AuditKind,
    /// The request's context, for login operations.
    pub context: Option<LoginContext>,
}

impl AuditEvent {
    /// An event.
    #[must_use]
    pub fn new(user: UserId, at: u64, kind: AuditKind, context: Option<LoginContext>) -> Self {
        AuditEvent {
            user,
            at,
            kind,
            context,
        }
    }
}

/// Where audit events go. Called after the change was saved; must not block for long (queue
/// to slow storage yourself).
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

impl<A: AuditSink + ?Sized> AuditSink for std::sync::Arc<A> {
    fn record(&self, event: &AuditEvent) {
        (**self).record(event);
    }
}

impl<A: AuditSink + ?Sized> AuditSink for &A {
    fn record(&self, event: &AuditEvent) {
        (**self).record(event);
    }
}

/// Emits every event through `tracing` (target `twofactor::audit`): failures at `WARN`, the
/// rest at `INFO`. The default sink.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAudit;

impl AuditSink for TracingAudit {
    fn record(&self, event: &AuditEvent) {
        // A dropped trail is never silent: with no subscriber installed, the events go to
        // standard error (one line each, no secrets), with a one-time note on how to choose.
        let unheard =
            tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>());
        if unheard {
            static NOTE: std::sync::Once = std::sync::Once::new();
            NOTE.call_once(|| {
                eprintln!(
                    "twofactor: no tracing subscriber is installed, so audit events are written \
                     to standard error; choose their destination with TwoFactorBuilder::audit"
                );
            });
            eprintln!(
                "twofactor audit: at={} user={} kind={:?}",
                event.at, event.user, event.kind
            );
            return;
        }
        let ip = event
            .context
            .as_ref()
            .and_then(|c| c.ip)
            .map(|ip| ip.to_string());
        if event.kind.is_failure() {
            tracing::warn!(
                target: "twofactor::audit",
                kind = ?event.kind,
                at = event.at,
                user.id = %event.user,
                client.ip = ip.as_deref(),
                "2fa audit"
            );
        } else {
            tracing::info!(
                target: "twofactor::audit",
                kind = ?event.kind,
                at = event.at,
                user.id = %event.user,
                client.ip = ip.as_deref(),
                "2fa audit"
            );
        }
    }
}
