//! Login: decide whether a second factor is needed ([`TwoFactorRecord::start_login`]), then
//! check it ([`TwoFactorRecord::finish_login`]).
//!
//! Both run after the host has checked the password. Asking for a TOTP or recovery code stores
//! nothing: `start_login` only reads the record, and `finish_login` checks the code against the
//! throttle, replay protection and the policy. The [`PendingLogin`] that `start_login` hands
//! out binds the second step to the first: `finish_login` requires it, and enforces its
//! deadline and the factors it accepts. Only logins that need new state
//! store it: a mailed code (with the login waiting for it, open as long as the code), a login
//! waiting for enrollment, a trusted device's last use. See the
//! [manual](crate::manual#login-challenges).

use core::fmt;

use rand::TryCryptoRng;
use zeroize::Zeroizing;

use crate::audit::AuditKind;
use crate::mail::Notice;
use crate::otp::{Code, MAX_DIGITS, MIN_DIGITS};
use crate::policy::{Principal, Requirement, WhenUnenrolled};

/// Defined in [`crate::vocabulary`]; reachable here too.
pub use crate::vocabulary::{FactorKind, LoginContext};

use super::authenticators::TotpMatch;
use super::claims::{AssuranceClaims, AuthMethod, CompletedMethod};
use super::devices::DeviceToken;
use super::mailed::Sent;
use super::recovery::{RECOVERY_CODE_LENGTHS, RecoveryInput, normalize, recovery_code_use};
use super::ticket::{
    Nonce, Reader, SecondFactorProof, TokenKind, Unverified, Verification, Writer,
};
use super::{
    Checked, DeviceId, DomainError, FailureReason, MalformedInput, Refusal, Settings, Transition,
    TwoFactorRecord, UserId,
};
use crate::vocabulary::AuthenticatorId;

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

/// Why [`Factor::parse`] found no code in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FactorParseError {
    /// Nothing but white space and hyphens.
    #[error("no code entered")]
    Empty,
    /// A character that no code contains (codes are letters, digits, spaces and hyphens).
    #[error(
        "codes contain letters and digits only (found an invalid character at position {position})"
    )]
    InvalidCharacter {
        /// Position (in characters) of the first offending character.
        position: usize,
    },
}

// Recovery codes are longer than any TOTP code, so the two shapes cannot overlap.
// Recovery codes of every accepted length are longer than any TOTP code.
const _: () = {
    let mut i = 0;
    while i < RECOVERY_CODE_LENGTHS.len() {
        assert!(RECOVERY_CODE_LENGTHS[i] > MAX_DIGITS as usize);
        i += 1;
    }
};

impl<'a> Factor<'a> {
    /// Picks the factor for what the user typed into one input box, by its shape: 6 to 8
    /// digits (white space ignored, `"123 456"`) are a [`Factor::Totp`] code; other letters and
    /// digits are a [`Factor::RecoveryCode`] attempt (recovery codes have more symbols than any
    /// TOTP code, so the two never overlap). The input is not checked further here:
    /// `finish_login` reports a code of the wrong length or alphabet as malformed.
    ///
    /// A mailed code is never guessed: after [`LoginDecision::CodeMailed`], pass the input as
    /// [`Factor::MailedCode`].
    ///
    /// ```
    /// use twofactor::Factor;
    /// use twofactor::vocabulary::FactorKind;
    /// assert_eq!(Factor::parse("123 456")?.kind(), FactorKind::Totp);
    /// assert_eq!(Factor::parse("7K3M-Q9XA-2F")?.kind(), FactorKind::RecoveryCode);
    /// assert!(Factor::parse("  ").is_err());
    /// # Ok::<(), twofactor::account::FactorParseError>(())
    /// ```
    ///
    /// # Errors
    /// [`FactorParseError::Empty`] for nothing but white space and hyphens,
    /// [`FactorParseError::InvalidCharacter`] for a character that is not an ASCII letter or
    /// digit, white space or a hyphen.
    pub fn parse(input: &'a str) -> Result<Self, FactorParseError> {
        let mut digits = 0usize;
        let mut others = 0usize;
        let mut hyphens = false;
        for (position, c) in input.chars().enumerate() {
            if c.is_ascii_digit() {
                digits += 1;
            } else if c.is_ascii_alphabetic() {
                others += 1;
            } else if c == '-' {
                hyphens = true;
            } else if !c.is_whitespace() {
                return Err(FactorParseError::InvalidCharacter { position });
            }
        }
        if digits + others == 0 {
            return Err(FactorParseError::Empty);
        }
        // Exactly what `Code::parse` accepts for some supported length.
        let totp_shape = others == 0
            && !hyphens
            && (usize::from(MIN_DIGITS)..=usize::from(MAX_DIGITS)).contains(&digits);
        Ok(if totp_shape {
            Factor::Totp(input)
        } else {
            Factor::RecoveryCode(input)
        })
    }
}

impl fmt::Debug for Factor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Factor::{:?}(..)", self.kind())
    }
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

/// What to do after the password was accepted.
///
/// A login that cannot go on for now (too many code checks, or too many mailed codes with
/// none still valid) is not a decision: it is refused with
/// [`Refusal::Throttled`] ([`Error::Throttled`](crate::Error::Throttled) from the service),
/// exactly as a throttled `finish_login` is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginDecision {
    /// Log the user in now.
    Granted {
        /// Why no second factor is needed.
        reason: GrantReason,
        /// How the user was authenticated: the password now (`pwd`), and for
        /// [`GrantReason::TrustedDevice`] the remembered device (`remembered_device`, naming
        /// the device). AAL1 either way: a remembered device is not a second factor (see the
        /// [manual](crate::manual#assurance-claims-amr-and-aal)). No proof comes with it.
        claims: AssuranceClaims,
    },
    /// Ask for a second factor, then call `finish_login` with `pending`.
    ///
    /// Nothing is stored for this answer: keep the ticket `pending` in the host's
    /// half-logged-in session ([`PendingLogin::as_str`]; it is sealed, so an unsigned cookie
    /// or a form field will do; cycle the session id when you store it) and pass it to
    /// `finish_login`, which refuses it after its [`expires_at`](PendingLogin::expires_at)
    /// (the time of this answer plus [`Settings::login_challenge_ttl`], 15 minutes by
    /// default) and once it has completed a login.
    Challenge {
        /// The login waiting for a TOTP code (or a recovery code while some are left): see
        /// [`PendingLogin::methods`].
        pending: PendingLogin,
    },
    /// 2FA is required and the user has none: send them to enrollment. Nothing else is
    /// allowed: `finish_login` refuses every factor for this `pending`.
    ///
    /// The password check that preceded `start_login` is the re-authentication enrollment
    /// needs, and the ticket stands for it: keep the ticket in the session and call
    /// `start_forced_enrollment(&pending, account)`, then
    /// `finish_forced_enrollment(&pending, code)`. Confirmed within
    /// [`Settings::login_challenge_ttl`] (15 minutes by default) of this answer, that also
    /// completes the login and uses the ticket up: [`Enrolled::login_completed`] says so, and
    /// the audit trail records a `LoginSucceeded { factor: Totp }`. An enrollment confirmed
    /// without the ticket completes no login. See the
    /// [manual](crate::manual#forced-enrollment-at-login).
    ///
    /// [`Enrolled::login_completed`]: super::Enrolled::login_completed
    MustEnroll {
        /// The login waiting for enrollment ([`PendingStep::Enrollment`]).
        pending: PendingLogin,
    },
    /// A code was mailed to the user; ask for it, then call `finish_login` with `pending` and
    /// [`Factor::MailedCode`].
    CodeMailed {
        /// The login waiting for the mailed code, open as long as the code
        /// ([`PendingStep::MailedCode`]).
        pending: PendingLogin,
    },
    /// A code was to be mailed, but the mailer failed (the mail server is down or refused
    /// it): tell the user the code could not be sent and offer to send a new one. Keep
    /// `pending` exactly as for [`CodeMailed`](Self::CodeMailed): once the mail server is
    /// back, `resend_mailed_code(&pending, ..)` mails a fresh code, and `finish_login` takes
    /// it. A code mailed earlier that did reach the user still works. Only the service
    /// answers this (the record's own `start_login` answers `CodeMailed` before anything is
    /// sent; see [`CodeSend`](super::CodeSend)).
    CodeNotSent {
        /// The login waiting for a mailed code ([`PendingStep::MailedCode`]).
        pending: PendingLogin,
        /// The mailer's error, to log (not to show the user).
        error: crate::mail::MailFailure,
    },
}

impl LoginDecision {
    /// Whether the host should delete the device's trusted-device cookie: `true` for every
    /// decision reached without honouring a device token, because a token presented with this
    /// login was refused (expired, revoked, another user's, garbage) or is not honoured under
    /// the current policy. `false` when the token let the user in
    /// ([`GrantReason::TrustedDevice`]) and when the policy needed no second factor at all
    /// ([`GrantReason::Off`], [`GrantReason::Exempt`], [`GrantReason::NotRequired`]: the token
    /// was not looked at and may still be good).
    ///
    /// Answers from the decision alone, so it is also `true` when no cookie was sent; delete
    /// only a cookie the request carried (see [`crate::cookie`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::account::GrantReason;
    /// use twofactor::{LoginContext, LoginDecision, MemoryStore, Principal};
    /// use twofactor::{Requirement, EnrollmentStatus, TwoFactor};
    /// let tf = TwoFactor::builder(MemoryStore::new())
    ///     .policy(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required())
    ///     .build();
    /// let alice = Principal::new("alice");
    /// // A cookie that is not a token of hers: the login goes on without it.
    /// let decision = tf.start_login(&alice, Some(&"ab".repeat(32)), &LoginContext::new()).await?;
    /// assert!(matches!(decision, LoginDecision::MustEnroll { .. }));
    /// assert!(decision.forget_device_cookie());
    /// // Where 2FA is optional and bob has none, his cookie is not looked at: keep it.
    /// let optional = TwoFactor::new(MemoryStore::new());
    /// let bob = optional.start_login(&Principal::new("bob"), None, &LoginContext::new()).await?;
    /// assert!(matches!(bob, LoginDecision::Granted { reason: GrantReason::NotRequired, .. }));
    /// assert!(!bob.forget_device_cookie());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub const fn forget_device_cookie(&self) -> bool {
        match self {
            LoginDecision::Granted { reason, .. } => {
                matches!(reason, GrantReason::GracePeriod { .. })
            }
            LoginDecision::Challenge { .. }
            | LoginDecision::MustEnroll { .. }
            | LoginDecision::CodeMailed { .. }
            | LoginDecision::CodeNotSent { .. } => true,
        }
    }

    /// The login waiting for its second step ([`Challenge`](Self::Challenge),
    /// [`CodeMailed`](Self::CodeMailed), [`CodeNotSent`](Self::CodeNotSent),
    /// [`MustEnroll`](Self::MustEnroll)): keep it in the session for `finish_login` (or
    /// enrollment, or a resend). `None` for [`Granted`](Self::Granted).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::{LoginContext, MemoryStore, Principal, TwoFactor};
    /// let tf = TwoFactor::new(MemoryStore::new()); // optional 2FA
    /// let decision = tf.start_login(&Principal::new("bob"), None, &LoginContext::new()).await?;
    /// assert!(decision.pending().is_none()); // bob has no 2FA: granted
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub const fn pending(&self) -> Option<&PendingLogin> {
        match self {
            LoginDecision::Granted { .. } => None,
            LoginDecision::Challenge { pending }
            | LoginDecision::MustEnroll { pending }
            | LoginDecision::CodeMailed { pending }
            | LoginDecision::CodeNotSent { pending, .. } => Some(pending),
        }
    }

    /// Why a [`Granted`](Self::Granted) decision needed no second factor (`None` for the
    /// others).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::account::GrantReason;
    /// use twofactor::{LoginContext, MemoryStore, Principal, TwoFactor};
    /// let tf = TwoFactor::new(MemoryStore::new()); // optional 2FA
    /// let decision = tf.start_login(&Principal::new("bob"), None, &LoginContext::new()).await?;
    /// assert_eq!(decision.grant_reason(), Some(&GrantReason::NotRequired));
    /// assert_eq!(decision.claims().unwrap().amr(), ["pwd"]);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub const fn grant_reason(&self) -> Option<&GrantReason> {
        match self {
            LoginDecision::Granted { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The assurance claims of a [`Granted`](Self::Granted) decision (`None` for the others:
    /// their claims come with the grant that completes them).
    #[must_use]
    pub const fn claims(&self) -> Option<&AssuranceClaims> {
        match self {
            LoginDecision::Granted { claims, .. } => Some(claims),
            _ => None,
        }
    }

    /// [`pending`](Self::pending), by value.
    #[must_use]
    pub fn into_pending(self) -> Option<PendingLogin> {
        match self {
            LoginDecision::Granted { .. } => None,
            LoginDecision::Challenge { pending }
            | LoginDecision::MustEnroll { pending }
            | LoginDecision::CodeMailed { pending }
            | LoginDecision::CodeNotSent { pending, .. } => Some(pending),
        }
    }
}

/// A successful second step.
///
/// Two fields ask the host to act before it goes on: when
/// [`must_regenerate_recovery_codes`](Self::must_regenerate_recovery_codes) is set, send the
/// user to make new recovery codes now (the login's [`proof`](Self::proof) is fresh enough for
/// [`regenerate_recovery_codes`](crate::TwoFactor::regenerate_recovery_codes)); when
/// [`recovery_codes_low`](Self::recovery_codes_low) is `Some`, show the hint. The `axum`
/// module does both.
#[non_exhaustive]
pub struct LoginGranted {
    /// The factor that was accepted.
    pub factor: FactorKind,
    /// A new trusted-device token, if one was asked for and the policy allows it: set it as a
    /// cookie. Shown once.
    pub device_token: Option<DeviceToken>,
    /// Unused recovery codes left, when one was just used.
    pub recovery_codes_left: Option<usize>,
    /// `Some(left)` when the user has at most
    /// [`Settings::recovery_codes_low_at`] unused recovery codes (3 by default), whichever
    /// factor this login used: show "generate new recovery codes".
    pub recovery_codes_low: Option<usize>,
    /// The user has no recovery code left: send them to make new ones now, before anything
    /// else (one lost phone from now, they could not log in). Set at every login until they
    /// do; [`TwoFactorStatus::must_regenerate_recovery_codes`](super::TwoFactorStatus) says the
    /// same.
    pub must_regenerate_recovery_codes: bool,
    /// How the user was authenticated: the password (`pwd`, when it was checked) and the
    /// factor just verified (`otp` or `lookup_secret`: AAL2; `email_code`: AAL1). The same
    /// claims are sealed in [`proof`](Self::proof).
    pub claims: AssuranceClaims,
    /// Proof of the second factor just verified: keep it in the (new) session; sensitive
    /// calls such as enrolling under a mailed-code policy or turning 2FA off take it while it
    /// is fresh.
    pub proof: SecondFactorProof,
    /// The authenticator that was accepted: the TOTP authenticator whose code matched, or
    /// the security key that signed.
    pub authenticator: Option<AuthenticatorId>,
    /// The policy requires a phishing-resistant factor of this user
    /// ([`Requirement::PhishingResistant`]) and they have no security key yet: this login
    /// was let in with a code to **escalate**. Send them to register a security key before
    /// anything else (the axum module does); once they have one, codes no longer log them in.
    pub needs_security_key: bool,
}

impl fmt::Debug for LoginGranted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginGranted")
            .field("factor", &self.factor)
            .field("device_token", &self.device_token)
            .field("recovery_codes_left", &self.recovery_codes_left)
            .field("recovery_codes_low", &self.recovery_codes_low)
            .field(
                "must_regenerate_recovery_codes",
                &self.must_regenerate_recovery_codes,
            )
            .field("claims", &self.claims)
            .field("proof", &self.proof)
            .field("authenticator", &self.authenticator)
            .field("needs_security_key", &self.needs_security_key)
            .finish()
    }
}

