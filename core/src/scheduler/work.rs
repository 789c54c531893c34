//! The scheduler's vocabulary: its configuration, its position, the work items it emits, how
//! they end, and what it reports.

use std::time::Duration;

use crate::error::Error;
use crate::time::Time;

/// How the data checkpoints of a checkpointing context are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckpointWrites {
    /// In the batch that starts them (batches run through `StreamingContext::step`): what they
    /// wrote is applied in the same batch, before it forgets.
    Inline,
    /// On threads of their own: what they wrote is applied at the start of a later batch.
    Async,
}

/// What starts batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driving {
    /// The clock: each batch when its time comes ([`super::BatchScheduler::handle_timeout`]).
    Clock,
    /// [`super::BatchScheduler::step`] only, one batch per call, whatever the time.
    Steps,
}

/// What the scheduler needs to know of the program.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// The batch interval; not zero.
    pub(crate) interval: Duration,
    /// The number of output operations.
    pub(crate) outputs: u32,
    /// How data checkpoints are written; `None` when the context does not checkpoint.
    pub(crate) checkpoints: Option<CheckpointWrites>,
    /// What starts batches.
    pub(crate) driving: Driving,
}

/// Where the batch numbering stands when the scheduler is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    /// The time before the first batch: batch `k` (from 1) is at `zero + k * interval`.
    pub(crate) zero: Time,
    /// Batches completed since `zero`: the next one is batch `completed + 1`.
    pub(crate) completed: u64,
    /// After a restart: batches up to this time were closed before it and take their input
    /// from the input log.
    pub(crate) replay_until: Option<Time>,
}

impl Position {
    /// A fresh start at `now`: the zero time is `now` rounded down to a multiple of `interval`
    /// (so batch times line up across processes), nothing completed, nothing to replay.
    pub(crate) fn fresh(now: Time, interval: Duration) -> Position {
        let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        let now = now.as_nanos();
        Position { zero: Time::from_nanos(now - now % interval), completed: 0, replay_until: None }
    }
}

/// What to do for a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before a batch of a graceful stop: whether every input is drained (answered with
    /// [`Done::Drained`]); if so the scheduler stops, else the batch runs at once.
    CheckDrained,
    /// Apply the data checkpoints that ended.
    ApplyCheckpoints,
    /// Fail the batch if a stream's data checkpoints failed too many times in a row.
    CheckCheckpointFailures,
    /// Close the inputs' batch and log it when checkpointing (answered with [`Done::Closed`]).
    CloseInputs {
        /// The batch was closed before a restart: read it from the input log instead.
        from_log: bool,
    },
    /// Mark the batch pending in the metadata.
    MarkPending,
    /// Generate the inputs' datasets of the batch.
    GenerateInputs,
    /// Run one output operation.
    RunOutput {
        /// The output's index, in definition order.
        index: u32,
    },
    /// Start the data checkpoints due at the batch.
    StartCheckpoints,
    /// Forget the datasets no stream needs any more.
    Forget,
    /// Record the batch completed in the metadata.
    MarkCompleted,
    /// Report the completed batch.
    Report(BatchReport),
}

/// A work item: what to do, for which batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Work {
    /// The batch time.
    pub(crate) time: Time,
    /// What to do.
    pub(crate) phase: Phase,
}

/// How a work item ended well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Done {
    /// It ran.
    Ran,
    /// [`Phase::CloseInputs`] ran: the inputs received this many records for the batch.
    Closed {
        /// Records in the batch.
        records: u64,
    },
    /// [`Phase::CheckDrained`] ran: whether every input is drained.
    Drained(bool),
}

/// What the scheduler measured of a batch, from the `now` values it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchReport {
    /// Records the inputs received for the batch.
    pub(crate) records: u64,
    /// From the batch time to the start of its first item.
    pub(crate) scheduling_delay: Duration,
    /// From the start of its first item to the end of the item before the report.
    pub(crate) processing_delay: Duration,
    /// From the batch time to the end of the item before the report.
    pub(crate) total_delay: Duration,
    /// Each output operation's running time, in definition order.
    pub(crate) outputs: Vec<Duration>,
}

/// Why the scheduler stopped with an error: the batch and its failed item's error.
#[derive(Debug)]
pub(crate) struct BatchFailure {
    /// The batch that failed.
    pub(crate) time: Time,
    /// What failed it.
    pub(crate) error: Error,
}
