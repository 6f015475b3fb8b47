//! One server secret, a subkey per purpose: [`ServiceKeys`].

use core::fmt;

use zeroize::Zeroizing;

use super::DomainError;
use super::crypto::{CodeKey, HmacKey};

/// The HKDF-SHA256 `info` labels of the subkeys. Distinct labels give independent keys: a
/// key for one purpose never verifies or decrypts anything of another.
#[allow(dead_code)] // the keyring's labels are used with the `seal` feature
pub(crate) mod label {
    /// Keyed digests of recovery and mailed codes ([`CodeKey`](super::CodeKey)).
    pub(crate) const CODE_HASHES: &[u8] = b"twofactor/v2/code-hashes";
    /// MACs of login tickets and second-factor proofs.
    pub(crate) const TICKETS: &[u8] = b"twofactor/v2/tickets-and-proofs";
    /// Keyed names of trusted-device cookies.
    pub(crate) const COOKIE_NAMES: &[u8] = b"twofactor/v2/cookie-names";
    /// Encryption of stored TOTP secrets (feature `seal`).
    #[cfg_attr(not(feature = "seal"), allow(dead_code))]
    pub(crate) const SECRET_ENCRYPTION: &[u8] = b"twofactor/v2/secret-encryption";
    /// MACs of stored records (feature `seal`).
    #[cfg_attr(not(feature = "seal"), allow(dead_code))]
    pub(crate) const RECORD_MAC: &[u8] = b"twofactor/v2/record-mac";
}

/// The fixed HKDF salt: the secret is a uniformly random key, so the salt only separates this
/// crate's derivations from anyone else's use of the same secret.
const SALT: &[u8] = b"twofactor hkdf salt v1";

/// `HKDF-SHA256(secret, salt, label)`, 32 bytes (RFC 5869).
pub(crate) fn derive(secret: &[u8], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(SALT), secret);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: this cannot fail.
    if hk.expand(label, out.as_mut_slice()).is_err() {
        unreachable!("HKDF-SHA256 expands to 32 bytes");
    }
    out
}

/// A 32-byte MAC key for login tickets and second-factor proofs (with its HMAC pads absorbed
/// once: a login MACs a ticket and a proof and checks the ticket).
#[derive(Clone)]
pub(crate) struct TicketKey(pub(crate) Zeroizing<[u8; 32]>, HmacKey);

impl TicketKey {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> Self {
        let mac = HmacKey::new(&key);
        TicketKey(key, mac)
    }

    /// HMAC-SHA-256 of the concatenated `parts` under this key.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.1.mac(parts)
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey([REDACTED])")
    }
}

impl PartialEq for TicketKey {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_slice(), other.0.as_slice()).into()
    }
}

impl Eq for TicketKey {}

/// This process's random ticket key, for settings without [`ServiceKeys`]: made once, from the
/// OS CSPRNG.
pub(crate) fn process_ticket_key() -> Result<&'static TicketKey, DomainError> {
    static KEY: std::sync::OnceLock<Option<TicketKey>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, k.as_mut_slice())
            .ok()
            .map(|()| TicketKey::new(k))
    })
    .as_ref()
    .ok_or(DomainError::Rng)
}

/// This process's random cookie-name key, for a service without [`ServiceKeys`]. (If the OS
/// cannot supply randomness, a fixed all-zero key: cookie names then merely stop hiding user
/// ids, which is what they did before keys existed.)
pub(crate) fn process_cookie_key() -> &'static CookieKey {
    static KEY: std::sync::OnceLock<CookieKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = Zeroizing::new([0u8; 32]);
        if rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, k.as_mut_slice()).is_err() {
            k = Zeroizing::new([0u8; 32]);
        }
        CookieKey(k)
    })
}

/// A 32-byte key that names trusted-device cookies (see [`crate::cookie`]).
#[derive(Clone)]
pub struct CookieKey(pub(crate) Zeroizing<[u8; 32]>);

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey([REDACTED])")
    }
}

