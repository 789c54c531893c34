//! A worker process's loop: [`Worker`] over the transport, its tasks on a rayon pool.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use dstream::transport::{Transport, TransportError};
use dstream::{Clock, NodeId, SystemClock, Worker};

use super::{wait, Input, Wait};
use crate::transport::TcpTransport;

/// Why a worker stopped serving.
#[derive(Debug)]
pub(crate) enum WorkerExit {
    /// The driver's connection is gone: the job is over (or the driver died).
    DriverGone,
    /// The driver refused the worker.
    Refused(String),
}

/// Serves until the driver goes away or refuses this worker.
pub(crate) fn serve(
    mut worker: Worker,
    inbox: Receiver<Input>,
    own: Sender<Input>,
    transport: Arc<TcpTransport>,
    pool: Arc<rayon::ThreadPool>,
    clock: SystemClock,
) -> WorkerExit {
    loop {
        while let Some((to, msg)) = worker.poll_transmit() {
            match transport.send(to, msg) {
                Ok(()) => {}
                Err(TransportError::Unreachable(NodeId::Worker(peer))) => worker.handle_peer_lost(clock.now(), peer),
                Err(TransportError::Unreachable(NodeId::Driver)) => return WorkerExit::DriverGone,
                Err(e) => tracing::warn!(%e, worker = %worker.id(), "the worker could not send"),
            }
        }
        if let Some(reason) = worker.refused() {
            return WorkerExit::Refused(reason.to_string());
        }
        while let Some(task) = worker.poll_task() {
            let own = own.clone();
            pool.spawn(move || {
                // The worker may have stopped; then the result is not needed.
                let _ = own.send(Input::Done(task.run()));
            });
        }
        let input = match wait(&inbox, worker.poll_timeout(), &clock) {
            Wait::Input(input) => Some(input),
            Wait::Deadline => None,
            // `own` is a sender: the inbox cannot close while this loop runs.
            Wait::Closed => return WorkerExit::DriverGone,
        };
        let now = clock.now();
        match input {
            Some(Input::Net { from, msg }) => worker.handle_message(now, from, msg),
            Some(Input::Done(done)) => worker.handle_task_done(now, done),
            Some(Input::PeerLost(NodeId::Worker(peer))) => worker.handle_peer_lost(now, peer),
            Some(Input::PeerLost(NodeId::Driver)) | Some(Input::Stop) => return WorkerExit::DriverGone,
            Some(other) => tracing::warn!(?other, "a worker ignores an unexpected input"),
            None => {}
        }
        if worker.poll_timeout().is_some_and(|t| now >= t) {
            worker.handle_timeout(now);
        }
    }
}
