//! The checkpoint seam: what a stored checkpoint is of ([`CheckpointHeader`]), how writing or
//! reading one fails ([`CheckpointError`]), and the [`CheckpointFormat`] that turns records
//! into stored bytes and back. The format itself (a zstd body with checksums) lives in
//! `dstream-storage`; the core hands it records already encoded through [`codec`], one at a
//! time, so a partition is never held twice.
//!
//! [`Checkpointing`] bundles a [`Storage`] with a format: give it to
//! [`StreamingContext::get_or_create`](crate::StreamingContext::get_or_create) to checkpoint the
//! state of a streaming program and resume it after a restart.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, CodecError};
use crate::ids::StreamId;
use crate::storage::{Storage, StorageError};
use crate::time::Time;

/// What a checkpoint is of: the fields of its header besides the format's own.
///
/// ```
/// use dstream::checkpoint::CheckpointHeader;
/// use dstream::{StreamId, Time};
/// let header = CheckpointHeader {
///     fingerprint: 0xfeed,
///     stream: StreamId(3),
///     batch_time: Time::from_millis(10_000),
///     partition: 0,
/// };
/// assert_eq!(header.batch_time.as_millis(), 10_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckpointHeader {
    /// The fingerprint of the program that wrote it.
    pub fingerprint: u64,
    /// The stream whose state it holds.
    pub stream: StreamId,
    /// The batch the state is as of.
    pub batch_time: Time,
    /// The partition of the state.
    pub partition: u32,
}

/// What writing a checkpoint produced.
///
/// ```
/// use dstream::checkpoint::CheckpointStats;
/// let stats = CheckpointStats { records: 10, body_bytes: 300, file_bytes: 100 };
/// assert_eq!(stats.compression_ratio(), 3.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The number of records.
    pub records: u64,
    /// The size of the body before compression: the encoded records with their lengths.
    pub body_bytes: u64,
    /// The size of the stored object: header, compressed body and trailers.
    pub file_bytes: u64,
}

impl CheckpointStats {
    /// `body_bytes / file_bytes`: how many times smaller than its encoding the object is.
    pub fn compression_ratio(&self) -> f64 {
        self.body_bytes as f64 / self.file_bytes.max(1) as f64
    }
}

impl std::ops::Add for CheckpointStats {
    type Output = CheckpointStats;

    /// The figures of two writes together.
    fn add(self, other: CheckpointStats) -> CheckpointStats {
        CheckpointStats {
            records: self.records + other.records,
            body_bytes: self.body_bytes + other.body_bytes,
            file_bytes: self.file_bytes + other.file_bytes,
        }
    }
}

