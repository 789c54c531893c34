//! Word count through the engine's `reduce_by_key` (map-side combine before the shuffle) on a
//! `dstream_inproc::LocalCluster` of 1 and 2 workers, over 2 and 8 partitions, beside a
//! hand-written count of the same words in an `FxHashMap` (`dstream::hash::FixedMap`), in the
//! same run.
//!
//! The input is the first 20,000 records of the standard pool
//! (`dstream::generator::RecordPool::standard()`: 100-byte lines of Zipf words, seed 42). The
//! engine's job is `parallelize(records, N)`, `flat_map` (each record's words as owned
//! strings), `map` to `(word, 1)`, `reduce_by_key(+)` into N partitions, `count` (the distinct
//! words): N map tasks that split and combine, then N reduce tasks that merge the combined
//! buckets. Each iteration builds the job's datasets afresh, so the map stage runs every time.
//! Each worker has one task slot, and the task pool has one thread per worker, so the
//! 1-worker cluster uses one core and the 2-worker cluster two. The hand-written loops run on
//! one thread: `loop` allocates a key only for a word it has not seen (the tightest loop), and
//! `loop_owned` allocates every word as the engine's records are (`entry(word.to_owned())`).
//! Throughput is the words counted; the distinct words are checked to agree and printed to
//! stderr (`reduce-size` lines).
//!
//! Run: `cargo bench -p dstream-benches --bench reduce_by_key -- --warm-up-time 1 --measurement-time 3 --noplot`.
//! See BENCHMARKS.md for the figures.
#![forbid(unsafe_code)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstream::generator::{Record, RecordPool};
use dstream::hash::FixedMap;
use dstream::{Rdd, Time};
use dstream_inproc::LocalCluster;

/// Input records (the first ones of the standard pool).
const RECORDS: usize = 20_000;
/// The partitions of the input and of the counts.
const PARTITIONS: [usize; 2] = [2, 8];
/// The cluster sizes.
const WORKERS: [u32; 2] = [1, 2];

fn records() -> Vec<Record> {
    let pool = RecordPool::standard();
    (0..RECORDS as u64).map(|i| pool.record(i, Time::ZERO)).collect()
}

/// The tightest hand-written count: a key is allocated only for a new word.
fn hand_count(records: &[Record]) -> FixedMap<String, u64> {
    let mut counts: FixedMap<String, u64> = FixedMap::default();
    for w in records.iter().flat_map(Record::words) {
        match counts.get_mut(w) {
            Some(n) => *n += 1,
            None => {
                counts.insert(w.to_owned(), 1);
            }
        }
    }
    counts
}

/// The hand-written count with every word allocated, as the engine's records are.
fn hand_count_owned(records: &[Record]) -> FixedMap<String, u64> {
    let mut counts: FixedMap<String, u64> = FixedMap::default();
    for w in records.iter().flat_map(Record::words) {
        *counts.entry(w.to_owned()).or_insert(0) += 1;
    }
    counts
}

fn word_count(input: &Rdd<Record>) -> Rdd<(String, u64)> {
    input
        .flat_map(|r: Record| r.words().map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
}

fn reduce_by_key(c: &mut Criterion) {
    let records = records();
    let expected = hand_count(&records);
    assert!(hand_count_owned(&records) == expected, "the two loops disagree");
    let words: u64 = expected.values().sum();
    let distinct = expected.len() as u64;
    eprintln!("reduce-size records={RECORDS} words={words} distinct={distinct}");

    let mut group = c.benchmark_group("reduce_by_key");
    group.throughput(Throughput::Elements(words));
    group.sample_size(30);
    group.bench_function("loop", |b| b.iter(|| hand_count(black_box(&records)).len()));
    group.bench_function("loop_owned", |b| b.iter(|| hand_count_owned(black_box(&records)).len()));
    for workers in WORKERS {
        let cluster = LocalCluster::builder()
            .workers(workers)
            .threads(workers as usize)
            .slots(1)
            .build()
            .expect("starts the cluster");
        for partitions in PARTITIONS {
            let input = cluster.context().parallelize(records.clone(), partitions).expect("partitions");
            let mut got = word_count(&input).collect().expect("runs");
            got.sort();
            let mut want: Vec<(String, u64)> = expected.clone().into_iter().collect();
            want.sort();
            assert!(got == want, "{workers} workers, {partitions} partitions: the counts differ from the loop's");
            // A fresh dataset each iteration: the engine keeps a shuffle's map outputs for as
            // long as its dataset lives, so counting the same dataset again would skip the map
            // stage (splitting, combining, writing the buckets).
            group.bench_function(format!("w{workers}_p{partitions}"), |b| {
                b.iter(|| word_count(black_box(&input)).count().expect("runs"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, reduce_by_key);
criterion_main!(benches);
