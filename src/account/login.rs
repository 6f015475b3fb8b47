//! Login: decide whether a second factor is needed ([`TwoFactorRecord::begin_login`]), then
//! check it ([`TwoFactorRecord::finish_login`]).
//!
//! Both run after the host has checked the password. A login challenge (begun, expires after
//! 15 minutes, or as long as a mailed code) binds the second step to the first.

use core::fmt;
use std::net::IpAddr;

use rand::TryCryptoRng;
use zeroize::Zeroizing;

use crate::audit::AuditKind;
use crate::mail::Notice;
use crate::otp::{Code, VerifyError};
use crate::policy::{Requirement, WhenUnenrolled};

use super::devices::DeviceToken;
use super::mailed::Sent;
use super::recovery::{RECOVERY_CODE_LEN, normalize};
use super::{
    Checked, DeviceId, DomainError, FailureReason, MalformedInput, Refusal, Settings, Transition,
    TwoFactorRecord,
};

/// What the host knows about the request, for notices ("a sign-in from 203.0.113.9, Firefox on
/// Linux, Lyon") and the audit trail. Every field is optional.
///
/// ```
/// use twofactor::account::LoginContext;
/// let ctx = LoginContext::new()
///     .ip("203.0.113.9".parse().unwrap())
///     .device("Firefox on Linux")
///     .location("Lyon, France");
/// assert_eq!(ctx.device.as_deref(), Some("Firefox on Linux"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LoginContext {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// A description of the device or browser.
    pub device: Option<String>,
    /// An approximate location.
    pub location: Option<String>,
}

impl LoginContext {
    /// An empty context.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the IP address.
    #[must_use]
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
    /// Sets the device description.
    #[must_use]
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }
    /// Sets the location.
    #[must_use]
    pub fn location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

/// What the user typed at the second step, and which kind of code it claims to be.
#[derive(Clone, Copy)]
pub enum Factor<'a> {
    /// A code from the authenticator app.
    Totp(&'a str),
    /// One of the recovery codes.
    RecoveryCode(&'a str),
    /// The code from the login e-mail.
    MailedCode(&'a str),
}

impl Factor<'_> {
    /// Which kind of factor this is.
    #[must_use]
    pub const fn kind(&self) -> FactorKind {
        match self {
            Factor::Totp(_) => FactorKind::Totp,
            Factor::RecoveryCode(_) => FactorKind::RecoveryCode,
            Factor::MailedCode(_) => FactorKind::MailedCode,
        }
    }
}

impl fmt::Debug for Factor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Factor::{:?}(..)", self.kind())
    }
}

/// Kinds of second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FactorKind {
    /// A code from the authenticator app.
    Totp,
    /// A recovery code.
    RecoveryCode,
    /// A code sent by e-mail.
    MailedCode,
    /// A trusted-device token.
    TrustedDevice,
}

/// Why a login needs no (further) second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum GrantReason {
    /// The policy switched 2FA off for this user.
    Off,
    /// 2FA is optional and the user has not enabled it.
    NotRequired,
    /// The policy exempts this user (recorded in the audit trail every time).
    Exempt {
        /// The policy's reason (`"superuser"`).
        reason: String,
    },
    /// The device presented a valid trusted-device token.
    TrustedDevice {
        /// Which device.
        device: DeviceId,
    },
    /// 2FA is required but the grace period has not ended: let the user in and ask them to
    /// enroll.
    GracePeriod {
        /// Until when the user may still log in without 2FA.
        enroll_by: u64,
    },
}

/// Why a login is refused before any code is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum DenyReason {
    /// Too many code checks recently.
    Throttled {
        /// When a check is admitted again.
        retry_at: u64,
    },
    /// Too many codes mailed recently, and none is still valid.
    MailThrottled {
        /// When a code may be mailed again.
        retry_at: u64,
    },
}

/// What to do after the password was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginDecision {
    /// Log the user in now.
    Granted {
        /// Why no second factor is needed.
        reason: GrantReason,
    },
    /// Ask for a second factor, then call `finish_login`.
    Challenge {
        /// What the user may submit (TOTP, and recovery codes while some are left).
        methods: Vec<FactorKind>,
        /// When the challenge expires.
        expires_at: u64,
    },
    /// 2FA is required and the user has none: send them to enrollment (after which a
    /// successful `finish_enrollment` completes the login). Nothing else is allowed.
    MustEnroll,
    /// A code was mailed to the user; ask for it, then call `finish_login` with
    /// [`Factor::MailedCode`].
    CodeMailed {
        /// When the code expires.
        expires_at: u64,
    },
    /// Refuse the login for now.
    Denied {
        /// Why.
        reason: DenyReason,
    },
}

