//! Mailed login codes (Odoo's "2FA by mail"): for users who must pass a second factor but have
//! no authenticator.
//!
//! A code is 6 random digits from the CSPRNG (not TOTP), valid one hour, stored only as a
//! digest (HMAC-SHA-256 under the server-side [`CodeKey`](super::CodeKey) when the deployment
//! has one; salted SHA-256 otherwise, which a copy of the table cracks in well under a second:
//! configure a key), compared in constant time and accepted once. At most 5 are sent per user per
//! hour; wrong guesses count against the code-check throttle like any other code.
//!
//! # Delivery
//!
//! A code is stored *before* it is handed to the mailer, as the record's outgoing code
//! ([`Delivery::Sending`]), and the mailer's answer is recorded by a second compare-and-swap:
//! [`TwoFactorRecord::mailed_code_sent`] makes it the mailed code (replacing the one mailed
//! before), [`TwoFactorRecord::mailed_code_not_sent`] marks it [`Delivery::NotSent`] and takes
//! it off the send limit. Until then the code delivered before keeps working: a send that
//! fails never takes away a code the user has. Every interleaving:
//!
//! - **The mailer fails**: the outgoing code is marked not sent and is never accepted; the
//!   login stays open, so a resend with the same ticket mails a fresh code; a code delivered
//!   earlier still works. The send no longer counts against `mail_sends_per_window`; it
//!   still counts against `mail_send_attempts_per_window`, which bounds the sends that fail.
//! - **The process dies between the mailer and the second save** (or that save fails): the
//!   code stays [`Delivery::Sending`]: it may have reached the user, so it is accepted (with
//!   the code delivered before, until either is used or expires), and it stays counted as
//!   delivered. The next send replaces it.
//! - **Two sends race** (two resends, a resend and a new login): each first save is a
//!   compare-and-swap, so both are counted against both limits; the send that saved last is
//!   the outgoing code, and the answer for the other one finds nothing to mark (a failure is
//!   still taken off the send limit). If the later one is delivered, its code is the one that
//!   works; if it fails, the code delivered before both still works.
//! - **The login completes, or the record is reset, before the answer**: the answer finds
//!   nothing to mark.

use rand::TryCryptoRng;
use subtle::Choice;

use crate::audit::AuditKind;
use crate::mail::{Notice, SecretText};

use super::crypto::{CodeHash, CodeKeys, Digest, Salt, random_below};
use super::login::{LoginChallenge, LoginContext};
use super::{Checked, DomainError, FailureReason, Refusal, Settings, Transition, TwoFactorRecord};

const DIGEST_LABEL: &str = "twofactor mailed code v1";

/// The stored form of a mailed code. Decoded through [`MailedCodeWire`], which knows the
/// record's format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub(crate) struct MailedCode {
    hash: CodeHash,
    salt: Salt,
    digest: Digest,
    pub(crate) issued_at: u64,
    /// Valid while `now < expires_at`.
    pub(crate) expires_at: u64,
}

/// A stored mailed code as read: format 1 (0.1.0) wrote no `hash` (salted SHA-256); format 2
/// always writes it. Anything else is refused.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MailedCodeWire {
    #[serde(default, deserialize_with = "crate::account::record::present")]
    hash: Option<CodeHash>,
    salt: Salt,
    digest: Digest,
    issued_at: u64,
    expires_at: u64,
}

#[cfg(feature = "serde")]
impl MailedCodeWire {
    /// The code, if its fields are exactly those of its record's format (`legacy`: format 1).
    pub(crate) fn into_code(self, legacy: bool) -> Result<MailedCode, &'static str> {
        let hash = match (legacy, self.hash) {
            (true, None) => CodeHash::default(),
            (false, Some(hash)) => hash,
            (true, Some(_)) => return Err("mailed: `hash` is not in format 1"),
            (false, None) => return Err("mailed: `hash` is required"),
        };
        Ok(MailedCode {
            hash,
            salt: self.salt,
            digest: self.digest,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        })
    }
}

/// Where a stored login code is on its way to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub(crate) enum Delivery {
    /// Stored and handed to the mailer, the answer not recorded: it may have reached the
    /// user, so it is accepted.
    Sending,
    /// The mailer failed: it never reached the user, and is never accepted.
    NotSent,
}

