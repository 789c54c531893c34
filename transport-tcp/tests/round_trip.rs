//! Good peers over loopback: the handshake on both sides, messages both ways, chunked ones.
#![forbid(unsafe_code)] // dstream-tcp only denies it, for its `pod` module.
#![allow(clippy::unwrap_used)] // Integration tests are test code.

mod common;

use common::*;
use dstream::{BlockId, Message, NodeId, Payload, RddId};
use dstream_tcp::{Inbound, WireError};

fn store_block(bytes: usize) -> Message {
    let data = Payload::Encoded((0..bytes).map(|i| i as u8).collect::<Vec<u8>>().into());
    Message::StoreBlock { block: BlockId::Rdd { rdd: RddId::program(1), partition: 2 }, data, bytes: bytes as u64 }
}

async fn next_message(recv: impl std::future::Future<Output = Result<Option<Inbound>, WireError>>) -> Message {
    match bounded(recv).await {
        Ok(Some(Inbound::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn handshake_both_ways_and_messages_both_ways() {
    let mut listener = driver_listener().await;
    let addr = listener.local_addr();
    let (mut worker_side, mut driver_side) = pair(&mut listener, config(worker(3), SECRET)).await;

    assert_eq!(worker_side.peer().node, NodeId::Driver);
    assert_eq!(worker_side.peer().program, PROGRAM);
    assert_eq!(worker_side.peer().addr, addr);
    assert_eq!(driver_side.peer().node, worker(3));
    assert_eq!(driver_side.peer().incarnation, 7);

    worker_side.send(&Message::Heartbeat { incarnation: 7 }).await.unwrap();
    let m = next_message(driver_side.recv()).await;
    assert!(matches!(m, Message::Heartbeat { incarnation: 7 }), "{m:?}");

    driver_side.send(&Message::Registered).await.unwrap();
    assert!(matches!(next_message(worker_side.recv()).await, Message::Registered));

    driver_side.heartbeat().await.unwrap();
    assert!(matches!(bounded(worker_side.recv()).await, Ok(Some(Inbound::Heartbeat))));
}

#[tokio::test]
async fn a_message_longer_than_a_frame_goes_in_chunks() {
    let mut listener = driver_listener().await;
    let (worker_side, driver_side) = pair(&mut listener, config(worker(0), SECRET)).await;
    let (_, mut reader, _) = driver_side.into_split();
    let (_, _, mut writer) = worker_side.into_split();

    let big = store_block(20 * WIRE.frame_bytes_max + 17);
    let sender = tokio::spawn(async move {
        writer.send(&big).await.unwrap();
        writer.send(&Message::Registered).await.unwrap();
        writer.close().await.unwrap();
    });
    let Message::StoreBlock { data, bytes, .. } = next_message(reader.recv()).await else { panic!("not a block") };
    assert_eq!(bytes as usize, 20 * WIRE.frame_bytes_max + 17);
    let Payload::Encoded(data) = data else { panic!("a local payload") };
    assert!(data.iter().enumerate().all(|(i, b)| *b == i as u8));
    assert!(matches!(next_message(reader.recv()).await, Message::Registered));
    assert!(matches!(bounded(reader.recv()).await, Ok(None)), "a clean close between messages");
    sender.await.unwrap();
}

#[tokio::test]
async fn a_message_over_the_limit_is_refused_before_it_is_sent() {
    let mut listener = driver_listener().await;
    let (mut worker_side, mut driver_side) = pair(&mut listener, config(worker(0), SECRET)).await;
    let too_big = store_block(WIRE.message_bytes_max + 1);
    let err = worker_side.send(&too_big).await.unwrap_err();
    assert!(
        matches!(err, WireError::MessageTooLarge { message_bytes_max, .. } if message_bytes_max == WIRE.message_bytes_max)
    );
    // Nothing went out, so the connection is still good.
    worker_side.send(&Message::Registered).await.unwrap();
    assert!(matches!(next_message(driver_side.recv()).await, Message::Registered));
}

#[tokio::test]
async fn a_worker_can_listen_and_the_driver_connect() {
    let mut listener = listen(config(worker(5), SECRET), Default::default()).await;
    let (driver_side, worker_side) = pair(&mut listener, config(NodeId::Driver, SECRET)).await;
    assert_eq!(driver_side.peer().node, worker(5));
    assert_eq!(worker_side.peer().node, NodeId::Driver);
}
