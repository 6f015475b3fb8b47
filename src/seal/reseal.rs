//! [`reseal`]: rewrite every record of a store under the keyring's current key (features
//! `seal` and `serde`).

use super::{Keyring, SealedStore, SealedStoreError};
use crate::account::TwoFactorRecord;
use crate::account::crypto::CodeKeys;
use crate::store::{ListUsers, SaveOutcome, UserStore};
use crate::vocabulary::UserId;

/// How [`reseal`] walks a store: page size, attempts per record, and which rows that never
/// had a record tag it adopts.
///
/// ```
/// use twofactor::seal::ResealOptions;
///
/// let options = ResealOptions::new().page_size(1_000).accept_untagged(true);
/// assert_eq!(options.get_page_size(), 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResealOptions {
    page_size: usize,
    max_attempts: u32,
    accept_untagged: bool,
    accept_unsealed: bool,
}

impl ResealOptions {
    /// Users listed per [`list_users`](ListUsers::list_users) call by default.
    pub const DEFAULT_PAGE_SIZE: usize = 500;
    /// Attempts per record by default before it is reported as
    /// [`ResealFailure::Contended`].
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;

    /// The defaults: [`Self::DEFAULT_PAGE_SIZE`], [`Self::DEFAULT_MAX_ATTEMPTS`], and only
    /// tagged rows (a row without a tag is reported as failed and left as it is).
    #[must_use]
    pub const fn new() -> Self {
        ResealOptions {
            page_size: Self::DEFAULT_PAGE_SIZE,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            accept_untagged: false,
            accept_unsealed: false,
        }
    }

    /// Users listed per page (at least 1; `0` is taken as 1).
    #[must_use]
    pub const fn page_size(mut self, n: usize) -> Self {
        self.page_size = if n == 0 { 1 } else { n };
        self
    }

    /// Attempts per record when concurrent saves keep winning the compare-and-swap (at least
    /// 1; `0` is taken as 1).
    #[must_use]
    pub const fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = if n == 0 { 1 } else { n };
        self
    }

    /// Adopt format-1 rows (sealed by 0.1.0, which did not tag records): they are opened as
    /// [`SealedStore::accept_untagged`] opens them and rewritten with a tag. Only for the
    /// migration: with it on, a row a table writer rewrote in format 1 is adopted too.
    #[must_use]
    pub const fn accept_untagged(mut self, accept: bool) -> Self {
        self.accept_untagged = accept;
        self
    }

    /// Adopt the rows of a bare (never sealed) store: opened as
    /// [`SealedStore::accept_unsealed`] opens them (secrets in the clear, no tag, nothing
    /// sealed) and rewritten sealed and tagged. Only for the migration into sealing: with it
    /// on, a row a table writer made look bare is adopted too. A row that holds a sealed
    /// secret but no tag (a stripped tag) is never adopted.
    #[must_use]
    pub const fn accept_unsealed(mut self, accept: bool) -> Self {
        self.accept_unsealed = accept;
        self
    }

    /// The configured page size.
    #[must_use]
    pub const fn get_page_size(&self) -> usize {
        self.page_size
    }

    /// The configured attempts per record.
    #[must_use]
    pub const fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

impl Default for ResealOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`reseal`] did. It names users, never secrets.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResealReport<E> {
    /// Records rewritten under the current key: secrets sealed anew under its
    /// secret-encryption subkey, a new tag under its record-MAC subkey.
    pub rewritten: usize,
    /// Of [`rewritten`](Self::rewritten), the rows that had no tag before (format 1, or a
    /// bare store's row), adopted under the options that allow them.
    pub adopted: usize,
    /// Records already sealed and tagged under the current key's subkeys: left untouched.
    pub already_current: usize,
    /// Records left as they were, and why: a row that fails authentication (tampered, a tag
    /// stripped, a key no longer in the ring), a row without a tag the options do not adopt,
    /// a store error, or a record that kept changing. Look into each before dropping a key:
    /// a record that fails here does not open without it either.
    pub failed: Vec<(UserId, ResealFailure<E>)>,
    /// Users whose recovery codes are hashed under a code key other than the current key's
    /// code-hash subkey (an older ring key's, or a legacy one). Re-sealing cannot rehash
    /// them (only the user has the codes): they keep checking while that key is in the ring
    /// (see [`Keyring::service_keys`]), and fail closed once it is dropped, until the user
    /// regenerates them. Unkeyed sets (salted SHA-256, from 0.1.0 or a service without a code
    /// key) are not listed: they need no key.
    pub old_code_hashes: Vec<UserId>,
}

