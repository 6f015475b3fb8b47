//! Several named authenticators per user: a phone, a spare phone, a password manager.
//!
//! Each [`Authenticator`] has a random id, a label the user chooses (unique per user), its own
//! TOTP parameters and secret, its own replay step and learned clock offset, a creation and a
//! last-used time. A login code is checked against every TOTP authenticator of the user in
//! constant time over all of them; see the [manual](crate::manual#several-authenticators).

use core::fmt;

use rand::TryCryptoRng;
use subtle::ConditionallySelectable;

use crate::audit::{AuditKind, Operation};
use crate::mail::Notice;
use crate::otp::{Code, MAX_SKEW, ScanHit, Totp, scan_window_ct};
use crate::policy::Requirement;
use crate::vocabulary::{AuthenticatorId, LoginContext, SecretSlot};

use super::crypto::Bytes;
use super::enrollment::{EnrollmentStarted, PendingPurpose};
use super::{
    Checked, DomainError, FailureReason, Reauthenticated, SecondFactorProof, Settings, Transition,
    TwoFactorRecord, UserId, Verification,
};

/// The label an authenticator gets when none was chosen: the first enrollment, and the one
/// authenticator of a record written before several were possible (formats 1 to 4).
pub const DEFAULT_LABEL: &str = "Authenticator app";

/// The longest label allowed, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// The longest id a stored record may carry, in characters (the ids this crate makes have 13).
#[cfg(feature = "serde")]
const MAX_ID_CHARS: usize = 32;

/// What kind of authenticator it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum AuthenticatorKind {
    /// An RFC 6238 authenticator app (or a password manager, a hardware token) holding a TOTP
    /// secret.
    Totp,
    /// A security key (WebAuthn, feature `webauthn`): a hardware key, or a platform
    /// authenticator used as one.
    SecurityKey,
}

/// Why a label was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// Nothing but white space.
    #[error("the label is empty")]
    Empty,
    /// More than [`MAX_LABEL_CHARS`] characters (after trimming).
    #[error("the label is longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A control character (a line break, a tab, an escape...).
    #[error("the label contains a control character at position {position}")]
    ControlCharacter {
        /// Position (in characters, after trimming) of the first one.
        position: usize,
    },
}

/// Checks a label the user chose and returns it trimmed: not empty, at most
/// [`MAX_LABEL_CHARS`] characters, no control characters.
///
/// ```
/// use twofactor::account::{check_label, LabelError};
/// assert_eq!(check_label("  Work phone ")?, "Work phone");
/// assert_eq!(check_label(" "), Err(LabelError::Empty));
/// assert_eq!(check_label("a\nb"), Err(LabelError::ControlCharacter { position: 1 }));
/// # Ok::<(), LabelError>(())
/// ```
///
/// # Errors
/// [`LabelError`].
pub fn check_label(label: &str) -> Result<String, LabelError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(LabelError::Empty);
    }
    if let Some(position) = label.chars().position(char::is_control) {
        return Err(LabelError::ControlCharacter { position });
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(LabelError::TooLong {
            max: MAX_LABEL_CHARS,
        });
    }
    Ok(label.to_owned())
}

/// Whether two labels name the same authenticator for the user: compared without regard to
/// case ("Phone" and "phone" are one label).
fn same_label(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// A new random id: 64 bits, base32 lowercase without padding (13 characters).
fn random_id<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<AuthenticatorId, DomainError> {
    Ok(encode_id(&Bytes::<8>::random(rng)?.0))
}

fn encode_id(bytes: &[u8]) -> AuthenticatorId {
    AuthenticatorId::new(base32::encode(
        base32::Alphabet::Rfc4648Lower { padding: false },
        bytes,
    ))
}

/// The id of the authenticator of a record written before several were possible (formats 1
/// to 3): derived from its confirmation time, so that every load of a row never saved again
/// gives the same id (a host may keep it in a form or a session between two loads).
#[cfg(feature = "serde")]
pub(crate) fn legacy_id(enrolled_at: u64) -> AuthenticatorId {
    let digest = super::crypto::digest(
        "twofactor authenticator id v1",
        b"",
        &enrolled_at.to_be_bytes(),
    );
    encode_id(&digest.0[..8])
}

/// Whether `id` has the shape of an authenticator id (checked when a record is decoded).
#[cfg(feature = "serde")]
pub(crate) fn is_valid_id(id: &AuthenticatorId) -> bool {
    let s = id.as_str();
    !s.is_empty()
        && s.len() <= MAX_ID_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The TOTP part of an authenticator.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct TotpFactor {
    pub(crate) secret: SecretSlot,
    pub(crate) params: Totp,
    /// The last accepted time step of this secret: replay protection (absolute, never
    /// shifted by the clock offset).
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::account::required")
    )]
    pub(crate) last_used_step: Option<u64>,
    /// The learned clock offset of the device, in steps (its codes come from
    /// `now + clock_offset`): `|clock_offset| + skew <= MAX_SKEW`.
    pub(crate) clock_offset: i8,
    /// An offset seen once, not yet confirmed by a second login.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::account::required")
    )]
    pub(crate) offset_candidate: Option<i8>,
}

