//! New files of a directory, read as lines: the receiver behind
//! [`StreamingContextExt::text_file_stream`](crate::StreamingContextExt::text_file_stream).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dstream::{Receiver, ReceiverContext};

use crate::lines::{LineSplitter, Piece, MAX_LINE_BYTES_DEFAULT};
use crate::report::report;

/// A [`Receiver`] that watches a directory and stores the lines of every new file once, as
/// UTF-8 strings without their `\n` (or `\r\n`) terminator.
///
/// # Move files into the directory complete
///
/// **A file must appear in the directory whole: write it elsewhere (or under a hidden name,
/// see below) and rename it into the directory, which is atomic.** This is Spark's rule for
/// `textFileStream`, and the only way to a guarantee: the receiver cannot tell a writer that
/// paused from one that finished. A file written in place is read once it has content and its
/// size and modification time were the same on two consecutive polls, so a writer pausing
/// longer than a poll interval is read half-way. The receiver does not stay silent about it:
/// every change to a file after it was read (it grew, shrank, or its modification time moved)
/// is reported through [`ReceiverContext::report_error`], once per change, naming the file and
/// the change. The change itself is not read.
///
/// The contract, close to Spark's `textFileStream`:
///
/// - **Only new files.** Files present in the directory when the receiver is created are
///   ignored (Spark ignores files older than the start of the stream); see
///   [`TextFileStreamReceiver::include_existing`]. Presence, not modification time, decides,
///   so a file renamed into the directory with an old modification time is still new.
/// - **Complete files.** The directory is listed every poll interval (100 ms by default); a
///   file is read once it is not empty and its size and modification time are the same on two
///   consecutive polls. An empty file is not read (it has no lines): it is watched until it
///   gets content, the typical mark of a writer that created the file before writing it.
///   Names starting with `.` or `_` are never read (the convention of Hadoop tools, and of this
///   crate's own temporary files): write under such a name, then rename.
/// - **Exactly once.** A file is read once; later changes to it are reported, not read. Read
///   files are watched (their size and modification time remembered) while they are in the
///   directory, at most [`TextFileStreamReceiver::watch_files_max`] of them (the oldest read
///   stop being watched first; their names are still remembered, so they are never read
///   again). Names are remembered while the file is in the directory: a file deleted and
///   created again under the same name between two polls is not seen, one created again
///   later is new.
/// - **Bounded memory.** A file is read as a stream, and its lines stored in chunks of at most
///   [`TextFileStreamReceiver::chunk_bytes`] bytes of line content (4 MiB by default), so a file
///   costs one chunk of memory, not its size, on top of what the stream's input buffer holds.
///   The trade: the lines of a file of at most one chunk land in one batch; those of a larger
///   file land in consecutive batches, in order (each chunk in the batch open when it is
///   stored). A line longer than [`TextFileStreamReceiver::max_line_bytes`] (1 MiB by
///   default, the socket receiver's limit) is skipped and reported.
/// - **Errors.** A file that cannot be read (permissions, a dangling symbolic link) or that is
///   not a regular file is reported through [`ReceiverContext::report_error`] once and
///   skipped; lines that are not valid UTF-8, and lines over the limit, are skipped and
///   reported once per file (how many, and the first one's number). A directory that cannot
///   be listed (it does not exist yet) is reported once, and watched until it can be.
///   Subdirectories are not read.
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
    chunk_bytes_max: usize,
    max_line_bytes: usize,
    watch_files_max: usize,
    stats: Arc<FileStreamStats>,
    stderr: bool,
}

/// Counters of a [`TextFileStreamReceiver`], readable while it runs.
#[derive(Debug, Default)]
pub struct FileStreamStats {
    files: AtomicU64,
    lines: AtomicU64,
    invalid_lines: AtomicU64,
    oversized_lines: AtomicU64,
    skipped_files: AtomicU64,
    changed_after_read: AtomicU64,
    chunks: AtomicU64,
    largest_chunk_bytes: AtomicU64,
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

    /// Lines skipped because they are longer than the limit.
    pub fn oversized_lines(&self) -> u64 {
        self.oversized_lines.load(Ordering::Relaxed)
    }

    /// Entries skipped because they could not be read or are not regular files.
    pub fn skipped_files(&self) -> u64 {
        self.skipped_files.load(Ordering::Relaxed)
    }

    /// Changes seen (and reported) in files after they were read: files that were not moved
    /// into the directory complete.
    pub fn changed_after_read(&self) -> u64 {
        self.changed_after_read.load(Ordering::Relaxed)
    }

