//! Enrollment and its relatives: start, confirm, cancel, rotate, disable, admin reset,
//! invitation, and the administrator-provisioned enrollment delivered by mail.

use core::fmt;

use rand::TryCryptoRng;

use crate::audit::{AuditKind, Operation};
use crate::mail::{DisabledBy, Notice, SecretText};
use crate::otp::{Secret, Totp, VerifyError};
use crate::policy::{Requirement, WhenUnenrolled};
use crate::provision::{KeyUri, OtpKind, Provisioning};

use super::authenticators::{Authenticator, AuthenticatorInfo, DEFAULT_LABEL, TotpFactor};
use super::login::Parsed;
use super::record::PendingEnrollment;
pub(crate) use super::record::PendingPurpose;
use super::recovery::{RecoveryCodeSet, RecoveryCodes};
use super::{
    Checked, DomainError, Factor, FactorKind, FailureReason, PendingLogin, PendingStep,
    Reauthenticated, Refusal, SecondFactorProof, Settings, Transition, TwoFactorRecord, UserId,
    Verification,
};

/// What the enrollment screen shows: the QR code, the `otpauth://` URI and the grouped manual
/// key ("Cannot scan it?"), until [`EnrollmentStarted::expires_at`].
///
/// Every part contains the secret: `Debug` shows none of it.
pub struct EnrollmentStarted {
    provisioning: Provisioning,
    expires_at: u64,
}

impl EnrollmentStarted {
    /// The URI, QR code (SVG) and manual key.
    #[must_use]
    pub fn provisioning(&self) -> &Provisioning {
        &self.provisioning
    }
    /// The `otpauth://` URI.
    ///
    /// # Security warning
    /// Contains the secret: show it only to the enrolling user, never log it.
    #[must_use]
    pub fn uri(&self) -> &str {
        self.provisioning.uri()
    }
    /// The QR code of the URI as SVG, to inline in the page (serve with `Cache-Control:
    /// no-store`).
    ///
    /// # Security warning
    /// Encodes the secret.
    #[must_use]
    pub fn qr_svg(&self) -> &str {
        self.provisioning.qr_svg()
    }
    /// The secret in base32 groups of four, for typing by hand.
    ///
    /// # Security warning
    /// This is the secret itself.
    #[must_use]
    pub fn manual_key(&self) -> &str {
        self.provisioning.manual_key()
    }
    /// When the pending enrollment expires: the confirming code must come before.
    #[must_use]
    pub const fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

impl fmt::Debug for EnrollmentStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentStarted")
            .field("provisioning", &self.provisioning)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A confirmed enrollment (or rotation): show the recovery codes now, they are never shown
/// again.
pub struct Enrolled {
    recovery_codes: RecoveryCodes,
    rotated: bool,
    login_completed: bool,
    proof: SecondFactorProof,
    authenticator: AuthenticatorInfo,
    needs_security_key: bool,
}

impl Enrolled {
    /// The new recovery codes (the previous set, if any, no longer works).
    #[must_use]
    pub fn recovery_codes(&self) -> &RecoveryCodes {
        &self.recovery_codes
    }
    /// Takes the recovery codes.
    #[must_use]
    pub fn into_recovery_codes(self) -> RecoveryCodes {
        self.recovery_codes
    }
    /// Whether this replaced an active authenticator (a rotation).
    #[must_use]
    pub const fn rotated(&self) -> bool {
        self.rotated
    }
    /// The authenticator just confirmed (a replacement has a new id and the old label).
    #[must_use]
    pub fn authenticator(&self) -> &AuthenticatorInfo {
        &self.authenticator
    }
    /// Whether this enrollment also completed a login: `start_login` answered
    /// [`MustEnroll`](super::LoginDecision::MustEnroll) less than
    /// [`Settings::login_challenge_ttl`] ago (15 minutes by default) and no enrollment has
    /// completed that login yet. The audit trail then records `LoginSucceeded { factor: Totp }`
    /// after `Enrolled`.
    ///
    /// Only the forced set-up calls, which take the login ticket `MustEnroll` handed out,
    /// complete a login (and use the ticket up): log in the session that holds that ticket
    /// when this is `true`, after cycling its session id. When it is `false` (too late, or
    /// enrolled from an account page), 2FA is on but nobody was logged in by it: ask for the
    /// password again, and the next login asks for a code from the new authenticator.
    #[must_use]
    pub const fn login_completed(&self) -> bool {
        self.login_completed
    }
    /// Proof of the authenticator just confirmed (a TOTP code, verified now): keep it in the
    /// session for the sensitive calls that follow (see [`SecondFactorProof`]).
    #[must_use]
    pub fn proof(&self) -> &SecondFactorProof {
        &self.proof
    }
    /// The policy requires a phishing-resistant factor of this user
    /// ([`Requirement::PhishingResistant`]) and this enrollment completed a login with a
    /// TOTP code: as [`LoginGranted::needs_security_key`](super::LoginGranted::needs_security_key),
    /// the login was let in to **escalate**. Send the user to register a security key before
    /// anything else (the axum module does).
    /// [`TwoFactor::finish_forced_enrollment`](crate::TwoFactor::finish_forced_enrollment) asks
    /// the policy at the confirmation, as `finish_login` does; a host driving the record
    /// itself passes the requirement with the ticket.
    #[must_use]
    pub const fn needs_security_key(&self) -> bool {
        self.needs_security_key
    }
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolled")
            .field("recovery_codes", &self.recovery_codes)
            .field("rotated", &self.rotated)
            .field("login_completed", &self.login_completed)
            .field("proof", &self.proof)
            .field("authenticator", &self.authenticator)
            .field("needs_security_key", &self.needs_security_key)
            .finish()
    }
}

/// Whether `requirement` asks an unenrolled user for a mailed code at `now`: then enrolling
/// needs a completed mailed-code login, not just the password.
fn needs_mailed_code_login(requirement: &Requirement, now: u64) -> bool {
    match requirement {
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            grace_until,
            ..
        } => !grace_until.is_some_and(|enroll_by| now < enroll_by),
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            ..
        }
        | Requirement::Optional { .. }
        | Requirement::PhishingResistant
        | Requirement::Off
        | Requirement::Exempt { .. } => false,
    }
}

impl TwoFactorRecord {
    /// Whether this (unenrolled) user may enroll a first authenticator with the password
    /// alone: not where the policy asks them for a mailed code at login (outside a grace
    /// period), or asked them for one at their last login; then only with `verification`,
    /// the proof of a completed mailed-code login. See the
    /// [manual](crate::manual#who-may-enroll).
    pub(crate) fn ensure_may_enroll(
        &self,
        now: u64,
        user: &UserId,
        requirement: &Requirement,
        verification: Option<Verification<'_>>,
        settings: &Settings,
    ) -> Result<(), DomainError> {
        let in_grace =
            matches!(requirement, Requirement::Required { grace_until: Some(t), .. } if now < *t);
        if needs_mailed_code_login(requirement, now) || (self.mailed_login_required && !in_grace) {
            let Some(Verification::Proof(proof)) = verification else {
                return Err(DomainError::SecondFactorRequired);
            };
            self.check_proof(proof, user, &[FactorKind::MailedCode], now, settings)?;
        }
        Ok(())
    }
}

/// Renders the enrollment screen for a secret.
fn provisioning(
    secret: &Secret,
    totp: Totp,
    account: &str,
    settings: &Settings,
) -> Result<Provisioning, DomainError> {
    let key = KeyUri::new(
        OtpKind::Totp(totp),
        secret.clone(),
        settings.issuer.as_deref(),
        account,
    )
    .map_err(DomainError::InvalidAccountName)?;
    Provisioning::new(&key).map_err(|_| DomainError::NamesTooLong)
}

