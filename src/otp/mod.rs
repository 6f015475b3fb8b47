//! RFC 4226 (HOTP) and RFC 6238 (TOTP): the math, the code type and the secret.
//!
//! Stateless and I/O-free: time and the last accepted step are passed in, results come back.
//! Verification keys the HMAC once per call, checks every step in the window in constant time,
//! returns the matched step (the base of replay protection) and allocates nothing.

mod code;
mod hotp;
mod secret;
mod totp;

pub use code::{Code, CodeError};
pub use hotp::{DEFAULT_LOOK_AHEAD, Hotp, MAX_LOOK_AHEAD};
pub use secret::{
    DEFAULT_SECRET_BYTES, MAX_SECRET_BYTES, MIN_GENERATED_SECRET_BYTES, Secret, SecretError,
    SecretStrength,
};
pub use totp::{DEFAULT_PERIOD, DEFAULT_SKEW, MAX_SKEW, MIN_PERIOD, Totp, TotpBuilder};

use core::fmt;
use core::str::FromStr;

use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroize;

/// The default number of digits in a code (what every authenticator app supports).
pub const DEFAULT_DIGITS: u8 = 6;
/// The fewest digits allowed (RFC 4226 §5.3: at least 6).
pub const MIN_DIGITS: u8 = 6;
/// The most digits allowed (a 31-bit truncated value has at most 10, apps support 8).
pub const MAX_DIGITS: u8 = 8;

/// The HMAC hash function.
///
/// SHA-1 is the default because every authenticator app supports it; HMAC-SHA-1 remains sound
/// for this use (collision attacks on SHA-1 do not apply to HMAC). SHA-256 and SHA-512 are
/// defined by RFC 6238, but some apps silently ignore the `algorithm` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Algorithm {
    /// HMAC-SHA-1 (the default).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs: `SHA1`, `SHA256` or `SHA512`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is not SHA1, SHA256 or SHA512.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?}: expected SHA1, SHA256 or SHA512")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Case-insensitive, with or without a hyphen (`sha1`, `SHA-256`, ...).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let matches = |name: &str| {
            t.eq_ignore_ascii_case(name)
                || t.len() == name.len() + 1
                    && t.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("SHA"))
                    && t.get(3..4) == Some("-")
                    && t.get(4..).is_some_and(|rest| rest == &name[3..])
        };
        if matches("SHA1") {
            Ok(Algorithm::Sha1)
        } else if matches("SHA256") {
            Ok(Algorithm::Sha256)
        } else if matches("SHA512") {
            Ok(Algorithm::Sha512)
        } else {
            Err(UnknownAlgorithm(s.to_owned()))
        }
    }
}

/// Invalid OTP parameters (digits, period, skew, look-ahead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// Digits outside [`MIN_DIGITS`]..=[`MAX_DIGITS`].
    #[error("digits must be between {MIN_DIGITS} and {MAX_DIGITS}, got {0}")]
    Digits(u32),
    /// A period below [`MIN_PERIOD`] second.
    #[error("period must be at least {MIN_PERIOD} second, got {0}")]
    Period(u64),
    /// A skew above [`MAX_SKEW`] steps.
    #[error("skew must be at most {MAX_SKEW} steps, got {0}")]
    Skew(u32),
    /// A look-ahead above [`MAX_LOOK_AHEAD`] counters.
    #[error("look-ahead must be at most {MAX_LOOK_AHEAD}, got {0}")]
    LookAhead(u32),
}

pub(crate) fn check_digits(digits: u32) -> Result<u8, ParamsError> {
    match u8::try_from(digits) {
        Ok(d) if (MIN_DIGITS..=MAX_DIGITS).contains(&d) => Ok(d),
        _ => Err(ParamsError::Digits(digits)),
    }
}

/// Why a submitted code was not accepted.
///
/// Hosts should show every variant to the user as the same "invalid code" message (an attacker
/// learns nothing from the difference); audit logs keep the distinction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The input is not a code of the expected shape.
    #[error("malformed code: {0}")]
    Malformed(#[from] CodeError),
    /// Well-formed, but no step (or counter) in the window produces it.
    #[error("invalid code")]
    Invalid,
    /// The code is valid for a step at or below the last accepted one: a replay.
    #[error("code already used")]
    Replayed,
}

