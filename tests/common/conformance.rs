//! The store conformance suite: what every [`UserStore`] must do, as generic async functions.
//!
//! `tests/store_conformance.rs` runs each of them against every store of the crate (memory,
//! SQLite in memory and on file, PostgreSQL). To check your own store, copy this file and
//! call the functions with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Barrier;
use twofactor::account::TwoFactorRecord;
use twofactor::store::codec::{EncodedRecord, encode_record};
use twofactor::store::{Loaded, SaveOutcome, UserStore, Version, Versioned};
use twofactor::{MemoryStore, UserId};

/// The record as JSON: how tests compare records (they have no `PartialEq`).
pub fn json(record: &TwoFactorRecord) -> String {
    serde_json::to_string(record).expect("a record serializes")
}

/// The version of a `Saved`, or a panic naming `what`.
#[track_caller]
pub fn saved(outcome: SaveOutcome, what: &str) -> Version {
    match outcome {
        SaveOutcome::Saved(v) => v,
        SaveOutcome::Conflict => panic!("{what}: expected Saved, got Conflict"),
    }
}

async fn load_some<S: UserStore>(store: &S, user: &UserId) -> Versioned {
    store
        .load(user)
        .await
        .expect("load succeeds")
        .unwrap_or_else(|| panic!("{user} has a record"))
}

/// Asserts that `user`'s stored record is `record` (compared as JSON) at `version`.
async fn assert_stored<S: UserStore>(
    store: &S,
    user: &UserId,
    version: Version,
    record: &TwoFactorRecord,
    what: &str,
) {
    let loaded = load_some(store, user).await;
    assert_eq!(loaded.version, version, "{what}: version");
    assert_eq!(json(&loaded.record), json(record), "{what}: record");
}

/// An unknown user loads as `Ok(None)`.
pub async fn load_unknown_is_none<S: UserStore>(store: &S) {
    let loaded = store
        .load(&UserId::new("nobody"))
        .await
        .expect("load succeeds");
    assert!(loaded.is_none(), "unknown user must load as None");
}

/// `save(None)` inserts once; a second `save(None)` is a `Conflict` and changes nothing.
pub async fn insert_if_absent<S: UserStore>(store: &S, record: &TwoFactorRecord) {
    let user = UserId::new("insert-once");
    let v1 = saved(
        store.save(&user, record, None).await.expect("save"),
        "first insert",
    );
    assert_eq!(v1, Version(1), "a new record starts at version 1");
    let loaded = load_some(store, &user).await;
    assert_eq!(loaded.version, v1);

    let again = store
        .save(&user, &TwoFactorRecord::default(), None)
        .await
        .expect("save");
    assert_eq!(
        again,
        SaveOutcome::Conflict,
        "insert over an existing record"
    );
    assert_stored(store, &user, v1, record, "a refused insert writes nothing").await;
}

/// A save with the current version bumps it by exactly one, every time.
pub async fn save_bumps_version_by_one<S: UserStore>(store: &S) {
    let user = UserId::new("bump");
    let record = TwoFactorRecord::default();
    let mut version = saved(
        store.save(&user, &record, None).await.expect("save"),
        "insert",
    );
    for _ in 0..5 {
        let next = saved(
            store
                .save(&user, &record, Some(version))
                .await
                .expect("save"),
            "save with the current version",
        );
        assert_eq!(
            next,
            Version(version.0 + 1),
            "version goes up by exactly one"
        );
        assert_eq!(load_some(store, &user).await.version, next);
        version = next;
    }
}

/// A stale version is a `Conflict` and writes nothing; so is a version for a user without
/// a record, and a version no store can hold.
pub async fn stale_version_conflicts<S: UserStore>(
    store: &S,
    first: &TwoFactorRecord,
    second: &TwoFactorRecord,
) {
    let user = UserId::new("stale");
    let v1 = saved(
        store.save(&user, first, None).await.expect("save"),
        "insert",
    );
    let v2 = saved(
        store.save(&user, second, Some(v1)).await.expect("save"),
        "update",
    );

    for stale in [v1, Version(v2.0 + 1), Version(0), Version(u64::MAX)] {
        let outcome = store.save(&user, first, Some(stale)).await.expect("save");
        assert_eq!(
            outcome,
            SaveOutcome::Conflict,
            "save with version {stale:?}"
        );
    }
    assert_stored(store, &user, v2, second, "conflicting saves write nothing").await;

    let ghost = UserId::new("ghost");
    let outcome = store.save(&ghost, first, Some(v1)).await.expect("save");
    assert_eq!(
        outcome,
        SaveOutcome::Conflict,
        "update of a user without a record"
    );
    assert!(
        store.load(&ghost).await.expect("load").is_none(),
        "and nothing created"
    );
}

