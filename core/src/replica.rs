//! The part of a worker's own graph that lets it rebuild what batches generate (the replay
//! model, ARCHITECTURE.md "Identities and the replay model").
//!
//! A worker process runs the program itself, so its graph holds the static program. What a
//! batch generates it rebuilds on demand: when a task names a node of a `Batch { stream, time }`
//! scope the graph does not have, the graph asks its [`Replayer`] (the worker's streaming
//! context) to generate that batch of that stream, with the ids the driver gave the same
//! nodes. The worker's input streams receive nothing: the driver tells it how many blocks each
//! input batch has ([`Message::InputBatch`](crate::Message::InputBatch)), and the batch's input
//! datasets read those blocks from the workers' stores. A job the batch's own computation runs
//! (a sort samples its keys for range bounds) runs once, on the driver, which sends its result
//! ([`Message::ActionResult`](crate::Message::ActionResult)); the worker's run of the same
//! computation takes that result instead of running the job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::context::{BlockUpload, Context, JobRequest, JobRunner};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::graph::{Graph, Node, ShuffleNode};
use crate::ids::{ActionId, Scope, StreamId};
use crate::message::{Message, Payload};
use crate::time::Time;

/// Generates batches of a stream graph into its graph: implemented by the worker's streaming
/// context.
pub(crate) trait Replayer: Send + Sync {
    /// Generates the dataset of `stream` for the batch at `time` (and whatever it reads), as
    /// the driver did, in the batch's own scope.
    fn replay(&self, stream: StreamId, time: Time, zero: Time) -> Result<(), Error>;
    /// Forgets what the driver forgot once the batch at `time` completed.
    fn forget_after(&self, time: Time, zero: Time);
}

/// What the driver tells workers with graphs of their own about the batches they may rebuild,
/// kept the same way on both sides: the blocks of each input batch, and the results of the
/// jobs a batch's own computation ran (a sort's range bounds, say), which a worker cannot run.
#[derive(Debug, Default)]
pub(crate) struct BatchFacts {
    /// Per input batch kept on the workers: the zero time and the number of blocks. An entry
    /// lives exactly as long as the batch's blocks are pinned (released with them).
    pub(crate) inputs: BTreeMap<(StreamId, Time), (Time, u32)>,
    /// The results of jobs run inside a batch's scope, by action; kept while an input batch at
    /// or before the action's batch time is.
    pub(crate) results: BTreeMap<ActionId, Vec<Payload>>,
}

impl BatchFacts {
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

    /// The messages that tell a worker everything kept, in time order.
    pub(crate) fn messages(&self) -> impl Iterator<Item = Message> + '_ {
        let inputs = self.inputs.iter().map(|(&(stream, time), &(zero, blocks))| Message::InputBatch {
            stream,
            time,
            zero,
            blocks,
        });
        let results =
            self.results.iter().map(|(&action, results)| Message::ActionResult { action, results: results.clone() });
        inputs.chain(results)
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
    /// What the replay in progress registered so far.
    recording: Option<Vec<Held>>,
    /// A replay that stopped at a job whose result the driver has not sent yet (the worker is
    /// running that very job's tasks: a sort sampling its keys): the nodes it made before the
    /// job, kept so those tasks find them, until the batch is replayed again.
    partial: Option<(Time, Vec<Held>)>,
    /// The streaming context's zero time, from the announcements.
    zero: Option<Time>,
    /// The latest batch replayed.
    latest: Option<Time>,
    replayer: Option<Weak<dyn Replayer>>,
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

impl Replica {
    /// Sets the context that replays batches (the last one made wins: a worker runs one).
    pub(crate) fn set_replayer(&self, replayer: Weak<dyn Replayer>) {
        lock(&self.state).replayer = Some(replayer);
    }

    /// Records that the input batch `(stream, time)` has `blocks` blocks.
    pub(crate) fn announce(&self, stream: StreamId, time: Time, zero: Time, blocks: u32) {
        let mut s = lock(&self.state);
        s.facts.inputs.insert((stream, time), (zero, blocks));
        s.zero = Some(zero);
    }

    /// Keeps `node`, registered by the replay in progress, alive until the replay ends.
    pub(crate) fn record(&self, node: Held) {
        if let Some(recording) = &mut lock(&self.state).recording {
            recording.push(node);
        }
    }

    /// Records the result of a job the driver ran inside a batch's computation.
    pub(crate) fn action_result(&self, action: ActionId, results: Vec<Payload>) {
        lock(&self.state).facts.results.insert(action, results);
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

    /// How many blocks the announced input batch has.
    pub(crate) fn input_blocks(&self, stream: StreamId, time: Time) -> Result<u32, Error> {
        let s = lock(&self.state);
        s.facts.inputs.get(&(stream, time)).map(|&(_, blocks)| blocks).ok_or(Error::InputNotAnnounced { stream, time })
    }

    /// How many announced input batches and job results are kept.
    pub(crate) fn kept(&self) -> (usize, usize) {
        let s = lock(&self.state);
        (s.facts.inputs.len(), s.facts.results.len())
    }

    /// Generates the batch at `time` of `stream`, first forgetting what the driver forgot
    /// after the batches before it.
    pub(crate) fn replay(&self, stream: StreamId, time: Time) -> Result<(), TaskError> {
        let _one = lock(&self.replaying);
        let (replayer, zero, forget) = {
            let mut s = lock(&self.state);
            let replayer = s.replayer.as_ref().and_then(Weak::upgrade);
            let forget = s.latest.filter(|&latest| latest < time);
            s.latest = s.latest.max(Some(time));
            (replayer, s.zero, forget)
        };
        let failed = |why: String| {
            TaskError::new(
                TaskErrorKind::UnknownNode,
                format!("the worker cannot rebuild batch {time} of {stream}: {why}"),
            )
        };
        let replayer: Arc<dyn Replayer> =
            replayer.ok_or_else(|| failed("its program built no streaming context".into()))?;
        let zero = zero.ok_or_else(|| failed("the driver announced no input batch yet".into()))?;
        if let Some(latest) = forget {
            replayer.forget_after(latest, zero);
        }
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
            Err(e) => Err(failed(e.to_string())),
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
        let (stream, time, _) = upload.batch;
        Err(Error::InputNotAnnounced { stream, time })
    }
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
