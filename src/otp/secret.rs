//! The shared secret: generation, base32 in and out, redaction, zeroization.

use core::fmt;

use rand::TryCryptoRng;
use rand::rngs::SysRng;
use zeroize::{Zeroize, Zeroizing};

/// Length of a freshly generated secret in bytes (160 bits, as RFC 4226 recommends).
pub const DEFAULT_SECRET_BYTES: usize = 20;
/// The fewest bytes [`Secret::generate_with_len`] will generate (128 bits, RFC 4226's minimum).
pub const MIN_GENERATED_SECRET_BYTES: usize = 16;
/// The most bytes a secret may hold: 1 KiB (8,192 bits), a bound against denial of service,
/// not a cryptographic limit.
///
/// oathtool, pyotp and the authenticator apps accept secrets longer than a hash block, and
/// some providers issue them, so such a key imports here too. A key longer than the HMAC block
/// (64 bytes for SHA-1 and SHA-256, 128 for SHA-512) is hashed once when the HMAC is keyed
/// (RFC 2104 §2), so its length costs one hash per verification, never per step. The base32
/// form of this many bytes is 1,639 symbols; [`Secret::from_base32`] stops collecting symbols
/// past that, whatever the input's length.
pub const MAX_SECRET_BYTES: usize = 1024;

/// Base32 symbols needed for [`MAX_SECRET_BYTES`] bytes (5 bits each, rounded up).
const MAX_SECRET_SYMBOLS: usize = (MAX_SECRET_BYTES * 8).div_ceil(5);

/// How strong a secret is, judged by its length.
///
/// RFC 4226 §4 requires at least 128 bits and recommends 160. Real services still issue 80-bit
/// secrets, so importing one is allowed, but a host can refuse or warn using this value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SecretStrength {
    /// Fewer than 128 bits: below RFC 4226's requirement.
    Weak,
    /// 128 to 159 bits: meets the requirement but not the recommendation.
    Acceptable,
    /// 160 bits or more: what RFC 4226 recommends.
    Strong,
}

/// Why a secret could not be created or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The input held no key material at all.
    #[error("secret is empty")]
    Empty,
    /// A character that is not in the base32 alphabet (A–Z, 2–7), nor a separator.
    #[error("invalid base32 character {character:?} at position {position}")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its position (in characters) in the input.
        position: usize,
    },
    /// `=` padding followed by more data, or more padding than base32 allows.
    #[error("misplaced base32 padding")]
    InvalidPadding,
    /// A number of base32 characters that no whole number of bytes encodes to
    /// (1, 3 or 6 characters left over after the last full group of 8).
    #[error("invalid base32 length: {symbols} symbols do not encode whole bytes")]
    InvalidLength {
        /// How many base32 symbols (excluding separators and padding) were given.
        symbols: usize,
    },
    /// Asked to generate fewer bits than [`MIN_GENERATED_SECRET_BYTES`] allows.
    #[error("refusing to generate a {bits}-bit secret: at least 128 bits are required")]
    TooShortToGenerate {
        /// The requested size in bits.
        bits: usize,
    },
    /// More than [`MAX_SECRET_BYTES`] bytes.
    #[error("secret is too long: {bytes} bytes, at most {MAX_SECRET_BYTES} allowed")]
    TooLong {
        /// The size given, in bytes.
        bytes: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Rng,
}

/// A TOTP/HOTP shared secret.
///
/// The key bytes are wiped from memory when the value is dropped, `Debug` prints
/// `Secret([REDACTED])`, and there is deliberately no `PartialEq` (nothing should compare secrets
/// in variable time; compare codes instead).
///
/// ```
/// use twofactor::Secret;
///
/// let secret = Secret::generate()?;
/// assert_eq!(secret.len(), 20); // 160 bits
/// assert_eq!(format!("{secret:?}"), "Secret([REDACTED])");
///
/// // People paste secrets in every style; all of these are the same key.
/// let a = Secret::from_base32("JBSWY3DPEHPK3PXP")?;
/// let b = Secret::from_base32("jbsw y3dp-ehpk 3pxp")?;
/// assert_eq!(a.expose_secret(), b.expose_secret());
/// assert_eq!(a.to_base32_grouped().as_str(), "JBSW Y3DP EHPK 3PXP");
/// # Ok::<(), twofactor::otp::SecretError>(())
/// ```
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct Secret {
    bytes: Vec<u8>,
}

