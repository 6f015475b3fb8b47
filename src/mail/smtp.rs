//! [`SmtpMailer`]: notices as e-mail over SMTP, on `lettre` (feature `smtp`).

use core::fmt;
use core::future::Future;
use std::collections::HashMap;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use zeroize::Zeroizing;

use super::{EnglishMessages, Mailer, Messages, Notice, Recipient};
use crate::clock::{Clock, SystemClock};
use crate::vocabulary::{BoxError, UserId};

/// Where a user's mail goes: the host's user directory, asked once per notice.
///
/// Answer `Ok(None)` for a user without an address: the send fails with
/// [`SmtpError::NoAddress`] (and so a login code, an invitation or a provisioned secret fails
/// its operation with [`Error::Mailer`](crate::service::Error::Mailer); an informational notice
/// is audited as not sent). Answer `Err` when the directory itself failed
/// ([`SmtpError::Lookup`]).
///
/// Implemented for a `HashMap<UserId, Recipient>` and for closures
/// `Fn(&UserId) -> impl Future<Output = Result<Option<Recipient>, E>>`; the closure's future
/// cannot borrow the `&UserId`, so clone what it needs:
///
/// ```
/// use std::sync::Arc;
/// use twofactor::mail::{AddressBook, Recipient};
/// use twofactor::UserId;
///
/// # #[derive(Clone)] struct Db;
/// # impl Db { async fn email_of(&self, _: &str) -> Result<Option<String>, std::io::Error> { Ok(Some("marc@example.com".into())) } }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let db = Arc::new(Db);
/// let addresses = move |user: &UserId| {
///     let (db, id) = (db.clone(), user.clone());
///     async move {
///         let email = db.email_of(id.as_str()).await?;
///         Ok::<_, std::io::Error>(email.map(Recipient::new))
///     }
/// };
/// let to = addresses.recipient(&UserId::new("marc")).await?;
/// assert_eq!(to.unwrap().address(), "marc@example.com");
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub trait AddressBook: Send + Sync {
    /// The directory's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The recipient for `user`, or `None` if the user has no address.
    fn recipient(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Recipient>, Self::Error>> + Send;
}

impl<S: std::hash::BuildHasher + Send + Sync> AddressBook for HashMap<UserId, Recipient, S> {
    type Error = std::convert::Infallible;

    async fn recipient(&self, user: &UserId) -> Result<Option<Recipient>, Self::Error> {
        Ok(self.get(user).cloned())
    }
}

impl<F, Fut, E> AddressBook for F
where
    F: Fn(&UserId) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Option<Recipient>, E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    type Error = E;

    fn recipient(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Recipient>, Self::Error>> + Send {
        self(user)
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub enum SmtpTls {
    /// No encryption: codes and secrets cross the network in clear. Only for a server on the
    /// same host (a local relay on `localhost`) or tests. Default port 25.
    Plain,
    /// Connect in clear, then upgrade with `STARTTLS`, which the server must offer: nothing
    /// (not the credentials, not the message) is sent otherwise. Default port 587.
    StartTls,
    /// TLS from the first byte ("SMTPS", "implicit TLS"). Default port 465.
    Implicit,
}

impl SmtpTls {
    /// The usual port for this mode: 25, 587 or 465.
    #[must_use]
    pub const fn default_port(self) -> u16 {
        match self {
            SmtpTls::Plain => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
        }
    }
}

/// Why an SMTP send (or building the mailer) failed. The cause is kept as the
/// [`source`](std::error::Error::source) (lettre's error, or the address book's), never
/// flattened into a string; no variant carries any of the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub enum SmtpError {
    /// The address book has no address for the user.
    #[error("no e-mail address for user {user}")]
    NoAddress {
        /// The user.
        user: UserId,
    },
    /// The address book failed.
    #[error("looking up the e-mail address failed")]
    Lookup(#[source] BoxError),
    /// The address book's address for the user is not an e-mail address.
    #[error("the e-mail address of user {user} is not valid")]
    InvalidAddress {
        /// The user.
        user: UserId,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The message could not be built (a header the rendered message cannot fill).
    #[error("the message could not be built")]
    Message(#[source] BoxError),
    /// The server could not be reached, or the connection broke (nothing listening, DNS,
    /// network).
    #[error("could not reach the SMTP server")]
    Connect(#[source] BoxError),
    /// The TLS handshake failed (an untrusted certificate, a name mismatch).
    #[error("TLS with the SMTP server failed")]
    Tls(#[source] BoxError),
    /// The server did not answer within the mailer's timeout.
    #[error("the SMTP server did not answer in time")]
    Timeout(#[source] BoxError),
    /// The server answered with an error: the sender, the recipient, the message or the
    /// credentials were refused (`5xx`), or it asked to try later (`4xx`).
    #[error("the SMTP server refused the message ({code})")]
    Refused {
        /// The SMTP reply code, e.g. 550 or 451.
        code: u16,
        /// lettre's error, with the server's reply text.
        #[source]
        source: BoxError,
    },
    /// The conversation went wrong: an answer that is not SMTP, or a server that does not
    /// offer `STARTTLS` under [`SmtpTls::StartTls`] (nothing was sent in clear).
    #[error("the SMTP conversation failed")]
    Protocol(#[source] BoxError),
    /// [`SmtpMailerBuilder::build`]: the sender is not a mailbox such as
    /// `Acme <no-reply@acme.example>`.
    #[error("the sender address is not valid")]
    InvalidSender(#[source] BoxError),
    /// [`SmtpMailerBuilder::build`]: the TLS settings are invalid (a root certificate that
    /// does not parse).
    #[error("the TLS settings are not valid")]
    InvalidTls(#[source] BoxError),
}

impl SmtpError {
    /// Whether trying again later may succeed: the server is down, slow, or answered `4xx`.
    /// A refusal (`5xx`), a missing or invalid address, or a TLS failure will fail again.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            SmtpError::Connect(_) | SmtpError::Timeout(_) | SmtpError::Lookup(_) => true,
            SmtpError::Refused { code, .. } => (400..500).contains(code),
            _ => false,
        }
    }

    fn from_transport(e: lettre::transport::smtp::Error) -> Self {
        if e.is_timeout() {
            SmtpError::Timeout(Box::new(e))
        } else if let Some(code) = e.status() {
            SmtpError::Refused {
                code: code.into(),
                source: Box::new(e),
            }
        } else if e.is_tls() || handshake_failed(&e) {
            SmtpError::Tls(Box::new(e))
        } else if e.is_response() || e.is_client() {
            SmtpError::Protocol(Box::new(e))
        } else {
            SmtpError::Connect(Box::new(e))
        }
    }
}

/// Whether a rustls error is among the causes of `e`: lettre reports a failed handshake (an
/// untrusted certificate, say) as a connection error whose I/O error wraps it.
fn handshake_failed(e: &lettre::transport::smtp::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if error.is::<rustls::Error>() {
            return true;
        }
        // An I/O error's `source` skips the error it wraps: look at that one too.
        if let Some(wrapped) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && wrapped.is::<rustls::Error>()
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Sends each notice as an e-mail (plain text and HTML, `multipart/alternative`) through an
/// SMTP server. Build it with [`SmtpMailer::builder`].
///
/// One connection per notice (notices are rare: a login code, a security warning); the
/// address comes from the host's [`AddressBook`], the words from [`Messages`]
/// ([`EnglishMessages`] by default). Sends need a Tokio runtime.
///
/// Nothing of the message is logged or put in an error. `Debug` shows the server, port, TLS
/// mode, sender and user name, never the password.
///
/// ```
/// use std::collections::HashMap;
/// use twofactor::mail::{Recipient, SmtpMailer, SmtpTls};
/// use twofactor::UserId;
///
/// let addresses = HashMap::from([(
///     UserId::new("marc"),
///     Recipient::new("marc@acme.example").name("Marc Demo"),
/// )]);
/// let mailer = SmtpMailer::builder("smtp.acme.example", SmtpTls::Implicit, "Acme <no-reply@acme.example>")
///     .credentials("no-reply", "s3cret")
///     .build(addresses)?; // connects to nothing yet
/// let shown = format!("{mailer:?}");
/// assert!(shown.contains("smtp.acme.example") && shown.contains("465") && shown.contains("no-reply"));
/// assert!(!shown.contains("s3cret"));
/// # Ok::<(), twofactor::mail::SmtpError>(())
/// ```
///
/// The [module documentation](crate::mail#smtp-feature-smtp) wires one into a service.
///
/// **When a send fails**, the service answers [`Error::Mailer`](crate::service::Error::Mailer)
/// for the notices that must be delivered; its source downcasts to [`SmtpError`]
/// ([`SmtpError::is_transient`] tells whether to say "try again in a minute"), and the audit
/// trail records `NoticeFailed`. Nobody is let in. A login code is saved before it is sent,
/// so a failed send still leaves that (undelivered) code stored and counted against the
/// sends allowed per hour: tell the user to try again, and a new `start_login` mails a new
/// code that replaces it.
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub struct SmtpMailer<B, M = EnglishMessages, C = SystemClock> {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    addresses: B,
    messages: M,
    clock: C,
    host: String,
    port: u16,
    tls: SmtpTls,
    user: Option<String>,
    timeout: Duration,
}

impl SmtpMailer<()> {
    /// A mailer for the server `host` (a name or an IP address; under TLS, the name its
    /// certificate must carry), protected as `tls` says, sending from `from` (a mailbox such
    /// as `"Acme <no-reply@acme.example>"`, checked by [`build`](SmtpMailerBuilder::build)).
    ///
    /// The messages default to [`EnglishMessages`] named after the sender's display name
    /// ("Acme"), or its domain when it has none.
    #[must_use]
    pub fn builder(
        host: impl Into<String>,
        tls: SmtpTls,
        from: impl Into<String>,
    ) -> SmtpMailerBuilder {
        let from = from.into();
        SmtpMailerBuilder {
            host: host.into(),
            tls,
            messages: EnglishMessages::new(app_name_of(&from)),
            from,
            port: None,
            credentials: None,
            timeout: DEFAULT_TIMEOUT,
            root_certificates: Vec::new(),
            hello_name: None,
            clock: SystemClock,
        }
    }
}

/// The longest a send may take, by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// "Acme" from `"Acme" <no-reply@acme.example>`, or `acme.example` from a bare address.
fn app_name_of(from: &str) -> String {
    let from = from.trim();
    if let Some((name, _)) = from.split_once('<') {
        let name = name.trim().trim_matches('"').trim();
        if !name.is_empty() {
            return name.to_owned();
        }
    }
    let address = from.trim_start_matches('<').trim_end_matches('>');
    address
        .rsplit_once('@')
        .map_or(address, |(_, domain)| domain)
        .to_owned()
}

/// Settings of an [`SmtpMailer`]; see [`SmtpMailer::builder`].
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub struct SmtpMailerBuilder<M = EnglishMessages, C = SystemClock> {
    host: String,
    tls: SmtpTls,
    from: String,
    port: Option<u16>,
    credentials: Option<(String, Zeroizing<String>)>,
    timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
    hello_name: Option<String>,
    messages: M,
    clock: C,
}

impl<M, C> SmtpMailerBuilder<M, C> {
    /// The port (default: [`SmtpTls::default_port`]).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Logs in with `user` and `password` (PLAIN or LOGIN, whichever the server offers).
    /// Under [`SmtpTls::StartTls`] they are sent only after the upgrade.
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), Zeroizing::new(password.into())));
        self
    }

    /// The longest a send may take, from connecting to the server's last answer (default 15
    /// seconds): a login that mails a code waits for the send. Past it, the connection is
    /// dropped and the send fails with [`SmtpError::Timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Also trusts the certificate authority in `pem` (a private CA of the host's mail
    /// server), besides the Mozilla root certificates. May be called more than once; a PEM
    /// that does not parse fails [`build`](Self::build).
    #[must_use]
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The name the mailer gives in `EHLO` (default: this machine's host name).
    #[must_use]
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// Words the messages with `messages` instead of [`EnglishMessages`].
    #[must_use]
    pub fn messages<M2: Messages>(self, messages: M2) -> SmtpMailerBuilder<M2, C> {
        SmtpMailerBuilder {
            host: self.host,
            tls: self.tls,
            from: self.from,
            port: self.port,
            credentials: self.credentials,
            timeout: self.timeout,
            root_certificates: self.root_certificates,
            hello_name: self.hello_name,
            messages,
            clock: self.clock,
        }
    }

    /// Reads the time the messages state ("on 6 December 2026 at 15:04 UTC", "in 60
    /// minutes") from `clock` (default [`SystemClock`]): give it the service's clock.
    #[must_use]
    pub fn clock<C2: Clock>(self, clock: C2) -> SmtpMailerBuilder<M, C2> {
        SmtpMailerBuilder {
            host: self.host,
            tls: self.tls,
            from: self.from,
            port: self.port,
            credentials: self.credentials,
            timeout: self.timeout,
            root_certificates: self.root_certificates,
            hello_name: self.hello_name,
            messages: self.messages,
            clock,
        }
    }

    /// The mailer, with the host's `addresses`. Connects to nothing yet.
    ///
    /// # Errors
    /// [`SmtpError::InvalidSender`], [`SmtpError::InvalidTls`].
    pub fn build<B: AddressBook>(self, addresses: B) -> Result<SmtpMailer<B, M, C>, SmtpError> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| SmtpError::InvalidSender(Box::new(e)))?;
        let port = self.port.unwrap_or(self.tls.default_port());
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(port)
            .timeout(Some(self.timeout));
        if self.tls != SmtpTls::Plain {
            let mut parameters = TlsParameters::builder(self.host.clone());
            for pem in &self.root_certificates {
                let certificate =
                    Certificate::from_pem(pem).map_err(|e| SmtpError::InvalidTls(Box::new(e)))?;
                parameters = parameters.add_root_certificate(certificate);
            }
            let parameters = parameters
                .build()
                .map_err(|e| SmtpError::InvalidTls(Box::new(e)))?;
            transport = transport.tls(match self.tls {
                SmtpTls::Implicit => Tls::Wrapper(parameters),
                _ => Tls::Required(parameters),
            });
        }
        let user = self.credentials.as_ref().map(|(user, _)| user.clone());
        if let Some((user, password)) = self.credentials {
            transport = transport.credentials(Credentials::new(user, password.to_string()));
        }
        if let Some(name) = self.hello_name {
            transport = transport.hello_name(ClientId::Domain(name));
        }
        Ok(SmtpMailer {
            transport: transport.build(),
            from,
            addresses,
            messages: self.messages,
            clock: self.clock,
            host: self.host,
            port,
            tls: self.tls,
            user,
            timeout: self.timeout,
        })
    }
}

impl<M, C> fmt::Debug for SmtpMailerBuilder<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailerBuilder")
            .field("host", &self.host)
            .field("port", &self.port.unwrap_or(self.tls.default_port()))
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<B, M, C> fmt::Debug for SmtpMailer<B, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field("user", &self.user)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<B, M, C> SmtpMailer<B, M, C> {
    /// The address book.
    pub fn addresses(&self) -> &B {
        &self.addresses
    }
    /// The messages.
    pub fn messages(&self) -> &M {
        &self.messages
    }
}

impl<B: AddressBook, M: Messages, C: Clock> Mailer for SmtpMailer<B, M, C> {
    type Error = SmtpError;

    async fn send(&self, user: &UserId, notice: &Notice) -> Result<(), SmtpError> {
        let to = self
            .addresses
            .recipient(user)
            .await
            .map_err(|e| SmtpError::Lookup(Box::new(e)))?
            .ok_or_else(|| SmtpError::NoAddress { user: user.clone() })?;
        let address: Address = to
            .address()
            .parse()
            .map_err(|e| SmtpError::InvalidAddress {
                user: user.clone(),
                source: Box::new(e),
            })?;
        let rendered = self.messages.render(&to, notice, self.clock.now());
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(to.display_name().map(str::to_owned), address))
            .subject(rendered.subject())
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text().to_owned(),
                rendered.html().to_owned(),
            ))
            .map_err(|e| SmtpError::Message(Box::new(e)))?;
        // lettre bounds the connect only; a server that stops answering mid-conversation
        // would hold the login for as long as the server's own timeout (minutes).
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(sent) => sent.map(drop).map_err(SmtpError::from_transport),
            Err(elapsed) => Err(SmtpError::Timeout(Box::new(elapsed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_name_comes_from_the_sender() {
        assert_eq!(app_name_of("Acme <no-reply@acme.example>"), "Acme");
        assert_eq!(
            app_name_of("\"Acme Corp\" <no-reply@acme.example>"),
            "Acme Corp"
        );
        assert_eq!(app_name_of("no-reply@acme.example"), "acme.example");
        assert_eq!(app_name_of("<no-reply@acme.example>"), "acme.example");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let builder = SmtpMailer::builder("smtp.example.com", SmtpTls::StartTls, "a@example.com")
            .credentials("mailer", "hunter2-secret");
        let dbg = format!("{builder:?}");
        assert!(dbg.contains("smtp.example.com") && dbg.contains("587") && dbg.contains("mailer"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let mailer = builder.build(HashMap::<UserId, Recipient>::new()).unwrap();
        let dbg = format!("{mailer:?}");
        assert!(dbg.contains("StartTls") && dbg.contains("mailer"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let bad_from = SmtpMailer::builder("localhost", SmtpTls::Plain, "not an address")
            .build(HashMap::<UserId, Recipient>::new());
        assert!(matches!(bad_from, Err(SmtpError::InvalidSender(_))));
        let bad_pem = SmtpMailer::builder("localhost", SmtpTls::Implicit, "a@example.com")
            .root_certificate_pem("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
            .build(HashMap::<UserId, Recipient>::new());
        assert!(
            matches!(bad_pem, Err(SmtpError::InvalidTls(_))),
            "{bad_pem:?}"
        );
    }

    #[test]
    fn only_server_delays_and_4xx_are_worth_retrying() {
        let io = || Box::new(std::io::Error::other("x")) as BoxError;
        assert!(SmtpError::Connect(io()).is_transient());
        assert!(SmtpError::Timeout(io()).is_transient());
        assert!(
            SmtpError::Refused {
                code: 451,
                source: io()
            }
            .is_transient()
        );
        assert!(
            !SmtpError::Refused {
                code: 550,
                source: io()
            }
            .is_transient()
        );
        assert!(
            !SmtpError::NoAddress {
                user: UserId::new("a")
            }
            .is_transient()
        );
        assert!(!SmtpError::Tls(io()).is_transient());
    }
}
