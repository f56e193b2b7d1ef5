//! Vector's Adaptive Request Concurrency (ARC).

use std::time::Duration;

use super::{LimitAlgorithm, Sample};
use crate::error::InvalidLimitConfig;
use crate::window::WindowConfig;

/// Vector's Adaptive Request Concurrency: +1 per round trip while the limit is used and
/// the RTT is no worse than usual, ×0.9 on back pressure or when the RTT is unusually
/// high, judged against an exponentially weighted mean and deviation of past RTTs.
///
/// ```text
/// past = EWMA of window RTTs (alpha 0.4), with its variance
/// per window (about one mean RTT long):
///   first window:  past = rtt; keep L                     # no history yet
///   threshold = sqrt(past.variance) · deviation_scale
///   if L < max && limit reached && no drop && rtt <= past.mean:   L = L + 1
///   elif L > 1 && (drop || rtt >= past.mean + threshold):         L = max(1, floor(L · 0.9))
///   past.update(rtt)          # only windows with a successful request carry an RTT
/// EWMA update of x: d = x − mean; mean += alpha·d; variance = (1 − alpha)(variance + alpha·d²)
/// ```
///
/// Source: `vectordotdev/vector`, `src/sinks/util/adaptive_concurrency/controller.rs`
/// (digest in the project's references). "Limit reached" is Vector's `reached_limit`: a
/// request admitted during the window found `L` requests in flight, itself included
/// ([`Sample::limit_reached`], or [`Sample::in_flight`] `>= L`); a drop is its back pressure (a retriable error, a
/// timeout, or here any [`Outcome::Overload`](steadfast_core::classify::Outcome)).
///
/// **Windows.** Vector updates once per mean RTT (`next_update = now + past.mean`), and
/// this algorithm asks for that through [`LimitAlgorithm::next_window`]. The layer clamps
/// every window to its [`WindowConfig`]: use [`Vector::window_config`] (no minimum length,
/// one request per window) for Vector's behaviour; with the default 1 s windows the limit
/// grows by one per second instead of one per round trip.
///
/// Vector's limit is a backpressure semaphore in front of a sink; here the same state
/// machine drives any [`Mode`](crate::Mode). One difference from Vector, in what the
/// window reports rather than in the rules: its window RTT is the mean of the window's
/// successful responses, as ours, but ours may be a sample of them under heavy traffic
/// ([`WindowConfig::timed_per_window`]).
///
/// # Defaults
///
/// | setting | default | source |
/// |---|---|---|
/// | `initial_limit` | 1 | Vector `initial_concurrency` |
/// | `max_limit` | 200 | Vector `max_concurrency_limit` |
/// | `decrease_ratio` | 0.9, in `(0, 1)` | Vector |
/// | `ewma_alpha` | 0.4, in `(0, 1]` | Vector |
/// | `rtt_deviation_scale` | 2.5, at least 0 | Vector |
///
/// Vector chose these "after running several simulations"; `tests/vector_scenarios.rs`
/// runs its twelve scenarios against this type.
#[derive(Debug, Clone)]
pub struct Vector {
    initial_limit: usize,
    max_limit: usize,
    decrease_ratio: f64,
    ewma_alpha: f64,
    rtt_deviation_scale: f64,
    limit: usize,
    past: Option<EwmaVar>,
}

/// Vector's `EwmaVar`: an exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EwmaVar {
    mean: f64,
    variance: f64,
}

impl EwmaVar {
    fn update(&mut self, x: f64, alpha: f64) {
        let d = x - self.mean;
        self.mean += alpha * d;
        self.variance = (1.0 - alpha) * (self.variance + alpha * d * d);
    }
}

impl Vector {
    /// Vector's default initial limit.
    pub const DEFAULT_INITIAL_LIMIT: usize = 1;
    /// Vector's default ceiling.
    pub const DEFAULT_MAX_LIMIT: usize = 200;
    /// Vector's default decrease ratio.
    pub const DEFAULT_DECREASE_RATIO: f64 = 0.9;
    /// Vector's default EWMA weight.
    pub const DEFAULT_EWMA_ALPHA: f64 = 0.4;
    /// Vector's default deviation scale.
    pub const DEFAULT_RTT_DEVIATION_SCALE: f64 = 2.5;

