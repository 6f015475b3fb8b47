//! The words of a notice: subject, plain text and HTML, for any transport.
//!
//! [`Messages`] turns a [`Notice`] into a [`Rendered`] message for a [`Recipient`];
//! [`EnglishMessages`] is the default, in plain English. A host with its own language or brand
//! implements [`Messages`], and may hand the notices it does not rewrite to [`EnglishMessages`].
//! [`escape_html`] and [`readable_utc`] are the helpers the defaults use.

use core::fmt;
use std::fmt::Write as _;

use zeroize::Zeroizing;

use super::{DisabledBy, Notice};
use crate::vocabulary::LoginContext;

/// Who a message goes to: an address (e-mail, or whatever the transport uses), and what the
/// host knows that a message may use (a display name, a language).
///
/// ```
/// use twofactor::mail::Recipient;
/// let to = Recipient::new("marc@example.com").name("Marc Demo").language("fr");
/// assert_eq!(to.address(), "marc@example.com");
/// assert_eq!(to.display_name(), Some("Marc Demo"));
/// assert_eq!(to.lang(), Some("fr"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    address: String,
    name: Option<String>,
    language: Option<String>,
}

impl Recipient {
    /// A recipient at `address`.
    #[must_use]
    pub fn new(address: impl Into<String>) -> Self {
        Recipient {
            address: address.into(),
            name: None,
            language: None,
        }
    }
    /// Sets the display name ("Hello Marc Demo,").
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the preferred language (a tag such as `"fr"` or `"pt-BR"`), for a [`Messages`]
    /// that speaks several. [`EnglishMessages`] ignores it.
    #[must_use]
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }
    /// The address.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }
    /// The display name, if known.
    #[must_use]
    pub fn display_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The preferred language, if known.
    #[must_use]
    pub fn lang(&self) -> Option<&str> {
        self.language.as_deref()
    }
}

/// A message ready to send: a subject, a plain-text body and an HTML body (sent together as
/// `multipart/alternative` by the SMTP mailer).
///
/// The bodies may carry a login code or an authenticator secret: they are zeroized on drop,
/// and `Debug` shows the subject only.
#[derive(Clone)]
pub struct Rendered {
    subject: String,
    text: Zeroizing<String>,
    html: Zeroizing<String>,
}

impl Rendered {
    /// A message. `html` must be a complete, escaped HTML document (see [`escape_html`]).
    #[must_use]
    pub fn new(
        subject: impl Into<String>,
        text: impl Into<String>,
        html: impl Into<String>,
    ) -> Self {
        Rendered {
            subject: subject.into(),
            text: Zeroizing::new(text.into()),
            html: Zeroizing::new(html.into()),
        }
    }
    /// The subject line. The defaults never put a code or a secret in it: subjects show on
    /// lock screens and in mail logs.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The plain-text body.
    ///
    /// # Security warning
    /// May contain a login code or an authenticator secret: send it, never log it.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The HTML body.
    ///
    /// # Security warning
    /// May contain a login code or an authenticator secret: send it, never log it.
    #[must_use]
    pub fn html(&self) -> &str {
        &self.html
    }
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Writes the message for a notice: implement it for your language, brand or templates.
///
/// `render` gets the recipient, the notice and the time of sending (Unix seconds). Match the
/// notices you want to word yourself and hand the rest to [`EnglishMessages`] (the match needs
/// a fallback arm anyway: [`Notice`] is `#[non_exhaustive]`). HTML is yours to escape: use
/// [`escape_html`] on everything that comes from a user or the notice.
///
/// ```
/// use twofactor::mail::{escape_html, readable_utc, EnglishMessages, Messages, Notice, Recipient, Rendered};
/// use twofactor::mail::SecretText;
/// use twofactor::LoginContext;
///
/// /// French login codes, English for the rest.
/// struct Acme { english: EnglishMessages }
///
/// impl Messages for Acme {
///     fn render(&self, to: &Recipient, notice: &Notice, now: u64) -> Rendered {
///         match (to.lang(), notice) {
///             (Some("fr"), Notice::LoginCode { code, expires_at, .. }) => {
///                 let code = code.expose_secret();
///                 let until = readable_utc(*expires_at);
///                 Rendered::new(
///                     "Votre code de connexion Acme",
///                     format!("Votre code : {code}\nValable jusqu'au {until}."),
///                     format!(
///                         "<!DOCTYPE html><html lang=\"fr\"><body><p>Votre code : <strong>{}</strong></p></body></html>",
///                         escape_html(code),
///                     ),
///                 )
///             }
///             _ => self.english.render(to, notice, now),
///         }
///     }
/// }
///
/// let acme = Acme { english: EnglishMessages::new("Acme") };
/// let code = Notice::LoginCode {
///     code: SecretText::new("123456"),
///     expires_at: 1_796_569_440,
///     context: LoginContext::new(),
/// };
/// let fr = acme.render(&Recipient::new("marc@example.com").language("fr"), &code, 1_796_565_840);
/// assert_eq!(fr.subject(), "Votre code de connexion Acme");
/// assert!(fr.text().contains("123456"));
/// let en = acme.render(&Recipient::new("emma@example.com"), &code, 1_796_565_840);
/// assert_eq!(en.subject(), "Your Acme login code");
/// assert!(en.text().contains("6 December 2026 at 15:04 UTC"));
/// ```
pub trait Messages: Send + Sync {
    /// The message telling `to` about `notice`, sent at `now` (Unix seconds).
    fn render(&self, to: &Recipient, notice: &Notice, now: u64) -> Rendered;
}

impl<T: Messages + ?Sized> Messages for std::sync::Arc<T> {
    fn render(&self, to: &Recipient, notice: &Notice, now: u64) -> Rendered {
        (**self).render(to, notice, now)
    }
}

impl<T: Messages + ?Sized> Messages for Box<T> {
    fn render(&self, to: &Recipient, notice: &Notice, now: u64) -> Rendered {
        (**self).render(to, notice, now)
    }
}

impl<T: Messages + ?Sized> Messages for &T {
    fn render(&self, to: &Recipient, notice: &Notice, now: u64) -> Rendered {
        (**self).render(to, notice, now)
    }
}

/// The default messages, in plain English, for every notice.
///
/// Dates read like "6 December 2026 at 15:04 UTC". A login code or a provisioned key is in the
/// body only, never in the subject. Text that a user or a client controls (a name, a device
/// label, the browser description) is put on one line and cut at 100 characters, so it cannot
/// pose as a paragraph of the message; in HTML everything is escaped.
///
/// ```
/// use twofactor::mail::{EnglishMessages, Messages, Notice, Recipient};
/// let messages = EnglishMessages::new("Acme").account_url("https://acme.example/account/security");
/// let m = messages.render(&Recipient::new("marc@example.com").name("Marc"), &Notice::Enabled, 1_796_569_440);
/// assert_eq!(m.subject(), "Two-factor authentication is on for your Acme account");
/// assert!(m.text().starts_with("Hello Marc,\n\nTwo-factor authentication was turned on for your Acme account on 6 December 2026 at 15:04 UTC."));
/// assert!(m.text().contains("https://acme.example/account/security"));
/// assert!(m.html().contains("<a href=\"https://acme.example/account/security\">"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnglishMessages {
    app_name: String,
    account_url: Option<String>,
}

