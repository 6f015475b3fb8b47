//! [`TwoFactorRecord`]: all mutable 2FA state of one user.

use core::fmt;

use crate::otp::Totp;
use crate::policy::EnrollmentStatus;
use crate::vocabulary::{RecordTag, SecretSlot};

use super::UserId;
use super::authenticators::Authenticator;
#[cfg(feature = "serde")]
use super::authenticators::{DEFAULT_LABEL, TotpFactor};
use super::devices::TrustedDevice;
use super::login::LoginChallenge;
use super::mailed::{MailedCode, OutgoingCode};
use super::recovery::RecoveryCodeSet;
use super::throttle::RateLimit;
#[cfg(feature = "serde")]
use super::{
    mailed::{MailedCodeWire, OutgoingCodeWire},
    recovery::RecoveryCodeSetWire,
};

/// The confirmed authenticator of a record of formats 1 to 4 (one per user), as those
/// formats store it: decoded into one [`Authenticator`], and written again only to check the
/// tag of such a row.
#[cfg(feature = "serde")]
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActiveFactor {
    pub(crate) secret: SecretSlot,
    pub(crate) totp: Totp,
    pub(crate) enrolled_at: u64,
    /// The last accepted time step of this secret: replay protection.
    #[serde(deserialize_with = "required")]
    pub(crate) last_used_step: Option<u64>,
}

#[cfg(feature = "serde")]
impl ActiveFactor {
    /// The one authenticator of an old record: the default label, an id derived from its
    /// confirmation time (the same at every load of a row never saved again), no offset.
    fn into_authenticator(self) -> Authenticator {
        Authenticator::totp(
            super::authenticators::legacy_id(self.enrolled_at),
            DEFAULT_LABEL.to_owned(),
            self.enrolled_at,
            TotpFactor::new(self.secret, self.totp, self.last_used_step),
        )
    }

    /// The old form of an authenticator decoded from it (for tag checks of old rows).
    #[cfg(feature = "serde")]
    fn from_authenticator(a: &Authenticator) -> Option<Self> {
        let t = a.totp_factor()?;
        Some(ActiveFactor {
            secret: t.secret.clone(),
            totp: t.params,
            enrolled_at: a.created_at,
            last_used_step: t.last_used_step,
        })
    }
}

/// What a pending enrollment is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub(crate) enum PendingPurpose {
    /// The first authenticator: 2FA goes on.
    Enroll,
    /// Another authenticator beside the existing ones.
    Add,
    /// A new secret for the authenticator with this id (a new phone).
    Replace(crate::vocabulary::AuthenticatorId),
}

/// An enrollment (or rotation) waiting for its confirming code.
#[derive(Clone)]
pub(crate) struct PendingEnrollment {
    pub(crate) secret: SecretSlot,
    pub(crate) totp: Totp,
    pub(crate) started_at: u64,
    /// Valid while `now < expires_at`.
    pub(crate) expires_at: u64,
    /// The administrator who provisioned it by mail, if one did.
    pub(crate) provisioned_by: Option<UserId>,
    /// What confirming it does.
    pub(crate) purpose: PendingPurpose,
    /// The label of the authenticator it will be.
    pub(crate) label: String,
}

/// A pending enrollment as stored (format 4 has `purpose` and `label`; formats 1 to 4 do not).
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingWire {
    secret: SecretSlot,
    totp: Totp,
    started_at: u64,
    expires_at: u64,
    #[serde(deserialize_with = "required")]
    provisioned_by: Option<UserId>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    purpose: Option<PendingPurpose>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    label: Option<String>,
}

