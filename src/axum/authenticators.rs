//! The account page's "Authenticators" section (list, rename, add another, remove) and the
//! assurance claims of the session.

use std::collections::HashMap;

use ::axum::extract::{Form, State};
use ::axum::http::StatusCode;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tower_sessions::Session;

use super::{
    AddAuthenticatorView, AddStep, Fields, Flow, Halt, Problem, TwoFactorWeb, Visit, field,
    problem, to, verification,
};
use crate::account::{
    AddedAuthenticator, AssuranceClaims, AuthenticatorInfo, EnrollmentStarted, Reauthenticated,
    UserId, Verification,
};
use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::mail::Mailer;
use crate::policy::{EnforcementPolicy, Principal};
use crate::service::{Error, TwoFactor};
use crate::store::UserStore;
use crate::vocabulary::{AuthenticatorId, BoxFuture};

/// The session key of the claims of the session's login, merged with every step-up since.
pub(super) const CLAIMS: &str = "twofactor.claims";
/// The label of the authenticator being added (for its confirmation page).
const ADDING: &str = "twofactor.adding";

/// The [`TwoFactor`] calls of the "Authenticators" section, object-safe (a supertrait of the
/// module's backend).
pub(super) trait AuthenticatorBackend: Send + Sync + 'static {
    fn authenticators<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Vec<AuthenticatorInfo>, Error>>;
    fn rename_authenticator<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a AuthenticatorId,
        label: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>>;
    fn start_adding_authenticator<'a>(
        &'a self,
        user: &'a UserId,
        label: &'a str,
        verification: Verification<'a>,
        reauth: Reauthenticated,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>>;
    fn finish_adding_authenticator<'a>(
        &'a self,
        user: &'a UserId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<AddedAuthenticator, Error>>;
    fn remove_authenticator<'a>(
        &'a self,
        principal: &'a Principal,
        id: &'a AuthenticatorId,
        reauth: Reauthenticated,
        verification: Verification<'a>,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

impl<S, M, P, C, A> AuthenticatorBackend for TwoFactor<S, M, P, C, A>
where
    S: UserStore + 'static,
    M: Mailer + 'static,
    P: EnforcementPolicy + 'static,
    C: Clock + 'static,
    A: AuditSink + 'static,
{
    fn authenticators<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<Vec<AuthenticatorInfo>, Error>> {
        Box::pin(TwoFactor::authenticators(self, user))
    }
    fn rename_authenticator<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a AuthenticatorId,
        label: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(TwoFactor::rename_authenticator(self, user, id, label))
    }
    fn start_adding_authenticator<'a>(
        &'a self,
        user: &'a UserId,
        label: &'a str,
        verification: Verification<'a>,
        reauth: Reauthenticated,
    ) -> BoxFuture<'a, Result<EnrollmentStarted, Error>> {
        Box::pin(TwoFactor::start_adding_authenticator(
            self,
            user,
            label,
            user.as_str(),
            verification,
            reauth,
        ))
    }
    fn finish_adding_authenticator<'a>(
        &'a self,
        user: &'a UserId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<AddedAuthenticator, Error>> {
        Box::pin(TwoFactor::finish_adding_authenticator(self, user, code))
    }
    fn remove_authenticator<'a>(
        &'a self,
        principal: &'a Principal,
        id: &'a AuthenticatorId,
        reauth: Reauthenticated,
        verification: Verification<'a>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(TwoFactor::remove_authenticator(
            self,
            principal,
            id,
            reauth,
            verification,
        ))
    }
}

/// What the user reads about an error of the "Authenticators" section: the label and list
/// errors in their own words, the others as everywhere in the module.
fn authenticator_problem(e: &Error, now: u64) -> Problem {
    let message = match e {
        Error::InvalidLabel(why) => format!("Choose another name: {why}."),
        Error::LabelTaken => {
            "You already have an authenticator with that name: choose another.".to_owned()
        }
        Error::TooManyAuthenticators { max } => {
            format!("You have {max} authenticators, the most allowed: remove one first.")
        }
        Error::UnknownAuthenticator => {
            "That authenticator is no longer there: reload the page.".to_owned()
        }
        Error::NoPendingEnrollment => {
            "Adding the authenticator expired or was finished already: start again.".to_owned()
        }
        _ => return problem(e, now),
    };
    Problem {
        status: StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        message,
        retry_after: None,
        restart: false,
    }
}

