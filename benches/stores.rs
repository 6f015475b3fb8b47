//! The stores under load: memory, SQLite (file, WAL) and PostgreSQL (a throwaway server started
//! by the benchmark itself, on disk with fsync on unless `TWOFACTOR_BENCH_PG=fast`).
//!
//! - `round_trip`: one `load` and one compare-and-swap `save` of an existing user.
//! - `round_trip_concurrent`: the same from 16 clients at once, each on its own user.
//! - `full_login`: `start_login` + `finish_login` with a TOTP code through the `TwoFactor`
//!   service (policy: 2FA required), each iteration at the next 30 s time step so replay
//!   protection admits it. Codes are computed before the clock starts (that is the user's
//!   app's work). `start_login` only loads (a TOTP challenge stores nothing), `finish_login`
//!   loads and saves the used step: one load+save round trip plus one load per login.
//! - `full_login/memory_sealed`: the memory store behind `SealedStore` (secrets encrypted at
//!   rest with XChaCha20-Poly1305).
//! - `full_login_concurrent`: 16 clients, each its own user and clock, one store (PostgreSQL:
//!   one pool of 16 connections).
//!
//! After criterion, a paired comparison alternates short blocks of round trips and logins per
//! store and reports medians (robust to the load of a shared machine drifting during the run),
//! then PostgreSQL round trips and logins per second with 16 clients, over TCP loopback and
//! over the server's Unix socket, on disk with fsync and in memory: nine rounds of 1 s blocks
//! (after a warm-up round), the four blocks in an order that rotates every round.
//!
//! Before those, the paired sealing comparison: memory logins and round trips with and without
//! `SealedStore` (logins 30 s and 16 minutes apart, and sealed with its cache of opened rows
//! off), in blocks whose order rotates every round; then the parts of a sealed load and save
//! (encoding, HMAC, AEAD, OS RNG) timed the same way. `-- sealing` runs only it. `benches/seal_cost.rs` counts the same
//! logins' instructions. Then a login against five authenticators paired with one against
//! one (the code of the last of the five; target under 2x). `-- authenticators` runs only that.
//!
//! Run with `cargo bench --bench stores --all-features`; `benches/STORES.md` holds a recorded
//! run and the targets.

use std::cell::OnceCell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use tokio::runtime::Runtime;
use twofactor::account::TwoFactorRecord;
use twofactor::seal::Keyring;
use twofactor::store::{
    DynStore, DynUserStore, PoolConfig, PostgresStore, SaveOutcome, SqliteStore, UserStore,
};
use twofactor::{MemoryStore, UserId};

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/common/pg.rs"]
mod pg;

/// The login client this bench and `benches/seal_cost.rs` share.
#[path = "common/login.rs"]
mod login;
use login::{Client, sealed_memory};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("twofactor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

async fn round_trip<S: UserStore>(store: &S, user: &UserId) {
    let loaded = store
        .load(user)
        .await
        .expect("load")
        .expect("user has a record");
    let outcome = store
        .save(user, black_box(&loaded.record), Some(loaded.version))
        .await
        .expect("save");
    assert!(matches!(outcome, SaveOutcome::Saved(_)));
}

/// A real record: enrolled, ten hashed recovery codes, a used step. What a login loads and
/// saves, so that round trips and logins move the same bytes.
fn enrolled_record(rt: &Runtime) -> TwoFactorRecord {
    rt.block_on(async {
        let store = Arc::new(MemoryStore::new());
        let client = Client::enrolled(store.clone(), "sample").await;
        client.login(&client.next_codes(1)[0]).await;
        let loaded = store.load(&client.who.user).await.expect("load");
        loaded.expect("record").record
    })
}

/// `load` + `save` of one user, `iters` times in a row.
fn bench_round_trip<S: UserStore>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: &impl Fn() -> Arc<S>,
) {
    let user = UserId::new(format!("bench-{name}"));
    let mut state = None;
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        let store = &**state.get_or_insert_with(|| {
            let store = store();
            let record = enrolled_record(rt);
            rt.block_on(async {
                let _ = store.save(&user, &record, None).await.expect("insert");
            });
            store
        });
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    round_trip(store, &user).await;
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

/// `clients` tasks each doing round trips on their own user: throughput of the store under
/// concurrency.
fn bench_round_trip_concurrent<S: UserStore + 'static>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: &impl Fn() -> Arc<S>,
    clients: usize,
) {
    let users: Vec<UserId> = (0..clients)
        .map(|i| UserId::new(format!("bench-{name}-{i}")))
        .collect();
    let mut state = None;
    let mut group = c.benchmark_group("round_trip_concurrent");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{name}/{clients}_clients"), |b| {
        let store = state.get_or_insert_with(|| {
            let store = store();
            let record = enrolled_record(rt);
            rt.block_on(async {
                for user in &users {
                    let _ = store.save(user, &record, None).await.expect("insert");
                }
            });
            store
        });
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                let per_client = iters.div_ceil(clients as u64);
                all_clients(users.iter().cloned().map(|user| {
                    let store = store.clone();
                    async move {
                        for _ in 0..per_client {
                            round_trip(&*store, &user).await;
                        }
                    }
                }))
                .await;
                scaled(started.elapsed(), iters, per_client * clients as u64)
            })
        });
    });
    group.finish();
}

