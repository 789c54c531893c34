//! The pod codec: round trips of every kind of admitted type, the bytes it writes, input at any
//! alignment, and the typed errors for bytes that are not an encoding of the expected records.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;
use std::fmt::Debug;

/// The encoding of `records` in a new vector.
fn encoded<T: Pod>(records: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_pod(records, &mut out);
    out
}

/// Checks that `records` encode to the header and their memory and decode back.
fn round_trip<T: Pod + PartialEq + Debug>(records: &[T]) {
    let bytes = encoded(records);
    assert_eq!(bytes.len(), HEADER_BYTES + std::mem::size_of_val(records));
    assert_eq!(decode_pod::<T>(&bytes).unwrap(), records);
}

/// The tag of the other byte order.
fn other_tag() -> u8 {
    if ARCH_TAG == LITTLE_ENDIAN_TAG {
        BIG_ENDIAN_TAG
    } else {
        LITTLE_ENDIAN_TAG
    }
}

#[test]
fn every_kind_of_pod_type_round_trips_at_its_extremes() {
    round_trip(&[0u8, 1, u8::MAX]);
    round_trip(&[0u16, 1, u16::MAX]);
    round_trip(&[0u32, 1, u32::MAX]);
    round_trip(&[0u64, 1, u64::MAX]);
    round_trip(&[0i8, -1, i8::MIN, i8::MAX]);
    round_trip(&[0i16, -1, i16::MIN, i16::MAX]);
    round_trip(&[0i32, -1, i32::MIN, i32::MAX]);
    round_trip(&[0i64, -1, i64::MIN, i64::MAX]);
    round_trip(&[(u64::MAX, 0u64), (1, 2)]);
    round_trip(&[(u32::MAX, 0u32), (1, 2)]);
    round_trip(&[(1u8, u8::MAX)]);
    round_trip(&[(1u64, 2u64, u64::MAX)]);
    round_trip(&[(i16::MIN, -1i16, 0i16, i16::MAX)]);
    round_trip(&[[1u32, 2, 3], [u32::MAX; 3]]);
    round_trip(&[[(1u64, 2u64); 2], [(u64::MAX, 0); 2]]);
    round_trip(&[[[1u8, 2, 3]; 2]]);
    round_trip(&[[7i64; 32]]);
    round_trip::<(u64, u64)>(&[]);
}

#[test]
fn the_encoding_is_the_tag_the_width_and_each_field_in_this_machines_byte_order() {
    let records = [(1u64, 2u64), (u64::MAX - 1, 3)];
    let mut expected = vec![ARCH_TAG, 16, 0, 0, 0];
    for (a, b) in records {
        expected.extend(a.to_ne_bytes());
        expected.extend(b.to_ne_bytes());
    }
    assert_eq!(encoded(&records), expected);
}

#[test]
fn encode_appends_to_what_the_buffer_holds() {
    let mut out = vec![9, 9];
    encode_pod(&[5u16], &mut out);
    encode_pod(&[6u8], &mut out);
    let mut expected = vec![9, 9, ARCH_TAG, 2, 0, 0, 0];
    expected.extend(5u16.to_ne_bytes());
    expected.extend([ARCH_TAG, 1, 0, 0, 0, 6]);
    assert_eq!(out, expected);
    assert_eq!(decode_pod::<u16>(&out[2..9]).unwrap(), [5]);
    assert_eq!(decode_pod::<u8>(&out[9..]).unwrap(), [6]);
}

#[test]
fn fewer_bytes_than_the_header_are_truncated() {
    let bytes = encoded(&[7u32]);
    for len in 0..HEADER_BYTES {
        assert_eq!(decode_pod::<u32>(&bytes[..len]), Err(PodError::Truncated { type_name: "u32", len }));
    }
}