impl TwoFactorWeb {
    /// How this session was authenticated: the [`AssuranceClaims`] of its login (the password,
    /// and the second factor or remembered device, with their times), merged
    /// ([`AssuranceClaims::merge`]) with those of every step-up, authenticator set-up or
    /// addition since. `None` when the session is not logged in (2FA complete), or was logged
    /// in before the module kept claims.
    ///
    /// For the host's own pages and tokens (`amr`, `acr`, `auth_time`): these claims are as
    /// trustworthy as the session store. Before a sensitive action, prefer
    /// [`require_recent_2fa`](Self::require_recent_2fa), which checks the sealed proof.
    pub async fn current_claims(&self, session: &Session) -> Option<AssuranceClaims> {
        self.logged_in_user(session).await?;
        match session.get::<AssuranceClaims>(CLAIMS).await {
            Ok(claims) => claims,
            Err(e) => {
                tracing::error!(error = %e, "session store failed (or held claims not in canonical form)");
                None
            }
        }
    }

    /// Adds `claims` to the session's (a step-up, a confirmed authenticator).
    pub(super) async fn merge_claims(
        &self,
        session: &Session,
        claims: &AssuranceClaims,
    ) -> Result<(), Halt> {
        let merged = match session.get::<AssuranceClaims>(CLAIMS).await {
            Ok(Some(old)) => old.merge(claims),
            _ => claims.clone(),
        };
        session.insert(CLAIMS, &merged).await?;
        Ok(())
    }

    /// The "Authenticators" section's sensitive POST: the password must be fresh, and a code
    /// typed or a fresh proof in the session; with neither, the user is sent to step-up and
    /// back to the account page. `Err` is the response to send.
    async fn fresh_factor(
        &self,
        session: &Session,
        form: &HashMap<String, String>,
        user: &UserId,
        principal: &Principal,
    ) -> Result<
        Result<
            (Reauthenticated, Option<crate::account::SecondFactorProof>),
            ::axum::response::Response,
        >,
        Halt,
    > {
        let tf = self.tf();
        let now = tf.now();
        let reauth = self.password_at(session).await?;
        if !reauth.is_fresh(now, tf.reauth_max_age()) {
            let r = self
                .account_error(session, user, principal, &Error::ReauthenticationRequired)
                .await?;
            return Ok(Err(r));
        }
        let proof = self.proof(session).await?;
        let fresh = match &proof {
            Some(p) => tf.check_proof(user, p, tf.reauth_max_age()).await.is_ok(),
            None => false,
        };
        if !fresh && field(form, "code").is_empty() {
            self.flash(session, "Confirm it's you with a code, then try again.")
                .await?;
            let step_up = format!(
                "{}?next={}",
                self.paths().step_up,
                utf8_percent_encode(&self.paths().account, NON_ALPHANUMERIC)
            );
            return Ok(Err(to(&step_up)));
        }
        Ok(Ok((reauth, proof.filter(|_| fresh))))
    }

    async fn authenticator_error(
        &self,
        session: &Session,
        user: &UserId,
        principal: &Principal,
        e: &Error,
    ) -> Flow {
        let p = authenticator_problem(e, self.tf().now());
        self.render_account(session, user, principal, Some(&p))
            .await
    }

    async fn render_add(
        &self,
        session: &Session,
        label: &str,
        step: AddStep<'_>,
        error: Option<&Problem>,
    ) -> Flow {
        let paths = self.paths();
        let pages = &self.inner.pages;
        let status = error.map_or(StatusCode::OK, |p| p.status);
        self.render(session, "Add an authenticator", status, error, |common| {
            pages.add_authenticator(&AddAuthenticatorView {
                common,
                label,
                step,
                action: &paths.add_authenticator_confirm,
                cancel: &paths.account,
            })
        })
        .await
    }

