//! The overload lab: every protection stack against the same simulated overload.
//!
//! The scenarios run on `steadfast-sim` with Netflix's harness backend (2 workers, lognormal
//! service time with a 20 ms mean: 100 requests per second) and the same seeded traffic for
//! every stack (20% critical requests, class 0; 80% sheddable, class 1; a 1 s client
//! deadline). Three groups:
//!
//! - **load sweep**: offered 0.5×, 1×, 2×, 4× and 10× the capacity, after a warm-up at 0.5×;
//!   measured once the stacks have had `settle` (30 s; 10 s with `--quick`) at the new
//!   load;
//! - **capacity step**: offered 2× while the backend loses a worker (capacity halves) and
//!   gets it back;
//! - **retry storm**: the steadfast server (shed + limit) at 4×, its clients making 3
//!   attempts through steadfast-retry's `TpsBudget`, or with no budget, or not retrying;
//!   with free rejections and with rejections that cost the server 0.4 ms of work each
//!   ([`cost`]).
//!
//! [`Lab::run`] runs them (on several threads, each simulation on its own paused
//! `current_thread` runtime) and [`Lab::targets`] checks the issue's targets against the
//! numbers measured.
//!
//! ```
//! use example_overload_lab::{CAPACITY_RPS, Lab, Length, Selection, Stack};
//!
//! // The load sweep of one stack, with the short runs.
//! let selection = Selection { stacks: vec![Stack::TowerStatic], step: false, storm: false };
//! let lab = Lab::run(Length::Quick, &selection, 2)?;
//! let at_10x = lab.measured(&lab.sweep_at(Stack::TowerStatic, 10.0).expect("ran").report);
//! assert!(at_10x.goodput_rps() > 0.9 * CAPACITY_RPS); // a static limit of 4 holds at 10x
//! print!("{}", lab.render());
//! # Ok::<(), steadfast_sim::ScenarioError>(())
//! ```

pub mod cost;
mod output;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use steadfast_core::classify::ErrorsAsFailures;
use steadfast_limit::algorithm::{Gradient2, QueueSize};
use steadfast_limit::partition::Partitions;
use steadfast_limit::{AdaptiveConcurrencyLayer, Mode};
use steadfast_retry::RetryLayer;
use steadfast_retry::budget::{NoBudget, RetryBudget, TpsBudget};
use steadfast_retry::rng::SplitMix64;
use steadfast_shed::{Priority, ShedLayer};
use steadfast_sim::{
    Backend, BackendConfig, Distribution, Load, Report, Scenario, ScenarioError, Schedule,
    SimRequest, SimResponse, Simulation, Summary,
};
use tokio::time::Instant;
use tower::load_shed::LoadShed;
use tower::{Layer, ServiceBuilder};
use tower_resilience_adaptive::{self as tr, AdaptiveService, ConcurrencyAlgorithm};

pub use output::{Row, Target, table};

use crate::cost::RejectionCostLayer;

/// The backend's capacity: 2 workers ÷ 20 ms.
pub const CAPACITY_RPS: f64 = 100.0;

/// Offered loads of the sweep, as multiples of the capacity.
pub const LOADS: [f64; 5] = [0.5, 1.0, 2.0, 4.0, 10.0];

/// The class weights: class 0 (critical) 20%, class 1 (sheddable) 80%. At 4× the critical
/// traffic alone is 80% of the capacity, so the server can keep all of it.
pub const CLASSES: [f64; 2] = [0.2, 0.8];

/// The static limit of tower's `ConcurrencyLimit`: 4, twice the backend's L* (capacity ×
/// no-load latency = 100/s × 20 ms = 2), room for the service-time variance.
pub const STATIC_LIMIT: usize = 4;

/// The share of the adaptive limit guaranteed to critical requests when it is saturated.
pub const CRITICAL_SHARE: f64 = 0.9;

/// What one rejection costs the server in the costly half of the retry-storm group: 0.4 ms
/// of worker time, 2% of a mean request.
pub const REJECTION_COST: Duration = Duration::from_micros(400);

