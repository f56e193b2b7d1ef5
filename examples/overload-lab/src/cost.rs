//! The cost of a rejection: the simulator rejects for free, a real server does not.
//!
//! [`RejectionCostLayer`] counts the overload rejections that come out of the server stack;
//! [`charge`] spawns a task that takes that work out of the simulated backend's capacity.
//! Each rejection costs `cost` of worker time; every 20 ms tick the debt is paid by taking
//! whole workers out of service for the tick ([`Backend::set_workers`]), never the last one.
//! A removed worker finishes the request it is serving first, so the charge is approximate
//! to a request's length; the report's worker gauge shows what was really taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::error::BoxError;
use steadfast_sim::{Backend, is_overload};
use tower::{Layer, Service};

/// How often the debt is paid: one mean service time of the lab's backend.
pub const TICK: Duration = Duration::from_millis(20);

/// Counts the overload rejections of the service it wraps. Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct RejectionCostLayer {
    rejected: Arc<AtomicU64>,
}

impl RejectionCostLayer {
    /// A layer with a count of zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rejections counted so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for RejectionCostLayer {
    type Service = RejectionCounted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RejectionCounted {
            inner,
            rejected: Arc::clone(&self.rejected),
        }
    }
}

/// The service of [`RejectionCostLayer`].
#[derive(Debug, Clone)]
pub struct RejectionCounted<S> {
    inner: S,
    rejected: Arc<AtomicU64>,
}

impl<S, Req> Service<Req> for RejectionCounted<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = CountedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        CountedFuture {
            inner: self.inner.call(request),
            rejected: Arc::clone(&self.rejected),
        }
    }
}

pin_project! {
    /// The response future of [`RejectionCounted`]: counts an overload error.
    #[derive(Debug)]
    pub struct CountedFuture<F> {
        #[pin]
        inner: F,
        rejected: Arc<AtomicU64>,
    }
}

impl<F, T, E> std::future::Future for CountedFuture<F>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx)).map_err(Into::into);
        if let Err(e) = &result
            && is_overload(e.as_ref())
        {
            this.rejected.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(result)
    }
}

/// Spawns the task that charges `cost` of worker time per rejection counted by `layer`
/// to `backend`, whose full strength is `workers`. Must be called inside the simulation's
/// runtime (in the closure that builds the stack); the task ends with the runtime.
pub fn charge(backend: Backend, workers: usize, cost: Duration, layer: &RejectionCostLayer) {
    let rejected = Arc::clone(&layer.rejected);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        let (mut debt, mut seen) = (Duration::ZERO, 0u64);
        loop {
            interval.tick().await;
            let now = rejected.load(Ordering::Relaxed);
            debt += cost.saturating_mul(u32::try_from(now - seen).unwrap_or(u32::MAX));
            seen = now;
            let owed = usize::try_from(debt.as_nanos() / TICK.as_nanos()).unwrap_or(usize::MAX);
            let taken = owed.min(workers.saturating_sub(1));
            debt = debt.saturating_sub(TICK.saturating_mul(u32::try_from(taken).unwrap_or(0)));
            backend.set_workers(workers - taken);
        }
    });
}
