//! `otpauth://` Key URIs (the Google Authenticator "Key Uri Format"): building and parsing.

use core::fmt;
use core::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::{Zeroize, Zeroizing};

use crate::otp::{
    Algorithm, DEFAULT_DIGITS, DEFAULT_LOOK_AHEAD, DEFAULT_PERIOD, Hotp, ParamsError, Secret,
    SecretError, Totp, UnknownAlgorithm,
};

/// Percent-encoded in parameter values: everything but RFC 3986 unreserved characters.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Percent-encoded in the label: as [`VALUE`], but `@` stays readable (`alice@example.com`).
/// `:` is always encoded inside names, so the one literal `:` is the issuer separator.
const LABEL: &AsciiSet = &VALUE.remove(b'@');

const SCHEME: &str = "otpauth://";

/// Which kind of one-time password a [`KeyUri`] provisions, with its parameters.
///
/// The URI carries the algorithm, digits and period (TOTP) or counter (HOTP), but not the
/// verifier-side window: a parsed [`Totp`] has the default skew and a parsed [`Hotp`] the
/// default look-ahead. Adjust them on your side if you need to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtpKind {
    /// Time-based (RFC 6238), `otpauth://totp/`.
    Totp(Totp),
    /// Counter-based (RFC 4226), `otpauth://hotp/`.
    Hotp {
        /// Algorithm and digits.
        params: Hotp,
        /// The counter value the authenticator starts from (the `counter` parameter).
        counter: u64,
    },
}

impl OtpKind {
    /// The HMAC algorithm.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        match self {
            OtpKind::Totp(t) => t.algorithm(),
            OtpKind::Hotp { params, .. } => params.algorithm(),
        }
    }

    /// The number of digits in a code.
    #[must_use]
    pub const fn digits(&self) -> u8 {
        match self {
            OtpKind::Totp(t) => t.digits(),
            OtpKind::Hotp { params, .. } => params.digits(),
        }
    }

    /// `"totp"` or `"hotp"`, as in the URI.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            OtpKind::Totp(_) => "totp",
            OtpKind::Hotp { .. } => "hotp",
        }
    }
}

impl Default for OtpKind {
    /// TOTP with [`Totp::default`]: SHA-1, 6 digits, 30 seconds.
    fn default() -> Self {
        OtpKind::Totp(Totp::default())
    }
}

