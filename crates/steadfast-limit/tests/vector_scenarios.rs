//! Vector's twelve adaptive-concurrency scenarios (`tests/data/adaptive-concurrency/*.yaml`
//! in `vectordotdev/vector`), ported to `steadfast-sim` and run against our
//! [`Vector`](steadfast_limit::algorithm::Vector) algorithm and against our default,
//! Gradient2.
//!
//! # The model, and what differs from Vector's harness
//!
//! Vector's harness runs a whole topology on paused tokio time: a source that emits
//! `requests` events (one request each), every `interval` seconds or as fast as the sink
//! takes them; a sink whose concurrency limit applies **backpressure**; a 1 s tower
//! timeout; retries of every retriable error; and a test service (the "link") that answers
//! after `delay · (1 + jitter·Exp1 + S(in_flight) + S(rate))`, or, above a concurrency or
//! rate cutoff, **defers** (answers an error after the base delay: back pressure) or
//! **drops** (never answers: the timeout fires). Here:
//!
//! - the source is open-loop periodic arrivals (`interval`), or for `interval = 0` all
//!   `requests` arriving in the first 10 ms, queued in front of the layer in
//!   [`Mode::Backpressure`]; clients never give up ([`OnTimeout::Wait`]);
//! - the link is [`Link`] below: `steadfast-sim`'s unlimited backend (a pure delay with
//!   Vector's [`Knee`] and [`Distribution::Jittered`] delay) behind a cutoff that defers
//!   (an `Overloaded` error after the base delay) or drops (a future that never
//!   resolves), with Vector's own statistics (time-weighted in-flight level, requests
//!   started in the last second, RTTs of successes);
//! - the 1 s timeout is the layer's [`timeout`](steadfast_limit::AdaptiveConcurrencyLayerBuilder::timeout)
//!   (a drop for the algorithm, as Vector's `Elapsed` is back pressure);
//! - **retries** (deferred and timed-out requests) are the simulated clients', 1 s after
//!   the failure, without limit. Vector's retry layer sits *inside* its concurrency
//!   limit, so a deferred request keeps its permit during the backoff; ours gives it back.
//!   This is the main reason the defer and drop scenarios differ (see each test);
//! - the run is measured, as Vector's, from the first request to the `requests`-th
//!   success; the controller's limit is sampled every 1 ms (Vector records it at each
//!   update) and its in-flight count is the requests inside the layer
//!   (`Summary::stack_in_flight`, 10 ms buckets); Vector's `averaged_rtt` (the window
//!   means) is not checked apart from `observed_rtt` (every success), whose envelopes are
//!   the same or wider in every file.
//!
//! What cannot be modelled exactly, and shows in some envelopes (each test says where):
//! the **retry placement** above; **exact time**: an answer due at the same millisecond
//! as the next request is processed first here, where Vector's runtime sometimes starts
//! the next request first, so periodic scenarios overlap less; and Vector's **runtime
//! overhead**, which makes its measured rates a little lower than the link allows.
//! Vector's `defer` is modelled as it is (an error after the base delay); its `drop` as a
//! future that never resolves, cut by the layer's timeout.
//!
//! Envelopes are Vector's own ranges, copied as they are in its YAML files; "stats" are
//! the link's, "controller" the layer's. Each test checks every envelope for our Vector
//! algorithm, and prints (`--nocapture`) the measured values of both algorithms. Where
//! our default (Gradient2: 1 s windows of at least 10 requests, initial limit 20) does
//! not fit Vector's envelopes, the test says why and pins what it does instead.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast_core::error::{BoxError, Overloaded};
use steadfast_limit::algorithm::{Aimd, Gradient2, LimitAlgorithm, Vector};
use steadfast_limit::{AdaptiveConcurrencyLayer, Mode, WindowConfig};
use steadfast_sim::{
    Backend, BackendConfig, Distribution, Knee, Load, OnTimeout, RetryPolicy, Scenario, Schedule,
    SimRequest, SimResponse, Simulation,
};
use tokio::time::Instant;
use tower::{Layer, Service};

/// What the link does with a request over its cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Answer an error after the base delay (Vector's default action).
    Defer,
    /// Never answer.
    Drop,
}

