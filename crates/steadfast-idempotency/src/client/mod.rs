//! The client side: [`IdempotencyKeyLayer`] gives every non-idempotent request a key, so a
//! retry layer may resend it and the server can deduplicate the resends.
//!
//! # Order: the key layer goes outside the retry layer
//!
//! The key must be chosen **once per logical request** and sent unchanged on every attempt:
//! a fresh key per attempt would make each retry a new operation to the server, the double
//! charge the key exists to prevent. Tower applies the layers of a
//! [`ServiceBuilder`](https://docs.rs/tower/latest/tower/struct.ServiceBuilder.html) from
//! the top down to the request, so list [`IdempotencyKeyLayer`] *before* the retry layer.
//! It then runs once, the retry layer keeps the keyed request and replays it, and every
//! attempt carries the same key. It also lets `steadfast_retry`'s default predicate, which
//! retries a `POST` or `PATCH` only when it carries `Idempotency-Key`, retry the request at
//! all.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use steadfast_idempotency::IdempotencyKeyLayer;
//! use steadfast_retry::RetryLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let transport = service_fn(|req: Request<_>| async move {
//! #     let _: &Request<steadfast_retry::body::ReplayBody<Full<Bytes>>> = &req;
//! #     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//! # });
//! let client = ServiceBuilder::new()
//!     .layer(IdempotencyKeyLayer::new()) // outer: runs once, picks the key
//!     .layer(RetryLayer::http().build()?) // inner: resends the keyed request
//!     .service(transport);
//!
//! let req = Request::post("https://api.example.com/payments")
//!     .body(Full::new(Bytes::from_static(b"amount=100")))?;
//! let res = client.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! Put the other way round (retry outside, keys inside), the retry layer would see an
//! unkeyed `POST`, refuse to retry it, and even a retried request would get a new key per
//! attempt.
//!
//! # Keys
//!
//! By default a key is a random (version 4) UUID from the operating system's CSPRNG
//! ([`UuidV4Keys`]), sent bare (`Idempotency-Key: 8e03978e-40d5-43e8-bc93-6894a57f9324`),
//! as Stripe and most servers expect; this crate's server side accepts it in its default
//! lenient mode. Inject another [`KeyGenerator`] (any `Fn() -> String`) with
//! [`IdempotencyKeyLayer::key_generator`], for example to make keys predictable in tests.
//!
//! A request that already carries the header keeps its key: an application that persists
//! its own key (to retry across process restarts, say) sets it itself.

mod generator;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Method, Request};
use tower_layer::Layer;
use tower_service::Service;

pub use self::generator::{KeyGenerator, UuidV4Keys};
use crate::layer::DEFAULT_HEADER;

/// What an [`IdempotencyKeyLayer`] and its services share.
#[derive(Clone)]
struct Config {
    header: HeaderName,
    methods: Vec<Method>,
    generator: Arc<dyn KeyGenerator>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyKeyLayer")
            .field("header", &self.header)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// A client-side tower layer that adds an idempotency key to each request with a
/// non-idempotent method (by default `POST` and `PATCH`) that does not carry one yet.
///
/// Place it **outside** (before, in a `ServiceBuilder`) the retry layer so that every
/// retry of a request reuses its key: see the [module docs](self).
///
/// | setting | default |
/// |---|---|
/// | [`header`](Self::header) | [`DEFAULT_HEADER`], `Idempotency-Key` |
/// | [`methods`](Self::methods) | `POST`, `PATCH` (not idempotent per RFC 9110 §9.2.2) |
/// | [`key_generator`](Self::key_generator) | [`UuidV4Keys`] |
///
/// The layer holds only this configuration; its service, [`AddIdempotencyKey`], edits the
/// request's headers and returns the inner service's future unchanged.
#[derive(Clone)]
pub struct IdempotencyKeyLayer {
    config: Arc<Config>,
}

impl fmt::Debug for IdempotencyKeyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl Default for IdempotencyKeyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl IdempotencyKeyLayer {
    /// A layer with the default header, methods and key generator.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                header: DEFAULT_HEADER,
                methods: vec![Method::POST, Method::PATCH],
                generator: Arc::new(UuidV4Keys),
            }),
        }
    }

    /// The header to add (default [`DEFAULT_HEADER`], `Idempotency-Key`).
    ///
    /// `steadfast_retry`'s default predicate looks for `Idempotency-Key` only: with another
    /// header, tell the retry layer with its `retry_if`.
    pub fn header(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.config).header = header;
        self
    }

    /// The methods whose requests get a key (default `POST` and `PATCH`). Requests with
    /// other methods pass through untouched.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        Arc::make_mut(&mut self.config).methods = methods.into_iter().collect();
        self
    }

    /// Where keys come from (default [`UuidV4Keys`]). Any `Fn() -> String + Send + Sync`
    /// works. A key that is not a valid header value is not sent: the request goes out
    /// without one (and a warning is traced), so it is not retried as if it were keyed.
    pub fn key_generator(mut self, generator: impl KeyGenerator) -> Self {
        Arc::make_mut(&mut self.config).generator = Arc::new(generator);
        self
    }
}

impl<S> Layer<S> for IdempotencyKeyLayer {
    type Service = AddIdempotencyKey<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddIdempotencyKey {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`IdempotencyKeyLayer`]: adds a key to the request, then calls the
/// inner service. Its future is the inner service's.
#[derive(Clone)]
pub struct AddIdempotencyKey<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> AddIdempotencyKey<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for AddIdempotencyKey<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddIdempotencyKey")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for AddIdempotencyKey<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let config = &*self.config;
        if config.methods.contains(request.method())
            && !request.headers().contains_key(&config.header)
        {
            match HeaderValue::try_from(config.generator.generate()) {
                Ok(key) => {
                    request.headers_mut().insert(config.header.clone(), key);
                }
                Err(_) => tracing::warn!(
                    header = %config.header,
                    "the key generator returned an invalid header value; request sent without a key"
                ),
            }
        }
        self.inner.call(request)
    }
}
