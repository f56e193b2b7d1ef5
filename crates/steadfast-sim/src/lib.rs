//! A deterministic, reproducible overload simulator for tower services.
//!
//! `steadfast-sim` drives any tower [`Service<SimRequest>`](tower_service::Service) (a
//! load shedder, a concurrency limiter, a whole stack, or nothing at all) against a
//! modelled [`Backend`], on tokio's paused clock with a seeded random number generator.
//! No wall clock is involved: a simulated minute takes a fraction of a second, and the same
//! seed gives the same numbers, so overload behaviour becomes an ordinary, exact test.
//!
//! It knows nothing of the other steadfast crates; their tests use it to prove that a
//! protected stack keeps goodput near capacity where an unprotected backend collapses.
//!
//! # The model
//!
//! - **Backend** ([`BackendConfig`]): `c` workers behind an unbounded FIFO queue, so an
//!   unprotected backend offered more than its capacity really collapses; service times
//!   from a [`Distribution`] (constant, exponential, lognormal, Erlang...); an optional
//!   latency [`Knee`]; a worker count that changes on a [`Schedule`].
//! - **Load** ([`Load`]): open-loop Poisson (or periodic) arrivals on a rate schedule, or
//!   closed-loop clients with a think time; a client deadline ([`ClientConfig::timeout`])
//!   that separates goodput from late, wasted answers; optional client retries
//!   ([`RetryPolicy`]) that turn overload into a retry storm.
//! - **Measures** ([`Report`], [`Summary`]): offered load, goodput, throughput,
//!   rejections, timeouts, latency of answers and of rejections (p50/p99/p99.9 from HDR
//!   histograms), wasted work, the backend's queue and in-flight count, and the stack's
//!   limit through a [probe](Simulation::limit_probe): for the whole run, per bucket
//!   (default 1 s), or over any window; as CSV with [`Report::to_csv`]; as SVG plots
//!   with the `plot` feature (see [Feature flags](#feature-flags)).
//! - **Assertions** ([`Envelope`]): Vector-style `[lo, hi]` ranges on any [`Metric`],
//!   checked with [`Report::check`], which lists every violation with its value.
//!
//! See [`Simulation`] for how a run proceeds and what counts as what.
//!
//! # Example
//!
//! An unprotected backend (two workers, 20 ms each: 100 requests per second) at half load
//! answers every request in about one service time; at twice its capacity it collapses,
//! and a static concurrency limit with load shedding keeps its goodput near capacity:
//!
//! ```
//! use std::time::Duration;
//! use steadfast_sim::{BackendConfig, Distribution, Envelope, Load, Metric, Scenario};
//! use tower::ServiceBuilder;
//!
//! let backend = BackendConfig::new(2, Distribution::Constant(Duration::from_millis(20)));
//! let half = Scenario::new("half load", backend.clone(), Load::poisson(50.0))
//!     .with_duration(Duration::from_secs(20))
//!     .with_seed(7);
//! let report = half.run_blocking(|backend| backend)?; // no protection at all
//! report.check(&[
//!     Envelope::new(Metric::GoodputRatio, 0.99, 1.0),
//!     Envelope::new(Metric::LatencyP50, 0.020, 0.025),
//! ])?;
//!
//! let double = Scenario::new("double load", backend, Load::poisson(200.0))
//!     .with_duration(Duration::from_secs(20))
//!     .with_timeout(Duration::from_millis(500));
//! let collapsed = double.run_blocking(|backend| backend)?;
//! assert!(collapsed.window(Duration::from_secs(5), Duration::from_secs(20)).goodput_rps() < 5.0);
//!
//! let protected = double.run_blocking(|backend| {
//!     ServiceBuilder::new().load_shed().concurrency_limit(4).service(backend)
//! })?;
//! protected.check(&[Envelope::at_least(Metric::GoodputRps, 90.0)])?;
//! println!("{}", protected.summary());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In async tests, use `Scenario::run` or [`Simulation::run`] on a
//! `#[tokio::test(flavor = "current_thread", start_paused = true)]` runtime.
//!
//! # Determinism and its limits
//!
//! The same [`Scenario`] (seed included) against a deterministic stack on a
//! `current_thread` runtime with paused time produces an identical [`Report`] (compare
//! them with `==`, or their CSV). Arrivals and classes depend only on the seed, and each
//! attempt's base service time only on the seed, the request id and the attempt number, so
//! two stacks compared under one seed face the same traffic.
//!
//! Tokio's timer has a resolution of 1 ms, and paused time moves from timer to timer, so
//! every observed instant is a whole millisecond: latencies are rounded up to the next
//! millisecond, and simultaneous events are ordered by when they were scheduled. Workers
//! chain jobs on exact times, so the backend's capacity is exact. Keep service times well
//! above a millisecond (Netflix's harness uses 20 ms, Vector's 50–100 ms).
//!
//! # Feature flags
//!
//! - `plot`: SVG plots of reports with `plotters` (SVG backend only): goodput and
//!   throughput against offered load, one line per stack (`plot::LoadPlot`), and one run
//!   over time: limit, in-flight, accepted latency, rejections (`plot::TimelinePlot`).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod dist;
mod driver;
#[cfg(feature = "plot")]
#[cfg_attr(docsrs, doc(cfg(feature = "plot")))]
pub mod plot;
mod report;
mod request;
mod rng;
mod scenario;
mod schedule;
mod stats;

pub use backend::{Backend, BackendFuture};
pub use dist::Distribution;
pub use driver::{RejectionClassifier, Simulation, is_overload};
#[cfg(feature = "plot")]
pub use plot::{LoadPlot, PlotError, TimelinePlot};
pub use report::{
    BackendSummary, ClassSummary, Envelope, EnvelopeFailure, EnvelopeViolation, GaugeSummary,
    LatencySummary, LimitSummary, Metric, Report, Summary,
};
pub use request::{BackendError, SimRequest, SimResponse};
pub use scenario::{
    Arrivals, BackendConfig, ClientConfig, Knee, Load, OnTimeout, RetryPolicy, Scenario,
    ScenarioError,
};
pub use schedule::Schedule;
