//! Per-node clocks that drift within the configured bound, and pauses.
//!
//! **Drift.** Node `i` ticks every `P_i` steps. The core's lease assumes that
//! a node's clock runs slower than another's by at most
//! `max_clock_drift_ticks` ticks per `election_timeout_min` ticks
//! ([`raft_core::Config::max_clock_drift_ticks`]), that is
//! `max P / min P <= election_timeout_min / (election_timeout_min -
//! max_clock_drift_ticks)`. Periods are whole steps, so that a run can sit
//! exactly on that edge: the slowest period is one tick's steps and the
//! fastest the least whole number of steps the bound allows. A run's
//! [`ClockSkew`] says whether every node ticks at one rate, at rates drawn
//! anywhere within the bound, or only at the two extremes (where bugs live).
//! A node's rate may change mid-run, always within the bound, so the ratio
//! over any interval stays within it too.
//!
//! **Pauses.** A paused node is alive but stopped, as under SIGSTOP: its
//! clock's ticks pass unseen. On resuming it is owed every tick its clock
//! counted in the meantime ([`Clocks::resume`]), which a correct runtime
//! delivers before anything else.

use raft_core::NodeId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How a run's clock rates are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSkew {
    /// Every node ticks once per [`crate::sim::SimOptions::tick_steps`] steps.
    None,
    /// Each node's period is drawn uniformly within the drift bound.
    Within,
    /// Each node's period is the fastest or the slowest the bound allows, and
    /// both occur: the edge of the bound.
    Edge,
}

/// One node's clock.
#[derive(Debug, Clone)]
struct Clock {
    /// Steps per tick.
    period: u64,
    /// The step of the next tick.
    next_tick: u64,
    paused: bool,
}

/// Every node's clock (node `id` at index `id - 1`).
#[derive(Debug, Clone)]
pub struct Clocks {
    clocks: Vec<Clock>,
    fastest: u64,
    slowest: u64,
    skew: ClockSkew,
}

impl Clocks {
    /// Clocks for `nodes` nodes whose slowest period is `slowest` steps,
    /// under the drift bound of `election_timeout_min` and `drift` ticks.
    pub fn new(
        rng: &mut ChaCha8Rng,
        nodes: u64,
        slowest: u64,
        election_timeout_min: u64,
        drift: u64,
        skew: ClockSkew,
    ) -> Self {
        let fastest = fastest_period(slowest, election_timeout_min, drift);
        let mut clocks = Self { clocks: Vec::new(), fastest, slowest, skew };
        for i in 0..nodes {
            let period = clocks.draw(rng);
            let next_tick = rng.random_range(1..=period);
            clocks.clocks.push(Clock { period, next_tick, paused: false });
            // An edge run has both extremes.
            if skew == ClockSkew::Edge && i < 2 {
                clocks.clocks[i as usize].period = if i == 0 { fastest } else { slowest };
            }
        }
        clocks
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> u64 {
        match self.skew {
            ClockSkew::None => self.slowest,
            ClockSkew::Within => rng.random_range(self.fastest..=self.slowest),
            ClockSkew::Edge => {
                if rng.random_bool(0.5) {
                    self.fastest
                } else {
                    self.slowest
                }
            }
        }
    }

    fn clock(&mut self, id: NodeId) -> &mut Clock {
        &mut self.clocks[id as usize - 1]
    }

    /// The periods, in steps per tick, of every node.
    pub fn periods(&self) -> Vec<u64> {
        self.clocks.iter().map(|c| c.period).collect()
    }

    /// Whether node `id` ticks at step `now` (call once per step); a paused
    /// node's ticks are counted for [`Clocks::resume`] instead.
    pub fn ticks_at(&mut self, id: NodeId, now: u64) -> bool {
        let clock = self.clock(id);
        if clock.paused || clock.next_tick > now {
            return false;
        }
        clock.next_tick += clock.period;
        true
    }

    /// Draws a new rate for node `id`, within the bound; its next tick keeps
    /// its time.
    pub fn change_rate(&mut self, rng: &mut ChaCha8Rng, id: NodeId) -> u64 {
        let period = self.draw(rng);
        self.clock(id).period = period;
        period
    }

    /// Node `id` stops; its ticks pass unseen until [`Clocks::resume`].
    pub fn pause(&mut self, id: NodeId) {
        self.clock(id).paused = true;
    }

    /// Node `id` resumes at step `now`: the ticks its clock counted while it
    /// was stopped, which it is now owed.
    pub fn resume(&mut self, id: NodeId, now: u64) -> u64 {
        let clock = self.clock(id);
        clock.paused = false;
        if clock.next_tick > now {
            return 0;
        }
        let missed = (now - clock.next_tick) / clock.period + 1;
        clock.next_tick += missed * clock.period;
        missed
    }

    /// Node `id` crashed while paused: its missed ticks are nobody's.
    pub fn forget_pause(&mut self, id: NodeId, now: u64) {
        self.resume(id, now);
    }
}

/// The fastest whole period the drift bound allows against `slowest`:
/// the least `p` with `slowest / p <= min / (min - drift)`.
pub fn fastest_period(slowest: u64, election_timeout_min: u64, drift: u64) -> u64 {
    let allowed = election_timeout_min.saturating_sub(drift).max(1);
    (slowest * allowed).div_ceil(election_timeout_min).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn periods_stay_within_the_drift_bound_and_edge_runs_reach_it() {
        assert_eq!(fastest_period(10, 10, 1), 9);
        assert_eq!(fastest_period(10, 10, 3), 7);
        assert_eq!(fastest_period(10, 20, 1), 10, "9.5 rounds up: 10/9 would exceed 20/19");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for skew in [ClockSkew::None, ClockSkew::Within, ClockSkew::Edge] {
            let mut clocks = Clocks::new(&mut rng, 5, 10, 10, 2, skew);
            for _ in 0..50 {
                let id = rng.random_range(1..=5);
                clocks.change_rate(&mut rng, id);
                let periods = clocks.periods();
                let (min, max) = (periods.iter().min().unwrap(), periods.iter().max().unwrap());
                // max / min <= 10 / 8
                assert!(max * 8 <= min * 10, "{skew:?}: {periods:?}");
            }
        }
        let edge = Clocks::new(&mut rng, 3, 10, 10, 2, ClockSkew::Edge).periods();
        assert!(edge.contains(&8) && edge.contains(&10), "{edge:?}");
    }

    #[test]
    fn a_resumed_clock_is_owed_the_ticks_it_counted_while_paused() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut clocks = Clocks::new(&mut rng, 1, 10, 10, 1, ClockSkew::None);
        let first = (1..=10).find(|&now| clocks.ticks_at(1, now)).unwrap();
        clocks.pause(1);
        assert!(!(first + 1..first + 100).any(|now| clocks.ticks_at(1, now)));
        // Paused from `first` to `first + 95`: ticks due at first+10, ..., first+90.
        assert_eq!(clocks.resume(1, first + 95), 9);
        assert!(clocks.ticks_at(1, first + 100));
    }
}
