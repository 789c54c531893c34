//! [`LocalFs`]: a [`Storage`] in a local directory, crash-safe.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dstream::storage::{validate_name, validate_prefix};
use dstream::{Storage, StorageError};

use crate::temporaries::{abandoned, is_temporary, tmp_name, InFlight};

/// How many times a put retries creating its temporary file when a concurrent
/// [`Storage::delete`] removed the (then empty) directory in between.
const CREATE_ATTEMPTS_MAX: u32 = 4;

/// Objects as files under a root directory: the object `a/b/c` is the file `{root}/a/b/c`.
///
/// A put writes a temporary file next to the object's file (`.{file}.tmp-{pid}-{n}-{host}`), flushes
/// it to disk (`fsync`), renames it over the object's file and flushes the directory. A crash
/// at any point leaves the old object or the new one, and perhaps a temporary file, which
/// [`list`](Storage::list) never returns and [`LocalFs::new`] removes once it is abandoned.
/// Directories are created as needed and removed by [`delete`](Storage::delete) when they
/// become empty.
///
/// Several processes may share a root, as a cluster's driver and workers share a checkpoint
/// directory: [`LocalFs::new`] removes only the temporary files nobody writes any more (of no
/// put in progress in this process, of a process of this machine that is gone, or of another
/// machine and untouched for an hour), never one another process is writing.
///
/// # Examples
///
/// ```
/// use dstream::Storage;
/// use dstream_storage::LocalFs;
/// # let root = std::env::temp_dir().join(format!("dstream-doc-localfs-{}", std::process::id()));
/// let fs = LocalFs::new(&root)?;
/// fs.put("ckpt/stream-1/part-0", b"state")?;
/// assert_eq!(fs.get("ckpt/stream-1/part-0")?, b"state");
/// assert_eq!(fs.list("ckpt/")?, ["ckpt/stream-1/part-0"]);
/// assert_eq!(fs.path_of("ckpt/stream-1/part-0")?, root.join("ckpt").join("stream-1").join("part-0"));
/// fs.delete("ckpt/stream-1/part-0")?;
/// assert!(fs.list("")?.is_empty());
/// # std::fs::remove_dir_all(&root).ok();
/// # Ok::<(), dstream::StorageError>(())
/// ```
#[derive(Debug)]
pub struct LocalFs {
    root: PathBuf,
    /// The number of the next temporary file, so that concurrent puts never share one.
    next_tmp: AtomicU64,
    /// Test hook: the next put stops after its temporary file is durable, before the rename,
    /// as if the process were killed there.
    #[cfg(test)]
    crash_before_rename: std::sync::atomic::AtomicBool,
}

