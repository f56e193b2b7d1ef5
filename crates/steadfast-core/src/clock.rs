//! Wall time, behind a trait so that tests can set it.
//!
//! Only the parts of steadfast that need *calendar* time read it: the hybrid logical clock
//! (its physical component is Unix time) and `Retry-After` dates. Everything that measures
//! *durations* uses `tokio::time::Instant`, which `tokio::time::pause()` controls.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock (calendar) time.
///
/// Implementations must be cheap: the hybrid logical clock reads one on every `now()`.
/// A wall clock may jump backwards or forwards (NTP steps, an operator, a VM migration);
/// code that reads it must tolerate that.
pub trait WallClock: Send + Sync + fmt::Debug {
    /// The current wall time.
    fn now(&self) -> SystemTime;

    /// The current wall time as a duration since the Unix epoch; a time before the epoch is
    /// zero.
    #[inline]
    fn since_epoch(&self) -> Duration {
        self.now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

impl<C: WallClock + ?Sized> WallClock for Arc<C> {
    #[inline]
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    #[inline]
    fn since_epoch(&self) -> Duration {
        (**self).since_epoch()
    }
}

impl<C: WallClock + ?Sized> WallClock for &C {
    #[inline]
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    #[inline]
    fn since_epoch(&self) -> Duration {
        (**self).since_epoch()
    }
}

/// The operating system's wall clock ([`SystemTime::now`]).
///
/// This is the one place in steadfast that reads the real wall clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl WallClock for SystemClock {
    #[inline]
    #[allow(clippy::disallowed_methods)] // the one real wall clock
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// On Linux, reads `CLOCK_REALTIME` (through the vDSO, no system call) and builds the
    /// duration from its integers: std's `SystemTime::duration_since` costs about a third
    /// of the clock read itself (see `benches/README.md`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    fn since_epoch(&self) -> Duration {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        match (u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) {
            (Ok(secs), Ok(nanos)) if nanos < 1_000_000_000 => Duration::new(secs, nanos),
            // Before the epoch (or a malformed reading) reads as the epoch.
            _ => Duration::ZERO,
        }
    }
}

/// A wall clock that only moves when told to: for tests and simulations.
///
/// Clones share the same time, so a test can keep one clone and hand another to the code
/// under test. The clock can be set anywhere, including backwards, to simulate NTP steps and
/// skewed nodes. Resolution is one nanosecond; times before the Unix epoch are not
/// representable and read as the epoch.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast_core::clock::{ManualClock, WallClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// let seen_by_code_under_test = clock.clone();
/// clock.advance(Duration::from_millis(1_500));
/// assert_eq!(seen_by_code_under_test.since_epoch(), Duration::from_millis(1_001_500));
/// clock.rewind(Duration::from_secs(2)); // an NTP step backwards
/// assert_eq!(seen_by_code_under_test.since_epoch(), Duration::from_millis(999_500));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    nanos_since_epoch: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `start` until it is moved.
    pub fn new(start: SystemTime) -> Self {
        let clock = Self::default();
        clock.set(start);
        clock
    }

    /// A clock that reads `since_epoch` after the Unix epoch until it is moved.
    pub fn from_epoch(since_epoch: Duration) -> Self {
        Self::new(UNIX_EPOCH + since_epoch)
    }

    /// Sets the time (forwards or backwards).
    pub fn set(&self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.nanos_since_epoch.store(nanos, Ordering::SeqCst);
    }

    /// Moves the time forwards by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos_since_epoch
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Moves the time backwards by `by` (saturating at the epoch), like an NTP step.
    pub fn rewind(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos_since_epoch
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(by))
            });
    }
}

impl WallClock for ManualClock {
    #[inline]
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + self.since_epoch()
    }
    #[inline]
    fn since_epoch(&self) -> Duration {
        Duration::from_nanos(self.nanos_since_epoch.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("since_epoch", &self.since_epoch())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_saturates_at_both_ends() {
        let clock = ManualClock::from_epoch(Duration::from_secs(5));
        clock.rewind(Duration::from_secs(10));
        assert_eq!(clock.since_epoch(), Duration::ZERO);
        clock.advance(Duration::MAX);
        assert_eq!(clock.since_epoch(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn system_clock_is_after_2020_and_both_readings_agree() {
        let fast = SystemClock.since_epoch();
        let std = SystemClock
            .now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970");
        assert!(fast > Duration::from_secs(1_577_836_800));
        assert!(
            std.abs_diff(fast) < Duration::from_secs(1),
            "{fast:?} vs {std:?}"
        );
    }

    #[test]
    fn arc_and_ref_clocks_delegate() {
        let clock = ManualClock::from_epoch(Duration::from_secs(7));
        let shared: Arc<dyn WallClock> = Arc::new(clock.clone());
        assert_eq!(shared.since_epoch(), Duration::from_secs(7));
        let by_ref: &ManualClock = &clock;
        assert_eq!(WallClock::since_epoch(&by_ref), Duration::from_secs(7));
    }
}