/// What is saved is what is loaded, field for field (compared as JSON).
pub async fn round_trip<S: UserStore>(store: &S, records: &[TwoFactorRecord]) {
    let user = UserId::new("round-trip");
    let mut expected = None;
    for record in records {
        let v = saved(
            store.save(&user, record, expected).await.expect("save"),
            "round-trip save",
        );
        assert_stored(store, &user, v, record, "the record survives the store").await;
        expected = Some(v);
    }
}

/// The encoded path (`save_encoded`, `load_encoded`), implemented by the store or the
/// trait's default, keeps the compare-and-swap and agrees with `save` and `load`: the same
/// record at the same version, and any text returned is the text written, byte for byte.
pub async fn encoded_path<S: UserStore>(store: &S, records: &[TwoFactorRecord]) {
    let user = UserId::new("encoded");
    let mut expected = None;
    for record in records {
        let encoded = EncodedRecord::encode(record.clone()).expect("encode");
        let stale = expected.map_or(Some(Version(u64::MAX)), |_| None);
        assert_eq!(
            store
                .save_encoded(&user, encoded.clone(), stale)
                .await
                .expect("save"),
            SaveOutcome::Conflict,
            "a stale encoded save conflicts"
        );
        let v = saved(
            store
                .save_encoded(&user, encoded.clone(), expected)
                .await
                .expect("save"),
            "encoded save",
        );
        assert_stored(store, &user, v, record, "saved encoded, loaded plain").await;
        let loaded = store.load_encoded(&user).await.expect("load").expect("row");
        let (loaded, version) = match loaded {
            Loaded::Decoded(loaded) => (loaded.record, loaded.version),
            Loaded::Encoded(loaded, version) => {
                assert_eq!(loaded.text(), encoded.text(), "the text as written");
                (loaded.into_record(), version)
            }
        };
        assert_eq!(version, v, "loaded encoded: version");
        assert_eq!(json(&loaded), json(record), "loaded encoded: record");
        assert_eq!(
            encode_record(&loaded).expect("encode"),
            encoded.text(),
            "canonical"
        );
        expected = Some(v);
    }
}

/// Users are independent: saving one never touches another's record or version, and user
/// ids are data, not SQL (quotes, Unicode, very long).
pub async fn users_are_independent<S: UserStore>(
    store: &S,
    first: &TwoFactorRecord,
    second: &TwoFactorRecord,
) {
    let long = "x".repeat(4000);
    let users = [
        UserId::new("alice"),
        UserId::new("Alice"),
        UserId::new("bob'); DROP TABLE twofactor_records; --"),
        UserId::new("zoë 🦀 \"quoted\" \\ back"),
        UserId::new(""),
        UserId::new(long),
    ];
    for (i, user) in users.iter().enumerate() {
        let record = if i % 2 == 0 { first } else { second };
        saved(
            store.save(user, record, None).await.expect("save"),
            "insert",
        );
    }
    // Three more saves for alice only.
    let mut v = load_some(store, &users[0]).await.version;
    for _ in 0..3 {
        v = saved(
            store.save(&users[0], second, Some(v)).await.expect("save"),
            "update alice",
        );
    }
    assert_eq!(v, Version(4));
    for (i, user) in users.iter().enumerate().skip(1) {
        let loaded = load_some(store, user).await;
        assert_eq!(
            loaded.version,
            Version(1),
            "{user:?} untouched by alice's saves"
        );
        let record = if i % 2 == 0 { first } else { second };
        assert_eq!(
            json(&loaded.record),
            json(record),
            "{user:?} keeps its own record"
        );
    }
    assert!(
        store
            .load(&UserId::new("ALICE"))
            .await
            .expect("load")
            .is_none(),
        "user ids are case-sensitive"
    );
}

