//! The whole 2FA web layer for an [axum](https://docs.rs/axum/0.8) 0.8 application with
//! [tower-sessions](https://docs.rs/tower-sessions/0.15) 0.15 (feature `axum`).
//!
//! The host keeps its password check and its pages. The module serves everything 2FA adds:
//!
//! | path (prefix `/2fa`, [configurable](TwoFactorWebBuilder::prefix)) | page |
//! |---|---|
//! | `/2fa` | the second step: one box for a code or a recovery code, "don't ask again on this device"; or the mailed code, with resend (`/2fa/resend`), and "we could not send the code, try again" when the mail server was down or refused it |
//! | `/2fa/setup` | forced set-up: QR code (inline SVG), the "Cannot scan it?" key, resumed on reload; then the recovery codes, shown once |
//! | `/2fa/account` | the account security page: on or off and whether it is required, turn on, new recovery codes, trusted devices (revoke one or all), replace the authenticator, turn off; the user's authenticators (label, kind, added, last used, clock offset), renamed (`/2fa/account/authenticators/rename`), added (`.../add`, then `.../confirm` with a code from the new one) and removed (`.../remove`; adding and removing take a fresh second factor, else step-up first); and how this session was authenticated ([`current_claims`](TwoFactorWeb::current_claims)) |
//! | `/2fa/step-up` | step-up: a fresh second factor before a sensitive page, then back to it |
//!
//! and the throttle's wait on each of them (429, `Retry-After`, "try again in 12 minutes").
//!
//! # What the host writes
//!
//! Its password check, which hands the [`Principal`] to one call
//! ([`Login::password_checked`]) that answers with the right response (logged in and back to
//! the page asked for; the second step; forced set-up; the mailed code); a way to look up the
//! principal of a logged-in user (a closure); where to go after login; and, if it likes, its
//! own rendering ([`Pages`]). Guards go on its own routes:
//! [`require_login`](TwoFactorWeb::require_login) ("logged in with 2FA complete") and
//! [`require_recent_2fa`](TwoFactorWeb::require_recent_2fa) (step-up: a second factor within
//! N minutes), each sending the visitor to the right page and back.
//!
//! An app with a password login gains 2FA in **18 lines** (`examples/axum_minimal.rs`: counted
//! by `tests/axum_glue_budget.rs` after `rustfmt`, non-blank and non-comment, `use` lines
//! included, between `// --- 2FA begin ---` and `// --- 2FA end ---` markers). The same app,
//! shorter, with its 2FA lines marked `// 2FA`:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::response::{Html, IntoResponse, Redirect, Response};
//! use axum::routing::get;
//! use axum::{Form, Router};
//! use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
//! use twofactor::axum::{Login, TwoFactorWeb}; // 2FA
//! use twofactor::{Principal, ServiceKeys, TwoFactor}; // 2FA
//!
//! #[derive(serde::Deserialize)]
//! struct Credentials { username: String, password: String }
//!
//! fn password_ok(name: &str, password: &str) -> bool {
//!     name == "alice" && password == "correct horse" // your users (argon2 hashes)
//! }
//!
//! // Was `session: Session`; the password check stays the host's.
//! async fn login(tfa: Login, Form(f): Form<Credentials>) -> Response { // 2FA
//!     if !password_ok(&f.username, &f.password) {
//!         return Redirect::to("/login?failed").into_response();
//!     }
//!     // Was: cycle the session id, insert "user", redirect to "/".
//!     tfa.password_checked(Principal::new(f.username)).await // 2FA
//! }
//!
//! async fn home(session: Session) -> Response {
//!     match session.get::<String>("user").await {
//!         Ok(Some(user)) => Html(format!("Hello, {user}. <a href=/2fa/account>Security</a>")).into_response(),
//!         _ => Redirect::to("/login").into_response(),
//!     }
//! }
//! # async fn login_page() -> &'static str { "" }
//! # async fn settings() -> &'static str { "" }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let keys = ServiceKeys::derive(std::env::var("TWOFACTOR_SECRET")?.as_bytes())?; // 2FA
//!     let tf = TwoFactor::builder(twofactor::MemoryStore::new()) // 2FA (your store: SQLite, PostgreSQL)
//!         .mailer(twofactor::testing::RecordingMailer::new()) // 2FA (your mailer: mail::SmtpMailer)
//!         .keys(keys) // 2FA
//!         .policy(twofactor::RequiredForAll::default()) // 2FA
//!         .build(); // 2FA
//!     let tfa = TwoFactorWeb::builder(tf, |user| async move { Some(Principal::new(user)) }) // 2FA
//!         .session_key("user") // 2FA: the key the app already reads
//!         .build(); // 2FA
//!     let app = Router::new()
//!         .route("/settings", get(settings))
//!         .route_layer(tfa.require_recent_2fa(Duration::from_secs(5 * 60))) // 2FA
//!         .route("/", get(home))
//!         .route("/login", get(login_page).post(login))
//!         .merge(tfa.router()) // 2FA
//!         .layer(tfa.layer()) // 2FA
//!         .layer(SessionManagerLayer::new(MemoryStore::default()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! A larger host (the web demo, `examples/web`) also keeps an `Arc` of the service for its own
//! handlers (`TwoFactorWeb::builder(tf.clone(), ..)`: an administrator's reset, a status
//! column), puts `require_recent_2fa` on its administrator's POST handlers
//! (`post(handler).route_layer(..)`, so other methods still answer 405), lets its own forms
//! carry the module's CSRF token ([`csrf_token`](TwoFactorWeb::csrf_token),
//! [`verify_csrf`](TwoFactorWeb::verify_csrf)), frames the 2FA pages with its navigation
//! ([`Pages::layout`], [`Common::user`]), and names a half-logged-in visitor on its own pages
//! ([`pending_user`](TwoFactorWeb::pending_user)).
//!
//! # Done once, for every host
//!
//! - **Session fixation**: the session id is cycled ([`Session::cycle_id`], which also deletes
//!   the old id from the store) whenever privilege changes: when the login ticket is stored
//!   after the password, when the login completes (second step, forced set-up, remembered
//!   device), at step-up, and when "confirm your password" ends a login. The CSRF token is
//!   renewed with it.
//! - **Tickets and proofs in the session**: the sealed login ticket
//!   ([`PendingLogin::as_str`]) and the latest [`SecondFactorProof`] live in the (server-side)
//!   session and are parsed back on use; the library checks their seal, user, deadline,
//!   single use and revocation. The step-up guard checks the proof with
//!   [`TwoFactor::check_proof`], not only its age.
//! - **CSRF** on every POST the module serves: a per-session random token in a hidden field
//!   [`CSRF_FIELD`], compared in constant time; a POST without it, or with a wrong one, is
//!   refused (403) before anything is read or changed. The host's own forms can carry the same
//!   token ([`TwoFactorWeb::csrf_token`], [`TwoFactorWeb::verify_csrf`]). No GET changes
//!   state: forced set-up is started by the login POST and the page only shows it again (a
//!   read: a reload records nothing, [`TwoFactor::show_forced_enrollment`]).
//! - **No open redirect**: `next` is a local path (`/...`, not `//host`, no backslash or
//!   control character) or it is dropped.
//! - **Headers**: `Cache-Control: no-store` on every page of the module (set-up and recovery
//!   codes show secrets), `X-Frame-Options: DENY` and `frame-ancestors 'none'`,
//!   `Referrer-Policy: same-origin`, and `Retry-After` on a throttled answer (429).
//! - **Trusted devices**: the `__Host-` cookie of [`TwoFactor::device_cookie`] (named with the
//!   service's keyed cookie name), `Secure; HttpOnly; SameSite=Lax; Path=/`; a cookie the
//!   library refused is deleted in the same response. **HTTPS caveat**: browsers keep a
//!   `Secure` cookie only from a secure context: HTTPS, or `http://localhost` and
//!   `http://127.0.0.1` (loopback names are secure contexts, which is why the example works on
//!   a laptop). Over plain HTTP elsewhere the cookie would silently do nothing, so when the
//!   form's `Origin` is such a page the module does not create a trusted device at all, tells
//!   the user, and logs a warning.
//! - **Errors**: every [`Error`] is mapped once, by its [`kind`](Error::kind), to a status
//!   ([`Error::http_status`]), a sentence for the user and, for a login that is over (expired,
//!   edited, used, revoked ticket), a "log in again" page that drops the ticket.
//!
//! The module keeps these session keys: the logged-in user ([`DEFAULT_SESSION_KEY`] or
//! [`TwoFactorWebBuilder::session_key`]), `twofactor.ticket`, `twofactor.proof`,
//! `twofactor.password_at` (when the password was checked: sensitive changes need it within
//! [`Settings::reauth_max_age`](crate::account::Settings::reauth_max_age), else "confirm
//! your password" logs in again), `twofactor.csrf`, `twofactor.next` and `twofactor.flash`.
//! Logging out is the host's `session.flush()`.
//!
//! # Your own pages
//!
//! [`Pages`] renders each page from a view ([`SecondStepView`], [`SetupView`], ...); every
//! method defaults to [`DefaultPages`]' accessible, escaped HTML with inline CSS and no
//! external assets, and no script but the security-key buttons' inline [`KEY_SCRIPT`]
//! (feature `webauthn`). Override [`Pages::layout`] alone to put the default pages in
//! your own frame (navigation, style sheet), or override the pages you want with your
//! templates (askama, minijinja, maud), and pass them to [`TwoFactorWebBuilder::pages`]: the
//! flow, the headers and the checks stay the module's.
//!
//! [`Session::cycle_id`]: tower_sessions::Session::cycle_id
//! [`PendingLogin::as_str`]: crate::account::PendingLogin::as_str

mod authenticators;
mod pages;

#[cfg(feature = "webauthn")]
mod keys;

pub use pages::{
    AccountActions, AccountView, CSRF_FIELD, Common, DEFAULT_CSS, DefaultPages, KEY_SCRIPT,
    MailedCodeView, MessageView, Pages, RecoveryCodesView, SecondStepView, SecurityKeysView,
    SetupStep, SetupView, StepUpView, default_layout,
};
pub use pages::{AddAuthenticatorView, AddStep, AuthenticatorActions};

use core::fmt;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ::axum::extract::{Form, FromRequestParts, OriginalUri, Query, Request, State};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use ::axum::response::{IntoResponse, Redirect, Response};
use ::axum::routing::{get, post};
use ::axum::{Extension, Router};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::account::{
    AssuranceClaims, DeviceId, DeviceInfo, Enrolled, EnrollmentStarted, Factor, FactorKind,
    GrantReason, LoginContext, LoginDecision, LoginGranted, PendingLogin, PendingStep,
    Reauthenticated, RecoveryCodes, SecondFactorProof, TwoFactorStatus, UserId, Verification,
};
use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::cookie::DeviceCookie;
use crate::mail::Mailer;
use crate::policy::{EnforcementPolicy, Principal};
use crate::service::{Error, ErrorKind, TwoFactor};
use crate::vocabulary::{BoxFuture, hex};

/// The session key under which the module keeps the logged-in user's id (2FA complete) unless
/// [`TwoFactorWebBuilder::session_key`] names another.
pub const DEFAULT_SESSION_KEY: &str = "twofactor.user";

// The module's other session keys.
const TICKET: &str = "twofactor.ticket";
const PROOF: &str = "twofactor.proof";
const PASSWORD_AT: &str = "twofactor.password_at";
const CSRF: &str = "twofactor.csrf";
const NEXT: &str = "twofactor.next";
const FLASH: &str = "twofactor.flash";
/// Set while the login's last mailed code could not be sent.
const NOT_SENT: &str = "twofactor.code_not_sent";