#[cfg(feature = "serde")]
impl PendingEnrollment {
    /// The stored form: with purpose and label (format 5) or without (older formats).
    fn wire(&self, current: bool) -> PendingWire {
        PendingWire {
            secret: self.secret.clone(),
            totp: self.totp,
            started_at: self.started_at,
            expires_at: self.expires_at,
            provisioned_by: self.provisioned_by.clone(),
            purpose: current.then(|| self.purpose.clone()),
            label: current.then(|| self.label.clone()),
        }
    }
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
/// A JSON object with `"v": 8` and every field present (`null` or `[]` when empty), in a
/// fixed order: `authenticators` (since format 5, in place of format 1's `active`: each with
/// its `id`, `label`, `created_at`, `last_used_at` and `factor`, `{"totp": {secret, params,
/// last_used_step, clock_offset, offset_candidate}}` or, since format 6, `{"security_key":
/// {credential}}`, webauthn-rs's credential as it serialises it), the other eight fields of
/// format 1
/// (`pending` with its `purpose` and `label` since format 5; `recovery` as `{"hash",
/// "symbols", "salt", "generated_at", "digests", "used_at"}` since format 8, the digests and
/// the times of use as two arrays of one length, where formats 2 to 7 wrote `codes`, a list
/// of `{"digest", "used_at"}`), then `mailed_code_login_at`
/// (format 2), then `tickets` (`{"generation", "used", "through", "at_through"}`: the ticket
/// generation, the used tickets an older row listed (`[{"nonce", "expires_at"}]`, never added
/// to since format 7), and since format 7 the issue second of the last ticket that completed
/// a login and the nonces used in that second) and
/// `mailed_login_required` (format 3), then `outgoing` (a mailed code stored before its mailer
/// answered, with its `delivery`: `"sending"` or `"not_sent"`) and `mail_attempts` (the send
/// attempts, delivered or not, of the last window) (format 4), then `key_ceremonies` (format
/// 6: the WebAuthn ceremonies waiting for an answer, `{"registration": .., "authentication":
/// ..}`), then `mac`; nothing else. A security key or a ceremony in a build without the
/// `webauthn` feature is an error too (the row cannot be used there; it fails closed).
/// Decoding is strict: a missing field, an unknown field (at any depth), a value of the wrong
/// type or another version is an error, never a record "with no factor" (which would read as
/// "this user has no 2FA"); so are two authenticators with one id or one label, an id or a
/// label of the wrong shape, more than
/// [`Settings::MAX_MAX_AUTHENTICATORS`](super::Settings::MAX_MAX_AUTHENTICATORS)
/// authenticators, a clock offset beyond its bound, and two security keys with one credential
/// id. Stores report it as a corrupt row and
/// the login fails closed. Encoding is canonical: decoding and re-encoding gives the same
/// bytes, which is what [`SealedStore`](crate::seal::SealedStore) authenticates.
///
/// Older rows load, and are written in the current format by their next save:
/// - Format 7 (`"v": 7`): the fields above with the recovery set's `codes` list (the same
///   values, one object per code).
/// - Format 6 (`"v": 6`): as format 7 without `tickets.through` and
///   `tickets.at_through`; its listed used tickets stay refused until they expire.
/// - Format 5 (`"v": 5`): as format 6 without `key_ceremonies`; it loads with no ceremony
///   waiting.
/// - Formats 1 to 4 hold one `active` factor (or `null`): it becomes one authenticator
///   labelled "Authenticator app" ([`DEFAULT_LABEL`](super::DEFAULT_LABEL)), created when it
///   was confirmed, with its replay step, no clock offset, never used as far as the record
///   knows, and an id derived from its confirmation time, so every load of a row that is never
///   saved again gives the same id. A pending enrollment beside it replaces it when confirmed
///   (as it did), one without it is the first enrollment.
/// - Format 4 (`"v": 4`): exactly its fifteen fields. Format 3 (`"v": 3`, thirteen) loads with
///   no outgoing code (its mailed code was delivered) and no send attempts counted; format 2
///   (`"v": 2`, eleven) also with no used tickets, generation 0.
/// - Format 1, written before the version field existed: an object **without** `"v"` and
///   without `"mac"` is accepted only if it has exactly the nine fields format 1 always wrote
///   (`active`, `pending`, `recovery`, `devices`, `mailed`, `challenge`,
///   `login_awaiting_enrollment`, `code_checks`, `mail_sends`), each present, with the same
///   strict nested shapes, and the recovery set and mailed code in their format-1 shape (no
///   `hash` scheme, no `symbols`: salted SHA-256 over 10-symbol recovery codes).
///
/// Each format has exactly its own fields; formats never mix.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use twofactor::account::TwoFactorRecord;
///
/// let json = serde_json::to_string(&TwoFactorRecord::default()).unwrap();
/// assert!(json.starts_with(r#"{"v":8,"authenticators":[]"#));
/// assert!(json.ends_with(r#""key_ceremonies":{"registration":null,"authentication":null},"mac":null}"#));
/// assert!(serde_json::from_str::<TwoFactorRecord>(&json).is_ok());
/// // Not a record this crate wrote: refused, never "no 2FA".
/// for bad in ["{}", "[]", "null", r#"{"v":8}"#, r#"{"v":9,"authenticators":[]}"#] {
///     assert!(serde_json::from_str::<TwoFactorRecord>(bad).is_err());
/// }
/// # }
/// ```
#[derive(Clone, Default)]
pub struct TwoFactorRecord {
    /// The confirmed authenticators, in the order they were added (at most
    /// [`Settings::MAX_MAX_AUTHENTICATORS`](super::Settings::MAX_MAX_AUTHENTICATORS)).
    pub(crate) authenticators: Vec<Authenticator>,
    pub(crate) pending: Option<PendingEnrollment>,
    pub(crate) recovery: Option<RecoveryCodeSet>,
    pub(crate) devices: Vec<TrustedDevice>,
    /// The mailed code that reached the user (as far as the mailer said).
    pub(crate) mailed: Option<MailedCode>,
    /// A login waiting for a mailed code (TOTP and recovery-code logins store none; a stale one
    /// left by an older version is ignored and cleared by the next successful login).
    pub(crate) challenge: Option<LoginChallenge>,
    /// A login that `start_login` answered with `MustEnroll`: a successful enrollment while it
    /// is open completes it.
    pub(crate) login_awaiting_enrollment: Option<LoginChallenge>,
    pub(crate) code_checks: RateLimit,
    /// Mailed codes sent (a send that failed is taken back).
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
    /// A mailed code stored before its mailer answered (format 4): on its way (accepted, it
    /// may have arrived) or not sent (never accepted). See [`CodeSend`](super::CodeSend).
    pub(crate) outgoing: Option<OutgoingCode>,
    /// Every attempt to mail a code, delivered or not (format 4).
    pub(crate) mail_attempts: RateLimit,
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
    /// The format of the row it was decoded from, if older than the current one and newer
    /// than format 1 (not stored; cleared when saved): a tag made under an older format covers
    /// that format's encoding, which [`encode_as_stored`](Self::encode_as_stored) reproduces
    /// for a store that does not keep the stored text.
    pub(crate) older_format: Option<u32>,
    /// The WebAuthn ceremonies waiting for the browser's answer (format 6): server-side,
    /// single-use, expiring (see [`security_keys`](super::security_keys)).
    pub(crate) key_ceremonies: super::security_keys::KeyCeremonies,
}

/// The current stored format (see [`TwoFactorRecord`]'s "Stored format").
#[cfg(feature = "serde")]
const FORMAT: u32 = 8;

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

/// The stored form, field order fixed (the canonical encoding), in format `v`: the fields of
/// a later format are left out of an older one.
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
struct WireOut<'a> {
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<Option<ActiveFactor>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authenticators: Option<&'a [Authenticator]>,
    pending: Option<PendingWire>,
    recovery: Option<super::recovery::RecoveryCodeSetOut<'a>>,
    devices: &'a [TrustedDevice],
    mailed: &'a Option<MailedCode>,
    challenge: &'a Option<LoginChallenge>,
    login_awaiting_enrollment: &'a Option<LoginChallenge>,
    code_checks: &'a RateLimit,
    mail_sends: &'a RateLimit,
    mailed_code_login_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tickets: Option<super::ticket::TicketLedgerOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mailed_login_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outgoing: Option<&'a Option<OutgoingCode>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mail_attempts: Option<&'a RateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_ceremonies: Option<&'a super::security_keys::KeyCeremonies>,
    mac: &'a Option<RecordTag>,
}

