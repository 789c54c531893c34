//! `LocalFs` against a real kill: a child process (this test binary, run again in child mode)
//! overwrites one object in a loop and is killed at a random moment; the object is always one
//! complete version, `list` ignores the temporary file the kill left, and reopening removes it.

mod common;

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dstream::{SplitMix64, Storage};
use dstream_storage::LocalFs;

/// The child's root directory; set only in the child.
const CHILD_ENV: &str = "DSTREAM_LOCALFS_KILL_CHILD_ROOT";
/// How long the child writes at most if nobody kills it.
const CHILD_SECONDS_MAX: u64 = 60;
const OBJECT: &str = "state/current";

/// Version `v` of the object: its size and version, then a filler that depends on both, so any
/// torn or mixed content fails [`check_version`].
fn version_bytes(v: u64) -> Vec<u8> {
    let len = (64 << 10) + (v % 5) as usize * (48 << 10);
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&(len as u64).to_le_bytes());
    bytes.extend_from_slice(&v.to_le_bytes());
    bytes.extend((16..len).map(|i| (i as u64 ^ v) as u8));
    bytes
}

/// The version a complete object holds; panics on anything else.
fn check_version(bytes: &[u8]) -> u64 {
    assert!(bytes.len() >= 16, "a torn object of {} bytes", bytes.len());
    let v = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    assert!(
        bytes == version_bytes(v),
        "the object is not a complete version ({} bytes, says version {v})",
        bytes.len()
    );
    v
}

/// The child: overwrites the object with version 1, 2, ... in pieces, printing each version
/// once it is stored, until killed.
#[test]
fn child_writer() {
    let Ok(root) = std::env::var(CHILD_ENV) else { return }; // Not in child mode: nothing to do.
    let fs = LocalFs::new(root).expect("open the store");
    let start = Instant::now();
    for v in 1.. {
        let bytes = version_bytes(v);
        fs.put_with(OBJECT, &mut |w| bytes.chunks(4096).try_for_each(|c| w.write_all(c))).expect("put");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{v}").and_then(|()| out.flush()).expect("report progress");
        if start.elapsed() > Duration::from_secs(CHILD_SECONDS_MAX) {
            break;
        }
    }
}

#[test]
fn a_killed_writer_leaves_a_complete_object() {
    let dir = common::TempDir::new("localfs-kill");
    let fs = LocalFs::new(dir.path()).unwrap();
    fs.put(OBJECT, &version_bytes(0)).unwrap();
    let state_dir = dir.path().join("state");
    let mut rng = SplitMix64::new(0x6b11);
    let mut temporaries_seen = 0;
    for round in 0..6 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_writer", "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it store a few versions past the current one, a random number, then kill it in
        // the middle of whatever write it is doing then. If the child dies early, its output
        // ends and the version check below fails.
        let before = check_version(&fs.get(OBJECT).unwrap());
        let target = before + 3 + rng.below(8) as u64;
        // The pipe stays open until the kill, so the child never fails on a closed output.
        let mut stored = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in stored.by_ref() {
            // The test harness prints lines of its own around the child's versions.
            if line.unwrap().trim().parse::<u64>().is_ok_and(|v| v >= target) {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        drop(stored);

        let v = check_version(&fs.get(OBJECT).unwrap());
        assert!(v >= target, "round {round}: version {v}, the child had stored {target}");
        assert_eq!(fs.list("").unwrap(), [OBJECT], "round {round}: only the object is listed");
        let entries = std::fs::read_dir(&state_dir).unwrap().count();
        temporaries_seen += entries - 1;

        drop(LocalFs::new(dir.path()).unwrap());
        assert_eq!(std::fs::read_dir(&state_dir).unwrap().count(), 1, "round {round}: reopening cleans up");
        assert_eq!(check_version(&fs.get(OBJECT).unwrap()), v);
    }
    eprintln!("kills that left a temporary file: {temporaries_seen} of 6");
}

/// A store opened while another process writes the same root (a cluster's driver and workers
/// share a checkpoint directory) removes none of that process's temporary files: every put
/// of the writer succeeds.
#[test]
fn opening_a_store_another_process_writes_removes_nothing_it_writes() {
    let dir = common::TempDir::new("localfs-shared");
    let fs = LocalFs::new(dir.path()).unwrap();
    fs.put(OBJECT, &version_bytes(0)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reached = 0;
    let mut opens = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(v) = line.unwrap().trim().parse::<u64>() else { continue };
        reached = v;
        // Two removal passes over the root per version the writer stores, so that some fall
        // in the middle of its puts.
        for _ in 0..2 {
            drop(LocalFs::new(dir.path()).unwrap());
            opens += 1;
        }
        if v >= 300 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // A put that failed (its temporary file removed under it) panics the writer: its output
    // would have ended early.
    assert!(reached >= 300, "the writer stopped at version {reached} after {opens} opens of its root");
    check_version(&fs.get(OBJECT).unwrap());
}