/// The notice of an escalation: the policy wants a security key of this user, who has none.
/// The escalation's notice. It is also shown where the recovery codes of a forced set-up
/// are (so it says where to go, not "below"); the default account page, whose own banner
/// says it, leaves it out.
pub(crate) const NEEDS_SECURITY_KEY: &str =
    "Your organisation requires a security key: add one on your account security page.";

/// What a login with no recovery code left says, on the account page it leads to.
const NO_RECOVERY_CODES_LEFT: &str = "You have no recovery codes left. Make new ones now: \
     without them, losing your phone would lock you out of your account.";

/// The longest `next` path kept or followed.
const MAX_NEXT_LEN: usize = 2_048;

// ----- the service, object-safe -----

/// The store the web layer takes: any [`UserStore`](crate::store::UserStore); with the `webauthn` feature, one that
/// can also find a security key's owner ([`SecurityKeyIndex`](crate::store::SecurityKeyIndex):
/// every store this crate ships), so that the account page can register keys.
#[cfg(not(feature = "webauthn"))]
pub trait WebStore: crate::store::UserStore {}
#[cfg(not(feature = "webauthn"))]
impl<T: crate::store::UserStore> WebStore for T {}

/// The store the web layer takes: any [`UserStore`](crate::store::UserStore); with the `webauthn` feature, one that
/// can also find a security key's owner ([`SecurityKeyIndex`](crate::store::SecurityKeyIndex):
/// every store this crate ships), so that the account page can register keys.
#[cfg(feature = "webauthn")]
pub trait WebStore: crate::store::SecurityKeyIndex {}
#[cfg(feature = "webauthn")]
impl<T: crate::store::SecurityKeyIndex> WebStore for T {}

/// What the pending enrollment of a forced set-up is.
enum PendingSetup {
    /// None, or it expired.
    None,
    /// One the user started: resuming it shows the same key.
    Open,
    /// An administrator mailed a key: ask for its code, never replace it silently.
    MailedKey,
}

/// The [`TwoFactor`] calls the web layer makes, behind a trait object so that
/// [`TwoFactorWeb`] has no type parameters.
trait Backend: authenticators::AuthenticatorBackend + Send + Sync + 'static {
    fn now(&self) -> u64;
    fn reauth_max_age(&self) -> u64;
    fn device_cookie(&self) -> DeviceCookie;
    fn start_login<'a>(
        &'a self,
        principal: &'a Principal,
        token: Option<&'a str>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<LoginDecision, Error>>;
    fn finish_login<'a>(
        &'a self,
        pending: &'a PendingLogin,
        factor: Factor<'a>,
        remember: Option<&'a str>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<LoginGranted, Error>>;
    fn resend_mailed_code<'a>(
        &'a self,
        pending: &'a PendingLogin,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<u64, Error>>;
    /// The ticket's seal checks out and its deadline has not passed.
    fn ticket_open(&self, pending: &PendingLogin) -> bool;
    fn pending_setup<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<PendingSetup, Error>>;
    fn show_forced_enrollment<'a>(
        &'a self,
        pending: &'a PendingLogin,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Option<EnrollmentStarted>, Error>>;
    fn start_forced_enrollment<'a>(
        &'a self,
        pending: &'a PendingLogin,
        account: &'a str,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>>;
    fn finish_forced_enrollment<'a>(
        &'a self,
        pending: &'a PendingLogin,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Enrolled, Error>>;
    fn start_enrollment<'a>(
        &'a self,
        principal: &'a Principal,
        account: &'a str,
        reauth: Reauthenticated,
        proof: Option<&'a SecondFactorProof>,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>>;
    fn finish_enrollment<'a>(
        &'a self,
        user: &'a UserId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Enrolled, Error>>;
    fn start_rotation<'a>(
        &'a self,
        user: &'a UserId,
        account: &'a str,
        verification: Verification<'a>,
        reauth: Reauthenticated,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>>;
    fn regenerate_recovery_codes<'a>(
        &'a self,
        user: &'a UserId,
        reauth: Reauthenticated,
        verification: Verification<'a>,
    ) -> BoxFuture<'a, Result<RecoveryCodes, Error>>;
    fn disable<'a>(
        &'a self,
        principal: &'a Principal,
        reauth: Reauthenticated,
        verification: Verification<'a>,
    ) -> BoxFuture<'a, Result<(), Error>>;
    fn verify_second_factor<'a>(
        &'a self,
        user: &'a UserId,
        factor: Factor<'a>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<SecondFactorProof, Error>>;
    fn check_proof<'a>(
        &'a self,
        user: &'a UserId,
        proof: &'a SecondFactorProof,
        max_age: u64,
    ) -> BoxFuture<'a, Result<AssuranceClaims, Error>>;
    fn status<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<TwoFactorStatus, Error>>;
    fn status_for<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<TwoFactorStatus, Error>>;
    fn list_devices<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Vec<DeviceInfo>, Error>>;
    fn revoke_device<'a>(
        &'a self,
        user: &'a UserId,
        device: &'a DeviceId,
    ) -> BoxFuture<'a, Result<(), Error>>;
    fn revoke_all_devices<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<usize, Error>>;
    #[cfg(feature = "webauthn")]
    fn keys(&self) -> &dyn keys::KeyBackend;
}

impl<S, M, P, C, A> Backend for TwoFactor<S, M, P, C, A>
where
    S: WebStore + 'static,
    M: Mailer + 'static,
    P: EnforcementPolicy + 'static,
    C: Clock + 'static,
    A: AuditSink + 'static,
{
    fn now(&self) -> u64 {
        self.clock().now()
    }
    fn reauth_max_age(&self) -> u64 {
        self.settings().reauth_max_age()
    }
    fn device_cookie(&self) -> DeviceCookie {
        TwoFactor::device_cookie(self)
    }
    fn start_login<'a>(
        &'a self,
        principal: &'a Principal,
        token: Option<&'a str>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<LoginDecision, Error>> {
        Box::pin(TwoFactor::start_login(self, principal, token, ctx))
    }
    fn finish_login<'a>(
        &'a self,
        pending: &'a PendingLogin,
        factor: Factor<'a>,
        remember: Option<&'a str>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<LoginGranted, Error>> {
        Box::pin(TwoFactor::finish_login(
            self, pending, factor, remember, ctx,
        ))
    }
    fn resend_mailed_code<'a>(
        &'a self,
        pending: &'a PendingLogin,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(TwoFactor::resend_mailed_code(self, pending, ctx))
    }
    fn ticket_open(&self, pending: &PendingLogin) -> bool {
        pending.verify(self.settings()).is_ok() && pending.is_open(self.clock().now())
    }
    fn show_forced_enrollment<'a>(
        &'a self,
        pending: &'a PendingLogin,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Option<EnrollmentStarted>, Error>> {
        Box::pin(TwoFactor::show_forced_enrollment(self, pending, account))
    }
    fn pending_setup<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<PendingSetup, Error>> {
        Box::pin(async move {
            let now = self.clock().now();
            let loaded = self
                .store()
                .load(user)
                .await
                .map_err(|e| Error::Store(Box::new(e)))?;
            let Some(v) = loaded else {
                return Ok(PendingSetup::None);
            };
            Ok(match v.record.pending_enrollment_expires_at() {
                Some(t) if now < t && v.record.pending_enrollment_provisioned_by().is_some() => {
                    PendingSetup::MailedKey
                }
                Some(t) if now < t => PendingSetup::Open,
                _ => PendingSetup::None,
            })
        })
    }
    fn start_forced_enrollment<'a>(
        &'a self,
        pending: &'a PendingLogin,
        account: &'a str,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>> {
        Box::pin(TwoFactor::start_forced_enrollment(self, pending, account))
    }
    fn finish_forced_enrollment<'a>(
        &'a self,
        pending: &'a PendingLogin,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Enrolled, Error>> {
        Box::pin(TwoFactor::finish_forced_enrollment(self, pending, code))
    }
    fn start_enrollment<'a>(
        &'a self,
        principal: &'a Principal,
        account: &'a str,
        reauth: Reauthenticated,
        proof: Option<&'a SecondFactorProof>,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>> {
        match proof {
            Some(p) => Box::pin(TwoFactor::start_enrollment_with_proof(
                self, principal, account, reauth, p,
            )),
            None => Box::pin(TwoFactor::start_enrollment(
                self, principal, account, reauth,
            )),
        }
    }
    fn finish_enrollment<'a>(
        &'a self,
        user: &'a UserId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Enrolled, Error>> {
        Box::pin(TwoFactor::finish_enrollment(self, user, code))
    }
    fn start_rotation<'a>(
        &'a self,
        user: &'a UserId,
        account: &'a str,
        verification: Verification<'a>,
        reauth: Reauthenticated,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>> {
        Box::pin(TwoFactor::start_rotation(
            self,
            user,
            account,
            verification,
            reauth,
        ))
    }
    fn regenerate_recovery_codes<'a>(
        &'a self,
        user: &'a UserId,
        reauth: Reauthenticated,
        verification: Verification<'a>,
    ) -> BoxFuture<'a, Result<RecoveryCodes, Error>> {
        Box::pin(TwoFactor::regenerate_recovery_codes(
            self,
            user,
            reauth,
            verification,
        ))
    }
    fn disable<'a>(
        &'a self,
        principal: &'a Principal,
        reauth: Reauthenticated,
        verification: Verification<'a>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(TwoFactor::disable(self, principal, reauth, verification))
    }
    fn verify_second_factor<'a>(
        &'a self,
        user: &'a UserId,
        factor: Factor<'a>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<SecondFactorProof, Error>> {
        Box::pin(TwoFactor::verify_second_factor(self, user, factor, ctx))
    }
    fn check_proof<'a>(
        &'a self,
        user: &'a UserId,
        proof: &'a SecondFactorProof,
        max_age: u64,
    ) -> BoxFuture<'a, Result<AssuranceClaims, Error>> {
        Box::pin(TwoFactor::check_proof(self, user, proof, max_age))
    }
    fn status<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<TwoFactorStatus, Error>> {
        Box::pin(TwoFactor::status(self, user))
    }
    fn status_for<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<TwoFactorStatus, Error>> {
        Box::pin(TwoFactor::status_for(self, principal))
    }
    fn list_devices<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Vec<DeviceInfo>, Error>> {
        Box::pin(TwoFactor::list_devices(self, user))
    }
    fn revoke_device<'a>(
        &'a self,
        user: &'a UserId,
        device: &'a DeviceId,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(TwoFactor::revoke_device(self, user, device))
    }
    fn revoke_all_devices<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(TwoFactor::revoke_all_devices(self, user))
    }
    #[cfg(feature = "webauthn")]
    fn keys(&self) -> &dyn keys::KeyBackend {
        self
    }
}

// ----- configuration -----

type PrincipalLookup = dyn Fn(UserId) -> BoxFuture<'static, Option<Principal>> + Send + Sync;

/// Every path the module serves or sends to.
#[derive(Debug, Clone)]
struct Paths {
    login: String,
    after_login: String,
    second_step: String,
    resend: String,
    setup: String,
    setup_restart: String,
    account: String,
    enable: String,
    confirm: String,
    replace: String,
    recovery_codes: String,
    disable: String,
    revoke_device: String,
    revoke_all_devices: String,
    reauthenticate: String,
    step_up: String,
    add_authenticator: String,
    add_authenticator_confirm: String,
    rename_authenticator: String,
    /// The security-key endpoints (feature `webauthn`): the login's and the step-up's
    /// options, the registration's options and answer.
    key_login_options: String,
    key_step_up_options: String,
    key_options: String,
    add_key: String,
    remove_authenticator: String,
}

