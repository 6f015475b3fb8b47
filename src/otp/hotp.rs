//! RFC 4226 counter-based one-time passwords.

use super::{
    Algorithm, Code, DEFAULT_DIGITS, ParamsError, Secret, VerifyError, check_digits, hotp_value,
    scan_window,
};

/// How many counters past the expected one are accepted by default (RFC 4226 §7.4 look-ahead
/// for a token whose button was pressed without logging in).
pub const DEFAULT_LOOK_AHEAD: u8 = 0;
/// The largest look-ahead window allowed.
pub const MAX_LOOK_AHEAD: u8 = 20;

/// HOTP parameters: algorithm, digits and resynchronisation look-ahead.
///
/// ```
/// use twofactor::Secret;
/// use twofactor::otp::Hotp;
///
/// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
/// let hotp = Hotp::default();
/// assert_eq!(hotp.generate(&secret, 0).to_string(), "755224"); // RFC 4226 Appendix D
/// // verify returns the matched counter; store counter + 1 as the next expected one.
/// assert_eq!(hotp.verify(&secret, "755224", 0)?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Deserializing goes through [`Hotp::new`] (the JSON shape is that of the fields:
/// `{"algorithm":"Sha1","digits":6,"look_ahead":0}`), so a stored value out of range is a
/// deserialization error, never a `Hotp` that panics or widens the window later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "HotpForm"))]
pub struct Hotp {
    algorithm: Algorithm,
    digits: u8,
    look_ahead: u8,
}

/// The serialized shape of [`Hotp`], checked by [`Hotp::new`] on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HotpForm {
    algorithm: Algorithm,
    digits: u32,
    look_ahead: u32,
}

#[cfg(feature = "serde")]
impl TryFrom<HotpForm> for Hotp {
    type Error = ParamsError;
    fn try_from(form: HotpForm) -> Result<Self, ParamsError> {
        Hotp::new(form.algorithm, form.digits, form.look_ahead)
    }
}

impl Default for Hotp {
    fn default() -> Self {
        Hotp {
            algorithm: Algorithm::Sha1,
            digits: DEFAULT_DIGITS,
            look_ahead: DEFAULT_LOOK_AHEAD,
        }
    }
}

impl Hotp {
    /// Checked HOTP parameters.
    ///
    /// # Errors
    /// [`ParamsError::Digits`] or [`ParamsError::LookAhead`].
    pub fn new(algorithm: Algorithm, digits: u32, look_ahead: u32) -> Result<Self, ParamsError> {
        let digits = check_digits(digits)?;
        let look_ahead = match u8::try_from(look_ahead) {
            Ok(l) if l <= MAX_LOOK_AHEAD => l,
            _ => return Err(ParamsError::LookAhead(look_ahead)),
        };
        Ok(Hotp {
            algorithm,
            digits,
            look_ahead,
        })
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
    /// Counters accepted past the expected one.
    #[must_use]
    pub const fn look_ahead(&self) -> u8 {
        self.look_ahead
    }

    /// The code for `counter`.
    #[must_use]
    pub fn generate(&self, secret: &Secret, counter: u64) -> Code {
        Code::new(
            hotp_value(self.algorithm, secret.expose_secret(), counter, self.digits),
            self.digits,
        )
    }

    /// Verifies typed input against `next_counter..=next_counter + look_ahead`, in constant
    /// time, and returns the matched counter. The caller stores `matched + 1` as the next
    /// expected counter, so a code is accepted once.
    ///
    /// # Errors
    /// [`VerifyError::Malformed`] or [`VerifyError::Invalid`].
    pub fn verify(
        &self,
        secret: &Secret,
        input: &str,
        next_counter: u64,
    ) -> Result<u64, VerifyError> {
        let code = Code::parse(input, self.digits)?;
        scan_window(
            self.algorithm,
            secret.expose_secret(),
            code.value(),
            self.digits,
            next_counter,
            next_counter.saturating_add(u64::from(self.look_ahead)),
            None,
        )
    }
}
