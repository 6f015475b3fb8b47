//! `examples/axum_minimal.rs` is an axum + tower-sessions app that gains 2FA through
//! `twofactor::axum`. Every line that 2FA adds or changes sits between a `// --- 2FA begin ---`
//! and a `// --- 2FA end ---` comment (several blocks allowed). This test counts them as a
//! newcomer would, after default `rustfmt`: non-blank lines that are not comments, `use` lines
//! included, and keeps the count within the budget the README and the module docs state. It
//! also checks that nothing 2FA-specific hides outside the blocks.

use std::fs;
use std::path::Path;
use std::process::Command;

const BUDGET: usize = 20;
const BEGIN: &str = "// --- 2FA begin ---";
const END: &str = "// --- 2FA end ---";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example() -> String {
    fs::read_to_string(root().join("examples/axum_minimal.rs")).expect("the example")
}

/// The 2FA lines: code lines inside the marked blocks.
fn glue(text: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t == BEGIN {
            assert!(!inside, "line {}: a block begins inside a block", n + 1);
            inside = true;
        } else if t == END {
            assert!(inside, "line {}: a block ends that never began", n + 1);
            inside = false;
        } else if inside && !t.is_empty() && !t.starts_with("//") && !t.starts_with("/*") {
            out.push(t.to_owned());
        }
    }
    assert!(!inside, "the last block never ends");
    out
}

#[test]
fn the_axum_example_adds_2fa_in_at_most_20_lines() {
    let text = example();
    let lines = glue(&text);
    for l in &lines {
        println!("{l}");
    }
    assert!(
        lines.len() >= 10,
        "the counter found the blocks ({})",
        lines.len()
    );
    assert!(
        lines.len() <= BUDGET,
        "{} lines of 2FA glue, budget {BUDGET}",
        lines.len()
    );
    // The README and the module docs state the count.
    let claim = format!("{} lines", lines.len());
    let readme = fs::read_to_string(root().join("README.md")).expect("README");
    assert!(
        readme.contains(&format!("2FA in an axum app in {claim}")),
        "the README's section title states the count: \"2FA in an axum app in {claim}\""
    );
    let docs = fs::read_to_string(root().join("src/axum/mod.rs")).expect("module");
    assert!(
        docs.contains(&format!("**{claim}**")),
        "the module docs state the count: **{claim}**"
    );
}

#[test]
fn nothing_2fa_specific_hides_outside_the_blocks() {
    let text = example();
    let mut inside = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t == BEGIN || t == END {
            inside = t == BEGIN;
            continue;
        }
        if inside || t.starts_with("//") {
            continue;
        }
        for word in [
            "twofactor",
            "tfa",
            "TwoFactor",
            "Principal",
            "ServiceKeys",
            "2fa",
            "Login",
        ] {
            assert!(
                !t.contains(word),
                "line {}: `{word}` outside a 2FA block: {t}",
                n + 1
            );
        }
    }
}

#[test]
fn the_example_is_formatted_as_rustfmt_leaves_it() {
    // The count is of rustfmt's lines: a long line folded by hand would undercount.
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into());
    let out = Command::new(&rustfmt)
        .args(["--edition", "2024", "--check"])
        .arg(root().join("examples/axum_minimal.rs"))
        .output()
        .unwrap_or_else(|e| {
            panic!("run {rustfmt} (install it with `rustup component add rustfmt`): {e}")
        });
    assert!(
        out.status.success(),
        "examples/axum_minimal.rs is not rustfmt-formatted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_counter_counts_what_a_newcomer_counts() {
    let sample = "use a;\n// --- 2FA begin ---\nuse b;\n\n// a comment\nlet x = 1;\n    // --- 2FA end ---\nlet y = 2;\n// --- 2FA begin ---\n/* c */\nz();\n// --- 2FA end ---\n";
    assert_eq!(glue(sample), ["use b;", "let x = 1;", "z();"]);
}
