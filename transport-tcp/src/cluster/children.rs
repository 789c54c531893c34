//! The worker processes a local cluster starts of its own executable.

#[allow(clippy::wildcard_imports)] // The cluster module's imports, split from it.
use super::*;
use wait_timeout::ChildExt;

/// A fresh random secret, as text (for the environment): 32 random bytes in hex.
pub(super) fn random_secret() -> Result<String, LaunchError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| LaunchError::Io {
        what: "drawing a random secret".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The worker processes a local cluster started, by index (`None` once killed), and how to
/// start one again.
#[derive(Default)]
pub(super) struct Children {
    pub(super) processes: Vec<Option<Child>>,
    /// The incarnation each index's last process was started with.
    pub(super) incarnations: Vec<u64>,
    /// `None` unless the cluster is local.
    pub(super) spawn: Option<SpawnSpec>,
}

/// What a local worker process is started with.
pub(super) struct SpawnSpec {
    pub(super) exe: std::path::PathBuf,
    pub(super) args: Vec<OsString>,
    pub(super) driver: SocketAddr,
    pub(super) workers: u32,
    pub(super) secret: String,
}

impl SpawnSpec {
    pub(super) fn spawn(&self, index: u32, incarnation: u64) -> Result<Child, LaunchError> {
        Command::new(&self.exe)
            .args(&self.args)
            .env(ROLE_ENV, "worker")
            .env(DRIVER_ADDR_ENV, self.driver.to_string())
            .env(WORKER_INDEX_ENV, index.to_string())
            .env(WORKERS_ENV, self.workers.to_string())
            .env(INCARNATION_ENV, incarnation.to_string())
            .env(SECRET_ENV, &self.secret)
            .env_remove(SECRET_FILE_ENV)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| LaunchError::Io { what: format!("starting worker process {index}"), source })
    }
}

impl Children {
    pub(super) fn start(
        &mut self,
        workers: u32,
        driver: SocketAddr,
        secret: &str,
        args: &[OsString],
    ) -> Result<(), LaunchError> {
        let exe = std::env::current_exe()
            .map_err(|source| LaunchError::Io { what: "finding the current executable".into(), source })?;
        let spec = SpawnSpec { exe, args: args.to_vec(), driver, workers, secret: secret.to_string() };
        let first = incarnation();
        for index in 0..workers {
            let child = spec.spawn(index, first)?;
            self.processes.push(Some(child));
            self.incarnations.push(first);
        }
        self.spawn = Some(spec);
        Ok(())
    }

    /// Starts worker process `index` again, with an incarnation higher than its last one's,
    /// once its last process is gone.
    pub(super) fn restart(&mut self, index: u32) -> Result<(), LaunchError> {
        let spec = self.spawn.as_ref().ok_or(LaunchError::NotLocal)?;
        let slot = self.processes.get_mut(index as usize).ok_or(LaunchError::UnknownWorker { index })?;
        if let Some(child) = slot {
            match child.try_wait() {
                Ok(None) => return Err(LaunchError::WorkerRunning { index }),
                Ok(Some(_)) => {}
                Err(source) => {
                    return Err(LaunchError::Io { what: format!("checking worker process {index}"), source })
                }
            }
        }
        let last = self.incarnations[index as usize];
        let next = incarnation().max(last.saturating_add(1));
        *slot = Some(spec.spawn(index, next)?);
        self.incarnations[index as usize] = next;
        Ok(())
    }

    /// Whether local worker process `index` has exited (false if it was killed on purpose,
    /// or there is none).
    pub(super) fn exited(&mut self, index: u32) -> bool {
        let child = self.processes.get_mut(index as usize).and_then(Option::as_mut);
        child.is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Fails if a worker process (not killed on purpose) has exited.
    pub(super) fn check(&mut self) -> Result<(), LaunchError> {
        for (index, child) in self.processes.iter_mut().enumerate() {
            if let Some(Some(status)) = child.as_mut().map(|c| c.try_wait()).transpose().ok().flatten() {
                return Err(LaunchError::WorkerExited {
                    index: index as u32,
                    status: status.to_string(),
                    last_rejection: None,
                });
            }
        }
        Ok(())
    }

    /// Waits a while for every process to exit by itself, then kills those left.
    pub(super) fn finish(&mut self) {
        let deadline = std::time::Instant::now() + CHILD_EXIT_WAIT_MAX;
        for mut child in self.processes.iter_mut().filter_map(Option::take) {
            // The process is going (its driver connection closed): wait for its exit, up to
            // what is left of the deadline.
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Ok(None) = child.wait_timeout(left) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
