//! The codec comparison behind `dstream::codec`: postcard (the chosen format, measured through
//! `dstream::codec`, the path the engine uses) against bincode 1, bincode 2 and bitcode, on four
//! payloads: word counts, 100-byte lines, `u64` pairs and one `Message::Launch`.
//!
//! Each payload is a criterion group whose throughput is the payload's raw size (the bytes of
//! its fields at fixed width, without lengths or tags), so MB/s compare across formats. Before
//! measuring, every format's encoding is checked to round-trip and its size is printed to
//! stderr (`codec-size` lines). See BENCHMARKS.md for the figures and the command.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstream::{
    BlockId, JobId, Message, RddId, ShuffleId, SplitMix64, StageId, TaskDesc, TaskId, TaskInput, TaskKind, WorkerId,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Records in each of the three bulk payloads.
const RECORDS: usize = 10_000;
/// The seed of every payload generator.
const SEED: u64 = 42;

/// The formats compared.
#[derive(Clone, Copy, Debug)]
enum Codec {
    /// postcard through `dstream::codec`.
    Postcard,
    /// bincode 1.3.3, its default (fixed-width integer) options.
    Bincode1,
    /// bincode 2.0.1 through its serde layer, `config::standard()` (variable-width integers).
    Bincode2,
    /// bitcode 0.6.9 through its serde layer.
    Bitcode,
}

const CODECS: [Codec; 4] = [Codec::Postcard, Codec::Bincode1, Codec::Bincode2, Codec::Bitcode];

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard",
            Codec::Bincode1 => "bincode1",
            Codec::Bincode2 => "bincode2",
            Codec::Bitcode => "bitcode",
        }
    }

    fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Codec::Postcard => dstream::codec::encode(value).map_err(|e| e.to_string()),
            Codec::Bincode1 => bincode1::serialize(value).map_err(|e| e.to_string()),
            Codec::Bincode2 => {
                bincode2::serde::encode_to_vec(value, bincode2::config::standard()).map_err(|e| e.to_string())
            }
            Codec::Bitcode => bitcode::serialize(value).map_err(|e| e.to_string()),
        }
    }

    fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Codec::Postcard => dstream::codec::decode(bytes).map_err(|e| e.to_string()),
            Codec::Bincode1 => bincode1::deserialize(bytes).map_err(|e| e.to_string()),
            Codec::Bincode2 => bincode2::serde::decode_from_slice(bytes, bincode2::config::standard())
                .map(|(value, _)| value)
                .map_err(|e| e.to_string()),
            Codec::Bitcode => bitcode::deserialize(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// A lowercase word of 3 to 10 letters.
fn word(rng: &mut SplitMix64) -> String {
    let len = 3 + rng.below(8);
    (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect()
}

/// Payload 1: (word, count) pairs, counts below one million.
fn word_counts() -> Vec<(String, u64)> {
    let mut rng = SplitMix64::new(SEED);
    (0..RECORDS)
        .map(|_| {
            let w = word(&mut rng);
            (w, rng.below(1_000_000) as u64)
        })
        .collect()
}

/// Payload 2: lines of exactly 100 ASCII bytes, words separated by spaces.
fn lines() -> Vec<String> {
    let mut rng = SplitMix64::new(SEED);
    (0..RECORDS)
        .map(|_| {
            let mut line = String::with_capacity(110);
            while line.len() < 100 {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&word(&mut rng));
            }
            line.truncate(100);
            if line.ends_with(' ') {
                line.pop();
                line.push('x');
            }
            line
        })
        .collect()
}

/// Payload 3: (full-range 64-bit key, value below one million): mixed varint sizes.
fn pairs() -> Vec<(u64, u64)> {
    let mut rng = SplitMix64::new(SEED);
    (0..RECORDS).map(|_| (rng.next_u64(), rng.below(1_000_000) as u64)).collect()
}

/// Payload 4: one `Message::Launch` of a reduce task reading 16 shuffle buckets, each held by
/// 4 workers.
fn launch() -> Message {
    let mut rng = SplitMix64::new(SEED);
    let inputs = (0..16)
        .map(|map| TaskInput {
            block: BlockId::Shuffle {
                shuffle: ShuffleId::program(rng.below(100_000) as u32),
                map,
                reduce: rng.below(200) as u32,
            },
            locations: (0..4).map(|_| WorkerId(rng.below(1000) as u32)).collect(),
        })
        .collect();
    Message::Launch(TaskDesc {
        task: TaskId(123_456),
        attempt: 1,
        job: JobId(7),
        stage: StageId(3),
        kind: TaskKind::ShuffleMap { shuffle: ShuffleId::program(9) },
        rdd: RddId::program(42),
        partition: 17,
        inputs,
        isolation: None,
    })
}

fn raw_word_counts(v: &[(String, u64)]) -> u64 {
    v.iter().map(|(w, _)| w.len() as u64 + 8).sum()
}

fn raw_lines(v: &[String]) -> u64 {
    v.iter().map(|s| s.len() as u64).sum()
}

fn raw_pairs(v: &[(u64, u64)]) -> u64 {
    16 * v.len() as u64
}

fn raw_launch(m: &Message) -> u64 {
    let Message::Launch(desc) = m else { unreachable!("the message payload is a launch") };
    // task, attempt, job, stage, kind's shuffle, rdd, partition; each input: its block's
    // shuffle, map and reduce, then 4 bytes per location.
    let fixed = 8 + 4 + 8 + 8 + 8 + 8 + 4;
    let inputs: u64 = desc.inputs.iter().map(|i| 8 + 4 + 4 + 4 * i.locations.len() as u64).sum();
    fixed + inputs
}

fn bench_payload<T: Serialize + DeserializeOwned>(c: &mut Criterion, name: &str, value: &T, raw: u64) {
    let reference = dstream::codec::encode(value).expect("postcard encodes every payload");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(raw));
    for codec in CODECS {
        let bytes = codec.encode(value).unwrap_or_else(|e| panic!("{} cannot encode {name}: {e}", codec.name()));
        let back: T = codec.decode(&bytes).unwrap_or_else(|e| panic!("{} cannot decode {name}: {e}", codec.name()));
        // Compared through postcard, so payloads without `PartialEq` (Message) are checked too.
        assert_eq!(
            dstream::codec::encode(&back).expect("postcard encodes every payload"),
            reference,
            "{} does not round-trip {name}",
            codec.name()
        );
        eprintln!("codec-size payload={name} codec={} raw={raw} encoded={}", codec.name(), bytes.len());

        group.bench_function(format!("encode/{}", codec.name()), |b| {
            b.iter(|| codec.encode(black_box(value)).expect("encodes"));
        });
        group.bench_function(format!("decode/{}", codec.name()), |b| {
            b.iter(|| codec.decode::<T>(black_box(&bytes)).expect("decodes"));
        });
    }
    group.finish();
}

fn codecs(c: &mut Criterion) {
    let wc = word_counts();
    bench_payload(c, "word_counts", &wc, raw_word_counts(&wc));
    let ln = lines();
    bench_payload(c, "lines", &ln, raw_lines(&ln));
    let pr = pairs();
    bench_payload(c, "pairs", &pr, raw_pairs(&pr));
    let msg = launch();
    bench_payload(c, "msg", &msg, raw_launch(&msg));
}

criterion_group!(benches, codecs);
criterion_main!(benches);
