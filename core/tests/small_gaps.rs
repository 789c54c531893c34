//! The small API gaps a Spark user meets early: `sort_by`, `top`, `take_ordered`,
//! `Context::union`, `Time - Duration` and `Time`'s `Debug`, `map_with_state` with the batch
//! time, and `update_state_by_key` from an initial state.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dstream::testing::StreamTest;
use dstream::{State, StateSpec, StepCluster, Time};

#[test]
fn sort_by_top_and_take_ordered_match_a_sequential_sort() {
    let cluster = StepCluster::builder().workers(3).seed(7).build();
    let ctx = cluster.context();
    // A scrambled sequence with repeats, over 5 partitions.
    let xs: Vec<u32> = (0..500u32).map(|i| (i * 7919) % 263).collect();
    let rdd = ctx.parallelize(xs.clone(), 5).unwrap();
    let mut sorted = xs.clone();
    sorted.sort();
    assert_eq!(rdd.sort_by(|x| *x, true, 4).unwrap().collect().unwrap(), sorted);
    let mut by_last_digit = xs.clone();
    by_last_digit.sort_by_key(|x| std::cmp::Reverse(x % 10)); // stable, as sort_by is
    assert_eq!(rdd.sort_by(|x| x % 10, false, 3).unwrap().collect().unwrap(), by_last_digit);
    assert_eq!(rdd.take_ordered(10).unwrap(), sorted[..10].to_vec());
    let mut descending = sorted.clone();
    descending.reverse();
    assert_eq!(rdd.top(10).unwrap(), descending[..10].to_vec());
    assert_eq!(rdd.top(0).unwrap(), Vec::<u32>::new());
    assert_eq!(rdd.take_ordered(10_000).unwrap(), sorted, "n beyond the records: all of them");
    assert_eq!(
        rdd.top_by(3, |a, b| (a % 100).cmp(&(b % 100))).unwrap().iter().map(|x| x % 100).collect::<Vec<_>>(),
        vec![99, 99, 99]
    );
}

#[test]
fn the_union_of_many_one_or_no_datasets() {
    let cluster = StepCluster::builder().workers(2).build();
    let ctx = cluster.context();
    let rdds: Vec<_> = (0..4u32).map(|i| ctx.parallelize(vec![i * 10, i * 10 + 1], 2).unwrap()).collect();
    assert_eq!(ctx.union(&rdds).collect().unwrap(), vec![0, 1, 10, 11, 20, 21, 30, 31]);
    assert_eq!(ctx.union(&rdds).num_partitions(), 8);
    // The Spark idiom over a list of one: the rest is empty.
    let one = &rdds[..1];
    assert_eq!(one[0].union(&one[1..]).collect().unwrap(), vec![0, 1]);
    assert_eq!(ctx.union(one).collect().unwrap(), vec![0, 1]);
    assert_eq!(ctx.union::<u32>(&[]).count().unwrap(), 0);
}

#[test]
fn time_minus_a_duration_and_a_readable_debug() {
    let t = Time::from_millis(2500);
    assert_eq!(t - Duration::from_millis(1000), Time::from_millis(1500));
    assert_eq!(Time::from_millis(10) - Duration::from_secs(1), Time::ZERO);
    assert_eq!(format!("{t:?}"), "Time(2.500s)");
    assert_eq!(format!("{:?}", vec![Time::from_millis(1000)]), "[Time(1.000s)]");
}

#[test]
fn map_with_state_functions_get_the_batch_time() {
    // Sessions: the time each key was first and last seen, emitted at every record.
    let spec =
        StateSpec::function_with_time(|time: Time, k: &char, v: Option<u32>, state: &mut State<(Time, Time)>| {
            v?;
            let first = state.get().map_or(time, |s| s.0);
            state.update((first, time));
            Some((*k, first.as_millis(), time.as_millis()))
        })
        .partitions(2);
    let input = vec![vec![('a', 1)], vec![('b', 1)], vec![('a', 1)]];
    for worker_graphs in [false, true] {
        let out = StreamTest::new()
            .worker_graphs(worker_graphs)
            .run(input.clone(), |s| s.map_with_state(spec.clone()).unwrap().into_stream())
            .unwrap();
        assert_eq!(out, vec![vec![('a', 1000, 1000)], vec![('b', 2000, 2000)], vec![('a', 1000, 3000)]]);
    }
}

#[test]
fn update_state_by_key_starts_from_the_initial_state() {
    let input = vec![vec![('a', 1u64), ('b', 2)], vec![], vec![('a', 1)]];
    for worker_graphs in [false, true] {
        let mut out = StreamTest::new()
            .worker_graphs(worker_graphs)
            .run(input.clone(), |s| {
                // Partitioned otherwise than the state: moved into it at the first batch.
                let initial = s.context().context().parallelize(vec![('a', 100u64), ('z', 5)], 3).unwrap();
                s.update_state_by_key_with_initial(
                    |vs: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + vs.iter().sum::<u64>()),
                    2,
                    initial,
                )
                .unwrap()
            })
            .unwrap();
        out.iter_mut().for_each(|b| b.sort());
        assert_eq!(
            out,
            vec![
                vec![('a', 101), ('b', 2), ('z', 5)],
                vec![('a', 101), ('b', 2), ('z', 5)],
                vec![('a', 102), ('b', 2), ('z', 5)],
            ],
            "worker graphs {worker_graphs}"
        );
    }
}
