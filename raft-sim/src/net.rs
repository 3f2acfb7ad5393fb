//! The simulated network: messages on the wire and how the
//! network treats them ([`NetModel`]).
//!
//! Every message waits on the wire with a delivery time; the wire hands them
//! out in order of that time (then of sending). A message due for a paused
//! node is held for it, in arrival order, until it resumes: a stopped process
//! does not read its sockets, and the kernel queues what arrives.
//!
//! Besides loss, duplication and short delays that reorder messages, the
//! model has two faults that only long runs of a real network show:
//! - **long delays**: now and then a message is held back for up to
//!   [`NetModel::long_delay`] steps, many election timeouts, so it arrives
//!   terms after it was sent;
//! - **duplicates across restarts**: the model remembers a few recent
//!   messages, and when a node restarts some of those it sent or was sent are
//!   delivered again, to a process that no longer has the state they
//!   answered (a TCP retransmit, or a proxy replaying its buffer).

use raft_core::{Message, NodeId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// How the simulated network treats messages.
#[derive(Debug, Clone)]
pub struct NetModel {
    /// The source of every network decision.
    pub rng: ChaCha8Rng,
    /// Chance a message is lost.
    pub drop_rate: f64,
    /// Chance a message is delivered twice.
    pub duplicate_rate: f64,
    /// Delays are uniform in `1..=max_delay` steps, so messages overtake each other.
    pub max_delay: u64,
    /// Chance a message is delayed long instead: uniform in
    /// `max_delay..=long_delay` steps.
    pub long_delay_rate: f64,
    /// The longest delay, in steps.
    pub long_delay: u64,
    /// Chance a sent message is remembered for replay after a restart.
    pub remember_rate: f64,
    /// Messages remembered for replay, newest last.
    remembered: VecDeque<Message>,
}

/// How many messages the network remembers for replays after restarts.
const REMEMBERED: usize = 32;

impl NetModel {
    /// A network with loss, duplication and short delays only: no long
    /// delays and no replays after restarts.
    pub fn new(rng: ChaCha8Rng, drop_rate: f64, duplicate_rate: f64, max_delay: u64) -> Self {
        Self {
            rng,
            drop_rate,
            duplicate_rate,
            max_delay,
            long_delay_rate: 0.0,
            long_delay: 0,
            remember_rate: 0.0,
            remembered: VecDeque::new(),
        }
    }

    /// Delivery delays for the copies of `message`: none if it is lost, two
    /// if it is duplicated. Some messages are remembered for replays.
    pub(crate) fn delays(&mut self, message: &Message) -> Vec<u64> {
        if self.remember_rate > 0.0 && self.rng.random_bool(self.remember_rate) {
            if self.remembered.len() == REMEMBERED {
                self.remembered.pop_front();
            }
            self.remembered.push_back(message.clone());
        }
        if self.rng.random_bool(self.drop_rate) {
            return Vec::new();
        }
        let mut delays = vec![self.delay()];
        if self.rng.random_bool(self.duplicate_rate) {
            delays.push(self.delay());
        }
        delays
    }

    fn delay(&mut self) -> u64 {
        let max = self.max_delay.max(1);
        if self.long_delay > max && self.long_delay_rate > 0.0 && self.rng.random_bool(self.long_delay_rate) {
            return self.rng.random_range(max..=self.long_delay);
        }
        self.rng.random_range(1..=max)
    }

    /// Node `id` restarted: remembered messages from or to it that the
    /// network delivers again, each with its delay.
    pub(crate) fn replays_after_restart(&mut self, id: NodeId) -> Vec<(u64, Message)> {
        let mut replays = Vec::new();
        for i in 0..self.remembered.len() {
            let involved = self.remembered[i].from == id || self.remembered[i].to == id;
            if involved && self.rng.random_bool(0.5) {
                let delay = self.rng.random_range(1..=self.max_delay.max(1));
                replays.push((delay, self.remembered[i].clone()));
            }
        }
        replays
    }

    /// Forgets every remembered message (the fault phase is over).
    pub fn forget(&mut self) {
        self.remembered.clear();
    }
}

/// A message on the wire.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) deliver_at: u64,
    pub(crate) seq: u64,
    pub(crate) message: Message,
}

impl InFlight {
    fn key(&self) -> Reverse<(u64, u64)> {
        Reverse((self.deliver_at, self.seq))
    }
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    /// A max-heap of these pops the earliest delivery time, then the earliest sent.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The messages on the wire, and those held for paused nodes.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    queue: BinaryHeap<InFlight>,
    /// Messages that arrived while their recipient was paused, in arrival order.
    held: BTreeMap<NodeId, Vec<Message>>,
    next_seq: u64,
}

impl Wire {
    /// Puts `message` on the wire, to be delivered at `deliver_at`.
    pub(crate) fn push(&mut self, deliver_at: u64, message: Message) {
        self.queue.push(InFlight { deliver_at, seq: self.next_seq, message });
        self.next_seq += 1;
    }

    /// The next message due by `now`, if any.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<InFlight> {
        if self.queue.peek()?.deliver_at > now {
            return None;
        }
        self.queue.pop()
    }

    /// Holds a message that arrived for a paused node.
    pub(crate) fn hold(&mut self, message: Message) {
        self.held.entry(message.to).or_default().push(message);
    }

    /// What arrived for node `id` while it was paused, in arrival order.
    pub(crate) fn take_held(&mut self, id: NodeId) -> Vec<Message> {
        self.held.remove(&id).unwrap_or_default()
    }

    /// Everything on the wire (not what is held), in sending order, for
    /// scripted delivery.
    pub(crate) fn take_all(&mut self) -> Vec<InFlight> {
        let mut all = std::mem::take(&mut self.queue).into_vec();
        all.sort_by_key(|m| m.seq);
        all
    }

    /// Drops everything on the wire and held.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.held.clear();
    }

    /// Whether nothing is on the wire (held messages wait for their node).
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Every message on the wire or held, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Message> {
        self.queue.iter().map(|m| &m.message).chain(self.held.values().flatten())
    }
}
