//! The checks behind the fuzz targets, one function per target.
//!
//! Shared with `tests/fuzz_corpus.rs` (included there with `#[path]`), which replays every file
//! of `fuzz/corpus/<target>/` through the same function on stable Rust. Each function must never
//! panic on any input except to report a broken invariant.

use twofactor::otp::MAX_SECRET_BYTES;
use twofactor::otp::{Algorithm, Code, CodeError, Hotp, VerifyError};
use twofactor::{KeyUri, Secret, Totp};

/// `uri_parse`: parsing never panics; whatever parses prints as a canonical URI that parses
/// back to the same value and prints identically again.
pub fn check_uri_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(key) = KeyUri::parse(&text) else {
        return;
    };
    let account = key.account();
    assert!(!account.is_empty(), "empty account accepted");
    assert_eq!(account.trim(), account, "untrimmed account");
    if let Some(issuer) = key.issuer() {
        assert!(!issuer.is_empty(), "empty issuer kept");
        assert_eq!(issuer.trim(), issuer, "untrimmed issuer");
    } else {
        assert!(!account.contains(':'), "ambiguous account accepted");
    }

    let uri = key.to_uri_string();
    assert!(uri.is_ascii(), "non-ASCII URI {:?}", uri.as_str());
    let again = match KeyUri::parse(&uri) {
        Ok(again) => again,
        Err(err) => panic!("canonical URI {:?} does not parse: {err:?}", uri.as_str()),
    };
    assert_eq!(again.account(), key.account());
    assert_eq!(again.issuer(), key.issuer());
    assert_eq!(again.kind(), key.kind());
    assert_eq!(again.secret().expose_secret(), key.secret().expose_secret());
    assert_eq!(again.to_uri_string().as_str(), uri.as_str());

    let debug = format!("{key:?}");
    assert!(
        debug.starts_with("KeyUri {") && debug.ends_with(".. }"),
        "unexpected Debug {debug}"
    );
}

/// `base32_decode`: decoding never panics; a decoded secret has 1 to `MAX_SECRET_BYTES` bytes, as many as its
/// symbols encode, and survives every printed form; raw bytes round-trip through base32.
pub fn check_base32_decode(data: &[u8]) {
    if let Ok(text) = core::str::from_utf8(data)
        && let Ok(secret) = Secret::from_base32(text)
    {
        let symbols = text.chars().filter(char::is_ascii_alphanumeric).count();
        assert_eq!(secret.len(), symbols * 5 / 8, "length for {text:?}");
        assert!((1..=MAX_SECRET_BYTES).contains(&secret.len()));
        let plain = secret.to_base32();
        assert!(
            plain
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "non-canonical base32"
        );
        for form in [
            plain.as_str().to_owned(),
            plain.to_ascii_lowercase(),
            secret.to_base32_grouped().as_str().to_owned(),
        ] {
            match Secret::from_base32(&form) {
                Ok(back) => assert_eq!(back.expose_secret(), secret.expose_secret()),
                Err(err) => panic!("{form:?} does not decode: {err:?}"),
            }
        }
    }

    let key = data
        .get(..data.len().min(MAX_SECRET_BYTES))
        .unwrap_or_default();
    match Secret::from_bytes(key.to_vec()) {
        Ok(secret) => {
            let plain = secret.to_base32();
            match Secret::from_base32(&plain) {
                Ok(back) => assert_eq!(back.expose_secret(), key),
                Err(err) => panic!("{:?} does not decode: {err:?}", plain.as_str()),
            }
        }
        Err(_) => assert!(
            key.is_empty(),
            "a 1..=MAX_SECRET_BYTES byte key was refused"
        ),
    }
}

/// Reads fixed-size fields from the front of the fuzz input, padding with zeros.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for (b, v) in bytes.iter_mut().zip(self.take(8)) {
            *b = *v;
        }
        u64::from_le_bytes(bytes)
    }
}

/// What verification must return, computed the slow, obvious way: the highest step in
/// `first..=last` whose code matches and is above `used`; else `Replayed` if a step at or
/// below `used` matched; else `Invalid`.
fn oracle(
    code: u32,
    first: u64,
    last: u64,
    used: Option<u64>,
    value_at: impl Fn(u64) -> u32,
) -> Result<u64, VerifyError> {
    let mut fresh = None;
    let mut replayed = false;
    let mut step = first;
    loop {
        if value_at(step) == code {
            if used.is_none_or(|u| step > u) {
                fresh = Some(step);
            } else {
                replayed = true;
            }
        }
        if step >= last {
            break;
        }
        step += 1;
    }
    match (fresh, replayed) {
        (Some(step), _) => Ok(step),
        (None, true) => Err(VerifyError::Replayed),
        (None, false) => Err(VerifyError::Invalid),
    }
}

