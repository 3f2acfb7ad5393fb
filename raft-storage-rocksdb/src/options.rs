//! What a store is opened with: the cluster it belongs to, and RocksDB's
//! tuning, with defaults chosen for a Raft log.

use std::fmt;
use std::sync::Arc;

type Tuner = Arc<dyn Fn(&mut rocksdb::Options) + Send + Sync>;

/// How to open a [`crate::RocksLogStore`].
///
/// The defaults suit a Raft log: every write synced, WAL on, no compression
/// (entries are written once, read soon, and purged; the crate builds RocksDB
/// without compression libraries), memtables bounded to 128 MiB in all, and
/// WAL files bounded to 64 MiB so that the rarely written hard state does not
/// keep old WAL files alive. Everything RocksDB offers can be changed with
/// [`RocksLogStoreOptions::tune_db`] and
/// [`RocksLogStoreOptions::tune_log_column_family`], which run after the
/// defaults are set.
#[derive(Clone)]
pub struct RocksLogStoreOptions {
    pub(crate) cluster_id: u64,
    pub(crate) sync: bool,
    pub(crate) compact_after_purging: u64,
    pub(crate) tune_db: Option<Tuner>,
    pub(crate) tune_log: Option<Tuner>,
}

impl RocksLogStoreOptions {
    /// Options for a store of the cluster `cluster_id`. The id is recorded
    /// when the store is created; opening it later with another id is
    /// refused ([`crate::OpenError::OtherCluster`]), so a node cannot join a
    /// cluster with another cluster's log.
    pub fn new(cluster_id: u64) -> Self {
        Self { cluster_id, sync: true, compact_after_purging: 65_536, tune_db: None, tune_log: None }
    }

    /// The cluster id the store is opened for.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Whether writes are synced before they return (default `true`).
    ///
    /// `false` breaks rule 1 of the `LogStore` contract: a write then
    /// survives a process crash (it is in the operating system's cache) but
    /// not a power loss or a kernel crash, and a node that forgets its vote
    /// or acknowledged entries can break Raft's safety. It exists to measure
    /// what syncing costs; do not run a cluster with it.
    pub fn sync_writes(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// After how many purged entries the store compacts the purged range of
    /// the log, so that the space they took is reclaimed even when no new
    /// writes would trigger RocksDB's own compactions there (default
    /// 65,536; `0` never compacts explicitly). The compaction runs in the
    /// background, beside later writes.
    pub fn compact_after_purging(mut self, entries: u64) -> Self {
        self.compact_after_purging = entries;
        self
    }

    /// Changes the database-wide RocksDB options after the defaults are set
    /// (for example the WAL directory, background jobs, or the info log).
    pub fn tune_db(mut self, tune: impl Fn(&mut rocksdb::Options) + Send + Sync + 'static) -> Self {
        self.tune_db = Some(Arc::new(tune));
        self
    }

    /// Changes the log column family's options after the defaults are set
    /// (for example memtable size or compression, if measured to pay).
    pub fn tune_log_column_family(
        mut self,
        tune: impl Fn(&mut rocksdb::Options) + Send + Sync + 'static,
    ) -> Self {
        self.tune_log = Some(Arc::new(tune));
        self
    }

    /// The database-wide options.
    pub(crate) fn db_options(&self) -> rocksdb::Options {
        let mut options = base_options();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Memtables of all column families together; flushes when reached.
        options.set_db_write_buffer_size(128 << 20);
        // The hard state column family is written rarely; without a bound its
        // unflushed memtable would keep every WAL file since its last flush.
        options.set_max_total_wal_size(64 << 20);
        options.set_keep_log_file_num(4);
        if let Some(tune) = &self.tune_db {
            tune(&mut options);
        }
        options
    }

    /// The options of the log column family.
    pub(crate) fn log_options(&self) -> rocksdb::Options {
        let mut options = base_options();
        options.set_write_buffer_size(32 << 20);
        options.set_max_write_buffer_number(3);
        if let Some(tune) = &self.tune_log {
            tune(&mut options);
        }
        options
    }

    /// The options of the small column families (metadata, hard state).
    pub(crate) fn small_options(&self) -> rocksdb::Options {
        let mut options = base_options();
        options.set_write_buffer_size(1 << 20);
        options
    }
}

fn base_options() -> rocksdb::Options {
    let mut options = rocksdb::Options::default();
    options.set_compression_type(rocksdb::DBCompressionType::None);
    options
}

impl fmt::Debug for RocksLogStoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksLogStoreOptions")
            .field("cluster_id", &self.cluster_id)
            .field("sync", &self.sync)
            .field("compact_after_purging", &self.compact_after_purging)
            .field("tune_db", &self.tune_db.is_some())
            .field("tune_log", &self.tune_log.is_some())
            .finish()
    }
}