impl EnglishMessages {
    /// Messages that name the application `app_name` ("Your Acme login code").
    #[must_use]
    pub fn new(app_name: impl Into<String>) -> Self {
        EnglishMessages {
            app_name: app_name.into(),
            account_url: None,
        }
    }
    /// The page where a user reviews their security settings: linked from every security
    /// notice ("If this was not you…").
    #[must_use]
    pub fn account_url(mut self, url: impl Into<String>) -> Self {
        self.account_url = Some(url.into());
        self
    }
    /// The application's name, as the messages say it.
    #[must_use]
    pub fn app_name(&self) -> &str {
        &self.app_name
    }
}

impl Messages for EnglishMessages {
    fn render(&self, to: &Recipient, notice: &Notice, now: u64) -> Rendered {
        let app = one_line(&self.app_name);
        let app = app.as_str();
        let on = readable_utc(now);
        let mut doc = Doc::default();
        match to.display_name().map(one_line) {
            Some(name) if !name.is_empty() => doc.p([text(format!("Hello {name},"))]),
            _ => doc.p([text("Hello,")]),
        }
        let mut security_link = true;
        let subject = match notice {
            Notice::LoginCode {
                code,
                expires_at,
                context,
            } => {
                security_link = false;
                doc.p([text(format!("Your code to finish signing in to {app} is:"))]);
                doc.big_code(code.expose_secret());
                doc.p([text(format!(
                    "It works once, until {}{}.",
                    readable_utc(*expires_at),
                    from_now(*expires_at, now)
                ))]);
                context_details(&mut doc, "The sign-in came from:", context);
                doc.p([text(
                    "If you did not try to sign in, someone else knows your password: change it. \
                     Never give this code to anyone, whoever asks for it.",
                )]);
                format!("Your {app} login code")
            }
            Notice::Enabled => {
                doc.p([text(format!(
                    "Two-factor authentication was turned on for your {app} account on {on}. \
                     From now on, signing in asks for a code from your authenticator app after \
                     your password."
                ))]);
                doc.p([text(
                    "Keep your recovery codes somewhere safe: they let you in if you lose your \
                     phone.",
                )]);
                not_you_changed(&mut doc);
                format!("Two-factor authentication is on for your {app} account")
            }
            Notice::Rotated { devices_revoked } => {
                doc.p([text(format!(
                    "The authenticator app of your {app} account was replaced on {on}. Codes \
                     from the previous app no longer work."
                ))]);
                if *devices_revoked > 0 {
                    doc.p([text(format!(
                        "{} signed out: {} ask for a code at the next sign-in.",
                        count(
                            *devices_revoked,
                            "trusted device was",
                            "trusted devices were"
                        ),
                        if *devices_revoked == 1 {
                            "it will"
                        } else {
                            "they will"
                        },
                    ))]);
                }
                not_you_changed(&mut doc);
                format!("The authenticator app of your {app} account was replaced")
            }
            Notice::AuthenticatorAdded { label } => {
                doc.p([text(format!(
                    "On {on}, an authenticator was added to your {app} account: \u{201c}{}\u{201d}. \
                     Codes from it now sign you in, as do codes from your other authenticators.",
                    one_line(label)
                ))]);
                not_you_changed(&mut doc);
                format!("An authenticator was added to your {app} account")
            }
            Notice::AuthenticatorRemoved { label } => {
                doc.p([text(format!(
                    "On {on}, the authenticator \u{201c}{}\u{201d} was removed from your {app} \
                     account. Codes from it no longer work; your other authenticators still do.",
                    one_line(label)
                ))]);
                not_you_changed(&mut doc);
                format!("An authenticator was removed from your {app} account")
            }
            Notice::AuthenticatorRenamed { from, to } => {
                doc.p([text(format!(
                    "On {on}, the authenticator \u{201c}{}\u{201d} of your {app} account was \
                     renamed \u{201c}{}\u{201d}.",
                    one_line(from),
                    one_line(to)
                ))]);
                not_you_changed(&mut doc);
                format!("An authenticator of your {app} account was renamed")
            }
            Notice::Disabled { by } => {
                let by = match by {
                    DisabledBy::User => "by you (with your password and a code)".to_owned(),
                    DisabledBy::Admin { admin } => {
                        format!("by an administrator ({})", one_line(admin.as_str()))
                    }
                };
                doc.p([text(format!(
                    "Two-factor authentication was turned off for your {app} account on {on}, \
                     {by}. Your trusted devices were forgotten, and signing in now asks for \
                     your password only."
                ))]);
                not_you_changed(&mut doc);
                format!("Two-factor authentication is off for your {app} account")
            }
            Notice::DeviceTrusted { label, context } => {
                doc.p([text(format!(
                    "On {on}, a device was trusted for your {app} account: \u{201c}{}\u{201d}. \
                     It will not ask for a code when you sign in on it.",
                    one_line(label)
                ))]);
                context_details(&mut doc, "It signed in from:", context);
                doc.p([text(
                    "If this was not you, remove the device in your security settings and \
                     change your password.",
                )]);
                format!("A device was trusted for your {app} account")
            }
            Notice::DevicesRemoved { labels } => {
                if labels.is_empty() {
                    doc.p([text(format!(
                        "On {on}, the trusted devices of your {app} account were removed. They \
                         will ask for a code at the next sign-in."
                    ))]);
                } else {
                    doc.p([text(format!(
                        "On {on}, {} removed from your {app} account. {} ask for a code at the \
                         next sign-in:",
                        count(labels.len(), "trusted device was", "trusted devices were"),
                        if labels.len() == 1 {
                            "It will"
                        } else {
                            "They will"
                        },
                    ))]);
                    doc.list(labels.iter().map(|l| vec![text(one_line(l))]).collect());
                }
                not_you_changed(&mut doc);
                format!("Trusted devices were removed from your {app} account")
            }
            Notice::SignInFromUntrustedDevice { context } => {
                doc.p([text(format!(
                    "Someone signed in to your {app} account with a code on {on}, on a device \
                     that is not trusted."
                ))]);
                context_details(&mut doc, "The sign-in came from:", context);
                doc.p([text(
                    "If this was you, there is nothing to do. If not, change your password now \
                     and review your security settings.",
                )]);
                format!("New sign-in to your {app} account")
            }
            Notice::FailedCodeAttempt { context } => {
                doc.p([text(format!(
                    "On {on}, someone entered the right password for your {app} account, then a \
                     wrong code."
                ))]);
                context_details(&mut doc, "The attempt came from:", context);
                doc.p([text(
                    "If this was not you, someone else knows your password: change it now. \
                     Without your code they could not sign in.",
                )]);
                format!("Failed sign-in attempt on your {app} account")
            }
            Notice::RecoveryCodesRegenerated => {
                doc.p([text(format!(
                    "New recovery codes were made for your {app} account on {on}. The previous \
                     codes no longer work."
                ))]);
                not_you_changed(&mut doc);
                format!("New recovery codes for your {app} account")
            }
            Notice::RecoveryCodeUsed {
                remaining,
                low,
                context,
            } => {
                doc.p([text(format!(
                    "A recovery code was used on your {app} account on {on}. Each code works \
                     once."
                ))]);
                context_details(&mut doc, "It came from:", context);
                doc.p([text(match (remaining, low) {
                    (0, _) => "You have no recovery codes left. Make new ones now in your \
                               security settings; you will be asked to the next time you sign \
                               in. Without them, losing your phone would lock you out."
                        .to_owned(),
                    (_, true) => format!(
                        "You have {} left: make new ones soon in your security settings.",
                        count(*remaining, "recovery code", "recovery codes")
                    ),
                    (_, false) => format!(
                        "You have {} left.",
                        count(*remaining, "recovery code", "recovery codes")
                    ),
                })]);
                doc.p([text(
                    "If this was not you, change your password now and review your security \
                     settings.",
                )]);
                format!("A recovery code was used for your {app} account")
            }
            Notice::Invitation { link, invited_by } => {
                security_link = false;
                doc.p([text(format!(
                    "An administrator ({}) invites you to turn on two-factor authentication for \
                     your {app} account: after your password, signing in will ask for a code \
                     from an authenticator app on your phone.",
                    one_line(invited_by.as_str())
                ))]);
                doc.p([text("Set it up here: "), link_to(link)]);
                format!("Turn on two-factor authentication for your {app} account")
            }
            Notice::ProvisionedSecret {
                uri,
                manual_key,
                expires_at,
                provisioned_by,
            } => {
                security_link = false;
                doc.p([text(format!(
                    "An administrator ({}) set up two-factor authentication for your {app} \
                     account. Add the account to your authenticator app:",
                    one_line(provisioned_by.as_str())
                ))]);
                doc.list(vec![
                    vec![
                        text("on your phone, open this link: "),
                        link_to(uri.expose_secret()),
                    ],
                    vec![
                        text("or type this key in the app: "),
                        code_text(manual_key.expose_secret()),
                    ],
                ]);
                doc.p([text(format!(
                    "Then sign in to {app} and enter the code the app shows, before {}{}, to \
                     confirm it.",
                    readable_utc(*expires_at),
                    from_now(*expires_at, now)
                ))]);
                doc.p([text(
                    "This message contains a secret key: delete it once the app is set up, and \
                     never forward it.",
                )]);
                format!("Set up your authenticator app for {app}")
            }
        };
        if security_link && let Some(url) = &self.account_url {
            doc.p([text("Your security settings: "), link_to(url)]);
        }
        doc.p([text(app)]);
        doc.render(subject, "en")
    }
}

