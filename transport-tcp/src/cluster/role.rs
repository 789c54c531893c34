//! A process's role in the cluster, read from the environment, and the launch's errors.

#[allow(clippy::wildcard_imports)] // The cluster module's imports, split from it.
use super::*;

/// The variable naming a process's role: `driver` or `worker`.
pub const ROLE_ENV: &str = "DSTREAM_ROLE";
/// The driver's address: where a driver listens, and where a worker connects.
pub const DRIVER_ADDR_ENV: &str = "DSTREAM_DRIVER_ADDR";
/// A worker's index, `0..workers`.
pub const WORKER_INDEX_ENV: &str = "DSTREAM_WORKER_INDEX";
/// How many workers the cluster has.
pub const WORKERS_ENV: &str = "DSTREAM_WORKERS";
/// A worker process's incarnation (optional): a number higher than that of every earlier
/// process of the same worker index. Without it a worker takes the milliseconds since the
/// Unix epoch at its start, which a process restarted later exceeds as long as the
/// machines' clocks do not step back. Set it on every run of a worker or on none.
pub const INCARNATION_ENV: &str = "DSTREAM_INCARNATION";

/// Why a cluster could not be launched, or a call on it failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No role in the environment, and the builder names none ([`ClusterBuilder::local`] or
    /// [`ClusterBuilder::listen`]).
    #[error("no role: set {ROLE_ENV}=driver|worker, or build the cluster with local(n) or listen(addr, n)")]
    NoRole,
    /// A role variable is missing or malformed.
    #[error("bad environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Building the program failed, or a thread could not start.
    #[error(transparent)]
    Program(#[from] dstream::Error),
    /// A socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A handshake with the driver or a peer worker failed.
    #[error("handshake with {peer} failed: {source}")]
    Handshake {
        /// Who.
        peer: String,
        /// Why.
        source: HandshakeError,
    },
    /// The join (the exchange of addresses after the handshake) failed.
    #[error("join failed: {reason}")]
    Join {
        /// Why.
        reason: String,
    },
    /// Not every worker joined and registered within [`ClusterBuilder::workers_wait_max`].
    #[error(
        "{joined} of {expected} workers joined and {registered} registered within {waited:?}{}",
        last_rejection.as_ref().map(|r| format!(" (last rejected connection: {r})")).unwrap_or_default()
    )]
    WorkersTimeout {
        /// The workers expected.
        expected: u32,
        /// How many joined.
        joined: u32,
        /// How many registered.
        registered: u32,
        /// How long the driver waited.
        waited: Duration,
        /// The last connection the driver's listener rejected, if any.
        last_rejection: Option<String>,
    },
    /// A local worker process exited while the driver waited for it.
    #[error(
        "worker process {index} exited early: {status}{}",
        last_rejection.as_ref().map(|r| format!(" (last rejected connection: {r})")).unwrap_or_default()
    )]
    WorkerExited {
        /// The worker's index.
        index: u32,
        /// Its exit status.
        status: String,
        /// The last connection the driver's listener rejected, if any (a worker running
        /// another program is rejected in the handshake, then exits).
        last_rejection: Option<String>,
    },
    /// The driver refused a worker (it built another program).
    #[error("the driver refused {worker}: {reason}")]
    Refused {
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: String,
    },
    /// No local worker process has this index (or it was killed already).
    #[error("no local worker process {index}")]
    UnknownWorker {
        /// The index.
        index: u32,
    },
    /// The worker process to restart is still running.
    #[error("worker process {index} is still running")]
    WorkerRunning {
        /// The index.
        index: u32,
    },
    /// The cluster starts no worker processes itself (it was built with
    /// [`ClusterBuilder::listen`] or from the environment): a supervisor restarts them.
    #[error("the cluster has no local worker processes to restart")]
    NotLocal,
}

/// A process's role, as read from the environment ([`Role::from_env`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The driver: listens on `listen` and waits for `workers` workers.
    Driver {
        /// The address to listen on.
        listen: SocketAddr,
        /// How many workers to wait for.
        workers: u32,
    },
    /// A worker: connects to the driver at `driver`.
    Worker {
        /// The driver's address.
        driver: SocketAddr,
        /// This worker's index.
        index: u32,
        /// This process's incarnation, if [`INCARNATION_ENV`] names one.
        incarnation: Option<u64>,
    },
}

impl Role {
    /// The role named by the process's environment, `None` without [`ROLE_ENV`].
    pub fn from_env() -> Result<Option<Role>, LaunchError> {
        Role::from_lookup(|name| std::env::var_os(name))
    }

    /// The role named by variables looked up by `var` (the environment in
    /// [`Role::from_env`]).
    pub fn from_lookup(var: impl Fn(&str) -> Option<OsString>) -> Result<Option<Role>, LaunchError> {
        let get = |name: &'static str| -> Result<String, LaunchError> {
            var(name)
                .ok_or(LaunchError::Env { var: name, reason: "not set".into() })?
                .into_string()
                .map_err(|_| LaunchError::Env { var: name, reason: "not UTF-8".into() })
        };
        fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, LaunchError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| LaunchError::Env { var: name, reason: format!("{value:?}: {e}") })
        }
        if var(ROLE_ENV).is_none() {
            return Ok(None);
        }
        match get(ROLE_ENV)?.as_str() {
            "driver" => Ok(Some(Role::Driver {
                listen: parse(DRIVER_ADDR_ENV, &get(DRIVER_ADDR_ENV)?)?,
                workers: parse(WORKERS_ENV, &get(WORKERS_ENV)?)?,
            })),
            "worker" => Ok(Some(Role::Worker {
                driver: parse(DRIVER_ADDR_ENV, &get(DRIVER_ADDR_ENV)?)?,
                index: parse(WORKER_INDEX_ENV, &get(WORKER_INDEX_ENV)?)?,
                incarnation: match var(INCARNATION_ENV) {
                    None => None,
                    Some(_) => Some(parse(INCARNATION_ENV, &get(INCARNATION_ENV)?)?),
                },
            })),
            other => Err(LaunchError::Env { var: ROLE_ENV, reason: format!("{other:?} is neither driver nor worker") }),
        }
    }
}
