//! An adaptive concurrency limit for tower services: the limit on requests in flight
//! follows what the backend can actually serve, measured from its latency and its losses.
//!
//! A fixed concurrency limit is wrong twice: too high, and an overloaded backend queues
//! work until every answer is too late; too low, and capacity is wasted. This crate learns
//! the limit with the algorithms of Netflix's `concurrency-limits`, Vector's adaptive
//! request concurrency, or our Little's-law estimator, behind a normal tower layer.
//!
//! # Overview
//!
//! - [`AdaptiveConcurrencyLayer`]: reserve a permit in `poll_ready` (lock-free), run the
//!   request, classify its result through [`steadfast_core::classify::Classify`], give the
//!   permit back when the response future completes or is dropped.
//!   - a success is an **RTT sample**; an [`Outcome::Overload`](steadfast_core::classify::Outcome)
//!     (429, 503, `RESOURCE_EXHAUSTED`, a downstream
//!     [`Overloaded`](steadfast_core::error::Overloaded)) or the layer's own
//!     [timeout](AdaptiveConcurrencyLayerBuilder::timeout) is a **drop**; other errors and
//!     cancellations are **ignored**.
//!   - [`Mode::Backpressure`] (default) waits for a permit; [`Mode::FailFast`] refuses the
//!     call with `Overloaded`; [`Mode::Queue`] waits in a bounded LIFO or FIFO
//!     [`WaitQueue`] with a timeout, then refuses.
//! - [`WindowConfig`]: samples are aggregated per window (mean RTT, largest in-flight
//!   count, any drop), `clamp(2·minRTT, min, max)` long with at least N requests. Under
//!   heavy traffic only about [`timed_per_window`](WindowConfig::timed_per_window)
//!   requests per window are timed, so that an admitted request costs about as much as
//!   tower's static `ConcurrencyLimit` (see `benches/README.md`).
//! - [`partition`]: split the limit (for example live 90%, batch 10%), enforced only when
//!   it is saturated (Netflix's partitioned limiter), with
//!   [`AdaptiveConcurrencyLayerBuilder::partitions`] in fail-fast mode.
//! - [`algorithm`]: [`Aimd`](algorithm::Aimd), [`Vegas`](algorithm::Vegas) and
//!   [`Gradient2`](algorithm::Gradient2) (Netflix's), [`Vector`](algorithm::Vector)
//!   (Vector's ARC, on one-RTT windows: [`Vector::window_config`](algorithm::Vector::window_config))
//!   and [`Little`](algorithm::Little) (ours: the limit estimated from Little's law) as
//!   pure state machines, or your own [`LimitAlgorithm`](algorithm::LimitAlgorithm). The
//!   [`algorithm`] module compares them.
//! - [`Limiter`]: the shared state, usable without tower (acquire a [`Permit`], report the
//!   outcome), and its [`LimitStats`].
//!
//! Shrinking the limit never revokes a permit already given out: requests in flight run to
//! the end, and new ones wait (or are refused) until the count is back under the limit.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use steadfast_core::error::Overloaded;
//! use steadfast_limit::algorithm::Aimd;
//! use steadfast_limit::{AdaptiveConcurrencyLayer, Mode};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let layer = AdaptiveConcurrencyLayer::builder()
//!     .algorithm(Aimd::new().initial_limit(1))
//!     .mode(Mode::FailFast)
//!     .timeout(Duration::from_millis(100))
//!     .build()?;
//! let mut svc = ServiceBuilder::new().layer(layer.clone()).service(service_fn(|ms: u64| async move {
//!     tokio::time::sleep(Duration::from_millis(ms)).await;
//!     Ok::<_, Infallible>(ms)
//! }));
//!
//! // One request in flight: the limit is reached, a second one is refused at once.
//! let first = svc.ready().await?.call(10);
//! let refused = svc.ready().await?.call(10).await.unwrap_err();
//! assert!(refused.is::<Overloaded>());
//! assert_eq!(first.await?, 10);
//!
//! let stats = layer.stats();
//! assert_eq!((stats.limit, stats.in_flight, stats.successes, stats.rejections), (1, 0, 1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! | setting | default | source and reason |
//! |---|---|---|
//! | algorithm | [`Gradient2`](algorithm::Gradient2) | Netflix's recommended limit; see the [`algorithm`] module for the others |
//! | minimum limit | 1 for every algorithm | Netflix: 20 for AIMD and Gradient2, which costs 10× latency at 2× load on a 2-worker backend |
//! | window | 1 s, at least 10 requests | Netflix `WindowedLimit` |
//! | requests timed | about 1000 per window (all below 2000) | ours: Netflix times every request |
//! | partitions | none | |
//! | mode | [`Mode::Backpressure`] | tower's `ConcurrencyLimit`; add a shedder for fail-fast, or pick [`Mode::FailFast`] |
//! | timeout | none | set it from your latency objective; a timeout is a drop |
//! | classifier | [`ErrorsAsFailures`](steadfast_core::classify::ErrorsAsFailures) | use the HTTP or gRPC classifier for 429/503 |
//!
//! Each algorithm's own defaults (Netflix's, with the deviations explained) are on its
//! type.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod algorithm;
pub mod error;
pub mod future;
mod layer;
mod limiter;
pub mod partition;
mod service;
mod sync;
mod window;

pub use crate::error::{InvalidLimitConfig, TimedOut};
pub use crate::layer::{
    AdaptiveConcurrencyLayer, AdaptiveConcurrencyLayerBuilder, Mode, QueueOrder, WaitQueue,
};
pub use crate::limiter::{LimitStats, Limiter, Permit};
pub use crate::service::AdaptiveConcurrency;
pub use crate::window::WindowConfig;
