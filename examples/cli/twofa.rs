//! The CLI demo's calls into `twofactor` (the core API, no web layer): the one `match` from a
//! library error to a status and a message, the half-done login between the password and the
//! code ([`HalfLogin`], the library's login ticket), and one small function per command.
//! The service itself, its policy, the outbox and the audit trail are the web demo's
//! (`examples/web/demo.rs`), on the same SQLite file.

use twofactor::account::{DeviceInfo, GrantReason, PendingStep};
use twofactor::vocabulary::FactorKind;
use twofactor::{
    Clock, Error, ErrorKind, Factor, LoginContext, LoginDecision, PendingLogin, Principal,
    Reauthenticated, SecondFactorProof, UserId,
};

use crate::demo::Service;

// ----- errors -----

/// What a handler shows for a library error: an HTTP status and a sentence.
#[derive(Debug)]
pub struct UiError {
    /// The library's HTTP status for the error (`Error::http_status`).
    pub status: u16,
    /// For the page.
    pub message: String,
    /// The call needs a fresh second factor first (`Error::SecondFactorRequired`): under a
    /// mailed-code policy, a login with the mailed code.
    pub second_factor_required: bool,
}

/// Maps a library error: the one `match`, on `Error::kind()`.
pub fn ui_error(tf: &Service, e: &Error) -> UiError {
    let now = tf.clock().now();
    let message = match e.kind() {
        ErrorKind::WrongCode => "Invalid code. Check your app's clock and try again.".to_string(),
        ErrorKind::Throttled => format!(
            "Too many attempts. Try again in {} seconds.",
            e.retry_after(now).unwrap_or(1)
        ),
        ErrorKind::MalformedInput => {
            "That is not a code: enter the 6 digits from your app, or a recovery code.".into()
        }
        ErrorKind::NotAllowedNow if matches!(e, Error::RequiredByPolicy) => {
            format!("Not possible: {e}; it cannot be turned off.")
        }
        ErrorKind::NotAllowedNow => format!(
            "Not yet: {e}. Log in again (with the code we mail you, if asked), then try again."
        ),
        ErrorKind::Conflict => format!("Not possible now: {e}. Reload the page or start again."),
        ErrorKind::Unavailable => format!("Temporarily unavailable ({e}): please retry."),
        _ => "Server error: nothing was changed and nobody was logged in.".into(),
    };
    if e.http_status() >= 500 {
        eprintln!("2FA: {e:?}"); // for the operator
    }
    UiError {
        status: e.http_status(),
        message,
        second_factor_required: matches!(e, Error::SecondFactorRequired),
    }
}

/// Runs a library call and maps its error.
macro_rules! call {
    ($tf:expr, $e:expr) => {
        $e.await.map_err(|e| ui_error($tf, &e))
    };
}

/// The answer to input that is not a code at all (refused before the library is asked).
fn not_a_code() -> UiError {
    UiError {
        status: 400,
        message: "That is not a code: enter the 6 digits from your app, or a recovery code.".into(),
        second_factor_required: false,
    }
}

// ----- login: the state between the password and the second step -----

/// The second step a half-done login waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A code from the app; `recovery`: recovery codes are accepted too.
    Code {
        /// Recovery codes are accepted.
        recovery: bool,
    },
    /// The code mailed to the user.
    Mailed,
    /// The forced set-up of an authenticator.
    Enroll,
}

/// A login between the password and the second step: the library's login ticket
/// ([`PendingLogin`]: who, the roles and tenant the policy saw, when the password was checked,
/// the deadline, what it accepts). The library checks the seal, the deadline, single use and
/// revocation in every call that takes it; the CLI only reads what it asks for next.
#[derive(Debug, Clone)]
pub struct HalfLogin(pub PendingLogin);

impl HalfLogin {
    /// What is asked next.
    pub fn step(&self) -> Step {
        match self.0.step() {
            PendingStep::SecondFactor { methods } => Step::Code {
                recovery: methods.contains(&FactorKind::RecoveryCode),
            },
            PendingStep::MailedCode { .. } => Step::Mailed,
            // `PendingStep` may grow; anything else is the forced set-up, which accepts no code.
            _ => Step::Enroll,
        }
    }
}

/// What the login page does after the password was accepted.
#[derive(Debug)]
pub enum Next {
    /// Log in now; the note explains why no code was asked (or says to enroll soon).
    LoggedIn(Option<String>),
    /// Keep this in the session and ask for the second step.
    Second(HalfLogin),
}

/// The context the library records (IP and browser).
pub fn context(ip: Option<std::net::IpAddr>, device: &str) -> LoginContext {
    let ctx = LoginContext::new().device(device);
    match ip {
        Some(ip) => ctx.ip(ip),
        None => ctx,
    }
}

/// Right after the password check: the library decides (and records the time of that check in
/// the pending login). `device_token` is a trusted device's token (`--device`); the `bool`
/// says it no longer works (`LoginDecision::forget_device_cookie`).
pub async fn start_login(
    tf: &Service,
    who: &Principal,
    device_token: Option<&str>,
    ctx: &LoginContext,
) -> Result<(Next, bool), UiError> {
    let decision = call!(tf, tf.start_login(who, device_token, ctx))?;
    let forget = decision.forget_device_cookie();
    let next = match decision {
        LoginDecision::Granted { reason, .. } => Next::LoggedIn(match reason {
            GrantReason::TrustedDevice { .. } => Some("Trusted device: no code asked.".into()),
            GrantReason::GracePeriod { enroll_by } => Some(format!(
                "Two-factor authentication is required: set it up within {} days.",
                enroll_by.saturating_sub(tf.clock().now()) / 86_400 + 1
            )),
            GrantReason::Exempt { reason } => Some(format!("Exempt from 2FA ({reason}).")),
            _ => None,
        }),
        // Challenge, CodeMailed, MustEnroll: keep the pending login for the second step.
        other => match other.into_pending() {
            Some(pending) => Next::Second(HalfLogin(pending)),
            // A decision this demo does not know: nobody is let in.
            None => {
                return Err(UiError {
                    status: 500,
                    message: "Login refused.".into(),
                    second_factor_required: false,
                });
            }
        },
    };
    Ok((next, forget))
}

