//! [`Cluster`]: one program, one binary, a driver process and worker processes over TCP.
//!
//! Every process runs the same `main`, which calls [`ClusterBuilder::launch`] with the
//! function that builds the program. The role comes from the environment
//! ([`ROLE_ENV`] and the variables next to it), or else from the builder:
//!
//! - **driver** ([`ClusterBuilder::local`] or [`ClusterBuilder::listen`], or
//!   `DSTREAM_ROLE=driver` with `DSTREAM_DRIVER_ADDR` to listen on and `DSTREAM_WORKERS`):
//!   builds the program on a driver `Context`, listens, (for `local`, starts the worker
//!   processes,) waits for every worker to join and register, and returns the [`Cluster`] and
//!   what the program function returned;
//! - **worker** (`DSTREAM_ROLE=worker`, `DSTREAM_DRIVER_ADDR`, `DSTREAM_WORKER_INDEX`): builds
//!   the program on [`Context::for_worker`], connects, serves tasks until the driver goes
//!   away, and exits the process (status 0; 2 if it could not join, 3 if the driver refused
//!   it, with the reason on stderr). `launch` never returns in this role. A worker started
//!   again after the launch (with a higher [`INCARNATION_ENV`], or none) rejoins the running
//!   cluster: see [`Cluster::restart_worker`].
//!
//! The secret comes from `DSTREAM_SECRET` or `DSTREAM_SECRET_FILE` ([`Secret::from_env`]), in
//! every role but the driver of [`ClusterBuilder::local`], which makes a fresh random one and
//! passes it to its workers through their environment, never their arguments.
//!
//! ```no_run
//! use dstream_tcp::Cluster;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // In a worker process this call serves, then exits.
//!     let (cluster, counts) = Cluster::builder().local(3).launch(|ctx| {
//!         let words = ctx.parallelize(vec!["a".to_string(), "b".into(), "a".into()], 3)?;
//!         Ok(words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b))
//!     })?;
//!     let mut counts = counts.collect()?;
//!     counts.sort();
//!     assert_eq!(counts, [("a".to_string(), 2), ("b".to_string(), 1)]);
//!     drop(cluster); // The workers see the driver go and exit.
//!     Ok(())
//! }
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use dstream::{Context, DriverConfig, Graph, LossReason, NodeId, SystemClock, Worker, WorkerConfig, WorkerId};

use crate::handshake::{HandshakeConfig, HandshakeError};
use crate::listener::{Listener, ListenerConfig};
use crate::runtime::driver::{Bringup, DriverLoop, DriverRunner, Observed};
use crate::runtime::worker::{serve, WorkerExit};
use crate::runtime::{self, incarnation, join, pump, spawn, tokio_runtime, Input, INBOX_INPUTS_MAX};
use crate::secret::{Secret, SecretError, SECRET_ENV, SECRET_FILE_ENV};
use crate::transport::{TcpTransport, TransportConfig};

mod children;
mod role;
mod start;

/// How often a waiting driver checks whether a local worker process has exited.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// How long a stopping cluster lets its local worker processes exit by themselves before it
/// kills them.
const CHILD_EXIT_WAIT_MAX: Duration = Duration::from_secs(5);

use children::{random_secret, Children};
pub use role::*;
use start::{Plan, Startup, Up};

/// What the builder's own role is, when the environment names none.
#[derive(Clone, Debug)]
enum Mode {
    /// A driver starting `n` worker processes of this executable.
    Local(u32),
    /// A driver waiting for workers started elsewhere.
    Listen { addr: SocketAddr, workers: u32 },
}

/// Builds a [`Cluster`]: the role (unless the environment names one), the workers' task
/// pool and slots, the driver's settings and the launch's bound.
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    mode: Option<Mode>,
    worker_args: Vec<OsString>,
    threads: usize,
    worker: WorkerConfig,
    driver: DriverConfig,
    input_replicas: Option<u32>,
    workers_wait_max: Duration,
    transport: TransportConfig,
}

