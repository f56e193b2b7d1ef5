//! The response future of [`LeaderOnly`](crate::LeaderOnly).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use steadfast_core::error::BoxError;

use crate::error::NotLeader;

pin_project! {
    /// Response future of [`LeaderOnly`](crate::LeaderOnly): the inner service's future
    /// when the request was passed on, else the refusal (`R` is a `503` response or a
    /// [`NotLeader`] error).
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Called { #[pin] future: F },
        Refused { refusal: Option<R> },
    }
}

impl<F, R> ResponseFuture<F, R> {
    pub(crate) fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    pub(crate) fn refused(refusal: R) -> Self {
        Self {
            state: State::Refused {
                refusal: Some(refusal),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, Response<B>>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx),
            StateProj::Refused { refusal } => Poll::Ready(Ok(refusal
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F, NotLeader>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Refused { refusal } => Poll::Ready(Err(refusal
                .take()
                .expect("ResponseFuture polled after completion")
                .into())),
        }
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