impl LocalFs {
    /// A store rooted at `root`, which is created if missing. Temporary files left under it
    /// by an interrupted put are removed.
    pub fn new(root: impl AsRef<Path>) -> Result<LocalFs, StorageError> {
        let root = root.as_ref().to_path_buf();
        let err = |operation, e: &io::Error| StorageError::from_io("", root.display(), operation, e);
        fs::create_dir_all(&root).map_err(|e| err("create directory", &e))?;
        remove_temporaries(&root).map_err(|e| err("remove temporary files under", &e))?;
        Ok(LocalFs {
            root,
            next_tmp: AtomicU64::new(0),
            #[cfg(test)]
            crash_before_rename: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds the object `name` (whether or not it exists).
    pub fn path_of(&self, name: &str) -> Result<PathBuf, StorageError> {
        validate_name(name)?;
        Ok(name.split('/').fold(self.root.clone(), |path, segment| path.join(segment)))
    }

    /// Creates `dir` (under the root) if missing, and makes the new entries durable.
    fn ensure_dir(&self, name: &str, dir: &Path) -> Result<(), StorageError> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|e| StorageError::from_io(name, dir.display(), "create directory", &e))?;
        // Each new directory is an entry in its parent: flush every level up to the root.
        for ancestor in dir.ancestors().skip(1) {
            sync_dir(name, ancestor)?;
            if ancestor == self.root {
                break;
            }
        }
        Ok(())
    }

    /// Creates a new temporary file next to `path`.
    fn create_tmp(&self, name: &str, path: &Path) -> Result<(InFlight, File), StorageError> {
        let (Some(dir), Some(file_name)) = (path.parent(), path.file_name()) else {
            unreachable!("a validated name has a parent directory and a final segment: {path:?}");
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.ensure_dir(name, dir)?;
            let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(tmp_name(file_name, n));
            let writing = InFlight::new(tmp.clone());
            match File::create_new(&tmp) {
                Ok(file) => return Ok((writing, file)),
                // A concurrent delete removed the directory after it became empty.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < CREATE_ATTEMPTS_MAX => continue,
                Err(e) => return Err(io_error(name, &tmp, "create", &e)),
            }
        }
    }
}

impl Storage for LocalFs {
    fn put_with(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        let path = self.path_of(name)?;
        let (writing, file) = self.create_tmp(name, &path)?;
        let tmp = writing.path();
        let result = write_durably(name, tmp, file, write);
        #[cfg(test)]
        if result.is_ok() && self.crash_before_rename.swap(false, Ordering::SeqCst) {
            // The temporary file stays, complete and durable, as a killed process leaves it.
            return Err(StorageError::Io {
                name: name.to_owned(),
                path: tmp.display().to_string(),
                operation: "rename (simulated crash)",
                kind: io::ErrorKind::Interrupted,
                message: "the test hook stopped the put before the rename".into(),
            });
        }
        let result = result.and_then(|()| fs::rename(tmp, &path).map_err(|e| io_error(name, tmp, "rename", &e)));
        if let Err(e) = result {
            // Best effort: the error that matters is the first one, and a leftover temporary
            // file is invisible to readers and removed by the next `LocalFs::new`.
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        let dir = path.parent().unwrap_or(&self.root);
        sync_dir(name, dir)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, StorageError> {
        let path = self.path_of(name)?;
        let file = File::open(&path).map_err(|e| io_error(name, &path, "open", &e))?;
        Ok(Box::new(PathReader { name: name.to_owned(), path, file }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_prefix(prefix)?;
        // Walk only the directory the prefix's complete segments name.
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let mut start = self.root.clone();
        if !dir_part.is_empty() {
            start.extend(dir_part.split('/'));
        }
        let mut names = Vec::new();
        walk(&start, dir_part, &mut names).map_err(|(path, e)| io_error(prefix, &path, "list", &e))?;
        names.retain(|n| n.starts_with(prefix));
        names.sort_unstable();
        Ok(names)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        let path = self.path_of(name)?;
        fs::remove_file(&path).map_err(|e| io_error(name, &path, "remove", &e))?;
        let mut dir = path.parent().unwrap_or(&self.root);
        sync_dir(name, dir)?;
        // Remove the directories the delete emptied, up to (not including) the root. A
        // directory that is not empty (or that a concurrent put just used) stays.
        while dir != self.root && fs::remove_dir(dir).is_ok() {
            dir = dir.parent().unwrap_or(&self.root);
            sync_dir(name, dir)?;
        }
        Ok(())
    }
}

/// A file opened for reading, whose read errors name the object and the path.
struct PathReader {
    name: String,
    path: PathBuf,
    file: File,
}

impl Read for PathReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf).map_err(|e| {
            let described = io_error(&self.name, &self.path, "read", &e);
            io::Error::new(e.kind(), described.to_string())
        })
    }
}

/// Writes through `write` into the temporary file and makes it durable.
fn write_durably(
    name: &str,
    tmp: &Path,
    file: File,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), StorageError> {
    let mut w = BufWriter::with_capacity(1 << 16, file);
    write(&mut w).map_err(|e| io_error(name, tmp, "write", &e))?;
    let file = w.into_inner().map_err(|e| io_error(name, tmp, "write", e.error()))?;
    file.sync_all().map_err(|e| io_error(name, tmp, "flush to disk", &e))
}

fn io_error(name: &str, path: &Path, operation: &'static str, e: &io::Error) -> StorageError {
    StorageError::from_io(name, path.display(), operation, e)
}

/// Flushes a directory's entries to disk. On platforms where a directory cannot be opened as
/// a file (Windows), this does nothing.
fn sync_dir(name: &str, dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(name, dir, "flush to disk", &e))?;
    #[cfg(not(unix))]
    let _ = (name, dir);
    Ok(())
}

/// Collects the names of the objects under `dir` (whose name is `name`, `""` for the root).
/// Entries whose names are not valid segments (temporary files, anything a person put there)
/// are skipped; a directory that vanishes during the walk (a concurrent delete) is empty.
fn walk(dir: &Path, name: &str, out: &mut Vec<String>) -> Result<(), (PathBuf, io::Error)> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((dir.to_path_buf(), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let Some(segment) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let child = if name.is_empty() { segment } else { format!("{name}/{segment}") };
        if validate_name(&child).is_err() {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| (entry.path(), e))?;
        if file_type.is_dir() {
            walk(&entry.path(), &child, out)?;
        } else if file_type.is_file() {
            out.push(child);
        }
    }
    Ok(())
}

/// Removes the temporary files under `dir`, recursively.
fn remove_temporaries(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            remove_temporaries(&entry.path())?;
        } else if entry.file_name().to_str().is_some_and(|name| is_temporary(name) && abandoned(&entry.path(), name)) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporaries::TMP_TAG;

