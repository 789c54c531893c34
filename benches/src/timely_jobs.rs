//! The jobs on timely dataflow, written as a timely user would: epochs are batches; each
//! worker feeds its share of the records (every `workers`-th, stamped with its scheduled
//! emission time) into an input; WordCount and TopKCount count words per epoch on each worker
//! (combining before the exchange), exchange the counts by word hash, and keep a window per
//! worker that adds each epoch's counts and subtracts those of the epoch leaving it, once the
//! frontier has passed the epoch. Grep counts matches per worker and epoch. Each worker
//! reports its part of an epoch's output when the frontier passes the epoch.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use dstream::generator::{Record, RecordPool};
use dstream::hash::stable_hash;
use dstream::Time;
use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::{InputHandleVec, StreamVec};

use crate::collector::Collector;
use crate::feed::{emitted_ns, Feed};
use crate::jobs::{grep_matches, words, Job, Output};
use crate::{HarnessError, Setup, ROUND};

/// Runs `setup`'s job over `feed` on `setup.workers` timely worker threads until its last
/// batch is output or `collector` says stop.
pub fn run(setup: &Setup, feed: Feed, collector: &Arc<Collector>) -> Result<(), HarnessError> {
    let setup = *setup;
    let pool = RecordPool::standard();
    let shared = Arc::clone(collector);
    let guards = timely::execute(timely::Config::process(setup.workers.max(1)), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input: InputHandleVec<u64, Record> = InputHandleVec::new();
        let collector = Arc::clone(&shared);
        worker.dataflow::<u64, _, _>(|scope| {
            let records = input.to_stream(scope);
            match setup.job {
                Job::Grep => grep(records, feed, Arc::clone(&collector)),
                _ => window(count_words(records), setup, feed, Arc::clone(&collector)),
            }
        });
        // Feed this worker's share, advancing the epoch as each batch's records are all due.
        let (mut next, mut epoch, batches, total) = (index as u64, 0u64, feed.batches(), feed.total());
        while epoch < batches && !collector.stopping() {
            collector.input_late(feed.late_by(next));
            let due = feed.due_now();
            while next < due {
                while next >= feed.end(epoch) {
                    epoch += 1;
                    input.advance_to(epoch);
                }
                input.send(pool.record(next, Time::from_nanos(emitted_ns(rate(&feed), next))));
                next += peers as u64;
            }
            while epoch < batches && due >= feed.end(epoch) && next >= feed.end(epoch) {
                epoch += 1;
                input.advance_to(epoch);
            }
            let wait = if next < total { feed.wait_for(next).max(ROUND) } else { ROUND };
            worker.step_or_park(Some(wait));
        }
        drop(input);
        while !collector.stopping() && worker.step_or_park(Some(ROUND * 10)) {}
    })
    .map_err(HarnessError::Worker)?;
    if let Feed::Timed { .. } = feed {
        collector.wait(crate::deadline(&feed, collector));
        collector.stop();
    }
    for result in guards.join() {
        result.map_err(|e| HarnessError::Worker(format!("a timely worker failed: {e}")))?;
    }
    Ok(())
}

fn rate(feed: &Feed) -> u64 {
    match *feed {
        Feed::Timed { rate, .. } => rate,
        Feed::Fixed { .. } => 0,
    }
}

/// A sink that hands each epoch's data to `absorb` as it arrives and calls `close` for every
/// epoch below `feed.batches()` once the frontier has passed it, in order (also for epochs
/// that brought this worker no data).
fn epoch_sink<'s, D: 'static, P>(
    stream: StreamVec<'s, u64, D>,
    pact: P,
    name: &str,
    feed: Feed,
    mut absorb: impl FnMut(u64, &mut Vec<D>) + 'static,
    mut close: impl FnMut(u64) + 'static,
) where
    P: timely::dataflow::channels::pact::ParallelizationContract<u64, Vec<D>>,
{
    let mut next = 0u64;
    stream.sink(pact, name, move |(input, frontier)| {
        input.for_each_stamp(|cap, data| {
            // Every message here is sent under a capability: the input's or an operator's.
            let Some(&epoch) = cap.least() else { return };
            for batch in data {
                absorb(epoch, batch);
            }
        });
        while next < feed.batches() && !frontier.less_equal(&next) {
            close(next);
            next += 1;
        }
    });
}