const POW10: [u32; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// RFC 4226 §5.3 dynamic truncation of an HMAC output, reduced to `digits` digits.
fn truncate(mac: &[u8], digits: u8) -> u32 {
    // HMAC outputs are 20, 32 or 64 bytes; the offset is at most 15, so offset + 3 < 20.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    // Constant divisors for the digit counts in use compile to multiplications.
    match digits {
        6 => bin % 1_000_000,
        7 => bin % 10_000_000,
        8 => bin % 100_000_000,
        _ => bin % POW10[usize::from(digits)],
    }
}

/// A hash function seen through its compression function: all HMAC needs for the short,
/// fixed-shape messages of HOTP.
///
/// HOTP hashes `K ^ ipad || counter` and `K ^ opad || inner hash`. Both messages fit in one
/// block after the pad block, so with the two pad blocks compressed once per key, each counter
/// costs exactly two compressions and no buffering. This is HMAC (RFC 2104) computed the way
/// its §4 suggests ("precompute the intermediate results"), checked against the RFC 4226 and
/// RFC 6238 vectors, the `hmac` crate, oathtool and pyotp in the tests.
trait BlockHash {
    /// The chaining value.
    type State: Copy + Zeroize;
    /// One input block.
    type Block: Copy + Zeroize + AsRef<[u8]> + AsMut<[u8]>;
    /// The initial chaining value (FIPS 180-4 §5.3).
    const INITIAL: Self::State;
    /// An all-zero block.
    const ZERO_BLOCK: Self::Block;
    /// The digest length in bytes.
    const OUTPUT_LEN: usize;
    /// Runs the compression function over one block.
    fn compress(state: &mut Self::State, block: &Self::Block);
    /// Writes the chaining value big-endian into `out` (`OUTPUT_LEN` bytes).
    fn write_output(state: &Self::State, out: &mut [u8]);
    /// The whole hash of `data` into `out` (`OUTPUT_LEN` bytes): for keys longer than a block.
    fn digest(data: &[u8], out: &mut [u8]);
}

struct Sha1;
struct Sha256;
struct Sha512;

impl BlockHash for Sha1 {
    type State = [u32; 5];
    type Block = [u8; 64];
    const INITIAL: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];
    const ZERO_BLOCK: [u8; 64] = [0; 64];
    const OUTPUT_LEN: usize = 20;
    fn compress(state: &mut [u32; 5], block: &[u8; 64]) {
        sha1::block_api::compress(state, core::slice::from_ref(block));
    }
    fn write_output(state: &[u32; 5], out: &mut [u8]) {
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
    }
    fn digest(data: &[u8], out: &mut [u8]) {
        let mut hash = <sha1::Sha1 as sha1::Digest>::digest(data);
        out.copy_from_slice(&hash);
        hash.as_mut_slice().zeroize();
    }
}

impl BlockHash for Sha256 {
    type State = [u32; 8];
    type Block = [u8; 64];
    const INITIAL: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    const ZERO_BLOCK: [u8; 64] = [0; 64];
    const OUTPUT_LEN: usize = 32;
    fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
        sha2::block_api::compress256(state, core::slice::from_ref(block));
    }
    fn write_output(state: &[u32; 8], out: &mut [u8]) {
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
    }
    fn digest(data: &[u8], out: &mut [u8]) {
        let mut hash = <sha2::Sha256 as sha2::Digest>::digest(data);
        out.copy_from_slice(&hash);
        hash.as_mut_slice().zeroize();
    }
}

impl BlockHash for Sha512 {
    type State = [u64; 8];
    type Block = [u8; 128];
    const INITIAL: [u64; 8] = [
        0x6a09_e667_f3bc_c908,
        0xbb67_ae85_84ca_a73b,
        0x3c6e_f372_fe94_f82b,
        0xa54f_f53a_5f1d_36f1,
        0x510e_527f_ade6_82d1,
        0x9b05_688c_2b3e_6c1f,
        0x1f83_d9ab_fb41_bd6b,
        0x5be0_cd19_137e_2179,
    ];
    const ZERO_BLOCK: [u8; 128] = [0; 128];
    const OUTPUT_LEN: usize = 64;
    fn compress(state: &mut [u64; 8], block: &[u8; 128]) {
        sha2::block_api::compress512(state, core::slice::from_ref(block));
    }
    fn write_output(state: &[u64; 8], out: &mut [u8]) {
        for (chunk, word) in out.chunks_exact_mut(8).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
    }
    fn digest(data: &[u8], out: &mut [u8]) {
        let mut hash = <sha2::Sha512 as sha2::Digest>::digest(data);
        out.copy_from_slice(&hash);
        hash.as_mut_slice().zeroize();
    }
}

