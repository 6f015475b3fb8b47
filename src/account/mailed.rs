//! Mailed login codes (Odoo's "2FA by mail"): for users who must pass a second factor but have
//! no authenticator.
//!
//! A code is 6 random digits from the CSPRNG (not TOTP), valid one hour, stored only as a
//! digest (HMAC-SHA-256 under the server-side [`CodeKey`](super::CodeKey) when the deployment
//! has one; salted SHA-256 otherwise, which a copy of the table cracks in well under a second:
//! configure a key), compared in constant time and accepted once. At most 5 are sent per user per
//! hour; wrong guesses count against the code-check throttle like any other code.

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
    /// Generates a code, replacing any pending one, and opens (or extends) the login challenge
    /// so it lasts as long as the code. Counted against the mail-send limit.
    pub(crate) fn send_mailed_code<R: TryCryptoRng + ?Sized>(
        &mut self,
        now: u64,
        context: &LoginContext,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Sent, DomainError> {
        if let Some(retry_at) = self.mail_sends.blocked_until(
            now,
            settings.mail_sends_per_window,
            settings.mail_send_window,
        ) {
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
        let _ = self.mail_sends.admit(
            now,
            settings.mail_sends_per_window,
            settings.mail_send_window,
        );
        self.mailed = Some(MailedCode {
            hash,
            digest,
            salt,
            issued_at: now,
            expires_at,
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

    /// Checks a mailed code (already parsed to digits) in constant time; consumes it on
    /// success. A code hashed under a key `keys` does not hold is refused (callers report it
    /// first with [`TwoFactorRecord::ensure_code_key`]).
    pub(crate) fn check_mailed_code(
        &mut self,
        digits: &str,
        now: u64,
        keys: &CodeKeys,
    ) -> Result<(), FailureReason> {
        let Some(mailed) = self.mailed.as_ref() else {
            return Err(FailureReason::NoPendingFactor);
        };
        let hit = mailed
            .matches(digits, keys)
            .map_err(|_| FailureReason::WrongCode)?;
        if now >= mailed.expires_at {
            self.mailed = None;
            return Err(FailureReason::Expired);
        }
        if !bool::from(hit) {
            return Err(FailureReason::WrongCode);
        }
        self.mailed = None;
        Ok(())
    }

    /// Mails a new login code to a user whose login is waiting for one ("resend the code").
    /// The outcome is the new code's expiry, or [`Refusal::Throttled`] when the send limit is
    /// reached (the previous code keeps working).
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
            self.mailed.is_some() && self.challenge.as_ref().is_some_and(|c| now < c.expires_at);
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

    fn sent(r: &mut TwoFactorRecord, now: u64, s: &Settings) -> (u64, String) {
        match r
            .send_mailed_code(now, &LoginContext::default(), s, &mut TestRng(now))
            .unwrap()
        {
            Sent::New { expires_at, notice } => {
                (expires_at, notice.expose_login_code().unwrap().to_owned())
            }
            Sent::Throttled { .. } => panic!("throttled"),
        }
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
        let mut next = t.record().clone();
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
}
