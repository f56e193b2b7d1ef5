//! Shared helpers of the steadfast benchmarks (the benchmarks themselves are in `benches/`;
//! the README has the figures measured).

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower_service::Service;

pub mod two_threads;

/// Drives one call through `service` without a runtime: `poll_ready`, `call`, and one poll
/// of the response future with a no-op waker. Panics unless everything is ready at once,
/// so a row can never silently measure a pending path.
pub fn call_once<S, Req>(service: &mut S, request: Req) -> S::Response
where
    S: Service<Req>,
    S::Error: fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(err)) => panic!("poll_ready failed: {err:?}"),
        Poll::Pending => panic!("the service is not ready at once"),
    }
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(err)) => panic!("the call failed: {err:?}"),
        Poll::Pending => panic!("the response future is not ready on its first poll"),
    }
}
