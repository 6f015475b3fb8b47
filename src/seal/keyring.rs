//! [`Keyring`]: XChaCha20-Poly1305 with host-supplied, rotatable keys (feature `seal`).

use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRng as _;
use rand::rngs::SysRng;
use zeroize::Zeroizing;

use subtle::ConstantTimeEq as _;

use super::{RecordTag, SealError, SealedSecret, SecretCipher};

/// One key of the ring: its id, the cipher, and the record-MAC key derived from it.
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
    mac_key: Zeroizing<[u8; 32]>,
    code_key: Zeroizing<[u8; 32]>,
}

/// The label of the record-MAC key derivation: `HMAC-SHA-256(key, label)`.
const MAC_KEY_LABEL: &[u8] = b"twofactor/keyring/record-mac-key/v1";

/// The label of the code-key derivation: `HMAC-SHA-256(key, label)`.
const CODE_KEY_LABEL: &[u8] = b"twofactor/keyring/code-key/v1";

/// HMAC-SHA-256 of `message` under a 32-byte key (the crate's one implementation).
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(crate::account::crypto::hmac_sha256(key, &[message]))
}

/// The longest key id accepted (it is stored beside every ciphertext).
const MAX_KEY_ID: usize = 64;

/// A [`SecretCipher`]: XChaCha20-Poly1305 (random 192-bit nonces, so a key seals any number
/// of secrets without nonce bookkeeping) under 256-bit keys that you supply.
///
/// Records are authenticated with HMAC-SHA-256 under a key derived from each key
/// (`HMAC-SHA-256(key, "twofactor/keyring/record-mac-key/v1")`), named by the same id.
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
    keys: Vec<Key>,
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
            keys: vec![new_key(key_id, key)?],
        })
    }

    /// Adds a key that opens secrets sealed with it but seals nothing.
    ///
    /// # Errors
    /// As [`new`](Self::new), and for an id already in the keyring.
    pub fn with_old_key(mut self, key_id: &str, key: &[u8]) -> Result<Self, SealError> {
        let key = new_key(key_id, key)?;
        if self.keys.iter().any(|k| k.id == key.id) {
            return Err(SealError::InvalidKey("duplicate key id"));
        }
        self.keys.push(key);
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
        &self.keys[self.current].id
    }

    fn key(&self, key_id: &str) -> Result<&Key, SealError> {
        self.keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| SealError::UnknownKey {
                key_id: key_id.to_owned(),
            })
    }
}

fn new_key(key_id: &str, key: &[u8]) -> Result<Key, SealError> {
    let id = checked_id(key_id)?;
    let cipher = cipher(key)?;
    let key: &[u8; 32] = key
        .try_into()
        .map_err(|_| SealError::InvalidKey("key must be 32 bytes"))?;
    Ok(Key {
        id,
        cipher,
        mac_key: hmac_sha256(key, MAC_KEY_LABEL),
        code_key: hmac_sha256(key, CODE_KEY_LABEL),
    })
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
        let Key { id, cipher, .. } = &self.keys[self.current];
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
        let cipher = &self.key(sealed.key_id())?.cipher;
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

    fn tag_record(&self, message: &[u8]) -> Result<RecordTag, SealError> {
        let key = &self.keys[self.current];
        let tag = hmac_sha256(&key.mac_key, message);
        Ok(RecordTag::new(key.id.clone(), tag.to_vec()))
    }

    fn verify_record(&self, tag: &RecordTag, message: &[u8]) -> Result<(), SealError> {
        let key = self.key(tag.key_id())?;
        let expected = hmac_sha256(&key.mac_key, message);
        if bool::from(expected.as_slice().ct_eq(tag.tag())) {
            Ok(())
        } else {
            Err(SealError::Authentication)
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("current", &self.current_key_id())
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The [`CodeKey`](crate::account::CodeKey) for recovery and mailed codes, derived from
    /// the current sealing key, so a host that seals manages one secret. Give it to
    /// [`TwoFactorBuilder::code_key`](crate::service::TwoFactorBuilder::code_key).
    ///
    /// The derivation is `HMAC-SHA-256(key, "twofactor/keyring/code-key/v1")`, as for the
    /// record-MAC key under another label: independent of it and of every sealed secret. When
    /// the sealing key rotates, so does the code key: pass [`old_code_keys`](Self::old_code_keys)
    /// as old code keys until every user has regenerated their recovery codes.
    ///
    /// ```
    /// use twofactor::seal::Keyring;
    ///
    /// let keyring = Keyring::new("2026-01", &[7u8; 32])?;
    /// let key = keyring.code_key();
    /// assert_eq!(key.id(), Keyring::new("other-id", &[7u8; 32])?.code_key().id());
    /// assert_ne!(key.id(), Keyring::new("2026-01", &[8u8; 32])?.code_key().id());
    /// # Ok::<(), twofactor::seal::SealError>(())
    /// ```
    #[must_use]
    pub fn code_key(&self) -> crate::account::CodeKey {
        crate::account::CodeKey::from_bytes(&self.keys[self.current].code_key)
    }

    /// The code keys derived from the older sealing keys (those that only open), for
    /// [`TwoFactorBuilder::old_code_key`](crate::service::TwoFactorBuilder::old_code_key).
    #[must_use]
    pub fn old_code_keys(&self) -> Vec<crate::account::CodeKey> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.current)
            .map(|(_, k)| crate::account::CodeKey::from_bytes(&k.code_key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2_shape_and_the_reference_crate() {
        use hmac::{KeyInit as _, Mac as _};
        let key = [0x0bu8; 32];
        for message in [&b""[..], b"Hi There", &[0xa5; 200][..]] {
            let mut reference = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
            reference.update(message);
            assert_eq!(
                &*hmac_sha256(&key, message),
                reference.finalize().into_bytes().as_slice()
            );
        }
    }

    #[test]
    fn record_tags_verify_across_rotation_and_refuse_changes() {
        let old = Keyring::new("a", &[1; 32]).unwrap();
        let tag = old.tag_record(b"record").unwrap();
        assert_eq!(tag.key_id(), "a");
        old.verify_record(&tag, b"record").unwrap();
        assert!(matches!(
            old.verify_record(&tag, b"recore"),
            Err(SealError::Authentication)
        ));
        let rotated = Keyring::new("b", &[2; 32])
            .unwrap()
            .with_old_key("a", &[1; 32])
            .unwrap();
        rotated.verify_record(&tag, b"record").unwrap();
        assert_eq!(rotated.tag_record(b"record").unwrap().key_id(), "b");
        // Same id, other key bytes: refused.
        let impostor = Keyring::new("a", &[3; 32]).unwrap();
        assert!(impostor.verify_record(&tag, b"record").is_err());
        // A forged tag naming an unknown key.
        let forged = RecordTag::new("zz", tag.tag().to_vec());
        assert!(matches!(
            rotated.verify_record(&forged, b"record"),
            Err(SealError::UnknownKey { .. })
        ));
        // A truncated tag.
        let short = RecordTag::new("a", tag.tag()[..16].to_vec());
        assert!(old.verify_record(&short, b"record").is_err());
    }
}
