//! Scenarios as data: the backend, the load, the clients, the run's length and seed.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::dist::Distribution;
use crate::schedule::Schedule;

/// A latency knee: service time grows once the backend's concurrency passes `start`.
///
/// With `n` requests in service (counting the one starting), the sampled service time is
/// multiplied by `1 + linear·d + (exponent^d − 1)` where `d = n − start`, when `n > start`;
/// below the knee it is unchanged. This is Vector's link model: its `concurrency_scale` is
/// `linear` with `start = 1`, and its `knee_start`/`knee_exp` are `start`/`exponent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knee {
    /// The concurrency from which service time grows.
    pub start: usize,
    /// Relative growth per request above `start` (0 for none).
    pub linear: f64,
    /// Exponential growth per request above `start` (1 for none).
    pub exponent: f64,
}

impl Knee {
    /// The service-time multiplier at concurrency `n`.
    pub fn factor(&self, n: usize) -> f64 {
        if n <= self.start {
            return 1.0;
        }
        let d = (n - self.start) as f64;
        1.0 + self.linear * d + (self.exponent.powf(d) - 1.0)
    }
}

/// The modelled backend: `workers` servers behind one unbounded FIFO queue.
///
/// A request that finds every worker busy waits in the queue, however long it gets, so an
/// unprotected backend offered more than its capacity really collapses: the queue and
/// latency grow without bound, and past the clients' deadline every answer is wasted work.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackendConfig {
    /// The number of workers over time. Shrinking never interrupts a request in service;
    /// `usize::MAX` models a link with no queue (every request is served at once).
    pub workers: Schedule<usize>,
    /// The base service time of a request.
    pub service_time: Distribution,
    /// Optional growth of service time with concurrency.
    pub knee: Option<Knee>,
    /// Drop a queued request, unanswered, when a worker becomes free after its deadline
    /// (deadline propagation). Off by default: a plain backend serves it anyway.
    pub drop_expired: bool,
    /// Skip a queued request whose caller has dropped the response future (cancellation
    /// propagation). Off by default.
    pub skip_cancelled: bool,
}

impl BackendConfig {
    /// `workers` workers with the given service time, no knee, no capacity changes.
    pub fn new(workers: usize, service_time: Distribution) -> Self {
        Self {
            workers: Schedule::constant(workers),
            service_time,
            knee: None,
            drop_expired: false,
            skip_cancelled: false,
        }
    }

    /// A backend with unlimited workers: a pure delay (with an optional knee), like
    /// Vector's simulated link.
    pub fn unlimited(service_time: Distribution) -> Self {
        Self::new(usize::MAX, service_time)
    }

    /// Changes the number of workers to `workers` at offset `at`.
    #[must_use]
    pub fn with_capacity_change(mut self, at: Duration, workers: usize) -> Self {
        self.workers = self.workers.then_at(at, workers);
        self
    }

    /// Sets a latency knee.
    #[must_use]
    pub const fn with_knee(mut self, knee: Knee) -> Self {
        self.knee = Some(knee);
        self
    }

    /// Sets [`drop_expired`](Self::drop_expired).
    #[must_use]
    pub const fn with_drop_expired(mut self, drop_expired: bool) -> Self {
        self.drop_expired = drop_expired;
        self
    }

    /// Sets [`skip_cancelled`](Self::skip_cancelled).
    #[must_use]
    pub const fn with_skip_cancelled(mut self, skip_cancelled: bool) -> Self {
        self.skip_cancelled = skip_cancelled;
        self
    }

    /// Capacity in requests per second at the start of the run, below any knee:
    /// workers ÷ mean service time (infinite for unlimited workers or zero service time).
    pub fn capacity_rps(&self) -> f64 {
        let mean = self.service_time.mean().as_secs_f64();
        if *self.workers.initial() == usize::MAX || mean == 0.0 {
            f64::INFINITY
        } else {
            *self.workers.initial() as f64 / mean
        }
    }
}

