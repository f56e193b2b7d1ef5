//! Limit algorithms: pure, deterministic state machines that turn measurements into a
//! concurrency limit.
//!
//! An algorithm sees one [`Sample`] per update (normally one per sampling window, see
//! [`WindowConfig`](crate::WindowConfig)) and answers with the new limit. It knows nothing
//! of time, tasks or services, so it can be tested, simulated and property-checked on its
//! own:
//!
//! ```
//! use std::time::Duration;
//! use steadfast_limit::algorithm::{Aimd, LimitAlgorithm, Sample};
//!
//! let mut aimd = Aimd::new().initial_limit(10);
//! let used = Sample::new(Duration::from_millis(20), 10, false);
//! assert_eq!(aimd.update(&used), 11); // the limit was used: +1
//! let idle = Sample::new(Duration::from_millis(20), 2, false);
//! assert_eq!(aimd.update(&idle), 11); // barely used: no growth
//! let drop = Sample::new(Duration::from_millis(20), 11, true);
//! assert_eq!(aimd.update(&drop), 9); // a drop: ×0.9, rounded down
//! ```
//!
//! | algorithm | signal | per update | source |
//! |---|---|---|---|
//! | [`Aimd`] | drops (and RTTs over a timeout) | +1 when used, ×0.9 on a drop | Netflix `AIMDLimit` |
//! | [`Vegas`] | RTT over the no-load RTT, as a queue length | ±`log10(L)`, +`6·log10(L)` without a queue | Netflix `VegasLimit` |
//! | [`Gradient2`] (default) | RTT over a long-term average | ×gradient + `sqrt(L)`, smoothed: ≤ +0.2·`sqrt(L)`, about −10% | Netflix `Gradient2Limit` |
//! | [`Vector`] | RTT over an EWMA (mean + 2.5 deviations), drops | +1 per RTT when used, ×0.9 | Vector's ARC |
//! | [`Little`] | throughput × no-load RTT (Little's law), confirmed by the RTTs per admission level ([`LevelProfile`]) | jumps to the estimate; +1 while the top levels do not queue | ours |
//!
//! The first three follow Netflix's `concurrency-limits` (`AIMDLimit`, `VegasLimit`,
//! `Gradient2Limit`) formula for formula, and [`Vector`] Vector's `controller.rs`; each
//! type's docs list where and why we deviate. [`Little`] is ours: it meets the
//! convergence targets the others miss (back within `[0.8, 1.25]·L*` one window after
//! the capacity halves and 2-9 after it doubles, over many seeds), at the price of
//! goodput and refused bursts on narrow backends; see its docs for the figures.
//!
//! The most important deviation is shared: **the default minimum limit is 1**, not
//! Netflix's 20 for AIMD and Gradient2. A floor of 20 in front of a backend that can only
//! serve 2 requests at once lets 18 requests queue, which at twice the backend's capacity
//! is ten times its unloaded latency (Netflix's own example harness, 2 workers × 20 ms).
//! A floor of 1 lets the limit follow a small backend all the way down; raise it with
//! `min_limit` when a backend is known to be wide.

use std::fmt;
use std::time::Duration;

use crate::error::InvalidLimitConfig;

mod aimd;
mod gradient2;
mod little;
mod profile;
mod vector;
mod vegas;

pub use aimd::Aimd;
pub use gradient2::{Gradient2, QueueSize};
pub use little::Little;
pub use profile::{LevelProfile, LevelStats};
pub use vector::Vector;
pub use vegas::Vegas;

/// What an algorithm learns from one update: the measurements of one sampling window (or
/// of one request, when used unwindowed).
///
/// Netflix passes the same triple to its limits: the window's RTT, the largest number of
/// requests in flight (counted when each request was admitted, itself included) and
/// whether any request was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// The window's round-trip time: the mean RTT of its successful requests (Netflix's
    /// `AverageSampleWindow`), or of its dropped ones when none succeeded.
    pub rtt: Duration,
    /// The smallest RTT of the window's successful requests (the mean, for one request).
    pub min_rtt: Duration,
    /// The largest in-flight count seen when a request of the window was admitted,
    /// that request included.
    pub in_flight: usize,
    /// Whether a request of the window was dropped: refused for overload downstream, or
    /// timed out.
    pub dropped: bool,
    /// Whether a request *admitted* during the window found the limit reached (itself
    /// included): Vector's `reached_limit`. [`in_flight`](Self::in_flight) looks at the
    /// requests that *finished* in the window instead; a window as short as one RTT may
    /// close before the requests admitted at the limit finish. For one request,
    /// `in_flight >= 1` is all that is known: `false`.
    pub limit_reached: bool,
    /// How many requests the window aggregates.
    pub count: usize,
    /// How many successful requests the window stands for: the timed successes behind
    /// [`rtt`](Self::rtt), times the timing stride under heavy traffic (see
    /// [`WindowConfig::timed_per_window`](crate::WindowConfig::timed_per_window)); 0 when
    /// the RTT comes from drops, or from the previous window.
    pub successes: usize,
    /// How long the window lasted, from its first recorded completion to the one that
    /// closed it (zero for one request).
    pub window: Duration,
    /// The window's timed successes by admission level (empty for a sample built with
    /// [`new`](Self::new) alone): what [`Little`] reads to tell a queue at the top levels
    /// from the noise of the window's mean RTT.
    pub profile: LevelProfile,
}

