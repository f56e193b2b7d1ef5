//! The [`Retry`] service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use steadfast_core::classify::Classify;
use steadfast_core::error::BoxError;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::policy::RetryPredicate;
use crate::replay::ReplayStrategy;
use crate::stats::Event;

/// The service made by [`RetryLayer`](crate::RetryLayer).
///
/// Each call keeps its own clone of the inner service and drives that clone's
/// `poll_ready` before every retry (tower's `mem::replace` pattern: the clone made ready by
/// the caller serves the first attempt and stays with the call).
pub struct Retry<S, C, P, R> {
    inner: S,
    config: Arc<Config<C, P, R>>,
}

impl<S, C, P, R> Retry<S, C, P, R> {
    pub(crate) fn new(inner: S, config: Arc<Config<C, P, R>>) -> Self {
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

impl<S: Clone, C, P, R> Clone for Retry<S, C, P, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, C, P, R> fmt::Debug for Retry<S, C, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl<S, C, P, R, Req> Service<Req> for Retry<S, C, P, R>
where
    R: ReplayStrategy<Req>,
    P: RetryPredicate<Req>,
    S: Service<R::Attempt> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C, P, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let config = &self.config;
        config.stats.record(Event::Request, &config.name);
        config.budget.on_request();
        let eligible = config.max_attempts > 1 && config.predicate.may_retry(&request);
        let (attempt, saved) = config.strategy.first(request, eligible);
        // The service the caller made ready serves this call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        let future = service.call(attempt);
        ResponseFuture::new(service, future, eligible, saved, self.config.clone())
    }
}
