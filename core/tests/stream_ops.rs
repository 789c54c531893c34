//! Per-batch stream operators, table-driven: `input batches -> operation -> expected batches`,
//! the expected batches computed by a sequential reference, on 1, 2 and 4 workers (raw outputs
//! byte-identical) and 1 and 3 input partitions. Covers `map, flat_map, filter, map_partitions,
//! glom, repartition, union, count, reduce, count_by_value, transform` (with the batch time and
//! with a static dataset of the cluster context), `transform_with, map_values,
//! flat_map_values, group_by_key, reduce_by_key, combine_by_key`, the joins and `cogroup`,
//! including empty batches and keys present on one side only.
#![allow(clippy::unwrap_used)]

mod stream_common;

use dstream::testing::StreamTest;
use dstream::Aggregator;

use stream_common::{
    case2, check2, check_table, exact, groups, number_inputs, pair_batches, pair_inputs, per_batch, sorted, sums,
    whole, Case, WORKERS,
};

type Pair = (u32, i64);

fn flat<T: Clone>(parts: &[Vec<T>]) -> Vec<T> {
    parts.concat()
}

/// The reference of `repartition(n)`: record `i` of input partition `s` goes to partition
/// `(s + i) % n`, and each output partition reads the input partitions in order.
fn repartitioned<T: Clone>(parts: &[Vec<T>], n: usize) -> Vec<Vec<T>> {
    let mut out = vec![Vec::new(); n];
    for (s, part) in parts.iter().enumerate() {
        for (i, x) in part.iter().enumerate() {
            out[(s + i) % n].push(x.clone());
        }
    }
    out
}

#[test]
fn element_operators() {
    let table: Vec<Case<u32, u32>> = vec![
        per_batch("map", exact, |s| s.map(|x| x * 3 + 1), |p| flat(p).iter().map(|x| x * 3 + 1).collect()),
        per_batch(
            "filter",
            exact,
            |s| s.filter(|x| x % 3 == 0),
            |p| flat(p).into_iter().filter(|x| x % 3 == 0).collect(),
        ),
        per_batch(
            "flat_map to 0..=2 records",
            exact,
            |s| s.flat_map(|x| (0..x % 3).map(move |i| x * 10 + i)),
            |p| flat(p).into_iter().flat_map(|x| (0..x % 3).map(move |i| x * 10 + i)).collect(),
        ),
        per_batch(
            "map_partitions",
            exact,
            |s| s.map_partitions(|i, xs| [i as u32 * 1000 + xs.iter().sum::<u32>()]),
            |p| p.iter().enumerate().map(|(i, xs)| i as u32 * 1000 + xs.iter().sum::<u32>()).collect(),
        ),
        per_batch("repartition(2)", exact, |s| s.repartition(2).unwrap(), |p| repartitioned(p, 2).concat()),
        per_batch("repartition(5)", exact, |s| s.repartition(5).unwrap(), |p| repartitioned(p, 5).concat()),
        per_batch(
            "union with a mapped copy",
            exact,
            |s| s.union(&[s.map(|x| x + 100)]).unwrap(),
            |p| flat(p).into_iter().chain(flat(p).into_iter().map(|x| x + 100)).collect(),
        ),
        per_batch(
            "union of three",
            exact,
            |s| s.union(&[s.filter(|x| x % 2 == 0), s.map(|x| x * 2)]).unwrap(),
            |p| {
                let f = flat(p);
                f.iter()
                    .copied()
                    .chain(f.iter().copied().filter(|x| x % 2 == 0))
                    .chain(f.iter().map(|x| x * 2))
                    .collect()
            },
        ),
        per_batch(
            "reduce(+)",
            exact,
            |s| s.reduce(|a, b| a + b),
            |p| flat(p).into_iter().reduce(|a, b| a + b).into_iter().collect(),
        ),
        per_batch("reduce(max)", exact, |s| s.reduce(u32::max), |p| flat(p).into_iter().max().into_iter().collect()),
        per_batch(
            "transform: sort descending",
            exact,
            |s| s.transform(|rdd, _| Ok(rdd.map(|x| (x, ())).sort_by_key(false, 2)?.map(|(x, ())| x))),
            |p| {
                let mut v = flat(p);
                v.sort_by(|a, b| b.cmp(a));
                v
            },
        ),
        per_batch(
            "map, filter, flat_map chained",
            exact,
            |s| s.map(|x| x + 1).filter(|x| x % 2 == 1).flat_map(|x| [x, x]),
            |p| flat(p).into_iter().map(|x| x + 1).filter(|x| x % 2 == 1).flat_map(|x| [x, x]).collect(),
        ),
    ];
    check_table(&number_inputs(), &table);
}

