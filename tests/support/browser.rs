//! Headless Chromium over WebDriver for the browser tests (`tests/web_e2e.rs`,
//! `tests/axum_e2e.rs`, `tests/webauthn_e2e.rs`): chromedriver on a free loopback port,
//! killed with the test, and [`Page`], what a test does in it.
// Each test uses what it needs of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use twofactor::{Clock, Secret, Totp};

/// Any error a browser test meets.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A browser test's result.
pub type TestResult = Result<(), BoxError>;

/// The browser on one app: go, fill, click (waiting for the next page), read, screenshot.
pub struct Page {
    /// The WebDriver session.
    pub c: Client,
    /// The app's base URL (`http://host:port`).
    pub base: String,
    shots: PathBuf,
    prefix: &'static str,
}

impl Page {
    /// A page on the app at `base`; screenshots go to `target/screenshots/{prefix}{name}.png`.
    pub fn new(c: Client, base: String, prefix: &'static str) -> Result<Self, BoxError> {
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&shots)?;
        Ok(Page {
            c,
            base,
            shots,
            prefix,
        })
    }
    pub async fn go(&self, path: &str) -> TestResult {
        self.c.goto(&format!("{}{path}", self.base)).await?;
        Ok(())
    }
    /// The element `css` selects, once it is there (10 s at most).
    pub async fn element(&self, css: &str) -> Result<fantoccini::elements::Element, BoxError> {
        Ok(self
            .c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await?)
    }
    pub async fn fill(&self, css: &str, text: &str) -> TestResult {
        let e = self.element(css).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }
    /// Clicks something that loads a new page (directly, or after a script such as the
    /// security key's), and waits until the old page is gone.
    pub async fn click(&self, css: &str) -> TestResult {
        let old = self.c.find(Locator::Css("html")).await?;
        self.toggle(css).await?;
        for _ in 0..300 {
            if old.tag_name().await.is_err() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("clicking {css} did not load a page").into())
    }
    /// Clicks something that stays on the page (a checkbox, a disclosure).
    pub async fn toggle(&self, css: &str) -> TestResult {
        self.element(css).await?.click().await?;
        Ok(())
    }
    pub async fn text(&self, css: &str) -> Result<String, BoxError> {
        Ok(self.element(css).await?.text().await?)
    }
    pub async fn path(&self) -> Result<String, BoxError> {
        Ok(self.c.current_url().await?.path().to_owned())
    }
    pub async fn shot(&self, name: &str) -> TestResult {
        let png = self.c.screenshot().await?;
        let file = format!("{}{name}.png", self.prefix);
        std::fs::write(self.shots.join(file), png)?;
        Ok(())
    }
    /// The host's login form: `#username`, `#password`, `#login`.
    pub async fn login(&self, user: &str, password: &str) -> TestResult {
        self.go("/login").await?;
        self.fill("#username", user).await?;
        self.fill("#password", password).await?;
        self.click("#login").await
    }
    /// The remembered-device cookies the browser holds.
    pub async fn device_cookies(
        &self,
    ) -> Result<Vec<fantoccini::cookies::Cookie<'static>>, BoxError> {
        Ok(self
            .c
            .get_all_cookies()
            .await?
            .into_iter()
            .filter(|c| c.name().starts_with("__Host-2fa-device-"))
            .collect())
    }
}

/// Kills chromedriver (and with it the browser) however the test ends.
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: install Debian's `chromium` and `chromium-driver` (.ci/run does), or set {var}. \
         This test never skips.",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The authenticator app: a code for a time step the server has not seen yet (the current
/// one, or the next within the ±1 window), waiting for the clock when both are used.
pub struct Phone {
    secret: Secret,
    last_step: Option<u64>,
}

impl Phone {
    /// The app holding `secret`, no code shown yet.
    pub fn new(secret: Secret) -> Self {
        Phone {
            secret,
            last_step: None,
        }
    }

    /// The next code to type.
    pub async fn code(&mut self) -> String {
        loop {
            let now = twofactor::clock::SystemClock.now();
            let step = (now / 30).max(self.last_step.map_or(0, |s| s + 1));
            if step <= now / 30 + 1 {
                self.last_step = Some(step);
                return Totp::default()
                    .generate(&self.secret, step * 30)
                    .to_string();
            }
            let wait = 30 - now % 30;
            eprintln!("waiting {wait} s for a fresh TOTP step");
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }
}

pub async fn browser(
    profile: &Path,
    window_size: &str,
) -> Result<(Client, Driver), Box<dyn std::error::Error + Send + Sync>> {
    let chromium = binary("CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = free_port();
    let driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", &format!("--window-size={window_size}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver takes a moment to listen: retry for up to 20 s.
    let mut last = None;
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return Ok((c, driver)),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("could not start a Chromium session: {last:?}").into())
}
