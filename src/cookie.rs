//! Trusted-device cookies, framework-neutral: the cookie's name, its `Set-Cookie` header
//! values, and finding the token in a request's `Cookie` header.
//!
//! - **Name**: `__Host-2fa-device-<16 hex digits>`, one per user: two accounts on one browser
//!   keep a cookie each instead of overwriting each other's. The suffix is an HMAC-SHA-256 of
//!   the user id under the server's [`CookieKey`] (from
//!   [`ServiceKeys::cookie_key`](crate::account::ServiceKeys::cookie_key)), truncated to 64
//!   bits: without the key, nobody can tell from a browser's cookies which account uses it,
//!   nor test a list of usernames against them. The `__Host-` prefix makes the browser refuse
//!   the cookie unless it is `Secure`, host-only and `Path=/`, so a sibling subdomain cannot
//!   plant or shadow it. Take the helper from the service,
//!   [`TwoFactor::device_cookie`](crate::TwoFactor::device_cookie), which holds the key.
//! - **Attributes**: `Path=/; Max-Age=<seconds left>; HttpOnly; Secure; SameSite=Lax`.
//!   `Max-Age` comes from the token's own dates, set by the service's clock
//!   ([`DeviceToken::issued_at`], [`DeviceToken::expires_at`]): the host never reads a clock.
//! - **Deleting**: when [`LoginDecision::forget_device_cookie`] says the presented token was
//!   not accepted (expired, revoked, another user's, garbage), send
//!   [`DeviceCookie::removal_header`].
//!
//! # HTTPS only (and localhost)
//!
//! A `Secure` cookie, and so every `__Host-` cookie, is stored and sent back only by a
//! *secure context*: a page served over HTTPS (a TLS-terminating proxy in front of the app
//! counts: the browser sees `https://`). Browsers also treat `http://localhost` and
//! `http://127.0.0.1` as trustworthy, so development on the loopback works (the web demo's
//! browser test checks it in Chromium). Served over plain HTTP from any other host, the
//! browser drops the cookie: trusted devices silently do not work, and a code is asked at
//! every login. That fails closed, and it is the only behaviour offered: there is no option
//! for a non-HTTPS deployment, because a device token sent in clear text is readable by
//! anyone on the path and, with the password, skips the second factor. Serve the login over
//! HTTPS.
//!
//! ```
//! use twofactor::account::ServiceKeys;
//! use twofactor::cookie::DeviceCookie;
//! use twofactor::UserId;
//!
//! let keys = ServiceKeys::derive(&[7u8; 32])?; // from your secret manager, or the keyring
//! let cookies = DeviceCookie::new(keys.cookie_key());
//! let alice = UserId::new("alice");
//! // In the login handler, after the password check:
//! let header = "theme=dark; __Host-2fa-device-0000000000000000=abc";
//! let token: Option<&str> = cookies.token_from_header(header, &alice);
//! assert_eq!(token, None); // no cookie for alice (and the other one is not hers)
//! // let decision = tf.start_login(&principal, token, &ctx).await?;
//! // if token.is_some() && decision.forget_device_cookie() {
//! //     response.append("Set-Cookie", cookies.removal_header(&alice));
//! // }
//! assert!(cookies.removal_header(&alice).contains("Max-Age=0"));
//! # Ok::<(), twofactor::account::DomainError>(())
//! ```
//!
//! [`DeviceToken::issued_at`]: crate::account::DeviceToken::issued_at
//! [`DeviceToken::expires_at`]: crate::account::DeviceToken::expires_at
//! [`LoginDecision::forget_device_cookie`]: crate::account::LoginDecision::forget_device_cookie

use core::fmt;

use crate::account::crypto::{hex, hmac_sha256};
use crate::account::{CookieKey, DeviceToken, UserId};

/// The start of every device cookie's name.
pub const COOKIE_NAME_PREFIX: &str = "__Host-2fa-device-";
/// Hex digits of the per-user suffix of a cookie's name (64 bits: two accounts on one
/// browser do not collide).
pub const COOKIE_NAME_SUFFIX_LEN: usize = 16;
/// Characters in a device token as issued (256 bits in hex): the only cookie values accepted.
pub const DEVICE_TOKEN_LEN: usize = 64;

