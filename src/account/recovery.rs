//! Recovery codes: one-time codes for when the authenticator is lost.
//!
//! Ten per set by default, each 10 symbols of Crockford base32 (50 bits), printed as
//! `xxxx-xxxx-xx`. Input is forgiving: any case, hyphens and spaces anywhere, `o` read as `0`,
//! `i` and `l` read as `1`. Stored only as salted SHA-256 digests, shown once, consumed once;
//! regenerating the set invalidates the old one.

use core::fmt;

use rand::TryCryptoRng;
use subtle::ConditionallySelectable;
use zeroize::Zeroizing;

use crate::audit::AuditKind;
use crate::mail::Notice;

use super::crypto::{Digest, Salt, digest, random_below};
use super::{DomainError, FailureReason, Reauthenticated, Settings, Transition, TwoFactorRecord};

/// The symbols of a recovery code (Crockford base32: no `i`, `l`, `o`, `u`).
pub const RECOVERY_CODE_ALPHABET: &str = "0123456789abcdefghjkmnpqrstvwxyz";
/// Symbols in a recovery code (50 bits).
pub const RECOVERY_CODE_LEN: usize = 10;

const DIGEST_LABEL: &str = "twofactor recovery code v1";

/// Why typed input is not a recovery code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryCodeError {
    /// Nothing but separators.
    #[error("no recovery code entered")]
    Empty,
    /// A character outside the alphabet and not a separator.
    #[error(
        "recovery codes contain letters and digits only (found an invalid character at position {position})"
    )]
    InvalidCharacter {
        /// Position (in characters) of the first offending character.
        position: usize,
    },
    /// The wrong number of symbols.
    #[error("expected {expected} letters and digits, got {actual}")]
    WrongLength {
        /// Symbols a recovery code has.
        expected: usize,
        /// Symbols entered.
        actual: usize,
    },
}

/// Parses what a person typed into the canonical symbols.
pub(crate) fn normalize(
    input: &str,
) -> Result<Zeroizing<[u8; RECOVERY_CODE_LEN]>, RecoveryCodeError> {
    let mut out = Zeroizing::new([0u8; RECOVERY_CODE_LEN]);
    let mut n = 0usize;
    for (position, c) in input.chars().enumerate() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' | '\t' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c if c.is_ascii_alphanumeric() && c != 'u' => c,
            _ => return Err(RecoveryCodeError::InvalidCharacter { position }),
        };
        if n < RECOVERY_CODE_LEN {
            // ASCII by construction.
            out[n] = c as u8;
        }
        n += 1;
    }
    match n {
        0 => Err(RecoveryCodeError::Empty),
        RECOVERY_CODE_LEN => Ok(out),
        actual => Err(RecoveryCodeError::WrongLength {
            expected: RECOVERY_CODE_LEN,
            actual,
        }),
    }
}

/// A freshly generated set of recovery codes, in plain text: show them to the user once.
///
/// `Debug` shows only how many there are; the codes are wiped from memory on drop.
///
/// ```
/// # use twofactor::account::{RecoveryCodes, TwoFactorRecord};
/// # fn show(codes: &RecoveryCodes) {
/// for code in codes.expose_secret() {
///     println!("{code}"); // e.g. 7k3m-q9xa-2f
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct RecoveryCodes {
    codes: Vec<Zeroizing<String>>,
}

impl RecoveryCodes {
    /// The codes, formatted `xxxx-xxxx-xx`.
    ///
    /// # Security warning
    /// These are credentials: show them to the user once, never log or store them.
    #[must_use]
    pub fn expose_secret(&self) -> Vec<&str> {
        self.codes.iter().map(|c| c.as_str()).collect()
    }

    /// How many codes there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether there are none (never, for a generated set).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("len", &self.codes.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct RecoveryEntry {
    digest: Digest,
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::account::required")
    )]
    used_at: Option<u64>,
}

/// The stored form of a set: salted digests and when each was used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct RecoveryCodeSet {
    salt: Salt,
    generated_at: u64,
    codes: Vec<RecoveryEntry>,
}

impl RecoveryCodeSet {
    /// A new set and its plain codes.
    pub(crate) fn generate<R: TryCryptoRng + ?Sized>(
        now: u64,
        count: usize,
        rng: &mut R,
    ) -> Result<(Self, RecoveryCodes), DomainError> {
        let alphabet = RECOVERY_CODE_ALPHABET.as_bytes();
        let bound = u32::try_from(alphabet.len()).unwrap_or(32);
        let salt = Salt::random(rng)?;
        let mut codes = Vec::with_capacity(count);
        let mut plain = Vec::with_capacity(count);
        for _ in 0..count {
            let mut symbols = Zeroizing::new([0u8; RECOVERY_CODE_LEN]);
            for s in symbols.iter_mut() {
                let i = usize::try_from(random_below(rng, bound)?).unwrap_or(0);
                *s = alphabet[i % alphabet.len()];
            }
            let mut text = Zeroizing::new(String::with_capacity(RECOVERY_CODE_LEN + 2));
            for (i, &s) in symbols.iter().enumerate() {
                if i == 4 || i == 8 {
                    text.push('-');
                }
                text.push(char::from(s));
            }
            codes.push(RecoveryEntry {
                digest: digest(DIGEST_LABEL, &salt.0, symbols.as_slice()),
                used_at: None,
            });
            plain.push(text);
        }
        Ok((
            RecoveryCodeSet {
                salt,
                generated_at: now,
                codes,
            },
            RecoveryCodes { codes: plain },
        ))
    }

    /// Unused codes.
    pub(crate) fn remaining(&self) -> usize {
        self.codes.iter().filter(|c| c.used_at.is_none()).count()
    }

