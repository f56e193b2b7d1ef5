//! `ShedLayer` behaviour, driven by hand on paused tokio time against the mock service of
//! `steadfast-test-support` (a shared pool of permits; responses given by the test).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use steadfast_core::error::{BoxError, Overloaded};
use steadfast_shed::error::DeadlineExceeded;
use steadfast_shed::{Priority, ShedLayer, ShedStats};
use steadfast_test_support::mock::{self, MockHandle, MockService};
use steadfast_test_support::{CountingWaker, assert_send};
use tokio::time::{Instant, advance};
use tower::{Layer, Service};

const MS: Duration = Duration::from_millis(1);

type Pending<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>>>>;

/// A mock with `capacity` permits that the test answers by hand.
fn inner(capacity: usize) -> (MockService<u32, u32>, MockHandle<u32, u32>) {
    let (svc, handle) = mock::pair::<u32, u32>();
    handle.set_capacity(capacity);
    handle.respond_manually();
    (svc, handle)
}

fn poll<T>(future: &mut Pending<T>, waker: &CountingWaker) -> Poll<Result<T, BoxError>> {
    future.as_mut().poll(&mut waker.context())
}

/// `poll_ready` (always `Ready(Ok)` for a shedder) then `call`.
fn call_shed<S>(svc: &mut S, request: u32, waker: &CountingWaker) -> Pending<u32>
where
    S: Service<u32, Response = u32, Error = BoxError>,
    S::Future: 'static,
{
    match svc.poll_ready(&mut waker.context()) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => panic!("a shedder is always ready, got {e}"),
        Poll::Pending => panic!("a shedder is always ready, got Pending"),
    }
    Box::pin(svc.call(request))
}

/// Answers the next request the mock received with `request * 10`, and returns it.
fn answer(handle: &MockHandle<u32, u32>) -> u32 {
    let (request, responder) = handle
        .try_next_request()
        .expect("the inner service received a request");
    responder.ok(request * 10);
    request
}

fn expect_ok(poll: Poll<Result<u32, BoxError>>) -> u32 {
    match poll {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(e)) => panic!("expected a response, got the error {e}"),
        Poll::Pending => panic!("expected a response, still pending"),
    }
}

fn expect_err(poll: Poll<Result<u32, BoxError>>) -> BoxError {
    match poll {
        Poll::Ready(Err(e)) => e,
        Poll::Ready(Ok(r)) => panic!("expected an error, got the response {r}"),
        Poll::Pending => panic!("expected an error, still pending"),
    }
}

