//! The part of a worker's own graph that lets it rebuild what batches generate (the replay
//! model, ARCHITECTURE.md "Identities and the replay model").
//!
//! A worker process runs the program itself, so its graph holds the static program. What a
//! batch generates it rebuilds on demand: when a task names a node of a `Batch { stream, time }`
//! scope the graph does not have, the graph asks its [`Replayer`] (the worker's streaming
//! context) to generate that batch of that stream, with the ids the driver gave the same
//! nodes. What only the driver can know it tells the worker ([`Fact`]): how many blocks each
//! input batch has (the worker's own input streams receive nothing), the results of jobs a
//! batch's computation runs (a sort samples its keys: the job runs once, on the driver), the
//! checkpoints a restart reads, and the lineage cuts of checkpointed datasets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::context::{BlockUpload, Context, JobRequest, JobRunner};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::graph::{ActionNode, Graph, Node, ShuffleNode};
use crate::ids::{ActionId, BlockId, RddId, Scope, StreamId};
use crate::message::{Fact, Partitioning, Payload};
use crate::time::Time;

/// Rebuilds what the driver made of a stream graph: implemented by the worker's streaming
/// context.
pub(crate) trait Replayer: Send + Sync {
    /// Generates the dataset of `stream` for the batch at `time` (and whatever it reads), as
    /// the driver did, in the batch's own scope.
    fn replay(&self, stream: StreamId, time: Time, zero: Time) -> Result<(), Error>;
    /// What the driver did when the batch at `time` completed (see [`Fact::Completed`]):
    /// generates every output's stream at `time`, then forgets as the driver did.
    fn completed(&self, time: Time, keep_from: Time, checkpoint_zero: Option<Time>, zero: Time);
    /// The dataset reading the checkpoint of `stream` at `time`, as a restart makes it; with
    /// `restored`, it becomes the stream's dataset at `time`.
    fn checkpoint(&self, c: &CheckpointFact, restored: bool) -> Result<Arc<dyn Node>, Error>;
    /// The job writing the dataset of `stream` at `time` to its checkpoint.
    fn checkpoint_write(&self, stream: StreamId, time: Time, zero: Time) -> Result<Arc<dyn ActionNode>, Error>;
    /// Cuts the lineage of the stream's dataset at the cut's time to a read of its
    /// checkpoint, or, if it never generated that batch, makes the dataset as the cut left it.
    fn cut(&self, c: &CutFact) -> Result<(), Error>;
}

/// A checkpoint a restart reads (see [`Fact::Checkpoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CheckpointFact {
    pub(crate) stream: StreamId,
    pub(crate) time: Time,
    pub(crate) partitions: u32,
    pub(crate) hashed: bool,
}

/// A lineage cut (see [`Fact::Cut`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CutFact {
    pub(crate) stream: StreamId,
    pub(crate) time: Time,
    pub(crate) rdd: RddId,
    pub(crate) partitions: u32,
    pub(crate) partitioning: Partitioning,
    pub(crate) persisted: bool,
}

impl CutFact {
    /// The cut `fact` tells, if it tells one.
    fn of(fact: &Fact) -> Option<CutFact> {
        match *fact {
            Fact::Cut { stream, time, rdd, partitions, partitioning, persisted } => {
                Some(CutFact { stream, time, rdd, partitions, partitioning, persisted })
            }
            _ => None,
        }
    }

    fn fact(&self) -> Fact {
        let CutFact { stream, time, rdd, partitions, partitioning, persisted } = *self;
        Fact::Cut { stream, time, rdd, partitions, partitioning, persisted }
    }
}

