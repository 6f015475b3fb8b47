//! Who must use two-factor authentication, and what happens to those who have not set it up.
//!
//! An [`EnforcementPolicy`] answers one question at every login, computed fresh (never
//! cached): for this [`Principal`] with this [`EnrollmentStatus`] at `now`, what is the
//! [`Requirement`]? The login flow does the rest.
//!
//! # Built-in policies
//!
//! | policy | answer | reference product |
//! |---|---|---|
//! | [`Optional`] | `Optional`: users opt in from their profile | Odoo's built-in 2FA |
//! | [`RequiredForAll`] | `Required` for everyone | Odoo "All users", kw_2fa |
//! | [`RequiredForRoles`] | `Required` for listed roles, another policy for the rest | Odoo "Employees only" |
//! | [`PerTenant`] | the inner policy where an owner switched 2FA on; elsewhere never a password-only login for an enrolled user unless the owner switched 2FA off (audited exemption) | Onum |
//!
//! and combinators, also available fluently through [`PolicyExt`]:
//!
//! | combinator | effect | reference product |
//! |---|---|---|
//! | [`SuperuserExempt`] | an unenrolled superuser is `Exempt` (audited) instead of `Required` | kw_2fa's root |
//! | [`GracePeriod`] | `Required` gets a deadline computed at every check, from a date or account creation | |
//! | [`NoTrustedDevices`] | `Required` and `Optional` never let "remember this device" skip the code | kw_2fa |
//!
//! ```
//! use std::time::Duration;
//! use twofactor::policy::{
//!     EnforcementPolicy, EnrollmentStatus, GraceStart, PolicyExt, Principal, Requirement,
//!     RequiredForRoles, WhenUnenrolled,
//! };
//!
//! // Employees must use 2FA (a mailed code until they set up an app), with 14 days from
//! // account creation to do so; the superuser is exempt; everyone else may opt in.
//! let policy = RequiredForRoles::new(["employee"], WhenUnenrolled::MailCode)
//!     .with_grace_period(GraceStart::AccountCreated, Duration::from_secs(14 * 86_400))
//!     .exempt_superuser();
//!
//! let new_hire = Principal::new("ann").with_role("employee").created_at(1_000);
//! assert!(matches!(
//!     policy.requirement(&new_hire, &EnrollmentStatus::unenrolled(), 2_000),
//!     Requirement::Required { grace_until: Some(1_210_600), .. }
//! ));
//! ```

use std::collections::BTreeSet;

use crate::vocabulary::UserId;

/// What the host knows about the person logging in, as far as policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
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
    /// 2FA is off: nobody is asked to set it up, and users without an active authenticator
    /// log in with the password alone.
    ///
    /// Fail closed: a user **with** an active authenticator is still challenged (as under
    /// [`Requirement::Optional`], without trusted devices), whatever policy answered `Off`. To
    /// let such a user in on the password alone, answer [`Requirement::Exempt`], which the
    /// audit trail records at every login ([`PerTenant`] does so for a tenant whose owner
    /// switched 2FA off).
    Off,
    /// Ask enrolled users for their code; let unenrolled users in with the password alone.
    Optional {
        /// Whether "don't ask again on this device" may skip an enrolled user's challenge.
        trusted_devices: bool,
    },
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
    /// Required, and only a **phishing-resistant** factor will do: a security key (feature
    /// `webauthn`), never a TOTP or recovery code, nor a remembered device (for
    /// administrators, say; build it with [`PhishingResistantFor`]).
    ///
    /// - A user with a security key is asked for it alone: TOTP and recovery codes are not
    ///   offered at login and are refused if submitted.
    /// - A user without one (TOTP only) is **escalated**: their TOTP login is granted with
    ///   [`LoginGranted::needs_security_key`](crate::LoginGranted::needs_security_key) set,
    ///   and the host must send them to register a key before anything else (the axum module
    ///   does); once they have one, codes stop working for them.
    /// - A user with no authenticator is blocked until enrolled, as under
    ///   [`WhenUnenrolled::BlockUntilEnrolled`].
    ///
    /// See the [manual](crate::manual#security-keys-webauthn).
    PhishingResistant,
    /// Explicitly exempt from 2FA (e.g. the superuser): never asked, and the exemption is
    /// recorded in the audit trail every time it is applied.
    Exempt {
        /// Why, for the audit trail (`"superuser"`).
        reason: String,
    },
}

impl Requirement {
    /// Whether 2FA is required ([`Requirement::Required`], grace period or not): an enrolled
    /// user may not turn it off.
    #[must_use]
    pub const fn is_required(&self) -> bool {
        matches!(
            self,
            Requirement::Required { .. } | Requirement::PhishingResistant
        )
    }

    /// Required, blocking unenrolled users, no grace period, trusted devices allowed.
    #[must_use]
    pub const fn required() -> Self {
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
            grace_until: None,
            trusted_devices: true,
        }
    }

    /// Optional, trusted devices allowed: what the [`Optional`] policy answers. Wrap a policy
    /// in [`NoTrustedDevices`] to forbid them.
    #[must_use]
    pub const fn optional() -> Self {
        Requirement::Optional {
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
///     if p.has_role("staff") { Requirement::required() } else { Requirement::optional() }
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

// ---------------------------------------------------------------------------------------------
// Built-in policies
// ---------------------------------------------------------------------------------------------

/// Opt-in 2FA: users who set up an authenticator are asked for it, everyone else logs in with
/// the password alone (Odoo's default, enabled from the user's profile).
///
/// Trusted devices stay allowed; wrap in [`NoTrustedDevices`] to refuse them.
///
/// ```
/// use twofactor::policy::{EnforcementPolicy, EnrollmentStatus, Optional, Principal, Requirement};
///
/// let alice = Principal::new("alice");
/// assert_eq!(
///     Optional.requirement(&alice, &EnrollmentStatus::unenrolled(), 0),
///     Requirement::optional()
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Optional;

impl EnforcementPolicy for Optional {
    fn requirement(&self, _: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
        Requirement::optional()
    }
}

/// 2FA required for every user ("All users" in Odoo's enforcement setting, kw_2fa).
///
/// Trusted devices stay allowed; wrap in [`NoTrustedDevices`] to refuse them.
///
/// ```
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, Principal, Requirement, RequiredForAll, WhenUnenrolled,
/// };
///
/// let policy = RequiredForAll::new(WhenUnenrolled::MailCode);
/// let bob = Principal::new("bob").with_role("portal");
/// assert_eq!(
///     policy.requirement(&bob, &EnrollmentStatus::unenrolled(), 0),
///     Requirement::Required {
///         when_unenrolled: WhenUnenrolled::MailCode,
///         grace_until: None,
///         trusted_devices: true,
///     }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RequiredForAll {
    /// What happens at login while a user has no authenticator.
    pub when_unenrolled: WhenUnenrolled,
}

impl RequiredForAll {
    /// Required for everyone; unenrolled users meet `when_unenrolled`.
    #[must_use]
    pub const fn new(when_unenrolled: WhenUnenrolled) -> Self {
        RequiredForAll { when_unenrolled }
    }
}

impl Default for RequiredForAll {
    /// Required for everyone, blocking unenrolled users until they set up an authenticator.
    fn default() -> Self {
        RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled)
    }
}

