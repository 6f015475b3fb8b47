//! The web demo (`examples/web`) is built on `twofactor::axum`. Every line of it whose purpose
//! is 2FA sits between a `// --- 2FA begin ---` (or `// --- 2FA begin: demo feature ---`) and a
//! `// --- 2FA end ---` comment. This test counts those lines as `tests/axum_glue_budget.rs`
//! counts `examples/axum_minimal.rs`'s (after default `rustfmt`: non-blank lines that are not
//! comments, `use` lines included), keeps the numbers the README and the CHANGELOG state true,
//! and checks that nothing naming the library hides outside the blocks.
//!
//! Two kinds of block: the glue that wires the service and the web layer in (what any host
//! writes), and the demo's own 2FA features (the administrator's live policy and the user
//! actions, the outbox mailer and the SMTP switch, the audit trail's sink), marked
//! `demo feature`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The budget: the glue may shrink, never grow past this without a reason written down.
/// 310 until security keys: their relying party on `http://localhost:PORT` (feature
/// `webauthn`) took 14 lines of wiring.
const BUDGET: usize = 325;
const BEGIN: &str = "// --- 2FA begin ---";
const BEGIN_FEATURE: &str = "// --- 2FA begin: demo feature ---";
const END: &str = "// --- 2FA end ---";
const FILES: &[&str] = &["main.rs", "app.rs", "demo.rs", "pages.rs"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files() -> Vec<(PathBuf, String)> {
    FILES
        .iter()
        .map(|f| {
            let path = root().join("examples/web").join(f);
            let text = fs::read_to_string(&path).expect("a file of the demo");
            (path, text)
        })
        .collect()
}

/// The 2FA lines of `text`: (is a demo feature, the line).
fn glue(text: &str) -> Vec<(bool, String)> {
    let mut inside = None;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t == BEGIN || t == BEGIN_FEATURE {
            assert!(
                inside.is_none(),
                "line {}: a block begins inside a block",
                n + 1
            );
            inside = Some(t == BEGIN_FEATURE);
        } else if t == END {
            assert!(
                inside.is_some(),
                "line {}: a block ends that never began",
                n + 1
            );
            inside = None;
        } else if let Some(feature) = inside
            && !t.is_empty()
            && !t.starts_with("//")
            && !t.starts_with("/*")
        {
            out.push((feature, t.to_owned()));
        }
    }
    assert!(inside.is_none(), "the last block never ends");
    out
}

/// (all, wiring, demo features).
fn counts() -> (usize, usize, usize) {
    let lines: Vec<(bool, String)> = files().iter().flat_map(|(_, t)| glue(t)).collect();
    let features = lines.iter().filter(|(f, _)| *f).count();
    (lines.len(), lines.len() - features, features)
}

#[test]
fn the_web_demo_states_its_2fa_glue() {
    for (path, text) in files() {
        for (feature, line) in glue(&text) {
            let kind = if feature { "feature" } else { "wiring" };
            println!("{} {kind:7} {line}", path.display());
        }
    }
    let (all, wiring, features) = counts();
    println!("{all} lines: {wiring} wiring, {features} demo features");
    assert!(
        wiring >= 40 && features >= 40,
        "the counter found the blocks"
    );
    assert!(all <= BUDGET, "{all} lines of 2FA glue, budget {BUDGET}");
    let readme = fs::read_to_string(root().join("README.md")).expect("README");
    let readme = readme.replace('\n', " ");
    for claim in [
        format!("**{all} lines** of 2FA glue: {wiring} wire the service and the web layer in"),
        format!("{features} are the demo's own 2FA features"),
    ] {
        assert!(
            readme.contains(&claim),
            "the README states the counts: {claim}"
        );
    }
    let changelog = fs::read_to_string(root().join("CHANGELOG.md")).expect("CHANGELOG");
    let claim = format!("{all} lines of 2FA glue ({wiring} wiring");
    assert!(
        changelog.replace('\n', " ").contains(&claim),
        "the CHANGELOG states the counts: {claim}"
    );
}

#[test]
fn nothing_naming_the_library_hides_outside_the_blocks() {
    let words = [
        "twofactor::",
        "TwoFactor",
        "tfa",
        "UserId",
        "Principal",
        "principal",
        ".tf",
        "/2fa",
        "Mailer",
        "AuditSink",
        "AuditLog",
        "Keyring",
        "apply_policy",
        "LivePolicy",
        "ACCOUNT",
        "ADMIN_STEP_UP",
        "CSRF_FIELD",
        "Login",
        "Clock for",
    ];
    for (path, text) in files() {
        let mut inside = false;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t == BEGIN || t == BEGIN_FEATURE || t == END {
                inside = t != END;
                continue;
            }
            if inside || t.starts_with("//") {
                continue;
            }
            for word in words {
                assert!(
                    !t.contains(word),
                    "{}:{}: `{word}` outside a 2FA block: {t}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn the_demo_is_formatted_as_rustfmt_leaves_it() {
    // The count is of rustfmt's lines: a long line folded by hand would undercount.
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into());
    for (path, _) in files() {
        let out = Command::new(&rustfmt)
            .args(["--edition", "2024", "--check"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("run {rustfmt} (install it with `rustup component add rustfmt`): {e}")
            });
        assert!(
            out.status.success(),
            "{} is not rustfmt-formatted:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn the_counter_counts_what_a_newcomer_counts() {
    let sample = "use a;\n// --- 2FA begin ---\nuse b;\n\n// a comment\nlet x = 1;\n    // --- 2FA end ---\nlet y = 2;\n// --- 2FA begin: demo feature ---\n/* c */\nz();\n// --- 2FA end ---\n";
    assert_eq!(
        glue(sample),
        [
            (false, "use b;".to_owned()),
            (false, "let x = 1;".to_owned()),
            (true, "z();".to_owned())
        ]
    );
}