/// A code stored before the mailer is called, until the mailer's answer makes it the
/// record's mailed code (delivered) or marks it not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub(crate) struct OutgoingCode {
    pub(crate) code: MailedCode,
    pub(crate) delivery: Delivery,
}

/// A stored outgoing code as read (format 4 and later: the code always has its `hash`).
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutgoingCodeWire {
    code: MailedCodeWire,
    delivery: Delivery,
}

#[cfg(feature = "serde")]
impl OutgoingCodeWire {
    pub(crate) fn into_outgoing(self) -> Result<OutgoingCode, &'static str> {
        Ok(OutgoingCode {
            code: self.code.into_code(false)?,
            delivery: self.delivery,
        })
    }
}

/// One send of a login code: which stored code a mailer's answer is about.
///
/// A transition that mails a login code ([`TwoFactorRecord::start_login`] under a
/// mailed-code policy, [`TwoFactorRecord::resend_mailed_code`]) stores the code first; take
/// this handle from the record it returns ([`TwoFactorRecord::code_send`]), save that record,
/// send the notice, then record the answer with [`TwoFactorRecord::mailed_code_sent`] or
/// [`TwoFactorRecord::mailed_code_not_sent`] (load, transition, compare-and-swap, as for any
/// transition). The [service](crate::service) does all of this. Opaque, and no secret: it
/// names the code by its random salt and issue time.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeSend {
    salt: Salt,
    issued_at: u64,
}

impl core::fmt::Debug for CodeSend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CodeSend")
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

impl CodeSend {
    fn names(&self, code: &MailedCode) -> bool {
        self.issued_at == code.issued_at && self.salt == code.salt
    }
}

/// What sending a code did.
pub(crate) enum Sent {
    /// A new code, to mail.
    New { expires_at: u64, notice: Notice },
    /// The send limit is reached; no code was generated.
    Throttled { retry_at: u64 },
}

impl MailedCode {
    /// Fails with [`DomainError::UnknownCodeKey`] when the code was hashed under a key `keys`
    /// does not hold.
    pub(crate) fn ensure_key(&self, keys: &CodeKeys) -> Result<(), DomainError> {
        self.hash.ensure_key(keys)
    }

    /// Whether `digits` is this code, compared in constant time (expiry not looked at).
    pub(crate) fn matches(&self, digits: &str, keys: &CodeKeys) -> Result<Choice, DomainError> {
        let candidate = self
            .hash
            .digest(keys, DIGEST_LABEL, &self.salt.0, digits.as_bytes())?;
        Ok(self.digest.ct_eq(&candidate))
    }
}

impl TwoFactorRecord {
    /// The outgoing code while it may have reached the user ([`Delivery::Sending`]).
    pub(crate) fn sending_code(&self) -> Option<&MailedCode> {
        self.outgoing
            .as_ref()
            .filter(|o| o.delivery == Delivery::Sending)
            .map(|o| &o.code)
    }

    /// The codes a user may type: the one delivered, and the outgoing one while it may have
    /// reached them. At most two.
    pub(crate) fn acceptable_codes(&self) -> impl Iterator<Item = &MailedCode> {
        self.mailed.iter().chain(self.sending_code())
    }

    /// Whether the last code could not be sent (and none was tried since).
    pub(crate) fn outgoing_not_sent(&self) -> bool {
        self.outgoing
            .as_ref()
            .is_some_and(|o| o.delivery == Delivery::NotSent)
    }

    /// Whether a mailed-code login has anything stored: a code delivered, on its way, or one
    /// that could not be sent (the login then waits for a resend).
    pub(crate) fn has_mailed_code(&self) -> bool {
        self.mailed.is_some() || self.outgoing.is_some()
    }

    /// The latest expiry of a code the user may type, if one is still valid at `now`.
    pub(crate) fn live_code_expiry(&self, now: u64) -> Option<u64> {
        self.acceptable_codes()
            .map(|c| c.expires_at)
            .filter(|&at| now < at)
            .max()
    }

    /// Drops every stored mailed code (delivered, outgoing or not sent).
    pub(crate) fn clear_mailed_codes(&mut self) {
        self.mailed = None;
        self.outgoing = None;
    }

    /// The login code waiting for its mailer's answer, if one is: see [`CodeSend`].
    ///
    /// ```
    /// use twofactor::account::TwoFactorRecord;
    /// assert!(TwoFactorRecord::default().code_send().is_none());
    /// ```
    #[must_use]
    pub fn code_send(&self) -> Option<CodeSend> {
        self.sending_code().map(|code| CodeSend {
            salt: code.salt,
            issued_at: code.issued_at,
        })
    }

