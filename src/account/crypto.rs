//! Small cryptographic helpers shared by the domain: salted SHA-256 digests and keyed
//! HMAC-SHA-256 digests compared in constant time, the server-side [`CodeKey`], uniform random
//! numbers from a caller-supplied CSPRNG, hex.

use core::fmt;

use rand::TryCryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use super::DomainError;
pub(crate) use crate::vocabulary::hex;
#[cfg(feature = "serde")]
pub(crate) use crate::vocabulary::unhex_vec;

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

/// HMAC-SHA-256 (RFC 2104) of the concatenated `parts` under a 32-byte key.
pub(crate) fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    HmacKey::new(key).mac(parts)
}

/// An HMAC-SHA-256 key with its two padded blocks already absorbed (RFC 2104's inner and
/// outer hash states), for a key that MACs often: each MAC then clones two states instead of
/// compressing two more blocks. The states are key material; they are wiped on drop (`sha2`'s
/// `zeroize` feature).
#[derive(Clone)]
pub(crate) struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl HmacKey {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let mut pad = Zeroizing::new([0u8; 64]);
        pad[..32].copy_from_slice(key);
        for b in pad.iter_mut() {
            *b ^= 0x36;
        }
        let mut inner = Sha256::new();
        inner.update(pad.as_slice());
        for b in pad.iter_mut() {
            *b ^= 0x36 ^ 0x5c;
        }
        let mut outer = Sha256::new();
        outer.update(pad.as_slice());
        HmacKey { inner, outer }
    }

    /// The MAC of the concatenated `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        let mut out = [0u8; 32];
        out.copy_from_slice(&outer.finalize());
        out
    }
}

/// `HMAC-SHA-256(key, label || 0x00 || salt || data)`: the keyed form of [`digest`]. Without
/// the key, a stored digest cannot test a guess.
pub(crate) fn keyed_digest(key: &CodeKey, label: &str, salt: &[u8], data: &[u8]) -> Digest {
    Bytes(hmac_sha256(
        &key.key,
        &[label.as_bytes(), &[0u8], salt, data],
    ))
}

const KEY_ID_LABEL: &[u8] = b"twofactor code key id v1";

/// A server-side key for the digests of recovery codes and mailed login codes (32 bytes).
///
/// With it, a stored code is `HMAC-SHA-256(key, ...)` instead of a salted SHA-256: someone who
/// copies the table (a backup, a replica) but not the key cannot test a single guess offline.
/// Keep it beside the sealing key, in your secret manager, never in the database; or derive it
/// with [`ServiceKeys`](super::ServiceKeys) from one server secret (under sealing,
/// `Keyring::service_keys`, feature `seal`) and manage one secret.
/// Give it to the service with
/// [`TwoFactorBuilder::code_key`](crate::service::TwoFactorBuilder::code_key) (or to the
/// domain with [`SettingsBuilder::code_key`](super::SettingsBuilder::code_key)).
///
/// Each key has a public [`id`](Self::id) derived from it (an HMAC of a fixed label, so it
/// reveals nothing about the key); stored digests record it, so a record hashed under a key the
/// service does not have fails closed with
/// [`DomainError::UnknownCodeKey`](super::DomainError::UnknownCodeKey) instead of reading as a
/// wrong code. The bytes are zeroized on drop; `Debug` prints `CodeKey([REDACTED])`; equality is
/// constant time.
///
/// ```
/// use twofactor::account::CodeKey;
///
/// let key = CodeKey::from_bytes(&[7u8; 32]);
/// assert_eq!(format!("{key:?}"), "CodeKey([REDACTED])");
/// assert_eq!(key.id().len(), 16);
/// assert_ne!(CodeKey::random()?.id(), key.id());
/// # Ok::<(), twofactor::account::DomainError>(())
/// ```
#[derive(Clone)]
pub struct CodeKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl CodeKey {
    /// A key from 32 bytes (from your secret manager). Convert a slice with `try_into()`.
    #[must_use]
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let key = Zeroizing::new(*bytes);
        let id = hex(&hmac_sha256(&key, &[KEY_ID_LABEL])[..8]);
        CodeKey { key, id }
    }

    /// A fresh key from the operating system's CSPRNG; store it with
    /// [`expose_secret`](Self::expose_secret) in your secret manager.
    ///
    /// # Errors
    /// [`DomainError::Rng`] if the operating system cannot supply randomness.
    pub fn random() -> Result<Self, DomainError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, bytes.as_mut_slice())
            .map_err(|_| DomainError::Rng)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key's public id (16 hex digits), stored beside the digests made with it.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes.
    ///
    /// # Security warning
    /// Whoever has these and a copy of the table can test guesses of mailed codes offline (a
    /// 6-digit code in microseconds). Store them in a secret manager; never log them.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey([REDACTED])")
    }
}

