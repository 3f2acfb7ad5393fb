//! Append throughput and latency of the RocksDB store: one `write` of 1, 16
//! or 256 entries of 64 B or 4 KiB, synced and unsynced; and, as the
//! baseline measured in the same run, the raw cost of one `fdatasync` (write
//! 4 KiB to a file, then `File::sync_data`). A synced append cannot beat that
//! baseline; the ratio says what the store adds to it.
//!
//! `cargo bench -p raft-storage-rocksdb --bench append`
//!
//! The stores live under cargo's target temporary directory, not `/tmp`,
//! which may be a tmpfs where a sync costs nothing.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_core::{Entry, EntryPayload, LogStore, LogWrite};
use raft_storage_rocksdb::{RocksLogStore, RocksLogStoreOptions};
use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

const BATCHES: [u64; 3] = [1, 16, 256];
const SIZES: [usize; 2] = [64, 4096];

fn fdatasync(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let mut file = std::fs::File::create(dir.path().join("baseline")).expect("a file");
    let block = vec![0x5A_u8; 4096];
    let mut group = c.benchmark_group("fdatasync_baseline");
    group.throughput(Throughput::Elements(1));
    group.bench_function("write_4KiB_and_sync_data", |b| {
        b.iter(|| {
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(&block).expect("write");
            file.sync_data().expect("fdatasync");
        })
    });
    group.finish();
}

fn append(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    for sync in [true, false] {
        let mut group = c.benchmark_group(if sync { "append_synced" } else { "append_unsynced" });
        for size in SIZES {
            for batch in BATCHES {
                let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
                let options = RocksLogStoreOptions::new(1).sync_writes(sync);
                let store = runtime.block_on(RocksLogStore::open(dir.path(), options)).expect("open");
                let payload = Bytes::from(vec![0xA5_u8; size]);
                let mut next = 1;
                group.throughput(Throughput::Elements(batch));
                group.bench_function(BenchmarkId::new(format!("{size}B_entries"), batch), |b| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        let (store, payload) = (&store, &payload);
                        let first = next;
                        next += iters * batch;
                        async move {
                            let started = Instant::now();
                            for write in 0..iters {
                                let from = first + write * batch;
                                let entries = (from..from + batch)
                                    .map(|index| Entry {
                                        term: 1,
                                        index,
                                        payload: EntryPayload::Command(payload.clone()),
                                    })
                                    .collect();
                                store
                                    .write(LogWrite { entries, ..Default::default() })
                                    .await
                                    .expect("append");
                            }
                            started.elapsed()
                        }
                    })
                });
                runtime.block_on(store.close());
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = fdatasync, append
}
criterion_main!(benches);
