//! The harness's simulation: the members, the links between them, the tasks running on them,
//! virtual time and the faults, stepped one event at a time in a seeded order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::model::{CostModel, LinkModel};
use super::{programs, Fault, Step, StepClusterBuilder};
use crate::codec;
use crate::context::JobRequest;
use crate::driver::{Driver, DriverConfig, DriverEvent};
use crate::error::Error;
use crate::graph::Graph;
use crate::ids::{JobId, NodeId, WorkerId};
use crate::message::{Message, Payload};
use crate::rng::SplitMix64;
use crate::time::{ManualClock, Time};
use crate::worker::{RunnableTask, TaskDone, Worker, WorkerConfig};

/// A message on its way, and when it can be delivered.
struct InFlight {
    at: Time,
    msg: Message,
}

/// A task running on a worker, and when it completes.
struct Running {
    at: Time,
    worker: WorkerId,
    done: TaskDone,
}

pub(super) struct Sim {
    pub(super) driver: Driver,
    pub(super) workers: Vec<Worker>,
    graph: Arc<Graph>,
    /// The workers' own graphs and what their programs returned, when they do not share the
    /// driver's graph.
    pub(super) own: Option<programs::OwnGraphs>,
    worker_config: WorkerConfig,
    rng: SplitMix64,
    pub(super) now: Time,
    /// Follows `now`, for streaming contexts on the cluster.
    clock: Arc<ManualClock>,
    step: Duration,
    wire: bool,
    cost: CostModel,
    link: LinkModel,
    queues: BTreeMap<(NodeId, NodeId), VecDeque<InFlight>>,
    ready: Vec<(WorkerId, RunnableTask)>,
    /// Tasks that take virtual time, in no order (the step picks among the due ones).
    running: Vec<Running>,
    pub(super) trace: Vec<Step>,
    finished: BTreeMap<JobId, Result<Vec<Payload>, Error>>,
    /// Workers whose messages are dropped both ways.
    isolated: BTreeSet<WorkerId>,
    /// Workers whose process is gone until a restart.
    dead: BTreeSet<WorkerId>,
    /// Links between two workers that drop every message, as (lower id, higher id).
    cut: BTreeSet<(WorkerId, WorkerId)>,
    /// How many times slower than the cost model each worker runs (absent: 1).
    slowdown: BTreeMap<WorkerId, u32>,
    /// When the driver crashed, if it did: nothing happens any more.
    pub(super) crashed: Option<Time>,
    /// Faults to apply when virtual time reaches them, in time order.
    pub(super) planned: Vec<(Time, Fault)>,
    /// When the driver last sent a task out (or the running job was submitted).
    last_launch: Time,
    /// How long a job may wait on timers without any task launched before `run_job` gives up.
    idle_max: Duration,
}

impl Sim {
    pub(super) fn new(b: &StepClusterBuilder, graph: Arc<Graph>, own: Option<programs::OwnGraphs>) -> Sim {
        let mut driver_config = DriverConfig::new();
        driver_config.task_attempts_max = b.task_attempts_max;
        driver_config.input_replicas = b.input_replicas.unwrap_or(2.min(b.workers));
        driver_config.encode_payloads = b.wire;
        driver_config.heartbeat_timeout = b.heartbeat_timeout;
        driver_config.speculation = b.speculation;
        let mut worker_config = b.worker.clone();
        worker_config.encode_payloads = b.wire;
        // Waiting on time ends with a launch within a heartbeat timeout (a silent worker's
        // tasks relaunched) or a fetch timeout (a task's input asked elsewhere or recomputed);
        // four of the longer one without a launch means time cannot help.
        let idle_max = 4 * b.heartbeat_timeout.max(worker_config.fetch_timeout);
        Sim {
            driver: Driver::new(driver_config, Arc::clone(&graph)),
            workers: (0..b.workers)
                .map(|i| {
                    let graph = own.as_ref().map_or(&graph, |o| o.graph(i));
                    Worker::new(WorkerId(i), worker_config.clone(), Arc::clone(graph))
                })
                .collect(),
            graph,
            own,
            worker_config,
            rng: SplitMix64::new(b.seed),
            now: b.start,
            clock: Arc::new(ManualClock::new(b.start)),
            step: Duration::from_nanos(b.step_nanos),
            wire: b.wire,
            cost: b.cost,
            link: b.link,
            queues: BTreeMap::new(),
            ready: Vec::new(),
            running: Vec::new(),
            trace: Vec::new(),
            finished: BTreeMap::new(),
            isolated: BTreeSet::new(),
            dead: BTreeSet::new(),
            cut: BTreeSet::new(),
            slowdown: BTreeMap::new(),
            crashed: None,
            planned: Vec::new(),
            last_launch: b.start,
            idle_max,
        }
    }

