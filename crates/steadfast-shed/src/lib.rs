//! Load shedding for tower services: refuse work the service cannot do in time, cheaply,
//! least critical first, before doing any of it.
//!
//! tower's `LoadShed` knows one thing: "the inner service is not ready". This crate adds
//! what the literature says a server needs under overload: a short queue governed by
//! Facebook's controlled delay with adaptive LIFO, Google SRE's criticality levels, and
//! propagated deadlines.
//!
//! # Overview
//!
//! Server side:
//!
//! - [`LoadShedLayer`]: tower's semantics (`poll_ready` polls the inner service and is
//!   always `Ready`; `call` forwards if the inner service was ready, else fails at once),
//!   with [`Overloaded`](steadfast_core::error::Overloaded) and an optional retry-after
//!   hint.
//! - [`ShedLayer`]: requests the inner service cannot take at once wait in a bounded
//!   queue shared by every clone; Facebook's controlled delay ([`Codel`]: target 5 ms,
//!   interval 100 ms, slough past 2 × target while overloaded, short queue timeouts once a
//!   queue stands), adaptive LIFO, [`Priority`] lanes (lower criticality is shed first),
//!   and [deadlines](deadline) (a request that cannot be served in time fails with
//!   [`DeadlineExceeded`](error::DeadlineExceeded) before any work).
//! - [`Priority`] and [`PriorityOf`]: the SRE book's `CRITICAL_PLUS`, `CRITICAL`
//!   (default), `SHEDDABLE_PLUS`, `SHEDDABLE`, read from a header ([`FromHeader`]), an
//!   extension ([`FromExtension`]), or a closure.
//! - [`deadline`]: `grpc-timeout` and `x-request-timeout` parsing, the [`Deadline`]
//!   extension, and [`DeadlineOf`] extractors.
//!
//! Client side and protocol mapping:
//!
//! - [`AdaptiveThrottleLayer`]: Google SRE's client-side adaptive throttling. Over a
//!   sliding window it counts requests and the backend's accepts, and refuses a new
//!   request locally (with [`Throttled`], before it leaves) with probability
//!   `max(0, (requests − K·accepts) / (requests + 1))`; see [`throttle_reject_probability`].
//! - [`OverloadResponseLayer`]: turns this family's errors into responses, so that an axum
//!   `Router` takes the stack without a `HandleErrorLayer`: for HTTP, `Overloaded` becomes
//!   `503` with `Retry-After` and `DeadlineExceeded` `504`; for gRPC,
//!   `RESOURCE_EXHAUSTED` (with `grpc-retry-pushback-ms`) and `DEADLINE_EXCEEDED`. Other
//!   errors become `500` / `UNKNOWN`, or pass through unchanged
//!   ([`pass_through_other_errors`](OverloadResponseLayer::pass_through_other_errors)).
//!
//! # The recommended stack
//!
//! The shedder goes in front of a limit that applies backpressure: the limit decides how
//! much work runs at once ([`steadfast_limit::AdaptiveConcurrencyLayer`] learns it; its
//! default mode makes `poll_ready` wait for a permit), the shedder decides what happens to
//! the requests beyond it.
//!
//! ```text
//! HlcLayer -> ShedLayer (queue, CoDel, priorities, deadlines) -> AdaptiveConcurrencyLayer (Backpressure) -> handler
//! ```
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use steadfast_limit::AdaptiveConcurrencyLayer;
//! use steadfast_limit::algorithm::Aimd;
//! use steadfast_shed::error::DeadlineExceeded;
//! use steadfast_shed::{FromHeader, HttpDeadline, ShedLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let shed = ShedLayer::builder()
//!     .priority(FromHeader::new()) // x-request-criticality: critical_plus | critical | ...
//!     .deadline(HttpDeadline) // grpc-timeout, x-request-timeout, or a Deadline extension
//!     .retry_after(Duration::from_secs(1))
//!     .build()?;
//! // A limit of one request at a time, to keep the example short; the default learns it.
//! let limit = AdaptiveConcurrencyLayer::builder()
//!     .algorithm(Aimd::new().initial_limit(1))
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(shed.clone())
//!     .layer(limit)
//!     .service(service_fn(|req: http::Request<&'static str>| async move {
//!         tokio::time::sleep(Duration::from_millis(10)).await;
//!         Ok::<_, Infallible>(http::Response::new(*req.body()))
//!     }));
//! let request = |body, timeout_ms: &'static str| {
//!     http::Request::builder().header("x-request-timeout", timeout_ms).body(body)
//! };
//!
//! // The first request takes the only permit; the second waits in the queue for it.
//! let first = svc.ready().await?.call(request("first", "1000")?);
//! let second = svc.ready().await?.call(request("second", "1000")?);
//! // A request whose caller has already given up is refused before any work.
//! let expired = svc.ready().await?.call(request("expired", "0")?).await.unwrap_err();
//! assert!(expired.is::<DeadlineExceeded>());
//!
//! let (first, second) = tokio::join!(first, second);
//! assert_eq!((*first?.body(), *second?.body()), ("first", "second"));
//! let stats = shed.stats();
//! assert_eq!((stats.forwarded, stats.served, stats.deadline_exceeded), (1, 1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! Errors: overload refusals are [`Overloaded`](steadfast_core::error::Overloaded)
//! (HTTP 503 with `Retry-After`, gRPC `RESOURCE_EXHAUSTED`); deadline refusals are
//! [`DeadlineExceeded`](error::DeadlineExceeded) (HTTP 504, gRPC `DEADLINE_EXCEEDED`).
//!
//! # Defaults
//!
//! | setting | default | source and reason |
//! |---|---|---|
//! | [`ShedLayer`] target delay | 5 ms | Facebook "Fail at Scale" (M), folly `Codel`, Envoy |
//! | [`ShedLayer`] interval | 100 ms | Facebook (N), folly, Envoy |
//! | slough threshold | 2 × target | folly `getSloughTimeout` |
//! | [`ShedLayer`] queue capacity | 100 | Netflix `LifoBlockingLimiter` backlog |
//! | retry-after hint ([`LoadShedLayer`], [`ShedLayer`]) | none | a client-side policy decides |
//! | priority | [`Priority::Critical`] | SRE book: the production default |
//! | priority header | `x-request-criticality` | ours; values `critical_plus`, `critical`, `sheddable_plus`, `sheddable` |
//! | invalid priority header | the fallback, `Critical` | never fail a request for a bad hint |
//! | deadline | none ([`NoDeadline`]) | deadlines come from the caller |
//! | deadline headers | `grpc-timeout`, `x-request-timeout` (ms) | gRPC spec; Envoy's `x-envoy-expected-rq-timeout-ms` format |
//! | [`AdaptiveThrottleLayer`] K | 2 | SRE book |
//! | throttle window | 120 s, in 12 buckets | SRE book (two minutes) |
//! | throttle minimum rate | none | SRE book; Envoy's `rps_threshold` as an option |
//! | throttle cap on the reject probability | 0.8 | Envoy `admission_control`: a client that refuses everything cannot notice a recovery; `1.0` gives the book's formula |
//! | [`OverloadResponseLayer`] other errors | `500` / gRPC `UNKNOWN`, logged | an axum `Router` needs an infallible service |
//!
//! [`ShedLayer`]'s own docs have the per-priority thresholds.
//!
//! # Feature flags
//!
//! - `tower`: [`OverloadResponseLayer`] also maps tower's own `load_shed::error::Overloaded`
//!   (to `503`) and `timeout::error::Elapsed` (to `504`).
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
//!
//! [`steadfast_limit::AdaptiveConcurrencyLayer`]: https://docs.rs/steadfast-limit
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

