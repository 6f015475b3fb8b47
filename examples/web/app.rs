//! The web demo's router and handlers: users and passwords (argon2), sessions
//! (tower-sessions), CSRF tokens, cookies and pages. Every 2FA call goes through `twofa`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sqlx::{Row, SqlitePool};
use subtle::ConstantTimeEq;
use tower_sessions::cookie::SameSite;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
use twofactor::{Clock, Principal, SecondFactorProof, UserId};

use crate::pages::{self, esc};
use crate::twofa::{self, DemoClock, HalfLogin, Next, PolicyConfig, Scope, Service, Step};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite file (created on first run); the sealing key is kept beside it.
    pub db: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
}

/// The shared state.
pub struct App {
    /// The 2FA service.
    pub tf: Service,
    /// The demo's tables (users, settings, outbox, audit) and the library's.
    pub pool: SqlitePool,
    /// The injected clock (tests move it forward).
    pub clock: Arc<DemoClock>,
    policy: RwLock<PolicyConfig>,
}

/// An argon2 hash (default parameters) of a password nobody has: an unknown user's password
/// check costs the same as a known one's.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$a7h/IFtQzjMVN+UB6inI5A$o22IG6+ADdkhPCw8Z480Hy0GYCa4sgVDRrnFJRwTGqc";

type Shared = Arc<App>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// Opens (or creates) the database and key, and serves on 127.0.0.1.
pub async fn serve(
    config: Config,
) -> Result<(SocketAddr, Shared, tokio::task::JoinHandle<()>), BoxError> {
    let app = open(&config).await?;
    let listener =
        tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, config.port)).await?;
    let addr = listener.local_addr()?;
    let router = router(app.clone());
    let handle = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok((addr, app, handle))
}