/// The HMAC's domain label: `HMAC-SHA-256(cookie key, label || 0x00 || user id)`.
const NAME_LABEL: &[u8] = b"twofactor/device-cookie-name/v2";
const ATTRIBUTES: &str = "Path=/; HttpOnly; Secure; SameSite=Lax";

/// Names, sets, deletes and finds trusted-device cookies. Cheap to build; keep one in the
/// application state or build one per request.
///
/// `Debug` does not show the name key.
#[derive(Clone)]
pub struct DeviceCookie {
    name_key: CookieKey,
}

impl DeviceCookie {
    /// Cookies named with an HMAC of the user id under `key`
    /// ([`ServiceKeys::cookie_key`](crate::account::ServiceKeys::cookie_key)). Every app
    /// server must use the same key, or a browser's cookie is not found by the others (it is
    /// then ignored: a code is asked, nothing worse). Changing the key renames every cookie,
    /// so existing devices are asked for a code once more.
    ///
    /// ```
    /// use twofactor::account::ServiceKeys;
    /// use twofactor::{UserId, cookie::DeviceCookie};
    ///
    /// let keys = ServiceKeys::derive(&[7u8; 32])?;
    /// let name = DeviceCookie::new(keys.cookie_key()).name_for(&UserId::new("alice"));
    /// assert!(name.starts_with("__Host-2fa-device-"));
    /// assert!(!name.contains("alice"));
    /// // Another key, another name: without the key, the name cannot be computed.
    /// let other = ServiceKeys::derive(&[8u8; 32])?;
    /// assert_ne!(name, DeviceCookie::new(other.cookie_key()).name_for(&UserId::new("alice")));
    /// # Ok::<(), twofactor::account::DomainError>(())
    /// ```
    #[must_use]
    pub fn new(key: &CookieKey) -> Self {
        DeviceCookie {
            name_key: key.clone(),
        }
    }

    /// The cookie name for `user`: `__Host-2fa-device-` and 16 hex digits of
    /// `HMAC-SHA-256(key, "twofactor/device-cookie-name/v2" || 0x00 || user id)`, stable for
    /// the user and key.
    #[must_use]
    pub fn name_for(&self, user: &UserId) -> String {
        let mac = hmac_sha256(
            &self.name_key.0,
            &[NAME_LABEL, &[0u8], user.as_str().as_bytes()],
        );
        let mut name = String::with_capacity(COOKIE_NAME_PREFIX.len() + COOKIE_NAME_SUFFIX_LEN);
        name.push_str(COOKIE_NAME_PREFIX);
        name.push_str(&hex(&mac[..COOKIE_NAME_SUFFIX_LEN / 2]));
        name
    }

