//! Where an example's program runs: the `--cluster` flag, and the in-process or TCP cluster
//! it names.

use std::ffi::OsString;
use std::fmt::Display;
use std::net::SocketAddr;

use dstream::{Context, Error, WorkerId};
use dstream_inproc::LocalCluster;
use dstream_tcp::{Cluster as TcpCluster, LaunchError};

/// Where an example's program runs: the value of `--cluster`.
///
/// - `inproc` (the default): the in-process [`LocalCluster`], with `--workers` workers;
/// - `local:N`: a driver and `N` worker processes of the same executable, over TCP on
///   127.0.0.1 ([`dstream_tcp::ClusterBuilder::local`]);
/// - `listen:ADDR:N`: a driver listening on `ADDR` (`HOST:PORT`) for `N` workers started
///   elsewhere ([`dstream_tcp::ClusterBuilder::listen`]): each runs the same command line with
///   `DSTREAM_ROLE=worker`, `DSTREAM_DRIVER_ADDR=ADDR`, `DSTREAM_WORKER_INDEX=0..N` and the
///   secret in `DSTREAM_SECRET` (or `DSTREAM_SECRET_FILE`), as the driver has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterSpec {
    /// The in-process cluster.
    #[default]
    InProcess,
    /// A driver and this many worker processes on this machine, over TCP.
    Local(u32),
    /// A driver listening on `addr` for `workers` workers started elsewhere.
    Listen {
        /// The address the driver listens on.
        addr: SocketAddr,
        /// How many workers it waits for.
        workers: u32,
    },
}

/// Why a `--cluster` value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterSpecError {
    /// Neither `inproc`, `local:N` nor `listen:ADDR:N`.
    #[error("{0:?} is not a cluster: expected inproc, local:N or listen:HOST:PORT:N")]
    Unknown(String),
    /// The number of workers is not a whole number of at least 1.
    #[error("{value:?} is not a number of workers (a whole number of at least 1)")]
    Workers {
        /// The bad number.
        value: String,
    },
    /// The address of `listen:ADDR:N` is not `HOST:PORT` with an IP address.
    #[error("{value:?} is not an address to listen on (IP:PORT, e.g. 0.0.0.0:7077): {reason}")]
    Addr {
        /// The bad address.
        value: String,
        /// Why.
        reason: String,
    },
}

impl std::str::FromStr for ClusterSpec {
    type Err = ClusterSpecError;

    fn from_str(s: &str) -> Result<ClusterSpec, ClusterSpecError> {
        fn workers(value: &str) -> Result<u32, ClusterSpecError> {
            match value.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ClusterSpecError::Workers { value: value.to_string() }),
            }
        }
        if s == "inproc" {
            return Ok(ClusterSpec::InProcess);
        }
        if let Some(n) = s.strip_prefix("local:") {
            return Ok(ClusterSpec::Local(workers(n)?));
        }
        if let Some(rest) = s.strip_prefix("listen:") {
            // The number of workers follows the last colon (an IPv6 address has colons too).
            let (addr, n) = rest.rsplit_once(':').ok_or_else(|| ClusterSpecError::Unknown(s.to_string()))?;
            let workers = workers(n)?;
            let addr = addr.parse().map_err(|e: std::net::AddrParseError| ClusterSpecError::Addr {
                value: addr.into(),
                reason: e.to_string(),
            })?;
            return Ok(ClusterSpec::Listen { addr, workers });
        }
        Err(ClusterSpecError::Unknown(s.to_string()))
    }
}

impl Display for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterSpec::InProcess => f.write_str("inproc"),
            ClusterSpec::Local(n) => write!(f, "local:{n}"),
            ClusterSpec::Listen { addr, workers } => write!(f, "listen:{addr}:{workers}"),
        }
    }
}

