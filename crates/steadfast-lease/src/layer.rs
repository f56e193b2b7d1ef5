//! [`LeaderOnlyLayer`]: serve only while this replica holds the lease.

use std::fmt;
use std::marker::PhantomData;

use http::HeaderName;
use tokio::sync::watch;
use tower_layer::Layer;

use crate::error::DEFAULT_LEADER_HEADER;
use crate::service::LeaderOnly;
use crate::state::LeaderState;

/// How a [`LeaderOnly`] service built by [`LeaderOnlyLayer::http`] refuses a request: with
/// an HTTP `503` response naming the leader.
#[derive(Debug, Clone, Copy, Default)]
pub struct RejectHttp {
    _p: (),
}

/// How a [`LeaderOnly`] service built by [`LeaderOnlyLayer::error`] refuses a request: with
/// a [`NotLeader`](crate::NotLeader) error.
#[derive(Debug, Clone, Copy, Default)]
pub struct RejectError {
    _p: (),
}

/// A tower layer that lets requests through only while this replica holds the lease, as
/// published by a [`Singleton`](crate::Singleton) ([`Singleton::state`](crate::Singleton::state)).
///
/// For endpoints that must run on one replica at a time: cron triggers, compaction,
/// rebalancing, anything a [`Singleton`](crate::Singleton) job also drives. On other
/// replicas the request is refused without reaching the inner service:
///
/// - [`LeaderOnlyLayer::http`]: `503 Service Unavailable` with `x-leader: <holder id>` when
///   the leader is known (the response body is `B::default()`); the error type is the
///   inner service's.
/// - [`LeaderOnlyLayer::error`]: the error [`NotLeader`](crate::NotLeader) (downcast it
///   from the `BoxError`), for any request type, e.g. gRPC with
///   [`NotLeader::to_grpc_response`](crate::NotLeader::to_grpc_response).
///
/// Leadership is decided twice: in `poll_ready` (a follower answers `Ready` at once, without
/// reserving the inner service; a leader waits for the inner service) and again in `call`,
/// against the state's deadline at that instant, so a request is never passed on after the
/// deadline even if the runner's task has stalled and not yet published the loss. Checking
/// leadership at the door narrows but does not remove the race with a lease lost mid-request:
/// handlers that write should still pass the token to a [`FenceGate`](crate::FenceGate).
///
/// # Clone
///
/// The layer holds a `watch::Receiver`; clones and services all read the same channel.
///
/// # Example
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use steadfast_lease::{LeaderOnlyLayer, LeaderState, LeaseHolder, FencingToken};
/// use tokio::sync::watch;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// // In a real program: `singleton.state()`.
/// let (state, receiver) = watch::channel(LeaderState::Following {
///     leader: Some(LeaseHolder::new("replica-b", FencingToken::new(4))),
/// });
/// let svc = ServiceBuilder::new()
///     .layer(LeaderOnlyLayer::http(receiver))
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::from("compacted")))
///     }));
///
/// let response = svc.oneshot(Request::new(String::new())).await?;
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(response.headers()["x-leader"], "replica-b");
/// # drop(state);
/// # Ok(())
/// # }
/// ```
pub struct LeaderOnlyLayer<M = RejectHttp> {
    state: watch::Receiver<LeaderState>,
    header: HeaderName,
    _mode: PhantomData<fn() -> M>,
}

impl LeaderOnlyLayer<RejectHttp> {
    /// A layer for `http::Request` services, refusing with `503` and `x-leader`.
    pub fn http(state: watch::Receiver<LeaderState>) -> Self {
        Self {
            state,
            header: DEFAULT_LEADER_HEADER,
            _mode: PhantomData,
        }
    }

    /// The header that names the leader on a `503` (default `x-leader`).
    #[must_use]
    pub fn leader_header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }
}

impl LeaderOnlyLayer<RejectError> {
    /// A layer for any request type, refusing with a [`NotLeader`](crate::NotLeader) error.
    pub fn error(state: watch::Receiver<LeaderState>) -> Self {
        Self {
            state,
            header: DEFAULT_LEADER_HEADER,
            _mode: PhantomData,
        }
    }
}

impl<S, M> Layer<S> for LeaderOnlyLayer<M> {
    type Service = LeaderOnly<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        LeaderOnly::new(inner, self.state.clone(), self.header.clone())
    }
}

impl<M> Clone for LeaderOnlyLayer<M> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            header: self.header.clone(),
            _mode: PhantomData,
        }
    }
}

impl<M> fmt::Debug for LeaderOnlyLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderOnlyLayer")
            .field("state", &*self.state.borrow())
            .field("header", &self.header)
            .field("mode", &std::any::type_name::<M>())
            .finish()
    }
}
