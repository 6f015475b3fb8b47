//! RFC 6238 time-based one-time passwords.

use super::{
    Algorithm, Code, DEFAULT_DIGITS, ParamsError, Secret, VerifyError, check_digits, hotp_value,
    scan_window,
};

/// The default time step in seconds (what every authenticator app uses).
pub const DEFAULT_PERIOD: u64 = 30;
/// The shortest time step allowed.
pub const MIN_PERIOD: u64 = 1;
/// The default number of steps accepted either side of the current one (clock drift and the
/// seconds a person needs to type the code).
pub const DEFAULT_SKEW: u8 = 1;
/// The widest skew allowed: every extra step multiplies an online guesser's odds.
pub const MAX_SKEW: u8 = 10;

/// TOTP parameters: algorithm, digits, period and skew window.
///
/// `Totp::default()` is SHA-1, 6 digits, 30 seconds, ±1 step: what authenticator apps expect.
///
/// ```
/// use twofactor::{Secret, Totp};
///
/// let totp = Totp::default();
/// let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
/// // RFC 6238 Appendix B, T = 59 (8 digits there; 6 here are its last six).
/// assert_eq!(totp.generate(&secret, 59).to_string(), "287082");
///
/// let step = totp.verify(&secret, "287 082", 59, None)?;
/// assert_eq!(step, 1);
/// // The same step is refused once it is recorded as used: replay protection.
/// assert!(totp.verify(&secret, "287082", 59, Some(step)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "TotpForm", into = "TotpForm"))]
pub struct Totp {
    algorithm: Algorithm,
    digits: u8,
    period: u64,
    skew: u8,
}

impl Default for Totp {
    fn default() -> Self {
        Totp {
            algorithm: Algorithm::Sha1,
            digits: DEFAULT_DIGITS,
            period: DEFAULT_PERIOD,
            skew: DEFAULT_SKEW,
        }
    }
}

/// The stored form of [`Totp`]: every field required, unknown fields refused, and checked by
/// [`TotpBuilder::build`] (the same JSON shape as [`TotpBuilder`]).
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TotpForm {
    algorithm: Algorithm,
    digits: u32,
    period: u64,
    skew: u32,
}

#[cfg(feature = "serde")]
impl From<Totp> for TotpForm {
    fn from(t: Totp) -> Self {
        TotpForm {
            algorithm: t.algorithm,
            digits: u32::from(t.digits),
            period: t.period,
            skew: u32::from(t.skew),
        }
    }
}

#[cfg(feature = "serde")]
impl TryFrom<TotpForm> for Totp {
    type Error = ParamsError;
    fn try_from(f: TotpForm) -> Result<Self, ParamsError> {
        TotpBuilder {
            algorithm: f.algorithm,
            digits: f.digits,
            period: f.period,
            skew: f.skew,
        }
        .build()
    }
}

/// Builds checked [`Totp`] parameters; unset fields keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct TotpBuilder {
    algorithm: Algorithm,
    digits: u32,
    period: u64,
    skew: u32,
}

impl Default for TotpBuilder {
    fn default() -> Self {
        Totp::default().into()
    }
}

impl From<Totp> for TotpBuilder {
    fn from(t: Totp) -> Self {
        TotpBuilder {
            algorithm: t.algorithm,
            digits: u32::from(t.digits),
            period: t.period,
            skew: u32::from(t.skew),
        }
    }
}

impl TryFrom<TotpBuilder> for Totp {
    type Error = ParamsError;
    fn try_from(b: TotpBuilder) -> Result<Self, ParamsError> {
        b.build()
    }
}

