//! The mock service: permit accounting, waking, readiness errors, responses, counters.

use std::pin::Pin;
use std::task::Poll;

use steadfast_core::error::BoxError;
use steadfast_test_support::mock::{self, MockHandle, MockService, ResponseFuture, UNLIMITED};
use steadfast_test_support::{CountingWaker, assert_send};
use tower_service::Service;

fn doubling(capacity: usize) -> (MockService<u32, u32>, MockHandle<u32, u32>) {
    let (service, handle) = mock::pair();
    handle.set_capacity(capacity);
    handle.respond_with(|n: &u32| Ok(n * 2));
    (service, handle)
}

fn poll_ready<S: Service<u32>>(
    service: &mut S,
    waker: &CountingWaker,
) -> Poll<Result<(), S::Error>> {
    service.poll_ready(&mut waker.context())
}

fn poll<F: Future + Unpin>(future: &mut F, waker: &CountingWaker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut waker.context())
}

#[test]
fn capacity_is_unlimited_by_default() {
    let (mut service, handle) = mock::pair::<u32, u32>();
    assert_eq!(handle.capacity(), UNLIMITED);
    let waker = CountingWaker::new();
    let mut clones: Vec<_> = (0..10).map(|_| service.clone()).collect();
    for clone in &mut clones {
        assert!(poll_ready(clone, &waker).is_ready());
    }
    assert!(poll_ready(&mut service, &waker).is_ready());
    assert_eq!(handle.reserved(), 11);
    assert_eq!(handle.available_permits(), UNLIMITED - 11);
    drop(clones);
    assert_eq!(handle.reserved(), 1);
}

#[test]
fn poll_ready_reserves_one_permit_per_clone() {
    let (mut a, handle) = doubling(2);
    let mut b = a.clone();
    let mut c = a.clone();
    let waker = CountingWaker::new();

    assert!(poll_ready(&mut a, &waker).is_ready());
    // Polling again keeps the same reservation.
    assert!(poll_ready(&mut a, &waker).is_ready());
    assert_eq!((handle.reserved(), handle.available_permits()), (1, 1));

    assert!(poll_ready(&mut b, &waker).is_ready());
    assert_eq!((handle.reserved(), handle.available_permits()), (2, 0));

    assert!(poll_ready(&mut c, &waker).is_pending());
    assert_eq!(waker.wakes(), 0);

    // Dropping a ready clone that never called returns its permit and wakes the waiter.
    drop(b);
    assert_eq!(waker.wakes(), 1);
    assert_eq!((handle.reserved(), handle.available_permits()), (1, 1));
    assert!(poll_ready(&mut c, &waker).is_ready());
    assert_eq!(handle.services_dropped(), 1);
}

#[test]
fn call_moves_the_permit_into_the_response_future() {
    let (mut a, handle) = doubling(1);
    let mut b = a.clone();
    let waker = CountingWaker::new();
    assert!(poll_ready(&mut a, &waker).is_ready());
    let mut response = a.call(4);
    assert_eq!((handle.reserved(), handle.in_flight()), (0, 1));
    assert_eq!(handle.calls(), 1);

    // The caller no longer holds a permit: it must poll_ready again.
    assert!(poll_ready(&mut a, &waker).is_pending());
    assert!(poll_ready(&mut b, &waker).is_pending());

    // Completing the response returns the permit, even before the future is dropped.
    assert!(matches!(poll(&mut response, &waker), Poll::Ready(Ok(8))));
    assert_eq!(handle.in_flight(), 0);
    assert!(waker.wakes() >= 1);
    drop(response);
    assert_eq!(handle.cancelled(), 0);
    assert!(poll_ready(&mut b, &waker).is_ready());
}

#[test]
fn dropping_a_pending_response_returns_the_permit_and_counts_a_cancellation() {
    let (mut a, handle) = doubling(1);
    let mut b = a.clone();
    let waker = CountingWaker::new();
    assert!(poll_ready(&mut a, &waker).is_ready());
    let response = a.call(1);
    assert!(poll_ready(&mut b, &waker).is_pending());

    drop(response);
    assert_eq!(handle.cancelled(), 1);
    assert_eq!((handle.in_flight(), handle.available_permits()), (0, 1));
    assert_eq!(waker.wakes(), 1);
    assert!(poll_ready(&mut b, &waker).is_ready());
}

#[test]
fn raising_capacity_wakes_waiters_and_lowering_revokes_nothing() {
    let (mut a, handle) = doubling(0);
    let waker = CountingWaker::new();
    assert!(poll_ready(&mut a, &waker).is_pending());
    // Re-polling with the same waker does not register it twice.
    assert!(poll_ready(&mut a, &waker).is_pending());

    handle.set_capacity(1);
    assert_eq!(waker.wakes(), 1);
    assert!(poll_ready(&mut a, &waker).is_ready());

    handle.set_capacity(0);
    assert_eq!((handle.reserved(), handle.available_permits()), (1, 0));
    let response = a.call(1);
    assert_eq!(handle.in_flight(), 1);
    drop(response);
    assert_eq!(handle.available_permits(), 0);
    assert!(poll_ready(&mut a, &waker).is_pending());
}

