//! Bringing the driver's side of a cluster up: listening, starting the local worker
//! processes, waiting for every worker to join and register, and starting the driver's
//! thread.
//!
//! The program is built first, since the handshake carries its fingerprint and registration
//! compares the workers' programs with it. But building a program may run jobs: a streaming
//! program resuming from its checkpoints ([`dstream::StreamingContext::get_or_create`])
//! reads and checks them on the workers, and stores logged input on them, before it returns.
//! So the cluster comes up the first time the program needs it ([`Bringup::ensure_up`],
//! called by the driver's job runner), or once the program is built if it never did.

#[allow(clippy::wildcard_imports)] // The cluster module's imports, split from it.
use super::*;
use crate::runtime::driver::Bringup;
use crossbeam_channel::Receiver;

/// Everything bringing the cluster up needs, once the program's graph is built.
pub(super) struct Plan {
    pub(super) builder: ClusterBuilder,
    pub(super) listen: SocketAddr,
    pub(super) workers: u32,
    pub(super) secret: Secret,
    /// The secret to hand to local worker processes (`None` unless the cluster is local).
    pub(super) secret_text: Option<String>,
    pub(super) graph: Arc<Graph>,
    pub(super) inbox: Sender<Input>,
    pub(super) inbox_rx: Receiver<Input>,
}

/// A cluster that came up: what [`Cluster`] owns.
pub(super) struct Up {
    pub(super) driver: JoinHandle<()>,
    pub(super) observed: Arc<Observed>,
    pub(super) children: Children,
    pub(super) addr: SocketAddr,
    pub(super) runtime: tokio::runtime::Runtime,
}

/// Where bringing the cluster up is.
enum State {
    /// Not yet tried.
    Pending(Box<Plan>),
    /// Up; `None` once the launch took it into its [`Cluster`].
    Up(Option<Up>),
    /// It failed; `None` once the launch took the error.
    Failed(Option<LaunchError>),
}

/// The cluster's bring-up, shared by the launch and the driver's job runner.
pub(super) struct Startup {
    state: Mutex<State>,
}

