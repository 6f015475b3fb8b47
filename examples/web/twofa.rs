//! Every call the web demo makes into `twofactor`, and nothing else: the handlers in `app.rs`
//! call these small functions, so porting the demo to a new library API touches this file only.
//!
//! What lives here: the service's type, the run-time policy the administrator page edits, the
//! outbox `Mailer` and the audit `AuditSink` (both in the demo's SQLite file), the one `match`
//! from a library error to a status and a message, the half-done login kept in the session
//! (one struct, [`HalfLogin`], kept as the library's sealed ticket string; one function each to
//! begin and finish), the second-factor proof kept in the session after login, and the
//! trusted-device cookie.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::SqlitePool;
use twofactor::account::Verification;
use twofactor::account::{DeviceInfo, PendingStep};
use twofactor::audit::{AuditEvent, AuditSink};
use twofactor::mail::{EnglishMessages, Messages as _, Recipient, readable_utc};
use twofactor::policy::UnknownTenant;
use twofactor::policy::{GraceStart, PolicyExt};
use twofactor::seal::{Keyring, SealedStore};
use twofactor::vocabulary::FactorKind;
use twofactor::{
    Clock, EnforcementPolicy, EnrollmentStatus, Error, ErrorKind, Factor, GrantReason,
    LoginContext, LoginDecision, Mailer, Notice, Optional, PendingLogin, PerTenant, Principal,
    Reauthenticated, RequiredForAll, RequiredForRoles, Requirement, SecondFactorProof, SqliteStore,
    TwoFactor, UserId, WhenUnenrolled,
};

/// The demo's 2FA service: sealed secrets in SQLite, the outbox, the live policy.
pub type Service = TwoFactor<
    SealedStore<SqliteStore, Keyring>,
    Outbox,
    Arc<PerTenant<Arc<LivePolicy>>>,
    Arc<DemoClock>,
    AuditLog,
>;

/// Builds the service on `pool` (which also holds the demo's own tables).
pub fn service(
    pool: SqlitePool,
    key: &[u8],
    policy: Arc<PerTenant<Arc<LivePolicy>>>,
    clock: Arc<DemoClock>,
) -> Result<Service, Box<dyn std::error::Error + Send + Sync>> {
    let keyring = Keyring::new("demo-1", key)?;
    // One call seals the store and keys the service from the keyring (HKDF, one subkey per
    // purpose): TOTP secrets encrypted and every record authenticated; recovery and mailed
    // codes stored as HMACs (a copy of the table alone does not let anyone test guesses
    // offline); login tickets and second-factor proofs sealed; trusted-device cookies keyed.
    // Codes hashed by earlier versions of the demo still check until they are regenerated.
    Ok(TwoFactor::builder(SqliteStore::from_pool(pool.clone()))
        .mailer(Outbox {
            pool: pool.clone(),
            clock: clock.clone(),
        })
        .sealed(keyring)
        .policy(policy)
        .clock(clock)
        .audit(AuditLog::new(pool))
        .build())
}

/// Creates the library's table in the demo's file.
pub async fn migrate(pool: &SqlitePool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    SqliteStore::from_pool(pool.clone()).migrate().await?;
    Ok(())
}

/// A fresh 32-byte sealing key (the demo keeps it beside the database; a real deployment
/// keeps it in a secret manager).
pub fn random_key() -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Keyring::random_key()?.to_vec())
}

// ----- clock -----

/// The system clock plus an offset the browser test moves forward (to reach the next TOTP
/// step without sleeping, or to let a throttle expire).
#[derive(Debug, Default)]
pub struct DemoClock(std::sync::atomic::AtomicU64);