#[test]
fn glom_and_partition_shapes() {
    let table: Vec<Case<u32, Vec<u32>>> = vec![
        per_batch("glom", exact, |s| s.glom(), |p| p.to_vec()),
        per_batch("repartition(3).glom", exact, |s| s.repartition(3).unwrap().glom(), |p| repartitioned(p, 3)),
        per_batch(
            "filter.glom",
            exact,
            |s| s.filter(|x| x % 2 == 0).glom(),
            |p| p.iter().map(|xs| xs.iter().copied().filter(|x| x % 2 == 0).collect()).collect(),
        ),
    ];
    check_table(&number_inputs(), &table);
}

/// The occurrences of each distinct record, by record.
fn counts(records: impl IntoIterator<Item = u32>) -> Vec<(u32, u64)> {
    let mut c = std::collections::BTreeMap::new();
    records.into_iter().for_each(|x| *c.entry(x).or_insert(0u64) += 1);
    c.into_iter().collect()
}

#[test]
fn counting_operators() {
    let table: Vec<Case<u32, u64>> = vec![
        // An empty batch counts 0: count always gives one record.
        per_batch("count", exact, |s| s.count(), |p| vec![flat(p).len() as u64]),
        per_batch(
            "filter.count",
            exact,
            |s| s.filter(|x| x % 2 == 0).count(),
            |p| vec![flat(p).iter().filter(|x| *x % 2 == 0).count() as u64],
        ),
    ];
    check_table(&number_inputs(), &table);
    let by_value: Vec<Case<u32, (u32, u64)>> = vec![
        per_batch("count_by_value", sorted, |s| s.count_by_value(), |p| counts(flat(p))),
        per_batch(
            "map(x % 4).count_by_value",
            sorted,
            |s| s.map(|x| x % 4).count_by_value(),
            |p| counts(flat(p).into_iter().map(|x| x % 4)),
        ),
    ];
    check_table(&number_inputs(), &by_value);
}

/// `transform` receives the batch time: batch `k` is at `k` seconds.
#[test]
fn transform_sees_the_batch_time() {
    let table: Vec<Case<u32, (u64, u32)>> = vec![whole(
        "transform tagging with the batch time",
        exact,
        |s| s.transform(|rdd, t| Ok(rdd.map(move |x| (t.as_millis(), x)))),
        |batches| {
            batches.iter().enumerate().map(|(k, b)| b.iter().map(|x| ((k as u64 + 1) * 1000, *x)).collect()).collect()
        },
    )];
    check_table(&number_inputs(), &table);
}

/// Joining every batch with a static dataset made from the streaming context's cluster context.
#[test]
fn transform_joins_with_a_static_dataset() {
    let names: Vec<(u32, String)> = vec![(0, "zero".into()), (1, "one".into()), (2, "two".into()), (3, "three".into())];
    let lookup = move |k: u32| names.iter().find(|(n, _)| *n == k).map(|(_, s)| s.clone());
    let (l1, l2) = (lookup.clone(), lookup);
    let table: Vec<Case<Pair, (u32, (i64, Option<String>))>> = vec![
        per_batch(
            "transform: join with a static dataset",
            sorted,
            |s| {
                let names = static_names(&s);
                s.transform(move |rdd, _| Ok(rdd.join(&names).map_values(|(v, n)| (v, Some(n)))))
            },
            move |p| flat(p).into_iter().filter_map(|(k, v)| l1(k).map(|n| (k, (v, Some(n))))).collect(),
        ),
        per_batch(
            "transform: left outer join with a static dataset",
            sorted,
            |s| {
                let names = static_names(&s);
                s.transform(move |rdd, _| Ok(rdd.left_outer_join(&names)))
            },
            move |p| flat(p).into_iter().map(|(k, v)| (k, (v, l2(k)))).collect(),
        ),
    ];
    check_table(&pair_inputs(), &table);
}

fn static_names(s: &dstream::DStream<Pair>) -> dstream::Rdd<(u32, String)> {
    let ctx = s.context().context();
    let names = vec![(0, "zero"), (1, "one"), (2, "two"), (3, "three")];
    ctx.parallelize(names.into_iter().map(|(k, n)| (k, n.to_string())).collect(), 2).unwrap()
}

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