    /// Consumes the code if it is in the set and unused; returns the codes left. Every entry is
    /// compared, in constant time.
    pub(crate) fn consume(
        &mut self,
        symbols: &[u8; RECOVERY_CODE_LEN],
        now: u64,
    ) -> Result<usize, FailureReason> {
        let candidate = digest(DIGEST_LABEL, &self.salt.0, symbols);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in self.codes.iter().enumerate() {
            let hit = entry.digest.ct_eq(&candidate);
            index.conditional_assign(&u64::try_from(i).unwrap_or(u64::MAX), hit);
            found |= hit;
        }
        if !bool::from(found) {
            return Err(FailureReason::WrongCode);
        }
        let entry = usize::try_from(index)
            .ok()
            .and_then(|i| self.codes.get_mut(i))
            .ok_or(FailureReason::WrongCode)?;
        if entry.used_at.is_some() {
            return Err(FailureReason::Replayed);
        }
        entry.used_at = Some(now);
        Ok(self.remaining())
    }
}

impl TwoFactorRecord {
    /// Replaces the recovery codes with a new set (the old codes stop working) and returns the
    /// new codes, to show once.
    ///
    /// # Errors
    /// [`DomainError::ReauthenticationRequired`] when `reauth` is not fresh,
    /// [`DomainError::NotEnrolled`] without an active authenticator, [`DomainError::Rng`].
    pub fn regenerate_recovery_codes<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        reauth: Reauthenticated,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<Transition<RecoveryCodes>, DomainError> {
        if !reauth.is_fresh(now, settings.reauth_max_age) {
            return Err(DomainError::ReauthenticationRequired);
        }
        if self.active.is_none() {
            return Err(DomainError::NotEnrolled);
        }
        let (set, codes) = RecoveryCodeSet::generate(now, settings.recovery_codes, rng)?;
        let mut next = self.clone();
        next.recovery = Some(set);
        Ok(Transition::new(next, true, codes)
            .event(AuditKind::RecoveryCodesRegenerated)
            .notice(Notice::RecoveryCodesRegenerated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::crypto::{FailingRng, TestRng};

    #[test]
    fn generated_codes_have_the_documented_shape() {
        let (set, codes) = RecoveryCodeSet::generate(0, 10, &mut TestRng(1)).unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(set.remaining(), 10);
        for code in codes.expose_secret() {
            assert_eq!(code.len(), 12);
            assert_eq!(&code[4..5], "-");
            assert_eq!(&code[9..10], "-");
            assert!(
                code.chars()
                    .all(|c| c == '-' || RECOVERY_CODE_ALPHABET.contains(c))
            );
        }
        let mut distinct = codes.expose_secret();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        assert_eq!(format!("{codes:?}"), "RecoveryCodes { len: 10, .. }");
    }

    #[test]
    fn consumed_once_in_any_typing() {
        let (mut set, codes) = RecoveryCodeSet::generate(0, 3, &mut TestRng(2)).unwrap();
        let code = codes.expose_secret()[1].to_uppercase().replace('-', " ");
        let symbols = normalize(&code).unwrap();
        assert_eq!(set.consume(&symbols, 5), Ok(2));
        assert_eq!(set.consume(&symbols, 6), Err(FailureReason::Replayed));
        let other = normalize("zzzz-zzzz-zz").unwrap();
        assert_eq!(set.consume(&other, 7), Err(FailureReason::WrongCode));
        assert_eq!(set.remaining(), 2);
    }

    #[test]
    fn normalization_is_forgiving_but_exact_about_symbols() {
        assert_eq!(*normalize(" OIL0-abcd-EF ").unwrap(), *b"0110abcdef");
        assert_eq!(normalize(" - ").unwrap_err(), RecoveryCodeError::Empty);
        assert_eq!(
            normalize("abcd-efgh-u1").unwrap_err(),
            RecoveryCodeError::InvalidCharacter { position: 10 }
        );
        assert_eq!(
            normalize("abcd-efgh-1").unwrap_err(),
            RecoveryCodeError::WrongLength {
                expected: 10,
                actual: 9
            }
        );
        assert_eq!(
            normalize("abcd-efgh-123").unwrap_err(),
            RecoveryCodeError::WrongLength {
                expected: 10,
                actual: 11
            }
        );
        assert!(matches!(
            normalize("abcd_efgh_12"),
            Err(RecoveryCodeError::InvalidCharacter { position: 4 })
        ));
    }

    #[test]
    fn regenerate_needs_fresh_reauth_and_enrollment() {
        let s = Settings::default();
        let r = TwoFactorRecord::default();
        assert_eq!(
            r.regenerate_recovery_codes(1_000, Reauthenticated::at(1_000), &s, &mut TestRng(1))
                .unwrap_err(),
            DomainError::NotEnrolled
        );
        let enrolled = crate::account::enrollment::tests::enrolled_record(1_000);
        assert_eq!(
            enrolled
                .regenerate_recovery_codes(2_000, Reauthenticated::at(1_400), &s, &mut TestRng(1))
                .unwrap_err(),
            DomainError::ReauthenticationRequired
        );
        assert_eq!(
            enrolled
                .regenerate_recovery_codes(2_000, Reauthenticated::at(2_000), &s, &mut FailingRng)
                .unwrap_err(),
            DomainError::Rng
        );
        let t = enrolled
            .regenerate_recovery_codes(2_000, Reauthenticated::at(1_401), &s, &mut TestRng(9))
            .unwrap();
        assert!(t.is_changed());
        assert_eq!(t.record().recovery_codes_left(), 10);
        assert_eq!(t.events(), &[AuditKind::RecoveryCodesRegenerated]);
        // The old codes no longer work.
        let old = enrolled.recovery.as_ref().unwrap().clone();
        assert_ne!(Some(&old), t.record().recovery.as_ref());
    }
}
