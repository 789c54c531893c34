//! The batch scheduler: a sans-IO state machine that decides *when* each batch of a streaming
//! context runs and *in which order* its phases run. It does no work itself: a runtime asks it
//! for work items, executes them and reports back, always with the current time.
//!
//! # The phases of a batch
//!
//! A batch at time `t` is emitted as these work items, in this order (the checkpoint and
//! metadata phases only when the context checkpoints):
//!
//! 1. [`Phase::ApplyCheckpoints`]: the data checkpoints that ended are applied (lineage cut);
//! 2. [`Phase::CheckCheckpointFailures`]: a stream whose checkpoints keep failing fails the
//!    batch here, before any input is consumed;
//! 3. [`Phase::CloseInputs`]: the inputs close the batch (or, when a restart replays it, it
//!    is read from the input log) and, when checkpointing, each input's batch is logged;
//! 4. [`Phase::MarkPending`]: the metadata marks the batch pending;
//! 5. [`Phase::GenerateInputs`]: the inputs' datasets of `t` are generated;
//! 6. [`Phase::RunOutput`] once per output operation, in definition order;
//! 7. [`Phase::StartCheckpoints`]: the data checkpoints due at `t` start; when they are
//!    written inline ([`CheckpointWrites::Inline`]) [`Phase::ApplyCheckpoints`] follows;
//! 8. [`Phase::Forget`]: the streams forget the datasets no one needs any more;
//! 9. [`Phase::MarkCompleted`]: the metadata records the batch completed;
//! 10. [`Phase::Report`]: the batch's [`BatchReport`], timed from the `now` values given.
//!
//! A failed item ends its batch: the scheduler stops with the error and emits nothing more.
//!
//! # Missed batches
//!
//! Batch `k` (from 1) is due at `zero + k * interval`, not a nanosecond before. A batch whose
//! time has passed (the runtime woke late, or a batch took longer than the interval) runs at
//! once; several such batches run one after another, in time order, each with its own
//! input; none is skipped or merged. After a restart the batches missed while the program was
//! down run the same way.

#[cfg(test)]
mod tests;
mod work;

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::Error;
use crate::time::Time;

pub(crate) use work::{BatchFailure, BatchReport, CheckpointWrites, Config, Done, Driving, Phase, Position, Work};

/// A stop the runtime was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// After the batch in progress.
    Immediate,
    /// Once every input is drained: batches run at once until then.
    Graceful,
}

/// The batch in progress.
#[derive(Debug)]
struct Batch {
    time: Time,
    /// When its first item could start.
    started: Time,
    /// When its last reported item ended: when the next one starts.
    last_done: Time,
    /// The phases still to emit, in order.
    plan: VecDeque<Phase>,
    records: u64,
    outputs: Vec<Duration>,
}

#[derive(Debug)]
enum State {
    /// Between batches.
    Idle,
    /// A batch runs.
    Running(Batch),
    /// Stopped; nothing is emitted again.
    Stopped,
}

