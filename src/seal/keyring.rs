//! [`Keyring`]: XChaCha20-Poly1305 with host-supplied, rotatable keys (feature `seal`).

use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRng as _;
use rand::rngs::SysRng;
use zeroize::Zeroizing;

use subtle::ConstantTimeEq as _;

use super::{RecordTag, SealError, SealedSecret, SecretCipher};
use crate::account::crypto::HmacKey;
use crate::account::{CodeKey, ServiceKeys, hkdf_derive, key_label};

/// One key of the ring: its id and everything derived from it. Each purpose has its own
/// subkey, `HKDF-SHA256(key, label)` (see [`crate::account::ServiceKeys`] for the salt and
/// labels); the `legacy_*` forms are what the keyring wrote before it derived subkeys, kept
/// to read (never to write) what exists.
#[derive(Clone)]
struct Key {
    id: String,
    /// Seals and opens: XChaCha20-Poly1305 under the secret-encryption subkey.
    cipher: XChaCha20Poly1305,
    /// Opens only: XChaCha20-Poly1305 under the raw key.
    legacy_cipher: XChaCha20Poly1305,
    /// Tags and verifies records: the record-MAC subkey, its HMAC pads absorbed once (a tag
    /// per save).
    mac: HmacKey,
    /// Verifies only: `HMAC-SHA-256(key, "twofactor/keyring/record-mac-key/v1")`.
    legacy_mac_key: Zeroizing<[u8; 32]>,
    /// The code-hash subkey (what `ServiceKeys::derive(key)` holds).
    code_key: CodeKey,
    /// `HMAC-SHA-256(key, "twofactor/keyring/code-key/v1")`: digests made under it still check.
    legacy_code_key: CodeKey,
}

/// The label of the legacy record-MAC key: `HMAC-SHA-256(key, label)`.
const LEGACY_MAC_KEY_LABEL: &[u8] = b"twofactor/keyring/record-mac-key/v1";

/// The label of the legacy code key: `HMAC-SHA-256(key, label)`.
const LEGACY_CODE_KEY_LABEL: &[u8] = b"twofactor/keyring/code-key/v1";

/// HMAC-SHA-256 of `message` under a 32-byte key (the crate's one implementation).
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(crate::account::crypto::hmac_sha256(key, &[message]))
}

/// The longest key id accepted (it is stored beside every ciphertext).
const MAX_KEY_ID: usize = 64;

/// A [`SecretCipher`]: XChaCha20-Poly1305 (random 192-bit nonces, so a key seals any number
/// of secrets without nonce bookkeeping) under 256-bit keys that you supply.
///
/// One key is current and seals; older keys added with [`with_old_key`](Self::with_old_key)
/// only open. Each ciphertext and record tag names its key's id, so rotating is: make the new
/// key current, keep the old one, [re-seal](super::reseal) the store, then drop the old key.
/// Key bytes are zeroized on drop and never printed.
///
/// # One key, a subkey per purpose
///
/// No key is used directly. Each ring key gives independent subkeys, `HKDF-SHA256(key,
/// label)` with the salt and labels of [`ServiceKeys`]:
///
/// | subkey | label | keys |
/// |---|---|---|
/// | secret encryption | `twofactor/v2/secret-encryption` | the XChaCha20-Poly1305 of TOTP secrets |
/// | record MAC | `twofactor/v2/record-mac` | the HMAC-SHA-256 record tags |
/// | code hashes, tickets and proofs, cookie names | as in [`ServiceKeys`] | [`service_keys`](Self::service_keys) |
///
/// # What exists keeps opening
///
/// Before subkeys, the keyring sealed secrets under the raw key, tagged records under
/// `HMAC-SHA-256(key, "twofactor/keyring/record-mac-key/v1")` and hashed codes under
/// `HMAC-SHA-256(key, "twofactor/keyring/code-key/v1")`. Those forms carry no marker of their
/// own (a ciphertext and a tag only name the ring key), so they are recognised by trying:
/// `open` tries the secret-encryption subkey, then the raw key; `verify_record` the
/// record-MAC subkey, then the legacy MAC key. A wrong key fails cleanly in both (the AEAD
/// tag and the MAC do not verify: passing the second try means forging Poly1305 or
/// HMAC-SHA-256 under a key of its own, no easier than the first), so
/// the second try accepts only what that key really made. A new record opens on the first
/// try. Code digests name their key by id, so [`service_keys`](Self::service_keys) simply
/// lists the legacy code keys as old ones. Nothing is ever written in a legacy form: the next
/// save, or [`reseal`](super::reseal), rewrites a record under the current subkeys.
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
///
/// [`ServiceKeys`]: crate::account::ServiceKeys
pub struct Keyring {
    current: usize,
    keys: Vec<Key>,
    /// The service keys of the current key (`ServiceKeys::derive(current key)`).
    service: ServiceKeys,
    /// Whether the legacy forms open and verify (always, except in [`Self::current_only`]).
    legacy: bool,
}