impl ClusterBuilder {
    /// A driver that starts `workers` worker processes of the current executable on this
    /// machine (with [`ClusterBuilder::worker_args`] as their arguments) and talks to them over
    /// loopback.
    pub fn local(mut self, workers: u32) -> Self {
        self.mode = Some(Mode::Local(workers.max(1)));
        self
    }

    /// A driver that listens on `addr` and waits for `workers` workers started elsewhere
    /// (each with `DSTREAM_ROLE=worker`, the driver's address, its index and the secret).
    pub fn listen(mut self, addr: SocketAddr, workers: u32) -> Self {
        self.mode = Some(Mode::Listen { addr, workers: workers.max(1) });
        self
    }

    /// The arguments of the worker processes [`ClusterBuilder::local`] starts (default none).
    /// A test re-running its own executable passes `["--exact", "<test name>"]`.
    pub fn worker_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.worker_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Threads of each worker process's task pool (default: the number of cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Tasks each worker runs at once (default: the number of cores).
    pub fn slots(mut self, slots: u32) -> Self {
        self.worker.slots = slots.max(1);
        self
    }

    /// Each worker's block store limit in estimated bytes (default 1 GiB), as
    /// `LocalClusterBuilder::block_store_bytes_max` sets it in process.
    pub fn block_store_bytes_max(mut self, bytes: u64) -> Self {
        self.worker.block_store_bytes_max = bytes;
        self
    }

    /// On how many distinct workers each input block is stored (default 2, or 1 with one
    /// worker).
    pub fn input_replicas(mut self, replicas: u32) -> Self {
        self.input_replicas = Some(replicas.max(1));
        self
    }

    /// Attempts a task gets before its job fails (default 4).
    pub fn task_attempts_max(mut self, attempts: u32) -> Self {
        self.driver.task_attempts_max = attempts.max(1);
        self
    }

    /// How often workers heartbeat (default 100 ms).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.worker.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a silent worker stays alive for the driver (default 1 s).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.driver.heartbeat_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Whether straggling tasks get a copy on another worker (default on).
    pub fn speculation(mut self, on: bool) -> Self {
        self.driver.speculation = on;
        self
    }

    /// How long the launch waits for every worker to join and register, and a worker for the
    /// driver and its peers (default 60 s).
    pub fn workers_wait_max(mut self, wait: Duration) -> Self {
        self.workers_wait_max = wait;
        self
    }

    /// The transport's bounds and periods (default [`TransportConfig::default`]).
    pub fn transport(mut self, config: TransportConfig) -> Self {
        self.transport = config;
        self
    }

    /// Runs `program` in this process's role. In the driver role: builds the program on the
    /// driver's `Context`, starts or awaits the workers and returns the cluster with what
    /// `program` returned. In the worker role: builds the program on
    /// [`Context::for_worker`], serves until the driver goes away and exits the process; it
    /// never returns. `program` must build the same datasets, streams and outputs in every
    /// process (a worker that built another program is refused); it must not run jobs of its
    /// own (a worker's build cannot). What the engine runs while the driver builds it, as
    /// [`StreamingContext::get_or_create`](dstream::StreamingContext::get_or_create) resuming
    /// from checkpoints reads them on the workers, brings the cluster up first; otherwise it
    /// comes up once the program is built.
    pub fn launch<T>(
        self,
        program: impl FnOnce(&Context) -> Result<T, dstream::Error>,
    ) -> Result<(Cluster, T), LaunchError> {
        let (role, local) = match Role::from_env()? {
            Some(role) => (role, None),
            None => match self.mode {
                Some(Mode::Local(n)) => {
                    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
                    (Role::Driver { listen, workers: n }, Some(n))
                }
                Some(Mode::Listen { addr, workers }) => (Role::Driver { listen: addr, workers }, None),
                None => return Err(LaunchError::NoRole),
            },
        };
        match role {
            Role::Worker { driver, index, incarnation } => {
                let code = match self.work(driver, index, incarnation, program) {
                    Ok(WorkerExit::DriverGone) => 0,
                    Ok(WorkerExit::Refused(reason)) => {
                        eprintln!("dstream worker {index}: the driver refused it: {reason}");
                        3
                    }
                    Err(e) => {
                        eprintln!("dstream worker {index}: {e}");
                        2
                    }
                };
                std::process::exit(code)
            }
            Role::Driver { listen, workers } => self.drive(listen, workers, local.is_some(), program),
        }
    }

