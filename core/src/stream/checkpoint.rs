//! Checkpoints of a streaming program: the state of its stateful streams every few batches,
//! each batch's input, and the metadata a restarted program resumes from.
//!
//! # What is stored (names under the program's own [`Storage`](crate::Storage))
//!
//! - `state/{stream}/{time}/{partition}`: a data checkpoint, one object per partition of the
//!   dataset a stateful stream generated for batch `time`. Written asynchronously by a job on
//!   the workers; once every partition is stored, the dataset's lineage is cut (it reads its
//!   checkpoint when a partition is lost) and the last two complete checkpoints of each stream
//!   are kept.
//! - `input/{stream}/{time}`: the partitions of one input's batch, written when the batch
//!   closes, before its outputs run, so a batch can be run again after a restart with the same
//!   records. Kept as long as a restart may need them: back from the older kept checkpoint by
//!   the longest window over the input.
//! - `metadata/{time}`: the [`Metadata`] after batch `time` (and before it, marking it
//!   pending), written atomically; the last two are kept.
//!
//! Times are nanoseconds, zero-padded to 20 digits, so names sort in time order. Every object
//! is written in the program's [`CheckpointFormat`](crate::checkpoint::CheckpointFormat), with
//! the program's fingerprint in its header.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration_nanos, lock};
use crate::checkpoint::{self, CheckpointHeader, CheckpointStats, Checkpointing};
use crate::error::Error;
use crate::graph::ProgramSummary;
use crate::ids::StreamId;
use crate::rdd::checkpoint::CheckpointTarget;
use crate::rdd::Rdd;
use crate::runtime::checkpoints::Writers;
use crate::runtime::Stopwatch;
use crate::time::Time;
use crate::Data;

/// The stream id in the header of metadata objects.
const METADATA_STREAM: StreamId = StreamId(u64::MAX);

/// How many metadata objects are kept.
const METADATA_KEPT: usize = 2;

/// How many complete data checkpoints of each stream are kept.
const CHECKPOINTS_KEPT: usize = 2;

/// The shortest default checkpoint interval, as in Spark.
const DEFAULT_INTERVAL_MIN: Duration = Duration::from_secs(10);

/// How often a stream's datasets are checkpointed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckpointEvery {
    /// Never (a stateless stream).
    Never,
    /// The default: the smallest multiple of the slide that is at least 10 s.
    Default,
    /// Every this long; a multiple of the slide.
    Every(Duration),
}

impl CheckpointEvery {
    /// The interval for a stream sliding every `slide`.
    pub(crate) fn interval(self, slide: Duration) -> Option<Duration> {
        match self {
            CheckpointEvery::Never => None,
            CheckpointEvery::Every(d) => Some(d),
            CheckpointEvery::Default => {
                let slide_ns = duration_nanos(slide).max(1);
                let k = duration_nanos(DEFAULT_INTERVAL_MIN).div_ceil(slide_ns).max(1);
                Some(Duration::from_nanos(slide_ns.saturating_mul(k)))
            }
        }
    }
}

/// A dataset to checkpoint, type-erased.
pub(crate) trait CheckpointDataset: Send + Sync {
    fn write(&self, target: &CheckpointTarget) -> Result<CheckpointStats, Error>;
    /// The job `write` runs, for a worker that runs its tasks from its own graph.
    fn write_action(&self, target: &CheckpointTarget) -> Arc<dyn crate::graph::ActionNode>;
    fn cut(&self, target: &CheckpointTarget);
    fn partitions(&self) -> usize;
    fn hashed(&self) -> bool;
}

impl<T: Data> CheckpointDataset for Rdd<T> {
    fn write(&self, target: &CheckpointTarget) -> Result<CheckpointStats, Error> {
        self.write_checkpoint(target)
    }

    fn write_action(&self, target: &CheckpointTarget) -> Arc<dyn crate::graph::ActionNode> {
        self.checkpoint_write_action(target).1
    }

    fn cut(&self, target: &CheckpointTarget) {
        self.cut_to_checkpoint(target);
    }

    fn partitions(&self) -> usize {
        self.num_partitions()
    }

    fn hashed(&self) -> bool {
        self.hash_partitions() == Some(self.num_partitions())
    }
}

