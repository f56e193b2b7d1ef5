//! The [`LeaderOnly`] service.

use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll, ready};

use http::{HeaderName, Request, Response};
use steadfast_core::error::BoxError;
use tokio::sync::watch;
use tower_service::Service;

use crate::error::NotLeader;
use crate::future::ResponseFuture;
use crate::layer::{RejectError, RejectHttp};
use crate::state::LeaderState;

/// What `poll_ready` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Leading, and the inner service is ready.
    Serve,
    /// Not leading: refuse without the inner service.
    Refuse,
}

/// The service made by [`LeaderOnlyLayer`](crate::LeaderOnlyLayer): passes requests on
/// only while this replica leads.
pub struct LeaderOnly<S, M> {
    inner: S,
    state: watch::Receiver<LeaderState>,
    header: HeaderName,
    admission: Option<Admission>,
    _mode: PhantomData<fn() -> M>,
}

impl<S, M> LeaderOnly<S, M> {
    pub(crate) fn new(inner: S, state: watch::Receiver<LeaderState>, header: HeaderName) -> Self {
        Self {
            inner,
            state,
            header,
            admission: None,
            _mode: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn is_leading(&self) -> bool {
        self.state.borrow().is_leading()
    }

    fn not_leader(&self) -> NotLeader {
        NotLeader::new(self.state.borrow().leader().cloned())
    }

    /// The `poll_ready` of both modes; `E` is the service's error type.
    fn poll_admission<Req, E>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>>
    where
        S: Service<Req>,
        S::Error: Into<E>,
    {
        self.admission = None;
        if !self.is_leading() {
            self.admission = Some(Admission::Refuse);
            return Poll::Ready(Ok(()));
        }
        ready!(self.inner.poll_ready(cx)).map_err(Into::into)?;
        self.admission = Some(Admission::Serve);
        Poll::Ready(Ok(()))
    }

    /// Whether `call` may pass the request on: admitted as leader in `poll_ready` and
    /// still leading now.
    fn take_admission(&mut self) -> bool {
        let admission = self
            .admission
            .take()
            .expect("poll_ready must be called before call");
        admission == Admission::Serve && self.is_leading()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LeaderOnly<S, RejectHttp>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.poll_admission::<Request<ReqBody>, S::Error>(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if self.take_admission() {
            ResponseFuture::called(self.inner.call(request))
        } else {
            ResponseFuture::refused(self.not_leader().http_response_with(&self.header))
        }
    }
}

impl<S, Req> Service<Req> for LeaderOnly<S, RejectError>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, NotLeader>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_admission::<Req, BoxError>(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if self.take_admission() {
            ResponseFuture::called(self.inner.call(request))
        } else {
            ResponseFuture::refused(self.not_leader())
        }
    }
}

impl<S: Clone, M> Clone for LeaderOnly<S, M> {
    /// A clone has not been through `poll_ready`: it does not share the admission.
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.state.clone(), self.header.clone())
    }
}

impl<S: fmt::Debug, M> fmt::Debug for LeaderOnly<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderOnly")
            .field("inner", &self.inner)
            .field("state", &*self.state.borrow())
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}
