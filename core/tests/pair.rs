//! Pair transformations, table-driven against sequential references: `map_values,
//! flat_map_values, reduce_by_key (and _with_partitions), distinct, group_by_key,
//! combine_by_key` (with and without map-side combine) and chains of them. Joins, cogroup and
//! sorting are in `join_sort.rs`.
//!
//! Where the order of keys depends on hashing, results are compared after sorting, and the raw
//! order is required to be identical for every worker count and seed. Values grouped under a
//! key keep their input order (that is documented), so sorting the groups by key still checks
//! the order of the values inside each group.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use dstream::hash::partition_of;
use dstream::Aggregator;

use common::{check_table, flat, groups, ordered, pair_inputs, unordered, Case, PARTITIONS};

type Pair = (u32, i64);

fn sums(records: &[Pair]) -> Vec<Pair> {
    groups(records).into_iter().map(|(k, vs)| (k, vs.iter().sum())).collect()
}

/// (sum, count) per key, as an aggregator: the example of Spark's `combineByKey`.
fn sum_count() -> Aggregator<i64, (i64, u32)> {
    Aggregator::new(
        |v| (v, 1),
        |c: &mut (i64, u32), v| {
            c.0 += v;
            c.1 += 1;
        },
        |c: &mut (i64, u32), o: (i64, u32)| {
            c.0 += o.0;
            c.1 += o.1;
        },
    )
}

/// The values of a key as a list: order-sensitive, so it checks that combining keeps the
/// input order (map partitions merged in order).
fn listing() -> Aggregator<i64, Vec<i64>> {
    Aggregator::new(|v| vec![v], |c: &mut Vec<i64>, v| c.push(v), |c: &mut Vec<i64>, mut o: Vec<i64>| c.append(&mut o))
}

#[test]
fn values_transformations_keep_order() {
    let table: Vec<Case<Pair, Pair>> = vec![
        ordered(
            "map_values",
            |r| Ok(r.map_values(|v| v * 2 - 1)),
            |p| flat(p).into_iter().map(|(k, v)| (k, v * 2 - 1)).collect(),
        ),
        ordered(
            "flat_map_values to 0..=2 values",
            |r| Ok(r.flat_map_values(|v: i64| (0..v.rem_euclid(3)).map(move |i| v + i))),
            |p| flat(p).into_iter().flat_map(|(k, v)| (0..v.rem_euclid(3)).map(move |i| (k, v + i))).collect(),
        ),
    ];
    check_table(&pair_inputs(), &table);
}

#[test]
fn reductions_by_key() {
    let table: Vec<Case<Pair, Pair>> = vec![
        unordered("reduce_by_key(+)", |r| Ok(r.reduce_by_key(|a, b| a + b)), |p| sums(&flat(p))),
        unordered(
            "reduce_by_key(max)",
            |r| Ok(r.reduce_by_key(i64::max)),
            |p| groups(&flat(p)).into_iter().map(|(k, vs)| (k, vs.into_iter().max().unwrap())).collect(),
        ),
        unordered(
            "map_values after reduce_by_key",
            |r| Ok(r.reduce_by_key(|a: i64, b| a + b).map_values(|v| -v)),
            |p| sums(&flat(p)).into_iter().map(|(k, v)| (k, -v)).collect(),
        ),
        unordered(
            "reduce_by_key_with_partitions(+, 1)",
            |r| r.reduce_by_key_with_partitions(|a, b| a + b, 1),
            |p| sums(&flat(p)),
        ),
        unordered(
            "reduce_by_key_with_partitions(+, 5)",
            |r| r.reduce_by_key_with_partitions(|a, b| a + b, 5),
            |p| sums(&flat(p)),
        ),
        unordered(
            "reduce_by_key twice (second one is co-partitioned, no shuffle)",
            |r| Ok(r.reduce_by_key(|a, b| a + b).reduce_by_key(|a, b| a * b).map_values(|v| v + 1)),
            |p| sums(&flat(p)).into_iter().map(|(k, v)| (k, v + 1)).collect(),
        ),
        unordered(
            "re-key then reduce_by_key",
            |r| Ok(r.map(|(k, v)| (k % 4, v)).reduce_by_key(|a, b| a + b)),
            |p| {
                let rekeyed: Vec<Pair> = flat(p).into_iter().map(|(k, v)| (k % 4, v)).collect();
                sums(&rekeyed)
            },
        ),
        unordered(
            "distinct",
            |r| Ok(r.distinct()),
            |p| {
                let set: BTreeSet<Pair> = flat(p).into_iter().collect();
                set.into_iter().collect()
            },
        ),
        unordered(
            "distinct keys",
            |r| Ok(r.map(|(k, _)| (k, 0)).distinct()),
            |p| {
                let set: BTreeSet<u32> = flat(p).into_iter().map(|(k, _)| k).collect();
                set.into_iter().map(|k| (k, 0)).collect()
            },
        ),
        unordered(
            "combine_by_key(sum, count) then average-ish, map-side combine",
            |r| Ok(r.combine_by_key(sum_count(), 4, true)?.map_values(|(s, n)| s * 1000 / i64::from(n))),
            |p| {
                groups(&flat(p))
                    .into_iter()
                    .map(|(k, vs)| (k, vs.iter().sum::<i64>() * 1000 / vs.len() as i64))
                    .collect()
            },
        ),
    ];
    check_table(&pair_inputs(), &table);
}

