//! The rules of the contract check, one function each.

use std::fmt;
use std::pin::pin;
use std::task::Poll;

use steadfast_core::error::BoxError;
use tower_service::Service;

use super::Permits;
use super::drive::{poll_until_ready, settle};
use crate::CountingWaker;
use crate::mock::MockHandle;

#[derive(Debug, Clone, Copy)]
pub(super) enum Rule {
    A,
    B,
    C,
    D,
    E,
}

impl Rule {
    fn label(self) -> &'static str {
        match self {
            Self::A => "(a)",
            Self::B => "(b)",
            Self::C => "(c)",
            Self::D => "(d)",
            Self::E => "(e)",
        }
    }

    pub(super) fn statement(self) -> &'static str {
        match self {
            Self::A => {
                "poll_ready must be Pending while the inner service has no permit, and wake the \
                 task when it gets one"
            }
            Self::B => {
                "dropping a service that is ready but never called must release the inner \
                 service's reservation"
            }
            Self::C => {
                "dropping a response future before it completes must release the inner \
                 service's permit"
            }
            Self::D => "a clone must not share the reservation of the service it was cloned from",
            Self::E => "a call must go through to the inner service and return its response",
        }
    }

    /// Panics: the layer broke this rule.
    #[track_caller]
    fn violated(self, detail: fmt::Arguments<'_>) -> ! {
        panic!(
            "tower Service contract, rule {} violated: {}; {detail}",
            self.label(),
            self.statement()
        )
    }

    /// Panics: this rule could not be checked.
    #[track_caller]
    fn setup_failed(self, detail: fmt::Arguments<'_>) -> ! {
        panic!(
            "while checking tower Service contract rule {} ({}): {detail}",
            self.label(),
            self.statement()
        )
    }

    fn trace(self) {
        tracing::debug!(rule = self.label(), "checking: {}", self.statement());
    }
}

/// Rule (a).
pub(super) async fn a_pending_without_permit<S, In, Req, Res>(
    fresh: &impl Fn(usize) -> (S, MockHandle<Req, Res>),
) where
    S: Service<In>,
    S::Error: Into<BoxError>,
{
    let rule = Rule::A;
    rule.trace();
    let (mut service, handle) = fresh(0);
    let waker = CountingWaker::new();
    match service.poll_ready(&mut waker.context()) {
        Poll::Pending => {}
        Poll::Ready(Ok(())) => rule.violated(format_args!(
            "poll_ready returned Ready(Ok) with inner capacity 0"
        )),
        Poll::Ready(Err(error)) => rule.violated(format_args!(
            "poll_ready returned an error with inner capacity 0: {}",
            error.into()
        )),
    }
    let before = waker.wakes();
    handle.set_capacity(1);
    if !settle(|| waker.wakes() > before).await {
        rule.violated(format_args!(
            "the task was not woken after the inner capacity went from 0 to 1"
        ));
    }
    if let Err(why) = poll_until_ready(&mut service, &waker).await {
        rule.violated(format_args!(
            "after the inner capacity went from 0 to 1: {why}; {}",
            Permits(&handle)
        ));
    }
}

/// Rule (b).
pub(super) async fn b_drop_ready_releases<S, In, Req, Res>(
    fresh: &impl Fn(usize) -> (S, MockHandle<Req, Res>),
) where
    S: Service<In>,
    S::Error: Into<BoxError>,
{
    let rule = Rule::B;
    rule.trace();
    let (mut service, handle) = fresh(1);
    let waker = CountingWaker::new();
    if let Err(why) = poll_until_ready(&mut service, &waker).await {
        rule.setup_failed(format_args!("with a free inner permit, {why}"));
    }
    drop(service);
    if !settle(|| handle.available_permits() == 1).await {
        rule.violated(format_args!(
            "after dropping the ready service, {}",
            Permits(&handle)
        ));
    }
}

