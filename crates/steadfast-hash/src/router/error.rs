//! Errors of the [`HashRouter`](super::HashRouter) and [`DiscoverRouter`](super::DiscoverRouter).
//!
//! Both routers return [`BoxError`](steadfast_core::error::BoxError)s: [`NoMembers`] when
//! there is nowhere to send a request, and the member's own errors (from `poll_ready` or its
//! response future) as they came. Tell them apart by downcasting:
//!
//! ```
//! use steadfast_core::error::BoxError;
//! use steadfast_hash::router::NoMembers;
//!
//! let err: BoxError = NoMembers::new().into();
//! assert!(err.is::<NoMembers>());
//! ```

use std::fmt;

/// The router has no members to send the request to; it did no work for it.
///
/// Maps to HTTP `503 Service Unavailable` and gRPC `UNAVAILABLE` (14): the request is safe
/// to retry once members are discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoMembers {
    _p: (),
}

impl NoMembers {
    /// The error.
    pub const fn new() -> Self {
        Self { _p: () }
    }
}

impl fmt::Display for NoMembers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no members to route the request to")
    }
}

impl std::error::Error for NoMembers {}