impl Paths {
    fn new(prefix: &str, login: String, after_login: String) -> Self {
        let p = |s: &str| format!("{prefix}{s}");
        Paths {
            login,
            after_login,
            second_step: prefix.to_owned(),
            resend: p("/resend"),
            setup: p("/setup"),
            setup_restart: p("/setup/restart"),
            account: p("/account"),
            enable: p("/account/enable"),
            confirm: p("/account/confirm"),
            replace: p("/account/replace"),
            recovery_codes: p("/account/recovery-codes"),
            disable: p("/account/disable"),
            revoke_device: p("/account/devices/revoke"),
            revoke_all_devices: p("/account/devices/revoke-all"),
            reauthenticate: p("/account/reauthenticate"),
            step_up: p("/step-up"),
            add_authenticator: p("/account/authenticators/add"),
            add_authenticator_confirm: p("/account/authenticators/confirm"),
            rename_authenticator: p("/account/authenticators/rename"),
            key_login_options: p("/key/options"),
            key_step_up_options: p("/step-up/key/options"),
            key_options: p("/account/keys/options"),
            add_key: p("/account/keys"),
            remove_authenticator: p("/account/authenticators/remove"),
        }
    }
}

struct Inner {
    tf: Arc<dyn Backend>,
    principals: Box<PrincipalLookup>,
    pages: Box<dyn Pages>,
    cookies: DeviceCookie,
    paths: Paths,
    user_key: String,
    app_name: String,
}

/// The 2FA web layer: routes, guards and the one call after the password check. Cheap to
/// clone (an `Arc`); make one with [`TwoFactorWeb::new`] or [`TwoFactorWeb::builder`].
///
/// See the [module documentation](self) for what it serves and what the host writes.
#[derive(Clone)]
pub struct TwoFactorWeb {
    inner: Arc<Inner>,
}

impl fmt::Debug for TwoFactorWeb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorWeb")
            .field("paths", &self.inner.paths)
            .field("session_key", &self.inner.user_key)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TwoFactorWeb`]; see [`TwoFactorWeb::builder`].
#[must_use]
pub struct TwoFactorWebBuilder {
    tf: Arc<dyn Backend>,
    principals: Box<PrincipalLookup>,
    pages: Box<dyn Pages>,
    prefix: String,
    login: String,
    after_login: String,
    user_key: String,
    app_name: String,
}

impl fmt::Debug for TwoFactorWebBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorWebBuilder")
            .field("prefix", &self.prefix)
            .field("login", &self.login)
            .field("after_login", &self.after_login)
            .field("session_key", &self.user_key)
            .finish_non_exhaustive()
    }
}

impl TwoFactorWebBuilder {
    /// Where the module's routes live (default `/2fa`): `/2fa` is the second step,
    /// `/2fa/setup` forced set-up, `/2fa/account` the account security page, `/2fa/step-up`
    /// step-up. Merge [`TwoFactorWeb::router`] into your router (do not `nest` it).
    ///
    /// # Panics
    /// In [`build`](Self::build), unless it is a path like `/2fa` (starts with one `/`, does
    /// not end with one).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The host's login page (default `/login`): where the guards send a visitor who is not
    /// logged in, and where "log in again" leads.
    ///
    /// # Panics
    /// In [`build`](Self::build), unless it is a local path (`/...`).
    pub fn login_page(mut self, path: impl Into<String>) -> Self {
        self.login = path.into();
        self
    }

    /// Where a completed login goes when no guarded page was asked for first (default `/`).
    ///
    /// # Panics
    /// In [`build`](Self::build), unless it is a local path (`/...`).
    pub fn after_login(mut self, path: impl Into<String>) -> Self {
        self.after_login = path.into();
        self
    }

    /// The session key that holds the logged-in user's id (a string) once 2FA is complete
    /// (default [`DEFAULT_SESSION_KEY`]). Point it at the key your application already reads
    /// (`session.get::<String>("user")`), and only the module writes it: nobody is logged in
    /// without 2FA complete.
    pub fn session_key(mut self, key: impl Into<String>) -> Self {
        self.user_key = key.into();
        self
    }

    /// The application's name, in every page's `<title>` (default: the service's issuer, or
    /// "Account").
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// Renders the pages with your own templates (default [`DefaultPages`]).
    pub fn pages(mut self, pages: impl Pages) -> Self {
        self.pages = Box::new(pages);
        self
    }

    /// The web layer.
    ///
    /// # Panics
    /// If a configured path is not a local path (see the setters): a mistake in the app's
    /// code, found at start-up. [`try_build`](Self::try_build) returns it as an error
    /// instead, for paths read from configuration.
    #[must_use]
    pub fn build(self) -> TwoFactorWeb {
        match self.try_build() {
            Ok(web) => web,
            Err(e) => panic!("{e}"),
        }
    }

    /// The web layer, or which configured path is not a local path.
    ///
    /// # Errors
    /// [`PathError`] when the prefix is not a path like `"/2fa"` (absolute, local, no
    /// trailing slash), or the login page or `after_login` is not a local path (`"/..."`).
    ///
    /// ```
    /// # use twofactor::axum::TwoFactorWeb;
    /// # use twofactor::{MemoryStore, Principal, TwoFactor};
    /// let tf = TwoFactor::builder(MemoryStore::new()).build();
    /// let web = TwoFactorWeb::builder(tf, |user| async move { Some(Principal::new(user)) })
    ///     .login_page("https://evil.example/login");
    /// let e = web.try_build().err().expect("not a local path");
    /// assert!(e.to_string().contains("login page"));
    /// ```
    pub fn try_build(self) -> Result<TwoFactorWeb, PathError> {
        let prefix = self.prefix;
        if safe_next(&prefix).is_none() || prefix.ends_with('/') {
            return Err(PathError {
                what: "prefix",
                path: prefix,
            });
        }
        for (what, path) in [
            ("login page", &self.login),
            ("after_login", &self.after_login),
        ] {
            if safe_next(path).is_none() {
                return Err(PathError {
                    what,
                    path: path.clone(),
                });
            }
        }
        let cookies = self.tf.device_cookie();
        Ok(TwoFactorWeb {
            inner: Arc::new(Inner {
                tf: self.tf,
                principals: self.principals,
                pages: self.pages,
                cookies,
                paths: Paths::new(&prefix, self.login, self.after_login),
                user_key: self.user_key,
                app_name: self.app_name,
            }),
        })
    }
}

/// A path given to [`TwoFactorWebBuilder`] that is not a local path of this site: the prefix
/// (a path like `"/2fa"`), the login page or `after_login` (`"/..."`). Following such a path
/// after a login would be an open redirect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "twofactor::axum: the {what} must be a local path (\"/...\"; the prefix without a trailing slash), not {path:?}"
)]
pub struct PathError {
    what: &'static str,
    path: String,
}

