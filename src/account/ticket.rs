//! Sealed tokens that cross the seam with the host: login tickets ([`PendingLogin`]) and
//! second-factor proofs ([`SecondFactorProof`]).
//!
//! Both are a strict, canonical binary encoding of their claims, MAC'd with HMAC-SHA-256 under
//! the tickets-and-proofs subkey ([`ServiceKeys`](super::ServiceKeys)) with a label per kind,
//! and written as `hex(payload) "." hex(mac)`: safe to keep in an unsigned cookie or a hidden
//! form field. Any edit, a token of the other kind, or a token made under another key is
//! refused before anything it claims is used.
//!
//! What makes a login ticket single-use and revocable is stored in the user's record (a
//! [`TicketLedger`]): the generation every ticket and proof carries (bumped by a revocation
//! and an administrator's reset) and the nonces of tickets that completed a login, until
//! they expire.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::crypto::hmac_sha256;
use super::keys::TicketKey;
use super::{DomainError, UserId};
use crate::policy::Principal;
use crate::vocabulary::{FactorKind, hex, unhex_vec};

/// What a token is: part of the payload and of the MAC's label.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    LoginTicket = 1,
    Proof = 2,
}

impl TokenKind {
    const fn label(self) -> &'static [u8] {
        match self {
            TokenKind::LoginTicket => b"twofactor/login-ticket/v1\0",
            TokenKind::Proof => b"twofactor/second-factor-proof/v1\0",
        }
    }
}

/// The encoding version, first byte of every payload.
const VERSION: u8 = 1;
/// Longest token accepted (a principal with many roles still fits a cookie).
pub(crate) const MAX_TOKEN_LEN: usize = 3_800;
/// The nonce of a ticket or proof.
pub(crate) type Nonce = [u8; 16];

/// Writes the canonical payload. A field too long to encode marks the whole token as
/// unusable ([`seal`](Self::seal) fails): nothing is ever truncated.
pub(crate) struct Writer(Vec<u8>, bool);

impl Writer {
    pub(crate) fn new(kind: TokenKind) -> Self {
        Writer(vec![VERSION, kind as u8], false)
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn count(&mut self, n: usize) {
        match u16::try_from(n) {
            Ok(n) => self.0.extend_from_slice(&n.to_be_bytes()),
            Err(_) => self.1 = true,
        }
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.count(v.len());
        self.0.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    pub(crate) fn principal(&mut self, p: &Principal) {
        self.str(p.user.as_str());
        self.count(p.roles.len());
        for role in &p.roles {
            self.str(role);
        }
        match &p.tenant {
            Some(t) => {
                self.u8(1);
                self.str(t);
            }
            None => self.u8(0),
        }
        self.u8(u8::from(p.superuser));
        self.opt_u64(p.created_at);
    }
    pub(crate) fn factor(&mut self, kind: FactorKind) {
        self.u8(factor_byte(kind));
    }

    /// Seals the payload: `hex(payload) "." hex(mac)`.
    ///
    /// # Errors
    /// [`DomainError::InvalidTicket`] when a field did not fit or the token would be longer
    /// than [`MAX_TOKEN_LEN`] (a principal with absurdly long names or many roles).
    pub(crate) fn seal(self, kind: TokenKind, key: &TicketKey) -> Result<String, DomainError> {
        if self.1 || self.0.len() * 2 + 65 > MAX_TOKEN_LEN {
            return Err(DomainError::InvalidTicket);
        }
        let mac = hmac_sha256(&key.0, &[kind.label(), &self.0]);
        let mut token = hex(&self.0);
        token.push('.');
        token.push_str(&hex(&mac));
        Ok(token)
    }
}

const fn factor_byte(kind: FactorKind) -> u8 {
    match kind {
        FactorKind::Totp => 1,
        FactorKind::RecoveryCode => 2,
        FactorKind::MailedCode => 3,
        FactorKind::TrustedDevice => 4,
        FactorKind::SecurityKey => 5,
    }
}

/// Reads a payload strictly: every read is bounds-checked, and [`finish`](Self::finish)
/// refuses trailing bytes.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DomainError> {
        if self.0.len() < n {
            return Err(DomainError::InvalidTicket);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DomainError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DomainError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn len(&mut self) -> Result<usize, DomainError> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(usize::from(u16::from_be_bytes(b)))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DomainError> {
        let n = self.len()?;
        self.take(n)
    }
    pub(crate) fn string(&mut self) -> Result<String, DomainError> {
        core::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| DomainError::InvalidTicket)
    }
    pub(crate) fn nonce(&mut self) -> Result<Nonce, DomainError> {
        let mut n = [0u8; 16];
        n.copy_from_slice(self.take(16)?);
        Ok(n)
    }
    pub(crate) fn bool(&mut self) -> Result<bool, DomainError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DomainError::InvalidTicket),
        }
    }
    pub(crate) fn opt_u64(&mut self) -> Result<Option<u64>, DomainError> {
        Ok(if self.bool()? {
            Some(self.u64()?)
        } else {
            None
        })
    }
    pub(crate) fn principal(&mut self) -> Result<Principal, DomainError> {
        let user = self.string()?;
        if user.is_empty() {
            return Err(DomainError::InvalidTicket);
        }
        let mut principal = Principal::new(user);
        let roles = self.len()?;
        for _ in 0..roles {
            principal.roles.insert(self.string()?);
        }
        if principal.roles.len() != roles {
            return Err(DomainError::InvalidTicket); // a duplicate role: not canonical
        }
        if self.bool()? {
            principal.tenant = Some(self.string()?);
        }
        principal.superuser = self.bool()?;
        principal.created_at = self.opt_u64()?;
        Ok(principal)
    }
    pub(crate) fn factor(&mut self) -> Result<FactorKind, DomainError> {
        Ok(match self.u8()? {
            1 => FactorKind::Totp,
            2 => FactorKind::RecoveryCode,
            3 => FactorKind::MailedCode,
            4 => FactorKind::TrustedDevice,
            5 => FactorKind::SecurityKey,
            _ => return Err(DomainError::InvalidTicket),
        })
    }
    pub(crate) fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidTicket)
        }
    }
}

