//! The seam between the state machines and the network: a [`Transport`] sends messages to
//! peers; what arrives, and peers coming and going, reach the runtime as [`TransportEvent`]s.

use crate::ids::NodeId;
use crate::message::Message;

/// Sends messages to the other members of the cluster. Transports route and serialize
/// messages but never interpret them.
pub trait Transport: Send + Sync {
    /// The member this transport sends from.
    fn local(&self) -> NodeId;
    /// Queues `msg` for `to`. Delivery is in order per pair of members; a peer that is gone is
    /// reported as an error here and as [`TransportEvent::PeerLost`] to the receiver's runtime.
    fn send(&self, to: NodeId, msg: Message) -> Result<(), TransportError>;
}

/// Something that happened on the network, as seen by one member.
#[derive(Debug)]
pub enum TransportEvent {
    /// A message arrived.
    Message {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: Message,
    },
    /// A peer's connection closed or it stopped answering.
    PeerLost(NodeId),
}

/// A message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer is not (or no longer) reachable.
    #[error("peer {0} is unreachable")]
    Unreachable(NodeId),
    /// The message could not be encoded for the wire.
    #[error("cannot encode a message for {to}: {reason}")]
    Encode {
        /// The intended receiver.
        to: NodeId,
        /// Why.
        reason: String,
    },
}
