//! Node configuration and its validation.
//!
//! All durations are counted in ticks: the core has no clock, the caller decides
//! how long a tick is (a runtime typically ticks every 10 to 100 ms).

use crate::NodeId;
use thiserror::Error;

/// The largest per-message byte budget [`Config::validate`] accepts, for
/// [`Config::max_bytes_per_msg`] and [`Config::snapshot_chunk_bytes`]: 8 MiB.
///
/// Every message travels as one frame, and a frame over the receiver's limit
/// is refused; the leader then sends the same message again, so a budget
/// above a transport's frame limit stops replication or snapshot transfer to
/// that peer for good. The limits of the shipped transports are the codec's
/// (`raft_core::codec::MAX_VALUE_BYTES`, 64 MiB: `raft-net-tcp`'s default
/// `max_frame_bytes`) and `raft-net-quic`'s default `max_frame_bytes`,
/// 16 MiB. Half of the smallest leaves a message as much again for what it
/// carries besides the budgeted bytes: an InstallSnapshot's metadata (the
/// membership with its addresses), entries' headers. A transport configured
/// with a smaller frame limit needs it at least twice the budgets the nodes
/// use. One entry larger than `max_bytes_per_msg` is still sent, alone, so
/// [`crate::RawNode::propose`] refuses a command whose entry exceeds this
/// maximum: a message's entries then never exceed it either.
pub const MAX_MESSAGE_BYTES: u64 = 8 << 20;

// The maximum leaves a message as much again within the codec's limit (a
// build fails rather than ship a maximum the codec cannot carry).
#[cfg(feature = "codec")]
const _: () = assert!(2 * MAX_MESSAGE_BYTES <= crate::codec::MAX_VALUE_BYTES as u64);

/// How a node behaves. Build one with [`Config::new`], adjust fields, and the
/// node validates it on creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's id. Must not be 0.
    pub id: NodeId,
    /// The lower bound of the randomized election timeout, in ticks. A follower
    /// that heard from a leader more recently than this ignores vote requests
    /// (leader stickiness), and a leader with check-quorum steps down if it has
    /// not heard from a quorum within it.
    pub election_timeout_min: u64,
    /// The upper bound (exclusive) of the randomized election timeout, in ticks.
    /// Randomization is what makes split votes rare (section 5.2).
    pub election_timeout_max: u64,
    /// How often a leader sends heartbeats, in ticks. Must be well below the
    /// election timeout, or followers will campaign against a live leader.
    pub heartbeat_interval: u64,
    /// Run a pre-vote round before incrementing the term, so a node that was
    /// partitioned away cannot disrupt a healthy cluster on its return
    /// (thesis section 9.6). On by default.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout
    /// steps down, so clients stop talking to an isolated leader. On by default.
    pub check_quorum: bool,
    /// The most AppendEntries messages a leader keeps in flight to one follower
    /// while replicating optimistically (pipelining).
    pub max_inflight_msgs: usize,
    /// The most entries in one AppendEntries message.
    pub max_entries_per_msg: usize,
    /// The byte budget of one AppendEntries message (see [`crate::Entry::size`]).
    /// A single entry larger than the budget is still sent, alone. At most
    /// [`MAX_MESSAGE_BYTES`], so that a message fits every transport's frame.
    pub max_bytes_per_msg: u64,
    /// A learner may be promoted to voter only while its log is within this
    /// many entries of the leader's...
    pub learner_catch_up_lag: u64,
    /// ...and has been for this many consecutive heartbeat rounds.
    pub learner_catch_up_rounds: u32,
    /// Allow lease-based reads ([`crate::ReadMode::Lease`]): served without a
    /// heartbeat round while the leader's lease holds. Off by default; needs
    /// `check_quorum`.
    ///
    /// A lease lasts `election_timeout_min - 1 - max_clock_drift_ticks` of the
    /// leader's ticks from the sending of a heartbeat a quorum answered, and
    /// is safe only if ticks really measure time: no node's ticks may come
    /// slower than [`Config::max_clock_drift_ticks`] allows. The core trusts
    /// its caller for that. A caller that stops ticking for a while (a
    /// paused process or VM, a long garbage collection, a blocked thread)
    /// must, before it gives the node any other input, deliver every tick it
    /// missed, counted on a monotonic clock; a leader that resumes without
    /// them believes its lease is younger than it is, and can serve stale
    /// reads while another leader accepts writes. See the module
    /// documentation of reads (`read.rs`) for the derivation.
    ///
    /// With it on, a node that restarts refuses to vote for
    /// `election_timeout_min` ticks after it starts, since it may have
    /// promised a leader not to before it crashed. Every node of a cluster
    /// must agree on `lease_reads`, `election_timeout_min` and
    /// `max_clock_drift_ticks`: a leader's lease counts on its followers'
    /// promises, which those settings define. [`Config::validate`]
    /// refuses it when the lease would be shorter than one tick, and when
    /// `max_clock_drift_ticks` is 0.
    pub lease_reads: bool,
    /// How much slower one node's clock may run than another's: at most this
    /// many ticks per `election_timeout_min` ticks, measured over any
    /// interval of an election timeout. Precisely, for the real times `P_i`
    /// between two ticks of each node, `max P / min P <= election_timeout_min
    /// / (election_timeout_min - max_clock_drift_ticks)`. With the defaults
    /// (1 per 10) a leader's clock may run about 11 % slower than a
    /// follower's. The lease is shortened by this many ticks (and by one
    /// more, for the rounding of time to whole ticks). A pause of the caller
    /// counts as drift unless the missed ticks are delivered afterwards (see
    /// [`Config::lease_reads`]). Must be below `election_timeout_min`, and
    /// with lease reads at least 1, since no two real clocks run at exactly
    /// the same rate.
    pub max_clock_drift_ticks: u64,
    /// Ask for a snapshot ([`crate::Ready::request_snapshot`]) once this many
    /// entries have been applied since the last one.
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot, so that followers a little
    /// behind catch up from the log rather than from the snapshot.
    pub snapshot_keep_entries: u64,
    /// The byte budget of one snapshot chunk: chunks are this long but the
    /// last. At most [`MAX_MESSAGE_BYTES`], so that a chunk fits every
    /// transport's frame.
    pub snapshot_chunk_bytes: u64,
    /// The largest snapshot a follower accepts; a leader claiming more is
    /// refused, so a hostile peer cannot make a node buffer without bound.
    pub max_snapshot_bytes: u64,
}

