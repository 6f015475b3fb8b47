//! The mail edge: a [`Mailer`] sends typed [`Notice`]s to users.
//!
//! The library decides *what* to tell a user and when (a login code, "2FA was turned off", "a
//! new device was trusted"); the host decides *how*: templates, language, transport (SMTP, an
//! e-mail API, SMS). Notices are sent after the change they describe was saved.
//!
//! Some notices are the outcome itself (a login code, an invitation, a provisioned secret): if
//! they cannot be sent the operation fails with [`Error::Mailer`](crate::service::Error::Mailer),
//! except a login code at login, which `start_login` answers with
//! [`LoginDecision::CodeNotSent`](crate::account::LoginDecision::CodeNotSent) (the login
//! waits for a resend). A login code is stored before it is sent and marked sent or not sent
//! after: a send that fails takes no code away from the user, and is not counted as sent (see
//! [`CodeSend`](crate::account::CodeSend)). The other notices are informational: a failure is
//! logged and audited, and the operation still succeeds (see [`Notice::must_deliver`]).
//!
//! ## Default messages
//!
//! [`EnglishMessages`] words every notice in plain English: a subject, a plain-text body and
//! an HTML body ([`Rendered`]), dates as "6 December 2026 at 15:04 UTC" ([`readable_utc`]),
//! the invitation's link, and no secret but the one the notice carries (the login code, the
//! provisioned key), never in the subject. Everything in the HTML is escaped
//! ([`escape_html`]). Implement [`Messages`] for your language or brand, and hand it the
//! notices you do not reword:
//!
//! ```
//! use twofactor::mail::{EnglishMessages, Messages, Notice, Recipient, SecretText};
//! use twofactor::LoginContext;
//!
//! let messages = EnglishMessages::new("Acme").account_url("https://acme.example/account");
//! let to = Recipient::new("marc@example.com").name("Marc");
//! let notice = Notice::LoginCode {
//!     code: SecretText::new("042917"),
//!     expires_at: 1_796_569_440,
//!     context: LoginContext::new().device("Firefox on Linux"),
//! };
//! let m = messages.render(&to, &notice, 1_796_565_840); // sent an hour before it expires
//! assert_eq!(m.subject(), "Your Acme login code");
//! assert!(m.text().contains("    042917\n"));
//! assert!(m.text().contains("until 6 December 2026 at 15:04 UTC (in 60 minutes)"));
//! assert!(m.text().contains("Device: Firefox on Linux"));
//! assert!(m.html().contains(">042917</p>"));
//! ```
//!
//! ## SMTP (feature `smtp`)
//!
//! `SmtpMailer` sends the rendered messages as `multipart/alternative` e-mail through an SMTP
//! server (lettre, Tokio, rustls): plain for a relay on `localhost`, `STARTTLS` required, or
//! implicit TLS, with credentials, a port, a timeout for the whole send and an optional
//! private certificate authority. The host gives it an `AddressBook` (a closure will do) that
//! finds a user's address; a user without one is a typed `SmtpError::NoAddress`. Every
//! failure is a typed `SmtpError` that the service returns for the notices that must be
//! delivered, inside [`Error::Mailer`](crate::service::Error::Mailer) or, at login, the
//! [`MailFailure`] of `LoginDecision::CodeNotSent`:
//!
//! ```no_run
//! # #[cfg(feature = "smtp")]
//! # mod smtp {
//! use std::time::Duration;
//! use twofactor::mail::{EnglishMessages, Recipient, SmtpMailer, SmtpTls};
//! use twofactor::{MemoryStore, RequiredForAll, TwoFactor, UserId, WhenUnenrolled};
//!
//! # pub async fn main(smtp_password: String) -> Result<(), Box<dyn std::error::Error>> {
//! // Where each user's mail goes: the host's directory (here, everyone at acme.example).
//! let addresses = |user: &UserId| {
//!     let to = Recipient::new(format!("{user}@acme.example"));
//!     async move { Ok::<_, std::io::Error>(Some(to)) }
//! };
//! let mailer = SmtpMailer::builder("smtp.acme.example", SmtpTls::StartTls, "Acme <no-reply@acme.example>")
//!     .credentials("no-reply", smtp_password)
//!     .timeout(Duration::from_secs(10))
//!     .messages(EnglishMessages::new("Acme").account_url("https://acme.example/account"))
//!     .build(addresses)?;
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(mailer)
//!     .keys(twofactor::ServiceKeys::derive(&[7u8; 32])?) // from your secret manager
//!     .policy(RequiredForAll::new(WhenUnenrolled::MailCode))
//!     .build();
//! # let _ = tf;
//! # Ok(())
//! # }
//! # }
//! ```