/// How open-loop arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arrivals {
    /// A Poisson process: exponential gaps with mean `1 / rate`.
    Poisson,
    /// Evenly spaced, one every `1 / rate` (Vector's harness sends at a fixed interval).
    Periodic,
}

/// Where requests come from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Load {
    /// Open loop: requests arrive at the scheduled rate whatever happens to earlier ones,
    /// like users on the internet. Each arrival is one request (plus its retries).
    Open {
        /// Requests per second over time.
        rate: Schedule<f64>,
        /// How arrivals are spaced.
        arrivals: Arrivals,
    },
    /// Closed loop: `clients` clients, each sending one request, waiting for its outcome
    /// (after any retries), thinking, and sending the next.
    Closed {
        /// The number of clients.
        clients: usize,
        /// The pause between a request's outcome and the client's next request (and before
        /// its first). A client whose request resolved at the very instant it was sent and
        /// that draws a zero think time waits 1 ms, so simulated time always moves.
        think: Distribution,
    },
}

impl Load {
    /// Poisson arrivals at a constant rate.
    pub const fn poisson(rps: f64) -> Self {
        Self::Open {
            rate: Schedule::constant(rps),
            arrivals: Arrivals::Poisson,
        }
    }

    /// Poisson arrivals on a rate schedule.
    pub const fn poisson_schedule(rate: Schedule<f64>) -> Self {
        Self::Open {
            rate,
            arrivals: Arrivals::Poisson,
        }
    }

    /// Evenly spaced arrivals at a constant rate.
    pub const fn periodic(rps: f64) -> Self {
        Self::Open {
            rate: Schedule::constant(rps),
            arrivals: Arrivals::Periodic,
        }
    }

    /// `clients` closed-loop clients with the given think time.
    pub const fn closed(clients: usize, think: Distribution) -> Self {
        Self::Closed { clients, think }
    }
}

/// What a client does when an attempt's deadline passes without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnTimeout {
    /// Give up: drop the response future (the stack sees a cancellation; the backend
    /// still serves the request unless it [skips cancelled work](BackendConfig::skip_cancelled))
    /// and count a timeout, then retry if the policy says so. The default.
    #[default]
    Abandon,
    /// Keep waiting: an answer after the deadline is counted as late (throughput but not
    /// goodput). Timeouts never happen, so they are never retried.
    Wait,
}

/// Client retries: the behaviour that turns overload into a retry storm.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retries).
    pub max_retries: u32,
    /// The pause before each retry.
    pub delay: Duration,
    /// Relative jitter of the delay, in `[0, 1]`: the pause is uniform in
    /// `delay · [1 − jitter, 1 + jitter]`.
    pub jitter: f64,
    /// Retry rejections (the stack's overload errors).
    pub on_rejection: bool,
    /// Retry timeouts (only with [`OnTimeout::Abandon`]).
    pub on_timeout: bool,
    /// Retry other errors.
    pub on_error: bool,
}

impl RetryPolicy {
    /// No retries.
    pub const fn none() -> Self {
        Self {
            max_retries: 0,
            delay: Duration::ZERO,
            jitter: 0.0,
            on_rejection: false,
            on_timeout: false,
            on_error: false,
        }
    }

    /// Up to `max_retries` retries of rejections and timeouts, each after `delay`.
    pub const fn new(max_retries: u32, delay: Duration) -> Self {
        Self {
            max_retries,
            delay,
            jitter: 0.0,
            on_rejection: true,
            on_timeout: true,
            on_error: false,
        }
    }

    /// Sets the relative jitter of the delay.
    #[must_use]
    pub const fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

/// How the simulated clients behave.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Each attempt's deadline, from the moment the client sends it: an answer within it is
    /// goodput. Default 1 s (Vector's harness).
    pub timeout: Duration,
    /// What happens at the deadline. Default [`OnTimeout::Abandon`].
    pub on_timeout: OnTimeout,
    /// Client retries. Default none.
    pub retry: RetryPolicy,
    /// Relative weights of the request classes: class `i` is drawn with probability
    /// `classes[i] / sum`. Default one class. The class is carried in
    /// [`SimRequest::class`](crate::SimRequest::class) for priority-aware stacks; by
    /// convention class 0 is the most critical.
    pub classes: Vec<f64>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            on_timeout: OnTimeout::Abandon,
            retry: RetryPolicy::none(),
            classes: vec![1.0],
        }
    }
}

