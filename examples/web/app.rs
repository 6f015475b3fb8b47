//! The web demo's router and handlers. The 2FA pages (second step, mailed code and resend,
//! forced set-up, recovery codes, the account security page, step-up) are
//! `twofactor::axum`'s, in the demo's frame; the demo keeps what is its own: sign-up and the
//! password login, the administrator page (policy, and a user's reset, invitation or
//! provisioning after a fresh second factor), the outbox and the audit trail.
//!
//! Every line whose purpose is 2FA sits between `// --- 2FA begin ---` and `// --- 2FA end ---`
//! (`tests/web_glue_budget.rs` counts them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_sessions::cookie::SameSite;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
// --- 2FA begin ---
use twofactor::UserId;
use twofactor::axum::{CSRF_FIELD, Common, Login, Pages, TwoFactorWeb};
// --- 2FA end ---

use crate::demo::{self, App, BoxError, Config, PolicyConfig, Scope, User};
use crate::pages::{self, esc};

/// The session key of the logged-in user: the demo reads it, `twofactor::axum` writes it once
/// the login is complete (second factor included).
const USER: &str = "user";
/// The session key of the demo's one-time notice.
const FLASH: &str = "flash";
// --- 2FA begin ---
/// Where a login lands: the account security page.
const ACCOUNT: &str = "/2fa/account";
/// How recent the second factor behind an administrator action must be: 10 minutes.
const ADMIN_STEP_UP: std::time::Duration = std::time::Duration::from_secs(600);
// --- 2FA end ---

/// The router's state.
#[derive(Clone)]
struct Web {
    app: Arc<App>,
    // --- 2FA begin ---
    tfa: TwoFactorWeb,
    // --- 2FA end ---
}

/// Opens (or creates) the database and key, and serves on 127.0.0.1.
pub async fn serve(
    config: Config,
) -> Result<(SocketAddr, Arc<App>, tokio::task::JoinHandle<()>), BoxError> {
    let listener =
        tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, config.port)).await?;
    let addr = listener.local_addr()?;
    // The port taken (security keys answer http://localhost:PORT).
    let config = demo::Config {
        port: addr.port(),
        ..config
    };
    let app = demo::open(&config).await?;
    let router = router(app.clone());
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, app, handle))
}

/// All routes.
pub fn router(app: Arc<App>) -> Router {
    // Secure is off: the demo serves plain http on 127.0.0.1. Behind TLS, set it.
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_name("demo_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(false);
    // --- 2FA begin ---
    let pool = app.pool.clone();
    let principal = move |user: UserId| demo::principal_of(pool.clone(), user);
    let tfa = TwoFactorWeb::builder(app.tf.clone(), principal)
        .session_key(USER)
        .after_login(ACCOUNT)
        .app_name(demo::NAME)
        .pages(DemoPages)
        .build();
    // Guards on the method routers: other methods still answer 405.
    let (logged_in, recent) = (tfa.require_login(), tfa.require_recent_2fa(ADMIN_STEP_UP));
    // --- 2FA end ---
    Router::new()
        // --- 2FA begin ---
        .route("/admin", get(admin).route_layer(logged_in.clone()))
        .route("/audit", get(audit).route_layer(logged_in))
        .route(
            "/admin/policy",
            post(admin_policy).route_layer(recent.clone()),
        )
        .route("/admin/user", post(admin_user).route_layer(recent))
        // --- 2FA end ---
        .route("/", get(home))
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/outbox", get(outbox))
        // --- 2FA begin ---
        .merge(tfa.router())
        .layer(tfa.layer())
        .with_state(Web { app, tfa })
        // --- 2FA end ---
        .layer(sessions)
}

// --- 2FA begin ---
/// The 2FA pages, in the demo's frame (navigation and the log-out button).
struct DemoPages;

impl Pages for DemoPages {
    fn layout(&self, c: &Common<'_>, body: &str) -> String {
        pages::frame(c.title, c.user.map(UserId::as_str), c.csrf_token, body)
    }
}

/// The session's CSRF token: the 2FA pages' own, for the demo's forms too.
async fn csrf(web: &Web, session: &Session) -> Result<String, AppError> {
    let token = web.tfa.csrf_token(session).await;
    token.ok_or_else(|| AppError(StatusCode::SERVICE_UNAVAILABLE, "Try again.".into()))
}

/// A POSTed form, once its CSRF token matched the session's.
async fn checked(
    web: &Web,
    session: &Session,
    form: HashMap<String, String>,
) -> Result<Fields, AppError> {
    let token = form.get(CSRF_FIELD).map_or("", String::as_str);
    match web.tfa.verify_csrf(session, token).await {
        true => Ok(Fields(form)),
        false => Err(AppError(
            StatusCode::FORBIDDEN,
            "The form expired: reload the page.".into(),
        )),
    }
}
// --- 2FA end ---

// ----- errors, pages, forms -----

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
        let body = format!("<p class=error id=error>{}</p>", esc(&self.1));
        let page = pages::frame("Error", None, "", &pages::page("Error", None, &body));
        (self.0, Html(page)).into_response()
    }
}

