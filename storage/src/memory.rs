//! [`Memory`]: a [`Storage`] in memory, with injectable faults, for tests and the simulation.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use dstream::storage::{validate_name, validate_prefix};
use dstream::{Storage, StorageError};

/// A fault [`Memory`] applies to the next operation it matches, once.
///
/// Each fault names the objects it applies to by a name prefix (`""` for any object). Faults
/// are kept in injection order; an operation triggers the first pending fault that matches it
/// and removes it, so a script of faults plays out exactly, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The next put of a matching object fails with an error of `kind` and changes nothing.
    /// [`io::ErrorKind::StorageFull`] gives [`StorageError::Full`], as a full disk would.
    FailPut {
        /// Which objects the fault applies to.
        name_prefix: String,
        /// The kind of the error.
        kind: io::ErrorKind,
    },
    /// The next put of a matching object reports success but stores only the first
    /// `keep_bytes` bytes: a store that broke its atomicity promise (or a crash in the middle
    /// of a non-atomic write). Formats with checksums detect it on read.
    TornPut {
        /// Which objects the fault applies to.
        name_prefix: String,
        /// How many bytes land (all of them if the object is shorter).
        keep_bytes: usize,
    },
    /// The next read (`get` or `open`) of a matching object returns its bytes with the byte at
    /// `offset` XORed with `mask` (nothing happens if the object is shorter); the stored
    /// object is unchanged. `mask` must not be zero.
    FlipOnRead {
        /// Which objects the fault applies to.
        name_prefix: String,
        /// The position of the flipped byte.
        offset: usize,
        /// The bits to flip.
        mask: u8,
    },
}

/// Which operation a fault can apply to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Read,
}

impl Fault {
    fn matches(&self, op: Op, name: &str) -> bool {
        match self {
            Fault::FailPut { name_prefix, .. } | Fault::TornPut { name_prefix, .. } => {
                op == Op::Put && name.starts_with(name_prefix.as_str())
            }
            Fault::FlipOnRead { name_prefix, .. } => op == Op::Read && name.starts_with(name_prefix.as_str()),
        }
    }
}

/// Objects in a map in memory: atomic by construction (a put builds the new object aside
/// and swaps it in under a lock), with scripted faults for testing what sits on top.
///
/// Clones share the same objects and faults, so a test can keep a handle to inject faults
/// into a store it handed to the code under test.
///
/// # Examples
///
/// ```
/// use dstream::{Storage, StorageError};
/// use dstream_storage::{Fault, Memory};
///
/// let memory = Memory::new();
/// memory.put("ckpt/a", b"0123456789")?;
///
/// memory.inject(Fault::TornPut { name_prefix: "ckpt/".into(), keep_bytes: 4 });
/// memory.put("ckpt/a", b"abcdefghij")?; // reports success...
/// assert_eq!(memory.get("ckpt/a")?, b"abcd"); // ...but only a prefix landed
///
/// memory.inject(Fault::FailPut { name_prefix: "".into(), kind: std::io::ErrorKind::StorageFull });
/// assert!(matches!(memory.put("ckpt/a", b"x"), Err(StorageError::Full { .. })));
/// assert_eq!(memory.get("ckpt/a")?, b"abcd"); // a failed put changes nothing
///
/// memory.inject(Fault::FlipOnRead { name_prefix: "ckpt/a".into(), offset: 0, mask: 0x20 });
/// assert_eq!(memory.get("ckpt/a")?, b"Abcd"); // the next read sees a flipped bit...
/// assert_eq!(memory.get("ckpt/a")?, b"abcd"); // ...once; the stored object is intact
/// assert!(memory.pending_faults().is_empty());
/// # Ok::<(), StorageError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Memory {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, Arc<[u8]>>,
    faults: VecDeque<Fault>,
}

impl Memory {
    /// An empty store with no faults.
    pub fn new() -> Memory {
        Memory::default()
    }

    /// Adds `fault` to the end of the pending faults.
    ///
    /// # Panics
    ///
    /// If `fault` is a [`Fault::FlipOnRead`] with a zero `mask` (it would flip nothing).
    pub fn inject(&self, fault: Fault) {
        if let Fault::FlipOnRead { mask, .. } = &fault {
            assert_ne!(*mask, 0, "a FlipOnRead fault with a zero mask flips nothing");
        }
        self.lock().faults.push_back(fault);
    }