/// Rule (c).
pub(super) async fn c_drop_future_releases<S, In, Req, Res>(
    fresh: &impl Fn(usize) -> (S, MockHandle<Req, Res>),
    make_request: &mut impl FnMut() -> In,
) where
    S: Service<In>,
    S::Error: Into<BoxError>,
{
    let rule = Rule::C;
    rule.trace();
    let (mut service, handle) = fresh(1);
    handle.respond_manually();
    let waker = CountingWaker::new();
    if let Err(why) = poll_until_ready(&mut service, &waker).await {
        rule.setup_failed(format_args!("with a free inner permit, {why}"));
    }
    {
        let mut response = pin!(service.call(make_request()));
        // Poll until the inner call is in flight (a layer may call the inner service lazily,
        // or from a background task).
        let in_flight = settle(|| {
            match response.as_mut().poll(&mut waker.context()) {
                Poll::Pending => {}
                Poll::Ready(Ok(_)) => rule.setup_failed(format_args!(
                    "the response future completed while the inner response was held back"
                )),
                Poll::Ready(Err(error)) => rule.setup_failed(format_args!(
                    "the response future failed while the inner response was held back: {}",
                    error.into()
                )),
            }
            handle.in_flight() == 1
        })
        .await;
        if !in_flight {
            rule.setup_failed(format_args!(
                "the inner call never started; {}",
                Permits(&handle)
            ));
        }
        // The pending response future drops here.
    }
    // The service stays alive: the permit must come back from the dropped future alone.
    if !settle(|| handle.in_flight() == 0).await {
        rule.violated(format_args!(
            "after dropping the pending response future, {}",
            Permits(&handle)
        ));
    }
    drop(service);
}

/// Rule (d).
pub(super) async fn d_clone_does_not_share<S, In, Req, Res>(
    fresh: &impl Fn(usize) -> (S, MockHandle<Req, Res>),
) where
    S: Service<In> + Clone,
    S::Error: Into<BoxError>,
{
    let rule = Rule::D;
    rule.trace();
    let (mut a, handle) = fresh(1);
    let waker_a = CountingWaker::new();
    if let Err(why) = poll_until_ready(&mut a, &waker_a).await {
        rule.setup_failed(format_args!("with a free inner permit, A: {why}"));
    }
    let mut b = a.clone();
    let waker_b = CountingWaker::new();
    match b.poll_ready(&mut waker_b.context()) {
        Poll::Pending => {}
        Poll::Ready(Ok(())) => rule.violated(format_args!(
            "B = A.clone() was ready although A holds the only inner permit (Clone must not copy \
             A's readiness; B must reserve its own permit); {}",
            Permits(&handle)
        )),
        Poll::Ready(Err(error)) => rule.setup_failed(format_args!(
            "B = A.clone() failed in poll_ready: {}",
            error.into()
        )),
    }
    let before = waker_b.wakes();
    drop(a);
    if !settle(|| waker_b.wakes() > before).await {
        rule.violated(format_args!(
            "B (a clone of A) was not woken after A was dropped; {}",
            Permits(&handle)
        ));
    }
    if let Err(why) = poll_until_ready(&mut b, &waker_b).await {
        rule.violated(format_args!(
            "after A was dropped, B (a clone of A): {why}; {}",
            Permits(&handle)
        ));
    }
    drop(b);
    if !settle(|| handle.available_permits() == 1).await {
        rule.violated(format_args!(
            "after dropping A and its clone B, {}",
            Permits(&handle)
        ));
    }
}

/// Rule (e).
pub(super) async fn e_call_goes_through<S, In, Req, Res>(
    fresh: &impl Fn(usize) -> (S, MockHandle<Req, Res>),
    make_request: &mut impl FnMut() -> In,
    check_response: impl FnOnce(S::Response),
) where
    S: Service<In>,
    S::Error: Into<BoxError>,
{
    let rule = Rule::E;
    rule.trace();
    let (mut service, handle) = fresh(1);
    let waker = CountingWaker::new();
    if let Err(why) = poll_until_ready(&mut service, &waker).await {
        rule.setup_failed(format_args!("with a free inner permit, {why}"));
    }
    let response = match service.call(make_request()).await {
        Ok(response) => response,
        Err(error) => rule.violated(format_args!("the call failed: {}", error.into())),
    };
    if handle.calls() == 0 {
        rule.violated(format_args!(
            "the call returned a response without calling the inner service"
        ));
    }
    check_response(response);
    drop(service);
    if !settle(|| handle.in_flight() == 0 && handle.available_permits() == 1).await {
        rule.violated(format_args!(
            "after the call completed and the service was dropped, {}",
            Permits(&handle)
        ));
    }
}
