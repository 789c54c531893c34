//! Architecture checks on the source, independent of clippy's configuration lookup.
//!
//! Core starts threads and reads the OS clock only in `src/runtime/` (ARCHITECTURE.md,
//! "Invariants"). Clippy's `disallowed-methods` (in `core/clippy.toml`) enforces that on
//! resolved paths; this test scans the text, so it still holds if the clippy configuration is
//! lost or not read.
//!
//! The workspace's only unsafe code is dstream-tcp's `pod` module (feature `pod-codec`): the
//! workspace forbids unsafe code, dstream-tcp only denies it so that this one module may allow
//! it. The last tests scan every source file and manifest of the workspace for that.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The one module allowed to start threads and read the OS clock: every file under it.
const RUNTIME: &str = "src/runtime";

/// Every `.rs` file under `dir`, sorted; build outputs (`target/`) and hidden directories are
/// left out.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{}: {e}", d.display())).path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() && (name == "target" || name.starts_with('.')) {
                continue;
            }
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

/// The one module of the workspace allowed unsafe code, relative to the workspace root.
const UNSAFE_MODULE: &str = "transport-tcp/src/pod.rs";
/// The crate root that allows it, under the crate's feature.
const UNSAFE_ROOT: &str = "transport-tcp/src/lib.rs";

/// Whether `code` has `word` as a whole word (`unsafe` is not in `unsafe_code`, nor
/// `unsafe_code` in `unsafe_code_is`).
fn has_word(code: &str, word: &str) -> bool {
    let part = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

/// Each line of `source` with its comments removed and the contents of its string and
/// character literals emptied (the quotes stay), so that prose and messages may name what code
/// may not do. Raw strings, nested block comments and literals over several lines are handled;
/// a `'` that opens no character literal is a lifetime.
fn code_lines(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let at = |k: usize| chars.get(k).copied();
    let (mut out, mut line) = (Vec::new(), String::new());
    // Moves past what is not code, keeping its line breaks.
    let skip = |from: usize, to: usize, line: &mut String, out: &mut Vec<String>| {
        for _ in chars[from.min(chars.len())..to.min(chars.len())].iter().filter(|c| **c == '\n') {
            out.push(std::mem::take(line));
        }
    };
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\n' => {
                out.push(std::mem::take(&mut line));
                i += 1;
            }
            '/' if at(i + 1) == Some('/') => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                let (start, mut depth) = (i, 0);
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                skip(start, i, &mut line, &mut out);
            }
            'r' | 'b'
                if !line.ends_with(|c: char| c.is_alphanumeric() || c == '_')
                    && raw_string_at(&chars[i..]).is_some() =>
            {
                let (open, hashes) = raw_string_at(&chars[i..]).unwrap_or_default();
                let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                let start = i + open;
                let end = (start..chars.len()).find(|&k| chars[k..].starts_with(&close)).unwrap_or(chars.len());
                line.push_str("\"\"");
                skip(start, end, &mut line, &mut out);
                i = end + close.len();
            }
            '"' => {
                let start = i + 1;
                i = start;
                while at(i).is_some_and(|c| c != '"') {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                line.push_str("\"\"");
                skip(start, i, &mut line, &mut out);
                i += 1;
            }
            '\'' if at(i + 1) == Some('\\') || at(i + 2) == Some('\'') => {
                // After an escape's backslash the next character may itself be a quote.
                let mut end = if at(i + 1) == Some('\\') { i + 3 } else { i + 2 };
                while at(end).is_some_and(|c| c != '\'') {
                    end += 1;
                }
                line.push_str("''");
                i = end + 1;
            }
            c => {
                line.push(c);
                i += 1;
            }
        }
    }
    out.push(line);
    out
}