/// Opens (or creates) the database, its sealing key and the seeded users.
pub async fn open(config: &Config) -> Result<Shared, BoxError> {
    let fresh = !config.db.exists();
    let store = twofactor::SqliteStore::open(&config.db).await?;
    let pool = store.pool().clone();
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
    twofa::migrate(&pool).await?;

    // The sealing key: generated on first run and kept beside the database, for the demo only.
    let key_path = config.db.with_extension("key");
    let key = match std::fs::read_to_string(&key_path) {
        Ok(hex) => from_hex(hex.trim()).ok_or("the key file is not 64 hex digits")?,
        Err(_) => {
            let key = twofa::random_key()?;
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
    let config_policy: PolicyConfig = match saved {
        Some(json) => serde_json::from_str(&json)?,
        None => PolicyConfig::default(),
    };
    let tf = twofa::service(
        pool.clone(),
        &key,
        twofa::policy(&config_policy),
        clock.clone(),
    )?;
    let app = Arc::new(App {
        tf,
        pool,
        clock,
        policy: RwLock::new(config_policy),
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

fn to_hex(bytes: &[u8]) -> String {
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
    .bind(app.clock.now() as i64)
    .execute(&app.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A user row.
pub struct User {
    /// Who, for the policy.
    pub principal: Principal,
    /// Where notices go.
    pub email: String,
    hash: String,
}

/// The user called `name`.
pub async fn load_user(app: &App, name: &str) -> Result<Option<User>, BoxError> {
    let row = sqlx::query("SELECT name, email, password, role, tenant, superuser, created_at FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(&app.pool)
        .await?;
    Ok(row.map(|r| {
        let mut p = Principal::new(r.get::<String, _>(0))
            .with_role(r.get::<String, _>(3))
            .superuser(r.get::<bool, _>(5))
            .created_at(r.get::<i64, _>(6) as u64);
        if let Some(t) = r.get::<Option<String>, _>(4) {
            p = p.in_tenant(t);
        }
        User {
            principal: p,
            email: r.get(1),
            hash: r.get(2),
        }
    }))
}

/// Checks a password; unknown users cost the same hash (no user enumeration by timing).
pub async fn check_password(
    app: &App,
    name: &str,
    password: &str,
) -> Result<Option<User>, BoxError> {
    let user = load_user(app, name).await?;
    let hash = user.as_ref().map_or(DUMMY_HASH, |u| u.hash.as_str());
    let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok(user.filter(|_| ok))
}

// ----- errors -----

/// A page for a failure: infrastructure errors are 500 and say nothing more.
struct AppError(StatusCode, String);

impl<E: std::fmt::Display> From<E> for AppError {
    fn from(e: E) -> Self {
        eprintln!("error: {e}");
        AppError(StatusCode::INTERNAL_SERVER_ERROR, "Server error.".into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (
            self.0,
            Html(pages::layout(
                "Error",
                None,
                "",
                &format!("<p class=error id=error>{}</p>", esc(&self.1)),
            )),
        )
            .into_response()
    }
}

type R = Result<Response, AppError>;

// ----- sessions and forms -----

const USER: &str = "user";
const PASSWORD_AT: &str = "password_at";
/// The half-done login: the library's sealed ticket string (`HalfLogin::ticket`).
const PENDING: &str = "pending";
/// The proof of the second factor of this session's login (or of its last confirmed set-up):
/// the sealed string of a `SecondFactorProof`.
const PROOF: &str = "proof";
/// The ticket of the login whose forced set-up page showed a key (a reload shows it again).
const SETUP_SHOWN: &str = "setup_shown";
const CSRF: &str = "csrf";
const FLASH: &str = "flash";

/// The session's CSRF token (created on first use).
async fn csrf(session: &Session) -> Result<String, AppError> {
    if let Some(t) = session.get::<String>(CSRF).await? {
        return Ok(t);
    }
    let t = to_hex(&twofa::random_key().map_err(|e| e.to_string())?);
    session.insert(CSRF, &t).await?;
    Ok(t)
}

/// A POSTed form whose CSRF token matched.
struct Fields(HashMap<String, String>);

impl Fields {
    fn get(&self, k: &str) -> &str {
        self.0.get(k).map_or("", String::as_str)
    }
}

async fn checked(session: &Session, form: HashMap<String, String>) -> Result<Fields, AppError> {
    let expected = session.get::<String>(CSRF).await?.unwrap_or_default();
    let given = form.get(CSRF).map_or("", String::as_str);
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return Err(AppError(
            StatusCode::FORBIDDEN,
            "The form expired (CSRF check failed): reload the page.".into(),
        ));
    }
    Ok(Fields(form))
}

async fn flash(session: &Session, msg: impl Into<String>) -> Result<(), AppError> {
    session.insert(FLASH, msg.into()).await?;
    Ok(())
}

/// Renders a page with the user, the CSRF token and any flash message.
async fn page(session: &Session, title: &str, body: &str) -> R {
    let user: Option<String> = session.get(USER).await?;
    let token = csrf(session).await?;
    let flash = session
        .remove::<String>(FLASH)
        .await?
        .map(|m| format!("<p class=flash id=flash>{}</p>", esc(&m)))
        .unwrap_or_default();
    let body = body.replace("{csrf}", &esc(&token));
    Ok(Html(pages::layout(
        title,
        user.as_deref(),
        &token,
        &format!("{flash}{body}"),
    ))
    .into_response())
}

/// A page showing secrets (QR, key, recovery codes): never cached.
async fn secret_page(session: &Session, title: &str, body: &str) -> R {
    let mut r = page(session, title, body).await?;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn problem(e: &twofa::UiError) -> String {
    format!(
        "<p class=error id=error data-status={}>{}</p>",
        e.status,
        esc(&e.message)
    )
}

/// A page about a library error, answered with the error's status (and `Retry-After`).
async fn problem_page(session: &Session, title: &str, e: &twofa::UiError, more: &str) -> R {
    let mut r = page(session, title, &format!("{}{more}", problem(e))).await?;
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(wait) = e.retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, wait.into());
    }
    Ok(r)
}

fn to(path: &str) -> R {
    Ok(Redirect::to(path).into_response())
}

async fn logged_in(app: &App, session: &Session) -> Result<User, AppError> {
    let name: Option<String> = session.get(USER).await?;
    match name {
        Some(n) => load_user(app, &n)
            .await?
            .ok_or(AppError(StatusCode::UNAUTHORIZED, "Please log in.".into())),
        None => Err(AppError(StatusCode::UNAUTHORIZED, "Please log in.".into())),
    }
}

/// The request's cookies as one `Cookie` header value.
fn cookie_header(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

fn user_agent(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown browser");
    let browser = ["Firefox", "Edg", "Chrome", "Safari"]
        .into_iter()
        .find(|b| ua.contains(b))
        .unwrap_or("Browser");
    let os = ["Windows", "Mac OS", "Android", "iPhone", "Linux"]
        .into_iter()
        .find(|o| ua.contains(o))
        .unwrap_or("unknown OS");
    format!("{browser} on {os}")
}

// ----- router -----

/// All routes.
pub fn router(app: Shared) -> Router {
    // Secure is off: the demo serves plain http on 127.0.0.1, where a Secure cookie would not
    // be sent back by every browser. Behind TLS, set it (and use the `__Host-` prefix).
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_name("demo_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(false);
    Router::new()
        .route("/", get(home))
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(login))
        .route("/login/code", get(code_form).post(code))
        .route("/login/resend", post(resend))
        .route("/login/setup", get(forced_setup))
        .route("/login/setup/new", post(forced_setup_new))
        .route("/login/setup/confirm", post(forced_confirm))
        .route("/logout", post(logout))
        .route("/account", get(account))
        .route("/account/enable", post(enable))
        .route("/account/confirm", post(confirm))
        .route("/account/cancel", post(cancel))
        .route("/account/rotate", post(rotate))
        .route("/account/recovery", post(regenerate))
        .route("/account/disable", post(disable))
        .route("/account/devices/revoke", post(revoke))
        .route("/account/devices/revoke-all", post(revoke_all))
        .route("/admin", get(admin))
        .route(
            "/admin/step-up",
            get(admin_step_up_form).post(admin_step_up),
        )
        .route("/admin/policy", post(admin_policy))
        .route("/admin/user", post(admin_user))
        .route("/outbox", get(outbox))
        .route("/audit", get(audit))
        .layer(sessions)
        .with_state(app)
}

async fn home(session: Session) -> R {
    if session.get::<String>(USER).await?.is_some() {
        to("/account")
    } else {
        to("/login")
    }
}

// ----- sign-up, login, logout -----

async fn signup_form(session: Session) -> R {
    page(&session, "Sign up", &pages::signup()).await
}

async fn signup(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let (name, email, password) = (
        f.get("username").trim(),
        f.get("email").trim(),
        f.get("password"),
    );
    let valid = (2..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !valid || !email.contains('@') || password.len() < 8 {
        flash(&session, "Choose a name of 2-32 lower-case letters, digits, '.', '_' or '-', an e-mail address, and a password of 8 characters or more.").await?;
        return to("/signup");
    }
    if !create_user(&app, name, email, password, "portal", None, false).await? {
        flash(&session, "That name is taken.").await?;
        return to("/signup");
    }
    flash(&session, "Account created: log in.").await?;
    to("/login")
}

async fn login_form(session: Session) -> R {
    page(&session, "Log in", &pages::login()).await
}

async fn login(
    State(app): State<Shared>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let Some(user) = check_password(&app, f.get("username").trim(), f.get("password")).await?
    else {
        flash(&session, "Wrong name or password.").await?;
        return to("/login");
    };
    let now = app.clock.now();
    // A new session id at every change of privilege (fixation).
    session.cycle_id().await?;
    session.remove::<String>(USER).await?;
    let ctx = twofa::context(Some(peer.ip()), &user_agent(&headers));
    let cookies = cookie_header(&headers);
    let device = twofa::device_token(&app.tf, &cookies, &user.principal.user);
    let (next, forget) = match twofa::start_login(&app.tf, &user.principal, device, &ctx).await {
        Ok(b) => b,
        Err(e) => return problem_page(&session, "Log in", &e, &pages::login()).await,
    };
    let mut response = match next {
        Next::LoggedIn(note) => {
            log_in(&session, &user.principal.user, now, None).await?;
            if let Some(n) = note {
                flash(&session, n).await?;
            }
            to("/account")?
        }
        Next::Second(half) => {
            let path = match half.step() {
                Step::Code { .. } => "/login/code",
                Step::Mailed => {
                    flash(
                        &session,
                        "We mailed you a login code (see the Outbox page).",
                    )
                    .await?;
                    "/login/code"
                }
                Step::Enroll => "/login/setup",
            };
            // The session id was cycled above, before the ticket is stored (fixation).
            session.insert(PENDING, half.ticket()).await?;
            if half.step() == Step::Enroll {
                // The forced set-up starts here, in the POST (a GET changes nothing): unless
                // a key is already waiting (an administrator mailed one), whose code is asked.
                let waiting = twofa::status(&app.tf, &user.principal.user)
                    .await
                    .is_ok_and(|s| s.pending);
                if !waiting
                    && twofa::start_forced_enrollment(&app.tf, &half, &user.email)
                        .await
                        .is_ok()
                {
                    session.insert(SETUP_SHOWN, half.ticket()).await?;
                }
            }
            to(path)?
        }
    };
    // A device cookie that did not let the user skip the code is stale: delete it.
    if device.is_some() && forget {
        let del = twofa::forget_device_cookie(&app.tf, &user.principal.user);
        response
            .headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_str(&del)?);
    }
    Ok(response)
}

/// Logs the session in: a new session id (fixation), the half-done login dropped, the user,
/// the time of the password check and the proof of the second factor (if one was asked) kept.
async fn log_in(
    session: &Session,
    user: &UserId,
    password_at: u64,
    proof: Option<&SecondFactorProof>,
) -> Result<(), AppError> {
    session.cycle_id().await?;
    session.remove::<String>(PENDING).await?;
    session.remove::<String>(SETUP_SHOWN).await?;
    session.insert(USER, user.as_str()).await?;
    session.insert(PASSWORD_AT, password_at).await?;
    keep_proof(session, proof).await
}

/// Keeps (or, with `None`, forgets) the session's proof of a second factor.
async fn keep_proof(session: &Session, proof: Option<&SecondFactorProof>) -> Result<(), AppError> {
    match proof {
        Some(p) => session.insert(PROOF, p.as_str()).await?,
        None => {
            session.remove::<String>(PROOF).await?;
        }
    }
    Ok(())
}

/// The session's proof of a second factor, if it has one (the library checks its age).
async fn session_proof(session: &Session) -> Result<Option<SecondFactorProof>, AppError> {
    Ok(session
        .get::<String>(PROOF)
        .await?
        .as_deref()
        .and_then(twofa::proof_from))
}

/// The session's half-done login if it is still live and waits for a step `wanted` accepts.
async fn pending(
    app: &App,
    session: &Session,
    wanted: fn(Step) -> bool,
) -> Result<Option<(HalfLogin, User)>, AppError> {
    let Some(p) = session
        .get::<String>(PENDING)
        .await?
        .as_deref()
        .and_then(HalfLogin::from_ticket)
    else {
        session.remove::<String>(PENDING).await?;
        return Ok(None);
    };
    if !p.is_live(app.clock.now()) || !wanted(p.step()) {
        session.remove::<String>(PENDING).await?;
        return Ok(None);
    }
    Ok(load_user(app, p.0.user().as_str()).await?.map(|u| (p, u)))
}

/// A half-done login that waits for a code (from the app or mailed).
fn code_step(s: Step) -> bool {
    matches!(s, Step::Code { .. } | Step::Mailed)
}

/// The code form for a step.
fn code_page(step: Step) -> String {
    match step {
        Step::Code { recovery } => pages::code(false, recovery),
        _ => pages::code(true, false),
    }
}

async fn code_form(State(app): State<Shared>, session: Session) -> R {
    let Some((p, _)) = pending(&app, &session, code_step).await? else {
        flash(&session, "Your login expired: log in again.").await?;
        return to("/login");
    };
    page(&session, "Two-factor authentication", &code_page(p.step())).await
}

async fn code(
    State(app): State<Shared>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let Some((p, user)) = pending(&app, &session, code_step).await? else {
        flash(&session, "Your login expired: log in again.").await?;
        return to("/login");
    };
    let label = user_agent(&headers);
    let ctx = twofa::context(Some(peer.ip()), &label);
    let remember = (f.get("remember") == "on").then_some(label.as_str());
    match twofa::finish_login(&app.tf, &p, f.get("code"), remember, &ctx).await {
        Ok(granted) => {
            log_in(
                &session,
                &user.principal.user,
                p.password_at(),
                Some(&granted.proof),
            )
            .await?;
            if let Some(n) = granted.note {
                flash(&session, n).await?;
            }
            let mut r = to("/account")?;
            if let Some(t) = granted.device {
                let c = twofa::set_device_cookie(&app.tf, &user.principal.user, &t);
                r.headers_mut()
                    .append(header::SET_COOKIE, HeaderValue::from_str(&c)?);
            }
            Ok(r)
        }
        Err(e) => {
            problem_page(
                &session,
                "Two-factor authentication",
                &e,
                &code_page(p.step()),
            )
            .await
        }
    }
}

async fn resend(
    State(app): State<Shared>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    checked(&session, f).await?;
    let Some((half, _)) = pending(&app, &session, |s| s == Step::Mailed).await? else {
        return to("/login");
    };
    let ctx = twofa::context(Some(peer.ip()), &user_agent(&headers));
    match twofa::resend(&app.tf, &half, &ctx).await {
        Ok(()) => {
            flash(&session, "A new code was mailed.").await?;
        }
        Err(e) => flash(&session, e.message).await?,
    }
    to("/login/code")
}

async fn forced_setup(State(app): State<Shared>, session: Session) -> R {
    let Some((p, user)) = pending(&app, &session, |s| s == Step::Enroll).await? else {
        return to("/login");
    };
    // A GET changes nothing. A key is waiting: if this login started it (at the password
    // POST, or with the button below), show it again (the library resumes the set-up: same
    // key, same expiry, so the QR code already scanned keeps working). Otherwise (an
    // administrator mailed one, or another login started it) ask for its code, with a POST
    // button to start over. No key waiting: a POST button starts one.
    let waiting = twofa::status(&app.tf, &user.principal.user)
        .await
        .is_ok_and(|s| s.pending);
    let shown_here = session.get::<String>(SETUP_SHOWN).await?.as_deref() == Some(p.ticket());
    let title = "Set up two-factor authentication";
    if !waiting {
        return page(&session, title, &pages::setup_start()).await;
    }
    if !shown_here {
        return page(&session, title, &pages::confirm_waiting()).await;
    }
    match twofa::start_forced_enrollment(&app.tf, &p, &user.email).await {
        Ok(s) => {
            secret_page(
                &session,
                title,
                &pages::setup(&s, "/login/setup/confirm", true),
            )
            .await
        }
        Err(e) => problem_page(&session, title, &e, "").await,
    }
}

/// Starts the forced set-up (again): a waiting key is dropped first (the library would resume
/// it), then back to the set-up page, which shows the new key.
async fn forced_setup_new(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    checked(&session, f).await?;
    let Some((p, user)) = pending(&app, &session, |s| s == Step::Enroll).await? else {
        return to("/login");
    };
    let _ = twofa::cancel_enrollment(&app.tf, &user.principal.user).await;
    match twofa::start_forced_enrollment(&app.tf, &p, &user.email).await {
        Ok(_) => {
            session.insert(SETUP_SHOWN, p.ticket()).await?;
            to("/login/setup")
        }
        Err(e) => problem_page(&session, "Set up two-factor authentication", &e, "").await,
    }
}

async fn forced_confirm(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let Some((p, user)) = pending(&app, &session, |s| s == Step::Enroll).await? else {
        return to("/login");
    };
    match twofa::finish_forced_enrollment(&app.tf, &p, f.get("code")).await {
        Ok(c) => {
            if c.login_completed {
                log_in(
                    &session,
                    &user.principal.user,
                    p.password_at(),
                    Some(&c.proof),
                )
                .await?;
            } else {
                session.remove::<String>(PENDING).await?;
            }
            secret_page(
                &session,
                "Recovery codes",
                &pages::recovery_codes(&c.codes, c.login_completed),
            )
            .await
        }
        Err(e) => {
            let more = "<p><a href=/login/setup>Show the QR code again</a></p>";
            problem_page(&session, "Set up two-factor authentication", &e, more).await
        }
    }
}

async fn logout(session: Session, Form(f): Form<HashMap<String, String>>) -> R {
    checked(&session, f).await?;
    session.flush().await?;
    to("/login")
}

// ----- account security -----

async fn account(State(app): State<Shared>, session: Session) -> R {
    let user = logged_in(&app, &session).await?;
    let status = twofa::status(&app.tf, &user.principal.user).await;
    let body = match status {
        Ok(s) => pages::account(&user.principal.user, &s, app.clock.now()),
        Err(e) => problem(&e),
    };
    page(&session, "Account security", &body).await
}

/// The current user after re-checking the password typed in the form (step-up): the session
/// id is cycled and the time of the check kept for the library's `Reauthenticated`.
async fn step_up(
    app: &App,
    session: &Session,
    f: &Fields,
) -> Result<Option<(User, u64)>, AppError> {
    let user = logged_in(app, session).await?;
    let name = user.principal.user.to_string();
    if check_password(app, &name, f.get("password"))
        .await?
        .is_none()
    {
        flash(session, "Wrong password.").await?;
        return Ok(None);
    }
    let now = app.clock.now();
    session.cycle_id().await?;
    session.insert(PASSWORD_AT, now).await?;
    Ok(Some((user, now)))
}

async fn enable(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let Some((user, at)) = step_up(&app, &session, &f).await? else {
        return to("/account");
    };
    // Under a mailed-code policy, the proof of this session's login with the mailed code.
    let proof = session_proof(&session).await?;
    let started =
        twofa::start_enrollment(&app.tf, &user.principal, &user.email, at, proof.as_ref()).await;
    setup_or_back(&session, "Enable two-factor authentication", started).await
}

/// The set-up page of a started enrollment or rotation, or back to the account page with why.
async fn setup_or_back(
    session: &Session,
    title: &str,
    started: Result<twofa::Setup, twofa::UiError>,
) -> R {
    match started {
        Ok(s) => secret_page(session, title, &pages::setup(&s, "/account/confirm", false)).await,
        Err(e) => {
            flash(session, e.message).await?;
            to("/account")
        }
    }
}

async fn rotate(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let Some((user, at)) = step_up(&app, &session, &f).await? else {
        return to("/account");
    };
    let proof = session_proof(&session).await?;
    let started = twofa::start_rotation(
        &app.tf,
        &user.principal.user,
        &user.email,
        f.get("code"),
        at,
        proof.as_ref(),
    )
    .await;
    setup_or_back(&session, "Set up your new phone", started).await
}

async fn confirm(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let user = logged_in(&app, &session).await?;
    match twofa::finish_enrollment(&app.tf, &user.principal.user, f.get("code")).await {
        Ok(c) => {
            // The new authenticator's code is this session's proof from now on.
            keep_proof(&session, Some(&c.proof)).await?;
            secret_page(
                &session,
                "Recovery codes",
                &pages::recovery_codes(&c.codes, true),
            )
            .await
        }
        Err(e) => {
            let more = "<form method=post action=/account/cancel><input type=hidden name=csrf value=\"{csrf}\"><button>Start again</button></form>";
            problem_page(&session, "Enable two-factor authentication", &e, more).await
        }
    }
}

async fn cancel(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    checked(&session, f).await?;
    let user = logged_in(&app, &session).await?;
    let _ = twofa::cancel_enrollment(&app.tf, &user.principal.user).await;
    to("/account")
}

async fn regenerate(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let Some((user, at)) = step_up(&app, &session, &f).await? else {
        return to("/account");
    };
    let proof = session_proof(&session).await?;
    match twofa::regenerate(
        &app.tf,
        &user.principal.user,
        at,
        f.get("code"),
        proof.as_ref(),
    )
    .await
    {
        Ok(codes) => {
            secret_page(
                &session,
                "Recovery codes",
                &pages::recovery_codes(&codes, true),
            )
            .await
        }
        Err(e) => {
            flash(&session, e.message).await?;
            to("/account")
        }
    }
}

async fn disable(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let Some((user, at)) = step_up(&app, &session, &f).await? else {
        return to("/account");
    };
    let proof = session_proof(&session).await?;
    let msg =
        match twofa::disable(&app.tf, &user.principal, at, f.get("code"), proof.as_ref()).await {
            Ok(()) => "Two-factor authentication is off.".to_string(),
            Err(e) => e.message,
        };
    flash(&session, msg).await?;
    to("/account")
}

async fn revoke(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let user = logged_in(&app, &session).await?;
    let msg = match twofa::revoke_device(&app.tf, &user.principal.user, f.get("device")).await {
        Ok(()) => "Device revoked.".to_string(),
        Err(e) => e.message,
    };
    flash(&session, msg).await?;
    to("/account")
}

async fn revoke_all(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    checked(&session, f).await?;
    let user = logged_in(&app, &session).await?;
    let msg = match twofa::revoke_all(&app.tf, &user.principal.user).await {
        Ok(n) => format!("{n} device(s) revoked."),
        Err(e) => e.message,
    };
    flash(&session, msg).await?;
    to("/account")
}

// ----- administrator -----

async fn admin_user_of(app: &App, session: &Session) -> Result<User, AppError> {
    let user = logged_in(app, session).await?;
    if !user.principal.superuser {
        return Err(AppError(
            StatusCode::FORBIDDEN,
            "Administrators only.".into(),
        ));
    }
    Ok(user)
}

/// How recent the second factor behind an administrator action must be (seconds).
const ADMIN_PROOF_MAX_AGE: u64 = 600;

/// Where an administrator action goes without a fresh second factor.
const STEP_UP: &str = "/admin/step-up";

/// The administrator, if the session holds a proof of their second factor that the library
/// accepts (sealed here, theirs, not revoked, at most 10 minutes old): `Err` is the redirect
/// to the step-up page.
async fn admin_with_fresh_proof(
    app: &App,
    session: &Session,
) -> Result<Result<User, Response>, AppError> {
    let admin = admin_user_of(app, session).await?;
    let fresh = match session_proof(session).await? {
        Some(proof) => app
            .tf
            .check_proof(&admin.principal.user, &proof, ADMIN_PROOF_MAX_AGE)
            .await
            .is_ok(),
        None => false,
    };
    if fresh {
        return Ok(Ok(admin));
    }
    flash(
        session,
        "Confirm your second factor first: administrator actions need one from the last 10 minutes.",
    )
    .await?;
    Ok(Err(Redirect::to(STEP_UP).into_response()))
}

async fn admin_step_up_form(State(app): State<Shared>, session: Session) -> R {
    let admin = admin_user_of(&app, &session).await?;
    let enrolled = twofa::status(&app.tf, &admin.principal.user)
        .await
        .is_ok_and(|s| s.enrolled);
    page(&session, "Confirm it is you", &pages::step_up(enrolled)).await
}

/// Step-up: the administrator's code (or recovery code) is checked with
/// `verify_second_factor`; its new proof replaces the session's, under a new session id.
async fn admin_step_up(
    State(app): State<Shared>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let admin = admin_user_of(&app, &session).await?;
    let ctx = twofa::context(Some(peer.ip()), &user_agent(&headers));
    match twofa::verify_second_factor(&app.tf, &admin.principal.user, f.get("code"), &ctx).await {
        Ok(proof) => {
            session.cycle_id().await?;
            keep_proof(&session, Some(&proof)).await?;
            flash(
                &session,
                "Confirmed: you may now do administrator actions for 10 minutes.",
            )
            .await?;
            to("/admin")
        }
        Err(e) => {
            let enrolled = twofa::status(&app.tf, &admin.principal.user)
                .await
                .is_ok_and(|s| s.enrolled);
            problem_page(&session, "Confirm it is you", &e, &pages::step_up(enrolled)).await
        }
    }
}

async fn admin(State(app): State<Shared>, session: Session) -> R {
    admin_user_of(&app, &session).await?;
    let users: Vec<(String, String, Option<String>, bool)> =
        sqlx::query_as("SELECT name, role, tenant, superuser FROM users ORDER BY name")
            .fetch_all(&app.pool)
            .await?;
    let mut rows = Vec::new();
    for (name, role, tenant, su) in users {
        let enrolled = twofa::status(&app.tf, &UserId::new(name.as_str()))
            .await
            .map(|s| s.enrolled)
            .unwrap_or(false);
        rows.push(pages::AdminRow {
            name,
            role,
            tenant,
            superuser: su,
            enrolled,
        });
    }
    let config = app
        .policy
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    page(&session, "Administration", &pages::admin(&config, &rows)).await
}

async fn admin_policy(
    State(app): State<Shared>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    if let Err(step_up) = admin_with_fresh_proof(&app, &session).await? {
        return Ok(step_up);
    }
    let scope = match f.get("scope") {
        "off" => Scope::Off,
        "employees" => Scope::Employees,
        "all" => Scope::All,
        _ => Scope::Optional,
    };
    let tenants_off = ["acme", "globex"]
        .into_iter()
        .filter(|t| f.get(&format!("tenant_{t}")) != "on")
        .map(String::from)
        .collect();
    let new = PolicyConfig {
        scope,
        mail_code: f.get("unenrolled") == "mail",
        grace_days: f.get("grace_days").trim().parse().unwrap_or(0).min(365),
        saved_at: app.clock.now(),
        superuser_exempt: f.get("superuser_exempt") == "on",
        tenants_off,
    };
    sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES ('policy', ?)")
        .bind(serde_json::to_string(&new)?)
        .execute(&app.pool)
        .await?;
    {
        let mut current = app
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        twofa::apply_policy(&app.tf, &current, &new);
        *current = new;
    }
    flash(&session, "Policy saved: it applies from the next login.").await?;
    to("/admin")
}

async fn admin_user(
    State(app): State<Shared>,
    session: Session,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&session, f).await?;
    let admin = match admin_with_fresh_proof(&app, &session).await? {
        Ok(admin) => admin,
        Err(step_up) => return Ok(step_up),
    };
    let Some(target) = load_user(&app, f.get("user")).await? else {
        flash(&session, "Unknown user.").await?;
        return to("/admin");
    };
    let (who, me) = (&target.principal.user, &admin.principal.user);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let result = match f.get("action") {
        "reset" => twofa::admin_reset(&app.tf, who, me)
            .await
            .map(|()| format!("2FA of {who} reset.")),
        "invite" => twofa::invite(&app.tf, who, me, &format!("http://{host}/account"))
            .await
            .map(|()| format!("{who} invited.")),
        "provision" => twofa::provision_by_mail(&app.tf, who, me, &target.email)
            .await
            .map(|()| format!("A key was mailed to {who}.")),
        _ => Ok("Nothing done.".into()),
    };
    flash(&session, result.unwrap_or_else(|e| e.message)).await?;
    to("/admin")
}

// ----- outbox, audit -----

/// The outbox: a user sees the mail sent to them only; an administrator sees everybody's.
/// Nobody logged in (and no login half-way): to the login page.
async fn outbox(State(app): State<Shared>, session: Session) -> R {
    // Logged in: that user. Half-way through a login (the password checked, the mailed code
    // awaited): the user of the session's login ticket, so they can read the code.
    let user = match session.get::<String>(USER).await? {
        Some(name) => load_user(&app, &name).await?,
        None => pending(&app, &session, |_| true).await?.map(|(_, u)| u),
    };
    let Some(user) = user else {
        return to("/login");
    };
    let everybody = user.principal.superuser;
    let rows: Vec<(i64, String, String, String)> = if everybody {
        sqlx::query_as("SELECT at, user_id, subject, body FROM outbox ORDER BY id DESC LIMIT 200")
            .fetch_all(&app.pool)
            .await?
    } else {
        sqlx::query_as(
            "SELECT at, user_id, subject, body FROM outbox WHERE user_id = ? \
             ORDER BY id DESC LIMIT 200",
        )
        .bind(user.principal.user.as_str())
        .fetch_all(&app.pool)
        .await?
    };
    secret_page(&session, "Outbox", &pages::outbox(&rows, everybody)).await
}

async fn audit(State(app): State<Shared>, session: Session) -> R {
    admin_user_of(&app, &session).await?;
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT at, user_id, event FROM audit ORDER BY id DESC LIMIT 500")
            .fetch_all(&app.pool)
            .await?;
    page(&session, "Audit trail", &pages::audit(&rows)).await
}