/// A complete data checkpoint, as the metadata records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateCheckpoint {
    pub(crate) stream: u64,
    pub(crate) time: Time,
    pub(crate) partitions: u32,
    pub(crate) hashed: bool,
}

impl StateCheckpoint {
    /// The fact telling workers with graphs of their own that a restart reads this checkpoint
    /// of `stream` (`restored`: the stream restarts from it).
    pub(crate) fn fact(&self, stream: StreamId, restored: bool) -> crate::message::Fact {
        let (time, partitions, hashed) = (self.time, self.partitions, self.hashed);
        crate::message::Fact::Checkpoint { stream, time, partitions, hashed, restored }
    }
}

/// What a restarted program resumes from, written after every batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Metadata {
    /// The program's fingerprint: the digest of `program`.
    pub(crate) fingerprint: u64,
    /// The program's description, one line per stream and output, so a restart with another
    /// program says what changed.
    pub(crate) program: Vec<String>,
    pub(crate) batch_interval_ns: u64,
    /// The time before the first batch.
    pub(crate) zero: Time,
    /// The last batch whose outputs all ran, if any.
    pub(crate) last_completed: Option<Time>,
    /// Batches whose input closed (and was logged) but whose outputs did not all run.
    pub(crate) pending: Vec<Time>,
    /// The complete data checkpoints, oldest first within each stream.
    pub(crate) checkpoints: Vec<StateCheckpoint>,
}

/// Information about a data checkpoint, for [`StreamingListener::on_checkpoint`](super::StreamingListener::on_checkpoint).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointInfo {
    /// The stream whose dataset was checkpointed.
    pub stream: StreamId,
    /// The batch the dataset belongs to.
    pub time: Time,
    /// What was written, summed over the partitions (zeros if it failed).
    pub stats: CheckpointStats,
    /// From the start of the write to the end of its last partition.
    pub duration: Duration,
    /// Why it failed, if it did; the lineage is then left whole and a later batch tries again.
    pub error: Option<String>,
}

/// A data checkpoint whose write has ended.
struct Finished {
    target: CheckpointTarget,
    dataset: Box<dyn CheckpointDataset>,
    result: Result<CheckpointStats, Error>,
    duration: Duration,
}

/// The checkpoint bookkeeping of a streaming context with checkpointing on.
pub(crate) struct Checkpointer {
    pub(crate) checkpointing: Checkpointing,
    state: Mutex<Bookkeeping>,
    finished: Arc<Mutex<Vec<Finished>>>,
    /// Writes in flight on their own threads.
    writers: Writers,
}

#[derive(Default)]
struct Bookkeeping {
    fingerprint: u64,
    program: Vec<String>,
    zero: Time,
    batch_interval_ns: u64,
    last_completed: Option<Time>,
    pending: Vec<Time>,
    /// Complete checkpoints by stream, oldest first.
    complete: BTreeMap<StreamId, Vec<StateCheckpoint>>,
    /// Logged inputs: batch time → object names.
    logged: BTreeMap<Time, Vec<String>>,
    /// Metadata objects written, oldest first.
    metadata: Vec<String>,
    /// The streams that are checkpointed.
    stateful: Vec<StreamId>,
    /// Failed data checkpoints of each stream since its last complete one, and the last error.
    failures: BTreeMap<StreamId, (u32, String)>,
}

impl Checkpointer {
    pub(crate) fn new(checkpointing: Checkpointing) -> Checkpointer {
        Checkpointer {
            checkpointing,
            state: Mutex::new(Bookkeeping::default()),
            finished: Arc::default(),
            writers: Writers::default(),
        }
    }

    /// Fixes what every object's header and the metadata say about the program.
    /// `stateful` are the streams that are checkpointed.
    pub(crate) fn begin(&self, program: ProgramSummary, zero: Time, batch_interval: Duration, stateful: Vec<StreamId>) {
        let mut s = lock(&self.state);
        s.fingerprint = program.fingerprint;
        s.program = program.nodes;
        s.zero = zero;
        s.batch_interval_ns = duration_nanos(batch_interval);
        s.stateful = stateful;
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        lock(&self.state).fingerprint
    }

