//! RFC 4226 (HOTP) and RFC 6238 (TOTP): the math, the code type and the secret.
//!
//! Stateless and I/O-free: time and the last accepted step are passed in, results come back.
//! Verification keys the HMAC once per call, checks every step in the window in constant time,
//! returns the matched step (the base of replay protection) and allocates nothing.

mod code;
mod hotp;
mod secret;
mod totp;

pub use code::{Code, CodeError};
pub use hotp::{DEFAULT_LOOK_AHEAD, Hotp, MAX_LOOK_AHEAD};
pub use secret::{
    DEFAULT_SECRET_BYTES, MAX_SECRET_BYTES, MIN_GENERATED_SECRET_BYTES, Secret, SecretError,
    SecretStrength,
};
pub use totp::{DEFAULT_PERIOD, DEFAULT_SKEW, MAX_SKEW, MIN_PERIOD, Totp, TotpBuilder};

use core::fmt;
use core::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};

/// The default number of digits in a code (what every authenticator app supports).
pub const DEFAULT_DIGITS: u8 = 6;
/// The fewest digits allowed (RFC 4226 §5.3: at least 6).
pub const MIN_DIGITS: u8 = 6;
/// The most digits allowed (a 31-bit truncated value has at most 10, apps support 8).
pub const MAX_DIGITS: u8 = 8;

/// The HMAC hash function.
///
/// SHA-1 is the default because every authenticator app supports it; HMAC-SHA-1 remains sound
/// for this use (collision attacks on SHA-1 do not apply to HMAC). SHA-256 and SHA-512 are
/// defined by RFC 6238, but some apps silently ignore the `algorithm` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Algorithm {
    /// HMAC-SHA-1 (the default).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs: `SHA1`, `SHA256` or `SHA512`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is not SHA1, SHA256 or SHA512.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?}: expected SHA1, SHA256 or SHA512")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Case-insensitive, with or without a hyphen (`sha1`, `SHA-256`, ...).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let matches = |name: &str| {
            t.eq_ignore_ascii_case(name)
                || t.len() == name.len() + 1
                    && t.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("SHA"))
                    && t.get(3..4) == Some("-")
                    && t.get(4..).is_some_and(|rest| rest == &name[3..])
        };
        if matches("SHA1") {
            Ok(Algorithm::Sha1)
        } else if matches("SHA256") {
            Ok(Algorithm::Sha256)
        } else if matches("SHA512") {
            Ok(Algorithm::Sha512)
        } else {
            Err(UnknownAlgorithm(s.to_owned()))
        }
    }
}

/// Invalid OTP parameters (digits, period, skew, look-ahead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// Digits outside [`MIN_DIGITS`]..=[`MAX_DIGITS`].
    #[error("digits must be between {MIN_DIGITS} and {MAX_DIGITS}, got {0}")]
    Digits(u32),
    /// A period below [`MIN_PERIOD`] second.
    #[error("period must be at least {MIN_PERIOD} second, got {0}")]
    Period(u64),
    /// A skew above [`MAX_SKEW`] steps.
    #[error("skew must be at most {MAX_SKEW} steps, got {0}")]
    Skew(u32),
    /// A look-ahead above [`MAX_LOOK_AHEAD`] counters.
    #[error("look-ahead must be at most {MAX_LOOK_AHEAD}, got {0}")]
    LookAhead(u32),
}

pub(crate) fn check_digits(digits: u32) -> Result<u8, ParamsError> {
    match u8::try_from(digits) {
        Ok(d) if (MIN_DIGITS..=MAX_DIGITS).contains(&d) => Ok(d),
        _ => Err(ParamsError::Digits(digits)),
    }
}

/// Why a submitted code was not accepted.
///
/// Hosts should show every variant to the user as the same "invalid code" message (an attacker
/// learns nothing from the difference); audit logs keep the distinction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The input is not a code of the expected shape.
    #[error("malformed code: {0}")]
    Malformed(#[from] CodeError),
    /// Well-formed, but no step (or counter) in the window produces it.
    #[error("invalid code")]
    Invalid,
    /// The code is valid for a step at or below the last accepted one: a replay.
    #[error("code already used")]
    Replayed,
}

