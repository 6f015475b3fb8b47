//! Security keys (WebAuthn) as a second factor, feature `webauthn`, on kanidm's webauthn-rs.
//!
//! A security key is one more kind of [authenticator](super::AuthenticatorInfo): named,
//! listed, removable, counted in "removing the last one turns 2FA off", revoked by an admin
//! reset. Every WebAuthn check is webauthn-rs's own (its `securitykey_*` ceremonies); this
//! module keeps what webauthn-rs leaves to its caller:
//!
//! - the **ceremony state** (the challenge and what it was for) lives in the user's record,
//!   server-side, single-use and expiring, saved with the record's compare-and-swap. It never
//!   goes to the client: webauthn-rs only lets it be serialised under its
//!   `danger-allow-state-serialisation` feature, whose promise (the state stays on the server)
//!   the record keeps;
//! - a credential id already registered (to this user or another) is refused;
//! - after each authentication the stored credential is updated (counter, backup state); a
//!   counter that goes backwards is refused by webauthn-rs and audited here as a possibly
//!   cloned key;
//! - a login ceremony is bound to its login ticket ([`PendingLogin`]); a step-up ceremony to
//!   the user.
//!
//! Bad input (malformed or replayed JSON, another user's credential, an expired or used
//! ceremony, another origin or relying-party id) is refused with a typed
//! [`SecurityKeyFailure`], audited, and **nothing is saved**: only the key can answer the
//! stored challenge, so there is nothing to guess and nothing to count. See the
//! [manual](crate::manual#security-keys-webauthn).
//!
//! The stored shapes exist in every build, so a record written with the feature loads
//! without it as long as it holds no key nor ceremony; one that does is refused as corrupt
//! (fail closed), never read as "no 2FA".

// Without the feature the stored shapes are only decoded (and refused when not empty).
#![cfg_attr(not(feature = "webauthn"), allow(dead_code))]

#[cfg(feature = "webauthn")]
use core::fmt;

use super::{AuthMethod, TwoFactorRecord, authenticators::AuthenticatorFactor};

/// webauthn-rs's types (feature `webauthn`), or a type that stands for them in a build
/// without it: never built, and decoding one fails.
#[cfg(feature = "webauthn")]
mod stored {
    pub(crate) type Credential = webauthn_rs::prelude::SecurityKey;
    pub(crate) type RegistrationState = webauthn_rs::prelude::SecurityKeyRegistration;
    pub(crate) type AuthenticationState = webauthn_rs::prelude::SecurityKeyAuthentication;
}

#[cfg(not(feature = "webauthn"))]
mod stored {
    /// Stands for a webauthn-rs type in a build without the `webauthn` feature: no value
    /// exists, and decoding one is an error (the row is reported corrupt and the login fails
    /// closed).
    #[derive(Clone)]
    pub(crate) enum Unsupported {}

    #[cfg(feature = "serde")]
    impl serde::Serialize for Unsupported {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            match *self {}
        }
    }

    #[cfg(feature = "serde")]
    impl<'de> serde::Deserialize<'de> for Unsupported {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(serde::de::Error::custom(
                "a security key or WebAuthn ceremony in a build without the `webauthn` feature",
            ))
        }
    }

    pub(crate) type Credential = Unsupported;
    pub(crate) type RegistrationState = Unsupported;
    pub(crate) type AuthenticationState = Unsupported;
}

/// The security-key part of an authenticator: webauthn-rs's credential (public key, id,
/// counter, backup state, attestation), as it serialises it. Nothing in it is secret.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct SecurityKeyFactor {
    pub(crate) credential: stored::Credential,
}

impl SecurityKeyFactor {
    /// The method a signature of this key proves: [`SoftwareKey`](AuthMethod::SoftwareKey)
    /// (`swk`) when the credential says at registration or since that it may live on several
    /// devices or in a backup (WebAuthn's backup-eligible flag: a synced passkey; webauthn-rs
    /// notes "the private key is NOT sealed within a hardware cryptographic processor"),
    /// [`HardwareKey`](AuthMethod::HardwareKey) (`hwk`) otherwise. Read from the credential as
    /// webauthn-rs serialises it; unreadable counts as synced, the weaker claim.
    pub(crate) fn method(&self) -> AuthMethod {
        #[cfg(feature = "webauthn")]
        {
            let synced = serde_json::to_value(&self.credential)
                .ok()
                .and_then(|v| v.get("cred")?.get("backup_eligible")?.as_bool())
                .unwrap_or(true);
            if synced {
                AuthMethod::SoftwareKey
            } else {
                AuthMethod::HardwareKey
            }
        }
        #[cfg(not(feature = "webauthn"))]
        match self.credential {}
    }
}

