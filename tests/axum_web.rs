//! `twofactor::axum` in process: `examples/axum_minimal.rs`'s router (and a few routers of the
//! test's own) driven with `tower::ServiceExt::oneshot`, the cookies carried by hand.
//!
//! - the session id changes at every privilege change (login ticket stored, login completed,
//!   step-up), and the old id no longer works after each;
//! - a POST without its CSRF token, or with a wrong one, is refused (403) and changes nothing;
//! - an edited or foreign login ticket in the session store, and an edited or forged proof,
//!   are refused;
//! - the mailed-code page and its resend, the throttle's 429 with `Retry-After`, no open
//!   redirect through `next`, `no-store` on pages that show secrets, the account page.
//!
//! TOTP codes come from the real clock (the example runs on the system clock): a login uses
//! the next time step, which the ±1-step window accepts, so no test waits.

#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../examples/axum_minimal.rs"]
mod example;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tower::ServiceExt as _;
use tower_sessions::session::Id;
use tower_sessions::{MemoryStore, SessionStore};
use twofactor::axum::{Login, TwoFactorWeb};
use twofactor::testing::{FlakyMailer, ManualClock, RecordingMailer, test_keys};
use twofactor::{
    Clock, LoginContext, MemoryStore as TfStore, Principal, RequiredForAll, Secret, Totp,
    TwoFactor, WhenUnenrolled,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One answer, read whole.
struct Answer {
    status: StatusCode,
    location: String,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn between(&self, start: &str, end: &str) -> Option<String> {
        let from = self.body.find(start)? + start.len();
        let to = self.body[from..].find(end)? + from;
        Some(self.body[from..to].to_owned())
    }
    fn csrf(&self) -> String {
        self.between("name=csrf value=\"", "\"")
            .expect("a form with its CSRF token")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn recovery_codes(&self) -> Vec<String> {
        let list = self
            .between("<ul id=recovery-codes class=codes>", "</ul>")
            .expect("the recovery codes");
        list.split("<li><code>")
            .filter_map(|s| s.split("</code>").next())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A browser, by hand: a cookie jar in front of a router.
struct Browser {
    app: Router,
    jar: HashMap<String, String>,
    user_agent: &'static str,
}

impl Browser {
    fn new(app: Router) -> Self {
        Browser {
            app,
            jar: HashMap::new(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36",
        }
    }

    /// The session cookie's value (tower-sessions names it `id`).
    fn session_id(&self) -> String {
        self.jar.get("id").cloned().expect("a session cookie")
    }

    async fn send(&mut self, req: Request<Body>, cookies: Option<&str>) -> Answer {
        let (mut parts, body) = req.into_parts();
        let jar = self
            .jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let cookie = cookies.map_or(jar, str::to_owned);
        if !cookie.is_empty() {
            parts
                .headers
                .insert(header::COOKIE, cookie.parse().expect("cookie"));
        }
        parts
            .headers
            .insert(header::USER_AGENT, self.user_agent.parse().expect("ua"));
        let res: Response = self
            .app
            .clone()
            .oneshot(Request::from_parts(parts, body))
            .await
            .expect("infallible");
        if cookies.is_none() {
            for set in res.headers().get_all(header::SET_COOKIE) {
                let set = set.to_str().expect("ascii");
                let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
                let (name, value) = pair.split_once('=').expect("name=value");
                if attrs.contains("Max-Age=0") || value.is_empty() {
                    self.jar.remove(name);
                } else {
                    self.jar.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        Answer {
            status,
            location,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = Request::get(path).body(Body::empty()).expect("request");
        self.send(req, None).await
    }

    /// A GET carrying only the session cookie `id` (an old one, say).
    async fn get_as(&mut self, path: &str, session_id: &str) -> Answer {
        let req = Request::get(path).body(Body::empty()).expect("request");
        self.send(req, Some(&format!("id={session_id}"))).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.post_from("http://127.0.0.1", path, fields).await
    }

    /// A POST from a page of `origin` (the browser's `Origin` header).
    async fn post_from(&mut self, origin: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, NON_ALPHANUMERIC),
                    utf8_percent_encode(v, NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, origin)
            .body(Body::from(body))
            .expect("request");
        self.send(req, None).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Answer {
        self.post("/login", &[("username", user), ("password", password)])
            .await
    }
}

/// TOTP codes from the real clock, never the same step twice.
struct Phone {
    secret: Secret,
    last_step: Option<u64>,
}

impl Phone {
    fn from_key(key: &str) -> Self {
        Phone {
            secret: Secret::from_base32(&key.replace(' ', "")).expect("a base32 key"),
            last_step: None,
        }
    }
    /// A code for the earliest step the server still accepts and has not seen: the current
    /// one, or the next (within the ±1 window).
    fn code(&mut self) -> String {
        let now = twofactor::clock::SystemClock.now();
        let step = (now / 30).max(self.last_step.map_or(0, |s| s + 1));
        assert!(
            step <= now / 30 + 1,
            "this test uses two codes per 30 s at most"
        );
        self.last_step = Some(step);
        Totp::default()
            .generate(&self.secret, step * 30)
            .to_string()
    }
}

fn example_app(sessions: &MemoryStore) -> Router {
    example::app(sessions.clone()).expect("the example's app")
}

/// Logs alice in for the first time: forced set-up. Returns her phone and recovery codes.
async fn first_login(b: &mut Browser) -> (Phone, Vec<String>) {
    let r = b.login("alice", "correct horse").await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (StatusCode::SEE_OTHER, "/2fa/setup")
    );
    let page = b.get("/2fa/setup").await;
    assert_eq!(page.status, StatusCode::OK);
    let key = page
        .between("id=manual-key class=key>", "<")
        .expect("the manual key");
    let mut phone = Phone::from_key(&key);
    let done = b
        .post(
            "/2fa/setup",
            &[("csrf", &page.csrf()), ("code", &phone.code())],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let codes = done.recovery_codes();
    assert_eq!(codes.len(), 10);
    (phone, codes)
}

async fn session_data(store: &MemoryStore, id: &str) -> HashMap<String, serde_json::Value> {
    let id = Id::from_str(id).expect("a session id");
    store
        .load(&id)
        .await
        .expect("store")
        .map(|r| r.data)
        .unwrap_or_default()
}

async fn set_session_value(store: &MemoryStore, id: &str, key: &str, value: &str) {
    let id = Id::from_str(id).expect("a session id");
    let mut record = store.load(&id).await.expect("store").expect("a session");
    record.data.insert(key.to_owned(), value.into());
    store.save(&record).await.expect("save");
}

/// Flips one hex digit in the payload of a sealed token.
fn edit_token(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).expect("ascii")
}

#[tokio::test]
async fn the_session_id_changes_at_every_privilege_change() -> TestResult {
    let store = MemoryStore::default();
    let mut b = Browser::new(example_app(&store));

    // A visitor has a session before the password: the guard keeps where to come back.
    let r = b.get("/settings").await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
    let visitor = b.session_id();

    // 1. The password is right: the login ticket is stored under a new id.
    let r = b.login("alice", "correct horse").await;
    assert_eq!(r.location, "/2fa/setup");
    let ticket_session = b.session_id();
    assert_ne!(
        ticket_session, visitor,
        "the id changes when the ticket is stored"
    );
    let data = session_data(&store, &ticket_session).await;
    assert!(data.contains_key("twofactor.ticket"));
    assert_eq!(data.get("twofactor.next"), Some(&"/settings".into()));
    assert!(
        session_data(&store, &visitor).await.is_empty(),
        "the old record is gone"
    );
    let old = b.get_as("/2fa/setup", &visitor).await;
    assert_eq!(
        old.location, "/login",
        "the visitor's id does not reach the set-up"
    );

    // 2. Forced set-up completes the login: another new id.
    let page = b.get("/2fa/setup").await;
    let key = page.between("id=manual-key class=key>", "<").expect("key");
    let mut phone = Phone::from_key(&key);
    let done = b
        .post(
            "/2fa/setup",
            &[("csrf", &page.csrf()), ("code", &phone.code())],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    let recovery = done.recovery_codes();
    assert!(
        done.body.contains("id=continue href=\"/settings\""),
        "back to the page asked for"
    );
    let logged_in = b.session_id();
    assert_ne!(
        logged_in, ticket_session,
        "the id changes when the login completes"
    );
    assert_eq!(b.get("/").await.status, StatusCode::OK);
    let old = b.get_as("/", &ticket_session).await;
    assert_eq!(old.location, "/login", "the ticket's id is not logged in");
    let old = b.get_as("/2fa/setup", &ticket_session).await;
    assert_eq!(
        old.location, "/login",
        "nor does it hold the ticket any more"
    );

    // 3. A second-step login: ticket (new id), code (new id), each old id dead.
    b.post("/logout", &[]).await;
    let r = b.login("alice", "correct horse").await;
    assert_eq!(r.location, "/2fa");
    let ticket_session = b.session_id();
    assert_ne!(ticket_session, logged_in);
    let page = b.get("/2fa").await;
    assert!(page.body.contains("recovery code"));
    let r = b
        .post(
            "/2fa",
            &[
                ("csrf", &page.csrf()),
                ("code", &phone.code()),
                ("remember", "on"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (StatusCode::SEE_OTHER, "/")
    );
    let after_code = b.session_id();
    assert_ne!(
        after_code, ticket_session,
        "the id changes when the code completes the login"
    );
    assert_eq!(b.get_as("/", &ticket_session).await.location, "/login");
    let device = b
        .jar
        .keys()
        .find(|k| k.starts_with("__Host-2fa-device-"))
        .cloned()
        .expect("the trusted-device cookie");
    let set_cookie = r.header("set-cookie").unwrap_or_default();
    assert!(
        set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );

    // 4. The remembered device logs in without a code (and without a proof); the step-up
    // guard then asks for one, and proving it cycles the id again.
    b.post("/logout", &[]).await;
    assert!(b.jar.contains_key(&device));
    let r = b.login("alice", "correct horse").await;
    assert_eq!(r.location, "/", "granted by the remembered device");
    let granted = b.session_id();
    let r = b.get("/settings").await;
    assert_eq!(r.location, "/2fa/step-up?next=%2Fsettings");
    let page = b.get(&r.location).await;
    assert!(page.body.contains("name=next value=\"/settings\""));
    let r = b
        .post(
            "/2fa/step-up",
            &[
                ("csrf", &page.csrf()),
                ("code", &recovery[0]),
                ("next", "/settings"),
            ],
        )
        .await;
    assert_eq!(r.location, "/settings");
    let stepped_up = b.session_id();
    assert_ne!(stepped_up, granted, "the id changes at step-up");
    assert_eq!(b.get("/settings").await.status, StatusCode::OK);
    assert_eq!(b.get_as("/settings", &granted).await.location, "/login");
    Ok(())
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() -> TestResult {
    let store = MemoryStore::default();
    let mut b = Browser::new(example_app(&store));
    b.login("alice", "correct horse").await;
    let page = b.get("/2fa/setup").await;
    let key = page.between("id=manual-key class=key>", "<").expect("key");
    let mut phone = Phone::from_key(&key);
    let code = phone.code();
    let ticket_session = b.session_id();
    for token in [None, Some("0".repeat(64)), Some(String::new())] {
        let mut fields = vec![("code", code.as_str())];
        if let Some(t) = &token {
            fields.push(("csrf", t));
        }
        let r = b.post("/2fa/setup", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(r.body.contains("This form has expired"));
        assert_eq!(b.session_id(), ticket_session, "nothing changed");
    }
    // The same code still works: it was never checked.
    let done = b
        .post("/2fa/setup", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::OK);

    // Logged in: account actions without a valid token are refused and do nothing.
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("id=tfa-on"));
    for (path, fields) in [
        ("/2fa/account/disable", vec![("code", "123456")]),
        ("/2fa/account/recovery-codes", vec![("csrf", "forged")]),
        ("/2fa/account/devices/revoke-all", vec![]),
        ("/2fa/account/reauthenticate", vec![("csrf", "x")]),
        ("/2fa/step-up", vec![("code", "123456"), ("next", "/")]),
    ] {
        let r = b.post(path, &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("id=tfa-on"), "still on");
    assert!(
        account.body.contains("10 recovery codes left"),
        "the same codes"
    );
    assert_eq!(b.get("/").await.status, StatusCode::OK, "still logged in");
    Ok(())
}

#[tokio::test]
async fn an_edited_or_foreign_ticket_and_a_forged_proof_are_refused() -> TestResult {
    let store = MemoryStore::default();
    let mut b = Browser::new(example_app(&store));
    let (mut phone, recovery) = first_login(&mut b).await;
    b.post("/logout", &[]).await;

    // An edited ticket in the session store: refused before the code is looked at. The edit
    // makes alice a superuser (hex digit 25 is the low nibble of the principal's superuser
    // byte, after the version, the kind, "alice", no roles and no tenant): a claim, not a
    // time (an edited time moves with the clock, and a ticket issued in the future is sent
    // back to the password before any form, which made the test depend on the day).
    b.login("alice", "correct horse").await;
    let sid = b.session_id();
    let ticket = session_data(&store, &sid).await["twofactor.ticket"]
        .as_str()
        .expect("the ticket")
        .to_owned();
    assert_eq!(&ticket[..26], "01010005616c69636500000000", "{ticket}");
    set_session_value(&store, &sid, "twofactor.ticket", &edit_token(&ticket, 25)).await;
    let page = b.get("/2fa").await;
    let code = phone.code();
    let r = b
        .post("/2fa", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("Your login has expired"));
    assert_eq!(b.get("/").await.location, "/login", "not logged in");
    assert!(
        !session_data(&store, &b.session_id())
            .await
            .contains_key("twofactor.ticket"),
        "the edited ticket is dropped"
    );
    // Nothing was counted or used: the same code logs in with a real ticket.
    b.login("alice", "correct horse").await;
    let page = b.get("/2fa").await;
    let r = b
        .post("/2fa", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    assert_eq!(r.location, "/", "{}", r.body);
    b.post("/logout", &[]).await;

    // A ticket sealed by another deployment (another key), for the same user and step.
    let other = TwoFactor::builder(TfStore::new())
        .mailer(RecordingMailer::new())
        .keys(test_keys())
        .policy(RequiredForAll::default())
        .build();
    let foreign = other
        .start_login(&Principal::new("alice"), None, &LoginContext::new())
        .await?
        .into_pending()
        .expect("a ticket");
    b.login("alice", "correct horse").await;
    let sid = b.session_id();
    // Put it where this login's ticket was (a set-up ticket: the set-up page checks it).
    set_session_value(&store, &sid, "twofactor.ticket", foreign.as_str()).await;
    let page = b.get("/2fa/setup").await;
    assert_eq!(page.status, StatusCode::OK);
    let r = b
        .post("/2fa/setup", &[("csrf", &page.csrf()), ("code", "123456")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(b.get("/").await.location, "/login");

    // A forged proof: sealed by the other deployment for alice, fresh. The step-up guard
    // and the account's sensitive calls refuse it.
    let app_started = other
        .start_enrollment(
            &Principal::new("alice"),
            "alice",
            twofactor::Reauthenticated::at(twofactor::clock::SystemClock.now()),
        )
        .await?;
    let other_secret = twofactor::KeyUri::parse(app_started.uri())?.into_secret();
    let now = twofactor::clock::SystemClock.now();
    other
        .finish_enrollment(
            &"alice".into(),
            &Totp::default().generate(&other_secret, now).to_string(),
        )
        .await?;
    let forged = other
        .verify_second_factor(
            &"alice".into(),
            twofactor::Factor::Totp(
                &Totp::default()
                    .generate(&other_secret, now + 30)
                    .to_string(),
            ),
            &LoginContext::new(),
        )
        .await?;
    // Log in with a recovery code (the login's own proof), then put the forged proof in its
    // place.
    b.login("alice", "correct horse").await;
    let page = b.get("/2fa").await;
    let r = b
        .post("/2fa", &[("csrf", &page.csrf()), ("code", &recovery[0])])
        .await;
    assert_eq!(
        r.location, "/2fa/account",
        "a recovery code leads to the account page"
    );
    let sid = b.session_id();
    assert_eq!(
        b.get("/settings").await.status,
        StatusCode::OK,
        "the real proof passes"
    );
    set_session_value(&store, &sid, "twofactor.proof", forged.as_str()).await;
    let r = b.get("/settings").await;
    assert_eq!(
        r.location, "/2fa/step-up?next=%2Fsettings",
        "the forged proof is refused"
    );
    set_session_value(&store, &sid, "twofactor.proof", forged.as_str()).await;
    let account = b.get("/2fa/account").await;
    assert!(
        !account.body.contains("name=code autocomplete"),
        "the page believes the claims (display only)"
    );
    let r = b
        .post("/2fa/account/recovery-codes", &[("csrf", &account.csrf())])
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the call checks the seal: {}",
        r.body
    );
    assert!(r.body.contains("no longer valid"));
    // An edited real proof is refused too.
    let page = b.get("/2fa/step-up?next=/settings").await;
    b.post(
        "/2fa/step-up",
        &[
            ("csrf", &page.csrf()),
            ("code", &recovery[1]),
            ("next", "/settings"),
        ],
    )
    .await;
    let sid = b.session_id();
    let real = session_data(&store, &sid).await["twofactor.proof"]
        .as_str()
        .expect("a proof")
        .to_owned();
    assert_eq!(b.get("/settings").await.status, StatusCode::OK);
    set_session_value(&store, &sid, "twofactor.proof", &edit_token(&real, 30)).await;
    assert_eq!(
        b.get("/settings").await.location,
        "/2fa/step-up?next=%2Fsettings"
    );
    Ok(())
}

#[tokio::test]
async fn no_store_on_secret_pages_and_no_open_redirect() -> TestResult {
    let store = MemoryStore::default();
    let mut b = Browser::new(example_app(&store));
    b.login("alice", "correct horse").await;
    let setup = b.get("/2fa/setup").await;
    assert_eq!(setup.header("cache-control"), Some("no-store"));
    assert_eq!(setup.header("x-frame-options"), Some("DENY"));
    assert!(setup.body.contains("<svg"), "the QR code is inline SVG");
    // A reload resumes the set-up: the same key.
    let again = b.get("/2fa/setup").await;
    let key = setup.between("id=manual-key class=key>", "<").expect("key");
    assert_eq!(
        again.between("id=manual-key class=key>", "<"),
        Some(key.clone())
    );
    let mut phone = Phone::from_key(&key);
    let codes = b
        .post(
            "/2fa/setup",
            &[("csrf", &again.csrf()), ("code", &phone.code())],
        )
        .await;
    assert_eq!(codes.header("cache-control"), Some("no-store"));
    assert_eq!(codes.recovery_codes().len(), 10);

    // `next` leaves the site: never followed.
    for evil in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "http:evil.example",
    ] {
        let q = utf8_percent_encode(evil, NON_ALPHANUMERIC).to_string();
        let page = b.get(&format!("/2fa/step-up?next={q}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains("name=next value=\"/2fa/account\""),
            "{evil}: {}",
            page.body
        );
    }
    let page = b.get("/2fa/step-up?next=%2F").await;
    let r = b
        .post(
            "/2fa/step-up",
            &[
                ("csrf", &page.csrf()),
                ("code", &phone.code()),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(
        r.location, "/2fa/account",
        "a bad next falls back to the account page"
    );
    Ok(())
}

#[tokio::test]
async fn the_account_page_makes_codes_revokes_devices_and_refuses_a_required_disable() -> TestResult
{
    let store = MemoryStore::default();
    let mut b = Browser::new(example_app(&store));
    let (_phone, recovery) = first_login(&mut b).await;
    let account = b.get("/2fa/account").await;
    assert!(
        account.body.contains("Your organisation requires it"),
        "status_for: required"
    );
    assert!(
        !account.body.contains("id=disable"),
        "no turning off where it is required"
    );
    // The proof from set-up is fresh: new recovery codes without typing a code.
    let codes = b
        .post("/2fa/account/recovery-codes", &[("csrf", &account.csrf())])
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    assert_eq!(codes.header("cache-control"), Some("no-store"));
    let fresh = codes.recovery_codes();
    assert_ne!(fresh, recovery);
    // A required disable, forced by hand: refused.
    let r = b
        .post(
            "/2fa/account/disable",
            &[("csrf", &account.csrf()), ("code", "000000")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("cannot be turned off"));

    // A second login with "remember": the device is listed, then revoked.
    b.post("/logout", &[]).await;
    b.login("alice", "correct horse").await;
    let page = b.get("/2fa").await;
    b.post(
        "/2fa",
        &[
            ("csrf", &page.csrf()),
            ("code", &fresh[0]),
            ("remember", "on"),
        ],
    )
    .await;
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("You used a recovery code: 9 left"));
    assert!(account.body.contains("Chrome on Linux"), "{}", account.body);
    let device = account
        .between("name=device value=\"", "\"")
        .expect("a device id");
    let r = b
        .post(
            "/2fa/account/devices/revoke",
            &[("csrf", &account.csrf()), ("device", &device)],
        )
        .await;
    assert_eq!(r.location, "/2fa/account");
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("The device was revoked"));
    assert!(account.body.contains("No device skips the code"));
    // The revoked device's cookie is deleted at its next login, which asks for a code.
    b.post("/logout", &[]).await;
    let r = b.login("alice", "correct horse").await;
    assert_eq!(r.location, "/2fa");
    assert!(
        r.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "the refused device cookie is deleted"
    );
    Ok(())
}

#[tokio::test]
async fn no_trusted_device_where_the_browser_would_drop_its_cookie() -> TestResult {
    let store = MemoryStore::default();
    let mut b = Browser::new(example_app(&store));
    let (mut phone, recovery) = first_login(&mut b).await;
    b.post("/logout", &[]).await;
    // Plain HTTP on a name that is not loopback: a `Secure` (`__Host-`) cookie would be
    // dropped by the browser, so none is made, and the user is told.
    b.login("alice", "correct horse").await;
    let page = b.get("/2fa").await;
    let r = b
        .post_from(
            "http://intranet.example:3000",
            "/2fa",
            &[
                ("csrf", &page.csrf()),
                ("code", &recovery[0]),
                ("remember", "on"),
            ],
        )
        .await;
    assert_eq!(
        r.location, "/2fa/account",
        "a recovery code leads to the account page"
    );
    assert!(
        !b.jar.keys().any(|k| k.starts_with("__Host-")),
        "no device cookie"
    );
    let account = b.get("/2fa/account").await;
    assert!(
        account.body.contains("This device was not remembered"),
        "{}",
        account.body
    );
    assert!(
        account.body.contains("No device skips the code"),
        "nothing stored either"
    );
    b.post("/logout", &[]).await;
    // With a code from the app (no recovery notice), a page says it before going on to the
    // host's page, which would not.
    b.login("alice", "correct horse").await;
    let page = b.get("/2fa").await;
    let r = b
        .post_from(
            "http://192.0.2.7",
            "/2fa",
            &[
                ("csrf", &page.csrf()),
                ("code", &phone.code()),
                ("remember", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("This device was not remembered"));
    assert!(r.body.contains("id=next href=\"/\""), "{}", r.body);
    assert!(!b.jar.keys().any(|k| k.starts_with("__Host-")));
    assert_eq!(b.get("/").await.status, StatusCode::OK, "logged in");
    // Over HTTPS (or on a loopback name) the device is remembered.
    b.post("/logout", &[]).await;
    b.login("alice", "correct horse").await;
    let page = b.get("/2fa").await;
    b.post_from(
        "https://app.example",
        "/2fa",
        &[
            ("csrf", &page.csrf()),
            ("code", &recovery[2]),
            ("remember", "on"),
        ],
    )
    .await;
    assert!(b.jar.keys().any(|k| k.starts_with("__Host-2fa-device-")));
    Ok(())
}

/// The router of the test's own hosts: a home page, a login that takes any user name (the
/// form's `username=`), and the 2FA layer `tfa`.
fn own_router(tfa: TwoFactorWeb) -> Router {
    async fn login(tfa: Login, body: String) -> Response {
        let user = body.strip_prefix("username=").unwrap_or("").to_owned();
        tfa.password_checked(Principal::new(user)).await
    }
    Router::new()
        .route("/", axum::routing::get(|| async { "home" }))
        .route("/login", axum::routing::post(login))
        .merge(tfa.router())
        .layer(tfa.layer())
        .layer(tower_sessions::SessionManagerLayer::new(
            MemoryStore::default(),
        ))
}

/// A host of the test's own: mailed codes for the unenrolled, a manual clock.
fn mailed_app<M: twofactor::mail::Mailer + 'static>(mailer: M, clock: Arc<ManualClock>) -> Router {
    let tf = TwoFactor::builder(TfStore::new())
        .mailer(mailer)
        .keys(test_keys())
        .policy(RequiredForAll::new(WhenUnenrolled::MailCode))
        .clock(clock)
        .build();
    own_router(TwoFactorWeb::new(tf, |user| async move {
        Some(Principal::new(user))
    }))
}

#[tokio::test]
async fn mailed_codes_with_resend_and_the_throttles_wait() -> TestResult {
    let mailer = Arc::new(RecordingMailer::new());
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let mut b = Browser::new(mailed_app(mailer.clone(), clock.clone()));
    let paul = twofactor::UserId::new("paul");

    let r = b.post("/login", &[("username", "paul")]).await;
    assert_eq!(r.location, "/2fa");
    let page = b.get("/2fa").await;
    assert!(page.body.contains("We sent a login code"), "{}", page.body);
    assert!(page.body.contains("id=resend"));
    assert!(!page.body.contains("id=remember"));
    let first = mailer.last_login_code_for(&paul).expect("a mailed code");
    let r = b.post("/2fa/resend", &[("csrf", &page.csrf())]).await;
    assert_eq!(r.location, "/2fa");
    let page = b.get("/2fa").await;
    assert!(page.body.contains("A new code was mailed"));
    let second = mailer.last_login_code_for(&paul).expect("a new code");
    assert_eq!(mailer.sent_to(&paul).len(), 2);
    let _ = first;
    let r = b
        .post("/2fa", &[("csrf", &page.csrf()), ("code", &second)])
        .await;
    assert_eq!(r.location, "/", "{}", r.body);

    // Wrong codes until the throttle answers 429 with Retry-After, on the same page.
    b.post("/logout", &[]).await;
    let mut b = Browser::new(mailed_app(mailer.clone(), clock.clone()));
    let _ = b.post("/login", &[("username", "gus")]).await;
    let page = b.get("/2fa").await;
    let mut last = None;
    for _ in 0..6 {
        let r = b
            .post("/2fa", &[("csrf", &page.csrf()), ("code", "000000")])
            .await;
        last = Some(r);
    }
    let last = last.expect("answers");
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{}", last.body);
    let wait: u64 = last.header("retry-after").expect("Retry-After").parse()?;
    assert!(wait > 0 && wait <= 3_600, "{wait}");
    assert!(last.body.contains("Too many attempts. Try again in"));
    assert!(last.body.contains("data-status=429"));
    Ok(())
}

/// A host of the test's own: 2FA for everyone (set up at first login), two recovery codes
/// per set, a manual clock.
fn two_codes_app(clock: Arc<ManualClock>) -> Router {
    let tf = TwoFactor::builder(TfStore::new())
        .mailer(RecordingMailer::new())
        .keys(test_keys())
        .clock(clock)
        .policy(RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled))
        .settings(
            twofactor::Settings::builder()
                .recovery_codes(2)
                .build()
                .expect("settings"),
        )
        .build();
    own_router(TwoFactorWeb::new(tf, |user| async move {
        Some(Principal::new(user))
    }))
}

/// Alice's first login under a policy that blocks until enrolled: the forced set-up, read
/// off the page and confirmed with the next step's code. Her phone, and the confirmation's
/// answer (the recovery codes).
async fn forced_setup(b: &mut Browser, clock: &ManualClock) -> (Phone, Answer) {
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.location, "/2fa/setup");
    let page = b.get("/2fa/setup").await;
    let key = page.between("id=manual-key class=key>", "<").expect("key");
    let phone = Phone::from_key(&key);
    let code = next_code(&phone, clock);
    let done = b
        .post("/2fa/setup", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    (phone, done)
}

/// A code of the next time step (the clock moves there).
fn next_code(phone: &Phone, clock: &ManualClock) -> String {
    clock.advance(30);
    Totp::default()
        .generate(&phone.secret, clock.now())
        .to_string()
}

/// The second step of a login in a new session: its answer.
async fn second_step(b: &mut Browser, code: &str, remember: bool) -> Answer {
    b.jar.remove("id");
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.location, "/2fa", "{}", r.body);
    let page = b.get("/2fa").await;
    let csrf = page.csrf();
    let mut fields = vec![("csrf", csrf.as_str()), ("code", code)];
    if remember {
        fields.push(("remember", "on"));
    }
    b.post("/2fa", &fields).await
}

/// Low and exhausted recovery codes through the web layer: a login with a recovery code
/// lands on the account page with the count; with none left every login (by code or by a
/// remembered device) lands there first, saying so, until new codes are made.
#[tokio::test]
async fn the_web_layer_sends_the_user_to_make_new_recovery_codes() -> TestResult {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let mut b = Browser::new(two_codes_app(clock.clone()));
    let (phone, done) = forced_setup(&mut b, &clock).await;
    // A code of the next time step.
    let code = || next_code(&phone, &clock);
    let codes = done.recovery_codes();
    assert_eq!(codes.len(), 2);

    // One left: the account page, with the count and the hint.
    let r = second_step(&mut b, &codes[0], false).await;
    assert_eq!(r.location, "/2fa/account", "{}", r.body);
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("You used a recovery code: 1 left"));
    assert!(account.body.contains("id=recovery-low"), "{}", account.body);
    assert!(account.body.contains("Few are left"));

    // None left: the account page, saying they must make new ones.
    let r = second_step(&mut b, &codes[1], false).await;
    assert_eq!(r.location, "/2fa/account");
    let account = b.get("/2fa/account").await;
    assert!(
        account
            .body
            .contains("You have no recovery codes left. Make new ones now"),
        "{}",
        account.body
    );
    assert!(
        account
            .body
            .contains("You have none left: make new ones now")
    );

    // A TOTP login, remembering the device: still the account page first.
    let r = second_step(&mut b, &code(), true).await;
    assert_eq!(r.location, "/2fa/account", "{}", r.body);
    assert!(b.jar.keys().any(|k| k.starts_with("__Host-2fa-device-")));
    // The remembered device skips the code, not the warning.
    b.jar.remove("id");
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.location, "/2fa/account", "{}", r.body);
    let account = b.get("/2fa/account").await;
    assert!(
        account
            .body
            .contains("You have no recovery codes left. Make new ones now")
    );

    // New codes (the page asks for a code: this login proved none) end it.
    let made = b
        .post(
            "/2fa/account/recovery-codes",
            &[("csrf", &account.csrf()), ("code", &code())],
        )
        .await;
    assert_eq!(made.recovery_codes().len(), 2, "{}", made.body);
    b.jar.remove("id");
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(
        r.location, "/",
        "the remembered device, with codes again: home"
    );
    Ok(())
}

// ----- what a host with its own pages and an administrator page needs -----

/// The service a host keeps a handle on (an `Arc`) while the web layer uses it too, with a
/// mailer chosen at run time (`DynMailer`).
type SharedService = TwoFactor<
    TfStore,
    twofactor::mail::DynMailer,
    RequiredForAll,
    Arc<ManualClock>,
    Arc<twofactor::testing::RecordingAudit>,
>;

#[derive(Clone)]
struct Host {
    tf: Arc<SharedService>,
    tfa: TwoFactorWeb,
}

/// The default pages in the host's frame, which names the logged-in user.
struct Framed;

impl twofactor::axum::Pages for Framed {
    fn layout(&self, c: &twofactor::axum::Common<'_>, body: &str) -> String {
        let user = c.user.map_or("-", |u| u.as_str());
        format!("<nav>[user: {user}]</nav>{body}")
    }
}

/// A host of the test's own: its own form (with the module's CSRF token) for an
/// administrator's action behind step-up, calling the service it shares with the web layer;
/// a page that names the half-logged-in user.
fn host_app(
    mailer: Arc<RecordingMailer>,
    clock: Arc<ManualClock>,
    audit: Arc<twofactor::testing::RecordingAudit>,
) -> Router {
    use axum::extract::State;
    use axum::routing::{get, post};
    use tower_sessions::Session;

    let tf: Arc<SharedService> = Arc::new(
        TwoFactor::builder(TfStore::new())
            .mailer(mailer as twofactor::mail::DynMailer)
            .keys(test_keys())
            .policy(RequiredForAll::default())
            .clock(clock)
            .audit(audit)
            .build(),
    );
    let tfa = TwoFactorWeb::builder(tf.clone(), |user| async move { Some(Principal::new(user)) })
        .pages(Framed)
        .build();
    async fn login(tfa: Login, body: String) -> Response {
        let user = body.strip_prefix("username=").unwrap_or("").to_owned();
        tfa.password_checked(Principal::new(user)).await
    }
    async fn whoami(State(h): State<Host>, session: Session) -> String {
        let pending = h.tfa.pending_user(&session).await;
        let user = h.tfa.logged_in_user(&session).await;
        let name = |u: Option<twofactor::UserId>| u.map_or("none".to_owned(), |u| u.to_string());
        format!("pending: {}, user: {}", name(pending), name(user))
    }
    async fn form(State(h): State<Host>, session: Session) -> String {
        let token = h.tfa.csrf_token(&session).await.unwrap_or_default();
        format!("<form method=post action=/invite><input name=csrf value=\"{token}\"></form>")
    }
    async fn invite(
        State(h): State<Host>,
        session: Session,
        axum::Form(f): axum::Form<HashMap<String, String>>,
    ) -> Response {
        let token = f.get("csrf").map_or("", String::as_str);
        if !h.tfa.verify_csrf(&session, token).await {
            return (StatusCode::FORBIDDEN, "forged").into_response();
        }
        let admin = h.tfa.logged_in_user(&session).await.expect("the guard");
        let bob = twofactor::UserId::new("bob");
        match h
            .tf
            .invite(&bob, &admin, "https://app.test/2fa/account")
            .await
        {
            Ok(()) => "invited".into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
    use axum::response::IntoResponse as _;
    let host = Host {
        tf,
        tfa: tfa.clone(),
    };
    let stepped_up = tfa.require_recent_2fa(std::time::Duration::from_secs(5 * 60));
    Router::new()
        .route("/invite", post(invite).route_layer(stepped_up))
        .route("/form", get(form))
        .route("/whoami", get(whoami))
        .route("/login", post(login))
        .merge(tfa.router())
        .layer(tfa.layer())
        .with_state(host)
        .layer(tower_sessions::SessionManagerLayer::new(
            MemoryStore::default(),
        ))
}

/// A POST from a page (`Referer`) of `host`, as a browser sends a form.
async fn post_form_from(
    b: &mut Browser,
    host: &str,
    referer: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Answer {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&");
    let req = Request::post(path)
        .header(header::HOST, host)
        .header(header::REFERER, referer)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    b.send(req, None).await
}

#[tokio::test]
async fn reloading_forced_setup_shows_the_same_key_and_records_nothing() -> TestResult {
    let audit = Arc::new(twofactor::testing::RecordingAudit::new());
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let app = host_app(Arc::new(RecordingMailer::new()), clock, audit.clone());
    let mut b = Browser::new(app);
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.location, "/2fa/setup", "the login POST starts the set-up");
    let count = |kind: fn(&twofactor::audit::AuditKind) -> bool| {
        audit.kinds().iter().filter(|k| kind(k)).count()
    };
    let started = |k: &twofactor::audit::AuditKind| {
        matches!(k, twofactor::audit::AuditKind::EnrollmentStarted { .. })
    };
    let resumed = |k: &twofactor::audit::AuditKind| {
        matches!(k, twofactor::audit::AuditKind::EnrollmentResumed { .. })
    };
    assert_eq!(count(started), 1);
    let mut keys = Vec::new();
    for _ in 0..3 {
        let page = b.get("/2fa/setup").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.header("cache-control"), Some("no-store"));
        keys.push(page.between("id=manual-key class=key>", "<").expect("key"));
    }
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "the same key: {keys:?}"
    );
    assert_eq!(count(started), 1, "no new set-up");
    assert_eq!(count(resumed), 0, "a reload is a read: no audit row");
    Ok(())
}

#[tokio::test]
async fn a_host_page_sees_the_half_logged_in_user_and_the_frame_the_logged_in_one() -> TestResult {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let audit = Arc::new(twofactor::testing::RecordingAudit::new());
    let app = host_app(Arc::new(RecordingMailer::new()), clock.clone(), audit);
    let mut b = Browser::new(app.clone());
    assert_eq!(b.get("/whoami").await.body, "pending: none, user: none");
    b.post("/login", &[("username", "alice")]).await;
    assert_eq!(b.get("/whoami").await.body, "pending: alice, user: none");
    let page = b.get("/2fa/setup").await;
    assert!(
        page.body.starts_with("<nav>[user: -]</nav>"),
        "{}",
        page.body
    );
    let key = page.between("id=manual-key class=key>", "<").expect("key");
    let secret = Secret::from_base32(&key.replace(' ', ""))?;
    let code = Totp::default().generate(&secret, clock.now()).to_string();
    let done = b
        .post("/2fa/setup", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    assert!(
        done.body.starts_with("<nav>[user: alice]</nav>"),
        "the frame names the logged-in user: {}",
        done.body
    );
    assert_eq!(b.get("/whoami").await.body, "pending: none, user: alice");

    // A ticket past its deadline names nobody.
    let mut late = Browser::new(app);
    late.post("/login", &[("username", "bob")]).await;
    assert_eq!(late.get("/whoami").await.body, "pending: bob, user: none");
    clock.advance(15 * 60);
    assert_eq!(late.get("/whoami").await.body, "pending: none, user: none");
    Ok(())
}

#[tokio::test]
async fn a_host_form_uses_the_csrf_token_and_a_post_returns_to_its_page_after_step_up() -> TestResult
{
    let mailer = Arc::new(RecordingMailer::new());
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let audit = Arc::new(twofactor::testing::RecordingAudit::new());
    let mut b = Browser::new(host_app(mailer.clone(), clock.clone(), audit));
    let bob = twofactor::UserId::new("bob");
    b.post("/login", &[("username", "alice")]).await;
    let page = b.get("/2fa/setup").await;
    let key = page.between("id=manual-key class=key>", "<").expect("key");
    let secret = Secret::from_base32(&key.replace(' ', ""))?;
    let code = Totp::default().generate(&secret, clock.now()).to_string();
    b.post("/2fa/setup", &[("csrf", &page.csrf()), ("code", &code)])
        .await;

    // The host's own form carries the module's token; a forged one is refused.
    let form = b.get("/form").await;
    let token = form.between("name=csrf value=\"", "\"").expect("a token");
    assert_eq!(token.len(), 64);
    let (host, page) = ("app.test", "http://app.test/form");
    for forged in ["", "forged", &"0".repeat(64)] {
        let r = post_form_from(&mut b, host, page, "/invite", &[("csrf", forged)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{forged:?}");
    }
    assert_eq!(mailer.count_for(&bob), 0, "nothing done");
    // The right token, with the set-up's fresh proof: done, through the shared service.
    let r = post_form_from(&mut b, host, page, "/invite", &[("csrf", &token)]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "invited"));
    assert_eq!(mailer.count_for(&bob), 1);

    // Six minutes on, the proof is stale: the POST is not carried out, and step-up leads back
    // to the page of its form; a foreign page's form leads to the account page instead.
    clock.advance(6 * 60);
    let r = post_form_from(&mut b, host, page, "/invite", &[("csrf", &token)]).await;
    assert_eq!(r.location, "/2fa/step-up?next=%2Fform");
    let r = post_form_from(
        &mut b,
        host,
        "http://evil.example/form",
        "/invite",
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(r.location, "/2fa/step-up?next=%2F2fa%2Faccount");
    assert_eq!(mailer.count_for(&bob), 1, "nothing done without step-up");
    // The guard sits on the POST handler only: a GET is still 405.
    assert_eq!(
        b.get("/invite").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // Step-up, then the form again: done.
    let step_up = b.get("/2fa/step-up?next=%2Fform").await;
    clock.advance(30);
    let code = Totp::default().generate(&secret, clock.now()).to_string();
    let r = b
        .post(
            "/2fa/step-up",
            &[
                ("csrf", &step_up.csrf()),
                ("code", &code),
                ("next", "/form"),
            ],
        )
        .await;
    assert_eq!(r.location, "/form");
    let token = b
        .get("/form")
        .await
        .between("name=csrf value=\"", "\"")
        .expect("a token");
    let r = post_form_from(&mut b, host, page, "/invite", &[("csrf", &token)]).await;
    assert_eq!(r.body, "invited");
    assert_eq!(mailer.count_for(&bob), 2);
    Ok(())
}

/// The mail server is down at login: the page says the code could not be sent and its
/// resend button works once the server is back; a code delivered earlier survives a resend
/// that fails.
#[tokio::test]
async fn a_code_that_could_not_be_sent_says_so_and_the_resend_button_works() -> TestResult {
    let mailer = Arc::new(FlakyMailer::default());
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let mut b = Browser::new(mailed_app(mailer.clone(), clock.clone()));
    let paul = twofactor::UserId::new("paul");

    mailer.set_down(true);
    let r = b.post("/login", &[("username", "paul")]).await;
    assert_eq!(r.location, "/2fa", "{}", r.body);
    let page = b.get("/2fa").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("We could not send the code"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=not-sent") && page.body.contains("id=resend"));
    assert!(!page.body.contains("We sent a login code"));
    // Still down: the resend says so, on the same page, and the ticket stays.
    clock.advance(30);
    let r = b.post("/2fa/resend", &[("csrf", &page.csrf())]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(
        r.body.contains("We could not send a new code"),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=resend"));
    assert!(mailer.inner().last_login_code_for(&paul).is_none());
    // Back up: the button mails a code, the page says so, and the code logs in.
    mailer.set_down(false);
    clock.advance(30);
    let page = b.get("/2fa").await;
    let r = b.post("/2fa/resend", &[("csrf", &page.csrf())]).await;
    assert_eq!(r.location, "/2fa", "{}", r.body);
    let page = b.get("/2fa").await;
    assert!(page.body.contains("A new code was mailed"), "{}", page.body);
    assert!(page.body.contains("We sent a login code"));
    assert!(!page.body.contains("id=not-sent"));
    let code = mailer.inner().last_login_code_for(&paul).expect("a code");
    let r = b
        .post("/2fa", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    assert_eq!(r.location, "/", "{}", r.body);

    // A code delivered at login survives a resend that fails.
    b.post("/logout", &[]).await;
    let mut b = Browser::new(mailed_app(mailer.clone(), clock.clone()));
    clock.advance(60);
    let _ = b.post("/login", &[("username", "paul")]).await;
    let delivered = mailer.inner().last_login_code_for(&paul).expect("a code");
    mailer.set_down(true);
    let page = b.get("/2fa").await;
    let r = b.post("/2fa/resend", &[("csrf", &page.csrf())]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.body
            .contains("Received a code from us earlier? It still works")
    );
    let page = b.get("/2fa").await;
    let r = b
        .post("/2fa", &[("csrf", &page.csrf()), ("code", &delivered)])
        .await;
    assert_eq!(r.location, "/", "{}", r.body);
    Ok(())
}

// ----- several authenticators and the session's claims -----

/// A host of the test's own with `policy` and a manual clock.
fn authn_app<P: twofactor::EnforcementPolicy + 'static>(
    clock: Arc<ManualClock>,
    policy: P,
) -> Router {
    let tf = TwoFactor::builder(TfStore::new())
        .mailer(RecordingMailer::new())
        .keys(test_keys())
        .clock(clock)
        .policy(policy)
        .build();
    own_router(TwoFactorWeb::new(tf, |user| async move {
        Some(Principal::new(user))
    }))
}

/// A phone on the manual clock: each code is of the next time step.
fn code_of(clock: &ManualClock, secret: &Secret) -> String {
    clock.advance(30);
    Totp::default().generate(secret, clock.now()).to_string()
}

/// The ids of the authenticators listed on the account page, in order.
fn authenticator_ids(page: &Answer) -> Vec<String> {
    page.body
        .split("<tr data-authenticator=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// A login in a new session with `code` (or none: a remembered device): where it went.
async fn fresh_login(b: &mut Browser, code: Option<&str>, remember: bool) -> Answer {
    match code {
        Some(code) => second_step(b, code, remember).await,
        None => {
            b.jar.remove("id");
            b.post("/login", &[("username", "alice")]).await
        }
    }
}

#[tokio::test]
async fn authenticators_are_added_renamed_and_removed_after_step_up() -> TestResult {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let mut b = Browser::new(authn_app(
        clock.clone(),
        RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled),
    ));
    // Forced set-up: the first authenticator.
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.location, "/2fa/setup");
    let page = b.get("/2fa/setup").await;
    let first = Phone::from_key(&page.between("id=manual-key class=key>", "<").expect("key"));
    b.post(
        "/2fa/setup",
        &[
            ("csrf", &page.csrf()),
            ("code", &code_of(&clock, &first.secret)),
        ],
    )
    .await;
    let account = b.get("/2fa/account").await;
    assert_eq!(authenticator_ids(&account).len(), 1, "{}", account.body);
    assert!(
        account
            .body
            .contains("<td class=label>Authenticator app</td>")
    );
    let claims = account
        .between("<p id=session-claims>", "</p>")
        .expect("the session's claims");
    assert!(
        claims.contains("password") && claims.contains("(otp)") && claims.contains("AAL2"),
        "{claims}"
    );
    assert!(claims.contains("2FA verified at"), "{claims}");

    // CSRF: refused without the token, and nothing started.
    let r = b
        .post("/2fa/account/authenticators/add", &[("label", "Spare")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post(
            "/2fa/account/authenticators/confirm",
            &[("code", &code_of(&clock, &first.secret))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Label errors, in words, on the account page.
    let csrf = account.csrf();
    for (label, says) in [
        ("   ", "Choose another name"),
        ("tab\there", "Choose another name"),
        (
            "authenticator APP",
            "already have an authenticator with that name",
        ),
    ] {
        let r = b
            .post(
                "/2fa/account/authenticators/add",
                &[("csrf", &csrf), ("label", label)],
            )
            .await;
        assert!(r.status.is_client_error(), "{label:?}: {}", r.status);
        assert!(r.body.contains(says), "{label:?}: {}", r.body);
        assert!(!r.body.contains("id=manual-key"), "nothing started");
    }

    // Add another (the set-up's proof is fresh): QR and key, no-store; a wrong code is
    // refused on a page that asks again; the new one's code confirms it.
    let add = b
        .post(
            "/2fa/account/authenticators/add",
            &[("csrf", &csrf), ("label", "Spare <phone>")],
        )
        .await;
    assert_eq!(add.status, StatusCode::OK, "{}", add.body);
    assert_eq!(add.header("cache-control"), Some("no-store"));
    assert!(add.body.contains("<svg"), "the QR code");
    assert!(
        add.body.contains("Spare &lt;phone&gt;"),
        "the label, escaped"
    );
    assert!(!add.body.contains("Spare <phone>"));
    let second = Phone::from_key(&add.between("id=manual-key class=key>", "<").expect("key"));
    let r = b
        .post(
            "/2fa/account/authenticators/confirm",
            &[
                ("csrf", &add.csrf()),
                ("code", &code_of(&clock, &first.secret)),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the old phone's code does not confirm the new one"
    );
    assert!(
        r.body
            .contains("Enter the 6-digit code the new authenticator shows")
    );
    let r = b
        .post(
            "/2fa/account/authenticators/confirm",
            &[
                ("csrf", &add.csrf()),
                ("code", &code_of(&clock, &second.secret)),
            ],
        )
        .await;
    assert_eq!(r.location, "/2fa/account", "{}", r.body);
    let account = b.get("/2fa/account").await;
    assert!(
        account.body.contains("Spare &lt;phone&gt; was added"),
        "{}",
        account.body
    );
    assert!(
        account
            .body
            .contains("<td class=label>Spare &lt;phone&gt;</td>")
    );
    assert!(
        !account.body.contains("Spare <phone>"),
        "the label is escaped everywhere"
    );
    let ids = authenticator_ids(&account);
    assert_eq!(ids.len(), 2);

    // Rename: CSRF first, then the label's rules, then done.
    let r = b
        .post(
            "/2fa/account/authenticators/rename",
            &[("authenticator", &ids[1]), ("label", "Backup")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post(
            "/2fa/account/authenticators/rename",
            &[
                ("csrf", &account.csrf()),
                ("authenticator", &ids[1]),
                ("label", "Authenticator App"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body
            .contains("already have an authenticator with that name")
    );
    let r = b
        .post(
            "/2fa/account/authenticators/rename",
            &[
                ("csrf", &account.csrf()),
                ("authenticator", &ids[1]),
                ("label", "Backup phone"),
            ],
        )
        .await;
    assert_eq!(r.location, "/2fa/account");
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("<td class=label>Backup phone</td>"));
    assert_eq!(authenticator_ids(&account), ids, "renaming keeps the id");

    // The second one's code logs in, and the claims name it; the first keeps working.
    let r = fresh_login(&mut b, Some(&code_of(&clock, &second.secret)), false).await;
    assert_eq!(r.location, "/", "{}", r.body);
    let account = b.get("/2fa/account").await;
    let claims = account
        .between("<p id=session-claims>", "</p>")
        .expect("claims");
    assert!(claims.contains("Backup phone"), "{claims}");
    let r = fresh_login(&mut b, Some(&code_of(&clock, &first.secret)), true).await;
    assert_eq!(r.location, "/", "{}", r.body);

    // A remembered device: AAL1, no proof. Removing takes a step-up first, and nothing is
    // removed before it.
    let r = fresh_login(&mut b, None, false).await;
    assert_eq!(r.location, "/", "the remembered device skips the code");
    let account = b.get("/2fa/account").await;
    let claims = account
        .between("<p id=session-claims>", "</p>")
        .expect("claims");
    assert!(
        claims.contains("remembered device") && claims.contains("AAL1"),
        "{claims}"
    );
    let r = b
        .post(
            "/2fa/account/authenticators/remove",
            &[("csrf", &account.csrf()), ("authenticator", &ids[1])],
        )
        .await;
    assert_eq!(r.location, "/2fa/step-up?next=%2F2fa%2Faccount");
    assert_eq!(authenticator_ids(&b.get("/2fa/account").await).len(), 2);
    let step_up = b.get(&r.location).await;
    let r = b
        .post(
            "/2fa/step-up",
            &[
                ("csrf", &step_up.csrf()),
                ("code", &code_of(&clock, &first.secret)),
                ("next", "/2fa/account"),
            ],
        )
        .await;
    assert_eq!(r.location, "/2fa/account");
    let account = b.get("/2fa/account").await;
    let claims = account
        .between("<p id=session-claims>", "</p>")
        .expect("claims");
    assert!(
        claims.contains("remembered device")
            && claims.contains("Authenticator app")
            && claims.contains("AAL2"),
        "the step-up merged into the session's claims: {claims}"
    );
    let r = b
        .post(
            "/2fa/account/authenticators/remove",
            &[("csrf", &account.csrf()), ("authenticator", &ids[1])],
        )
        .await;
    assert_eq!(r.location, "/2fa/account", "{}", r.body);
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("Backup phone was removed"));
    assert_eq!(authenticator_ids(&account), ids[..1]);
    // The last one, where 2FA is required: not offered, and refused by hand.
    assert!(!account.body.contains("id=remove-authenticator-1"));
    let r = b
        .post(
            "/2fa/account/authenticators/remove",
            &[("csrf", &account.csrf()), ("authenticator", &ids[0])],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("cannot be turned off"));
    assert_eq!(authenticator_ids(&b.get("/2fa/account").await), ids[..1]);

    // The removed one's code no longer logs in (on a browser that is not remembered).
    b.jar.retain(|k, _| !k.starts_with("__Host-2fa-device-"));
    let r = fresh_login(&mut b, Some(&code_of(&clock, &second.secret)), false).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn removing_the_last_authenticator_turns_2fa_off_and_claims_follow_the_session() -> TestResult
{
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let mut b = Browser::new(authn_app(clock.clone(), twofactor::Optional));
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.location, "/");
    let account = b.get("/2fa/account").await;
    let claims = account
        .between("<p id=session-claims>", "</p>")
        .expect("claims");
    assert!(
        claims.contains("password")
            && claims.contains("AAL1")
            && claims.contains("no second factor in this session"),
        "{claims}"
    );
    assert!(!account.body.contains("id=authenticators"), "none yet");
    let setup = b
        .post("/2fa/account/enable", &[("csrf", &account.csrf())])
        .await;
    let phone = Phone::from_key(&setup.between("id=manual-key class=key>", "<").expect("key"));
    b.post(
        "/2fa/account/confirm",
        &[
            ("csrf", &setup.csrf()),
            ("code", &code_of(&clock, &phone.secret)),
        ],
    )
    .await;
    let account = b.get("/2fa/account").await;
    let claims = account
        .between("<p id=session-claims>", "</p>")
        .expect("claims");
    assert!(
        claims.contains("AAL2"),
        "the set-up's code merged in: {claims}"
    );
    assert!(
        account
            .body
            .contains("removing it turns two-factor authentication off")
    );
    assert!(
        !account.body.contains("class=clock"),
        "no clock hint for a clock in step"
    );

    // A phone one step ahead, twice: the offset is learned, and the page says so.
    for _ in 0..2 {
        clock.advance(60);
        let ahead = Totp::default()
            .generate(&phone.secret, clock.now() + 30)
            .to_string();
        let r = second_step(&mut b, &ahead, false).await;
        assert_eq!(r.location, "/", "{}", r.body);
    }
    let account = b.get("/2fa/account").await;
    assert!(
        account
            .body
            .contains("(its clock is about 30 seconds ahead)"),
        "{}",
        account.body
    );
    let ids = authenticator_ids(&account);
    assert_eq!(ids.len(), 1);
    let r = b
        .post(
            "/2fa/account/authenticators/remove",
            &[("csrf", &account.csrf()), ("authenticator", &ids[0])],
        )
        .await;
    assert_eq!(r.location, "/2fa/account", "{}", r.body);
    let account = b.get("/2fa/account").await;
    assert!(account.body.contains("two-factor authentication is off"));
    assert!(account.body.contains("id=tfa-off"));
    // Logged out, the claims are gone with the login.
    b.post("/logout", &[]).await;
    let r = b.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.location, "/", "2FA is off: the password alone");
    Ok(())
}

/// A phishing-resistant policy and a user with only an authenticator app: the TOTP login is
/// let in to escalate, straight to the account page, which says a security key is required
/// and offers one (feature `webauthn`).
#[cfg(feature = "webauthn")]
#[tokio::test]
async fn a_user_who_needs_a_security_key_is_sent_to_add_one() -> TestResult {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let rp = twofactor::account::RelyingParty::new("localhost", "http://localhost:8080", "t")?;
    let tf = TwoFactor::builder(TfStore::new())
        .mailer(RecordingMailer::new())
        .keys(test_keys())
        .clock(clock.clone())
        .policy(|_: &Principal, _: &twofactor::EnrollmentStatus, _: u64| {
            twofactor::Requirement::PhishingResistant
        })
        .settings(twofactor::Settings::builder().security_keys(rp).build()?)
        .build();
    let mut b = Browser::new(own_router(TwoFactorWeb::new(tf, |user| async move {
        Some(Principal::new(user))
    })));
    // First login: blocked until enrolled, set up with an app. The login that set-up
    // completes is escalated too: after the recovery codes, the account page (on the
    // previous main it went on to the app, with nothing asking for a key).
    let (phone, done) = forced_setup(&mut b, &clock).await;
    assert!(
        done.body.contains("id=continue href=\"/2fa/account\""),
        "{}",
        done.body
    );
    // Said where the codes are, pointing to the account page (not "below": codes are).
    assert!(
        done.body
            .contains("requires a security key: add one on your account security page"),
        "{}",
        done.body
    );
    let code = || next_code(&phone, &clock);
    // Next login with the app's code: escalated to the account page.
    let r = second_step(&mut b, &code(), false).await;
    assert_eq!(r.location, "/2fa/account", "{}", r.body);
    let account = b.get("/2fa/account").await;
    // Once: the page's banner, not its banner and the notice that led there.
    assert_eq!(
        account.body.matches("requires a security key").count(),
        1,
        "{}",
        account.body
    );
    assert!(
        account.body.contains("id=needs-security-key"),
        "{}",
        account.body
    );
    assert!(account.body.contains("id=add-key"), "{}", account.body);
    Ok(())
}
