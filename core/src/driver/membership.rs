//! Membership: the workers the driver knows and, for each, its incarnation, when the driver
//! last heard from it, its slots, the task attempts running on it and whether it is alive or
//! lost.
//!
//! A worker is known by its [`WorkerId`]; each run of its process has an incarnation, and a
//! newer incarnation replaces an older one. A lost incarnation stays recorded, so that its late
//! messages (and those of any older incarnation) are recognised and ignored; the worker comes
//! back only as a newer incarnation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::ids::{TaskId, WorkerId};
use crate::time::Time;

/// Why the driver reported a worker lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// Nothing was heard from the worker for [`crate::DriverConfig::heartbeat_timeout`].
    Timeout {
        /// How long it had been silent when it was reported lost.
        silent_for: Duration,
    },
    /// The runtime reported the connection to the worker gone
    /// ([`crate::Driver::handle_peer_lost`], the transport's `PeerLost`).
    PeerLost,
    /// A newer incarnation of the worker registered: the old process is gone.
    Replaced {
        /// The incarnation that registered.
        by: u64,
    },
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LossReason::Timeout { silent_for } => write!(f, "silent for {silent_for:?}"),
            LossReason::PeerLost => f.write_str("its connection is gone"),
            LossReason::Replaced { by } => write!(f, "replaced by incarnation {by}"),
        }
    }
}

/// Whether a member takes part in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Registered and heard from within the timeout: it receives tasks.
    Alive,
    /// Reported lost: it receives nothing, and its messages are ignored.
    Lost(LossReason),
}

/// One worker, as the driver sees its current incarnation.
#[derive(Debug)]
struct Member {
    incarnation: u64,
    /// When the driver last received a message of this incarnation.
    last_heard: Time,
    slots: u32,
    /// Task attempts launched on it and not yet reported back (including attempts of tasks the
    /// driver has since dropped: they still occupy a slot until they report).
    running: BTreeSet<(TaskId, u32)>,
    state: State,
}

/// What became of a registration.
#[derive(Debug)]
pub(super) enum Registration {
    /// A worker the driver did not know.
    New,
    /// The incarnation already registered and alive registered again.
    Again,
    /// A newer incarnation replaced an alive one, which is now lost.
    Replaced(Lost),
    /// A newer incarnation of a worker already lost.
    Returned,
    /// An incarnation older than the registered one, or the registered one after it was lost:
    /// ignored.
    Stale {
        /// The incarnation the driver knows.
        known: u64,
    },
}

/// An incarnation that was just reported lost.
#[derive(Debug)]
pub(super) struct Lost {
    /// The incarnation.
    pub(super) incarnation: u64,
    /// The task attempts that were running on it.
    pub(super) running: BTreeSet<(TaskId, u32)>,
}

/// The workers known to the driver. See the [module documentation](self).
#[derive(Debug)]
pub(super) struct Membership {
    members: BTreeMap<WorkerId, Member>,
    timeout: Duration,
}

impl Membership {
    /// An empty membership whose workers are lost after `timeout` of silence.
    pub(super) fn new(timeout: Duration) -> Membership {
        Membership { members: BTreeMap::new(), timeout }
    }

    /// Registers `incarnation` of `worker` with `slots` (at least 1).
    pub(super) fn register(&mut self, now: Time, worker: WorkerId, incarnation: u64, slots: u32) -> Registration {
        let fresh =
            Member { incarnation, last_heard: now, slots: slots.max(1), running: BTreeSet::new(), state: State::Alive };
        let Some(member) = self.members.get_mut(&worker) else {
            self.members.insert(worker, fresh);
            return Registration::New;
        };
        if incarnation < member.incarnation || (incarnation == member.incarnation && member.state != State::Alive) {
            return Registration::Stale { known: member.incarnation };
        }
        if incarnation == member.incarnation {
            member.last_heard = now;
            return Registration::Again;
        }
        let old = std::mem::replace(member, fresh);
        match old.state {
            State::Alive => Registration::Replaced(Lost { incarnation: old.incarnation, running: old.running }),
            State::Lost(_) => Registration::Returned,
        }
    }

    /// Records a message of `incarnation` from `worker` at `now`, if it comes from the alive,
    /// registered incarnation. Otherwise the message is to be ignored, and the error is the
    /// incarnation the driver knows (`None`: the worker never registered).
    pub(super) fn hear(&mut self, now: Time, worker: WorkerId, incarnation: u64) -> Result<(), Option<u64>> {
        match self.members.get_mut(&worker) {
            Some(m) if m.incarnation == incarnation && m.state == State::Alive => {
                m.last_heard = now;
                Ok(())
            }
            Some(m) => Err(Some(m.incarnation)),
            None => Err(None),
        }
    }

    /// Reports the alive incarnation of `worker` lost. Returns it with the attempts it ran, or
    /// `None` if the worker is unknown or already lost.
    pub(super) fn lose(&mut self, worker: WorkerId, reason: LossReason) -> Option<Lost> {
        let m = self.members.get_mut(&worker).filter(|m| m.state == State::Alive)?;
        m.state = State::Lost(reason);
        Some(Lost { incarnation: m.incarnation, running: std::mem::take(&mut m.running) })
    }

