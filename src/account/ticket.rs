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
//! and an administrator's reset) and the issue second of the last ticket that completed a
//! login, with the nonces used in that second (every ticket issued before it is refused).

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::claims::{AssuranceClaims, AuthMethod, CompletedMethod};
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
            TokenKind::Proof => b"twofactor/second-factor-proof/v2\0",
        }
    }

    /// The encoding version of this kind, first byte of its payload: login tickets are at 1;
    /// proofs are at 2 since they carry assurance claims.
    const fn version(self) -> u8 {
        match self {
            TokenKind::LoginTicket => 1,
            TokenKind::Proof => PROOF_VERSION,
        }
    }
}

/// The encoding version of second-factor proofs (2: with assurance claims). A proof of
/// version 1 (sealed before the claims existed) is refused with
/// [`DomainError::OutdatedProof`]: proofs live minutes, so the user is asked for the second
/// factor again rather than given claims nobody sealed.
const PROOF_VERSION: u8 = 2;
/// Longest token accepted (a principal with many roles still fits a cookie).
pub(crate) const MAX_TOKEN_LEN: usize = 3_800;
/// The nonce of a ticket or proof.
pub(crate) type Nonce = [u8; 16];

/// Writes the canonical payload. A field too long to encode marks the whole token as
/// unusable ([`seal`](Self::seal) fails): nothing is ever truncated.
pub(crate) struct Writer(Vec<u8>, bool);

impl Writer {
    pub(crate) fn new(kind: TokenKind) -> Self {
        Writer(vec![kind.version(), kind as u8], false)
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
    /// Assurance claims: their count, then each method's byte, completion time and
    /// authenticator (absent, or a string).
    pub(crate) fn claims(&mut self, claims: &AssuranceClaims) {
        let methods = claims.methods();
        self.u8(u8::try_from(methods.len()).unwrap_or(u8::MAX));
        for m in methods {
            self.u8(m.method.byte());
            self.u64(m.completed_at);
            match &m.authenticator {
                Some(id) => {
                    self.u8(1);
                    self.str(id);
                }
                None => self.u8(0),
            }
        }
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
        let mac = key.mac(&[kind.label(), &self.0]);
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
    /// Assurance claims in canonical form (see [`Writer::claims`]).
    pub(crate) fn claims(&mut self) -> Result<AssuranceClaims, DomainError> {
        let n = usize::from(self.u8()?);
        if n > AssuranceClaims::MAX_METHODS {
            return Err(DomainError::InvalidTicket);
        }
        let mut methods = Vec::with_capacity(n);
        for _ in 0..n {
            let method = AuthMethod::from_byte(self.u8()?).ok_or(DomainError::InvalidTicket)?;
            let completed_at = self.u64()?;
            let mut m = CompletedMethod::new(method, completed_at);
            if self.bool()? {
                m = m.authenticator(self.string()?);
            }
            methods.push(m);
        }
        AssuranceClaims::from_canonical(methods).ok_or(DomainError::InvalidTicket)
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
        if mac.len() != 32 || payload.len() < 2 {
            return Err(DomainError::InvalidTicket);
        }
        Ok(Unverified { payload, mac })
    }

    /// A reader over the claims, for a token of `kind`, without checking the MAC: for
    /// accessors that only display claims. Every call that acts on a token uses
    /// [`verified`](Self::verified).
    ///
    /// # Errors
    /// [`DomainError::OutdatedProof`] for a proof of encoding version 1 (before assurance
    /// claims), [`DomainError::InvalidTicket`] for another kind or version.
    pub(crate) fn claims(&self, kind: TokenKind) -> Result<Reader<'_>, DomainError> {
        if self.payload[1] != kind as u8 {
            return Err(DomainError::InvalidTicket);
        }
        if self.payload[0] != kind.version() {
            return Err(if kind == TokenKind::Proof && self.payload[0] == 1 {
                DomainError::OutdatedProof
            } else {
                DomainError::InvalidTicket
            });
        }
        Ok(Reader(&self.payload[2..]))
    }

    /// Checks the MAC under `key` (constant time), then returns the claims.
    pub(crate) fn verified(
        &self,
        kind: TokenKind,
        key: &TicketKey,
    ) -> Result<Reader<'_>, DomainError> {
        // Kind and version first: an outdated proof says so (its claims are not read).
        let claims = self.claims(kind)?;
        let expected = key.mac(&[kind.label(), &self.payload]);
        if !bool::from(expected.ct_eq(self.mac.as_slice())) {
            return Err(DomainError::InvalidTicket);
        }
        Ok(claims)
    }
}

