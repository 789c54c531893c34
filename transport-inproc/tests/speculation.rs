//! Speculation on real threads: a task stuck on its worker gets a copy elsewhere once the rest
//! of its stage finished, the copy's result completes the job, and the stuck attempt's late
//! result changes nothing.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use dstream_inproc::LocalCluster;

/// Holds the first caller until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[test]
fn a_stuck_task_gets_a_copy_whose_result_completes_the_job() {
    let cluster = LocalCluster::builder().workers(2).threads(4).slots(2).build().unwrap();
    let ctx = cluster.context();
    let (gate, stuck) = (Arc::new(Gate::default()), Arc::new(AtomicBool::new(false)));
    let (g, s) = (Arc::clone(&gate), Arc::clone(&stuck));
    let data = ctx.parallelize((0..400u64).collect(), 4).unwrap().map(move |x| {
        // The first attempt of the partition holding record 0 is held until the job is over.
        if x == 0 && !s.swap(true, Ordering::SeqCst) {
            g.wait();
        }
        x + 1
    });
    // The job runs on a thread of its own, so that a missing copy fails the test (after a
    // bound) instead of hanging it: only a copy can finish the stuck partition.
    let (done, finished) = std::sync::mpsc::channel();
    let job = std::thread::spawn(move || {
        let _ = done.send(data.collect());
    });
    let result = finished.recv_timeout(Duration::from_secs(60));
    gate.open();
    job.join().unwrap();
    let sum: u64 = result.expect("the copy completes the job").unwrap().iter().sum();
    assert_eq!(sum, (1..=400u64).sum::<u64>());
    assert_eq!(cluster.speculated_tasks(), 1);
    // The cluster goes on; the late attempt's result was dropped.
    assert_eq!(ctx.parallelize((0..100u32).collect(), 7).unwrap().count().unwrap(), 100);
}
