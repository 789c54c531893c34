//! Eviction: a persisted dataset larger than the workers' block stores (each store still larger
//! than one partition) keeps giving the right answer; evicted partitions are recomputed from
//! lineage, including by chains that read the dataset twice: a union with itself, a join of two
//! datasets derived from it, and (in wire mode, where shuffle buckets are sized by their
//! encoding) a join of the dataset with itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dstream::{Rdd, StepCluster};

use common::{groups, WORKERS};

/// 400 records (a key and a 64-character string) in 8 partitions. In wire mode cached blocks are
/// stored encoded, about 3,300 bytes per partition and 26,400 in all; with shared pointers they
/// are sized by estimate, about 4,900 bytes per partition.
const RECORDS: u32 = 400;
const PARTITIONS: usize = 8;
const PARTITION_BYTES: u64 = 3_300;
/// Room for two or three partitions, with room left for the pinned shuffle buckets of one join.
const LIMIT: u64 = 10_000;

type Record = (u32, String);

fn record(i: u32) -> Record {
    (i % 50, format!("{i:064}"))
}

fn expected() -> Vec<Record> {
    (0..RECORDS).map(record).collect()
}

/// A cluster whose block stores cannot hold the whole persisted dataset, and the dataset, which
/// counts how many times its records are computed.
fn setup(workers: u32, seed: u64, wire: bool) -> (StepCluster, Rdd<Record>, Arc<AtomicUsize>) {
    let cluster = StepCluster::builder().workers(workers).seed(seed).wire(wire).block_store_bytes_max(LIMIT).build();
    let computed = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&computed);
    let persisted = cluster
        .context()
        .parallelize((0..RECORDS).collect(), PARTITIONS)
        .unwrap()
        .map(move |i| {
            c.fetch_add(1, Ordering::SeqCst);
            record(i)
        })
        .persist();
    (cluster, persisted, computed)
}

#[test]
fn the_limit_is_between_one_partition_and_the_whole_dataset() {
    // The sizing the other tests rely on, measured with an unbounded store.
    let cluster = StepCluster::builder().workers(1).build();
    let p = cluster.context().parallelize(expected(), PARTITIONS).unwrap().persist();
    assert_eq!(p.count().unwrap(), u64::from(RECORDS));
    let total = cluster.stored_bytes()[0];
    assert!(total > 2 * LIMIT, "the dataset takes {total} bytes");
    assert!(total / PARTITIONS as u64 >= PARTITION_BYTES - 500, "{total}");
    assert!(total / (PARTITIONS as u64) < LIMIT / 2, "{total}");
}

#[test]
fn repeated_actions_on_an_evicted_dataset() {
    let want = expected();
    for workers in WORKERS {
        for seed in [0, 11] {
            for wire in [true, false] {
                let at = format!("{workers} workers, seed {seed}, wire {wire}");
                let (cluster, p, computed) = setup(workers, seed, wire);
                for round in 0..3 {
                    assert_eq!(p.collect().unwrap(), want, "{at}, round {round}");
                    assert_eq!(p.count().unwrap(), u64::from(RECORDS), "{at}, round {round}");
                    let stored = cluster.stored_bytes();
                    assert!(stored.iter().all(|b| *b <= LIMIT), "{at}: {stored:?}");
                }
                if workers <= 2 {
                    // Some worker holds at least 4 partitions' worth: more than its store.
                    assert!(computed.load(Ordering::SeqCst) > RECORDS as usize, "{at}: nothing was evicted");
                }
            }
        }
    }
}

#[test]
fn a_chain_reading_an_evicted_dataset_twice() {
    let want = expected();
    for workers in WORKERS {
        for seed in [3, 8] {
            for wire in [true, false] {
                let at = format!("{workers} workers, seed {seed}, wire {wire}");
                let (cluster, p, _) = setup(workers, seed, wire);
                assert_eq!(p.count().unwrap(), u64::from(RECORDS), "{at}");

                let twice = p.union(std::slice::from_ref(&p));
                assert_eq!(twice.collect().unwrap(), [want.clone(), want.clone()].concat(), "{at}");
                assert_eq!(twice.count().unwrap(), 2 * u64::from(RECORDS), "{at}");

                // A join of two datasets derived from the persisted one: each shuffle map task
                // reads a cached (or recomputed) partition.
                {
                    let lengths = p.map_values(|s| s.len() as u32);
                    let last = p.map_values(|s| s.as_bytes()[63]);
                    let mut joined = lengths.join(&last).collect().unwrap();
                    joined.sort();
                    let mut reference = Vec::new();
                    for (k, vs) in groups(&want) {
                        for a in &vs {
                            for b in &vs {
                                reference.push((k, (a.len() as u32, b.as_bytes()[63])));
                            }
                        }
                    }
                    reference.sort();
                    assert_eq!(joined, reference, "{at}");
                }

                assert_eq!(p.collect().unwrap(), want, "{at}: after the join");
                let stored = cluster.stored_bytes();
                assert!(stored.iter().all(|b| *b <= LIMIT), "{at}: {stored:?}");
            }
        }
    }
}

/// A chain of two persisted datasets that both exceed the stores: each task stores two blocks,
/// and storing the second may evict the first.
#[test]
fn two_persisted_datasets_in_one_chain() {
    let want = expected();
    for workers in [1, 2, 3] {
        for seed in [0, 9] {
            let at = format!("{workers} workers, seed {seed}");
            let (_cluster, p, _) = setup(workers, seed, true);
            let upper = p.map_values(|s| s.replace('0', "o")).persist();
            let reference: Vec<Record> = want.iter().map(|(k, s)| (*k, s.replace('0', "o"))).collect();
            for round in 0..3 {
                assert_eq!(upper.collect().unwrap(), reference, "{at}, round {round}");
                assert_eq!(p.collect().unwrap(), want, "{at}, round {round}");
            }
        }
    }
}

/// A self-join pins both sides' shuffle buckets, which cannot be evicted: the store must hold
/// them (about twice the dataset in wire mode) but not also every cached partition.
const SELF_JOIN_LIMIT: u64 = 58_800;

#[test]
fn a_self_join_of_an_evicted_dataset_in_wire_mode() {
    let records = expected();
    let mut reference = Vec::new();
    for (k, vs) in groups(&records) {
        for a in &vs {
            for b in &vs {
                reference.push((k, (a.clone(), b.clone())));
            }
        }
    }
    reference.sort();
    for seed in [0, 1, 2] {
        let at = format!("seed {seed}");
        let cluster = StepCluster::builder().workers(1).seed(seed).block_store_bytes_max(SELF_JOIN_LIMIT).build();
        let computed = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&computed);
        let p = cluster
            .context()
            .parallelize((0..RECORDS).collect(), PARTITIONS)
            .unwrap()
            .map(move |i| {
                c.fetch_add(1, Ordering::SeqCst);
                record(i)
            })
            .persist();
        assert_eq!(p.count().unwrap(), u64::from(RECORDS), "{at}");
        for round in 0..2 {
            let mut joined = p.join(&p).collect().unwrap();
            joined.sort();
            assert_eq!(joined, reference, "{at}, round {round}");
            assert_eq!(p.collect().unwrap(), records, "{at}, round {round}");
        }
        assert!(computed.load(Ordering::SeqCst) > RECORDS as usize, "{at}: nothing was evicted");
        let stored = cluster.stored_bytes();
        assert!(stored.iter().all(|b| *b <= SELF_JOIN_LIMIT), "{at}: {stored:?}");
    }
}