    /// When the first alive worker falls silent for the timeout, if nothing is heard from it
    /// before.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.members.values().filter(|m| m.state == State::Alive).map(|m| m.last_heard + self.timeout).min()
    }

    /// The alive workers silent for the timeout at `now`, with how long they have been silent.
    pub(super) fn expired(&self, now: Time) -> Vec<(WorkerId, Duration)> {
        self.members
            .iter()
            .filter(|(_, m)| m.state == State::Alive && m.last_heard + self.timeout <= now)
            .map(|(w, m)| (*w, now - m.last_heard))
            .collect()
    }

    /// The alive workers, in id order.
    pub(super) fn alive(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.members.iter().filter(|(_, m)| m.state == State::Alive).map(|(w, _)| *w)
    }

    /// Whether `worker` is registered and alive.
    pub(super) fn is_alive(&self, worker: WorkerId) -> bool {
        self.members.get(&worker).is_some_and(|m| m.state == State::Alive)
    }

    /// The registered incarnation of `worker` and whether it is alive.
    pub(super) fn incarnation(&self, worker: WorkerId) -> Option<(u64, bool)> {
        self.members.get(&worker).map(|m| (m.incarnation, m.state == State::Alive))
    }

    /// Alive workers with a free slot and how many they have, in id order.
    pub(super) fn free(&self) -> Vec<(WorkerId, u32)> {
        self.members
            .iter()
            .filter(|(_, m)| m.state == State::Alive && (m.running.len() as u64) < u64::from(m.slots))
            .map(|(w, m)| (*w, m.slots - m.running.len() as u32))
            .collect()
    }

    /// Whether some alive worker has a free slot.
    pub(super) fn has_free(&self) -> bool {
        self.members.values().any(|m| m.state == State::Alive && (m.running.len() as u64) < u64::from(m.slots))
    }

    /// Records `attempt` of `task` launched on `worker`, which must be alive with a free slot.
    pub(super) fn started(&mut self, worker: WorkerId, task: TaskId, attempt: u32) {
        let m = self.members.get_mut(&worker);
        debug_assert!(m.as_ref().is_some_and(|m| m.state == State::Alive), "{task} launched on {worker}, not alive");
        if let Some(m) = m {
            let new = m.running.insert((task, attempt));
            debug_assert!(new, "{task} attempt {attempt} launched twice on {worker}");
        }
    }

    /// Records `attempt` of `task` reported back by `worker`: its slot is free again.
    pub(super) fn ended(&mut self, worker: WorkerId, task: TaskId, attempt: u32) {
        if let Some(m) = self.members.get_mut(&worker) {
            m.running.remove(&(task, attempt));
        }
    }

    /// Whether `attempt` of `task` runs on `worker` and `worker` is alive.
    pub(super) fn runs(&self, worker: WorkerId, task: TaskId, attempt: u32) -> bool {
        self.members.get(&worker).is_some_and(|m| m.state == State::Alive && m.running.contains(&(task, attempt)))
    }

    /// Task attempts launched on alive workers and not reported back.
    pub(super) fn running(&self) -> usize {
        self.members.values().map(|m| m.running.len()).sum()
    }

    /// Checks the invariants of every member (debug builds): a lost member runs nothing; an
    /// alive one runs at most its slots.
    pub(super) fn check(&self) {
        for (w, m) in &self.members {
            match m.state {
                State::Lost(_) => debug_assert!(m.running.is_empty(), "lost {w} still runs {:?}", m.running),
                State::Alive => debug_assert!(
                    m.running.len() as u64 <= u64::from(m.slots),
                    "{w} runs {} attempts on {} slots",
                    m.running.len(),
                    m.slots
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[test]
    fn incarnations_replace_older_ones_and_lost_ones_stay_out() {
        let mut m = Membership::new(TIMEOUT);
        let w = WorkerId(3);
        assert!(matches!(m.register(Time::ZERO, w, 5, 2), Registration::New));
        assert!(matches!(m.register(Time::ZERO, w, 5, 2), Registration::Again));
        assert!(matches!(m.register(Time::ZERO, w, 4, 2), Registration::Stale { known: 5 }));
        m.started(w, TaskId(1), 0);
        assert_eq!(m.free(), vec![(w, 1)]);
        let Registration::Replaced(lost) = m.register(Time::ZERO, w, 6, 2) else { panic!("not replaced") };
        assert_eq!((lost.incarnation, lost.running.len()), (5, 1));
        assert_eq!(m.hear(Time::ZERO, w, 5), Err(Some(6)));
        assert!(m.lose(w, LossReason::PeerLost).is_some());
        assert!(m.lose(w, LossReason::PeerLost).is_none(), "lost once");
        assert_eq!(m.hear(Time::ZERO, w, 6), Err(Some(6)));
        assert!(matches!(m.register(Time::ZERO, w, 6, 2), Registration::Stale { known: 6 }));
        assert!(matches!(m.register(Time::ZERO, w, 7, 2), Registration::Returned));
        assert!(m.is_alive(w));
        m.check();
    }

    #[test]
    fn a_silent_worker_expires_at_the_timeout() {
        let mut m = Membership::new(TIMEOUT);
        let (a, b) = (WorkerId(0), WorkerId(1));
        m.register(Time::ZERO, a, 0, 1);
        m.register(Time::from_millis(300), b, 0, 1);
        assert_eq!(m.next_deadline(), Some(Time::from_millis(1000)));
        assert!(m.hear(Time::from_millis(500), a, 0).is_ok());
        assert_eq!(m.next_deadline(), Some(Time::from_millis(1300)));
        assert!(m.expired(Time::from_millis(1299)).is_empty());
        assert_eq!(m.expired(Time::from_millis(1300)), vec![(b, TIMEOUT)]);
    }
}