    /// Chunks of lines stored (each one call of [`ReceiverContext::store`]).
    pub fn chunks(&self) -> u64 {
        self.chunks.load(Ordering::Relaxed)
    }

    /// The most bytes of line content stored in one chunk so far.
    pub fn largest_chunk_bytes(&self) -> u64 {
        self.largest_chunk_bytes.load(Ordering::Relaxed)
    }
}

/// A file's size and modification time, as one poll saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp { len: m.len(), modified: m.modified().ok() }
    }

    /// How `self` differs from the `earlier` stamp, for a report.
    fn change_since(&self, earlier: &Stamp) -> String {
        match self.len.cmp(&earlier.len) {
            std::cmp::Ordering::Greater => format!("grew from {} to {} bytes", earlier.len, self.len),
            std::cmp::Ordering::Less => format!("shrank from {} to {} bytes", earlier.len, self.len),
            std::cmp::Ordering::Equal => format!("its modification time changed (size {} bytes)", self.len),
        }
    }
}

/// What the receiver knows of a name in the directory.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Present at the start, skipped, or read and no longer watched: never looked at again.
    Done,
    /// Not read yet: seen with this stamp at the last poll.
    Growing(Stamp),
    /// Read, and watched for changes: its stamp when read, or at its last reported change.
    Read(Stamp),
}

/// The names of the directory the receiver knows, and the order in which files were read (to
/// bound how many are watched).
#[derive(Debug, Default)]
struct Known {
    seen: BTreeMap<OsString, Seen>,
    /// Names in the order they were read; the front ones stop being watched first.
    read_order: VecDeque<OsString>,
}

impl Known {
    fn watched(&self) -> usize {
        self.seen.values().filter(|s| matches!(s, Seen::Read(_))).count()
    }

    /// Records that `name` was read with `stamp`, and stops watching the oldest read files
    /// beyond `max`.
    fn read(&mut self, name: OsString, stamp: Stamp, max: usize) {
        self.seen.insert(name.clone(), Seen::Read(stamp));
        self.read_order.push_back(name);
        let mut watched = self.watched();
        while watched > max {
            let Some(oldest) = self.read_order.pop_front() else { break };
            if let Some(s @ Seen::Read(_)) = self.seen.get_mut(&oldest) {
                *s = Seen::Done;
                watched -= 1;
            }
        }
    }

    /// Forgets the names not in `present`: memory stays bounded by the directory's size.
    fn retain(&mut self, present: &BTreeSet<OsString>) {
        self.seen.retain(|name, _| present.contains(name));
        self.read_order.retain(|name| matches!(self.seen.get(name), Some(Seen::Read(_))));
    }
}