/// `verify_code`: TOTP and HOTP verification never panic, agree with a brute-force oracle
/// (so a returned step is inside the window and above the last-used one), and accept the
/// code they generate themselves unless it is a replay.
///
/// Input layout, in order (integers little-endian, a short input padded with zeros):
/// algorithm (1 byte, mod 3: SHA-1, SHA-256, SHA-512) · digits (1) · TOTP period (8) ·
/// skew (1) · Unix time (8) · has a last-used step (1, odd = yes) · last-used step (8) ·
/// HOTP look-ahead (1) · HOTP counter (8) · secret length (1) · secret (that many bytes) ·
/// typed input (the rest, lossy UTF-8). Invalid parameters are checked to be refused.
pub fn check_verify_code(data: &[u8]) {
    let mut f = Fields(data);
    let algorithm = match f.u8() % 3 {
        0 => Algorithm::Sha1,
        1 => Algorithm::Sha256,
        _ => Algorithm::Sha512,
    };
    let digits = f.u8();
    let period = f.u64();
    let skew = f.u8();
    let time = f.u64();
    let has_last = f.u8() % 2 == 1;
    let last = f.u64();
    let last_used = has_last.then_some(last);
    let look_ahead = f.u8();
    let counter = f.u64();
    let secret_len = usize::from(f.u8());
    let secret_bytes = f.take(secret_len);
    let typed = String::from_utf8_lossy(f.0);

    // Parsing a code never depends on the key.
    let parsed = Code::parse(&typed, digits);
    if digits == 0 || digits > 8 {
        assert!(
            matches!(parsed, Err(CodeError::UnsupportedDigits(d)) if d == digits),
            "a length no configuration supports must be refused"
        );
    }
    if let Ok(code) = parsed.as_ref() {
        assert_eq!(code.digits(), digits);
        assert_eq!(code.to_string().len(), usize::from(digits));
        match Code::parse(&code.to_string(), digits) {
            Ok(again) => assert_eq!(again.value(), code.value()),
            Err(err) => panic!("printed code does not parse: {err:?}"),
        }
    }

    let secret = match Secret::from_bytes(secret_bytes.to_vec()) {
        Ok(secret) => secret,
        Err(_) => {
            assert!(secret_bytes.is_empty() || secret_bytes.len() > MAX_SECRET_BYTES);
            return;
        }
    };

    let totp = Totp::builder()
        .algorithm(algorithm)
        .digits(u32::from(digits))
        .period(period)
        .skew(u32::from(skew))
        .build();
    match totp {
        Err(_) => assert!(!(6..=8).contains(&digits) || period == 0 || skew > 10),
        Ok(totp) => {
            let now = totp.step_at(time);
            let first = now.saturating_sub(u64::from(skew));
            let window_end = now.saturating_add(u64::from(skew));
            let value_at = |step| totp.generate_at_step(&secret, step).value();

            let result = totp.verify(&secret, &typed, time, last_used);
            match (&parsed, &result) {
                (Err(_), Err(VerifyError::Malformed(_))) => {}
                (Err(e), other) => panic!("malformed {e:?} gave {other:?}"),
                (Ok(code), _) => {
                    let expected = oracle(code.value(), first, window_end, last_used, value_at);
                    assert_eq!(result, expected, "TOTP verify disagrees with the oracle");
                }
            }
            if let Ok(step) = result {
                assert!(
                    (first..=window_end).contains(&step),
                    "step outside the window"
                );
                assert!(
                    last_used.is_none_or(|u| step > u),
                    "step not above last used"
                );
            }

            // The current code, as the app would show it.
            let current = totp.generate(&secret, time);
            let result = totp.verify_code(&secret, current, time, last_used);
            assert_eq!(
                result,
                oracle(current.value(), first, window_end, last_used, value_at)
            );
            if last_used.is_none_or(|u| now > u) {
                match result {
                    Ok(step) => assert!(step >= now, "the current code matched an older step"),
                    Err(err) => panic!("the current code was refused: {err:?}"),
                }
            }
            let next = totp.next_step_starts_at(time);
            assert!(next > time || next == u64::MAX);
        }
    }

    match Hotp::new(algorithm, u32::from(digits), u32::from(look_ahead)) {
        Err(_) => assert!(!(6..=8).contains(&digits) || look_ahead > 20),
        Ok(hotp) => {
            let end = counter.saturating_add(u64::from(look_ahead));
            let value_at = |c| hotp.generate(&secret, c).value();
            let result = hotp.verify(&secret, &typed, counter);
            match (&parsed, &result) {
                (Err(_), Err(VerifyError::Malformed(_))) => {}
                (Err(e), other) => panic!("malformed {e:?} gave {other:?}"),
                (Ok(code), _) => {
                    let expected = oracle(code.value(), counter, end, None, value_at);
                    assert_eq!(result, expected, "HOTP verify disagrees with the oracle");
                }
            }
            let expected = hotp.generate(&secret, counter).to_string();
            match hotp.verify(&secret, &expected, counter) {
                Ok(c) => assert!((counter..=end).contains(&c)),
                Err(err) => panic!("the expected HOTP code was refused: {err:?}"),
            }
        }
    }
}

