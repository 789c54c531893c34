//! The checkpoint file format: one partition of a stream's state at one batch time, with a
//! versioned header, a zstd-compressed body and a checksum, written and read as a stream.
//!
//! # Layout (format version 1)
//!
//! All integers are little-endian.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..8 | [`MAGIC`] |
//! | 8..10 | format version ([`FORMAT_VERSION`]) |
//! | 10..12 | codec id ([`dstream::codec::CODEC_ID`]: postcard) |
//! | 12..16 | partition (`u32`) |
//! | 16..24 | program fingerprint (`u64`) |
//! | 24..32 | stream id (`u64`) |
//! | 32..40 | batch time (`u64` nanoseconds) |
//! | 40..n-48 | body: one zstd frame |
//! | n-48..n-24 | trailer |
//! | n-24..n | the same trailer again |
//!
//! The body decompresses to the records one after the other, each as its length (LEB128) and
//! its encoding through [`dstream::codec`]. A trailer ([`TRAILER_BYTES`]) holds the file's
//! length (`u64`), the number of records (`u64`), the CRC-32 of everything before the
//! trailers (header and body) and the CRC-32 of the trailer's own first 20 bytes.
//!
//! # Detection
//!
//! The reader tells apart, each with its own [`CheckpointError`]: not a checkpoint
//! ([`BadMagic`](CheckpointError::BadMagic)), a file cut short
//! ([`Truncated`](CheckpointError::Truncated)), damaged bytes
//! ([`ChecksumMismatch`](CheckpointError::ChecksumMismatch)), a newer format
//! ([`UnsupportedVersion`](CheckpointError::UnsupportedVersion)), another codec
//! ([`UnknownCodec`](CheckpointError::UnknownCodec)), another program
//! ([`FingerprintMismatch`](CheckpointError::FingerprintMismatch)) and records of another
//! type ([`Decode`](CheckpointError::Decode)).
//!
//! The trailer is stored twice so that a truncation and a damaged byte never look alike: a
//! damaged byte spoils at most one copy, and the other one, intact, says the file has its full
//! length; a truncation removes (or misaligns) both, or leaves one that gives a greater
//! length. CRC-32 detects every error burst of up to 32 bits, so every single damaged byte is
//! detected, not only most of them. Every version of the format keeps the magic and the
//! version at the start and these trailers at the end, so the integrity of a file is checked
//! before its version is trusted: a damaged version field is reported as damage, a genuinely
//! newer file as a newer version.
//!
//! # Streaming
//!
//! The writer encodes records one at a time into a small buffer that feeds the compressor,
//! whose output goes straight to [`Storage::put_with`]; the reader decompresses from
//! [`Storage::open`] through a small buffer and decodes records one at a time. Neither holds
//! the encoded partition or the compressed file whole. The reader keeps the decoded records
//! until the checksum at the end confirms them, and returns none if it does not.

use std::io::{self, BufRead, BufReader, Read, Write};

pub use dstream::checkpoint::{CheckpointError, CheckpointHeader, CheckpointStats};
use dstream::checkpoint::{CheckpointFormat, NextRecord, OnRecord};
use dstream::codec::{CodecError, CODEC_ID};
use dstream::{Storage, StorageError, StreamId, Time};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"DSTRMCKP";

/// The format version this build writes, and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

/// The size of the header, in bytes.
pub const HEADER_BYTES: usize = 40;

/// The size of one trailer copy, in bytes; the file ends with two.
pub const TRAILER_BYTES: usize = 24;

/// Both trailer copies.
const TRAILERS_BYTES: usize = 2 * TRAILER_BYTES;

/// The zstd level [`write_checkpoint`] callers should use unless they have a reason not to:
/// chosen by the `checkpoint` benchmark (BENCHMARKS.md, "Checkpoints").
pub const DEFAULT_LEVEL: i32 = 1;