/// `racers` tasks insert the same new user at once: exactly one wins.
pub async fn concurrent_insert_race<S: UserStore + 'static>(store: Arc<S>, racers: usize) {
    for round in 0..5 {
        let user = UserId::new(format!("race-{round}"));
        let barrier = Arc::new(Barrier::new(racers));
        let tasks: Vec<_> = (0..racers)
            .map(|_| {
                let (store, user, barrier) = (store.clone(), user.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .save(&user, &TwoFactorRecord::default(), None)
                        .await
                        .expect("save")
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            if let SaveOutcome::Saved(v) = task.await.expect("task") {
                assert_eq!(v, Version(1));
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "exactly one of {racers} racing inserts wins");
        assert_eq!(load_some(&*store, &user).await.version, Version(1));
    }
}

/// The counter test: `tasks` tasks each increment the version once with load → save,
/// retrying on `Conflict`. No increment may be lost: the final version is 1 + `tasks`, and
/// every success saw a distinct version.
pub async fn no_lost_update<S: UserStore + 'static>(store: Arc<S>, tasks: usize) {
    let user = UserId::new("counter");
    saved(
        store
            .save(&user, &TwoFactorRecord::default(), None)
            .await
            .expect("save"),
        "insert",
    );
    let conflicts = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, user) = (store.clone(), user.clone());
            let (conflicts, barrier) = (conflicts.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                loop {
                    let current = load_some(&*store, &user).await;
                    match store
                        .save(&user, &current.record, Some(current.version))
                        .await
                        .expect("save")
                    {
                        SaveOutcome::Saved(v) => return (current.version, v),
                        SaveOutcome::Conflict => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                        }
                    }
                }
            })
        })
        .collect();
    let mut versions = Vec::with_capacity(tasks);
    for handle in handles {
        let (seen, new) = handle.await.expect("task");
        assert_eq!(
            new,
            Version(seen.0 + 1),
            "lost update: a save over version {seen:?} made version {new:?}"
        );
        versions.push(new.0);
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len(),
        tasks,
        "lost update: two tasks made the same version"
    );
    let last = load_some(&*store, &user).await.version;
    assert_eq!(
        last,
        Version(1 + tasks as u64),
        "lost update: {tasks} increments ({} conflicts retried)",
        conflicts.load(Ordering::Relaxed)
    );
}

/// A row that does not decode is an `Err` for which `is_corrupt` holds, never `Ok(None)`
/// (that would read as "no 2FA"). The row still exists: an insert over it is a `Conflict`.
pub async fn corrupt_row_is_an_error<S: UserStore>(
    store: &S,
    user: &UserId,
    is_corrupt: impl Fn(&S::Error) -> bool,
) {
    match store.load(user).await {
        Err(e) => assert!(is_corrupt(&e), "wrong error for a corrupt row: {e:?}"),
        Ok(None) => panic!("a corrupt row loaded as None: it would read as 'no 2FA'"),
        Ok(Some(_)) => panic!("a corrupt row loaded as a record"),
    }
    let insert = store
        .save(user, &TwoFactorRecord::default(), None)
        .await
        .expect("save");
    assert_eq!(insert, SaveOutcome::Conflict, "insert over a corrupt row");
    // Other users are unaffected.
    load_unknown_is_none(store).await;
}

/// With the database gone every call is an `Err` for which `is_unavailable` holds: never
/// `Ok(None)` for a user who has a record (that would read as "no 2FA"), and never a save.
pub async fn gone_database_fails_closed<S: UserStore>(
    store: &S,
    enrolled: &UserId,
    version: Version,
    is_unavailable: impl Fn(&S::Error) -> bool,
) {
    for user in [enrolled, &UserId::new("nobody")] {
        match store.load(user).await {
            Err(e) => assert!(
                is_unavailable(&e),
                "wrong error for load of {user:?}: {e:?}"
            ),
            Ok(loaded) => panic!("load of {user:?} with the database gone: Ok({loaded:?})"),
        }
    }
    let record = TwoFactorRecord::default();
    for expected in [None, Some(version)] {
        match store.save(enrolled, &record, expected).await {
            Err(e) => assert!(is_unavailable(&e), "wrong error for save: {e:?}"),
            Ok(outcome) => panic!("save with the database gone: Ok({outcome:?})"),
        }
    }
}