impl TotpBuilder {
    /// Sets the HMAC algorithm.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }
    /// Sets the number of digits (6 to 8).
    #[must_use]
    pub fn digits(mut self, digits: u32) -> Self {
        self.digits = digits;
        self
    }
    /// Sets the time step in seconds (at least 1).
    #[must_use]
    pub fn period(mut self, seconds: u64) -> Self {
        self.period = seconds;
        self
    }
    /// Sets how many steps either side of the current one are accepted (at most [`MAX_SKEW`]).
    #[must_use]
    pub fn skew(mut self, steps: u32) -> Self {
        self.skew = steps;
        self
    }
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ParamsError`] naming the parameter out of range.
    pub fn build(self) -> Result<Totp, ParamsError> {
        let digits = check_digits(self.digits)?;
        if self.period < MIN_PERIOD {
            return Err(ParamsError::Period(self.period));
        }
        let skew = match u8::try_from(self.skew) {
            Ok(s) if s <= MAX_SKEW => s,
            _ => return Err(ParamsError::Skew(self.skew)),
        };
        Ok(Totp {
            algorithm: self.algorithm,
            digits,
            period: self.period,
            skew,
        })
    }
}

impl Totp {
    /// Starts from the defaults and changes what you set.
    #[must_use]
    pub fn builder() -> TotpBuilder {
        TotpBuilder::default()
    }

    /// The HMAC algorithm.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The number of digits.
    #[must_use]
    pub const fn digits(&self) -> u8 {
        self.digits
    }
    /// The time step in seconds.
    #[must_use]
    pub const fn period(&self) -> u64 {
        self.period
    }
    /// Steps accepted either side of the current one.
    #[must_use]
    pub const fn skew(&self) -> u8 {
        self.skew
    }

    /// The time step that contains `unix_time` (RFC 6238 `T`, with `T0 = 0`).
    #[must_use]
    pub const fn step_at(&self, unix_time: u64) -> u64 {
        unix_time / self.period
    }

    /// The Unix time at which the step after `unix_time`'s begins (when a code expires).
    #[must_use]
    pub const fn next_step_starts_at(&self, unix_time: u64) -> u64 {
        (self.step_at(unix_time).saturating_add(1)).saturating_mul(self.period)
    }

    /// The code for the step containing `unix_time`.
    #[must_use]
    pub fn generate(&self, secret: &Secret, unix_time: u64) -> Code {
        self.generate_at_step(secret, self.step_at(unix_time))
    }

    /// The code for time step `step`.
    #[must_use]
    pub fn generate_at_step(&self, secret: &Secret, step: u64) -> Code {
        Code::new(
            hotp_value(self.algorithm, secret.expose_secret(), step, self.digits),
            self.digits,
        )
    }

    /// Verifies what a person typed at `unix_time`.
    ///
    /// Every step in `[now - skew, now + skew]` is computed and compared in constant time (the
    /// loop never stops early), the HMAC is keyed once, and nothing is allocated. Steps at or
    /// below `last_used_step` never match: record the returned step and pass it next time, and
    /// each code is accepted once.
    ///
    /// When the typed digits match several steps of the window (two steps share a code about
    /// once in a million), the *highest* fresh step is returned. Recording it means the same
    /// digits cannot be accepted a second time while they are still in the window (RFC 6238
    /// §5.2: the verifier must not accept the second attempt of the same OTP); the price is
    /// that a user who logs in again one step later, whose app happens to show the same digits,
    /// waits for the next step.
    ///
    /// # Errors
    /// [`VerifyError::Malformed`] for input that is not a code of this length,
    /// [`VerifyError::Replayed`] when the code matches only steps `<= last_used_step`,
    /// [`VerifyError::Invalid`] otherwise. Show users one message for all three.
    pub fn verify(
        &self,
        secret: &Secret,
        input: &str,
        unix_time: u64,
        last_used_step: Option<u64>,
    ) -> Result<u64, VerifyError> {
        let code = Code::parse(input, self.digits)?;
        self.verify_code(secret, code, unix_time, last_used_step)
    }

    /// As [`Totp::verify`], for an already parsed [`Code`].
    ///
    /// # Errors
    /// As [`Totp::verify`]; a code with a different digit count is [`VerifyError::Invalid`].
    pub fn verify_code(
        &self,
        secret: &Secret,
        code: Code,
        unix_time: u64,
        last_used_step: Option<u64>,
    ) -> Result<u64, VerifyError> {
        if code.digits() != self.digits {
            return Err(VerifyError::Invalid);
        }
        let now = self.step_at(unix_time);
        let skew = u64::from(self.skew);
        scan_window(
            self.algorithm,
            secret.expose_secret(),
            code.value(),
            self.digits,
            now.saturating_sub(skew),
            now.saturating_add(skew),
            last_used_step,
        )
    }
}