impl EnforcementPolicy for RequiredForAll {
    fn requirement(&self, _: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
        Requirement::Required {
            when_unenrolled: self.when_unenrolled,
            grace_until: None,
            trusted_devices: true,
        }
    }
}

/// 2FA required for principals with any of the listed roles; everyone else gets what the
/// `otherwise` policy says ([`Optional`] by default).
///
/// Odoo's "Enforce two-factor authentication" setting is the choice between this
/// (`"Employees only"`) and [`RequiredForAll`] (`"All users"`, portal users included).
///
/// ```
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, Principal, Requirement, RequiredForRoles,
///     WhenUnenrolled,
/// };
///
/// let employees_only = RequiredForRoles::new(["employee"], WhenUnenrolled::MailCode);
/// let unenrolled = EnrollmentStatus::unenrolled();
///
/// let emma = Principal::new("emma").with_role("employee");
/// assert!(matches!(
///     employees_only.requirement(&emma, &unenrolled, 0),
///     Requirement::Required { when_unenrolled: WhenUnenrolled::MailCode, .. }
/// ));
/// let paul = Principal::new("paul").with_role("portal");
/// assert_eq!(employees_only.requirement(&paul, &unenrolled, 0), Requirement::optional());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RequiredForRoles<P = Optional> {
    roles: BTreeSet<String>,
    when_unenrolled: WhenUnenrolled,
    otherwise: P,
}

impl RequiredForRoles<Optional> {
    /// Required for principals with any role in `roles`, [`Optional`] for the others.
    ///
    /// An empty `roles` requires 2FA of nobody.
    #[must_use]
    pub fn new<I>(roles: I, when_unenrolled: WhenUnenrolled) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RequiredForRoles {
            roles: roles.into_iter().map(Into::into).collect(),
            when_unenrolled,
            otherwise: Optional,
        }
    }
}

impl<P> RequiredForRoles<P> {
    /// Principals without a listed role get what `otherwise` says instead of [`Optional`].
    ///
    /// ```
    /// use twofactor::policy::{
    ///     EnforcementPolicy, EnrollmentStatus, Principal, Requirement, RequiredForRoles,
    ///     WhenUnenrolled,
    /// };
    ///
    /// // Admins block until enrolled; everyone else gets a mailed code.
    /// let policy = RequiredForRoles::new(["admin"], WhenUnenrolled::BlockUntilEnrolled)
    ///     .otherwise(RequiredForRoles::new(["user"], WhenUnenrolled::MailCode));
    /// let user = Principal::new("u").with_role("user");
    /// assert!(matches!(
    ///     policy.requirement(&user, &EnrollmentStatus::unenrolled(), 0),
    ///     Requirement::Required { when_unenrolled: WhenUnenrolled::MailCode, .. }
    /// ));
    /// ```
    #[must_use]
    pub fn otherwise<Q>(self, otherwise: Q) -> RequiredForRoles<Q> {
        RequiredForRoles {
            roles: self.roles,
            when_unenrolled: self.when_unenrolled,
            otherwise,
        }
    }

    /// The roles for which 2FA is required.
    #[must_use]
    pub fn roles(&self) -> &BTreeSet<String> {
        &self.roles
    }

    /// What happens at login to an unenrolled principal with a listed role.
    #[must_use]
    pub const fn when_unenrolled(&self) -> WhenUnenrolled {
        self.when_unenrolled
    }
}

/// Requires a **phishing-resistant** factor ([`Requirement::PhishingResistant`]: a security
/// key) of principals with any of `roles`; everyone else gets what `inner` says. An explicit
/// [`Requirement::Exempt`] from `inner` stays (it is audited at every login).
///
/// ```
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, PhishingResistantFor, Principal, Requirement,
/// };
/// let policy = PhishingResistantFor::new(["admin"], |_: &Principal, _: &EnrollmentStatus, _: u64| {
///     Requirement::required()
/// });
/// let status = EnrollmentStatus::enrolled_at(1);
/// let root = Principal::new("root").with_role("admin");
/// assert_eq!(policy.requirement(&root, &status, 0), Requirement::PhishingResistant);
/// let emma = Principal::new("emma").with_role("staff");
/// assert_eq!(policy.requirement(&emma, &status, 0), Requirement::required());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhishingResistantFor<P> {
    roles: BTreeSet<String>,
    inner: P,
}

impl<P> PhishingResistantFor<P> {
    /// A security key for principals with any role in `roles`; `inner` for the others.
    #[must_use]
    pub fn new<I>(roles: I, inner: P) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        PhishingResistantFor {
            roles: roles.into_iter().map(Into::into).collect(),
            inner,
        }
    }

    /// The roles that need a security key.
    #[must_use]
    pub fn roles(&self) -> &BTreeSet<String> {
        &self.roles
    }

    /// The policy for everyone else.
    #[must_use]
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: EnforcementPolicy> EnforcementPolicy for PhishingResistantFor<P> {
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        let inner = self.inner.requirement(principal, status, now);
        let listed = principal.roles.iter().any(|r| self.roles.contains(r));
        match inner {
            Requirement::Exempt { .. } => inner,
            _ if listed => Requirement::PhishingResistant,
            _ => inner,
        }
    }
}

impl<P: EnforcementPolicy> EnforcementPolicy for RequiredForRoles<P> {
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        if principal.roles.iter().any(|r| self.roles.contains(r)) {
            Requirement::Required {
                when_unenrolled: self.when_unenrolled,
                grace_until: None,
                trusted_devices: true,
            }
        } else {
            self.otherwise.requirement(principal, status, now)
        }
    }
}

