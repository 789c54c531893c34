//! The driver's announcements of input batches to workers with graphs of their own: such a
//! worker rebuilds a batch's datasets itself, and needs to know how many blocks each input
//! batch has (its own input streams receive nothing).

use std::collections::{BTreeSet, VecDeque};

use crate::ids::{ActionId, NodeId, StreamId, WorkerId};
use crate::message::{Message, Payload};
use crate::replica::BatchFacts;
use crate::time::Time;

/// The input batches a worker may still be asked to rebuild, and who needs to hear of them.
#[derive(Debug, Default)]
pub(super) struct Announcements {
    /// Workers that registered with a program of their own (any incarnation).
    own_graphs: BTreeSet<WorkerId>,
    /// What they are told, kept for workers that register later.
    facts: BatchFacts,
}

impl Announcements {
    /// Announces a new input batch to every worker with a graph of its own among `alive`.
    pub(super) fn input_batch(
        &mut self,
        (stream, time, zero): (StreamId, Time, Time),
        blocks: u32,
        alive: impl Iterator<Item = WorkerId>,
        outbox: &mut VecDeque<(NodeId, Message)>,
    ) {
        self.facts.inputs.insert((stream, time), (zero, blocks));
        for w in alive.filter(|w| self.own_graphs.contains(w)) {
            outbox.push_back((NodeId::Worker(w), Message::InputBatch { stream, time, zero, blocks }));
        }
    }

    /// Sends the results of a job run inside a batch's computation to every worker with a
    /// graph of its own among `alive`: their runs of the computation take it.
    pub(super) fn action_result(
        &mut self,
        action: ActionId,
        results: &[Payload],
        alive: impl Iterator<Item = WorkerId>,
        outbox: &mut VecDeque<(NodeId, Message)>,
    ) {
        if self.own_graphs.is_empty() {
            // Only workers with graphs of their own need these; one that registers later hears
            // of the batch's jobs only if it registers before they run.
            return;
        }
        self.facts.results.insert(action, results.to_vec());
        for w in alive.filter(|w| self.own_graphs.contains(w)) {
            outbox.push_back((NodeId::Worker(w), Message::ActionResult { action, results: results.to_vec() }));
        }
    }

    /// A worker registered: one with its own graph hears of every input batch still kept.
    pub(super) fn registered(&mut self, worker: WorkerId, own_graph: bool, outbox: &mut VecDeque<(NodeId, Message)>) {
        if !own_graph {
            self.own_graphs.remove(&worker);
            return;
        }
        self.own_graphs.insert(worker);
        outbox.extend(self.facts.messages().map(|m| (NodeId::Worker(worker), m)));
    }

    /// Input batches whose blocks were released: no task reads them any more.
    pub(super) fn release(&mut self, inputs: &[(StreamId, Time)]) {
        self.facts.release(inputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(outbox: &mut VecDeque<(NodeId, Message)>) -> Vec<(NodeId, StreamId, Time, u32)> {
        outbox
            .drain(..)
            .map(|(to, m)| match m {
                Message::InputBatch { stream, time, blocks, .. } => (to, stream, time, blocks),
                other => panic!("unexpected {}", other.kind()),
            })
            .collect()
    }

    #[test]
    fn only_workers_with_their_own_graph_hear_and_late_ones_catch_up() {
        let mut a = Announcements::default();
        let mut outbox = VecDeque::new();
        let (s, t1, t2) = (StreamId(0), Time::from_millis(1_000), Time::from_millis(2_000));
        // Nobody has a graph of its own: the batch is kept, nothing is sent.
        a.registered(WorkerId(0), false, &mut outbox);
        a.input_batch((s, t1, Time::ZERO), 3, [WorkerId(0)].into_iter(), &mut outbox);
        assert_eq!((a.facts.inputs.len(), outbox.len()), (1, 0));
        a.registered(WorkerId(1), true, &mut outbox);
        assert_eq!(sent(&mut outbox), vec![(NodeId::Worker(WorkerId(1)), s, t1, 3)]);
        a.input_batch((s, t2, Time::ZERO), 2, [WorkerId(0), WorkerId(1)].into_iter(), &mut outbox);
        assert_eq!(sent(&mut outbox), vec![(NodeId::Worker(WorkerId(1)), s, t2, 2)]);
        a.release(&[(s, t1)]);
        a.registered(WorkerId(2), true, &mut outbox);
        assert_eq!(sent(&mut outbox), vec![(NodeId::Worker(WorkerId(2)), s, t2, 2)]);
        a.release(&[(s, t2)]);
        assert_eq!(a.facts.inputs.len(), 0);
        a.registered(WorkerId(3), true, &mut outbox);
        assert!(outbox.is_empty());
    }
}
