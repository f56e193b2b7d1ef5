//! A controllable inner service for testing layers.
//!
//! [`pair`] creates a [`MockService`] (hand it to the layer under test) and a [`MockHandle`]
//! (keep it in the test). Clones of the service share one state, which the handle controls
//! and observes:
//!
//! - **Capacity.** A shared pool of permits, unlimited by default
//!   ([`set_capacity`](MockHandle::set_capacity)). Like tower's `ConcurrencyLimit`,
//!   `poll_ready` reserves one permit for the clone that polled, `call` moves it into the
//!   response future, and the permit returns to the pool when the response future completes
//!   or is dropped, or when a clone that reserved a permit is dropped without calling. A
//!   `poll_ready` that finds no permit returns `Pending` and is woken when a permit returns
//!   or the capacity is raised.
//! - **Readiness errors.** [`fail_ready_with`](MockHandle::fail_ready_with) makes the next
//!   `poll_ready` fail.
//! - **Responses.** Either computed by a closure
//!   ([`respond_with`](MockHandle::respond_with)), or answered one by one by the test
//!   ([`respond_manually`](MockHandle::respond_manually), then
//!   [`next_request`](MockHandle::next_request) and a [`Responder`]). With neither, every
//!   call fails with an error saying so.
//! - **Counters.** Calls made, response futures dropped before completing, service clones
//!   dropped.
//!
//! # Example
//!
//! ```
//! use steadfast_test_support::mock;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (svc, handle) = mock::pair::<&'static str, usize>();
//! handle.respond_manually();
//!
//! let call = tokio::spawn(svc.oneshot("hello"));
//! let (request, responder) = handle.next_request().await;
//! assert_eq!(handle.in_flight(), 1);
//! responder.ok(request.len());
//!
//! assert_eq!(call.await.unwrap().unwrap(), 5);
//! assert_eq!(handle.in_flight(), 0);
//! assert_eq!(handle.calls(), 1);
//! # }
//! ```

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod counters;
mod future;
mod handle;
mod permits;
mod responses;
mod service;

use counters::Counters;
pub use future::ResponseFuture;
pub use handle::MockHandle;
use permits::Pool;
pub use responses::Responder;
use responses::Responses;
pub use service::MockService;

/// The capacity meaning "no limit" (the default): `poll_ready` never waits for a permit.
pub const UNLIMITED: usize = usize::MAX;

/// A new mock service with unlimited capacity and no responder, and the handle that
/// controls it.
pub fn pair<Req, Res>() -> (MockService<Req, Res>, MockHandle<Req, Res>) {
    let shared = Arc::new(Shared {
        pool: Pool::new(UNLIMITED),
        counters: Arc::new(Counters::default()),
        responses: Responses::new(),
    });
    (
        MockService::new(Arc::clone(&shared)),
        MockHandle::new(shared),
    )
}

/// What every clone of one mock service and its handle share.
#[derive(Debug)]
struct Shared<Req, Res> {
    pool: Arc<Pool>,
    counters: Arc<Counters>,
    responses: Responses<Req, Res>,
}

/// Locks `mutex`, ignoring poisoning: a panicking test must not cascade into other panics.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