    /// The `Set-Cookie` header value for a token just issued (by `finish_login`), to send in
    /// the same response: `Max-Age` is the token's lifetime, from the service's clock.
    ///
    /// ```
    /// # use twofactor::account::{Factor, LoginContext, Reauthenticated};
    /// # use twofactor::{Clock, EnrollmentStatus, KeyUri, MemoryStore, Principal};
    /// # use twofactor::testing::ManualClock;
    /// # use twofactor::{Requirement, Totp, TwoFactor, UserId};
    /// # use twofactor::testing::RecordingMailer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let clock = ManualClock::new(1_700_000_000);
    /// # let policy = |_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::required();
    /// # let tf = TwoFactor::builder(MemoryStore::new())
    /// #     .mailer(RecordingMailer::new())
    /// #     .keys(twofactor::testing::test_keys())
    /// #     .policy(policy)
    /// #     .clock(&clock)
    /// #     .build();
    /// # let alice = UserId::new("alice");
    /// # let s = tf.start_enrollment(&Principal::new("alice"), "alice", Reauthenticated::at(clock.now())).await?;
    /// # let app = KeyUri::parse(s.uri())?.into_secret();
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// # tf.finish_enrollment(&alice, &code).await?;
    /// # clock.advance(30);
    /// # let code = Totp::default().generate(&app, clock.now()).to_string();
    /// let principal = Principal::new("alice");
    /// let ctx = LoginContext::new();
    /// # let pending = tf.start_login(&principal, None, &ctx).await?.into_pending().unwrap();
    /// let granted = tf
    ///     .finish_login(&pending, Factor::Totp(&code), Some("Firefox on Linux"), &ctx)
    ///     .await?;
    /// let token = granted.device_token.as_ref().expect("the policy allows trusted devices");
    /// let set_cookie = tf.device_cookie().set_cookie_header(&principal.user, token);
    /// // 90 days, whatever the host's clock says:
    /// assert!(set_cookie.ends_with("; Max-Age=7776000; Path=/; HttpOnly; Secure; SameSite=Lax"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn set_cookie_header(&self, user: &UserId, token: &DeviceToken) -> String {
        self.set_cookie_header_at(user, token, token.issued_at())
    }

    /// The `Set-Cookie` header value for `token` sent at `now` (Unix seconds, the service's
    /// clock): `Max-Age` is the time left, 0 (delete) for an expired token. Prefer
    /// [`DeviceCookie::set_cookie_header`] right after issuing.
    #[must_use]
    pub fn set_cookie_header_at(&self, user: &UserId, token: &DeviceToken, now: u64) -> String {
        let max_age = token.expires_at().saturating_sub(now);
        let value = token.expose_secret();
        // Tokens are issued as hex; never write anything else into a header.
        let value = if is_token(value) { value } else { "" };
        format!(
            "{}={value}; Max-Age={max_age}; {ATTRIBUTES}",
            self.name_for(user)
        )
    }

    /// The `Set-Cookie` header value that deletes `user`'s device cookie (`Max-Age=0`).
    #[must_use]
    pub fn removal_header(&self, user: &UserId) -> String {
        format!("{}=; Max-Age=0; {ATTRIBUTES}", self.name_for(user))
    }

    /// Finds `user`'s device token in a request's `Cookie` header value
    /// (`a=1; __Host-2fa-device-...=<token>`), to pass to `start_login`. Other users' device
    /// cookies and other cookies are ignored. A value that is not a token as issued (64 hex
    /// digits; one pair of double quotes allowed) is `None`, like a missing cookie: it never
    /// reaches the store.
    ///
    /// ```
    /// use twofactor::{UserId, cookie::DeviceCookie};
    /// let keys = twofactor::account::ServiceKeys::derive(&[7u8; 32])?;
    /// let cookies = DeviceCookie::new(keys.cookie_key());
    /// let alice = UserId::new("alice");
    /// let token = "ab".repeat(32);
    /// let header = format!("theme=dark; {}={token}", cookies.name_for(&alice));
    /// assert_eq!(cookies.token_from_header(&header, &alice), Some(token.as_str()));
    /// assert_eq!(cookies.token_from_header(&header, &UserId::new("bob")), None);
    /// # Ok::<(), twofactor::account::DomainError>(())
    /// ```
    #[must_use]
    pub fn token_from_header<'h>(&self, cookie_header: &'h str, user: &UserId) -> Option<&'h str> {
        let name = self.name_for(user);
        cookie_header
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(n, _)| n.trim() == name)
            .map(|(_, v)| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
            .find(|v| is_token(v))
    }
}

fn is_token(value: &str) -> bool {
    value.len() == DEVICE_TOKEN_LEN && value.bytes().all(|b| b.is_ascii_hexdigit())
}

