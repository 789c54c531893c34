//! Joins, cogroup and sorting, table-driven against sequential references: `join,
//! left_outer_join, right_outer_join, full_outer_join, cogroup` (compared after sorting, with
//! the raw order required to be the same for every worker count and seed) and `sort_by_key`
//! ascending and descending (compared exactly: records are sorted by key and, within a key,
//! keep their input order).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use dstream::Rdd;

use common::{check_table, check_table_shared_graph, flat, groups, ordered, pair_inputs, pairs, unordered, Case};

type Pair = (u32, i64);

/// The right side of every join: keys overlapping the left side's, some only on the right.
fn right_side() -> Vec<(u32, char)> {
    let mut rng = dstream::SplitMix64::new(99);
    (0..60)
        .map(|i| {
            let k = rng.below(12) as u32 * 3; // keys 0, 3, .., 33: some shared, some not
            let v = char::from(b'a' + (i % 26) as u8);
            (k, v)
        })
        .collect()
}

/// The right side as a dataset of 5 partitions in the left side's context.
fn right_of(left: &Rdd<Pair>) -> Rdd<(u32, char)> {
    left.context().parallelize(right_side(), 5).unwrap()
}

/// The reference of `cogroup`: for every key of either side, its values on each side in
/// input order.
fn cogrouped(left: &[Pair], right: &[(u32, char)]) -> Vec<(u32, (Vec<i64>, Vec<char>))> {
    let (l, r) = (groups(left), groups(right));
    let keys: BTreeSet<u32> = l.keys().chain(r.keys()).copied().collect();
    keys.into_iter()
        .map(|k| {
            let vs = l.get(&k).cloned().unwrap_or_default();
            let ws = r.get(&k).cloned().unwrap_or_default();
            (k, (vs, ws))
        })
        .collect()
}

/// Every pair of one value of each side, per key, after replacing a missing side by `None`
/// where the join keeps it.
fn joined<A: Clone, B: Clone>(
    cogroups: Vec<(u32, (Vec<i64>, Vec<char>))>,
    left: impl Fn(Vec<i64>) -> Vec<A>,
    right: impl Fn(Vec<char>) -> Vec<B>,
) -> Vec<(u32, (A, B))> {
    let mut out = Vec::new();
    for (k, (vs, ws)) in cogroups {
        let (vs, ws) = (left(vs), right(ws));
        for v in &vs {
            for w in &ws {
                out.push((k, (v.clone(), w.clone())));
            }
        }
    }
    out
}

fn all<T>(xs: Vec<T>) -> Vec<T> {
    xs
}

fn some_or_none<T>(xs: Vec<T>) -> Vec<Option<T>> {
    if xs.is_empty() {
        vec![None]
    } else {
        xs.into_iter().map(Some).collect()
    }
}

#[test]
fn inner_join() {
    type Joined = (u32, (i64, char));
    let table: Vec<Case<Pair, Joined>> = vec![
        unordered("join", |r| Ok(r.join(&right_of(r))), |p| joined(cogrouped(&flat(p), &right_side()), all, all)),
        unordered(
            "join of a reduced (hash-partitioned) left side",
            |r| Ok(r.reduce_by_key(|a, b| a + b).join(&right_of(r))),
            |p| {
                let sums: Vec<Pair> = groups(&flat(p)).into_iter().map(|(k, vs)| (k, vs.iter().sum())).collect();
                joined(cogrouped(&sums, &right_side()), all, all)
            },
        ),
        unordered(
            "join with an empty right side",
            |r| Ok(r.join(&r.context().parallelize(Vec::<(u32, char)>::new(), 2)?)),
            |_| vec![],
        ),
    ];
    check_table(&pair_inputs(), &table);
}

#[test]
fn outer_joins() {
    let left: Vec<Case<Pair, (u32, (i64, Option<char>))>> = vec![unordered(
        "left_outer_join",
        |r| Ok(r.left_outer_join(&right_of(r))),
        |p| {
            let cg = cogrouped(&flat(p), &right_side());
            let cg = cg.into_iter().filter(|(_, (vs, _))| !vs.is_empty()).collect();
            joined(cg, all, some_or_none)
        },
    )];
    check_table(&pair_inputs(), &left);

    let right: Vec<Case<Pair, (u32, (Option<i64>, char))>> = vec![unordered(
        "right_outer_join",
        |r| Ok(r.right_outer_join(&right_of(r))),
        |p| {
            let cg = cogrouped(&flat(p), &right_side());
            let cg = cg.into_iter().filter(|(_, (_, ws))| !ws.is_empty()).collect();
            joined(cg, some_or_none, all)
        },
    )];
    check_table(&pair_inputs(), &right);

    let full: Vec<Case<Pair, (u32, (Option<i64>, Option<char>))>> = vec![unordered(
        "full_outer_join",
        |r| Ok(r.full_outer_join(&right_of(r))),
        |p| joined(cogrouped(&flat(p), &right_side()), some_or_none, some_or_none),
    )];
    check_table(&pair_inputs(), &full);
}

