//! The response future of [`Hedge`](super::Hedge).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::classify::{Classify, Outcome};
use steadfast_core::error::BoxError;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::layer::Config;
use super::stats::Event;
use crate::budget::{RetryCause, RetryPermit};

pin_project! {
    /// Response future of [`Hedge`](super::Hedge): runs the first attempt and its hedges
    /// side by side, and resolves to the first accepted answer, the first answer that must
    /// not be hedged, or the last failure.
    ///
    /// Dropping it cancels every attempt in flight.
    ///
    /// # Panics
    ///
    /// If polled again after it completed.
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        // The first attempt is stored inline: most requests never send a hedge, and they pay
        // for no allocation.
        #[pin]
        first: Option<S::Future>,
        // Fires when the next hedge is due (`Next::At`); created on first use, so neither a
        // call nor a request answered on its first poll touches the timer wheel.
        #[pin]
        timer: Option<Sleep>,
        // Hedges are boxed: they are off the fast path (only the requests that are slow or
        // fail pay one allocation per hedge), and a box is `Unpin`, so a plain `Vec` can
        // hold up to `max_attempts - 1` of them and drop any one in place.
        hedges: Vec<Attempt<S::Future>>,
        // The clone of the inner service that served the first attempt; polled ready
        // before each hedge.
        service: S,
        // The request, kept for the hedges (moved into the last one).
        request: Option<Req>,
        session: Session<S::Response>,
        config: Arc<Config<C>>,
    }
}

/// A hedge in flight.
struct Attempt<F> {
    future: Pin<Box<F>>,
    /// What the budget charged for it; handed back if it wins.
    permit: RetryPermit,
}

/// When the next hedge is due, if nothing fails first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Not on time: all attempts are sent, the budget refused, or the delay is infinite.
    Never,
    /// Now (a zero delay).
    Now,
    /// At this instant (`timer` is set to fire then).
    At(Instant),
}

/// Per-call hedging state.
struct Session<Res> {
    /// Attempts sent, the first included.
    sent: u32,
    delay: Duration,
    /// When the first attempt was sent; kept only to learn a percentile.
    first_sent: Option<Instant>,
    next: Next,
    /// A hedge the budget granted, waiting for the inner service to be ready, and why it
    /// is sent.
    readying: Option<(RetryPermit, &'static str)>,
    /// A server asked to wait this long before the next attempt.
    pushback: Option<Duration>,
    /// The inner service failed to become ready: no more hedges.
    stopped: bool,
    /// The last retryable failure, returned if every attempt fails.
    last_failure: Option<Result<Res, BoxError>>,
    done: bool,
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    pub(super) fn new(
        service: S,
        first: S::Future,
        request: Option<Req>,
        config: Arc<Config<C>>,
    ) -> Self {
        let mut session = Session {
            sent: 1,
            delay: Duration::ZERO,
            first_sent: None,
            next: Next::Never,
            readying: None,
            pushback: None,
            stopped: false,
            last_failure: None,
            done: false,
        };
        let hedging = config.max_attempts > 1;
        if hedging || config.histogram.is_some() {
            let now = Instant::now();
            // Sampled even with hedging off, so the delay can be watched before turning it on.
            session.first_sent = config.histogram.is_some().then_some(now);
            if hedging {
                session.delay = config.current_delay();
                session.next = next_after(now, session.delay);
            }
        }
        Self {
            first: Some(first),
            timer: None,
            hedges: Vec::new(),
            service,
            request,
            session,
            config,
        }
    }
}

/// The next hedge, due `delay` after `now`.
fn next_after(now: Instant, delay: Duration) -> Next {
    if delay.is_zero() {
        return Next::Now;
    }
    match now.checked_add(delay) {
        Some(at) => Next::At(at),
        // Too far to represent: never on time (`Duration::MAX`).
        None => Next::Never,
    }
}

/// Whether `at` has come, with `timer` set to wake the task then (created the first time,
/// reset when `at` moved).
fn timer_fired(mut timer: Pin<&mut Option<Sleep>>, at: Instant, cx: &mut Context<'_>) -> bool {
    match timer.as_mut().as_pin_mut() {
        Some(sleep) if sleep.deadline() == at => {}
        Some(sleep) => sleep.reset(at),
        None => timer.set(Some(tokio::time::sleep_until(at))),
    }
    timer
        .as_pin_mut()
        .is_some_and(|sleep| sleep.poll(cx).is_ready())
}

impl<Res> Session<Res> {
    fn may_hedge<C>(&self, config: &Config<C>) -> bool {
        !self.stopped && self.sent < config.max_attempts
    }

    /// Asks the budget for a hedge; on a yes, the hedge is sent once the inner service is
    /// ready.
    fn ask_budget<C>(&mut self, config: &Config<C>, cause: RetryCause, why: &'static str) {
        match config.budget.try_retry(cause) {
            Some(permit) => self.readying = Some((permit, why)),
            None => {
                config.stats.record(Event::BudgetExhausted, &config.name);
                tracing::debug!(
                    target: "steadfast_retry::hedge",
                    name = %config.name,
                    attempts = self.sent,
                    why,
                    "not hedging: budget exhausted"
                );
            }
        }
    }

