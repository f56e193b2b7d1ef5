//! The simulator's seeded random numbers: SplitMix64, in independent streams.
//!
//! Every random draw of a run comes from a stream derived from the scenario's seed and a
//! fixed key (arrivals, one per client, one per request attempt...), so the same seed gives
//! the same numbers, and a draw for one request never shifts the draws for another: two
//! stacks run against the same scenario see the same arrivals and, request by request, the
//! same base service times (common random numbers).

/// The SplitMix64 increment: 2⁶⁴ divided by the golden ratio, rounded to odd.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser, a bijection on `u64`.
const fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Keys of the independent streams of one run.
pub(crate) mod stream {
    /// Open-loop arrival times.
    pub(crate) const ARRIVALS: u64 = 1;
    /// The class of each request (keyed by request id).
    pub(crate) const CLASS: u64 = 2;
    /// The base service time of each attempt (keyed by request id and attempt).
    pub(crate) const SERVICE: u64 = 3;
    /// Think times of each closed-loop client (keyed by client).
    pub(crate) const THINK: u64 = 4;
    /// Jitter of client retry delays (keyed by request id and attempt).
    pub(crate) const RETRY: u64 = 5;
}

/// A SplitMix64 generator (Steele, Lea and Flood), the reference `splitmix64.c` sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fully determined by `seed`.
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The stream of `seed` named by `keys`: a different, independent-looking sequence for
    /// every distinct key list.
    pub(crate) fn stream(seed: u64, keys: &[u64]) -> Self {
        let mut h = mix(seed.wrapping_add(GAMMA));
        for &k in keys {
            h = mix(h ^ mix(k.wrapping_add(GAMMA)));
        }
        Self::new(h)
    }

    /// 64 uniformly distributed bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A uniform `f64` in `[0, 1)` (a multiple of 2⁻⁵³).
    pub(crate) fn next_f64(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }

    /// A uniform `f64` in `(0, 1]`, safe to take the logarithm of.
    pub(crate) fn next_open01(&mut self) -> f64 {
        1.0 - self.next_f64()
    }

    /// A standard exponential variate (mean 1), by inversion.
    pub(crate) fn exp1(&mut self) -> f64 {
        -self.next_open01().ln()
    }

    /// A standard normal variate, by the Box–Muller transform (the cosine half).
    pub(crate) fn std_normal(&mut self) -> f64 {
        let u1 = self.next_open01();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64() {
        // First outputs of the reference splitmix64.c seeded with 1234567.
        let mut rng = Rng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(Rng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a = Rng::stream(7, &[3, 1, 0]).next_u64();
        assert_eq!(a, Rng::stream(7, &[3, 1, 0]).next_u64());
        assert_ne!(a, Rng::stream(7, &[3, 1, 1]).next_u64());
        assert_ne!(a, Rng::stream(7, &[3, 0, 1]).next_u64());
        assert_ne!(a, Rng::stream(8, &[3, 1, 0]).next_u64());
    }

    #[test]
    fn normal_and_exponential_moments() {
        let mut rng = Rng::new(42);
        let n = 200_000;
        let (mut s, mut s2, mut e) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let z = rng.std_normal();
            s += z;
            s2 += z * z;
            e += rng.exp1();
        }
        let n = f64::from(n);
        assert!((s / n).abs() < 0.01, "normal mean {}", s / n);
        assert!((s2 / n - 1.0).abs() < 0.02, "normal variance {}", s2 / n);
        assert!((e / n - 1.0).abs() < 0.01, "exponential mean {}", e / n);
    }
}
