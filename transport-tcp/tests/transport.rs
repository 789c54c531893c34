//! `TcpTransport` over loopback connections: messages both ways, chunked ones, lost peers.
#![forbid(unsafe_code)] // dstream-tcp only denies it, for its `pod` module.
#![allow(clippy::unwrap_used)] // Integration tests are test code.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dstream::transport::{Transport, TransportError, TransportEvent};
use dstream::{BlockId, Message, NodeId, Payload, RddId};
use dstream_tcp::{TcpTransport, TransportConfig, TransportEvents};
use tokio::runtime::Handle;

fn transport_config() -> TransportConfig {
    TransportConfig { wire: WIRE, ..TransportConfig::default() }
}

fn transport(node: NodeId, config: TransportConfig) -> (TcpTransport, TransportEvents) {
    TcpTransport::new(node, Handle::current(), config)
}

async fn next_event(events: &mut TransportEvents) -> TransportEvent {
    bounded(events.recv()).await.expect("the transport is gone")
}

/// A driver transport and a worker transport connected to each other.
async fn connected(
    worker_id: u32,
    config: TransportConfig,
) -> (TcpTransport, TransportEvents, TcpTransport, TransportEvents) {
    let mut listener = driver_listener().await;
    let (worker_side, driver_side) = pair(&mut listener, config_of(worker(worker_id))).await;
    let (driver, driver_events) = transport(NodeId::Driver, config);
    let (worker_t, worker_events) = transport(worker(worker_id), config);
    driver.add(driver_side);
    worker_t.add(worker_side);
    (driver, driver_events, worker_t, worker_events)
}

fn config_of(node: NodeId) -> dstream_tcp::HandshakeConfig {
    config(node, SECRET)
}

#[tokio::test]
async fn messages_both_ways_and_a_chunked_one() {
    let (driver, mut driver_events, worker_t, mut worker_events) = connected(1, transport_config()).await;
    assert_eq!(driver.peers(), [worker(1)]);
    assert_eq!(worker_t.local(), worker(1));

    worker_t.send(NodeId::Driver, Message::Heartbeat { incarnation: 7 }).unwrap();
    match next_event(&mut driver_events).await {
        TransportEvent::Message { from, msg: Message::Heartbeat { incarnation: 7 } } => assert_eq!(from, worker(1)),
        other => panic!("{other:?}"),
    }

    let block = BlockId::Rdd { rdd: RddId::program(0), partition: 0 };
    let data = Payload::Encoded(vec![5u8; 10 * WIRE.frame_bytes_max].into());
    driver.send(worker(1), Message::StoreBlock { block, data, bytes: 1 }).unwrap();
    driver.send(worker(1), Message::Registered).unwrap();
    match next_event(&mut worker_events).await {
        TransportEvent::Message { from: NodeId::Driver, msg: Message::StoreBlock { data, .. } } => {
            assert_eq!(data.encoded_len(), Some(10 * WIRE.frame_bytes_max))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        next_event(&mut worker_events).await,
        TransportEvent::Message { from: NodeId::Driver, msg: Message::Registered }
    ));
}

#[tokio::test]
async fn send_errors_are_typed() {
    let (driver, _driver_events, _worker, _worker_events) = connected(1, transport_config()).await;
    assert_eq!(driver.send(worker(2), Message::Registered), Err(TransportError::Unreachable(worker(2))));
    let local = Message::StoreBlock {
        block: BlockId::Rdd { rdd: RddId::program(0), partition: 0 },
        data: Payload::local(Arc::new(1u8)),
        bytes: 1,
    };
    assert!(matches!(driver.send(worker(1), local), Err(TransportError::Encode { to, .. }) if to == worker(1)));
}

#[tokio::test]
async fn a_closed_connection_is_a_lost_peer_reported_once() {
    let (driver, mut driver_events, worker_t, _worker_events) = connected(1, transport_config()).await;
    drop(worker_t);
    assert!(matches!(next_event(&mut driver_events).await, TransportEvent::PeerLost(w) if w == worker(1)));
    assert!(driver.peers().is_empty());
    assert_eq!(driver.send(worker(1), Message::Registered), Err(TransportError::Unreachable(worker(1))));
    // The transport's own handle is the only sender left: dropping it ends the events.
    drop(driver);
    assert!(bounded(driver_events.recv()).await.is_none(), "no second PeerLost");
}

