//! SplitMix64, the one small generator the family uses for jitter, probing and throttling
//! decisions (not for anything secret).
//!
//! Each crate keeps its own state (an atomic shared by threads, or a plain `u64` per
//! service) and steps it here, so the arithmetic lives once and every crate draws the
//! sequence of the reference `splitmix64.c`.
//!
//! ```
//! use steadfast_core::splitmix::{GOLDEN_GAMMA, mix, unit_f64};
//!
//! // The first output of the reference generator seeded with 0.
//! assert_eq!(mix(0u64.wrapping_add(GOLDEN_GAMMA)), 0xe220_a839_7b1d_cdaf);
//! assert!((0.0..1.0).contains(&unit_f64(u64::MAX)));
//! ```

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// The SplitMix64 increment: 2⁶⁴ divided by the golden ratio, rounded to odd.
pub const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function (a bijection), applied to the state after it was advanced
/// by [`GOLDEN_GAMMA`].
#[inline]
pub const fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Advances `state` by one step and returns the next output.
#[inline]
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    mix(*state)
}

/// Advances a shared `state` by one step (one relaxed `fetch_add`: concurrent callers each
/// see a distinct state) and returns the next output.
#[inline]
pub fn next_shared(state: &AtomicU64) -> u64 {
    mix(state
        .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
        .wrapping_add(GOLDEN_GAMMA))
}

/// A uniform `f64` in `[0, 1)` from the top 53 bits of `bits`.
#[inline]
pub fn unit_f64(bits: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (bits >> 11) as f64 * SCALE
}

/// A seed from std's per-process hash randomness, different on every call: decorrelates
/// processes and services, it is not unpredictable.
pub fn entropy_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_plain_steps_draw_the_same_sequence() {
        let shared = AtomicU64::new(7);
        let mut plain = 7;
        for _ in 0..100 {
            assert_eq!(next_shared(&shared), next(&mut plain));
        }
        assert_ne!(entropy_seed(), entropy_seed());
    }
}
