//! SplitMix64 for campaign jitter (the same generator as steadfast-retry's, kept private
//! here so the crates stay independent).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

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
        Self::new(RandomState::new().hash_one(GOLDEN_GAMMA))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform `f64` in `[0, 1)`.
    pub(crate) fn next_f64(&self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
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
