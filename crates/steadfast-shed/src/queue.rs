//! [`ShedLayer`]: a bounded admission queue in front of a backpressuring service, shed by
//! controlled delay, priority and deadline.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::error::{BoxError, Overloaded};
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::codel::{Codel, saturating_add};
use crate::deadline::{DeadlineOf, NoDeadline};
use crate::error::{DeadlineExceeded, InvalidShedConfig};
use crate::priority::{Priority, PriorityOf};

const DEFAULT_TARGET: Duration = Duration::from_millis(5);
const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_CAPACITY: usize = 100;
const MAX_CAPACITY: usize = 1 << 20;
/// The longest target or interval `build` accepts.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A load shedder with a short, bounded, priority-aware queue: requests the inner service
/// cannot take at once wait a little instead of being refused, and are shed by Facebook's
/// controlled delay, adaptive LIFO, priority and deadline.
///
/// Put it in front of a service that applies backpressure: `poll_ready` is `Pending` while
/// it is full, as in [`steadfast_limit::AdaptiveConcurrencyLayer`]'s default mode or
/// tower's `ConcurrencyLimitLayer`. The shedder's own `poll_ready` is always `Ready`
/// (inner readiness errors excepted); its `call` then either forwards the request (the
/// inner service was ready and nobody was waiting), queues it, or refuses it at once.
///
/// # How a request goes
///
/// 1. Its [`Priority`] and deadline are read (see [`ShedLayerBuilder::priority`] and
///    [`ShedLayerBuilder::deadline`]). A deadline already passed, or closer than the
///    current queueing-delay estimate when a queue exists, fails it with
///    [`DeadlineExceeded`].
/// 2. If nobody is waiting and the inner service is ready, it is forwarded: the fast path,
///    one atomic load in `poll_ready`.
/// 3. Otherwise it asks to join the queue (rules below); refused, it fails at once with
///    [`Overloaded`].
/// 4. Queued, it waits for its turn: one waiter at a time, the **head**, polls its own
///    clone of the inner service for readiness and is served when it gets it; then the next
///    head is chosen. A waiter fails with [`Overloaded`] when its queue timeout passes (or
///    [`DeadlineExceeded`] when its deadline does), when it is sloughed, or when a more
///    critical request evicts it from a full queue. Dropping its response future leaves the
///    queue.
///
/// `poll_ready` polls the inner service only while nobody waits, and never keeps a
/// readiness wait it started past its `Ready`: a caller may hold the shedder without
/// calling it (tower's `ReadyCache`, `ready()` and no call), and a wait kept there would
/// take the next free capacity from the head.
///
/// # Queue discipline
///
/// Facebook's "Fail at Scale" rules, applied per priority level (a *lane*), lanes served
/// in strict priority:
///
/// - **Controlled delay.** [`Codel`] (one per lane) measures every request's queueing
///   delay as it is served or sloughed (0 on the fast path), as folly does. While the
///   minimum delay of the lane's last interval (100 ms) exceeds the target (5 ms), the lane
///   is overloaded, and a waiter that has waited more than twice the target when its turn
///   comes is sloughed ([`Overloaded`]) instead of served. A verdict whose interval ended
///   with nothing observed since is stale and sloughs nobody
///   ([`Codel::is_overloaded_at`]).
/// - **Standing queue.** A lane that has not been empty within the last interval holds a
///   standing queue. Facebook then gives new requests the short timeout M (= target)
///   instead of N (= interval); here only batch traffic gets it (see the table), because
///   on critical traffic it made the queue drain and flip back to FIFO with long
///   timeouts, which measured worse (`tests/scenarios.rs`).
/// - **Adaptive LIFO.** A lane is served oldest first, and newest first while it holds a
///   standing queue: the newest requests are the most likely to still be wanted.
/// - **Priority.** The most critical non-empty lane is served first, and a more critical
///   arrival takes the place of a less critical head (the head goes back to its lane).
///   Lower classes are shed first: a `Critical` waiter is sloughed only when no less
///   critical request has arrived (admitted or refused) within the last interval (see
///   [Limits](#limits)).
///
/// | priority | may join the queue when | queue timeout | sloughed while its lane is overloaded | queue full |
/// |---|---|---|---|---|
/// | [`CriticalPlus`](Priority::CriticalPlus) | always | `interval` | never | evicts the oldest waiter of the least critical lane below it, else a less critical head |
/// | [`Critical`](Priority::Critical) | always | `interval` | only if no less critical request arrived within the last `interval` | evicts the oldest `Sheddable`, else `SheddablePlus`, waiter, else a less critical head |
/// | [`SheddablePlus`](Priority::SheddablePlus) | joining leaves the queue at most half full (`waiting + 1 ≤ capacity / 2`) | `interval / 2`; `target / 2` in a standing lane | yes | refused |
/// | [`Sheddable`](Priority::Sheddable) | no lane is overloaded and the whole queue has been empty within the last `interval` | `interval` | yes | refused |
///
/// # Deadlines
///
/// With a deadline extractor ([`HttpDeadline`](crate::deadline::HttpDeadline), a
/// closure), a request is failed with [`DeadlineExceeded`] before any work when its
/// deadline has passed, or when a queue exists and the deadline is closer than the
/// queueing-delay estimate ([`Codel::last_min_delay`]: the smallest delay of the last
/// interval, a conservative estimate). A waiter's timer is the earlier of its queue
/// timeout and its deadline.
///
/// # Limits
///
/// - **Poll the response futures.** Only the head polls the inner service, and a waiter's
///   timer runs only while its future is polled. A response future that is created and
///   neither polled nor dropped holds up the queue when it becomes the head, until its
///   queue timeout (or deadline) passes and the next request reaches the queue (a new
///   call, or any waiter's future being polled): the queue keeps every waiter's expiry and
///   fails an overdue head then, as its own timer would have. Poll response futures
///   promptly, or drop them.
/// - **Refused arrivals shield `Critical` waiters.** A less critical request counts as
///   "arrived" for the slough exemption even when it is refused at the door, so a stream
///   of refused `Sheddable` requests keeps `Critical` waiters from being sloughed (they
///   still time out after the interval, and `CriticalPlus` arrivals still evict them).
///   Counting only admitted arrivals, or only less critical waiters queued now, sloughs
///   critical traffic that would have been served in time: at 4x with 20% critical
///   traffic (`tests/scenarios.rs`), critical goodput fell from 97.4% (adaptive limit) and
///   96.4% (static limit) to 94.1% and 92.4% (admitted arrivals) or 93.1% and 92.6%
///   (queued waiters), below the 95% target.
/// - **Cancellation scans a lane.** A waiter that leaves from the middle of its lane is
///   found by a scan of that lane, under the queue's lock: O(capacity) at worst (100 by
///   default). Wakers are called after the lock is released.
/// - **Delays are bounded.** [`target`](ShedLayerBuilder::target) and
///   [`interval`](ShedLayerBuilder::interval) are at most one hour: a queue timeout longer
///   than that is a misconfiguration, and the bound keeps instant arithmetic far from
///   overflow (which saturates anyway).
///
/// # Shared state
///
/// Every service the layer makes, and every clone of them and of the layer, shares one
/// queue and one controlled-delay state (an `Arc`): fairness and the queue bound hold
/// across connections. Build a new layer for an independent queue.
///
/// # Defaults
///
/// | setting | default | source and reason |
/// |---|---|---|
/// | [`target`](ShedLayerBuilder::target) | 5 ms | Facebook (M), folly `codel_target_delay`, Envoy |
/// | [`interval`](ShedLayerBuilder::interval) | 100 ms | Facebook (N), folly `codel_interval`, Envoy |
/// | slough threshold | 2 × target | folly |
/// | [`capacity`](ShedLayerBuilder::capacity) | 100 waiters | Netflix `LifoBlockingLimiter` backlog size |
/// | [`retry_after`](ShedLayerBuilder::retry_after) | none | set it to what a client should wait |
/// | [`priority`](ShedLayerBuilder::priority) | [`Priority::Critical`] for every request | SRE book production default |
/// | [`deadline`](ShedLayerBuilder::deadline) | [`NoDeadline`] | deadlines must come from the caller |
///
/// [`steadfast_limit::AdaptiveConcurrencyLayer`]: https://docs.rs/steadfast-limit
#[derive(Clone)]
pub struct ShedLayer<P = Priority, D = NoDeadline> {
    shared: Arc<Shared>,
    priority: P,
    deadline: D,
}

