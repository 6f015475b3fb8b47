//! The stores under load: memory, SQLite (file, WAL) and PostgreSQL (a throwaway server started
//! by the benchmark itself, on disk with fsync on unless `TWOFACTOR_BENCH_PG=fast`).
//!
//! - `round_trip`: one `load` and one compare-and-swap `save` of an existing user.
//!
//! Run with `cargo bench --bench stores --all-features`; `benches/STORES.md` holds a recorded
//! run and the targets.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use twofactor::store::{PoolConfig, PostgresStore, SaveOutcome, SqliteStore, UserStore};
use twofactor::{MemoryStore, TwoFactorRecord, UserId};

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/common/pg.rs"]
mod pg;

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

/// `load` + `save` of one user, `iters` times in a row.
fn bench_round_trip<S: UserStore>(c: &mut Criterion, rt: &Runtime, name: &str, store: &S) {
    let user = UserId::new(format!("bench-{name}"));
    rt.block_on(async {
        let _ = store
            .save(&user, &TwoFactorRecord::default(), None)
            .await
            .expect("insert");
    });
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
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
    store: Arc<S>,
    clients: usize,
) {
    let users: Vec<UserId> = (0..clients)
        .map(|i| UserId::new(format!("bench-{name}-{i}")))
        .collect();
    rt.block_on(async {
        for user in &users {
            let _ = store
                .save(user, &TwoFactorRecord::default(), None)
                .await
                .expect("insert");
        }
    });
    let mut group = c.benchmark_group("round_trip_concurrent");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{name}/{clients}_clients"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                let per_client = iters.div_ceil(clients as u64);
                let tasks: Vec<_> = users
                    .iter()
                    .cloned()
                    .map(|user| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_client {
                                round_trip(&*store, &user).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("client");
                }
                // Report the time of `iters` operations even if rounding did a few more.
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per_client * clients as u64) as f64)
            })
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();

    let memory = Arc::new(MemoryStore::new());
    bench_round_trip(c, &rt, "memory", &*memory);

    let dir = temp_dir();
    let sqlite = rt
        .block_on(SqliteStore::open(dir.0.join("bench.db")))
        .expect("open SQLite");
    bench_round_trip(c, &rt, "sqlite_file", &sqlite);

    let durability = match std::env::var("TWOFACTOR_BENCH_PG").as_deref() {
        Ok("fast") => pg::Durability::Fast,
        _ => pg::Durability::Durable,
    };
    let server = pg::PgServer::start(durability);
    let postgres = rt.block_on(async {
        let url = server.fresh_database("bench").await;
        let store = PostgresStore::connect_with(&url, PoolConfig::new().max_connections(16))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        Arc::new(store)
    });
    bench_round_trip(c, &rt, "postgres", &*postgres);
    bench_round_trip_concurrent(c, &rt, "postgres", postgres.clone(), 16);

    rt.block_on(async {
        sqlite.close().await;
        postgres.close().await;
    });
    drop(server);
    drop(dir);
}

criterion_group! {
    name = stores;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(stores);
