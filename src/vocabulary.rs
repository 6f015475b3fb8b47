//! The words every layer shares: who ([`UserId`], [`DeviceId`], [`AuthenticatorId`]), where from
//! ([`LoginContext`]), with what ([`FactorKind`]), why a code failed ([`FailureReason`]) and
//! how a stored secret looks ([`SealedSecret`], [`RecordTag`]).
//!
//! This module sits at the bottom of the crate: it imports nothing from the other modules but
//! [`otp`](crate::otp), so the notices ([`mail`](crate::mail)), the audit trail
//! ([`audit`](crate::audit)), the policies ([`policy`](crate::policy)) and the domain
//! ([`account`](crate::account)) can all use these types without importing one another in a
//! circle. The types are re-exported where hosts meet them (the crate root, `account`,
//! `seal`).

use core::fmt;
use std::net::IpAddr;

use crate::otp::Secret;

/// A boxed, `Send` future, as returned by the object-safe [`DynMail`](crate::mail::DynMail)
/// and [`DynUserStore`](crate::store::DynUserStore) (also reachable as `mail::BoxFuture` and
/// `store::BoxFuture`).
pub type BoxFuture<'a, T> = core::pin::Pin<Box<dyn core::future::Future<Output = T> + Send + 'a>>;

/// A boxed error cause (of a store, a mailer, a cipher), for `#[source]` fields.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of a store or mailer chosen at run time ([`DynStore`](crate::store::DynStore),
/// [`DynMailer`](crate::mail::DynMailer)): the original error, boxed. It displays as the
/// original and has the same source; get it back with [`downcast_ref`](Self::downcast_ref) or
/// [`into_inner`](Self::into_inner).
///
/// ```
/// use twofactor::store::MemoryStoreError;
/// use twofactor::vocabulary::DynError;
/// let e = DynError::new(MemoryStoreError::Poisoned);
/// assert!(e.downcast_ref::<MemoryStoreError>().is_some());
/// assert_eq!(e.to_string(), "memory store lock poisoned");
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DynError(BoxError);

impl DynError {
    /// Wraps a store's or mailer's error.
    #[must_use]
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        DynError(Box::new(error))
    }

    /// The original error, if it is an `E`.
    #[must_use]
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }

    /// The original error, boxed.
    #[must_use]
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }
}

/// Identifies a user of the host application.
///
/// Hosts key users by integers, UUIDs or names; all convert into this string newtype.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct UserId(String);

impl UserId {
    /// Wraps a host's user identifier.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        UserId(id.into())
    }
    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        UserId(s.to_owned())
    }
}
impl From<String> for UserId {
    fn from(s: String) -> Self {
        UserId(s)
    }
}
impl From<u64> for UserId {
    fn from(n: u64) -> Self {
        UserId(n.to_string())
    }
}
impl From<i64> for UserId {
    fn from(n: i64) -> Self {
        UserId(n.to_string())
    }
}
impl From<u32> for UserId {
    fn from(n: u32) -> Self {
        UserId(n.to_string())
    }
}
impl From<i32> for UserId {
    fn from(n: i32) -> Self {
        UserId(n.to_string())
    }
}

/// Identifies a trusted device in lists and revocations (not a credential).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct DeviceId(String);

impl DeviceId {
    /// Wraps an id as shown by [`DeviceInfo::id`](crate::account::DeviceInfo::id) (e.g. from a "revoke" form).
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        DeviceId(id.into())
    }
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({:?})", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one of a user's authenticators (an authenticator app on a phone, a spare phone,
/// a password manager) in lists, renames, removals and audit events: short, random, opaque and
/// URL-safe (lowercase letters and digits). Not a credential.
///
/// ```
/// use twofactor::vocabulary::AuthenticatorId;
/// let id = AuthenticatorId::new("k3v9q2mxbt4aa");
/// assert_eq!(id.as_str(), "k3v9q2mxbt4aa");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct AuthenticatorId(String);

impl AuthenticatorId {
    /// Wraps an id as shown by
    /// [`AuthenticatorInfo::id`](crate::account::AuthenticatorInfo::id) (e.g. from a form).
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        AuthenticatorId(id.into())
    }
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthenticatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthenticatorId({:?})", self.0)
    }
}

impl fmt::Display for AuthenticatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the host knows about the request, for notices ("a sign-in from 203.0.113.9, Firefox on
/// Linux, Lyon") and the audit trail. Every field is optional.
///
/// ```
/// use twofactor::LoginContext;
/// let ctx = LoginContext::new()
///     .ip("203.0.113.9".parse().unwrap())
///     .device("Firefox on Linux")
///     .location("Lyon, France");
/// assert_eq!(ctx.device.as_deref(), Some("Firefox on Linux"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LoginContext {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// A description of the device or browser.
    pub device: Option<String>,
    /// An approximate location.
    pub location: Option<String>,
}

