//! The process-faithful mode of the stepping harness: every worker owns a graph, built by
//! running the program on a context of its own, shares no memory with the driver, and gets
//! only encoded messages, as a worker in another process does.

use std::any::Any;
use std::sync::Arc;

use super::{StepCluster, StepClusterBuilder};
use crate::context::Context;
use crate::error::Error;
use crate::graph::Graph;

/// A worker's program: builds what the driver's program builds on a worker's context and
/// returns the handles that keep it alive.
type Program = Box<dyn FnMut(&Context) -> Result<Box<dyn Any + Send>, Error> + Send>;

/// The workers' graphs, and what each worker's program returned (its handles keep the
/// program's datasets and streams alive: the graph holds nodes weakly).
pub(super) struct OwnGraphs {
    graphs: Vec<Arc<Graph>>,
    handles: Vec<Box<dyn Any + Send>>,
    /// The program, when a restarted worker runs it again.
    program: Option<Program>,
}

impl OwnGraphs {
    /// The graph of worker `i`.
    pub(super) fn graph(&self, i: u32) -> &Arc<Graph> {
        &self.graphs[i as usize]
    }

    /// The graph of worker `i`'s next process: a new one, built by running the program again
    /// on a fresh context, as a restarted process does, when the program was kept; otherwise
    /// the one it had.
    pub(super) fn restart(&mut self, i: u32) -> Result<&Arc<Graph>, Error> {
        if let Some(program) = &mut self.program {
            let ctx = Context::for_worker();
            self.handles[i as usize] = program(&ctx)?;
            self.graphs[i as usize] = Arc::clone(ctx.graph());
        }
        Ok(&self.graphs[i as usize])
    }

    fn build(
        workers: u32,
        program: &mut dyn FnMut(&Context) -> Result<Box<dyn Any + Send>, Error>,
    ) -> Result<OwnGraphs, Error> {
        let mut graphs = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let ctx = Context::for_worker();
            handles.push(program(&ctx)?);
            graphs.push(Arc::clone(ctx.graph()));
        }
        Ok(OwnGraphs { graphs, handles, program: None })
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
    /// A restarted worker keeps the graph its previous process built;
    /// [`StepClusterBuilder::build_with_worker_processes`] builds it again.
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
        self,
        mut program: impl FnMut(&Context) -> Result<Box<dyn Any + Send>, Error>,
    ) -> Result<StepCluster, Error> {
        let own = OwnGraphs::build(self.workers, &mut program)?;
        Ok(self.own_graphs(own))
    }

    /// As [`StepClusterBuilder::build_with_worker_programs`], and a restarted worker
    /// ([`Fault::Restart`](crate::Fault::Restart)) runs `program` again on a fresh context,
    /// as a new process does, instead of keeping the graph its previous process built: it
    /// starts with nothing generated and rebuilds what its tasks name from what the driver
    /// tells it when it registers.
    pub fn build_with_worker_processes(
        self,
        mut program: impl FnMut(&Context) -> Result<Box<dyn Any + Send>, Error> + Send + 'static,
    ) -> Result<StepCluster, Error> {
        let mut own = OwnGraphs::build(self.workers, &mut program)?;
        own.program = Some(Box::new(program));
        Ok(self.own_graphs(own))
    }

    fn own_graphs(mut self, own: OwnGraphs) -> StepCluster {
        self.wire = true;
        self.worker.encode_payloads = true;
        self.worker.shares_driver_graph = false;
        self.build_on(Some(own))
    }
}
