//! Narrow transformations (and repartition, persist and cache), table-driven against sequential
//! references: `map, flat_map, filter, map_partitions, glom, union, repartition, persist, cache`.
//! Their output order is defined (partition order, then record order), so results are compared
//! exactly.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{check_table, flat, number_inputs, ordered, split, Case, PARTITIONS};

/// The reference of `repartition(n)`: record `i` of input partition `s` goes to partition
/// `(s + i) % n`, and each output partition holds its records in input-partition order.
fn repartitioned<T: Clone>(parts: &[Vec<T>], n: usize) -> Vec<Vec<T>> {
    let mut out = vec![Vec::new(); n];
    for (s, xs) in parts.iter().enumerate() {
        for (i, x) in xs.iter().enumerate() {
            out[(s + i) % n].push(x.clone());
        }
    }
    out
}

#[test]
fn number_to_number_transformations() {
    let table: Vec<Case<u64, u64>> = vec![
        ordered("map", |r| Ok(r.map(|x| x * 3 + 1)), |p| flat(p).into_iter().map(|x| x * 3 + 1).collect()),
        ordered("filter", |r| Ok(r.filter(|x| x % 3 == 0)), |p| flat(p).into_iter().filter(|x| x % 3 == 0).collect()),
        ordered("filter everything out", |r| Ok(r.filter(|_| false)), |_| vec![]),
        ordered(
            "flat_map to 0..=2 records each",
            |r| Ok(r.flat_map(|x| vec![x; (x % 3) as usize])),
            |p| flat(p).into_iter().flat_map(|x| vec![x; (x % 3) as usize]).collect(),
        ),
        ordered(
            "flat_map to many records each (crosses chunks)",
            |r| Ok(r.flat_map(|x| (0..5).map(move |i| x * 10 + i))),
            |p| flat(p).into_iter().flat_map(|x| (0..5).map(move |i| x * 10 + i)).collect(),
        ),
        ordered(
            "map_partitions sees the partition index and its records in order",
            |r| {
                Ok(r.map_partitions(|split, xs: Vec<u64>| {
                    let sum: u64 = xs.iter().sum();
                    let first = xs.first().copied().unwrap_or(u64::MAX);
                    [split as u64, xs.len() as u64, sum, first]
                }))
            },
            |parts| {
                parts
                    .iter()
                    .enumerate()
                    .flat_map(|(split, xs)| {
                        let sum: u64 = xs.iter().sum();
                        let first = xs.first().copied().unwrap_or(u64::MAX);
                        [split as u64, xs.len() as u64, sum, first]
                    })
                    .collect()
            },
        ),
        ordered(
            "map_partitions_ref sees the same as map_partitions",
            |r| {
                Ok(r.map_partitions_ref(|split, xs: &[u64]| {
                    [split as u64, xs.len() as u64, xs.iter().sum(), xs.first().copied().unwrap_or(u64::MAX)]
                }))
            },
            |parts| {
                parts
                    .iter()
                    .enumerate()
                    .flat_map(|(split, xs)| {
                        [split as u64, xs.len() as u64, xs.iter().sum(), xs.first().copied().unwrap_or(u64::MAX)]
                    })
                    .collect()
            },
        ),
        ordered(
            "map_partitions_ref of a computed (not held) partition",
            |r| Ok(r.map(|x| x + 1).map_partitions_ref(|_, xs: &[u64]| xs.iter().rev().copied().collect::<Vec<_>>())),
            |parts| parts.iter().flat_map(|xs| xs.iter().rev().map(|x| x + 1).collect::<Vec<_>>()).collect(),
        ),
        ordered(
            "map_partitions emitting nothing for odd partitions",
            |r| {
                Ok(r.map_partitions(
                    |split, xs: Vec<u64>| {
                        if split % 2 == 1 {
                            Vec::new()
                        } else {
                            xs.into_iter().rev().collect()
                        }
                    },
                ))
            },
            |parts| {
                parts
                    .iter()
                    .enumerate()
                    .filter(|(split, _)| split % 2 == 0)
                    .flat_map(|(_, xs)| xs.iter().rev().copied())
                    .collect()
            },
        ),
        ordered(
            "map -> filter -> map is one pipelined pass",
            |r| Ok(r.map(|x| x + 1).filter(|x| x % 2 == 0).map(|x| x / 2)),
            |p| flat(p).into_iter().map(|x| x + 1).filter(|x| x % 2 == 0).map(|x| x / 2).collect(),
        ),
        ordered(
            "union with a derived dataset and a new one",
            |r| {
                let other = r.context().parallelize(vec![7, 8, 9], 2)?;
                Ok(r.union(&[r.map(|x| x + 1_000), other]))
            },
            |p| {
                let base = flat(p);
                let mut out = base.clone();
                out.extend(base.iter().map(|x| x + 1_000));
                out.extend([7, 8, 9]);
                out
            },
        ),
        ordered("union of nothing else", |r| Ok(r.union(&[])), flat),
        ordered("union of itself", |r| Ok(r.union(std::slice::from_ref(r))), |p| [flat(p), flat(p)].concat()),
        ordered("repartition(1)", |r| r.repartition(1), |p| repartitioned(p, 1).concat()),
        ordered("repartition(2)", |r| r.repartition(2), |p| repartitioned(p, 2).concat()),
        ordered(
            "repartition(5) then map",
            |r| Ok(r.repartition(5)?.map(|x| x ^ 1)),
            |p| repartitioned(p, 5).concat().into_iter().map(|x| x ^ 1).collect(),
        ),
        ordered("persist", |r| Ok(r.map(|x| x * 2).persist()), |p| flat(p).into_iter().map(|x| x * 2).collect()),
        ordered(
            "cache then filter",
            |r| Ok(r.cache().filter(|x| x % 2 == 1)),
            |p| flat(p).into_iter().filter(|x| x % 2 == 1).collect(),
        ),
        ordered(
            "persist then union with itself",
            |r| {
                let p = r.map(|x| x + 1).persist();
                Ok(p.union(std::slice::from_ref(&p)))
            },
            |p| {
                let once: Vec<u64> = flat(p).into_iter().map(|x| x + 1).collect();
                [once.clone(), once].concat()
            },
        ),
    ];
    check_table(&number_inputs(), &table);
}

