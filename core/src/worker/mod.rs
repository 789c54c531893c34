//! The worker: a state machine that gathers a task's input blocks (locally or from other
//! workers), hands the task to an executor, stores what the task produced and serves blocks to
//! other workers. It does no I/O and runs no task itself.
//!
//! # Driving it
//!
//! A runtime owns one [`Worker`] and, in a loop:
//! 1. feeds it inputs, always with the current time (`now` never goes backwards):
//!    [`Worker::handle_message`] for each message received, [`Worker::handle_task_done`] for
//!    each task an executor finished, [`Worker::handle_peer_lost`] when the transport reports
//!    another worker gone (`TransportEvent::PeerLost`, or a send to it that failed);
//! 2. after every input, drains its outputs: [`Worker::poll_transmit`] until `None`, sending
//!    each message, then [`Worker::poll_task`] until `None`, running each [`RunnableTask`] on an
//!    executor (any thread) and feeding its [`TaskDone`] back;
//! 3. then reads [`Worker::poll_timeout`]: it waits for the next input until that time at the
//!    latest, and once `now` reaches it calls [`Worker::handle_timeout`] (an input like the
//!    others, so step 2 follows) and reads `poll_timeout` again.
//!
//! A new worker's first output is its registration with the driver. Once the driver accepts
//! it, the worker heartbeats every [`WorkerConfig::heartbeat_interval`] (the timer is what sends
//! them), and a block fetch that gets no reply within [`WorkerConfig::fetch_timeout`] is asked
//! of the block's next location, or fails its task with a fetch failure.

mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::dead_letter::DeadLetter;
use crate::error::{TaskError, TaskErrorKind};
use crate::graph::Graph;
use crate::ids::{BlockId, NodeId, TaskId, WorkerId};
use crate::message::{Message, Payload, TaskDesc, TaskKind, TaskOutcome};
use crate::task::{catch_panic, NewBlock, TaskContext};
use crate::time::Time;

use store::BlockStore;

/// Settings of a worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Whether the worker shares the driver's graph (a worker thread of the driver's process):
    /// then its registration carries no program to check. A worker that built its own graph
    /// by running the program sends the program's summary, and the driver refuses it if it
    /// differs from its own.
    pub shares_driver_graph: bool,
    /// How many tasks the worker runs at once.
    pub slots: u32,
    /// The block store's limit, in estimated bytes.
    pub block_store_bytes_max: u64,
    /// Encode results and shuffle buckets, as needed when peers are other processes. Within
    /// one process, data moves between workers as shared pointers instead.
    pub encode_payloads: bool,
    /// Which run of this worker's process this is. A restarted worker process must use a
    /// larger one than any before it (a runtime can use its start time in milliseconds since
    /// the epoch, or a counter it keeps): the driver ignores messages from incarnations older
    /// than the one registered, and one that registers with a newer incarnation replaces the
    /// old one. Default 0.
    pub incarnation: u64,
    /// How often the worker tells the driver it is alive, once registered.
    ///
    /// Default 100 ms: a tenth of the driver's default
    /// [`crate::DriverConfig::heartbeat_timeout`] of 1 s, so a loss is noticed within a few
    /// sub-second batches while nine heartbeats in a row may be lost or late. A heartbeat is a
    /// few bytes, so ten a second per worker costs the driver nothing measurable.
    pub heartbeat_interval: Duration,
    /// How long a block fetch may wait for its reply before the next location is asked (or the
    /// task fails with a fetch failure, so the driver recomputes the block).
    ///
    /// Default 5 s. Peers answer fetches at once from memory, and a peer that is gone is
    /// normally reported by the runtime ([`Worker::handle_peer_lost`]); the timeout only covers
    /// a peer that falls silent without its connection closing. It is well above the driver's
    /// heartbeat timeout so a large block on a slow link is not taken for a dead peer (a fetch
    /// failure costs a recomputation, and too many fail the job).
    pub fetch_timeout: Duration,
}