/// One ticket that completed a login, as records of formats 3 to 6 listed them (remembered
/// until it would have expired anyway). Format 7 lists no more of them
/// ([`TicketLedger::through`]); those loaded from an older row stay refused until they expire.
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
/// refusing every ticket and proof issued before) and which tickets can no longer complete a
/// login.
///
/// **Single use, in constant space.** A ticket is issued when the password was checked
/// ([`PendingLogin::password_checked_at`]). When one completes a login, the record keeps that
/// second ([`through`](Self::through)) and the nonces of the tickets issued in it that did
/// ([`at_through`](Self::at_through)): from then on every ticket of the user issued before
/// that second is refused, and those listed. A ticket issued later (or in the same second and
/// not used) still works. So a completed login also ends the user's other logins that began
/// before it and still wait for their second step (that browser starts again), and the record
/// no longer grows with every login: a list of every used ticket until its deadline made the
/// record of a user who logs in every 30 s twice its size.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct TicketLedger {
    pub(crate) generation: u64,
    /// Used tickets listed by a row of format 3 to 6, until their deadlines pass (never added
    /// to).
    pub(crate) used: Vec<UsedTicket>,
    /// The issue second of the last ticket that completed a login: every ticket issued before
    /// it is refused (format 7).
    pub(crate) through: u64,
    /// The nonces (hex) of the tickets issued in the second `through` that completed a login.
    pub(crate) at_through: Vec<String>,
}

/// How many tickets issued in one second may complete a login before the ledger revokes
/// instead (every outstanding ticket is refused: fail closed).
pub(crate) const MAX_USED_IN_ONE_SECOND: usize = 32;

impl TicketLedger {
    /// Whether the ticket with this nonce, issued at `issued_at`, can no longer complete a
    /// login.
    pub(crate) fn is_used(&self, nonce: &Nonce, issued_at: u64) -> bool {
        if issued_at < self.through {
            return true;
        }
        let nonce = hex(nonce);
        (issued_at == self.through && self.at_through.contains(&nonce))
            || self.used.iter().any(|u| u.nonce == nonce)
    }

    /// Records that the ticket with this nonce, issued at `issued_at`, completed a login at
    /// `now` (and with it, every ticket issued before it), forgetting the expired listed ones.
    pub(crate) fn mark_used(&mut self, nonce: &Nonce, issued_at: u64, now: u64) {
        self.used.retain(|u| now < u.expires_at);
        if issued_at > self.through {
            self.through = issued_at;
            self.at_through.clear();
        } else if issued_at < self.through {
            return; // refused by `is_used` already
        }
        if self.at_through.len() >= MAX_USED_IN_ONE_SECOND {
            self.revoke();
            return;
        }
        self.at_through.push(hex(nonce));
    }

    /// Refuses every ticket and proof issued so far.
    pub(crate) fn revoke(&mut self) {
        self.generation = self.generation.saturating_add(1);
        self.used.clear();
        self.at_through.clear();
    }
}

/// The stored form of the ledger: `{generation, used}` in formats 3 to 6, `{generation,
/// used, through, at_through}` from format 7 (each with exactly its fields).
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum TicketLedgerWire {
    /// Format 7 on.
    Through(ThroughWire),
    /// Formats 3 to 6.
    Listed(ListedWire),
}

/// The ledger of format 7 on.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThroughWire {
    generation: u64,
    used: Vec<UsedTicket>,
    through: u64,
    at_through: Vec<String>,
}

/// The ledger of formats 3 to 6.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListedWire {
    generation: u64,
    used: Vec<UsedTicket>,
}

