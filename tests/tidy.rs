//! Tidy checks on the source tree, run inside `cargo test` as rust-analyzer's are: the layering
//! ARCHITECTURE.md states, a `// SAFETY:` comment at every `unsafe` block, no file past 1,000
//! lines, no leftover `todo!`/`dbg!`, and the docs' maps naming every module and test file.
//! Each check reads the files as text; each reports every place that breaks it, by file and
//! line.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted, as (path relative to the crate root, text).
fn rust_files(dir: &str) -> Vec<(String, String)> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&root().join(dir), &mut paths);
    paths.sort();
    paths.into_iter().map(|p| (p.strip_prefix(root()).unwrap().display().to_string(), std::fs::read_to_string(&p).unwrap())).collect()
}

/// A line without its `//` comment (string literals holding `//` are rare enough in this
/// crate's code lines that a check reading past one only sees less, never more).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Fails with every offence, one per line.
fn report(what: &str, offences: Vec<String>) {
    assert!(offences.is_empty(), "{what}:\n{}", offences.join("\n"));
}

/// Offences of `rule` in `files`: each line whose code (comments removed) `rule` says breaks it.
fn lines_where(files: &[(String, String)], rule: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        for (i, line) in text.lines().enumerate() {
            if rule(code(line)) {
                out.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    out
}

/// **Architecture invariant:** the core knows nothing of SQLite or of the layers above it.
#[test]
fn core_uses_no_layer_above_it() {
    let core = rust_files("src/core");
    report(
        "src/core names a layer above it (the core is plain Rust: no SQLite types, no storage)",
        lines_where(&core, |c| ["crate::storage", "crate::ffi", "rusqlite", "libsqlite3", "super::super"].iter().any(|x| c.contains(x))),
    );
}

/// Storage reaches SQLite only through the safe handles (`ffi::db`) and the constants
/// (`ffi::api`), and neither storage nor core may hold `unsafe` code.
#[test]
fn storage_reaches_sqlite_only_through_the_safe_handles() {
    let storage = rust_files("src/storage");
    report(
        "src/storage names a part of ffi other than the safe handles (ffi::db) and the constants (ffi::api)",
        lines_where(&storage, |c| c.match_indices("crate::ffi::").any(|(i, _)| !(c[i..].starts_with("crate::ffi::db") || c[i..].starts_with("crate::ffi::api")))),
    );
    for module in ["src/core/mod.rs", "src/storage/mod.rs"] {
        let text = std::fs::read_to_string(root().join(module)).unwrap();
        assert!(text.lines().any(|l| code(l).trim() == "#![forbid(unsafe_code)]"), "{module} must keep #![forbid(unsafe_code)]");
    }
}

/// Every `unsafe` block and `unsafe impl` says why it is sound: a `SAFETY` comment on its line
/// or in the comment lines right above it (through the lines of the statement it opens in).
#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let mut offences = Vec::new();
    for (path, text) in rust_files("src") {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let c = code(line);
            let opens = c.match_indices("unsafe").any(|(j, _)| {
                let rest = c[j + "unsafe".len()..].trim_start();
                let word_start = j == 0 || !c.as_bytes()[j - 1].is_ascii_alphanumeric() && c.as_bytes()[j - 1] != b'_';
                word_start && (rest.starts_with('{') || rest.starts_with("impl"))
            });
            if !opens || line.contains("SAFETY") {
                continue;
            }
            // Up through comments and the statement's earlier lines, to the line that ends
            // the previous statement or block (or 12 lines, whichever comes first).
            let mut found = false;
            for above in lines[..i].iter().rev().take(12) {
                if above.contains("SAFETY") {
                    found = true;
                    break;
                }
                let t = above.trim();
                if !t.starts_with("//") && (t.ends_with(';') || t.ends_with('}') || t.is_empty()) {
                    break;
                }
            }
            if !found {
                offences.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    report("an unsafe block or impl without a `// SAFETY:` comment saying why it is sound", offences);
}

/// STYLE: no 1,000-line file (the predecessor's gap). Split a file when it holds two ideas.
#[test]
fn no_source_file_reaches_a_thousand_lines() {
    let long: Vec<String> = rust_files("src").into_iter().filter(|(_, t)| t.lines().count() >= 1000).map(|(p, t)| format!("{p}: {} lines", t.lines().count())).collect();
    report("source files of 1,000 lines or more", long);
}

/// Nothing left unfinished or left over from debugging in the shipped code: an unfinished
/// path returns an error that says "not supported yet".
#[test]
fn no_unfinished_or_debugging_macros() {
    report(
        "todo!, unimplemented! or dbg! in src",
        lines_where(&rust_files("src"), |c| ["todo!(", "unimplemented!(", "dbg!("].iter().any(|m| c.contains(m))),
    );
}

/// ARCHITECTURE.md's code map names every module file, and tests/README.md every test file
/// and directory, so a new one cannot land unexplained.
#[test]
fn the_docs_name_every_module_and_test() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let unnamed: Vec<String> = rust_files("src")
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.ends_with("/mod.rs") && p != "src/lib.rs")
        .filter(|p| {
            let name = Path::new(p).file_name().unwrap().to_str().unwrap();
            !arch.contains(&format!("`{name}`")) && !arch.contains(&format!("/{name}`"))
        })
        .collect();
    report("modules ARCHITECTURE.md's code map does not name (as `file.rs` or `dir/file.rs`)", unnamed);

    let tests_readme = std::fs::read_to_string(root().join("tests/README.md")).unwrap();
    let mut unnamed = Vec::new();
    for e in std::fs::read_dir(root().join("tests")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        // (common/ and fixtures/ are named in the rows' text, as `common/mod.rs` and
        // `fixtures/`.)
        if name != "README.md" && !tests_readme.contains(&format!("`{name}")) {
            unnamed.push(name);
        }
    }
    unnamed.sort();
    report("entries of tests/ that tests/README.md does not name (as `name`)", unnamed);
}