    /// Handles a finished attempt: `Some` is the call's answer. `permit` is the hedge's
    /// (`None` for the first attempt); `first_ok` says whether the first attempt is this
    /// one or still running, so its latency (or a lower bound of it) can be sampled.
    fn on_result<C: Classify<Res>>(
        &mut self,
        config: &Config<C>,
        result: Result<Res, BoxError>,
        permit: Option<RetryPermit>,
        first_ok: bool,
    ) -> Option<Result<Res, BoxError>> {
        let class = match &result {
            Ok(response) => config.classifier.classify_response(response),
            Err(error) => config.classifier.classify_error(&**error),
        };
        if class.outcome() == Outcome::Success {
            if permit.is_some() {
                config.stats.record(Event::HedgeWin, &config.name);
            }
            config.budget.on_success(permit);
            if first_ok && let (Some(histogram), Some(sent)) = (&config.histogram, self.first_sent)
            {
                histogram.record(Instant::now().saturating_duration_since(sent));
            }
            return Some(result);
        }
        if !class.is_retryable() {
            tracing::debug!(
                target: "steadfast_retry::hedge",
                name = %config.name,
                attempts = self.sent,
                "non-retryable failure: cancelling the other attempts"
            );
            return Some(result);
        }
        config.budget.on_failure();
        self.last_failure = Some(result);
        if let Some(hint) = class.retry_after() {
            // Not now: the server asked to wait. The next hedge on time waits at least
            // this long.
            self.pushback = Some(self.pushback.map_or(hint, |p| p.max(hint)));
        } else if self.readying.is_none() && self.may_hedge(config) {
            let cause = if class.outcome() == Outcome::Overload {
                RetryCause::Overload
            } else {
                RetryCause::Failure
            };
            self.ask_budget(config, cause, "an attempt failed");
        }
        None
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let config = &**this.config;
        let session = this.session;
        assert!(
            !session.done,
            "hedge ResponseFuture polled after completion"
        );
        loop {
            // 1. The first attempt.
            let mut answer = None;
            if let Some(future) = this.first.as_mut().as_pin_mut()
                && let Poll::Ready(result) = future.poll(cx)
            {
                this.first.set(None);
                answer = session.on_result(config, result.map_err(Into::into), None, true);
            }
            // 2. The hedges, in the order they were sent.
            let mut i = 0;
            while answer.is_none() && i < this.hedges.len() {
                match this.hedges[i].future.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        let permit = this.hedges.remove(i).permit;
                        let first_ok = this.first.is_some();
                        answer = session.on_result(
                            config,
                            result.map_err(Into::into),
                            Some(permit),
                            first_ok,
                        );
                    }
                    Poll::Pending => i += 1,
                }
            }
            if let Some(answer) = answer {
                // Cancel everything else.
                this.first.set(None);
                this.hedges.clear();
                this.timer.set(None);
                session.done = true;
                return Poll::Ready(answer);
            }

            // 3. Is the next hedge due?
            if let Some(hint) = session.pushback.take() {
                let now = Instant::now();
                // The next hedge on time goes at the later of its time and the hint's end.
                session.next = match (session.next, next_after(now, hint)) {
                    (Next::Never, _) => Next::Never,
                    (next, Next::Now) => next,
                    (Next::At(due), Next::At(held)) => Next::At(due.max(held)),
                    (Next::Now | Next::At(_), held) => held,
                };
            }
            if session.readying.is_none() && session.may_hedge(config) {
                let fired = match session.next {
                    Next::Never => false,
                    Next::Now => true,
                    Next::At(at) => timer_fired(this.timer.as_mut(), at, cx),
                };
                if fired {
                    session.next = Next::Never;
                    session.ask_budget(config, RetryCause::Failure, "the delay passed");
                }
            }

            // 4. Send the granted hedge once the inner service is ready, without holding up
            // the attempts in flight (they were polled above).
            if session.readying.is_some() {
                match this.service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let (permit, why) = session.readying.take().expect("checked above");
                        session.sent += 1;
                        let request = if session.sent == config.max_attempts {
                            this.request.take()
                        } else {
                            this.request.clone()
                        }
                        .expect("the request is kept until the last attempt");
                        let future = this.service.call(request);
                        this.hedges.push(Attempt {
                            future: Box::pin(future),
                            permit,
                        });
                        config.stats.record(Event::HedgeSent, &config.name);
                        tracing::debug!(
                            target: "steadfast_retry::hedge",
                            name = %config.name,
                            attempt = session.sent,
                            why,
                            "hedging"
                        );
                        session.next = if session.sent < config.max_attempts {
                            next_after(Instant::now(), session.delay)
                        } else {
                            Next::Never
                        };
                        // Poll the new attempt (and send the next one if it is due too).
                        continue;
                    }
                    Poll::Ready(Err(error)) => {
                        // A service that failed to become ready must not be called again.
                        session.readying = None;
                        session.stopped = true;
                        let error: BoxError = error.into();
                        tracing::debug!(
                            target: "steadfast_retry::hedge",
                            name = %config.name,
                            attempts = session.sent,
                            %error,
                            "not hedging: the inner service failed to become ready"
                        );
                        if this.first.is_none() && this.hedges.is_empty() {
                            session.done = true;
                            return Poll::Ready(Err(error));
                        }
                    }
                    Poll::Pending => {}
                }
            }

            // 5. Nothing in flight and nothing about to be sent: every attempt failed.
            if this.first.is_none() && this.hedges.is_empty() && session.readying.is_none() {
                session.done = true;
                this.timer.set(None);
                let last = session.last_failure.take();
                return Poll::Ready(last.expect("an attempt that ended without an answer failed"));
            }
            return Poll::Pending;
        }
    }
}

impl<S, Req, C> fmt::Debug for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts_sent", &self.session.sent)
            .field("first_in_flight", &self.first.is_some())
            .field("hedges_in_flight", &self.hedges.len())
            .field("delay", &self.session.delay)
            .finish_non_exhaustive()
    }
}