/// A successful second step.
#[derive(Debug)]
pub struct Granted {
    /// A new trusted-device token (`--remember`).
    pub device: Option<twofactor::account::DeviceToken>,
    /// A note for the page (recovery codes left).
    pub note: Option<String>,
    /// Proof of the factor just verified (for a set-up under a mailed-code policy).
    pub proof: SecondFactorProof,
}

/// Checks what was typed at the second step of `half`; `remember` labels a trusted device.
pub async fn finish_login(
    tf: &Service,
    half: &HalfLogin,
    input: &str,
    remember: Option<&str>,
    ctx: &LoginContext,
) -> Result<Granted, UiError> {
    let factor = match half.step() {
        Step::Mailed => Factor::MailedCode(input.trim()),
        _ => Factor::parse(input).map_err(|_| not_a_code())?,
    };
    let g = call!(tf, tf.finish_login(&half.0, factor, remember, ctx))?;
    Ok(Granted {
        device: g.device_token,
        note: g
            .recovery_codes_left
            .map(|n| format!("Recovery code used: {n} left.")),
        proof: g.proof,
    })
}

// ----- account security -----

/// What the enrollment page shows: the library's provisioning (URI, inline SVG, grouped key).
pub use twofactor::EnrollmentStarted as Setup;

/// Starts enrollment from the account page (a set-up already waiting is shown again);
/// `password_at` is when the password was last confirmed. Under a mailed-code policy an
/// unenrolled user needs `proof`, the session's proof of its login with the mailed code,
/// younger than 10 minutes (else `NotAllowedNow`, status 403).
pub async fn start_enrollment(
    tf: &Service,
    who: &Principal,
    account: &str,
    password_at: u64,
    proof: Option<&SecondFactorProof>,
) -> Result<Setup, UiError> {
    let reauth = Reauthenticated::at(password_at);
    match proof {
        Some(proof) => call!(
            tf,
            tf.start_enrollment_with_proof(who, account, reauth, proof)
        ),
        None => call!(tf, tf.start_enrollment(who, account, reauth)),
    }
}

/// The QR code in Unicode blocks for a terminal (ANSI colours when `ansi`).
pub fn terminal_qr(setup: &Setup, ansi: bool) -> String {
    let style = if ansi {
        twofactor::provision::TerminalStyle::Ansi
    } else {
        twofactor::provision::TerminalStyle::PlainLightBackground
    };
    twofactor::provision::QrCode::new(setup.uri())
        .map(|q| q.to_terminal(style))
        .unwrap_or_default()
}

/// A confirmed set-up.
pub struct Confirmed {
    /// The recovery codes (shown once).
    pub codes: Vec<String>,
}

fn confirmed(e: &twofactor::account::Enrolled) -> Confirmed {
    Confirmed {
        codes: e
            .recovery_codes()
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    }
}

/// Confirms an enrollment or rotation started from the account page (or a key an
/// administrator mailed).
pub async fn finish_enrollment(
    tf: &Service,
    user: &UserId,
    code: &str,
) -> Result<Confirmed, UiError> {
    let e = call!(tf, tf.finish_enrollment(user, code.trim()))?;
    Ok(confirmed(&e))
}

/// The account page's summary.
pub struct Status {
    /// 2FA on.
    pub enrolled: bool,
    /// Unused recovery codes.
    pub recovery_left: usize,
    /// Trusted devices.
    pub devices: Vec<DeviceInfo>,
}

/// Status and devices.
pub async fn status(tf: &Service, user: &UserId) -> Result<Status, UiError> {
    let s = call!(tf, tf.status(user))?;
    let devices = call!(tf, tf.list_devices(user))?;
    Ok(Status {
        enrolled: s.is_enrolled(),
        recovery_left: s.recovery_codes_left,
        devices,
    })
}

/// Revokes one trusted device by id.
pub async fn revoke_device(tf: &Service, user: &UserId, id: &str) -> Result<(), UiError> {
    call!(
        tf,
        tf.revoke_device(user, &twofactor::vocabulary::DeviceId::new(id))
    )
}

/// Revokes every trusted device.
pub async fn revoke_all(tf: &Service, user: &UserId) -> Result<usize, UiError> {
    call!(tf, tf.revoke_all_devices(user))
}

// ----- administrator -----

/// Step-up: `user` proves a second factor again (a code from the app or a recovery code);
/// the new proof goes in the session.
pub async fn verify_second_factor(
    tf: &Service,
    user: &UserId,
    input: &str,
    ctx: &LoginContext,
) -> Result<SecondFactorProof, UiError> {
    let factor = Factor::parse(input).map_err(|_| not_a_code())?;
    call!(tf, tf.verify_second_factor(user, factor, ctx))
}

/// Lost phone: the administrator resets the user's 2FA.
pub async fn admin_reset(tf: &Service, user: &UserId, admin: &UserId) -> Result<(), UiError> {
    call!(tf, tf.reset_by_admin(user, admin))
}