#[test]
fn a_body_that_is_not_whole_records_is_refused() {
    let bytes = encoded(&[(1u64, 2u64), (3, 4)]);
    let type_name = std::any::type_name::<(u64, u64)>();
    for cut in 1..16 {
        let body = 32 - cut;
        assert_eq!(
            decode_pod::<(u64, u64)>(&bytes[..bytes.len() - cut]),
            Err(PodError::Length { type_name, body, width: 16 })
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode_pod::<(u64, u64)>(&longer), Err(PodError::Length { type_name, body: 33, width: 16 }));
    assert_eq!(decode_pod::<(u64, u64)>(&bytes[..HEADER_BYTES]).unwrap(), []);
}

#[test]
fn another_byte_orders_tag_is_refused() {
    let mut bytes = encoded(&[(1u64, 2u64)]);
    let type_name = std::any::type_name::<(u64, u64)>();
    bytes[0] = other_tag();
    assert_eq!(
        decode_pod::<(u64, u64)>(&bytes),
        Err(PodError::Architecture { type_name, found: other_tag(), expected: ARCH_TAG })
    );
    // A postcard encoding of records is not this format either: its first byte is their count.
    let postcard = dstream::codec::encode(&vec![(1u64, 2u64); 3]).unwrap();
    assert!(matches!(decode_pod::<(u64, u64)>(&postcard), Err(PodError::Architecture { found: 3, .. })));
}

#[test]
fn records_of_another_width_are_refused_and_of_the_same_width_are_not() {
    let bytes = encoded(&[(1u64, 2u64)]);
    // 16 bytes of body are a whole number of `u32`s: the width in the header tells them apart.
    assert_eq!(decode_pod::<u32>(&bytes), Err(PodError::Width { type_name: "u32", found: 16, expected: 4 }));
    assert!(matches!(decode_pod::<(u32, u32)>(&bytes), Err(PodError::Width { found: 16, expected: 8, .. })));
    // The format checks widths, not types: a type of the same width reads the same memory.
    assert_eq!(decode_pod::<[u64; 2]>(&bytes).unwrap(), [[1, 2]]);
}

#[test]
fn input_at_any_alignment_decodes() {
    let records: Vec<(u64, u64)> = (0..50).map(|i| (i * 0x0101_0101_0101_0101, u64::MAX - i)).collect();
    let bytes = encoded(&records);
    let mut misaligned = 0;
    for offset in 0..8 {
        let mut buffer = vec![0u8; offset];
        buffer.extend_from_slice(&bytes);
        let input = &buffer[offset..];
        if !input.as_ptr().cast::<(u64, u64)>().is_aligned() {
            misaligned += 1;
        }
        assert_eq!(decode_pod::<(u64, u64)>(input).unwrap(), records, "at offset {offset}");
    }
    // Of 8 consecutive addresses, at most one is aligned for a u64.
    assert!(misaligned >= 7, "{misaligned} of 8 inputs were misaligned");
}

proptest! {
    #[test]
    fn random_pairs_round_trip(records in vec(any::<(u64, u64)>(), 0..300)) {
        round_trip(&records);
    }

    #[test]
    fn random_u32s_round_trip(records in vec(any::<u32>(), 0..300)) {
        round_trip(&records);
    }

    #[test]
    fn random_signed_triples_round_trip(records in vec(any::<(i32, i32, i32)>(), 0..300)) {
        round_trip(&records);
    }

    #[test]
    fn random_arrays_and_bytes_round_trip(arrays in vec(any::<[u16; 5]>(), 0..100), bytes in vec(any::<i8>(), 0..100)) {
        round_trip(&arrays);
        round_trip(&bytes);
    }

    /// Any body after a valid header of 16-byte records: whole records decode to values that
    /// encode back to the same bytes, anything else is a `Length` error.
    #[test]
    fn any_body_decodes_to_records_that_encode_back_or_is_refused(body in vec(any::<u8>(), 0..100)) {
        let mut bytes = vec![ARCH_TAG, 16, 0, 0, 0];
        bytes.extend_from_slice(&body);
        match decode_pod::<(u64, u64)>(&bytes) {
            Ok(records) => {
                prop_assert_eq!(body.len() % 16, 0);
                prop_assert_eq!(encoded(&records), bytes);
            }
            Err(e) => prop_assert!(matches!(e, PodError::Length { .. }) && body.len() % 16 != 0, "{e}"),
        }
    }

    /// Arbitrary bytes: never a panic; a success re-encodes to the same bytes.
    #[test]
    fn arbitrary_bytes_are_records_or_a_typed_error(bytes in vec(any::<u8>(), 0..64)) {
        if let Ok(records) = decode_pod::<u32>(&bytes) {
            prop_assert_eq!(encoded(&records), bytes);
        }
    }
}