// Server side (load_shed, codel, priority, deadline, queue): owned by the server-side work.
mod codel;
pub mod deadline;
pub mod error;
mod load_shed;
mod priority;
mod queue;

pub use crate::codel::Codel;
pub use crate::deadline::{Deadline, DeadlineOf, HttpDeadline, NoDeadline};
pub use crate::load_shed::{LoadShed, LoadShedLayer};
pub use crate::priority::{
    FromExtension, FromHeader, InvalidPriority, PRIORITY_HEADER, Priority, PriorityOf,
};
pub use crate::queue::{Shed, ShedLayer, ShedLayerBuilder, ShedStats};

/// The response futures of this crate's services.
pub mod future {
    pub use crate::load_shed::LoadShedFuture;
    pub use crate::queue::ShedFuture;
}

// Client side and protocol mapping: owned by the client-side work.
pub use crate::respond::{
    InternalServerError, OtherErrors, OverloadResponse, OverloadResponseFuture,
    OverloadResponseLayer, PassThrough, ResponseProtocol,
};
pub use crate::throttle::{
    AdaptiveThrottle, AdaptiveThrottleFuture, AdaptiveThrottleLayer, AdaptiveThrottleLayerBuilder,
    InvalidThrottleConfig, ThrottleStats, Throttled, throttle_reject_probability,
};
mod respond;
mod throttle;
