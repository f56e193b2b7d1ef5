//! The response future of [`Retry`](crate::Retry).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::classify::{Classification, Classify, Outcome};
use steadfast_core::error::BoxError;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::backoff::BackoffState;
use crate::budget::{RetryCause, RetryPermit};
use crate::error::{AttemptTimedOut, DeadlineExceeded};
use crate::layer::Config;
use crate::replay::ReplayStrategy;
use crate::stats::Event;

pin_project! {
    /// Response future of [`Retry`](crate::Retry): runs attempts, sleeps between them, and
    /// resolves to the first result that should not (or cannot) be retried.
    ///
    /// Dropping it cancels the attempt in flight and every later one.
    pub struct ResponseFuture<S, Req, C, P, R>
    where
        R: ReplayStrategy<Req>,
        S: Service<R::Attempt>,
    {
        #[pin]
        state: State<S::Future, R::Attempt>,
        // One timer, reused: the attempt timeout or deadline while calling, the backoff
        // while sleeping.
        #[pin]
        timer: Option<Sleep>,
        timer_fires: TimerFires,
        service: S,
        saved: Option<R::Saved>,
        session: Session,
        config: Arc<Config<C, P, R>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, A> {
        Calling { #[pin] future: F },
        // The next attempt's request waits in the state, so it shares space with the
        // attempt in flight.
        Sleeping { next: Option<A> },
        Readying { next: Option<A> },
        Done,
    }
}

/// What the armed timer means when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerFires {
    Nothing,
    AttemptTimeout,
    Deadline,
    BackoffOver,
}

/// Per-call retry state.
#[derive(Debug)]
struct Session {
    attempts: u32,
    eligible: bool,
    backoff: BackoffState,
    deadline: Option<Instant>,
    permit: Option<RetryPermit>,
}

impl<S, Req, C, P, R> ResponseFuture<S, Req, C, P, R>
where
    R: ReplayStrategy<Req>,
    S: Service<R::Attempt>,
{
    #[inline]
    pub(crate) fn new(
        service: S,
        future: S::Future,
        eligible: bool,
        saved: Option<R::Saved>,
        config: Arc<Config<C, P, R>>,
    ) -> Self {
        // Everything is computed first and the future built in one literal at the end, so
        // it is constructed in place rather than copied (it is a few hundred bytes).
        let (deadline, timer, timer_fires) =
            if config.attempt_timeout.is_some() || config.deadline.is_some() {
                let now = Instant::now();
                let deadline = config.deadline.map(|d| now + d);
                let (at, fires) = attempt_end(&config.attempt_timeout, deadline, now);
                (deadline, Some(tokio::time::sleep_until(at)), fires)
            } else {
                (None, None, TimerFires::Nothing)
            };
        Self {
            state: State::Calling { future },
            timer,
            timer_fires,
            service,
            saved,
            session: Session {
                attempts: 1,
                eligible,
                backoff: BackoffState::new(),
                deadline,
                permit: None,
            },
            config,
        }
    }
}

fn attempt_end(
    attempt_timeout: &Option<Duration>,
    deadline: Option<Instant>,
    now: Instant,
) -> (Instant, TimerFires) {
    match (attempt_timeout.map(|t| now + t), deadline) {
        (Some(attempt), Some(deadline)) if attempt < deadline => {
            (attempt, TimerFires::AttemptTimeout)
        }
        (_, Some(deadline)) => (deadline, TimerFires::Deadline),
        (Some(attempt), None) => (attempt, TimerFires::AttemptTimeout),
        (None, None) => unreachable!("only called when a timeout or deadline is set"),
    }
}

/// Arms `timer` to fire at `at`, creating it the first time.
fn arm(mut timer: Pin<&mut Option<Sleep>>, at: Instant) {
    match timer.as_mut().as_pin_mut() {
        Some(sleep) => sleep.reset(at),
        None => timer.set(Some(tokio::time::sleep_until(at))),
    }
}

impl<S, Req, C, P, R> Future for ResponseFuture<S, Req, C, P, R>
where
    R: ReplayStrategy<Req>,
    S: Service<R::Attempt>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let mut timed_out = false;
                    let result = match future.poll(cx) {
                        Poll::Ready(result) => result.map_err(Into::into),
                        Poll::Pending => {
                            let fired = *this.timer_fires != TimerFires::Nothing
                                && this
                                    .timer
                                    .as_mut()
                                    .as_pin_mut()
                                    .is_some_and(|t| t.poll(cx).is_ready());
                            if !fired {
                                return Poll::Pending;
                            }
                            let config = &**this.config;
                            if *this.timer_fires == TimerFires::Deadline {
                                this.state.set(State::Done);
                                let err = DeadlineExceeded {
                                    deadline: config.deadline.unwrap_or_default(),
                                    attempts: this.session.attempts,
                                };
                                trace_give_up(config, this.session.attempts, "deadline exceeded");
                                return Poll::Ready(Err(err.into()));
                            }
                            timed_out = true;
                            Err(AttemptTimedOut {
                                timeout: config.attempt_timeout.unwrap_or_default(),
                            }
                            .into())
                        }
                    };
                    // The attempt is over: cancel it if it timed out, release the timer.
                    this.state.set(State::Done);
                    *this.timer_fires = TimerFires::Nothing;
                    match decide(
                        this.config,
                        this.session,
                        this.saved.as_ref(),
                        &result,
                        timed_out,
                    ) {
                        Decision::Return => return Poll::Ready(result),
                        Decision::Retry { request, delay } => {
                            drop(result);
                            let next = Some(request);
                            if delay.is_zero() {
                                this.state.set(State::Readying { next });
                            } else {
                                arm(this.timer.as_mut(), Instant::now() + delay);
                                *this.timer_fires = TimerFires::BackoffOver;
                                this.state.set(State::Sleeping { next });
                            }
                        }
                    }
                }
                StateProj::Sleeping { next } => {
                    if let Some(timer) = this.timer.as_mut().as_pin_mut() {
                        ready!(timer.poll(cx));
                    }
                    *this.timer_fires = TimerFires::Nothing;
                    let next = next.take();
                    this.state.set(State::Readying { next });
                }
                StateProj::Readying { next } => {
                    if let Err(err) = ready!(this.service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err.into()));
                    }
                    let request = next
                        .take()
                        .expect("a retry request is prepared before readying");
                    let config = &**this.config;
                    this.session.attempts += 1;
                    config.stats.record(Event::Retry, &config.name);
                    let future = this.service.call(request);
                    if config.attempt_timeout.is_some() || this.session.deadline.is_some() {
                        let (at, fires) = attempt_end(
                            &config.attempt_timeout,
                            this.session.deadline,
                            Instant::now(),
                        );
                        arm(this.timer.as_mut(), at);
                        *this.timer_fires = fires;
                    }
                    this.state.set(State::Calling { future });
                }
                StateProj::Done => panic!("retry ResponseFuture polled after completion"),
            }
        }
    }
}