use core::fmt;
use core::future::Future;

mod messages;
#[cfg(feature = "smtp")]
mod smtp;

pub use messages::{EnglishMessages, Messages, Recipient, Rendered, escape_html, readable_utc};
#[cfg(feature = "smtp")]
pub use smtp::{AddressBook, SmtpError, SmtpMailer, SmtpMailerBuilder, SmtpTls};

pub use crate::vocabulary::DynError;

use zeroize::Zeroizing;

use crate::vocabulary::{LoginContext, UserId};

/// Who turned 2FA off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum DisabledBy {
    /// The user, with their password and a code.
    User,
    /// An administrator (lost phone).
    Admin {
        /// The administrator.
        admin: UserId,
    },
}

/// Something to tell a user.
///
/// `Debug` never shows codes, secrets or URIs; read them with the `expose_*` accessors.
#[derive(Clone)]
#[non_exhaustive]
pub enum Notice {
    /// A one-time login code (2FA by mail).
    LoginCode {
        /// The code (redacted in `Debug`). Read it with [`Notice::expose_login_code`].
        code: SecretText,
        /// When it expires.
        expires_at: u64,
        /// Where the login comes from, as far as the host knows.
        context: LoginContext,
    },
    /// Two-factor authentication was turned on.
    Enabled,
    /// The authenticator was replaced (trusted devices were revoked).
    Rotated {
        /// How many trusted devices were revoked.
        devices_revoked: usize,
    },
    /// Two-factor authentication was turned off (trusted devices were revoked).
    Disabled {
        /// By whom.
        by: DisabledBy,
    },
    /// A device was trusted: it will not be asked for a code.
    DeviceTrusted {
        /// Its label.
        label: String,
        /// Where the login came from.
        context: LoginContext,
    },
    /// Trusted devices were removed.
    DevicesRemoved {
        /// Their labels.
        labels: Vec<String>,
    },
    /// A sign-in completed with a code on a device that is not trusted (sent only when
    /// [`Settings::notify_untrusted_sign_in`](crate::account::Settings::notify_untrusted_sign_in)
    /// is on).
    SignInFromUntrustedDevice {
        /// Where it came from.
        context: LoginContext,
    },
    /// The password was right but the code was not: someone may know the password.
    FailedCodeAttempt {
        /// Where it came from.
        context: LoginContext,
    },
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesRegenerated,
    /// A recovery code was used: to sign in, to confirm a sensitive action (step-up), or to
    /// start replacing the authenticator. Sent at every use, with the count left.
    RecoveryCodeUsed {
        /// Unused codes left.
        remaining: usize,
        /// Whether that is at or below
        /// [`Settings::recovery_codes_low_at`](crate::account::Settings::recovery_codes_low_at)
        /// (3 by default): tell the user to make new ones. With none left they will have to
        /// at their next sign-in.
        low: bool,
        /// Where the login came from (empty outside a login).
        context: LoginContext,
    },
    /// An administrator invites the user to enable 2FA.
    Invitation {
        /// Where to enable it (supplied by the host).
        link: String,
        /// The administrator.
        invited_by: UserId,
    },
    /// Another authenticator was added to the account.
    AuthenticatorAdded {
        /// The label the user gave it.
        label: String,
    },
    /// An authenticator was removed from the account (the others still work).
    AuthenticatorRemoved {
        /// Its label.
        label: String,
    },
    /// An authenticator was renamed.
    AuthenticatorRenamed {
        /// The old label.
        from: String,
        /// The new label.
        to: String,
    },
    /// An administrator provisioned an authenticator secret for the user (explicit opt-in:
    /// the secret travels by mail). The user scans or types it, then confirms with a code.
    ProvisionedSecret {
        /// The `otpauth://` URI (render it as a QR code). Read it with
        /// [`Notice::expose_provisioning_uri`].
        uri: SecretText,
        /// The secret in base32 groups of four, for typing by hand. Read it with
        /// [`Notice::expose_manual_key`].
        manual_key: SecretText,
        /// When the confirmation window closes.
        expires_at: u64,
        /// The administrator.
        provisioned_by: UserId,
    },
}