/// A token split and decoded but not yet authenticated.
pub(crate) struct Unverified {
    payload: Vec<u8>,
    mac: Zeroizing<Vec<u8>>,
}

impl Unverified {
    /// Splits `hex(payload) "." hex(mac)` strictly (lowercase hex only, one dot, bounded).
    pub(crate) fn parse(token: &str) -> Result<Self, DomainError> {
        if token.len() > MAX_TOKEN_LEN
            || token.bytes().any(|b| b.is_ascii_uppercase())
            || token.is_empty()
        {
            return Err(DomainError::InvalidTicket);
        }
        let (payload, mac) = token.split_once('.').ok_or(DomainError::InvalidTicket)?;
        let payload = unhex_vec(payload).ok_or(DomainError::InvalidTicket)?;
        let mac = Zeroizing::new(unhex_vec(mac).ok_or(DomainError::InvalidTicket)?);
        if mac.len() != 32 || payload.len() < 2 || payload[0] != VERSION {
            return Err(DomainError::InvalidTicket);
        }
        Ok(Unverified { payload, mac })
    }

    /// A reader over the claims, for a token of `kind`, without checking the MAC: for
    /// accessors that only display claims. Every call that acts on a token uses
    /// [`verified`](Self::verified).
    pub(crate) fn claims(&self, kind: TokenKind) -> Result<Reader<'_>, DomainError> {
        if self.payload[1] != kind as u8 {
            return Err(DomainError::InvalidTicket);
        }
        Ok(Reader(&self.payload[2..]))
    }

    /// Checks the MAC under `key` (constant time), then returns the claims.
    pub(crate) fn verified(
        &self,
        kind: TokenKind,
        key: &TicketKey,
    ) -> Result<Reader<'_>, DomainError> {
        let expected = hmac_sha256(&key.0, &[kind.label(), &self.payload]);
        if !bool::from(expected.ct_eq(self.mac.as_slice())) {
            return Err(DomainError::InvalidTicket);
        }
        self.claims(kind)
    }
}

/// One ticket that completed a login, remembered until it would have expired anyway.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct UsedTicket {
    /// The ticket's nonce, hex.
    pub(crate) nonce: String,
    /// When the ticket expires; it can be forgotten then.
    pub(crate) expires_at: u64,
}

/// What the record keeps about tickets and proofs: their generation (a revocation bumps it,
/// refusing every ticket and proof issued before) and the tickets already used.
#[derive(Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct TicketLedger {
    pub(crate) generation: u64,
    pub(crate) used: Vec<UsedTicket>,
}

/// How many used tickets a record remembers; past it the generation is bumped instead (every
/// outstanding ticket is refused: fail closed).
pub(crate) const MAX_USED_TICKETS: usize = 32;

impl TicketLedger {
    /// Whether a ticket with this nonce already completed a login.
    pub(crate) fn is_used(&self, nonce: &Nonce) -> bool {
        let nonce = hex(nonce);
        self.used.iter().any(|u| u.nonce == nonce)
    }

