//! An in-process store: a mutex-guarded map. Correct under concurrency within one process.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{SaveOutcome, UserStore, Version, Versioned};
use crate::account::{TwoFactorRecord, UserId};

/// The in-memory store's only error: its lock was poisoned by a panicking thread.
#[derive(Debug, thiserror::Error)]
#[error("memory store lock poisoned")]
pub struct MemoryStoreError;

/// Records in a `HashMap` behind a `Mutex`: for tests, examples and single-process apps.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<UserId, (TwoFactorRecord, Version)>>,
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
}

impl UserStore for MemoryStore {
    type Error = MemoryStoreError;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, MemoryStoreError> {
        let map = self.records.lock().map_err(|_| MemoryStoreError)?;
        Ok(map.get(user).map(|(record, version)| Versioned {
            record: record.clone(),
            version: *version,
        }))
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, MemoryStoreError> {
        let mut map = self.records.lock().map_err(|_| MemoryStoreError)?;
        let current = map.get(user).map(|(_, v)| *v);
        if current != expected {
            return Ok(SaveOutcome::Conflict);
        }
        let next = Version(current.map_or(1, |v| v.0.saturating_add(1)));
        map.insert(user.clone(), (record.clone(), next));
        Ok(SaveOutcome::Saved(next))
    }
}
