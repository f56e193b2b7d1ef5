//! Facebook's controlled delay (CoDel adapted to request queues), as a pure state machine.

use std::time::Duration;

use tokio::time::Instant;

/// What `Instant + Duration` saturates to instead of overflowing: about 30 years (as tokio's
/// own far-future instant).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + d`, or a far-future instant where that would overflow: never panics.
pub(crate) fn saturating_add(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR_FUTURE.min(d)))
        .unwrap_or(at)
}

/// Facebook's controlled-delay overload detector: the variant of CoDel that folly's
/// `Codel` and Envoy's `codel.cc` ship for request queues.
///
/// Feed it the queueing delay (sojourn time) of every request as it leaves the queue to be
/// served, with [`observe`](Self::observe). Time is cut into intervals; at the first
/// observation after an interval ends, the queue is declared **overloaded** for the next
/// interval if the *smallest* delay seen during the one that ended exceeded the target: even
/// the luckiest request waited too long, so the queue is standing, not a burst. While
/// overloaded, a request that waited more than twice the target is **sloughed** (refused):
/// `observe` returns `true` for it. This replaces standard CoDel's increasing drop rate,
/// which Facebook found to work worse for RPC services.
///
/// The first observation of each interval only starts the new minimum and is never
/// sloughed, as in folly ("more than one request must come in during an interval").
///
/// | setting | default | source |
/// |---|---|---|
/// | target | 5 ms | folly `codel_target_delay`, Envoy, "Fail at Scale" |
/// | interval | 100 ms | folly `codel_interval`, Envoy, "Fail at Scale" |
/// | slough threshold | 2 × target | folly `getSloughTimeout` |
///
/// ```
/// use std::time::Duration;
/// use steadfast_shed::Codel;
/// use tokio::time::Instant;
///
/// let ms = Duration::from_millis;
/// let mut codel = Codel::default();
/// let t0 = Instant::now();
/// // An interval in which every request waited at least 8 ms (> 5 ms target)...
/// for i in 0..10 {
///     assert!(!codel.observe(ms(8 + i), t0 + ms(10 * i)));
/// }
/// // ...makes the next one overloaded: after its first request, waits over 10 ms are sloughed.
/// assert!(!codel.observe(ms(30), t0 + ms(101)));
/// assert!(codel.is_overloaded());
/// assert!(codel.observe(ms(11), t0 + ms(102)));
/// assert!(!codel.observe(ms(9), t0 + ms(103)));
/// ```
#[derive(Debug, Clone)]
pub struct Codel {
    target: Duration,
    interval: Duration,
    /// End of the current interval; `None` before the first observation.
    interval_end: Option<Instant>,
    /// Smallest delay observed in the current interval.
    min_delay: Duration,
    /// Smallest delay of the last finished interval: over the target, the queue is
    /// overloaded.
    last_min_delay: Duration,
}

impl Default for Codel {
    /// Target 5 ms, interval 100 ms.
    fn default() -> Self {
        Self::new(Duration::from_millis(5), Duration::from_millis(100))
    }
}

impl Codel {
    /// A detector with the given target delay and interval (not checked: the
    /// [`ShedLayerBuilder`](crate::ShedLayerBuilder) validates its own). Any durations
    /// work, `Duration::MAX` included: interval ends saturate far in the future instead of
    /// overflowing.
    pub const fn new(target: Duration, interval: Duration) -> Self {
        Self {
            target,
            interval,
            interval_end: None,
            min_delay: Duration::ZERO,
            last_min_delay: Duration::ZERO,
        }
    }

    /// The target queueing delay.
    pub const fn target(&self) -> Duration {
        self.target
    }

    /// The interval over which the minimum delay is taken.
    pub const fn interval(&self) -> Duration {
        self.interval
    }

    /// The delay above which requests are sloughed while overloaded: twice the target.
    pub fn slough_threshold(&self) -> Duration {
        self.target.saturating_mul(2)
    }

    /// Records that a request leaves the queue at `now` after waiting `delay`, and returns
    /// whether to slough it (the queue is overloaded and it waited more than
    /// [`slough_threshold`](Self::slough_threshold)).
    pub fn observe(&mut self, delay: Duration, now: Instant) -> bool {
        let interval_over = self.interval_end.is_none_or(|end| now > end);
        if interval_over {
            // A first observation ever counts as an interval with no delay.
            if self.interval_end.is_some() {
                self.last_min_delay = self.min_delay;
            }
            self.interval_end = Some(saturating_add(now, self.interval));
            // The first observation of an interval starts its minimum.
            self.min_delay = delay;
            return false;
        }
        self.min_delay = self.min_delay.min(delay);
        self.should_slough(delay)
    }

    /// Whether a request that has waited `delay` would be sloughed by the last verdict,
    /// without recording anything. The verdict may be stale (see
    /// [`should_slough_at`](Self::should_slough_at)).
    pub fn should_slough(&self, delay: Duration) -> bool {
        self.is_overloaded() && delay > self.slough_threshold()
    }

    /// Whether a request that has waited `delay` would be sloughed at `now`, without
    /// recording anything: [`is_overloaded_at`](Self::is_overloaded_at) and `delay` above
    /// the [`slough_threshold`](Self::slough_threshold).
    pub fn should_slough_at(&self, delay: Duration, now: Instant) -> bool {
        self.is_overloaded_at(now) && delay > self.slough_threshold()
    }

    /// Whether the last finished interval's minimum delay exceeded the target.
    pub const fn is_overloaded(&self) -> bool {
        self.last_min_delay.as_nanos() > self.target.as_nanos()
    }

    /// Whether the queue counts as overloaded at `now`: [`is_overloaded`](Self::is_overloaded),
    /// unless the interval that verdict applies to is over with nothing observed since
    /// (no request left the queue: the verdict is stale).
    pub fn is_overloaded_at(&self, now: Instant) -> bool {
        self.is_overloaded() && self.interval_end.is_some_and(|end| now <= end)
    }

    /// The smallest delay observed in the last finished interval: a conservative estimate
    /// of how long a request that queues now will wait.
    pub const fn last_min_delay(&self) -> Duration {
        self.last_min_delay
    }

    /// Folly's load figure, in percent: `min(100, 100 · min_delay / (2 · target))`, from
    /// the current interval's minimum delay.
    pub fn load_percent(&self) -> u8 {
        let slough = self.slough_threshold().as_nanos().max(1);
        let load = (100 * self.min_delay.as_nanos() / slough).min(100);
        u8::try_from(load).unwrap_or(100)
    }
}
