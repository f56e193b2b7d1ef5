//! Finagle's retry budget: a ratio of recent requests, plus a reserve per second.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{InvalidBudget, RetryBudget, RetryCause, RetryPermit};

/// One retry, in millionths of a retry: the unit of every amount below.
const ONE_RETRY: i128 = 1_000_000;
/// The window is a ring of this many slots, each `ttl / SLOTS` long.
const SLOTS: usize = 100;
/// Finagle's bounds on `ttl`.
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(60);
/// Finagle's bound on `percentCanRetry` (a ratio, despite the name).
const MAX_RATIO: f64 = 1000.0;

/// Finagle's retry budget: retries may add `retry_ratio` to the requests of the last `ttl`,
/// plus `min_retries_per_sec` that are always available.
///
/// Every request deposits `retry_ratio` of a retry ([`on_request`](RetryBudget::on_request));
/// every retry withdraws one ([`try_retry`](RetryBudget::try_retry)), if the deposits and
/// withdrawals of the last `ttl` plus the reserve of `min_retries_per_sec × ttl` retries
/// leave at least one. Withdrawals expire like deposits, so the reserve refills at
/// `min_retries_per_sec`: a client with little traffic can still retry its rare failures.
/// The [`RetryCause`] is ignored, and successes and failures change nothing.
///
/// This is the budget of Finagle (`RetryBudget()`), Linkerd (`retryBudget`) and tower
/// (`TpsBudget`), with two differences:
///
/// - **Exact ratio.** Amounts are integers in millionths of a retry: a request deposits
///   `round(retry_ratio × 1 000 000)` and a retry withdraws `1 000 000`, so with no reserve
///   `N` requests allow exactly `⌊N × retry_ratio⌋` retries for any ratio with at most six
///   decimals. tower deposits 1 and withdraws `(1 / ratio) as isize`, which truncates: a
///   ratio of 0.3 allows 33 % retries, 0.4 allows 50 % and 0.7 allows 100 %. Finagle
///   withdraws `⌊1000 / ratio⌋` per deposit of 1000, which is off by up to 0.1 %.
/// - **Exact reserve.** The reserve is `min_retries_per_sec × ttl` computed in nanoseconds
///   (Finagle and tower truncate `ttl` to whole seconds), and it counts in millionths
///   together with the deposits.
///
/// # Time granularity
///
/// Deposits and withdrawals are summed in a ring of 100 slots of `ttl / 100` each (100 ms
/// with the default `ttl`), rotated by [`tokio::time::Instant`], so tests can pause and
/// advance time. An amount counts from the moment it is made until the end of the 100th
/// slot: for more than `0.99 × ttl` and at most `ttl` (Finagle and tower use 10 slots,
/// `0.9 × ttl`). When old deposits expire before the withdrawals they paid for, the balance
/// can fall below the reserve, as in Finagle, until those withdrawals expire too.
///
/// # Thread safety
///
/// The ring is behind a [`Mutex`] held for a few arithmetic operations (and at most 100
/// slot resets after an idle `ttl`), so concurrent retries can never withdraw more than
/// the deposits and the reserve allow.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use steadfast_retry::budget::{RetryBudget, RetryCause, TpsBudget};
///
/// // Finagle's defaults: 20 % of the last 10 s of requests, plus 10 retries per second.
/// let budget = TpsBudget::default();
/// assert_eq!(budget.balance(), 100); // the reserve: 10/s × 10 s
///
/// let strict = TpsBudget::new(Duration::from_secs(10), 0, 0.3).unwrap();
/// for _ in 0..10 {
///     strict.on_request();
/// }
/// assert_eq!(strict.balance(), 3); // exactly 30 %
/// assert!(strict.try_retry(RetryCause::Failure).is_some());
/// assert_eq!(strict.balance(), 2);
/// ```
pub struct TpsBudget {
    ttl: Duration,
    min_retries_per_sec: u32,
    /// What one request deposits, in millionths of a retry.
    deposit: i128,
    /// `min_retries_per_sec × ttl`, in millionths of a retry.
    reserve: i128,
    window: Mutex<Window>,
}