#[test]
fn groupings_by_key() {
    type Grouped = (u32, Vec<i64>);
    let by_key = |p: &[Vec<Pair>]| -> Vec<Grouped> { groups(&flat(p)).into_iter().collect() };
    let table: Vec<Case<Pair, Grouped>> = vec![
        unordered("group_by_key", |r| Ok(r.group_by_key()), by_key),
        unordered("group_by_key_with_partitions(1)", |r| r.group_by_key_with_partitions(1), by_key),
        unordered("group_by_key_with_partitions(6)", |r| r.group_by_key_with_partitions(6), by_key),
        unordered("combine_by_key(list, 1, map-side combine)", |r| r.combine_by_key(listing(), 1, true), by_key),
        unordered("combine_by_key(list, 5, map-side combine)", |r| r.combine_by_key(listing(), 5, true), by_key),
        unordered("combine_by_key(list, 5, no map-side combine)", |r| r.combine_by_key(listing(), 5, false), by_key),
        unordered(
            "group_by_key of a reduced dataset (co-partitioned)",
            |r| Ok(r.reduce_by_key(|a, b| a + b).group_by_key()),
            |p| sums(&flat(p)).into_iter().map(|(k, v)| (k, vec![v])).collect(),
        ),
        unordered(
            "group_by_key after repartition keeps repartitioned order",
            |r| Ok(r.repartition(3)?.group_by_key()),
            |p| {
                // repartition(3) moves record i of partition s to partition (s + i) % 3.
                let mut moved = vec![Vec::new(); 3];
                for (s, xs) in p.iter().enumerate() {
                    for (i, x) in xs.iter().enumerate() {
                        moved[(s + i) % 3].push(*x);
                    }
                }
                groups(&moved.concat()).into_iter().collect()
            },
        ),
    ];
    check_table(&pair_inputs(), &table);
}

#[test]
fn combine_by_key_with_and_without_map_side_combine() {
    type Combined = (u32, (i64, u32));
    let reference = |p: &[Vec<Pair>]| -> Vec<Combined> {
        groups(&flat(p)).into_iter().map(|(k, vs)| (k, (vs.iter().sum(), vs.len() as u32))).collect()
    };
    let table: Vec<Case<Pair, Combined>> = vec![
        unordered("combine_by_key(sum_count, 1, true)", |r| r.combine_by_key(sum_count(), 1, true), reference),
        unordered("combine_by_key(sum_count, 3, true)", |r| r.combine_by_key(sum_count(), 3, true), reference),
        unordered("combine_by_key(sum_count, 3, false)", |r| r.combine_by_key(sum_count(), 3, false), reference),
        unordered("combine_by_key(sum_count, 8, false)", |r| r.combine_by_key(sum_count(), 8, false), reference),
    ];
    check_table(&pair_inputs(), &table);
}

/// Hash-partitioned results put every key in `partition_of(key, n)`.
#[test]
fn reduce_by_key_places_keys_by_hash() {
    for (workers, seed) in common::configs() {
        let cluster = common::cluster(workers, seed);
        let ctx = cluster.context();
        for p in PARTITIONS {
            let input = common::pairs(seed, 500, 61);
            let rdd = ctx.parallelize(input.clone(), p).unwrap();
            for n in [1, 2, 7] {
                let at = format!("{p} partitions into {n}, {workers} workers, seed {seed}");
                let reduced = rdd.reduce_by_key_with_partitions(|a, b| a + b, n).unwrap();
                assert_eq!(reduced.num_partitions(), n, "{at}");
                let parts = reduced.glom().collect().unwrap();
                assert_eq!(parts.len(), n, "{at}");
                let mut all: BTreeMap<u32, i64> = BTreeMap::new();
                for (i, part) in parts.iter().enumerate() {
                    for (k, v) in part {
                        assert_eq!(partition_of(k, n), i, "{at}: key {k}");
                        assert!(all.insert(*k, *v).is_none(), "{at}: key {k} twice");
                    }
                }
                assert_eq!(all.into_iter().collect::<Vec<_>>(), sums(&input), "{at}");
            }
            assert_eq!(rdd.reduce_by_key(|a, b| a + b).num_partitions(), p);
            assert_eq!(rdd.group_by_key().num_partitions(), p);
            assert_eq!(rdd.distinct().num_partitions(), p);
        }
    }
}
