//! The [`Idempotency`] service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use steadfast_core::error::BoxError;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::future::ResponseFuture;
use crate::key::parse_key;
use crate::layer::Config;
use crate::problem::Problem;
use crate::scope::{FingerprintHasher, ScopeExtractor, store_key};
use crate::stats::Event;
use crate::store::IdempotencyStore;

/// The service made by [`IdempotencyLayer`](crate::IdempotencyLayer).
///
/// Requests it does not handle (other methods; no key, unless required) go straight to the
/// inner service with their body untouched. A keyed request's response future keeps the
/// inner service that `poll_ready` readied (tower's `mem::replace` pattern) and calls it
/// once the body is read and the key claimed; the layer's own answers (400, 409, 413, 422,
/// 503, replays) never reach the inner service.
///
/// The error type is the inner service's: every refusal is a response, so the layer fits
/// under axum's `Router::layer`, which needs an infallible service.
pub struct Idempotency<S, St, X> {
    inner: S,
    config: Arc<Config<St, X>>,
}

impl<S, St, X> Idempotency<S, St, X> {
    pub(crate) fn new(inner: S, config: Arc<Config<St, X>>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St, X> Clone for Idempotency<S, St, X> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, St, X> fmt::Debug for Idempotency<S, St, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl<S, St, X, B, ResB> Service<Request<B>> for Idempotency<S, St, X>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Clone,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
    St: IdempotencyStore,
    X: ScopeExtractor,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, ResB, St, X>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = &self.config;
        if !config.methods.contains(request.method()) {
            return self.passthrough(request);
        }
        // Taken apart first: the key borrows the header value (no copy) while the scope and
        // the hashes read the head.
        let (parts, body) = request.into_parts();
        let mut values = parts.headers.get_all(&config.header).iter();
        let key = match (values.next(), values.next()) {
            (None, _) if config.require_key => {
                config.stats.record(Event::MissingKey, &config.name);
                return self.refuse(Problem::MissingKey, None);
            }
            (None, _) => return self.passthrough(Request::from_parts(parts, body)),
            (Some(_), Some(_)) => {
                config.stats.record(Event::InvalidKey, &config.name);
                return self.refuse(Problem::MultipleKeys, None);
            }
            (Some(value), None) => match parse_key(value.as_bytes(), config.lenient) {
                Ok(key) => key,
                Err(err) => {
                    config.stats.record(Event::InvalidKey, &config.name);
                    tracing::debug!(
                        target: "steadfast_idempotency",
                        name = %config.name,
                        error = %err,
                        "invalid idempotency key"
                    );
                    return self.refuse(Problem::InvalidKey, Some(&err));
                }
            },
        };
        config.stats.record(Event::Keyed, &config.name);
        if body.size_hint().lower() > config.max_request_body as u64 {
            config.stats.record(Event::BodyTooLarge, &config.name);
            return self.refuse(Problem::BodyTooLarge, None);
        }
        let scope = config.scope.extract(&parts);
        let store_key = store_key(
            &config.prefixes,
            scope.as_ref(),
            &parts.method,
            parts.uri.path(),
            &key,
        );
        let hasher = FingerprintHasher::new(&config.prefixes, &parts, &config.fingerprint_headers);
        // The service the caller made ready serves this request once the key is claimed; a
        // fresh clone stays behind.
        let clone = self.inner.clone();
        let service = mem::replace(&mut self.inner, clone);
        ResponseFuture::keyed(service, parts, body, hasher, store_key, self.config.clone())
    }
}

impl<S, St, X> Idempotency<S, St, X> {
    fn passthrough<B, ResB>(&mut self, request: Request<B>) -> ResponseFuture<S, B, ResB, St, X>
    where
        S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
        St: IdempotencyStore,
    {
        let future = self.inner.call(request.map(RequestBody::passthrough));
        ResponseFuture::passthrough(future)
    }

    fn refuse<B, ResB>(
        &self,
        problem: Problem,
        extra: Option<&dyn fmt::Display>,
    ) -> ResponseFuture<S, B, ResB, St, X>
    where
        S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
        St: IdempotencyStore,
    {
        ResponseFuture::ready(problem.response(None, extra), self.config.clone())
    }
}