/// `#[zeroize(drop)]` above wipes the bytes on drop; this says so to the type system.
impl zeroize::ZeroizeOnDrop for Secret {}

impl Secret {
    /// Generates a new 160-bit secret from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`SecretError::Rng`] if the operating system cannot supply randomness.
    pub fn generate() -> Result<Self, SecretError> {
        Self::generate_with_len(DEFAULT_SECRET_BYTES)
    }

    /// Generates a secret of `bytes` bytes from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`SecretError::TooShortToGenerate`] below 16 bytes (128 bits),
    /// [`SecretError::TooLong`] above [`MAX_SECRET_BYTES`], [`SecretError::Rng`] if the OS fails.
    pub fn generate_with_len(bytes: usize) -> Result<Self, SecretError> {
        Self::generate_from_rng(&mut SysRng, bytes)
    }

    /// Generates a secret of `bytes` bytes from a caller-supplied cryptographic RNG.
    ///
    /// The sans-IO core uses this with whatever RNG the service passes in; hosts normally call
    /// [`Secret::generate`].
    ///
    /// # Errors
    /// As [`Secret::generate_with_len`].
    pub fn generate_from_rng<R: TryCryptoRng + ?Sized>(
        rng: &mut R,
        bytes: usize,
    ) -> Result<Self, SecretError> {
        if bytes < MIN_GENERATED_SECRET_BYTES {
            return Err(SecretError::TooShortToGenerate {
                bits: bytes.saturating_mul(8),
            });
        }
        if bytes > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong { bytes });
        }
        let mut secret = Secret {
            bytes: vec![0u8; bytes],
        };
        rng.try_fill_bytes(&mut secret.bytes)
            .map_err(|_| SecretError::Rng)?;
        Ok(secret)
    }

    /// Imports raw key bytes. Short (even 80-bit) secrets are accepted; check
    /// [`Secret::strength`] if you want to refuse them.
    ///
    /// # Errors
    /// [`SecretError::Empty`] for no bytes, [`SecretError::TooLong`] above [`MAX_SECRET_BYTES`].
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let secret = Secret {
            bytes: bytes.into(),
        };
        if secret.bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        if secret.bytes.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong {
                bytes: secret.bytes.len(),
            });
        }
        Ok(secret)
    }

    /// Decodes a base32 secret as people paste it: any case, spaces, tabs or hyphens anywhere
    /// between symbols, with or without trailing `=` padding.
    ///
    /// # Errors
    /// [`SecretError::Empty`], [`SecretError::InvalidCharacter`], [`SecretError::InvalidPadding`],
    /// [`SecretError::InvalidLength`] or [`SecretError::TooLong`], naming the problem.
    pub fn from_base32(input: &str) -> Result<Self, SecretError> {
        // Symbols are collected up to the bound only (the buffer never grows with the input);
        // past it they are still counted and checked, so errors stay the same.
        let mut symbols = Zeroizing::new(String::with_capacity(
            input.len().min(MAX_SECRET_SYMBOLS + 1),
        ));
        let mut n = 0usize;
        let mut padding = 0usize;
        for (position, c) in input.chars().enumerate() {
            match c {
                ' ' | '\t' | '-' | '\n' | '\r' => {}
                '=' => padding += 1,
                'a'..='z' | 'A'..='Z' | '2'..='7' => {
                    if padding > 0 {
                        return Err(SecretError::InvalidPadding);
                    }
                    n += 1;
                    if n <= MAX_SECRET_SYMBOLS {
                        symbols.push(c.to_ascii_uppercase());
                    }
                }
                character => {
                    return Err(SecretError::InvalidCharacter {
                        character,
                        position,
                    });
                }
            }
        }
        if n == 0 {
            return Err(SecretError::Empty);
        }
        // A base32 quantum is 8 symbols; a final partial quantum of 1, 3 or 6 symbols cannot
        // encode whole bytes (RFC 4648 §6).
        if matches!(n % 8, 1 | 3 | 6) {
            return Err(SecretError::InvalidLength { symbols: n });
        }
        if padding > 0 && !(n + padding).is_multiple_of(8) {
            return Err(SecretError::InvalidPadding);
        }
        let bytes = n / 8 * 5 + n % 8 * 5 / 8; // n * 5 / 8, without overflow
        if bytes > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong { bytes });
        }
        let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &symbols)
            .ok_or(SecretError::InvalidLength { symbols: n })?;
        Self::from_bytes(bytes)
    }

    /// The secret as uppercase base32 without padding: what goes into an `otpauth://` URI.
    #[must_use]
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            &self.bytes,
        ))
    }

    /// The secret as uppercase base32 in groups of four separated by spaces, for people who
    /// type it in by hand ("Cannot scan it?").
    #[must_use]
    pub fn to_base32_grouped(&self) -> Zeroizing<String> {
        let plain = self.to_base32();
        let mut grouped = Zeroizing::new(String::with_capacity(plain.len() + plain.len() / 4));
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                grouped.push(' ');
            }
            grouped.push(c);
        }
        grouped
    }

    /// The raw key bytes.
    ///
    /// # Security warning
    /// This exposes the key. Do not log it, print it or keep copies of it.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }

    /// The key length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always `false`: an empty secret cannot be constructed. Present for API symmetry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The key length in bits.
    #[must_use]
    pub fn bits(&self) -> usize {
        self.bytes.len() * 8
    }

    /// How strong this secret is by length; see [`SecretStrength`].
    #[must_use]
    pub fn strength(&self) -> SecretStrength {
        match self.bits() {
            0..128 => SecretStrength::Weak,
            128..160 => SecretStrength::Acceptable,
            _ => SecretStrength::Strong,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Serialized as unpadded uppercase base32, so a stored record stays readable by tools.
#[cfg(feature = "serde")]
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base32())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(<String as serde::Deserialize>::deserialize(deserializer)?);
        Secret::from_base32(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_base32_forms_agree() {
        let canonical = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        for form in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq",
            " GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
        ] {
            assert_eq!(
                Secret::from_base32(form).unwrap().expose_secret(),
                canonical.expose_secret()
            );
        }
        assert_eq!(canonical.expose_secret(), b"12345678901234567890");
    }

    #[test]
    fn padding_accepted_when_correct() {
        // 10 bytes = 16 symbols, no padding needed; 11 bytes = 18 symbols + 6 '='.
        let s = Secret::from_bytes(vec![7u8; 11]).unwrap();
        let plain = s.to_base32();
        assert_eq!(plain.len(), 18);
        let padded = format!("{}======", plain.as_str());
        assert_eq!(
            Secret::from_base32(&padded).unwrap().expose_secret(),
            s.expose_secret()
        );
        assert_eq!(
            Secret::from_base32(&format!("{}=", plain.as_str())).unwrap_err(),
            SecretError::InvalidPadding
        );
        assert_eq!(
            Secret::from_base32("AB=CD").unwrap_err(),
            SecretError::InvalidPadding
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(Secret::from_base32("").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::from_base32(" - ").unwrap_err(), SecretError::Empty);
        assert_eq!(
            Secret::from_base32("ABC1").unwrap_err(),
            SecretError::InvalidCharacter {
                character: '1',
                position: 3
            }
        );
        assert_eq!(
            Secret::from_base32("ABC").unwrap_err(),
            SecretError::InvalidLength { symbols: 3 }
        );
        assert_eq!(
            Secret::from_base32(&"A".repeat(1648)).unwrap_err(),
            SecretError::TooLong { bytes: 1030 }
        );
        assert_eq!(
            Secret::generate_with_len(15).unwrap_err(),
            SecretError::TooShortToGenerate { bits: 120 }
        );
        assert_eq!(Secret::from_bytes(vec![]).unwrap_err(), SecretError::Empty);
    }

    #[test]
    fn strength_and_generation() {
        let s = Secret::generate().unwrap();
        assert_eq!(s.bits(), 160);
        assert_eq!(s.strength(), SecretStrength::Strong);
        assert_ne!(
            s.expose_secret(),
            Secret::generate().unwrap().expose_secret()
        );
        assert_eq!(
            Secret::from_bytes(vec![1u8; 10]).unwrap().strength(),
            SecretStrength::Weak
        );
        assert_eq!(
            Secret::generate_with_len(16).unwrap().strength(),
            SecretStrength::Acceptable
        );
    }

    #[test]
    fn grouped_output() {
        let s = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        assert_eq!(
            s.to_base32_grouped().as_str(),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
    }
}