    async fn add_authenticator(&self, session: &Session, form: &HashMap<String, String>) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let label = field(form, "label");
        let (reauth, proof) = match self.fresh_factor(session, form, &user, &principal).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let started = match verification(field(form, "code"), proof.as_ref()) {
            Ok(v) => {
                self.tf()
                    .start_adding_authenticator(&user, label, v, reauth)
                    .await
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(s) => {
                session.insert(ADDING, label).await?;
                let step = AddStep::Scan {
                    qr_svg: s.qr_svg(),
                    manual_key: s.manual_key(),
                    uri: s.uri(),
                    expires_at: s.expires_at(),
                };
                self.render_add(session, label, step, None).await
            }
            Err(e) => {
                self.authenticator_error(session, &user, &principal, &e)
                    .await
            }
        }
    }

    async fn confirm_authenticator(
        &self,
        session: &Session,
        form: &HashMap<String, String>,
    ) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        match self
            .tf()
            .finish_adding_authenticator(&user, field(form, "code"))
            .await
        {
            Ok(added) => {
                session.remove_value(ADDING).await?;
                session.insert(super::PROOF, added.proof().as_str()).await?;
                self.merge_claims(session, added.proof().claims()).await?;
                self.flash(
                    session,
                    format!(
                        "{} was added: its codes work from now on, and your other \
                         authenticators keep working.",
                        added.info().label()
                    ),
                )
                .await?;
                Ok(to(&self.paths().account))
            }
            Err(e @ (Error::InvalidCode | Error::Malformed(_) | Error::Throttled { .. })) => {
                let label = session.get::<String>(ADDING).await?.unwrap_or_default();
                let p = problem(&e, self.tf().now());
                self.render_add(session, &label, AddStep::Confirm, Some(&p))
                    .await
            }
            Err(e) => {
                self.authenticator_error(session, &user, &principal, &e)
                    .await
            }
        }
    }

    async fn rename_authenticator(
        &self,
        session: &Session,
        form: &HashMap<String, String>,
    ) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let id = AuthenticatorId::new(field(form, "authenticator"));
        let label = field(form, "label");
        match self.tf().rename_authenticator(&user, &id, label).await {
            Ok(()) => {
                self.flash(session, format!("Renamed to {label}.")).await?;
                Ok(to(&self.paths().account))
            }
            Err(e) => {
                self.authenticator_error(session, &user, &principal, &e)
                    .await
            }
        }
    }

    async fn remove_authenticator(
        &self,
        session: &Session,
        form: &HashMap<String, String>,
    ) -> Flow {
        let (user, principal) = match self.account_post(session, form).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let id = AuthenticatorId::new(field(form, "authenticator"));
        let (reauth, proof) = match self.fresh_factor(session, form, &user, &principal).await? {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        let tf = self.tf();
        let label = tf.authenticators(&user).await.ok().and_then(|list| {
            list.into_iter()
                .find(|a| *a.id() == id)
                .map(|a| a.label().to_owned())
        });
        let done = match verification(field(form, "code"), proof.as_ref()) {
            Ok(v) => tf.remove_authenticator(&principal, &id, reauth, v).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => {
                let none_left = tf.authenticators(&user).await.is_ok_and(|l| l.is_empty());
                let note = if none_left {
                    session.remove_value(super::PROOF).await?;
                    "Your last authenticator was removed: two-factor authentication is off."
                        .to_owned()
                } else {
                    format!(
                        "{} was removed: its codes no longer work.",
                        label.as_deref().unwrap_or("The authenticator")
                    )
                };
                self.flash(session, note).await?;
                Ok(to(&self.paths().account))
            }
            Err(e) => {
                self.authenticator_error(session, &user, &principal, &e)
                    .await
            }
        }
    }
}

pub(super) async fn add(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.add_authenticator(&v.session, &f).await
}

pub(super) async fn confirm(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.confirm_authenticator(&v.session, &f).await
}

pub(super) async fn rename(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.rename_authenticator(&v.session, &f).await
}

pub(super) async fn remove(State(web): State<TwoFactorWeb>, v: Visit, Form(f): Fields) -> Flow {
    web.remove_authenticator(&v.session, &f).await
}
