//! Deployment-wide security settings, with checked bounds.
//!
//! [`Settings::default`] is what the crate recommends; every value can be changed through a
//! clearly named builder method, and [`SettingsBuilder::build`] refuses values outside the
//! `MIN_*`..=`MAX_*` ranges.

use core::fmt;

use super::crypto::{CodeKey, CodeKeys};
use crate::otp::{DEFAULT_SECRET_BYTES, MIN_GENERATED_SECRET_BYTES, Totp};

/// One hour, in seconds.
const HOUR: u64 = 3_600;
/// One day, in seconds.
const DAY: u64 = 86_400;

/// A setting outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("setting `{name}` must be between {min} and {max}, got {value}")]
pub struct SettingsError {
    /// The builder method's name.
    pub name: &'static str,
    /// The value given.
    pub value: u64,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
}

/// The security settings of a deployment.
///
/// ```
/// use twofactor::account::Settings;
/// use twofactor::Totp;
///
/// let settings = Settings::builder()
///     .issuer("ACME ERP")
///     .totp(Totp::builder().period(60).build()?) // Bista-style longer code validity
///     .build()?;
/// assert_eq!(settings.totp().period(), 60);
/// assert_eq!(settings.code_checks_per_window(), Settings::DEFAULT_CODE_CHECKS_PER_WINDOW);
///
/// assert!(Settings::builder().code_checks_per_window(0).build().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub(crate) issuer: Option<String>,
    pub(crate) totp: Totp,
    pub(crate) secret_bytes: usize,
    pub(crate) pending_enrollment_ttl: u64,
    pub(crate) mailed_enrollment_ttl: u64,
    pub(crate) code_checks_per_window: u32,
    pub(crate) code_check_window: u64,
    pub(crate) mailed_code_digits: u8,
    pub(crate) mailed_code_ttl: u64,
    pub(crate) mail_sends_per_window: u32,
    pub(crate) mail_send_attempts_per_window: u32,
    pub(crate) mail_send_window: u64,
    pub(crate) trusted_device_ttl: u64,
    pub(crate) max_trusted_devices: usize,
    pub(crate) max_authenticators: usize,
    pub(crate) recovery_codes: usize,
    pub(crate) recovery_codes_low_at: usize,
    pub(crate) reauth_max_age: u64,
    pub(crate) login_challenge_ttl: u64,
    pub(crate) notify_failed_code: bool,
    pub(crate) notify_untrusted_sign_in: bool,
    pub(crate) code_keys: CodeKeys,
    /// The MAC key of login tickets and second-factor proofs; `None`: this process's own
    /// random key (see [`ticket_key`](Self::ticket_key)).
    pub(crate) ticket_key: Option<super::TicketKey>,
    /// The WebAuthn relying party (feature `webauthn`); `None`: no security keys.
    #[cfg(feature = "webauthn")]
    pub(crate) security_keys: Option<super::RelyingParty>,
}

/// The defaults and the allowed ranges: [`Settings::default`] uses the `DEFAULT_*` values and
/// [`SettingsBuilder::build`] refuses anything outside `MIN_*..=MAX_*`. Durations in seconds.
impl Settings {
    /// The longest secret [`SettingsBuilder::secret_bytes`] generates: 64 bytes (512 bits),
    /// one HMAC block. Longer secrets can be *imported* (up to
    /// [`otp::MAX_SECRET_BYTES`](crate::otp::MAX_SECRET_BYTES)), but a generated one must
    /// still fit a QR code every authenticator app scans, and more bits add nothing.
    pub const MAX_GENERATED_SECRET_BYTES: usize = 64;
    /// How long a started enrollment waits for its confirming code: 15 minutes.
    pub const DEFAULT_PENDING_ENROLLMENT_TTL: u64 = 15 * 60;
    /// How long an enrollment provisioned by an administrator and mailed to the user waits for the
    /// confirming code: 24 hours (mail is slow).
    pub const DEFAULT_MAILED_ENROLLMENT_TTL: u64 = DAY;
    /// The shortest pending-enrollment lifetime allowed: one minute.
    pub const MIN_PENDING_ENROLLMENT_TTL: u64 = 60;
    /// The longest pending-enrollment lifetime allowed: seven days.
    pub const MAX_PENDING_ENROLLMENT_TTL: u64 = 7 * DAY;

