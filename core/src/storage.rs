//! The storage seam: named objects that outlive the process (checkpoints, application
//! metadata), behind the [`Storage`] trait.
//!
//! The core does no I/O: it defines the trait, the rules for object names and the errors;
//! `dstream-storage` implements it (a local directory, an in-memory map with fault injection)
//! and defines the checkpoint format on top of it.
//!
//! # Object names
//!
//! A name is a relative path of `/`-separated segments, such as `checkpoints/stream-3/part-00000`.
//! Every implementation accepts the same names, so a program can move from one to another:
//!
//! - each segment is 1 to [`NAME_SEGMENT_BYTES_MAX`] bytes of ASCII letters, digits, `.`, `_`
//!   and `-`, and does not start with `.` (which rules out `.` and `..`, and leaves such names
//!   to the implementations for their own files, such as temporary files);
//! - the name does not start or end with `/` and has no empty segment (`a//b`);
//! - the whole name is at most [`NAME_BYTES_MAX`] bytes.
//!
//! [`validate_name`] checks these rules, and every [`Storage`] method rejects a name that breaks
//! them with [`StorageError::InvalidName`].

use std::fmt;
use std::io::{self, Read, Write};

/// The most bytes in one segment of an object name: the common file-name limit.
pub const NAME_SEGMENT_BYTES_MAX: usize = 255;

/// The most bytes in a whole object name.
pub const NAME_BYTES_MAX: usize = 1024;

/// A store of named objects, each a sequence of bytes written at once.
///
/// # Contract
///
/// - [`put_with`](Storage::put_with) (and [`put`](Storage::put)) is **atomic**: a reader, or a
///   process that starts after a crash at any point of the put, sees the old object (or none)
///   or the new one, never a part of it. When it returns `Ok`, the new object is durable.
/// - [`get`](Storage::get) and [`open`](Storage::open) return the bytes of the last completed
///   put; [`StorageError::NotFound`] if there is none.
/// - [`list`](Storage::list) returns the names of the objects whose names start with a
///   prefix, sorted; it never returns an object that is still being written.
/// - [`delete`](Storage::delete) removes an object; deleting a missing object is
///   [`StorageError::NotFound`].
///
/// Objects are not checksummed by the store: formats stored through it (such as checkpoints)
/// carry their own checksums, so a store that breaks its promises (a torn write, a flipped bit)
/// is detected by the reader.
///
/// # Examples
///
/// A minimal store over a map, for illustration (`dstream-storage` has real ones):
///
/// ```
/// use std::collections::BTreeMap;
/// use std::io::{Read, Write};
/// use std::sync::Mutex;
/// use dstream::{storage, Storage, StorageError};
///
/// #[derive(Default)]
/// struct MapStore(Mutex<BTreeMap<String, Vec<u8>>>);
///
/// impl Storage for MapStore {
///     fn put_with(
///         &self,
///         name: &str,
///         write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
///     ) -> Result<(), StorageError> {
///         storage::validate_name(name)?;
///         let mut bytes = Vec::new(); // built aside, swapped in at once: atomic
///         write(&mut bytes).map_err(|e| StorageError::from_io(name, name, "write", &e))?;
///         self.0.lock().unwrap().insert(name.to_owned(), bytes);
///         Ok(())
///     }
///     fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, StorageError> {
///         storage::validate_name(name)?;
///         let bytes = self.0.lock().unwrap().get(name).cloned();
///         let bytes = bytes.ok_or_else(|| StorageError::NotFound { name: name.to_owned() })?;
///         Ok(Box::new(std::io::Cursor::new(bytes)))
///     }
///     fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
///         storage::validate_prefix(prefix)?;
///         Ok(self.0.lock().unwrap().keys().filter(|n| n.starts_with(prefix)).cloned().collect())
///     }
///     fn delete(&self, name: &str) -> Result<(), StorageError> {
///         storage::validate_name(name)?;
///         let removed = self.0.lock().unwrap().remove(name);
///         removed.map(drop).ok_or_else(|| StorageError::NotFound { name: name.to_owned() })
///     }
/// }
///
/// let store = MapStore::default();
/// store.put("ckpt/a", b"first")?;
/// store.put("ckpt/a", b"second")?;
/// assert_eq!(store.get("ckpt/a")?, b"second");
/// assert_eq!(store.list("ckpt/")?, ["ckpt/a"]);
/// assert!(matches!(store.get("../etc/passwd"), Err(StorageError::InvalidName { .. })));
/// store.delete("ckpt/a")?;
/// assert!(matches!(store.get("ckpt/a"), Err(StorageError::NotFound { .. })));
/// # Ok::<(), StorageError>(())
/// ```
pub trait Storage: Send + Sync {
    /// Writes the object `name` from what `write` writes, atomically: `write` is called once
    /// with a writer; when it returns `Ok`, the object is replaced by what was written, at
    /// once. If `write` returns an error (or the store fails), the old object is left as it
    /// was and the error is returned: [`StorageError::Io`] (or [`StorageError::Full`]) naming
    /// the object.
    ///
    /// This is the streaming form: a large object goes to the store as it is produced and is
    /// never held in memory whole.
    fn put_with(&self, name: &str, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>)
        -> Result<(), StorageError>;

