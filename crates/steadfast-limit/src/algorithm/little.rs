//! A limit estimated directly from Little's law.

use std::collections::VecDeque;
use std::time::Duration;

use super::{LimitAlgorithm, Sample, check_bounds, to_limit};
use crate::error::InvalidLimitConfig;

/// Ours: the limit estimated from Little's law instead of stepped towards it, for fast
/// convergence after the backend's capacity changes.
///
/// When the limit is full, a window's throughput `X`, mean RTT `rtt` and limit `L` obey
/// Little's law (`L ≈ X · rtt`), and a request that does not queue takes the no-load RTT
/// `B`. A limit above what the backend serves without a queue only adds a queue, which
/// shows as `rtt > B`, by the same factor; so `L · B / rtt` is the limit that would just
/// keep the backend busy. Instead of stepping towards it one window at a time, as the
/// delay-based algorithms do (Vegas by `log10(L)`, Gradient2 by at most 10% down and
/// `0.2·sqrt(L)` up), this one jumps to it.
///
/// Near the backend's capacity a window's mean RTT is too noisy to tell one queued
/// request from none (about ±3% for a window of a few hundred requests of a lognormal
/// service time, the size of the signal between limits 10 and 12 on 10 workers). So
/// every decision near the top also reads the window's
/// [`LevelProfile`](super::LevelProfile): the mean RTT of the requests admitted at the
/// highest levels against those admitted below, within the same window. A backend of
/// `c` workers answers the requests admitted at level `k ≤ c` without a wait, so the top
/// level is slower than the rest only when the limit lets a queue form.
///
/// ```text
/// B = mean of the last `baseline_windows` window RTTs within `tolerance` of their minimum
/// relative excess of the mean RTT (each level counted from 5 requests):
///   top    = at the highest level, over the levels below it
///   second = at the second-highest level, over the levels below it
///   top2   = at the two highest levels, over the levels below them
///   (second and top2 only from 20 requests below; second falls back to top; none of
///   them with fewer than 3 levels, when `queued` below reads the mean alone)
/// per window (its throughput X, mean RTT rtt, limit L):
///   if dropped:             L = floor(L · backoff_ratio); startup ends
///   elif limit not reached: keep L                                # app-limited
///   elif X · rtt < 0.7 · L: L = L + 1                             # bursts of a light load
///   else:                                                         # the limit is the bottleneck
///     estimate = L · B / rtt                                      # = X · B / utilisation
///     over = rtt / B − 1
///     queued = over > 3 · tolerance                               # shared by every level
///           or (over > tolerance and second > tolerance)          # both signals agree
///     startup, no queue, last doubling paid:   L = 2 · L          # slow start
///     queued:                                  L = round(headroom · estimate)
///     top, top2 < tolerance / 2, over ≤ 2 · tolerance: L = L + 1  # probe: nothing waits
///     top2 known otherwise:                    keep L             # one level waits
///     fewer than 3 levels, or 20 requests below the top two:
///         L = max(round(headroom · estimate), L + 1) if the last increase raised X by
///         3/4 of its share or the estimate leaves room, else round(headroom · estimate)
///     every `drain_every`-th such window, if queued: L = round(estimate)
///   L = clamp(L, min_limit, max_limit)
/// ```
///
/// It starts at 1 and doubles while nothing queues (TCP's slow start), so the baseline is
/// measured before any queue exists. When the capacity halves, the next window's RTT
/// grows with the queue and the limit lands on the new `L*` in one step. When it grows,
/// the limit probes one above each window while the top levels stay as fast as the rest,
/// and stops at the first level that waits; it keeps that one waiting level (a request
/// queued behind a busy backend takes a freed worker at once, where failing fast would
/// leave it idle until the next arrival) and backs off when a second level waits.
/// Requiring both signals for a queue also makes it robust to a baseline measured on one
/// lucky fast window; a slowdown every level shares (a backend shared with other
/// clients, a server short of CPU) has no slow top level, so past three tolerances the
/// mean RTT alone backs the limit off. Above 32 the profile's buckets span
/// `ceil(L / 32)` levels each, so "one waiting level" becomes one waiting bucket. Because
/// the limit keeps one waiting level, the windows that make up the baseline may include
/// it: the baseline can sit a few percent above the no-load RTT (the waiting level's
/// share of the window), which the level profile does not depend on.
///
/// Measured in `tests/scenarios.rs` (10 → 5 workers offered 2.4×, and 5 → 10 offered
/// 1.2×, 1 s windows): back within `[0.8, 1.25]·L*` one window after the capacity halves
/// (seeds 1-6 and 13) and 2-9 windows after it doubles (seeds 1-14), against the targets
/// of 5 and 10. Its price is goodput where it hugs `L*` on narrow backends: failing fast
/// near `L*`, a freed permit waits for the next arrival (5 workers at 2.4×: 223-233/s of
/// 250; Netflix's 2-worker harness at 2×: 80.5/s, target 95, where the algorithms that
/// keep 2-3× `L*` reach 95+), and it refuses 1.2% at 0.8× the capacity of that harness
/// (target 0.1%). A window that times nothing leaves the limit where it is.
///
/// # Defaults
///
/// | setting | default | reason |
/// |---|---|---|
/// | `initial_limit` | 1 | measure the baseline before any queue (Vector starts at 1 too) |
/// | `min_limit` | 1 | |
/// | `max_limit` | 1000 | Netflix Vegas |
/// | `headroom` | 1.0, in `[1, 2]` | the estimate already allows for idle permits |
/// | `tolerance` | 0.05, in `[0, 0.5]` | about the noise of a window's mean RTT |
/// | `backoff_ratio` | 0.9, in `[0.5, 1)` | Netflix AIMD |
/// | `drain_every` | 5 windows | every such queued window lands on the estimate itself, without the headroom; small limits may probe again |
/// | `baseline_windows` | 10, more than `drain_every` | long enough to hold an unqueued window after a capacity change |
#[derive(Debug, Clone)]
pub struct Little {
    initial_limit: usize,
    min_limit: usize,
    max_limit: usize,
    headroom: f64,
    tolerance: f64,
    backoff_ratio: f64,
    drain_every: u32,
    baseline_windows: usize,
    estimate: f64,
    startup: bool,
    windows: u32,
    history: VecDeque<f64>,
    /// The limit and throughput of the last full window.
    previous: Option<(usize, f64)>,
    /// Whether the last increase of the limit raised the throughput: then the next
    /// unqueued window may add one more.
    probing: bool,
}

