//! [`TwoFactorRecord`]: all mutable 2FA state of one user.

use core::fmt;

use crate::otp::Totp;
use crate::policy::EnrollmentStatus;
use crate::seal::SecretSlot;

use super::UserId;
use super::devices::TrustedDevice;
use super::login::LoginChallenge;
use super::mailed::MailedCode;
use super::recovery::RecoveryCodeSet;
use super::throttle::RateLimit;

/// The confirmed authenticator.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct ActiveFactor {
    pub(crate) secret: SecretSlot,
    pub(crate) totp: Totp,
    pub(crate) enrolled_at: u64,
    /// The last accepted time step of this secret: replay protection.
    pub(crate) last_used_step: Option<u64>,
}

/// An enrollment (or rotation) waiting for its confirming code.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct PendingEnrollment {
    pub(crate) secret: SecretSlot,
    pub(crate) totp: Totp,
    pub(crate) started_at: u64,
    /// Valid while `now < expires_at`.
    pub(crate) expires_at: u64,
    /// The administrator who provisioned it by mail, if one did.
    pub(crate) provisioned_by: Option<UserId>,
}

/// All mutable 2FA state of one user: the only thing a [`UserStore`](crate::UserStore) keeps.
///
/// Its fields are private; transitions (methods returning a [`Transition`](super::Transition))
/// are the only way to change it, and read-only accessors describe it. Serializable with the
/// `serde` feature (secrets as base32, digests as hex); unknown-to-old-versions fields default.
///
/// `Debug` never prints secrets, digests or codes.
///
/// ```
/// use twofactor::TwoFactorRecord;
///
/// let record = TwoFactorRecord::default(); // a user without 2FA
/// assert!(!record.is_enrolled());
/// assert_eq!(record.recovery_codes_left(), 0);
/// ```
#[derive(Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct TwoFactorRecord {
    pub(crate) active: Option<ActiveFactor>,
    pub(crate) pending: Option<PendingEnrollment>,
    pub(crate) recovery: Option<RecoveryCodeSet>,
    pub(crate) devices: Vec<TrustedDevice>,
    pub(crate) mailed: Option<MailedCode>,
    /// A login waiting for a mailed code (TOTP and recovery-code logins store none; a stale one
    /// left by an older version is ignored and cleared by the next successful login).
    pub(crate) challenge: Option<LoginChallenge>,
    /// A login that `begin_login` answered with `MustEnroll`: a successful enrollment while it
    /// is open completes it.
    pub(crate) login_awaiting_enrollment: Option<LoginChallenge>,
    pub(crate) code_checks: RateLimit,
    pub(crate) mail_sends: RateLimit,
    /// When the user last completed a login with a mailed code: the proof that lets an
    /// unenrolled user enroll under a mailed-code policy (see
    /// [`TwoFactorRecord::start_enrollment`]). Cleared by a successful enrollment.
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) mailed_code_login_at: Option<u64>,
}

impl fmt::Debug for TwoFactorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorRecord")
            .field("enrolled_at", &self.enrolled_at())
            .field(
                "pending_enrollment_expires_at",
                &self.pending_enrollment_expires_at(),
            )
            .field("recovery_codes_left", &self.recovery_codes_left())
            .field("trusted_devices", &self.devices.len())
            .field("mailed_code_pending", &self.mailed.is_some())
            .field("login_pending", &self.challenge.is_some())
            .field(
                "login_awaiting_enrollment",
                &self.login_awaiting_enrollment.is_some(),
            )
            .finish_non_exhaustive()
    }
}

/// A summary of a user's 2FA set-up, for account pages and admin screens (never secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct TwoFactorStatus {
    /// When the active authenticator was confirmed; `None` when 2FA is off.
    pub enrolled_at: Option<u64>,
    /// When the pending enrollment expires, if one is waiting and not expired.
    pub pending_enrollment_expires_at: Option<u64>,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Trusted devices not yet expired.
    pub trusted_devices: usize,
    /// Until when code checks are refused, if they are.
    pub throttled_until: Option<u64>,
}

impl TwoFactorStatus {
    /// Whether an authenticator is active.
    #[must_use]
    pub const fn is_enrolled(&self) -> bool {
        self.enrolled_at.is_some()
    }
}

