//! Checkpointing a streaming context and resuming it after a restart:
//! [`StreamingContext::get_or_create`], and the batch-boundary hooks that start data
//! checkpoints and apply the finished ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::checkpoint::{input_name, read_metadata, Checkpointer, Metadata, StateCheckpoint};
use super::context::Inner;
use super::context::{StreamingListener, StreamingState};
use super::{duration_nanos, is_multiple, lock, BatchCtx, StreamingContext};
use crate::checkpoint::Checkpointing;
use crate::context::InputRestorer;
use crate::error::Error;
use crate::ids::BlockId;
use crate::time::{Clock, Time};
use crate::Context;

impl StreamingContext {
    /// Builds a checkpointing streaming context, resuming the program from `checkpointing`'s
    /// storage if it holds the checkpoints of an earlier run, as Spark's `getOrCreate`.
    ///
    /// `job` defines the streams and outputs, as for [`StreamingContext::create`]; it runs in
    /// both cases, since every process builds the same graph. Then, if the storage holds
    /// metadata:
    /// - the program must be the one that wrote it (same streams, operators, record types,
    ///   outputs and batch interval), or the call fails with [`Error::ProgramMismatch`];
    /// - each stateful stream restarts from its newest intact data checkpoint (an older one,
    ///   with a warning, if the newest is damaged; [`Error::NoValidCheckpoint`] if none is);
    /// - the batches after those checkpoints are recomputed from the input log, without
    ///   running their outputs again when they had completed;
    /// - the batches that had started but not completed run first, on their logged input, with
    ///   their outputs, exactly once; then the context goes on from there.
    ///
    /// While it runs, the context writes the metadata after every batch, logs every batch's
    /// input before its outputs run, and checkpoints the datasets of its stateful streams
    /// ([`DStream::update_state_by_key`](super::DStream::update_state_by_key),
    /// [`DStream::map_with_state`](super::DStream::map_with_state), windowed reductions with
    /// an inverse function, and any stream given [`DStream::checkpoint`](super::DStream::checkpoint))
    /// every checkpoint interval, asynchronously when started with
    /// [`StreamingContext::start`].
    ///
    /// `dstream_storage::checkpointing` gives a [`Checkpointing`] to a directory (or to memory)
    /// in its zstd format; its documentation and the README show a restart end to end. What
    /// a restart guarantees, output by output, is in
    /// [`guide::fault_tolerance`](crate::guide::fault_tolerance).
    ///
    /// # Examples
    ///
    /// Running totals, checkpointed to a directory; a second run on the same directory (after
    /// a crash, a kill or a deploy) goes on from the totals of the first:
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use dstream::{Error, ManualClock, StreamingContext, Time};
    /// use dstream_inproc::LocalCluster;
    /// use dstream_storage::LocalFs;
    ///
    /// fn run(dir: &std::path::Path, batch: Vec<(String, u64)>) -> Result<Vec<(String, u64)>, Box<dyn std::error::Error>> {
    ///     let cluster = LocalCluster::builder().workers(2).build()?;
    ///     let checkpoints = dstream_storage::checkpointing(LocalFs::new(dir)?);
    ///     let totals = Arc::new(Mutex::new(Vec::new()));
    ///     let sink = Arc::clone(&totals);
    ///     // The job function defines the program; it runs on a fresh start and on a restart.
    ///     let (ssc, views) = StreamingContext::get_or_create(
    ///         cluster.context(),
    ///         Duration::from_secs(1),
    ///         Arc::new(ManualClock::new(Time::ZERO)),
    ///         checkpoints,
    ///         |ssc| -> Result<_, Error> {
    ///             let (views, pages) = ssc.queue_stream::<(String, u64)>(2);
    ///             let running = pages.update_state_by_key(
    ///                 |new: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + new.iter().sum::<u64>()),
    ///                 2,
    ///             )?;
    ///             running.foreach_rdd(move |rdd, _time| {
    ///                 let mut all = rdd.collect()?;
    ///                 all.sort();
    ///                 *sink.lock().unwrap() = all;
    ///                 Ok(())
    ///             })?;
    ///             Ok(views)
    ///         },
    ///     )?;
    ///     views.push(batch);
    ///     ssc.step()?; // a program on a real clock calls `ssc.start()` instead
    ///     let totals = totals.lock().unwrap().clone();
    ///     Ok(totals)
    /// }
    ///
    /// # let dir = std::env::temp_dir().join(format!("dstream-doc-get-or-create-{}", std::process::id()));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// let page = |p: &str, n: u64| (p.to_string(), n);
    /// assert_eq!(run(&dir, vec![page("home", 2), page("news", 1)])?, [page("home", 2), page("news", 1)]);
    /// // A new process, the same directory: the first batch is recomputed from its logged input
    /// // (its output does not run again), then the new batch adds to the restored totals.
    /// assert_eq!(run(&dir, vec![page("home", 5)])?, [page("home", 7), page("news", 1)]);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "getOrCreate")]
    pub fn get_or_create<H>(
        ctx: Context,
        batch_interval: Duration,
        clock: Arc<dyn Clock>,
        checkpointing: Checkpointing,
        job: impl FnOnce(&StreamingContext) -> Result<H, Error>,
    ) -> Result<(StreamingContext, H), Error> {
        let ssc = StreamingContext::new(ctx, batch_interval, clock)?;
        let ck = Arc::new(Checkpointer::new(checkpointing.clone()));
        // A fresh context has no checkpointer yet, so this cannot fail.
        let _ = ssc.inner.checkpointer.set(Arc::clone(&ck));
        let handles = job(&ssc)?;
        if ssc.inner.ctx.graph().replica().is_some() {
            // A worker's copy of the program: the driver resumes, and tells the worker which
            // checkpoints its streams restart from. The worker writes and reads checkpoints
            // under the program's fingerprint, and nothing else: no metadata, no input log.
            ssc.begin_checkpoints(&ck, Time::ZERO);
            return Ok((ssc, handles));
        }
        // Input whose every replica is lost is stored again from the input log.
        let restorer: Arc<dyn InputRestorer> = ssc.inner.clone();
        ssc.inner.ctx.set_input_restorer(Arc::downgrade(&restorer));
        if let Some(meta) = read_metadata(&checkpointing, &ssc.stream_program(), batch_interval)? {
            ssc.resume(&ck, &meta)?;
        }
        Ok((ssc, handles))
    }

