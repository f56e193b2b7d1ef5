//! The errors this crate's server-side layers return or reject configuration with.
//!
//! Overload rejections are [`steadfast_core::error::Overloaded`], shared with every other
//! steadfast crate; a request dropped because its caller's deadline cannot be met is a
//! [`DeadlineExceeded`], so that the two can be told apart (`err.is::<DeadlineExceeded>()`).

use std::error::Error;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// The gRPC status code `DEADLINE_EXCEEDED` (4).
pub const GRPC_DEADLINE_EXCEEDED: u16 = 4;

/// The request was dropped before any work because its propagated deadline had passed, or
/// could not be met at the current queueing delay.
///
/// Like [`Overloaded`](steadfast_core::error::Overloaded), nothing ran for it. Unlike
/// `Overloaded`, retrying it within the same deadline is pointless: the caller has given up
/// (or will have by the time an answer could arrive).
///
/// | protocol | maps to |
/// |---|---|
/// | HTTP | `504 Gateway Timeout` (the answer could not be produced in the time the caller allowed) |
/// | gRPC | `DEADLINE_EXCEEDED` (4) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded {
    expected_wait: Option<Duration>,
}

impl DeadlineExceeded {
    /// The deadline had already passed when the request arrived, or passed while it waited.
    pub const fn expired() -> Self {
        Self {
            expected_wait: None,
        }
    }

    /// The deadline was still ahead but closer than `expected_wait`, the queueing delay the
    /// shedder estimated for the request.
    pub const fn unreachable(expected_wait: Duration) -> Self {
        Self {
            expected_wait: Some(expected_wait),
        }
    }

    /// The queueing delay estimate that made the deadline unreachable, or `None` when the
    /// deadline had simply passed.
    pub const fn expected_wait(&self) -> Option<Duration> {
        self.expected_wait
    }

    /// The HTTP status this error maps to: `504 Gateway Timeout`.
    pub const fn http_status(&self) -> StatusCode {
        StatusCode::GATEWAY_TIMEOUT
    }

    /// The gRPC status code this error maps to: [`GRPC_DEADLINE_EXCEEDED`].
    pub const fn grpc_code(&self) -> u16 {
        GRPC_DEADLINE_EXCEEDED
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected_wait {
            None => f.write_str("request deadline exceeded before it was served"),
            Some(wait) => write!(
                f,
                "request deadline cannot be met: expected queueing delay {wait:?}"
            ),
        }
    }
}

impl Error for DeadlineExceeded {}

/// A [`ShedLayer`](crate::ShedLayer) configuration that cannot work, returned by
/// [`ShedLayerBuilder::build`](crate::ShedLayerBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidShedConfig {
    reason: &'static str,
}

impl InvalidShedConfig {
    pub(crate) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// What is wrong with the configuration.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidShedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid shed configuration: {}", self.reason)
    }
}

impl Error for InvalidShedConfig {}
