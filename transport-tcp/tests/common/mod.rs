//! Helpers shared by the integration tests: configurations, a listener on loopback, and a
//! guard so that no test waits forever.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use dstream::{NodeId, WorkerId};
use dstream_tcp::{HandshakeConfig, HandshakeError, Listener, ListenerConfig, ListenerEvent, Secret, WireConfig};

pub const SECRET: &str = "the-cluster-secret-0123";
pub const PROGRAM: u64 = 0x5eed_f00d;

/// Small limits, so that chunking shows with small messages.
pub const WIRE: WireConfig = WireConfig { frame_bytes_max: 1024, message_bytes_max: 1 << 20 };

pub fn config(node: NodeId, secret: &str) -> HandshakeConfig {
    let mut c = HandshakeConfig::new(node, 7, PROGRAM, Secret::from_bytes(secret).unwrap());
    c.handshake_timeout = Duration::from_secs(5);
    c.wire = WIRE;
    c
}

pub fn worker(i: u32) -> NodeId {
    NodeId::Worker(WorkerId(i))
}

pub async fn listen(config: HandshakeConfig, listener: ListenerConfig) -> Listener {
    Listener::bind("127.0.0.1:0", config, listener).await.unwrap()
}

pub async fn driver_listener() -> Listener {
    listen(config(NodeId::Driver, SECRET), ListenerConfig::default()).await
}

/// Awaits `fut`, failing the test after 10 s instead of hanging.
pub async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut).await.expect("the test waited more than 10 s")
}

/// The listener's next event, which must be a rejection.
pub async fn rejection(listener: &mut Listener) -> HandshakeError {
    match bounded(listener.next()).await {
        Some(ListenerEvent::Rejected { error, .. }) => error,
        Some(ListenerEvent::Accepted(c)) => panic!("accepted {:?}", c.peer()),
        None => panic!("the listener stopped"),
    }
}

/// Connects with `config` to `listener`: (the connector's side, the listener's side).
pub async fn pair(
    listener: &mut Listener,
    config: HandshakeConfig,
) -> (dstream_tcp::Connection, dstream_tcp::Connection) {
    let addr = listener.local_addr();
    let (connector, acceptor) =
        bounded(async { tokio::join!(dstream_tcp::connect(addr, &config), listener.accept()) }).await;
    (connector.unwrap(), acceptor.unwrap())
}