/// The factor an authenticator holds, by kind.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub(crate) enum AuthenticatorFactor {
    Totp(TotpFactor),
    /// Built only with the `webauthn` feature (decoded only with it, too).
    #[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
    SecurityKey(super::security_keys::SecurityKeyFactor),
}

/// One authenticator of a user, as stored.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct Authenticator {
    pub(crate) id: AuthenticatorId,
    pub(crate) label: String,
    pub(crate) created_at: u64,
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::account::required")
    )]
    pub(crate) last_used_at: Option<u64>,
    pub(crate) factor: AuthenticatorFactor,
}

/// An authenticator as listed to its user: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AuthenticatorInfo {
    id: AuthenticatorId,
    label: String,
    kind: AuthenticatorKind,
    created_at: u64,
    last_used_at: Option<u64>,
    clock_offset_steps: i8,
    period: u64,
}

impl AuthenticatorInfo {
    /// Its id, for renaming, removing, replacing, and naming it at login.
    #[must_use]
    pub fn id(&self) -> &AuthenticatorId {
        &self.id
    }
    /// The label the user chose ("Work phone").
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }
    /// What kind of authenticator it is.
    #[must_use]
    pub const fn kind(&self) -> AuthenticatorKind {
        self.kind
    }
    /// When it was confirmed (or replaced: a new secret).
    #[must_use]
    pub const fn created_at(&self) -> u64 {
        self.created_at
    }
    /// When a code from it was last accepted.
    #[must_use]
    pub const fn last_used_at(&self) -> Option<u64> {
        self.last_used_at
    }
    /// The learned clock offset of the device, in time steps (positive: its clock is ahead).
    #[must_use]
    pub const fn clock_offset_steps(&self) -> i8 {
        self.clock_offset_steps
    }
    /// The learned clock offset in seconds, about: "your phone's clock is about N seconds
    /// ahead" (positive) or behind (negative). A multiple of the TOTP period.
    #[must_use]
    pub fn clock_offset_seconds(&self) -> i64 {
        i64::from(self.clock_offset_steps).saturating_mul(i64::try_from(self.period).unwrap_or(0))
    }
}

/// A confirmed additional authenticator (see [`TwoFactorRecord::finish_adding_authenticator`]).
pub struct AddedAuthenticator {
    info: AuthenticatorInfo,
    proof: SecondFactorProof,
}

impl AddedAuthenticator {
    /// The new authenticator.
    #[must_use]
    pub fn info(&self) -> &AuthenticatorInfo {
        &self.info
    }
    /// Proof of the authenticator just confirmed (its code, verified now).
    #[must_use]
    pub fn proof(&self) -> &SecondFactorProof {
        &self.proof
    }
}

impl fmt::Debug for AddedAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddedAuthenticator")
            .field("info", &self.info)
            .field("proof", &self.proof)
            .finish()
    }
}

/// The largest clock offset (in steps) an authenticator with this skew may learn: the
/// offset plus the tolerance never exceeds [`MAX_SKEW`].
pub(crate) fn offset_bound(params: &Totp) -> i64 {
    i64::from(MAX_SKEW) - i64::from(params.skew())
}

/// `step + delta`, saturating at both ends.
fn shift(step: u64, delta: i64) -> u64 {
    if delta >= 0 {
        step.saturating_add(delta.unsigned_abs())
    } else {
        step.saturating_sub(delta.unsigned_abs())
    }
}

impl TotpFactor {
    /// A new factor: no step used yet, no offset.
    pub(crate) fn new(secret: SecretSlot, params: Totp, last_used_step: Option<u64>) -> Self {
        TotpFactor {
            secret,
            params,
            last_used_step,
            clock_offset: 0,
            offset_candidate: None,
        }
    }

    /// The steps a code is accepted for at `now`: `[n - skew, n + skew]` and, with a learned
    /// offset `o`, `[n + o - skew, n + o + skew]` (a clock set right again still works), never
    /// outside `[n - MAX_SKEW, n + MAX_SKEW]`. Returns the range to compute (the hull) and the
    /// two windows. All public values.
    pub(crate) fn windows(&self, now: u64) -> (u64, u64, [(u64, u64); 2]) {
        let n = self.params.step_at(now);
        let skew = i64::from(self.params.skew());
        let bound = offset_bound(&self.params).max(0);
        let offset = i64::from(self.clock_offset).clamp(-bound, bound);
        let max = i64::from(MAX_SKEW);
        let clamp = |d: i64| shift(n, d.clamp(-max, max));
        let base = (clamp(-skew), clamp(skew));
        let drifted = (clamp(offset - skew), clamp(offset + skew));
        (
            base.0.min(drifted.0),
            base.1.max(drifted.1),
            [base, drifted],
        )
    }

