//! A window's RTTs grouped by how many requests were in flight when each was admitted.

use std::time::Duration;

/// The RTTs of a window's timed successes, grouped by the **admission level**: the number
/// of requests in flight when each was admitted, itself included.
///
/// A backend that serves `c` requests at once and queues the rest answers a request
/// admitted at level `k ≤ c` in its service time alone, and one admitted at `k > c` only
/// after `k − c` others finished. So the mean RTT per level is flat up to the backend's
/// concurrency and rises after it: the knee of that curve is the limit that keeps the
/// backend busy without a queue. A window's mean RTT mixes every level and hides a queue
/// of one or two requests in its noise (about ±3% for a thousand requests of a lognormal
/// service time); the profile keeps the levels apart, and within one window, so it needs
/// no baseline remembered from earlier ones. [`Little`](super::Little) reads it.
///
/// Levels are grouped into at most [`BUCKETS`](Self::BUCKETS) buckets of
/// [`width`](Self::width) consecutive levels each (one level per bucket while the limit is
/// at most `BUCKETS`); levels past the last bucket count in it. Two fixed arrays (384
/// bytes): recording never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelProfile {
    width: usize,
    counts: [u32; Self::BUCKETS],
    /// Sums of RTTs in nanoseconds.
    sums: [u64; Self::BUCKETS],
}

/// The RTTs of the requests admitted at one bucket of levels: see [`LevelProfile`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelStats {
    /// The lowest admission level of the bucket (at least 1).
    pub first: usize,
    /// The highest admission level of the bucket (for the last bucket, every level above
    /// counts in it too).
    pub last: usize,
    /// How many timed successes were admitted at these levels.
    pub count: u32,
    /// Their mean RTT, in seconds.
    pub mean: f64,
}

impl LevelProfile {
    /// The number of buckets.
    pub const BUCKETS: usize = 32;

    /// An empty profile whose buckets are wide enough for levels up to `limit`, one
    /// level per bucket while `limit <= BUCKETS`.
    pub const fn for_limit(limit: usize) -> Self {
        Self::with_width(limit.div_ceil(Self::BUCKETS))
    }

    /// An empty profile of buckets `width` levels wide (at least 1).
    pub const fn with_width(width: usize) -> Self {
        Self {
            width: if width == 0 { 1 } else { width },
            counts: [0; Self::BUCKETS],
            sums: [0; Self::BUCKETS],
        }
    }

    /// How many consecutive levels each bucket holds.
    pub const fn width(&self) -> usize {
        self.width
    }

    /// Records one timed success admitted at `level` (itself included; 0 counts as 1).
    pub fn record(&mut self, level: usize, rtt: Duration) {
        let bucket = (level.saturating_sub(1) / self.width).min(Self::BUCKETS - 1);
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket] = self.counts[bucket].saturating_add(1);
        self.sums[bucket] = self.sums[bucket].saturating_add(nanos);
    }

    /// How many requests the profile holds.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|&n| u64::from(n)).sum()
    }

    /// The non-empty buckets, lowest levels first.
    pub fn buckets(&self) -> impl Iterator<Item = LevelStats> + '_ {
        (0..Self::BUCKETS)
            .filter(|&i| self.counts[i] > 0)
            .map(|i| LevelStats {
                first: i.saturating_mul(self.width).saturating_add(1),
                last: (i + 1).saturating_mul(self.width),
                count: self.counts[i],
                mean: self.sums[i] as f64 / f64::from(self.counts[i]) * 1e-9,
            })
    }
}

impl Default for LevelProfile {
    fn default() -> Self {
        Self::with_width(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn groups_by_level_with_their_mean() {
        let mut p = LevelProfile::for_limit(10);
        assert_eq!(p.width(), 1);
        p.record(1, 10 * MS);
        p.record(1, 30 * MS);
        p.record(3, 50 * MS);
        let buckets: Vec<_> = p.buckets().collect();
        assert_eq!(buckets.len(), 2);
        assert_eq!(
            (buckets[0].first, buckets[0].last, buckets[0].count),
            (1, 1, 2)
        );
        assert!((buckets[0].mean - 0.020).abs() < 1e-12);
        assert_eq!((buckets[1].first, buckets[1].count), (3, 1));
        assert!((buckets[1].mean - 0.050).abs() < 1e-12);
        assert_eq!(p.count(), 3);
    }

    #[test]
    fn wide_limits_share_buckets_and_the_last_takes_the_overflow() {
        let mut p = LevelProfile::for_limit(100);
        assert_eq!(p.width(), 4);
        p.record(0, MS);
        p.record(4, MS);
        p.record(5, MS);
        p.record(10_000, MS);
        let buckets: Vec<_> = p.buckets().collect();
        assert_eq!(
            (buckets[0].first, buckets[0].last, buckets[0].count),
            (1, 4, 2)
        );
        assert_eq!((buckets[1].first, buckets[1].last), (5, 8));
        assert_eq!(buckets[2].first, 125);
        // The widest buckets saturate rather than overflow.
        let mut p = LevelProfile::for_limit(usize::MAX);
        p.record(usize::MAX, MS);
        let last = p.buckets().last().expect("one bucket");
        assert_eq!(last.last, usize::MAX);
    }
}