/// What the driver told workers with graphs of their own, kept the same way on both sides
/// (the driver keeps it for workers that register later), each entry only as long as it can
/// matter.
#[derive(Debug, Default)]
pub(crate) struct BatchFacts {
    /// Per input batch kept on the workers: the zero time and the blocks of each partition.
    /// An entry lives exactly as long as the batch's blocks are pinned (released with them).
    pub(crate) inputs: BTreeMap<(StreamId, Time), (Time, Vec<Vec<BlockId>>)>,
    /// The results of jobs run inside a batch's scope, by action; kept while an input batch at
    /// or before the action's batch time is.
    pub(crate) results: BTreeMap<ActionId, Vec<Payload>>,
    /// Per stream, the checkpoints a restart may read (the candidates it checks, then the one
    /// it restored from, which replaces them).
    pub(crate) checkpoints: BTreeMap<StreamId, Vec<(CheckpointFact, bool)>>,
    /// Per stream, its newest cut: a worker that registers later makes that dataset from it
    /// and rebuilds later batches from there, never reaching a released input.
    pub(crate) cuts: BTreeMap<StreamId, CutFact>,
}

impl BatchFacts {
    /// Records `fact`.
    pub(crate) fn record(&mut self, fact: &Fact) {
        match fact {
            Fact::InputBatch { stream, time, zero, partitions } => {
                self.inputs.insert((*stream, *time), (*zero, partitions.clone()));
            }
            Fact::JobResult { action, results } => {
                self.results.insert(*action, results.clone());
            }
            &Fact::Checkpoint { stream, time, partitions, hashed, restored } => {
                let kept = self.checkpoints.entry(stream).or_default();
                if restored {
                    kept.clear();
                }
                kept.push((CheckpointFact { stream, time, partitions, hashed }, restored));
            }
            Fact::Cut { stream, .. } => {
                let cut = CutFact::of(fact);
                self.cuts.extend(cut.map(|c| (*stream, c)));
            }
            // A worker that registers later starts from the checkpoints and cuts kept here.
            Fact::Completed { .. } => {}
        }
    }

    /// Forgets released input batches, and the job results no kept batch can need.
    pub(crate) fn release(&mut self, inputs: &[(StreamId, Time)]) {
        inputs.iter().for_each(|key| {
            self.inputs.remove(key);
        });
        let oldest = self.inputs.keys().map(|&(_, t)| t).min();
        let newest_released = inputs.iter().map(|&(_, t)| t).max();
        self.results.retain(|action, _| match action.scope {
            Scope::Batch { time, .. } => oldest.map_or(newest_released.is_none_or(|r| time > r), |o| time >= o),
            _ => false,
        });
    }

    /// Everything kept, as the facts that tell it, in the order they were first told.
    pub(crate) fn facts(&self) -> Vec<Fact> {
        let mut out: Vec<Fact> = Vec::new();
        for (c, restored) in self.checkpoints.values().flatten() {
            let (stream, time, partitions, hashed) = (c.stream, c.time, c.partitions, c.hashed);
            out.push(Fact::Checkpoint { stream, time, partitions, hashed, restored: *restored });
        }
        out.extend(self.inputs.iter().map(|(&(stream, time), (zero, partitions))| Fact::InputBatch {
            stream,
            time,
            zero: *zero,
            partitions: partitions.clone(),
        }));
        out.extend(self.results.iter().map(|(&action, results)| Fact::JobResult { action, results: results.clone() }));
        out.extend(self.cuts.values().map(CutFact::fact));
        out
    }

    /// The checkpoint of `stream` at `time` a restart reads, if one was told.
    fn checkpoint(&self, stream: StreamId, time: Time) -> Option<CheckpointFact> {
        self.checkpoints.get(&stream)?.iter().map(|(c, _)| *c).find(|c| c.time == time)
    }
}