/// What a [`PendingLogin`] waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum PendingStep {
    /// A code from the authenticator app or a recovery code ([`LoginDecision::Challenge`]).
    SecondFactor {
        /// What the user may submit: [`FactorKind::Totp`], and [`FactorKind::RecoveryCode`]
        /// while some are left.
        methods: Vec<FactorKind>,
    },
    /// The code from the login e-mail ([`LoginDecision::CodeMailed`]).
    MailedCode {
        /// When the mailed code expires (a resent code has its own expiry; the login's
        /// deadline stays [`PendingLogin::expires_at`]).
        code_expires_at: u64,
    },
    /// Enrollment of an authenticator ([`LoginDecision::MustEnroll`]): no factor is accepted;
    /// finish it with enrollment.
    Enrollment,
}

/// The login ticket: a login whose password was checked and that waits for its second step.
/// [`LoginDecision::Challenge`], [`LoginDecision::CodeMailed`] and
/// [`LoginDecision::MustEnroll`] hand it to the host, to keep between the two requests and give
/// back to `finish_login` (or, for `MustEnroll`, to the forced set-up calls). The host rebuilds
/// nothing: the ticket carries the [`Principal`] the policy was asked about, when the password
/// was checked, the deadline and which factors are accepted, and the library enforces them.
///
/// # Safe where the client can write it
/// The ticket is **sealed**: its claims are MAC'd (HMAC-SHA-256) under the service's
/// tickets-and-proofs key ([`ServiceKeys`](super::ServiceKeys)), and serialized it is one opaque
/// string ([`as_str`](Self::as_str), or serde as a string). Keeping it in an unsigned cookie or
/// a hidden form field is safe:
/// - any edit (another user, roles, tenant, a later deadline, other factors, another step), a
///   token of another kind or one made under another key is refused with
///   `Error::InvalidTicket` before anything is loaded: nothing checked, nothing counted
///   against the user it names, nothing saved;
/// - it is **single-use**: once a login completes with it, it is refused
///   (`Error::LoginExpired`), and so is every ticket of the user issued before it (their
///   other logins still waiting for a second step start again); so is one past its deadline;
/// - it is **revocable**: `TwoFactor::revoke_login_tickets` (call it when the password
///   changes) and an administrator's reset refuse every ticket issued before.
///
/// Every app server of a deployment must share the key (`TwoFactorBuilder::keys` or
/// `sealed`): a ticket from a server with another key is refused, never accepted.
///
/// The accessors show the claims of the value at hand. A ticket parsed back from a string is
/// not verified until a call takes it: use its claims for display, never for a decision of
/// your own. It holds nothing secret, but it stands for a password check: keep it out of
/// URLs and logs, and **cycle the session id** when you store it and again when the login
/// completes (session fixation: someone who planted the session id would otherwise share the
/// login).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::{Error, LoginContext, LoginDecision, MemoryStore, PendingLogin, Principal, TwoFactor};
/// use twofactor::vocabulary::FactorKind;
/// # use twofactor::{Requirement, EnrollmentStatus};
/// let tf = TwoFactor::builder(MemoryStore::new())
///     .policy(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required())
///     .build();
/// let decision = tf.start_login(&Principal::new("alice"), None, &LoginContext::new()).await?;
/// let LoginDecision::MustEnroll { pending } = decision else { unreachable!() };
/// let cookie = pending.as_str().to_owned(); // opaque; fine in a cookie or a form field
/// let back: PendingLogin = cookie.parse()?;
/// assert_eq!(back, pending);
/// assert_eq!(back.user().as_str(), "alice");
/// // An edited ticket is refused before anything else.
/// let mut edited = cookie.clone().into_bytes();
/// edited[10] = if edited[10] == b'0' { b'1' } else { b'0' };
/// let edited: PendingLogin = String::from_utf8(edited)?.parse().unwrap_or(back);
/// # let _ = edited;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    principal: Principal,
    password_checked_at: u64,
    expires_at: u64,
    step: PendingStep,
    nonce: Nonce,
    generation: u64,
    token: String,
}

/// Why a serialized [`PendingLogin`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PendingLoginError {
    /// `expires_at` is not after `password_checked_at`.
    #[error("a pending login must expire after its password check")]
    ExpiresBeforeIssued,
    /// A second-factor step lists no factor, one twice, or a factor that is not a TOTP code,
    /// a recovery code or a security key.
    #[error(
        "a second-factor step accepts TOTP codes, recovery codes and security keys only, at least one"
    )]
    InvalidMethods,
    /// Not a login ticket this crate wrote.
    #[error("not a login ticket")]
    Malformed,
}

impl PendingLogin {
    /// Issues a sealed ticket for `principal` whose password was checked at
    /// `password_checked_at`, open for `ttl` seconds (at least 1), under the record's
    /// current ticket `generation`.
    pub(crate) fn issue<R: TryCryptoRng + ?Sized>(
        principal: Principal,
        password_checked_at: u64,
        ttl: u64,
        step: PendingStep,
        generation: u64,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Self, DomainError> {
        let mut nonce = [0u8; 16];
        rng.try_fill_bytes(&mut nonce)
            .map_err(|_| DomainError::Rng)?;
        let mut p = PendingLogin {
            principal,
            password_checked_at,
            expires_at: password_checked_at.saturating_add(ttl.max(1)),
            step,
            nonce,
            generation,
            token: String::new(),
        };
        p.token = p
            .encode()
            .seal(TokenKind::LoginTicket, settings.ticket_key()?)?;
        Ok(p)
    }

    fn encode(&self) -> Writer {
        let mut w = Writer::new(TokenKind::LoginTicket);
        w.principal(&self.principal);
        w.u64(self.password_checked_at);
        w.u64(self.expires_at);
        match &self.step {
            PendingStep::SecondFactor { methods } => {
                w.u8(1);
                w.u8(u8::try_from(methods.len()).unwrap_or(u8::MAX));
                for m in methods {
                    w.factor(*m);
                }
            }
            PendingStep::MailedCode { code_expires_at } => {
                w.u8(2);
                w.u64(*code_expires_at);
            }
            PendingStep::Enrollment => w.u8(3),
        }
        w.u64(self.generation);
        for b in self.nonce {
            w.u8(b);
        }
        w
    }

    fn decode(mut r: Reader<'_>, token: &str) -> Result<Self, DomainError> {
        let principal = r.principal()?;
        let password_checked_at = r.u64()?;
        let expires_at = r.u64()?;
        let step = match r.u8()? {
            1 => {
                let n = r.u8()?;
                let mut methods = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    methods.push(r.factor()?);
                }
                PendingStep::SecondFactor { methods }
            }
            2 => PendingStep::MailedCode {
                code_expires_at: r.u64()?,
            },
            3 => PendingStep::Enrollment,
            _ => return Err(DomainError::InvalidTicket),
        };
        let generation = r.u64()?;
        let nonce = r.nonce()?;
        r.finish()?;
        let p = PendingLogin {
            principal,
            password_checked_at,
            expires_at,
            step,
            nonce,
            generation,
            token: token.to_owned(),
        };
        p.check_shape().map_err(|_| DomainError::InvalidTicket)?;
        Ok(p)
    }

    fn check_shape(&self) -> Result<(), PendingLoginError> {
        if self.expires_at <= self.password_checked_at {
            return Err(PendingLoginError::ExpiresBeforeIssued);
        }
        if let PendingStep::SecondFactor { methods } = &self.step {
            let ok = !methods.is_empty()
                && methods.len() <= 3
                && methods.iter().all(|m| {
                    matches!(
                        m,
                        FactorKind::Totp | FactorKind::RecoveryCode | FactorKind::SecurityKey
                    )
                })
                && methods
                    .iter()
                    .enumerate()
                    .all(|(i, m)| !methods[..i].contains(m));
            if !ok {
                return Err(PendingLoginError::InvalidMethods);
            }
        }
        Ok(())
    }

    /// Checks the seal under the settings' ticket key: the claims are exactly what this
    /// deployment issued.
    ///
    /// # Errors
    /// [`DomainError::InvalidTicket`] for anything else; [`DomainError::Rng`] if no key is
    /// configured and none could be made.
    pub(crate) fn verify(&self, settings: &Settings) -> Result<(), DomainError> {
        let key = settings.ticket_key()?;
        let u = Unverified::parse(&self.token)?;
        let decoded = Self::decode(u.verified(TokenKind::LoginTicket, key)?, &self.token)?;
        if decoded == *self {
            Ok(())
        } else {
            Err(DomainError::InvalidTicket)
        }
    }

    /// The ticket's nonce (what the record remembers once it is used).
    pub(crate) const fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// The record's ticket generation when it was issued.
    pub(crate) const fn generation(&self) -> u64 {
        self.generation
    }

    /// The sealed ticket: the one string to keep between the two steps.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The principal the policy was asked about at `start_login` (and is asked about again at
    /// `finish_login`).
    #[must_use]
    pub const fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The user logging in.
    #[must_use]
    pub const fn user(&self) -> &UserId {
        &self.principal.user
    }

    /// When the password was checked (when `start_login` ran).
    #[must_use]
    pub const fn password_checked_at(&self) -> u64 {
        self.password_checked_at
    }

