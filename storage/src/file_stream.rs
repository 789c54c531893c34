//! New files of a directory, read as lines: the receiver behind
//! [`StreamingContextExt::text_file_stream`](crate::StreamingContextExt::text_file_stream).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dstream::{Receiver, ReceiverContext};

/// A [`Receiver`] that watches a directory and stores the lines of every new file once, as
/// UTF-8 strings without their `\n` (or `\r\n`) terminator.
///
/// The contract, close to Spark's `textFileStream`:
///
/// - **Only new files.** Files present in the directory when the receiver is created are
///   ignored (Spark ignores files older than the start of the stream); see
///   [`TextFileStreamReceiver::include_existing`]. Presence, not modification time, decides,
///   so a file renamed into the directory with an old modification time is still new.
/// - **Complete files.** The directory is listed every poll interval (100 ms by default); a
///   file is read once its size and modification time are the same on two consecutive polls.
///   A writer that pauses longer than a poll interval in the middle of a file can therefore be
///   read half-way: for a guarantee, write the file under a hidden name and rename it into
///   place (rename is atomic). Names starting with `.` or `_` are never read (the convention
///   of Hadoop tools, and of this crate's own temporary files).
/// - **Exactly once.** A file is read once, whole, and its lines stored in one call, so they
///   land in one batch; later changes to it are ignored. Names are remembered while the file
///   is in the directory: a file deleted and created again under the same name between two
///   polls is not seen, one created again later is new.
/// - **Errors.** A file that cannot be read (permissions, a dangling symbolic link) or that is
///   not a regular file is reported through [`ReceiverContext::report_error`] once and
///   skipped; lines that are not valid UTF-8 are skipped and reported once per file. A
///   directory that cannot be listed (it does not exist yet) is reported once, and watched
///   until it can be. Subdirectories are not read.
///
/// Waits are in real time, whatever the streaming context's clock: files live in real time.
///
/// # Examples
///
/// ```
/// use std::sync::{mpsc, Arc, Mutex};
/// use std::time::Duration;
/// use dstream::{StepCluster, StreamingContext, SystemClock};
/// use dstream_storage::TextFileStreamReceiver;
/// # let dir = std::env::temp_dir().join(format!("dstream-doc-files-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
///
/// std::fs::write(dir.join("old.txt"), "present before: ignored\n")?;
/// let receiver = TextFileStreamReceiver::new(&dir).poll_interval(Duration::from_millis(10));
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(20), Arc::new(SystemClock::new()))?;
/// let (tx, lines) = mpsc::channel();
/// let tx = Mutex::new(tx);
/// ssc.receiver_stream(receiver).foreach_rdd(move |rdd, _| {
///     for line in rdd.collect()? {
///         let _ = tx.lock().unwrap().send(line);
///     }
///     Ok(())
/// })?;
/// let running = ssc.start()?;
/// // Written under a hidden name, then renamed into place: never read half-written.
/// std::fs::write(dir.join(".new.tmp"), "first\nsecond\n")?;
/// std::fs::rename(dir.join(".new.tmp"), dir.join("new.txt"))?;
/// assert_eq!(lines.recv_timeout(Duration::from_secs(10))?, "first");
/// assert_eq!(lines.recv_timeout(Duration::from_secs(10))?, "second");
/// running.stop(true)?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TextFileStreamReceiver {
    dir: PathBuf,
    poll: Duration,
    existing: BTreeSet<OsString>,
    stats: Arc<FileStreamStats>,
}

/// Counters of a [`TextFileStreamReceiver`], readable while it runs.
#[derive(Debug, Default)]
pub struct FileStreamStats {
    files: AtomicU64,
    lines: AtomicU64,
    invalid_lines: AtomicU64,
    skipped_files: AtomicU64,
}

impl FileStreamStats {
    /// Files read.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Lines stored.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// Lines skipped because they are not valid UTF-8.
    pub fn invalid_lines(&self) -> u64 {
        self.invalid_lines.load(Ordering::Relaxed)
    }

    /// Entries skipped because they could not be read or are not regular files.
    pub fn skipped_files(&self) -> u64 {
        self.skipped_files.load(Ordering::Relaxed)
    }
}

/// What the receiver knows of a name in the directory.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Read, skipped, or present at the start: never looked at again.
    Done,
    /// Seen with this size and modification time at the last poll.
    Growing { len: u64, modified: Option<SystemTime> },
}

impl TextFileStreamReceiver {
    /// A receiver of the files that appear in `dir` from now on. Lists `dir` now to learn which
    /// files to ignore (none if it cannot be listed). Polls every 100 ms by default.
    pub fn new(dir: impl AsRef<Path>) -> TextFileStreamReceiver {
        let dir = dir.as_ref().to_path_buf();
        let existing = fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
            .unwrap_or_default();
        TextFileStreamReceiver { dir, poll: Duration::from_millis(100), existing, stats: Arc::default() }
    }

