//! How the transport treats single connections: silent and garbled
//! inbound ones, peers answering for another cluster, snapshot chunks on a
//! connection of their own, the connection limit, peer removal and close.

use bytes::BytesMut;
use raft_core::codec::FrameDecoder;
use raft_core::runtime::Inbox;
use raft_core::runtime::{Envelope, Transport};
use raft_core::{Heartbeat, InstallSnapshot, LogId, Membership, Message, MessageBody, NodeId, SnapshotMeta};
use raft_net_tcp::handshake::{self, Channel, Handshake, Hello, Refusal};
use raft_net_tcp::{TcpConfig, TcpError, TcpTransport};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);
const CLUSTER: u64 = 9;

async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    raft_core::testing::within(DEADLINE, what, future).await
}

fn heartbeat_message(from: NodeId, to: NodeId, round: u64) -> Message {
    Message { from, to, term: 1, body: MessageBody::Heartbeat(Heartbeat { commit: 0, round }) }
}

fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Envelope {
    heartbeat_message(from, to, round).into()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn node(config: TcpConfig) -> (TcpTransport, Inbox) {
    let inbox = Inbox::new(1 << 16);
    let transport = TcpTransport::bind(config, inbox.clone()).await.expect("the transport binds");
    (transport, inbox)
}

/// Reads until the peer closes; returns what it sent.
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = within("the connection closing", stream.read_to_end(&mut bytes)).await;
    bytes
}

#[tokio::test]
async fn an_inbound_connection_that_sends_nothing_is_closed_after_the_handshake_timeout() {
    let config =
        TcpConfig { handshake_timeout: Duration::from_millis(200), ..TcpConfig::new(1, CLUSTER, loopback()) };
    let (transport, _inbox) = node(config).await;
    let mut silent = TcpStream::connect(transport.local_addr()).await.expect("connect");
    assert_eq!(read_to_end(&mut silent).await, Vec::<u8>::new(), "closed without a word");
    // Half a handshake is no better.
    let mut slow = TcpStream::connect(transport.local_addr()).await.expect("connect");
    let hello = handshake::encode(&Handshake::Hello(Hello::new(CLUSTER, 2, 1, Channel::Messages)));
    slow.write_all(&hello[..hello.len() - 1]).await.expect("write");
    assert_eq!(read_to_end(&mut slow).await, Vec::<u8>::new());
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_refused_and_closed() {
    let (transport, inbox) = node(TcpConfig::new(1, CLUSTER, loopback())).await;
    for garbage in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0xFF; 64][..], &u32::MAX.to_le_bytes()[..]] {
        let mut stream = TcpStream::connect(transport.local_addr()).await.expect("connect");
        stream.write_all(garbage).await.expect("write");
        let answer = read_to_end(&mut stream).await;
        let decoded = handshake::decode(&mut BytesMut::from(&answer[..])).expect("a valid refusal");
        assert_eq!(decoded, Some(Handshake::Refused(Refusal::NotRaft)), "answer to {garbage:?}");
    }
    assert!(inbox.try_recv().is_none(), "nothing was delivered");
}

/// A fake peer: answers every handshake as `answer_as` would, then reads
/// frames from `Messages` connections into the returned channel, and never
/// reads `Snapshots` connections.
async fn fake_peer(cluster: u64, answer_as: NodeId) -> (SocketAddr, mpsc::UnboundedReceiver<Envelope>) {
    let listener = TcpListener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (delivered, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stalled = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = BytesMut::new();
            let hello = loop {
                if let Ok(Some(Handshake::Hello(hello))) = handshake::decode(&mut buffer) {
                    break hello;
                }
                if stream.read_buf(&mut buffer).await.unwrap_or(0) == 0 {
                    return;
                }
            };
            let answer = Hello::new(cluster, answer_as, hello.from, hello.channel);
            let _ = stream.write_all(&handshake::encode(&Handshake::Hello(answer))).await;
            if hello.channel == Channel::Snapshots {
                stalled.push(stream);
                continue;
            }
            let delivered = delivered.clone();
            tokio::spawn(async move {
                let decoder = FrameDecoder::new(1 << 26);
                loop {
                    while let Ok(Some(envelope)) = decoder.decode::<Envelope>(&mut buffer) {
                        let _ = delivered.send(envelope);
                    }
                    if stream.read_buf(&mut buffer).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
            });
        }
    });
    (addr, received)
}