    /// Where a context restored by [`StreamingContext::get_or_create`] resumes, before its
    /// first batch runs: `None` for a fresh start (or once batches ran). A source that can
    /// re-read its input by batch time (as a Kafka direct stream re-reads offsets) uses it to
    /// know which batches still need their input: those after
    /// [`Resumed::logged_until`] (the earlier ones come from the input log).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// assert_eq!(ssc.resumed(), None, "a fresh context resumes nothing");
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn resumed(&self) -> Option<Resumed> {
        let run = lock(&self.inner.run);
        let logged_until = run.replay_until.filter(|_| run.state == StreamingState::Initialized)?;
        let interval = duration_nanos(self.inner.batch_interval);
        let next_batch = Time::from_nanos(run.zero.as_nanos() + (run.batches + 1) * interval);
        Some(Resumed { zero: run.zero, next_batch, logged_until })
    }

    /// Restores the program's position, state and logged input from `meta`.
    fn resume(&self, ck: &Checkpointer, meta: &Metadata) -> Result<(), Error> {
        let inner = &self.inner;
        let interval = duration_nanos(inner.batch_interval);
        if meta.batch_interval_ns != interval {
            return Err(Error::ProgramMismatch {
                what: "the batch interval",
                expected: format!("{:?}", inner.batch_interval),
                found: format!("{:?}", Duration::from_nanos(meta.batch_interval_ns)),
            });
        }
        let fingerprint = self.program_fingerprint();
        if meta.fingerprint != fingerprint {
            return Err(Error::ProgramMismatch {
                what: "the program fingerprint",
                expected: format!("{fingerprint:#018x}"),
                found: format!("{:#018x}", meta.fingerprint),
            });
        }
        self.begin_checkpoints(ck, meta.zero);
        let nodes = lock(&inner.nodes).clone();

        let b = BatchCtx { ctx: &inner.ctx, zero: meta.zero };
        let step = inner.batch_interval;
        let mut usable: Vec<StateCheckpoint> = Vec::new();
        // The first batch the restart recomputes: the one after the last completed, or the one
        // after a restored checkpoint, or the first batch for a stateful stream never
        // checkpointed.
        let mut start = meta.last_completed.map_or(meta.zero + step, |t| t + step);
        for node in nodes.iter().filter(|n| n.checkpoint_interval().is_some()) {
            let mut candidates: Vec<StateCheckpoint> =
                meta.checkpoints.iter().filter(|c| c.stream == node.id().0).cloned().collect();
            if candidates.is_empty() {
                // Never checkpointed: the stream recomputes from the first batch's logged input.
                start = start.min(meta.zero + step);
                continue;
            }
            candidates.sort_by_key(|c| c.time);
            let used = node.restore(&b, ck, &candidates)?;
            start = start.min(used.time + step);
            usable.extend(candidates.into_iter().filter(|c| c.time <= used.time));
        }
        let logged = ck.resume(meta, &usable)?;
        ck.collect_orphans();

        // A batch whose every input was logged had its input closed, even if the metadata
        // saying so was not written (or was lost): it runs again from its log.
        let inputs = lock(&inner.inputs).clone();
        let mut logs: BTreeMap<Time, usize> = BTreeMap::new();
        for (time, name) in &logged {
            if inputs.iter().any(|(_, node)| *name == input_name(node.id(), *time)) {
                *logs.entry(*time).or_default() += 1;
            }
        }
        let fully_logged = logs.iter().filter(|(_, n)| **n == inputs.len()).map(|(t, _)| *t).max();
        let last_generated = meta.pending.iter().copied().max().max(meta.last_completed).max(fully_logged);
        // Every batch from `start` back by the longest window over an input, to the last one
        // generated, must be in the log, for every input: one missing (deleted, lost) would
        // silently become an empty batch and every result after it wrong. Older logged batches
        // (kept for the older checkpoint) are not read, so damage there does not matter.
        let names: BTreeSet<&str> = logged.iter().map(|(_, n)| n.as_str()).collect();
        let first = (start - self.input_remember()).max(meta.zero) + step;
        let mut time = first;
        while last_generated.is_some_and(|last| time <= last) {
            for (input, node) in &inputs {
                let name = input_name(node.id(), time);
                if !names.contains(name.as_str()) {
                    return Err(Error::NoValidCheckpoint(format!(
                        "the input log of {} for batch {time} ({name}) is missing; resuming needs every logged batch from {first} to {}",
                        node.id(),
                        last_generated.unwrap_or(time)
                    )));
                }
                input.frozen().close_from_log(node.id(), time, ck)?;
            }
            time = time + step;
        }
        let mut run = lock(&inner.run);
        run.zero = meta.zero;
        run.batches = meta.last_completed.map_or(0, |t| (t.as_nanos() - meta.zero.as_nanos()) / interval);
        run.replay_until = Some(last_generated.unwrap_or(meta.zero));
        tracing::info!(
            last_completed = ?meta.last_completed,
            pending = ?meta.pending,
            checkpoints = usable.len(),
            "resuming from checkpoints"
        );
        Ok(())
    }

