//! The simulation: a streaming program on a driver and N workers stepped by one thread in
//! virtual time, under a [`FaultPlan`], reproducible from one seed.
//!
//! It runs the same `StreamingContext` programs as [`LocalCluster`](crate::LocalCluster), on
//! the same driver and worker state machines, with tasks that take time by a [`CostModel`],
//! links that delay, reorder and lose messages by a [`LinkModel`](dstream::LinkModel), and the faults of the plan:
//! workers killed, restarted, slowed and partitioned, links between workers cut, checkpoint
//! writes failed and torn, reads corrupted, and the driver crashed and restarted from its
//! checkpoint with [`StreamingContext::get_or_create`]. Input comes from a function of the
//! batch time, as a replayable source (a Kafka topic read by offsets) gives it; outputs go to
//! [`Outputs`], a sink keyed by batch time. [`Report::check_against`] compares a run with a
//! fault-free one: every output of every batch ran, wrote the same bytes, and ran once per
//! driver run.
//!
//! ```
//! use std::time::Duration;
//! use dstream::{DStream, Error, StreamingContext, Time};
//! use dstream_inproc::sim::{FaultPlan, Outputs, Simulation};
//!
//! fn words(t: Time) -> Vec<String> {
//!     let n = t.as_millis() / 1000;
//!     (0..20).map(|i| format!("w{}", (i * n) % 7)).collect()
//! }
//! fn program(_ssc: &StreamingContext, words: DStream<String>, out: &Outputs) -> Result<(), Error> {
//!     let counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);
//!     out.write_each_batch(&counts, "counts")
//! }
//!
//! let s = |secs: u64| Time::from_millis(secs * 1000);
//! let reference = Simulation::builder().workers(3).batches(6).build()?.run(words, program)?;
//! let plan = FaultPlan::new(3).kill(1, s(2))?.restart(1, s(4))?.crash_driver(s(5));
//! let faulty = Simulation::builder().workers(3).batches(6).seed(7).plan(plan).build()?.run(words, program)?;
//! let checked = faulty.check_against(&reference)?;
//! assert_eq!(checked.outputs, 6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dstream::{
    CostModel, DStream, Data, Error, Fault, ManualClock, Resumed, Step, StepCluster, StreamingContext, Time,
};
use dstream_storage::Memory;

mod outputs;
mod plan;
pub mod suite;

pub use outputs::{check, Checked, Execution, Mismatch, Outputs};
pub use plan::{FaultPlan, PlanError, Planned, StorageFault};

/// Builds a [`Simulation`].
#[derive(Clone, Debug)]
pub struct SimulationBuilder {
    workers: u32,
    seed: u64,
    batches: u64,
    batch_interval: Duration,
    partitions: usize,
    cost: CostModel,
    plan: Option<FaultPlan>,
    restart_delay: Duration,
    speculation: bool,
    worker_programs: bool,
}