/// A complete, reproducible experiment: what the backend is, what load it gets, how the
/// clients behave, for how long, with which seed, and how finely it is measured.
///
/// Build one with [`Scenario::new`] and the `with_*` methods, or set the public fields, then
/// [`run`](Self::run) it against a stack.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Scenario {
    /// A name for reports and failure messages.
    pub name: String,
    /// The seed of every random draw.
    pub seed: u64,
    /// The simulated length of the run. Default 60 s.
    pub duration: Duration,
    /// The width of the per-bucket table. Default 1 s.
    pub bucket: Duration,
    /// How often the limit probe is sampled. Default 10 ms.
    pub sample_interval: Duration,
    /// The backend.
    pub backend: BackendConfig,
    /// The load.
    pub load: Load,
    /// The clients.
    pub client: ClientConfig,
}

impl Scenario {
    /// A scenario with seed 0, 60 s long, 1 s buckets and default clients.
    pub fn new(name: impl Into<String>, backend: BackendConfig, load: Load) -> Self {
        Self {
            name: name.into(),
            seed: 0,
            duration: Duration::from_secs(60),
            bucket: Duration::from_secs(1),
            sample_interval: Duration::from_millis(10),
            backend,
            load,
            client: ClientConfig::default(),
        }
    }

    /// Sets the seed.
    #[must_use]
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the simulated duration.
    #[must_use]
    pub const fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Sets the bucket width.
    #[must_use]
    pub const fn with_bucket(mut self, bucket: Duration) -> Self {
        self.bucket = bucket;
        self
    }

    /// Sets the limit-probe sampling interval.
    #[must_use]
    pub const fn with_sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval;
        self
    }

    /// Sets the client deadline.
    #[must_use]
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client.timeout = timeout;
        self
    }

    /// Sets what clients do at the deadline.
    #[must_use]
    pub const fn with_on_timeout(mut self, on_timeout: OnTimeout) -> Self {
        self.client.on_timeout = on_timeout;
        self
    }

    /// Sets the client retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.client.retry = retry;
        self
    }

    /// Sets the class weights.
    #[must_use]
    pub fn with_classes(mut self, weights: impl Into<Vec<f64>>) -> Self {
        self.client.classes = weights.into();
        self
    }

    /// Checks the scenario; [`run`](Self::run) does this first.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |msg: String| Err(ScenarioError::Invalid(msg));
        if self.duration.is_zero() {
            return invalid("duration must be positive".into());
        }
        if self.bucket < Duration::from_millis(1) {
            return invalid(format!(
                "bucket must be at least 1 ms, got {:?}",
                self.bucket
            ));
        }
        if self.duration.as_nanos() / self.bucket.as_nanos() > 1_000_000 {
            return invalid("more than a million buckets".into());
        }
        if self.sample_interval < Duration::from_millis(1) {
            return invalid(format!(
                "sample_interval must be at least 1 ms, got {:?}",
                self.sample_interval
            ));
        }
        if let Err(e) = self.backend.service_time.validate() {
            return invalid(format!("backend service time: {e}"));
        }
        if let Some(knee) = self.backend.knee {
            if !(knee.linear.is_finite() && knee.linear >= 0.0) {
                return invalid(format!(
                    "knee linear must be finite and >= 0, got {}",
                    knee.linear
                ));
            }
            if !(knee.exponent.is_finite() && knee.exponent >= 1.0) {
                return invalid(format!(
                    "knee exponent must be finite and >= 1, got {}",
                    knee.exponent
                ));
            }
        }
        match &self.load {
            Load::Open { rate, .. } => {
                if let Some(r) = rate.values().find(|r| !(r.is_finite() && **r >= 0.0)) {
                    return invalid(format!("arrival rates must be finite and >= 0, got {r}"));
                }
            }
            Load::Closed { clients, think } => {
                if u32::try_from(*clients).is_err() {
                    return invalid(format!("too many clients: {clients}"));
                }
                if let Err(e) = think.validate() {
                    return invalid(format!("think time: {e}"));
                }
            }
        }
        let client = &self.client;
        if client.timeout.is_zero() {
            return invalid("client timeout must be positive".into());
        }
        if !(0.0..=1.0).contains(&client.retry.jitter) {
            return invalid(format!(
                "retry jitter must be in [0, 1], got {}",
                client.retry.jitter
            ));
        }
        if client.classes.is_empty() || client.classes.len() > 256 {
            return invalid("between 1 and 256 classes".into());
        }
        if client.classes.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || client.classes.iter().sum::<f64>() <= 0.0
        {
            return invalid("class weights must be finite, >= 0, with a positive sum".into());
        }
        Ok(())
    }
}