impl TwoFactorRecord {
    /// A new pending secret and its provisioning screen. Replaces any pending enrollment.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_pending<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        ttl: u64,
        provisioned_by: Option<UserId>,
        purpose: PendingPurpose,
        label: String,
        account: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<(Self, EnrollmentStarted), DomainError> {
        let secret =
            Secret::generate_from_rng(rng, settings.secret_bytes).map_err(|_| DomainError::Rng)?;
        let totp = settings.totp;
        let provisioning = provisioning(&secret, totp, account, settings)?;
        let expires_at = now.saturating_add(ttl);
        let mut next = self.clone();
        next.pending = Some(PendingEnrollment {
            secret: secret.into(),
            totp,
            started_at: now,
            expires_at,
            provisioned_by,
            purpose,
            label,
        });
        Ok((
            next,
            EnrollmentStarted {
                provisioning,
                expires_at,
            },
        ))
    }

    /// Starts enrolling an authenticator: generates a secret (kept pending in the record) and
    /// the screen to show. While an enrollment started this way is pending and unexpired, it
    /// is **resumed** instead: the same secret and expiry (a reload of the set-up page keeps
    /// the QR code the user already scanned). Cancel it first
    /// ([`TwoFactorRecord::cancel_enrollment`]) to get a new secret.
    ///
    /// `requirement` is the policy's answer for this user now (computed fresh by the caller).
    /// When it asks an unenrolled user for a mailed code
    /// (`Required { when_unenrolled: MailCode, .. }` outside a running grace period), or this
    /// record was asked for one at login (whatever principal the caller passes now), the
    /// password is not enough: `proof` must be a fresh proof (within
    /// [`Settings::reauth_max_age`]) of a mailed code for `user`, from the session that logged
    /// in with it. Otherwise someone with the password but not the mailbox could enroll an
    /// authenticator of their own and log in with it. Under every other requirement
    /// (including `BlockUntilEnrolled`, where enrolling is the point, and a running grace
    /// period, where the password alone logs in) the fresh password check is enough.
    ///
    /// `account` is the name the authenticator app shows under the issuer (usually the login
    /// or e-mail address).
    ///
    /// # Errors
    /// [`DomainError::ReauthenticationRequired`], [`DomainError::AlreadyEnrolled`] (rotate
    /// instead), [`DomainError::SecondFactorRequired`] (log in with the mailed code first),
    /// [`DomainError::InvalidProof`], [`DomainError::InvalidAccountName`],
    /// [`DomainError::NamesTooLong`], [`DomainError::SecretSealed`], [`DomainError::Rng`].
    #[allow(clippy::too_many_arguments)]
    pub fn start_enrollment<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        requirement: &Requirement,
        reauth: Reauthenticated,
        proof: Option<&SecondFactorProof>,
        account: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<EnrollmentStarted>, DomainError> {
        self.check_may_enroll(now, user, requirement, reauth, proof, settings)?;
        if let Some(resumed) = self.waiting_screen(now, account, settings)? {
            let expires_at = resumed.expires_at;
            return Ok(Transition::new(self.clone(), false, resumed)
                .event(AuditKind::EnrollmentResumed { expires_at }));
        }
        let (next, started) = self.new_pending(
            now,
            settings.pending_enrollment_ttl,
            None,
            PendingPurpose::Enroll,
            DEFAULT_LABEL.to_owned(),
            account,
            settings,
            rng,
        )?;
        let expires_at = started.expires_at;
        Ok(
            Transition::new(next, true, started).event(AuditKind::EnrollmentStarted {
                expires_at,
                rotation: false,
            }),
        )
    }

    /// The enrollment [`start_enrollment`](Self::start_enrollment) started and that waits for
    /// its first code, shown again (same secret, same expiry) for a page that is reloaded:
    /// **read-only**, it changes nothing and records no event. It makes the same checks as
    /// `start_enrollment` (a fresh re-authentication, not enrolled yet, the mailed-code proof
    /// where the policy asks for one), so it shows nothing that call would refuse.
    ///
    /// `None` when no enrollment started by the user is open: none, expired, or one an
    /// administrator mailed ([`start_enrollment_by_mail_dangerous`](Self::start_enrollment_by_mail_dangerous),
    /// whose key is never shown on a page).
    ///
    /// # Errors
    /// As [`start_enrollment`](Self::start_enrollment), except [`DomainError::Rng`].
    #[allow(clippy::too_many_arguments)]
    pub fn waiting_enrollment(
        &self,
        now: u64,
        user: &UserId,
        requirement: &Requirement,
        reauth: Reauthenticated,
        proof: Option<&SecondFactorProof>,
        account: &str,
        settings: &Settings,
    ) -> Result<Option<EnrollmentStarted>, DomainError> {
        self.check_may_enroll(now, user, requirement, reauth, proof, settings)?;
        self.waiting_screen(now, account, settings)
    }

    /// What [`start_enrollment`](Self::start_enrollment) checks before it starts or resumes.
    fn check_may_enroll(
        &self,
        now: u64,
        user: &UserId,
        requirement: &Requirement,
        reauth: Reauthenticated,
        proof: Option<&SecondFactorProof>,
        settings: &Settings,
    ) -> Result<(), DomainError> {
        if !reauth.is_fresh(now, settings.reauth_max_age) {
            return Err(DomainError::ReauthenticationRequired);
        }
        if self.is_enrolled() {
            return Err(DomainError::AlreadyEnrolled);
        }
        self.ensure_may_enroll(
            now,
            user,
            requirement,
            proof.map(Verification::Proof),
            settings,
        )
    }

    /// The screen of the pending enrollment (same secret, same expiry), if one started by the
    /// user is open.
    fn waiting_screen(
        &self,
        now: u64,
        account: &str,
        settings: &Settings,
    ) -> Result<Option<EnrollmentStarted>, DomainError> {
        let Some(pending) = self.pending.as_ref().filter(|p| {
            now < p.expires_at && p.provisioned_by.is_none() && p.purpose == PendingPurpose::Enroll
        }) else {
            return Ok(None);
        };
        let secret = pending.secret.open().ok_or(DomainError::SecretSealed)?;
        let provisioning = provisioning(secret, pending.totp, account, settings)?;
        Ok(Some(EnrollmentStarted {
            provisioning,
            expires_at: pending.expires_at,
        }))
    }

    /// An administrator provisions a secret and it is **mailed** to the user (Bista-style).
    /// The user still confirms it with a code through [`TwoFactorRecord::finish_enrollment`].
    ///
    /// This is an explicit opt-in: the secret travels through e-mail, so anyone who can read
    /// the user's mailbox can clone the authenticator. The outcome is when the pending
    /// enrollment expires ([`Settings::mailed_enrollment_ttl`], a day by default).
    ///
    /// # Errors
    /// [`DomainError::AlreadyEnrolled`] (reset first), [`DomainError::InvalidAccountName`],
    /// [`DomainError::NamesTooLong`], [`DomainError::Rng`].
    pub fn start_enrollment_by_mail_dangerous<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        admin: &UserId,
        account: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<u64>, DomainError> {
        if self.is_enrolled() {
            return Err(DomainError::AlreadyEnrolled);
        }
        let (next, started) = self.new_pending(
            now,
            settings.mailed_enrollment_ttl,
            Some(admin.clone()),
            PendingPurpose::Enroll,
            DEFAULT_LABEL.to_owned(),
            account,
            settings,
            rng,
        )?;
        let expires_at = started.expires_at;
        let notice = Notice::ProvisionedSecret {
            uri: SecretText::new(started.uri()),
            manual_key: SecretText::new(started.manual_key()),
            expires_at,
            provisioned_by: admin.clone(),
        };
        Ok(Transition::new(next, true, expires_at)
            .event(AuditKind::EnrollmentProvisionedByMail {
                admin: admin.clone(),
                expires_at,
            })
            .notice(notice))
    }