    /// Resumes the bookkeeping of a restarted program from its metadata and what the store
    /// holds; `restored` are the checkpoints still usable. Returns the logged batch times.
    pub(crate) fn resume(&self, meta: &Metadata, restored: &[StateCheckpoint]) -> Result<Vec<(Time, String)>, Error> {
        let logged = self.list("input/")?;
        let written = self.list("metadata/")?;
        let mut s = lock(&self.state);
        s.last_completed = meta.last_completed;
        s.pending = meta.pending.clone();
        for c in restored {
            s.complete.entry(StreamId(c.stream)).or_default().push(c.clone());
        }
        let mut found = Vec::new();
        for name in logged {
            if let Some(time) = name.rsplit('/').next().and_then(|t| t.parse::<u64>().ok()) {
                let time = Time::from_nanos(time);
                s.logged.entry(time).or_default().push(name.clone());
                found.push((time, name));
            }
        }
        s.metadata = written;
        Ok(found)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.checkpointing.storage.list(prefix).map_err(|e| Error::Checkpoint {
            what: format!("listing the checkpoints under {prefix:?}"),
            source: e.into(),
        })
    }

    /// The header of the object holding `stream`'s part of batch `time`.
    fn header(&self, stream: StreamId, time: Time) -> CheckpointHeader {
        CheckpointHeader { fingerprint: self.fingerprint(), stream, batch_time: time, partition: 0 }
    }

    /// Writes one input's partitions of batch `time`, before the batch's outputs run.
    pub(crate) fn log_input<P: Serialize>(&self, stream: StreamId, time: Time, parts: &[P]) -> Result<(), Error> {
        let name = input_name(stream, time);
        let c = &self.checkpointing;
        checkpoint::write_records(&*c.format, &*c.storage, &name, &self.header(stream, time), parts).map_err(
            |source| Error::Checkpoint { what: format!("logging the input of {stream} for batch {time}"), source },
        )?;
        lock(&self.state).logged.entry(time).or_default().push(name);
        Ok(())
    }

    /// Whether `stream`'s input of batch `time` is in the input log.
    pub(crate) fn has_logged(&self, stream: StreamId, time: Time) -> bool {
        let name = input_name(stream, time);
        lock(&self.state).logged.get(&time).is_some_and(|names| names.contains(&name))
    }

    /// Reads one input's partitions of batch `time` back from its log.
    pub(crate) fn read_input<T: Data>(&self, stream: StreamId, time: Time) -> Result<Vec<Vec<T>>, Error> {
        self.read_input_parts(stream, time)
    }

    /// Reads the parts one input logged for batch `time`, of the type it logged them as.
    pub(crate) fn read_input_parts<P: serde::de::DeserializeOwned>(
        &self,
        stream: StreamId,
        time: Time,
    ) -> Result<Vec<P>, Error> {
        let name = input_name(stream, time);
        let c = &self.checkpointing;
        let (header, parts) =
            checkpoint::read_records(&*c.format, &*c.storage, &name, self.fingerprint()).map_err(|source| {
                Error::Checkpoint { what: format!("reading the logged input of batch {time}"), source }
            })?;
        if header != self.header(stream, time) {
            return Err(Error::NoValidCheckpoint(format!(
                "{name} holds {header:?}, not the input of {stream} at {time}"
            )));
        }
        Ok(parts)
    }

    /// The target of a data checkpoint of `stream` at `time`.
    pub(crate) fn target(&self, stream: StreamId, time: Time) -> CheckpointTarget {
        CheckpointTarget { checkpointing: self.checkpointing.clone(), fingerprint: self.fingerprint(), stream, time }
    }

    /// Marks batch `time` pending (its input closed and logged) and records it in the metadata.
    pub(crate) fn batch_started(&self, time: Time) -> Result<(), Error> {
        let meta = {
            let mut s = lock(&self.state);
            if !s.pending.contains(&time) {
                s.pending.push(time);
            }
            s.metadata()
        };
        self.write_metadata(&meta, time)
    }

    /// Starts writing `dataset` as the checkpoint of `stream` at `time`: on a thread of its own
    /// when `threaded` (the batches go on meanwhile), else now.
    pub(crate) fn start(&self, stream: StreamId, time: Time, dataset: Box<dyn CheckpointDataset>, threaded: bool) {
        let target = self.target(stream, time);
        let finished = Arc::clone(&self.finished);
        let write = move || {
            let watch = Stopwatch::start();
            let result = dataset.write(&target);
            let duration = watch.elapsed();
            lock(&finished).push(Finished { target, dataset, result, duration });
        };
        if !threaded {
            write();
            return;
        }
        if let Err(e) = self.writers.start(format!("dstream-checkpoint-{}", stream.0), write) {
            // Without a thread the checkpoint is skipped; the next interval tries again.
            tracing::warn!(%stream, %time, error = %e, "cannot start a checkpoint thread");
        }
    }