/// The format each field after format 1's nine first appears in.
#[cfg(feature = "serde")]
mod since {
    pub(super) const MAC: u32 = 2;
    pub(super) const MAILED_CODE_LOGIN_AT: u32 = 2;
    pub(super) const TICKETS: u32 = 3;
    pub(super) const MAILED_LOGIN_REQUIRED: u32 = 3;
    pub(super) const OUTGOING: u32 = 4;
    pub(super) const MAIL_ATTEMPTS: u32 = 4;
    /// `authenticators` (in place of `active`), and a pending enrollment's `purpose` and
    /// `label`.
    pub(super) const AUTHENTICATORS: u32 = 5;
    /// The WebAuthn ceremonies waiting for an answer (security keys).
    pub(super) const KEY_CEREMONIES: u32 = 6;
    /// `tickets` keeps the issue second of the last used ticket (`through`, `at_through`).
    pub(super) const TICKETS_THROUGH: u32 = 7;
    /// The recovery set's digests and times of use as two arrays (`digests`, `used_at`).
    pub(super) const RECOVERY_COLUMNS: u32 = 8;
}

/// The shape format `v` writes a recovery set in.
#[cfg(feature = "serde")]
fn recovery_shape(v: u32) -> super::recovery::RecoveryShape {
    use super::recovery::RecoveryShape;
    match v {
        1 => RecoveryShape::Legacy,
        v if v >= since::RECOVERY_COLUMNS => RecoveryShape::Columns,
        _ => RecoveryShape::Entries,
    }
}

