//! Idempotency keys for tower HTTP services: a retried `POST` runs once.
//!
//! A client that times out on a `POST /payments` cannot know whether the payment happened.
//! With an `Idempotency-Key` header it can simply retry: the first request runs and its
//! response is stored, and every duplicate gets that response replayed, marked
//! `Idempotent-Replayed: true`. The semantics follow the IETF draft
//! (`draft-ietf-httpapi-idempotency-key-header`), Stripe and AWS Lambda Powertools.
//!
//! [`IdempotencyLayer`] wraps any `http::Request<B>` → `http::Response<ResB>` service
//! (axum's `Router` included: every refusal is a response, the layer never fails), and
//! keeps its records in an [`IdempotencyStore`]: [`MemoryStore`] for one process,
//! `RedisStore` or `PostgresStore` for a fleet (see [Stores](#stores)).
//!
//! # How a request is handled
//!
//! 1. Requests whose method is not handled (by default only `POST` and `PATCH` are), or
//!    that carry no key, pass through untouched. With
//!    [`require_key`](IdempotencyLayerBuilder::require_key) a missing key is a `400`.
//! 2. The key is parsed ([`parse_idempotency_key`]): an RFC 8941 sf-string, or a bare
//!    value in the default lenient mode, of 1 to 255 printable ASCII characters. A malformed
//!    key, or several `Idempotency-Key` field lines, is a `400`.
//! 3. The storage key is SHA-256 over the **scope** (whose request it is, from a
//!    [`ScopeExtractor`]), the method, the path and the key. See [`scope`] for why keys
//!    must be scoped: unscoped keys let one client read another's responses.
//! 4. The body is read into memory up to a cap (`413` above it, checked against the size
//!    hint first, never buffered beyond the cap) while the **fingerprint** is computed:
//!    SHA-256 over method, path, query, selected headers and body.
//! 5. The key is **claimed** in one atomic store operation: an in-flight record with a
//!    lease and a fencing token. If the key is already taken:
//!    - same fingerprint, completed: the stored response is replayed;
//!    - different fingerprint: `422` ("Idempotency-Key is already used");
//!    - same fingerprint, in flight: `409` with `Retry-After`, or, with
//!      [`wait_for_in_flight`](IdempotencyLayerBuilder::wait_for_in_flight), a bounded wait
//!      for the first request's result.
//! 6. The handler runs. Its response is **stored** if the [`StorePolicy`] says so (by
//!    default 2xx, 3xx and 4xx except 408, 409, 425, 429): status, allow-listed headers,
//!    body up to a cap. Otherwise (a 5xx, an inner error, a body over the cap) the claim is
//!    **released**, so a retry runs again.
//! 7. A crash or cancellation never wedges a key: dropping the response future releases
//!    its claim, an owner that never returns loses its claim when the lease expires, and
//!    a stale owner finishing after another request took the key over cannot overwrite it
//!    (its fencing token is older).
//! 8. If the store fails, the layer **fails closed** with `503` and `Retry-After` (or runs
//!    the request unprotected with [`fail_open`](IdempotencyLayerBuilder::fail_open)); both
//!    are traced and counted in [`IdempotencyStats`].
//!
//! The layer's own answers are `application/problem+json` (RFC 9457) with the draft's
//! titles.
//!
//! # Defaults
//!
//! | setting | default | source and reason |
//! |---|---|---|
//! | header | `Idempotency-Key` | the IETF draft |
//! | key syntax | sf-string, bare keys accepted | draft §2.1; Stripe and most clients send bare keys |
//! | key length | 1 to 255 characters | Stripe's limit |
//! | methods | `POST`, `PATCH` | not idempotent per RFC 9110 §9.2.2; the draft's target |
//! | missing key | passed through (`require_key(false)`) | AWS Powertools' `raise_on_no_idempotency_key = False` |
//! | scope | [`Unscoped`] | set one for any multi-client service (draft §5) |
//! | fingerprint | method, path, query, `Content-Type`, body | draft §2.4 (payload checksum) |
//! | request body cap | 1 MiB, `413` above | nginx's `client_max_body_size` |
//! | stored response cap | 1 MiB, larger passed through unstored | typical API responses are KiB; DynamoDB items stop at 400 KB |
//! | stored statuses | 2xx, 3xx, 4xx except 408/409/425/429 | draft §2.6; "try again" statuses and 5xx released, as Powertools |
//! | stored headers | [`DEFAULT_STORED_HEADERS`] (content and location headers) | never `Set-Cookie` or auth headers |
//! | in-flight duplicate | `409`, `Retry-After: 1` | draft §2.7 |
//! | lease | 60 s | Brandur's 90 s lock, shortened; set above your handler timeout |
//! | completed record ttl | 24 h | Stripe |
//! | store failure | fail closed, `503`, `Retry-After: 1` | never run a keyed request unprotected by surprise |
//! | [`MemoryStore`] bounds | 100 000 records, 128 MiB | a day of about one keyed request a second |
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use http::{Request, Response, StatusCode};
//! use http::request::Parts;
//! use http_body_util::BodyExt;
//! use steadfast_idempotency::body::RequestBody;
//! use steadfast_idempotency::{IdempotencyLayer, MemoryStore};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // A handler that creates an order and counts how often it ran.
//! let runs = Arc::new(AtomicUsize::new(0));
//! let counter = runs.clone();
//! let create_order = service_fn(move |req: Request<RequestBody<String>>| {
//!     let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
//!     async move {
//!         let body = req.into_body().collect().await?.to_bytes();
//!         let text = format!("order {n}: {}", String::from_utf8_lossy(&body));
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
//!             Response::builder().status(StatusCode::CREATED).body(text)?,
//!         )
//!     }
//! });
//!
//! #[derive(Clone)]
//! struct Tenant(&'static str);
//!
//! let layer = IdempotencyLayer::builder(MemoryStore::new())
//!     // Keys belong to a tenant, set by an authentication layer in front.
//!     .scope(|parts: &Parts| parts.extensions.get::<Tenant>().map_or("", |t| t.0).to_owned())
//!     .build()?;
//! let stats = layer.stats();
//! let mut service = ServiceBuilder::new().layer(layer).service(create_order);
//!
//! let order = |body: &str| {
//!     let mut req = Request::post("/orders")
//!         .header("idempotency-key", "7c9e6679-7425-40de-944b-e07fc1f90ae7")
//!         .body(body.to_owned())
//!         .unwrap();
//!     req.extensions_mut().insert(Tenant("acme"));
//!     req
//! };
//!
//! let first = service.ready().await?.call(order("2 widgets")).await?;
//! assert_eq!(first.status(), StatusCode::CREATED);
//!
//! // The client retries: the stored response comes back, the handler does not run.
//! let retry = service.ready().await?.call(order("2 widgets")).await?;
//! assert_eq!(retry.status(), StatusCode::CREATED);
//! assert_eq!(retry.headers()["idempotent-replayed"], "true");
//! assert_eq!(retry.into_body().collect().await?.to_bytes(), "order 1: 2 widgets");
//!
//! // The same key with another payload is a client bug: 422.
//! let reused = service.ready().await?.call(order("3 widgets")).await?;
//! assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
//!
//! assert_eq!(runs.load(Ordering::SeqCst), 1);
//! assert_eq!((stats.replays(), stats.mismatches()), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! # Where to put the layer
//!
//! After authentication (the scope needs the principal) and after rate limiting and load
//! shedding (a `429` or `503` from them must not be stored: Stripe records neither), and
//! before the handler. With axum, `Router::layer` works; `route_layer` limits it to
//! matched routes.
//!
//! Set the lease above the handler's timeout: a handler still running when its lease
//! expires can be run again by a retry.
//!
//! # Stores
//!
//! Every store keeps the [`IdempotencyStore`] contract (an atomic claim, increasing
//! fencing tokens, fenced writes, expiry by the store's own clock), checked by one
//! conformance suite run against all three:
//!
//! | store | feature | claim | clock | clean-up |
//! |---|---|---|---|---|
//! | [`MemoryStore`] | (always) | a sharded map, no I/O | tokio's | evicts expired records when room is needed |
//! | `RedisStore` | `redis` | one Lua script (`EVALSHA`): one round trip per operation | Redis's (`PX`, `TIME`) | by Redis (`PX`) |
//! | `PostgresStore` | `postgres` | one `INSERT … ON CONFLICT … RETURNING`: one round trip per operation | the database's `clock_timestamp()` | `reap_expired()`, run it periodically |
//!
//! The network stores encode responses in a documented length-prefixed binary format; a
//! record that does not decode is a `CorruptRecord` error (so a `503`), never a panic.
//! When a store cannot be reached the layer fails closed with `503` (or open, if set) and
//! recovers by itself when the store is back. Each store's docs give its data layout.
//!
//! # Client side
//!
//! [`IdempotencyKeyLayer`] is the client's half: it adds `Idempotency-Key: <random UUID v4>`
//! to each `POST` and `PATCH` request that has no key yet. Put it **outside** (before) the
//! retry layer, so it runs once per request and every retry resends the same key; the key
//! is also what lets `steadfast_retry` retry a `POST` at all. See [`client`] for details.
//!
//! ```
//! use http::Request;
//! use steadfast_idempotency::IdempotencyKeyLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let send = service_fn(|req: Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(req.headers().get("idempotency-key").cloned())
//! });
//! let client = ServiceBuilder::new()
//!     .layer(IdempotencyKeyLayer::new())
//!     // .layer(steadfast_retry::RetryLayer::http().build()?)   // retries go here, inside
//!     .service(send);
//!
//! let key = client.clone().oneshot(Request::post("/orders").body(())?).await?;
//! assert_eq!(key.expect("a POST gets a key").len(), 36); // a hyphenated UUID
//! let key = client.oneshot(Request::get("/orders").body(())?).await?;
//! assert!(key.is_none()); // a GET is idempotent already
//! # Ok(())
//! # }
//! ```
//!
//! # Messages: processing a delivery once
//!
//! Queues and streams deliver at least once. [`Consumer::process_once`] gives a message
//! handler the same claim, replay and fencing over the same stores: the first delivery of a
//! key runs the work and stores its result (encoded by [`Codec`]), duplicates get the
//! stored result without running it, a delivery while another is in flight or with a
//! different payload is refused with a typed [`ProcessError`], and a failure or a dropped
//! future releases the claim so that a redelivery runs again. See [`consumer`].
//!
//! # Feature flags
//!
//! - `metrics`: emit [`IdempotencyStats`]' events as `metrics` counters named
//!   `steadfast_idempotency_<event>_total` with a `name` label.
//! - `redis`: `RedisStore`, records in Redis (the `redis` crate's connection manager).
//! - `postgres`: `PostgresStore`, records in a PostgreSQL table (`tokio-postgres`).
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod body;
pub mod client;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod codec;
pub mod consumer;
mod error;
pub mod future;
mod key;
mod layer;
mod memory;
mod policy;
#[cfg(feature = "postgres")]
mod postgres;
mod problem;
#[cfg(feature = "redis")]
mod redis;
pub mod scope;
mod service;
mod stats;
mod store;

