//! Errors of the lease crate.
//!
//! - [`StoreError`]: the store could not be reached or failed; the lease's fate is unknown.
//! - [`LeaseLost`]: a compare-and-set failed; the lease is no longer this holder's.
//! - [`LeaseError`]: either of the two, returned by renew and release.
//! - [`Fenced`]: a [`FenceGate`](crate::FenceGate) refused a stale token.
//! - [`NotLeader`]: a [`LeaderOnly`](crate::LeaderOnly) service refused a request because
//!   this replica does not hold the lease.
//! - [`Stopped`]: a [`Singleton`](crate::Singleton) was shut down before a job finished.
//! - [`InvalidLeaseConfig`]: a builder was given settings that cannot work.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Response, StatusCode};
use steadfast_core::error::{BoxError, grpc_status_response};

use crate::lease::{FencingToken, LeaseHolder};

/// The lease store could not be reached, timed out, or failed.
///
/// The lease's fate is **unknown**: a renewal may have reached the store before the
/// connection broke. A holder keeps acting on its own deadline (computed from when its last
/// successful renewal was sent) and retries until then; a contender retries later.
#[derive(Debug, Clone)]
pub struct StoreError {
    source: Arc<dyn Error + Send + Sync + 'static>,
}

impl StoreError {
    /// A store error caused by `source` (a connection error, a timeout, a server error).
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: Arc::from(source.into()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease store unavailable: {}", self.source)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// A compare-and-set on the lease failed: it expired, was released, or another holder
/// took it. The holder must stop acting on it **now**.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLost {
    name: Arc<str>,
    token: FencingToken,
}

impl LeaseLost {
    /// The lease `name` with `token` is no longer its holder's. For
    /// [`LeaseStore`](crate::LeaseStore) implementations.
    pub fn new(name: impl Into<Arc<str>>, token: FencingToken) -> Self {
        Self {
            name: name.into(),
            token,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token of the term that was lost.
    pub fn token(&self) -> FencingToken {
        self.token
    }
}

impl fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lease {:?} with token {} was lost",
            self.name, self.token
        )
    }
}

impl Error for LeaseLost {}

/// Why a renewal or release did not succeed.
#[derive(Debug, Clone)]
pub enum LeaseError {
    /// The compare-and-set failed: the lease is no longer this holder's. Stop at once.
    Lost(LeaseLost),
    /// The store did not answer or failed; the lease may or may not still be held.
    Store(StoreError),
}

impl LeaseError {
    /// Whether the lease is known to be lost (as opposed to unknown).
    pub fn is_lost(&self) -> bool {
        matches!(self, Self::Lost(_))
    }
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost(lost) => fmt::Display::fmt(lost, f),
            Self::Store(err) => fmt::Display::fmt(err, f),
        }
    }
}

impl Error for LeaseError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Lost(lost) => Some(lost),
            Self::Store(err) => Some(err),
        }
    }
}

impl From<LeaseLost> for LeaseError {
    fn from(lost: LeaseLost) -> Self {
        Self::Lost(lost)
    }
}

impl From<StoreError> for LeaseError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// A [`FenceGate`](crate::FenceGate) refused a write: its token is older than one the
/// resource already accepted, or equal to it but from another holder.
///
/// The writer's lease is gone (or was never exclusive); it must not retry the write with
/// the same token. Maps to HTTP `409 Conflict` / gRPC `FAILED_PRECONDITION` (9) when the
/// gate sits behind an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    pub(crate) resource: Arc<str>,
    pub(crate) presented: FencingToken,
    pub(crate) holder: Arc<str>,
    pub(crate) latest: FencingToken,
    pub(crate) latest_holder: Arc<str>,
}

impl Fenced {
    /// The resource written to.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The token the refused write carried.
    pub fn presented(&self) -> FencingToken {
        self.presented
    }

    /// The holder the refused write came from.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The highest token the resource has accepted.
    pub fn latest(&self) -> FencingToken {
        self.latest
    }

    /// The holder that token belongs to.
    pub fn latest_holder(&self) -> &str {
        &self.latest_holder
    }
}

impl fmt::Display for Fenced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write to {:?} fenced off: token {} from {:?}, but the resource has seen token {} from {:?}",
            self.resource, self.presented, self.holder, self.latest, self.latest_holder
        )
    }
}

impl Error for Fenced {}

/// The header naming the current leader on a `503` from
/// [`LeaderOnlyLayer::http`](crate::LeaderOnlyLayer::http): `x-leader`.
pub const DEFAULT_LEADER_HEADER: HeaderName = HeaderName::from_static("x-leader");

/// The gRPC status code `UNAVAILABLE` (14).
pub const GRPC_UNAVAILABLE: u16 = 14;

/// This replica does not hold the lease, so it does not serve the request; it did no work.
///
/// The request is safe to send to the leader, which [`leader`](Self::leader) names when
/// this replica knows it.
///
/// | protocol | maps to |
/// |---|---|
/// | HTTP | `503 Service Unavailable`, with `x-leader: <holder id>` when the leader is known |
/// | gRPC | `UNAVAILABLE` (14), as etcd answers "no leader"; `x-leader` metadata when known |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLeader {
    leader: Option<LeaseHolder>,
}

impl NotLeader {
    pub(crate) fn new(leader: Option<LeaseHolder>) -> Self {
        Self { leader }
    }

    /// The current leader, when this replica has seen one.
    pub fn leader(&self) -> Option<&LeaseHolder> {
        self.leader.as_ref()
    }

    /// The HTTP status this error maps to: `503 Service Unavailable`.
    pub const fn http_status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// An HTTP `503` with an empty body and, when the leader is known and its id is a valid
    /// header value, `x-leader: <id>`.
    pub fn to_http_response<B: Default>(&self) -> Response<B> {
        self.http_response_with(&DEFAULT_LEADER_HEADER)
    }

    pub(crate) fn http_response_with<B: Default>(&self, name: &HeaderName) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.http_status();
        if let Some(value) = self.leader_header_value() {
            response.headers_mut().insert(name.clone(), value);
        }
        response
    }

    /// A gRPC "trailers-only" response: HTTP 200 with `grpc-status: 14` (`UNAVAILABLE`), a
    /// `grpc-message`, and `x-leader` when the leader is known.
    pub fn to_grpc_response<B: Default>(&self) -> Response<B> {
        let mut response = grpc_status_response(GRPC_UNAVAILABLE, "not%20the%20leader");
        if let Some(value) = self.leader_header_value() {
            response.headers_mut().insert(DEFAULT_LEADER_HEADER, value);
        }
        response
    }

    fn leader_header_value(&self) -> Option<HeaderValue> {
        self.leader
            .as_ref()
            .and_then(|leader| HeaderValue::from_str(leader.id()).ok())
    }
}

impl fmt::Display for NotLeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.leader {
            Some(leader) => write!(f, "not the leader; the leader is {leader}"),
            None => f.write_str("not the leader; the leader is unknown"),
        }
    }
}

impl Error for NotLeader {}

/// A [`Singleton`](crate::Singleton) was shut down before a job run finished (while it
/// campaigned, or after its job was cancelled by a lost lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stopped {
    _p: (),
}

impl Stopped {
    pub(crate) const fn new() -> Self {
        Self { _p: () }
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("singleton shut down before a job finished")
    }
}

impl Error for Stopped {}

/// A [`SingletonBuilder`](crate::SingletonBuilder) was given settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLeaseConfig {
    pub(crate) reason: &'static str,
}

impl fmt::Display for InvalidLeaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid lease configuration: {}", self.reason)
    }
}

impl Error for InvalidLeaseConfig {}