/// The ledger as a format writes it, borrowed from the record (`at_through` left out before
/// format 7, with `through`).
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
pub(crate) struct TicketLedgerOut<'a> {
    generation: u64,
    used: &'a [UsedTicket],
    #[serde(skip_serializing_if = "Option::is_none")]
    through: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_through: Option<&'a [String]>,
}

#[cfg(feature = "serde")]
impl TicketLedger {
    /// The ledger as a format before 7 (`listed`) or from 7 writes it.
    pub(crate) fn wire(&self, listed: bool) -> TicketLedgerOut<'_> {
        TicketLedgerOut {
            generation: self.generation,
            used: &self.used,
            through: (!listed).then_some(self.through),
            at_through: (!listed).then_some(self.at_through.as_slice()),
        }
    }

    /// The ledger a row stored, which must be in the shape of its format.
    pub(crate) fn from_wire(w: TicketLedgerWire, listed: bool) -> Result<Self, &'static str> {
        match (w, listed) {
            (TicketLedgerWire::Listed(ListedWire { generation, used }), true) => Ok(TicketLedger {
                generation,
                used,
                through: 0,
                at_through: Vec::new(),
            }),
            (
                TicketLedgerWire::Through(ThroughWire {
                    generation,
                    used,
                    through,
                    at_through,
                }),
                false,
            ) => {
                let hex_nonce = |n: &String| n.len() == 32 && unhex_vec(n).is_some();
                if at_through.len() > MAX_USED_IN_ONE_SECOND || !at_through.iter().all(hex_nonce) {
                    return Err("a ticket ledger this crate did not write");
                }
                Ok(TicketLedger {
                    generation,
                    used,
                    through,
                    at_through,
                })
            }
            (TicketLedgerWire::Listed(_), false) => {
                Err("a ticket ledger without `through` in a record of format 7 or later")
            }
            (TicketLedgerWire::Through(_), true) => {
                Err("a ticket ledger with `through` in a record of a format before 7")
            }
        }
    }
}

impl fmt::Debug for TicketLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketLedger")
            .field("generation", &self.generation)
            .field("used", &self.used.len())
            .field("through", &self.through)
            .field("at_through", &self.at_through.len())
            .finish()
    }
}

/// Proof that a user passed a second factor: who, which factor, when, and how the user was
/// authenticated ([`claims`](Self::claims)). Handed out by a
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
/// A proof is sealed like a login ticket: tamper-evident under the service's key (its claims
/// included), bound to its user and refused after the user's tickets are revoked or 2FA is
/// reset. Proofs sealed before the claims existed (encoding version 1) are refused with
/// [`DomainError::OutdatedProof`] when parsed: ask for the second factor again. It is a bearer
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
    claims: AssuranceClaims,
    token: String,
}

impl SecondFactorProof {
    /// Makes and seals a proof of `factor`, verified at `verified_at`, with the `claims` of
    /// the authentication it completes (which must include `factor` at `verified_at`).
    ///
    /// # Errors
    /// [`DomainError::InvalidProof`] for a proof that must never exist: of a trusted device,
    /// with a remembered device among its claims, or with claims that leave out `factor`.
    /// [`DomainError::InvalidTicket`] when the claims do not fit the token.
    pub(crate) fn issue(
        user: &UserId,
        factor: FactorKind,
        verified_at: u64,
        generation: u64,
        claims: AssuranceClaims,
        nonce: &Nonce,
        key: &TicketKey,
    ) -> Result<Self, DomainError> {
        Self::check_claims(factor, verified_at, &claims).map_err(|_| DomainError::InvalidProof)?;
        let mut w = Writer::new(TokenKind::Proof);
        w.str(user.as_str());
        w.factor(factor);
        w.u64(verified_at);
        w.u64(generation);
        w.claims(&claims);
        w.0.extend_from_slice(nonce);
        Ok(SecondFactorProof {
            user: user.clone(),
            factor,
            verified_at,
            generation,
            claims,
            token: w.seal(TokenKind::Proof, key)?,
        })
    }

