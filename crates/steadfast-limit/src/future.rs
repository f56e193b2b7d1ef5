//! The response future of [`AdaptiveConcurrency`](crate::AdaptiveConcurrency).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::classify::{Classify, Outcome};
use steadfast_core::error::{BoxError, Overloaded};
use tokio::time::Sleep;

use crate::error::TimedOut;
use crate::limiter::Permit;

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
        permit: Option<Permit>,
        classifier: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running {
            #[pin]
            future: F,
            #[pin]
            sleep: Option<Sleep>,
            timeout: Duration,
        },
        Rejected,
        Done,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn running(
        future: F,
        permit: Permit,
        classifier: C,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            state: State::Running {
                future,
                sleep: timeout.map(tokio::time::sleep),
                timeout: timeout.unwrap_or_default(),
            },
            permit: Some(permit),
            classifier,
        }
    }

    pub(crate) fn rejected(classifier: C) -> Self {
        Self {
            state: State::Rejected,
            permit: None,
            classifier,
        }
    }
}

fn report(permit: Option<Permit>, outcome: Outcome) {
    let Some(permit) = permit else { return };
    match outcome {
        Outcome::Success => permit.success(),
        Outcome::Overload => permit.dropped(),
        Outcome::Failure => permit.ignore(),
    }
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
        match this.state.as_mut().project() {
            StateProj::Running {
                future,
                sleep,
                timeout,
            } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => {
                    let class = this.classifier.classify_response(&response);
                    this.state.set(State::Done);
                    report(this.permit.take(), class.outcome());
                    Poll::Ready(Ok(response))
                }
                Poll::Ready(Err(error)) => {
                    let error: BoxError = error.into();
                    let class = this.classifier.classify_error(&*error);
                    this.state.set(State::Done);
                    report(this.permit.take(), class.outcome());
                    Poll::Ready(Err(error))
                }
                Poll::Pending => {
                    let Some(sleep) = sleep.as_pin_mut() else {
                        return Poll::Pending;
                    };
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let timeout = *timeout;
                    // Cancel the call before giving the permit back.
                    this.state.set(State::Done);
                    report(this.permit.take(), Outcome::Overload);
                    Poll::Ready(Err(TimedOut { timeout }.into()))
                }
            },
            StateProj::Rejected => {
                this.state.set(State::Done);
                Poll::Ready(Err(Overloaded::new().into()))
            }
            StateProj::Done => {
                panic!("adaptive concurrency ResponseFuture polled after completion")
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