fn stats_of(layer: &ShedLayer<impl Sized, impl Sized>) -> ShedStats {
    layer.stats()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn forwards_when_ready_and_queues_when_not() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::new();
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();

    let mut a = call_shed(&mut svc, 1, &w);
    assert!(poll(&mut a, &w).is_pending());
    let mut b = call_shed(&mut svc, 2, &w);
    assert!(poll(&mut b, &w).is_pending(), "b waits instead of failing");
    let stats = stats_of(&layer);
    assert_eq!((stats.forwarded, stats.queued, stats.waiting), (1, 1, 1));
    assert_eq!(handle.calls(), 1, "b has not reached the inner service");

    assert_eq!(answer(&handle), 1);
    assert_eq!(expect_ok(poll(&mut a, &w)), 10);
    // The permit a gave back woke b, which is served now.
    assert!(w.wakes() > 0);
    assert!(poll(&mut b, &w).is_pending());
    assert_eq!(answer(&handle), 2);
    assert_eq!(expect_ok(poll(&mut b, &w)), 20);
    let stats = stats_of(&layer);
    assert_eq!((stats.served, stats.waiting), (1, 0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn clones_share_one_queue_in_arrival_order() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::new();
    let mut one = layer.layer(inner.clone());
    let mut two = layer.layer(inner);
    let mut three = one.clone();
    let w = CountingWaker::new();

    let mut a = call_shed(&mut one, 1, &w);
    let mut b = call_shed(&mut two, 2, &w);
    let mut c = call_shed(&mut three, 3, &w);
    for f in [&mut a, &mut b, &mut c] {
        assert!(poll(f, &w).is_pending());
    }
    assert_eq!(layer.stats().waiting, 2);
    // No standing queue: oldest first, whichever service they came through.
    for (future, request) in [(&mut a, 1), (&mut b, 2), (&mut c, 3)] {
        assert!(poll(future, &w).is_pending());
        assert_eq!(answer(&handle), request);
        assert_eq!(expect_ok(poll(future, &w)), request * 10);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn readiness_counts_once() {
    let (inner, handle) = inner(mock::UNLIMITED);
    let mut svc = ShedLayer::new().layer(inner);
    let w = CountingWaker::new();
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    assert_eq!(handle.reserved(), 1);
    let _a = svc.call(1);
    // A second call without poll_ready does not reuse the readiness: it queues, and only
    // reaches the inner service through its own readiness.
    let mut b: Pending<u32> = Box::pin(svc.call(2));
    assert_eq!(handle.calls(), 1);
    assert!(poll(&mut b, &w).is_pending());
    assert_eq!(handle.calls(), 2, "b was served through its own readiness");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_a_queued_request_leaves_the_queue_and_wakes_the_next() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::new();
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();

    let mut a = call_shed(&mut svc, 1, &w);
    let mut b = call_shed(&mut svc, 2, &w);
    let mut c = call_shed(&mut svc, 3, &w);
    for f in [&mut a, &mut b, &mut c] {
        assert!(poll(f, &w).is_pending());
    }
    assert_eq!(layer.stats().waiting, 2);

    let wakes = w.wakes();
    drop(b); // the head
    assert_eq!(layer.stats().waiting, 1, "b left the queue");
    assert!(w.wakes() > wakes, "c, the new head, was woken");
    assert!(poll(&mut c, &w).is_pending());

    assert_eq!(answer(&handle), 1);
    assert_eq!(expect_ok(poll(&mut a, &w)), 10);
    assert!(poll(&mut c, &w).is_pending());
    assert_eq!(answer(&handle), 3, "c took the permit b would have had");
    assert_eq!(expect_ok(poll(&mut c, &w)), 30);

    // Nothing leaked: every permit is back, nothing waits.
    assert_eq!((handle.available_permits(), handle.reserved()), (1, 0));
    assert_eq!(layer.stats().waiting, 0);
    assert_eq!(handle.cancelled(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_a_ready_service_or_a_running_call_releases_the_inner_permit() {
    let (inner, handle) = inner(1);
    let mut svc = ShedLayer::new().layer(inner);
    let w = CountingWaker::new();
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    assert_eq!(handle.reserved(), 1);
    drop(svc);
    assert_eq!(
        handle.available_permits(),
        1,
        "the reservation was released"
    );

    let (inner, handle) = self::inner(1);
    let mut svc = ShedLayer::new().layer(inner);
    let mut a = call_shed(&mut svc, 1, &w);
    assert!(poll(&mut a, &w).is_pending());
    assert_eq!(handle.in_flight(), 1);
    drop(a);
    assert_eq!(
        handle.available_permits(),
        1,
        "the running call's permit came back"
    );
    assert_eq!(handle.cancelled(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_queue_is_bounded() {
    let (inner, _handle) = inner(1);
    let layer = ShedLayer::builder()
        .capacity(2)
        .retry_after(Duration::from_secs(2))
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut held = Vec::new();
    for request in 1..=3 {
        let mut f = call_shed(&mut svc, request, &w);
        assert!(poll(&mut f, &w).is_pending());
        held.push(f);
    }
    let mut over = call_shed(&mut svc, 4, &w);
    let error = expect_err(poll(&mut over, &w));
    let overloaded = error.downcast_ref::<Overloaded>().expect("Overloaded");
    assert_eq!(overloaded.retry_after(), Some(Duration::from_secs(2)));
    let stats = layer.stats();
    assert_eq!((stats.waiting, stats.refused), (2, 1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_waiter_times_out_after_the_interval() {
    let (inner, _handle) = inner(1);
    let layer = ShedLayer::new();
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut a = call_shed(&mut svc, 1, &w);
    assert!(poll(&mut a, &w).is_pending());
    let mut b = call_shed(&mut svc, 2, &w);
    assert!(poll(&mut b, &w).is_pending());
    advance(99 * MS).await;
    assert!(poll(&mut b, &w).is_pending());
    advance(MS).await;
    assert!(expect_err(poll(&mut b, &w)).is::<Overloaded>());
    let stats = layer.stats();
    assert_eq!((stats.timed_out, stats.waiting), (1, 0));
}

/// A priority per request: 1xx `CriticalPlus`, 2xx `Critical`, 3xx `SheddablePlus`, 4xx
/// `Sheddable`.
fn by_hundreds(request: &u32) -> Priority {
    match request / 100 {
        1 => Priority::CriticalPlus,
        2 => Priority::Critical,
        3 => Priority::SheddablePlus,
        _ => Priority::Sheddable,
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn more_critical_requests_are_served_first() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::builder()
        .priority(by_hundreds)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 200, &w);
    let mut waiting: Vec<(u32, Pending<u32>)> = [400, 300, 401, 200, 100, 201]
        .into_iter()
        .map(|r| (r, call_shed(&mut svc, r, &w)))
        .collect();
    assert!(poll(&mut running, &w).is_pending());
    for (_, f) in &mut waiting {
        assert!(poll(f, &w).is_pending());
    }
    answer(&handle);
    expect_ok(poll(&mut running, &w));
    let mut order = Vec::new();
    while !waiting.is_empty() {
        for (_, f) in &mut waiting {
            let _ = poll(f, &w);
        }
        let served = answer(&handle);
        order.push(served);
        let at = waiting
            .iter()
            .position(|(r, _)| *r == served)
            .expect("a waiter");
        let (_, mut f) = waiting.remove(at);
        assert_eq!(expect_ok(poll(&mut f, &w)), served * 10);
    }
    assert_eq!(order, [100, 200, 201, 300, 400, 401]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_queue_evicts_less_critical_waiters() {
    let (inner, _handle) = inner(1);
    let layer = ShedLayer::builder()
        .priority(by_hundreds)
        .capacity(3)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 200, &w);
    // A batch request joins only while that leaves the queue at most half full: first.
    let mut batch = call_shed(&mut svc, 300, &w);
    let mut sheddable = call_shed(&mut svc, 400, &w);
    let mut sheddable2 = call_shed(&mut svc, 401, &w);
    for f in [&mut running, &mut sheddable, &mut batch, &mut sheddable2] {
        assert!(poll(f, &w).is_pending());
    }
    // Full: a sheddable request is refused; a critical one evicts the oldest waiter of
    // the least critical lane (400), then a `CriticalPlus` one the next (401), then a
    // critical one the batch request (300).
    let mut refused = call_shed(&mut svc, 402, &w);
    assert!(expect_err(poll(&mut refused, &w)).is::<Overloaded>());
    let mut critical = call_shed(&mut svc, 200, &w);
    assert!(poll(&mut critical, &w).is_pending());
    assert!(expect_err(poll(&mut sheddable, &w)).is::<Overloaded>());
    assert!(poll(&mut sheddable2, &w).is_pending());
    let mut plus = call_shed(&mut svc, 100, &w);
    assert!(poll(&mut plus, &w).is_pending());
    assert!(expect_err(poll(&mut sheddable2, &w)).is::<Overloaded>());
    let mut critical2 = call_shed(&mut svc, 201, &w);
    assert!(poll(&mut critical2, &w).is_pending());
    assert!(expect_err(poll(&mut batch, &w)).is::<Overloaded>());
    // Nothing less critical than a critical request is left to evict.
    let mut another = call_shed(&mut svc, 202, &w);
    assert!(expect_err(poll(&mut another, &w)).is::<Overloaded>());
    let stats = layer.stats();
    assert_eq!((stats.evicted, stats.refused, stats.waiting), (3, 2, 3));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn sheddable_requests_are_not_queued_once_a_queue_stands() {
    let (inner, _handle) = inner(1);
    let layer = ShedLayer::builder()
        .priority(by_hundreds)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 200, &w);
    let mut first = call_shed(&mut svc, 200, &w);
    assert!(poll(&mut running, &w).is_pending());
    assert!(poll(&mut first, &w).is_pending());
    // Within the interval, a sheddable request may still wait.
    let mut early = call_shed(&mut svc, 400, &w);
    assert!(poll(&mut early, &w).is_pending());
    advance(60 * MS).await;
    let mut second = call_shed(&mut svc, 200, &w);
    assert!(poll(&mut second, &w).is_pending());
    advance(41 * MS).await;
    // The queue has not been empty for 101 ms: it stands.
    let mut late = call_shed(&mut svc, 400, &w);
    assert!(expect_err(poll(&mut late, &w)).is::<Overloaded>());
    // A batch request still gets in, with a short budget: target / 2 once its lane stands.
    let mut batch = call_shed(&mut svc, 300, &w);
    assert!(poll(&mut batch, &w).is_pending());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn batch_requests_get_half_the_budget() {
    let (inner, _handle) = inner(1);
    let layer = ShedLayer::builder()
        .priority(by_hundreds)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 200, &w);
    let mut batch = call_shed(&mut svc, 300, &w);
    assert!(poll(&mut running, &w).is_pending());
    assert!(poll(&mut batch, &w).is_pending());
    advance(49 * MS).await;
    assert!(poll(&mut batch, &w).is_pending());
    advance(MS).await;
    assert!(expect_err(poll(&mut batch, &w)).is::<Overloaded>());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_standing_lane_switches_to_lifo() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::builder()
        .priority(by_hundreds)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    // `CriticalPlus` waiters are never sloughed and time out after the interval (100 ms):
    // only the order is at stake.
    let mut running = call_shed(&mut svc, 100, &w);
    let mut f101 = call_shed(&mut svc, 101, &w);
    // 101 becomes the head; 102 goes into the empty lane at t = 0.
    let mut f102 = call_shed(&mut svc, 102, &w);
    advance(10 * MS).await;
    let mut f103 = call_shed(&mut svc, 103, &w);
    advance(10 * MS).await;
    let mut f104 = call_shed(&mut svc, 104, &w);
    for f in [&mut running, &mut f101, &mut f102, &mut f103, &mut f104] {
        assert!(poll(f, &w).is_pending());
    }
    // t = 40 ms: the lane has not been empty for 40 ms, not standing yet: oldest first.
    advance(20 * MS).await;
    answer(&handle);
    expect_ok(poll(&mut running, &w));
    assert!(poll(&mut f101, &w).is_pending());
    assert_eq!(answer(&handle), 101);
    let mut f105 = call_shed(&mut svc, 105, &w);
    assert!(poll(&mut f105, &w).is_pending());
    // t = 95 ms: still not standing; serving 102 (chosen FIFO at t = 40) chooses 103.
    advance(55 * MS).await;
    expect_ok(poll(&mut f101, &w));
    assert!(poll(&mut f102, &w).is_pending());
    assert_eq!(answer(&handle), 102);
    expect_ok(poll(&mut f102, &w));
    // t = 105 ms: the lane (104, 105) has not been empty since t = 0: it stands, and
    // serving 103 chooses the newest, 105, not 104.
    advance(10 * MS).await;
    assert!(poll(&mut f103, &w).is_pending());
    assert_eq!(answer(&handle), 103);
    expect_ok(poll(&mut f103, &w));
    assert!(poll(&mut f105, &w).is_pending());
    assert_eq!(answer(&handle), 105);
    assert!(poll(&mut f104, &w).is_pending());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_more_critical_arrival_takes_the_heads_place() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::builder()
        .priority(by_hundreds)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 200, &w);
    let mut batch = call_shed(&mut svc, 300, &w);
    assert!(poll(&mut running, &w).is_pending());
    assert!(poll(&mut batch, &w).is_pending()); // the head, waiting for the permit
    let mut critical = call_shed(&mut svc, 200, &w);
    assert!(poll(&mut critical, &w).is_pending());
    assert!(poll(&mut batch, &w).is_pending()); // demoted: gives up its readiness wait
    answer(&handle);
    expect_ok(poll(&mut running, &w));
    assert!(poll(&mut critical, &w).is_pending());
    assert_eq!(answer(&handle), 200);
    expect_ok(poll(&mut critical, &w));
    assert!(poll(&mut batch, &w).is_pending());
    assert_eq!(answer(&handle), 300);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn expired_deadlines_are_refused_before_any_work() {
    let (inner, handle) = inner(mock::UNLIMITED);
    let layer = ShedLayer::builder()
        .deadline(|r: &u32, now: Instant| Some(now + *r * MS))
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut expired = call_shed(&mut svc, 0, &w);
    let error = expect_err(poll(&mut expired, &w));
    let deadline = error
        .downcast_ref::<DeadlineExceeded>()
        .expect("DeadlineExceeded");
    assert_eq!(deadline.expected_wait(), None);
    assert!(!error.is::<Overloaded>());
    assert_eq!(handle.calls(), 0);
    assert_eq!(
        handle.reserved(),
        0,
        "the readiness taken for it was given back"
    );
    let mut fine = call_shed(&mut svc, 5, &w);
    assert!(poll(&mut fine, &w).is_pending());
    assert_eq!(handle.calls(), 1);
    assert_eq!(layer.stats().deadline_exceeded, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_waiter_fails_at_its_deadline() {
    let (inner, _handle) = inner(1);
    let layer = ShedLayer::builder()
        .deadline(|r: &u32, now: Instant| Some(now + *r * MS))
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 1000, &w);
    let mut short = call_shed(&mut svc, 20, &w);
    assert!(poll(&mut running, &w).is_pending());
    assert!(poll(&mut short, &w).is_pending());
    advance(19 * MS).await;
    assert!(poll(&mut short, &w).is_pending());
    advance(MS).await;
    assert!(expect_err(poll(&mut short, &w)).is::<DeadlineExceeded>());
    assert_eq!(layer.stats().deadline_exceeded, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn unreachable_deadlines_are_refused_at_the_queueing_delay_estimate() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::builder()
        .deadline(|r: &u32, now: Instant| (*r > 0).then(|| now + *r * MS))
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    // One request at a time, each waiting 30 ms in the queue, for over two intervals (the
    // first one also saw the first request's fast path, a delay of zero).
    let mut current = call_shed(&mut svc, 0, &w);
    assert!(poll(&mut current, &w).is_pending());
    for _ in 0..8 {
        let mut next = call_shed(&mut svc, 0, &w);
        assert!(poll(&mut next, &w).is_pending());
        advance(30 * MS).await;
        answer(&handle);
        expect_ok(poll(&mut current, &w));
        assert!(poll(&mut next, &w).is_pending());
        current = next;
    }
    // The last interval's smallest queueing delay was 30 ms: with a queue, a deadline
    // 20 ms away cannot be met, one 40 ms away can.
    let mut queued = call_shed(&mut svc, 0, &w);
    assert!(poll(&mut queued, &w).is_pending());
    let mut hopeless = call_shed(&mut svc, 20, &w);
    let error = expect_err(poll(&mut hopeless, &w));
    let deadline = error
        .downcast_ref::<DeadlineExceeded>()
        .expect("DeadlineExceeded");
    assert_eq!(deadline.expected_wait(), Some(30 * MS));
    let mut hopeful = call_shed(&mut svc, 40, &w);
    assert!(poll(&mut hopeful, &w).is_pending());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn inner_readiness_errors_pass_through() {
    let (inner, handle) = inner(mock::UNLIMITED);
    let mut svc = ShedLayer::new().layer(inner);
    handle.fail_ready_with("broken");
    let w = CountingWaker::new();
    match svc.poll_ready(&mut w.context()) {
        Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "broken"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

#[test]
fn futures_and_services_are_send() {
    type Svc = steadfast_shed::Shed<MockService<u32, u32>>;
    assert_send::<Svc>();
    assert_send::<<Svc as Service<u32>>::Future>();
}

#[test]
fn bad_configuration_is_rejected_when_built() {
    assert!(ShedLayer::builder().target(Duration::ZERO).build().is_err());
    assert!(
        ShedLayer::builder()
            .target(Duration::from_millis(50))
            .interval(Duration::from_millis(10))
            .build()
            .is_err()
    );
    assert!(ShedLayer::builder().capacity(0).build().is_err());
    assert!(ShedLayer::builder().capacity(usize::MAX).build().is_err());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_fast_path_allocates_nothing() {
    use std::convert::Infallible;
    use std::future::{Ready, ready};
    use std::task::{Context, Waker};

    fn echo(r: u32) -> Ready<Result<u32, Infallible>> {
        ready(Ok(r))
    }
    let layer = ShedLayer::new();
    let mut svc = layer.layer(tower::service_fn(echo));
    let mut cx = Context::from_waker(Waker::noop());
    let mut once = |r: u32| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut future = std::pin::pin!(svc.call(r));
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    };
    once(0);
    let counted = allocation_counter::measure(|| {
        for r in 0..1000 {
            once(r);
        }
    });
    assert_eq!(counted.count_total, 0);
    assert_eq!(layer.stats().forwarded, 1001);
}

// Regression tests for the defects a review found (one per fix).

#[test]
fn absurd_delays_are_rejected_when_built() {
    let hour = Duration::from_secs(3600);
    for interval in [Duration::MAX, hour + MS] {
        let error = ShedLayer::builder()
            .interval(interval)
            .build()
            .expect_err("an interval over one hour");
        assert!(error.reason().contains("one hour"), "{error}");
    }
    assert!(
        ShedLayer::builder()
            .target(hour + MS)
            .interval(Duration::MAX)
            .build()
            .is_err()
    );
    assert!(
        ShedLayer::builder()
            .target(hour)
            .interval(hour)
            .build()
            .is_ok()
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_longest_accepted_delays_queue_without_panicking() {
    let (inner, handle) = inner(1);
    let hour = Duration::from_secs(3600);
    let layer = ShedLayer::builder()
        .target(hour)
        .interval(hour)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 1, &w);
    let mut queued = call_shed(&mut svc, 2, &w);
    assert!(poll(&mut running, &w).is_pending());
    assert!(poll(&mut queued, &w).is_pending());
    answer(&handle);
    expect_ok(poll(&mut running, &w));
    assert!(poll(&mut queued, &w).is_pending());
    assert_eq!(answer(&handle), 2);
    assert_eq!(expect_ok(poll(&mut queued, &w)), 20);
}

/// A caller that holds a ready shedder without calling it (tower's `ReadyCache`, or
/// `ready()` and no call) must not keep a place in the inner service's wait: the next free
/// permit would go to it instead of the queue's head, which would time out.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_held_ready_service_does_not_take_the_heads_capacity() {
    use tower::ServiceExt;
    let layer = ShedLayer::new();
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .service(tower::service_fn(|r: u32| async move {
            tokio::time::sleep(10 * MS).await;
            Ok::<_, std::convert::Infallible>(r)
        }));
    let mut first = svc.clone();
    let first = tokio::spawn(first.ready().await.expect("ready").call(1));
    // The permit is taken: this `ready()` finds the limit full, and the service is held.
    let mut holder = svc.clone();
    holder.ready().await.expect("a shedder is always ready");
    let mut second = svc.clone();
    let second = second.ready().await.expect("ready").call(2);
    let started = Instant::now();
    assert_eq!(second.await.expect("served when the permit came back"), 2);
    // Served when the first call ended (10 ms), then ran for 10 ms.
    assert_eq!(started.elapsed(), 20 * MS);
    assert_eq!(first.await.expect("no panic").expect("ok"), 1);
    let stats = layer.stats();
    assert_eq!((stats.served, stats.timed_out), (1, 0), "{stats:?}");
    drop(holder);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_critical_arrival_evicts_a_less_critical_head() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::builder()
        .priority(by_hundreds)
        .capacity(1)
        .build()
        .expect("valid");
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 200, &w);
    let mut sheddable = call_shed(&mut svc, 400, &w); // the head, in a queue of one
    assert!(poll(&mut running, &w).is_pending());
    assert!(poll(&mut sheddable, &w).is_pending());
    // Full, and no lane waiter to evict: the less critical head makes room.
    let mut critical = call_shed(&mut svc, 100, &w);
    assert!(poll(&mut critical, &w).is_pending());
    assert!(expect_err(poll(&mut sheddable, &w)).is::<Overloaded>());
    let stats = layer.stats();
    assert_eq!((stats.evicted, stats.refused, stats.waiting), (1, 0, 1));
    answer(&handle);
    expect_ok(poll(&mut running, &w));
    assert!(poll(&mut critical, &w).is_pending());
    assert_eq!(answer(&handle), 100);
    assert_eq!(expect_ok(poll(&mut critical, &w)), 1000);
    // A head as critical as the arrival stays: the arrival is refused.
    let mut head = call_shed(&mut svc, 201, &w);
    let mut head2 = call_shed(&mut svc, 202, &w);
    assert!(poll(&mut head, &w).is_pending());
    assert!(poll(&mut head2, &w).is_pending());
    let mut refused = call_shed(&mut svc, 203, &w);
    assert!(expect_err(poll(&mut refused, &w)).is::<Overloaded>());
}

/// A response future created and never polled that becomes the head must not hold up
/// every request behind it past its own timer.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unpolled_head_is_failed_when_its_timer_passes() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::new();
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    let mut running = call_shed(&mut svc, 1, &w);
    assert!(poll(&mut running, &w).is_pending());
    let mut forgotten = call_shed(&mut svc, 2, &w); // the head, never polled below
    advance(50 * MS).await;
    let mut patient = call_shed(&mut svc, 3, &w);
    assert!(poll(&mut patient, &w).is_pending());
    answer(&handle);
    expect_ok(poll(&mut running, &w));
    // t = 100 ms: the forgotten head's queue timeout passes; the next request to reach
    // the queue fails it, and the patient waiter becomes the head.
    advance(50 * MS).await;
    let wakes = w.wakes();
    let mut later = call_shed(&mut svc, 4, &w);
    assert!(poll(&mut later, &w).is_pending());
    assert!(w.wakes() > wakes, "the new head was woken");
    assert!(poll(&mut patient, &w).is_pending());
    assert_eq!(answer(&handle), 3);
    assert_eq!(expect_ok(poll(&mut patient, &w)), 30);
    assert!(expect_err(poll(&mut forgotten, &w)).is::<Overloaded>());
    let stats = layer.stats();
    assert_eq!(
        (stats.timed_out, stats.served),
        (1, 1),
        "counted once: {stats:?}"
    );
}

/// The slough check reads a current verdict: once the overloaded interval is over with
/// nothing observed, a waiter that waited long is served, not sloughed.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stale_overload_verdict_sloughs_nobody() {
    let (inner, handle) = inner(1);
    let layer = ShedLayer::new();
    let mut svc = layer.layer(inner);
    let w = CountingWaker::new();
    // One request at a time, each waiting 30 ms, until the lane is overloaded: that
    // verdict starts a new interval at the serve that made it.
    let mut current = call_shed(&mut svc, 0, &w);
    assert!(poll(&mut current, &w).is_pending());
    let mut rounds = 0;
    while !layer.stats().overloaded {
        rounds += 1;
        assert!(rounds < 20, "the lane became overloaded");
        let mut next = call_shed(&mut svc, 0, &w);
        assert!(poll(&mut next, &w).is_pending());
        advance(30 * MS).await;
        answer(&handle);
        expect_ok(poll(&mut current, &w));
        assert!(poll(&mut next, &w).is_pending());
        current = next;
    }
    // `current` runs; two requests queue behind it, and nothing leaves the queue for
    // longer than the interval.
    advance(6 * MS).await;
    let mut first = call_shed(&mut svc, 1, &w);
    assert!(poll(&mut first, &w).is_pending());
    advance(4 * MS).await;
    let mut second = call_shed(&mut svc, 2, &w);
    assert!(poll(&mut second, &w).is_pending());
    advance(95 * MS).await;
    assert!(!layer.stats().overloaded, "the verdict is stale");
    answer(&handle);
    expect_ok(poll(&mut current, &w));
    // `first` is served; `second`, 95 ms in the queue, becomes the head.
    assert!(poll(&mut first, &w).is_pending());
    assert_eq!(answer(&handle), 1);
    assert!(poll(&mut second, &w).is_pending(), "not sloughed");
    expect_ok(poll(&mut first, &w));
    assert!(poll(&mut second, &w).is_pending());
    assert_eq!(answer(&handle), 2);
    assert_eq!(layer.stats().sloughed, 0);
}

/// Wakers run after the queue's lock is released: a waker that looks at the queue (here,
/// reads the stats) does not deadlock.
#[test]
fn wakers_run_outside_the_lock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    struct LooksAtTheQueue {
        layer: ShedLayer,
        wakes: AtomicUsize,
    }
    impl Wake for LooksAtTheQueue {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let _ = self.layer.stats();
            self.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }

    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let _entered = runtime.enter();
        let (inner, _handle) = inner(1);
        let layer = ShedLayer::new();
        let looker = Arc::new(LooksAtTheQueue {
            layer: layer.clone(),
            wakes: AtomicUsize::new(0),
        });
        let waker = Waker::from(Arc::clone(&looker));
        let mut cx = Context::from_waker(&waker);
        let mut svc = layer.layer(inner);
        let w = CountingWaker::new();
        let mut running = call_shed(&mut svc, 1, &w);
        let mut head = call_shed(&mut svc, 2, &w);
        let mut next = call_shed(&mut svc, 3, &w);
        assert!(running.as_mut().poll(&mut cx).is_pending());
        assert!(head.as_mut().poll(&mut cx).is_pending());
        assert!(next.as_mut().poll(&mut cx).is_pending());
        drop(head); // `next` becomes the head and is woken
        let _ = done.send(looker.wakes.load(Ordering::SeqCst));
    });
    let wakes = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("no deadlock: the waker ran after the lock was released");
    assert!(wakes > 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn batch_requests_join_only_while_the_queue_stays_at_most_half_full() {
    for (capacity, admitted) in [(3, false), (4, true)] {
        let (inner, _handle) = inner(1);
        let layer = ShedLayer::builder()
            .priority(by_hundreds)
            .capacity(capacity)
            .build()
            .expect("valid");
        let mut svc = layer.layer(inner);
        let w = CountingWaker::new();
        let mut running = call_shed(&mut svc, 200, &w);
        let mut waiting = call_shed(&mut svc, 200, &w);
        assert!(poll(&mut running, &w).is_pending());
        assert!(poll(&mut waiting, &w).is_pending());
        // One waiter; a second would make 2 of `capacity`.
        let mut batch = call_shed(&mut svc, 300, &w);
        let result = poll(&mut batch, &w);
        assert_eq!(result.is_pending(), admitted, "capacity {capacity}");
    }
}
