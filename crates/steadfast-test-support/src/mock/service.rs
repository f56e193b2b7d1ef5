//! The mock service itself.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use steadfast_core::error::BoxError;
use tower_service::Service;

use super::Shared;
use super::future::ResponseFuture;
use super::permits::Permit;

/// A controllable inner service; create it with [`pair`](super::pair) and control it with
/// the [`MockHandle`](super::MockHandle).
///
/// Each clone reserves its own permit in `poll_ready` (a clone never shares or copies the
/// reservation of the service it was cloned from). See the [module docs](super) for the
/// permit rules.
pub struct MockService<Req, Res> {
    shared: Arc<Shared<Req, Res>>,
    /// This clone's key for its waker in the pool.
    id: u64,
    /// Reserved by `poll_ready`, moved into the response future by `call`.
    permit: Option<Permit>,
}

impl<Req, Res> MockService<Req, Res> {
    pub(super) fn new(shared: Arc<Shared<Req, Res>>) -> Self {
        let id = shared.pool.register();
        Self {
            shared,
            id,
            permit: None,
        }
    }
}

impl<Req, Res> Service<Req> for MockService<Req, Res> {
    type Response = Res;
    type Error = BoxError;
    type Future = ResponseFuture<Res>;

    /// Reserves a permit for this clone, or waits for one. Fails once after
    /// [`fail_ready_with`](super::MockHandle::fail_ready_with), releasing any reservation.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self
            .shared
            .pool
            .poll_acquire(self.id, self.permit.is_some(), cx)
        {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(acquired)) => {
                if acquired.is_some() {
                    self.permit = acquired;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => {
                self.permit = None;
                Poll::Ready(Err(error))
            }
        }
    }

    /// Moves this clone's permit into the response future and answers the request (see
    /// [`respond_with`](super::MockHandle::respond_with) and
    /// [`respond_manually`](super::MockHandle::respond_manually)).
    ///
    /// # Panics
    ///
    /// If this clone holds no permit: `poll_ready` did not return `Ready(Ok(()))` since the
    /// last call. tower's `Service` contract allows a service to panic then.
    fn call(&mut self, request: Req) -> ResponseFuture<Res> {
        let Some(mut permit) = self.permit.take() else {
            panic!(
                "MockService::call without a reserved permit: tower's Service contract requires \
                 poll_ready to return Ready(Ok(())) before each call"
            );
        };
        permit.start_call();
        self.shared.counters.record_call();
        let reply = self.shared.responses.dispatch(request);
        ResponseFuture::new(reply, permit, Arc::clone(&self.shared.counters))
    }
}

impl<Req, Res> Clone for MockService<Req, Res> {
    /// A new clone sharing the mock's state but holding no permit.
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

impl<Req, Res> Drop for MockService<Req, Res> {
    fn drop(&mut self) {
        self.shared.pool.deregister(self.id);
        self.shared.counters.record_service_dropped();
        // A reserved permit returns to the pool when the field drops after this.
    }
}

impl<Req, Res> fmt::Debug for MockService<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockService")
            .field("id", &self.id)
            .field("reserved", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