impl ShedLayer {
    /// A layer with every default (see the [table](ShedLayer#defaults)).
    pub fn new() -> Self {
        // The defaults are valid: no check to fail.
        Self::builder().into_layer()
    }

    /// A builder, starting from the defaults.
    pub const fn builder() -> ShedLayerBuilder {
        ShedLayerBuilder {
            target: DEFAULT_TARGET,
            interval: DEFAULT_INTERVAL,
            capacity: DEFAULT_CAPACITY,
            retry_after: None,
            priority: Priority::Critical,
            deadline: NoDeadline,
        }
    }
}

impl Default for ShedLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<P, D> ShedLayer<P, D> {
    /// What the shared queue has done so far, and its state now.
    pub fn stats(&self) -> ShedStats {
        self.shared.stats()
    }
}

impl<P: fmt::Debug, D: fmt::Debug> fmt::Debug for ShedLayer<P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShedLayer")
            .field("config", &self.shared.config)
            .field("priority", &self.priority)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl<S, P: Clone, D: Clone> Layer<S> for ShedLayer<P, D> {
    type Service = Shed<S, P, D>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            shared: Arc::clone(&self.shared),
            priority: self.priority.clone(),
            deadline: self.deadline.clone(),
            ready: false,
        }
    }
}

/// Builds a [`ShedLayer`]; every setting has a default (see the
/// [table](ShedLayer#defaults)).
#[derive(Debug, Clone)]
pub struct ShedLayerBuilder<P = Priority, D = NoDeadline> {
    target: Duration,
    interval: Duration,
    capacity: usize,
    retry_after: Option<Duration>,
    priority: P,
    deadline: D,
}