/// The seed of every scenario, so that every stack faces the same arrivals.
pub const SEED: u64 = 2024;

/// Netflix's harness backend: 2 workers, lognormal service time, mean 20 ms, sigma 0.5.
pub fn backend() -> BackendConfig {
    BackendConfig::new(2, Distribution::lognormal(Duration::from_millis(20), 0.5))
}

/// The stacks compared, server side, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stack {
    /// The backend alone: an unbounded FIFO queue in front of the workers.
    Unprotected,
    /// tower's `LoadShed` over a static `ConcurrencyLimit` of [`STATIC_LIMIT`].
    TowerStatic,
    /// tower's `LoadShed` over tower-resilience's adaptive service (its Gradient2 with its
    /// defaults); it only applies backpressure, so the shedder turns that into rejections.
    TowerResilience,
    /// steadfast-limit's `AdaptiveConcurrencyLayer` alone (Gradient2, fail fast) with
    /// priority partitions: critical requests are guaranteed [`CRITICAL_SHARE`] of the
    /// limit when it is saturated.
    SteadfastLimit,
    /// steadfast-shed's `ShedLayer` (controlled delay, adaptive LIFO, priority lanes: class
    /// 0 `Critical`, class 1 `Sheddable`; the client's deadline) over steadfast-limit's
    /// `AdaptiveConcurrencyLayer` (a tight Gradient2, [`tight_gradient2`]; backpressure).
    Steadfast,
}

impl Stack {
    /// Every stack, in table order.
    pub const ALL: [Self; 5] = [
        Self::Unprotected,
        Self::TowerStatic,
        Self::TowerResilience,
        Self::SteadfastLimit,
        Self::Steadfast,
    ];

    /// The stack's name in tables and plots.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unprotected => "unprotected",
            Self::TowerStatic => "tower LoadShed + ConcurrencyLimit(4)",
            Self::TowerResilience => "tower-resilience Gradient2 + LoadShed",
            Self::SteadfastLimit => "steadfast limit (fail fast, partitions)",
            Self::Steadfast => "steadfast shed + limit",
        }
    }

    /// A short name for file names.
    pub const fn slug(self) -> &'static str {
        match self {
            Self::Unprotected => "unprotected",
            Self::TowerStatic => "tower-static",
            Self::TowerResilience => "tower-resilience",
            Self::SteadfastLimit => "steadfast-limit",
            Self::Steadfast => "steadfast",
        }
    }
}

/// How the clients of the retry-storm group retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retries {
    /// One attempt.
    None,
    /// 3 attempts through steadfast-retry's `RetryLayer` with its default `TpsBudget`
    /// (20% of requests plus 10 retries per second over 10 s).
    Budget,
    /// 3 attempts through the same layer with `NoBudget`.
    NoBudget,
}

impl Retries {
    /// Every retry mode, in table order.
    pub const ALL: [Self; 3] = [Self::None, Self::Budget, Self::NoBudget];

    /// The mode's name in tables.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "no retries",
            Self::Budget => "3 attempts, TpsBudget",
            Self::NoBudget => "3 attempts, no budget",
        }
    }
}

/// How long the simulated runs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// The README's runs: 30 s warm-up, 90 s of load, measured over the last 60 s.
    Full,
    /// For CI and debug builds: 10 s warm-up, 20 s of load, measured over the last 10 s.
    Quick,
}

/// The timeline of the scenarios, derived from the [`Length`].
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Seconds at 0.5× before the load changes.
    pub warm: u64,
    /// Seconds at the tested load.
    pub load: u64,
    /// Seconds from the load change until measuring starts.
    pub settle: u64,
    /// Length of each phase of the capacity step (2×, halved, recovered).
    pub step_phase: u64,
    /// Length of the unloaded baseline run.
    pub unloaded: u64,
}

