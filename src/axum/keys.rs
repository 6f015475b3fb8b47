//! Security keys in the web layer (features `axum` and `webauthn`): "Use your security key"
//! at the second step, "Add a security key" and "Remove" on the account page.
//!
//! The options endpoints answer JSON (`{"publicKey": ...}` from webauthn-rs, or
//! `{"error": "..."}` with the error's status); the browser's answer comes back as an
//! ordinary form POST (field `credential`), so that success and failure are the module's
//! usual redirects and pages. The ceremony state never enters the session: it is in the
//! user's record.

use super::{
    Backend, BoxFuture, Error, Flow, HashMap, LoginContext, LoginGranted, Paths, PendingLogin,
    Principal, Reauthenticated, Router, SecondFactorProof, Session, StatusCode, TwoFactor,
    TwoFactorWeb, UserId, Verification, WebStore, field, header, post, problem, to,
    with_page_headers,
};
use super::{Factor, Fields, Form, PROOF, State, Visit};
use crate::account::{AuthenticatorInfo, KeyChallenge, SecurityKeyAdded};
use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::mail::Mailer;
use crate::policy::EnforcementPolicy;
use ::axum::response::Response;

/// The security-key calls the web layer makes, object-safe.
pub(super) trait KeyBackend: Send + Sync {
    fn enabled(&self) -> bool;
    fn start_registration<'a>(
        &'a self,
        principal: &'a Principal,
        label: &'a str,
        reauth: Reauthenticated,
        verification: Option<Verification<'a>>,
    ) -> BoxFuture<'a, Result<KeyChallenge, Error>>;
    fn finish_registration<'a>(
        &'a self,
        user: &'a UserId,
        answer: &'a str,
    ) -> BoxFuture<'a, Result<SecurityKeyAdded, Error>>;
    fn start_login<'a>(
        &'a self,
        pending: &'a PendingLogin,
    ) -> BoxFuture<'a, Result<KeyChallenge, Error>>;
    fn finish_login<'a>(
        &'a self,
        pending: &'a PendingLogin,
        answer: &'a str,
        remember: Option<&'a str>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<LoginGranted, Error>>;
    fn start_step_up<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<KeyChallenge, Error>>;
    fn finish_step_up<'a>(
        &'a self,
        user: &'a UserId,
        answer: &'a str,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<SecondFactorProof, Error>>;
}

impl<S, M, P, C, A> KeyBackend for TwoFactor<S, M, P, C, A>
where
    S: WebStore + 'static,
    M: Mailer + 'static,
    P: EnforcementPolicy + 'static,
    C: Clock + 'static,
    A: AuditSink + 'static,
{
    fn enabled(&self) -> bool {
        self.settings().security_keys().is_some()
    }
    fn start_registration<'a>(
        &'a self,
        principal: &'a Principal,
        label: &'a str,
        reauth: Reauthenticated,
        verification: Option<Verification<'a>>,
    ) -> BoxFuture<'a, Result<KeyChallenge, Error>> {
        let name = principal.user.as_str();
        Box::pin(self.start_security_key_registration(
            principal,
            label,
            name,
            name,
            reauth,
            verification,
        ))
    }
    fn finish_registration<'a>(
        &'a self,
        user: &'a UserId,
        answer: &'a str,
    ) -> BoxFuture<'a, Result<SecurityKeyAdded, Error>> {
        Box::pin(self.finish_security_key_registration(user, answer))
    }
    fn start_login<'a>(
        &'a self,
        pending: &'a PendingLogin,
    ) -> BoxFuture<'a, Result<KeyChallenge, Error>> {
        Box::pin(self.start_security_key_login(pending))
    }
    fn finish_login<'a>(
        &'a self,
        pending: &'a PendingLogin,
        answer: &'a str,
        remember: Option<&'a str>,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<LoginGranted, Error>> {
        Box::pin(self.finish_security_key_login(pending, answer, remember, ctx))
    }
    fn start_step_up<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<KeyChallenge, Error>> {
        Box::pin(self.start_security_key_step_up(user))
    }
    fn finish_step_up<'a>(
        &'a self,
        user: &'a UserId,
        answer: &'a str,
        ctx: &'a LoginContext,
    ) -> BoxFuture<'a, Result<SecondFactorProof, Error>> {
        Box::pin(self.finish_security_key_step_up(user, answer, ctx))
    }
}

/// The security-key routes.
pub(super) fn router(p: &Paths) -> Router<TwoFactorWeb> {
    Router::new()
        .route(&p.key_login_options, post(login_options))
        .route(&p.key_step_up_options, post(step_up_options))
        .route(&p.key_options, post(registration_options))
        .route(&p.add_key, post(add_key))
}

async fn login_options(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.key_login_options(&v.session, &f).await
}

async fn step_up_options(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.key_step_up_options(&v.session, &f).await
}

async fn registration_options(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.key_registration_options(&v.session, &f).await
}

async fn add_key(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.add_key(&v.session, &f).await
}