/// A registration waiting for the browser's answer.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct RegistrationCeremony {
    /// The label the key will have.
    pub(crate) label: String,
    pub(crate) started_at: u64,
    /// Open while `now < expires_at`.
    pub(crate) expires_at: u64,
    pub(crate) state: stored::RegistrationState,
}

/// What an authentication ceremony is for.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub(crate) enum AuthenticationPurpose {
    /// The second step of the login whose ticket has this nonce (hex).
    Login { ticket: String },
    /// A step-up of the user, with no login.
    StepUp,
}

/// An authentication waiting for the browser's answer.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct AuthenticationCeremony {
    pub(crate) purpose: AuthenticationPurpose,
    pub(crate) started_at: u64,
    /// Open while `now < expires_at`.
    pub(crate) expires_at: u64,
    pub(crate) state: stored::AuthenticationState,
}

/// The WebAuthn ceremonies of a user waiting for an answer: at most one registration and one
/// authentication (a new one replaces the old). Stored in the record (format 5).
#[derive(Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct KeyCeremonies {
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::account::required")
    )]
    pub(crate) registration: Option<RegistrationCeremony>,
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::account::required")
    )]
    pub(crate) authentication: Option<AuthenticationCeremony>,
}

impl TwoFactorRecord {
    /// Whether the user has at least one security key.
    #[must_use]
    pub fn has_security_key(&self) -> bool {
        self.authenticators
            .iter()
            .any(|a| matches!(a.factor, AuthenticatorFactor::SecurityKey(_)))
    }

    /// Whether the user has at least one TOTP authenticator.
    #[must_use]
    pub fn has_totp(&self) -> bool {
        self.authenticators
            .iter()
            .any(|a| matches!(a.factor, AuthenticatorFactor::Totp(_)))
    }
}

#[cfg(feature = "webauthn")]
pub use enabled::*;

#[cfg(feature = "webauthn")]
mod enabled {
    use std::sync::Arc;

    use rand::TryCryptoRng;
    use webauthn_rs::prelude::{
        CredentialID, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
        WebauthnBuilder, WebauthnError,
    };

    use super::super::authenticators::{Authenticator, AuthenticatorInfo};
    use super::super::login::{LoginGranted, PendingLogin};
    use super::super::recovery::{RecoveryCodeSet, RecoveryCodes};
    use super::super::{
        Checked, DomainError, FactorKind, LoginContext, Reauthenticated, Refusal,
        SecondFactorProof, Settings, Transition, TwoFactorRecord, UserId, Verification,
    };
    use super::{
        AuthenticationCeremony, AuthenticationPurpose, RegistrationCeremony, SecurityKeyFactor, fmt,
    };
    use crate::audit::{AuditKind, Operation};
    use crate::mail::Notice;
    use crate::policy::Requirement;
    use crate::vocabulary::{AuthenticatorId, KeyCeremony, SecurityKeyFailure, hex};

    /// The relying party: the site's WebAuthn identity (its id, the origins it is served
    /// from, its name) and how long a ceremony stays open. Build one and give it to
    /// [`SettingsBuilder::security_keys`](super::super::SettingsBuilder::security_keys).
    ///
    /// ```
    /// use twofactor::account::{RelyingParty, Settings};
    /// let rp = RelyingParty::new("example.com", "https://login.example.com", "Example")?;
    /// let settings = Settings::builder().security_keys(rp).build()?;
    /// assert_eq!(settings.security_keys().unwrap().id(), "example.com");
    /// // webauthn-rs refuses an origin that is not a domain (127.0.0.1) or not under the id.
    /// assert!(RelyingParty::new("example.com", "https://evil.test", "Example").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Clone)]
    pub struct RelyingParty {
        webauthn: Arc<Webauthn>,
        id: String,
        origin: String,
        ceremony_ttl: u64,
    }

