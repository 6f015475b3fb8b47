//! A dudect-style constant-time check of every secret-dependent comparison (Reparaz, Balasch,
//! Verbauwhede, "Dude, is my code constant time?", 2017).
//!
//! Each row has two classes of input. Samples are taken with the class of each one drawn at
//! random (so drift in machine load hits both classes alike), each one call timed with
//! `Instant`. Welch's t-test then compares the classes on all samples and on the samples below
//! several percentiles (crops: slow outliers from interrupts dominate the variance otherwise);
//! the row's score is the largest |t|. dudect's threshold: |t| > 4.5 is a leak, |t| < 4.5 means
//! none was seen at this sample size. The `calibration` row adds an artificial ~1-2 ns to one
//! class, to show the bench sees differences of that size.
//!
//! Run: `cargo bench --bench dudect` (or `DUDECT_SAMPLES=4000000 cargo bench --bench dudect`
//! for more samples per row; default 1,000,000). It prints a Markdown table; a recorded run is
//! in `benches/DUDECT.md`. Not run by the test suite: timing is measured here, never asserted.

use std::hint::black_box;
use std::time::Instant;

use twofactor::account::dudect_support::{DeviceBench, MailedBench, RecoveryBench};
use twofactor::otp::Code;
use twofactor::{Secret, Totp};

/// A tiny xorshift for the class sequence and random inputs (not a secret).
struct Xs(u64);

impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Welford's running mean and variance.
#[derive(Default, Clone, Copy)]
struct Stats {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Stats {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }
    fn var(&self) -> f64 {
        if self.n < 2.0 {
            0.0
        } else {
            self.m2 / (self.n - 1.0)
        }
    }
}

/// Welch's t statistic of two classes.
fn welch(a: &Stats, b: &Stats) -> f64 {
    let se = (a.var() / a.n + b.var() / b.n).sqrt();
    if se == 0.0 {
        0.0
    } else {
        (a.mean - b.mean) / se
    }
}

/// Percentile crops, as in dudect: keep samples below these quantiles (1.0 = no crop).
const CROPS: [f64; 6] = [1.0, 0.99, 0.95, 0.9, 0.75, 0.5];

struct Row {
    name: &'static str,
    classes: &'static str,
    samples: usize,
    t: f64,
    crop: f64,
    mean_a: f64,
    mean_b: f64,
}

