//! Provisioning: `otpauth://` Key URIs and the QR codes that carry them to an authenticator app.
//!
//! - [`KeyUri`] builds and parses Key URIs (Google Authenticator's "Key Uri Format"), leniently
//!   on input (what real services emit) and canonically on output.
//! - [`QrCode`] renders one as SVG (web pages), Unicode half blocks (terminals) or, with the
//!   `png` feature, PNG bytes.
//! - [`Provisioning`] bundles what an enrollment screen shows: the URI, the QR code as SVG and
//!   the grouped manual key for "Cannot scan it?".
//!
//! Pure functions of their input: no I/O, no clock, no randomness.

mod qr;
mod uri;

#[cfg(feature = "png")]
pub use qr::PNG_MODULE_PX;
pub use qr::{QUIET_ZONE, QrCode, QrError, SVG_MODULE_PX, TerminalStyle};
pub use uri::{KeyUri, OtpKind, UriError};

use core::fmt;

use zeroize::Zeroizing;

/// What an enrollment screen shows: the Key URI, its QR code as SVG, and the secret as a
/// grouped manual key for people who cannot scan ("Cannot scan it? Type this key").
///
/// Every field contains the secret: they are wiped on drop and `Debug` shows only the names.
///
/// ```
/// use twofactor::{KeyUri, Secret};
/// use twofactor::provision::{OtpKind, Provisioning};
///
/// let secret = Secret::from_base32("JBSWY3DPEHPK3PXP")?;
/// let key = KeyUri::new(OtpKind::default(), secret, Some("ACME"), "alice@example.com")?;
/// let screen = Provisioning::new(&key)?;
///
/// assert_eq!(screen.uri(), "otpauth://totp/ACME:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME");
/// assert!(screen.qr_svg().starts_with("<svg"));
/// assert_eq!(screen.manual_key(), "JBSW Y3DP EHPK 3PXP");
/// assert_eq!(screen.issuer(), Some("ACME"));
/// assert!(!format!("{screen:?}").contains("JBSW"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Provisioning {
    uri: Zeroizing<String>,
    qr_svg: Zeroizing<String>,
    manual_key: Zeroizing<String>,
    kind: OtpKind,
    issuer: Option<String>,
    account: String,
}

impl Provisioning {
    /// Renders everything an enrollment screen needs for `key`.
    ///
    /// ```
    /// use twofactor::{KeyUri, Secret};
    /// use twofactor::provision::{OtpKind, Provisioning, QrError};
    ///
    /// let key = KeyUri::new(OtpKind::default(), Secret::generate()?, Some("ACME"), "bob")?;
    /// let screen = Provisioning::new(&key)?;
    /// assert!(screen.uri().starts_with("otpauth://totp/ACME:bob?secret="));
    ///
    /// let huge = KeyUri::new(OtpKind::default(), Secret::generate()?, None, &"b".repeat(3000))?;
    /// assert!(matches!(Provisioning::new(&huge), Err(QrError::DataTooLong { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`QrError::DataTooLong`] if the URI does not fit in a QR code (only with issuer and
    /// account names of well over a thousand bytes).
    pub fn new(key: &KeyUri) -> Result<Self, QrError> {
        let uri = key.to_uri_string();
        let qr = QrCode::new(&uri)?;
        Ok(Provisioning {
            qr_svg: Zeroizing::new(qr.to_svg()),
            uri,
            manual_key: key.secret().to_base32_grouped(),
            kind: *key.kind(),
            issuer: key.issuer().map(str::to_owned),
            account: key.account().to_owned(),
        })
    }

    /// The `otpauth://` URI (for a link on a phone, where scanning is impossible).
    ///
    /// # Security warning
    /// Contains the secret: show it only to the enrolling user, never log it.
    #[must_use]
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The QR code of the URI as an SVG image, to inline in the enrollment page.
    ///
    /// # Security warning
    /// Encodes the secret: serve it only to the enrolling user, with `Cache-Control: no-store`.
    #[must_use]
    pub fn qr_svg(&self) -> &str {
        &self.qr_svg
    }

    /// The secret in base32, in groups of four (`JBSW Y3DP EHPK 3PXP`), for typing by hand.
    ///
    /// # Security warning
    /// This is the secret itself.
    #[must_use]
    pub fn manual_key(&self) -> &str {
        &self.manual_key
    }

    /// TOTP or HOTP and the parameters, for a manual-entry hint ("time-based, 6 digits").
    #[must_use]
    pub const fn kind(&self) -> &OtpKind {
        &self.kind
    }

    /// The issuer shown in the app, if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name shown in the app.
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioning")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}
