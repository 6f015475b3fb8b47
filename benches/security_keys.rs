//! The cost of finishing a login with a security key (feature `webauthn`): twofactor's
//! `finish_security_key_login` against what a host writing it by hand on webauthn-rs would
//! pay at least: parsing the browser's JSON, webauthn-rs's own
//! `finish_securitykey_authentication`, and one store round trip (load + save of the
//! user's record) on the same in-memory store. Target: at most 1.2×.
//!
//! Ours does more: it checks the sealed login ticket (HMAC) and that it is unused, finds the
//! ceremony in the record, updates the stored credential (counter, backup state), marks the
//! ticket used, issues a sealed second-factor proof (HMAC), and records audit events (to a
//! sink that drops them here). The browser's answers are made beforehand by a software key
//! (webauthn-authenticator-rs's `SoftToken`), outside the timing; each answer is used once.
//!
//! `cargo bench --bench security_keys --features webauthn`: criterion per side, then a paired
//! comparison (short blocks of the two sides alternating, median of the per-round ratios) so
//! that both run under the same load on a shared machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group};
use twofactor::account::{LoginContext, Reauthenticated, RelyingParty, Settings};
use twofactor::audit::{AuditEvent, AuditSink};
use twofactor::store::UserStore;
use twofactor::{EnrollmentStatus, LoginDecision, MemoryStore, PendingLogin, Principal};
use twofactor::{Requirement, TwoFactor, UserId};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse, SecurityKey,
    SecurityKeyAuthentication, Url,
};

const ORIGIN: &str = "https://example.com";
const USERS: usize = 48;

/// Audit events dropped: the bench measures the library, not a log.
struct NoAudit;
impl AuditSink for NoAudit {
    fn record(&self, _: &AuditEvent) {}
}

fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}

type Service = TwoFactor<
    Arc<MemoryStore>,
    twofactor::mail::NoMailer,
    fn(&Principal, &EnrollmentStatus, u64) -> Requirement,
    twofactor::clock::SystemClock,
    NoAudit,
>;

struct Bench {
    rt: tokio::runtime::Runtime,
    tf: Service,
    rp: RelyingParty,
    /// The baseline's store, holding the same records.
    theirs: MemoryStore,
    users: Vec<(Principal, SecurityKey)>,
    key: WebauthnAuthenticator<SoftToken>,
    origin: Url,
    next: usize,
}

impl Bench {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let rp = RelyingParty::new("example.com", ORIGIN, "Bench").expect("relying party");
        let settings = Settings::builder()
            .security_keys(rp.clone())
            .build()
            .expect("settings");
        let store = Arc::new(MemoryStore::new());
        let tf: Service = TwoFactor::builder(store.clone())
            .settings(settings)
            .keys(twofactor::testing::test_keys())
            .policy(required as fn(&Principal, &EnrollmentStatus, u64) -> Requirement)
            .audit(NoAudit)
            .build();
        let (token, _) = SoftToken::new(true).expect("a soft token");
        let mut key = WebauthnAuthenticator::new(token);
        let origin = Url::parse(ORIGIN).expect("origin");
        let theirs = MemoryStore::new();
        let mut users = Vec::new();
        for i in 0..USERS {
            let who = Principal::new(format!("user{i}"));
            let options = rt
                .block_on(tf.start_security_key_registration(
                    &who,
                    "Key",
                    who.user.as_str(),
                    who.user.as_str(),
                    Reauthenticated::at(now()),
                    None,
                ))
                .expect("start registration");
            let options: CreationChallengeResponse =
                serde_json::from_str(options.options_json()).expect("options");
            let answer = key
                .do_registration(origin.clone(), options)
                .expect("registers");
            let answer = serde_json::to_string(&answer).expect("JSON");
            rt.block_on(tf.finish_security_key_registration(&who.user, &answer))
                .expect("finish registration");
            let record = rt
                .block_on(store.load(&who.user))
                .expect("load")
                .expect("record")
                .record;
            let json = serde_json::to_value(&record).expect("JSON");
            let credential: SecurityKey = serde_json::from_value(
                json["authenticators"][0]["factor"]["security_key"]["credential"].clone(),
            )
            .expect("webauthn-rs's credential");
            let saved = rt
                .block_on(theirs.save(&who.user, &record, None))
                .expect("save");
            assert!(matches!(saved, twofactor::store::SaveOutcome::Saved(_)));
            users.push((who, credential));
        }
        Bench {
            rt,
            tf,
            rp,
            theirs,
            users,
            key,
            origin,
            next: 0,
        }
    }

    fn user(&mut self) -> usize {
        self.next = (self.next + 1) % self.users.len();
        self.next
    }

    /// A login of a user up to the key's answer: the ticket and the answer.
    fn ours_ready(&mut self) -> (PendingLogin, String) {
        let i = self.user();
        let who = self.users[i].0.clone();
        let decision = self
            .rt
            .block_on(self.tf.start_login(&who, None, &LoginContext::new()))
            .expect("start login");
        let LoginDecision::Challenge { pending } = decision else {
            panic!("{decision:?}")
        };
        let options = self
            .rt
            .block_on(self.tf.start_security_key_login(&pending))
            .expect("start key login");
        let options: RequestChallengeResponse =
            serde_json::from_str(options.options_json()).expect("options");
        let answer = self
            .key
            .do_authentication(self.origin.clone(), options)
            .expect("signs");
        (pending, serde_json::to_string(&answer).expect("JSON"))
    }

    /// The baseline up to the key's answer: the user, webauthn-rs's state and the answer.
    fn theirs_ready(&mut self) -> (UserId, SecurityKeyAuthentication, String) {
        let i = self.user();
        let (who, credential) = &self.users[i];
        let (options, state) = self
            .rp
            .webauthn()
            .start_securitykey_authentication(std::slice::from_ref(credential))
            .expect("start");
        let answer = self
            .key
            .do_authentication(self.origin.clone(), options)
            .expect("signs");
        (
            who.user.clone(),
            state,
            serde_json::to_string(&answer).expect("JSON"),
        )
    }

    fn ours(&self, (pending, answer): &(PendingLogin, String)) {
        let granted = self
            .rt
            .block_on(self.tf.finish_security_key_login(
                pending,
                answer,
                None,
                &LoginContext::new(),
            ))
            .expect("login");
        std::hint::black_box(granted);
    }

    fn theirs(&self, (user, state, answer): &(UserId, SecurityKeyAuthentication, String)) {
        let answer: PublicKeyCredential = serde_json::from_str(answer).expect("JSON");
        let result = self
            .rp
            .webauthn()
            .finish_securitykey_authentication(&answer, state)
            .expect("webauthn-rs accepts it");
        std::hint::black_box(result);
        self.rt.block_on(async {
            let v = self.theirs.load(user).await.expect("load").expect("record");
            let saved = self
                .theirs
                .save(user, &v.record, Some(v.version))
                .await
                .expect("save");
            assert!(matches!(saved, twofactor::store::SaveOutcome::Saved(_)));
        });
    }
}

