//! Hedged requests: when the first attempt is slow, send a copy of the request and take
//! whichever answer comes first.
//!
//! # When to hedge
//!
//! Hedging cuts the **tail latency of idempotent reads**. When a request is slow because
//! of bad luck on one server (a garbage-collection pause, a long queue, a busy disk) rather
//! than because of the request itself, a copy sent a little later, to another replica, is
//! likely to answer sooner. In "The Tail at Scale" (Communications of the ACM, 2013), Dean
//! and Barroso suggest sending the copy only once the first request has been outstanding
//! longer than the 95th-percentile latency expected for its kind of request: this limits
//! the extra load to about 5 % while substantially shortening the latency tail. In their
//! BigTable benchmark (1,000 keys read from 100 servers), a hedge sent after 10 ms cut the
//! 99.9th-percentile latency from 1,800 ms to 74 ms for 2 % more requests.
//!
//! Hedge only when:
//!
//! - **the request is idempotent**, ideally a read. Every hedge is a full copy, and
//!   cancelling the losing attempt on the client does not stop the server from finishing
//!   it: a non-idempotent request would be applied twice. The layer hedges every request it
//!   sees, so put it only in front of reads (RFC 9110 §9.2.2 lists the idempotent HTTP
//!   methods; see [`is_idempotent`](crate::policy::is_idempotent));
//! - **the copy can go elsewhere**: put the layer above a load balancer, so a hedge can
//!   reach another replica;
//! - **slowness is per request**. When the whole service is slow, hedges only add load to
//!   it. That is why hedges draw on a [budget](crate::budget), which caps the extra load.
//!
//! # Requests must be `Clone`
//!
//! The attempts run at the same time, so each needs its own copy of the request: the
//! service requires `Req: Clone`. For HTTP that is `http::Request<B>` with `B: Clone`, such
//! as `http_body_util::Full<Bytes>`, `http_body_util::Empty<Bytes>` or `()`. **Streaming
//! bodies cannot be hedged**: a stream is consumed as the first attempt sends it, and the
//! attempts run concurrently, so there is nothing to copy from.
//! ([`ReplayBody`](crate::body::ReplayBody) replays a body for *sequential* retries only.)
//! Collect a small body into `Full<Bytes>` first, or do not hedge the request.
//!
//! # How a call runs
//!
//! 1. The first attempt is sent, and [`RetryBudget::on_request`](crate::budget::RetryBudget::on_request)
//!    is called. The request's delay is decided now (see [`HedgeDelay`]).
//! 2. An answer the classifier calls [`Outcome::Success`](steadfast_core::classify::Outcome::Success)
//!    wins: it is returned, every other attempt in flight is dropped (cancelled), and the
//!    winner's budget permit is handed to
//!    [`on_success`](crate::budget::RetryBudget::on_success) (`None` when the first attempt
//!    won).
//! 3. A failure that is not retryable (gRPC hedging's "fatal" status) is returned at once,
//!    and the other attempts are cancelled.
//! 4. A retryable failure is reported to
//!    [`on_failure`](crate::budget::RetryBudget::on_failure) and, if attempts remain, the
//!    next hedge is sent at once (gRPC's "non-fatal" status), without waiting for the delay.
//!    If the failure carries a server hint (`Retry-After`, `grpc-retry-pushback-ms`), the next
//!    hedge instead waits at least that long, and if nothing else is in flight the failure
//!    is returned: hedging never sleeps with no attempt running (stack a
//!    [`RetryLayer`](crate::RetryLayer) for that).
//! 5. When the delay passes with no answer, the budget is asked for a hedge
//!    ([`try_retry(RetryCause::Failure)`](crate::budget::RetryBudget::try_retry)). If it
//!    agrees, the call's own clone of the inner service is driven to readiness (the attempts
//!    in flight are polled meanwhile, so a late answer still wins) and a copy of the request
//!    is sent; the next hedge is due one delay later. If it refuses, no hedge is sent on
//!    time for this request and [`HedgeStats::budget_exhausted`] counts it; a later retryable
//!    failure may still ask again.
//! 6. At most `max_attempts` attempts are sent in all. When every one has failed, the last
//!    failure is returned.
//!
//! Dropping the response future cancels every attempt in flight. Errors of the inner
//! service are converted into [`BoxError`](steadfast_core::error::BoxError), classified with
//! [`Classify::classify_error`](steadfast_core::classify::Classify::classify_error) and
//! returned unchanged; the layer's error type is `BoxError`.
//!
//! # Defaults
//!
//! | setting | default | why |
//! |---|---|---|
//! | [delay](HedgeLayerBuilder::delay) | [`HedgeDelay::Percentile`]: p95 of the last 10–20 s, once 100 samples are known; 50 ms before | Dean and Barroso's p95, learned so it follows the service; see [`HedgeDelay::default`] |
//! | [max_attempts](HedgeLayerBuilder::max_attempts) | 2 (one hedge), at most 10 | Polly's default of one hedge; gRPC caps hedging at 5 attempts and Polly at 10 hedges |
//! | [budget](HedgeLayerBuilder::budget) | [`TpsBudget::default`](crate::budget::TpsBudget): 20 % of requests plus 10/s | the retry layer's default; pass one `Arc` to both layers to share it |
//! | [latency_window](HedgeLayerBuilder::latency_window) | 10 s | the percentile follows changes within 10 to 20 s |
//!
//! With a p95 delay, on a steady latency distribution, about 5 % of requests are hedged,
//! well inside the default budget's 20 %.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//!
//! use steadfast_core::classify::ErrorsAsFailures;
//! use steadfast_retry::hedge::{HedgeDelay, HedgeLayer};
//! use tokio::time::Instant;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let layer = HedgeLayer::builder(ErrorsAsFailures)
//!     .delay(HedgeDelay::Fixed(Duration::from_millis(20)))
//!     .build()?;
//! let stats = layer.stats();
//!
//! // A key-value read whose first attempt hits a 1 s pause; the others take 5 ms.
//! let calls = Arc::new(AtomicUsize::new(0));
//! let backend = service_fn(move |key: &'static str| {
//!     let attempt = calls.fetch_add(1, Ordering::Relaxed);
//!     async move {
//!         let latency = if attempt == 0 { 1_000 } else { 5 };
//!         tokio::time::sleep(Duration::from_millis(latency)).await;
//!         Ok::<_, std::io::Error>(format!("{key} from attempt {attempt}"))
//!     }
//! });
//! let svc = ServiceBuilder::new().layer(layer).service(backend);
//!
//! let start = Instant::now();
//! let value = svc.oneshot("user:42").await?;
//! assert_eq!(value, "user:42 from attempt 1");
//! assert_eq!(start.elapsed(), Duration::from_millis(25)); // the 20 ms delay + 5 ms
//! assert_eq!((stats.hedges_sent(), stats.hedge_wins()), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! One budget for everything sent to a downstream service, shared by the retry layer of
//! its writes and the hedge layer of its reads (HTTP, with buffered bodies):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use steadfast_retry::RetryLayer;
//! use steadfast_retry::budget::{RetryBudget, TpsBudget};
//! use steadfast_retry::hedge::{HedgeDelay, HedgeLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let budget: Arc<dyn RetryBudget> = Arc::new(TpsBudget::default());
//! let writes = RetryLayer::http().budget(budget.clone()).build()?;
//! let reads = HedgeLayer::http()
//!     .delay(HedgeDelay::Percentile {
//!         percentile: 0.99,
//!         min_samples: 1_000,
//!         fallback: Duration::from_millis(100),
//!     })
//!     .budget(budget)
//!     .build()?;
//! # let _ = writes;
//!
//! let backend = service_fn(|_: Request<Full<Bytes>>| async {
//!     Ok::<_, std::io::Error>(Response::new(String::from("stock: 7")))
//! });
//! let response = ServiceBuilder::new()
//!     .layer(reads)
//!     .service(backend)
//!     .oneshot(Request::get("/items/42").body(Full::new(Bytes::new()))?)
//!     .await?;
//! assert_eq!(response.body(), "stock: 7");
//! # Ok(())
//! # }
//! ```

mod delay;
mod error;
pub mod future;
mod histogram;
mod layer;
mod service;
mod stats;

pub use self::delay::{DEFAULT_FALLBACK, DEFAULT_MIN_SAMPLES, DEFAULT_PERCENTILE, HedgeDelay};
pub use self::error::InvalidHedgeConfig;
pub use self::layer::{
    DEFAULT_LATENCY_WINDOW, DEFAULT_MAX_ATTEMPTS, HedgeLayer, HedgeLayerBuilder, MAX_ATTEMPTS_LIMIT,
};
pub use self::service::Hedge;
pub use self::stats::HedgeStats;