    /// How often the directory is listed (default 100 ms; at least 1 ms). A file is read one
    /// to two intervals after it stops changing.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d.max(Duration::from_millis(1));
        self
    }

    /// Whether the files present when the receiver was created are read too (default false,
    /// as Spark's `newFilesOnly`).
    pub fn include_existing(mut self, include: bool) -> Self {
        if include {
            self.existing.clear();
        }
        self
    }

    /// The receiver's counters, shared with the running receiver.
    pub fn stats(&self) -> Arc<FileStreamStats> {
        Arc::clone(&self.stats)
    }

    fn skip(&self, ctx: &ReceiverContext<String>, path: &Path, why: &str) {
        self.stats.skipped_files.fetch_add(1, Ordering::Relaxed);
        ctx.report_error(&format!("{}: {why}; skipped", path.display()));
    }

    /// Lists the directory once and reads the files that became stable. Returns false if the
    /// context no longer accepts input.
    fn scan(
        &self,
        ctx: &ReceiverContext<String>,
        seen: &mut BTreeMap<OsString, Seen>,
        dir_error: &mut Option<String>,
    ) -> bool {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                let message = format!("cannot list {}: {e}", self.dir.display());
                // Reported when it starts (or changes), not at every poll.
                if dir_error.as_ref() != Some(&message) {
                    ctx.report_error(&message);
                    *dir_error = Some(message);
                }
                return true;
            }
        };
        *dir_error = None;
        let mut present = BTreeSet::new();
        let mut ready = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    ctx.report_error(&format!("cannot list {}: {e}", self.dir.display()));
                    continue;
                }
            };
            let name = entry.file_name();
            if hidden(&name) {
                continue;
            }
            if seen.get(&name) == Some(&Seen::Done) {
                present.insert(name);
                continue;
            }
            let path = entry.path();
            let now = match fs::metadata(&path) {
                // Deleted since it was listed: forget it.
                Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&path).is_err() => continue,
                Err(e) => {
                    self.skip(ctx, &path, &format!("cannot read: {e}"));
                    Seen::Done
                }
                Ok(m) if m.is_dir() => Seen::Done,
                Ok(m) if !m.is_file() => {
                    self.skip(ctx, &path, "not a regular file");
                    Seen::Done
                }
                Ok(m) => {
                    let now = Seen::Growing { len: m.len(), modified: m.modified().ok() };
                    if seen.get(&name) == Some(&now) {
                        ready.push(path);
                        Seen::Done
                    } else {
                        now
                    }
                }
            };
            seen.insert(name.clone(), now);
            present.insert(name);
        }
        // Names that left the directory are forgotten: memory stays bounded by its size.
        seen.retain(|name, _| present.contains(name));
        ready.sort();
        for path in ready {
            match read_lines(&path) {
                Err(e) => self.skip(ctx, &path, &format!("cannot read: {e}")),
                Ok(ReadLines { lines, invalid, first_invalid }) => {
                    if invalid > 0 {
                        self.stats.invalid_lines.fetch_add(invalid, Ordering::Relaxed);
                        ctx.report_error(&format!(
                            "{}: {invalid} line(s) not valid UTF-8 skipped (the first is line {first_invalid})",
                            path.display()
                        ));
                    }
                    self.stats.files.fetch_add(1, Ordering::Relaxed);
                    let n = lines.len() as u64;
                    if n > 0 {
                        if ctx.store(lines).is_err() {
                            return false;
                        }
                        self.stats.lines.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        }
        true
    }
}

impl Receiver<String> for TextFileStreamReceiver {
    fn run(&mut self, ctx: &ReceiverContext<String>) -> Result<(), String> {
        let mut seen: BTreeMap<OsString, Seen> =
            std::mem::take(&mut self.existing).into_iter().map(|name| (name, Seen::Done)).collect();
        let mut dir_error = None;
        loop {
            if ctx.is_stopped() || !self.scan(ctx, &mut seen, &mut dir_error) {
                return Ok(());
            }
            if !ctx.pause(self.poll) {
                return Ok(());
            }
        }
    }
}

/// Names of files being written, by convention: `.name` and `_name`.
fn hidden(name: &OsStr) -> bool {
    matches!(name.as_encoded_bytes().first(), Some(b'.' | b'_'))
}

struct ReadLines {
    lines: Vec<String>,
    invalid: u64,
    first_invalid: u64,
}

/// The UTF-8 lines of a file, without terminators (an unterminated last line counts).
fn read_lines(path: &Path) -> io::Result<ReadLines> {
    let bytes = fs::read(path)?;
    let mut out = ReadLines { lines: Vec::new(), invalid: 0, first_invalid: 0 };
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if bytes.is_empty() {
        return Ok(out);
    }
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match std::str::from_utf8(line) {
            Ok(line) => out.lines.push(line.to_owned()),
            Err(_) => {
                if out.invalid == 0 {
                    out.first_invalid = i as u64 + 1;
                }
                out.invalid += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_are_the_dot_and_underscore_ones() {
        assert!(hidden(OsStr::new(".part.tmp")) && hidden(OsStr::new("_SUCCESS")));
        assert!(!hidden(OsStr::new("data.txt")));
    }
}