impl Length {
    /// The timeline for this length.
    pub const fn timing(self) -> Timing {
        match self {
            Self::Full => Timing {
                warm: 30,
                load: 90,
                settle: 30,
                step_phase: 30,
                unloaded: 300,
            },
            Self::Quick => Timing {
                warm: 10,
                load: 20,
                settle: 10,
                step_phase: 10,
                unloaded: 100,
            },
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One simulation to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Job {
    /// The bare backend at 5 requests per second: the unloaded p99.
    Unloaded,
    /// A stack at a multiple of the capacity.
    Sweep(Stack, f64),
    /// A stack through the capacity step.
    Step(Stack),
    /// The steadfast server at 4× with retrying clients, rejections free or costly.
    Storm(Retries, bool),
}

impl Job {
    /// The scenario this job runs.
    pub fn scenario(&self, t: Timing) -> Scenario {
        let with_classes = |s: Scenario| s.with_classes(CLASSES).with_seed(SEED);
        match *self {
            Self::Unloaded => Scenario::new("unloaded", backend(), Load::poisson(5.0))
                .with_duration(secs(t.unloaded))
                .with_seed(SEED),
            Self::Sweep(stack, x) => with_classes(
                Scenario::new(
                    format!("{} at {x}x", stack.name()),
                    backend(),
                    sweep_load(x, t),
                )
                .with_duration(secs(t.warm + t.load)),
            ),
            Self::Step(stack) => {
                let p = t.step_phase;
                let backend = backend()
                    .with_capacity_change(secs(t.warm + p), 1)
                    .with_capacity_change(secs(t.warm + 2 * p), 2);
                let rate = Schedule::constant(0.5 * CAPACITY_RPS)
                    .then_at(secs(t.warm), 2.0 * CAPACITY_RPS);
                with_classes(
                    Scenario::new(
                        format!("{} through a capacity step", stack.name()),
                        backend,
                        Load::poisson_schedule(rate),
                    )
                    .with_duration(secs(t.warm + 3 * p)),
                )
            }
            Self::Storm(retries, costly) => with_classes(
                Scenario::new(
                    format!(
                        "retry storm: {}, rejections {}",
                        retries.name(),
                        if costly { "costly" } else { "free" }
                    ),
                    backend(),
                    sweep_load(4.0, t),
                )
                .with_duration(secs(t.warm + t.load)),
            ),
        }
    }

    /// Runs the job on a paused `current_thread` runtime of its own.
    ///
    /// # Errors
    ///
    /// The simulator's [`ScenarioError`] (an invalid scenario, a runtime that could not be
    /// built).
    pub fn run(&self, t: Timing) -> Result<Outcome, ScenarioError> {
        let scenario = self.scenario(t);
        match *self {
            Self::Unloaded => Ok(Outcome::plain(scenario.run_blocking(|b| b)?)),
            Self::Sweep(stack, _) | Self::Step(stack) => run_stack(stack, scenario),
            Self::Storm(retries, costly) => run_storm(retries, costly, scenario),
        }
    }
}

/// 0.5× for the warm-up, then `x` times the capacity.
fn sweep_load(x: f64, t: Timing) -> Load {
    Load::poisson_schedule(
        Schedule::constant(0.5 * CAPACITY_RPS).then_at(secs(t.warm), x * CAPACITY_RPS),
    )
}

/// What a job produced: the simulator's report and, for retrying clients, the retry
/// layer's counts over the whole run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The simulator's report.
    pub report: Report,
    /// Attempts and retries sent by the retry layer (whole run), when there is one.
    pub retry: Option<(u64, u64)>,
}

impl Outcome {
    fn plain(report: Report) -> Self {
        Self {
            report,
            retry: None,
        }
    }
}

type Probe = Box<dyn Fn() -> Option<f64>>;

fn simulate<F, S>(
    scenario: Scenario,
    probe: Option<Probe>,
    make: F,
) -> Result<Report, ScenarioError>
where
    F: FnOnce(Backend) -> S,
    S: tower::Service<SimRequest, Response = SimResponse>,
    S::Error: Into<steadfast_core::error::BoxError>,
{
    let mut simulation = Simulation::new(scenario);
    if let Some(probe) = probe {
        simulation = simulation.limit_probe(probe);
    }
    simulation.run_blocking(make)
}

/// The partition of a simulated request: class 0 is critical.
fn partition(request: &SimRequest) -> &'static str {
    if request.class == 0 {
        "critical"
    } else {
        "sheddable"
    }
}

/// steadfast-limit alone: Gradient2 with its defaults, fail fast, priority partitions.
fn partitioned_limit() -> AdaptiveConcurrencyLayer<ErrorsAsFailures, fn(&SimRequest) -> &'static str>
{
    AdaptiveConcurrencyLayer::builder()
        .mode(Mode::FailFast)
        .partitions(
            Partitions::new()
                .partition("critical", CRITICAL_SHARE)
                .partition("sheddable", 1.0 - CRITICAL_SHARE),
            partition as fn(&SimRequest) -> &'static str,
        )
        .build()
        .expect("a valid steadfast-limit configuration")
}

/// The priority of a simulated request: class 0 is critical, the rest sheddable.
fn priority(request: &SimRequest) -> Priority {
    if request.class == 0 {
        Priority::Critical
    } else {
        Priority::Sheddable
    }
}

/// The client's deadline, which the simulator puts in every request.
fn deadline(request: &SimRequest, _now: Instant) -> Option<Instant> {
    Some(request.deadline)
}

type PriorityFn = fn(&SimRequest) -> Priority;
type DeadlineFn = fn(&SimRequest, Instant) -> Option<Instant>;

/// The steadfast server: the shedder (its defaults; priorities and deadlines from the
/// request) over the adaptive limit in backpressure mode, with Gradient2 set to hug L*
/// ([`tight_gradient2`]).
fn steadfast_layers() -> (ShedLayer<PriorityFn, DeadlineFn>, AdaptiveConcurrencyLayer) {
    let shed = ShedLayer::builder()
        .priority(priority as PriorityFn)
        .deadline(deadline as DeadlineFn)
        .build()
        .expect("a valid steadfast-shed configuration");
    let limit = AdaptiveConcurrencyLayer::builder()
        .algorithm(tight_gradient2())
        .build()
        .expect("a valid steadfast-limit configuration");
    (shed, limit)
}

/// Gradient2 with no latency tolerance, a queue allowance of 1 and smoothing 0.5 (the
/// "tight" configuration of steadfast-limit's scenario tests). Behind the shedder, the
/// requests beyond the limit wait in its controlled-delay queue, served by priority, so
/// the limit need not keep a queue of its own in the backend: with the defaults
/// (tolerance 1.5, queue `sqrt(L)`) it holds about 7 requests in front of 2 workers and
/// the queueing delay counts twice.
pub fn tight_gradient2() -> Gradient2 {
    Gradient2::new()
        .tolerance(1.0)
        .queue_size(QueueSize::Constant(1))
        .smoothing(0.5)
}

fn run_stack(stack: Stack, scenario: Scenario) -> Result<Outcome, ScenarioError> {
    let report = match stack {
        Stack::Unprotected => simulate(scenario, None, |b| b)?,
        Stack::TowerStatic => simulate(
            scenario,
            Some(Box::new(|| Some(STATIC_LIMIT as f64))),
            |b| {
                ServiceBuilder::new()
                    .load_shed()
                    .concurrency_limit(STATIC_LIMIT)
                    .service(b)
            },
        )?,
        Stack::TowerResilience => {
            let algorithm = Arc::new(
                tr::Gradient2::builder()
                    .build()
                    .expect("tower-resilience's defaults are valid"),
            );
            let probe = Arc::clone(&algorithm);
            simulate(
                scenario,
                Some(Box::new(move || Some(probe.limit() as f64))),
                move |b| LoadShed::new(AdaptiveService::new(b, algorithm)),
            )?
        }
        Stack::SteadfastLimit => {
            let layer = partitioned_limit();
            let limiter = Arc::clone(layer.limiter());
            simulate(
                scenario,
                Some(Box::new(move || Some(limiter.limit() as f64))),
                |b| layer.layer(b),
            )?
        }
        Stack::Steadfast => {
            let (shed, limit) = steadfast_layers();
            let limiter = Arc::clone(limit.limiter());
            simulate(
                scenario,
                Some(Box::new(move || Some(limiter.limit() as f64))),
                |b| ServiceBuilder::new().layer(shed).layer(limit).service(b),
            )?
        }
    };
    Ok(Outcome::plain(report))
}

fn run_storm(retries: Retries, costly: bool, scenario: Scenario) -> Result<Outcome, ScenarioError> {
    let (shed, limit) = steadfast_layers();
    let limiter = Arc::clone(limit.limiter());
    let probe: Probe = Box::new(move || Some(limiter.limit() as f64));
    let counter = RejectionCostLayer::new();
    let workers = *scenario.backend.workers.initial();
    let deadline = scenario.client.timeout;
    let server = move |b: Backend| {
        if costly {
            cost::charge(b.clone(), workers, REJECTION_COST, &counter);
        }
        ServiceBuilder::new()
            .layer(counter)
            .layer(shed)
            .layer(limit)
            .service(b)
    };
    let budget: Arc<dyn RetryBudget> = match retries {
        Retries::None => return Ok(Outcome::plain(simulate(scenario, Some(probe), server)?)),
        Retries::Budget => Arc::new(TpsBudget::default()),
        Retries::NoBudget => Arc::new(NoBudget),
    };
    let retry = RetryLayer::cloning(ErrorsAsFailures::new())
        .max_attempts(3)
        .deadline(deadline)
        .budget(budget)
        .rng(Arc::new(SplitMix64::new(SEED)))
        .name("lab")
        .build()
        .expect("a valid retry configuration");
    let stats = retry.stats();
    let report = simulate(scenario, Some(probe), |b| retry.layer(server(b)))?;
    Ok(Outcome {
        report,
        retry: Some((stats.attempts(), stats.retries())),
    })
}

/// Everything one lab run measured.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The length the lab ran with.
    pub length: Length,
    /// The bare backend at 5 requests per second.
    pub unloaded: Report,
    /// The load sweep: stack, multiple of the capacity, outcome.
    pub sweep: Vec<(Stack, f64, Outcome)>,
    /// The capacity step, per stack.
    pub step: Vec<(Stack, Outcome)>,
    /// The retry storm: retry mode, costly rejections, outcome.
    pub storm: Vec<(Retries, bool, Outcome)>,
}

