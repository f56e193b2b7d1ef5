//! The response future of [`AdaptiveConcurrency`](crate::AdaptiveConcurrency).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::classify::{Classify, Outcome};
use steadfast_core::error::{BoxError, Overloaded};
use tokio::time::Sleep;

use crate::error::TimedOut;
use crate::limiter::{Permit, Report};

pin_project! {
    /// Response future of [`AdaptiveConcurrency`](crate::AdaptiveConcurrency): runs the
    /// inner call holding a permit, classifies the result, feeds the limiter, and gives the
    /// permit back.
    ///
    /// | result | classified as | limiter |
    /// |---|---|---|
    /// | response or error | [`Outcome::Success`] | RTT sample |
    /// | response or error | [`Outcome::Overload`] (429, 503, `RESOURCE_EXHAUSTED`, a downstream [`Overloaded`]) | drop |
    /// | the layer's timeout elapsed | | drop; fails with [`TimedOut`] |
    /// | response or error | [`Outcome::Failure`] | ignored |
    /// | the future is dropped first (cancellation) | | ignored |
    ///
    /// The permit is given back in every case, dropping included.
    pub struct ResponseFuture<F, C> {
        #[pin]
        state: State<F>,
        permit: Permit,
        classifier: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running {
            #[pin]
            future: F,
        },
        // A variant of its own, rather than an `Option<Sleep>` in `Running`: without a
        // timeout, nothing of the (large) timer is written on the fast path.
        RunningWithTimeout {
            #[pin]
            future: F,
            #[pin]
            sleep: Sleep,
            timeout: Duration,
        },
        Rejected,
        Done,
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn running(
        future: F,
        permit: Permit,
        classifier: C,
        timeout: Option<Duration>,
    ) -> Self {
        let state = match timeout {
            None => State::Running { future },
            Some(timeout) => State::RunningWithTimeout {
                future,
                sleep: tokio::time::sleep(timeout),
                timeout,
            },
        };
        Self {
            state,
            permit,
            classifier,
        }
    }

    #[inline]
    pub(crate) fn rejected(classifier: C) -> Self {
        Self {
            state: State::Rejected,
            permit: Permit::vacant(),
            classifier,
        }
    }
}

#[inline]
fn report(permit: &mut Permit, outcome: Outcome) {
    permit.report(match outcome {
        Outcome::Success => Report::Success,
        Outcome::Overload => Report::Dropped,
        Outcome::Failure => Report::Ignored,
    });
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = match this.state.as_mut().project() {
            StateProj::Running { future } => ready!(future.poll(cx)),
            StateProj::RunningWithTimeout {
                future,
                sleep,
                timeout,
            } => match future.poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    ready!(sleep.poll(cx));
                    let timeout = *timeout;
                    // Cancel the call before giving the permit back.
                    this.state.set(State::Done);
                    report(this.permit, Outcome::Overload);
                    return Poll::Ready(Err(TimedOut { timeout }.into()));
                }
            },
            StateProj::Rejected => {
                this.state.set(State::Done);
                return Poll::Ready(Err(Overloaded::new().into()));
            }
            StateProj::Done => {
                panic!("adaptive concurrency ResponseFuture polled after completion")
            }
        };
        match result {
            Ok(response) => {
                let class = this.classifier.classify_response(&response);
                this.state.set(State::Done);
                report(this.permit, class.outcome());
                Poll::Ready(Ok(response))
            }
            Err(error) => {
                let error: BoxError = error.into();
                let class = this.classifier.classify_error(&*error);
                this.state.set(State::Done);
                report(this.permit, class.outcome());
                Poll::Ready(Err(error))
            }
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}
