//! Gradient of the short-term RTT against a long-term baseline.

use super::{LimitAlgorithm, Sample, check_bounds, to_limit};
use crate::error::InvalidLimitConfig;

/// How much queueing [`Gradient2`] allows on top of the gradient: the limit's growth per
/// update when there is no queue is `smoothing × queue_size(L)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueSize {
    /// A constant (Netflix `Gradient2Limit`'s default is 4).
    Constant(usize),
    /// `max(min, floor(sqrt(L)))`: Netflix's `SquareRootFunction`, the default of its
    /// first `GradientLimit` (with `min = 4`). Small at small limits, so the standing queue
    /// stays proportionate on a narrow backend.
    SquareRoot {
        /// The smallest queue allowance.
        min: usize,
    },
}

impl QueueSize {
    /// The allowance at limit `limit`.
    pub fn at(self, limit: usize) -> f64 {
        match self {
            Self::Constant(q) => q as f64,
            Self::SquareRoot { min } => limit.isqrt().max(min) as f64,
        }
    }
}

/// Netflix's `Gradient2Limit`: compare each window's RTT with a slow exponential average of
/// past RTTs and scale the limit by the ratio, plus a small queue allowance.
///
/// ```text
/// long = EMA of rtt over `long_window` updates (the plain mean of the first 10)
/// if long / rtt > 2: long = long · 0.95        # fast decay after an overload ends
/// if dropped:        L = max(min_limit, floor(L · backoff_ratio)) # our addition, see below
/// elif in_flight < L/2: keep L                 # app-limited: do not drift upward
/// else:
///   gradient = clamp(tolerance · long / rtt, 0.5, 1.0)
///   new = L · gradient + queue_size(L)
///   L = clamp(L · (1 − smoothing) + new · smoothing, min_limit, max_limit)
/// ```
///
/// The limit settles where `L · (1 − gradient) = queue_size`: a standing queue of
/// `queue_size` requests, plus up to `tolerance` times the baseline latency. Per update it
/// moves at most `+smoothing · queue_size` up and about 10% down (`0.9·L + 0.2·q` with the
/// defaults).
///
/// # Deviations from Netflix
///
/// - **`min_limit` defaults to 1**, not 20. With a floor of 20 in front of a 2-worker
///   backend at twice its capacity, 18 requests wait behind the 2 in service: ten times
///   the unloaded latency (Netflix's own example harness). The floor that matters is the
///   one the formula implies: under sustained overload the gradient saturates at 0.5 and
///   the limit stops falling at `2 · queue_size(L)`, so keep `queue_size` small for
///   narrow backends.
/// - **The queue allowance scales with the limit**: `max(1, floor(sqrt(L)))` (Netflix's
///   `SquareRootFunction`, as its first `GradientLimit` and Envoy's headroom use), not
///   Gradient2's constant 4. The two agree at L = 16..24 (the initial 20); below, a
///   constant 4 keeps the limit at 8 or more under overload whatever the floor. In a
///   simulation of Netflix's harness at twice capacity (2 workers × 20 ms lognormal,
///   `tests/scenarios.rs`), accepted p99 is 129 ms with the square root and 153 ms with
///   the constant, for an unloaded p99 of 58 ms.
/// - **Drops count.** Netflix's `Gradient2Limit` ignores `didDrop`, so a downstream
///   `Overloaded` or a timeout never lowers it; we apply `backoff_ratio` (0.9, from
///   Netflix's first `GradientLimit`) on a drop.
///
/// # Defaults
///
/// | setting | default | source |
/// |---|---|---|
/// | `initial_limit` | 20 | Netflix `Gradient2Limit` |
/// | `min_limit` | **1** | Netflix: 20; see above |
/// | `max_limit` | 200 | Netflix |
/// | `smoothing` | 0.2, in `(0, 1]` | Netflix |
/// | `tolerance` | 1.5, at least 1 | Netflix `rttTolerance` |
/// | `long_window` | 600 updates (warm-up 10) | Netflix |
/// | `queue_size` | **`max(1, floor(sqrt(L)))`** | Netflix: a constant 4; see above |
/// | `backoff_ratio` | 0.9, in `[0.5, 1)` | Netflix `GradientLimit` (v1) |
#[derive(Debug, Clone)]
pub struct Gradient2 {
    initial_limit: usize,
    min_limit: usize,
    max_limit: usize,
    smoothing: f64,
    tolerance: f64,
    queue_size: QueueSize,
    backoff_ratio: f64,
    long: ExpAvg,
    estimate: f64,
}

