//! Drives the CLI demo (examples/cli) in-process through enrollment, login, trusted devices
//! and an administrator's reset, on a temporary SQLite file.

#![allow(missing_docs, dead_code)]

#[path = "../examples/web/demo.rs"]
mod demo;
#[path = "../examples/cli/reseal.rs"]
mod reseal;
#[path = "../examples/cli/run.rs"]
mod run;
#[path = "../examples/cli/twofa.rs"]
mod twofa;

use std::path::Path;

use twofactor::{Secret, Totp};

/// Runs `cli --db DB ARGS` with `input` as standard input; returns (exit code, output).
async fn cli(db: &Path, args: &[&str], input: &str) -> (i32, String) {
    let mut all = vec!["--db".to_string(), db.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let mut out = Vec::new();
    let code = run::run(&all, &mut input.as_bytes(), &mut out, false)
        .await
        .expect("the CLI runs");
    (code, String::from_utf8(out).expect("UTF-8 output"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test]
async fn enroll_then_login_with_a_code_a_device_and_a_recovery_code() {
    let dir = std::env::temp_dir().join(format!("twofactor-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");

    let (code, out) = cli(
        &db,
        &["signup", "carol", "carol@example.com"],
        "correct horse\n",
    )
    .await;
    assert_eq!((code, out.trim()), (0, "created carol"));
    let (code, _) = cli(
        &db,
        &["signup", "carol", "c@example.com"],
        "correct horse\n",
    )
    .await;
    assert_eq!(code, 1, "a taken name is refused");

    // Without 2FA, the password alone logs in (optional policy).
    let (code, out) = cli(&db, &["login", "carol"], "correct horse\n").await;
    assert_eq!((code, out.trim()), (0, "logged in"));
    let (code, out) = cli(&db, &["login", "carol"], "wrong\n").await;
    assert_eq!(code, 1, "{out}");

    // Enroll: the QR code in blocks and the manual key; confirm with a computed code.
    let (code, out) = cli(&db, &["enroll", "carol"], "correct horse\n").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains('█'), "a QR code in Unicode blocks:\n{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("Cannot scan it? Enter this key: "))
        .expect("the manual key");
    let secret = Secret::from_base32(&key.replace(' ', "")).unwrap();
    let totp = |t: u64| Totp::default().generate(&secret, t).to_string();
    let (code, out) = cli(&db, &["confirm", "carol", "000000x"], "correct horse\n").await;
    assert_eq!(code, 1, "a malformed code is refused: {out}");
    for args in [
        &["status", "carol"][..],
        &["revoke", "carol", "--all"],
        &["outbox", "carol"],
    ] {
        let (code, out) = cli(&db, args, "wrong\n").await;
        assert_eq!(code, 1, "{args:?}: {out}");
        assert_eq!(out.trim(), "refused: wrong name or password", "{args:?}");
    }
    let (code, out) = cli(&db, &["confirm", "carol", &totp(now())], "correct horse\n").await;
    assert_eq!(code, 0, "{out}");
    let recovery: Vec<&str> = out.lines().skip(1).map(str::trim).collect();
    assert_eq!(recovery.len(), 10, "{out}");

    // Login now asks for a code; the enrollment's code is not accepted again (replay).
    let (code, out) = cli(
        &db,
        &["login", "carol"],
        &format!("correct horse\n{}\n", totp(now())),
    )
    .await;
    assert_eq!(code, 1, "a replayed code is refused: {out}");
    assert!(out.contains("refused (401)"), "{out}");

    // The next step's code logs in and trusts this "device".
    let next = totp(now() + 30);
    let (code, out) = cli(
        &db,
        &["login", "carol", "--remember", "terminal"],
        &format!("correct horse\n{next}\n"),
    )
    .await;
    if code != 0 {
        // The next step's code is accepted within the ±1 step window; if the clock just
        // crossed a boundary, the current code is the next one.
        panic!("login with the next step's code failed: {out}");
    }
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("device token (pass with --device): "))
        .expect("a device token")
        .to_owned();
    let (code, out) = cli(
        &db,
        &["login", "carol", "--device", &token],
        "correct horse\n",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Trusted device"), "{out}");
    let (_, out) = cli(&db, &["status", "carol"], "correct horse\n").await;
    assert!(out.starts_with("2FA: on; recovery codes left: 10"), "{out}");
    assert!(out.contains("device "), "{out}");
    assert!(out.contains(" UTC"), "dates in words: {out}");

    // Revoke all devices: the token stops working; a recovery code works once.
    let (code, out) = cli(&db, &["revoke", "carol", "--all"], "correct horse\n").await;
    assert_eq!((code, out.trim()), (0, "1 device(s) revoked"));
    let (code, out) = cli(
        &db,
        &["login", "carol", "--device", &token],
        &format!("correct horse\n{}\n", recovery[0]),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("9 left"), "{out}");
    let (code, _) = cli(
        &db,
        &["login", "carol"],
        &format!("correct horse\n{}\n", recovery[0]),
    )
    .await;
    assert_eq!(code, 1, "a recovery code works once");

    // Only a superuser with the right password and a second factor may reset; then the
    // password alone works.
    let (code, _) = cli(
        &db,
        &["admin-reset", "carol", "emma"],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 1, "emma is not an administrator");
    let (code, _) = cli(&db, &["admin-reset", "carol", "root"], "wrong\n").await;
    assert_eq!(code, 1, "wrong administrator password");
    let (code, out) = cli(
        &db,
        &["admin-reset", "carol", "root"],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 1, "root has no second factor yet: {out}");
    assert!(out.contains("run `cli enroll root` first"), "{out}");
    let (code, out) = cli(
        &db,
        &["enroll", "root"],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let root = out
        .lines()
        .find_map(|l| l.strip_prefix("Cannot scan it? Enter this key: "))
        .map(|k| Secret::from_base32(&k.replace(' ', "")).unwrap())
        .expect("root's key");
    let root_code = |t: u64| Totp::default().generate(&root, t).to_string();
    let (code, out) = cli(
        &db,
        &["confirm", "root", &root_code(now())],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(
        &db,
        &["admin-reset", "carol", "root"],
        &format!("{}\n000000\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 1, "a wrong administrator code: {out}");
    let (code, out) = cli(
        &db,
        &["admin-reset", "carol", "root"],
        &format!("{}\n{}\n", demo::SEED_PASSWORD, root_code(now() + 30)),
    )
    .await;
    assert_eq!((code, out.trim()), (0, "2FA of carol reset"));
    let (code, out) = cli(&db, &["login", "carol"], "correct horse\n").await;
    assert_eq!((code, out.trim()), (0, "logged in"));
    // carol's mail reads like mail, and is hers only.
    let (_, out) = cli(&db, &["outbox", "carol"], "correct horse\n").await;
    assert!(
        out.contains("Subject: Two-factor authentication is off for your twofactor demo account"),
        "{out}"
    );
    assert!(out.contains("by an administrator (root)"), "{out}");
    assert!(out.contains(" UTC"), "{out}");
    assert!(!out.contains("To: root"), "nobody else's mail: {out}");
    assert!(!out.contains("Disabled {"), "no Debug text: {out}");

    let _ = std::fs::remove_dir_all(&dir);
}

/// Standard input whose line `MAILED` is replaced, when the CLI reads it, by the newest login
/// code in `user`'s outbox (the mail is sent while the command runs).
struct MailboxInput {
    lines: std::collections::VecDeque<String>,
    db: std::path::PathBuf,
    user: &'static str,
}

const MAILED: &str = "<the mailed code>";

impl std::io::Read for MailboxInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(line) = self.lines.pop_front() else {
            return Ok(0);
        };
        let line = if line == MAILED {
            let (db, user) = (self.db.clone(), self.user);
            // A reader of its own (the CLI's runtime is blocked in this read).
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
                        .await
                        .expect("the demo's file");
                    let body: String = sqlx::query_scalar(
                        "SELECT body FROM outbox WHERE user_id = ? \
                         AND subject = 'Your twofactor demo login code' ORDER BY id DESC LIMIT 1",
                    )
                    .bind(user)
                    .fetch_one(&pool)
                    .await
                    .expect("a login code was mailed");
                    pool.close().await;
                    body.split_whitespace()
                        .skip_while(|w| *w != "is:")
                        .nth(1)
                        .expect("... is: CODE")
                        .to_owned()
                })
            })
            .join()
            .expect("outbox reader")
        } else {
            line
        };
        let bytes = format!("{line}\n").into_bytes();
        assert!(bytes.len() <= buf.len(), "one short line per read");
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

/// Under a mailed-code policy the password alone never enrolls an authenticator from the CLI:
/// `enroll` logs in with the mailed code first, and only its proof opens the set-up.
#[tokio::test]
async fn under_a_mailed_code_policy_enroll_needs_the_mailed_code() {
    let dir = std::env::temp_dir().join(format!("twofactor-cli-mail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    // Creates the file and the seeded users.
    let (code, _) = cli(
        &db,
        &["outbox", "root"],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 0);
    // The administrator's choice (the web demo's admin page): required for all, mailed codes
    // for those without an authenticator.
    let policy = demo::PolicyConfig {
        scope: demo::Scope::All,
        mail_code: true,
        ..demo::PolicyConfig::default()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES ('policy', ?)")
        .bind(serde_json::to_string(&policy).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // The password and a guess at the mailed code: refused, nothing enrolled.
    let (code, out) = cli(
        &db,
        &["enroll", "paul"],
        &format!("{}\n000000\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a login code was mailed first"), "{out}");
    assert!(!out.contains("Cannot scan it?"), "no key shown: {out}");
    let (_, out) = cli(
        &db,
        &["status", "paul"],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert!(out.starts_with("2FA: off"), "{out}");

    // With the code from the mailbox: the set-up opens, and the app's code confirms it.
    let input = MailboxInput {
        lines: [demo::SEED_PASSWORD, MAILED].map(String::from).into(),
        db: db.clone(),
        user: "paul",
    };
    let all: Vec<String> = ["--db", &db.display().to_string(), "enroll", "paul"]
        .map(String::from)
        .into();
    let mut out = Vec::new();
    let code = run::run(&all, &mut std::io::BufReader::new(input), &mut out, false)
        .await
        .expect("the CLI runs");
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("Cannot scan it? Enter this key: "))
        .expect("the manual key");
    let secret = Secret::from_base32(&key.replace(' ', "")).unwrap();
    let (code, out) = cli(
        &db,
        &[
            "confirm",
            "paul",
            &Totp::default().generate(&secret, now()).to_string(),
        ],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (_, out) = cli(
        &db,
        &["status", "paul"],
        &format!("{}\n", demo::SEED_PASSWORD),
    )
    .await;
    assert!(out.starts_with("2FA: on"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cli reseal OLD NEW`: every record moves to the new key (the old one alone then opens
/// nothing, the new one alone opens everything), a second run finds everything current, and
/// a row whose tag was stripped is reported by user, never with a secret, and left alone.
#[tokio::test]
async fn reseal_moves_every_record_to_a_new_key() {
    use twofactor::seal::{Keyring, SealedStore};
    use twofactor::store::UserStore;

    let dir = std::env::temp_dir().join(format!("twofactor-cli-reseal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let (code, _) = cli(
        &db,
        &["signup", "dora", "dora@example.com"],
        "correct horse\n",
    )
    .await;
    assert_eq!(code, 0);
    let (code, out) = cli(&db, &["enroll", "dora"], "correct horse\n").await;
    assert_eq!(code, 0, "{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("Cannot scan it? Enter this key: "))
        .expect("the manual key")
        .replace(' ', "");
    let secret = Secret::from_base32(&key).unwrap();
    let totp = Totp::default().generate(&secret, now()).to_string();
    let (code, out) = cli(&db, &["confirm", "dora", &totp], "correct horse\n").await;
    assert_eq!(code, 0, "{out}");

    // The demo keeps its key beside the database; the new one comes from `openssl rand -hex 32`.
    let old_file = db.with_extension("key");
    let new_file = dir.join("new.key");
    let new_key = [0x42u8; 32];
    std::fs::write(&new_file, format!("{}\n", "42".repeat(32))).unwrap();
    let (old_arg, new_arg) = (
        old_file.display().to_string(),
        new_file.display().to_string(),
    );

    let (code, out) = cli(&db, &["reseal", &old_arg], "").await;
    assert_eq!(code, 2, "usage: {out}");

    let store = twofactor::SqliteStore::open(&db).await.unwrap();
    let users: Vec<String> = sqlx::query_scalar("SELECT user_id FROM twofactor_records")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(users.contains(&"dora".to_owned()));
    let (code, out) = cli(&db, &["reseal", &old_arg, &new_arg], "").await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!(
            "re-sealed under key demo-2: {} rewritten (0 adopted), 0 already current, 0 failed",
            users.len()
        )),
        "{out}"
    );
    assert!(out.contains("regenerate them): dora"), "{out}");
    assert!(out.contains("key demo-1 can be dropped"), "{out}");
    let (code, out) = cli(&db, &["reseal", &old_arg, &new_arg], "").await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "0 rewritten (0 adopted), {} already current",
            users.len()
        )),
        "{out}"
    );

    // With the library: the new key alone opens every record, the old key alone none.
    let old_key: Vec<u8> = {
        let hex = std::fs::read_to_string(&old_file).unwrap();
        let hex = hex.trim();
        (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let new_only = SealedStore::new(&store, Keyring::new("demo-2", &new_key).unwrap());
    let old_only = SealedStore::new(&store, Keyring::new("demo-1", &old_key).unwrap());
    for user in &users {
        let user = twofactor::UserId::new(user.as_str());
        assert!(new_only.load(&user).await.unwrap().is_some(), "{user}");
        assert!(old_only.load(&user).await.is_err(), "{user}");
    }

    // A table writer strips dora's tag: reported by name, left as it was, exit 1.
    let row: String =
        sqlx::query_scalar("SELECT record FROM twofactor_records WHERE user_id = 'dora'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&row).unwrap();
    v["mac"] = serde_json::Value::Null;
    sqlx::query("UPDATE twofactor_records SET record = $1 WHERE user_id = 'dora'")
        .bind(v.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    let (code, out) = cli(&db, &["reseal", &old_arg, &new_arg], "").await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 failed"), "{out}");
    assert!(
        out.contains("failed dora: the record could not be opened: 2FA record of user dora is not authenticated"),
        "{out}"
    );
    assert!(out.contains("keep key demo-1"), "{out}");
    assert!(
        !out.contains(&key) && !out.contains(&"42".repeat(32)),
        "{out}"
    );
    let after: String =
        sqlx::query_scalar("SELECT record FROM twofactor_records WHERE user_id = 'dora'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(after, v.to_string(), "left as it was");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `confirm` acts for a user: without the password, or with a wrong one, a right code is
/// refused and nothing is confirmed; with it, the same code confirms.
#[tokio::test]
async fn confirm_without_the_password_is_refused_and_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("twofactor-cli-confirm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let (code, _) = cli(
        &db,
        &["signup", "erin", "erin@example.com"],
        "correct horse\n",
    )
    .await;
    assert_eq!(code, 0);
    let (code, out) = cli(&db, &["enroll", "erin"], "correct horse\n").await;
    assert_eq!(code, 0, "{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("Cannot scan it? Enter this key: "))
        .expect("the manual key");
    let secret = Secret::from_base32(&key.replace(' ', "")).unwrap();
    let totp = Totp::default().generate(&secret, now()).to_string();
    for input in ["", "\n", "wrong\n"] {
        let (code, out) = cli(&db, &["confirm", "erin", &totp], input).await;
        assert_eq!(code, 1, "{input:?}: {out}");
        assert_eq!(out.trim(), "refused: wrong name or password", "{input:?}");
    }
    let (code, out) = cli(&db, &["status", "erin"], "correct horse\n").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2FA: off"), "nothing confirmed: {out}");
    let (code, out) = cli(&db, &["confirm", "erin", &totp], "correct horse\n").await;
    assert_eq!(
        code, 0,
        "the code was not used up by the refused attempts: {out}"
    );
    let (_, out) = cli(&db, &["status", "erin"], "correct horse\n").await;
    assert!(out.starts_with("2FA: on"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
