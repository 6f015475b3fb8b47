//! Security keys through `twofactor::axum` end to end in real headless Chromium, with the
//! WebDriver virtual authenticator (W3C WebAuthn § 11, which chromedriver implements; sent as
//! custom commands: fantoccini has no typed ones): a key registered on the account page (the
//! user's first factor: recovery codes), a logout, a login with the key, a step-up with it, a
//! credential removed on the server refused, and the key removed on the account page. And a
//! user a phishing-resistant policy covers: forced set-up of an app, the escalation to a key
//! on the account page, a synced passkey (backup-eligible) registered, the key-only login,
//! and its `swk` claim.
//!
//! WebAuthn needs a secure context and a domain name: the app is served on
//! `http://localhost:PORT` (webauthn-rs refuses an origin of `127.0.0.1`). Needs `chromium` and
//! `chromium-driver` (Debian); a missing browser FAILS the test, it never skips. Screenshots
//! under `target/screenshots/webauthn-*.png`.

#![cfg(all(feature = "axum", feature = "webauthn"))]
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Form;
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use fantoccini::Locator;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};
use tower_sessions::{Session, SessionManagerLayer};
use twofactor::account::{RelyingParty, Settings};
use twofactor::axum::{Login, TwoFactorWeb};
use twofactor::policy::PhishingResistantFor;
use twofactor::store::UserStore;
use twofactor::{
    EnforcementPolicy, MemoryStore, Optional, Principal, RequiredForAll, Secret, TwoFactor, UserId,
};
use webauthn_rs::prelude::Url;

#[path = "support/browser.rs"]
mod browser_support;
use browser_support::{BoxError, Page, Phone, TestResult, browser};

const USER: &str = "user";

// ----- the WebDriver virtual authenticator, as custom commands -----

/// `POST /session/{id}/webauthn/authenticator`: a CTAP2 USB key with user verification, or
/// (`synced`) an internal one whose credentials are backup-eligible and backed up, as a
/// passkey in a platform keychain (WebAuthn Level 3 § 11.2 options).
#[derive(Debug, Default)]
struct AddVirtualAuthenticator {
    synced: bool,
}

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/authenticator",
            session.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        let mut body = json!({
            "protocol": "ctap2",
            "transport": "usb",
            "hasResidentKey": false,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        if self.synced {
            body["transport"] = json!("internal");
            body["defaultBackupEligibility"] = json!(true);
            body["defaultBackupState"] = json!(true);
        }

        (Method::POST, Some(body.to_string()))
    }
}

/// `GET` or `DELETE /session/{id}/webauthn/authenticator/{a}/credentials`.
#[derive(Debug)]
struct Credentials {
    authenticator: String,
    method: Method,
}

impl WebDriverCompatibleCommand for Credentials {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/authenticator/{}/credentials",
            session.unwrap_or_default(),
            self.authenticator
        ))
    }
    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (self.method.clone(), None)
    }
}

/// `DELETE /session/{id}/webauthn/authenticator/{a}`.
#[derive(Debug)]
struct RemoveVirtualAuthenticator(String);

impl WebDriverCompatibleCommand for RemoveVirtualAuthenticator {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/authenticator/{}",
            session.unwrap_or_default(),
            self.0
        ))
    }
    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (Method::DELETE, None)
    }
}

mod url {
    pub use webauthn_rs::prelude::Url;
    pub type ParseError = <Url as core::str::FromStr>::Err;
}

// ----- the host app -----

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    ))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login_page() -> Html<String> {
    page(
        "Log in",
        "<form method=post action=/login><input id=username name=username>\
         <input id=password name=password type=password><button id=login>Log in</button></form>",
    )
}

async fn login(tfa: Login, Form(f): Form<LoginForm>) -> Response {
    if f.username != "alice" || f.password != "correct horse" {
        return page("Log in", "<p id=error>Wrong name or password.</p>").into_response();
    }
    tfa.password_checked(Principal::new(f.username).with_role("admin"))
        .await
}

