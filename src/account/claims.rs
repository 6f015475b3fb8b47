//! Assurance claims: how a user was authenticated, in the words hosts pass on to sessions
//! and tokens (RFC 8176 `amr` values, a NIST SP 800-63B assurance level, when each method
//! was completed).
//!
//! Every grant carries them ([`LoginGranted::claims`](super::LoginGranted::claims),
//! [`LoginDecision::Granted`](super::LoginDecision::Granted)), and every
//! [`SecondFactorProof`](super::SecondFactorProof) seals them
//! ([`claims`](super::SecondFactorProof::claims)). A host asks
//! [`AssuranceClaims::satisfies`] before a sensitive action. The
//! [manual](crate::manual#assurance-claims-amr-and-aal) explains the names and the levels.

use core::fmt;

use crate::vocabulary::FactorKind;

use super::Reauthenticated;

/// One way a user proved who they are.
///
/// Its [`amr`](Self::amr) name is the RFC 8176 value where RFC 8176 has one (`pwd`, `otp`),
/// and a descriptive name otherwise, the way Ory Kratos names its methods (`lookup_secret`,
/// and our own `email_code` and `remembered_device`). Serialized (serde) and displayed as
/// that name.
///
/// ```
/// use twofactor::account::AuthMethod;
/// assert_eq!(AuthMethod::Otp.amr(), "otp");
/// assert_eq!("lookup_secret".parse::<AuthMethod>(), Ok(AuthMethod::RecoveryCode));
/// assert!(AuthMethod::Password.is_rfc8176());
/// assert!(!AuthMethod::MailedCode.is_rfc8176());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `pwd` (RFC 8176): the host checked the password. Every login starts with it:
    /// [`TwoFactor::start_login`](crate::TwoFactor::start_login) runs after the host's
    /// password check, and the claims date it then.
    Password,
    /// `otp` (RFC 8176: one-time passwords of RFC 4226 and RFC 6238): a code from the
    /// authenticator app (TOTP).
    Otp,
    /// `lookup_secret`: a recovery code. RFC 8176 has no value for it; the name is Ory
    /// Kratos' and NIST SP 800-63B's (a "look-up secret", section 5.1.2).
    RecoveryCode,
    /// `email_code`: a code mailed to the user for this login. RFC 8176 has no value for it,
    /// and its `otp` names codes from an authenticator (RFC 4226, RFC 6238), which a mailbox
    /// is not: the name says where the code went.
    MailedCode,
    /// `remembered_device`: a trusted-device cookie from an earlier login skipped the second
    /// factor. RFC 8176 has no value for it. Never a second factor: see the
    /// [manual](crate::manual#assurance-claims-amr-and-aal).
    RememberedDevice,
    /// `hwk` (RFC 8176: proof of possession of a hardware-secured key): a security key
    /// signed the challenge (WebAuthn, feature `webauthn`). Phishing-resistant. Without
    /// attestation (not asked for) the key's hardware is not proven: it counts as a second
    /// factor (AAL2), not AAL3; see the [manual](crate::manual#security-keys-webauthn).
    HardwareKey,
    /// `swk` (RFC 8176: proof of possession of a software-secured key): a security key whose
    /// credential says it may be copied to other devices or backed up (WebAuthn's
    /// backup-eligible flag: a synced passkey in a password manager or a platform keychain),
    /// so its private key is not sealed in one device's hardware. Phishing-resistant like
    /// [`HardwareKey`](Self::HardwareKey), and a second factor (AAL2; NIST's supplement on
    /// syncable authenticators also stops them at AAL2).
    SoftwareKey,
}

impl AuthMethod {
    /// Every method, in a fixed order.
    pub const ALL: [AuthMethod; 7] = [
        AuthMethod::Password,
        AuthMethod::Otp,
        AuthMethod::RecoveryCode,
        AuthMethod::MailedCode,
        AuthMethod::RememberedDevice,
        AuthMethod::HardwareKey,
        AuthMethod::SoftwareKey,
    ];