    /// The mailer delivered the code of `send`: it becomes the mailed code, and the code
    /// mailed before stops working. Unchanged (nothing to save) when `send` is no longer the
    /// outgoing code: a later send replaced it, the login completed, the record was reset.
    pub fn mailed_code_sent(&self, send: &CodeSend) -> Transition<()> {
        let mut next = self.clone();
        match next.outgoing.take() {
            Some(o) if o.delivery == Delivery::Sending && send.names(&o.code) => {
                next.mailed = Some(o.code);
                Transition::new(next, true, ())
            }
            _ => Transition::new(self.clone(), false, ()),
        }
    }

    /// The mailer failed to send the code of `send`: the send no longer counts against the
    /// mail-send limit ([`Settings::mail_sends_per_window`]; it still counts against
    /// [`Settings::mail_send_attempts_per_window`]), and the code, if still the outgoing one,
    /// is marked not sent: never accepted, while its login stays open for a resend. A code
    /// delivered earlier keeps working. Unchanged when there is nothing to take back.
    pub fn mailed_code_not_sent(&self, send: &CodeSend) -> Transition<()> {
        let mut next = self.clone();
        let refunded = next.mail_sends.refund(send.issued_at);
        let marked = match next.outgoing.as_mut() {
            Some(o) if o.delivery == Delivery::Sending && send.names(&o.code) => {
                o.delivery = Delivery::NotSent;
                true
            }
            _ => false,
        };
        if refunded || marked {
            Transition::new(next, true, ())
        } else {
            Transition::new(self.clone(), false, ())
        }
    }
}