    /// Vector's algorithm with its defaults.
    pub const fn new() -> Self {
        Self {
            initial_limit: Self::DEFAULT_INITIAL_LIMIT,
            max_limit: Self::DEFAULT_MAX_LIMIT,
            decrease_ratio: Self::DEFAULT_DECREASE_RATIO,
            ewma_alpha: Self::DEFAULT_EWMA_ALPHA,
            rtt_deviation_scale: Self::DEFAULT_RTT_DEVIATION_SCALE,
            limit: Self::DEFAULT_INITIAL_LIMIT,
            past: None,
        }
    }

    /// The windows Vector uses: as long as the algorithm asks (its mean RTT, up to 10 s),
    /// closed by a single request. Pass it to the layer's
    /// [`window`](crate::AdaptiveConcurrencyLayerBuilder::window).
    pub const fn window_config() -> WindowConfig {
        WindowConfig::new()
            .min_window(Duration::ZERO)
            .max_window(Duration::from_secs(10))
            .min_samples(1)
    }

    /// The limit to start from (default 1).
    #[must_use]
    pub const fn initial_limit(mut self, limit: usize) -> Self {
        self.initial_limit = limit;
        self.limit = limit;
        self
    }

    /// The largest limit (default 200).
    #[must_use]
    pub const fn max_limit(mut self, limit: usize) -> Self {
        self.max_limit = limit;
        self
    }

    /// The factor applied on a decrease (default 0.9; in `(0, 1)`).
    #[must_use]
    pub const fn decrease_ratio(mut self, ratio: f64) -> Self {
        self.decrease_ratio = ratio;
        self
    }

    /// The weight of each new RTT in the past average (default 0.4; in `(0, 1]`).
    #[must_use]
    pub const fn ewma_alpha(mut self, alpha: f64) -> Self {
        self.ewma_alpha = alpha;
        self
    }

    /// How many deviations above the past mean an RTT must be to decrease the limit
    /// (default 2.5; at least 0).
    #[must_use]
    pub const fn rtt_deviation_scale(mut self, scale: f64) -> Self {
        self.rtt_deviation_scale = scale;
        self
    }

    /// The past RTT's mean and standard deviation, in seconds, once one has been measured.
    pub fn past_rtt(&self) -> Option<(f64, f64)> {
        self.past.map(|p| (p.mean, p.variance.sqrt()))
    }
}

impl Default for Vector {
    fn default() -> Self {
        Self::new()
    }
}

impl LimitAlgorithm for Vector {
    fn limit(&self) -> usize {
        self.limit
    }

    fn update(&mut self, sample: &Sample) -> usize {
        let current = sample.timed_rtt();
        let Some(past) = self.past.as_mut() else {
            // Vector's first response only seeds the average (a drop before it changes
            // nothing either).
            if let Some(rtt) = current {
                self.past = Some(EwmaVar {
                    mean: rtt,
                    variance: 0.0,
                });
            }
            return self.limit;
        };
        let threshold = past.variance.sqrt() * self.rtt_deviation_scale;
        if self.limit < self.max_limit
            && sample.reached(self.limit)
            && !sample.dropped
            && current.is_some_and(|rtt| rtt <= past.mean)
        {
            self.limit += 1;
        } else if self.limit > 1
            && (sample.dropped || current.is_some_and(|rtt| rtt >= past.mean + threshold))
        {
            self.limit = ((self.limit as f64 * self.decrease_ratio) as usize).max(1);
        }
        if let Some(rtt) = current {
            past.update(rtt, self.ewma_alpha);
        }
        self.limit
    }

