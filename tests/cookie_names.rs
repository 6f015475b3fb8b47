//! Trusted-device cookie names are keyed: an HMAC of the user id under the server's cookie
//! key, so a browser's cookies do not tell, to anyone holding a list of usernames, which
//! accounts use that browser.

#![allow(missing_docs)]

use std::collections::HashSet;

use sha2::Digest as _;
use twofactor::UserId;
use twofactor::account::ServiceKeys;
use twofactor::cookie::{COOKIE_NAME_PREFIX, COOKIE_NAME_SUFFIX_LEN, DeviceCookie};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name 8b57fda gave `user` without any key: `SHA-256("twofactor device cookie name v1"
/// || 0 || user id)`, 16 hex digits. Anyone can compute it.
fn offline_name(user: &UserId) -> String {
    let mut h = sha2::Sha256::new();
    h.update(b"twofactor device cookie name v1\0");
    h.update(user.as_str().as_bytes());
    format!("{COOKIE_NAME_PREFIX}{}", hex(&h.finalize()[..8]))
}

fn users() -> Vec<UserId> {
    let mut users: Vec<UserId> = (0..2_000)
        .map(|i| UserId::new(format!("user-{i:04}@example.com")))
        .collect();
    for odd in [
        "alice",
        "Ünïcode ✓ user",
        "0",
        "with;semicolon=and space",
        &"x".repeat(300),
    ] {
        users.push(UserId::new(odd));
    }
    users
}

/// The attack: from a list of usernames, compute every cookie name offline and match it
/// against a browser's cookies (a shared computer, a cookie dump) to learn which accounts use
/// it. Fails on 8b57fda, where names were unkeyed: this test cannot compile against that API
/// (`DeviceCookie::new()` took no key); replayed with it, `offline_name(user)` equals
/// `DeviceCookie::new().name_for(user)` for every user.
#[test]
fn cookie_names_cannot_be_computed_without_the_key() {
    let (ka, kb) = (
        ServiceKeys::derive(&[1; 32]).unwrap(),
        ServiceKeys::derive(&[2; 32]).unwrap(),
    );
    let (a, b) = (
        DeviceCookie::new(ka.cookie_key()),
        DeviceCookie::new(kb.cookie_key()),
    );
    let again = DeviceCookie::new(ServiceKeys::derive(&[1; 32]).unwrap().cookie_key());
    let mut seen = HashSet::new();
    let (mut differing_bits, mut compared_bits) = (0u32, 0u32);
    for user in users() {
        let name = a.name_for(&user);
        let suffix = name.strip_prefix(COOKIE_NAME_PREFIX).expect("the prefix");
        assert_eq!(suffix.len(), COOKIE_NAME_SUFFIX_LEN);
        assert!(
            suffix
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        // Stable under one key (every server, every request), another under another key.
        assert_eq!(name, again.name_for(&user));
        let other = b.name_for(&user);
        assert_ne!(name, other, "{user}");
        // Never what a list of usernames gives offline, never the id itself.
        assert_ne!(name, offline_name(&user), "{user}");
        if user.as_str().len() > 1 {
            assert!(!name.contains(user.as_str()), "{user}");
        }
        // Distinct users, distinct names (two accounts on one browser keep a cookie each).
        assert!(seen.insert(name.clone()), "collision for {user}");
        let (x, y) = (
            u64::from_str_radix(suffix, 16).unwrap(),
            u64::from_str_radix(&other[COOKIE_NAME_PREFIX.len()..], 16).unwrap(),
        );
        differing_bits += (x ^ y).count_ones();
        compared_bits += 64;
    }
    // Under two keys the names look independent: about half their bits differ.
    let ratio = f64::from(differing_bits) / f64::from(compared_bits);
    assert!((0.48..0.52).contains(&ratio), "{ratio}");
}

#[test]
fn cookie_names_match_between_the_keyring_and_a_direct_derivation() {
    #[cfg(feature = "seal")]
    {
        let ring = twofactor::seal::Keyring::new("k", &[3; 32]).unwrap();
        let direct = ServiceKeys::derive(&[3; 32]).unwrap();
        for user in users().iter().take(50) {
            assert_eq!(
                DeviceCookie::new(ring.service_keys().cookie_key()).name_for(user),
                DeviceCookie::new(direct.cookie_key()).name_for(user)
            );
        }
    }
}