    /// What every proof is: of a second factor (never a trusted device: a device cookie
    /// yields no proof), whose claims include that factor at its time and no remembered
    /// device.
    fn check_claims(
        factor: FactorKind,
        verified_at: u64,
        claims: &AssuranceClaims,
    ) -> Result<(), DomainError> {
        let of_factor = claims
            .methods()
            .iter()
            .any(|m| m.method.factor() == Some(factor) && m.completed_at == verified_at);
        let device = claims
            .methods()
            .iter()
            .any(|m| m.method == AuthMethod::RememberedDevice);
        if factor == FactorKind::TrustedDevice || device || !of_factor {
            return Err(DomainError::InvalidTicket);
        }
        Ok(())
    }

    fn decode(mut r: Reader<'_>, token: &str) -> Result<Self, DomainError> {
        let user = r.string()?;
        if user.is_empty() {
            return Err(DomainError::InvalidTicket);
        }
        let factor = r.factor()?;
        let verified_at = r.u64()?;
        let generation = r.u64()?;
        let claims = r.claims()?;
        r.nonce()?;
        r.finish()?;
        Self::check_claims(factor, verified_at, &claims)?;
        Ok(SecondFactorProof {
            user: UserId::new(user),
            factor,
            verified_at,
            generation,
            claims,
            token: token.to_owned(),
        })
    }

    /// `InvalidProof` for every failure but an outdated encoding.
    fn proof_error(e: DomainError) -> DomainError {
        match e {
            DomainError::OutdatedProof => DomainError::OutdatedProof,
            _ => DomainError::InvalidProof,
        }
    }

    /// Checks the MAC under `key`: the claims are the ones this deployment sealed.
    pub(crate) fn verify(&self, key: &TicketKey) -> Result<(), DomainError> {
        let u = Unverified::parse(&self.token).map_err(Self::proof_error)?;
        let r = u
            .verified(TokenKind::Proof, key)
            .map_err(Self::proof_error)?;
        let decoded = Self::decode(r, &self.token).map_err(Self::proof_error)?;
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

    /// How the user was authenticated when the proof was issued (sealed with it): at login,
    /// the password and the factor (`pwd` and `otp`, AAL2, for a TOTP code); at step-up, the
    /// factor alone ([`merge`](AssuranceClaims::merge) it into the session's claims). Like
    /// every claim of a parsed proof, trust them once a call that checks the proof accepted it
    /// ([`TwoFactor::check_proof`](crate::TwoFactor::check_proof) returns them).
    #[must_use]
    pub const fn claims(&self) -> &AssuranceClaims {
        &self.claims
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
    ///
    /// # Errors
    /// [`DomainError::OutdatedProof`] for a proof sealed by a version before assurance claims
    /// (ask for the second factor again), [`DomainError::InvalidProof`] for anything else
    /// that is not a proof.
    fn from_str(s: &str) -> Result<Self, DomainError> {
        let u = Unverified::parse(s).map_err(Self::proof_error)?;
        let r = u.claims(TokenKind::Proof).map_err(Self::proof_error)?;
        Self::decode(r, s).map_err(Self::proof_error)
    }
}

impl fmt::Debug for SecondFactorProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondFactorProof")
            .field("user", &self.user)
            .field("factor", &self.factor)
            .field("verified_at", &self.verified_at)
            .field("claims", &self.claims)
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
        TicketKey::new(Zeroizing::new([b; 32]))
    }

    fn login_claims(password_at: u64, method: AuthMethod, at: u64) -> AssuranceClaims {
        AssuranceClaims::new(CompletedMethod::new(AuthMethod::Password, password_at))
            .with(CompletedMethod::new(method, at))
    }

    fn proof(factor: FactorKind, claims: AssuranceClaims, k: &TicketKey) -> SecondFactorProof {
        SecondFactorProof::issue(&UserId::new("alice"), factor, 100, 3, claims, &[9; 16], k)
            .unwrap()
    }