    /// Fixes what the checkpoints say about the program: its fingerprint, zero time, batch
    /// interval and checkpointed streams.
    pub(crate) fn begin_checkpoints(&self, ck: &Checkpointer, zero: Time) {
        let nodes = lock(&self.inner.nodes).clone();
        let stateful = nodes.iter().filter(|n| n.checkpoint_interval().is_some()).map(|n| n.id()).collect();
        ck.begin(self.stream_program(), zero, self.inner.batch_interval, stateful);
    }

    /// Starts the data checkpoints due at batch `time`.
    pub(crate) fn start_checkpoints(&self, ck: &Checkpointer, time: Time, zero: Time, threaded: bool) {
        let nodes = lock(&self.inner.nodes).clone();
        for node in nodes {
            let Some(every) = node.checkpoint_interval() else { continue };
            if !is_multiple(time - zero, every) {
                continue;
            }
            if let Some(dataset) = node.dataset_at(time) {
                ck.start(node.id(), time, dataset, threaded);
            }
        }
    }

    /// Applies the data checkpoints that ended and tells the listeners.
    pub(crate) fn apply_checkpoints(&self, ck: &Checkpointer, listeners: &[Arc<dyn StreamingListener>]) {
        for info in ck.apply_finished() {
            listeners.iter().for_each(|l| l.on_checkpoint(&info));
        }
    }

    /// The error that stops the context before its next batch, once a stream's data
    /// checkpoints failed `checkpoint_failures_max` times in a row: its lineage, and what a
    /// restart must replay, would grow without a bound.
    pub(crate) fn checkpoints_failing(&self, ck: &Checkpointer) -> Option<Error> {
        ck.failing(self.inner.checkpoint_failures_max.load(Ordering::SeqCst))
    }

    /// Stops the context with [`Error::CheckpointsFailing`] once `failures` data checkpoints
    /// of one stream in a row have failed (a full disk, a store refusing writes): default 3,
    /// at least 1. Each failure is reported to the listeners
    /// ([`StreamingListener::on_checkpoint`]) either way.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// ssc.checkpoint_failures_max(5);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn checkpoint_failures_max(&self, failures: u32) {
        self.inner.checkpoint_failures_max.store(failures.max(1), Ordering::SeqCst);
    }

    /// How far back a batch may read its inputs' datasets: the longest window over an input.
    pub(crate) fn input_remember(&self) -> Duration {
        let inputs = lock(&self.inner.inputs).clone();
        inputs.iter().map(|(_, node)| node.remembered()).max().unwrap_or_default().max(self.inner.batch_interval)
    }
}

/// Where a restored context resumes (see [`StreamingContext::resumed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// The time before the first batch of the run it resumes: batch `k` is at
    /// `zero + k * interval`.
    pub zero: Time,
    /// The first batch to run: the one after the last completed.
    pub next_batch: Time,
    /// Batches up to this time were closed before the restart and take their input from the
    /// input log; the inputs feed the batches after it.
    pub logged_until: Time,
}

impl InputRestorer for Inner {
    fn restore(&self, block: BlockId, batch: Time) -> Result<bool, Error> {
        let BlockId::Input { stream, .. } = block else { return Ok(false) };
        let Some(ck) = self.checkpointer.get() else { return Ok(false) };
        if !ck.has_logged(stream, batch) {
            return Ok(false);
        }
        let Some(span) = self.ctx.graph().input_block_span(stream, batch, block) else { return Ok(false) };
        let inputs = lock(&self.inputs).clone();
        let Some((input, _)) = inputs.iter().find(|(_, node)| node.id() == stream) else { return Ok(false) };
        input.frozen().restore(batch, ck, block, span)?;
        Ok(true)
    }
}