    /// Scans the accepted windows for `code` in constant time (every step of the hull is
    /// computed, whatever matches). A code of another length never matches.
    fn scan(&self, code: Code, now: u64) -> Option<ScanHit> {
        let secret = self.secret.open()?;
        let (first, last, windows) = self.windows(now);
        let digits_match = code.digits() == self.params.digits();
        Some(scan_window_ct(
            self.params.algorithm(),
            secret.expose_secret(),
            code.value(),
            self.params.digits(),
            first,
            last,
            |c| digits_match && windows.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)),
            self.last_used_step,
        ))
    }

    /// Learns from a code accepted for `step` at `now`: the offset moves to what two
    /// consecutive accepted codes agree on, within the bound. Returns `(old, new)` when it
    /// moved.
    fn learn(&mut self, step: u64, now: u64) -> Option<(i8, i8)> {
        let n = self.params.step_at(now);
        let seen = i64::try_from(i128::from(step) - i128::from(n)).unwrap_or(0);
        let bound = offset_bound(&self.params).max(0);
        let seen = i8::try_from(seen.clamp(-bound, bound)).unwrap_or(0);
        if seen == self.clock_offset {
            self.offset_candidate = None;
            return None;
        }
        if self.offset_candidate != Some(seen) {
            self.offset_candidate = Some(seen);
            return None;
        }
        let old = self.clock_offset;
        self.clock_offset = seen;
        self.offset_candidate = None;
        Some((old, seen))
    }
}

impl Authenticator {
    /// A new TOTP authenticator.
    pub(crate) fn totp(
        id: AuthenticatorId,
        label: String,
        created_at: u64,
        factor: TotpFactor,
    ) -> Self {
        Authenticator {
            id,
            label,
            created_at,
            last_used_at: None,
            factor: AuthenticatorFactor::Totp(factor),
        }
    }

    /// Its TOTP factor, if it is a TOTP authenticator.
    pub(crate) fn totp_factor(&self) -> Option<&TotpFactor> {
        match &self.factor {
            AuthenticatorFactor::Totp(t) => Some(t),
            AuthenticatorFactor::SecurityKey(_) => None,
        }
    }

    fn totp_factor_mut(&mut self) -> Option<&mut TotpFactor> {
        match &mut self.factor {
            AuthenticatorFactor::Totp(t) => Some(t),
            AuthenticatorFactor::SecurityKey(_) => None,
        }
    }

    /// Its security key, if it is one.
    #[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
    pub(crate) fn security_key(&self) -> Option<&super::security_keys::SecurityKeyFactor> {
        match &self.factor {
            AuthenticatorFactor::SecurityKey(k) => Some(k),
            AuthenticatorFactor::Totp(_) => None,
        }
    }

    #[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
    pub(crate) fn security_key_mut(
        &mut self,
    ) -> Option<&mut super::security_keys::SecurityKeyFactor> {
        match &mut self.factor {
            AuthenticatorFactor::SecurityKey(k) => Some(k),
            AuthenticatorFactor::Totp(_) => None,
        }
    }

    /// What kind it is.
    pub(crate) const fn kind(&self) -> AuthenticatorKind {
        match self.factor {
            AuthenticatorFactor::Totp(_) => AuthenticatorKind::Totp,
            AuthenticatorFactor::SecurityKey(_) => AuthenticatorKind::SecurityKey,
        }
    }

    /// What its user may see.
    pub(crate) fn info(&self) -> AuthenticatorInfo {
        let (clock_offset_steps, period) = self
            .totp_factor()
            .map_or((0, 0), |t| (t.clock_offset, t.params.period()));
        AuthenticatorInfo {
            id: self.id.clone(),
            label: self.label.clone(),
            kind: self.kind(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            clock_offset_steps,
            period,
        }
    }
}

/// Which TOTP authenticator accepted a code, and what that changed.
pub(crate) struct TotpMatch {
    pub(crate) id: AuthenticatorId,
    pub(crate) offset_change: Option<(i8, i8, u64)>,
}

impl TotpMatch {
    /// The audit events that name the authenticator used (and a learned offset).
    pub(crate) fn events(&self) -> Vec<AuditKind> {
        let mut events = vec![AuditKind::AuthenticatorUsed {
            authenticator: self.id.clone(),
        }];
        if let Some((old, new, period)) = self.offset_change {
            let seconds =
                |steps: i8| i64::from(steps).saturating_mul(i64::try_from(period).unwrap_or(0));
            events.push(AuditKind::ClockOffsetLearned {
                authenticator: self.id.clone(),
                from_seconds: seconds(old),
                to_seconds: seconds(new),
            });
        }
        events
    }
}

impl TwoFactorRecord {
    /// The user's authenticators, in the order they were added (no secrets).
    #[must_use]
    pub fn authenticators(&self) -> Vec<AuthenticatorInfo> {
        self.authenticators
            .iter()
            .map(Authenticator::info)
            .collect()
    }

    /// The authenticator with this id.
    fn authenticator_index(&self, id: &AuthenticatorId) -> Result<usize, DomainError> {
        self.authenticators
            .iter()
            .position(|a| a.id == *id)
            .ok_or(DomainError::UnknownAuthenticator)
    }