/// One of Vector's scenarios: its `params`.
#[derive(Debug, Clone)]
struct Params {
    name: &'static str,
    requests: usize,
    /// Seconds between requests; 0: as fast as the layer takes them.
    interval: f64,
    delay: Duration,
    jitter: f64,
    knee: Option<Knee>,
    /// Defer or drop a request that finds more than this many in flight (itself included).
    concurrency_cutoff: Option<(usize, Action)>,
    /// Defer a request when more than this many started in the last second.
    rate_cutoff: Option<(usize, Action)>,
    /// Vector's `concurrency: N` (a fixed limit) instead of `adaptive`.
    fixed: Option<usize>,
    /// The simulated run's length: long enough for every request to succeed.
    secs: u64,
}

impl Params {
    fn new(name: &'static str, requests: usize, delay_ms: u64) -> Self {
        Self {
            name,
            requests,
            interval: 0.0,
            delay: Duration::from_millis(delay_ms),
            jitter: 0.0,
            knee: None,
            concurrency_cutoff: None,
            rate_cutoff: None,
            fixed: None,
            secs: 20,
        }
    }
}

/// A time-weighted level, as Vector's `LevelTimeHistogram` / `TimeHistogram`.
#[derive(Debug)]
struct Level {
    value: u64,
    since: Instant,
    area: f64,
    time_at: BTreeMap<u64, f64>,
}

impl Level {
    fn new(now: Instant) -> Self {
        Self {
            value: 0,
            since: now,
            area: 0.0,
            time_at: BTreeMap::new(),
        }
    }

    fn set(&mut self, now: Instant, value: u64) {
        let dt = now.saturating_duration_since(self.since).as_secs_f64();
        self.area += self.value as f64 * dt;
        *self.time_at.entry(self.value).or_default() += dt;
        self.since = now;
        self.value = value;
    }

    /// (mean, max, mode) from `start` to the last change.
    fn summary(&self, start: Instant) -> (f64, f64, f64) {
        let total = self.since.saturating_duration_since(start).as_secs_f64();
        let mut mode = (0, -1.0);
        let mut max = 0;
        for (&v, &t) in &self.time_at {
            if t > mode.1 {
                mode = (v, t);
            }
            // A level held for no time at all (a dropped request counted and uncounted
            // at once) is not a level Vector's histogram records.
            if t > 0.0 {
                max = max.max(v);
            }
        }
        (self.area / total.max(1e-9), max as f64, mode.0 as f64)
    }
}

/// The link's statistics, as Vector's test service keeps them, until the last success.
#[derive(Debug)]
struct LinkStats {
    start: Instant,
    todo: usize,
    completed: usize,
    done_at: Option<Instant>,
    in_flight: Level,
    rate: Level,
    requests: VecDeque<Instant>,
    rtt_sum: f64,
    rtt_count: u64,
    rtt_min: f64,
    rtt_max: f64,
}

impl LinkStats {
    fn new(todo: usize) -> Self {
        let now = Instant::now();
        Self {
            start: now,
            todo,
            completed: 0,
            done_at: None,
            in_flight: Level::new(now),
            rate: Level::new(now),
            requests: VecDeque::new(),
            rtt_sum: 0.0,
            rtt_count: 0,
            rtt_min: f64::INFINITY,
            rtt_max: 0.0,
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .requests
            .front()
            .is_some_and(|&t| t + Duration::from_secs(1) <= now)
        {
            self.requests.pop_front();
        }
    }

    /// A request arrives: returns (in flight, requests in the last second), both with it.
    fn start_request(&mut self, now: Instant) -> (usize, usize) {
        if self.requests.is_empty() && self.completed == 0 && self.in_flight.value == 0 {
            // Vector's histograms start with the first request.
            self.start = now;
            self.in_flight.since = now;
            self.rate.since = now;
        }
        self.prune(now);
        self.requests.push_back(now);
        let (level, rate) = (self.in_flight.value + 1, self.requests.len());
        if self.done_at.is_none() {
            self.rate.set(now, rate as u64);
            self.in_flight.set(now, level);
        }
        (level as usize, rate)
    }

    fn end_request(&mut self, now: Instant, rtt: Option<Duration>) {
        self.prune(now);
        if self.done_at.is_some() {
            return;
        }
        self.rate.set(now, self.requests.len() as u64);
        self.in_flight
            .set(now, self.in_flight.value.saturating_sub(1));
        if let Some(rtt) = rtt {
            let rtt = rtt.as_secs_f64();
            self.rtt_sum += rtt;
            self.rtt_count += 1;
            self.rtt_min = self.rtt_min.min(rtt);
            self.rtt_max = self.rtt_max.max(rtt);
            self.completed += 1;
            if self.completed >= self.todo {
                self.done_at = Some(now);
            }
        }
    }
}

type Shared = Arc<Mutex<LinkStats>>;

fn lock(stats: &Shared) -> std::sync::MutexGuard<'_, LinkStats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Vector's test service: the simulated backend behind a concurrency or rate cutoff.
struct Link {
    backend: Backend,
    stats: Shared,
    params: Params,
}

/// Ends a request in the link's statistics when its future ends, answered or cancelled.
struct EndGuard {
    stats: Shared,
    start: Instant,
    ok: bool,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        let rtt = self.ok.then(|| now - self.start);
        lock(&self.stats).end_request(now, rtt);
    }
}

