//! The executor of a streaming context: runs each work item the batch scheduler emits (one
//! phase of a batch) on the context, and says how it ended. It decides nothing about when or
//! in which order; that is the scheduler's.

use std::sync::Arc;

use super::{BatchInfo, OutputOp, StreamingContext, StreamingListener};
use crate::error::Error;
use crate::ids::{Scope, StreamId};
use crate::message::Fact;
use crate::runtime::batches::BatchExecutor;
use crate::scheduler::{BatchReport, Done, Phase, Work};
use crate::stream::input::InputDyn;
use crate::stream::{lock, BatchCtx, StreamNodeDyn};
use crate::time::Time;

/// What a batch works with, taken when its first item runs: listeners, inputs and outputs
/// added meanwhile take part from the next batch on.
struct Batch {
    time: Time,
    listeners: Vec<Arc<dyn StreamingListener>>,
    inputs: Vec<(Arc<dyn InputDyn>, Arc<dyn StreamNodeDyn>)>,
    outputs: Vec<Arc<OutputOp>>,
    /// Dead letters delivered with the batch.
    dead_letters: u64,
    /// Each input's records in the batch, once its inputs closed.
    input_records: Vec<(StreamId, u64)>,
}

/// Executes the work items of one streaming context.
pub(super) struct Executor {
    ssc: StreamingContext,
    zero: Time,
    /// Whether batches run on the batch thread (data checkpoints are written asynchronously).
    threaded: bool,
    batch: Option<Batch>,
    /// What the last completed batch reported, until taken.
    reported: Option<BatchInfo>,
}

impl Executor {
    pub(super) fn new(ssc: StreamingContext, zero: Time, threaded: bool) -> Executor {
        Executor { ssc, zero, threaded, batch: None, reported: None }
    }

    /// What the last completed batch reported, once.
    pub(super) fn take_reported(&mut self) -> Option<BatchInfo> {
        self.reported.take()
    }

    /// Runs one work item.
    pub(super) fn run(&mut self, work: &Work) -> Result<Done, Error> {
        let inner = Arc::clone(&self.ssc.inner);
        let time = work.time;
        if work.phase == Phase::CheckDrained {
            // Every record received before a graceful stop is in a batch.
            return Ok(Done::Drained(lock(&inner.inputs).iter().all(|(i, _)| i.drained())));
        }
        let batch = match self.batch.take() {
            Some(b) if b.time == time => b,
            _ => Batch {
                time,
                listeners: self.ssc.listeners(),
                inputs: lock(&inner.inputs).clone(),
                outputs: lock(&inner.outputs).clone(),
                dead_letters: 0,
                input_records: Vec::new(),
            },
        };
        let mut batch = batch;
        let done = self.run_phase(work, &mut batch);
        if !matches!(work.phase, Phase::Report(_)) {
            self.batch = Some(batch);
        }
        done
    }

