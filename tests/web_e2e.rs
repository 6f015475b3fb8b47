//! The web demo (examples/web, built on `twofactor::axum`) end to end in real headless
//! Chromium, driven over WebDriver.
//!
//! Needs `chromium` and `chromium-driver` (Debian); paths can be overridden with `CHROMIUM`
//! and `CHROMEDRIVER`. A missing browser FAILS the test: it never skips. Screenshots of the
//! key pages are saved under `target/screenshots/` on every run.
//!
//! The app runs in-process with a temporary database; its injected clock is moved forward by
//! one TOTP step where the story needs a fresh code, so the test never sleeps.

#![allow(missing_docs, dead_code)]

#[path = "../examples/web/app.rs"]
mod app;
#[path = "../examples/web/demo.rs"]
mod demo;
#[path = "../examples/web/pages.rs"]
mod pages;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;
use twofactor::{Clock, Secret, Totp};

/// `twofactor::axum`'s pages: the second step (a code, or the mailed code), forced set-up,
/// the account security page (where a login lands), step-up.
const SECOND_STEP: &str = "/2fa";
const SETUP: &str = "/2fa/setup";
const ACCOUNT: &str = "/2fa/account";
const STEP_UP: &str = "/2fa/step-up";

#[path = "support/browser.rs"]
mod browser_support;
use browser_support::{Page, TestResult, browser};

/// The test's view of the browser and the app.
struct T {
    page: Page,
    app: Arc<demo::App>,
    /// The administrator's (root's) authenticator, once enrolled.
    root: std::sync::Mutex<Option<Secret>>,
}

impl std::ops::Deref for T {
    type Target = Page;
    fn deref(&self) -> &Page {
        &self.page
    }
}