/// The values of a key as a list: checks that combining keeps the input order.
fn listing() -> Aggregator<i64, Vec<i64>> {
    Aggregator::new(|v| vec![v], |c: &mut Vec<i64>, v| c.push(v), |c: &mut Vec<i64>, mut o: Vec<i64>| c.append(&mut o))
}

#[test]
fn pair_operators() {
    let table: Vec<Case<Pair, Pair>> = vec![
        per_batch(
            "map_values",
            exact,
            |s| s.map_values(|v| v * 2 - 1),
            |p| flat(p).into_iter().map(|(k, v)| (k, v * 2 - 1)).collect(),
        ),
        per_batch(
            "flat_map_values to 0..=2 values",
            exact,
            |s| s.flat_map_values(|v: i64| (0..v.rem_euclid(3)).map(move |i| v + i)),
            |p| flat(p).into_iter().flat_map(|(k, v)| (0..v.rem_euclid(3)).map(move |i| (k, v + i))).collect(),
        ),
        per_batch("reduce_by_key(+)", sorted, |s| s.reduce_by_key(|a, b| a + b), |p| sums(&flat(p))),
        per_batch(
            "reduce_by_key(max)",
            sorted,
            |s| s.reduce_by_key(i64::max),
            |p| groups(&flat(p)).into_iter().map(|(k, vs)| (k, vs.into_iter().max().unwrap())).collect(),
        ),
        per_batch(
            "map_values.reduce_by_key",
            sorted,
            |s| s.map_values(|v: i64| v.abs()).reduce_by_key(|a, b| a + b),
            |p| groups(&flat(p)).into_iter().map(|(k, vs)| (k, vs.iter().map(|v| v.abs()).sum())).collect(),
        ),
    ];
    check_table(&pair_inputs(), &table);

    let grouped: Vec<Case<Pair, (u32, Vec<i64>)>> = vec![
        per_batch("group_by_key", sorted, |s| s.group_by_key(), |p| groups(&flat(p)).into_iter().collect()),
        per_batch(
            "combine_by_key(listing, map-side)",
            sorted,
            |s| s.combine_by_key(listing, 3, true).unwrap(),
            |p| groups(&flat(p)).into_iter().collect(),
        ),
        per_batch(
            "combine_by_key(listing, no map-side)",
            sorted,
            |s| s.combine_by_key(listing, 1, false).unwrap(),
            |p| groups(&flat(p)).into_iter().collect(),
        ),
    ];
    check_table(&pair_inputs(), &grouped);

    let combined: Vec<Case<Pair, (u32, (i64, u32))>> = vec![per_batch(
        "combine_by_key(sum, count)",
        sorted,
        |s| s.combine_by_key(sum_count, 2, true).unwrap(),
        |p| groups(&flat(p)).into_iter().map(|(k, vs)| (k, (vs.iter().sum(), vs.len() as u32))).collect(),
    )];
    check_table(&pair_inputs(), &combined);
}

/// Input pairs for the two-stream operators: keys on one side only in some batches, empty
/// batches on either side, streams of different lengths, one stream empty throughout.
fn two_stream_inputs() -> Vec<(Vec<Vec<Pair>>, Vec<Vec<Pair>>)> {
    vec![
        (
            vec![vec![(1, 10), (2, 20), (1, 11)], vec![(1, 12)], vec![], vec![(3, 30)], vec![(5, 50)]],
            vec![vec![(1, 100)], vec![], vec![(2, 200)], vec![(3, 300), (3, 301)], vec![(4, 400)], vec![(1, 101)]],
        ),
        (pair_batches(21, 6, &[0, 1, 6, 15], 5), pair_batches(22, 6, &[0, 2, 10], 5)),
        (vec![vec![], vec![]], pair_batches(23, 3, &[4], 3)),
    ]
}

fn cross<A: Clone, B: Clone>(a: &[(u32, A)], b: &[(u32, B)]) -> Vec<(u32, (A, B))> {
    a.iter()
        .flat_map(|(k, x)| b.iter().filter(move |(j, _)| j == k).map(move |(_, y)| (*k, (x.clone(), y.clone()))))
        .collect()
}

fn has(side: &[Pair], k: u32) -> bool {
    side.iter().any(|(j, _)| *j == k)
}

