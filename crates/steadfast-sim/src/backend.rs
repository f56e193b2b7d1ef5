//! The modelled backend: workers behind an unbounded FIFO queue, as a tower service.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast_core::error::BoxError;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::request::{BackendError, SimRequest, SimResponse};
use crate::rng::{Rng, stream};
use crate::scenario::BackendConfig;
use crate::stats::{BackendBucket, Clock, Gauge, GaugeBucket};

/// The simulated backend: a tower [`Service<SimRequest>`](Service) that the stack under
/// test wraps.
///
/// It is always ready: every request joins one unbounded FIFO queue and is served by the
/// next free worker, for a service time drawn from the scenario's distribution (stretched
/// by the knee, if any). The response future resolves when the worker finishes; dropping it
/// does not stop the work unless the scenario [skips cancelled
/// work](BackendConfig::skip_cancelled), so abandoned requests still cost capacity.
///
/// Clones share the same workers and queue. A `Backend` only exists inside a run: the
/// simulation creates it, hands it to the closure that builds the stack, and drives it; once
/// the run is over every call fails with [`BackendError::ShutDown`].
///
/// Timing: workers chain their jobs on exact (nanosecond) times, so capacity is exactly
/// `workers / mean service time`, but answers are delivered on tokio's 1 ms timer tick, so an
/// observed latency is its exact value rounded up to the millisecond.
#[derive(Clone)]
pub struct Backend {
    shared: Arc<Mutex<State>>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Backend")
            .field("workers", &st.workers)
            .field("busy", &st.busy)
            .field("queued", &st.queue.len())
            .field("shut_down", &st.shut_down)
            .finish()
    }
}

impl Backend {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requests in the backend: queued plus in service.
    pub fn in_flight(&self) -> usize {
        let st = self.lock();
        st.queue.len() + st.busy
    }

    /// Requests waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Requests in service.
    pub fn busy(&self) -> usize {
        self.lock().busy
    }

    /// The current number of workers.
    pub fn workers(&self) -> usize {
        self.lock().workers
    }

    /// Changes the number of workers now (the scenario's capacity schedule calls this).
    /// Requests already in service finish; queued ones start as workers free up.
    pub fn set_workers(&self, workers: usize) {
        let now = Instant::now();
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shut_down {
            return;
        }
        st.workers = workers;
        if let Some(stats) = st.stats.as_mut() {
            stats.workers.set(&st.clock, now, workers as u64);
        }
        if st.start_jobs(now, now) {
            st.wake();
        }
        st.update_gauges(now);
    }

    /// Ends the run: fails everything queued or in service with [`BackendError::ShutDown`]
    /// and returns the statistics.
    pub(crate) fn shut_down(&self) -> Option<BackendStats> {
        let mut st = self.lock();
        st.shut_down = true;
        st.queue.clear();
        st.running.clear();
        st.waker = None;
        let clock = st.clock;
        st.stats.take().map(|s| s.finish(&clock))
    }
}

impl Service<SimRequest> for Backend {
    type Response = SimResponse;
    type Error = BoxError;
    type Future = BackendFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> Self::Future {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let mut st = self.lock();
        if !st.shut_down {
            st.queue.push_back(Job {
                req,
                enqueued: now,
                tx,
            });
            if st.start_jobs(now, now) {
                st.wake();
            }
            st.update_gauges(now);
        }
        // When shut down, `tx` is dropped here and the future fails with `ShutDown`.
        BackendFuture { rx }
    }
}

/// The response future of [`Backend`]: resolves when a worker has served the request.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct BackendFuture {
    rx: oneshot::Receiver<Result<SimResponse, BackendError>>,
}

impl Future for BackendFuture {
    type Output = Result<SimResponse, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| match r {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(BackendError::ShutDown.into()),
        })
    }
}

/// A queued request.
struct Job {
    req: SimRequest,
    enqueued: Instant,
    tx: oneshot::Sender<Result<SimResponse, BackendError>>,
}

/// A request in service, ordered by exact completion time (then by start order).
struct Running {
    done: Instant,
    seq: u64,
    started: Instant,
    service: Duration,
    concurrency: usize,
    job: Job,
}

impl PartialEq for Running {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Running {}

impl PartialOrd for Running {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Running {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.done, self.seq).cmp(&(other.done, other.seq))
    }
}

/// The backend's time-weighted levels and per-bucket counters.
pub(crate) struct Stats {
    queue: Gauge,
    busy: Gauge,
    in_flight: Gauge,
    workers: Gauge,
    buckets: Vec<BackendBucket>,
}

/// The backend's measurements at the end of a run, one entry per bucket.
pub(crate) struct BackendStats {
    pub(crate) queue: Vec<GaugeBucket>,
    pub(crate) busy: Vec<GaugeBucket>,
    pub(crate) in_flight: Vec<GaugeBucket>,
    pub(crate) workers: Vec<GaugeBucket>,
    pub(crate) buckets: Vec<BackendBucket>,
}

impl Stats {
    fn finish(self, clock: &Clock) -> BackendStats {
        BackendStats {
            queue: self.queue.finish(clock),
            busy: self.busy.finish(clock),
            in_flight: self.in_flight.finish(clock),
            workers: self.workers.finish(clock),
            buckets: self.buckets,
        }
    }
}

