//! Architecture checks on core's own source, independent of clippy's configuration lookup.
//!
//! Core starts threads and reads the OS clock only in `src/runtime/` (ARCHITECTURE.md,
//! "Invariants"). Clippy's `disallowed-methods` (in `core/clippy.toml`) enforces that on
//! resolved paths; this test scans the text, so it still holds if the clippy configuration is
//! lost or not read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The one module allowed to start threads and read the OS clock: every file under it.
const RUNTIME: &str = "src/runtime";

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{}: {e}", d.display())).path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The line without its `//` comment (doc comments included): prose may name what code may not
/// call. A `//` inside a string literal also ends the line; that only makes the scan miss code,
/// never report code that is not there.
fn code_of(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// The forbidden calls in `source`, as (line number, what was found).
fn forbidden_calls(source: &str) -> Vec<(usize, &'static str)> {
    const PATTERNS: [(&str, &str); 6] = [
        ("Instant::now", "Instant::now (reads the OS clock)"),
        ("SystemTime::now", "SystemTime::now (reads the OS clock)"),
        ("thread::spawn", "thread::spawn (starts a thread)"),
        ("thread::scope", "thread::scope (starts threads)"),
        ("spawn_scoped(", "spawn_scoped (starts a thread)"),
        ("UNIX_EPOCH", "UNIX_EPOCH (the wall clock)"),
    ];
    let lines: Vec<&str> = source.lines().map(code_of).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        for (pattern, what) in PATTERNS {
            if line.contains(pattern) {
                found.push((i + 1, what));
            }
        }
        // `std::thread::Builder::new().name(..).spawn(..)`, often over several lines: a
        // `Builder::new()` whose statement (up to the next `;`) calls `.spawn(`.
        if let Some(at) = line.find("Builder::new()") {
            let mut statement = line[at..].to_string();
            for next in &lines[i + 1..] {
                if statement.contains(';') {
                    break;
                }
                statement.push_str(next);
            }
            let statement = statement.split(';').next().unwrap_or_default();
            if statement.contains(".spawn(") {
                found.push((i + 1, "Builder::new()...spawn( (starts a thread)"));
            }
        }
    }
    found
}

#[test]
fn only_the_runtime_module_starts_threads_or_reads_the_os_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rust_files(&root.join("src"));
    let runtime = root.join(RUNTIME);
    assert!(files.iter().any(|f| *f == runtime.join("mod.rs")), "{RUNTIME}/mod.rs exists");
    assert!(files.len() > 20, "the scan sees core's source: {} files", files.len());
    let mut report = String::new();
    for file in files.iter().filter(|f| !f.starts_with(&runtime)) {
        let source = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (line, what) in forbidden_calls(&source) {
            let name = file.strip_prefix(root).unwrap_or(file).display();
            writeln!(report, "{name}:{line}: {what}; go through `crate::runtime`").unwrap();
        }
    }
    assert!(report.is_empty(), "core must start threads and read the OS clock only in {RUNTIME}/:\n{report}");
}

#[test]
fn the_scan_finds_what_it_looks_for() {
    let source = "fn f() {\n    let t = std::time::Instant::now();\n    // std::thread::spawn in a comment\n    \
                  let h = std::thread::Builder::new()\n        .name(\"x\".into())\n        .spawn(|| ());\n    \
                  let b = std::thread::Builder::new().name(\"y\".into());\n    b.spawn(|| ());\n}\n";
    let found: Vec<usize> = forbidden_calls(source).into_iter().map(|(line, _)| line).collect();
    // Line 7's builder is spawned in another statement: the clippy lint is the check for that.
    assert_eq!(found, vec![2, 4]);
}

/// Clippy reads only the `clippy.toml` nearest the crate, so core's must repeat the workspace's.
#[test]
fn core_clippy_config_repeats_the_workspace_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let settings = |text: &str| -> Vec<String> {
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
    };
    let workspace = settings(&read(&root.join("../clippy.toml")));
    let core = settings(&read(&root.join("clippy.toml")));
    let missing: Vec<&String> = workspace.iter().filter(|s| !core.contains(s)).collect();
    assert!(missing.is_empty(), "core/clippy.toml lacks settings of the workspace's clippy.toml: {missing:?}");
    assert!(core.iter().any(|s| s.starts_with("disallowed-methods")), "core/clippy.toml bans threads and the clock");
}
