//! Injectable, seedable random numbers for jitter.
//!
//! Backoff schedules draw their jitter from a [`RandomSource`] passed in by the caller, so
//! tests can seed it and replay exact delays, and so one source can be shared by every clone
//! of a service and every thread (`Arc<dyn RandomSource>`).
//!
//! [`SplitMix64`] is the provided source: Steele, Lea and Flood's SplitMix64 (the generator
//! behind Java's `SplittableRandom`), made lock-free by advancing its state with one atomic
//! `fetch_add`. It is fast and statistically good enough for jitter. It is **not**
//! cryptographically secure: never use it for keys, tokens or anything an attacker must not
//! predict.
//!
//! ```
//! use std::sync::Arc;
//! use steadfast_retry::rng::{RandomSource, SplitMix64};
//!
//! let a = SplitMix64::new(42);
//! let b = SplitMix64::new(42);
//! assert_eq!(a.next_u64(), b.next_u64()); // same seed, same sequence
//!
//! let shared: Arc<dyn RandomSource> = Arc::new(SplitMix64::from_entropy());
//! let x = shared.next_f64();
//! assert!((0.0..1.0).contains(&x));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// A source of uniformly distributed random bits, shared by reference across threads.
///
/// Methods take `&self` so one source can serve every clone of a service; implementations
/// use interior mutability (an atomic, a lock, a thread-local) as they see fit.
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// 64 uniformly distributed random bits.
    fn next_u64(&self) -> u64;

    /// A uniform `f64` in `[0, 1)`.
    ///
    /// The provided method uses the top 53 bits of [`next_u64`](Self::next_u64), so every
    /// result is a multiple of 2⁻⁵³ and `1.0` is never returned.
    fn next_f64(&self) -> f64 {
        // 2^-53: the spacing of f64 values in [0.5, 1).
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }
}

impl<R: RandomSource + ?Sized> RandomSource for Arc<R> {
    fn next_u64(&self) -> u64 {
        (**self).next_u64()
    }

    fn next_f64(&self) -> f64 {
        (**self).next_f64()
    }
}

impl<R: RandomSource + ?Sized> RandomSource for &R {
    fn next_u64(&self) -> u64 {
        (**self).next_u64()
    }

    fn next_f64(&self) -> f64 {
        (**self).next_f64()
    }
}

/// The SplitMix64 generator, lock-free and shareable across threads.
///
/// Each draw adds a constant to the state with one atomic `fetch_add` and passes the new
/// state through SplitMix64's finaliser (a bijection). Concurrent callers therefore each see
/// a distinct state, so no two draws within one period of 2⁶⁴ return the same value, and
/// the sequence from a given seed is exactly that of the reference `splitmix64.c`.
///
/// The type is deliberately not `Clone`: a clone would replay the same numbers, giving
/// every clone the same jitter. Share one generator with `Arc` instead.
///
/// Not cryptographically secure; see the [module docs](self).
#[derive(Debug)]
pub struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    /// A generator whose sequence is fully determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the per-process randomness of std's `HashMap`
    /// ([`RandomState`](std::collections::hash_map::RandomState)), which the OS provides once per thread.
    ///
    /// Successive calls give different seeds. This is meant to decorrelate the jitter of
    /// different processes and services, not to be unpredictable: it is not cryptographic.
    pub fn from_entropy() -> Self {
        Self::new(steadfast_core::splitmix::entropy_seed())
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&self) -> u64 {
        // Relaxed is enough: the atomic read-modify-write alone guarantees that each caller
        // sees a distinct value, and no other memory is published through the state.
        steadfast_core::splitmix::next_shared(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn matches_the_reference_splitmix64_outputs() {
        // The first outputs of the reference splitmix64.c seeded with 1234567 (as published
        // on Rosetta Code) and with 0.
        let rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn same_seed_gives_the_same_sequence() {
        let a = SplitMix64::new(7);
        let b = SplitMix64::new(7);
        for _ in 0..1_000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let c = SplitMix64::new(8);
        let a = SplitMix64::new(7);
        assert_ne!(a.next_u64(), c.next_u64());
    }

    #[test]
    fn next_f64_is_in_the_unit_interval() {
        let rng = SplitMix64::new(3);
        for _ in 0..100_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }

    /// A source that always returns the same bits.
    #[derive(Debug)]
    struct Fixed(u64);

    impl RandomSource for Fixed {
        fn next_u64(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn next_f64_extremes() {
        assert_eq!(Fixed(0).next_f64(), 0.0);
        let top = Fixed(u64::MAX).next_f64();
        assert!(top < 1.0);
        assert_eq!(top, 1.0 - f64::EPSILON / 2.0);
    }

    #[test]
    fn next_f64_is_roughly_uniform() {
        let rng = SplitMix64::new(0x5eed);
        let mut bins = [0u32; 10];
        for _ in 0..100_000 {
            bins[(rng.next_f64() * 10.0) as usize] += 1;
        }
        for (i, &count) in bins.iter().enumerate() {
            assert!((9_500..=10_500).contains(&count), "bin {i} has {count}");
        }
    }

    #[test]
    fn concurrent_draws_never_repeat() {
        const DRAWS: usize = 50_000;
        let rng = Arc::new(SplitMix64::new(99));
        let (a, b) = std::thread::scope(|s| {
            let draw = || {
                let rng = Arc::clone(&rng);
                move || (0..DRAWS).map(|_| rng.next_u64()).collect::<Vec<_>>()
            };
            let a = s.spawn(draw());
            let b = s.spawn(draw());
            (a.join().unwrap(), b.join().unwrap())
        });
        let all: HashSet<u64> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 2 * DRAWS);
        // Together the threads consumed exactly the first 2 × DRAWS outputs of the sequence.
        let serial = SplitMix64::new(99);
        let expected: HashSet<u64> = (0..2 * DRAWS).map(|_| serial.next_u64()).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn blanket_impls_forward() {
        let shared: Arc<dyn RandomSource> = Arc::new(SplitMix64::new(1));
        let by_ref: &dyn RandomSource = &shared;
        let reference = SplitMix64::new(1);
        assert_eq!(by_ref.next_u64(), reference.next_u64());
        assert_eq!(shared.next_u64(), reference.next_u64());
        assert_eq!(by_ref.next_f64(), reference.next_f64());
    }

    #[test]
    fn from_entropy_seeds_differ() {
        let a = SplitMix64::from_entropy();
        let b = SplitMix64::from_entropy();
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
