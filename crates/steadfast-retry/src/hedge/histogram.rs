//! A small rolling latency histogram with log-linear buckets, for the percentile delay.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Sub-buckets per power of two: 2^5 = 32, so a bucket is at most 1/32 of its lower edge.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values are whole microseconds below 2^26 µs (about 67 s); longer ones land in the last
/// bucket.
const MAX_BITS: u32 = 26;
const MAX_MICROS: u64 = (1 << MAX_BITS) - 1;
/// Groups of `SUB` buckets: the first covers 0..32 µs one microsecond at a time, each later
/// one a power of two [2^k, 2^(k+1)) in 32 equal steps.
const GROUPS: usize = (MAX_BITS - SUB_BITS + 1) as usize;
const BUCKETS: usize = GROUPS * SUB;

/// The bucket of a latency of `micros` microseconds.
fn bucket(micros: u64) -> usize {
    let v = micros.min(MAX_MICROS);
    if v < SUB as u64 {
        return v as usize;
    }
    let k = 63 - v.leading_zeros(); // the highest set bit, at least SUB_BITS
    let sub = (v >> (k - SUB_BITS)) as usize & (SUB - 1);
    (k - SUB_BITS + 1) as usize * SUB + sub
}

/// The largest value, in microseconds, that falls in bucket `index`.
fn bucket_max(index: usize) -> u64 {
    let (group, sub) = (index / SUB, (index % SUB) as u64);
    if group == 0 {
        return sub;
    }
    let width = 1u64 << (group - 1);
    ((SUB as u64 + sub) << (group - 1)) + width - 1
}

/// One time window's counts.
struct Window {
    counts: Box<[u64]>,
    /// Sums of `counts` per group, so a quantile walks 22 groups and then 32 buckets.
    groups: [u64; GROUPS],
    total: u64,
}

impl Window {
    fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            groups: [0; GROUPS],
            total: 0,
        }
    }

    fn clear(&mut self) {
        self.counts.fill(0);
        self.groups = [0; GROUPS];
        self.total = 0;
    }
}

/// The current and the previous window, rotated by tokio time.
struct Windows {
    current: Window,
    previous: Window,
    /// When `current` began; `None` until the first sample.
    current_start: Option<Instant>,
}

impl Windows {
    /// Rotates so that `current` contains `now`.
    fn rotate(&mut self, now: Instant, window: Duration) {
        let Some(start) = self.current_start else {
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < window {
            return;
        }
        if elapsed < window * 2 {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.current_start = Some(start + window);
        } else {
            // Idle for two windows or more: everything has expired.
            self.current.clear();
            self.previous.clear();
            self.current_start = Some(now);
        }
    }
}

/// Latencies of the last one to two `window`s, in log-linear buckets: exact to the
/// microsecond below 32 µs, then 32 buckets per power of two up to about 67 s (longer
/// latencies count as 67 s). A quantile is reported as the largest value of its bucket, so
/// it is never below the true sample quantile and at most 1/32 (3.125 %) above it.
///
/// Samples go into the current window; when it is `window` old it becomes the previous one
/// and the one before is forgotten. Quantiles are read over both, so they cover between one
/// and two windows of history. Behind a [`Mutex`] held for a few dozen operations (a full
/// clear of 704 counters on rotation).
pub(super) struct LatencyHistogram {
    window: Duration,
    windows: Mutex<Windows>,
}

impl LatencyHistogram {
    pub(super) fn new(window: Duration) -> Self {
        Self {
            window,
            windows: Mutex::new(Windows {
                current: Window::new(),
                previous: Window::new(),
                current_start: None,
            }),
        }
    }

    fn lock(&self, now: Instant) -> MutexGuard<'_, Windows> {
        // Nothing can panic while the lock is held; recover rather than panic if that ever
        // changes.
        let mut guard = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        guard.rotate(now, self.window);
        guard
    }

    /// Records one latency.
    pub(super) fn record(&self, latency: Duration) {
        let now = Instant::now();
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = bucket(micros);
        let mut windows = self.lock(now);
        windows.current_start.get_or_insert(now);
        let current = &mut windows.current;
        current.counts[index] += 1;
        current.groups[index / SUB] += 1;
        current.total += 1;
    }

    /// Samples in the window.
    #[cfg(test)]
    fn len(&self) -> u64 {
        let windows = self.lock(Instant::now());
        windows.current.total + windows.previous.total
    }

