//! The opt-in pod codec (`dstream_tcp::pod`: abomonation, flagged unsound by RUSTSEC-2021-0120,
//! behind dstream-tcp's `pod-codec` feature) against postcard (`dstream::codec::encode_into` and
//! `decode`, the engine's codec) and a safe fixed-width little-endian codec written here
//! (`to_le_bytes` / `from_le_bytes` in a loop, no unsafe code), the baseline that says what the
//! unsafe code buys.
//!
//! Two payloads of 1,000,000 records each (`dstream::SplitMix64`, seed 42): `pod_pairs`,
//! `(u64, u64)` of a full-range key and a value below one million (mixed varint sizes for
//! postcard), and `pod_u32s`, full-range `u32`s. Every codec encodes the whole payload into a
//! buffer it reuses and decodes it into a new `Vec`. Each payload is a criterion group whose
//! throughput is its raw size (16 or 4 bytes a record), so MB/s compare across codecs. Before
//! measuring, every codec's encoding is checked to round-trip, the pod and safe encodings to
//! hold the same record bytes on a little-endian machine, and each size is printed to stderr
//! (`codec-pod-size` lines).
//!
//! Needs the `pod` feature (the bench is skipped without it):
//! `cargo bench -p dstream-benches --features pod --bench codec_pod -- --warm-up-time 1 --measurement-time 3 --noplot`.
//! See BENCHMARKS.md.
#![forbid(unsafe_code)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstream::SplitMix64;
use dstream_tcp::pod::{decode_pod, encode_pod, Pod, HEADER_BYTES};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Records in each payload.
const RECORDS: usize = 1_000_000;
/// The seed of both payload generators.
const SEED: u64 = 42;

/// A record of the safe fixed-width codec: its fields' little-endian bytes, in order.
trait FixedLe: Copy {
    /// Bytes per record.
    const WIDTH: usize;
    /// Appends the record's bytes to `out`.
    fn put(self, out: &mut Vec<u8>);
    /// The record in `bytes`, exactly `WIDTH` of them.
    fn get(bytes: &[u8]) -> Self;
}

impl FixedLe for u32 {
    const WIDTH: usize = 4;

    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn get(bytes: &[u8]) -> Self {
        u32::from_le_bytes(bytes.try_into().expect("a chunk of 4 bytes"))
    }
}

impl FixedLe for (u64, u64) {
    const WIDTH: usize = 16;

    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
    }

    fn get(bytes: &[u8]) -> Self {
        let (a, b) = bytes.split_at(8);
        (
            u64::from_le_bytes(a.try_into().expect("a chunk of 16 bytes")),
            u64::from_le_bytes(b.try_into().expect("a chunk of 16 bytes")),
        )
    }
}

/// Appends the safe fixed-width encoding of `records` to `out`.
fn encode_le<T: FixedLe>(records: &[T], out: &mut Vec<u8>) {
    out.reserve(records.len() * T::WIDTH);
    for &record in records {
        record.put(out);
    }
}

/// Decodes the safe fixed-width encoding; `None` when `bytes` are not whole records.
fn decode_le<T: FixedLe>(bytes: &[u8]) -> Option<Vec<T>> {
    if bytes.len() % T::WIDTH != 0 {
        return None;
    }
    Some(bytes.chunks_exact(T::WIDTH).map(T::get).collect())
}

/// The codecs compared.
#[derive(Clone, Copy, Debug)]
enum Codec {
    /// postcard through `dstream::codec`.
    Postcard,
    /// abomonation through `dstream_tcp::pod`.
    Pod,
    /// The safe fixed-width little-endian codec above.
    SafeLe,
}

const CODECS: [Codec; 3] = [Codec::Postcard, Codec::Pod, Codec::SafeLe];

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard",
            Codec::Pod => "pod",
            Codec::SafeLe => "safe_le",
        }
    }

    /// Replaces `out`'s contents with the encoding of `records`.
    fn encode<T: Pod + FixedLe + Serialize>(self, records: &[T], out: &mut Vec<u8>) {
        out.clear();
        match self {
            Codec::Postcard => dstream::codec::encode_into(records, out).expect("postcard encodes integers"),
            Codec::Pod => encode_pod(records, out),
            Codec::SafeLe => encode_le(records, out),
        }
    }

    fn decode<T: Pod + FixedLe + DeserializeOwned>(self, bytes: &[u8]) -> Vec<T> {
        match self {
            Codec::Postcard => dstream::codec::decode(bytes).expect("postcard decodes its encoding"),
            Codec::Pod => decode_pod(bytes).expect("pod decodes its encoding"),
            Codec::SafeLe => decode_le(bytes).expect("whole records"),
        }
    }
}

/// Payload 1: (full-range 64-bit key, value below one million).
fn pairs() -> Vec<(u64, u64)> {
    let mut rng = SplitMix64::new(SEED);
    (0..RECORDS).map(|_| (rng.next_u64(), rng.below(1_000_000) as u64)).collect()
}

/// Payload 2: full-range 32-bit integers.
fn u32s() -> Vec<u32> {
    let mut rng = SplitMix64::new(SEED);
    // The low half of a 64-bit draw: the truncation is the point.
    (0..RECORDS).map(|_| rng.next_u64() as u32).collect()
}

fn bench_payload<T>(c: &mut Criterion, name: &str, records: &[T])
where
    T: Pod + FixedLe + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let raw = std::mem::size_of_val(records);
    let mut encodings = Vec::new();
    for codec in CODECS {
        let mut bytes = Vec::new();
        codec.encode(records, &mut bytes);
        assert!(codec.decode::<T>(&bytes) == records, "{} does not round-trip {name}", codec.name());
        eprintln!("codec-pod-size payload={name} codec={} raw={raw} encoded={}", codec.name(), bytes.len());
        encodings.push(bytes);
    }
    if cfg!(target_endian = "little") {
        assert!(encodings[1][HEADER_BYTES..] == encodings[2][..], "pod and safe_le hold the same record bytes");
    }

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(raw as u64));
    for (codec, bytes) in CODECS.into_iter().zip(&encodings) {
        let mut out = Vec::with_capacity(bytes.len());
        group.bench_function(format!("encode/{}", codec.name()), |b| {
            b.iter(|| {
                codec.encode(black_box(records), &mut out);
                black_box(out.len())
            });
        });
        group.bench_function(format!("decode/{}", codec.name()), |b| {
            b.iter(|| codec.decode::<T>(black_box(bytes)));
        });
    }
    group.finish();
}

fn codecs(c: &mut Criterion) {
    bench_payload(c, "pod_pairs", &pairs());
    bench_payload(c, "pod_u32s", &u32s());
}

criterion_group!(benches, codecs);
criterion_main!(benches);
