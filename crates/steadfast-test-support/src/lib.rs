//! Shared test support for the steadfast crates.
//!
//! Every steadfast crate uses this crate as a dev-dependency; it is not published.
//!
//! - [`trace_init`]: show `tracing` output of the current test (`RUST_LOG`, else `debug`
//!   for `steadfast*` targets).
//! - [`ManualClock`]: a wall clock that only moves when told to.
//! - [`mock`]: a controllable inner service ([`MockService`](mock::MockService)) with a
//!   permit pool, scripted readiness errors and responses, and a
//!   [`MockHandle`](mock::MockHandle) to control and observe it.
//! - [`contract`]: a reusable check that a layer keeps the tower `Service` contract
//!   (readiness, reservations, cancellation, `Clone`).
//! - [`CountingWaker`] and [`assert_send`]: for driving futures by hand and checking `Send`.
//! - [`backend`]: real backends: the variables naming shared servers (skipped, or failing
//!   under `CI=true`, when unset), free loopback ports and a private `redis-server` child.
//!
//! # Example
//!
//! ```
//! use std::task::Poll;
//! use steadfast_test_support::{CountingWaker, mock};
//! use tower_service::Service;
//!
//! let (mut svc, handle) = mock::pair::<u32, u32>();
//! handle.respond_with(|req: &u32| Ok(req * 2));
//! handle.set_capacity(1);
//!
//! let waker = CountingWaker::new();
//! assert!(svc.poll_ready(&mut waker.context()).is_ready());
//! assert_eq!(handle.reserved(), 1);
//!
//! // A clone does not share the reservation: it waits for a permit.
//! let mut other = svc.clone();
//! assert!(other.poll_ready(&mut waker.context()).is_pending());
//!
//! let mut response = svc.call(21);
//! assert_eq!(handle.in_flight(), 1);
//! assert!(matches!(
//!     std::pin::Pin::new(&mut response).poll(&mut waker.context()),
//!     Poll::Ready(Ok(42))
//! ));
//! // The completed call returned its permit, which woke the waiting clone.
//! assert_eq!(waker.wakes(), 1);
//! assert!(other.poll_ready(&mut waker.context()).is_ready());
//! ```
//!
//! Checking a layer against the tower `Service` contract:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let _t = steadfast_test_support::trace_init();
//! steadfast_test_support::contract::check_layer(tower_layer::Identity::new()).await;
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

pub mod backend;
pub mod contract;
pub mod mock;
mod send;
mod trace;
mod waker;

pub use send::assert_send;
/// The manual wall clock: a [`WallClock`](steadfast_core::clock::WallClock) that only moves
/// when a test moves it.
pub use steadfast_core::clock::ManualClock;
pub use trace::trace_init;
pub use waker::CountingWaker;