impl<E> ResealReport<E> {
    fn new() -> Self {
        ResealReport {
            rewritten: 0,
            adopted: 0,
            already_current: 0,
            failed: Vec::new(),
            old_code_hashes: Vec::new(),
        }
    }

    /// Whether every record listed is now under the current key (nothing failed): the older
    /// keys can be dropped from the ring, as far as the records go (see
    /// [`old_code_hashes`](Self::old_code_hashes) for recovery codes).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Why [`reseal`] left a record as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResealFailure<E> {
    /// The record could not be loaded or opened: the error [`SealedStore::load`] gives
    /// (under the options' acceptance rules).
    #[error("the record could not be opened")]
    Load(#[source] SealedStoreError<E>),
    /// The rewritten record could not be saved.
    #[error("the record could not be saved")]
    Save(#[source] SealedStoreError<E>),
    /// Concurrent saves won the compare-and-swap on every attempt: the record is unchanged by
    /// re-sealing (and was saved, under the current key, by whoever won). Run again.
    #[error("the record changed during each of {attempts} attempts")]
    Contended {
        /// Attempts made.
        attempts: u32,
    },
}

/// [`reseal`] stopped because the store could not list its users. Records handled before are
/// in [`report`](Self::report); re-sealing again is safe (records already current are left
/// untouched).
#[derive(Debug, thiserror::Error)]
#[error("re-sealing stopped: the store could not list its users")]
#[non_exhaustive]
pub struct ResealInterrupted<E> {
    /// What was done before.
    pub report: ResealReport<E>,
    /// The store's error.
    #[source]
    pub source: E,
}

/// Rewrites every record of `store` (the bare store a [`SealedStore`] wraps) under the
/// current key of `keyring`, so that the older keys can be dropped from the ring.
///
/// Each record is opened as a `SealedStore` with the same keyring opens it (any key in the
/// ring, legacy forms included, untagged rows only as `options` allow) and, unless it is
/// already sealed and tagged under the current key's subkeys, saved back unchanged in
/// content: secrets sealed anew under the current secret-encryption subkey, a new tag under
/// the current record-MAC subkey. The save is the store's compare-and-swap against the
/// version just loaded: when a concurrent save (a login) wins, the record is loaded again and
/// the attempt repeated, so a concurrent login is never lost (its save stands, or it retries
/// against the re-sealed record) and never granted twice (the re-sealed record carries its
/// last used step, and a re-seal never writes over a newer version).
///
/// Run it after every app server uses the new keyring (a server still sealing with the old
/// key would write old-key records behind it). Then, if [`ResealReport::is_complete`], drop
/// the old key from the ring. Re-running is safe and cheap: current records are only read.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::seal::{reseal, Keyring, ResealOptions, SealedStore};
/// use twofactor::store::UserStore;
/// use twofactor::account::TwoFactorRecord;
/// use twofactor::{MemoryStore, UserId};
///
/// let store = MemoryStore::new();
/// let old = Keyring::new("2026-01", &[1; 32])?;
/// let _ = SealedStore::new(&store, &old)
///     .save(&UserId::new("alice"), &TwoFactorRecord::default(), None)
///     .await?;
///
/// // Rotate: the new key is current, the old one still opens.
/// let rotated = Keyring::new("2026-11", &[2; 32])?.with_old_key("2026-01", &[1; 32])?;
/// let report = reseal(&store, &rotated, &ResealOptions::new()).await?;
/// assert_eq!((report.rewritten, report.already_current), (1, 0));
/// assert!(report.is_complete());
///
/// // The old key can go.
/// let new_only = Keyring::new("2026-11", &[2; 32])?;
/// assert!(SealedStore::new(&store, &new_only).load(&UserId::new("alice")).await?.is_some());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`ResealInterrupted`] when listing the users fails (with what was done before); a record
/// that cannot be re-sealed is reported in [`ResealReport::failed`], and the walk goes on.
pub async fn reseal<S: ListUsers>(
    store: &S,
    keyring: &Keyring,
    options: &ResealOptions,
) -> Result<ResealReport<S::Error>, ResealInterrupted<S::Error>> {
    // A walk reads each record once: nothing to cache.
    let sealed = SealedStore::new(store, keyring)
        .accept_untagged(options.accept_untagged)
        .accept_unsealed(options.accept_unsealed)
        .cache_capacity(0);
    // Opens only what is sealed and tagged under the current key's subkeys.
    let current_only = keyring.current_only();
    let current = SealedStore::new(store, &current_only).cache_capacity(0);
    let code_keys = CodeKeys {
        current: Some(keyring.current_code_key().clone()),
        old: Vec::new(),
    };
    let mut report = ResealReport::new();
    let mut after: Option<UserId> = None;
    loop {
        let page = match store.list_users(after.as_ref(), options.page_size).await {
            Ok(page) => page,
            Err(source) => return Err(ResealInterrupted { report, source }),
        };
        for user in &page {
            let done = reseal_one(&sealed, &current, user, options.max_attempts).await;
            match done {
                Ok(Some((record, outcome))) => {
                    match outcome {
                        Done::Current => report.already_current += 1,
                        Done::Rewritten { adopted } => {
                            report.rewritten += 1;
                            report.adopted += usize::from(adopted);
                        }
                    }
                    if has_old_code_hashes(&record, &code_keys) {
                        report.old_code_hashes.push(user.clone());
                    }
                }
                // Deleted since it was listed: nothing to re-seal.
                Ok(None) => {}
                Err(failure) => report.failed.push((user.clone(), failure)),
            }
        }
        if page.len() < options.page_size {
            return Ok(report);
        }
        after = page.into_iter().next_back();
    }
}

/// What happened to one record.
enum Done {
    Current,
    Rewritten { adopted: bool },
}

/// Re-seals `user`'s record: the record as loaded and what was done, `None` if it is gone.
async fn reseal_one<S: UserStore>(
    sealed: &SealedStore<&S, &Keyring>,
    current: &SealedStore<&S, &Keyring>,
    user: &UserId,
    max_attempts: u32,
) -> Result<Option<(TwoFactorRecord, Done)>, ResealFailure<S::Error>> {
    for _ in 0..max_attempts {
        // Sealed and tagged under the current subkeys already: nothing to write.
        let adopted = match current.load(user).await {
            Ok(Some(loaded)) => return Ok(Some((loaded.record, Done::Current))),
            Ok(None) => return Ok(None),
            Err(SealedStoreError::Untagged { .. } | SealedStoreError::Unsealed { .. }) => true,
            // Another key or a legacy form (or a failure the load below reports).
            Err(_) => false,
        };
        let loaded = match sealed.load(user).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return Ok(None),
            Err(err) => return Err(ResealFailure::Load(err)),
        };
        match sealed
            .save(user, &loaded.record, Some(loaded.version))
            .await
        {
            Ok(SaveOutcome::Saved(_)) => {
                return Ok(Some((loaded.record, Done::Rewritten { adopted })));
            }
            // Someone saved first (their save is under the current key if their keyring is
            // this one): load again.
            Ok(SaveOutcome::Conflict) => {}
            Err(err) => return Err(ResealFailure::Save(err)),
        }
    }
    Err(ResealFailure::Contended {
        attempts: max_attempts,
    })
}

/// Whether `record`'s recovery codes are hashed under a code key other than the current one.
fn has_old_code_hashes(record: &TwoFactorRecord, current: &CodeKeys) -> bool {
    record
        .recovery
        .as_ref()
        .is_some_and(|set| set.ensure_key(current).is_err())
}