/// A successful second step.
#[non_exhaustive]
pub struct LoginGranted {
    /// The factor that was accepted.
    pub factor: FactorKind,
    /// A new trusted-device token, if one was asked for and the policy allows it: set it as a
    /// cookie. Shown once.
    pub device_token: Option<DeviceToken>,
    /// Unused recovery codes left, when one was just used (suggest regenerating when low).
    pub recovery_codes_left: Option<usize>,
}

impl fmt::Debug for LoginGranted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginGranted")
            .field("factor", &self.factor)
            .field("device_token", &self.device_token)
            .field("recovery_codes_left", &self.recovery_codes_left)
            .finish()
    }
}

/// An open login: the password was checked at `issued_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct LoginChallenge {
    pub(crate) issued_at: u64,
    /// Open while `now < expires_at`.
    pub(crate) expires_at: u64,
}

/// A factor parsed into its canonical form.
pub(crate) enum Parsed {
    Totp(Code),
    Recovery(Zeroizing<[u8; RECOVERY_CODE_LEN]>),
    Mailed(Zeroizing<String>),
}

impl TwoFactorRecord {
    /// Parses typed input for `factor` (the TOTP length is the user's own, or the settings'
    /// when not enrolled).
    pub(crate) fn parse_factor(
        &self,
        factor: Factor<'_>,
        settings: &Settings,
    ) -> Result<Parsed, MalformedInput> {
        Ok(match factor {
            Factor::Totp(input) => {
                let digits = self
                    .active
                    .as_ref()
                    .map_or(settings.totp.digits(), |a| a.totp.digits());
                Parsed::Totp(Code::parse(input, digits)?)
            }
            Factor::RecoveryCode(input) => Parsed::Recovery(normalize(input)?),
            Factor::MailedCode(input) => {
                let code = parse_digits(input, settings.mailed_code_digits)?;
                Parsed::Mailed(code)
            }
        })
    }

    /// Verifies a parsed factor, updating replay state and consuming one-time codes. Returns
    /// the recovery codes left when a recovery code was used.
    pub(crate) fn verify_parsed(
        &mut self,
        parsed: &Parsed,
        now: u64,
    ) -> Result<Option<usize>, FailureReason> {
        match parsed {
            Parsed::Totp(code) => {
                let active = self.active.as_mut().ok_or(FailureReason::NoPendingFactor)?;
                match active
                    .totp
                    .verify_code(&active.secret, *code, now, active.last_used_step)
                {
                    Ok(step) => {
                        active.last_used_step = Some(step);
                        Ok(None)
                    }
                    Err(VerifyError::Replayed) => Err(FailureReason::Replayed),
                    Err(_) => Err(FailureReason::WrongCode),
                }
            }
            Parsed::Recovery(symbols) => {
                if self.active.is_none() {
                    return Err(FailureReason::NoPendingFactor);
                }
                let set = self
                    .recovery
                    .as_mut()
                    .ok_or(FailureReason::NoPendingFactor)?;
                set.consume(symbols, now).map(Some)
            }
            Parsed::Mailed(code) => self.check_mailed_code(code, now).map(|()| None),
        }
    }

    /// Whether the login challenge is open at `now`.
    fn challenge_open(&self, now: u64) -> bool {
        self.challenge.as_ref().is_some_and(|c| now < c.expires_at)
    }

