//! A worker's streaming context: it runs no batches; it rebuilds the ones its tasks name, and
//! applies what the driver tells it (restored checkpoints, cuts), see [`crate::replica`].

use std::sync::Arc;

use super::checkpoint::{Checkpointer, StateCheckpoint};
use super::context::Inner;
use super::{lock, BatchCtx, StreamNodeDyn};
use crate::error::Error;
use crate::graph::{ActionNode, Node};
use crate::ids::StreamId;
use crate::replica::{CheckpointFact, CutFact, Replayer};
use crate::time::Time;

impl Inner {
    fn node(&self, stream: StreamId) -> Result<Arc<dyn StreamNodeDyn>, Error> {
        let node = lock(&self.nodes).iter().find(|n| n.id() == stream).cloned();
        node.ok_or(Error::UnknownStream { stream })
    }

    fn worker_checkpointer(&self) -> Result<&Arc<Checkpointer>, Error> {
        self.checkpointer
            .get()
            .ok_or(Error::NotReplayable("the worker's program does not checkpoint (build it with get_or_create)"))
    }
}

impl Replayer for Inner {
    fn replay(&self, stream: StreamId, time: Time, zero: Time) -> Result<(), Error> {
        self.node(stream)?.generate(time, &BatchCtx { ctx: &self.ctx, zero })
    }

    fn completed(&self, time: Time, keep_from: Time, checkpoint_zero: Option<Time>, zero: Time) {
        let b = BatchCtx { ctx: &self.ctx, zero };
        let streams: Vec<StreamId> = lock(&self.outputs).iter().map(|op| op.stream).collect();
        for stream in streams {
            if let Err(e) = self.node(stream).and_then(|n| n.generate(time, &b)) {
                // A task naming what it would have made fails with the same cause.
                tracing::warn!(%stream, %time, error = %e, "a worker cannot generate a completed batch");
            }
        }
        lock(&self.nodes).iter().for_each(|n| n.forget_before(keep_from, checkpoint_zero));
    }

    fn checkpoint(&self, c: &CheckpointFact, restored: bool) -> Result<Arc<dyn Node>, Error> {
        let ck = self.worker_checkpointer()?;
        let state = StateCheckpoint { stream: c.stream.0, time: c.time, partitions: c.partitions, hashed: c.hashed };
        Ok(self.node(c.stream)?.checkpoint_read(&self.ctx, ck, &state, restored))
    }

    fn checkpoint_write(&self, stream: StreamId, time: Time, zero: Time) -> Result<Arc<dyn ActionNode>, Error> {
        let ck = self.worker_checkpointer()?;
        let node = self.node(stream)?;
        if node.dataset_at(time).is_none() {
            node.generate(time, &BatchCtx { ctx: &self.ctx, zero })?;
        }
        let dataset = node.dataset_at(time).ok_or(Error::NotReplayable("the stream has no dataset at that batch"))?;
        Ok(dataset.write_action(&ck.target(stream, time)))
    }

    fn cut(&self, c: &CutFact) -> Result<(), Error> {
        let ck = self.worker_checkpointer()?;
        let node = self.node(c.stream)?;
        let target = ck.target(c.stream, c.time);
        match node.dataset_at(c.time) {
            Some(dataset) => dataset.cut(&target),
            None => node.install_cut(&self.ctx, c, target),
        }
        Ok(())
    }
}