impl<P, D> ShedLayerBuilder<P, D> {
    /// The target queueing delay (default 5 ms, at most one hour): the controlled-delay
    /// target, the short queue timeout once a queue stands, and half the slough threshold.
    #[must_use]
    pub const fn target(mut self, target: Duration) -> Self {
        self.target = target;
        self
    }

    /// The controlled-delay interval (default 100 ms): the window of the minimum delay,
    /// how long a lane may go without draining before its queue counts as standing, and
    /// the queue timeout otherwise. At least the target, at most one hour (a queue
    /// timeout longer than that is a misconfiguration, not a queue).
    #[must_use]
    pub const fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The most requests that may wait at once (default 100, at most 2^20); beyond it,
    /// requests are refused (or evict less critical ones).
    #[must_use]
    pub const fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The retry-after hint of every [`Overloaded`] the layer returns (default none).
    #[must_use]
    pub const fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// How to read a request's priority: a [`Priority`] for all, a closure
    /// `Fn(&Req) -> Priority`, [`FromHeader`](crate::FromHeader) or
    /// [`FromExtension`](crate::FromExtension). Default: every request is
    /// [`Priority::Critical`].
    #[must_use]
    pub fn priority<P2>(self, priority: P2) -> ShedLayerBuilder<P2, D> {
        ShedLayerBuilder {
            target: self.target,
            interval: self.interval,
            capacity: self.capacity,
            retry_after: self.retry_after,
            priority,
            deadline: self.deadline,
        }
    }

    /// How to read a request's deadline: [`HttpDeadline`](crate::deadline::HttpDeadline)
    /// or a closure `Fn(&Req, Instant) -> Option<Instant>`. Default: [`NoDeadline`].
    #[must_use]
    pub fn deadline<D2>(self, deadline: D2) -> ShedLayerBuilder<P, D2> {
        ShedLayerBuilder {
            target: self.target,
            interval: self.interval,
            capacity: self.capacity,
            retry_after: self.retry_after,
            priority: self.priority,
            deadline,
        }
    }

    /// Checks the settings and builds the layer, with a fresh shared queue.
    ///
    /// # Errors
    ///
    /// [`InvalidShedConfig`] if the target is zero, the interval is shorter than the
    /// target, either is longer than one hour, or the capacity is zero or above 2^20.
    pub fn build(self) -> Result<ShedLayer<P, D>, InvalidShedConfig> {
        if self.target.is_zero() {
            return Err(InvalidShedConfig::new("target must be positive"));
        }
        if self.target > MAX_DELAY || self.interval > MAX_DELAY {
            return Err(InvalidShedConfig::new(
                "target and interval must be at most one hour",
            ));
        }
        if self.interval < self.target {
            return Err(InvalidShedConfig::new(
                "interval must be at least the target",
            ));
        }
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return Err(InvalidShedConfig::new(
                "capacity must be between 1 and 2^20",
            ));
        }
        Ok(self.into_layer())
    }

    /// The layer, the settings already checked.
    fn into_layer(self) -> ShedLayer<P, D> {
        let config = Config {
            target: self.target,
            interval: self.interval,
            capacity: self.capacity,
            retry_after: self.retry_after,
        };
        ShedLayer {
            shared: Arc::new(Shared::new(config)),
            priority: self.priority,
            deadline: self.deadline,
        }
    }
}

/// A snapshot of a [`ShedLayer`]'s shared queue: counts since it was built, and its state
/// now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShedStats {
    /// Requests forwarded at once (the inner service was ready and nobody waited).
    pub forwarded: u64,
    /// Requests that joined the queue.
    pub queued: u64,
    /// Queued requests that were served (forwarded after waiting).
    pub served: u64,
    /// Requests refused at once with `Overloaded` (queue full, or not admitted for their
    /// priority).
    pub refused: u64,
    /// Waiters sloughed by the controlled delay.
    pub sloughed: u64,
    /// Waiters whose queue timeout passed.
    pub timed_out: u64,
    /// Waiters evicted from a full queue by a more critical request.
    pub evicted: u64,
    /// Requests failed with `DeadlineExceeded` (at arrival or while waiting).
    pub deadline_exceeded: u64,
    /// Requests waiting now.
    pub waiting: usize,
    /// Whether the controlled delay considers the queue overloaded now.
    pub overloaded: bool,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    target: Duration,
    interval: Duration,
    capacity: usize,
    retry_after: Option<Duration>,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    queued: AtomicU64,
    served: AtomicU64,
    refused: AtomicU64,
    sloughed: AtomicU64,
    timed_out: AtomicU64,
    evicted: AtomicU64,
    deadline_exceeded: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Everything the services of one layer share.
struct Shared {
    config: Config,
    /// Waiters, head included (mirrors `Queue::len` for a lock-free check).
    waiting: AtomicUsize,
    /// A request went through the fast path since the last locked update: the controlled
    /// delay owes a zero-delay observation.
    drained: AtomicBool,
    queue: Mutex<Queue>,
    counters: Counters,
}