    /// Starts replacing the authenticator (new phone) of a user who has **one**: needs a fresh
    /// password check and a second factor of `user` (a fresh proof, or a valid code from the
    /// current authenticator or a recovery code). Confirm the new one with
    /// [`TwoFactorRecord::finish_enrollment`]; until then the current one keeps working. A
    /// user with several authenticators names the one to replace:
    /// [`start_replacing_authenticator`](Self::start_replacing_authenticator).
    ///
    /// # Errors
    /// [`DomainError::ReauthenticationRequired`], [`DomainError::NotEnrolled`],
    /// [`DomainError::AuthenticatorNotNamed`] (several authenticators),
    /// [`DomainError::InvalidAccountName`], [`DomainError::NamesTooLong`],
    /// [`DomainError::Rng`]. A refused current code comes back in the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn start_rotation<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        reauth: Reauthenticated,
        verification: Verification<'_>,
        account: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<EnrollmentStarted>>, DomainError> {
        if !reauth.is_fresh(now, settings.reauth_max_age) {
            return Err(DomainError::ReauthenticationRequired);
        }
        let id = match self.authenticators.as_slice() {
            [] => return Err(DomainError::NotEnrolled),
            [only] => only.id.clone(),
            _ => return Err(DomainError::AuthenticatorNotNamed),
        };
        self.start_replacing_authenticator(
            now,
            user,
            &id,
            reauth,
            verification,
            account,
            settings,
            rng,
        )
    }

    /// The second factor a sensitive operation on this (enrolled) record needs: a fresh proof
    /// of a TOTP or recovery code for `user` (nothing counted), or a code checked now (counted,
    /// replay-protected, against every authenticator). `Ok(Ok((next, events)))` to go on from
    /// (the events name the authenticator a code came from), `Ok(Err(refusal))` to return.
    ///
    /// # Errors
    /// A proof that is not valid ([`DomainError::InvalidProof`]) or too old / of another
    /// factor ([`DomainError::SecondFactorRequired`]); a sealed secret or a missing code key
    /// for a code.
    #[allow(clippy::type_complexity)]
    pub(crate) fn check_verification(
        &self,
        now: u64,
        user: &UserId,
        verification: Verification<'_>,
        operation: Operation,
        settings: &Settings,
    ) -> Result<Result<(TwoFactorRecord, Vec<AuditKind>), Box<Transition<Refusal>>>, DomainError>
    {
        match verification {
            Verification::Proof(proof) => {
                self.check_proof(
                    proof,
                    user,
                    &[
                        FactorKind::Totp,
                        FactorKind::RecoveryCode,
                        FactorKind::SecurityKey,
                    ],
                    now,
                    settings,
                )?;
                Ok(Ok((self.clone(), Vec::new())))
            }
            Verification::Code(factor) => {
                self.ensure_totp_checkable(&factor)?;
                self.ensure_code_key(&factor, settings)?;
                Ok(self.check_current(now, factor, operation, settings))
            }
        }
    }

    fn check_current(
        &self,
        now: u64,
        factor: Factor<'_>,
        operation: Operation,
        settings: &Settings,
    ) -> Result<(TwoFactorRecord, Vec<AuditKind>), Box<Transition<Refusal>>> {
        let kind = factor.kind();
        let failed = |reason| AuditKind::VerificationFailed {
            operation,
            factor: kind,
            reason,
        };
        let parsed = match self.parse_factor(factor, settings) {
            Ok(Parsed::Mailed(_)) => None,
            Ok(p) => Some(p),
            Err(m) => {
                return Err(Box::new(
                    Transition::new(self.clone(), false, Refusal::Malformed(m))
                        .event(failed(FailureReason::Malformed)),
                ));
            }
        };
        let mut next = self.admit_code_check(now, settings, |refusal| refusal)?;
        let result = match &parsed {
            Some(p) => next.verify_parsed(p, now, None, settings),
            None => Err(FailureReason::NoPendingFactor),
        };
        match result {
            Ok(verified) => Ok((next, verified.events())),
            Err(reason) => Err(Box::new(
                Transition::new(next, true, Refusal::Invalid(reason)).event(failed(reason)),
            )),
        }
    }

