//! Both wire modes of the harness give the same results: `wire(true)` (every message goes
//! through the codec and workers encode their payloads, as between processes) and `wire(false)`
//! (payloads move as shared pointers).
#![allow(clippy::unwrap_used)]

mod common;

use dstream::{Aggregator, Context, Error, StepCluster};

use common::{bytes, pairs, WORKERS};

type Job = fn(&Context) -> Result<Vec<u8>, Error>;

/// Jobs over every kind of operation; each returns its result's encoding.
const JOBS: [(&str, Job); 12] = [
    ("narrow chain", |ctx| {
        let r = ctx.parallelize((0..3_000u64).collect(), 6)?;
        Ok(bytes(&r.map(|x| x * 7).filter(|x| x % 3 != 0).flat_map(|x| [x, x + 1]).collect()?))
    }),
    ("glom and map_partitions", |ctx| {
        let r = ctx.parallelize((0..100u32).collect(), 7)?;
        let sums = r.map_partitions(|i, xs: Vec<u32>| [(i, xs.iter().sum::<u32>())]);
        Ok(bytes(&(r.glom().collect()?, sums.collect()?)))
    }),
    ("strings through a shuffle", |ctx| {
        let words: Vec<String> = (0..500).map(|i| format!("w{}", i % 37)).collect();
        let r = ctx.parallelize(words, 4)?.map(|w| (w, 1u32)).reduce_by_key(|a, b| a + b);
        Ok(bytes(&r.collect()?))
    }),
    ("reduce_by_key_with_partitions and group_by_key", |ctx| {
        let r = ctx.parallelize(pairs(1, 800, 50), 5)?;
        let reduced = r.reduce_by_key_with_partitions(|a, b| a + b, 3)?.collect()?;
        Ok(bytes(&(reduced, r.group_by_key().collect()?)))
    }),
    ("combine_by_key with and without map-side combine", |ctx| {
        let r = ctx.parallelize(pairs(2, 800, 50), 5)?;
        let agg = || Aggregator::new(|v: i64| vec![v], |c: &mut Vec<i64>, v| c.push(v), |c, mut o| c.append(&mut o));
        Ok(bytes(&(r.combine_by_key(agg(), 4, true)?.collect()?, r.combine_by_key(agg(), 4, false)?.collect()?)))
    }),
    ("joins and cogroup", |ctx| {
        let a = ctx.parallelize(pairs(3, 300, 40), 4)?;
        let b = ctx.parallelize(pairs(4, 200, 60), 3)?.map_values(|v| v.to_string());
        Ok(bytes(&(
            a.join(&b).collect()?,
            a.left_outer_join(&b).collect()?,
            a.right_outer_join(&b).collect()?,
            a.full_outer_join(&b).collect()?,
            a.cogroup(&b).collect()?,
        )))
    }),
    ("sort_by_key both ways", |ctx| {
        let r = ctx.parallelize(pairs(5, 600, 100), 4)?;
        Ok(bytes(&(r.sort_by_key(true, 5)?.collect()?, r.sort_by_key(false, 3)?.collect()?)))
    }),
    ("repartition and distinct", |ctx| {
        let r = ctx.parallelize((0..700u64).map(|x| x % 91).collect(), 3)?;
        Ok(bytes(&(r.repartition(5)?.glom().collect()?, r.distinct().collect()?)))
    }),
    ("union", |ctx| {
        let a = ctx.parallelize((0..10u8).collect(), 2)?;
        let b = ctx.parallelize((10..30u8).collect(), 3)?;
        Ok(bytes(&a.union(&[b, a.map(|x| x + 100)]).collect()?))
    }),
    ("persisted dataset read by two jobs and a self-join", |ctx| {
        let p = ctx.parallelize(pairs(6, 400, 30), 4)?.map_values(|v| v * 3).persist();
        let first = p.collect()?;
        let again = p.collect()?;
        assert_eq!(first, again);
        Ok(bytes(&(first, p.join(&p).count()?)))
    }),
    ("actions", |ctx| {
        let r = ctx.parallelize((1..=2_000u64).collect(), 6)?;
        let out = (r.count()?, r.reduce(|a, b| a + b)?, r.fold(0, u64::max)?, r.take(17)?);
        Ok(bytes(&out))
    }),
    ("options, nested vectors and strings", |ctx| {
        let r = ctx.parallelize((0..200u32).collect(), 4)?;
        let mapped = r.map(|x| (x % 5, if x % 3 == 0 { None } else { Some(vec![x.to_string(); (x % 4) as usize]) }));
        Ok(bytes(&mapped.group_by_key().collect()?))
    }),
];

fn run_all(cluster: &StepCluster) -> Vec<Vec<u8>> {
    let ctx = cluster.context();
    JOBS.iter().map(|(name, job)| job(&ctx).unwrap_or_else(|e| panic!("{name}: {e}"))).collect()
}

#[test]
fn wire_and_shared_pointer_modes_give_identical_results() {
    let reference = run_all(&StepCluster::builder().workers(1).wire(false).build());
    for workers in WORKERS {
        for seed in [1, 42] {
            for wire in [true, false] {
                let cluster = StepCluster::builder().workers(workers).seed(seed).wire(wire).build();
                let got = run_all(&cluster);
                for ((name, _), (a, b)) in JOBS.iter().zip(reference.iter().zip(&got)) {
                    assert!(a == b, "{name}: wire {wire}, {workers} workers, seed {seed}: result differs");
                }
            }
        }
    }
}
