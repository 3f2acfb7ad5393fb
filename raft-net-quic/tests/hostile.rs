//! Intruders and hostile peers: a node refuses whoever the cluster CA did
//! not certify, cuts off a certified peer that misbehaves, and meanwhile
//! keeps hearing its good peers.

mod common;

use common::*;
use raft_core::codec::encode_frame;
use raft_core::codec::{FRAME_LENGTH_BYTES, FRAME_VERSION};
use raft_core::runtime::{Envelope, Forward, Forwarded, Inbox, Transport};
use raft_core::NodeId;
use raft_net_quic::{Hello, QuicTransport, CLOSE_PROTOCOL, CLOSE_REFUSED};
use std::time::Duration;

/// Node 2 listening, node 1 sending to it.
async fn pair(ca: &raft_net_tls::ClusterCa) -> (QuicTransport, QuicTransport, Inbox) {
    let mut server_config = config();
    server_config.hello_timeout = Duration::from_secs(2);
    let (two, inbox) = bind(ca, 2, server_config).await;
    let (one, _) = bind(ca, 1, config()).await;
    one.set_peer(2, addr(&two));
    (one, two, inbox)
}

/// Node 1 can still reach node 2: a fresh heartbeat arrives, and every
/// message in between came from node 1.
async fn still_hears_node_one(one: &QuicTransport, inbox: &Inbox, round: u64) {
    within("hearing node 1", async {
        loop {
            one.send(heartbeat(1, 2, round));
            let next = tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await;
            if let Ok(Some(message)) = next {
                assert_eq!(message.from(), 1, "only node 1 may be heard: {message:?}");
                if message == heartbeat(1, 2, round) {
                    return;
                }
            }
        }
    })
    .await;
}