impl TextFileStreamReceiver {
    /// A receiver of the files that appear in `dir` from now on. Lists `dir` now to learn which
    /// files to ignore (none if it cannot be listed). Polls every 100 ms, stores chunks of at
    /// most 4 MiB, keeps lines of at most 1 MiB and watches at most 10,000 read files, by
    /// default.
    pub fn new(dir: impl AsRef<Path>) -> TextFileStreamReceiver {
        let dir = dir.as_ref().to_path_buf();
        let existing = fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
            .unwrap_or_default();
        TextFileStreamReceiver {
            dir,
            poll: Duration::from_millis(100),
            existing,
            chunk_bytes_max: 4 << 20,
            max_line_bytes: MAX_LINE_BYTES_DEFAULT,
            watch_files_max: 10_000,
            stats: Arc::default(),
            stderr: true,
        }
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

    /// The most bytes of line content stored in one call of [`ReceiverContext::store`]
    /// (default 4 MiB; at least 1; a single longer line, up to the line limit, is a chunk of
    /// its own). Bounds what reading one file holds in memory; see the trade in the type's
    /// documentation.
    pub fn chunk_bytes(mut self, n: usize) -> Self {
        self.chunk_bytes_max = n.max(1);
        self
    }

    /// The longest line kept, in bytes without its terminator (default 1 MiB, as the socket
    /// receiver's; at least 1); longer lines are skipped and reported.
    pub fn max_line_bytes(mut self, n: usize) -> Self {
        self.max_line_bytes = n.max(1);
        self
    }

    /// How many read files are watched for changes at most (default 10,000; at least 1): each
    /// costs its name, size and modification time, and one metadata read per poll.
    pub fn watch_files_max(mut self, n: usize) -> Self {
        self.watch_files_max = n.max(1);
        self
    }

    /// Whether every report (a skipped file, a file changed after it was read, a directory
    /// that cannot be listed) is also printed to stderr, as one line naming the stream
    /// (default true). Reports always reach the context:
    /// [`StreamingListener::on_receiver_error`](dstream::StreamingListener::on_receiver_error)
    /// and [`StreamingContext::receiver_errors`](dstream::StreamingContext::receiver_errors).
    pub fn report_to_stderr(mut self, on: bool) -> Self {
        self.stderr = on;
        self
    }

    /// The receiver's counters, shared with the running receiver.
    pub fn stats(&self) -> Arc<FileStreamStats> {
        Arc::clone(&self.stats)
    }

    fn skip(&self, ctx: &ReceiverContext<String>, path: &Path, why: &str) {
        self.stats.skipped_files.fetch_add(1, Ordering::Relaxed);
        report(ctx, self.stderr, &format!("{}: {why}; skipped", path.display()));
    }

    /// Lists the directory once, reports changes to read files and reads the files that became
    /// stable. Returns false if the context no longer accepts input.
    fn scan(&self, ctx: &ReceiverContext<String>, known: &mut Known, dir_error: &mut Option<String>) -> bool {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                let message = format!("cannot list {}: {e}", self.dir.display());
                // Reported when it starts (or changes), not at every poll.
                if dir_error.as_ref() != Some(&message) {
                    report(ctx, self.stderr, &message);
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
                    report(ctx, self.stderr, &format!("cannot list {}: {e}", self.dir.display()));
                    continue;
                }
            };
            let name = entry.file_name();
            if hidden(&name) {
                continue;
            }
            let before = known.seen.get(&name);
            if before == Some(&Seen::Done) {
                present.insert(name);
                continue;
            }
            let path = entry.path();
            let now = match (fs::metadata(&path), before) {
                // Deleted since it was listed: forget it.
                (Err(e), _) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&path).is_err() => continue,
                // A read file that cannot be looked at any more is no longer watched.
                (Err(_), Some(Seen::Read(_))) => Seen::Done,
                (Err(e), _) => {
                    self.skip(ctx, &path, &format!("cannot read: {e}"));
                    Seen::Done
                }
                (Ok(m), _) if m.is_dir() => Seen::Done,
                (Ok(m), _) if !m.is_file() => {
                    self.skip(ctx, &path, "not a regular file");
                    Seen::Done
                }
                (Ok(m), Some(Seen::Read(read))) => {
                    let stamp = Stamp::of(&m);
                    if stamp != *read {
                        self.stats.changed_after_read.fetch_add(1, Ordering::Relaxed);
                        report(ctx, self.stderr, &format!(
                            "{}: changed after it was read: {}; the change is not read (move files into the directory complete: write them elsewhere, then rename)",
                            path.display(),
                            stamp.change_since(read)
                        ));
                    }
                    Seen::Read(stamp)
                }
                (Ok(m), _) => {
                    let stamp = Stamp::of(&m);
                    // Stable over two polls, and not empty: an empty file has nothing to read
                    // yet, and is most often a writer's file before its first write.
                    if before == Some(&Seen::Growing(stamp)) && stamp.len > 0 {
                        ready.push((path, stamp));
                    }
                    Seen::Growing(stamp)
                }
            };
            known.seen.insert(name.clone(), now);
            present.insert(name);
        }
        known.retain(&present);
        ready.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, stamp) in ready {
            let Some(name) = path.file_name().map(OsStr::to_os_string) else { continue };
            match self.read_file(ctx, &path) {
                Err(e) => {
                    self.skip(ctx, &path, &format!("cannot read: {e}"));
                    known.seen.insert(name, Seen::Done);
                }
                Ok(stored) => {
                    known.read(name, stamp, self.watch_files_max);
                    if !stored {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Reads the file at `path` as a stream and stores its lines in chunks. Returns whether
    /// the context still accepts input (false: the rest of the file was not stored).
    fn read_file(&self, ctx: &ReceiverContext<String>, path: &Path) -> io::Result<bool> {
        let mut file = io::BufReader::with_capacity(64 << 10, fs::File::open(path)?);
        let mut lines = FileLines::new(self.chunk_bytes_max);
        let mut splitter = LineSplitter::new(self.max_line_bytes);
        let mut stored = true;
        loop {
            let buf = match file.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                splitter.finish(&mut |piece| lines.take(piece));
                lines.seal();
            } else {
                splitter.feed(buf, &mut |piece| lines.take(piece));
            }
            let n = buf.len();
            file.consume(n);
            for chunk in lines.full.drain(..) {
                let (count, bytes) = (chunk.lines.len() as u64, chunk.bytes as u64);
                if ctx.store(chunk.lines).is_err() {
                    stored = false;
                    break;
                }
                self.stats.lines.fetch_add(count, Ordering::Relaxed);
                self.stats.chunks.fetch_add(1, Ordering::Relaxed);
                self.stats.largest_chunk_bytes.fetch_max(bytes, Ordering::Relaxed);
            }
            if n == 0 || !stored {
                break;
            }
        }
        self.stats.files.fetch_add(1, Ordering::Relaxed);
        let report = |counter: &AtomicU64, (count, first): (u64, u64), what: &str| {
            if count > 0 {
                counter.fetch_add(count, Ordering::Relaxed);
                report(
                    ctx,
                    self.stderr,
                    &format!("{}: {count} line(s) {what} skipped (the first is line {first})", path.display()),
                );
            }
        };
        report(&self.stats.invalid_lines, lines.invalid, "not valid UTF-8");
        report(&self.stats.oversized_lines, lines.oversized, &format!("longer than {} bytes", self.max_line_bytes));
        Ok(stored)
    }
}

impl Receiver<String> for TextFileStreamReceiver {
    fn run(&mut self, ctx: &ReceiverContext<String>) -> Result<(), String> {
        let mut known = Known {
            seen: std::mem::take(&mut self.existing).into_iter().map(|name| (name, Seen::Done)).collect(),
            read_order: VecDeque::new(),
        };
        let mut dir_error = None;
        loop {
            if ctx.is_stopped() || !self.scan(ctx, &mut known, &mut dir_error) {
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

/// A chunk of a file's lines, and the bytes of their content.
#[derive(Debug, Default)]
struct Chunk {
    lines: Vec<String>,
    bytes: usize,
}

/// The lines of one file as they are cut: gathered into chunks of bounded bytes, with the
/// skipped lines counted.
#[derive(Debug)]
struct FileLines {
    chunk_bytes_max: usize,
    open: Chunk,
    /// Chunks ready to store.
    full: Vec<Chunk>,
    line_no: u64,
    /// Lines not valid UTF-8: how many, and the first one's number.
    invalid: (u64, u64),
    /// Lines over the limit: how many, and the first one's number.
    oversized: (u64, u64),
}

impl FileLines {
    fn new(chunk_bytes_max: usize) -> FileLines {
        FileLines {
            chunk_bytes_max,
            open: Chunk::default(),
            full: Vec::new(),
            line_no: 0,
            invalid: (0, 0),
            oversized: (0, 0),
        }
    }

    fn take(&mut self, piece: Piece<'_>) {
        self.line_no += 1;
        let skipped = match piece {
            Piece::TooLong => &mut self.oversized,
            Piece::Line(bytes) => {
                let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                match std::str::from_utf8(bytes) {
                    Ok(line) => {
                        if !self.open.lines.is_empty() && self.open.bytes + line.len() > self.chunk_bytes_max {
                            self.seal();
                        }
                        self.open.bytes += line.len();
                        self.open.lines.push(line.to_owned());
                        return;
                    }
                    Err(_) => &mut self.invalid,
                }
            }
        };
        if skipped.0 == 0 {
            skipped.1 = self.line_no;
        }
        skipped.0 += 1;
    }

    /// Closes the open chunk, if it holds lines.
    fn seal(&mut self) {
        if !self.open.lines.is_empty() {
            self.full.push(std::mem::take(&mut self.open));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunk_bytes_max: usize, text: &[u8]) -> FileLines {
        let mut lines = FileLines::new(chunk_bytes_max);
        let mut splitter = LineSplitter::new(8);
        splitter.feed(text, &mut |p| lines.take(p));
        splitter.finish(&mut |p| lines.take(p));
        lines.seal();
        lines
    }

    #[test]
    fn lines_gather_into_chunks_of_bounded_bytes_and_skipped_lines_are_counted() {
        let lines = cut(5, b"ab\ncd\nef\n\xff\nghijklmnop\nq\r\nlonglongline\nr");
        let chunks: Vec<(Vec<&str>, usize)> =
            lines.full.iter().map(|c| (c.lines.iter().map(String::as_str).collect(), c.bytes)).collect();
        assert_eq!(chunks, vec![(vec!["ab", "cd"], 4), (vec!["ef", "q", "r"], 4)], "chunks of at most 5 bytes");
        assert_eq!(lines.invalid, (1, 4));
        assert_eq!(lines.oversized, (2, 5));
        assert!(cut(5, b"").full.is_empty());
    }

    #[test]
    fn hidden_names_are_the_dot_and_underscore_ones() {
        assert!(hidden(OsStr::new(".part.tmp")) && hidden(OsStr::new("_SUCCESS")));
        assert!(!hidden(OsStr::new("data.txt")));
    }
}
