//! # twofactor
//!
//! Complete, correct two-factor authentication for Rust applications.
//!
//! ## Quickstart
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
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod account;
pub mod audit;
pub mod clock;
pub mod mail;
pub mod manual;
pub mod otp;
pub mod policy;
pub mod provision;
pub mod service;
pub mod store;

pub use account::{
    DeviceId, DeviceInfo, DeviceToken, Enrolled, EnrollmentStarted, Factor, FactorKind,
    GrantReason, LoginContext, LoginDecision, LoginGranted, Reauthenticated, RecoveryCodes,
    Settings, SettingsError, TwoFactorRecord, TwoFactorStatus, UserId,
};
pub use audit::{AuditEvent, AuditKind, AuditSink, RecordingAudit, TracingAudit};
pub use clock::{Clock, ManualClock, SystemClock};
pub use mail::{Mailer, NoMailer, Notice, RecordingMailer};
pub use otp::{
    Algorithm, Code, CodeError, Hotp, ParamsError, Secret, SecretError, SecretStrength, Totp,
    TotpBuilder, UnknownAlgorithm, VerifyError,
};
pub use policy::{
    EnforcementPolicy, EnrollmentStatus, GracePeriod, GraceStart, NoTrustedDevices, Optional,
    PerTenant, PolicyExt, Principal, RequiredForAll, RequiredForRoles, Requirement,
    SUPERUSER_EXEMPTION, SuperuserExempt, WhenUnenrolled,
};
pub use provision::{KeyUri, OtpKind, Provisioning, QrCode, QrError, TerminalStyle, UriError};
pub use service::{Error, TwoFactor};
pub use store::{MemoryStore, SaveOutcome, UserStore, Version, Versioned};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