type R = Result<Response, AppError>;

fn to(path: &str) -> R {
    Ok(Redirect::to(path).into_response())
}

/// The form's fields.
struct Fields(HashMap<String, String>);

impl Fields {
    fn get(&self, k: &str) -> &str {
        self.0.get(k).map_or("", String::as_str)
    }
}

async fn flash(session: &Session, msg: impl Into<String>) -> Result<(), AppError> {
    session.insert(FLASH, msg.into()).await?;
    Ok(())
}

/// Renders a page of the demo's own in the frame, with its notice; `body` gets the CSRF token.
async fn render(web: &Web, session: &Session, title: &str, body: impl FnOnce(&str) -> String) -> R {
    let user: Option<String> = session.get(USER).await?;
    let token = csrf(web, session).await?;
    let notice = session.remove::<String>(FLASH).await?;
    let main = pages::page(title, notice.as_deref(), &body(&token));
    let html = pages::frame(title, user.as_deref(), &token, &main);
    Ok(Html(html).into_response())
}

/// The logged-in user (second factor included: the module writes `USER` only then).
async fn current(web: &Web, session: &Session) -> Result<Option<User>, AppError> {
    match session.get::<String>(USER).await? {
        Some(name) => Ok(demo::load_user(&web.app.pool, &name).await?),
        None => Ok(None),
    }
}

/// The logged-in administrator (the routes' guard sent everybody else to the login page).
async fn administrator(web: &Web, session: &Session) -> Result<User, AppError> {
    match current(web, session).await? {
        Some(u) if u.superuser => Ok(u),
        _ => Err(AppError(
            StatusCode::FORBIDDEN,
            "Administrators only.".into(),
        )),
    }
}

// ----- home, sign-up, login, logout -----

async fn home(session: Session) -> R {
    match session.get::<String>(USER).await? {
        // --- 2FA begin ---
        Some(_) => to(ACCOUNT),
        // --- 2FA end ---
        None => to("/login"),
    }
}

async fn signup_form(State(web): State<Web>, session: Session) -> R {
    render(&web, &session, "Sign up", pages::signup).await
}

async fn signup(
    State(web): State<Web>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&web, &session, f).await?;
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
    if !demo::create_user(&web.app, name, email, password, "portal", None, false).await? {
        flash(&session, "That name is taken.").await?;
        return to("/signup");
    }
    flash(&session, "Account created: log in.").await?;
    to("/login")
}

async fn login_form(State(web): State<Web>, session: Session) -> R {
    if session.get::<String>(USER).await?.is_some() {
        return to("/");
    }
    render(&web, &session, "Log in", pages::login).await
}

async fn login(
    State(web): State<Web>,
    session: Session,
    // --- 2FA begin ---
    tfa: Login,
    // --- 2FA end ---
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&web, &session, f).await?;
    let name = f.get("username").trim();
    let Some(user) = demo::check_password(&web.app, name, f.get("password")).await? else {
        flash(&session, "Wrong name or password.").await?;
        return to("/login");
    };
    // Was: cycle the session id, keep the user in the session, go to the account page. Now
    // the module logs the session in once the second factor (or set-up) is done.
    // --- 2FA begin ---
    Ok(tfa.password_checked(user.principal()).await)
    // --- 2FA end ---
}

async fn logout(
    State(web): State<Web>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    checked(&web, &session, f).await?;
    session.flush().await?;
    to("/login")
}

// ----- administrator -----

