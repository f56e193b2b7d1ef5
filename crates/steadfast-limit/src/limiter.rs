//! The shared limiter: the lock-free admission counter, the waiters, and the windowed
//! algorithm behind a lock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, PoisonError};
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use crate::algorithm::LimitAlgorithm;
use crate::error::InvalidLimitConfig;
use crate::partition::{self, PartitionStats, Partitions};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
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
// `repr(C)`: the field order is the cache-line layout. Every request writes `hot` and reads
// `limit` and `waiters.queued`: `hot` gets a cache line of its own, and the read-mostly
// fields (written about once per window) the next one, so that readers never miss on
// another request's writes.
#[repr(C)]
pub struct Limiter {
    hot: Hot,
    limit: AtomicUsize,
    /// Services time every `stride`-th call: see [`WindowConfig::timed_per_window`].
    stride: AtomicUsize,
    waiters: WaitList,
    windowed: Mutex<Windowed<Box<dyn LimitAlgorithm>>>,
    drops: AtomicU64,
    ignored: AtomicU64,
    rejections: AtomicU64,
    updates: AtomicU64,
    /// The zero of the permits' start times.
    origin: Instant,
    /// The partitions of the limit, if any.
    partitions: Option<partition::Table>,
    name: Arc<str>,
    algorithm: &'static str,
}