    /// Why a [`RelyingParty`] could not be built.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum RelyingPartyError {
        /// The origin is not a URL.
        #[error("the origin is not a URL")]
        Origin,
        /// webauthn-rs refused the id and origin: the id must be the origin's host or a
        /// parent domain of it, and a domain name (`localhost` is fine, `127.0.0.1` is not).
        #[error("the relying-party id does not fit the origin (webauthn-rs refused it)")]
        Refused,
        /// The ceremony lifetime is outside its bounds.
        #[error("a ceremony must stay open {min} to {max} seconds")]
        CeremonyTtl {
            /// The shortest allowed.
            min: u64,
            /// The longest allowed.
            max: u64,
        },
    }

    impl RelyingParty {
        /// How long a ceremony waits for the browser's answer: 5 minutes (webauthn-rs's
        /// default timeout, which the browser is told too).
        pub const DEFAULT_CEREMONY_TTL: u64 = 300;
        /// The shortest ceremony lifetime allowed.
        pub const MIN_CEREMONY_TTL: u64 = 30;
        /// The longest ceremony lifetime allowed.
        pub const MAX_CEREMONY_TTL: u64 = 1_800;

        /// A relying party with id `id` (the domain, `example.com`), served from `origin`
        /// (`https://login.example.com`; `http://localhost:PORT` for tests), named `name` in
        /// the browser's prompt.
        ///
        /// # Errors
        /// [`RelyingPartyError::Origin`], [`RelyingPartyError::Refused`].
        pub fn new(id: &str, origin: &str, name: &str) -> Result<Self, RelyingPartyError> {
            Self::with_ttl(id, origin, name, Self::DEFAULT_CEREMONY_TTL)
        }

        /// [`new`](Self::new), with a ceremony lifetime in seconds
        /// ([`MIN_CEREMONY_TTL`](Self::MIN_CEREMONY_TTL) to
        /// [`MAX_CEREMONY_TTL`](Self::MAX_CEREMONY_TTL)).
        ///
        /// # Errors
        /// As [`new`](Self::new), and [`RelyingPartyError::CeremonyTtl`].
        pub fn with_ttl(
            id: &str,
            origin: &str,
            name: &str,
            ceremony_ttl: u64,
        ) -> Result<Self, RelyingPartyError> {
            if !(Self::MIN_CEREMONY_TTL..=Self::MAX_CEREMONY_TTL).contains(&ceremony_ttl) {
                return Err(RelyingPartyError::CeremonyTtl {
                    min: Self::MIN_CEREMONY_TTL,
                    max: Self::MAX_CEREMONY_TTL,
                });
            }
            let url = Url::parse(origin).map_err(|_| RelyingPartyError::Origin)?;
            let webauthn = WebauthnBuilder::new(id, &url)
                .map_err(|_| RelyingPartyError::Refused)?
                .rp_name(name)
                .timeout(core::time::Duration::from_secs(ceremony_ttl))
                .build()
                .map_err(|_| RelyingPartyError::Refused)?;
            Ok(RelyingParty {
                webauthn: Arc::new(webauthn),
                id: id.to_owned(),
                origin: url.origin().ascii_serialization(),
                ceremony_ttl,
            })
        }

        /// The relying-party id.
        #[must_use]
        pub fn id(&self) -> &str {
            &self.id
        }

        /// The origin the browser must report.
        #[must_use]
        pub fn origin(&self) -> &str {
            &self.origin
        }

        /// How long a ceremony stays open, in seconds.
        #[must_use]
        pub const fn ceremony_ttl(&self) -> u64 {
            self.ceremony_ttl
        }

        /// webauthn-rs's verifier, for a host's own checks (benchmarks compare against it).
        #[must_use]
        pub fn webauthn(&self) -> &Webauthn {
            &self.webauthn
        }
    }

    impl PartialEq for RelyingParty {
        fn eq(&self, other: &Self) -> bool {
            self.id == other.id
                && self.origin == other.origin
                && self.ceremony_ttl == other.ceremony_ttl
        }
    }

    impl Eq for RelyingParty {}

    impl fmt::Debug for RelyingParty {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RelyingParty")
                .field("id", &self.id)
                .field("origin", &self.origin)
                .field("ceremony_ttl", &self.ceremony_ttl)
                .finish_non_exhaustive()
        }
    }

    /// A ceremony started: the JSON options to pass to `navigator.credentials.create` (a
    /// registration) or `navigator.credentials.get` (an authentication), after turning their
    /// base64url fields into `ArrayBuffer`s, and until when the answer is accepted.
    #[derive(Clone)]
    pub struct KeyChallenge {
        options: String,
        expires_at: u64,
    }

    impl KeyChallenge {
        /// The options as JSON (`{"publicKey": {...}}`, binary fields base64url), as
        /// webauthn-rs writes them. Nothing in them is secret.
        #[must_use]
        pub fn options_json(&self) -> &str {
            &self.options
        }

        /// Until when the answer is accepted.
        #[must_use]
        pub const fn expires_at(&self) -> u64 {
            self.expires_at
        }
    }

    impl fmt::Debug for KeyChallenge {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("KeyChallenge")
                .field("expires_at", &self.expires_at)
                .finish_non_exhaustive()
        }
    }

    /// A registered security key.
    pub struct SecurityKeyAdded {
        pub(crate) info: AuthenticatorInfo,
        pub(crate) proof: SecondFactorProof,
        pub(crate) recovery_codes: Option<RecoveryCodes>,
    }

    impl SecurityKeyAdded {
        /// The new key, as listed.
        #[must_use]
        pub fn info(&self) -> &AuthenticatorInfo {
            &self.info
        }
        /// Proof of the key just registered (it signed the challenge now).
        #[must_use]
        pub fn proof(&self) -> &SecondFactorProof {
            &self.proof
        }
        /// When this key was the user's first authenticator (2FA just went on): the new
        /// recovery codes, shown once. `None` when the user had one already.
        #[must_use]
        pub fn recovery_codes(&self) -> Option<&RecoveryCodes> {
            self.recovery_codes.as_ref()
        }
        /// [`recovery_codes`](Self::recovery_codes), by value.
        #[must_use]
        pub fn into_recovery_codes(self) -> Option<RecoveryCodes> {
            self.recovery_codes
        }
    }

    impl fmt::Debug for SecurityKeyAdded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SecurityKeyAdded")
                .field("info", &self.info)
                .field("proof", &self.proof)
                .field("recovery_codes", &self.recovery_codes.is_some())
                .finish()
        }
    }

    /// The credential id a registration answer claims (before any check), for the store's
    /// "registered to someone else?" look-up ([`crate::store::SecurityKeyIndex`]); the
    /// finish refuses an answer whose verified id differs.
    ///
    /// # Errors
    /// [`SecurityKeyFailure::Malformed`].
    pub fn claimed_credential_id(response: &str) -> Result<Vec<u8>, SecurityKeyFailure> {
        let reg: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(|_| SecurityKeyFailure::Malformed)?;
        Ok(reg.raw_id.to_vec())
    }

    /// Maps webauthn-rs's refusal to ours (the detail goes to the debug log, never to the
    /// caller: it is the same for every wrong answer).
    fn refusal(e: &WebauthnError) -> SecurityKeyFailure {
        tracing::debug!(error = %e, "webauthn-rs refused the answer");
        match e {
            WebauthnError::CredentialPossibleCompromise => SecurityKeyFailure::PossiblyCloned,
            WebauthnError::ParseNOMFailure
            | WebauthnError::ParseBase64Failure(_)
            | WebauthnError::ParseCBORFailure(_)
            | WebauthnError::ParseJSONFailure(_)
            | WebauthnError::ParseInsufficientBytesAvailable => SecurityKeyFailure::Malformed,
            _ => SecurityKeyFailure::Refused,
        }
    }

    /// The credential ids of `list` in the form the store index and `exclude_credentials`
    /// take.
    pub(crate) fn credential_ids(record: &TwoFactorRecord) -> Vec<CredentialID> {
        record
            .authenticators
            .iter()
            .filter_map(|a| a.security_key())
            .map(|k| k.credential.cred_id().clone())
            .collect()
    }

    impl Authenticator {
        /// A new security key authenticator.
        fn new_security_key(
            id: AuthenticatorId,
            label: String,
            created_at: u64,
            credential: super::stored::Credential,
        ) -> Self {
            Authenticator {
                id,
                label,
                created_at,
                last_used_at: Some(created_at),
                factor: super::AuthenticatorFactor::SecurityKey(SecurityKeyFactor { credential }),
            }
        }
    }

    impl TwoFactorRecord {
        /// The credential ids of the user's security keys (raw bytes).
        #[must_use]
        pub fn security_key_credential_ids(&self) -> Vec<Vec<u8>> {
            credential_ids(self).iter().map(|c| c.to_vec()).collect()
        }

        fn webauthn(settings: &Settings) -> Result<&RelyingParty, DomainError> {
            settings
                .security_keys
                .as_ref()
                .ok_or(DomainError::SecurityKey(SecurityKeyFailure::NotConfigured))
        }

        /// A refusal of a key's answer: nothing saved, the reason audited.
        fn key_refused<T>(
            &self,
            ceremony: KeyCeremony,
            reason: SecurityKeyFailure,
        ) -> Transition<Checked<T>> {
            Transition::new(self.clone(), false, Err(Refusal::SecurityKey(reason)))
                .event(AuditKind::SecurityKeyRefused { ceremony, reason })
        }

        /// Starts registering a security key named `label` (see
        /// [`rename_authenticator`](Self::rename_authenticator) for the rules): returns the
        /// options for `navigator.credentials.create` and keeps the ceremony in the record
        /// (replacing a registration already waiting) until
        /// [`RelyingParty::ceremony_ttl`].
        ///
        /// Needs a fresh password check, and:
        /// - for a user who has an authenticator, a second factor (`verification`: a fresh
        ///   proof, of a security key too, or a code now), as for adding an authenticator;
        /// - for a user without one (the key turns 2FA on), what enrolling needs: nothing
        ///   more, except where the policy asks this user for a mailed code at login, then the
        ///   proof of that login (as [`start_enrollment`](Self::start_enrollment)).
        ///
        /// `user_name` and `display_name` are shown by the browser's prompt.
        ///
        /// # Errors
        /// [`DomainError::ReauthenticationRequired`], [`DomainError::SecondFactorRequired`],
        /// [`DomainError::InvalidProof`], [`DomainError::InvalidLabel`],
        /// [`DomainError::LabelTaken`], [`DomainError::TooManyAuthenticators`],
        /// [`DomainError::SecurityKey`] (`NotConfigured`), [`DomainError::Rng`]. A refused
        /// code comes back in the outcome.
        #[allow(clippy::too_many_arguments)]
        pub fn start_security_key_registration<R: TryCryptoRng + ?Sized>(
            &self,
            now: u64,
            user: &UserId,
            requirement: &Requirement,
            label: &str,
            user_name: &str,
            display_name: &str,
            reauth: Reauthenticated,
            verification: Option<Verification<'_>>,
            settings: &Settings,
            rng: &mut R,
        ) -> Result<Transition<Checked<KeyChallenge>>, DomainError> {
            let rp = Self::webauthn(settings)?;
            if !reauth.is_fresh(now, settings.reauth_max_age) {
                return Err(DomainError::ReauthenticationRequired);
            }
            let label = self.free_label(label, None)?;
            if self.authenticators.len() >= settings.max_authenticators {
                return Err(DomainError::TooManyAuthenticators {
                    max: settings.max_authenticators,
                });
            }
            let (mut next, used) = if self.is_enrolled() {
                let verification = verification.ok_or(DomainError::SecondFactorRequired)?;
                match self.check_verification(
                    now,
                    user,
                    verification,
                    Operation::AddAuthenticator,
                    settings,
                )? {
                    Ok(ok) => ok,
                    Err(t) => return Ok((*t).map(Err)),
                }
            } else {
                self.ensure_may_enroll(now, user, requirement, verification, settings)?;
                (self.clone(), Vec::new())
            };
            let mut handle = [0u8; 16];
            rng.try_fill_bytes(&mut handle)
                .map_err(|_| DomainError::Rng)?;
            let handle = uuid_v4(handle);
            let (options, state) = rp
                .webauthn
                .start_securitykey_registration(
                    handle,
                    user_name,
                    display_name,
                    Some(credential_ids(self)),
                    None,
                    None,
                )
                .map_err(|e| {
                    tracing::warn!(error = %e, "webauthn-rs could not start a registration");
                    DomainError::SecurityKey(SecurityKeyFailure::NotConfigured)
                })?;
            let options = serde_json::to_string(&options)
                .map_err(|_| DomainError::SecurityKey(SecurityKeyFailure::NotConfigured))?;
            let expires_at = now.saturating_add(rp.ceremony_ttl);
            next.key_ceremonies.registration = Some(RegistrationCeremony {
                label,
                started_at: now,
                expires_at,
                state,
            });
            if self.is_enrolled() {
                next.code_checks.reset();
            }
            Ok(Transition::new(
                next,
                true,
                Ok(KeyChallenge {
                    options,
                    expires_at,
                }),
            )
            .events_from(used)
            .event(AuditKind::SecurityKeyCeremonyStarted {
                ceremony: KeyCeremony::Registration,
                expires_at,
            }))
        }

        /// Finishes a registration with the browser's answer (the JSON of the
        /// `PublicKeyCredential` that `navigator.credentials.create` returned, binary fields
        /// base64url). webauthn-rs verifies it against the stored ceremony; the key is added
        /// after the other authenticators under the label chosen at the start. When it is
        /// the user's first authenticator, 2FA goes on: new recovery codes come back (shown
        /// once) and the user is notified as for an enrollment.
        ///
        /// `registered_elsewhere`: whether the store knows the credential id the answer
        /// claims ([`claimed_credential_id`]) as another user's key (the service asks
        /// [`SecurityKeyIndex`](crate::store::SecurityKeyIndex)).
        ///
        /// # Errors
        /// [`DomainError::LabelTaken`] / [`DomainError::TooManyAuthenticators`] (changed
        /// meanwhile), [`DomainError::Rng`], [`DomainError::SecurityKey`] (`NotConfigured`).
        /// A refused answer (`NoCeremony`, `Malformed`, `Refused`, `AlreadyRegistered`) comes
        /// back in the outcome, audited; nothing is saved.
        pub fn finish_security_key_registration<R: TryCryptoRng + ?Sized>(
            &self,
            now: u64,
            user: &UserId,
            response: &str,
            registered_elsewhere: bool,
            settings: &Settings,
            rng: &mut R,
        ) -> Result<Transition<Checked<SecurityKeyAdded>>, DomainError> {
            let rp = Self::webauthn(settings)?;
            let refused = |reason| Ok(self.key_refused(KeyCeremony::Registration, reason));
            let Some(ceremony) = self
                .key_ceremonies
                .registration
                .as_ref()
                .filter(|c| now < c.expires_at)
            else {
                return refused(SecurityKeyFailure::NoCeremony);
            };
            let Ok(reg) = serde_json::from_str::<RegisterPublicKeyCredential>(response) else {
                return refused(SecurityKeyFailure::Malformed);
            };
            let credential = match rp
                .webauthn
                .finish_securitykey_registration(&reg, &ceremony.state)
            {
                Ok(c) => c,
                Err(e) => return refused(refusal(&e)),
            };
            if credential.cred_id().as_slice() != reg.raw_id.as_slice() {
                return refused(SecurityKeyFailure::Refused);
            }
            let mine = credential_ids(self).contains(credential.cred_id());
            if mine || registered_elsewhere {
                return refused(SecurityKeyFailure::AlreadyRegistered);
            }
            let label = self.free_label(&ceremony.label, None)?;
            if self.authenticators.len() >= settings.max_authenticators {
                return Err(DomainError::TooManyAuthenticators {
                    max: settings.max_authenticators,
                });
            }
            let first = !self.is_enrolled();
            let mut next = self.clone();
            next.key_ceremonies.registration = None;
            let id = next.new_authenticator_id(rng)?;
            let key = Authenticator::new_security_key(id.clone(), label.clone(), now, credential);
            let info = key.info();
            let mut recovery_codes = None;
            if first {
                // The first authenticator: 2FA goes on, as a confirmed enrollment.
                let (set, codes) = RecoveryCodeSet::generate(
                    now,
                    settings.recovery_codes,
                    &settings.code_keys,
                    rng,
                )?;
                let ceremonies = core::mem::take(&mut next.key_ceremonies);
                next.clear_factors();
                next.key_ceremonies = ceremonies;
                next.mailed_code_login_at = None;
                next.mailed_login_required = false;
                next.recovery = Some(set);
                recovery_codes = Some(codes);
            }
            next.authenticators.push(key);
            next.code_checks.reset();
            let proof = next.issue_proof_naming(
                user,
                FactorKind::SecurityKey,
                now,
                None,
                Some(&id),
                settings,
                rng,
            )?;
            let mut t = Transition::new(
                next,
                true,
                Ok(SecurityKeyAdded {
                    info,
                    proof,
                    recovery_codes,
                }),
            )
            .event(AuditKind::AuthenticatorAdded {
                authenticator: id,
                label: label.clone(),
            });
            t = if first {
                t.event(AuditKind::Enrolled).notice(Notice::Enabled)
            } else {
                t.notice(Notice::AuthenticatorAdded { label })
            };
            Ok(t)
        }

        /// Starts an authentication ceremony over the user's keys.
        fn start_key_authentication(
            &self,
            now: u64,
            purpose: AuthenticationPurpose,
            deadline: u64,
            ceremony: KeyCeremony,
            settings: &Settings,
        ) -> Result<Transition<KeyChallenge>, DomainError> {
            let rp = Self::webauthn(settings)?;
            let keys: Vec<_> = self
                .authenticators
                .iter()
                .filter_map(|a| a.security_key())
                .map(|k| k.credential.clone())
                .collect();
            if keys.is_empty() {
                return Err(DomainError::NotEnrolled);
            }
            let (options, state) = rp
                .webauthn
                .start_securitykey_authentication(&keys)
                .map_err(|e| {
                    tracing::warn!(error = %e, "webauthn-rs could not start an authentication");
                    DomainError::SecurityKey(SecurityKeyFailure::NotConfigured)
                })?;
            let options = serde_json::to_string(&options)
                .map_err(|_| DomainError::SecurityKey(SecurityKeyFailure::NotConfigured))?;
            let expires_at = now.saturating_add(rp.ceremony_ttl).min(deadline);
            let mut next = self.clone();
            next.key_ceremonies.authentication = Some(AuthenticationCeremony {
                purpose,
                started_at: now,
                expires_at,
                state,
            });
            Ok(Transition::new(
                next,
                true,
                KeyChallenge {
                    options,
                    expires_at,
                },
            )
            .event(AuditKind::SecurityKeyCeremonyStarted {
                ceremony,
                expires_at,
            }))
        }

        /// Checks the browser's answer against the waiting authentication ceremony for
        /// `purpose`; on success the ceremony is consumed, the key's stored credential
        /// updated (counter, backup state) and its last use set.
        fn finish_key_authentication<T>(
            &self,
            now: u64,
            purpose: &AuthenticationPurpose,
            ceremony: KeyCeremony,
            response: &str,
            settings: &Settings,
        ) -> Result<KeyVerified<T>, DomainError> {
            let rp = Self::webauthn(settings)?;
            let refused = |reason| Ok(Err(Box::new(self.key_refused(ceremony, reason))));
            let Some(waiting) = self
                .key_ceremonies
                .authentication
                .as_ref()
                .filter(|c| now < c.expires_at && c.purpose == *purpose)
            else {
                return refused(SecurityKeyFailure::NoCeremony);
            };
            let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(response) else {
                return refused(SecurityKeyFailure::Malformed);
            };
            // The key the answer names, among the user's current keys (one removed since the
            // ceremony started, or another user's, is not).
            let index = self.authenticators.iter().position(|a| {
                a.security_key()
                    .is_some_and(|k| k.credential.cred_id().as_slice() == answer.raw_id.as_slice())
            });
            let Some(index) = index else {
                return refused(SecurityKeyFailure::UnknownCredential);
            };
            let result = match rp
                .webauthn
                .finish_securitykey_authentication(&answer, &waiting.state)
            {
                Ok(r) => r,
                Err(e) => {
                    let reason = refusal(&e);
                    let mut t = self.key_refused(ceremony, reason);
                    if reason == SecurityKeyFailure::PossiblyCloned {
                        t = t.event(AuditKind::SecurityKeyPossiblyCloned {
                            authenticator: self.authenticators[index].id.clone(),
                        });
                    }
                    return Ok(Err(Box::new(t)));
                }
            };
            if result.cred_id().as_slice() != answer.raw_id.as_slice() {
                return refused(SecurityKeyFailure::Refused);
            }
            let mut next = self.clone();
            next.key_ceremonies.authentication = None;
            let key = &mut next.authenticators[index];
            key.last_used_at = Some(now);
            if let Some(k) = key.security_key_mut() {
                // As webauthn-rs advises: keep the counter and backup state it saw.
                let _ = k.credential.update_credential(&result);
            }
            let id = key.id.clone();
            Ok(Ok((next, id)))
        }

        /// Starts the security-key step of a login begun with
        /// [`start_login`](Self::start_login) whose ticket accepts a key
        /// ([`PendingLogin::accepts`]`(FactorKind::SecurityKey)`): returns the options for
        /// `navigator.credentials.get` and keeps the ceremony, bound to this ticket, until
        /// [`RelyingParty::ceremony_ttl`] or the ticket's deadline.
        ///
        /// # Errors
        /// [`DomainError::InvalidTicket`], [`DomainError::LoginExpired`] (as
        /// [`finish_login`](Self::finish_login)), [`DomainError::NotEnrolled`] (no key; also
        /// when the ticket does not accept one), [`DomainError::SecurityKey`]
        /// (`NotConfigured`).
        pub fn start_security_key_login(
            &self,
            pending: &PendingLogin,
            now: u64,
            settings: &Settings,
        ) -> Result<Transition<KeyChallenge>, DomainError> {
            self.ensure_ticket_usable(pending, now, settings)?;
            if !pending.accepts(FactorKind::SecurityKey) {
                return Err(DomainError::NotEnrolled);
            }
            self.start_key_authentication(
                now,
                AuthenticationPurpose::Login {
                    ticket: hex(pending.nonce()),
                },
                pending.expires_at(),
                KeyCeremony::Login,
                settings,
            )
        }

        /// Finishes the second step of a login with a security key: the browser's answer to
        /// the ceremony [`start_security_key_login`](Self::start_security_key_login) started
        /// for this ticket. On success it is [`finish_login`](Self::finish_login)'s success
        /// (the ticket used up, a proof, a trusted-device token if asked for and allowed),
        /// with [`FactorKind::SecurityKey`].
        ///
        /// A key's answer cannot be guessed: refusals are not counted by the throttle, and a
        /// key still logs in while code checks are throttled (as a trusted device does).
        ///
        /// # Errors
        /// As [`start_security_key_login`](Self::start_security_key_login), and
        /// [`DomainError::Rng`]. A refused answer comes back in the outcome
        /// ([`Refusal::SecurityKey`]), audited; nothing is saved.
        #[allow(clippy::too_many_arguments)]
        pub fn finish_security_key_login<R: TryCryptoRng + ?Sized>(
            &self,
            pending: &PendingLogin,
            now: u64,
            requirement: &Requirement,
            response: &str,
            remember_device: Option<&str>,
            context: &LoginContext,
            settings: &Settings,
            rng: &mut R,
        ) -> Result<Transition<Checked<LoginGranted>>, DomainError> {
            self.ensure_ticket_usable(pending, now, settings)?;
            if !pending.accepts(FactorKind::SecurityKey) {
                return Ok(self.key_refused(KeyCeremony::Login, SecurityKeyFailure::NoCeremony));
            }
            let purpose = AuthenticationPurpose::Login {
                ticket: hex(pending.nonce()),
            };
            let (next, id) = match self.finish_key_authentication(
                now,
                &purpose,
                KeyCeremony::Login,
                response,
                settings,
            )? {
                Ok(ok) => ok,
                Err(t) => return Ok(*t),
            };
            next.complete_login(
                pending,
                now,
                requirement,
                FactorKind::SecurityKey,
                super::super::login::Verified::key(id),
                remember_device,
                context,
                settings,
                rng,
            )
        }

        /// Starts a step-up with a security key (the user proves the second factor again,
        /// no login): returns the options for `navigator.credentials.get`.
        ///
        /// # Errors
        /// [`DomainError::NotEnrolled`] (no key), [`DomainError::SecurityKey`]
        /// (`NotConfigured`).
        pub fn start_security_key_step_up(
            &self,
            now: u64,
            settings: &Settings,
        ) -> Result<Transition<KeyChallenge>, DomainError> {
            self.start_key_authentication(
                now,
                AuthenticationPurpose::StepUp,
                u64::MAX,
                KeyCeremony::StepUp,
                settings,
            )
        }

        /// Finishes a step-up with the browser's answer: a fresh [`SecondFactorProof`] of
        /// [`FactorKind::SecurityKey`] for `user` (this record must be theirs), audited as
        /// `SecondFactorVerified`.
        ///
        /// # Errors
        /// As [`start_security_key_step_up`](Self::start_security_key_step_up), and
        /// [`DomainError::Rng`]. A refused answer comes back in the outcome, audited;
        /// nothing is saved.
        pub fn finish_security_key_step_up<R: TryCryptoRng + ?Sized>(
            &self,
            now: u64,
            user: &UserId,
            response: &str,
            settings: &Settings,
            rng: &mut R,
        ) -> Result<Transition<Checked<SecondFactorProof>>, DomainError> {
            let (next, id) = match self.finish_key_authentication(
                now,
                &AuthenticationPurpose::StepUp,
                KeyCeremony::StepUp,
                response,
                settings,
            )? {
                Ok(ok) => ok,
                Err(t) => return Ok(*t),
            };
            let proof = next.issue_proof_naming(
                user,
                FactorKind::SecurityKey,
                now,
                None,
                Some(&id),
                settings,
                rng,
            )?;
            Ok(Transition::new(next, true, Ok(proof))
                .event(AuditKind::SecondFactorVerified {
                    factor: FactorKind::SecurityKey,
                })
                .event(AuditKind::AuthenticatorUsed { authenticator: id }))
        }
    }

    /// An accepted answer (the record to go on from and the key that signed), or the refusal
    /// to return.
    type KeyVerified<T> = Result<(TwoFactorRecord, AuthenticatorId), Box<Transition<Checked<T>>>>;

    /// A random (version 4) UUID from 16 random bytes: the WebAuthn user handle of a
    /// registration. A second-factor key is looked up by the user's record, never by its
    /// handle, so a new one per registration reveals nothing about the user.
    fn uuid_v4(mut bytes: [u8; 16]) -> Uuid {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid::from_bytes(bytes)
    }
}