/// Grep: matches per epoch on each worker.
fn grep(records: StreamVec<'_, u64, Record>, feed: Feed, collector: Arc<Collector>) {
    let counts: Rc<RefCell<BTreeMap<u64, u64>>> = Rc::default();
    let seen = Rc::clone(&counts);
    epoch_sink(
        records,
        Pipeline,
        "Grep",
        feed,
        move |epoch, batch| {
            let n = batch.iter().filter(|r| grep_matches(r.as_bytes())).count() as u64;
            *seen.borrow_mut().entry(epoch).or_insert(0) += n;
        },
        move |epoch| {
            let n = counts.borrow_mut().remove(&epoch).unwrap_or(0);
            collector.report(
                epoch,
                feed.first(epoch),
                feed.end(epoch),
                feed.close_ns(epoch),
                feed.now_ns(),
                Output::Grep(n),
            );
        },
    );
}

/// Word counts per epoch on each worker, emitted when the frontier passes the epoch.
fn count_words<'s>(records: StreamVec<'s, u64, Record>) -> StreamVec<'s, u64, (String, u64)> {
    records.unary_frontier(Pipeline, "CountWords", |_cap, _info| {
        let mut open: BTreeMap<u64, (Capability<u64>, FxHashMap<String, u64>)> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each_stamp(|cap, data| {
                let Some(&epoch) = cap.least() else { return };
                let (_, counts) = open.entry(epoch).or_insert_with(|| (cap.delayed(&epoch, 0), FxHashMap::default()));
                for batch in data {
                    for record in batch.iter() {
                        for word in words(record.as_bytes()) {
                            match counts.get_mut(word) {
                                Some(n) => *n += 1,
                                None => {
                                    counts.insert(word.to_owned(), 1);
                                }
                            }
                        }
                    }
                }
            });
            while let Some(entry) = open.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (cap, counts) = entry.remove();
                output.session(&cap).give_iterator(counts.into_iter());
            }
        }
    })
}

/// The window of the words this worker owns; reports WordCount's or TopKCount's part.
fn window<'s>(counts: StreamVec<'s, u64, (String, u64)>, setup: Setup, feed: Feed, collector: Arc<Collector>) {
    let arrived: Rc<RefCell<BTreeMap<u64, Vec<(String, u64)>>>> = Rc::default();
    let sink = Rc::clone(&arrived);
    let mut window: FxHashMap<String, u64> = FxHashMap::default();
    let mut history: VecDeque<Vec<(String, u64)>> = VecDeque::new();
    epoch_sink(
        counts,
        Exchange::new(|(word, _): &(String, u64)| stable_hash(word.as_str())),
        "Window",
        feed,
        move |epoch, batch| sink.borrow_mut().entry(epoch).or_default().append(batch),
        move |epoch| {
            let delta = arrived.borrow_mut().remove(&epoch).unwrap_or_default();
            for (word, n) in &delta {
                match window.get_mut(word.as_str()) {
                    Some(c) => *c += n,
                    None => {
                        window.insert(word.clone(), *n);
                    }
                }
            }
            history.push_back(delta);
            if history.len() as u64 > setup.window_batches {
                for (word, n) in history.pop_front().unwrap_or_default() {
                    if let Some(c) = window.get_mut(word.as_str()) {
                        *c -= n;
                        if *c == 0 {
                            window.remove(word.as_str());
                        }
                    }
                }
            }
            let current = window.iter().map(|(w, n)| (w.as_str(), *n));
            let part = match setup.job {
                Job::TopK => Output::top_of(current),
                _ => Output::of_window(setup.detail, current),
            };
            collector.report(epoch, feed.first(epoch), feed.end(epoch), feed.close_ns(epoch), feed.now_ns(), part);
        },
    );
}