    /// A proof's payload written by hand: alice's, of `factor` at 100, generation 3, with
    /// whatever `claims` writes, and the nonce.
    fn by_hand(factor: FactorKind, claims: impl FnOnce(&mut Writer)) -> Writer {
        let mut w = Writer::new(TokenKind::Proof);
        w.str("alice");
        w.factor(factor);
        w.u64(100);
        w.u64(3);
        claims(&mut w);
        w.0.extend_from_slice(&[9; 16]);
        w
    }

    #[test]
    fn proofs_round_trip_and_refuse_every_edit() {
        let p = proof(
            FactorKind::Totp,
            login_claims(40, AuthMethod::Otp, 100),
            &key(1),
        );
        assert_eq!(p.claims().aal(), crate::account::Aal::Aal2);
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

    /// The claims are sealed: a proof whose claims were edited (a mailed-code proof made to
    /// claim a TOTP code, an earlier password, a later second factor) with the original MAC,
    /// or re-sealed under another key, is refused; re-encoding the same claims is canonical.
    #[test]
    fn edited_claims_are_refused() {
        let k = key(1);
        let mailed = proof(
            FactorKind::MailedCode,
            login_claims(40, AuthMethod::MailedCode, 100),
            &k,
        );
        mailed.verify(&k).unwrap();
        let (payload, mac) = mailed.as_str().split_once('.').unwrap();
        let reencode = |claims: &AssuranceClaims| {
            hex(&by_hand(FactorKind::MailedCode, |w| w.claims(claims)).0)
        };
        assert_eq!(
            reencode(mailed.claims()),
            payload,
            "the encoding is canonical"
        );
        let edits = [
            login_claims(40, AuthMethod::MailedCode, 100)
                .with(CompletedMethod::new(AuthMethod::Otp, 100)),
            login_claims(10, AuthMethod::MailedCode, 100),
            login_claims(40, AuthMethod::MailedCode, 100)
                .with(CompletedMethod::new(AuthMethod::MailedCode, 100).authenticator("x")),
        ];
        for claims in &edits {
            let forged = format!("{}.{mac}", reencode(claims));
            let parsed: SecondFactorProof = forged.parse().expect("well-formed");
            assert_eq!(parsed.claims(), claims);
            assert_eq!(parsed.verify(&k), Err(DomainError::InvalidProof));
            // Sealed under another key: still refused under ours.
            let other = SecondFactorProof::issue(
                &UserId::new("alice"),
                FactorKind::MailedCode,
                100,
                3,
                claims.clone(),
                &[9; 16],
                &key(2),
            )
            .unwrap();
            assert_eq!(other.verify(&k), Err(DomainError::InvalidProof));
        }
        // Claims out of canonical order, duplicated, or too many: not even parsed.
        let w = by_hand(FactorKind::Totp, |w| {
            w.u8(2);
            for (method, at) in [(AuthMethod::Otp, 100u64), (AuthMethod::Password, 40)] {
                w.u8(method.byte());
                w.u64(at);
                w.u8(0);
            }
        });
        let token = w.seal(TokenKind::Proof, &k).unwrap();
        assert_eq!(
            token.parse::<SecondFactorProof>(),
            Err(DomainError::InvalidProof)
        );
    }

    /// No proof of a trusted device can exist: not issued, not parsed, not verified, and no
    /// proof claims a remembered device.
    #[test]
    fn a_device_never_yields_a_proof() {
        let k = key(1);
        let device_claims = login_claims(40, AuthMethod::RememberedDevice, 100);
        let issue = |factor, claims: AssuranceClaims| {
            SecondFactorProof::issue(&UserId::new("alice"), factor, 100, 3, claims, &[9; 16], &k)
        };
        assert_eq!(
            issue(FactorKind::TrustedDevice, device_claims.clone()).unwrap_err(),
            DomainError::InvalidProof
        );
        let with_device = login_claims(40, AuthMethod::Otp, 100)
            .with(CompletedMethod::new(AuthMethod::RememberedDevice, 90));
        assert_eq!(
            issue(FactorKind::Totp, with_device.clone()).unwrap_err(),
            DomainError::InvalidProof
        );
        // Claims that leave out the factor proved.
        assert_eq!(
            issue(FactorKind::Totp, login_claims(40, AuthMethod::Otp, 99)).unwrap_err(),
            DomainError::InvalidProof
        );
        // Sealed by hand under the right key: still refused when read.
        for (factor, claims) in [
            (FactorKind::TrustedDevice, device_claims),
            (FactorKind::Totp, with_device),
        ] {
            let token = by_hand(factor, |w| w.claims(&claims))
                .seal(TokenKind::Proof, &k)
                .unwrap();
            assert_eq!(
                token.parse::<SecondFactorProof>(),
                Err(DomainError::InvalidProof)
            );
        }
    }

    /// A proof sealed before the claims existed (version 1) is refused with its own error,
    /// whether or not its MAC is right; a login ticket is not a proof of any version.
    #[test]
    fn outdated_proofs_are_refused_with_a_typed_error() {
        let k = key(1);
        let mut payload = vec![1u8, TokenKind::Proof as u8];
        let mut w = Writer(Vec::new(), false);
        w.str("alice");
        w.factor(FactorKind::Totp);
        w.u64(100);
        w.u64(0);
        payload.extend_from_slice(&w.0);
        payload.extend_from_slice(&[9; 16]);
        let mac = k.mac(&[b"twofactor/second-factor-proof/v1\0", &payload]);
        let v1 = format!("{}.{}", hex(&payload), hex(&mac));
        assert_eq!(
            v1.parse::<SecondFactorProof>(),
            Err(DomainError::OutdatedProof)
        );
        let u = Unverified::parse(&v1).unwrap();
        assert!(matches!(
            u.verified(TokenKind::Proof, &k),
            Err(DomainError::OutdatedProof)
        ));
        // Version 3 (from the future) and version 0 are simply not proofs.
        for v in [0u8, 3] {
            payload[0] = v;
            let token = format!("{}.{}", hex(&payload), hex(&mac));
            assert_eq!(
                token.parse::<SecondFactorProof>(),
                Err(DomainError::InvalidProof)
            );
        }
        // Login tickets keep version 1.
        assert_eq!(Writer::new(TokenKind::LoginTicket).0[0], 1);
        assert_eq!(Writer::new(TokenKind::Proof).0[0], 2);
    }

    #[test]
    fn a_used_ticket_refuses_itself_and_every_earlier_one_in_constant_space() {
        let mut l = TicketLedger::default();
        l.mark_used(&[1; 16], 100, 110);
        // That ticket, and one issued before it.
        assert!(l.is_used(&[1; 16], 100) && l.is_used(&[2; 16], 99));
        // One issued in the same second and not used, or later, still works.
        assert!(!l.is_used(&[3; 16], 100) && !l.is_used(&[3; 16], 101));
        l.mark_used(&[3; 16], 100, 111);
        assert!(l.is_used(&[3; 16], 100) && l.at_through.len() == 2);
        // A thousand logins later, the ledger holds one second and one nonce.
        for i in 0..1_000u64 {
            l.mark_used(&[4; 16], 130 + i * 30, 140 + i * 30);
        }
        assert_eq!((l.through, l.at_through.len()), (130 + 999 * 30, 1));
        assert!(l.used.is_empty() && l.generation == 0);
        // Too many in one second: fail closed (revoke).
        for i in 0..=MAX_USED_IN_ONE_SECOND as u8 {
            l.mark_used(&[i; 16], 100_000, 100_001);
        }
        assert_eq!(l.generation, 1, "a full second revokes");
        // Rows of formats 3 to 6 listed used tickets: refused until they expire.
        let mut old = TicketLedger {
            used: vec![UsedTicket {
                nonce: hex(&[9; 16]),
                expires_at: 500,
            }],
            ..TicketLedger::default()
        };
        assert!(old.is_used(&[9; 16], 10) && !old.is_used(&[8; 16], 10));
        old.mark_used(&[8; 16], 20, 460);
        assert!(old.is_used(&[9; 16], 30), "still listed until 500");
        old.mark_used(&[7; 16], 40, 510);
        assert!(old.used.is_empty());
    }
}
