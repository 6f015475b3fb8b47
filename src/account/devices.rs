//! Trusted devices: "don't ask again on this device".
//!
//! A device token is 256 random bits, returned once (as 64 hex digits, for a cookie) and stored
//! only as a SHA-256 digest with its label and dates. Tokens expire (90 days by default), are
//! checked in constant time against every stored digest, and are all revoked when 2FA is
//! disabled, reset or rotated.

use core::fmt;

use rand::TryCryptoRng;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::audit::AuditKind;
use crate::mail::Notice;

use crate::vocabulary::DeviceId;

use super::crypto::{Bytes, Digest, digest, hex, unhex_ct};
use super::{DomainError, Settings, Transition, TwoFactorRecord};

const DIGEST_LABEL: &str = "twofactor device token v1";
/// Labels longer than this many characters are cut (hosts pass user agents).
pub(crate) const MAX_LABEL_CHARS: usize = 100;

/// A trusted device as listed to its user (no token, no digest).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct DeviceInfo {
    /// Its id, for revocation.
    pub id: DeviceId,
    /// The label given when it was trusted ("Firefox on Linux").
    pub label: String,
    /// When it was trusted.
    pub created_at: u64,
    /// When the trust ends.
    pub expires_at: u64,
    /// When it last skipped a challenge.
    pub last_used_at: Option<u64>,
}

/// A trusted-device token, returned once: put it in a long-lived, `HttpOnly`, `Secure` cookie
/// and pass it back to [`start_login`](crate::service::TwoFactor::start_login).
#[derive(Clone)]
pub struct DeviceToken {
    token: Zeroizing<String>,
    id: DeviceId,
    issued_at: u64,
    expires_at: u64,
}

impl DeviceToken {
    /// The token (64 hex digits).
    ///
    /// # Security warning
    /// Whoever holds it skips the second factor on this account until it expires: send it only
    /// to the device in a secure cookie, never log it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.token
    }
    /// The device's id.
    #[must_use]
    pub fn id(&self) -> &DeviceId {
        &self.id
    }
    /// When the trust ends (use it as the cookie's expiry).
    #[must_use]
    pub const fn expires_at(&self) -> u64 {
        self.expires_at
    }
    /// When the token was issued, by the service's clock: a cookie set in the same response
    /// lives `expires_at - issued_at` seconds (what [`crate::cookie::DeviceCookie`] uses).
    #[must_use]
    pub const fn issued_at(&self) -> u64 {
        self.issued_at
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceToken")
            .field("id", &self.id)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The stored form of a trusted device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub(crate) struct TrustedDevice {
    pub(crate) id: DeviceId,
    pub(crate) token_digest: Digest,
    pub(crate) label: String,
    pub(crate) created_at: u64,
    /// Trusted while `now < expires_at`.
    pub(crate) expires_at: u64,
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::account::required")
    )]
    pub(crate) last_used_at: Option<u64>,
}

impl TrustedDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: self.id.clone(),
            label: self.label.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
        }
    }
}

fn clean_label(label: &str) -> String {
    let label: String = label
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL_CHARS)
        .collect();
    if label.is_empty() {
        "unnamed device".to_owned()
    } else {
        label
    }
}

impl TwoFactorRecord {
    /// Drops expired devices.
    pub(crate) fn prune_devices(&mut self, now: u64) {
        self.devices.retain(|d| now < d.expires_at);
    }

