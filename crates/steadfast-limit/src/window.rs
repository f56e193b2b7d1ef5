//! Sampling windows: many requests' measurements aggregated into one [`Sample`] per update.

use std::time::Duration;

use tokio::time::Instant;

use crate::algorithm::{LevelProfile, LimitAlgorithm, Sample};
use crate::error::InvalidLimitConfig;

/// How requests' measurements are grouped into updates of the limit, as Netflix's
/// `WindowedLimit`.
///
/// A window closes at the first completion after its end **and** once it holds at least
/// [`min_samples`](Self::min_samples) requests; its mean RTT, largest in-flight count and
/// "any drop" flag become one [`Sample`] for the algorithm. The next window lasts
/// `clamp(2 × the closed window's minimum RTT, min_window, max_window)`.
///
/// Deviations from Netflix: a window that has not collected `min_samples` requests by its
/// end is extended rather than thrown away (Netflix's limit never moves below
/// `min_samples` requests per window); and drops are aggregated separately: a request
/// refused downstream in a microsecond says nothing about the backend's latency, so a
/// dropped request's RTT enters the window's RTT only when nothing succeeded.
///
/// # Defaults
///
/// | setting | default | source |
/// |---|---|---|
/// | `min_window` | 1 s | Netflix `WindowedLimit` |
/// | `max_window` | 1 s | Netflix |
/// | `min_samples` | 10 | Netflix `windowSize` |
/// | `min_rtt_threshold` | 100 µs | Netflix: faster successes are discarded |
/// | `timed_per_window` | 1000 | ours: Netflix times every request |
///
/// # Timing a share of the requests
///
/// Reading the clock twice costs more than the rest of a permit's round trip (about 20 ns a
/// read against a few atomic operations), so when traffic is heavy the layer times only
/// some requests: about [`timed_per_window`](Self::timed_per_window) per window (default
/// 1000), every `stride`-th call of each service, with `stride` recomputed at each window's
/// close from the requests completed in it (at least 1). Below that rate, at Netflix's
/// 1 s windows below 1000 requests per second, every request is timed, exactly as
/// Netflix does. Above it, the window's mean RTT is the mean of an unbiased sample of
/// about a thousand requests, and its counts of successes, drops and in-flight requests
/// still see every timed request; a dropped request is always reported, timed or not.
/// A new service (the layer's, or a clone: servers clone the stack for each connection,
/// axum's `Router::layer` for each request) times its first call only if that call comes
/// at a multiple of `stride` in a count of first calls shared by the layer's services, so
/// that services that make one call each are timed one in `stride` too.
/// A window closes only on a timed completion; if the traffic falls sharply, the windows
/// stretch until the stride catches up, one window later.
///
/// An algorithm may ask for its own window length
/// ([`LimitAlgorithm::next_window`](crate::algorithm::LimitAlgorithm::next_window):
/// [`Vector`](crate::algorithm::Vector) wants one mean RTT); it is clamped to
/// `[min_window, max_window]` too.
///
/// Netflix's defaults make every window one second long whatever the RTT. For fast
/// services with plenty of traffic, a shorter `min_window` (say 100 ms) reacts ten times
/// faster; keep `min_samples × mean RTT / min_window` well below the concurrency you
/// expect, or windows stretch to collect their samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    min_window: Duration,
    max_window: Duration,
    min_samples: usize,
    min_rtt_threshold: Duration,
    timed_per_window: usize,
}

impl WindowConfig {
    /// Netflix's default shortest window.
    pub const DEFAULT_MIN_WINDOW: Duration = Duration::from_secs(1);
    /// Netflix's default longest window.
    pub const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(1);
    /// Netflix's default number of samples per window.
    pub const DEFAULT_MIN_SAMPLES: usize = 10;
    /// Netflix's default threshold under which RTTs are discarded.
    pub const DEFAULT_MIN_RTT_THRESHOLD: Duration = Duration::from_micros(100);
    /// The default number of requests timed per window, at most (about).
    pub const DEFAULT_TIMED_PER_WINDOW: usize = 1000;

    /// Netflix's defaults.
    pub const fn new() -> Self {
        Self {
            min_window: Self::DEFAULT_MIN_WINDOW,
            max_window: Self::DEFAULT_MAX_WINDOW,
            min_samples: Self::DEFAULT_MIN_SAMPLES,
            min_rtt_threshold: Self::DEFAULT_MIN_RTT_THRESHOLD,
            timed_per_window: Self::DEFAULT_TIMED_PER_WINDOW,
        }
    }

    /// Every completion is its own update (Netflix's default without `WindowedLimit`):
    /// zero-length windows of one sample, every request timed. Reacts fastest, and noisiest.
    pub const fn per_request() -> Self {
        Self {
            min_window: Duration::ZERO,
            max_window: Duration::ZERO,
            min_samples: 1,
            min_rtt_threshold: Duration::ZERO,
            timed_per_window: 0,
        }
    }