    /// Checks `label` for a new or renamed authenticator: valid, and not the label of another
    /// one of the user's (`except`: the one being renamed).
    pub(crate) fn free_label(
        &self,
        label: &str,
        except: Option<&AuthenticatorId>,
    ) -> Result<String, DomainError> {
        let label = check_label(label).map_err(DomainError::InvalidLabel)?;
        let taken = self
            .authenticators
            .iter()
            .any(|a| Some(&a.id) != except && same_label(&a.label, &label));
        if taken {
            return Err(DomainError::LabelTaken);
        }
        Ok(label)
    }

    /// A new id, different from every id of this record.
    pub(crate) fn new_authenticator_id<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<AuthenticatorId, DomainError> {
        loop {
            let id = random_id(rng)?;
            if self.authenticators.iter().all(|a| a.id != id) {
                return Ok(id);
            }
        }
    }

    /// Checks a TOTP code against every TOTP authenticator of the user (or only `only`), in
    /// constant time over all of them: every window of every authenticator is computed, the
    /// results are combined with [`subtle`] choices, and only the combined verdict is
    /// branched on. On success the matching authenticator's step is recorded as used (replay
    /// protection per authenticator), its last use and its clock offset updated.
    ///
    /// # Errors
    /// [`FailureReason::Replayed`] when the code matches only used steps,
    /// [`FailureReason::WrongCode`] otherwise, [`FailureReason::NoPendingFactor`] without an
    /// authenticator (or a sealed secret, which callers refuse earlier).
    pub(crate) fn verify_totp(
        &mut self,
        code: Code,
        now: u64,
        only: Option<&AuthenticatorId>,
    ) -> Result<TotpMatch, FailureReason> {
        let mut combined = ScanHit::none();
        let mut index = 0u64;
        let mut tried = false;
        for (i, a) in self.authenticators.iter().enumerate() {
            // Which authenticators are tried is public (the host named one, or all).
            if only.is_some_and(|id| *id != a.id) {
                continue;
            }
            // Which authenticators are security keys is public too.
            let Some(totp) = a.totp_factor() else {
                continue;
            };
            let hit = totp.scan(code, now).ok_or(FailureReason::NoPendingFactor)?;
            tried = true;
            // The first authenticator with a fresh match wins (two matching is about one in a
            // million per extra authenticator).
            let take = hit.fresh & !combined.fresh;
            index.conditional_assign(&(i as u64), take);
            combined.step.conditional_assign(&hit.step, take);
            combined.fresh |= hit.fresh;
            combined.replay |= hit.replay;
        }
        if !tried {
            return Err(FailureReason::NoPendingFactor);
        }
        combined.replay &= !combined.fresh;
        let step = combined.into_result().map_err(|e| match e {
            crate::otp::VerifyError::Replayed => FailureReason::Replayed,
            _ => FailureReason::WrongCode,
        })?;
        let a = usize::try_from(index)
            .ok()
            .and_then(|i| self.authenticators.get_mut(i))
            .ok_or(FailureReason::NoPendingFactor)?;
        a.last_used_at = Some(now);
        let id = a.id.clone();
        let t = a.totp_factor_mut().ok_or(FailureReason::NoPendingFactor)?;
        t.last_used_step = Some(step);
        let period = t.params.period();
        let offset_change = t.learn(step, now).map(|(old, new)| (old, new, period));
        Ok(TotpMatch { id, offset_change })
    }

    /// Renames an authenticator. The label is trimmed, at most [`MAX_LABEL_CHARS`]
    /// characters, without control characters, and unique among the user's authenticators
    /// (case ignored). Renaming to the same label changes nothing.
    ///
    /// # Errors
    /// [`DomainError::UnknownAuthenticator`], [`DomainError::InvalidLabel`],
    /// [`DomainError::LabelTaken`].
    pub fn rename_authenticator(
        &self,
        id: &AuthenticatorId,
        label: &str,
    ) -> Result<Transition<()>, DomainError> {
        let index = self.authenticator_index(id)?;
        let label = self.free_label(label, Some(id))?;
        let old = self.authenticators[index].label.clone();
        if old == label {
            return Ok(Transition::new(self.clone(), false, ()));
        }
        let mut next = self.clone();
        next.authenticators[index].label.clone_from(&label);
        Ok(Transition::new(next, true, ())
            .event(AuditKind::AuthenticatorRenamed {
                authenticator: id.clone(),
                from: old.clone(),
                to: label.clone(),
            })
            .notice(Notice::AuthenticatorRenamed {
                from: old,
                to: label,
            }))
    }

