//! The demo's application core, shared by the web demo and the CLI demo (`examples/cli`): the
//! SQLite file with its users (argon2 passwords), the sealing key kept beside it, and the 2FA
//! service with the administrator's policy, the outbox (or an SMTP server) and the audit
//! trail. No web here.
//!
//! Every line whose purpose is 2FA sits between `// --- 2FA begin ---` and `// --- 2FA end ---`
//! (`tests/web_glue_budget.rs` counts them).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use sqlx::{Row, SqlitePool};
// --- 2FA begin ---
use twofactor::WhenUnenrolled;
use twofactor::audit::{AuditEvent, AuditSink};
use twofactor::mail::{DynMailer, EnglishMessages, Mailer, Messages as _, Notice, Recipient};
use twofactor::policy::{GraceStart, PolicyExt, UnknownTenant};
use twofactor::seal::{Keyring, SealedStore};
use twofactor::{Clock, EnforcementPolicy, EnrollmentStatus, Optional, PerTenant, Principal};
use twofactor::{RequiredForAll, RequiredForRoles, Requirement, SqliteStore, TwoFactor, UserId};
// --- 2FA end ---

/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite file (created on first run); the sealing key is kept beside it.
    pub db: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Send mail through this SMTP server (feature `smtp`); `None`: keep it in the outbox.
    pub smtp: Option<Smtp>,
}

impl Config {
    /// The demo on `db`, any free port, mail in the outbox.
    pub fn new(db: impl Into<PathBuf>) -> Self {
        Config {
            db: db.into(),
            port: 0,
            smtp: None,
        }
    }
}

/// An SMTP server to send the demo's mail through.
#[derive(Clone)]
pub struct Smtp {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `plain`, `starttls` or `tls` (implicit TLS).
    pub tls: String,
    /// User name and password, if the server wants a login.
    pub login: Option<(String, String)>,
    /// The sender, e.g. `twofactor demo <no-reply@demo.example>`.
    pub from: String,
    /// A PEM file of a certificate authority to trust besides the usual ones.
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.login.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

/// The shared state.
pub struct App {
    // --- 2FA begin ---
    /// The 2FA service (the web layer holds a clone of the `Arc`).
    pub tf: Arc<Service>,
    // --- 2FA end ---
    /// The demo's tables (users, settings, outbox, audit) and the library's.
    pub pool: SqlitePool,
    /// The injected clock (tests move it forward).
    pub clock: Arc<DemoClock>,
    /// The administrator's policy settings.
    pub policy: RwLock<PolicyConfig>,
    /// Where mail goes: `None` for the outbox, else the SMTP server (`host:port`).
    pub smtp: Option<String>,
}

/// An argon2 hash (default parameters) of a password nobody has: an unknown user's password
/// check costs the same as a known one's.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$a7h/IFtQzjMVN+UB6inI5A$o22IG6+ADdkhPCw8Z480Hy0GYCa4sgVDRrnFJRwTGqc";

/// The demo's users at first run: (name, role, tenant, superuser). Password: `demo-password`.
pub const SEED_USERS: &[(&str, &str, Option<&str>, bool)] = &[
    ("emma", "employee", None, false),
    ("paul", "portal", None, false),
    ("root", "employee", None, true),
    ("ana", "employee", Some("acme"), false),
    ("gus", "employee", Some("globex"), false),
];
/// The seeded users' password.
pub const SEED_PASSWORD: &str = "demo-password";

/// Why `--smtp` is refused by a build without the `smtp` feature.
pub const NO_SMTP: &str =
    "this build has no SMTP mailer: build with --features sqlite,seal,axum,smtp";

/// The demo's name, in pages and mail.
pub const NAME: &str = "twofactor demo";

/// Opens (or creates) the database, its sealing key and the seeded users.
pub async fn open(config: &Config) -> Result<Arc<App>, BoxError> {
    let fresh = !config.db.exists();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&config.db)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(5)),
        )
        .await?;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, email TEXT NOT NULL, \
         password TEXT NOT NULL, role TEXT NOT NULL, tenant TEXT, superuser INTEGER NOT NULL, \
         created_at INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER, \
         user_id TEXT, subject TEXT, body TEXT, html TEXT)",
        "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER, \
         user_id TEXT, event TEXT)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }
    // Files of earlier versions: the outbox gained the mail's HTML body.
    let _ = sqlx::query("ALTER TABLE outbox ADD COLUMN html TEXT")
        .execute(&pool)
        .await;

    // The sealing key: generated on first run and kept beside the database, for the demo only.
    let key_path = config.db.with_extension("key");
    let key = match std::fs::read_to_string(&key_path) {
        Ok(hex) => from_hex(hex.trim()).ok_or("the key file is not 64 hex digits")?,
        Err(_) => {
            let key = random_key()?;
            write_private(&key_path, &to_hex(&key))?;
            key
        }
    };
    eprintln!(
        "warning: the sealing key is kept beside the database ({}) for the demo; \
         a real deployment keeps it in a secret manager, never next to the data.",
        key_path.display()
    );

    let clock = Arc::new(DemoClock::default());
    let saved: Option<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'policy'")
            .fetch_optional(&pool)
            .await?;
    let policy_config: PolicyConfig = match saved {
        Some(json) => serde_json::from_str(&json)?,
        None => PolicyConfig::default(),
    };
    // --- 2FA begin ---
    let mailer = mailer(&pool, &clock, config.smtp.as_ref())?;
    let policy = policy(&policy_config);
    let tf = service(&pool, &key, policy, clock.clone(), mailer, config.port).await?;
    // --- 2FA end ---
    let app = Arc::new(App {
        // --- 2FA begin ---
        tf: Arc::new(tf),
        // --- 2FA end ---
        pool,
        clock,
        policy: RwLock::new(policy_config),
        smtp: config
            .smtp
            .as_ref()
            .map(|s| format!("{}:{}", s.host, s.port)),
    });
    if fresh || user_count(&app.pool).await? == 0 {
        for (name, role, tenant, superuser) in SEED_USERS {
            let email = format!("{name}@{}.example", tenant.unwrap_or("demo"));
            create_user(&app, name, &email, SEED_PASSWORD, role, *tenant, *superuser).await?;
        }
    }
    Ok(app)
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// Bytes as lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

