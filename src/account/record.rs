//! [`TwoFactorRecord`]: all mutable 2FA state of one user.

use core::fmt;

use crate::otp::Totp;
use crate::policy::EnrollmentStatus;
use crate::vocabulary::{RecordTag, SecretSlot};

use super::UserId;
use super::devices::TrustedDevice;
use super::login::LoginChallenge;
use super::mailed::MailedCode;
use super::recovery::RecoveryCodeSet;
use super::throttle::RateLimit;
#[cfg(feature = "serde")]
use super::{mailed::MailedCodeWire, recovery::RecoveryCodeSetWire};

/// The confirmed authenticator.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct ActiveFactor {
    pub(crate) secret: SecretSlot,
    pub(crate) totp: Totp,
    pub(crate) enrolled_at: u64,
    /// The last accepted time step of this secret: replay protection.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "required"))]
    pub(crate) last_used_step: Option<u64>,
}

/// An enrollment (or rotation) waiting for its confirming code.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct PendingEnrollment {
    pub(crate) secret: SecretSlot,
    pub(crate) totp: Totp,
    pub(crate) started_at: u64,
    /// Valid while `now < expires_at`.
    pub(crate) expires_at: u64,
    /// The administrator who provisioned it by mail, if one did.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "required"))]
    pub(crate) provisioned_by: Option<UserId>,
}