impl TwoFactorWeb {
    /// The web layer for `tf`, with every default (see [`builder`](Self::builder)).
    ///
    /// `tf` is the service, or an `Arc` of it: keep a clone of the `Arc` to call the service
    /// from your own handlers too (an administrator's reset, a status on your pages).
    ///
    /// `principals` looks up the [`Principal`] (roles, tenant) of a logged-in user, for the
    /// pages whose outcome depends on the policy (the account page's "required", turning 2FA
    /// on or off). `None` (no such user any more, or the lookup failed) logs the session out.
    pub fn new<S, M, P, C, A, F, Fut>(
        tf: impl Into<Arc<TwoFactor<S, M, P, C, A>>>,
        principals: F,
    ) -> Self
    where
        S: WebStore + 'static,
        M: Mailer + 'static,
        P: EnforcementPolicy + 'static,
        C: Clock + 'static,
        A: AuditSink + 'static,
        F: Fn(UserId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Principal>> + Send + 'static,
    {
        Self::builder(tf, principals).build()
    }

    /// Configures the web layer for `tf` (see [`new`](Self::new) for `principals`):
    ///
    /// | setting | default |
    /// |---|---|
    /// | [`prefix`](TwoFactorWebBuilder::prefix) | `/2fa` |
    /// | [`login_page`](TwoFactorWebBuilder::login_page) | `/login` |
    /// | [`after_login`](TwoFactorWebBuilder::after_login) | `/` |
    /// | [`session_key`](TwoFactorWebBuilder::session_key) | [`DEFAULT_SESSION_KEY`] |
    /// | [`pages`](TwoFactorWebBuilder::pages) | [`DefaultPages`] |
    /// | [`app_name`](TwoFactorWebBuilder::app_name) | the issuer, or "Account" |
    pub fn builder<S, M, P, C, A, F, Fut>(
        tf: impl Into<Arc<TwoFactor<S, M, P, C, A>>>,
        principals: F,
    ) -> TwoFactorWebBuilder
    where
        S: WebStore + 'static,
        M: Mailer + 'static,
        P: EnforcementPolicy + 'static,
        C: Clock + 'static,
        A: AuditSink + 'static,
        F: Fn(UserId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Principal>> + Send + 'static,
    {
        let tf: Arc<TwoFactor<S, M, P, C, A>> = tf.into();
        let app_name = tf.settings().issuer().unwrap_or("Account").to_owned();
        TwoFactorWebBuilder {
            tf,
            principals: Box::new(move |user| Box::pin(principals(user))),
            pages: Box::new(DefaultPages),
            prefix: "/2fa".into(),
            login: "/login".into(),
            after_login: "/".into(),
            user_key: DEFAULT_SESSION_KEY.into(),
            app_name,
        }
    }

    /// The module's routes (the second step, the mailed-code page, forced set-up, the account
    /// security page, step-up), for any router state: `Router::new()...merge(tfa.router())`.
    pub fn router<T: Clone + Send + Sync + 'static>(&self) -> Router<T> {
        let p = &self.inner.paths;
        Router::new()
            .route(
                &p.second_step,
                get(second_step_page).post(second_step_submit),
            )
            .route(&p.resend, post(resend))
            .route(&p.setup, get(setup_page).post(setup_submit))
            .route(&p.setup_restart, post(setup_restart))
            .route(&p.account, get(account_page))
            .route(&p.enable, post(enable))
            .route(&p.confirm, post(confirm))
            .route(&p.replace, post(replace))
            .route(&p.recovery_codes, post(regenerate))
            .route(&p.disable, post(disable))
            .route(&p.revoke_device, post(revoke_device))
            .route(&p.revoke_all_devices, post(revoke_all_devices))
            .route(&p.reauthenticate, post(reauthenticate))
            .route(&p.step_up, get(step_up_page).post(step_up_submit))
            .route(&p.add_authenticator, post(authenticators::add))
            .route(&p.add_authenticator_confirm, post(authenticators::confirm))
            .route(&p.rename_authenticator, post(authenticators::rename))
            .route(&p.remove_authenticator, post(authenticators::remove))
            .merge(keys_router(p))
            .with_state(self.clone())
    }

    /// Makes this web layer reachable from the [`Login`] extractor of the host's login
    /// handler: `.layer(tfa.layer())` on the router (inside the session layer).
    pub fn layer(&self) -> Extension<TwoFactorWeb> {
        Extension(self.clone())
    }

    /// A guard for the host's routes: only a session logged in with 2FA complete passes (its
    /// [`UserId`] is then in the request's extensions: `Extension<UserId>`). Anyone else is
    /// sent to the login page, and back to the page they asked for once logged in.
    ///
    /// `.route_layer(tfa.require_login())` guards the routes added before it. On a
    /// `Router` it also answers the methods a route does not serve (a redirect to the login
    /// page where axum would say 405); on a method router (`post(handler).route_layer(..)`)
    /// it guards that handler only.
    #[must_use]
    pub fn require_login(&self) -> RequireTwoFactor {
        RequireTwoFactor {
            web: self.clone(),
            max_age: None,
        }
    }

    /// A step-up guard for the host's sensitive routes: like
    /// [`require_login`](Self::require_login), and the user must have proven a second factor
    /// (at login or on the step-up page) within `max_age`; otherwise they are sent to the
    /// step-up page and back. A POST without a fresh proof is not carried out: after step-up
    /// the user is sent back to the page its form was on (its `Referer`, when that names a
    /// page of this site; else the account page) to submit it again. The proof in the session
    /// is checked by the library (its seal, its user, not revoked), not only its age. A user without an authenticator cannot pass
    /// (a mailed-code login counts only while its proof is fresh): the step-up page sends
    /// them to turn 2FA on.
    ///
    /// `max_age` is the host's choice, per route ("a second factor in the last 5 minutes"
    /// before a payment, longer before a settings page). A request that passes carries the
    /// checked [`AssuranceClaims`] of that proof as a request extension
    /// (`Extension<AssuranceClaims>`), for a handler that wants to say how the user proved it
    /// or to ask for AAL2 ([`AssuranceClaims::satisfies`]) where a mailed code must not do.
    #[must_use]
    pub fn require_recent_2fa(&self, max_age: Duration) -> RequireTwoFactor {
        RequireTwoFactor {
            web: self.clone(),
            max_age: Some(max_age),
        }
    }

    /// The account security page's path (link to it from your pages).
    #[must_use]
    pub fn account_path(&self) -> &str {
        &self.inner.paths.account
    }

    /// The step-up page's path.
    #[must_use]
    pub fn step_up_path(&self) -> &str {
        &self.inner.paths.step_up
    }

    /// The user this session is logged in as, with 2FA complete; `None` otherwise (also while
    /// a login waits for its second step).
    pub async fn logged_in_user(&self, session: &Session) -> Option<UserId> {
        match session.get::<String>(&self.inner.user_key).await {
            Ok(user) => user.filter(|u| !u.is_empty()).map(UserId::new),
            Err(e) => {
                tracing::error!(error = %e, "session store failed");
                None
            }
        }
    }

    /// The user whose login in this session waits for its second step or its forced set-up:
    /// the password was checked and the login ticket (sealed, checked here) is still open.
    /// `None` otherwise, and once the login completed (then see
    /// [`logged_in_user`](Self::logged_in_user)). For the host's own pages that serve a
    /// half-logged-in visitor ("logging in as alice", a help page); it grants nothing.
    pub async fn pending_user(&self, session: &Session) -> Option<UserId> {
        let pending = match self.ticket(session).await {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => return None,
        };
        self.tf()
            .ticket_open(&pending)
            .then(|| pending.user().clone())
    }

    /// The session's CSRF token, for the host's own forms (the module's forms carry it
    /// already): put it in a hidden field named [`CSRF_FIELD`] and check it with
    /// [`verify_csrf`](Self::verify_csrf) before the handler reads or changes anything. One
    /// token per session, made on first use and renewed whenever the module cycles the
    /// session id (so render a form after the call that logged the session in). `None` when
    /// the session store or the random number generator failed (logged): answer 503.
    pub async fn csrf_token(&self, session: &Session) -> Option<String> {
        self.session_csrf(session).await.ok()
    }

    /// Whether `token` (the posted [`CSRF_FIELD`]) is this session's CSRF token, compared in
    /// constant time. `false` when the session never had one (no form of this site was shown
    /// to it) or its store failed: refuse the request (403) before reading or changing
    /// anything.
    pub async fn verify_csrf(&self, session: &Session, token: &str) -> bool {
        match session.get::<String>(CSRF).await {
            Ok(expected) => csrf_matches(&expected.unwrap_or_default(), token),
            Err(e) => {
                tracing::error!(error = %e, "session store failed");
                false
            }
        }
    }

    /// The one call after the host checked the password: answers with the response to send.
    ///
    /// - no second factor needed (2FA off, not required, a remembered device): the session
    ///   is logged in (its id cycled) and the response redirects to the page a guard
    ///   interrupted, or to [`after_login`](TwoFactorWebBuilder::after_login);
    /// - a code is needed: the login ticket goes into the session (its id cycled) and the
    ///   response redirects to the second step (a code or a recovery code, or the mailed
    ///   code, which was just sent; if it could not be sent, the page says so and its resend
    ///   button tries again with the same ticket);
    /// - 2FA is required and not set up: the ticket goes into the session and the response
    ///   redirects to forced set-up;
    /// - throttled or failed: the error page (429 with `Retry-After`, 503, ...).
    ///
    /// A device cookie the library refused is deleted in the same response. [`Login`] is the
    /// extractor that calls this with the request's session and headers.
    pub async fn password_checked(
        &self,
        session: &Session,
        headers: &HeaderMap,
        principal: Principal,
    ) -> Response {
        self.start(session, headers, principal)
            .await
            .unwrap_or_else(|halt| halt.0)
    }
}

// ----- the guards -----

/// The guard layer of [`TwoFactorWeb::require_login`] and
/// [`TwoFactorWeb::require_recent_2fa`]: put it on the host's routes with `route_layer`.
#[derive(Clone)]
pub struct RequireTwoFactor {
    web: TwoFactorWeb,
    max_age: Option<Duration>,
}

impl fmt::Debug for RequireTwoFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireTwoFactor")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl<S> tower_layer::Layer<S> for RequireTwoFactor {
    type Service = RequireTwoFactorService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireTwoFactorService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service [`RequireTwoFactor`] wraps a route in.
#[derive(Clone)]
pub struct RequireTwoFactorService<S> {
    inner: S,
    guard: RequireTwoFactor,
}

impl<S> fmt::Debug for RequireTwoFactorService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireTwoFactorService")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<S> tower_service::Service<Request> for RequireTwoFactorService<S>
where
    S: tower_service::Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready serves this request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.web.admit(&mut req, guard.max_age).await {
                Ok(()) => match inner.call(req).await {
                    Ok(r) => Ok(r.into_response()),
                    Err(never) => match never {},
                },
                Err(halt) => Ok(halt.0),
            }
        })
    }
}

// ----- the login extractor -----

/// The host's login handler extracts this, checks the password, then hands the principal to
/// [`Login::password_checked`], whose response it returns. Needs the session layer
/// (tower-sessions) and `.layer(tfa.layer())` on the router.
///
/// ```no_run
/// # use axum::{Form, response::Response};
/// # use twofactor::{Principal, axum::Login};
/// # #[derive(serde::Deserialize)] struct Credentials { username: String, password: String }
/// # fn password_ok(_: &str, _: &str) -> bool { true }
/// async fn login(tfa: Login, Form(f): Form<Credentials>) -> Response {
///     if !password_ok(&f.username, &f.password) {
///         return tfa.wrong_password_page().await; // or your own page
///     }
///     tfa.password_checked(Principal::new(f.username)).await
/// }
/// ```
pub struct Login {
    web: TwoFactorWeb,
    session: Session,
    headers: HeaderMap,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login").finish_non_exhaustive()
    }
}

impl Login {
    /// The password was right: see [`TwoFactorWeb::password_checked`].
    pub async fn password_checked(self, principal: Principal) -> Response {
        self.web
            .password_checked(&self.session, &self.headers, principal)
            .await
    }

    /// A plain "wrong name or password" page (401), for hosts without their own.
    pub async fn wrong_password_page(self) -> Response {
        self.web
            .message(
                &self.session,
                StatusCode::UNAUTHORIZED,
                "Log in",
                "Wrong name or password.",
                Some((&self.web.inner.paths.login, "Try again")),
            )
            .await
            .unwrap_or_else(|h| h.0)
    }

    /// The session.
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.session
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Login {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let web = parts
            .extensions
            .get::<TwoFactorWeb>()
            .cloned()
            .ok_or_else(|| {
                misconfigured("twofactor::axum::Login needs `.layer(tfa.layer())` on the router")
            })?;
        let session = session_of(&parts.extensions)?;
        Ok(Login {
            web,
            session,
            headers: parts.headers.clone(),
        })
    }
}

// ----- internals -----

/// A response that ends the request early (an error page, a redirect).
struct Halt(Response);

impl From<tower_sessions::session::Error> for Halt {
    fn from(e: tower_sessions::session::Error) -> Self {
        tracing::error!(error = %e, "session store failed");
        Halt(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "The session store failed. Please try again in a moment.",
        ))
    }
}

impl IntoResponse for Halt {
    fn into_response(self) -> Response {
        self.0
    }
}

type Flow = Result<Response, Halt>;

fn plain(status: StatusCode, text: &'static str) -> Response {
    with_page_headers((
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    ))
}

fn misconfigured(why: &'static str) -> Response {
    tracing::error!("{why}");
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "This service is not set up correctly.",
    )
}

#[allow(clippy::result_large_err)] // the rejection of an extractor: a response either way
fn session_of(ext: &::axum::http::Extensions) -> Result<Session, Response> {
    ext.get::<Session>().cloned().ok_or_else(|| {
        misconfigured("twofactor::axum needs tower-sessions' SessionManagerLayer around the router")
    })
}

