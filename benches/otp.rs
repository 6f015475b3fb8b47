//! TOTP verification and generation, twofactor against totp-rs 6, in one run.
//!
//! Both sides: SHA-1, 6 digits, 30 s steps, ±1 step, the same 160-bit secret already decoded
//! into bytes, the same time. Run with `cargo bench --bench otp`; `benches/RESULTS.md` holds a
//! recorded run.
//!
//! - `wrong_code`: a well-formed code that matches no step in the window. This is the worst
//!   case for both (every step is computed) and what an online guesser triggers.
//! - `current_step`: the code of the current step, what a person usually types. twofactor still
//!   computes all three steps (constant time); totp-rs stops at the first match (two steps).
//!
//! Criterion measures each benchmark on its own, seconds apart; on a shared machine the load
//! changes in between, and so would a ratio of two criterion medians. So after criterion, a
//! paired comparison alternates short blocks of the two libraries (order swapped every round)
//! and prints the median of the per-round ratios: both sides always run under the same load.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use twofactor::{Secret, Totp};

const KEY: &[u8; 20] =
    b"\x3d\xc6\xca\xa4\x82\x4a\x6d\x28\x87\x67\xb2\x33\x1e\x20\xb4\x31\x66\xcb\x85\xd9";
const NOW: u64 = 1_700_000_000;

struct Setup {
    secret: Secret,
    ours: Totp,
    theirs: totp_rs::Totp,
    current: String,
    wrong: String,
}

fn setup() -> Setup {
    let secret = Secret::from_bytes(KEY.to_vec()).expect("valid secret");
    let ours = Totp::default();
    assert_eq!(
        (ours.digits(), ours.period(), ours.skew()),
        (6, 30, 1),
        "defaults changed: the comparison would no longer be like for like"
    );
    let theirs = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(KEY.to_vec())
        .build()
        .expect("totp-rs accepts a 160-bit secret");

    let current = ours.generate(&secret, NOW).to_string();
    // A 6-digit code that no step in [now - 1, now + 1] produces.
    let wrong = (0u32..)
        .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
        .find(|c| ours.verify(&secret, c, NOW, None).is_err())
        .expect("some code misses");
    // Both libraries must agree before their speed means anything.
    assert_eq!(theirs.generate(NOW).to_string(), current);
    assert_eq!(ours.verify(&secret, &current, NOW, None), Ok(NOW / 30));
    assert_eq!(theirs.check(&current, NOW), Some(NOW / 30));
    assert!(ours.verify(&secret, &wrong, NOW, None).is_err());
    assert_eq!(theirs.check(&wrong, NOW), None);
    Setup {
        secret,
        ours,
        theirs,
        current,
        wrong,
    }
}

/// One benchmarked operation per library: `(name, ours, theirs)`.
type Pair<'a> = (&'a str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);

fn pairs(s: &Setup) -> Vec<Pair<'_>> {
    vec![
        (
            "verify/wrong_code",
            Box::new(|| {
                black_box(s.ours.verify(
                    black_box(&s.secret),
                    black_box(s.wrong.as_str()),
                    black_box(NOW),
                    None,
                ))
                .ok();
            }),
            Box::new(|| {
                black_box(s.theirs.check(black_box(s.wrong.as_str()), black_box(NOW)));
            }),
        ),
        (
            "verify/current_step",
            Box::new(|| {
                black_box(s.ours.verify(
                    black_box(&s.secret),
                    black_box(s.current.as_str()),
                    black_box(NOW),
                    None,
                ))
                .ok();
            }),
            Box::new(|| {
                black_box(
                    s.theirs
                        .check(black_box(s.current.as_str()), black_box(NOW)),
                );
            }),
        ),
        (
            "generate",
            Box::new(|| {
                black_box(
                    s.ours
                        .generate(black_box(&s.secret), black_box(NOW))
                        .value(),
                );
            }),
            Box::new(|| {
                black_box(s.theirs.generate(black_box(NOW)));
            }),
        ),
    ]
}

fn bench_otp(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("totp_sha1_6d_skew1");
    for (name, ours, theirs) in pairs(&s) {
        group.bench_function(format!("twofactor/{name}"), |b| b.iter(&ours));
        // totp-rs calls it `check`.
        let their_name = name.replace("verify", "check");
        group.bench_function(format!("totp-rs/{their_name}"), |b| b.iter(&theirs));
    }
    group.finish();
}

fn time_block(f: &dyn Fn(), calls: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The paired comparison described in the crate docs above.
fn paired_comparison() {
    const ROUNDS: usize = 301;
    const CALLS: u32 = 2_000;
    let s = setup();
    println!("\npaired comparison: {ROUNDS} rounds of {CALLS} calls per side, order alternating");
    println!(
        "| benchmark | twofactor | totp-rs 6.0 | ratio twofactor / totp-rs (median of rounds) |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for (name, ours, theirs) in pairs(&s) {
        time_block(&ours, CALLS); // warm up
        time_block(&theirs, CALLS);
        let (mut ours_ns, mut theirs_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (o, t) = if round % 2 == 0 {
                let o = time_block(&ours, CALLS);
                (o, time_block(&theirs, CALLS))
            } else {
                let t = time_block(&theirs, CALLS);
                (time_block(&ours, CALLS), t)
            };
            let per_call = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(CALLS);
            ours_ns.push(per_call(o));
            theirs_ns.push(per_call(t));
            ratios.push(o.as_secs_f64() / t.as_secs_f64());
        }
        println!(
            "| {name} | {:.0} ns | {:.0} ns | {:.2}× |",
            median(&mut ours_ns),
            median(&mut theirs_ns),
            median(&mut ratios)
        );
    }
}

criterion_group!(benches, bench_otp);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking, not in test mode (`cargo test`, nextest, `cargo bench -- --test`).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list") {
        paired_comparison();
    }
}