#[test]
fn joins() {
    let inputs = two_stream_inputs();
    check2(&inputs, &case2("join", |a, b| a.join(&b).unwrap(), cross));
    check2(
        &inputs,
        &case2(
            "left_outer_join",
            |a, b| a.left_outer_join(&b).unwrap(),
            |a, b| {
                let mut out: Vec<_> = cross(a, b).into_iter().map(|(k, (x, y))| (k, (x, Some(y)))).collect();
                out.extend(a.iter().filter(|(k, _)| !has(b, *k)).map(|(k, x)| (*k, (*x, None))));
                out
            },
        ),
    );
    check2(
        &inputs,
        &case2(
            "right_outer_join",
            |a, b| a.right_outer_join(&b).unwrap(),
            |a, b| {
                let mut out: Vec<_> = cross(a, b).into_iter().map(|(k, (x, y))| (k, (Some(x), y))).collect();
                out.extend(b.iter().filter(|(k, _)| !has(a, *k)).map(|(k, y)| (*k, (None, *y))));
                out
            },
        ),
    );
    check2(
        &inputs,
        &case2(
            "full_outer_join",
            |a, b| a.full_outer_join(&b).unwrap(),
            |a, b| {
                let mut out: Vec<_> = cross(a, b).into_iter().map(|(k, (x, y))| (k, (Some(x), Some(y)))).collect();
                out.extend(a.iter().filter(|(k, _)| !has(b, *k)).map(|(k, x)| (*k, (Some(*x), None))));
                out.extend(b.iter().filter(|(k, _)| !has(a, *k)).map(|(k, y)| (*k, (None, Some(*y)))));
                out
            },
        ),
    );
}

#[test]
fn cogroup_union_and_transform_with() {
    let inputs = two_stream_inputs();
    check2(
        &inputs,
        &case2(
            "cogroup",
            |a, b| a.cogroup(&b).unwrap(),
            |a, b| {
                let (ga, gb) = (groups(a), groups(b));
                let keys: std::collections::BTreeSet<u32> = ga.keys().chain(gb.keys()).copied().collect();
                keys.into_iter()
                    .map(|k| (k, (ga.get(&k).cloned().unwrap_or_default(), gb.get(&k).cloned().unwrap_or_default())))
                    .collect()
            },
        ),
    );
    check2(&inputs, &case2("union", |a, b| a.union(&[b]).unwrap(), |a, b| [a, b].concat()));
    check2(
        &inputs,
        &case2(
            "transform_with: records of a whose key is not in b's batch",
            |a, b| {
                a.transform_with(&b, |x, y, _| {
                    Ok(x.cogroup(y).filter(|(_, (_, ys))| ys.is_empty()).flat_map_values(|(xs, _)| xs))
                })
                .unwrap()
            },
            |a, b| a.iter().filter(|(k, _)| !has(b, *k)).copied().collect(),
        ),
    );
}

/// The same joins, written out by hand: keys on one side only, empty batches on each side,
/// and a second stream longer than the first.
#[test]
fn outer_joins_by_hand() {
    let a: Vec<Vec<(char, u32)>> = vec![vec![('a', 1), ('b', 2)], vec![], vec![('c', 3)], vec![('a', 4)]];
    let b: Vec<Vec<(char, u32)>> =
        vec![vec![('a', 10)], vec![('b', 20)], vec![], vec![('a', 40), ('a', 41)], vec![('d', 50)]];
    let expected_full = vec![
        vec![('a', (Some(1), Some(10))), ('b', (Some(2), None))],
        vec![('b', (None, Some(20)))],
        vec![('c', (Some(3), None))],
        vec![('a', (Some(4), Some(40))), ('a', (Some(4), Some(41)))],
        vec![('d', (None, Some(50)))],
    ];
    let expected_join = vec![vec![('a', (1, 10))], vec![], vec![], vec![('a', (4, 40)), ('a', (4, 41))], vec![]];
    for workers in WORKERS {
        let test = StreamTest::new().workers(workers).seed(u64::from(workers));
        let mut full = test.run2(a.clone(), b.clone(), |x, y| x.full_outer_join(&y).unwrap()).unwrap();
        full.iter_mut().for_each(|b| b.sort());
        assert_eq!(full, expected_full, "full_outer_join, {workers} workers, seed {workers}");
        let mut join = test.run2(a.clone(), b.clone(), |x, y| x.join(&y).unwrap()).unwrap();
        join.iter_mut().for_each(|b| b.sort());
        assert_eq!(join, expected_join, "join, {workers} workers, seed {workers}");
    }
}