#[test]
fn cogroups() {
    type Cogrouped = (u32, (Vec<i64>, Vec<char>));
    let table: Vec<Case<Pair, Cogrouped>> = vec![
        unordered("cogroup", |r| Ok(r.cogroup(&right_of(r))), |p| cogrouped(&flat(p), &right_side())),
        unordered(
            "cogroup_with_partitions(1)",
            |r| r.cogroup_with_partitions(&right_of(r), 1),
            |p| cogrouped(&flat(p), &right_side()),
        ),
        unordered(
            "cogroup_with_partitions(7)",
            |r| r.cogroup_with_partitions(&right_of(r), 7),
            |p| cogrouped(&flat(p), &right_side()),
        ),
    ];
    check_table(&pair_inputs(), &table);
}

/// A dataset joined with itself pairs every two values of each key.
#[test]
fn self_join() {
    let table: Vec<Case<Pair, (u32, (i64, i64))>> = vec![unordered(
        "join with itself",
        |r| Ok(r.join(r)),
        |p| {
            let mut out = Vec::new();
            for (k, vs) in groups(&flat(p)) {
                for a in &vs {
                    for b in &vs {
                        out.push((k, (*a, *b)));
                    }
                }
            }
            out
        },
    )];
    check_table(&[vec![], pairs(5, 30, 4), pairs(6, 300, 40)], &table);
}

/// A stable sort by key: equal keys keep their input order.
fn sorted_by_key(records: Vec<Pair>, ascending: bool) -> Vec<Pair> {
    let mut out = records;
    if ascending {
        out.sort_by_key(|a| a.0);
    } else {
        out.sort_by_key(|a| std::cmp::Reverse(a.0));
    }
    out
}

#[test]
fn sort_by_key() {
    let table: Vec<Case<Pair, Pair>> = vec![
        ordered("sort_by_key(ascending, 1)", |r| r.sort_by_key(true, 1), |p| sorted_by_key(flat(p), true)),
        ordered("sort_by_key(ascending, 3)", |r| r.sort_by_key(true, 3), |p| sorted_by_key(flat(p), true)),
        ordered("sort_by_key(ascending, 8)", |r| r.sort_by_key(true, 8), |p| sorted_by_key(flat(p), true)),
        ordered("sort_by_key(descending, 1)", |r| r.sort_by_key(false, 1), |p| sorted_by_key(flat(p), false)),
        ordered("sort_by_key(descending, 4)", |r| r.sort_by_key(false, 4), |p| sorted_by_key(flat(p), false)),
        ordered(
            "sort_by_key(descending, 8) then map_values",
            |r| Ok(r.sort_by_key(false, 8)?.map_values(|v| v * 10)),
            |p| sorted_by_key(flat(p), false).into_iter().map(|(k, v)| (k, v * 10)).collect(),
        ),
        ordered(
            "reduce_by_key then sort_by_key",
            |r| r.reduce_by_key(|a, b| a + b).sort_by_key(true, 3),
            |p| groups(&flat(p)).into_iter().map(|(k, vs)| (k, vs.iter().sum())).collect(),
        ),
        ordered(
            "sort by value (swap, sort, swap back)",
            |r| Ok(r.map(|(k, v): Pair| (v, k)).sort_by_key(true, 4)?.map(|(v, k)| (k, v))),
            |p| {
                let mut out = flat(p);
                out.sort_by_key(|a: &Pair| a.1);
                out
            },
        ),
    ];
    // A batch program's sort runs its sampling job while the program is built; a worker that
    // builds the program itself cannot (see `tests/worker_graphs.rs`).
    check_table_shared_graph(&pair_inputs(), &table);
}

/// Sorted partitions are contiguous key ranges, never more than asked for.
#[test]
fn sort_by_key_partitions_are_ranges() {
    for (workers, seed) in common::configs() {
        let cluster = common::cluster(workers, seed);
        let ctx = cluster.context();
        let input = pairs(seed, 400, 50);
        let rdd = ctx.parallelize(input.clone(), 3).unwrap();
        for (ascending, n) in [(true, 1), (true, 5), (false, 5), (true, 200)] {
            let at = format!("ascending {ascending}, {n} partitions, {workers} workers, seed {seed}");
            let sorted = rdd.sort_by_key(ascending, n).unwrap();
            assert!(sorted.num_partitions() <= n.max(1), "{at}");
            let parts = sorted.glom().collect().unwrap();
            assert_eq!(parts.len(), sorted.num_partitions(), "{at}");
            let keys: Vec<BTreeSet<u32>> = parts.iter().map(|p| p.iter().map(|(k, _)| *k).collect()).collect();
            for pair in keys.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if let (Some(a_last), Some(b_first)) = (a.last(), b.first()) {
                    if ascending {
                        assert!(a_last < b_first, "{at}: {keys:?}");
                    } else {
                        assert!(a.first().unwrap() > b.last().unwrap(), "{at}: {keys:?}");
                    }
                }
            }
            let distinct: BTreeMap<u32, ()> = input.iter().map(|(k, _)| (*k, ())).collect();
            assert!(keys.iter().filter(|k| !k.is_empty()).count() <= distinct.len(), "{at}");
            assert_eq!(parts.concat(), sorted_by_key(input.clone(), ascending), "{at}");
        }
    }
}