/// Why an example's cluster could not be started, or a call on it failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The in-process cluster, or the program built on it, failed.
    #[error(transparent)]
    InProcess(#[from] Error),
    /// The TCP cluster failed to launch, or a call on it failed.
    #[error(transparent)]
    Tcp(#[from] LaunchError),
    /// The flags do not go together.
    #[error("{0}")]
    Flags(String),
}

/// The flags of the cluster, shared by the streaming examples (flattened into each
/// program's own flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Workers of the in-process cluster [default: one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// Where the program runs: inproc (the in-process cluster), local:N (a driver and N worker
    /// processes of this executable over TCP on 127.0.0.1), or listen:IP:PORT:N (a driver
    /// waiting for N workers started elsewhere with DSTREAM_ROLE=worker, DSTREAM_DRIVER_ADDR,
    /// DSTREAM_WORKER_INDEX and DSTREAM_SECRET)
    #[arg(long, value_name = "SPEC", default_value = "inproc")]
    pub cluster: ClusterSpec,
}

impl ClusterArgs {
    /// The number of workers the cluster will have: `N` of `--cluster local:N` or
    /// `listen:ADDR:N`, else `--workers`, or one per core as [`LocalCluster::builder`] does.
    pub fn worker_count(&self) -> u32 {
        match self.cluster {
            ClusterSpec::Local(n) | ClusterSpec::Listen { workers: n, .. } => n,
            ClusterSpec::InProcess => self.workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            }),
        }
    }

    /// Whether this process is a worker of a TCP cluster (`--cluster local:N` or
    /// `listen:ADDR:N`, and `DSTREAM_ROLE=worker`): it builds the program, serves and exits in
    /// [`ClusterArgs::launch`], and should print nothing of its own (the driver reports).
    pub fn is_worker_process(&self) -> bool {
        self.cluster != ClusterSpec::InProcess
            && std::env::var_os(dstream_tcp::cluster::ROLE_ENV).is_some_and(|role| role == "worker")
    }

    /// Where the program runs, for a banner: `in-process, N workers` or the TCP cluster.
    pub fn describe(&self) -> String {
        match self.cluster {
            ClusterSpec::InProcess => format!("in-process, {} workers", self.worker_count()),
            ClusterSpec::Local(n) => format!("{n} worker processes over TCP on 127.0.0.1 (--cluster local:{n})"),
            ClusterSpec::Listen { addr, workers } => {
                format!("{workers} workers over TCP, the driver listening on {addr}")
            }
        }
    }

    /// The in-process cluster with `--workers` workers.
    fn in_process(&self) -> Result<LocalCluster, Error> {
        let mut builder = LocalCluster::builder();
        if let Some(workers) = self.workers {
            builder = builder.workers(workers);
        }
        builder.build()
    }

    /// Builds `program` on the cluster `--cluster` names and returns the cluster with what
    /// `program` returned (its handles), in the driver.
    ///
    /// `inproc`: builds the in-process cluster (with `--workers` workers) and the program on
    /// its context. `local:N` and `listen:ADDR:N`: launches the TCP cluster
    /// ([`dstream_tcp::ClusterBuilder::launch`]); the worker processes of `local:N` are this
    /// executable with this process's own arguments, so they parse the same flags and build
    /// the same program. In a worker process this call builds the program, serves the driver
    /// and exits the process: it never returns.
    ///
    /// Every dataset and stream the job uses must be built by `program` (every process builds
    /// it), which must not run jobs; outputs (`foreach_rdd`) run in the driver only.
    pub fn launch<H>(
        &self,
        program: impl FnOnce(&Context) -> Result<H, Error>,
    ) -> Result<(ExampleCluster, H), ClusterError> {
        self.launch_with_worker_args(std::env::args_os().skip(1), program)
    }

    /// [`ClusterArgs::launch`], with `worker_args` as the arguments of the worker processes
    /// of `local:N` (a test re-running its own executable passes `--exact <its name>`).
    pub fn launch_with_worker_args<H, I, S>(
        &self,
        worker_args: I,
        program: impl FnOnce(&Context) -> Result<H, Error>,
    ) -> Result<(ExampleCluster, H), ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let builder = match self.cluster {
            ClusterSpec::InProcess => {
                let cluster = self.in_process()?;
                let handles = program(&cluster.context())?;
                return Ok((ExampleCluster::InProcess(cluster), handles));
            }
            _ if self.workers.is_some() => {
                return Err(ClusterError::Flags(format!(
                    "--workers is for the in-process cluster; --cluster {} names its number of workers",
                    self.cluster
                )))
            }
            ClusterSpec::Local(n) => TcpCluster::builder().local(n).worker_args(worker_args),
            ClusterSpec::Listen { addr, workers } => TcpCluster::builder().listen(addr, workers),
        };
        let (cluster, handles) = builder.launch(program)?;
        Ok((ExampleCluster::Tcp(Box::new(cluster)), handles))
    }
}