    /// The `amr` value: `pwd`, `otp`, `lookup_secret`, `email_code`, `remembered_device`,
    /// `hwk` or `swk`.
    #[must_use]
    pub const fn amr(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Otp => "otp",
            AuthMethod::RecoveryCode => "lookup_secret",
            AuthMethod::MailedCode => "email_code",
            AuthMethod::RememberedDevice => "remembered_device",
            AuthMethod::HardwareKey => "hwk",
            AuthMethod::SoftwareKey => "swk",
        }
    }

    /// Whether [`amr`](Self::amr) is a value registered by RFC 8176 (`pwd`, `otp`, `hwk`,
    /// `swk`); the others are this crate's names, to agree on with whoever reads the token.
    #[must_use]
    pub const fn is_rfc8176(self) -> bool {
        matches!(
            self,
            AuthMethod::Password
                | AuthMethod::Otp
                | AuthMethod::HardwareKey
                | AuthMethod::SoftwareKey
        )
    }

    /// Whether this method resists phishing (it is bound to the site's origin): a security
    /// key ([`HardwareKey`](Self::HardwareKey) or [`SoftwareKey`](Self::SoftwareKey)).
    #[must_use]
    pub const fn is_phishing_resistant(self) -> bool {
        matches!(self, AuthMethod::HardwareKey | AuthMethod::SoftwareKey)
    }

    /// Whether this method is a possession authenticator that NIST SP 800-63B accepts as the
    /// second factor of AAL2 next to a password (section 4.2.1: a single-factor OTP device, a
    /// look-up secret, a cryptographic device): [`Otp`](Self::Otp),
    /// [`RecoveryCode`](Self::RecoveryCode), [`HardwareKey`](Self::HardwareKey) and
    /// [`SoftwareKey`](Self::SoftwareKey). A mailed code and a remembered device are not.
    #[must_use]
    pub const fn is_second_factor(self) -> bool {
        matches!(
            self,
            AuthMethod::Otp
                | AuthMethod::RecoveryCode
                | AuthMethod::HardwareKey
                | AuthMethod::SoftwareKey
        )
    }

    /// Whether this method is, on its own, an authenticator that reaches AAL1 (a password, an
    /// OTP device, a look-up secret).
    #[must_use]
    pub const fn is_authenticator(self) -> bool {
        matches!(
            self,
            AuthMethod::Password
                | AuthMethod::Otp
                | AuthMethod::RecoveryCode
                | AuthMethod::HardwareKey
                | AuthMethod::SoftwareKey
        )
    }

    /// The method a verified factor stands for: a security key is
    /// [`HardwareKey`](Self::HardwareKey) here; the record names a synced one
    /// [`SoftwareKey`](Self::SoftwareKey) (see [`factor`](Self::factor)).
    #[must_use]
    pub const fn of_factor(kind: FactorKind) -> Self {
        match kind {
            FactorKind::Totp => AuthMethod::Otp,
            FactorKind::RecoveryCode => AuthMethod::RecoveryCode,
            FactorKind::MailedCode => AuthMethod::MailedCode,
            FactorKind::TrustedDevice => AuthMethod::RememberedDevice,
            FactorKind::SecurityKey => AuthMethod::HardwareKey,
        }
    }

    /// The kind of factor this method verifies (both key methods are a
    /// [`FactorKind::SecurityKey`]); `None` for the password.
    #[must_use]
    pub const fn factor(self) -> Option<FactorKind> {
        Some(match self {
            AuthMethod::Password => return None,
            AuthMethod::Otp => FactorKind::Totp,
            AuthMethod::RecoveryCode => FactorKind::RecoveryCode,
            AuthMethod::MailedCode => FactorKind::MailedCode,
            AuthMethod::RememberedDevice => FactorKind::TrustedDevice,
            AuthMethod::HardwareKey | AuthMethod::SoftwareKey => FactorKind::SecurityKey,
        })
    }

    /// The byte of the sealed proof's encoding.
    pub(crate) const fn byte(self) -> u8 {
        match self {
            AuthMethod::Password => 1,
            AuthMethod::Otp => 2,
            AuthMethod::RecoveryCode => 3,
            AuthMethod::MailedCode => 4,
            AuthMethod::RememberedDevice => 5,
            AuthMethod::HardwareKey => 6,
            AuthMethod::SoftwareKey => 7,
        }
    }

    pub(crate) const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => AuthMethod::Password,
            2 => AuthMethod::Otp,
            3 => AuthMethod::RecoveryCode,
            4 => AuthMethod::MailedCode,
            5 => AuthMethod::RememberedDevice,
            6 => AuthMethod::HardwareKey,
            7 => AuthMethod::SoftwareKey,
            _ => return None,
        })
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.amr())
    }
}

/// A name that is neither an [`AuthMethod`]'s `amr` value nor an [`Aal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an authentication method or assurance level this crate names")]
pub struct UnknownClaimName;

impl core::str::FromStr for AuthMethod {
    type Err = UnknownClaimName;
    fn from_str(s: &str) -> Result<Self, UnknownClaimName> {
        AuthMethod::ALL
            .into_iter()
            .find(|m| m.amr() == s)
            .ok_or(UnknownClaimName)
    }
}