impl SimulationBuilder {
    /// The number of workers (default 4).
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The seed of every choice the simulation makes (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How many batches the program runs (default 12).
    pub fn batches(mut self, n: u64) -> Self {
        self.batches = n;
        self
    }

    /// The batch interval (default 1 s).
    pub fn batch_interval(mut self, interval: Duration) -> Self {
        self.batch_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The partitions of each batch of the input (default 4).
    pub fn partitions(mut self, n: usize) -> Self {
        self.partitions = n.max(1);
        self
    }

    /// How long tasks take (default: 2 ms per task and 20 µs per KiB of input).
    pub fn cost(mut self, cost: CostModel) -> Self {
        self.cost = cost;
        self
    }

    /// What goes wrong (default: nothing, on instant links).
    pub fn plan(mut self, plan: FaultPlan) -> Self {
        self.plan = Some(plan);
        self
    }

    /// How long a crashed driver stays down before its restart (default 1 s).
    pub fn restart_delay(mut self, delay: Duration) -> Self {
        self.restart_delay = delay;
        self
    }

    /// Whether straggling tasks get copies (default on, as on a real cluster).
    pub fn speculation(mut self, on: bool) -> Self {
        self.speculation = on;
        self
    }

    /// Whether every worker builds the program itself, as a worker process does, and rebuilds
    /// each batch's datasets from its own streams and what the driver tells it (default off:
    /// the workers share the driver's graph, as in one process). On, the simulation checks
    /// what a cluster of processes relies on: that every dataset a task names can be rebuilt
    /// on any worker, at any time, after any fault.
    pub fn worker_programs(mut self, on: bool) -> Self {
        self.worker_programs = on;
        self
    }

    /// The simulation, after checking that the plan is for this many workers.
    pub fn build(self) -> Result<Simulation, PlanError> {
        let plan = self.plan.clone().unwrap_or_else(|| FaultPlan::new(self.workers));
        if plan.workers() != self.workers {
            return Err(PlanError::WorkerCount { plan: plan.workers(), simulation: self.workers });
        }
        Ok(Simulation { config: self, plan })
    }
}

/// A program the simulation runs: it builds its streams from the input stream and writes its
/// outputs to [`Outputs`]. It is built again at every driver restart, and by every worker
/// with [`SimulationBuilder::worker_programs`], so it must build the same streams every time;
/// a function, or a closure that owns what it captures.
pub trait Program<T>:
    Fn(&StreamingContext, DStream<T>, &Outputs) -> Result<(), Error> + Clone + Send + 'static
{
}

impl<T, F> Program<T> for F where
    F: Fn(&StreamingContext, DStream<T>, &Outputs) -> Result<(), Error> + Clone + Send + 'static
{
}

/// A streaming program run in virtual time under a fault plan (see the [module](self)).
#[derive(Clone, Debug)]
pub struct Simulation {
    config: SimulationBuilder,
    plan: FaultPlan,
}

/// One event of a simulation's trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A step of the cluster of driver run `run`.
    Cluster {
        /// The driver run.
        run: u32,
        /// The step.
        step: Step,
    },
    /// A driver run started at `at`, resuming as `resumed` says (`None`: a fresh start).
    DriverStarted {
        /// When.
        at: Time,
        /// Where it resumed.
        resumed: Option<Resumed>,
    },
    /// A batch completed.
    Batch {
        /// Its time.
        time: Time,
        /// When its processing ended, in virtual time.
        ended: Time,
    },
    /// The checkpoint storage got a fault.
    Storage(StorageFault),
}

/// What one batch cost, in virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchDelay {
    /// The batch time.
    pub time: Time,
    /// The driver run that completed it.
    pub driver_run: u32,
    /// From the batch time to the end of its processing.
    pub total: Duration,
    /// From the start to the end of its processing.
    pub processing: Duration,
}

/// What a simulation did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The plan it ran.
    pub plan: FaultPlan,
    /// Every execution of every output.
    pub outputs: BTreeMap<(String, Time), Vec<Execution>>,
    /// Each completed batch's delays, in the order they completed.
    pub batches: Vec<BatchDelay>,
    /// How many times the driver restarted.
    pub driver_restarts: u32,
    /// Every event, in order.
    pub trace: Vec<Event>,
}

impl Report {
    /// Checks the outputs against a fault-free run's (see [`check`]).
    pub fn check_against(&self, reference: &Report) -> Result<Checked, SimError> {
        check(&self.outputs, &reference.outputs).map_err(|mismatch| SimError {
            seed: self.seed,
            plan: self.plan.to_string(),
            cause: Cause::Mismatch(mismatch),
        })
    }