    /// The shortest window (default 1 s).
    #[must_use]
    pub const fn min_window(mut self, window: Duration) -> Self {
        self.min_window = window;
        self
    }

    /// The longest window (default 1 s).
    #[must_use]
    pub const fn max_window(mut self, window: Duration) -> Self {
        self.max_window = window;
        self
    }

    /// The fewest requests a window aggregates (default 10; at least 1).
    #[must_use]
    pub const fn min_samples(mut self, samples: usize) -> Self {
        self.min_samples = samples;
        self
    }

    /// Successful requests faster than this are discarded (default 100 µs): they were
    /// most likely answered from a cache and say nothing about the backend.
    #[must_use]
    pub const fn min_rtt_threshold(mut self, threshold: Duration) -> Self {
        self.min_rtt_threshold = threshold;
        self
    }

    /// About how many requests a window times at most (default 1000); `0` times every
    /// request. See [Timing a share of the requests](Self#timing-a-share-of-the-requests).
    #[must_use]
    pub const fn timed_per_window(mut self, requests: usize) -> Self {
        self.timed_per_window = requests;
        self
    }

    /// The length of a window after one whose minimum RTT was `min_rtt`.
    pub fn window_after(&self, min_rtt: Duration) -> Duration {
        min_rtt
            .saturating_mul(2)
            .clamp(self.min_window, self.max_window)
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`InvalidLimitConfig`] when `min_window > max_window` or `min_samples` is 0.
    pub fn validate(&self) -> Result<(), InvalidLimitConfig> {
        if self.min_window > self.max_window {
            return Err(InvalidLimitConfig::new(
                "min_window must not exceed max_window",
            ));
        }
        if self.min_samples == 0 {
            return Err(InvalidLimitConfig::new("min_samples must be at least 1"));
        }
        if self.timed_per_window != 0 && self.timed_per_window < self.min_samples {
            return Err(InvalidLimitConfig::new(
                "timed_per_window must be 0 (every request) or at least min_samples",
            ));
        }
        Ok(())
    }
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The measurements of the window being filled.
#[derive(Debug, Clone, Copy, Default)]
struct Accumulator {
    samples: usize,
    rtt_count: u32,
    rtt_sum: Duration,
    min_rtt: Option<Duration>,
    drop_count: u32,
    drop_rtt_sum: Duration,
    max_in_flight: usize,
    dropped: bool,
    limit_reached: bool,
    profile: LevelProfile,
}

impl Accumulator {
    /// The window as one sample, `window` long; `last_rtt` stands in for the RTT of a
    /// window that timed nothing (only untimed drops).
    fn sample(&self, last_rtt: Duration, window: Duration, stride: usize) -> Sample {
        let rtt = if self.rtt_count > 0 {
            self.rtt_sum / self.rtt_count
        } else if self.drop_count > 0 {
            self.drop_rtt_sum / self.drop_count
        } else {
            last_rtt
        };
        let mut sample = Sample::new(rtt, self.max_in_flight, self.dropped)
            .with_window(window, (self.rtt_count as usize).saturating_mul(stride));
        sample.min_rtt = self.min_rtt.unwrap_or(rtt);
        sample.count = self.samples;
        sample.limit_reached = self.limit_reached;
        sample.with_profile(self.profile)
    }
}

/// What one closed window did to the limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Update {
    pub(crate) previous: usize,
    pub(crate) limit: usize,
    pub(crate) sample: Sample,
}

/// A limit algorithm behind sampling windows: the pure, clock-injected core of the
/// limiter (the caller passes `now`).
#[derive(Debug)]
pub(crate) struct Windowed<A> {
    config: WindowConfig,
    algorithm: A,
    window: Accumulator,
    /// The end of the current window; `None` until the first sample starts one.
    end: Option<Instant>,
    /// When the current window started: its first recorded completion, or the close of
    /// the previous window.
    start: Option<Instant>,
    /// The RTT and the minimum RTT of the last closed window.
    last_rtt: Duration,
    last_min_rtt: Duration,
    /// When the request rate was last measured for the stride, and the requests completed
    /// then.
    rate_since: Option<(Instant, u64)>,
    /// The timing stride last computed: each timed success stands for this many.
    stride: usize,
}

impl<A: LimitAlgorithm> Windowed<A> {
    pub(crate) fn new(config: WindowConfig, algorithm: A) -> Self {
        // Each window's profile is sized for the limit it runs under.
        let window = Accumulator {
            profile: LevelProfile::for_limit(algorithm.limit()),
            ..Accumulator::default()
        };
        Self {
            config,
            algorithm,
            window,
            end: None,
            start: None,
            last_rtt: Duration::ZERO,
            last_min_rtt: Duration::ZERO,
            rate_since: None,
            stride: 1,
        }
    }

