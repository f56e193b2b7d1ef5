//! The test's side of a mock service.

use std::fmt;
use std::sync::Arc;

use steadfast_core::error::BoxError;

use super::Shared;
use super::responses::Responder;

/// Controls and observes a [`MockService`](super::MockService) and all its clones; create
/// it with [`pair`](super::pair).
///
/// Cloning the handle gives another handle to the same mock.
pub struct MockHandle<Req, Res> {
    shared: Arc<Shared<Req, Res>>,
}

impl<Req, Res> MockHandle<Req, Res> {
    pub(super) fn new(shared: Arc<Shared<Req, Res>>) -> Self {
        Self { shared }
    }

    // Capacity.

    /// Sets the number of permits ([`UNLIMITED`](super::UNLIMITED) for no limit). Raising it
    /// wakes the clones waiting in `poll_ready`; lowering it below the permits in use takes
    /// none away, it only stops new reservations.
    pub fn set_capacity(&self, capacity: usize) {
        self.shared.pool.set_capacity(capacity);
    }

    /// The number of permits ([`UNLIMITED`](super::UNLIMITED) by default).
    pub fn capacity(&self) -> usize {
        self.shared.pool.capacity()
    }

    /// Permits neither reserved nor in flight: `capacity - reserved - in_flight`, at least
    /// zero. Back to [`capacity`](Self::capacity) when nothing holds a permit.
    pub fn available_permits(&self) -> usize {
        self.shared.pool.available()
    }

    /// Permits held by clones that polled ready and have not called yet.
    pub fn reserved(&self) -> usize {
        self.shared.pool.reserved()
    }

    /// Response futures that are alive and have not completed (each holds a permit).
    pub fn in_flight(&self) -> usize {
        self.shared.pool.in_flight()
    }

    // Readiness.

    /// Makes the next `poll_ready`, by any clone, return `Err(error)` (and release that
    /// clone's reservation, if it held one). Replaces an error not yet returned. Wakes the
    /// clones waiting in `poll_ready`.
    pub fn fail_ready_with(&self, error: impl Into<BoxError>) {
        self.shared.pool.fail_next_ready(error.into());
    }

    // Responses.

    /// Answers every call with `respond(&request)`, computed when `call` is made; the
    /// response future completes on its first poll.
    pub fn respond_with<F>(&self, respond: F)
    where
        F: Fn(&Req) -> Result<Res, BoxError> + Send + Sync + 'static,
    {
        self.shared.responses.respond_with(Arc::new(respond));
    }

    /// Makes every later call wait for the test: take it with
    /// [`next_request`](Self::next_request) or [`try_next_request`](Self::try_next_request)
    /// and answer it with the [`Responder`]. Until then its response future is pending.
    pub fn respond_manually(&self) {
        self.shared.responses.respond_manually();
    }

    /// The next call waiting for an answer in manual mode, waiting for one if there is none.
    ///
    /// Waits forever if no call comes.
    pub async fn next_request(&self) -> (Req, Responder<Res>) {
        self.shared.responses.next().await
    }

    /// The next call waiting for an answer in manual mode, if there is one.
    pub fn try_next_request(&self) -> Option<(Req, Responder<Res>)> {
        self.shared.responses.try_next()
    }

    /// Calls made in manual mode and not yet taken by
    /// [`next_request`](Self::next_request).
    pub fn waiting_requests(&self) -> usize {
        self.shared.responses.waiting()
    }

    // Counters.

    /// Calls made, over all clones.
    pub fn calls(&self) -> usize {
        self.shared.counters.calls()
    }

    /// Response futures dropped before they completed.
    pub fn cancelled(&self) -> usize {
        self.shared.counters.cancelled()
    }

    /// Service clones dropped (including the original).
    pub fn services_dropped(&self) -> usize {
        self.shared.counters.services_dropped()
    }
}

impl<Req, Res> Clone for MockHandle<Req, Res> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

impl<Req, Res> fmt::Debug for MockHandle<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockHandle")
            .field("capacity", &self.capacity())
            .field("reserved", &self.reserved())
            .field("in_flight", &self.in_flight())
            .field("calls", &self.calls())
            .field("cancelled", &self.cancelled())
            .field("services_dropped", &self.services_dropped())
            .field("responses", &self.shared.responses)
            .finish()
    }
}
