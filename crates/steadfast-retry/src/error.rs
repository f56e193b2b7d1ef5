//! Errors of the retry layer.
//!
//! The layer's error type is [`BoxError`](steadfast_core::error::BoxError): the inner
//! service's errors pass through it unchanged (downcast them as usual), plus these two.

use std::fmt;
use std::time::Duration;

/// One attempt took longer than the per-attempt timeout.
///
/// Returned when the last attempt times out (earlier timed-out attempts are retried).
/// Maps to HTTP `504 Gateway Timeout` / gRPC `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptTimedOut {
    pub(crate) timeout: Duration,
}

impl AttemptTimedOut {
    /// The per-attempt timeout that elapsed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt timed out after {:?}", self.timeout)
    }
}

impl std::error::Error for AttemptTimedOut {}

/// The total deadline over all attempts and backoff sleeps passed during an attempt.
///
/// Maps to HTTP `504 Gateway Timeout` / gRPC `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineExceeded {
    pub(crate) deadline: Duration,
    pub(crate) attempts: u32,
}

impl DeadlineExceeded {
    /// The total deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// How many attempts were started before it passed.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retry deadline of {:?} exceeded after {} attempt(s)",
            self.deadline, self.attempts
        )
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The retry configuration is invalid; returned by
/// [`RetryLayerBuilder::build`](crate::RetryLayerBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRetryConfig {
    pub(crate) reason: &'static str,
}

impl fmt::Display for InvalidRetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid retry configuration: {}", self.reason)
    }
}

impl std::error::Error for InvalidRetryConfig {}