    /// Code checks allowed per user per window (TOTP, recovery and mailed codes together).
    pub const DEFAULT_CODE_CHECKS_PER_WINDOW: u32 = 5;
    /// The window of the code-check limit: one hour.
    pub const DEFAULT_CODE_CHECK_WINDOW: u64 = HOUR;
    /// The most code checks per window a deployment may allow.
    pub const MAX_CODE_CHECKS_PER_WINDOW: u32 = 50;

    /// Digits of a mailed login code.
    pub const DEFAULT_MAILED_CODE_DIGITS: u8 = 6;
    /// The fewest digits a mailed code may have.
    pub const MIN_MAILED_CODE_DIGITS: u8 = 6;
    /// The most digits a mailed code may have.
    pub const MAX_MAILED_CODE_DIGITS: u8 = 9;
    /// How long a mailed login code is valid: one hour.
    pub const DEFAULT_MAILED_CODE_TTL: u64 = HOUR;
    /// The shortest mailed-code lifetime allowed: one minute.
    pub const MIN_MAILED_CODE_TTL: u64 = 60;
    /// The longest mailed-code lifetime allowed: one day.
    pub const MAX_MAILED_CODE_TTL: u64 = DAY;
    /// Mailed codes sent per user per window.
    pub const DEFAULT_MAIL_SENDS_PER_WINDOW: u32 = 5;
    /// The window of the mail-send limit: one hour.
    pub const DEFAULT_MAIL_SEND_WINDOW: u64 = HOUR;
    /// The most mail sends per window a deployment may allow.
    pub const MAX_MAIL_SENDS_PER_WINDOW: u32 = 50;
    /// Attempts to mail a code per user per window, delivered or not: 15 (the 5 sends
    /// [`DEFAULT_MAIL_SENDS_PER_WINDOW`](Self::DEFAULT_MAIL_SENDS_PER_WINDOW) allows, and 10
    /// that fail). A send that fails is taken off the send limit, not off this one: it
    /// bounds what someone with the password makes the server ask of the mail server.
    pub const DEFAULT_MAIL_SEND_ATTEMPTS_PER_WINDOW: u32 = 15;
    /// The most send attempts per window a deployment may allow.
    pub const MAX_MAIL_SEND_ATTEMPTS_PER_WINDOW: u32 = 100;

    /// The shortest rate-limit window allowed: one minute.
    pub const MIN_WINDOW: u64 = 60;
    /// The longest rate-limit window allowed: one day.
    pub const MAX_WINDOW: u64 = DAY;

    /// How long "don't ask again on this device" lasts: 90 days.
    pub const DEFAULT_TRUSTED_DEVICE_TTL: u64 = 90 * DAY;
    /// The shortest trusted-device lifetime allowed: one hour.
    pub const MIN_TRUSTED_DEVICE_TTL: u64 = HOUR;
    /// The longest trusted-device lifetime allowed: 400 days (what browsers allow for cookies).
    pub const MAX_TRUSTED_DEVICE_TTL: u64 = 400 * DAY;
    /// Trusted devices kept per user; the least recently used one is dropped beyond this.
    pub const DEFAULT_MAX_TRUSTED_DEVICES: usize = 10;
    /// The most trusted devices per user a deployment may allow.
    pub const MAX_MAX_TRUSTED_DEVICES: usize = 100;

