//! TCP Vegas-style delay-based limit.

use std::time::Duration;

use super::{LimitAlgorithm, Sample, SplitMix64, check_bounds, log10_root, to_limit};
use crate::error::InvalidLimitConfig;

/// Delay-based limit after TCP Vegas, as Netflix's `VegasLimit`: estimate the queue from
/// how much the RTT exceeds the no-load RTT, grow while the queue is short, shrink when it
/// is long.
///
/// ```text
/// LOG10(x) = max(1, floor(log10(x)))
/// alpha = 3·LOG10(L)   beta = 6·LOG10(L)   threshold = LOG10(L)
/// per sample:
///   probes += 1
///   if probes >= jitter·probe_multiplier·L:      # jitter ~ U[0.5, 1), redrawn each probe
///       rtt_noload = rtt; probes = 0             # re-probe: forget the old minimum
///   elif rtt < rtt_noload: rtt_noload = rtt      # a new minimum
///   if dropped:                 new = L − LOG10(L)
///   elif re-baselined above:    keep L
///   elif in_flight·2 < L:       keep L           # app-limited: do not drift upward
///   else: queue = ceil(L·(1 − rtt_noload/rtt))
///         queue <= threshold → new = L + beta    # no queue: grow fast
///         queue <  alpha     → new = L + LOG10(L)
///         queue >  beta      → new = L − LOG10(L)
///         otherwise          → keep L
///   L = (1 − smoothing)·L + smoothing·clamp(new, min_limit, max_limit)
/// ```
///
/// **The minRTT re-probe** is what keeps Vegas honest over time: a no-load RTT measured
/// once goes stale when the backend gets slower for good (a bigger data set, a new
/// version), and a stale, too-low baseline reads as a permanent queue and pins the limit
/// at the floor. Netflix re-baselines every `jitter × probe_multiplier × L` updates; the
/// jitter keeps a fleet of instances from probing in lockstep (tower-resilience's Vegas
/// never re-probes). The jitter comes from a seeded generator: pass
/// [`seed`](Self::seed) for reproducible runs.
///
/// Deviation from Netflix: a drop always decreases the limit. Netflix returns early when
/// the dropped sample also re-baselines the minimum RTT, which lets a loss go unheeded.
///
/// # Defaults
///
/// | setting | default | source |
/// |---|---|---|
/// | `initial_limit` | 20 | Netflix `VegasLimit` |
/// | `min_limit` | 1 | Netflix (a hard floor of 1) |
/// | `max_limit` | 1000 | Netflix `maxConcurrency` |
/// | `smoothing` | 1.0 (none), in `(0, 1]` | Netflix |
/// | `probe_multiplier` | 30 | Netflix |
/// | alpha, beta, threshold | 3, 6, 1 × `LOG10(L)` | Netflix |
/// | `measured_queue` | `false` | Netflix; `true` meets the 0.1% target at 0.8× load (see the option) |
#[derive(Debug, Clone)]
pub struct Vegas {
    initial_limit: usize,
    min_limit: usize,
    max_limit: usize,
    smoothing: f64,
    probe_multiplier: usize,
    alpha: usize,
    beta: usize,
    threshold: usize,
    estimate: f64,
    rtt_noload: Option<Duration>,
    probes: u64,
    jitter: f64,
    rng: SplitMix64,
    measured_queue: bool,
}

impl Vegas {
    /// Netflix's default initial limit.
    pub const DEFAULT_INITIAL_LIMIT: usize = 20;
    /// The default floor (Netflix's implicit one).
    pub const DEFAULT_MIN_LIMIT: usize = 1;
    /// Netflix's default ceiling.
    pub const DEFAULT_MAX_LIMIT: usize = 1000;
    /// Netflix's default smoothing (none).
    pub const DEFAULT_SMOOTHING: f64 = 1.0;
    /// Netflix's default probe multiplier.
    pub const DEFAULT_PROBE_MULTIPLIER: usize = 30;

    /// Vegas with the defaults above and an entropy-seeded probe jitter.
    pub fn new() -> Self {
        Self::with_seed(SplitMix64::entropy_seed())
    }

    fn with_seed(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let jitter = draw_jitter(&mut rng);
        Self {
            initial_limit: Self::DEFAULT_INITIAL_LIMIT,
            min_limit: Self::DEFAULT_MIN_LIMIT,
            max_limit: Self::DEFAULT_MAX_LIMIT,
            smoothing: Self::DEFAULT_SMOOTHING,
            probe_multiplier: Self::DEFAULT_PROBE_MULTIPLIER,
            alpha: 3,
            beta: 6,
            threshold: 1,
            estimate: Self::DEFAULT_INITIAL_LIMIT as f64,
            rtt_noload: None,
            probes: 0,
            jitter,
            rng,
            measured_queue: false,
        }
    }

