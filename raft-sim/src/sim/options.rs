//! The shape of a run ([`SimOptions`]): every field drawn from the seed,
//! the newer ones after the older so that a seed keeps what it was.

use crate::clock::ClockSkew;
use raft_core::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Logical time units (steps) per tick in most runs.
pub const TICK: u64 = 10;
/// Steps per tick in a fine-clock run ([`SimOptions::tick_steps`]).
pub const FINE_TICK: u64 = 1000;

/// The shape of one run, derived from its seed by [`SimOptions::from_seed`].
///
/// Fields added later (clocks, pauses, long delays, replays, the fine clock)
/// are drawn after the older ones, so a seed keeps its older fields. Clock rates are drawn
/// within the bound of `max_clock_drift_ticks` ([`crate::clock`]): 20% of
/// runs tick at one rate, 40% anywhere within the bound, 40% only at its two
/// extremes. Calm runs (no crashes, partitions or loss) have no pauses, long
/// delays or replays either, unless they become fine-clock runs
/// ([`SimOptions::tick_steps`]), which partition.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The seed everything is drawn from.
    pub seed: u64,
    /// Number of voters in the initial configuration (3 or 5).
    pub nodes: u64,
    /// Further nodes outside the initial configuration, which membership
    /// changes may add.
    pub spares: u64,
    /// Chance per step that the leader is asked to change the membership
    /// (and half that, to hand over leadership).
    pub churn_rate: f64,
    /// Steps (time units) of the fault phase.
    pub fault_steps: u64,
    /// Chance per step that a node crashes.
    pub crash_rate: f64,
    /// Chance per step that the partition changes.
    pub partition_rate: f64,
    /// Chance a message is lost (half the partitions turn loss off).
    pub drop_rate: f64,
    /// Chance a message is duplicated.
    pub duplicate_rate: f64,
    /// Maximum message delay in steps (delays are uniform from 1).
    pub max_delay: u64,
    /// Chance per step that a client proposes.
    pub propose_rate: f64,
    /// Pre-vote on the nodes.
    pub pre_vote: bool,
    /// Check-quorum on the nodes.
    pub check_quorum: bool,
    /// The nodes' entry budget per AppendEntries; small budgets split batches
    /// and so expose orderings that one big message would hide.
    pub max_entries_per_msg: usize,
    /// The nodes' in-flight window per follower.
    pub max_inflight_msgs: usize,
    /// Take `Ready`s once per step rather than after every input, so one
    /// `Ready` batches several inputs.
    pub batch_ready: bool,
    /// Entries applied between snapshots.
    pub snapshot_threshold: u64,
    /// Entries kept behind a snapshot.
    pub snapshot_keep_entries: u64,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk_bytes: u64,
    /// Lease reads on (with check-quorum only): some reads, at the leader
    /// or at followers, ask for the leader's lease.
    pub lease_reads: bool,
    /// The nodes' [`Config::max_clock_drift_ticks`], which bounds how far
    /// apart the clock rates are drawn (see [`crate::clock`]).
    pub max_clock_drift_ticks: u64,
    /// How the nodes' clock rates are drawn within that bound.
    pub clock_skew: ClockSkew,
    /// Chance per step that one node's clock rate is redrawn (within the bound).
    pub rate_change_rate: f64,
    /// Chance per step that a node is paused (SIGSTOP); half the pauses hit
    /// the leader, half of those for longer than the election timeout.
    pub pause_rate: f64,
    /// Chance a message is delayed by up to [`LONG_DELAY_TICKS`] ticks instead.
    pub long_delay_rate: f64,
    /// Chance a message is remembered, to be delivered again after its
    /// sender or receiver restarts.
    pub replay_rate: f64,
    /// Steps per tick: [`TICK`], or [`FINE_TICK`] in a fine-clock run.
    ///
    /// At ten steps a tick, a message and a disk write each take about a
    /// tick, so no election fits in a window of one tick, and a bound that
    /// is off by one tick (the lease's) is never exercised. A fine-clock run
    /// (a third of the lease-read runs) has a thousand steps a tick and
    /// messages and writes of a few steps, so one tick holds a whole
    /// election and a commit. Its only faults are partitions that mostly
    /// isolate the leader, with clock rates at or within the drift bound:
    /// the old leader's last lease tick races the others' election, their
    /// write and a client's lease read at the old leader.
    pub tick_steps: u64,
    /// Disk writes take `1..=max_disk_latency` steps.
    pub max_disk_latency: u64,
    /// Chance per step that an idle client starts an operation.
    pub client_rate: f64,
    /// The nodes' [`Config::election_timeout_max`].
    pub election_timeout_max: u64,
    /// Steps after which a client gives up on an operation (its outcome
    /// unknown) and is free for the next.
    pub client_timeout: u64,
}

/// The longest message delay, in ticks: many election timeouts, so a message
/// can arrive terms after it was sent.
pub const LONG_DELAY_TICKS: u64 = 150;