    /// Records a used ticket, forgetting the expired ones.
    pub(crate) fn mark_used(&mut self, nonce: &Nonce, expires_at: u64, now: u64) {
        self.used.retain(|u| now < u.expires_at);
        if self.used.len() >= MAX_USED_TICKETS {
            self.revoke();
            return;
        }
        self.used.push(UsedTicket {
            nonce: hex(nonce),
            expires_at,
        });
    }

    /// Refuses every ticket and proof issued so far.
    pub(crate) fn revoke(&mut self) {
        self.generation = self.generation.saturating_add(1);
        self.used.clear();
    }
}

impl fmt::Debug for TicketLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketLedger")
            .field("generation", &self.generation)
            .field("used", &self.used.len())
            .finish()
    }
}

/// Proof that a user passed a second factor: who, which factor, when. Handed out by a
/// successful [`finish_login`](crate::TwoFactor::finish_login) ([`LoginGranted::proof`]),
/// by a confirmed enrollment ([`Enrolled::proof`](super::Enrolled::proof)) and by
/// [`verify_second_factor`](crate::TwoFactor::verify_second_factor) (step-up). Keep it in the
/// session of the user who proved the factor; sensitive calls take it:
///
/// - enrolling under a mailed-code requirement needs a proof of a mailed code;
/// - new recovery codes, replacing the authenticator and turning 2FA off need a proof of a
///   TOTP or recovery code (or take a code directly);
///
/// each no older than [`Settings::reauth_max_age`](super::Settings::reauth_max_age) (10 minutes
/// by default). A trusted-device cookie never yields a proof.
///
/// A proof is sealed like a login ticket: tamper-evident under the service's key, bound to
/// its user and refused after the user's tickets are revoked or 2FA is reset. It is a bearer
/// token for its short life: keep it server-side (or in the same protected session as the
/// login itself), never in a URL. Serialized (serde, or [`as_str`](Self::as_str) /
/// [`str::parse`]) it is one opaque string.
///
/// [`LoginGranted::proof`]: super::LoginGranted::proof
#[derive(Clone, PartialEq, Eq)]
pub struct SecondFactorProof {
    user: UserId,
    factor: FactorKind,
    verified_at: u64,
    generation: u64,
    token: String,
}

impl SecondFactorProof {
    /// Makes and seals a proof.
    pub(crate) fn issue(
        user: &UserId,
        factor: FactorKind,
        verified_at: u64,
        generation: u64,
        nonce: &Nonce,
        key: &TicketKey,
    ) -> Result<Self, DomainError> {
        let mut w = Writer::new(TokenKind::Proof);
        w.str(user.as_str());
        w.factor(factor);
        w.u64(verified_at);
        w.u64(generation);
        w.0.extend_from_slice(nonce);
        Ok(SecondFactorProof {
            user: user.clone(),
            factor,
            verified_at,
            generation,
            token: w.seal(TokenKind::Proof, key)?,
        })
    }

    fn decode(mut r: Reader<'_>, token: &str) -> Result<Self, DomainError> {
        let user = r.string()?;
        if user.is_empty() {
            return Err(DomainError::InvalidTicket);
        }
        let factor = r.factor()?;
        let verified_at = r.u64()?;
        let generation = r.u64()?;
        r.nonce()?;
        r.finish()?;
        Ok(SecondFactorProof {
            user: UserId::new(user),
            factor,
            verified_at,
            generation,
            token: token.to_owned(),
        })
    }

    /// Checks the MAC under `key`: the claims are the ones this deployment sealed.
    pub(crate) fn verify(&self, key: &TicketKey) -> Result<(), DomainError> {
        let u = Unverified::parse(&self.token).map_err(|_| DomainError::InvalidProof)?;
        let r = u
            .verified(TokenKind::Proof, key)
            .map_err(|_| DomainError::InvalidProof)?;
        let decoded = Self::decode(r, &self.token).map_err(|_| DomainError::InvalidProof)?;
        if decoded == *self {
            Ok(())
        } else {
            Err(DomainError::InvalidProof)
        }
    }

    /// The user who proved the factor (a claim until a call that takes the proof checks it).
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The factor that was verified.
    #[must_use]
    pub const fn factor(&self) -> FactorKind {
        self.factor
    }

    /// When it was verified (Unix seconds).
    #[must_use]
    pub const fn verified_at(&self) -> u64 {
        self.verified_at
    }

