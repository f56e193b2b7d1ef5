//! `ShedLayer` behaviour, driven by hand on paused tokio time against the mock service of
//! `steadfast-test-support` (a shared pool of permits; responses given by the test).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use steadfast_core::error::{BoxError, Overloaded};
use steadfast_shed::error::DeadlineExceeded;
use steadfast_shed::{Priority, ShedLayer, ShedStats};
use steadfast_test_support::CountingWaker;
use steadfast_test_support::mock::{self, MockHandle, MockService};
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
    let mut sheddable = call_shed(&mut svc, 400, &w);
    let mut batch = call_shed(&mut svc, 300, &w); // more critical: takes the head's place
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
    // `CriticalPlus` waiters never time out early and are never sloughed: only the
    // order is at stake.
    let mut running = call_shed(&mut svc, 100, &w);
    let mut waiting = vec![(101, call_shed(&mut svc, 101, &w))];
    advance(10 * MS).await;
    waiting.push((102, call_shed(&mut svc, 102, &w)));
    advance(10 * MS).await;
    waiting.push((103, call_shed(&mut svc, 103, &w)));
    assert!(poll(&mut running, &w).is_pending());
    for (_, f) in &mut waiting {
        assert!(poll(f, &w).is_pending());
    }
    // 101 is the head; 102 and 103 wait in the lane, which has not been empty since 102
    // arrived (t = 10 ms). At t = 40 ms it is not standing yet: oldest first.
    advance(20 * MS).await;
    answer(&handle);
    expect_ok(poll(&mut running, &w));
    let mut f101 = waiting.remove(0).1;
    assert!(poll(&mut f101, &w).is_pending());
    assert_eq!(answer(&handle), 101);
    // Serving 101 chose 102 (FIFO) as the next head. Add 104 and let the lane stand.
    let mut f104 = call_shed(&mut svc, 104, &w);
    let mut f105 = call_shed(&mut svc, 105, &w);
    assert!(poll(&mut f104, &w).is_pending());
    assert!(poll(&mut f105, &w).is_pending());
    advance(80 * MS).await; // t = 120 ms: the lane (103, 104, 105) stood since t = 20 ms
    expect_ok(poll(&mut f101, &w));
    let mut f102 = waiting.remove(0).1;
    assert!(poll(&mut f102, &w).is_pending());
    assert_eq!(answer(&handle), 102);
    expect_ok(poll(&mut f102, &w));
    // Newest first now: 105, not 103.
    assert!(poll(&mut f105, &w).is_pending());
    assert_eq!(answer(&handle), 105);
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

fn is_send<T: Send>(_: &T) {}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn futures_and_services_are_send() {
    let (inner, _handle) = inner(1);
    let mut svc = ShedLayer::new().layer(inner);
    is_send(&svc);
    is_send(&svc.call(1));
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