impl WorkerConfig {
    /// Defaults for a worker with a graph of its own: 2 slots, a 1 GiB block store, no
    /// encoding, incarnation 0, a heartbeat every 100 ms, fetches timed out after 5 s.
    pub fn new() -> WorkerConfig {
        WorkerConfig {
            shares_driver_graph: false,
            slots: 2,
            block_store_bytes_max: 1 << 30,
            encode_payloads: false,
            incarnation: 0,
            heartbeat_interval: Duration::from_millis(100),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig::new()
    }
}

/// A task whose inputs are all present, ready to run on any thread.
pub struct RunnableTask {
    graph: Arc<Graph>,
    desc: TaskDesc,
    inputs: BTreeMap<BlockId, Payload>,
    encode: bool,
}

/// What a finished task hands back to its worker.
pub struct TaskDone {
    task: TaskId,
    attempt: u32,
    partition: u32,
    result: Result<Output, TaskError>,
    new_blocks: Vec<NewBlock>,
    /// What an isolating attempt set aside.
    dead_letters: Vec<DeadLetter>,
}

enum Output {
    Result(Payload),
    Buckets { shuffle: crate::ids::ShuffleId, buckets: Vec<(Payload, u64)> },
}

impl RunnableTask {
    /// The task's descriptor.
    pub fn desc(&self) -> &TaskDesc {
        &self.desc
    }

    /// The encoded bytes of the task's inputs (0 for inputs shared by pointer in one process).
    pub fn input_bytes(&self) -> u64 {
        self.inputs.values().map(|p| p.encoded_len().unwrap_or(0) as u64).sum()
    }

    /// Runs the task. User code that panics makes the task fail; it never unwinds past here.
    pub fn run(self) -> TaskDone {
        let RunnableTask { graph, desc, inputs, encode } = self;
        let mut new_blocks = Vec::new();
        let mut dead_letters = Vec::new();
        let result = catch_panic(|| {
            let mut tc = TaskContext::new(&inputs).isolating(desc.isolation.as_ref());
            let partition = desc.partition as usize;
            let out = match desc.kind {
                TaskKind::Result { action, builtin } => match (graph.action(action), builtin) {
                    (Ok(action), _) => {
                        let mut result = action.run(partition, &mut tc)?;
                        if encode {
                            result = action.encode_result(&result)?;
                        }
                        Output::Result(result)
                    }
                    // An action made where only the driver runs (inside an output operation)
                    // is not in this worker's graph; a built-in one needs only the dataset.
                    (Err(_), Some(builtin)) => {
                        Output::Result(graph.rdd(desc.rdd)?.run_builtin(builtin, partition, &mut tc, encode)?)
                    }
                    (Err(unknown), None) => return Err(unknown),
                },
                TaskKind::ShuffleMap { shuffle: id } => {
                    let shuffle = graph.shuffle(id)?;
                    let mut buckets = shuffle.run_map(partition, &mut tc)?;
                    if encode {
                        for (payload, bytes) in &mut buckets {
                            *payload = shuffle.encode_bucket(payload)?;
                            *bytes = payload.encoded_len().unwrap_or(0) as u64;
                        }
                    }
                    Output::Buckets { shuffle: id, buckets }
                }
            };
            new_blocks = tc.new_blocks;
            dead_letters = tc.dead_letters;
            if encode {
                // Cached blocks are stored encoded, as they would be served to another process:
                // a record that cannot be encoded fails here, in every schedule alike.
                for b in &mut new_blocks {
                    if let BlockId::Rdd { rdd, .. } = b.block {
                        b.payload = graph.rdd(rdd)?.encode_block(&b.payload)?;
                        b.bytes = b.payload.encoded_len().unwrap_or(0) as u64;
                    }
                }
            }
            Ok(out)
        });
        let (task, attempt, partition) = (desc.task, desc.attempt, desc.partition);
        TaskDone { task, attempt, partition, result, new_blocks, dead_letters }
    }
}

impl TaskDone {
    /// The task that finished.
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// Its attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

struct Gathering {
    desc: TaskDesc,
    inputs: BTreeMap<BlockId, Payload>,
    outstanding: usize,
}

/// A block asked of another worker, waiting for its reply.
#[derive(Clone, Copy)]
struct Fetch {
    /// The task attempt that needs it.
    key: (TaskId, u32),
    block: BlockId,
    /// The index of the location asked, in the task input's locations.
    index: usize,
    /// The worker asked.
    holder: WorkerId,
    /// When to give up waiting for the reply.
    deadline: Time,
}

/// The worker state machine. See the [module documentation](self) for how to drive it.
pub struct Worker {
    id: WorkerId,
    config: WorkerConfig,
    graph: Arc<Graph>,
    now: Time,
    store: BlockStore,
    refused: Option<String>,
    gathering: BTreeMap<(TaskId, u32), Gathering>,
    /// Outstanding fetches by request id. Ids grow with time and every fetch waits the same
    /// `fetch_timeout`, so the first entry has the earliest deadline.
    fetches: BTreeMap<u64, Fetch>,
    next_request: u64,
    /// When the next heartbeat is due; `None` until the driver accepts the worker, and after
    /// it refuses it.
    next_heartbeat: Option<Time>,
    runnable: VecDeque<RunnableTask>,
    outbox: VecDeque<(NodeId, Message)>,
}

impl Worker {
    /// A worker named `id` for the program whose nodes are in `graph`. A worker with a graph of
    /// its own registers the program built in it so far: build the program first.
    pub fn new(id: WorkerId, config: WorkerConfig, graph: Arc<Graph>) -> Worker {
        let program = (!config.shares_driver_graph).then(|| graph.program());
        let register = Message::Register { slots: config.slots, program, incarnation: config.incarnation };
        Worker {
            id,
            store: BlockStore::new(config.block_store_bytes_max),
            config,
            graph,
            now: Time::ZERO,
            refused: None,
            gathering: BTreeMap::new(),
            fetches: BTreeMap::new(),
            next_request: 0,
            next_heartbeat: None,
            runnable: VecDeque::new(),
            outbox: VecDeque::from([(NodeId::Driver, register)]),
        }
    }

