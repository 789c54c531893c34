//! The worker: a state machine that gathers a task's input blocks (locally or from other
//! workers), hands the task to an executor, stores what the task produced and serves blocks to
//! other workers. It does no I/O and runs no task itself.
//!
//! # Driving it
//!
//! A runtime owns one [`Worker`] and, in a loop:
//! 1. feeds it inputs: [`Worker::handle_message`] for each message received and
//!    [`Worker::handle_task_done`] for each task an executor finished, with the current time;
//! 2. drains its outputs after every input: [`Worker::poll_transmit`] until `None`, sending each
//!    message, then [`Worker::poll_task`] until `None`, running each [`RunnableTask`] on an
//!    executor (any thread) and feeding its [`TaskDone`] back.
//!
//! A new worker's first output is its registration with the driver.

mod store;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

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
}

impl WorkerConfig {
    /// Defaults for a worker with a graph of its own: 2 slots, a 1 GiB block store, no
    /// encoding.
    pub fn new() -> WorkerConfig {
        WorkerConfig { shares_driver_graph: false, slots: 2, block_store_bytes_max: 1 << 30, encode_payloads: false }
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

    /// Runs the task. User code that panics makes the task fail; it never unwinds past here.
    pub fn run(self) -> TaskDone {
        let RunnableTask { graph, desc, inputs, encode } = self;
        let mut new_blocks = Vec::new();
        let result = catch_panic(|| {
            let mut tc = TaskContext::new(&inputs);
            let partition = desc.partition as usize;
            let out = match desc.kind {
                TaskKind::Result { action } => {
                    let action = graph.action(action)?;
                    let mut result = action.run(partition, &mut tc)?;
                    if encode {
                        result = action.encode_result(&result)?;
                    }
                    Output::Result(result)
                }
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
        TaskDone { task: desc.task, attempt: desc.attempt, partition: desc.partition, result, new_blocks }
    }
}

struct Gathering {
    desc: TaskDesc,
    inputs: BTreeMap<BlockId, Payload>,
    outstanding: usize,
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
    /// Outstanding fetches: request id to (task, attempt, block, index of the location asked).
    fetches: BTreeMap<u64, ((TaskId, u32), BlockId, usize)>,
    next_request: u64,
    runnable: VecDeque<RunnableTask>,
    outbox: VecDeque<(NodeId, Message)>,
}

impl Worker {
    /// A worker named `id` for the program whose nodes are in `graph`. A worker with a graph of
    /// its own registers the program built in it so far: build the program first.
    pub fn new(id: WorkerId, config: WorkerConfig, graph: Arc<Graph>) -> Worker {
        let program = (!config.shares_driver_graph).then(|| graph.program());
        let register = Message::Register { slots: config.slots, program };
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
            runnable: VecDeque::new(),
            outbox: VecDeque::from([(NodeId::Driver, register)]),
        }
    }

    /// This worker's id.
    pub fn id(&self) -> WorkerId {
        self.id
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

    fn advance(&mut self, now: Time) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }

    /// Handles a message from the driver or another worker.
    pub fn handle_message(&mut self, now: Time, from: NodeId, msg: Message) {
        self.advance(now);
        match msg {
            Message::Registered => {}
            Message::Refused { reason } => self.refused = Some(reason),
            Message::Launch(desc) => self.launch(desc),
            Message::Fetch { request, block } => self.serve(from, request, block),
            Message::FetchReply { request, block, data } => self.fetched(request, block, data),
            Message::Release { shuffles, rdds, inputs } => self.store.remove_where(|b| match b {
                BlockId::Shuffle { shuffle, .. } => shuffles.contains(shuffle),
                BlockId::Rdd { rdd, .. } => rdds.contains(rdd),
                BlockId::Input { stream, time, .. } => inputs.contains(&(*stream, *time)),
            }),
            Message::StoreBlock { block, data, bytes } => self.keep(block, data, bytes),
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
                    self.outbox.push_back((NodeId::Driver, Message::BlocksDropped { blocks: evicted }));
                }
                Ok(())
            }
            Err(error) => Err(error),
        };
        self.outbox.push_back((NodeId::Driver, Message::BlockStored { block, result }));
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
                return self.finish(key, TaskOutcome::Failed(error), Vec::new());
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
        self.fetches.insert(self.next_request, (key, block, index));
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
        let data = self
            .store
            .get(block)
            .ok_or_else(|| TaskError::new(TaskErrorKind::FetchFailed { block }, format!("not held by {}", self.id)));
        self.outbox.push_back((to, Message::FetchReply { request, block, data }));
    }

    fn fetched(&mut self, request: u64, block: BlockId, data: Result<Payload, TaskError>) {
        let Some((key, expected, index)) = self.fetches.remove(&request) else {
            return;
        };
        debug_assert_eq!(expected, block, "fetch reply for another block");
        match data {
            Ok(payload) => {
                if let Some(g) = self.gathering.get_mut(&key) {
                    g.inputs.insert(block, payload);
                    g.outstanding -= 1;
                }
                self.start_if_ready(key);
            }
            Err(error) => {
                let locations = match self.gathering.get(&key) {
                    Some(g) => g.desc.inputs.iter().find(|i| i.block == block).map(|i| i.locations.clone()),
                    None => return,
                };
                if locations.is_some_and(|l| self.request(key, block, &l, index + 1)) {
                    return;
                }
                self.gathering.remove(&key);
                self.finish(key, TaskOutcome::Failed(error), Vec::new());
            }
        }
    }

    /// Takes back a task an executor ran: stores its blocks and reports to the driver.
    pub fn handle_task_done(&mut self, now: Time, done: TaskDone) {
        self.advance(now);
        let key = (done.task, done.attempt);
        let mut stored = Vec::new();
        let mut dropped = Vec::new();
        let outcome = match self.store_blocks(done, &mut stored, &mut dropped) {
            Ok(outcome) => outcome,
            Err(error) => {
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
            self.outbox.push_back((NodeId::Driver, Message::BlocksDropped { blocks: dropped }));
        }
        self.finish(key, outcome, stored);
    }

    fn store_blocks(
        &mut self,
        done: TaskDone,
        stored: &mut Vec<BlockId>,
        dropped: &mut Vec<BlockId>,
    ) -> Result<TaskOutcome, TaskError> {
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

    fn finish(&mut self, key: (TaskId, u32), outcome: TaskOutcome, stored: Vec<BlockId>) {
        let msg = Message::TaskFinished { task: key.0, attempt: key.1, outcome, stored };
        self.outbox.push_back((NodeId::Driver, msg));
    }
}
