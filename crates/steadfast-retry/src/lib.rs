//! A retry layer for tower services: jittered backoff, retry budgets, per-attempt timeouts,
//! a total deadline, server hints, and replay of HTTP request bodies that are not `Clone`.
//!
//! tower ships the retry machinery but no ready-made policy; this crate is the policy, the
//! budget and the body replay in one layer, with defaults taken from the systems that run
//! retries at scale.
//!
//! # How a call is retried
//!
//! 1. Before the first attempt the request is checked for eligibility: by default only
//!    idempotent HTTP methods or requests with an `Idempotency-Key` header
//!    ([`policy::IdempotentRequests`]); override with [`RetryLayerBuilder::retry_if`].
//! 2. Each result is classified through [`steadfast_core::classify::Classify`]: HTTP 502,
//!    503, 504, 429, 408 and connection errors are retryable by default; gRPC `UNAVAILABLE`,
//!    and `RESOURCE_EXHAUSTED` only with a pushback.
//! 3. A retryable failure is retried when attempts remain, the budget allows it, the
//!    request can be replayed, and the next attempt can start before the deadline. The wait
//!    is the server's hint (`Retry-After`, `grpc-retry-pushback-ms`) when there is one (a
//!    hint longer than [`RetryLayerBuilder::max_retry_after`] or past the deadline stops
//!    retrying and returns the server's response; a hint restarts the backoff), otherwise
//!    the [`backoff`].
//! 4. Before every attempt, not only the first, the inner service's `poll_ready` is driven.
//! 5. Whatever is not retried is returned as it came: the last response, or the inner
//!    service's error (as a [`BoxError`](steadfast_core::error::BoxError)), or
//!    [`AttemptTimedOut`] / [`DeadlineExceeded`].
//!
//! Dropping the response future cancels the attempt in flight and every later one.
//!
//! # Defaults
//!
//! | setting | default | source and reason |
//! |---|---|---|
//! | attempts | 3 in all | AWS SDKs' standard mode; gRPC caps service configs at 5 |
//! | backoff | full jitter, base 50 ms, cap 1 s | AWS "Exponential Backoff and Jitter": full jitter does the least work; RPC-scale base and cap (tower 50 ms, Envoy 25 ms / 250 ms, gRPC example 100 ms / 1 s) |
//! | budget | [`budget::TpsBudget`]: 20% of requests + 10 retries/s over 10 s | Finagle and linkerd; exact, without tower's rounding |
//! | server hint cap | 30 s | longer hints return the server's answer |
//! | per-attempt timeout, deadline | none | set them from your latency objectives |
//! | HTTP body replay cap | 64 KiB | linkerd |
//! | eligibility (HTTP) | idempotent methods or `Idempotency-Key` | RFC 9110 §9.2.2 |
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//!
//! use http::{Request, Response};
//! use steadfast_retry::RetryLayer;
//! use steadfast_retry::body::ReplayBody;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // A backend that is unavailable once, then fine.
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let backend = service_fn(move |_req: Request<ReplayBody<String>>| {
//!     let status = if counter.fetch_add(1, Ordering::SeqCst) == 0 { 503 } else { 200 };
//!     async move { Ok::<_, Infallible>(Response::builder().status(status).body(String::new()).unwrap()) }
//! });
//!
//! let retry = RetryLayer::http()
//!     .deadline(Duration::from_secs(2))
//!     .build()?;
//! let stats = retry.stats();
//! let client = ServiceBuilder::new().layer(retry).service(backend);
//!
//! let response = client.oneshot(Request::new(String::from("GET is idempotent"))).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!((calls.load(Ordering::SeqCst), stats.retries()), (2, 1));
//! # Ok(())
//! # }
//! ```
//!
//! # Hedging
//!
//! [`HedgeLayer`] sends a second attempt when the first is slower than a delay (fixed, or
//! a learned percentile of recent latencies) and keeps the first success, cancelling the
//! rest: it trims the latency tail of idempotent reads. Hedges draw on the same kind of
//! budget as retries. See the [`hedge`] module.
//!
//! For request types that are `Clone` and not HTTP, use [`RetryLayer::cloning`] with a
//! classifier such as [`ErrorsAsFailures`](steadfast_core::classify::ErrorsAsFailures); for
//! tonic channels, [`RetryLayer::grpc`].
//!
//! # Feature flags
//!
//! - `metrics`: emit [`RetryStats`]' events as `metrics` counters named
//!   `steadfast_retry_<event>_total` with a `name` label.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod backoff;
pub mod body;
pub mod budget;
mod error;
pub mod future;
pub mod hedge;
mod layer;
pub mod policy;
pub mod replay;
pub mod rng;
mod service;
mod stats;

pub use crate::error::{AttemptTimedOut, DeadlineExceeded, InvalidRetryConfig};
pub use crate::hedge::{HedgeDelay, HedgeLayer, HedgeStats};
pub use crate::layer::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RETRY_AFTER, RetryLayer, RetryLayerBuilder,
};
pub use crate::service::Retry;
pub use crate::stats::RetryStats;