/// All mutable 2FA state of one user: the only thing a [`UserStore`](crate::UserStore) keeps.
///
/// Its fields are private; transitions (methods returning a [`Transition`](super::Transition))
/// are the only way to change it, and read-only accessors describe it. Serializable with the
/// `serde` feature (secrets as base32, digests as hex) in a strict, versioned format: see
/// [Stored format](#stored-format).
///
/// `Debug` never prints secrets, digests or codes.
///
/// ```
/// use twofactor::account::TwoFactorRecord;
///
/// let record = TwoFactorRecord::default(); // a user without 2FA
/// assert!(!record.is_enrolled());
/// assert_eq!(record.recovery_codes_left(), 0);
/// ```
///
/// # Stored format
///
/// A JSON object with `"v": 3` and every field present (`null` or `[]` when empty), in a
/// fixed order: the nine fields of format 1, then `mailed_code_login_at` (format 2), then
/// `tickets` (the ticket generation and the used tickets) and `mailed_login_required`
/// (format 3), then `mac`; nothing else. Rows of format 2 (exactly its eleven fields, `"v": 2`)
/// load with no used tickets, generation 0, and are written as format 3 by their next save. Decoding is strict: a missing field, an unknown field (at any
/// depth), a value of the wrong type or another version is an error, never a record "with no
/// factor" (which would read as "this user has no 2FA"). Stores report it as a corrupt row
/// and the login fails closed. Encoding is canonical: decoding and re-encoding gives the same
/// bytes, which is what [`SealedStore`](crate::seal::SealedStore) authenticates.
///
/// Migration rule for rows written before the version field existed (format 1): an object
/// **without** `"v"` and without `"mac"` is accepted only if it has exactly the nine fields
/// format 1 always wrote (`active`, `pending`, `recovery`, `devices`, `mailed`, `challenge`,
/// `login_awaiting_enrollment`, `code_checks`, `mail_sends`), each present, with the same
/// strict nested shapes, and the recovery set and mailed code in their format-1 shape (no
/// `hash` scheme, no `symbols`: salted SHA-256 over 10-symbol recovery codes). Format 2
/// requires those fields; the two formats never mix. A format-1 row is re-encoded as format
/// 2 by its next save.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use twofactor::account::TwoFactorRecord;
///
/// let json = serde_json::to_string(&TwoFactorRecord::default()).unwrap();
/// assert!(json.starts_with(r#"{"v":3,"active":null"#));
/// assert!(serde_json::from_str::<TwoFactorRecord>(&json).is_ok());
/// // Not a record this crate wrote: refused, never "no 2FA".
/// for bad in ["{}", "[]", "null", r#"{"v":3}"#, r#"{"v":4,"active":null}"#] {
///     assert!(serde_json::from_str::<TwoFactorRecord>(bad).is_err());
/// }
/// # }
/// ```
#[derive(Clone, Default)]
pub struct TwoFactorRecord {
    pub(crate) active: Option<ActiveFactor>,
    pub(crate) pending: Option<PendingEnrollment>,
    pub(crate) recovery: Option<RecoveryCodeSet>,
    pub(crate) devices: Vec<TrustedDevice>,
    pub(crate) mailed: Option<MailedCode>,
    /// A login waiting for a mailed code (TOTP and recovery-code logins store none; a stale one
    /// left by an older version is ignored and cleared by the next successful login).
    pub(crate) challenge: Option<LoginChallenge>,
    /// A login that `start_login` answered with `MustEnroll`: a successful enrollment while it
    /// is open completes it.
    pub(crate) login_awaiting_enrollment: Option<LoginChallenge>,
    pub(crate) code_checks: RateLimit,
    pub(crate) mail_sends: RateLimit,
    /// When the user last completed a login with a mailed code (for the record only: since
    /// format 3, what lets a session enroll under a mailed-code policy is the
    /// [`SecondFactorProof`](super::SecondFactorProof) of that login, see
    /// [`TwoFactorRecord::start_enrollment`]). Cleared by a successful enrollment.
    pub(crate) mailed_code_login_at: Option<u64>,
    /// The generation of login tickets and proofs, and the tickets that completed a login.
    pub(crate) tickets: super::ticket::TicketLedger,
    /// Whether `start_login` asked this (unenrolled) user for a mailed code: enrolling then
    /// needs a proof of a mailed code whatever principal the host passes. Cleared when the
    /// user enrolls.
    pub(crate) mailed_login_required: bool,
    /// The tag a [`SealedStore`](crate::seal::SealedStore) wrote over the rest of the record
    /// (`None` in a record it loaded, and under a bare store).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) mac: Option<RecordTag>,
    /// Whether the record was decoded from a format-1 row (no `"v"`: written before record
    /// tags existed), the only kind of row [`SealedStore::accept_untagged`] lets through
    /// without a tag. Never stored: `false` in every record built, or saved by a store.
    ///
    /// [`SealedStore::accept_untagged`]: crate::seal::SealedStore::accept_untagged
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) format_1: bool,
    /// Decoded from a format-2 row (not stored; cleared when saved): a tag made before
    /// format 3 covers the format-2 encoding, which [`encode_as_stored`](Self::encode_as_stored)
    /// reproduces for a store that does not keep the stored text.
    pub(crate) format_2: bool,
}

/// The current stored format (see [`TwoFactorRecord`]'s "Stored format").
#[cfg(feature = "serde")]
const FORMAT: u32 = 3;

/// Deserializes a field with no default: `Option` fields become required (`null` allowed,
/// absent refused), which serde otherwise makes optional.
#[cfg(feature = "serde")]
pub(crate) fn required<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer)
}

/// `Some(value)` when the field is present (`null` refused for the version).
#[cfg(feature = "serde")]
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The stored form, field order fixed (the canonical encoding).
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
struct WireOut<'a> {
    v: u32,
    active: &'a Option<ActiveFactor>,
    pending: &'a Option<PendingEnrollment>,
    recovery: &'a Option<RecoveryCodeSet>,
    devices: &'a [TrustedDevice],
    mailed: &'a Option<MailedCode>,
    challenge: &'a Option<LoginChallenge>,
    login_awaiting_enrollment: &'a Option<LoginChallenge>,
    code_checks: &'a RateLimit,
    mail_sends: &'a RateLimit,
    mailed_code_login_at: Option<u64>,
    tickets: &'a super::ticket::TicketLedger,
    mailed_login_required: bool,
    mac: &'a Option<RecordTag>,
}