impl Little {
    /// The default initial limit.
    pub const DEFAULT_INITIAL_LIMIT: usize = 1;
    /// The default floor.
    pub const DEFAULT_MIN_LIMIT: usize = 1;
    /// The default ceiling.
    pub const DEFAULT_MAX_LIMIT: usize = 1000;
    /// The default headroom over the estimate.
    pub const DEFAULT_HEADROOM: f64 = 1.0;
    /// The default RTT tolerance before a window counts as queued.
    pub const DEFAULT_TOLERANCE: f64 = 0.05;
    /// The default backoff on a drop.
    pub const DEFAULT_BACKOFF_RATIO: f64 = 0.9;
    /// The default period of the drain windows.
    pub const DEFAULT_DRAIN_EVERY: u32 = 5;
    /// The default span of the baseline's minimum.
    pub const DEFAULT_BASELINE_WINDOWS: usize = 10;
    /// The share of the limit that must be in flight on average (`X · RTT / L`) for a
    /// window to count as full: an overload rather than the bursts of a light load. (At
    /// 1.2× the capacity, failing fast, a limit one or two above `L*` keeps about 0.8 of
    /// its permits busy: 0.8 here made such windows look light and the limit creep up.)
    pub const FULL: f64 = 0.7;
    /// Over how many tolerances a window's mean RTT counts as queued whatever its level
    /// profile says.
    pub const STRONG: f64 = 3.0;

    /// The algorithm with the defaults above.
    pub fn new() -> Self {
        Self {
            initial_limit: Self::DEFAULT_INITIAL_LIMIT,
            min_limit: Self::DEFAULT_MIN_LIMIT,
            max_limit: Self::DEFAULT_MAX_LIMIT,
            headroom: Self::DEFAULT_HEADROOM,
            tolerance: Self::DEFAULT_TOLERANCE,
            backoff_ratio: Self::DEFAULT_BACKOFF_RATIO,
            drain_every: Self::DEFAULT_DRAIN_EVERY,
            baseline_windows: Self::DEFAULT_BASELINE_WINDOWS,
            estimate: Self::DEFAULT_INITIAL_LIMIT as f64,
            startup: true,
            windows: 0,
            history: VecDeque::with_capacity(Self::DEFAULT_BASELINE_WINDOWS),
            previous: None,
            probing: true,
        }
    }