    /// Until when the second step may come: open while `now < expires_at`. The password check
    /// plus [`Settings::login_challenge_ttl`] (15 minutes by default); for a mailed code, the
    /// mailed code's expiry ([`Settings::mailed_code_ttl`], 1 hour by default: mail can take
    /// a while, and the stored code bounds the login anyway; a resent code does not extend
    /// it).
    /// End the host's half-logged-in session then too.
    #[must_use]
    pub const fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether the second step may still come at `now` (by the deadline alone; a used or
    /// revoked ticket is refused by the call that takes it).
    #[must_use]
    pub const fn is_open(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// What the login waits for.
    #[must_use]
    pub const fn step(&self) -> &PendingStep {
        &self.step
    }

    /// The factors the user may submit (empty for [`PendingStep::Enrollment`]).
    #[must_use]
    pub fn methods(&self) -> &[FactorKind] {
        match &self.step {
            PendingStep::SecondFactor { methods } => methods,
            PendingStep::MailedCode { .. } => &[FactorKind::MailedCode],
            PendingStep::Enrollment => &[],
        }
    }

    /// Whether `finish_login` takes a factor of this kind.
    #[must_use]
    pub fn accepts(&self, kind: FactorKind) -> bool {
        self.methods().contains(&kind)
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("principal", &self.principal)
            .field("password_checked_at", &self.password_checked_at)
            .field("expires_at", &self.expires_at)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl core::str::FromStr for PendingLogin {
    type Err = PendingLoginError;
    /// Parses a ticket written by [`as_str`](PendingLogin::as_str). Only its form is checked
    /// here; the call that takes it checks the seal, the deadline, single use and revocation.
    fn from_str(s: &str) -> Result<Self, PendingLoginError> {
        let u = Unverified::parse(s).map_err(|_| PendingLoginError::Malformed)?;
        let r = u
            .claims(TokenKind::LoginTicket)
            .map_err(|_| PendingLoginError::Malformed)?;
        Self::decode(r, s).map_err(|_| PendingLoginError::Malformed)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for PendingLogin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.token)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for PendingLogin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An open login that needs stored state (one waiting for a mailed code, or for enrollment):
/// the password was checked at `issued_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct LoginChallenge {
    pub(crate) issued_at: u64,
    /// Open while `now < expires_at`.
    pub(crate) expires_at: u64,
}

/// What a verified factor did: the recovery codes left after one was used, the TOTP
/// authenticator that accepted a code.
pub(crate) struct Verified {
    pub(crate) recovery_left: Option<usize>,
    pub(crate) totp: Option<TotpMatch>,
    /// The security key that signed.
    pub(crate) key: Option<AuthenticatorId>,
}

impl Verified {
    /// A security key's signature.
    #[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
    pub(crate) fn key(id: AuthenticatorId) -> Self {
        Verified {
            recovery_left: None,
            totp: None,
            key: Some(id),
        }
    }

    /// The audit events naming the authenticator used, if a TOTP code or a key was.
    pub(crate) fn events(&self) -> Vec<AuditKind> {
        let mut events = self
            .totp
            .as_ref()
            .map(TotpMatch::events)
            .unwrap_or_default();
        if let Some(id) = &self.key {
            events.push(AuditKind::AuthenticatorUsed {
                authenticator: id.clone(),
            });
        }
        events
    }

    /// The authenticator used.
    fn authenticator(&self) -> Option<AuthenticatorId> {
        self.totp
            .as_ref()
            .map(|m| m.id.clone())
            .or_else(|| self.key.clone())
    }
}

/// A factor parsed into its canonical form.
pub(crate) enum Parsed {
    Totp(Code),
    Recovery(RecoveryInput),
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
                // The length typed, if some authenticator of the user has codes that long;
                // else the first one's (or the settings'), for the error.
                let typed = input.chars().filter(char::is_ascii_digit).count();
                let lengths = self
                    .authenticators
                    .iter()
                    .filter_map(|a| a.totp_factor())
                    .map(|t| t.params.digits());
                let digits = lengths
                    .clone()
                    .find(|d| usize::from(*d) == typed)
                    .or_else(|| lengths.clone().next())
                    .unwrap_or(settings.totp.digits());
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
    /// A TOTP code cannot be checked against a sealed secret (the record was loaded without
    /// its cipher): a misconfiguration, not a wrong code, so it fails closed with
    /// [`DomainError::SecretSealed`] before an attempt is counted.
    pub(crate) fn ensure_totp_checkable(&self, factor: &Factor<'_>) -> Result<(), DomainError> {
        let sealed = self
            .authenticators
            .iter()
            .filter_map(|a| a.totp_factor())
            .any(|t| t.secret.is_sealed());
        if sealed && matches!(factor, Factor::Totp(_)) {
            return Err(DomainError::SecretSealed);
        }
        Ok(())
    }

    pub(crate) fn verify_parsed(
        &mut self,
        parsed: &Parsed,
        now: u64,
        only: Option<&AuthenticatorId>,
        settings: &Settings,
    ) -> Result<Verified, FailureReason> {
        match parsed {
            Parsed::Totp(code) => self.verify_totp(*code, now, only).map(|m| Verified {
                recovery_left: None,
                totp: Some(m),
                key: None,
            }),
            Parsed::Recovery(symbols) => {
                if !self.is_enrolled() {
                    return Err(FailureReason::NoPendingFactor);
                }
                let set = self
                    .recovery
                    .as_mut()
                    .ok_or(FailureReason::NoPendingFactor)?;
                set.consume(symbols, now, &settings.code_keys)
                    .map(|left| Verified {
                        recovery_left: Some(left),
                        totp: None,
                        key: None,
                    })
            }
            Parsed::Mailed(code) => {
                self.check_mailed_code(code, now, &settings.code_keys)
                    .map(|()| Verified {
                        recovery_left: None,
                        totp: None,
                        key: None,
                    })
            }
        }
    }

    /// Refuses a ticket this deployment did not seal ([`DomainError::InvalidTicket`]), one past
    /// its deadline, already used, or issued before the user's tickets were revoked
    /// ([`DomainError::LoginExpired`]). Nothing is counted: the caller stops here.
    pub(crate) fn ensure_ticket_usable(
        &self,
        pending: &PendingLogin,
        now: u64,
        settings: &Settings,
    ) -> Result<(), DomainError> {
        pending.verify(settings)?;
        if !pending.is_open(now)
            || pending.generation() != self.tickets.generation
            || self
                .tickets
                .is_used(pending.nonce(), pending.password_checked_at())
        {
            return Err(DomainError::LoginExpired);
        }
        Ok(())
    }

    /// A sealed proof that `user` passed `factor` at `now`, under the record's current ticket
    /// generation, claiming that factor alone (the tests' proofs).
    #[cfg(test)]
    pub(crate) fn issue_proof<R: TryCryptoRng + ?Sized>(
        &self,
        user: &UserId,
        factor: FactorKind,
        now: u64,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<SecondFactorProof, DomainError> {
        self.issue_proof_naming(user, factor, now, None, None, settings, rng)
    }

    /// A sealed proof that `user` passed `factor` at `now`, under the record's current ticket
    /// generation. Its claims date the password check that began a login
    /// (`password_checked_at`, when there was one) and name the authenticator whose code was
    /// verified (for a TOTP code).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn issue_proof_naming<R: TryCryptoRng + ?Sized>(
        &self,
        user: &UserId,
        factor: FactorKind,
        now: u64,
        password_checked_at: Option<u64>,
        authenticator: Option<&AuthenticatorId>,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<SecondFactorProof, DomainError> {
        let mut nonce = [0u8; 16];
        rng.try_fill_bytes(&mut nonce)
            .map_err(|_| DomainError::Rng)?;
        // A security key proves `hwk`, or `swk` when its credential may be synced.
        let method = match authenticator
            .filter(|_| factor == FactorKind::SecurityKey)
            .and_then(|id| self.authenticators.iter().find(|a| a.id == *id))
            .and_then(|a| a.security_key())
        {
            Some(key) => key.method(),
            None => AuthMethod::of_factor(factor),
        };
        SecondFactorProof::issue(
            user,
            factor,
            now,
            self.tickets.generation,
            factor_claims(method, factor, now, password_checked_at, authenticator),
            &nonce,
            settings.ticket_key()?,
        )
    }

    /// Checks a proof for a sensitive call on this record (which must be `user`'s): sealed by
    /// this deployment, for `user`, of one of `factors`, not older than
    /// [`Settings::reauth_max_age`], and issued under the current ticket generation.
    ///
    /// # Errors
    /// [`DomainError::InvalidProof`] (forged, altered, another user's, revoked),
    /// [`DomainError::SecondFactorRequired`] (too old, or of another factor).
    pub(crate) fn check_proof(
        &self,
        proof: &SecondFactorProof,
        user: &UserId,
        factors: &[FactorKind],
        now: u64,
        settings: &Settings,
    ) -> Result<(), DomainError> {
        self.check_proof_within(proof, user, factors, now, settings.reauth_max_age, settings)
    }

    /// [`check_proof`](Self::check_proof) with the host's own maximum age (a step-up guard's
    /// "second factor in the last N minutes").
    pub(crate) fn check_proof_within(
        &self,
        proof: &SecondFactorProof,
        user: &UserId,
        factors: &[FactorKind],
        now: u64,
        max_age: u64,
        settings: &Settings,
    ) -> Result<(), DomainError> {
        proof.verify(settings.ticket_key()?)?;
        if proof.user() != user || proof.generation() != self.tickets.generation {
            return Err(DomainError::InvalidProof);
        }
        if !factors.contains(&proof.factor()) || !proof.is_fresh(now, max_age) {
            return Err(DomainError::SecondFactorRequired);
        }
        Ok(())
    }

    /// Step-up: the user proves a TOTP or recovery code again, with no login side effects:
    /// counted by the throttle, replay-protected, audited. Returns a fresh proof for `user`
    /// (this record must be theirs), whose claims name the factor alone (the password is the
    /// session's: [`AssuranceClaims::merge`] the two). A recovery code used here is audited
    /// and notified with the count left, like at login.
    ///
    /// # Errors
    /// [`DomainError::NotEnrolled`], [`DomainError::SecretSealed`],
    /// [`DomainError::UnknownCodeKey`], [`DomainError::Rng`]. A refused code comes back in
    /// the outcome.
    pub fn verify_second_factor<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        user: &UserId,
        factor: Factor<'_>,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<SecondFactorProof>>, DomainError> {
        if !self.is_enrolled() {
            return Err(DomainError::NotEnrolled);
        }
        let kind = factor.kind();
        let checked = self.check_verification(
            now,
            user,
            Verification::Code(factor),
            crate::audit::Operation::StepUp,
            settings,
        )?;
        let (mut next, used) = match checked {
            Ok(next) => next,
            Err(t) => return Ok((*t).map(Err)),
        };
        next.code_checks.reset();
        let authenticator = used_authenticator(&used);
        let proof = next.issue_proof_naming(user, kind, now, None, authenticator, settings, rng)?;
        let remaining = next.recovery_codes_left();
        let mut t = Transition::new(next, true, Ok(proof))
            .event(AuditKind::SecondFactorVerified { factor: kind })
            .events_from(used);
        if kind == FactorKind::RecoveryCode {
            t = t.recovery_code_used(remaining, Some(&LoginContext::new()), settings);
        }
        Ok(t)
    }

    /// Whether a login waiting for a mailed code is open at `now`.
    fn challenge_open(&self, now: u64) -> bool {
        self.challenge.as_ref().is_some_and(|c| now < c.expires_at)
    }

    /// Decides what happens after the password was accepted, given the policy's
    /// `requirement` (computed fresh by the caller) and the device's trusted-device token.
    ///
    /// Read-only (an unchanged transition, nothing to save) for every answer that needs no
    /// new state: [`LoginDecision::Challenge`] (a TOTP or recovery code is asked for; nothing
    /// is stored, see [`TwoFactorRecord::finish_login`]), a policy grant (off, not required,
    /// exempt, grace period) and a throttled login. It changes the record only to mail
    /// a code (the hashed code and the login waiting for it, both expiring), to record a
    /// trusted device's use, and to record a login waiting for enrollment when the answer is
    /// [`LoginDecision::MustEnroll`] (completed by [`TwoFactorRecord::finish_enrollment`]).
    ///
    /// A login that would need a code while codes cannot be checked (too many checks
    /// recently), or a mailed code while none may be sent and none is still valid, is refused
    /// with `Err(`[`Refusal::Throttled`]`)` in the outcome (audited as `LoginThrottled` or
    /// `MailThrottled`): the same refusal `finish_login` gives, so a host handles throttling
    /// in one place. A valid trusted-device token still logs in while codes are throttled.
    ///
    /// `principal` is the user logging in as the policy saw them; `now` is the time of the
    /// password check. Every answer that waits for a second step carries a [`PendingLogin`]
    /// for `principal`, which [`TwoFactorRecord::finish_login`] requires.
    ///
    /// # Errors
    /// [`DomainError::Rng`] if a code must be mailed and the RNG fails.
    #[allow(clippy::too_many_arguments)]
    pub fn start_login<R: TryCryptoRng + ?Sized>(
        &self,
        principal: &Principal,
        now: u64,
        requirement: &Requirement,
        device_token: Option<&str>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<LoginDecision>>, DomainError> {
        let mut t = self.decide_login(
            principal,
            now,
            requirement,
            device_token,
            context,
            settings,
            rng,
        )?;
        // A user no longer asked for a mailed code (the policy changed) may enroll with the
        // password again: forget that they were.
        let mailed_now = matches!(
            requirement,
            Requirement::Required {
                when_unenrolled: WhenUnenrolled::MailCode,
                ..
            }
        );
        if !self.is_enrolled() && t.record.mailed_login_required && !mailed_now {
            t.record.mailed_login_required = false;
            t.changed = true;
        }
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_login<R: TryCryptoRng + ?Sized>(
        &self,
        principal: &Principal,
        now: u64,
        requirement: &Requirement,
        device_token: Option<&str>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<LoginDecision>>, DomainError> {
        let enrolled = self.is_enrolled();
        let granted = |reason| Ok(grant(reason, now));
        let (devices_allowed, unenrolled) = match requirement {
            Requirement::Off if !enrolled => {
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
            Requirement::Optional { .. } if !enrolled => {
                return Ok(Transition::new(
                    self.clone(),
                    false,
                    granted(GrantReason::NotRequired),
                ));
            }
            Requirement::Optional { trusted_devices } => (*trusted_devices, None),
            // A security key only: no remembered device, and no code once the user has a key
            // (see `begin_without_device`).
            Requirement::PhishingResistant => (
                false,
                (!enrolled).then_some((WhenUnenrolled::BlockUntilEnrolled, None)),
            ),
            // Fail closed: `Off` never lets a user with an active factor in on the password
            // alone (only an explicit, audited `Exempt` does); they are challenged.
            Requirement::Off => (false, None),
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

        let phishing_resistant = matches!(requirement, Requirement::PhishingResistant);
        let mut t = self.begin_without_device(
            principal,
            now,
            unenrolled,
            phishing_resistant,
            context,
            settings,
            rng,
        )?;
        events.append(&mut t.events);
        t.events = events;
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn begin_without_device<R: TryCryptoRng + ?Sized>(
        &self,
        principal: &Principal,
        now: u64,
        unenrolled: Option<(WhenUnenrolled, Option<u64>)>,
        phishing_resistant: bool,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<LoginDecision>>, DomainError> {
        if let Some((_, Some(enroll_by))) = unenrolled
            && now < enroll_by
        {
            return Ok(Transition::new(
                self.clone(),
                false,
                Ok(grant(GrantReason::GracePeriod { enroll_by }, now)),
            )
            .event(AuditKind::GracePeriodLogin { enroll_by }));
        }
        if let Some((WhenUnenrolled::BlockUntilEnrolled, _)) = unenrolled {
            // The login waits for enrollment like a challenge waits for a code.
            let mut next = self.clone();
            next.login_awaiting_enrollment = Some(LoginChallenge {
                issued_at: now,
                expires_at: now.saturating_add(settings.login_challenge_ttl),
            });
            let pending = PendingLogin::issue(
                principal.clone(),
                now,
                settings.login_challenge_ttl,
                PendingStep::Enrollment,
                self.tickets.generation,
                settings,
                rng,
            )?;
            return Ok(
                Transition::new(next, true, Ok(LoginDecision::MustEnroll { pending }))
                    .event(AuditKind::LoginBlockedUntilEnrolled),
            );
        }
        // A security key cannot be guessed: a user with one may still use it while code
        // checks are throttled (the ticket then offers the key alone).
        let key_only = self.has_security_key() && phishing_resistant;
        let throttled = self.code_checks.blocked_until(
            now,
            settings.code_checks_per_window,
            settings.code_check_window,
        );
        if let Some(retry_at) = throttled.filter(|_| !self.has_security_key()) {
            return Ok(
                Transition::new(self.clone(), false, Err(Refusal::Throttled { retry_at }))
                    .event(AuditKind::LoginThrottled { retry_at }),
            );
        }
        // A mailed-code login closes with its code (the stored login waiting for it does too).
        let generation = self.tickets.generation;
        let mailed_pending = |code_expires_at: u64, rng: &mut R| {
            PendingLogin::issue(
                principal.clone(),
                now,
                code_expires_at.saturating_sub(now),
                PendingStep::MailedCode { code_expires_at },
                generation,
                settings,
                rng,
            )
        };
        if unenrolled.is_some() {
            // Required, mailed code. The record remembers that this user is asked for one, so
            // that enrolling later needs a proof of the mailed code whatever principal the
            // host passes (see `start_enrollment`).
            let mut next = self.clone();
            next.mailed_login_required = true;
            return Ok(match next.send_mailed_code(now, context, settings, rng)? {
                Sent::New { expires_at, notice } => {
                    let pending = mailed_pending(expires_at, rng)?;
                    Transition::new(next, true, Ok(LoginDecision::CodeMailed { pending }))
                        .event(AuditKind::CodeMailed { expires_at })
                        .notice(notice)
                }
                Sent::Throttled { retry_at } => {
                    let pending = self
                        .live_code_expiry(now)
                        .filter(|_| self.challenge_open(now));
                    let decision = match pending {
                        // A code the user may have still works: point the user at it.
                        Some(expires_at) => Ok(LoginDecision::CodeMailed {
                            pending: mailed_pending(expires_at, rng)?,
                        }),
                        None => Err(Refusal::Throttled { retry_at }),
                    };
                    let changed = !self.mailed_login_required;
                    let mut next = self.clone();
                    next.mailed_login_required = true;
                    Transition::new(next, changed, decision)
                        .event(AuditKind::MailThrottled { retry_at })
                }
            });
        }
        // Enrolled: ask for a code and store nothing. `finish_login` needs no stored challenge
        // for a TOTP or recovery code; the pending login it requires carries the deadline.
        // The kinds the user has: a security key first (the phishing-resistant one), then
        // TOTP, then recovery codes while some are left; the key alone when the policy asks
        // for a phishing-resistant factor or codes are throttled.
        let mut methods = Vec::new();
        if self.has_security_key() {
            methods.push(FactorKind::SecurityKey);
        }
        if !key_only && throttled.is_none() {
            if self.has_totp() {
                methods.push(FactorKind::Totp);
            }
            if self.recovery_codes_left() > 0 {
                methods.push(FactorKind::RecoveryCode);
            }
        }
        let pending = PendingLogin::issue(
            principal.clone(),
            now,
            settings.login_challenge_ttl,
            PendingStep::SecondFactor { methods },
            self.tickets.generation,
            settings,
            rng,
        )?;
        Ok(Transition::new(
            self.clone(),
            false,
            Ok(LoginDecision::Challenge { pending }),
        ))
    }

    /// Checks the second factor of a login begun with [`TwoFactorRecord::start_login`].
    ///
    /// The check is counted against the throttle before the code is looked at, and replayed
    /// TOTP codes and used recovery codes are refused. A TOTP or recovery code needs an
    /// enrolled user but no stored challenge: `start_login` stores none, and the time between
    /// the password and the code is bounded by the host's session, not by the record. A
    /// mailed code needs its login still open: a late one is refused and audited as
    /// [`FailureReason::Expired`], one whose login was closed otherwise (by a trusted device,
    /// or never begun) as [`FailureReason::ExpiredChallenge`]. On success any login waiting
    /// for a mailed code closes. With `remember_device` (a label such as "Firefox on Linux")
    /// and a policy that allows trusted devices, a device token is issued; otherwise
    /// `remember_device` is ignored.
    ///
    /// It needs the [`PendingLogin`] `start_login` handed out (this record must be that
    /// user's; `requirement` is the policy's answer for [`PendingLogin::principal`]): after
    /// its [`expires_at`](PendingLogin::expires_at) nothing is checked or changed
    /// ([`DomainError::LoginExpired`]). A factor the pending login does not accept (a mailed
    /// code on a TOTP challenge, a TOTP code on a mailed-code login, anything on a
    /// [`PendingStep::Enrollment`]) is counted and refused like a wrong code, audited as
    /// [`FailureReason::NoPendingFactor`]. Whatever `pending` and `requirement` say, nothing
    /// is granted without a factor verified against this record.
    ///
    /// # Errors
    /// [`DomainError::LoginExpired`] when `pending` has expired; [`DomainError::Rng`] if a
    /// device token cannot be generated. Refused codes are not errors: they come back as
    /// `Err(`[`Refusal`]`)` in the outcome, with the counted attempt in the record.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_login<R: TryCryptoRng + ?Sized>(
        &self,
        pending: &PendingLogin,
        now: u64,
        requirement: &Requirement,
        factor: Factor<'_>,
        remember_device: Option<&str>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<LoginGranted>>, DomainError> {
        self.finish_login_from(
            pending,
            now,
            requirement,
            factor,
            None,
            remember_device,
            context,
            settings,
            rng,
        )
    }

    /// [`finish_login`](Self::finish_login), where the host let the user pick the
    /// authenticator the code comes from: a TOTP code is checked against `authenticator`
    /// only (with `None`, against every TOTP authenticator of the user, in constant time over
    /// all of them). Recovery and mailed codes ignore it.
    ///
    /// # Errors
    /// As [`finish_login`](Self::finish_login), and [`DomainError::UnknownAuthenticator`]
    /// for an id that is not one of the user's (nothing checked or counted).
    #[allow(clippy::too_many_arguments)]
    pub fn finish_login_from<R: TryCryptoRng + ?Sized>(
        &self,
        pending: &PendingLogin,
        now: u64,
        requirement: &Requirement,
        factor: Factor<'_>,
        authenticator: Option<&AuthenticatorId>,
        remember_device: Option<&str>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<LoginGranted>>, DomainError> {
        self.ensure_ticket_usable(pending, now, settings)?;
        if authenticator.is_some_and(|id| self.authenticators.iter().all(|a| a.id != *id)) {
            return Err(DomainError::UnknownAuthenticator);
        }
        // Once the user has a security key, a policy that asks for a phishing-resistant
        // factor takes nothing else: refused before anything is checked or counted.
        if matches!(requirement, Requirement::PhishingResistant) && self.has_security_key() {
            return Err(DomainError::PhishingResistantRequired);
        }
        self.ensure_totp_checkable(&factor)?;
        self.ensure_code_key(&factor, settings)?;
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
        let mut next = match self.admit_code_check(now, settings, Err) {
            Ok(next) => next,
            Err(throttled) => return Ok(*throttled),
        };
        // The pending login names what it waits for; anything else is refused, counted.
        if !pending.accepts(kind) {
            let reason = FailureReason::NoPendingFactor;
            return Ok(
                Transition::new(next, true, Err(Refusal::Invalid(reason))).event(failed(reason))
            );
        }
        // Only a mailed code needs a stored login: the hashed code and its expiry are the
        // state. A TOTP or recovery code is checked against the enrolled factor whenever it
        // comes; a stale challenge stored by an older version is not looked at.
        if matches!(parsed, Parsed::Mailed(_)) && !next.challenge_open(now) {
            next.challenge = None;
            // A login waiting for a mailed code closes when the code expires: a late code is
            // audited as what it is, an expired mailed code.
            let late_mailed_code = next
                .mailed
                .iter()
                .chain(next.outgoing.as_ref().map(|o| &o.code))
                .any(|m| now >= m.expires_at);
            let reason = if late_mailed_code {
                next.clear_mailed_codes();
                FailureReason::Expired
            } else {
                FailureReason::ExpiredChallenge
            };
            return Ok(
                Transition::new(next, true, Err(Refusal::Invalid(reason))).event(failed(reason))
            );
        }
        let verified = match next.verify_parsed(&parsed, now, authenticator, settings) {
            Ok(verified) => verified,
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

        if matches!(parsed, Parsed::Mailed(_)) {
            // The mailbox factor was used (kept for the record; what lets this session enroll
            // under a mailed-code policy is the proof handed out below, see
            // `start_enrollment`).
            next.mailed_code_login_at = Some(now);
        }
        next.complete_login(
            pending,
            now,
            requirement,
            kind,
            verified,
            remember_device,
            context,
            settings,
            rng,
        )
    }

    /// The success of a login's second step, whatever the factor: the login waiting for a
    /// mailed code closes, the throttle resets, the ticket is used up, a proof is issued, a
    /// trusted-device token if asked for and allowed, the events and notices.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn complete_login<R: TryCryptoRng + ?Sized>(
        self,
        pending: &PendingLogin,
        now: u64,
        requirement: &Requirement,
        kind: FactorKind,
        verified: Verified,
        remember_device: Option<&str>,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<LoginGranted>>, DomainError> {
        let mut next = self;
        next.challenge = None;
        next.clear_mailed_codes();
        next.code_checks.reset();
        // Single use: this ticket can complete no other login.
        next.tickets
            .mark_used(pending.nonce(), pending.password_checked_at(), now);
        let authenticator = verified.authenticator();
        let proof = next.issue_proof_naming(
            pending.user(),
            kind,
            now,
            Some(pending.password_checked_at()),
            authenticator.as_ref(),
            settings,
            rng,
        )?;
        let recovery_codes_left = verified.recovery_left;
        let mut events = vec![AuditKind::LoginSucceeded { factor: kind }];
        events.extend(verified.events());
        let mut notices = Vec::new();
        if let Some(left) = recovery_codes_left {
            let (event, notice) = recovery_code_use(left, Some(context), settings);
            events.push(event);
            notices.extend(notice);
        }
        let devices_allowed = match requirement {
            Requirement::Optional { trusted_devices }
            | Requirement::Required {
                trusted_devices, ..
            } => *trusted_devices,
            Requirement::Off | Requirement::Exempt { .. } | Requirement::PhishingResistant => false,
        };
        let needs_security_key = matches!(requirement, Requirement::PhishingResistant)
            && kind != FactorKind::SecurityKey;
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
        let recovery_codes_low = next.recovery_codes_low(settings);
        let must_regenerate_recovery_codes = next.must_regenerate_recovery_codes();
        let mut t = Transition::new(
            next,
            true,
            Ok(LoginGranted {
                factor: kind,
                device_token,
                recovery_codes_left,
                recovery_codes_low,
                must_regenerate_recovery_codes,
                claims: proof.claims().clone(),
                proof,
                authenticator,
                needs_security_key,
            }),
        )
        .notices_from(notices);
        t.events = events;
        Ok(t)
    }
}

/// A granted decision at `now`: the password, and the device that let the user in.
fn grant(reason: GrantReason, now: u64) -> LoginDecision {
    let mut claims = AssuranceClaims::new(CompletedMethod::new(AuthMethod::Password, now));
    if let GrantReason::TrustedDevice { device } = &reason {
        claims = claims.with(
            CompletedMethod::new(AuthMethod::RememberedDevice, now).authenticator(device.as_str()),
        );
    }
    LoginDecision::Granted { reason, claims }
}

/// The claims of a verified `factor` (proving `method`) at `now`, after a password check at
/// `password_checked_at` if there was one.
fn factor_claims(
    method: AuthMethod,
    factor: FactorKind,
    now: u64,
    password_checked_at: Option<u64>,
    authenticator: Option<&AuthenticatorId>,
) -> AssuranceClaims {
    let mut proved = CompletedMethod::new(method, now);
    if let Some(id) =
        authenticator.filter(|_| matches!(factor, FactorKind::Totp | FactorKind::SecurityKey))
    {
        proved = proved.authenticator(id.as_str());
    }
    match password_checked_at {
        Some(at) => {
            AssuranceClaims::new(CompletedMethod::new(AuthMethod::Password, at)).with(proved)
        }
        None => AssuranceClaims::new(proved),
    }
}

/// The authenticator named by the `AuthenticatorUsed` event of a verification, if a TOTP code
/// was checked.
fn used_authenticator(events: &[AuditKind]) -> Option<&AuthenticatorId> {
    events.iter().find_map(|e| match e {
        AuditKind::AuthenticatorUsed { authenticator } => Some(authenticator),
        _ => None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::crypto::{FailingRng, TestRng};
    use crate::account::enrollment::tests::{T0, active_code_at, enrolled_record};
    use crate::mail::NoticeKind;

    fn required(trusted_devices: bool) -> Requirement {
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: None,
            trusted_devices,
        }
    }

    fn mail_code() -> Requirement {
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            grace_until: None,
            trusted_devices: true,
        }
    }

    fn ctx() -> LoginContext {
        LoginContext::new().device("test")
    }

    fn who() -> Principal {
        Principal::new("u")
    }

    /// A fresh RNG seed per ticket: a ticket is single-use, so two logins in a test must not
    /// draw the same nonce.
    fn seed() -> u64 {
        use core::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// A sealed ticket that accepts `kind` and never expires, at the record's ticket
    /// generation: these tests are about the record; the ticket's own checks have their tests
    /// below.
    fn open_pending(r: &TwoFactorRecord, kind: FactorKind) -> PendingLogin {
        let step = match kind {
            FactorKind::MailedCode => PendingStep::MailedCode {
                code_expires_at: u64::MAX,
            },
            _ => PendingStep::SecondFactor {
                methods: vec![FactorKind::Totp, FactorKind::RecoveryCode],
            },
        };
        let p = PendingLogin::issue(
            who(),
            0,
            u64::MAX,
            step,
            r.tickets.generation,
            &Settings::default(),
            &mut TestRng(seed()),
        )
        .unwrap();
        assert_eq!(p.expires_at(), u64::MAX);
        p
    }

    /// What a decision says, without its ticket's nonce and seal (random): what these tests
    /// compared when the pending login was plain data. The seal is checked on the way.
    #[derive(Debug, PartialEq)]
    enum Said {
        Granted(GrantReason),
        Challenge(Claims),
        MustEnroll(Claims),
        CodeMailed(Claims),
    }

    #[derive(Debug, PartialEq)]
    struct Claims {
        principal: Principal,
        password_checked_at: u64,
        expires_at: u64,
        step: PendingStep,
        generation: u64,
    }

    fn said(d: &LoginDecision) -> Said {
        let claims = |p: &PendingLogin| {
            p.verify(&Settings::default()).expect("a sealed ticket");
            Claims {
                principal: p.principal.clone(),
                password_checked_at: p.password_checked_at,
                expires_at: p.expires_at,
                step: p.step.clone(),
                generation: p.generation,
            }
        };
        match d {
            LoginDecision::Granted { reason, .. } => Said::Granted(reason.clone()),
            LoginDecision::Challenge { pending } => Said::Challenge(claims(pending)),
            LoginDecision::MustEnroll { pending } => Said::MustEnroll(claims(pending)),
            LoginDecision::CodeMailed { pending } => Said::CodeMailed(claims(pending)),
            LoginDecision::CodeNotSent { .. } => panic!("the record never answers CodeNotSent"),
        }
    }

    fn claims(now: u64, ttl: u64, step: PendingStep) -> Claims {
        Claims {
            principal: who(),
            password_checked_at: now,
            expires_at: now + ttl,
            step,
            generation: 0,
        }
    }

    fn challenge(methods: Vec<FactorKind>, now: u64) -> Said {
        Said::Challenge(claims(now, 900, PendingStep::SecondFactor { methods }))
    }

    fn must_enroll(now: u64) -> Said {
        Said::MustEnroll(claims(now, 900, PendingStep::Enrollment))
    }

    fn code_mailed(now: u64, code_expires_at: u64) -> Said {
        let step = PendingStep::MailedCode { code_expires_at };
        Said::CodeMailed(claims(now, code_expires_at - now, step))
    }

    fn begin_checked(
        r: &TwoFactorRecord,
        now: u64,
        req: &Requirement,
        token: Option<&str>,
    ) -> Transition<Checked<LoginDecision>> {
        r.start_login(
            &who(),
            now,
            req,
            token,
            &ctx(),
            &Settings::default(),
            &mut TestRng(now),
        )
        .unwrap()
    }

    /// `begin_checked` for logins that are not throttled.
    fn begin(
        r: &TwoFactorRecord,
        now: u64,
        req: &Requirement,
        token: Option<&str>,
    ) -> Transition<LoginDecision> {
        begin_checked(r, now, req, token).map(|o| o.expect("not throttled"))
    }

    fn finish(
        r: &TwoFactorRecord,
        now: u64,
        req: &Requirement,
        factor: Factor<'_>,
        remember: Option<&str>,
    ) -> Transition<Checked<LoginGranted>> {
        r.finish_login(
            &open_pending(r, factor.kind()),
            now,
            req,
            factor,
            remember,
            &ctx(),
            &Settings::default(),
            &mut TestRng(now),
        )
        .unwrap()
    }

    fn wrong(code: &str) -> String {
        if code == "000000" { "000001" } else { "000000" }.to_owned()
    }

    /// An enrolled record with an open challenge at `now`.
    fn challenged(now: u64) -> TwoFactorRecord {
        let r = enrolled_record(T0);
        begin(&r, now, &Requirement::required(), None)
            .into_parts()
            .0
    }

    #[test]
    fn policy_answers_without_a_code() {
        let e = enrolled_record(T0);
        let t = begin(&TwoFactorRecord::default(), T0, &Requirement::Off, None);
        assert_eq!(*t.outcome(), grant(GrantReason::Off, T0));
        assert!(!t.is_changed());
        assert!(t.events().is_empty());
        // `Off` never lets an enrolled user in on the password alone: fail closed.
        let t = begin(&e, T0, &Requirement::Off, None);
        assert!(
            matches!(t.outcome(), LoginDecision::Challenge { .. }),
            "{:?}",
            t.outcome()
        );

        let exempt = Requirement::Exempt {
            reason: "superuser".into(),
        };
        let t = begin(&e, T0, &exempt, None);
        assert_eq!(
            *t.outcome(),
            grant(
                GrantReason::Exempt {
                    reason: "superuser".into()
                },
                T0
            )
        );
        assert_eq!(
            t.events(),
            &[AuditKind::PolicyExemptionApplied {
                reason: "superuser".into()
            }]
        );

        let none = TwoFactorRecord::default();
        let t = begin(&none, T0, &Requirement::optional(), None);
        assert_eq!(*t.outcome(), grant(GrantReason::NotRequired, T0));
        let t = begin(&none, T0, &Requirement::required(), None);
        assert_eq!(said(t.outcome()), must_enroll(T0));
        assert_eq!(t.events(), &[AuditKind::LoginBlockedUntilEnrolled]);
        // The login waits for enrollment (saved), like a challenge waits for a code.
        assert!(t.is_changed());
        assert_eq!(
            t.record().login_awaiting_enrollment,
            Some(LoginChallenge {
                issued_at: T0,
                expires_at: T0 + 900
            })
        );
        assert!(t.record().challenge.is_none());
    }

    /// Enrolls the record's pending secret at `now`, completing `login` if given.
    fn confirm_with(
        r: &TwoFactorRecord,
        now: u64,
        login: Option<&PendingLogin>,
    ) -> Result<Transition<Checked<super::super::Enrolled>>, DomainError> {
        let code = crate::account::enrollment::tests::code_at(r, now);
        let required = Requirement::required();
        r.finish_enrollment(
            now,
            &who().user,
            &code,
            login.map(|l| (l, &required)),
            &Settings::default(),
            &mut TestRng(now),
        )
    }

    /// Enrolls the record's pending secret at `now` (from the account page: no login).
    fn confirm(r: &TwoFactorRecord, now: u64) -> Transition<Checked<super::super::Enrolled>> {
        confirm_with(r, now, None).unwrap()
    }

    fn start(r: &TwoFactorRecord, now: u64) -> TwoFactorRecord {
        let reauth = super::super::Reauthenticated::at(now);
        r.start_enrollment(
            now,
            &who().user,
            &Requirement::required(),
            reauth,
            None,
            "a",
            &Settings::default(),
            &mut TestRng(now),
        )
        .unwrap()
        .into_parts()
        .0
    }

    #[test]
    fn enrollment_completes_the_login_that_had_to_enroll() {
        let t = begin(
            &TwoFactorRecord::default(),
            T0,
            &Requirement::required(),
            None,
        );
        let ticket = t.outcome().pending().unwrap().clone();
        let blocked = t.into_parts().0;
        let pending = start(&blocked, T0 + 60);
        // A wrong code completes nothing and keeps the login waiting (and the ticket usable).
        let good = crate::account::enrollment::tests::code_at(&pending, T0 + 90);
        let t = pending
            .finish_enrollment(
                T0 + 90,
                &who().user,
                &wrong(&good),
                Some((&ticket, &Requirement::required())),
                &Settings::default(),
                &mut TestRng(1),
            )
            .unwrap();
        assert!(t.outcome().is_err());
        assert!(t.record().login_awaiting_enrollment.is_some());
        assert!(
            !t.record()
                .tickets
                .is_used(ticket.nonce(), ticket.password_checked_at())
        );

        // Under a phishing-resistant requirement the same confirmation is an escalation; it is
        // not one otherwise, nor from the account page.
        let code = crate::account::enrollment::tests::code_at(&pending, T0 + 899);
        let escalated = pending
            .finish_enrollment(
                T0 + 899,
                &who().user,
                &code,
                Some((&ticket, &Requirement::PhishingResistant)),
                &Settings::default(),
                &mut TestRng(2),
            )
            .unwrap();
        let escalated = escalated.outcome().as_ref().unwrap();
        assert!(escalated.login_completed() && escalated.needs_security_key());
        assert!(
            !confirm(&pending, T0 + 899)
                .outcome()
                .as_ref()
                .unwrap()
                .needs_security_key()
        );

        let t = confirm_with(&pending, T0 + 899, Some(&ticket)).unwrap();
        assert!(t.outcome().as_ref().unwrap().login_completed());
        assert!(!t.outcome().as_ref().unwrap().needs_security_key());
        // Its proof claims the password the ticket dates, and the code: AAL2.
        {
            use crate::account::{Aal, AuthMethod as M, CompletedMethod as C};
            let enrolled = t.outcome().as_ref().unwrap();
            let claims = enrolled.proof().claims();
            assert_eq!(
                claims.methods(),
                [
                    C::new(M::Password, T0),
                    C::new(M::Otp, T0 + 899).authenticator(enrolled.authenticator().id().as_str())
                ]
            );
            assert_eq!(claims.aal(), Aal::Aal2);
            // Enrolled from the account page (no ticket): the code alone.
            let t = confirm(&pending, T0 + 899);
            let enrolled = t.outcome().as_ref().unwrap();
            let id = enrolled.authenticator().id().as_str();
            assert_eq!(
                enrolled.proof().claims().methods(),
                [C::new(M::Otp, T0 + 899).authenticator(id)]
            );
        }
        assert_eq!(
            t.events(),
            &[
                AuditKind::Enrolled,
                AuditKind::LoginSucceeded {
                    factor: FactorKind::Totp
                }
            ]
        );
        assert!(t.record().login_awaiting_enrollment.is_none());
        // The ticket is used up: it completes no other login.
        assert!(
            t.record()
                .tickets
                .is_used(ticket.nonce(), ticket.password_checked_at())
        );

        // Once the login has expired (like any challenge), its ticket is refused, and
        // enrolling (from the account page) logs nobody in.
        assert_eq!(
            confirm_with(&pending, T0 + 900, Some(&ticket)).unwrap_err(),
            DomainError::LoginExpired
        );
        let t = confirm(&pending, T0 + 900);
        assert!(!t.outcome().as_ref().unwrap().login_completed());
        assert_eq!(t.events(), &[AuditKind::Enrolled]);
        assert!(t.record().login_awaiting_enrollment.is_none());

        // Without the ticket of the MustEnroll answer (the account page), no login is
        // completed, even while one is waiting.
        let t = confirm(&pending, T0 + 120);
        assert!(!t.outcome().as_ref().unwrap().login_completed());
        assert_eq!(t.events(), &[AuditKind::Enrolled]);
        let t = confirm(&start(&TwoFactorRecord::default(), T0), T0 + 1);
        assert!(!t.outcome().as_ref().unwrap().login_completed());
        assert_eq!(t.events(), &[AuditKind::Enrolled]);

        // Only that user's enrollment ticket completes it: another user's, a second-factor
        // ticket and a forged one are refused before anything is checked.
        let step = PendingStep::SecondFactor {
            methods: vec![FactorKind::Totp],
        };
        let settings = Settings::default();
        let issue = |principal: Principal, step: PendingStep, settings: &Settings| {
            PendingLogin::issue(principal, T0, 900, step, 0, settings, &mut TestRng(seed()))
                .unwrap()
        };
        let foreign = crate::account::enrollment::tests::foreign_settings();
        for other in [
            issue(
                Principal::new("mallory"),
                PendingStep::Enrollment,
                &settings,
            ),
            issue(who(), step, &settings),
            issue(who(), PendingStep::Enrollment, &foreign),
        ] {
            assert_eq!(
                confirm_with(&pending, T0 + 120, Some(&other)).unwrap_err(),
                DomainError::InvalidTicket
            );
        }

        // A completed login is consumed: a rotation right after completes nothing, and its
        // ticket is refused.
        let enrolled = confirm_with(&pending, T0 + 120, Some(&ticket))
            .unwrap()
            .into_parts()
            .0;
        let current = active_code_at(&enrolled, T0 + 150);
        let rotating = enrolled
            .start_rotation(
                T0 + 150,
                &who().user,
                super::super::Reauthenticated::at(T0 + 150),
                Factor::Totp(&current).into(),
                "a",
                &Settings::default(),
                &mut TestRng(2),
            )
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(
            confirm_with(&rotating, T0 + 180, Some(&ticket)).unwrap_err(),
            DomainError::LoginExpired
        );
        let t = confirm(&rotating, T0 + 180);
        let done = t.outcome().as_ref().unwrap();
        assert!(done.rotated() && !done.login_completed());
        assert!(
            !t.events()
                .iter()
                .any(|e| matches!(e, AuditKind::LoginSucceeded { .. }))
        );

        // An admin reset clears a waiting login with everything else, and its ticket is
        // refused from then on.
        let mut waiting = blocked.clone();
        waiting.authenticators = enrolled.authenticators.clone();
        let t = waiting
            .reset_by_admin(&super::super::UserId::new("root"))
            .unwrap();
        assert!(t.record().login_awaiting_enrollment.is_none());
        let reset = start(t.record(), T0 + 200);
        assert_eq!(
            confirm_with(&reset, T0 + 200, Some(&ticket)).unwrap_err(),
            DomainError::LoginExpired
        );
    }

    #[test]
    fn grace_period_ends_exactly_at_its_deadline() {
        let none = TwoFactorRecord::default();
        let req = Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: Some(T0 + 100),
            trusted_devices: true,
        };
        let t = begin(&none, T0 + 99, &req, None);
        assert_eq!(
            *t.outcome(),
            grant(
                GrantReason::GracePeriod {
                    enroll_by: T0 + 100
                },
                T0 + 99
            )
        );
        assert_eq!(
            t.events(),
            &[AuditKind::GracePeriodLogin {
                enroll_by: T0 + 100
            }]
        );
        assert_eq!(
            said(begin(&none, T0 + 100, &req, None).outcome()),
            must_enroll(T0 + 100)
        );
        // An enrolled user is challenged whatever the grace period.
        let e = enrolled_record(T0);
        assert!(matches!(
            begin(&e, T0 + 99, &req, None).outcome(),
            LoginDecision::Challenge { .. }
        ));
    }

    #[test]
    fn challenge_then_totp_then_replay_refused() {
        let e = enrolled_record(T0);
        let now = T0 + 60;
        let t = begin(&e, now, &Requirement::optional(), None);
        assert_eq!(
            said(t.outcome()),
            challenge(vec![FactorKind::Totp, FactorKind::RecoveryCode], now)
        );
        let r = t.into_parts().0;
        let code = active_code_at(&r, now);
        let t = finish(&r, now, &Requirement::required(), Factor::Totp(&code), None);
        let granted = t.outcome().as_ref().unwrap();
        assert_eq!(granted.factor, FactorKind::Totp);
        assert!(granted.device_token.is_none());
        assert_eq!(
            t.events(),
            &[
                AuditKind::LoginSucceeded {
                    factor: FactorKind::Totp
                },
                AuditKind::AuthenticatorUsed {
                    authenticator: r.authenticators[0].id.clone()
                }
            ]
        );
        assert!(t.notices().is_empty());
        let r = t.into_parts().0;
        assert_eq!(r.last_used_step(), Some(now / 30));
        assert!(r.challenge.is_none());
        assert_eq!(r.code_checks.count(now, 3_600), 0);

        // Same code, new challenge: a replay.
        let r = begin(&r, now + 1, &Requirement::required(), None)
            .into_parts()
            .0;
        let t = finish(
            &r,
            now + 1,
            &Requirement::required(),
            Factor::Totp(&code),
            None,
        );
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Invalid(FailureReason::Replayed)
        );
        assert!(t.events()[0].is_replay());
        assert_eq!(t.notices()[0].kind(), NoticeKind::FailedCodeAttempt);
        assert!(t.is_changed()); // counted
        assert_eq!(t.record().code_checks.count(now + 1, 3_600), 1);
        assert!(t.record().challenge.is_none()); // none was stored
    }

    #[test]
    fn totp_and_recovery_codes_need_no_stored_challenge() {
        let e = enrolled_record(T0);
        let now = T0 + 60;
        let code = active_code_at(&e, now);
        // Asking for a code stores nothing.
        let t = begin(&e, now, &Requirement::required(), None);
        assert!(matches!(t.outcome(), LoginDecision::Challenge { .. }));
        assert!(!t.is_changed());
        assert!(t.record().challenge.is_none());
        // Never begun: a wrong code is still counted and refused as wrong ...
        let t = finish(
            &e,
            now,
            &Requirement::required(),
            Factor::Totp(&wrong(&code)),
            None,
        );
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Invalid(FailureReason::WrongCode)
        );
        assert!(t.is_changed());
        assert_eq!(t.record().code_checks.count(now, 3_600), 1);
        assert_eq!(t.record().last_used_step(), e.last_used_step());
        // ... the right one is accepted (the host's session bounds when it may come) ...
        let t = finish(&e, now, &Requirement::required(), Factor::Totp(&code), None);
        assert_eq!(t.outcome().as_ref().unwrap().factor, FactorKind::Totp);
        let used = t.into_parts().0;
        assert_eq!(used.last_used_step(), Some(now / 30));
        // ... and only once, begun or not.
        for r in [
            used.clone(),
            begin(&used, now, &Requirement::required(), None)
                .into_parts()
                .0,
        ] {
            let t = finish(&r, now, &Requirement::required(), Factor::Totp(&code), None);
            assert_eq!(
                t.outcome().as_ref().unwrap_err(),
                &Refusal::Invalid(FailureReason::Replayed)
            );
            assert_eq!(t.record().code_checks.count(now, 3_600), 1);
        }
        // Long after `start_login` (past the advisory 15 minutes), a fresh code still works:
        // the record holds no deadline for it.
        let later = now + 900 + 86_400;
        let t = finish(
            &used,
            later,
            &Requirement::required(),
            Factor::Totp(&active_code_at(&used, later)),
            None,
        );
        assert!(t.outcome().is_ok());
        // A stale, expired challenge stored by an older version is ignored, then cleared.
        let mut stale = e.clone();
        stale.challenge = Some(LoginChallenge {
            issued_at: T0,
            expires_at: T0 + 1,
        });
        let t = finish(
            &stale,
            now,
            &Requirement::required(),
            Factor::Totp(&code),
            None,
        );
        assert!(t.outcome().is_ok());
        assert!(t.record().challenge.is_none());
        // Without an authenticator there is still nothing to check, and the try is counted.
        let none = TwoFactorRecord::default();
        for factor in [Factor::Totp("123456"), Factor::RecoveryCode("abcd-efgh-jk")] {
            let t = finish(&none, now, &Requirement::required(), factor, None);
            assert_eq!(
                t.outcome().as_ref().unwrap_err(),
                &Refusal::Invalid(FailureReason::NoPendingFactor),
                "{factor:?}"
            );
            assert_eq!(t.record().code_checks.count(now, 3_600), 1);
        }
    }

    #[test]
    fn start_login_writes_only_when_it_needs_new_state() {
        let now = T0 + 60;
        let e = enrolled_record(T0);
        let none = TwoFactorRecord::default();
        let exempt = Requirement::Exempt {
            reason: "superuser".into(),
        };
        let grace = Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: Some(now + 100),
            trusted_devices: true,
        };
        let mut throttled = e.clone();
        for i in 0..5 {
            throttled.code_checks.admit(now + i, 5, 3_600).unwrap();
        }
        // Five codes were mailed: the record already remembers this user is asked for one.
        let mut mail_throttled = none.clone();
        for i in 0..5 {
            mail_throttled.mail_sends.admit(now + i, 5, 3_600).unwrap();
        }
        mail_throttled.mailed_login_required = true;
        let mut no_codes = e.clone();
        no_codes.recovery = None;
        for (r, req, expected) in [
            (&none, Requirement::Off, "Granted Off"),
            (&e, Requirement::Off, "Challenge"),
            (&e, exempt.clone(), "Granted Exempt"),
            (&none, Requirement::optional(), "Granted NotRequired"),
            (&none, grace, "Granted GracePeriod"),
            (&e, Requirement::required(), "Challenge"),
            (&e, Requirement::optional(), "Challenge"),
            (&no_codes, Requirement::required(), "Challenge"),
            (&throttled, Requirement::required(), "Throttled"),
            (&mail_throttled, mail_code(), "Throttled"),
        ] {
            let t = begin_checked(r, now + 10, &req, None);
            let answer = match t.outcome() {
                Ok(decision) => format!("{decision:?}"),
                Err(refusal) => format!("{refusal:?}"),
            };
            assert!(
                answer.starts_with(expected.split(' ').next().unwrap()),
                "{answer}"
            );
            assert!(
                !t.is_changed(),
                "{expected} under {req:?} writes the record"
            );
        }
        // The one write a throttled mailed-code login makes: the first time, the record
        // learns that this user is asked for a mailed code (enrolling then needs its proof).
        let mut first_time = mail_throttled.clone();
        first_time.mailed_login_required = false;
        let t = begin_checked(&first_time, now + 10, &mail_code(), None);
        assert!(matches!(t.outcome(), Err(Refusal::Throttled { .. })));
        assert!(t.is_changed() && t.record().mailed_login_required);
        // A code to ask for with nothing left but TOTP lists only TOTP.
        assert_eq!(
            said(begin(&no_codes, now, &Requirement::required(), None).outcome()),
            challenge(vec![FactorKind::Totp], now)
        );
        // New state: a login waiting for enrollment, a mailed code, a device's last use.
        assert!(begin(&none, now, &Requirement::required(), None).is_changed());
        assert!(begin(&none, now, &mail_code(), None).is_changed());
        let t = finish(
            &e,
            now,
            &Requirement::required(),
            Factor::Totp(&active_code_at(&e, now)),
            Some("Firefox"),
        );
        let token = t.outcome().as_ref().unwrap().device_token.as_ref().unwrap();
        let token = token.expose_secret().to_owned();
        let trusted = t.into_parts().0;
        let t = begin(&trusted, now + 10, &Requirement::required(), Some(&token));
        assert!(matches!(
            t.outcome(),
            LoginDecision::Granted {
                reason: GrantReason::TrustedDevice { .. },
                ..
            }
        ));
        assert!(t.is_changed());
        // A refused token is audited, and still writes nothing.
        let t = begin(&trusted, now + 10, &Requirement::required(), Some("5a5a"));
        assert!(matches!(t.outcome(), LoginDecision::Challenge { .. }));
        assert_eq!(t.events(), &[AuditKind::DeviceTokenRefused]);
        assert!(!t.is_changed());
    }

    #[test]
    fn malformed_input_is_neither_checked_nor_counted() {
        let r = challenged(T0 + 60);
        for (factor, kind) in [
            (Factor::Totp(""), FactorKind::Totp),
            (Factor::Totp("12345"), FactorKind::Totp),
            (Factor::Totp("1234567"), FactorKind::Totp),
            (Factor::Totp("12345x"), FactorKind::Totp),
            (Factor::RecoveryCode("abc"), FactorKind::RecoveryCode),
            (
                Factor::RecoveryCode("abcd-efgh-u1"),
                FactorKind::RecoveryCode,
            ),
            (Factor::MailedCode("12 34 5"), FactorKind::MailedCode),
            (Factor::MailedCode("one"), FactorKind::MailedCode),
        ] {
            let t = finish(&r, T0 + 61, &Requirement::required(), factor, None);
            assert!(
                matches!(t.outcome(), Err(Refusal::Malformed(_))),
                "{factor:?}"
            );
            assert!(!t.is_changed());
            assert_eq!(
                t.events(),
                &[AuditKind::LoginFailed {
                    factor: kind,
                    reason: FailureReason::Malformed
                }]
            );
        }
    }

    #[test]
    fn five_checks_per_hour_counted_before_the_check() {
        let now = T0 + 60;
        let mut r = challenged(now);
        let good = active_code_at(&r, now);
        for i in 0..5 {
            let t = finish(
                &r,
                now + i,
                &Requirement::required(),
                Factor::Totp(&wrong(&good)),
                None,
            );
            assert_eq!(
                t.outcome().as_ref().unwrap_err(),
                &Refusal::Invalid(FailureReason::WrongCode)
            );
            r = t.into_parts().0;
        }
        let t = finish(
            &r,
            now + 5,
            &Requirement::required(),
            Factor::Totp(&good),
            None,
        );
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Throttled {
                retry_at: now + 3_600
            }
        );
        assert!(!t.is_changed());
        assert_eq!(
            t.events(),
            &[AuditKind::LoginThrottled {
                retry_at: now + 3_600
            }]
        );
        // start_login says so up front, with the same refusal.
        let t = begin_checked(&r, now + 6, &Requirement::required(), None);
        assert_eq!(
            *t.outcome(),
            Err(Refusal::Throttled {
                retry_at: now + 3_600
            })
        );
        // One hour after the first failure, one more check is admitted.
        let later = now + 3_600;
        let r = begin(&r, later, &Requirement::required(), None)
            .into_parts()
            .0;
        let t = finish(
            &r,
            later,
            &Requirement::required(),
            Factor::Totp(&active_code_at(&r, later)),
            None,
        );
        assert!(t.outcome().is_ok());
    }

    #[test]
    fn recovery_code_works_once() {
        let (with_codes, codes) = with_recovery_codes(&Settings::default());
        let code = codes[3].clone();
        let r = begin(&with_codes, T0 + 1, &Requirement::required(), None)
            .into_parts()
            .0;
        let t = finish(
            &r,
            T0 + 2,
            &Requirement::required(),
            Factor::RecoveryCode(&code),
            None,
        );
        let granted = t.outcome().as_ref().unwrap();
        assert_eq!(granted.factor, FactorKind::RecoveryCode);
        assert_eq!(granted.recovery_codes_left, Some(9));
        assert_eq!(
            t.events(),
            &[
                AuditKind::LoginSucceeded {
                    factor: FactorKind::RecoveryCode
                },
                AuditKind::RecoveryCodeUsed { remaining: 9 }
            ]
        );
        assert_eq!(t.notices()[0].kind(), NoticeKind::RecoveryCodeUsed);
        let r = begin(t.record(), T0 + 3, &Requirement::required(), None)
            .into_parts()
            .0;
        let t = finish(
            &r,
            T0 + 4,
            &Requirement::required(),
            Factor::RecoveryCode(&code),
            None,
        );
        // Used: refused like a code never issued (see `RecoveryCodeSet::consume`).
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Invalid(FailureReason::WrongCode)
        );
        // Without 2FA there is nothing to check.
        let none = TwoFactorRecord::default();
        let t = finish(
            &none,
            T0,
            &Requirement::optional(),
            Factor::RecoveryCode(&code),
            None,
        );
        assert!(matches!(t.outcome(), Err(Refusal::Invalid(_))));
    }

    #[test]
    fn trusted_device_skips_the_challenge_until_expiry() {
        let now = T0 + 60;
        let r = challenged(now);
        let t = finish(
            &r,
            now,
            &Requirement::required(),
            Factor::Totp(&active_code_at(&r, now)),
            Some("Firefox"),
        );
        let granted = t.outcome().as_ref().unwrap();
        let token = granted
            .device_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        let id = granted.device_token.as_ref().unwrap().id().clone();
        assert!(matches!(t.events()[1], AuditKind::AuthenticatorUsed { .. }));
        assert!(matches!(t.events()[2], AuditKind::DeviceTrusted { .. }));
        assert_eq!(t.notices()[0].kind(), NoticeKind::DeviceTrusted);
        let r = t.into_parts().0;

        let t = begin(&r, now + 10, &Requirement::required(), Some(&token));
        assert_eq!(
            *t.outcome(),
            grant(GrantReason::TrustedDevice { device: id }, now + 10)
        );
        assert_eq!(t.record().devices[0].last_used_at, Some(now + 10));
        // A policy without trusted devices ignores the token.
        let t = begin(&r, now + 10, &required(false), Some(&token));
        assert!(matches!(t.outcome(), LoginDecision::Challenge { .. }));
        // Expired: challenged, and audited.
        let ttl = Settings::default().trusted_device_ttl();
        let t = begin(&r, now + ttl, &Requirement::required(), Some(&token));
        assert!(matches!(t.outcome(), LoginDecision::Challenge { .. }));
        assert_eq!(t.events(), &[AuditKind::DeviceTokenRefused]);
        let t = begin(&r, now + ttl - 1, &Requirement::required(), Some(&token));
        assert!(matches!(t.outcome(), LoginDecision::Granted { .. }));
    }

    #[test]
    fn no_device_token_when_the_policy_forbids_it() {
        let now = T0 + 60;
        let r = challenged(now);
        let code = active_code_at(&r, now);
        let t = finish(
            &r,
            now,
            &required(false),
            Factor::Totp(&code),
            Some("Firefox"),
        );
        assert!(t.outcome().as_ref().unwrap().device_token.is_none());
        assert!(t.record().devices.is_empty());
        let t = finish(
            &r,
            now,
            &Requirement::required(),
            Factor::Totp(&code),
            Some("Firefox"),
        );
        assert!(t.outcome().as_ref().unwrap().device_token.is_some());
        assert_eq!(
            r.finish_login(
                &open_pending(&r, FactorKind::Totp),
                now,
                &Requirement::required(),
                Factor::Totp(&code),
                Some("x"),
                &ctx(),
                &Settings::default(),
                &mut FailingRng
            )
            .unwrap_err(),
            DomainError::Rng
        );
    }

    #[test]
    fn optional_without_trusted_devices_neither_issues_nor_honours_tokens() {
        let now = T0 + 60;
        let opt_out = Requirement::Optional {
            trusted_devices: false,
        };
        let r = begin(&enrolled_record(T0), now, &opt_out, None)
            .into_parts()
            .0;
        let code = active_code_at(&r, now);
        let t = finish(&r, now, &opt_out, Factor::Totp(&code), Some("Firefox"));
        assert!(t.outcome().as_ref().unwrap().device_token.is_none());
        assert!(t.record().devices.is_empty());
        assert!(
            !t.events()
                .iter()
                .any(|e| matches!(e, AuditKind::DeviceTrusted { .. }))
        );
        // A token issued while the deployment allowed devices is not honoured once it doesn't.
        let t = finish(
            &r,
            now,
            &Requirement::optional(),
            Factor::Totp(&code),
            Some("Firefox"),
        );
        let token = t.outcome().as_ref().unwrap().device_token.as_ref().unwrap();
        let token = token.expose_secret().to_owned();
        let trusted = t.into_parts().0;
        assert!(matches!(
            begin(&trusted, now + 10, &Requirement::optional(), Some(&token)).outcome(),
            LoginDecision::Granted {
                reason: GrantReason::TrustedDevice { .. },
                ..
            }
        ));
        let t = begin(&trusted, now + 10, &opt_out, Some(&token));
        assert!(matches!(t.outcome(), LoginDecision::Challenge { .. }));
        assert!(t.events().is_empty());
        // Users who did not opt in still log in with the password alone.
        assert_eq!(
            *begin(&TwoFactorRecord::default(), now, &opt_out, Some(&token)).outcome(),
            grant(GrantReason::NotRequired, now)
        );
    }

    #[test]
    fn mailed_code_login_for_unenrolled_users() {
        let none = TwoFactorRecord::default();
        let t = begin(&none, T0, &mail_code(), None);
        assert_eq!(said(t.outcome()), code_mailed(T0, T0 + 3_600));
        assert_eq!(
            t.events(),
            &[AuditKind::CodeMailed {
                expires_at: T0 + 3_600
            }]
        );
        let code = t.notices()[0].expose_login_code().unwrap().to_owned();
        assert_eq!(t.notices()[0].context(), Some(&ctx()));
        let r = t.into_parts().0;
        let t = finish(
            &r,
            T0 + 3_599,
            &mail_code(),
            Factor::MailedCode(&code),
            None,
        );
        let granted = t.outcome().as_ref().unwrap();
        assert_eq!(granted.factor, FactorKind::MailedCode);
        assert!(t.record().mailed.is_none());
        // The proof that lets this session enroll under the mailed-code policy.
        assert_eq!(granted.proof.factor(), FactorKind::MailedCode);
        assert_eq!(granted.proof.verified_at(), T0 + 3_599);
        assert_eq!(t.record().mailed_code_login_at, Some(T0 + 3_599));
        assert_eq!(r.mailed_code_login_at, None);
        // Once only.
        let t = finish(
            t.record(),
            T0 + 3_599,
            &mail_code(),
            Factor::MailedCode(&code),
            None,
        );
        assert!(matches!(t.outcome(), Err(Refusal::Invalid(_))));
        // Expired: the login waiting for it closes at the same instant, and the audit trail
        // says the mailed code expired.
        let t = finish(
            &r,
            T0 + 3_600,
            &mail_code(),
            Factor::MailedCode(&code),
            None,
        );
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Invalid(FailureReason::Expired)
        );
        assert_eq!(
            t.events(),
            &[AuditKind::LoginFailed {
                factor: FactorKind::MailedCode,
                reason: FailureReason::Expired
            }]
        );
        assert!(t.record().mailed.is_none());
        assert!(t.record().challenge.is_none());
        assert_eq!(t.record().code_checks.count(T0 + 3_600, 3_600), 1);
        // A TOTP code after the login closed is refused and counted: this user has no
        // authenticator (TOTP codes need no open login, only an enrolled factor).
        let t = finish(&r, T0 + 3_600, &mail_code(), Factor::Totp("123456"), None);
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Invalid(FailureReason::NoPendingFactor)
        );
        assert_eq!(t.record().code_checks.count(T0 + 3_600, 3_600), 1);
        // So is a valid mailed code once its login is over (a trusted device let the user in).
        let mut over = r.clone();
        over.challenge = None;
        let t = finish(&over, T0 + 1, &mail_code(), Factor::MailedCode(&code), None);
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Invalid(FailureReason::ExpiredChallenge)
        );
        // A TOTP code means nothing to a user without an authenticator.
        let t = finish(&r, T0 + 1, &mail_code(), Factor::Totp("123456"), None);
        assert_eq!(
            t.outcome().as_ref().unwrap_err(),
            &Refusal::Invalid(FailureReason::NoPendingFactor)
        );
    }

    #[test]
    fn mail_send_limit_points_at_the_last_code_or_denies() {
        let mut r = TwoFactorRecord::default();
        for i in 0..5 {
            let t = begin(&r, T0 + i, &mail_code(), None);
            assert!(matches!(t.outcome(), LoginDecision::CodeMailed { .. }));
            r = t.into_parts().0;
        }
        let t = begin(&r, T0 + 10, &mail_code(), None);
        assert_eq!(said(t.outcome()), code_mailed(T0 + 10, T0 + 4 + 3_600));
        assert!(t.notices().is_empty());
        assert_eq!(
            t.events(),
            &[AuditKind::MailThrottled {
                retry_at: T0 + 3_600
            }]
        );
        let mut used = r.clone();
        used.clear_mailed_codes();
        let t = begin_checked(&used, T0 + 10, &mail_code(), None);
        assert_eq!(
            *t.outcome(),
            Err(Refusal::Throttled {
                retry_at: T0 + 3_600
            })
        );
        assert_eq!(
            r.start_login(
                &who(),
                T0 + 3_600,
                &mail_code(),
                None,
                &ctx(),
                &Settings::default(),
                &mut FailingRng
            )
            .unwrap_err(),
            DomainError::Rng
        );
    }

    #[test]
    fn failed_sends_point_the_login_only_at_a_code_that_may_have_arrived() {
        // `start_login` mails a code; the mailer fails (the service records it).
        let fail = |r: &TwoFactorRecord, now: u64| {
            let t = begin(r, now, &mail_code(), None);
            assert_eq!(said(t.outcome()), code_mailed(now, now + 3_600));
            let r = t.into_parts().0;
            let send = r.code_send().expect("stored before it is sent");
            r.mailed_code_not_sent(&send).into_parts().0
        };
        let mut r = TwoFactorRecord::default();
        for i in 0..15 {
            r = fail(&r, T0 + i);
        }
        // Fifteen attempts in the hour, none delivered: nothing to point at.
        let t = begin_checked(&r, T0 + 20, &mail_code(), None);
        assert_eq!(
            *t.outcome(),
            Err(Refusal::Throttled {
                retry_at: T0 + 3_600
            })
        );
        assert!(!t.is_changed() && t.notices().is_empty());
        // One delivered, then failures: the attempts run out and the delivered code is the
        // one the login waits for.
        let t = begin(&TwoFactorRecord::default(), T0, &mail_code(), None);
        let r = t.into_parts().0;
        let send = r.code_send().unwrap();
        let mut r = r.mailed_code_sent(&send).into_parts().0;
        for i in 1..15 {
            r = fail(&r, T0 + i);
        }
        let t = begin(&r, T0 + 20, &mail_code(), None);
        assert_eq!(said(t.outcome()), code_mailed(T0 + 20, T0 + 3_600));
        assert!(t.notices().is_empty());
        assert_eq!(r.mail_sends.count(T0 + 20, 3_600), 1);
    }

    #[test]
    fn only_a_mailed_code_login_yields_the_proof_that_opens_enrollment() {
        let s = Settings::default();
        let e = enrolled_record(T0);
        let now = T0 + 60;
        let code = active_code_at(&e, now);
        let t = finish(&e, now, &Requirement::required(), Factor::Totp(&code), None);
        let granted = t.outcome().as_ref().unwrap();
        assert_eq!(granted.proof.factor(), FactorKind::Totp);
        assert_eq!(granted.proof.user(), &who().user);
        assert_eq!(t.record().mailed_code_login_at, None);
        // A TOTP login's proof does not open enrollment under a mailed-code policy.
        let none = TwoFactorRecord::default();
        assert_eq!(
            none.start_enrollment(
                now,
                &who().user,
                &mail_code(),
                super::super::Reauthenticated::at(now),
                Some(&granted.proof),
                "a",
                &s,
                &mut TestRng(now),
            )
            .map(|_| ()),
            Err(DomainError::SecondFactorRequired)
        );
        // A refused mailed code yields no proof and records nothing either.
        let r = begin(&none, T0, &mail_code(), None).into_parts().0;
        let t = finish(&r, T0 + 1, &mail_code(), Factor::MailedCode("000000"), None);
        if t.outcome().is_err() {
            assert_eq!(t.record().mailed_code_login_at, None);
        }
    }

    /// A step-up touches no login state, whatever the record holds: a login waiting for a
    /// mailed code (and the code), one waiting for enrollment, used tickets, trusted devices,
    /// the mailed-code login time. Only the throttle and the factor's replay state move.
    #[test]
    fn step_up_leaves_every_login_state_alone() {
        let now = T0 + 60;
        let s = Settings::default();
        let r = enrolled_record(T0);
        // A trusted device from a login, then the login states a record can hold.
        let code = active_code_at(&r, now);
        let t = finish(
            &r,
            now,
            &required(true),
            Factor::Totp(&code),
            Some("Firefox"),
        );
        let mut r = t.into_parts().0;
        assert!(matches!(
            r.send_mailed_code(now, &ctx(), &s, &mut TestRng(1)),
            Ok(Sent::New { .. })
        ));
        r.challenge = Some(LoginChallenge {
            issued_at: now,
            expires_at: now + 900,
        });
        r.login_awaiting_enrollment = r.challenge.clone();
        r.mailed_code_login_at = Some(T0);
        r.tickets.mark_used(&[7; 16], now - 10, now);
        assert!(r.outgoing.is_some() && r.tickets.through == now - 10);
        let before = r.clone();
        let t = r
            .verify_second_factor(
                now + 30,
                &who().user,
                Factor::Totp(&active_code_at(&r, now + 30)),
                &s,
                &mut TestRng(2),
            )
            .unwrap();
        assert!(t.outcome().is_ok());
        let after = t.record();
        assert_eq!(after.mailed, before.mailed);
        assert_eq!(after.outgoing, before.outgoing);
        assert_eq!(after.mail_attempts, before.mail_attempts);
        assert_eq!(after.challenge, before.challenge);
        assert_eq!(
            after.login_awaiting_enrollment,
            before.login_awaiting_enrollment
        );
        assert_eq!(after.mailed_code_login_at, before.mailed_code_login_at);
        assert_eq!(after.tickets, before.tickets);
        assert_eq!(after.devices, before.devices);
        assert_eq!(after.devices.len(), 1);
        assert_eq!(after.recovery, before.recovery);
        assert_eq!(after.mail_sends, before.mail_sends);
        assert_ne!(after.last_used_step(), before.last_used_step());
        assert_eq!(
            t.events(),
            &[
                AuditKind::SecondFactorVerified {
                    factor: FactorKind::Totp
                },
                AuditKind::AuthenticatorUsed {
                    authenticator: before.authenticators[0].id.clone()
                }
            ]
        );
        assert!(t.notices().is_empty());
    }

    /// An enrolled record with a fresh set of recovery codes made under `s`, and the codes.
    fn with_recovery_codes(s: &Settings) -> (TwoFactorRecord, Vec<String>) {
        let (e, proof) = crate::account::enrollment::tests::enrolled(T0);
        let t = e
            .regenerate_recovery_codes(
                T0,
                &who().user,
                super::super::Reauthenticated::at(T0),
                (&proof).into(),
                s,
                &mut TestRng(5),
            )
            .unwrap();
        let codes = t.outcome().as_ref().unwrap().expose_secret();
        let codes = codes.into_iter().map(str::to_owned).collect();
        (t.into_parts().0, codes)
    }

    /// Every grant says how the user was authenticated: a policy's grant the password alone,
    /// a remembered device the password and the device (never AAL2), and each factor at
    /// `finish_login` the password (when it was checked) and the factor, sealed in its proof.
    #[test]
    fn every_grant_carries_its_claims() {
        use crate::account::{Aal, AuthMethod as M, CompletedMethod as C};
        let none = TwoFactorRecord::default();
        let e = enrolled_record(T0);
        let now = T0 + 60;
        let grace = Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: Some(now + 10),
            trusted_devices: true,
        };
        let exempt = Requirement::Exempt {
            reason: "superuser".into(),
        };
        for (r, req) in [
            (&none, Requirement::Off),
            (&none, Requirement::optional()),
            (&e, exempt),
            (&none, grace),
        ] {
            let t = begin(r, now, &req, None);
            let claims = t.outcome().claims().expect("granted");
            assert_eq!(claims.methods(), [C::new(M::Password, now)], "{req:?}");
            assert_eq!((claims.aal(), claims.amr()), (Aal::Aal1, vec!["pwd"]));
            assert_eq!(claims.auth_time(), now);
        }
        assert!(
            begin(&e, now, &Requirement::required(), None)
                .outcome()
                .claims()
                .is_none()
        );

        // Each factor at the second step: the ticket dates the password (0 in these tests).
        let check = |t: &Transition<Checked<LoginGranted>>, method, aal, amr: &[&str]| {
            let g = t.outcome().as_ref().expect("granted");
            // A TOTP code names the authenticator it came from.
            let mut proved = C::new(method, g.proof.verified_at());
            if let Some(id) = &g.authenticator {
                proved = proved.authenticator(id.as_str());
            }
            assert_eq!(g.authenticator.is_some(), method == M::Otp);
            assert_eq!(g.claims.methods(), [C::new(M::Password, 0), proved]);
            assert_eq!((g.claims.aal(), g.claims.amr()), (aal, amr.to_vec()));
            assert_eq!(g.proof.claims(), &g.claims);
            g.proof
                .verify(Settings::default().ticket_key().unwrap())
                .unwrap();
        };
        let code = active_code_at(&e, now);
        let t = finish(
            &e,
            now,
            &Requirement::required(),
            Factor::Totp(&code),
            Some("Firefox"),
        );
        check(&t, M::Otp, Aal::Aal2, &["pwd", "otp", "mfa"]);
        // The device trusted here lets the next login in at AAL1, naming the device.
        let token = t.outcome().as_ref().unwrap().device_token.as_ref().unwrap();
        let (id, token) = (token.id().clone(), token.expose_secret().to_owned());
        let trusted = t.into_parts().0;
        let t = begin(&trusted, now + 5, &Requirement::required(), Some(&token));
        let claims = t.outcome().claims().unwrap();
        assert_eq!(
            claims.methods(),
            [
                C::new(M::Password, now + 5),
                C::new(M::RememberedDevice, now + 5).authenticator(id.as_str())
            ]
        );
        assert_eq!(claims.aal(), Aal::Aal1);
        assert_eq!(claims.amr(), ["pwd", "remembered_device"]);

        let (with_codes, codes) = with_recovery_codes(&Settings::default());
        let t = finish(
            &with_codes,
            now,
            &Requirement::required(),
            Factor::RecoveryCode(&codes[0]),
            None,
        );
        check(
            &t,
            M::RecoveryCode,
            Aal::Aal2,
            &["pwd", "lookup_secret", "mfa"],
        );

        let t = begin(&none, now, &mail_code(), None);
        let mailed = t.notices()[0].expose_login_code().unwrap().to_owned();
        let t = finish(
            t.record(),
            now + 30,
            &mail_code(),
            Factor::MailedCode(&mailed),
            None,
        );
        check(&t, M::MailedCode, Aal::Aal1, &["pwd", "email_code"]);

        // Step-up: the factor alone (the session holds the password).
        let t = with_codes
            .verify_second_factor(
                now + 90,
                &who().user,
                Factor::Totp(&active_code_at(&with_codes, now + 90)),
                &Settings::default(),
                &mut TestRng(3),
            )
            .unwrap();
        let p = t.outcome().as_ref().unwrap();
        let id = with_codes.authenticators[0].id.as_str();
        assert_eq!(
            p.claims().methods(),
            [C::new(M::Otp, now + 90).authenticator(id)]
        );
        assert_eq!(p.claims().aal(), Aal::Aal1);
    }

    /// Recovery codes count down out loud: every use is audited and notified with the count
    /// left (and whether it is low), logins carry the low hint whatever factor they used, and
    /// with none left every login says the user must make new ones, until they do.
    #[test]
    fn recovery_codes_warn_before_they_run_out() {
        let s = Settings::builder()
            .recovery_codes(5)
            .recovery_codes_low_at(3)
            .build()
            .unwrap();
        let (mut r, codes) = with_recovery_codes(&s);
        let login = |r: &TwoFactorRecord, now: u64, factor: Factor<'_>| {
            r.finish_login(
                &open_pending(r, factor.kind()),
                now,
                &Requirement::required(),
                factor,
                None,
                &ctx(),
                &s,
                &mut TestRng(now),
            )
            .unwrap()
        };
        let mut now = T0 + 100;
        for (i, code) in codes.iter().enumerate() {
            now += 30;
            let t = login(&r, now, Factor::RecoveryCode(code));
            let left = codes.len() - i - 1;
            let g = t.outcome().as_ref().unwrap();
            assert_eq!(g.recovery_codes_left, Some(left));
            assert_eq!(g.recovery_codes_low, (left <= 3).then_some(left));
            assert_eq!(g.must_regenerate_recovery_codes, left == 0);
            assert!(
                t.events()
                    .contains(&AuditKind::RecoveryCodeUsed { remaining: left })
            );
            let notice = t
                .notices()
                .iter()
                .find(|n| n.kind() == NoticeKind::RecoveryCodeUsed)
                .expect("every use is notified");
            assert!(
                matches!(notice, Notice::RecoveryCodeUsed { remaining, low, .. }
                    if *remaining == left && *low == (left <= 3)),
                "{notice:?}"
            );
            let status = t.record().status(now, &s);
            assert_eq!(status.recovery_codes_low, g.recovery_codes_low);
            assert_eq!(status.must_regenerate_recovery_codes, left == 0);
            r = t.into_parts().0;
            // A TOTP login carries the same hint.
            now += 30;
            let t = login(&r, now, Factor::Totp(&active_code_at(&r, now)));
            let g = t.outcome().as_ref().unwrap();
            assert_eq!(g.recovery_codes_left, None);
            assert_eq!(g.recovery_codes_low, (left <= 3).then_some(left));
            assert_eq!(g.must_regenerate_recovery_codes, left == 0);
            r = t.into_parts().0;
        }
        // None left: no recovery code is offered, and every login says "make new ones".
        assert_eq!(
            said(begin(&r, now + 1, &Requirement::required(), None).outcome()),
            challenge(vec![FactorKind::Totp], now + 1)
        );
        now += 30;
        let t = login(&r, now, Factor::Totp(&active_code_at(&r, now)));
        assert!(t.outcome().as_ref().unwrap().must_regenerate_recovery_codes);
        // Regenerating (with this login's proof) replaces the whole set: the hint is gone.
        let fresh = t.outcome().as_ref().unwrap().proof.clone();
        let r = t.into_parts().0;
        let t = r
            .regenerate_recovery_codes(
                now + 1,
                &who().user,
                super::super::Reauthenticated::at(now),
                (&fresh).into(),
                &s,
                &mut TestRng(9),
            )
            .unwrap();
        assert_eq!(t.record().recovery_codes_left(), 5);
        let status = t.record().status(now + 1, &s);
        assert_eq!(status.recovery_codes_low, None);
        assert!(!status.must_regenerate_recovery_codes);
        // The low mark is the host's: at 0 only the exhausted set is "low".
        let strict = Settings::builder()
            .recovery_codes_low_at(0)
            .build()
            .unwrap();
        assert_eq!(enrolled_record(T0).recovery_codes_low(&strict), None);
        assert_eq!(TwoFactorRecord::default().recovery_codes_low(&s), None);
        assert!(!TwoFactorRecord::default().must_regenerate_recovery_codes());
        assert!(
            Settings::builder()
                .recovery_codes_low_at(51)
                .build()
                .is_err()
        );
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;
    use crate::account::crypto::TestRng;
    use crate::account::enrollment::tests::{T0, active_code_at, enrolled_record};

    fn pending_of(r: &TwoFactorRecord, req: &Requirement, now: u64) -> PendingLogin {
        r.start_login(
            &Principal::new("u"),
            now,
            req,
            None,
            &LoginContext::new(),
            &Settings::default(),
            &mut TestRng(now),
        )
        .unwrap()
        .into_parts()
        .2
        .unwrap()
        .into_pending()
        .unwrap()
    }

    fn finish(
        r: &TwoFactorRecord,
        p: &PendingLogin,
        now: u64,
        factor: Factor<'_>,
    ) -> Result<Transition<Checked<LoginGranted>>, DomainError> {
        r.finish_login(
            p,
            now,
            &Requirement::required(),
            factor,
            None,
            &LoginContext::new(),
            &Settings::default(),
            &mut TestRng(now),
        )
    }

    #[test]
    fn an_expired_pending_login_checks_and_counts_nothing() {
        let e = enrolled_record(T0);
        let p = pending_of(&e, &Requirement::required(), T0 + 60);
        assert_eq!(p.password_checked_at(), T0 + 60);
        assert_eq!(p.expires_at(), T0 + 60 + 900);
        let late = p.expires_at();
        let code = active_code_at(&e, late);
        for factor in [
            Factor::Totp(&code),
            Factor::RecoveryCode("xxxx-xxxx"),
            Factor::MailedCode("123456"),
        ] {
            assert_eq!(
                finish(&e, &p, late, factor).unwrap_err(),
                DomainError::LoginExpired
            );
            assert_eq!(
                finish(&e, &p, u64::MAX, factor).unwrap_err(),
                DomainError::LoginExpired
            );
        }
        // One second earlier the same code logs in.
        let code = active_code_at(&e, late - 1);
        let t = finish(&e, &p, late - 1, Factor::Totp(&code)).unwrap();
        assert!(t.outcome().is_ok());
    }

    /// A ticket this deployment issued for `principal` at `now` (what `start_login` hands
    /// out for some record at generation 0).
    fn issued(principal: Principal, now: u64, ttl: u64, step: PendingStep) -> PendingLogin {
        PendingLogin::issue(
            principal,
            now,
            ttl,
            step,
            0,
            &Settings::default(),
            &mut TestRng(now ^ 0x5eed),
        )
        .unwrap()
    }

    /// `p` with its claims edited by `edit` and sealed again under a key that is not this
    /// deployment's: everything an attacker who can write the cookie can make.
    fn forged(p: &PendingLogin, edit: impl FnOnce(&mut PendingLogin)) -> PendingLogin {
        let mut f = p.clone();
        edit(&mut f);
        let key = crate::account::TicketKey::new(Zeroizing::new([0x66; 32]));
        f.token = f.encode().seal(TokenKind::LoginTicket, &key).unwrap();
        f
    }

    #[test]
    fn a_factor_the_pending_login_does_not_accept_is_refused_and_counted() {
        let e = enrolled_record(T0);
        let now = T0 + 60;
        // A mailed-code ticket for an enrolled user (issued before they enrolled) and an
        // enrollment ticket: the TOTP code is right but not what this login waits for.
        let mailed = issued(
            Principal::new("u"),
            now,
            900,
            PendingStep::MailedCode {
                code_expires_at: now + 3_600,
            },
        );
        let enroll = issued(Principal::new("u"), now, 900, PendingStep::Enrollment);
        let code = active_code_at(&e, now);
        for p in [&mailed, &enroll] {
            let t = finish(&e, p, now, Factor::Totp(&code)).unwrap();
            assert_eq!(
                t.outcome().as_ref().unwrap_err(),
                &Refusal::Invalid(FailureReason::NoPendingFactor)
            );
            assert_eq!(t.record().code_checks.count(now, 3_600), 1);
            let step = |r: &TwoFactorRecord| r.last_used_step();
            assert_eq!(step(t.record()), step(&e), "the TOTP step is not consumed");
        }
        // A TOTP challenge takes no mailed code, even a valid one in the record.
        let none = TwoFactorRecord::default();
        let mail = Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            grace_until: None,
            trusted_devices: false,
        };
        let t = none
            .start_login(
                &Principal::new("u"),
                now,
                &mail,
                None,
                &LoginContext::new(),
                &Settings::default(),
                &mut TestRng(now),
            )
            .unwrap();
        let code = t.notices()[0].expose_login_code().unwrap().to_owned();
        let (r, _, decision, _, _) = t.into_parts();
        let totp_challenge = issued(
            Principal::new("u"),
            now,
            900,
            PendingStep::SecondFactor {
                methods: vec![FactorKind::Totp],
            },
        );
        let t = finish(&r, &totp_challenge, now, Factor::MailedCode(&code)).unwrap();
        assert!(t.outcome().is_err());
        assert!(
            t.record().acceptable_codes().next().is_some(),
            "the mailed code is not consumed"
        );
        // With its own pending login it works.
        let p = decision.unwrap().into_pending().unwrap();
        assert_eq!(p.methods(), &[FactorKind::MailedCode]);
        let t = finish(&r, &p, now + 1, Factor::MailedCode(&code)).unwrap();
        assert_eq!(t.outcome().as_ref().unwrap().factor, FactorKind::MailedCode);
    }

    /// Editing a ticket used to be possible (it was plain data) and granted nothing the record
    /// did not allow. Now any edit is refused outright, before a code is looked at: nothing
    /// checked, counted or saved for the user it names.
    #[test]
    fn an_edited_or_forged_ticket_is_refused_before_anything_is_counted() {
        let e = enrolled_record(T0);
        let now = T0 + 60;
        let p = pending_of(&e, &Requirement::required(), now);
        let code = active_code_at(&e, now);
        let edits: Vec<PendingLogin> = vec![
            forged(&p, |_| {}),
            forged(&p, |f| f.principal = Principal::new("mallory")),
            forged(&p, |f| f.principal = Principal::new("u").with_role("admin")),
            forged(&p, |f| f.expires_at = u64::MAX),
            forged(&p, |f| {
                f.step = PendingStep::SecondFactor {
                    methods: vec![FactorKind::RecoveryCode],
                };
            }),
            forged(&p, |f| f.step = PendingStep::Enrollment),
            forged(&p, |f| f.generation = 7),
            // The claims edited, the original seal kept.
            PendingLogin {
                expires_at: u64::MAX,
                ..p.clone()
            },
        ];
        for f in &edits {
            for factor in [
                Factor::Totp(&code),
                Factor::RecoveryCode("xxxx-xxxx-xxxx-xxxx"),
            ] {
                assert_eq!(
                    finish(&e, f, now, factor).map(|_| ()),
                    Err(DomainError::InvalidTicket),
                    "{f:?}"
                );
            }
        }
        // Parsed back from an edited string: refused at parse or at use, never accepted.
        let token = p.as_str().to_owned();
        for i in (0..token.len()).step_by(7) {
            let mut edited = token.clone().into_bytes();
            edited[i] = match edited[i] {
                b'.' => continue,
                b'0' => b'1',
                _ => b'0',
            };
            let edited = String::from_utf8(edited).unwrap();
            if let Ok(f) = edited.parse::<PendingLogin>() {
                assert_eq!(
                    finish(&e, &f, now, Factor::Totp(&code)).map(|_| ()),
                    Err(DomainError::InvalidTicket),
                    "edit at {i}"
                );
            }
        }
        // The real one still logs in.
        let t = finish(&e, &p, now, Factor::Totp(&code)).unwrap();
        assert!(t.outcome().is_ok());
    }

    #[test]
    fn a_ticket_completes_one_login_and_none_after_a_revocation() {
        let e = enrolled_record(T0);
        let now = T0 + 60;
        let p = pending_of(&e, &Requirement::required(), now);
        let t = finish(&e, &p, now, Factor::Totp(&active_code_at(&e, now))).unwrap();
        assert!(t.outcome().is_ok());
        let after = t.into_parts().0;
        // Used: refused with the next code, nothing checked or counted.
        let later = now + 30;
        let next_code = active_code_at(&after, later);
        assert_eq!(
            finish(&after, &p, later, Factor::Totp(&next_code)).map(|_| ()),
            Err(DomainError::LoginExpired)
        );
        // Revoked (a password change): every ticket issued before is refused, a new one works.
        let q = pending_of(&after, &Requirement::required(), later);
        let t = after.revoke_login_tickets();
        assert_eq!(t.events(), &[AuditKind::LoginTicketsRevoked]);
        assert!(t.is_changed());
        let revoked = t.into_parts().0;
        assert_eq!(
            finish(&revoked, &q, later, Factor::Totp(&next_code)).map(|_| ()),
            Err(DomainError::LoginExpired)
        );
        let fresh = pending_of(&revoked, &Requirement::required(), later);
        let t = finish(&revoked, &fresh, later, Factor::Totp(&next_code)).unwrap();
        assert!(t.outcome().is_ok());
    }

    #[test]
    fn a_mailed_code_login_closes_with_its_code() {
        let none = TwoFactorRecord::default();
        let mail = Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            grace_until: None,
            trusted_devices: false,
        };
        let p = pending_of(&none, &mail, T0);
        assert_eq!(p.expires_at(), T0 + 3_600);
        assert_eq!(
            p.step(),
            &PendingStep::MailedCode {
                code_expires_at: T0 + 3_600
            }
        );
        let short = Settings {
            mailed_code_ttl: 300,
            ..Settings::default()
        };
        let t = none
            .start_login(
                &Principal::new("u"),
                T0,
                &mail,
                None,
                &LoginContext::new(),
                &short,
                &mut TestRng(1),
            )
            .unwrap();
        let p = t.into_parts().2.unwrap().into_pending().unwrap();
        assert_eq!(p.expires_at(), T0 + 300);
    }

    #[test]
    fn the_policy_never_turns_a_pending_login_into_a_grant_without_a_factor() {
        let e = enrolled_record(T0);
        let now = T0 + 60;
        let p = pending_of(&e, &Requirement::required(), now);
        let exempt = Requirement::Exempt {
            reason: "superuser".into(),
        };
        for req in [Requirement::Off, exempt, Requirement::optional()] {
            let t = e
                .finish_login(
                    &p,
                    now,
                    &req,
                    Factor::Totp("000000"),
                    Some("x"),
                    &LoginContext::new(),
                    &Settings::default(),
                    &mut TestRng(now),
                )
                .unwrap();
            if active_code_at(&e, now) != "000000" {
                assert!(t.outcome().is_err(), "{req:?}");
            }
            assert!(t.record().devices.is_empty());
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_is_one_sealed_string_and_round_trips() {
        let e = enrolled_record(T0);
        let p = pending_of(&e, &Requirement::required(), T0);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json, serde_json::Value::String(p.as_str().to_owned()));
        let back: PendingLogin = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.as_str().parse::<PendingLogin>().unwrap(), p);
        // The old plain-data shape is not a ticket, nor is anything but the string.
        let old = serde_json::json!({
            "principal": {"user": "u", "roles": [], "tenant": null, "superuser": false, "created_at": null},
            "password_checked_at": T0, "expires_at": T0 + 900,
            "step": {"second_factor": {"methods": ["totp"]}}
        });
        for v in [
            old,
            serde_json::json!(null),
            serde_json::json!(""),
            serde_json::json!(7),
        ] {
            assert!(serde_json::from_value::<PendingLogin>(v).is_err());
        }
        // Claims a ticket cannot have are refused when parsed, whoever sealed them; every
        // other edit parses but is refused when used (`InvalidTicket`, tested above).
        let bad = |edit: &dyn Fn(&mut PendingLogin)| {
            let f = forged(&p, edit);
            serde_json::from_value::<PendingLogin>(serde_json::to_value(&f).unwrap()).is_err()
        };
        assert!(bad(&|f| f.expires_at = f.password_checked_at));
        assert!(bad(&|f| f.expires_at = 0));
        assert!(bad(
            &|f| f.step = PendingStep::SecondFactor { methods: vec![] }
        ));
        for m in [FactorKind::MailedCode, FactorKind::TrustedDevice] {
            assert!(bad(
                &|f| f.step = PendingStep::SecondFactor { methods: vec![m] }
            ));
        }
        assert!(bad(&|f| {
            f.step = PendingStep::SecondFactor {
                methods: vec![FactorKind::Totp, FactorKind::Totp],
            };
        }));
        let mut text = p.as_str().to_owned();
        text.push_str("00");
        assert!(serde_json::from_value::<PendingLogin>(text.into()).is_err());
        assert!(serde_json::from_value::<PendingLogin>(p.as_str().to_uppercase().into()).is_err());
        // Nothing secret in it.
        let text = json.to_string();
        assert!(!text.contains("secret"), "{text}");
        // An enrollment ticket is a string like any other, and round trips.
        let enroll = issued(Principal::new("u"), 1, 1, PendingStep::Enrollment);
        let v = serde_json::to_value(&enroll).unwrap();
        assert!(v.is_string());
        assert_eq!(serde_json::from_value::<PendingLogin>(v).unwrap(), enroll);
    }
}

#[cfg(test)]
mod factor_parse_tests {
    use proptest::prelude::*;

    use super::super::recovery::{RECOVERY_CODE_ALPHABET, RECOVERY_CODE_LEN, normalize};
    use super::{Factor, FactorKind, FactorParseError};
    use crate::otp::{Code, MAX_DIGITS, MIN_DIGITS};

    /// Every length a recovery code has ever had: the legacy 10 symbols and today's.
    const RECOVERY_LENS: [usize; 2] = [10, RECOVERY_CODE_LEN];

    fn totp_code() -> impl Strategy<Value = String> {
        (MIN_DIGITS..=MAX_DIGITS)
            .prop_flat_map(|n| proptest::collection::vec(0u8..10, usize::from(n)))
            .prop_flat_map(|digits| {
                let n = digits.len();
                (
                    Just(digits),
                    0..=n,
                    prop_oneof![Just(""), Just(" "), Just("  ")],
                )
            })
            .prop_map(|(digits, split, gap)| {
                let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                format!(" {}{gap}{} ", &s[..split], &s[split..])
            })
    }

    /// A recovery code as a person may type it: any case, hyphens or spaces between groups or
    /// nowhere, `o`/`i`/`l` for `0`/`1`.
    fn recovery_code() -> impl Strategy<Value = String> {
        proptest::sample::select(RECOVERY_LENS.to_vec())
            .prop_flat_map(|n| {
                (
                    proptest::collection::vec(0..RECOVERY_CODE_ALPHABET.len(), n),
                    proptest::collection::vec(any::<bool>(), n),
                    prop_oneof![Just(""), Just("-"), Just(" ")],
                )
            })
            .prop_map(|(symbols, flips, sep)| {
                let mut out = String::new();
                for (i, (&s, &flip)) in symbols.iter().zip(&flips).enumerate() {
                    if i > 0 && i % 4 == 0 {
                        out.push_str(sep);
                    }
                    let c = char::from(RECOVERY_CODE_ALPHABET.as_bytes()[s]);
                    let c = match (c, flip) {
                        ('0', true) => 'O',
                        ('1', true) => 'l',
                        (c, true) => c.to_ascii_uppercase(),
                        (c, false) => c,
                    };
                    out.push(c);
                }
                out
            })
    }

    proptest! {
        #[test]
        fn every_totp_code_parses_as_totp(s in totp_code()) {
            let f = Factor::parse(&s).unwrap();
            prop_assert!(matches!(f, Factor::Totp(x) if x == s));
        }

        #[test]
        fn every_recovery_code_parses_as_recovery(s in recovery_code()) {
            let f = Factor::parse(&s).unwrap();
            prop_assert!(matches!(f, Factor::RecoveryCode(x) if x == s));
            if s.chars().filter(|c| c.is_ascii_alphanumeric()).count() == RECOVERY_CODE_LEN {
                prop_assert!(normalize(&s).is_ok());
            }
        }

        /// Nothing panics; whatever a TOTP parser of some length accepts is Totp, whatever
        /// the recovery parser accepts is RecoveryCode, and no input is accepted by both.
        #[test]
        fn the_classes_never_overlap(s in "[0-9a-zA-Z \\t-]{0,20}|\\PC{0,24}") {
            let totp_ok = (MIN_DIGITS..=MAX_DIGITS).any(|d| Code::parse(&s, d).is_ok());
            let recovery_ok = normalize(&s).is_ok();
            prop_assert!(!(totp_ok && recovery_ok));
            match Factor::parse(&s) {
                Ok(f) => {
                    prop_assert_eq!(f.kind() == FactorKind::Totp, totp_ok);
                    if recovery_ok {
                        prop_assert_eq!(f.kind(), FactorKind::RecoveryCode);
                    }
                }
                Err(_) => prop_assert!(!totp_ok && !recovery_ok),
            }
        }
    }

    #[test]
    fn empty_and_garbage_are_typed_errors() {
        for s in ["", " ", "\t", "--", " - "] {
            assert_eq!(
                Factor::parse(s).unwrap_err(),
                FactorParseError::Empty,
                "{s:?}"
            );
        }
        for (s, position) in [("12345;", 5), ("<script>", 0), ("123 45é", 6), ("a\0b", 1)] {
            assert_eq!(
                Factor::parse(s).unwrap_err(),
                FactorParseError::InvalidCharacter { position },
                "{s:?}"
            );
        }
        // Shapes that are neither: handed to the recovery parser, which reports them.
        for s in ["12345", "123456789", "123-456", "12345o", "hello"] {
            assert_eq!(
                Factor::parse(s).unwrap().kind(),
                FactorKind::RecoveryCode,
                "{s:?}"
            );
        }
    }
}