enum Decision<A> {
    Return,
    Retry { request: A, delay: Duration },
}

/// After an attempt: return its result, or prepare the next attempt and say how long to
/// wait first.
fn decide<Req, Res, C, P, R>(
    config: &Config<C, P, R>,
    session: &mut Session,
    saved: Option<&R::Saved>,
    result: &Result<Res, BoxError>,
    timed_out: bool,
) -> Decision<R::Attempt>
where
    R: ReplayStrategy<Req>,
    C: Classify<Res>,
{
    let class: Classification = if timed_out {
        Classification::failure().retryable(true)
    } else {
        match result {
            Ok(response) => config.classifier.classify_response(response),
            Err(err) => config.classifier.classify_error(&**err),
        }
    };
    if class.outcome() == Outcome::Success {
        config.budget.on_success(session.permit.take());
        return Decision::Return;
    }
    if !class.is_retryable() {
        return Decision::Return;
    }
    config.budget.on_failure();
    let attempts = session.attempts;
    if attempts >= config.max_attempts {
        if session.eligible {
            config.stats.record(Event::GaveUp, &config.name);
            trace_give_up(config, attempts, "no attempts left");
        }
        return Decision::Return;
    }
    if !session.eligible {
        return Decision::Return;
    }
    let Some(saved) = saved else {
        config.stats.record(Event::NotReplayable, &config.name);
        trace_give_up(config, attempts, "request body over the replay cap");
        return Decision::Return;
    };

    let delay = match class.retry_after() {
        Some(hint) if hint > config.max_retry_after => {
            config.stats.record(Event::HintTooLong, &config.name);
            trace_give_up(config, attempts, "server hint longer than the cap");
            return Decision::Return;
        }
        Some(hint) => {
            // A server hint replaces the backoff and restarts it (gRPC A6).
            session.backoff.reset();
            hint
        }
        None => config.backoff.delay(&mut session.backoff, &*config.rng),
    };
    if let Some(deadline) = session.deadline
        && Instant::now() + delay >= deadline
    {
        if class.retry_after().is_some() {
            config.stats.record(Event::HintTooLong, &config.name);
        }
        trace_give_up(
            config,
            attempts,
            "the next attempt would start past the deadline",
        );
        return Decision::Return;
    }
    let Some(request) = config.strategy.again(saved, attempts + 1) else {
        config.stats.record(Event::NotReplayable, &config.name);
        trace_give_up(config, attempts, "request body cannot be replayed");
        return Decision::Return;
    };
    let cause = if timed_out {
        RetryCause::Timeout
    } else if class.outcome() == Outcome::Overload {
        RetryCause::Overload
    } else {
        RetryCause::Failure
    };
    let Some(permit) = config.budget.try_retry(cause) else {
        config.stats.record(Event::BudgetExhausted, &config.name);
        trace_give_up(config, attempts, "retry budget exhausted");
        return Decision::Return;
    };
    session.permit = Some(permit);
    tracing::debug!(
        target: "steadfast_retry",
        name = %config.name,
        attempt = attempts + 1,
        ?delay,
        ?cause,
        "retrying"
    );
    Decision::Retry { request, delay }
}

fn trace_give_up<C, P, R>(config: &Config<C, P, R>, attempts: u32, reason: &'static str) {
    tracing::debug!(
        target: "steadfast_retry",
        name = %config.name,
        attempts,
        reason,
        "not retrying"
    );
}

impl<S, Req, C, P, R> fmt::Debug for ResponseFuture<S, Req, C, P, R>
where
    R: ReplayStrategy<Req>,
    S: Service<R::Attempt>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.session.attempts)
            .finish_non_exhaustive()
    }
}
