//! Distributions of service and think times.

use std::time::Duration;

use crate::rng::Rng;

/// A distribution of durations (service times, think times), sampled with the run's seeded
/// generator.
///
/// Samplers are implemented here (inversion for the exponential and Erlang, Box–Muller for
/// the lognormal), so the numbers depend on nothing but the seed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Distribution {
    /// Always the same duration.
    Constant(Duration),
    /// Exponential with the given mean (coefficient of variation 1): the M in M/M/c.
    Exponential {
        /// The mean.
        mean: Duration,
    },
    /// Lognormal with the given mean; `sigma` is the standard deviation of the underlying
    /// normal (0.5 gives a coefficient of variation of about 0.53). Netflix's load harness
    /// uses a lognormal service time.
    LogNormal {
        /// The mean (not the median: the median is `mean · exp(-sigma²/2)`).
        mean: Duration,
        /// The standard deviation of `ln(x)`; at least 0.
        sigma: f64,
    },
    /// Erlang: the sum of `k` exponentials, each with mean `mean / k` (coefficient of
    /// variation `1/√k`). `k = 1` is the exponential.
    Erlang {
        /// The number of phases; at least 1.
        k: u32,
        /// The mean of the sum.
        mean: Duration,
    },
    /// `base · (1 + jitter · X)` with `X` a standard exponential: Vector's simulated link
    /// (a fixed delay with an exponential tail; mean `base · (1 + jitter)`).
    Jittered {
        /// The minimum duration.
        base: Duration,
        /// The scale of the exponential tail relative to `base`; at least 0.
        jitter: f64,
    },
    /// Uniform between `low` and `high` (inclusive of `low`).
    Uniform {
        /// The smallest value.
        low: Duration,
        /// The largest value; at least `low`.
        high: Duration,
    },
}

/// The largest duration a sample is clamped to (about 31 years), so a wild draw can never
/// overflow an `Instant`.
const MAX_SECS: f64 = 1.0e9;

impl Distribution {
    /// An exponential distribution with the given mean.
    pub const fn exponential(mean: Duration) -> Self {
        Self::Exponential { mean }
    }

    /// A lognormal distribution with the given mean and log-scale deviation `sigma`.
    pub const fn lognormal(mean: Duration, sigma: f64) -> Self {
        Self::LogNormal { mean, sigma }
    }

    /// An Erlang-`k` distribution with the given mean.
    pub const fn erlang(k: u32, mean: Duration) -> Self {
        Self::Erlang { k, mean }
    }

    /// The mean of the distribution.
    pub fn mean(&self) -> Duration {
        match *self {
            Self::Constant(d) => d,
            Self::Exponential { mean }
            | Self::LogNormal { mean, .. }
            | Self::Erlang { mean, .. } => mean,
            Self::Jittered { base, jitter } => base.mul_f64(1.0 + jitter),
            Self::Uniform { low, high } => (low + high) / 2,
        }
    }

    /// Checks the parameters; the error says which one is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match *self {
            Self::LogNormal { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => Err(format!(
                "lognormal sigma must be finite and >= 0, got {sigma}"
            )),
            Self::Erlang { k: 0, .. } => Err("Erlang k must be at least 1".to_owned()),
            Self::Jittered { jitter, .. } if !(jitter.is_finite() && jitter >= 0.0) => {
                Err(format!("jitter must be finite and >= 0, got {jitter}"))
            }
            Self::Uniform { low, high } if low > high => Err(format!(
                "uniform low ({low:?}) must not exceed high ({high:?})"
            )),
            _ => Ok(()),
        }
    }

    /// One sample.
    pub(crate) fn sample(&self, rng: &mut Rng) -> Duration {
        let secs = match *self {
            Self::Constant(d) => return d,
            Self::Exponential { mean } => mean.as_secs_f64() * rng.exp1(),
            Self::LogNormal { mean, sigma } => {
                let mean = mean.as_secs_f64();
                if mean <= 0.0 {
                    return Duration::ZERO;
                }
                let mu = mean.ln() - sigma * sigma / 2.0;
                (mu + sigma * rng.std_normal()).exp()
            }
            Self::Erlang { k, mean } => {
                let k = k.max(1);
                let sum: f64 = (0..k).map(|_| rng.exp1()).sum();
                mean.as_secs_f64() * sum / f64::from(k)
            }
            Self::Jittered { base, jitter } => base.as_secs_f64() * (1.0 + jitter * rng.exp1()),
            Self::Uniform { low, high } => {
                let (low, high) = (low.as_secs_f64(), high.as_secs_f64());
                low + (high - low) * rng.next_f64()
            }
        };
        if secs.is_finite() {
            Duration::from_secs_f64(secs.clamp(0.0, MAX_SECS))
        } else {
            Duration::from_secs_f64(MAX_SECS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_and_cv(d: &Distribution, n: u32) -> (f64, f64) {
        let mut rng = Rng::new(9);
        let xs: Vec<f64> = (0..n).map(|_| d.sample(&mut rng).as_secs_f64()).collect();
        let mean = xs.iter().sum::<f64>() / f64::from(n);
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn sample_means_and_variation_match() {
        let ms20 = Duration::from_millis(20);
        let cases = [
            (Distribution::Constant(ms20), 0.0),
            (Distribution::exponential(ms20), 1.0),
            (
                Distribution::lognormal(ms20, 0.5),
                (0.25f64.exp() - 1.0).sqrt(),
            ),
            (Distribution::erlang(4, ms20), 0.5),
            (
                Distribution::Jittered {
                    base: Duration::from_millis(10),
                    jitter: 1.0,
                },
                0.5,
            ),
            (
                Distribution::Uniform {
                    low: Duration::from_millis(10),
                    high: Duration::from_millis(30),
                },
                (10.0 / 3f64.sqrt()) / 20.0,
            ),
        ];
        for (d, cv) in cases {
            let (m, c) = mean_and_cv(&d, 100_000);
            assert!((m / 0.020 - 1.0).abs() < 0.02, "{d:?}: mean {m}");
            assert!((c - cv).abs() < 0.03, "{d:?}: cv {c}, expected {cv}");
            assert_eq!(d.mean(), ms20, "{d:?}");
        }
    }

    #[test]
    fn validation() {
        assert!(
            Distribution::lognormal(Duration::ZERO, -1.0)
                .validate()
                .is_err()
        );
        assert!(Distribution::erlang(0, Duration::ZERO).validate().is_err());
        assert!(
            Distribution::Uniform {
                low: Duration::from_secs(2),
                high: Duration::from_secs(1)
            }
            .validate()
            .is_err()
        );
        assert!(
            Distribution::exponential(Duration::from_secs(1))
                .validate()
                .is_ok()
        );
    }
}