#[test]
fn fail_ready_with_fails_the_next_poll_ready_once() {
    let (mut a, handle) = doubling(1);
    let mut b = a.clone();
    let waker = CountingWaker::new();
    assert!(poll_ready(&mut a, &waker).is_ready());
    assert!(poll_ready(&mut b, &waker).is_pending());

    handle.fail_ready_with("not today");
    assert_eq!(waker.wakes(), 1, "waiters are woken to see the error");

    // A ready clone sees it too, and loses its reservation.
    match poll_ready(&mut a, &waker) {
        Poll::Ready(Err(error)) => assert_eq!(error.to_string(), "not today"),
        other => panic!("expected the scripted error, got {other:?}"),
    }
    assert_eq!(handle.reserved(), 0);
    assert!(poll_ready(&mut b, &waker).is_ready());
    assert!(poll_ready(&mut a, &waker).is_pending());
}

#[test]
#[should_panic(expected = "MockService::call without a reserved permit")]
fn call_without_poll_ready_panics() {
    let (mut service, _handle) = doubling(1);
    let _response = service.call(1);
}

#[test]
fn a_clone_does_not_inherit_the_reservation() {
    let (mut a, handle) = doubling(1);
    let waker = CountingWaker::new();
    assert!(poll_ready(&mut a, &waker).is_ready());
    let mut b = a.clone();
    assert!(poll_ready(&mut b, &waker).is_pending());
    drop(a);
    assert_eq!(waker.wakes(), 1);
    assert!(poll_ready(&mut b, &waker).is_ready());
    assert_eq!(handle.services_dropped(), 1);
}

#[test]
fn without_a_responder_calls_fail_with_a_hint() {
    let (mut service, _handle) = mock::pair::<u32, u32>();
    let waker = CountingWaker::new();
    assert!(poll_ready(&mut service, &waker).is_ready());
    let mut response = service.call(1);
    match poll(&mut response, &waker) {
        Poll::Ready(Err(error)) => assert!(error.to_string().contains("respond_with")),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn responder_closure_sees_the_request_and_can_fail() {
    let (mut service, handle) = mock::pair::<u32, u32>();
    handle.respond_with(|n: &u32| {
        if *n == 0 {
            Err(BoxError::from("zero"))
        } else {
            Ok(100 / n)
        }
    });
    let waker = CountingWaker::new();
    assert!(poll_ready(&mut service, &waker).is_ready());
    let mut ok = service.call(4);
    assert!(poll_ready(&mut service, &waker).is_ready());
    let mut err = service.call(0);
    assert!(matches!(poll(&mut ok, &waker), Poll::Ready(Ok(25))));
    assert!(matches!(poll(&mut err, &waker), Poll::Ready(Err(e)) if e.to_string() == "zero"));
    assert_eq!(handle.calls(), 2);
}

#[test]
fn manual_responses_wait_for_the_test() {
    let (mut service, handle) = doubling(UNLIMITED);
    handle.respond_manually();
    let waker = CountingWaker::new();

    let mut calls: Vec<ResponseFuture<u32>> = (1..=3)
        .map(|n| {
            assert!(poll_ready(&mut service, &waker).is_ready());
            service.call(n)
        })
        .collect();
    assert_eq!((handle.waiting_requests(), handle.in_flight()), (3, 3));
    for call in &mut calls {
        assert!(poll(call, &waker).is_pending());
    }

    let (one, responder) = handle.try_next_request().expect("first call");
    assert_eq!(one, 1);
    assert!(responder.ok(10));
    assert!(waker.wakes() >= 1);
    assert!(matches!(poll(&mut calls[0], &waker), Poll::Ready(Ok(10))));

    let (two, responder) = handle.try_next_request().expect("second call");
    assert_eq!(two, 2);
    assert!(responder.err("broken"));
    assert!(
        matches!(poll(&mut calls[1], &waker), Poll::Ready(Err(e)) if e.to_string() == "broken")
    );

    // A dropped response future cancels its responder; a dropped responder fails the call.
    let (_three, responder) = handle.try_next_request().expect("third call");
    drop(responder);
    assert!(matches!(poll(&mut calls[2], &waker), Poll::Ready(Err(_))));
    assert!(handle.try_next_request().is_none());

    assert!(poll_ready(&mut service, &waker).is_ready());
    let dropped = service.call(4);
    let (_, responder) = handle.try_next_request().expect("fourth call");
    drop(dropped);
    assert!(responder.is_cancelled());
    assert!(!responder.ok(0));
    assert_eq!(handle.cancelled(), 1);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn next_request_waits_for_a_call() {
    let (service, handle) = mock::pair::<&'static str, usize>();
    handle.respond_manually();
    let call = tokio::spawn(tower::ServiceExt::oneshot(service, "four"));
    let (request, responder) = handle.next_request().await;
    responder.ok(request.len());
    assert_eq!(call.await.expect("task").expect("response"), 4);
    assert_eq!(handle.services_dropped(), 1);
}

#[test]
fn debug_output_names_the_state() {
    let (service, handle) = doubling(3);
    assert!(format!("{service:?}").starts_with("MockService"));
    let handle_debug = format!("{handle:?}");
    assert!(handle_debug.contains("capacity: 3"), "{handle_debug}");
    assert!(handle_debug.contains("closure"), "{handle_debug}");
}

#[test]
fn mock_and_its_future_are_send() {
    assert_send::<MockService<String, String>>();
    assert_send::<MockHandle<String, String>>();
    assert_send::<ResponseFuture<String>>();
}
