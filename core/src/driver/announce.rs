//! The driver's announcements to workers with graphs of their own: what such a worker needs to
//! rebuild batches as the driver made them ([`Fact`]), sent to every one of them and kept, as
//! long as it can matter, for those that register later.

use std::collections::{BTreeSet, VecDeque};

use crate::ids::{NodeId, StreamId, WorkerId};
use crate::message::{Fact, Message};
use crate::replica::BatchFacts;
use crate::time::Time;

/// Who needs to hear the facts, and what is kept of them.
#[derive(Debug, Default)]
pub(super) struct Announcements {
    /// Workers that registered with a program of their own (any incarnation).
    own_graphs: BTreeSet<WorkerId>,
    /// What they were told, kept for workers that register later.
    facts: BatchFacts,
}

impl Announcements {
    /// Tells `fact` to every worker with a graph of its own among `alive`, and keeps it.
    pub(super) fn tell(
        &mut self,
        fact: Fact,
        alive: impl Iterator<Item = WorkerId>,
        outbox: &mut VecDeque<(NodeId, Message)>,
    ) {
        if matches!(fact, Fact::JobResult { .. }) && self.own_graphs.is_empty() {
            // Results are all a shared graph has; a worker that registers later hears of the
            // jobs of a batch only if it registers before they run.
            return;
        }
        self.facts.record(&fact);
        for w in alive.filter(|w| self.own_graphs.contains(w)) {
            outbox.push_back((NodeId::Worker(w), Message::Replay(fact.clone())));
        }
    }

    /// A worker registered: one with its own graph hears everything still kept.
    pub(super) fn registered(&mut self, worker: WorkerId, own_graph: bool, outbox: &mut VecDeque<(NodeId, Message)>) {
        if !own_graph {
            self.own_graphs.remove(&worker);
            return;
        }
        self.own_graphs.insert(worker);
        outbox.extend(self.facts.facts().into_iter().map(|f| (NodeId::Worker(worker), Message::Replay(f))));
    }

    /// Input batches whose blocks were released: no task reads them any more.
    pub(super) fn release(&mut self, inputs: &[(StreamId, Time)]) {
        self.facts.release(inputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BlockId;

    fn sent(outbox: &mut VecDeque<(NodeId, Message)>) -> Vec<(NodeId, StreamId, Time, usize)> {
        outbox
            .drain(..)
            .map(|(to, m)| match m {
                Message::Replay(Fact::InputBatch { stream, time, partitions, .. }) => {
                    (to, stream, time, partitions.len())
                }
                other => panic!("unexpected {}", other.kind()),
            })
            .collect()
    }

    fn input(stream: StreamId, time: Time, partitions: u64) -> Fact {
        let partitions = (0..partitions).map(|seq| vec![BlockId::Input { stream, seq }]).collect();
        Fact::InputBatch { stream, time, zero: Time::ZERO, partitions }
    }

    #[test]
    fn only_workers_with_their_own_graph_hear_and_late_ones_catch_up() {
        let mut a = Announcements::default();
        let mut outbox = VecDeque::new();
        let (s, t1, t2) = (StreamId(0), Time::from_millis(1_000), Time::from_millis(2_000));
        // Nobody has a graph of its own: the batch is kept, nothing is sent.
        a.registered(WorkerId(0), false, &mut outbox);
        a.tell(input(s, t1, 3), [WorkerId(0)].into_iter(), &mut outbox);
        assert_eq!((a.facts.inputs.len(), outbox.len()), (1, 0));
        a.registered(WorkerId(1), true, &mut outbox);
        assert_eq!(sent(&mut outbox), vec![(NodeId::Worker(WorkerId(1)), s, t1, 3)]);
        a.tell(input(s, t2, 2), [WorkerId(0), WorkerId(1)].into_iter(), &mut outbox);
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