    /// This worker's id.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// This worker's incarnation ([`WorkerConfig::incarnation`]).
    pub fn incarnation(&self) -> u64 {
        self.config.incarnation
    }

    /// Why the driver refused this worker, if it did.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// Estimated bytes held by the block store.
    pub fn stored_bytes(&self) -> u64 {
        self.store.used_bytes()
    }

    /// The ids of the blocks held, in block order.
    pub fn stored_block_ids(&self) -> Vec<BlockId> {
        self.store.ids()
    }

    /// The number of blocks held.
    pub fn stored_blocks(&self) -> usize {
        self.store.len()
    }

    /// The next message to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Message)> {
        self.outbox.pop_front()
    }

    /// The next task ready to run, if any.
    #[must_use]
    pub fn poll_task(&mut self) -> Option<RunnableTask> {
        self.runnable.pop_front()
    }

    /// When [`Worker::handle_timeout`] is to be called next (once `now` reaches it), if ever:
    /// the next heartbeat or the first fetch deadline, whichever is earlier.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let fetch = self.fetches.first_key_value().map(|(_, f)| f.deadline);
        match (self.next_heartbeat, fetch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles the passing of time: sends the heartbeat if it is due, and gives up on every
    /// fetch whose reply is overdue at `now`. Calling it early does no harm.
    pub fn handle_timeout(&mut self, now: Time) {
        self.advance(now);
        if let Some(due) = self.next_heartbeat.filter(|due| *due <= self.now) {
            self.outbox.push_back((NodeId::Driver, Message::Heartbeat { incarnation: self.config.incarnation }));
            // Keep the beat on its grid: the next beat is the first grid point after now, so a
            // runtime that fell behind skips the missed beats rather than sending a burst.
            let interval = self.config.heartbeat_interval.max(Duration::from_nanos(1));
            let late = (self.now - due).as_nanos() / interval.as_nanos();
            let skip = u32::try_from(late).unwrap_or(u32::MAX).saturating_add(1);
            self.next_heartbeat = Some(due + interval.saturating_mul(skip));
        }
        let overdue: Vec<u64> =
            self.fetches.iter().take_while(|(_, f)| f.deadline <= self.now).map(|(r, _)| *r).collect();
        for request in overdue {
            if let Some(fetch) = self.fetches.remove(&request) {
                let why =
                    format!("{} got no reply from {} within {:?}", self.id, fetch.holder, self.config.fetch_timeout);
                self.fetch_failed(fetch, TaskError::new(TaskErrorKind::FetchFailed { block: fetch.block }, why));
            }
        }
    }

    /// Handles the runtime's report that `peer` is gone: every fetch waiting on it is asked of
    /// the block's next location, or fails its task.
    pub fn handle_peer_lost(&mut self, now: Time, peer: WorkerId) {
        self.advance(now);
        let waiting: Vec<u64> = self.fetches.iter().filter(|(_, f)| f.holder == peer).map(|(r, _)| *r).collect();
        for request in waiting {
            if let Some(fetch) = self.fetches.remove(&request) {
                let why = format!("{peer} is gone");
                self.fetch_failed(fetch, TaskError::new(TaskErrorKind::FetchFailed { block: fetch.block }, why));
            }
        }
    }

    fn advance(&mut self, now: Time) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }

    /// Handles a message from the driver or another worker.
    pub fn handle_message(&mut self, now: Time, from: NodeId, msg: Message) {
        self.advance(now);
        match msg {
            Message::Registered => {
                if self.next_heartbeat.is_none() && self.refused.is_none() {
                    self.next_heartbeat = Some(self.now + self.config.heartbeat_interval);
                }
            }
            Message::Refused { reason } => {
                self.refused = Some(reason);
                self.next_heartbeat = None;
            }
            Message::Launch(desc) => self.launch(desc),
            Message::Fetch { request, block } => self.serve(from, request, block),
            Message::FetchReply { request, block, data } => self.fetched(request, block, data),
            Message::Release { shuffles, rdds, inputs, input_blocks } => {
                if let Some(replica) = self.graph.replica() {
                    replica.release(&inputs);
                }
                let input_blocks: BTreeSet<BlockId> = input_blocks.into_iter().collect();
                self.store.remove_where(|b| match b {
                    BlockId::Shuffle { shuffle, .. } => shuffles.contains(shuffle),
                    BlockId::Rdd { rdd, .. } => rdds.contains(rdd),
                    BlockId::Input { .. } => input_blocks.contains(b),
                })
            }
            Message::StoreBlock { block, data, bytes } => self.keep(block, data, bytes),
            Message::Replay(fact) => match self.graph.replica() {
                Some(replica) => {
                    if let Err(e) = replica.learn(fact) {
                        // The tasks that need what this would have made fail naming the cause.
                        tracing::error!(worker = %self.id, error = %e, "worker cannot apply what the driver told it");
                    }
                }
                None => tracing::warn!(worker = %self.id, "a worker sharing the driver's graph was told a replay fact"),
            },
            other => {
                tracing::warn!(kind = other.kind(), %from, worker = %self.id, "worker ignores an unexpected message")
            }
        }
    }

    /// Keeps a replica of an input block, pinned until it is released: evicting it would lose
    /// input. Answers the driver either way.
    fn keep(&mut self, block: BlockId, data: Payload, bytes: u64) {
        let result = match self.store.insert(block, data, bytes, true) {
            Ok(evicted) => {
                if !evicted.is_empty() {
                    let incarnation = self.config.incarnation;
                    self.outbox.push_back((NodeId::Driver, Message::BlocksDropped { blocks: evicted, incarnation }));
                }
                Ok(())
            }
            Err(error) => Err(error),
        };
        let incarnation = self.config.incarnation;
        self.outbox.push_back((NodeId::Driver, Message::BlockStored { block, result, incarnation }));
    }

    fn launch(&mut self, desc: TaskDesc) {
        let key = (desc.task, desc.attempt);
        let mut inputs = BTreeMap::new();
        let mut wanted = Vec::new();
        for input in &desc.inputs {
            match self.store.get(input.block) {
                Some(payload) => {
                    inputs.insert(input.block, payload);
                }
                None => wanted.push((input.block, input.locations.clone())),
            }
        }
        let mut g = Gathering { desc, inputs, outstanding: 0 };
        for (block, locations) in wanted {
            if !self.request(key, block, &locations, 0) {
                let error = TaskError::new(TaskErrorKind::FetchFailed { block }, format!("not held by {}", self.id));
                return self.finish(key, TaskOutcome::Failed(error), Vec::new(), Vec::new());
            }
            g.outstanding += 1;
        }
        self.gathering.insert(key, g);
        self.start_if_ready(key);
    }

    /// Asks the first location from index `from_index` on, other than this worker, for `block`.
    fn request(&mut self, key: (TaskId, u32), block: BlockId, locations: &[WorkerId], from_index: usize) -> bool {
        let Some((index, holder)) = locations.iter().enumerate().skip(from_index).find(|(_, w)| **w != self.id) else {
            return false;
        };
        self.next_request += 1;
        let deadline = self.now + self.config.fetch_timeout;
        self.fetches.insert(self.next_request, Fetch { key, block, index, holder: *holder, deadline });
        self.outbox.push_back((NodeId::Worker(*holder), Message::Fetch { request: self.next_request, block }));
        true
    }

    fn start_if_ready(&mut self, key: (TaskId, u32)) {
        if self.gathering.get(&key).is_some_and(|g| g.outstanding == 0) {
            if let Some(g) = self.gathering.remove(&key) {
                let graph = Arc::clone(&self.graph);
                self.runnable.push_back(RunnableTask {
                    graph,
                    desc: g.desc,
                    inputs: g.inputs,
                    encode: self.config.encode_payloads,
                });
            }
        }
    }

    fn serve(&mut self, to: NodeId, request: u64, block: BlockId) {
        // With `encode_payloads`, tasks store every block encoded, so blocks are served as stored.
        let data = self.store.get(block).ok_or_else(|| {
            let kind = TaskErrorKind::BlockNotHeld { block, holder: self.id };
            TaskError::new(kind, format!("asked by {to}, {} has no such block", self.id))
        });
        self.outbox.push_back((to, Message::FetchReply { request, block, data }));
    }