impl T {
    async fn logout(&self) -> TestResult {
        self.click("#logout").await?;
        assert_eq!(self.path().await?, "/login");
        Ok(())
    }
    async fn code(&self, secret: &Secret) -> String {
        Totp::default()
            .generate(secret, self.app.clock.now())
            .to_string()
    }
    /// Moves the app's clock to the next TOTP step (a fresh code).
    fn next_step(&self) {
        self.app.clock.advance(30);
    }
    /// Reads the manual key off the set-up page (under "Cannot scan it?") and confirms.
    async fn enroll_from_page(
        &self,
        shot: Option<&str>,
    ) -> Result<(Secret, Vec<String>), Box<dyn std::error::Error + Send + Sync>> {
        assert!(
            self.c.find(Locator::Css("#qr svg")).await.is_ok(),
            "the QR code is inline SVG"
        );
        self.toggle("summary").await?;
        let key = self.text("#manual-key").await?;
        assert_eq!(key.split(' ').count(), 8, "the key is shown grouped: {key}");
        if let Some(name) = shot {
            self.shot(name).await?;
        }
        let secret = Secret::from_base32(&key.replace(' ', ""))?;
        let code = self.code(&secret).await;
        self.fill("#code", &code).await?;
        self.click("#confirm").await?;
        let codes: Vec<String> = {
            let list = self
                .c
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css("#recovery-codes"))
                .await?;
            let mut out = Vec::new();
            for li in list.find_all(Locator::Css("li")).await? {
                out.push(li.text().await?);
            }
            out
        };
        assert_eq!(codes.len(), 10, "ten recovery codes shown once");
        Ok((secret, codes))
    }
    /// The newest login code mailed to `user`, read off the outbox page (which shows `user`
    /// their own mail only, as a person reads it).
    async fn mailed_code(
        &self,
        user: &str,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        self.go("/outbox").await?;
        self.only_own_mail(user).await?;
        let subject = self
            .text(&format!("#outbox tr.mail[data-user={user}] .subject"))
            .await?;
        assert_eq!(subject, "Your twofactor demo login code");
        let mail = self
            .text(&format!("#outbox tr.mail[data-user={user}] .body"))
            .await?;
        assert!(
            mail.contains("UTC") && !mail.contains("LoginCode"),
            "reads like mail: {mail}"
        );
        Ok(mail
            .split_whitespace()
            .skip_while(|w| *w != "is:")
            .nth(1)
            .unwrap_or_default()
            .to_owned())
    }
    /// The outbox page shows `user`'s mail and nobody else's, in words (no `Debug` text).
    async fn only_own_mail(&self, user: &str) -> TestResult {
        assert_eq!(self.path().await?, "/outbox");
        let rows = self.c.find_all(Locator::Css("#outbox tr.mail")).await?;
        assert!(!rows.is_empty(), "{user} has mail");
        for row in rows {
            assert_eq!(
                row.attr("data-user").await?.as_deref(),
                Some(user),
                "{user} sees only their own mail"
            );
        }
        let page = self.text("#outbox").await?;
        for raw in ["LoginCode {", "ProvisionedSecret", "Notice", "expires_at"] {
            assert!(!page.contains(raw), "no Debug text ({raw}) in the outbox");
        }
        Ok(())
    }
    /// The administrator logs in with a code (2FA on: the superuser exemption does not skip
    /// an enrolled user's code), so the session holds a fresh proof.
    async fn admin_login(&self) -> TestResult {
        let secret = self
            .root
            .lock()
            .map_err(|_| "poisoned")?
            .clone()
            .ok_or("root enrolled")?;
        self.login("root", demo::SEED_PASSWORD).await?;
        assert_eq!(self.path().await?, SECOND_STEP);
        self.next_step();
        self.fill("#code", &self.code(&secret).await).await?;
        self.click("#verify").await?;
        assert_eq!(self.path().await?, ACCOUNT);
        Ok(())
    }
    /// Answers the step-up page (where an administrator action without a fresh second
    /// factor was sent) with the administrator's next code: back to the administrator page.
    async fn step_up(&self) -> TestResult {
        let secret = self
            .root
            .lock()
            .map_err(|_| "poisoned")?
            .clone()
            .ok_or("root enrolled")?;
        assert_eq!(self.path().await?, STEP_UP);
        self.next_step();
        self.fill("#code", &self.code(&secret).await).await?;
        self.click("#verify").await?;
        assert_eq!(self.path().await?, "/admin", "back to the page of the form");
        Ok(())
    }
    /// Posts a form the page does not offer (a hand-made request, as an attacker or a
    /// bookmarklet would send it), with the session's CSRF token read off the page.
    async fn post_by_hand(&self, action: &str) -> TestResult {
        let old = self.c.find(Locator::Css("html")).await?;
        let script = "const f = document.createElement('form'); f.method = 'post'; \
             f.action = arguments[0]; const c = document.createElement('input'); \
             c.type = 'hidden'; c.name = 'csrf'; \
             c.value = document.querySelector('input[name=csrf]').value; f.appendChild(c); \
             document.body.appendChild(f); f.submit();";
        self.c
            .execute(script, vec![serde_json::Value::from(action)])
            .await?;
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("posting to {action} did not load a page").into())
    }
    /// How many audit rows of `kind` (the library's `AuditKind`, as JSON) the table holds.
    async fn audit_rows(
        &self,
        kind: &str,
    ) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
        self.app.tf.audit().flush().await;
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE event LIKE ?")
                .bind(format!("%\"kind\":\"{kind}\"%"))
                .fetch_one(&self.app.pool)
                .await?,
        )
    }
    /// The value of the demo's session cookie.
    async fn session_id(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self
            .c
            .get_named_cookie("demo_session")
            .await?
            .value()
            .to_owned())
    }
    async fn admin_policy(&self, scope: &str, unenrolled: &str) -> TestResult {
        self.go("/admin").await?;
        self.c
            .find(Locator::Css(&format!("#scope option[value={scope}]")))
            .await?
            .click()
            .await?;
        self.c
            .find(Locator::Css(&format!(
                "#unenrolled option[value={unenrolled}]"
            )))
            .await?
            .click()
            .await?;
        self.click("#save-policy").await?;
        assert!(self.text("#notice").await?.contains("Policy saved"));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_flow_in_chromium() -> TestResult {
    let dir = std::env::temp_dir().join(format!("twofactor-web-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (addr, app, _server) = app::serve(demo::Config::new(dir.join("demo.db"))).await?;
    let (c, _driver) = browser(&dir.join("profile"), "1100,1400").await?;
    let t = T {
        page: Page::new(c, format!("http://{addr}"), "")?,
        app,
        root: std::sync::Mutex::new(None),
    };
    let result = story(&t).await;
    if result.is_err() {
        let _ = t.shot("failure").await;
        eprintln!(
            "page at failure: {:?}",
            t.c.source()
                .await
                .map(|s| s.chars().take(3000).collect::<String>())
        );
    }
    let _ = t.c.clone().close().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn story(t: &T) -> TestResult {
    // Sign up and log in with the password (2FA optional by default).
    t.go("/signup").await?;
    t.fill("#username", "alice").await?;
    t.fill("#email", "alice@example.com").await?;
    t.fill("#password", "correct horse").await?;
    t.click("#signup").await?;
    assert!(t.text("#notice").await?.contains("Account created"));
    t.login("alice", "wrong password").await?;
    assert!(t.text("#notice").await?.contains("Wrong name or password"));
    t.shot("login").await?;
    t.login("alice", "correct horse").await?;
    assert_eq!(t.path().await?, ACCOUNT);

    // Enable 2FA (the password was just checked), read the manual key off the page, compute
    // the code.
    t.click("#enable").await?;
    let (secret, recovery) = t.enroll_from_page(Some("enroll")).await?;
    t.shot("recovery-codes").await?;
    t.click("#continue").await?;
    assert!(
        t.text("#recovery")
            .await?
            .contains("10 recovery codes left")
    );
    t.logout().await?;

    // Log in with a code. The session id changes when the login ticket is stored in the
    // session (after the password) and again when the login completes (fixation).
    t.next_step();
    t.go("/login").await?;
    let anonymous = t.session_id().await?;
    t.fill("#username", "alice").await?;
    t.fill("#password", "correct horse").await?;
    t.click("#login").await?;
    assert_eq!(t.path().await?, SECOND_STEP);
    let half = t.session_id().await?;
    assert_ne!(
        half, anonymous,
        "a new session id once the ticket is stored"
    );
    let used = t.code(&secret).await;
    t.fill("#code", &used).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    let logged_in = t.session_id().await?;
    assert_ne!(logged_in, half, "a new session id at login");

    // Several authenticators: the code just typed is a fresh proof, so "Add another
    // authenticator" opens the set-up of a spare phone at once (QR code, "Cannot scan it?"
    // key); the spare phone's first code confirms it. The session's claims are on the page.
    let claims = t.text("#session-claims").await?;
    assert!(
        claims.contains("password") && claims.contains("(otp)") && claims.contains("AAL2"),
        "{claims}"
    );
    t.fill("#new-authenticator-label", "Spare phone").await?;
    t.click("#add-authenticator").await?;
    assert!(
        t.c.find(Locator::Css("#qr svg")).await.is_ok(),
        "the QR code is inline SVG"
    );
    t.toggle("summary").await?;
    let spare = Secret::from_base32(&t.text("#manual-key").await?.replace(' ', ""))?;
    t.shot("add-authenticator").await?;
    t.fill("#code", &t.code(&spare).await).await?;
    t.click("#confirm").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    assert!(t.text("#notice").await?.contains("Spare phone was added"));
    let listed = t.text("#authenticators").await?;
    assert!(
        listed.contains("Authenticator app") && listed.contains("Spare phone"),
        "{listed}"
    );
    t.logout().await?;

    // The same code again: refused as invalid (replay).
    t.login("alice", "correct horse").await?;
    t.fill("#code", &used).await?;
    t.click("#verify").await?;
    assert!(t.text("#error").await?.contains("code is not valid"));
    t.shot("code-refused").await?;

    // Not a code at all (Factor::parse refuses it): a 400, the form again, nothing counted.
    t.fill("#code", "12345!").await?;
    t.click("#verify").await?;
    assert!(t.text("#error").await?.contains("That is not a code"));
    let status =
        t.c.find(Locator::Id("error"))
            .await?
            .attr("data-status")
            .await?;
    assert_eq!(status.as_deref(), Some("400"));

    // A fresh code, from the spare phone, and "don't ask again on this device". The claims
    // name the spare phone.
    t.next_step();
    t.fill("#code", &t.code(&spare).await).await?;
    t.toggle("#remember").await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    let claims = t.text("#session-claims").await?;
    assert!(
        claims.contains("Spare phone") && claims.contains("AAL2"),
        "{claims}"
    );
    assert!(
        t.text("#devices").await?.contains("Chrome on Linux"),
        "the trusted device is listed"
    );
    t.shot("account").await?;
    // The library's cookie, as it writes it: `__Host-` prefixed, Secure, HttpOnly. Chromium
    // keeps a Secure cookie from http://127.0.0.1 (a potentially trustworthy origin).
    let device = t.device_cookies().await?;
    assert_eq!(device.len(), 1, "one trusted-device cookie: {device:?}");
    assert_eq!(device[0].secure(), Some(true));
    assert_eq!(device[0].http_only(), Some(true));
    assert_eq!(device[0].path(), Some("/"));
    assert_eq!(device[0].value().len(), 64);
    t.logout().await?;

    // The trusted browser logs in without a code: straight from the password to the account
    // page.
    t.login("alice", "correct horse").await?;
    assert_eq!(
        t.path().await?,
        ACCOUNT,
        "no code asked on a trusted device"
    );
    assert!(t.c.find(Locator::Id("whoami")).await.is_ok());

    // A remembered device is no second factor: the session is AAL1, and removing the spare
    // phone takes a step-up first (with the first phone, which keeps working); the step-up
    // is merged into the session's claims, and the removal goes through.
    let claims = t.text("#session-claims").await?;
    assert!(
        claims.contains("remembered device") && claims.contains("AAL1"),
        "{claims}"
    );
    t.click("#remove-authenticator-2").await?;
    assert_eq!(t.path().await?, STEP_UP);
    t.next_step();
    t.fill("#code", &t.code(&secret).await).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    assert_eq!(t.text("#session-aal").await?, "AAL2");
    assert!(
        t.text("#authenticators").await?.contains("Spare phone"),
        "not removed before the step-up"
    );
    t.shot("account-authenticators").await?;
    t.click("#remove-authenticator-2").await?;
    assert!(t.text("#notice").await?.contains("Spare phone was removed"));
    assert!(!t.text("#authenticators").await?.contains("Spare phone"));

    // Revoke it: the code is asked again (and the refused cookie is deleted), and a recovery
    // code works once.
    t.click("#revoke-all").await?;
    assert!(t.text("#notice").await?.contains("1 device revoked"));
    t.logout().await?;
    assert_eq!(t.device_cookies().await?.len(), 1, "still in the browser");
    t.login("alice", "correct horse").await?;
    assert_eq!(t.path().await?, SECOND_STEP);
    assert!(
        t.device_cookies().await?.is_empty(),
        "the revoked device's cookie is deleted at the login it failed"
    );
    t.fill("#code", &recovery[0]).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    assert!(t.text("#notice").await?.contains("9 left"));
    t.logout().await?;
    t.login("alice", "correct horse").await?;
    t.fill("#code", &recovery[0]).await?;
    t.click("#verify").await?;
    assert!(
        t.text("#error").await?.contains("code is not valid"),
        "a recovery code works once"
    );

    // The administrator resets alice (lost phone): the password alone lets her in. An
    // administrator action takes a fresh second factor: root (exempt from the code at login)
    // has none, so is sent to the step-up page, which says to set up 2FA first.
    t.login("root", demo::SEED_PASSWORD).await?;
    assert_eq!(t.path().await?, ACCOUNT, "the superuser is exempt");
    t.go("/admin").await?;
    t.shot("admin").await?;
    t.click("#reset-alice").await?;
    assert_eq!(t.path().await?, STEP_UP);
    assert!(t.text("main").await?.contains("Turn it on first"));
    t.click("#account").await?;
    t.click("#enable").await?;
    let (root, _) = t.enroll_from_page(None).await?;
    *t.root.lock().map_err(|_| "poisoned")? = Some(root);
    t.click("#continue").await?;
    // The set-up's confirmed code is a fresh proof: the reset goes through.
    t.go("/admin").await?;
    t.click("#reset-alice").await?;
    assert_eq!(t.path().await?, "/admin");
    assert!(t.text("#notice").await?.contains("alice: reset"));
    t.logout().await?;
    t.login("alice", "correct horse").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    assert!(t.c.find(Locator::Id("tfa-off")).await.is_ok());
    t.logout().await?;

    // The policy switch: required for all users, set-up forced at the next login.
    t.admin_login().await?;
    t.admin_policy("all", "block").await?;
    t.logout().await?;
    t.login("alice", "correct horse").await?;
    assert_eq!(t.path().await?, SETUP);
    t.shot("forced-setup").await?;
    t.toggle("summary").await?;
    let scanned = t.text("#manual-key").await?;
    // A reload shows the same key: the set-up resumes, the QR code already scanned still
    // works; showing it again is a read (no audit row per reload).
    let started = t.audit_rows("enrollment_started").await?;
    for _ in 0..3 {
        t.go(SETUP).await?;
    }
    assert_eq!(t.audit_rows("enrollment_started").await?, started);
    assert_eq!(
        t.audit_rows("enrollment_resumed").await?,
        0,
        "a reload writes no audit row"
    );
    t.next_step();
    let (alice, _) = t.enroll_from_page(None).await?;
    assert_eq!(
        alice.to_base32(),
        Secret::from_base32(&scanned.replace(' ', ""))?.to_base32(),
        "the reloaded set-up page shows the key already scanned"
    );
    t.click("#continue").await?;
    assert_eq!(
        t.path().await?,
        ACCOUNT,
        "confirming the forced set-up completes the login"
    );
    t.logout().await?;

    // Mailed codes for the unenrolled: the code arrives in the outbox; resend works.
    t.admin_login().await?;
    t.admin_policy("all", "mail").await?;
    t.logout().await?;
    t.login("paul", demo::SEED_PASSWORD).await?;
    assert_eq!(t.path().await?, SECOND_STEP);
    assert!(t.text("main").await?.contains("We sent a login code"));
    t.click("#resend").await?;
    assert!(t.text("#notice").await?.contains("A new code was mailed"));
    let code = t.mailed_code("paul").await?;
    t.shot("outbox").await?;
    t.go(SECOND_STEP).await?;
    t.fill("#code", &code).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);

    // Under a mailed-code policy the password alone never enrolls an authenticator (it would
    // replace the mailed code): only a recent login with the mailed code does. Ten minutes
    // on, the account page asks to confirm the password, and that login asks for a mailed
    // code again before the set-up opens.
    t.app.clock.advance(11 * 60);
    t.go(ACCOUNT).await?;
    assert!(
        t.c.find(Locator::Id("enable")).await.is_err(),
        "no set-up on a stale login"
    );
    t.click("#reauthenticate").await?;
    assert_eq!(t.path().await?, "/login");
    t.login("paul", demo::SEED_PASSWORD).await?;
    assert_eq!(
        t.path().await?,
        SECOND_STEP,
        "the password alone is not enough"
    );
    let code = t.mailed_code("paul").await?;
    t.go(SECOND_STEP).await?;
    t.fill("#code", &code).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    t.click("#enable").await?;
    t.enroll_from_page(None).await?;
    t.click("#continue").await?;
    assert!(
        t.text("#recovery")
            .await?
            .contains("10 recovery codes left")
    );
    t.logout().await?;

    // The audit trail has the story, newest first.
    t.admin_login().await?;
    t.go("/audit").await?;
    let audit = t.text("#audit").await?;
    for kind in ["Login succeeded", "Enrolled", "Reset by admin"] {
        assert!(audit.contains(kind), "{kind} missing from the audit page");
    }
    for raw in ["login_succeeded", "{", "\"kind\""] {
        assert!(
            !audit.contains(raw),
            "{raw} on the audit page: in words only"
        );
    }
    assert!(audit.contains(" UTC"), "times read as dates");
    t.shot("audit").await?;

    // A stale proof: ten minutes later an administrator action goes through step-up first
    // (and nothing is done before it), then back to the administrator page, where it works.
    t.app.clock.advance(11 * 60);
    t.go("/admin").await?;
    t.click("#invite-gus").await?;
    assert_eq!(t.path().await?, STEP_UP);
    let gus_mail: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE user_id = 'gus'")
        .fetch_one(&t.app.pool)
        .await?;
    assert_eq!(gus_mail, 0, "nothing was done before the step-up");
    t.fill("#code", "000000").await?;
    t.click("#verify").await?;
    assert!(t.text("#error").await?.contains("code is not valid"));
    t.step_up().await?;
    t.click("#invite-gus").await?;
    assert!(t.text("#notice").await?.contains("gus: invited"));

    // Per-tenant switch (Onum): with 2FA required for all, ana (tenant acme) is sent to
    // set-up; once acme's owner switches it off, her password alone lets her in.
    t.admin_policy("all", "block").await?;
    t.logout().await?;
    t.login("ana", demo::SEED_PASSWORD).await?;
    assert_eq!(t.path().await?, SETUP);
    t.admin_login().await?;
    t.go("/admin").await?;
    t.toggle("#tenant_acme").await?;
    t.click("#save-policy").await?;
    assert!(t.text("#notice").await?.contains("Policy saved"));
    t.logout().await?;
    t.login("ana", demo::SEED_PASSWORD).await?;
    assert_eq!(t.path().await?, ACCOUNT, "2FA is off in tenant acme");
    t.logout().await?;

    // Throttling: five wrong codes, then a clear "try again in N minutes".
    t.login("alice", "correct horse").await?;
    assert_eq!(t.path().await?, SECOND_STEP);
    for _ in 0..5 {
        t.fill("#code", "000000").await?;
        t.click("#verify").await?;
        assert!(t.text("#error").await?.contains("code is not valid"));
    }
    t.fill("#code", &t.code(&alice).await).await?;
    t.click("#verify").await?;
    let throttled = t.text("#error").await?;
    assert!(
        throttled.contains("Too many attempts. Try again in"),
        "{throttled}"
    );
    let status =
        t.c.find(Locator::Id("error"))
            .await?
            .attr("data-status")
            .await?;
    assert_eq!(
        status.as_deref(),
        Some("429"),
        "answered with Error::http_status"
    );
    t.shot("throttled").await?;
    t.app.clock.advance(3_600);

    // An hour later the half-done login has expired; a fresh one is admitted again.
    t.fill("#code", &t.code(&alice).await).await?;
    t.click("#verify").await?;
    assert!(t.text("#error").await?.contains("Your login has expired"));
    t.login("alice", "correct horse").await?;

    // Account security: new phone (rotation), new recovery codes (the code just typed is a
    // fresh proof: no code asked again), then turning 2FA off.
    t.fill("#code", &t.code(&alice).await).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    t.click("#replace").await?;
    t.next_step();
    let (phone, _) = t.enroll_from_page(None).await?;
    t.click("#continue").await?;
    t.click("#regenerate").await?;
    assert_eq!(
        t.c.find_all(Locator::Css("#recovery-codes li"))
            .await?
            .len(),
        10
    );
    t.click("#continue").await?;
    // 2FA is required for all users: turning it off is not offered, and a hand-made request
    // is refused.
    assert!(
        t.text("#tfa-on")
            .await?
            .contains("Your organisation requires it")
    );
    assert!(t.c.find(Locator::Id("disable")).await.is_err());
    t.post_by_hand("/2fa/account/disable").await?;
    let refused = t.text("#error").await?;
    assert!(refused.contains("cannot be turned off"), "{refused}");
    assert!(t.c.find(Locator::Id("tfa-on")).await.is_ok());
    t.logout().await?;
    // Required for employees only (alice signed up as a portal user): she may turn it off.
    t.admin_login().await?;
    t.admin_policy("employees", "block").await?;
    t.logout().await?;
    t.next_step();
    t.login("alice", "correct horse").await?;
    t.fill("#code", &t.code(&phone).await).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, ACCOUNT);
    t.click("#disable").await?;
    assert!(
        t.text("#notice")
            .await?
            .contains("Two-factor authentication is off")
    );
    assert!(t.c.find(Locator::Id("tfa-off")).await.is_ok());
    t.logout().await?;

    // Invitation, and the dangerous provisioning by mail (Bista): the key arrives in the
    // outbox, and emma confirms it at her forced set-up.
    t.admin_login().await?;
    t.go("/admin").await?;
    t.click("#invite-gus").await?;
    assert!(t.text("#notice").await?.contains("gus: invited"));
    t.click("#provision-emma").await?;
    assert!(
        t.text("#notice")
            .await?
            .contains("emma: sent a key by mail")
    );
    t.go("/outbox").await?;
    assert!(
        t.text(".warn").await?.contains("everybody's mail"),
        "the administrator sees all mail"
    );
    let mail = t.text("#outbox tr.mail[data-user=emma] .body").await?;
    let key: String = mail
        .split("type this key in the app:")
        .nth(1)
        .ok_or("the key in the mail")?
        .split_whitespace()
        .take(8)
        .collect();
    let emma = Secret::from_base32(&key)?;
    t.logout().await?;
    t.login("emma", demo::SEED_PASSWORD).await?;
    assert_eq!(t.path().await?, SETUP);
    assert!(t.text("main").await?.contains("An administrator sent you"));
    t.fill("#code", &t.code(&emma).await).await?;
    t.click("#confirm").await?;
    assert_eq!(
        t.c.find_all(Locator::Css("#recovery-codes li"))
            .await?
            .len(),
        10
    );
    t.click("#continue").await?;
    assert_eq!(
        t.path().await?,
        ACCOUNT,
        "confirming the mailed key completes the login"
    );
    // emma's outbox: her provisioned key and notices only, nobody else's mail (not paul's
    // login codes, not alice's notices), dated, in words.
    t.go("/outbox").await?;
    t.only_own_mail("emma").await?;
    let mine = t.text("#outbox").await?;
    assert!(mine.contains("set up two-factor authentication for your twofactor demo account"));
    assert!(!mine.contains("login code"), "{mine}");
    t.shot("outbox-emma").await?;
    t.logout().await?;
    // Logged out, the outbox is the login page.
    t.go("/outbox").await?;
    assert_eq!(t.path().await?, "/login");
    Ok(())
}

/// One raw HTTP/1.1 request; returns the response head and body.
async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn cookies_are_http_only_same_site_and_forms_need_the_csrf_token() -> TestResult {
    let dir = std::env::temp_dir().join(format!("twofactor-web-headers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (addr, _app, _server) = app::serve(demo::Config::new(dir.join("demo.db"))).await?;

    let page = http(
        addr,
        "GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let cookie = page
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: demo_session=")
        })
        .ok_or("a session cookie")?;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let session = cookie["set-cookie: ".len()..]
        .split(';')
        .next()
        .ok_or("cookie")?;

    // A login POST without the session's CSRF token is refused before the password is looked at.
    let body = "username=root&password=demo-password&csrf=forged";
    let forged = http(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    let no_session = http(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(no_session.starts_with("HTTP/1.1 403"), "{no_session}");

    // The outbox is nobody's without a login.
    let outbox = http(
        addr,
        "GET /outbox HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(outbox.starts_with("HTTP/1.1 303"), "{outbox}");
    assert!(
        outbox.to_ascii_lowercase().contains("location: /login\r\n"),
        "{outbox}"
    );
    // Logging out is a POST with the CSRF token.
    let body = "csrf=forged";
    let forged = http(
        addr,
        &format!(
            "POST /logout HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    // Administrator pages need a login first (and then an administrator).
    let audit = http(
        addr,
        "GET /audit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(audit.starts_with("HTTP/1.1 303"), "{audit}");
    assert!(
        audit.to_ascii_lowercase().contains("location: /login\r\n"),
        "{audit}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Every GET route of the demo (checked by hand: each only reads and renders; the forced
/// set-up page shows a set-up the login POST started, a read), and every route that changes
/// state, which answers GET with 405: those are POSTs with the CSRF token. The `/2fa` routes
/// are `twofactor::axum`'s.
const GET_ROUTES: &[&str] = &[
    "/",
    "/signup",
    "/login",
    "/2fa",
    "/2fa/setup",
    "/2fa/account",
    "/2fa/step-up",
    "/admin",
    "/outbox",
    "/audit",
];
const POST_ONLY: &[&str] = &[
    "/logout",
    "/2fa/resend",
    "/2fa/setup/restart",
    "/2fa/account/enable",
    "/2fa/account/confirm",
    "/2fa/account/replace",
    "/2fa/account/recovery-codes",
    "/2fa/account/disable",
    "/2fa/account/devices/revoke",
    "/2fa/account/devices/revoke-all",
    "/2fa/account/reauthenticate",
    "/admin/policy",
    "/admin/user",
];

#[tokio::test]
async fn no_get_changes_state() -> TestResult {
    let dir = std::env::temp_dir().join(format!("twofactor-web-get-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (addr, _app, _server) = app::serve(demo::Config::new(dir.join("demo.db"))).await?;
    for path in POST_ONLY {
        let r = http(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405"), "GET {path}: {r}");
    }
    for path in GET_ROUTES {
        let r = http(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            !r.starts_with("HTTP/1.1 404") && !r.starts_with("HTTP/1.1 405"),
            "GET {path}: {r}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The demo's session cookie (`demo_session=...`) a response sets, if any.
fn session_cookie(response: &str) -> Option<String> {
    response
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: demo_session=")
        })
        .and_then(|l| l["set-cookie: ".len()..].split(';').next())
        .map(str::to_owned)
}

/// A form's CSRF token on a page.
fn csrf_on(page: &str) -> Option<String> {
    let from = page.find("name=csrf value=\"")? + "name=csrf value=\"".len();
    Some(page[from..].split('"').next()?.to_owned())
}

/// `--smtp HOST:PORT`: the demo sends its mail through a real SMTP server (aiosmtpd, started
/// here with `tests/support/smtp_sink.py`, which keeps what it receives), and a login with
/// the mailed code read back from that server completes; the outbox keeps nothing.
#[cfg(feature = "smtp")]
#[tokio::test]
async fn with_an_smtp_server_the_login_code_goes_out_by_mail() -> TestResult {
    use std::process::{Command, Stdio};

    let dir = std::env::temp_dir().join(format!("twofactor-web-smtp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mail_dir = dir.join("mail");
    std::fs::create_dir_all(&mail_dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    let mut server = Command::new("python3")
        .env("PYTHONPATH", &support)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "smtp_sink.Sink"])
        .arg(&mail_dir)
        .arg("deliver")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("python3 with aiosmtpd is needed (scripts/test installs it): {e}"))?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut listening = false;
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        if let Some(status) = server.try_wait()? {
            return Err(format!("aiosmtpd exited ({status}): pip install aiosmtpd").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _server = Kill(server);
    assert!(listening, "aiosmtpd listens on {port}");

    let mut config = demo::Config::new(dir.join("demo.db"));
    config.smtp = Some(demo::Smtp {
        host: "127.0.0.1".into(),
        port,
        tls: "plain".into(),
        login: None,
        from: "twofactor demo <no-reply@demo.example>".into(),
        ca: None,
    });
    let (addr, app, _web) = app::serve(config).await?;
    // The administrator's choice: mailed codes for everybody without an authenticator.
    {
        let mut policy = app.policy.write().map_err(|_| "poisoned")?;
        let new = demo::PolicyConfig {
            scope: demo::Scope::All,
            mail_code: true,
            ..demo::PolicyConfig::default()
        };
        demo::apply_policy(&app.tf, &policy, &new);
        *policy = new;
    }

    let get = |path: &str, session: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nConnection: close\r\n\r\n")
    };
    let post = |path: &str, session: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let page = http(addr, &get("/login", "")).await;
    let session = session_cookie(&page).ok_or("a session")?;
    let token = csrf_on(&page).ok_or("a CSRF token")?;
    let body = format!(
        "csrf={token}&username=paul&password={}",
        demo::SEED_PASSWORD
    );
    let r = http(addr, &post("/login", &session, &body)).await;
    assert!(r.starts_with("HTTP/1.1 303"), "{r}");
    assert!(r.to_ascii_lowercase().contains("location: /2fa\r\n"), "{r}");
    let session = session_cookie(&r).ok_or("a new session id with the ticket")?;

    // The server received the code, addressed to paul's e-mail address.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mail_dir.join("0001.json"))?)?;
    assert_eq!(summary["rcpt_tos"][0], "paul@demo.example");
    assert_eq!(
        summary["headers"]["subject"],
        "Your twofactor demo login code"
    );
    let text = summary["parts"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["content_type"] == "text/plain"))
        .and_then(|p| p["content"].as_str())
        .ok_or("a plain-text part")?;
    let code: String = text
        .split_whitespace()
        .skip_while(|w| *w != "is:")
        .nth(1)
        .ok_or("the code in the mail")?
        .to_owned();

    let page = http(addr, &get("/2fa", &session)).await;
    assert!(page.contains("We sent a login code"), "{page}");
    let token = csrf_on(&page).ok_or("a CSRF token")?;
    let r = http(
        addr,
        &post("/2fa", &session, &format!("csrf={token}&code={code}")),
    )
    .await;
    assert!(
        r.to_ascii_lowercase()
            .contains("location: /2fa/account\r\n"),
        "the mailed code completes the login: {r}"
    );
    let session = session_cookie(&r).ok_or("a new session id at login")?;
    let outbox = http(addr, &get("/outbox", &session)).await;
    assert!(outbox.contains("SMTP server at"), "{outbox}");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&app.pool)
        .await?;
    assert_eq!(kept, 0, "nothing kept in the outbox");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
