//! [`LoadShedLayer`]: reject at once when the inner service is not ready.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::error::{BoxError, Overloaded};
use tower_layer::Layer;
use tower_service::Service;

/// Rejects a request at once, with [`Overloaded`], when the inner service is not ready:
/// tower's `LoadShedLayer` with steadfast's error and a retry-after hint.
///
/// Put it in front of a layer that applies backpressure (`poll_ready` is `Pending` while
/// it is full): [`steadfast_limit::AdaptiveConcurrencyLayer`] in its default backpressure
/// mode, or tower's `ConcurrencyLimitLayer`. Requests beyond the limit are then refused in
/// nanoseconds instead of waiting. To let them wait a little, in a queue with
/// controlled delay, priorities and deadlines, use [`ShedLayer`](crate::ShedLayer)
/// instead.
///
/// The layer holds configuration only; it has no shared state.
///
/// Cost: the accept path allocates nothing; a rejection allocates once, the 16-byte box of
/// its [`Overloaded`] (the future's error is a `BoxError`, as in tower).
///
/// [`steadfast_limit::AdaptiveConcurrencyLayer`]: https://docs.rs/steadfast-limit
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadShedLayer {
    retry_after: Option<Duration>,
}

impl LoadShedLayer {
    /// A layer whose rejections carry no retry-after hint.
    pub const fn new() -> Self {
        Self { retry_after: None }
    }

    /// Makes every rejection carry `after` as its retry-after hint (sent as `Retry-After`
    /// or `grpc-retry-pushback-ms` by the response mapping).
    #[must_use]
    pub const fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            is_ready: false,
            retry_after: self.retry_after,
        }
    }
}

/// The service made by [`LoadShedLayer`].
///
/// `poll_ready` polls the inner service and always returns `Ready` (inner readiness
/// errors excepted, which it passes on); `call` forwards the request if the inner service
/// was ready, and otherwise returns a future that fails at once with [`Overloaded`]. The
/// readiness counts once: each `call` needs its own `poll_ready`. A clone does not
/// inherit the readiness of the service it was cloned from.
pub struct LoadShed<S> {
    inner: S,
    is_ready: bool,
    retry_after: Option<Duration>,
}

impl<S> LoadShed<S> {
    /// Wraps `inner`, with no retry-after hint.
    pub const fn new(inner: S) -> Self {
        Self {
            inner,
            is_ready: false,
            retry_after: None,
        }
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

impl<S: Clone> Clone for LoadShed<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            is_ready: false,
            retry_after: self.retry_after,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for LoadShed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadShed")
            .field("inner", &self.inner)
            .field("is_ready", &self.is_ready)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl<S, Req> Service<Req> for LoadShed<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = LoadShedFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.is_ready {
            match self.inner.poll_ready(cx) {
                Poll::Ready(Ok(())) => self.is_ready = true,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                Poll::Pending => {}
            }
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        if std::mem::take(&mut self.is_ready) {
            LoadShedFuture {
                state: State::Called {
                    future: self.inner.call(request),
                },
            }
        } else {
            tracing::trace!(target: "steadfast_shed", "inner service not ready; request shed");
            LoadShedFuture {
                state: State::Overloaded {
                    retry_after: self.retry_after,
                },
            }
        }
    }
}

pin_project! {
    /// Response future of [`LoadShed`]: the inner call, or an immediate [`Overloaded`].
    pub struct LoadShedFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called {
            #[pin]
            future: F,
        },
        Overloaded {
            retry_after: Option<Duration>,
        },
    }
}

impl<F, T, E> Future for LoadShedFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Overloaded { retry_after } => {
                Poll::Ready(Err(Overloaded::from_retry_after(*retry_after).into()))
            }
        }
    }
}

impl<F> fmt::Debug for LoadShedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Overloaded { .. } => "overloaded",
        };
        f.debug_struct("LoadShedFuture")
            .field("state", &state)
            .finish()
    }
}
