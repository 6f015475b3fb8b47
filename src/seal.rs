//! Encryption at rest of the TOTP secrets in stored records, and authentication of the whole
//! record.
//!
//! A [`TwoFactorRecord`] holds the user's TOTP secret: whoever reads the table (a leaked
//! backup, an analytics replica, an SQL injection elsewhere in the app) can compute that
//! user's codes. Wrap your store in a [`SealedStore`] and the secrets are encrypted before
//! they reach it and decrypted when they are loaded; everything else in the record (hashes,
//! counters, timestamps) stays readable, but is authenticated: see below.
//!
//! - The cipher is yours to choose through [`SecretCipher`]: [`Keyring`] (feature `seal`) is
//!   XChaCha20-Poly1305 with keys you supply and rotate; or implement the trait over your KMS
//!   or HSM.
//! - Every sealed secret is bound to its user and to its slot (an authenticator's, or the
//!   pending enrollment's) as associated data: a ciphertext copied into another user's row
//!   does not open. The authenticators of one user share a slot (so the secret of a row written
//!   before there were several still opens); one moved to another authenticator of the same
//!   row is caught by the record tag below.
//! - A record whose secret is still in the clear (written before sealing was turned on) is
//!   **refused** on load by default, so that someone who can write the table cannot plant a
//!   secret of their own choosing. While migrating, [`SealedStore::accept_unsealed`] lets such
//!   records through; each is sealed by its next save.
//! - The whole record is authenticated: every save writes a tag (`"mac"`, made with
//!   [`SecretCipher::tag_record`]) over the canonical encoding of the record, bound to the
//!   user id and to the version the save creates; every load checks it first. The record is
//!   encoded once per save, and that encoding is what the store writes
//!   ([`UserStore::save_encoded`]); a store that keeps the text (the memory and SQL stores)
//!   hands it back ([`UserStore::load_encoded`]) and the tag is checked over those bytes as
//!   they are, so a row in any other spelling is refused too. Over a store with only `load`
//!   and `save`, the loaded record is encoded again to check its tag. A row changed
//!   in the table (a planted trusted device or recovery code, cleared throttle counters, an
//!   older secret written back), copied from another user or moved to another version is
//!   refused ([`SealedStoreError::Tampered`]); a row without a tag is refused
//!   ([`SealedStoreError::Untagged`]). Only rows that never had a tag can be let through
//!   while migrating: format-1 rows (written before tags existed) with
//!   [`SealedStore::accept_untagged`], and a bare store's rows (nothing sealed in them) with
//!   [`SealedStore::accept_unsealed`]. A tag removed from a later row is refused whatever
//!   is on. Each row let through is tagged by its next save, or by [`reseal`]. The inner
//!   store must number versions 1, 2, 3... as
//!   [`UserStore::save`] specifies. A whole row rolled back to an older state it really had,
//!   version included, cannot be detected from the table alone: see the
//!   [threat model](crate::manual#threat-model-who-reads-and-who-writes-the-table).
//! - Each `SealedStore` remembers the last row it checked or wrote per user, with its
//!   secrets opened: a load of exactly those bytes at exactly that version skips the tag check
//!   and the decryption, and anything else is checked as always
//!   ([`SealedStore::cache_capacity`], and the
//!   [manual](crate::manual#the-sealed-stores-cache-of-opened-rows) for why it is sound).
//! - Without the cipher (a [`TwoFactor`](crate::TwoFactor) on the bare store), a sealed
//!   secret is never mistaken for "no 2FA": the operations that need it fail with
//!   [`Error::SecretSealed`](crate::Error::SecretSealed).
//!
//! ```
//! # #[cfg(feature = "seal")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use twofactor::seal::{Keyring, SealedStore};
//! use twofactor::MemoryStore;
//!
//! // 32 bytes from your secret manager; the id is stored beside every ciphertext.
//! let key = Keyring::random_key()?;
//! let keyring = Keyring::new("2026-11", &*key)?;
//! let store = SealedStore::new(MemoryStore::new(), keyring);
//! // Pass `store` to `TwoFactor::builder` as any other store.
//! # let _ = store;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "seal"))]
//! # fn main() {}
//! ```
//!
//! Key rotation: build the keyring with the new key as current and the old ones added with
//! [`Keyring::with_old_key`]; records open with whichever key sealed them and are sealed with
//! the current key on their next save. [`reseal`] rewrites every record of a store under the
//! current key at once, after which the old key can be dropped from the ring (at once if it
//! leaked: while it is in the ring, whoever holds it can forge records the ring accepts).
// Without `serde` there is no canonical record encoding to authenticate, so `SealedStore`
// implements `UserStore` only with it; the helpers below are then unused.
#![cfg_attr(not(feature = "serde"), allow(dead_code, unused_imports))]

use core::fmt;

use std::sync::Arc;

use crate::account::TwoFactorRecord;
use crate::otp::Secret;
#[cfg(feature = "serde")]
use crate::store::{Loaded, codec::EncodedRecord};
use crate::store::{SaveOutcome, UserStore, Version, Versioned};
use crate::vocabulary::{BoxError, UserId};
use crate::vocabulary::{OpenedFrom, SecretSlot};
/// Defined in [`crate::vocabulary`] (a record holds them); reachable here too.
pub use crate::vocabulary::{RecordTag, SealedSecret};

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// No key with this id is in the keyring: it was removed before every record sealed
    /// with it was re-sealed.
    #[error("no key with id {key_id:?} in the keyring")]
    UnknownKey {
        /// The id stored with the ciphertext.
        key_id: String,
    },
    /// The ciphertext did not authenticate: a wrong key under the right id, a tampered row,
    /// or a ciphertext copied from another user's row or slot.
    #[error("sealed secret failed authentication")]
    Authentication,
    /// The stored value has the wrong shape (nonce length, a ciphertext too short), or the
    /// opened bytes are no valid secret.
    #[error("sealed secret is malformed")]
    Malformed,
    /// A key id or key that cannot be used (empty or overlong id, a key of the wrong length).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The random number generator failed (no nonce): nothing was sealed.
    #[error("the random number generator failed")]
    Rng,
    /// Any other failure of a [`SecretCipher`] implementation (a KMS or HSM call).
    #[error("secret cipher failed")]
    Cipher(#[source] BoxError),
}