    /// The faults not yet triggered, in order.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.lock().faults.iter().cloned().collect()
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Replaces the stored object `name` with `bytes` directly, bypassing faults: for a test
    /// that damages an object at rest (bit rot, a truncated file).
    pub fn overwrite(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        validate_name(name)?;
        self.lock().objects.insert(name.to_owned(), bytes.into());
        Ok(())
    }

    /// The total size of the stored objects, in bytes.
    pub fn stored_bytes(&self) -> u64 {
        self.lock().objects.values().map(|b| b.len() as u64).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock is held cannot leave the map half-updated (every update is
        // one insert or remove), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes and returns the first pending fault that matches.
    fn take_fault(&self, op: Op, name: &str) -> Option<Fault> {
        let mut inner = self.lock();
        let i = inner.faults.iter().position(|f| f.matches(op, name))?;
        inner.faults.remove(i)
    }
}

impl Storage for Memory {
    fn put_with(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        validate_name(name)?;
        let path = format!("memory:{name}");
        let fault = self.take_fault(Op::Put, name);
        if let Some(Fault::FailPut { kind, .. }) = fault {
            let e = io::Error::new(kind, "injected fault");
            return Err(StorageError::from_io(name, &path, "write", &e));
        }
        let mut bytes = Vec::new();
        write(&mut bytes).map_err(|e| StorageError::from_io(name, &path, "write", &e))?;
        if let Some(Fault::TornPut { keep_bytes, .. }) = fault {
            bytes.truncate(keep_bytes);
        }
        self.lock().objects.insert(name.to_owned(), bytes.into());
        Ok(())
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, StorageError> {
        validate_name(name)?;
        let bytes = self.lock().objects.get(name).cloned();
        let bytes = bytes.ok_or_else(|| StorageError::NotFound { name: name.to_owned() })?;
        match self.take_fault(Op::Read, name) {
            Some(Fault::FlipOnRead { offset, mask, .. }) if offset < bytes.len() => {
                let mut flipped = bytes.to_vec();
                flipped[offset] ^= mask;
                Ok(Box::new(Cursor::new(flipped)))
            }
            _ => Ok(Box::new(Cursor::new(bytes))),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_prefix(prefix)?;
        let inner = self.lock();
        // The map is ordered: the names with the prefix are one range, already sorted.
        let names = inner
            .objects
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .map(|(name, _)| name);
        Ok(names.take_while(|name| name.starts_with(prefix)).cloned().collect())
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        match self.lock().objects.remove(name) {
            Some(_) => Ok(()),
            None => Err(StorageError::NotFound { name: name.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_once_in_order_to_matching_names() {
        let m = Memory::new();
        m.inject(Fault::FailPut { name_prefix: "b/".into(), kind: io::ErrorKind::PermissionDenied });
        m.inject(Fault::FailPut { name_prefix: "".into(), kind: io::ErrorKind::StorageFull });
        // The second fault fires: the first one is for b/ only.
        assert!(matches!(m.put("a/1", b"x"), Err(StorageError::Full { .. })));
        assert_eq!(m.pending_faults().len(), 1);
        let err = m.put("b/1", b"x").unwrap_err();
        assert!(matches!(err, StorageError::Io { kind: io::ErrorKind::PermissionDenied, .. }), "{err:?}");
        assert!(m.list("").unwrap().is_empty(), "failed puts store nothing");
        m.put("b/1", b"x").unwrap();
        assert_eq!(m.list("").unwrap(), ["b/1"]);
    }

    #[test]
    fn flip_past_the_end_does_nothing_and_is_consumed() {
        let m = Memory::new();
        m.put("a", b"xy").unwrap();
        m.inject(Fault::FlipOnRead { name_prefix: "a".into(), offset: 2, mask: 1 });
        assert_eq!(m.get("a").unwrap(), b"xy");
        assert!(m.pending_faults().is_empty());
    }

    #[test]
    fn list_is_a_sorted_prefix_range() {
        let m = Memory::new();
        for name in ["b", "a/2", "a/1", "ab", "a-"] {
            m.put(name, b"").unwrap();
        }
        assert_eq!(m.list("a/").unwrap(), ["a/1", "a/2"]);
        assert_eq!(m.list("a").unwrap(), ["a-", "a/1", "a/2", "ab"]);
        assert_eq!(m.list("").unwrap(), ["a-", "a/1", "a/2", "ab", "b"]);
        assert!(m.delete("zz").is_err());
    }
}