/// Netflix's `ExpAvgMeasurement`: the plain mean of the first `warmup` values, then an
/// EMA with factor `2 / (window + 1)`.
#[derive(Debug, Clone)]
struct ExpAvg {
    window: usize,
    warmup: usize,
    count: usize,
    sum: f64,
    value: f64,
}

impl ExpAvg {
    const fn new(window: usize, warmup: usize) -> Self {
        Self {
            window,
            warmup,
            count: 0,
            sum: 0.0,
            value: 0.0,
        }
    }

    fn add(&mut self, x: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.sum += x;
            self.value = self.sum / self.count as f64;
        } else {
            let factor = 2.0 / (self.window as f64 + 1.0);
            self.value = self.value * (1.0 - factor) + x * factor;
        }
        self.value
    }
}

impl Gradient2 {
    /// Netflix's default initial limit.
    pub const DEFAULT_INITIAL_LIMIT: usize = 20;
    /// Our default floor (Netflix: 20).
    pub const DEFAULT_MIN_LIMIT: usize = 1;
    /// Netflix's default ceiling.
    pub const DEFAULT_MAX_LIMIT: usize = 200;
    /// Netflix's default smoothing.
    pub const DEFAULT_SMOOTHING: f64 = 0.2;
    /// Netflix's default RTT tolerance.
    pub const DEFAULT_TOLERANCE: f64 = 1.5;
    /// Netflix's default long window, in updates.
    pub const DEFAULT_LONG_WINDOW: usize = 600;
    /// Our default queue allowance, `max(1, floor(sqrt(L)))` (Netflix: a constant 4).
    pub const DEFAULT_QUEUE_SIZE: QueueSize = QueueSize::SquareRoot { min: 1 };
    /// The backoff on a drop (Netflix `GradientLimit`).
    pub const DEFAULT_BACKOFF_RATIO: f64 = 0.9;

    /// Gradient2 with the defaults above.
    pub const fn new() -> Self {
        Self {
            initial_limit: Self::DEFAULT_INITIAL_LIMIT,
            min_limit: Self::DEFAULT_MIN_LIMIT,
            max_limit: Self::DEFAULT_MAX_LIMIT,
            smoothing: Self::DEFAULT_SMOOTHING,
            tolerance: Self::DEFAULT_TOLERANCE,
            queue_size: Self::DEFAULT_QUEUE_SIZE,
            backoff_ratio: Self::DEFAULT_BACKOFF_RATIO,
            long: ExpAvg::new(Self::DEFAULT_LONG_WINDOW, 10),
            estimate: Self::DEFAULT_INITIAL_LIMIT as f64,
        }
    }

    /// The limit to start from (default 20).
    #[must_use]
    pub const fn initial_limit(mut self, limit: usize) -> Self {
        self.initial_limit = limit;
        self.estimate = limit as f64;
        self
    }

    /// The smallest limit (default 1).
    #[must_use]
    pub const fn min_limit(mut self, limit: usize) -> Self {
        self.min_limit = limit;
        self
    }

    /// The largest limit (default 200).
    #[must_use]
    pub const fn max_limit(mut self, limit: usize) -> Self {
        self.max_limit = limit;
        self
    }

    /// The weight of each new estimate, in `(0, 1]` (default 0.2).
    #[must_use]
    pub const fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// How many times the baseline RTT is tolerated before the limit shrinks, at least 1
    /// (default 1.5).
    #[must_use]
    pub const fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The span of the baseline's exponential average, in updates (default 600).
    #[must_use]
    pub const fn long_window(mut self, updates: usize) -> Self {
        self.long = ExpAvg::new(updates, 10);
        self
    }

    /// The queue allowance (default [`QueueSize::SquareRoot`]` { min: 1 }`).
    #[must_use]
    pub const fn queue_size(mut self, queue_size: QueueSize) -> Self {
        self.queue_size = queue_size;
        self
    }

    /// The factor applied on a drop (default 0.9; in `[0.5, 1)`).
    #[must_use]
    pub const fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// The baseline (long-term) RTT in seconds, 0 before the first update.
    pub const fn long_rtt(&self) -> f64 {
        self.long.value
    }
}

impl Default for Gradient2 {
    fn default() -> Self {
        Self::new()
    }
}

impl LimitAlgorithm for Gradient2 {
    fn limit(&self) -> usize {
        to_limit(self.estimate)
    }