/// Encrypts and decrypts TOTP secrets for [`SealedStore`]: authenticated encryption with
/// associated data. Implement it over your KMS or HSM, or use [`Keyring`] (feature `seal`).
///
/// `seal` must use a fresh nonce every call, and `open` must refuse a ciphertext whose
/// associated data differs from the one it was sealed with. [`SealedStore`] seals a secret
/// when it is new, and keeps the ciphertext of a secret that did not change since it was
/// loaded (bound to the same user and slot) as long as that ciphertext names the key id of
/// the tags [`tag_record`](Self::tag_record) makes now: name the MAC key like the encryption
/// key it rotates with, as [`Keyring`] does, or every save seals again.
///
/// `tag_record` and `verify_record` authenticate the whole stored record (a MAC: HMAC-SHA-256
/// in [`Keyring`]). Use a key that does nothing else (derive it from, or keep it beside, the
/// encryption key, and rotate it with it); name it in the [`RecordTag`] so that records
/// tagged before a rotation still verify. A KMS maps them onto its MAC operations (AWS KMS
/// `GenerateMac`/`VerifyMac`, Google Cloud KMS `MacSign`/`MacVerify`), an HSM onto
/// `C_Sign`/`C_Verify` with an HMAC key. Both are required: a cipher that cannot
/// authenticate records cannot protect them.
pub trait SecretCipher: Send + Sync {
    /// Encrypts `plaintext` bound to `associated_data`.
    ///
    /// # Errors
    /// [`SealError`]; nothing is written when sealing fails.
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError>;

    /// Decrypts `sealed`, checking `associated_data`.
    ///
    /// # Errors
    /// [`SealError::Authentication`] for a wrong key, tampering or other associated data;
    /// [`SealError::UnknownKey`] for a key id it does not hold.
    fn open(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError>;

    /// [`open`](Self::open), also saying whether the ciphertext is in the form this cipher
    /// seals now (`true`), or an older one it still reads (`false`: a [`Keyring`] ciphertext
    /// made under the raw key before subkeys). Only a ciphertext in the current form is written
    /// back unchanged by a save; an older one is sealed again. The default is `open` and
    /// `true`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    fn open_with_form(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<(zeroize::Zeroizing<Vec<u8>>, bool), SealError> {
        self.open(sealed, associated_data).map(|p| (p, true))
    }

    /// Computes a tag over `message` (a canonical encoded record, bound to its user and
    /// version by [`SealedStore`]) with the current MAC key.
    ///
    /// # Errors
    /// [`SealError`]; nothing is written when tagging fails.
    fn tag_record(&self, message: &[u8]) -> Result<RecordTag, SealError>;

    /// Checks `tag` over `message` with the key it names, in constant time.
    ///
    /// # Errors
    /// [`SealError::Authentication`] when the tag does not match; [`SealError::UnknownKey`]
    /// for a key id it does not hold.
    fn verify_record(&self, tag: &RecordTag, message: &[u8]) -> Result<(), SealError>;

    /// Whether, and for how long, a [`SealedStore`] may remember what this cipher said about a
    /// stored row (that its tag verified, and what its secrets opened to), to answer a load of
    /// exactly the same bytes without asking again (see [`SealedStore::cache_capacity`]).
    ///
    /// `Some(g)` promises that as long as this returns the same `g`, the verdicts do not
    /// change: a tag that verified still verifies, a ciphertext still opens to the same secret.
    /// A cipher that can withdraw or replace a key at run time returns another `g` from then
    /// on, and every row is checked and opened again. `None` (the default): nothing is
    /// remembered, every load checks the tag and opens the secrets. [`Keyring`] is fixed once
    /// built and returns `Some(0)`.
    fn cache_generation(&self) -> Option<u64> {
        None
    }
}

impl<C: SecretCipher + ?Sized> SecretCipher for std::sync::Arc<C> {
    fn open_with_form(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<(zeroize::Zeroizing<Vec<u8>>, bool), SealError> {
        (**self).open_with_form(sealed, associated_data)
    }
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        (**self).seal(plaintext, associated_data)
    }
    fn open(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError> {
        (**self).open(sealed, associated_data)
    }
    fn tag_record(&self, message: &[u8]) -> Result<RecordTag, SealError> {
        (**self).tag_record(message)
    }
    fn verify_record(&self, tag: &RecordTag, message: &[u8]) -> Result<(), SealError> {
        (**self).verify_record(tag, message)
    }
    fn cache_generation(&self) -> Option<u64> {
        (**self).cache_generation()
    }
}

/// Where a secret sits in a record: part of the associated data, so that a ciphertext cannot
/// be moved between the active and the pending slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Active,
    Pending,
}

/// `twofactor/secret/v1 \0 slot \0 user id`.
fn associated_data(user: &UserId, slot: Slot) -> Vec<u8> {
    let [domain, slot, user] = associated_data_parts(user, slot);
    let mut ad = Vec::with_capacity(domain.len() + slot.len() + user.len());
    for part in [domain, slot, user] {
        ad.extend_from_slice(part);
    }
    ad
}

/// [`associated_data`] in its three parts: `twofactor/secret/v1 \0`, `slot \0`, the user id.
fn associated_data_parts(user: &UserId, slot: Slot) -> [&[u8]; 3] {
    let slot: &[u8] = match slot {
        Slot::Active => b"active\0",
        Slot::Pending => b"pending\0",
    };
    [b"twofactor/secret/v1\0", slot, user.as_str().as_bytes()]
}

