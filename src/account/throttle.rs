//! Sliding-window rate limits: at most `limit` events in any `window` seconds.
//!
//! The log keeps the times of recent events (at most `limit` of them), so "5 per hour" holds
//! for every hour, not per calendar hour. Code checks are admitted (counted) *before* the code
//! is verified, and the count rides on the same compare-and-swap save as the result: concurrent
//! requests can never exceed the limit.

use crate::audit::AuditKind;

use super::{Refusal, Settings, Transition, TwoFactorRecord};

impl TwoFactorRecord {
    /// Counts one code check against the per-user throttle, *before* any code is looked at.
    ///
    /// `Ok` is a copy of the record with the attempt counted: the caller verifies the code and
    /// saves that copy with the verdict, so the count and the result ride on one
    /// compare-and-swap. `Err` is the refusal for a throttled attempt, built with `refused`
    /// around [`Refusal::Throttled`]: the record unchanged (nothing to save) and the audit
    /// event. Every path that checks a code goes through here.
    pub(crate) fn admit_code_check<O>(
        &self,
        now: u64,
        settings: &Settings,
        refused: impl FnOnce(Refusal) -> O,
    ) -> Result<Self, Box<Transition<O>>> {
        let mut next = self.clone();
        match next.code_checks.admit(
            now,
            settings.code_checks_per_window,
            settings.code_check_window,
        ) {
            Ok(()) => Ok(next),
            Err(retry_at) => Err(Box::new(
                Transition::new(
                    self.clone(),
                    false,
                    refused(Refusal::Throttled { retry_at }),
                )
                .event(AuditKind::LoginThrottled { retry_at }),
            )),
        }
    }
}

/// Times of recent events, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub(crate) struct RateLimit {
    recent: Vec<u64>,
}

impl RateLimit {
    /// Forgets events older than `window` at `now`.
    fn prune(&mut self, now: u64, window: u64) {
        self.recent.retain(|&t| now < t.saturating_add(window));
    }

    /// When the next event will be admitted, if not now.
    pub(crate) fn blocked_until(&self, now: u64, limit: u32, window: u64) -> Option<u64> {
        let live: Vec<u64> = self
            .recent
            .iter()
            .copied()
            .filter(|&t| now < t.saturating_add(window))
            .collect();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        if live.len() < limit {
            return None;
        }
        // The event that must leave the window before one more fits.
        live.get(live.len() - limit)
            .map(|t| t.saturating_add(window))
    }

    /// Counts an event at `now`, or refuses with the time it would be admitted.
    pub(crate) fn admit(&mut self, now: u64, limit: u32, window: u64) -> Result<(), u64> {
        if let Some(retry_at) = self.blocked_until(now, limit, window) {
            return Err(retry_at);
        }
        self.prune(now, window);
        self.recent.push(now);
        // Keep the log sorted even if the clock stepped back.
        self.recent.sort_unstable();
        Ok(())
    }

    /// Takes back one event counted at `at` (a mail send that failed). Whether there was one.
    pub(crate) fn refund(&mut self, at: u64) -> bool {
        match self.recent.iter().position(|&t| t == at) {
            Some(i) => {
                self.recent.remove(i);
                true
            }
            None => false,
        }
    }

    /// Events still inside the window at `now`.
    #[cfg(test)]
    pub(crate) fn count(&self, now: u64, window: u64) -> usize {
        self.recent
            .iter()
            .filter(|&&t| now < t.saturating_add(window))
            .count()
    }

    /// Forgets every event (after a successful check).
    pub(crate) fn reset(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_hour_sliding() {
        let mut r = RateLimit::default();
        for t in [0, 100, 200, 300, 400] {
            assert_eq!(r.admit(t, 5, 3_600), Ok(()));
        }
        assert_eq!(r.admit(500, 5, 3_600), Err(3_600));
        assert_eq!(r.admit(3_599, 5, 3_600), Err(3_600));
        // The first event leaves the window at exactly 3600.
        assert_eq!(r.admit(3_600, 5, 3_600), Ok(()));
        assert_eq!(r.admit(3_650, 5, 3_600), Err(3_700));
        assert_eq!(r.count(3_650, 3_600), 5);
        assert_eq!(r.admit(3_700, 5, 3_600), Ok(()));
    }

    #[test]
    fn refused_events_are_not_counted_and_reset_clears() {
        let mut r = RateLimit::default();
        assert_eq!(r.admit(0, 1, 60), Ok(()));
        assert_eq!(r.admit(1, 1, 60), Err(60));
        assert_eq!(r.admit(2, 1, 60), Err(60));
        assert_eq!(r.count(2, 60), 1);
        r.reset();
        assert_eq!(r.admit(3, 1, 60), Ok(()));
        assert_eq!(r.blocked_until(3, 1, 60), Some(63));
    }

    #[test]
    fn a_refund_takes_back_one_event_at_that_time() {
        let mut r = RateLimit::default();
        for t in [10, 20, 20] {
            assert_eq!(r.admit(t, 3, 60), Ok(()));
        }
        assert_eq!(r.admit(30, 3, 60), Err(70));
        assert!(r.refund(20));
        assert_eq!(r.count(30, 60), 2);
        assert_eq!(r.admit(30, 3, 60), Ok(()));
        // Nothing counted at that time: nothing taken back.
        assert!(!r.refund(25));
        assert_eq!(r.count(30, 60), 3);
        assert!(r.refund(20) && !r.refund(20));
    }

    #[test]
    fn log_stays_bounded() {
        let mut r = RateLimit::default();
        for t in 0..1_000u64 {
            let _ = r.admit(t * 1_000, 5, 3_600);
        }
        assert!(r.recent.len() <= 5);
    }
}