#[cfg(feature = "serde")]
impl TwoFactorRecord {
    /// The record as format `v` (2 or later) writes it.
    fn wire(&self, v: u32) -> WireOut<'_> {
        let has = |since: u32| v >= since;
        let current = has(since::AUTHENTICATORS);
        WireOut {
            v,
            active: (!current).then(|| {
                self.authenticators
                    .first()
                    .and_then(ActiveFactor::from_authenticator)
            }),
            authenticators: current.then_some(self.authenticators.as_slice()),
            pending: self.pending.as_ref().map(|p| p.wire(current)),
            recovery: self.recovery.as_ref().map(|r| r.wire(recovery_shape(v))),
            devices: &self.devices,
            mailed: &self.mailed,
            challenge: &self.challenge,
            login_awaiting_enrollment: &self.login_awaiting_enrollment,
            code_checks: &self.code_checks,
            mail_sends: &self.mail_sends,
            mailed_code_login_at: self.mailed_code_login_at,
            tickets: has(since::TICKETS).then(|| self.tickets.wire(!has(since::TICKETS_THROUGH))),
            mailed_login_required: has(since::MAILED_LOGIN_REQUIRED)
                .then_some(self.mailed_login_required),
            outgoing: has(since::OUTGOING).then_some(&self.outgoing),
            mail_attempts: has(since::MAIL_ATTEMPTS).then_some(&self.mail_attempts),
            key_ceremonies: has(since::KEY_CEREMONIES).then_some(&self.key_ceremonies),
            mac: &self.mac,
        }
    }

    /// Writes the record in the format it was decoded from: that older format for a record
    /// read from a row of format 2 to 4 (whose tag covers that encoding; its one authenticator
    /// written back as the `active` factor it was), the current format otherwise. Only tag checks use it; saves always write the current format.
    pub(crate) fn encode_as_stored<W: std::io::Write>(&self, out: W) -> serde_json::Result<()> {
        serde_json::to_writer(out, &self.wire(self.older_format.unwrap_or(FORMAT)))
    }
}

/// What decoding accepts: formats 2 to 5, or format 1 (no `v`, no `mac`), each with exactly
/// its own fields.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    #[serde(default, deserialize_with = "present")]
    v: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    active: Option<Option<ActiveFactor>>,
    #[serde(default, deserialize_with = "present")]
    authenticators: Option<Vec<Authenticator>>,
    #[serde(deserialize_with = "required")]
    pending: Option<PendingWire>,
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
    tickets: Option<super::ticket::TicketLedgerWire>,
    #[serde(default, deserialize_with = "present")]
    mailed_login_required: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    outgoing: Option<Option<OutgoingCodeWire>>,
    #[serde(default, deserialize_with = "present")]
    mail_attempts: Option<RateLimit>,
    #[serde(default, deserialize_with = "present")]
    key_ceremonies: Option<super::security_keys::KeyCeremonies>,
    #[serde(default, deserialize_with = "present")]
    mac: Option<Option<RecordTag>>,
}

#[cfg(feature = "serde")]
impl serde::Serialize for TwoFactorRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.wire(FORMAT).serialize(serializer)
    }
}