/// What [`PerTenant`] answers for a tenant it has no switch for: a tenant never switched, a
/// name that matches no switch (misspelled, differently cased: names match exactly), a
/// principal without a tenant, or every tenant while the host has not yet replayed the owners'
/// switches after a restart.
///
/// There is no default: a [`PerTenant`] is built with one of these. Neither lets a user with
/// an active authenticator in on the password alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum UnknownTenant {
    /// Opt-in: nobody is made to enroll, users without an authenticator log in with the
    /// password ([`Requirement::Off`]), and users with one are still asked for it
    /// ([`Requirement::Optional`]). Onum's state before an owner switches 2FA on.
    OptIn,
    /// The inner policy applies, as in a tenant switched on.
    Enforce,
}

/// The reason [`PerTenant`] records in [`Requirement::Exempt`] for an enrolled user of a
/// tenant whose owner switched 2FA off.
pub const TENANT_DISABLED_EXEMPTION: &str = "tenant-2fa-disabled";

/// A per-tenant switch an owner flips at runtime (Onum's "Two-factor authentication" toggle).
///
/// For a principal's tenant ([`Principal::tenant`]):
///
/// | tenant | user without an authenticator | user with an authenticator |
/// |---|---|---|
/// | switched on | `inner` ([`RequiredForAll`] by default) | `inner` |
/// | switched off by its owner | [`Requirement::Off`]: password only | [`Requirement::Exempt`] (`"tenant-2fa-disabled"`, audited at every login): password only, the authenticator is kept for when 2FA is switched back on |
/// | unknown, [`UnknownTenant::OptIn`] | [`Requirement::Off`] | [`Requirement::Optional`]: still asked for a code |
/// | unknown, [`UnknownTenant::Enforce`] | `inner` | `inner` |
///
/// "Unknown" is any tenant without a switch: never switched, misspelled, differently cased
/// (names match exactly), no tenant at all, or every tenant after a restart until the host has
/// replayed the owners' choices with [`PerTenant::set`]. So a user who set up an authenticator
/// is never let in on the password alone because a switch could not be found (fail closed);
/// only an owner's explicit "off" does that, and the audit trail records it.
///
/// The state is shared and thread-safe: keep the policy in an [`Arc`](std::sync::Arc), hand a
/// clone to the service (`Arc<P>` is itself a policy) and flip the switch from the owner's
/// settings page through the other; the next login sees the change. The switch lives in
/// memory only: persist the owner's choice in your database and replay it with
/// [`PerTenant::set`] at start-up.
///
/// ```
/// use std::sync::Arc;
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, PerTenant, Principal, RequiredForAll, Requirement,
///     UnknownTenant,
/// };
///
/// let policy = Arc::new(PerTenant::new(RequiredForAll::default(), UnknownTenant::OptIn));
/// let for_service = Arc::clone(&policy); // e.g. moved into the service
///
/// let ana = Principal::new("ana").in_tenant("acme");
/// let enrolled = EnrollmentStatus::enrolled_at(100);
/// let unenrolled = EnrollmentStatus::unenrolled();
/// // Never switched: opt-in. Whoever set up an authenticator is asked for it.
/// assert_eq!(for_service.requirement(&ana, &unenrolled, 200), Requirement::Off);
/// assert_eq!(for_service.requirement(&ana, &enrolled, 200), Requirement::optional());
///
/// policy.enable("acme"); // the owner flips the toggle
/// assert_eq!(for_service.requirement(&ana, &enrolled, 300), Requirement::required());
///
/// policy.disable("acme"); // and back: an explicit, audited exemption
/// assert_eq!(
///     for_service.requirement(&ana, &enrolled, 400),
///     Requirement::Exempt { reason: "tenant-2fa-disabled".into() }
/// );
/// ```
#[derive(Debug)]
pub struct PerTenant<P = RequiredForAll> {
    inner: P,
    unknown: UnknownTenant,
    tenants: std::sync::RwLock<std::collections::BTreeMap<String, bool>>,
}

impl<P> PerTenant<P> {
    /// A switch with no tenant switched yet: `inner` decides in tenants switched on, and
    /// `unknown` says what tenants without a switch get.
    ///
    /// ```
    /// use twofactor::policy::{
    ///     EnforcementPolicy, EnrollmentStatus, PerTenant, Principal, RequiredForAll,
    ///     Requirement, UnknownTenant,
    /// };
    ///
    /// // 2FA everywhere unless an owner switched it off.
    /// let policy = PerTenant::new(RequiredForAll::default(), UnknownTenant::Enforce);
    /// let nobody = Principal::new("n"); // no tenant
    /// assert_eq!(
    ///     policy.requirement(&nobody, &EnrollmentStatus::unenrolled(), 0),
    ///     Requirement::required()
    /// );
    /// policy.disable("legacy");
    /// assert!(!policy.is_enabled("legacy"));
    /// assert!(policy.is_enabled("anything-else"));
    /// ```
    #[must_use]
    pub fn new(inner: P, unknown: UnknownTenant) -> Self {
        PerTenant {
            inner,
            unknown,
            tenants: std::sync::RwLock::new(std::collections::BTreeMap::new()),
        }
    }

    /// Switches 2FA on for `tenant`.
    pub fn enable(&self, tenant: impl Into<String>) {
        self.set(tenant, true);
    }

    /// Switches 2FA off for `tenant`: its users log in with the password alone (those with an
    /// authenticator through an audited [`Requirement::Exempt`]).
    pub fn disable(&self, tenant: impl Into<String>) {
        self.set(tenant, false);
    }

    /// Switches 2FA on or off for `tenant`.
    pub fn set(&self, tenant: impl Into<String>, enabled: bool) {
        // A map of booleans cannot be left half-updated by a panic: ignore poisoning.
        let mut map = self
            .tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(tenant.into(), enabled);
    }

    /// The owner's switch for `tenant`: `None` if it has none (an unknown tenant).
    #[must_use]
    pub fn switch(&self, tenant: &str) -> Option<bool> {
        let map = self
            .tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(tenant).copied()
    }

    /// Whether `inner` decides for `tenant`: switched on, or unknown under
    /// [`UnknownTenant::Enforce`].
    #[must_use]
    pub fn is_enabled(&self, tenant: &str) -> bool {
        self.switch(tenant)
            .unwrap_or(self.unknown == UnknownTenant::Enforce)
    }

    /// What tenants without a switch get.
    #[must_use]
    pub const fn unknown_tenant(&self) -> UnknownTenant {
        self.unknown
    }

