//! The checkpoint format through the public API: round trips (a property test over random
//! partitions, both stores), every single-byte flip and every truncation of a small file
//! detected with its own error, and each store fault seen as the right error.

mod common;

use std::io;

use dstream::{Storage, StorageError, StreamId, Time};
use dstream_storage::checkpoint::{self, CheckpointError, CheckpointHeader, DEFAULT_LEVEL, MAGIC};
use dstream_storage::{Fault, LocalFs, Memory};
use proptest::prelude::*;
use serde::{Serialize, Serializer};

const FINGERPRINT: u64 = 0x5eed_0000_0000_0042;

type WordCount = (String, u64);

fn header(partition: u32) -> CheckpointHeader {
    CheckpointHeader { fingerprint: FINGERPRINT, stream: StreamId(7), batch_time: Time::from_millis(12_000), partition }
}

/// A small state partition: a file of a few hundred bytes, so every position can be tried.
fn small_partition() -> Vec<WordCount> {
    (0..20u64).map(|i| (format!("w{}", i * 37 % 101), i * i + 1)).collect()
}

fn write_small(store: &Memory) -> Vec<u8> {
    checkpoint::write_checkpoint(store, "ckpt/s7/p0", &header(0), &small_partition(), DEFAULT_LEVEL)
        .expect("write the small checkpoint");
    store.get("ckpt/s7/p0").expect("read the small checkpoint's bytes")
}

fn read(store: &impl Storage, name: &str) -> Result<(CheckpointHeader, Vec<WordCount>), CheckpointError> {
    checkpoint::read_checkpoint(store, name, FINGERPRINT)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_of_random_partitions(
        records in prop::collection::vec((".{0,24}", any::<u64>()), 0..400),
        fingerprint in any::<u64>(),
        stream in any::<u64>(),
        nanos in any::<u64>(),
        partition in any::<u32>(),
        level in prop::sample::select(vec![-5, 1, 3, 9, 19]),
    ) {
        let store = Memory::new();
        let header = CheckpointHeader {
            fingerprint,
            stream: StreamId(stream),
            batch_time: Time::from_nanos(nanos),
            partition,
        };
        let stats = checkpoint::write_checkpoint(&store, "p", &header, &records, level).unwrap();
        prop_assert_eq!(stats.records, records.len() as u64);
        prop_assert_eq!(stats.file_bytes, store.get("p").unwrap().len() as u64);
        let (read_header, read_records) = checkpoint::read_checkpoint::<WordCount, _>(&store, "p", fingerprint).unwrap();
        prop_assert_eq!(read_header, header);
        prop_assert_eq!(read_records, records);
    }
}

#[test]
fn round_trip_through_local_fs_with_large_records_and_many_chunks() {
    let dir = common::TempDir::new("checkpoint-roundtrip");
    let fs = LocalFs::new(dir.path()).unwrap();
    // Enough records for many compressor chunks, and records larger than the read buffers.
    let mut records: Vec<WordCount> = (0..200_000u64).map(|i| (format!("word-{}", i % 5000), i)).collect();
    records.insert(1000, ("x".repeat(300_000), 1));
    records.push(("y".repeat(70_000), 2));
    let stats = checkpoint::write_checkpoint(&fs, "ckpt/big", &header(1), &records, 1).unwrap();
    assert!(stats.compression_ratio() > 2.0, "{stats:?}");
    assert_eq!(stats.file_bytes, std::fs::metadata(fs.path_of("ckpt/big").unwrap()).unwrap().len());
    let (h, back) = read(&fs, "ckpt/big").unwrap();
    assert_eq!(h, header(1));
    assert!(back == records, "the records differ after a round trip");
}

#[test]
fn empty_partition_round_trips() {
    let store = Memory::new();
    let stats = checkpoint::write_checkpoint::<WordCount, _>(&store, "e", &header(0), &[], DEFAULT_LEVEL).unwrap();
    assert_eq!(stats.records, 0);
    assert_eq!(read(&store, "e").unwrap(), (header(0), vec![]));
}

/// Every byte of a small file, flipped in three ways on read (the `FlipOnRead` fault): a
/// flip in the magic says "not a checkpoint", anywhere else "damaged", never anything else,
/// and never a successful read.
#[test]
fn every_single_byte_flip_is_detected() {
    let store = Memory::new();
    let file = write_small(&store);
    assert!(file.len() < 1024, "a small file: {} bytes", file.len());
    for offset in 0..file.len() {
        for mask in [0x01, 0x80, 0xff] {
            store.inject(Fault::FlipOnRead { name_prefix: "ckpt/s7/p0".into(), offset, mask });
            let result = read(&store, "ckpt/s7/p0");
            let ok = match &result {
                Err(CheckpointError::BadMagic { found, .. }) => offset < MAGIC.len() && found.len() == MAGIC.len(),
                Err(CheckpointError::ChecksumMismatch { .. }) => offset >= MAGIC.len(),
                _ => false,
            };
            assert!(ok, "flip {mask:#04x} at {offset} of {}: {result:?}", file.len());
        }
    }
    assert!(store.pending_faults().is_empty());
    assert_eq!(read(&store, "ckpt/s7/p0").unwrap().1, small_partition(), "the stored file is intact");
}