/// Why a Key URI could not be parsed, or a [`KeyUri`] could not be built.
///
/// Causes from the OTP core ([`SecretError`], [`UnknownAlgorithm`], [`ParamsError`]) are kept
/// as the error's [`source`](std::error::Error::source), not flattened to text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The input does not start with `otpauth://`.
    #[error("not an otpauth:// URI")]
    WrongScheme,
    /// The type after `otpauth://` is neither `totp` nor `hotp` (the raw text is kept).
    #[error("unknown OTP type {0:?}: expected totp or hotp")]
    UnknownType(String),
    /// There is no `secret` parameter.
    #[error("the URI has no secret parameter")]
    MissingSecret,
    /// The `secret` parameter is not a usable base32 key.
    #[error("the secret parameter is not a valid base32 key")]
    InvalidSecret(#[source] SecretError),
    /// The `algorithm` parameter is not SHA1, SHA256 or SHA512.
    #[error("unsupported algorithm parameter")]
    UnknownAlgorithm(#[source] UnknownAlgorithm),
    /// A numeric parameter (`digits`, `period`, `counter`) is not a decimal number that fits.
    #[error("the {parameter} parameter is not a decimal number: {value:?}")]
    InvalidNumber {
        /// The parameter's name.
        parameter: &'static str,
        /// Its decoded value.
        value: String,
    },
    /// `digits` or `period` is a number, but out of range.
    #[error("OTP parameter out of range")]
    InvalidParams(#[source] ParamsError),
    /// An `otpauth://hotp/` URI without a `counter` parameter.
    #[error("an HOTP URI needs a counter parameter")]
    MissingCounter,
    /// A `%` not followed by two hex digits, or percent-encoded bytes that are not UTF-8.
    #[error("malformed percent-encoding in the {component}")]
    InvalidEncoding {
        /// Where: `"label"` or the parameter's name.
        component: &'static str,
    },
    /// The label has no account name (after trimming white space).
    #[error("the label has no account name")]
    EmptyAccount,
    /// A known parameter appears twice. Rejected rather than guessed: two `secret`s (or
    /// `algorithm`s) might be read differently by the app and by us.
    #[error("the {0} parameter appears more than once")]
    DuplicateParameter(&'static str),
    /// An account name containing `:` without an issuer. The Key URI format reads the part
    /// before the first colon of the label as the issuer, so this cannot be expressed; parsing
    /// meets it only with an empty issuer prefix (`otpauth://totp/::alice`).
    #[error("an account name containing ':' needs an issuer")]
    AmbiguousAccount,
}

/// An `otpauth://` Key URI: what an authenticator app scans from the enrollment QR code.
///
/// Built with [`KeyUri::new`] (normally by the enrollment flow) and turned into text with
/// [`KeyUri::to_uri_string`]; parsed with [`KeyUri::parse`] or [`str::parse`] when importing
/// an existing secret.
///
/// # Building
/// - The label is `Issuer:account` with both parts percent-encoded (`:` inside either is
///   `%3A`, so the one literal colon is the separator), and the issuer is also given as the
///   `issuer` parameter, as Google's Key URI format recommends: older apps read the label,
///   newer ones the parameter.
/// - `secret` is unpadded uppercase base32.
/// - `algorithm`, `digits` and `period` are **omitted when they have their default value**
///   (SHA1, 6, 30). Every app assumes these defaults, so nothing is lost, and a shorter URI
///   gives a QR code with fewer, larger modules that scans more easily from a screen or a
///   terminal. Non-default values are written, but beware: several popular apps ignore
///   `algorithm`, `digits` and `period` and silently show wrong codes. Use [`Totp::default`]
///   unless you control the authenticator.
/// - `counter` is always written for HOTP (it is required).
///
/// # Parsing
/// Parsing accepts what real services emit: `OTPAUTH://` in any case, the issuer only in the
/// label, only in the parameter, or in both; the separator as `:` or `%3A`; spaces as `%20`
/// (or `+` in the issuer and in parameter values); spaces before the account name; lowercase
/// or hyphenated algorithm names (`sha256`, `SHA-256`); lowercase, spaced or padded secrets;
/// unknown parameters such as `image` or `color` (ignored); a `#fragment` (ignored).
///
/// **When the label prefix and the `issuer` parameter differ, the parameter wins.** The Key
/// URI format calls the parameter the preferred, strongly recommended way to name the issuer;
/// it is encoded on its own, so it is unambiguous, while many services put a display name
/// (`"Example Inc."`) or nothing reliable in the label prefix. The account is then the part
/// of the label after the issuer prefix.
///
/// A `+` in the account name stays a plus: `john+2fa@example.com` is common, and labels are
/// a URI path, where `+` is not a space.
///
/// Never panics, whatever the input (this is fuzzed).
///
/// ```
/// use twofactor::{KeyUri, Secret, Totp};
/// use twofactor::provision::OtpKind;
///
/// let secret = Secret::from_base32("JBSWY3DPEHPK3PXP")?;
/// let key = KeyUri::new(OtpKind::Totp(Totp::default()), secret, Some("ACME Co"), "john@example.com")?;
/// assert_eq!(
///     key.to_uri_string().as_str(),
///     "otpauth://totp/ACME%20Co:john@example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co"
/// );
///
/// // What a real service may send: issuer only as a parameter, lowercase padded secret,
/// // an unknown parameter.
/// let imported: KeyUri =
///     "otpauth://totp/john%40example.com?secret=jbswy3dpehpk3pxp&issuer=ACME+Co&image=x".parse()?;
/// assert_eq!(imported.issuer(), Some("ACME Co"));
/// assert_eq!(imported.account(), "john@example.com");
/// assert_eq!(imported.secret().to_base32().as_str(), "JBSWY3DPEHPK3PXP");
/// // Debug never shows the secret.
/// assert!(!format!("{imported:?}").contains("JBSW"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyUri {
    kind: OtpKind,
    secret: Secret,
    issuer: Option<String>,
    account: String,
}

impl KeyUri {
    /// A Key URI for `secret`, shown in the app as `issuer` / `account`.
    ///
    /// Both names are trimmed of surrounding white space; an issuer that is empty after
    /// trimming counts as no issuer.
    ///
    /// ```
    /// use twofactor::{KeyUri, Secret};
    /// use twofactor::otp::Hotp;
    /// use twofactor::provision::{OtpKind, UriError};
    ///
    /// let secret = Secret::generate()?;
    /// let kind = OtpKind::Hotp { params: Hotp::default(), counter: 0 };
    /// let key = KeyUri::new(kind, secret.clone(), None, "  alice ")?;
    /// assert_eq!(key.account(), "alice");
    /// assert_eq!(key.issuer(), None);
    ///
    /// assert_eq!(
    ///     KeyUri::new(kind, secret, None, "a:b").unwrap_err(),
    ///     UriError::AmbiguousAccount
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`UriError::EmptyAccount`] for an empty account name; [`UriError::AmbiguousAccount`]
    /// for an account name containing `:` without an issuer.
    pub fn new(
        kind: OtpKind,
        secret: Secret,
        issuer: Option<&str>,
        account: &str,
    ) -> Result<Self, UriError> {
        let account = account.trim();
        if account.is_empty() {
            return Err(UriError::EmptyAccount);
        }
        let issuer = issuer.map(str::trim).filter(|i| !i.is_empty());
        if issuer.is_none() && account.contains(':') {
            return Err(UriError::AmbiguousAccount);
        }
        Ok(KeyUri {
            kind,
            secret,
            issuer: issuer.map(str::to_owned),
            account: account.to_owned(),
        })
    }

    /// Parses an `otpauth://totp/...` or `otpauth://hotp/...` URI; see the
    /// [type-level documentation](KeyUri#parsing) for what is accepted.
    ///
    /// ```
    /// use twofactor::KeyUri;
    /// use twofactor::otp::Algorithm;
    /// use twofactor::provision::{OtpKind, UriError};
    ///
    /// let key = KeyUri::parse(
    ///     "otpauth://totp/Example%3Aalice?secret=JBSWY3DPEHPK3PXP&algorithm=sha256&digits=8&period=60",
    /// )?;
    /// assert_eq!(key.issuer(), Some("Example"));
    /// let OtpKind::Totp(totp) = key.kind() else { unreachable!() };
    /// assert_eq!((totp.algorithm(), totp.digits(), totp.period()), (Algorithm::Sha256, 8, 60));
    ///
    /// assert_eq!(
    ///     KeyUri::parse("otpauth://hotp/alice?secret=JBSWY3DPEHPK3PXP").unwrap_err(),
    ///     UriError::MissingCounter
    /// );
    /// # Ok::<(), UriError>(())
    /// ```
    ///
    /// # Errors
    /// A [`UriError`] naming the first problem found: [`UriError::WrongScheme`],
    /// [`UriError::UnknownType`], [`UriError::InvalidEncoding`],
    /// [`UriError::DuplicateParameter`], [`UriError::MissingSecret`],
    /// [`UriError::InvalidSecret`], [`UriError::UnknownAlgorithm`],
    /// [`UriError::InvalidNumber`], [`UriError::InvalidParams`], [`UriError::MissingCounter`],
    /// [`UriError::EmptyAccount`] or [`UriError::AmbiguousAccount`].
    pub fn parse(input: &str) -> Result<Self, UriError> {
        let input = input.trim();
        let rest = strip_prefix_ignore_ascii_case(input, SCHEME).ok_or(UriError::WrongScheme)?;
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (kind, label) = path.split_once('/').unwrap_or((path, ""));
        let is_totp = if kind.eq_ignore_ascii_case("totp") {
            true
        } else if kind.eq_ignore_ascii_case("hotp") {
            false
        } else {
            return Err(UriError::UnknownType(kind.to_owned()));
        };

        let params = RawParams::split(query)?;

        let issuer_param = match params.issuer {
            Some(raw) => Some(decode(raw, true, "issuer")?),
            None => None,
        };
        let issuer_param = issuer_param
            .as_deref()
            .map(|i| i.trim())
            .filter(|i| !i.is_empty());
        let (label_issuer, account) = split_label(label, issuer_param)?;
        let account = account.trim();
        if account.is_empty() {
            return Err(UriError::EmptyAccount);
        }
        let issuer = issuer_param
            .map(str::to_owned)
            .or(label_issuer.filter(|i| !i.is_empty()));
        // `otpauth://totp/:a:b` (an empty issuer prefix): the same rule as `KeyUri::new`, so
        // every parsed value prints as a URI that parses back to it.
        if issuer.is_none() && account.contains(':') {
            return Err(UriError::AmbiguousAccount);
        }

        let secret = {
            let raw = params.secret.ok_or(UriError::MissingSecret)?;
            let text = decode(raw, true, "secret")?;
            Secret::from_base32(&text).map_err(UriError::InvalidSecret)?
        };

        let algorithm = match params.algorithm {
            Some(raw) => decode(raw, true, "algorithm")?
                .parse::<Algorithm>()
                .map_err(UriError::UnknownAlgorithm)?,
            None => Algorithm::default(),
        };
        let digits = match params.digits {
            Some(raw) => number::<u32>(raw, "digits")?,
            None => u32::from(DEFAULT_DIGITS),
        };

        let kind = if is_totp {
            let period = match params.period {
                Some(raw) => number::<u64>(raw, "period")?,
                None => DEFAULT_PERIOD,
            };
            let totp = Totp::builder()
                .algorithm(algorithm)
                .digits(digits)
                .period(period)
                .build()
                .map_err(UriError::InvalidParams)?;
            OtpKind::Totp(totp)
        } else {
            let params_hotp = Hotp::new(algorithm, digits, u32::from(DEFAULT_LOOK_AHEAD))
                .map_err(UriError::InvalidParams)?;
            let counter =
                number::<u64>(params.counter.ok_or(UriError::MissingCounter)?, "counter")?;
            OtpKind::Hotp {
                params: params_hotp,
                counter,
            }
        };

        Ok(KeyUri {
            kind,
            secret,
            issuer,
            account: account.to_owned(),
        })
    }

    /// The URI as text, ready for a QR code.
    ///
    /// Returned in a [`Zeroizing`] string because it contains the secret.
    ///
    /// ```
    /// use twofactor::{KeyUri, Secret, Totp};
    /// use twofactor::otp::Algorithm;
    /// use twofactor::provision::OtpKind;
    ///
    /// let totp = Totp::builder().algorithm(Algorithm::Sha256).period(60).build()?;
    /// let secret = Secret::from_base32("JBSWY3DPEHPK3PXP")?;
    /// let key = KeyUri::new(OtpKind::Totp(totp), secret, Some("Bank & Co"), "bob:1")?;
    /// // Defaults (digits=6) are omitted, other values written; `:` and `&` in names encoded.
    /// assert_eq!(
    ///     key.to_uri_string().as_str(),
    ///     "otpauth://totp/Bank%20%26%20Co:bob%3A1?secret=JBSWY3DPEHPK3PXP\
    ///      &issuer=Bank%20%26%20Co&algorithm=SHA256&period=60"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Security warning
    /// The URI contains the secret: show it only to the user who is enrolling, and never log it.
    #[must_use]
    pub fn to_uri_string(&self) -> Zeroizing<String> {
        let secret = self.secret.to_base32();
        let issuer_len = self.issuer.as_ref().map_or(0, String::len);
        // Percent-encoding at most triples a name; reserving the worst case up front means the
        // buffer is never reallocated, so no unzeroized copy of the secret is left behind.
        let capacity =
            SCHEME.len() + 5 + 3 * (2 * issuer_len + self.account.len()) + secret.len() + 128;
        let mut uri = Zeroizing::new(String::with_capacity(capacity));
        uri.push_str(SCHEME);
        uri.push_str(self.kind.as_str());
        uri.push('/');
        if let Some(issuer) = &self.issuer {
            uri.extend(utf8_percent_encode(issuer, LABEL));
            uri.push(':');
        }
        uri.extend(utf8_percent_encode(&self.account, LABEL));
        uri.push_str("?secret=");
        uri.push_str(&secret);
        if let Some(issuer) = &self.issuer {
            uri.push_str("&issuer=");
            uri.extend(utf8_percent_encode(issuer, VALUE));
        }
        let algorithm = self.kind.algorithm();
        if algorithm != Algorithm::default() {
            uri.push_str("&algorithm=");
            uri.push_str(algorithm.as_str());
        }
        let digits = self.kind.digits();
        if digits != DEFAULT_DIGITS {
            uri.push_str("&digits=");
            uri.push_str(&digits.to_string());
        }
        match self.kind {
            OtpKind::Totp(totp) => {
                if totp.period() != DEFAULT_PERIOD {
                    uri.push_str("&period=");
                    uri.push_str(&totp.period().to_string());
                }
            }
            OtpKind::Hotp { counter, .. } => {
                uri.push_str("&counter=");
                uri.push_str(&counter.to_string());
            }
        }
        uri
    }

    /// TOTP or HOTP, with its parameters.
    #[must_use]
    pub const fn kind(&self) -> &OtpKind {
        &self.kind
    }

    /// The shared secret.
    ///
    /// # Security warning
    /// The secret is the whole second factor: do not log it or keep copies of it.
    #[must_use]
    pub const fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Consumes the Key URI and returns its secret (to store it after an import).
    #[must_use]
    pub fn into_secret(self) -> Secret {
        self.secret
    }

    /// The issuer (your service's name), if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name (the user's e-mail address or login).
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl fmt::Debug for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyUri")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl FromStr for KeyUri {
    type Err = UriError;

    /// As [`KeyUri::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyUri::parse(s)
    }
}