impl Shared {
    fn new(config: Config) -> Self {
        let now = Instant::now();
        Self {
            config,
            waiting: AtomicUsize::new(0),
            drained: AtomicBool::new(false),
            queue: Mutex::new(Queue {
                slots: Vec::new(),
                free: Vec::new(),
                lanes: Default::default(),
                last_empty: [now; 4],
                any_last_empty: now,
                last_arrival: [None; 4],
                len: 0,
                head: None,
                codel: std::array::from_fn(|_| Codel::new(config.target, config.interval)),
                interval: config.interval,
                wakers: Vec::new(),
            }),
            counters: Counters::default(),
        }
    }

    /// Locks the queue and brings the controlled delay up to date.
    fn lock(&self, now: Instant) -> Guard<'_> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if self.drained.load(Ordering::Relaxed) && self.drained.swap(false, Ordering::Relaxed) {
            // The whole queue was empty: every lane drained.
            for codel in &mut queue.codel {
                codel.observe(Duration::ZERO, now);
            }
        }
        Guard {
            queue,
            wake: WakeAfterUnlock {
                wakers: Vec::new(),
                shared: self,
            },
        }
    }

    fn stats(&self) -> ShedStats {
        let c = &self.counters;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut guard = self.lock(now);
        guard.queue.expire_head(now, c);
        ShedStats {
            forwarded: load(&c.forwarded),
            queued: load(&c.queued),
            served: load(&c.served),
            refused: load(&c.refused),
            sloughed: load(&c.sloughed),
            timed_out: load(&c.timed_out),
            evicted: load(&c.evicted),
            deadline_exceeded: load(&c.deadline_exceeded),
            waiting: guard.queue.len,
            overloaded: guard.queue.codel.iter().any(|c| c.is_overloaded_at(now)),
        }
    }
}

/// The locked queue; publishes the waiter count when released, and wakes the waiters the
/// queue operations chose after releasing the lock.
struct Guard<'a> {
    // Field order matters: the lock is released before the wakers are called.
    queue: MutexGuard<'a, Queue>,
    wake: WakeAfterUnlock<'a>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let shared = self.wake.shared;
        shared.waiting.store(self.queue.len, Ordering::Relaxed);
        if !self.queue.wakers.is_empty() {
            mem::swap(&mut self.wake.wakers, &mut self.queue.wakers);
        }
    }
}

/// Calls the wakers collected under the lock once it is released (a waker may run code
/// that takes the lock again), then gives the buffer back if the lock is free.
struct WakeAfterUnlock<'a> {
    wakers: Vec<Waker>,
    shared: &'a Shared,
}

impl Drop for WakeAfterUnlock<'_> {
    fn drop(&mut self) {
        if self.wakers.is_empty() {
            return;
        }
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
        if let Ok(mut queue) = self.shared.queue.try_lock()
            && queue.wakers.capacity() == 0
        {
            queue.wakers = mem::take(&mut self.wakers);
        }
    }
}

/// Why a waiter (or an arriving request) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Overloaded,
    Deadline(Option<Duration>),
}