/// The counters every request writes, on a cache line of their own.
#[repr(C, align(64))]
#[derive(Debug)]
struct Hot {
    in_flight: AtomicUsize,
    successes: AtomicU64,
    /// 1 once a request was admitted at the limit (itself included) since the last
    /// completion was sampled: [`Sample::limit_reached`](crate::algorithm::Sample::limit_reached).
    reached: AtomicUsize,
    /// First calls of new services, counted across the layer: where each new service
    /// starts in the timing stride ([`Limiter::first_untimed`]).
    first_calls: AtomicUsize,
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
            hot: Hot {
                in_flight: AtomicUsize::new(0),
                successes: AtomicU64::new(0),
                reached: AtomicUsize::new(0),
                first_calls: AtomicUsize::new(0),
            },
            limit: AtomicUsize::new(limit),
            waiters: WaitList::default(),
            windowed: Mutex::new(Windowed::new(window, algorithm)),
            drops: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            stride: AtomicUsize::new(1),
            origin: Instant::now(),
            partitions: None,
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
        self.hot.in_flight.load(Ordering::Relaxed)
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
            successes: self.hot.successes.load(Ordering::Relaxed),
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
        let in_flight = self.try_reserve()?;
        let admission = Admission::new(in_flight, NO_PARTITION);
        Some(Permit::new(
            Arc::clone(self),
            admission,
            Some(Instant::now()),
        ))
    }

    /// The lock-free admission check: one successful compare-and-swap of the in-flight
    /// count below the limit. Returns the count, this request included; the caller owns
    /// one permit, to give back with [`release`](Self::release).
    #[inline]
    pub(crate) fn try_reserve(&self) -> Option<usize> {
        // SeqCst pairs with the waiters' counter: see `WaitList`.
        let limit = self.limit.load(Ordering::SeqCst);
        let mut current = self.hot.in_flight.load(Ordering::SeqCst);
        loop {
            if current >= limit {
                return None;
            }
            match self.hot.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    if current + 1 >= limit {
                        self.mark_reached();
                    }
                    return Some(current + 1);
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Notes that a request was admitted at the limit (written once per sampled
    /// completion at most: the load keeps the line shared until then).
    #[inline]
    fn mark_reached(&self) {
        if self.hot.reached.load(Ordering::Relaxed) == 0 {
            self.hot.reached.store(1, Ordering::Relaxed);
        }
    }

    /// Splits the limit into `partitions` (for example live 90%, batch 10%), enforced only
    /// when the limit is saturated: see the [`partition`](crate::partition) module. Acquire
    /// with [`try_acquire_in`](Self::try_acquire_in).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use steadfast_limit::algorithm::Aimd;
    /// use steadfast_limit::partition::Partitions;
    /// use steadfast_limit::{Limiter, WindowConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast_limit::InvalidLimitConfig> {
    /// let fixed = Aimd::new().initial_limit(10).min_limit(10).max_limit(10);
    /// let limiter = Limiter::new(fixed, WindowConfig::per_request())?
    ///     .partitioned(Partitions::new().partition("live", 0.9).partition("batch", 0.1))?;
    /// let limiter = Arc::new(limiter);
    /// // Not saturated: batch may borrow the whole limit.
    /// let batch: Vec<_> = (0..10).map(|_| limiter.try_acquire_in("batch")).collect();
    /// assert!(batch.iter().all(Option::is_some));
    /// // Saturated: batch is over its share (1), live still gets its 9.
    /// assert!(limiter.try_acquire_in("batch").is_none());
    /// let live: Vec<_> = (0..9).map(|_| limiter.try_acquire_in("live")).collect();
    /// assert!(live.iter().all(Option::is_some));
    /// assert!(limiter.try_acquire_in("live").is_none());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidLimitConfig`] when the partitions are invalid
    /// ([`Partitions::validate`]).
    pub fn partitioned(mut self, partitions: Partitions) -> Result<Self, InvalidLimitConfig> {
        partitions.validate()?;
        self.partitions = (!partitions.is_empty()).then(|| partition::Table::new(partitions));
        Ok(self)
    }

    /// Takes a permit for a request of `partition` (a name declared in
    /// [`partitioned`](Self::partitioned); any other goes to the
    /// [`unknown`](crate::partition::UNKNOWN_PARTITION) partition): below the limit any
    /// partition gets one; at the limit only a partition under its guaranteed share does.
    /// Without partitions, the same as [`try_acquire`](Self::try_acquire). `None` when
    /// refused (not counted as a rejection, as with `try_acquire`).
    pub fn try_acquire_in(self: &Arc<Self>, partition: &str) -> Option<Permit> {
        let index = self.partition_index(Some(partition));
        let admission = self.try_reserve_in(index)?;
        Some(Permit::new(
            Arc::clone(self),
            admission,
            Some(Instant::now()),
        ))
    }

    /// The partitions' shares, guaranteed limits, requests in flight and rejections;
    /// empty without partitions. The last one is the implicit
    /// [`unknown`](crate::partition::UNKNOWN_PARTITION) partition.
    pub fn partition_stats(&self) -> Vec<PartitionStats> {
        self.partitions
            .as_ref()
            .map_or_else(Vec::new, |table| table.stats(self.limit()))
    }

    /// Whether the limit is split into partitions.
    pub(crate) fn is_partitioned(&self) -> bool {
        self.partitions.is_some()
    }

    /// The index of the partition called `name`; `None` without partitions.
    pub(crate) fn partition_index(&self, name: Option<&str>) -> Option<u32> {
        self.partitions.as_ref().map(|table| table.index(name))
    }

    /// Netflix's partitioned admission for a request of partition `index`: under the
    /// limit, any partition (counted in its own); at the limit, only a partition under its
    /// guaranteed share, beyond the limit.
    pub(crate) fn try_reserve_in(&self, index: Option<u32>) -> Option<Admission> {
        if let Some(in_flight) = self.try_reserve() {
            let partition = index.map_or(NO_PARTITION, |index| self.enter(index));
            return Some(Admission::new(in_flight, partition));
        }
        let (table, index) = (self.partitions.as_ref()?, index?);
        if !table.try_enter_guaranteed(index, self.limit()) {
            return None;
        }
        let in_flight = self.hot.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.mark_reached();
        Some(Admission::new(in_flight, index))
    }

    /// Counts a request admitted under the limit in the partition `index`; returns the
    /// partition to give back with [`release`](Self::release).
    pub(crate) fn enter(&self, index: u32) -> u32 {
        match &self.partitions {
            Some(table) => {
                table.enter(index);
                index
            }
            None => NO_PARTITION,
        }
    }

    /// Counts a call refused in the partition `index`.
    pub(crate) fn count_partition_rejection(&self, index: Option<u32>) {
        if let (Some(table), Some(index)) = (&self.partitions, index) {
            table.count_rejection(index);
        }
    }

    /// Nanoseconds from the limiter's origin to `at` (0 before it).
    #[inline]
    fn nanos_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()))
    }

    /// Every how many calls each service of the layer times one, to measure its RTT: 1
    /// (every call) unless the traffic is heavy. See
    /// [`WindowConfig::timed_per_window`].
    #[inline]
    pub fn timed_stride(&self) -> usize {
        self.stride.load(Ordering::Relaxed)
    }

    /// How many calls a new service (just built by the layer, or cloned) leaves untimed
    /// before it times one, given that its first call is the next in a count shared by
    /// every service of the layer: 0 (time this one) for one first call in `stride`.
    ///
    /// Servers clone the service for every connection, and axum's `Router::layer` for
    /// every request, so most services make one call: were each to time its first call,
    /// every request would be timed. Counting first calls across the layer keeps the
    /// share at one in `stride` however services are cloned; a service that makes more
    /// calls then counts on its own. At `stride` 1 every call is timed and nothing is
    /// counted.
    #[inline]
    pub(crate) fn first_untimed(&self) -> usize {
        let stride = self.timed_stride();
        if stride <= 1 {
            return 0;
        }
        // On the line the admission just wrote: no extra cache miss. A load and a store,
        // not a read-modify-write: a locked instruction would first wait for every store
        // still pending (the request's futures, just built, are large), and an increment
        // lost when two services race only moves where the next timed call falls. Relaxed:
        // the count orders nothing, it only spreads the timed calls.
        let n = self.hot.first_calls.load(Ordering::Relaxed);
        self.hot
            .first_calls
            .store(n.wrapping_add(1), Ordering::Relaxed);
        (stride - n % stride) % stride
    }

    pub(crate) fn waiters(&self) -> &WaitList {
        &self.waiters
    }

    #[inline]
    pub(crate) fn count_rejection(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Windowed<Box<dyn LimitAlgorithm>>> {
        self.windowed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives one permit back (counted in `partition`, or [`NO_PARTITION`]) and wakes a
    /// waiter if it could now be admitted.
    #[inline]
    pub(crate) fn release(&self, partition: u32) {
        if partition != NO_PARTITION
            && let Some(table) = &self.partitions
        {
            table.leave(partition);
        }
        let before = self.hot.in_flight.fetch_sub(1, Ordering::SeqCst);
        // Checked here, inline: nobody waits on the fast path.
        if self.waiters.queued() > 0 && before - 1 < self.limit.load(Ordering::SeqCst) {
            self.waiters.notify(1);
        }
    }

    /// Feeds one finished request to the sampling window: every drop, and the successes
    /// that were timed (an untimed success only counts).
    #[inline]
    fn record(&self, start: u64, in_flight: usize, dropped: bool) {
        let counter = if dropped {
            &self.drops
        } else {
            &self.hot.successes
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if start != 0 || dropped {
            self.sample(start, in_flight, dropped);
        }
    }

    /// The slow part of [`record`](Self::record): a timed request or a drop goes to the
    /// sampling window.
    #[inline(never)]
    fn sample(&self, start: u64, in_flight: usize, dropped: bool) {
        let now = Instant::now();
        let rtt = start
            .checked_sub(1)
            .map(|start| Duration::from_nanos(self.nanos_at(now).saturating_sub(start)));
        let update = {
            let mut windowed = self.lock();
            if start != 0 {
                let completed = self.hot.successes.load(Ordering::Relaxed)
                    + self.drops.load(Ordering::Relaxed)
                    + self.ignored.load(Ordering::Relaxed);
                if let Some(stride) = windowed.retune(now, completed) {
                    self.stride.store(stride, Ordering::Relaxed);
                }
            }
            if self.hot.reached.load(Ordering::Relaxed) != 0 {
                self.hot.reached.store(0, Ordering::Relaxed);
                windowed.limit_reached();
            }
            let update = windowed.record(now, rtt, in_flight, dropped);
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

/// The partition of a request not counted in a partition.
pub(crate) const NO_PARTITION: u32 = u32::MAX;

/// What a request was admitted with: the in-flight count at admission (this request
/// included, saturated at `u32::MAX`) and its partition ([`NO_PARTITION`] if none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    in_flight: u32,
    partition: u32,
}

impl Admission {
    #[inline]
    pub(crate) fn new(in_flight: usize, partition: u32) -> Self {
        Self {
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
            partition,
        }
    }
}

/// The right to run one request, from [`Limiter::try_acquire`] (or made by the layer at
/// `call`). Report how the request went with one of its methods; dropping it without one
/// gives the permit back and takes no sample (a cancellation).
pub struct Permit {
    /// `None` once reported.
    limiter: Option<Arc<Limiter>>,
    /// When the request started, in nanoseconds since the limiter's origin, plus 1; 0 for
    /// a request the layer does not time. (A plain word, rather than an
    /// `Option<Instant>`: the permit is moved on every call, and whole-word fields copy
    /// without store-forwarding stalls.)
    start: u64,
    admission: Admission,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("in_flight", &self.in_flight())
            .field("start", &self.start())
            .finish()
    }
}

impl Permit {
    /// The permit of a request admitted by `limiter`, timed from `start` if given.
    #[inline]
    pub(crate) fn new(limiter: Arc<Limiter>, admission: Admission, start: Option<Instant>) -> Self {
        let start = start.map_or(0, |start| limiter.nanos_at(start) + 1);
        Self {
            limiter: Some(limiter),
            start,
            admission,
        }
    }

    /// A permit for nothing: reporting it does nothing.
    pub(crate) const fn vacant() -> Self {
        Self {
            limiter: None,
            start: 0,
            admission: Admission {
                in_flight: 0,
                partition: NO_PARTITION,
            },
        }
    }

    /// Requests in flight when this one was admitted, itself included (0 once reported).
    pub fn in_flight(&self) -> usize {
        match self.limiter {
            Some(_) => self.admission.in_flight as usize,
            None => 0,
        }
    }

    /// When the request started (its RTT is measured from here): always known for a
    /// permit from [`Limiter::try_acquire`]; `None` for a request the layer does not time
    /// (see [`WindowConfig::timed_per_window`]).
    pub fn start(&self) -> Option<Instant> {
        let limiter = self.limiter.as_ref()?;
        let nanos = self.start.checked_sub(1)?;
        Some(limiter.origin + Duration::from_nanos(nanos))
    }

    /// The request succeeded: its RTT (from [`start`](Self::start) to now) is a sample.
    pub fn success(mut self) {
        self.report(Report::Success);
    }

    /// The request was dropped: refused for overload downstream, or timed out. A loss
    /// signal: the limit comes down.
    pub fn dropped(mut self) {
        self.report(Report::Dropped);
    }

    /// The request finished in a way that says nothing about capacity (an application
    /// error): give the permit back, take no sample.
    pub fn ignore(mut self) {
        self.report(Report::Ignored);
    }

    /// Reports the outcome and gives the permit back; does nothing if already reported.
    #[inline]
    pub(crate) fn report(&mut self, report: Report) {
        let Some(limiter) = self.limiter.take() else {
            return;
        };
        let in_flight = self.admission.in_flight as usize;
        match report {
            Report::Success => limiter.record(self.start, in_flight, false),
            Report::Dropped => limiter.record(self.start, in_flight, true),
            Report::Ignored => {
                limiter.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
        limiter.release(self.admission.partition);
    }
}

/// How a request went, for [`Permit::report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    Success,
    Dropped,
    Ignored,
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        // Cancelled: no sample (Netflix's `onIgnore`).
        self.report(Report::Ignored);
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
    #[inline]
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
