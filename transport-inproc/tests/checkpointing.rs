//! Checkpoints of a context running on its own thread on a `LocalCluster`: they are written
//! while the batches go on (a write held back does not hold a batch back), applied at a later
//! batch boundary, and a program stopped this way resumes in another cluster.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions; a failure is the test failing.

use std::io::{self, Read, Write};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use dstream::{
    BatchInfo, CheckpointInfo, Error, ManualClock, QueueHandle, Storage, StorageError, StreamingContext,
    StreamingListener, Time,
};
use dstream_inproc::LocalCluster;
use dstream_storage::Memory;

const SEC: Duration = Duration::from_secs(1);

/// A store whose puts of data checkpoints wait until the gate opens.
#[derive(Clone)]
struct Gated {
    inner: Memory,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Gated {
    fn new(open: bool) -> Gated {
        Gated { inner: Memory::new(), open: Arc::new((Mutex::new(open), Condvar::new())) }
    }

    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

impl Storage for Gated {
    fn put_with(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        if name.starts_with("state/") {
            let (lock, cvar) = &*self.open;
            let _open = cvar.wait_while(lock.lock().unwrap(), |open| !*open).unwrap();
        }
        self.inner.put_with(name, write)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, StorageError> {
        self.inner.open(name)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        self.inner.delete(name)
    }
}

/// Sends batch completions and checkpoints to the test.
struct Events(Mutex<Sender<Event>>);

#[derive(Debug, PartialEq)]
enum Event {
    Batch(Time),
    Checkpoint(Time),
}

impl StreamingListener for Events {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let _ = self.0.lock().unwrap().send(Event::Batch(info.time));
    }

    fn on_checkpoint(&self, info: &CheckpointInfo) {
        assert_eq!(info.error, None);
        let _ = self.0.lock().unwrap().send(Event::Checkpoint(info.time));
    }
}

type States = Arc<Mutex<Vec<(Time, Vec<(u64, u64)>)>>>;

/// Running counts of `n % 5`, checkpointed every 2 batches, each batch's state recorded.
fn program(
    cluster: &LocalCluster,
    storage: &Gated,
    clock: Arc<ManualClock>,
    states: &States,
) -> (StreamingContext, QueueHandle<u64>) {
    let sink = Arc::clone(states);
    let checkpointing = dstream_storage::checkpointing(storage.clone());
    StreamingContext::get_or_create(cluster.context(), SEC, clock, checkpointing, move |ssc| {
        let (queue, numbers) = ssc.queue_stream::<u64>(2);
        numbers
            .map(|n| (n % 5, 1u64))
            .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.len() as u64), 2)?
            .checkpoint(2 * SEC)?
            .foreach_rdd(move |rdd, time| {
                let mut state = rdd.collect()?;
                state.sort();
                sink.lock().unwrap().push((time, state));
                Ok(())
            })?;
        Ok::<_, Error>(queue)
    })
    .unwrap()
}

fn batch(k: u64) -> Vec<u64> {
    (0..k * 3).collect()
}

fn secs(s: u64) -> Time {
    Time::from_millis(s * 1000)
}

fn next(events: &Receiver<Event>) -> Event {
    events.recv_timeout(Duration::from_secs(30)).expect("an event within 30 s")
}

#[test]
fn batches_go_on_while_a_checkpoint_is_written_and_the_program_resumes_elsewhere() {
    let storage = Gated::new(false);
    let states = States::default();
    let (tx, events) = channel();
    {
        // Writes hold their task slots: two partitions writing leave two of the four slots free.
        let cluster = LocalCluster::builder().workers(2).threads(4).slots(2).build().unwrap();
        let clock = Arc::new(ManualClock::new(Time::ZERO));
        let (ssc, queue) = program(&cluster, &storage, Arc::clone(&clock), &states);
        ssc.add_listener(Arc::new(Events(Mutex::new(tx.clone()))));
        let handle = ssc.start().unwrap();
        // Batch 2 starts a checkpoint whose write cannot finish; batches 3 and 4 run all the same.
        for k in 1..=4 {
            queue.push(batch(k));
            clock.advance(SEC);
            assert_eq!(next(&events), Event::Batch(secs(k)));
        }
        storage.open();
        queue.push(batch(5));
        clock.advance(SEC);
        // The checkpoints of batches 2 and 4 are applied at a batch boundary once written (at
        // batch 5 if done by then), and a stop waits for the ones in flight.
        let mut seen = Vec::new();
        loop {
            match next(&events) {
                Event::Batch(t) => {
                    assert_eq!(t, secs(5));
                    break;
                }
                Event::Checkpoint(t) => seen.push(t),
            }
        }
        handle.stop(false).unwrap();
        while let Ok(event) = events.try_recv() {
            let Event::Checkpoint(t) = event else { panic!("{event:?} after the stop") };
            seen.push(t);
        }
        assert_eq!(seen, vec![secs(2), secs(4)]);
    }
    // Another cluster resumes after batch 5.
    let cluster = LocalCluster::builder().workers(3).threads(2).build().unwrap();
    let (ssc, queue) = program(&cluster, &storage, Arc::new(ManualClock::new(Time::ZERO)), &states);
    for k in 6..=7 {
        queue.push(batch(k));
        ssc.step().unwrap();
    }
    let got = states.lock().unwrap().clone();
    let mut counts = [0u64; 5];
    let expected: Vec<(Time, Vec<(u64, u64)>)> = (1..=7)
        .map(|k| {
            batch(k).iter().for_each(|n| counts[(n % 5) as usize] += 1);
            (secs(k), (0..5).zip(counts).filter(|(_, c)| *c > 0).collect())
        })
        .collect();
    assert_eq!(got, expected);
}
