//! How batches run: a failed batch ends the context, `step` and `start` do not mix, and
//! incremental windows shorter than their slide skip the batches between windows.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::testing::StreamTest;
use dstream::{Error, ManualClock, StepCluster, StreamingContext, StreamingState, Time};

const S: Duration = Duration::from_secs(1);

fn context(cluster: &StepCluster) -> StreamingContext {
    StreamingContext::new(cluster.context(), S, Arc::new(ManualClock::new(Time::ZERO))).unwrap()
}

#[test]
fn a_failed_step_stops_the_context_and_loses_no_batch_silently() {
    let cluster = StepCluster::builder().build();
    let ssc = context(&cluster);
    let (queue, numbers) = ssc.queue_stream::<u32>(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let failed_once = Arc::new(AtomicBool::new(false));
    let (s, f) = (Arc::clone(&seen), Arc::clone(&failed_once));
    numbers
        .foreach_rdd(move |rdd, time| {
            let records = rdd.collect()?;
            if records == vec![2] && !f.swap(true, Ordering::SeqCst) {
                return Err(Error::BatchFailed("the sink is down".into()));
            }
            s.lock().unwrap().push((time.as_millis(), records));
            Ok(())
        })
        .unwrap();
    for batch in [vec![1], vec![2], vec![3]] {
        queue.push(batch);
    }
    ssc.step().unwrap();
    assert!(matches!(ssc.step(), Err(Error::BatchFailed(_))));
    assert_eq!(ssc.state(), StreamingState::Stopped);
    assert!(matches!(ssc.step(), Err(Error::StreamingStopped)));
    assert_eq!(*seen.lock().unwrap(), vec![(1000, vec![1])]);
}

#[test]
fn step_is_refused_once_the_batch_thread_runs() {
    let cluster = StepCluster::builder().build();
    let ssc = context(&cluster);
    let (_, numbers) = ssc.queue_stream::<u32>(1);
    numbers.foreach_rdd(|_, _| Ok(())).unwrap();
    let handle = ssc.start().unwrap();
    assert!(matches!(ssc.step(), Err(Error::StreamingStarted { operation: "step" })));
    handle.stop(false).unwrap();
    assert!(matches!(ssc.step(), Err(Error::StreamingStopped)));
}

#[test]
fn incremental_windows_shorter_than_their_slide_skip_the_batches_between() {
    let input = vec![vec![('a', 1)], vec![('b', 2)], vec![('a', 4)], vec![('c', 8)], vec![], vec![('a', 16)]];
    for workers in [1, 2] {
        let test = StreamTest::new().workers(workers);
        let plain = test.run(input.clone(), |x| x.reduce_by_key_and_window(|a, b| a + b, S, 2 * S).unwrap()).unwrap();
        let inc = test
            .run(input.clone(), |x| {
                x.reduce_by_key_and_window_inv_filtered(|a, b| a + b, |a, b| a - b, S, 2 * S, 2, |(_, v)| *v != 0)
                    .unwrap()
            })
            .unwrap();
        let sorted = |mut v: Vec<Vec<(char, i32)>>| {
            v.iter_mut().for_each(|b| b.sort());
            v
        };
        let expected = vec![vec![], vec![('b', 2)], vec![], vec![('c', 8)], vec![], vec![('a', 16)]];
        assert_eq!(sorted(plain), expected, "{workers} workers");
        assert_eq!(sorted(inc), expected, "{workers} workers");
        let counts = test.run(vec![vec![1], vec![2], vec![3], vec![4]], |x| {
            x.count_by_value_and_window_with_partitions(S, 2 * S, 1).unwrap()
        });
        assert_eq!(counts.unwrap(), vec![vec![], vec![(2, 1)], vec![], vec![(4, 1)]], "{workers} workers");
    }
}