/// Why a scenario could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScenarioError {
    /// A parameter is out of range; the message says which.
    Invalid(String),
    /// [`Simulation::run`](crate::Simulation::run) was called outside a tokio runtime.
    NoRuntime,
    /// The runtime is multi-threaded: the run would not be deterministic. Use a
    /// `current_thread` runtime.
    NotCurrentThread,
    /// Tokio time is not paused: the run would take real time and not be deterministic.
    /// Use `start_paused = true` (or `tokio::time::pause()`), or
    /// [`Simulation::run_blocking`](crate::Simulation::run_blocking).
    TimeNotPaused,
    /// Building the runtime for [`Simulation::run_blocking`](crate::Simulation::run_blocking) failed.
    Runtime(String),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(msg) => write!(f, "invalid scenario: {msg}"),
            Self::NoRuntime => f.write_str("the simulation must run inside a tokio runtime"),
            Self::NotCurrentThread => f.write_str(
                "the simulation needs a current_thread tokio runtime to be deterministic",
            ),
            Self::TimeNotPaused => f.write_str(
                "tokio time must be paused (start_paused = true) for a deterministic simulation",
            ),
            Self::Runtime(msg) => write!(f, "could not build the simulation runtime: {msg}"),
        }
    }
}

impl Error for ScenarioError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Scenario {
        Scenario::new(
            "t",
            BackendConfig::new(2, Distribution::Constant(Duration::from_millis(20))),
            Load::poisson(10.0),
        )
    }

    #[test]
    fn knee_factor() {
        let knee = Knee {
            start: 10,
            linear: 0.0,
            exponent: 1.1,
        };
        assert_eq!(knee.factor(10), 1.0);
        assert!((knee.factor(12) - 1.21).abs() < 1e-12);
        let linear = Knee {
            start: 1,
            linear: 1.0,
            exponent: 1.0,
        };
        assert_eq!(linear.factor(3), 3.0);
    }

    #[test]
    fn validation_catches_bad_parameters() {
        assert!(base().validate().is_ok());
        assert!(base().with_duration(Duration::ZERO).validate().is_err());
        assert!(base().with_classes(vec![]).validate().is_err());
        assert!(base().with_classes(vec![0.0]).validate().is_err());
        assert!(
            base()
                .with_retry(RetryPolicy::new(1, Duration::ZERO).with_jitter(2.0))
                .validate()
                .is_err()
        );
        let mut s = base();
        s.load = Load::poisson(f64::NAN);
        let err = s.validate().unwrap_err();
        assert!(err.to_string().contains("arrival rates"), "{err}");
    }

    #[test]
    fn capacity() {
        let b = BackendConfig::new(2, Distribution::lognormal(Duration::from_millis(20), 0.5));
        assert!((b.capacity_rps() - 100.0).abs() < 1e-9);
        assert!(
            BackendConfig::unlimited(Distribution::Constant(Duration::ZERO))
                .capacity_rps()
                .is_infinite()
        );
    }
}