fn hello(from: NodeId, to: NodeId, cluster: &str) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(&Hello { cluster_id: cluster.into(), from, to }, &mut frame).unwrap();
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_certificate_of_the_cluster_ca_are_refused_and_disturb_nothing() {
    let ca = ca();
    let (one, two, inbox) = pair(&ca).await;
    still_hears_node_one(&one, &inbox, 1).await;

    // Another CA, even under the same cluster name and a member's node id.
    let other =
        raft_net_tls::ClusterCa::generate(CLUSTER, raft_net_tls::Validity::days_from_now(30)).unwrap();
    let foreign = other.issue(3, raft_net_tls::Validity::days_from_now(30)).unwrap();
    let anonymous = [
        ("a certificate from another CA", client_tls(&ca, Some(&foreign))),
        ("no client certificate", client_tls(&ca, None)),
    ];
    for (what, tls) in anonymous {
        let endpoint = raw_client(tls);
        let outcome = attempt(&endpoint, addr(&two), 2, |connection| async move {
            // Try to speak anyway; nothing may come of it.
            if let Ok(mut stream) = connection.open_uni().await {
                let _ = stream.write_all(&hello(3, 2, CLUSTER)).await;
                let mut frame = Vec::new();
                encode_frame(&heartbeat(3, 2, 666), &mut frame).unwrap();
                let _ = stream.write_all(&frame).await;
            }
        })
        .await;
        assert!(
            matches!(
                outcome,
                Outcome::HandshakeFailed(_)
                    | Outcome::Closed(
                        quinn::ConnectionError::ConnectionClosed(_)
                            | quinn::ConnectionError::TransportError(_)
                    )
            ),
            "{what}: the handshake must fail, got {outcome:?}"
        );
        still_hears_node_one(&one, &inbox, 2).await;
    }

    // A whole transport of another CA, sending votes and heartbeats to node
    // 2: refused both ways (it does not trust node 2 either).
    let (intruder, _) = bind(&other, 3, config()).await;
    intruder.set_peer(2, addr(&two));
    for round in 0..100 {
        intruder.send(heartbeat(3, 2, round));
    }
    for round in 3..20 {
        still_hears_node_one(&one, &inbox, round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_peer_that_misbehaves_is_cut_off_while_good_peers_are_heard() {
    let ca = ca();
    let (one, two, inbox) = pair(&ca).await;
    still_hears_node_one(&one, &inbox, 1).await;
    let three = ca.issue(3, raft_net_tls::Validity::days_from_now(30)).unwrap();
    let endpoint = raw_client(client_tls(&ca, Some(&three)));

    // (what it does, the close code it must get)
    let mut oversized = hello(3, 2, CLUSTER);
    oversized.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut garbage = hello(3, 2, CLUSTER);
    garbage.extend_from_slice(&[12, 0, 0, 0, FRAME_VERSION]);
    garbage.extend_from_slice(&[0xFF; 11]);
    let mut truncated = hello(3, 2, CLUSTER);
    let mut frame = Vec::new();
    encode_frame(&heartbeat(3, 2, 1), &mut frame).unwrap();
    truncated.extend_from_slice(&frame[..frame.len() - 1]);
    let mut spoofed = hello(3, 2, CLUSTER);
    encode_frame(&heartbeat(1, 2, 1), &mut spoofed).unwrap();
    let mut misaddressed = hello(3, 2, CLUSTER);
    encode_frame(&heartbeat(3, 4, 1), &mut misaddressed).unwrap();
    let mut spoofed_forward = hello(3, 2, CLUSTER);
    let forward =
        Forwarded { from: 1, to: 2, term: 1, body: Forward::Proposal { id: 1, command: Default::default() } };
    encode_frame(&Envelope::Forward(forward), &mut spoofed_forward).unwrap();
    let mut other_version = hello(3, 2, CLUSTER);
    let at = other_version.len() + FRAME_LENGTH_BYTES;
    other_version.extend_from_slice(&frame);
    other_version[at] = FRAME_VERSION + 1;
    // What a node of frame version 1 sent: a bare message, before envelopes.
    let mut version_1 = hello(3, 2, CLUSTER);
    let at = version_1.len() + FRAME_LENGTH_BYTES;
    encode_frame(&heartbeat_message(3, 2, 1), &mut version_1).unwrap();
    version_1[at] = 1;
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("an oversized frame header", oversized, CLOSE_PROTOCOL),
        ("a garbage frame", garbage, CLOSE_PROTOCOL),
        ("a truncated frame", truncated, CLOSE_PROTOCOL),
        ("a message claiming to come from node 1", spoofed, CLOSE_PROTOCOL),
        ("a forward claiming to come from node 1", spoofed_forward, CLOSE_PROTOCOL),
        ("a message for another node", misaddressed, CLOSE_PROTOCOL),
        ("a frame of another frame version", other_version, CLOSE_PROTOCOL),
        ("a frame of version 1 (a bare message)", version_1, CLOSE_PROTOCOL),
        ("a hello claiming to be node 1", hello(1, 2, CLUSTER), CLOSE_REFUSED),
        ("a hello for another cluster", hello(3, 2, "another-cluster"), CLOSE_REFUSED),
        ("a hello for another node", hello(3, 4, CLUSTER), CLOSE_REFUSED),
        ("an oversized hello", vec![0xFF; 8], CLOSE_REFUSED),
        ("no hello at all", Vec::new(), CLOSE_REFUSED),
    ];
    for (round, (what, bytes, code)) in (10..).zip(cases) {
        let outcome = attempt(&endpoint, addr(&two), 2, |connection| async move {
            let mut stream = connection.open_uni().await.expect("a stream");
            stream.write_all(&bytes).await.expect("written");
            if what == "a truncated frame" {
                stream.finish().expect("finished");
            }
            stream // Kept open until the server decides.
        })
        .await;
        assert_eq!(close_code(&outcome), Some(code), "{what}: {outcome:?}");
        still_hears_node_one(&one, &inbox, round).await;
    }

    // Garbage on a snapshot chunk stream, after a good hello.
    let outcome = attempt(&endpoint, addr(&two), 2, |connection| async move {
        let mut messages = connection.open_uni().await.expect("a stream");
        messages.write_all(&hello(3, 2, CLUSTER)).await.expect("written");
        let mut chunk = connection.open_uni().await.expect("a stream");
        chunk.write_all(&[5, 0, 0, 0, FRAME_VERSION, 0xFF, 0xFF, 0xFF, 0xFF]).await.expect("written");
        let _ = chunk.finish();
        (messages, chunk)
    })
    .await;
    assert_eq!(close_code(&outcome), Some(CLOSE_PROTOCOL), "garbage on a chunk stream: {outcome:?}");
    still_hears_node_one(&one, &inbox, 100).await;
    drop(two);
}
