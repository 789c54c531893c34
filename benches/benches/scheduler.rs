//! The driver's task throughput on the stepping harness (`dstream::StepCluster`): jobs of 1, 16
//! and 256 no-op tasks (`parallelize` of empty partitions, then `count`) on 1 and 4 workers,
//! with every message through the codec (`wire(true)`, the harness's default, as between
//! processes) and without (`wire(false)`).
//!
//! One iteration is one whole job: submit, stage planning, one launch per partition, each task
//! run inline, its result reported and the job's results handed back. Everything runs on the
//! calling thread, so the time is the cost of the driver and worker state machines and the
//! harness's delivery per task, with no thread hand-off. Throughput is tasks (partitions).
//! The harness's trace grows by a few steps per task for the whole run.
//!
//! Run: `cargo bench -p dstream-benches --bench scheduler -- --warm-up-time 1 --measurement-time 3 --noplot`.
//! See BENCHMARKS.md for the figures.
#![forbid(unsafe_code)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstream::StepCluster;

/// Tasks per job.
const PARTITIONS: [usize; 3] = [1, 16, 256];
/// The cluster sizes.
const WORKERS: [u32; 2] = [1, 4];

fn scheduler(c: &mut Criterion) {
    for wire in [true, false] {
        let mut group = c.benchmark_group(if wire { "scheduler_wire" } else { "scheduler_local" });
        for workers in WORKERS {
            // The seed picks the order of delivery among the ready messages and tasks.
            let cluster = StepCluster::builder().workers(workers).seed(42).wire(wire).build();
            for partitions in PARTITIONS {
                let empty = cluster.context().parallelize(Vec::<u8>::new(), partitions).expect("partitions");
                assert_eq!(empty.count().expect("runs"), 0);
                group.throughput(Throughput::Elements(partitions as u64));
                group.bench_function(format!("w{workers}_t{partitions}"), |b| {
                    b.iter(|| black_box(&empty).count().expect("runs"));
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
