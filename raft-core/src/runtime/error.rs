//! Why the runtime refused or failed a request ([`RaftError`]), why a node
//! could not start ([`StartError`]), and why a running node stopped on its
//! own ([`Failure`]).
//!
//! Every error a handle returns is cloneable, because one failure answers
//! many waiting callers: a store's [`StorageError`] (which holds an
//! [`std::io::Error`], not `Clone`) is shared behind an [`Arc`], so callers
//! can still match on what the store said.

use super::RestoreError;
use crate::{MembershipChangeError, ReadError, StorageError, TransferError};
use std::sync::Arc;
use thiserror::Error;

/// Why a request failed. Each variant says what the caller knows.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RaftError {
    /// This node does not lead: retry at `leader`, if known, which can be
    /// reached at `address` if the configuration records one. Nothing
    /// happened.
    #[error("not the leader (leader: {leader:?} at {address:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<crate::NodeId>,
        /// The leader's address, from the configuration.
        address: Option<String>,
    },
    /// The proposal was definitely not applied: a new leader replaced it.
    #[error("the proposal was not applied")]
    NotApplied,
    /// The proposal may or may not have been applied (the node stopped, a
    /// snapshot covered it, the node left the cluster, or it lost its
    /// leadership and then heard from no leader for the runtime's
    /// [`forward_timeout`](super::RuntimeConfig::forward_timeout), before its
    /// outcome was seen here).
    #[error("the outcome of the proposal is unknown")]
    OutcomeUnknown,
    /// The node is shut down.
    #[error("the node is shut down")]
    ShutDown,
    /// The node stopped on its own (its store failed, its state machine
    /// could not restore a snapshot, or one of its tasks panicked):
    /// requests waiting then, wherever they wait, and every request after,
    /// get this. A proposal waiting then may or may not have been applied
    /// (one whose entry an applier that panicked held hears
    /// [`RaftError::OutcomeUnknown`], which says as much).
    #[error("the node stopped: {0}")]
    Failed(Failure),
    /// The command could not be encoded, or encodes to more than one
    /// message may carry ([`crate::ProposeError::CommandTooLarge`]).
    /// Nothing happened.
    #[error("the command could not be encoded: {0}")]
    Encode(String),
    /// A membership change was refused.
    #[error(transparent)]
    Membership(#[from] MembershipChangeError),
    /// A leadership transfer was refused.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A read could not be served as asked (a lease read with lease reads
    /// off). Nothing happened.
    #[error(transparent)]
    Read(ReadError),
    /// A read was not confirmed in time. Nothing happened; retry.
    #[error("the read was not confirmed in time")]
    Timeout,
    /// The command was applied, but its response could not be relayed (it
    /// did not encode at the leader, or decode here).
    #[error("the command was applied, but its response was lost: {0}")]
    Response(String),
}

/// Why a running node stopped on its own. Cloneable: the same failure
/// answers every request that was waiting and every one made after.
#[derive(Debug, Clone, Error)]
pub enum Failure {
    /// A call to the [`LogStore`](crate::LogStore) failed; `source` is what
    /// the store said (match on its variant: an I/O error, corruption, ...).
    #[error("the log store failed to {call}: {source}")]
    Store {
        /// Which call failed.
        call: StoreCall,
        /// The store's error, shared by every clone of this failure.
        #[source]
        source: Arc<StorageError>,
    },
    /// The state machine could not restore a snapshot received from the
    /// leader.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// One of the node's tasks ended on its own (a panic in the state
    /// machine or the store), and the node must not run on without it.
    #[error("the {task} task {end}")]
    TaskEnded {
        /// Which task.
        task: Task,
        /// How it ended.
        end: TaskEnd,
    },
}

impl Failure {
    /// A failure of the store's `call`.
    pub(super) fn store(call: StoreCall, error: StorageError) -> Self {
        Self::Store { call, source: Arc::new(error) }
    }

    /// The store's error, if the store is what failed.
    pub fn storage_error(&self) -> Option<&StorageError> {
        match self {
            Self::Store { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Two failures are equal when they are of the same kind and say the same
/// thing (a [`StorageError`] cannot be compared itself: it may hold an
/// [`std::io::Error`]).
impl PartialEq for Failure {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Store { call: a, source: x }, Self::Store { call: b, source: y }) => {
                a == b && (Arc::ptr_eq(x, y) || x.to_string() == y.to_string())
            }
            (Self::Restore(a), Self::Restore(b)) => a == b,
            (Self::TaskEnded { task: a, end: x }, Self::TaskEnded { task: b, end: y }) => a == b && x == y,
            _ => false,
        }
    }
}

impl Eq for Failure {}

/// The [`LogStore`](crate::LogStore) call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCall {
    /// [`LogStore::write`](crate::LogStore::write): entries, hard state, a
    /// snapshot from the leader, a purge.
    Write,
    /// [`LogStore::save_snapshot`](crate::LogStore::save_snapshot): a
    /// snapshot this node built.
    SaveSnapshot,
}

impl std::fmt::Display for StoreCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Write => "write",
            Self::SaveSnapshot => "save a snapshot",
        })
    }
}

/// One of the node's I/O tasks (the core task is the one that notices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The task that writes the log store.
    LogWriter,
    /// The task that applies entries to the state machine.
    Applier,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LogWriter => "log writer",
            Self::Applier => "applier",
        })
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// It panicked.
    Panicked,
    /// It was cancelled (its runtime is shutting down).
    Cancelled,
    /// It returned, though it should run as long as the node.
    Stopped,
}

impl std::fmt::Display for TaskEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Panicked => "panicked",
            Self::Cancelled => "was cancelled",
            Self::Stopped => "stopped",
        })
    }
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The store could not be loaded.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored state or the configuration is invalid.
    #[error(transparent)]
    Init(#[from] crate::InitError),
    /// The state machine could not restore the stored snapshot.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// Another node is reading the [`Inbox`](super::Inbox) (one that has
    /// not stopped yet): each node needs its own.
    #[error("the inbox is in use by a node that is still running")]
    InboxInUse,
}