#[tokio::test]
async fn a_silent_peer_is_lost() {
    let mut listener = driver_listener().await;
    // The worker side is a bare connection: it sends no heartbeats.
    let (_silent, driver_side) = pair(&mut listener, config_of(worker(4))).await;
    let config = TransportConfig { peer_silence_max: Duration::from_millis(150), ..transport_config() };
    let (driver, mut events) = transport(NodeId::Driver, config);
    driver.add(driver_side);
    assert!(matches!(next_event(&mut events).await, TransportEvent::PeerLost(w) if w == worker(4)));
    assert!(driver.peers().is_empty());
}

#[tokio::test]
async fn heartbeats_keep_an_idle_peer() {
    let config = TransportConfig {
        heartbeat_interval: Duration::from_millis(20),
        peer_silence_max: Duration::from_millis(200),
        ..transport_config()
    };
    let (driver, mut driver_events, worker_t, _worker_events) = connected(1, config).await;
    // Three times the silence bound with nothing but heartbeats: no event.
    let quiet = tokio::time::timeout(Duration::from_millis(600), driver_events.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    assert_eq!(driver.peers(), [worker(1)]);
    worker_t.send(NodeId::Driver, Message::Registered).unwrap();
    assert!(matches!(next_event(&mut driver_events).await, TransportEvent::Message { .. }));
}

#[tokio::test]
async fn a_new_connection_from_a_node_replaces_the_old_one() {
    let mut listener = driver_listener().await;
    let (old_worker_side, old_driver_side) = pair(&mut listener, config_of(worker(1))).await;
    let (driver, mut driver_events) = transport(NodeId::Driver, transport_config());
    let (old_worker, mut old_worker_events) = transport(worker(1), transport_config());
    driver.add(old_driver_side);
    old_worker.add(old_worker_side);

    let (new_worker_side, new_driver_side) = pair(&mut listener, config_of(worker(1))).await;
    let (new_worker, _new_worker_events) = transport(worker(1), transport_config());
    driver.add(new_driver_side);
    new_worker.add(new_worker_side);

    // The old worker's connection is closed; the driver reports nothing for it.
    assert!(matches!(next_event(&mut old_worker_events).await, TransportEvent::PeerLost(NodeId::Driver)));
    new_worker.send(NodeId::Driver, Message::Registered).unwrap();
    match next_event(&mut driver_events).await {
        TransportEvent::Message { from, msg: Message::Registered } => assert_eq!(from, worker(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(driver.peers(), [worker(1)]);
}

#[tokio::test]
async fn a_connection_of_a_new_incarnation_reports_the_old_one_lost_before_its_messages() {
    let mut listener = driver_listener().await;
    let (_old_worker_side, old_driver_side) = pair(&mut listener, config_of(worker(1))).await;
    let (driver, mut driver_events) = transport(NodeId::Driver, transport_config());
    driver.add(old_driver_side);

    // The restarted process: the same node, a higher incarnation.
    let mut restarted = config_of(worker(1));
    restarted.incarnation += 1;
    let (new_worker_side, new_driver_side) = pair(&mut listener, restarted).await;
    let (new_worker, _new_worker_events) = transport(worker(1), transport_config());
    new_worker.add(new_worker_side);
    new_worker.send(NodeId::Driver, Message::Registered).unwrap();
    driver.add(new_driver_side);

    assert!(matches!(next_event(&mut driver_events).await, TransportEvent::PeerLost(w) if w == worker(1)));
    match next_event(&mut driver_events).await {
        TransportEvent::Message { from, msg: Message::Registered } => assert_eq!(from, worker(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(driver.peers(), [worker(1)]);
}

/// A peer that reads nothing: once the sockets' buffers and its queue are full, a send from a
/// state machine's thread waits `send_wait_max`, then the peer is given up and reported lost.
#[test]
fn a_peer_that_does_not_keep_up_is_given_up() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (_stuck, driver_side) = runtime.block_on(async {
        let mut listener = driver_listener().await;
        pair(&mut listener, config_of(worker(3))).await
    });
    let config =
        TransportConfig { queue_messages_max: 2, send_wait_max: Duration::from_millis(100), ..transport_config() };
    let (driver, mut events) = TcpTransport::new(NodeId::Driver, runtime.handle().clone(), config);
    driver.add(driver_side);
    let block = BlockId::Rdd { rdd: RddId::program(0), partition: 0 };
    let big = Message::StoreBlock { block, data: Payload::Encoded(vec![0u8; 256 << 10].into()), bytes: 1 };
    let sends = (0..2000).take_while(|_| driver.send(worker(3), big.clone()).is_ok()).count();
    assert!(sends < 2000, "the socket buffers cannot hold 500 MiB");
    assert!(driver.peers().is_empty());
    assert!(matches!(events.blocking_recv(), Some(TransportEvent::PeerLost(w)) if w == worker(3)));
}