    /// Seeds the probe jitter, for reproducible runs (default: from entropy).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = SplitMix64::new(seed);
        self.jitter = draw_jitter(&mut self.rng);
        self
    }

    /// The limit to start from (default 20).
    #[must_use]
    pub fn initial_limit(mut self, limit: usize) -> Self {
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

    /// The largest limit (default 1000).
    #[must_use]
    pub const fn max_limit(mut self, limit: usize) -> Self {
        self.max_limit = limit;
        self
    }

    /// The weight of each new estimate, in `(0, 1]` (default 1.0: no smoothing).
    #[must_use]
    pub const fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Re-probe the no-load RTT every `jitter × multiplier × L` updates, jitter uniform in
    /// `[0.5, 1)` (default 30). `0` disables re-probing.
    #[must_use]
    pub const fn probe_multiplier(mut self, multiplier: usize) -> Self {
        self.probe_multiplier = multiplier;
        self
    }

    /// Sets the multipliers of `LOG10(L)` for alpha, beta and the no-queue threshold
    /// (default 3, 6, 1). Must satisfy `threshold <= alpha <= beta`.
    #[must_use]
    pub const fn queue_bounds(mut self, threshold: usize, alpha: usize, beta: usize) -> Self {
        self.threshold = threshold;
        self.alpha = alpha;
        self.beta = beta;
        self
    }

    /// Estimates the queue from the requests actually in flight rather than from the
    /// limit (default `false`: Netflix's `L · (1 − rtt_noload / rtt)`).
    ///
    /// Vegas' queue estimate assumes the whole limit is in flight. Under a light load it
    /// is not, and the queueing a busy backend has anyway (at 0.8× the capacity of 2
    /// workers, a mean RTT about twice the no-load RTT) reads as `L / 2` queued requests,
    /// more than `beta` once `L` passes 12 or so: the limit settles there and refuses the
    /// load's bursts. With this option the queue is `N · (1 − rtt_noload / rtt)`, where
    /// `N = throughput × rtt` is the mean number of requests in flight over the window
    /// (Little's law); when the limit is the bottleneck `N` is close to `L` and nothing
    /// changes. Needs windows (a one-request sample has no throughput: then `L` is used).
    ///
    /// In a simulation of Netflix's harness (`tests/scenarios.rs`: 2 workers × 20 ms
    /// lognormal, Poisson arrivals) it refuses none of the requests at 0.8× the capacity
    /// (Netflix's rule: 0.26%), and at 2× keeps goodput at 100/s with an accepted p99 of
    /// 2.3× the unloaded p99 (Netflix's rule: 2.2×).
    #[must_use]
    pub const fn measured_queue(mut self, enabled: bool) -> Self {
        self.measured_queue = enabled;
        self
    }

    /// The no-load RTT currently assumed, once one has been measured.
    pub const fn rtt_noload(&self) -> Option<Duration> {
        self.rtt_noload
    }

    fn should_probe(&self) -> bool {
        self.probe_multiplier > 0
            && self.jitter * self.probe_multiplier as f64 * self.estimate <= self.probes as f64
    }
}

/// Netflix's `ThreadLocalRandom.nextDouble(0.5, 1)`.
fn draw_jitter(rng: &mut SplitMix64) -> f64 {
    0.5 + 0.5 * rng.next_f64()
}

impl Default for Vegas {
    fn default() -> Self {
        Self::new()
    }
}

impl LimitAlgorithm for Vegas {
    fn limit(&self) -> usize {
        to_limit(self.estimate)
    }

    fn update(&mut self, sample: &Sample) -> usize {
        let rtt = sample.rtt;
        if rtt.is_zero() {
            // Netflix rejects a zero RTT; it carries no delay information.
            return self.limit();
        }
        self.probes += 1;
        let mut rebaselined = false;
        if self.should_probe() {
            tracing::trace!(target: "steadfast_limit", ?rtt, "vegas re-probes the no-load RTT");
            self.jitter = draw_jitter(&mut self.rng);
            self.probes = 0;
            self.rtt_noload = Some(rtt);
            rebaselined = true;
        } else if self.rtt_noload.is_none_or(|noload| rtt < noload) {
            self.rtt_noload = Some(rtt);
            rebaselined = true;
        }

        let estimate = self.estimate;
        let current = to_limit(estimate);
        let log = log10_root(current) as f64;
        let new = if sample.dropped {
            estimate - log
        } else if rebaselined || (sample.in_flight as f64) * 2.0 < estimate {
            return current;
        } else {
            let noload = self.rtt_noload.unwrap_or(rtt).as_secs_f64();
            let in_flight = match sample.throughput() * rtt.as_secs_f64() {
                measured if self.measured_queue && measured > 0.0 => measured.min(estimate),
                _ => estimate,
            };
            let queue = (in_flight * (1.0 - noload / rtt.as_secs_f64())).ceil();
            let (threshold, alpha, beta) = (
                (self.threshold as f64) * log,
                (self.alpha as f64) * log,
                (self.beta as f64) * log,
            );
            if queue <= threshold {
                estimate + beta
            } else if queue < alpha {
                estimate + log
            } else if queue > beta {
                estimate - log
            } else {
                return current;
            }
        };
        let new = new.clamp(self.min_limit as f64, self.max_limit as f64);
        self.estimate = (1.0 - self.smoothing) * estimate + self.smoothing * new;
        self.limit()
    }