type LinkFuture = Pin<Box<dyn Future<Output = Result<SimResponse, BoxError>>>>;

impl Service<SimRequest> for Link {
    type Response = SimResponse;
    type Error = BoxError;
    type Future = LinkFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> LinkFuture {
        let now = Instant::now();
        let (level, rate) = lock(&self.stats).start_request(now);
        let over = |cutoff: Option<(usize, Action)>, value: usize| {
            cutoff.and_then(|(limit, action)| (value > limit).then_some(action))
        };
        let action = over(self.params.concurrency_cutoff, level)
            .or_else(|| over(self.params.rate_cutoff, rate));
        let guard = EndGuard {
            stats: Arc::clone(&self.stats),
            start: now,
            ok: false,
        };
        match action {
            None => {
                let fut = self.backend.call(req);
                Box::pin(async move {
                    // Move the whole guard in (not only the field written).
                    let mut guard = guard;
                    let response = fut.await;
                    guard.ok = response.is_ok();
                    response
                })
            }
            Some(Action::Defer) => {
                let delay = self.params.delay;
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    drop(guard);
                    Err(Overloaded::new().into())
                })
            }
            Some(Action::Drop) => {
                drop(guard);
                Box::pin(std::future::pending())
            }
        }
    }
}

/// The algorithms compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algo {
    /// Our port of Vector's ARC on its one-RTT windows.
    Vector,
    /// Our default: Gradient2 on Netflix's 1 s windows.
    Default,
}

/// What one run measured, named as in Vector's YAML files.
#[derive(Debug, Default)]
struct Measured {
    values: BTreeMap<&'static str, f64>,
}

impl Measured {
    fn get(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(f64::NAN)
    }