/// If `chars` starts a raw string (`r"`, `r#"`, `br##"`, ...): the characters up to its
/// contents and the number of `#`s.
fn raw_string_at(chars: &[char]) -> Option<(usize, usize)> {
    let prefix = if chars.starts_with(&['b', 'r']) {
        2
    } else if chars.starts_with(&['r']) {
        1
    } else {
        return None;
    };
    let hashes = chars[prefix..].iter().take_while(|c| **c == '#').count();
    (chars.get(prefix + hashes) == Some(&'"')).then_some((prefix + hashes + 1, hashes))
}

/// In `source`, the lines (number, trimmed code) that use the keyword `unsafe`, and those that
/// name the `unsafe_code` lint other than to forbid it; comments and literals do not count.
fn unsafe_lines(source: &str) -> (Vec<(usize, String)>, Vec<(usize, String)>) {
    let (mut uses, mut lifts) = (Vec::new(), Vec::new());
    for (i, code) in code_lines(source).iter().enumerate() {
        let code = code.trim();
        if has_word(code, "unsafe") {
            uses.push((i + 1, code.to_owned()));
        }
        if has_word(&code.replace("forbid(unsafe_code)", ""), "unsafe_code") {
            lifts.push((i + 1, code.to_owned()));
        }
    }
    (uses, lifts)
}

/// The settings of `[section]` in a TOML text: its lines up to the next section, trimmed,
/// without blank lines and comments.
fn toml_section(text: &str, section: &str) -> Vec<String> {
    let header = format!("[{section}]");
    text.lines()
        .map(str::trim)
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_unsafe_scan_finds_what_it_looks_for() {
    let source = r##"#![forbid(unsafe_code)]
// unsafe in a comment
fn f() -> u8 {
    unsafe { g() }
}
#[allow(unsafe_code)]
mod m;
let unsafe_code = 1;
pub(crate) unsafe fn h() {}
#![cfg_attr(x, deny(unsafe_code), forbid(unsafe_code))]
let s = "unsafe { in a string }
    over two lines, \" unsafe";
let r = r#"unsafe " unsafe_code"#; /* unsafe
   unsafe_code /* nested */ unsafe */ let c = '"'; let e = '\''; fn l<'a>(x: &'a u8) { unsafe {} }
let b = b"unsafe"; let d = br"unsafe_code"; let q = '\u{22}'; unsafe impl Send for X {}
"##;
    let (uses, lifts) = unsafe_lines(source);
    let lines = |found: Vec<(usize, String)>| found.into_iter().map(|(line, _)| line).collect::<Vec<_>>();
    assert_eq!(lines(uses), vec![4, 9, 14, 15]);
    assert_eq!(lines(lifts), vec![6, 8, 10]);
    assert_eq!(code_lines(source).len(), source.lines().count() + 1, "every line is kept, the last one empty");
    assert!(!has_word("unsafe_op_in_unsafe_fn or not_unsafe", "unsafe"));
    assert!(!has_word("fn unsafe_code_is_checked()", "unsafe_code"));
    let toml = "[a]\nx = 1\n# c\n\n[b]\ny = 2\n";
    assert_eq!(toml_section(toml, "a"), ["x = 1"]);
    assert_eq!(toml_section(toml, "b"), ["y = 2"]);
}