/// Text that must reach the user and nowhere else: the URI and manual key of a
/// [`Notice::ProvisionedSecret`].
///
/// The text is private: read it with [`SecretText::expose_secret`] (or the `expose_*` accessors
/// of [`Notice`]), so every place that handles the secret names it. `Debug` prints
/// `SecretText([redacted])`, the text is zeroized on drop, and there is no `PartialEq`.
///
/// ```
/// use twofactor::mail::SecretText;
/// let key = SecretText::new("JBSW Y3DP EHPK 3PXP");
/// assert_eq!(format!("{key:?}"), "SecretText([redacted])");
/// assert_eq!(key.expose_secret(), "JBSW Y3DP EHPK 3PXP");
/// ```
#[derive(Clone)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// Wraps `text` (to build a [`Notice`] for a template test, say).
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        SecretText(Zeroizing::new(text.into()))
    }

    /// The text.
    ///
    /// # Security warning
    /// This is an authenticator secret, or contains one: put it in the message to the user,
    /// never in logs.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

/// The kind of a [`Notice`], without its content: for audit events, metrics and templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum NoticeKind {
    LoginCode,
    Enabled,
    Rotated,
    Disabled,
    DeviceTrusted,
    DevicesRemoved,
    SignInFromUntrustedDevice,
    FailedCodeAttempt,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    Invitation,
    ProvisionedSecret,
    AuthenticatorAdded,
    AuthenticatorRemoved,
    AuthenticatorRenamed,
}

impl Notice {
    /// Its kind.
    #[must_use]
    pub const fn kind(&self) -> NoticeKind {
        match self {
            Notice::LoginCode { .. } => NoticeKind::LoginCode,
            Notice::Enabled => NoticeKind::Enabled,
            Notice::Rotated { .. } => NoticeKind::Rotated,
            Notice::Disabled { .. } => NoticeKind::Disabled,
            Notice::DeviceTrusted { .. } => NoticeKind::DeviceTrusted,
            Notice::DevicesRemoved { .. } => NoticeKind::DevicesRemoved,
            Notice::SignInFromUntrustedDevice { .. } => NoticeKind::SignInFromUntrustedDevice,
            Notice::FailedCodeAttempt { .. } => NoticeKind::FailedCodeAttempt,
            Notice::RecoveryCodesRegenerated => NoticeKind::RecoveryCodesRegenerated,
            Notice::RecoveryCodeUsed { .. } => NoticeKind::RecoveryCodeUsed,
            Notice::Invitation { .. } => NoticeKind::Invitation,
            Notice::ProvisionedSecret { .. } => NoticeKind::ProvisionedSecret,
            Notice::AuthenticatorAdded { .. } => NoticeKind::AuthenticatorAdded,
            Notice::AuthenticatorRemoved { .. } => NoticeKind::AuthenticatorRemoved,
            Notice::AuthenticatorRenamed { .. } => NoticeKind::AuthenticatorRenamed,
        }
    }

    /// Whether the notice *is* the outcome of its operation (a login code, an invitation, a
    /// provisioned secret), so that failing to send it fails the operation. Other notices are
    /// informational: a failure is logged and audited only.
    #[must_use]
    pub const fn must_deliver(&self) -> bool {
        matches!(
            self,
            Notice::LoginCode { .. } | Notice::Invitation { .. } | Notice::ProvisionedSecret { .. }
        )
    }