    /// A reader over the object `name` as it was after its last completed put. A put that
    /// completes while the reader is open does not change what it reads.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, StorageError>;

    /// The names of the objects whose names start with `prefix` (a plain string prefix, such
    /// as `ckpt/` or `ckpt/stream-1/part-`; `""` lists everything), sorted. `prefix` follows
    /// the name rules except that it may be empty, end with `/` or stop inside a segment.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Removes the object `name`, durably.
    fn delete(&self, name: &str) -> Result<(), StorageError>;

    /// Writes `bytes` as the object `name`, atomically; see [`put_with`](Storage::put_with).
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.put_with(name, &mut |w| w.write_all(bytes))
    }

    /// The whole object `name`.
    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let mut bytes = Vec::new();
        self.open(name)?.read_to_end(&mut bytes).map_err(|e| StorageError::from_io(name, name, "read", &e))?;
        Ok(bytes)
    }
}

/// Why a [`Storage`] operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// There is no object with this name.
    #[error("object {name:?} not found")]
    NotFound {
        /// The object's name.
        name: String,
    },
    /// The object exists but its content is not valid (a checksum or a structure check
    /// failed).
    #[error("object {name:?} is corrupted: {reason}")]
    Corrupted {
        /// The object's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The device is full (or a quota is exhausted): nothing was changed. Distinct from
    /// [`StorageError::Io`] because the remedy is different: free space, then retry.
    #[error("no space left for object {name:?} ({operation} {path}): {message}")]
    Full {
        /// The object's name.
        name: String,
        /// Where the store keeps it (a file path, or a description for other stores).
        path: String,
        /// What was being done, such as `write`.
        operation: &'static str,
        /// The system's message.
        message: String,
    },
    /// An I/O operation failed.
    #[error("{operation} {path}{} failed: {message}", of_object(name))]
    Io {
        /// The object's name.
        name: String,
        /// Where the store keeps it (a file path, or a description for other stores).
        path: String,
        /// What was being done, such as `write`, `rename` or `flush to disk`.
        operation: &'static str,
        /// The kind of the underlying error.
        kind: io::ErrorKind,
        /// The system's message.
        message: String,
    },
    /// The name (or list prefix) breaks the naming rules of the [module](self) documentation.
    #[error("invalid object name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The store refused the request's credentials, or they lack the permission (an object
    /// store answering 401 or 403). Retrying does not help; the configuration must change.
    #[error("access denied{}: {message}", of_object(name))]
    Unauthorized {
        /// The object.
        name: String,
        /// What the store said.
        message: String,
    },
    /// The bucket (or container) the store keeps its objects in does not exist.
    #[error("bucket {bucket:?} does not exist{}", of_object(name))]
    BucketMissing {
        /// The object.
        name: String,
        /// The bucket.
        bucket: String,
    },
    /// The store kept throttling the requests (an object store answering 503 SlowDown or 429)
    /// until the store's bounded retries ran out. A later attempt may succeed.
    #[error("requests throttled past the retries{}: {message}", of_object(name))]
    Throttled {
        /// The object.
        name: String,
        /// What the store said last.
        message: String,
    },
}