impl LoginContext {
    /// An empty context.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the IP address.
    #[must_use]
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
    /// Sets the device description.
    #[must_use]
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }
    /// Sets the location.
    #[must_use]
    pub fn location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

/// Kinds of second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FactorKind {
    /// A code from the authenticator app.
    Totp,
    /// A recovery code.
    RecoveryCode,
    /// A code sent by e-mail.
    MailedCode,
    /// A trusted-device token.
    TrustedDevice,
    /// A security key (WebAuthn, feature `webauthn`): phishing-resistant, bound to the site's
    /// origin.
    SecurityKey,
}

/// Why a security key (WebAuthn, feature `webauthn`) was refused: a typed answer for the host,
/// and the reason the audit trail records. Nothing is saved for any of them: the ceremony
/// stays open until it expires, since only the key itself can answer its challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SecurityKeyFailure {
    /// No security keys on this deployment: no relying party is configured
    /// (`Settings::builder().security_keys(..)`), or the `webauthn` feature is off.
    #[error("security keys are not configured")]
    NotConfigured,
    /// No ceremony of this kind is waiting: never started, expired, already used, or started
    /// for another login. Start again.
    #[error("no security key ceremony is waiting (expired or used); start again")]
    NoCeremony,
    /// The browser's answer is not a WebAuthn response at all (not JSON, or not of the shape
    /// `navigator.credentials` returns).
    #[error("the security key answer is malformed")]
    Malformed,
    /// webauthn-rs refused the answer: another challenge (a replayed answer), another origin
    /// or relying-party id, a bad signature, missing user presence.
    #[error("the security key answer was refused")]
    Refused,
    /// The key is not one of this user's (another user's, or removed meanwhile).
    #[error("this security key is not registered to this account")]
    UnknownCredential,
    /// The key's signature counter went backwards: it may have been cloned. Audited.
    #[error("the security key's counter went backwards: it may have been cloned")]
    PossiblyCloned,
    /// The key is already registered, to this user or another.
    #[error("this security key is already registered")]
    AlreadyRegistered,
}

/// The WebAuthn ceremony a security key took part in (audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum KeyCeremony {
    /// Registering a new key.
    Registration,
    /// The second step of a login.
    Login,
    /// Proving the second factor again (step-up), with no login.
    StepUp,
}

/// Why a submitted code was refused, for the audit trail. Callers of the service see one
/// [`InvalidCode`](crate::service::Error::InvalidCode) for all of these except `Malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FailureReason {
    /// Well-formed, but not the right code.
    WrongCode,
    /// A TOTP code already accepted once (a step at or below the last used one). A used
    /// recovery code is [`WrongCode`](Self::WrongCode), like one never issued: see the
    /// [manual](crate::manual#what-the-caller-sees-and-what-the-audit-trail-sees).
    Replayed,
    /// A mailed code, but no login is waiting for one (never begun, or closed by a success
    /// or a trusted-device login). TOTP and recovery codes need no stored login and never
    /// fail with this reason.
    ExpiredChallenge,
    /// The mailed code or the pending enrollment has expired.
    Expired,
    /// No factor of this kind is pending (no mailed code sent, no recovery codes, no
    /// authenticator).
    NoPendingFactor,
    /// Not a code at all.
    Malformed,
}

/// An encrypted secret as stored in a record: the id of the key that sealed it, a nonce and
/// the ciphertext (with its authentication tag). `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    key_id: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl SealedSecret {
    /// Assembles a sealed secret (for [`SecretCipher`](crate::seal::SecretCipher) implementations).
    #[must_use]
    pub fn new(key_id: impl Into<String>, nonce: Vec<u8>, ciphertext: Vec<u8>) -> Self {
        SealedSecret {
            key_id: key_id.into(),
            nonce,
            ciphertext,
        }
    }

    /// The id of the key that sealed it.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The nonce.
    #[must_use]
    pub fn nonce(&self) -> &[u8] {
        &self.nonce
    }

    /// The ciphertext, authentication tag included.
    #[must_use]
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedForm {
    key: String,
    nonce: String,
    ct: String,
}

/// [`SealedForm`] as written: borrowed, the bytes as [`Hex`].
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
struct SealedFormOut<'a> {
    key: &'a str,
    nonce: Hex<'a>,
    ct: Hex<'a>,
}

#[cfg(feature = "serde")]
impl serde::Serialize for SealedSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SealedFormOut {
            key: &self.key_id,
            nonce: Hex(&self.nonce),
            ct: Hex(&self.ciphertext),
        }
        .serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for SealedSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let form = SealedForm::deserialize(deserializer)?;
        let nonce = unhex_vec(&form.nonce).ok_or_else(|| D::Error::custom("nonce: not hex"))?;
        let ct = unhex_vec(&form.ct).ok_or_else(|| D::Error::custom("ct: not hex"))?;
        Ok(SealedSecret::new(form.key, nonce, ct))
    }
}

