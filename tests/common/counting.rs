//! [`Counting`]: a store wrapper for tests that counts loads, saves and conflicting saves, and
//! can widen the window between a load and the save that follows it, as a network round trip
//! would (the memory store never yields on its own, so its tasks would rarely overlap).
//!
//! Used by `tests/common` (`mod counting`) and, through `#[path]`, by test binaries that do not
//! include the rest of `tests/common`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use twofactor::UserId;
use twofactor::account::TwoFactorRecord;
use twofactor::store::{SaveOutcome, UserStore, Version, Versioned};

/// What a [`Counting`] store does after each load.
#[derive(Debug, Clone, Copy)]
pub enum Pause {
    /// Nothing.
    None,
    /// Yield to the runtime once.
    Yield,
    /// Sleep this long: long enough for other requests to load the same version.
    Sleep(Duration),
}

/// Counts the statements of the store it wraps: proof that a concurrency test exercised
/// compare-and-swap rather than passing by running serially, and of how many statements an
/// operation costs.
pub struct Counting<S> {
    inner: S,
    pause: Pause,
    loads: AtomicU64,
    saves: AtomicU64,
    conflicts: AtomicU64,
}

impl<S> Counting<S> {
    /// Wraps `inner`, pausing as `pause` says after each load.
    pub fn new(inner: S, pause: Pause) -> Self {
        Counting {
            inner,
            pause,
            loads: AtomicU64::new(0),
            saves: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        }
    }

    /// The wrapped store (its statements are not counted).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Saves that conflicted since the last reset.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::SeqCst)
    }

    /// (loads, saves, conflicting saves) since the last reset.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.loads.load(Ordering::SeqCst),
            self.saves.load(Ordering::SeqCst),
            self.conflicts(),
        )
    }

    /// Sets every count to zero.
    pub fn reset(&self) {
        for n in [&self.loads, &self.saves, &self.conflicts] {
            n.store(0, Ordering::SeqCst);
        }
    }
}

impl<S: UserStore> UserStore for Counting<S> {
    type Error = S::Error;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, Self::Error> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let loaded = self.inner.load(user).await;
        match self.pause {
            Pause::None => {}
            Pause::Yield => tokio::task::yield_now().await,
            Pause::Sleep(d) => tokio::time::sleep(d).await,
        }
        loaded
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, Self::Error> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        let outcome = self.inner.save(user, record, expected).await?;
        if outcome == SaveOutcome::Conflict {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }
}

/// Listing passes through, uncounted (it is no load or save).
impl<S: twofactor::store::ListUsers> twofactor::store::ListUsers for Counting<S> {
    async fn list_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, Self::Error> {
        self.inner.list_users(after, limit).await
    }
}
