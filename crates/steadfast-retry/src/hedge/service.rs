//! The [`Hedge`] service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use steadfast_core::classify::Classify;
use steadfast_core::error::BoxError;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Config;
use super::stats::Event;

/// The service made by [`HedgeLayer`](super::HedgeLayer).
///
/// Requests must be `Clone`: each attempt gets its own copy. Each call keeps its own clone
/// of the inner service and drives that clone's `poll_ready` before every hedge (tower's
/// `mem::replace` pattern: the clone the caller made ready serves the first attempt and
/// stays with the call, a fresh clone stays here).
///
/// # Clone
///
/// A clone wraps a clone of the inner service (which, by the tower contract, holds no
/// reservation of its own until polled ready) and shares the layer's budget, histogram and
/// stats.
pub struct Hedge<S, C> {
    inner: S,
    config: Arc<Config<C>>,
}

impl<S, C> Hedge<S, C> {
    pub(super) fn new(inner: S, config: Arc<Config<C>>) -> Self {
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

impl<S: Clone, C> Clone for Hedge<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Hedge<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for Hedge<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// Sends the first attempt and returns the future that hedges it.
    fn call(&mut self, request: Req) -> Self::Future {
        let config = &self.config;
        config.stats.record(Event::Request, &config.name);
        config.budget.on_request();
        // Keep the request for the hedges only if there can be any.
        let (first, kept) = if config.max_attempts > 1 {
            (request.clone(), Some(request))
        } else {
            (request, None)
        };
        // The service the caller made ready serves this call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        let future = service.call(first);
        ResponseFuture::new(service, future, kept, self.config.clone())
    }
}