    /// Decides what happens after the password was accepted, given the policy's
    /// `requirement` (computed fresh by the caller) and the device's trusted-device token.
    ///
    /// Opens a login challenge when a code is needed, mails a code when the policy says so,
    /// and records a trusted device's use.
    ///
    /// # Errors
    /// [`DomainError::Rng`] if a code must be mailed and the RNG fails.
    pub fn begin_login<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        requirement: &Requirement,
        device_token: Option<&str>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<LoginDecision>, DomainError> {
        let enrolled = self.active.is_some();
        let granted = |reason| LoginDecision::Granted { reason };
        let (devices_allowed, unenrolled) = match requirement {
            Requirement::Off => {
                return Ok(Transition::new(
                    self.clone(),
                    false,
                    granted(GrantReason::Off),
                ));
            }
            Requirement::Exempt { reason } => {
                return Ok(Transition::new(
                    self.clone(),
                    false,
                    granted(GrantReason::Exempt {
                        reason: reason.clone(),
                    }),
                )
                .event(AuditKind::PolicyExemptionApplied {
                    reason: reason.clone(),
                }));
            }
            Requirement::Optional if !enrolled => {
                return Ok(Transition::new(
                    self.clone(),
                    false,
                    granted(GrantReason::NotRequired),
                ));
            }
            Requirement::Optional => (true, None),
            Requirement::Required {
                when_unenrolled,
                grace_until,
                trusted_devices,
            } => (
                *trusted_devices && (enrolled || *when_unenrolled == WhenUnenrolled::MailCode),
                (!enrolled).then_some((*when_unenrolled, *grace_until)),
            ),
        };

        let mut events = Vec::new();
        if let Some(token) = device_token.filter(|_| devices_allowed) {
            if let Some(i) = self.find_device(token, now) {
                let mut next = self.clone();
                let device = next.devices[i].id.clone();
                next.devices[i].last_used_at = Some(now);
                next.challenge = None;
                return Ok(Transition::new(
                    next,
                    true,
                    granted(GrantReason::TrustedDevice { device }),
                )
                .event(AuditKind::LoginSucceeded {
                    factor: FactorKind::TrustedDevice,
                }));
            }
            events.push(AuditKind::DeviceTokenRefused);
        }

        let mut t = self.begin_without_device(now, unenrolled, context, settings, rng)?;
        events.append(&mut t.events);
        t.events = events;
        Ok(t)
    }

    fn begin_without_device<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        unenrolled: Option<(WhenUnenrolled, Option<u64>)>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<LoginDecision>, DomainError> {
        if let Some((_, Some(enroll_by))) = unenrolled
            && now < enroll_by
        {
            return Ok(Transition::new(
                self.clone(),
                false,
                LoginDecision::Granted {
                    reason: GrantReason::GracePeriod { enroll_by },
                },
            )
            .event(AuditKind::GracePeriodLogin { enroll_by }));
        }
        if let Some((WhenUnenrolled::BlockUntilEnrolled, _)) = unenrolled {
            return Ok(
                Transition::new(self.clone(), false, LoginDecision::MustEnroll)
                    .event(AuditKind::LoginBlockedUntilEnrolled),
            );
        }
        if let Some(retry_at) = self.code_checks.blocked_until(
            now,
            settings.code_checks_per_window,
            settings.code_check_window,
        ) {
            return Ok(Transition::new(
                self.clone(),
                false,
                LoginDecision::Denied {
                    reason: DenyReason::Throttled { retry_at },
                },
            )
            .event(AuditKind::LoginThrottled { retry_at }));
        }
        let mut next = self.clone();
        if unenrolled.is_some() {
            // Required, mailed code.
            return Ok(match next.send_mailed_code(now, context, settings, rng)? {
                Sent::New { expires_at, notice } => {
                    Transition::new(next, true, LoginDecision::CodeMailed { expires_at })
                        .event(AuditKind::CodeMailed { expires_at })
                        .notice(notice)
                }
                Sent::Throttled { retry_at } => {
                    let pending = self
                        .mailed
                        .as_ref()
                        .filter(|m| now < m.expires_at && self.challenge_open(now))
                        .map(|m| m.expires_at);
                    let decision = match pending {
                        // The last code still works: point the user at it.
                        Some(expires_at) => LoginDecision::CodeMailed { expires_at },
                        None => LoginDecision::Denied {
                            reason: DenyReason::MailThrottled { retry_at },
                        },
                    };
                    Transition::new(self.clone(), false, decision)
                        .event(AuditKind::MailThrottled { retry_at })
                }
            });
        }
        let expires_at = now.saturating_add(settings.login_challenge_ttl);
        next.challenge = Some(LoginChallenge {
            issued_at: now,
            expires_at,
        });
        next.prune_devices(now);
        let mut methods = vec![FactorKind::Totp];
        if self.recovery_codes_left() > 0 {
            methods.push(FactorKind::RecoveryCode);
        }
        Ok(Transition::new(
            next,
            true,
            LoginDecision::Challenge {
                methods,
                expires_at,
            },
        ))
    }