    /// Removes one authenticator; the others, the recovery codes and trusted devices are
    /// untouched. Needs a fresh password check and a second factor (a fresh proof, or a code
    /// from any authenticator, or a recovery code: a user who lost one of two phones removes
    /// it with the other). Removing the **last** one turns 2FA off: it is
    /// [`TwoFactorRecord::disable`], with its rules (refused where the policy requires 2FA).
    /// A pending replacement of the removed authenticator is dropped.
    ///
    /// # Errors
    /// [`DomainError::ReauthenticationRequired`], [`DomainError::NotEnrolled`],
    /// [`DomainError::UnknownAuthenticator`], [`DomainError::RequiredByPolicy`] (the last
    /// one), [`DomainError::InvalidProof`], [`DomainError::SecondFactorRequired`]. A refused
    /// code comes back in the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn remove_authenticator(
        &self,
        now: u64,
        user: &UserId,
        id: &AuthenticatorId,
        requirement: &Requirement,
        reauth: Reauthenticated,
        verification: Verification<'_>,
        settings: &Settings,
    ) -> Result<Transition<Checked<()>>, DomainError> {
        if !reauth.is_fresh(now, settings.reauth_max_age) {
            return Err(DomainError::ReauthenticationRequired);
        }
        if self.authenticators.is_empty() {
            return Err(DomainError::NotEnrolled);
        }
        self.authenticator_index(id)?;
        if self.authenticators.len() == 1 {
            let t = self.disable(now, user, requirement, reauth, verification, settings)?;
            let label = self.authenticators[0].label.clone();
            let removed = t.outcome().is_ok();
            let mut t = t;
            if removed {
                t = t.event(AuditKind::AuthenticatorRemoved {
                    authenticator: id.clone(),
                    label,
                });
            }
            return Ok(t);
        }
        let checked = self.check_verification(
            now,
            user,
            verification,
            Operation::RemoveAuthenticator,
            settings,
        )?;
        let (mut next, used) = match checked {
            Ok(next) => next,
            Err(t) => return Ok((*t).map(Err)),
        };
        // The verification may have changed the record (a step used): find it again.
        let index = next.authenticator_index(id)?;
        let removed = next.authenticators.remove(index);
        if next
            .pending
            .as_ref()
            .is_some_and(|p| p.purpose == PendingPurpose::Replace(id.clone()))
        {
            next.pending = None;
        }
        let recovery_left = next.recovery_codes_left();
        next.code_checks.reset();
        let mut t = Transition::new(next, true, Ok(())).events_from(used);
        if verification.is_recovery_code() {
            t = t.recovery_code_used(recovery_left, Some(&LoginContext::new()), settings);
        }
        Ok(t.event(AuditKind::AuthenticatorRemoved {
            authenticator: removed.id,
            label: removed.label.clone(),
        })
        .notice(Notice::AuthenticatorRemoved {
            label: removed.label,
        }))
    }

    /// Starts adding another authenticator (a spare phone, a password manager) to an enrolled
    /// user: needs a fresh password check **and** a second factor of `user` (a fresh proof,
    /// or a code from an existing authenticator or a recovery code), a label the user chose
    /// (see [`rename_authenticator`](Self::rename_authenticator) for the rules), and room
    /// under [`Settings::max_authenticators`]. Confirm it with a code from the **new**
    /// authenticator through [`finish_adding_authenticator`](Self::finish_adding_authenticator);
    /// the existing authenticators, recovery codes and trusted devices are not touched.
    /// Replaces any pending enrollment. For the first authenticator use
    /// [`start_enrollment`](Self::start_enrollment).
    ///
    /// # Errors
    /// [`DomainError::ReauthenticationRequired`], [`DomainError::NotEnrolled`],
    /// [`DomainError::InvalidLabel`], [`DomainError::LabelTaken`],
    /// [`DomainError::TooManyAuthenticators`], [`DomainError::InvalidProof`],
    /// [`DomainError::SecondFactorRequired`], [`DomainError::InvalidAccountName`],
    /// [`DomainError::NamesTooLong`], [`DomainError::Rng`]. A refused code comes back in the
    /// outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn start_adding_authenticator<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        label: &str,
        reauth: Reauthenticated,
        verification: Verification<'_>,
        account: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<EnrollmentStarted>>, DomainError> {
        if !reauth.is_fresh(now, settings.reauth_max_age) {
            return Err(DomainError::ReauthenticationRequired);
        }
        if self.authenticators.is_empty() {
            return Err(DomainError::NotEnrolled);
        }
        let label = self.free_label(label, None)?;
        if self.authenticators.len() >= settings.max_authenticators {
            return Err(DomainError::TooManyAuthenticators {
                max: settings.max_authenticators,
            });
        }
        self.verified_pending(
            now,
            user,
            verification,
            Operation::AddAuthenticator,
            PendingPurpose::Add,
            label,
            account,
            settings,
            rng,
        )
    }

    /// After a second factor of `user` (checked, counted): a new pending enrollment for
    /// `purpose`, the started enrollment in the outcome.
    #[allow(clippy::too_many_arguments)]
    fn verified_pending<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        verification: Verification<'_>,
        operation: Operation,
        purpose: PendingPurpose,
        label: String,
        account: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<EnrollmentStarted>>, DomainError> {
        let checked = self.check_verification(now, user, verification, operation, settings)?;
        let (mut next, used) = match checked {
            Ok(next) => next,
            Err(t) => return Ok((*t).map(Err)),
        };
        let recovery_left = next.recovery_codes_left();
        next.code_checks.reset();
        let rotation = matches!(purpose, PendingPurpose::Replace(_));
        let (next, started) = next.new_pending(
            now,
            settings.pending_enrollment_ttl,
            None,
            purpose,
            label,
            account,
            settings,
            rng,
        )?;
        let expires_at = started.expires_at();
        let mut t = Transition::new(next, true, Ok(started)).events_from(used);
        if verification.is_recovery_code() {
            t = t.recovery_code_used(recovery_left, Some(&LoginContext::new()), settings);
        }
        Ok(t.event(AuditKind::EnrollmentStarted {
            expires_at,
            rotation,
        }))
    }

