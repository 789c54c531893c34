//! The driver's tracker of input blocks: where each replica of each input block lives, and the
//! uploads waiting for their replicas to be stored.
//!
//! An upload places every block on `input_replicas` distinct consecutive workers of the alive
//! ones in id order, starting at one its stream and group choose: a stream's blocks of one block
//! interval (one group) go to the same workers, so the task reading them finds them there, and
//! consecutive intervals and other streams start elsewhere, so the blocks spread evenly; the
//! choice is the same in every run. It completes once every replica has been acknowledged; until then the
//! blocks do not count as stored. An upload never settles for fewer copies: while fewer
//! workers are alive it waits, at most `upload_wait_max`, then fails with
//! [`Error::NotEnoughWorkers`]; a worker lost while its replica is on the way is replaced by
//! another alive worker, or the upload fails the same way.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::context::BlockUpload;
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::ids::{BlockId, JobId, NodeId, WorkerId};
use crate::message::{Message, Payload};
use crate::time::Time;

/// An upload whose replicas are not all acknowledged yet.
#[derive(Debug)]
struct Pending {
    /// Each block's data as sent (shared, not copied), for replicas sent again.
    blocks: BTreeMap<BlockId, (Payload, u64)>,
    /// Replicas sent and not acknowledged: (block, worker).
    waiting: BTreeSet<(BlockId, WorkerId)>,
    /// Replicas acknowledged: (block, worker).
    acked: BTreeSet<(BlockId, WorkerId)>,
}

/// An upload waiting for enough workers, since `since`.
#[derive(Debug)]
struct Queued {
    job: JobId,
    upload: BlockUpload,
    since: Time,
}

/// Where the replicas of input blocks live, and the uploads in progress.
#[derive(Debug, Default)]
pub(super) struct InputBlocks {
    /// The workers holding each stored input block.
    held: BTreeMap<BlockId, BTreeSet<WorkerId>>,
    pending: BTreeMap<JobId, Pending>,
    /// Uploads waiting for enough workers, in submission order.
    queued: VecDeque<Queued>,
}

/// What became of an upload.
pub(super) type Finished = (JobId, Result<(), Error>);

/// An upload that ended, with the blocks to release from every worker when it failed.
pub(super) type Ended = (Finished, Vec<BlockId>);

impl InputBlocks {
    /// The workers holding `block`, if it is an input block that is stored somewhere.
    pub(super) fn locations(&self, block: BlockId) -> Option<&BTreeSet<WorkerId>> {
        self.held.get(&block).filter(|w| !w.is_empty())
    }