    /// Authenticators a user may hold. Each one is another secret a guessed code may match:
    /// with `k` authenticators and a skew of `s` steps, one guess is checked against up to
    /// `k * (2s + 1)` codes (see the manual's "Several authenticators").
    pub const DEFAULT_MAX_AUTHENTICATORS: usize = 5;
    /// The most authenticators per user a deployment may allow (and a stored record may hold).
    pub const MAX_MAX_AUTHENTICATORS: usize = 10;

    /// Recovery codes in a set.
    pub const DEFAULT_RECOVERY_CODES: usize = 10;
    /// The fewest recovery codes a set may have.
    pub const MIN_RECOVERY_CODES: usize = 1;
    /// The most recovery codes a set may have.
    pub const MAX_RECOVERY_CODES: usize = 50;
    /// At this many recovery codes left or fewer, logins and the status carry a hint to make
    /// new ones ([`LoginGranted::recovery_codes_low`](super::LoginGranted::recovery_codes_low)):
    /// 3. With none left the user must make new ones at their next login, whatever this is.
    pub const DEFAULT_RECOVERY_CODES_LOW_AT: usize = 3;

    /// How recent a password check must be for sensitive operations: 10 minutes.
    pub const DEFAULT_REAUTH_MAX_AGE: u64 = 10 * 60;
    /// The shortest re-authentication window allowed: 30 seconds.
    pub const MIN_REAUTH_MAX_AGE: u64 = 30;
    /// The longest re-authentication window allowed: one hour.
    pub const MAX_REAUTH_MAX_AGE: u64 = HOUR;

    /// How long a login waits for its second step: 15 minutes. Enforced where the record keeps the
    /// login (one waiting for enrollment; one waiting for a mailed code lasts at least this long and
    /// as long as the code); for a TOTP or recovery code nothing is stored, and this is the
    /// advisory deadline `LoginDecision::Challenge` gives the host's session.
    pub const DEFAULT_LOGIN_CHALLENGE_TTL: u64 = 15 * 60;
    /// The shortest login-challenge lifetime allowed: one minute.
    pub const MIN_LOGIN_CHALLENGE_TTL: u64 = 60;
    /// The longest login-challenge lifetime allowed: one day.
    pub const MAX_LOGIN_CHALLENGE_TTL: u64 = DAY;
}