/// An authenticator assurance level of NIST SP 800-63B. Ordered: `Aal1 < Aal2 < Aal3`.
/// Serialized (serde) and displayed as `aal1`, `aal2`, `aal3` (Ory Kratos' spelling).
///
/// - **AAL1**: one factor (the password; a code on its own).
/// - **AAL2**: the password and a possession authenticator 800-63B accepts there: a TOTP
///   code or a recovery code (a look-up secret).
/// - **AAL3**: a hardware-backed, phishing-resistant key; nothing this crate verifies reaches
///   it yet (hardware keys come with WebAuthn).
///
/// A mailed code and a remembered device never lift a login above AAL1: the
/// [manual](crate::manual#assurance-claims-amr-and-aal) says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aal {
    /// One factor.
    Aal1,
    /// Two factors: the password and a TOTP or recovery code.
    Aal2,
    /// A hardware cryptographic authenticator (not reachable yet).
    Aal3,
}

impl Aal {
    /// `aal1`, `aal2` or `aal3`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
            Aal::Aal3 => "aal3",
        }
    }

    /// The highest level a user can reach with what they hold (Ory Kratos'
    /// `highest_available`): AAL2 with an active authenticator, AAL1 without. Ask
    /// [`AssuranceClaims::satisfies`] for it to require the second factor exactly of the users
    /// who have one (see also
    /// [`TwoFactorStatus::highest_available_aal`](super::TwoFactorStatus::highest_available_aal)).
    ///
    /// ```
    /// use twofactor::account::Aal;
    /// assert_eq!(Aal::highest_available(true), Aal::Aal2);
    /// assert_eq!(Aal::highest_available(false), Aal::Aal1);
    /// ```
    #[must_use]
    pub const fn highest_available(enrolled: bool) -> Aal {
        if enrolled { Aal::Aal2 } else { Aal::Aal1 }
    }
}

impl fmt::Display for Aal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for Aal {
    type Err = UnknownClaimName;
    fn from_str(s: &str) -> Result<Self, UnknownClaimName> {
        [Aal::Aal1, Aal::Aal2, Aal::Aal3]
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(UnknownClaimName)
    }
}

/// One method, completed: which, when, and with which authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct CompletedMethod {
    /// The method.
    pub method: AuthMethod,
    /// When it was completed (Unix seconds).
    pub completed_at: u64,
    /// Which authenticator: for [`AuthMethod::RememberedDevice`] the trusted device's id; for
    /// [`AuthMethod::Otp`] the id of the authenticator that matched (an
    /// [`AuthenticatorId`](crate::vocabulary::AuthenticatorId), as text); `None` for the other
    /// methods.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "super::required"))]
    pub authenticator: Option<String>,
}

impl CompletedMethod {
    /// `method`, completed at `completed_at`, with no authenticator named.
    #[must_use]
    pub const fn new(method: AuthMethod, completed_at: u64) -> Self {
        CompletedMethod {
            method,
            completed_at,
            authenticator: None,
        }
    }

    /// Names the authenticator (see [`authenticator`](Self::authenticator)).
    #[must_use]
    pub fn authenticator(mut self, id: impl Into<String>) -> Self {
        self.authenticator = Some(id.into());
        self
    }
}

/// Why [`AssuranceClaims::satisfies`] said no, and what would make it say yes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{level} within the requested age is not satisfied")]
#[non_exhaustive]
pub struct Unsatisfied {
    /// The level that was asked for.
    pub level: Aal,
    /// What would satisfy it, completed now: [`AuthMethod::Password`] when the claims show no
    /// password at all, and the second factors ([`AuthMethod::Otp`],
    /// [`AuthMethod::RecoveryCode`]: any one of them; a user with a security key may give
    /// [`AuthMethod::HardwareKey`] instead) when none is recent enough; for AAL1,
    /// any one of the methods listed. Empty when nothing this crate verifies can reach the
    /// level (AAL3).
    pub needed: Vec<AuthMethod>,
}

