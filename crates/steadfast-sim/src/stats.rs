//! Raw per-bucket measurements, recorded during a run and aggregated into summaries.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Significant figures of the latency histograms: exact up to 2,047 ms, 0.1% above.
const SIGFIG: u8 = 3;

/// A new auto-resizing latency histogram, in whole milliseconds: under paused time every
/// instant the simulator observes is on tokio's 1 ms timer tick, so every observed latency
/// is a whole number of milliseconds and the histogram records it exactly.
pub(crate) fn histogram() -> Histogram<u64> {
    // 3 significant figures is always a valid configuration.
    Histogram::new(SIGFIG).expect("3 significant figures is valid")
}

/// Records `d`, rounded up to whole milliseconds, in `h`.
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let ms = u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
    // An auto-resizing histogram grows to take any value it can represent; clamp the rest
    // (`saturating_record` clamps to the current size without growing).
    if h.record(ms).is_err() {
        h.saturating_record(ms);
    }
}

/// The time base of a run: where it starts and ends and how it is cut into buckets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) t0: Instant,
    pub(crate) end: Instant,
    pub(crate) bucket: Duration,
    pub(crate) n: usize,
}

impl Clock {
    pub(crate) fn new(t0: Instant, duration: Duration, bucket: Duration) -> Self {
        let n = duration.as_nanos().div_ceil(bucket.as_nanos());
        Self {
            t0,
            end: t0 + duration,
            bucket,
            n: usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    /// The bucket of instant `t`, or `None` at or after the end of the run.
    pub(crate) fn index(&self, t: Instant) -> Option<usize> {
        if t >= self.end {
            return None;
        }
        let i = t.saturating_duration_since(self.t0).as_nanos() / self.bucket.as_nanos();
        usize::try_from(i).ok()
    }

    /// Offsets of bucket `i`'s start and end (the last bucket may be short).
    pub(crate) fn bounds(&self, i: usize) -> (Duration, Duration) {
        let start = self.offset(i);
        let end = self.offset(i + 1).min(self.end - self.t0);
        (start, end)
    }

    fn offset(&self, i: usize) -> Duration {
        let nanos = self.bucket.as_nanos() * i as u128;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// One bucket of a time-weighted gauge.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct GaugeBucket {
    /// ∫ value dt, in value·seconds.
    pub(crate) area: f64,
    /// The largest value seen in the bucket, instantaneous peaks included.
    pub(crate) max: u64,
    /// Seconds spent at each value (for the mode).
    pub(crate) levels: BTreeMap<u64, f64>,
}

/// A level (queue length, in-flight count...) integrated over time, per bucket.
#[derive(Debug)]
pub(crate) struct Gauge {
    value: u64,
    last: Instant,
    buckets: Vec<GaugeBucket>,
}

impl Gauge {
    pub(crate) fn new(clock: &Clock, initial: u64) -> Self {
        let mut buckets = vec![GaugeBucket::default(); clock.n];
        if let Some(b) = buckets.first_mut() {
            b.max = initial;
        }
        Self {
            value: initial,
            last: clock.t0,
            buckets,
        }
    }

    /// The level becomes `value` at `now`.
    pub(crate) fn set(&mut self, clock: &Clock, now: Instant, value: u64) {
        self.advance(clock, now);
        self.value = value;
        if let Some(i) = clock.index(now) {
            let b = &mut self.buckets[i];
            b.max = b.max.max(value);
        }
    }

    /// Integrates the current level up to `now`.
    fn advance(&mut self, clock: &Clock, now: Instant) {
        let now = now.min(clock.end);
        if now <= self.last {
            return;
        }
        let mut from = self.last - clock.t0;
        let to = now - clock.t0;
        let v = self.value;
        while from < to {
            let i =
                usize::try_from(from.as_nanos() / clock.bucket.as_nanos()).unwrap_or(usize::MAX);
            let piece_end = to.min(clock.bounds(i).1);
            let dt = (piece_end - from).as_secs_f64();
            let b = &mut self.buckets[i];
            b.area += v as f64 * dt;
            *b.levels.entry(v).or_default() += dt;
            b.max = b.max.max(v);
            from = piece_end;
        }
        self.last = now;
    }

    /// Integrates to the end of the run and returns the buckets.
    pub(crate) fn finish(mut self, clock: &Clock) -> Vec<GaugeBucket> {
        self.advance(clock, clock.end);
        self.buckets
    }
}

/// Counts for one request class in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ClassCounts {
    pub(crate) requests: u64,
    pub(crate) attempts: u64,
    pub(crate) goodput: u64,
    pub(crate) rejected: u64,
    pub(crate) timeouts: u64,
}

/// Samples of the limit probe in one bucket.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LimitBucket {
    pub(crate) samples: u64,
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) last: f64,
    /// Sample counts by value rounded to the nearest integer (for the mode).
    pub(crate) rounded: BTreeMap<i64, u64>,
}