/// Why writing or reading a checkpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The store failed (the object is missing, an I/O error, a full device, a bad name).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The compression level is outside the range the format accepts.
    #[error("compression level {level} is outside {min}..={max}")]
    InvalidLevel {
        /// The level asked for.
        level: i32,
        /// The lowest level.
        min: i32,
        /// The highest level.
        max: i32,
    },
    /// A record could not be encoded; nothing was stored.
    #[error("checkpoint {name:?}: cannot encode record {record}: {source}")]
    Encode {
        /// The object's name.
        name: String,
        /// The position of the record.
        record: u64,
        /// The codec's error.
        source: CodecError,
    },
    /// The object does not start with the format's magic: it is not a checkpoint.
    #[error("{name:?} is not a checkpoint: it starts with {found:02x?}")]
    BadMagic {
        /// The object's name.
        name: String,
        /// Its first bytes (up to 8).
        found: Vec<u8>,
    },
    /// The object ends before its structure does: it was cut short.
    #[error("checkpoint {name:?} is truncated: {len} bytes{}", expected_len.map(|e| format!(" of {e}")).unwrap_or_default())]
    Truncated {
        /// The object's name.
        name: String,
        /// Its length.
        len: u64,
        /// The length it was written with, when a trailer that survived says so.
        expected_len: Option<u64>,
    },
    /// The object has its full length, but bytes in it were damaged.
    #[error(
        "checkpoint {name:?} is corrupted: the checksum of the {what} is {computed:#010x}, {stored:#010x} was stored"
    )]
    ChecksumMismatch {
        /// The object's name.
        name: String,
        /// The part whose checksum failed: `"header and body"`, or a trailer copy.
        what: &'static str,
        /// The checksum stored in the object.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The object is intact but written in a format version this build does not read.
    #[error("checkpoint {name:?} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The object's name.
        name: String,
        /// The version in the object.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The object is intact but its records are encoded with a codec this build does not
    /// have.
    #[error("checkpoint {name:?} uses codec {found}; this build has codec {supported}")]
    UnknownCodec {
        /// The object's name.
        name: String,
        /// The codec id in the object.
        found: u16,
        /// The codec id of this build.
        supported: u16,
    },
    /// The object is intact but was written by another program (its graph differs).
    #[error(
        "checkpoint {name:?} was written by another program: fingerprint {found:#018x}, this program's is {expected:#018x}"
    )]
    FingerprintMismatch {
        /// The object's name.
        name: String,
        /// The fingerprint of the program reading it.
        expected: u64,
        /// The fingerprint in the object.
        found: u64,
    },
    /// The object is intact but a record does not decode as the expected type.
    #[error("checkpoint {name:?}: cannot decode record {record}: {source}")]
    Decode {
        /// The object's name.
        name: String,
        /// The position of the record.
        record: u64,
        /// The codec's error.
        source: CodecError,
    },
    /// The checksums hold but the structure does not: the writer was faulty.
    #[error("checkpoint {name:?} is malformed: {reason}")]
    Malformed {
        /// The object's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Fills `buf` with the next record's encoding and returns true, or returns false at the end.
pub type NextRecord<'a> = dyn FnMut(&mut Vec<u8>) -> Result<bool, CodecError> + 'a;

/// Receives one record's encoding, in the order written; an error stops the read.
pub type OnRecord<'a> = dyn FnMut(&[u8]) -> Result<(), CodecError> + 'a;

/// A checkpoint file format: it stores records encoded by the core, with a header, and gives
/// them back only if the stored object is intact. Implemented by `dstream-storage`'s zstd
/// format.
pub trait CheckpointFormat: Send + Sync + fmt::Debug {
    /// Stores the records `next` produces as the object `name` of `storage`, atomically. If
    /// `next` fails, nothing is stored and the error is [`CheckpointError::Encode`].
    fn write(
        &self,
        storage: &dyn Storage,
        name: &str,
        header: &CheckpointHeader,
        next: &mut NextRecord<'_>,
    ) -> Result<CheckpointStats, CheckpointError>;

    /// Reads the object `name` written by the program whose fingerprint is
    /// `expected_fingerprint`, passing each record's encoding to `on_record`; returns the
    /// header. Records passed before an error must be discarded by the caller: only a read that
    /// returns `Ok` vouches for them.
    fn read(
        &self,
        storage: &dyn Storage,
        name: &str,
        expected_fingerprint: u64,
        on_record: &mut OnRecord<'_>,
    ) -> Result<CheckpointHeader, CheckpointError>;
}

/// Writes `records` as the checkpoint `name` in `format`, encoding each through [`codec`].
pub fn write_records<'a, T: Serialize + 'a>(
    format: &dyn CheckpointFormat,
    storage: &dyn Storage,
    name: &str,
    header: &CheckpointHeader,
    records: impl IntoIterator<Item = &'a T>,
) -> Result<CheckpointStats, CheckpointError> {
    let mut records = records.into_iter();
    format.write(storage, name, header, &mut |buf: &mut Vec<u8>| match records.next() {
        Some(r) => codec::encode_into(r, buf).map(|()| true),
        None => Ok(false),
    })
}

/// Reads the checkpoint `name` in `format`: its header and its records, decoded through
/// [`codec`], or the first error.
pub fn read_records<T: DeserializeOwned>(
    format: &dyn CheckpointFormat,
    storage: &dyn Storage,
    name: &str,
    expected_fingerprint: u64,
) -> Result<(CheckpointHeader, Vec<T>), CheckpointError> {
    let mut records = Vec::new();
    let header = format.read(storage, name, expected_fingerprint, &mut |bytes: &[u8]| {
        records.push(codec::decode::<T>(bytes)?);
        Ok(())
    })?;
    Ok((header, records))
}

/// Where and how a streaming program checkpoints: a [`Storage`] of its own (the program's
/// objects are named under it freely) and a [`CheckpointFormat`]. Cheap to clone.
///
/// `dstream-storage` builds one for a directory or for memory with its zstd format.
#[derive(Clone)]
pub struct Checkpointing {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) format: Arc<dyn CheckpointFormat>,
}

impl Checkpointing {
    /// Checkpoints to `storage` in `format`.
    pub fn new(storage: Arc<dyn Storage>, format: Arc<dyn CheckpointFormat>) -> Checkpointing {
        Checkpointing { storage, format }
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The format.
    pub fn format(&self) -> &Arc<dyn CheckpointFormat> {
        &self.format
    }
}

impl fmt::Debug for Checkpointing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpointing").field("format", &self.format).finish_non_exhaustive()
    }
}
