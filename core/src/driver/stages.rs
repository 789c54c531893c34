//! The DAG and task scheduler of the driver: stages split at shuffles, tasks queued per
//! missing partition, launched where their inputs are, retried, and their results collected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{blocks, plan, Driver, DriverEvent, Stage, StageKind, Task};
use crate::dead_letter::{DeadLetter, DeadLetterLog, Isolation};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::ids::{BlockId, JobId, NodeId, RddId, Scope, ShuffleId, StageId, TaskId, WorkerId};
use crate::message::{Fact, Message, Payload, TaskDesc, TaskKind, TaskOutcome};

impl Driver {
    pub(super) fn task_finished(
        &mut self,
        from: WorkerId,
        task_id: TaskId,
        attempt: u32,
        outcome: TaskOutcome,
        stored: Vec<BlockId>,
        dead_letters: Vec<DeadLetter>,
    ) {
        self.members.ended(from, task_id, attempt);
        for block in &stored {
            if let BlockId::Rdd { rdd, partition } = *block {
                self.cached.entry((rdd, partition)).or_default().insert(from);
            }
        }
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return; // A task of a job that already ended, or one completed by another attempt.
        };
        if let TaskOutcome::Failed(_) = outcome {
            let ours = task.attempt == attempt && task.worker == Some(from)
                || task.copy.is_some_and(|c| c.attempt == attempt && c.worker == from);
            if ours && Driver::hand_over(task, attempt) {
                return; // The other attempt carries on.
            }
        }
        if !Driver::claim(task, from, attempt) {
            return; // A stale attempt.
        }
        let Some(task) = self.tasks.remove(&task_id) else {
            return;
        };
        if !matches!(outcome, TaskOutcome::Failed(_)) {
            self.task_took(task.stage, self.now - task.launched);
        }
        let Some(stage) = self.stages.get_mut(&task.stage) else {
            return;
        };
        stage.active.remove(&task.partition);
        if !dead_letters.is_empty() && !matches!(outcome, TaskOutcome::Failed(_)) {
            // Before the result: the last one ends the job, and the job knows where they go.
            let jobs = stage.jobs.clone();
            if let Some(log) = self.dead_letter_log(&jobs) {
                log.deposit(dead_letters);
            }
        }
        let Some(stage) = self.stages.get_mut(&task.stage) else {
            return;
        };
        match outcome {
            TaskOutcome::Result(payload) => {
                stage.missing.remove(&task.partition);
                if let StageKind::Result(job_id) = stage.kind {
                    self.result_arrived(job_id, task.partition, payload);
                }
            }
            TaskOutcome::ShuffleMapDone => {
                stage.missing.remove(&task.partition);
                let (kind, rdd) = (stage.kind, stage.rdd);
                let done = stage.missing.is_empty() && stage.active.is_empty();
                if let StageKind::ShuffleMap(shuffle) = kind {
                    if let Some(slot) = self.outputs_of(shuffle, rdd).get_mut(task.partition as usize) {
                        *slot = Some(from);
                    }
                }
                if done {
                    self.stage_done(task.stage);
                }
            }
            TaskOutcome::Failed(error) => self.task_failed(task_id, task, error),
        }
    }

    pub(super) fn result_arrived(&mut self, job_id: JobId, partition: u32, payload: Payload) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        let Some(slots) = job.slots.get(&partition) else {
            return;
        };
        if slots.first().is_some_and(|i| job.results[*i].is_none()) {
            job.remaining -= 1;
        }
        for i in slots {
            job.results[*i] = Some(payload.clone());
        }
        if job.remaining > 0 {
            return;
        }
        if let Some(job) = self.jobs.remove(&job_id) {
            let results: Vec<Payload> = job.results.into_iter().flatten().collect();
            if let Scope::Batch { .. } = job.action.scope {
                // A job of a batch's own computation: workers rebuilding the batch take its result.
                let fact = Fact::JobResult { action: job.action, results: results.clone() };
                self.announcements.tell(fact, self.members.alive(), &mut self.outbox);
            }
            self.events.push_back(DriverEvent::JobFinished { job: job_id, result: Ok(results) });
        }
        self.drop_job_stages(job_id);
    }

    pub(super) fn stage_done(&mut self, stage_id: StageId) {
        let Some(stage) = self.stages.remove(&stage_id) else {
            return;
        };
        if let StageKind::ShuffleMap(shuffle) = stage.kind {
            self.shuffle_stages.remove(&shuffle);
        }
        for child in stage.children {
            if self.stages.contains_key(&child) {
                self.submit_stage(child);
            }
        }
    }

    pub(super) fn task_failed(&mut self, task_id: TaskId, mut task: Task, error: TaskError) {
        let stage_id = task.stage;
        let fetch = match error.kind {
            TaskErrorKind::FetchFailed { block } => Some((block, None)),
            // The holder itself said it has no such block: only that location is wrong.
            TaskErrorKind::BlockNotHeld { block, holder } => Some((block, Some(holder))),
            _ => None,
        };
        if let Some((block, holder)) = fetch {
            task.fetch_failures += 1;
            if task.fetch_failures <= self.config.fetch_failures_max {
                self.forget_block(block, holder);
                self.requeue(task_id, task);
                self.submit_stage(stage_id);
                return;
            }
        } else {
            task.failures += 1;
            if task.isolation.is_some() {
                // The isolating attempt was the last one. A panic there is outside what it covers.
                let error = match error.kind {
                    TaskErrorKind::Panicked => TaskError::new(TaskErrorKind::PanicNotCovered, error.message),
                    _ => error,
                };
                let attempts = task.failures + task.fetch_failures;
                return self.fail_stage(stage_id, task.partition, attempts, error);
            }
            if error.kind.retryable() && task.failures < self.config.task_attempts_max {
                tracing::debug!(%task_id, %error, "retrying task");
                self.requeue(task_id, task);
                return;
            }
            if error.kind == TaskErrorKind::Panicked {
                if let Some(isolation) = self.isolation_for(stage_id) {
                    // Every attempt panicked: once more, setting the records it panics on aside.
                    tracing::debug!(%task_id, %error, "re-running a task with dead letters");
                    task.isolation = Some(isolation);
                    self.requeue(task_id, task);
                    return;
                }
            }
        }
        let attempts = task.failures + task.fetch_failures;
        self.fail_stage(stage_id, task.partition, attempts, error);
    }

    /// Where the dead letters of a stage serving `jobs` go: the log of the first job with one.
    fn dead_letter_log(&self, jobs: &BTreeSet<JobId>) -> Option<Arc<DeadLetterLog>> {
        jobs.iter().find_map(|j| self.jobs.get(j)?.dead_letters.clone())
    }

    /// How a task of `stage_id` isolates records, if the stage computes datasets of a stream
    /// with dead letters on (found along its narrow lineage).
    fn isolation_for(&self, stage_id: StageId) -> Option<Isolation> {
        let stage = self.stages.get(&stage_id)?;
        let log = self.dead_letter_log(&stage.jobs)?;
        log.isolation(&plan::lineage_streams(&self.graph, stage.rdd))
    }

    pub(super) fn requeue(&mut self, task_id: TaskId, mut task: Task) {
        task.attempt = task.next_attempt;
        task.next_attempt += 1;
        task.worker = None;
        task.copy = None;
        if let Some(stage) = self.stages.get_mut(&task.stage) {
            stage.active.insert(task.partition, task_id);
        }
        self.tasks.insert(task_id, task);
        self.pending.push_back(task_id);
    }

    /// Fails every job that needs `stage_id`.
    pub(super) fn fail_stage(&mut self, stage_id: StageId, partition: u32, attempts: u32, cause: TaskError) {
        let (jobs, rdd) = match self.stages.get(&stage_id) {
            Some(s) => (s.jobs.clone(), s.rdd),
            None => return,
        };
        for job in jobs {
            if self.jobs.remove(&job).is_some() {
                let error = Error::TaskFailed {
                    job,
                    stage: stage_id,
                    rdd,
                    partition,
                    attempts,
                    cause: Box::new(cause.clone()),
                };
                self.events.push_back(DriverEvent::JobFinished { job, result: Err(error) });
            }
            self.drop_job_stages(job);
        }
    }

    /// Removes `job` from every stage; stages no job needs any more are dropped with their
    /// queued tasks (running ones are ignored when they report).
    pub(super) fn drop_job_stages(&mut self, job: JobId) {
        let mut dead = Vec::new();
        for (id, stage) in &mut self.stages {
            stage.jobs.remove(&job);
            if stage.jobs.is_empty() {
                dead.push(*id);
            }
        }
        for id in dead {
            if let Some(stage) = self.stages.remove(&id) {
                if let StageKind::ShuffleMap(s) = stage.kind {
                    self.shuffle_stages.remove(&s);
                }
                for task in stage.active.values() {
                    self.tasks.remove(task);
                }
            }
        }
        let tasks = &self.tasks;
        self.pending.retain(|t| tasks.contains_key(t));
    }

    /// Launches queued tasks on workers with free slots, preferring workers that hold their
    /// input blocks.
    /// Stops at the first task no worker has a slot for: it keeps its place at the head of the
    /// queue, so a call costs O(tasks launched), not O(tasks queued).
    pub(super) fn schedule(&mut self) {
        while let Some(task_id) = self.pending.pop_front() {
            if !self.members.has_free() {
                self.pending.push_front(task_id);
                return;
            }
            if let Launch::NoSlot = self.launch(task_id) {
                self.pending.push_front(task_id);
                return;
            }
        }
    }

    /// The descriptor of `task_id`'s current attempt: `None` when its stage or job is gone, an
    /// error when a block it reads is missing.
    pub(super) fn describe(&self, task_id: TaskId) -> Option<Result<TaskDesc, plan::Missing>> {
        let task = self.tasks.get(&task_id)?;
        let stage = self.stages.get(&task.stage)?;
        let (stage_id, partition, attempt, rdd) = (task.stage, task.partition, task.attempt, stage.rdd);
        let kind = match stage.kind {
            StageKind::Result(job) => {
                let j = self.jobs.get(&job)?;
                TaskKind::Result { action: j.action, builtin: j.builtin }
            }
            StageKind::ShuffleMap(shuffle) => TaskKind::ShuffleMap { shuffle },
        };
        let job = stage.jobs.iter().next().copied().unwrap_or(JobId(0));
        let held = plan::Held { cached: &self.cached, map_outputs: &self.map_outputs, inputs: &self.inputs };
        let isolation = task.isolation.clone();
        Some(plan::task_inputs(&self.graph, &held, rdd, partition).map(|inputs| TaskDesc {
            task: task_id,
            attempt,
            job,
            stage: stage_id,
            kind,
            rdd,
            partition,
            inputs,
            isolation,
        }))
    }

    pub(super) fn launch(&mut self, task_id: TaskId) -> Launch {
        let desc = match self.describe(task_id) {
            None => return Launch::Dropped,
            Some(Ok(desc)) => desc,
            Some(Err(plan::Missing::Input(block, batch))) => {
                let Some(task) = self.tasks.remove(&task_id) else { return Launch::Dropped };
                let attempts = task.failures + task.fetch_failures;
                self.fail_stage(task.stage, task.partition, attempts, blocks::InputBlocks::lost(block, batch));
                return Launch::Dropped;
            }
            Some(Err(plan::Missing::Shuffle)) => {
                // A shuffle output it needs is gone: the task leaves the queue and the stage
                // waits for its parent to redo the output, then queues the partition again.
                let Some(task) = self.tasks.remove(&task_id) else { return Launch::Dropped };
                if let Some(stage) = self.stages.get_mut(&task.stage) {
                    stage.active.remove(&task.partition);
                }
                self.submit_stage(task.stage);
                return Launch::Dropped;
            }
        };
        let worker = plan::choose_worker(&self.members.free(), &desc.inputs, desc.partition);
        let Some(worker) = worker else {
            return Launch::NoSlot;
        };
        self.members.started(worker, task_id, desc.attempt);
        if let Some(t) = self.tasks.get_mut(&task_id) {
            t.worker = Some(worker);
            t.launched = self.now;
        }
        self.outbox.push_back((NodeId::Worker(worker), Message::Launch(desc)));
        Launch::Sent
    }

    /// Queues the missing partitions of a stage whose parents are complete; otherwise makes sure
    /// the parents run and the stage waits for them.
    pub(super) fn submit_stage(&mut self, stage_id: StageId) {
        let Some(stage) = self.stages.get(&stage_id) else {
            return;
        };
        let (rdd, jobs) = (stage.rdd, stage.jobs.clone());
        let mut waiting = false;
        for shuffle in plan::parent_shuffles(&self.graph, &self.cached, rdd) {
            if self.shuffle_complete(shuffle) {
                continue;
            }
            waiting = true;
            let parent = self.stage_for_shuffle(shuffle);
            if let Some(p) = self.stages.get_mut(&parent) {
                p.children.insert(stage_id);
                p.jobs.extend(jobs.iter().copied());
            }
            self.submit_stage(parent);
        }
        if waiting {
            return;
        }
        let Some(stage) = self.stages.get(&stage_id) else {
            return;
        };
        let todo: Vec<u32> = stage.missing.iter().filter(|p| !stage.active.contains_key(p)).copied().collect();
        for partition in todo {
            let task_id = TaskId(self.fresh_id());
            self.tasks.insert(
                task_id,
                Task {
                    stage: stage_id,
                    partition,
                    attempt: 0,
                    failures: 0,
                    fetch_failures: 0,
                    worker: None,
                    isolation: None,
                    launched: self.now,
                    copy: None,
                    next_attempt: 1,
                },
            );
            if let Some(stage) = self.stages.get_mut(&stage_id) {
                stage.active.insert(partition, task_id);
                stage.tasks += 1;
            }
            self.pending.push_back(task_id);
        }
    }

    pub(super) fn shuffle_complete(&self, shuffle: ShuffleId) -> bool {
        self.map_outputs.get(&shuffle).is_some_and(|o| o.iter().all(Option::is_some))
    }

    pub(super) fn stage_for_shuffle(&mut self, shuffle: ShuffleId) -> StageId {
        if let Some(s) = self.shuffle_stages.get(&shuffle) {
            let s = *s;
            self.refresh_missing(s, shuffle);
            return s;
        }
        let id = StageId(self.fresh_id());
        let rdd = self
            .graph
            .shuffle(shuffle)
            .map(|s| s.map_rdd())
            .unwrap_or(RddId { scope: crate::ids::Scope::Driver, index: u32::MAX });
        self.stages.insert(
            id,
            Stage {
                rdd,
                kind: StageKind::ShuffleMap(shuffle),
                missing: BTreeSet::new(),
                active: BTreeMap::new(),
                children: BTreeSet::new(),
                jobs: BTreeSet::new(),
                tasks: 0,
                durations: Vec::new(),
            },
        );
        self.shuffle_stages.insert(shuffle, id);
        self.refresh_missing(id, shuffle);
        id
    }

    pub(super) fn refresh_missing(&mut self, stage_id: StageId, shuffle: ShuffleId) {
        let Some(stage) = self.stages.get(&stage_id) else {
            return;
        };
        let rdd = stage.rdd;
        let outputs = self.outputs_of(shuffle, rdd);
        let missing: BTreeSet<u32> =
            (0u32..).zip(outputs.iter()).filter(|(_, o)| o.is_none()).map(|(m, _)| m).collect();
        if let Some(stage) = self.stages.get_mut(&stage_id) {
            stage.missing = missing;
        }
    }

    /// Where each map partition's output of `shuffle` lives, created empty on first use;
    /// `map_rdd` is the shuffle's map-side dataset.
    pub(super) fn outputs_of(&mut self, shuffle: ShuffleId, map_rdd: RddId) -> &mut Vec<Option<WorkerId>> {
        let graph = &self.graph;
        self.map_outputs.entry(shuffle).or_insert_with(|| {
            let n = graph.rdd(map_rdd).map_or(0, |node| node.info().partitions);
            vec![None; n]
        })
    }
}

/// What became of a queued task when the scheduler looked at it.
pub(super) enum Launch {
    /// Sent to a worker.
    Sent,
    /// No worker has a free slot.
    NoSlot,
    /// Its stage or job is gone, or it waits for a parent stage again: it leaves the queue.
    Dropped,
}