/// The known parameters, still percent-encoded.
#[derive(Default)]
struct RawParams<'a> {
    secret: Option<&'a str>,
    issuer: Option<&'a str>,
    algorithm: Option<&'a str>,
    digits: Option<&'a str>,
    period: Option<&'a str>,
    counter: Option<&'a str>,
}

impl<'a> RawParams<'a> {
    fn split(query: &'a str) -> Result<Self, UriError> {
        let mut params = RawParams::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (slot, canonical) = if name.eq_ignore_ascii_case("secret") {
                (&mut params.secret, "secret")
            } else if name.eq_ignore_ascii_case("issuer") {
                (&mut params.issuer, "issuer")
            } else if name.eq_ignore_ascii_case("algorithm") {
                (&mut params.algorithm, "algorithm")
            } else if name.eq_ignore_ascii_case("digits") {
                (&mut params.digits, "digits")
            } else if name.eq_ignore_ascii_case("period") {
                (&mut params.period, "period")
            } else if name.eq_ignore_ascii_case("counter") {
                (&mut params.counter, "counter")
            } else {
                // Unknown parameters (`image`, `color`, `lock`, ...) and empty pairs.
                continue;
            };
            if slot.is_some() {
                return Err(UriError::DuplicateParameter(canonical));
            }
            *slot = Some(value);
        }
        Ok(params)
    }
}

