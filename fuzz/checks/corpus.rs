//! Replaying fuzz inputs as regression tests (std only): the committed corpus
//! (`fuzz/corpus/<target>/`, raw files that `make fuzz-merge` keeps) and kept crashers
//! (`fuzz/regressions/<target>/`, raw, or hex digits in a `.hex` file).

use std::path::{Path, PathBuf};

pub fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for e in entries {
            let p = e.expect("corpus entry").path();
            let bytes = std::fs::read(&p).expect("read corpus file");
            let bytes = if p.extension().is_some_and(|x| x == "hex") { unhex(&bytes) } else { bytes };
            out.push((p, bytes));
        }
    }
    out.sort();
    out
}

fn unhex(text: &[u8]) -> Vec<u8> {
    let digits: Vec<u8> = text.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).expect("hex"), 16).expect("hex digit pair"))
        .collect()
}

/// Runs `check` on every input of `target`; names the first file that fails.
pub fn replay(target: &str, check: impl Fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no corpus for {target}: fuzz/corpus/{target} is missing");
    for (path, bytes) in &all {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(bytes))).is_err() {
            panic!("fuzz input {} fails its check", path.display());
        }
    }
}
