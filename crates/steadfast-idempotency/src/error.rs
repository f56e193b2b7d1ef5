//! Errors of the idempotency crate.
//!
//! The layer itself never fails with its own errors: every refusal is an HTTP response
//! (400, 409, 413, 422, 503), and the inner service's errors pass through unchanged. Store
//! operations fail with a [`BoxError`](steadfast_core::error::BoxError), which may be a
//! [`CapacityExceeded`].

use std::fmt;

/// A builder setting is out of range; returned by the `build` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidIdempotencyConfig {
    pub(crate) reason: &'static str,
}

impl InvalidIdempotencyConfig {
    /// What is wrong.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidIdempotencyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid idempotency configuration: {}", self.reason)
    }
}

impl std::error::Error for InvalidIdempotencyConfig {}

/// A store is full of live records and cannot take another (or a larger one) until some
/// expire.
///
/// The layer treats it as any store failure: `503 Service Unavailable` with `Retry-After`
/// when failing closed (the default), the handler run without protection when failing
/// open. Match it with `err.is::<CapacityExceeded>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityExceeded {
    _p: (),
}

impl CapacityExceeded {
    pub(crate) const fn new() -> Self {
        Self { _p: () }
    }
}

impl fmt::Display for CapacityExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("idempotency store is full of live records")
    }
}

impl std::error::Error for CapacityExceeded {}
