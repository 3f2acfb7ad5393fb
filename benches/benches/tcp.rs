//! Message throughput of the TCP transport on loopback: AppendEntries
//! messages carrying 64 entries of 64 B each, sent from one transport to
//! another and counted as the receiving transport delivers them (at most
//! 1024 in flight, below the per-peer queue, so none is dropped). Baseline,
//! measured in the same run: encoding the same messages into frames and
//! decoding them back in memory with the project codec, i.e. the transport's
//! work without sockets or tasks.
//!
//! `cargo bench -p benches --bench tcp`

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_core::codec::{encode_frame, FrameDecoder};
use raft_core::runtime::{Envelope, Inbox, Transport};
use raft_core::{AppendEntries, Entry, EntryPayload, Message, MessageBody};
use raft_net_tcp::{TcpConfig, TcpTransport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const ENTRIES: u64 = 64;
const ENTRY_BYTES: usize = 64;
const IN_FLIGHT: u64 = 1024;

fn append_entries() -> Envelope {
    let payload = Bytes::from(vec![0x5a; ENTRY_BYTES]);
    let entries = (1..=ENTRIES)
        .map(|index| Entry { term: 3, index: 1000 + index, payload: EntryPayload::Command(payload.clone()) })
        .collect();
    Envelope::Raft(Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: 1000,
            prev_log_term: 3,
            entries,
            leader_commit: 1000,
        }),
    })
}

fn tcp(c: &mut Criterion) {
    let message = append_entries();
    let mut group = c.benchmark_group("append_entries_64x64B");
    group.throughput(Throughput::Elements(1)).sample_size(10).measurement_time(Duration::from_secs(5));

    group.bench_function("codec_in_memory_baseline", |b| {
        let decoder = FrameDecoder::new(1 << 20);
        b.iter_custom(|iters| {
            let started = Instant::now();
            let mut frames = Vec::with_capacity(1 << 20);
            let mut decoded = 0;
            for i in 0..iters {
                encode_frame(&message, &mut frames).expect("encodes");
                if frames.len() >= 1 << 20 || i + 1 == iters {
                    let mut buffer = BytesMut::from(&frames[..]);
                    while let Some(m) = decoder.decode::<Envelope>(&mut buffer).expect("decodes") {
                        std::hint::black_box(m);
                        decoded += 1;
                    }
                    frames.clear();
                }
            }
            assert_eq!(decoded, iters);
            started.elapsed()
        });
    });

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let received = Arc::new(AtomicU64::new(0));
    let arrived = Arc::new(Notify::new());
    let (sender, receiver) = runtime.block_on(async {
        let (count, wake) = (received.clone(), arrived.clone());
        let inbox = Inbox::default();
        let receiver =
            TcpTransport::bind(TcpConfig::new(2, 1, "127.0.0.1:0".parse().unwrap()), inbox.clone())
                .await
                .expect("binds");
        // Counts what the transport delivers, as a node's core task would take it.
        tokio::spawn(async move {
            while inbox.recv().await.is_some() {
                count.fetch_add(1, Ordering::Relaxed);
                wake.notify_one();
            }
        });
        let config =
            TcpConfig::new(1, 1, "127.0.0.1:0".parse().unwrap()).with_peers([(2, receiver.local_addr())]);
        let sender = TcpTransport::bind(config, Inbox::default()).await.expect("binds");
        receiver.set_peer(1, sender.local_addr());
        (sender, receiver)
    });
    group.bench_function("tcp_loopback", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (sender, received, arrived, message) = (&sender, &received, &arrived, &message);
            async move {
                let base = received.load(Ordering::Relaxed);
                let started = Instant::now();
                let mut sent = 0;
                let finished = tokio::time::timeout(Duration::from_secs(60), async {
                    loop {
                        let done = received.load(Ordering::Relaxed) - base;
                        if done == iters {
                            return;
                        }
                        while sent < iters && sent - done < IN_FLIGHT {
                            sender.send(message.clone());
                            sent += 1;
                        }
                        arrived.notified().await;
                    }
                })
                .await;
                assert!(finished.is_ok(), "messages were lost (dropped: {})", sender.dropped());
                started.elapsed()
            }
        });
    });
    group.finish();
    sender.close();
    receiver.close();
}

criterion_group!(benches, tcp);
criterion_main!(benches);
