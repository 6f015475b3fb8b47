//! The storage edge: [`UserStore`] loads a user's [`TwoFactorRecord`] and saves it with
//! compare-and-swap.
//!
//! Everything that must be atomic (the last accepted time step for replay protection, a
//! consumed recovery code, throttle counters, a pending mailed code) lives in the one record
//! and rides on [`UserStore::save`]'s version check. A host that implements the trait for its
//! own database writes one conditional `UPDATE`:
//!
//! ```sql
//! UPDATE twofactor SET record = $3, version = version + 1
//!  WHERE user_id = $1 AND version = $2
//! ```
//! and an `INSERT ... ON CONFLICT DO NOTHING` when `expected` is `None`.

#[cfg(feature = "serde")]
pub mod codec;
#[cfg(feature = "serde")]
pub(crate) mod compact;
mod dynamic;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use dynamic::{BoxFuture, DynError, DynStore, DynUserStore};
pub use memory::{MemoryStore, MemoryStoreError};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{PoolConfig, StoreError};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use core::future::Future;

use crate::account::{TwoFactorRecord, UserId};
#[cfg(feature = "serde")]
use codec::EncodedRecord;

/// A record's version: incremented by every successful save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Version(pub u64);

/// A record as loaded, with the version to pass back to [`UserStore::save`].
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The record.
    pub record: TwoFactorRecord,
    /// Its version in the store.
    pub version: Version,
}

/// A record as [`UserStore::load_encoded`] returns it (feature `serde`).
#[cfg(feature = "serde")]
#[derive(Debug, Clone)]
pub enum Loaded {
    /// The record alone, as [`UserStore::load`] returns it: what a store that does not keep
    /// the stored text at hand returns (the default).
    Decoded(Versioned),
    /// The record with the exact text it was decoded from, and its version.
    Encoded(EncodedRecord, Version),
}

/// What a compare-and-swap save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum SaveOutcome {
    /// Written; the record now has this version.
    Saved(Version),
    /// Someone else saved first (or the record was created meanwhile): nothing was written.
    /// Reload and retry.
    Conflict,
}

