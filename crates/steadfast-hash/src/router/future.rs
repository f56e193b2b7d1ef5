//! The response future of the routers, and the routing of one request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;
use steadfast_core::error::BoxError;
use tower_service::Service;

use super::MAX_FALLBACKS;
use super::error::NoMembers;
use crate::bounded::{BoundedLoad, LoadSlot, Ticket};
use crate::placement::Placement;

/// The owner and at most [`MAX_FALLBACKS`] more.
const CANDIDATES: usize = 1 + MAX_FALLBACKS;

pin_project! {
    /// Response future of [`HashRouter`](super::HashRouter) and
    /// [`DiscoverRouter`](super::DiscoverRouter).
    ///
    /// When no candidate for the key was ready at `call`, it first waits for the first
    /// candidate to become ready (polling them in preference order, so the owner wins a
    /// tie), then calls it and resolves to its result. With bounded loads it holds the
    /// request's [`Ticket`] from dispatch until it completes or is dropped.
    ///
    /// Dropping it cancels the call, releases the waiting candidates and ends the request's
    /// count.
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req, S::Future>,
        ticket: Option<Ticket>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, F> {
        Waiting { waiting: Waiting<S, Req> },
        Called { #[pin] future: F },
        Failed { error: Option<BoxError> },
        Done,
    }
}

/// The candidates not ready at `call`, and the request.
struct Waiting<S, Req> {
    candidates: [Option<Candidate<S>>; CANDIDATES],
    request: Option<Req>,
}

/// One candidate: its own clone of the member's service, and its load counter.
struct Candidate<S> {
    service: S,
    slot: Option<LoadSlot>,
}

/// Routes one request: the candidates are the first `1 + fallbacks` members of the key's
/// preference order (with `load`: the first that many under their cap). Each candidate's
/// service is cloned and polled once without a waker, in order; the first ready one is
/// called at once. Otherwise the future waits for the first to become ready.
pub(crate) fn route<S, Req, P>(
    services: &[S],
    placement: Option<&P>,
    load: Option<&BoundedLoad>,
    fallbacks: usize,
    hash: u64,
    request: Req,
) -> ResponseFuture<S, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Placement + ?Sized,
{
    let Some(placement) = placement else {
        return ResponseFuture::failed(NoMembers::new().into());
    };
    let mut members = [0usize; CANDIDATES];
    let wanted = &mut members[..1 + fallbacks.min(MAX_FALLBACKS)];
    let found = match load {
        Some(load) => load.eligible(placement, hash, wanted),
        None => placement.replicas(hash, wanted),
    };

    // "Ready right now": poll without a task. A candidate that is not ready is polled again
    // with the caller's task by the response future, which registers its waker then.
    let mut now = Context::from_waker(Waker::noop());
    let mut candidates: [Option<Candidate<S>>; CANDIDATES] = Default::default();
    let mut waiting = false;
    for (&member, candidate) in members[..found].iter().zip(&mut candidates) {
        let Some(prototype) = services.get(member) else {
            continue;
        };
        let mut service = prototype.clone();
        match service.poll_ready(&mut now) {
            Poll::Ready(Ok(())) => {
                let ticket = load.and_then(|load| load.acquire(member));
                let future = service.call(request);
                return ResponseFuture {
                    state: State::Called { future },
                    ticket,
                };
            }
            Poll::Ready(Err(error)) => return ResponseFuture::failed(error.into()),
            Poll::Pending => {
                *candidate = Some(Candidate {
                    service,
                    slot: load.and_then(|load| load.slot(member)),
                });
                waiting = true;
            }
        }
    }
    if !waiting {
        return ResponseFuture::failed(NoMembers::new().into());
    }
    ResponseFuture {
        state: State::Waiting {
            waiting: Waiting {
                candidates,
                request: Some(request),
            },
        },
        ticket: None,
    }
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            ticket: None,
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting { waiting } => {
                    let mut outcome = Poll::Pending;
                    for candidate in waiting.candidates.iter_mut() {
                        let Some(Candidate { service, .. }) = candidate else {
                            continue;
                        };
                        match service.poll_ready(cx) {
                            Poll::Ready(Ok(())) => {
                                outcome = Poll::Ready(Ok(candidate.take()));
                                break;
                            }
                            Poll::Ready(Err(error)) => {
                                outcome = Poll::Ready(Err(error));
                                break;
                            }
                            Poll::Pending => {}
                        }
                    }
                    let Candidate { mut service, slot } = match outcome {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error.into()));
                        }
                        Poll::Ready(Ok(ready)) => ready.expect("the ready candidate was present"),
                    };
                    let request = waiting
                        .request
                        .take()
                        .expect("the request waits with the candidates");
                    *this.ticket = slot.map(|slot| slot.acquire());
                    let future = service.call(request);
                    // Drops the other candidates' clones, and with them their wakers.
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => {
                    let output = std::task::ready!(future.poll(cx)).map_err(Into::into);
                    this.state.set(State::Done);
                    // The request is over: it no longer counts as in flight.
                    *this.ticket = None;
                    return Poll::Ready(output);
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect("a failed future holds its error");
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Done => panic!("router ResponseFuture polled after completion"),
            }
        }
    }
}

impl<S, Req> fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { waiting } => {
                let candidates = waiting.candidates.iter().flatten().count();
                return f
                    .debug_struct("ResponseFuture")
                    .field("state", &"waiting for readiness")
                    .field("candidates", &candidates)
                    .finish();
            }
            State::Called { .. } => "called",
            State::Failed { .. } => "failed",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("ticket", &self.ticket)
            .finish()
    }
}
