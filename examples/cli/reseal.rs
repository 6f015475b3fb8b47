//! `cli reseal`: rewrites every 2FA record of the demo's database under a new sealing key, so
//! the old key can be dropped (`twofactor::seal::reseal`).
//!
//! ```sh
//! openssl rand -hex 32 > new.key
//! cargo run --example cli --features sqlite,seal -- reseal twofactor-demo.key new.key
//! ```
//!
//! Key files hold 64 hex digits, as the demo keeps its own key beside the database
//! (`twofactor-demo.key`). The ring is the new key (current, id `--new-id`, default
//! `demo-2`) and the old one (id `--old-id`, default `demo-1`, the id the demo seals with).
//! The report names users, never secrets. A real deployment runs this once every app server
//! seals with the new keyring, then drops the old key.

use std::io::Write;
use std::path::Path;

use twofactor::SqliteStore;
use twofactor::seal::{Keyring, ResealOptions, reseal};
use zeroize::Zeroizing;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A key file's 32 bytes.
fn read_key(path: &Path) -> Result<Zeroizing<Vec<u8>>, BoxError> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    let hex = text.trim();
    let bytes: Option<Vec<u8>> = (hex.len() == 64)
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect()
        })
        .flatten();
    let bytes = Zeroizing::new(
        bytes.ok_or_else(|| format!("{}: not a key file (64 hex digits)", path.display()))?,
    );
    Ok(bytes)
}

fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Runs `reseal ARGS` on the database `db`; returns the exit code (0 every record is under
/// the new key, 1 some could not be re-sealed, 2 usage).
pub async fn run(db: &Path, args: &[String], out: &mut dyn Write) -> Result<i32, BoxError> {
    // The positional arguments: neither a flag nor the value of `--old-id` / `--new-id`.
    let is_value = |i: usize| i > 0 && matches!(args[i - 1].as_str(), "--old-id" | "--new-id");
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && !is_value(*i))
        .map(|(_, a)| a)
        .collect();
    let [old_file, new_file] = files.as_slice() else {
        writeln!(out, "{}", crate::run::USAGE)?;
        return Ok(2);
    };
    let old_id = option(args, "--old-id").unwrap_or_else(|| "demo-1".into());
    let new_id = option(args, "--new-id").unwrap_or_else(|| "demo-2".into());
    let keyring = Keyring::new(&new_id, &read_key(Path::new(new_file.as_str()))?)?
        .with_old_key(&old_id, &read_key(Path::new(old_file.as_str()))?)?;
    let options = ResealOptions::new()
        .accept_untagged(args.iter().any(|a| a == "--accept-untagged"))
        .accept_unsealed(args.iter().any(|a| a == "--accept-unsealed"));

    if !db.exists() {
        return Err(format!("{}: no such database", db.display()).into());
    }
    let store = SqliteStore::open(db).await?;
    let result = reseal(&store, &keyring, &options).await;
    store.close().await;
    let report = result?;
    writeln!(
        out,
        "re-sealed under key {new_id}: {} rewritten ({} adopted), {} already current, {} failed",
        report.rewritten,
        report.adopted,
        report.already_current,
        report.failed.len()
    )?;
    for (user, failure) in &report.failed {
        let cause = std::error::Error::source(failure)
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        writeln!(out, "  failed {user}: {failure}{cause}")?;
    }
    if !report.old_code_hashes.is_empty() {
        let users: Vec<&str> = report.old_code_hashes.iter().map(|u| u.as_str()).collect();
        writeln!(
            out,
            "recovery codes hashed under an older key (they stop working when it is dropped; \
             ask these users to regenerate them): {}",
            users.join(", ")
        )?;
    }
    if report.is_complete() {
        writeln!(
            out,
            "every record is under {new_id}: key {old_id} can be dropped"
        )?;
        Ok(0)
    } else {
        writeln!(
            out,
            "keep key {old_id} until the failed records are dealt with"
        )?;
        Ok(1)
    }
}