    /// Waits for the writes in flight.
    pub(crate) fn wait_in_flight(&self) {
        self.writers.wait();
    }

    /// Applies the writes that have ended: cuts the lineage of each complete checkpoint,
    /// records it, and deletes what it made unnecessary. Returns what happened, for listeners.
    /// The input log is trimmed when the batch completes.
    pub(crate) fn apply_finished(&self) -> Vec<CheckpointInfo> {
        let mut finished = std::mem::take(&mut *lock(&self.finished));
        // In batch order, whatever order the writes ended in.
        finished.sort_by_key(|f| (f.target.time, f.target.stream));
        let mut infos = Vec::with_capacity(finished.len());
        for f in finished {
            let stream = f.target.stream;
            let info =
                |stats, error| CheckpointInfo { stream, time: f.target.time, stats, duration: f.duration, error };
            match f.result {
                Ok(stats) => {
                    f.dataset.cut(&f.target);
                    let record = StateCheckpoint {
                        stream: stream.0,
                        time: f.target.time,
                        partitions: f.dataset.partitions() as u32,
                        hashed: f.dataset.hashed(),
                    };
                    let dropped = {
                        let mut s = lock(&self.state);
                        s.failures.remove(&stream);
                        let kept = s.complete.entry(stream).or_default();
                        kept.push(record);
                        kept.sort_by_key(|c| c.time);
                        let excess = kept.len().saturating_sub(CHECKPOINTS_KEPT);
                        kept.drain(..excess).collect::<Vec<_>>()
                    };
                    for old in dropped {
                        self.delete_prefix(&crate::rdd::checkpoint::state_prefix(StreamId(old.stream), old.time));
                    }
                    infos.push(info(stats, None));
                }
                Err(e) => {
                    tracing::warn!(%stream, time = %f.target.time, error = %e, "a data checkpoint failed; the lineage stays whole");
                    self.delete_prefix(&f.target.prefix());
                    let mut s = lock(&self.state);
                    let (n, last) = s.failures.entry(stream).or_default();
                    *n += 1;
                    *last = e.to_string();
                    drop(s);
                    infos.push(info(CheckpointStats::default(), Some(e.to_string())));
                }
            }
        }
        infos
    }

    /// The first stream whose data checkpoints failed `failures_max` times in a row, as the
    /// error that stops the context.
    pub(crate) fn failing(&self, failures_max: u32) -> Option<Error> {
        let s = lock(&self.state);
        let (stream, (failures, last)) = s.failures.iter().find(|(_, (n, _))| *n >= failures_max)?;
        Some(Error::CheckpointsFailing { stream: *stream, failures: *failures, last: last.clone() })
    }

    /// Records batch `time` as completed and writes the metadata.
    pub(crate) fn batch_completed(&self, time: Time, input_remember: Duration) -> Result<(), Error> {
        let meta = {
            let mut s = lock(&self.state);
            s.pending.retain(|t| *t != time);
            s.last_completed = Some(time);
            s.metadata()
        };
        self.write_metadata(&meta, time)?;
        self.collect_input_logs(input_remember);
        Ok(())
    }

    /// Writes the metadata again, under the last batch's name: after checkpoints completed
    /// once the last batch had run.
    pub(crate) fn rewrite_metadata(&self) -> Result<(), Error> {
        let (meta, time) = {
            let s = lock(&self.state);
            (s.metadata(), s.pending.iter().copied().max().max(s.last_completed))
        };
        match time {
            Some(time) => self.write_metadata(&meta, time),
            None => Ok(()),
        }
    }