/// Which parts of the lab to run.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The stacks of the sweep and the capacity step.
    pub stacks: Vec<Stack>,
    /// Whether to run the capacity step.
    pub step: bool,
    /// Whether to run the retry storm.
    pub storm: bool,
}

impl Default for Selection {
    /// Everything.
    fn default() -> Self {
        Self {
            stacks: Stack::ALL.to_vec(),
            step: true,
            storm: true,
        }
    }
}

impl Lab {
    /// The jobs of a selection, longest first (they are shared out in this order).
    pub fn jobs(selection: &Selection) -> Vec<Job> {
        let mut jobs = vec![Job::Unloaded];
        for &stack in &selection.stacks {
            jobs.extend(LOADS.iter().map(|&x| Job::Sweep(stack, x)));
            if selection.step {
                jobs.push(Job::Step(stack));
            }
        }
        if selection.storm {
            for costly in [false, true] {
                jobs.extend(Retries::ALL.iter().map(|&r| Job::Storm(r, costly)));
            }
        }
        // The unprotected backend at high load is the slowest to simulate (its queue
        // holds every request); start those first so the threads finish together.
        jobs.sort_by_key(|j| match j {
            Job::Sweep(Stack::Unprotected, x) => -(*x * 10.0) as i64 - 100,
            Job::Sweep(_, x) => -(*x * 10.0) as i64,
            _ => 0,
        });
        jobs
    }

