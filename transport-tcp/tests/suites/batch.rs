//! The batch cases: narrow operators, pair operators, joins and the built-in actions
//! (`collect`, `count`, `take`), on the inputs of the core's suites (`core/tests/narrow.rs`,
//! `pair.rs`, `join_sort.rs`, `actions.rs`, which take them from Spark's suites).
//!
//! Every case builds its datasets in the program, so every process has them; its jobs run in
//! the driver after the launch. A case's output is one line per input and partition count,
//! then one line per record (`Debug`), in the order the action returns them: hash placement
//! is the same in every process, so even the orders a hash decides must agree.
//!
//! Left out, because the TCP cluster refuses them by design (ARCHITECTURE.md, "The replay
//! model"): `sort_by_key` in a batch program (it samples its keys with a job while the program
//! is built, which a worker cannot run; the streaming cases sort inside a `transform`) and the
//! actions with a function (`reduce`, `fold`, `top`, `take_ordered`, `foreach_partition`),
//! which exist on the driver only: `actions_with_a_function_are_refused` checks that they fail
//! with a typed error.

use std::fmt::Debug;

use super::sum_count;
use std::rc::Rc;

use dstream::{Aggregator, Context, Data, Error, PartitionSource, Rdd, SplitMix64};

/// What a case's jobs gave, one line each.
pub(crate) type Output = Vec<String>;
/// A case's jobs, run in the driver once the program is built.
pub(crate) type Jobs = Box<dyn Fn() -> Result<Output, Error>>;
/// How a case builds its datasets in a process's context (every process runs it).
type Build = Box<dyn Fn(&Context) -> Result<Jobs, Error>>;

/// One row of the table: a name and the builder of its datasets.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    build: Build,
}

/// The partition counts every input is parallelized into.
const PARTITIONS: [usize; 3] = [1, 3, 8];

type Pair = (u32, i64);

/// `n` numbers below `max`, drawn from `seed` (as the core suites' `numbers`).
fn numbers(seed: u64, n: usize, max: u64) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.next_u64() % max).collect()
}

/// `n` pairs with keys below `keys` and values in `-100..=100` (as the core suites' `pairs`).
fn pairs(seed: u64, n: usize, keys: u32) -> Vec<Pair> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| (rng.below(keys as usize) as u32, rng.below(201) as i64 - 100)).collect()
}

/// The core's number inputs: empty, one record, a short run, and one spanning several chunks.
fn number_inputs() -> Vec<Vec<u64>> {
    vec![vec![], vec![42], (0..23).collect(), numbers(1, 2_500, 1_000)]
}

/// The core's pair inputs: empty, one pair, few keys with many values, many keys.
fn pair_inputs() -> Vec<Vec<Pair>> {
    vec![vec![], vec![(7, 1)], pairs(2, 40, 5), pairs(3, 2_100, 97)]
}

/// The right side of the joins (as in `join_sort.rs`): keys 0, 3, .., 33, some shared with
/// the left side's, some not.
fn right_side() -> Vec<(u32, char)> {
    let mut rng = SplitMix64::new(99);
    (0..60).map(|i| (rng.below(12) as u32 * 3, char::from(b'a' + (i % 26) as u8))).collect()
}

fn right_of(left: &Rdd<Pair>) -> Result<Rdd<(u32, char)>, Error> {
    left.context().parallelize(right_side(), 5)
}

/// Every record, in the order `collect` returns them.
fn collect<U: Data + Debug>(rdd: &Rdd<U>) -> Result<Output, Error> {
    Ok(rdd.collect()?.iter().map(|r| format!("{r:?}")).collect())
}

fn count<U: Data>(rdd: &Rdd<U>) -> Result<Output, Error> {
    Ok(vec![format!("count {}", rdd.count()?)])
}

/// `take(n)` for every `n` of `ns`.
fn take<U: Data + Debug>(ns: &'static [usize]) -> impl Fn(&Rdd<U>) -> Result<Output, Error> {
    move |rdd| {
        let mut out = Vec::new();
        for &n in ns {
            out.push(format!("take {n}: {:?}", rdd.take(n)?));
        }
        Ok(out)
    }
}

