//! The layers of the manual's diagram are the layers of the code: a module of `src/` refers
//! (through `crate::...` paths, in `use` lines or inline) only to modules below it, and never
//! to the crate root's re-exports. Test modules inside `src/` (after `#[cfg(test)] mod`) may
//! reach anywhere.

use std::fs;
use std::path::{Path, PathBuf};

/// Bottom first. A module may use the modules before it, never those after it.
const LAYERS: &[&str] = &[
    "clock",
    "otp",
    "vocabulary",
    "provision",
    "mail",
    "audit",
    "policy",
    "account",
    "store",
    "cookie",
    "seal",
    "service",
    "testing",
    "axum",
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::<segment>` references in the code (not the comments) of `text`, with line numbers,
/// up to the first test module.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut refs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let next = lines.get(n + 1).map_or("", |l| l.trim_start());
        if trimmed.starts_with("#[cfg(") && trimmed.contains("test") && next.contains("mod ") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue; // `twofactor_crate::`, `$crate::` (macro output)
            }
            let segment: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            refs.push((n + 1, segment));
        }
    }
    refs
}

fn violations() -> Vec<String> {
    // `LAYERS_CHECK_SRC` points the check at another tree (to see it fail on an old one).
    let src = std::env::var_os("LAYERS_CHECK_SRC").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        PathBuf::from,
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("")
            .trim_end_matches(".rs")
            .to_owned();
        let Some(own) = rank(&top) else {
            continue; // lib.rs (the root) and manual.rs (docs only)
        };
        let text = fs::read_to_string(&file).expect("read source");
        for (line, target) in crate_refs(&text) {
            let bad = match rank(&target) {
                Some(r) => r > own,
                // Anything else is the root's re-exports (or a module missing from LAYERS).
                None => true,
            };
            if bad {
                found.push(format!(
                    "{}:{line}: `{top}` uses `crate::{target}`",
                    relative.display()
                ));
            }
        }
    }
    found
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let found = violations();
    assert!(
        found.is_empty(),
        "imports must point down ({LAYERS:?}):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_has_a_layer() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("read lib.rs");
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ").or(line.strip_prefix("mod ")) {
            let name = name.trim_end_matches(';');
            assert!(
                name == "manual" || rank(name).is_some(),
                "module `{name}` is missing from LAYERS"
            );
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    let refs = crate_refs(
        "use crate::account::UserId;\nfn f() { crate::service::x(); } // crate::seal\n\
         #[cfg(test)]\nmod tests { use crate::testing::ManualClock; }\n",
    );
    assert_eq!(refs, [(1, "account".to_owned()), (2, "service".to_owned())]);
}