impl Settings {
    /// The key that seals login tickets and proofs: the configured one, or this process's
    /// random key.
    ///
    /// # Errors
    /// [`DomainError::Rng`](super::DomainError::Rng) if no key is configured and the
    /// operating system cannot supply one.
    pub(crate) fn ticket_key(&self) -> Result<&super::TicketKey, super::DomainError> {
        match &self.ticket_key {
            Some(k) => Ok(k),
            None => super::keys::process_ticket_key(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            issuer: None,
            totp: Totp::default(),
            secret_bytes: DEFAULT_SECRET_BYTES,
            pending_enrollment_ttl: Settings::DEFAULT_PENDING_ENROLLMENT_TTL,
            mailed_enrollment_ttl: Settings::DEFAULT_MAILED_ENROLLMENT_TTL,
            code_checks_per_window: Settings::DEFAULT_CODE_CHECKS_PER_WINDOW,
            code_check_window: Settings::DEFAULT_CODE_CHECK_WINDOW,
            mailed_code_digits: Settings::DEFAULT_MAILED_CODE_DIGITS,
            mailed_code_ttl: Settings::DEFAULT_MAILED_CODE_TTL,
            mail_sends_per_window: Settings::DEFAULT_MAIL_SENDS_PER_WINDOW,
            mail_send_attempts_per_window: Settings::DEFAULT_MAIL_SEND_ATTEMPTS_PER_WINDOW,
            mail_send_window: Settings::DEFAULT_MAIL_SEND_WINDOW,
            trusted_device_ttl: Settings::DEFAULT_TRUSTED_DEVICE_TTL,
            max_trusted_devices: Settings::DEFAULT_MAX_TRUSTED_DEVICES,
            max_authenticators: Settings::DEFAULT_MAX_AUTHENTICATORS,
            recovery_codes: Settings::DEFAULT_RECOVERY_CODES,
            recovery_codes_low_at: Settings::DEFAULT_RECOVERY_CODES_LOW_AT,
            reauth_max_age: Settings::DEFAULT_REAUTH_MAX_AGE,
            login_challenge_ttl: Settings::DEFAULT_LOGIN_CHALLENGE_TTL,
            notify_failed_code: true,
            notify_untrusted_sign_in: false,
            code_keys: CodeKeys::default(),
            ticket_key: None,
            #[cfg(feature = "webauthn")]
            security_keys: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Settings");
        d.field("issuer", &self.issuer)
            .field("totp", &self.totp)
            .field("secret_bytes", &self.secret_bytes)
            .field("pending_enrollment_ttl", &self.pending_enrollment_ttl)
            .field("mailed_enrollment_ttl", &self.mailed_enrollment_ttl)
            .field("code_checks_per_window", &self.code_checks_per_window)
            .field("code_check_window", &self.code_check_window)
            .field("mailed_code_digits", &self.mailed_code_digits)
            .field("mailed_code_ttl", &self.mailed_code_ttl)
            .field("mail_sends_per_window", &self.mail_sends_per_window)
            .field(
                "mail_send_attempts_per_window",
                &self.mail_send_attempts_per_window,
            )
            .field("mail_send_window", &self.mail_send_window)
            .field("trusted_device_ttl", &self.trusted_device_ttl)
            .field("max_trusted_devices", &self.max_trusted_devices)
            .field("max_authenticators", &self.max_authenticators)
            .field("recovery_codes", &self.recovery_codes)
            .field("recovery_codes_low_at", &self.recovery_codes_low_at)
            .field("reauth_max_age", &self.reauth_max_age)
            .field("login_challenge_ttl", &self.login_challenge_ttl)
            .field("notify_failed_code", &self.notify_failed_code)
            .field("notify_untrusted_sign_in", &self.notify_untrusted_sign_in)
            .field("code_keys", &self.code_keys);
        #[cfg(feature = "webauthn")]
        d.field("security_keys", &self.security_keys);
        d.finish()
    }
}

impl Settings {
    /// Starts from the defaults.
    pub fn builder() -> SettingsBuilder {
        SettingsBuilder(Settings::default())
    }

    /// The issuer shown in authenticator apps (`ACME` in "ACME: alice@example.com").
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
    /// TOTP parameters for new enrollments (existing ones keep theirs).
    #[must_use]
    pub const fn totp(&self) -> Totp {
        self.totp
    }
    /// Length in bytes of newly generated secrets.
    #[must_use]
    pub const fn secret_bytes(&self) -> usize {
        self.secret_bytes
    }
    /// Seconds a started enrollment waits for its confirming code.
    #[must_use]
    pub const fn pending_enrollment_ttl(&self) -> u64 {
        self.pending_enrollment_ttl
    }
    /// Seconds an administrator-provisioned, mailed enrollment waits for its confirming code.
    #[must_use]
    pub const fn mailed_enrollment_ttl(&self) -> u64 {
        self.mailed_enrollment_ttl
    }
    /// Code checks allowed per user per [`Settings::code_check_window`].
    #[must_use]
    pub const fn code_checks_per_window(&self) -> u32 {
        self.code_checks_per_window
    }
    /// The sliding window of the code-check limit, in seconds.
    #[must_use]
    pub const fn code_check_window(&self) -> u64 {
        self.code_check_window
    }
    /// Digits of a mailed login code.
    #[must_use]
    pub const fn mailed_code_digits(&self) -> u8 {
        self.mailed_code_digits
    }
    /// Seconds a mailed login code is valid.
    #[must_use]
    pub const fn mailed_code_ttl(&self) -> u64 {
        self.mailed_code_ttl
    }
    /// Mailed codes sent per user per [`Settings::mail_send_window`] (a send that failed is
    /// not counted here).
    #[must_use]
    pub const fn mail_sends_per_window(&self) -> u32 {
        self.mail_sends_per_window
    }
    /// Attempts to mail a code per user per [`Settings::mail_send_window`], delivered or not.
    #[must_use]
    pub const fn mail_send_attempts_per_window(&self) -> u32 {
        self.mail_send_attempts_per_window
    }
    /// The sliding window of the mail-send limit, in seconds.
    #[must_use]
    pub const fn mail_send_window(&self) -> u64 {
        self.mail_send_window
    }
    /// Seconds a trusted device is trusted.
    #[must_use]
    pub const fn trusted_device_ttl(&self) -> u64 {
        self.trusted_device_ttl
    }
    /// Trusted devices kept per user.
    #[must_use]
    pub const fn max_trusted_devices(&self) -> usize {
        self.max_trusted_devices
    }
    /// Authenticators a user may hold (see [`Settings::DEFAULT_MAX_AUTHENTICATORS`]).
    #[must_use]
    pub const fn max_authenticators(&self) -> usize {
        self.max_authenticators
    }
    /// The WebAuthn relying party security keys are registered with (feature `webauthn`);
    /// `None`: security keys are off.
    #[cfg(feature = "webauthn")]
    #[must_use]
    pub const fn security_keys(&self) -> Option<&super::RelyingParty> {
        self.security_keys.as_ref()
    }
    /// Recovery codes in a set.
    #[must_use]
    pub const fn recovery_codes(&self) -> usize {
        self.recovery_codes
    }
    /// At this many recovery codes left or fewer, logins and the status say to make new ones
    /// (see [`Settings::DEFAULT_RECOVERY_CODES_LOW_AT`]).
    #[must_use]
    pub const fn recovery_codes_low_at(&self) -> usize {
        self.recovery_codes_low_at
    }
    /// Seconds a [`Reauthenticated`](super::Reauthenticated) proof stays fresh.
    #[must_use]
    pub const fn reauth_max_age(&self) -> u64 {
        self.reauth_max_age
    }
    /// Seconds a login waits for its second step (see [`Settings::DEFAULT_LOGIN_CHALLENGE_TTL`]).
    #[must_use]
    pub const fn login_challenge_ttl(&self) -> u64 {
        self.login_challenge_ttl
    }
    /// Whether a wrong code at login mails the user a warning (on by default: it means
    /// someone knows the password).
    #[must_use]
    pub const fn notify_failed_code(&self) -> bool {
        self.notify_failed_code
    }
    /// Whether every sign-in completed with a code (not a trusted device) mails the user
    /// (off by default).
    #[must_use]
    pub const fn notify_untrusted_sign_in(&self) -> bool {
        self.notify_untrusted_sign_in
    }
    /// The id of the code key new recovery and mailed codes are hashed under (`None`: salted
    /// SHA-256, no server-side key).
    #[must_use]
    pub fn code_key_id(&self) -> Option<&str> {
        self.code_keys.current.as_ref().map(CodeKey::id)
    }
}

/// Builds checked [`Settings`]; see [`Settings::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SettingsBuilder(Settings);

fn check(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), SettingsError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SettingsError {
            name,
            value,
            min,
            max,
        })
    }
}

fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl SettingsBuilder {
    /// The issuer shown in authenticator apps. Empty means none.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.0.issuer = Some(issuer.trim().to_owned()).filter(|i| !i.is_empty());
        self
    }
    /// TOTP parameters for new enrollments (e.g. a 60-second period). Changing them later does
    /// not affect users already enrolled: their record keeps the parameters they enrolled with.
    pub fn totp(mut self, totp: Totp) -> Self {
        self.0.totp = totp;
        self
    }
    /// Length of generated secrets in bytes (16 to
    /// [`Settings::MAX_GENERATED_SECRET_BYTES`] = 64; default 20 = 160 bits).
    pub fn secret_bytes(mut self, bytes: usize) -> Self {
        self.0.secret_bytes = bytes;
        self
    }
    /// Seconds a started enrollment waits for its confirming code.
    pub fn pending_enrollment_ttl(mut self, seconds: u64) -> Self {
        self.0.pending_enrollment_ttl = seconds;
        self
    }
    /// Seconds an administrator-provisioned, mailed enrollment waits for its confirming code.
    pub fn mailed_enrollment_ttl(mut self, seconds: u64) -> Self {
        self.0.mailed_enrollment_ttl = seconds;
        self
    }
    /// Code checks allowed per user per window (1 to 50).
    pub fn code_checks_per_window(mut self, checks: u32) -> Self {
        self.0.code_checks_per_window = checks;
        self
    }
    /// The sliding window of the code-check limit, in seconds.
    pub fn code_check_window(mut self, seconds: u64) -> Self {
        self.0.code_check_window = seconds;
        self
    }
    /// Digits of a mailed login code (6 to 9).
    pub fn mailed_code_digits(mut self, digits: u8) -> Self {
        self.0.mailed_code_digits = digits;
        self
    }
    /// Seconds a mailed login code is valid.
    pub fn mailed_code_ttl(mut self, seconds: u64) -> Self {
        self.0.mailed_code_ttl = seconds;
        self
    }
    /// Mailed codes delivered per user per window (1 to 50). A send the mailer reports as
    /// failed is given back.
    pub fn mail_sends_per_window(mut self, sends: u32) -> Self {
        self.0.mail_sends_per_window = sends;
        self
    }
    /// Attempts to mail a code per user per window, delivered or not (1 to 100): the bound on
    /// sends that fail.
    pub fn mail_send_attempts_per_window(mut self, attempts: u32) -> Self {
        self.0.mail_send_attempts_per_window = attempts;
        self
    }
    /// The sliding window of the mail-send limit, in seconds.
    pub fn mail_send_window(mut self, seconds: u64) -> Self {
        self.0.mail_send_window = seconds;
        self
    }
    /// Seconds a trusted device is trusted.
    pub fn trusted_device_ttl(mut self, seconds: u64) -> Self {
        self.0.trusted_device_ttl = seconds;
        self
    }
    /// Trusted devices kept per user (1 to 100).
    pub fn max_trusted_devices(mut self, devices: usize) -> Self {
        self.0.max_trusted_devices = devices;
        self
    }
    /// Authenticators a user may hold (1 to [`Settings::MAX_MAX_AUTHENTICATORS`] = 10;
    /// default 5). Users who already hold more keep them; they cannot add another.
    pub fn max_authenticators(mut self, authenticators: usize) -> Self {
        self.0.max_authenticators = authenticators;
        self
    }
    /// Turns security keys on (feature `webauthn`): the relying party they are registered
    /// with and checked against. Every app server of a deployment needs the same one.
    #[cfg(feature = "webauthn")]
    pub fn security_keys(mut self, relying_party: super::RelyingParty) -> Self {
        self.0.security_keys = Some(relying_party);
        self
    }
    /// Recovery codes in a set (1 to 50).
    pub fn recovery_codes(mut self, codes: usize) -> Self {
        self.0.recovery_codes = codes;
        self
    }
    /// Recovery codes left at or below which logins and the status carry the "make new ones"
    /// hint (0 to 50; 0: only when none are left).
    pub fn recovery_codes_low_at(mut self, codes: usize) -> Self {
        self.0.recovery_codes_low_at = codes;
        self
    }
    /// Seconds a password check counts as fresh for sensitive operations.
    pub fn reauth_max_age(mut self, seconds: u64) -> Self {
        self.0.reauth_max_age = seconds;
        self
    }
    /// Seconds a login waits for its second step (see [`Settings::DEFAULT_LOGIN_CHALLENGE_TTL`]).
    pub fn login_challenge_ttl(mut self, seconds: u64) -> Self {
        self.0.login_challenge_ttl = seconds;
        self
    }
    /// Whether a wrong code at login mails the user a warning.
    pub fn notify_failed_code(mut self, notify: bool) -> Self {
        self.0.notify_failed_code = notify;
        self
    }
    /// Whether every sign-in completed with a code (not a trusted device) mails the user.
    pub fn notify_untrusted_sign_in(mut self, notify: bool) -> Self {
        self.0.notify_untrusted_sign_in = notify;
        self
    }

    /// Hashes new recovery codes and mailed codes with HMAC-SHA-256 under this server-side
    /// key (see [`CodeKey`] and the manual's "Offline guessing" section). Digests made under
    /// the previous current key keep working only if it is also given as
    /// [`old_code_key`](Self::old_code_key).
    pub fn code_key(mut self, key: CodeKey) -> Self {
        self.0.code_keys.current = Some(key);
        self
    }

    /// A retired code key: checks the recovery sets (and mailed codes) hashed under it, hashes
    /// nothing new. Drop it once every user has regenerated their recovery codes.
    pub fn old_code_key(mut self, key: CodeKey) -> Self {
        self.0.code_keys.old.push(key);
        self
    }

    /// Every key from one server secret ([`ServiceKeys`](super::ServiceKeys)): the code key
    /// and older code keys, and the key of login tickets and second-factor proofs. Without
    /// it, tickets and proofs are sealed under a random key of this process (refused by any
    /// other process and after a restart) and codes are hashed unkeyed.
    pub fn keys(mut self, keys: &super::ServiceKeys) -> Self {
        self.0.code_keys.current = Some(keys.code.clone());
        self.0.code_keys.old = keys.old_code.clone();
        self.0.ticket_key = Some(keys.ticket.clone());
        self
    }

    /// Checks every value against its `MIN_*`..=`MAX_*` range.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first setting out of range.
    pub fn build(self) -> Result<Settings, SettingsError> {
        let s = self.0;
        check(
            "secret_bytes",
            wide(s.secret_bytes),
            wide(MIN_GENERATED_SECRET_BYTES),
            wide(Settings::MAX_GENERATED_SECRET_BYTES),
        )?;
        for (name, value) in [
            ("pending_enrollment_ttl", s.pending_enrollment_ttl),
            ("mailed_enrollment_ttl", s.mailed_enrollment_ttl),
        ] {
            check(
                name,
                value,
                Settings::MIN_PENDING_ENROLLMENT_TTL,
                Settings::MAX_PENDING_ENROLLMENT_TTL,
            )?;
        }
        check(
            "code_checks_per_window",
            u64::from(s.code_checks_per_window),
            1,
            u64::from(Settings::MAX_CODE_CHECKS_PER_WINDOW),
        )?;
        check(
            "code_check_window",
            s.code_check_window,
            Settings::MIN_WINDOW,
            Settings::MAX_WINDOW,
        )?;
        check(
            "mailed_code_digits",
            u64::from(s.mailed_code_digits),
            u64::from(Settings::MIN_MAILED_CODE_DIGITS),
            u64::from(Settings::MAX_MAILED_CODE_DIGITS),
        )?;
        check(
            "mailed_code_ttl",
            s.mailed_code_ttl,
            Settings::MIN_MAILED_CODE_TTL,
            Settings::MAX_MAILED_CODE_TTL,
        )?;
        check(
            "mail_sends_per_window",
            u64::from(s.mail_sends_per_window),
            1,
            u64::from(Settings::MAX_MAIL_SENDS_PER_WINDOW),
        )?;
        check(
            "mail_send_attempts_per_window",
            u64::from(s.mail_send_attempts_per_window),
            1,
            u64::from(Settings::MAX_MAIL_SEND_ATTEMPTS_PER_WINDOW),
        )?;
        check(
            "mail_send_window",
            s.mail_send_window,
            Settings::MIN_WINDOW,
            Settings::MAX_WINDOW,
        )?;
        check(
            "trusted_device_ttl",
            s.trusted_device_ttl,
            Settings::MIN_TRUSTED_DEVICE_TTL,
            Settings::MAX_TRUSTED_DEVICE_TTL,
        )?;
        check(
            "max_trusted_devices",
            wide(s.max_trusted_devices),
            1,
            wide(Settings::MAX_MAX_TRUSTED_DEVICES),
        )?;
        check(
            "max_authenticators",
            wide(s.max_authenticators),
            1,
            wide(Settings::MAX_MAX_AUTHENTICATORS),
        )?;
        check(
            "recovery_codes",
            wide(s.recovery_codes),
            wide(Settings::MIN_RECOVERY_CODES),
            wide(Settings::MAX_RECOVERY_CODES),
        )?;
        check(
            "recovery_codes_low_at",
            wide(s.recovery_codes_low_at),
            0,
            wide(Settings::MAX_RECOVERY_CODES),
        )?;
        check(
            "reauth_max_age",
            s.reauth_max_age,
            Settings::MIN_REAUTH_MAX_AGE,
            Settings::MAX_REAUTH_MAX_AGE,
        )?;
        check(
            "login_challenge_ttl",
            s.login_challenge_ttl,
            Settings::MIN_LOGIN_CHALLENGE_TTL,
            Settings::MAX_LOGIN_CHALLENGE_TTL,
        )?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::default();
        assert_eq!(s.totp(), Totp::default());
        assert_eq!(s.secret_bytes(), 20);
        assert_eq!(s.code_checks_per_window(), 5);
        assert_eq!(s.code_check_window(), 3_600);
        assert_eq!(s.mailed_code_digits(), 6);
        assert_eq!(s.mailed_code_ttl(), 3_600);
        assert_eq!(s.mail_sends_per_window(), 5);
        assert_eq!(s.mail_send_attempts_per_window(), 15);
        assert_eq!(s.trusted_device_ttl(), 90 * 86_400);
        assert_eq!(s.recovery_codes(), 10);
        assert_eq!(s.reauth_max_age(), 600);
        assert_eq!(s.pending_enrollment_ttl(), 900);
        assert_eq!(Settings::builder().build(), Ok(s));
    }

    #[test]
    fn out_of_range_values_are_named() {
        let e = Settings::builder().recovery_codes(0).build().unwrap_err();
        assert_eq!(e.name, "recovery_codes");
        let e = Settings::builder().secret_bytes(10).build().unwrap_err();
        assert_eq!(e.name, "secret_bytes");
        // Imports may be longer, but a generated secret stays within one HMAC block.
        let e = Settings::builder().secret_bytes(65).build().unwrap_err();
        assert_eq!((e.name, e.max), ("secret_bytes", 64));
        assert!(Settings::builder().secret_bytes(64).build().is_ok());
        let e = Settings::builder()
            .reauth_max_age(7_200)
            .build()
            .unwrap_err();
        assert_eq!((e.name, e.value, e.max), ("reauth_max_age", 7_200, 3_600));
        let e = Settings::builder()
            .mailed_code_digits(5)
            .build()
            .unwrap_err();
        assert_eq!(e.name, "mailed_code_digits");
        assert!(
            Settings::builder()
                .code_checks_per_window(51)
                .build()
                .is_err()
        );
        assert!(Settings::builder().code_check_window(10).build().is_err());
    }

    #[test]
    fn blank_issuer_is_none() {
        let s = Settings::builder().issuer("  ").build().unwrap();
        assert_eq!(s.issuer(), None);
        let s = Settings::builder().issuer(" ACME ").build().unwrap();
        assert_eq!(s.issuer(), Some("ACME"));
    }
}
