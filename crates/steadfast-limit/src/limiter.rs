//! The shared limiter: the lock-free admission counter, the waiters, and the windowed
//! algorithm behind a lock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use crate::algorithm::LimitAlgorithm;
use crate::error::InvalidLimitConfig;
use crate::window::{Update, WindowConfig, Windowed};

/// An adaptive concurrency limit shared by every service of an
/// [`AdaptiveConcurrencyLayer`](crate::AdaptiveConcurrencyLayer): how many requests may be
/// in flight, how many are, and the algorithm that moves the limit.
///
/// Admission is lock-free: an atomic in-flight counter checked against an atomic limit with
/// one compare-and-swap. Finished requests feed the sampling window under a short lock;
/// the algorithm runs once per window.
///
/// It can also be used without tower, like Netflix's `Limiter`: [`try_acquire`](Self::try_acquire)
/// a [`Permit`], then report how the request went with [`Permit::success`],
/// [`Permit::dropped`] or [`Permit::ignore`] (dropping the permit ignores it too).
///
/// ```
/// use std::sync::Arc;
/// use steadfast_limit::{Limiter, WindowConfig};
/// use steadfast_limit::algorithm::Aimd;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast_limit::InvalidLimitConfig> {
/// let limiter = Arc::new(Limiter::new(Aimd::new().initial_limit(1), WindowConfig::per_request())?);
/// let permit = limiter.try_acquire().expect("one permit");
/// assert!(limiter.try_acquire().is_none(), "the limit is 1");
/// permit.dropped(); // e.g. the backend answered 503
/// assert_eq!(limiter.stats().drops, 1);
/// assert!(limiter.try_acquire().is_some());
/// # Ok(())
/// # }
/// ```
pub struct Limiter {
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    waiters: WaitList,
    windowed: Mutex<Windowed<Box<dyn LimitAlgorithm>>>,
    successes: AtomicU64,
    drops: AtomicU64,
    ignored: AtomicU64,
    rejections: AtomicU64,
    updates: AtomicU64,
    name: Arc<str>,
    algorithm: &'static str,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a [`Limiter`]: the limit, the requests in flight, and counters since it
/// was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LimitStats {
    /// The current limit.
    pub limit: usize,
    /// Requests holding a permit now (reserved by a ready service, or running).
    pub in_flight: usize,
    /// Requests that finished successfully and gave an RTT sample.
    pub successes: u64,
    /// Requests that were dropped: refused for overload downstream, or timed out.
    pub drops: u64,
    /// Requests that finished without a sample: other errors, and cancellations.
    pub ignored: u64,
    /// Requests refused by [`Mode::FailFast`](crate::Mode::FailFast) for want of a permit.
    pub rejections: u64,
    /// Sampling windows that were closed and fed to the algorithm.
    pub updates: u64,
}

impl Limiter {
    /// A limiter running `algorithm` over sampling windows configured by `window`.
    ///
    /// # Errors
    ///
    /// [`InvalidLimitConfig`] when the algorithm or the window is misconfigured.
    pub fn new(
        algorithm: impl LimitAlgorithm,
        window: WindowConfig,
    ) -> Result<Self, InvalidLimitConfig> {
        Self::build(Box::new(algorithm), window, Arc::from("default"))
    }

    pub(crate) fn build(
        algorithm: Box<dyn LimitAlgorithm>,
        window: WindowConfig,
        name: Arc<str>,
    ) -> Result<Self, InvalidLimitConfig> {
        algorithm.validate()?;
        window.validate()?;
        let limit = algorithm.limit().max(1);
        let name_of_algorithm = algorithm.name();
        Ok(Self {
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            waiters: WaitList::default(),
            windowed: Mutex::new(Windowed::new(window, algorithm)),
            successes: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            name,
            algorithm: name_of_algorithm,
        })
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Requests holding a permit now. May exceed the limit for a while after it shrinks:
    /// permits already given out are never revoked.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The name given to the layer's builder (`"default"` otherwise).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A snapshot of the limit, the requests in flight and the counters.
    pub fn stats(&self) -> LimitStats {
        LimitStats {
            limit: self.limit(),
            in_flight: self.in_flight(),
            successes: self.successes.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            updates: self.updates.load(Ordering::Relaxed),
        }
    }

    /// Takes a permit if one is free, starting its RTT clock now; `None` when the limit is
    /// reached (count the refusal yourself: this method does not, as the caller may wait
    /// and try again).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let reservation = self.try_reserve()?;
        Some(Permit::new(reservation, Instant::now()))
    }