impl PartialEq for CodeKey {
    fn eq(&self, other: &Self) -> bool {
        self.key.ct_eq(&*other.key).into()
    }
}

impl Eq for CodeKey {}

/// The code keys a deployment holds: the current one (new digests) and older ones (still
/// check the digests made with them, until those sets are regenerated).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct CodeKeys {
    pub(crate) current: Option<CodeKey>,
    pub(crate) old: Vec<CodeKey>,
}

impl CodeKeys {
    /// The key with this id.
    pub(crate) fn find(&self, id: &str) -> Option<&CodeKey> {
        self.current
            .iter()
            .chain(self.old.iter())
            .find(|k| k.id == id)
    }

    /// Whether no key is configured at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.current.is_none() && self.old.is_empty()
    }
}

impl fmt::Debug for CodeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeKeys")
            .field("current", &self.current.as_ref().map(CodeKey::id))
            .field("old", &self.old.iter().map(CodeKey::id).collect::<Vec<_>>())
            .finish()
    }
}

/// How a stored code digest was made; recorded beside it so old digests keep working and a
/// missing key is noticed instead of read as a wrong code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "alg", rename_all = "snake_case", deny_unknown_fields)
)]
pub(crate) enum CodeHash {
    /// `SHA-256(label || 0 || salt || code)`: what 0.1.0 wrote (absent field), and what is
    /// written when the deployment has no code key.
    /// (A struct variant, not a unit one: serde refuses unknown fields beside the tag only for
    /// struct variants.)
    Sha256 {},
    /// [`keyed_digest`] under the code key with this id.
    HmacSha256 {
        /// [`CodeKey::id`].
        key_id: String,
    },
}

impl Default for CodeHash {
    fn default() -> Self {
        CodeHash::Sha256 {}
    }
}

impl CodeHash {
    /// The scheme for new digests: keyed when the deployment has a current key.
    pub(crate) fn for_new(keys: &CodeKeys) -> Self {
        match &keys.current {
            Some(k) => CodeHash::HmacSha256 {
                key_id: k.id.clone(),
            },
            None => CodeHash::Sha256 {},
        }
    }

    /// Fails with [`DomainError::UnknownCodeKey`] when the key this scheme needs is missing.
    pub(crate) fn ensure_key(&self, keys: &CodeKeys) -> Result<(), DomainError> {
        match self {
            CodeHash::Sha256 {} => Ok(()),
            CodeHash::HmacSha256 { key_id } => {
                keys.find(key_id)
                    .map(|_| ())
                    .ok_or_else(|| DomainError::UnknownCodeKey {
                        key_id: key_id.clone(),
                    })
            }
        }
    }

    /// The digest of `data` under this scheme.
    ///
    /// # Errors
    /// [`DomainError::UnknownCodeKey`] when the key is missing.
    pub(crate) fn digest(
        &self,
        keys: &CodeKeys,
        label: &str,
        salt: &[u8],
        data: &[u8],
    ) -> Result<Digest, DomainError> {
        match self {
            CodeHash::Sha256 {} => Ok(digest(label, salt, data)),
            CodeHash::HmacSha256 { key_id } => keys
                .find(key_id)
                .map(|k| keyed_digest(k, label, salt, data))
                .ok_or_else(|| DomainError::UnknownCodeKey {
                    key_id: key_id.clone(),
                }),
        }
    }
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

/// Decodes exactly `N` bytes of hex (either case); `None` for anything else.
#[cfg(feature = "serde")]
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    unhex_vec(s)?.try_into().ok()
}

