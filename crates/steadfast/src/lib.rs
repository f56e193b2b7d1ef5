//! One dependency for the whole steadfast family.
//!
//! Each steadfast crate is re-exported as a module behind a feature of the same name:
//!
//! | Feature       | Module                 | Crate                                                        |
//! |---------------|------------------------|--------------------------------------------------------------|
//! | (always)      | [`core`]               | [`steadfast-core`](https://docs.rs/steadfast-core)           |
//! | `hlc`         | `hlc`                  | [`steadfast-hlc`](https://docs.rs/steadfast-hlc)             |
//! | `retry`       | `retry`                | [`steadfast-retry`](https://docs.rs/steadfast-retry)         |
//! | `limit`       | `limit`                | [`steadfast-limit`](https://docs.rs/steadfast-limit)         |
//! | `shed`        | `shed`                 | [`steadfast-shed`](https://docs.rs/steadfast-shed)           |
//! | `idempotency` | `idempotency`          | [`steadfast-idempotency`](https://docs.rs/steadfast-idempotency) |
//! | `lease`       | `lease`                | [`steadfast-lease`](https://docs.rs/steadfast-lease)         |
//! | `hash`        | `hash`                 | [`steadfast-hash`](https://docs.rs/steadfast-hash)           |
//!
//! `full` enables all of them. The backend features pass through to the crates that have
//! stores: `redis` and `postgres` to `steadfast-lease` and `steadfast-idempotency`, `etcd`
//! to `steadfast-lease` (each does nothing unless that crate's feature is also on). No
//! feature is on by default.
//!
//! [`prelude`] brings the main types of the enabled crates into scope, and
//! [`ServiceBuilderExt`] adds one method per layer to [`tower::ServiceBuilder`].
//!
//! # Example
//!
//! ```
//! use steadfast::prelude::*;
//! use tower::ServiceBuilder;
//!
//! let builder = ServiceBuilder::new();
//! # #[cfg(feature = "idempotency")]
//! // With the `idempotency` feature: give every unsafe request an `Idempotency-Key`.
//! let builder = builder.idempotency_key();
//! # #[cfg(feature = "hlc")]
//! // With the `hlc` feature: stamp outgoing requests with this node's hybrid logical clock.
//! let builder = builder.hlc_client(std::sync::Arc::new(steadfast::hlc::Hlc::new()));
//! let _ = builder;
//! ```
//!
//! Layers whose configuration can fail to validate (retry, hedging, adaptive limits,
//! load shedding, idempotency) are built first, then passed to the builder:
//!
//! ```
//! # #[cfg(all(feature = "retry", feature = "limit"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use steadfast::prelude::*;
//! use tower::{ServiceBuilder, service_fn};
//!
//! let retry = RetryLayer::http().max_attempts(3).build()?;
//! let limit = AdaptiveConcurrencyLayer::builder().build()?;
//! let client = ServiceBuilder::new()
//!     .with_retry(retry)
//!     .adaptive_concurrency(limit)
//!     .service(service_fn(|req: String| async move { Ok::<_, std::convert::Infallible>(req) }));
//! # let _ = client;
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "retry", feature = "limit")))]
//! # fn main() {}
//! ```
//!
//! A server's overload protection, outermost first: overload errors become `503` /
//! `504` responses, the shedder keeps a short queue in front of the adaptive limit, which
//! applies backpressure (see `examples/axum-server` for the whole stack under load):
//!
//! ```
//! # #[cfg(all(feature = "shed", feature = "limit"))]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::convert::Infallible;
//!
//! use steadfast::prelude::*;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let shed = ShedLayer::builder()
//!     .priority(FromHeader::new())
//!     .deadline(HttpDeadline)
//!     .build()?;
//! let server = ServiceBuilder::new()
//!     .overload_response(OverloadResponseLayer::http())
//!     .shed(shed)
//!     .adaptive_concurrency(AdaptiveConcurrencyLayer::builder().build()?)
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(http::Response::new(String::from("done")))
//!     }));
//!
//! // A caller that has already given up gets 504 before any work.
//! let late = http::Request::builder().header("x-request-timeout", "0").body(())?;
//! let response = server.clone().oneshot(late).await?;
//! assert_eq!(response.status(), http::StatusCode::GATEWAY_TIMEOUT);
//! let response = server.oneshot(http::Request::new(())).await?;
//! assert_eq!(response.into_body(), "done");
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "shed", feature = "limit")))]
//! # fn main() {}
//! ```
//!
//! `tests/ext.rs` stacks every layer.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use steadfast_core as core;

#[cfg(feature = "hash")]
#[cfg_attr(docsrs, doc(cfg(feature = "hash")))]
pub use steadfast_hash as hash;

#[cfg(feature = "hlc")]
#[cfg_attr(docsrs, doc(cfg(feature = "hlc")))]
pub use steadfast_hlc as hlc;

#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub use steadfast_idempotency as idempotency;

#[cfg(feature = "lease")]
#[cfg_attr(docsrs, doc(cfg(feature = "lease")))]
pub use steadfast_lease as lease;

#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub use steadfast_limit as limit;

#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use steadfast_retry as retry;

#[cfg(feature = "shed")]
#[cfg_attr(docsrs, doc(cfg(feature = "shed")))]
pub use steadfast_shed as shed;

mod builder;
pub mod prelude;

pub use crate::builder::ServiceBuilderExt;
