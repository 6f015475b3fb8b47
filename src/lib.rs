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
//! use twofactor::{Clock, Error, Factor, KeyUri, LoginContext, LoginDecision, MemoryStore, Principal, Reauthenticated, RequiredForRoles, Totp, TwoFactor, WhenUnenrolled};
//! use twofactor::testing::{ManualClock, RecordingMailer};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Employees must use 2FA; other users may opt in.
//! let policy = RequiredForRoles::new(["employee"], WhenUnenrolled::BlockUntilEnrolled);
//! let clock = ManualClock::new(1_700_000_000); // use SystemClock (the default) in production
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .policy(policy)
//!     .clock(&clock)
//!     .build();
//!
//! let alice = Principal::new("alice").with_role("employee");
//! let ctx = LoginContext::new();
//!
//! // The host has checked alice's password. She has no authenticator yet. The answer carries
//! // a pending login: keep it in her (server-side) session between the two steps.
//! let decision = tf.begin_login(&alice, None, &ctx).await?;
//! let LoginDecision::MustEnroll { pending } = decision else { panic!("{decision:?}") };
//!
//! // Enrollment: show the QR code (or the grouped key under "Cannot scan it?"). The pending
//! // login carries the principal and the password check enrollment needs.
//! let started = tf
//!     .start_enrollment(pending.principal(), "alice@example.com", pending.reauthenticated())
//!     .await?;
//! assert!(started.qr_svg().starts_with("<svg"));
//! let app = KeyUri::parse(started.uri())?; // what her authenticator app stores
//! let code = Totp::default().generate(app.secret(), clock.now()).to_string();
//! let enrolled = tf.finish_enrollment(pending.user(), &code).await?;
//! assert_eq!(enrolled.recovery_codes().len(), 10); // shown exactly once
//! assert!(enrolled.login_completed()); // the blocked login is complete: log her in
//!
//! // A later login: password (host), then the code from the app, with the pending login.
//! clock.advance(30);
//! let decision = tf.begin_login(&alice, None, &ctx).await?;
//! let LoginDecision::Challenge { pending } = decision else { panic!("{decision:?}") };
//! let code = Totp::default().generate(app.secret(), clock.now()).to_string();
//! tf.finish_login(&pending, Factor::Totp(&code), None, &ctx).await?;
//!
//! // Each code works once: a replay fails like any wrong code.
//! let pending = tf.begin_login(&alice, None, &ctx).await?.into_pending().unwrap();
//! assert!(matches!(
//!     tf.finish_login(&pending, Factor::Totp(&code), None, &ctx).await,
//!     Err(Error::InvalidCode)
//! ));
//!
//! // The pending login has a deadline (15 minutes by default): after it, log in again.
//! clock.advance(15 * 60);
//! assert!(matches!(
//!     tf.finish_login(&pending, Factor::Totp("123456"), None, &ctx).await,
//!     Err(Error::LoginExpired)
//! ));
//! # Ok(())
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
//! | [`testing`] | test doubles: `ManualClock`, `RecordingMailer`, `RecordingAudit` | none |
//! | [`service`] | [`TwoFactor`], the async facade a host calls | async, through the traits |
//! | [`seal`] | `SealedStore`: secrets encrypted and records authenticated at rest | through the store |
//! | [`cookie`] | trusted-device cookie names and headers | none |
//! | [`store`] | [`UserStore`] and its adapters | yours |
//! | [`account`] | the per-user record and its pure transitions | none |
//! | [`policy`] | [`EnforcementPolicy`] and built-ins | none |
//! | [`audit`], [`mail`] | audit events and notices, and the traits that deliver them | yours |
//! | [`provision`] | `otpauth://` URIs, QR codes | none |
//! | [`vocabulary`] | the shared words: [`UserId`], [`DeviceId`], [`LoginContext`], [`FactorKind`] | none |
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
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod account;
pub mod audit;
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
    DeviceInfo, DeviceToken, Enrolled, EnrollmentStarted, Factor, GrantReason, LoginDecision,
    LoginGranted, Reauthenticated, RecoveryCodes, Settings, TwoFactorStatus,
};
pub use audit::{AuditEvent, AuditKind, AuditSink};
pub use clock::{Clock, SystemClock};
pub use cookie::DeviceCookie;
pub use mail::{DynMailer, Mailer, NoMailer, Notice};
pub use otp::{Secret, Totp};
pub use policy::{
    EnforcementPolicy, EnrollmentStatus, NoTrustedDevices, Optional, PerTenant, PolicyExt,
    Principal, RequiredForAll, RequiredForRoles, Requirement, SuperuserExempt, WhenUnenrolled,
};
pub use provision::{KeyUri, QrCode};
pub use service::{Error, ErrorKind, TwoFactor};

// The typed pending login `begin_login` hands out and `finish_login` takes back.
pub use account::{PendingLogin, PendingStep};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{DynStore, MemoryStore, UserStore};
pub use vocabulary::{DeviceId, FactorKind, LoginContext, UserId};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