    /// The worker role, until it stops serving.
    fn work<T>(
        self,
        driver: SocketAddr,
        index: u32,
        incarnation: Option<u64>,
        program: impl FnOnce(&Context) -> Result<T, dstream::Error>,
    ) -> Result<WorkerExit, LaunchError> {
        let secret = Secret::from_env()?;
        let ctx = Context::for_worker();
        // Keeps what the program returned alive while serving.
        let _program = program(&ctx)?;
        let graph = Arc::clone(ctx.graph());
        let id = WorkerId(index);
        let node = NodeId::Worker(id);
        let incarnation = incarnation.unwrap_or_else(runtime::incarnation);
        let mut handshake = HandshakeConfig::new(node, incarnation, graph.fingerprint(), secret);
        handshake.wire = self.transport.wire;
        let runtime = tokio_runtime().map_err(|source| LaunchError::Io { what: "starting tokio".into(), source })?;
        let (transport, events) = TcpTransport::new(node, runtime.handle().clone(), self.transport);
        let transport = Arc::new(transport);
        let wait = self.workers_wait_max;
        let driver_conn = runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + wait;
            join::join(driver, &handshake, deadline, &transport).await
        })?;
        let (tx, rx) = bounded(INBOX_INPUTS_MAX);
        pump(events, tx.clone())?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .thread_name(|i| format!("dstream-task-{i}"))
            .build()
            .map_err(|e| dstream::Error::ThreadStart { name: "dstream-task-*".into(), reason: e.to_string() })?;
        let mut config = self.worker;
        config.encode_payloads = true;
        config.shares_driver_graph = false;
        config.incarnation = incarnation;
        let worker = Worker::new(id, config, graph);
        transport.add(driver_conn);
        let exit = serve(worker, rx, tx, transport, Arc::new(pool), SystemClock::new());
        runtime.shutdown_background();
        Ok(exit)
    }

    /// The driver role: builds the program, then brings the cluster up (earlier if the program
    /// runs jobs while it is built: see `start.rs`), up to the registration of every worker.
    fn drive<T>(
        self,
        listen: SocketAddr,
        workers: u32,
        local: bool,
        program: impl FnOnce(&Context) -> Result<T, dstream::Error>,
    ) -> Result<(Cluster, T), LaunchError> {
        let (secret, secret_text) = if local {
            let text = random_secret()?;
            (Secret::from_bytes(text.clone())?, Some(text))
        } else {
            (Secret::from_env()?, None)
        };
        let graph = Graph::new();
        let (inbox, inbox_rx) = bounded(INBOX_INPUTS_MAX);
        let plan = Plan {
            builder: self,
            listen,
            workers,
            secret,
            secret_text,
            graph: Arc::clone(&graph),
            inbox: inbox.clone(),
            inbox_rx,
        };
        let startup = Arc::new(Startup::new(plan));
        let bringup: Arc<dyn Bringup> = Arc::clone(&startup) as Arc<dyn Bringup>;
        let ctx = Context::new(graph, Arc::new(DriverRunner { inbox: inbox.clone(), bringup }));
        let value = match program(&ctx) {
            Ok(value) => value,
            Err(e) => {
                // A cluster brought up for the program's jobs stops with it.
                if let Some(up) = startup.take_up() {
                    up.stop(&inbox);
                }
                // The cluster's failure to come up is the cause of the program's.
                return Err(startup.take_error().unwrap_or(LaunchError::Program(e)));
            }
        };
        let Up { driver, observed, children, addr, runtime } = startup.take()?;
        let cluster = Cluster {
            context: ctx,
            inbox,
            driver: Some(driver),
            observed,
            children: Mutex::new(children),
            workers,
            addr,
            runtime: Some(runtime),
        };
        Ok((cluster, value))
    }
}

