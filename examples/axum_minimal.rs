//! A small axum + tower-sessions app (a password login against an in-memory user map, a home
//! page and a settings page) that gains two-factor authentication with `twofactor::axum`.
//!
//! ```sh
//! cargo run --example axum_minimal --features axum
//! # open http://127.0.0.1:3000/ and log in as alice / correct horse
//! ```
//!
//! Every line 2FA adds or changes is between `// --- 2FA begin ---` and `// --- 2FA end ---`
//! (`tests/axum_glue_budget.rs` counts them, as a newcomer would: non-blank, non-comment,
//! `use` lines included, after `cargo fmt`). What 2FA removed is said in comments.
//!
//! What the app gets: forced set-up at the first login (QR code, "Cannot scan it?" key,
//! recovery codes shown once), the second step (a code or a recovery code, "don't ask again
//! on this device"), the account security page at `/2fa/account`, a step-up page before
//! `/settings`, throttling with its wait, CSRF tokens on every 2FA form, and a session id
//! cycled at every privilege change.
//!
//! Cookies: tower-sessions' cookie and the trusted-device cookie (`__Host-`) are `Secure`.
//! Browsers keep them over `http://127.0.0.1` and `http://localhost` (secure contexts), so the
//! demo works there; anywhere else, serve it over HTTPS.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
// --- 2FA begin ---
use twofactor::axum::{Login, TwoFactorWeb};
use twofactor::{Principal, ServiceKeys, TwoFactor};
// --- 2FA end ---

/// The session key of the logged-in user.
const USER: &str = "user";

/// The navigation of logged-in pages.
const LINKS: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/settings", "Settings"),
    // --- 2FA begin ---
    ("/2fa/account", "Account security"),
    // --- 2FA end ---
];

/// Names and passwords (a real app keeps password hashes, e.g. argon2).
struct Users(HashMap<&'static str, &'static str>);

impl Users {
    fn check(&self, name: &str, password: &str) -> bool {
        self.0.get(name).is_some_and(|p| {
            let (p, given) = (p.as_bytes(), password.as_bytes());
            bool::from(subtle::ConstantTimeEq::ct_eq(p, given))
        })
    }
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:3000").await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let addr = listener.local_addr()?;
    println!("http://{addr}/  (log in as alice / correct horse, or bob / battery staple)");
    axum::serve(listener, app(MemoryStore::default())?).await?;
    Ok(())
}

/// The application (the tests drive it through this too).
pub fn app(sessions: MemoryStore) -> Result<Router, Box<dyn std::error::Error>> {
    let users = Arc::new(Users(HashMap::from([
        ("alice", "correct horse"),
        ("bob", "battery staple"),
    ])));
    // One server secret (`openssl rand -base64 32`) keys login tickets, proofs, code hashes
    // and cookie names; without it, a random one for this run (the store is in memory too).
    // Required for everyone: set-up at the first login. Mail goes to an in-memory outbox.
    // Audit events go through `tracing` (to standard error while no subscriber is installed):
    // choose their destination with `.audit(..)`.
    // --- 2FA begin ---
    let secret = std::env::var("TWOFACTOR_SECRET").ok();
    let keys = secret.map_or_else(ServiceKeys::ephemeral, |s| ServiceKeys::derive(s.as_ref()))?;
    let tf = TwoFactor::builder(twofactor::MemoryStore::new())
        .mailer(twofactor::testing::RecordingMailer::new())
        .keys(keys)
        .policy(twofactor::RequiredForAll::default())
        .build();
    let tfa = TwoFactorWeb::builder(tf, |user| async move { Some(Principal::new(user)) })
        .session_key(USER)
        .build();
    // --- 2FA end ---
    Ok(Router::new()
        .route("/settings", get(settings))
        // --- 2FA begin ---
        .route_layer(tfa.require_recent_2fa(std::time::Duration::from_secs(5 * 60)))
        // --- 2FA end ---
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        // --- 2FA begin ---
        .merge(tfa.router())
        .layer(tfa.layer())
        // --- 2FA end ---
        .with_state(users)
        .layer(SessionManagerLayer::new(sessions)))
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    ))
}

/// The logged-in pages' navigation and log-out button.
fn nav(user: &str) -> String {
    let links: String = LINKS
        .iter()
        .map(|(href, label)| format!("<a href={href}>{label}</a> "))
        .collect();
    format!(
        "<nav>{links}<form method=post action=/logout><span id=whoami>{user}</span> \
         <button id=logout>Log out</button></form></nav>"
    )
}

async fn login_page(session: Session) -> Response {
    if let Ok(Some(_)) = session.get::<String>(USER).await {
        return Redirect::to("/").into_response();
    }
    page(
        "Log in",
        "<form method=post action=/login>\
         <label for=username>Name</label> <input id=username name=username autocomplete=username required>\
         <label for=password>Password</label> <input id=password name=password type=password \
         autocomplete=current-password required> <button id=login>Log in</button></form>",
    )
    .into_response()
}

async fn login(
    State(users): State<Arc<Users>>,
    // --- 2FA begin ---
    tfa: Login,
    // --- 2FA end ---
    Form(f): Form<Credentials>,
) -> Response {
    if !users.check(&f.username, &f.password) {
        return page(
            "Log in",
            "<p id=error>Wrong name or password. <a href=/login>Try again</a></p>",
        )
        .into_response();
    }
    // Before 2FA: `session.cycle_id()`, `session.insert(USER, f.username)`, redirect to "/";
    // now the module logs the session in (under USER) once the second factor is proven.
    // --- 2FA begin ---
    tfa.password_checked(Principal::new(f.username)).await
    // --- 2FA end ---
}

async fn home(session: Session) -> Response {
    match session.get::<String>(USER).await {
        Ok(Some(user)) => {
            page("Home", &format!("{}<p>Hello, {user}.</p>", nav(&user))).into_response()
        }
        _ => Redirect::to("/login").into_response(),
    }
}

async fn settings(session: Session) -> Response {
    match session.get::<String>(USER).await {
        Ok(Some(user)) => page(
            "Settings",
            &format!(
                "{}<p id=settings>Payout account of {user}: ****1234.</p>",
                nav(&user)
            ),
        )
        .into_response(),
        _ => Redirect::to("/login").into_response(),
    }
}

async fn logout(session: Session) -> Redirect {
    let _ = session.flush().await;
    Redirect::to("/login")
}
