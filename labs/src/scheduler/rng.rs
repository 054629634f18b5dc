//! A tiny seedable random number generator for breaking score ties.
//!
//! kube-scheduler picks uniformly at random among the nodes that share the
//! top score (`selectHost`), using Go's global `math/rand`. We want the same
//! behaviour *and* reproducible labs and tests, so the randomness comes from a
//! generator the caller seeds. SplitMix64 is ten lines, passes the usual
//! statistical test suites for this kind of use, and needs no dependency.

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit counter scrambled by a
/// fixed mixing function. Every seed, including 0, gives a good sequence.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (Go's `rand.Intn(n)`), for `n > 0`.
    ///
    /// Multiply-and-shift (Lemire) instead of `%`: the bias for any `n` we will
    /// ever see (a few thousand tied nodes) is below 2⁻⁵⁰, far under anything a
    /// test could detect.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_below_stays_in_range() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for n in 1..1000u64 {
            let x = a.below(n);
            assert_eq!(x, b.below(n));
            assert!(x < n);
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }
}