/// A format-2 row's shape (no ticket ledger, no mailed-login flag), for checking a tag made
/// before format 3 ([`TwoFactorRecord::encode_as_stored`]).
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
struct WireOutV2<'a> {
    v: u32,
    active: &'a Option<ActiveFactor>,
    pending: &'a Option<PendingEnrollment>,
    recovery: &'a Option<RecoveryCodeSet>,
    devices: &'a [TrustedDevice],
    mailed: &'a Option<MailedCode>,
    challenge: &'a Option<LoginChallenge>,
    login_awaiting_enrollment: &'a Option<LoginChallenge>,
    code_checks: &'a RateLimit,
    mail_sends: &'a RateLimit,
    mailed_code_login_at: Option<u64>,
    mac: &'a Option<RecordTag>,
}

#[cfg(feature = "serde")]
impl TwoFactorRecord {
    /// Writes the record in the format it was decoded from: format 2 for a record read from a
    /// format-2 row (whose tag covers that encoding), the current format otherwise. Only tag
    /// checks use it; saves always write the current format.
    pub(crate) fn encode_as_stored<W: std::io::Write>(&self, out: W) -> serde_json::Result<()> {
        if !self.format_2 {
            return serde_json::to_writer(out, self);
        }
        serde_json::to_writer(
            out,
            &WireOutV2 {
                v: 2,
                active: &self.active,
                pending: &self.pending,
                recovery: &self.recovery,
                devices: &self.devices,
                mailed: &self.mailed,
                challenge: &self.challenge,
                login_awaiting_enrollment: &self.login_awaiting_enrollment,
                code_checks: &self.code_checks,
                mail_sends: &self.mail_sends,
                mailed_code_login_at: self.mailed_code_login_at,
                mac: &self.mac,
            },
        )
    }
}

/// What decoding accepts: format 2, or format 1 (no `v`, no `mac`), every field required.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    #[serde(default, deserialize_with = "present")]
    v: Option<u32>,
    #[serde(deserialize_with = "required")]
    active: Option<ActiveFactor>,
    #[serde(deserialize_with = "required")]
    pending: Option<PendingEnrollment>,
    #[serde(deserialize_with = "required")]
    recovery: Option<RecoveryCodeSetWire>,
    devices: Vec<TrustedDevice>,
    #[serde(deserialize_with = "required")]
    mailed: Option<MailedCodeWire>,
    #[serde(deserialize_with = "required")]
    challenge: Option<LoginChallenge>,
    #[serde(deserialize_with = "required")]
    login_awaiting_enrollment: Option<LoginChallenge>,
    code_checks: RateLimit,
    mail_sends: RateLimit,
    #[serde(default, deserialize_with = "present")]
    mailed_code_login_at: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    tickets: Option<super::ticket::TicketLedger>,
    #[serde(default, deserialize_with = "present")]
    mailed_login_required: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    mac: Option<Option<RecordTag>>,
}

