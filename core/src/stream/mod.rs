//! Discretized streams: a [`DStream<T>`] is a sequence of datasets, one per batch interval.
//!
//! Each stream node generates, for a batch time `t`, at most one [`Rdd`] from the datasets its
//! parents generated: a stream computation is a series of short deterministic batch jobs. Nodes
//! remember what they generated for as long as a child may ask again (windows look back), then
//! drop it, which lets the workers drop the blocks.

pub(crate) mod checkpoint;
mod context;
mod dead_letters;
mod direct;
mod early;
mod flow;
mod input;
mod ops;
mod output;
mod pid;
mod rate;
mod receiver;
mod recovery;
mod replica;
pub(crate) mod state;
pub mod testing;
mod window;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub use checkpoint::CheckpointInfo;
pub use context::{BatchInfo, StreamingContext, StreamingHandle, StreamingListener, StreamingState};
pub use direct::{DirectBatch, DirectContext, DirectRead, DirectSource};
pub use early::PartitionsAhead;
pub use flow::{FlowControl, INPUT_BUFFER_BYTES_MAX_DEFAULT, INPUT_BUFFER_WAIT_MAX_DEFAULT};
pub use input::{InputHandle, QueueHandle};
pub use receiver::{Receiver, ReceiverContext, ReceiverError, RECEIVER_ERRORS_KEPT};
pub use recovery::Resumed;

use crate::error::Error;
use crate::graph::Node;
use crate::ids::{Scope, StreamId};
use crate::rdd::checkpoint::CheckpointTarget;
use crate::rdd::Rdd;
use crate::replica::CutFact;
use crate::time::Time;
use crate::{Context, Data};
use checkpoint::{CheckpointDataset, CheckpointEvery, Checkpointer, StateCheckpoint};

/// What a node sees while generating a batch.
pub(crate) struct BatchCtx<'a> {
    pub(crate) ctx: &'a Context,
    /// The time before the first batch: batch `k` (from 1) is at `zero + k * interval`.
    pub(crate) zero: Time,
}

/// How a stream computes its dataset for one batch time.
pub(crate) trait StreamCompute<T>: Send + Sync {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<T>>, Error>;

    /// How its dataset is made over one input partition, if it reads its inputs partition by
    /// partition (see `early.rs`).
    fn ahead(&self) -> Option<&dyn early::AheadCompute<T>> {
        None
    }
}

