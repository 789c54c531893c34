//! Unit tests of the format's internals: fields patched with valid checksums (a newer
//! version, another codec), the framing helpers and the hold-back reader.

use super::*;
use crate::Memory;

const FINGERPRINT: u64 = 0xabcd_ef01_2345_6789;

fn header() -> CheckpointHeader {
    CheckpointHeader {
        fingerprint: FINGERPRINT,
        stream: StreamId(4),
        batch_time: Time::from_millis(9000),
        partition: 3,
    }
}

fn sample(store: &Memory, name: &str) -> Vec<u8> {
    let records: Vec<(String, u64)> = (0..50).map(|i| (format!("word{i}"), i * 7)).collect();
    write_checkpoint(store, name, &header(), &records, DEFAULT_LEVEL).unwrap();
    store.get(name).unwrap()
}

/// Recomputes the checksum and both trailers of a file whose header or body a test changed,
/// keeping the record count `records`: the file is then intact, only different.
fn reseal(bytes: &[u8], records: u64) -> Vec<u8> {
    let contents = &bytes[..bytes.len() - TRAILERS_BYTES];
    let trailer = Trailer { file_bytes: bytes.len() as u64, records, crc: crc32fast::hash(contents) }.encode();
    [contents, &trailer, &trailer].concat()
}

fn read(store: &Memory, bytes: &[u8]) -> Result<(CheckpointHeader, Vec<(String, u64)>), CheckpointError> {
    store.overwrite("patched", bytes).unwrap();
    read_checkpoint(store, "patched", FINGERPRINT)
}

#[test]
fn reseal_of_an_unchanged_file_is_the_file() {
    let store = Memory::new();
    let bytes = sample(&store, "a");
    assert_eq!(reseal(&bytes, 50), bytes);
    assert_eq!(read(&store, &bytes).unwrap().1.len(), 50);
}

#[test]
fn an_intact_newer_version_is_unsupported() {
    let store = Memory::new();
    let mut bytes = sample(&store, "a");
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    match read(&store, &reseal(&bytes, 50)) {
        Err(CheckpointError::UnsupportedVersion { found: 2, supported: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    // The same change without a new checksum is damage, not a newer file.
    assert!(matches!(read(&store, &bytes), Err(CheckpointError::ChecksumMismatch { .. })));
}

#[test]
fn an_intact_file_of_another_codec_is_refused() {
    let store = Memory::new();
    let mut bytes = sample(&store, "a");
    bytes[10..12].copy_from_slice(&9u16.to_le_bytes());
    match read(&store, &reseal(&bytes, 50)) {
        Err(CheckpointError::UnknownCodec { found: 9, supported: CODEC_ID, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_record_count_that_disagrees_with_the_body_is_malformed() {
    let store = Memory::new();
    let bytes = sample(&store, "a");
    match read(&store, &reseal(&bytes, 51)) {
        Err(CheckpointError::Malformed { reason, .. }) => assert!(reason.contains("51"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_appended_after_the_trailers_are_reported() {
    let store = Memory::new();
    let mut bytes = sample(&store, "a");
    let trailers = bytes[bytes.len() - TRAILERS_BYTES..].to_vec();
    bytes.extend_from_slice(&trailers); // the trailers now stand 48 bytes before the end
    assert!(matches!(read(&store, &bytes), Err(CheckpointError::Malformed { .. })));
}

#[test]
fn leb128_round_trips_and_rejects_overlong_values() {
    for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
        let mut out = Vec::new();
        write_leb128(&mut out, value);
        let mut src = &out[..];
        assert_eq!(read_leb128(&mut src).unwrap(), Some(value));
        assert!(src.is_empty());
    }
    assert_eq!(read_leb128(&mut &[][..]).unwrap(), None);
    assert_eq!(read_leb128(&mut &[0x80][..]).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(read_leb128(&mut &[0xff; 11][..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
}

/// Reads `data` through a `TailReader` in pieces of `piece` bytes.
fn hold_back(data: &[u8], piece: usize) -> TailReader<&[u8]> {
    let mut tail = TailReader::new(data);
    let mut buf = vec![0u8; piece];
    while tail.read(&mut buf).unwrap() > 0 {}
    tail
}

#[test]
fn tail_reader_holds_back_the_last_bytes_whatever_the_read_sizes() {
    let data: Vec<u8> = (0..200u8).collect();
    for piece in [1, 7, TRAILERS_BYTES - 1, TRAILERS_BYTES, TRAILERS_BYTES + 1, 100, 4096] {
        let tail = hold_back(&data, piece);
        assert_eq!(tail.total, 200, "piece {piece}");
        assert_eq!(tail.held_len, TRAILERS_BYTES);
        assert_eq!(&tail.held[..], &data[200 - TRAILERS_BYTES..], "piece {piece}");
        assert_eq!(tail.crc.clone().finalize(), crc32fast::hash(&data[..200 - TRAILERS_BYTES]), "piece {piece}");
    }
    let short = hold_back(&data[..10], 3);
    assert_eq!((short.total, short.held_len), (10, 10));
    assert_eq!(short.crc.finalize(), crc32fast::hash(&[]));
}

#[test]
fn invalid_levels_are_refused_before_anything_is_written() {
    let store = Memory::new();
    let err = write_checkpoint(&store, "a", &header(), &[1u8], 1000).unwrap_err();
    assert!(matches!(err, CheckpointError::InvalidLevel { level: 1000, .. }), "{err:?}");
    assert!(store.list("").unwrap().is_empty());
}