    /// Trusts a new device; drops expired ones and, beyond the limit, the least recently used.
    pub(crate) fn trust_device<R: TryCryptoRng + ?Sized>(
        &mut self,
        now: u64,
        label: &str,
        settings: &Settings,
        rng: &mut R,
    ) -> Result<(DeviceToken, DeviceInfo), DomainError> {
        let token = Zeroizing::new(Bytes::<32>::random(rng)?);
        let id = DeviceId::new(hex(&Bytes::<8>::random(rng)?.0));
        self.prune_devices(now);
        while self.devices.len() >= settings.max_trusted_devices.max(1) {
            let oldest = self
                .devices
                .iter()
                .enumerate()
                .min_by_key(|(_, d)| d.last_used_at.unwrap_or(d.created_at))
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    self.devices.remove(i);
                }
                None => break,
            }
        }
        let expires_at = now.saturating_add(settings.trusted_device_ttl);
        let device = TrustedDevice {
            id: id.clone(),
            token_digest: digest(DIGEST_LABEL, &[], &token.0),
            label: clean_label(label),
            created_at: now,
            expires_at,
            last_used_at: None,
        };
        let info = device.info();
        self.devices.push(device);
        Ok((
            DeviceToken {
                token: Zeroizing::new(hex(&token.0)),
                id,
                issued_at: now,
                expires_at,
            },
            info,
        ))
    }

    /// The index of the unexpired device this token belongs to. Compares against every stored
    /// digest in constant time.
    pub(crate) fn find_device(&self, token: &str, now: u64) -> Option<usize> {
        let bytes = unhex_ct::<32>(token.trim())?;
        let candidate = digest(DIGEST_LABEL, &[], bytes.as_slice());
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, d) in self.devices.iter().enumerate() {
            let hit = d.token_digest.ct_eq(&candidate)
                & subtle::Choice::from(u8::from(now < d.expires_at));
            index.conditional_assign(&u64::try_from(i).unwrap_or(u64::MAX), hit);
            found |= hit;
        }
        if bool::from(found) {
            usize::try_from(index).ok()
        } else {
            None
        }
    }

    /// The trusted devices not yet expired at `now`.
    #[must_use]
    pub fn trusted_devices(&self, now: u64) -> Vec<DeviceInfo> {
        self.devices
            .iter()
            .filter(|d| now < d.expires_at)
            .map(TrustedDevice::info)
            .collect()
    }

    /// Revokes one trusted device.
    ///
    /// # Errors
    /// [`DomainError::UnknownDevice`] when no device has this id.
    pub fn revoke_device(&self, id: &DeviceId) -> Result<Transition<DeviceInfo>, DomainError> {
        let i = self
            .devices
            .iter()
            .position(|d| {
                d.id.as_str()
                    .as_bytes()
                    .ct_eq(id.as_str().as_bytes())
                    .into()
            })
            .ok_or(DomainError::UnknownDevice)?;
        let mut next = self.clone();
        let removed = next.devices.remove(i);
        let info = removed.info();
        Ok(Transition::new(next, true, info.clone())
            .event(AuditKind::DeviceRevoked {
                device: info.id.clone(),
            })
            .notice(Notice::DevicesRemoved {
                labels: vec![info.label],
            }))
    }

    /// Revokes every trusted device; the outcome is how many there were (expired ones
    /// included). No notice or event when there were none.
    pub fn revoke_all_devices(&self) -> Transition<usize> {
        if self.devices.is_empty() {
            return Transition::new(self.clone(), false, 0);
        }
        let mut next = self.clone();
        let labels: Vec<String> = next.devices.drain(..).map(|d| d.label).collect();
        let count = labels.len();
        Transition::new(next, true, count)
            .event(AuditKind::AllDevicesRevoked { count })
            .notice(Notice::DevicesRemoved { labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::crypto::{FailingRng, TestRng};

    fn record_with_devices(n: usize) -> (TwoFactorRecord, Vec<DeviceToken>) {
        let mut r = TwoFactorRecord::default();
        let s = Settings::default();
        let mut rng = TestRng(3);
        let tokens = (0..n)
            .map(|i| {
                r.trust_device(1_000 + i as u64, &format!("device {i}"), &s, &mut rng)
                    .unwrap()
                    .0
            })
            .collect();
        (r, tokens)
    }

    #[test]
    fn token_is_found_until_expiry_only() {
        let (r, tokens) = record_with_devices(2);
        let ttl = Settings::default().trusted_device_ttl();
        let t = &tokens[1];
        assert_eq!(t.expose_secret().len(), 64);
        assert_eq!(t.expires_at(), 1_001 + ttl);
        assert_eq!(r.find_device(t.expose_secret(), 1_001), Some(1));
        assert_eq!(
            r.find_device(&t.expose_secret().to_uppercase(), 1_001),
            Some(1)
        );
        assert_eq!(r.find_device(t.expose_secret(), 1_000 + ttl), Some(1));
        assert_eq!(r.find_device(t.expose_secret(), 1_001 + ttl), None);
        assert_eq!(r.find_device("not a token", 1_001), None);
        assert_eq!(r.find_device(&"0".repeat(64), 1_001), None);
        // Only the digest is stored.
        let dbg = format!("{r:?} {t:?} {:?}", r.devices);
        assert!(!dbg.contains(t.expose_secret()));
        assert_eq!(r.trusted_devices(1_000 + ttl).len(), 1);
        assert_eq!(r.trusted_devices(1_001 + ttl).len(), 0);
    }

    #[test]
    fn least_recently_used_is_dropped_beyond_the_limit() {
        let s = Settings::builder().max_trusted_devices(2).build().unwrap();
        let mut r = TwoFactorRecord::default();
        let mut rng = TestRng(4);
        let a = r.trust_device(10, "a", &s, &mut rng).unwrap().0;
        let _b = r.trust_device(20, "b", &s, &mut rng).unwrap();
        r.devices[0].last_used_at = Some(30); // a used after b was created
        let _c = r.trust_device(40, "c", &s, &mut rng).unwrap();
        let labels: Vec<_> = r.trusted_devices(40).into_iter().map(|d| d.label).collect();
        assert_eq!(labels, ["a", "c"]);
        assert!(r.find_device(a.expose_secret(), 40).is_some());
        assert_eq!(
            r.clone()
                .trust_device(50, "d", &s, &mut FailingRng)
                .unwrap_err(),
            DomainError::Rng
        );
    }

    #[test]
    fn labels_are_cleaned() {
        assert_eq!(clean_label("  "), "unnamed device");
        assert_eq!(clean_label("a\u{7}b"), "ab");
        assert_eq!(clean_label(&"x".repeat(500)).len(), MAX_LABEL_CHARS);
    }

    #[test]
    fn revoke_one_and_all() {
        let (r, tokens) = record_with_devices(3);
        let id = tokens[0].id().clone();
        assert_eq!(
            r.revoke_device(&DeviceId::new("nope")).unwrap_err(),
            DomainError::UnknownDevice
        );
        let t = r.revoke_device(&id).unwrap();
        assert_eq!(t.outcome().label, "device 0");
        assert_eq!(t.record().devices.len(), 2);
        assert_eq!(t.events(), &[AuditKind::DeviceRevoked { device: id }]);
        let all = t.record().revoke_all_devices();
        assert_eq!(*all.outcome(), 2);
        assert!(all.record().devices.is_empty());
        let none = all.record().revoke_all_devices();
        assert!(!none.is_changed());
        assert!(none.events().is_empty());
    }
}