/// Type-erased view of a node for the stream graph.
pub(crate) trait StreamNodeDyn: Send + Sync {
    fn id(&self) -> StreamId;
    /// Forgets datasets older than the node must remember, counting back from `time`, and
    /// releases their cached blocks, except, when the context checkpoints from
    /// `checkpoint_zero`, those of datasets due for a checkpoint (a write may still read them).
    fn forget_before(&self, time: Time, checkpoint_zero: Option<Time>);
    /// Generates (and remembers) the node's dataset for `time`.
    fn generate(&self, time: Time, b: &BatchCtx<'_>) -> Result<(), Error>;
    /// How far back the node's datasets are remembered.
    fn remembered(&self) -> Duration;
    /// How often its datasets are checkpointed, if they are.
    fn checkpoint_interval(&self) -> Option<Duration>;
    /// Its dataset of batch `time`, if it has generated one and still remembers it.
    fn dataset_at(&self, time: Time) -> Option<Box<dyn CheckpointDataset>>;
    /// Restores its dataset from the newest intact checkpoint among `candidates` (oldest
    /// first); returns the one used, or an error when none is intact.
    fn restore(
        &self,
        b: &BatchCtx<'_>,
        ck: &Checkpointer,
        candidates: &[StateCheckpoint],
    ) -> Result<StateCheckpoint, Error>;
    /// The dataset reading the checkpoint `c` of this stream (in the checkpoint's scope, read
    /// on the workers and cached there); with `restored`, it becomes the node's dataset at
    /// `c.time`, as a restart makes it.
    fn checkpoint_read(&self, ctx: &Context, ck: &Checkpointer, c: &StateCheckpoint, restored: bool) -> Arc<dyn Node>;
    /// Makes the node's dataset at `c.time` as the driver's cut left it, reading `target`,
    /// for a worker that never generated that batch.
    fn install_cut(&self, ctx: &Context, c: &CutFact, target: CheckpointTarget);
    /// The node's operator if it keeps a state across batches (its lineage grows every batch
    /// until a checkpoint cuts it).
    fn stateful(&self) -> Option<&'static str>;
    /// The node's shape, as one line of the program's description: its id, operator, record
    /// type, slide, parents and the parameters that shape what it computes (window lengths,
    /// partition counts, timeouts). Two programs whose streams describe alike compute alike,
    /// except for what closures do, which no description can capture.
    fn describe(&self) -> String;
    /// Its parents' ids.
    fn parent_ids(&self) -> Vec<StreamId>;
    /// What it is to partitions computed ahead, if anything.
    fn ahead_kind(&self) -> Option<early::AheadKind>;
    /// Makes it a frontier stream whose datasets read what is computed ahead into `memo`;
    /// none if it reads no input partition by partition.
    fn into_frontier(self: Arc<Self>, memo: &Arc<early::AheadMemo>) -> Option<Arc<dyn early::AheadFrontier>>;
}

/// A stream node: its compute function and the datasets it generated, by batch time.
pub(crate) struct StreamNode<T> {
    id: StreamId,
    name: &'static str,
    slide: Duration,
    /// How far back children may ask for this node's datasets.
    remember: Mutex<Duration>,
    parents: Vec<Arc<dyn RememberDyn>>,
    /// The parameters that shape what the operator computes, for the program's description.
    params: Mutex<String>,
    generated: Mutex<BTreeMap<Time, Option<Rdd<T>>>>,
    compute: Box<dyn StreamCompute<T>>,
    checkpoint: Mutex<CheckpointEvery>,
    /// Whether it keeps a state across batches (see [`DStream::checkpointed_by_default`]).
    stateful: AtomicBool,
    /// Set on a frontier stream while partitions are computed ahead: where they are.
    ahead: OnceLock<Arc<early::AheadMemo>>,
}

/// Raising how long a node remembers, through its ancestors.
pub(crate) trait RememberDyn: Send + Sync {
    fn remember_at_least(&self, d: Duration);
    /// The stream's id, for its children's descriptions.
    fn stream_id(&self) -> StreamId;
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // Nodes hold plain maps; a panic in user code while a lock is held cannot leave them torn.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Data> StreamNode<T> {
    /// The dataset of batch `time`, generated once and remembered. Times that are not a
    /// multiple of this stream's slide after the zero time have no dataset.
    /// The dataset of the checkpoint `c` of this stream, numbered in the checkpoint's scope.
    fn checkpoint_dataset(&self, ctx: &Context, ck: &Checkpointer, c: &StateCheckpoint) -> Rdd<T> {
        let _scope = ctx.graph().enter(Scope::Checkpoint { stream: self.id, time: c.time });
        ctx.checkpointed::<T>(ck.target(self.id, c.time), c.partitions as usize, c.hashed)
    }

    pub(crate) fn get(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<T>>, Error> {
        if time <= b.zero || !is_multiple(time - b.zero, self.slide) {
            return Ok(None);
        }
        if let Some(rdd) = lock(&self.generated).get(&time) {
            return Ok(rdd.clone());
        }
        // Everything the operator makes for this batch is numbered in the batch's own scope,
        // so any process generating the batch derives the same ids.
        let rdd = {
            let _scope = b.ctx.graph().enter(Scope::Batch { stream: self.id, time });
            let rdd = self.compute.compute(time, b)?;
            match (rdd, self.ahead.get()) {
                (Some(rdd), Some(memo)) => Some(early::read_ahead(rdd, self.id, time, memo)),
                (rdd, _) => rdd,
            }
        };
        lock(&self.generated).insert(time, rdd.clone());
        Ok(rdd)
    }
}

impl<T: Data> StreamNodeDyn for StreamNode<T> {
    fn id(&self) -> StreamId {
        self.id
    }

    fn forget_before(&self, time: Time, checkpoint_zero: Option<Time>) {
        let keep = *lock(&self.remember);
        let mut generated = lock(&self.generated);
        let cutoff = time - keep;
        // Keep everything after the cutoff: a child may still read it.
        let kept = generated.split_off(&(cutoff + Duration::from_nanos(1)));
        let forgotten = std::mem::replace(&mut *generated, kept);
        drop(generated);
        // A forgotten dataset may live on in the lineage of later ones (a window's state in the
        // next state's): its cached blocks go now, or every past state would stay in memory
        // until a checkpoint cuts the chain. Rebuilding one, if a later block is lost, goes
        // through lineage like any other.
        let every = self.checkpoint_interval();
        for (t, rdd) in forgotten {
            let Some(rdd) = rdd else { continue };
            let checkpointed = checkpoint_zero.zip(every).is_some_and(|(zero, every)| is_multiple(t - zero, every));
            if rdd.node().is_persisted() && !checkpointed {
                rdd.context().graph().release_rdd_blocks(rdd.id());
            }
        }
    }