    /// How many cluster steps of each kind the trace has (deliveries, task runs, drops, ...).
    pub fn step_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for e in &self.trace {
            let kind = match e {
                Event::Cluster { step, .. } => match step {
                    Step::Deliver { .. } => "delivered",
                    Step::Run { .. } => "task runs",
                    Step::Done { .. } => "task completions",
                    Step::Retransmitted { .. } => "retransmitted",
                    Step::Timer { .. } => "timers",
                    Step::Dropped { .. } => "dropped",
                    Step::Speculated { .. } => "speculated",
                    Step::Lost { .. } => "workers lost",
                    Step::Fault(_) => "faults applied",
                },
                Event::DriverStarted { .. } => "driver starts",
                Event::Batch { .. } => "batches",
                Event::Storage(_) => "storage faults",
            };
            *counts.entry(kind).or_insert(0) += 1;
        }
        counts
    }
}

/// Why a simulation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A batch (or the restart of the program) failed with an error.
    Failed {
        /// The batch, if a batch failed.
        batch: Option<Time>,
        /// The error.
        error: String,
    },
    /// The outputs differ from the reference's.
    Mismatch(Mismatch),
    /// The same seed gave two different traces.
    Nondeterministic {
        /// The index of the first event that differs.
        at: usize,
    },
}

/// A failed simulation, with the seed and plan that replay it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("simulation seed {seed} failed: {cause} (plan: {plan})")]
pub struct SimError {
    /// The seed: running it again replays the same trace.
    pub seed: u64,
    /// The plan, as text.
    pub plan: String,
    /// What went wrong.
    pub cause: Cause,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Failed { batch: Some(t), error } => write!(f, "batch {t} failed: {error}"),
            Cause::Failed { batch: None, error } => write!(f, "{error}"),
            Cause::Mismatch(m) => write!(f, "{m}"),
            Cause::Nondeterministic { at } => write!(f, "two runs of the seed differ from event {at} on"),
        }
    }
}

/// The state of one run across driver restarts.
struct RunState<'a> {
    sim: &'a Simulation,
    storage: Memory,
    outputs: Outputs,
    trace: Vec<Event>,
    batches: Vec<BatchDelay>,
    /// Storage faults not yet applied, in time order.
    storage_faults: Vec<(Time, StorageFault)>,
}

/// How one driver run ended.
enum Ended {
    /// Every batch ran.
    Done,
    /// The driver crashed at this time.
    Crashed(Time),
}

impl Simulation {
    /// A builder with the defaults: 4 workers, seed 0, 12 batches of 1 s, no faults.
    pub fn builder() -> SimulationBuilder {
        SimulationBuilder {
            workers: 4,
            seed: 0,
            batches: 12,
            batch_interval: Duration::from_secs(1),
            partitions: 4,
            cost: CostModel { per_task: Duration::from_millis(2), per_input_kib: Duration::from_micros(20) },
            plan: None,
            restart_delay: Duration::from_secs(1),
            speculation: true,
            worker_programs: false,
        }
    }

    /// Runs `program` over the batches `input` gives, under the plan. The program builds its
    /// streams from the input stream and writes its outputs to [`Outputs`]; it is built again
    /// at every driver restart, and must build the same streams every time. Fails with the
    /// seed and the plan if a batch fails or the program cannot restart.
    pub fn run<T: Data>(&self, input: impl Fn(Time) -> Vec<T>, program: impl Program<T>) -> Result<Report, SimError> {
        let storage_faults = self
            .plan
            .faults()
            .iter()
            .filter_map(|(t, f)| match f {
                Planned::Storage(s) => Some((*t, *s)),
                Planned::Cluster(_) => None,
            })
            .collect();
        let mut state = RunState {
            sim: self,
            storage: Memory::new(),
            outputs: Outputs::default(),
            trace: Vec::new(),
            batches: Vec::new(),
            storage_faults,
        };
        let mut start = Time::ZERO;
        let mut driver_run = 0;
        loop {
            match state.driver_run(driver_run, start, &input, &program) {
                Ok(Ended::Done) => break,
                Ok(Ended::Crashed(at)) => {
                    driver_run += 1;
                    start = at + self.config.restart_delay;
                }
                Err(cause) => return Err(self.error(cause)),
            }
        }
        Ok(Report {
            seed: self.config.seed,
            plan: self.plan.clone(),
            outputs: state.outputs.executions(),
            batches: state.batches,
            driver_restarts: driver_run,
            trace: state.trace,
        })
    }