impl Sample {
    /// A sample of one request: `rtt`, admitted with `in_flight` requests in flight (itself
    /// included), dropped or not.
    pub const fn new(rtt: Duration, in_flight: usize, dropped: bool) -> Self {
        Self {
            rtt,
            min_rtt: rtt,
            in_flight,
            dropped,
            limit_reached: false,
            count: 1,
            successes: if dropped { 0 } else { 1 },
            window: Duration::ZERO,
            profile: LevelProfile::with_width(1),
        }
    }

    /// The same sample with its [`profile`](Self::profile).
    #[must_use]
    pub const fn with_profile(mut self, profile: LevelProfile) -> Self {
        self.profile = profile;
        self
    }

    /// The same sample with [`window`](Self::window) and [`successes`](Self::successes)
    /// set: a window of `successes` timed successes lasting `window`.
    #[must_use]
    pub const fn with_window(mut self, window: Duration, successes: usize) -> Self {
        self.window = window;
        self.successes = successes;
        self
    }

    /// The window's mean RTT in seconds, when it timed a success (not an RTT taken from
    /// drops or carried over from the previous window).
    pub fn timed_rtt(&self) -> Option<f64> {
        (self.successes > 0 && !self.rtt.is_zero()).then_some(self.rtt.as_secs_f64())
    }

    /// Whether the window used all of `limit`: a request admitted during it found the
    /// limit reached, or as many requests as `limit` were in flight.
    pub const fn reached(&self, limit: usize) -> bool {
        self.limit_reached || self.in_flight >= limit
    }

    /// Successful requests per second over the window (0 for a zero-length window).
    pub fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.successes as f64 / secs
        } else {
            0.0
        }
    }
}

/// A concurrency-limit algorithm: a deterministic state machine from [`Sample`]s to a
/// limit.
///
/// Implementations must keep the limit at least 1 (a limit of 0 would admit nothing and so
/// never learn again). The layer calls [`update`](Self::update) under a lock, once per
/// sampling window, never on the admission path.
pub trait LimitAlgorithm: fmt::Debug + Send + 'static {
    /// The current limit (at least 1).
    fn limit(&self) -> usize;

    /// Learns from one sample and returns the new limit (at least 1).
    fn update(&mut self, sample: &Sample) -> usize;

    /// Checks the configuration; the layer's builder calls it and refuses to build on an
    /// error. The default accepts everything.
    ///
    /// # Errors
    ///
    /// [`InvalidLimitConfig`] naming the setting out of range.
    fn validate(&self) -> Result<(), InvalidLimitConfig> {
        Ok(())
    }

    /// A short name for traces (`"aimd"`, `"vegas"`, `"gradient2"`).
    fn name(&self) -> &'static str {
        "custom"
    }

    /// How long the algorithm wants its next window to be, if it has a view: the window
    /// is this long, clamped to [`WindowConfig`](crate::WindowConfig)'s `min_window` and
    /// `max_window`. The default, `None`, keeps the configuration's rule (twice the last
    /// window's minimum RTT). [`Vector`] answers its mean RTT: one update per round trip.
    fn next_window(&self) -> Option<Duration> {
        None
    }
}

impl<A: LimitAlgorithm + ?Sized> LimitAlgorithm for Box<A> {
    fn limit(&self) -> usize {
        (**self).limit()
    }

    fn update(&mut self, sample: &Sample) -> usize {
        (**self).update(sample)
    }

    fn validate(&self) -> Result<(), InvalidLimitConfig> {
        (**self).validate()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn next_window(&self) -> Option<Duration> {
        (**self).next_window()
    }
}

/// Netflix's `Log10RootFunction` with baseline 1: `max(1, floor(log10(x)))`.
pub(crate) fn log10_root(x: usize) -> usize {
    // `ilog10` is exact, unlike `(x as f64).log10().floor()` near powers of ten.
    if x < 10 { 1 } else { x.ilog10() as usize }
}

/// Checks the bounds shared by every algorithm.
pub(crate) fn check_bounds(
    min: usize,
    initial: usize,
    max: usize,
) -> Result<(), InvalidLimitConfig> {
    if min == 0 {
        return Err(InvalidLimitConfig::new("min_limit must be at least 1"));
    }
    if min > max {
        return Err(InvalidLimitConfig::new(
            "min_limit must not exceed max_limit",
        ));
    }
    if !(min..=max).contains(&initial) {
        return Err(InvalidLimitConfig::new(
            "initial_limit must be between min_limit and max_limit",
        ));
    }
    Ok(())
}

/// SplitMix64 (Steele, Lea and Flood), for Vegas' probe jitter: tiny, seedable, and the
/// same numbers on every platform.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A seed that differs between processes and between calls, so a fleet of instances
    /// does not re-probe in lockstep.
    pub(crate) fn entropy_seed() -> u64 {
        steadfast_core::splitmix::entropy_seed()
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        steadfast_core::splitmix::next(&mut self.state)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        steadfast_core::splitmix::unit_f64(self.next_u64())
    }
}

/// Converts a float limit to the integer the limiter enforces, as Netflix's `(int)` cast
/// does (truncation), never below 1.
pub(crate) fn to_limit(estimate: f64) -> usize {
    if estimate.is_nan() || estimate < 1.0 {
        1
    } else if estimate >= usize::MAX as f64 {
        usize::MAX
    } else {
        estimate as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log10_root_matches_netflix() {
        for (x, expected) in [
            (0, 1),
            (1, 1),
            (9, 1),
            (10, 1),
            (99, 1),
            (100, 2),
            (999, 2),
            (1000, 3),
        ] {
            assert_eq!(log10_root(x), expected, "{x}");
        }
    }

    #[test]
    fn splitmix_is_deterministic_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
    }
}
