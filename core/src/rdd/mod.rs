//! Resilient distributed datasets: immutable, partitioned collections with lineage.
//!
//! An [`Rdd<T>`] is a cheap handle to a node of the program's [`Graph`](crate::Graph). Nothing
//! is computed until an action (`collect`, `count`, ...) submits a job. Narrow transformations
//! are pipelined: a chain `map -> filter -> map` runs as one pass over each partition, in chunks,
//! inside one task. Transformations that need records grouped by key end a stage with a shuffle,
//! combining on the map side first whenever the operation reduces.

mod action;
pub(crate) mod checkpoint;
mod narrow;
mod pair;
mod shuffle;
mod source;
pub(crate) mod state_step;
mod window;

use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

pub use shuffle::Aggregator;
pub(crate) use source::NewBlock;
pub use source::PartitionSource;
pub(crate) use window::{KeepKey, Reduce};

use crate::context::Context;
use crate::dead_letter::Refusals;
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::graph::{Dep, Graph, Node, NodeInfo, PartitionerKind};
use crate::ids::{BlockId, RddId};
use crate::message::{Builtin, Payload};
use crate::task::{self, Sink, TaskContext};
use crate::Data;

/// How one dataset computes a partition: it pushes the partition's records, in order, into
/// `out` in chunks.
pub(crate) trait Compute<T>: Send + Sync {
    fn compute(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError>;

    /// [`Compute::compute`] on an isolating attempt that covers this dataset (see
    /// [`crate::dead_letter`]): a per-record operator calls its function on each record through
    /// `refusals` and hands them to the task context at the end. Others compute as usual, so a
    /// panic in them still fails the task.
    fn compute_isolated(
        &self,
        split: usize,
        tc: &mut TaskContext<'_>,
        out: &mut Sink<'_, T>,
        refusals: Refusals,
    ) -> Result<(), TaskError> {
        drop(refusals);
        self.compute(split, tc, out)
    }

    /// The partition `split` when it already exists whole in memory (data the program holds,
    /// input blocks, or a cached block on the way to it), so readers that only look at records
    /// borrow it instead of copying it; `None` when it has to be computed.
    fn held(&self, _split: usize, _tc: &mut TaskContext<'_>) -> Result<Option<Pieces<T>>, TaskError> {
        Ok(None)
    }
}

/// A partition held whole in memory, as one or more pieces, in order: an input batch's
/// partition is the blocks stored for it, read where they are and never gathered.
pub(crate) struct Pieces<T>(Vec<Arc<Vec<T>>>);

impl<T> Pieces<T> {
    /// A partition held as one vector.
    pub(crate) fn one(data: Arc<Vec<T>>) -> Pieces<T> {
        Pieces(vec![data])
    }

    /// A partition held as `pieces`, in order.
    pub(crate) fn many(pieces: Vec<Arc<Vec<T>>>) -> Pieces<T> {
        Pieces(pieces)
    }

    /// The records, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.0.iter().flat_map(|p| p.iter())
    }

    /// How many records it has.
    pub(crate) fn len(&self) -> usize {
        self.0.iter().map(|p| p.len()).sum()
    }

    /// The pieces' records, piece by piece.
    pub(crate) fn slices(&self) -> impl Iterator<Item = &[T]> + '_ {
        self.0.iter().map(|p| p.as_slice())
    }

    /// The partition as one vector: its piece when it has one, else the pieces gathered.
    pub(crate) fn into_one(mut self) -> Arc<Vec<T>>
    where
        T: Clone,
    {
        if self.0.len() == 1 {
            if let Some(one) = self.0.pop() {
                return one;
            }
        }
        let mut all = Vec::with_capacity(self.0.iter().map(|p| p.len()).sum());
        self.slices().for_each(|s| all.extend_from_slice(s));
        Arc::new(all)
    }
}

/// A dataset node with its record type.
pub(crate) struct RddNode<T> {
    info: NodeInfo,
    /// How it is computed; replaced once, by a read of its checkpoint, when its lineage is cut.
    lineage: RwLock<Lineage<T>>,
    graph: Arc<Graph>,
    _records: PhantomData<fn() -> T>,
}

/// A dataset's dependencies and the computation that reads them.
struct Lineage<T> {
    deps: Vec<Dep>,
    compute: Arc<dyn Compute<T>>,
}

impl<T: Data> RddNode<T> {
    /// Pushes the records of partition `split`. A persisted dataset reads its cached block when
    /// the task has it, and otherwise computes the partition and hands it to the worker to cache.
    pub(crate) fn run(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        if !self.info.persisted {
            return self.compute_into(split, tc, out);
        }
        let data = self.shared_partition(split, tc)?;
        task::push_shared(&data, out)
    }

    /// Computes partition `split` (never from the cache), isolating records when the task
    /// does and covers this dataset.
    fn compute_into(&self, split: usize, tc: &mut TaskContext<'_>, out: &mut Sink<'_, T>) -> Result<(), TaskError> {
        match tc.refusals(self.info.id, self.info.name, split) {
            None => self.compute().compute(split, tc, out),
            Some(refusals) => self.compute().compute_isolated(split, tc, out, refusals),
        }
    }

