//! The crate documentation promises that a web host's 2FA-specific glue fits in a stated
//! number of lines (the "A web login, end to end" example in `src/lib.rs`). This counts the
//! visible, non-blank, non-comment lines of that example: its `use` lines, and everything from
//! its first handler to the end of its error mapping; so the number in the docs and the
//! README stays true. Hidden (`# `) lines are only the stand-in session and response types and
//! the test driver.

use std::fs;
use std::path::Path;

/// The budget: the glue may shrink, never grow past this without a reason written down.
const BUDGET: usize = 73;

fn count_glue(lib: &str) -> usize {
    let lines: Vec<&str> = lib.lines().collect();
    let section = lines
        .iter()
        .position(|l| l.starts_with("//! ## A web login, end to end"))
        .expect("the example's section");
    let fence = section
        + lines[section..]
            .iter()
            .position(|l| l.starts_with("//! ```"))
            .expect("the example's code block");
    let start = lines
        .iter()
        .position(|l| l.starts_with("//! async fn after_password"))
        .expect("the example's first handler");
    let end = lines[start..]
        .iter()
        .position(|l| l.starts_with("//! # #[tokio::main"))
        .map(|i| start + i)
        .expect("the example's hidden driver");
    let visible = |l: &&&str| !l.starts_with("//! #");
    let code = |l: &str| l.trim_start_matches("//!").trim().to_owned();
    let uses = lines[fence + 1..start]
        .iter()
        .filter(visible)
        .map(|l| code(l))
        .filter(|l| l.starts_with("use "))
        .count();
    // Between the `use` lines and the first handler, only hidden lines and blank ones.
    assert!(
        lines[fence + 1..start]
            .iter()
            .filter(visible)
            .map(|l| code(l))
            .all(|l| l.is_empty() || l.starts_with("use ") || l.starts_with("//")),
        "glue before the first handler would not be counted"
    );
    let body = lines[start..end]
        .iter()
        .filter(visible)
        .map(|l| code(l))
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count();
    uses + body
}

#[test]
fn the_web_integration_example_stays_within_its_glue_budget() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    let glue = count_glue(&lib);
    assert!(glue > 30, "the counter found the example ({glue} lines)");
    assert!(glue <= BUDGET, "{glue} lines of glue, budget {BUDGET}");
    let claim = format!("**{glue} lines**");
    assert!(lib.contains(&claim), "the docs state the count: {claim}");
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(
        readme.contains(&format!("## A web login in {glue} lines")),
        "the README's heading states the count: {glue}"
    );
    assert!(
        readme.contains(&claim),
        "the README states the count: {claim}"
    );
}