impl Keyring {
    /// A keyring whose current key is `key` (exactly 32 bytes), named `key_id` (1 to 64
    /// printable ASCII characters, unique in the keyring).
    ///
    /// # Errors
    /// [`SealError::InvalidKey`] for a key of another length or an unusable id.
    pub fn new(key_id: &str, key: &[u8]) -> Result<Self, SealError> {
        let first = new_key(key_id, key)?;
        let service =
            ServiceKeys::derive(key).map_err(|_| SealError::InvalidKey("key must be 32 bytes"))?;
        Ok(Keyring {
            current: 0,
            keys: vec![first],
            service,
            legacy: true,
        })
    }

    /// Adds a key that opens secrets sealed with it (and verifies records tagged with it) but
    /// seals and tags nothing.
    ///
    /// While it is in the ring, whoever holds it can still forge what the ring accepts (see
    /// the [threat model](crate::manual#keys-subkeys-and-re-sealing)): drop it once the
    /// store has been [re-sealed](super::reseal), at once if it leaked.
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

    /// The ids of every key in the ring, the current one first.
    #[must_use]
    pub fn key_ids(&self) -> Vec<&str> {
        let current = self.current_key_id();
        core::iter::once(current)
            .chain(
                self.keys
                    .iter()
                    .map(|k| k.id.as_str())
                    .filter(|id| *id != current),
            )
            .collect()
    }

    /// The keys a service needs ([`ServiceKeys`]), derived from the current ring key exactly
    /// as `ServiceKeys::derive(current key bytes)`: the same 32 bytes give the same code key,
    /// ticket key and cookie key whether a host derives them itself or through the keyring.
    ///
    /// Digests made before are kept checking: the old code keys are the code-hash subkeys of
    /// the older ring keys, then the legacy code keys (`HMAC-SHA-256(key,
    /// "twofactor/keyring/code-key/v1")`, what `Keyring::code_key` returned before) of every
    /// ring key, current first. New digests use the current subkey only. A key dropped from
    /// the ring takes its code keys with it: recovery codes hashed under them then fail closed
    /// ([`Error::UnknownCodeKey`](crate::service::Error::UnknownCodeKey)) until the user
    /// regenerates them ([`ResealReport::old_code_hashes`](super::ResealReport::old_code_hashes)
    /// lists who).
    ///
    /// ```
    /// use twofactor::account::ServiceKeys;
    /// use twofactor::seal::Keyring;
    ///
    /// let keyring = Keyring::new("2026-11", &[9u8; 32])?.with_old_key("2026-01", &[7u8; 32])?;
    /// let keys = keyring.service_keys();
    /// let direct = ServiceKeys::derive(&[9u8; 32])?;
    /// assert_eq!(keys.code_key(), direct.code_key());
    /// // The older key's subkey and both legacy code keys still check old digests.
    /// assert_eq!(keys.old_code_keys().len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn service_keys(&self) -> ServiceKeys {
        let older = self
            .keys
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.current)
            .map(|(_, k)| k.code_key.clone());
        let legacy = core::iter::once(&self.keys[self.current])
            .chain(
                self.keys
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != self.current)
                    .map(|(_, k)| k),
            )
            .map(|k| k.legacy_code_key.clone());
        older
            .chain(legacy)
            .fold(self.service.clone(), ServiceKeys::with_old_code_key)
    }

    fn key(&self, key_id: &str) -> Result<&Key, SealError> {
        self.keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| SealError::UnknownKey {
                key_id: key_id.to_owned(),
            })
    }

    /// A keyring that accepts only the current form: the current key alone, its subkeys
    /// alone (no legacy form). What it opens and verifies is up to date; what it refuses needs
    /// rewriting ([`reseal`](super::reseal)).
    pub(crate) fn current_only(&self) -> Keyring {
        Keyring {
            current: 0,
            keys: vec![self.keys[self.current].clone()],
            service: self.service.clone(),
            legacy: false,
        }
    }

    /// The code-hash subkey of the current key.
    pub(crate) fn current_code_key(&self) -> &CodeKey {
        &self.keys[self.current].code_key
    }
}