    /// The login code of a [`Notice::LoginCode`].
    ///
    /// # Security warning
    /// A credential for an hour: put it in the message, never in logs.
    #[must_use]
    pub fn expose_login_code(&self) -> Option<&str> {
        match self {
            Notice::LoginCode { code, .. } => Some(code.expose_secret()),
            _ => None,
        }
    }

    /// The `otpauth://` URI of a [`Notice::ProvisionedSecret`].
    ///
    /// # Security warning
    /// Contains the authenticator secret.
    #[must_use]
    pub fn expose_provisioning_uri(&self) -> Option<&str> {
        match self {
            Notice::ProvisionedSecret { uri, .. } => Some(uri.expose_secret()),
            _ => None,
        }
    }

    /// The manual key of a [`Notice::ProvisionedSecret`]: the secret in base32 groups of four,
    /// for users who cannot scan the QR code.
    ///
    /// # Security warning
    /// This is the authenticator secret itself.
    #[must_use]
    pub fn expose_manual_key(&self) -> Option<&str> {
        match self {
            Notice::ProvisionedSecret { manual_key, .. } => Some(manual_key.expose_secret()),
            _ => None,
        }
    }

    /// The context of the login that caused the notice, if any.
    #[must_use]
    pub fn context(&self) -> Option<&LoginContext> {
        match self {
            Notice::LoginCode { context, .. }
            | Notice::DeviceTrusted { context, .. }
            | Notice::SignInFromUntrustedDevice { context }
            | Notice::FailedCodeAttempt { context }
            | Notice::RecoveryCodeUsed { context, .. } => Some(context),
            _ => None,
        }
    }
}

impl fmt::Debug for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::LoginCode {
                expires_at,
                context,
                ..
            } => f
                .debug_struct("LoginCode")
                .field("expires_at", expires_at)
                .field("context", context)
                .finish_non_exhaustive(),
            Notice::Enabled => f.write_str("Enabled"),
            Notice::Rotated { devices_revoked } => f
                .debug_struct("Rotated")
                .field("devices_revoked", devices_revoked)
                .finish(),
            Notice::Disabled { by } => f.debug_struct("Disabled").field("by", by).finish(),
            Notice::DeviceTrusted { label, context } => f
                .debug_struct("DeviceTrusted")
                .field("label", label)
                .field("context", context)
                .finish(),
            Notice::DevicesRemoved { labels } => f
                .debug_struct("DevicesRemoved")
                .field("labels", labels)
                .finish(),
            Notice::SignInFromUntrustedDevice { context } => f
                .debug_struct("SignInFromUntrustedDevice")
                .field("context", context)
                .finish(),
            Notice::FailedCodeAttempt { context } => f
                .debug_struct("FailedCodeAttempt")
                .field("context", context)
                .finish(),
            Notice::RecoveryCodesRegenerated => f.write_str("RecoveryCodesRegenerated"),
            Notice::RecoveryCodeUsed {
                remaining,
                low,
                context,
            } => f
                .debug_struct("RecoveryCodeUsed")
                .field("remaining", remaining)
                .field("low", low)
                .field("context", context)
                .finish(),
            Notice::Invitation { link, invited_by } => f
                .debug_struct("Invitation")
                .field("link", link)
                .field("invited_by", invited_by)
                .finish(),
            Notice::AuthenticatorAdded { label } => f
                .debug_struct("AuthenticatorAdded")
                .field("label", label)
                .finish(),
            Notice::AuthenticatorRemoved { label } => f
                .debug_struct("AuthenticatorRemoved")
                .field("label", label)
                .finish(),
            Notice::AuthenticatorRenamed { from, to } => f
                .debug_struct("AuthenticatorRenamed")
                .field("from", from)
                .field("to", to)
                .finish(),
            Notice::ProvisionedSecret {
                expires_at,
                provisioned_by,
                ..
            } => f
                .debug_struct("ProvisionedSecret")
                .field("expires_at", expires_at)
                .field("provisioned_by", provisioned_by)
                .finish_non_exhaustive(),
        }
    }
}