/// The largest encoded record the reader accepts, in bytes: a bound on the memory a damaged
/// length prefix can make it allocate.
pub const RECORD_BYTES_MAX: u64 = 256 << 20;

/// How many encoded bytes the writer gathers before handing them to the compressor, and the
/// size of the reader's buffers.
const CHUNK_BYTES: usize = 64 << 10;

/// The zstd checkpoint format (see the [module](self) documentation), at a compression level.
/// Implements the core's [`CheckpointFormat`]; [`crate::checkpointing`] uses it.
///
/// ```
/// use dstream_storage::checkpoint::{Zstd, DEFAULT_LEVEL};
/// assert_eq!(Zstd::default().level(), DEFAULT_LEVEL);
/// assert!(Zstd::new(3).is_ok());
/// assert!(Zstd::new(1_000).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zstd {
    level: i32,
}

impl Default for Zstd {
    fn default() -> Zstd {
        Zstd { level: DEFAULT_LEVEL }
    }
}

impl Zstd {
    /// The format compressing at `level`, which must be one zstd accepts.
    pub fn new(level: i32) -> Result<Zstd, CheckpointError> {
        let range = zstd::compression_level_range();
        if !range.contains(&level) {
            return Err(CheckpointError::InvalidLevel { level, min: *range.start(), max: *range.end() });
        }
        Ok(Zstd { level })
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl CheckpointFormat for Zstd {
    fn write(
        &self,
        storage: &dyn Storage,
        name: &str,
        header: &CheckpointHeader,
        next: &mut NextRecord<'_>,
    ) -> Result<CheckpointStats, CheckpointError> {
        let head = RawHeader { version: FORMAT_VERSION, codec: CODEC_ID, header: *header }.encode();
        let mut encode_error = None;
        let mut stats = None;
        let put = storage.put_with(name, &mut |out: &mut dyn Write| {
            let mut out = HashingWriter { inner: out, crc: crc32fast::Hasher::new(), bytes: 0 };
            out.write_all(&head)?;
            let mut zstd = zstd::stream::write::Encoder::new(&mut out, self.level)?;
            let mut chunk = Vec::with_capacity(CHUNK_BYTES + 1024);
            let mut record = Vec::new();
            let (mut count, mut body_bytes) = (0u64, 0u64);
            loop {
                record.clear();
                match next(&mut record) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(source) => {
                        encode_error = Some(CheckpointError::Encode { name: name.to_owned(), record: count, source });
                        return Err(io::Error::other("a record could not be encoded"));
                    }
                }
                let before = chunk.len();
                write_leb128(&mut chunk, record.len() as u64);
                chunk.extend_from_slice(&record);
                body_bytes += (chunk.len() - before) as u64;
                count += 1;
                if chunk.len() >= CHUNK_BYTES {
                    zstd.write_all(&chunk)?;
                    chunk.clear();
                }
            }
            zstd.write_all(&chunk)?;
            zstd.finish()?;
            let (crc, contents_bytes) = (out.crc.finalize(), out.bytes);
            // Paired with the reader's check of `file_bytes`: the header and a frame went out.
            assert!(contents_bytes > HEADER_BYTES as u64, "the header and the body were written");
            let file_bytes = contents_bytes + TRAILERS_BYTES as u64;
            let trailer = Trailer { file_bytes, records: count, crc }.encode();
            out.inner.write_all(&trailer)?;
            out.inner.write_all(&trailer)?;
            stats = Some(CheckpointStats { records: count, body_bytes, file_bytes });
            Ok(())
        });
        if let Some(e) = encode_error {
            return Err(e);
        }
        put?;
        // A put that returned Ok ran the writer to its end, which sets the stats.
        stats
            .ok_or_else(|| CheckpointError::Malformed { name: name.to_owned(), reason: "the store never wrote".into() })
    }

    fn read(
        &self,
        storage: &dyn Storage,
        name: &str,
        expected_fingerprint: u64,
        on_record: &mut OnRecord<'_>,
    ) -> Result<CheckpointHeader, CheckpointError> {
        read_with(storage, name, expected_fingerprint, on_record)
    }
}

/// Writes `records` as the checkpoint `name`, with `header`, compressing at zstd `level`
/// ([`DEFAULT_LEVEL`] unless measured otherwise); atomically, as every put.
///
/// The records are encoded and compressed as they are drawn from `records` and the file goes
/// to the store as it is produced (see the [module](self) documentation). If a record cannot
/// be encoded, nothing is stored and [`CheckpointError::Encode`] names it.
///
/// # Examples
///
/// ```
/// use dstream::{StreamId, Time};
/// use dstream_storage::checkpoint::{self, CheckpointHeader};
/// use dstream_storage::Memory;
///
/// let store = Memory::new();
/// let header =
///     CheckpointHeader { fingerprint: 7, stream: StreamId(1), batch_time: Time::from_millis(3000), partition: 2 };
/// let state: Vec<(String, u64)> = vec![("apple".into(), 3), ("pear".into(), 1)];
/// let stats = checkpoint::write_checkpoint(&store, "ckpt/1/3000/2", &header, &state, checkpoint::DEFAULT_LEVEL)?;
/// assert_eq!(stats.records, 2);
///
/// let (read_header, records) = checkpoint::read_checkpoint::<(String, u64), _>(&store, "ckpt/1/3000/2", 7)?;
/// assert_eq!((read_header, records), (header, state));
/// # Ok::<(), checkpoint::CheckpointError>(())
/// ```
pub fn write_checkpoint<'a, T, S>(
    storage: &S,
    name: &str,
    header: &CheckpointHeader,
    records: impl IntoIterator<Item = &'a T>,
    level: i32,
) -> Result<CheckpointStats, CheckpointError>
where
    T: Serialize + 'a,
    S: Storage + ?Sized,
{
    dstream::checkpoint::write_records(&Zstd::new(level)?, &ByRef(storage), name, header, records)
}

