//! The cost per record of a narrow pipeline through the engine: flat_map (split a record into
//! owned words) -> filter (keep the words of 6 letters or more) -> map (to a `(word, 1)` pair),
//! over one partition of the benchmark generator's records, with `count` as the action, beside
//! the same pipeline written as an iterator loop, in the same run.
//!
//! The input is the first 100,000 records of the standard pool
//! (`dstream::generator::RecordPool::standard()`: 100-byte lines of Zipf words, seed 42), in one
//! partition. The engine runs it on a `dstream_inproc::LocalCluster` of one worker with one task
//! slot and one pool thread, and on a `dstream::StepCluster` of one worker without the codec
//! (`wire(false)`, tasks inline on the calling thread). The per-record user work is identical
//! in every variant (the loop also allocates each word, then filters it), so the ratio of the
//! engine's time to the loop's is the framework's overhead. A second loop (`loop_chunked`)
//! materializes the words and pairs in chunks of 1,024, as the engine moves records between
//! operators, to separate the cost of holding a chunk of owned strings from the rest. The
//! words are split either by collecting each record's words into a `Vec` (`vec`, as the
//! examples do) or by an iterator that owns the record (`iter`, no `Vec`). Throughput is input
//! records; the number of pairs out is checked to agree and printed to stderr
//! (`pipeline-size` lines).
//!
//! Run: `cargo bench -p dstream-benches --bench pipeline -- --warm-up-time 1 --measurement-time 3 --noplot`.
//! See BENCHMARKS.md for the figures.
#![forbid(unsafe_code)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstream::generator::{Record, RecordPool};
use dstream::{Rdd, StepCluster, Time};
use dstream_inproc::LocalCluster;

/// Input records (the first ones of the standard pool).
const RECORDS: usize = 100_000;
/// Words shorter than this are filtered out.
const MIN_WORD: usize = 6;
/// Records per chunk between the engine's narrow operators (its `CHUNK_RECORDS`).
const CHUNK: usize = 1024;

/// The filter of the pipeline.
fn keep(w: &str) -> bool {
    w.len() >= MIN_WORD
}

/// The words of a record as owned strings, without collecting them: the iterator owns the
/// record (a `Copy` value of 112 bytes).
struct OwnedWords {
    record: Record,
    at: usize,
}

impl OwnedWords {
    fn new(record: Record) -> OwnedWords {
        OwnedWords { record, at: 0 }
    }
}

impl Iterator for OwnedWords {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let bytes = self.record.as_bytes();
        let start = self.at + bytes[self.at..].iter().position(|b| *b != b' ')?;
        let end = bytes[start..].iter().position(|b| *b == b' ').map_or(bytes.len(), |n| start + n);
        self.at = end;
        // Records are ASCII, so a word is always valid UTF-8.
        Some(std::str::from_utf8(&bytes[start..end]).unwrap_or_default().to_owned())
    }
}

fn records() -> Vec<Record> {
    let pool = RecordPool::standard();
    (0..RECORDS as u64).map(|i| pool.record(i, Time::ZERO)).collect()
}

/// The hand-written pipeline with the words and pairs materialized in chunks of [`CHUNK`], as
/// the engine moves records between operators: it separates the cost of holding a chunk of
/// owned strings from the rest of the framework's.
fn hand_chunked(records: &[Record]) -> u64 {
    let mut n = 0u64;
    let mut words: Vec<String> = Vec::with_capacity(2 * CHUNK);
    let mut pairs: Vec<(String, u64)> = Vec::with_capacity(2 * CHUNK);
    for r in records {
        words.extend(r.words().map(str::to_owned));
        if words.len() >= CHUNK {
            words.retain(|w| keep(w));
            pairs.extend(words.drain(..).map(|w| (w, 1u64)));
            black_box(&pairs);
            n += pairs.len() as u64;
            pairs.clear();
        }
    }
    words.retain(|w| keep(w));
    pairs.extend(words.drain(..).map(|w| (w, 1u64)));
    black_box(&pairs);
    n + pairs.len() as u64
}

/// The hand-written pipeline: the same steps as the engine's, as one iterator loop.
fn hand_loop(records: &[Record]) -> u64 {
    let mut n = 0u64;
    for pair in records.iter().flat_map(|r| r.words().map(str::to_owned)).filter(|w| keep(w)).map(|w| (w, 1u64)) {
        black_box(&pair);
        n += 1;
    }
    n
}

fn pipeline_vec(input: &Rdd<Record>) -> Rdd<(String, u64)> {
    input.flat_map(|r: Record| r.words().map(str::to_owned).collect::<Vec<_>>()).filter(|w| keep(w)).map(|w| (w, 1u64))
}

fn pipeline_iter(input: &Rdd<Record>) -> Rdd<(String, u64)> {
    input.flat_map(OwnedWords::new).filter(|w| keep(w)).map(|w| (w, 1u64))
}

fn pipelines(c: &mut Criterion) {
    let records = records();
    let expected = hand_loop(&records);
    assert_eq!(hand_chunked(&records), expected, "the chunked loop disagrees with the loop");
    let words: usize = records.iter().map(|r| r.words().count()).sum();
    eprintln!("pipeline-size records={RECORDS} words={words} pairs={expected}");

    let local = LocalCluster::builder().workers(1).threads(1).slots(1).build().expect("starts the cluster");
    let local_input = local.context().parallelize(records.clone(), 1).expect("one partition");
    let step = StepCluster::builder().workers(1).wire(false).build();
    let step_input = step.context().parallelize(records.clone(), 1).expect("one partition");
    let engines: [(&str, Rdd<(String, u64)>); 4] = [
        ("local_vec", pipeline_vec(&local_input)),
        ("local_iter", pipeline_iter(&local_input)),
        ("step_vec", pipeline_vec(&step_input)),
        ("step_iter", pipeline_iter(&step_input)),
    ];
    for (name, rdd) in &engines {
        assert_eq!(rdd.count().expect("runs"), expected, "{name} disagrees with the loop");
    }

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(RECORDS as u64));
    // About 0.1 s an iteration: 30 samples keep each benchmark near its measurement time.
    group.sample_size(30);
    group.bench_function("loop", |b| b.iter(|| hand_loop(black_box(&records))));
    group.bench_function("loop_chunked", |b| b.iter(|| hand_chunked(black_box(&records))));
    for (name, rdd) in &engines {
        group.bench_function(*name, |b| b.iter(|| black_box(rdd).count().expect("runs")));
    }
    group.finish();
}

criterion_group!(benches, pipelines);
criterion_main!(benches);