/// Sends notices to users. Implement it with your templates and transport.
///
/// ```
/// use twofactor::mail::{Mailer, Notice};
/// use twofactor::UserId;
///
/// struct Smtp;
/// impl Mailer for Smtp {
///     type Error = std::io::Error;
///     async fn send(&self, user: &UserId, notice: &Notice) -> Result<(), std::io::Error> {
///         if let Some(code) = notice.expose_login_code() {
///             // render the "your login code" template with `code` and send it to `user`
///             let _ = (user, code);
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Mailer: Send + Sync {
    /// A delivery failure (transport down, unknown address).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends `notice` to `user`.
    fn send(
        &self,
        user: &UserId,
        notice: &Notice,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl<M: Mailer + ?Sized> Mailer for std::sync::Arc<M> {
    type Error = M::Error;
    fn send(
        &self,
        user: &UserId,
        notice: &Notice,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).send(user, notice)
    }
}

impl<M: Mailer + ?Sized> Mailer for &M {
    type Error = M::Error;
    fn send(
        &self,
        user: &UserId,
        notice: &Notice,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).send(user, notice)
    }
}

/// A mailer's error, shared: what [`LoginDecision::CodeNotSent`] carries for the host to log.
///
/// Cheap to clone; `Display` and `source` are the mailer's own, and
/// [`downcast_ref`](Self::downcast_ref) reaches the mailer's error type (an `SmtpError` from
/// the SMTP mailer, feature `smtp`). Two failures are equal only if they are the same one.
///
/// ```
/// use twofactor::mail::{MailFailure, NoMailerError, NoticeKind};
/// let failure = MailFailure::new(NoMailerError(NoticeKind::LoginCode));
/// assert_eq!(failure.to_string(), "no mailer configured: cannot deliver a LoginCode notice");
/// assert!(failure.downcast_ref::<NoMailerError>().is_some());
/// assert_eq!(failure, failure.clone());
/// assert_ne!(failure, MailFailure::new(NoMailerError(NoticeKind::LoginCode)));
/// ```
///
/// [`LoginDecision::CodeNotSent`]: crate::account::LoginDecision::CodeNotSent
#[derive(Clone)]
pub struct MailFailure(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>);

impl MailFailure {
    /// Wraps a mailer's error.
    #[must_use]
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        MailFailure(std::sync::Arc::new(error))
    }

    /// The mailer's error, if it is an `E`.
    #[must_use]
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl From<Box<dyn std::error::Error + Send + Sync + 'static>> for MailFailure {
    fn from(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        MailFailure(std::sync::Arc::from(error))
    }
}

impl fmt::Debug for MailFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MailFailure").field(&self.0).finish()
    }
}

