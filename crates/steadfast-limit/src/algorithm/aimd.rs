//! Additive increase, multiplicative decrease.

use std::time::Duration;

use super::{LimitAlgorithm, Sample, check_bounds};
use crate::error::InvalidLimitConfig;

/// Loss-based AIMD, as Netflix's `AIMDLimit`: +1 when the limit is used and nothing was
/// dropped, ×`backoff_ratio` (rounded down) on a drop or an RTT over `timeout`.
///
/// ```text
/// if dropped || rtt > timeout:   L = floor(L · backoff_ratio)
/// elif in_flight · 2 >= L:       L = L + 1        # grow only when at least half used
/// L = clamp(L, min_limit, max_limit)
/// ```
///
/// Growing only when at least half the limit is in use keeps an idle service from
/// drifting to `max_limit` and then admitting a burst it cannot serve (tower-resilience's
/// AIMD grows on every success). AIMD sees no latency: it needs losses (`Overloaded`
/// answers, timeouts, or RTTs over `timeout`) to come down, so give it a `timeout` close to
/// the latency you are willing to accept.
///
/// # Defaults
///
/// | setting | default | source |
/// |---|---|---|
/// | `initial_limit` | 20 | Netflix `AIMDLimit` |
/// | `min_limit` | **1** | Netflix: 20; see the [module docs](super) for why 1 |
/// | `max_limit` | 200 | Netflix |
/// | `backoff_ratio` | 0.9, in `[0.5, 1)` | Netflix |
/// | `timeout` | 5 s | Netflix |
#[derive(Debug, Clone)]
pub struct Aimd {
    initial_limit: usize,
    min_limit: usize,
    max_limit: usize,
    backoff_ratio: f64,
    timeout: Duration,
    limit: usize,
}

impl Aimd {
    /// Netflix's default initial limit.
    pub const DEFAULT_INITIAL_LIMIT: usize = 20;
    /// Our default floor (Netflix: 20).
    pub const DEFAULT_MIN_LIMIT: usize = 1;
    /// Netflix's default ceiling.
    pub const DEFAULT_MAX_LIMIT: usize = 200;
    /// Netflix's default backoff ratio.
    pub const DEFAULT_BACKOFF_RATIO: f64 = 0.9;
    /// Netflix's default timeout: an RTT over it counts as a drop.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// AIMD with the defaults above.
    pub const fn new() -> Self {
        Self {
            initial_limit: Self::DEFAULT_INITIAL_LIMIT,
            min_limit: Self::DEFAULT_MIN_LIMIT,
            max_limit: Self::DEFAULT_MAX_LIMIT,
            backoff_ratio: Self::DEFAULT_BACKOFF_RATIO,
            timeout: Self::DEFAULT_TIMEOUT,
            limit: Self::DEFAULT_INITIAL_LIMIT,
        }
    }

    /// The limit to start from (default 20).
    #[must_use]
    pub const fn initial_limit(mut self, limit: usize) -> Self {
        self.initial_limit = limit;
        self.limit = limit;
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

    /// The factor applied on a drop (default 0.9; must be in `[0.5, 1)`).
    #[must_use]
    pub const fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// An RTT above this counts as a drop (default 5 s).
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new()
    }
}

impl LimitAlgorithm for Aimd {
    fn limit(&self) -> usize {
        self.limit
    }

    fn update(&mut self, sample: &Sample) -> usize {
        let limit = self.limit;
        let next = if sample.dropped || sample.rtt > self.timeout {
            // floor(L·b) < L for every L >= 1 and b < 1: a drop always decreases.
            (limit as f64 * self.backoff_ratio) as usize
        } else if sample.in_flight.saturating_mul(2) >= limit {
            limit.saturating_add(1)
        } else {
            limit
        };
        self.limit = next.clamp(self.min_limit, self.max_limit);
        self.limit
    }

    fn validate(&self) -> Result<(), InvalidLimitConfig> {
        check_bounds(self.min_limit, self.initial_limit, self.max_limit)?;
        if !(0.5..1.0).contains(&self.backoff_ratio) {
            return Err(InvalidLimitConfig::new(
                "aimd backoff_ratio must be in [0.5, 1)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(InvalidLimitConfig::new(
                "aimd timeout must be greater than zero",
            ));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "aimd"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn netflix_rules() {
        let mut a = Aimd::new().initial_limit(10).max_limit(12);
        assert_eq!(a.update(&Sample::new(MS, 5, false)), 11);
        assert_eq!(a.update(&Sample::new(MS, 6, false)), 12);
        assert_eq!(a.update(&Sample::new(MS, 12, false)), 12, "capped");
        assert_eq!(a.update(&Sample::new(MS, 12, true)), 10, "floor(12 * 0.9)");
        assert_eq!(
            a.update(&Sample::new(Duration::from_secs(6), 1, false)),
            9,
            "slow is a drop"
        );
    }

    #[test]
    fn validation() {
        assert!(Aimd::new().validate().is_ok());
        assert!(Aimd::new().backoff_ratio(1.0).validate().is_err());
        assert!(Aimd::new().backoff_ratio(f64::NAN).validate().is_err());
        assert!(Aimd::new().min_limit(0).validate().is_err());
        assert!(Aimd::new().initial_limit(500).validate().is_err());
        assert!(Aimd::new().timeout(Duration::ZERO).validate().is_err());
    }
}