/// Several handles on one database used in turn, call by call: stands for several processes
/// or app servers sharing it.
pub struct RoundRobin<S> {
    stores: Vec<Arc<S>>,
    next: AtomicU64,
}

impl<S> RoundRobin<S> {
    pub fn new(stores: Vec<Arc<S>>) -> Self {
        assert!(!stores.is_empty());
        RoundRobin {
            stores,
            next: AtomicU64::new(0),
        }
    }

    fn pick(&self) -> &S {
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        &self.stores[n % self.stores.len()]
    }
}

impl<S: UserStore> UserStore for RoundRobin<S> {
    type Error = S::Error;

    fn load(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Versioned>, Self::Error>> + Send {
        self.pick().load(user)
    }

    fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<SaveOutcome, Self::Error>> + Send {
        self.pick().save(user, record, expected)
    }
}

/// A store WITHOUT compare-and-swap (last writer wins, as a naive `UPDATE ... WHERE user_id`
/// would): the suite must catch it.
pub struct LastWriterWins(pub MemoryStore);

impl UserStore for LastWriterWins {
    type Error = <MemoryStore as UserStore>::Error;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, Self::Error> {
        let loaded = self.0.load(user).await;
        // Let concurrent requests interleave between load and save, as network round trips do.
        tokio::task::yield_now().await;
        loaded
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        _expected: Option<Version>,
    ) -> Result<SaveOutcome, Self::Error> {
        loop {
            let current = self.0.load(user).await?.map(|v| v.version);
            if let SaveOutcome::Saved(v) = self.0.save(user, record, current).await? {
                return Ok(SaveOutcome::Saved(v));
            }
        }
    }
}

/// `list_users` pages through every user that has a record, in ascending order, each once,
/// whatever the page size; an empty store lists nobody.
pub async fn list_users_pages_through_everyone<S: twofactor::store::ListUsers>(store: &S) {
    assert!(
        store.list_users(None, 10).await.expect("list").is_empty(),
        "an empty store lists nobody"
    );
    // Ids whose byte order differs from insertion order; a prefix of another; digits.
    let names = [
        "mallory", "alice", "bob", "al", "zoe", "10", "9", "Bob", "émile",
    ];
    for name in names {
        let _ = saved(
            store
                .save(&UserId::new(name), &TwoFactorRecord::default(), None)
                .await
                .expect("save"),
            "insert",
        );
    }
    let mut sorted: Vec<UserId> = names.iter().map(|n| UserId::new(*n)).collect();
    sorted.sort();
    for page_size in [1, 2, 4, 9, 100] {
        let mut all = Vec::new();
        let mut after: Option<UserId> = None;
        loop {
            let page = store
                .list_users(after.as_ref(), page_size)
                .await
                .expect("list");
            assert!(page.len() <= page_size, "a page holds at most its size");
            all.extend(page.iter().cloned());
            if page.len() < page_size {
                break;
            }
            after = page.last().cloned();
        }
        // Every user once; ascending in the store's order (byte order for these stores,
        // except PostgreSQL's collation, which may order case and accents otherwise).
        let mut seen = all.clone();
        seen.sort();
        assert_eq!(seen, sorted, "page size {page_size}: every user once");
        let mut dedup = seen.clone();
        dedup.dedup();
        assert_eq!(
            dedup.len(),
            seen.len(),
            "page size {page_size}: no user twice"
        );
    }
    // From the middle: strictly after.
    let page = store
        .list_users(Some(&UserId::new("alice")), 100)
        .await
        .expect("list");
    assert!(!page.contains(&UserId::new("alice")));
    assert!(page.contains(&UserId::new("bob")));
    assert!(store.list_users(None, 0).await.expect("list").is_empty());
}
