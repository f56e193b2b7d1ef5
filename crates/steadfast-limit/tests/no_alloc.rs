//! A request through the layer allocates nothing: acquiring the permit, running the call,
//! classifying the outcome, closing sampling windows and giving the permit back, in every
//! mode, timed or not (a counting global allocator, from the `allocation-counter` crate,
//! watches them).
//!
//! The errors the layer creates itself (`Overloaded` when it refuses a call, `TimedOut`)
//! are boxed into a `BoxError`, so a refusal allocates once; that is not the success path.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use allocation_counter::measure;
use steadfast_core::classify::HttpClassifier;
use steadfast_limit::algorithm::{Aimd, Gradient2, Vegas};
use steadfast_limit::{AdaptiveConcurrencyLayer, Limiter, Mode, WaitQueue, WindowConfig};
use tower::{Layer, Service, service_fn};

const CALLS: u64 = 100_000;

fn call_once<S>(service: &mut S, request: u64) -> S::Response
where
    S: Service<u64>,
    S::Error: fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("not ready: {other:?}"),
    }
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(err)) => panic!("the call failed: {err:?}"),
        Poll::Pending => panic!("not ready on the first poll"),
    }
}

fn echo(request: u64) -> Ready<Result<u64, Infallible>> {
    ready(Ok(request))
}

/// Windows of 500 µs of real time with at least 10 timed requests: hundreds to thousands of
/// windows close during the run, and the stride of timed requests moves above 1. The window
/// is long enough that a slow, loaded debug build (up to about 25 µs per call) still sees
/// more than 20 calls per window; with 50 µs windows a loaded CI machine saw fewer than 20
/// and the stride stayed at 1.
fn short_windows() -> WindowConfig {
    let window = Duration::from_micros(500);
    WindowConfig::new()
        .min_window(window)
        .max_window(window)
        .min_rtt_threshold(Duration::ZERO)
        .timed_per_window(10)
}

#[test]
fn the_success_path_never_allocates() {
    let modes = [
        Mode::Backpressure,
        Mode::FailFast,
        Mode::Queue(WaitQueue::default()),
    ];
    for mode in modes {
        for window in [
            WindowConfig::new(),
            WindowConfig::per_request(),
            short_windows(),
        ] {
            let layer = AdaptiveConcurrencyLayer::builder()
                .algorithm(Gradient2::new().initial_limit(100))
                .window(window)
                .mode(mode)
                .build()
                .expect("valid");
            let mut service = layer.layer(service_fn(echo));
            // One warm-up call: lazily initialised statics (tracing's callsites) may
            // allocate once per process.
            call_once(&mut service, 0);
            let counts = measure(|| {
                for i in 0..CALLS {
                    std::hint::black_box(call_once(&mut service, i));
                }
            });
            assert_eq!(
                counts.count_total, 0,
                "{mode:?} {window:?}: {counts:?} for {CALLS} calls"
            );
            let stats = layer.stats();
            assert_eq!(stats.successes, CALLS + 1);
            assert_eq!((stats.in_flight, stats.rejections), (0, 0));
        }
    }
}

#[test]
fn windows_close_and_limits_move_without_allocating() {
    for (name, layer) in [
        (
            "aimd",
            AdaptiveConcurrencyLayer::builder()
                .algorithm(Aimd::new().initial_limit(10))
                .window(WindowConfig::per_request())
                .build(),
        ),
        (
            "vegas",
            AdaptiveConcurrencyLayer::builder()
                .algorithm(Vegas::new().seed(1))
                .window(short_windows())
                .build(),
        ),
        (
            "gradient2",
            AdaptiveConcurrencyLayer::builder()
                .algorithm(Gradient2::new())
                .window(short_windows())
                .build(),
        ),
    ] {
        let layer = layer.expect("valid");
        let mut service = layer.layer(service_fn(echo));
        call_once(&mut service, 0);
        // Batches until more than 10 windows closed: a fast machine (or a release build)
        // runs a batch within a few windows of real time.
        let counts = measure(|| {
            for _ in 0..50 {
                for i in 0..CALLS {
                    std::hint::black_box(call_once(&mut service, i));
                }
                if layer.stats().updates > 10 {
                    break;
                }
            }
        });
        assert_eq!(counts.count_total, 0, "{name}: {counts:?}");
        assert!(layer.stats().updates > 10, "{name}: {:?}", layer.stats());
        if name != "aimd" {
            let stride = layer.limiter().timed_stride();
            assert!(stride > 1, "{name}: heavy traffic, yet every call is timed");
        }
    }
}

#[test]
fn drops_never_allocate() {
    // A 503 is an overload: a drop, always reported to the window, timed or not.
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(Aimd::new().initial_limit(100).min_limit(100).max_limit(100))
        .window(short_windows())
        .classifier(HttpClassifier::new())
        .build()
        .expect("valid");
    let backend = service_fn(|_: u64| {
        let mut response = http::Response::new(());
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        ready(Ok::<_, Infallible>(response))
    });
    let mut service = layer.layer(backend);
    call_once(&mut service, 0);
    let counts = measure(|| {
        for i in 0..CALLS {
            std::hint::black_box(call_once(&mut service, i));
        }
    });
    assert_eq!(counts.count_total, 0, "{counts:?}");
    assert_eq!(layer.stats().drops, CALLS + 1);
}

#[test]
fn the_limiter_alone_never_allocates() {
    let limiter =
        Arc::new(Limiter::new(Gradient2::new(), WindowConfig::per_request()).expect("valid"));
    limiter.try_acquire().expect("a permit").success();
    let counts = measure(|| {
        for i in 0..CALLS {
            let permit = limiter.try_acquire().expect("a permit");
            match i % 3 {
                0 => permit.success(),
                1 => permit.ignore(),
                _ => drop(permit),
            }
        }
    });
    assert_eq!(counts.count_total, 0, "{counts:?}");
}