#[tokio::test]
async fn a_peer_answering_for_another_cluster_or_node_never_receives_a_message() {
    for (cluster, answer_as) in [(CLUSTER + 1, 2), (CLUSTER, 3)] {
        let (addr, mut received) = fake_peer(cluster, answer_as).await;
        let (transport, _inbox) = node(TcpConfig::new(1, CLUSTER, loopback()).with_peers([(2, addr)])).await;
        for round in 0..50 {
            transport.send(heartbeat(1, 2, round));
        }
        within("the messages being dropped", async {
            while transport.dropped() < 50 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            received.try_recv().is_err(),
            "a message reached a peer answering as node {answer_as} of cluster {cluster}"
        );
    }
    // The same fake, answering correctly, does receive: the check above is not vacuous.
    let (addr, mut received) = fake_peer(CLUSTER, 2).await;
    let (transport, _inbox) = node(TcpConfig::new(1, CLUSTER, loopback()).with_peers([(2, addr)])).await;
    transport.send(heartbeat(1, 2, 7));
    assert_eq!(within("a message", received.recv()).await, Some(heartbeat(1, 2, 7)));
}

#[tokio::test]
async fn heartbeats_are_never_stuck_behind_snapshot_chunks() {
    let (addr, mut received) = fake_peer(CLUSTER, 2).await;
    let (transport, _inbox) = node(TcpConfig::new(1, CLUSTER, loopback()).with_peers([(2, addr)])).await;
    // 16 chunks of 4 MiB, on a connection the peer never reads.
    let data = bytes::Bytes::from(vec![1; 4 << 20]);
    for offset in 0..16 {
        let chunk = Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::InstallSnapshot(Box::new(InstallSnapshot {
                meta: SnapshotMeta { last: LogId::new(1, 1000), membership: Membership::new([1, 2], []) },
                offset: offset * (4 << 20),
                data: data.clone(),
                done: false,
                total_len: 16 * (4 << 20),
                checksum: 0,
            })),
        };
        transport.send(chunk.into());
    }
    for round in 0..100 {
        transport.send(heartbeat(1, 2, round));
    }
    for round in 0..100 {
        let message = within("a heartbeat", received.recv()).await;
        assert_eq!(message, Some(heartbeat(1, 2, round)));
    }
}

#[tokio::test]
async fn inbound_connections_beyond_the_limit_are_refused() {
    let config = TcpConfig {
        max_inbound_connections: 2,
        handshake_timeout: Duration::from_secs(120),
        ..TcpConfig::new(1, CLUSTER, loopback())
    };
    let (transport, _inbox) = node(config).await;
    let _held: Vec<TcpStream> = vec![
        TcpStream::connect(transport.local_addr()).await.expect("connect"),
        TcpStream::connect(transport.local_addr()).await.expect("connect"),
    ];
    let mut third = TcpStream::connect(transport.local_addr()).await.expect("connect");
    // Closed without a word, long before the handshake timeout (which
    // `read_to_end`'s deadline would not even reach).
    assert_eq!(read_to_end(&mut third).await, Vec::<u8>::new());
}

#[tokio::test]
async fn addresses_from_the_configuration_make_members_known_peers() {
    use raft_core::runtime::Transport;
    let (one, _one_inbox) = node(TcpConfig::new(1, CLUSTER, loopback())).await;
    let (two, two_inbox) =
        node(TcpConfig::new(2, CLUSTER, loopback()).with_peers([(1, one.local_addr())])).await;
    let recorded = std::collections::BTreeMap::from([
        (1, "127.0.0.1:1".to_string()), // itself: ignored
        (2, two.local_addr().to_string()),
        (3, "not an address".to_string()), // logged and ignored
    ]);
    one.update_addresses(&recorded);
    assert_eq!(one.peers().len(), 1);
    assert_eq!(one.peers().get(&2), Some(&two.local_addr()));
    one.send(heartbeat(1, 2, 7));
    assert_eq!(within("a message", two_inbox.recv()).await, Some(heartbeat(1, 2, 7)));
    one.close();
    two.close();
}