fn new_key(key_id: &str, key: &[u8]) -> Result<Key, SealError> {
    let id = checked_id(key_id)?;
    let key: &[u8; 32] = key
        .try_into()
        .map_err(|_| SealError::InvalidKey("key must be 32 bytes"))?;
    let encryption = hkdf_derive(key, key_label::SECRET_ENCRYPTION);
    Ok(Key {
        id,
        cipher: cipher(encryption.as_slice())?,
        legacy_cipher: cipher(key)?,
        mac: HmacKey::new(&hkdf_derive(key, key_label::RECORD_MAC)),
        legacy_mac_key: hmac_sha256(key, LEGACY_MAC_KEY_LABEL),
        code_key: CodeKey::from_bytes(&hkdf_derive(key, key_label::CODE_HASHES)),
        legacy_code_key: CodeKey::from_bytes(&hmac_sha256(key, LEGACY_CODE_KEY_LABEL)),
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

/// Opens `sealed` with one cipher.
fn decrypt(
    cipher: &XChaCha20Poly1305,
    sealed: &SealedSecret,
    associated_data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
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

/// Whether `tag` is the HMAC-SHA-256 of `message` under `mac_key` (constant time).
fn mac_matches(mac_key: &[u8; 32], tag: &RecordTag, message: &[u8]) -> bool {
    let expected = hmac_sha256(mac_key, message);
    bool::from(expected.as_slice().ct_eq(tag.tag()))
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

    /// The secret-encryption subkey first, then (a secret sealed before subkeys) the raw key.
    fn open(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let key = self.key(sealed.key_id())?;
        match decrypt(&key.cipher, sealed, associated_data) {
            Err(SealError::Authentication) if self.legacy => {
                decrypt(&key.legacy_cipher, sealed, associated_data)
            }
            other => other,
        }
    }

    fn open_with_form(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, bool), SealError> {
        let key = self.key(sealed.key_id())?;
        match decrypt(&key.cipher, sealed, associated_data) {
            Err(SealError::Authentication) if self.legacy => {
                decrypt(&key.legacy_cipher, sealed, associated_data).map(|p| (p, false))
            }
            other => other.map(|p| (p, true)),
        }
    }

    fn tag_record(&self, message: &[u8]) -> Result<RecordTag, SealError> {
        let key = &self.keys[self.current];
        let tag = Zeroizing::new(key.mac.mac(&[message]));
        Ok(RecordTag::new(key.id.clone(), tag.to_vec()))
    }

    /// The record-MAC subkey first, then (a record tagged before subkeys) the legacy MAC key.
    fn verify_record(&self, tag: &RecordTag, message: &[u8]) -> Result<(), SealError> {
        let key = self.key(tag.key_id())?;
        let expected = Zeroizing::new(key.mac.mac(&[message]));
        if bool::from(expected.as_slice().ct_eq(tag.tag()))
            || (self.legacy && mac_matches(&key.legacy_mac_key, tag, message))
        {
            Ok(())
        } else {
            Err(SealError::Authentication)
        }
    }

    /// A keyring's keys are fixed once it is built: its verdicts never change.
    fn cache_generation(&self) -> Option<u64> {
        Some(0)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current_key_id())
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
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
            let expected = reference.finalize().into_bytes();
            assert_eq!(&*hmac_sha256(&key, message), expected.as_slice());
            // The key with its pads absorbed once gives the same MAC, again and again, and
            // over the message in parts.
            let pre = HmacKey::new(&key);
            let (a, b) = message.split_at(message.len() / 2);
            for _ in 0..2 {
                assert_eq!(pre.mac(&[message]), expected.as_slice());
                assert_eq!(pre.mac(&[a, b]), expected.as_slice());
            }
        }
    }

    /// What the keyring wrote before subkeys: the raw key seals, `HMAC(key, v1 label)` tags.
    fn legacy_forms(
        key: &[u8; 32],
        id: &str,
        ad: &[u8],
        message: &[u8],
    ) -> (SealedSecret, RecordTag) {
        let nonce = [3u8; 24];
        let ct = cipher(key)
            .unwrap()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: b"legacy secret",
                    aad: ad,
                },
            )
            .unwrap();
        let mac_key = hmac_sha256(key, LEGACY_MAC_KEY_LABEL);
        let tag = RecordTag::new(id, hmac_sha256(&mac_key, message).to_vec());
        (SealedSecret::new(id, nonce.to_vec(), ct), tag)
    }

    #[test]
    fn every_purpose_has_its_own_hkdf_subkey_and_the_raw_key_seals_nothing() {
        let raw = [4u8; 32];
        let ring = Keyring::new("k", &raw).unwrap();
        let key = &ring.keys[0];
        assert_eq!(
            key.mac.mac(&[b"m"]),
            crate::account::crypto::hmac_sha256(&hkdf_derive(&raw, key_label::RECORD_MAC), &[b"m"])
        );
        assert_eq!(
            key.code_key,
            CodeKey::from_bytes(&hkdf_derive(&raw, key_label::CODE_HASHES))
        );
        // A new ciphertext opens under the secret-encryption subkey, not under the raw key.
        let sealed = ring.seal(b"s", b"ad").unwrap();
        let subkey = cipher(hkdf_derive(&raw, key_label::SECRET_ENCRYPTION).as_slice()).unwrap();
        assert_eq!(&*decrypt(&subkey, &sealed, b"ad").unwrap(), b"s");
        assert!(decrypt(&cipher(&raw).unwrap(), &sealed, b"ad").is_err());
        // A new tag is the HMAC under the record-MAC subkey, not under the legacy MAC key.
        let tag = ring.tag_record(b"m").unwrap();
        assert!(mac_matches(
            &hkdf_derive(&raw, key_label::RECORD_MAC),
            &tag,
            b"m"
        ));
        assert!(!mac_matches(&key.legacy_mac_key, &tag, b"m"));
        // Every derived key differs from the raw key and from each other.
        let all = [
            *hkdf_derive(&raw, key_label::RECORD_MAC),
            *key.legacy_mac_key,
            *key.code_key.expose_secret(),
            *key.legacy_code_key.expose_secret(),
            *hkdf_derive(&raw, key_label::SECRET_ENCRYPTION),
            *ring.service.ticket.0,
            *ring.service.cookie.0,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_ne!(a, &raw);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn legacy_forms_still_open_and_verify_but_are_not_current() {
        let raw = [5u8; 32];
        let (sealed, tag) = legacy_forms(&raw, "old", b"ad", b"record");
        for ring in [
            Keyring::new("old", &raw).unwrap(),
            Keyring::new("new", &[6; 32])
                .unwrap()
                .with_old_key("old", &raw)
                .unwrap(),
        ] {
            assert_eq!(&**ring.open(&sealed, b"ad").unwrap(), b"legacy secret");
            ring.verify_record(&tag, b"record").unwrap();
            let current = ring.current_only();
            assert!(current.open(&sealed, b"ad").is_err());
            assert!(current.verify_record(&tag, b"record").is_err());
            // The fallback authenticates like the first try: other data, other message fail.
            assert!(matches!(
                ring.open(&sealed, b"other"),
                Err(SealError::Authentication)
            ));
            assert!(matches!(
                ring.verify_record(&tag, b"recore"),
                Err(SealError::Authentication)
            ));
        }
        let ring = Keyring::new("old", &raw).unwrap();
        let fresh = ring.seal(b"x", b"ad").unwrap();
        let fresh_tag = ring.tag_record(b"record").unwrap();
        assert_eq!(&**ring.current_only().open(&fresh, b"ad").unwrap(), b"x");
        ring.current_only()
            .verify_record(&fresh_tag, b"record")
            .unwrap();
        // Under another key with the same id, nothing opens in either form.
        let impostor = Keyring::new("old", &[7; 32]).unwrap();
        assert!(impostor.open(&sealed, b"ad").is_err());
        assert!(impostor.verify_record(&tag, b"record").is_err());
        // The current key's forms are current only while it is current.
        let rotated = Keyring::new("new", &[6; 32])
            .unwrap()
            .with_old_key("old", &raw)
            .unwrap();
        assert_eq!(&**rotated.open(&fresh, b"ad").unwrap(), b"x");
        assert!(matches!(
            rotated.current_only().open(&fresh, b"ad"),
            Err(SealError::UnknownKey { .. })
        ));
        assert!(
            rotated
                .current_only()
                .verify_record(&fresh_tag, b"record")
                .is_err()
        );
    }

    #[test]
    fn service_keys_are_the_direct_derivation_plus_every_older_code_key() {
        let (current, old) = ([8u8; 32], [9u8; 32]);
        let direct = ServiceKeys::derive(&current).unwrap();
        let ring = Keyring::new("c", &current)
            .unwrap()
            .with_old_key("o", &old)
            .unwrap();
        let keys = ring.service_keys();
        assert_eq!(keys.code_key(), direct.code_key());
        assert_eq!(*keys.ticket.0, *direct.ticket.0);
        assert_eq!(*keys.cookie.0, *direct.cookie.0);
        let legacy = |k: &[u8; 32]| CodeKey::from_bytes(&hmac_sha256(k, LEGACY_CODE_KEY_LABEL));
        assert_eq!(
            keys.old_code_keys(),
            &[
                ServiceKeys::derive(&old).unwrap().code_key().clone(),
                legacy(&current),
                legacy(&old)
            ][..]
        );
        // A ring of one key: its legacy code key only.
        let single = Keyring::new("c", &current).unwrap().service_keys();
        assert_eq!(single.old_code_keys(), &[legacy(&current)][..]);
        assert_eq!(ring.key_ids(), ["c", "o"]);
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
