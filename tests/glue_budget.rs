//! The crate documentation promises that a web host's 2FA-specific glue fits in 60 lines (the
//! "A web login, end to end" example in `src/lib.rs`). This counts the visible, non-blank,
//! non-comment lines of that example, from its first handler to the end of its error mapping,
//! so the number in the docs and the README stays true.

use std::fs;
use std::path::Path;

const BUDGET: usize = 60;

#[test]
fn the_web_integration_example_stays_within_its_glue_budget() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    let lines: Vec<&str> = lib.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("//! async fn after_password"))
        .expect("the example's first handler");
    let end = lines[start..]
        .iter()
        .position(|l| l.starts_with("//! # #[tokio::main"))
        .map(|i| start + i)
        .expect("the example's hidden driver");
    let glue = lines[start..end]
        .iter()
        .filter(|l| !l.starts_with("//! #"))
        .map(|l| l.trim_start_matches("//!").trim())
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count();
    assert!(glue > 30, "the counter found the example ({glue} lines)");
    assert!(glue <= BUDGET, "{glue} lines of glue, budget {BUDGET}");
    let claim = format!("**{glue} lines**");
    assert!(lib.contains(&claim), "the docs state the count: {claim}");
}