    /// Runs the selected scenarios on `threads` threads (at least one) and collects the
    /// results.
    ///
    /// # Errors
    ///
    /// The first [`ScenarioError`] of any job.
    pub fn run(
        length: Length,
        selection: &Selection,
        threads: usize,
    ) -> Result<Self, ScenarioError> {
        let timing = length.timing();
        let jobs = Self::jobs(selection);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Outcome, ScenarioError>>>> =
            Mutex::new(vec![None; jobs.len()]);
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let outcome = job.run(timing);
                        results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(outcome);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut lab = Self {
            length,
            unloaded: unloaded_report(&jobs, &results)?,
            sweep: Vec::new(),
            step: Vec::new(),
            storm: Vec::new(),
        };
        for (job, result) in jobs.iter().zip(results) {
            let outcome = result.expect("every job ran")?;
            match *job {
                Job::Unloaded => {}
                Job::Sweep(stack, x) => lab.sweep.push((stack, x, outcome)),
                Job::Step(stack) => lab.step.push((stack, outcome)),
                Job::Storm(retries, costly) => lab.storm.push((retries, costly, outcome)),
            }
        }
        let order = |s: Stack| Stack::ALL.iter().position(|&t| t == s);
        lab.sweep.sort_by(|a, b| {
            (order(a.0), a.1)
                .partial_cmp(&(order(b.0), b.1))
                .expect("finite loads")
        });
        lab.step.sort_by_key(|s| order(s.0));
        Ok(lab)
    }

