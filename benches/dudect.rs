//! A dudect-style constant-time check of every secret-dependent comparison (Reparaz, Balasch,
//! Verbauwhede, "Dude, is my code constant time?", 2017), at two depths: the record's inner
//! check, and the service call a host makes (`TwoFactor::finish_login`), where an attacker
//! times it.
//!
//! Each row has two classes of input. Samples are taken with the class of each one drawn at
//! random (so drift in machine load hits both classes alike), each one call timed with
//! `Instant`. Welch's t-test then compares the classes on all samples and on the samples below
//! several percentiles (crops: slow outliers from interrupts dominate the variance otherwise);
//! the row's score is the largest |t|. dudect's threshold: |t| > 4.5 is a leak, |t| < 4.5 means
//! none was seen at this sample size. The `calibration` row adds an artificial ~1-2 ns to one
//! class, to show the bench sees differences of that size.
//!
//! The service rows ("finish_login: ...") run the whole call on a `MemoryStore` with a
//! `ManualClock`: load (from the login snapshot `start_login` kept), check, compare-and-swap
//! save, audit events (to a sink that formats each event, as the default `TracingAudit` does
//! under a subscriber) and notices. Before every sample, outside the timed region and the same
//! for both classes, the clock moves on two minutes (past the throttle window, so the throttle
//! log holds one entry and is never full: `code_checks_per_window` 50 per 60 s), the mailbox is
//! emptied and `start_login` hands out a fresh pending login. A login that succeeds does more
//! work than one that is refused (it grants), so every service row compares refusals with
//! refusals, or grants with grants: "right vs wrong" is only timed at the record.
//!
//! Where the classes differ in the user's record (a recovery code used, or never issued), the
//! row plants the record before every sample as a JSON row in which one byte (a hex digit of
//! one digest) takes one of two values, and types the same code in both classes: the classes
//! then differ in the secret state only, not in the input or in which memory the set-up
//! touched. (A first version cloned one of two prepared records per class: an A/A control with
//! two identical records then read |t| up to 30 at 10^6 samples, from the set-up touching
//! different memory.) Rows that type two different recovery codes also time how the input is
//! parsed, which depends on the symbols typed.
//!
//! Run: `cargo bench --bench dudect`. Environment:
//! - `DUDECT_SAMPLES`: samples per row, both classes together (default 1,000,000);
//! - `DUDECT_SEED`: seed of the class sequence (decimal or `0x` hex; default `0x9E3779B97F4A7C15`);
//! - `DUDECT_MAX_SECONDS`: stop each row's sampling after this many seconds (the table gives
//!   the samples taken);
//! - `DUDECT_ROWS`: run only the rows whose name contains one of these comma-separated words
//!   (case-insensitive; `=name` for exactly that row; the calibration row always runs);
//! - `DUDECT_CALIBRATION_OPS`: extra additions in the calibration row's class B (default 1).
//!
//! It prints a Markdown table; recorded runs are in `benches/DUDECT.md`. Not run by the test
//! suite: timing is measured here, never asserted.

use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use twofactor::account::CodeKey;
use twofactor::account::dudect_support::{DeviceBench, MailedBench, RecoveryBench};
use twofactor::audit::{AuditEvent, AuditSink};
use twofactor::otp::Code;

use twofactor::testing::{ManualClock, RecordingMailer};
use twofactor::{
    Clock, Error, Factor, KeyUri, LoginContext, MemoryStore, PendingLogin, Principal,
    Reauthenticated, RequiredForAll, Secret, Settings, Totp, TwoFactor, WhenUnenrolled,
};

/// A tiny xorshift for the class sequence and random inputs (not a secret).
struct Xs(u64);

impl Xs {
    fn new(seed: u64) -> Self {
        Xs(if seed == 0 { 1 } else { seed })
    }
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

/// Samples are kept as a histogram per class, one bucket per nanosecond below this bound
/// (exact, and a few MB for any sample count); slower samples count only uncropped.
const HIST_NS: usize = 1 << 18;

/// Every sample of a row: a histogram per class, and the running stats of all samples.
struct Samples {
    hist: [Vec<u64>; 2],
    all: [Stats; 2],
}

impl Samples {
    fn new() -> Self {
        Samples {
            hist: [vec![0; HIST_NS], vec![0; HIST_NS]],
            all: [Stats::default(); 2],
        }
    }

