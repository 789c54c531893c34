//! Speculation: a copy of a straggling task on another worker, the first result winning.
//!
//! A task of a stage gets a copy once it has run longer than
//! `max(speculation_min_runtime, speculation_multiplier × median)`, where the median is that of
//! the stage's tasks that finished, and only once `speculation_quantile` of the stage's tasks
//! finished (a median of too few says little). A task has at most one copy. Whichever attempt
//! reports a result first completes the task; the other one's report is ignored when it comes
//! (its slot stays taken until then). A failing attempt while the other still runs is dropped,
//! and a lost worker's attempt hands the task to the other one, so a copy never costs a retry.

use std::time::Duration;

use super::{Driver, Stage, Task};
use crate::ids::{NodeId, StageId, TaskId, WorkerId};
use crate::message::Message;
use crate::time::Time;

/// A task's second attempt, running alongside the first.
#[derive(Clone, Copy, Debug)]
pub(super) struct Copy {
    pub(super) attempt: u32,
    pub(super) worker: WorkerId,
    pub(super) launched: Time,
}

/// How long a task of `stage` may run before it gets a copy, if its stage has finished enough
/// tasks for a median: `None` while fewer than `quantile` of them finished.
pub(super) fn threshold(stage: &Stage, multiplier: f64, quantile: f64, min_runtime: Duration) -> Option<Duration> {
    let done = stage.durations.len();
    if done == 0 || (done as f64) < quantile * stage.tasks as f64 {
        return None;
    }
    // `durations` is kept sorted (see `task_took`).
    let median = stage.durations[done / 2];
    Some(median.mul_f64(multiplier.max(1.0)).max(min_runtime))
}

impl Driver {
    /// The running tasks of every stage, with the moment each one gets a copy (stages with
    /// too few finished tasks have none).
    fn speculation_due(&self) -> Vec<(TaskId, Time)> {
        let c = &self.config;
        if !c.speculation {
            return Vec::new();
        }
        let mut due = Vec::new();
        for stage in self.stages.values() {
            let Some(after) =
                threshold(stage, c.speculation_multiplier, c.speculation_quantile, c.speculation_min_runtime)
            else {
                continue;
            };
            for task_id in stage.active.values() {
                let Some(task) = self.tasks.get(task_id) else { continue };
                if task.worker.is_some() && task.copy.is_none() && task.isolation.is_none() {
                    due.push((*task_id, task.launched + after));
                }
            }
        }
        due
    }

    /// When the next running task gets a copy, if one will. A task already due that no
    /// worker could take is not a timer: it gets its copy when an input frees a slot
    /// (`handle_message` speculates too), so the deadline is never in the past.
    pub(super) fn next_speculation(&self) -> Option<Time> {
        self.speculation_due().into_iter().map(|(_, at)| at).filter(|at| *at > self.now).min()
    }

    /// Launches a copy of every task due for one, each on a worker with a free slot other than
    /// its own (the one holding most of its inputs); tasks no such worker can take wait.
    pub(super) fn speculate(&mut self) {
        for (task_id, at) in self.speculation_due() {
            if at > self.now || !self.members.has_free() {
                continue;
            }
            let Some(task) = self.tasks.get(&task_id) else { continue };
            let (main, attempt) = (task.worker, task.next_attempt);
            let Some(Ok(mut desc)) = self.describe(task_id) else { continue };
            let free: Vec<(WorkerId, u32)> =
                self.members.free().into_iter().filter(|(w, _)| Some(*w) != main).collect();
            let Some(worker) = super::plan::choose_worker(&free, &desc.inputs, desc.partition) else { continue };
            desc.attempt = attempt;
            self.members.started(worker, task_id, attempt);
            if let Some(task) = self.tasks.get_mut(&task_id) {
                task.next_attempt += 1;
                task.copy = Some(Copy { attempt, worker, launched: self.now });
            }
            tracing::debug!(%task_id, attempt, %worker, "speculative copy of a straggling task");
            self.events.push_back(super::DriverEvent::Speculated { task: task_id, worker });
            self.outbox.push_back((NodeId::Worker(worker), Message::Launch(desc)));
        }
    }

    /// The attempt `attempt` of `task` on `from` reported: whether it is one the task waits
    /// for. A copy's report makes the copy the task's attempt (the other one is forgotten).
    pub(super) fn claim(task: &mut Task, from: WorkerId, attempt: u32) -> bool {
        if task.attempt == attempt && task.worker == Some(from) {
            task.copy = None;
            return true;
        }
        match task.copy {
            Some(copy) if copy.attempt == attempt && copy.worker == from => {
                task.copy = None;
                task.attempt = copy.attempt;
                task.worker = Some(copy.worker);
                task.launched = copy.launched;
                true
            }
            _ => false,
        }
    }

    /// An attempt of `task` ended without a result (failed, or its worker was lost): when the
    /// other attempt still runs, it carries on alone and this returns true.
    pub(super) fn hand_over(task: &mut Task, failed_attempt: u32) -> bool {
        let Some(copy) = task.copy.take() else { return false };
        if copy.attempt == failed_attempt {
            // The copy failed: the first attempt goes on.
            return true;
        }
        task.attempt = copy.attempt;
        task.worker = Some(copy.worker);
        task.launched = copy.launched;
        true
    }

    /// Records how long a task of `stage` took, for its stage's median: `durations` stays
    /// sorted, so the median is read, not computed, each time the timer is polled.
    pub(super) fn task_took(&mut self, stage: StageId, took: Duration) {
        if let Some(stage) = self.stages.get_mut(&stage) {
            let at = stage.durations.partition_point(|d| *d <= took);
            stage.durations.insert(at, took);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::ids::{RddId, Scope, ShuffleId};

    fn stage(tasks: usize, durations_ms: &[u64]) -> Stage {
        Stage {
            rdd: RddId { scope: Scope::Program, index: 0 },
            kind: super::super::StageKind::ShuffleMap(ShuffleId { scope: Scope::Program, index: 0 }),
            missing: BTreeSet::new(),
            active: BTreeMap::new(),
            children: BTreeSet::new(),
            jobs: BTreeSet::new(),
            tasks,
            // Sorted, as `task_took` keeps them.
            durations: {
                let mut d: Vec<Duration> = durations_ms.iter().map(|ms| Duration::from_millis(*ms)).collect();
                d.sort_unstable();
                d
            },
        }
    }

    #[test]
    fn a_copy_waits_for_the_quantile_then_for_the_multiple_of_the_median_or_the_minimum() {
        let min = Duration::from_millis(100);
        // (tasks, finished durations in ms, multiplier, quantile) -> threshold in ms
        let table: &[(usize, &[u64], f64, f64, Option<u64>)] = &[
            (4, &[], 1.4, 0.75, None),
            (4, &[500, 500], 1.4, 0.75, None),
            (4, &[500, 500, 600], 1.4, 0.75, Some(700)),
            (4, &[500, 600, 600], 1.4, 0.75, Some(840)),
            (4, &[10, 20, 30], 1.4, 0.75, Some(100)),
            (10, &[100, 200, 300, 400, 500, 600, 700, 800, 900], 3.0, 0.9, Some(1_500)),
            (10, &[100, 200, 300, 400, 500, 600, 700, 800], 3.0, 0.9, None),
            (1, &[1_000], 0.5, 0.0, Some(1_000)),
        ];
        for &(tasks, done, multiplier, quantile, want) in table {
            let got = threshold(&stage(tasks, done), multiplier, quantile, min);
            assert_eq!(got, want.map(Duration::from_millis), "{tasks} tasks, {done:?}, x{multiplier}, q{quantile}");
        }
    }
}
