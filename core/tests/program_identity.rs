//! Identities any process can compute: the program's fingerprint is the same in every run and
//! at every batch, differs when the program does, and every dataset a batch generates has an
//! id made of its scope (stream or output, batch time) and its place in it.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{
    DStream, Error, ManualClock, ProgramSummary, RddId, Scope, StepCluster, StreamId, StreamingContext, Time,
};

const SECOND: Duration = Duration::from_secs(1);

/// How a variant of the test program differs from the base one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Base,
    Operator,
    RecordType,
    WindowLength,
    Slide,
    Partitions,
    Output,
    Topology,
}

/// The ids every output saw, batch by batch: (output's dataset, one derived inside the output).
type Seen = Arc<Mutex<Vec<(RddId, RddId)>>>;

/// Builds the test program on a fresh cluster of `workers` workers; returns the context, the
/// queue feeding it and what its output sees.
fn build(variant: Variant, workers: u32) -> (StreamingContext, dstream::QueueHandle<String>, Seen) {
    let cluster = StepCluster::builder().workers(workers).seed(u64::from(workers)).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), SECOND, clock).unwrap();
    let static_words = cluster.context().parallelize(vec![("a".to_string(), 0u64)], 2).unwrap();
    let (queue, lines) = ssc.queue_stream::<String>(2);
    let words: DStream<String> = match variant {
        Variant::Operator => lines.filter(|l| !l.is_empty()),
        _ => lines.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>()),
    };
    let pairs = words.map(|w| (w, 1u64));
    let pairs = match variant {
        Variant::Topology => pairs.union(std::slice::from_ref(&pairs)).unwrap(),
        _ => pairs,
    };
    let length = if variant == Variant::WindowLength { 2 * SECOND } else { 4 * SECOND };
    let slide = if variant == Variant::Slide { 2 * SECOND } else { SECOND };
    let partitions = if variant == Variant::Partitions { 3 } else { 2 };
    let counts = pairs
        .reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, length, slide, partitions)
        .unwrap();
    let joined = counts.transform(move |rdd, _| Ok(rdd.union(std::slice::from_ref(&static_words))));
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    if variant == Variant::RecordType {
        joined.map(|(w, n)| (w, n as i64)).foreach_rdd(move |rdd, _| record(&sink, rdd)).unwrap();
    } else if variant == Variant::Output {
        joined.print(3).unwrap();
    } else {
        joined.foreach_rdd(move |rdd, _| record(&sink, rdd)).unwrap();
    }
    (ssc, queue, seen)
}

fn record<T: dstream::Data>(seen: &Seen, rdd: &dstream::Rdd<T>) -> Result<(), Error> {
    let derived = rdd.map(|r| r.clone());
    derived.count()?;
    seen.lock().unwrap().push((rdd.id(), derived.id()));
    Ok(())
}

fn fingerprint(ssc: &StreamingContext) -> u64 {
    ssc.context().graph().fingerprint()
}

#[test]
fn the_fingerprint_is_the_same_in_every_run_and_at_every_batch() {
    let (a, queue, _) = build(Variant::Base, 2);
    let (b, _, _) = build(Variant::Base, 3);
    let before = fingerprint(&a);
    assert_eq!(before, fingerprint(&b), "two runs of one program");
    assert_eq!(a.context().graph().program(), b.context().graph().program());
    for i in 0..5 {
        queue.push(vec![format!("x y{i}")]);
        a.step().unwrap();
        assert_eq!(fingerprint(&a), before, "after batch {i}");
    }
    // What the driver makes after the program was built is not the program either.
    let _adhoc = a.context().parallelize(vec![1u8], 1).unwrap();
    assert_eq!(fingerprint(&a), before);
}

#[test]
fn the_fingerprint_changes_with_the_program() {
    let base = build(Variant::Base, 2).0.context().graph().program();
    let variants = [
        (Variant::Operator, "flat_map"),
        (Variant::RecordType, "i64"),
        (Variant::WindowLength, "length=4s"),
        (Variant::Slide, "slide=1s"),
        (Variant::Partitions, "partitions=2"),
        (Variant::Output, "foreach_rdd"),
        (Variant::Topology, "union"),
    ];
    for (variant, named) in variants {
        let other = build(variant, 2).0.context().graph().program();
        assert_ne!(base.fingerprint, other.fingerprint, "{variant:?}");
        let difference = base.difference(&other).unwrap();
        assert!(difference.contains(named), "{variant:?}: {difference}");
    }
}

#[test]
fn a_batch_numbers_its_datasets_in_its_own_scope_whatever_ran_before() {
    let run = |workers: u32| {
        let (ssc, queue, seen) = build(Variant::Base, workers);
        for i in 0..4 {
            queue.push(vec![format!("w{} w{}", i % 2, i)]);
            ssc.step().unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        seen
    };
    let one = run(1);
    assert_eq!(one, run(4), "the ids do not depend on the cluster");
    assert_eq!(one.len(), 4);
    for (k, (output, derived)) in one.iter().enumerate() {
        let time = Time::from_nanos((k as u64 + 1) * 1_000_000_000);
        // The output reads the transform's dataset: the last stream, in its batch's scope.
        assert!(matches!(output.scope, Scope::Batch { time: t, .. } if t == time), "{output}");
        // What the output derives is numbered in the output's scope, from zero.
        assert_eq!(*derived, RddId { scope: Scope::Output { output: 0, time }, index: 0 }, "{derived}");
    }
    // Each batch's transform dataset is the same node of its scope: the same index every batch.
    let indices: Vec<u32> = one.iter().map(|(o, _)| o.index).collect();
    assert!(indices.windows(2).all(|w| w[0] == w[1]), "{indices:?}");
    let streams: Vec<StreamId> = one
        .iter()
        .map(|(o, _)| match o.scope {
            Scope::Batch { stream, .. } => stream,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(streams.windows(2).all(|w| w[0] == w[1]), "{streams:?}");
}

#[test]
fn datasets_made_after_the_program_are_the_drivers() {
    let (ssc, queue, _) = build(Variant::Base, 2);
    let before = ssc.context().parallelize(vec![1u32], 1).unwrap();
    assert_eq!(before.id().scope, Scope::Program, "not built yet: still the program");
    queue.push(vec!["a".into()]);
    ssc.step().unwrap();
    let after = ssc.context().parallelize(vec![1u32], 1).unwrap();
    assert_eq!(after.id(), RddId { scope: Scope::Driver, index: 0 });
    assert_eq!(after.map(|x| x + 1).collect().unwrap(), vec![2], "in one process the driver's datasets still run");
}

#[test]
fn summaries_name_what_differs() {
    let a = ProgramSummary::new(vec!["x".into(), "y".into()]);
    let longer = ProgramSummary::new(vec!["x".into(), "y".into(), "z".into()]);
    assert_eq!(a.difference(&a.clone()), None);
    assert!(a.difference(&longer).unwrap().contains("`z`"));
    assert!(longer.difference(&a).unwrap().contains("`z`"));
}