    pub(super) fn clock(&self) -> Arc<ManualClock> {
        Arc::clone(&self.clock)
    }

    /// Moves virtual time to `at` (never backwards).
    pub(super) fn set_now(&mut self, at: Time) {
        self.now = self.now.max(at);
        self.clock.set(self.now);
    }

    /// Refuses work once the driver crashed.
    pub(super) fn alive(&self) -> Result<(), Error> {
        match self.crashed {
            Some(at) => Err(Error::DriverCrashed { at }),
            None => Ok(()),
        }
    }

    pub(super) fn run_job(&mut self, job: JobRequest) -> Result<Vec<Payload>, Error> {
        self.alive()?;
        let id = self.driver.submit_job(self.now, job);
        self.wait_for(id)
    }

    /// Steps until the job (or upload) `id` ends.
    pub(super) fn wait_for(&mut self, id: JobId) -> Result<Vec<Payload>, Error> {
        self.last_launch = self.now;
        loop {
            self.collect_outputs()?;
            self.alive()?;
            if let Some(result) = self.finished.remove(&id) {
                return result;
            }
            if self.step(None)? {
                continue;
            }
            self.alive()?;
            // Nothing in flight and no task ready: only time can help, and only if some task is
            // out on a worker (a silent worker's tasks are relaunched after the heartbeat
            // timeout, a fetch without reply is given up after the fetch timeout), a fault is
            // planned, or no worker is alive (the driver fails the job after its
            // `workers_wait_max`, a bounded wait of its own).
            let no_workers = self.driver.workers().next().is_none();
            if !no_workers
                && self.driver.running_tasks() == 0
                && self.driver.uploads_in_progress() == 0
                && self.planned.is_empty()
            {
                return Err(Error::NoProgress { job: id, workers: self.driver.workers().count() });
            }
            let waited = self.now - self.last_launch;
            let next = self.next_deadline();
            match next {
                Some(at) if waited < self.idle_max || no_workers => self.jump(at)?,
                // Waiting on timers that do not help any more.
                _ => return Err(Error::NoProgress { job: id, workers: self.driver.workers().count() }),
            }
        }
    }

