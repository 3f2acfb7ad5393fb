//! Why the node refused a call: one enum per entry point of [`crate::RawNode`].

use crate::{ConfigError, Index, LogError, LogId, MembershipError, NodeId, Term};
use thiserror::Error;

/// Why a node could not be created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InitError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The stored log breaks an invariant.
    #[error("stored log is inconsistent: {0}")]
    Log(#[from] LogError),
    /// The stored log holds an entry from a term later than the stored term:
    /// the hard state was not persisted before the entries were.
    #[error("stored entry {index} has term {entry_term}, later than the stored term {term}")]
    EntryFromTheFuture {
        /// The entry's index.
        index: Index,
        /// The entry's term.
        entry_term: Term,
        /// The persisted term.
        term: Term,
    },
    /// The stored configuration is invalid.
    #[error("stored membership is invalid: {0}")]
    Membership(#[from] MembershipError),
    /// The stored term exceeds [`MAX_TERM`](crate::MAX_TERM): the storage is corrupt.
    #[error("stored term {0} exceeds MAX_TERM")]
    TermTooLarge(Term),
    /// The stored snapshot or log reaches an index no real log reaches (half
    /// of `u64::MAX` or more, the bound a peer's snapshot is held to): the
    /// storage is corrupt, and the index arithmetic past it would overflow.
    #[error("stored log reaches index {0}, beyond any real log")]
    IndexTooLarge(Index),
}

/// Why a message was refused. The node's state is unchanged by a refused message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {me}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// The message claims to come from this node itself.
    #[error("message claims to come from this node")]
    FromSelf,
    /// The message breaks the protocol's rules on its face.
    #[error("malformed {kind} from {from}: {reason}")]
    Malformed {
        /// The sender.
        from: NodeId,
        /// The message kind.
        kind: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A leader asked this node to rewrite committed entries.
    #[error("append from {from} rejected: {source}")]
    Log {
        /// The sender.
        from: NodeId,
        /// The log's objection.
        source: LogError,
    },
}

/// Why a proposal was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals. `leader` is the leader this node
    /// knows of, if any, so the client can retry there.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The leader is handing leadership to `target` and accepts no proposals
    /// until that ends; retry at the new leader.
    #[error("leadership is being transferred to node {target}")]
    TransferInProgress {
        /// The node leadership is being handed to.
        target: NodeId,
    },
    /// The command's entry would be larger than one message may carry
    /// ([`crate::MAX_MESSAGE_BYTES`], by [`crate::Entry::size`]): no
    /// transport frame could take it to a follower, and the leader would
    /// send it again forever. Nothing was appended.
    #[error("a command entry of {size} bytes exceeds the largest message of {max} bytes")]
    CommandTooLarge {
        /// The entry's size, by [`crate::Entry::size`].
        size: u64,
        /// The largest allowed, [`crate::MAX_MESSAGE_BYTES`].
        max: u64,
    },
}

/// Why a snapshot handed to [`RawNode::on_snapshot_built`](crate::RawNode::on_snapshot_built) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// The snapshot claims entries that were not handed out for applying.
    #[error("snapshot covers index {index}, but only {applied} was applied")]
    NotApplied {
        /// The snapshot's last index.
        index: Index,
        /// This node's applied index.
        applied: Index,
    },
    /// The snapshot's last entry is not the entry this log holds there.
    #[error("snapshot ends at {last:?}, but the log has term {term:?} there")]
    WrongTerm {
        /// The snapshot's last entry.
        last: LogId,
        /// The term in the log.
        term: Option<Term>,
    },
}

/// Why a read could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    /// No leader is known to ask.
    #[error("no leader is known")]
    NoLeader,
    /// A lease read was asked for but lease reads are off.
    #[error("lease reads are disabled (Config::lease_reads)")]
    LeaseReadsDisabled,
}

/// Why a leadership transfer could not start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransferError {
    /// Only the leader hands over leadership.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The target is not a member of the cluster.
    #[error("node {0} is not a member of the cluster")]
    UnknownNode(NodeId),
    /// The target does not vote (a learner, or leaving the configuration),
    /// so it cannot be elected.
    #[error("node {0} is not a voter")]
    NotAVoter(NodeId),
}

/// Why a membership change was refused. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MembershipChangeError {
    /// Only the leader changes the membership.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// A change is still in flight (or this leader has not yet committed an
    /// entry of its term, so it cannot know whether one is): one at a time.
    #[error("a membership change is already in progress")]
    ChangeInProgress,
    /// The target configuration is invalid.
    #[error("invalid target membership: {0}")]
    Invalid(#[from] MembershipError),
    /// Leadership is being handed over; change the membership at the new leader.
    #[error("leadership is being transferred")]
    TransferInProgress,
    /// The target must be a plain configuration; the leader builds the
    /// joint one itself.
    #[error("the target of a membership change must not be a joint configuration")]
    JointTarget,
    /// A new voter must first join as a learner and catch up.
    #[error("node {node} must join as a learner and catch up before it can vote")]
    NotALearner {
        /// The node.
        node: NodeId,
    },
    /// A learner is too far behind to be promoted yet; promoting it would
    /// weaken availability. Retry once it has caught up.
    #[error("learner {node} has not caught up (match {match_index}, leader's last index {last_index})")]
    NotCaughtUp {
        /// The learner.
        node: NodeId,
        /// What it has.
        match_index: Index,
        /// What the leader has.
        last_index: Index,
    },
}
