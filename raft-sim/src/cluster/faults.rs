//! The faults a driver injects into a [`Cluster`]: pauses (SIGSTOP and
//! SIGCONT), crashes and restarts from disk, and cut links.

use super::Cluster;
use crate::checker::Violation;
use crate::kv::KvStore;
use crate::trace;
use raft_core::{Membership, NodeId, RawNode};

impl Cluster {
    /// Pauses node `id`, as SIGSTOP does: it stays alive with all its state
    /// but ticks, receives, writes and answers nothing until
    /// [`Cluster::resume`]; messages for it are held.
    pub fn pause(&mut self, id: NodeId) {
        if self.is_up(id) && self.paused.insert(id) {
            self.log_event(|| format!("n{id} pauses"));
        }
    }

    /// Whether node `id` is paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.paused.contains(&id)
    }

    /// Resumes a paused node as a correct runtime resumes after SIGCONT:
    /// first the `missed_ticks` its clock counted while it was stopped, then
    /// the messages that arrived meanwhile, in arrival order.
    pub fn resume(&mut self, id: NodeId, missed_ticks: u64) {
        if !self.paused.remove(&id) {
            return;
        }
        self.log_event(|| format!("n{id} resumes after missing {missed_ticks} ticks"));
        for _ in 0..missed_ticks {
            self.tick(id);
        }
        for message in self.wire.take_held(id) {
            self.deliver(message);
        }
    }

    /// Crashes node `id`: pending writes, and the messages waiting on them, are lost.
    pub fn crash(&mut self, id: NodeId) {
        let lost = self.nodes[&id].pending.len();
        self.log_event(|| trace::crashed(id, lost));
        if self.paused.remove(&id) {
            self.wire.take_held(id); // lost with the process's sockets
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        node.raft = None;
        node.pending.clear();
        node.kv = KvStore::default();
        node.reads.clear();
        let check = self.checker.on_crash(id, node.disk.last_index());
        self.record(check);
    }

    /// Restarts node `id` from its disk (crashing it first if it is up).
    pub fn restart(&mut self, id: NodeId) {
        if self.is_up(id) {
            self.crash(id);
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        node.incarnation += 1;
        // A node outside the initial configuration starts as the docs tell
        // joiners to: with no members, until its learner entry reaches it.
        let membership = if self.initial.contains(id) { self.initial.clone() } else { Membership::default() };
        let state = node.disk.initial_state(membership);
        node.kv = node.disk.snapshot.as_ref().and_then(|s| KvStore::restore(&s.data)).unwrap_or_default();
        self.checker.on_restart(id, node.kv.applied());
        let seed = self.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ node.incarnation.rotate_left(32);
        match RawNode::new(node.config.clone(), state, seed) {
            Ok(raft) => {
                if let Some(t) = &mut self.trace {
                    t.reset_commit(id, raft.log().committed());
                    t.push(self.now, format!("n{id} starts {}", trace::node(&raft)));
                }
                node.raft = Some(raft);
            }
            Err(e) => {
                self.log_event(|| format!("n{id} fails to start: {e}"));
                let v = Violation { property: "Restart from durable state", detail: e.to_string() };
                self.record(Err(v));
            }
        }
        self.drain(id);
        let replays = self.net.as_mut().map(|net| net.replays_after_restart(id)).unwrap_or_default();
        for (delay, message) in replays {
            self.log_event(|| format!("replay {} (n{id} restarted) delay={delay}", trace::message(&message)));
            self.wire.push(self.now + delay, message);
        }
    }

    /// Cuts the links between every node of `a` and every node of `b`, both ways.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut_link(x, y);
                self.cut_link(y, x);
            }
        }
    }

    /// Cuts the link from `from` to `to` only.
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.log_event(|| format!("cut n{from} -> n{to}"));
        self.cut.insert((from, to));
    }

    /// Cuts node `id` off from every other node.
    pub fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.ids().into_iter().filter(|&o| o != id).collect();
        self.partition(&[id], &others);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.log_event(|| "heal all links".to_string());
        self.cut.clear();
    }

    /// Drops every message in flight.
    pub fn drop_in_flight(&mut self) {
        for message in self.wire.take_all() {
            self.log_event(|| format!("drop {} (in flight)", trace::message(&message.message)));
        }
        self.wire.clear();
    }
}