fn not_you_changed(doc: &mut Doc) {
    doc.p([text(
        "If you did not do this, someone else may have access to your account: change your \
         password now and review your security settings.",
    )]);
}

/// "The sign-in came from:" and the device, location and IP address the host knew, if any.
fn context_details(doc: &mut Doc, intro: &str, context: &LoginContext) {
    let mut items = Vec::new();
    if let Some(device) = context.device.as_deref() {
        items.push(vec![text(format!("Device: {}", one_line(device)))]);
    }
    if let Some(location) = context.location.as_deref() {
        items.push(vec![text(format!(
            "Approximate location: {}",
            one_line(location)
        ))]);
    }
    if let Some(ip) = context.ip {
        items.push(vec![text(format!("IP address: {ip}"))]);
    }
    if !items.is_empty() {
        doc.p([text(intro)]);
        doc.list(items);
    }
}

/// "1 trusted device was" / "3 trusted devices were".
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// " (in 60 minutes)", or nothing if `at` is not after `now`.
fn from_now(at: u64, now: u64) -> String {
    let Some(left) = at.checked_sub(now).filter(|s| *s > 0) else {
        return String::new();
    };
    let minutes = left / 60;
    let hours = left / 3_600;
    let days = left / 86_400;
    let words = if minutes == 0 {
        "less than a minute".to_owned()
    } else if hours < 2 {
        count(
            usize::try_from(minutes).unwrap_or(usize::MAX),
            "minute",
            "minutes",
        )
    } else if days < 2 {
        count(
            usize::try_from(hours).unwrap_or(usize::MAX),
            "hour",
            "hours",
        )
    } else {
        count(usize::try_from(days).unwrap_or(usize::MAX), "day", "days")
    };
    format!(" (in {words})")
}