    fn run_phase(&mut self, work: &Work, batch: &mut Batch) -> Result<Done, Error> {
        let inner = &self.ssc.inner;
        let time = work.time;
        let listeners = &batch.listeners;
        let checkpointer = || inner.checkpointer.get().ok_or(Error::Internal("a checkpoint phase without checkpoints"));
        let b = BatchCtx { ctx: &inner.ctx, zero: self.zero };
        match &work.phase {
            Phase::CheckDrained => unreachable!("answered by `run`"),
            Phase::ApplyCheckpoints => self.ssc.apply_checkpoints(checkpointer()?, listeners),
            Phase::CheckCheckpointFailures => {
                // Before the inputs close, so a stop here consumes no input.
                if let Some(error) = self.ssc.checkpoints_failing(checkpointer()?) {
                    listeners.iter().for_each(|l| l.on_batch_failed(time, &error));
                    return Err(error);
                }
            }
            Phase::CloseInputs { from_log } => {
                listeners.iter().for_each(|l| l.on_batch_submitted(time));
                let inputs = &batch.inputs;
                batch.input_records = if *from_log {
                    // Closed before the restart: the input log holds the batch (read when restoring).
                    inputs.iter().map(|(i, node)| (node.id(), i.frozen().records_at(time))).collect()
                } else {
                    let prev = time - inner.batch_interval;
                    let records = inputs
                        .iter()
                        .map(|(i, node)| i.close_batch(prev, time).map(|n| (node.id(), n)))
                        .collect::<Result<_, _>>()?;
                    if let Some(ck) = inner.checkpointer.get() {
                        for (input, node) in inputs {
                            input.frozen().log(node.id(), time, ck)?;
                        }
                    }
                    records
                };
                return Ok(Done::Closed { records: batch.input_records.iter().map(|(_, n)| n).sum() });
            }
            Phase::MarkPending => checkpointer()?.batch_started(time)?,
            Phase::GenerateInputs => {
                for (_, node) in &batch.inputs {
                    node.generate(time, &b)?;
                }
                listeners.iter().for_each(|l| l.on_batch_started(time));
            }
            Phase::RunOutput { index } => {
                let op = batch.outputs.get(*index as usize).ok_or(Error::Internal("an output index out of range"))?;
                let ran = {
                    let _scope = inner.ctx.graph().enter(Scope::Output { output: *index, time });
                    // A panicking output fails its batch, as a failed task does: listeners hear
                    // of it and the context stops with the error.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (op.run)(time, &b))).unwrap_or_else(
                        |panic| {
                            Err(Error::OutputPanicked {
                                output: op.name,
                                time,
                                message: crate::task::panic_message(&*panic),
                            })
                        },
                    )
                };
                if let Err(error) = ran {
                    listeners.iter().for_each(|l| l.on_batch_failed(time, &error));
                    return Err(error);
                }
            }
            Phase::StartCheckpoints => self.ssc.start_checkpoints(checkpointer()?, time, self.zero, self.threaded),
            Phase::Forget => {
                // After the outputs, before the batch completes: the dead letters their jobs set aside.
                match self.ssc.deliver_dead_letters(time) {
                    Ok(n) => batch.dead_letters = n,
                    Err(error) => {
                        batch.listeners.iter().for_each(|l| l.on_batch_failed(time, &error));
                        return Err(error);
                    }
                }
                let keep_from = time - *lock(&inner.remember);
                let checkpoint_zero = inner.checkpointer.get().is_some().then_some(self.zero);
                lock(&inner.nodes).iter().for_each(|n| n.forget_before(keep_from, checkpoint_zero));
                // Workers rebuilding batches generate this one and forget alike.
                inner.ctx.announce(Fact::Completed { time, keep_from, checkpoint_zero });
            }
            Phase::MarkCompleted => checkpointer()?.batch_completed(time, self.ssc.input_remember())?,
            Phase::Report(report) => {
                let info = batch_info(time, report, batch);
                listeners.iter().for_each(|l| l.on_batch_completed(&info));
                self.reported = Some(info);
            }
        }
        Ok(Done::Ran)
    }
}

/// The listeners' view of a batch's report.
fn batch_info(time: Time, report: &BatchReport, batch: &Batch) -> BatchInfo {
    BatchInfo {
        time,
        records: report.records,
        input_records: batch.input_records.clone(),
        scheduling_delay: report.scheduling_delay,
        processing_delay: report.processing_delay,
        total_delay: report.total_delay,
        output_ops: batch.outputs.iter().map(|op| op.name).zip(report.outputs.iter().copied()).collect(),
        dead_letters: batch.dead_letters,
    }
}

impl BatchExecutor for Executor {
    fn execute(&mut self, work: &Work) -> Result<Done, Error> {
        self.run(work)
    }

    fn finish(self, outcome: Result<(), Error>) {
        self.ssc.finish(outcome.map_err(|e| e.to_string()));
    }
}