/// Reads the checkpoint `name`, written by the program whose fingerprint is
/// `expected_fingerprint`: its header and its records, in the order they were written.
///
/// The file is read once, as a stream; the records are returned only if the whole file
/// checks out (see the [module](self) documentation for which error says what).
///
/// # Examples
///
/// ```
/// use dstream::{Storage, StreamId, Time};
/// use dstream_storage::checkpoint::{self, CheckpointError, CheckpointHeader};
/// use dstream_storage::Memory;
///
/// let store = Memory::new();
/// let header = CheckpointHeader { fingerprint: 7, stream: StreamId(1), batch_time: Time::ZERO, partition: 0 };
/// checkpoint::write_checkpoint(&store, "ckpt", &header, &[1u64, 2, 3], 1)?;
///
/// let err = checkpoint::read_checkpoint::<u64, _>(&store, "ckpt", 8).unwrap_err();
/// assert!(matches!(err, CheckpointError::FingerprintMismatch { expected: 8, found: 7, .. }));
///
/// let mut bytes = store.get("ckpt")?;
/// bytes.truncate(bytes.len() - 1);
/// store.put("ckpt", &bytes)?;
/// let err = checkpoint::read_checkpoint::<u64, _>(&store, "ckpt", 7).unwrap_err();
/// assert!(matches!(err, CheckpointError::Truncated { .. }));
/// # Ok::<(), CheckpointError>(())
/// ```
pub fn read_checkpoint<T, S>(
    storage: &S,
    name: &str,
    expected_fingerprint: u64,
) -> Result<(CheckpointHeader, Vec<T>), CheckpointError>
where
    T: DeserializeOwned,
    S: Storage + ?Sized,
{
    dstream::checkpoint::read_records(&Zstd::default(), &ByRef(storage), name, expected_fingerprint)
}

/// A store behind a reference, sized, so that an unsized one (`dyn Storage`) can be passed on.
struct ByRef<'a, S: ?Sized>(&'a S);

