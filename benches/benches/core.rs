//! The protocol alone, with no runtime, store or network, each beside a
//! baseline measured in the same run:
//!
//! - `raw_node`: proposals per second through three `RawNode`s driven by
//!   hand in one loop (the leader's proposals replicated, acknowledged,
//!   committed and handed out for applying on every node), 64 proposals a
//!   round, payloads of 0, 64 and 4096 bytes. Baseline: building the same
//!   entries and pushing them into a vector three times, the floor of
//!   holding three copies of the log.
//! - `commit_index`: the commit index of 3 to 11 voters, simple and joint.
//!   Baseline: copying and sorting as many match indexes, the naive way.
//! - `codec`: encoding and decoding an AppendEntries of 64 entries of 64
//!   bytes. Baseline: copying as many bytes.
//!
//! `cargo bench -p benches --bench core`

use benches::hand::HandCluster;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_core::{
    codec, AppendEntries, Config, Entry, EntryPayload, JointConfig, MajorityConfig, Message, MessageBody,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ROUND: u64 = 64;

fn raw_node(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_node");
    group.throughput(Throughput::Elements(1)).measurement_time(Duration::from_secs(5));
    for size in [0usize, 64, 4096] {
        let payload = Bytes::from(vec![7u8; size]);
        group.bench_with_input(BenchmarkId::new("vec_push_baseline", size), &payload, |b, payload| {
            b.iter_custom(|iters| {
                let mut logs: Vec<Vec<Entry>> = vec![Vec::new(); 3];
                let started = Instant::now();
                for index in 1..=iters {
                    for log in &mut logs {
                        let entry = Entry { term: 1, index, payload: EntryPayload::Command(payload.clone()) };
                        log.push(entry);
                    }
                }
                black_box(&logs);
                started.elapsed()
            });
        });
        group.bench_with_input(BenchmarkId::new("three_nodes", size), &payload, |b, payload| {
            b.iter_custom(|iters| {
                let mut cluster = HandCluster::new(3, &Config::new(1), 1);
                cluster.elect_first();
                let started = Instant::now();
                let mut left = iters;
                while left > 0 {
                    let round = left.min(ROUND);
                    cluster.propose(1, round, payload);
                    left -= round;
                }
                let elapsed = started.elapsed();
                assert!(cluster.applied(3) >= iters, "every proposal applied on every node");
                elapsed
            });
        });
    }
    group.finish();
}

fn commit_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_index");
    for voters in [3u64, 5, 7, 9, 11] {
        let simple = JointConfig::new(MajorityConfig::new(1..=voters));
        // The joint configuration replaces one voter: {1..n} and {2..n+1}.
        let joint = JointConfig::joint(MajorityConfig::new(2..=voters + 1), MajorityConfig::new(1..=voters));
        let matches: Vec<u64> = (0..=voters + 1).map(|id| 1000 + (id * 7919) % 13).collect();
        let match_index = |id: u64| matches.get(id as usize).copied();
        group.bench_with_input(BenchmarkId::new("sort_baseline", voters), &voters, |b, &voters| {
            b.iter(|| {
                let mut acked: Vec<u64> = (1..=voters).map(|id| matches[id as usize]).collect();
                acked.sort_unstable();
                black_box(acked[acked.len() / 2])
            });
        });
        group.bench_with_input(BenchmarkId::new("simple", voters), &simple, |b, config| {
            b.iter(|| black_box(config.committed_index(match_index)));
        });
        group.bench_with_input(BenchmarkId::new("joint", voters), &joint, |b, config| {
            b.iter(|| black_box(config.committed_index(match_index)));
        });
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    let entries: Vec<Entry> = (1..=64)
        .map(|index| Entry { term: 3, index, payload: EntryPayload::Command(Bytes::from(vec![1u8; 64])) })
        .collect();
    let message = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries,
            leader_commit: 0,
        }),
    };
    let encoded = codec::encode(&message).expect("encodes");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("copy_baseline", |b| {
        let mut buffer = Vec::with_capacity(encoded.len());
        b.iter(|| {
            buffer.clear();
            buffer.extend_from_slice(black_box(&encoded));
            black_box(buffer.len())
        });
    });
    group.bench_function("encode_append_64x64", |b| {
        let mut buffer = Vec::with_capacity(encoded.len());
        b.iter(|| {
            buffer.clear();
            black_box(codec::encode_into(black_box(&message), &mut buffer).expect("encodes"))
        });
    });
    group.bench_function("decode_append_64x64", |b| {
        b.iter(|| black_box(codec::decode::<Message>(black_box(&encoded)).expect("decodes")));
    });
    group.finish();
}

criterion_group!(benches, raw_node, commit_index, codec);
criterion_main!(benches);