/// Checks the authenticators of a decoded record: at most the documented maximum, ids of the
/// right shape, ids and labels unique, labels valid, clock offsets within their bound.
#[cfg(feature = "serde")]
fn check_authenticators(list: &[Authenticator]) -> Result<(), &'static str> {
    use super::authenticators::{check_label, is_valid_id, offset_bound};
    if list.len() > super::Settings::MAX_MAX_AUTHENTICATORS {
        return Err("too many authenticators");
    }
    for (i, a) in list.iter().enumerate() {
        if !is_valid_id(&a.id) {
            return Err("an authenticator id of the wrong shape");
        }
        if check_label(&a.label).as_deref() != Ok(a.label.as_str()) {
            return Err("an authenticator label that is not valid");
        }
        if let Some(t) = a.totp_factor() {
            let bound = offset_bound(&t.params);
            let in_bound = |o: i8| i64::from(o).abs() <= bound.max(0);
            if !in_bound(t.clock_offset) || !t.offset_candidate.is_none_or(in_bound) {
                return Err("a clock offset beyond its bound");
            }
        }
        for b in &list[..i] {
            if b.id == a.id || b.label.to_lowercase() == a.label.to_lowercase() {
                return Err("two authenticators with the same id or label");
            }
            #[cfg(feature = "webauthn")]
            if let (Some(x), Some(y)) = (a.security_key(), b.security_key())
                && x.credential.cred_id() == y.credential.cred_id()
            {
                return Err("two security keys with the same credential id");
            }
        }
    }
    Ok(())
}

/// A field that appeared in format `since`: present exactly in the formats that have it.
#[cfg(feature = "serde")]
fn in_format<T, E: serde::de::Error>(
    field: Option<T>,
    name: &'static str,
    since: u32,
    format: u32,
) -> Result<Option<T>, E> {
    match (field, format >= since) {
        (Some(value), true) => Ok(Some(value)),
        (None, false) => Ok(None),
        (None, true) => Err(E::missing_field(name)),
        (Some(_), false) => Err(E::custom(format_args!(
            "a format-{format} record with `{name}`, a field of format {since}"
        ))),
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TwoFactorRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = WireIn::deserialize(deserializer)?;
        // Format 1 has no version field; each format has exactly its own fields.
        let format = match w.v {
            None => 1,
            Some(v @ 2..=FORMAT) => v,
            Some(v) => {
                return Err(D::Error::custom(format_args!(
                    "unsupported record format {v} (this version reads 1 to {FORMAT})"
                )));
            }
        };
        let mac = in_format(w.mac, "mac", since::MAC, format)?.flatten();
        let mailed_code_login_at = in_format(
            w.mailed_code_login_at,
            "mailed_code_login_at",
            since::MAILED_CODE_LOGIN_AT,
            format,
        )?
        .flatten();
        let tickets = in_format(w.tickets, "tickets", since::TICKETS, format)?
            .map(|t| {
                super::ticket::TicketLedger::from_wire(t, format < since::TICKETS_THROUGH)
                    .map_err(D::Error::custom)
            })
            .transpose()?;
        let mailed_login_required = in_format(
            w.mailed_login_required,
            "mailed_login_required",
            since::MAILED_LOGIN_REQUIRED,
            format,
        )?;
        let outgoing = in_format(w.outgoing, "outgoing", since::OUTGOING, format)?.flatten();
        let mail_attempts = in_format(
            w.mail_attempts,
            "mail_attempts",
            since::MAIL_ATTEMPTS,
            format,
        )?;
        let key_ceremonies = in_format(
            w.key_ceremonies,
            "key_ceremonies",
            since::KEY_CEREMONIES,
            format,
        )?;
        // Formats 1 to 4 hold one `active` factor (or none), formats 5 and 6 a list.
        let authenticators = match (format >= since::AUTHENTICATORS, w.authenticators, w.active) {
            (true, Some(list), None) => {
                check_authenticators(&list).map_err(D::Error::custom)?;
                list
            }
            (false, None, Some(active)) => active
                .map(ActiveFactor::into_authenticator)
                .into_iter()
                .collect(),
            (true, None, _) => return Err(D::Error::missing_field("authenticators")),
            (false, _, None) => return Err(D::Error::missing_field("active")),
            (_, Some(_), Some(_)) => {
                return Err(D::Error::custom(
                    "a record with both `active` and `authenticators`",
                ));
            }
        };
        let pending = match w.pending {
            None => None,
            Some(p) => {
                let purpose = in_format(p.purpose, "purpose", since::AUTHENTICATORS, format)?;
                let label = in_format(p.label, "label", since::AUTHENTICATORS, format)?;
                let (purpose, label) = match (purpose, label) {
                    (Some(purpose), Some(label)) => (purpose, label),
                    // Before format 5, a pending enrollment beside an active factor was a
                    // rotation of it, and otherwise the first enrollment.
                    _ => match authenticators.first() {
                        Some(a) => (PendingPurpose::Replace(a.id.clone()), a.label.clone()),
                        None => (PendingPurpose::Enroll, DEFAULT_LABEL.to_owned()),
                    },
                };
                Some(PendingEnrollment {
                    secret: p.secret,
                    totp: p.totp,
                    started_at: p.started_at,
                    expires_at: p.expires_at,
                    provisioned_by: p.provisioned_by,
                    purpose,
                    label,
                })
            }
        };
        let legacy = format == 1;
        let recovery = w
            .recovery
            .map(|r| r.into_set(recovery_shape(format)))
            .transpose()
            .map_err(D::Error::custom)?;
        let mailed = w
            .mailed
            .map(|m| m.into_code(legacy))
            .transpose()
            .map_err(D::Error::custom)?;
        let outgoing = outgoing
            .map(OutgoingCodeWire::into_outgoing)
            .transpose()
            .map_err(D::Error::custom)?;
        Ok(TwoFactorRecord {
            authenticators,
            pending,
            recovery,
            devices: w.devices,
            // A mailed code of an older format was delivered: nothing was stored before its
            // mailer answered then.
            mailed,
            challenge: w.challenge,
            login_awaiting_enrollment: w.login_awaiting_enrollment,
            code_checks: w.code_checks,
            mail_sends: w.mail_sends,
            mailed_code_login_at,
            tickets: tickets.unwrap_or_default(),
            mailed_login_required: mailed_login_required.unwrap_or(false),
            outgoing,
            mail_attempts: mail_attempts.unwrap_or_default(),
            mac,
            format_1: legacy,
            older_format: (format > 1 && format < FORMAT).then_some(format),
            key_ceremonies: key_ceremonies.unwrap_or_default(),
        })
    }
}