const POW10: [u32; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// RFC 4226 §5.3 dynamic truncation of an HMAC output, reduced to `digits` digits.
fn truncate(mac: &[u8], digits: u8) -> u32 {
    // HMAC outputs are 20, 32 or 64 bytes; the offset is at most 15, so offset + 3 < 20.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    bin % POW10[usize::from(digits)]
}

/// Computes the truncated HOTP value for `counter` from an already keyed HMAC.
fn value_at<M: Mac + Clone>(keyed: &M, counter: u64, digits: u8) -> u32 {
    let mut mac = keyed.clone();
    mac.update(&counter.to_be_bytes());
    truncate(&mac.finalize().into_bytes(), digits)
}

fn keyed<D>(key: &[u8]) -> Hmac<D>
where
    D: hmac::EagerHash,
    Hmac<D>: KeyInit,
{
    match <Hmac<D> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length (longer ones are hashed); this arm cannot run.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// One HOTP value for `counter`.
pub(crate) fn hotp_value(algorithm: Algorithm, key: &[u8], counter: u64, digits: u8) -> u32 {
    match algorithm {
        Algorithm::Sha1 => value_at(&keyed::<sha1::Sha1>(key), counter, digits),
        Algorithm::Sha256 => value_at(&keyed::<sha2::Sha256>(key), counter, digits),
        Algorithm::Sha512 => value_at(&keyed::<sha2::Sha512>(key), counter, digits),
    }
}

/// Checks `code` against every counter in `first..=last` (at most `MAX_SKEW * 2 + 1` values,
/// enforced by callers), in constant time with respect to which counter matched.
///
/// Returns the highest matching counter above `used`. Counters `<= used` are still computed
/// (so timing does not depend on them) and only turn a miss into [`VerifyError::Replayed`].
pub(crate) fn scan_window(
    algorithm: Algorithm,
    key: &[u8],
    code: u32,
    digits: u8,
    first: u64,
    last: u64,
    used: Option<u64>,
) -> Result<u64, VerifyError> {
    match algorithm {
        Algorithm::Sha1 => scan(&keyed::<sha1::Sha1>(key), code, digits, first, last, used),
        Algorithm::Sha256 => scan(&keyed::<sha2::Sha256>(key), code, digits, first, last, used),
        Algorithm::Sha512 => scan(&keyed::<sha2::Sha512>(key), code, digits, first, last, used),
    }
}

fn scan<M: Mac + Clone>(
    keyed: &M,
    code: u32,
    digits: u8,
    first: u64,
    last: u64,
    used: Option<u64>,
) -> Result<u64, VerifyError> {
    let mut fresh_found = subtle::Choice::from(0);
    let mut fresh_step = 0u64;
    let mut replay_found = subtle::Choice::from(0);
    let (has_used, used_step) = match used {
        Some(s) => (subtle::Choice::from(1), s),
        None => (subtle::Choice::from(0), 0),
    };
    let mut counter = first;
    loop {
        let hit = value_at(keyed, counter, digits).ct_eq(&code);
        // Fresh when there is no last-used step or this counter is above it.
        let fresh = !has_used | counter.ct_gt(&used_step);
        let fresh_hit = hit & fresh;
        // Counters ascend, so the last fresh hit is the highest one.
        fresh_step.conditional_assign(&counter, fresh_hit);
        fresh_found |= fresh_hit;
        replay_found |= hit & !fresh;
        if counter >= last {
            break;
        }
        counter += 1;
    }
    if bool::from(fresh_found) {
        Ok(fresh_step)
    } else if bool::from(replay_found) {
        Err(VerifyError::Replayed)
    } else {
        Err(VerifyError::Invalid)
    }
}