#[test]
fn partition_shaped_transformations() {
    let table: Vec<Case<u64, Vec<u64>>> = vec![
        ordered("glom", |r| Ok(r.glom()), <[Vec<u64>]>::to_vec),
        ordered(
            "glom after filter keeps empty partitions",
            |r| Ok(r.filter(|x| x % 2 == 0).glom()),
            |p| p.iter().map(|xs| xs.iter().copied().filter(|x| x % 2 == 0).collect()).collect(),
        ),
        ordered("glom of repartition(4)", |r| Ok(r.repartition(4)?.glom()), |p| repartitioned(p, 4)),
        ordered(
            "glom of a union lists both inputs' partitions",
            |r| Ok(r.union(&[r.map(|x| x + 1)]).glom()),
            |p| {
                let mut out = p.to_vec();
                out.extend(p.iter().map(|xs| xs.iter().map(|x| x + 1).collect()));
                out
            },
        ),
        ordered("glom of persist", |r| Ok(r.persist().glom()), <[Vec<u64>]>::to_vec),
    ];
    check_table(&number_inputs(), &table);
}

#[test]
fn parallelize_splits_into_contiguous_slices() {
    let cluster = common::cluster(2, 0);
    let ctx = cluster.context();
    for n in [1, 2, 3, 5, 8, 13] {
        for len in [0usize, 1, 4, 7, 100] {
            let data: Vec<usize> = (0..len).collect();
            let rdd = ctx.parallelize(data.clone(), n).unwrap();
            assert_eq!(rdd.num_partitions(), n, "{len} records in {n}");
            assert_eq!(rdd.glom().collect().unwrap(), split(&data, n), "{len} in {n}");
        }
    }
}