/// A row over every input of `inputs` and partition count: `op` of the parallelized input,
/// read by `action`.
fn case<T, U>(
    name: &'static str,
    inputs: fn() -> Vec<Vec<T>>,
    op: impl Fn(&Rdd<T>) -> Result<Rdd<U>, Error> + 'static,
    action: impl Fn(&Rdd<U>) -> Result<Output, Error> + 'static,
) -> Case
where
    T: Data,
    U: Data,
{
    let datasets = move |ctx: &Context| {
        let mut rdds = Vec::new();
        for (i, input) in inputs().into_iter().enumerate() {
            for p in PARTITIONS {
                rdds.push((format!("input #{i} in {p} partitions"), op(&ctx.parallelize(input.clone(), p)?)?));
            }
        }
        Ok(rdds)
    };
    labelled(name, datasets, action)
}

/// A row over the labelled datasets `datasets` builds, each read by `action`.
fn labelled<U: Data>(
    name: &'static str,
    datasets: impl Fn(&Context) -> Result<Vec<(String, Rdd<U>)>, Error> + 'static,
    action: impl Fn(&Rdd<U>) -> Result<Output, Error> + 'static,
) -> Case {
    let action = Rc::new(action);
    let build = move |ctx: &Context| -> Result<Jobs, Error> {
        let rdds = datasets(ctx)?;
        let action = Rc::clone(&action);
        Ok(Box::new(move || {
            let mut out = Vec::new();
            for (label, rdd) in &rdds {
                out.push(label.clone());
                out.extend(action(rdd)?);
            }
            Ok(out)
        }) as Jobs)
    };
    Case { name, build: Box::new(build) }
}

/// A key's values as a list: the order of values shows in it.
fn listing() -> Aggregator<i64, Vec<i64>> {
    Aggregator::new(|v| vec![v], |c: &mut Vec<i64>, v| c.push(v), |c: &mut Vec<i64>, mut o: Vec<i64>| c.append(&mut o))
}

/// A source whose partition `s` is derived from `s` alone: read on the worker processes.
struct Squares {
    partitions: usize,
}

impl PartitionSource<u64> for Squares {
    fn partitions(&self) -> usize {
        self.partitions
    }
    fn read(&self, split: usize) -> Result<Vec<u64>, String> {
        let len = (split * 37) % 11 + split;
        Ok((0..len as u64).map(|i| split as u64 * 1_000 + i * i).collect())
    }
    fn describe(&self) -> String {
        format!("squares({})", self.partitions)
    }
}

