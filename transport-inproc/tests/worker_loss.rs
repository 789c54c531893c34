//! A worker killed during a job: the in-process runtime reports its thread gone, the driver
//! relaunches its tasks and recomputes its shuffle outputs on the remaining workers, and the
//! job gives the fault-free result. The test waits on events (a channel, the job's result),
//! never on sleeps.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use dstream::{Error, LossReason, WorkerId};
use dstream_inproc::LocalCluster;

/// Tasks wait at the gate until it opens.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    lock: Mutex<()>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut guard = self.lock.lock().unwrap();
        while !self.open.load(Ordering::SeqCst) {
            guard = self.opened.wait(guard).unwrap();
        }
    }

    fn open(&self) {
        let _guard = self.lock.lock().unwrap();
        self.open.store(true, Ordering::SeqCst);
        self.opened.notify_all();
    }
}

#[test]
fn a_job_completes_on_the_remaining_workers_when_one_is_killed() {
    const KEYS: u64 = 600;
    let want: Vec<(u64, u64)> = (0..KEYS).map(|k| (k, (0..12_000u64).filter(|x| x % KEYS == k).sum())).collect();
    let cluster = LocalCluster::builder()
        .workers(3)
        .threads(4)
        .slots(2)
        // A killed worker is reported at once; the timeout only backs that up.
        .heartbeat_interval(Duration::from_millis(20))
        .heartbeat_timeout(Duration::from_millis(500))
        // The map calls are counted exactly: no copy of a task held at the gate.
        .speculation(false)
        .build()
        .unwrap();
    let ctx = cluster.context();
    let gate = Arc::new(Gate::default());
    let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
    let g = Arc::clone(&gate);
    let mapped = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&mapped);
    // The map stage runs freely; every reduce task (six, two per worker, all launched at once
    // when the map stage ends) waits at the gate, so worker 1 holds map outputs and running
    // reduce tasks when it is killed.
    let sums = ctx
        .parallelize((0..12_000u64).collect(), 6)
        .unwrap()
        .map(move |x| {
            m.fetch_add(1, Ordering::Relaxed);
            (x % KEYS, x)
        })
        .reduce_by_key(|a, b| a + b)
        .map(move |kv| {
            if !g.open.load(Ordering::SeqCst) {
                let _ = started_tx.try_send(());
                g.pass();
            }
            kv
        });
    std::thread::scope(|s| {
        let job = s.spawn(|| sums.collect());
        started.recv_timeout(Duration::from_secs(60)).expect("a reduce task started");
        cluster.kill_worker(WorkerId(1)).unwrap();
        gate.open();
        let mut got = job.join().unwrap().unwrap();
        got.sort();
        assert_eq!(got, want);
    });
    // Worker 1's map outputs (two partitions of 2,000 records) were computed again.
    assert_eq!(mapped.load(Ordering::Relaxed), 12_000 + 4_000);
    let lost = cluster.lost_workers();
    assert!(matches!(&lost[..], [(WorkerId(1), LossReason::PeerLost | LossReason::Timeout { .. })]), "{lost:?}");
    // The cluster goes on with two workers.
    assert_eq!(ctx.parallelize((0..100u32).collect(), 7).unwrap().count().unwrap(), 100);
    assert!(cluster.kill_worker(WorkerId(9)).is_err());
}

#[test]
fn a_job_fails_with_a_typed_error_once_every_worker_is_gone_for_the_bounded_wait() {
    let wait = Duration::from_millis(300);
    let cluster = LocalCluster::builder().workers(2).threads(2).workers_wait_max(wait).build().unwrap();
    let ctx = cluster.context();
    let data = ctx.parallelize((0..100u32).collect(), 4).unwrap();
    assert_eq!(data.count().unwrap(), 100);
    cluster.kill_worker(WorkerId(0)).unwrap();
    cluster.kill_worker(WorkerId(1)).unwrap();
    match data.count() {
        Err(Error::NoWorkers { waited }) => assert!(waited >= wait, "waited {waited:?}"),
        other => panic!("expected the no-workers error, got {other:?}"),
    }
}
