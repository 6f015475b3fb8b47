//! Login tickets as an attacker sees them: the claims of a [`PendingLogin`] decoded from its
//! sealed string, edited, and written back under the **original** MAC (or under a key of the
//! attacker's choosing), then parsed with `str::parse` (which checks only the form, as a host
//! reading its cookie does). Every call that takes such a ticket must refuse it with
//! `Error::InvalidTicket` before anything is loaded.
//!
//! The layout mirrors `src/account/ticket.rs` (`hex(payload) "." hex(mac)`, payload
//! `version, kind, principal, password_checked_at, expires_at, step, generation, nonce`);
//! [`Claims::decode`] followed by [`Claims::encode`] reproduces a real ticket byte for byte
//! (checked by [`reencode`]), so a test that edits a field edits exactly that field.

use std::collections::BTreeSet;

use twofactor::PendingLogin;

/// The step byte and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `1`: the factor bytes (TOTP 1, recovery code 2, mailed code 3, trusted device 4).
    SecondFactor(Vec<u8>),
    /// `2`: the mailed code's expiry.
    MailedCode(u64),
    /// `3`.
    Enrollment,
}

/// Factor bytes of [`Step::SecondFactor`].
pub const TOTP: u8 = 1;
pub const RECOVERY_CODE: u8 = 2;
pub const MAILED_CODE: u8 = 3;
pub const TRUSTED_DEVICE: u8 = 4;

/// The claims of a login ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: String,
    pub roles: BTreeSet<String>,
    pub tenant: Option<String>,
    pub superuser: bool,
    pub created_at: Option<u64>,
    pub password_checked_at: u64,
    pub expires_at: u64,
    pub step: Step,
    pub generation: u64,
    pub nonce: [u8; 16],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> usize {
        let b = self.take(2);
        usize::from(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn string(&mut self) -> String {
        let n = self.u16();
        String::from_utf8(self.take(n).to_vec()).expect("utf-8")
    }
    fn opt_u64(&mut self) -> Option<u64> {
        (self.u8() == 1).then(|| self.u64())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).expect("short").to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_be_bytes());
        }
        None => out.push(0),
    }
}

impl Claims {
    /// Decodes the claims of `pending` (its sealed string).
    pub fn decode(pending: &PendingLogin) -> (Claims, Vec<u8>) {
        let (payload, mac) = pending.as_str().split_once('.').expect("payload.mac");
        let payload = unhex(payload);
        assert_eq!(&payload[..2], &[1, 1], "version 1, a login ticket");
        let mut r = Reader(&payload[2..]);
        let user = r.string();
        let roles = (0..r.u16()).map(|_| r.string()).collect();
        let tenant = (r.u8() == 1).then(|| r.string());
        let superuser = r.u8() == 1;
        let created_at = r.opt_u64();
        let password_checked_at = r.u64();
        let expires_at = r.u64();
        let step = match r.u8() {
            1 => {
                let n = usize::from(r.u8());
                Step::SecondFactor(r.take(n).to_vec())
            }
            2 => Step::MailedCode(r.u64()),
            3 => Step::Enrollment,
            other => panic!("step {other}"),
        };
        let generation = r.u64();
        let nonce = r.take(16).try_into().expect("nonce");
        assert!(r.0.is_empty(), "trailing bytes");
        let claims = Claims {
            user,
            roles,
            tenant,
            superuser,
            created_at,
            password_checked_at,
            expires_at,
            step,
            generation,
            nonce,
        };
        (claims, unhex(mac))
    }

