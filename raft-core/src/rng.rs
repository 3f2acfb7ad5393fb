//! A tiny deterministic random number generator (SplitMix64) for election
//! timeouts. Written here rather than taken from a crate so that a seed means
//! the same sequence forever, whatever dependency versions a build resolves:
//! simulator seeds recorded in regression tests must keep replaying.

/// SplitMix64 (Steele, Lea and Flood, 2014): fast, and good enough to spread
/// election timeouts. Not for anything that needs unpredictability.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`, or 0 if `bound` is 0. The modulo bias is
    /// negligible for the small bounds of election timeouts.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}