#[test]
fn partition_counts() {
    let cluster = common::cluster(2, 0);
    let ctx = cluster.context();
    for p in PARTITIONS {
        let r = ctx.parallelize((0..50u64).collect(), p).unwrap();
        assert_eq!(r.map(|x| x + 1).num_partitions(), p);
        assert_eq!(r.filter(|_| true).num_partitions(), p);
        assert_eq!(r.flat_map(|x| [x]).num_partitions(), p);
        assert_eq!(r.glom().num_partitions(), p);
        assert_eq!(r.persist().num_partitions(), p);
        assert_eq!(r.union(&[r.clone(), r.clone()]).num_partitions(), 3 * p);
        for n in [1, 4, 9] {
            assert_eq!(r.repartition(n).unwrap().num_partitions(), n);
        }
    }
}

/// A record whose clones are counted.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Counted(u64, #[serde(skip)] Option<Arc<AtomicUsize>>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        if let Some(c) = &self.1 {
            c.fetch_add(1, Ordering::SeqCst);
        }
        Counted(self.0, self.1.clone())
    }
}

/// Readers of partitions held in memory (parallelized data, cached blocks, unions of them)
/// borrow them: a filter copies only the records that pass, `map_partitions_ref` none.
#[test]
fn held_partitions_are_borrowed_not_copied() {
    for (workers, seed) in common::configs() {
        let at = format!("{workers} workers, seed {seed}");
        let cluster = common::cluster(workers, seed);
        let ctx = cluster.context();
        let clones = Arc::new(AtomicUsize::new(0));
        let data: Vec<Counted> = (0..1000).map(|i| Counted(i, Some(Arc::clone(&clones)))).collect();
        let held = ctx.parallelize(data, 4).unwrap();
        let both = held.union(std::slice::from_ref(&held));
        assert_eq!(both.filter(|c| c.0 % 100 == 0).count().unwrap(), 20, "{at}");
        assert_eq!(clones.swap(0, Ordering::SeqCst), 20, "filter copied more than its output, {at}");
        let sums = both.map_partitions_ref(|_, xs: &[Counted]| [xs.iter().map(|c| c.0).sum::<u64>()]);
        assert_eq!(sums.collect().unwrap().iter().sum::<u64>(), 2 * 999 * 1000 / 2, "{at}");
        assert_eq!(clones.swap(0, Ordering::SeqCst), 0, "map_partitions_ref copied records, {at}");
    }
}

/// A persisted dataset is computed once: later actions read the cached partitions, on the
/// worker that holds them or fetched from it.
#[test]
fn persist_computes_each_record_once() {
    for (workers, seed) in common::configs() {
        for p in PARTITIONS {
            let at = format!("{p} partitions, {workers} workers, seed {seed}");
            let cluster = common::cluster(workers, seed);
            let calls = Arc::new(AtomicUsize::new(0));
            let c = Arc::clone(&calls);
            let input: Vec<u64> = (0..300).collect();
            let cached = cluster
                .context()
                .parallelize(input.clone(), p)
                .unwrap()
                .map(move |x| {
                    c.fetch_add(1, Ordering::SeqCst);
                    x * x
                })
                .cache();
            let expected: Vec<u64> = input.iter().map(|x| x * x).collect();
            assert_eq!(cached.collect().unwrap(), expected, "{at}");
            assert_eq!(cached.count().unwrap(), 300, "{at}");
            assert_eq!(cached.collect().unwrap(), expected, "{at}");
            let sum: u64 = expected.iter().sum();
            assert_eq!(cached.reduce(|a, b| a + b).unwrap(), sum, "{at}");
            assert_eq!(calls.load(Ordering::SeqCst), 300, "{at}: recomputed");
        }
    }
}