impl TpsBudget {
    /// A budget that lets retries add `retry_ratio` to the requests of the last `ttl`,
    /// plus a reserve of `min_retries_per_sec × ttl` retries per `ttl`.
    ///
    /// `retry_ratio` is a ratio, not a percentage: 0.2 allows one retry per five requests.
    /// It is rounded to millionths.
    ///
    /// # Errors
    ///
    /// [`InvalidBudget`] if `ttl` is not within 1 s ..= 60 s or `retry_ratio` is not
    /// within 0 ..= 1000 (Finagle's ranges). A ratio and a reserve of zero make a budget
    /// that never allows a retry (Finagle's `EmptyRetryBudget`).
    pub fn new(
        ttl: Duration,
        min_retries_per_sec: u32,
        retry_ratio: f64,
    ) -> Result<Self, InvalidBudget> {
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(InvalidBudget::new(
                "TpsBudget ttl must be between 1 s and 60 s",
            ));
        }
        // `contains` is false for NaN.
        if !(0.0..=MAX_RATIO).contains(&retry_ratio) {
            return Err(InvalidBudget::new(
                "TpsBudget retry_ratio must be between 0 and 1000",
            ));
        }
        // At most 1e9: f64 holds the rounded value exactly.
        let deposit = (retry_ratio * ONE_RETRY as f64).round() as i128;
        // min × ttl_s × 1e6 = min × ttl_ns / 1000; ttl_ns ≤ 6e10 fits easily.
        let reserve = i128::from(min_retries_per_sec) * ttl.as_nanos() as i128 / 1000;
        Ok(Self {
            ttl,
            min_retries_per_sec,
            deposit,
            reserve,
            window: Mutex::new(Window::new(ttl, Instant::now())),
        })
    }

    /// How long deposits and withdrawals count.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Retries per second that are available whatever the traffic.
    pub fn min_retries_per_sec(&self) -> u32 {
        self.min_retries_per_sec
    }

    /// The ratio of retries to requests, as rounded to millionths.
    pub fn retry_ratio(&self) -> f64 {
        self.deposit as f64 / ONE_RETRY as f64
    }

    /// How many retries [`try_retry`](RetryBudget::try_retry) would grant now, if nothing
    /// else happened meanwhile.
    pub fn balance(&self) -> u64 {
        let sum = self.lock(Instant::now()).sum;
        u64::try_from((self.reserve + sum).max(0) / ONE_RETRY).unwrap_or(u64::MAX)
    }

    /// The window, rotated to `now`.
    fn lock(&self, now: Instant) -> MutexGuard<'_, Window> {
        // Nothing can panic while the lock is held (the arithmetic cannot overflow), so it is
        // never poisoned; recover rather than panic if that ever changes.
        let mut guard = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        guard.rotate(now);
        guard
    }
}

impl Default for TpsBudget {
    /// Finagle's `RetryBudget()` defaults, which Linkerd and tower share: `ttl` 10 s,
    /// `min_retries_per_sec` 10, `retry_ratio` 0.2 (finagle-core `RetryBudget.scala`;
    /// tower `TpsBudget::default`).
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 10, 0.2).expect("the defaults are valid")
    }
}

impl fmt::Debug for TpsBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpsBudget")
            .field("ttl", &self.ttl)
            .field("min_retries_per_sec", &self.min_retries_per_sec)
            .field("retry_ratio", &self.retry_ratio())
            .finish_non_exhaustive()
    }
}

impl RetryBudget for TpsBudget {
    fn on_request(&self) {
        if self.deposit > 0 {
            let mut window = self.lock(Instant::now());
            window.add(self.deposit);
        }
    }

    fn try_retry(&self, _cause: RetryCause) -> Option<RetryPermit> {
        let mut window = self.lock(Instant::now());
        if self.reserve + window.sum >= ONE_RETRY {
            window.add(-ONE_RETRY);
            Some(RetryPermit::new(1))
        } else {
            None
        }
    }