async fn admin(State(web): State<Web>, session: Session) -> R {
    administrator(&web, &session).await?;
    let users: Vec<(String, String, Option<String>, bool)> =
        sqlx::query_as("SELECT name, role, tenant, superuser FROM users ORDER BY name")
            .fetch_all(&web.app.pool)
            .await?;
    let mut rows = Vec::new();
    for (name, role, tenant, superuser) in users {
        // --- 2FA begin: demo feature ---
        let status = web.app.tf.status(&UserId::new(name.as_str())).await;
        let enrolled = status.is_ok_and(|s| s.is_enrolled());
        // --- 2FA end ---
        rows.push(pages::AdminRow {
            name,
            role,
            tenant,
            superuser,
            enrolled,
        });
    }
    let config = web.app.policy.read().map_err(|e| e.to_string())?.clone();
    render(&web, &session, "Administration", |csrf| {
        pages::admin(csrf, &config, &rows)
    })
    .await
}

/// Saves the policy (behind a fresh second factor, like every administrator action).
async fn admin_policy(
    State(web): State<Web>,
    session: Session,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&web, &session, f).await?;
    administrator(&web, &session).await?;
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
        saved_at: web.app.clock.now_unix(),
        superuser_exempt: f.get("superuser_exempt") == "on",
        tenants_off,
    };
    sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES ('policy', ?)")
        .bind(serde_json::to_string(&new)?)
        .execute(&web.app.pool)
        .await?;
    {
        let mut current = web.app.policy.write().map_err(|e| e.to_string())?;
        // --- 2FA begin: demo feature ---
        demo::apply_policy(&web.app.tf, &current, &new);
        // --- 2FA end ---
        *current = new;
    }
    flash(&session, "Policy saved: it applies from the next login.").await?;
    to("/admin")
}

/// A user's reset (lost phone), invitation or provisioning by mail (behind a fresh second
/// factor).
async fn admin_user(
    State(web): State<Web>,
    session: Session,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> R {
    let f = checked(&web, &session, f).await?;
    let admin = administrator(&web, &session).await?;
    let Some(target) = demo::load_user(&web.app.pool, f.get("user")).await? else {
        flash(&session, "Unknown user.").await?;
        return to("/admin");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    // --- 2FA begin: demo feature ---
    let (tf, who, me) = (
        &web.app.tf,
        UserId::new(target.name),
        UserId::new(admin.name),
    );
    let done = match f.get("action") {
        "reset" => tf.reset_by_admin(&who, &me).await.map(|()| "reset"),
        "invite" => tf
            .invite(&who, &me, &format!("http://{host}{ACCOUNT}"))
            .await
            .map(|()| "invited"),
        "provision" => tf
            .start_enrollment_by_mail_dangerous(&who, &me, &target.email)
            .await
            .map(|_| "sent a key by mail"),
        _ => Ok("left as it was"),
    };
    let said = done.map_or_else(|e| format!("Not done: {e}."), |d| format!("{who}: {d}."));
    // --- 2FA end ---
    flash(&session, said).await?;
    to("/admin")
}

// ----- outbox, audit -----

/// The outbox: a user sees the mail sent to them only; an administrator sees everybody's.
/// Nobody logged in (and no login half-way): to the login page.
async fn outbox(State(web): State<Web>, session: Session) -> R {
    let name = match session.get::<String>(USER).await? {
        Some(name) => Some(name),
        // Half-way through a login (the password checked, the mailed code awaited): that
        // user, so they can read the code.
        // --- 2FA begin: demo feature ---
        None => web.tfa.pending_user(&session).await.map(|u| u.to_string()),
        // --- 2FA end ---
    };
    let user = match name {
        Some(name) => demo::load_user(&web.app.pool, &name).await?,
        None => None,
    };
    let Some(user) = user else {
        return to("/login");
    };
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT at, user_id, subject, body FROM outbox WHERE user_id = ? OR ? \
         ORDER BY id DESC LIMIT 200",
    )
    .bind(&user.name)
    .bind(user.superuser)
    .fetch_all(&web.app.pool)
    .await?;
    let smtp = web.app.smtp.as_deref();
    let everybody = user.superuser;
    let mut r = render(&web, &session, "Outbox", |_| {
        pages::outbox(&rows, everybody, smtp)
    })
    .await?;
    // Login codes and keys: never cached.
    let no_store = HeaderValue::from_static("no-store");
    r.headers_mut().insert(header::CACHE_CONTROL, no_store);
    Ok(r)
}

async fn audit(State(web): State<Web>, session: Session) -> R {
    administrator(&web, &session).await?;
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT at, user_id, event FROM audit ORDER BY id DESC LIMIT 500")
            .fetch_all(&web.app.pool)
            .await?;
    render(&web, &session, "Audit trail", |_| pages::audit(&rows)).await
}
