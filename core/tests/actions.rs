//! Actions against sequential references: `collect, count, reduce, fold, take,
//! foreach_partition`, and datasets read by a `PartitionSource` (`Context::from_source`).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use dstream::{PartitionSource, Rdd};

use common::{check_action, check_table_shared_graph, flat, number_inputs, ordered, unordered, Case};

#[test]
fn collect_returns_records_in_partition_order() {
    check_action("collect", &number_inputs(), Rdd::collect, flat);
    check_action(
        "collect of map",
        &number_inputs(),
        |r| r.map(|x| x + 1).collect(),
        |p| flat(p).into_iter().map(|x| x + 1).collect(),
    );
}

#[test]
fn count() {
    check_action("count", &number_inputs(), Rdd::count, |p| flat(p).len() as u64);
    check_action(
        "count after filter",
        &number_inputs(),
        |r| r.filter(|x| x % 2 == 0).count(),
        |p| flat(p).iter().filter(|x| *x % 2 == 0).count() as u64,
    );
    check_action(
        "count after reduce_by_key",
        &number_inputs(),
        |r| r.map(|x| (x % 10, 1u32)).reduce_by_key(|a, b| a + b).count(),
        |p| {
            let keys: std::collections::BTreeSet<u64> = flat(p).iter().map(|x| x % 10).collect();
            keys.len() as u64
        },
    );
}

#[test]
fn reduce() {
    let inputs: Vec<Vec<u64>> = number_inputs().into_iter().filter(|i| !i.is_empty()).collect();
    let sum = |p: &[Vec<u64>]| flat(p).iter().sum::<u64>();
    check_action("reduce(+)", &inputs, |r| r.reduce(|a, b| a + b), sum);
    check_action("reduce(max)", &inputs, |r| r.reduce(u64::max), |p| flat(p).into_iter().max().unwrap());
    check_action("reduce(min)", &inputs, |r| r.reduce(u64::min), |p| flat(p).into_iter().min().unwrap());
    check_action(
        "reduce of a filter leaving some partitions empty",
        &[(0..40).collect()],
        |r| r.filter(|x| *x >= 35).reduce(|a, b| a + b),
        |_| 35 + 36 + 37 + 38 + 39,
    );
}

#[test]
fn fold() {
    let inputs = number_inputs();
    check_action("fold(0, +)", &inputs, |r| r.fold(0, |a, b| a + b), |p| flat(p).iter().sum::<u64>());
    check_action(
        "fold(1, wrapping *)",
        &inputs,
        |r| r.map(|x| x | 1).fold(1, u64::wrapping_mul),
        |p| flat(p).iter().fold(1, |a, x| a.wrapping_mul(x | 1)),
    );
    check_action("fold(0, max)", &inputs, |r| r.fold(0, u64::max), |p| flat(p).into_iter().max().unwrap_or(0));
}

#[test]
fn take() {
    for n in [0, 1, 5, 24, 1_000, 10_000] {
        check_action("take", &number_inputs(), |r| r.take(n), |p| flat(p).into_iter().take(n).collect());
    }
    check_action(
        "take after filter",
        &number_inputs(),
        |r| r.filter(|x| x % 7 == 3).take(4),
        |p| flat(p).into_iter().filter(|x| x % 7 == 3).take(4).collect(),
    );
}

#[test]
fn foreach_partition_sees_every_partition_once() {
    check_action(
        "foreach_partition",
        &number_inputs(),
        |r| {
            let seen: Arc<Mutex<Vec<(usize, Vec<u64>)>>> = Arc::default();
            let s = Arc::clone(&seen);
            r.map(|x| x * 2).foreach_partition(move |split, xs| s.lock().unwrap().push((split, xs)))?;
            let mut seen = seen.lock().unwrap().clone();
            seen.sort_by_key(|(split, _)| *split);
            Ok(seen)
        },
        |p| p.iter().enumerate().map(|(i, xs)| (i, xs.iter().map(|x| x * 2).collect())).collect(),
    );
}