    /// Confirms a pending additional authenticator (from
    /// [`start_adding_authenticator`](Self::start_adding_authenticator)) with a code from it.
    /// It is added after the others, which are not touched (nor the recovery codes, nor the
    /// trusted devices); its confirming step is recorded as used. The user is notified.
    ///
    /// # Errors
    /// [`DomainError::NoPendingEnrollment`] when no additional authenticator is pending (or
    /// it expired), [`DomainError::LabelTaken`] / [`DomainError::TooManyAuthenticators`] when
    /// another was added or renamed meanwhile, [`DomainError::SecretSealed`],
    /// [`DomainError::Rng`]. A refused code comes back in the outcome.
    pub fn finish_adding_authenticator<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        code: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<AddedAuthenticator>>, DomainError> {
        let pending = match &self.pending {
            Some(p) if now < p.expires_at && p.purpose == PendingPurpose::Add => p,
            _ => return Err(DomainError::NoPendingEnrollment),
        };
        if self.authenticators.is_empty() {
            return Err(DomainError::NoPendingEnrollment);
        }
        let label = self.free_label(&pending.label, None)?;
        if self.authenticators.len() >= settings.max_authenticators {
            return Err(DomainError::TooManyAuthenticators {
                max: settings.max_authenticators,
            });
        }
        let (mut next, step) = match self.check_pending_code(now, code, settings)? {
            Ok(ok) => ok,
            Err(t) => return Ok(*t),
        };
        let id = next.new_authenticator_id(rng)?;
        let mut added = Authenticator::totp(
            id.clone(),
            label.clone(),
            now,
            TotpFactor::new(pending.secret.clone(), pending.totp, Some(step)),
        );
        added.last_used_at = Some(now);
        let info = added.info();
        next.authenticators.push(added);
        next.pending = None;
        next.code_checks.reset();
        let proof = next.issue_proof_naming(
            user,
            super::FactorKind::Totp,
            now,
            None,
            Some(&id),
            settings,
            rng,
        )?;
        Ok(
            Transition::new(next, true, Ok(AddedAuthenticator { info, proof }))
                .event(AuditKind::AuthenticatorAdded {
                    authenticator: id,
                    label: label.clone(),
                })
                .notice(Notice::AuthenticatorAdded { label }),
        )
    }