    /// The whole partition `split` as one vector.
    pub(crate) fn collect_partition(
        &self,
        split: usize,
        tc: &mut TaskContext<'_>,
        use_cache: bool,
    ) -> Result<Vec<T>, TaskError> {
        let mut all = Vec::new();
        {
            let mut sink = task::collect_into(&mut all);
            if use_cache {
                self.run(split, tc, &mut sink)?;
            } else {
                self.compute_into(split, tc, &mut sink)?;
            }
        }
        Ok(all)
    }

    /// The partition `split` when it can be read without being computed or copied: the block of
    /// a persisted dataset (computed and cached first if the task does not have it), or data
    /// held in memory on its narrow lineage. Readers that only look at records use this.
    pub(crate) fn borrowed(&self, split: usize, tc: &mut TaskContext<'_>) -> Result<Option<Pieces<T>>, TaskError> {
        if self.info.persisted {
            return self.shared_partition(split, tc).map(|p| Some(Pieces::one(p)));
        }
        self.compute().held(split, tc)
    }

    /// The whole partition `split`, shared: the cached block of a persisted dataset when the
    /// task has it (computed and cached otherwise), else borrowed or computed.
    pub(crate) fn shared_partition(&self, split: usize, tc: &mut TaskContext<'_>) -> Result<Arc<Vec<T>>, TaskError> {
        if !self.info.persisted {
            return match self.compute().held(split, tc)? {
                Some(data) => Ok(data.into_one()),
                None => Ok(Arc::new(self.collect_partition(split, tc, false)?)),
            };
        }
        let block = BlockId::Rdd { rdd: self.info.id, partition: split as u32 };
        if let Some(data) = tc.input::<Vec<T>>(block)? {
            return Ok(data);
        }
        let data = Arc::new(self.collect_partition(split, tc, false)?);
        tc.store(block, Payload::local(Arc::clone(&data)), task::estimate_bytes(&data));
        Ok(data)
    }

    fn compute(&self) -> Arc<dyn Compute<T>> {
        Arc::clone(&self.lineage().compute)
    }

    fn lineage(&self) -> std::sync::RwLockReadGuard<'_, Lineage<T>> {
        // The lineage is replaced whole under the lock, so a poisoned lock still holds a valid one.
        self.lineage.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts the lineage: from now on the dataset is computed by `compute`, with no parents, and
    /// the parents it held are released (once nothing else holds them).
    pub(crate) fn cut_lineage(&self, compute: Arc<dyn Compute<T>>) {
        let old = {
            let mut lineage = self.lineage.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *lineage, Lineage { deps: Vec::new(), compute })
        };
        // Dropped outside the lock: dropping parents may run their own drops.
        drop(old);
    }

    pub(crate) fn id(&self) -> RddId {
        self.info.id
    }

    pub(crate) fn partitions(&self) -> usize {
        self.info.partitions
    }

    pub(crate) fn partitioner(&self) -> Option<PartitionerKind> {
        self.info.partitioner
    }

    pub(crate) fn is_persisted(&self) -> bool {
        self.info.persisted
    }
}

impl<T: Data> Node for RddNode<T> {
    fn info(&self) -> &NodeInfo {
        &self.info
    }

    fn deps(&self) -> Vec<Dep> {
        self.lineage().deps.clone()
    }

    fn encode_block(&self, payload: &Payload) -> Result<Payload, TaskError> {
        payload.encoded::<Vec<T>>().map_err(|e| TaskError::new(TaskErrorKind::Encode, e.to_string()))
    }

    fn run_builtin(
        &self,
        builtin: Builtin,
        split: usize,
        tc: &mut TaskContext<'_>,
        encode: bool,
    ) -> Result<Payload, TaskError> {
        action::run_builtin(self, builtin, split, tc, encode)
    }
}

impl<T> Drop for RddNode<T> {
    fn drop(&mut self) {
        self.graph.forget_rdd(self.info.id, self.info.persisted, self.info.input.as_deref());
    }
}

/// A resilient distributed dataset of `T` records.
///
/// Handles are cheap to clone; the data they describe is immutable. Nothing is computed until
/// an action (`collect`, `count`, ...) submits a job. Narrow transformations are pipelined: a
/// chain `map -> filter -> map` runs as one pass over each partition, in chunks, inside one
/// task. Transformations that group records by key end a stage with a shuffle, combining on the
/// map side first whenever the operation reduces.
///
/// # Examples
///
/// ```
/// use dstream::StepCluster;
/// let cluster = StepCluster::builder().workers(3).seed(7).build();
/// let ctx = cluster.context();
/// let squares = ctx.parallelize((1..=4u64).collect(), 2)?.map(|x| x * x);
/// assert_eq!(squares.collect()?, vec![1, 4, 9, 16]);
/// # Ok::<(), dstream::Error>(())
/// ```
pub struct Rdd<T> {
    node: Arc<RddNode<T>>,
    ctx: Context,
}

impl<T> Clone for Rdd<T> {
    fn clone(&self) -> Self {
        Rdd { node: Arc::clone(&self.node), ctx: self.ctx.clone() }
    }
}

