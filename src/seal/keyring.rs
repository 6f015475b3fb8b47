//! [`Keyring`]: XChaCha20-Poly1305 with host-supplied, rotatable keys (feature `seal`).

use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRng as _;
use rand::rngs::SysRng;
use zeroize::Zeroizing;

use super::{SealError, SealedSecret, SecretCipher};

/// The longest key id accepted (it is stored beside every ciphertext).
const MAX_KEY_ID: usize = 64;

/// A [`SecretCipher`]: XChaCha20-Poly1305 (random 192-bit nonces, so a key seals any number
/// of secrets without nonce bookkeeping) under 256-bit keys that you supply.
///
/// One key is current and seals; older keys added with [`with_old_key`](Self::with_old_key)
/// only open. Each ciphertext names its key's id, so rotating is: make the new key current,
/// keep the old one until every record was saved again, then drop it. Key bytes are
/// zeroized on drop and never printed.
///
/// ```
/// use twofactor::seal::{Keyring, SecretCipher};
///
/// let old = Keyring::new("2026-01", &[7u8; 32])?;
/// let sealed = old.seal(b"secret bytes", b"context")?;
///
/// let rotated = Keyring::new("2026-11", &[9u8; 32])?.with_old_key("2026-01", &[7u8; 32])?;
/// assert_eq!(&**rotated.open(&sealed, b"context")?, b"secret bytes");
/// assert_eq!(rotated.seal(b"x", b"c")?.key_id(), "2026-11");
/// assert!(rotated.open(&sealed, b"other context").is_err());
/// # Ok::<(), twofactor::seal::SealError>(())
/// ```
pub struct Keyring {
    current: usize,
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl Keyring {
    /// A keyring whose current key is `key` (exactly 32 bytes), named `key_id` (1 to 64
    /// printable ASCII characters, unique in the keyring).
    ///
    /// # Errors
    /// [`SealError::InvalidKey`] for a key of another length or an unusable id.
    pub fn new(key_id: &str, key: &[u8]) -> Result<Self, SealError> {
        Ok(Keyring {
            current: 0,
            keys: vec![(checked_id(key_id)?, cipher(key)?)],
        })
    }

    /// Adds a key that opens secrets sealed with it but seals nothing.
    ///
    /// # Errors
    /// As [`new`](Self::new), and for an id already in the keyring.
    pub fn with_old_key(mut self, key_id: &str, key: &[u8]) -> Result<Self, SealError> {
        let id = checked_id(key_id)?;
        if self.keys.iter().any(|(k, _)| *k == id) {
            return Err(SealError::InvalidKey("duplicate key id"));
        }
        self.keys.push((id, cipher(key)?));
        Ok(self)
    }

    /// 32 fresh bytes from the operating system's CSPRNG: a new key, to store in your secret
    /// manager.
    ///
    /// # Errors
    /// [`SealError::Rng`] if the operating system cannot supply randomness.
    pub fn random_key() -> Result<Zeroizing<[u8; 32]>, SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        SysRng
            .try_fill_bytes(&mut *key)
            .map_err(|_| SealError::Rng)?;
        Ok(key)
    }

    /// The id of the key that seals.
    #[must_use]
    pub fn current_key_id(&self) -> &str {
        &self.keys[self.current].0
    }
}

fn checked_id(key_id: &str) -> Result<String, SealError> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID {
        return Err(SealError::InvalidKey("key id must be 1 to 64 characters"));
    }
    if !key_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SealError::InvalidKey("key id must be printable ASCII"));
    }
    Ok(key_id.to_owned())
}

fn cipher(key: &[u8]) -> Result<XChaCha20Poly1305, SealError> {
    XChaCha20Poly1305::new_from_slice(key)
        .map_err(|_| SealError::InvalidKey("key must be 32 bytes"))
}

impl SecretCipher for Keyring {
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        let (id, cipher) = &self.keys[self.current];
        let mut nonce = [0u8; 24];
        SysRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| SealError::Rng)?;
        let payload = Payload {
            msg: plaintext,
            aad: associated_data,
        };
        let ciphertext = cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SealError::Malformed)?;
        Ok(SealedSecret::new(id.clone(), nonce.to_vec(), ciphertext))
    }

    fn open(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| id == sealed.key_id())
            .ok_or_else(|| SealError::UnknownKey {
                key_id: sealed.key_id().to_owned(),
            })?;
        let nonce: [u8; 24] = sealed
            .nonce()
            .try_into()
            .map_err(|_| SealError::Malformed)?;
        let payload = Payload {
            msg: sealed.ciphertext(),
            aad: associated_data,
        };
        cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| SealError::Authentication)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("current", &self.current_key_id())
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

/// Domain separation of the code keys derived from sealing keys.
const CODE_KEY_LABEL: &[u8] = b"twofactor code key v1";

impl Keyring {
    /// The [`CodeKey`](crate::account::CodeKey) for recovery and mailed codes, derived from
    /// the current sealing key, so a host that seals manages one secret. Give it to
    /// [`TwoFactorBuilder::code_key`](crate::service::TwoFactorBuilder::code_key).
    ///
    /// The derivation is XChaCha20-Poly1305 under the sealing key over 32 zero bytes, with a
    /// fixed nonce and associated data derived from a label, hashed with SHA-256: a PRF of
    /// the key, independent of every sealed secret (those use random 192-bit nonces). When the
    /// sealing key rotates, so does the code key: pass [`old_code_keys`](Self::old_code_keys)
    /// as old code keys until every user has regenerated their recovery codes.
    ///
    /// ```
    /// use twofactor::seal::Keyring;
    ///
    /// let keyring = Keyring::new("2026-01", &[7u8; 32])?;
    /// let key = keyring.code_key()?;
    /// assert_eq!(key.id(), Keyring::new("other-id", &[7u8; 32])?.code_key()?.id());
    /// assert_ne!(key.id(), Keyring::new("2026-01", &[8u8; 32])?.code_key()?.id());
    /// # Ok::<(), twofactor::seal::SealError>(())
    /// ```
    ///
    /// # Errors
    /// [`SealError::Malformed`] if the cipher fails (it does not for a 32-byte key).
    pub fn code_key(&self) -> Result<crate::account::CodeKey, SealError> {
        let (_, cipher) = self.keys.get(self.current).ok_or(SealError::Malformed)?;
        derive_code_key(cipher)
    }

    /// The code keys derived from the older sealing keys (those that only open), for
    /// [`TwoFactorBuilder::old_code_key`](crate::service::TwoFactorBuilder::old_code_key).
    ///
    /// # Errors
    /// As [`code_key`](Self::code_key).
    pub fn old_code_keys(&self) -> Result<Vec<crate::account::CodeKey>, SealError> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.current)
            .map(|(_, (_, cipher))| derive_code_key(cipher))
            .collect()
    }
}

fn derive_code_key(cipher: &XChaCha20Poly1305) -> Result<crate::account::CodeKey, SealError> {
    use sha2::{Digest as _, Sha256};
    let label = Sha256::digest(CODE_KEY_LABEL);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&label[..24]);
    let stream = Zeroizing::new(
        cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &[0u8; 32],
                    aad: CODE_KEY_LABEL,
                },
            )
            .map_err(|_| SealError::Malformed)?,
    );
    let mut h = Sha256::new();
    h.update(CODE_KEY_LABEL);
    h.update([0u8]);
    h.update(stream.as_slice());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&h.finalize());
    Ok(crate::account::CodeKey::from_bytes(&key))
}