/// The keys a service needs, derived from **one** server secret with HKDF-SHA256 and a
/// distinct label per purpose:
///
/// | subkey | label | keys |
/// |---|---|---|
/// | code hashes | `twofactor/v2/code-hashes` | digests of recovery and mailed codes ([`CodeKey`]) |
/// | tickets and proofs | `twofactor/v2/tickets-and-proofs` | the MACs of login tickets and second-factor proofs |
/// | cookie names | `twofactor/v2/cookie-names` | the names of trusted-device cookies |
///
/// Every app server of a deployment must derive them from the same secret: a ticket or proof
/// made under another secret is refused (never accepted), and a code hashed under another key
/// fails closed. Keep the secret in a secret manager, never in the database. Under sealing,
/// `seal::Keyring::service_keys` derives them from the keyring's current key (and keeps the
/// code keys of older keys, so codes hashed before a rotation still check).
///
/// The bytes zeroize on drop; `Debug` prints no key material.
///
/// ```
/// use twofactor::account::ServiceKeys;
///
/// let secret = [7u8; 32]; // from your secret manager
/// let keys = ServiceKeys::derive(&secret)?;
/// assert_eq!(keys.code_key().id(), ServiceKeys::derive(&secret)?.code_key().id());
/// assert_ne!(keys.code_key().id(), ServiceKeys::derive(&[8u8; 32])?.code_key().id());
/// assert!(ServiceKeys::derive(&[7u8; 16]).is_err()); // too short
/// assert!(!format!("{keys:?}").contains("07"));
/// # Ok::<(), twofactor::account::DomainError>(())
/// ```
#[derive(Clone)]
pub struct ServiceKeys {
    pub(crate) code: CodeKey,
    pub(crate) old_code: Vec<CodeKey>,
    pub(crate) ticket: TicketKey,
    pub(crate) cookie: CookieKey,
}

/// The shortest secret [`ServiceKeys::derive`] takes, in bytes.
pub const MIN_SERVICE_SECRET_BYTES: usize = 32;

impl ServiceKeys {
    /// Derives every subkey from `secret` (at least 32 bytes from a CSPRNG, e.g.
    /// `openssl rand -base64 32` decoded, kept in your secret manager).
    ///
    /// # Errors
    /// [`DomainError::InvalidKey`] for a secret shorter than 32 bytes.
    pub fn derive(secret: &[u8]) -> Result<Self, DomainError> {
        if secret.len() < MIN_SERVICE_SECRET_BYTES {
            return Err(DomainError::InvalidKey(
                "a service secret must be at least 32 bytes",
            ));
        }
        Ok(ServiceKeys {
            code: CodeKey::from_bytes(&derive(secret, label::CODE_HASHES)),
            old_code: Vec::new(),
            ticket: TicketKey::new(derive(secret, label::TICKETS)),
            cookie: CookieKey(derive(secret, label::COOKIE_NAMES)),
        })
    }

    /// Keys from a fresh random secret that is never stored: for tests and a single process
    /// that keeps no recovery codes across restarts. Everything hashed or issued under them
    /// is unusable after a restart (recovery codes fail closed, tickets are refused).
    ///
    /// # Errors
    /// [`DomainError::Rng`] if the operating system cannot supply randomness.
    pub fn ephemeral() -> Result<Self, DomainError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, secret.as_mut_slice())
            .map_err(|_| DomainError::Rng)?;
        Self::derive(secret.as_slice())
    }

    /// Adds an older code key: digests made under it still check (until the user's recovery
    /// codes are regenerated); new digests use the current one.
    #[must_use]
    pub fn with_old_code_key(mut self, key: CodeKey) -> Self {
        if key != self.code && !self.old_code.contains(&key) {
            self.old_code.push(key);
        }
        self
    }

    /// The key of new recovery- and mailed-code digests.
    #[must_use]
    pub fn code_key(&self) -> &CodeKey {
        &self.code
    }

    /// The older code keys that still check digests made under them.
    #[must_use]
    pub fn old_code_keys(&self) -> &[CodeKey] {
        &self.old_code
    }

    /// The key that names trusted-device cookies.
    #[must_use]
    pub fn cookie_key(&self) -> &CookieKey {
        &self.cookie
    }
}

impl fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("code_key_id", &self.code.id())
            .field(
                "old_code_key_ids",
                &self.old_code.iter().map(CodeKey::id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_test_case_3_shape() {
        // RFC 5869 A.3 (SHA-256, zero-length salt and info) through the same crate, and our
        // labels give distinct, stable keys.
        let ikm = [0x0bu8; 22];
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, &ikm);
        let mut okm = [0u8; 42];
        hk.expand(&[], &mut okm).unwrap();
        assert_eq!(
            crate::vocabulary::hex(&okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
        let secret = [1u8; 32];
        let labels = [
            label::CODE_HASHES,
            label::TICKETS,
            label::COOKIE_NAMES,
            label::SECRET_ENCRYPTION,
            label::RECORD_MAC,
        ];
        let keys: Vec<_> = labels.iter().map(|l| *derive(&secret, l)).collect();
        for (i, a) in keys.iter().enumerate() {
            assert_ne!(a, &secret);
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(*derive(&secret, label::TICKETS), keys[1]);
    }
}