    /// Starts replacing one named authenticator (a new phone for "Work phone"): as
    /// [`start_rotation`](Self::start_rotation), for the authenticator `id`. Confirmed with
    /// [`finish_enrollment`](Self::finish_enrollment), the new secret takes its place under a
    /// new id, with its label and a fresh clock offset; the other authenticators stay.
    ///
    /// # Errors
    /// As [`start_rotation`](Self::start_rotation), and
    /// [`DomainError::UnknownAuthenticator`].
    #[allow(clippy::too_many_arguments)]
    pub fn start_replacing_authenticator<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        id: &AuthenticatorId,
        reauth: Reauthenticated,
        verification: Verification<'_>,
        account: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<EnrollmentStarted>>, DomainError> {
        if !reauth.is_fresh(now, settings.reauth_max_age) {
            return Err(DomainError::ReauthenticationRequired);
        }
        if self.authenticators.is_empty() {
            return Err(DomainError::NotEnrolled);
        }
        let replaced = &self.authenticators[self.authenticator_index(id)?];
        // A security key is replaced by registering a new one and removing the old.
        if replaced.totp_factor().is_none() {
            return Err(DomainError::UnknownAuthenticator);
        }
        let label = replaced.label.clone();
        self.verified_pending(
            now,
            user,
            verification,
            Operation::Rotation,
            PendingPurpose::Replace(id.clone()),
            label,
            account,
            settings,
            rng,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::crypto::TestRng;
    use crate::account::enrollment::tests::{T0, enrolled_record};
    use crate::otp::Secret;

    /// A record enrolled at `T0` with a second authenticator (`label`) holding `secret` with
    /// `params`, confirmed at `T0` too (no step used yet).
    fn with_second(secret: &Secret, params: Totp, label: &str) -> TwoFactorRecord {
        let mut r = enrolled_record(T0);
        let id = r.new_authenticator_id(&mut TestRng(99)).unwrap();
        r.authenticators.push(Authenticator::totp(
            id,
            label.to_owned(),
            T0,
            TotpFactor::new(secret.clone().into(), params, None),
        ));
        r
    }

    fn secret(byte: u8) -> Secret {
        Secret::from_bytes(vec![byte; 20]).unwrap()
    }

    fn code_at(secret: &Secret, params: Totp, step: u64) -> Code {
        params.generate_at_step(secret, step)
    }

    #[test]
    fn a_code_of_the_second_authenticator_logs_in_and_names_it_and_only_it() {
        let params = Totp::default();
        let s2 = secret(7);
        let mut r = with_second(&s2, params, "Spare phone");
        let first_step = r.authenticators[0].totp_factor().unwrap().last_used_step;
        let now = T0 + 90;
        let m = r
            .verify_totp(code_at(&s2, params, params.step_at(now)), now, None)
            .unwrap();
        assert_eq!(m.id, r.authenticators[1].id);
        assert_eq!(
            r.authenticators[1].totp_factor().unwrap().last_used_step,
            Some(params.step_at(now))
        );
        assert_eq!(r.authenticators[1].last_used_at, Some(now));
        // The first authenticator's replay state is untouched.
        assert_eq!(
            r.authenticators[0].totp_factor().unwrap().last_used_step,
            first_step
        );
        assert_eq!(
            m.events(),
            [AuditKind::AuthenticatorUsed {
                authenticator: r.authenticators[1].id.clone()
            }]
        );
        // Named: only that authenticator is tried.
        let next = params.step_at(now) + 1;
        let first = r.authenticators[0].id.clone();
        assert_eq!(
            r.verify_totp(code_at(&s2, params, next), now + 30, Some(&first))
                .err(),
            Some(FailureReason::WrongCode)
        );
        let second = r.authenticators[1].id.clone();
        assert!(
            r.verify_totp(code_at(&s2, params, next), now + 30, Some(&second))
                .is_ok()
        );
    }

    #[test]
    fn the_same_code_is_accepted_once_per_authenticator_step() {
        // Two authenticators that happen to show the same code (here: the same secret, as a
        // user who scanned one QR code into two apps and then added it twice would not get,
        // but two secrets agree on a step about once in a million).
        let params = Totp::default();
        let shared = secret(9);
        let mut r = enrolled_record(T0);
        r.authenticators.clear();
        for (i, label) in ["A", "B"].into_iter().enumerate() {
            r.authenticators.push(Authenticator::totp(
                legacy_id(i as u64),
                label.to_owned(),
                T0,
                TotpFactor::new(shared.clone().into(), params, None),
            ));
        }
        let now = T0 + 300;
        let code = code_at(&shared, params, params.step_at(now));
        let ids: Vec<_> = r.authenticators.iter().map(|a| a.id.clone()).collect();
        assert_eq!(r.verify_totp(code, now, None).unwrap().id, ids[0]);
        assert_eq!(r.verify_totp(code, now, None).unwrap().id, ids[1]);
        assert_eq!(
            r.verify_totp(code, now, None).err(),
            Some(FailureReason::Replayed)
        );
        // A code of another length never matches (an 8-digit authenticator and 6 digits).
        let eight = Totp::builder().digits(8).build().unwrap();
        let mut r = with_second(&shared, eight, "Eight");
        let six = Code::parse(
            &format!(
                "{:06}",
                code_at(&shared, eight, params.step_at(now)).value() % 1_000_000
            ),
            6,
        )
        .unwrap();
        assert_eq!(
            r.verify_totp(six, now, Some(&r.authenticators[1].id.clone()))
                .err(),
            Some(FailureReason::WrongCode)
        );
    }

    #[test]
    fn a_drifting_clock_is_learned_after_two_consistent_codes_within_the_bound() {
        let params = Totp::default(); // skew 1
        let s2 = secret(3);
        let mut r = with_second(&s2, params, "Old phone");
        let mut now = T0 + 600;
        let second = r.authenticators[1].id.clone();
        let login = |r: &mut TwoFactorRecord, now: u64, ahead: i64| {
            let step = shift(params.step_at(now), ahead);
            r.verify_totp(code_at(&s2, params, step), now, Some(&second))
        };
        // One step ahead: accepted (the skew), not learned yet.
        let m = login(&mut r, now, 1).unwrap();
        assert!(m.offset_change.is_none());
        assert_eq!(
            r.authenticators[1].totp_factor().unwrap().offset_candidate,
            Some(1)
        );
        now += 120;
        // The second consistent observation moves the offset: audited, shown in seconds.
        let m = login(&mut r, now, 1).unwrap();
        assert_eq!(m.offset_change, Some((0, 1, 30)));
        assert!(m.events().contains(&AuditKind::ClockOffsetLearned {
            authenticator: second.clone(),
            from_seconds: 0,
            to_seconds: 30,
        }));
        assert_eq!(r.authenticators()[1].clock_offset_seconds(), 30);
        // Two steps ahead is now within reach; the phone drifts on, the offset follows.
        for ahead in 2..=12 {
            now += 120;
            let accepted = login(&mut r, now, ahead);
            let offset = i64::from(r.authenticators[1].totp_factor().unwrap().clock_offset);
            assert!(offset.abs() <= 9, "offset {offset} beyond the bound");
            if ahead <= 10 {
                assert!(accepted.is_ok(), "{ahead} steps ahead");
                now += 120;
                login(&mut r, now, ahead).unwrap();
            } else {
                // Never beyond MAX_SKEW steps from now, whatever was learned.
                assert_eq!(accepted.err(), Some(FailureReason::WrongCode), "{ahead}");
            }
        }
        assert_eq!(r.authenticators[1].totp_factor().unwrap().clock_offset, 9);
        // A clock set right again still works (the window around now stays), and is learned.
        now += 120;
        login(&mut r, now, 0).unwrap();
        now += 120;
        let m = login(&mut r, now, 0).unwrap();
        assert_eq!(m.offset_change, Some((9, 0, 30)));
        // The first authenticator learned nothing.
        assert_eq!(r.authenticators[0].totp_factor().unwrap().clock_offset, 0);
    }

    #[test]
    fn a_skew_at_the_maximum_learns_no_offset() {
        let params = Totp::builder().skew(u32::from(MAX_SKEW)).build().unwrap();
        let s2 = secret(4);
        let mut r = with_second(&s2, params, "Wide");
        let id = r.authenticators[1].id.clone();
        for i in 0..4u64 {
            let now = T0 + 600 + i * 60;
            let step = params.step_at(now) + 5;
            r.verify_totp(code_at(&s2, params, step), now, Some(&id))
                .unwrap();
            assert_eq!(r.authenticators[1].totp_factor().unwrap().clock_offset, 0);
        }
    }

    mod bound {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// No sequence of logins (codes of any step, at any time, accepted or not) makes
            /// a code outside `[now - MAX_SKEW, now + MAX_SKEW]` acceptable, and the learned
            /// offset never leaves its bound.
            #[test]
            fn no_sequence_of_logins_widens_the_window_beyond_the_maximum(
                skew in 0u32..=u32::from(MAX_SKEW),
                start in 0u64..4_000_000_000,
                steps in proptest::collection::vec((0u64..400, -25i64..=25), 1..40),
            ) {
                let params = Totp::builder().skew(skew).build().unwrap();
                let s2 = secret(5);
                let mut r = with_second(&s2, params, "Fuzzed");
                let id = r.authenticators[1].id.clone();
                let mut now = start;
                for (advance, ahead) in steps {
                    now = now.saturating_add(advance);
                    let n = params.step_at(now);
                    let step = shift(n, ahead);
                    let code = code_at(&s2, params, step);
                    let accepted = r.verify_totp(code, now, Some(&id)).is_ok();
                    if accepted {
                        // The code is that of some step within the maximum window (two steps
                        // may share a code).
                        let lo = n.saturating_sub(u64::from(MAX_SKEW));
                        let hi = n.saturating_add(u64::from(MAX_SKEW));
                        prop_assert!(
                            (lo..=hi).any(|s| code_at(&s2, params, s).value() == code.value()),
                            "accepted a code of step {step} at step {n}"
                        );
                    }
                    let t = r.authenticators[1].totp_factor().unwrap();
                    let bound = offset_bound(&params);
                    prop_assert!(i64::from(t.clock_offset).abs() <= bound);
                    let (first, last, _) = t.windows(now);
                    prop_assert!(first >= n.saturating_sub(u64::from(MAX_SKEW)));
                    prop_assert!(last <= n.saturating_add(u64::from(MAX_SKEW)));
                }
            }
        }
    }

    #[test]
    fn labels_are_trimmed_bounded_and_printable() {
        assert_eq!(check_label(" Phone ").unwrap(), "Phone");
        assert_eq!(check_label(""), Err(LabelError::Empty));
        assert_eq!(check_label(" \t "), Err(LabelError::Empty));
        assert_eq!(
            check_label("a\u{7}b"),
            Err(LabelError::ControlCharacter { position: 1 })
        );
        assert_eq!(
            check_label("x\u{202e}"),
            Ok("x\u{202e}".to_owned()),
            "format characters are not control characters"
        );
        let long = "é".repeat(MAX_LABEL_CHARS);
        assert_eq!(check_label(&long).unwrap(), long);
        assert_eq!(
            check_label(&format!("{long}e")),
            Err(LabelError::TooLong {
                max: MAX_LABEL_CHARS
            })
        );
        assert!(same_label("Phone", "pHONE"));
        assert!(!same_label("Phone", "Phone 2"));
    }

    #[test]
    fn ids_are_short_url_safe_and_legacy_ids_stable() {
        let mut rng = super::super::crypto::TestRng(3);
        let id = random_id(&mut rng).unwrap();
        assert_eq!(id.as_str().len(), 13);
        assert!(is_valid_id(&id));
        assert_ne!(id, random_id(&mut rng).unwrap());
        assert_eq!(legacy_id(1_700_000_000), legacy_id(1_700_000_000));
        assert_ne!(legacy_id(1_700_000_000), legacy_id(1_700_000_001));
        assert!(is_valid_id(&legacy_id(7)));
        for bad in ["", "A", "a b", "a/b", &"a".repeat(33)] {
            assert!(!is_valid_id(&AuthenticatorId::new(bad)), "{bad}");
        }
    }
}
