//! What checkpoints bound: the lineage of a stateful stream (a later batch never reaches past
//! the last checkpoint) and the memory of a long run (the block store and the graph stay under
//! a fixed size over thousands of batches).
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions; a failure is the test failing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{DStream, Error, ManualClock, QueueHandle, StepCluster, StreamingContext, Time};
use dstream_storage::Memory;

/// Per batch: how many input batches the state's lineage reaches.
type Reach = Arc<Mutex<Vec<usize>>>;

/// Running counts of the keys `k % 50` over a queue stream, every batch's state checked by
/// `check`; with checkpointing every `every` batches when `every` is given.
fn counting(
    cluster: &StepCluster,
    every: Option<u64>,
    check: impl Fn(&dstream::Rdd<(u64, u64)>) -> Result<(), Error> + Send + Sync + 'static,
) -> (StreamingContext, QueueHandle<u64>) {
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let job = move |ssc: &StreamingContext| {
        let (queue, numbers) = ssc.queue_stream::<u64>(2);
        let state: DStream<(u64, u64)> = numbers
            .map(|n| (n % 50, 1u64))
            .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.len() as u64), 2)?;
        let state = match every {
            Some(k) => state.checkpoint(Duration::from_secs(k))?,
            None => state,
        };
        state.foreach_rdd(move |rdd, _| check(rdd))?;
        Ok(queue)
    };
    let interval = Duration::from_secs(1);
    match every {
        Some(_) => {
            let checkpointing = dstream_storage::checkpointing(Memory::new());
            StreamingContext::get_or_create(cluster.context(), interval, clock, checkpointing, job).unwrap()
        }
        None => StreamingContext::create(cluster.context(), interval, clock, job).unwrap(),
    }
}

/// Runs `batches` batches of 20 numbers each.
fn run(ssc: &StreamingContext, queue: &QueueHandle<u64>, batches: u64, mut after: impl FnMut(u64)) {
    for k in 0..batches {
        queue.push((k * 20..k * 20 + 20).collect());
        ssc.step().unwrap();
        after(k + 1);
    }
}

fn reach_of(reach: &Reach) -> impl Fn(&dstream::Rdd<(u64, u64)>) -> Result<(), Error> + Send + Sync + 'static {
    let reach = Arc::clone(reach);
    move |rdd| {
        // The input datasets of the queue stream are the `input` ancestors.
        let inputs = rdd.lineage().iter().filter(|(_, name)| *name == "input").count();
        reach.lock().unwrap().push(inputs);
        Ok(())
    }
}

#[test]
fn after_a_checkpoint_the_state_reaches_no_batch_before_it() {
    let cluster = StepCluster::builder().workers(2).build();
    let reach = Reach::default();
    let (ssc, queue) = counting(&cluster, Some(3), reach_of(&reach));
    run(&ssc, &queue, 10, |_| {});
    // The checkpoint of batch 3 (6, 9) is cut after its outputs: batch 4's state reads its
    // own input and the checkpoint, nothing older.
    assert_eq!(*reach.lock().unwrap(), vec![1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);

    // Without checkpoints the lineage reaches back to the first batch.
    let cluster = StepCluster::builder().workers(2).build();
    let reach = Reach::default();
    let (ssc, queue) = counting(&cluster, None, reach_of(&reach));
    run(&ssc, &queue, 10, |_| {});
    assert_eq!(*reach.lock().unwrap(), (1..=10).collect::<Vec<_>>());
}

#[test]
fn five_thousand_batches_keep_the_block_store_and_the_graph_bounded() {
    const BATCHES: u64 = 5_000;
    let cluster = StepCluster::builder().workers(2).build();
    let last = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&last);
    let (ssc, queue) = counting(&cluster, Some(10), move |rdd| {
        *sink.lock().unwrap() = rdd.collect()?;
        Ok(())
    });
    let graph = Arc::clone(ssc.context().graph());
    let (mut max_bytes, mut max_rdds) = (0u64, 0usize);
    run(&ssc, &queue, BATCHES, |k| {
        if k > 20 {
            max_bytes = max_bytes.max(cluster.stored_bytes().iter().sum());
            max_rdds = max_rdds.max(graph.live_rdds());
        }
    });
    // Every key counted every record: the state is right after 5,000 batches.
    let total: u64 = last.lock().unwrap().iter().map(|(_, c)| c).sum();
    assert_eq!(total, BATCHES * 20);
    // At most one checkpoint interval of states and batch shuffles is alive: 50 keys in a few
    // hundred bytes per state, about 2 KB in all, whatever the run's length (without
    // checkpoints the same job holds 80 KB and 2,500 datasets after 500 batches).
    assert!(max_bytes < 16 << 10, "the block stores grew to {max_bytes} bytes");
    assert!(max_rdds < 100, "{max_rdds} datasets alive");
}
