//! QR codes for Key URIs: SVG for web pages, Unicode half blocks for terminals, PNG bytes.

use core::fmt;
use core::fmt::Write as _;

use zeroize::Zeroizing;

/// The quiet zone (light margin) around every rendering, in modules: 4, as ISO/IEC 18004
/// requires. Scanners fail without it, especially on a dark page or terminal.
pub const QUIET_ZONE: u32 = 4;

/// Pixels per module in [`QrCode::to_svg`]'s `width`/`height` (the image scales, it has a
/// `viewBox`): a typical enrollment code of 41 modules with its quiet zone is 246 px wide.
pub const SVG_MODULE_PX: u32 = 6;

/// Pixels per module in [`QrCode::to_png`].
#[cfg(feature = "png")]
pub const PNG_MODULE_PX: u32 = 8;

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// More data than the largest QR code (version 40) holds at medium error correction
    /// (2,331 bytes).
    #[error("{bytes} bytes are too many for a QR code")]
    DataTooLong {
        /// The length of the data, in bytes.
        bytes: usize,
    },
    /// The QR encoder failed for another reason.
    #[error("QR encoding failed")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// PNG encoding failed.
    #[cfg(feature = "png")]
    #[error("PNG encoding failed")]
    Png(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How [`QrCode::to_terminal`] draws modules. Every style packs two rows of modules into one
/// line of text with the Unicode half blocks `▀ ▄ █`, so the code is square in a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TerminalStyle {
    /// ANSI colours: black modules on a white background, whatever the terminal's theme.
    /// The safe default for an interactive terminal.
    #[default]
    Ansi,
    /// No escape codes, for a terminal with a dark background and light text: light modules
    /// and the quiet zone are drawn as blocks, dark modules are the terminal's background.
    PlainDarkBackground,
    /// No escape codes, for a terminal with a light background and dark text: dark modules
    /// are drawn as blocks.
    PlainLightBackground,
}

/// A QR code (medium error correction) holding a Key URI, ready to render.
///
/// The modules encode the secret, so they are wiped from memory on drop and `Debug` shows
/// only the size.
///
/// ```
/// use twofactor::provision::QrCode;
/// use twofactor::provision::{QUIET_ZONE, TerminalStyle};
///
/// let qr = QrCode::new("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME")?;
/// let side = qr.width() + 2 * QUIET_ZONE; // modules, with the quiet zone
///
/// let svg = qr.to_svg();
/// assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
/// assert!(svg.contains(&format!(r#"viewBox="0 0 {side} {side}""#)));
///
/// let text = qr.to_terminal(TerminalStyle::PlainLightBackground);
/// assert_eq!(text.lines().count() as u32, side.div_ceil(2)); // two module rows per line
/// assert!(text.lines().all(|line| line.chars().count() as u32 == side));
/// # Ok::<(), twofactor::provision::QrError>(())
/// ```
#[derive(Clone)]
pub struct QrCode {
    /// Modules per side, without the quiet zone.
    width: u32,
    /// Row-major, `true` for dark.
    modules: Zeroizing<Vec<bool>>,
}

