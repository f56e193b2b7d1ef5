//! The simulated request and response.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// One attempt of a simulated request, as the stack under test receives it.
///
/// A retry is a new `SimRequest` with the same [`id`](Self::id), [`class`](Self::class) and
/// [`arrival`](Self::arrival) and the next [`attempt`](Self::attempt) number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SimRequest {
    /// The logical request's id, unique within a run, in order of arrival from 0.
    pub id: u64,
    /// The attempt number: 0 for the first, 1 for the first retry...
    pub attempt: u32,
    /// The request's class (priority): an index into
    /// [`ClientConfig::classes`](crate::ClientConfig::classes), 0 by convention the most critical.
    pub class: u8,
    /// The closed-loop client that sent it, if any.
    pub client: Option<u32>,
    /// When the logical request first arrived (its first attempt was sent).
    pub arrival: Instant,
    /// When this attempt was sent by the client (it may then wait for the stack to be ready).
    pub sent: Instant,
    /// When the client stops caring about this attempt: `sent` plus the client timeout.
    pub deadline: Instant,
}

impl SimRequest {
    /// A first attempt of request `id`, class 0, sent at `sent` with the given timeout.
    ///
    /// The simulator builds requests itself; this is for driving a stack or a
    /// [`Backend`](crate::Backend) by hand in a test.
    pub fn new(id: u64, sent: Instant, timeout: Duration) -> Self {
        Self {
            id,
            attempt: 0,
            class: 0,
            client: None,
            arrival: sent,
            sent,
            deadline: sent + timeout,
        }
    }

    /// Sets the class.
    #[must_use]
    pub const fn with_class(mut self, class: u8) -> Self {
        self.class = class;
        self
    }
}

/// The backend's answer to a [`SimRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimResponse {
    /// The request's id.
    pub id: u64,
    /// The attempt answered.
    pub attempt: u32,
    /// Time spent in the backend's queue before a worker took it.
    pub queued: Duration,
    /// Time a worker spent on it (after any knee).
    pub service: Duration,
    /// Requests in service when it started, itself included.
    pub concurrency: usize,
}

/// An error from the [`Backend`](crate::Backend) itself (not from the stack in front of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend dropped the request unserved because its deadline had passed when a
    /// worker became free ([`BackendConfig::drop_expired`](crate::BackendConfig::drop_expired)).
    Expired,
    /// The simulation that owns the backend has finished.
    ShutDown,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "the simulated backend dropped a request past its deadline",
            Self::ShutDown => "the simulated backend has shut down",
        })
    }
}

impl Error for BackendError {}