    /// The envelopes `value` falls outside of, with the value.
    fn violations(&self, envelopes: &[(&'static str, f64, f64)]) -> Vec<String> {
        envelopes
            .iter()
            .filter_map(|&(name, lo, hi)| {
                let v = self.get(name);
                // Vector's bounds are written to three decimals; 0.05 s is 0.0499999... here.
                let inside = v >= lo - 1e-9 && v <= hi + 1e-9;
                (!inside).then(|| format!("{name} = {v:.3} not in [{lo}, {hi}]"))
            })
            .collect()
    }
}

fn algorithm(algo: Algo, fixed: Option<usize>) -> (Box<dyn LimitAlgorithm>, WindowConfig) {
    if let Some(n) = fixed {
        // Vector's `concurrency: N`: a limit that never moves.
        let fixed = Aimd::new().initial_limit(n).min_limit(n).max_limit(n);
        return (Box::new(fixed), WindowConfig::new());
    }
    match algo {
        Algo::Vector => (Box::new(Vector::new()), Vector::window_config()),
        Algo::Default => (Box::new(Gradient2::new()), WindowConfig::new()),
    }
}

const BUCKET: Duration = Duration::from_millis(10);

/// With `interval = 0`, every request arrives within the first 10 ms.
const BURST: f64 = 0.010;

async fn run(params: &Params, algo: Algo) -> Measured {
    let arrivals_end = if params.interval > 0.0 {
        (params.requests as f64 + 0.5) * params.interval
    } else {
        BURST
    };
    let rate = if params.interval > 0.0 {
        1.0 / params.interval
    } else {
        (params.requests as f64 + 0.5) / BURST
    };
    let schedule = Schedule::constant(rate).then_at(Duration::from_secs_f64(arrivals_end), 0.0);
    let service_time = if params.jitter > 0.0 {
        Distribution::Jittered {
            base: params.delay,
            jitter: params.jitter,
        }
    } else {
        Distribution::Constant(params.delay)
    };
    let mut backend = BackendConfig::unlimited(service_time);
    if let Some(knee) = params.knee {
        backend = backend.with_knee(knee);
    }
    let retry = RetryPolicy {
        max_retries: u32::MAX,
        delay: Duration::from_secs(1),
        jitter: 0.0,
        on_rejection: true,
        on_timeout: false,
        on_error: true,
    };
    let scenario = Scenario::new(
        params.name,
        backend,
        Load::Open {
            rate: schedule,
            arrivals: steadfast_sim::Arrivals::Periodic,
        },
    )
    .with_duration(Duration::from_secs(params.secs))
    .with_bucket(BUCKET)
    .with_sample_interval(Duration::from_millis(1))
    .with_timeout(Duration::from_secs(3600))
    .with_on_timeout(OnTimeout::Wait)
    .with_retry(retry)
    .with_seed(1);

    let (algorithm, window) = algorithm(algo, params.fixed);
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(algorithm)
        .window(window)
        .mode(Mode::Backpressure)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("a valid configuration");
    let limiter = Arc::clone(layer.limiter());
    let stats: Shared = Arc::new(Mutex::new(LinkStats::new(params.requests)));
    let link_stats = Arc::clone(&stats);
    let link_params = params.clone();
    let t0 = Instant::now();
    let report = Simulation::new(scenario)
        .limit_probe(move || Some(limiter.limit() as f64))
        .run(move |backend| {
            layer.layer(Link {
                backend,
                stats: link_stats,
                params: link_params,
            })
        })
        .await
        .expect("the scenario runs");

    let stats = lock(&stats);
    let mut m = Measured::default();
    let Some(done) = stats.done_at else {
        m.values.insert("completed", stats.completed as f64);
        return m;
    };
    let elapsed = done - stats.start;
    m.values.insert("seconds", elapsed.as_secs_f64());
    let (mean, max, mode) = stats.in_flight.summary(stats.start);
    m.values.insert("stats.in_flight.mean", mean);
    m.values.insert("stats.in_flight.max", max);
    m.values.insert("stats.in_flight.mode", mode);
    let (mean, max, _) = stats.rate.summary(stats.start);
    m.values.insert("stats.rate.mean", mean);
    m.values.insert("stats.rate.max", max);
    m.values.insert("rtt.min", stats.rtt_min);
    m.values.insert("rtt.max", stats.rtt_max);
    m.values
        .insert("rtt.mean", stats.rtt_sum / stats.rtt_count as f64);
    // The controller's side, over the buckets from the first request to the last success.
    let bucket = BUCKET.as_nanos() as u64;
    let first = (stats.start - t0).as_nanos() as u64 / bucket * bucket;
    let end = (done - t0).as_nanos() as u64;
    let window = report.window(
        Duration::from_nanos(first),
        Duration::from_nanos(end.div_ceil(bucket) * bucket),
    );
    if let Some(limit) = &window.limit {
        m.values.insert("limit.mean", limit.mean);
        m.values.insert("limit.min", limit.min);
        m.values.insert("limit.max", limit.max);
        m.values.insert("limit.mode", limit.mode);
    }
    m.values
        .insert("controller.in_flight.mean", window.stack_in_flight.mean);
    m.values.insert(
        "controller.in_flight.max",
        window.stack_in_flight.max as f64,
    );
    m.values.insert(
        "controller.in_flight.mode",
        window.stack_in_flight.mode as f64,
    );
    m
}

/// Runs `params` with both algorithms, prints the measures, and returns them.
async fn both(params: &Params) -> (Measured, Measured) {
    let vector = run(params, Algo::Vector).await;
    let default = run(params, Algo::Default).await;
    for (name, m) in [("vector", &vector), ("default (Gradient2)", &default)] {
        let line: Vec<String> = m
            .values
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        println!("{} / {name}: {}", params.name, line.join(", "));
    }
    (vector, default)
}

fn assert_within(who: &str, params: &Params, m: &Measured, envelopes: &[(&'static str, f64, f64)]) {
    let violations = m.violations(envelopes);
    assert!(
        violations.is_empty(),
        "{} / {who}: {}",
        params.name,
        violations.join("; ")
    );
}

/// Checks Vector's `envelopes`, except those named in `instead`, which replace them (each
/// test's doc says why).
fn check(
    who: &str,
    params: &Params,
    m: &Measured,
    envelopes: &[(&'static str, f64, f64)],
    instead: &[(&'static str, f64, f64)],
) {
    let mut all: Vec<_> = envelopes
        .iter()
        .filter(|(name, ..)| !instead.iter().any(|(n, ..)| n == name))
        .copied()
        .collect();
    all.extend_from_slice(instead);
    assert_within(who, params, m, &all);
}

fn knee(start: usize, linear: f64, exponent: f64) -> Knee {
    Knee {
        start,
        linear,
        exponent,
    }
}

// === The twelve scenarios ===

/// constant-link: 500 requests, 100 ms, as fast as the limit allows. Vector's limit climbs
/// by one per RTT: about 31 after 500 requests.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn constant_link() {
    let params = Params {
        secs: 10,
        ..Params::new("constant-link", 500, 100)
    };
    let (vector, default) = both(&params).await;
    assert_within(
        "vector",
        &params,
        &vector,
        &[
            ("stats.in_flight.max", 30.0, 31.0),
            ("stats.in_flight.mean", 15.0, 16.0),
            ("controller.in_flight.max", 30.0, 31.0),
            ("controller.in_flight.mean", 15.0, 16.0),
            ("limit.max", 22.0, 32.0),
            ("limit.mean", 16.0, 18.0),
            ("rtt.min", 0.100, 0.102),
            ("rtt.max", 0.100, 0.102),
            ("rtt.mean", 0.100, 0.102),
        ],
    );
    // Gradient2 starts at 20 and grows by at most 0.2·sqrt(L) per 1 s window: the 500
    // requests take 2.5 s, so it stays at about 20 the whole run.
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 20.0, 21.0),
            ("limit.mean", 20.0, 21.0),
            ("rtt.mean", 0.100, 0.102),
        ],
    );
}

/// medium-send: a request every 25 ms on a 100 ms link: about 4 in flight.
///
/// Exact time: a request every 25 ms on a 100 ms link holds exactly 4 in flight; Vector's
/// runtime sometimes starts the next request before the one due at the same tick has
/// finished, hence its mean of 4.0-4.5 (ours 3.97) and a peak of 8 with a limit of 9
/// (ours 7 and 8). Our default never reaches its initial limit of 20 here, so it never
/// moves (app-limited: Gradient2 only moves when at least half the limit is in use).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn medium_send() {
    let params = Params {
        interval: 0.025,
        ..Params::new("medium-send", 500, 100)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 8.0, 8.0),
        ("stats.in_flight.mode", 4.0, 5.0),
        ("stats.in_flight.mean", 4.0, 4.5),
        ("controller.in_flight.max", 8.0, 8.0),
        ("controller.in_flight.mode", 4.0, 5.0),
        ("controller.in_flight.mean", 4.0, 4.5),
        ("limit.max", 9.0, 9.0),
        ("rtt.min", 0.100, 0.102),
        ("rtt.max", 0.100, 0.102),
    ];
    check(
        "vector",
        &params,
        &vector,
        &envelopes,
        &[
            ("stats.in_flight.max", 7.0, 7.0),
            ("stats.in_flight.mean", 3.97, 3.98),
            ("controller.in_flight.max", 7.0, 7.0),
            ("controller.in_flight.mean", 3.97, 3.98),
            ("limit.max", 8.0, 8.0),
        ],
    );
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 4.0, 4.0),
            ("limit.min", 20.0, 20.0),
            ("limit.max", 20.0, 20.0),
        ],
    );
}