/// The headers every page of the module is sent with.
fn with_page_headers(r: impl IntoResponse) -> Response {
    let mut r = r.into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn html(status: StatusCode, body: String) -> Response {
    with_page_headers((
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    ))
}

fn to(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// `next` if it is a path on this site: `/...`, not `//host` or `/\host`, no control
/// characters or backslashes, not absurdly long. Anything else is dropped (no open redirect).
fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= MAX_NEXT_LEN
        && !next.chars().any(|c| c == '\\' || c.is_control());
    ok.then_some(next)
}

/// What the user reads about an error, and how it is answered: every [`Error`] of the
/// module is mapped here, once, by its [`kind`](Error::kind).
struct Problem {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    /// The login this page belongs to is over: drop it and log in again.
    restart: bool,
}

fn problem(e: &Error, now: u64) -> Problem {
    let retry_after = e.retry_after(now);
    let (message, restart) = match e.kind() {
        ErrorKind::WrongCode => (
            "That code is not valid. Check it and try again.".into(),
            false,
        ),
        ErrorKind::MalformedInput => (
            "That is not a code: enter the 6-digit code from your app, or a recovery code.".into(),
            false,
        ),
        ErrorKind::Throttled => (
            format!(
                "Too many attempts. Try again in {}.",
                wait_text(retry_after.unwrap_or(1))
            ),
            false,
        ),
        ErrorKind::NotAllowedNow => match e {
            Error::SecondFactorRequired => (
                "First confirm with a code from your authenticator app (or, under a mailed-code \
                 login, log in again with the code we mail you)."
                    .into(),
                false,
            ),
            Error::InvalidProof => (
                "Your earlier confirmation is no longer valid: enter a code.".into(),
                false,
            ),
            Error::RequiredByPolicy => (
                "Your organisation requires two-factor authentication: it cannot be turned off."
                    .into(),
                false,
            ),
            Error::ReauthenticationRequired => (
                "For your security, confirm your password (log in again) first.".into(),
                false,
            ),
            _ => ("Your login has expired. Please log in again.".into(), true),
        },
        ErrorKind::Conflict => (
            "This page was out of date. Please start again.".into(),
            true,
        ),
        ErrorKind::Unavailable => {
            tracing::warn!(error = %e, "2FA service unavailable");
            (
                "Something went wrong on our side. Please try again in a moment.".into(),
                false,
            )
        }
        _ => {
            tracing::error!(error = %e, "2FA service misconfigured");
            (
                "This service is not set up correctly. Please contact support.".into(),
                false,
            )
        }
    };
    #[cfg(feature = "webauthn")]
    let message = keys::key_message(e).map_or(message, str::to_owned);
    Problem {
        status: StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        message,
        retry_after,
        restart,
    }
}

/// "40 seconds", "12 minutes", "2 hours".
fn wait_text(seconds: u64) -> String {
    let (n, unit) = match seconds {
        0..=90 => (seconds.max(1), "second"),
        91..=5_399 => (seconds.div_ceil(60), "minute"),
        _ => (seconds.div_ceil(3_600), "hour"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "Chrome on Linux", from the `User-Agent` header (a label for the trusted-device list).
fn device_label(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let browser = [
        ("Firefox", "Firefox"),
        ("Edg", "Edge"),
        ("Chrome", "Chrome"),
        ("Safari", "Safari"),
    ]
    .into_iter()
    .find(|(k, _)| ua.contains(k))
    .map_or("A browser", |(_, name)| name);
    let os = [
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Mac OS", "macOS"),
        ("Android", "Android"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(k, _)| ua.contains(k))
    .map_or("an unknown system", |(_, name)| name);
    format!("{browser} on {os}")
}

fn login_context(headers: &HeaderMap) -> LoginContext {
    LoginContext::new().device(device_label(headers))
}

/// Whether the browser keeps a `Secure` (`__Host-`) cookie from this page: the form's
/// `Origin` is `https:`, or plain `http:` on a loopback name (browsers treat
/// `http://localhost` and `http://127.0.0.1` as secure contexts). No `Origin`: assumed
/// (production is served over HTTPS).
fn keeps_secure_cookies(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = origin.strip_prefix("http://") else {
        return true; // https:, or "null"
    };
    let host = host.split('/').next().unwrap_or("");
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn cookie_header(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a form's CSRF token is the session's (constant time; a session without one
/// matches nothing).
fn csrf_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The path (and query) of a `Referer` that names a page of this site (`host`, the request's
/// `Host`), for the page a form was posted from; `None` for another site's page, or a path
/// that is not a safe `next`.
fn referer_path<'h>(referer: &'h str, host: &str) -> Option<&'h str> {
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    if host.is_empty() || !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    safe_next(path.split('#').next().unwrap_or(path))
}

fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut bytes).ok()?;
    Some(hex(&bytes))
}

/// A POSTed form.
type Fields = Form<HashMap<String, String>>;

fn field<'f>(form: &'f HashMap<String, String>, name: &str) -> &'f str {
    form.get(name).map_or("", |v| v.trim())
}

/// The second factor for a sensitive call: the code typed in the form, or else the fresh
/// proof in the session.
fn verification<'a>(
    code: &'a str,
    proof: Option<&'a SecondFactorProof>,
) -> Result<Verification<'a>, Error> {
    if code.is_empty() {
        proof
            .map(Verification::Proof)
            .ok_or(Error::SecondFactorRequired)
    } else {
        Ok(Verification::Code(Factor::parse(code)?))
    }
}

impl TwoFactorWeb {
    fn tf(&self) -> &dyn Backend {
        &*self.inner.tf
    }

    fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    /// The session's CSRF token, made on first use.
    async fn session_csrf(&self, session: &Session) -> Result<String, Halt> {
        if let Some(t) = session.get::<String>(CSRF).await? {
            return Ok(t);
        }
        self.new_csrf_token(session).await
    }

    async fn new_csrf_token(&self, session: &Session) -> Result<String, Halt> {
        let t = random_token().ok_or_else(|| {
            Halt(misconfigured(
                "the operating system's random number generator failed",
            ))
        })?;
        session.insert(CSRF, &t).await?;
        Ok(t)
    }

    /// Refuses a POST whose CSRF token is missing or wrong (compared in constant time):
    /// nothing is read or changed before this passes.
    async fn check_csrf(
        &self,
        session: &Session,
        form: &HashMap<String, String>,
    ) -> Result<(), Halt> {
        let expected = session.get::<String>(CSRF).await?.unwrap_or_default();
        let given = form.get(CSRF_FIELD).map_or("", String::as_str);
        if csrf_matches(&expected, given) {
            return Ok(());
        }
        Err(Halt(
            self.message(
                session,
                StatusCode::FORBIDDEN,
                "This form has expired",
                "This form has expired or did not come from this site. Reload the page and try again.",
                None,
            )
            .await?,
        ))
    }

    /// Renders a page through [`Pages`] with the session's CSRF token and flash message.
    async fn render(
        &self,
        session: &Session,
        title: &str,
        status: StatusCode,
        error: Option<&Problem>,
        view: impl FnOnce(Common<'_>) -> String,
    ) -> Flow {
        let token = self.session_csrf(session).await?;
        let flash = session.remove::<String>(FLASH).await?;
        let user = self.logged_in_user(session).await;
        let common = Common {
            title,
            user: user.as_ref(),
            app_name: &self.inner.app_name,
            csrf_token: &token,
            notice: flash.as_deref(),
            error: error.map(|p| p.message.as_str()),
            status: status.as_u16(),
        };
        let mut r = html(status, view(common));
        if let Some(wait) = error.and_then(|p| p.retry_after) {
            r.headers_mut().insert(header::RETRY_AFTER, wait.into());
        }
        Ok(r)
    }

    async fn message(
        &self,
        session: &Session,
        status: StatusCode,
        title: &str,
        text: &str,
        link: Option<(&str, &str)>,
    ) -> Flow {
        let p = Problem {
            status,
            message: text.to_owned(),
            retry_after: None,
            restart: false,
        };
        self.problem_page(session, title, &p, link).await
    }

    async fn problem_page(
        &self,
        session: &Session,
        title: &str,
        p: &Problem,
        link: Option<(&str, &str)>,
    ) -> Flow {
        let pages = &self.inner.pages;
        self.render(session, title, p.status, Some(p), |common| {
            pages.message(&MessageView { common, link })
        })
        .await
    }

    async fn flash(&self, session: &Session, text: impl Into<String>) -> Result<(), Halt> {
        session.insert(FLASH, text.into()).await?;
        Ok(())
    }

    /// Forgets this session's login state (logged-in user, ticket, proof).
    async fn forget_login(&self, session: &Session) -> Result<(), Halt> {
        session.remove_value(&self.inner.user_key).await?;
        self.drop_ticket(session).await?;
        session.remove_value(PROOF).await?;
        session.remove_value(PASSWORD_AT).await?;
        session.remove_value(authenticators::CLAIMS).await?;
        Ok(())
    }

    /// A privilege change: a new session id (the old one stops working at once: tower-sessions
    /// deletes it from the store) and a new CSRF token.
    async fn cycle(&self, session: &Session) -> Result<(), Halt> {
        session.cycle_id().await?;
        self.new_csrf_token(session).await?;
        Ok(())
    }

    async fn store_ticket(&self, session: &Session, pending: &PendingLogin) -> Result<(), Halt> {
        self.cycle(session).await?;
        session.remove_value(NOT_SENT).await?;
        session.insert(TICKET, pending.as_str()).await?;
        Ok(())
    }

    /// Forgets the login ticket (and what the session knew of its mailed code).
    async fn drop_ticket(&self, session: &Session) -> Result<(), Halt> {
        session.remove_value(TICKET).await?;
        session.remove_value(NOT_SENT).await?;
        Ok(())
    }

    /// The login ticket in the session (parsed; the library checks its seal on use).
    async fn ticket(&self, session: &Session) -> Result<Option<PendingLogin>, Halt> {
        let Some(raw) = session.get::<String>(TICKET).await? else {
            return Ok(None);
        };
        Ok(raw.parse().ok())
    }

    async fn proof(&self, session: &Session) -> Result<Option<SecondFactorProof>, Halt> {
        let Some(raw) = session.get::<String>(PROOF).await? else {
            return Ok(None);
        };
        Ok(raw.parse().ok())
    }

    /// Logs the session in: new id, the user, when their password was checked, the proof of
    /// the factor (if any). Returns where to go: the page a guard interrupted, else the
    /// after-login page.
    async fn complete_login(
        &self,
        session: &Session,
        user: &UserId,
        password_at: u64,
        proof: Option<&SecondFactorProof>,
    ) -> Result<String, Halt> {
        self.cycle(session).await?;
        self.drop_ticket(session).await?;
        session.insert(&self.inner.user_key, user.as_str()).await?;
        session.insert(PASSWORD_AT, password_at).await?;
        match proof {
            Some(p) => session.insert(PROOF, p.as_str()).await?,
            None => drop(session.remove_value(PROOF).await?),
        }
        // The login's claims (a grant without a proof sets its own after this).
        match proof {
            Some(p) => session.insert(authenticators::CLAIMS, p.claims()).await?,
            None => drop(session.remove_value(authenticators::CLAIMS).await?),
        }
        let next = session.remove::<String>(NEXT).await?;
        Ok(next
            .as_deref()
            .and_then(safe_next)
            .unwrap_or(&self.paths().after_login)
            .to_owned())
    }

    /// A login step with no usable ticket: logged in already → onwards; otherwise the
    /// login page.
    async fn no_ticket(&self, session: &Session) -> Flow {
        if self.logged_in_user(session).await.is_some() {
            return Ok(to(&self.paths().after_login));
        }
        Ok(to(&self.paths().login))
    }

    /// The page for a login that is over (expired, edited, used, revoked): the ticket is
    /// dropped.
    async fn login_over(&self, session: &Session, p: &Problem) -> Flow {
        self.drop_ticket(session).await?;
        self.problem_page(
            session,
            "Log in again",
            p,
            Some((&self.paths().login, "Log in again")),
        )
        .await
    }

    async fn start(&self, session: &Session, headers: &HeaderMap, principal: Principal) -> Flow {
        let tf = self.tf();
        let ctx = login_context(headers);
        let cookies = cookie_header(headers);
        let token = self
            .inner
            .cookies
            .token_from_header(&cookies, &principal.user);
        self.forget_login(session).await?;
        let decision = match tf.start_login(&principal, token, &ctx).await {
            Ok(d) => d,
            Err(e) => {
                let p = problem(&e, tf.now());
                return self
                    .problem_page(session, "Log in", &p, Some((&self.paths().login, "Back")))
                    .await;
            }
        };
        let forget = token.is_some() && decision.forget_device_cookie();
        let mut response = match decision {
            LoginDecision::Granted { reason, claims } => {
                let mut to_page = self
                    .complete_login(session, &principal.user, tf.now(), None)
                    .await?;
                session.insert(authenticators::CLAIMS, &claims).await?;
                // A remembered device skips the code, not the recovery codes' warning.
                if matches!(reason, GrantReason::TrustedDevice { .. })
                    && tf
                        .status(&principal.user)
                        .await
                        .is_ok_and(|s| s.must_regenerate_recovery_codes)
                {
                    self.flash(session, NO_RECOVERY_CODES_LEFT).await?;
                    to_page = self.paths().account.clone();
                }
                to(&to_page)
            }
            LoginDecision::MustEnroll { pending } => {
                self.store_ticket(session, &pending).await?;
                // Start the set-up here (a POST), so that showing it is a read: the set-up
                // page only resumes it. A key an administrator mailed is kept.
                if let Ok(PendingSetup::None) = tf.pending_setup(pending.user()).await
                    && let Err(e) = tf
                        .start_forced_enrollment(&pending, pending.user().as_str())
                        .await
                {
                    tracing::warn!(error = %e, "forced set-up not started");
                }
                to(&self.paths().setup)
            }
            LoginDecision::CodeNotSent { pending, error } => {
                tracing::warn!(%error, "the login code could not be mailed");
                self.store_ticket(session, &pending).await?;
                session.insert(NOT_SENT, true).await?;
                to(&self.paths().second_step)
            }
            other => match other.into_pending() {
                Some(pending) => {
                    self.store_ticket(session, &pending).await?;
                    to(&self.paths().second_step)
                }
                None => return Err(Halt(misconfigured("a login decision without a ticket"))),
            },
        };
        if forget {
            let removal = self.inner.cookies.removal_header(&principal.user);
            if let Ok(v) = HeaderValue::from_str(&removal) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        Ok(response)
    }

    // ----- the second step -----

    async fn render_second_step(
        &self,
        session: &Session,
        pending: &PendingLogin,
        error: Option<&Problem>,
    ) -> Flow {
        let status = error.map_or(StatusCode::OK, |p| p.status);
        let pages = &self.inner.pages;
        let paths = self.paths();
        if let PendingStep::MailedCode { .. } = pending.step() {
            let code_not_sent = session.get::<bool>(NOT_SENT).await?.unwrap_or(false);
            let title = if code_not_sent {
                "We could not send your code"
            } else {
                "Check your e-mail"
            };
            return self
                .render(session, title, status, error, |common| {
                    pages.mailed_code(&MailedCodeView {
                        common,
                        action: &paths.second_step,
                        resend_action: &paths.resend,
                        code_not_sent,
                    })
                })
                .await;
        }
        let accepts_recovery_code = pending.accepts(FactorKind::RecoveryCode);
        let accepts_code = pending.accepts(FactorKind::Totp);
        let security_key = (cfg!(feature = "webauthn") && pending.accepts(FactorKind::SecurityKey))
            .then_some(paths.key_login_options.as_str());
        self.render(
            session,
            "Two-factor authentication",
            status,
            error,
            |common| {
                pages.second_step(&SecondStepView {
                    common,
                    action: &paths.second_step,
                    accepts_recovery_code,
                    offer_remember: true,
                    accepts_code,
                    security_key,
                })
            },
        )
        .await
    }

    async fn second_step_page(&self, session: &Session) -> Flow {
        let Some(pending) = self.ticket(session).await? else {
            return self.no_ticket(session).await;
        };
        if let PendingStep::Enrollment = pending.step() {
            return Ok(to(&self.paths().setup));
        }
        self.render_second_step(session, &pending, None).await
    }

    async fn second_step_submit(
        &self,
        session: &Session,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Flow {
        self.check_csrf(session, form).await?;
        let tf = self.tf();
        let Some(pending) = self.ticket(session).await? else {
            let p = problem(&Error::LoginExpired, tf.now());
            return self.login_over(session, &p).await;
        };
        let input = field(form, "code");
        let mailed = matches!(pending.step(), PendingStep::MailedCode { .. });
        let asked = !mailed && field(form, "remember") == "on";
        let secure = keeps_secure_cookies(headers);
        let label = device_label(headers);
        let remember = (asked && secure).then_some(label.as_str());
        let ctx = login_context(headers);
        let answer = field(form, "credential");
        let finished = if cfg!(feature = "webauthn") && !answer.is_empty() {
            self.finish_key_login(&pending, answer, remember, &ctx)
                .await
        } else {
            let factor = match pending.step() {
                PendingStep::Enrollment => return Ok(to(&self.paths().setup)),
                PendingStep::MailedCode { .. } => Factor::MailedCode(input),
                _ => match Factor::parse(input) {
                    Ok(f) => f,
                    Err(e) => {
                        let p = problem(&Error::from(e), tf.now());
                        return self.render_second_step(session, &pending, Some(&p)).await;
                    }
                },
            };
            tf.finish_login(&pending, factor, remember, &ctx).await
        };
        match finished {
            Ok(granted) => {
                let user = pending.user();
                let mut next = self
                    .complete_login(
                        session,
                        user,
                        pending.password_checked_at(),
                        Some(&granted.proof),
                    )
                    .await?;
                let mut notes = Vec::new();
                let not_remembered = asked && !secure;
                if not_remembered {
                    tracing::warn!(
                        "a device was not remembered: the page is served over plain HTTP, where \
                         browsers drop __Host- (Secure) cookies; serve it over HTTPS"
                    );
                    notes.push(
                        "This device was not remembered: that needs a secure (HTTPS) connection."
                            .to_owned(),
                    );
                }
                if granted.must_regenerate_recovery_codes {
                    // Before anything else: one lost phone from now, they could not log in.
                    notes.push(NO_RECOVERY_CODES_LEFT.to_owned());
                    next = self.paths().account.clone();
                } else if let Some(left) = granted.recovery_codes_left {
                    notes.push(format!(
                        "You used a recovery code: {left} left. If you lost your phone, replace \
                         the authenticator or make new recovery codes here."
                    ));
                    next = self.paths().account.clone();
                }
                if granted.needs_security_key {
                    // Escalation: the policy wants a security key of this user, who has none.
                    notes.push(NEEDS_SECURITY_KEY.to_owned());
                    next = self.paths().account.clone();
                }
                if next == self.paths().account && !notes.is_empty() {
                    self.flash(session, notes.join(" ")).await?;
                } else if not_remembered {
                    // The host's page would not show a notice: say it here, then go on.
                    self.flash(session, notes.join(" ")).await?;
                    let pages = &self.inner.pages;
                    let link = Some((next.as_str(), "Continue"));
                    return self
                        .render(
                            session,
                            "You are logged in",
                            StatusCode::OK,
                            None,
                            |common| pages.message(&MessageView { common, link }),
                        )
                        .await;
                }
                let mut r = to(&next);
                if let Some(token) = &granted.device_token {
                    let set = self.inner.cookies.set_cookie_header(user, token);
                    if let Ok(v) = HeaderValue::from_str(&set) {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                Ok(r)
            }
            Err(e) => {
                let p = problem(&e, tf.now());
                if p.restart {
                    return self.login_over(session, &p).await;
                }
                self.render_second_step(session, &pending, Some(&p)).await
            }
        }
    }

    async fn resend(
        &self,
        session: &Session,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Flow {
        self.check_csrf(session, form).await?;
        let tf = self.tf();
        let Some(pending) = self.ticket(session).await? else {
            let p = problem(&Error::LoginExpired, tf.now());
            return self.login_over(session, &p).await;
        };
        match tf
            .resend_mailed_code(&pending, &login_context(headers))
            .await
        {
            Ok(_) => {
                session.remove_value(NOT_SENT).await?;
                self.flash(session, "A new code was mailed to you.").await?;
                Ok(to(&self.paths().second_step))
            }
            Err(e @ Error::Mailer(_)) => {
                // The ticket stays good, and a code sent earlier still works: say so, offer
                // to try again (`problem` logs the error).
                session.insert(NOT_SENT, true).await?;
                let p = Problem {
                    message: "We could not send a new code. Please try again in a moment.".into(),
                    ..problem(&e, tf.now())
                };
                self.render_second_step(session, &pending, Some(&p)).await
            }
            Err(e) => {
                let p = problem(&e, tf.now());
                if p.restart {
                    return self.login_over(session, &p).await;
                }
                self.render_second_step(session, &pending, Some(&p)).await
            }
        }
    }

    // ----- forced set-up -----

    async fn render_setup(
        &self,
        session: &Session,
        pending: &PendingLogin,
        error: Option<&Problem>,
    ) -> Flow {
        let tf = self.tf();
        let paths = self.paths();
        let pages = &self.inner.pages;
        let title = "Set up two-factor authentication";
        let status = error.map_or(StatusCode::OK, |p| p.status);
        let state = match tf.pending_setup(pending.user()).await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .problem_page(session, title, &problem(&e, tf.now()), None)
                    .await;
            }
        };
        // Showing the set-up is a read (a reload records nothing); it was started by the
        // login POST or the "start" button.
        let started = match state {
            PendingSetup::Open => {
                match tf
                    .show_forced_enrollment(pending, pending.user().as_str())
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        let p = problem(&e, tf.now());
                        if p.restart {
                            return self.login_over(session, &p).await;
                        }
                        return self.problem_page(session, title, &p, None).await;
                    }
                }
            }
            PendingSetup::MailedKey | PendingSetup::None => None,
        };
        let step = match (&started, state) {
            (Some(s), _) => SetupStep::Scan {
                qr_svg: s.qr_svg(),
                manual_key: s.manual_key(),
                uri: s.uri(),
                expires_at: s.expires_at(),
            },
            (None, PendingSetup::MailedKey) => SetupStep::MailedKey,
            (None, _) => SetupStep::Start,
        };
        let restart = match step {
            SetupStep::Scan { .. } => None,
            _ => Some(paths.setup_restart.as_str()),
        };
        self.render(session, title, status, error, |common| {
            pages.setup(&SetupView {
                common,
                step,
                action: &paths.setup,
                restart_action: restart,
                forced: true,
                rotation: false,
                cancel: None,
            })
        })
        .await
    }

    async fn forced_ticket(
        &self,
        session: &Session,
    ) -> Result<Result<PendingLogin, Response>, Halt> {
        let Some(pending) = self.ticket(session).await? else {
            return Ok(Err(self.no_ticket(session).await?));
        };
        if !matches!(pending.step(), PendingStep::Enrollment) {
            return Ok(Err(to(&self.paths().second_step)));
        }
        Ok(Ok(pending))
    }

    async fn setup_page(&self, session: &Session) -> Flow {
        match self.forced_ticket(session).await? {
            Ok(pending) => self.render_setup(session, &pending, None).await,
            Err(r) => Ok(r),
        }
    }

    async fn setup_restart(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        self.check_csrf(session, form).await?;
        let pending = match self.forced_ticket(session).await? {
            Ok(p) => p,
            Err(r) => return Ok(r),
        };
        let tf = self.tf();
        match tf
            .start_forced_enrollment(&pending, pending.user().as_str())
            .await
        {
            Ok(_) => Ok(to(&self.paths().setup)),
            Err(e) => {
                let p = problem(&e, tf.now());
                if p.restart {
                    return self.login_over(session, &p).await;
                }
                self.render_setup(session, &pending, Some(&p)).await
            }
        }
    }

    async fn setup_submit(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        self.check_csrf(session, form).await?;
        let pending = match self.forced_ticket(session).await? {
            Ok(p) => p,
            Err(r) => return Ok(r),
        };
        let tf = self.tf();
        match tf
            .finish_forced_enrollment(&pending, field(form, "code"))
            .await
        {
            Ok(enrolled) => {
                let continue_to = if enrolled.login_completed() {
                    let next = self
                        .complete_login(
                            session,
                            pending.user(),
                            pending.password_checked_at(),
                            Some(enrolled.proof()),
                        )
                        .await?;
                    if enrolled.needs_security_key() {
                        // Escalation, as after a code login: a security key before anything.
                        self.flash(session, NEEDS_SECURITY_KEY).await?;
                        self.paths().account.clone()
                    } else {
                        next
                    }
                } else {
                    self.drop_ticket(session).await?;
                    self.flash(
                        session,
                        "Two-factor authentication is on. Log in again to continue.",
                    )
                    .await?;
                    self.paths().login.clone()
                };
                self.recovery_codes_page(session, enrolled.recovery_codes(), &continue_to)
                    .await
            }
            Err(e) => {
                let p = problem(&e, tf.now());
                if p.restart {
                    return self.login_over(session, &p).await;
                }
                self.render_setup(session, &pending, Some(&p)).await
            }
        }
    }

    async fn recovery_codes_page(
        &self,
        session: &Session,
        codes: &RecoveryCodes,
        continue_to: &str,
    ) -> Flow {
        let codes = codes.expose_secret();
        let pages = &self.inner.pages;
        self.render(
            session,
            "Your recovery codes",
            StatusCode::OK,
            None,
            |common| {
                pages.recovery_codes(&RecoveryCodesView {
                    common,
                    codes: &codes,
                    continue_to,
                })
            },
        )
        .await
    }

    // ----- the account security page -----

    /// The logged-in user, or the redirect to the login page (coming back to `back`).
    async fn require_user(
        &self,
        session: &Session,
        back: &str,
    ) -> Result<Result<UserId, Response>, Halt> {
        match self.logged_in_user(session).await {
            Some(user) => Ok(Ok(user)),
            None => {
                session.insert(NEXT, back).await?;
                Ok(Err(to(&self.paths().login)))
            }
        }
    }

    /// The logged-in user's principal; `None` logs the session out.
    async fn principal(&self, session: &Session, user: &UserId) -> Result<Option<Principal>, Halt> {
        let found = (self.inner.principals)(user.clone()).await;
        match found {
            Some(p) if p.user == *user => Ok(Some(p)),
            _ => {
                tracing::warn!(user.id = %user, "no principal for a logged-in user: logging the session out");
                self.forget_login(session).await?;
                self.cycle(session).await?;
                Ok(None)
            }
        }
    }

    async fn password_at(&self, session: &Session) -> Result<Reauthenticated, Halt> {
        Ok(Reauthenticated::at(
            session.get::<u64>(PASSWORD_AT).await?.unwrap_or(0),
        ))
    }

    async fn render_account(
        &self,
        session: &Session,
        user: &UserId,
        principal: &Principal,
        error: Option<&Problem>,
    ) -> Flow {
        let tf = self.tf();
        let now = tf.now();
        let title = "Account security";
        let status = match tf.status_for(principal).await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .problem_page(session, title, &problem(&e, now), None)
                    .await;
            }
        };
        let devices = match tf.list_devices(user).await {
            Ok(d) => d,
            Err(e) => {
                return self
                    .problem_page(session, title, &problem(&e, now), None)
                    .await;
            }
        };
        let authenticators = match tf.authenticators(user).await {
            Ok(a) => a,
            Err(e) => {
                return self
                    .problem_page(session, title, &problem(&e, now), None)
                    .await;
            }
        };
        let claims = self.current_claims(session).await;
        let max_age = tf.reauth_max_age();
        let password_fresh = self.password_at(session).await?.is_fresh(now, max_age);
        let second_factor_fresh = self.proof(session).await?.is_some_and(|p| {
            p.user() == user
                && matches!(
                    p.factor(),
                    FactorKind::Totp | FactorKind::RecoveryCode | FactorKind::SecurityKey
                )
                && p.is_fresh(now, max_age)
        });
        let keys = self.security_keys_enabled();
        let paths = self.paths();
        let pages = &self.inner.pages;
        let code = error.map_or(StatusCode::OK, |p| p.status);
        self.render(session, title, code, error, |common| {
            pages.account(&AccountView {
                common,
                user,
                status: &status,
                devices: &devices,
                password_fresh,
                second_factor_fresh,
                now,
                home: &paths.after_login,
                actions: AccountActions {
                    enable: &paths.enable,
                    recovery_codes: &paths.recovery_codes,
                    replace: &paths.replace,
                    disable: &paths.disable,
                    revoke_device: &paths.revoke_device,
                    revoke_all_devices: &paths.revoke_all_devices,
                    reauthenticate: &paths.reauthenticate,
                },
                authenticators: &authenticators,
                authenticator_actions: AuthenticatorActions {
                    add: &paths.add_authenticator,
                    rename: &paths.rename_authenticator,
                    remove: &paths.remove_authenticator,
                },
                claims: claims.as_ref(),
                security_keys: keys.then(|| SecurityKeysView {
                    add_options: &paths.key_options,
                    add: &paths.add_key,
                }),
            })
        })
        .await
    }

    /// Without the `webauthn` feature: no security keys.
    #[cfg(not(feature = "webauthn"))]
    async fn finish_key_login(
        &self,
        _: &PendingLogin,
        _: &str,
        _: Option<&str>,
        _: &LoginContext,
    ) -> Result<LoginGranted, Error> {
        Err(Error::SecurityKey(
            crate::vocabulary::SecurityKeyFailure::NotConfigured,
        ))
    }

    /// Without the `webauthn` feature: no security keys.
    #[cfg(not(feature = "webauthn"))]
    async fn finish_key_step_up(
        &self,
        _: &UserId,
        _: &str,
        _: &LoginContext,
    ) -> Result<SecondFactorProof, Error> {
        Err(Error::SecurityKey(
            crate::vocabulary::SecurityKeyFailure::NotConfigured,
        ))
    }

    /// Without the `webauthn` feature: no security keys.
    #[cfg(not(feature = "webauthn"))]
    fn security_keys_enabled(&self) -> bool {
        false
    }

    /// Without the `webauthn` feature: no security keys on the account page.
    #[cfg(not(feature = "webauthn"))]
    #[allow(clippy::unused_async)]
    async fn key_authenticators(
        &self,
        _: &UserId,
    ) -> Result<Option<Vec<crate::account::AuthenticatorInfo>>, Error> {
        Ok(None)
    }

    async fn account_page(&self, session: &Session) -> Flow {
        let user = match self.require_user(session, &self.paths().account).await? {
            Ok(u) => u,
            Err(r) => return Ok(r),
        };
        let Some(principal) = self.principal(session, &user).await? else {
            return Ok(to(&self.paths().login));
        };
        self.render_account(session, &user, &principal, None).await
    }

    /// A POST on the account page: CSRF, then the logged-in user and their principal.
    async fn account_post(
        &self,
        session: &Session,
        form: &HashMap<String, String>,
    ) -> Result<Result<(UserId, Principal), Response>, Halt> {
        self.check_csrf(session, form).await?;
        let user = match self.require_user(session, &self.paths().account).await? {
            Ok(u) => u,
            Err(r) => return Ok(Err(r)),
        };
        match self.principal(session, &user).await? {
            Some(p) => Ok(Ok((user, p))),
            None => Ok(Err(to(&self.paths().login))),
        }
    }

    async fn account_error(
        &self,
        session: &Session,
        user: &UserId,
        principal: &Principal,
        e: &Error,
    ) -> Flow {
        let p = problem(e, self.tf().now());
        self.render_account(session, user, principal, Some(&p))
            .await
    }

    async fn render_account_setup(
        &self,
        session: &Session,
        started: &EnrollmentStarted,
        rotation: bool,
    ) -> Flow {
        let paths = self.paths();
        let pages = &self.inner.pages;
        let title = if rotation {
            "Set up your new authenticator"
        } else {
            "Turn on two-factor authentication"
        };
        self.render(session, title, StatusCode::OK, None, |common| {
            pages.setup(&SetupView {
                common,
                step: SetupStep::Scan {
                    qr_svg: started.qr_svg(),
                    manual_key: started.manual_key(),
                    uri: started.uri(),
                    expires_at: started.expires_at(),
                },
                action: &paths.confirm,
                restart_action: None,
                forced: false,
                rotation,
                cancel: Some(&paths.account),
            })
        })
        .await
    }

    async fn enable(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let reauth = self.password_at(session).await?;
        let proof = self.proof(session).await?;
        let started = self
            .tf()
            .start_enrollment(&principal, user.as_str(), reauth, proof.as_ref())
            .await;
        match started {
            Ok(s) => self.render_account_setup(session, &s, false).await,
            Err(e) => self.account_error(session, &user, &principal, &e).await,
        }
    }

    async fn confirm(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        match self
            .tf()
            .finish_enrollment(&user, field(form, "code"))
            .await
        {
            Ok(enrolled) => {
                session.insert(PROOF, enrolled.proof().as_str()).await?;
                self.merge_claims(session, enrolled.proof().claims())
                    .await?;
                let note = if enrolled.rotated() {
                    "Your new authenticator is set up; the old one no longer works."
                } else {
                    "Two-factor authentication is on."
                };
                self.flash(session, note).await?;
                self.recovery_codes_page(session, enrolled.recovery_codes(), &self.paths().account)
                    .await
            }
            Err(e) => {
                let p = problem(&e, self.tf().now());
                let paths = self.paths();
                let pages = &self.inner.pages;
                if matches!(e.kind(), ErrorKind::Conflict) {
                    return self
                        .render_account(session, &user, &principal, Some(&p))
                        .await;
                }
                // The QR code was shown once (a rotation cannot show it again): ask for the
                // code again, or start over from the account page.
                self.render(
                    session,
                    "Confirm your authenticator",
                    p.status,
                    Some(&p),
                    |common| {
                        pages.setup(&SetupView {
                            common,
                            step: SetupStep::MailedKey,
                            action: &paths.confirm,
                            restart_action: None,
                            forced: false,
                            rotation: false,
                            cancel: Some(&paths.account),
                        })
                    },
                )
                .await
            }
        }
    }

    async fn replace(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let reauth = self.password_at(session).await?;
        let proof = self.proof(session).await?;
        let started = match verification(field(form, "code"), proof.as_ref()) {
            Ok(v) => {
                self.tf()
                    .start_rotation(&user, user.as_str(), v, reauth)
                    .await
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(s) => self.render_account_setup(session, &s, true).await,
            Err(e) => self.account_error(session, &user, &principal, &e).await,
        }
    }

    async fn regenerate(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let reauth = self.password_at(session).await?;
        let proof = self.proof(session).await?;
        let codes = match verification(field(form, "code"), proof.as_ref()) {
            Ok(v) => self.tf().regenerate_recovery_codes(&user, reauth, v).await,
            Err(e) => Err(e),
        };
        match codes {
            Ok(codes) => {
                self.flash(session, "New recovery codes: the old ones no longer work.")
                    .await?;
                self.recovery_codes_page(session, &codes, &self.paths().account)
                    .await
            }
            Err(e) => self.account_error(session, &user, &principal, &e).await,
        }
    }

    async fn disable(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let reauth = self.password_at(session).await?;
        let proof = self.proof(session).await?;
        let done = match verification(field(form, "code"), proof.as_ref()) {
            Ok(v) => self.tf().disable(&principal, reauth, v).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => {
                session.remove_value(PROOF).await?;
                self.flash(session, "Two-factor authentication is off.")
                    .await?;
                Ok(to(&self.paths().account))
            }
            Err(e) => self.account_error(session, &user, &principal, &e).await,
        }
    }

    async fn revoke_device(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let device = DeviceId::new(field(form, "device"));
        match self.tf().revoke_device(&user, &device).await {
            Ok(()) => {
                self.flash(
                    session,
                    "The device was revoked: it will be asked for a code.",
                )
                .await?;
                Ok(to(&self.paths().account))
            }
            Err(e) => self.account_error(session, &user, &principal, &e).await,
        }
    }

    async fn revoke_all_devices(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        match self.tf().revoke_all_devices(&user).await {
            Ok(n) => {
                self.flash(
                    session,
                    format!("{n} device{} revoked.", if n == 1 { "" } else { "s" }),
                )
                .await?;
                Ok(to(&self.paths().account))
            }
            Err(e) => self.account_error(session, &user, &principal, &e).await,
        }
    }

    /// "Confirm your password": the login ends (a privilege drop: new session id) and the
    /// login page leads back to the account page.
    async fn reauthenticate(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        self.check_csrf(session, form).await?;
        self.forget_login(session).await?;
        self.cycle(session).await?;
        session.insert(NEXT, &self.paths().account).await?;
        Ok(to(&self.paths().login))
    }

    // ----- step-up -----

    async fn render_step_up(
        &self,
        session: &Session,
        user: &UserId,
        next: &str,
        error: Option<&Problem>,
    ) -> Flow {
        let tf = self.tf();
        let title = "Confirm it's you";
        let enrolled = match tf.status(user).await {
            Ok(s) => s.is_enrolled(),
            Err(e) => {
                return self
                    .problem_page(session, title, &problem(&e, tf.now()), None)
                    .await;
            }
        };
        let has_key = self.key_authenticators(user).await.is_ok_and(|list| {
            list.is_some_and(|l| {
                l.iter()
                    .any(|a| a.kind() == crate::account::AuthenticatorKind::SecurityKey)
            })
        });
        let paths = self.paths();
        let pages = &self.inner.pages;
        let status = error.map_or(StatusCode::OK, |p| p.status);
        self.render(session, title, status, error, |common| {
            pages.step_up(&StepUpView {
                common,
                action: &paths.step_up,
                next,
                enrolled,
                account: &paths.account,
                security_key: has_key.then_some(paths.key_step_up_options.as_str()),
            })
        })
        .await
    }

    async fn step_up_page(&self, session: &Session, query: &HashMap<String, String>) -> Flow {
        let next = query
            .get("next")
            .and_then(|n| safe_next(n))
            .unwrap_or(&self.paths().account)
            .to_owned();
        let back = format!(
            "{}?next={}",
            self.paths().step_up,
            utf8_percent_encode(&next, NON_ALPHANUMERIC)
        );
        let user = match self.require_user(session, &back).await? {
            Ok(u) => u,
            Err(r) => return Ok(r),
        };
        self.render_step_up(session, &user, &next, None).await
    }

    async fn step_up_submit(
        &self,
        session: &Session,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Flow {
        self.check_csrf(session, form).await?;
        let next = safe_next(field(form, "next"))
            .unwrap_or(&self.paths().account)
            .to_owned();
        let user = match self.require_user(session, &self.paths().account).await? {
            Ok(u) => u,
            Err(r) => return Ok(r),
        };
        let tf = self.tf();
        let answer = field(form, "credential");
        let proved = if cfg!(feature = "webauthn") && !answer.is_empty() {
            self.finish_key_step_up(&user, answer, &login_context(headers))
                .await
        } else {
            match Factor::parse(field(form, "code")) {
                Ok(factor) => {
                    tf.verify_second_factor(&user, factor, &login_context(headers))
                        .await
                }
                Err(e) => Err(Error::from(e)),
            }
        };
        match proved {
            Ok(proof) => {
                self.cycle(session).await?;
                session.insert(PROOF, proof.as_str()).await?;
                self.merge_claims(session, proof.claims()).await?;
                Ok(to(&next))
            }
            Err(e) => {
                let p = problem(&e, tf.now());
                self.render_step_up(session, &user, &next, Some(&p)).await
            }
        }
    }

    /// The guards: logged in (with 2FA complete) and, for step-up, a fresh proof.
    async fn admit(&self, req: &mut Request, max_age: Option<Duration>) -> Result<(), Halt> {
        let session = session_of(req.extensions()).map_err(Halt)?;
        let uri = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().clone(), |o| o.0.clone());
        let here = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
        let Some(user) = self.logged_in_user(&session).await else {
            if is_get && let Some(next) = safe_next(&here) {
                session.insert(NEXT, next).await?;
            }
            return Err(Halt(to(&self.paths().login)));
        };
        if let Some(max_age) = max_age {
            let proof = self.proof(&session).await?;
            let checked = match &proof {
                Some(p) => self.tf().check_proof(&user, p, max_age.as_secs()).await,
                None => Err(Error::SecondFactorRequired),
            };
            match checked {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                }
                Err(e) => {
                    if e.kind() == ErrorKind::Unavailable || e.kind() == ErrorKind::Misconfigured {
                        let p = problem(&e, self.tf().now());
                        return Err(Halt(self.problem_page(&session, "Error", &p, None).await?));
                    }
                    if matches!(e, Error::InvalidProof) {
                        session.remove_value(PROOF).await?;
                    }
                    // A GET comes back to itself; a POST cannot be replayed: back to the page
                    // its form was on (a page of this site), to submit it again.
                    let host = req
                        .headers()
                        .get(header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let referer = req
                        .headers()
                        .get(header::REFERER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let next = if is_get {
                        safe_next(&here)
                    } else {
                        referer_path(referer, host)
                    }
                    .unwrap_or(&self.paths().account);
                    let step_up = format!(
                        "{}?next={}",
                        self.paths().step_up,
                        utf8_percent_encode(next, NON_ALPHANUMERIC)
                    );
                    return Err(Halt(to(&step_up)));
                }
            }
        }
        req.extensions_mut().insert(user);
        Ok(())
    }
}

// ----- handlers -----

/// The security-key routes (feature `webauthn`), or none.
#[cfg(feature = "webauthn")]
fn keys_router(p: &Paths) -> Router<TwoFactorWeb> {
    keys::router(p)
}

#[cfg(not(feature = "webauthn"))]
fn keys_router(_: &Paths) -> Router<TwoFactorWeb> {
    Router::new()
}

/// The request's session and headers, for the module's handlers.
struct Visit {
    session: Session,
    headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Visit {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        Ok(Visit {
            session: session_of(&parts.extensions)?,
            headers: parts.headers.clone(),
        })
    }
}

async fn second_step_page(State(web): State<TwoFactorWeb>, v: Visit) -> Flow {
    web.second_step_page(&v.session).await
}

async fn second_step_submit(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.second_step_submit(&v.session, &v.headers, &f).await
}

async fn resend(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.resend(&v.session, &v.headers, &f).await
}

async fn setup_page(State(web): State<TwoFactorWeb>, v: Visit) -> Flow {
    web.setup_page(&v.session).await
}

async fn setup_restart(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.setup_restart(&v.session, &f).await
}

async fn setup_submit(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.setup_submit(&v.session, &f).await
}

async fn account_page(State(web): State<TwoFactorWeb>, v: Visit) -> Flow {
    web.account_page(&v.session).await
}

async fn enable(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.enable(&v.session, &f).await
}

async fn confirm(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.confirm(&v.session, &f).await
}

async fn replace(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.replace(&v.session, &f).await
}

async fn regenerate(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.regenerate(&v.session, &f).await
}

async fn disable(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.disable(&v.session, &f).await
}

async fn revoke_device(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.revoke_device(&v.session, &f).await
}

async fn revoke_all_devices(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.revoke_all_devices(&v.session, &f).await
}

async fn reauthenticate(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.reauthenticate(&v.session, &f).await
}

async fn step_up_page(
    State(web): State<TwoFactorWeb>,
    v: Visit,
    Query(q): Query<HashMap<String, String>>,
) -> Flow {
    web.step_up_page(&v.session, &q).await
}

async fn step_up_submit(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.step_up_submit(&v.session, &v.headers, &f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path_only() {
        for ok in ["/", "/settings", "/a?b=c&d=%2F%2Fx", "/2fa/account"] {
            assert_eq!(safe_next(ok), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "/\t/evil.example",
            "/\n/evil",
            "javascript:alert(1)",
            "evil.example",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(MAX_NEXT_LEN))), None);
    }

    /// Every configured path that is not a local one is a typed error from `try_build` (and
    /// a panic from `build`), never a redirect target.
    #[test]
    fn configured_paths_that_are_not_local_are_typed_errors() {
        let web = || {
            TwoFactorWeb::builder(
                TwoFactor::builder(crate::MemoryStore::new()).build(),
                |user| async move { Some(Principal::new(user)) },
            )
        };
        assert!(web().try_build().is_ok());
        for bad in ["https://evil.example/x", "//evil.example", "", "login"] {
            for (what, b) in [
                ("prefix", web().prefix(bad)),
                ("login page", web().login_page(bad)),
                ("after_login", web().after_login(bad)),
            ] {
                let Err(e) = b.try_build() else {
                    panic!("{what}: {bad:?} accepted")
                };
                assert_eq!(
                    e,
                    PathError {
                        what,
                        path: bad.to_owned()
                    }
                );
            }
        }
        let Err(e) = web().prefix("/2fa/").try_build() else {
            panic!("a trailing slash accepted")
        };
        assert!(e.to_string().contains("prefix"), "{e}");
        let built = std::panic::catch_unwind(|| web().after_login("//evil.example").build());
        assert!(built.is_err(), "build panics");
    }

    #[test]
    fn a_post_returns_only_to_a_page_of_this_site() {
        let host = "127.0.0.1:8080";
        assert_eq!(
            referer_path("http://127.0.0.1:8080/admin", host),
            Some("/admin")
        );
        assert_eq!(
            referer_path("https://127.0.0.1:8080/admin?tab=users#top", host),
            Some("/admin?tab=users")
        );
        for other in [
            "http://evil.example/admin",
            "http://127.0.0.1:8081/admin",
            "http://127.0.0.1:8080.evil.example/admin",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080//evil.example",
            "javascript:alert(1)",
            "/admin",
            "",
        ] {
            assert_eq!(referer_path(other, host), None, "{other}");
        }
        assert_eq!(referer_path("http://127.0.0.1:8080/admin", ""), None);
    }

    #[test]
    fn secure_cookies_are_kept_over_https_and_on_loopback_names_only() {
        let with = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            keeps_secure_cookies(&h)
        };
        assert!(keeps_secure_cookies(&HeaderMap::new()));
        for ok in [
            "https://example.com",
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:3000",
            "http://app.localhost",
        ] {
            assert!(with(ok), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://192.168.1.5:3000",
            "http://localhost.evil.com",
        ] {
            assert!(!with(bad), "{bad}");
        }
    }

    #[test]
    fn waits_read_like_a_person_says_them() {
        assert_eq!(wait_text(1), "1 second");
        assert_eq!(wait_text(45), "45 seconds");
        assert_eq!(wait_text(600), "10 minutes");
        assert_eq!(wait_text(3_599), "60 minutes");
        assert_eq!(wait_text(7_200), "2 hours");
    }

    #[test]
    fn every_error_kind_has_a_message_and_its_status() {
        let errors = [
            Error::InvalidCode,
            Error::Throttled { retry_at: 700 },
            Error::LoginExpired,
            Error::InvalidTicket,
            Error::NoPendingLogin,
            Error::Contention { attempts: 1 },
            Error::Rng,
            Error::RequiredByPolicy,
        ];
        for e in &errors {
            let p = problem(e, 100);
            assert_eq!(p.status.as_u16(), e.http_status(), "{e:?}");
            assert!(!p.message.is_empty());
        }
        let throttled = problem(&Error::Throttled { retry_at: 700 }, 100);
        assert_eq!(throttled.retry_after, Some(600));
        assert!(throttled.message.contains("10 minutes"));
        assert!(problem(&Error::InvalidTicket, 0).restart);
        assert!(!problem(&Error::InvalidCode, 0).restart);
    }

    #[test]
    fn device_labels_name_the_browser_and_system() {
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
            ),
        );
        assert_eq!(device_label(&h), "Chrome on Linux");
        assert_eq!(
            device_label(&HeaderMap::new()),
            "A browser on an unknown system"
        );
    }
}