/// A driver process with its workers. Its [`Cluster::context`] runs jobs on them (and a
/// `StreamingContext` built on it runs its batches there).
///
/// Dropping the cluster stops the driver: the workers see its connection close and exit (a
/// local cluster's processes are waited for, and killed if they linger). Jobs still running
/// then fail with `Error::ClusterStopped`. Drop it outside any tokio runtime.
pub struct Cluster {
    context: Context,
    inbox: Sender<Input>,
    driver: Option<JoinHandle<()>>,
    observed: Arc<Observed>,
    children: Mutex<Children>,
    workers: u32,
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("addr", &self.addr).field("workers", &self.workers).finish()
    }
}

impl Cluster {
    /// A builder with the defaults: as many task threads and slots as cores, 60 s to launch.
    pub fn builder() -> ClusterBuilder {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut worker = WorkerConfig::new();
        worker.slots = cores as u32;
        ClusterBuilder {
            mode: None,
            worker_args: Vec::new(),
            threads: cores,
            worker,
            driver: DriverConfig::new(),
            input_replicas: None,
            workers_wait_max: Duration::from_secs(60),
            transport: TransportConfig::default(),
        }
    }

    /// The context to create datasets in (the one the program was built on).
    pub fn context(&self) -> Context {
        self.context.clone()
    }

    /// How many workers the cluster was launched with.
    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// The address the driver listened on for the workers' joins.
    pub fn driver_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The workers the driver has reported lost, each with the reason of its last loss.
    pub fn lost_workers(&self) -> Vec<(WorkerId, LossReason)> {
        self.observed.lock().lost.iter().map(|(w, r)| (*w, *r)).collect()
    }

    /// Waits until the driver has reported `worker` lost (and it has not registered again
    /// since: after a restart this waits for the new process's loss), for `wait_max` at most;
    /// returns whether it has.
    pub fn wait_lost(&self, worker: WorkerId, wait_max: Duration) -> bool {
        self.observed.wait_until(
            wait_max,
            wait_max,
            || {},
            |m| m.lost.contains_key(&worker) && !m.alive.contains(&worker),
        )
    }

    /// Kills local worker process `index` with SIGKILL (`Child::kill`), as a machine failure
    /// would, and reaps it. The driver learns of it as of any lost peer. For tests.
    pub fn kill_worker(&self, index: u32) -> Result<(), LaunchError> {
        let child = {
            let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            children.processes.get_mut(index as usize).and_then(Option::take)
        };
        let mut child = child.ok_or(LaunchError::UnknownWorker { index })?;
        child.kill().map_err(|source| LaunchError::Io { what: format!("killing worker process {index}"), source })?;
        child.wait().map_err(|source| LaunchError::Io { what: format!("reaping worker process {index}"), source })?;
        Ok(())
    }

    /// Starts local worker process `index` again, as a supervisor would restart a process
    /// that died: a new process of the current executable, with the launch's arguments and
    /// an incarnation ([`INCARNATION_ENV`]) higher than the last one's. It joins the running
    /// cluster (the driver gives it the other workers' addresses and it connects to each),
    /// then registers; [`Cluster::wait_registered`] waits for that. Fails with
    /// [`LaunchError::WorkerRunning`] while the last process of `index` runs (kill it first),
    /// and with [`LaunchError::NotLocal`] unless the cluster was built with
    /// [`ClusterBuilder::local`].
    ///
    /// Elsewhere, a supervisor restarts a worker the same way: it runs the program again with
    /// `DSTREAM_ROLE=worker`, [`DRIVER_ADDR_ENV`], [`WORKER_INDEX_ENV`] (the lost worker's
    /// index) and the secret (`DSTREAM_SECRET` or `DSTREAM_SECRET_FILE`), and either no
    /// [`INCARNATION_ENV`] (a time-derived incarnation) or a higher one than the last run's.
    pub fn restart_worker(&self, index: u32) -> Result<(), LaunchError> {
        self.children.lock().unwrap_or_else(|p| p.into_inner()).restart(index)
    }

