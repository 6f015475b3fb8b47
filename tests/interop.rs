//! Interoperability with implementations nobody here wrote: oathtool (OATH Toolkit, C) and
//! pyotp (Python).
//!
//! Random secrets, every algorithm, 6/7/8 digits, periods from 1 s to an hour and times from 0
//! past 2^32 to the year 9999. The secrets come from a seeded generator: the seed is printed,
//! and `TWOFACTOR_INTEROP_SEED=<seed>` replays a run. A missing reference tool is a failure
//! that says what to install, never a skip: `scripts/test` installs both.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use twofactor::otp::{Algorithm, Hotp, VerifyError};
use twofactor::{Secret, Totp};

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
const DIGITS: [u32; 3] = [6, 7, 8];
const PERIODS: [u64; 6] = [1, 15, 30, 60, 90, 3600];
/// pyotp refuses times from the year 10000 on (`_TIMESTAMP_LIMIT`).
const LAST_SECOND_OF_9999: u64 = 253_402_300_799;
const TIMES: [u64; 18] = [
    0,
    1,
    29,
    59,
    1_111_111_109,
    1_234_567_890,
    (1 << 31) - 1,
    1 << 31,
    (1 << 31) + 1,
    (1 << 32) - 1,
    1 << 32,
    (1 << 32) + 1,
    (1 << 32) + 3599,
    20_000_000_000,
    1 << 35,
    1 << 36,
    100_000_000_000,
    LAST_SECOND_OF_9999,
];
const COUNTERS: [u64; 12] = [
    0,
    1,
    9,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    (1 << 32) + 1,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];
/// Random cases on top of the fixed grid.
const RANDOM_TOTP_CASES: usize = 400;
const RANDOM_HOTP_CASES: usize = 150;

/// SplitMix64: tiny, seedable, and plenty for picking test inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform-enough in `lo..=hi` (the modulo bias is irrelevant here).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
    /// 14 to 64 bytes: pyotp refuses fewer than 112 bits (longer secrets have their own test).
    fn secret(&mut self) -> Secret {
        let len = self.range(14, 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| self.next_u64() as u8).collect();
        Secret::from_bytes(bytes).expect("14..=64 bytes is a valid secret")
    }
}

fn seeded_rng(test: &str) -> Rng {
    let seed = match std::env::var("TWOFACTOR_INTEROP_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .expect("TWOFACTOR_INTEROP_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    };
    // Printed on failure by the test harness (captured output), and always by nextest.
    println!("{test}: seed {seed} (replay with TWOFACTOR_INTEROP_SEED={seed})");
    Rng(seed)
}

fn require_oathtool() {
    let ok = Command::new("oathtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "oathtool is not installed or does not run: install it with `apt-get install oathtool` \
         (OATH Toolkit); the interop tests compare against it and never skip"
    );
}

fn require_pyotp() {
    let out = Command::new("python3")
        .args(["-c", "import pyotp"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "pyotp is not importable by python3: install it with `pip install pyotp` \
             (python3 said: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "python3 cannot be run ({e}): install Python 3 and then `pip install pyotp`; \
             the interop tests compare against it and never skip"
        ),
    }
}