    /// The lock-free admission check: one successful compare-and-swap of the in-flight
    /// count below the limit.
    pub(crate) fn try_reserve(self: &Arc<Self>) -> Option<Reservation> {
        // SeqCst pairs with the waiters' counter: see `WaitList`.
        let limit = self.limit.load(Ordering::SeqCst);
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Some(Reservation {
                        limiter: Arc::clone(self),
                        in_flight: current + 1,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    pub(crate) fn waiters(&self) -> &WaitList {
        &self.waiters
    }

    pub(crate) fn count_rejection(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Windowed<Box<dyn LimitAlgorithm>>> {
        self.windowed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives one permit back and wakes a waiter if it could now be admitted.
    fn release(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if before - 1 < self.limit.load(Ordering::SeqCst) {
            self.waiters.notify(1);
        }
    }

    /// Feeds one finished request to the sampling window.
    fn record(&self, rtt: Duration, in_flight: usize, dropped: bool) {
        let counter = if dropped {
            &self.drops
        } else {
            &self.successes
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let update = {
            let mut windowed = self.lock();
            let update = windowed.record(Instant::now(), rtt, in_flight, dropped);
            if let Some(update) = &update {
                // Stored under the lock so that two windows closing back to back cannot
                // store their limits out of order.
                self.limit.store(update.limit, Ordering::SeqCst);
            }
            update
        };
        if let Some(update) = update {
            self.applied(update);
        }
    }

    fn applied(&self, update: Update) {
        self.updates.fetch_add(1, Ordering::Relaxed);
        let Update {
            previous,
            limit,
            sample,
        } = update;
        if limit == previous {
            return;
        }
        tracing::debug!(
            target: "steadfast_limit",
            name = %self.name,
            algorithm = self.algorithm,
            limit,
            previous,
            rtt = ?sample.rtt,
            in_flight = sample.in_flight,
            dropped = sample.dropped,
            samples = sample.count,
            "concurrency limit changed"
        );
        if limit > previous {
            self.waiters.notify(limit - previous);
        }
    }
}

/// A permit reserved by a ready service, not yet used by a call. Gives the permit back
/// when dropped.
pub(crate) struct Reservation {
    limiter: Arc<Limiter>,
    in_flight: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// The right to run one request, from [`Limiter::try_acquire`] (or made by the layer at
/// `call`). Report how the request went with one of its methods; dropping it without one
/// gives the permit back and takes no sample (a cancellation).
pub struct Permit {
    reservation: Reservation,
    start: Instant,
    finished: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("in_flight", &self.reservation.in_flight)
            .field("start", &self.start)
            .finish()
    }
}

impl Permit {
    pub(crate) fn new(reservation: Reservation, start: Instant) -> Self {
        Self {
            reservation,
            start,
            finished: false,
        }
    }

    /// Requests in flight when this one was admitted, itself included.
    pub fn in_flight(&self) -> usize {
        self.reservation.in_flight
    }

    /// When the request started (its RTT is measured from here).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The request succeeded: its RTT (from [`start`](Self::start) to now) is a sample.
    pub fn success(self) {
        self.finish(false);
    }

    /// The request was dropped: refused for overload downstream, or timed out. A loss
    /// signal: the limit comes down.
    pub fn dropped(self) {
        self.finish(true);
    }

    /// The request finished in a way that says nothing about capacity (an application
    /// error): give the permit back, take no sample.
    pub fn ignore(mut self) {
        self.finished = true;
        self.reservation
            .limiter
            .ignored
            .fetch_add(1, Ordering::Relaxed);
    }

    fn finish(mut self, dropped: bool) {
        self.finished = true;
        let rtt = Instant::now().saturating_duration_since(self.start);
        let limiter = &self.reservation.limiter;
        limiter.record(rtt, self.reservation.in_flight, dropped);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.finished {
            // Cancelled: no sample (Netflix's `onIgnore`).
            self.reservation
                .limiter
                .ignored
                .fetch_add(1, Ordering::Relaxed);
        }
        // The reservation gives the permit back as it drops.
    }
}

/// The services waiting for a permit, woken oldest first (or newest first for a LIFO
/// [`WaitQueue`](crate::WaitQueue)).
///
/// Wake-ups are ordered, admission is not strictly fair: a service polling just as a
/// permit frees may take it ahead of the waiter that was woken for it, which then goes
/// back to the front of the queue.
///
/// Wake-ups are never lost: a waiter queues itself and then tries to acquire once more,
/// and a releaser decrements the in-flight count and then reads `queued`; with both sides
/// sequentially consistent, either the releaser sees the waiter or the waiter's second try
/// sees the free permit. A waiter that was woken but goes away without taking a permit
/// passes its wake-up on.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    queued: AtomicUsize,
    inner: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Slot>,
    free: Vec<usize>,
    queue: VecDeque<usize>,
}

#[derive(Debug, Default)]
struct Slot {
    waker: Option<Waker>,
    state: SlotState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    #[default]
    Idle,
    Queued,
    Notified,
}

impl Waiters {
    fn unqueue(&mut self, key: usize, queued: &AtomicUsize) {
        if let Some(pos) = self.queue.iter().position(|&k| k == key) {
            self.queue.remove(pos);
            queued.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn pop(&mut self, queued: &AtomicUsize) -> Option<Waker> {
        let key = self.queue.pop_front()?;
        queued.fetch_sub(1, Ordering::SeqCst);
        let slot = &mut self.slots[key];
        slot.state = SlotState::Notified;
        slot.waker.take()
    }
}

impl WaitList {
    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Services queued now (not counting one woken and not yet back).
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Queues the waiter `key` (allocating one when `None`) at the back, or at the front
    /// for `lifo`, or updates its waker if it is queued already. Wake-ups are taken from
    /// the front.
    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker, lifo: bool) {
        let mut guard = self.lock();
        let waiters = &mut *guard;
        let k = match *key {
            Some(k) => k,
            None => {
                let k = waiters.free.pop().unwrap_or_else(|| {
                    waiters.slots.push(Slot::default());
                    waiters.slots.len() - 1
                });
                *key = Some(k);
                k
            }
        };
        let slot = &mut waiters.slots[k];
        match slot.state {
            SlotState::Queued => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
            }
            state => {
                slot.waker = Some(waker.clone());
                slot.state = SlotState::Queued;
                if state == SlotState::Notified || lifo {
                    // Woken but beaten to the permit: keep its place at the front.
                    waiters.queue.push_front(k);
                } else {
                    waiters.queue.push_back(k);
                }
                self.queued.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// The waiter `key` got its permit.
    pub(crate) fn satisfied(&self, key: usize) {
        let mut waiters = self.lock();
        if waiters.slots[key].state == SlotState::Queued {
            waiters.unqueue(key, &self.queued);
        }
        let slot = &mut waiters.slots[key];
        slot.state = SlotState::Idle;
        slot.waker = None;
    }

    /// The waiter `key` goes away; a wake-up it received and did not use goes to the next.
    pub(crate) fn remove(&self, key: usize) {
        let next = {
            let mut waiters = self.lock();
            let state = waiters.slots[key].state;
            if state == SlotState::Queued {
                waiters.unqueue(key, &self.queued);
            }
            waiters.slots[key] = Slot::default();
            waiters.free.push(key);
            if state == SlotState::Notified {
                waiters.pop(&self.queued)
            } else {
                None
            }
        };
        if let Some(waker) = next {
            waker.wake();
        }
    }

    /// Wakes up to `n` waiters, oldest first. Wakers run outside the lock.
    pub(crate) fn notify(&self, n: usize) {
        for _ in 0..n {
            if self.queued.load(Ordering::SeqCst) == 0 {
                return;
            }
            let waker = self.lock().pop(&self.queued);
            match waker {
                Some(waker) => waker.wake(),
                None => return,
            }
        }
    }
}
