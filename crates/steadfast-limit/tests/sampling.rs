//! Which requests the layer times under heavy traffic (`WindowConfig::timed_per_window`):
//! about one in `stride`, whether each service makes many calls or, as under axum's
//! `Router::layer`, a fresh clone makes each call.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast_core::classify::ErrorsAsFailures;
use steadfast_limit::algorithm::{LimitAlgorithm, Sample};
use steadfast_limit::{AdaptiveConcurrency, AdaptiveConcurrencyLayer, WindowConfig};
use tower::util::ServiceFn;
use tower::{Layer, Service, ServiceExt, service_fn};

const LIMIT: usize = 10_000;
/// Requests timed per window the layer aims at.
const TIMED_PER_WINDOW: usize = 10;
const WINDOW: Duration = Duration::from_secs(1);
/// Requests per window: 100 times the timed share, so the stride becomes about 100.
const REQUESTS: usize = 1_000;

/// A fixed limit that keeps every window's sample.
#[derive(Debug, Clone, Default)]
struct Recorder {
    windows: Arc<Mutex<Vec<Sample>>>,
}

impl LimitAlgorithm for Recorder {
    fn limit(&self) -> usize {
        LIMIT
    }

    fn update(&mut self, sample: &Sample) -> usize {
        self.windows.lock().unwrap().push(*sample);
        LIMIT
    }
}

type Echo = ServiceFn<fn(()) -> Ready<Result<(), Infallible>>>;

fn layer(recorder: &Recorder) -> AdaptiveConcurrencyLayer {
    AdaptiveConcurrencyLayer::builder()
        .algorithm(recorder.clone())
        .window(
            WindowConfig::new()
                .min_window(WINDOW)
                .max_window(WINDOW)
                .min_rtt_threshold(Duration::ZERO)
                .timed_per_window(TIMED_PER_WINDOW),
        )
        .build()
        .unwrap()
}

fn echo(layer: &AdaptiveConcurrencyLayer) -> AdaptiveConcurrency<Echo, ErrorsAsFailures> {
    let respond: fn(()) -> Ready<Result<(), Infallible>> = |()| ready(Ok(()));
    layer.layer(service_fn(respond))
}

/// One window of `REQUESTS` calls, each through a fresh clone of `service` (what axum's
/// `Router::layer` does for every request), then, a window later, calls through one
/// long-lived clone until a timed one closes the window. Returns that window's sample.
async fn window_of_one_call_clones(
    service: &AdaptiveConcurrency<Echo, ErrorsAsFailures>,
    recorder: &Recorder,
) -> Sample {
    let closed = recorder.windows.lock().unwrap().len();
    for _ in 0..REQUESTS {
        service.clone().oneshot(()).await.unwrap();
    }
    tokio::time::advance(WINDOW + Duration::from_millis(1)).await;
    let mut closer = service.clone();
    for _ in 0..=REQUESTS {
        closer.ready().await.unwrap().call(()).await.unwrap();
        if let Some(sample) = recorder.windows.lock().unwrap().get(closed) {
            return *sample;
        }
    }
    panic!("no timed call closed the window");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn services_cloned_for_each_call_are_timed_one_in_stride() {
    let recorder = Recorder::default();
    let layer = layer(&recorder);
    let service = echo(&layer);
    assert_eq!(layer.limiter().timed_stride(), 1, "light traffic so far");

    // The first window sees the traffic: every request is timed until the stride moves.
    let first = window_of_one_call_clones(&service, &recorder).await;
    assert!(first.count > REQUESTS, "every call timed: {}", first.count);
    let stride = layer.limiter().timed_stride();
    assert!(
        (REQUESTS / TIMED_PER_WINDOW / 2..=REQUESTS / TIMED_PER_WINDOW).contains(&stride),
        "stride {stride} for {REQUESTS} requests a window, {TIMED_PER_WINDOW} to time"
    );

    // Heavy traffic now: each one-call clone is timed only at its turn in the layer's
    // count of first calls, not on its own first call.
    let second = window_of_one_call_clones(&service, &recorder).await;
    assert!(
        (TIMED_PER_WINDOW / 2..=TIMED_PER_WINDOW * 3).contains(&second.count),
        "about {TIMED_PER_WINDOW} of {REQUESTS} calls timed, not {}",
        second.count
    );
    assert_eq!(layer.stats().in_flight, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_long_lived_service_is_timed_one_in_stride() {
    let recorder = Recorder::default();
    let layer = layer(&recorder);
    let mut service = echo(&layer);
    for window in 0..2 {
        for _ in 0..REQUESTS {
            service.ready().await.unwrap().call(()).await.unwrap();
        }
        tokio::time::advance(WINDOW + Duration::from_millis(1)).await;
        // Calls until a timed one closes the window.
        for _ in 0..=REQUESTS {
            service.ready().await.unwrap().call(()).await.unwrap();
            if recorder.windows.lock().unwrap().len() > window {
                break;
            }
        }
    }
    let windows = recorder.windows.lock().unwrap();
    assert_eq!(windows.len(), 2);
    assert!(windows[0].count > REQUESTS, "every call timed at first");
    assert!(
        (TIMED_PER_WINDOW / 2..=TIMED_PER_WINDOW * 3).contains(&windows[1].count),
        "about {TIMED_PER_WINDOW} of {REQUESTS} calls timed, not {}",
        windows[1].count
    );
}