/// Longest text a user or client controls that a message repeats.
const FIELD_MAX_CHARS: usize = 100;

/// Text a user or client controls, made safe to repeat: control and bidirectional-override
/// characters become spaces (a label cannot start a new paragraph nor reverse what follows),
/// runs of white space become one, and it is cut at [`FIELD_MAX_CHARS`] with an ellipsis.
fn one_line(s: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut space = false;
    for c in s.trim().chars() {
        let c = if c.is_control() || is_bidi_control(c) || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if chars == FIELD_MAX_CHARS {
            out.truncate(out.trim_end().len());
            out.push('\u{2026}');
            return out;
        }
        out.push(c);
        chars += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// The Unicode characters that change the direction of the text around them.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by character references: safe as HTML text and
/// inside a double- or single-quoted attribute value.
///
/// ```
/// use twofactor::mail::escape_html;
/// assert_eq!(
///     escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
///     "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
/// );
/// ```
#[must_use]
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A Unix time as a person reads it, in UTC: `"6 December 2026 at 15:04 UTC"` (proleptic
/// Gregorian calendar, 24-hour clock, seconds dropped).
///
/// ```
/// use twofactor::mail::readable_utc;
/// assert_eq!(readable_utc(0), "1 January 1970 at 00:00 UTC");
/// assert_eq!(readable_utc(1_796_569_499), "6 December 2026 at 15:04 UTC");
/// assert_eq!(readable_utc(951_868_799), "29 February 2000 at 23:59 UTC");
/// ```
#[must_use]
pub fn readable_utc(unix_seconds: u64) -> String {
    let (year, month, day) = civil_from_days(unix_seconds / 86_400);
    let in_day = unix_seconds % 86_400;
    let month = MONTHS[usize::from(month - 1)];
    format!(
        "{day} {month} {year} at {:02}:{:02} UTC",
        in_day / 3_600,
        in_day % 3_600 / 60
    )
}

/// The Gregorian (year, month 1–12, day 1–31) of `days` since 1970-01-01. Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch (so all unsigned).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    // Shift the epoch to 0000-03-01, so that leap days end each 4/100/400-year cycle.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of the era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year from 1 March, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + u64::from(month <= 2);
    // Both fit: day ≤ 31, month ≤ 12.
    (
        year,
        u8::try_from(month).unwrap_or(12),
        u8::try_from(day).unwrap_or(31),
    )
}

// ----- one letter, two renderings -----

/// A piece of a paragraph.
enum Inline {
    Text(String),
    /// Monospace (a key to type).
    Code(String),
    /// A link: clickable in HTML only for `https:`, `http:` and `otpauth:` (shown as text
    /// otherwise).
    Link(String),
}

fn text(s: impl Into<String>) -> Inline {
    Inline::Text(s.into())
}
fn code_text(s: &str) -> Inline {
    Inline::Code(s.to_owned())
}
fn link_to(url: &str) -> Inline {
    Inline::Link(url.trim().to_owned())
}

enum Block {
    Paragraph(Vec<Inline>),
    /// A code to read and type, shown large.
    BigCode(String),
    List(Vec<Vec<Inline>>),
}

/// A letter, written once and rendered as plain text and as HTML, so both say the same and
/// every piece of the HTML goes through [`escape_html`].
#[derive(Default)]
struct Doc {
    blocks: Vec<Block>,
}

impl Doc {
    fn p<const N: usize>(&mut self, inlines: [Inline; N]) {
        self.blocks.push(Block::Paragraph(inlines.into()));
    }
    fn big_code(&mut self, code: &str) {
        self.blocks.push(Block::BigCode(code.to_owned()));
    }
    fn list(&mut self, items: Vec<Vec<Inline>>) {
        self.blocks.push(Block::List(items));
    }

    fn render(&self, subject: String, lang: &str) -> Rendered {
        let mut plain = Zeroizing::new(String::new());
        let mut html = Zeroizing::new(format!(
            "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n</head>\n\
             <body style=\"font-family: sans-serif; font-size: 16px; line-height: 1.5; \
             color: #1a1a1a; max-width: 40em;\">\n",
            escape_html(lang),
            escape_html(&subject)
        ));
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                plain.push_str("\n\n");
            }
            match block {
                Block::Paragraph(inlines) => {
                    inlines_plain(&mut plain, inlines);
                    html.push_str("<p>");
                    inlines_html(&mut html, inlines);
                    html.push_str("</p>\n");
                }
                Block::BigCode(code) => {
                    let _ = write!(plain, "    {code}");
                    let _ = writeln!(
                        html,
                        "<p style=\"font-family: monospace; font-size: 28px; font-weight: bold; \
                         letter-spacing: 4px;\">{}</p>",
                        escape_html(code)
                    );
                }
                Block::List(items) => {
                    html.push_str("<ul>\n");
                    for (j, item) in items.iter().enumerate() {
                        if j > 0 {
                            plain.push('\n');
                        }
                        plain.push_str("  - ");
                        inlines_plain(&mut plain, item);
                        html.push_str("<li>");
                        inlines_html(&mut html, item);
                        html.push_str("</li>\n");
                    }
                    html.push_str("</ul>\n");
                }
            }
        }
        plain.push('\n');
        html.push_str("</body>\n</html>\n");
        Rendered {
            subject,
            text: plain,
            html,
        }
    }
}