pub use crate::client::{AddIdempotencyKey, IdempotencyKeyLayer, KeyGenerator, UuidV4Keys};
#[cfg(any(feature = "redis", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "redis", feature = "postgres"))))]
pub use crate::codec::CorruptRecord;
pub use crate::consumer::{
    Codec, Consumer, ConsumerBuilder, NotRecorded, ProcessError, Processed, StoredFailure,
    message_fingerprint,
};
pub use crate::error::{CapacityExceeded, InvalidIdempotencyConfig};
pub use crate::key::{IdempotencyKey, KeyError, MAX_KEY_LEN, parse_idempotency_key};
pub use crate::layer::{
    DEFAULT_CONFLICT_RETRY_AFTER, DEFAULT_HEADER, DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BODY,
    DEFAULT_MAX_RESPONSE_BODY, DEFAULT_STORED_HEADERS, DEFAULT_TTL,
    DEFAULT_UNAVAILABLE_RETRY_AFTER, IdempotencyLayer, IdempotencyLayerBuilder,
};
pub use crate::memory::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, DEFAULT_SHARDS, MemoryStore, MemoryStoreBuilder,
};
pub use crate::policy::StorePolicy;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use crate::postgres::PostgresStore;
pub use crate::problem::IDEMPOTENT_REPLAYED;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::redis::RedisStore;
pub use crate::scope::{ScopeExtractor, Unscoped};
pub use crate::service::Idempotency;
pub use crate::stats::IdempotencyStats;
pub use crate::store::{
    BoxStoreFuture, Claim, FencingToken, Fingerprint, IdempotencyStore, Record, StoreKey,
    StoredResponse, WriteOutcome,
};