    /// The policy applied in enabled tenants.
    #[must_use]
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: EnforcementPolicy> EnforcementPolicy for PerTenant<P> {
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        let switch = principal.tenant.as_deref().and_then(|t| self.switch(t));
        match (switch, self.unknown) {
            (Some(true), _) | (None, UnknownTenant::Enforce) => {
                self.inner.requirement(principal, status, now)
            }
            // The owner's explicit choice: audited at every login of an enrolled user.
            (Some(false), _) if status.enrolled => Requirement::Exempt {
                reason: TENANT_DISABLED_EXEMPTION.to_owned(),
            },
            // No switch found: whoever set up an authenticator is still asked for it.
            (None, UnknownTenant::OptIn) if status.enrolled => Requirement::optional(),
            (Some(false), _) | (None, UnknownTenant::OptIn) => Requirement::Off,
        }
    }
}

/// The reason [`SuperuserExempt`] records in [`Requirement::Exempt`].
pub const SUPERUSER_EXEMPTION: &str = "superuser";

/// Exempts the host's superuser from an enforced requirement (kw_2fa's root bypass).
///
/// When `inner` says [`Requirement::Required`] and the principal is the superuser **without**
/// an authenticator, the answer is [`Requirement::Exempt`] with reason `"superuser"`
/// ([`SUPERUSER_EXEMPTION`]): the login goes through and the service records the exemption in
/// the audit trail every time. Everything else passes through unchanged:
/// - an enrolled superuser still answers their own challenge (kw_2fa falls back to the standard
///   TOTP check for the root user): the exemption covers the obligation to enroll, never a
///   factor someone chose to set up;
/// - `Off` and `Optional` stay as they are (nothing is enforced, so there is nothing to exempt
///   from, and an audit entry would be noise).
///
/// ```
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, Principal, Requirement, RequiredForAll,
///     SuperuserExempt,
/// };
///
/// let policy = SuperuserExempt::new(RequiredForAll::default());
/// let root = Principal::new("root").superuser(true);
/// assert_eq!(
///     policy.requirement(&root, &EnrollmentStatus::unenrolled(), 0),
///     Requirement::Exempt { reason: "superuser".into() }
/// );
/// let alice = Principal::new("alice");
/// assert_eq!(
///     policy.requirement(&alice, &EnrollmentStatus::unenrolled(), 0),
///     Requirement::required()
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SuperuserExempt<P> {
    inner: P,
}

impl<P> SuperuserExempt<P> {
    /// Wraps `inner`.
    #[must_use]
    pub const fn new(inner: P) -> Self {
        SuperuserExempt { inner }
    }
    /// The wrapped policy.
    #[must_use]
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: EnforcementPolicy> EnforcementPolicy for SuperuserExempt<P> {
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        let inner = self.inner.requirement(principal, status, now);
        match inner {
            Requirement::Required { .. } if principal.superuser && !status.enrolled => {
                Requirement::Exempt {
                    reason: SUPERUSER_EXEMPTION.to_owned(),
                }
            }
            other => other,
        }
    }
}

/// Where a [`GracePeriod`] starts counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum GraceStart {
    /// A fixed date (Unix seconds): when enforcement was switched on.
    Since(u64),
    /// The principal's [`Principal::created_at`]. A principal without one gets no grace.
    AccountCreated,
}

/// Lets unenrolled users in for a while after 2FA becomes required, so they can set it up.
///
/// When `inner` says [`Requirement::Required`], this sets `grace_until` to the start
/// ([`GraceStart`]) plus the period. The deadline is a pure function of the principal and the
/// configuration, recomputed at every check (never cached), so changing the period or the
/// account's creation date takes effect at the next login. If `inner` already carries an
/// earlier deadline, the earlier one is kept: stacking grace periods never extends one.
/// Other requirements pass through unchanged, and so does `Required` for an
/// [`AccountCreated`](GraceStart::AccountCreated) grace when the principal has no creation
/// date (no grace: fail closed).
///
/// The deadline is reported even once passed, so a host can say "your grace period ended on
/// ..."; the login flow compares it with `now`.
///
/// ```
/// use std::time::Duration;
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, GracePeriod, Principal, Requirement, RequiredForAll,
///     WhenUnenrolled,
/// };
///
/// const DAY: u64 = 86_400;
/// // New accounts have 7 days to set up an authenticator.
/// let policy = GracePeriod::after_account_creation(
///     RequiredForAll::default(),
///     Duration::from_secs(7 * DAY),
/// );
/// let newbie = Principal::new("n").created_at(1_000 * DAY);
/// assert_eq!(
///     policy.requirement(&newbie, &EnrollmentStatus::unenrolled(), 1_001 * DAY),
///     Requirement::Required {
///         when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
///         grace_until: Some(1_007 * DAY),
///         trusted_devices: true,
///     }
/// );
///
/// // Everyone has until 30 days after enforcement was switched on.
/// let policy = GracePeriod::since(RequiredForAll::default(), 5_000 * DAY, Duration::from_secs(30 * DAY));
/// assert_eq!(policy.deadline(&newbie), Some(5_030 * DAY));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GracePeriod<P> {
    inner: P,
    start: GraceStart,
    period_secs: u64,
}

impl<P> GracePeriod<P> {
    /// A grace period of `period` counted from `start`.
    #[must_use]
    pub const fn new(inner: P, start: GraceStart, period: std::time::Duration) -> Self {
        GracePeriod {
            inner,
            start,
            period_secs: period.as_secs(),
        }
    }

    /// A grace period of `period` counted from a fixed date (Unix seconds), typically when
    /// enforcement was switched on.
    #[must_use]
    pub const fn since(inner: P, enforced_at: u64, period: std::time::Duration) -> Self {
        GracePeriod::new(inner, GraceStart::Since(enforced_at), period)
    }

    /// A grace period of `period` counted from each principal's account creation
    /// ([`Principal::created_at`]).
    #[must_use]
    pub const fn after_account_creation(inner: P, period: std::time::Duration) -> Self {
        GracePeriod::new(inner, GraceStart::AccountCreated, period)
    }

    /// The deadline for `principal` (Unix seconds): start plus period, saturating. `None` for
    /// an [`AccountCreated`](GraceStart::AccountCreated) grace and a principal without a
    /// creation date.
    #[must_use]
    pub fn deadline(&self, principal: &Principal) -> Option<u64> {
        let start = match self.start {
            GraceStart::Since(t) => t,
            GraceStart::AccountCreated => principal.created_at?,
        };
        Some(start.saturating_add(self.period_secs))
    }

    /// The wrapped policy.
    #[must_use]
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: EnforcementPolicy> EnforcementPolicy for GracePeriod<P> {
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        match self.inner.requirement(principal, status, now) {
            Requirement::Required {
                when_unenrolled,
                grace_until,
                trusted_devices,
            } => {
                let ours = self.deadline(principal);
                let grace_until = match (grace_until, ours) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Requirement::Required {
                    when_unenrolled,
                    grace_until,
                    trusted_devices,
                }
            }
            other => other,
        }
    }
}