impl SimOptions {
    /// The run that `seed` stands for: its cluster size and fault mix are drawn
    /// from the seed too, so a sweep of seeds covers many mixes.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005E_ED0F_5EED);
        let calm = rng.random_bool(0.2);
        Self {
            seed,
            nodes: if rng.random_bool(0.5) { 3 } else { 5 },
            spares: 2,
            churn_rate: if rng.random_bool(0.3) { 0.0 } else { rng.random_range(0.0..0.01) },
            fault_steps: 3000,
            crash_rate: if calm { 0.0 } else { rng.random_range(0.0..0.004) },
            partition_rate: if calm { 0.0 } else { rng.random_range(0.0..0.006) },
            drop_rate: if calm { 0.0 } else { rng.random_range(0.0..0.2) },
            duplicate_rate: rng.random_range(0.0..0.05),
            max_delay: rng.random_range(1..=40),
            propose_rate: rng.random_range(0.01..0.2),
            pre_vote: rng.random_bool(0.8),
            check_quorum: rng.random_bool(0.8),
            max_entries_per_msg: [1, 2, 3, 64, 1024][rng.random_range(0..5)],
            max_inflight_msgs: [1, 4, 256][rng.random_range(0..3)],
            batch_ready: rng.random_bool(0.5),
            snapshot_threshold: [10, 40, 150, 8192][rng.random_range(0..4)],
            snapshot_keep_entries: [0, 5, 50][rng.random_range(0..3)],
            snapshot_chunk_bytes: [8, 40, 1 << 20][rng.random_range(0..3)],
            lease_reads: false,
            max_clock_drift_ticks: 1,
            clock_skew: ClockSkew::None,
            rate_change_rate: 0.0,
            pause_rate: 0.0,
            long_delay_rate: 0.0,
            replay_rate: 0.0,
            tick_steps: TICK,
            max_disk_latency: 12,
            client_rate: 0.05,
            election_timeout_max: Config::new(1).election_timeout_max,
            client_timeout: 20 * TICK,
        }
        .with_lease_reads(rng.random_bool(0.3))
        .with_storm(rng.random_bool(0.15))
        .with_clocks_and_pauses(&mut rng, calm)
        .with_fine_clock(&mut rng)
    }

    /// A third of the lease-read runs get the fine clock (see
    /// [`SimOptions::tick_steps`]): sixty ticks of isolated leaders, with
    /// clients that give up after 300 steps (so that an isolated leader does
    /// not hold them all) and election timeouts that fire within two ticks
    /// of `election_timeout_min`.
    fn with_fine_clock(self, rng: &mut ChaCha8Rng) -> Self {
        let fine = rng.random_bool(1.0 / 3.0);
        let max_delay = rng.random_range(1..=8);
        if !(fine && self.lease_reads) {
            return self;
        }
        let scale = (FINE_TICK / TICK) as f64;
        Self {
            tick_steps: FINE_TICK,
            fault_steps: 60 * FINE_TICK,
            max_delay,
            max_disk_latency: 3,
            crash_rate: 0.0,
            partition_rate: 1.0 / (6 * FINE_TICK) as f64,
            drop_rate: 0.0,
            churn_rate: 0.0,
            propose_rate: self.propose_rate / scale,
            rate_change_rate: self.rate_change_rate / scale,
            pause_rate: 0.0,
            long_delay_rate: 0.0,
            replay_rate: 0.0,
            client_rate: 0.02,
            election_timeout_max: Config::new(1).election_timeout_min + 2,
            client_timeout: 300,
            ..self
        }
    }

    /// Clock rates, pauses, long delays and replays: drawn after the rest,
    /// so the older fields of a seed stay what they were.
    fn with_clocks_and_pauses(self, rng: &mut ChaCha8Rng, calm: bool) -> Self {
        let clock_skew = match rng.random_range(0..10) {
            0..=1 => ClockSkew::None,
            2..=5 => ClockSkew::Within,
            _ => ClockSkew::Edge,
        };
        Self {
            max_clock_drift_ticks: [1, 1, 2, 3][rng.random_range(0..4)],
            clock_skew,
            rate_change_rate: if rng.random_bool(0.5) { 0.0 } else { rng.random_range(0.0..0.003) },
            pause_rate: if calm || rng.random_bool(0.3) { 0.0 } else { rng.random_range(0.0..0.003) },
            long_delay_rate: if calm || rng.random_bool(0.5) { 0.0 } else { rng.random_range(0.0..0.002) },
            replay_rate: if calm || rng.random_bool(0.5) { 0.0 } else { rng.random_range(0.0..0.02) },
            ..self
        }
    }

    /// Lease reads need check-quorum.
    fn with_lease_reads(self, on: bool) -> Self {
        Self { lease_reads: on && self.check_quorum, ..self }
    }

    /// An election storm: frequent crashes and partitions with one entry per
    /// message, so leaders change while entries of earlier terms are half
    /// replicated: the ground where Figure 8 bugs grow.
    fn with_storm(self, storm: bool) -> Self {
        if !storm {
            return self;
        }
        Self {
            crash_rate: 0.006,
            partition_rate: 0.008,
            max_entries_per_msg: 1,
            max_inflight_msgs: 1,
            drop_rate: self.drop_rate.max(0.1),
            propose_rate: self.propose_rate.max(0.1),
            ..self
        }
    }
}