/// A deterministic source: partition `s` holds `len(s)` records derived from `s`.
#[derive(Clone)]
struct Numbers {
    partitions: usize,
}

impl Numbers {
    fn partition(split: usize) -> Vec<u64> {
        let len = (split * 37) % 11 + split;
        (0..len as u64).map(|i| split as u64 * 1_000 + i * i).collect()
    }

    fn all(&self) -> Vec<Vec<u64>> {
        (0..self.partitions).map(Numbers::partition).collect()
    }
}

impl PartitionSource<u64> for Numbers {
    fn partitions(&self) -> usize {
        self.partitions
    }
    fn read(&self, split: usize) -> Result<Vec<u64>, String> {
        Ok(Numbers::partition(split))
    }
    fn describe(&self) -> String {
        format!("numbers({})", self.partitions)
    }
}

#[test]
fn from_source_reads_partitions_on_the_workers() {
    for partitions in [1, 3, 8, 20] {
        let source = Numbers { partitions };
        let expected = source.all();
        let mut first: Option<Vec<u8>> = None;
        for (workers, seed) in common::configs() {
            let at = format!("{partitions} source partitions, {workers} workers, seed {seed}");
            let cluster = common::cluster(workers, seed);
            let rdd = cluster.context().from_source(source.clone()).unwrap();
            assert_eq!(rdd.num_partitions(), partitions, "{at}");
            assert_eq!(rdd.glom().collect().unwrap(), expected, "{at}");
            assert_eq!(rdd.collect().unwrap(), flat(&expected), "{at}");
            let n: usize = expected.iter().map(Vec::len).sum();
            assert_eq!(rdd.count().unwrap(), n as u64, "{at}");
            let by_last_digit = rdd.map(|x| (x % 10, x)).reduce_by_key(|a, b| a + b).collect().unwrap();
            let raw = common::bytes(&by_last_digit);
            assert!(first.get_or_insert(raw.clone()) == &raw, "{at}: raw output differs");
            let mut got = by_last_digit;
            got.sort();
            let mut want = std::collections::BTreeMap::new();
            for x in flat(&expected) {
                *want.entry(x % 10).or_insert(0) += x;
            }
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{at}");
        }
    }
}

/// Sources go through the same check tables as parallelized data: here a source that
/// re-reads a parallelized dataset's partitions, under the usual transformations.
#[test]
fn from_source_under_transformations() {
    struct Slices(Vec<Vec<u64>>);
    impl PartitionSource<u64> for Slices {
        fn partitions(&self) -> usize {
            self.0.len()
        }
        fn read(&self, split: usize) -> Result<Vec<u64>, String> {
            Ok(self.0[split].clone())
        }
        fn describe(&self) -> String {
            "slices".into()
        }
    }
    fn reread(r: &Rdd<u64>) -> Result<Rdd<u64>, dstream::Error> {
        // The same partitions as `r`, but read through a source.
        let parts = r.glom().collect()?;
        r.context().from_source(Slices(parts))
    }
    let table: Vec<Case<u64, u64>> = vec![
        ordered("source", reread, flat),
        ordered(
            "source -> filter -> map",
            |r| Ok(reread(r)?.filter(|x| x % 2 == 0).map(|x| x / 2)),
            |p| flat(p).into_iter().filter(|x| x % 2 == 0).map(|x| x / 2).collect(),
        ),
        unordered(
            "source -> distinct",
            |r| Ok(reread(r)?.map(|x| x % 13).distinct()),
            |p| {
                let set: std::collections::BTreeSet<u64> = flat(p).into_iter().map(|x| x % 13).collect();
                set.into_iter().collect()
            },
        ),
    ];
    // `reread` runs a job while the program is built: workers building it themselves cannot.
    check_table_shared_graph(&number_inputs(), &table);
}