    fn update(&mut self, sample: &Sample) -> usize {
        let short = sample.rtt.as_secs_f64();
        if short <= 0.0 {
            return self.limit();
        }
        let estimate = self.estimate;
        let queue = self.queue_size.at(to_limit(estimate));
        let long = self.long.add(short);
        if long / short > 2.0 {
            self.long.value *= 0.95;
        }
        let (min, max) = (self.min_limit as f64, self.max_limit as f64);
        if sample.dropped {
            // On the enforced (integer) limit, as AIMD: floor(L·b) < L for every L >= 1, so
            // a drop always lowers the limit by at least one, unless it is at the floor.
            let backed_off = (to_limit(estimate) as f64 * self.backoff_ratio).floor();
            self.estimate = backed_off.clamp(min, max);
            return self.limit();
        }
        if (sample.in_flight as f64) < estimate / 2.0 {
            return self.limit();
        }
        let gradient = (self.tolerance * long / short).clamp(0.5, 1.0);
        let new = estimate * gradient + queue;
        let new = estimate * (1.0 - self.smoothing) + new * self.smoothing;
        self.estimate = new.clamp(min, max);
        self.limit()
    }

    fn validate(&self) -> Result<(), InvalidLimitConfig> {
        check_bounds(self.min_limit, self.initial_limit, self.max_limit)?;
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(InvalidLimitConfig::new(
                "gradient2 smoothing must be in (0, 1]",
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 1.0) {
            return Err(InvalidLimitConfig::new(
                "gradient2 tolerance must be finite and at least 1",
            ));
        }
        if self.long.window == 0 {
            return Err(InvalidLimitConfig::new(
                "gradient2 long_window must be at least 1",
            ));
        }
        if !(0.5..1.0).contains(&self.backoff_ratio) {
            return Err(InvalidLimitConfig::new(
                "gradient2 backoff_ratio must be in [0.5, 1)",
            ));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "gradient2"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn netflix_rules() {
        let mut g = Gradient2::new();
        // RTT at the baseline, limit used: + 0.2 · 4.
        let l = g.update(&Sample::new(20 * MS, 20, false));
        assert_eq!(l, 20);
        assert!((g.estimate - 20.8).abs() < 1e-9, "{}", g.estimate);
        // App-limited: unchanged.
        g.update(&Sample::new(20 * MS, 5, false));
        assert!((g.estimate - 20.8).abs() < 1e-9);
        // RTT 80 ms: the baseline (still warming up) is mean(20, 20, 80) = 40 ms, so the
        // gradient is 1.5 · 40 / 80 = 0.75.
        g.update(&Sample::new(80 * MS, 20, false));
        let expected = 20.8 * 0.8 + (20.8 * 0.75 + 4.0) * 0.2;
        assert!((g.estimate - expected).abs() < 1e-9, "{}", g.estimate);
    }

    #[test]
    fn baseline_warms_up_then_averages_and_decays_fast() {
        let mut g = Gradient2::new();
        for rtt in [10, 20, 30] {
            g.update(&Sample::new(rtt * MS, 1, false));
        }
        assert!((g.long_rtt() - 0.020).abs() < 1e-12);
        let mut g = Gradient2::new();
        for _ in 0..10 {
            g.update(&Sample::new(100 * MS, 1, false));
        }
        // long 100 ms vs short 10 ms: the EMA step, then the 0.95 decay.
        g.update(&Sample::new(10 * MS, 1, false));
        let f = 2.0 / 601.0;
        let expected = (0.1 * (1.0 - f) + 0.01 * f) * 0.95;
        assert!((g.long_rtt() - expected).abs() < 1e-12);
    }

    #[test]
    fn drops_back_off() {
        let mut g = Gradient2::new().initial_limit(10);
        assert_eq!(g.update(&Sample::new(20 * MS, 1, true)), 9);
    }

    #[test]
    fn queue_sizes() {
        assert_eq!(QueueSize::Constant(4).at(100), 4.0);
        assert_eq!(QueueSize::SquareRoot { min: 1 }.at(2), 1.0);
        assert_eq!(QueueSize::SquareRoot { min: 1 }.at(100), 10.0);
        assert_eq!(QueueSize::SquareRoot { min: 4 }.at(9), 4.0);
    }

    #[test]
    fn validation() {
        assert!(Gradient2::new().validate().is_ok());
        assert!(Gradient2::new().tolerance(0.9).validate().is_err());
        assert!(Gradient2::new().smoothing(1.5).validate().is_err());
        assert!(Gradient2::new().long_window(0).validate().is_err());
        assert!(Gradient2::new().min_limit(30).validate().is_err());
    }
}
