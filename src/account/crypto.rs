//! Small cryptographic helpers shared by the domain: salted SHA-256 digests compared in
//! constant time, uniform random numbers from a caller-supplied CSPRNG, hex.

use core::fmt;

use rand::TryCryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::DomainError;

/// Fixed-size bytes stored as lowercase hex (salts, digests).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bytes<const N: usize>(pub(crate) [u8; N]);

/// A SHA-256 digest.
pub(crate) type Digest = Bytes<32>;
/// A random salt.
pub(crate) type Salt = Bytes<16>;

impl<const N: usize> Default for Bytes<N> {
    fn default() -> Self {
        Bytes([0; N])
    }
}

impl<const N: usize> zeroize::DefaultIsZeroes for Bytes<N> {}

impl<const N: usize> fmt::Debug for Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bytes(..)")
    }
}

impl<const N: usize> Bytes<N> {
    /// Constant-time equality.
    pub(crate) fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }

    /// Fresh random bytes.
    pub(crate) fn random<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, DomainError> {
        let mut b = [0u8; N];
        rng.try_fill_bytes(&mut b).map_err(|_| DomainError::Rng)?;
        Ok(Bytes(b))
    }
}

/// `SHA-256(label || 0x00 || salt || data)`: domain-separated so a digest of one kind never
/// verifies as another.
pub(crate) fn digest(label: &str, salt: &[u8], data: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update([0u8]);
    h.update(salt);
    h.update(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    Bytes(out)
}

/// A uniform random number in `0..bound` (rejection sampling; `bound > 0`).
pub(crate) fn random_below<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    bound: u32,
) -> Result<u32, DomainError> {
    let bound = bound.max(1);
    // The largest multiple of `bound` that fits: values at or above it would bias the result.
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let v = rng.try_next_u32().map_err(|_| DomainError::Rng)?;
        if v < zone {
            return Ok(v % bound);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// Decodes exactly `N` bytes of hex (either case); `None` for anything else.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    unhex_vec(s)?.try_into().ok()
}

/// Decodes hex of any even length (either case); `None` for anything else.
pub(crate) fn unhex_vec(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(feature = "serde")]
impl<const N: usize> serde::Serialize for Bytes<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex(&self.0))
    }
}

#[cfg(feature = "serde")]
impl<'de, const N: usize> serde::Deserialize<'de> for Bytes<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(deserializer)?;
        unhex::<N>(&s)
            .map(Bytes)
            .ok_or_else(|| serde::de::Error::custom(format_args!("expected {} hex digits", N * 2)))
    }
}

/// A deterministic RNG for unit tests (SplitMix64). Not cryptographic: tests only.
#[cfg(test)]
pub(crate) struct TestRng(pub(crate) u64);

#[cfg(test)]
impl rand::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
impl rand::TryCryptoRng for TestRng {}

/// An RNG that always fails, to test that failures surface as [`DomainError::Rng`].
#[cfg(test)]
pub(crate) struct FailingRng;

#[cfg(test)]
#[derive(Debug)]
pub(crate) struct RngFailure;

#[cfg(test)]
impl core::fmt::Display for RngFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rng failure")
    }
}

#[cfg(test)]
impl core::error::Error for RngFailure {}

#[cfg(test)]
impl rand::TryRng for FailingRng {
    type Error = RngFailure;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Err(RngFailure)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Err(RngFailure)
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
        Err(RngFailure)
    }
}

#[cfg(test)]
impl rand::TryCryptoRng for FailingRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex::<3>("00ABff"), Some([0x00, 0xab, 0xff]));
        assert_eq!(unhex::<3>("00abf"), None);
        assert_eq!(unhex::<2>("zz00"), None);
    }

    #[test]
    fn random_below_is_in_range_and_fails_closed() {
        let mut rng = TestRng(1);
        for _ in 0..1_000 {
            assert!(random_below(&mut rng, 10).unwrap() < 10);
        }
        assert_eq!(random_below(&mut FailingRng, 10), Err(DomainError::Rng));
    }

    #[test]
    fn digests_are_domain_separated() {
        assert!(!bool::from(
            digest("a", b"s", b"x").ct_eq(&digest("b", b"s", b"x"))
        ));
        assert!(bool::from(
            digest("a", b"s", b"x").ct_eq(&digest("a", b"s", b"x"))
        ));
    }
}