fn now() -> u64 {
    use twofactor::Clock;
    twofactor::clock::SystemClock.now()
}

fn bench_finish(c: &mut Criterion) {
    let b = std::cell::RefCell::new(Bench::new());
    let mut group = c.benchmark_group("security_key_login");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("twofactor/finish_security_key_login", |bench| {
        bench.iter_batched(
            || b.borrow_mut().ours_ready(),
            |ready| b.borrow().ours(&ready),
            BatchSize::PerIteration,
        );
    });
    group.bench_function(
        "webauthn-rs/finish_securitykey_authentication+store",
        |bench| {
            bench.iter_batched(
                || b.borrow_mut().theirs_ready(),
                |ready| b.borrow().theirs(&ready),
                BatchSize::PerIteration,
            );
        },
    );
    group.finish();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Rounds of `CALLS` prepared logins per side, the order alternating; the median of the
/// per-round ratios (both sides under the same load).
fn paired_comparison() {
    const ROUNDS: usize = 41;
    const CALLS: usize = 24;
    let mut b = Bench::new();
    println!("\npaired comparison: {ROUNDS} rounds of {CALLS} logins per side, order alternating");
    let (mut ours_us, mut theirs_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let ours: Vec<_> = (0..CALLS).map(|_| b.ours_ready()).collect();
        let theirs: Vec<_> = (0..CALLS).map(|_| b.theirs_ready()).collect();
        let time_ours = |b: &Bench| {
            let start = Instant::now();
            for r in &ours {
                b.ours(r);
            }
            start.elapsed()
        };
        let time_theirs = |b: &Bench| {
            let start = Instant::now();
            for r in &theirs {
                b.theirs(r);
            }
            start.elapsed()
        };
        let (o, t) = if round % 2 == 0 {
            let o = time_ours(&b);
            (o, time_theirs(&b))
        } else {
            let t = time_theirs(&b);
            (time_ours(&b), t)
        };
        if round == 0 {
            continue; // warm-up
        }
        let per_call = |d: Duration| d.as_secs_f64() * 1e6 / CALLS as f64;
        ours_us.push(per_call(o));
        theirs_us.push(per_call(t));
        ratios.push(o.as_secs_f64() / t.as_secs_f64());
    }
    println!(
        "| finish a key login | twofactor | webauthn-rs + load + save | ratio (median of rounds) |"
    );
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| memory store | {:.1} µs | {:.1} µs | {:.2}× |",
        median(&mut ours_us),
        median(&mut theirs_us),
        median(&mut ratios)
    );
}

criterion_group!(benches, bench_finish);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let testing = args.iter().any(|a| a == "--test" || a == "--list");
    if testing {
        // `cargo test --benches`: one login of each side, checked.
        let mut b = Bench::new();
        let ready = b.ours_ready();
        b.ours(&ready);
        let ready = b.theirs_ready();
        b.theirs(&ready);
        println!("security_keys bench: both sides work");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if args.iter().any(|a| a == "--bench") {
        paired_comparison();
    }
}
