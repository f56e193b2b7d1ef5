//! The [`AdaptiveConcurrency`] service.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast_core::classify::Classify;
use steadfast_core::error::BoxError;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::{Mode, QueueOrder};
use crate::limiter::{Admission, Limiter, NO_PARTITION, Permit};
use crate::partition::{NoPartitions, Partitioner};

/// The service made by [`AdaptiveConcurrencyLayer`](crate::AdaptiveConcurrencyLayer): admits
/// a request only with a permit from the shared [`Limiter`].
///
/// `poll_ready` reserves a permit (lock-free), then drives the inner service's
/// `poll_ready`; `call` starts the request's RTT clock and moves the permit into the
/// response future, which gives it back when the response arrives or when it is dropped.
/// Without a free permit, `poll_ready` is `Pending` in [`Mode::Backpressure`] (waiters are
/// woken oldest first when a permit frees up or the limit grows) and `Ready` in
/// [`Mode::FailFast`], where the `call` then fails at once with
/// [`Overloaded`](steadfast_core::error::Overloaded) without reaching the inner service.
/// [`Mode::Queue`] waits like backpressure, within the queue's capacity and timeout, and
/// then refuses like fail-fast.
///
/// With [partitions](crate::partition) (fail fast only), `poll_ready` reserves a permit
/// when the limit is not saturated, and otherwise still readies the inner service: `call`
/// then admits the request if its partition is under its guaranteed share, and refuses it
/// if not.
///
/// # Clone
///
/// A clone shares the limiter and clones the inner service, but not the permit reserved
/// by the service it was cloned from: it must be made ready on its own (tower's contract).
///
/// # Panics
///
/// `call` panics if `poll_ready` did not return `Ready(Ok(()))` first.
pub struct AdaptiveConcurrency<S, C, P = NoPartitions> {
    inner: S,
    classifier: C,
    timeout: Option<Duration>,
    partitioner: P,
    gate: Gate,
}

/// The service's side of the limiter: its reservation and its place among the waiters.
/// Kept apart from the inner service so that dropping it cleans up while
/// [`AdaptiveConcurrency::into_inner`] can still move the inner service out.
struct Gate {
    limiter: Arc<Limiter>,
    mode: Mode,
    state: State,
    /// This service's slot in the wait list, once it has waited.
    wait_key: Option<usize>,
    /// Queued (or woken) and not yet admitted.
    waiting: bool,
    /// The wait-queue timer ([`Mode::Queue`]): allocated the first time this service
    /// waits, then reset for each wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// Calls left before the next timed one (0: time the next call); [`FIRST_CALL`]
    /// before the service's first call, which takes its place in the layer's count
    /// ([`Limiter::first_untimed`]).
    untimed: usize,
}

/// [`Gate::untimed`] of a service that has not called yet.
const FIRST_CALL: usize = usize::MAX;

enum State {
    Idle,
    /// Holding one permit of the limiter, admitted with this many in flight.
    Reserved(usize),
    /// Fail-fast mode found no permit: the next `call` is refused.
    Rejecting,
}

impl<S, C, P> AdaptiveConcurrency<S, C, P> {
    pub(crate) fn new(
        inner: S,
        limiter: Arc<Limiter>,
        classifier: C,
        mode: Mode,
        timeout: Option<Duration>,
        partitioner: P,
    ) -> Self {
        Self {
            inner,
            classifier,
            timeout,
            partitioner,
            gate: Gate {
                limiter,
                mode,
                state: State::Idle,
                wait_key: None,
                waiting: false,
                timer: None,
                untimed: FIRST_CALL,
            },
        }
    }

    /// The limiter this service shares with the others of its layer.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.gate.limiter
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one (and giving back any reserved
    /// permit).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl Gate {
    /// Reserves a permit. `Ready(true)`: reserved; `Ready(false)`: none free and failing
    /// fast; `Pending`: queued for one.
    #[inline]
    fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if let Some(in_flight) = self.limiter.try_reserve() {
            self.admitted(in_flight);
            return Poll::Ready(true);
        }
        self.poll_wait(cx)
    }