    /// Runs the seed twice and checks that both runs took the same steps and wrote the same
    /// outputs; returns the first run's report.
    pub fn run_twice<T: Data>(
        &self,
        input: impl Fn(Time) -> Vec<T>,
        program: impl Program<T>,
    ) -> Result<Report, SimError> {
        let first = self.run(&input, program.clone())?;
        let second = self.run(&input, program)?;
        let differs = first.trace.iter().zip(&second.trace).position(|(a, b)| a != b);
        let at = differs
            .or_else(|| (first.trace.len() != second.trace.len()).then(|| first.trace.len().min(second.trace.len())));
        if let Some(at) = at {
            return Err(self.error(Cause::Nondeterministic { at }));
        }
        if first.outputs != second.outputs {
            return Err(self.error(Cause::Nondeterministic { at: first.trace.len() }));
        }
        Ok(first)
    }

    fn error(&self, cause: Cause) -> SimError {
        SimError { seed: self.config.seed, plan: self.plan.to_string(), cause }
    }

    /// The cluster of driver run `driver_run` from `start`; with worker programs, every
    /// worker builds `program` on a context of its own over the same checkpoint storage.
    fn cluster<T: Data>(
        &self,
        driver_run: u32,
        start: Time,
        storage: &Memory,
        program: &impl Program<T>,
    ) -> Result<StepCluster, Cause> {
        let config = &self.config;
        let seed = config.seed.wrapping_add(u64::from(driver_run).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let builder = StepCluster::builder()
            .workers(config.workers)
            .seed(seed)
            .cost(config.cost)
            .link(self.plan.link())
            .speculation(config.speculation)
            .start_at(start);
        let cluster = if config.worker_programs {
            let (storage, program) = (storage.clone(), program.clone());
            let (interval, partitions) = (config.batch_interval, config.partitions);
            builder
                .build_with_worker_processes(move |ctx| {
                    let clock = Arc::new(ManualClock::new(start));
                    let checkpointing = dstream_storage::checkpointing(storage.clone());
                    let built = StreamingContext::get_or_create(ctx.clone(), interval, clock, checkpointing, |ssc| {
                        let (queue, stream) = ssc.queue_stream::<T>(partitions);
                        // A worker runs no outputs: its sink is never written.
                        program(ssc, stream, &Outputs::default())?;
                        Ok(queue)
                    })?;
                    Ok(Box::new(built) as Box<dyn Any + Send>)
                })
                .map_err(failed(None))?
        } else {
            builder.build()
        };
        for (at, fault) in self.plan.faults() {
            if let (true, Planned::Cluster(fault)) = (*at >= start, fault) {
                cluster.plan(*at, *fault).map_err(failed(None))?;
            }
        }
        Ok(cluster)
    }
}

fn failed(batch: Option<Time>) -> impl Fn(Error) -> Cause {
    move |e| Cause::Failed { batch, error: e.to_string() }
}

impl RunState<'_> {
    /// One driver process: builds (or restores) the program on a new cluster from `start`
    /// and runs batches until the last or a crash.
    fn driver_run<T: Data>(
        &mut self,
        run: u32,
        start: Time,
        input: &impl Fn(Time) -> Vec<T>,
        program: &impl Program<T>,
    ) -> Result<Ended, Cause> {
        let config = &self.sim.config;
        let cluster = self.sim.cluster(run, start, &self.storage, program)?;
        self.outputs.set_driver_run(run);
        let checkpointing = dstream_storage::checkpointing(self.storage.clone());
        let clock = cluster.clock();
        let outputs = self.outputs.clone();
        let restored =
            StreamingContext::get_or_create(cluster.context(), config.batch_interval, clock, checkpointing, |ssc| {
                let (queue, stream) = ssc.queue_stream::<T>(config.partitions);
                program(ssc, stream, &outputs)?;
                Ok(queue)
            });
        let (ssc, queue) = match restored {
            Ok(v) => v,
            Err(_) if cluster.driver_crashed().is_some() => return Ok(self.crashed(run, &cluster)),
            Err(e) => return Err(failed(None)(e)),
        };
        let resumed = ssc.resumed();
        self.trace.push(Event::DriverStarted { at: start, resumed });
        let interval = config.batch_interval;
        let interval_ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        let (zero, first, logged_until) = match resumed {
            Some(r) => (r.zero, r.next_batch, r.logged_until),
            // A fresh context fixes its zero time when its first batch runs: the batch time
            // before the clock's reading.
            None => {
                let zero = Time::from_nanos(start.as_nanos() - start.as_nanos() % interval_ns);
                (zero, zero + interval, zero)
            }
        };
        let last = zero + interval * u32::try_from(config.batches).unwrap_or(u32::MAX);
        let mut time = first;
        while time <= last {
            self.apply_storage_faults(time);
            if time > logged_until && !queue.push(input(time)) {
                return Err(Cause::Failed { batch: Some(time), error: "the context stopped accepting input".into() });
            }
            // The batch runs when its time comes, or at once if the cluster is behind; the
            // first batch of a fresh context a moment before, so that the zero time it fixes
            // is the one before it.
            let due = if resumed.is_none() && time == first { time - Duration::from_nanos(1) } else { time };
            let now = cluster.now();
            if due > now {
                cluster.advance(due - now).map_err(failed(Some(time)))?;
            }
            if cluster.driver_crashed().is_some() {
                return Ok(self.crashed(run, &cluster));
            }
            match ssc.step() {
                Ok(info) if info.time != time => {
                    return Err(Cause::Failed {
                        batch: Some(time),
                        error: format!(
                            "the context ran the batch of {} when the simulation expected {time}",
                            info.time
                        ),
                    });
                }
                Ok(info) => {
                    let ended = cluster.now();
                    self.batches.push(BatchDelay {
                        time,
                        driver_run: run,
                        total: ended - time,
                        processing: info.processing_delay,
                    });
                    self.trace.push(Event::Batch { time, ended });
                }
                Err(_) if cluster.driver_crashed().is_some() => return Ok(self.crashed(run, &cluster)),
                Err(e) => {
                    self.take_trace(run, &cluster);
                    return Err(failed(Some(time))(e));
                }
            }
            time = time + interval;
        }
        self.take_trace(run, &cluster);
        Ok(Ended::Done)
    }

