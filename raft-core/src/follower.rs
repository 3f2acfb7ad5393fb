//! The follower role: what a node does with its leader's AppendEntries,
//! heartbeats and snapshot chunks (Figure 2, "AppendEntries RPC",
//! "InstallSnapshot RPC"; section 7).
//!
//! [`Follower`] holds the state only a follower has: the snapshot it is
//! receiving from its leader, chunk by chunk (`snapshot_transfer.rs`). The
//! role in `node.rs` keeps it while the node follows, and while it asks for
//! pre-votes (a pre-candidate has not left its term, so a chunk of the same
//! leader may still continue the transfer); a candidate or leader drops it,
//! losing nothing, since the buffer only ever continues with chunks from
//! the leader and term it started with, and a candidacy ends that term.

use crate::protocol::Core;
use crate::snapshot_transfer::{self, IncomingSnapshot};
use crate::{AppendEntries, AppendEntriesResponse, HeartbeatResponse, LogError, LogId, MessageBody, NodeId};

/// The state only a follower has.
#[derive(Debug, Default)]
pub(crate) struct Follower {
    /// A snapshot being received from the leader, chunk by chunk.
    incoming_snapshot: Option<IncomingSnapshot>,
}

impl Follower {
    /// A follower with nothing in progress.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Handles the current leader's AppendEntries, heartbeats and snapshot
    /// chunks. The caller has recorded the sender as leader.
    pub(crate) fn step(&mut self, core: &mut Core, from: NodeId, body: MessageBody) -> Result<(), LogError> {
        core.election_elapsed = 0;
        core.ticks_since_leader = Some(0);
        match body {
            MessageBody::AppendEntries(append) => handle_append(core, from, append),
            MessageBody::InstallSnapshot(chunk) => {
                snapshot_transfer::handle_install_snapshot(core, &mut self.incoming_snapshot, from, *chunk);
                Ok(())
            }
            MessageBody::Heartbeat(heartbeat) => {
                // The leader sends at most our match index, which our log shares with it.
                core.log.commit_to(heartbeat.commit);
                core.send(from, MessageBody::HeartbeatResponse(HeartbeatResponse { round: heartbeat.round }));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The receiver's side of AppendEntries (Figure 2).
fn handle_append(core: &mut Core, from: NodeId, mut append: AppendEntries) -> Result<(), LogError> {
    // Our committed prefix matches every leader's log: skip what it covers.
    let committed = core.log.committed();
    if append.prev_log_index < committed {
        let skip = (committed - append.prev_log_index) as usize;
        append.entries.drain(..skip.min(append.entries.len()));
        append.prev_log_index = committed;
        append.prev_log_term = core.log.term(committed).unwrap_or_default();
    }

    let prev = LogId::new(append.prev_log_term, append.prev_log_index);
    if !core.log.matches(prev.index, prev.term) {
        let (hint_index, hint_term) =
            core.log.find_conflict_by_term(prev.index.min(core.log.last_index()), prev.term);
        let response = AppendEntriesResponse::Conflict { rejected_index: prev.index, hint_index, hint_term };
        core.send(from, MessageBody::AppendEntriesResponse(response));
        return Ok(());
    }

    let last_new = prev.index + append.entries.len() as u64;
    if let Some(truncated) = core.log.append_after(prev, append.entries)? {
        core.gate.log_truncated(truncated, &core.log);
    }
    // Only entries known to match the leader's may be committed here.
    core.log.commit_to(append.leader_commit.min(last_new));
    core.send(
        from,
        MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success { match_index: last_new }),
    );
    Ok(())
}