impl Startup {
    pub(super) fn new(plan: Plan) -> Startup {
        Startup { state: Mutex::new(State::Pending(Box::new(plan))) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every transition replaces the whole state, so a panicking holder leaves a valid one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the cluster up if it has not tried yet.
    fn start_once(state: &mut State) {
        if let State::Pending(_) = state {
            let State::Pending(plan) = std::mem::replace(state, State::Failed(None)) else {
                unreachable!("matched just above")
            };
            *state = match plan.start() {
                Ok(up) => State::Up(Some(up)),
                Err(e) => State::Failed(Some(e)),
            };
        }
    }

    /// The cluster, brought up now if the program did not need it while it was built; or
    /// why it could not come up.
    pub(super) fn take(&self) -> Result<Up, LaunchError> {
        let mut state = self.lock();
        Self::start_once(&mut state);
        match &mut *state {
            State::Up(up) => {
                up.take().ok_or(LaunchError::Program(dstream::Error::Internal("the cluster was taken twice")))
            }
            State::Failed(e) => {
                Err(e.take().unwrap_or(LaunchError::Program(dstream::Error::ClusterStopped { submitted: false })))
            }
            State::Pending(_) => unreachable!("start_once leaves no pending state"),
        }
    }

    /// Why the cluster could not come up, if it tried and failed.
    pub(super) fn take_error(&self) -> Option<LaunchError> {
        match &mut *self.lock() {
            State::Failed(e) => e.take(),
            _ => None,
        }
    }

    /// The cluster if it came up while the program was built (to be stopped).
    pub(super) fn take_up(&self) -> Option<Up> {
        match &mut *self.lock() {
            State::Up(up) => up.take(),
            _ => None,
        }
    }
}

impl Bringup for Startup {
    fn ensure_up(&self) -> Result<(), dstream::Error> {
        let mut state = self.lock();
        Self::start_once(&mut state);
        match &*state {
            State::Up(_) => Ok(()),
            // The launch returns the reason; the program sees the cluster gone.
            _ => Err(dstream::Error::ClusterStopped { submitted: false }),
        }
    }
}

impl Plan {
    /// Listens, starts the local workers, waits for every worker to join and register, and
    /// starts the driver's thread.
    fn start(self) -> Result<Up, LaunchError> {
        let Plan { builder, listen, workers, secret, secret_text, graph, inbox, inbox_rx } = self;
        let mut handshake = HandshakeConfig::new(NodeId::Driver, incarnation(), graph.fingerprint(), secret);
        handshake.wire = builder.transport.wire;
        let runtime = tokio_runtime().map_err(|source| LaunchError::Io { what: "starting tokio".into(), source })?;
        let listener_config = ListenerConfig::default();
        let mut listener = runtime
            .block_on(Listener::bind(listen, handshake, listener_config))
            .map_err(|source| LaunchError::Io { what: format!("listening on {listen}"), source })?;
        let addr = listener.local_addr();
        let mut children = Children::default();
        if let Some(secret) = &secret_text {
            children.start(workers, addr, secret, &builder.worker_args)?;
        }
        let started = std::time::Instant::now();
        let wait = builder.workers_wait_max;
        let (connections, addresses) = runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + wait;
            join::gather(&mut listener, workers, deadline, || children.check()).await
        })?;

        let (transport, events) = TcpTransport::new(NodeId::Driver, runtime.handle().clone(), builder.transport);
        let transport = Arc::new(transport);
        pump(events, inbox.clone())?;
        let mut config = builder.driver;
        config.encode_payloads = true;
        config.input_replicas = builder.input_replicas.unwrap_or(2.min(workers));
        let driver = dstream::Driver::new(config, graph);
        let observed = Arc::new(Observed::default());
        let driver_loop = DriverLoop::new(driver, Arc::clone(&transport), SystemClock::new(), Arc::clone(&observed));
        let thread = spawn("dstream-driver", move || driver_loop.run(inbox_rx))?;
        for conn in connections {
            transport.add(conn);
        }
        // From now on a worker that joins is a restarted process.
        let weak = Arc::downgrade(&transport);
        drop(transport);
        runtime.spawn(join::admit(listener, workers, addresses, listener_config.handshakes_max, weak));
        let mut exited = None;
        let remaining = wait.saturating_sub(started.elapsed());
        let all = observed.wait_until(
            remaining,
            WATCH_INTERVAL,
            || {
                if exited.is_none() {
                    exited = children.check().err();
                }
            },
            |m| m.registered.len() as u32 >= workers || !m.refused.is_empty() || m.stopped,
        );
        let failure = {
            let members = observed.lock();
            if let Some(e) = exited {
                Some(e)
            } else if let Some((worker, reason)) = members.refused.iter().next() {
                Some(LaunchError::Refused { worker: *worker, reason: reason.clone() })
            } else if !all {
                Some(LaunchError::WorkersTimeout {
                    expected: workers,
                    joined: workers,
                    registered: members.registered.len() as u32,
                    waited: started.elapsed(),
                    last_rejection: None,
                })
            } else {
                None
            }
        };
        let up = Up { driver: thread, observed, children, addr, runtime };
        match failure {
            None => Ok(up),
            Some(e) => {
                up.stop(&inbox);
                Err(e)
            }
        }
    }
}

impl Up {
    /// Stops the driver's thread and the local workers (what dropping a [`Cluster`] does).
    pub(super) fn stop(mut self, inbox: &Sender<Input>) {
        let _ = inbox.send(Input::Stop);
        if self.driver.join().is_err() {
            tracing::error!("the dstream driver thread panicked");
        }
        self.children.finish();
        self.runtime.shutdown_background();
    }
}
