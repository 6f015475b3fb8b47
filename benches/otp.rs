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

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use twofactor::{Secret, Totp};

const KEY: &[u8; 20] =
    b"\x3d\xc6\xca\xa4\x82\x4a\x6d\x28\x87\x67\xb2\x33\x1e\x20\xb4\x31\x66\xcb\x85\xd9";
const NOW: u64 = 1_700_000_000;

/// A 6-digit code that no step in `[now - 1, now + 1]` produces.
fn wrong_code(totp: &Totp, secret: &Secret) -> String {
    (0u32..)
        .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
        .find(|c| totp.verify(secret, c, NOW, None).is_err())
        .expect("some code misses")
}

fn bench_otp(c: &mut Criterion) {
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
    let wrong = wrong_code(&ours, &secret);
    // Both libraries must agree before their speed means anything.
    assert_eq!(theirs.generate(NOW).to_string(), current);
    assert_eq!(ours.verify(&secret, &current, NOW, None), Ok(NOW / 30));
    assert_eq!(theirs.check(&current, NOW), Some(NOW / 30));
    assert!(ours.verify(&secret, &wrong, NOW, None).is_err());
    assert_eq!(theirs.check(&wrong, NOW), None);

    let mut group = c.benchmark_group("totp_sha1_6d_skew1");
    group.bench_function("twofactor/verify/wrong_code", |b| {
        b.iter(|| {
            ours.verify(
                black_box(&secret),
                black_box(wrong.as_str()),
                black_box(NOW),
                None,
            )
        });
    });
    group.bench_function("totp-rs/check/wrong_code", |b| {
        b.iter(|| theirs.check(black_box(wrong.as_str()), black_box(NOW)));
    });
    group.bench_function("twofactor/verify/current_step", |b| {
        b.iter(|| {
            ours.verify(
                black_box(&secret),
                black_box(current.as_str()),
                black_box(NOW),
                None,
            )
        });
    });
    group.bench_function("totp-rs/check/current_step", |b| {
        b.iter(|| theirs.check(black_box(current.as_str()), black_box(NOW)));
    });
    group.bench_function("twofactor/generate", |b| {
        b.iter(|| ours.generate(black_box(&secret), black_box(NOW)).value());
    });
    group.bench_function("totp-rs/generate", |b| {
        b.iter(|| theirs.generate(black_box(NOW)));
    });
    group.finish();
}

criterion_group!(benches, bench_otp);
criterion_main!(benches);