/// Splits the raw label into (issuer prefix, account), both decoded.
fn split_label(
    raw: &str,
    issuer_param: Option<&str>,
) -> Result<(Option<String>, String), UriError> {
    // Exact match first: the label is `<issuer parameter>:<account>`, whatever the separator
    // encoding, even if the issuer itself contains a colon.
    if let Some(issuer) = issuer_param {
        let decoded = decode(raw, false, "label")?;
        if let Some(account) = decoded
            .strip_prefix(issuer)
            .and_then(|rest| rest.strip_prefix(':'))
        {
            return Ok((Some(issuer.to_owned()), account.to_owned()));
        }
    }
    // Otherwise split at the first literal colon, or else at the first encoded one.
    let split = raw.split_once(':').or_else(|| {
        let at = raw.to_ascii_lowercase().find("%3a")?;
        Some((raw.get(..at)?, raw.get(at + 3..)?))
    });
    match split {
        Some((prefix, account)) => {
            // `+` means a space in the issuer (form-encoded by some services), but stays a
            // plus in the account (`john+2fa@example.com`).
            let prefix = decode(prefix, true, "label")?;
            let account = decode(account, false, "label")?;
            Ok((Some(prefix.trim().to_owned()), take(account)))
        }
        None => Ok((None, take(decode(raw, false, "label")?))),
    }
}

