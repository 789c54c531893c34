//! The process-faithful mode of the stepping harness: every worker owns a graph, built by
//! running the program on a context of its own, shares no memory with the driver, and gets
//! only encoded messages, as a worker in another process does.

use std::any::Any;
use std::sync::Arc;

use super::{StepCluster, StepClusterBuilder};
use crate::context::Context;
use crate::error::Error;
use crate::graph::Graph;

/// The workers' graphs, and what each worker's program returned (its handles keep the
/// program's datasets and streams alive: the graph holds nodes weakly).
pub(super) struct OwnGraphs {
    graphs: Vec<Arc<Graph>>,
    _handles: Vec<Box<dyn Any + Send>>,
}

impl OwnGraphs {
    /// The graph of worker `i`.
    pub(super) fn graph(&self, i: u32) -> &Arc<Graph> {
        &self.graphs[i as usize]
    }
}

impl StepClusterBuilder {
    /// Builds the cluster in its process-faithful mode: every worker gets a graph of its own,
    /// built by calling `program` on a context of its own, exactly as a worker process runs
    /// the program's job function; it shares no memory with the driver, gets every message
    /// encoded, and rebuilds each batch's datasets from its own streams when a task names them.
    /// `program` must build what the driver's program builds (the driver refuses a worker whose
    /// program differs, naming the first difference, when it registers at the first job), and
    /// returns the handles that keep it alive. A worker's context runs no jobs: an action in
    /// `program` fails with [`Error::ActionOnWorker`] (see [`Context::for_worker`]).
    ///
    /// What only the driver can compute is refused with a typed error when a task needs it:
    /// datasets made inside an output operation or after the program was built, and actions
    /// other than the built-in ones (`collect`, `count`, `take`) over them.
    ///
    /// # Examples
    ///
    /// ```
    /// use dstream::{Context, StepCluster};
    /// let program = |ctx: &Context| ctx.parallelize((1..=6u32).collect(), 3).map(|r| r.map(|x| x * x));
    /// let cluster = StepCluster::builder()
    ///     .workers(3)
    ///     .build_with_worker_programs(|ctx| Ok(Box::new(program(ctx)?) as Box<dyn std::any::Any + Send>))?;
    /// let squares = program(&cluster.context())?;
    /// assert_eq!(squares.collect()?, vec![1, 4, 9, 16, 25, 36]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn build_with_worker_programs(
        mut self,
        mut program: impl FnMut(&Context) -> Result<Box<dyn Any + Send>, Error>,
    ) -> Result<StepCluster, Error> {
        self.wire = true;
        self.worker.encode_payloads = true;
        self.worker.shares_driver_graph = false;
        let mut graphs = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..self.workers {
            let ctx = Context::for_worker();
            handles.push(program(&ctx)?);
            graphs.push(Arc::clone(ctx.graph()));
        }
        Ok(self.build_on(Some(OwnGraphs { graphs, _handles: handles })))
    }
}