/// Refuses "don't ask again on this device": when `inner` says [`Requirement::Required`] or
/// [`Requirement::Optional`], sets `trusted_devices: false`, so an enrolled user is asked for a
/// code at every login (kw_2fa; or an opt-in deployment that forbids remembered devices).
/// `Off` and `Exempt` pass through unchanged: they ask for no code anyway.
///
/// ```
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, NoTrustedDevices, Optional, Principal, Requirement,
///     RequiredForAll,
/// };
///
/// let enrolled = EnrollmentStatus::enrolled_at(0);
/// let policy = NoTrustedDevices::new(RequiredForAll::default());
/// assert!(matches!(
///     policy.requirement(&Principal::new("a"), &enrolled, 0),
///     Requirement::Required { trusted_devices: false, .. }
/// ));
/// // Opt-in 2FA, but whoever opted in types a code at every login:
/// let opt_in = NoTrustedDevices::new(Optional);
/// assert_eq!(
///     opt_in.requirement(&Principal::new("a"), &enrolled, 0),
///     Requirement::Optional { trusted_devices: false }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NoTrustedDevices<P> {
    inner: P,
}

impl<P> NoTrustedDevices<P> {
    /// Wraps `inner`.
    #[must_use]
    pub const fn new(inner: P) -> Self {
        NoTrustedDevices { inner }
    }
    /// The wrapped policy.
    #[must_use]
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: EnforcementPolicy> EnforcementPolicy for NoTrustedDevices<P> {
    fn requirement(
        &self,
        principal: &Principal,
        status: &EnrollmentStatus,
        now: u64,
    ) -> Requirement {
        match self.inner.requirement(principal, status, now) {
            Requirement::Required {
                when_unenrolled,
                grace_until,
                ..
            } => Requirement::Required {
                when_unenrolled,
                grace_until,
                trusted_devices: false,
            },
            Requirement::Optional { .. } => Requirement::Optional {
                trusted_devices: false,
            },
            other => other,
        }
    }
}

/// Fluent composition of the built-in combinators, for every policy.
///
/// ```
/// use std::time::Duration;
/// use twofactor::policy::{
///     EnforcementPolicy, EnrollmentStatus, GraceStart, PolicyExt, Principal, Requirement,
///     RequiredForAll, WhenUnenrolled,
/// };
///
/// // kw_2fa: everyone must enroll, no remembered devices, the superuser is exempt.
/// let kw_2fa = RequiredForAll::default()
///     .without_trusted_devices()
///     .exempt_superuser();
/// assert_eq!(
///     kw_2fa.requirement(&Principal::new("a"), &EnrollmentStatus::unenrolled(), 0),
///     Requirement::Required {
///         when_unenrolled: WhenUnenrolled::BlockUntilEnrolled,
///         grace_until: None,
///         trusted_devices: false,
///     }
/// );
///
/// let with_grace = RequiredForAll::default()
///     .with_grace_period(GraceStart::Since(1_000), Duration::from_secs(500));
/// assert!(matches!(
///     with_grace.requirement(&Principal::new("a"), &EnrollmentStatus::unenrolled(), 0),
///     Requirement::Required { grace_until: Some(1_500), .. }
/// ));
/// ```
pub trait PolicyExt: EnforcementPolicy + Sized {
    /// Wraps in [`SuperuserExempt`].
    #[must_use]
    fn exempt_superuser(self) -> SuperuserExempt<Self> {
        SuperuserExempt::new(self)
    }

    /// Wraps in a [`GracePeriod`] of `period` from `start`.
    #[must_use]
    fn with_grace_period(
        self,
        start: GraceStart,
        period: std::time::Duration,
    ) -> GracePeriod<Self> {
        GracePeriod::new(self, start, period)
    }

    /// Wraps in [`NoTrustedDevices`].
    #[must_use]
    fn without_trusted_devices(self) -> NoTrustedDevices<Self> {
        NoTrustedDevices::new(self)
    }
}

impl<P: EnforcementPolicy> PolicyExt for P {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const DAY: u64 = 86_400;

    fn unenrolled() -> EnrollmentStatus {
        EnrollmentStatus::unenrolled()
    }
    fn enrolled() -> EnrollmentStatus {
        EnrollmentStatus::enrolled_at(10)
    }
    fn required(when: WhenUnenrolled, grace: Option<u64>, trusted: bool) -> Requirement {
        Requirement::Required {
            when_unenrolled: when,
            grace_until: grace,
            trusted_devices: trusted,
        }
    }
    const BLOCK: WhenUnenrolled = WhenUnenrolled::BlockUntilEnrolled;
    const MAIL: WhenUnenrolled = WhenUnenrolled::MailCode;

    #[test]
    fn optional_is_optional_for_everyone() {
        for p in [
            Principal::new("a"),
            Principal::new("root").superuser(true),
            Principal::new("e").with_role("employee").in_tenant("t"),
        ] {
            for s in [unenrolled(), enrolled()] {
                assert_eq!(Optional.requirement(&p, &s, 5), Requirement::optional());
            }
        }
    }

    #[test]
    fn required_for_all_carries_its_unenrolled_behaviour() {
        let p = Principal::new("a").with_role("portal");
        assert_eq!(
            RequiredForAll::new(MAIL).requirement(&p, &unenrolled(), 0),
            required(MAIL, None, true)
        );
        assert_eq!(
            RequiredForAll::default().requirement(&p, &enrolled(), 0),
            Requirement::required()
        );
    }

    #[test]
    fn required_for_roles_is_employees_only_versus_all_users() {
        let employees_only = RequiredForRoles::new(["employee"], MAIL);
        let all_users = RequiredForAll::new(MAIL);
        let employee = Principal::new("e").with_role("employee");
        let portal = Principal::new("p").with_role("portal");
        let both = Principal::new("b")
            .with_role("portal")
            .with_role("employee");
        let none = Principal::new("n");

        assert_eq!(
            employees_only.requirement(&employee, &unenrolled(), 0),
            required(MAIL, None, true)
        );
        assert_eq!(
            employees_only.requirement(&both, &unenrolled(), 0),
            required(MAIL, None, true)
        );
        assert_eq!(
            employees_only.requirement(&portal, &unenrolled(), 0),
            Requirement::optional()
        );
        assert_eq!(
            employees_only.requirement(&none, &enrolled(), 0),
            Requirement::optional()
        );
        for p in [&employee, &portal, &both, &none] {
            assert_eq!(
                all_users.requirement(p, &unenrolled(), 0),
                required(MAIL, None, true)
            );
        }
        assert_eq!(employees_only.when_unenrolled(), MAIL);
        assert!(employees_only.roles().contains("employee"));
    }

