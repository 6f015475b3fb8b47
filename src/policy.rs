//! Who must use two-factor authentication, and what happens to those who have not set it up.
//!
//! An [`EnforcementPolicy`] answers one question at every login, computed fresh (never
//! cached): for this [`Principal`] with this [`EnrollmentStatus`] at `now`, what is the
//! [`Requirement`]? The login flow does the rest.

use std::collections::BTreeSet;

use crate::account::UserId;

/// What the host knows about the person logging in, as far as policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Principal {
    /// The user.
    pub user: UserId,
    /// The host's roles or groups for this user (`"employee"`, `"portal"`, `"admin"`, ...).
    pub roles: BTreeSet<String>,
    /// The tenant (organisation, company, workspace) the user logs into, if the host has them.
    pub tenant: Option<String>,
    /// Whether this is the host's superuser (a break-glass account a policy may exempt).
    pub superuser: bool,
    /// When the account was created (Unix seconds), for grace periods that start then.
    pub created_at: Option<u64>,
}

impl Principal {
    /// A principal with no roles, no tenant, not a superuser.
    #[must_use]
    pub fn new(user: impl Into<UserId>) -> Self {
        Principal {
            user: user.into(),
            roles: BTreeSet::new(),
            tenant: None,
            superuser: false,
            created_at: None,
        }
    }
    /// Adds a role.
    #[must_use]
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.insert(role.into());
        self
    }
    /// Sets the tenant.
    #[must_use]
    pub fn in_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// Marks the principal as the superuser.
    #[must_use]
    pub fn superuser(mut self, superuser: bool) -> Self {
        self.superuser = superuser;
        self
    }
    /// Sets when the account was created.
    #[must_use]
    pub fn created_at(mut self, unix_time: u64) -> Self {
        self.created_at = Some(unix_time);
        self
    }
    /// Whether the principal has `role`.
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}

/// What the policy may know about the user's 2FA set-up (never secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct EnrollmentStatus {
    /// An authenticator is confirmed and active.
    pub enrolled: bool,
    /// When it was confirmed (Unix seconds).
    pub enrolled_at: Option<u64>,
}

impl EnrollmentStatus {
    /// Status of a user without 2FA.
    #[must_use]
    pub const fn unenrolled() -> Self {
        EnrollmentStatus {
            enrolled: false,
            enrolled_at: None,
        }
    }
    /// Status of a user enrolled at `unix_time`.
    #[must_use]
    pub const fn enrolled_at(unix_time: u64) -> Self {
        EnrollmentStatus {
            enrolled: true,
            enrolled_at: Some(unix_time),
        }
    }
}

/// What happens at login to a user who must use 2FA but has no authenticator yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WhenUnenrolled {
    /// The login stops until the user sets up an authenticator (kw_2fa's forced enrollment).
    BlockUntilEnrolled,
    /// A one-time code is mailed at each login instead (Odoo's "2FA by mail").
    MailCode,
}

/// The answer of an [`EnforcementPolicy`] for one user at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Requirement {
    /// Never ask for a second factor, even if the user is enrolled (2FA switched off, e.g. by
    /// a tenant owner).
    Off,
    /// Ask enrolled users for their code; let unenrolled users in with the password alone.
    Optional,
    /// The user must pass a second factor.
    Required {
        /// What happens while the user has no authenticator.
        when_unenrolled: WhenUnenrolled,
        /// Until this Unix time an unenrolled user is still let in (and told to enroll);
        /// computed fresh at each check.
        grace_until: Option<u64>,
        /// Whether "don't ask again on this device" may skip the challenge.
        trusted_devices: bool,
    },
    /// Explicitly exempt from 2FA (e.g. the superuser): never asked, and the exemption is
    /// recorded in the audit trail every time it is applied.
    Exempt {
        /// Why, for the audit trail (`"superuser"`).
        reason: String,
    },
}

impl Requirement {
    /// Required, blocking unenrolled users, no grace period, trusted devices allowed.
    #[must_use]
    pub const fn required() -> Self {
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: None,
            trusted_devices: true,
        }
    }
}

/// Decides, for a user at a moment, whether a second factor is required.
///
/// Implement it for your own rules, use a closure (`Fn(&Principal, &EnrollmentStatus, u64) ->
/// Requirement` implements it), or compose the built-ins.
///
/// ```
/// use twofactor::policy::{EnforcementPolicy, EnrollmentStatus, Principal, Requirement};
///
/// // Staff must use 2FA; everyone else may opt in.
/// let policy = |p: &Principal, _: &EnrollmentStatus, _now: u64| {
///     if p.has_role("staff") { Requirement::required() } else { Requirement::Optional }
/// };
/// let alice = Principal::new("alice").with_role("staff");
/// assert_eq!(
///     policy.requirement(&alice, &EnrollmentStatus::unenrolled(), 0),
///     Requirement::required()
/// );
/// ```
pub trait EnforcementPolicy: Send + Sync {
    /// The requirement for `principal`, whose 2FA status is `status`, at Unix time `now`.
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement;
}

impl<F> EnforcementPolicy for F
where
    F: Fn(&Principal, &EnrollmentStatus, u64) -> Requirement + Send + Sync,
{
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        self(principal, status, now)
    }
}

impl<P: EnforcementPolicy + ?Sized> EnforcementPolicy for std::sync::Arc<P> {
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        (**self).requirement(principal, status, now)
    }
}
