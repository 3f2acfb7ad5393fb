//! A cluster of [`RawNode`]s driven by hand in one loop: no runtime, no
//! threads, no I/O. Each node's "disk" is a vector and the "network" one
//! queue; a write is durable as soon as it is pushed. What the protocol costs
//! on its own, and how many ticks its elections take, are measured on this.

use bytes::Bytes;
use raft_core::{Config, Entry, InitialState, Membership, Message, NodeId, RawNode, Role};
use std::collections::VecDeque;

/// `n` voters in one loop; node `i + 1` at index `i`.
pub struct HandCluster {
    nodes: Vec<RawNode>,
    disks: Vec<Vec<Entry>>,
    applied: Vec<u64>,
    network: VecDeque<Message>,
    down: Vec<bool>,
}

impl HandCluster {
    /// `n` fresh voters with `config`'s settings (its id is replaced), each
    /// seeding its election timer from `seed` and its id.
    pub fn new(n: u64, config: &Config, seed: u64) -> Self {
        let members = Membership::new(1..=n, []);
        let nodes = (1..=n)
            .map(|id| {
                let state = InitialState { membership: members.clone(), ..Default::default() };
                let config = Config { id, ..config.clone() };
                RawNode::new(config, state, seed.wrapping_mul(1_000_003).wrapping_add(id))
                    .expect("a valid config")
            })
            .collect();
        let n = n as usize;
        Self {
            nodes,
            disks: vec![Vec::new(); n],
            applied: vec![0; n],
            network: VecDeque::new(),
            down: vec![false; n],
        }
    }

    /// Node `id`.
    pub fn node(&mut self, id: NodeId) -> &mut RawNode {
        &mut self.nodes[id as usize - 1]
    }

    /// How many entries node `id` has applied.
    pub fn applied(&self, id: NodeId) -> u64 {
        self.applied[id as usize - 1]
    }

    /// The leader among the nodes that are up, if one of them leads.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .zip(&self.down)
            .find(|(n, down)| !**down && n.role() == Role::Leader)
            .map(|(n, _)| n.id())
    }

    /// Stops node `id`: it is no longer ticked, and what is sent to or by it
    /// is lost.
    pub fn crash(&mut self, id: NodeId) {
        self.down[id as usize - 1] = true;
    }

    /// Ticks every node that is up once.
    pub fn tick(&mut self) {
        for (node, down) in self.nodes.iter_mut().zip(&self.down) {
            if !down {
                node.tick();
            }
        }
    }

    /// Handles every node's `Ready`s and delivers every message, until quiet.
    pub fn run(&mut self) {
        loop {
            for i in 0..self.nodes.len() {
                self.drain(i);
            }
            let Some(message) = self.network.pop_front() else { return };
            let (from, to) = (message.from as usize - 1, message.to as usize - 1);
            if self.down[from] || self.down[to] {
                continue;
            }
            // A message the node refuses (none here) is simply dropped.
            let _ = self.nodes[to].step(message);
        }
    }

    fn drain(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        while node.has_ready() {
            let ready = node.ready();
            self.network.extend(ready.messages);
            if let Some(first) = ready.entries.first() {
                let first = first.index;
                self.disks[i].retain(|e| e.index < first);
            }
            self.disks[i].extend(ready.entries);
            self.network.extend(ready.persisted_messages);
            node.on_persisted(ready.number);
            self.applied[i] += ready.committed_entries.len() as u64;
        }
    }

    /// Elects node 1 without waiting for a timeout.
    pub fn elect_first(&mut self) {
        self.nodes[0].campaign();
        self.run();
        assert_eq!(self.leader(), Some(1), "node 1 wins an uncontested election");
    }

    /// Proposes `count` commands of `payload` at the leader, then runs until
    /// quiet (so all of them commit and apply everywhere).
    pub fn propose(&mut self, leader: NodeId, count: u64, payload: &Bytes) {
        for _ in 0..count {
            self.node(leader).propose(payload.clone()).expect("the leader accepts");
        }
        self.run();
    }
}