impl<S: Storage + ?Sized> Storage for ByRef<'_, S> {
    fn put_with(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        self.0.put_with(name, write)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, StorageError> {
        self.0.open(name)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.0.list(prefix)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        self.0.delete(name)
    }
}

/// [`Zstd::read`]: any level reads any file.
fn read_with(
    storage: &dyn Storage,
    name: &str,
    expected_fingerprint: u64,
    on_record: &mut OnRecord<'_>,
) -> Result<CheckpointHeader, CheckpointError> {
    let storage_error = |e: &io::Error| StorageError::from_io(name, format!("object {name}"), "read", e);
    let mut src = BufReader::with_capacity(CHUNK_BYTES, TailReader::new(storage.open(name)?));
    let mut head = [0u8; HEADER_BYTES];
    let got = read_full(&mut src, &mut head).map_err(|e| storage_error(&e))?;
    let magic_len = got.min(MAGIC.len());
    if head[..magic_len] != MAGIC[..magic_len] {
        return Err(CheckpointError::BadMagic { name: name.to_owned(), found: head[..magic_len].to_vec() });
    }
    if got < HEADER_BYTES {
        return Err(CheckpointError::Truncated { name: name.to_owned(), len: got as u64, expected_len: None });
    }
    let raw = RawHeader::decode(&head);
    let decodable =
        raw.version == FORMAT_VERSION && raw.codec == CODEC_ID && raw.header.fingerprint == expected_fingerprint;
    let mut records = 0u64;
    // Decode only a file this build can read; any other is read to its end all the same, so
    // that damage is reported as damage before anything else is.
    let body = if decodable { decode_body(&mut src, on_record, &mut records) } else { Ok(()) };
    let after_body = io::copy(&mut src, &mut io::sink());
    let tail = src.into_inner();
    if let Some(e) = &tail.error {
        return Err(storage_error(e).into());
    }
    let after_body = after_body.map_err(|e| storage_error(&e))?;
    let trailer = check_integrity(name, &tail)?;

    let name = name.to_owned();
    if raw.version != FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion { name, found: raw.version, supported: FORMAT_VERSION });
    }
    if raw.codec != CODEC_ID {
        return Err(CheckpointError::UnknownCodec { name, found: raw.codec, supported: CODEC_ID });
    }
    if raw.header.fingerprint != expected_fingerprint {
        return Err(CheckpointError::FingerprintMismatch {
            name,
            expected: expected_fingerprint,
            found: raw.header.fingerprint,
        });
    }
    match body {
        Ok(()) => {}
        Err(BodyError::Decode { record, source }) => return Err(CheckpointError::Decode { name, record, source }),
        Err(BodyError::Frame(reason)) => return Err(CheckpointError::Malformed { name, reason }),
    }
    // Paired with the writer: what the trailer promised is what the body held.
    if after_body != TRAILERS_BYTES as u64 {
        let reason = format!("{} bytes between the body and the trailers", after_body - TRAILERS_BYTES as u64);
        return Err(CheckpointError::Malformed { name, reason });
    }
    if records != trailer.records {
        let reason = format!("the trailer counts {} records, the body holds {records}", trailer.records);
        return Err(CheckpointError::Malformed { name, reason });
    }
    Ok(raw.header)
}