    /// Waits until `worker` is registered and not reported lost since, for `wait_max` at
    /// most; returns whether it is. After [`Cluster::wait_lost`] and
    /// [`Cluster::restart_worker`], this waits for the new process's registration. In a local
    /// cluster it gives up early once that worker's process has exited (it could not join,
    /// say: its reason is on its stderr).
    pub fn wait_registered(&self, worker: WorkerId, wait_max: Duration) -> bool {
        let exited = std::cell::Cell::new(false);
        let watch = || {
            let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            exited.set(children.exited(worker.0));
        };
        self.observed.wait_until(wait_max, WATCH_INTERVAL, watch, |m| m.alive.contains(&worker) || exited.get());
        self.observed.lock().alive.contains(&worker)
    }

    /// How many times `worker` has registered (each incarnation once).
    pub fn registrations(&self, worker: WorkerId) -> u32 {
        self.observed.lock().registrations.get(&worker).copied().unwrap_or(0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.inbox.send(Input::Stop);
        if let Some(thread) = self.driver.take() {
            if thread.join().is_err() {
                tracing::error!("the dstream driver thread panicked");
            }
        }
        self.children.get_mut().unwrap_or_else(|p| p.into_inner()).finish();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn role(vars: &[(&str, &str)]) -> Result<Option<Role>, LaunchError> {
        let vars: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Role::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn roles_come_from_the_environment() {
        assert_eq!(role(&[]).unwrap(), None);
        let driver = role(&[(ROLE_ENV, "driver"), (DRIVER_ADDR_ENV, "0.0.0.0:7077"), (WORKERS_ENV, "4")]);
        assert_eq!(driver.unwrap(), Some(Role::Driver { listen: "0.0.0.0:7077".parse().unwrap(), workers: 4 }));
        let worker = role(&[(ROLE_ENV, "worker"), (DRIVER_ADDR_ENV, "10.0.0.1:7077"), (WORKER_INDEX_ENV, "2")]);
        let driver = "10.0.0.1:7077".parse().unwrap();
        assert_eq!(worker.unwrap(), Some(Role::Worker { driver, index: 2, incarnation: None }));
        let restarted = role(&[
            (ROLE_ENV, "worker"),
            (DRIVER_ADDR_ENV, "10.0.0.1:7077"),
            (WORKER_INDEX_ENV, "2"),
            (INCARNATION_ENV, "8"),
        ]);
        assert_eq!(restarted.unwrap(), Some(Role::Worker { driver, index: 2, incarnation: Some(8) }));
    }

    #[test]
    fn a_bad_role_variable_is_a_typed_error_naming_it() {
        let missing = role(&[(ROLE_ENV, "worker"), (DRIVER_ADDR_ENV, "10.0.0.1:7077")]).unwrap_err();
        assert!(matches!(missing, LaunchError::Env { var: WORKER_INDEX_ENV, .. }), "{missing:?}");
        let bad = role(&[(ROLE_ENV, "driver"), (DRIVER_ADDR_ENV, "nowhere"), (WORKERS_ENV, "4")]).unwrap_err();
        assert!(matches!(bad, LaunchError::Env { var: DRIVER_ADDR_ENV, .. }), "{bad:?}");
        let incarnation = role(&[
            (ROLE_ENV, "worker"),
            (DRIVER_ADDR_ENV, "10.0.0.1:7077"),
            (WORKER_INDEX_ENV, "2"),
            (INCARNATION_ENV, "soon"),
        ]);
        assert!(matches!(incarnation, Err(LaunchError::Env { var: INCARNATION_ENV, .. })), "{incarnation:?}");
        let other = role(&[(ROLE_ENV, "observer")]).unwrap_err();
        assert!(matches!(other, LaunchError::Env { var: ROLE_ENV, .. }), "{other:?}");
    }

    #[test]
    fn a_builder_without_a_role_says_so() {
        if std::env::var_os(ROLE_ENV).is_some() {
            return; // A role in this process's environment would be taken instead.
        }
        let launched = Cluster::builder().launch(|_| Ok(()));
        assert!(matches!(launched, Err(LaunchError::NoRole)), "{launched:?}");
    }

    #[test]
    fn random_secrets_are_valid_and_fresh() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_ne!(a, b);
        assert!(Secret::from_bytes(a).is_ok());
    }
}