#[cfg(feature = "serde")]
impl serde::Serialize for TwoFactorRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            v: FORMAT,
            active: &self.active,
            pending: &self.pending,
            recovery: &self.recovery,
            devices: &self.devices,
            mailed: &self.mailed,
            challenge: &self.challenge,
            login_awaiting_enrollment: &self.login_awaiting_enrollment,
            code_checks: &self.code_checks,
            mail_sends: &self.mail_sends,
            mailed_code_login_at: self.mailed_code_login_at,
            tickets: &self.tickets,
            mailed_login_required: self.mailed_login_required,
            mac: &self.mac,
        }
        .serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TwoFactorRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = WireIn::deserialize(deserializer)?;
        // Format 2 lacks the two format-3 fields; format 1 also lacks the version, the tag and
        // the mailed-login time. Each format has exactly its own fields.
        let format3 = (w.tickets, w.mailed_login_required);
        let (mac, mailed_code_login_at, tickets, mailed_login_required) =
            match (w.v, w.mac, w.mailed_code_login_at, format3) {
                (None, None, None, (None, None)) => (None, None, Default::default(), false),
                (Some(2), Some(mac), Some(at), (None, None)) => {
                    (mac, at, Default::default(), false)
                }
                (Some(FORMAT), Some(mac), Some(at), (Some(t), Some(m))) => (mac, at, t, m),
                (Some(2 | FORMAT), None, _, _) => return Err(D::Error::missing_field("mac")),
                (Some(2 | FORMAT), _, None, _) => {
                    return Err(D::Error::missing_field("mailed_code_login_at"));
                }
                (Some(FORMAT), _, _, (None, _)) => {
                    return Err(D::Error::missing_field("tickets"));
                }
                (Some(FORMAT), _, _, (_, None)) => {
                    return Err(D::Error::missing_field("mailed_login_required"));
                }
                (Some(2), _, _, _) => {
                    return Err(D::Error::custom("a format-2 record with format-3 fields"));
                }
                (None, _, _, _) => return Err(D::Error::missing_field("v")),
                (Some(v), _, _, _) => {
                    return Err(D::Error::custom(format_args!(
                        "unsupported record format {v} (this version reads 1, 2 and {FORMAT})"
                    )));
                }
            };
        let legacy = w.v.is_none();
        let recovery = w
            .recovery
            .map(|r| r.into_set(legacy))
            .transpose()
            .map_err(D::Error::custom)?;
        let mailed = w
            .mailed
            .map(|m| m.into_code(legacy))
            .transpose()
            .map_err(D::Error::custom)?;
        Ok(TwoFactorRecord {
            active: w.active,
            pending: w.pending,
            recovery,
            devices: w.devices,
            mailed,
            challenge: w.challenge,
            login_awaiting_enrollment: w.login_awaiting_enrollment,
            code_checks: w.code_checks,
            mail_sends: w.mail_sends,
            mailed_code_login_at,
            tickets,
            mailed_login_required,
            mac,
            format_1: legacy,
            format_2: w.v == Some(2),
        })
    }
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
    /// `Some(left)` when 2FA is on and at most
    /// [`Settings::recovery_codes_low_at`](super::Settings::recovery_codes_low_at) recovery
    /// codes are left (3 by default): show "generate new recovery codes".
    pub recovery_codes_low: Option<usize>,
    /// 2FA is on and no recovery code is left: the user must make new ones (every login says
    /// so too, until they do).
    pub must_regenerate_recovery_codes: bool,
    /// Trusted devices not yet expired.
    pub trusted_devices: usize,
    /// Until when code checks are refused, if they are.
    pub throttled_until: Option<u64>,
    /// Whether the policy requires 2FA of this user (then it cannot be turned off): filled in
    /// by `TwoFactor::status_for(&principal)`; `None` where no principal was asked about
    /// (`status(&user)`, the record alone).
    pub required: Option<bool>,
}

impl TwoFactorStatus {
    /// Whether an authenticator is active.
    #[must_use]
    pub const fn is_enrolled(&self) -> bool {
        self.enrolled_at.is_some()
    }

    /// The highest assurance level this user can reach (Ory Kratos' `highest_available`):
    /// AAL2 with an authenticator, AAL1 without. Require it with
    /// [`AssuranceClaims::satisfies`](super::AssuranceClaims::satisfies) to ask for the second
    /// factor exactly of the users who have one.
    #[must_use]
    pub const fn highest_available_aal(&self) -> super::Aal {
        super::Aal::highest_available(self.is_enrolled())
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
            recovery_codes_low: self.recovery_codes_low(settings),
            must_regenerate_recovery_codes: self.must_regenerate_recovery_codes(),
            trusted_devices: self.devices.iter().filter(|d| now < d.expires_at).count(),
            required: None,
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
        self.mailed_code_login_at = None;
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
                &crate::UserId::new("alice"),
                &crate::Requirement::required(),
                Reauthenticated::at(100),
                None,
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
        // Partial documents are refused, never "no 2FA".
        assert!(serde_json::from_str::<TwoFactorRecord>("{}").is_err());
    }
}