/// slow-send-1: a request every 100 ms on a 50 ms link: never two in flight.
///
/// Every envelope holds for Vector. Our default stays at its initial 20 (app-limited).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn slow_send_1() {
    let params = Params {
        interval: 0.100,
        secs: 15,
        ..Params::new("slow-send-1", 100, 50)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 1.0, 1.0),
        ("stats.in_flight.mode", 1.0, 1.0),
        ("stats.in_flight.mean", 0.5, 0.55),
        ("controller.in_flight.max", 1.0, 1.0),
        ("controller.in_flight.mode", 1.0, 1.0),
        ("controller.in_flight.mean", 0.5, 0.55),
        ("limit.mode", 1.0, 2.0),
        ("limit.mean", 1.0, 2.0),
        ("rtt.min", 0.050, 0.052),
        ("rtt.mean", 0.050, 0.052),
    ];
    check("vector", &params, &vector, &envelopes, &[]);
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 1.0, 1.0),
            ("limit.min", 20.0, 20.0),
            ("limit.max", 20.0, 20.0),
        ],
    );
}

/// slow-send-2: a request every 50 ms on a 50 ms link.
///
/// Exact time again: each request ends at the very tick the next one starts, so two are
/// never in flight; at a limit of 2 the limit is never reached, and Vector's rule (no
/// deviation yet, so an RTT equal to the mean counts as high) steps it back to 1: the
/// limit alternates 1-2 (mean 1.49, mode 1) instead of Vector's 2-3, which needs the
/// overlap of a real runtime. Our default stays at 20 (app-limited).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn slow_send_2() {
    let params = Params {
        interval: 0.050,
        secs: 10,
        ..Params::new("slow-send-2", 100, 50)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 1.0, 2.0),
        ("stats.in_flight.mode", 1.0, 1.0),
        ("stats.in_flight.mean", 1.0, 1.2),
        ("controller.in_flight.max", 2.0, 3.0),
        ("controller.in_flight.mode", 1.0, 1.0),
        ("controller.in_flight.mean", 1.0, 2.0),
        ("limit.mode", 2.0, 3.0),
        ("limit.mean", 2.0, 2.5),
        ("rtt.min", 0.050, 0.052),
        ("rtt.mean", 0.050, 0.052),
    ];
    check(
        "vector",
        &params,
        &vector,
        &envelopes,
        &[
            ("controller.in_flight.max", 1.0, 1.0),
            ("limit.mode", 1.0, 1.0),
            ("limit.mean", 1.45, 1.55),
        ],
    );
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 1.0, 1.0),
            ("limit.min", 20.0, 20.0),
            ("limit.max", 20.0, 20.0),
        ],
    );
}