impl DemoClock {
    /// Moves the clock `seconds` ahead.
    #[allow(dead_code)] // the browser test's; the demo itself runs on real time
    pub fn advance(&self, seconds: u64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for DemoClock {
    fn now(&self) -> u64 {
        twofactor::clock::SystemClock.now() + self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

// ----- policy -----

/// Who must use 2FA (the administrator page's first choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Nobody is made to use 2FA, and users without it are not offered it at login. Users who
    /// set it up are still asked for their code (the library never lets an enrolled user in on
    /// the password alone unless a policy names an exemption).
    Off,
    /// Users may enable it.
    Optional,
    /// Required for users with the `employee` role.
    Employees,
    /// Required for everybody.
    All,
}

/// The administrator's policy settings, persisted as JSON in the `settings` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyConfig {
    /// Who must use 2FA.
    pub scope: Scope,
    /// Unenrolled users get a mailed code (`true`) or must set up an authenticator.
    pub mail_code: bool,
    /// Days an unenrolled user may still log in after the policy was saved (0: none).
    pub grace_days: u64,
    /// When the policy was saved (the grace period counts from here).
    pub saved_at: u64,
    /// Superusers are never asked.
    pub superuser_exempt: bool,
    /// Tenants whose owner switched 2FA off.
    pub tenants_off: BTreeSet<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            scope: Scope::Optional,
            mail_code: false,
            grace_days: 0,
            saved_at: 0,
            superuser_exempt: true,
            tenants_off: BTreeSet::new(),
        }
    }
}

/// The policy the service asks, rebuilt from the library's combinators whenever the
/// administrator saves the settings (the next login sees the change).
pub struct LivePolicy(RwLock<Arc<dyn EnforcementPolicy>>);

impl LivePolicy {
    /// The policy for `config`; the per-tenant switch wraps it (see [`policy`]).
    fn build(config: &PolicyConfig) -> Arc<dyn EnforcementPolicy> {
        let when = if config.mail_code {
            WhenUnenrolled::MailCode
        } else {
            WhenUnenrolled::BlockUntilEnrolled
        };
        let base: Arc<dyn EnforcementPolicy> = match config.scope {
            Scope::Off => Arc::new(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Off),
            Scope::Optional => Arc::new(Optional),
            Scope::Employees => Arc::new(RequiredForRoles::new(["employee"], when)),
            Scope::All => Arc::new(RequiredForAll::new(when)),
        };
        let base: Arc<dyn EnforcementPolicy> = if config.grace_days > 0 {
            Arc::new(base.with_grace_period(
                GraceStart::Since(config.saved_at),
                Duration::from_secs(config.grace_days * 86_400),
            ))
        } else {
            base
        };
        if config.superuser_exempt {
            Arc::new(base.exempt_superuser())
        } else {
            base
        }
    }
}

impl EnforcementPolicy for LivePolicy {
    fn requirement(&self, p: &Principal, s: &EnrollmentStatus, now: u64) -> Requirement {
        let current = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.requirement(p, s, now)
    }
}

/// The service's policy for `config`: the per-tenant switch around the live policy. Tenants
/// the owner never switched (and users without a tenant) get the live policy.
pub fn policy(config: &PolicyConfig) -> Arc<PerTenant<Arc<LivePolicy>>> {
    let live = Arc::new(LivePolicy(RwLock::new(LivePolicy::build(config))));
    let tenants = PerTenant::new(live, UnknownTenant::Enforce);
    for tenant in &config.tenants_off {
        tenants.disable(tenant.clone());
    }
    Arc::new(tenants)
}

/// Applies a new configuration to the running policy.
pub fn apply_policy(tf: &Service, old: &PolicyConfig, config: &PolicyConfig) {
    let tenants = tf.policy();
    *tenants
        .inner()
        .0
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = LivePolicy::build(config);
    for tenant in old.tenants_off.difference(&config.tenants_off) {
        tenants.enable(tenant.clone());
    }
    for tenant in &config.tenants_off {
        tenants.disable(tenant.clone());
    }
}

// ----- outbox and audit -----

/// A `Mailer` that stores every notice in the `outbox` table instead of sending it, rendered
/// as the mail a person would get (the library's `EnglishMessages`: subject, text and HTML).
/// The outbox is the demo's stand-in for an inbox: it holds login codes and provisioned keys,
/// which a real mailer sends and never stores; each user sees only their own mail.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: SqlitePool,
    clock: Arc<DemoClock>,
}

impl Mailer for Outbox {
    type Error = sqlx::Error;