fn inlines_plain(out: &mut String, inlines: &[Inline]) {
    for inline in inlines {
        match inline {
            Inline::Text(s) | Inline::Code(s) | Inline::Link(s) => out.push_str(s),
        }
    }
}

fn inlines_html(out: &mut String, inlines: &[Inline]) {
    for inline in inlines {
        match inline {
            Inline::Text(s) => out.push_str(&escape_html(s)),
            Inline::Code(s) => {
                let _ = write!(
                    out,
                    "<code style=\"font-size: 18px; font-weight: bold;\">{}</code>",
                    escape_html(s)
                );
            }
            Inline::Link(url) if is_linkable(url) => {
                let url = escape_html(url);
                let _ = write!(out, "<a href=\"{url}\">{url}</a>");
            }
            Inline::Link(url) => out.push_str(&escape_html(url)),
        }
    }
}

/// Whether `url` may be an `href`: `https:`, `http:` or `otpauth:` (a `javascript:` or
/// `data:` link is shown as text, never made clickable).
fn is_linkable(url: &str) -> bool {
    let Some((scheme, _)) = url.split_once(':') else {
        return false;
    };
    ["https", "http", "otpauth"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{NoticeKind, SecretText};
    use crate::vocabulary::UserId;
    use proptest::prelude::*;

    /// Every kind of notice, with `hostile` in every field a user, a client or the host fills.
    fn every_notice(hostile: &str) -> Vec<Notice> {
        let context = LoginContext::new()
            .ip("203.0.113.9".parse().unwrap())
            .device(hostile)
            .location(hostile);
        vec![
            Notice::LoginCode {
                code: SecretText::new("042917"),
                expires_at: 1_796_569_440 + 3_600,
                context: context.clone(),
            },
            Notice::Enabled,
            Notice::Rotated { devices_revoked: 3 },
            Notice::Disabled {
                by: DisabledBy::User,
            },
            Notice::Disabled {
                by: DisabledBy::Admin {
                    admin: UserId::new(hostile),
                },
            },
            Notice::DeviceTrusted {
                label: hostile.to_owned(),
                context: context.clone(),
            },
            Notice::DevicesRemoved {
                labels: vec![hostile.to_owned(), "Firefox on Linux".to_owned()],
            },
            Notice::DevicesRemoved { labels: vec![] },
            Notice::SignInFromUntrustedDevice {
                context: context.clone(),
            },
            Notice::FailedCodeAttempt {
                context: context.clone(),
            },
            Notice::RecoveryCodesRegenerated,
            Notice::RecoveryCodeUsed {
                remaining: 1,
                low: true,
                context,
            },
            Notice::Invitation {
                link: hostile.to_owned(),
                invited_by: UserId::new(hostile),
            },
            Notice::ProvisionedSecret {
                uri: SecretText::new(
                    "otpauth://totp/Acme:marc?secret=JBSWY3DPEHPK3PXP&issuer=Acme",
                ),
                manual_key: SecretText::new("JBSW Y3DP EHPK 3PXP"),
                expires_at: 1_796_569_440 + 86_400,
                provisioned_by: UserId::new(hostile),
            },
            Notice::AuthenticatorAdded {
                label: hostile.to_owned(),
            },
            Notice::AuthenticatorRemoved {
                label: hostile.to_owned(),
            },
            Notice::AuthenticatorRenamed {
                from: hostile.to_owned(),
                to: hostile.to_owned(),
            },
        ]
    }

    const NOW: u64 = 1_796_569_440; // 6 December 2026 at 15:04 UTC

    fn hostile_messages(hostile: &str) -> EnglishMessages {
        EnglishMessages::new(hostile).account_url(hostile)
    }

    /// The HTML is made only of the tags the renderer writes, with well-quoted attributes,
    /// and text with no raw markup characters: whatever the fields held, nothing else got in.
    fn assert_well_formed(html: &str) {
        const TAGS: &[&str] = &[
            "html", "head", "meta", "title", "body", "p", "ul", "li", "a", "code",
        ];
        let Some(rest) = html.strip_prefix("<!DOCTYPE html>\n") else {
            panic!("no doctype: {html}")
        };
        let mut rest = rest;
        while let Some(open) = rest.find('<') {
            assert_clean_text(&rest[..open], html);
            let close = rest[open..].find('>').expect("an unclosed tag") + open;
            let tag = &rest[open + 1..close];
            let tag = tag.strip_prefix('/').unwrap_or(tag);
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(TAGS.contains(&name), "tag <{name}> in {html}");
            while !attrs.is_empty() {
                let (key, value_rest) = attrs.split_once("=\"").expect("attr=\"");
                assert!(key.chars().all(|c| c.is_ascii_lowercase()), "{key}");
                let end = value_rest.find('"').expect("closing quote");
                let value = &value_rest[..end];
                assert!(!value.contains(['<', '>', '\'']), "{value}");
                if key == "href" {
                    assert!(is_linkable(&unescape(value)), "href {value}");
                }
                attrs = value_rest[end + 1..].trim_start();
            }
            rest = &rest[close + 1..];
        }
        assert_clean_text(rest, html);
    }

    fn assert_clean_text(s: &str, html: &str) {
        assert!(!s.contains(['>', '"', '\'']), "raw markup {s:?} in {html}");
        // Every & starts a character reference this module writes.
        for (i, _) in s.match_indices('&') {
            let tail = &s[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| tail.starts_with(e)),
                "bare & in {s:?}"
            );
        }
    }

    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    /// What a letter must never contain: Rust `Debug` output.
    fn assert_no_debug_text(s: &str) {
        for debug in [
            "Some(",
            "None",
            "UserId(",
            "SecretText",
            "[redacted]",
            "LoginContext",
            "DisabledBy",
            "Admin {",
            "{ ",
        ] {
            assert!(!s.contains(debug), "{debug:?} in {s}");
        }
    }

    #[test]
    fn every_notice_has_a_subject_text_and_html() {
        let messages = EnglishMessages::new("Acme").account_url("https://acme.example/security");
        let to = Recipient::new("marc@example.com").name("Marc");
        let notices = every_notice("Chrome on Windows");
        let kinds: std::collections::HashSet<NoticeKind> =
            notices.iter().map(Notice::kind).collect();
        assert_eq!(kinds.len(), 15, "every NoticeKind is rendered here");
        let mut subjects = std::collections::HashSet::new();
        for notice in &notices {
            let m = messages.render(&to, notice, NOW);
            assert!(m.subject().contains("Acme"), "{}", m.subject());
            assert!(!m.subject().contains(['\n', '\r']));
            subjects.insert(m.subject().to_owned());
            assert!(m.text().starts_with("Hello Marc,\n\n"), "{}", m.text());
            assert!(m.text().ends_with("\n\nAcme\n"), "{}", m.text());
            assert!(m.html().contains("<p>Hello Marc,</p>"));
            assert!(m.html().contains("<html lang=\"en\">"));
            assert_well_formed(m.html());
            assert_no_debug_text(m.subject());
            assert_no_debug_text(m.text());
            assert_no_debug_text(m.html());
            // No secret in the subject; the secret a notice carries is in both bodies.
            for secret in [
                notice.expose_login_code(),
                notice.expose_manual_key(),
                notice.expose_provisioning_uri(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(!m.subject().contains(secret));
                assert!(m.text().contains(secret), "{}", m.text());
                assert!(m.html().contains(&escape_html(secret)), "{}", m.html());
            }
            // Dates a person reads.
            if !matches!(
                notice.kind(),
                NoticeKind::Invitation | NoticeKind::LoginCode | NoticeKind::ProvisionedSecret
            ) {
                assert!(
                    m.text().contains("6 December 2026 at 15:04 UTC"),
                    "{}",
                    m.text()
                );
            }
        }
        // Two Disabled and two DevicesRemoved variants share their subject.
        assert_eq!(subjects.len(), 15);
    }

    #[test]
    fn a_login_code_says_until_when_and_from_where() {
        let m = EnglishMessages::new("Acme").render(
            &Recipient::new("marc@example.com"),
            &every_notice("Chrome on Windows")[0],
            NOW,
        );
        assert_eq!(m.subject(), "Your Acme login code");
        assert_eq!(
            m.text(),
            "Hello,\n\nYour code to finish signing in to Acme is:\n\n    042917\n\n\
             It works once, until 6 December 2026 at 16:04 UTC (in 60 minutes).\n\n\
             The sign-in came from:\n\n  - Device: Chrome on Windows\n  - Approximate location: \
             Chrome on Windows\n  - IP address: 203.0.113.9\n\n\
             If you did not try to sign in, someone else knows your password: change it. Never \
             give this code to anyone, whoever asks for it.\n\nAcme\n"
        );
        // No security-settings link on a login code, even when configured.
        let m = EnglishMessages::new("Acme")
            .account_url("https://acme.example/security")
            .render(&Recipient::new("m@example.com"), &every_notice("x")[0], NOW);
        assert!(!m.text().contains("acme.example/security"));
    }

    #[test]
    fn links_are_clickable_only_for_web_and_authenticator_schemes() {
        let invite = |link: &str| {
            EnglishMessages::new("Acme")
                .render(
                    &Recipient::new("m@example.com"),
                    &Notice::Invitation {
                        link: link.to_owned(),
                        invited_by: UserId::new("root"),
                    },
                    NOW,
                )
                .html()
                .to_owned()
        };
        assert!(
            invite("https://acme.example/2fa?x=1&y=2")
                .contains("<a href=\"https://acme.example/2fa?x=1&amp;y=2\">")
        );
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,x",
            "/relative",
        ] {
            let html = invite(bad);
            assert!(!html.contains("<a "), "{bad} became a link: {html}");
            assert!(html.contains(&escape_html(bad)));
        }
        let provisioned = EnglishMessages::new("Acme").render(
            &Recipient::new("m@example.com"),
            &every_notice("x")[13],
            NOW,
        );
        assert!(
            provisioned
                .html()
                .contains("<a href=\"otpauth://totp/Acme:marc?secret=")
        );
        assert!(
            provisioned
                .text()
                .contains("before 7 December 2026 at 15:04 UTC (in 24 hours)")
        );
    }

    #[test]
    fn user_text_cannot_start_a_paragraph_nor_reverse_the_text() {
        let label = "Firefox\n\nYour new code is 000000.\r\n\u{202e}moc.live\u{2066}";
        let m = EnglishMessages::new("Acme").render(
            &Recipient::new("m@example.com").name("Marc\nDemo"),
            &Notice::DeviceTrusted {
                label: label.to_owned(),
                context: LoginContext::new().device("x".repeat(500)),
            },
            NOW,
        );
        assert!(m.text().starts_with("Hello Marc Demo,\n\n"));
        assert!(
            m.text()
                .contains("\u{201c}Firefox Your new code is 000000. moc.live\u{201d}")
        );
        assert!(!m.text().contains(['\u{202e}', '\u{2066}', '\r']));
        let device_line = m.text().lines().find(|l| l.contains("Device: ")).unwrap();
        assert_eq!(
            device_line,
            format!("  - Device: {}\u{2026}", "x".repeat(FIELD_MAX_CHARS))
        );
        assert_eq!(one_line("  a \t\u{7} b  "), "a b");
        assert_eq!(
            one_line(&"é".repeat(FIELD_MAX_CHARS)),
            "é".repeat(FIELD_MAX_CHARS)
        );
    }

    #[test]
    fn counts_and_delays_read_as_english() {
        assert_eq!(from_now(100, 100), "");
        assert_eq!(from_now(100, 200), "");
        assert_eq!(from_now(159, 100), " (in less than a minute)");
        assert_eq!(from_now(160, 100), " (in 1 minute)");
        assert_eq!(from_now(3_600, 0), " (in 60 minutes)");
        assert_eq!(from_now(7_199, 0), " (in 119 minutes)");
        assert_eq!(from_now(7_200, 0), " (in 2 hours)");
        assert_eq!(from_now(86_400, 0), " (in 24 hours)");
        assert_eq!(from_now(2 * 86_400, 0), " (in 2 days)");
        assert_eq!(count(1, "code", "codes"), "1 code");
        assert_eq!(count(0, "code", "codes"), "0 codes");
        let used = |remaining| {
            EnglishMessages::new("Acme")
                .render(
                    &Recipient::new("m@example.com"),
                    &Notice::RecoveryCodeUsed {
                        remaining,
                        low: remaining <= 3,
                        context: LoginContext::new(),
                    },
                    NOW,
                )
                .text()
                .to_owned()
        };
        assert!(used(0).contains(
            "You have no recovery codes left. Make new ones now in your security settings; you \
             will be asked to the next time you sign in."
        ));
        assert!(used(1).contains("You have 1 recovery code left: make new ones soon"));
        assert!(used(3).contains("You have 3 recovery codes left: make new ones soon"));
        assert!(used(4).contains("You have 4 recovery codes left."));
        assert!(!used(4).contains("make new ones"));
        assert!(used(7).contains("You have 7 recovery codes left."));
        // No context, no "came from" list.
        assert!(!used(7).contains("came from"));
    }

    #[test]
    fn known_dates_read_right() {
        for (unix, expected) in [
            (0, "1 January 1970 at 00:00 UTC"),
            (94_694_399, "31 December 1972 at 23:59 UTC"), // a leap year's last day
            (951_868_799, "29 February 2000 at 23:59 UTC"), // 2000 is a leap year (÷400)
            (951_868_800, "1 March 2000 at 00:00 UTC"),
            (1_709_208_000, "29 February 2024 at 12:00 UTC"),
            (1_796_569_499, "6 December 2026 at 15:04 UTC"),
            (4_107_542_340, "28 February 2100 at 23:59 UTC"), // 2100 is not (÷100)
            (4_107_542_400, "1 March 2100 at 00:00 UTC"),
            (13_574_586_600, "29 February 2400 at 06:30 UTC"),
        ] {
            assert_eq!(readable_utc(unix), expected, "{unix}");
        }
        // The far future neither panics nor wraps.
        assert!(readable_utc(u64::MAX).ends_with("UTC"));
    }

    /// Day by day from 1970 to 2600, the conversion agrees with a calendar that counts.
    #[test]
    fn every_day_matches_a_counting_calendar() {
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let (mut y, mut m, mut d) = (1970u64, 1u8, 1u8);
        let mut days = 0u64;
        while y < 2600 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let month_len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
            days += 1;
        }
    }

    proptest! {
        /// Whatever a user, a client or the host puts in a field, the HTML of every notice is
        /// only our markup, the text is one line per field, and nothing is lost but controls.
        #[test]
        fn any_field_text_comes_out_escaped(hostile in "\\PC{0,40}", name in "\\PC{0,20}") {
            let messages = hostile_messages(&hostile);
            let to = Recipient::new("m@example.com").name(name);
            for notice in every_notice(&hostile) {
                let m = messages.render(&to, &notice, NOW);
                assert_well_formed(m.html());
                prop_assert!(!m.subject().contains(['\n', '\r']));
            }
        }

        #[test]
        fn escape_html_leaves_no_markup_and_round_trips(s in "\\PC{0,60}") {
            let escaped = escape_html(&s);
            prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
            prop_assert_eq!(unescape(&escaped), s);
        }
    }

    #[test]
    fn script_and_quotes_in_every_field_are_escaped() {
        let hostile = "<script>alert(\"x\")</script>' onmouseover='x";
        let messages = hostile_messages(hostile);
        let to = Recipient::new("m@example.com").name(hostile);
        for notice in every_notice(hostile) {
            let m = messages.render(&to, &notice, NOW);
            assert_well_formed(m.html());
            assert!(!m.html().contains("<script"), "{}", m.html());
            assert!(
                m.html()
                    .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;")
            );
            // The plain text repeats it as it was (it is not markup there).
            assert!(
                m.text().contains(hostile),
                "{:?}: {}",
                notice.kind(),
                m.text()
            );
        }
    }

    #[test]
    fn debug_shows_the_subject_only() {
        let m = Rendered::new("Your code", "123456", "<p>123456</p>");
        assert_eq!(format!("{m:?}"), "Rendered { subject: \"Your code\", .. }");
    }
}