/// The table.
pub(crate) fn table() -> Vec<Case> {
    vec![
        case("map", number_inputs, |r| Ok(r.map(|x| x * 3 + 1)), collect),
        case("filter", number_inputs, |r| Ok(r.filter(|x| x % 3 == 0)), collect),
        case("flat_map to 0..=2 records", number_inputs, |r| Ok(r.flat_map(|x| vec![x; (x % 3) as usize])), collect),
        case(
            "map_partitions sees the partition index and its records",
            number_inputs,
            |r| {
                Ok(r.map_partitions(|split, xs: Vec<u64>| {
                    [split as u64, xs.len() as u64, xs.iter().sum(), xs.first().copied().unwrap_or(u64::MAX)]
                }))
            },
            collect,
        ),
        case(
            "map_partitions_ref of a computed partition",
            number_inputs,
            |r| Ok(r.map(|x| x + 1).map_partitions_ref(|_, xs: &[u64]| xs.iter().rev().copied().collect::<Vec<_>>())),
            collect,
        ),
        case(
            "union with a derived dataset and a new one",
            number_inputs,
            |r| Ok(r.union(&[r.map(|x| x + 1_000), r.context().parallelize(vec![7, 8, 9], 2)?])),
            collect,
        ),
        case("repartition(5) then map", number_inputs, |r| Ok(r.repartition(5)?.map(|x| x ^ 1)), collect),
        case("glom", number_inputs, |r| Ok(r.glom()), collect),
        case("glom of repartition(4)", number_inputs, |r| Ok(r.repartition(4)?.glom()), collect),
        case(
            "persisted, read twice: union with itself, then counted",
            number_inputs,
            |r| {
                let p = r.map(|x| x + 1).persist();
                Ok(p.union(std::slice::from_ref(&p)))
            },
            |r: &Rdd<u64>| Ok([collect(r)?, count(r)?, collect(r)?].concat()),
        ),
        case("distinct", number_inputs, |r| Ok(r.map(|x| x % 13).distinct()), collect),
        case("count after filter", number_inputs, |r| Ok(r.filter(|x| x % 2 == 0)), count),
        case(
            "count after reduce_by_key",
            number_inputs,
            |r| Ok(r.map(|x| (x % 10, 1u32)).reduce_by_key(|a, b| a + b)),
            count,
        ),
        case("take", number_inputs, |r| Ok(r.clone()), take(&[0, 1, 5, 24, 10_000])),
        case("take after filter", number_inputs, |r| Ok(r.filter(|x| x % 7 == 3)), take(&[4])),
        case("map_values", pair_inputs, |r| Ok(r.map_values(|v| v * 2 - 1)), collect),
        case(
            "flat_map_values to 0..=2 values",
            pair_inputs,
            |r| Ok(r.flat_map_values(|v: i64| (0..v.rem_euclid(3)).map(move |i| v + i))),
            collect,
        ),
        case("reduce_by_key(+)", pair_inputs, |r| Ok(r.reduce_by_key(|a, b| a + b)), collect),
        case(
            "reduce_by_key_with_partitions(+, 5)",
            pair_inputs,
            |r| r.reduce_by_key_with_partitions(|a, b| a + b, 5),
            collect,
        ),
        case(
            "reduce_by_key twice (the second co-partitioned)",
            pair_inputs,
            |r| Ok(r.reduce_by_key(|a, b| a + b).reduce_by_key(|a, b| a * b).map_values(|v| v + 1)),
            collect,
        ),
        case("distinct pairs", pair_inputs, |r| Ok(r.distinct()), collect),
        case("group_by_key", pair_inputs, |r| Ok(r.group_by_key()), collect),
        case("group_by_key_with_partitions(6)", pair_inputs, |r| r.group_by_key_with_partitions(6), collect),
        case("group_by_key after repartition(3)", pair_inputs, |r| Ok(r.repartition(3)?.group_by_key()), collect),
        case(
            "combine_by_key(sum, count; 3, map-side)",
            pair_inputs,
            |r| r.combine_by_key(sum_count(), 3, true),
            collect,
        ),
        case("combine_by_key(list; 5, no map-side)", pair_inputs, |r| r.combine_by_key(listing(), 5, false), collect),
        case("join", pair_inputs, |r| Ok(r.join(&right_of(r)?)), collect),
        case(
            "join of a reduced left side",
            pair_inputs,
            |r| Ok(r.reduce_by_key(|a, b| a + b).join(&right_of(r)?)),
            collect,
        ),
        case("join with itself", pair_inputs, |r| Ok(r.join(r)), count),
        case("left_outer_join", pair_inputs, |r| Ok(r.left_outer_join(&right_of(r)?)), collect),
        case("right_outer_join", pair_inputs, |r| Ok(r.right_outer_join(&right_of(r)?)), collect),
        case("full_outer_join", pair_inputs, |r| Ok(r.full_outer_join(&right_of(r)?)), collect),
        case("cogroup", pair_inputs, |r| Ok(r.cogroup(&right_of(r)?)), collect),
        case("cogroup_with_partitions(7)", pair_inputs, |r| r.cogroup_with_partitions(&right_of(r)?, 7), collect),
        labelled(
            "a source read on the workers, counted by last digit",
            |ctx| {
                let source = ctx.from_source(Squares { partitions: 7 })?;
                Ok(vec![("7 source partitions".into(), source.map(|x| (x % 10, x)).reduce_by_key(|a, b| a + b))])
            },
            collect,
        ),
    ]
}

/// Builds every case's datasets in `ctx`: the program every process runs.
pub(crate) fn build(ctx: &Context, table: &[Case]) -> Result<Vec<Jobs>, Error> {
    table.iter().map(|case| (case.build)(ctx)).collect()
}

/// The datasets of the refused actions: a few numbers in three partitions.
pub(crate) fn refused_input(ctx: &Context) -> Result<Rdd<u64>, Error> {
    ctx.parallelize((1..=30).collect(), 3)
}

/// The actions with a function, by name, each run over `rdd`.
#[allow(clippy::type_complexity)]
pub(crate) fn actions_with_a_function() -> Vec<(&'static str, Box<dyn Fn(&Rdd<u64>) -> Result<String, Error>>)> {
    vec![
        ("reduce", Box::new(|r| Ok(format!("{:?}", r.reduce(|a, b| a + b)?)))),
        ("fold", Box::new(|r| Ok(format!("{:?}", r.fold(0, |a, b| a + b)?)))),
        ("top", Box::new(|r| Ok(format!("{:?}", r.top(3)?)))),
        ("take_ordered", Box::new(|r| Ok(format!("{:?}", r.take_ordered(3)?)))),
        ("foreach_partition", Box::new(|r| r.foreach_partition(|_, _| {}).map(|()| "ran".to_string()))),
    ]
}
