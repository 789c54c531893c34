//! Writing datasets as directories of text files, atomically.

use std::ffi::OsString;
use std::fmt::{self, Display};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use dstream::Time;

/// Why saving a dataset as text files failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SaveError {
    /// A filesystem operation failed.
    Io {
        /// What was being done, such as "create directory".
        operation: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Computing the dataset failed.
    Job(dstream::Error),
}

impl Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Io { operation, path, source } => write!(f, "{operation} {}: {source}", path.display()),
            SaveError::Job(e) => write!(f, "computing the dataset to save failed: {e}"),
        }
    }
}

impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SaveError::Io { source, .. } => Some(source),
            SaveError::Job(e) => Some(e),
        }
    }
}

impl From<dstream::Error> for SaveError {
    fn from(e: dstream::Error) -> SaveError {
        SaveError::Job(e)
    }
}

/// For output operations, which return [`dstream::Error`]: a job error passes through; a
/// filesystem error becomes [`dstream::Error::BatchFailed`] with this error's message (which
/// names the operation and the path).
impl From<SaveError> for dstream::Error {
    fn from(e: SaveError) -> dstream::Error {
        match e {
            SaveError::Job(e) => e,
            io @ SaveError::Io { .. } => dstream::Error::BatchFailed(format!("save as text files: {io}")),
        }
    }
}

fn io_err<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SaveError + 'a {
    move |source| SaveError::Io { operation, path: path.to_path_buf(), source }
}

/// The directory [`DStreamExt::save_as_text_files`](crate::DStreamExt::save_as_text_files)
/// writes the batch of `time` into: `{prefix}-{milliseconds}{suffix}`.
///
/// ```
/// use dstream::Time;
/// let dir = dstream_storage::text_files_dir("out/counts", ".txt", Time::from_millis(1500));
/// assert_eq!(dir, std::path::Path::new("out/counts-1500.txt"));
/// ```
pub fn text_files_dir(prefix: impl AsRef<Path>, suffix: &str, time: Time) -> PathBuf {
    let mut name = prefix.as_ref().as_os_str().to_owned();
    name.push(format!("-{}{suffix}", time.as_millis()));
    PathBuf::from(name)
}

/// A sibling of `dir` named `.{name}{tag}`: hidden, so directory watchers skip it.
fn sibling(parent: &Path, name: &std::ffi::OsStr, tag: &str) -> PathBuf {
    let mut hidden = OsString::from(".");
    hidden.push(name);
    hidden.push(tag);
    parent.join(hidden)
}

/// Writes `partitions` into the directory `dir`, one file per partition (`part-00000`,
/// `part-00001`, ...), one line per record (its [`Display`] form followed by `\n`), atomically:
/// readers see no directory, or a complete one, never a partial one.
///
/// The files are written into a hidden sibling directory (`.{name}.tmp`), flushed to disk
/// (`fsync` of each file and of the directory), then the directory is renamed into place and
/// the parent directory flushed. If `dir` exists (the same batch written again, say after a
/// restart), it is replaced: it is first renamed aside (`.{name}.old`) and removed after the
/// new one is in place, so a reader sees the old complete directory, then for an instant none,
/// then the new one. Leftovers of an interrupted earlier write are removed. Missing parent
/// directories are created. Records whose text holds a `\n` span several lines.
///
/// # Examples
///
/// ```
/// # let out = std::env::temp_dir().join(format!("dstream-doc-write-{}", std::process::id()));
/// let dir = out.join("numbers");
/// dstream_storage::write_text_dir(&dir, &[vec![1, 2], vec![], vec![3]])?;
/// assert_eq!(std::fs::read_to_string(dir.join("part-00000"))?, "1\n2\n");
/// assert_eq!(std::fs::read_to_string(dir.join("part-00001"))?, "");
/// assert_eq!(std::fs::read_to_string(dir.join("part-00002"))?, "3\n");
/// # std::fs::remove_dir_all(&out)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_text_dir<T: Display>(dir: impl AsRef<Path>, partitions: &[Vec<T>]) -> Result<(), SaveError> {
    let dir = dir.as_ref();
    let Some(name) = dir.file_name() else {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the path has no final name");
        return Err(SaveError::Io { operation: "write into", path: dir.to_path_buf(), source });
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
    let tmp = sibling(parent, name, ".tmp");
    remove_dir_if_present(&tmp)?;
    if let Err(e) = write_parts(&tmp, partitions) {
        // Best effort: the error that matters is the first one; a leftover is removed next time.
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if fs::symlink_metadata(dir).is_ok() {
        let old = sibling(parent, name, ".old");
        remove_dir_if_present(&old)?;
        fs::rename(dir, &old).map_err(io_err("move aside", dir))?;
        fs::rename(&tmp, dir).map_err(io_err("rename into place", &tmp))?;
        sync_dir(parent)?;
        fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
    } else {
        fs::rename(&tmp, dir).map_err(io_err("rename into place", &tmp))?;
        sync_dir(parent)?;
    }
    Ok(())
}

fn remove_dir_if_present(path: &Path) -> Result<(), SaveError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn write_parts<T: Display>(tmp: &Path, partitions: &[Vec<T>]) -> Result<(), SaveError> {
    fs::create_dir(tmp).map_err(io_err("create directory", tmp))?;
    for (i, records) in partitions.iter().enumerate() {
        let path = tmp.join(format!("part-{i:05}"));
        let file = File::create(&path).map_err(io_err("create", &path))?;
        let mut w = BufWriter::new(file);
        for r in records {
            writeln!(w, "{r}").map_err(io_err("write", &path))?;
        }
        let file = w.into_inner().map_err(|e| io_err("write", &path)(e.into_error()))?;
        file.sync_all().map_err(io_err("flush to disk", &path))?;
    }
    sync_dir(tmp)
}

/// Flushes a directory's entries to disk. On platforms where a directory cannot be opened
/// as a file (Windows), this does nothing.
fn sync_dir(dir: &Path) -> Result<(), SaveError> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("flush to disk", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