impl fmt::Debug for DeviceCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCookie").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> CookieKey {
        crate::account::ServiceKeys::derive(&[byte; 32])
            .unwrap()
            .cookie_key()
            .clone()
    }

    fn cookies() -> DeviceCookie {
        DeviceCookie::new(&key(1))
    }

    #[test]
    fn names_are_per_user_stable_and_opaque() {
        let c = cookies();
        let a = c.name_for(&UserId::new("alice"));
        let b = c.name_for(&UserId::new("bob"));
        assert_ne!(a, b);
        assert_eq!(a, c.name_for(&UserId::new("alice")));
        assert_eq!(
            a,
            DeviceCookie::new(&key(1)).name_for(&UserId::new("alice"))
        );
        assert_eq!(a.len(), COOKIE_NAME_PREFIX.len() + COOKIE_NAME_SUFFIX_LEN);
        let suffix = &a[COOKIE_NAME_PREFIX.len()..];
        assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!a.contains("alice"));
        // The suffix is the HMAC under the cookie key (the reference HMAC agrees).
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key(1).0.as_slice()).unwrap();
        mac.update(b"twofactor/device-cookie-name/v2\0alice");
        assert_eq!(suffix, hex(&mac.finalize().into_bytes()[..8]));
        // Another key, other names; `Debug` shows no key.
        assert_ne!(
            DeviceCookie::new(&key(2)).name_for(&UserId::new("alice")),
            a
        );
        assert_eq!(format!("{c:?}"), "DeviceCookie { .. }");
    }

    #[test]
    fn max_age_comes_from_the_tokens_own_dates() {
        use crate::account::crypto::TestRng;
        use crate::account::{Settings, TwoFactorRecord};
        let settings = Settings::default();
        let ttl = settings.trusted_device_ttl();
        let issued = 1_700_000_000;
        let (token, _) = TwoFactorRecord::default()
            .trust_device(issued, "Firefox", &settings, &mut TestRng(7))
            .unwrap();
        let c = cookies();
        let alice = UserId::new("alice");
        let name = c.name_for(&alice);
        let secret = token.expose_secret();
        assert_eq!(
            c.set_cookie_header(&alice, &token),
            format!("{name}={secret}; Max-Age={ttl}; Path=/; HttpOnly; Secure; SameSite=Lax")
        );
        for (now, max_age) in [
            (issued + 100, ttl - 100),
            (issued + ttl - 1, 1),
            (issued + ttl, 0),
            (u64::MAX, 0),
            (0, issued + ttl),
        ] {
            assert!(
                c.set_cookie_header_at(&alice, &token, now)
                    .contains(&format!("; Max-Age={max_age}; ")),
                "{now}"
            );
        }
        // What it sets, the parser finds.
        let header = c.set_cookie_header(&alice, &token);
        let pair = header.split(';').next().unwrap();
        assert_eq!(c.token_from_header(pair, &alice), Some(secret));
    }

    #[test]
    fn removal_header_deletes_with_the_same_attributes() {
        let c = cookies();
        let alice = UserId::new("alice");
        assert_eq!(
            c.removal_header(&alice),
            format!(
                "{}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax",
                c.name_for(&alice)
            )
        );
    }

    #[test]
    fn token_from_header_rejects_what_is_not_a_token() {
        let c = cookies();
        let alice = UserId::new("alice");
        let name = c.name_for(&alice);
        let good = "0123456789abcdefABCDEF".repeat(3)[..DEVICE_TOKEN_LEN].to_owned();
        for (value, want) in [
            (good.clone(), Some(good.as_str())),
            (format!("\"{good}\""), Some(good.as_str())),
            (format!(" {good} "), Some(good.as_str())),
            (String::new(), None),
            (good[1..].to_owned(), None),
            (format!("{good}0"), None),
            (format!("{}g", &good[1..]), None),
            (format!("{}\r\nX: y", &good[..60]), None),
            ("\"\"".to_owned(), None),
        ] {
            let header = format!("a=b; {name}={value}; c=d");
            assert_eq!(c.token_from_header(&header, &alice), want, "{value:?}");
        }
        // Names must match exactly (no prefix or case games), and a missing '=' is skipped.
        let header = format!("{name}x={good}; {}={good}; {name}", name.to_lowercase());
        assert_eq!(c.token_from_header(&header, &alice), None);
        // Of two cookies with the name, the first valid one counts.
        let header = format!("{name}=bad; {name}={good}");
        assert_eq!(c.token_from_header(&header, &alice), Some(good.as_str()));
    }
}
