//! The response future of [`HlcService`](crate::HlcService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use steadfast_core::clock::WallClock;

use crate::header;
use crate::layer::{Role, Shared};

pin_project! {
    /// Response future of [`HlcService`](crate::HlcService): stamps (server) or merges
    /// (client) the response's HLC header when the inner response is ready.
    pub struct ResponseFuture<F, B, C> {
        #[pin]
        state: State<F, B>,
        shared: Arc<Shared<C>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Called { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B, C> ResponseFuture<F, B, C> {
    pub(crate) fn called(future: F, shared: Arc<Shared<C>>) -> Self {
        Self {
            state: State::Called { future },
            shared,
        }
    }

    pub(crate) fn rejected(response: Response<B>, shared: Arc<Shared<C>>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
            shared,
        }
    }
}

impl<F, B, E, C> Future for ResponseFuture<F, B, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    C: WallClock,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.state.project() {
            StateProj::Called { future } => ready!(future.poll(cx))?,
            StateProj::Rejected { response } => response
                .take()
                .expect("ResponseFuture polled after completion"),
        };
        match this.shared.role {
            Role::Server => {
                let stamp = header::encode(this.shared.hlc.now());
                response
                    .headers_mut()
                    .insert(this.shared.header.clone(), stamp);
            }
            // A bad answer is counted and traced inside `merge`; the response goes on.
            Role::Client => {
                let _ = this.shared.merge(response.headers());
            }
        }
        Poll::Ready(Ok(response))
    }
}

impl<F, B, C> fmt::Debug for ResponseFuture<F, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("role", &self.shared.role)
            .finish_non_exhaustive()
    }
}
