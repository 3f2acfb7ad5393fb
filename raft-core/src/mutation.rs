//! Deliberate protocol bugs, to prove that the simulator's checkers catch what
//! they claim to. They exist only in builds made with
//! `RUSTFLAGS="--cfg raft_mutation"`; in every other build [`mutated`] is the
//! constant `false` and the bug paths compile away, so no normal build can
//! reach them.

/// A rule of the protocol that a mutated build breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Commit an entry of an earlier term by counting its replicas (the
    /// Figure 8 bug).
    CommitEarlierTermByCount,
    /// Grant votes without the up-to-date log check (section 5.4.1).
    VoteWithoutLogCheck,
    /// Acknowledge appended entries before they are durable.
    AckBeforePersist,
    /// Switch straight to the new configuration, skipping the joint one.
    SkipJointConsensus,
    /// Apply committed entries before they are durable locally.
    ApplyBeforePersist,
    /// Serve ReadIndex reads without confirming leadership with a quorum.
    ReadWithoutQuorum,
    /// End the lease at `sent + election_timeout_min - max_clock_drift_ticks`,
    /// the bound before issue 10: a tick longer than the followers' promise
    /// is guaranteed to last.
    LeaseOneTickTooLong,
    /// Keep a snapshot's buffered chunks when a chunk at offset 0 comes from
    /// another leader or term with the same metadata, and install what was
    /// gathered without checking its length and checksum (the logic before
    /// issue 10): chunks of two different snapshots can be spliced.
    SnapshotBufferNotReset,
    /// Tell storage to keep its entries after every received snapshot
    /// (`LogAfterInstall::KeepSuffix`), even when the core discarded its log:
    /// the store then keeps entries the core dropped, as a store that decided
    /// from its own log did before the store contract.
    SnapshotAlwaysKeepsStoredSuffix,
    /// Tell storage to discard its log after every received snapshot
    /// (`LogAfterInstall::Discard`), even when the core keeps a suffix it
    /// counts as handed to storage already: the store loses entries the core
    /// keeps.
    SnapshotAlwaysDiscardsStoredLog,
    /// Tell storage to keep its suffix whenever the core's log matches the
    /// snapshot, without asking whether every entry up to it was handed to
    /// storage (the store contract's second condition): an entry replaced in
    /// memory and not yet written leaves the stored suffix behind it.
    SnapshotKeepsSuffixNotYetStored,
    /// Count the runtime's timer firings as ticks, as an interval timer with
    /// `MissedTickBehavior::Delay` does, instead of deriving them from the
    /// monotonic clock: a stalled leader's lease outlasts real time.
    // Only the runtime reads it: without that feature nothing names it.
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
    LeaseOnLogicalTicksOnly,
}

#[cfg(raft_mutation)]
std::thread_local! {
    static ACTIVE: std::cell::Cell<Option<Mutation>> = const { std::cell::Cell::new(None) };
}

/// Activates `mutation` (or none) for nodes run on this thread.
#[cfg(raft_mutation)]
pub fn set(mutation: Option<Mutation>) {
    ACTIVE.with(|active| active.set(mutation));
}

/// Whether `mutation` is active on this thread.
#[cfg(raft_mutation)]
pub(crate) fn mutated(mutation: Mutation) -> bool {
    ACTIVE.with(|active| active.get() == Some(mutation))
}

/// Always false: this build has no mutations.
#[cfg(not(raft_mutation))]
#[inline(always)]
pub(crate) fn mutated(_: Mutation) -> bool {
    false
}