/// Where 2FA records live. Implement it for your database, or use [`MemoryStore`] or the SQL
/// stores (features `sqlite`, `postgres`).
///
/// Both methods are required: the compare-and-swap is what makes replay protection, one-time
/// recovery codes and throttles hold under concurrent requests and across app servers.
pub trait UserStore: Send + Sync {
    /// An infrastructure failure (database down, timeout, undecodable row). Logins fail closed
    /// on it.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Loads a user's record. A user with no record is `Ok(None)`, never an error.
    fn load(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Versioned>, Self::Error>> + Send;

    /// Saves `record` only if the stored version still equals `expected`
    /// (`None`: only if there is no record yet). Atomic.
    fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<SaveOutcome, Self::Error>> + Send;

    /// Loads a user's record with the exact text the store holds, for a caller that works on
    /// the stored bytes: [`SealedStore`](crate::seal::SealedStore) checks its record tag over
    /// them instead of encoding the record again (feature `serde`).
    ///
    /// Optional. The default returns [`load`](Self::load)'s record as [`Loaded::Decoded`],
    /// and the caller encodes it itself. A store that keeps records as text returns
    /// [`Loaded::Encoded`] with the text **byte for byte as stored** (one that reformats JSON,
    /// such as a `JSONB` column, keeps the default). Same contract as `load` otherwise.
    #[cfg(feature = "serde")]
    fn load_encoded(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Loaded>, Self::Error>> + Send {
        async move { Ok(self.load(user).await?.map(Loaded::Decoded)) }
    }

    /// Saves a record already encoded, with the same compare-and-swap as [`save`](Self::save):
    /// a store that keeps text writes [`EncodedRecord::text`] as it is, without encoding the
    /// record again (feature `serde`).
    ///
    /// Optional. The default passes [`EncodedRecord::record`] to `save`.
    #[cfg(feature = "serde")]
    fn save_encoded(
        &self,
        user: &UserId,
        record: EncodedRecord,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<SaveOutcome, Self::Error>> + Send {
        async move { self.save(user, record.record(), expected).await }
    }
}

/// A store that can enumerate the users that have a record, page by page: what a tool that
/// walks the whole store needs ([`seal::reseal`](crate::seal::reseal)). Logins never call it.
///
/// Implemented by [`MemoryStore`], the SQL stores, `SealedStore` and `Arc`/`&` of any of them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::account::TwoFactorRecord;
/// use twofactor::store::{ListUsers, UserStore};
/// use twofactor::{MemoryStore, UserId};
///
/// let store = MemoryStore::new();
/// for name in ["carol", "alice", "bob"] {
///     let _ = store.save(&UserId::new(name), &TwoFactorRecord::default(), None).await?;
/// }
/// let first = store.list_users(None, 2).await?;
/// assert_eq!(first, [UserId::new("alice"), UserId::new("bob")]);
/// let rest = store.list_users(first.last(), 2).await?;
/// assert_eq!(rest, [UserId::new("carol")]);
/// assert!(store.list_users(rest.last(), 2).await?.is_empty()); // the end
/// # Ok(())
/// # }
/// ```
pub trait ListUsers: UserStore {
    /// Up to `limit` ids of users that have a record, in ascending order, strictly after
    /// `after` (from the first with `None`). Fewer than `limit` (or none) means the end.
    ///
    /// The order is the store's, consistent from one page to the next: byte order of the ids
    /// in [`MemoryStore`] and SQLite, the column's collation in PostgreSQL. A user whose
    /// record is created or deleted during a walk may or may not be listed.
    fn list_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UserId>, Self::Error>> + Send;
}

impl<S: ListUsers + ?Sized> ListUsers for std::sync::Arc<S> {
    fn list_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UserId>, Self::Error>> + Send {
        (**self).list_users(after, limit)
    }
}

impl<S: ListUsers + ?Sized> ListUsers for &S {
    fn list_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UserId>, Self::Error>> + Send {
        (**self).list_users(after, limit)
    }
}

/// A store that can tell which user a security key's credential id is registered to
/// (feature `webauthn`): what registering a key asks, since a credential id registered to one
/// user must not be registered again, to them or anyone else (WebAuthn § 7.1, step 22;
/// webauthn-rs leaves it to its caller).
///
/// The provided method walks every record ([`ListUsers`], then [`load`](UserStore::load)):
/// correct on any store, one load per user for each registration. A host with many users
/// overrides it with an indexed look-up. Implemented (with the walk) by [`MemoryStore`], the
/// SQL stores, [`SealedStore`](crate::seal::SealedStore) (which checks each record's tag) and
/// `Arc`/`&` of any of them.
///
/// The check runs when a registration finishes, before its save: two users finishing a
/// registration **of the same credential** at the same instant could both pass. A genuine
/// authenticator makes a new credential for every registration, so only a cloned or forged
/// authenticator gets there, and what it gets is a second user whose key it already holds;
/// the manual's threat model says so.
#[cfg(feature = "webauthn")]
pub trait SecurityKeyIndex: ListUsers {
    /// The user one of whose security keys has the credential id `credential_id`, if any.
    /// A record that cannot be loaded fails the look-up (fail closed).
    fn security_key_owner(
        &self,
        credential_id: &[u8],
    ) -> impl Future<Output = Result<Option<UserId>, Self::Error>> + Send {
        async move {
            let mut after: Option<UserId> = None;
            loop {
                let page = self.list_users(after.as_ref(), 256).await?;
                for user in &page {
                    let Some(v) = self.load(user).await? else {
                        continue;
                    };
                    let ids = v.record.security_key_credential_ids();
                    if ids.iter().any(|id| id.as_slice() == credential_id) {
                        return Ok(Some(user.clone()));
                    }
                }
                if page.len() < 256 {
                    return Ok(None);
                }
                after = page.last().cloned();
            }
        }
    }
}

#[cfg(feature = "webauthn")]
impl<S: SecurityKeyIndex + ?Sized> SecurityKeyIndex for std::sync::Arc<S> {
    fn security_key_owner(
        &self,
        credential_id: &[u8],
    ) -> impl Future<Output = Result<Option<UserId>, Self::Error>> + Send {
        (**self).security_key_owner(credential_id)
    }
}

#[cfg(feature = "webauthn")]
impl<S: SecurityKeyIndex + ?Sized> SecurityKeyIndex for &S {
    fn security_key_owner(
        &self,
        credential_id: &[u8],
    ) -> impl Future<Output = Result<Option<UserId>, Self::Error>> + Send {
        (**self).security_key_owner(credential_id)
    }
}

#[cfg(feature = "webauthn")]
impl SecurityKeyIndex for MemoryStore {}

/// A borrowed store is a store: wrappers such as `SealedStore` can run over `&store`.
impl<S: UserStore + ?Sized> UserStore for &S {
    type Error = S::Error;
    fn load(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Versioned>, Self::Error>> + Send {
        (**self).load(user)
    }
    fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<SaveOutcome, Self::Error>> + Send {
        (**self).save(user, record, expected)
    }
    #[cfg(feature = "serde")]
    fn load_encoded(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Loaded>, Self::Error>> + Send {
        (**self).load_encoded(user)
    }
    #[cfg(feature = "serde")]
    fn save_encoded(
        &self,
        user: &UserId,
        record: EncodedRecord,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<SaveOutcome, Self::Error>> + Send {
        (**self).save_encoded(user, record, expected)
    }
}

impl<S: UserStore + ?Sized> UserStore for std::sync::Arc<S> {
    type Error = S::Error;
    fn load(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Versioned>, Self::Error>> + Send {
        (**self).load(user)
    }
    fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<SaveOutcome, Self::Error>> + Send {
        (**self).save(user, record, expected)
    }
    #[cfg(feature = "serde")]
    fn load_encoded(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Loaded>, Self::Error>> + Send {
        (**self).load_encoded(user)
    }
    #[cfg(feature = "serde")]
    fn save_encoded(
        &self,
        user: &UserId,
        record: EncodedRecord,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<SaveOutcome, Self::Error>> + Send {
        (**self).save_encoded(user, record, expected)
    }
}