    #[test]
    fn required_for_roles_with_no_roles_requires_nobody() {
        let policy = RequiredForRoles::new(Vec::<String>::new(), BLOCK);
        let p = Principal::new("a").with_role("employee");
        assert_eq!(
            policy.requirement(&p, &unenrolled(), 0),
            Requirement::optional()
        );
    }

    #[test]
    fn required_for_roles_delegates_to_otherwise() {
        let policy = RequiredForRoles::new(["admin"], BLOCK).otherwise(RequiredForAll::new(MAIL));
        assert_eq!(
            policy.requirement(&Principal::new("a").with_role("admin"), &unenrolled(), 0),
            required(BLOCK, None, true)
        );
        assert_eq!(
            policy.requirement(&Principal::new("u"), &unenrolled(), 0),
            required(MAIL, None, true)
        );
        // The delegate sees the same inputs.
        let seen = RequiredForRoles::new(["admin"], BLOCK).otherwise(
            |p: &Principal, s: &EnrollmentStatus, now: u64| {
                assert_eq!(p.user.as_str(), "u");
                assert!(s.enrolled);
                assert_eq!(now, 77);
                Requirement::Off
            },
        );
        assert_eq!(
            seen.requirement(&Principal::new("u"), &enrolled(), 77),
            Requirement::Off
        );
    }

    fn opt_in() -> PerTenant {
        PerTenant::new(RequiredForAll::default(), UnknownTenant::OptIn)
    }

    fn tenant_disabled() -> Requirement {
        Requirement::Exempt {
            reason: TENANT_DISABLED_EXEMPTION.into(),
        }
    }

    #[test]
    fn per_tenant_is_opt_in_until_enabled_and_an_audited_exemption_when_disabled() {
        let policy = opt_in();
        let ana = Principal::new("ana").in_tenant("acme");
        assert!(!policy.is_enabled("acme"));
        assert_eq!(policy.switch("acme"), None);
        assert_eq!(
            policy.requirement(&ana, &enrolled(), 0),
            Requirement::optional()
        );
        assert_eq!(policy.requirement(&ana, &unenrolled(), 0), Requirement::Off);

        policy.enable("acme");
        assert!(policy.is_enabled("acme"));
        assert_eq!(policy.switch("acme"), Some(true));
        assert_eq!(
            policy.requirement(&ana, &unenrolled(), 0),
            Requirement::required()
        );
        assert_eq!(
            policy.requirement(&ana, &enrolled(), 0),
            Requirement::required()
        );

        policy.disable("acme");
        assert!(!policy.is_enabled("acme"));
        assert_eq!(policy.switch("acme"), Some(false));
        assert_eq!(policy.requirement(&ana, &enrolled(), 0), tenant_disabled());
        assert_eq!(policy.requirement(&ana, &unenrolled(), 0), Requirement::Off);
    }

    #[test]
    fn per_tenant_unknown_tenants_still_challenge_enrolled_users() {
        let policy = PerTenant::new(RequiredForAll::new(MAIL), UnknownTenant::OptIn);
        assert_eq!(policy.unknown_tenant(), UnknownTenant::OptIn);
        policy.enable("acme");
        let unknown = [
            Principal::new("o").in_tenant("globex"),
            Principal::new("n"),
            Principal::new("c").in_tenant("ACME"),
            Principal::new("c").in_tenant("Acme"),
            Principal::new("t").in_tenant("acmee"),
            Principal::new("s").in_tenant("acme "),
            Principal::new("e").in_tenant(""),
        ];
        for p in &unknown {
            assert_eq!(
                policy.requirement(p, &enrolled(), 0),
                Requirement::optional(),
                "{:?}",
                p.tenant
            );
            assert_eq!(policy.requirement(p, &unenrolled(), 0), Requirement::Off);
        }
        assert_eq!(
            policy.requirement(&Principal::new("a").in_tenant("acme"), &unenrolled(), 0),
            required(MAIL, None, true)
        );
        // Switches not restored yet (a fresh policy after a restart): the same, fail closed.
        let fresh = PerTenant::new(RequiredForAll::new(MAIL), UnknownTenant::OptIn);
        assert_eq!(
            fresh.requirement(&Principal::new("a").in_tenant("acme"), &enrolled(), 0),
            Requirement::optional()
        );
    }

    #[test]
    fn per_tenant_enforcing_unknown_tenants_until_disabled() {
        let policy = PerTenant::new(RequiredForAll::default(), UnknownTenant::Enforce);
        assert_eq!(policy.unknown_tenant(), UnknownTenant::Enforce);
        assert_eq!(
            policy.requirement(&Principal::new("n"), &unenrolled(), 0),
            Requirement::required()
        );
        assert_eq!(
            policy.requirement(&Principal::new("x").in_tenant("new"), &enrolled(), 0),
            Requirement::required()
        );
        policy.set("legacy", false);
        assert_eq!(
            policy.requirement(&Principal::new("l").in_tenant("legacy"), &enrolled(), 0),
            tenant_disabled()
        );
        assert_eq!(
            policy.requirement(&Principal::new("l").in_tenant("legacy"), &unenrolled(), 0),
            Requirement::Off
        );
    }