    fn crashed(&mut self, run: u32, cluster: &StepCluster) -> Ended {
        self.take_trace(run, cluster);
        // The caller checked that it crashed.
        Ended::Crashed(cluster.driver_crashed().unwrap_or(cluster.now()))
    }

    fn take_trace(&mut self, run: u32, cluster: &StepCluster) {
        self.trace.extend(cluster.trace().into_iter().map(|step| Event::Cluster { run, step }));
    }

    /// Injects the storage faults planned up to `until` into the checkpoint storage.
    fn apply_storage_faults(&mut self, until: Time) {
        while self.storage_faults.first().is_some_and(|(t, _)| *t <= until) {
            let (_, fault) = self.storage_faults.remove(0);
            let name_prefix = "state/".to_string();
            self.storage.inject(match fault {
                StorageFault::FailWrite => {
                    dstream_storage::Fault::FailPut { name_prefix, kind: std::io::ErrorKind::StorageFull }
                }
                StorageFault::TearWrite => dstream_storage::Fault::TornPut { name_prefix, keep_bytes: 64 },
                StorageFault::FlipRead => dstream_storage::Fault::FlipOnRead { name_prefix, offset: 40, mask: 0x10 },
            });
            self.trace.push(Event::Storage(fault));
        }
    }
}

impl From<Fault> for Planned {
    fn from(fault: Fault) -> Planned {
        Planned::Cluster(fault)
    }
}