impl fmt::Display for MailFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for MailFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for MailFailure {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MailFailure {}

/// For hosts that send no mail (a CLI, an app with TOTP only): informational notices are
/// dropped, and notices that must reach the user ([`Notice::must_deliver`]: login codes,
/// invitations, provisioned secrets) fail with [`NoMailerError`], so a mail-code policy cannot
/// silently lock users out.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMailer;

/// [`NoMailer`] was asked to deliver a notice that must reach the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no mailer configured: cannot deliver a {0:?} notice")]
pub struct NoMailerError(pub NoticeKind);

impl Mailer for NoMailer {
    type Error = NoMailerError;
    async fn send(&self, _user: &UserId, notice: &Notice) -> Result<(), NoMailerError> {
        if notice.must_deliver() {
            Err(NoMailerError(notice.kind()))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_codes_and_secrets() {
        let n = Notice::LoginCode {
            code: SecretText::new("123456"),
            expires_at: 9,
            context: LoginContext::default(),
        };
        assert!(!format!("{n:?}").contains("123456"));
        // The field itself is redacted too, for hosts that debug-print what they match out.
        let Notice::LoginCode { code, .. } = &n else {
            unreachable!()
        };
        assert_eq!(format!("{code:?}"), "SecretText([redacted])");
        assert_eq!(n.expose_login_code(), Some("123456"));
        assert!(n.must_deliver());
        let n = Notice::ProvisionedSecret {
            uri: SecretText::new("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"),
            manual_key: SecretText::new("JBSW Y3DP EHPK 3PXP"),
            expires_at: 9,
            provisioned_by: UserId::new("root"),
        };
        let dbg = format!("{n:?}");
        assert!(!dbg.contains("JBSW"));
        assert!(dbg.contains("root"));
        assert_eq!(
            n.expose_provisioning_uri(),
            Some("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP")
        );
        assert_eq!(n.expose_manual_key(), Some("JBSW Y3DP EHPK 3PXP"));
        assert_eq!(Notice::Enabled.expose_manual_key(), None);
        let Notice::ProvisionedSecret { manual_key, .. } = &n else {
            unreachable!()
        };
        assert!(!format!("{manual_key:?}").contains("JBSW"));
        assert!(!Notice::Enabled.must_deliver());
        assert_eq!(Notice::Enabled.kind(), NoticeKind::Enabled);
    }
}

pub use crate::vocabulary::BoxFuture;

/// Any mailer, chosen at run time: a [`Mailer`] whose error is [`DynError`].
///
/// [`Mailer`] returns `impl Future`, which makes it unusable as `dyn Mailer`; [`DynMail`] is
/// its object-safe twin, implemented for every `Mailer`, and `Arc<dyn DynMail>` is a `Mailer`
/// again. Build one with `Arc::new(mailer)` (it coerces):
///
/// ```
/// use std::sync::Arc;
/// use twofactor::mail::{DynMailer, NoMailer};
/// use twofactor::testing::RecordingMailer;
///
/// fn mailer_from_config(kind: &str) -> DynMailer {
///     match kind {
///         "record" => Arc::new(RecordingMailer::new()),
///         _ => Arc::new(NoMailer),
///     }
/// }
/// let mailer: DynMailer = mailer_from_config("none");
/// # let _ = mailer;
/// ```
pub type DynMailer = std::sync::Arc<dyn DynMail>;

/// The object-safe form of [`Mailer`], implemented for every `Mailer`: use it as
/// `Arc<dyn DynMail>` ([`DynMailer`]). Implement [`Mailer`], not this.
pub trait DynMail: Send + Sync {
    /// [`Mailer::send`], boxed.
    ///
    /// # Errors
    /// The mailer's error, boxed.
    fn send_boxed<'a>(
        &'a self,
        user: &'a UserId,
        notice: &'a Notice,
    ) -> BoxFuture<'a, Result<(), DynError>>;
}

impl<M: Mailer> DynMail for M {
    fn send_boxed<'a>(
        &'a self,
        user: &'a UserId,
        notice: &'a Notice,
    ) -> BoxFuture<'a, Result<(), DynError>> {
        Box::pin(async move { self.send(user, notice).await.map_err(DynError::new) })
    }
}

/// `dyn DynMail` is a [`Mailer`], so `Arc<dyn DynMail>` ([`DynMailer`]) is too. (For every
/// object lifetime, not only `'static`: the compiler checks a handler's future as `Send` with
/// its lifetimes erased, and an axum handler that calls the service would otherwise not
/// compile.)
impl<'a> Mailer for dyn DynMail + 'a {
    type Error = DynError;

    async fn send(&self, user: &UserId, notice: &Notice) -> Result<(), DynError> {
        // Awaited here, not returned: a boxed future has one lifetime, these borrows two.
        self.send_boxed(user, notice).await
    }
}

#[cfg(test)]
mod dyn_tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::RecordingMailer;

    #[tokio::test]
    async fn a_dyn_mailer_delivers_and_reports_errors() {
        let recording = Arc::new(RecordingMailer::new());
        let mailer: DynMailer = recording.clone();
        let alice = UserId::new("alice");
        mailer.send(&alice, &Notice::Enabled).await.unwrap();
        assert_eq!(recording.sent().len(), 1);

        let none: DynMailer = Arc::new(NoMailer);
        let code = Notice::LoginCode {
            code: SecretText::new("123456"),
            expires_at: 1,
            context: LoginContext::new(),
        };
        let err = none.send(&alice, &code).await.unwrap_err();
        assert!(err.downcast_ref::<NoMailerError>().is_some());
    }
}