/// slow-link: every request in flight adds a whole delay (`scale 1.0`): the limit must
/// stay low.
///
/// Every envelope holds for Vector. Our default starts at 20 on a link where 20 requests
/// take 2 s each (the layer's 1 s timeout drops them), and comes down by about 10% per
/// 1 s window: limit mean 6.4 (Vector 1.7-5.0), RTT mean 0.37 s, 35 s for the 200
/// requests where Vector needs 20 s.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn slow_link() {
    let params = Params {
        knee: Some(knee(1, 1.0, 1.0)),
        secs: 40,
        ..Params::new("slow-link", 200, 100)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 2.0, 7.0),
        ("stats.in_flight.mode", 2.0, 5.0),
        ("stats.in_flight.mean", 1.5, 5.0),
        ("controller.in_flight.max", 2.0, 7.0),
        ("controller.in_flight.mode", 2.0, 5.0),
        ("controller.in_flight.mean", 1.5, 5.0),
        ("limit.mode", 2.0, 5.0),
        ("limit.mean", 1.7, 5.0),
        ("rtt.min", 0.100, 0.102),
        ("rtt.mean", 0.100, 0.450),
    ];
    check("vector", &params, &vector, &envelopes, &[]);
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 20.0, 20.0),
            ("limit.mean", 6.40, 6.50),
            ("rtt.mean", 0.36, 0.38),
        ],
    );
}

/// shallow-knee: the delay grows 10% per request beyond 10 in flight.
///
/// Vector fits every envelope but the mean rate, 90.8 per second where Vector's harness
/// measures 87-89: our simulated runtime adds no overhead between a response and the next
/// request. Our default shows a real weakness of Gradient2 here: it tolerates 1.5× a
/// long-term RTT average that follows the knee up, so it settles at 29-30 requests, far
/// past the knee (RTT mean 0.42 s where Vector keeps 0.11 s).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shallow_knee() {
    let params = Params {
        knee: Some(knee(10, 0.0, 1.1)),
        secs: 20,
        ..Params::new("shallow-knee", 1000, 100)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 12.0, 12.0),
        ("stats.in_flight.mean", 9.0, 11.0),
        ("stats.in_flight.mode", 9.0, 12.0),
        ("stats.rate.max", 103.0, 108.0),
        ("stats.rate.mean", 87.0, 89.0),
        ("limit.max", 12.0, 12.0),
        ("limit.mean", 10.0, 12.0),
        ("limit.mode", 9.0, 12.0),
        ("controller.in_flight.max", 12.0, 12.0),
        ("controller.in_flight.mean", 9.0, 11.0),
        ("controller.in_flight.mode", 9.0, 12.0),
        ("rtt.min", 0.100, 0.102),
        ("rtt.max", 0.100, 0.123),
        ("rtt.mean", 0.106, 0.120),
    ];
    check(
        "vector",
        &params,
        &vector,
        &envelopes,
        &[("stats.rate.mean", 90.7, 90.9)],
    );
    assert_within(
        "default",
        &params,
        &default,
        &[("limit.mean", 25.5, 25.6), ("rtt.mean", 0.42, 0.43)],
    );
}