/// How a user was authenticated: the methods completed, each with its time and
/// authenticator; from them the RFC 8176 [`amr`](Self::amr) values, the NIST SP 800-63B level
/// ([`aal`](Self::aal)) and the time of the authentication ([`auth_time`](Self::auth_time)).
///
/// Every grant carries them: [`LoginGranted::claims`](super::LoginGranted::claims) (a TOTP,
/// recovery or mailed code) and [`LoginDecision::Granted`](super::LoginDecision::Granted) (a
/// remembered device, or a policy that needed no second factor); every
/// [`SecondFactorProof`](super::SecondFactorProof) seals the claims it was issued with.
///
/// | how the user got in | methods | `amr` | level |
/// |---|---|---|---|
/// | password, then TOTP code | `pwd`, `otp` | `pwd otp mfa` | AAL2 |
/// | password, then recovery code | `pwd`, `lookup_secret` | `pwd lookup_secret mfa` | AAL2 |
/// | password, then security key (feature `webauthn`) | `pwd`, `hwk` | `pwd hwk mfa` | AAL2 |
/// | password, then mailed code | `pwd`, `email_code` | `pwd email_code` | AAL1 |
/// | password and a remembered device | `pwd`, `remembered_device` | `pwd remembered_device` | AAL1 |
/// | password, no second factor needed | `pwd` | `pwd` | AAL1 |
/// | step-up (a code, no password) | `otp` | `otp` | AAL1 on its own: [`merge`](Self::merge) it into the session's claims |
///
/// Put them in a session or a token as `amr` ([`amr`](Self::amr)), an `acr`-like level
/// ([`aal`](Self::aal), `"aal2"`) and `auth_time` ([`auth_time`](Self::auth_time)); serde
/// writes all of it, with the methods:
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use twofactor::account::{AssuranceClaims, AuthMethod, CompletedMethod, Aal};
/// let claims = AssuranceClaims::new(CompletedMethod::new(AuthMethod::Password, 1_000))
///     .with(CompletedMethod::new(AuthMethod::Otp, 1_030));
/// assert_eq!(claims.amr(), ["pwd", "otp", "mfa"]);
/// assert_eq!(claims.aal(), Aal::Aal2);
/// assert_eq!(claims.auth_time(), 1_030);
/// let json = serde_json::to_string(&claims).unwrap();
/// assert_eq!(
///     json,
///     r#"{"amr":["pwd","otp","mfa"],"aal":"aal2","auth_time":1030,"methods":[{"method":"pwd","completed_at":1000,"authenticator":null},{"method":"otp","completed_at":1030,"authenticator":null}]}"#
/// );
/// assert_eq!(serde_json::from_str::<AssuranceClaims>(&json).unwrap(), claims);
/// # }
/// ```
///
/// Claims are plain data: they are trustworthy as far as where they came from. Those of a
/// proof are sealed with it and checked by
/// [`TwoFactor::check_proof`](crate::TwoFactor::check_proof); claims the host stored itself
/// are as safe as its session store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AssuranceClaims {
    /// At least one; at most one per method and authenticator (the latest); ordered by
    /// completion time, then method.
    methods: Vec<CompletedMethod>,
}

impl AssuranceClaims {
    /// The most methods a set of claims keeps (one per method and authenticator).
    pub const MAX_METHODS: usize = 16;

    /// Claims of one completed method.
    #[must_use]
    pub fn new(method: CompletedMethod) -> Self {
        AssuranceClaims {
            methods: vec![method],
        }
    }

    /// Adds a completed method. A method already present with the same authenticator keeps
    /// only its later completion. Past [`MAX_METHODS`](Self::MAX_METHODS) the oldest entries
    /// are dropped.
    #[must_use]
    pub fn with(mut self, method: CompletedMethod) -> Self {
        self.add(method);
        self
    }

    /// These claims and `other`'s together: how a host adds a step-up to the claims of the
    /// session's login. Each method keeps its latest completion.
    ///
    /// ```
    /// use twofactor::account::{Aal, AssuranceClaims, AuthMethod, CompletedMethod};
    /// let login = AssuranceClaims::new(CompletedMethod::new(AuthMethod::Password, 1_000))
    ///     .with(CompletedMethod::new(AuthMethod::Otp, 1_030));
    /// let step_up = AssuranceClaims::new(CompletedMethod::new(AuthMethod::Otp, 5_000));
    /// let session = login.merge(&step_up);
    /// assert_eq!(session.completed(AuthMethod::Otp), Some(5_000));
    /// assert!(session.satisfies(Aal::Aal2, 600, 5_100).is_ok());
    /// assert!(login.satisfies(Aal::Aal2, 600, 5_100).is_err());
    /// ```
    #[must_use]
    pub fn merge(&self, other: &AssuranceClaims) -> AssuranceClaims {
        let mut merged = self.clone();
        for m in &other.methods {
            merged.add(m.clone());
        }
        merged
    }

    fn add(&mut self, method: CompletedMethod) {
        let same = |m: &CompletedMethod| {
            m.method == method.method && m.authenticator == method.authenticator
        };
        if let Some(existing) = self.methods.iter_mut().find(|m| same(m)) {
            existing.completed_at = existing.completed_at.max(method.completed_at);
        } else {
            self.methods.push(method);
        }
        self.methods
            .sort_by_key(|m| (m.completed_at, m.method, m.authenticator.clone()));
        let excess = self.methods.len().saturating_sub(Self::MAX_METHODS);
        self.methods.drain(..excess);
    }