impl Refusal {
    fn into_error(self, shared: &Shared) -> BoxError {
        match self {
            Self::Overloaded => Overloaded::from_retry_after(shared.config.retry_after).into(),
            Self::Deadline(None) => DeadlineExceeded::expired().into(),
            Self::Deadline(Some(wait)) => DeadlineExceeded::unreachable(wait).into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Waiting,
    Head,
    Shed(Refusal),
}

#[derive(Debug)]
struct Slot {
    priority: Priority,
    enqueued: Instant,
    /// When the waiter fails: the earlier of its queue timeout and its deadline. Kept here
    /// as well as in the waiter's timer, so that the queue can fail an overdue head whose
    /// future is not polled.
    expires: Instant,
    /// `expires` is the request's deadline (not its queue timeout).
    by_deadline: bool,
    waker: Option<Waker>,
    state: SlotState,
}

/// A place in the queue.
struct Admitted {
    key: usize,
    /// When the waiter fails, and whether that is its deadline.
    expires: Instant,
    by_deadline: bool,
}

#[derive(Debug)]
struct Queue {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Waiting keys per priority rank (0: `CriticalPlus`), the head excluded.
    lanes: [VecDeque<usize>; 4],
    /// When each lane was last empty.
    last_empty: [Instant; 4],
    /// When the whole queue was last empty.
    any_last_empty: Instant,
    /// When a request of each rank last asked to join the queue (admitted or not).
    last_arrival: [Option<Instant>; 4],
    /// Waiters, head included.
    len: usize,
    head: Option<usize>,
    /// One controlled-delay state per lane.
    codel: [Codel; 4],
    interval: Duration,
    /// Wakers to call once the lock is released.
    wakers: Vec<Waker>,
}

impl Queue {
    fn standing(&self, rank: usize, now: Instant) -> bool {
        !self.lanes[rank].is_empty()
            && now.saturating_duration_since(self.last_empty[rank]) > self.interval
    }

    /// Whether less critical traffic than `rank` arrived within the last interval, admitted
    /// or refused: it is there to be shed first.
    fn shields(&self, rank: usize, now: Instant) -> bool {
        self.last_arrival[rank + 1..]
            .iter()
            .flatten()
            .any(|&at| now.saturating_duration_since(at) <= self.interval)
    }

    fn any_standing(&self, now: Instant) -> bool {
        self.len > 0 && now.saturating_duration_since(self.any_last_empty) > self.interval
    }

    fn shrink(&mut self, now: Instant) {
        self.len -= 1;
        if self.len == 0 {
            self.any_last_empty = now;
        }
    }

    /// Schedules the slot's waker for when the lock is released.
    fn wake(wakers: &mut Vec<Waker>, slot: &mut Slot) {
        if let Some(waker) = slot.waker.take() {
            wakers.push(waker);
        }
    }

    /// Fails a waiter that is already out of its lane and of the head role (sloughed,
    /// evicted, expired): it learns why when its future looks.
    fn shed(&mut self, key: usize, refusal: Refusal, now: Instant) {
        let slot = &mut self.slots[key];
        slot.state = SlotState::Shed(refusal);
        Self::wake(&mut self.wakers, slot);
        self.shrink(now);
    }

    /// Fails a waiter whose timer has passed, as its own timer would (counted once: the
    /// future sees `Shed` and does not count it again).
    fn expire(&mut self, key: usize, now: Instant, counters: &Counters) {
        let refusal = self.expiry(key, counters);
        let was_head = self.head == Some(key);
        if was_head {
            self.head = None;
        } else {
            self.unlink(key, now);
        }
        self.shed(key, refusal, now);
        if was_head {
            self.choose_next(now, counters);
        }
    }

    /// Why an overdue waiter fails, counted.
    fn expiry(&self, key: usize, counters: &Counters) -> Refusal {
        if self.slots[key].by_deadline {
            bump(&counters.deadline_exceeded);
            Refusal::Deadline(None)
        } else {
            bump(&counters.timed_out);
            Refusal::Overloaded
        }
    }

    /// Fails the head while its timer has passed, and the next head chosen. The head's
    /// own timer does this too, but only while its future is polled: a response future
    /// created and never polled must not hold up every request behind it.
    fn expire_head(&mut self, now: Instant, counters: &Counters) {
        while let Some(head) = self.head
            && self.slots[head].expires <= now
        {
            self.expire(head, now, counters);
        }
    }

    /// Asks to join the queue.
    fn enqueue(
        &mut self,
        priority: Priority,
        deadline: Option<Instant>,
        now: Instant,
        config: &Config,
        counters: &Counters,
    ) -> Option<Admitted> {
        self.expire_head(now, counters);
        let rank = priority.rank();
        // Admitted or not: see "Limits" in `ShedLayer`'s docs for why refused arrivals count.
        self.last_arrival[rank] = Some(now);
        let full = self.len >= config.capacity;
        let admitted = match priority {
            Priority::Sheddable => {
                !(full
                    || self.codel.iter().any(|c| c.is_overloaded_at(now))
                    || self.any_standing(now))
            }
            // Joining leaves the queue at most half full.
            Priority::SheddablePlus => self.len < config.capacity / 2,
            Priority::Critical | Priority::CriticalPlus => !full || self.evict(rank, now, counters),
        };
        if !admitted {
            return None;
        }
        let long = config.interval;
        let short = config.target;
        let timeout = match priority {
            // Facebook's short timeout for a standing queue hurts critical traffic: a lane
            // that drains under its short timeouts flips back to FIFO and long timeouts
            // (measured: accepted p99 192 ms instead of 155 ms at 4x, tests/scenarios.rs).
            // Stale critical waiters are sloughed instead. A sheddable request is never
            // admitted to a standing queue.
            Priority::CriticalPlus | Priority::Critical | Priority::Sheddable => long,
            Priority::SheddablePlus if self.standing(rank, now) => short / 2,
            Priority::SheddablePlus => long / 2,
        };
        let queue_deadline = saturating_add(now, timeout);
        let (expires, by_deadline) = match deadline {
            Some(d) if d <= queue_deadline => (d, true),
            _ => (queue_deadline, false),
        };
        if self.lanes[rank].is_empty() {
            self.last_empty[rank] = now;
        }
        if self.len == 0 {
            self.any_last_empty = now;
        }
        let slot = Slot {
            priority,
            enqueued: now,
            expires,
            by_deadline,
            waker: None,
            state: SlotState::Waiting,
        };
        let key = match self.free.pop() {
            Some(key) => {
                self.slots[key] = slot;
                key
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.lanes[rank].push_back(key);
        self.len += 1;
        match self.head {
            None => self.choose_next(now, counters),
            // A more critical arrival takes the place of a less critical head.
            Some(head) if self.slots[head].priority < priority => {
                self.demote(head, now);
                self.choose_next(now, counters);
            }
            Some(_) => {}
        }
        Some(Admitted {
            key,
            expires,
            by_deadline,
        })
    }

    /// Puts the head back in its lane, where it would have been chosen from: first in a
    /// FIFO lane, last in a LIFO one.
    fn demote(&mut self, head: usize, now: Instant) {
        let rank = self.slots[head].priority.rank();
        let lifo = self.standing(rank, now);
        let lane = &mut self.lanes[rank];
        if lifo {
            lane.push_back(head);
        } else {
            lane.push_front(head);
        }
        let slot = &mut self.slots[head];
        slot.state = SlotState::Waiting;
        Self::wake(&mut self.wakers, slot);
        self.head = None;
    }

    /// Makes room for a request of `rank` by evicting the oldest waiter of the least
    /// critical lane below it, else the head if it is less critical.
    fn evict(&mut self, rank: usize, now: Instant, counters: &Counters) -> bool {
        for lane in (rank + 1..4).rev() {
            if let Some(key) = self.lanes[lane].pop_front() {
                if self.lanes[lane].is_empty() {
                    self.last_empty[lane] = now;
                }
                self.shed(key, Refusal::Overloaded, now);
                bump(&counters.evicted);
                return true;
            }
        }
        // The lanes below hold nobody: the head, which is not in a lane, may be less
        // critical (a `Sheddable` head in a queue of one). The caller chooses the next.
        if let Some(head) = self.head
            && self.slots[head].priority.rank() > rank
        {
            self.head = None;
            self.shed(head, Refusal::Overloaded, now);
            bump(&counters.evicted);
            return true;
        }
        false
    }

    /// Picks the next head: the most critical lane, oldest first (newest first once the
    /// lane holds a standing queue); sloughs waiters the controlled delay rejects.
    fn choose_next(&mut self, now: Instant, counters: &Counters) {
        self.head = None;
        while let Some(rank) = (0..4).find(|&r| !self.lanes[r].is_empty()) {
            let lifo = self.standing(rank, now);
            let lane = &mut self.lanes[rank];
            let Some(key) = (if lifo {
                lane.pop_back()
            } else {
                lane.pop_front()
            }) else {
                break;
            };
            if lane.is_empty() {
                self.last_empty[rank] = now;
            }
            if self.slots[key].expires <= now {
                // Overdue, its future not polled since: fail it as its timer would.
                let refusal = self.expiry(key, counters);
                self.shed(key, refusal, now);
                continue;
            }
            let priority = self.slots[key].priority;
            let exempt = priority == Priority::CriticalPlus
                || priority == Priority::Critical && self.shields(rank, now);
            let waited = now.saturating_duration_since(self.slots[key].enqueued);
            if !exempt && self.codel[rank].should_slough_at(waited, now) {
                // As in folly, a sloughed request's delay is observed too.
                self.codel[rank].observe(waited, now);
                self.shed(key, Refusal::Overloaded, now);
                bump(&counters.sloughed);
                continue;
            }
            let slot = &mut self.slots[key];
            slot.state = SlotState::Head;
            Self::wake(&mut self.wakers, slot);
            self.head = Some(key);
            return;
        }
    }

    /// The head got the inner service's readiness: it leaves the queue to be served.
    fn served(&mut self, key: usize, now: Instant, counters: &Counters) {
        let slot = &self.slots[key];
        let (waited, rank) = (
            now.saturating_duration_since(slot.enqueued),
            slot.priority.rank(),
        );
        // Served whatever happened to it since its future last looked (demoted, evicted,
        // sloughed: possible only when another thread got the lock in between): it holds
        // the inner service's readiness, and refusing it now would waste that.
        if self.remove(key, now, counters) != SlotState::Free {
            self.codel[rank].observe(waited, now);
            bump(&counters.served);
        }
    }

    /// A waiter leaves without being served (timeout, error, or its future was dropped).
    /// Returns its state before.
    fn leave(&mut self, key: usize, now: Instant, counters: &Counters) -> SlotState {
        self.remove(key, now, counters)
    }

    /// Takes a waiting key out of its lane (the caller deals with the head role).
    ///
    /// The lane is scanned for it: O(waiters of that lane) under the lock, at most the
    /// capacity (100 by default). An index per slot would make it O(1); at these sizes
    /// the scan is a few hundred nanoseconds, so it stays simple.
    fn unlink(&mut self, key: usize, now: Instant) {
        let rank = self.slots[key].priority.rank();
        let lane = &mut self.lanes[rank];
        if let Some(at) = lane.iter().position(|&k| k == key) {
            lane.remove(at);
        }
        if lane.is_empty() {
            self.last_empty[rank] = now;
        }
    }

    /// Takes `key` out of the queue, frees its slot, and chooses the next head if it was
    /// the head. Returns its state before (`Free`: it was already given back).
    fn remove(&mut self, key: usize, now: Instant, counters: &Counters) -> SlotState {
        let state = self.slots[key].state;
        match state {
            SlotState::Waiting => {
                self.unlink(key, now);
                self.shrink(now);
            }
            SlotState::Head => {
                self.head = None;
                self.shrink(now);
            }
            // Already out of the queue (and counted out of `len`).
            SlotState::Shed(_) => {}
            // Already given back: never free a slot twice.
            SlotState::Free => return state,
        }
        self.release(key);
        if state == SlotState::Head {
            self.choose_next(now, counters);
        }
        state
    }

    fn release(&mut self, key: usize) {
        let slot = &mut self.slots[key];
        slot.state = SlotState::Free;
        slot.waker = None;
        self.free.push(key);
    }

    /// The waiter's state, registering its waker. Fails it first if its timer has passed,
    /// and fails an overdue head (see [`expire_head`](Self::expire_head)).
    fn status(
        &mut self,
        key: usize,
        waker: &Waker,
        now: Instant,
        counters: &Counters,
    ) -> SlotState {
        self.expire_head(now, counters);
        if matches!(self.slots[key].state, SlotState::Waiting) && self.slots[key].expires <= now {
            self.expire(key, now, counters);
        }
        let slot = &mut self.slots[key];
        match &slot.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => slot.waker = Some(waker.clone()),
        }
        slot.state
    }
}

/// A waiter's place in the queue; leaving it (dropping the ticket) takes it out.
struct Ticket {
    shared: Arc<Shared>,
    key: usize,
    live: bool,
}

impl Ticket {
    fn status(&self, waker: &Waker) -> SlotState {
        let now = Instant::now();
        let shared = &*self.shared;
        shared
            .lock(now)
            .queue
            .status(self.key, waker, now, &shared.counters)
    }

    fn served(&mut self) {
        let now = Instant::now();
        self.live = false;
        let shared = &*self.shared;
        shared
            .lock(now)
            .queue
            .served(self.key, now, &shared.counters);
    }

    /// Leaves the queue; returns the state the waiter had (`None`: it had left already).
    fn leave(&mut self) -> Option<SlotState> {
        if mem::take(&mut self.live) {
            let now = Instant::now();
            let shared = &*self.shared;
            let state = shared
                .lock(now)
                .queue
                .leave(self.key, now, &shared.counters);
            Some(state)
        } else {
            None
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("key", &self.key)
            .field("live", &self.live)
            .finish()
    }
}

/// The service made by [`ShedLayer`]; see there for what it does.
///
/// `poll_ready` is always `Ready` unless the inner service's `poll_ready` fails (that
/// error is passed on). `call` needs a `poll_ready` before it, as usual. The inner service
/// must be `Clone`: a queued request waits with a clone of its own.
///
/// # Clone
///
/// A clone shares the layer's queue and clones the inner service, without the
/// readiness this one may hold.
pub struct Shed<S, P = Priority, D = NoDeadline> {
    inner: S,
    shared: Arc<Shared>,
    priority: P,
    deadline: D,
    /// The inner service is ready: the next call is forwarded.
    ready: bool,
}

impl<S, P, D> Shed<S, P, D> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// What the shared queue has done so far, and its state now.
    pub fn stats(&self) -> ShedStats {
        self.shared.stats()
    }
}

impl<S: Clone, P: Clone, D: Clone> Clone for Shed<S, P, D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            priority: self.priority.clone(),
            deadline: self.deadline.clone(),
            ready: false,
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, D: fmt::Debug> fmt::Debug for Shed<S, P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shed")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("priority", &self.priority)
            .field("deadline", &self.deadline)
            .field("ready", &self.ready)
            .finish()
    }
}

impl<S: Clone, P, D> Shed<S, P, D> {
    fn refuse<Req>(&mut self, refusal: Refusal) -> ShedFuture<S, Req>
    where
        S: Service<Req>,
    {
        let counters = &self.shared.counters;
        bump(match refusal {
            Refusal::Overloaded => &counters.refused,
            Refusal::Deadline(_) => &counters.deadline_exceeded,
        });
        tracing::trace!(target: "steadfast_shed", ?refusal, "request refused");
        ShedFuture {
            state: State::Refused {
                error: Some(refusal.into_error(&self.shared)),
            },
        }
    }
}

impl<S, P, D, Req> Service<Req> for Shed<S, P, D>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: PriorityOf<Req>,
    D: DeadlineOf<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ShedFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // With requests waiting, a new one queues behind them: do not compete with the
        // head for the inner service's capacity.
        if !self.ready && self.shared.waiting.load(Ordering::Relaxed) == 0 {
            match self.inner.poll_ready(cx) {
                Poll::Ready(Ok(())) => self.ready = true,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                // Give up the readiness wait the inner service may have started (a
                // semaphore acquire, a place in a limiter's wait list) before returning
                // `Ready`: the caller may hold this service without calling it (tower's
                // `ReadyCache`, or `ready()` and no call), and a kept wait would take the
                // next free capacity from the queue's head. A queued request polls its
                // own clone when it is the head.
                Poll::Pending => self.inner = self.inner.clone(),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let now = Instant::now();
        let deadline = self.deadline.deadline_of(&request, now);
        if deadline.is_some_and(|d| d <= now) {
            if mem::take(&mut self.ready) {
                // Give the readiness back: dropping a ready service releases what it holds.
                self.inner = self.inner.clone();
            }
            return self.refuse(Refusal::Deadline(None));
        }
        if mem::take(&mut self.ready) {
            let shared = &*self.shared;
            if !shared.drained.load(Ordering::Relaxed) {
                shared.drained.store(true, Ordering::Relaxed);
            }
            bump(&shared.counters.forwarded);
            return ShedFuture {
                state: State::Called {
                    future: self.inner.call(request),
                },
            };
        }
        let priority = self.priority.priority_of(&request);
        let shared = Arc::clone(&self.shared);
        let admitted = {
            let mut guard = shared.lock(now);
            let queue = &mut *guard.queue;
            let estimate = queue.codel[priority.rank()].last_min_delay();
            if let Some(d) = deadline
                && queue.len > 0
                && d.saturating_duration_since(now) < estimate
            {
                drop(guard);
                return self.refuse(Refusal::Deadline(Some(estimate)));
            }
            queue.enqueue(priority, deadline, now, &shared.config, &shared.counters)
        };
        let Some(admitted) = admitted else {
            return self.refuse(Refusal::Overloaded);
        };
        bump(&shared.counters.queued);
        ShedFuture {
            state: State::Queued {
                sleep: tokio::time::sleep_until(admitted.expires),
                waiter: Some(Waiter {
                    svc: self.inner.clone(),
                    request,
                    ticket: Ticket {
                        shared,
                        key: admitted.key,
                        live: true,
                    },
                    by_deadline: admitted.by_deadline,
                    polled: false,
                }),
            },
        }
    }
}

/// A queued request: what it needs to be served when its turn comes.
struct Waiter<S, Req> {
    svc: S,
    request: Req,
    ticket: Ticket,
    /// The timer is the request's deadline (not its queue timeout).
    by_deadline: bool,
    /// `svc` may have started waiting for readiness (a semaphore acquire, a place in a
    /// limiter's wait list).
    polled: bool,
}

pin_project! {
    /// Response future of [`Shed`]: the inner call, a wait in the queue, or an immediate
    /// refusal.
    ///
    /// Fails with [`Overloaded`] (refused, timed out in the queue, sloughed or evicted),
    /// [`DeadlineExceeded`] (the deadline passed or cannot be met), or the inner service's
    /// readiness or call error. Dropping it while queued leaves the queue (the next waiter
    /// is woken if it was the head).
    pub struct ShedFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        Called {
            #[pin]
            future: S::Future,
        },
        Queued {
            #[pin]
            sleep: Sleep,
            waiter: Option<Waiter<S, Req>>,
        },
        Refused {
            error: Option<BoxError>,
        },
    }
}