    /// Every stored input block with the workers holding it, in block order.
    pub(super) fn all(&self) -> impl Iterator<Item = (BlockId, &BTreeSet<WorkerId>)> + '_ {
        self.held.iter().map(|(b, w)| (*b, w))
    }

    /// How many uploads have not ended.
    pub(super) fn in_progress(&self) -> usize {
        self.pending.len() + self.queued.len()
    }

    /// When the oldest queued upload stops waiting for workers.
    pub(super) fn next_deadline(&self, wait_max: Duration) -> Option<Time> {
        self.queued.front().map(|q| q.since + wait_max)
    }

    /// Starts `upload` as `job`, or queues it until `replicas` workers are alive.
    pub(super) fn submit(
        &mut self,
        now: Time,
        job: JobId,
        upload: BlockUpload,
        place: &mut Placement<'_>,
    ) -> Option<Finished> {
        if upload.blocks.is_empty() {
            return Some((job, Ok(())));
        }
        if place.workers.len() < place.replicas {
            self.queued.push_back(Queued { job, upload, since: now });
            return None;
        }
        self.start(job, upload, place)
    }

    /// Starts the queued uploads that enough workers can now take, in order, and fails those
    /// that waited `wait_max` for workers by `now`.
    pub(super) fn poll_queued(&mut self, now: Time, wait_max: Duration, place: &mut Placement<'_>) -> Vec<Finished> {
        let mut finished = Vec::new();
        while let Some(q) = self.queued.pop_front() {
            if place.workers.len() >= place.replicas {
                finished.extend(self.start(q.job, q.upload, place));
            } else if now >= q.since + wait_max {
                let error =
                    Error::NotEnoughWorkers { needed: place.replicas, alive: place.workers.len(), waited: wait_max };
                finished.push((q.job, Err(error)));
            } else {
                self.queued.push_front(q);
                break;
            }
        }
        finished
    }

    fn start(&mut self, job: JobId, upload: BlockUpload, place: &mut Placement<'_>) -> Option<Finished> {
        debug_assert!(place.replicas >= 1 && place.workers.len() >= place.replicas);
        let mut pending = Pending { blocks: BTreeMap::new(), waiting: BTreeSet::new(), acked: BTreeSet::new() };
        for (i, (block, payload, bytes)) in upload.blocks.into_iter().enumerate() {
            // A block is stored once, or again (restored from the input log) once no worker
            // holds it.
            debug_assert!(self.held.get(&block).is_none_or(BTreeSet::is_empty), "{block} stored twice");
            let stream = match block {
                BlockId::Input { stream, .. } => stream.0,
                _ => 0,
            };
            let first = upload.group.wrapping_add(stream).wrapping_add(i as u64) % place.workers.len() as u64;
            let data = if place.encode {
                match (upload.encode)(&payload) {
                    Ok(encoded) => encoded,
                    Err(e) => return Some((job, Err(Error::Codec(e)))),
                }
            } else {
                payload
            };
            let bytes = data.encoded_len().map_or(bytes, |n| n as u64);
            for r in 0..place.replicas {
                let worker = place.workers[(first as usize + r) % place.workers.len()];
                pending.waiting.insert((block, worker));
                place.send(worker, block, &data, bytes);
            }
            pending.blocks.insert(block, (data, bytes));
        }
        self.pending.insert(job, pending);
        None
    }

    /// A worker answered a [`Message::StoreBlock`]: records the replica, and returns the
    /// upload's end when this was its last replica or a failure.
    pub(super) fn stored(&mut self, from: WorkerId, block: BlockId, result: Result<(), TaskError>) -> Option<Ended> {
        let job = *self.pending.iter().find(|(_, p)| p.waiting.contains(&(block, from)))?.0;
        let pending = self.pending.get_mut(&job)?;
        pending.waiting.remove(&(block, from));
        match result {
            Ok(()) => {
                pending.acked.insert((block, from));
                self.held.entry(block).or_default().insert(from);
                if !pending.waiting.is_empty() {
                    return None;
                }
                self.pending.remove(&job);
                Some(((job, Ok(())), Vec::new()))
            }
            Err(cause) => Some(self.fail(job, Error::BlockNotStored { block, worker: from, cause: Box::new(cause) })),
        }
    }

    /// Ends a pending upload with `error`, forgetting what it stored.
    fn fail(&mut self, job: JobId, error: Error) -> Ended {
        let blocks: Vec<BlockId> =
            self.pending.remove(&job).map(|p| p.blocks.into_keys().collect()).unwrap_or_default();
        self.release(&blocks);
        ((job, Err(error)), blocks)
    }

    /// A lost worker holds nothing any more. Each pending upload that counted on it sends the
    /// replicas it held or was sent to other alive workers, or fails when no alive worker is
    /// left that does not have the block already.
    pub(super) fn worker_lost(&mut self, worker: WorkerId, place: &mut Placement<'_>) -> Vec<Ended> {
        for holders in self.held.values_mut() {
            holders.remove(&worker);
        }
        let mut ended = Vec::new();
        let jobs: Vec<JobId> = self.pending.keys().copied().collect();
        for job in jobs {
            let Some(pending) = self.pending.get_mut(&job) else { continue };
            let gone: Vec<BlockId> =
                pending.waiting.iter().chain(&pending.acked).filter(|(_, w)| *w == worker).map(|(b, _)| *b).collect();
            let mut short = false;
            for block in gone {
                pending.waiting.remove(&(block, worker));
                pending.acked.remove(&(block, worker));
                let has = |w: WorkerId| pending.waiting.contains(&(block, w)) || pending.acked.contains(&(block, w));
                let Some(other) = place.workers.iter().copied().find(|w| !has(*w)) else {
                    short = true;
                    break;
                };
                let Some((data, bytes)) = pending.blocks.get(&block) else { continue };
                place.send(other, block, data, *bytes);
                pending.waiting.insert((block, other));
            }
            if short {
                let error = Error::NotEnoughWorkers {
                    needed: place.replicas,
                    alive: place.workers.len(),
                    waited: Duration::ZERO,
                };
                ended.push(self.fail(job, error));
            }
        }
        ended
    }

    /// Forgets input blocks nothing reads any more.
    pub(super) fn release(&mut self, blocks: &[BlockId]) {
        for block in blocks {
            self.held.remove(block);
        }
    }

    /// A worker's store no longer holds `block`.
    pub(super) fn dropped(&mut self, block: BlockId, from: WorkerId) {
        if let Some(holders) = self.held.get_mut(&block) {
            holders.remove(&from);
        }
    }

    /// The error of a task that needs `block`, of the input batch at `batch`, when no worker
    /// holds it: the input is lost.
    pub(super) fn lost(block: BlockId, batch: Time) -> TaskError {
        TaskError::new(
            TaskErrorKind::InputLost { block, batch },
            "no worker holds a replica of this input block; it cannot be recomputed",
        )
    }
}