impl TwoFactorRecord {
    /// Whether an authenticator is confirmed and active.
    #[must_use]
    pub fn is_enrolled(&self) -> bool {
        self.active.is_some()
    }

    /// When the active authenticator was confirmed.
    #[must_use]
    pub fn enrolled_at(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.enrolled_at)
    }

    /// What an [`EnforcementPolicy`](crate::EnforcementPolicy) may know about this user.
    #[must_use]
    pub fn enrollment_status(&self) -> EnrollmentStatus {
        match self.enrolled_at() {
            Some(t) => EnrollmentStatus::enrolled_at(t),
            None => EnrollmentStatus::unenrolled(),
        }
    }

    /// When the pending enrollment expires (whether or not it already has).
    #[must_use]
    pub fn pending_enrollment_expires_at(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.expires_at)
    }

    /// When the pending enrollment was started.
    #[must_use]
    pub fn pending_enrollment_started_at(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.started_at)
    }

    /// The administrator who provisioned the pending enrollment by mail, if one did.
    #[must_use]
    pub fn pending_enrollment_provisioned_by(&self) -> Option<&UserId> {
        self.pending
            .as_ref()
            .and_then(|p| p.provisioned_by.as_ref())
    }

    /// The TOTP parameters of the active authenticator.
    #[must_use]
    pub fn totp(&self) -> Option<Totp> {
        self.active.as_ref().map(|a| a.totp)
    }

    /// The last accepted TOTP time step (replay protection).
    #[must_use]
    pub fn last_used_step(&self) -> Option<u64> {
        self.active.as_ref().and_then(|a| a.last_used_step)
    }

    /// Unused recovery codes.
    #[must_use]
    pub fn recovery_codes_left(&self) -> usize {
        self.recovery.as_ref().map_or(0, RecoveryCodeSet::remaining)
    }

    /// A summary at `now`, for account pages.
    #[must_use]
    pub fn status(&self, now: u64, settings: &super::Settings) -> TwoFactorStatus {
        TwoFactorStatus {
            enrolled_at: self.enrolled_at(),
            pending_enrollment_expires_at: self
                .pending
                .as_ref()
                .filter(|p| now < p.expires_at)
                .map(|p| p.expires_at),
            recovery_codes_left: self.recovery_codes_left(),
            trusted_devices: self.devices.iter().filter(|d| now < d.expires_at).count(),
            throttled_until: self.code_checks.blocked_until(
                now,
                settings.code_checks_per_window,
                settings.code_check_window,
            ),
        }
    }

    /// Clears every factor and everything derived from one: active and pending secrets,
    /// recovery codes, trusted devices, pending mailed code and logins. Keeps the throttles.
    /// Returns the labels of the trusted devices it revoked.
    pub(crate) fn clear_factors(&mut self) -> Vec<String> {
        self.active = None;
        self.pending = None;
        self.recovery = None;
        self.mailed = None;
        self.challenge = None;
        self.login_awaiting_enrollment = None;
        self.devices.drain(..).map(|d| d.label).collect()
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;
    use crate::account::crypto::TestRng;
    use crate::account::{Reauthenticated, Settings};

    #[test]
    fn serde_round_trip_keeps_everything_and_debug_hides_secrets() {
        let settings = Settings::default();
        let mut rng = TestRng(7);
        let record = TwoFactorRecord::default();
        let t = record
            .start_enrollment(
                100,
                &crate::Requirement::required(),
                Reauthenticated::at(100),
                "alice",
                &settings,
                &mut rng,
            )
            .unwrap();
        let json = serde_json::to_string(t.record()).unwrap();
        let back: TwoFactorRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.pending_enrollment_expires_at(), Some(1_000));
        let secret = t
            .record()
            .pending
            .as_ref()
            .unwrap()
            .secret
            .open()
            .unwrap()
            .to_base32();
        assert!(json.contains(secret.as_str()));
        assert!(!format!("{:?}", t.record()).contains(secret.as_str()));
        // Old or partial documents load with defaults.
        let empty: TwoFactorRecord = serde_json::from_str("{}").unwrap();
        assert!(!empty.is_enrolled());
    }
}
