//! Driving a service by hand while letting the runtime run background tasks.

use std::task::Poll;

use steadfast_core::error::BoxError;
use tower_service::Service;

use crate::CountingWaker;

/// How many times to yield to the runtime while waiting for something to happen.
const MAX_YIELDS: usize = 100;

/// How many wake-ups `poll_ready` may take to become ready.
const MAX_READY_ROUNDS: usize = 10;

/// Yields to the runtime until `done()` holds, a bounded number of times; returns `done()`.
pub(super) async fn settle(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..MAX_YIELDS {
        if done() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    done()
}

/// Why a service did not become ready.
pub(super) enum NotReady {
    Failed(BoxError),
    NeverWoken,
    TooManyWakeUps,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "poll_ready failed: {error}"),
            Self::NeverWoken => f.write_str("poll_ready returned Pending and never woke the task"),
            Self::TooManyWakeUps => write!(
                f,
                "poll_ready was still Pending after {MAX_READY_ROUNDS} wake-ups"
            ),
        }
    }
}

/// Polls `service` with `waker` until it is ready: after each `Pending`, waits (yielding) for
/// a wake-up before polling again.
pub(super) async fn poll_until_ready<S, In>(
    service: &mut S,
    waker: &CountingWaker,
) -> Result<(), NotReady>
where
    S: Service<In>,
    S::Error: Into<BoxError>,
{
    for _ in 0..MAX_READY_ROUNDS {
        let before = waker.wakes();
        match service.poll_ready(&mut waker.context()) {
            Poll::Ready(Ok(())) => return Ok(()),
            Poll::Ready(Err(error)) => return Err(NotReady::Failed(error.into())),
            Poll::Pending => {
                if !settle(|| waker.wakes() > before).await {
                    return Err(NotReady::NeverWoken);
                }
            }
        }
    }
    Err(NotReady::TooManyWakeUps)
}
