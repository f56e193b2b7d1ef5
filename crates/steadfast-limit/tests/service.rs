//! The layer as a tower citizen: permits, waiting, failing fast, wait queues, classification,
//! timeouts.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use steadfast_core::classify::{ErrorsAsFailures, HttpClassifier};
use steadfast_core::error::{BoxError, Overloaded};
use steadfast_limit::algorithm::{Aimd, Gradient2, QueueSize, Vegas};
use steadfast_limit::{
    AdaptiveConcurrency, AdaptiveConcurrencyLayer, InvalidLimitConfig, Mode, TimedOut, WaitQueue,
    WindowConfig,
};
use steadfast_test_support::mock::{self, MockHandle, MockService};
use steadfast_test_support::{CountingWaker, assert_send, contract};
use tower::{Layer, Service, ServiceExt};

type Mock = MockService<String, String>;

/// A layer whose limit stays at `limit` unless told otherwise, every completion its own
/// update.
fn fixed(limit: usize, mode: Mode) -> AdaptiveConcurrencyLayer {
    AdaptiveConcurrencyLayer::builder()
        .algorithm(
            Aimd::new()
                .initial_limit(limit)
                .min_limit(limit)
                .max_limit(limit),
        )
        .window(WindowConfig::per_request())
        .mode(mode)
        .build()
        .unwrap()
}

fn manual(
    layer: &AdaptiveConcurrencyLayer,
) -> (
    AdaptiveConcurrency<Mock, ErrorsAsFailures>,
    MockHandle<String, String>,
) {
    let (inner, handle) = mock::pair::<String, String>();
    handle.respond_manually();
    (layer.layer(inner), handle)
}

