//! Replays every committed fuzz seed (`fuzz/corpus/<target>/*`) through the same checks the
//! cargo-fuzz targets run, so the invariants are tested on stable Rust in every `cargo test`.
use std::fs;
use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
mod checks;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read the seed corpus {}: {err}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
        replayed += 1;
    }
    assert!(
        replayed >= 5,
        "{target}: only {replayed} seeds in {}",
        dir.display()
    );
}

#[test]
fn uri_parse_seeds() {
    replay("uri_parse", checks::check_uri_parse);
}

#[test]
fn base32_decode_seeds() {
    replay("base32_decode", checks::check_base32_decode);
}

#[test]
fn verify_code_seeds() {
    replay("verify_code", checks::check_verify_code);
}

#[test]
fn empty_and_tiny_inputs() {
    for data in [&b""[..], b"\0", b"\xff", b"otpauth://", b"=", b" "] {
        checks::check_uri_parse(data);
        checks::check_base32_decode(data);
        checks::check_verify_code(data);
    }
}