    fn generate(&self, time: Time, b: &BatchCtx<'_>) -> Result<(), Error> {
        self.get(time, b).map(drop)
    }

    fn remembered(&self) -> Duration {
        *lock(&self.remember)
    }

    fn checkpoint_interval(&self) -> Option<Duration> {
        lock(&self.checkpoint).interval(self.slide)
    }

    fn dataset_at(&self, time: Time) -> Option<Box<dyn CheckpointDataset>> {
        let rdd = lock(&self.generated).get(&time).cloned().flatten()?;
        Some(Box::new(rdd))
    }

    fn restore(
        &self,
        b: &BatchCtx<'_>,
        ck: &Checkpointer,
        candidates: &[StateCheckpoint],
    ) -> Result<StateCheckpoint, Error> {
        let mut failures = Vec::new();
        for c in candidates.iter().rev() {
            // Workers rebuilding batches read it too, to check it with the driver.
            b.ctx.announce(c.fact(self.id, false));
            // Read on the workers, where it stays cached: counting it checks every partition
            // (a damaged one fails the job) and leaves the blocks ready for the next batch.
            let rdd = self.checkpoint_dataset(b.ctx, ck, c);
            match rdd.count() {
                Ok(_) => {
                    lock(&self.generated).insert(c.time, Some(rdd));
                    b.ctx.announce(c.fact(self.id, true));
                    return Ok(c.clone());
                }
                Err(e) => {
                    tracing::warn!(stream = %self.id, time = %c.time, error = %e, "damaged checkpoint; trying the previous one");
                    failures.push(e.to_string());
                }
            }
        }
        Err(Error::NoValidCheckpoint(format!("no intact checkpoint of {}: {}", self.id, failures.join("; "))))
    }

    fn checkpoint_read(&self, ctx: &Context, ck: &Checkpointer, c: &StateCheckpoint, restored: bool) -> Arc<dyn Node> {
        let rdd = self.checkpoint_dataset(ctx, ck, c);
        let node: Arc<dyn Node> = Arc::clone(rdd.node()) as Arc<dyn Node>;
        if restored {
            lock(&self.generated).insert(c.time, Some(rdd));
        }
        node
    }

    fn install_cut(&self, ctx: &Context, c: &CutFact, target: CheckpointTarget) {
        let rdd = Rdd::cut_dataset(ctx, c, target);
        lock(&self.generated).insert(c.time, Some(rdd));
    }

    fn stateful(&self) -> Option<&'static str> {
        self.stateful.load(Ordering::Relaxed).then_some(self.name)
    }

    fn describe(&self) -> String {
        let mut line = format!("{} {}<{}> slide={:?}", self.id, self.name, std::any::type_name::<T>(), self.slide);
        if !self.parents.is_empty() {
            let parents: Vec<String> = self.parents.iter().map(|p| p.stream_id().to_string()).collect();
            line.push_str(&format!(" parents=[{}]", parents.join(", ")));
        }
        let params = lock(&self.params);
        if !params.is_empty() {
            line.push(' ');
            line.push_str(&params);
        }
        line
    }

    fn parent_ids(&self) -> Vec<StreamId> {
        self.parents.iter().map(|p| p.stream_id()).collect()
    }

    fn ahead_kind(&self) -> Option<early::AheadKind> {
        StreamNode::ahead_kind(self)
    }

    fn into_frontier(self: Arc<Self>, memo: &Arc<early::AheadMemo>) -> Option<Arc<dyn early::AheadFrontier>> {
        if self.ahead_inputs().is_empty() {
            return None;
        }
        // Set once per run: a context starts once.
        let _ = self.ahead.set(Arc::clone(memo));
        Some(self)
    }
}

impl<T: Data> RememberDyn for StreamNode<T> {
    fn remember_at_least(&self, d: Duration) {
        let mut r = lock(&self.remember);
        if *r < d {
            *r = d;
        }
        drop(r);
        for p in &self.parents {
            p.remember_at_least(d);
        }
    }

