//! What sealing adds to an in-memory login, in instructions: deterministic, unlike time on a
//! shared machine. The same TOTP login as `benches/stores.rs` times (`start_login` +
//! `finish_login` through the `TwoFactor` service, one user, precomputed codes), on the
//! memory store and on the memory store behind `SealedStore` with a `Keyring`.
//!
//! `cargo bench --bench seal_cost --features seal` runs this binary six more times under
//! `valgrind --tool=callgrind` (Debian: `apt-get install valgrind`): each of [`STORES`] (the
//! sealed store also with its cache of opened rows off), with logins 30 s apart and 16
//! minutes apart (see [`CADENCES`]). Each run enrolls the user, logs in 200
//! times to reach the steady state (the used-ticket list, the caches), then counts the
//! instructions of [`measured`] alone (`--collect-atstart=no --toggle-collect`) over the next
//! `SEAL_COST_LOGINS` logins (default 2,000). It prints instructions per login both ways,
//! their difference and ratio, and keeps the callgrind files beside the binary
//! (`target/release/seal_cost.<store>.<seconds>s.callgrind`) for `callgrind_annotate
//! --inclusive=yes`.
//!
//! Valgrind's virtual CPU has no SHA extensions: `sha2` takes its portable path there, so
//! SHA-256 (the record tag, and the login's own HMACs) weighs more in these counts than in
//! time on a CPU with SHA-NI. Read them for what changed, the timing bench for microseconds.
//!
//! `seal_cost child <plain|sealed> <n> <seconds apart>` is one such run without valgrind (the
//! parent calls it so); under `cargo test` (`--test`) a short child run of each checks it
//! works.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tokio::runtime::Runtime;
use twofactor::MemoryStore;
use twofactor::store::UserStore;

// Shared with `benches/stores.rs`, which uses more of it.
#[allow(dead_code)]
#[path = "common/login.rs"]
mod login;
use login::{Client, sealed_memory};

/// Logins before the counted ones: the used-ticket list and every cache reach their steady
/// state.
const WARM_UP: u64 = 200;

/// How far apart the logins are, in seconds: a login every time step, as `benches/stores.rs`
/// times it (the record then remembers about 30 used login tickets, ≈ 3.7 KB stored), and one
/// every 16 minutes (one used ticket, ≈ 1.7 KB).
const CADENCES: [u64; 2] = [30, 960];

/// The stores: memory, memory behind `SealedStore`, and the same with its cache of opened
/// rows off (`cache_capacity(0)`: every load checks the tag and opens the secret).
const STORES: [&str; 3] = ["plain", "sealed", "sealed-uncached"];

/// The counted logins: the only function callgrind collects in (not inlined, so that it is
/// one symbol to toggle on).
#[inline(never)]
fn measured<S: UserStore>(rt: &Runtime, client: &Client<S>, codes: &[(u64, [u8; 6])]) {
    rt.block_on(async {
        for code in codes {
            client.login(code).await;
        }
    });
}

/// `n` counted logins `every` seconds apart on the `store` named, after the warm-up.
fn child(store: &str, n: u64, every: u64) {
    // One thread: the whole login runs inside `measured`, nothing on a worker callgrind
    // would not attribute to it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match store {
        "plain" => run(&rt, Arc::new(MemoryStore::new()), n, every),
        "sealed" => run(&rt, Arc::new(sealed_memory()), n, every),
        "sealed-uncached" => run(&rt, Arc::new(sealed_memory().cache_capacity(0)), n, every),
        other => panic!("unknown store {other:?}: plain, sealed or sealed-uncached"),
    }
}

fn run<S: UserStore>(rt: &Runtime, store: Arc<S>, n: u64, every: u64) {
    let client = rt.block_on(Client::enrolled(store, "seal-cost"));
    // The warm-up outside `measured`: not collected.
    rt.block_on(client.warm_up(WARM_UP, every));
    let codes = client.next_codes_every(n, every);
    measured(rt, &client, &codes);
}

/// The instructions callgrind counted in `file` (its `totals:` line).
fn totals(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file).expect("callgrind output");
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .expect("a totals line")
}

/// Runs `child <store> <n> <every>` under callgrind: instructions per login, and the output
/// file.
fn callgrind(store: &str, n: u64, every: u64) -> (f64, PathBuf) {
    let exe = std::env::current_exe().expect("own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let out = dir.join(format!("seal_cost.{store}.{every}s.callgrind"));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=seal_cost::measured*")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["child", store, &n.to_string(), &every.to_string()])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("valgrind {store}: {s}"),
        Err(err) => panic!("valgrind not found ({err}): apt-get install valgrind"),
    }
    (totals(&out) as f64 / n as f64, out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let number = |i: usize| args.get(i).and_then(|n| n.parse().ok()).expect("a number");
        child(args.get(2).expect("store"), number(3), number(4));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test") {
        // `cargo test`: the child runs, briefly, without valgrind.
        for every in CADENCES {
            for store in STORES {
                child(store, 3, every);
            }
        }
        return;
    }
    let n = std::env::var("SEAL_COST_LOGINS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    println!("\nseal cost: instructions per in-memory login, {n} logins after {WARM_UP}");
    println!(
        "| logins | memory login | sealed login | overhead per login | sealed / memory | \
         sealed, cache off | its overhead |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut files = Vec::new();
    for every in CADENCES {
        let [plain, sealed, uncached] = STORES.map(|store| {
            let (per_login, out) = callgrind(store, n, every);
            files.push(out);
            per_login
        });
        println!(
            "| every {every} s | {plain:.0} | {sealed:.0} | {:.0} | {:.2} | {uncached:.0} | {:.0} |",
            sealed - plain,
            sealed / plain,
            uncached - plain
        );
    }
    println!("\ncallgrind files:");
    for file in files {
        println!("  {}", file.display());
    }
}
