//! Errors of the adaptive concurrency layer.
//!
//! The layer's error type is [`BoxError`](steadfast_core::error::BoxError): the inner
//! service's errors pass through unchanged, plus:
//!
//! | error | when | HTTP | gRPC |
//! |---|---|---|---|
//! | [`Overloaded`](steadfast_core::error::Overloaded) | [`Mode::FailFast`](crate::Mode::FailFast) found no free permit | `503` | `RESOURCE_EXHAUSTED` |
//! | [`TimedOut`] | the layer's own [`timeout`](crate::AdaptiveConcurrencyLayerBuilder::timeout) elapsed | `504` | `DEADLINE_EXCEEDED` |
//!
//! Match them by downcasting: `err.is::<Overloaded>()`.

use std::fmt;
use std::time::Duration;

/// The request ran longer than the layer's timeout and was cancelled; the limiter counted
/// it as a drop.
///
/// Maps to HTTP `504 Gateway Timeout` / gRPC `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    pub(crate) timeout: Duration,
}

impl TimedOut {
    /// The timeout that elapsed.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request timed out after {:?}", self.timeout)
    }
}

impl std::error::Error for TimedOut {}

/// The limiter's configuration is invalid; returned by
/// [`AdaptiveConcurrencyLayerBuilder::build`](crate::AdaptiveConcurrencyLayerBuilder::build)
/// and [`Limiter::new`](crate::Limiter::new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLimitConfig {
    reason: &'static str,
}

impl InvalidLimitConfig {
    /// An error saying which setting is wrong; for custom
    /// [`LimitAlgorithm::validate`](crate::algorithm::LimitAlgorithm::validate)
    /// implementations.
    pub const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// Which setting is wrong, and why.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidLimitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid concurrency limit configuration: {}",
            self.reason
        )
    }
}

impl std::error::Error for InvalidLimitConfig {}