    /// Checks the confirming code of the pending enrollment (parsed, counted, verified): the
    /// record to go on from and the step the code was for, or the refusal to return.
    #[allow(clippy::type_complexity)]
    pub(crate) fn check_pending_code<T>(
        &self,
        now: u64,
        code: &str,
        settings: &Settings,
    ) -> Result<Result<(TwoFactorRecord, u64), Box<Transition<Checked<T>>>>, DomainError> {
        let pending = match &self.pending {
            Some(p) if now < p.expires_at => p,
            _ => return Err(DomainError::NoPendingEnrollment),
        };
        let secret = pending.secret.open().ok_or(DomainError::SecretSealed)?;
        let failed = |reason| AuditKind::EnrollmentFailed { reason };
        let parsed = match crate::otp::Code::parse(code, pending.totp.digits()) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(Box::new(
                    Transition::new(self.clone(), false, Err(Refusal::Malformed(e.into())))
                        .event(failed(FailureReason::Malformed)),
                )));
            }
        };
        let next = match self.admit_code_check(now, settings, Err) {
            Ok(next) => next,
            Err(throttled) => return Ok(Err(throttled)),
        };
        match pending.totp.verify_code(secret, parsed, now, None) {
            Ok(step) => Ok(Ok((next, step))),
            Err(e) => {
                let reason = match e {
                    VerifyError::Replayed => FailureReason::Replayed,
                    _ => FailureReason::WrongCode,
                };
                Ok(Err(Box::new(
                    Transition::new(next, true, Err(Refusal::Invalid(reason)))
                        .event(failed(reason)),
                )))
            }
        }
    }

    /// Confirms the pending enrollment (or rotation) with a code from the new authenticator.
    ///
    /// On success the secret becomes active, the confirming time step is recorded as used (the
    /// same code cannot log in), a new set of recovery codes is returned (once), trusted devices
    /// are revoked and the user is notified. With `login` (the ticket of a
    /// [`LoginDecision::MustEnroll`](super::LoginDecision::MustEnroll) answer for `user`, still
    /// open and unused, and the policy's answer for its principal now), the login waiting for
    /// this enrollment is completed and the ticket used up: see [`Enrolled::login_completed`]
    /// and, where the requirement asks for a phishing-resistant factor,
    /// [`Enrolled::needs_security_key`]. The outcome carries a proof of the new authenticator.
    ///
    /// # Errors
    /// [`DomainError::InvalidTicket`], [`DomainError::LoginExpired`] for a `login` that is not
    /// usable (checked before anything else);
    /// [`DomainError::NoPendingEnrollment`] when none is pending or it has expired (start
    /// again), [`DomainError::Rng`]. A refused code comes back in the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_enrollment<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        code: &str,
        login: Option<(&PendingLogin, &Requirement)>,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<Enrolled>>, DomainError> {
        let (login, requirement) = login.unzip();
        if let Some(login) = login {
            self.ensure_ticket_usable(login, now, settings)?;
            if login.user() != user || !matches!(login.step(), PendingStep::Enrollment) {
                return Err(DomainError::InvalidTicket);
            }
        }
        let pending = match &self.pending {
            // An additional authenticator is confirmed by `finish_adding_authenticator`.
            Some(p) if now < p.expires_at && p.purpose != PendingPurpose::Add => p,
            _ => return Err(DomainError::NoPendingEnrollment),
        };
        // A replacement keeps the other authenticators; the first enrollment finds none (it
        // never silently replaces one).
        let replaced = match &pending.purpose {
            PendingPurpose::Replace(id) => Some(
                self.authenticators
                    .iter()
                    .position(|a| a.id == *id)
                    .ok_or(DomainError::NoPendingEnrollment)?,
            ),
            PendingPurpose::Enroll if self.is_enrolled() => {
                return Err(DomainError::AlreadyEnrolled);
            }
            PendingPurpose::Enroll | PendingPurpose::Add => None,
        };
        let (mut next, step) = match self.check_pending_code(now, code, settings)? {
            Ok(ok) => ok,
            Err(t) => return Ok(*t),
        };
        let (set, recovery_codes) =
            RecoveryCodeSet::generate(now, settings.recovery_codes, &settings.code_keys, rng)?;
        let rotated = replaced.is_some();
        let login_completed = login.is_some()
            && !rotated
            && next
                .login_awaiting_enrollment
                .as_ref()
                .is_some_and(|l| now < l.expires_at);
        if let (Some(login), true) = (login, login_completed) {
            next.login_awaiting_enrollment = None;
            next.tickets
                .mark_used(login.nonce(), login.password_checked_at(), now);
        }
        let devices_revoked = next.devices.len();
        let id = next.new_authenticator_id(rng)?;
        let mut confirmed = Authenticator::totp(
            id,
            pending.label.clone(),
            now,
            TotpFactor::new(pending.secret.clone(), pending.totp, Some(step)),
        );
        confirmed.last_used_at = Some(now);
        let info = confirmed.info();
        let mut authenticators = core::mem::take(&mut next.authenticators);
        match replaced {
            Some(i) => authenticators[i] = confirmed,
            None => authenticators = vec![confirmed],
        }
        next.clear_factors();
        next.authenticators = authenticators;
        // The proof that let this user enroll has served its purpose.
        next.mailed_code_login_at = None;
        next.mailed_login_required = false;
        next.recovery = Some(set);
        next.code_checks.reset();
        // A login completed here began with the password its ticket dates.
        let password_at = login
            .filter(|_| login_completed)
            .map(super::PendingLogin::password_checked_at);
        let proof = next.issue_proof_naming(
            user,
            FactorKind::Totp,
            now,
            password_at,
            Some(info.id()),
            settings,
            rng,
        )?;
        let mut t = Transition::new(
            next,
            true,
            Ok(Enrolled {
                recovery_codes,
                rotated,
                login_completed,
                proof,
                authenticator: info,
                needs_security_key: login_completed
                    && matches!(requirement, Some(Requirement::PhishingResistant)),
            }),
        );
        if rotated {
            t = t
                .event(AuditKind::Rotated { devices_revoked })
                .notice(Notice::Rotated { devices_revoked });
        } else {
            t = t.event(AuditKind::Enrolled).notice(Notice::Enabled);
        }
        if login_completed {
            t = t.event(AuditKind::LoginSucceeded {
                factor: super::FactorKind::Totp,
            });
        }
        Ok(t)
    }

    /// Abandons the pending enrollment (or rotation); an active authenticator is untouched.
    ///
    /// # Errors
    /// [`DomainError::NoPendingEnrollment`].
    pub fn cancel_enrollment(&self) -> Result<Transition<()>, DomainError> {
        if self.pending.is_none() {
            return Err(DomainError::NoPendingEnrollment);
        }
        let mut next = self.clone();
        next.pending = None;
        Ok(Transition::new(next, true, ()).event(AuditKind::EnrollmentCancelled))
    }

    /// The user turns 2FA off: needs a fresh password check and a second factor of `user` (a
    /// fresh proof, or a code from the authenticator or a recovery code). Refused while
    /// `requirement` (the policy's answer for this user now) requires 2FA. Clears every secret,
    /// recovery code and trusted device.
    ///
    /// # Errors
    /// [`DomainError::ReauthenticationRequired`], [`DomainError::NotEnrolled`],
    /// [`DomainError::RequiredByPolicy`], [`DomainError::InvalidProof`],
    /// [`DomainError::SecondFactorRequired`]. A refused code
    /// comes back in the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn disable(
        &self,
        now: u64,
        user: &UserId,
        requirement: &Requirement,
        reauth: Reauthenticated,
        verification: Verification<'_>,
        settings: &Settings,
    ) -> Result<Transition<Checked<()>>, DomainError> {
        if !reauth.is_fresh(now, settings.reauth_max_age) {
            return Err(DomainError::ReauthenticationRequired);
        }
        if !self.is_enrolled() {
            return Err(DomainError::NotEnrolled);
        }
        if requirement.is_required() {
            return Err(DomainError::RequiredByPolicy);
        }
        let checked =
            self.check_verification(now, user, verification, Operation::Disable, settings)?;
        let (mut next, used) = match checked {
            Ok(next) => next,
            Err(t) => return Ok((*t).map(Err)),
        };
        let recovery_left = next.recovery_codes_left();
        let revoked = next.clear_factors();
        next.code_checks.reset();
        let mut t = Transition::new(next, true, Ok(())).events_from(used);
        if verification.is_recovery_code() {
            t = t.recovery_code_used(recovery_left, None, settings);
        }
        Ok(t.event(AuditKind::Disabled {
            devices_revoked: revoked.len(),
        })
        .notice(Notice::Disabled {
            by: DisabledBy::User,
        }))
    }

    /// An administrator resets the user's 2FA (lost phone): no code needed. Clears every
    /// secret, recovery code, trusted device and pending login; the user is notified and the
    /// audit event names the administrator.
    ///
    /// # Errors
    /// [`DomainError::NotEnrolled`] when there is nothing to reset.
    pub fn reset_by_admin(&self, admin: &UserId) -> Result<Transition<()>, DomainError> {
        let nothing = self.authenticators.is_empty()
            && self.pending.is_none()
            && self.recovery.is_none()
            && self.devices.is_empty()
            && !self.has_mailed_code();
        if nothing {
            return Err(DomainError::NotEnrolled);
        }
        let mut next = self.clone();
        let revoked = next.clear_factors();
        next.code_checks.reset();
        next.mail_sends.reset();
        next.mail_attempts.reset();
        // Every login ticket and proof issued before the reset is refused.
        next.tickets.revoke();
        Ok(Transition::new(next, true, ())
            .event(AuditKind::ResetByAdmin {
                admin: admin.clone(),
                devices_revoked: revoked.len(),
            })
            .notice(Notice::Disabled {
                by: DisabledBy::Admin {
                    admin: admin.clone(),
                },
            }))
    }

    /// Refuses every login ticket and second-factor proof issued so far (call it when the
    /// user's password changes, or to sign them out of half-finished logins everywhere).
    /// Changes nothing else.
    pub fn revoke_login_tickets(&self) -> Transition<()> {
        let mut next = self.clone();
        next.tickets.revoke();
        Transition::new(next, true, ()).event(AuditKind::LoginTicketsRevoked)
    }

    /// An administrator invites the user to enable 2FA; `link` (supplied by the host) leads to
    /// the enrollment page. Changes nothing in the record.
    ///
    /// # Errors
    /// [`DomainError::AlreadyEnrolled`].
    pub fn invite(&self, admin: &UserId, link: &str) -> Result<Transition<()>, DomainError> {
        if self.is_enrolled() {
            return Err(DomainError::AlreadyEnrolled);
        }
        Ok(Transition::new(self.clone(), false, ())
            .event(AuditKind::InvitationSent {
                admin: admin.clone(),
            })
            .notice(Notice::Invitation {
                link: link.to_owned(),
                invited_by: admin.clone(),
            }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::account::TicketKey;
    use crate::account::crypto::{FailingRng, TestRng};
    use zeroize::Zeroizing;

    pub(crate) const T0: u64 = 1_700_000_000;

    /// The user whose record these tests work on (the login tests' principal).
    pub(crate) fn user() -> UserId {
        UserId::new("u")
    }

    /// The current code of the record's pending (or else active) secret at `now`.
    pub(crate) fn code_at(r: &TwoFactorRecord, now: u64) -> String {
        let (secret, totp) = match (&r.pending, r.authenticators.first()) {
            (Some(p), _) => (p.secret.open().unwrap(), p.totp),
            (None, Some(a)) => (
                a.totp_factor().unwrap().secret.open().unwrap(),
                a.totp_factor().unwrap().params,
            ),
            _ => panic!("no secret"),
        };
        totp.generate(secret, now).to_string()
    }

    /// The active secret's code at `now`.
    pub(crate) fn active_code_at(r: &TwoFactorRecord, now: u64) -> String {
        let a = r.authenticators[0].totp_factor().unwrap();
        a.params.generate(a.secret.open().unwrap(), now).to_string()
    }

    /// A record enrolled at `now` (the confirming step used), and the proof its confirmation
    /// handed out.
    pub(crate) fn enrolled(now: u64) -> (TwoFactorRecord, SecondFactorProof) {
        let s = Settings::default();
        let mut rng = TestRng(now);
        let t = TwoFactorRecord::default()
            .start_enrollment(
                now,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(now),
                None,
                "alice",
                &s,
                &mut rng,
            )
            .unwrap();
        let code = code_at(t.record(), now);
        let t = t
            .record()
            .finish_enrollment(now, &user(), &code, None, &s, &mut rng)
            .unwrap();
        let (record, _, outcome, _, _) = t.into_parts();
        (record, outcome.unwrap().proof().clone())
    }

    /// A record enrolled at `now` (the confirming step used).
    pub(crate) fn enrolled_record(now: u64) -> TwoFactorRecord {
        enrolled(now).0
    }

    /// A proof that `user()` passed `factor` at `at`, as a login or a step-up hands it out
    /// (sealed under the default settings' key, at the record's ticket generation).
    pub(crate) fn proof_of(r: &TwoFactorRecord, factor: FactorKind, at: u64) -> SecondFactorProof {
        r.issue_proof(&user(), factor, at, &Settings::default(), &mut TestRng(at))
            .unwrap()
    }

    /// Settings with a ticket key that is not this deployment's (another server's, or one an
    /// attacker made up).
    pub(crate) fn foreign_settings() -> Settings {
        Settings {
            ticket_key: Some(TicketKey::new(Zeroizing::new([0x66; 32]))),
            ..Settings::default()
        }
    }

    fn wrong(code: &str) -> String {
        if code == "000000" { "000001" } else { "000000" }.to_owned()
    }

    #[test]
    fn enroll_then_confirming_code_is_used() {
        let s = Settings::builder().issuer("ACME").build().unwrap();
        let mut rng = TestRng(1);
        let r = TwoFactorRecord::default();
        let t = r
            .start_enrollment(
                T0,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(T0),
                None,
                "alice@example.com",
                &s,
                &mut rng,
            )
            .unwrap();
        let started = t.outcome();
        assert!(
            started
                .uri()
                .starts_with("otpauth://totp/ACME:alice@example.com?secret=")
        );
        assert!(started.qr_svg().starts_with("<svg"));
        assert_eq!(started.manual_key().len(), 39); // 32 symbols + 7 spaces
        assert_eq!(started.expires_at(), T0 + 900);
        assert!(!format!("{started:?}").contains(started.manual_key()));
        assert_eq!(
            t.events(),
            &[AuditKind::EnrollmentStarted {
                expires_at: T0 + 900,
                rotation: false
            }]
        );
        let pending = t.into_parts().0;
        assert!(!pending.is_enrolled());

        let code = code_at(&pending, T0 + 10);
        let t = pending
            .finish_enrollment(T0 + 10, &user(), &code, None, &s, &mut rng)
            .unwrap();
        let enrolled = t.outcome().as_ref().unwrap();
        assert_eq!(enrolled.recovery_codes().len(), 10);
        assert!(!enrolled.rotated());
        // No login ticket: nobody was logged in by it.
        assert!(!enrolled.login_completed());
        // The proof of the authenticator just confirmed, sealed for this user.
        let proof = enrolled.proof();
        assert_eq!(
            (proof.user(), proof.factor(), proof.verified_at()),
            (&user(), FactorKind::Totp, T0 + 10)
        );
        proof.verify(s.ticket_key().unwrap()).unwrap();
        assert_eq!(t.events(), &[AuditKind::Enrolled]);
        assert!(matches!(t.notices(), [Notice::Enabled]));
        let r = t.record();
        assert!(r.is_enrolled());
        assert_eq!(r.enrolled_at(), Some(T0 + 10));
        assert_eq!(r.last_used_step(), Some((T0 + 10) / 30));
        assert_eq!(r.pending_enrollment_expires_at(), None);
        assert_eq!(r.recovery_codes_left(), 10);
    }

    #[test]
    fn start_preconditions() {
        let s = Settings::default();
        let mut rng = TestRng(1);
        let r = TwoFactorRecord::default();
        let start = |r: &TwoFactorRecord, reauth: u64, account: &str| {
            r.start_enrollment(
                T0,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(reauth),
                None,
                account,
                &s,
                &mut TestRng(1),
            )
            .map(|_| ())
        };
        assert_eq!(
            start(&r, T0 - 600, "a"),
            Err(DomainError::ReauthenticationRequired)
        );
        assert_eq!(start(&r, T0 - 599, "a"), Ok(()));
        assert!(matches!(
            start(&r, T0, "  "),
            Err(DomainError::InvalidAccountName(_))
        ));
        assert!(matches!(
            start(&r, T0, "a:b"),
            Err(DomainError::InvalidAccountName(_))
        ));
        assert_eq!(
            r.start_enrollment(
                T0,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(T0),
                None,
                "a",
                &s,
                &mut FailingRng
            )
            .unwrap_err(),
            DomainError::Rng
        );
        let e = enrolled_record(T0);
        assert_eq!(
            e.start_enrollment(
                T0,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(T0),
                None,
                "a",
                &s,
                &mut rng
            )
            .unwrap_err(),
            DomainError::AlreadyEnrolled
        );
    }

    #[test]
    fn restart_resumes_until_cancelled_or_expired() {
        let s = Settings::default();
        let mut rng = TestRng(2);
        let start = |r: &TwoFactorRecord, now: u64, rng: &mut TestRng| {
            r.start_enrollment(
                now,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(now),
                None,
                "a",
                &s,
                rng,
            )
            .unwrap()
        };
        let t = start(&TwoFactorRecord::default(), T0, &mut rng);
        let first_uri = t.outcome().uri().to_owned();
        let first = t.into_parts().0;
        // Started again while pending (a reload of the set-up page): the same secret and
        // expiry, nothing to save, audited as resumed.
        let t = start(&first, T0 + 60, &mut rng);
        assert_eq!(t.outcome().uri(), first_uri);
        assert_eq!(t.outcome().expires_at(), T0 + 900);
        assert!(!t.is_changed());
        assert_eq!(
            t.events(),
            &[AuditKind::EnrollmentResumed {
                expires_at: T0 + 900
            }]
        );
        assert_eq!(t.record().pending_enrollment_expires_at(), Some(T0 + 900));
        assert_eq!(code_at(t.record(), T0 + 60), code_at(&first, T0 + 60));

        // Cancelled, then started again: a new secret replaces it, and the old code is refused.
        let old_code = code_at(&first, T0 + 60);
        let t = first.cancel_enrollment().unwrap();
        assert_eq!(t.events(), &[AuditKind::EnrollmentCancelled]);
        assert_eq!(
            t.record().cancel_enrollment().unwrap_err(),
            DomainError::NoPendingEnrollment
        );
        assert_eq!(
            t.record()
                .finish_enrollment(T0 + 60, &user(), "123456", None, &s, &mut rng)
                .unwrap_err(),
            DomainError::NoPendingEnrollment
        );
        let t = start(t.record(), T0 + 60, &mut rng);
        assert_ne!(t.outcome().uri(), first_uri);
        assert!(t.is_changed());
        let second = t.into_parts().0;
        assert_eq!(second.pending_enrollment_expires_at(), Some(T0 + 960));
        if old_code != code_at(&second, T0 + 60) {
            let t = second
                .finish_enrollment(T0 + 60, &user(), &old_code, None, &s, &mut rng)
                .unwrap();
            assert_eq!(
                t.outcome().as_ref().unwrap_err(),
                &Refusal::Invalid(FailureReason::WrongCode)
            );
        }

        // An expired pending enrollment is not resumed: a new secret.
        let t = start(&first, T0 + 900, &mut rng);
        assert_ne!(t.outcome().uri(), first_uri);
        assert_eq!(t.outcome().expires_at(), T0 + 1_800);
        assert!(t.is_changed());
        // Nor is one an administrator provisioned by mail: the user's own start replaces it.
        let mailed = TwoFactorRecord::default()
            .start_enrollment_by_mail_dangerous(T0, &UserId::new("root"), "a", &s, &mut rng)
            .unwrap()
            .into_parts()
            .0;
        let t = start(&mailed, T0 + 60, &mut rng);
        assert!(t.is_changed());
        assert_eq!(t.record().pending_enrollment_provisioned_by(), None);
    }

    #[test]
    fn finish_refusals_keep_pending_and_count() {
        let s = Settings::default();
        let mut rng = TestRng(3);
        let pending = TwoFactorRecord::default()
            .start_enrollment(
                T0,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(T0),
                None,
                "a",
                &s,
                &mut rng,
            )
            .unwrap()
            .into_parts()
            .0;
        let finish = |r: &TwoFactorRecord, now: u64, code: &str, rng: &mut TestRng| {
            r.finish_enrollment(now, &user(), code, None, &s, rng)
        };
        // Malformed: not counted, record unchanged.
        for bad in ["", "12345", "1234567", "12a456"] {
            let t = finish(&pending, T0, bad, &mut rng).unwrap();
            assert!(!t.is_changed());
            assert!(matches!(t.outcome(), Err(Refusal::Malformed(_))));
            assert_eq!(
                t.events(),
                &[AuditKind::EnrollmentFailed {
                    reason: FailureReason::Malformed
                }]
            );
        }
        // Wrong: counted, pending kept.
        let mut r = pending.clone();
        let good = code_at(&pending, T0);
        for i in 0..5 {
            let t = finish(&r, T0 + i, &wrong(&good), &mut rng).unwrap();
            assert_eq!(
                t.outcome().as_ref().unwrap_err(),
                &Refusal::Invalid(FailureReason::WrongCode)
            );
            r = t.into_parts().0;
        }
        assert_eq!(r.code_checks.count(T0 + 5, 3_600), 5);
        // Sixth: throttled, even with the right code; nothing changes.
        let t = finish(&r, T0 + 5, &good, &mut rng).unwrap();
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Throttled {
                retry_at: T0 + 3_600
            }
        );
        assert!(!t.is_changed());
        assert!(!t.record().is_enrolled());
        // Expiry: exclusive.
        let late = T0 + 900;
        assert_eq!(
            finish(&pending, late, &code_at(&pending, late), &mut rng).unwrap_err(),
            DomainError::NoPendingEnrollment
        );
        let last = late - 1;
        let t = finish(&pending, last, &code_at(&pending, last), &mut rng).unwrap();
        assert!(t.outcome().is_ok());
        // RNG failure at the end: nothing committed.
        assert_eq!(
            pending
                .finish_enrollment(T0, &user(), &good, None, &s, &mut FailingRng)
                .unwrap_err(),
            DomainError::Rng
        );
    }

    #[test]
    fn rotation_needs_current_code_and_revokes_devices() {
        let s = Settings::default();
        let mut rng = TestRng(4);
        let mut r = enrolled_record(T0);
        let _ = r.trust_device(T0, "laptop", &s, &mut rng).unwrap();
        let now = T0 + 60;
        let reauth = Reauthenticated::at(now);
        let current = active_code_at(&r, now);
        let rotate = |r: &TwoFactorRecord,
                      now: u64,
                      reauth: Reauthenticated,
                      code: &str,
                      rng: &mut TestRng| {
            r.start_rotation(
                now,
                &user(),
                reauth,
                Factor::Totp(code).into(),
                "a",
                &s,
                rng,
            )
        };
        assert_eq!(
            rotate(&r, now, Reauthenticated::at(T0 - 1_000), &current, &mut rng).unwrap_err(),
            DomainError::ReauthenticationRequired
        );
        assert_eq!(
            rotate(&TwoFactorRecord::default(), now, reauth, &current, &mut rng).unwrap_err(),
            DomainError::NotEnrolled
        );
        let t = rotate(&r, now, reauth, &wrong(&current), &mut rng).unwrap();
        assert!(matches!(
            t.outcome(),
            Err(Refusal::Invalid(FailureReason::WrongCode))
        ));
        assert!(matches!(
            t.events(),
            [AuditKind::VerificationFailed {
                operation: Operation::Rotation,
                ..
            }]
        ));
        // The confirming code of enrollment (step at T0) cannot start a rotation: replay.
        let replay = active_code_at(&r, T0);
        let t = rotate(&r, T0 + 1, Reauthenticated::at(T0), &replay, &mut rng).unwrap();
        assert!(matches!(
            t.outcome(),
            Err(Refusal::Invalid(FailureReason::Replayed))
        ));

        let t = rotate(&r, now, reauth, &current, &mut rng).unwrap();
        assert!(t.outcome().is_ok());
        let rotating = t.into_parts().0;
        // The old authenticator still works until the new one is confirmed.
        assert!(rotating.is_enrolled());
        let new_code = code_at(&rotating, now + 30);
        let t = rotating
            .finish_enrollment(now + 30, &user(), &new_code, None, &s, &mut rng)
            .unwrap();
        let done = t.outcome().as_ref().unwrap();
        assert!(done.rotated());
        assert_eq!(t.events(), &[AuditKind::Rotated { devices_revoked: 1 }]);
        assert!(t.record().devices.is_empty());
        assert_eq!(t.record().enrolled_at(), Some(now + 30));
        assert_eq!(t.record().last_used_step(), Some((now + 30) / 30));
        r = t.into_parts().0;
        assert_eq!(r.recovery_codes_left(), 10);
    }

    #[test]
    fn disable_needs_reauth_and_a_factor() {
        let s = Settings::default();
        let mut rng = TestRng(5);
        let mut r = enrolled_record(T0);
        let _ = r.trust_device(T0, "phone", &s, &mut rng).unwrap();
        let now = T0 + 90;
        let reauth = Reauthenticated::at(now);
        let code = active_code_at(&r, now);
        // A policy under which 2FA is the user's choice: turning it off is allowed.
        let optional = Requirement::optional();
        let disable = |r: &TwoFactorRecord, reauth: Reauthenticated, factor: Factor<'_>| {
            r.disable(now, &user(), &optional, reauth, factor.into(), &s)
        };
        assert_eq!(
            disable(&TwoFactorRecord::default(), reauth, Factor::Totp(&code)).unwrap_err(),
            DomainError::NotEnrolled
        );
        assert_eq!(
            disable(&r, Reauthenticated::at(0), Factor::Totp(&code)).unwrap_err(),
            DomainError::ReauthenticationRequired
        );
        // Where the policy requires 2FA it cannot be turned off, even with a good code (and
        // the code is not used up by the refusal).
        assert_eq!(
            r.disable(
                now,
                &user(),
                &Requirement::required(),
                reauth,
                Factor::Totp(&code).into(),
                &s
            )
            .unwrap_err(),
            DomainError::RequiredByPolicy
        );
        let t = disable(&r, reauth, Factor::Totp("abc")).unwrap();
        assert!(!t.is_changed());
        assert!(matches!(t.outcome(), Err(Refusal::Malformed(_))));
        let t = disable(&r, reauth, Factor::MailedCode("123456")).unwrap();
        assert!(matches!(
            t.outcome(),
            Err(Refusal::Invalid(FailureReason::NoPendingFactor))
        ));
        let t = disable(&r, reauth, Factor::Totp(&code)).unwrap();
        assert_eq!(t.outcome(), &Ok(()));
        assert_eq!(
            t.events(),
            &[
                AuditKind::AuthenticatorUsed {
                    authenticator: r.authenticators[0].id.clone()
                },
                AuditKind::Disabled { devices_revoked: 1 }
            ]
        );
        assert!(matches!(
            t.notices(),
            [Notice::Disabled {
                by: DisabledBy::User
            }]
        ));
        let off = t.record();
        assert!(!off.is_enrolled());
        assert!(off.devices.is_empty());
        assert_eq!(off.recovery_codes_left(), 0);
    }

    #[test]
    fn disable_with_a_recovery_code() {
        let s = Settings::default();
        let mut rng = TestRng(6);
        let t = TwoFactorRecord::default()
            .start_enrollment(
                T0,
                &user(),
                &Requirement::required(),
                Reauthenticated::at(T0),
                None,
                "a",
                &s,
                &mut rng,
            )
            .unwrap();
        let code = code_at(t.record(), T0);
        let t = t
            .record()
            .finish_enrollment(T0, &user(), &code, None, &s, &mut rng)
            .unwrap();
        let recovery = t
            .outcome()
            .as_ref()
            .unwrap()
            .recovery_codes()
            .expose_secret()[0]
            .to_owned();
        let t = t
            .record()
            .disable(
                T0 + 5,
                &user(),
                &Requirement::optional(),
                Reauthenticated::at(T0),
                Factor::RecoveryCode(&recovery).into(),
                &s,
            )
            .unwrap();
        assert_eq!(t.outcome(), &Ok(()));
    }

    #[test]
    fn sensitive_calls_take_a_fresh_proof_of_this_user_instead_of_a_code() {
        let s = Settings::default();
        let (r, proof) = enrolled(T0);
        let now = T0 + 60;
        let reauth = Reauthenticated::at(now);
        // Each sensitive call, with a verification: Ok(true) when it went through, Ok(false)
        // when a code was refused in the outcome.
        let calls = |r: &TwoFactorRecord, now: u64, v: Verification<'_>| {
            let mut rng = TestRng(now);
            let disable = r
                .disable(now, &user(), &Requirement::optional(), reauth, v, &s)
                .map(|t| {
                    (
                        t.outcome().is_ok(),
                        t.record().code_checks.count(now, 3_600),
                    )
                });
            let regenerate = r
                .regenerate_recovery_codes(now, &user(), reauth, v, &s, &mut rng)
                .map(|t| {
                    (
                        t.outcome().is_ok(),
                        t.record().code_checks.count(now, 3_600),
                    )
                });
            let rotate = r
                .start_rotation(now, &user(), reauth, v, "a", &s, &mut rng)
                .map(|t| {
                    (
                        t.outcome().is_ok(),
                        t.record().code_checks.count(now, 3_600),
                    )
                });
            [disable, regenerate, rotate]
        };
        // A fresh proof: no code, nothing counted.
        for outcome in calls(&r, now, (&proof).into()) {
            assert_eq!(outcome, Ok((true, 0)));
        }
        // Too old (the same age as a password check), or of a mailed code: a second factor is
        // required.
        for outcome in calls(&r, T0 + s.reauth_max_age, (&proof).into()) {
            assert_eq!(outcome, Err(DomainError::SecondFactorRequired));
        }
        let mailed = proof_of(&r, FactorKind::MailedCode, now);
        for outcome in calls(&r, now, (&mailed).into()) {
            assert_eq!(outcome, Err(DomainError::SecondFactorRequired));
        }
        // Another user's proof, one sealed under another key, one issued before the user's
        // tickets were revoked: not valid.
        let mallory = r
            .issue_proof(
                &UserId::new("mallory"),
                FactorKind::Totp,
                now,
                &s,
                &mut TestRng(1),
            )
            .unwrap();
        let forged = r
            .issue_proof(
                &user(),
                FactorKind::Totp,
                now,
                &foreign_settings(),
                &mut TestRng(2),
            )
            .unwrap();
        let revoked = r.revoke_login_tickets().into_parts().0;
        for (record, p) in [(&r, &mallory), (&r, &forged), (&revoked, &proof)] {
            for outcome in calls(record, now, p.into()) {
                assert_eq!(outcome, Err(DomainError::InvalidProof));
            }
        }
        // A recovery-code proof is as good as a TOTP one.
        let recovery = proof_of(&r, FactorKind::RecoveryCode, now);
        for outcome in calls(&r, now, (&recovery).into()) {
            assert_eq!(outcome, Ok((true, 0)));
        }
        // A wrong code instead of a proof is counted and refused in the outcome.
        let wrong_code = wrong(&active_code_at(&r, now));
        for outcome in calls(&r, now, Factor::Totp(&wrong_code).into()) {
            assert_eq!(outcome, Ok((false, 1)));
        }
    }

    #[test]
    fn admin_reset_and_invite() {
        let s = Settings::default();
        let admin = UserId::new("root");
        assert_eq!(
            TwoFactorRecord::default()
                .reset_by_admin(&admin)
                .unwrap_err(),
            DomainError::NotEnrolled
        );
        let mut r = enrolled_record(T0);
        let _ = r.trust_device(T0, "phone", &s, &mut TestRng(1)).unwrap();
        let t = r.reset_by_admin(&admin).unwrap();
        assert_eq!(
            t.events(),
            &[AuditKind::ResetByAdmin {
                admin: admin.clone(),
                devices_revoked: 1
            }]
        );
        assert!(!t.record().is_enrolled());
        assert!(t.record().devices.is_empty());
        // Every login ticket and proof issued before the reset is refused.
        assert_eq!(t.record().tickets.generation, r.tickets.generation + 1);
        assert_eq!(
            r.invite(&admin, "https://x").unwrap_err(),
            DomainError::AlreadyEnrolled
        );
        let t = t
            .record()
            .invite(&admin, "https://erp.example/2fa")
            .unwrap();
        assert!(!t.is_changed());
        assert!(
            matches!(&t.notices()[0], Notice::Invitation { link, .. } if link == "https://erp.example/2fa")
        );
    }

    #[test]
    fn provisioned_by_mail_lasts_a_day_and_is_confirmed_by_the_user() {
        let s = Settings::builder().issuer("ACME").build().unwrap();
        let mut rng = TestRng(7);
        let admin = UserId::new("root");
        let t = TwoFactorRecord::default()
            .start_enrollment_by_mail_dangerous(T0, &admin, "bob", &s, &mut rng)
            .unwrap();
        assert_eq!(*t.outcome(), T0 + 86_400);
        let uri = t.notices()[0]
            .expose_provisioning_uri()
            .expect("secret mailed");
        assert!(uri.starts_with("otpauth://totp/ACME:bob?secret="));
        assert!(!format!("{:?}", t.notices()).contains(uri));
        let key = t.notices()[0].expose_manual_key().expect("key mailed");
        let secret = crate::Secret::from_base32(key).expect("base32");
        assert!(uri.contains(secret.to_base32().as_str()));
        assert!(!format!("{:?}", t.notices()).contains(key));
        let pending = t.into_parts().0;
        assert_eq!(pending.pending_enrollment_provisioned_by(), Some(&admin));
        assert_eq!(pending.pending_enrollment_started_at(), Some(T0));
        let late = T0 + 86_399;
        let t = pending
            .finish_enrollment(late, &user(), &code_at(&pending, late), None, &s, &mut rng)
            .unwrap();
        assert!(t.outcome().is_ok());
        assert_eq!(
            t.record()
                .start_enrollment_by_mail_dangerous(T0, &admin, "bob", &s, &mut rng)
                .unwrap_err(),
            DomainError::AlreadyEnrolled
        );
    }

    fn mail_code(grace_until: Option<u64>) -> Requirement {
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            grace_until,
            trusted_devices: true,
        }
    }

    /// `start_enrollment` at `now` with a password checked now, and `proof` if any.
    fn start_with(
        r: &TwoFactorRecord,
        now: u64,
        req: &Requirement,
        proof: Option<&SecondFactorProof>,
    ) -> Result<(), DomainError> {
        r.start_enrollment(
            now,
            &user(),
            req,
            Reauthenticated::at(now),
            proof,
            "a",
            &Settings::default(),
            &mut TestRng(now),
        )
        .map(|_| ())
    }

    #[test]
    fn mail_code_policy_needs_a_fresh_mailed_code_proof_to_enroll() {
        let s = Settings::default();
        let mut rng = TestRng(3);
        let none = TwoFactorRecord::default();
        // The password alone: refused under MailCode, with or without an expired grace.
        for req in [mail_code(None), mail_code(Some(T0)), mail_code(Some(0))] {
            assert_eq!(
                start_with(&none, T0, &req, None),
                Err(DomainError::SecondFactorRequired)
            );
        }
        // Enough under every other requirement, and while a grace period runs.
        let block = Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: None,
            trusted_devices: true,
        };
        let exempt = Requirement::Exempt {
            reason: "superuser".into(),
        };
        for req in [
            block.clone(),
            Requirement::optional(),
            Requirement::Off,
            exempt,
            mail_code(Some(T0 + 1)),
        ] {
            assert_eq!(start_with(&none, T0, &req, None), Ok(()), "{req:?}");
        }
        // A proof of a mailed code (from the session that logged in with it) opens it for
        // `reauth_max_age`, exactly.
        let age = s.reauth_max_age;
        let mailed = proof_of(&none, FactorKind::MailedCode, T0);
        assert_eq!(
            start_with(&none, T0, &mail_code(None), Some(&mailed)),
            Ok(())
        );
        assert_eq!(
            start_with(&none, T0 + age - 1, &mail_code(None), Some(&mailed)),
            Ok(())
        );
        assert_eq!(
            start_with(&none, T0 + age, &mail_code(None), Some(&mailed)),
            Err(DomainError::SecondFactorRequired)
        );
        // Only a proof of a mailed code will do ...
        let totp = proof_of(&none, FactorKind::Totp, T0);
        assert_eq!(
            start_with(&none, T0, &mail_code(None), Some(&totp)),
            Err(DomainError::SecondFactorRequired)
        );
        // ... of this user, sealed by this deployment, issued since the last revocation.
        let mallory = none
            .issue_proof(
                &UserId::new("mallory"),
                FactorKind::MailedCode,
                T0,
                &s,
                &mut rng,
            )
            .unwrap();
        let forged = none
            .issue_proof(
                &user(),
                FactorKind::MailedCode,
                T0,
                &foreign_settings(),
                &mut rng,
            )
            .unwrap();
        let revoked = none.revoke_login_tickets().into_parts().0;
        for (record, proof) in [(&none, &mallory), (&none, &forged), (&revoked, &mailed)] {
            assert_eq!(
                start_with(record, T0, &mail_code(None), Some(proof)),
                Err(DomainError::InvalidProof)
            );
        }
        // A mailed-code login completed by someone else's session (recorded in the record)
        // opens nothing: the proof is per session, not per user.
        let mailed_in = TwoFactorRecord {
            mailed_code_login_at: Some(T0),
            ..TwoFactorRecord::default()
        };
        assert_eq!(
            start_with(&mailed_in, T0, &mail_code(None), None),
            Err(DomainError::SecondFactorRequired)
        );
        // The record remembers that login asked this user for a mailed code: a principal
        // the policy answers otherwise (roles or tenant left out) still needs the proof; a
        // running grace period does not.
        let asked = TwoFactorRecord {
            mailed_login_required: true,
            ..TwoFactorRecord::default()
        };
        for req in [Requirement::optional(), block] {
            assert_eq!(
                start_with(&asked, T0, &req, None),
                Err(DomainError::SecondFactorRequired),
                "{req:?}"
            );
        }
        assert_eq!(
            start_with(&asked, T0, &Requirement::optional(), Some(&mailed)),
            Ok(())
        );
        assert_eq!(
            start_with(&asked, T0, &mail_code(Some(T0 + 1)), None),
            Ok(())
        );
        // Still a fresh password check first, and nothing for an enrolled user.
        assert_eq!(
            none.start_enrollment(
                T0,
                &user(),
                &mail_code(None),
                Reauthenticated::at(T0 - age),
                Some(&mailed),
                "a",
                &s,
                &mut rng
            )
            .map(|_| ()),
            Err(DomainError::ReauthenticationRequired)
        );
        assert_eq!(
            start_with(&enrolled_record(T0), T0, &mail_code(None), Some(&mailed)),
            Err(DomainError::AlreadyEnrolled)
        );
        // Resuming a pending enrollment needs the proof too.
        let t = none
            .start_enrollment(
                T0,
                &user(),
                &mail_code(None),
                Reauthenticated::at(T0),
                Some(&mailed),
                "a",
                &s,
                &mut rng,
            )
            .unwrap();
        let r = t.into_parts().0;
        assert_eq!(
            start_with(&r, T0 + 1, &mail_code(None), None),
            Err(DomainError::SecondFactorRequired)
        );
        // Confirming the enrollment clears what the record remembered.
        let asked = TwoFactorRecord {
            mailed_login_required: true,
            mailed_code_login_at: Some(T0),
            ..TwoFactorRecord::default()
        };
        let t = asked
            .start_enrollment(
                T0,
                &user(),
                &mail_code(None),
                Reauthenticated::at(T0),
                Some(&mailed),
                "a",
                &s,
                &mut rng,
            )
            .unwrap();
        assert!(t.record().mailed_login_required);
        assert_eq!(t.record().mailed_code_login_at, Some(T0));
        let r = t.into_parts().0;
        let t = r
            .finish_enrollment(T0, &user(), &code_at(&r, T0), None, &s, &mut rng)
            .unwrap();
        assert!(t.outcome().is_ok());
        assert!(!t.record().mailed_login_required);
        assert_eq!(t.record().mailed_code_login_at, None);
    }

    mod class {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// For any mailed-code requirement (grace or not), any time and any proof of a
            /// mailed code: the password alone enrolls exactly when a grace period is running
            /// or the proof is younger than `reauth_max_age`.
            #[test]
            fn enrolling_under_mail_code_needs_grace_or_a_fresh_mailed_code_proof(
                now in 1_000_000u64..2_000_000_000,
                grace in proptest::option::of(0u64..4_000_000_000),
                proved_ago in proptest::option::of(0u64..10_000),
            ) {
                let s = Settings::default();
                let record = TwoFactorRecord::default();
                let proof = proved_ago.map(|ago| proof_of(&record, FactorKind::MailedCode, now - ago));
                let allowed = grace.is_some_and(|g| now < g)
                    || proved_ago.is_some_and(|ago| ago < s.reauth_max_age);
                let outcome = start_with(&record, now, &mail_code(grace), proof.as_ref());
                if allowed {
                    prop_assert_eq!(outcome, Ok(()));
                } else {
                    prop_assert_eq!(outcome, Err(DomainError::SecondFactorRequired));
                }
            }
        }
    }
}
