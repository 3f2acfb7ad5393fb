//! The core task's logical clock, derived from tokio's monotonic one.
//!
//! The protocol measures every timeout, and the leader's lease, in ticks.
//! The runtime does not count timer firings (a stalled process would lose
//! every tick it missed, and its lease would outlast real time without
//! bound); it owes the core `elapsed / tick` ticks at every instant since the
//! node started, and delivers all that are due before it acts on each input.
//! So when the core checks a lease, its tick count is at least the real time
//! elapsed, read after the input was taken from its queue, and a read served
//! under that lease is linearized at that reading, which lies within the
//! read's interval (it was dequeued, so it had been asked).
//!
//! The clock is `tokio::time::Instant`: monotonic (a wall clock that jumps
//! cannot stretch a lease), and driven by tokio's paused test clock. The
//! lease rests on it advancing while the process is stopped (SIGSTOP,
//! swapping, a host pausing its VM under a paravirtual clock); Linux's
//! `CLOCK_MONOTONIC` does not advance while the whole machine is suspended,
//! which the lease's clock-drift bound does not cover.

use crate::mutation::{mutated, Mutation};
use tokio::time::{Duration, Instant};

/// How many ticks the core takes at most in one go after a stall, or at
/// least twice its longest election timeout. The rest are skipped: by then
/// every lease and timer the core had has run out anyway, and skipping
/// keeps a node that stalled for hours from replaying every tick.
const MAX_CATCH_UP: u64 = 1000;

/// The ticks owed to the core: `(now - start) / tick`.
pub(super) struct Clock {
    start: Instant,
    /// One tick, in nanoseconds (at least 1).
    tick: u64,
    /// Ticks delivered, skipped ones included.
    delivered: u64,
    /// When the next tick falls due.
    next: Instant,
    /// The most ticks delivered in one go.
    max_catch_up: u64,
}

impl Clock {
    /// A clock whose first tick falls due `tick` from now. A zero `tick`
    /// counts as one millisecond.
    pub(super) fn new(tick: Duration, election_timeout_max: u64) -> Self {
        let tick = if tick.is_zero() { Duration::from_millis(1) } else { tick };
        let tick = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
        let start = Instant::now();
        Self {
            start,
            tick,
            delivered: 0,
            next: start + Duration::from_nanos(tick),
            max_catch_up: MAX_CATCH_UP.max(election_timeout_max.saturating_mul(2)),
        }
    }

    /// When the next tick falls due (the core task sleeps until then when
    /// nothing else wakes it).
    pub(super) fn next_due(&self) -> Instant {
        self.next
    }

    /// Reads the clock and returns how many ticks to deliver now.
    pub(super) fn due(&mut self) -> u64 {
        let now = Instant::now();
        if now < self.next {
            return 0;
        }
        if mutated(Mutation::LeaseOnLogicalTicksOnly) {
            // The old interval timer with `MissedTickBehavior::Delay`: one
            // tick per firing, whatever the stall.
            self.delivered += 1;
            self.next = now + Duration::from_nanos(self.tick);
            return 1;
        }
        let elapsed = u64::try_from((now - self.start).as_nanos()).unwrap_or(u64::MAX);
        let owed = elapsed / self.tick;
        let due = owed.saturating_sub(self.delivered);
        self.delivered = owed;
        self.next = self.start + Duration::from_nanos(owed.saturating_add(1).saturating_mul(self.tick));
        due.min(self.max_catch_up)
    }
}