/// Strict percent-decoding into UTF-8: a `%` must be followed by two hex digits.
///
/// Returns a [`Zeroizing`] string because it decodes the secret too; the buffer is sized once
/// (decoding never grows a string), so no copy is left behind.
fn decode(
    raw: &str,
    plus_is_space: bool,
    component: &'static str,
) -> Result<Zeroizing<String>, UriError> {
    let bytes = raw.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
                let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(UriError::InvalidEncoding { component });
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(core::mem::take(&mut *out)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(err) => {
            err.into_bytes().zeroize();
            Err(UriError::InvalidEncoding { component })
        }
    }
}

/// Moves a decoded name out of its [`Zeroizing`] wrapper (names are not secret).
fn take(mut text: Zeroizing<String>) -> String {
    core::mem::take(&mut *text)
}

const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A plain decimal number: ASCII digits only (no sign, no spaces), fitting in `T`.
fn number<T: FromStr>(raw: &str, parameter: &'static str) -> Result<T, UriError> {
    let text = decode(raw, true, parameter)?;
    let invalid = || UriError::InvalidNumber {
        parameter,
        value: text.as_str().to_owned(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse::<T>().map_err(|_| invalid())
}

fn strip_prefix_ignore_ascii_case<'a>(input: &'a str, prefix: &str) -> Option<&'a str> {
    let head = input.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        input.get(prefix.len()..)
    } else {
        None
    }
}