impl TwoFactorRecord {
    /// Generates a code and stores it as the outgoing code ([`Delivery::Sending`], replacing
    /// any outgoing one; the code delivered before stays until the mailer's answer), and opens
    /// (or extends) the login challenge so it lasts as long as the code. Counted against the
    /// mail-send limit (given back if the send fails) and the send-attempt limit.
    pub(crate) fn send_mailed_code<R: TryCryptoRng + ?Sized>(
        &mut self,
        now: u64,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Sent, DomainError> {
        let window = settings.mail_send_window;
        let blocked = [
            self.mail_sends
                .blocked_until(now, settings.mail_sends_per_window, window),
            self.mail_attempts
                .blocked_until(now, settings.mail_send_attempts_per_window, window),
        ];
        if let Some(retry_at) = blocked.into_iter().flatten().max() {
            return Ok(Sent::Throttled { retry_at });
        }
        let digits = u32::from(settings.mailed_code_digits);
        let bound = 10u32.saturating_pow(digits);
        let value = random_below(rng, bound)?;
        let code = SecretText::new(format!("{value:0width$}", width = digits as usize));
        let salt = Salt::random(rng)?;
        let hash = CodeHash::for_new(&settings.code_keys);
        let digest = hash.digest(
            &settings.code_keys,
            DIGEST_LABEL,
            &salt.0,
            code.expose_secret().as_bytes(),
        )?;
        let expires_at = now.saturating_add(settings.mailed_code_ttl);
        // Cannot fail: checked above.
        let _ = self
            .mail_sends
            .admit(now, settings.mail_sends_per_window, window);
        let _ = self
            .mail_attempts
            .admit(now, settings.mail_send_attempts_per_window, window);
        self.outgoing = Some(OutgoingCode {
            code: MailedCode {
                hash,
                digest,
                salt,
                issued_at: now,
                expires_at,
            },
            delivery: Delivery::Sending,
        });
        let challenge_until = expires_at.max(now.saturating_add(settings.login_challenge_ttl));
        self.challenge = Some(LoginChallenge {
            issued_at: now,
            expires_at: challenge_until,
        });
        Ok(Sent::New {
            expires_at,
            notice: Notice::LoginCode {
                code,
                expires_at,
                context: context.clone(),
            },
        })
    }

    /// Checks a mailed code (already parsed to digits) in constant time against every code
    /// the user may have ([`acceptable_codes`](Self::acceptable_codes)); consumes them all on
    /// success. An expired code is dropped; with no other code left the check is
    /// [`FailureReason::Expired`]. A code hashed under a key `keys` does not hold is refused
    /// (callers report it first with [`TwoFactorRecord::ensure_code_key`]).
    pub(crate) fn check_mailed_code(
        &mut self,
        digits: &str,
        now: u64,
        keys: &CodeKeys,
    ) -> Result<(), FailureReason> {
        let mut live = false;
        let mut expired = false;
        let mut hit = Choice::from(0);
        for code in self.acceptable_codes() {
            let matched = code
                .matches(digits, keys)
                .map_err(|_| FailureReason::WrongCode)?;
            if now < code.expires_at {
                live = true;
                hit |= matched;
            } else {
                expired = true;
            }
        }
        if !live {
            // Nothing the user may type is still valid.
            let reason = if expired {
                FailureReason::Expired
            } else {
                FailureReason::NoPendingFactor
            };
            if expired {
                self.clear_mailed_codes();
            }
            return Err(reason);
        }
        if expired {
            self.mailed = self.mailed.take().filter(|c| now < c.expires_at);
            self.outgoing = self.outgoing.take().filter(|o| now < o.code.expires_at);
        }
        if !bool::from(hit) {
            return Err(FailureReason::WrongCode);
        }
        self.clear_mailed_codes();
        Ok(())
    }

    /// Mails a new login code to a user whose login is waiting for one ("resend the code"),
    /// also after a send that failed. The outcome is the new code's expiry, or
    /// [`Refusal::Throttled`] when the send limit or the send-attempt limit is reached (a code
    /// delivered before keeps working). The new code is the outgoing one until the mailer's
    /// answer is recorded ([`CodeSend`]); until then the code delivered before still works.
    ///
    /// # Errors
    /// [`DomainError::NoPendingLogin`] when no mailed-code login is in progress (never started,
    /// finished, or expired), [`DomainError::Rng`].
    pub fn resend_mailed_code<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<Checked<u64>>, DomainError> {
        let waiting =
            self.has_mailed_code() && self.challenge.as_ref().is_some_and(|c| now < c.expires_at);
        if !waiting {
            return Err(DomainError::NoPendingLogin);
        }
        let mut next = self.clone();
        Ok(match next.send_mailed_code(now, context, settings, rng)? {
            Sent::New { expires_at, notice } => Transition::new(next, true, Ok(expires_at))
                .event(AuditKind::CodeMailed { expires_at })
                .notice(notice),
            Sent::Throttled { retry_at } => {
                Transition::new(self.clone(), false, Err(Refusal::Throttled { retry_at }))
                    .event(AuditKind::MailThrottled { retry_at })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::crypto::{FailingRng, TestRng};

    /// A code stored for the mailer, no answer yet: its expiry, the code and the send.
    fn stored(r: &mut TwoFactorRecord, now: u64, s: &Settings) -> (u64, String, CodeSend) {
        match r
            .send_mailed_code(now, &LoginContext::default(), s, &mut TestRng(now))
            .unwrap()
        {
            Sent::New { expires_at, notice } => {
                let send = r.code_send().expect("stored as on its way");
                let code = notice.expose_login_code().unwrap().to_owned();
                (expires_at, code, send)
            }
            Sent::Throttled { .. } => panic!("throttled"),
        }
    }

    /// A code mailed and delivered: its expiry and the code.
    fn sent(r: &mut TwoFactorRecord, now: u64, s: &Settings) -> (u64, String) {
        let (expires_at, code, send) = stored(r, now, s);
        let t = r.mailed_code_sent(&send);
        assert!(t.is_changed());
        *r = t.record;
        (expires_at, code)
    }

    /// The mailer failed for `send`.
    fn not_sent(r: &mut TwoFactorRecord, send: &CodeSend) {
        let t = r.mailed_code_not_sent(send);
        assert!(t.is_changed());
        *r = t.record;
    }

    /// Whether `code` would log in at `now` (the record is not changed).
    fn accepts(r: &TwoFactorRecord, code: &str, now: u64, s: &Settings) -> bool {
        r.clone().check_mailed_code(code, now, &s.code_keys).is_ok()
    }

    /// A well-formed code other than `code`.
    fn other(code: &str) -> String {
        let n: u32 = code.parse().unwrap();
        format!("{:06}", (n + 1) % 1_000_000)
    }

    #[test]
    fn code_is_six_digits_valid_one_hour_once() {
        let s = Settings::default();
        let mut r = TwoFactorRecord::default();
        let (expires_at, code) = sent(&mut r, 1_000, &s);
        assert_eq!(expires_at, 4_600);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        // The challenge lasts as long as the code.
        assert_eq!(r.challenge.as_ref().unwrap().expires_at, 4_600);
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let mut w = r.clone();
        assert_eq!(
            w.check_mailed_code(wrong, 1_001, &s.code_keys),
            Err(FailureReason::WrongCode)
        );
        assert!(w.mailed.is_some());
        let mut late = r.clone();
        assert_eq!(
            late.check_mailed_code(&code, 4_600, &s.code_keys),
            Err(FailureReason::Expired)
        );
        assert!(late.mailed.is_none());
        assert_eq!(r.check_mailed_code(&code, 4_599, &s.code_keys), Ok(()));
        assert_eq!(
            r.check_mailed_code(&code, 4_599, &s.code_keys),
            Err(FailureReason::NoPendingFactor)
        );
    }

    #[test]
    fn five_sends_per_hour() {
        let s = Settings::default();
        let mut r = TwoFactorRecord::default();
        for t in 0..5 {
            let _ = sent(&mut r, 100 + t, &s);
        }
        let before = r.clone();
        match r
            .send_mailed_code(200, &LoginContext::default(), &s, &mut TestRng(1))
            .unwrap()
        {
            Sent::Throttled { retry_at } => assert_eq!(retry_at, 3_700),
            Sent::New { .. } => panic!("sixth send allowed"),
        }
        assert_eq!(r.mailed, before.mailed);
        let _ = sent(&mut r, 3_700, &s);
    }

    #[test]
    fn resend_needs_a_pending_login() {
        let s = Settings::default();
        let ctx = LoginContext::default();
        let r = TwoFactorRecord::default();
        assert_eq!(
            r.resend_mailed_code(0, &ctx, &s, &mut TestRng(1))
                .unwrap_err(),
            DomainError::NoPendingLogin
        );
        let mut r = r;
        let (_, first) = sent(&mut r, 0, &s);
        assert_eq!(
            r.resend_mailed_code(10, &ctx, &s, &mut FailingRng)
                .unwrap_err(),
            DomainError::Rng
        );
        let t = r
            .resend_mailed_code(10, &ctx, &s, &mut TestRng(99))
            .unwrap();
        assert_eq!(*t.outcome(), Ok(3_610));
        let second = t.notices()[0].expose_login_code().unwrap().to_owned();
        let send = t.record().code_send().unwrap();
        // Delivered, the new code replaces the first.
        let mut next = t.record().mailed_code_sent(&send).record;
        if first != second {
            assert_eq!(
                next.check_mailed_code(&first, 11, &s.code_keys),
                Err(FailureReason::WrongCode)
            );
        }
        assert_eq!(next.check_mailed_code(&second, 11, &s.code_keys), Ok(()));
        assert_eq!(
            r.resend_mailed_code(3_600, &ctx, &s, &mut TestRng(1))
                .unwrap_err(),
            DomainError::NoPendingLogin
        );
    }

    #[test]
    fn a_code_is_stored_as_on_its_way_then_the_mailers_answer_makes_it_the_mailed_code() {
        let s = Settings::default();
        let mut r = TwoFactorRecord::default();
        let (_, code, send) = stored(&mut r, 100, &s);
        assert!(r.mailed.is_none());
        assert_eq!(r.outgoing.as_ref().unwrap().delivery, Delivery::Sending);
        assert_eq!(r.mail_sends.count(100, 3_600), 1);
        assert_eq!(r.mail_attempts.count(100, 3_600), 1);
        // On its way, it may have arrived: accepted.
        assert!(accepts(&r, &code, 101, &s));
        assert!(!accepts(&r, &other(&code), 101, &s));
        let t = r.mailed_code_sent(&send);
        assert!(t.is_changed());
        let r = t.record;
        assert!(r.outgoing.is_none() && r.code_send().is_none());
        assert!(accepts(&r, &code, 101, &s));
        // Delivered once, counted once; a second answer finds nothing.
        assert_eq!(r.mail_sends.count(101, 3_600), 1);
        assert!(!r.mailed_code_sent(&send).is_changed());
    }

    #[test]
    fn a_code_not_sent_is_never_accepted_the_login_waits_and_the_send_is_given_back() {
        let s = Settings::default();
        let ctx = LoginContext::default();
        let mut r = TwoFactorRecord::default();
        let (_, code, failed) = stored(&mut r, 100, &s);
        not_sent(&mut r, &failed);
        assert_eq!(r.outgoing.as_ref().unwrap().delivery, Delivery::NotSent);
        assert!(r.code_send().is_none());
        assert_eq!(
            r.clone().check_mailed_code(&code, 101, &s.code_keys),
            Err(FailureReason::NoPendingFactor)
        );
        // Off the send limit, still on the attempts.
        assert_eq!(r.mail_sends.count(101, 3_600), 0);
        assert_eq!(r.mail_attempts.count(101, 3_600), 1);
        // Given back once: the same answer again changes nothing.
        assert!(!r.mailed_code_not_sent(&failed).is_changed());
        // The login is still open: a resend mails a fresh code that works once delivered.
        assert!(r.challenge.as_ref().is_some_and(|c| 101 < c.expires_at));
        let t = r
            .resend_mailed_code(160, &ctx, &s, &mut TestRng(7))
            .unwrap();
        assert_eq!(*t.outcome(), Ok(160 + 3_600));
        let fresh = t.notices()[0].expose_login_code().unwrap().to_owned();
        let send = t.record().code_send().unwrap();
        let r = t.record().mailed_code_sent(&send).record;
        assert!(accepts(&r, &fresh, 161, &s));
        assert!(!accepts(&r, &code, 161, &s));
        assert_eq!(r.mail_sends.count(161, 3_600), 1);
        assert_eq!(r.mail_attempts.count(161, 3_600), 2);
    }

    #[test]
    fn a_failed_resend_keeps_the_code_delivered_before() {
        let s = Settings::default();
        let ctx = LoginContext::default();
        let mut r = TwoFactorRecord::default();
        let (_, first) = sent(&mut r, 100, &s);
        let t = r
            .resend_mailed_code(200, &ctx, &s, &mut TestRng(9))
            .unwrap();
        let second = t.notices()[0].expose_login_code().unwrap().to_owned();
        assert_ne!(first, second, "two draws of this RNG differ");
        let send = t.record().code_send().unwrap();
        let waiting = t.record().clone();
        // While the mailer works, both codes are good.
        assert!(accepts(&waiting, &first, 201, &s));
        assert!(accepts(&waiting, &second, 201, &s));
        // The mailer fails: the first code still works, the second never does.
        let mut failed = waiting.clone();
        not_sent(&mut failed, &send);
        assert!(accepts(&failed, &first, 201, &s));
        assert!(!accepts(&failed, &second, 201, &s));
        assert_eq!(failed.mail_sends.count(201, 3_600), 1);
        // Delivered instead: the second replaces the first.
        let delivered = waiting.mailed_code_sent(&send).record;
        assert!(!accepts(&delivered, &first, 201, &s));
        assert!(accepts(&delivered, &second, 201, &s));
        // Either code, once used, uses up both.
        let mut used = waiting;
        assert_eq!(used.check_mailed_code(&first, 202, &s.code_keys), Ok(()));
        assert!(!accepts(&used, &second, 202, &s));
        assert!(!used.has_mailed_code());
    }

    #[test]
    fn no_answer_leaves_a_code_that_is_accepted_and_counted_until_the_next_send() {
        // The process died between the mailer and the second save (or that save failed).
        let s = Settings::default();
        let ctx = LoginContext::default();
        let mut r = TwoFactorRecord::default();
        let (_, first) = sent(&mut r, 100, &s);
        let (_, unknown, _) = stored(&mut r, 200, &s);
        assert!(accepts(&r, &first, 300, &s));
        assert!(accepts(&r, &unknown, 300, &s), "it may have arrived");
        assert_eq!(r.mail_sends.count(300, 3_600), 2, "counted as sent");
        // The next send replaces it; the delivered code stays until that one is delivered.
        let t = r
            .resend_mailed_code(400, &ctx, &s, &mut TestRng(11))
            .unwrap();
        let third = t.notices()[0].expose_login_code().unwrap().to_owned();
        let r = t.record().clone();
        assert!(accepts(&r, &first, 401, &s));
        assert!(!accepts(&r, &unknown, 401, &s));
        assert!(accepts(&r, &third, 401, &s));
        assert_eq!(r.mail_sends.count(401, 3_600), 3);
    }

    #[test]
    fn racing_sends_the_later_one_is_the_outgoing_code_and_the_earlier_answer_finds_it_gone() {
        let s = Settings::default();
        let mut r = TwoFactorRecord::default();
        let (_, delivered) = sent(&mut r, 100, &s);
        // Two resends, each saved by compare-and-swap: the second starts from the first's
        // record.
        let (_, early, early_send) = stored(&mut r, 200, &s);
        let (_, late, late_send) = stored(&mut r, 201, &s);
        assert_eq!(r.mail_sends.count(201, 3_600), 3);
        assert_eq!(r.mail_attempts.count(201, 3_600), 3);
        assert!(!accepts(&r, &early, 202, &s));
        // The early send delivered: nothing to mark, its code is gone.
        assert!(!r.mailed_code_sent(&early_send).is_changed());
        // The early send failed: only its count is taken back.
        let t = r.mailed_code_not_sent(&early_send);
        assert_eq!(t.record().mail_sends.count(202, 3_600), 2);
        assert_eq!(t.record().outgoing, r.outgoing);
        let mut r = t.record;
        // The late one fails: the code delivered before both still works.
        not_sent(&mut r, &late_send);
        assert!(accepts(&r, &delivered, 202, &s));
        assert!(!accepts(&r, &late, 202, &s));
        assert_eq!(r.mail_sends.count(202, 3_600), 1);
    }

    #[test]
    fn an_answer_after_the_login_completed_marks_nothing() {
        let s = Settings::default();
        let mut r = TwoFactorRecord::default();
        let (_, code, send) = stored(&mut r, 100, &s);
        assert_eq!(r.check_mailed_code(&code, 101, &s.code_keys), Ok(()));
        assert!(!r.mailed_code_sent(&send).is_changed());
        let t = r.mailed_code_not_sent(&send);
        assert!(t.record().outgoing.is_none() && t.record().mailed.is_none());
    }

    #[test]
    fn failed_sends_are_off_the_send_limit_but_bounded_by_the_attempts() {
        let s = Settings::default();
        let mut r = TwoFactorRecord::default();
        for t in 0..15 {
            let (_, _, send) = stored(&mut r, 100 + t, &s);
            not_sent(&mut r, &send);
        }
        assert_eq!(r.mail_sends.count(200, 3_600), 0);
        match r
            .send_mailed_code(200, &LoginContext::default(), &s, &mut TestRng(1))
            .unwrap()
        {
            Sent::Throttled { retry_at } => assert_eq!(retry_at, 100 + 3_600),
            Sent::New { .. } => panic!("a 16th attempt in the hour"),
        }
        // The window slides: one more attempt an hour after the first.
        let _ = stored(&mut r, 3_700, &s);
        // Delivered sends stop at 5 whatever the attempts allow, and a failure in between is
        // given back.
        let mut r = TwoFactorRecord::default();
        let (_, _, send) = stored(&mut r, 0, &s);
        not_sent(&mut r, &send);
        for t in 1..=5 {
            let _ = sent(&mut r, t, &s);
        }
        match r
            .send_mailed_code(10, &LoginContext::default(), &s, &mut TestRng(1))
            .unwrap()
        {
            Sent::Throttled { retry_at } => assert_eq!(retry_at, 1 + 3_600),
            Sent::New { .. } => panic!("a 6th delivered code in the hour"),
        }
    }

    #[test]
    fn an_expired_code_is_dropped_and_the_other_still_checked() {
        let s = Settings::default();
        let ctx = LoginContext::default();
        let mut r = TwoFactorRecord::default();
        let (_, first) = sent(&mut r, 0, &s);
        // A resend near the end of the first code's life, still on its way.
        let t = r
            .resend_mailed_code(3_000, &ctx, &s, &mut TestRng(5))
            .unwrap();
        let second = t.notices()[0].expose_login_code().unwrap().to_owned();
        let r = t.record;
        let mut late = r.clone();
        assert_eq!(
            late.check_mailed_code(&first, 3_600, &s.code_keys),
            Err(FailureReason::WrongCode)
        );
        assert!(late.mailed.is_none(), "the expired code is dropped");
        assert_eq!(late.check_mailed_code(&second, 3_601, &s.code_keys), Ok(()));
        // Both expired: the check says so and drops them.
        let mut both = r;
        assert_eq!(
            both.check_mailed_code(&second, 6_600, &s.code_keys),
            Err(FailureReason::Expired)
        );
        assert!(!both.has_mailed_code());
    }
}