    /// Builds claims from decoded parts, refusing any that are not in canonical form (empty,
    /// too many, out of order, duplicated): what a sealed proof and serde accept.
    pub(crate) fn from_canonical(methods: Vec<CompletedMethod>) -> Option<Self> {
        let first = methods.first()?.clone();
        let mut claims = AssuranceClaims::new(first);
        for m in methods.iter().skip(1) {
            claims.add(m.clone());
        }
        (methods.len() <= Self::MAX_METHODS && claims.methods == methods).then_some(claims)
    }

    /// The methods, ordered by completion time.
    #[must_use]
    pub fn methods(&self) -> &[CompletedMethod] {
        &self.methods
    }

    /// When `method` was last completed, if it was.
    #[must_use]
    pub fn completed(&self, method: AuthMethod) -> Option<u64> {
        self.methods
            .iter()
            .filter(|m| m.method == method)
            .map(|m| m.completed_at)
            .max()
    }

    /// The latest completion of a method that `pred` accepts.
    fn latest(&self, pred: impl Fn(AuthMethod) -> bool) -> Option<u64> {
        self.methods
            .iter()
            .filter(|m| pred(m.method))
            .map(|m| m.completed_at)
            .max()
    }

    /// The `amr` values (RFC 8176 and this crate's names, see [`AuthMethod::amr`]), each
    /// once, in completion order, then `mfa` when the claims reach AAL2 (the password and a
    /// TOTP or recovery code: two factors 800-63B recognises; a mailed code or a remembered
    /// device does not make `mfa`).
    #[must_use]
    pub fn amr(&self) -> Vec<&'static str> {
        let mut amr: Vec<&'static str> = Vec::with_capacity(self.methods.len() + 1);
        for m in &self.methods {
            if !amr.contains(&m.method.amr()) {
                amr.push(m.method.amr());
            }
        }
        if self.aal() >= Aal::Aal2 {
            amr.push("mfa");
        }
        amr
    }

    /// The authenticator assurance level the methods reach together: AAL2 with the password
    /// and a TOTP or recovery code, AAL1 otherwise (see [`Aal`]).
    #[must_use]
    pub fn aal(&self) -> Aal {
        let password = self.completed(AuthMethod::Password).is_some();
        let second = self.latest(AuthMethod::is_second_factor).is_some();
        if password && second {
            Aal::Aal2
        } else {
            Aal::Aal1
        }
    }

    /// When the authentication was completed: the latest completion of any method (OpenID
    /// Connect's `auth_time`). The host's own session limits (NIST SP 800-63B: reauthenticate
    /// at AAL2 at least every 12 hours and after 30 minutes idle) run from its login.
    #[must_use]
    pub fn auth_time(&self) -> u64 {
        self.methods
            .iter()
            .map(|m| m.completed_at)
            .max()
            .unwrap_or_default()
    }

    /// Whether these claims satisfy `level` within `max_age` seconds at `now`: `Ok(())`, or
    /// [`Unsatisfied`] with the methods that would.
    ///
    /// `max_age` applies to the method that lifts the claims to `level` (Keycloak: a maximum
    /// age per level of authentication):
    /// - **AAL1**: a password, TOTP code or recovery code completed within `max_age`;
    /// - **AAL2**: the claims reach AAL2 (a password, of any age, and a second factor), and a
    ///   second factor (TOTP or recovery code) was completed within `max_age`: "a second
    ///   factor in the last 10 minutes" is `satisfies(Aal::Aal2, 600, now)`. Check the
    ///   password's own age with `satisfies(Aal::Aal1, ..)` or the session's lifetime;
    /// - **AAL3**: never (nothing this crate verifies reaches it yet).
    ///
    /// Within `max_age` means `now < completed_at + max_age` (exactly `max_age` later is too
    /// old; `max_age` 0 is never satisfied), and a completion dated more than a minute after
    /// `now` does not count (clocks of app servers differ by less).
    ///
    /// ```
    /// use twofactor::account::{Aal, AssuranceClaims, AuthMethod, CompletedMethod, Unsatisfied};
    /// let device_login = AssuranceClaims::new(CompletedMethod::new(AuthMethod::Password, 1_000))
    ///     .with(CompletedMethod::new(AuthMethod::RememberedDevice, 1_000));
    /// let e = device_login.satisfies(Aal::Aal2, 600, 1_100).unwrap_err();
    /// assert_eq!(e.needed, [AuthMethod::Otp, AuthMethod::RecoveryCode]);
    /// assert!(device_login.satisfies(Aal::Aal1, 600, 1_100).is_ok());
    /// ```
    ///
    /// # Errors
    /// [`Unsatisfied`] when the claims do not reach `level` within `max_age`.
    pub fn satisfies(&self, level: Aal, max_age: u64, now: u64) -> Result<(), Unsatisfied> {
        let any_fresh = |pred: fn(AuthMethod) -> bool| {
            self.methods.iter().any(|m| {
                pred(m.method) && Reauthenticated::at(m.completed_at).is_fresh(now, max_age)
            })
        };
        let needed = match level {
            Aal::Aal1 => {
                if any_fresh(AuthMethod::is_authenticator) {
                    return Ok(());
                }
                vec![
                    AuthMethod::Password,
                    AuthMethod::Otp,
                    AuthMethod::RecoveryCode,
                ]
            }
            Aal::Aal2 => {
                let password = self.completed(AuthMethod::Password).is_some();
                let second = any_fresh(AuthMethod::is_second_factor);
                if password && second {
                    return Ok(());
                }
                let mut needed = Vec::new();
                if !password {
                    needed.push(AuthMethod::Password);
                }
                if !second {
                    needed.extend([AuthMethod::Otp, AuthMethod::RecoveryCode]);
                }
                needed
            }
            Aal::Aal3 => Vec::new(),
        };
        Err(Unsatisfied { level, needed })
    }
}