    /// Notes that a request admitted during the current window found the limit reached.
    pub(crate) fn limit_reached(&mut self) {
        self.window.limit_reached = true;
    }

    /// Records one finished request: `rtt` is `None` for a request that was not timed
    /// (only drops are reported untimed). Returns the update when it closed a window.
    pub(crate) fn record(
        &mut self,
        now: Instant,
        rtt: Option<Duration>,
        in_flight: usize,
        dropped: bool,
    ) -> Option<Update> {
        if !dropped && rtt.is_none_or(|rtt| rtt < self.config.min_rtt_threshold) {
            return None;
        }
        if self.end.is_none() {
            self.end = Some(now + self.window_after(rtt.unwrap_or_default()));
            self.start = Some(now);
        }
        let end = self.end.unwrap_or(now);
        let w = &mut self.window;
        w.samples += 1;
        w.max_in_flight = w.max_in_flight.max(in_flight);
        match (dropped, rtt) {
            (true, rtt) => {
                w.dropped = true;
                if let Some(rtt) = rtt {
                    w.drop_count = w.drop_count.saturating_add(1);
                    w.drop_rtt_sum = w.drop_rtt_sum.saturating_add(rtt);
                }
            }
            (false, Some(rtt)) => {
                w.rtt_count = w.rtt_count.saturating_add(1);
                w.rtt_sum = w.rtt_sum.saturating_add(rtt);
                w.min_rtt = Some(w.min_rtt.map_or(rtt, |m| m.min(rtt)));
                w.profile.record(in_flight, rtt);
            }
            (false, None) => unreachable!("untimed successes are not recorded"),
        }
        if now < end || w.samples < self.config.min_samples {
            return None;
        }
        let closed = std::mem::take(&mut self.window);
        let length = now.saturating_duration_since(self.start.unwrap_or(now));
        let sample = closed.sample(self.last_rtt, length, self.stride);
        self.last_rtt = sample.rtt;
        self.last_min_rtt = sample.min_rtt;
        let previous = self.algorithm.limit();
        let limit = self.algorithm.update(&sample).max(1);
        self.window.profile = LevelProfile::for_limit(limit);
        self.end = Some(now + self.window_after(sample.min_rtt));
        self.start = Some(now);
        Some(Update {
            previous,
            limit,
            sample,
        })
    }

    /// The length of the next window: the algorithm's wish if it has one, else twice
    /// `min_rtt`; clamped to the configured bounds.
    fn window_after(&self, min_rtt: Duration) -> Duration {
        match self.algorithm.next_window() {
            Some(wish) => wish.clamp(self.config.min_window, self.config.max_window),
            None => self.config.window_after(min_rtt),
        }
    }

