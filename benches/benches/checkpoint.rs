//! Checkpoint write and read throughput and compression ratio, at zstd levels 1, 3 and 9, on
//! a word-count state partition, against `Memory` and `LocalFs` (a temporary directory).
//!
//! The partition is 100,000 `(String, u64)` pairs: the words of the benchmark generator's
//! vocabulary (`dstream::generator`), each with a Zipf-like count, in a seeded shuffled order
//! (a state partition is in hash order, not in rank order). Throughput is the body's encoded
//! size (the records as `dstream::codec` encodes them, with their length prefixes), so MB/s
//! is state per second. Before measuring, each level's file is checked to round-trip and its
//! sizes are printed to stderr (`checkpoint-size` lines). See BENCHMARKS.md for the figures
//! and the command.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstream::generator::Generator;
use dstream::{SplitMix64, Storage, StreamId, Time};
use dstream_storage::checkpoint::{self, CheckpointHeader};
use dstream_storage::{LocalFs, Memory};

/// The levels compared.
const LEVELS: [i32; 3] = [1, 3, 9];
/// The seed of the partition's counts and order.
const SEED: u64 = 42;
const FINGERPRINT: u64 = 0xbe4c_0000_0000_0001;

/// The word-count state partition: every vocabulary word with a Zipf-like count.
fn word_counts() -> Vec<(String, u64)> {
    let generator = Generator::new(SEED);
    let mut rng = SplitMix64::new(SEED);
    let mut state: Vec<(String, u64)> = generator
        .vocabulary()
        .iter()
        .enumerate()
        .map(|(rank, word)| (word.to_string(), 10_000_000 / (rank as u64 + 1) + rng.below(16) as u64))
        .collect();
    for i in (1..state.len()).rev() {
        state.swap(i, rng.below(i + 1));
    }
    state
}

fn header() -> CheckpointHeader {
    CheckpointHeader {
        fingerprint: FINGERPRINT,
        stream: StreamId(1),
        batch_time: Time::from_millis(10_000),
        partition: 0,
    }
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench_store(c: &mut Criterion, backend: &str, store: &dyn Storage, state: &[(String, u64)]) {
    let mut group = c.benchmark_group(format!("checkpoint_{backend}"));
    group.sample_size(10);
    for level in LEVELS {
        let name = format!("ckpt/l{level}");
        let stats = checkpoint::write_checkpoint(store, &name, &header(), state, level).expect("writes");
        let (h, back) = checkpoint::read_checkpoint::<(String, u64), _>(store, &name, FINGERPRINT).expect("reads");
        assert!(h == header() && back == state, "level {level} does not round-trip");
        eprintln!(
            "checkpoint-size backend={backend} level={level} records={} body={} file={}",
            stats.records, stats.body_bytes, stats.file_bytes
        );
        group.throughput(Throughput::Bytes(stats.body_bytes));
        group.bench_function(format!("write_l{level}"), |b| {
            b.iter(|| checkpoint::write_checkpoint(store, &name, &header(), black_box(state), level).expect("writes"));
        });
        group.bench_function(format!("read_l{level}"), |b| {
            b.iter(|| {
                checkpoint::read_checkpoint::<(String, u64), _>(store, black_box(&name), FINGERPRINT).expect("reads")
            });
        });
    }
    group.finish();
}

fn checkpoints(c: &mut Criterion) {
    let state = word_counts();
    bench_store(c, "memory", &Memory::new(), &state);
    let dir = TempDir(std::env::temp_dir().join(format!("dstream-bench-checkpoint-{}", std::process::id())));
    let fs = LocalFs::new(&dir.0).expect("creates the temporary directory");
    bench_store(c, "localfs", &fs, &state);
}

criterion_group!(benches, checkpoints);
criterion_main!(benches);