fn oathtool(args: &[String]) -> String {
    let out = Command::new("oathtool")
        .args(args)
        .output()
        .expect("oathtool runs (apt-get install oathtool)");
    assert!(
        out.status.success(),
        "oathtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("oathtool prints ASCII")
        .trim()
        .to_owned()
}

/// Runs pyotp once over a whole batch: JSON in on stdin, JSON out on stdout.
///
/// For each TOTP case pyotp returns its code at that time and whether `TOTP.verify` accepts
/// ours; the same for each HOTP case at its counter. pyotp 2.10+ refuses periods above 120 s;
/// for those its HOTP runs at the step Python computes (`time // period`).
const PYOTP_BATCH: &str = r#"
import hashlib, json, sys
import pyotp
digests = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
batch = json.load(sys.stdin)
out = {"totp": [], "hotp": []}
for c in batch["totp"]:
    if c["period"] <= 120:
        t = pyotp.TOTP(c["secret"], digits=c["digits"], digest=digests[c["algorithm"]], interval=c["period"])
        code, ok = t.at(c["time"]), t.verify(c["ours"], for_time=c["time"])
    else:
        h = pyotp.HOTP(c["secret"], digits=c["digits"], digest=digests[c["algorithm"]])
        step = c["time"] // c["period"]
        code, ok = h.at(step), h.verify(c["ours"], step)
    out["totp"].append({"code": code, "accepts_ours": ok})
for c in batch["hotp"]:
    h = pyotp.HOTP(c["secret"], digits=c["digits"], digest=digests[c["algorithm"]])
    out["hotp"].append({"code": h.at(c["counter"]), "accepts_ours": h.verify(c["ours"], c["counter"])})
json.dump(out, sys.stdout)
"#;

fn pyotp_batch(batch: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", PYOTP_BATCH])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (install Python 3 and `pip install pyotp`)");
    let input = serde_json::to_vec(batch).expect("JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "pyotp batch failed (is pyotp installed? `pip install pyotp`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("pyotp prints JSON")
}

struct TotpCase {
    secret: Secret,
    totp: Totp,
    time: u64,
}

impl TotpCase {
    fn describe(&self) -> String {
        format!(
            "{} {} digits, period {} s, time {}, secret {}",
            self.totp.algorithm(),
            self.totp.digits(),
            self.totp.period(),
            self.time,
            self.secret.to_base32().as_str()
        )
    }
}

/// Every algorithm × digits × period × special time once, then random cases (including odd
/// periods up to a day and random times up to the year 9999).
fn totp_cases(rng: &mut Rng) -> Vec<TotpCase> {
    let mut cases = Vec::new();
    let mut push = |rng: &mut Rng, algorithm, digits, period, time| {
        let totp = Totp::builder()
            .algorithm(algorithm)
            .digits(digits)
            .period(period)
            .skew(0)
            .build()
            .expect("valid parameters");
        cases.push(TotpCase {
            secret: rng.secret(),
            totp,
            time,
        });
    };
    for algorithm in ALGORITHMS {
        for digits in DIGITS {
            for period in PERIODS {
                for time in TIMES {
                    push(rng, algorithm, digits, period, time);
                }
            }
        }
    }
    for _ in 0..RANDOM_TOTP_CASES {
        let algorithm = rng.pick(&ALGORITHMS);
        let digits = rng.pick(&DIGITS);
        let period = if rng.range(0, 3) == 0 {
            rng.range(1, 86_400)
        } else {
            rng.pick(&PERIODS)
        };
        let time = if rng.range(0, 1) == 0 {
            rng.range(0, 1 << 34)
        } else {
            rng.range(0, LAST_SECOND_OF_9999)
        };
        push(rng, algorithm, digits, period, time);
    }
    cases
}

struct HotpCase {
    secret: Secret,
    hotp: Hotp,
    counter: u64,
}

fn hotp_cases(rng: &mut Rng) -> Vec<HotpCase> {
    let mut cases = Vec::new();
    for algorithm in ALGORITHMS {
        for digits in DIGITS {
            for counter in COUNTERS {
                cases.push(HotpCase {
                    secret: rng.secret(),
                    hotp: Hotp::new(algorithm, digits, 0).expect("valid parameters"),
                    counter,
                });
            }
        }
    }
    for _ in 0..RANDOM_HOTP_CASES {
        let counter = match rng.range(0, 2) {
            0 => rng.range(0, 1_000_000),
            1 => rng.range(0, u64::from(u32::MAX)),
            _ => rng.next_u64(),
        };
        cases.push(HotpCase {
            secret: rng.secret(),
            hotp: Hotp::new(rng.pick(&ALGORITHMS), rng.pick(&DIGITS), 0).expect("valid parameters"),
            counter,
        });
    }
    cases
}

#[test]
fn totp_matches_oathtool() {
    require_oathtool();
    let mut rng = seeded_rng("totp_matches_oathtool");
    let cases = totp_cases(&mut rng);
    for case in &cases {
        let ours = case.totp.generate(&case.secret, case.time).to_string();
        let theirs = oathtool(&[
            format!("--totp={}", case.totp.algorithm()),
            "-d".into(),
            case.totp.digits().to_string(),
            "-s".into(),
            format!("{}s", case.totp.period()),
            "-N".into(),
            format!("@{}", case.time),
            "--base32".into(),
            case.secret.to_base32().to_string(),
        ]);
        assert_eq!(ours, theirs, "oathtool disagrees: {}", case.describe());
    }
    println!("{} TOTP cases agree with oathtool", cases.len());
}

#[test]
fn totp_window_matches_oathtool_sequence() {
    // `-w 4` makes oathtool print five successive codes: our steps must line up with its.
    require_oathtool();
    let mut rng = seeded_rng("totp_window_matches_oathtool_sequence");
    for _ in 0..30 {
        let secret = rng.secret();
        let totp = Totp::builder()
            .algorithm(rng.pick(&ALGORITHMS))
            .digits(rng.pick(&DIGITS))
            .period(rng.pick(&PERIODS))
            .build()
            .expect("valid parameters");
        let time = rng.range(0, 1 << 34);
        let theirs = oathtool(&[
            format!("--totp={}", totp.algorithm()),
            "-d".into(),
            totp.digits().to_string(),
            "-s".into(),
            format!("{}s", totp.period()),
            "-N".into(),
            format!("@{time}"),
            "-w".into(),
            "4".into(),
            "--base32".into(),
            secret.to_base32().to_string(),
        ]);
        let ours: Vec<String> = (0..5)
            .map(|i| {
                totp.generate_at_step(&secret, totp.step_at(time) + i)
                    .to_string()
            })
            .collect();
        assert_eq!(theirs.lines().collect::<Vec<_>>(), ours, "at {time}");
    }
}

#[test]
fn hotp_matches_oathtool() {
    require_oathtool();
    let mut rng = seeded_rng("hotp_matches_oathtool");
    let cases = hotp_cases(&mut rng);
    let mut checked = 0;
    for case in &cases {
        // oathtool --hotp has no algorithm option: HOTP there is HMAC-SHA-1 only.
        if case.hotp.algorithm() != Algorithm::Sha1 {
            continue;
        }
        checked += 1;
        let ours = case.hotp.generate(&case.secret, case.counter).to_string();
        let theirs = oathtool(&[
            "--hotp".into(),
            "-d".into(),
            case.hotp.digits().to_string(),
            "-c".into(),
            case.counter.to_string(),
            "--base32".into(),
            case.secret.to_base32().to_string(),
        ]);
        assert_eq!(
            ours,
            theirs,
            "oathtool disagrees: HOTP {} digits, counter {}, secret {}",
            case.hotp.digits(),
            case.counter,
            case.secret.to_base32().as_str()
        );
    }
    assert!(checked > 50, "only {checked} HMAC-SHA-1 HOTP cases");
    println!("{checked} HOTP cases agree with oathtool");
}

#[test]
fn short_80_bit_secret_matches_oathtool() {
    // Real services still issue 80-bit secrets (pyotp refuses them, oathtool does not).
    require_oathtool();
    let mut rng = seeded_rng("short_80_bit_secret_matches_oathtool");
    for _ in 0..20 {
        let bytes: Vec<u8> = (0..10).map(|_| rng.next_u64() as u8).collect();
        let secret = Secret::from_bytes(bytes).expect("10 bytes");
        let time = rng.range(0, 1 << 34);
        let theirs = oathtool(&[
            "--totp".into(),
            "-N".into(),
            format!("@{time}"),
            "--base32".into(),
            secret.to_base32().to_string(),
        ]);
        assert_eq!(Totp::default().generate(&secret, time).to_string(), theirs);
    }
}

#[test]
fn totp_and_hotp_match_pyotp_both_ways() {
    require_pyotp();
    let mut rng = seeded_rng("totp_and_hotp_match_pyotp_both_ways");
    let totp = totp_cases(&mut rng);
    let hotp = hotp_cases(&mut rng);
    let batch = json!({
        "totp": totp.iter().map(|c| json!({
            "secret": c.secret.to_base32().as_str(),
            "algorithm": c.totp.algorithm().as_str(),
            "digits": c.totp.digits(),
            "period": c.totp.period(),
            "time": c.time,
            "ours": c.totp.generate(&c.secret, c.time).to_string(),
        })).collect::<Vec<_>>(),
        "hotp": hotp.iter().map(|c| json!({
            "secret": c.secret.to_base32().as_str(),
            "algorithm": c.hotp.algorithm().as_str(),
            "digits": c.hotp.digits(),
            "counter": c.counter,
            "ours": c.hotp.generate(&c.secret, c.counter).to_string(),
        })).collect::<Vec<_>>(),
    });
    let answers = pyotp_batch(&batch);
    let totp_answers = answers["totp"].as_array().expect("totp answers");
    let hotp_answers = answers["hotp"].as_array().expect("hotp answers");
    assert_eq!(totp_answers.len(), totp.len());
    assert_eq!(hotp_answers.len(), hotp.len());

    for (case, answer) in totp.iter().zip(totp_answers) {
        let theirs = answer["code"].as_str().expect("code");
        let ours = case.totp.generate(&case.secret, case.time).to_string();
        assert_eq!(ours, theirs, "pyotp disagrees: {}", case.describe());
        assert_eq!(
            answer["accepts_ours"],
            json!(true),
            "pyotp.TOTP.verify refuses our code: {}",
            case.describe()
        );
        // pyotp's code verifies with ours at the same time, for exactly the current step...
        let step = case.time / case.totp.period();
        assert_eq!(
            case.totp.verify(&case.secret, theirs, case.time, None),
            Ok(step),
            "our verify refuses pyotp's code: {}",
            case.describe()
        );
        // ...also with the default ±1 window, and once only.
        let windowed = Totp::builder()
            .algorithm(case.totp.algorithm())
            .digits(u32::from(case.totp.digits()))
            .period(case.totp.period())
            .build()
            .expect("valid parameters");
        let matched = windowed
            .verify(&case.secret, theirs, case.time, None)
            .unwrap_or_else(|e| {
                panic!("±1 verify refuses pyotp's code ({e}): {}", case.describe())
            });
        assert!(
            matched.abs_diff(step) <= 1,
            "matched step {matched} outside the window of {step}"
        );
        assert_eq!(
            windowed.verify(&case.secret, theirs, case.time, Some(step + 1)),
            Err(VerifyError::Replayed),
            "a replay after the step was used must be refused: {}",
            case.describe()
        );
    }

    for (case, answer) in hotp.iter().zip(hotp_answers) {
        let theirs = answer["code"].as_str().expect("code");
        let ours = case.hotp.generate(&case.secret, case.counter).to_string();
        let what = format!(
            "HOTP {} {} digits, counter {}, secret {}",
            case.hotp.algorithm(),
            case.hotp.digits(),
            case.counter,
            case.secret.to_base32().as_str()
        );
        assert_eq!(ours, theirs, "pyotp disagrees: {what}");
        assert_eq!(
            answer["accepts_ours"],
            json!(true),
            "pyotp refuses ours: {what}"
        );
        assert_eq!(
            case.hotp.verify(&case.secret, theirs, case.counter),
            Ok(case.counter),
            "our verify refuses pyotp's code: {what}"
        );
    }
    println!(
        "{} TOTP and {} HOTP cases agree with pyotp",
        totp.len(),
        hotp.len()
    );
}

/// A secret of exactly `len` bytes from the seeded generator.
fn secret_of_len(rng: &mut Rng, len: usize) -> Secret {
    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    Secret::from_bytes(bytes).expect("a long secret within MAX_SECRET_BYTES")
}

/// Secrets longer than a hash block (65 to 200 bytes, every length, every algorithm, plus the
/// 1 KiB bound) give oathtool's and pyotp's codes: the key is hashed first (RFC 2104 §2), as
/// those tools do. Each also imports through an `otpauth://` URI and a grouped manual key.
#[test]
fn long_secrets_match_oathtool_and_pyotp() {
    require_oathtool();
    require_pyotp();
    let mut rng = seeded_rng("long_secrets_match_oathtool_and_pyotp");
    let lengths: Vec<usize> = (65..=200)
        .chain([127, 128, 129, 256, twofactor::otp::MAX_SECRET_BYTES])
        .collect();
    let mut cases = Vec::new();
    for len in lengths {
        for algorithm in ALGORITHMS {
            let totp = Totp::builder()
                .algorithm(algorithm)
                .digits(rng.pick(&DIGITS))
                .period(rng.pick(&[30, 60]))
                .skew(0)
                .build()
                .expect("valid parameters");
            let secret = secret_of_len(&mut rng, len);
            let time = rng.range(0, 1 << 34);
            cases.push(TotpCase { secret, totp, time });
        }
    }
    for case in &cases {
        let base32 = case.secret.to_base32();
        // Imported as people receive it: a manual key in groups, and an otpauth:// URI.
        let manual = Secret::from_base32(&case.secret.to_base32_grouped()).expect("manual key");
        assert_eq!(manual.expose_secret(), case.secret.expose_secret());
        let uri = format!(
            "otpauth://totp/Example:ana?secret={}&algorithm={}&digits={}&period={}",
            base32.as_str(),
            case.totp.algorithm(),
            case.totp.digits(),
            case.totp.period()
        );
        let parsed = twofactor::KeyUri::parse(&uri).expect("a long-secret URI imports");
        assert_eq!(parsed.secret().expose_secret(), case.secret.expose_secret());

        let ours = case.totp.generate(&case.secret, case.time).to_string();
        let theirs = oathtool(&[
            format!("--totp={}", case.totp.algorithm()),
            "-d".into(),
            case.totp.digits().to_string(),
            "-s".into(),
            format!("{}s", case.totp.period()),
            "-N".into(),
            format!("@{}", case.time),
            "--base32".into(),
            base32.to_string(),
        ]);
        assert_eq!(ours, theirs, "oathtool disagrees: {}", case.describe());
        assert_eq!(
            case.totp.verify(&case.secret, &theirs, case.time, None),
            Ok(case.totp.step_at(case.time)),
            "oathtool's code refused: {}",
            case.describe()
        );
    }
    let batch = json!({
        "totp": cases.iter().map(|c| json!({
            "secret": c.secret.to_base32().as_str(),
            "digits": c.totp.digits(),
            "algorithm": c.totp.algorithm().as_str(),
            "period": c.totp.period(),
            "time": c.time,
            "ours": c.totp.generate(&c.secret, c.time).to_string(),
        })).collect::<Vec<_>>(),
        "hotp": [],
    });
    let out = pyotp_batch(&batch);
    let results = out["totp"].as_array().expect("totp results");
    assert_eq!(results.len(), cases.len());
    for (case, result) in cases.iter().zip(results) {
        let theirs = result["code"].as_str().expect("pyotp code");
        assert_eq!(
            case.totp.generate(&case.secret, case.time).to_string(),
            theirs,
            "pyotp disagrees: {}",
            case.describe()
        );
        assert_eq!(
            result["accepts_ours"],
            Value::Bool(true),
            "{}",
            case.describe()
        );
    }
    println!(
        "{} long-secret cases agree with oathtool and pyotp",
        cases.len()
    );
}