/// Times `op` on inputs of class 0 and class 1 (`input(class, rng)` builds one, outside the
/// timed region), interleaved at random.
fn measure<I>(
    name: &'static str,
    classes: &'static str,
    samples: usize,
    mut input: impl FnMut(u8, &mut Xs) -> I,
    mut op: impl FnMut(&I) -> u64,
) -> Row {
    let mut rng = Xs(0x9E37_79B9_7F4A_7C15 ^ samples as u64);
    let mut times: Vec<(u8, u32)> = Vec::with_capacity(samples);
    // Warm-up.
    for i in 0..samples.min(10_000) {
        let x = input((i & 1) as u8, &mut rng);
        black_box(op(black_box(&x)));
    }
    for _ in 0..samples {
        let class = (rng.next() >> 63) as u8;
        let x = input(class, &mut rng);
        let start = Instant::now();
        black_box(op(black_box(&x)));
        let dt = start.elapsed().as_nanos();
        times.push((class, u32::try_from(dt).unwrap_or(u32::MAX)));
    }
    let mut sorted: Vec<u32> = times.iter().map(|&(_, t)| t).collect();
    sorted.sort_unstable();
    let mut best = (0.0f64, 1.0f64, 0.0, 0.0);
    for crop in CROPS {
        let idx = ((sorted.len() as f64 - 1.0) * crop) as usize;
        let limit = sorted[idx];
        let mut s = [Stats::default(); 2];
        for &(c, t) in &times {
            if t <= limit {
                s[usize::from(c)].push(f64::from(t));
            }
        }
        let t = welch(&s[0], &s[1]);
        if crop == 1.0 || t.abs() > best.0.abs() {
            best = (t, crop, s[0].mean, s[1].mean);
        }
    }
    Row {
        name,
        classes,
        samples,
        t: best.0,
        crop: best.1,
        mean_a: best.2,
        mean_b: best.3,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let samples: usize = std::env::var("DUDECT_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut rows = Vec::new();

    // Calibration: class 1 runs a few more dependent additions (about 1-2 ns).
    let extra: u64 = std::env::var("DUDECT_CALIBRATION_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    rows.push(measure(
        "calibration (artificial delay)",
        "+0 ops / +N ops",
        samples,
        |class, _| 64 + u64::from(class) * extra,
        |&n| {
            let mut acc = 0u64;
            for i in 0..black_box(n) {
                acc = black_box(acc.wrapping_add(i));
            }
            acc
        },
    ));

    // TOTP: SHA-1, 6 digits, 30 s, ±1 step (the defaults).
    let totp = Totp::default();
    let secret = Secret::from_bytes(vec![0x3d; 20]).expect("valid secret");
    let now = 1_700_000_010u64;
    let step = now / 30;
    let at = |s: u64| totp.generate_at_step(&secret, s);
    let first = at(step - 1);
    let last = at(step + 1);
    rows.push(measure(
        "TOTP: matched step",
        "first / last step of the window",
        samples,
        |class, _| if class == 0 { first } else { last },
        |&code| totp.verify_code(&secret, code, now, None).unwrap_or(0),
    ));
    let right = at(step).to_string();
    let flip = |pos: usize| {
        let mut b = right.clone().into_bytes();
        b[pos] = if b[pos] == b'9' { b'0' } else { b[pos] + 1 };
        let s = String::from_utf8(b).expect("ascii");
        Code::parse(&s, 6).expect("six digits")
    };
    let (d_first, d_last) = (flip(0), flip(5));
    // A wrong code could still match a neighbouring step by chance; these two do not.
    assert!(totp.verify_code(&secret, d_first, now, None).is_err());
    assert!(totp.verify_code(&secret, d_last, now, None).is_err());
    rows.push(measure(
        "TOTP: digit that differs",
        "first / last digit wrong",
        samples,
        |class, _| if class == 0 { d_first } else { d_last },
        |&code| totp.verify_code(&secret, code, now, None).unwrap_or(0),
    ));
    let replayed = at(step);
    rows.push(measure(
        "TOTP: replayed step",
        "replayed current step / a wrong code",
        samples,
        |class, _| if class == 0 { replayed } else { d_last },
        |&code| {
            totp.verify_code(&secret, code, now, Some(step))
                .unwrap_or(0)
        },
    ));

    // Recovery codes: a keyed set of 10, the first one used.
    let rec = RecoveryBench::new(10, &[0]);
    let used = RecoveryBench::parse(rec.code(0)).expect("a code");
    let second = RecoveryBench::parse(rec.code(1)).expect("a code");
    let tenth = RecoveryBench::parse(rec.code(9)).expect("a code");
    const ALPHA: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    // Inputs that depend on nothing secret are fixed too: a fresh random input per sample
    // changes cache and branch-predictor state outside the comparison (a false positive).
    let mut rng0 = Xs(7);
    let never: String = (0..16)
        .map(|_| char::from(ALPHA[(rng0.next() % 32) as usize]))
        .collect();
    let never = RecoveryBench::parse(&never).expect("a code");
    rows.push(measure(
        "Recovery code: used vs never issued",
        "used code / a code never issued",
        samples,
        |class, _| {
            if class == 0 {
                used.clone()
            } else {
                never.clone()
            }
        },
        |p| u64::from(rec.check(p)),
    ));
    rows.push(measure(
        "Recovery code: position in the set",
        "2nd / 10th code (both unused)",
        samples,
        |class, _| {
            if class == 0 {
                second.clone()
            } else {
                tenth.clone()
            }
        },
        |p| u64::from(rec.check(p)),
    ));
    rows.push(measure(
        "Recovery code: valid vs wrong",
        "unused code / a code never issued",
        samples,
        |class, _| {
            if class == 0 {
                tenth.clone()
            } else {
                never.clone()
            }
        },
        |p| u64::from(rec.check(p)),
    ));

    // Trusted devices: 10 devices.
    let dev = DeviceBench::new(10);
    let (t0, t9) = (dev.token(0).to_owned(), dev.token(9).to_owned());
    // Same shape, one hex digit off: parsing costs the same, only the comparison differs.
    let mut off = t9.clone().into_bytes();
    off[63] = if off[63] == b'0' { b'1' } else { b'0' };
    let t_off = String::from_utf8(off).expect("hex");
    rows.push(measure(
        "Device token: position",
        "1st / 10th device's token",
        samples,
        |class, _| if class == 0 { t0.clone() } else { t9.clone() },
        |t| dev.check(t).map_or(99, |i| i as u64),
    ));
    rows.push(measure(
        "Device token: match vs mismatch",
        "10th device's token / it with the last digit changed",
        samples,
        |class, _| {
            if class == 0 {
                t9.clone()
            } else {
                t_off.clone()
            }
        },
        |t| dev.check(t).map_or(99, |i| i as u64),
    ));

    // Mailed code (keyed).
    let mail = MailedBench::new();
    let code = mail.code().to_owned();
    let mut w = code.clone().into_bytes();
    w[5] = if w[5] == b'9' { b'0' } else { w[5] + 1 };
    let wrong_mail = String::from_utf8(w).expect("digits");
    rows.push(measure(
        "Mailed code: right vs wrong",
        "the mailed code / a wrong code (last digit)",
        samples,
        |class, _| {
            if class == 0 {
                code.clone()
            } else {
                wrong_mail.clone()
            }
        },
        |c| u64::from(mail.check(c)),
    ));

    println!(
        "| Row | Classes | Samples | max \\|t\\| | at crop | mean A (ns) | mean B (ns) | Verdict |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let verdict = if r.t.abs() > 4.5 {
            if r.name.starts_with("calibration") {
                "detected (as it must be)"
            } else {
                "LEAK"
            }
        } else if r.name.starts_with("calibration") {
            "NOT detected: bench too noisy"
        } else {
            "no leak seen"
        };
        println!(
            "| {} | {} | {} | {:.2} | p{:.0} | {:.2} | {:.2} | {} |",
            r.name,
            r.classes,
            r.samples,
            r.t.abs(),
            r.crop * 100.0,
            r.mean_a,
            r.mean_b,
            verdict
        );
    }
}
