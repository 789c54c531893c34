//! An opt-in codec for records that are plain old data: fixed-width integers, tuples of one
//! integer type and arrays of these, copied as their memory through
//! [abomonation](https://crates.io/crates/abomonation) (feature `pod-codec`, off by default).
//!
//! **Not on the default path.** Every record, block and message dstream moves goes through
//! `dstream::codec` (postcard); nothing in the engine calls this module, and without the
//! `pod-codec` feature it is not compiled and abomonation is not a dependency. It exists to be
//! measured against postcard and against a safe fixed-width codec
//! (`benches/benches/codec_pod.rs`, `cargo bench -p dstream-benches --features pod --bench codec_pod`).
//!
//! ```
//! use dstream_tcp::pod::{decode_pod, encode_pod};
//!
//! let pairs = vec![(1u64, 10u64), (2, 20)];
//! let mut bytes = Vec::new();
//! encode_pod(&pairs, &mut bytes);
//! assert_eq!(decode_pod::<(u64, u64)>(&bytes)?, pairs);
//! # Ok::<(), dstream_tcp::pod::PodError>(())
//! ```
//!
//! # The advisory
//!
//! abomonation is flagged unsound by RUSTSEC-2021-0120 (no fixed version): its `encode` reads
//! the memory of any type it is given, padding bytes included, and its `decode` casts bytes to
//! a `&T` without checking their alignment or that they are a valid `T`, so it can make
//! misaligned references and invalid values (a `bool` of 2; a `Vec` whose pointer and length
//! are whatever the bytes say). This is why it is kept behind a feature, used for nothing but
//! [`Pod`] records, and why this is the only module of the workspace allowed unsafe code
//! (`core/tests/architecture.rs` checks it).
//!
//! # The bound: [`Pod`]
//!
//! [`Pod`] is sealed: it is implemented here and nowhere else, for
//!
//! - `u8`, `u16`, `u32`, `u64`, `i8`, `i16`, `i32`, `i64`;
//! - tuples of 2, 3 or 4 elements of one of those integer types (`(u64, u64)`, `(u32, u32)`,
//!   `(i16, i16, i16, i16)`, ...): one type, so no field needs padding before it;
//! - arrays `[T; N]` of a `Pod` type, `N` from 1 to 32 (arrays have no padding between
//!   elements).
//!
//! Not admitted, because unsound: `bool` and `char` (bit patterns that are not values: decoding
//! arbitrary bytes would make an invalid one, undefined behaviour), the `NonZero` integers (zero
//! is invalid), mixed tuples such as `(u8, u64)` (padding: bytes that are not initialized).
//! Not admitted, because of the format: `usize` and `isize` (their width is the platform's, so
//! two processes could disagree on a record's size), zero-sized records (refused at compile
//! time: their count cannot be told from the bytes). Left out although they would be sound:
//! `f32` and `f64` (every bit pattern is a float, but NaN ≠ NaN makes comparing decoded records
//! meaningless; carry them as their `to_bits()`), `u128` and `i128` (no record needs them yet,
//! and their alignment differs between compiler versions).
//!
//! Every use of [`encode_pod`] and [`decode_pod`] also checks, at compile time, that
//! `size_of::<T>()` is the sum of the sizes of `T`'s integers ([`Pod::FIELD_BYTES`]): a record
//! with padding does not compile.
//!
//! ```compile_fail
//! dstream_tcp::pod::encode_pod(&[(1u8, 2u64)], &mut Vec::new()); // padding: not Pod
//! ```
//! ```compile_fail
//! dstream_tcp::pod::encode_pod(&[true], &mut Vec::new()); // invalid bit patterns: not Pod
//! ```
//! ```compile_fail
//! dstream_tcp::pod::encode_pod(&[1usize], &mut Vec::new()); // platform width: not Pod
//! ```
//! ```compile_fail
//! dstream_tcp::pod::encode_pod(&[[0u8; 0]], &mut Vec::new()); // zero-sized: refused
//! ```
//!
//! # Why this is sound for `Pod` records
//!
//! 1. *Encoding reads only initialized memory:* a `Pod` value is integers with no padding (the
//!    compile-time check), so all of its `size_of::<T>()` bytes are initialized, and it owns no
//!    memory, so abomonation writes exactly those bytes and nothing else.
//! 2. *Decoding makes only valid, aligned values, and hands out no reference into the input:*
//!    the input's bytes (at any alignment) are copied into the buffer of a new `Vec<T>`, which
//!    is aligned for `T`; abomonation decodes each record in place there, at element
//!    boundaries; every bit pattern of a `Pod` type is a valid value, so any input is; the
//!    references abomonation returns are dropped at once and the caller gets the owned `Vec<T>`.
//! 3. *Lengths are checked before any of this:* the header, the record width and a body that
//!    is a whole number of records, each refused with a typed [`PodError`].
//!
//! # Format and architecture
//!
//! One tag byte ([`ARCH_TAG`]: the byte order of the encoding machine), the record width in
//! bytes (`u32`, little-endian), then each record's memory, in order. The records are in the
//! machine's own byte order and in the field order the compiler chose, so the format is only
//! for processes of the same build of one program on the same architecture (dstream's model:
//! every process runs the same binary); a decoder refuses another byte order's tag, and
//! another width. It is not a storage format: a checkpoint must outlive the binary.