    /// Checks the second factor of a login begun with [`TwoFactorRecord::begin_login`].
    ///
    /// The check is counted against the throttle before the code is looked at, replayed TOTP
    /// codes and used recovery codes are refused, and on success the challenge closes. With
    /// `remember_device` (a label such as "Firefox on Linux") and a policy that allows trusted
    /// devices, a device token is issued; otherwise `remember_device` is ignored.
    ///
    /// # Errors
    /// [`DomainError::Rng`] if a device token cannot be generated. Refused codes are not
    /// errors: they come back as `Err(`[`Refusal`]`)` in the outcome, with the counted attempt
    /// in the record.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_login<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        requirement: &Requirement,
        factor: Factor<'_>,
        remember_device: Option<&str>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<LoginGranted>>, DomainError> {
        let kind = factor.kind();
        let failed = |reason| AuditKind::LoginFailed {
            factor: kind,
            reason,
        };
        let parsed = match self.parse_factor(factor, settings) {
            Ok(p) => p,
            Err(m) => {
                return Ok(
                    Transition::new(self.clone(), false, Err(Refusal::Malformed(m)))
                        .event(failed(FailureReason::Malformed)),
                );
            }
        };
        let mut next = self.clone();
        if let Err(retry_at) = next.code_checks.admit(
            now,
            settings.code_checks_per_window,
            settings.code_check_window,
        ) {
            return Ok(
                Transition::new(self.clone(), false, Err(Refusal::Throttled { retry_at }))
                    .event(AuditKind::LoginThrottled { retry_at }),
            );
        }
        if !next.challenge_open(now) {
            next.challenge = None;
            let reason = FailureReason::ExpiredChallenge;
            return Ok(
                Transition::new(next, true, Err(Refusal::Invalid(reason))).event(failed(reason))
            );
        }
        let recovery_codes_left = match next.verify_parsed(&parsed, now) {
            Ok(left) => left,
            Err(reason) => {
                let mut t = Transition::new(next, true, Err(Refusal::Invalid(reason)))
                    .event(failed(reason));
                if settings.notify_failed_code
                    && matches!(reason, FailureReason::WrongCode | FailureReason::Replayed)
                {
                    t = t.notice(Notice::FailedCodeAttempt {
                        context: context.clone(),
                    });
                }
                return Ok(t);
            }
        };

        next.challenge = None;
        next.mailed = None;
        next.code_checks.reset();
        let mut events = vec![AuditKind::LoginSucceeded { factor: kind }];
        let mut notices = Vec::new();
        if let Some(left) = recovery_codes_left {
            events.push(AuditKind::RecoveryCodeUsed { remaining: left });
            notices.push(Notice::RecoveryCodeUsed {
                remaining: left,
                context: context.clone(),
            });
        }
        let devices_allowed = match requirement {
            Requirement::Optional => true,
            Requirement::Required {
                trusted_devices, ..
            } => *trusted_devices,
            Requirement::Off | Requirement::Exempt { .. } => false,
        };
        let device_token = match remember_device.filter(|_| devices_allowed) {
            Some(label) => {
                let (token, info) = next.trust_device(now, label, settings, rng)?;
                events.push(AuditKind::DeviceTrusted {
                    device: info.id.clone(),
                });
                notices.push(Notice::DeviceTrusted {
                    label: info.label,
                    context: context.clone(),
                });
                Some(token)
            }
            None => {
                if settings.notify_untrusted_sign_in {
                    notices.push(Notice::SignInFromUntrustedDevice {
                        context: context.clone(),
                    });
                }
                None
            }
        };
        let mut t = Transition::new(
            next,
            true,
            Ok(LoginGranted {
                factor: kind,
                device_token,
                recovery_codes_left,
            }),
        )
        .notices_from(notices);
        t.events = events;
        Ok(t)
    }
}

/// Parses a mailed code: white space ignored, exactly `digits` ASCII digits.
fn parse_digits(input: &str, digits: u8) -> Result<Zeroizing<String>, MalformedInput> {
    use crate::otp::CodeError;
    let mut out = Zeroizing::new(String::with_capacity(usize::from(digits)));
    for (position, c) in input.chars().enumerate() {
        if c.is_whitespace() {
            continue;
        }
        if !c.is_ascii_digit() {
            return Err(CodeError::NotDigits { position }.into());
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(CodeError::Empty.into());
    }
    if out.len() != usize::from(digits) {
        return Err(CodeError::WrongLength {
            expected: digits,
            actual: out.len(),
        }
        .into());
    }
    Ok(out)
}