fn poll<F: Future>(fut: Pin<&mut F>, waker: &CountingWaker) -> Poll<F::Output> {
    fut.poll(&mut waker.context())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn keeps_the_tower_service_contract_in_backpressure_and_queue_modes() {
    let layer = AdaptiveConcurrencyLayer::builder().build().unwrap();
    contract::check_layer(layer.clone()).await;
    assert_eq!(layer.stats().in_flight, 0, "no permit leaked");
    // With a limit of one, our own permit is what a clone waits for.
    contract::check_layer(fixed(1, Mode::Backpressure)).await;
    contract::check_layer(fixed(1, Mode::Queue(WaitQueue::default()))).await;
    contract::check_http_layer(
        AdaptiveConcurrencyLayer::builder()
            .classifier(HttpClassifier::new())
            .build()
            .unwrap(),
    )
    .await;
}

#[test]
fn service_and_future_are_send() {
    assert_send::<AdaptiveConcurrency<Mock, ErrorsAsFailures>>();
    assert_send::<<AdaptiveConcurrency<Mock, ErrorsAsFailures> as Service<String>>::Future>();
    assert_send::<AdaptiveConcurrencyLayer>();
    fn sync<T: Sync>() {}
    sync::<steadfast_limit::Limiter>();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn backpressure_waits_for_a_permit_and_wakes_first_come_first_served() {
    let layer = fixed(1, Mode::Backpressure);
    let (mut a, handle) = manual(&layer);
    let mut b = a.clone();
    let mut c = a.clone();
    let (wa, wb, wc) = (
        CountingWaker::new(),
        CountingWaker::new(),
        CountingWaker::new(),
    );

    assert!(a.poll_ready(&mut wa.context()).is_ready());
    assert!(b.poll_ready(&mut wb.context()).is_pending());
    assert!(c.poll_ready(&mut wc.context()).is_pending());
    assert_eq!(layer.stats().in_flight, 1);

    let mut fut = pin!(a.call("a".into()));
    let (_, responder) = handle.next_request().await;
    responder.ok("done".into());
    assert!(poll(fut.as_mut(), &wa).is_ready());
    // The permit went back; b waited first, so b is woken, c is not.
    assert_eq!((wb.wakes(), wc.wakes()), (1, 0));
    assert!(b.poll_ready(&mut wb.context()).is_ready());
    assert!(c.poll_ready(&mut wc.context()).is_pending());

    // b gives up without calling: its permit goes back and c is woken.
    drop(b);
    assert_eq!(wc.wakes(), 1);
    assert!(c.poll_ready(&mut wc.context()).is_ready());
    assert_eq!(layer.stats().in_flight, 1);
    drop(c);
    assert_eq!(layer.stats().in_flight, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_woken_waiter_that_goes_away_passes_the_wake_up_on() {
    let layer = fixed(1, Mode::Backpressure);
    let (mut a, _handle) = manual(&layer);
    let mut b = a.clone();
    let mut c = a.clone();
    let (wa, wb, wc) = (
        CountingWaker::new(),
        CountingWaker::new(),
        CountingWaker::new(),
    );
    assert!(a.poll_ready(&mut wa.context()).is_ready());
    assert!(b.poll_ready(&mut wb.context()).is_pending());
    assert!(c.poll_ready(&mut wc.context()).is_pending());
    drop(a); // releases the reserved permit: b is woken
    assert_eq!((wb.wakes(), wc.wakes()), (1, 0));
    drop(b); // ...but b never takes it: c must not be stranded
    assert_eq!(wc.wakes(), 1);
    assert!(c.poll_ready(&mut wc.context()).is_ready());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn permits_come_back_on_every_path() {
    let layer = fixed(2, Mode::Backpressure);
    let (mut svc, handle) = manual(&layer);
    let w = CountingWaker::new();

    // A response future dropped before it completes (a cancellation: ignored).
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    let fut = svc.call("x".into());
    assert_eq!(layer.stats().in_flight, 1);
    drop(fut);
    assert_eq!(layer.stats().in_flight, 0);
    assert_eq!(layer.stats().ignored, 1);
    let (_, cancelled) = handle.try_next_request().expect("the cancelled call");
    assert!(cancelled.is_cancelled());

    // A service dropped while holding a reservation.
    let mut other = svc.clone();
    assert!(other.poll_ready(&mut w.context()).is_ready());
    assert_eq!(layer.stats().in_flight, 1);
    drop(other);
    assert_eq!(layer.stats().in_flight, 0);

    // An error from the inner service (a failure: ignored).
    assert!(svc.poll_ready(&mut w.context()).is_ready());
    let mut fut = pin!(svc.call("x".into()));
    let (_, responder) = handle.next_request().await;
    responder.err("boom");
    assert!(matches!(poll(fut.as_mut(), &w), Poll::Ready(Err(_))));
    assert_eq!(layer.stats().in_flight, 0);
    assert_eq!(layer.stats().ignored, 2);

    // A readiness error from the inner service keeps nothing either.
    handle.fail_ready_with("not today");
    assert!(matches!(
        svc.poll_ready(&mut w.context()),
        Poll::Ready(Err(_))
    ));
    drop(svc);
    assert_eq!(layer.stats().in_flight, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fail_fast_refuses_without_reaching_the_inner_service() {
    let layer = fixed(1, Mode::FailFast);
    let (mut a, handle) = manual(&layer);
    let mut b = a.clone();
    let w = CountingWaker::new();
    assert!(a.poll_ready(&mut w.context()).is_ready());
    let _running = a.call("a".into());
    // Ready, but only to refuse.
    assert!(b.poll_ready(&mut w.context()).is_ready());
    let err = b.call("b".into()).await.unwrap_err();
    assert!(err.is::<Overloaded>(), "{err}");
    assert_eq!(handle.calls(), 1);
    let stats = layer.stats();
    assert_eq!((stats.rejections, stats.in_flight), (1, 1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fail_fast_tries_again_on_the_next_poll_ready() {
    let layer = fixed(1, Mode::FailFast);
    let (mut a, handle) = manual(&layer);
    let mut b = a.clone();
    let w = CountingWaker::new();
    assert!(a.poll_ready(&mut w.context()).is_ready());
    assert!(b.poll_ready(&mut w.context()).is_ready()); // would refuse
    drop(a);
    assert!(b.poll_ready(&mut w.context()).is_ready()); // now holds the permit
    let mut fut = pin!(b.call("b".into()));
    let (_, responder) = handle.next_request().await;
    responder.ok("ok".into());
    assert!(matches!(poll(fut.as_mut(), &w), Poll::Ready(Ok(_))));
    assert_eq!(layer.stats().rejections, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn outcomes_are_classified_into_samples_drops_and_ignores() {
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(Aimd::new().initial_limit(10))
        .window(WindowConfig::per_request())
        .build()
        .unwrap();
    let (inner, handle) = mock::pair::<String, String>();
    handle.respond_with(|req: &String| match req.as_str() {
        "overloaded" => Err(Overloaded::new().into()),
        "broken" => Err("broken".into()),
        _ => Ok("fine".into()),
    });
    let mut svc = layer.layer(inner);
    for req in ["ok", "ok", "overloaded", "broken"] {
        let _ = svc.ready().await.unwrap().call(req.to_string()).await;
    }
    let stats = layer.stats();
    assert_eq!((stats.successes, stats.drops, stats.ignored), (2, 1, 1));
    // 10 → 11 (used? in flight 1·2 < 10: no) ... AIMD only grows when used: stays 10, then
    // the drop: 9.
    assert_eq!(stats.limit, 9);
    assert_eq!(stats.updates, 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn http_overload_statuses_are_drops() {
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(Aimd::new().initial_limit(10))
        .window(WindowConfig::per_request())
        .classifier(HttpClassifier::new())
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|status: u16| async move {
        Ok::<_, BoxError>(http::Response::builder().status(status).body(()).unwrap())
    }));
    for status in [200, 503, 429, 500] {
        let res = svc.clone().oneshot(status).await.unwrap();
        assert_eq!(res.status(), status);
    }
    let stats = layer.stats();
    assert_eq!((stats.successes, stats.drops, stats.ignored), (1, 2, 1));
    assert_eq!(stats.limit, 8);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_layers_timeout_cancels_the_call_and_counts_a_drop() {
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(Aimd::new().initial_limit(10))
        .window(WindowConfig::per_request())
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let (mut svc, handle) = manual(&layer);
    let fut = svc.ready().await.unwrap().call("slow".into());
    let (_, responder) = handle.next_request().await;
    let err = fut.await.unwrap_err();
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut");
    assert_eq!(timed_out.timeout(), Duration::from_millis(50));
    assert!(responder.is_cancelled(), "the inner call was cancelled");
    let stats = layer.stats();
    assert_eq!((stats.drops, stats.in_flight, stats.limit), (1, 0, 9));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn rtt_is_measured_on_tokio_time_from_call() {
    // Gradient2 per request: first sample sets the baseline; the limit is used.
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(
            Gradient2::new()
                .initial_limit(1)
                .queue_size(QueueSize::Constant(4)),
        )
        .window(WindowConfig::per_request())
        .build()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, BoxError>(())
    }));
    svc.ready().await.unwrap().call(40).await.unwrap();
    // 1 · 0.8 + (1 · 1.0 + 4) · 0.2 = 1.8: the limit enforced is still 1.
    assert_eq!(layer.stats().limit, 1);
    svc.ready().await.unwrap().call(40).await.unwrap();
    assert_eq!(layer.stats().limit, 2);
    assert_eq!(layer.stats().successes, 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shrinking_never_revokes_and_growing_wakes_waiters() {
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(Aimd::new().initial_limit(3).max_limit(4))
        .window(WindowConfig::per_request())
        .build()
        .unwrap();
    let (svc, handle) = manual(&layer);
    let w = CountingWaker::new();
    let mut futs = Vec::new();
    for i in 0..3 {
        let mut s = svc.clone();
        assert!(s.poll_ready(&mut w.context()).is_ready());
        futs.push(Box::pin(s.call(format!("{i}"))));
    }
    let mut waiter = svc.clone();
    let ww = CountingWaker::new();
    assert!(waiter.poll_ready(&mut ww.context()).is_pending());

    // A drop: 3 → 2 while 3 are in flight. Nobody is revoked; the waiter is not woken
    // by the next release (3 → 2 in flight is not under the limit).
    let (_, r0) = handle.next_request().await;
    r0.err(Overloaded::new());
    assert!(poll(futs[0].as_mut(), &w).is_ready());
    assert_eq!((layer.stats().limit, layer.stats().in_flight), (2, 2));
    assert_eq!(ww.wakes(), 0);
    assert!(waiter.poll_ready(&mut ww.context()).is_pending());

    // A success with 3 in flight at admission (3·2 >= 2): 2 → 3, and 1 in flight: the
    // waiter is woken.
    let (_, r1) = handle.next_request().await;
    r1.ok("ok".into());
    assert!(poll(futs[1].as_mut(), &w).is_ready());
    assert_eq!((layer.stats().limit, layer.stats().in_flight), (3, 1));
    assert!(ww.wakes() >= 1);
    assert!(waiter.poll_ready(&mut ww.context()).is_ready());
}

#[test]
fn bad_configuration_is_refused_at_build() {
    let err = |b: Result<AdaptiveConcurrencyLayer, InvalidLimitConfig>| b.unwrap_err().to_string();
    assert!(
        err(AdaptiveConcurrencyLayer::builder()
            .algorithm(Aimd::new().backoff_ratio(1.5))
            .build())
        .contains("backoff_ratio")
    );
    assert!(
        err(AdaptiveConcurrencyLayer::builder()
            .algorithm(Vegas::new().min_limit(0))
            .build())
        .contains("min_limit")
    );
    assert!(
        err(AdaptiveConcurrencyLayer::builder()
            .window(WindowConfig::new().min_samples(0))
            .build())
        .contains("min_samples")
    );
    assert!(
        err(AdaptiveConcurrencyLayer::builder()
            .timeout(Duration::ZERO)
            .build())
        .contains("timeout")
    );
    assert!(
        err(AdaptiveConcurrencyLayer::builder()
            .mode(Mode::Queue(WaitQueue::lifo(0, Duration::from_secs(1))))
            .build())
        .contains("wait queue")
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_wait_queue_refuses_at_once() {
    let layer = fixed(1, Mode::Queue(WaitQueue::fifo(1, Duration::from_secs(1))));
    let (mut a, handle) = manual(&layer);
    let (mut b, mut c) = (a.clone(), a.clone());
    let w = CountingWaker::new();
    assert!(a.poll_ready(&mut w.context()).is_ready());
    assert!(b.poll_ready(&mut w.context()).is_pending(), "one may wait");
    assert!(
        c.poll_ready(&mut w.context()).is_ready(),
        "the queue is full: refuse"
    );
    let err = c.call("c".into()).await.unwrap_err();
    assert!(err.is::<Overloaded>());
    assert_eq!((layer.stats().rejections, handle.calls()), (1, 0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_queued_service_gives_up_after_the_queue_timeout() {
    let layer = fixed(
        1,
        Mode::Queue(WaitQueue::lifo(10, Duration::from_millis(100))),
    );
    let (mut a, _handle) = manual(&layer);
    let mut b = a.clone();
    let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
    assert!(a.poll_ready(&mut wa.context()).is_ready());
    assert!(b.poll_ready(&mut wb.context()).is_pending());
    tokio::time::advance(Duration::from_millis(99)).await;
    assert!(b.poll_ready(&mut wb.context()).is_pending());
    tokio::time::advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert!(wb.wakes() >= 1, "the timer wakes the waiter");
    assert!(b.poll_ready(&mut wb.context()).is_ready());
    let err = b.call("b".into()).await.unwrap_err();
    assert!(err.is::<Overloaded>());
    // It left the queue: a's permit coming back wakes nobody, and b can wait again.
    let before = wb.wakes();
    drop(a);
    assert_eq!(wb.wakes(), before);
    assert!(b.poll_ready(&mut wb.context()).is_ready());
    assert_eq!(layer.stats().in_flight, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn lifo_serves_the_newest_waiter_and_fifo_the_oldest() {
    for (queue, newest_first) in [
        (WaitQueue::lifo(10, Duration::from_secs(1)), true),
        (WaitQueue::fifo(10, Duration::from_secs(1)), false),
    ] {
        let layer = fixed(1, Mode::Queue(queue));
        let (mut a, _handle) = manual(&layer);
        let (mut old, mut new) = (a.clone(), a.clone());
        let (wa, wo, wn) = (
            CountingWaker::new(),
            CountingWaker::new(),
            CountingWaker::new(),
        );
        assert!(a.poll_ready(&mut wa.context()).is_ready());
        assert!(old.poll_ready(&mut wo.context()).is_pending());
        assert!(new.poll_ready(&mut wn.context()).is_pending());
        drop(a);
        let expected = if newest_first { (0, 1) } else { (1, 0) };
        assert_eq!((wo.wakes(), wn.wakes()), expected, "{queue:?}");
    }
}