    /// The limit to start from (default 1).
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

    /// The factor over the estimate the limit keeps (default 1.0; in `[1, 2]`).
    #[must_use]
    pub const fn headroom(mut self, headroom: f64) -> Self {
        self.headroom = headroom;
        self
    }

    /// How far above the baseline a window's RTT may be and still count as unqueued
    /// (default 0.05, that is 5%; in `[0, 0.5]`).
    #[must_use]
    pub const fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The factor applied on a drop (default 0.9; in `[0.5, 1)`).
    #[must_use]
    pub const fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// Every how many windows a queued limit drops to the estimate without the headroom,
    /// and a small limit may probe again (default 5; 0 never).
    #[must_use]
    pub const fn drain_every(mut self, windows: u32) -> Self {
        self.drain_every = windows;
        self
    }

    /// Over how many windows the baseline is the minimum (default 10; more than
    /// `drain_every`).
    #[must_use]
    pub fn baseline_windows(mut self, windows: usize) -> Self {
        self.baseline_windows = windows;
        self.history = VecDeque::with_capacity(windows);
        self
    }

    /// The no-load RTT assumed now, once a window has been measured.
    pub fn baseline(&self) -> Option<Duration> {
        self.baseline_secs().map(Duration::from_secs_f64)
    }

    /// Whether the limit is still doubling (no queue seen yet).
    pub const fn in_startup(&self) -> bool {
        self.startup
    }

    /// The mean of the recent window RTTs within `tolerance` of their minimum: the
    /// unqueued windows. (The minimum alone is biased low by the noise of a window's
    /// mean, by about as much as the tolerance.)
    fn baseline_secs(&self) -> Option<f64> {
        let min = self.history.iter().copied().reduce(f64::min)?;
        let (sum, n) = self
            .history
            .iter()
            .filter(|&&rtt| rtt <= min * (1.0 + self.tolerance))
            .fold((0.0, 0u32), |(sum, n), &rtt| (sum + rtt, n + 1));
        Some(sum / f64::from(n))
    }
}

impl Default for Little {
    fn default() -> Self {
        Self::new()
    }
}

impl LimitAlgorithm for Little {
    fn limit(&self) -> usize {
        to_limit(self.estimate)
    }

    fn update(&mut self, sample: &Sample) -> usize {
        let (min, max) = (self.min_limit as f64, self.max_limit as f64);
        let current = to_limit(self.estimate);
        if let Some(rtt) = sample.timed_rtt() {
            if self.history.len() >= self.baseline_windows.max(1) {
                self.history.pop_front();
            }
            self.history.push_back(rtt);
        }
        if sample.dropped {
            self.startup = false;
            let backed_off = (current as f64 * self.backoff_ratio).floor();
            self.estimate = backed_off.clamp(min, max);
            return self.limit();
        }
        let (Some(baseline), true) = (self.baseline_secs(), sample.reached(current)) else {
            return current;
        };
        let rtt = sample.rtt.as_secs_f64();
        let throughput = sample.throughput();
        if throughput <= 0.0 || rtt <= 0.0 {
            return current;
        }
        // Little's law twice: the mean number of requests in flight, and the number the
        // backend serves without a queue.
        let utilisation = throughput * rtt / current as f64;
        if utilisation < Self::FULL {
            // Reached but not kept full: bursts of a light load, not an overload. Make
            // room for them.
            self.estimate = (current as f64 + 1.0).clamp(min, max);
            return self.limit();
        }
        // Did the last increase pay? Below the capacity, throughput grows with the limit;
        // past it, it stays flat and the extra requests only queue.
        if let Some((limit, x)) = self.previous
            && current > limit
        {
            let asked = current as f64 / limit as f64 - 1.0;
            self.probing = throughput >= x * (1.0 + 0.75 * asked);
        }
        self.previous = Some((current, throughput));
        // X · B is the concurrency the backend serves without a queue; a limit keeps only
        // `utilisation` of its permits busy (each freed permit waits for the next arrival),
        // so the limit that keeps X · B busy is X · B / utilisation = L · B / rtt.
        let estimate = current as f64 * baseline / rtt;
        // A queue needs both signals: the window's mean RTT over the baseline, and the
        // requests admitted at the second-highest level slower than those below (when the
        // profile has enough of them). The mean alone mistakes its own noise for a queue.
        // But the profile vetoes only within a few tolerances: a slowdown that every level
        // shares (a backend shared with other clients, a server whose CPU is the
        // bottleneck) shows in the mean alone.
        let tolerance = self.tolerance;
        let over = rtt / baseline - 1.0;
        let top = TopLevels::of(&sample.profile);
        let queued = over > Self::STRONG * tolerance
            || (over > tolerance && top.is_none_or(|top| top.queued(tolerance)));
        // Rounded, not truncated: truncating drifts down at small limits.
        let target = (self.headroom * estimate).round();
        let l = current as f64;
        let calm = top.and_then(|top| top.calm(tolerance / 2.0));
        let mut next = if self.startup && !queued && self.probing {
            2.0 * l
        } else {
            self.startup = false;
            match calm {
                _ if queued => target,
                // Probe one above only when neither of the two top levels queues, and the
                // mean is within twice the tolerance.
                Some(true) if over <= 2.0 * tolerance => l + 1.0,
                Some(_) => l,
                // Too few requests per level to tell: the last probe must have paid, or
                // the estimate leave room.
                None if self.probing || target > l => target.max(l + 1.0),
                None => target,
            }
        };
        self.windows = self.windows.wrapping_add(1);
        if self.drain_every > 0 && !self.startup && self.windows.is_multiple_of(self.drain_every) {
            if queued {
                next = estimate.round().max(1.0);
            }
            // Where the headroom alone cannot raise the limit by one (small limits), probe
            // again now and then, in case the capacity grew.
            if (self.headroom * current as f64).round() <= current as f64 {
                self.probing = true;
            }
        }
        self.estimate = next.clamp(min, max);
        self.limit()
    }