/// A node a replay registered, held strongly (only to keep it alive: never read).
pub(crate) enum Held {
    Rdd(#[allow(dead_code)] Arc<dyn Node>),
    Shuffle(#[allow(dead_code)] Arc<dyn ShuffleNode>),
}

#[derive(Default)]
struct State {
    facts: BatchFacts,
    /// The streaming context's zero time, from the announcements.
    zero: Option<Time>,
    replayer: Option<Weak<dyn Replayer>>,
    /// What the replay in progress registered so far.
    recording: Option<Vec<Held>>,
    /// A replay that stopped at a job whose result the driver has not sent yet (the worker is
    /// running that very job's tasks: a sort sampling its keys): the nodes it made before the
    /// job, kept so those tasks find them, until the batch is replayed again.
    partial: Option<(Time, Vec<Held>)>,
    /// Checkpoints being checked by a restart, read here, per stream (dropped when the
    /// stream's restored checkpoint is told).
    checking: BTreeMap<StreamId, Vec<Arc<dyn Node>>>,
}

/// What a worker's own graph knows of the batches it may be asked to rebuild.
#[derive(Default)]
pub(crate) struct Replica {
    state: Mutex<State>,
    /// Held while a batch is replayed: two tasks of one batch must not generate it twice.
    replaying: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps and options stay consistent across a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn failed(what: String, why: &Error) -> TaskError {
    TaskError::new(TaskErrorKind::UnknownNode, format!("the worker cannot rebuild {what}: {why}"))
}

impl Replica {
    /// Sets the context that replays batches (the last one made wins: a worker runs one).
    pub(crate) fn set_replayer(&self, replayer: Weak<dyn Replayer>) {
        lock(&self.state).replayer = Some(replayer);
    }

    fn replayer(&self) -> Result<Arc<dyn Replayer>, Error> {
        let replayer = lock(&self.state).replayer.as_ref().and_then(Weak::upgrade);
        replayer.ok_or(Error::NotReplayable("the worker's program built no streaming context"))
    }

    fn zero(&self) -> Result<Time, Error> {
        lock(&self.state).zero.ok_or(Error::NotReplayable("the driver announced no input batch yet"))
    }

    /// Takes in what the driver told: records it, and applies a restored checkpoint or a cut
    /// to the worker's streams at once.
    pub(crate) fn learn(&self, fact: Fact) -> Result<(), Error> {
        let _one = lock(&self.replaying);
        {
            let mut s = lock(&self.state);
            s.facts.record(&fact);
            if let Fact::InputBatch { zero, .. } = fact {
                s.zero = Some(zero);
            }
        }
        match fact {
            Fact::Checkpoint { stream, time, partitions, hashed, restored: true } => {
                lock(&self.state).checking.remove(&stream);
                self.replayer()?.checkpoint(&CheckpointFact { stream, time, partitions, hashed }, true).map(drop)
            }
            // Cut as the driver did; a batch the worker never generated is made from the
            // fact, not replayed: its input may be released already (the worker registered
            // after the cut), and the cut dataset needs none.
            Fact::Cut { stream, time, rdd, partitions, partitioning, persisted } => {
                self.replayer()?.cut(&CutFact { stream, time, rdd, partitions, partitioning, persisted })
            }
            Fact::Completed { time, keep_from, checkpoint_zero } => {
                self.replayer()?.completed(time, keep_from, checkpoint_zero, self.zero()?);
                Ok(())
            }
            Fact::InputBatch { .. } | Fact::JobResult { .. } | Fact::Checkpoint { .. } => Ok(()),
        }
    }

    /// The result of a job the driver ran inside a batch's computation, for the worker's own
    /// run of that computation.
    pub(crate) fn job_result(&self, action: ActionId) -> Result<Vec<Payload>, Error> {
        lock(&self.state).facts.results.get(&action).cloned().ok_or(Error::ActionOnWorker { action })
    }

    /// Forgets released input batches (and the job results no kept batch needs).
    pub(crate) fn release(&self, inputs: &[(StreamId, Time)]) {
        lock(&self.state).facts.release(inputs);
    }

    /// The blocks of each partition of the announced input batch.
    pub(crate) fn input_blocks(&self, stream: StreamId, time: Time) -> Result<Vec<Vec<BlockId>>, Error> {
        let s = lock(&self.state);
        let batch = s.facts.inputs.get(&(stream, time));
        batch.map(|(_, partitions)| partitions.clone()).ok_or(Error::InputNotAnnounced { stream, time })
    }

    /// How many announced input batches and job results are kept.
    pub(crate) fn kept(&self) -> (usize, usize) {
        let s = lock(&self.state);
        (s.facts.inputs.len(), s.facts.results.len())
    }

    /// Keeps `node`, registered by the replay in progress, alive until the replay ends.
    pub(crate) fn record(&self, node: Held) {
        if let Some(recording) = &mut lock(&self.state).recording {
            recording.push(node);
        }
    }

    /// Rebuilds what `scope` numbers, when it is a batch's or a checkpoint's.
    pub(crate) fn rebuild(&self, scope: Scope) -> Result<(), TaskError> {
        match scope {
            Scope::Batch { stream, time } => self.replay(stream, time),
            Scope::Checkpoint { stream, time } => self.read_checkpoint(stream, time),
            Scope::Program | Scope::Output { .. } | Scope::Driver => Ok(()),
        }
    }

    /// Makes the dataset reading the checkpoint of `stream` at `time`, if a restart reads it.
    fn read_checkpoint(&self, stream: StreamId, time: Time) -> Result<(), TaskError> {
        let _one = lock(&self.replaying);
        let what = || format!("the checkpoint of {stream} at {time}");
        let fact = lock(&self.state).facts.checkpoint(stream, time);
        let Some(fact) = fact else { return Ok(()) };
        let node = self.replayer().and_then(|r| r.checkpoint(&fact, false)).map_err(|e| failed(what(), &e))?;
        lock(&self.state).checking.entry(stream).or_default().push(node);
        Ok(())
    }

    /// The job writing the checkpoint `action` names, made from the worker's own streams.
    pub(crate) fn checkpoint_write(&self, action: ActionId) -> Result<Option<Arc<dyn ActionNode>>, TaskError> {
        let Scope::Checkpoint { stream, time } = action.scope else { return Ok(None) };
        let _one = lock(&self.replaying);
        let what = format!("the checkpoint write of {stream} at {time}");
        let write = self.zero().and_then(|zero| self.replayer()?.checkpoint_write(stream, time, zero));
        write.map(Some).map_err(|e| failed(what, &e))
    }

    /// Generates the batch at `time` of `stream`.
    fn replay(&self, stream: StreamId, time: Time) -> Result<(), TaskError> {
        let _one = lock(&self.replaying);
        let what = || format!("batch {time} of {stream}");
        let replayer = self.replayer().map_err(|e| failed(what(), &e))?;
        let zero = self.zero().map_err(|e| failed(what(), &e))?;
        {
            let mut s = lock(&self.state);
            // This replay makes the nodes of any partial one again.
            s.partial = None;
            s.recording = Some(Vec::new());
        }
        let replayed = replayer.replay(stream, time, zero);
        let mut s = lock(&self.state);
        let recorded = s.recording.take().unwrap_or_default();
        match replayed {
            Ok(()) => Ok(()),
            Err(Error::ActionOnWorker { action }) if action.scope.time() == Some(time) => {
                // The batch's computation runs a job the driver is running now; what it made
                // before the job is what that job's tasks read.
                s.partial = Some((time, recorded));
                Ok(())
            }
            Err(e) => Err(failed(what(), &e)),
        }
    }
}

/// The runner of a worker's own context: a worker builds datasets, it never runs jobs. Inside
/// a batch's computation it hands back the result of the driver's run of the same job.
struct WorkerRunner {
    graph: Weak<Graph>,
}

impl JobRunner for WorkerRunner {
    fn run_job(&self, job: JobRequest) -> Result<Vec<Payload>, Error> {
        let graph = self.graph.upgrade();
        match (graph.as_deref().and_then(Graph::replica), job.action.scope) {
            (Some(replica), Scope::Batch { .. }) => replica.job_result(job.action),
            _ => Err(Error::ActionOnWorker { action: job.action }),
        }
    }

    fn store_blocks(&self, upload: BlockUpload) -> Result<(), Error> {
        // A worker's input streams receive nothing: their batches read the driver's blocks.
        drop(upload);
        Err(Error::NotReplayable("a worker's input stream cannot take records: only the driver's can"))
    }

    // `announce` keeps its default, doing nothing: what a worker does to its own streams (a
    // cut it was told of) nobody else needs to hear.
}

impl Context {
    /// The context of a worker that builds the program by running it, as a worker process
    /// does: its graph ([`Graph::for_worker`]) rebuilds batches on demand, and it runs no jobs
    /// (an action is [`Error::ActionOnWorker`]). Give the graph to the worker's state machine
    /// ([`Worker::new`](crate::Worker::new)) after the program is built.
    pub fn for_worker() -> Context {
        let graph = Graph::for_worker();
        let runner = Arc::new(WorkerRunner { graph: Arc::downgrade(&graph) });
        Context::new(graph, runner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Time {
        Time::from_millis(secs * 1_000)
    }

    fn result(stream: u64, secs: u64) -> Fact {
        let action = ActionId { scope: Scope::Batch { stream: StreamId(stream), time: at(secs) }, index: 0 };
        Fact::JobResult { action, results: Vec::new() }
    }

    fn input(secs: u64) -> Fact {
        let partitions = vec![vec![BlockId::Input { stream: StreamId(0), seq: secs }]];
        Fact::InputBatch { stream: StreamId(0), time: at(secs), zero: Time::ZERO, partitions }
    }

    #[test]
    fn job_results_live_as_long_as_an_input_batch_at_or_before_them() {
        let mut f = BatchFacts::default();
        [input(1), input(2), result(3, 1), result(3, 2), input(3), result(3, 3)].iter().for_each(|x| f.record(x));
        f.release(&[(StreamId(0), at(1))]);
        // Batch 1's result can no longer be needed: its batch's input is gone.
        let times: Vec<Option<Time>> = f.results.keys().map(|a| a.scope.time()).collect();
        assert_eq!(times, vec![Some(at(2)), Some(at(3))]);
        f.release(&[(StreamId(0), at(2)), (StreamId(0), at(3))]);
        assert!(f.results.is_empty() && f.inputs.is_empty());
    }

    #[test]
    fn a_restored_checkpoint_replaces_the_candidates_of_its_stream() {
        let mut f = BatchFacts::default();
        let c = |secs, restored| Fact::Checkpoint {
            stream: StreamId(2),
            time: at(secs),
            partitions: 3,
            hashed: true,
            restored,
        };
        [c(6, false), c(4, false), c(4, true)].iter().for_each(|x| f.record(x));
        let kept: Vec<(Time, bool)> = f.checkpoints[&StreamId(2)].iter().map(|(c, r)| (c.time, *r)).collect();
        assert_eq!(kept, vec![(at(4), true)]);
        assert_eq!(f.checkpoint(StreamId(2), at(4)).map(|c| c.partitions), Some(3));
        assert_eq!(f.checkpoint(StreamId(2), at(6)), None);
        let cut = |secs| Fact::Cut {
            stream: StreamId(2),
            time: at(secs),
            rdd: RddId { scope: Scope::Batch { stream: StreamId(2), time: at(secs) }, index: 4 },
            partitions: 3,
            partitioning: Partitioning::Hash(3),
            persisted: true,
        };
        f.record(&cut(6));
        f.record(&cut(8));
        assert_eq!(f.cuts[&StreamId(2)].time, at(8));
        assert_eq!(f.facts().len(), 2, "one restored checkpoint and the newest cut");
    }
}