use std::mem::size_of;

/// The tag byte of an encoding made on a little-endian machine.
pub const LITTLE_ENDIAN_TAG: u8 = b'L';
/// The tag byte of an encoding made on a big-endian machine.
pub const BIG_ENDIAN_TAG: u8 = b'B';
/// The tag byte this machine writes and accepts: its byte order.
pub const ARCH_TAG: u8 = if cfg!(target_endian = "little") { LITTLE_ENDIAN_TAG } else { BIG_ENDIAN_TAG };
/// The bytes before the records: the tag byte and the record width (`u32`, little-endian).
pub const HEADER_BYTES: usize = 5;

/// Bytes that are not an encoding of records of the expected type on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// Fewer bytes than the header.
    #[error("cannot decode {type_name} records: {len} bytes are shorter than the {HEADER_BYTES}-byte header")]
    Truncated {
        /// The record type expected.
        type_name: &'static str,
        /// The number of bytes offered.
        len: usize,
    },
    /// The bytes were encoded on a machine of another byte order (or are not this format).
    #[error("cannot decode {type_name} records: architecture tag {found:#04x}, this machine's is {expected:#04x}")]
    Architecture {
        /// The record type expected.
        type_name: &'static str,
        /// The tag byte found.
        found: u8,
        /// This machine's tag, [`ARCH_TAG`].
        expected: u8,
    },
    /// The records are of another width than the expected type's.
    #[error("cannot decode {type_name} records: they are {found} bytes wide, a {type_name} is {expected}")]
    Width {
        /// The record type expected.
        type_name: &'static str,
        /// The width in the header.
        found: u32,
        /// `size_of` the expected type.
        expected: usize,
    },
    /// The bytes after the header are not a whole number of records.
    #[error("cannot decode {type_name} records: {body} bytes after the header are not a multiple of {width}")]
    Length {
        /// The record type expected.
        type_name: &'static str,
        /// The number of bytes after the header.
        body: usize,
        /// `size_of` the expected type.
        width: usize,
    },
}

mod sealed {
    /// Implemented by the [`Pod`](super::Pod) types only, so no other crate can add one.
    pub trait Sealed {}

    /// The single-width integer types, the elements of the tuples that are `Pod`.
    pub trait Int: super::Pod {}
}

/// A record type whose memory is its value: integers only, no padding, no owned memory, every
/// bit pattern valid. Sealed; the module documentation lists the types and says why others
/// are not admitted.
pub trait Pod: sealed::Sealed + abomonation::Abomonation + Copy + Send + Sync + 'static {
    /// The sum of the sizes of the integers in a record. [`encode_pod`] and [`decode_pod`]
    /// check at compile time that it equals `size_of::<Self>()`: the record has no padding.
    const FIELD_BYTES: usize;
}

macro_rules! pod_ints {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl sealed::Int for $t {}
        impl Pod for $t {
            const FIELD_BYTES: usize = size_of::<$t>();
        }
    )*};
}

pod_ints!(u8, u16, u32, u64, i8, i16, i32, i64);

macro_rules! pod_tuples {
    ($(($($e:ident),+) = $n:literal;)*) => {$(
        impl<T: sealed::Int> sealed::Sealed for ($($e,)+) {}
        impl<T: sealed::Int> Pod for ($($e,)+) {
            const FIELD_BYTES: usize = $n * size_of::<T>();
        }
    )*};
}

pod_tuples! {
    (T, T) = 2;
    (T, T, T) = 3;
    (T, T, T, T) = 4;
}

impl<T: Pod, const N: usize> sealed::Sealed for [T; N] where [T; N]: abomonation::Abomonation {}

impl<T: Pod, const N: usize> Pod for [T; N]
where
    [T; N]: abomonation::Abomonation,
{
    const FIELD_BYTES: usize = N * T::FIELD_BYTES;
}

