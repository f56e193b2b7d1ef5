//! The mock's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use steadfast_core::error::BoxError;
use tokio::sync::oneshot;

use super::counters::Counters;
use super::permits::Permit;

const RESPONDER_DROPPED: &str = "the mock service's Responder was dropped without answering";

pin_project! {
    /// The response future of [`MockService`](super::MockService).
    ///
    /// It holds the call's permit until it completes or is dropped; dropping it before it
    /// completes counts as a cancellation ([`MockHandle::cancelled`](super::MockHandle::cancelled)).
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics.
    pub struct ResponseFuture<Res> {
        #[pin]
        reply: Reply<Res>,
        call: CallGuard,
    }
}

pin_project! {
    #[project = ReplyProj]
    pub(super) enum Reply<Res> {
        Ready { result: Option<Result<Res, BoxError>> },
        Waiting { #[pin] rx: oneshot::Receiver<Result<Res, BoxError>> },
    }
}

impl<Res> Reply<Res> {
    pub(super) fn ready(result: Result<Res, BoxError>) -> Self {
        Self::Ready {
            result: Some(result),
        }
    }

    pub(super) fn waiting(rx: oneshot::Receiver<Result<Res, BoxError>>) -> Self {
        Self::Waiting { rx }
    }
}

/// The call's permit and bookkeeping, released on completion or drop.
#[derive(Debug)]
struct CallGuard {
    permit: Option<Permit>,
    counters: Arc<Counters>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.permit.is_some() {
            self.counters.record_cancelled();
        }
        // The permit, if still held, returns to the pool when the field drops after this.
    }
}

impl<Res> ResponseFuture<Res> {
    pub(super) fn new(reply: Reply<Res>, permit: Permit, counters: Arc<Counters>) -> Self {
        Self {
            reply,
            call: CallGuard {
                permit: Some(permit),
                counters,
            },
        }
    }
}

impl<Res> Future for ResponseFuture<Res> {
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = match this.reply.project() {
            ReplyProj::Ready { result } => result
                .take()
                .expect("mock ResponseFuture polled after it completed"),
            ReplyProj::Waiting { rx } => match ready!(rx.poll(cx)) {
                Ok(result) => result,
                Err(_) => Err(RESPONDER_DROPPED.into()),
            },
        };
        // Completed: the permit returns to the pool now, not when the future is dropped.
        this.call.permit = None;
        Poll::Ready(output)
    }
}

impl<Res> fmt::Debug for ResponseFuture<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting_for_responder = matches!(self.reply, Reply::Waiting { .. });
        f.debug_struct("ResponseFuture")
            .field("completed", &self.call.permit.is_none())
            .field("manual", &waiting_for_responder)
            .finish()
    }
}
