//! Trusted-device cookies, framework-neutral: the cookie's name, its `Set-Cookie` header
//! values, and finding the token in a request's `Cookie` header.
//!
//! - **Name**: `__Host-2fa-device-<16 hex digits>`, one per user: two accounts on one browser
//!   keep a cookie each instead of overwriting each other's. The suffix is a hash of the user
//!   id, not the id. Take the helper from the service,
//!   [`TwoFactor::device_cookie`](crate::TwoFactor::device_cookie): its names are keyed with
//!   the service's cookie-name key, so they do not confirm a username to someone who can list
//!   user ids ([`DeviceCookie::new`] is unkeyed). The `__Host-` prefix makes the browser refuse
//!   the cookie unless it is `Secure`, host-only and `Path=/`, so a sibling subdomain cannot
//!   plant or shadow it; it also means the cookie needs HTTPS (over plain HTTP the browser
//!   drops it, `localhost` aside in most browsers, and every login asks for a code).
//! - **Attributes**: `Path=/; Max-Age=<seconds left>; HttpOnly; Secure; SameSite=Lax`.
//!   `Max-Age` comes from the token's own dates, set by the service's clock
//!   ([`DeviceToken::issued_at`], [`DeviceToken::expires_at`]): the host never reads a clock.
//! - **Deleting**: when [`LoginDecision::forget_device_cookie`] says the presented token was
//!   not accepted (expired, revoked, another user's, garbage), send
//!   [`DeviceCookie::removal_header`].
//!
//! ```
//! use twofactor::cookie::DeviceCookie;
//! use twofactor::UserId;
//!
//! let cookies = DeviceCookie::new();
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
//! ```
//!
//! [`DeviceToken::issued_at`]: crate::account::DeviceToken::issued_at
//! [`DeviceToken::expires_at`]: crate::account::DeviceToken::expires_at
//! [`LoginDecision::forget_device_cookie`]: crate::account::LoginDecision::forget_device_cookie

use core::fmt;

use zeroize::Zeroizing;

use crate::account::crypto::{digest, hex};
use crate::account::{DeviceToken, UserId};

/// The start of every device cookie's name.
pub const COOKIE_NAME_PREFIX: &str = "__Host-2fa-device-";
/// Hex digits of the per-user suffix of a cookie's name (64 bits: two accounts on one
/// browser do not collide).
pub const COOKIE_NAME_SUFFIX_LEN: usize = 16;
/// Characters in a device token as issued (256 bits in hex): the only cookie values accepted.
pub const DEVICE_TOKEN_LEN: usize = 64;

const NAME_LABEL: &str = "twofactor device cookie name v1";
const ATTRIBUTES: &str = "Path=/; HttpOnly; Secure; SameSite=Lax";

/// Names, sets, deletes and finds trusted-device cookies. Cheap to build; keep one in the
/// application state or build one per request.
///
/// `Debug` does not show the name key.
#[derive(Clone, Default)]
pub struct DeviceCookie {
    name_key: Zeroizing<Vec<u8>>,
}

impl DeviceCookie {
    /// Cookies named with an unkeyed hash of the user id.
    ///
    /// ```
    /// use twofactor::{UserId, cookie::DeviceCookie};
    /// let name = DeviceCookie::new().name_for(&UserId::new("alice"));
    /// assert!(name.starts_with("__Host-2fa-device-"));
    /// assert!(!name.contains("alice"));
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cookies named with a hash keyed by `key` (any application secret, at least 16 random
    /// bytes): the name then tells nothing about the user even to someone who can list the
    /// user ids. Changing the key renames every cookie, so existing devices are asked for a
    /// code once more.
    ///
    /// ```
    /// use twofactor::{UserId, cookie::DeviceCookie};
    /// let alice = UserId::new("alice");
    /// let keyed = DeviceCookie::with_name_key(b"0123456789abcdef");
    /// assert_ne!(keyed.name_for(&alice), DeviceCookie::new().name_for(&alice));
    /// ```
    #[must_use]
    pub fn with_name_key(key: impl AsRef<[u8]>) -> Self {
        DeviceCookie {
            name_key: Zeroizing::new(key.as_ref().to_vec()),
        }
    }

    /// The cookie name for `user`: `__Host-2fa-device-` and 16 hex digits, stable for the
    /// user (and name key).
    #[must_use]
    pub fn name_for(&self, user: &UserId) -> String {
        let d = digest(NAME_LABEL, &self.name_key, user.as_str().as_bytes());
        let mut name = String::with_capacity(COOKIE_NAME_PREFIX.len() + COOKIE_NAME_SUFFIX_LEN);
        name.push_str(COOKIE_NAME_PREFIX);
        name.push_str(&hex(&d.0[..COOKIE_NAME_SUFFIX_LEN / 2]));
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
    /// let cookies = DeviceCookie::new();
    /// let alice = UserId::new("alice");
    /// let token = "ab".repeat(32);
    /// let header = format!("theme=dark; {}={token}", cookies.name_for(&alice));
    /// assert_eq!(cookies.token_from_header(&header, &alice), Some(token.as_str()));
    /// assert_eq!(cookies.token_from_header(&header, &UserId::new("bob")), None);
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
        f.debug_struct("DeviceCookie")
            .field("keyed", &!self.name_key.is_empty())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_per_user_stable_and_opaque() {
        let c = DeviceCookie::new();
        let a = c.name_for(&UserId::new("alice"));
        let b = c.name_for(&UserId::new("bob"));
        assert_ne!(a, b);
        assert_eq!(a, c.name_for(&UserId::new("alice")));
        assert_eq!(a.len(), COOKIE_NAME_PREFIX.len() + COOKIE_NAME_SUFFIX_LEN);
        let suffix = &a[COOKIE_NAME_PREFIX.len()..];
        assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!a.contains("alice"));
        // Keyed names differ from unkeyed ones and between keys.
        let k1 = DeviceCookie::with_name_key(b"key one key one!");
        let k2 = DeviceCookie::with_name_key(b"key two key two!");
        assert_ne!(k1.name_for(&UserId::new("alice")), a);
        assert_ne!(
            k1.name_for(&UserId::new("alice")),
            k2.name_for(&UserId::new("alice"))
        );
        assert!(!format!("{k1:?}").contains("key one"));
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
        let c = DeviceCookie::new();
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
        let c = DeviceCookie::new();
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
        let c = DeviceCookie::new();
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
