//! A worker's streaming context: it runs no batches, it rebuilds the ones its tasks name (see
//! [`crate::replica`]).

use super::context::Inner;
use super::{lock, BatchCtx};
use crate::error::Error;
use crate::ids::StreamId;
use crate::replica::Replayer;
use crate::time::Time;

impl Replayer for Inner {
    fn replay(&self, stream: StreamId, time: Time, zero: Time) -> Result<(), Error> {
        let node = lock(&self.nodes).iter().find(|n| n.id() == stream).cloned();
        let node = node.ok_or(Error::UnknownStream { stream })?;
        node.generate(time, &BatchCtx { ctx: &self.ctx, zero })
    }

    fn forget_after(&self, time: Time, zero: Time) {
        // What the driver forgets when the batch at `time` completes (`run_batch`), keeping
        // what a data checkpoint due then may still read.
        let keep_from = time - *lock(&self.remember);
        lock(&self.nodes).iter().for_each(|n| n.forget_before(keep_from, Some(zero)));
    }
}
