//! QR codes decode back to the exact URI with a real scanner (`zbarimg` from zbar-tools), in
//! every rendering: PNG directly, and the SVG and terminal outputs redrawn as images.
#![cfg(feature = "png")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use twofactor::otp::{Algorithm, Hotp};
use twofactor::provision::QrCode;
use twofactor::provision::{OtpKind, QrError, TerminalStyle};
use twofactor::provision::{PNG_MODULE_PX, QUIET_ZONE, SVG_MODULE_PX};
use twofactor::{KeyUri, Secret, Totp};

const ZBARIMG: &str = "/usr/bin/zbarimg";

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(extension: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempFile(std::env::temp_dir().join(format!(
            "twofactor-qr-{}-{n}.{extension}",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Scans an image file with zbarimg and returns the decoded text. Fails (never skips) when
/// zbarimg is missing.
fn scan(path: &Path) -> String {
    assert!(
        Path::new(ZBARIMG).exists(),
        "{ZBARIMG} not found: these tests need a real QR decoder; run `apt-get install zbar-tools`"
    );
    let output = Command::new(ZBARIMG)
        .args(["--raw", "-q"])
        .arg(path)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {ZBARIMG} (apt-get install zbar-tools): {err}"));
    assert!(
        output.status.success(),
        "zbarimg found no QR code in {} (status {}): {}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("zbarimg prints UTF-8");
    // --raw prints the data followed by one newline.
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

fn scan_png(png: &[u8]) -> String {
    let file = TempFile::new("png");
    std::fs::write(&file.0, png).unwrap();
    scan(&file.0)
}

/// Draws a module grid (quiet zone included) as a binary PGM, 4 pixels per module, and scans it.
fn scan_grid(grid: &[Vec<bool>]) -> String {
    const PX: usize = 4;
    let side = grid.len();
    let mut pgm = format!("P5\n{} {}\n255\n", side * PX, side * PX).into_bytes();
    for row in grid {
        assert_eq!(row.len(), side, "grid is not square");
        for _ in 0..PX {
            for &dark in row {
                pgm.extend(std::iter::repeat_n(if dark { 0u8 } else { 255 }, PX));
            }
        }
    }
    let file = TempFile::new("pgm");
    std::fs::write(&file.0, pgm).unwrap();
    scan(&file.0)
}

fn key(kind: OtpKind, secret: Secret, issuer: Option<&str>, account: &str) -> String {
    KeyUri::new(kind, secret, issuer, account)
        .unwrap()
        .to_uri_string()
        .as_str()
        .to_owned()
}

/// Several real-looking URIs, short to long, including a unicode issuer with a 64-byte
/// SHA-512 secret.
fn uris() -> Vec<String> {
    let sha512 = Totp::builder()
        .algorithm(Algorithm::Sha512)
        .digits(8)
        .build()
        .unwrap();
    let secret64 =
        Secret::from_bytes((0u8..64).map(|b| b.wrapping_mul(37)).collect::<Vec<_>>()).unwrap();
    let period60 = Totp::builder().period(60).digits(7).build().unwrap();
    vec![
        "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example".to_owned(),
        key(
            OtpKind::Totp(sha512),
            secret64,
            Some("Zürich Bank 日本 🔑"),
            "jörg+2fa@example.com",
        ),
        key(
            OtpKind::Hotp {
                params: Hotp::new(Algorithm::Sha256, 6, 0).unwrap(),
                counter: 1_234_567,
            },
            Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            None,
            "hotp-user",
        ),
        key(
            OtpKind::Totp(period60),
            Secret::generate().unwrap(),
            Some("A & B: 100% \"quoted\" ?#"),
            "user name with spaces",
        ),
        key(
            OtpKind::default(),
            Secret::generate_with_len(32).unwrap(),
            Some(&"Long Issuer Name ".repeat(12)),
            &"very.long.account.name".repeat(10),
        ),
    ]
}

#[test]
fn png_scans_back_to_the_exact_uri() {
    let uris = uris();
    assert!(uris[1].contains("Z%C3%BCrich") && uris[1].contains("algorithm=SHA512"));
    for uri in &uris {
        let qr = QrCode::new(uri).unwrap();
        let png = qr.to_png().unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        // IHDR: width and height, big-endian, at bytes 16..24.
        let side = (qr.width() + 2 * QUIET_ZONE) * PNG_MODULE_PX;
        assert_eq!(png[16..20], side.to_be_bytes());
        assert_eq!(png[20..24], side.to_be_bytes());
        assert_eq!(&scan_png(&png), uri);
        // And the URI parses back to a key.
        KeyUri::parse(uri).unwrap();
    }
}

/// Reads the module grid back out of the SVG path (`M{x} {y}h{run}v1h-{run}z` runs).
fn svg_grid(svg: &str, side: usize) -> Vec<Vec<bool>> {
    let d = svg
        .split(" d=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("one path with a d attribute");
    let mut grid = vec![vec![false; side]; side];
    for run in d.split('M').filter(|r| !r.is_empty()) {
        let (xy, rest) = run.split_once('h').expect("h after M");
        let (x, y) = xy.split_once(' ').expect("M x y");
        let len = rest.split_once('v').expect("v after h").0;
        assert_eq!(rest, format!("{len}v1h-{len}z"), "run {run}");
        let (x, y, len): (usize, usize, usize) =
            (x.parse().unwrap(), y.parse().unwrap(), len.parse().unwrap());
        for cell in &mut grid[y][x..x + len] {
            assert!(!*cell, "overlapping runs");
            *cell = true;
        }
    }
    grid
}

#[test]
fn svg_is_well_formed_and_scans() {
    for uri in uris() {
        let qr = QrCode::new(&uri).unwrap();
        let svg = qr.to_svg();
        let side = qr.width() + 2 * QUIET_ZONE;
        let px = side * SVG_MODULE_PX;
        assert!(
            svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"), "inline-able in HTML");
        assert!(svg.contains(&format!(r#"width="{px}" height="{px}""#)));
        assert!(svg.contains(&format!(r#"viewBox="0 0 {side} {side}""#)));
        assert!(svg.contains(&format!(
            r##"<rect width="{side}" height="{side}" fill="#fff"/>"##
        )));
        assert_eq!(svg.matches("<path ").count(), 1);
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        // Three elements: svg (closed by </svg>), rect and path (self-closed).
        assert_eq!(svg.matches('<').count(), 4);
        assert_eq!(svg.matches("/>").count(), 2);
        assert_eq!(svg.matches('"').count() % 2, 0);
        // Nothing of the URI leaks into the markup as text.
        assert!(!svg.contains("otpauth"));

        let grid = svg_grid(&svg, side as usize);
        // The quiet zone is empty.
        let q = QUIET_ZONE as usize;
        let side = side as usize;
        for (y, row) in grid.iter().enumerate() {
            for (x, &dark) in row.iter().enumerate() {
                if x < q || y < q || x >= side - q || y >= side - q {
                    assert!(!dark, "dark module in the quiet zone at {x},{y}");
                }
            }
        }
        assert_eq!(scan_grid(&grid), uri);
    }
}

/// Reads the module grid back out of terminal text; `dark_glyph` says whether a drawn half
/// block means a dark module.
fn terminal_grid(text: &str, side: usize, blocks_are_dark: bool) -> Vec<Vec<bool>> {
    let mut grid = vec![vec![false; side]; side];
    for (line_no, line) in text.lines().enumerate() {
        for (x, c) in line.chars().enumerate() {
            let (top, bottom) = match c {
                '\u{2588}' => (true, true),
                '\u{2580}' => (true, false),
                '\u{2584}' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected character {other:?}"),
            };
            let y = line_no * 2;
            grid[y][x] = top == blocks_are_dark;
            if y + 1 < side {
                grid[y + 1][x] = bottom == blocks_are_dark;
            } else {
                // The half row below an odd-sized code is quiet zone (light).
                assert_eq!(bottom, !blocks_are_dark, "last half row must be light");
            }
        }
    }
    grid
}

fn strip_ansi(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let inner = line
            .strip_prefix("\x1b[30;107m")
            .and_then(|l| l.strip_suffix("\x1b[0m"))
            .unwrap_or_else(|| panic!("line not wrapped in colour codes: {line:?}"));
        assert!(!inner.contains('\x1b'));
        lines.push(inner);
    }
    lines.join("\n")
}

#[test]
fn terminal_output_has_the_right_dimensions_and_scans() {
    for uri in uris() {
        let qr = QrCode::new(&uri).unwrap();
        let side = (qr.width() + 2 * QUIET_ZONE) as usize;
        for style in [
            TerminalStyle::Ansi,
            TerminalStyle::PlainLightBackground,
            TerminalStyle::PlainDarkBackground,
        ] {
            let raw = qr.to_terminal(style);
            assert!(raw.ends_with('\n'));
            let text = if style == TerminalStyle::Ansi {
                strip_ansi(&raw)
            } else {
                assert!(!raw.contains('\x1b'));
                raw.clone()
            };
            // Two module rows per line; QR sides are odd, so the last line is half quiet zone.
            assert_eq!(side % 2, 1);
            assert_eq!(text.lines().count(), side.div_ceil(2), "{style:?}");
            for line in text.lines() {
                assert_eq!(line.chars().count(), side, "{style:?}");
            }
            let blocks_are_dark = style != TerminalStyle::PlainDarkBackground;
            let grid = terminal_grid(&text, side, blocks_are_dark);
            // Quiet zone: the first two lines and the last two lines are entirely light.
            let light_line = if blocks_are_dark { ' ' } else { '\u{2588}' };
            let lines: Vec<&str> = text.lines().collect();
            for line in [lines[0], lines[1], lines[lines.len() - 1]] {
                assert!(line.chars().all(|c| c == light_line), "{style:?}: {line:?}");
            }
            assert_eq!(scan_grid(&grid), uri, "{style:?}");
        }
    }
}

#[test]
fn all_renderings_agree() {
    let uri = &uris()[1];
    let qr = QrCode::new(uri).unwrap();
    let side = (qr.width() + 2 * QUIET_ZONE) as usize;
    let from_svg = svg_grid(&qr.to_svg(), side);
    let from_terminal = terminal_grid(
        &qr.to_terminal(TerminalStyle::PlainLightBackground),
        side,
        true,
    );
    assert_eq!(from_svg, from_terminal);
}

#[test]
fn data_too_long_is_a_typed_error() {
    // Version 40 at medium error correction holds 2,331 bytes.
    let fits = "a".repeat(2331);
    assert_eq!(QrCode::new(&fits).unwrap().width(), 177);
    let too_long = "a".repeat(2332);
    match QrCode::new(&too_long) {
        Err(QrError::DataTooLong { bytes }) => assert_eq!(bytes, 2332),
        other => panic!("expected DataTooLong, got {other:?}"),
    }
    let err = QrCode::new(&"x".repeat(5000)).unwrap_err();
    assert_eq!(err.to_string(), "5000 bytes are too many for a QR code");
}

#[test]
fn debug_does_not_show_modules() {
    let qr = QrCode::new("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP").unwrap();
    assert_eq!(
        format!("{qr:?}"),
        format!("QrCode {{ width: {}, .. }}", qr.width())
    );
}
