//! A `StreamLayer` slots another stream under the transport, as TLS would:
//! here a stand-in that runs its own exchange before the transport's
//! handshake and buffers writes (so the transport must flush, as with TLS).

use raft_core::runtime::Inbox;
use raft_core::runtime::{Envelope, Transport};
use raft_core::{Heartbeat, Message, MessageBody, NodeId};
use raft_net_tcp::{StreamLayer, TcpConfig, TcpTransport};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(20);

/// Dialer says `HELO`, acceptor answers `OLEH`; then a buffered stream.
struct Preamble;

#[async_trait::async_trait]
impl StreamLayer for Preamble {
    type Stream = BufStream<TcpStream>;

    async fn connect(
        &self,
        mut tcp: TcpStream,
        _peer: NodeId,
        _addr: SocketAddr,
    ) -> std::io::Result<Self::Stream> {
        tcp.write_all(b"HELO").await?;
        let mut answer = [0; 4];
        tcp.read_exact(&mut answer).await?;
        if &answer != b"OLEH" {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a preamble peer"));
        }
        Ok(BufStream::new(tcp))
    }

    async fn accept(&self, mut tcp: TcpStream, _addr: SocketAddr) -> std::io::Result<Self::Stream> {
        let mut greeting = [0; 4];
        tcp.read_exact(&mut greeting).await?;
        if &greeting != b"HELO" {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a preamble peer"));
        }
        tcp.write_all(b"OLEH").await?;
        Ok(BufStream::new(tcp))
    }
}

fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Envelope {
    Message { from, to, term: 1, body: MessageBody::Heartbeat(Heartbeat { commit: 0, round }) }.into()
}

fn config(id: NodeId) -> TcpConfig {
    TcpConfig::new(id, 5, "127.0.0.1:0".parse().unwrap())
}

fn inbox() -> (Inbox, Inbox) {
    let inbox = Inbox::default();
    (inbox.clone(), inbox)
}

#[tokio::test]
async fn messages_flow_both_ways_through_a_layer() {
    let (deliver, two_inbox) = inbox();
    let two = TcpTransport::bind_with(config(2), Preamble, deliver).await.expect("binds");
    let (deliver, one_inbox) = inbox();
    let one = TcpTransport::bind_with(config(1).with_peers([(2, two.local_addr())]), Preamble, deliver)
        .await
        .expect("binds");
    two.set_peer(1, one.local_addr());
    for round in 0..10 {
        one.send(heartbeat(1, 2, round));
        two.send(heartbeat(2, 1, round));
    }
    for round in 0..10 {
        let at_two = tokio::time::timeout(DEADLINE, two_inbox.recv()).await.expect("in time");
        assert_eq!(at_two, Some(heartbeat(1, 2, round)));
        let at_one = tokio::time::timeout(DEADLINE, one_inbox.recv()).await.expect("in time");
        assert_eq!(at_one, Some(heartbeat(2, 1, round)));
    }
}

#[tokio::test]
async fn a_plain_peer_cannot_reach_a_layered_one() {
    let (deliver, layered_inbox) = inbox();
    let layered = TcpTransport::bind_with(config(2), Preamble, deliver).await.expect("binds");
    let plain = TcpTransport::bind(config(1).with_peers([(2, layered.local_addr())]), Inbox::default())
        .await
        .expect("binds");
    layered.set_peer(1, plain.local_addr());
    for round in 0..20 {
        plain.send(heartbeat(1, 2, round));
    }
    tokio::time::timeout(DEADLINE, async {
        while plain.dropped() < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every message is dropped");
    assert!(layered_inbox.try_recv().is_none(), "nothing crossed the missing layer");
}