    fn push(&mut self, class: u8, ns: u64) {
        let c = usize::from(class);
        if let Some(slot) = usize::try_from(ns)
            .ok()
            .and_then(|i| self.hist[c].get_mut(i))
        {
            *slot += 1;
        }
        self.all[c].push(ns as f64);
    }

    /// The stats of each class over the samples at or below the `crop` quantile of both
    /// classes together (the same cut as sorting every sample and keeping those `<=` the one
    /// at rank `(n - 1) * crop`).
    fn cropped(&self, crop: f64) -> [Stats; 2] {
        let total = self.all[0].n + self.all[1].n;
        let rank = ((total - 1.0) * crop) as u64;
        let mut seen = 0u64;
        let mut limit = None;
        for t in 0..HIST_NS {
            seen += self.hist[0][t] + self.hist[1][t];
            if seen > rank {
                limit = Some(t);
                break;
            }
        }
        let Some(limit) = limit else {
            // The cut lies among the samples slower than the histogram: keep everything.
            return self.all;
        };
        let mut out = [Stats::default(); 2];
        for (c, s) in out.iter_mut().enumerate() {
            let h = &self.hist[c][..=limit];
            let n: u64 = h.iter().sum();
            if n == 0 {
                continue;
            }
            let sum: f64 = h
                .iter()
                .enumerate()
                .map(|(t, &k)| t as f64 * k as f64)
                .sum();
            let mean = sum / n as f64;
            let m2: f64 = h
                .iter()
                .enumerate()
                .map(|(t, &k)| k as f64 * (t as f64 - mean).powi(2))
                .sum();
            *s = Stats {
                n: n as f64,
                mean,
                m2,
            };
        }
        out
    }
}

struct Row {
    name: &'static str,
    classes: &'static str,
    n: [f64; 2],
    t: f64,
    crop: f64,
    mean_a: f64,
    mean_b: f64,
}

/// What the bench was asked to run.
struct Run {
    samples: usize,
    /// Stop a row's sampling after this long, whatever `samples` says.
    budget: Option<std::time::Duration>,
    seed: u64,
    only: Vec<String>,
    rows: Vec<Row>,
}

impl Run {
    fn from_env() -> Self {
        let var = |name| std::env::var(name).ok();
        let samples = var("DUDECT_SAMPLES")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        let seed = var("DUDECT_SEED")
            .and_then(|s| match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            })
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        let budget = var("DUDECT_MAX_SECONDS")
            .and_then(|s| s.parse().ok())
            .map(std::time::Duration::from_secs);
        let only = var("DUDECT_ROWS")
            .map(|s| {
                s.split(',')
                    .map(|w| w.trim().to_lowercase())
                    .filter(|w| !w.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Run {
            samples,
            budget,
            seed,
            only,
            rows: Vec::new(),
        }
    }

    /// Whether the row `name` is to run.
    fn wants(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.only.is_empty()
            || name.starts_with("calibration")
            || self.only.iter().any(|w| match w.strip_prefix('=') {
                Some(exact) => name == exact,
                None => name.contains(w.as_str()),
            })
    }

    /// Times `op` on inputs of class 0 and class 1 (`input(class, rng)` builds one, outside the
    /// timed region), interleaved at random. `op` returns a tag of its outcome; with `expect`,
    /// every tag is checked (outside the timed region) against the one its class must give.
    fn measure<I>(
        &mut self,
        name: &'static str,
        classes: &'static str,
        expect: Option<[u64; 2]>,
        mut input: impl FnMut(u8, &mut Xs) -> I,
        mut op: impl FnMut(&I) -> u64,
    ) {
        if !self.wants(name) {
            return;
        }
        let samples = self.samples;
        let mut rng = Xs::new(self.seed ^ samples as u64);
        let mut data = Samples::new();
        // Warm-up.
        for i in 0..samples.min(10_000) {
            let x = input((i & 1) as u8, &mut rng);
            black_box(op(black_box(&x)));
        }
        let deadline = self.budget.map(|b| Instant::now() + b);
        for i in 0..samples {
            // The time box is checked every 2^16 samples, whatever their classes.
            if i % 65_536 == 0 && deadline.is_some_and(|d| Instant::now() > d) {
                break;
            }
            let class = (rng.next() >> 63) as u8;
            let x = input(class, &mut rng);
            let start = Instant::now();
            let tag = black_box(op(black_box(&x)));
            let dt = start.elapsed().as_nanos();
            drop(x);
            if let Some(expect) = expect {
                assert_eq!(tag, expect[usize::from(class)], "{name}: class {class}");
            }
            data.push(class, u64::try_from(dt).unwrap_or(u64::MAX));
        }
        let mut best = (0.0f64, 1.0f64, 0.0, 0.0);
        for crop in CROPS {
            let s = if crop == 1.0 {
                data.all
            } else {
                data.cropped(crop)
            };
            let t = welch(&s[0], &s[1]);
            if crop == 1.0 || t.abs() > best.0.abs() {
                best = (t, crop, s[0].mean, s[1].mean);
            }
        }
        let row = Row {
            name,
            classes,
            n: [data.all[0].n, data.all[1].n],
            t: best.0,
            crop: best.1,
            mean_a: best.2,
            mean_b: best.3,
        };
        eprintln!("{}", format_row(&row));
        self.rows.push(row);
    }
}

fn format_row(r: &Row) -> String {
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
    format!(
        "| {} | {} | {:.0} / {:.0} | {:.2} | p{:.0} | {:.2} | {:.2} | {} |",
        r.name,
        r.classes,
        r.n[0],
        r.n[1],
        r.t.abs(),
        r.crop * 100.0,
        r.mean_a,
        r.mean_b,
        verdict
    )
}

/// Polls a future to completion on this thread. The service's futures on the memory store,
/// the recording mailer and the manual clock never wait, so this never spins.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// An audit sink that does what a host's does with each event: formats it (as `TracingAudit`
/// does, `kind = ?event.kind`, under a subscriber), here into a buffer it reuses.
#[derive(Default)]
struct FormattingAudit(Mutex<String>);

impl AuditSink for FormattingAudit {
    fn record(&self, event: &AuditEvent) {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        buf.clear();
        let _ = write!(buf, "{event:?}");
        black_box(buf.len());
    }
}

type Service =
    TwoFactor<MemoryStore, RecordingMailer, RequiredForAll, ManualClock, FormattingAudit>;

/// Seconds the clock moves before every sample: past the throttle window and every TOTP step
/// of the window used by the sample before.
const TICK: u64 = 120;

/// The service the rows time, with `alice` enrolled (TOTP and ten recovery codes, the first
/// one used) and `bob` not (mailed codes).
struct Host {
    tf: Service,
    secret: Secret,
    codes: Vec<String>,
    alice: Principal,
    bob: Principal,
    /// Enrolled with five authenticators (their secrets, in order).
    carol: Principal,
    carol_secrets: Vec<Secret>,
    ctx: LoginContext,
}

impl Host {
    fn new() -> Self {
        let settings = Settings::builder()
            .code_key(CodeKey::random().expect("os rng"))
            .code_checks_per_window(Settings::MAX_CODE_CHECKS_PER_WINDOW)
            .code_check_window(Settings::MIN_WINDOW)
            .mail_send_window(Settings::MIN_WINDOW)
            .build()
            .expect("valid settings");
        let tf = TwoFactor::builder(MemoryStore::new())
            .mailer(RecordingMailer::new())
            .policy(RequiredForAll::new(WhenUnenrolled::MailCode))
            .clock(ManualClock::new(1_700_000_000))
            .audit(FormattingAudit::default())
            .keys(twofactor::testing::test_keys())
            .settings(settings)
            .build();
        let alice = Principal::new("alice");
        let ctx = LoginContext::new().device("bench");
        // Under a mailed-code policy, alice logs in with a mailed code before she enrolls.
        let (secret, enrolled) = enroll_by_mail(&tf, &alice, &ctx);
        let codes: Vec<String> = enrolled
            .into_recovery_codes()
            .expose_secret()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let mut host = Host {
            tf,
            secret,
            codes,
            alice,
            bob: Principal::new("bob"),
            carol: Principal::new("carol"),
            carol_secrets: Vec::new(),
            ctx,
        };
        host.carol_secrets = host.enroll_with_five();
        // Code 0 is used once, at setup.
        let pending = host.start(0);
        block_on(host.tf.finish_login(
            &pending,
            Factor::RecoveryCode(&host.codes[0]),
            None,
            &host.ctx,
        ))
        .expect("the first use of a recovery code logs in");
        host
    }

    /// Enrolls carol (a mailed-code login, then enrollment) and adds four authenticators with
    /// the proof of that login ("Phone 0" to "Phone 4"): the five secrets, in the order of
    /// her authenticators.
    fn enroll_with_five(&self) -> Vec<Secret> {
        let (tf, carol, ctx) = (&self.tf, &self.carol, &self.ctx);
        let (first, enrolled) = enroll_by_mail(tf, carol, ctx);
        let proof = enrolled.proof().clone();
        // Labels of one length (see `carol_orders`).
        block_on(tf.rename_authenticator(&carol.user, enrolled.authenticator().id(), "Phone 0"))
            .expect("renamed");
        let mut secrets = vec![first];
        for i in 1..5 {
            let now = tf.clock().now();
            let started = block_on(tf.start_adding_authenticator(
                &carol.user,
                &format!("Phone {i}"),
                "carol",
                &proof,
                Reauthenticated::at(now),
            ))
            .expect("adding starts");
            let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
            let code = Totp::default().generate(&secret, now).to_string();
            block_on(tf.finish_adding_authenticator(&carol.user, &code)).expect("added");
            secrets.push(secret);
        }
        secrets
    }

    /// Carol's row as stored, with her first authenticator first; the same row with her
    /// first and fifth authenticators swapped (ids, secrets, times and all); and with her
    /// second and fourth swapped: the same bytes, in other orders. Her labels all have the
    /// same length ("Phone 0" to "Phone 4"), so every order allocates the same sizes in the
    /// same sequence when the row is decoded.
    fn carol_orders(&self) -> [String; 3] {
        let (json, _) = self.tf.store().json(&self.carol.user).expect("carol's row");
        let row: serde_json::Value = serde_json::from_str(&json).expect("json");
        let swapped = |(i, j): (usize, usize)| {
            let mut row = row.clone();
            row["authenticators"]
                .as_array_mut()
                .expect("a list of authenticators")
                .swap(i, j);
            serde_json::to_string(&row).expect("json")
        };
        let orders = [swapped((0, 0)), swapped((0, 4)), swapped((1, 3))];
        assert!(orders.iter().all(|o| o.len() == orders[0].len()));
        orders
    }

    /// The set-up of every sample (outside the timed region): the clock moves on, the mailbox
    /// is emptied, and `start_login` hands out a pending login (`who`: 0 alice, 1 bob,
    /// 2 carol).
    fn start(&self, who: u8) -> PendingLogin {
        self.tf.clock().advance(TICK);
        self.tf.mailer().clear();
        let p = match who {
            0 => &self.alice,
            1 => &self.bob,
            _ => &self.carol,
        };
        block_on(self.tf.start_login(p, None, &self.ctx))
            .expect("start_login")
            .into_pending()
            .expect("a second step is asked for")
    }

    /// Alice's row as stored (JSON) and, for recovery code `i`, where one hex digit of its
    /// digest is in the row with that digit and another of the same kind (a digit for a digit,
    /// a letter for a letter): a [`Patch`] that plants the row with code `i` issued, or never.
    fn patch(&self, i: usize, differ: bool) -> Patch {
        let (json, _) = self.tf.store().json(&self.alice.user).expect("alice's row");
        let row: serde_json::Value = serde_json::from_str(&json).expect("json");
        let hex = row["recovery"]["codes"][i]["digest"]
            .as_str()
            .expect("a hex digest");
        let pos = json.find(hex).expect("the digest is in the row") + 31;
        let was = json.as_bytes()[pos];
        let other = match was {
            b'9' => b'0',
            b'f' => b'a',
            c => c + 1,
        };
        Patch {
            row: json.into_bytes(),
            pos,
            bytes: [was, if differ { other } else { was }],
        }
    }

    /// Plants `patch`'s row for `class` as alice's, as a table writer would (the record is
    /// decoded from it by the next load, outside the timed region). Both classes copy the
    /// same bytes and write one byte at the same place: only its value differs.
    fn plant(&self, patch: &Patch, class: u8) {
        let mut row = patch.row.clone();
        row[patch.pos] = patch.bytes[usize::from(class)];
        let row = String::from_utf8(row).expect("ascii");
        self.tf.store().insert_json(&self.alice.user, row);
    }

    /// The timed call: `finish_login` with `factor`, as a tag (0 granted, 1 `InvalidCode`,
    /// 2 anything else).
    fn finish(&self, pending: &PendingLogin, factor: Factor<'_>) -> u64 {
        match block_on(self.tf.finish_login(pending, factor, None, &self.ctx)) {
            Ok(_) => 0,
            Err(Error::InvalidCode) => 1,
            Err(_) => 2,
        }
    }

    /// Alice's TOTP code at `step`.
    fn totp_at(&self, step: u64) -> Code {
        Totp::default().generate_at_step(&self.secret, step)
    }

    /// `code` with the digit at `pos` changed, so that it matches no step of the window at
    /// `now` (the same search for both classes).
    fn wrong_totp(&self, code: Code, pos: usize, now: u64) -> String {
        let text = code.to_string();
        for delta in 1..10u8 {
            let mut b = text.clone().into_bytes();
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let s = String::from_utf8(b).expect("digits");
            let c = Code::parse(&s, 6).expect("six digits");
            if Totp::default()
                .verify_code(&self.secret, c, now, None)
                .is_err()
            {
                return s;
            }
        }
        unreachable!("some digit matches no step")
    }
}

/// Enrolls `who` under the mailed-code policy: a login with the mailed code, then enrollment
/// with its proof. The app's secret and the enrollment.
fn enroll_by_mail(
    tf: &Service,
    who: &Principal,
    ctx: &LoginContext,
) -> (Secret, twofactor::account::Enrolled) {
    let pending = block_on(tf.start_login(who, None, ctx))
        .expect("start_login")
        .into_pending()
        .expect("a code is mailed");
    let mailed = tf.mailer().last_login_code_for(&who.user).expect("a code");
    let proof = block_on(tf.finish_login(&pending, Factor::MailedCode(&mailed), None, ctx))
        .expect("the mailed code logs in")
        .proof;
    let now = tf.clock().now();
    let started = block_on(tf.start_enrollment_with_proof(
        who,
        who.user.as_str(),
        Reauthenticated::at(now),
        &proof,
    ))
    .expect("enrollment starts");
    let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
    let code = Totp::default().generate(&secret, now).to_string();
    let enrolled = block_on(tf.finish_enrollment(&who.user, &code)).expect("enrolled");
    (secret, enrolled)
}

/// Alice's row, and one byte of it that differs between the classes.
struct Patch {
    row: Vec<u8>,
    pos: usize,
    bytes: [u8; 2],
}

/// `code` (a digit string or a recovery code) with the symbol at `pos` changed, its shape kept.
fn change_symbol(code: &str, pos: usize) -> String {
    let mut b = code.as_bytes().to_vec();
    b[pos] = match b[pos] {
        b'9' => b'0',
        b'0'..=b'8' => b[pos] + 1,
        b'z' => b'a',
        b'h' => b'j', // `i` is read as `1`: skip it
        b'k' => b'm', // `l` is read as `1`
        b'n' => b'p', // `o` is read as `0`
        b't' => b'v', // `u` is not a symbol
        c => c + 1,
    };
    String::from_utf8(b).expect("ascii")
}

#[allow(clippy::too_many_lines)]
fn record_rows(run: &mut Run) {
    // Calibration: class 1 runs a few more dependent additions (about 1-2 ns).
    let extra: u64 = std::env::var("DUDECT_CALIBRATION_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    run.measure(
        "calibration (artificial delay)",
        "+0 ops / +N ops",
        None,
        |class, _| 64 + u64::from(class) * extra,
        |&n| {
            let mut acc = 0u64;
            for i in 0..black_box(n) {
                acc = black_box(acc.wrapping_add(i));
            }
            acc
        },
    );

    // TOTP: SHA-1, 6 digits, 30 s, ±1 step (the defaults).
    let totp = Totp::default();
    let secret = Secret::from_bytes(vec![0x3d; 20]).expect("valid secret");
    let now = 1_700_000_010u64;
    let step = now / 30;
    let at = |s: u64| totp.generate_at_step(&secret, s);
    let first = at(step - 1);
    let last = at(step + 1);
    run.measure(
        "TOTP: matched step",
        "first / last step of the window",
        None,
        |class, _| if class == 0 { first } else { last },
        |&code| totp.verify_code(&secret, code, now, None).unwrap_or(0),
    );
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
    run.measure(
        "TOTP: digit that differs",
        "first / last digit wrong",
        None,
        |class, _| if class == 0 { d_first } else { d_last },
        |&code| totp.verify_code(&secret, code, now, None).unwrap_or(0),
    );
    let replayed = at(step);
    run.measure(
        "TOTP: replayed step",
        "replayed current step / a wrong code",
        None,
        |class, _| if class == 0 { replayed } else { d_last },
        |&code| {
            totp.verify_code(&secret, code, now, Some(step))
                .unwrap_or(0)
        },
    );

    // Recovery codes: a keyed set of 10, the first one used.
    let rec = RecoveryBench::new(10, &[0]);
    let used = RecoveryBench::parse(rec.code(0)).expect("a code");
    let second = RecoveryBench::parse(rec.code(1)).expect("a code");
    let tenth = RecoveryBench::parse(rec.code(9)).expect("a code");
    // Inputs that depend on nothing secret are fixed too: a fresh random input per sample
    // changes cache and branch-predictor state outside the comparison (a false positive).
    let never = RecoveryBench::parse(&never_issued()).expect("a code");
    run.measure(
        "Recovery code: used vs never issued",
        "used code / a code never issued",
        None,
        |class, _| {
            if class == 0 {
                used.clone()
            } else {
                never.clone()
            }
        },
        |p| u64::from(rec.check(p)),
    );
    run.measure(
        "Recovery code: position in the set",
        "2nd / 10th code (both unused)",
        None,
        |class, _| {
            if class == 0 {
                second.clone()
            } else {
                tenth.clone()
            }
        },
        |p| u64::from(rec.check(p)),
    );
    run.measure(
        "Recovery code: valid vs wrong",
        "unused code / a code never issued",
        None,
        |class, _| {
            if class == 0 {
                tenth.clone()
            } else {
                never.clone()
            }
        },
        |p| u64::from(rec.check(p)),
    );

    // Trusted devices: 10 devices.
    let dev = DeviceBench::new(10);
    let (t0, t9) = (dev.token(0).to_owned(), dev.token(9).to_owned());
    // Same shape, one hex digit off: parsing costs the same, only the comparison differs.
    let mut off = t9.clone().into_bytes();
    off[63] = if off[63] == b'0' { b'1' } else { b'0' };
    let t_off = String::from_utf8(off).expect("hex");
    run.measure(
        "Device token: position",
        "1st / 10th device's token",
        None,
        |class, _| if class == 0 { t0.clone() } else { t9.clone() },
        |t| dev.check(t).map_or(99, |i| i as u64),
    );
    run.measure(
        "Device token: match vs mismatch",
        "10th device's token / it with the last digit changed",
        None,
        |class, _| {
            if class == 0 {
                t9.clone()
            } else {
                t_off.clone()
            }
        },
        |t| dev.check(t).map_or(99, |i| i as u64),
    );

    // Mailed code (keyed).
    let mail = MailedBench::new();
    let code = mail.code().to_owned();
    let mut w = code.clone().into_bytes();
    w[5] = if w[5] == b'9' { b'0' } else { w[5] + 1 };
    let wrong_mail = String::from_utf8(w).expect("digits");
    run.measure(
        "Mailed code: right vs wrong",
        "the mailed code / a wrong code (last digit)",
        None,
        |class, _| {
            if class == 0 {
                code.clone()
            } else {
                wrong_mail.clone()
            }
        },
        |c| u64::from(mail.check(c)),
    );
}

/// A code never issued that parses like `code`: every symbol replaced by another of the same
/// class (digit for digit, letter for letter), hyphens kept. Parsing branches on the class of
/// each symbol (typed input, known to whoever typed it): a code of another pattern would be
/// parsed at another speed, a difference in the input rather than in the secret state.
fn look_alike(code: &str) -> String {
    const DIGITS: &[u8] = b"0123456789";
    const LETTERS: &[u8] = b"abcdefghjkmnpqrstvwxyz";
    let mut rng = Xs::new(11);
    code.bytes()
        .map(|c| {
            let pool = match c {
                b'0'..=b'9' => DIGITS,
                b'a'..=b'z' => LETTERS,
                _ => return char::from(c),
            };
            loop {
                let d = pool[(rng.next() % pool.len() as u64) as usize];
                if d != c {
                    return char::from(d);
                }
            }
        })
        .collect()
}

/// A fixed recovery code that was never issued (16 symbols, printed like an issued one).
fn never_issued() -> String {
    const ALPHA: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut rng0 = Xs::new(7);
    let mut s = String::new();
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(char::from(ALPHA[(rng0.next() % 32) as usize]));
    }
    s
}

/// The names of the service rows (for `DUDECT_ROWS`).
const SERVICE_ROWS: [&str; 13] = [
    "finish_login: A/A control",
    "finish_login: recovery code used vs never issued",
    "finish_login: recovery code used vs never issued, typed",
    "finish_login: typed-code control, two codes never issued",
    "finish_login: recovery code one symbol off an unused one",
    "finish_login: TOTP matched step",
    "finish_login: TOTP digit that differs",
    "finish_login: TOTP replayed vs wrong",
    "finish_login: mailed code digit that differs",
    "finish_login: TOTP of the first vs the last of 5 authenticators",
    "finish_login: TOTP one code, first vs last place of 5 authenticators",
    "finish_login: TOTP one code, first place of 5 authenticators, A/A control",
    "finish_login: TOTP one code, first place of 5 authenticators, placebo (2nd and 4th swapped)",
];

#[allow(clippy::too_many_lines)]
fn service_rows(run: &mut Run) {
    // Rows are named "finish_login: ..."; a filter that names none of them skips the set-up.
    if !SERVICE_ROWS.iter().any(|n| run.wants(n)) {
        return;
    }
    let host = Host::new();
    // Alice's row as it is (code 0 used, codes 1-9 unused), or with one hex digit of the
    // digest of code 0 (used) or code 9 (unused) changed: there, that code was never issued.
    // Same shape, same salt, same key, the same bytes written: only one byte's value differs.
    let same = host.patch(0, false);
    let without_0 = host.patch(0, true);
    let without_9 = host.patch(9, true);
    // Two typed codes in one buffer (so that both classes read the same memory): the used
    // code, and a code never issued that parses like it (same length, digits and letters in
    // the same places).
    let used = host.codes[0].clone();
    let never = look_alike(&used);
    let typed: [[u8; 19]; 2] = [
        used.as_bytes().try_into().expect("19 bytes"),
        never.as_bytes().try_into().expect("19 bytes"),
    ];
    // The control of that row: two codes never issued, of the same pattern again. What it
    // shows comes from which symbols are typed, not from the stored set.
    let never2 = look_alike(&never);
    let control: [[u8; 19]; 2] = [
        never.as_bytes().try_into().expect("19 bytes"),
        never2.as_bytes().try_into().expect("19 bytes"),
    ];
    // Both refused: an unused code with its last symbol changed.
    let near = change_symbol(&host.codes[9], 18);
    assert!(
        host.codes
            .iter()
            .all(|c| *c != never && *c != never2 && *c != near)
    );
    let recovery = |patch: &Patch, class: u8, code: &[u8]| {
        host.plant(patch, class);
        let code = String::from_utf8(code.to_vec()).expect("ascii");
        (host.start(0), code)
    };
    let finish_recovery =
        |(pending, code): &(PendingLogin, String)| host.finish(pending, Factor::RecoveryCode(code));

    run.measure(
        SERVICE_ROWS[0],
        "the used code, the row planted with the same byte in both classes (both refused)",
        Some([1, 1]),
        |class, _| recovery(&same, class, used.as_bytes()),
        finish_recovery,
    );
    run.measure(
        SERVICE_ROWS[1],
        "one typed code: the record holds it used / never issued it (both refused)",
        Some([1, 1]),
        |class, _| recovery(&without_0, class, used.as_bytes()),
        finish_recovery,
    );
    run.measure(
        SERVICE_ROWS[2],
        "one record: the used code / a code never issued of the same pattern (both refused)",
        Some([1, 1]),
        |class, _| recovery(&same, class, &typed[usize::from(class)]),
        finish_recovery,
    );
    run.measure(
        SERVICE_ROWS[3],
        "one record: two codes never issued, of the same pattern (both refused)",
        Some([1, 1]),
        |class, _| recovery(&same, class, &control[usize::from(class)]),
        finish_recovery,
    );
    run.measure(
        SERVICE_ROWS[4],
        "one typed code, one symbol off code 10: the record holds code 10 unused / never issued it (both refused)",
        Some([1, 1]),
        |class, _| recovery(&without_9, class, near.as_bytes()),
        finish_recovery,
    );

    // TOTP: grants against grants, refusals against refusals.
    host.plant(&same, 0);
    run.measure(
        SERVICE_ROWS[5],
        "first / last step of the window (both granted)",
        Some([0, 0]),
        |class, _| {
            let pending = host.start(0);
            let step = host.tf.clock().now() / 30;
            let code = host.totp_at(if class == 0 { step - 1 } else { step + 1 });
            (pending, code.to_string())
        },
        |(pending, code)| host.finish(pending, Factor::Totp(code)),
    );
    run.measure(
        SERVICE_ROWS[6],
        "first / last digit wrong (both refused)",
        Some([1, 1]),
        |class, _| {
            let pending = host.start(0);
            let now = host.tf.clock().now();
            let code = host.totp_at(now / 30);
            let pos = if class == 0 { 0 } else { 5 };
            (pending, host.wrong_totp(code, pos, now))
        },
        |(pending, code)| host.finish(pending, Factor::Totp(code)),
    );
    run.measure(
        SERVICE_ROWS[7],
        "the code just used / a wrong code, last digit (both refused)",
        Some([1, 1]),
        |class, _| {
            // Both classes log in with the current code first, then start again.
            let pending = host.start(0);
            let now = host.tf.clock().now();
            let code = host.totp_at(now / 30);
            assert_eq!(host.finish(&pending, Factor::Totp(&code.to_string())), 0);
            let wrong = host.wrong_totp(code, 5, now);
            host.tf.mailer().clear();
            let pending = block_on(host.tf.start_login(&host.alice, None, &host.ctx))
                .expect("start_login")
                .into_pending()
                .expect("a challenge");
            (pending, if class == 0 { code.to_string() } else { wrong })
        },
        |(pending, code)| host.finish(pending, Factor::Totp(code)),
    );

    // Five authenticators: the code of the first or of the last one (no early exit across
    // authenticators either).
    run.measure(
        SERVICE_ROWS[9],
        "carol's first / fifth authenticator, current step (both granted)",
        Some([0, 0]),
        |class, _| {
            let pending = host.start(2);
            let now = host.tf.clock().now();
            let secret = &host.carol_secrets[if class == 0 { 0 } else { 4 }];
            (pending, Totp::default().generate(secret, now).to_string())
        },
        |(pending, code)| host.finish(pending, Factor::Totp(code)),
    );

    // The same five authenticators, the same typed code (the first secret's), the record
    // planted before every sample with that authenticator first, or swapped with the fifth:
    // the classes differ in where the matching authenticator sits, not in what is typed.
    let orders = host.carol_orders();
    let place = |order: &str| {
        host.tf
            .store()
            .insert_json(&host.carol.user, order.to_owned());
        let pending = host.start(2);
        let now = host.tf.clock().now();
        let code = Totp::default().generate(&host.carol_secrets[0], now);
        (pending, code.to_string())
    };
    run.measure(
        SERVICE_ROWS[10],
        "carol's first secret typed; it is her first / fifth authenticator (both granted)",
        Some([0, 0]),
        |class, _| place(&orders[usize::from(class)]),
        |(pending, code)| host.finish(pending, Factor::Totp(code)),
    );
    // The placebo: the rows differ in their order as much as the row above's do (two
    // authenticators swapped), but the matching one is first in both. What this row reads
    // comes from the record's layout in memory, not from where the match is.
    run.measure(
        SERVICE_ROWS[12],
        "carol's first secret typed; it is first in both, her 2nd and 4th swapped in B (both granted)",
        Some([0, 0]),
        |class, _| place(&orders[if class == 0 { 0 } else { 2 }]),
        |(pending, code)| host.finish(pending, Factor::Totp(code)),
    );
    run.measure(
        SERVICE_ROWS[11],
        "carol's first secret typed; it is her first authenticator in both classes (both granted)",
        Some([0, 0]),
        |_, _| place(&orders[0]),
        |(pending, code)| host.finish(pending, Factor::Totp(code)),
    );

    // Mailed codes: bob is not enrolled, so start_login mails him a code.
    run.measure(
        SERVICE_ROWS[8],
        "first / last digit wrong (both refused)",
        Some([1, 1]),
        |class, _| {
            let pending = host.start(1);
            let code = host
                .tf
                .mailer()
                .last_login_code_for(&host.bob.user)
                .expect("a code was mailed");
            host.tf.mailer().clear();
            let pos = if class == 0 { 0 } else { code.len() - 1 };
            (pending, change_symbol(&code, pos))
        },
        |(pending, code)| host.finish(pending, Factor::MailedCode(code)),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let mut run = Run::from_env();
    eprintln!(
        "dudect: {} samples per row, seed {:#x}{}",
        run.samples,
        run.seed,
        if run.only.is_empty() {
            String::new()
        } else {
            format!(", rows matching {:?}", run.only)
        }
    );
    record_rows(&mut run);
    service_rows(&mut run);

    println!(
        "| Row | Classes | Samples (A / B) | max \\|t\\| | at crop | mean A (ns) | mean B (ns) | Verdict |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for r in &run.rows {
        println!("{}", format_row(r));
    }
}