/// HMAC keyed once, laid out so that a counter costs two compressions and nothing else.
///
/// `inner` and `outer` are the chaining values after the `K ^ ipad` and `K ^ opad` blocks.
/// `counter_block` is the inner message block, padded once: only its first 8 bytes (the public
/// counter) change. `digest_block` is the outer message block, padded once: only its first
/// `OUTPUT_LEN` bytes (the inner hash, then the MAC) change. Everything derived from the key
/// (`inner`, `outer`, `work`, `digest_block`) is wiped once, on drop.
struct KeyedHmac<H: BlockHash> {
    inner: H::State,
    outer: H::State,
    work: H::State,
    digest_block: H::Block,
    counter_block: H::Block,
}

impl<H: BlockHash> KeyedHmac<H> {
    fn new(key: &[u8]) -> Self {
        let mut hmac = Self {
            inner: H::INITIAL,
            outer: H::INITIAL,
            work: H::INITIAL,
            digest_block: H::ZERO_BLOCK,
            counter_block: H::ZERO_BLOCK,
        };
        // The padded key is built in place (in `digest_block`, wiped on drop), never in a copy
        // that would escape the wipe.
        let block: &mut [u8] = hmac.digest_block.as_mut();
        let block_len = block.len();
        if key.len() > block_len {
            // RFC 2104 §2: keys longer than a block are hashed first (once per keying, with
            // no allocation). Secrets up to MAX_SECRET_BYTES reach this for SHA-1 and SHA-256
            // above 64 bytes, for SHA-512 above 128.
            H::digest(key, &mut block[..H::OUTPUT_LEN]);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        block.iter_mut().for_each(|b| *b ^= 0x36);
        H::compress(&mut hmac.inner, &hmac.digest_block);
        let block: &mut [u8] = hmac.digest_block.as_mut();
        block.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
        H::compress(&mut hmac.outer, &hmac.digest_block);
        // Now the two message blocks, with their Merkle–Damgård padding.
        let block: &mut [u8] = hmac.digest_block.as_mut();
        block.fill(0);
        block[H::OUTPUT_LEN] = 0x80;
        put_bit_length(block, block_len + H::OUTPUT_LEN);
        let block: &mut [u8] = hmac.counter_block.as_mut();
        block[8] = 0x80;
        put_bit_length(block, block_len + 8);
        hmac
    }

    /// The truncated HOTP value for `counter`: two compressions, no allocation.
    fn value_at(&mut self, counter: u64, digits: u8) -> u32 {
        // Inner: H(K ^ ipad || counter).
        self.counter_block.as_mut()[..8].copy_from_slice(&counter.to_be_bytes());
        self.work = self.inner;
        H::compress(&mut self.work, &self.counter_block);
        // Outer: H(K ^ opad || inner hash).
        H::write_output(&self.work, &mut self.digest_block.as_mut()[..H::OUTPUT_LEN]);
        self.work = self.outer;
        H::compress(&mut self.work, &self.digest_block);
        let mac = &mut self.digest_block.as_mut()[..H::OUTPUT_LEN];
        H::write_output(&self.work, mac);
        truncate(mac, digits)
    }
}

/// Writes the Merkle–Damgård length field (in bits, big-endian) at the end of the last block.
/// SHA-512's field is 128 bits; its upper half stays zero for these short messages.
fn put_bit_length(block: &mut [u8], message_bytes: usize) {
    let n = block.len();
    let bits = (message_bytes as u64) * 8;
    block[n - 8..].copy_from_slice(&bits.to_be_bytes());
}

impl<H: BlockHash> Drop for KeyedHmac<H> {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
        self.work.zeroize();
        self.digest_block.zeroize();
        // `counter_block` holds only the public counter and padding.
    }
}

