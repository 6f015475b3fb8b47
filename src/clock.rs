//! Time, injected: the core never reads a clock itself.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current Unix time in seconds.
///
/// The service asks its clock once per operation and passes the value down; tests use
/// [`ManualClock`](crate::testing::ManualClock) so RFC vectors, expiries and grace periods run at fixed times.
pub trait Clock: Send + Sync {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> u64;
}

/// The system's wall clock. A clock before 1970 reads as 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> u64 {
        (**self).now()
    }
}