/// Decodes exactly `N` bytes of hex (either case) without branching on the digits: for
/// secrets (device tokens), whose parse time must not depend on which digits they hold.
/// `None` for anything else (decided once, after every digit was read).
pub(crate) fn unhex_ct<const N: usize>(s: &str) -> Option<Zeroizing<[u8; N]>> {
    use subtle::ConstantTimeLess;
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; N]);
    let mut valid = Choice::from(1);
    let nibble = |c: u8, valid: &mut Choice| {
        let d = c.wrapping_sub(b'0');
        let l = (c | 0x20).wrapping_sub(b'a');
        let is_d = d.ct_lt(&10);
        let is_l = l.ct_lt(&6);
        *valid &= is_d | is_l;
        u8::conditional_select(&0, &d, is_d) | u8::conditional_select(&0, &l.wrapping_add(10), is_l)
    };
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (nibble(pair[0], &mut valid) << 4) | nibble(pair[1], &mut valid);
    }
    bool::from(valid).then_some(out)
}

#[cfg(feature = "serde")]
impl<const N: usize> serde::Serialize for Bytes<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::vocabulary::Hex(&self.0).serialize(serializer)
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
        for b in 0..=255u8 {
            for c in [b'0', b'a', b'F'] {
                let s = format!("{}{}", char::from(b), char::from(c));
                if s.len() == 2 {
                    assert_eq!(unhex_ct::<1>(&s).map(|z| *z), unhex::<1>(&s), "{s:?}");
                }
            }
        }
        assert_eq!(
            unhex_ct::<3>("00ABff").map(|z| *z),
            Some([0x00, 0xab, 0xff])
        );
        assert!(unhex_ct::<3>("00ABf").is_none());
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
    fn hmac_matches_the_reference_implementation() {
        use hmac::{KeyInit as _, Mac as _};
        for (key, msg) in [
            ([0u8; 32], &b""[..]),
            ([0xab; 32], &b"abc"[..]),
            ([7; 32], &[1u8; 200][..]),
        ] {
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(msg);
            let (a, b) = msg.split_at(msg.len() / 2);
            assert_eq!(
                hmac_sha256(&key, &[a, b])[..],
                mac.finalize().into_bytes()[..]
            );
        }
    }

    #[test]
    fn keyed_digests_depend_on_the_key_and_ids_tell_keys_apart() {
        let (a, b) = (CodeKey::from_bytes(&[1; 32]), CodeKey::from_bytes(&[2; 32]));
        assert_ne!(a.id(), b.id());
        assert_eq!(a, CodeKey::from_bytes(&[1; 32]));
        assert_ne!(a, b);
        let da = keyed_digest(&a, "l", b"s", b"x");
        assert!(!bool::from(da.ct_eq(&keyed_digest(&b, "l", b"s", b"x"))));
        assert!(!bool::from(da.ct_eq(&digest("l", b"s", b"x"))));
        let keys = CodeKeys {
            current: Some(b.clone()),
            old: vec![a.clone()],
        };
        let old = CodeHash::HmacSha256 {
            key_id: a.id().to_owned(),
        };
        assert!(bool::from(
            old.digest(&keys, "l", b"s", b"x").unwrap().ct_eq(&da)
        ));
        assert_eq!(
            CodeHash::for_new(&keys),
            CodeHash::HmacSha256 {
                key_id: b.id().to_owned()
            }
        );
        assert_eq!(
            old.digest(&CodeKeys::default(), "l", b"s", b"x"),
            Err(DomainError::UnknownCodeKey {
                key_id: a.id().to_owned()
            })
        );
        assert!(!format!("{keys:?} {a:?}").contains(&hex(a.expose_secret())));
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
