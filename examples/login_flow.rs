//! A whole 2FA life cycle on the embedded SQLite store, as a host application drives it.
//!
//! Employees must use 2FA (Odoo's "employees only" enforcement). Alice, an employee, is sent
//! to set-up at her first login, scans the QR code, confirms, later logs in with a code and
//! asks the site to remember her browser, loses her phone, gets in with a recovery code, and
//! is reset by an admin. The "authenticator app" is simulated from the provisioning URI, and
//! time is a manual clock so the demo can skip ahead by days. The TOTP secrets are sealed
//! (encrypted at rest) with a key that, in a real deployment, comes from a secret manager.
//!
//! ```sh
//! cargo run --example login_flow --features sqlite,seal
//! ```

use twofactor::account::GrantReason;
use twofactor::policy::PolicyExt;
use twofactor::provision::QrCode;
use twofactor::provision::TerminalStyle;
use twofactor::seal::{Keyring, SealedStore};
use twofactor::testing::{ManualClock, RecordingAudit, RecordingMailer};
use twofactor::{
    Clock, Error, Factor, KeyUri, LoginContext, LoginDecision, Principal, RequiredForRoles,
    ServiceKeys, SqliteStore, Totp, TwoFactor, UserId, WhenUnenrolled,
};

const DAY: u64 = 24 * 60 * 60;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = std::env::temp_dir().join(format!("twofactor-demo-{}.db", std::process::id()));
    // In production: 32 bytes from your secret manager, never stored beside the database.
    let key = Keyring::random_key()?;
    let store = SealedStore::new(
        SqliteStore::open(&db).await?,
        Keyring::new("demo-1", &*key)?,
    );
    println!("store: SQLite file {}, secrets sealed", db.display());

    let policy =
        RequiredForRoles::new(["employee"], WhenUnenrolled::BlockUntilEnrolled).exempt_superuser();
    let clock = ManualClock::new(1_767_225_600); // 2026-01-01T00:00:00Z
    let tf = TwoFactor::builder(store)
        .mailer(RecordingMailer::new())
        // Code hashes, login tickets and proofs, and cookie names, each under its own key
        // derived from one server secret (here the demo's sealing key; in production, from
        // your secret manager, the same on every app server).
        .keys(ServiceKeys::derive(&*key)?)
        .policy(policy)
        .clock(&clock)
        .audit(RecordingAudit::new())
        .build();

    let alice = Principal::new("alice").with_role("employee");
    let browser = LoginContext::new()
        .ip("192.0.2.10".parse()?)
        .device("Firefox on Linux");

    step("Alice logs in for the first time (the host checked her password)");
    let decision = tf.start_login(&alice, None, &browser).await?;
    println!("decision: {decision:?}");
    // The session keeps the login ticket (sealed: who, when the password was checked, until
    // when), as one opaque string; the host cycles the session id when it stores it.
    let LoginDecision::MustEnroll { pending } = decision else {
        return Err(format!("expected MustEnroll, got {decision:?}").into());
    };
    assert_eq!(pending.password_checked_at(), clock.now());
    let session_ticket = pending.as_str().to_owned();
    println!(
        "the session keeps the ticket ({} characters, opaque)",
        session_ticket.len()
    );

    step("Set-up: the page shows a QR code and the key for \"Cannot scan it?\"");
    // The next request reads the ticket back; forced set-up takes it.
    let pending: twofactor::PendingLogin = session_ticket.parse()?;
    let started = tf
        .start_forced_enrollment(&pending, "alice@example.com")
        .await?;
    let qr = QrCode::new(started.uri())?;
    println!("{}", qr.to_terminal(TerminalStyle::Ansi));
    println!("Cannot scan it? Enter this key: {}", started.manual_key());
    // Her authenticator app stores what the QR code holds.
    let app = KeyUri::parse(started.uri())?;
    let app_code = |now: u64| Totp::default().generate(app.secret(), now).to_string();

    step("She types the code her app shows to confirm");
    let enrolled = tf
        .finish_forced_enrollment(&pending, &app_code(clock.now()))
        .await?;
    let recovery: Vec<String> = enrolled
        .recovery_codes()
        .expose_secret()
        .into_iter()
        .map(str::to_owned)
        .collect();
    println!(
        "2FA enabled; {} recovery codes shown once, e.g. {}; login completed: {}",
        recovery.len(),
        recovery[0],
        enrolled.login_completed()
    );
    let row: String = sqlx::query_scalar("SELECT record FROM twofactor_records WHERE user_id = $1")
        .bind(alice.user.as_str())
        .fetch_one(tf.store().inner().pool())
        .await?;
    let plain = app.secret().to_base32();
    if row.contains(plain.as_str()) {
        return Err("the secret is stored in the clear".into());
    }
    let sealed = row
        .find(r#""secret":{"#)
        .map_or("", |at| &row[at..(at + 40).min(row.len())]);
    println!("the database row holds the secret sealed: {sealed}...");

    step("Next day: password, then a code; she ticks \"don't ask again on this device\"");
    clock.advance(DAY);
    let decision = tf.start_login(&alice, None, &browser).await?;
    println!("decision: {decision:?}");
    let pending = decision.into_pending().ok_or("a challenge was expected")?;
    let code = app_code(clock.now());
    let granted = tf
        .finish_login(
            &pending,
            Factor::Totp(&code),
            Some("Firefox on Linux"),
            &browser,
        )
        .await?;
    let token = granted
        .device_token
        .ok_or("a device token was expected")?
        .expose_secret()
        .to_owned();
    println!(
        "granted by {:?}; the browser keeps a device cookie",
        granted.factor
    );

    step("Someone replays the same code from a phishing page");
    let pending = tf
        .start_login(&alice, None, &browser)
        .await?
        .into_pending()
        .ok_or("a challenge")?;
    match tf
        .finish_login(&pending, Factor::Totp(&code), None, &browser)
        .await
    {
        Err(Error::InvalidCode) => println!("refused: invalid code (the audit trail says why)"),
        other => return Err(format!("replay was not refused: {other:?}").into()),
    }

    step("A week later, from the remembered browser: no code asked");
    clock.advance(7 * DAY);
    match tf.start_login(&alice, Some(&token), &browser).await? {
        LoginDecision::Granted {
            reason: GrantReason::TrustedDevice { .. },
            ..
        } => println!("granted: trusted device"),
        other => return Err(format!("expected a trusted-device grant, got {other:?}").into()),
    }

    step("She loses her phone and logs in from a new laptop with a recovery code");
    let laptop = LoginContext::new().device("Safari on macOS");
    let pending = tf
        .start_login(&alice, None, &laptop)
        .await?
        .into_pending()
        .ok_or("a challenge")?;
    let granted = tf
        .finish_login(&pending, Factor::RecoveryCode(&recovery[0]), None, &laptop)
        .await?;
    println!(
        "granted by a recovery code; {:?} left",
        granted.recovery_codes_left
    );
    let pending = tf
        .start_login(&alice, None, &laptop)
        .await?
        .into_pending()
        .ok_or("a challenge")?;
    match tf
        .finish_login(&pending, Factor::RecoveryCode(&recovery[0]), None, &laptop)
        .await
    {
        Err(Error::InvalidCode) => println!("the same recovery code again: refused"),
        other => return Err(format!("a used recovery code was accepted: {other:?}").into()),
    }

    step("An admin resets her 2FA (lost phone); her devices are revoked");
    tf.reset_by_admin(&alice.user, &UserId::new("admin"))
        .await?;
    println!(
        "remembered browser now: {:?}",
        tf.start_login(&alice, Some(&token), &browser).await?
    );

    step("What she received, and what the audit trail recorded");
    for notice in tf.mailer().kinds_for(&alice.user) {
        println!("mail: {notice:?}");
    }
    for kind in tf.audit().kinds_for(&alice.user) {
        println!("audit: {kind:?}");
    }

    drop(tf);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
}
