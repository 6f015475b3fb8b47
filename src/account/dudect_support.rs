//! Not public API: the internals `benches/dudect.rs` times, behind stable wrappers. Hidden
//! from the docs and exempt from semver; do not use.

use rand::rngs::SysRng;

use super::crypto::{CodeKey, CodeKeys};
use super::login::LoginContext;
use super::mailed::Sent;
use super::recovery::{RecoveryCodeSet, RecoveryInput, normalize};
use super::{Settings, TwoFactorRecord};

/// A parsed recovery code.
#[derive(Debug, Clone)]
pub struct RecoveryProbe(RecoveryInput);

/// A keyed recovery set of `count` codes, some of them used.
#[derive(Debug)]
pub struct RecoveryBench {
    set: RecoveryCodeSet,
    keys: CodeKeys,
    codes: Vec<String>,
}

impl RecoveryBench {
    /// `count` fresh codes under a random key; the entries in `used` consumed.
    ///
    /// # Panics
    /// If the operating system RNG fails (a bench, not an input path).
    #[must_use]
    #[allow(clippy::missing_panics_doc, clippy::expect_used)]
    pub fn new(count: usize, used: &[usize]) -> Self {
        let keys = CodeKeys {
            current: Some(CodeKey::random().expect("os rng")),
            old: Vec::new(),
        };
        let (mut set, plain) =
            RecoveryCodeSet::generate(0, count, &keys, &mut SysRng).expect("os rng");
        for &i in used {
            set.mark_used(i, 1);
        }
        let codes = plain
            .expose_secret()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        RecoveryBench { set, keys, codes }
    }

    /// The plain code at `i`.
    #[must_use]
    pub fn code(&self, i: usize) -> &str {
        self.codes.get(i).map_or("", String::as_str)
    }

    /// Parses a code; `None` if malformed.
    #[must_use]
    pub fn parse(input: &str) -> Option<RecoveryProbe> {
        normalize(input).ok().map(RecoveryProbe)
    }

    /// What `consume` computes before it writes: the keyed digest and the constant-time pass
    /// over every entry with the used flag folded in. Returns the pass's outcome byte.
    #[must_use]
    pub fn check(&self, probe: &RecoveryProbe) -> u8 {
        self.set
            .probe(&probe.0, &self.keys)
            .map_or(0xff, |(o, _)| o)
    }
}

/// A record waiting for a keyed mailed code.
#[derive(Debug)]
pub struct MailedBench {
    record: TwoFactorRecord,
    keys: CodeKeys,
    code: String,
}

impl MailedBench {
    /// A fresh mailed code under a random key.
    ///
    /// # Panics
    /// If the operating system RNG fails.
    #[must_use]
    #[allow(clippy::missing_panics_doc, clippy::expect_used, clippy::panic)]
    pub fn new() -> Self {
        let settings = Settings::builder()
            .code_key(CodeKey::random().expect("os rng"))
            .build()
            .expect("valid settings");
        let mut record = TwoFactorRecord::default();
        let code = match record
            .send_mailed_code(0, &LoginContext::default(), &settings, &mut SysRng)
            .expect("os rng")
        {
            Sent::New { notice, .. } => notice.expose_login_code().unwrap_or("").to_owned(),
            Sent::Throttled { .. } => panic!("first send throttled"),
        };
        // Delivered: the code is the record's mailed code.
        let send = record.code_send().expect("a code on its way");
        let record = record.mailed_code_sent(&send).record;
        MailedBench {
            record,
            keys: settings.code_keys,
            code,
        }
    }

    /// The code that was mailed.
    #[must_use]
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The comparison `check_mailed_code` makes (keyed digest, constant-time compare).
    #[must_use]
    pub fn check(&self, digits: &str) -> bool {
        self.record
            .mailed
            .as_ref()
            .and_then(|m| m.matches(digits, &self.keys).ok())
            .is_some_and(bool::from)
    }
}

impl Default for MailedBench {
    fn default() -> Self {
        Self::new()
    }
}

/// A record with trusted devices.
#[derive(Debug)]
pub struct DeviceBench {
    record: TwoFactorRecord,
    tokens: Vec<String>,
}

impl DeviceBench {
    /// `count` trusted devices.
    ///
    /// # Panics
    /// If the operating system RNG fails.
    #[must_use]
    #[allow(clippy::missing_panics_doc, clippy::expect_used)]
    pub fn new(count: usize) -> Self {
        let settings = Settings::builder()
            .max_trusted_devices(count.max(1))
            .build()
            .expect("valid settings");
        let mut record = TwoFactorRecord::default();
        let tokens = (0..count)
            .map(|i| {
                record
                    .trust_device(0, &format!("d{i}"), &settings, &mut SysRng)
                    .expect("os rng")
                    .0
                    .expose_secret()
                    .to_owned()
            })
            .collect();
        DeviceBench { record, tokens }
    }

    /// The token of device `i`.
    #[must_use]
    pub fn token(&self, i: usize) -> &str {
        self.tokens.get(i).map_or("", String::as_str)
    }

    /// `find_device`: the index of the device this token belongs to.
    #[must_use]
    pub fn check(&self, token: &str) -> Option<usize> {
        self.record.find_device(token, 1)
    }
}
