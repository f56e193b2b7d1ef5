//! `LoadShedLayer`: tower's load-shedding semantics with steadfast's `Overloaded`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast_core::error::{BoxError, Overloaded};
use steadfast_shed::LoadShedLayer;
use steadfast_test_support::CountingWaker;
use steadfast_test_support::mock::{self, MockHandle, MockService};
use tower::{Layer, Service};

fn inner(capacity: usize) -> (MockService<u32, u32>, MockHandle<u32, u32>) {
    let (svc, handle) = mock::pair::<u32, u32>();
    handle.set_capacity(capacity);
    handle.respond_with(|r: &u32| Ok(r * 10));
    (svc, handle)
}

fn resolve<F: Future<Output = Result<u32, BoxError>>>(future: F) -> Result<u32, BoxError> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("the mock answers at once, and a rejection is immediate"),
    }
}

#[test]
fn forwards_when_the_inner_service_is_ready() {
    let (inner, handle) = inner(1);
    let mut svc = LoadShedLayer::new().layer(inner);
    let w = CountingWaker::new();
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    assert_eq!(resolve(svc.call(4)).expect("forwarded"), 40);
    assert_eq!(handle.calls(), 1);
}

#[test]
fn rejects_at_once_when_the_inner_service_is_not_ready() {
    let (inner, handle) = inner(0);
    let mut svc = LoadShedLayer::new()
        .retry_after(Duration::from_millis(1500))
        .layer(inner);
    let w = CountingWaker::new();
    // Ready even though the inner service is not.
    assert!(matches!(
        svc.poll_ready(&mut w.context()),
        Poll::Ready(Ok(()))
    ));
    let error = resolve(svc.call(1)).expect_err("shed");
    let overloaded = error.downcast_ref::<Overloaded>().expect("Overloaded");
    assert_eq!(overloaded.retry_after(), Some(Duration::from_millis(1500)));
    assert_eq!(
        handle.calls(),
        0,
        "a shed request never reaches the inner service"
    );
    // Once the inner service has capacity again, requests go through.
    handle.set_capacity(1);
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    assert_eq!(resolve(svc.call(2)).expect("forwarded"), 20);
}

#[test]
fn readiness_counts_once() {
    let (inner, handle) = inner(1);
    let mut svc = LoadShedLayer::new().layer(inner);
    let w = CountingWaker::new();
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    let first = svc.call(1);
    // No poll_ready in between: the second call is shed, not forwarded on stale readiness.
    let second = resolve(svc.call(2)).expect_err("shed");
    assert!(second.is::<Overloaded>());
    assert_eq!(resolve(first).expect("forwarded"), 10);
    assert_eq!(handle.calls(), 1);
}

#[test]
fn a_clone_does_not_inherit_readiness() {
    let (inner, handle) = inner(1);
    let mut svc = LoadShedLayer::new().layer(inner);
    let w = CountingWaker::new();
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    let mut clone = svc.clone();
    assert!(resolve(clone.call(1)).expect_err("shed").is::<Overloaded>());
    assert_eq!(handle.reserved(), 1, "the original keeps its reservation");
    drop(svc);
    assert_eq!(
        handle.available_permits(),
        1,
        "dropping it released the reservation"
    );
}

#[test]
fn inner_readiness_errors_pass_through() {
    let (inner, handle) = inner(1);
    let mut svc = LoadShedLayer::new().layer(inner);
    handle.fail_ready_with("broken");
    let w = CountingWaker::new();
    match svc.poll_ready(&mut w.context()) {
        Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "broken"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

#[test]
fn behaves_like_towers_load_shed() {
    // The same sequence of readiness through ours and through tower's: same outcomes.
    for capacity in [0, 1, 2] {
        let (a, ha) = inner(capacity);
        let (b, hb) = inner(capacity);
        let mut ours = LoadShedLayer::new().layer(a);
        let mut theirs = tower::load_shed::LoadShedLayer::new().layer(b);
        let w = CountingWaker::new();
        let mut held = (Vec::new(), Vec::new());
        for request in 0..4 {
            let r1 = ours.poll_ready(&mut w.context()).map_err(|e| e.to_string());
            let r2 = theirs
                .poll_ready(&mut w.context())
                .map_err(|e| e.to_string());
            assert_eq!(r1, r2);
            held.0.push(ours.call(request));
            held.1.push(theirs.call(request));
        }
        assert_eq!(ha.calls(), hb.calls(), "capacity {capacity}");
    }
}

#[test]
fn the_accept_path_allocates_nothing_and_a_rejection_once() {
    use std::convert::Infallible;
    use std::future::{Ready, ready};

    fn echo(r: u32) -> Ready<Result<u32, Infallible>> {
        ready(Ok(r))
    }
    let mut ready_svc = LoadShedLayer::new().layer(tower::service_fn(echo));
    let (never, _handle) = inner(0);
    let mut shedding = LoadShedLayer::new().layer(never);
    let w = CountingWaker::new();
    // Warm up lazily initialised statics (tracing callsites).
    let _ = ready_svc.poll_ready(&mut w.context());
    let _ = resolve(ready_svc.call(0));
    let _ = shedding.poll_ready(&mut w.context());
    let _ = resolve(shedding.call(0));

    let accepted = allocation_counter::measure(|| {
        for r in 0..1000 {
            let _ = ready_svc.poll_ready(&mut w.context());
            let _ = resolve(ready_svc.call(r));
        }
    });
    assert_eq!(accepted.count_total, 0);
    let rejected = allocation_counter::measure(|| {
        for r in 0..1000 {
            let _ = shedding.poll_ready(&mut w.context());
            let _ = resolve(shedding.call(r));
        }
    });
    // The `Overloaded` error boxed into a `BoxError` (16 bytes); nothing else.
    assert_eq!(rejected.count_total, 1000);
}