    fn validate(&self) -> Result<(), InvalidLimitConfig> {
        check_bounds(self.min_limit, self.initial_limit, self.max_limit)?;
        if !(self.headroom >= 1.0 && self.headroom <= 2.0) {
            return Err(InvalidLimitConfig::new("little headroom must be in [1, 2]"));
        }
        if !(self.tolerance >= 0.0 && self.tolerance <= 0.5) {
            return Err(InvalidLimitConfig::new(
                "little tolerance must be in [0, 0.5]",
            ));
        }
        if !(0.5..1.0).contains(&self.backoff_ratio) {
            return Err(InvalidLimitConfig::new(
                "little backoff_ratio must be in [0.5, 1)",
            ));
        }
        if self.drain_every != 0 && self.baseline_windows <= self.drain_every as usize {
            return Err(InvalidLimitConfig::new(
                "little baseline_windows must exceed drain_every",
            ));
        }
        if self.baseline_windows == 0 {
            return Err(InvalidLimitConfig::new(
                "little baseline_windows must be at least 1",
            ));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "little"
    }
}

/// How much slower the requests admitted at the highest levels were than those below
/// them: the top level alone, and the two highest pooled.
#[derive(Debug, Clone, Copy)]
struct TopLevels {
    top: f64,
    /// `None` when the levels below the two highest hold too few requests.
    top_two: Option<f64>,
    /// The second-highest level against the levels below it; `None` as `top_two`.
    second: Option<f64>,
}

impl TopLevels {
    /// The fewest requests a level needs to count.
    const MIN_REQUESTS: u32 = 5;
    /// The fewest requests below the two highest levels to compare them with.
    const MIN_BELOW: f64 = 20.0;

    /// The excesses, relative, if at least three levels hold enough requests.
    fn of(profile: &super::LevelProfile) -> Option<Self> {
        let mut n = [0.0; 3];
        let mut mean = [0.0; 3];
        // n[0], mean[0]: every level below the two highest; [1]: the second; [2]: the top.
        let mut levels = 0;
        for level in profile.buckets().filter(|b| b.count >= Self::MIN_REQUESTS) {
            levels += 1;
            if levels > 2 {
                let total = n[0] + n[1];
                mean[0] = (n[0] * mean[0] + n[1] * mean[1]) / total;
                n[0] = total;
            }
            (n[1], mean[1]) = (n[2], mean[2]);
            (n[2], mean[2]) = (f64::from(level.count), level.mean);
        }
        if levels < 3 {
            return None;
        }
        let below_top = (n[0] * mean[0] + n[1] * mean[1]) / (n[0] + n[1]);
        if !(mean[0] > 0.0 && below_top > 0.0) {
            // RTTs too short for the clock: no ratio to take.
            return None;
        }
        let two = (n[1] * mean[1] + n[2] * mean[2]) / (n[1] + n[2]);
        Some(Self {
            top: mean[2] / below_top - 1.0,
            top_two: (n[0] >= Self::MIN_BELOW).then(|| two / mean[0] - 1.0),
            second: (n[0] >= Self::MIN_BELOW).then(|| mean[1] / mean[0] - 1.0),
        })
    }