/// A JSON answer with the module's headers (`no-store`, ...).
fn json(status: StatusCode, body: String) -> Response {
    with_page_headers((status, [(header::CONTENT_TYPE, "application/json")], body))
}

impl TwoFactorWeb {
    fn key_backend(&self) -> &dyn KeyBackend {
        Backend::keys(&*self.inner.tf)
    }

    /// `{"error": "..."}` with the error's status, in the words of the module's pages.
    fn json_problem(&self, e: &Error) -> Response {
        let p = problem(e, self.tf().now());
        let body = serde_json::json!({ "error": p.message });
        json(p.status, body.to_string())
    }

    fn json_options(&self, started: Result<KeyChallenge, Error>) -> Response {
        match started {
            Ok(c) => json(StatusCode::OK, c.options_json().to_owned()),
            Err(e) => self.json_problem(&e),
        }
    }

    /// Whether security keys are configured (a relying party).
    pub(super) fn security_keys_enabled(&self) -> bool {
        self.key_backend().enabled()
    }

    pub(super) async fn key_authenticators(
        &self,
        user: &UserId,
    ) -> Result<Option<Vec<AuthenticatorInfo>>, Error> {
        let keys = self.key_backend();
        if !keys.enabled() {
            return Ok(None);
        }
        self.tf().authenticators(user).await.map(Some)
    }

    pub(super) async fn finish_key_login(
        &self,
        pending: &PendingLogin,
        answer: &str,
        remember: Option<&str>,
        ctx: &LoginContext,
    ) -> Result<LoginGranted, Error> {
        self.key_backend()
            .finish_login(pending, answer, remember, ctx)
            .await
    }

    async fn key_login_options(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        self.check_csrf(session, form).await?;
        let Some(pending) = self.ticket(session).await? else {
            return Ok(self.json_problem(&Error::LoginExpired));
        };
        Ok(self.json_options(self.key_backend().start_login(&pending).await))
    }

    pub(super) async fn finish_key_step_up(
        &self,
        user: &UserId,
        answer: &str,
        ctx: &LoginContext,
    ) -> Result<SecondFactorProof, Error> {
        self.key_backend().finish_step_up(user, answer, ctx).await
    }

    async fn key_step_up_options(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        self.check_csrf(session, form).await?;
        let user = match self.require_user(session, &self.paths().account).await? {
            Ok(u) => u,
            Err(r) => return Ok(r),
        };
        Ok(self.json_options(self.key_backend().start_step_up(&user).await))
    }

    async fn key_registration_options(
        &self,
        session: &Session,
        form: &HashMap<String, String>,
    ) -> Flow {
        let (_, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let reauth = self.password_at(session).await?;
        let proof = self.proof(session).await?;
        let code = field(form, "code");
        let verification = if code.is_empty() {
            proof.as_ref().map(Verification::Proof)
        } else {
            match Factor::parse(code) {
                Ok(f) => Some(Verification::Code(f)),
                Err(e) => return Ok(self.json_problem(&Error::from(e))),
            }
        };
        let started = self
            .key_backend()
            .start_registration(&principal, field(form, "label"), reauth, verification)
            .await;
        Ok(self.json_options(started))
    }

    async fn add_key(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let added = self
            .key_backend()
            .finish_registration(&user, field(form, "credential"))
            .await;
        match added {
            Ok(added) => {
                // The key just signed: a fresh second factor for this session.
                keep_proof(session, added.proof()).await?;
                let label = added.info().label().to_owned();
                if let Some(codes) = added.recovery_codes() {
                    self.flash(
                        session,
                        format!(
                            "Security key \u{201c}{label}\u{201d} added: two-factor \
                             authentication is on."
                        ),
                    )
                    .await?;
                    return self
                        .recovery_codes_page(session, codes, &self.paths().account)
                        .await;
                }
                self.flash(
                    session,
                    format!("Security key \u{201c}{label}\u{201d} added."),
                )
                .await?;
                Ok(to(&self.paths().account))
            }
            Err(e) => self.account_error(session, &user, &principal, &e).await,
        }
    }
}

async fn keep_proof(session: &Session, proof: &SecondFactorProof) -> Result<(), super::Halt> {
    session.insert(PROOF, proof.as_str()).await?;
    Ok(())
}

/// What the user reads about a refused key, where the module's code wording does not fit.
pub(super) fn key_message(e: &Error) -> Option<&'static str> {
    use crate::vocabulary::SecurityKeyFailure as F;
    Some(match e {
        Error::SecurityKey(F::NoCeremony) => "That took too long. Try again.",
        Error::SecurityKey(F::AlreadyRegistered) => "This security key is already registered.",
        Error::SecurityKey(F::UnknownCredential) => {
            "This security key is not registered to your account."
        }
        Error::SecurityKey(F::NotConfigured) => "Security keys are not available here.",
        Error::SecurityKey(_) => "The security key's answer was refused. Try again.",
        Error::PhishingResistantRequired => "Your organisation requires your security key.",
        _ => return None,
    })
}