impl fmt::Debug for AssuranceClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssuranceClaims")
            .field("aal", &self.aal())
            .field("methods", &self.methods)
            .finish()
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
struct ClaimsOut<'a> {
    amr: Vec<&'static str>,
    aal: Aal,
    auth_time: u64,
    methods: &'a [CompletedMethod],
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsIn {
    amr: Vec<String>,
    aal: Aal,
    auth_time: u64,
    methods: Vec<CompletedMethod>,
}

/// Serde as the name: `amr` for a method, `aal1`.. for a level.
macro_rules! serde_as_name {
    ($ty:ty, $name:ident) => {
        #[cfg(feature = "serde")]
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.$name())
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_name!(AuthMethod, amr);
serde_as_name!(Aal, as_str);

#[cfg(feature = "serde")]
impl serde::Serialize for AssuranceClaims {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ClaimsOut {
            amr: self.amr(),
            aal: self.aal(),
            auth_time: self.auth_time(),
            methods: &self.methods,
        }
        .serialize(s)
    }
}

/// Reads what [`Serialize`](serde::Serialize) wrote, strictly: the methods in canonical form,
/// and `amr`, `aal` and `auth_time` exactly as they follow from them (an edited level is
/// refused, never believed).
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for AssuranceClaims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = ClaimsIn::deserialize(d)?;
        let claims = AssuranceClaims::from_canonical(w.methods)
            .ok_or_else(|| D::Error::custom("assurance claims: methods not in canonical form"))?;
        if w.aal != claims.aal() || w.auth_time != claims.auth_time() || w.amr != claims.amr() {
            return Err(D::Error::custom(
                "assurance claims: amr, aal or auth_time do not follow from the methods",
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(method: AuthMethod, at: u64) -> CompletedMethod {
        CompletedMethod::new(method, at)
    }

    fn claims(methods: &[(AuthMethod, u64)]) -> AssuranceClaims {
        let mut it = methods.iter();
        let (first, at) = it.next().unwrap();
        it.fold(AssuranceClaims::new(m(*first, *at)), |c, (method, at)| {
            c.with(m(*method, *at))
        })
    }

    use AuthMethod::{MailedCode, Otp, Password, RecoveryCode, RememberedDevice};

    #[test]
    fn names_round_trip_and_only_pwd_otp_hwk_and_swk_are_rfc8176() {
        for method in AuthMethod::ALL {
            assert_eq!(method.amr().parse::<AuthMethod>(), Ok(method));
            assert_eq!(AuthMethod::from_byte(method.byte()), Some(method));
            assert_eq!(method.to_string(), method.amr());
        }
        assert_eq!(AuthMethod::from_byte(0), None);
        assert_eq!(AuthMethod::from_byte(8), None);
        let registered: Vec<_> = AuthMethod::ALL
            .into_iter()
            .filter(|m| m.is_rfc8176())
            .map(AuthMethod::amr)
            .collect();
        assert_eq!(registered, ["pwd", "otp", "hwk", "swk"]);
        for method in AuthMethod::ALL {
            match method.factor() {
                None => assert_eq!(method, Password),
                Some(kind) => assert!(
                    AuthMethod::of_factor(kind) == method
                        || method == AuthMethod::SoftwareKey && kind == FactorKind::SecurityKey,
                    "{method:?}"
                ),
            }
        }
        assert!("mfa".parse::<AuthMethod>().is_err());
        assert!("OTP".parse::<AuthMethod>().is_err());
        for aal in [Aal::Aal1, Aal::Aal2, Aal::Aal3] {
            assert_eq!(aal.as_str().parse::<Aal>(), Ok(aal));
        }
        assert!(Aal::Aal1 < Aal::Aal2 && Aal::Aal2 < Aal::Aal3);
        assert_eq!(AuthMethod::of_factor(FactorKind::Totp), Otp);
        assert_eq!(
            AuthMethod::of_factor(FactorKind::RecoveryCode),
            RecoveryCode
        );
        assert_eq!(AuthMethod::of_factor(FactorKind::MailedCode), MailedCode);
        assert_eq!(
            AuthMethod::of_factor(FactorKind::TrustedDevice),
            RememberedDevice
        );
        assert_eq!(
            AuthMethod::of_factor(FactorKind::SecurityKey),
            AuthMethod::HardwareKey
        );
        assert!(AuthMethod::HardwareKey.is_second_factor());
        assert!(AuthMethod::HardwareKey.is_phishing_resistant());
        assert!(!Otp.is_phishing_resistant());
    }

    /// The level and `amr` of every combination a grant produces, and of a few it never
    /// does (a mailed code or a device never counts as a second factor, whatever joins it).
    #[test]
    fn levels_and_amr_per_combination() {
        type Case<'a> = (&'a [(AuthMethod, u64)], Aal, &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[(Password, 1)], Aal::Aal1, &["pwd"]),
            (
                &[(Password, 1), (Otp, 2)],
                Aal::Aal2,
                &["pwd", "otp", "mfa"],
            ),
            (
                &[(Password, 1), (RecoveryCode, 2)],
                Aal::Aal2,
                &["pwd", "lookup_secret", "mfa"],
            ),
            (
                &[(Password, 1), (MailedCode, 2)],
                Aal::Aal1,
                &["pwd", "email_code"],
            ),
            (
                &[(Password, 1), (RememberedDevice, 1)],
                Aal::Aal1,
                &["pwd", "remembered_device"],
            ),
            (
                &[(Password, 1), (MailedCode, 2), (RememberedDevice, 3)],
                Aal::Aal1,
                &["pwd", "email_code", "remembered_device"],
            ),
            (&[(Otp, 5)], Aal::Aal1, &["otp"]),
            (&[(RecoveryCode, 5)], Aal::Aal1, &["lookup_secret"]),
            (
                &[(Otp, 5), (RecoveryCode, 6)],
                Aal::Aal1,
                &["otp", "lookup_secret"],
            ),
            (
                &[(Otp, 2), (Password, 1), (Otp, 9)],
                Aal::Aal2,
                &["pwd", "otp", "mfa"],
            ),
        ];
        for (methods, aal, amr) in cases {
            let c = claims(methods);
            assert_eq!(c.aal(), *aal, "{methods:?}");
            assert_eq!(c.amr(), *amr, "{methods:?}");
        }
        // The same method twice keeps its later time; order is by time.
        let c = claims(&[(Otp, 9), (Password, 1), (Otp, 2)]);
        assert_eq!(c.methods(), [m(Password, 1), m(Otp, 9)]);
        assert_eq!(c.auth_time(), 9);
        // Two devices are two entries (one per authenticator).
        let c = AssuranceClaims::new(m(RememberedDevice, 1).authenticator("a"))
            .with(m(RememberedDevice, 2).authenticator("b"));
        assert_eq!(c.methods().len(), 2);
    }

    #[test]
    fn claims_stay_bounded() {
        let mut c = AssuranceClaims::new(m(Password, 0));
        for i in 0..100u64 {
            c = c.with(m(RememberedDevice, i).authenticator(format!("d{i}")));
        }
        assert_eq!(c.methods().len(), AssuranceClaims::MAX_METHODS);
        assert_eq!(c.methods()[0].completed_at, 84, "the oldest were dropped");
    }

    /// `satisfies`, table-driven: every level against the grants' claims, at the edges of
    /// `max_age` (one second before, exactly at, after), with a future date and max_age 0.
    #[test]
    fn satisfies_table() {
        const T: u64 = 100_000;
        let both = [Otp, RecoveryCode];
        let login = claims(&[(Password, T), (Otp, T + 30)]);
        let recovery = claims(&[(Password, T), (RecoveryCode, T + 30)]);
        let mailed = claims(&[(Password, T), (MailedCode, T + 30)]);
        let device = claims(&[(Password, T), (RememberedDevice, T)]);
        let password = claims(&[(Password, T)]);
        let step_up = claims(&[(Otp, T + 30)]);
        let merged = claims(&[(Password, T - 50_000), (Otp, T + 30)]);
        type Row<'a> = (
            &'a AssuranceClaims,
            Aal,
            u64,
            u64,
            Result<(), Vec<AuthMethod>>,
        );
        let rows: &[Row<'_>] = &[
            // AAL2 within 600 s: the second factor's age counts.
            (&login, Aal::Aal2, 600, T + 30, Ok(())),
            (&login, Aal::Aal2, 600, T + 629, Ok(())),
            (&login, Aal::Aal2, 600, T + 630, Err(both.to_vec())),
            (&login, Aal::Aal2, 600, T + 10_000, Err(both.to_vec())),
            (&recovery, Aal::Aal2, 600, T + 629, Ok(())),
            (&recovery, Aal::Aal2, 600, T + 630, Err(both.to_vec())),
            (&login, Aal::Aal2, 0, T + 30, Err(both.to_vec())),
            (&login, Aal::Aal2, u64::MAX, u64::MAX - 1, Ok(())),
            // A completion dated in the future: up to a minute of clock difference.
            (&login, Aal::Aal2, 600, T - 30, Ok(())),
            (&login, Aal::Aal2, 600, T + 30 - 60, Ok(())),
            (&login, Aal::Aal2, 600, T + 30 - 61, Err(both.to_vec())),
            // A mailed code, a device, the password alone: never AAL2, however fresh.
            (&mailed, Aal::Aal2, 600, T + 31, Err(both.to_vec())),
            (&device, Aal::Aal2, 600, T + 1, Err(both.to_vec())),
            (&password, Aal::Aal2, 600, T + 1, Err(both.to_vec())),
            // A step-up proof alone shows no password: AAL2 needs the session's claims.
            (&step_up, Aal::Aal2, 600, T + 31, Err(vec![Password])),
            (
                &step_up,
                Aal::Aal2,
                600,
                T + 630,
                Err(vec![Password, Otp, RecoveryCode]),
            ),
            // The password's age does not count for AAL2 (check it with AAL1).
            (&merged, Aal::Aal2, 600, T + 31, Ok(())),
            (&merged, Aal::Aal1, 600, T + 31, Ok(())),
            // AAL1: any authenticator within max_age (a device or a mailed code is not one).
            (&password, Aal::Aal1, 600, T + 599, Ok(())),
            (
                &password,
                Aal::Aal1,
                600,
                T + 600,
                Err(vec![Password, Otp, RecoveryCode]),
            ),
            (&device, Aal::Aal1, 600, T + 599, Ok(())),
            (
                &claims(&[(RememberedDevice, T), (MailedCode, T)]),
                Aal::Aal1,
                600,
                T,
                Err(vec![Password, Otp, RecoveryCode]),
            ),
            (&step_up, Aal::Aal1, 600, T + 31, Ok(())),
            (&mailed, Aal::Aal1, 600, T + 100, Ok(())),
            // AAL3: nothing reaches it.
            (&login, Aal::Aal3, u64::MAX, T + 30, Err(vec![])),
        ];
        for (i, (c, level, max_age, now, expected)) in rows.iter().enumerate() {
            let got = c.satisfies(*level, *max_age, *now).map_err(|e| {
                assert_eq!(e.level, *level);
                e.needed
            });
            assert_eq!(&got, expected, "row {i}: {c:?} {level} {max_age} at {now}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_is_strict() {
        let c = claims(&[(Password, 1), (RememberedDevice, 2)]);
        let c = c.with(m(RememberedDevice, 3).authenticator("dev-1"));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<AssuranceClaims>(&json).unwrap(), c);
        let edits = [
            json.replace(r#""aal":"aal1""#, r#""aal":"aal2""#),
            json.replace(r#""auth_time":3"#, r#""auth_time":4"#),
            json.replace(r#""amr":["pwd","#, r#""amr":["pwd","mfa","#),
            json.replace(r#""completed_at":1"#, r#""completed_at":9"#),
            json.replace(r#","authenticator":null"#, ""),
            json.replace("remembered_device", "hwk"),
            r#"{"amr":[],"aal":"aal1","auth_time":0,"methods":[]}"#.to_owned(),
        ];
        for edited in edits {
            assert_ne!(edited, json);
            assert!(
                serde_json::from_str::<AssuranceClaims>(&edited).is_err(),
                "{edited}"
            );
        }
    }
}