/// `record_decode`: a stored record (the JSON text of a database row, which anyone who can
/// write the table controls) never panics the decoder, sealed secrets included. Whatever
/// decodes:
/// - encodes back to canonical bytes of the current format (`{"v":8,...`) that decode again
///   and re-encode to the very same bytes (decode∘encode is the identity, encode∘decode is a
///   fixed point after one step);
/// - dropped nothing: every key path of the input is in the re-encoding (unknown fields are
///   refused, never silently lost);
/// - keeps what it says about the user, and its `Debug` shows none of its secrets.
#[cfg(feature = "serde")]
pub fn check_record_decode(data: &[u8]) {
    use twofactor::account::TwoFactorRecord;
    let Ok(record) = serde_json::from_slice::<TwoFactorRecord>(data) else {
        return;
    };
    let json = match serde_json::to_string(&record) {
        Ok(json) => json,
        Err(err) => panic!("a decoded record does not encode: {err}"),
    };
    assert!(
        json.starts_with(r#"{"v":8,"#),
        "not the current format: {json}"
    );
    let again: TwoFactorRecord = match serde_json::from_str(&json) {
        Ok(again) => again,
        Err(err) => panic!("the re-encoded record does not decode: {err}: {json}"),
    };
    assert_eq!(
        serde_json::to_string(&again).ok().as_deref(),
        Some(json.as_str()),
        "encoding is not canonical"
    );
    assert_eq!(again.has_sealed_secret(), record.has_sealed_secret());
    assert_eq!(again.is_enrolled(), record.is_enrolled());
    assert_eq!(again.recovery_codes_left(), record.recovery_codes_left());

    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    if let Ok(input) = serde_json::from_slice::<serde_json::Value>(data) {
        let kept = key_paths(&value);
        for path in key_paths(&input) {
            // An older row's one `active` factor is the first authenticator now.
            let path = match path.strip_prefix("/active") {
                Some("") => "/authenticators".to_owned(),
                Some(rest) => {
                    let rest = rest
                        .replace("/totp", "/params")
                        .replace("/enrolled_at", "/../created_at");
                    let rest = rest
                        .strip_prefix("/..")
                        .map_or_else(|| format!("/factor/totp{rest}"), |r| r.to_owned());
                    format!("/authenticators/0{rest}")
                }
                None => path,
            };
            // An older row's list of recovery codes is two columns now (format 8).
            let path = match path.strip_prefix("/recovery/codes") {
                Some(rest) if rest.ends_with("/used_at") => "/recovery/used_at".to_owned(),
                Some(_) => "/recovery/digests".to_owned(),
                None => path,
            };
            assert!(kept.contains(&path), "decoding dropped {path}");
        }
    }
    if let Some(codes) = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["recovery"]["codes"].as_array().cloned())
    {
        let column = |field: &str| -> Vec<serde_json::Value> {
            codes.iter().map(|c| c[field].clone()).collect()
        };
        assert_eq!(
            (
                value["recovery"]["digests"].clone(),
                value["recovery"]["used_at"].clone()
            ),
            (
                serde_json::Value::Array(column("digest")),
                serde_json::Value::Array(column("used_at"))
            ),
            "the recovery codes, in order, with their times of use"
        );
    }
    if let Some(input) = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .filter(|v| !v["active"].is_null())
    {
        assert_eq!(
            input["active"]["secret"], value["authenticators"][0]["factor"]["totp"]["secret"],
            "the old factor's secret is the first authenticator's"
        );
    }

    let debug = format!("{record:?}");
    let authenticators = value["authenticators"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let secrets = authenticators
        .iter()
        .map(|a| &a["factor"]["totp"]["secret"])
        .chain([&value["pending"]["secret"]]);
    for secret in secrets.filter_map(|s| s.as_str()) {
        assert!(!debug.contains(secret), "Debug shows a secret");
    }
}

/// The JSON pointers of every object key in `value`, at any depth.
#[cfg(feature = "serde")]
fn key_paths(value: &serde_json::Value) -> std::collections::BTreeSet<String> {
    fn walk(v: &serde_json::Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    let p = format!("{path}/{k}");
                    out.insert(p.clone());
                    walk(child, &p, out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(value, "", &mut out);
    out
}