/// The compile-time checks on a record type, evaluated where `T` is used: no padding, not
/// zero-sized, a width that fits the header.
const fn checked_width<T: Pod>() -> usize {
    assert!(size_of::<T>() == T::FIELD_BYTES, "a Pod record has padding");
    assert!(size_of::<T>() > 0, "a Pod record is zero-sized");
    assert!(size_of::<T>() <= u32::MAX as usize, "a Pod record is wider than the header can say");
    size_of::<T>()
}

/// Appends the encoding of `records` to `out`: the header, then each record's memory through
/// abomonation's `encode`. Cannot fail.
pub fn encode_pod<T: Pod>(records: &[T], out: &mut Vec<u8>) {
    let width = const { checked_width::<T>() };
    // The records exist in memory, so their size is at most isize::MAX: the sum cannot overflow.
    out.reserve(HEADER_BYTES + std::mem::size_of_val(records));
    out.push(ARCH_TAG);
    // `checked_width` bounds the width by u32::MAX, so the cast is exact.
    out.extend_from_slice(&(width as u32).to_le_bytes());
    for record in records {
        // SAFETY: abomonation's `encode` reads the `size_of::<T>()` bytes of `record`, then
        // calls its `entomb`. A `Pod` record has no padding (`checked_width`), so every one of
        // those bytes is initialized, and it is integers only, so `entomb` (abomonation's
        // implementation for integers and for tuples and arrays of them) writes nothing more.
        let written = unsafe { abomonation::encode(record, out) };
        // Writing into a `Vec<u8>` never fails: it grows, or the process aborts.
        debug_assert!(written.is_ok(), "a Vec<u8> refused a write");
    }
}

/// Decodes the records of an [`encode_pod`] encoding made on a machine of this byte order,
/// into an owned vector. `bytes` may have any alignment; the header, the width and the length
/// are checked first, and a mismatch is a typed [`PodError`].
pub fn decode_pod<T: Pod>(bytes: &[u8]) -> Result<Vec<T>, PodError> {
    let width = const { checked_width::<T>() };
    let type_name = std::any::type_name::<T>();
    let Some((&[tag, w0, w1, w2, w3], body)) = bytes.split_first_chunk::<HEADER_BYTES>() else {
        return Err(PodError::Truncated { type_name, len: bytes.len() });
    };
    if tag != ARCH_TAG {
        return Err(PodError::Architecture { type_name, found: tag, expected: ARCH_TAG });
    }
    let found = u32::from_le_bytes([w0, w1, w2, w3]);
    if usize::try_from(found) != Ok(width) {
        return Err(PodError::Width { type_name, found, expected: width });
    }
    if body.len() % width != 0 {
        return Err(PodError::Length { type_name, body: body.len(), width });
    }
    let count = body.len() / width;
    // The bytes of the `count` records (all of `body`, once checked): the copy below takes
    // its length from the vector's capacity, never from the input alone.
    let len = count * width;
    let mut records: Vec<T> = Vec::with_capacity(count);
    debug_assert!(records.as_ptr().is_aligned(), "a Vec's buffer is aligned for its elements");
    {
        let buffer = records.as_mut_ptr().cast::<u8>();
        // SAFETY: the vector's buffer has room for `count` records, `len` bytes, and cannot
        // overlap `body`, which existed before it; `body` has at least `len` bytes. Any
        // alignment of `body` is fine for a byte copy.
        unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), buffer, len) };
        // SAFETY: those `len` bytes of the buffer were just written, so they are initialized;
        // nothing else refers to the buffer while this slice lives.
        let slots = unsafe { std::slice::from_raw_parts_mut(buffer, len) };
        for slot in slots.chunks_exact_mut(width) {
            // SAFETY: abomonation's `decode` casts the slot's first `size_of::<T>()` bytes to a
            // `&mut T` and calls its `exhume`. The slot starts at an element boundary of a
            // `Vec<T>`'s buffer, so it is aligned for `T`; its `width == size_of::<T>()` bytes
            // are initialized, and every bit pattern of a `Pod` type is a valid value; `exhume`
            // of integers and of tuples and arrays of them reads and writes nothing. The
            // reference it returns is dropped at the end of this statement.
            let rest = unsafe { abomonation::decode::<T>(slot) }.map(|(_, rest)| rest.len());
            // `decode` refuses only fewer than `size_of::<T>()` bytes, and a slot has exactly
            // that many, all of them the record's.
            debug_assert_eq!(rest, Some(0), "abomonation refused a whole record");
        }
    }
    // SAFETY: the first `count` elements were initialized above (every byte written, every bit
    // pattern valid) and the capacity is at least `count`.
    unsafe { records.set_len(count) };
    Ok(records)
}

#[cfg(test)]
#[forbid(unsafe_code)]
mod tests;