/// Whether `ad` is the [`associated_data`] of `user` and `slot` (without building it).
fn is_associated_data(ad: &[u8], user: &UserId, slot: Slot) -> bool {
    let mut rest = ad;
    for part in associated_data_parts(user, slot) {
        match rest.strip_prefix(part) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Sealing and opening live here, with the cipher; the slot itself is shared vocabulary.
impl SecretSlot {
    /// Seals the secret of this slot. A secret opened on load ([`SecretSlot::Opened`]) keeps
    /// the ciphertext it was opened from when `keep` is on and that ciphertext was opened
    /// under this user and slot; any other is sealed with a fresh nonce. Returns whether the
    /// ciphertext was kept.
    fn seal(
        &mut self,
        cipher: &dyn SecretCipher,
        user: &UserId,
        slot: Slot,
        keep: bool,
    ) -> Result<bool, SealError> {
        let sealed = match self {
            SecretSlot::Sealed(_) => return Ok(false),
            SecretSlot::Opened(_, from)
                if keep && is_associated_data(&from.associated_data, user, slot) =>
            {
                *self = SecretSlot::Sealed(from.sealed.clone());
                return Ok(true);
            }
            SecretSlot::Open(secret) | SecretSlot::Opened(secret, _) => {
                cipher.seal(secret.expose_secret(), &associated_data(user, slot))?
            }
        };
        *self = SecretSlot::Sealed(sealed);
        Ok(false)
    }

    /// Opens a sealed secret, remembering what it was opened from (see [`Self::seal`]).
    fn unseal(
        &mut self,
        cipher: &dyn SecretCipher,
        user: &UserId,
        slot: Slot,
    ) -> Result<(), SealError> {
        if let SecretSlot::Sealed(sealed) = self {
            let associated_data = associated_data(user, slot);
            let (bytes, current_form) = cipher.open_with_form(sealed, &associated_data)?;
            let secret = Secret::from_bytes(bytes.to_vec()).map_err(|_| SealError::Malformed)?;
            // Moved out (an empty placeholder allocates nothing), not copied.
            let sealed = core::mem::replace(sealed, SealedSecret::new("", Vec::new(), Vec::new()));
            if !current_form {
                // An older form (read, never written back): the next save seals it again.
                *self = SecretSlot::Open(secret);
                return Ok(());
            }
            let from = OpenedFrom {
                sealed,
                associated_data,
            };
            *self = SecretSlot::Opened(secret, Arc::new(from));
        }
        Ok(())
    }

    /// The key id of a sealed secret.
    fn sealed_key_id(&self) -> Option<&str> {
        match self {
            SecretSlot::Sealed(sealed) => Some(sealed.key_id()),
            SecretSlot::Open(_) | SecretSlot::Opened(..) => None,
        }
    }
}

impl TwoFactorRecord {
    /// Applies `f` to every secret slot of the record (every authenticator's, then the
    /// pending one), with its slot and its position in that order.
    fn each_secret(
        &mut self,
        mut f: impl FnMut(&mut SecretSlot, Slot, usize) -> Result<(), SealError>,
    ) -> Result<(), SealError> {
        let mut i = 0;
        for a in &mut self.authenticators {
            // A security key holds no secret (its public key is covered by the record tag).
            let crate::account::AuthenticatorFactor::Totp(t) = &mut a.factor else {
                continue;
            };
            f(&mut t.secret, Slot::Active, i)?;
            i += 1;
        }
        if let Some(pending) = self.pending.as_mut() {
            f(&mut pending.secret, Slot::Pending, i)?;
        }
        Ok(())
    }

    /// The record's secret slots (every authenticator's, then the pending one), with their
    /// slot, in the order of [`each_secret`](Self::each_secret).
    fn secrets(&self) -> impl Iterator<Item = (Slot, &SecretSlot)> {
        self.authenticators
            .iter()
            .filter_map(|a| a.totp_factor())
            .map(|t| (Slot::Active, &t.secret))
            .chain(self.pending.as_ref().map(|p| (Slot::Pending, &p.secret)))
    }

    /// Whether a secret of this record is sealed (it must be opened by a [`SealedStore`]
    /// before a code can be checked).
    #[must_use]
    pub fn has_sealed_secret(&self) -> bool {
        self.secrets().any(|(_, s)| s.is_sealed())
    }

    /// Whether a secret of this record is in the clear.
    fn has_open_secret(&self) -> bool {
        self.secrets().any(|(_, s)| !s.is_sealed())
    }

    /// Whether a secret whose ciphertext was kept (`kept`, by position) is sealed under
    /// another key than `key_id`, the key that tags the record now.
    fn kept_under_another_key(&self, kept: &[bool], key_id: &str) -> bool {
        self.secrets()
            .enumerate()
            .any(|(i, (_, s))| kept.get(i) == Some(&true) && s.sealed_key_id() != Some(key_id))
    }

    /// The record's secret slots, as they are, in the order of
    /// [`each_secret`](Self::each_secret) (for the cache of opened rows).
    fn opened_secrets(&self) -> Vec<SecretSlot> {
        self.secrets().map(|(_, s)| s.clone()).collect()
    }

    /// Puts `secrets` (in the order of [`each_secret`](Self::each_secret)) in place of this
    /// freshly decoded record's sealed ones, and drops its tag: the record as a load returns
    /// it. `false`, and the record unchanged, if the slots do not line up (not expected: the
    /// secrets were opened from the same text).
    fn put_opened(&mut self, secrets: Vec<SecretSlot>) -> bool {
        if self.secrets().count() != secrets.len() || !self.secrets().all(|(_, s)| s.is_sealed()) {
            return false;
        }
        let mut opened = secrets.into_iter();
        let put = self.each_secret(|mine, _, _| {
            if let Some(secret) = opened.next() {
                *mine = secret;
            }
            Ok(())
        });
        debug_assert!(put.is_ok());
        self.mac = None;
        true
    }
}

/// The start of what a record tag covers: `twofactor/record/v1 \0`, the user id
/// (length-prefixed) and the record's store version (so a row cannot be moved to another
/// user or another version). The canonical encoding of the record without its tag follows.
fn tag_prefix(message: &mut Vec<u8>, user: &UserId, version: Version) {
    let user = user.as_str().as_bytes();
    message.extend_from_slice(b"twofactor/record/v1\0");
    message.extend_from_slice(&(user.len() as u64).to_be_bytes());
    message.extend_from_slice(user);
    message.extend_from_slice(&version.0.to_be_bytes());
}

/// How the canonical encoding of a record without a tag ends: its last field is
/// `"mac":null`. A tagged record's encoding is the same bytes with the tag in place of
/// `null`.
#[cfg(feature = "serde")]
const UNTAGGED_END: &[u8] = b"\"mac\":null}";

/// Room for a record and the prefix without growing the buffer: 1.7 KB with ten recovery
/// codes, up to about 4 KB with a full list of used login tickets (32).
#[cfg(feature = "serde")]
const MESSAGE_CAPACITY: usize = 4608;

/// Buffers above this are not kept between saves (see [`with_scratch`]).
#[cfg(feature = "serde")]
const SCRATCH_KEPT: usize = 64 * 1024;

#[cfg(feature = "serde")]
std::thread_local! {
    /// The buffer a save encodes the record into, kept between saves on this thread so that a
    /// save allocates only the stored text. It holds the sealed encoding (ciphertexts,
    /// digests, counters), never a secret in the clear.
    static SCRATCH: core::cell::Cell<Vec<u8>> = const { core::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, taken out meanwhile (so a nested call gets a
/// new one), and put back empty unless it grew above [`SCRATCH_KEPT`].
#[cfg(feature = "serde")]
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buffer = SCRATCH.try_with(core::cell::Cell::take).unwrap_or_default();
    let out = f(&mut buffer);
    if buffer.capacity() <= SCRATCH_KEPT {
        buffer.clear();
        // Gone only while the thread exits: the buffer is dropped then.
        let _ = SCRATCH.try_with(|cell| cell.set(buffer));
    }
    out
}

/// Writes what a record tag covers into `message` (emptied first): [`tag_prefix`], then the
/// canonical encoding of `record`, which carries no tag. Returns where the encoding starts.
#[cfg(feature = "serde")]
fn tagged_message(
    message: &mut Vec<u8>,
    user: &UserId,
    version: Version,
    record: &TwoFactorRecord,
) -> Result<usize, SealError> {
    debug_assert!(record.mac.is_none());
    message.clear();
    message.reserve(MESSAGE_CAPACITY);
    tag_prefix(message, user, version);
    let start = message.len();
    crate::store::compact::write_or_serde_json(message, record)
        .map_err(|err| SealError::Cipher(Box::new(err)))?;
    Ok(start)
}

/// What the record tag `tag` of stored `text` covers, built from the stored bytes without
/// encoding the record again. A record this crate stored is the canonical encoding with the
/// tag as its last field: `text` is `<body>"mac":<tag>}` and the tag covers
/// `<body>"mac":null}`. Text that does not end with this tag (any other shape, or a
/// non-canonical one) is refused as [`SealError::Authentication`].
#[cfg(feature = "serde")]
fn stored_message(
    user: &UserId,
    version: Version,
    text: &str,
    tag: &RecordTag,
) -> Result<Vec<u8>, SealError> {
    let tag_json = serde_json::to_vec(tag).map_err(|err| SealError::Cipher(Box::new(err)))?;
    let body = text
        .as_bytes()
        .strip_suffix(b"}")
        .and_then(|t| t.strip_suffix(tag_json.as_slice()))
        .and_then(|t| t.strip_suffix(&UNTAGGED_END[..UNTAGGED_END.len() - 5]))
        .ok_or(SealError::Authentication)?;
    let mut message = Vec::with_capacity(MESSAGE_CAPACITY.max(body.len() + 128));
    tag_prefix(&mut message, user, version);
    message.extend_from_slice(body);
    message.extend_from_slice(UNTAGGED_END);
    Ok(message)
}

/// The stored text of a record whose tag `tag` was made over `message` ([`tagged_message`],
/// the encoding starting at `start`): the same encoding with the tag in place of `null`,
/// exactly what [`encode_record`](crate::store::codec::encode_record) gives for the record
/// with its tag. `message` is left holding the prefix and that text.
#[cfg(feature = "serde")]
fn tagged_text(
    message: &mut Vec<u8>,
    start: usize,
    tag: &RecordTag,
) -> Result<Arc<str>, SealError> {
    let encode_error = |err: serde_json::Error| SealError::Cipher(Box::new(err));
    if !message.ends_with(UNTAGGED_END) {
        return Err(SealError::Malformed);
    }
    message.truncate(message.len() - 5);
    crate::store::compact::write_or_serde_json(message, tag).map_err(encode_error)?;
    message.push(b'}');
    let text = message.get(start..).ok_or(SealError::Malformed)?;
    let text = core::str::from_utf8(text).map_err(|err| SealError::Cipher(Box::new(err)))?;
    Ok(Arc::from(text))
}

/// A [`UserStore`] that seals the TOTP secrets of every record it saves and opens them on
/// load, and authenticates the whole record, over any other store. See the
/// [module documentation](self).
pub struct SealedStore<S, C> {
    inner: S,
    cipher: C,
    accept_unsealed: bool,
    accept_untagged: bool,
    opened: OpenedCache,
}

/// How many users' last authenticated rows a [`SealedStore`] remembers by default (see
/// [`SealedStore::cache_capacity`]).
pub const DEFAULT_OPENED_CACHE_CAPACITY: usize = 10_000;

/// What a [`SealedStore`] knows of one user's stored row: the version and the exact text
/// whose tag it checked (or that it wrote itself), the [`SecretCipher::cache_generation`]
/// they were checked under, and that row's secrets as a load opens them (by [`Slot`]).
struct CachedRow {
    version: Version,
    generation: u64,
    /// Shared with the store that keeps it, where it does (the memory store).
    text: Arc<str>,
    secrets: Vec<SecretSlot>,
}

/// A bounded map from user to the last row this store authenticated or wrote (see
/// [`SealedStore::cache_capacity`]). Evicted and replaced entries are dropped outside the
/// lock; their secrets are zeroized on drop ([`Secret`] is `ZeroizeOnDrop`). No `Debug`: it
/// holds opened secrets.
struct OpenedCache {
    capacity: usize,
    entries: std::sync::Mutex<std::collections::HashMap<UserId, CachedRow>>,
}

impl OpenedCache {
    fn new(capacity: usize) -> Self {
        OpenedCache {
            capacity,
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<UserId, CachedRow>> {
        // The map holds no invariant a panic could break half-way.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The opened secrets of `user`'s row if this store authenticated or wrote exactly `text`
    /// at exactly `version`, under cipher generation `generation`.
    fn get(
        &self,
        user: &UserId,
        version: Version,
        text: &Arc<str>,
        generation: u64,
    ) -> Option<Vec<SecretSlot>> {
        if self.capacity == 0 {
            return None;
        }
        let map = self.lock();
        let cached = map.get(user)?;
        // The same allocation (a memory store handing back what this store gave it) is the
        // same bytes; otherwise every byte is compared.
        let same_text = Arc::ptr_eq(&cached.text, text) || *cached.text == **text;
        (cached.version == version && cached.generation == generation && same_text)
            .then(|| cached.secrets.clone())
    }

    /// Keeps `entry` for `user`, within the capacity (when full, an arbitrary other entry goes).
    fn put(&self, user: &UserId, entry: CachedRow) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.lock();
        // Replaced in place when the user has an entry (the common case: a login's save).
        if let Some(slot) = map.get_mut(user) {
            let replaced = core::mem::replace(slot, entry);
            drop(map);
            drop(replaced);
            return;
        }
        let mut evicted = None;
        if map.len() >= self.capacity
            && let Some(victim) = map.keys().next().cloned()
        {
            evicted = map.remove(&victim);
        }
        map.insert(user.clone(), entry);
        drop(map);
        drop(evicted);
    }

    /// Forgets the entry of `user`.
    fn remove(&self, user: &UserId) {
        if self.capacity == 0 {
            return;
        }
        let removed = self.lock().remove(user);
        drop(removed);
    }

    /// How many users have an entry.
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl<S, C> SealedStore<S, C> {
    /// Wraps `inner`; secrets are sealed and opened with `cipher`. Records with a secret in
    /// the clear are refused on load ([`SealedStoreError::Unsealed`]).
    pub fn new(inner: S, cipher: C) -> Self {
        SealedStore {
            inner,
            cipher,
            accept_unsealed: false,
            accept_untagged: false,
            opened: OpenedCache::new(DEFAULT_OPENED_CACHE_CAPACITY),
        }
    }

    /// How many users' last authenticated rows this store remembers (default
    /// [`DEFAULT_OPENED_CACHE_CAPACITY`]; `0` turns the cache off).
    ///
    /// For each user, the store remembers the row it last checked and opened or wrote: its
    /// version, its exact stored text, and its secrets opened. A load whose inner store hands
    /// back the stored text ([`UserStore::load_encoded`]: the memory and SQL stores) at that
    /// version with those very bytes takes the secrets from the cache instead of checking the
    /// tag and opening them again; the rest of the record is decoded from the text the store
    /// returned, as always. This store authenticated (or produced) those bytes before, and a
    /// row's tag binds its user and version: the answer is the one a full check would give.
    /// Any other text or version (a row edited, rolled to another version or back to an older
    /// one, or written by another server) is checked and opened as always, and replaces the
    /// entry. Only rows whose tag was checked are remembered (never a row let through
    /// untagged while migrating), and changing [`accept_untagged`](Self::accept_untagged) or
    /// [`accept_unsealed`](Self::accept_unsealed) empties the cache.
    ///
    /// The cache trusts the cipher's word that its verdicts still stand
    /// ([`SecretCipher::cache_generation`]): a [`Keyring`] is fixed once built (a key
    /// rotation is a new keyring, so a new `SealedStore` with a cache of its own); a cipher
    /// that can withdraw a key at run time changes its generation, and with the trait's
    /// default (`None`) nothing is cached.
    ///
    /// An entry holds the stored text (1.5 to 4 KB for a typical record) and the opened
    /// secrets, in memory in the clear as they already are in the service's login snapshots
    /// ([`login_snapshot_capacity`]): no new kind of exposure. They are zeroized when an entry
    /// is evicted, replaced or dropped, and never printed. When full, an arbitrary entry is
    /// evicted. What the cache trusts and why it is sound: the
    /// [manual](crate::manual#the-sealed-stores-cache-of-opened-rows).
    ///
    /// [`login_snapshot_capacity`]: crate::service::TwoFactorBuilder::login_snapshot_capacity
    #[must_use]
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.opened = OpenedCache::new(capacity);
        self
    }

    /// Whether to accept format-1 rows, which carry no record tag (default `false`): turn it
    /// on while migrating a store written by 0.1.0, which sealed secrets but did not yet
    /// authenticate the whole record. Each such row is tagged by its next save, or at once by
    /// [`reseal`] (with [`ResealOptions::accept_untagged`]).
    ///
    /// Only format-1 rows (no `"v"` field: see [`TwoFactorRecord`]'s "Stored format") load
    /// untagged: a later row whose tag was removed (`"mac": null`) is refused
    /// ([`SealedStoreError::Untagged`]) even while this is on, since this store tagged every
    /// row it wrote in those formats. A row of a bare (never sealed) store goes through
    /// [`accept_unsealed`](Self::accept_unsealed) instead.
    ///
    /// Turn it off again when done: while it is on, someone who can write the table can
    /// still rewrite a whole row in format 1 and change it (plant a trusted device or
    /// recovery codes, clear throttles, remove the factor).
    #[must_use]
    pub fn accept_untagged(mut self, accept: bool) -> Self {
        self.accept_untagged = accept;
        // What loaded under the old setting is checked again under the new one.
        self.opened = OpenedCache::new(self.opened.capacity);
        self
    }

    /// Whether to accept the rows of a bare (never sealed) store (default `false`): secrets in
    /// the clear, no record tag. Turn it on while migrating a store written before sealing;
    /// each such record is sealed and tagged by its next save (a login, for an enrolled user),
    /// or at once by [`reseal`] (with [`ResealOptions::accept_unsealed`]).
    ///
    /// While it is on, an untagged row loads if it is in format 1 (as with
    /// [`accept_untagged`](Self::accept_untagged)) or if nothing in it is sealed; an untagged
    /// row holding a sealed secret was sealed, and so tagged, by this store: its tag was
    /// stripped, and it is refused ([`SealedStoreError::Untagged`]).
    ///
    /// Turn it off again when done: while it is on, anyone who can write the table can make
    /// any row look like a bare store's row (a secret they know, no factor at all).
    #[must_use]
    pub fn accept_unsealed(mut self, accept: bool) -> Self {
        self.accept_unsealed = accept;
        self.opened = OpenedCache::new(self.opened.capacity);
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The cipher.
    pub fn cipher(&self) -> &C {
        &self.cipher
    }

    /// How many users' rows the cache of opened rows holds now (at most
    /// [`cache_capacity`](Self::cache_capacity)).
    pub fn cached_users(&self) -> usize {
        self.opened.len()
    }
}

impl<S, C> SealedStore<S, C> {
    /// Whether a row without a tag loads: only rows that never had one. A format-1 row
    /// (written before tags existed) while [`accept_untagged`](Self::accept_untagged) or
    /// [`accept_unsealed`](Self::accept_unsealed) is on; a later-format row only while
    /// `accept_unsealed` is on and nothing in it is sealed (a bare store's row: this store
    /// would have tagged any row it sealed, so a sealed secret without a tag means the tag
    /// was stripped).
    fn accepts_without_tag(&self, record: &TwoFactorRecord) -> bool {
        if record.format_1 {
            self.accept_untagged || self.accept_unsealed
        } else {
            self.accept_unsealed && !record.has_sealed_secret()
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for SealedStore<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStore")
            .field("inner", &self.inner)
            .field("accept_unsealed", &self.accept_unsealed)
            .field("accept_untagged", &self.accept_untagged)
            .field("cache_capacity", &self.opened.capacity)
            .finish_non_exhaustive()
    }
}

/// Why a [`SealedStore`] could not load or save. The service fails closed on all of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedStoreError<E> {
    /// The wrapped store failed.
    #[error(transparent)]
    Store(E),
    /// A secret of `user`'s record could not be sealed or opened.
    #[error("2FA secret of user {user} could not be sealed or opened")]
    Seal {
        /// Whose record.
        user: UserId,
        /// Why.
        #[source]
        source: SealError,
    },
    /// `user`'s stored record holds a secret in the clear, and
    /// [`SealedStore::accept_unsealed`] is off.
    #[error("2FA secret of user {user} is stored unsealed")]
    Unsealed {
        /// Whose record.
        user: UserId,
    },
    /// `user`'s stored record carries no record tag, and is not a row that never had one
    /// while migrating ([`SealedStore::accept_untagged`] for format-1 rows,
    /// [`SealedStore::accept_unsealed`] for a bare store's rows): a tag stripped from a row
    /// is refused whatever is on. Refused like a corrupt row.
    #[error("2FA record of user {user} is not authenticated")]
    Untagged {
        /// Whose record.
        user: UserId,
    },
    /// `user`'s stored record failed authentication: it was changed outside this store,
    /// copied from another user, or written back at another version. Refused like a corrupt
    /// row.
    #[error("2FA record of user {user} failed authentication")]
    Tampered {
        /// Whose record.
        user: UserId,
        /// Why ([`SealError::Authentication`], or [`SealError::UnknownKey`] for a key no
        /// longer in the keyring).
        #[source]
        source: SealError,
    },
}

/// Needs the `serde` feature (on by default): the record tag covers the canonical encoding.
#[cfg(feature = "serde")]
impl<S, C> UserStore for SealedStore<S, C>
where
    S: UserStore,
    C: SecretCipher,
{
    type Error = SealedStoreError<S::Error>;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, Self::Error> {
        let Some(loaded) = self
            .inner
            .load_encoded(user)
            .await
            .map_err(SealedStoreError::Store)?
        else {
            return Ok(None);
        };
        // The text as stored, when the inner store has it: the tag is checked over it.
        let (mut loaded, text) = match loaded {
            Loaded::Decoded(loaded) => (loaded, None),
            Loaded::Encoded(encoded, version) => {
                let (mut record, text) = encoded.into_shared_parts();
                // Exactly the bytes, at exactly the version, that this store authenticated
                // or wrote last for this user, under the same cipher verdicts: their secrets
                // as opened then (the rest is what those bytes decode to, as always).
                if let Some(secrets) = self
                    .cipher
                    .cache_generation()
                    .and_then(|generation| self.opened.get(user, version, &text, generation))
                    && record.put_opened(secrets)
                {
                    return Ok(Some(Versioned { record, version }));
                }
                (Versioned { record, version }, Some(text))
            }
        };
        // The tag first: nothing of an unauthenticated record is used (not even its key ids).
        let tampered = |source| SealedStoreError::Tampered {
            user: user.clone(),
            source,
        };
        let tagged = loaded.record.mac.is_some();
        match loaded.record.mac.take() {
            Some(tag) => {
                let message = match &text {
                    Some(text) => stored_message(user, loaded.version, text, &tag),
                    // A store without the stored text: encode the record as it was stored
                    // (a format-2 row's tag covers its format-2 encoding).
                    None => {
                        let mut message = Vec::with_capacity(MESSAGE_CAPACITY);
                        tag_prefix(&mut message, user, loaded.version);
                        loaded
                            .record
                            .encode_as_stored(&mut message)
                            .map(|()| message)
                            .map_err(|err| SealError::Cipher(Box::new(err)))
                    }
                }
                .map_err(tampered)?;
                if let Err(err) = self.cipher.verify_record(&tag, &message) {
                    self.opened.remove(user);
                    return Err(tampered(err));
                }
            }
            // Rows that never had a tag: see `accepts_without_tag`.
            None if self.accepts_without_tag(&loaded.record) => {}
            // Say what an operator must turn on to migrate it.
            None if loaded.record.has_open_secret() => {
                return Err(SealedStoreError::Unsealed { user: user.clone() });
            }
            None => return Err(SealedStoreError::Untagged { user: user.clone() }),
        }
        if !self.accept_unsealed && loaded.record.has_open_secret() {
            return Err(SealedStoreError::Unsealed { user: user.clone() });
        }
        loaded
            .record
            .each_secret(|secret, slot, _| secret.unseal(&self.cipher, user, slot))
            .map_err(|source| SealedStoreError::Seal {
                user: user.clone(),
                source,
            })?;
        // Remembered only when the tag was checked, and the cipher allows it.
        if let (true, Some(text), Some(generation)) = (tagged, text, self.cipher.cache_generation())
        {
            let entry = CachedRow {
                version: loaded.version,
                generation,
                text,
                secrets: loaded.record.opened_secrets(),
            };
            self.opened.put(user, entry);
        }
        Ok(Some(loaded))
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, Self::Error> {
        let seal_error = |source| SealedStoreError::Seal {
            user: user.clone(),
            source,
        };
        // The version this save creates if it succeeds (a store numbers them 1, 2, 3...).
        let next = Version(expected.map_or(1, |v| v.0.saturating_add(1)));
        // Secrets unchanged since their load keep their ciphertext if it is under the key
        // that tags the record now (the current key); after a rotation they are sealed again.
        let mut keep = true;
        let (sealed, text, kept) = with_scratch(|message| {
            loop {
                let mut sealed = record.clone();
                sealed.mac = None;
                // Written in the current format: no longer a row of an older one.
                sealed.format_1 = false;
                sealed.older_format = None;
                let mut kept = Vec::with_capacity(sealed.authenticators.len() + 1);
                sealed.each_secret(|secret, slot, _| {
                    kept.push(secret.seal(&self.cipher, user, slot, keep)?);
                    Ok(())
                })?;
                // One encoding: the tag covers it, and it is the stored text with the tag put
                // in.
                let start = tagged_message(message, user, next, &sealed)?;
                let tag = self.cipher.tag_record(message)?;
                if keep && sealed.kept_under_another_key(&kept, tag.key_id()) {
                    keep = false;
                    continue;
                }
                let text = tagged_text(message, start, &tag)?;
                sealed.mac = Some(tag);
                break Ok((sealed, text, kept));
            }
        })
        .map_err(seal_error)?;
        // For the cache: this text at the version it creates, and its secrets as a load of
        // it opens them (the secrets passed in, with the ciphertexts written).
        let entry = self
            .cipher
            .cache_generation()
            .filter(|_| self.opened.capacity > 0)
            .and_then(|generation| {
                Some(CachedRow {
                    version: next,
                    generation,
                    text: text.clone(),
                    secrets: opened_as_written(record, &sealed, &kept, user)?,
                })
            });
        let encoded = EncodedRecord::from_canonical(sealed, text);
        let outcome = self
            .inner
            .save_encoded(user, encoded, expected)
            .await
            .map_err(SealedStoreError::Store)?;
        // The tag binds `next`: a store that numbered it otherwise gets nothing cached.
        if let (SaveOutcome::Saved(version), Some(entry)) = (outcome, entry)
            && version == next
        {
            self.opened.put(user, entry);
        }
        Ok(outcome)
    }
}

/// The secrets of `record` (as passed to a save) as a load of its sealed form `sealed`
/// opens them, by [`Slot`]: each opened from the ciphertext `sealed` holds in its slot (the
/// one it was opened from, where the save `kept` it). `None` where that is not known (a
/// secret passed in already sealed, or slots that do not line up): nothing is cached then.
#[cfg(feature = "serde")]
fn opened_as_written(
    record: &TwoFactorRecord,
    sealed: &TwoFactorRecord,
    kept: &[bool],
    user: &UserId,
) -> Option<Vec<SecretSlot>> {
    if record.secrets().count() != sealed.secrets().count() {
        return None;
    }
    record
        .secrets()
        .zip(sealed.secrets())
        .enumerate()
        .map(|(i, ((slot, given), (written_slot, written)))| {
            if slot != written_slot {
                return None;
            }
            match (given, written) {
                // Kept: the given slot is `Opened` from exactly the ciphertext written.
                (given @ SecretSlot::Opened(..), SecretSlot::Sealed(_))
                    if kept.get(i) == Some(&true) =>
                {
                    Some(given.clone())
                }
                (given, SecretSlot::Sealed(written)) => {
                    let from = OpenedFrom {
                        sealed: written.clone(),
                        associated_data: associated_data(user, slot),
                    };
                    let secret = given.open()?.clone();
                    Some(SecretSlot::Opened(secret, Arc::new(from)))
                }
                _ => None,
            }
        })
        .collect()
}

/// Lists the users of the wrapped store (nothing to open: ids are not sealed).
#[cfg(feature = "serde")]
impl<S, C> crate::store::ListUsers for SealedStore<S, C>
where
    S: crate::store::ListUsers,
    C: SecretCipher,
{
    async fn list_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, Self::Error> {
        self.inner
            .list_users(after, limit)
            .await
            .map_err(SealedStoreError::Store)
    }
}

/// Looks a credential id up through the sealed store itself: every record walked is checked
/// against its tag, so a planted key in the table is never taken for a registered one.
#[cfg(feature = "webauthn")]
impl<S, C> crate::store::SecurityKeyIndex for SealedStore<S, C>
where
    S: crate::store::ListUsers,
    C: SecretCipher,
{
}

impl<C: SecretCipher + ?Sized> SecretCipher for &C {
    fn open_with_form(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<(zeroize::Zeroizing<Vec<u8>>, bool), SealError> {
        (**self).open_with_form(sealed, associated_data)
    }
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        (**self).seal(plaintext, associated_data)
    }
    fn open(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError> {
        (**self).open(sealed, associated_data)
    }
    fn tag_record(&self, message: &[u8]) -> Result<RecordTag, SealError> {
        (**self).tag_record(message)
    }
    fn verify_record(&self, tag: &RecordTag, message: &[u8]) -> Result<(), SealError> {
        (**self).verify_record(tag, message)
    }
    fn cache_generation(&self) -> Option<u64> {
        (**self).cache_generation()
    }
}

#[cfg(feature = "seal")]
mod keyring;
#[cfg(feature = "seal")]
pub use keyring::Keyring;
#[cfg(all(feature = "seal", feature = "serde"))]
mod reseal;
#[cfg(all(feature = "seal", feature = "serde"))]
pub use reseal::{ResealFailure, ResealInterrupted, ResealOptions, ResealReport, reseal};

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn slots_read_both_forms_and_refuse_anything_else() {
        let open: SecretSlot = serde_json::from_str(r#""JBSWY3DPEHPK3PXP""#).unwrap();
        assert_eq!(
            open.open().unwrap().expose_secret(),
            b"Hello!\xde\xad\xbe\xef"
        );
        assert_eq!(
            serde_json::to_string(&open).unwrap(),
            r#""JBSWY3DPEHPK3PXP""#
        );

        let sealed = SecretSlot::Sealed(SealedSecret::new("k1", vec![1, 2], vec![0xab, 0xcd]));
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(json, r#"{"key":"k1","nonce":"0102","ct":"abcd"}"#);
        let back: SecretSlot = serde_json::from_str(&json).unwrap();
        assert!(back.is_sealed() && back.open().is_none());
        match back {
            SecretSlot::Sealed(s) => {
                assert_eq!(
                    (s.key_id(), s.nonce(), s.ciphertext()),
                    ("k1", &[1, 2][..], &[0xab, 0xcd][..])
                );
            }
            SecretSlot::Open(_) | SecretSlot::Opened(..) => unreachable!(),
        }

        for bad in [
            "42",
            r#""not base32!""#,
            r#"{"key":"k1","nonce":"0g","ct":"ab"}"#,
            r#"{"key":"k1","nonce":"01","ct":"abc"}"#,
            r#"{"key":"k1","nonce":"01"}"#,
            r#"{"key":"k1","nonce":"01","ct":"ab","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<SecretSlot>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tag_goes_into_the_one_encoding_and_is_checked_over_the_stored_bytes() {
        use crate::store::codec::encode_record;
        let user = UserId::new("alice");
        let record = TwoFactorRecord::default();
        // A buffer holding something already: emptied first.
        let mut message = b"left over".to_vec();
        let start = tagged_message(&mut message, &user, Version(3), &record).unwrap();
        assert!(message.ends_with(br#""mac":null}"#));
        let message = message.clone();
        let tag = RecordTag::new("k\"1", vec![0xab; 32]);
        let mut buffer = message.clone();
        let text = tagged_text(&mut buffer, start, &tag).unwrap();
        let text = String::from(&*text);
        let mut tagged = record.clone();
        tagged.mac = Some(tag.clone());
        assert_eq!(text, encode_record(&tagged).unwrap());
        assert_eq!(&buffer[start..], text.as_bytes());
        // The scratch buffer: a nested use gets its own, and each starts empty.
        with_scratch(|outer| {
            outer.extend_from_slice(b"outer");
            with_scratch(|inner| {
                assert!(inner.is_empty());
                inner.extend_from_slice(b"inner");
            });
            assert_eq!(outer, b"outer");
        });
        with_scratch(|again| assert!(again.is_empty()));
        assert_eq!(
            stored_message(&user, Version(3), &text, &tag).unwrap(),
            message
        );
        // The same record in another spelling is not the text this crate writes.
        for other in [
            text.replace("abab", "ABAB"),
            format!("{text} "),
            text.replace(r#""mac":"#, r#""mac" :"#),
            text.replace(r#"{"v":8,"#, r#"{"v":8, "#),
        ] {
            assert_ne!(other, text);
            let built = stored_message(&user, Version(3), &other, &tag);
            assert!(
                built.is_err_and(|e| matches!(e, SealError::Authentication))
                    || stored_message(&user, Version(3), &other, &tag).unwrap() != message,
                "{other}"
            );
        }
    }

    #[test]
    fn associated_data_binds_user_and_slot() {
        let alice = UserId::new("alice");
        let a = associated_data(&alice, Slot::Active);
        assert_eq!(a, b"twofactor/secret/v1\0active\0alice");
        assert_ne!(a, associated_data(&alice, Slot::Pending));
        assert_ne!(a, associated_data(&UserId::new("alicf"), Slot::Active));
        // The check without building it agrees, and refuses any other bytes.
        assert!(is_associated_data(&a, &alice, Slot::Active));
        for other in [
            associated_data(&alice, Slot::Pending),
            associated_data(&UserId::new("alic"), Slot::Active),
            associated_data(&UserId::new("alice2"), Slot::Active),
            a[..a.len() - 1].to_vec(),
            [&a[..], b"\0"].concat(),
            Vec::new(),
        ] {
            assert!(
                !is_associated_data(&other, &alice, Slot::Active),
                "{other:?}"
            );
        }
    }
}