/// Decides when the batches of a streaming context run and in which order their phases run
/// (see the [module documentation](self)); the runtime executes what it emits.
///
/// # Driving it
///
/// Every call that takes `now` takes the current time, which never goes backwards. A runtime
/// driven by the clock ([`Driving::Clock`]), in a loop:
///
/// 1. calls [`BatchScheduler::handle_timeout`], which starts the batch that is due, if any;
/// 2. when a stop was asked for, calls [`BatchScheduler::handle_stop`] (again and again does no
///    harm; it may also be called between any two other calls);
/// 3. drains [`BatchScheduler::poll_work`]: executes each item and reports it with
///    [`BatchScheduler::handle_work_done`] (the item itself, the time it ended, its result)
///    before polling the next one; at most one item is out at a time, so `poll_work` returns
///    `None` while one is;
/// 4. reads [`BatchScheduler::poll_stopped`]: once it returns the outcome, the scheduler has
///    stopped for good and the loop ends;
/// 5. reads [`BatchScheduler::poll_timeout`] and waits until that time (or a stop request),
///    then goes back to 1.
///
/// A runtime driven by steps ([`Driving::Steps`]) calls [`BatchScheduler::step`] to run the
/// next batch now, then steps 3 and 4: when `poll_work` returns `None` the batch is over, or
/// failed (`poll_stopped` says so).
///
/// # Invariants (asserted)
///
/// Batches complete in time order, each exactly once, batch `k` at `zero + k * interval`; a
/// batch's outputs are emitted one per output, in order, after its inputs are closed; a
/// reported item is the one that was polled, and its result is of that item's kind; nothing is
/// emitted after the scheduler stopped; after `handle_timeout(now)` or `handle_work_done(now,
/// ..)`, `poll_timeout` is `None` or later than `now`.
#[derive(Debug)]
pub(crate) struct BatchScheduler {
    config: Config,
    interval_ns: u64,
    zero: Time,
    completed: u64,
    replay_until: Option<Time>,
    now: Time,
    state: State,
    /// The item polled and not yet reported.
    out: Option<Work>,
    stop: Option<Stop>,
    /// How it stopped, until [`BatchScheduler::poll_stopped`] takes it.
    outcome: Option<Result<(), BatchFailure>>,
}

impl BatchScheduler {
    /// A scheduler for `config`, counting batches from `position`.
    pub(crate) fn new(config: Config, position: Position) -> BatchScheduler {
        assert!(!config.interval.is_zero(), "a zero batch interval");
        BatchScheduler {
            interval_ns: u64::try_from(config.interval.as_nanos()).unwrap_or(u64::MAX),
            config,
            zero: position.zero,
            completed: position.completed,
            replay_until: position.replay_until,
            now: Time::ZERO,
            state: State::Idle,
            out: None,
            stop: None,
            outcome: None,
        }
    }

    /// The time before the first batch.
    pub(crate) fn zero(&self) -> Time {
        self.zero
    }

    /// The time of batch `k` (from 1).
    fn batch_time(&self, k: u64) -> Time {
        self.zero + Duration::from_nanos(self.interval_ns.saturating_mul(k))
    }

    /// The time of the next batch to start (or of the one running).
    pub(crate) fn next_batch(&self) -> Time {
        self.batch_time(self.completed.saturating_add(1))
    }

