//! `examples/axum_minimal.rs` end to end in real headless Chromium, driven over WebDriver:
//! the first login's forced set-up (the key read off the page, the code computed here), the
//! recovery codes, the protected page; a second login with a code and "don't ask again on this
//! device"; a third login let in by the remembered device; the step-up page before the guarded
//! `/settings`; the account security page.
//!
//! Needs `chromium` and `chromium-driver` (Debian); paths can be overridden with `CHROMIUM`
//! and `CHROMEDRIVER`. A missing browser FAILS the test: it never skips. Screenshots are saved
//! under `target/screenshots/axum-*.png`.
//!
//! The example runs on the system clock: a code is computed for the next time step the
//! server has not seen, which may mean waiting up to 30 seconds once (at step-up).

#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../examples/axum_minimal.rs"]
mod example;

use fantoccini::Locator;
use twofactor::Secret;

#[path = "support/browser.rs"]
mod browser_support;
use browser_support::{Page, Phone, TestResult, browser};

/// The test's view of the browser.
type T = Page;

/// Alice's password login on the example's form.
async fn login(t: &T) -> TestResult {
    t.login("alice", "correct horse").await
}

/// Logs out: back at the login page.
async fn logout(t: &T) -> TestResult {
    t.click("#logout").await?;
    assert_eq!(t.path().await?, "/login");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimal_axum_app_gains_2fa_in_chromium() -> TestResult {
    let dir = std::env::temp_dir().join(format!("twofactor-axum-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let app = example::app(tower_sessions::MemoryStore::default()).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (c, _driver) = browser(&dir.join("profile"), "1000,1200").await?;
    let t = Page::new(c, format!("http://{addr}"), "axum-")?;
    let result = story(&t).await;
    if result.is_err() {
        let _ = t.shot("failure").await;
        eprintln!(
            "page at failure ({:?}): {:?}",
            t.c.current_url().await.map(|u| u.to_string()),
            t.c.source()
                .await
                .map(|s| s.chars().take(3000).collect::<String>())
        );
    }
    let _ = t.c.clone().close().await;
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn story(t: &T) -> TestResult {
    // The protected page sends a visitor to the host's login page.
    t.go("/").await?;
    assert_eq!(t.path().await?, "/login");

    // First login: 2FA is required and alice has none: forced set-up.
    login(t).await?;
    assert_eq!(t.path().await?, "/2fa/setup");
    assert!(
        t.c.find(Locator::Css("#qr svg")).await.is_ok(),
        "the QR code is inline SVG"
    );
    t.toggle("summary").await?;
    let key = t.text("#manual-key").await?;
    assert_eq!(key.split(' ').count(), 8, "the key is shown grouped: {key}");
    t.shot("setup").await?;
    // A reload resumes the set-up: the same key (the app already scanned it).
    t.c.refresh().await?;
    t.toggle("summary").await?;
    assert_eq!(t.text("#manual-key").await?, key, "resumed on reload");
    let mut phone = Phone::new(Secret::from_base32(&key.replace(' ', ""))?);
    // A wrong code first: the page says so and keeps the set-up.
    t.fill("#code", "000000").await?;
    t.click("#confirm").await?;
    assert!(t.text("#error").await?.contains("not valid"));
    t.toggle("summary").await?;
    assert_eq!(t.text("#manual-key").await?, key);
    t.fill("#code", &phone.code().await).await?;
    t.click("#confirm").await?;
    let codes =
        t.c.find_all(Locator::Css("#recovery-codes li"))
            .await?
            .len();
    assert_eq!(codes, 10, "ten recovery codes, shown once");
    t.shot("recovery-codes").await?;
    t.click("#continue").await?;
    assert_eq!(t.path().await?, "/", "the set-up completed the login");
    assert!(t.text("main").await?.contains("Hello, alice"));
    logout(t).await?;

    // Second login: a code and "don't ask again on this device".
    login(t).await?;
    assert_eq!(t.path().await?, "/2fa");
    t.shot("second-step").await?;
    t.fill("#code", &phone.code().await).await?;
    t.toggle("#remember").await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, "/");
    let device = t.device_cookies().await?;
    assert_eq!(device.len(), 1, "one trusted-device cookie: {device:?}");
    assert_eq!(
        device[0].secure(),
        Some(true),
        "Secure, kept over http://127.0.0.1"
    );
    assert_eq!(device[0].http_only(), Some(true));
    assert_eq!(device[0].path(), Some("/"));
    logout(t).await?;

    // Third login: the remembered device lets her in without a code.
    login(t).await?;
    assert_eq!(t.path().await?, "/", "granted by the remembered device");

    // The guarded page asks for a fresh second factor first, then comes back.
    t.click("a[href='/settings']").await?;
    assert_eq!(t.path().await?, "/2fa/step-up");
    t.shot("step-up").await?;
    t.fill("#code", &phone.code().await).await?;
    t.click("#verify").await?;
    assert_eq!(t.path().await?, "/settings");
    assert!(
        t.text("#settings")
            .await?
            .contains("Payout account of alice")
    );

    // The account security page: on, required, the device listed.
    t.click("a[href='/2fa/account']").await?;
    assert!(
        t.text("#tfa-on")
            .await?
            .contains("Your organisation requires it")
    );
    assert!(
        t.text("#recovery-left")
            .await?
            .contains("10 recovery codes left")
    );
    assert!(t.text("#devices").await?.contains("Chrome on Linux"));
    t.shot("account").await?;
    t.click("#revoke-all").await?;
    assert!(t.text("#notice").await?.contains("1 device revoked"));
    t.go("/").await?;
    logout(t).await?;

    // The revoked device is asked for a code again, and its cookie is deleted.
    login(t).await?;
    assert_eq!(t.path().await?, "/2fa");
    assert!(
        t.device_cookies().await?.is_empty(),
        "the refused cookie is deleted"
    );
    Ok(())
}