/// Checks the trailers against the file's length and checksum; returns the trailer.
fn check_integrity<R>(name: &str, tail: &TailReader<R>) -> Result<Trailer, CheckpointError> {
    let len = tail.total;
    let truncated = |expected_len| CheckpointError::Truncated { name: name.to_owned(), len, expected_len };
    if len < (HEADER_BYTES + TRAILERS_BYTES) as u64 {
        return Err(truncated(None));
    }
    debug_assert_eq!(tail.held_len, TRAILERS_BYTES);
    let copies = [Trailer::decode(&tail.held[..TRAILER_BYTES]), Trailer::decode(&tail.held[TRAILER_BYTES..])];
    let Some(trailer) = copies.iter().find_map(|c| c.as_ref().ok()).copied() else {
        return Err(truncated(None));
    };
    if trailer.file_bytes > len {
        return Err(truncated(Some(trailer.file_bytes)));
    }
    let name = name.to_owned();
    if trailer.file_bytes < len {
        let reason =
            format!("{} bytes follow the end the trailer gives ({})", len - trailer.file_bytes, trailer.file_bytes);
        return Err(CheckpointError::Malformed { name, reason });
    }
    let computed = tail.crc.clone().finalize();
    if computed != trailer.crc {
        return Err(CheckpointError::ChecksumMismatch { name, what: "header and body", stored: trailer.crc, computed });
    }
    for (copy, what) in copies.iter().zip(["first trailer copy", "second trailer copy"]) {
        match copy {
            Err((stored, computed)) => {
                return Err(CheckpointError::ChecksumMismatch { name, what, stored: *stored, computed: *computed })
            }
            Ok(c) if *c != trailer => {
                return Err(CheckpointError::Malformed { name, reason: "the trailer copies differ".into() })
            }
            Ok(_) => {}
        }
    }
    Ok(trailer)
}

/// The header as stored: the caller's fields and the format's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RawHeader {
    version: u16,
    codec: u16,
    header: CheckpointHeader,
}

impl RawHeader {
    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.codec.to_le_bytes());
        b[12..16].copy_from_slice(&self.header.partition.to_le_bytes());
        b[16..24].copy_from_slice(&self.header.fingerprint.to_le_bytes());
        b[24..32].copy_from_slice(&self.header.stream.0.to_le_bytes());
        b[32..40].copy_from_slice(&self.header.batch_time.as_nanos().to_le_bytes());
        debug_assert_eq!(RawHeader::decode(&b), *self);
        b
    }

    /// Decodes the fields after the magic, which the caller has checked.
    fn decode(b: &[u8; HEADER_BYTES]) -> RawHeader {
        RawHeader {
            version: u16::from_le_bytes([b[8], b[9]]),
            codec: u16::from_le_bytes([b[10], b[11]]),
            header: CheckpointHeader {
                partition: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
                fingerprint: le_u64(&b[16..24]),
                stream: StreamId(le_u64(&b[24..32])),
                batch_time: Time::from_nanos(le_u64(&b[32..40])),
            },
        }
    }
}

/// The end of the file: its length, its record count and the checksum of what precedes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Trailer {
    file_bytes: u64,
    records: u64,
    crc: u32,
}

impl Trailer {
    fn encode(&self) -> [u8; TRAILER_BYTES] {
        let mut b = [0u8; TRAILER_BYTES];
        b[0..8].copy_from_slice(&self.file_bytes.to_le_bytes());
        b[8..16].copy_from_slice(&self.records.to_le_bytes());
        b[16..20].copy_from_slice(&self.crc.to_le_bytes());
        let own = crc32fast::hash(&b[..20]);
        b[20..24].copy_from_slice(&own.to_le_bytes());
        debug_assert_eq!(Trailer::decode(&b), Ok(*self));
        b
    }