    /// The `quantile` (in (0, 1]) of the latencies in the window, or `None` with fewer than
    /// `min_samples` (at least one) of them.
    pub(super) fn quantile(&self, quantile: f64, min_samples: u32) -> Option<Duration> {
        let windows = self.lock(Instant::now());
        let (current, previous) = (&windows.current, &windows.previous);
        let total = current.total + previous.total;
        if total == 0 || total < u64::from(min_samples) {
            return None;
        }
        // The smallest value with at least ⌈q × n⌉ samples at or below it (float rounding can
        // move the rank by one sample when q × n is within an ulp of an integer).
        let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for group in 0..GROUPS {
            let in_group = current.groups[group] + previous.groups[group];
            if seen + in_group < rank {
                seen += in_group;
                continue;
            }
            for index in group * SUB..(group + 1) * SUB {
                seen += current.counts[index] + previous.counts[index];
                if seen >= rank {
                    return Some(Duration::from_micros(bucket_max(index)));
                }
            }
        }
        unreachable!("the group sums add up to the total")
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("LatencyHistogram")
            .field("window", &self.window)
            .field("samples", &(windows.current.total + windows.previous.total))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_cover_the_range() {
        assert_eq!(BUCKETS, 704);
        let mut last = 0;
        for v in 0..=70_000u64 {
            let b = bucket(v);
            assert!(b == last || b == last + 1, "{v}: {b} after {last}");
            assert!(v <= bucket_max(b), "{v} above its bucket's max");
            if b > 0 {
                assert!(v > bucket_max(b - 1), "{v} not above the previous bucket");
            }
            last = b;
        }
        assert_eq!(bucket(MAX_MICROS), BUCKETS - 1);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_max(BUCKETS - 1), MAX_MICROS);
    }

    proptest! {
        #[test]
        fn reported_values_are_within_one_thirty_second(v in 0..=MAX_MICROS) {
            let reported = bucket_max(bucket(v));
            prop_assert!(reported >= v);
            prop_assert!((reported - v) * 32 <= v, "{} reported as {}", v, reported);
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn quantiles_of_a_known_distribution() {
        let h = LatencyHistogram::new(Duration::from_secs(10));
        assert_eq!(h.quantile(0.5, 1), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.quantile(0.5, 101), None, "below min_samples");
        for (q, exact) in [(0.5, 50), (0.95, 95), (0.99, 99), (1.0, 100), (0.001, 1)] {
            let got = h.quantile(q, 100).expect("enough samples");
            let exact = Duration::from_millis(exact);
            assert!(got >= exact && got <= exact + exact / 32, "q {q}: {got:?}");
        }
        // 100 at 10 ms and 5 at 100 ms: 95.2 % are at 10 ms, so p95 is 10 ms.
        let h = LatencyHistogram::new(Duration::from_secs(10));
        for _ in 0..100 {
            h.record(Duration::from_millis(10));
        }
        for _ in 0..5 {
            h.record(Duration::from_millis(100));
        }
        assert_eq!(h.quantile(0.95, 1), Some(Duration::from_micros(10_239)));
        h.record(Duration::from_millis(100));
        assert_eq!(h.quantile(0.95, 1), Some(Duration::from_micros(100_351)));
        // Longer than the range: clamped to about 67 s.
        h.record(Duration::from_secs(3600));
        assert_eq!(h.quantile(1.0, 1), Some(Duration::from_micros(MAX_MICROS)));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn windows_rotate_with_tokio_time() {
        let window = Duration::from_secs(10);
        let h = LatencyHistogram::new(window);
        h.record(Duration::from_millis(5));
        tokio::time::advance(Duration::from_secs(9)).await;
        h.record(Duration::from_millis(7));
        assert_eq!(h.len(), 2);
        // One window later both are in the previous window, still counted.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(h.len(), 2);
        h.record(Duration::from_millis(9));
        assert_eq!(h.len(), 3);
        // Two windows after the first sample, the first window is forgotten.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(h.len(), 1);
        assert_eq!(h.quantile(0.5, 1), Some(Duration::from_micros(9_215)));
        // Idle for two windows: nothing left.
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(h.len(), 0);
        assert_eq!(h.quantile(0.5, 1), None);
    }
}