impl<T: Data> std::fmt::Debug for Rdd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rdd")
            .field("id", &self.node.info.id)
            .field("name", &self.node.info.name)
            .field("partitions", &self.node.info.partitions)
            .finish()
    }
}

impl<T: Data> Rdd<T> {
    /// Registers a new dataset computed by `compute` from `deps`.
    pub(crate) fn from_compute(
        ctx: &Context,
        name: &'static str,
        partitions: usize,
        deps: Vec<Dep>,
        partitioner: Option<PartitionerKind>,
        compute: impl Compute<T> + 'static,
    ) -> Rdd<T> {
        Rdd::with_id(ctx, ctx.graph().next_rdd_id(), name, partitions, deps, partitioner, false, Box::new(compute))
    }

    #[allow(clippy::too_many_arguments)] // Internal constructor; every caller names its fields.
    fn with_id(
        ctx: &Context,
        id: RddId,
        name: &'static str,
        partitions: usize,
        deps: Vec<Dep>,
        partitioner: Option<PartitionerKind>,
        persisted: bool,
        compute: Box<dyn Compute<T>>,
    ) -> Rdd<T> {
        let info = NodeInfo { id, name, partitions, partitioner, persisted, input: None };
        Rdd::from_info(ctx, info, deps, compute)
    }

    /// Registers a new dataset described by `info`.
    pub(crate) fn from_info(ctx: &Context, info: NodeInfo, deps: Vec<Dep>, compute: Box<dyn Compute<T>>) -> Rdd<T> {
        let lineage = RwLock::new(Lineage { deps, compute: Arc::from(compute) });
        let node = Arc::new(RddNode { info, lineage, graph: Arc::clone(ctx.graph()), _records: PhantomData });
        let erased: Arc<dyn Node> = node.clone();
        ctx.graph().register_rdd(&erased, std::any::type_name::<T>());
        Rdd { node, ctx: ctx.clone() }
    }

    /// The dataset's id in the program's graph.
    pub fn id(&self) -> RddId {
        self.node.info.id
    }

    #[doc(alias = "getNumPartitions")]
    /// The number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.node.info.partitions
    }

    /// The context this dataset belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub(crate) fn node(&self) -> &Arc<RddNode<T>> {
        &self.node
    }

    /// A dataset with the same records whose partitions are kept in the workers' block stores
    /// once computed, so later jobs read them instead of recomputing them. Blocks evicted for
    /// lack of room are recomputed from lineage when needed again.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let evens = ctx.parallelize((0..100u32).collect(), 4)?.filter(|x| x % 2 == 0).persist();
    /// assert_eq!(evens.count()?, 50); // computes and caches
    /// assert_eq!(evens.count()?, 50); // reads the cache
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[must_use = "persist returns the persisted dataset; the original handle is not cached"]
    pub fn persist(&self) -> Rdd<T> {
        let parent = Arc::clone(&self.node);
        Rdd::with_id(
            &self.ctx,
            self.ctx.graph().next_rdd_id(),
            "persist",
            self.num_partitions(),
            vec![Dep::Narrow { parent: parent.id(), map: crate::graph::NarrowMap::OneToOne }],
            parent.partitioner(),
            true,
            Box::new(narrow::Identity(parent)),
        )
    }

    /// The datasets this one is computed from, directly or not, each once, nearest first: its
    /// lineage, as a recomputation would walk it (shuffle dependencies included). A
    /// checkpointed dataset has none: its lineage was cut. For debugging and tests.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().build();
    /// # let ctx = cluster.context();
    /// let lines = ctx.parallelize(vec!["a b".to_string(), "b".to_string()], 2)?;
    /// let words = lines.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
    /// let counts = words.map(|w| (w, 1)).reduce_by_key(|a, b| a + b);
    /// let names: Vec<&str> = counts.lineage().iter().map(|(_, name)| *name).collect();
    /// assert!(names.contains(&"parallelize"));
    /// assert!(ctx.parallelize(vec![1], 1)?.lineage().is_empty());
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn lineage(&self) -> Vec<(RddId, &'static str)> {
        let graph = self.ctx.graph();
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([self.id()]);
        while let Some(id) = queue.pop_front() {
            let Ok(node) = graph.rdd(id) else { continue };
            for dep in node.deps() {
                let parent = match dep {
                    Dep::Narrow { parent, .. } | Dep::Shuffle { parent, .. } => parent,
                };
                if seen.insert(parent) {
                    if let Ok(p) = graph.rdd(parent) {
                        out.push((parent, p.info().name));
                    }
                    queue.push_back(parent);
                }
            }
        }
        out
    }

    /// The same as [`Rdd::persist`], with Spark's name.
    #[must_use = "cache returns the cached dataset; the original handle is not cached"]
    pub fn cache(&self) -> Rdd<T> {
        self.persist()
    }
}

/// Checks a requested partition count.
pub(crate) fn check_partitions(operation: &'static str, partitions: usize) -> Result<usize, Error> {
    if partitions == 0 {
        Err(Error::ZeroPartitions { operation })
    } else {
        Ok(partitions)
    }
}