    fn on_success(&self, _permit: Option<RetryPermit>) {}

    fn on_failure(&self) {}
}

/// The deposits (positive) and withdrawals (negative) of the last `ttl`, in millionths of
/// a retry, summed per slot.
///
/// `i128` cannot overflow: a request deposits at most 1e9, so it would take 1.7e29 requests
/// within one `ttl`.
struct Window {
    /// Slot `n` covers `start + n × slot_len ..< start + (n + 1) × slot_len`.
    start: Instant,
    slot_len: Duration,
    /// The absolute number of the current slot; its amounts are in `slots[head % SLOTS]`.
    head: u64,
    /// When the current slot ends: until then `rotate` has nothing to do (and skips the
    /// division, the hot path's cost).
    head_end: Instant,
    slots: [i128; SLOTS],
    /// The sum of `slots`.
    sum: i128,
}

impl Window {
    fn new(ttl: Duration, start: Instant) -> Self {
        Self {
            start,
            slot_len: ttl / SLOTS as u32,
            head: 0,
            head_end: start + ttl / SLOTS as u32,
            slots: [0; SLOTS],
            sum: 0,
        }
    }

    /// Moves `head` to the slot containing `now`, forgetting the slots it passes.
    ///
    /// Time never goes back: a `now` read before another thread rotated further counts in
    /// the current slot.
    #[inline]
    fn rotate(&mut self, now: Instant) {
        if now < self.head_end {
            return;
        }
        self.rotate_slow(now);
    }

    #[cold]
    fn rotate_slow(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let slot = u64::try_from(elapsed / self.slot_len.as_nanos()).unwrap_or(u64::MAX);
        if slot <= self.head {
            return;
        }
        let steps = slot - self.head;
        if steps >= SLOTS as u64 {
            self.slots = [0; SLOTS];
            self.sum = 0;
        } else {
            for n in self.head + 1..=slot {
                let i = (n % SLOTS as u64) as usize;
                self.sum -= self.slots[i];
                self.slots[i] = 0;
            }
        }
        self.head = slot;
        // Past the representable range (years of uptime) every call takes this path: slower,
        // still correct.
        let slots_to_end = u32::try_from(slot + 1).unwrap_or(u32::MAX);
        self.head_end = self
            .start
            .checked_add(self.slot_len.saturating_mul(slots_to_end))
            .unwrap_or(now);
    }

    fn add(&mut self, amount: i128) {
        let i = (self.head % SLOTS as u64) as usize;
        self.slots[i] += amount;
        self.sum += amount;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_the_ratio_to_millionths() {
        let b = TpsBudget::new(Duration::from_secs(10), 0, 0.123_456_7).unwrap();
        assert_eq!(b.deposit, 123_457);
        assert_eq!(b.retry_ratio(), 0.123_457);
    }

    #[test]
    fn reserve_uses_the_exact_ttl() {
        let b = TpsBudget::new(Duration::from_millis(1_500), 3, 0.0).unwrap();
        assert_eq!(b.reserve, 4_500_000);
        assert_eq!(b.balance(), 4);
    }

    #[test]
    fn ring_forgets_passed_slots() {
        let start = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), start);
        let slot = Duration::from_millis(100);
        w.add(5);
        w.rotate(start + slot * 3);
        w.add(7);
        assert_eq!(w.sum, 12);
        w.rotate(start + slot * 99);
        assert_eq!(w.sum, 12);
        w.rotate(start + slot * 100); // slot 0 expires
        assert_eq!(w.sum, 7);
        w.rotate(start + slot * 50); // the past: no effect
        assert_eq!(w.sum, 7);
        w.rotate(start + slot * 103); // slot 3 expires
        assert_eq!(w.sum, 0);
        w.add(1);
        w.rotate(start + slot * 10_000); // a long idle period clears all
        assert_eq!(w.sum, 0);
        assert!(w.slots.iter().all(|&s| s == 0));
    }
}