/// defers-at-high-concurrency: beyond 5 in flight the link answers an error after the
/// delay.
///
/// Retries differ: Vector's retry layer sits inside its limit (a deferred request keeps
/// its permit through the 1 s backoff), our simulated clients retry from outside (the
/// permit comes back at the error). So more attempts reach the link per second: rate
/// max 55 and mean 48.7 where Vector measures at most 52 and 44; everything else fits.
/// Our default starts at 20 and backs off by 10% per 1 s window with drops: limit mean
/// 11.7 (inside Vector's 4-12), but 20 in flight at first (Vector's link: at most 13).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn defers_at_high_concurrency() {
    let params = Params {
        concurrency_cutoff: Some((5, Action::Defer)),
        secs: 25,
        ..Params::new("defers-at-high-concurrency", 500, 100)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 5.0, 13.0),
        ("stats.in_flight.mode", 0.0, 5.0),
        ("stats.in_flight.mean", 2.4, 5.0),
        ("stats.rate.max", 40.0, 52.0),
        ("stats.rate.mean", 20.0, 44.0),
        ("controller.in_flight.max", 5.0, 18.0),
        ("controller.in_flight.mode", 4.0, 13.0),
        ("controller.in_flight.mean", 3.5, 12.0),
        ("limit.max", 6.0, 18.0),
        ("limit.mode", 2.0, 13.0),
        ("limit.mean", 4.0, 12.0),
        ("rtt.min", 0.100, 0.102),
        ("rtt.max", 0.100, 0.102),
        ("rtt.mean", 0.100, 0.102),
    ];
    check(
        "vector",
        &params,
        &vector,
        &envelopes,
        &[
            ("stats.rate.max", 55.0, 55.0),
            ("stats.rate.mean", 48.6, 48.8),
        ],
    );
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 20.0, 20.0),
            ("limit.mean", 11.6, 11.7),
        ],
    );
}

/// drops-at-high-concurrency: beyond 5 in flight the link never answers; the 1 s timeout
/// fires.
///
/// Retries differ as in `defers_at_high_concurrency`: a request that timed out gives its
/// permit back and is retried by its client, so the link sees more attempts (rate max 60,
/// mean 38.8, against at most 56 and 32), and the layer holds fewer requests than
/// Vector's, whose permits stay taken through the retries (in-flight mode 1 and limit
/// mode 3, against 3-11 and 8-12). Means and maxima of the limit and the controller's
/// in-flight count fit. Our default: limit mean 10.3 (Vector 7-8).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn drops_at_high_concurrency() {
    let params = Params {
        concurrency_cutoff: Some((5, Action::Drop)),
        secs: 25,
        ..Params::new("drops-at-high-concurrency", 500, 100)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 4.0, 5.0),
        ("stats.in_flight.mean", 1.8, 4.0),
        ("stats.in_flight.mode", 1.0, 5.0),
        ("stats.rate.max", 45.0, 56.0),
        ("stats.rate.mean", 15.0, 32.0),
        ("controller.in_flight.max", 13.0, 15.0),
        ("controller.in_flight.mean", 7.0, 8.0),
        ("controller.in_flight.mode", 3.0, 11.0),
        ("limit.max", 10.0, 15.0),
        ("limit.mean", 7.0, 8.0),
        ("limit.mode", 8.0, 12.0),
        ("rtt.min", 0.100, 0.102),
        ("rtt.max", 0.100, 0.102),
        ("rtt.mean", 0.100, 0.102),
    ];
    check(
        "vector",
        &params,
        &vector,
        &envelopes,
        &[
            ("stats.rate.max", 60.0, 60.0),
            ("stats.rate.mean", 38.7, 38.8),
            ("controller.in_flight.mode", 1.0, 1.0),
            ("limit.mode", 3.0, 3.0),
        ],
    );
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 5.0, 5.0),
            ("limit.mean", 10.25, 10.35),
        ],
    );
}

/// defers-at-high-rate: beyond 100 requests in the last second the link defers.
///
/// Retries differ as in `defers_at_high_concurrency`: our clients' retries reach the link
/// on top of new requests (rate mean 86 against at most 75), so the rate cutoff defers
/// sooner and the limit peaks at 15, one under Vector's lowest peak (16). Our default:
/// limit mean 11.3, inside Vector's 8-18.5.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn defers_at_high_rate() {
    let params = Params {
        rate_cutoff: Some((100, Action::Defer)),
        secs: 25,
        ..Params::new("defers-at-high-rate", 1000, 100)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 16.0, 24.0),
        ("stats.in_flight.mean", 6.0, 9.0),
        ("stats.rate.max", 90.0, 123.0),
        ("stats.rate.mean", 31.0, 75.0),
        ("controller.in_flight.max", 16.0, 24.0),
        ("controller.in_flight.mean", 8.0, 19.0),
        ("limit.max", 16.0, 24.0),
        ("limit.mean", 8.0, 18.5),
        ("rtt.min", 0.100, 0.102),
        ("rtt.max", 0.100, 1.203),
        ("rtt.mean", 0.100, 0.85),
    ];
    check(
        "vector",
        &params,
        &vector,
        &envelopes,
        &[
            ("stats.in_flight.max", 15.0, 15.0),
            ("controller.in_flight.max", 15.0, 15.0),
            ("limit.max", 15.0, 15.0),
            ("stats.rate.mean", 86.0, 86.1),
        ],
    );
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 20.0, 20.0),
            ("limit.mean", 11.3, 11.35),
        ],
    );
}