async fn home(session: Session) -> Response {
    match session.get::<String>(USER).await {
        Ok(Some(user)) => page(
            "Home",
            &format!(
                "<p id=hello>Hello, {user}.</p><a id=account href=/2fa/account>Account security</a>\
                 <form method=post action=/logout><button id=logout>Log out</button></form>"
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

fn app<P: EnforcementPolicy + Send + Sync + 'static>(
    store: Arc<MemoryStore>,
    port: u16,
    policy: P,
) -> Router {
    let rp = RelyingParty::new("localhost", &format!("http://localhost:{port}"), "Keys e2e")
        .expect("a relying party");
    let settings = Settings::builder()
        .security_keys(rp)
        .build()
        .expect("settings");
    let tf = TwoFactor::builder(store)
        .policy(policy)
        .settings(settings)
        .keys(twofactor::testing::test_keys())
        .build();
    // Alice administers the app.
    let tfa = TwoFactorWeb::builder(tf, |user| async move {
        Some(Principal::new(user).with_role("admin"))
    })
    .session_key(USER)
    .build();
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .merge(tfa.router())
        .layer(tfa.layer())
        .layer(SessionManagerLayer::new(
            tower_sessions::MemoryStore::default(),
        ))
}

// ----- the browser -----

type T = Page;

/// Alice's password login on the host's form.
async fn log_in(t: &T) -> TestResult {
    t.login("alice", "correct horse").await
}

/// The credentials the virtual authenticator holds.
async fn credentials(t: &T, authenticator: &str) -> Result<Vec<Value>, BoxError> {
    let v =
        t.c.issue_cmd(Credentials {
            authenticator: authenticator.to_owned(),
            method: Method::GET,
        })
        .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_key_registers_logs_in_and_is_removed_in_chromium() -> TestResult {
    in_chromium("optional", Optional, |t, store| Box::pin(story(t, store))).await
}

/// Administrators must use a security key (`PhishingResistantFor`); alice is one, with no 2FA
/// yet. On the previous main forced set-up completed her login on the app's code with nothing
/// asking for a key, and every key claimed `hwk`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_set_up_escalates_to_a_synced_passkey_that_claims_swk_in_chromium() -> TestResult {
    let policy = PhishingResistantFor::new(["admin"], RequiredForAll::default());
    in_chromium("escalation", policy, |t, store| {
        Box::pin(escalation(t, store))
    })
    .await
}

type Story =
    for<'a> fn(
        &'a T,
        &'a MemoryStore,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TestResult> + Send + 'a>>;

/// Serves the app with `policy` on `localhost`, opens Chromium, and runs `story`.
async fn in_chromium<P: EnforcementPolicy + Send + Sync + 'static>(
    name: &str,
    policy: P,
    story: Story,
) -> TestResult {
    let dir = std::env::temp_dir().join(format!(
        "twofactor-webauthn-e2e-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let store = Arc::new(MemoryStore::new());
    let router = app(store.clone(), port, policy);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let (c, _driver) = browser(&dir.join("profile"), "1000,1200").await?;
    let t = Page::new(c, format!("http://localhost:{port}"), "webauthn-")?;
    let result = story(&t, &store).await;
    if result.is_err() {
        let _ = t.shot(&format!("{name}-failure")).await;
        eprintln!(
            "page at failure ({:?}): {:?}",
            t.c.current_url().await.map(|u| u.to_string()),
            t.c.source()
                .await
                .map(|s| s.chars().take(4000).collect::<String>())
        );
    }
    let _ = t.c.clone().close().await;
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn escalation(t: &T, store: &MemoryStore) -> TestResult {
    let alice = UserId::new("alice");
    // Her laptop's platform authenticator: its passkeys sync (backup-eligible, backed up).
    let authenticator =
        t.c.issue_cmd(AddVirtualAuthenticator { synced: true })
            .await?;
    let authenticator = authenticator
        .as_str()
        .ok_or("an authenticator id")?
        .to_owned();

    // The password; no 2FA yet: forced set-up (an authenticator app).
    log_in(t).await?;
    assert_eq!(t.path().await?, "/2fa/setup");
    let key =
        t.c.execute(
            "return document.querySelector('#manual-key').textContent",
            vec![],
        )
        .await?;
    let mut phone = Phone::new(Secret::from_base32(
        &key.as_str().ok_or("the manual key")?.replace(' ', ""),
    )?);
    t.fill("#code", &phone.code().await).await?;
    t.click("#confirm").await?;
    assert_eq!(
        t.c.find_all(Locator::Css("#recovery-codes li"))
            .await?
            .len(),
        10
    );
    // The set-up logged her in, to add a key before anything else: the account page.
    t.click("#continue").await?;
    assert_eq!(t.path().await?, "/2fa/account");
    assert!(
        t.text("#needs-security-key")
            .await?
            .contains("requires a security key"),
        "the account page says a key is required"
    );
    t.shot("escalation-needs-key").await?;
    // She adds one: the proof of the set-up's code is fresh, so no code is asked for.
    t.fill("#key-label", "Laptop passkey").await?;
    t.click("#add-key").await?;
    assert!(
        t.text("#authenticators").await?.contains("Laptop passkey"),
        "the key is listed"
    );
    assert!(
        t.c.find(Locator::Css("#needs-security-key")).await.is_err(),
        "no longer required"
    );
    assert_eq!(credentials(t, &authenticator).await?.len(), 1);
    t.go("/").await?;
    t.click("#logout").await?;

    // From now on only the key logs her in; the claims say it is a synced one (`swk`).
    log_in(t).await?;
    assert_eq!(t.path().await?, "/2fa");
    assert!(
        t.c.find(Locator::Css("#code")).await.is_err(),
        "no code field: a code would be refused"
    );
    t.click("#use-key").await?;
    assert_eq!(t.path().await?, "/");
    t.go("/2fa/account").await?;
    let claims = t.text("#session-claims").await?;
    assert!(claims.contains("swk"), "{claims}");
    assert!(!claims.contains("hwk"), "{claims}");
    t.shot("escalation-swk").await?;
    let stored = store.load(&alice).await?.ok_or("a record")?;
    assert!(stored.record.has_security_key());
    t.c.issue_cmd(RemoveVirtualAuthenticator(authenticator))
        .await?;
    Ok(())
}

async fn story(t: &T, store: &MemoryStore) -> TestResult {
    let alice = UserId::new("alice");
    // The virtual authenticator: the browser's "security key".
    let authenticator = t.c.issue_cmd(AddVirtualAuthenticator::default()).await?;
    let authenticator = authenticator
        .as_str()
        .ok_or("an authenticator id")?
        .to_owned();
    assert!(credentials(t, &authenticator).await?.is_empty());

    // No 2FA yet: the password logs in. The account page offers a security key.
    log_in(t).await?;
    assert_eq!(t.path().await?, "/");
    t.go("/2fa/account").await?;
    t.fill("#key-label", "YubiKey").await?;
    t.shot("account-before").await?;
    t.click("#add-key").await?;
    // The first key turns 2FA on: recovery codes, shown once.
    let codes = t.c.find_all(Locator::Css("#recovery-codes li")).await?;
    assert_eq!(codes.len(), 10, "ten recovery codes");
    let creds = credentials(t, &authenticator).await?;
    assert_eq!(creds.len(), 1, "the key holds one credential: {creds:?}");
    t.click("#continue").await?;
    assert!(
        t.text("#authenticators").await?.contains("YubiKey"),
        "the key is listed"
    );
    t.shot("account-with-key").await?;
    let stored = store.load(&alice).await?.ok_or("a record")?;
    assert!(stored.record.has_security_key());
    t.go("/").await?;
    t.click("#logout").await?;

    // Log in with the key: the second step offers it (and the recovery codes).
    log_in(t).await?;
    assert_eq!(t.path().await?, "/2fa");
    t.shot("second-step").await?;
    t.click("#use-key").await?;
    assert_eq!(t.path().await?, "/", "logged in with the key");
    assert!(t.text("#hello").await?.contains("alice"));
    // Step-up with the key (a sensitive page asks for a fresh second factor).
    t.go("/2fa/step-up?next=/").await?;
    t.shot("step-up").await?;
    t.click("#use-key").await?;
    assert_eq!(t.path().await?, "/", "confirmed with the key");
    t.click("#logout").await?;

    // A credential removed on the server (between the options and the answer) is refused.
    log_in(t).await?;
    assert_eq!(t.path().await?, "/2fa");
    let answer = t.c.execute_async(SIGN_WITHOUT_SUBMITTING, vec![]).await?;
    assert_eq!(answer, Value::Bool(true), "the key signed");
    let loaded = store.load(&alice).await?.ok_or("a record")?;
    let mut json = serde_json::to_value(&loaded.record)?;
    json["authenticators"] = json!([]);
    let emptied = serde_json::from_value(json)?;
    let saved = store.save(&alice, &emptied, Some(loaded.version)).await?;
    assert!(matches!(saved, twofactor::store::SaveOutcome::Saved(_)));
    t.c.execute("document.querySelector('form.twofa-key').submit()", vec![])
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        t.text("#error").await?.contains("not registered"),
        "refused: {}",
        t.text("main").await?
    );
    t.shot("removed-credential-refused").await?;
    // Put the key back (the record as it was) and log in with it.
    let back = store.load(&alice).await?.ok_or("a record")?;
    let saved = store
        .save(&alice, &loaded.record, Some(back.version))
        .await?;
    assert!(matches!(saved, twofactor::store::SaveOutcome::Saved(_)));
    t.click("#use-key").await?;
    assert_eq!(t.path().await?, "/");

    // Remove the key on the account page (the login's proof of the key is fresh): 2FA off.
    t.go("/2fa/account").await?;
    let remove =
        t.c.find(Locator::Css(
            "#authenticators button[id^=remove-authenticator-]",
        ))
        .await?;
    let old = t.c.find(Locator::Css("html")).await?;
    remove.click().await?;
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t.text("#notice")
            .await?
            .contains("two-factor authentication is off")
    );
    let stored = store.load(&alice).await?.ok_or("a record")?;
    assert!(!stored.record.has_security_key());
    t.shot("account-key-removed").await?;
    t.click("#home").await?;
    t.click("#logout").await?;
    // The password alone logs in again; the browser's credential is useless now.
    log_in(t).await?;
    assert_eq!(t.path().await?, "/");
    let _ =
        t.c.issue_cmd(Credentials {
            authenticator: authenticator.clone(),
            method: Method::DELETE,
        })
        .await?;
    assert!(credentials(t, &authenticator).await?.is_empty());
    t.c.issue_cmd(RemoveVirtualAuthenticator(authenticator))
        .await?;
    Ok(())
}

/// Runs the "Use your security key" button's steps but keeps the answer in the form instead
/// of submitting it: fetch the options, decode, sign, encode. Resolves to `true` when signed.
const SIGN_WITHOUT_SUBMITTING: &str = r#"
const done = arguments[arguments.length - 1];
(async () => {
  const dec = s => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), c => c.charCodeAt(0)).buffer;
  const enc = b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const form = document.querySelector("form.twofa-key");
  const button = form.querySelector("button[data-twofa-key]");
  const r = await fetch(button.dataset.options, { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(new FormData(form)) });
  const options = (await r.json()).publicKey;
  options.challenge = dec(options.challenge);
  for (const c of options.allowCredentials || []) c.id = dec(c.id);
  const cred = await navigator.credentials.get({ publicKey: options });
  const response = {};
  for (const k of ["clientDataJSON", "authenticatorData", "signature", "userHandle"]) {
    if (cred.response[k]) response[k] = enc(cred.response[k]);
  }
  form.elements.credential.value = JSON.stringify({ id: cred.id, rawId: enc(cred.rawId),
    type: cred.type, response, extensions: {} });
  done(true);
})().catch(e => done(String(e)));
"#;
