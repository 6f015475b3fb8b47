//! # twofactor
//!
//! Complete, correct two-factor authentication for Rust applications: RFC 6238 TOTP, QR
//! provisioning, enrollment and login flows, recovery codes, trusted devices, mailed codes,
//! throttling, enforcement policies and an audit trail, over storage and mail you plug in.
//!
//! The host application checks the password; `twofactor` decides whether a second factor is
//! needed, verifies it, and keeps the state that makes every code single-use.
//!
//! ## Integrating with a host
//!
//! A store, a mailer and a policy, through enrollment and login. Swap [`MemoryStore`] for
//! `SqliteStore` (feature `sqlite`), `PostgresStore` (feature `postgres`) or your
//! own [`UserStore`]; swap [`RecordingMailer`](testing::RecordingMailer) for your [`Mailer`] (e-mail, SMS).
//!
//! ```
//! use twofactor::{Clock, Error, Factor, KeyUri, LoginContext, LoginDecision, MemoryStore, Principal, RequiredForRoles, Totp, TwoFactor, WhenUnenrolled};
//! use twofactor::testing::{ManualClock, RecordingMailer};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Employees must use 2FA; other users may opt in.
//! let policy = RequiredForRoles::new(["employee"], WhenUnenrolled::BlockUntilEnrolled);
//! let clock = ManualClock::new(1_700_000_000); // use SystemClock (the default) in production
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .keys(twofactor::testing::test_keys()) // ServiceKeys::derive(&secret)? in production
//!     .policy(policy)
//!     .clock(&clock)
//!     .build();
//!
//! let alice = Principal::new("alice").with_role("employee");
//! let ctx = LoginContext::new();
//!
//! // The host has checked alice's password. She has no authenticator yet. The answer carries
//! // a sealed login ticket: keep it (`pending.as_str()`) in her session between the two steps.
//! let decision = tf.start_login(&alice, None, &ctx).await?;
//! let LoginDecision::MustEnroll { pending } = decision else { panic!("{decision:?}") };
//!
//! // Forced set-up: show the QR code (or the grouped key under "Cannot scan it?"). The
//! // ticket stands for the password check enrollment needs.
//! let started = tf.start_forced_enrollment(&pending, "alice@example.com").await?;
//! assert!(started.qr_svg().starts_with("<svg"));
//! let app = KeyUri::parse(started.uri())?; // what her authenticator app stores
//! let code = Totp::default().generate(app.secret(), clock.now()).to_string();
//! let enrolled = tf.finish_forced_enrollment(&pending, &code).await?;
//! assert_eq!(enrolled.recovery_codes().len(), 10); // shown exactly once
//! assert!(enrolled.login_completed()); // the blocked login is complete: log her in
//!
//! // A later login: password (host), then the code from the app, with the ticket.
//! clock.advance(30);
//! let decision = tf.start_login(&alice, None, &ctx).await?;
//! let LoginDecision::Challenge { pending } = decision else { panic!("{decision:?}") };
//! let code = Totp::default().generate(app.secret(), clock.now()).to_string();
//! let granted = tf.finish_login(&pending, Factor::Totp(&code), None, &ctx).await?;
//! // `granted.proof` proves the second factor: keep it in the session for sensitive calls.
//! assert_eq!(granted.proof.user(), &alice.user);
//!
//! // A ticket completes one login.
//! assert!(matches!(
//!     tf.finish_login(&pending, Factor::Totp(&code), None, &ctx).await,
//!     Err(Error::LoginExpired)
//! ));
//!
//! // Each code works once: a replay fails like any wrong code.
//! let pending = tf.start_login(&alice, None, &ctx).await?.into_pending().unwrap();
//! assert!(matches!(
//!     tf.finish_login(&pending, Factor::Totp(&code), None, &ctx).await,
//!     Err(Error::InvalidCode)
//! ));
//!
//! // The ticket has a deadline (15 minutes by default): after it, log in again.
//! clock.advance(15 * 60);
//! assert!(matches!(
//!     tf.finish_login(&pending, Factor::Totp("123456"), None, &ctx).await,
//!     Err(Error::LoginExpired)
//! ));
//! # Ok(())
//! # }
//! ```
//!
//! ## A web login, end to end
//!
//! What a web host writes, framework-neutral: the password form, the second step (one input
//! box for a code or a recovery code, "don't ask again on this device"), forced set-up, the
//! trusted-device cookie and the one error mapping. The session is the host's (e.g.
//! tower-sessions): between the two steps it keeps the login ticket (`pending.as_str()`, a
//! sealed string: any edit is refused), and after login the proof of the second factor
//! (`granted.proof`) for sensitive calls. The session id is cycled when the ticket is stored
//! and again at login. Hidden lines build a stand-in session and response and drive the
//! handlers; the visible lines are all the 2FA-specific glue: **73 lines** (non-blank,
//! non-comment, the `use` lines and everything from `async fn after_password` to the end of
//! `error_response`; `tests/glue_budget.rs` keeps the count true).
//!
//! ```
//! use twofactor::{Error, ErrorKind, Factor, LoginContext, LoginDecision, PendingLogin, Principal};
//! use twofactor::{SecondFactorProof, UserId};
//! use twofactor::account::PendingStep;
//! # use twofactor::{Clock, MemoryStore, Reauthenticated, RequiredForRoles, Totp, TwoFactor, WhenUnenrolled};
//! # use twofactor::testing::{ManualClock, RecordingMailer};
//! # #[derive(Default)]
//! # struct Session { id: u64, ticket: Option<String>, user: Option<UserId>, proof: Option<String> }
//! # impl Session {
//! #     fn cycle_id(&mut self) { self.id += 1 } // a new session id, same data
//! # }
//! # #[derive(Debug, Default)]
//! # struct Response { status: u16, location: String, body: String, headers: Vec<(String, String)> }
//! # impl Response {
//! #     fn redirect(to: &str) -> Self { Response { status: 303, location: to.into(), ..Default::default() } }
//! #     fn page(body: String) -> Self { Response { status: 200, body, ..Default::default() } }
//! #     fn status(status: u16) -> Self { Response { status, ..Default::default() } }
//! #     fn header(mut self, name: &str, value: String) -> Self { self.headers.push((name.into(), value)); self }
//! #     fn with_cookie(self, set_cookie: Option<String>) -> Self { match set_cookie { Some(c) => self.header("Set-Cookie", c), None => self } }
//! # }
//! # // The host's one concrete service type (or `TwoFactor<DynStore, DynMailer, ..>`).
//! # type Tf = TwoFactor<MemoryStore, RecordingMailer, RequiredForRoles, std::sync::Arc<ManualClock>>;
//!
//! /// Right after the host checked the password.
//! async fn after_password(tf: &Tf, session: &mut Session, who: &Principal, cookies: &str, ctx: &LoginContext) -> Response {
//!     let jar = tf.device_cookie();
//!     let token = jar.token_from_header(cookies, &who.user);
//!     let decision = match tf.start_login(who, token, ctx).await {
//!         Ok(decision) => decision,
//!         Err(e) => return error_response(&e, tf.clock().now()),
//!     };
//!     let forget = token.is_some() && decision.forget_device_cookie();
//!     let next = match &decision {
//!         LoginDecision::Granted { .. } => { log_in(session, &who.user, None); "/" }
//!         LoginDecision::MustEnroll { .. } => "/2fa/setup",
//!         _ => "/2fa",
//!     };
//!     if let Some(pending) = decision.pending() {
//!         session.cycle_id(); // the half-logged-in session gets a new id
//!         session.ticket = Some(pending.as_str().to_owned());
//!     }
//!     Response::redirect(next).with_cookie(forget.then(|| jar.removal_header(&who.user)))
//! }
//!
//! fn ticket(session: &Session) -> Option<PendingLogin> {
//!     session.ticket.as_deref()?.parse().ok()
//! }
//!
//! /// Logged in: a new session id, the ticket gone, the proof kept for sensitive calls.
//! fn log_in(session: &mut Session, user: &UserId, proof: Option<&SecondFactorProof>) {
//!     session.cycle_id();
//!     session.ticket = None;
//!     session.user = Some(user.clone());
//!     session.proof = proof.map(|p| p.as_str().to_owned());
//! }
//!
//! /// POST /2fa: one input box; `remember` is the "don't ask again on this device" box.
//! async fn second_step(tf: &Tf, session: &mut Session, input: &str, remember: bool, ctx: &LoginContext) -> Response {
//!     let Some(pending) = ticket(session) else { return Response::redirect("/login") };
//!     let factor = match pending.step() {
//!         PendingStep::MailedCode { .. } => Factor::MailedCode(input),
//!         _ => match Factor::parse(input) { Ok(f) => f, Err(_) => return Response::status(400) },
//!     };
//!     match tf.finish_login(&pending, factor, remember.then_some("this browser"), ctx).await {
//!         Ok(granted) => {
//!             log_in(session, pending.user(), Some(&granted.proof));
//!             let set = granted.device_token.map(|t| tf.device_cookie().set_cookie_header(pending.user(), &t));
//!             Response::redirect("/").with_cookie(set)
//!         }
//!         Err(e) => error_response(&e, tf.clock().now()),
//!     }
//! }
//!
//! /// GET /2fa/setup (forced set-up; a reload shows the same QR code), then POST /2fa/setup.
//! async fn setup_page(tf: &Tf, session: &Session) -> Response {
//!     let Some(pending) = ticket(session) else { return Response::redirect("/login") };
//!     match tf.start_forced_enrollment(&pending, pending.user().as_str()).await {
//!         Ok(s) => Response::page(format!("{}<p>Cannot scan it? {}</p>", s.qr_svg(), s.manual_key())),
//!         Err(e) => error_response(&e, tf.clock().now()),
//!     }
//! }
//! async fn setup_confirm(tf: &Tf, session: &mut Session, code: &str) -> Response {
//!     let Some(pending) = ticket(session) else { return Response::redirect("/login") };
//!     match tf.finish_forced_enrollment(&pending, code).await {
//!         Ok(done) => {
//!             if done.login_completed() { log_in(session, pending.user(), Some(done.proof())) }
//!             Response::page(done.recovery_codes().expose_secret().join("\n")) // shown once
//!         }
//!         Err(e) => error_response(&e, tf.clock().now()),
//!     }
//! }
//!
//! /// Every error, one `match`: the status, `Retry-After`, and what the user reads.
//! fn error_response(e: &Error, now: u64) -> Response {
//!     let text = match e.kind() {
//!         ErrorKind::WrongCode | ErrorKind::MalformedInput => "Invalid code.",
//!         ErrorKind::Throttled => "Too many attempts: wait and try again.",
//!         ErrorKind::NotAllowedNow | ErrorKind::Conflict => "Please log in again.",
//!         _ => "Something went wrong on our side; please try again later.",
//!     };
//!     let response = Response { status: e.http_status(), body: text.into(), ..Default::default() };
//!     match e.retry_after(now) { Some(s) => response.header("Retry-After", s.to_string()), None => response }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let clock = std::sync::Arc::new(ManualClock::new(1_700_000_000));
//! # let tf = TwoFactor::builder(MemoryStore::new()).mailer(RecordingMailer::new()).keys(twofactor::testing::test_keys())
//! #     .policy(RequiredForRoles::new(["employee"], WhenUnenrolled::BlockUntilEnrolled)).clock(clock.clone()).build();
//! # let emma = Principal::new("emma").with_role("employee");
//! # let ctx = LoginContext::new();
//! # // First login: forced set-up, which logs her in. The session id changes when the ticket
//! # // is stored, and again at login.
//! # let mut s = Session::default();
//! # assert_eq!(after_password(&tf, &mut s, &emma, "", &ctx).await.location, "/2fa/setup");
//! # assert_eq!(s.id, 1);
//! # let page = setup_page(&tf, &s).await;
//! # assert_eq!(setup_page(&tf, &s).await.body, page.body, "a reload resumes the set-up");
//! # let key = page.body.split("Cannot scan it? ").nth(1).unwrap().trim_end_matches("</p>").to_owned();
//! # let secret = twofactor::Secret::from_base32(&key).unwrap();
//! # let code = || Totp::default().generate(&secret, clock.now()).to_string();
//! # let codes = setup_confirm(&tf, &mut s, &code()).await.body;
//! # assert_eq!(codes.lines().count(), 10);
//! # assert_eq!((s.user.clone(), s.id, s.ticket.is_none()), (Some(emma.user.clone()), 2, true));
//! # let proof: SecondFactorProof = s.proof.as_deref().unwrap().parse().unwrap();
//! # // The proof in the session stands in for a code on a sensitive call.
//! # let fresh = tf.regenerate_recovery_codes(&emma.user, Reauthenticated::at(clock.now()), &proof).await.unwrap();
//! # let codes = fresh.expose_secret().join("\n");
//! # // Second login: a code, and "don't ask again on this device".
//! # clock.advance(30);
//! # let mut s = Session::default();
//! # assert_eq!(after_password(&tf, &mut s, &emma, "", &ctx).await.location, "/2fa");
//! # assert_eq!(second_step(&tf, &mut s, "12", false, &ctx).await.status, 400);
//! # assert_eq!(second_step(&tf, &mut s, "000000", false, &ctx).await.status, 401);
//! # let ok = second_step(&tf, &mut s, &code(), true, &ctx).await;
//! # assert_eq!((ok.status, s.user.clone(), s.id), (303, Some(emma.user.clone()), 2));
//! # assert!(s.proof.is_some());
//! # let cookie = ok.headers[0].1.split(';').next().unwrap().to_owned();
//! # // Third login: the cookie skips the code.
//! # let mut s = Session::default();
//! # assert_eq!(after_password(&tf, &mut s, &emma, &cookie, &ctx).await.location, "/");
//! # assert_eq!((s.user.clone(), s.proof.clone()), (Some(emma.user.clone()), None));
//! # // A recovery code, typed sloppily, in the same input box.
//! # let mut s = Session::default();
//! # after_password(&tf, &mut s, &emma, "", &ctx).await;
//! # let sloppy = codes.lines().next().unwrap().to_uppercase().replace('-', " ");
//! # assert_eq!(second_step(&tf, &mut s, &sloppy, false, &ctx).await.status, 303);
//! # // An edited ticket (the client can write it) is refused: 403, log in again.
//! # let mut s = Session::default();
//! # after_password(&tf, &mut s, &emma, "", &ctx).await;
//! # let real = s.ticket.clone().unwrap();
//! # let edited = real.replacen("656d6d61", "6d616c6c", 1); // the user "emma" becomes "mall"
//! # assert_ne!(edited, real);
//! # s.ticket = Some(edited);
//! # assert_eq!(second_step(&tf, &mut s, &code(), false, &ctx).await.status, 403);
//! # // Wrong codes until the throttle answers 429 with Retry-After (the edited ticket
//! # // was refused before anything was counted).
//! # s.ticket = Some(real);
//! # let mut last = Response::default();
//! # for i in 0..6 {
//! #     last = second_step(&tf, &mut s, "000000", false, &ctx).await;
//! #     if i < 5 { assert_eq!(last.status, 401) }
//! # }
//! # assert_eq!(last.status, 429);
//! # assert!(last.headers.iter().any(|(n, _)| n == "Retry-After"));
//! # }
//! ```
//!
//! ## Just the algorithms
//!
//! ```
//! use twofactor::{Secret, Totp};
//!
//! // Enrollment: generate a secret and give it to the user's authenticator app.
//! let secret = Secret::generate()?;
//! let totp = Totp::default(); // SHA-1, 6 digits, 30 s, ±1 step: what every app expects
//! println!("Cannot scan it? Type this key: {}", secret.to_base32_grouped().as_str());
//!
//! // Login: the user types the code their app shows.
//! let now = 1_700_000_000;
//! let typed = totp.generate(&secret, now).to_string();
//! let step = totp.verify(&secret, &typed, now, None)?;
//!
//! // Store `step`: passing it back refuses the same code a second time.
//! assert!(totp.verify(&secret, &typed, now, Some(step)).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Map of the crate
//!
//! Top to bottom; each module imports only those below it (the manual's
//! [layers](manual#layers)).
//!
//! | module | what | I/O |
//! |---|---|---|
//! | `axum` (feature `axum`) | the whole 2FA web layer for axum + tower-sessions: pages, guards, one call after the password | HTTP, the session |
//! | [`testing`] | test doubles: `ManualClock`, `RecordingMailer`, `RecordingAudit` | none |
//! | [`service`] | [`TwoFactor`], the async facade a host calls | async, through the traits |
//! | [`seal`] | `SealedStore`: secrets encrypted and records authenticated at rest | through the store |
//! | [`cookie`] | trusted-device cookie names and headers | none |
//! | [`store`] | [`UserStore`] and its adapters | yours |
//! | [`account`] | the per-user record and its pure transitions | none |
//! | [`policy`] | [`EnforcementPolicy`] and built-ins | none |
//! | [`audit`], [`mail`] | audit events and notices, and the traits that deliver them | yours |
//! | [`provision`] | `otpauth://` URIs, QR codes | none |
//! | [`vocabulary`] | the shared words: [`UserId`], [`DeviceId`](vocabulary::DeviceId), [`LoginContext`], [`FactorKind`](vocabulary::FactorKind) | none |
//! | [`otp`] | RFC 4226 / RFC 6238, [`Secret`], parameters and their limits | none |
//! | [`clock`] | [`Clock`] | reads the system clock |
//! | [`manual`] | why the defaults are what they are | docs only |
//!
//! ## Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `serde` | yes | `Serialize`/`Deserialize` for records, policies' types, params |
//! | `png` | no | `QrCode::to_png` |
//! | `sqlite` | no | `store::SqliteStore` (sqlx; a bundled SQLite through `libsqlite3-sys` 0.30, see its docs before combining with `rusqlite`) |
//! | `postgres` | no | `store::PostgresStore` (sqlx) |
//! | `axum` | no | `axum`: the 2FA web layer for axum 0.8 + tower-sessions 0.15 |
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod account;
pub mod audit;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod clock;
pub mod cookie;
pub mod mail;
pub mod manual;
pub mod otp;
pub mod policy;
pub mod provision;
pub mod seal;
pub mod service;
pub mod store;
pub mod testing;
pub mod vocabulary;

// The crate root re-exports what a host touches in its first hour; everything else is in its
// module (OTP-level types under `otp`, test doubles under `testing`).
pub use account::{
    AssuranceClaims, EnrollmentStarted, Factor, LoginDecision, LoginGranted, PendingLogin,
    Reauthenticated, SecondFactorProof, ServiceKeys, Settings,
};
pub use clock::Clock;
pub use mail::{Mailer, Notice};
pub use otp::{Secret, Totp};
pub use policy::{
    EnforcementPolicy, EnrollmentStatus, Optional, PerTenant, Principal, RequiredForAll,
    RequiredForRoles, Requirement, WhenUnenrolled,
};
pub use provision::KeyUri;
pub use service::{Error, ErrorKind, TwoFactor};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{MemoryStore, UserStore};
pub use vocabulary::{LoginContext, UserId};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