    /// Deletes the logged inputs no restart can need: those before the oldest batch a restart
    /// would replay (after the older kept checkpoint of each stateful stream, or after the last
    /// completed batch) by more than the longest window over an input.
    fn collect_input_logs(&self, input_remember: Duration) {
        let doomed: Vec<String> = {
            let mut s = lock(&self.state);
            let Some(last) = s.last_completed else { return };
            // A stream without a complete checkpoint replays from the start: keep everything.
            let mut from = last;
            for stream in &s.stateful {
                match s.complete.get(stream).and_then(|kept| kept.first()) {
                    Some(c) => from = from.min(c.time),
                    None => return,
                }
            }
            let keep_after = from - input_remember;
            let keep = s.logged.split_off(&(keep_after + Duration::from_nanos(1)));
            let doomed = std::mem::replace(&mut s.logged, keep);
            doomed.into_values().flatten().collect()
        };
        for name in doomed {
            self.delete(&name);
        }
    }

    fn write_metadata(&self, meta: &Metadata, time: Time) -> Result<(), Error> {
        let name = metadata_name(time);
        let c = &self.checkpointing;
        checkpoint::write_records(&*c.format, &*c.storage, &name, &self.header(METADATA_STREAM, time), [meta])
            .map_err(|source| Error::Checkpoint { what: format!("writing the metadata of batch {time}"), source })?;
        let doomed = {
            let mut s = lock(&self.state);
            if !s.metadata.contains(&name) {
                s.metadata.push(name);
            }
            let excess = s.metadata.len().saturating_sub(METADATA_KEPT);
            s.metadata.drain(..excess).collect::<Vec<_>>()
        };
        doomed.iter().for_each(|n| self.delete(n));
        Ok(())
    }

    /// Deletes the data checkpoints that no kept metadata object names: those a killed
    /// process was writing, or had written without recording. Run once, when a program
    /// resumes, before any new checkpoint starts. Leaves everything in place when a metadata
    /// object cannot be read (it might name what would be deleted). Returns how many
    /// checkpoints it deleted.
    pub(crate) fn collect_orphans(&self) -> usize {
        let metadata = lock(&self.state).metadata.clone();
        let mut named: BTreeSet<String> = BTreeSet::new();
        for name in &metadata {
            let c = &self.checkpointing;
            match checkpoint::read_records::<Metadata>(&*c.format, &*c.storage, name, self.fingerprint()) {
                Ok((_, metas)) => named.extend(
                    metas
                        .iter()
                        .flat_map(|m| &m.checkpoints)
                        .map(|k| crate::rdd::checkpoint::state_prefix(StreamId(k.stream), k.time)),
                ),
                Err(e) => {
                    tracing::warn!(name, error = %e, "unreadable metadata: orphan checkpoints are left in place");
                    return 0;
                }
            }
        }
        let stored = match self.list("state/") {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the data checkpoints to collect orphans");
                return 0;
            }
        };
        // `state/{stream}/{time}/{partition}`: the checkpoint is everything up to the last '/'.
        let prefixes: BTreeSet<String> =
            stored.iter().filter_map(|n| n.rfind('/').map(|i| n[..=i].to_string())).collect();
        let orphans: Vec<&String> = prefixes.iter().filter(|p| !named.contains(*p)).collect();
        for prefix in &orphans {
            tracing::info!(prefix = %prefix, "deleting a data checkpoint no metadata names");
            self.delete_prefix(prefix);
        }
        orphans.len()
    }

    fn delete_prefix(&self, prefix: &str) {
        match self.checkpointing.storage.list(prefix) {
            Ok(names) => names.iter().for_each(|n| self.delete(n)),
            Err(e) => tracing::warn!(prefix, error = %e, "cannot list old checkpoints to delete them"),
        }
    }

    fn delete(&self, name: &str) {
        // An object left behind costs space, not correctness: it is never read again.
        if let Err(e) = self.checkpointing.storage.delete(name) {
            tracing::warn!(name, error = %e, "cannot delete an old checkpoint object");
        }
    }
}

impl Bookkeeping {
    fn metadata(&self) -> Metadata {
        Metadata {
            fingerprint: self.fingerprint,
            program: self.program.clone(),
            batch_interval_ns: self.batch_interval_ns,
            zero: self.zero,
            last_completed: self.last_completed,
            pending: self.pending.clone(),
            checkpoints: self.complete.values().flatten().cloned().collect(),
        }
    }
}

