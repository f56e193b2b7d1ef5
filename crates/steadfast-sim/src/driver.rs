//! The simulation loop: clients, the dispatcher in front of the stack, timers, measurement.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use steadfast_core::error::BoxError;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::error::Elapsed;
use tokio::time::{Instant, Sleep, Timeout};
use tower_service::Service;

use crate::backend::{self, Backend, Engine};
use crate::report::Report;
use crate::request::{SimRequest, SimResponse};
use crate::rng::{Rng, stream};
use crate::scenario::{Arrivals, ClientConfig, Load, OnTimeout, Scenario, ScenarioError};
use crate::stats::{self, ClientBucket, Clock, Gauge, RawBucket};

/// Decides whether an error from the stack is an overload rejection.
pub type RejectionClassifier = fn(&(dyn Error + Send + Sync + 'static)) -> bool;

/// The default [`RejectionClassifier`]: the error, or any error in its
/// [`source`](Error::source) chain, is a [`steadfast_core::error::Overloaded`] or tower's
/// [`tower::load_shed::error::Overloaded`].
pub fn is_overload(err: &(dyn Error + Send + Sync + 'static)) -> bool {
    let mut cur: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<steadfast_core::error::Overloaded>()
            || e.is::<tower::load_shed::error::Overloaded>()
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A run of a [`Scenario`] against a stack, with an optional limit probe and a rejection
/// classifier.
///
/// # How a run goes
///
/// The clients ([`Load`]) send attempts into a FIFO in front of the stack. A dispatcher
/// takes them in order: it drives the stack's `poll_ready` (a stack that applies
/// backpressure holds the line, and waiting attempts can time out there) and then `call`s it.
/// Each response future runs until it answers or, with [`OnTimeout::Abandon`], until the
/// attempt's deadline, when it is dropped. The outcome is counted as
///
/// - **goodput**: `Ok` within the deadline; **late**: `Ok` after it (only with
///   [`OnTimeout::Wait`]); both are **throughput**;
/// - **rejected**: an error the classifier calls an overload (by default [`is_overload`]);
/// - **timeout**: the client gave up at the deadline;
/// - **error**: any other error, including one from the stack's `poll_ready`.
///
/// Rejections, timeouts and (if enabled) errors are retried per the [`RetryPolicy`](crate::RetryPolicy).
/// Everything runs in the calling task on tokio's paused clock: the run takes simulated
/// time, not real time, and ends at [`Scenario::duration`]; attempts still unresolved then
/// are counted as [`unfinished`](Report::unfinished).
///
/// # Determinism
///
/// On a `current_thread` runtime with paused time, the same scenario (seed included) and a
/// deterministic stack give an identical [`Report`], bit for bit. Arrivals and request
/// classes depend only on the seed, and each attempt's base service time only on the seed,
/// its request id and its attempt number, so different stacks see the same traffic.
pub struct Simulation {
    scenario: Scenario,
    probe: Option<Box<dyn Fn() -> Option<f64>>>,
    classifier: RejectionClassifier,
}

impl fmt::Debug for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("scenario", &self.scenario)
            .field("probe", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// A run of `scenario` with no limit probe and the default classifier.
    pub fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            probe: None,
            classifier: is_overload,
        }
    }

    /// Samples `probe` every [`Scenario::sample_interval`] and reports its values as the
    /// stack's limit (mean, min, max, mode, last). `None` means "no value now".
    #[must_use]
    pub fn limit_probe(mut self, probe: impl Fn() -> Option<f64> + 'static) -> Self {
        self.probe = Some(Box::new(probe));
        self
    }

    /// Replaces the rule that tells rejections from other errors.
    #[must_use]
    pub fn rejection_classifier(mut self, classifier: RejectionClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Runs the scenario against the stack that `make_stack` builds around the backend.
    ///
    /// Must be called on a `current_thread` tokio runtime with paused time, such as
    /// `#[tokio::test(flavor = "current_thread", start_paused = true)]`; otherwise it fails
    /// with [`ScenarioError::NotCurrentThread`] or [`ScenarioError::TimeNotPaused`]. The
    /// simulated clock advances by [`Scenario::duration`].
    pub async fn run<F, S>(self, make_stack: F) -> Result<Report, ScenarioError>
    where
        F: FnOnce(Backend) -> S,
        S: Service<SimRequest, Response = SimResponse>,
        S::Error: Into<BoxError>,
    {
        self.scenario.validate()?;
        check_runtime()?;
        let scenario = self.scenario;
        let clock = Clock::new(Instant::now(), scenario.duration, scenario.bucket);
        let (backend, engine) = backend::new(&scenario.backend, scenario.seed, clock);
        let svc = make_stack(backend.clone());
        let mut driver = Driver::new(
            &scenario,
            clock,
            svc,
            backend,
            engine,
            self.probe,
            self.classifier,
        );
        poll_fn(|cx| driver.poll(cx)).await;
        Ok(driver.finish(&scenario))
    }

    /// Builds a `current_thread` runtime with paused time, runs the scenario on it and
    /// returns the report. For use outside async code (doctests, binaries).
    pub fn run_blocking<F, S>(self, make_stack: F) -> Result<Report, ScenarioError>
    where
        F: FnOnce(Backend) -> S,
        S: Service<SimRequest, Response = SimResponse>,
        S::Error: Into<BoxError>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|e| ScenarioError::Runtime(e.to_string()))?;
        rt.block_on(self.run(make_stack))
    }
}

impl Scenario {
    /// Runs this scenario against the stack `make_stack` builds (see [`Simulation::run`]),
    /// with no limit probe and the default rejection classifier.
    pub async fn run<F, S>(&self, make_stack: F) -> Result<Report, ScenarioError>
    where
        F: FnOnce(Backend) -> S,
        S: Service<SimRequest, Response = SimResponse>,
        S::Error: Into<BoxError>,
    {
        Simulation::new(self.clone()).run(make_stack).await
    }

    /// Runs this scenario on a runtime of its own (see [`Simulation::run_blocking`]).
    pub fn run_blocking<F, S>(&self, make_stack: F) -> Result<Report, ScenarioError>
    where
        F: FnOnce(Backend) -> S,
        S: Service<SimRequest, Response = SimResponse>,
        S::Error: Into<BoxError>,
    {
        Simulation::new(self.clone()).run_blocking(make_stack)
    }
}

/// Fails unless we are on a `current_thread` runtime whose clock is paused.
fn check_runtime() -> Result<(), ScenarioError> {
    let handle = Handle::try_current().map_err(|_| ScenarioError::NoRuntime)?;
    if matches!(handle.runtime_flavor(), RuntimeFlavor::MultiThread) {
        return Err(ScenarioError::NotCurrentThread);
    }
    // A paused clock does not move by itself.
    let before = Instant::now();
    std::thread::sleep(Duration::from_micros(50));
    if Instant::now() != before {
        return Err(ScenarioError::TimeNotPaused);
    }
    Ok(())
}

pin_project! {
    /// A response future in flight, tagged with its attempt key and bounded by the deadline.
    struct InFlight<F> {
        key: u64,
        #[pin]
        fut: Timeout<F>,
    }
}

impl<F: Future> Future for InFlight<F> {
    type Output = (u64, Result<F::Output, Elapsed>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.fut.poll(cx).map(|r| (*this.key, r))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptState {
    /// Sent by the client, waiting for the stack to be ready.
    Waiting,
    /// Handed to the stack.
    InFlight,
}

struct Attempt {
    req: SimRequest,
    state: AttemptState,
}

enum Outcome {
    Ok,
    Rejected,
    Timeout,
    Error,
}

enum EventKind {
    End,
    Arrival,
    ClientNext(u32),
    Retry(SimRequest),
    Deadline(u64),
    Sample,
    Capacity(usize),
}

struct Event {
    at: Instant,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Driver<S: Service<SimRequest>> {
    clock: Clock,
    seed: u64,
    client: ClientConfig,
    load: Load,
    class_cdf: Vec<f64>,
    sample_interval: Duration,

    svc: S,
    backend: Backend,
    engine: Engine,
    probe: Option<Box<dyn Fn() -> Option<f64>>>,
    classifier: RejectionClassifier,

    events: BinaryHeap<Reverse<Event>>,
    seq: u64,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,

    attempts: HashMap<u64, Attempt>,
    next_key: u64,
    waiting: VecDeque<u64>,
    waiting_live: u64,
    inflight: FuturesUnordered<InFlight<S::Future>>,

    next_id: u64,
    arrival_rng: Rng,
    think_rngs: Vec<Rng>,

    buckets: Vec<ClientBucket>,
    stack_in_flight: Gauge,
    waiting_gauge: Gauge,
}

impl<S> Driver<S>
where
    S: Service<SimRequest, Response = SimResponse>,
    S::Error: Into<BoxError>,
{
    fn new(
        scenario: &Scenario,
        clock: Clock,
        svc: S,
        backend: Backend,
        engine: Engine,
        probe: Option<Box<dyn Fn() -> Option<f64>>>,
        classifier: RejectionClassifier,
    ) -> Self {
        let mut acc = 0.0;
        let class_cdf = scenario
            .client
            .classes
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        let think_rngs = match &scenario.load {
            Load::Closed { clients, .. } => (0..*clients as u64)
                .map(|c| Rng::stream(scenario.seed, &[stream::THINK, c]))
                .collect(),
            Load::Open { .. } => Vec::new(),
        };
        let mut driver = Self {
            clock,
            seed: scenario.seed,
            client: scenario.client.clone(),
            load: scenario.load.clone(),
            class_cdf,
            sample_interval: scenario.sample_interval,
            svc,
            backend,
            engine,
            probe,
            classifier,
            events: BinaryHeap::new(),
            seq: 0,
            timer: Box::pin(tokio::time::sleep_until(clock.end)),
            armed: None,
            attempts: HashMap::new(),
            next_key: 0,
            waiting: VecDeque::new(),
            waiting_live: 0,
            inflight: FuturesUnordered::new(),
            next_id: 0,
            arrival_rng: Rng::stream(scenario.seed, &[stream::ARRIVALS]),
            think_rngs,
            buckets: vec![ClientBucket::new(scenario.client.classes.len()); clock.n],
            stack_in_flight: Gauge::new(&clock, 0),
            waiting_gauge: Gauge::new(&clock, 0),
        };
        let t0 = clock.t0;
        driver.schedule(clock.end, EventKind::End);
        for (at, workers) in scenario.backend.workers.steps() {
            driver.schedule(t0 + *at, EventKind::Capacity(*workers));
        }
        if driver.probe.is_some() {
            driver.schedule(t0, EventKind::Sample);
        }
        match &scenario.load {
            Load::Open { .. } => {
                if let Some(at) = driver.next_arrival(Duration::ZERO) {
                    driver.schedule(t0 + at, EventKind::Arrival);
                }
            }
            Load::Closed { clients, think } => {
                for c in 0..*clients {
                    let c = u32::try_from(c).unwrap_or(u32::MAX);
                    let first = think.sample(&mut driver.think_rngs[c as usize]);
                    driver.schedule(t0 + first, EventKind::ClientNext(c));
                }
            }
        }
        driver
    }

    fn schedule(&mut self, at: Instant, kind: EventKind) {
        // Nothing at or after the end matters; `End` itself is the exception.
        if at >= self.clock.end && !matches!(kind, EventKind::End) {
            return;
        }
        self.seq += 1;
        self.events.push(Reverse(Event {
            at,
            seq: self.seq,
            kind,
        }));
    }

    /// The offset of the first open-loop arrival strictly after offset `from`.
    fn next_arrival(&mut self, from: Duration) -> Option<Duration> {
        let Load::Open { rate, arrivals } = &self.load else {
            return None;
        };
        let horizon = (self.clock.end - self.clock.t0).as_secs_f64();
        let mut t = from;
        loop {
            let r = *rate.at(t);
            let next_change = rate.next_change_after(t);
            if r > 0.0 {
                let gap = match arrivals {
                    Arrivals::Periodic => 1.0 / r,
                    // Poisson, and any arrival process added later.
                    _ => self.arrival_rng.exp1() / r,
                };
                let at = t.as_secs_f64() + gap;
                if at >= horizon {
                    return None;
                }
                let at = t + Duration::from_secs_f64(gap);
                // A rate change restarts the draw at the boundary (exact for Poisson).
                if next_change.is_none_or(|c| at < c) {
                    return Some(at);
                }
            }
            t = next_change?;
        }
    }

    fn bucket(&mut self, now: Instant) -> Option<&mut ClientBucket> {
        let i = self.clock.index(now)?;
        self.buckets.get_mut(i)
    }

    fn draw_class(&self, id: u64) -> u8 {
        if self.class_cdf.len() <= 1 {
            return 0;
        }
        let total = self.class_cdf.last().copied().unwrap_or(1.0);
        let u = Rng::stream(self.seed, &[stream::CLASS, id]).next_f64() * total;
        let i = self.class_cdf.partition_point(|&c| c <= u);
        u8::try_from(i.min(self.class_cdf.len() - 1)).unwrap_or(u8::MAX)
    }

    fn new_request(&mut self, client: Option<u32>, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let req = SimRequest {
            id,
            attempt: 0,
            class: self.draw_class(id),
            client,
            arrival: now,
            sent: now,
            deadline: now + self.client.timeout,
        };
        self.issue(req, now);
    }

    /// The client sends attempt `req` now.
    fn issue(&mut self, mut req: SimRequest, now: Instant) {
        req.sent = now;
        req.deadline = now + self.client.timeout;
        let (first, class) = (req.attempt == 0, usize::from(req.class));
        if let Some(b) = self.bucket(now) {
            b.attempts += 1;
            if first {
                b.requests += 1;
            } else {
                b.retries += 1;
            }
            if let Some(c) = b.classes.get_mut(class) {
                c.attempts += 1;
                if first {
                    c.requests += 1;
                }
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        let deadline = req.deadline;
        self.attempts.insert(
            key,
            Attempt {
                req,
                state: AttemptState::Waiting,
            },
        );
        self.waiting.push_back(key);
        self.waiting_live += 1;
        self.waiting_gauge.set(&self.clock, now, self.waiting_live);
        if self.client.on_timeout == OnTimeout::Abandon {
            self.schedule(deadline, EventKind::Deadline(key));
        }
    }

    fn handle(&mut self, kind: EventKind, at: Instant, now: Instant) {
        match kind {
            EventKind::End => {}
            EventKind::Arrival => {
                self.new_request(None, now);
                let offset = at - self.clock.t0;
                if let Some(next) = self.next_arrival(offset) {
                    self.schedule(self.clock.t0 + next, EventKind::Arrival);
                }
            }
            EventKind::ClientNext(c) => self.new_request(Some(c), now),
            EventKind::Retry(mut req) => {
                req.attempt += 1;
                self.issue(req, now);
            }
            EventKind::Deadline(key) => {
                // Only an attempt still waiting for the stack times out here; one in flight
                // times out through its own timer.
                let waiting = self
                    .attempts
                    .get(&key)
                    .is_some_and(|a| a.state == AttemptState::Waiting);
                if let Some(a) = waiting.then(|| self.attempts.remove(&key)).flatten() {
                    self.waiting_live -= 1;
                    self.waiting_gauge.set(&self.clock, now, self.waiting_live);
                    self.resolve(a.req, Outcome::Timeout, now);
                }
            }
            EventKind::Sample => {
                let value = self.probe.as_ref().and_then(|p| p());
                if let (Some(v), Some(b)) = (value, self.bucket(now)) {
                    b.limit.sample(v);
                }
                self.schedule(at + self.sample_interval, EventKind::Sample);
            }
            EventKind::Capacity(workers) => self.backend.set_workers(workers),
        }
    }

    fn resolve(&mut self, req: SimRequest, outcome: Outcome, now: Instant) {
        let latency = now.saturating_duration_since(req.sent);
        let class = usize::from(req.class);
        let retry = self.client.retry.clone();
        let retry_allowed = req.attempt < retry.max_retries;
        let on_time = now <= req.deadline;
        let (done, retry_this) = match outcome {
            Outcome::Ok => (true, false),
            Outcome::Rejected => (false, retry.on_rejection),
            Outcome::Timeout => (false, retry.on_timeout),
            Outcome::Error => (false, retry.on_error),
        };
        if let Some(b) = self.bucket(now) {
            match outcome {
                Outcome::Ok => {
                    b.ok += 1;
                    stats::record(&mut b.latency, latency);
                    if on_time {
                        b.goodput += 1;
                        if let Some(c) = b.classes.get_mut(class) {
                            c.goodput += 1;
                        }
                    } else {
                        b.late += 1;
                    }
                }
                Outcome::Rejected => {
                    b.rejected += 1;
                    stats::record(&mut b.reject_latency, latency);
                    if let Some(c) = b.classes.get_mut(class) {
                        c.rejected += 1;
                    }
                }
                Outcome::Timeout => {
                    b.timeouts += 1;
                    if let Some(c) = b.classes.get_mut(class) {
                        c.timeouts += 1;
                    }
                }
                Outcome::Error => b.errors += 1,
            }
        }
        if !done && retry_this && retry_allowed {
            let delay = if retry.jitter > 0.0 {
                let u = Rng::stream(self.seed, &[stream::RETRY, req.id, u64::from(req.attempt)])
                    .next_f64();
                retry.delay.mul_f64(1.0 + retry.jitter * (2.0 * u - 1.0))
            } else {
                retry.delay
            };
            self.schedule(now + delay, EventKind::Retry(req));
            return;
        }
        // The logical request is over: its closed-loop client thinks, then sends the next.
        if let (Some(c), Load::Closed { think, .. }) = (req.client, &self.load) {
            let mut pause = think.sample(&mut self.think_rngs[c as usize]);
            if pause.is_zero() && now == req.sent {
                pause = Duration::from_millis(1);
            }
            self.schedule(now + pause, EventKind::ClientNext(c));
        }
    }

    /// Fires due timed events. Returns whether any fired.
    fn poll_events(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(Reverse(top)) = self.events.peek() else {
            return false;
        };
        let at = top.at;
        if self.armed != Some(at) {
            self.timer.as_mut().reset(at);
            self.armed = Some(at);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let now = Instant::now();
        let horizon = now.max(at);
        while self.events.peek().is_some_and(|Reverse(e)| e.at <= horizon) {
            if let Some(Reverse(ev)) = self.events.pop() {
                self.handle(ev.kind, ev.at, now);
            }
        }
        true
    }

    /// Hands waiting attempts to the stack while it is ready. Returns whether any moved.
    fn dispatch(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        loop {
            while let Some(&key) = self.waiting.front() {
                if self
                    .attempts
                    .get(&key)
                    .is_some_and(|a| a.state == AttemptState::Waiting)
                {
                    break;
                }
                self.waiting.pop_front();
            }
            let Some(&key) = self.waiting.front() else {
                return progressed;
            };
            match self.svc.poll_ready(cx) {
                Poll::Pending => return progressed,
                Poll::Ready(ready) => {
                    progressed = true;
                    self.waiting.pop_front();
                    self.waiting_live -= 1;
                    let now = Instant::now();
                    self.waiting_gauge.set(&self.clock, now, self.waiting_live);
                    match ready {
                        Ok(()) => {
                            let Some(a) = self.attempts.get_mut(&key) else {
                                continue;
                            };
                            a.state = AttemptState::InFlight;
                            let req = a.req.clone();
                            let deadline = match self.client.on_timeout {
                                OnTimeout::Abandon => req.deadline,
                                // Waiting clients never give up within the run.
                                _ => self.clock.end + Duration::from_secs(1),
                            };
                            let fut = self.svc.call(req);
                            self.inflight.push(InFlight {
                                key,
                                fut: tokio::time::timeout_at(deadline, fut),
                            });
                            self.stack_in_flight
                                .set(&self.clock, now, self.inflight.len() as u64);
                        }
                        Err(_) => {
                            if let Some(a) = self.attempts.remove(&key) {
                                self.resolve(a.req, Outcome::Error, now);
                            }
                        }
                    }
                }
            }
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if Instant::now() >= self.clock.end {
                return Poll::Ready(());
            }
            let mut progressed = self.engine.poll(cx);
            while let Poll::Ready(Some((key, result))) = self.inflight.poll_next_unpin(cx) {
                progressed = true;
                let now = Instant::now();
                self.stack_in_flight
                    .set(&self.clock, now, self.inflight.len() as u64);
                let outcome = match result {
                    Ok(Ok(_)) => Outcome::Ok,
                    Ok(Err(e)) => {
                        let e: BoxError = e.into();
                        if (self.classifier)(&*e) {
                            Outcome::Rejected
                        } else {
                            Outcome::Error
                        }
                    }
                    Err(_elapsed) => Outcome::Timeout,
                };
                if let Some(a) = self.attempts.remove(&key) {
                    self.resolve(a.req, outcome, now);
                }
            }
            progressed |= self.poll_events(cx);
            progressed |= self.dispatch(cx);
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    fn finish(mut self, scenario: &Scenario) -> Report {
        let unfinished = self.waiting_live + self.inflight.len() as u64;
        // Cancel everything still in flight before the backend goes away.
        self.inflight = FuturesUnordered::new();
        let clock = self.clock;
        let backend = self.backend.shut_down();
        let stack = self.stack_in_flight.finish(&clock);
        let waiting = self.waiting_gauge.finish(&clock);
        let mut backend = backend.map(|b| {
            (
                b.buckets.into_iter(),
                b.in_flight.into_iter(),
                b.queue.into_iter(),
                b.busy.into_iter(),
                b.workers.into_iter(),
            )
        });
        let raws = self
            .buckets
            .into_iter()
            .zip(stack)
            .zip(waiting)
            .enumerate()
            .map(|(i, ((client, stack_in_flight), waiting))| {
                let (start, end) = clock.bounds(i);
                let mut raw = RawBucket {
                    start,
                    end,
                    client,
                    backend: Default::default(),
                    stack_in_flight,
                    waiting,
                    backend_in_flight: Default::default(),
                    queue: Default::default(),
                    busy: Default::default(),
                    workers: Default::default(),
                };
                if let Some((b, f, q, u, w)) = backend.as_mut() {
                    raw.backend = b.next().unwrap_or_default();
                    raw.backend_in_flight = f.next().unwrap_or_default();
                    raw.queue = q.next().unwrap_or_default();
                    raw.busy = u.next().unwrap_or_default();
                    raw.workers = w.next().unwrap_or_default();
                }
                raw
            })
            .collect();
        Report::new(scenario, raws, unfinished)
    }
}