    /// The trailer in `b`, or (stored, computed) if its own checksum fails.
    fn decode(b: &[u8]) -> Result<Trailer, (u32, u32)> {
        let stored = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
        let computed = crc32fast::hash(&b[..20]);
        if stored != computed {
            return Err((stored, computed));
        }
        let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
        Ok(Trailer { file_bytes: le_u64(&b[0..8]), records: le_u64(&b[8..16]), crc })
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Why the body could not be decoded. Reported only once the file's integrity is known.
enum BodyError {
    /// The zstd frame or the record framing is invalid.
    Frame(String),
    /// A record does not decode as the expected type.
    Decode { record: u64, source: CodecError },
}

/// Passes the records of the zstd frame at the start of `src` to `on_record`, counting them
/// in `records`, and leaves `src` just after the frame.
fn decode_body(src: &mut impl BufRead, on_record: &mut OnRecord<'_>, records: &mut u64) -> Result<(), BodyError> {
    let frame = |e: io::Error| BodyError::Frame(format!("zstd: {e}"));
    let decoder = zstd::stream::read::Decoder::with_buffer(src).map_err(frame)?.single_frame();
    let mut body = BufReader::with_capacity(CHUNK_BYTES, decoder);
    let mut spill = Vec::new();
    loop {
        let Some(len) = read_leb128(&mut body).map_err(frame)? else { return Ok(()) };
        if len > RECORD_BYTES_MAX {
            return Err(BodyError::Frame(format!("a record of {len} bytes exceeds RECORD_BYTES_MAX")));
        }
        // `len` fits in usize: it is at most RECORD_BYTES_MAX.
        let len = len as usize;
        let index = *records;
        let mut decode = |bytes: &[u8]| on_record(bytes).map_err(|source| BodyError::Decode { record: index, source });
        let buffered = body.fill_buf().map_err(frame)?;
        if buffered.len() >= len {
            let decoded = decode(&buffered[..len]);
            body.consume(len);
            decoded?;
        } else {
            spill.resize(len, 0);
            body.read_exact(&mut spill).map_err(frame)?;
            decode(&spill)?;
        }
        *records += 1;
    }
}

/// Appends `value` as LEB128 (7 bits a byte, low first, high bit set on all but the last).
fn write_leb128(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a LEB128 value; `None` at the end of the input before its first byte.
fn read_leb128(src: &mut impl BufRead) -> io::Result<Option<u64>> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = match src.fill_buf()?.first() {
            Some(b) => *b,
            None if i == 0 => return Ok(None),
            None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the body ends inside a record length")),
        };
        src.consume(1);
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "a record length is longer than 10 bytes"))
}

/// Reads into `buf` until it is full or the input ends; returns how many bytes it read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A writer that checksums and counts what passes through it.
struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts what passes through it and checksums all of it but the last
/// [`TRAILERS_BYTES`], which it holds back: at the end of the input, those are the trailers
/// and the checksum is the one they should hold, wherever the body's parser stopped.
struct TailReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
    held: [u8; TRAILERS_BYTES],
    held_len: usize,
    total: u64,
    /// The first error of the underlying store: a read that failed is not a damaged file.
    error: Option<io::Error>,
}

impl<R> TailReader<R> {
    fn new(inner: R) -> TailReader<R> {
        TailReader {
            inner,
            crc: crc32fast::Hasher::new(),
            held: [0; TRAILERS_BYTES],
            held_len: 0,
            total: 0,
            error: None,
        }
    }

    fn absorb(&mut self, new: &[u8]) {
        self.total += new.len() as u64;
        let excess = (self.held_len + new.len()).saturating_sub(TRAILERS_BYTES);
        if excess <= self.held_len {
            // The oldest `excess` held bytes leave the window; `new` joins it whole.
            self.crc.update(&self.held[..excess]);
            self.held.copy_within(excess..self.held_len, 0);
            self.held_len -= excess;
            self.held[self.held_len..self.held_len + new.len()].copy_from_slice(new);
            self.held_len += new.len();
        } else {
            // Everything held leaves, and the start of `new` too.
            self.crc.update(&self.held[..self.held_len]);
            let keep_from = new.len() - TRAILERS_BYTES;
            self.crc.update(&new[..keep_from]);
            self.held.copy_from_slice(&new[keep_from..]);
            self.held_len = TRAILERS_BYTES;
        }
    }
}

impl<R: Read> Read for TailReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.absorb(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                let message = e.to_string();
                if kind != io::ErrorKind::Interrupted && self.error.is_none() {
                    self.error = Some(e);
                }
                Err(io::Error::new(kind, message))
            }
        }
    }
}

#[cfg(test)]
mod tests;