/// jittery-link-small: a 100 ms link with a 10% exponential tail.
///
/// Every envelope holds for Vector. Our default starts at 20 and grows slowly (limit mean
/// 21.3, just over Vector's 9-20).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn jittery_link_small() {
    let params = Params {
        jitter: 0.1,
        secs: 10,
        ..Params::new("jittery-link-small", 1000, 100)
    };
    let (vector, default) = both(&params).await;
    let envelopes = [
        ("stats.in_flight.max", 20.0, 40.0),
        ("stats.in_flight.mean", 8.0, 20.0),
        ("stats.rate.max", 165.0, 350.0),
        ("stats.rate.mean", 70.0, 150.0),
        ("controller.in_flight.max", 20.0, 40.0),
        ("controller.in_flight.mean", 8.0, 20.0),
        ("limit.max", 20.0, 40.0),
        ("limit.mean", 9.0, 20.0),
        ("rtt.mean", 0.100, 0.130),
    ];
    check("vector", &params, &vector, &envelopes, &[]);
    assert_within(
        "default",
        &params,
        &default,
        &[
            ("stats.in_flight.max", 24.0, 24.0),
            ("limit.mean", 21.2, 21.3),
        ],
    );
}

/// fixed-concurrency-simple: a fixed limit of 10 on a 100 ms link (a control case).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fixed_concurrency_simple() {
    let params = Params {
        fixed: Some(10),
        secs: 10,
        ..Params::new("fixed-concurrency-simple", 500, 100)
    };
    let m = run(&params, Algo::Vector).await;
    println!("{}: {:?}", params.name, m.values);
    let envelopes = [
        ("stats.in_flight.max", 10.0, 10.0),
        ("stats.in_flight.mode", 10.0, 10.0),
        ("stats.in_flight.mean", 8.0, 10.0),
        ("stats.rate.max", 90.0, 90.0),
        ("stats.rate.mean", 80.0, 85.0),
        ("controller.in_flight.max", 10.0, 10.0),
        ("controller.in_flight.mode", 10.0, 10.0),
        ("controller.in_flight.mean", 8.0, 10.0),
        ("limit.min", 10.0, 10.0),
        ("limit.max", 10.0, 10.0),
        ("limit.mode", 10.0, 10.0),
    ];
    // Exact time: 10 in flight × 100 ms is exactly 100 requests a second; Vector's
    // harness measures 90 with its runtime's overhead.
    let instead = [
        ("stats.rate.max", 100.0, 100.0),
        ("stats.rate.mean", 90.9, 91.1),
    ];
    check("fixed", &params, &m, &envelopes, &instead);
}

/// fixed-concurrency-jitter: a fixed limit of 10 on a very jittery link (a control case).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fixed_concurrency_jitter() {
    let params = Params {
        fixed: Some(10),
        jitter: 0.5,
        secs: 15,
        ..Params::new("fixed-concurrency-jitter", 500, 100)
    };
    let m = run(&params, Algo::Vector).await;
    println!("{}: {:?}", params.name, m.values);
    let envelopes = [
        ("stats.in_flight.max", 10.0, 10.0),
        ("stats.in_flight.mode", 10.0, 10.0),
        ("stats.in_flight.mean", 8.0, 10.0),
        ("stats.rate.max", 65.0, 84.0),
        ("stats.rate.mean", 55.0, 66.0),
        ("controller.in_flight.max", 10.0, 10.0),
        ("controller.in_flight.mode", 10.0, 10.0),
        ("controller.in_flight.mean", 8.0, 10.0),
        ("limit.min", 10.0, 10.0),
        ("limit.max", 10.0, 10.0),
        ("limit.mode", 10.0, 10.0),
    ];
    assert_within("fixed", &params, &m, &envelopes);
}
