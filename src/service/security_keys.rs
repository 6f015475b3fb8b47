//! Security keys (WebAuthn) through the service (feature `webauthn`): registration, the
//! login's second step and step-up, each a start/finish pair. The ceremony state is kept in
//! the user's record (compare-and-swap), never in the host's session: a host keeps only
//! what it keeps for a code login (the login ticket, the session's proof).

use super::{Error, TwoFactor};
use crate::account::{
    KeyChallenge, LoginContext, LoginGranted, PendingLogin, Reauthenticated, SecondFactorProof,
    SecurityKeyAdded, UserId, Verification, claimed_credential_id,
};
use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::mail::Mailer;
use crate::policy::{EnforcementPolicy, Principal};
use crate::store::{SecurityKeyIndex, UserStore};

impl<S, M, P, C, A> TwoFactor<S, M, P, C, A>
where
    S: UserStore,
    M: Mailer,
    P: EnforcementPolicy,
    C: Clock,
    A: AuditSink,
{
    /// Starts registering a security key named `label` for `principal`'s user (the account
    /// page's "Add a security key"): returns the options to pass to
    /// `navigator.credentials.create` (JSON; turn the base64url fields into `ArrayBuffer`s)
    /// and keeps the ceremony in the record until
    /// [`RelyingParty::ceremony_ttl`](crate::account::RelyingParty::ceremony_ttl).
    ///
    /// Needs a fresh password check (`reauth`) and, for a user who already has an
    /// authenticator, a second factor (`verification`: the session's fresh proof, of a key
    /// too, or a code typed now), as for adding an authenticator. For a user without one the
    /// key turns 2FA on: the password is enough, unless the policy asks them for a mailed code
    /// at login (then the proof of that login, as for
    /// [`start_enrollment_with_proof`](Self::start_enrollment_with_proof)).
    /// `user_name` and `display_name` are what the browser's prompt shows.
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`], [`Error::SecondFactorRequired`],
    /// [`Error::InvalidProof`], [`Error::InvalidCode`], [`Error::Malformed`],
    /// [`Error::Throttled`], [`Error::InvalidLabel`], [`Error::LabelTaken`],
    /// [`Error::TooManyAuthenticators`], [`Error::SecurityKey`] (`NotConfigured`), and the
    /// infrastructure errors.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(user.id = %principal.user))]
    pub async fn start_security_key_registration(
        &self,
        principal: &Principal,
        label: &str,
        user_name: &str,
        display_name: &str,
        reauth: Reauthenticated,
        verification: Option<Verification<'_>>,
    ) -> Result<KeyChallenge, Error> {
        let user = &principal.user;
        self.run_checked(user, None, |r, now, rng| {
            let requirement = self.requirement_of(principal, r, now);
            r.start_security_key_registration(
                now,
                user,
                &requirement,
                label,
                user_name,
                display_name,
                reauth,
                verification,
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// Starts the security-key step of a login: `pending` is the ticket of a
    /// [`LoginDecision::Challenge`](crate::LoginDecision::Challenge) that offers a key
    /// ([`PendingLogin::accepts`]`(FactorKind::SecurityKey)`). Returns the options for
    /// `navigator.credentials.get`; the ceremony is bound to this ticket.
    ///
    /// # Errors
    /// [`Error::InvalidTicket`], [`Error::LoginExpired`], [`Error::NotEnrolled`] (no key, or
    /// a ticket that offers none), [`Error::SecurityKey`] (`NotConfigured`), and the
    /// infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn start_security_key_login(
        &self,
        pending: &PendingLogin,
    ) -> Result<KeyChallenge, Error> {
        self.check_ticket(pending)?;
        self.run(pending.user(), None, |r, now, _| {
            r.start_security_key_login(pending, now, &self.settings)
        })
        .await
    }

    /// Finishes the second step of a login with the browser's answer to
    /// [`start_security_key_login`](Self::start_security_key_login) (the JSON of the
    /// `PublicKeyCredential`, binary fields base64url). Succeeds as
    /// [`finish_login`](Self::finish_login) does (cycle the session id, keep the proof), with
    /// [`FactorKind::SecurityKey`](crate::vocabulary::FactorKind::SecurityKey).
    ///
    /// # Errors
    /// [`Error::SecurityKey`] for a refused answer (malformed, replayed, another user's key,
    /// a removed key, another origin, a counter that went backwards: audited, nothing saved),
    /// [`Error::InvalidTicket`], [`Error::LoginExpired`], and the infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %pending.user()))]
    pub async fn finish_security_key_login(
        &self,
        pending: &PendingLogin,
        response: &str,
        remember_device: Option<&str>,
        context: &LoginContext,
    ) -> Result<LoginGranted, Error> {
        self.check_ticket(pending)?;
        self.run_checked(pending.user(), Some(context), |r, now, rng| {
            let requirement = self.requirement_of(pending.principal(), r, now);
            r.finish_security_key_login(
                pending,
                now,
                &requirement,
                response,
                remember_device,
                context,
                &self.settings,
                rng,
            )
        })
        .await
    }

    /// Starts a step-up with a security key (before a sensitive action): returns the options
    /// for `navigator.credentials.get`.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] (no key), [`Error::SecurityKey`] (`NotConfigured`), and the
    /// infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn start_security_key_step_up(&self, user: &UserId) -> Result<KeyChallenge, Error> {
        self.run(user, None, |r, now, _| {
            r.start_security_key_step_up(now, &self.settings)
        })
        .await
    }

    /// Finishes a step-up with the browser's answer: a fresh [`SecondFactorProof`] of a
    /// security key, for the session (and for calls that take a [`Verification`]).
    ///
    /// # Errors
    /// [`Error::SecurityKey`] for a refused answer (audited, nothing saved), and the
    /// infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn finish_security_key_step_up(
        &self,
        user: &UserId,
        response: &str,
        context: &LoginContext,
    ) -> Result<SecondFactorProof, Error> {
        self.run_checked(user, Some(context), |r, now, rng| {
            r.finish_security_key_step_up(now, user, response, &self.settings, rng)
        })
        .await
    }
}

impl<S, M, P, C, A> TwoFactor<S, M, P, C, A>
where
    S: SecurityKeyIndex,
    M: Mailer,
    P: EnforcementPolicy,
    C: Clock,
    A: AuditSink,
{
    /// Finishes a registration with the browser's answer to
    /// [`start_security_key_registration`](Self::start_security_key_registration) (the JSON
    /// of the `PublicKeyCredential` that `navigator.credentials.create` returned, binary fields
    /// base64url). webauthn-rs verifies it; a credential id already registered, to this user
    /// or (asked of the store, [`SecurityKeyIndex`]) to another, is refused. The key is added
    /// under the label chosen at the start; for the user's first authenticator 2FA goes on and
    /// the recovery codes come back (show them once).
    ///
    /// # Errors
    /// [`Error::SecurityKey`] (`NoCeremony`, `Malformed`, `Refused`, `AlreadyRegistered`:
    /// audited, nothing saved; `NotConfigured`), [`Error::LabelTaken`] /
    /// [`Error::TooManyAuthenticators`] (changed meanwhile), and the infrastructure errors.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn finish_security_key_registration(
        &self,
        user: &UserId,
        response: &str,
    ) -> Result<SecurityKeyAdded, Error> {
        // Who else holds the credential id the answer claims (the finish refuses an answer
        // whose verified id differs). A malformed answer is refused by the transition.
        let registered_elsewhere = match claimed_credential_id(response) {
            Ok(id) => self
                .store
                .security_key_owner(&id)
                .await
                .map_err(|e| Error::Store(Box::new(e)))?
                .is_some_and(|owner| owner != *user),
            Err(_) => false,
        };
        self.run_checked(user, None, |r, now, rng| {
            r.finish_security_key_registration(
                now,
                user,
                response,
                registered_elsewhere,
                &self.settings,
                rng,
            )
        })
        .await
    }
}