/// ` (object "name")`, or nothing for a request of no one object (a store's own check).
fn of_object(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" (object {name:?})")
    }
}

impl StorageError {
    /// The error for a failed I/O operation `operation` on the object `name`, stored at
    /// `path`: [`StorageError::Full`] when the device is full or a quota is exhausted,
    /// [`StorageError::NotFound`] when the object does not exist, [`StorageError::Io`]
    /// otherwise.
    ///
    /// ```
    /// use std::io;
    /// use dstream::StorageError;
    /// let full = io::Error::from(io::ErrorKind::StorageFull);
    /// let e = StorageError::from_io("ckpt/a", "/data/ckpt/a", "write", &full);
    /// assert!(matches!(e, StorageError::Full { .. }));
    /// let denied = io::Error::from(io::ErrorKind::PermissionDenied);
    /// let e = StorageError::from_io("ckpt/a", "/data/ckpt/a", "write", &denied);
    /// assert!(matches!(e, StorageError::Io { kind: io::ErrorKind::PermissionDenied, .. }));
    /// ```
    pub fn from_io(name: &str, path: impl fmt::Display, operation: &'static str, error: &io::Error) -> StorageError {
        let name = name.to_owned();
        let path = path.to_string();
        let message = error.to_string();
        match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StorageError::Full { name, path, operation, message }
            }
            io::ErrorKind::NotFound => StorageError::NotFound { name },
            kind => StorageError::Io { name, path, operation, kind, message },
        }
    }

    /// The name of the object (or prefix) the error is about.
    ///
    /// ```
    /// let e = dstream::StorageError::NotFound { name: "ckpt/a".into() };
    /// assert_eq!(e.name(), "ckpt/a");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            StorageError::NotFound { name }
            | StorageError::Corrupted { name, .. }
            | StorageError::Full { name, .. }
            | StorageError::Io { name, .. }
            | StorageError::InvalidName { name, .. }
            | StorageError::Unauthorized { name, .. }
            | StorageError::BucketMissing { name, .. }
            | StorageError::Throttled { name, .. } => name,
        }
    }
}

/// Checks `name` against the naming rules of the [module](self) documentation.
///
/// ```
/// use dstream::storage::validate_name;
/// assert!(validate_name("checkpoints/stream-3/part-00000").is_ok());
/// assert!(validate_name("../secret").is_err());
/// assert!(validate_name("/etc/passwd").is_err());
/// assert!(validate_name("a//b").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), StorageError> {
    let invalid = |reason| Err(StorageError::InvalidName { name: name.to_owned(), reason });
    if name.is_empty() {
        return invalid("the name is empty");
    }
    if name.len() > NAME_BYTES_MAX {
        return invalid("the name is longer than NAME_BYTES_MAX bytes");
    }
    if name.starts_with('/') {
        return invalid("the name is absolute (starts with '/')");
    }
    if name.ends_with('/') {
        return invalid("the name ends with '/'");
    }
    for segment in name.split('/') {
        if let Err(reason) = check_segment(segment, false) {
            return invalid(reason);
        }
    }
    Ok(())
}

/// Checks a [`Storage::list`] prefix: the naming rules, except that it may be empty, may end
/// with `/`, and its last segment may be the start of a segment.
///
/// ```
/// use dstream::storage::validate_prefix;
/// assert!(validate_prefix("").is_ok());
/// assert!(validate_prefix("checkpoints/").is_ok());
/// assert!(validate_prefix("checkpoints/stream-3/part-").is_ok());
/// assert!(validate_prefix("../").is_err());
/// ```
pub fn validate_prefix(prefix: &str) -> Result<(), StorageError> {
    let invalid = |reason| Err(StorageError::InvalidName { name: prefix.to_owned(), reason });
    if prefix.len() > NAME_BYTES_MAX {
        return invalid("the prefix is longer than NAME_BYTES_MAX bytes");
    }
    if prefix.starts_with('/') {
        return invalid("the prefix is absolute (starts with '/')");
    }
    let segments: Vec<&str> = prefix.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        // The last piece may be empty (`""`, `ckpt/`): it is the start of a segment.
        if let Err(reason) = check_segment(segment, i + 1 == segments.len()) {
            return invalid(reason);
        }
    }
    Ok(())
}