/// Every prefix of a small file, as a torn put leaves it (the `TornPut` fault): each is
/// reported as truncated, never as damage or success.
#[test]
fn every_truncation_is_detected() {
    let store = Memory::new();
    let file = write_small(&store);
    for keep_bytes in 0..file.len() {
        store.inject(Fault::TornPut { name_prefix: "ckpt/".into(), keep_bytes });
        checkpoint::write_checkpoint(&store, "ckpt/torn", &header(0), &small_partition(), DEFAULT_LEVEL).unwrap();
        assert_eq!(store.get("ckpt/torn").unwrap(), file[..keep_bytes], "the same bytes, cut");
        match read(&store, "ckpt/torn") {
            Err(CheckpointError::Truncated { len, expected_len, .. }) => {
                assert_eq!(len, keep_bytes as u64);
                assert!(expected_len.is_none() || expected_len == Some(file.len() as u64), "{expected_len:?}");
            }
            other => panic!("cut to {keep_bytes} of {}: {other:?}", file.len()),
        }
    }
}

#[test]
fn a_file_that_is_not_a_checkpoint_has_a_bad_magic() {
    let store = Memory::new();
    store.put("other", b"PK\x03\x04 a zip file, not a checkpoint").unwrap();
    match read(&store, "other") {
        Err(CheckpointError::BadMagic { found, .. }) => assert_eq!(found, b"PK\x03\x04 a z"),
        other => panic!("{other:?}"),
    }
    store.put("short", b"XY").unwrap();
    assert!(matches!(read(&store, "short"), Err(CheckpointError::BadMagic { .. })));
}

#[test]
fn another_program_is_refused_with_both_fingerprints() {
    let store = Memory::new();
    write_small(&store);
    let err = checkpoint::read_checkpoint::<WordCount, _>(&store, "ckpt/s7/p0", 99).unwrap_err();
    match &err {
        CheckpointError::FingerprintMismatch { expected: 99, found: FINGERPRINT, .. } => {}
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("0x0000000000000063") && message.contains("0x5eed000000000042"), "{message}");
}

#[test]
fn records_of_another_type_fail_to_decode() {
    let store = Memory::new();
    write_small(&store);
    match checkpoint::read_checkpoint::<u64, _>(&store, "ckpt/s7/p0", FINGERPRINT) {
        Err(CheckpointError::Decode { record: 0, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_checkpoint_is_not_found() {
    let store = Memory::new();
    match read(&store, "ckpt/none") {
        Err(CheckpointError::Storage(StorageError::NotFound { name })) => assert_eq!(name, "ckpt/none"),
        other => panic!("{other:?}"),
    }
}

/// A failed put (an I/O error, a full device) leaves the previous checkpoint readable.
#[test]
fn failed_puts_keep_the_previous_checkpoint() {
    let store = Memory::new();
    write_small(&store);
    let other: Vec<WordCount> = vec![("new".into(), 1)];
    store.inject(Fault::FailPut { name_prefix: "ckpt/".into(), kind: io::ErrorKind::StorageFull });
    match checkpoint::write_checkpoint(&store, "ckpt/s7/p0", &header(0), &other, DEFAULT_LEVEL) {
        Err(CheckpointError::Storage(StorageError::Full { name, .. })) => assert_eq!(name, "ckpt/s7/p0"),
        other => panic!("{other:?}"),
    }
    store.inject(Fault::FailPut { name_prefix: "ckpt/".into(), kind: io::ErrorKind::PermissionDenied });
    match checkpoint::write_checkpoint(&store, "ckpt/s7/p0", &header(0), &other, DEFAULT_LEVEL) {
        Err(CheckpointError::Storage(StorageError::Io { kind: io::ErrorKind::PermissionDenied, .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&store, "ckpt/s7/p0").unwrap().1, small_partition());
}

/// A record with no encoding: the third one.
struct Flaky(u32);

impl Serialize for Flaky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 2 {
            return Err(serde::ser::Error::custom("record 2 has no encoding"));
        }
        s.serialize_u32(self.0)
    }
}

#[test]
fn an_unencodable_record_stores_nothing() {
    let dir = common::TempDir::new("checkpoint-encode");
    let fs = LocalFs::new(dir.path()).unwrap();
    checkpoint::write_checkpoint(&fs, "c", &header(0), &[1u32, 2], DEFAULT_LEVEL).unwrap();
    let flaky: Vec<Flaky> = (0..5).map(Flaky).collect();
    match checkpoint::write_checkpoint(&fs, "c", &header(0), &flaky, DEFAULT_LEVEL) {
        Err(CheckpointError::Encode { name, record: 2, source }) => {
            assert_eq!(name, "c");
            assert!(source.to_string().contains("Flaky"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(checkpoint::read_checkpoint::<u32, _>(&fs, "c", FINGERPRINT).unwrap().1, [1, 2]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
}
