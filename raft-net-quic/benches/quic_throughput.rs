//! Message throughput of the QUIC transport on loopback: AppendEntries
//! carrying 64 entries of 64 B each, sent by node 1 and counted as node 2
//! receives them, with at most 1024 in flight (below the per-peer queue, so
//! none is dropped).
//!
//! Baseline, measured in the same run: the same messages framed into
//! batches and decoded in memory with raft-core's codec, i.e. the
//! serialization work the transport does, without QUIC, TLS or sockets.
//!
//! `cargo bench -p raft-net-quic --bench quic_throughput`

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_core::codec::{encode_frame, FrameDecoder};
use raft_core::runtime::{Envelope, Inbox, Transport};
use raft_core::{AppendEntries, Entry, EntryPayload, Message, MessageBody};
use raft_net_quic::{QuicConfig, QuicTransport};
use raft_net_tls::{ClusterCa, NodeIdentity, Validity};
use std::time::{Duration, Instant};

const ENTRIES: u64 = 64;
const PAYLOAD: usize = 64;
const WINDOW: u64 = 1024;

fn append_entries() -> Envelope {
    let payload = Bytes::from(vec![7u8; PAYLOAD]);
    let entries = (1..=ENTRIES)
        .map(|index| Entry { term: 1, index, payload: EntryPayload::Command(payload.clone()) })
        .collect();
    Envelope::Raft(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries,
            leader_commit: 0,
        }),
    })
}

fn identity(ca: &ClusterCa, node: u64) -> NodeIdentity {
    let cert = ca.issue(node, Validity::days_from_now(1)).expect("a certificate");
    NodeIdentity::from_pem(node, ca.cert_pem().as_bytes(), cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .expect("an identity")
}

/// Sends `iters` copies of `message` from `one`, at most `WINDOW` ahead of
/// what `inbox` has received; returns the time until the last arrived.
async fn through_quic(one: &QuicTransport, inbox: &Inbox, message: &Envelope, iters: u64) -> Duration {
    let started = Instant::now();
    let (mut sent, mut received) = (0, 0);
    while received < iters {
        while sent < iters && sent - received < WINDOW {
            one.send(message.clone());
            sent += 1;
        }
        tokio::time::timeout(Duration::from_secs(30), inbox.recv())
            .await
            .expect("a message within 30 s: none may be lost")
            .expect("no node reads the inbox");
        received += 1;
        while received < sent && inbox.try_recv().is_some() {
            received += 1;
        }
    }
    started.elapsed()
}

/// Frames `iters` copies of `message` in batches of `WINDOW` and decodes
/// them again: the codec's share of the transport's work.
fn in_memory(message: &Envelope, iters: u64) -> Duration {
    let decoder = FrameDecoder::new(16 << 20);
    let started = Instant::now();
    let mut left = iters;
    let mut buffer = Vec::new();
    while left > 0 {
        let batch = left.min(WINDOW);
        buffer.clear();
        for _ in 0..batch {
            encode_frame(&message.clone(), &mut buffer).expect("encodes");
        }
        let mut received = BytesMut::from(&buffer[..]);
        while let Some(decoded) = decoder.decode::<Envelope>(&mut received).expect("decodes") {
            std::hint::black_box(decoded);
        }
        left -= batch;
    }
    started.elapsed()
}

fn throughput(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let message = append_entries();
    let mut group = c.benchmark_group("append_entries_64x64B");
    group.throughput(Throughput::Elements(1)).sample_size(10).measurement_time(Duration::from_secs(5));

    group.bench_function("codec_in_memory_baseline", |b| b.iter_custom(|iters| in_memory(&message, iters)));

    let ca = ClusterCa::generate("bench", Validity::days_from_now(1)).expect("a CA");
    let (one, two, inbox) = runtime.block_on(async {
        let listen = "127.0.0.1:0".parse().expect("an address");
        let inbox = Inbox::new(1 << 16);
        let two = QuicTransport::bind(QuicConfig::new("bench", listen), &identity(&ca, 2), inbox.clone())
            .await
            .expect("binds");
        let mut config = QuicConfig::new("bench", listen);
        config.peers.insert(2, two.local_addr());
        let one = QuicTransport::bind(config, &identity(&ca, 1), Inbox::new(1)).await.expect("binds");
        (one, two, inbox)
    });
    group.bench_function("quic_loopback", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (one, inbox, message) = (one.clone(), inbox.clone(), message.clone());
            async move { through_quic(&one, &inbox, &message, iters).await }
        })
    });
    group.finish();
    one.close();
    two.close();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
