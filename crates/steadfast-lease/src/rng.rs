//! SplitMix64 for campaign jitter, stepped by `steadfast_core::splitmix`.

use std::sync::atomic::AtomicU64;

use steadfast_core::splitmix;

#[derive(Debug)]
pub(crate) struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// Seeded from std's per-process hash randomness: decorrelates replicas, not secret.
    pub(crate) fn from_entropy() -> Self {
        Self::new(splitmix::entropy_seed())
    }

    pub(crate) fn next_u64(&self) -> u64 {
        splitmix::next_shared(&self.state)
    }

    /// A uniform `f64` in `[0, 1)`.
    pub(crate) fn next_f64(&self) -> f64 {
        splitmix::unit_f64(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_outputs_and_stays_in_the_unit_interval() {
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        let rng = SplitMix64::new(1);
        assert!((0..10_000).all(|_| (0.0..1.0).contains(&rng.next_f64())));
        assert_ne!(
            SplitMix64::from_entropy().next_u64(),
            SplitMix64::from_entropy().next_u64()
        );
    }
}