    /// The slow part of [`poll_acquire`](Self::poll_acquire): no permit at the first try.
    #[inline(never)]
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let lifo = match self.mode {
            Mode::FailFast => return self.reject(),
            Mode::Backpressure => false,
            Mode::Queue(queue) => {
                if !self.waiting {
                    if self.limiter.waiters().queued() >= queue.capacity {
                        return self.reject();
                    }
                    let deadline = Instant::now() + queue.timeout;
                    // The service (not the request) owns one boxed timer, allocated the first
                    // time it queues and reset afterwards: no allocation per request.
                    match self.timer.as_mut() {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                queue.order == QueueOrder::Lifo
            }
        };
        self.limiter
            .waiters()
            .register(&mut self.wait_key, cx.waker(), lifo);
        self.waiting = true;
        // A permit released between the first try and the registration woke nobody: try
        // once more now that we are queued.
        if let Some(in_flight) = self.limiter.try_reserve() {
            self.admitted(in_flight);
            return Poll::Ready(true);
        }
        if let (Mode::Queue(_), Some(timer)) = (self.mode, self.timer.as_mut())
            && timer.as_mut().poll(cx).is_ready()
        {
            // Waited long enough: leave the queue (passing on a wake-up we did not use)
            // and refuse the call.
            self.leave_queue();
            return self.reject();
        }
        Poll::Pending
    }

    fn reject(&mut self) -> Poll<bool> {
        self.state = State::Rejecting;
        Poll::Ready(false)
    }

    fn leave_queue(&mut self) {
        self.waiting = false;
        if let Some(key) = self.wait_key.take() {
            self.limiter.waiters().remove(key);
        }
    }

    #[inline]
    fn admitted(&mut self, in_flight: usize) {
        if self.waiting {
            self.waiting = false;
            if let Some(key) = self.wait_key {
                self.limiter.waiters().satisfied(key);
            }
        }
        if let State::Reserved(_) = mem::replace(&mut self.state, State::Reserved(in_flight)) {
            // Never happens (a reserved service does not acquire again), but a permit
            // must not leak.
            self.limiter.release(NO_PARTITION);
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(key) = self.wait_key {
            self.limiter.waiters().remove(key);
        }
        if let State::Reserved(_) = self.state {
            self.limiter.release(NO_PARTITION);
        }
    }
}

impl<S: Clone, C: Clone, P: Clone> Clone for AdaptiveConcurrency<S, C, P> {
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            Arc::clone(&self.gate.limiter),
            self.classifier.clone(),
            self.gate.mode,
            self.timeout,
            self.partitioner.clone(),
        )
    }
}

impl<S: fmt::Debug, C, P> fmt::Debug for AdaptiveConcurrency<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveConcurrency")
            .field("inner", &self.inner)
            .field("limiter", &self.gate.limiter)
            .field("mode", &self.gate.mode)
            .field("reserved", &matches!(self.gate.state, State::Reserved(_)))
            .finish_non_exhaustive()
    }
}

impl<S, C, P, Req> Service<Req> for AdaptiveConcurrency<S, C, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response> + Clone,
    P: Partitioner<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if !matches!(self.gate.state, State::Reserved(_)) {
            match self.gate.poll_acquire(cx) {
                Poll::Pending => return Poll::Pending,
                // Fail fast: ready to refuse the call, the inner service is not needed;
                // unless the call's partition may still admit it.
                Poll::Ready(false) if !self.gate.limiter.is_partitioned() => {
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(_) => {}
            }
        }
        // Hold the permit while the inner service gets ready.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let limiter = &self.gate.limiter;
        let admission = match mem::replace(&mut self.gate.state, State::Idle) {
            State::Reserved(in_flight) => {
                let mut partition = NO_PARTITION;
                if limiter.is_partitioned()
                    && let Some(index) =
                        limiter.partition_index(self.partitioner.partition(&request))
                {
                    // Admitted under the limit: any partition may borrow.
                    partition = limiter.enter(index);
                }
                Ok(Admission::new(in_flight, partition))
            }
            State::Rejecting if limiter.is_partitioned() => {
                // Saturated at `poll_ready`: the request's partition may still be under
                // its guaranteed share.
                let index = limiter.partition_index(self.partitioner.partition(&request));
                limiter.try_reserve_in(index).ok_or(index)
            }
            State::Rejecting => Err(None),
            State::Idle => panic!("AdaptiveConcurrency::call before poll_ready returned Ready"),
        };
        match admission {
            Ok(admission) => {
                // Time every `stride`-th call (see `WindowConfig::timed_per_window`).
                let untimed = match self.gate.untimed {
                    FIRST_CALL => limiter.first_untimed(),
                    untimed => untimed,
                };
                let start = if untimed == 0 {
                    self.gate.untimed = limiter.timed_stride() - 1;
                    Some(Instant::now())
                } else {
                    self.gate.untimed = untimed - 1;
                    None
                };
                let permit = Permit::new(Arc::clone(limiter), admission, start);
                let future = self.inner.call(request);
                ResponseFuture::running(future, permit, self.classifier.clone(), self.timeout)
            }
            Err(partition) => {
                limiter.count_rejection();
                limiter.count_partition_rejection(partition);
                tracing::trace!(
                    target: "steadfast_limit",
                    name = %limiter.name(),
                    limit = limiter.limit(),
                    "request rejected: no permit"
                );
                ResponseFuture::rejected(self.classifier.clone())
            }
        }
    }
}