    /// Whether the queue reaches below the top level: the second-highest level more than
    /// `tolerance` slower than the levels below it (or, where that is unknown, the top).
    fn queued(self, tolerance: f64) -> bool {
        self.second.unwrap_or(self.top) > tolerance
    }

    /// Whether both views stay under `tolerance` (a queue of one level shows in the top
    /// two when the top level alone happens to be fast); `None` when the levels below
    /// hold too few requests to tell.
    fn calm(self, tolerance: f64) -> Option<bool> {
        let two = self.top_two?;
        Some(self.top < tolerance && two < tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::LevelProfile;

    const MS: Duration = Duration::from_millis(1);

    /// A 1 s window with `successes` successes of mean RTT `rtt_ms`, the most in flight
    /// being `in_flight`.
    fn window(rtt_ms: u64, in_flight: usize, successes: usize) -> Sample {
        Sample::new(MS * rtt_ms as u32, in_flight, false)
            .with_window(Duration::from_secs(1), successes)
    }

    #[test]
    fn startup_doubles_then_lands_on_l_star() {
        // A backend of 5 workers × 20 ms: 250/s, L* = 5.
        let mut l = Little::new().drain_every(0);
        // L = 1: 50/s at 20 ms, all permits busy (X · rtt = L), no queue: doubled.
        assert_eq!(l.update(&window(20, 1, 50)), 2);
        assert_eq!(l.baseline(), Some(20 * MS));
        // Each doubling doubled the throughput: it paid; again.
        assert_eq!(l.update(&window(20, 2, 100)), 4);
        assert_eq!(l.update(&window(20, 4, 200)), 8);
        assert!(l.in_startup());
        // L = 8 on 5 workers: 250/s, RTT 32 ms = 8 / 250. The estimate 8 · 20 / 32 = 5.
        assert_eq!(l.update(&window(32, 8, 250)), 5);
        assert!(!l.in_startup());
        // At L* no queue, but the last increase (4 → 8) did not pay and the estimate
        // (5) leaves no room: hold.
        assert_eq!(l.update(&window(20, 5, 250)), 5);
        // The capacity halves (125/s): RTT 40 ms, estimate 5 · 20 / 40 = 2.5, rounded 3.
        assert_eq!(l.update(&window(40, 5, 125)), 3);
        // Not reached (in flight 2 < 3): kept, whatever the RTT.
        assert_eq!(l.update(&window(100, 2, 20)), 3);
        // Reached, but 30/s × 20 ms = 0.6 requests in flight on average for a limit of
        // 3: bursts of a light load. Room for them: + 1.
        assert_eq!(l.update(&window(20, 3, 30)), 4);
    }

    #[test]
    fn drains_probes_and_backs_off() {
        let mut l = Little::new()
            .initial_limit(4)
            .drain_every(2)
            .baseline_windows(3);
        assert_eq!(l.update(&window(20, 4, 200)), 8, "startup");
        // A queue (estimate 5); the 2nd full window also drains to round(5), and as the
        // headroom (1.0) cannot add one by itself, probing is allowed again.
        assert_eq!(l.update(&window(32, 8, 250)), 5);
        // No queue and probing: one above.
        assert_eq!(l.update(&window(20, 5, 250)), 6);
        // 5 → 6 did not raise the throughput (250/s): a queue, estimate 6 · 20 / 24 = 5.
        assert_eq!(l.update(&window(24, 6, 250)), 5);
        // App-limited windows keep the limit; the baseline is the mean of the last three
        // windows within 5% of their minimum: (20 + 21) / 2, not the 30.
        for rtt in [20, 21, 30] {
            assert_eq!(l.update(&window(rtt, 1, 10)), 5);
        }
        let baseline = l.baseline().expect("measured").as_secs_f64();
        assert!((baseline - 0.0205).abs() < 1e-12, "{baseline}");
        // A drop: floor(5 × 0.9) = 4.
        assert_eq!(l.update(&Sample::new(30 * MS, 5, true)), 4);
    }

    /// A window as [`window`], with `per_level` requests admitted at each level
    /// `1..=levels`, those at a level in `slow` taking `slow_ms` and the others `rtt_ms`.
    fn profiled(
        rtt_ms: u64,
        levels: usize,
        per_level: u32,
        slow: std::ops::RangeInclusive<usize>,
        slow_ms: u64,
    ) -> Sample {
        let mut profile = LevelProfile::for_limit(levels);
        for level in 1..=levels {
            let ms = if slow.contains(&level) {
                slow_ms
            } else {
                rtt_ms
            };
            for _ in 0..per_level {
                profile.record(level, MS * ms as u32);
            }
        }
        let successes = (1000 / rtt_ms) as usize * levels;
        window(rtt_ms, levels, successes).with_profile(profile)
    }

    trait WithRtt {
        fn with_rtt_ms(self, ms: f64) -> Self;
    }

    impl WithRtt for Sample {
        /// The same window with a mean RTT of `ms`.
        fn with_rtt_ms(mut self, ms: f64) -> Self {
            self.rtt = Duration::from_secs_f64(ms / 1e3);
            self
        }
    }

    /// A limit of 10 out of startup with a baseline of 20 ms.
    fn settled_at_ten() -> Little {
        let mut l = Little::new().initial_limit(10).drain_every(0);
        // One window of 20 ms at every level (none slow) sets the baseline; then leave
        // the startup at 10.
        l.update(&profiled(20, 10, 20, 0..=0, 0));
        l.startup = false;
        l.estimate = 10.0;
        l
    }

    #[test]
    fn mean_rtt_noise_without_a_slow_top_level_is_no_queue() {
        let mut l = settled_at_ten();
        // The window's mean is 7.5% over the baseline, but every level is equally slow:
        // noise, not a queue behind the limit. Nothing queues at the top: probe one above.
        assert_eq!(
            l.update(&profiled(20, 10, 20, 0..=0, 0).with_rtt_ms(21.5)),
            11
        );
    }

    #[test]
    fn a_slowdown_every_level_shares_still_backs_off() {
        let mut l = settled_at_ten();
        // Twice the baseline at every level: a backend shared with other clients, or
        // short of CPU. The flat profile must not veto it: back to 10 · 20 / 40 = 5.
        assert_eq!(l.update(&profiled(40, 10, 20, 0..=0, 0)), 5);
    }

    #[test]
    fn a_slow_top_level_confirms_the_queue() {
        let mut l = settled_at_ten();
        // The mean RTT 25% over the baseline and the top two levels 30% slower than
        // the rest: a queue. The estimate 10 · 20 / 25 = 8.
        assert_eq!(l.update(&profiled(25, 10, 20, 9..=10, 30)), 8);
    }

    #[test]
    fn a_queue_at_the_top_level_alone_is_kept_as_headroom() {
        let mut l = settled_at_ten();
        l.estimate = 11.0;
        // The mean 10% over the baseline, but only the top level (11) waits: one level of
        // queue keeps the backend busy between arrivals. Hold.
        assert_eq!(l.update(&profiled(22, 11, 20, 11..=11, 30)), 11);
        // Two levels wait: the queue is deeper than one request. Back to the estimate,
        // 11 · 20 / 24 = 9.2.
        assert_eq!(l.update(&profiled(24, 11, 20, 10..=11, 30)), 9);
    }

    #[test]
    fn a_slightly_slow_top_holds_the_limit() {
        let mut l = settled_at_ten();
        // The mean within tolerance and the top level 4% slower (above half the
        // tolerance, under all of it): neither a queue nor room to probe.
        let mut profile = LevelProfile::for_limit(10);
        for level in 1..=10 {
            let rtt = if level == 10 { MS * 208 / 10 } else { MS * 20 };
            for _ in 0..20 {
                profile.record(level, rtt);
            }
        }
        assert_eq!(l.update(&window(20, 10, 500).with_profile(profile)), 10);
    }

    #[test]
    fn validation() {
        assert!(Little::new().validate().is_ok());
        assert!(Little::new().headroom(0.9).validate().is_err());
        assert!(Little::new().tolerance(0.6).validate().is_err());
        assert!(Little::new().backoff_ratio(1.0).validate().is_err());
        assert!(Little::new().baseline_windows(5).validate().is_err());
        assert!(
            Little::new()
                .drain_every(0)
                .baseline_windows(1)
                .validate()
                .is_ok()
        );
        assert!(Little::new().min_limit(0).validate().is_err());
    }
}