    fn validate(&self) -> Result<(), InvalidLimitConfig> {
        if self.initial_limit == 0 {
            return Err(InvalidLimitConfig::new("initial_limit must be at least 1"));
        }
        if self.initial_limit > self.max_limit {
            return Err(InvalidLimitConfig::new(
                "initial_limit must not exceed max_limit",
            ));
        }
        if !(self.decrease_ratio > 0.0 && self.decrease_ratio < 1.0) {
            return Err(InvalidLimitConfig::new(
                "vector decrease_ratio must be in (0, 1)",
            ));
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return Err(InvalidLimitConfig::new(
                "vector ewma_alpha must be in (0, 1]",
            ));
        }
        if !(self.rtt_deviation_scale.is_finite() && self.rtt_deviation_scale >= 0.0) {
            return Err(InvalidLimitConfig::new(
                "vector rtt_deviation_scale must be finite and at least 0",
            ));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "vector"
    }

    fn next_window(&self) -> Option<Duration> {
        // Before any RTT: close the first window on its first response (Vector updates
        // its average at once), then one mean RTT.
        Some(self.past.map_or(Duration::ZERO, |p| {
            Duration::try_from_secs_f64(p.mean).unwrap_or(Duration::MAX)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ok(rtt_ms: u64, in_flight: usize) -> Sample {
        Sample::new(MS * rtt_ms as u32, in_flight, false)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn vector_rules_by_hand() {
        let mut v = Vector::new().initial_limit(4);
        assert_eq!(v.next_window(), Some(Duration::ZERO));
        // First window: seeds the average, keeps the limit.
        assert_eq!(v.update(&ok(100, 4)), 4);
        assert_eq!(v.past_rtt(), Some((0.1, 0.0)));
        assert_eq!(v.next_window(), Some(100 * MS));
        // Reached, rtt 100 <= mean 100: +1. Average unchanged (d = 0).
        assert_eq!(v.update(&ok(100, 4)), 5);
        // Not reached (4 < 5): no growth; and with no deviation yet, an RTT equal to the
        // mean is already "mean + 2.5 × 0" (Vector's `>=`): ×0.9 → floor(4.5) = 4.
        assert_eq!(v.update(&ok(100, 4)), 4);
        // rtt 150 >= 100: floor(3.6) = 3. Then the EWMA:
        // d = 0.05, mean = 0.1 + 0.4·0.05 = 0.12, var = 0.6·(0 + 0.4·0.0025) = 0.0006.
        assert_eq!(v.update(&ok(150, 4)), 3);
        let (mean, dev) = v.past_rtt().expect("measured");
        assert!(
            close(mean, 0.12) && close(dev * dev, 0.0006),
            "{mean} {dev}"
        );
        // threshold = 2.5·sqrt(0.0006) = 0.0612: 0.17 < 0.12 + 0.0612 = 0.1812, and
        // 0.17 > mean: neither rule; the average moves on:
        // d = 0.05, mean = 0.14, var = 0.6·(0.0006 + 0.001) = 0.00096.
        assert_eq!(v.update(&ok(170, 3)), 3);
        let (mean, dev) = v.past_rtt().expect("measured");
        assert!(
            close(mean, 0.14) && close(dev * dev, 0.00096),
            "{mean} {dev}"
        );
        // A drop decreases whatever the RTT: floor(2.7) = 2, and its RTT is not averaged.
        assert_eq!(v.update(&Sample::new(100 * MS, 3, true)), 2);
        assert!(close(v.past_rtt().expect("measured").0, 0.14));
        // rtt 100 <= mean 140, reached (2 >= 2): +1.
        assert_eq!(v.update(&ok(100, 2)), 3);
    }

    #[test]
    fn floors_at_one_and_caps_at_max() {
        let mut v = Vector::new().max_limit(2);
        v.update(&ok(10, 1));
        assert_eq!(v.update(&ok(10, 1)), 2);
        assert_eq!(v.update(&ok(5, 2)), 2, "capped");
        assert_eq!(v.update(&Sample::new(10 * MS, 2, true)), 1);
        assert_eq!(v.update(&Sample::new(10 * MS, 1, true)), 1, "floor");
    }

    #[test]
    fn a_window_of_drops_only_leaves_the_average_alone() {
        let mut v = Vector::new().initial_limit(10);
        v.update(&ok(100, 1));
        // Only drops: no RTT (successes 0), 1 s timeouts must not enter the average.
        let timeouts = Sample::new(Duration::from_secs(1), 10, true);
        assert_eq!(timeouts.successes, 0);
        assert_eq!(v.update(&timeouts), 9);
        assert_eq!(v.past_rtt(), Some((0.1, 0.0)));
    }

    #[test]
    fn validation() {
        assert!(Vector::new().validate().is_ok());
        assert!(Vector::new().initial_limit(0).validate().is_err());
        assert!(Vector::new().initial_limit(300).validate().is_err());
        assert!(Vector::new().decrease_ratio(1.0).validate().is_err());
        assert!(Vector::new().ewma_alpha(0.0).validate().is_err());
        assert!(
            Vector::new()
                .rtt_deviation_scale(f64::NAN)
                .validate()
                .is_err()
        );
        assert!(Vector::window_config().validate().is_ok());
    }
}
