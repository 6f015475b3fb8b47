//! A store chosen at run time: [`DynStore`], one type for every [`UserStore`].
//!
//! [`UserStore`] returns `impl Future` (no boxing on the hot path), which makes it unusable as
//! `dyn UserStore`. [`DynUserStore`] is its object-safe twin, implemented for every
//! `UserStore`; `Arc<dyn DynUserStore>` ([`DynStore`]) is a `UserStore` again. A host picks
//! memory, SQLite or PostgreSQL from its configuration and names one service type:
//!
//! ```
//! use std::sync::Arc;
//! use twofactor::store::DynStore;
//! use twofactor::{MemoryStore, RequiredForAll, TwoFactor, WhenUnenrolled};
//! use twofactor::testing::RecordingMailer;
//!
//! fn store_from_config(kind: &str) -> Result<DynStore, String> {
//!     match kind {
//!         "memory" => Ok(Arc::new(MemoryStore::new())),
//!         // "sqlite" => Ok(Arc::new(SqliteStore::open(path).await?)),
//!         other => Err(format!("unknown store {other}")),
//!     }
//! }
//!
//! let store = store_from_config("memory")?;
//! let policy = RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled);
//! let tf: TwoFactor<DynStore, _, _> = TwoFactor::builder(store)
//!     .mailer(RecordingMailer::new())
//!     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
//!     .policy(policy)
//!     .build();
//! # Ok::<(), String>(())
//! ```
//!
//! Each call costs one boxed future (an allocation) on top of the store's own work; the
//! errors are boxed too, as [`DynError`].

use std::sync::Arc;

#[cfg(feature = "serde")]
use super::{Loaded, codec::EncodedRecord};
use super::{SaveOutcome, UserStore, Version, Versioned};
use crate::account::{TwoFactorRecord, UserId};

pub use crate::vocabulary::{BoxFuture, DynError};

/// Any store, chosen at run time: a [`UserStore`] whose error is [`DynError`].
///
/// Build one with `Arc::new(store)` (it coerces).
pub type DynStore = Arc<dyn DynUserStore>;

/// The object-safe form of [`UserStore`], implemented for every `UserStore`: use it as
/// `Arc<dyn DynUserStore>` ([`DynStore`]). Same contract as [`UserStore::load`] and
/// [`UserStore::save`]; implement [`UserStore`], not this.
pub trait DynUserStore: Send + Sync {
    /// [`UserStore::load`], boxed.
    ///
    /// # Errors
    /// The store's error, boxed.
    fn load_boxed<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<Versioned>, DynError>>;

    /// [`UserStore::save`], boxed.
    ///
    /// # Errors
    /// The store's error, boxed.
    fn save_boxed<'a>(
        &'a self,
        user: &'a UserId,
        record: &'a TwoFactorRecord,
        expected: Option<Version>,
    ) -> BoxFuture<'a, Result<SaveOutcome, DynError>>;

    /// [`UserStore::load_encoded`], boxed (feature `serde`). The default loads with
    /// [`load_boxed`](Self::load_boxed).
    ///
    /// # Errors
    /// The store's error, boxed.
    #[cfg(feature = "serde")]
    fn load_encoded_boxed<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<Loaded>, DynError>> {
        Box::pin(async move { Ok(self.load_boxed(user).await?.map(Loaded::Decoded)) })
    }

    /// [`UserStore::save_encoded`], boxed (feature `serde`). The default saves with
    /// [`save_boxed`](Self::save_boxed).
    ///
    /// # Errors
    /// The store's error, boxed.
    #[cfg(feature = "serde")]
    fn save_encoded_boxed<'a>(
        &'a self,
        user: &'a UserId,
        record: EncodedRecord,
        expected: Option<Version>,
    ) -> BoxFuture<'a, Result<SaveOutcome, DynError>> {
        Box::pin(async move { self.save_boxed(user, record.record(), expected).await })
    }
}

impl<S: UserStore> DynUserStore for S {
    fn load_boxed<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<Versioned>, DynError>> {
        Box::pin(async move { self.load(user).await.map_err(DynError::new) })
    }

    fn save_boxed<'a>(
        &'a self,
        user: &'a UserId,
        record: &'a TwoFactorRecord,
        expected: Option<Version>,
    ) -> BoxFuture<'a, Result<SaveOutcome, DynError>> {
        Box::pin(async move {
            self.save(user, record, expected)
                .await
                .map_err(DynError::new)
        })
    }

    #[cfg(feature = "serde")]
    fn load_encoded_boxed<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<Loaded>, DynError>> {
        Box::pin(async move { self.load_encoded(user).await.map_err(DynError::new) })
    }

    #[cfg(feature = "serde")]
    fn save_encoded_boxed<'a>(
        &'a self,
        user: &'a UserId,
        record: EncodedRecord,
        expected: Option<Version>,
    ) -> BoxFuture<'a, Result<SaveOutcome, DynError>> {
        Box::pin(async move {
            self.save_encoded(user, record, expected)
                .await
                .map_err(DynError::new)
        })
    }
}

/// `dyn DynUserStore` is a [`UserStore`], so `Arc<dyn DynUserStore>` ([`DynStore`]) and
/// `&dyn DynUserStore` are too.
impl UserStore for dyn DynUserStore {
    type Error = DynError;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, DynError> {
        // Awaited here, not returned: a boxed future has one lifetime, these borrows two.
        self.load_boxed(user).await
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, DynError> {
        self.save_boxed(user, record, expected).await
    }

    #[cfg(feature = "serde")]
    async fn load_encoded(&self, user: &UserId) -> Result<Option<Loaded>, DynError> {
        self.load_encoded_boxed(user).await
    }

    #[cfg(feature = "serde")]
    async fn save_encoded(
        &self,
        user: &UserId,
        record: EncodedRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, DynError> {
        self.save_encoded_boxed(user, record, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_dyn_store_keeps_the_compare_and_swap() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let alice = UserId::new("alice");
        let record = TwoFactorRecord::default();
        assert!(store.load(&alice).await.unwrap().is_none());
        let v1 = match store.save(&alice, &record, None).await.unwrap() {
            SaveOutcome::Saved(v) => v,
            SaveOutcome::Conflict => panic!("first save conflicted"),
        };
        // A second create and a stale version both conflict, through the box.
        assert_eq!(
            store.save(&alice, &record, None).await.unwrap(),
            SaveOutcome::Conflict
        );
        assert!(matches!(
            store.save(&alice, &record, Some(v1)).await.unwrap(),
            SaveOutcome::Saved(v) if v > v1
        ));
        assert_eq!(
            store.save(&alice, &record, Some(v1)).await.unwrap(),
            SaveOutcome::Conflict
        );
        assert!(store.load(&alice).await.unwrap().unwrap().version > v1);
    }

    #[test]
    fn errors_keep_their_message_and_type() {
        let e = DynError::new(crate::store::MemoryStoreError::Poisoned);
        assert_eq!(e.to_string(), "memory store lock poisoned");
        assert!(
            e.into_inner()
                .downcast::<crate::store::MemoryStoreError>()
                .is_ok()
        );
    }
}