impl fmt::Debug for TwoFactorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorRecord")
            .field("enrolled_at", &self.enrolled_at())
            .field("authenticators", &self.authenticators.len())
            .field(
                "pending_enrollment_expires_at",
                &self.pending_enrollment_expires_at(),
            )
            .field("recovery_codes_left", &self.recovery_codes_left())
            .field("trusted_devices", &self.devices.len())
            .field(
                "mailed_code_pending",
                &self.acceptable_codes().next().is_some(),
            )
            .field("mailed_code_not_sent", &self.outgoing_not_sent())
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
    /// When 2FA was turned on (the oldest authenticator's creation); `None` when 2FA is off.
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
    /// Whether the policy requires a phishing-resistant factor of this user
    /// ([`Requirement::PhishingResistant`](crate::Requirement::PhishingResistant)) and they
    /// have no security key yet: an account page says "add a security key now" (the axum
    /// module does). Filled in by `TwoFactor::status_for(&principal)`; `None` from
    /// `status(&user)`.
    pub needs_security_key: Option<bool>,
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
        !self.authenticators.is_empty()
    }

    /// When 2FA was turned on: the creation time of the oldest authenticator (replacing an
    /// authenticator makes it new).
    #[must_use]
    pub fn enrolled_at(&self) -> Option<u64> {
        self.authenticators.iter().map(|a| a.created_at).min()
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

    /// The TOTP parameters of the first TOTP authenticator (each has its own: see
    /// [`authenticators`](Self::authenticators)).
    #[must_use]
    pub fn totp(&self) -> Option<Totp> {
        self.authenticators
            .iter()
            .find_map(|a| a.totp_factor())
            .map(|t| t.params)
    }

    /// The last accepted TOTP time step of the first TOTP authenticator (replay protection
    /// is per authenticator).
    #[must_use]
    pub fn last_used_step(&self) -> Option<u64> {
        self.authenticators
            .iter()
            .find_map(|a| a.totp_factor())
            .and_then(|t| t.last_used_step)
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
            needs_security_key: None,
            throttled_until: self.code_checks.blocked_until(
                now,
                settings.code_checks_per_window,
                settings.code_check_window,
            ),
        }
    }

    /// Clears every factor and everything derived from one: every authenticator, the pending secret,
    /// recovery codes, trusted devices, pending mailed code and logins. Keeps the throttles.
    /// Returns the labels of the trusted devices it revoked.
    pub(crate) fn clear_factors(&mut self) -> Vec<String> {
        self.authenticators.clear();
        self.key_ceremonies = Default::default();
        self.pending = None;
        self.recovery = None;
        self.clear_mailed_codes();
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