    fn temp_root(tag: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("dstream-localfs-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        root
    }

    /// A crash between the durable temporary file and the rename: the old object stays
    /// readable, `list` does not show the temporary file, and reopening removes it.
    #[test]
    fn crash_before_rename_keeps_the_old_object() {
        let root = temp_root("crash");
        let fs_ = LocalFs::new(&root).unwrap();
        fs_.put("ckpt/a", b"old").unwrap();
        fs_.crash_before_rename.store(true, Ordering::SeqCst);
        let err = fs_.put("ckpt/a", b"new and longer").unwrap_err();
        assert!(matches!(err, StorageError::Io { kind: io::ErrorKind::Interrupted, .. }), "{err:?}");

        let dir = root.join("ckpt");
        let leftovers: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(leftovers.len(), 2, "the object and the temporary file: {leftovers:?}");
        let tmp = leftovers.iter().find(|n| is_temporary(n)).expect("a temporary file");
        assert_eq!(fs::read(dir.join(tmp)).unwrap(), b"new and longer");

        assert_eq!(fs_.get("ckpt/a").unwrap(), b"old");
        assert_eq!(fs_.list("").unwrap(), ["ckpt/a"]);
        drop(fs_);

        let reopened = LocalFs::new(&root).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "the temporary file is removed on open");
        assert_eq!(reopened.get("ckpt/a").unwrap(), b"old");
        reopened.put("ckpt/a", b"new").unwrap();
        assert_eq!(reopened.get("ckpt/a").unwrap(), b"new");
        fs::remove_dir_all(&root).unwrap();
    }

    /// A put whose writer fails leaves the old object and no temporary file.
    #[test]
    fn failed_writer_changes_nothing() {
        let root = temp_root("fail");
        let fs_ = LocalFs::new(&root).unwrap();
        fs_.put("a", b"old").unwrap();
        let err = fs_
            .put_with("a", &mut |w| {
                w.write_all(b"partial")?;
                Err(io::Error::other("the producer failed"))
            })
            .unwrap_err();
        match err {
            StorageError::Io { name, path, operation, message, .. } => {
                assert_eq!((name.as_str(), operation), ("a", "write"));
                assert!(path.contains(TMP_TAG), "{path}");
                assert!(message.contains("the producer failed"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fs_.get("a").unwrap(), b"old");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn list_delete_and_empty_directories() {
        let root = temp_root("list");
        let fs_ = LocalFs::new(&root).unwrap();
        for name in ["b", "a/2", "a/1", "a/sub/x", "ab"] {
            fs_.put(name, name.as_bytes()).unwrap();
        }
        // Entries that are not objects are skipped.
        fs::write(root.join("a").join(".a.tmp-1-1"), b"torn").unwrap();
        fs::write(root.join("a").join("not valid"), b"?").unwrap();
        assert_eq!(fs_.list("").unwrap(), ["a/1", "a/2", "a/sub/x", "ab", "b"]);
        assert_eq!(fs_.list("a").unwrap(), ["a/1", "a/2", "a/sub/x", "ab"]);
        assert_eq!(fs_.list("a/").unwrap(), ["a/1", "a/2", "a/sub/x"]);
        assert_eq!(fs_.list("a/s").unwrap(), ["a/sub/x"]);
        assert!(fs_.list("zzz/").unwrap().is_empty());
        assert!(matches!(fs_.list("../"), Err(StorageError::InvalidName { .. })));

        fs_.delete("a/sub/x").unwrap();
        assert!(!root.join("a").join("sub").exists(), "the emptied directory is removed");
        assert!(matches!(fs_.delete("a/sub/x"), Err(StorageError::NotFound { .. })));
        assert!(matches!(fs_.get("nope"), Err(StorageError::NotFound { .. })));
        assert!(matches!(fs_.put("../escape", b""), Err(StorageError::InvalidName { .. })));
        fs::remove_dir_all(&root).unwrap();
    }
}