    /// The canonical payload of these claims.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![1u8, 1];
        put_str(&mut out, &self.user);
        out.extend_from_slice(&u16::try_from(self.roles.len()).unwrap().to_be_bytes());
        for role in &self.roles {
            put_str(&mut out, role);
        }
        match &self.tenant {
            Some(t) => {
                out.push(1);
                put_str(&mut out, t);
            }
            None => out.push(0),
        }
        out.push(u8::from(self.superuser));
        put_opt_u64(&mut out, self.created_at);
        out.extend_from_slice(&self.password_checked_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        match &self.step {
            Step::SecondFactor(methods) => {
                out.push(1);
                out.push(u8::try_from(methods.len()).unwrap());
                out.extend_from_slice(methods);
            }
            Step::MailedCode(at) => {
                out.push(2);
                out.extend_from_slice(&at.to_be_bytes());
            }
            Step::Enrollment => out.push(3),
        }
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    /// The token string of these claims under `mac`.
    pub fn token(&self, mac: &[u8]) -> String {
        format!("{}.{}", hex(&self.encode()), hex(mac))
    }
}

/// Decodes `pending` and encodes it again: the same string (the layout above is the crate's).
pub fn reencode(pending: &PendingLogin) -> String {
    let (claims, mac) = Claims::decode(pending);
    claims.token(&mac)
}

/// `pending` with its claims changed by `edit`, under its original MAC, read back as a host
/// reads its cookie (`str::parse`, which checks the form only). Panics if the edit does not
/// even parse (use [`edited_token`] to test that).
pub fn edited(pending: &PendingLogin, edit: impl FnOnce(&mut Claims)) -> PendingLogin {
    let token = edited_token(pending, edit);
    token
        .parse()
        .unwrap_or_else(|e| panic!("a well-formed edit parses: {e:?}"))
}

/// The token string of `pending` with its claims changed by `edit`, under its original MAC.
pub fn edited_token(pending: &PendingLogin, edit: impl FnOnce(&mut Claims)) -> String {
    assert_eq!(reencode(pending), pending.as_str(), "the layout changed");
    let (mut claims, mac) = Claims::decode(pending);
    edit(&mut claims);
    claims.token(&mac)
}

/// `pending` with one bit of its MAC flipped (claims unchanged).
pub fn with_flipped_mac(pending: &PendingLogin) -> PendingLogin {
    let (claims, mut mac) = Claims::decode(pending);
    mac[31] ^= 1;
    claims.token(&mac).parse().expect("well-formed")
}

/// Every class of edit an attacker holding `pending` (a second-factor challenge) can make,
/// each named: another user, roles, tenant, superuser, account age, a fresher or older
/// password check, a later deadline, other factors, a forged mailed-code or enrollment
/// (`MustEnroll`) step, another ticket generation (past a revocation), another nonce (past
/// single use), a flipped MAC bit.
pub fn every_edit(pending: &PendingLogin, victim: &str) -> Vec<(&'static str, PendingLogin)> {
    type Edit = Box<dyn FnOnce(&mut Claims)>;
    let victim = victim.to_owned();
    let edits: Vec<(&'static str, Edit)> = vec![
        ("another user", Box::new(move |c| c.user = victim)),
        (
            "another role",
            Box::new(|c| {
                c.roles.insert("break-glass".into());
            }),
        ),
        (
            "roles removed (or one given)",
            Box::new(|c| {
                if c.roles.is_empty() {
                    c.roles.insert("staff".into());
                } else {
                    c.roles.clear();
                }
            }),
        ),
        (
            "another tenant",
            Box::new(|c| c.tenant = Some("other".into())),
        ),
        (
            "tenant removed (or one given)",
            Box::new(|c| {
                c.tenant = match c.tenant {
                    Some(_) => None,
                    None => Some("acme".into()),
                }
            }),
        ),
        ("superuser", Box::new(|c| c.superuser = !c.superuser)),
        (
            "account age",
            Box::new(|c| c.created_at = Some(c.created_at.map_or(0, |t| t ^ 1))),
        ),
        (
            "a fresher password check",
            Box::new(|c| c.password_checked_at += 60),
        ),
        (
            "an older password check",
            Box::new(|c| c.password_checked_at -= 60),
        ),
        ("a later deadline", Box::new(|c| c.expires_at = u64::MAX)),
        (
            "a deadline one second later",
            Box::new(|c| c.expires_at += 1),
        ),
        (
            "TOTP only",
            Box::new(|c| c.step = Step::SecondFactor(vec![TOTP])),
        ),
        (
            "recovery codes only",
            Box::new(|c| c.step = Step::SecondFactor(vec![RECOVERY_CODE])),
        ),
        (
            "factors reordered",
            Box::new(|c| c.step = Step::SecondFactor(vec![RECOVERY_CODE, TOTP])),
        ),
        (
            "a forged mailed-code step",
            Box::new(|c| c.step = Step::MailedCode(u64::MAX)),
        ),
        (
            "a forged enrollment (MustEnroll) step (on one: a second-factor step)",
            Box::new(|c| {
                c.step = match c.step {
                    Step::Enrollment => Step::SecondFactor(vec![TOTP, RECOVERY_CODE]),
                    _ => Step::Enrollment,
                }
            }),
        ),
        (
            "an older generation",
            Box::new(|c| c.generation = c.generation.wrapping_sub(1)),
        ),
        ("a newer generation", Box::new(|c| c.generation += 1)),
        ("another nonce", Box::new(|c| c.nonce[0] ^= 1)),
    ];
    let mut out: Vec<(&'static str, PendingLogin)> = edits
        .into_iter()
        .map(|(what, edit)| (what, edited(pending, edit)))
        .collect();
    out.push(("a flipped MAC bit", with_flipped_mac(pending)));
    for (what, forged) in &out {
        assert_ne!(forged.as_str(), pending.as_str(), "{what}: not an edit");
    }
    out
}

/// The ticket generation a second-factor proof was issued under (the record's generation
/// then: a revocation or an administrator's reset makes it stale). Proof payload (version
/// 2): `version, kind 2, user, factor, verified_at, generation, claims, nonce`.
pub fn proof_generation(token: &str) -> u64 {
    let (payload, _) = token.split_once('.').expect("payload.mac");
    let payload = unhex(payload);
    assert_eq!(&payload[..2], &[2, 2], "version 2, a proof");
    let mut r = Reader(&payload[2..]);
    let _user = r.string();
    let _factor = r.u8();
    let _verified_at = r.u64();
    r.u64()
}

/// The nonce of `pending`'s ticket, hex (as rows of formats 3 to 6 listed used tickets).
pub fn nonce_hex(pending: &PendingLogin) -> String {
    hex(&Claims::decode(pending).0.nonce)
}

/// Whether a stored record (its JSON) still takes `pending` at `now`: open by its deadline,
/// issued under the record's current ticket generation, and not used: issued no earlier than
/// the ledger's `through` and not listed at it (format 7), nor listed as used by a row of an
/// older format.
pub fn usable(pending: &PendingLogin, record: &serde_json::Value, now: u64) -> bool {
    let (claims, _) = Claims::decode(pending);
    let t = &record["tickets"];
    let generation = t["generation"].as_u64().unwrap_or(0);
    let nonce = hex(&claims.nonce);
    let through = t["through"].as_u64().unwrap_or(0);
    let issued = claims.password_checked_at;
    let listed = |list: &serde_json::Value, key: Option<&str>| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|u| key.map_or(u, |k| &u[k]) == nonce.as_str()))
    };
    now < claims.expires_at
        && claims.generation == generation
        && issued >= through
        && !(issued == through && listed(&t["at_through"], None))
        && !listed(&t["used"], Some("nonce"))
}