/// Runs one task per client and waits for all of them.
async fn all_clients<F>(clients: impl IntoIterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = clients.into_iter().map(tokio::spawn).collect();
    for task in tasks {
        task.await.expect("client");
    }
}

/// The time `done` operations took, scaled to the `iters` criterion asked for (the clients
/// split the work evenly, so rounding may have done a few more).
fn scaled(elapsed: Duration, iters: u64, done: u64) -> Duration {
    elapsed.mul_f64(iters as f64 / done as f64)
}

fn bench_full_login<S: UserStore + 'static>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: &impl Fn() -> Arc<S>,
) {
    let mut state = None;
    let mut group = c.benchmark_group("full_login");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        let client = state.get_or_insert_with(|| {
            rt.block_on(Client::enrolled(store(), &format!("login-{name}")))
        });
        b.iter_custom(|iters| {
            let codes = client.next_codes(iters);
            rt.block_on(async {
                let started = Instant::now();
                for code in &codes {
                    client.login(code).await;
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

fn bench_full_login_concurrent<S: UserStore + 'static>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: &impl Fn() -> Arc<S>,
    clients: usize,
) {
    let mut state = None;
    let mut group = c.benchmark_group("full_login_concurrent");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{name}/{clients}_clients"), |b| {
        let all: &Vec<Arc<Client<S>>> = state.get_or_insert_with(|| {
            let store = store();
            rt.block_on(async {
                let mut all = Vec::new();
                for i in 0..clients {
                    all.push(Arc::new(
                        Client::enrolled(store.clone(), &format!("login-{name}-{i}")).await,
                    ));
                }
                all
            })
        });
        b.iter_custom(|iters| {
            let per_client = iters.div_ceil(clients as u64);
            let codes: Vec<_> = all.iter().map(|c| c.next_codes(per_client)).collect();
            rt.block_on(async {
                let started = Instant::now();
                all_clients(
                    all.iter()
                        .cloned()
                        .zip(codes)
                        .map(|(client, codes)| async move {
                            for code in &codes {
                                client.login(code).await;
                            }
                        }),
                )
                .await;
                scaled(started.elapsed(), iters, per_client * clients as u64)
            })
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();

    let memory = Arc::new(MemoryStore::new());
    let memory = || memory.clone();
    bench_round_trip(c, &rt, "memory", &memory);
    bench_full_login(c, &rt, "memory", &memory);
    // The same memory store behind the run-time adapter (`DynStore`): one boxed future per
    // call.
    let dynamic: Arc<DynStore> = Arc::new(Arc::new(MemoryStore::new()));
    let dynamic = || dynamic.clone();
    bench_round_trip(c, &rt, "memory_dyn", &dynamic);
    bench_full_login(c, &rt, "memory_dyn", &dynamic);
    let sealed = Arc::new(sealed_memory());
    let sealed = || sealed.clone();
    bench_full_login(c, &rt, "memory_sealed", &sealed);

    // Each store is set up on first use: `cargo bench -- memory` starts no database.
    let dir = temp_dir();
    let sqlite = OnceCell::new();
    let sqlite = || {
        sqlite
            .get_or_init(|| {
                let store = rt.block_on(SqliteStore::open(dir.0.join("bench.db")));
                Arc::new(store.expect("open SQLite"))
            })
            .clone()
    };
    bench_round_trip(c, &rt, "sqlite_file", &sqlite);
    bench_full_login(c, &rt, "sqlite_file", &sqlite);

    // Measured on disk with fsync (as deployed) under `cargo bench`; in memory without fsync
    // when `TWOFACTOR_BENCH_PG=fast`, and in test mode (`cargo test`/`nextest`: one
    // iteration each, just checking that the benchmarks run).
    let measuring = std::env::args().any(|a| a == "--bench");
    let durability = match std::env::var("TWOFACTOR_BENCH_PG").as_deref() {
        Ok("fast") => pg::Durability::Fast,
        _ if !measuring => pg::Durability::Fast,
        _ => pg::Durability::Durable,
    };
    let server = OnceCell::new();
    let postgres = OnceCell::new();
    let postgres = || {
        postgres
            .get_or_init(|| {
                let server = server.get_or_init(|| pg::PgServer::start(durability));
                rt.block_on(async { connect_pg(&server.fresh_database("bench").await).await })
            })
            .clone()
    };
    bench_round_trip(c, &rt, "postgres", &postgres);
    bench_full_login(c, &rt, "postgres", &postgres);
    bench_round_trip_concurrent(c, &rt, "postgres", &postgres, 16);
    bench_full_login_concurrent(c, &rt, "postgres", &postgres, 16);
}

/// A migrated PostgreSQL store with a pool of 16 connections.
async fn connect_pg(url: &str) -> Arc<PostgresStore> {
    let config = PoolConfig::new().max_connections(16);
    let store = PostgresStore::connect_with(url, config)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// Medians of per-round figures from short alternating blocks: robust to the load of a
/// shared machine drifting during the run, which criterion's sequential groups are not.
fn paired_comparison() {
    const ROUNDS: usize = 15;
    let rt = runtime();
    println!("\npaired comparison: {ROUNDS} rounds, round trips and full logins alternating");
    println!("| store | load+save round trip | full login | login / round trip |");
    println!("|---|---|---|---|");

    async fn paired<S: UserStore + 'static>(name: &str, store: Arc<S>, calls: u64) {
        let client = Client::enrolled(store.clone(), &format!("paired-{name}")).await;
        let user = UserId::new(format!("paired-rt-{name}"));
        let record = {
            let loaded = store.load(&client.who.user).await.expect("load");
            loaded.expect("record").record
        };
        let _ = store.save(&user, &record, None).await.expect("insert");
        let (mut rts, mut logins, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let codes = client.next_codes(calls);
            let mut rt_time = Duration::ZERO;
            let mut login_time = Duration::ZERO;
            for half in 0..2 {
                if (half + round) % 2 == 0 {
                    let t = Instant::now();
                    for _ in 0..calls {
                        round_trip(&*store, &user).await;
                    }
                    rt_time = t.elapsed() / u32::try_from(calls).expect("calls");
                } else {
                    let t = Instant::now();
                    for code in &codes {
                        client.login(code).await;
                    }
                    login_time = t.elapsed() / u32::try_from(calls).expect("calls");
                }
            }
            rts.push(rt_time);
            logins.push(login_time);
            ratios.push(login_time.as_secs_f64() / rt_time.as_secs_f64());
        }
        let median_d = |v: &mut Vec<Duration>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        ratios.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.2?} | {:.2?} | {:.2} |",
            median_d(&mut rts),
            median_d(&mut logins),
            ratios[ratios.len() / 2]
        );
    }

    rt.block_on(paired("memory", Arc::new(MemoryStore::new()), 20_000));
    rt.block_on(paired("memory, sealed", Arc::new(sealed_memory()), 20_000));
    let dir = temp_dir();
    let sqlite = rt
        .block_on(SqliteStore::open(dir.0.join("paired.db")))
        .expect("open SQLite");
    rt.block_on(paired("sqlite_file", Arc::new(sqlite), 300));
    for durability in [pg::Durability::Durable, pg::Durability::Fast] {
        let server = pg::PgServer::start(durability);
        let url = rt.block_on(server.fresh_database("paired"));
        let tcp = rt.block_on(connect_pg(&url));
        let name = format!("postgres ({durability:?})");
        rt.block_on(paired(&name, tcp.clone(), 100));
        let unix = rt.block_on(connect_pg(&server.socket_url(&url)));
        let mut concurrent = Vec::new();
        for (transport, store) in [("TCP loopback", tcp), ("Unix socket", unix)] {
            let load = rt.block_on(Load::new(store, &format!("{durability:?}-{transport}"), 16));
            concurrent.push((transport, load));
        }
        // Every (transport, operation) pair runs once per round, 1 s each, in an order that
        // rotates every round; the first round warms the pools up and is not counted.
        let mut rates = vec![[Vec::new(), Vec::new()]; concurrent.len()];
        let blocks = concurrent.len() * 2;
        for round in 0..=CONCURRENT_ROUNDS {
            for k in 0..blocks {
                let block = (k + round) % blocks;
                let (which, op) = (block / 2, block % 2);
                let rate = rt.block_on(concurrent[which].1.run(op == 1, Duration::from_secs(1)));
                if round > 0 {
                    rates[which][op].push(rate);
                }
            }
        }
        for ((transport, _), [trips, logins]) in concurrent.iter().zip(&mut rates) {
            let (trips, logins) = (Spread::of(trips), Spread::of(logins));
            println!(
                "| {name}, 16 clients, {transport} | {trips} round trips/s | {logins} logins/s | {:.2} |",
                trips.median / logins.median
            );
        }
        for (_, load) in &concurrent {
            rt.block_on(load.store.close());
        }
        drop(server);
    }
}

/// Rounds of the 16-client comparison (plus one warm-up round).
const CONCURRENT_ROUNDS: usize = 9;

/// Median and range of per-round rates.
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

impl Spread {
    fn of(rates: &mut [f64]) -> Spread {
        rates.sort_by(f64::total_cmp);
        Spread {
            median: rates[rates.len() / 2],
            low: rates[0],
            high: rates[rates.len() - 1],
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} ({:.0}-{:.0})", self.median, self.low, self.high)
    }
}

/// 16 clients on one PostgreSQL store, each with its own user: logging in, or doing bare
/// round trips on a user of its own holding the same record.
struct Load {
    store: Arc<PostgresStore>,
    clients: Vec<Arc<Client<PostgresStore>>>,
    users: Vec<UserId>,
}

impl Load {
    async fn new(store: Arc<PostgresStore>, name: &str, n: usize) -> Load {
        let mut clients = Vec::new();
        let mut users = Vec::new();
        for i in 0..n {
            let client = Client::enrolled(store.clone(), &format!("{name}-{i}")).await;
            let record = store.load(&client.who.user).await.expect("load");
            let user = UserId::new(format!("{name}-rt-{i}"));
            let record = record.expect("enrolled").record;
            let _ = store.save(&user, &record, None).await.expect("insert");
            clients.push(Arc::new(client));
            users.push(user);
        }
        Load {
            store,
            clients,
            users,
        }
    }

    /// Operations per second with every client busy until `length` has passed: logins
    /// (`login`) or bare load+save round trips.
    async fn run(&self, login: bool, length: Duration) -> f64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        // Enough codes that no client runs out before the deadline (2,000 per second each).
        let n = 2_000 * length.as_secs().max(1);
        let codes: Vec<_> = self.clients.iter().map(|c| c.next_codes(n)).collect();
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + length;
        let clients = self.clients.iter().cloned().zip(codes);
        all_clients(
            clients
                .zip(self.users.iter().cloned())
                .map(|((client, codes), user)| {
                    let (store, done) = (self.store.clone(), done.clone());
                    async move {
                        let mut codes = codes.iter();
                        while Instant::now() < deadline {
                            if login {
                                client.login(codes.next().expect("enough codes")).await;
                            } else {
                                round_trip(&*store, &user).await;
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }),
        )
        .await;
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    }
}

/// Runs `f` (`n` calls of something): nanoseconds per call, by the wall clock.
fn timed(n: u64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e9 / n as f64
}

/// `n` logins of `client` in a row, `every` seconds apart: nanoseconds per login.
fn timed_logins<S: UserStore>(rt: &Runtime, client: &Client<S>, n: u64, every: u64) -> f64 {
    let codes = client.next_codes_every(n, every);
    timed(n, || {
        rt.block_on(async {
            for code in &codes {
                client.login(code).await;
            }
        });
    })
}

/// `n` load+save round trips of `user` on `store` in a row: nanoseconds per round trip.
fn timed_round_trips<S: UserStore>(rt: &Runtime, store: &S, user: &UserId, n: u64) -> f64 {
    timed(n, || {
        rt.block_on(async {
            for _ in 0..n {
                round_trip(store, user).await;
            }
        });
    })
}

/// What sealing adds to an in-memory login, paired: blocks of logins and round trips on the
/// memory store and on a memory store behind `SealedStore` alternate (order rotating every
/// round), so both sides run under the same load; then the parts of a sealed load and save,
/// timed the same way through the public API.
fn paired_sealing() {
    use twofactor::seal::SecretCipher;
    use twofactor::store::codec::{decode_record, encode_record};

    const ROUNDS: usize = 21;
    const LOGINS: u64 = 5_000;
    let rt = runtime();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };

    // Logins and round trips, unsealed against sealed: seven blocks per round, in an order
    // that rotates every round: memory and sealed logins 30 s apart, the same 16 minutes
    // apart, sealed logins 30 s apart with the store's cache of opened rows off, memory and
    // sealed round trips. Logins 30 s apart are the bench's usual ones (the record then
    // remembers about 30 used login tickets: 3.7 KB stored); 16 minutes apart, a ticket has
    // expired by the next login (one used ticket: 1.7 KB). Round trips run on a user of their
    // own holding the same record as the 30 s logins, so that they do not move the logins'
    // version under the service's snapshot. Each client is its own user on its own store.
    const CADENCES: [u64; 2] = [30, 960];
    let (plains, sealeds) = rt.block_on(async {
        let (mut plains, mut sealeds) = (Vec::new(), Vec::new());
        for (every, cached) in [(30, true), (960, true), (30, false)] {
            let store = if cached {
                sealed_memory()
            } else {
                sealed_memory().cache_capacity(0)
            };
            let sealed = Client::enrolled(Arc::new(store), "pair-sealed").await;
            // The used-ticket list at its steady state before the first block.
            sealed.warm_up(200, every).await;
            sealeds.push((sealed, every));
        }
        for every in CADENCES {
            let plain = Client::enrolled(Arc::new(MemoryStore::new()), "pair-plain").await;
            plain.warm_up(200, every).await;
            plains.push((plain, every));
        }
        (plains, sealeds)
    });
    let (plain, sealed) = (&plains[0].0, &sealeds[0].0);
    let trip_user = UserId::new("pair-round-trip");
    rt.block_on(async {
        for (store, user) in [
            (&**plain.tf.store() as &dyn DynUserStore, &plain.who.user),
            (&**sealed.tf.store(), &sealed.who.user),
        ] {
            let record = store.load(user).await.expect("load").expect("record");
            let _ = store
                .save(&trip_user, &record.record, None)
                .await
                .expect("insert");
        }
    });
    // Blocks 0, 2: memory logins (30 s, 16 min); 1, 3, 4: sealed logins (30 s, 16 min, 30 s
    // uncached); 5, 6: round trips. Rows: (label, memory block, sealed block).
    const BLOCKS: usize = 7;
    const ROWS: [(&str, usize, usize); 3] = [
        ("every 30 s", 0, 1),
        ("every 960 s", 2, 3),
        ("every 30 s, cache off", 0, 4),
    ];
    // Per block, and per row the paired difference and ratio.
    let mut times = vec![Vec::new(); BLOCKS];
    let mut diffs = vec![Vec::new(); ROWS.len()];
    let mut ratios = vec![Vec::new(); ROWS.len()];
    for round in 0..ROUNDS {
        let mut per = [0.0; BLOCKS];
        for k in 0..BLOCKS {
            let which = (k + round) % BLOCKS;
            per[which] = match which {
                0 | 2 => {
                    let (client, every) = &plains[which / 2];
                    timed_logins(&rt, client, LOGINS, *every)
                }
                1 | 3 | 4 => {
                    let (client, every) = &sealeds[[0, 0, 0, 1, 2][which]];
                    timed_logins(&rt, client, LOGINS, *every)
                }
                5 => timed_round_trips(&rt, plain.tf.store(), &trip_user, LOGINS),
                _ => timed_round_trips(&rt, sealed.tf.store(), &trip_user, LOGINS),
            };
        }
        for (t, v) in times.iter_mut().zip(per) {
            t.push(v);
        }
        for (r, &(_, memory, sealed)) in ROWS.iter().enumerate() {
            diffs[r].push(per[sealed] - per[memory]);
            ratios[r].push(per[sealed] / per[memory]);
        }
    }
    println!(
        "\npaired sealing: {ROUNDS} rounds of {LOGINS} logins and {LOGINS} round trips a side, \
         alternating"
    );
    println!(
        "| logins | memory login | sealed login | overhead per login | sealed / memory | \
         memory round trip | sealed round trip |"
    );
    println!("|---|---|---|---|---|---|---|");
    let pt = median(&mut times[5]);
    let st = median(&mut times[6]);
    for (r, &(label, memory, sealed)) in ROWS.iter().enumerate() {
        println!(
            "| {label} | {:.0} ns | {:.0} ns | {:.0} ns | {:.2} | {pt:.0} ns | {st:.0} ns |",
            median(&mut times[memory]),
            median(&mut times[sealed]),
            median(&mut diffs[r]),
            median(&mut ratios[r]),
        );
    }

    // The parts, through the public API, on the record the sealed login stores.
    let keyring = Keyring::new("bench", &[7; 32]).expect("key");
    let store = sealed.tf.store().clone();
    let user = sealed.who.user.clone();
    let (stored, opened) = rt.block_on(async {
        let stored = store.inner().load(&user).await.expect("load").expect("row");
        let opened = store.load(&user).await.expect("load").expect("row");
        (stored, opened)
    });
    // The memory store's own load and save, on a store of its own holding the same record.
    let bare = MemoryStore::new();
    let _ = rt
        .block_on(bare.save(&user, &stored.record, None))
        .expect("insert");
    let text = encode_record(&stored.record).expect("encode");
    // The record of the logins 16 minutes apart (one used ticket): what a typical save encodes
    // and tags.
    let small = {
        let client = &sealeds[1].0;
        let row = rt.block_on(client.tf.store().inner().load(&client.who.user));
        row.expect("load").expect("row").record
    };
    let small_text = encode_record(&small).expect("encode");
    let secret = [0x42u8; 20];
    let ad = format!("twofactor/secret/v1\0active\0{}", user.as_str());
    let sealed_secret = keyring.seal(&secret, ad.as_bytes()).expect("seal");
    let tag = keyring.tag_record(text.as_bytes()).expect("tag");
    type Part<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let parts: Vec<Part<'_>> = vec![
        (
            "memory load",
            Box::new(|| {
                black_box(rt.block_on(bare.load(&user)).expect("load"));
            }),
        ),
        (
            "sealed load",
            Box::new(|| {
                black_box(rt.block_on(store.load(&user)).expect("load"));
            }),
        ),
        (
            "sealed load, cache off",
            Box::new(|| {
                let uncached = &sealeds[2].0;
                black_box(rt.block_on(uncached.tf.store().load(&uncached.who.user))).expect("load");
            }),
        ),
        (
            "memory load + save",
            Box::new(|| {
                let v = rt.block_on(bare.load(&user)).expect("load").expect("row");
                let saved = rt.block_on(bare.save(&user, &v.record, Some(v.version)));
                assert!(matches!(saved.expect("save"), SaveOutcome::Saved(_)));
            }),
        ),
        (
            "memory load + sealed save",
            Box::new(|| {
                let v = rt
                    .block_on(store.inner().load(&user))
                    .expect("load")
                    .expect("row");
                let saved = rt.block_on(store.save(&user, &opened.record, Some(v.version)));
                assert!(matches!(saved.expect("save"), SaveOutcome::Saved(_)));
            }),
        ),
        (
            "record clone",
            Box::new(|| {
                black_box(black_box(&stored.record).clone());
            }),
        ),
        (
            "encode (`encode_record`)",
            Box::new(|| {
                black_box(encode_record(black_box(&stored.record)).expect("encode"));
            }),
        ),
        (
            "encode (`encode_record`), 16-min record",
            Box::new(|| {
                black_box(encode_record(black_box(&small)).expect("encode"));
            }),
        ),
        (
            "decode (serde_json)",
            Box::new(|| {
                black_box(decode_record(black_box(&text)).expect("decode"));
            }),
        ),
        (
            "HMAC-SHA-256 tag",
            Box::new(|| {
                black_box(keyring.tag_record(black_box(text.as_bytes())).expect("tag"));
            }),
        ),
        (
            "HMAC-SHA-256 tag, 16-min record",
            Box::new(|| {
                black_box(
                    keyring
                        .tag_record(black_box(small_text.as_bytes()))
                        .expect("tag"),
                );
            }),
        ),
        (
            "HMAC-SHA-256 verify",
            Box::new(|| {
                keyring
                    .verify_record(&tag, black_box(text.as_bytes()))
                    .expect("verify");
            }),
        ),
        (
            "XChaCha20-Poly1305 seal",
            Box::new(|| {
                black_box(
                    keyring
                        .seal(black_box(&secret), ad.as_bytes())
                        .expect("seal"),
                );
            }),
        ),
        (
            "XChaCha20-Poly1305 open",
            Box::new(|| {
                black_box(
                    keyring
                        .open(black_box(&sealed_secret), ad.as_bytes())
                        .expect("open"),
                );
            }),
        ),
        (
            "OS RNG, 24 bytes",
            Box::new(|| {
                use rand::TryRng as _;
                let mut nonce = [0u8; 24];
                rand::rngs::SysRng.try_fill_bytes(&mut nonce).expect("rng");
                black_box(nonce);
            }),
        ),
    ];
    const CALLS: u32 = 2_000;
    let mut times = vec![Vec::new(); parts.len()];
    for round in 0..ROUNDS {
        for k in 0..parts.len() {
            let i = (k + round) % parts.len();
            let t = Instant::now();
            for _ in 0..CALLS {
                (parts[i].1)();
            }
            times[i].push(t.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS));
        }
    }
    println!(
        "\nsealing parts ({} bytes stored; the 16-min record {} bytes): median of {ROUNDS} rounds",
        text.len(),
        small_text.len()
    );
    println!("| part | time |");
    println!("|---|---|");
    for ((name, _), t) in parts.iter().zip(&mut times) {
        println!("| {name} | {:.0} ns |", median(t));
    }
}

/// A login against five authenticators against a login against one, paired: blocks of each
/// alternate (order swapped every round) on the memory store; the median of the per-round
/// ratios. The target: under 2x.
fn paired_authenticators() {
    const ROUNDS: usize = 21;
    const LOGINS: u64 = 5_000;
    let rt = runtime();
    let (one, five) = rt.block_on(async {
        let one = Client::with_authenticators(Arc::new(MemoryStore::new()), "one", 1).await;
        let five = Client::with_authenticators(Arc::new(MemoryStore::new()), "five", 5).await;
        (one, five)
    });
    let (mut a, mut b, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (t1, t5) = if round % 2 == 0 {
            let t1 = timed_logins(&rt, &one, LOGINS, 30);
            (t1, timed_logins(&rt, &five, LOGINS, 30))
        } else {
            let t5 = timed_logins(&rt, &five, LOGINS, 30);
            (timed_logins(&rt, &one, LOGINS, 30), t5)
        };
        a.push(t1);
        b.push(t5);
        r.push(t5 / t1);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\npaired authenticators: {ROUNDS} rounds of {LOGINS} memory logins a side, alternating"
    );
    println!("| 1 authenticator | 5 authenticators | 5 / 1 (median of rounds) |");
    println!("|---|---|---|");
    println!(
        "| {:.0} ns | {:.0} ns | {:.2} |",
        median(&mut a),
        median(&mut b),
        median(&mut r)
    );
}

criterion_group! {
    name = stores;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = benches
}

fn main() {
    stores();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking, not in test mode (`cargo test`, nextest, `cargo bench -- --test`).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list") {
        // `-- sealing` runs only the sealing comparison, `-- authenticators` only the login
        // against one and five authenticators (no database is started for either).
        let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
        let only = |name: &str| filter.is_some_and(|f| f.contains(name));
        if only("authenticators") {
            paired_authenticators();
            return;
        }
        paired_sealing();
        paired_authenticators();
        if !only("sealing") {
            paired_comparison();
        }
    }
}