    #[test]
    fn per_tenant_switch_is_shared_across_threads() {
        let policy = Arc::new(opt_in());
        let service_side: Arc<PerTenant> = Arc::clone(&policy);
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let p = Arc::clone(&policy);
                std::thread::spawn(move || {
                    let tenant = format!("t{i}");
                    p.enable(tenant.clone());
                    if i % 2 == 1 {
                        p.disable(tenant);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread panicked");
        }
        for i in 0..8 {
            let p = Principal::new("u").in_tenant(format!("t{i}"));
            let expected = if i % 2 == 0 {
                Requirement::required()
            } else {
                tenant_disabled()
            };
            assert_eq!(service_side.requirement(&p, &enrolled(), 0), expected);
        }
    }

    #[test]
    fn per_tenant_survives_a_poisoned_lock() {
        let policy = Arc::new(opt_in());
        let p = Arc::clone(&policy);
        let _ = std::thread::spawn(move || {
            let _guard = p.tenants.write().expect("lock");
            panic!("poison the lock");
        })
        .join();
        policy.enable("acme");
        assert!(policy.is_enabled("acme"));
    }

    #[test]
    fn superuser_exempt_only_from_an_enforced_enrollment() {
        let policy = RequiredForAll::default().exempt_superuser();
        let root = Principal::new("root").superuser(true);
        assert_eq!(
            policy.requirement(&root, &unenrolled(), 0),
            Requirement::Exempt {
                reason: SUPERUSER_EXEMPTION.into()
            }
        );
        // An enrolled superuser still answers their own challenge.
        assert_eq!(
            policy.requirement(&root, &enrolled(), 0),
            Requirement::required()
        );
        // Everyone else gets the inner requirement.
        assert_eq!(
            policy.requirement(&Principal::new("a"), &unenrolled(), 0),
            Requirement::required()
        );
        // Nothing enforced: nothing to exempt from.
        assert_eq!(
            Optional
                .exempt_superuser()
                .requirement(&root, &unenrolled(), 0),
            Requirement::optional()
        );
        let off = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Off;
        assert_eq!(
            off.exempt_superuser().requirement(&root, &unenrolled(), 0),
            Requirement::Off
        );
        assert_eq!(policy.inner(), &RequiredForAll::default());
    }

    #[test]
    fn grace_period_since_a_fixed_date() {
        let policy = GracePeriod::since(
            RequiredForAll::new(MAIL),
            100 * DAY,
            Duration::from_secs(30 * DAY),
        );
        let p = Principal::new("a").created_at(5);
        for now in [0, 100 * DAY, 130 * DAY, 500 * DAY] {
            assert_eq!(
                policy.requirement(&p, &unenrolled(), now),
                required(MAIL, Some(130 * DAY), true)
            );
        }
        assert_eq!(policy.deadline(&Principal::new("no-date")), Some(130 * DAY));
    }

    #[test]
    fn grace_period_after_account_creation_is_per_principal_and_fresh() {
        let policy = GracePeriod::after_account_creation(
            RequiredForAll::default(),
            Duration::from_secs(DAY),
        );
        let old = Principal::new("old").created_at(10 * DAY);
        let new = Principal::new("new").created_at(20 * DAY);
        assert_eq!(
            policy.requirement(&old, &unenrolled(), 0),
            required(BLOCK, Some(11 * DAY), true)
        );
        assert_eq!(
            policy.requirement(&new, &unenrolled(), 0),
            required(BLOCK, Some(21 * DAY), true)
        );
        // The host corrects the creation date: the next check follows (nothing cached).
        let corrected = old.clone().created_at(12 * DAY);
        assert_eq!(
            policy.requirement(&corrected, &unenrolled(), 0),
            required(BLOCK, Some(13 * DAY), true)
        );
        // No creation date: no grace (fail closed).
        assert_eq!(
            policy.requirement(&Principal::new("x"), &unenrolled(), 0),
            required(BLOCK, None, true)
        );
    }

    #[test]
    fn grace_period_keeps_the_earlier_deadline_and_saturates() {
        let inner = |_: &Principal, _: &EnrollmentStatus, _: u64| required(MAIL, Some(50), false);
        let later = GracePeriod::since(inner, 40, Duration::from_secs(100));
        assert_eq!(
            later.requirement(&Principal::new("a"), &unenrolled(), 0),
            required(MAIL, Some(50), false)
        );
        let earlier = GracePeriod::since(inner, 0, Duration::from_secs(20));
        assert_eq!(
            earlier.requirement(&Principal::new("a"), &unenrolled(), 0),
            required(MAIL, Some(20), false)
        );
        let huge = GracePeriod::since(RequiredForAll::default(), u64::MAX - 1, Duration::MAX);
        assert_eq!(huge.deadline(&Principal::new("a")), Some(u64::MAX));
    }

    #[test]
    fn grace_period_leaves_other_requirements_alone() {
        let root = Principal::new("root").superuser(true).created_at(0);
        for inner_req in [
            Requirement::Off,
            Requirement::optional(),
            Requirement::Optional {
                trusted_devices: false,
            },
            Requirement::Exempt { reason: "x".into() },
        ] {
            let r = inner_req.clone();
            let inner = move |_: &Principal, _: &EnrollmentStatus, _: u64| r.clone();
            let policy =
                inner.with_grace_period(GraceStart::AccountCreated, Duration::from_secs(9));
            assert_eq!(policy.requirement(&root, &unenrolled(), 0), inner_req);
        }
    }

    #[test]
    fn no_trusted_devices_only_touches_the_flag() {
        let inner = |_: &Principal, _: &EnrollmentStatus, _: u64| required(MAIL, Some(9), true);
        assert_eq!(
            inner
                .without_trusted_devices()
                .requirement(&Principal::new("a"), &enrolled(), 0),
            required(MAIL, Some(9), false)
        );
        assert_eq!(
            Optional
                .without_trusted_devices()
                .requirement(&Principal::new("a"), &enrolled(), 0),
            Requirement::Optional {
                trusted_devices: false
            }
        );
        for other in [Requirement::Off, Requirement::Exempt { reason: "x".into() }] {
            let r = other.clone();
            let inner = move |_: &Principal, _: &EnrollmentStatus, _: u64| r.clone();
            assert_eq!(
                inner
                    .without_trusted_devices()
                    .requirement(&Principal::new("a"), &enrolled(), 0),
                other
            );
        }
        assert_eq!(
            NoTrustedDevices::new(Optional).inner(),
            &Optional,
            "inner accessor"
        );
    }

    #[test]
    fn kw_2fa_composition() {
        let policy = RequiredForAll::default()
            .without_trusted_devices()
            .exempt_superuser();
        assert_eq!(
            policy.requirement(&Principal::new("a"), &unenrolled(), 0),
            required(BLOCK, None, false)
        );
        assert_eq!(
            policy.requirement(&Principal::new("a"), &enrolled(), 0),
            required(BLOCK, None, false)
        );
        assert!(matches!(
            policy.requirement(&Principal::new("root").superuser(true), &unenrolled(), 0),
            Requirement::Exempt { .. }
        ));
    }

    #[test]
    fn onum_composition_superuser_exempt_only_where_enabled() {
        let policy = Arc::new(
            opt_in()
                .exempt_superuser()
                .with_grace_period(GraceStart::Since(1_000), Duration::from_secs(DAY)),
        );
        let root = Principal::new("root").superuser(true).in_tenant("acme");
        let user = Principal::new("u").in_tenant("acme");
        assert_eq!(
            policy.requirement(&root, &unenrolled(), 0),
            Requirement::Off
        );
        policy.inner().inner().enable("acme");
        assert!(matches!(
            policy.requirement(&root, &unenrolled(), 0),
            Requirement::Exempt { .. }
        ));
        assert_eq!(
            policy.requirement(&user, &unenrolled(), 0),
            required(BLOCK, Some(1_000 + DAY), true)
        );
    }

    #[test]
    fn order_of_grace_and_no_trusted_devices_does_not_matter() {
        let a = RequiredForAll::new(MAIL)
            .with_grace_period(GraceStart::Since(7), Duration::from_secs(3))
            .without_trusted_devices();
        let b = RequiredForAll::new(MAIL)
            .without_trusted_devices()
            .with_grace_period(GraceStart::Since(7), Duration::from_secs(3));
        let p = Principal::new("a");
        assert_eq!(
            a.requirement(&p, &unenrolled(), 0),
            b.requirement(&p, &unenrolled(), 0)
        );
        assert_eq!(
            a.requirement(&p, &unenrolled(), 0),
            required(MAIL, Some(10), false)
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn composed_policies_round_trip_through_serde() {
        let policy = RequiredForRoles::new(["employee"], MAIL)
            .otherwise(RequiredForAll::default())
            .with_grace_period(GraceStart::AccountCreated, Duration::from_secs(DAY))
            .without_trusted_devices()
            .exempt_superuser();
        let json = serde_json::to_string(&policy).expect("serialize");
        let back: SuperuserExempt<NoTrustedDevices<GracePeriod<RequiredForRoles<RequiredForAll>>>> =
            serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, policy);
    }

    fn arb_when() -> impl Strategy<Value = WhenUnenrolled> {
        prop_oneof![Just(BLOCK), Just(MAIL)]
    }

    fn arb_requirement() -> impl Strategy<Value = Requirement> {
        prop_oneof![
            Just(Requirement::Off),
            any::<bool>().prop_map(|trusted_devices| Requirement::Optional { trusted_devices }),
            "[a-z]{0,8}".prop_map(|reason| Requirement::Exempt { reason }),
            (
                arb_when(),
                proptest::option::of(any::<u64>()),
                any::<bool>()
            )
                .prop_map(|(when_unenrolled, grace_until, trusted_devices)| {
                    Requirement::Required {
                        when_unenrolled,
                        grace_until,
                        trusted_devices,
                    }
                }),
        ]
    }

    fn arb_start() -> impl Strategy<Value = GraceStart> {
        prop_oneof![
            any::<u64>().prop_map(GraceStart::Since),
            Just(GraceStart::AccountCreated)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Same principal and configuration give the same deadline at any `now`, whatever was
        /// asked in between (nothing cached), and Required stays Required with its other
        /// fields untouched and a deadline no later than the inner one.
        #[test]
        fn grace_period_is_a_pure_function_that_never_weakens_required(
            inner_req in arb_requirement(),
            start in arb_start(),
            period in any::<u64>(),
            created_at in proptest::option::of(any::<u64>()),
            other_created_at in proptest::option::of(any::<u64>()),
            enrolled_flag in any::<bool>(),
            now1 in any::<u64>(),
            now2 in any::<u64>(),
        ) {
            let r = inner_req.clone();
            let inner = move |_: &Principal, _: &EnrollmentStatus, _: u64| r.clone();
            let policy = GracePeriod::new(inner, start, Duration::from_secs(period));
            let mut p = Principal::new("p");
            p.created_at = created_at;
            let mut q = Principal::new("q");
            q.created_at = other_created_at;
            let status = if enrolled_flag { enrolled() } else { unenrolled() };

            let first = policy.requirement(&p, &status, now1);
            let _other = policy.requirement(&q, &status, now2);
            let again = policy.requirement(&p, &status, now2);
            prop_assert_eq!(&first, &again);

            let expected_ours = match start {
                GraceStart::Since(t) => Some(t.saturating_add(period)),
                GraceStart::AccountCreated => created_at.map(|c| c.saturating_add(period)),
            };
            prop_assert_eq!(policy.deadline(&p), expected_ours);

            match inner_req {
                Requirement::Required { when_unenrolled, grace_until, trusted_devices } => {
                    let Requirement::Required {
                        when_unenrolled: w,
                        grace_until: g,
                        trusted_devices: t,
                    } = first
                    else {
                        return Err(TestCaseError::fail("Required became weaker"));
                    };
                    prop_assert_eq!(w, when_unenrolled);
                    prop_assert_eq!(t, trusted_devices);
                    if let Some(inner_deadline) = grace_until {
                        prop_assert!(g.is_some_and(|g| g <= inner_deadline));
                    }
                    let expected = match (grace_until, expected_ours) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    prop_assert_eq!(g, expected);
                }
                other => prop_assert_eq!(first, other),
            }
        }

        /// NoTrustedDevices clears the flag of Required and Optional, touches nothing else of
        /// them, and passes Off and Exempt through.
        #[test]
        fn no_trusted_devices_never_lets_a_device_skip(inner_req in arb_requirement()) {
            let r = inner_req.clone();
            let inner = move |_: &Principal, _: &EnrollmentStatus, _: u64| r.clone();
            let got = inner
                .without_trusted_devices()
                .requirement(&Principal::new("p"), &enrolled(), 0);
            let expected = match inner_req {
                Requirement::Required { when_unenrolled, grace_until, .. } => {
                    required(when_unenrolled, grace_until, false)
                }
                Requirement::Optional { .. } => Requirement::Optional { trusted_devices: false },
                other => other,
            };
            prop_assert_eq!(got, expected);
        }

        /// No combinator turns an enforced requirement into Off or Optional, and only the
        /// superuser combinator can turn it into Exempt (for an unenrolled superuser).
        #[test]
        fn combinators_never_drop_an_enforced_requirement(
            when in arb_when(),
            superuser in any::<bool>(),
            enrolled_flag in any::<bool>(),
            created_at in proptest::option::of(any::<u64>()),
            period in any::<u64>(),
            now in any::<u64>(),
        ) {
            let policy = RequiredForAll::new(when)
                .with_grace_period(GraceStart::AccountCreated, Duration::from_secs(period))
                .without_trusted_devices()
                .exempt_superuser();
            let mut p = Principal::new("p").superuser(superuser);
            p.created_at = created_at;
            let status = if enrolled_flag { enrolled() } else { unenrolled() };
            match policy.requirement(&p, &status, now) {
                Requirement::Required { when_unenrolled, trusted_devices, .. } => {
                    prop_assert!(!superuser || enrolled_flag);
                    prop_assert_eq!(when_unenrolled, when);
                    prop_assert!(!trusted_devices);
                }
                Requirement::Exempt { reason } => {
                    prop_assert!(superuser && !enrolled_flag);
                    prop_assert_eq!(reason, SUPERUSER_EXEMPTION);
                }
                other => prop_assert!(false, "weakened to {:?}", other),
            }
        }
    }
}