impl LimitBucket {
    pub(crate) fn sample(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.samples == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.samples += 1;
        self.sum += v;
        self.last = v;
        // Saturating float-to-int conversion: the mode of absurd limits is still defined.
        *self.rounded.entry(v.round() as i64).or_default() += 1;
    }
}

/// What the clients saw in one bucket (events are counted in the bucket where they happen).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClientBucket {
    pub(crate) requests: u64,
    pub(crate) attempts: u64,
    pub(crate) retries: u64,
    pub(crate) ok: u64,
    pub(crate) goodput: u64,
    pub(crate) late: u64,
    pub(crate) timeouts: u64,
    pub(crate) rejected: u64,
    pub(crate) errors: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) reject_latency: Histogram<u64>,
    pub(crate) classes: Vec<ClassCounts>,
    pub(crate) limit: LimitBucket,
}

impl ClientBucket {
    pub(crate) fn new(classes: usize) -> Self {
        Self {
            requests: 0,
            attempts: 0,
            retries: 0,
            ok: 0,
            goodput: 0,
            late: 0,
            timeouts: 0,
            rejected: 0,
            errors: 0,
            latency: histogram(),
            reject_latency: histogram(),
            classes: vec![ClassCounts::default(); classes],
            limit: LimitBucket::default(),
        }
    }
}

/// What the backend did in one bucket (completions are counted when the worker finishes).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct BackendBucket {
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) wasted: u64,
    pub(crate) skipped: u64,
    pub(crate) wasted_work: Duration,
    pub(crate) busy_time: Duration,
}

/// Every raw measurement of one bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawBucket {
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    pub(crate) client: ClientBucket,
    pub(crate) backend: BackendBucket,
    pub(crate) stack_in_flight: GaugeBucket,
    pub(crate) waiting: GaugeBucket,
    pub(crate) backend_in_flight: GaugeBucket,
    pub(crate) queue: GaugeBucket,
    pub(crate) busy: GaugeBucket,
    pub(crate) workers: GaugeBucket,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn gauge_integrates_across_buckets() {
        let t0 = Instant::now();
        let clock = Clock::new(t0, Duration::from_millis(2500), Duration::from_secs(1));
        assert_eq!(clock.n, 3);
        assert_eq!(
            clock.bounds(2),
            (Duration::from_secs(2), Duration::from_millis(2500))
        );
        let mut g = Gauge::new(&clock, 0);
        g.set(&clock, t0 + Duration::from_millis(500), 4);
        g.set(&clock, t0 + Duration::from_millis(500), 9); // instantaneous peak
        g.set(&clock, t0 + Duration::from_millis(500), 2);
        g.set(&clock, t0 + Duration::from_millis(1500), 0);
        g.set(&clock, t0 + Duration::from_millis(2200), 1);
        let b = g.finish(&clock);
        assert!((b[0].area - 1.0).abs() < 1e-9, "{}", b[0].area);
        assert_eq!(b[0].max, 9);
        assert!((b[1].area - 1.0).abs() < 1e-9);
        assert_eq!(b[1].max, 2);
        assert!((b[2].area - 0.3).abs() < 1e-9);
        assert_eq!(b[0].levels.get(&2), Some(&0.5));
        assert_eq!(clock.index(t0 + Duration::from_millis(2500)), None);
    }
}