async fn user_count(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

fn hash_password(password: &str) -> Result<String, BoxError> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| e.to_string())?
        .to_string())
}

/// Adds a user; `false` if the name is taken.
pub async fn create_user(
    app: &App,
    name: &str,
    email: &str,
    password: &str,
    role: &str,
    tenant: Option<&str>,
    superuser: bool,
) -> Result<bool, BoxError> {
    let hash = hash_password(password)?;
    let done = sqlx::query(
        "INSERT OR IGNORE INTO users (name, email, password, role, tenant, superuser, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(name)
    .bind(email)
    .bind(hash)
    .bind(role)
    .bind(tenant)
    .bind(superuser)
    .bind(app.clock.now_unix() as i64)
    .execute(&app.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A user row.
pub struct User {
    /// The login name.
    pub name: String,
    /// Where mail goes.
    pub email: String,
    /// `employee` or `portal`.
    pub role: String,
    /// The tenant (acme, globex), if any.
    pub tenant: Option<String>,
    /// An administrator.
    pub superuser: bool,
    /// When the account was created (Unix seconds).
    pub created_at: u64,
    hash: String,
}

impl User {
    // --- 2FA begin ---
    /// Who the 2FA policy sees: name, role, tenant, superuser, account age.
    pub fn principal(&self) -> Principal {
        let p = Principal::new(self.name.as_str())
            .with_role(self.role.as_str())
            .superuser(self.superuser)
            .created_at(self.created_at);
        match &self.tenant {
            Some(t) => p.in_tenant(t.as_str()),
            None => p,
        }
    }
    // --- 2FA end ---
}

// --- 2FA begin ---
/// Who the 2FA policy sees as `user` (`None`: no such user, or the database failed).
pub async fn principal_of(pool: SqlitePool, user: UserId) -> Option<Principal> {
    Some(load_user(&pool, user.as_str()).await.ok()??.principal())
}
// --- 2FA end ---

/// The user called `name`.
pub async fn load_user(pool: &SqlitePool, name: &str) -> Result<Option<User>, BoxError> {
    let row = sqlx::query(
        "SELECT name, email, password, role, tenant, superuser, created_at FROM users WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| User {
        name: r.get(0),
        email: r.get(1),
        hash: r.get(2),
        role: r.get(3),
        tenant: r.get(4),
        superuser: r.get(5),
        created_at: u64::try_from(r.get::<i64, _>(6)).unwrap_or(0),
    }))
}

/// Checks a password; unknown users cost the same hash (no user enumeration by timing).
pub async fn check_password(
    app: &App,
    name: &str,
    password: &str,
) -> Result<Option<User>, BoxError> {
    let user = load_user(&app.pool, name).await?;
    let hash = user.as_ref().map_or(DUMMY_HASH, |u| u.hash.as_str());
    let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok(user.filter(|_| ok))
}

// --- 2FA begin ---
/// The demo's 2FA service: sealed secrets in SQLite, the outbox or SMTP, the live policy.
pub type Service = TwoFactor<
    SealedStore<SqliteStore, Keyring>,
    DynMailer,
    Arc<PerTenant<Arc<LivePolicy>>>,
    Arc<DemoClock>,
    AuditLog,
>;

/// Builds the service on `pool` (which also holds the demo's own tables). One call seals the
/// store and keys the service from the keyring (HKDF, one subkey per purpose): TOTP secrets
/// encrypted and every record authenticated, recovery and mailed codes stored as keyed hashes,
/// login tickets and proofs sealed, trusted-device cookies keyed.
async fn service(
    pool: &SqlitePool,
    key: &[u8],
    policy: Arc<PerTenant<Arc<LivePolicy>>>,
    clock: Arc<DemoClock>,
    mailer: DynMailer,
    port: u16,
) -> Result<Service, BoxError> {
    let store = SqliteStore::from_pool(pool.clone());
    store.migrate().await?;
    // Security keys (feature `webauthn`) on http://localhost:PORT: WebAuthn needs a domain.
    let settings = twofactor::account::Settings::builder();
    #[cfg(feature = "webauthn")]
    let settings = match port {
        0 => settings,
        port => settings.security_keys(twofactor::account::RelyingParty::new(
            "localhost",
            &format!("http://localhost:{port}"),
            NAME,
        )?),
    };
    let _ = port;
    Ok(TwoFactor::builder(store)
        .settings(settings.build()?)
        .sealed(Keyring::new("demo-1", key)?)
        .mailer(mailer)
        .policy(policy)
        .clock(clock)
        .audit(AuditLog::new(pool.clone()))
        .build())
}

/// A fresh 32-byte sealing key.
pub fn random_key() -> Result<Vec<u8>, BoxError> {
    Ok(Keyring::random_key()?.to_vec())
}
// --- 2FA end ---

/// The system clock plus an offset the tests move forward (to reach the next TOTP step
/// without sleeping, or to let a throttle expire).
#[derive(Debug, Default)]
pub struct DemoClock(std::sync::atomic::AtomicU64);

impl DemoClock {
    /// Moves the clock `seconds` ahead.
    #[allow(dead_code)] // the tests'; the demo itself runs on real time
    pub fn advance(&self, seconds: u64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }

    /// The time now (Unix seconds).
    pub fn now_unix(&self) -> u64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        system + self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

// --- 2FA begin ---
impl Clock for DemoClock {
    fn now(&self) -> u64 {
        self.now_unix()
    }
}
// --- 2FA end ---

// ----- the administrator's policy -----

/// Who must use 2FA (the administrator page's first choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Nobody is made to use 2FA. Users who set it up are still asked for their code (the
    /// library never lets an enrolled user in on the password alone unless a policy names an
    /// exemption).
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

// --- 2FA begin: demo feature ---
/// The policy the service asks, rebuilt from the library's combinators whenever the
/// administrator saves the settings (the next login sees the change).
pub struct LivePolicy(RwLock<Arc<dyn EnforcementPolicy>>);

impl LivePolicy {
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
        let grace = std::time::Duration::from_secs(config.grace_days * 86_400);
        let base: Arc<dyn EnforcementPolicy> = match config.grace_days {
            0 => base,
            _ => Arc::new(base.with_grace_period(GraceStart::Since(config.saved_at), grace)),
        };
        match config.superuser_exempt {
            true => Arc::new(base.exempt_superuser()),
            false => base,
        }
    }
}

impl EnforcementPolicy for LivePolicy {
    fn requirement(&self, p: &Principal, s: &EnrollmentStatus, now: u64) -> Requirement {
        let current = self.0.read().unwrap_or_else(|e| e.into_inner());
        current.requirement(p, s, now)
    }
}

/// The service's policy for `config`: the per-tenant switch around the live policy. Tenants
/// the owner never switched (and users without a tenant) get the live policy.
fn policy(config: &PolicyConfig) -> Arc<PerTenant<Arc<LivePolicy>>> {
    let live = Arc::new(LivePolicy(RwLock::new(LivePolicy::build(config))));
    let tenants = PerTenant::new(live, UnknownTenant::Enforce);
    for tenant in &config.tenants_off {
        tenants.disable(tenant.clone());
    }
    Arc::new(tenants)
}

/// Applies new settings to the running policy.
pub fn apply_policy(tf: &Service, old: &PolicyConfig, config: &PolicyConfig) {
    let tenants = tf.policy();
    *tenants.inner().0.write().unwrap_or_else(|e| e.into_inner()) = LivePolicy::build(config);
    for tenant in old.tenants_off.difference(&config.tenants_off) {
        tenants.enable(tenant.clone());
    }
    for tenant in &config.tenants_off {
        tenants.disable(tenant.clone());
    }
}
// --- 2FA end ---

// ----- mail and the audit trail -----

// --- 2FA begin: demo feature ---
/// The demo's words for notices: the library's defaults, naming the demo.
fn messages() -> EnglishMessages {
    EnglishMessages::new(NAME)
}

/// A time as mail and pages show it ("6 December 2026 at 15:04 UTC").
pub fn when(unix_seconds: u64) -> String {
    twofactor::mail::readable_utc(unix_seconds)
}

/// The mailer: the outbox table, or the SMTP server (feature `smtp`).
fn mailer(
    pool: &SqlitePool,
    clock: &Arc<DemoClock>,
    smtp: Option<&Smtp>,
) -> Result<DynMailer, BoxError> {
    let Some(smtp) = smtp else {
        let (pool, clock) = (pool.clone(), clock.clone());
        return Ok(Arc::new(Outbox { pool, clock }));
    };
    smtp_mailer(pool, clock, smtp)
}

#[cfg(feature = "smtp")]
fn smtp_mailer(
    pool: &SqlitePool,
    clock: &Arc<DemoClock>,
    smtp: &Smtp,
) -> Result<DynMailer, BoxError> {
    use twofactor::mail::{SmtpMailer, SmtpTls};
    let tls = match smtp.tls.as_str() {
        "plain" => SmtpTls::Plain,
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Implicit,
        other => return Err(format!("--smtp-tls {other:?}: plain, starttls or tls").into()),
    };
    let mut builder = SmtpMailer::builder(smtp.host.as_str(), tls, smtp.from.as_str())
        .port(smtp.port)
        .messages(messages())
        .clock(clock.clone());
    if let Some((user, password)) = &smtp.login {
        builder = builder.credentials(user.as_str(), password.as_str());
    }
    if let Some(ca) = &smtp.ca {
        builder = builder.root_certificate_pem(std::fs::read(ca)?);
    }
    let pool = pool.clone();
    let addresses = move |user: &UserId| {
        let (pool, name) = (pool.clone(), user.to_string());
        async move {
            let email = load_user(&pool, &name)
                .await
                .map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(email.map(|u| Recipient::new(u.email).name(u.name)))
        }
    };
    Ok(Arc::new(builder.build(addresses)?))
}

#[cfg(not(feature = "smtp"))]
fn smtp_mailer(_: &SqlitePool, _: &Arc<DemoClock>, _: &Smtp) -> Result<DynMailer, BoxError> {
    Err(NO_SMTP.into())
}

/// A `Mailer` that stores every notice in the `outbox` table instead of sending it, rendered
/// as the mail a person would get (the library's `EnglishMessages`: subject, text and HTML).
/// The outbox is the demo's stand-in for an inbox: it holds login codes and provisioned keys,
/// which a real mailer sends and never stores; each user sees only their own mail.
struct Outbox {
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
                        let insert = "INSERT INTO audit (at, user_id, event) VALUES (?, ?, ?)";
                        let query = sqlx::query(insert).bind(at as i64).bind(user).bind(kind);
                        let _ = query.execute(&pool).await;
                    }
                    AuditMsg::Flush(done) => drop(done.send(())),
                }
            }
        });
        AuditLog(tx)
    }

    /// Waits until every event recorded so far is in the table (the CLI calls it before
    /// exiting).
    #[allow(dead_code)] // the CLI's
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.0.send(AuditMsg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

impl AuditSink for AuditLog {
    fn record(&self, event: &AuditEvent) {
        let kind = serde_json::to_string(&event.kind).unwrap_or_else(|_| "{}".into());
        let _ = self
            .0
            .send(AuditMsg::Event(event.user.to_string(), event.at, kind));
    }
}
// --- 2FA end ---