    fn validate(&self) -> Result<(), InvalidLimitConfig> {
        check_bounds(self.min_limit, self.initial_limit, self.max_limit)?;
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(InvalidLimitConfig::new("vegas smoothing must be in (0, 1]"));
        }
        if !(self.threshold <= self.alpha && self.alpha <= self.beta) {
            return Err(InvalidLimitConfig::new(
                "vegas queue bounds must satisfy threshold <= alpha <= beta",
            ));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "vegas"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn used(rtt: Duration, limit: usize) -> Sample {
        Sample::new(rtt, limit, false)
    }

    #[test]
    fn netflix_rules() {
        let mut v = Vegas::new().seed(1).probe_multiplier(0);
        // First sample: the no-load RTT.
        assert_eq!(v.update(&used(20 * MS, 20)), 20);
        assert_eq!(v.rtt_noload(), Some(20 * MS));
        // No queue: + beta = 6·LOG10(20) = 6.
        assert_eq!(v.update(&used(20 * MS, 20)), 26);
        // queue = ceil(26·(1 − 20/22)) = 3: < alpha (3)? no; > beta (6)? no: keep.
        assert_eq!(v.update(&used(22 * MS, 26)), 26);
        // queue = ceil(26·0.5) = 13 > 6: − LOG10(26) = 1.
        assert_eq!(v.update(&used(40 * MS, 26)), 25);
        // App-limited: in flight 10 < 25/2.
        assert_eq!(v.update(&used(20 * MS, 10)), 25);
        // A drop decreases even when it sets a new minimum.
        assert_eq!(v.update(&Sample::new(10 * MS, 25, true)), 24);
        assert_eq!(v.rtt_noload(), Some(10 * MS));
    }

    #[test]
    fn a_measured_queue_counts_the_requests_in_flight() {
        // A window of 200 requests in 1 s at 40 ms against a no-load RTT of 20 ms: 8 in
        // flight on average (Little's law), though 20 were at some point.
        let busy = Sample::new(40 * MS, 20, false).with_window(Duration::from_secs(1), 200);
        let mut netflix = Vegas::new().seed(1).probe_multiplier(0);
        netflix.update(&used(20 * MS, 20));
        // Netflix: queue = ceil(20 · (1 − 20/40)) = 10 > beta (6): − LOG10(20) = 1.
        assert_eq!(netflix.update(&busy), 19);
        let mut measured = Vegas::new()
            .seed(1)
            .probe_multiplier(0)
            .measured_queue(true);
        measured.update(&used(20 * MS, 20));
        // Measured: queue = ceil(8 · 0.5) = 4, between alpha (3) and beta (6): keep.
        assert_eq!(measured.update(&busy), 20);
        // A one-request sample has no throughput: the limit stands in, as Netflix's.
        assert_eq!(measured.update(&used(40 * MS, 20)), 19);
    }

    #[test]
    fn probes_reset_the_baseline_with_jitter() {
        let mut v = Vegas::new().seed(3).initial_limit(2).max_limit(2);
        v.update(&used(10 * MS, 2));
        // With L = 2 the probe comes after jitter·30·2 ∈ [30, 60) updates.
        let mut probed_at = None;
        for i in 1..=60 {
            v.update(&used(50 * MS, 2));
            if v.rtt_noload() == Some(50 * MS) {
                probed_at = Some(i);
                break;
            }
        }
        let at = probed_at.expect("a probe within 60 updates");
        assert!((29..=60).contains(&at), "{at}");
    }

    #[test]
    fn validation() {
        assert!(Vegas::new().validate().is_ok());
        assert!(Vegas::new().smoothing(0.0).validate().is_err());
        assert!(Vegas::new().queue_bounds(4, 3, 6).validate().is_err());
        assert!(Vegas::new().max_limit(10).validate().is_err());
    }
}