impl<S, Req> Future for ShedFuture<S, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Refused { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| "ShedFuture polled after completion".into());
                    return Poll::Ready(Err(error));
                }
                StateProj::Queued { mut sleep, waiter } => {
                    let Some(w) = waiter.as_mut() else {
                        return Poll::Ready(Err("ShedFuture polled after completion".into()));
                    };
                    match w.ticket.status(cx.waker()) {
                        SlotState::Shed(refusal) => {
                            let error = refusal.into_error(&w.ticket.shared);
                            *waiter = None;
                            return Poll::Ready(Err(error));
                        }
                        SlotState::Head => match w.svc.poll_ready(cx) {
                            Poll::Ready(Ok(())) => {
                                let Some(mut w) = waiter.take() else {
                                    unreachable!("checked above")
                                };
                                w.ticket.served();
                                let future = w.svc.call(w.request);
                                this.state.set(State::Called { future });
                                continue;
                            }
                            Poll::Ready(Err(error)) => {
                                *waiter = None;
                                return Poll::Ready(Err(error.into()));
                            }
                            Poll::Pending => w.polled = true,
                        },
                        SlotState::Waiting | SlotState::Free => {
                            if mem::take(&mut w.polled) {
                                // No longer the head: give up the readiness wait, so that
                                // the capacity goes to the new head.
                                w.svc = w.svc.clone();
                            }
                        }
                    }
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let Some(mut w) = waiter.take() else {
                        unreachable!("checked above")
                    };
                    let left = w.ticket.leave();
                    let shared = &*w.ticket.shared;
                    let refusal = match left {
                        // Failed by the queue since `status` looked: counted there.
                        Some(SlotState::Shed(refusal)) => refusal,
                        _ if w.by_deadline => {
                            bump(&shared.counters.deadline_exceeded);
                            Refusal::Deadline(None)
                        }
                        _ => {
                            bump(&shared.counters.timed_out);
                            Refusal::Overloaded
                        }
                    };
                    return Poll::Ready(Err(refusal.into_error(shared)));
                }
            }
        }
    }
}

impl<S, Req> fmt::Debug for ShedFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Queued { .. } => "queued",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ShedFuture").field("state", &state).finish()
    }
}