#[test]
fn unsafe_code_is_only_in_the_pod_module_behind_its_feature() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = rust_files(&root);
    assert!(files.len() > 100, "the scan sees the workspace's source: {} files", files.len());
    let mut report = String::new();
    let (mut module_uses, mut root_lifts) = (0, Vec::new());
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.strip_prefix(&root).unwrap_or(file).to_string_lossy().replace('\\', "/");
        let (uses, lifts) = unsafe_lines(&source);
        if name == UNSAFE_MODULE {
            module_uses = uses.len();
        } else {
            for (line, code) in uses {
                writeln!(report, "{name}:{line}: unsafe code outside {UNSAFE_MODULE}: {code}").unwrap();
            }
        }
        if name == UNSAFE_ROOT {
            // The attributes themselves, strings included: `code_lines` empties them.
            let lines: Vec<&str> = source.lines().map(|l| code_of(l).trim()).collect();
            assert!(
                lines.contains(&r#"#![cfg_attr(not(feature = "pod-codec"), forbid(unsafe_code))]"#),
                "{name} forbids unsafe code without the feature"
            );
            for (line, code) in &lifts {
                let (before, this, after) = (lines[line - 2], lines[line - 1], lines[*line]);
                let expected = this == r#"#![cfg_attr(feature = "pod-codec", deny(unsafe_code))]"#
                    || (this == "#[allow(unsafe_code)]"
                        && before == r#"#[cfg(feature = "pod-codec")]"#
                        && after == "pub mod pod;");
                if !expected {
                    writeln!(report, "{name}:{line}: unsafe code allowed other than for the pod module: {code}")
                        .unwrap();
                }
            }
            root_lifts = lifts;
        } else {
            for (line, code) in lifts {
                writeln!(report, "{name}:{line}: the unsafe_code lint is set other than to forbid: {code}").unwrap();
            }
        }
    }
    assert!(report.is_empty(), "unsafe code belongs in {UNSAFE_MODULE} only:\n{report}");
    assert!(module_uses > 0, "the scan sees the unsafe blocks of {UNSAFE_MODULE}");
    assert_eq!(root_lifts.len(), 2, "{UNSAFE_ROOT} denies unsafe code and allows it for `mod pod`: {root_lifts:?}");
}

/// dstream-tcp cannot take the workspace's lints and change one (Cargo has no such override),
/// so it repeats them with `unsafe_code` denied: the copy must not drift, every other member
/// must take the workspace's, and dstream-tcp's other crate roots forbid unsafe code themselves.
#[test]
fn only_dstream_tcp_denies_rather_than_forbids_unsafe_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let workspace = read(&root.join("Cargo.toml"));
    let tcp = read(&root.join("transport-tcp/Cargo.toml"));
    let rust = toml_section(&workspace, "workspace.lints.rust");
    assert!(rust.contains(&r#"unsafe_code = "forbid""#.to_owned()), "the workspace forbids unsafe code: {rust:?}");
    let denied: Vec<String> = rust
        .iter()
        .map(|s| if s.starts_with("unsafe_code") { r#"unsafe_code = "deny""#.to_owned() } else { s.clone() })
        .collect();
    assert_eq!(
        toml_section(&tcp, "lints.rust"),
        denied,
        "dstream-tcp's [lints.rust] are the workspace's, unsafe_code denied"
    );
    assert_eq!(
        toml_section(&tcp, "lints.clippy"),
        toml_section(&workspace, "workspace.lints.clippy"),
        "dstream-tcp's [lints.clippy] are the workspace's"
    );

    let members_line = workspace.lines().find(|l| l.trim_start().starts_with("members")).unwrap_or_default();
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.len() >= 6 && members.contains(&"transport-tcp"), "the workspace's members: {members:?}");
    for member in members.iter().filter(|m| **m != "transport-tcp") {
        let manifest = read(&root.join(member).join("Cargo.toml"));
        assert_eq!(toml_section(&manifest, "lints"), ["workspace = true"], "{member} takes the workspace's lints");
    }

    // dstream-tcp's crate roots other than its library: every file directly in these folders.
    let crate_dir = root.join("transport-tcp");
    let mut roots: Vec<PathBuf> = ["tests", "benches", "examples", "src/bin"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(crate_dir.join(dir)).ok())
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    roots.extend(Some(crate_dir.join("src/main.rs")).filter(|p| p.exists()));
    assert!(!roots.is_empty(), "dstream-tcp has integration tests");
    for file in roots {
        let forbids = read(&file).lines().any(|l| code_of(l).trim() == "#![forbid(unsafe_code)]");
        assert!(forbids, "{} forbids unsafe code (dstream-tcp's lints only deny it)", file.display());
    }
}