    /// Whether the scheduler has stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    /// When [`BatchScheduler::handle_timeout`] is to be called next (once `now` reaches it): the
    /// next batch's time, while no batch runs and no stop was asked for under the clock.
    /// `None` otherwise: a batch in progress moves on through its work items, a graceful stop
    /// runs batches at once, and a stepped scheduler has no timers.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        match self.state {
            State::Idle if self.stop.is_none() && self.config.driving == Driving::Clock => Some(self.next_batch()),
            _ => None,
        }
    }

    /// Handles the passing of time: starts the next batch if it is due at `now` and no batch
    /// runs. Calling it early, or while a batch runs, does no harm.
    pub(crate) fn handle_timeout(&mut self, now: Time) {
        self.advance(now);
        debug_assert_eq!(self.config.driving, Driving::Clock, "a stepped scheduler has no timers");
        if self.config.driving == Driving::Clock && self.stop.is_none() && self.out.is_none() {
            self.begin_if_due(now);
        }
        self.check_invariants();
    }

    /// Starts the next batch now, whatever the time: for `StreamingContext::step`. Returns its
    /// time. Only between batches, before any stop.
    pub(crate) fn step(&mut self, now: Time) -> Time {
        self.advance(now);
        assert!(matches!(self.state, State::Idle) && self.out.is_none(), "step while a batch runs: {:?}", self.state);
        assert!(self.stop.is_none(), "step after a stop request");
        self.begin(now);
        self.check_invariants();
        self.next_batch()
    }

    /// Asks the scheduler to stop. Immediate (`graceful` false): after the batch in progress,
    /// or at once between batches. Graceful: the batches due and the ones after run at once,
    /// one after another, until an item [`Phase::CheckDrained`] before a batch says every input
    /// is drained. A graceful request wins over an immediate one. Does nothing once stopped.
    pub(crate) fn handle_stop(&mut self, graceful: bool) {
        if self.is_stopped() {
            return;
        }
        self.stop = Some(match (self.stop, graceful) {
            (Some(Stop::Graceful), _) | (_, true) => Stop::Graceful,
            _ => Stop::Immediate,
        });
        if self.stop == Some(Stop::Immediate) && matches!(self.state, State::Idle) {
            debug_assert!(self.out.is_none(), "only a graceful stop puts work out between batches");
            self.stopped(Ok(()));
        }
        self.check_invariants();
    }

    /// The next work item, if there is one now. `None` while an item is out (report it first),
    /// between batches (except during a graceful stop), and for good once stopped.
    #[must_use]
    pub(crate) fn poll_work(&mut self) -> Option<Work> {
        if self.out.is_some() {
            return None;
        }
        let next = self.next_batch();
        let work = match &mut self.state {
            State::Stopped => return None,
            State::Idle if self.stop == Some(Stop::Graceful) => Work { time: next, phase: Phase::CheckDrained },
            State::Idle => return None,
            State::Running(batch) => {
                // A batch's plan ends with its report, and the batch ends when the report is done.
                let phase = batch.plan.pop_front();
                assert!(phase.is_some(), "batch {} has no phase left but is still running", batch.time);
                let phase = match phase? {
                    Phase::Report(_) => Phase::Report(BatchReport {
                        records: batch.records,
                        scheduling_delay: batch.started - batch.time,
                        processing_delay: batch.last_done - batch.started,
                        total_delay: batch.last_done - batch.time,
                        outputs: batch.outputs.clone(),
                    }),
                    phase => phase,
                };
                Work { time: batch.time, phase }
            }
        };
        self.out = Some(work.clone());
        Some(work)
    }

    /// Reports that `work`, the item last polled, ended at `now` with `result`. An error ends
    /// the batch and stops the scheduler with it ([`BatchScheduler::poll_stopped`]).
    pub(crate) fn handle_work_done(&mut self, now: Time, work: &Work, result: Result<Done, Error>) {
        self.advance(now);
        let out = self.out.take();
        assert!(out.as_ref() == Some(work), "reported {work:?}, but the item out is {out:?}");
        let done = match result {
            Ok(done) => done,
            Err(error) => {
                self.stopped(Err(BatchFailure { time: work.time, error }));
                self.check_invariants();
                return;
            }
        };
        match (&work.phase, done) {
            (Phase::CheckDrained, Done::Drained(true)) => self.stopped(Ok(())),
            (Phase::CheckDrained, Done::Drained(false)) => self.begin(now),
            (Phase::Report(_), Done::Ran) => self.complete(now),
            (phase, done) => {
                let State::Running(batch) = &mut self.state else {
                    unreachable!("a batch's item {phase:?} was out with no batch running")
                };
                match (phase, done) {
                    (Phase::CloseInputs { .. }, Done::Closed { records }) => batch.records = records,
                    (Phase::RunOutput { index }, Done::Ran) => {
                        assert_eq!(*index as usize, batch.outputs.len(), "outputs run in order");
                        batch.outputs.push(now - batch.last_done);
                    }
                    (Phase::CheckDrained | Phase::CloseInputs { .. } | Phase::RunOutput { .. }, _)
                    | (_, Done::Closed { .. } | Done::Drained(_)) => {
                        panic!("{phase:?} of batch {} reported as {done:?}", work.time)
                    }
                    _ => {}
                }
                batch.last_done = now;
            }
        }
        self.check_invariants();
    }

    /// How the scheduler stopped: `Some` once, after it stopped (`Ok` for a stop request, the
    /// failed batch otherwise); `None` before, and after it was taken.
    #[must_use]
    pub(crate) fn poll_stopped(&mut self) -> Option<Result<(), BatchFailure>> {
        self.outcome.take()
    }

    fn advance(&mut self, now: Time) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }

    fn begin_if_due(&mut self, now: Time) {
        if matches!(self.state, State::Idle) && now >= self.next_batch() {
            self.begin(now);
        }
    }

    /// Starts the next batch at `now`.
    fn begin(&mut self, now: Time) {
        assert!(matches!(self.state, State::Idle) && self.out.is_none(), "a batch starts only between batches");
        let time = self.next_batch();
        let plan = self.plan(time);
        self.state = State::Running(Batch {
            time,
            started: now,
            last_done: now,
            plan,
            records: 0,
            outputs: Vec::with_capacity(self.config.outputs as usize),
        });
    }

    /// The phases of the batch at `time`, in order (see the module documentation).
    fn plan(&self, time: Time) -> VecDeque<Phase> {
        let checkpoints = self.config.checkpoints;
        let checkpointing = checkpoints.is_some();
        let from_log = self.replay_until.is_some_and(|until| time <= until);
        let mut plan = VecDeque::with_capacity(self.config.outputs as usize + 10);
        if checkpointing {
            plan.extend([Phase::ApplyCheckpoints, Phase::CheckCheckpointFailures]);
        }
        plan.push_back(Phase::CloseInputs { from_log });
        if checkpointing {
            plan.push_back(Phase::MarkPending);
        }
        plan.push_back(Phase::GenerateInputs);
        plan.extend((0..self.config.outputs).map(|index| Phase::RunOutput { index }));
        if checkpointing {
            plan.push_back(Phase::StartCheckpoints);
        }
        if checkpoints == Some(CheckpointWrites::Inline) {
            plan.push_back(Phase::ApplyCheckpoints);
        }
        plan.push_back(Phase::Forget);
        if checkpointing {
            plan.push_back(Phase::MarkCompleted);
        }
        plan.push_back(Phase::Report(BatchReport::default()));
        plan
    }

    /// The batch in progress completed at `now`: the next one starts if it is due (a missed
    /// batch runs at once), unless a stop was asked for.
    fn complete(&mut self, now: Time) {
        let State::Running(batch) = std::mem::replace(&mut self.state, State::Idle) else {
            unreachable!("a batch's report was out with no batch running")
        };
        assert!(batch.plan.is_empty(), "batch {} completed with phases left: {:?}", batch.time, batch.plan);
        assert_eq!(batch.outputs.len(), self.config.outputs as usize, "every output ran once");
        self.completed += 1;
        assert_eq!(batch.time, self.batch_time(self.completed), "batches complete in time order");
        match self.stop {
            Some(Stop::Immediate) => self.stopped(Ok(())),
            // The next item is the drain check, before the next batch.
            Some(Stop::Graceful) => {}
            None if self.config.driving == Driving::Clock => self.begin_if_due(now),
            None => {}
        }
    }

    fn stopped(&mut self, outcome: Result<(), BatchFailure>) {
        debug_assert!(self.outcome.is_none() && !self.is_stopped(), "stopped twice");
        self.state = State::Stopped;
        self.out = None;
        self.outcome = Some(outcome);
    }

    /// The invariants that hold between calls.
    fn check_invariants(&self) {
        match &self.state {
            State::Stopped => assert!(self.out.is_none(), "work out after the stop"),
            State::Running(batch) => {
                assert_eq!(batch.time, self.next_batch(), "the running batch is the next one");
                assert!(self.out.as_ref().is_none_or(|w| w.time == batch.time), "work out for another batch");
            }
            State::Idle => {
                assert!(
                    self.out.as_ref().is_none_or(|w| w.phase == Phase::CheckDrained),
                    "batch work out between batches"
                );
            }
        }
        assert!(
            self.poll_timeout().is_none_or(|t| t > self.now),
            "a timeout at or before now: {:?}",
            self.poll_timeout()
        );
    }
}