/// An authentication tag over a whole stored record, written by [`SealedStore`](crate::seal::SealedStore) and checked
/// on every load: the id of the key that made it and the tag bytes. `Debug` shows the key id
/// only. Stored in the record as `"mac": {"key": ..., "tag": hex}`.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordTag {
    key_id: String,
    tag: Vec<u8>,
}

impl RecordTag {
    /// Assembles a tag (for [`SecretCipher`](crate::seal::SecretCipher) implementations).
    #[must_use]
    pub fn new(key_id: impl Into<String>, tag: Vec<u8>) -> Self {
        RecordTag {
            key_id: key_id.into(),
            tag,
        }
    }

    /// The id of the key that made the tag.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The tag bytes. Compare them in constant time (`subtle`).
    #[must_use]
    pub fn tag(&self) -> &[u8] {
        &self.tag
    }
}

impl fmt::Debug for RecordTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordTag")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TagForm {
    key: String,
    tag: String,
}

/// [`TagForm`] as written: borrowed, the tag as [`Hex`].
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
struct TagFormOut<'a> {
    key: &'a str,
    tag: Hex<'a>,
}

#[cfg(feature = "serde")]
impl serde::Serialize for RecordTag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TagFormOut {
            key: &self.key_id,
            tag: Hex(&self.tag),
        }
        .serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for RecordTag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let form = TagForm::deserialize(deserializer)?;
        let tag = unhex_vec(&form.tag).ok_or_else(|| D::Error::custom("tag: not hex"))?;
        Ok(RecordTag::new(form.key, tag))
    }
}

/// A TOTP secret as a record holds it: in the clear, or sealed by a [`SecretCipher`](crate::seal::SecretCipher).
#[derive(Clone)]
pub(crate) enum SecretSlot {
    Open(Secret),
    Sealed(SealedSecret),
    /// Opened by a [`SealedStore`](crate::seal::SealedStore) on load, with what it was opened
    /// from: a save that finds the secret still there keeps that ciphertext instead of
    /// sealing the same secret again. Any change of secret replaces the whole slot.
    Opened(Secret, std::sync::Arc<OpenedFrom>),
}

/// The ciphertext a [`SecretSlot::Opened`] secret was opened from, and the associated data
/// (user and slot) it opened under.
pub(crate) struct OpenedFrom {
    pub(crate) sealed: SealedSecret,
    pub(crate) associated_data: Vec<u8>,
}

impl SecretSlot {
    /// The secret, unless it is sealed.
    pub(crate) fn open(&self) -> Option<&Secret> {
        match self {
            SecretSlot::Open(s) | SecretSlot::Opened(s, _) => Some(s),
            SecretSlot::Sealed(_) => None,
        }
    }

    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self, SecretSlot::Sealed(_))
    }
}

impl From<Secret> for SecretSlot {
    fn from(secret: Secret) -> Self {
        SecretSlot::Open(secret)
    }
}

/// Serialized as the base32 text when open (the format of records written before sealing
/// existed), as `{"key", "nonce", "ct"}` when sealed.
#[cfg(feature = "serde")]
impl serde::Serialize for SecretSlot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SecretSlot::Open(secret) | SecretSlot::Opened(secret, _) => {
                secret.serialize(serializer)
            }
            SecretSlot::Sealed(sealed) => sealed.serialize(serializer),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for SecretSlot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretSlot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base32 secret or a sealed secret")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretSlot, E> {
                Secret::from_base32(v)
                    .map(SecretSlot::Open)
                    .map_err(E::custom)
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SecretSlot, E> {
                let v = zeroize::Zeroizing::new(v);
                self.visit_str(&v)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretSlot, A::Error> {
                let de = serde::de::value::MapAccessDeserializer::new(map);
                serde::Deserialize::deserialize(de).map(SecretSlot::Sealed)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const_hex::encode(bytes)
}

/// The longest byte string [`Hex`] writes without allocating.
#[cfg(feature = "serde")]
const HEX_ON_STACK: usize = 64;

/// Bytes that serialize as lowercase hex text (the same text as [`hex`]), without allocating
/// up to [`HEX_ON_STACK`] bytes: a record holds a dozen digests, and saving one encodes it.
#[cfg(feature = "serde")]
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

#[cfg(feature = "serde")]
impl serde::Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.len() > HEX_ON_STACK {
            return serializer.serialize_str(&hex(self.0));
        }
        let mut buf = [0u8; 2 * HEX_ON_STACK];
        let text = const_hex::encode_to_str(self.0, &mut buf[..2 * self.0.len()])
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

/// Decodes hex of any even length (either case); `None` for anything else.
pub(crate) fn unhex_vec(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn hex_text_is_the_same_on_the_stack_and_off_it() {
        for len in [0, 1, 16, 32, 63, 64, 65, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let json = serde_json::to_string(&Hex(&bytes)).unwrap();
            assert_eq!(json, format!("\"{}\"", hex(&bytes)), "{len}");
            assert_eq!(unhex_vec(&json[1..json.len() - 1]), Some(bytes));
        }
    }
}