    /// The timeline of this lab's scenarios.
    pub fn timing(&self) -> Timing {
        self.length.timing()
    }

    /// The unloaded p99 latency, in milliseconds.
    pub fn unloaded_p99_ms(&self) -> f64 {
        ms(self.unloaded.summary().latency.p99)
    }

    /// The measured window of a sweep or storm run: from `settle` seconds after the load
    /// change to the end.
    pub fn measured(&self, report: &Report) -> Summary {
        let t = self.timing();
        report.window(secs(t.warm + t.settle), secs(t.warm + t.load))
    }

    /// The measured windows of a capacity-step run: 2× on two workers, 4× of the halved
    /// capacity, 2× again after the recovery; each from half a phase after its change.
    pub fn step_phases(&self, report: &Report) -> [(&'static str, f64, Summary); 3] {
        // (phase, capacity in requests per second, window)
        let t = self.timing();
        let (w, p) = (t.warm, t.step_phase);
        let window = |start: u64| report.window(secs(start + p / 2), secs(start + p));
        [
            ("2 workers", CAPACITY_RPS, window(w)),
            ("1 worker", CAPACITY_RPS / 2.0, window(w + p)),
            ("2 workers again", CAPACITY_RPS, window(w + 2 * p)),
        ]
    }

    /// The sweep's outcome for `stack` at `x` times the capacity, if it ran.
    pub fn sweep_at(&self, stack: Stack, x: f64) -> Option<&Outcome> {
        self.sweep
            .iter()
            .find(|(s, l, _)| *s == stack && *l == x)
            .map(|(_, _, o)| o)
    }

    /// The storm's outcome for a retry mode, if it ran.
    pub fn storm_of(&self, retries: Retries, costly: bool) -> Option<&Outcome> {
        self.storm
            .iter()
            .find(|(r, c, _)| *r == retries && *c == costly)
            .map(|(_, _, o)| o)
    }
}

/// The unloaded baseline's report, which every table needs.
fn unloaded_report(
    jobs: &[Job],
    results: &[Option<Result<Outcome, ScenarioError>>],
) -> Result<Report, ScenarioError> {
    let i = jobs
        .iter()
        .position(|j| *j == Job::Unloaded)
        .expect("the unloaded baseline is always a job");
    match &results[i] {
        Some(Ok(outcome)) => Ok(outcome.report.clone()),
        Some(Err(e)) => Err(e.clone()),
        None => unreachable!("every job ran"),
    }
}

/// Milliseconds of an optional duration (NaN when absent).
pub fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}
