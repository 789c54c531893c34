//! The in-process transport: one crossbeam channel per cluster member.

use std::sync::Arc;

use crossbeam_channel::Sender;
use dstream::transport::{Transport, TransportError};
use dstream::{Message, NodeId};

use crate::cluster::Input;

/// The inboxes of every member of one in-process cluster.
#[derive(Debug)]
pub(crate) struct Inboxes {
    pub(crate) driver: Sender<Input>,
    pub(crate) workers: Vec<Sender<Input>>,
}

impl Inboxes {
    pub(crate) fn of(&self, node: NodeId) -> Option<&Sender<Input>> {
        match node {
            NodeId::Driver => Some(&self.driver),
            NodeId::Worker(w) => self.workers.get(w.0 as usize),
        }
    }
}

/// Sends messages to the other members of an in-process cluster by channel. Messages are
/// moved, not serialized: payloads stay shared pointers.
#[derive(Debug, Clone)]
pub struct InProcTransport {
    local: NodeId,
    inboxes: Arc<Inboxes>,
}

impl InProcTransport {
    pub(crate) fn new(local: NodeId, inboxes: Arc<Inboxes>) -> InProcTransport {
        InProcTransport { local, inboxes }
    }
}

impl Transport for InProcTransport {
    fn local(&self) -> NodeId {
        self.local
    }

    fn send(&self, to: NodeId, msg: Message) -> Result<(), TransportError> {
        let inbox = self.inboxes.of(to).ok_or(TransportError::Unreachable(to))?;
        inbox.send(Input::Net { from: self.local, msg }).map_err(|_| TransportError::Unreachable(to))
    }
}