/// Where an upload's replicas can go.
pub(super) struct Placement<'a> {
    /// The alive workers, in id order.
    pub(super) workers: Vec<WorkerId>,
    /// Replicas per block.
    pub(super) replicas: usize,
    /// Whether to encode the blocks (workers in other processes, or the harness's wire mode).
    pub(super) encode: bool,
    pub(super) outbox: &'a mut VecDeque<(NodeId, Message)>,
}

impl Placement<'_> {
    fn send(&mut self, worker: WorkerId, block: BlockId, data: &Payload, bytes: u64) {
        self.outbox.push_back((NodeId::Worker(worker), Message::StoreBlock { block, data: data.clone(), bytes }));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::StreamId;
    use crate::message::Payload;

    fn upload(stream: u64, blocks: u32) -> BlockUpload {
        upload_in(stream, 0..blocks.into(), 0)
    }

    /// An upload of the blocks numbered `seqs` of `stream`, in `group`.
    fn upload_in(stream: u64, seqs: std::ops::Range<u64>, group: u64) -> BlockUpload {
        let blocks = seqs.map(|seq| (input(stream, seq), Payload::local(Arc::new(vec![seq])), 8)).collect();
        BlockUpload { blocks, group, encode: |p| p.encoded::<Vec<u64>>() }
    }

    fn input(stream: u64, seq: u64) -> BlockId {
        BlockId::Input { stream: StreamId(stream), seq }
    }

    fn placement(outbox: &mut VecDeque<(NodeId, Message)>, workers: u32, replicas: usize) -> Placement<'_> {
        Placement { workers: (0..workers).map(WorkerId).collect(), replicas, encode: false, outbox }
    }

    /// Replies to every StoreBlock in `outbox` with success; returns the finished uploads.
    fn ack_all(tracker: &mut InputBlocks, outbox: &mut VecDeque<(NodeId, Message)>) -> Vec<JobId> {
        let mut done = Vec::new();
        while let Some((NodeId::Worker(w), Message::StoreBlock { block, .. })) = outbox.pop_front() {
            if let Some(((job, result), _)) = tracker.stored(w, block, Ok(())) {
                result.unwrap();
                done.push(job);
            }
        }
        done
    }

    #[test]
    fn replicas_go_round_robin_to_distinct_workers_and_complete_on_the_last_ack() {
        // (workers, replicas, blocks) -> each block's holders
        let table: &[(u32, usize, u32, &[&[u32]])] = &[
            (1, 1, 2, &[&[0], &[0]]),
            (2, 2, 3, &[&[0, 1], &[0, 1], &[0, 1]]),
            (3, 2, 4, &[&[0, 1], &[1, 2], &[0, 2], &[0, 1]]),
            (4, 1, 4, &[&[0], &[1], &[2], &[3]]),
        ];
        for (workers, replicas, blocks, want) in table {
            let mut tracker = InputBlocks::default();
            let mut outbox = VecDeque::new();
            let mut place = placement(&mut outbox, *workers, *replicas);
            assert!(tracker.submit(Time::ZERO, JobId(1), upload(0, *blocks), &mut place).is_none());
            assert_eq!(outbox.len(), *blocks as usize * replicas);
            assert_eq!(ack_all(&mut tracker, &mut outbox), vec![JobId(1)]);
            for (index, holders) in want.iter().enumerate() {
                let block = input(0, index as u64);
                let got: Vec<u32> = tracker.locations(block).unwrap().iter().map(|w| w.0).collect();
                assert_eq!(&got, holders, "{workers} workers, {replicas} replicas, block {index}");
            }
        }
    }

    #[test]
    fn uploads_of_one_group_go_to_the_same_workers_and_groups_and_streams_rotate() {
        // (stream, group) -> the holders of the upload's one block, on 3 workers with 2 replicas
        let table: &[(u64, u64, &[u32])] =
            &[(0, 0, &[0, 1]), (0, 0, &[0, 1]), (0, 1, &[1, 2]), (0, 2, &[0, 2]), (1, 0, &[1, 2]), (0, 3, &[0, 1])];
        let mut tracker = InputBlocks::default();
        let mut outbox = VecDeque::new();
        for (i, &(stream, group, want)) in table.iter().enumerate() {
            let seq = i as u64;
            let job = JobId(seq);
            tracker.submit(Time::ZERO, job, upload_in(stream, seq..seq + 1, group), &mut placement(&mut outbox, 3, 2));
            assert_eq!(ack_all(&mut tracker, &mut outbox), vec![job]);
            let got: Vec<u32> = tracker.locations(input(stream, seq)).unwrap().iter().map(|w| w.0).collect();
            assert_eq!(got, want, "stream {stream}, group {group}");
        }
        tracker.release(&[input(0, 0), input(1, 4)]);
        assert!(tracker.locations(input(0, 0)).is_none() && tracker.locations(input(1, 4)).is_none());
        assert_eq!(tracker.all().count(), 4);
    }

    #[test]
    fn an_upload_waits_for_enough_workers_and_never_takes_fewer_copies() {
        let mut tracker = InputBlocks::default();
        let mut outbox = VecDeque::new();
        assert!(tracker.submit(Time::ZERO, JobId(1), upload(0, 2), &mut placement(&mut outbox, 1, 2)).is_none());
        assert!(outbox.is_empty(), "one worker cannot hold two replicas");
        let wait = Duration::from_secs(10);
        assert!(tracker.poll_queued(Time::from_millis(9_999), wait, &mut placement(&mut outbox, 1, 2)).is_empty());
        assert!(outbox.is_empty());
        assert_eq!(tracker.next_deadline(wait), Some(Time::from_millis(10_000)));
        assert!(tracker.poll_queued(Time::from_millis(5_000), wait, &mut placement(&mut outbox, 2, 2)).is_empty());
        assert_eq!(outbox.len(), 4);
        assert_eq!(ack_all(&mut tracker, &mut outbox), vec![JobId(1)]);
        assert_eq!(tracker.in_progress(), 0);
    }

    #[test]
    fn an_upload_that_waits_too_long_for_workers_fails_with_a_typed_error() {
        let mut tracker = InputBlocks::default();
        let mut outbox = VecDeque::new();
        let wait = Duration::from_secs(10);
        tracker.submit(Time::from_millis(1_000), JobId(4), upload(0, 1), &mut placement(&mut outbox, 1, 2));
        let ended = tracker.poll_queued(Time::from_millis(11_000), wait, &mut placement(&mut outbox, 1, 2));
        assert!(
            matches!(&ended[..], [(JobId(4), Err(Error::NotEnoughWorkers { needed: 2, alive: 1, .. }))]),
            "{ended:?}"
        );
        assert!(outbox.is_empty() && tracker.in_progress() == 0);
    }

    #[test]
    fn a_replica_on_a_lost_worker_goes_to_another_or_the_upload_fails() {
        let block = input(0, 0);
        // Three workers, two replicas: worker 1 is lost before it answers; worker 2 takes over.
        let mut tracker = InputBlocks::default();
        let mut outbox = VecDeque::new();
        tracker.submit(Time::ZERO, JobId(1), upload(0, 1), &mut placement(&mut outbox, 3, 2));
        outbox.clear();
        assert!(tracker.stored(WorkerId(0), block, Ok(())).is_none());
        let mut place =
            Placement { workers: vec![WorkerId(0), WorkerId(2)], replicas: 2, encode: false, outbox: &mut outbox };
        assert!(tracker.worker_lost(WorkerId(1), &mut place).is_empty());
        assert!(
            matches!(outbox.front(), Some((NodeId::Worker(WorkerId(2)), Message::StoreBlock { .. }))),
            "{outbox:?}"
        );
        assert_eq!(ack_all(&mut tracker, &mut outbox), vec![JobId(1)]);
        let holders: Vec<u32> = tracker.locations(block).unwrap().iter().map(|w| w.0).collect();
        assert_eq!(holders, vec![0, 2]);

        // Two workers, two replicas: no one is left to take the lost worker's replica.
        let mut tracker = InputBlocks::default();
        tracker.submit(Time::ZERO, JobId(2), upload(0, 1), &mut placement(&mut outbox, 2, 2));
        outbox.clear();
        let mut place = Placement { workers: vec![WorkerId(0)], replicas: 2, encode: false, outbox: &mut outbox };
        let ended = tracker.worker_lost(WorkerId(1), &mut place);
        assert!(matches!(&ended[..], [((JobId(2), Err(Error::NotEnoughWorkers { .. })), _)]), "{ended:?}");
        assert_eq!(tracker.in_progress(), 0);
    }

    #[test]
    fn a_refused_replica_fails_the_upload_and_releases_its_blocks() {
        let mut tracker = InputBlocks::default();
        let mut outbox = VecDeque::new();
        tracker.submit(Time::ZERO, JobId(1), upload(3, 1), &mut placement(&mut outbox, 2, 2));
        let block = input(3, 0);
        assert!(tracker.stored(WorkerId(0), block, Ok(())).is_none());
        let full = TaskError::new(TaskErrorKind::Source, "full");
        let ((job, result), released) = tracker.stored(WorkerId(1), block, Err(full)).unwrap();
        assert_eq!(job, JobId(1));
        assert!(matches!(result, Err(Error::BlockNotStored { worker: WorkerId(1), .. })), "{result:?}");
        assert_eq!(released, vec![block]);
        assert!(tracker.locations(block).is_none());
        assert!(tracker.stored(WorkerId(1), block, Ok(())).is_none(), "a late ack changes nothing");
    }
}
