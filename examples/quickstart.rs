//! Enroll an authenticator app from the terminal, then check the codes it shows.
//!
//! ```text
//! cargo run --example quickstart
//! echo 123456 | cargo run --example quickstart   # works without a terminal too
//! ```
//!
//! Prints a fresh secret as an `otpauth://` URI, a QR code and a grouped manual key, then reads
//! one code per line from standard input and says whether it is valid. The last accepted time
//! step is remembered, so typing the same code twice says it was already used (replay
//! protection). Ends on end of input (Ctrl-D).

use std::io::{self, BufRead, IsTerminal, Write};

use twofactor::clock::SystemClock;
use twofactor::otp::VerifyError;
use twofactor::provision::QrCode;
use twofactor::provision::{OtpKind, TerminalStyle};
use twofactor::{Clock, KeyUri, Secret, Totp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Enrollment: a new 160-bit secret, the default parameters every app understands.
    let totp = Totp::default();
    let secret = Secret::generate()?;
    let key = KeyUri::new(
        OtpKind::Totp(totp),
        secret,
        Some("twofactor quickstart"),
        "you@example.com",
    )?;
    let uri = key.to_uri_string();
    let qr = QrCode::new(&uri)?;

    // ANSI colours scan on any terminal theme; plain text when the output is a file or pipe.
    let style = if io::stdout().is_terminal() {
        TerminalStyle::Ansi
    } else {
        TerminalStyle::PlainLightBackground
    };

    let mut out = io::stdout().lock();
    writeln!(out, "Scan this QR code with your authenticator app:\n")?;
    write!(out, "{}", qr.to_terminal(style))?;
    writeln!(
        out,
        "\nCannot scan it? Add the key by hand: {}",
        key.secret().to_base32_grouped().as_str()
    )?;
    writeln!(out, "Key URI: {}\n", uri.as_str())?;
    writeln!(
        out,
        "Type the {}-digit code from the app and press Enter (Ctrl-D to quit).",
        totp.digits()
    )?;
    out.flush()?;

    // Login: check each line. `last_step` is the replay protection a real app stores in the
    // user's record (see `TwoFactorRecord`): a code is accepted once.
    let clock = SystemClock;
    let mut last_step: Option<u64> = None;
    for line in io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let verdict = match totp.verify(key.secret(), &line, clock.now(), last_step) {
            Ok(step) => {
                last_step = Some(step);
                "valid: accepted".to_owned()
            }
            Err(VerifyError::Replayed) => "rejected: this code was already used".to_owned(),
            Err(VerifyError::Malformed(why)) => format!("rejected: not a code ({why})"),
            // A real login page shows one "invalid code" message for every case above.
            Err(_) => "rejected: invalid code".to_owned(),
        };
        writeln!(out, "{}: {verdict}", line.trim())?;
        out.flush()?;
    }
    writeln!(out, "Bye.")?;
    Ok(())
}