#[tokio::test]
async fn peers_are_added_moved_and_removed_at_runtime_and_close_stops_everything() {
    let (one, _one_inbox) = node(TcpConfig::new(1, CLUSTER, loopback())).await;
    let (two, two_inbox) =
        node(TcpConfig::new(2, CLUSTER, loopback()).with_peers([(1, one.local_addr())])).await;
    one.send(heartbeat(1, 2, 0));
    assert_eq!(one.dropped(), 1, "no address yet: dropped");
    one.set_peer(2, two.local_addr());
    assert_eq!(one.peers().get(&2), Some(&two.local_addr()));
    one.send(heartbeat(1, 2, 1));
    assert_eq!(within("a message", two_inbox.recv()).await, Some(heartbeat(1, 2, 1)));

    // Node 2 moves to a new address.
    two.close();
    let (moved, moved_inbox) =
        node(TcpConfig::new(2, CLUSTER, loopback()).with_peers([(1, one.local_addr())])).await;
    one.set_peer(2, moved.local_addr());
    let mut round = 2;
    within("a message at the new address", async {
        loop {
            one.send(heartbeat(1, 2, round));
            round += 1;
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(100), moved_inbox.recv()).await
            {
                assert_eq!(message.from(), 1);
                return;
            }
        }
    })
    .await;

    // Removed: messages are dropped, nothing more arrives.
    assert!(one.remove_peer(2));
    let before = one.dropped();
    one.send(heartbeat(1, 2, 1_000));
    assert_eq!(one.dropped(), before + 1);

    // Closed: the listener is gone.
    moved.close();
    let addr = moved.local_addr();
    within("the listener closing", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn invalid_configurations_are_errors() {
    let cases = [
        TcpConfig::new(0, CLUSTER, loopback()),
        TcpConfig { queue_capacity: 0, ..TcpConfig::new(1, CLUSTER, loopback()) },
        TcpConfig { max_frame_bytes: usize::MAX, ..TcpConfig::new(1, CLUSTER, loopback()) },
        TcpConfig::new(1, CLUSTER, loopback()).with_peers([(1, loopback())]),
        TcpConfig { reconnect_backoff_min: Duration::ZERO, ..TcpConfig::new(1, CLUSTER, loopback()) },
        TcpConfig { reconnect_backoff_max: Duration::MAX, ..TcpConfig::new(1, CLUSTER, loopback()) },
        TcpConfig { handshake_timeout: Duration::ZERO, ..TcpConfig::new(1, CLUSTER, loopback()) },
    ];
    for config in cases {
        let result = TcpTransport::bind(config.clone(), Inbox::default()).await;
        assert!(matches!(result, Err(TcpError::InvalidConfig(_))), "{config:?}");
    }
}

#[tokio::test]
async fn frames_over_the_senders_limit_are_dropped_not_sent() {
    let config = |id| TcpConfig { max_frame_bytes: 1024, ..TcpConfig::new(id, CLUSTER, loopback()) };
    let (two, two_inbox) = node(config(2)).await;
    let (one, _inbox) = node(config(1).with_peers([(2, two.local_addr())])).await;
    two.set_peer(1, one.local_addr());
    let mut big = heartbeat_message(1, 2, 0);
    big.body = MessageBody::InstallSnapshot(Box::new(InstallSnapshot {
        meta: SnapshotMeta { last: LogId::new(1, 1), membership: Membership::new([1, 2], []) },
        offset: 0,
        data: bytes::Bytes::from(vec![0; 2048]),
        done: true,
        total_len: 2048,
        checksum: 0,
    }));
    one.send(big.into());
    one.send(heartbeat(1, 2, 1));
    assert_eq!(within("a message", two_inbox.recv()).await, Some(heartbeat(1, 2, 1)));
    within("the big one being dropped", async {
        while one.dropped() < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn only_known_peers_are_accepted_and_a_removed_peer_is_disconnected() {
    let (transport, inbox) = node(TcpConfig::new(1, CLUSTER, loopback())).await;
    let addr = transport.local_addr();
    let dial = |from: NodeId| async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let hello = Hello::new(CLUSTER, from, 1, Channel::Messages);
        let result = within("a handshake", handshake::dial(&mut stream, hello)).await;
        (stream, result)
    };
    let (_, refused) = dial(2).await;
    assert!(
        matches!(refused, Err(handshake::HandshakeError::Refused(Refusal::UnknownSender))),
        "{refused:?}"
    );

    transport.set_peer(2, "127.0.0.1:9".parse().unwrap());
    let (mut stream, accepted) = dial(2).await;
    assert!(accepted.is_ok(), "{accepted:?}");
    let mut frame = Vec::new();
    raft_core::codec::encode_frame(&heartbeat(2, 1, 5), &mut frame).expect("encodes");
    stream.write_all(&frame).await.expect("write");
    assert_eq!(within("a message", inbox.recv()).await, Some(heartbeat(2, 1, 5)));

    // Removed: its open connection closes, and it cannot come back.
    assert!(transport.remove_peer(2));
    assert_eq!(read_to_end(&mut stream).await, Vec::<u8>::new());
    let (_, refused) = dial(2).await;
    assert!(
        matches!(refused, Err(handshake::HandshakeError::Refused(Refusal::UnknownSender))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_transport() {
    let (transport, _inbox) = node(TcpConfig::new(1, CLUSTER, loopback())).await;
    let addr = transport.local_addr();
    let clone = transport.clone();
    drop(transport);
    assert!(TcpStream::connect(addr).await.is_ok(), "a clone keeps it running");
    drop(clone);
    within("the listener closing", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