struct State {
    config: BackendConfig,
    seed: u64,
    clock: Clock,
    workers: usize,
    busy: usize,
    queue: VecDeque<Job>,
    running: BinaryHeap<Reverse<Running>>,
    seq: u64,
    waker: Option<Waker>,
    shut_down: bool,
    stats: Option<Stats>,
}

impl State {
    fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    fn bucket(&mut self, now: Instant) -> Option<&mut BackendBucket> {
        let i = self.clock.index(now)?;
        self.stats.as_mut()?.buckets.get_mut(i)
    }

    fn update_gauges(&mut self, now: Instant) {
        let (queue, busy) = (self.queue.len() as u64, self.busy as u64);
        if let Some(stats) = self.stats.as_mut() {
            stats.queue.set(&self.clock, now, queue);
            stats.busy.set(&self.clock, now, busy);
            stats.in_flight.set(&self.clock, now, queue + busy);
        }
    }

    /// Starts queued jobs while workers are free; `free_at` is the exact instant the freed
    /// worker became available (a job never starts before it was queued). Returns whether
    /// any job started.
    fn start_jobs(&mut self, free_at: Instant, now: Instant) -> bool {
        let mut started = false;
        while self.busy < self.workers {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            let start = free_at.max(job.enqueued);
            if self.config.skip_cancelled && job.tx.is_closed() {
                if let Some(b) = self.bucket(now) {
                    b.skipped += 1;
                }
                continue;
            }
            if self.config.drop_expired && job.req.deadline <= start {
                if let Some(b) = self.bucket(now) {
                    b.skipped += 1;
                }
                // The caller may be gone already; nothing to do then.
                let _ = job.tx.send(Err(BackendError::Expired));
                continue;
            }
            self.busy += 1;
            let mut rng = Rng::stream(
                self.seed,
                &[stream::SERVICE, job.req.id, u64::from(job.req.attempt)],
            );
            let base = self.config.service_time.sample(&mut rng);
            let service = match self.config.knee {
                Some(knee) => {
                    let secs = base.as_secs_f64() * knee.factor(self.busy);
                    if secs.is_finite() {
                        Duration::from_secs_f64(secs.min(1.0e9))
                    } else {
                        Duration::from_secs(1_000_000_000)
                    }
                }
                None => base,
            };
            self.seq += 1;
            self.running.push(Reverse(Running {
                done: start + service,
                seq: self.seq,
                started: start,
                service,
                concurrency: self.busy,
                job,
            }));
            if let Some(b) = self.bucket(now) {
                b.started += 1;
            }
            started = true;
        }
        started
    }

    /// Completes every job whose exact end is at or before `horizon`, starting queued jobs
    /// on the freed workers.
    fn complete_until(&mut self, horizon: Instant, now: Instant) {
        while self
            .running
            .peek()
            .is_some_and(|Reverse(r)| r.done <= horizon)
        {
            let Some(Reverse(r)) = self.running.pop() else {
                break;
            };
            self.busy -= 1;
            let late = r.done > r.job.req.deadline;
            if let Some(b) = self.bucket(now) {
                b.completed += 1;
                b.busy_time += r.service;
                if late {
                    b.wasted += 1;
                    b.wasted_work += r.service;
                }
            }
            let resp = SimResponse {
                id: r.job.req.id,
                attempt: r.job.req.attempt,
                queued: r.started.saturating_duration_since(r.job.enqueued),
                service: r.service,
                concurrency: r.concurrency,
            };
            // The caller may have given up; the work was done anyway.
            let _ = r.job.tx.send(Ok(resp));
            self.start_jobs(r.done, now);
        }
        self.update_gauges(now);
    }
}

/// Drives the backend's timers; owned and polled by the simulation loop.
pub(crate) struct Engine {
    shared: Arc<Mutex<State>>,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Engine {
    /// Completes due jobs. Returns whether anything happened; registers for a wake-up at
    /// the next completion (or when a call starts a job) otherwise.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        loop {
            let next = {
                let mut st = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
                if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    st.waker = Some(cx.waker().clone());
                }
                st.running.peek().map(|Reverse(r)| r.done)
            };
            let Some(next) = next else {
                return progressed;
            };
            if self.armed != Some(next) {
                self.timer.as_mut().reset(next);
                self.armed = Some(next);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return progressed;
            }
            let now = Instant::now();
            let mut st = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            st.complete_until(now.max(next), now);
            progressed = true;
        }
    }
}

/// A backend for one run, and the engine that drives it.
pub(crate) fn new(config: &BackendConfig, seed: u64, clock: Clock) -> (Backend, Engine) {
    let workers = *config.workers.initial();
    let stats = Stats {
        queue: Gauge::new(&clock, 0),
        busy: Gauge::new(&clock, 0),
        in_flight: Gauge::new(&clock, 0),
        workers: Gauge::new(&clock, workers as u64),
        buckets: vec![BackendBucket::default(); clock.n],
    };
    let shared = Arc::new(Mutex::new(State {
        config: config.clone(),
        seed,
        clock,
        workers,
        busy: 0,
        queue: VecDeque::new(),
        running: BinaryHeap::new(),
        seq: 0,
        waker: None,
        shut_down: false,
        stats: Some(stats),
    }));
    let engine = Engine {
        shared: Arc::clone(&shared),
        timer: Box::pin(tokio::time::sleep_until(clock.end)),
        armed: None,
    };
    (Backend { shared }, engine)
}