    fn fetched(&mut self, request: u64, block: BlockId, data: Result<Payload, TaskError>) {
        // A reply to a fetch given up on (timed out, or its peer reported gone) is ignored.
        let Some(fetch) = self.fetches.remove(&request) else {
            return;
        };
        debug_assert_eq!(fetch.block, block, "fetch reply for another block");
        match data {
            Ok(payload) => {
                let key = fetch.key;
                if let Some(g) = self.gathering.get_mut(&key) {
                    g.inputs.insert(block, payload);
                    g.outstanding -= 1;
                }
                self.start_if_ready(key);
            }
            Err(error) => self.fetch_failed(fetch, error),
        }
    }

    /// A fetch got no block: asks the block's next location, or fails the task with `error`.
    fn fetch_failed(&mut self, fetch: Fetch, error: TaskError) {
        let Fetch { key, block, index, .. } = fetch;
        let locations = match self.gathering.get(&key) {
            Some(g) => g.desc.inputs.iter().find(|i| i.block == block).map(|i| i.locations.clone()),
            None => return,
        };
        if locations.is_some_and(|l| self.request(key, block, &l, index + 1)) {
            return;
        }
        if self.gathering.remove(&key).is_some() {
            // The task's other fetches are abandoned: their replies will find no request.
            self.fetches.retain(|_, f| f.key != key);
        }
        self.finish(key, TaskOutcome::Failed(error), Vec::new(), Vec::new());
    }

    /// Takes back a task an executor ran: stores its blocks and reports to the driver.
    pub fn handle_task_done(&mut self, now: Time, done: TaskDone) {
        self.advance(now);
        let key = (done.task, done.attempt);
        let mut stored = Vec::new();
        let mut dropped = Vec::new();
        let mut dead_letters = Vec::new();
        let outcome = match self.store_blocks(done, &mut stored, &mut dropped, &mut dead_letters) {
            Ok(outcome) => outcome,
            Err(error) => {
                dead_letters.clear();
                // Undo the attempt's stores; a block it replaced is gone too, so report them all.
                for block in stored.drain(..) {
                    self.store.remove(block);
                    dropped.push(block);
                }
                TaskOutcome::Failed(error)
            }
        };
        // A block stored and then evicted by the same attempt was never there for the driver.
        stored.retain(|b| !dropped.contains(b));
        if !dropped.is_empty() {
            let incarnation = self.config.incarnation;
            self.outbox.push_back((NodeId::Driver, Message::BlocksDropped { blocks: dropped, incarnation }));
        }
        self.finish(key, outcome, stored, dead_letters);
    }

    fn store_blocks(
        &mut self,
        done: TaskDone,
        stored: &mut Vec<BlockId>,
        dropped: &mut Vec<BlockId>,
        dead_letters: &mut Vec<DeadLetter>,
    ) -> Result<TaskOutcome, TaskError> {
        *dead_letters = done.dead_letters;
        let outcome = match done.result? {
            Output::Result(payload) => TaskOutcome::Result(payload),
            Output::Buckets { shuffle, buckets } => {
                for (reduce, (payload, bytes)) in buckets.into_iter().enumerate() {
                    let block = BlockId::Shuffle { shuffle, map: done.partition, reduce: reduce as u32 };
                    dropped.extend(self.store.insert(block, payload, bytes, true)?);
                    stored.push(block);
                }
                TaskOutcome::ShuffleMapDone
            }
        };
        for b in done.new_blocks {
            match self.store.insert(b.block, b.payload, b.bytes, false) {
                Ok(evicted) => {
                    dropped.extend(evicted);
                    stored.push(b.block);
                }
                // Caching is an optimization: a partition that finds no room among pinned
                // blocks is not cached, and is recomputed from lineage when needed again.
                Err(TaskError { kind: TaskErrorKind::StoreFull { .. }, .. }) => {
                    tracing::debug!(block = %b.block, worker = %self.id, "no room to cache a partition");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(outcome)
    }

    fn finish(
        &mut self,
        key: (TaskId, u32),
        outcome: TaskOutcome,
        stored: Vec<BlockId>,
        dead_letters: Vec<DeadLetter>,
    ) {
        let msg = Message::TaskFinished {
            task: key.0,
            attempt: key.1,
            outcome,
            stored,
            dead_letters,
            incarnation: self.config.incarnation,
        };
        self.outbox.push_back((NodeId::Driver, msg));
    }
}