impl Config {
    /// A configuration with the defaults for node `id`: election timeout of 10
    /// to 20 ticks, heartbeat every 2 ticks, pre-vote and check-quorum on, 256
    /// messages in flight, at most 1024 entries or 1 MiB per message, and
    /// learners promotable once within 64 entries for 3 heartbeat rounds.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_timeout_min: 10,
            election_timeout_max: 20,
            heartbeat_interval: 2,
            pre_vote: true,
            check_quorum: true,
            max_inflight_msgs: 256,
            max_entries_per_msg: 1024,
            max_bytes_per_msg: 1024 * 1024,
            learner_catch_up_lag: 64,
            learner_catch_up_rounds: 3,
            lease_reads: false,
            max_clock_drift_ticks: 1,
            snapshot_threshold: 8192,
            snapshot_keep_entries: 1024,
            snapshot_chunk_bytes: 1024 * 1024,
            max_snapshot_bytes: 1 << 32,
        }
    }

    /// Checks the configuration, naming the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_interval == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.heartbeat_interval >= self.election_timeout_min {
            return Err(ConfigError::HeartbeatNotBelowElection {
                heartbeat: self.heartbeat_interval,
                election_min: self.election_timeout_min,
            });
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(ConfigError::EmptyElectionRange {
                min: self.election_timeout_min,
                max: self.election_timeout_max,
            });
        }
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError::Zero("max_inflight_msgs"));
        }
        if self.max_entries_per_msg == 0 {
            return Err(ConfigError::Zero("max_entries_per_msg"));
        }
        if self.max_bytes_per_msg == 0 {
            return Err(ConfigError::Zero("max_bytes_per_msg"));
        }
        if self.max_bytes_per_msg > MAX_MESSAGE_BYTES {
            return Err(ConfigError::MessageBudgetTooLarge {
                field: "max_bytes_per_msg",
                value: self.max_bytes_per_msg,
                max: MAX_MESSAGE_BYTES,
            });
        }
        if self.learner_catch_up_rounds == 0 {
            return Err(ConfigError::Zero("learner_catch_up_rounds"));
        }
        if self.snapshot_threshold == 0 {
            return Err(ConfigError::Zero("snapshot_threshold"));
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError::Zero("snapshot_chunk_bytes"));
        }
        if self.snapshot_chunk_bytes > MAX_MESSAGE_BYTES {
            return Err(ConfigError::MessageBudgetTooLarge {
                field: "snapshot_chunk_bytes",
                value: self.snapshot_chunk_bytes,
                max: MAX_MESSAGE_BYTES,
            });
        }
        if self.max_snapshot_bytes == 0 {
            return Err(ConfigError::Zero("max_snapshot_bytes"));
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::LeaseReadsNeedCheckQuorum);
        }
        if self.max_clock_drift_ticks >= self.election_timeout_min {
            return Err(ConfigError::DriftNotBelowElection {
                drift: self.max_clock_drift_ticks,
                election_min: self.election_timeout_min,
            });
        }
        if self.lease_reads && self.max_clock_drift_ticks == 0 {
            return Err(ConfigError::LeaseReadsNeedDriftBound);
        }
        if self.lease_reads && self.election_timeout_min < self.max_clock_drift_ticks + 2 {
            return Err(ConfigError::LeaseTooShort {
                drift: self.max_clock_drift_ticks,
                election_min: self.election_timeout_min,
            });
        }
        Ok(())
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Node id 0 is reserved to mean "no node".
    #[error("node id must not be 0")]
    ZeroId,
    /// A zero heartbeat interval would send heartbeats continuously.
    #[error("heartbeat_interval must be at least 1 tick")]
    ZeroHeartbeat,
    /// Followers would time out before hearing a heartbeat.
    #[error("heartbeat_interval ({heartbeat}) must be below election_timeout_min ({election_min})")]
    HeartbeatNotBelowElection {
        /// The configured heartbeat interval.
        heartbeat: u64,
        /// The configured minimum election timeout.
        election_min: u64,
    },
    /// The randomized election timeout needs a non-empty range to avoid split votes.
    #[error("election_timeout_max ({max}) must exceed election_timeout_min ({min})")]
    EmptyElectionRange {
        /// The configured minimum.
        min: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A limit that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A per-message byte budget above [`MAX_MESSAGE_BYTES`]: its messages
    /// could exceed a transport's frame limit, and a message a peer cannot
    /// receive is sent again forever.
    #[error(
        "{field} is {value} bytes, above the protocol maximum of {max} bytes (raft_core::MAX_MESSAGE_BYTES): \
         larger messages may not fit a transport frame"
    )]
    MessageBudgetTooLarge {
        /// The setting: `max_bytes_per_msg` or `snapshot_chunk_bytes`.
        field: &'static str,
        /// Its configured value.
        value: u64,
        /// The largest allowed, [`MAX_MESSAGE_BYTES`].
        max: u64,
    },
    /// Lease reads are safe only if an isolated leader steps down.
    #[error("lease_reads requires check_quorum")]
    LeaseReadsNeedCheckQuorum,
    /// A drift as long as the election timeout leaves no lease at all.
    #[error("max_clock_drift_ticks ({drift}) must be below election_timeout_min ({election_min})")]
    DriftNotBelowElection {
        /// The configured drift bound.
        drift: u64,
        /// The configured minimum election timeout.
        election_min: u64,
    },
    /// Lease reads with a drift bound of zero assume identical clock rates,
    /// which no two real clocks have.
    #[error("lease_reads requires max_clock_drift_ticks of at least 1")]
    LeaseReadsNeedDriftBound,
    /// The lease, `election_timeout_min - 1 - max_clock_drift_ticks` ticks,
    /// would be shorter than one tick: lease reads could never be served.
    #[error(
        "lease_reads needs election_timeout_min ({election_min}) of at least max_clock_drift_ticks \
         ({drift}) + 2, for a lease of one tick or more"
    )]
    LeaseTooShort {
        /// The configured drift bound.
        drift: u64,
        /// The configured minimum election timeout.
        election_min: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::new(1).validate(), Ok(()));
        assert_eq!(Config { lease_reads: true, ..Config::new(1) }.validate(), Ok(()));
    }

    /// The smallest election timeout that leaves a lease of one tick, and
    /// drift bounds without lease reads, which shorten nothing.
    #[test]
    fn boundaries_of_the_lease_checks() {
        let lease = |min, drift| Config {
            lease_reads: true,
            election_timeout_min: min,
            election_timeout_max: min + 10,
            heartbeat_interval: 1,
            max_clock_drift_ticks: drift,
            ..Config::new(1)
        };
        assert_eq!(lease(3, 1).validate(), Ok(()));
        assert_eq!(lease(3, 2).validate(), Err(ConfigError::LeaseTooShort { drift: 2, election_min: 3 }));
        assert_eq!(lease(10, 8).validate(), Ok(()));
        let no_lease = Config { max_clock_drift_ticks: 0, ..Config::new(1) };
        assert_eq!(no_lease.validate(), Ok(()));
    }

    /// Both per-message budgets: the protocol maximum is accepted, one byte
    /// more is a typed error naming the setting.
    #[test]
    fn message_budgets_are_capped_at_the_protocol_maximum() {
        type Set = fn(&mut Config, u64);
        let fields: [(&str, Set); 2] = [
            ("max_bytes_per_msg", |c, v| c.max_bytes_per_msg = v),
            ("snapshot_chunk_bytes", |c, v| c.snapshot_chunk_bytes = v),
        ];
        for (field, set) in fields {
            let with = |value| {
                let mut config = Config::new(1);
                set(&mut config, value);
                config.validate()
            };
            assert_eq!(with(MAX_MESSAGE_BYTES), Ok(()), "{field} at the maximum");
            let over = with(MAX_MESSAGE_BYTES + 1);
            let expected = ConfigError::MessageBudgetTooLarge {
                field,
                value: MAX_MESSAGE_BYTES + 1,
                max: MAX_MESSAGE_BYTES,
            };
            assert_eq!(over, Err(expected), "{field} one byte over");
            assert_eq!(
                with(u64::MAX),
                Err(ConfigError::MessageBudgetTooLarge { field, value: u64::MAX, max: MAX_MESSAGE_BYTES })
            );
            let message = over.unwrap_err().to_string();
            assert!(message.starts_with(field) && message.contains("8388608"), "{message}");
        }
    }

    /// Messages filled to the maximum budget, with large indexes, terms and a
    /// membership of 100 addressed nodes, encode in frames of at most twice
    /// the maximum: what the smallest shipped frame limit (raft-net-quic's
    /// default, 16 MiB) holds.
    #[cfg(feature = "codec")]
    #[test]
    fn messages_at_the_maximum_budget_fit_twice_the_maximum() {
        use crate::{
            AppendEntries, Entry, EntryPayload, InstallSnapshot, LogId, Membership, Message, MessageBody,
        };
        let membership = (1..=100).fold(Membership::new(1..=100, []), |m, id| {
            m.with_address(id, format!("raft-node-{id:03}.a-long-cluster-domain.example.com:7000"))
        });
        let chunk = InstallSnapshot {
            meta: crate::SnapshotMeta { last: LogId::new(u64::MAX, u64::MAX), membership },
            offset: u64::MAX - MAX_MESSAGE_BYTES,
            data: bytes::Bytes::from(vec![0xA5; MAX_MESSAGE_BYTES as usize]),
            done: false,
            total_len: u64::MAX,
            checksum: u32::MAX,
        };
        // One-byte commands: the most entries, so the most headers, a budget holds.
        let (first, term) = (1 << 40, 1 << 30);
        let mut entries = Vec::new();
        let mut budget = 0;
        while budget < MAX_MESSAGE_BYTES {
            let entry = Entry {
                index: first + entries.len() as u64,
                term,
                payload: EntryPayload::Command(vec![7].into()),
            };
            budget += entry.size();
            entries.push(entry);
        }
        let append =
            AppendEntries { prev_log_index: first - 1, prev_log_term: term, entries, leader_commit: first };
        let bodies = [MessageBody::InstallSnapshot(Box::new(chunk)), MessageBody::AppendEntries(append)];
        for body in bodies {
            let message = Message { from: u64::MAX, to: u64::MAX, term: u64::MAX, body };
            let mut frame = Vec::new();
            crate::codec::encode_frame(&message, &mut frame).expect("a message within the budgets encodes");
            assert!(frame.len() as u64 <= 2 * MAX_MESSAGE_BYTES, "{} bytes", frame.len());
        }
    }

    /// A change that makes a default configuration invalid.
    type Breakage = fn(&mut Config);

    #[test]
    fn bad_configs_are_typed_errors() {
        let cases: Vec<(Breakage, ConfigError)> = vec![
            (|c| c.id = 0, ConfigError::ZeroId),
            (|c| c.heartbeat_interval = 0, ConfigError::ZeroHeartbeat),
            (
                |c| c.heartbeat_interval = 10,
                ConfigError::HeartbeatNotBelowElection { heartbeat: 10, election_min: 10 },
            ),
            (|c| c.election_timeout_max = 10, ConfigError::EmptyElectionRange { min: 10, max: 10 }),
            (|c| c.max_inflight_msgs = 0, ConfigError::Zero("max_inflight_msgs")),
            (|c| c.max_entries_per_msg = 0, ConfigError::Zero("max_entries_per_msg")),
            (|c| c.max_bytes_per_msg = 0, ConfigError::Zero("max_bytes_per_msg")),
            (
                |c| {
                    c.lease_reads = true;
                    c.check_quorum = false
                },
                ConfigError::LeaseReadsNeedCheckQuorum,
            ),
            (
                |c| c.max_clock_drift_ticks = 10,
                ConfigError::DriftNotBelowElection { drift: 10, election_min: 10 },
            ),
            (
                |c| {
                    c.lease_reads = true;
                    c.max_clock_drift_ticks = 0
                },
                ConfigError::LeaseReadsNeedDriftBound,
            ),
            (
                |c| {
                    c.lease_reads = true;
                    c.max_clock_drift_ticks = 9
                },
                ConfigError::LeaseTooShort { drift: 9, election_min: 10 },
            ),
        ];
        for (mutate, expected) in cases {
            let mut config = Config::new(1);
            mutate(&mut config);
            assert_eq!(config.validate(), Err(expected));
        }
    }
}