    /// Called on every timed completion (samples too fast to count included), with the
    /// requests `completed` so far, timed or not: once a window's length has passed since
    /// the last measure, returns the stride that times about `timed_per_window` requests
    /// per window at the rate seen since.
    pub(crate) fn retune(&mut self, now: Instant, completed: u64) -> Option<usize> {
        let target = self.config.timed_per_window;
        if target == 0 {
            return None;
        }
        let Some((since, completed_then)) = self.rate_since else {
            self.rate_since = Some((now, completed));
            return None;
        };
        let window = self.window_after(self.last_min_rtt);
        let elapsed = now.saturating_duration_since(since);
        if elapsed < window || elapsed.is_zero() {
            return None;
        }
        self.rate_since = Some((now, completed));
        let requests = completed.saturating_sub(completed_then) as f64;
        let per_window = requests * window.as_secs_f64() / elapsed.as_secs_f64();
        // Truncation is the point: below 2 × target a window, every request is timed.
        self.stride = ((per_window / target as f64) as usize).max(1);
        Some(self.stride)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::Aimd;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn window_length_is_twice_min_rtt_clamped() {
        let c = WindowConfig::new()
            .min_window(100 * MS)
            .max_window(1000 * MS);
        assert_eq!(c.window_after(20 * MS), 100 * MS);
        assert_eq!(c.window_after(200 * MS), 400 * MS);
        assert_eq!(c.window_after(Duration::from_secs(5)), 1000 * MS);
        assert!(c.validate().is_ok());
        assert!(c.min_window(2000 * MS).validate().is_err());
        assert!(c.min_samples(0).validate().is_err());
    }

    #[test]
    fn closes_after_its_end_with_enough_samples_and_aggregates() {
        let config = WindowConfig::new()
            .min_window(100 * MS)
            .max_window(100 * MS)
            .min_samples(4);
        let mut w = Windowed::new(config, Aimd::new().initial_limit(10));
        let t0 = Instant::now();
        assert!(w.record(t0, Some(10 * MS), 4, false).is_none());
        assert!(w.record(t0 + 50 * MS, Some(30 * MS), 6, false).is_none());
        // Past the end but only 3 samples: the window stretches to collect a fourth.
        assert!(w.record(t0 + 150 * MS, Some(MS), 9, true).is_none());
        let update = w.record(t0 + 160 * MS, Some(20 * MS), 5, false);
        let update = update.expect("the window closes");
        assert_eq!(update.sample.count, 4);
        assert_eq!(update.sample.rtt, 20 * MS, "mean of the successes only");
        assert_eq!(update.sample.min_rtt, 10 * MS);
        assert_eq!(update.sample.in_flight, 9);
        assert!(update.sample.dropped);
        assert_eq!(update.sample.successes, 3);
        assert_eq!(update.sample.window, 160 * MS, "from the first completion");
        assert_eq!((update.previous, update.limit), (10, 9));
        // The successes by admission level (4, 5, 6), the drop left out.
        let levels: Vec<_> = update
            .sample
            .profile
            .buckets()
            .map(|b| (b.first, b.count, (b.mean * 1e3).round()))
            .collect();
        assert_eq!(levels, [(4, 1, 10.0), (5, 1, 20.0), (6, 1, 30.0)]);
        // The next window starts empty.
        assert!(w.record(t0 + 170 * MS, Some(20 * MS), 1, false).is_none());
    }

    #[test]
    fn the_stride_keeps_about_timed_per_window_requests_timed() {
        let config = WindowConfig::new()
            .min_window(100 * MS)
            .max_window(100 * MS)
            .timed_per_window(100);
        let mut w = Windowed::new(config, Aimd::new().initial_limit(10));
        let t0 = Instant::now();
        assert_eq!(w.retune(t0, 0), None, "the first call starts the measure");
        assert_eq!(w.retune(t0 + 50 * MS, 2000), None, "not a window yet");
        // 5000 requests completed in 100 ms: time one in 50.
        assert_eq!(w.retune(t0 + 100 * MS, 5000), Some(50));
        // 5000 more over 1 s is a tenth of the rate: one in 5.
        assert_eq!(w.retune(t0 + 1100 * MS, 10_000), Some(5));
        // Under 2 × 100 requests a window, every request is timed.
        assert_eq!(w.retune(t0 + 1200 * MS, 10_150), Some(1));
        // Timing every request: never retuned.
        let mut all = Windowed::new(WindowConfig::per_request(), Aimd::new());
        assert_eq!(all.retune(t0, 0), None);
        assert_eq!(all.retune(t0 + 100 * MS, 1_000_000), None);
    }

    #[test]
    fn an_algorithm_may_choose_its_window() {
        use crate::algorithm::Vector;
        let mut w = Windowed::new(Vector::window_config(), Vector::new());
        let t0 = Instant::now();
        // Vector's first response closes a zero-length window at once.
        let first = w.record(t0, Some(100 * MS), 1, false).expect("closes");
        assert_eq!(first.sample.window, Duration::ZERO);
        // Then one mean RTT (100 ms): open at 50 ms, closed at 100 ms.
        assert!(w.record(t0 + 50 * MS, Some(100 * MS), 1, false).is_none());
        let second = w.record(t0 + 100 * MS, Some(100 * MS), 1, false);
        let second = second.expect("closes after one mean RTT");
        assert_eq!(
            (second.sample.successes, second.sample.window),
            (2, 100 * MS)
        );
        assert_eq!(second.limit, 2, "reached at 1, RTT at the mean: +1");
    }

    #[test]
    fn a_window_of_untimed_drops_reuses_the_last_rtt() {
        let config = WindowConfig::per_request();
        let mut w = Windowed::new(config, Aimd::new().initial_limit(10));
        let t0 = Instant::now();
        let first = w.record(t0, Some(10 * MS), 1, false).expect("closes");
        assert_eq!(first.sample.rtt, 10 * MS);
        let update = w.record(t0 + MS, None, 1, true).expect("closes");
        assert_eq!(update.sample.rtt, 10 * MS);
        assert!(update.sample.dropped);
        assert_eq!(update.limit, 9);
    }

    #[test]
    fn fast_successes_are_discarded_but_fast_drops_are_not() {
        let mut w = Windowed::new(
            WindowConfig::per_request().min_rtt_threshold(MS),
            Aimd::new().initial_limit(10),
        );
        let t0 = Instant::now();
        assert!(
            w.record(t0, Some(Duration::from_micros(10)), 10, false)
                .is_none()
        );
        let update = w.record(t0, Some(Duration::from_micros(10)), 10, true);
        assert_eq!(update.map(|u| u.limit), Some(9));
    }
}