/// The cluster an example runs on ([`ClusterArgs::launch`]): in-process or over TCP.
#[derive(Debug)]
pub enum ExampleCluster {
    /// The in-process cluster (`--cluster inproc`).
    InProcess(LocalCluster),
    /// The TCP cluster's driver (`--cluster local:N` or `listen:ADDR:N`).
    Tcp(Box<TcpCluster>),
}

impl ExampleCluster {
    /// The context to create datasets in (the one the program was built on).
    pub fn context(&self) -> Context {
        match self {
            ExampleCluster::InProcess(cluster) => cluster.context(),
            ExampleCluster::Tcp(cluster) => cluster.context(),
        }
    }

    /// Kills worker `index` as a machine failure would: the in-process cluster's worker
    /// ([`LocalCluster::kill_worker`]), or the local worker process by SIGKILL
    /// ([`dstream_tcp::Cluster::kill_worker`]; a worker started elsewhere cannot be killed
    /// from here).
    pub fn kill_worker(&self, index: u32) -> Result<(), ClusterError> {
        match self {
            ExampleCluster::InProcess(cluster) => Ok(cluster.kill_worker(WorkerId(index))?),
            ExampleCluster::Tcp(cluster) => Ok(cluster.kill_worker(index)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_specs_parse_into_typed_values_with_clear_errors() {
        assert_eq!("inproc".parse(), Ok(ClusterSpec::InProcess));
        assert_eq!("local:3".parse(), Ok(ClusterSpec::Local(3)));
        let listen = ClusterSpec::Listen { addr: "0.0.0.0:7077".parse().unwrap(), workers: 4 };
        assert_eq!("listen:0.0.0.0:7077:4".parse(), Ok(listen));
        let v6 = ClusterSpec::Listen { addr: "[::1]:7077".parse().unwrap(), workers: 2 };
        assert_eq!("listen:[::1]:7077:2".parse(), Ok(v6));
        for spec in ["inproc", "local:3", "listen:0.0.0.0:7077:4", "listen:[::1]:7077:2"] {
            assert_eq!(spec.parse::<ClusterSpec>().unwrap().to_string(), spec);
        }
        assert_eq!("local:0".parse::<ClusterSpec>(), Err(ClusterSpecError::Workers { value: "0".into() }));
        assert_eq!("local:x".parse::<ClusterSpec>(), Err(ClusterSpecError::Workers { value: "x".into() }));
        assert_eq!("tcp".parse::<ClusterSpec>(), Err(ClusterSpecError::Unknown("tcp".into())));
        assert!(matches!("listen:nowhere:7077:2".parse::<ClusterSpec>(), Err(ClusterSpecError::Addr { .. })));
        assert!(matches!("listen:4".parse::<ClusterSpec>(), Err(ClusterSpecError::Unknown(_))));
        let message = "local:".parse::<ClusterSpec>().unwrap_err().to_string();
        assert!(message.contains("number of workers"), "{message}");
    }

    #[test]
    fn workers_go_with_the_in_process_cluster_only() {
        let args = ClusterArgs { workers: Some(2), cluster: ClusterSpec::Local(2) };
        let refused = args.launch_with_worker_args(Vec::<OsString>::new(), |_| Ok(()));
        assert!(matches!(refused, Err(ClusterError::Flags(_))), "{refused:?}");
        assert_eq!(args.worker_count(), 2);
        let inproc = ClusterArgs { workers: Some(2), cluster: ClusterSpec::InProcess };
        let (cluster, numbers) = inproc.launch(|ctx| ctx.parallelize(vec![1u64, 2, 3], 2)).unwrap();
        assert!(matches!(cluster, ExampleCluster::InProcess(_)));
        assert_eq!(numbers.count().unwrap(), 3);
    }
}