    /// The ticket generation of the user's record when it was issued.
    pub(crate) const fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether it is younger than `max_age` seconds at `now` (a host's own "second factor in
    /// the last N minutes" check before a sensitive action of its own; the library's calls
    /// check their own maximum age and the MAC).
    #[must_use]
    pub const fn is_fresh(&self, now: u64, max_age: u64) -> bool {
        super::Reauthenticated::at(self.verified_at).is_fresh(now, max_age)
    }

    /// The sealed token: keep this string in the session.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.token
    }
}

impl core::str::FromStr for SecondFactorProof {
    type Err = DomainError;
    /// Parses a token written by [`as_str`](SecondFactorProof::as_str). Only the form is
    /// checked here; a call that takes the proof checks its MAC, user, generation and age.
    fn from_str(s: &str) -> Result<Self, DomainError> {
        let u = Unverified::parse(s).map_err(|_| DomainError::InvalidProof)?;
        let r = u
            .claims(TokenKind::Proof)
            .map_err(|_| DomainError::InvalidProof)?;
        Self::decode(r, s).map_err(|_| DomainError::InvalidProof)
    }
}

impl fmt::Debug for SecondFactorProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondFactorProof")
            .field("user", &self.user)
            .field("factor", &self.factor)
            .field("verified_at", &self.verified_at)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SecondFactorProof {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.token)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for SecondFactorProof {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A second factor for a sensitive call: a fresh [`SecondFactorProof`] from the session, or
/// a code typed now. `&proof` and a [`Factor`](super::Factor) both convert into it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Verification<'a> {
    /// A proof from earlier in this session (at most
    /// [`Settings::reauth_max_age`](super::Settings::reauth_max_age) old).
    Proof(&'a SecondFactorProof),
    /// A TOTP or recovery code, checked now (counted by the throttle).
    Code(super::Factor<'a>),
}

impl<'a> From<&'a SecondFactorProof> for Verification<'a> {
    fn from(p: &'a SecondFactorProof) -> Self {
        Verification::Proof(p)
    }
}

impl<'a> From<super::Factor<'a>> for Verification<'a> {
    fn from(f: super::Factor<'a>) -> Self {
        Verification::Code(f)
    }
}

/// A code from the authenticator app, typed now.
impl<'a> From<&'a str> for Verification<'a> {
    fn from(code: &'a str) -> Self {
        Verification::Code(super::Factor::Totp(code))
    }
}

/// A code from the authenticator app, typed now.
impl<'a> From<&'a String> for Verification<'a> {
    fn from(code: &'a String) -> Self {
        Verification::Code(super::Factor::Totp(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> TicketKey {
        TicketKey(Zeroizing::new([b; 32]))
    }

    #[test]
    fn proofs_round_trip_and_refuse_every_edit() {
        let alice = UserId::new("alice");
        let p =
            SecondFactorProof::issue(&alice, FactorKind::Totp, 100, 3, &[9; 16], &key(1)).unwrap();
        p.verify(&key(1)).unwrap();
        assert!(matches!(p.verify(&key(2)), Err(DomainError::InvalidProof)));
        let parsed: SecondFactorProof = p.as_str().parse().unwrap();
        assert_eq!(parsed, p);
        parsed.verify(&key(1)).unwrap();
        // Flip every hex digit of the token in turn: each edit is refused (parse or MAC).
        let token = p.as_str().to_owned();
        for i in 0..token.len() {
            let mut edited = token.clone().into_bytes();
            edited[i] = match edited[i] {
                b'.' => continue,
                b'0' => b'1',
                _ => b'0',
            };
            let edited = String::from_utf8(edited).unwrap();
            let ok = edited
                .parse::<SecondFactorProof>()
                .is_ok_and(|p| p.verify(&key(1)).is_ok());
            assert!(!ok, "edit at {i} accepted");
        }
        assert!("".parse::<SecondFactorProof>().is_err());
        assert!(token.to_uppercase().parse::<SecondFactorProof>().is_err());
        assert!(format!("{token}00").parse::<SecondFactorProof>().is_err());
    }

    #[test]
    fn the_ledger_forgets_expired_tickets_and_fails_closed_when_full() {
        let mut l = TicketLedger::default();
        l.mark_used(&[1; 16], 100, 10);
        assert!(l.is_used(&[1; 16]) && !l.is_used(&[2; 16]));
        l.mark_used(&[2; 16], 200, 150); // the first one expired: forgotten
        assert!(!l.is_used(&[1; 16]) && l.is_used(&[2; 16]));
        for i in 0..MAX_USED_TICKETS as u8 {
            l.mark_used(&[i + 10; 16], 1_000, 160);
        }
        assert_eq!(
            l.generation, 1,
            "a full ledger revokes instead of forgetting"
        );
        assert!(l.used.is_empty());
    }
}