impl QrCode {
    /// Encodes `data` (normally [`KeyUri::to_uri_string`](crate::KeyUri::to_uri_string)) in the
    /// smallest QR code that holds it at medium error correction.
    ///
    /// ```
    /// use twofactor::provision::QrCode;
    /// use twofactor::provision::QrError;
    ///
    /// let qr = QrCode::new("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP")?;
    /// assert_eq!(qr.width(), 29); // version 3
    /// assert!(matches!(
    ///     QrCode::new(&"a".repeat(3000)),
    ///     Err(QrError::DataTooLong { bytes: 3000 })
    /// ));
    /// # Ok::<(), QrError>(())
    /// ```
    ///
    /// # Errors
    /// [`QrError::DataTooLong`] above 2,331 bytes.
    pub fn new(data: &str) -> Result<Self, QrError> {
        let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M)
            .map_err(|err| match err {
                qrcode::types::QrError::DataTooLong => QrError::DataTooLong { bytes: data.len() },
                other => QrError::Encode(Box::new(other)),
            })?;
        let width =
            u32::try_from(code.width()).map_err(|_| QrError::DataTooLong { bytes: data.len() })?;
        Ok(QrCode {
            width,
            modules: Zeroizing::new(
                code.into_colors()
                    .into_iter()
                    .map(|c| c == qrcode::Color::Dark)
                    .collect(),
            ),
        })
    }

    /// Modules per side, without the quiet zone (21 to 177).
    #[must_use]
    pub const fn width(&self) -> u32 {
        self.width
    }

    /// Modules per side including the quiet zone on both sides.
    const fn side(&self) -> u32 {
        self.width + 2 * QUIET_ZONE
    }

    /// Whether the module at (`x`, `y`) is dark, in coordinates that include the quiet zone
    /// (anything outside the symbol is light).
    fn is_dark(&self, x: u32, y: u32) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(QUIET_ZONE), y.checked_sub(QUIET_ZONE)) else {
            return false;
        };
        if x >= self.width || y >= self.width {
            return false;
        }
        let index = u64::from(y) * u64::from(self.width) + u64::from(x);
        usize::try_from(index)
            .ok()
            .and_then(|i| self.modules.get(i))
            .copied()
            .unwrap_or(false)
    }

    /// An SVG image: black modules on a white square including the quiet zone, one `<path>`,
    /// a `viewBox` in module units (so CSS can resize it without blurring) and a default size
    /// of [`SVG_MODULE_PX`] pixels per module. No XML prolog, so it can be inlined in HTML.
    #[must_use]
    pub fn to_svg(&self) -> String {
        let side = self.side();
        let px = side * SVG_MODULE_PX;
        let mut svg = String::with_capacity(512 + self.modules.len() * 4);
        // Writing to a String cannot fail.
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{px}" height="{px}" viewBox="0 0 {side} {side}" shape-rendering="crispEdges" role="img" aria-label="QR code"><rect width="{side}" height="{side}" fill="#fff"/><path fill="#000" d=""##
        );
        for y in QUIET_ZONE..QUIET_ZONE + self.width {
            let mut x = QUIET_ZONE;
            while x < QUIET_ZONE + self.width {
                if self.is_dark(x, y) {
                    let start = x;
                    while x < QUIET_ZONE + self.width && self.is_dark(x, y) {
                        x += 1;
                    }
                    let run = x - start;
                    let _ = write!(svg, "M{start} {y}h{run}v1h-{run}z");
                } else {
                    x += 1;
                }
            }
        }
        svg.push_str(r#""/></svg>"#);
        svg
    }

    /// Text for a terminal: two module rows per line in Unicode half blocks, with the quiet
    /// zone, one line per two rows (each line ends with `\n`). See [`TerminalStyle`] for the
    /// colours; [`TerminalStyle::Ansi`] scans on any terminal that understands ANSI colours.
    #[must_use]
    pub fn to_terminal(&self, style: TerminalStyle) -> String {
        let side = self.side();
        let invert = style == TerminalStyle::PlainDarkBackground;
        let ansi = style == TerminalStyle::Ansi;
        let lines = side.div_ceil(2);
        let mut out = String::with_capacity((lines * (side * 3 + 16)) as usize);
        for line in 0..lines {
            let top_y = line * 2;
            if ansi {
                // Black foreground on bright white background.
                out.push_str("\x1b[30;107m");
            }
            for x in 0..side {
                // Below the last row (odd side) is quiet zone: light.
                let top = self.is_dark(x, top_y) != invert;
                let bottom = self.is_dark(x, top_y + 1) != invert;
                out.push(match (top, bottom) {
                    (true, true) => '\u{2588}',
                    (true, false) => '\u{2580}',
                    (false, true) => '\u{2584}',
                    (false, false) => ' ',
                });
            }
            if ansi {
                out.push_str("\x1b[0m");
            }
            out.push('\n');
        }
        out
    }

    /// A PNG image (8-bit greyscale): [`PNG_MODULE_PX`] pixels per module, black on white,
    /// with the quiet zone.
    ///
    /// ```
    /// let qr = twofactor::provision::QrCode::new("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP")?;
    /// let png = qr.to_png()?;
    /// assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    /// # Ok::<(), twofactor::provision::QrError>(())
    /// ```
    ///
    /// # Errors
    /// [`QrError::Png`] if the PNG encoder fails (it does not for an in-memory image).
    #[cfg(feature = "png")]
    #[cfg_attr(docsrs, doc(cfg(feature = "png")))]
    pub fn to_png(&self) -> Result<Vec<u8>, QrError> {
        use image::ImageEncoder as _;

        let px = self.side() * PNG_MODULE_PX;
        let image = image::GrayImage::from_fn(px, px, |x, y| {
            if self.is_dark(x / PNG_MODULE_PX, y / PNG_MODULE_PX) {
                image::Luma([0])
            } else {
                image::Luma([255])
            }
        });
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(image.as_raw(), px, px, image::ExtendedColorType::L8)
            .map_err(|err| QrError::Png(Box::new(err)))?;
        Ok(png)
    }
}

impl fmt::Debug for QrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrCode")
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}