/// Checks one segment; `partial` allows an empty one (the end of a list prefix).
fn check_segment(segment: &str, partial: bool) -> Result<(), &'static str> {
    if segment.is_empty() {
        return if partial { Ok(()) } else { Err("the name has an empty segment ('//')") };
    }
    if segment.len() > NAME_SEGMENT_BYTES_MAX {
        return Err("a segment is longer than NAME_SEGMENT_BYTES_MAX bytes");
    }
    if segment.starts_with('.') {
        return Err("a segment starts with '.' (this includes '.' and '..')");
    }
    if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err("a segment has a character other than ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per rule: the name, and whether it is valid.
    #[test]
    fn name_rules() {
        let long_segment = "a".repeat(NAME_SEGMENT_BYTES_MAX + 1);
        let long_name = vec!["a"; NAME_BYTES_MAX / 2 + 1].join("/");
        let cases: &[(&str, Option<&str>)] = &[
            ("a", None),
            ("ckpt/stream-3/part-00000", None),
            ("meta_v1.bin", None),
            ("a.b-c_d/E9", None),
            ("", Some("empty")),
            ("/abs", Some("absolute")),
            ("dir/", Some("ends with '/'")),
            ("a//b", Some("empty segment")),
            ("..", Some("starts with '.'")),
            ("a/../b", Some("starts with '.'")),
            ("./a", Some("starts with '.'")),
            (".hidden", Some("starts with '.'")),
            ("a/.tmp-1", Some("starts with '.'")),
            ("a\\b", Some("character")),
            ("a b", Some("character")),
            ("caf\u{e9}", Some("character")),
            ("a\0b", Some("character")),
            ("C:", Some("character")),
            (&long_segment, Some("NAME_SEGMENT_BYTES_MAX")),
            (&long_name, Some("NAME_BYTES_MAX")),
        ];
        for (name, expected) in cases {
            match (validate_name(name), expected) {
                (Ok(()), None) => {}
                (Err(StorageError::InvalidName { name: n, reason }), Some(part)) => {
                    assert_eq!(&n, name);
                    assert!(reason.contains(part), "{name:?}: reason {reason:?} should mention {part:?}");
                }
                (result, expected) => panic!("{name:?}: got {result:?}, expected an error about {expected:?}"),
            }
        }
        let segment_max = "a".repeat(NAME_SEGMENT_BYTES_MAX);
        assert!(validate_name(&segment_max).is_ok());
    }

    #[test]
    fn prefix_rules() {
        for ok in ["", "ckpt", "ckpt/", "ckpt/stream-1/part-", "a/b/c"] {
            assert!(validate_prefix(ok).is_ok(), "{ok:?}");
        }
        for bad in ["/", "/ckpt", "a//", "../", "a/..", "a/./b", "a b"] {
            assert!(matches!(validate_prefix(bad), Err(StorageError::InvalidName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn io_errors_map_to_their_variant() {
        let cases = [
            (io::ErrorKind::StorageFull, "Full"),
            (io::ErrorKind::QuotaExceeded, "Full"),
            (io::ErrorKind::NotFound, "NotFound"),
            (io::ErrorKind::PermissionDenied, "Io"),
            (io::ErrorKind::Interrupted, "Io"),
        ];
        for (kind, expected) in cases {
            let e = StorageError::from_io("ckpt/a", "/root/ckpt/a", "write", &io::Error::from(kind));
            let got = match &e {
                StorageError::Full { path, operation, .. } => {
                    assert_eq!((path.as_str(), *operation), ("/root/ckpt/a", "write"));
                    "Full"
                }
                StorageError::NotFound { .. } => "NotFound",
                StorageError::Io { kind: k, path, .. } => {
                    assert_eq!((*k, path.as_str()), (kind, "/root/ckpt/a"));
                    "Io"
                }
                other => panic!("{kind:?} mapped to {other:?}"),
            };
            assert_eq!(got, expected, "{kind:?}");
            assert_eq!(e.name(), "ckpt/a");
        }
        // The message names the path, so an operator can find the file.
        let e = StorageError::from_io("a", "/root/a", "rename", &io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(e.to_string().contains("/root/a") && e.to_string().contains("rename"), "{e}");
    }
}
