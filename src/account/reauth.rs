//! [`Reauthenticated`]: proof that the host checked the password recently.

/// How far in the future a proof may be dated (clock differences between app servers).
const FUTURE_LEEWAY: u64 = 60;

/// Proof, constructed by the host, that it checked the user's password (or an equivalent
/// primary credential) at a given time.
///
/// Sensitive operations (starting enrollment, disabling 2FA, regenerating recovery codes)
/// require one no older than [`Settings::reauth_max_age`](super::Settings::reauth_max_age)
/// (10 minutes by default). Construct it only right after a successful password check, with
/// the time of that check.
///
/// ```
/// use twofactor::account::Reauthenticated;
///
/// let proof = Reauthenticated::at(1_000);
/// assert!(proof.is_fresh(1_599, 600));
/// assert!(!proof.is_fresh(1_600, 600)); // exactly 600 s later: stale
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Reauthenticated {
    at: u64,
}

impl Reauthenticated {
    /// The password was checked at `unix_time`.
    pub const fn at(unix_time: u64) -> Self {
        Reauthenticated { at: unix_time }
    }

    /// When the password was checked.
    #[must_use]
    pub const fn checked_at(&self) -> u64 {
        self.at
    }

    /// Whether the check is younger than `max_age` seconds at `now` (a proof dated more than a
    /// minute in the future is not).
    #[must_use]
    pub const fn is_fresh(&self, now: u64, max_age: u64) -> bool {
        self.at <= now.saturating_add(FUTURE_LEEWAY) && now < self.at.saturating_add(max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_edges() {
        let p = Reauthenticated::at(10_000);
        assert!(p.is_fresh(10_000, 600));
        assert!(p.is_fresh(10_599, 600));
        assert!(!p.is_fresh(10_600, 600));
        assert!(p.is_fresh(9_940, 600)); // 60 s in the future: leeway
        assert!(!p.is_fresh(9_939, 600));
        assert!(Reauthenticated::at(u64::MAX).is_fresh(u64::MAX - 1, 600));
    }
}
