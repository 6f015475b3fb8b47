//! An in-process store: a mutex-guarded map. Correct under concurrency within one process.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{ListUsers, SaveOutcome, UserStore, Version, Versioned};
#[cfg(feature = "serde")]
use super::{Loaded, codec::EncodedRecord};
use crate::account::{TwoFactorRecord, UserId};
use crate::vocabulary::BoxError;

/// Why the in-memory store failed. Logins fail closed on both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryStoreError {
    /// Its lock was poisoned by a panicking thread.
    #[error("memory store lock poisoned")]
    Poisoned,
    /// The stored text of `user` (put there with [`MemoryStore::insert_json`]) is not a
    /// record this crate wrote: refused like a corrupt SQL row, never read as "no 2FA".
    #[error("stored 2FA record of user {user} cannot be decoded")]
    Corrupt {
        /// Whose record.
        user: UserId,
        /// Why it does not decode.
        #[source]
        source: BoxError,
    },
}

/// What the map holds for a user: a record saved through [`UserStore::save`] (kept decoded,
/// so loads are a clone), a record saved through [`UserStore::save_encoded`] (kept decoded and
/// with its text, so [`UserStore::load_encoded`] returns both without encoding), or text put
/// there with [`MemoryStore::insert_json`] (decoded on every load through the same codec as
/// the SQL stores).
#[derive(Debug)]
// The records are the common case and are cloned on every load; boxing them would add an
// allocation per save for the sake of the rare raw entry.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Record(TwoFactorRecord),
    #[cfg(feature = "serde")]
    Encoded(EncodedRecord),
    #[cfg(feature = "serde")]
    Json(String),
}

/// Records in a `HashMap` behind a `Mutex`: for tests, examples and single-process apps.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<UserId, (Entry, Version)>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many users have a record.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.lock().map_or(0, |m| m.len())
    }

    /// Whether no user has a record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `json` as `user`'s row, as someone with write access to a database table could,
    /// bypassing the compare-and-swap (the version goes up by one). It is decoded on every
    /// [`load`](UserStore::load) with [`decode_record`](super::codec::decode_record), exactly
    /// as the SQL stores decode their rows: for tests of what a damaged or planted row does.
    /// Returns the row's new version.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use twofactor::store::UserStore;
    /// use twofactor::{MemoryStore, UserId};
    ///
    /// let store = MemoryStore::new();
    /// let alice = UserId::new("alice");
    /// store.insert_json(&alice, "[]");
    /// assert!(store.load(&alice).await.is_err()); // corrupt, never "no 2FA"
    /// # }
    /// ```
    #[cfg(feature = "serde")]
    pub fn insert_json(&self, user: &UserId, json: impl Into<String>) -> Version {
        let mut map = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = Version(map.get(user).map_or(1, |(_, v)| v.0.saturating_add(1)));
        map.insert(user.clone(), (Entry::Json(json.into()), next));
        next
    }

    /// `user`'s row as stored text (records saved through the trait encoded with
    /// [`encode_record`](super::codec::encode_record)) and its version: for tests that check
    /// a row is unchanged.
    #[cfg(feature = "serde")]
    #[must_use]
    pub fn json(&self, user: &UserId) -> Option<(String, Version)> {
        let map = self.records.lock().ok()?;
        let (entry, version) = map.get(user)?;
        let json = match entry {
            Entry::Record(record) => super::codec::encode_record(record).ok()?,
            Entry::Encoded(encoded) => encoded.text().to_owned(),
            Entry::Json(json) => json.clone(),
        };
        Some((json, *version))
    }
}

impl UserStore for MemoryStore {
    type Error = MemoryStoreError;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, MemoryStoreError> {
        let map = self
            .records
            .lock()
            .map_err(|_| MemoryStoreError::Poisoned)?;
        let Some((entry, version)) = map.get(user) else {
            return Ok(None);
        };
        let record = match entry {
            Entry::Record(record) => record.clone(),
            #[cfg(feature = "serde")]
            Entry::Encoded(encoded) => encoded.record().clone(),
            #[cfg(feature = "serde")]
            Entry::Json(json) => {
                super::codec::decode_record(json).map_err(|source| corrupt(user, source))?
            }
        };
        Ok(Some(Versioned {
            record,
            version: *version,
        }))
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, MemoryStoreError> {
        self.put(user, expected, || {
            let mut record = record.clone();
            // Saved rows are in the current format, as an SQL store writes them.
            record.format_1 = false;
            record.older_format = None;
            Entry::Record(record)
        })
    }

    /// The stored text as it is: what [`save_encoded`](UserStore::save_encoded) or
    /// [`insert_json`](MemoryStore::insert_json) put there.
    #[cfg(feature = "serde")]
    async fn load_encoded(&self, user: &UserId) -> Result<Option<Loaded>, MemoryStoreError> {
        let map = self
            .records
            .lock()
            .map_err(|_| MemoryStoreError::Poisoned)?;
        let Some((entry, version)) = map.get(user) else {
            return Ok(None);
        };
        let version = *version;
        Ok(Some(match entry {
            Entry::Record(record) => Loaded::Decoded(Versioned {
                record: record.clone(),
                version,
            }),
            Entry::Encoded(encoded) => Loaded::Encoded(encoded.clone(), version),
            Entry::Json(json) => {
                let encoded =
                    EncodedRecord::decode(json.clone()).map_err(|source| corrupt(user, source))?;
                Loaded::Encoded(encoded, version)
            }
        }))
    }

    /// Keeps the record and its text (no copy of either).
    #[cfg(feature = "serde")]
    async fn save_encoded(
        &self,
        user: &UserId,
        record: EncodedRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, MemoryStoreError> {
        self.put(user, expected, || Entry::Encoded(record))
    }
}

impl MemoryStore {
    /// The compare-and-swap: stores `entry()` as the next version if the current one is
    /// `expected`.
    fn put(
        &self,
        user: &UserId,
        expected: Option<Version>,
        entry: impl FnOnce() -> Entry,
    ) -> Result<SaveOutcome, MemoryStoreError> {
        let mut map = self
            .records
            .lock()
            .map_err(|_| MemoryStoreError::Poisoned)?;
        let current = map.get(user).map(|(_, v)| *v);
        if current != expected {
            return Ok(SaveOutcome::Conflict);
        }
        let next = Version(current.map_or(1, |v| v.0.saturating_add(1)));
        map.insert(user.clone(), (entry(), next));
        Ok(SaveOutcome::Saved(next))
    }
}

impl ListUsers for MemoryStore {
    async fn list_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, MemoryStoreError> {
        let map = self
            .records
            .lock()
            .map_err(|_| MemoryStoreError::Poisoned)?;
        // The `limit` smallest ids after `after`, in byte order, without sorting the map.
        let mut page: std::collections::BinaryHeap<&UserId> = std::collections::BinaryHeap::new();
        for user in map.keys() {
            if after.is_some_and(|a| user.as_str() <= a.as_str()) {
                continue;
            }
            if page.len() < limit {
                page.push(user);
            } else if page.peek().is_some_and(|max| user.as_str() < max.as_str()) {
                page.pop();
                page.push(user);
            }
        }
        Ok(page.into_sorted_vec().into_iter().cloned().collect())
    }
}

/// A row that does not decode: refused like a corrupt SQL row.
#[cfg(feature = "serde")]
fn corrupt(user: &UserId, source: super::codec::RecordCodecError) -> MemoryStoreError {
    MemoryStoreError::Corrupt {
        user: user.clone(),
        source: Box::new(source),
    }
}
