//! The 2FA domain, sans-IO: one [`TwoFactorRecord`] per user and pure transitions on it.

use core::fmt;

/// Identifies a user of the host application.
///
/// Hosts key users by integers, UUIDs or names; all convert into this string newtype.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct UserId(String);

impl UserId {
    /// Wraps a host's user identifier.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        UserId(id.into())
    }
    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        UserId(s.to_owned())
    }
}
impl From<String> for UserId {
    fn from(s: String) -> Self {
        UserId(s)
    }
}
impl From<u64> for UserId {
    fn from(n: u64) -> Self {
        UserId(n.to_string())
    }
}
impl From<i64> for UserId {
    fn from(n: i64) -> Self {
        UserId(n.to_string())
    }
}
impl From<u32> for UserId {
    fn from(n: u32) -> Self {
        UserId(n.to_string())
    }
}
impl From<i32> for UserId {
    fn from(n: i32) -> Self {
        UserId(n.to_string())
    }
}

/// All mutable 2FA state of one user. Placeholder: the domain issue fills it in.
#[derive(Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TwoFactorRecord {}

impl fmt::Debug for TwoFactorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorRecord").finish_non_exhaustive()
    }
}
