//! The hand-written baseline: the tightest straightforward loop for each job, with no
//! framework. One thread per worker takes every `workers`-th record of the pool, reading it in
//! place; WordCount and TopKCount count words in a per-thread `FxHashMap` keyed by slices of
//! the pool, and at the end of each batch send each word's count to the thread that owns the
//! word, which keeps that word's window (adding the batch entering it, subtracting the one
//! leaving it). Grep counts matches per thread. Each thread reports its part of each batch.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use dstream::generator::RecordPool;
use rustc_hash::FxHashMap;

use crate::collector::Collector;
use crate::feed::Feed;
use crate::jobs::{grep_matches, owner, words, Job, Output};
use crate::{HarnessError, Setup, ROUND};

/// One thread's counts for one batch, for the thread that owns these words.
type Part<'a> = (u64, Vec<(&'a str, u64)>);

/// Runs `setup`'s job over `feed` until its last batch is output or `collector` says stop.
pub fn run(setup: &Setup, feed: Feed, collector: &Collector) -> Result<(), HarnessError> {
    let pool = RecordPool::standard();
    let pool: &RecordPool = &pool;
    let workers = setup.workers.max(1);
    let (senders, receivers): (Vec<Sender<Part<'_>>>, Vec<Receiver<Part<'_>>>) =
        (0..workers).map(|_| channel()).unzip();
    std::thread::scope(|s| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(w, inbox)| {
                let senders = senders.clone();
                s.spawn(move || Thread::new(setup, w, pool, inbox, senders).run(feed, collector))
            })
            .collect();
        drop(senders);
        if let Feed::Timed { .. } = feed {
            collector.wait(crate::deadline(&feed, collector));
            collector.stop();
        }
        for h in handles {
            h.join().map_err(|_| HarnessError::Worker("a baseline thread panicked".into()))?;
        }
        Ok(())
    })
}

struct Thread<'a> {
    setup: Setup,
    index: usize,
    pool: &'a RecordPool,
    inbox: Receiver<Part<'a>>,
    peers: Vec<Sender<Part<'a>>>,
    /// Parts of later batches that arrived while this thread gathered an earlier one.
    early: Vec<Part<'a>>,
    window: FxHashMap<&'a str, u64>,
    /// The parts of the batches in the window, oldest first.
    history: VecDeque<Vec<Vec<(&'a str, u64)>>>,
}

impl<'a> Thread<'a> {
    fn new(
        setup: &Setup,
        index: usize,
        pool: &'a RecordPool,
        inbox: Receiver<Part<'a>>,
        peers: Vec<Sender<Part<'a>>>,
    ) -> Self {
        Thread {
            setup: *setup,
            index,
            pool,
            inbox,
            peers,
            early: Vec::new(),
            window: FxHashMap::default(),
            history: VecDeque::new(),
        }
    }

    fn run(mut self, feed: Feed, collector: &Collector) {
        let step = self.peers.len() as u64;
        let mut next = self.index as u64;
        let mut matches = 0u64;
        let mut counts: FxHashMap<&'a str, u64> = FxHashMap::default();
        for k in 0..feed.batches() {
            let end = feed.end(k);
            while next < end {
                collector.input_late(feed.late_by(next));
                if collector.stopping() {
                    return;
                }
                let due = feed.due_now().min(end);
                while next < due {
                    let line = self.pool.line(next);
                    if self.setup.job == Job::Grep {
                        matches += u64::from(grep_matches(line));
                    } else {
                        for word in words(line) {
                            *counts.entry(word).or_insert(0) += 1;
                        }
                    }
                    next += step;
                }
                if next < end {
                    // Pacing the input at its rate, as the generator does: the baseline emits its
                    // own records, so it waits for the next one to be due.
                    std::thread::sleep(feed.wait_for(next).max(ROUND));
                }
            }
            let part = match self.setup.job {
                Job::Grep => Output::Grep(std::mem::take(&mut matches)),
                _ => match self.slide(k, &mut counts, collector) {
                    Some(part) => part,
                    None => return,
                },
            };
            collector.report(k, feed.first(k), end, feed.close_ns(k), feed.now_ns(), part);
        }
    }

    /// Sends the batch's counts to their owners, gathers this thread's words from every
    /// thread, slides the window, and returns this thread's part of the output (None when
    /// told to stop).
    fn slide(&mut self, k: u64, counts: &mut FxHashMap<&'a str, u64>, collector: &Collector) -> Option<Output> {
        let n = self.peers.len();
        let mut outgoing: Vec<Vec<(&'a str, u64)>> = vec![Vec::new(); n];
        for (word, c) in counts.drain() {
            outgoing[owner(word, n)].push((word, c));
        }
        for (to, part) in self.peers.iter().zip(outgoing) {
            // A peer that is gone stopped the run; this thread stops at its next check.
            let _ = to.send((k, part));
        }
        let mut parts = Vec::with_capacity(n);
        parts.extend(self.early.extract_if_batch(k));
        while parts.len() < n {
            match self.inbox.recv_timeout(Duration::from_millis(10)) {
                Ok((batch, part)) if batch == k => parts.push(part),
                Ok(other) => self.early.push(other),
                Err(RecvTimeoutError::Timeout) if !collector.stopping() => {}
                Err(_) => return None,
            }
        }
        for part in &parts {
            for &(word, c) in part {
                *self.window.entry(word).or_insert(0) += c;
            }
        }
        self.history.push_back(parts);
        if self.history.len() as u64 > self.setup.window_batches {
            for part in self.history.pop_front().unwrap_or_default() {
                for (word, c) in part {
                    if let Entry::Occupied(mut e) = self.window.entry(word) {
                        *e.get_mut() -= c;
                        if *e.get() == 0 {
                            e.remove();
                        }
                    }
                }
            }
        }
        let window = self.window.iter().map(|(w, c)| (*w, *c));
        Some(match self.setup.job {
            Job::TopK => Output::top_of(window),
            _ => Output::of_window(self.setup.detail, window),
        })
    }
}

/// Takes the parts of one batch out of a list of early arrivals.
trait ExtractBatch<'a> {
    fn extract_if_batch(&mut self, k: u64) -> Vec<Vec<(&'a str, u64)>>;
}

impl<'a> ExtractBatch<'a> for Vec<Part<'a>> {
    fn extract_if_batch(&mut self, k: u64) -> Vec<Vec<(&'a str, u64)>> {
        let (now, later): (Vec<Part<'a>>, Vec<Part<'a>>) = std::mem::take(self).into_iter().partition(|(b, _)| *b == k);
        *self = later;
        now.into_iter().map(|(_, part)| part).collect()
    }
}