    fn stream_id(&self) -> StreamId {
        self.id
    }
}

pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn is_multiple(d: Duration, of: Duration) -> bool {
    let of = duration_nanos(of);
    of != 0 && duration_nanos(d) % of == 0
}

/// A discretized stream of `T` records: one dataset per slide of the stream.
///
/// Handles are cheap to clone. Transformations build new streams; output operations
/// ([`DStream::foreach_rdd`], [`DStream::print`]) make the stream run once the context starts.
pub struct DStream<T> {
    node: Arc<StreamNode<T>>,
    ssc: StreamingContext,
}

impl<T> Clone for DStream<T> {
    fn clone(&self) -> Self {
        DStream { node: Arc::clone(&self.node), ssc: self.ssc.clone() }
    }
}

impl<T: Data> std::fmt::Debug for DStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DStream").field("id", &self.node.id).field("name", &self.node.name).finish()
    }
}

impl<T: Data> DStream<T> {
    /// Registers a stream computed by `compute` from `parents`, with the given slide.
    pub(crate) fn new_node(
        ssc: &StreamingContext,
        name: &'static str,
        slide: Duration,
        parents: Vec<Arc<dyn RememberDyn>>,
        compute: impl StreamCompute<T> + 'static,
    ) -> DStream<T> {
        let node = Arc::new(StreamNode {
            id: ssc.next_stream_id(),
            name,
            slide,
            remember: Mutex::new(slide),
            parents,
            params: Mutex::new(String::new()),
            generated: Mutex::new(BTreeMap::new()),
            compute: Box::new(compute),
            checkpoint: Mutex::new(CheckpointEvery::Never),
            stateful: AtomicBool::new(false),
            ahead: OnceLock::new(),
        });
        ssc.register_node(node.clone());
        DStream { node, ssc: ssc.clone() }
    }

    /// Records the parameters that shape what this stream computes (window length, partition
    /// count, ...) in the program's description, so a program changed in them is told apart.
    pub(crate) fn with_params(self, params: String) -> Self {
        {
            let mut p = lock(&self.node.params);
            if !p.is_empty() {
                p.push(' ');
            }
            p.push_str(&params);
        }
        self
    }

    /// This stream's id.
    pub fn id(&self) -> StreamId {
        self.node.id
    }

    #[doc(alias = "slideDuration")]
    /// The interval between this stream's datasets: the batch interval, or a window's slide.
    pub fn slide_duration(&self) -> Duration {
        self.node.slide
    }

    /// The streaming context this stream belongs to.
    pub fn context(&self) -> &StreamingContext {
        &self.ssc
    }

    pub(crate) fn node(&self) -> &Arc<StreamNode<T>> {
        &self.node
    }

    pub(crate) fn as_parent(&self) -> Arc<dyn RememberDyn> {
        self.node.clone()
    }

    /// Marks the stream as stateful: checkpointed at the default interval unless
    /// [`DStream::checkpoint`] says otherwise.
    pub(crate) fn checkpointed_by_default(self) -> Self {
        self.node.stateful.store(true, Ordering::Relaxed);
        let mut every = lock(&self.node.checkpoint);
        if *every == CheckpointEvery::Never {
            *every = CheckpointEvery::Default;
        }
        drop(every);
        self
    }

    /// Checkpoints this stream's datasets every `interval` when the context checkpoints (see
    /// [`StreamingContext::get_or_create`]): a stateful stream's default is the smallest
    /// multiple of its slide that is at least 10 s. A checkpoint cuts the lineage of the
    /// dataset, so later batches and recoveries never reach past it. The interval must be a
    /// non-zero multiple of the stream's slide.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # use dstream::{ManualClock, StepCluster, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// # let clock = std::sync::Arc::new(ManualClock::new(Time::ZERO));
    /// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock)?;
    /// let (_queue, pairs) = ssc.queue_stream::<(String, u64)>(2);
    /// let totals = pairs.update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()), 2)?;
    /// let totals = totals.checkpoint(Duration::from_secs(3))?; // every third batch
    /// assert!(totals.checkpoint(Duration::from_millis(1500)).is_err()); // not a multiple of the slide
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn checkpoint(&self, interval: Duration) -> Result<DStream<T>, Error> {
        if interval.is_zero() || !is_multiple(interval, self.node.slide) {
            return Err(Error::InvalidDuration {
                what: format!("checkpoint interval of {}", self.node.id),
                reason: format!("{interval:?} is not a non-zero multiple of the stream's slide {:?}", self.node.slide),
            });
        }
        *lock(&self.node.checkpoint) = CheckpointEvery::Every(interval);
        Ok(self.clone())
    }
}
