//! The temporary files of [`LocalFs`](crate::LocalFs) puts, and which of them are abandoned.
//!
//! A put writes `.{file}.tmp-{pid}-{n}-{host}` next to the object's file and renames it over
//! the object. Several processes share a root (a cluster's driver and workers on one shared
//! directory, several machines on a network file system), so opening a store removes only
//! the temporary files nobody is writing any more:
//! - this process's own: those of no put in progress (a put that stopped half-way, as a test
//!   simulates a crash);
//! - another process's on this machine: those whose process is not running (`/proc/{pid}`);
//! - another machine's (or where liveness cannot be told): those not modified for
//!   [`ABANDONED_AGE`], far longer than any put takes between writes.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What a temporary file's name holds after the object's file name. Object names never start
/// with `.`, so no object can be mistaken for a temporary file.
pub(crate) const TMP_TAG: &str = ".tmp-";

/// How long another machine's temporary file must have been left alone to count as abandoned.
pub(crate) const ABANDONED_AGE: Duration = Duration::from_secs(3600);

/// The temporary files this process's puts are writing.
static IN_FLIGHT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn in_flight_set() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    // A set of paths, consistent whatever a panicking holder did.
    IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner())
}

/// This machine's name as it goes into temporary file names (`""` if unknown).
fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        name.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
    })
}

/// The name of the `n`th temporary file of this process for the object file `file_name`.
pub(crate) fn tmp_name(file_name: &OsStr, n: u64) -> OsString {
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(format!("{TMP_TAG}{}-{n}-{}", std::process::id(), host()));
    name
}

/// A temporary file a put of this process is writing, until dropped.
pub(crate) struct InFlight(PathBuf);

impl InFlight {
    pub(crate) fn new(path: PathBuf) -> InFlight {
        in_flight_set().insert(path.clone());
        InFlight(path)
    }

    /// The temporary file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight_set().remove(&self.0);
    }
}

/// Whether a directory entry is one of the store's temporary files.
pub(crate) fn is_temporary(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.contains(TMP_TAG)
}

/// The process and machine that wrote a temporary file, from its name.
fn owner(file_name: &str) -> Option<(u32, &str)> {
    let (_, tail) = file_name.rsplit_once(TMP_TAG)?;
    let (pid, rest) = tail.split_once('-')?;
    let (_, host) = rest.split_once('-')?;
    Some((pid.parse().ok()?, host))
}

/// Whether process `pid` of this machine runs: `None` where that cannot be told.
fn running(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self").exists().then(|| proc.join(pid.to_string()).exists())
}

/// Whether the temporary file at `path` (named `file_name`) is abandoned: see the module's
/// documentation.
pub(crate) fn abandoned(path: &Path, file_name: &str) -> bool {
    let old = || {
        let modified = std::fs::metadata(path).and_then(|m| m.modified());
        modified.is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= ABANDONED_AGE))
    };
    match owner(file_name) {
        Some((pid, h)) if !host().is_empty() && h == host() => {
            if pid == std::process::id() {
                !in_flight_set().contains(path)
            } else {
                running(pid).map_or_else(old, |running| !running)
            }
        }
        _ => old(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_whose_they_are() {
        let name = tmp_name(OsStr::new("part-0"), 7).into_string().unwrap();
        assert!(is_temporary(&name), "{name}");
        assert_eq!(owner(&name), Some((std::process::id(), host())));
        assert_eq!(owner(".a.tmp-12-3-node-7.example"), Some((12, "node-7.example")));
        assert_eq!(owner(".a.tmp-12-3"), None, "no machine: judged by age");
        assert_eq!(owner(".a.tmp-x-3-h"), None);
        assert!(!is_temporary("part-0"));
    }

    #[test]
    fn only_temporaries_nobody_writes_are_abandoned() {
        let dir = std::env::temp_dir().join(format!("dstream-temporaries-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let at = |name: &str| {
            let path = dir.join(name);
            std::fs::write(&path, b"partial").unwrap();
            path
        };
        // This process's: abandoned once no put writes it.
        let own = tmp_name(OsStr::new("a"), 1).into_string().unwrap();
        let writing = InFlight::new(at(&own));
        assert!(!abandoned(&dir.join(&own), &own));
        drop(writing);
        assert!(abandoned(&dir.join(&own), &own));
        if running(1).is_some() && !host().is_empty() {
            // A running process of this machine (init) is writing; no process has the largest pid.
            let live = format!(".a{TMP_TAG}1-1-{}", host());
            assert!(!abandoned(&at(&live), &live));
            let dead = format!(".a{TMP_TAG}{}-1-{}", u32::MAX, host());
            assert!(abandoned(&at(&dead), &dead));
        }
        // Another machine's, just written: its writer may be running.
        let remote = format!(".a{TMP_TAG}1-1-another-machine");
        assert!(!abandoned(&at(&remote), &remote));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