/// One HOTP value for `counter`.
pub(crate) fn hotp_value(algorithm: Algorithm, key: &[u8], counter: u64, digits: u8) -> u32 {
    match algorithm {
        Algorithm::Sha1 => KeyedHmac::<Sha1>::new(key).value_at(counter, digits),
        Algorithm::Sha256 => KeyedHmac::<Sha256>::new(key).value_at(counter, digits),
        Algorithm::Sha512 => KeyedHmac::<Sha512>::new(key).value_at(counter, digits),
    }
}

/// Checks `code` against every counter in `first..=last` (at most `MAX_SKEW * 2 + 1` values,
/// enforced by callers), in constant time with respect to which counter matched.
///
/// Returns the highest matching counter above `used`. Counters `<= used` are still computed
/// (so timing does not depend on them) and only turn a miss into [`VerifyError::Replayed`].
pub(crate) fn scan_window(
    algorithm: Algorithm,
    key: &[u8],
    code: u32,
    digits: u8,
    first: u64,
    last: u64,
    used: Option<u64>,
) -> Result<u64, VerifyError> {
    scan_window_ct(algorithm, key, code, digits, first, last, |_| true, used).into_result()
}

/// What a constant-time scan found, still as [`subtle::Choice`]s so that callers can combine
/// several scans (one per authenticator) without branching on any of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanHit {
    /// A fresh step (above the last used one) matched.
    pub(crate) fresh: subtle::Choice,
    /// The highest fresh matching step (meaningless unless `fresh`).
    pub(crate) step: u64,
    /// Only used steps matched.
    pub(crate) replay: subtle::Choice,
}

impl ScanHit {
    /// Nothing found (the start of a combination).
    pub(crate) fn none() -> Self {
        ScanHit {
            fresh: subtle::Choice::from(0),
            step: 0,
            replay: subtle::Choice::from(0),
        }
    }

    /// The verdict: branches on the result only.
    pub(crate) fn into_result(self) -> Result<u64, VerifyError> {
        if bool::from(self.fresh) {
            Ok(self.step)
        } else if bool::from(self.replay) {
            Err(VerifyError::Replayed)
        } else {
            Err(VerifyError::Invalid)
        }
    }
}

/// [`scan_window`] without the verdict: every counter in `first..=last` is computed; those
/// for which `accept` (a function of public values: the counter and the window) says no never
/// match. Combine the hits of several secrets before looking at any.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan_window_ct(
    algorithm: Algorithm,
    key: &[u8],
    code: u32,
    digits: u8,
    first: u64,
    last: u64,
    accept: impl Fn(u64) -> bool,
    used: Option<u64>,
) -> ScanHit {
    match algorithm {
        Algorithm::Sha1 => scan::<Sha1>(key, code, digits, first, last, &accept, used),
        Algorithm::Sha256 => scan::<Sha256>(key, code, digits, first, last, &accept, used),
        Algorithm::Sha512 => scan::<Sha512>(key, code, digits, first, last, &accept, used),
    }
}

fn scan<H: BlockHash>(
    key: &[u8],
    code: u32,
    digits: u8,
    first: u64,
    last: u64,
    accept: &dyn Fn(u64) -> bool,
    used: Option<u64>,
) -> ScanHit {
    let mut hmac = KeyedHmac::<H>::new(key);
    let mut fresh_found = subtle::Choice::from(0);
    let mut fresh_step = 0u64;
    let mut replay_found = subtle::Choice::from(0);
    let (has_used, used_step) = match used {
        Some(s) => (subtle::Choice::from(1), s),
        None => (subtle::Choice::from(0), 0),
    };
    let mut counter = first;
    loop {
        let in_window = subtle::Choice::from(u8::from(accept(counter)));
        let hit = hmac.value_at(counter, digits).ct_eq(&code) & in_window;
        // Fresh when there is no last-used step or this counter is above it.
        let fresh = !has_used | counter.ct_gt(&used_step);
        let fresh_hit = hit & fresh;
        // Counters ascend, so the last fresh hit is the highest one.
        fresh_step.conditional_assign(&counter, fresh_hit);
        fresh_found |= fresh_hit;
        replay_found |= hit & !fresh;
        if counter >= last {
            break;
        }
        counter += 1;
    }
    ScanHit {
        fresh: fresh_found,
        step: fresh_step,
        replay: replay_found & !fresh_found,
    }
}