    /// The earliest timer deadline of any member, or planned fault.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        if self.crashed.is_some() {
            return None; // Nothing runs after the driver crashed.
        }
        let timers = std::iter::once(self.driver.poll_timeout()).chain(self.live_workers().map(Worker::poll_timeout));
        timers.flatten().chain(self.planned.first().map(|(t, _)| *t)).min()
    }

    /// The workers whose process runs (a killed one has no timers until its restart).
    fn live_workers(&self) -> impl Iterator<Item = &Worker> + '_ {
        self.workers.iter().filter(|w| !self.dead.contains(&w.id()))
    }

    /// Moves virtual time to `at` (if later) and fires what is due.
    pub(super) fn jump(&mut self, at: Time) -> Result<(), Error> {
        self.set_now(at);
        self.fire_due()
    }

    /// Applies the planned faults and fires the timers due at `now`, in deadline order (ties:
    /// faults first, then the driver, then the workers by id), collecting each one's outputs.
    fn fire_due(&mut self) -> Result<(), Error> {
        while self.planned.first().is_some_and(|(t, _)| *t <= self.now) {
            let (_, fault) = self.planned.remove(0);
            self.apply(fault)?;
            self.collect_outputs()?;
        }
        if self.crashed.is_some() {
            return Ok(());
        }
        loop {
            let driver = self.driver.poll_timeout().map(|t| (t, NodeId::Driver));
            let workers = self.live_workers().map(|w| w.poll_timeout().map(|t| (t, NodeId::Worker(w.id()))));
            let Some((_, node)) =
                std::iter::once(driver).chain(workers).flatten().filter(|(t, _)| *t <= self.now).min()
            else {
                return Ok(());
            };
            self.trace.push(Step::Timer { node });
            let still_due = match node {
                NodeId::Driver => {
                    self.driver.handle_timeout(self.now);
                    self.driver.poll_timeout()
                }
                NodeId::Worker(w) => {
                    let worker = self.workers.get_mut(w.0 as usize).ok_or_else(internal)?;
                    worker.handle_timeout(self.now);
                    worker.poll_timeout()
                }
            };
            if still_due.is_some_and(|t| t <= self.now) {
                return Err(Error::Internal("a timer is still due after it fired"));
            }
            self.collect_outputs()?;
        }
    }

    /// Whether `fault` names only workers that exist.
    pub(super) fn check(&self, fault: Fault) -> Result<(), Error> {
        let n = self.workers.len() as u32;
        let check = |w: WorkerId| if w.0 < n { Ok(()) } else { Err(Error::UnknownPeer(NodeId::Worker(w))) };
        match fault {
            Fault::Isolate(w) | Fault::Restart(w) | Fault::Kill(w) | Fault::Slow { worker: w, .. } => check(w),
            Fault::Cut(a, b) | Fault::Mend(a, b) => check(a).and(check(b)),
            Fault::CrashDriver => Ok(()),
        }
    }

    /// Applies `fault` now.
    pub(super) fn apply(&mut self, fault: Fault) -> Result<(), Error> {
        self.check(fault)?;
        self.trace.push(Step::Fault(fault));
        match fault {
            Fault::Isolate(w) => {
                self.isolated.insert(w);
                let node = NodeId::Worker(w);
                self.drop_queued(|from, to| from == node || to == node);
            }
            Fault::Restart(w) => {
                let mut config = self.worker_config.clone();
                config.incarnation = self.workers[w.0 as usize].incarnation() + 1;
                self.isolated.remove(&w);
                self.dead.remove(&w);
                self.slowdown.remove(&w);
                self.end_process(w);
                // A worker with a graph of its own builds it again, or keeps it (see
                // `StepClusterBuilder::build_with_worker_processes`).
                let graph = match &mut self.own {
                    Some(own) => Arc::clone(own.restart(w.0)?),
                    None => Arc::clone(&self.graph),
                };
                self.workers[w.0 as usize] = Worker::new(w, config, graph);
            }
            Fault::Kill(w) => {
                if self.dead.insert(w) {
                    self.end_process(w);
                    // Its connections are reset: every peer learns it at once.
                    self.driver.handle_peer_lost(self.now, w);
                    for i in 0..self.workers.len() {
                        if i != w.0 as usize && !self.dead.contains(&WorkerId(i as u32)) {
                            self.workers[i].handle_peer_lost(self.now, w);
                        }
                    }
                }
            }
            Fault::Slow { worker, times } => {
                self.slowdown.insert(worker, times.max(1));
            }
            Fault::Cut(a, b) => {
                self.cut.insert((a.min(b), a.max(b)));
                let (a, b) = (NodeId::Worker(a), NodeId::Worker(b));
                self.drop_queued(|from, to| (from == a && to == b) || (from == b && to == a));
            }
            Fault::Mend(a, b) => {
                self.cut.remove(&(a.min(b), a.max(b)));
            }
            Fault::CrashDriver => {
                self.crashed = Some(self.now);
                self.drop_queued(|_, _| true);
                self.ready.clear();
                self.running.clear();
                self.planned.clear();
            }
        }
        Ok(())
    }

    /// What ends with a worker's process: messages in flight to it, and its requests to other
    /// workers, die with it (what it sent the driver is still on the way); so do the tasks it
    /// had ready or running.
    fn end_process(&mut self, w: WorkerId) {
        let node = NodeId::Worker(w);
        self.drop_queued(|from, to| to == node || (from == node && to != NodeId::Driver));
        self.ready.retain(|(r, _)| *r != w);
        self.running.retain(|r| r.worker != w);
    }

    /// Drops every queued message between a pair that `which` selects, tracing each.
    fn drop_queued(&mut self, which: impl Fn(NodeId, NodeId) -> bool) {
        for (&(from, to), queue) in self.queues.iter_mut().filter(|((f, t), _)| which(*f, *t)) {
            for m in queue.drain(..) {
                self.trace.push(Step::Dropped { from, to, kind: m.msg.kind() });
            }
        }
    }

    /// Moves every output of every state machine into the queues.
    pub(super) fn collect_outputs(&mut self) -> Result<(), Error> {
        while let Some((to, msg)) = self.driver.poll_transmit() {
            self.enqueue(NodeId::Driver, to, msg)?;
        }
        while let Some(event) = self.driver.poll_event() {
            match event {
                DriverEvent::JobFinished { job, result } => {
                    self.finished.insert(job, result);
                }
                DriverEvent::WorkerLost { worker, incarnation, reason } => {
                    self.trace.push(Step::Lost { worker, incarnation, reason });
                }
                // Every worker of a stepping cluster runs the program the test gave it: one the
                // driver refuses is a mistake the waiting job reports.
                DriverEvent::WorkerRefused { worker, reason } => return Err(Error::Refused { worker, reason }),
                DriverEvent::WorkerRegistered(_) => {}
                DriverEvent::Speculated { task, worker } => self.trace.push(Step::Speculated { task, worker }),
            }
        }
        for i in 0..self.workers.len() {
            let id = self.workers[i].id();
            while let Some((to, msg)) = self.workers[i].poll_transmit() {
                self.enqueue(NodeId::Worker(id), to, msg)?;
            }
            while let Some(task) = self.workers[i].poll_task() {
                self.ready.push((id, task));
            }
        }
        Ok(())
    }

    /// Whether the link between `from` and `to` drops what is sent on it.
    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        let gone = |n: NodeId| matches!(n, NodeId::Worker(w) if self.isolated.contains(&w) || self.dead.contains(&w));
        let pair = match (from, to) {
            (NodeId::Worker(a), NodeId::Worker(b)) => self.cut.contains(&(a.min(b), a.max(b))),
            _ => false,
        };
        self.crashed.is_some() || gone(from) || gone(to) || pair
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, msg: Message) -> Result<(), Error> {
        if self.is_cut(from, to) {
            self.trace.push(Step::Dropped { from, to, kind: msg.kind() });
            return Ok(());
        }
        if matches!(msg, Message::Launch(_)) {
            self.last_launch = self.now;
        }
        let msg = if self.wire { codec::decode(&codec::encode(&msg)?)? } else { msg };
        let (delay, lost) = self.link.delay(&mut self.rng);
        if lost {
            self.trace.push(Step::Retransmitted { from, to, kind: msg.kind() });
        }
        let queue = self.queues.entry((from, to)).or_default();
        // One connection delivers in order: a message never overtakes the one before it.
        let at = (self.now + delay).max(queue.back().map_or(Time::ZERO, |m| m.at));
        queue.push_back(InFlight { at, msg });
        Ok(())
    }

    /// The earliest moment something other than a timer can happen: a ready task (now), a
    /// message arriving, a running task completing.
    fn soonest(&self) -> Option<Time> {
        let ready = (!self.ready.is_empty()).then_some(self.now);
        let heads = self.queues.values().filter_map(|q| q.front().map(|m| m.at));
        let running = self.running.iter().map(|r| r.at);
        ready.into_iter().chain(heads).chain(running).min()
    }

    /// Takes one step, after firing what falls due as it moves time on: delivers one message,
    /// starts one ready task or completes one running task, chosen by the seeded generator
    /// among those due. When nothing is due within a step, moves time to the next moment
    /// something is (a timer or fault on the way fires at its own time), unless that is past
    /// `limit`. Returns false when nothing is in flight, ready or running, or the next event
    /// is past `limit`.
    pub(super) fn step(&mut self, limit: Option<Time>) -> Result<bool, Error> {
        if self.crashed.is_some() {
            return Ok(false);
        }
        self.queues.retain(|_, q| !q.is_empty());
        let Some(soonest) = self.soonest() else { return Ok(false) };
        let next = self.now + self.step;
        if soonest > next {
            let at = self.next_deadline().map_or(soonest, |d| d.min(soonest)).max(next);
            if limit.is_some_and(|l| at > l) {
                return Ok(false);
            }
            self.jump(at)?;
            return Ok(true);
        }
        self.set_now(next);
        self.fire_due()?;
        self.queues.retain(|_, q| !q.is_empty());
        let now = self.now;
        let heads: Vec<(NodeId, NodeId)> =
            self.queues.iter().filter(|(_, q)| q.front().is_some_and(|m| m.at <= now)).map(|(k, _)| *k).collect();
        let due: Vec<usize> = (0..self.running.len()).filter(|&i| self.running[i].at <= now).collect();
        let choices = heads.len() + self.ready.len() + due.len();
        if choices == 0 {
            return Ok(true); // A fault dropped what there was to do, or it is not due yet.
        }
        let pick = self.rng.below(choices);
        if let Some(&(from, to)) = heads.get(pick) {
            let queue = self.queues.get_mut(&(from, to)).ok_or_else(internal)?;
            let msg = queue.pop_front().ok_or_else(internal)?.msg;
            self.trace.push(Step::Deliver { from, to, kind: msg.kind() });
            match (from, to) {
                (NodeId::Worker(w), NodeId::Driver) => self.driver.handle_message(self.now, w, msg),
                (_, NodeId::Worker(w)) => {
                    let worker = self.workers.get_mut(w.0 as usize).ok_or(Error::UnknownPeer(to))?;
                    worker.handle_message(self.now, from, msg);
                }
                (NodeId::Driver, NodeId::Driver) => return Err(Error::UnknownPeer(to)),
            }
        } else if pick < heads.len() + self.ready.len() {
            let (w, task) = self.ready.swap_remove(pick - heads.len());
            let (task_id, attempt) = (task.desc().task, task.desc().attempt);
            self.trace.push(Step::Run { worker: w, task: task_id, attempt });
            let bytes = task.input_bytes();
            let done = task.run();
            if self.cost.is_zero() {
                self.workers[w.0 as usize].handle_task_done(self.now, done);
            } else {
                let slowdown = self.slowdown.get(&w).copied().unwrap_or(1);
                let at = self.now + self.cost.duration(bytes, slowdown);
                self.running.push(Running { at, worker: w, done });
            }
        } else {
            let index = due[pick - heads.len() - self.ready.len()];
            let Running { worker, done, .. } = self.running.swap_remove(index);
            self.trace.push(Step::Done { worker, task: done.task(), attempt: done.attempt() });
            self.workers[worker.0 as usize].handle_task_done(self.now, done);
        }
        Ok(true)
    }
}

fn internal() -> Error {
    Error::Internal("the harness lost track of its queues")
}
