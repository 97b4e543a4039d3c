//! Tidy: the engine reaches the world only through the Env seam (DESIGN.md section 3).
//! Greps every engine source file for APIs that read a clock, the OS, a thread-local RNG
//! or iterate in hash order. Comments are skipped; everything else counts.

use std::path::Path;

const BANNED: &[&str] = &[
    "tokio",
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::random",
    "HashMap",
    "HashSet",
    "RandomState",
    "SystemRandom",
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("engine/src is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of `text` that use a banned name outside comments.
fn offences(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for banned in BANNED {
            if code.contains(banned) {
                found.push((n + 1, *banned));
            }
        }
    }
    found
}

#[test]
fn engine_uses_only_the_env_seam() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() >= 4, "found the engine sources");
    let mut report = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source is readable");
        for (line, banned) in offences(&text) {
            report.push(format!("{}:{line}: {banned}", file.display()));
        }
    }
    assert!(
        report.is_empty(),
        "engine/ reaches the world outside Env:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_check_has_teeth() {
    assert_eq!(
        offences("use std::collections::HashMap;"),
        vec![(1, "HashMap")]
    );
    assert_eq!(
        offences("let t = std::time::Instant::now();"),
        vec![(1, "Instant::now")]
    );
    assert!(offences("// tokio is mentioned in a comment only").is_empty());
    assert_eq!(offences("x\ntokio::spawn(f);").len(), 1);
}