/// Reads the newest metadata that is intact, falling back to older ones with a warning.
/// `Ok(None)` when the store holds none at all. Metadata of another program is an error: of
/// the batch interval if that differs, else of the program fingerprint.
pub(crate) fn read_metadata(
    checkpointing: &Checkpointing,
    program: &ProgramSummary,
    batch_interval: Duration,
) -> Result<Option<Metadata>, Error> {
    let fingerprint = program.fingerprint;
    let names = checkpointing
        .storage
        .list("metadata/")
        .map_err(|e| Error::Checkpoint { what: "listing the metadata".into(), source: e.into() })?;
    let mut failures = Vec::new();
    for name in names.iter().rev() {
        // Read with the fingerprint the object claims, so another program's metadata is
        // reported as such rather than as damage.
        match checkpoint::read_records::<Metadata>(&*checkpointing.format, &*checkpointing.storage, name, fingerprint) {
            Ok((_, mut metas)) if metas.len() == 1 => return Ok(metas.pop()),
            Ok((_, metas)) => failures.push(format!("{name}: {} records, one was expected", metas.len())),
            Err(checkpoint::CheckpointError::FingerprintMismatch { expected, found, .. }) => {
                let theirs =
                    checkpoint::read_records::<Metadata>(&*checkpointing.format, &*checkpointing.storage, name, found);
                if let Ok((_, metas)) = theirs {
                    if let Some(meta) = metas.iter().find(|m| m.batch_interval_ns != duration_nanos(batch_interval)) {
                        return Err(Error::ProgramMismatch {
                            what: "the batch interval",
                            expected: format!("{batch_interval:?}"),
                            found: format!("{:?}", Duration::from_nanos(meta.batch_interval_ns)),
                        });
                    }
                    if let Some(mismatch) = metas.first().and_then(|m| changed(program, &m.program)) {
                        return Err(mismatch);
                    }
                }
                return Err(Error::ProgramMismatch {
                    what: "the program fingerprint",
                    expected: format!("{expected:#018x}"),
                    found: format!("{found:#018x}"),
                });
            }
            Err(e) => {
                tracing::warn!(name = %name, error = %e, "damaged metadata; trying the previous one");
                failures.push(e.to_string());
            }
        }
    }
    if names.is_empty() {
        // No metadata at all: a fresh start, unless the store holds what a run left, whose
        // metadata was then deleted or lost; starting afresh over it would silently drop state.
        let left = |prefix: &str| {
            checkpointing
                .storage
                .list(prefix)
                .map(|n| n.len())
                .map_err(|e| Error::Checkpoint { what: format!("listing {prefix:?}"), source: e.into() })
        };
        let (state, input) = (left("state/")?, left("input/")?);
        if state + input > 0 {
            return Err(Error::NoValidCheckpoint(format!(
                "the storage holds no metadata but {state} data checkpoint objects and {input} logged batches of an earlier run: its metadata was deleted or lost; restore it, or start from empty storage"
            )));
        }
        Ok(None)
    } else {
        Err(Error::NoValidCheckpoint(format!("no intact metadata: {}", failures.join("; "))))
    }
}

pub(crate) fn input_name(stream: StreamId, time: Time) -> String {
    format!("input/{}/{:020}", stream.0, time.as_nanos())
}

/// What differs between this program and the one that wrote the checkpoints (`theirs`, its
/// description), as the error a restart returns; `None` if the descriptions agree.
fn changed(ours: &ProgramSummary, theirs: &[String]) -> Option<Error> {
    let (_, here, there) = ours.first_difference(theirs)?;
    let line = |l: Option<&str>| l.map_or_else(|| "absent".to_string(), |l| format!("`{l}`"));
    Some(Error::ProgramMismatch { what: "a stream or output", expected: line(here), found: line(there) })
}

fn metadata_name(time: Time) -> String {
    format!("metadata/{:020}", time.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_interval_is_the_smallest_multiple_of_the_slide_of_at_least_ten_seconds() {
        let ms = Duration::from_millis;
        let cases = [
            (ms(500), ms(10_000)),
            (ms(3_000), ms(12_000)),
            (ms(10_000), ms(10_000)),
            (ms(30_000), ms(30_000)),
            (ms(700), ms(10_500)),
        ];
        for (slide, expected) in cases {
            assert_eq!(CheckpointEvery::Default.interval(slide), Some(expected), "slide {slide:?}");
        }
        assert_eq!(CheckpointEvery::Never.interval(ms(500)), None);
        assert_eq!(CheckpointEvery::Every(ms(1_500)).interval(ms(500)), Some(ms(1_500)));
    }
}