    async fn send(&self, user: &UserId, notice: &Notice) -> Result<(), sqlx::Error> {
        let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE name = ?")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let to = Recipient::new(email.unwrap_or_else(|| user.to_string())).name(user.as_str());
        let now = self.clock.now();
        let mail = messages().render(&to, notice, now);
        sqlx::query("INSERT INTO outbox (at, user_id, subject, body, html) VALUES (?, ?, ?, ?, ?)")
            .bind(now as i64)
            .bind(user.as_str())
            .bind(mail.subject())
            .bind(mail.text())
            .bind(mail.html())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The demo's words for notices: the library's defaults, naming the demo.
pub fn messages() -> EnglishMessages {
    EnglishMessages::new("twofactor demo")
}

/// A time as mail and pages show it ("6 December 2026 at 15:04 UTC").
pub fn when(unix_seconds: u64) -> String {
    readable_utc(unix_seconds)
}

/// An `AuditSink` that appends every event to the `audit` table (through one writer task, so
/// the order is kept and the caller never waits).
#[derive(Debug, Clone)]
pub struct AuditLog(tokio::sync::mpsc::UnboundedSender<AuditMsg>);

/// What the audit writer task receives.
#[derive(Debug)]
pub enum AuditMsg {
    /// (user, time, event as JSON).
    Event(String, u64, String),
    /// Answer once everything before has been written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AuditLog {
    fn new(pool: SqlitePool) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AuditMsg>();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    AuditMsg::Event(user, at, kind) => {
                        let _ =
                            sqlx::query("INSERT INTO audit (at, user_id, event) VALUES (?, ?, ?)")
                                .bind(at as i64)
                                .bind(user)
                                .bind(kind)
                                .execute(&pool)
                                .await;
                    }
                    AuditMsg::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        AuditLog(tx)
    }

    /// Waits until every event recorded so far is in the table (the CLI calls it before exiting).
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.0.send(AuditMsg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

impl AuditSink for AuditLog {
    fn record(&self, event: &AuditEvent) {
        let kind =
            serde_json::to_string(&event.kind).unwrap_or_else(|_| format!("{:?}", event.kind));
        let _ = self
            .0
            .send(AuditMsg::Event(event.user.to_string(), event.at, kind));
    }
}

// ----- errors -----

/// What a handler shows for a library error: an HTTP status and a sentence.
#[derive(Debug)]
pub struct UiError {
    /// The library's HTTP status for the error (`Error::http_status`).
    pub status: u16,
    /// For a 429: the seconds to wait (the `Retry-After` header).
    pub retry_after: Option<u64>,
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
        retry_after: e.retry_after(now),
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
        retry_after: None,
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

/// What the demo keeps in the session between the password and the second step: the
/// library's login ticket ([`PendingLogin`]: who, the roles and tenant the policy saw, when the
/// password was checked, the deadline, what it accepts), stored as its sealed string
/// ([`ticket`](Self::ticket)). The library checks the seal, the deadline, single use and
/// revocation in every call that takes it; the demo only reads its claims to pick the page.
/// The session id is cycled when the ticket is stored and again when the login completes.
#[derive(Debug, Clone)]
pub struct HalfLogin(pub PendingLogin);

impl HalfLogin {
    /// The sealed ticket string to keep in the session.
    pub fn ticket(&self) -> &str {
        self.0.as_str()
    }

    /// The ticket read back from the session (its form only: the library checks the rest).
    pub fn from_ticket(ticket: &str) -> Option<Self> {
        ticket.parse().ok().map(HalfLogin)
    }

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

    /// When the password was checked (the session's password time once the login completes).
    pub fn password_at(&self) -> u64 {
        self.0.password_checked_at()
    }

    /// Whether the login may still be finished at `now` (the library checks it again).
    pub fn is_live(&self, now: u64) -> bool {
        self.0.is_open(now)
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
/// the pending login). `device_token` is the trusted-device cookie's value (see
/// [`device_token`]); the `bool` says to delete that cookie
/// (`LoginDecision::forget_device_cookie`).
pub async fn start_login(
    tf: &Service,
    who: &Principal,
    device_token: Option<&str>,
    ctx: &LoginContext,
) -> Result<(Next, bool), UiError> {
    let decision = call!(tf, tf.start_login(who, device_token, ctx))?;
    let forget = decision.forget_device_cookie();
    let next = match decision {
        LoginDecision::Granted { reason } => Next::LoggedIn(match reason {
            GrantReason::TrustedDevice { .. } => Some("Trusted device: no code asked.".into()),
            GrantReason::GracePeriod { enroll_by } => Some(format!(
                "Two-factor authentication is required: set it up within {} days.",
                enroll_by.saturating_sub(tf.clock().now()) / 86_400 + 1
            )),
            GrantReason::Exempt { reason } => Some(format!("Exempt from 2FA ({reason}).")),
            _ => None,
        }),
        // Challenge, CodeMailed, MustEnroll, and CodeNotSent (the mail server failed: the
        // page's resend button sends the code with this ticket): keep the pending login for
        // the second step.
        other => match other.into_pending() {
            Some(pending) => Next::Second(HalfLogin(pending)),
            // A decision this demo does not know: nobody is let in.
            None => {
                return Err(UiError {
                    status: 500,
                    retry_after: None,
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
    /// A new trusted-device token (see [`set_device_cookie`]).
    pub device: Option<twofactor::account::DeviceToken>,
    /// A note for the page (recovery codes left).
    pub note: Option<String>,
    /// Proof of the factor just verified: keep it in the (new) session for the sensitive
    /// calls that follow (see [`proof_from`]).
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

/// Mails a new login code for `half` (the login keeps its deadline).
pub async fn resend(tf: &Service, half: &HalfLogin, ctx: &LoginContext) -> Result<(), UiError> {
    call!(tf, tf.resend_mailed_code(&half.0, ctx))?;
    Ok(())
}

/// `user`'s trusted-device token in a request's `Cookie` header (`twofactor::cookie`: per-user
/// `__Host-` names, only well-formed tokens).
///
/// The demo uses the library's cookie unchanged although it serves plain http: a `__Host-`
/// cookie must be `Secure`, and Chromium (156, checked by `tests/web_e2e.rs`) stores `Secure`
/// cookies from `http://127.0.0.1` and `http://localhost`, which it treats as potentially
/// trustworthy origins. A browser that refuses them (older Safari) just never keeps the
/// cookie: the code is asked at every login (fail closed), nothing else breaks.
/// The names are keyed with the service's cookie key (`tf.device_cookie()`), so they reveal
/// nothing about the user.
pub fn device_token<'h>(tf: &Service, cookie_header: &'h str, user: &UserId) -> Option<&'h str> {
    tf.device_cookie().token_from_header(cookie_header, user)
}

/// The `Set-Cookie` header value for a trusted-device token just issued to `user`.
pub fn set_device_cookie(
    tf: &Service,
    user: &UserId,
    token: &twofactor::account::DeviceToken,
) -> String {
    tf.device_cookie().set_cookie_header(user, token)
}

/// The `Set-Cookie` header value that deletes `user`'s device cookie.
pub fn forget_device_cookie(tf: &Service, user: &UserId) -> String {
    tf.device_cookie().removal_header(user)
}

// ----- second-factor proofs -----

/// The proof kept in the session (its sealed string), read back. The library checks its seal,
/// user, age and revocation where it is used.
pub fn proof_from(token: &str) -> Option<SecondFactorProof> {
    token.parse().ok()
}

/// A code typed now if there is one, else the session's proof (a refusal if neither).
fn verification<'a>(
    tf: &Service,
    typed: Option<Factor<'a>>,
    proof: Option<&'a SecondFactorProof>,
) -> Result<Verification<'a>, UiError> {
    match (typed, proof) {
        (Some(factor), _) => Ok(factor.into()),
        (None, Some(proof)) => Ok(proof.into()),
        (None, None) => Err(ui_error(tf, &Error::SecondFactorRequired)),
    }
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

/// The forced set-up of a login that answered `MustEnroll`: the ticket `half` stands for the
/// password check. A reload shows the same key again (the library resumes the set-up).
pub async fn start_forced_enrollment(
    tf: &Service,
    half: &HalfLogin,
    account: &str,
) -> Result<Setup, UiError> {
    call!(tf, tf.start_forced_enrollment(&half.0, account))
}

/// Starts replacing the authenticator (new phone): with the code typed from the current app,
/// or, if none was typed, the session's proof of a second factor.
pub async fn start_rotation(
    tf: &Service,
    user: &UserId,
    account: &str,
    current_code: &str,
    password_at: u64,
    proof: Option<&SecondFactorProof>,
) -> Result<Setup, UiError> {
    let code = current_code.trim();
    let v = verification(tf, (!code.is_empty()).then_some(Factor::Totp(code)), proof)?;
    call!(
        tf,
        tf.start_rotation(user, account, v, Reauthenticated::at(password_at))
    )
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
    /// Whether it completed the login waiting for it (forced set-up).
    pub login_completed: bool,
    /// Proof of the code just confirmed, for the session.
    pub proof: SecondFactorProof,
}

fn confirmed(e: &twofactor::account::Enrolled) -> Confirmed {
    Confirmed {
        codes: e
            .recovery_codes()
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        login_completed: e.login_completed(),
        proof: e.proof().clone(),
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

/// Confirms the forced set-up of the login `half` (also a key an administrator mailed):
/// completes that login when it is still open.
pub async fn finish_forced_enrollment(
    tf: &Service,
    half: &HalfLogin,
    code: &str,
) -> Result<Confirmed, UiError> {
    let e = call!(tf, tf.finish_forced_enrollment(&half.0, code.trim()))?;
    Ok(confirmed(&e))
}

/// Abandons a pending set-up.
pub async fn cancel_enrollment(tf: &Service, user: &UserId) -> Result<(), UiError> {
    call!(tf, tf.cancel_enrollment(user))
}

/// A code or recovery code typed in a form, if any (`Err` for input that is not a code).
fn typed(input: &str) -> Result<Option<Factor<'_>>, UiError> {
    if input.trim().is_empty() {
        return Ok(None);
    }
    Factor::parse(input).map(Some).map_err(|_| not_a_code())
}

/// New recovery codes (shown once): with a code typed now, or else the session's proof.
pub async fn regenerate(
    tf: &Service,
    user: &UserId,
    password_at: u64,
    input: &str,
    proof: Option<&SecondFactorProof>,
) -> Result<Vec<String>, UiError> {
    let v = verification(tf, typed(input)?, proof)?;
    let c = call!(
        tf,
        tf.regenerate_recovery_codes(user, Reauthenticated::at(password_at), v)
    )?;
    Ok(c.expose_secret().into_iter().map(str::to_owned).collect())
}

/// Turns 2FA off with a code or recovery code typed now, or else the session's proof (refused
/// where the policy requires 2FA of `who`).
pub async fn disable(
    tf: &Service,
    who: &Principal,
    password_at: u64,
    input: &str,
    proof: Option<&SecondFactorProof>,
) -> Result<(), UiError> {
    let v = verification(tf, typed(input)?, proof)?;
    call!(tf, tf.disable(who, Reauthenticated::at(password_at), v))
}

/// The account page's summary.
pub struct Status {
    /// 2FA on.
    pub enrolled: bool,
    /// A set-up is waiting for its code.
    pub pending: bool,
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
        pending: s.pending_enrollment_expires_at.is_some(),
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

/// Mails the user an invitation to set up 2FA.
pub async fn invite(
    tf: &Service,
    user: &UserId,
    admin: &UserId,
    link: &str,
) -> Result<(), UiError> {
    call!(tf, tf.invite(user, admin, link))
}

/// Provisions a secret and mails it (dangerous: whoever reads the mailbox clones it).
pub async fn provision_by_mail(
    tf: &Service,
    user: &UserId,
    admin: &UserId,
    account: &str,
) -> Result<(), UiError> {
    call!(
        tf,
        tf.start_enrollment_by_mail_dangerous(user, admin, account)
    )
    .map(|_| ())
}
