//! Client-side adaptive throttling: the SRE formula under simulated backends (paused tokio
//! time), the sliding window, the options, the tower contract.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use proptest::prelude::*;
use steadfast_core::classify::{HttpClassifier, Outcome, classify_error};
use steadfast_core::error::{BoxError, Overloaded};
use steadfast_shed::{
    AdaptiveThrottleLayer, AdaptiveThrottleLayerBuilder, InvalidThrottleConfig, Throttled,
    throttle_reject_probability,
};
use steadfast_test_support::{CountingWaker, assert_send, contract, mock};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

/// What a backend does with the requests that reach it.
#[derive(Clone, Copy)]
enum Backend {
    /// Accepts at most this many requests per second, refuses the rest with `Overloaded`.
    Capacity(u32),
    /// Refuses `refuse` of every `of` requests (the last ones of each group).
    Refuses { refuse: u32, of: u32 },
    /// Fails every request with an error that is not about load.
    Broken,
}

/// How the client's requests ended.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sent: u64,
    throttled: u64,
}

impl Tally {
    fn throttled_fraction(&self) -> f64 {
        self.throttled as f64 / (self.sent + self.throttled) as f64
    }
}

/// Drives `rate` requests per second through `layer` for `duration` of paused time, to a
/// backend behaving as `backend`; returns the tally of the last `measured` of it.
async fn run<L>(
    layer: &L,
    backend: Backend,
    rate: u32,
    duration: Duration,
    measured: Duration,
) -> Tally
where
    L: Layer<BackendService>,
    L::Service: Service<(), Response = (), Error = BoxError>,
{
    let mut client = layer.layer(backend_service(backend));
    let interval = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let measure_from = start + duration - measured;
    let mut tally = Tally::default();
    while Instant::now() < start + duration {
        let result = client.ready().await.unwrap().call(()).await;
        if Instant::now() >= measure_from {
            match result {
                Err(err) if err.is::<Throttled>() => tally.throttled += 1,
                _ => tally.sent += 1,
            }
        }
        tokio::time::advance(interval).await;
    }
    tally
}

type BackendService =
    tower::util::ServiceFn<Box<dyn FnMut(()) -> std::future::Ready<Result<(), BoxError>>>>;

fn backend_service(backend: Backend) -> BackendService {
    let calls = Rc::new(Cell::new(0u32));
    let second = Rc::new(Cell::new((0u64, 0u32)));
    let start = Instant::now();
    let respond = move |()| {
        let n = calls.get();
        calls.set(n + 1);
        let result: Result<(), BoxError> = match backend {
            Backend::Capacity(per_second) => {
                let now = Instant::now().duration_since(start).as_secs();
                let (at, count) = second.get();
                let count = if at == now { count } else { 0 };
                second.set((now, count + 1));
                if count < per_second {
                    Ok(())
                } else {
                    Err(Overloaded::new().into())
                }
            }
            Backend::Refuses { refuse, of } => {
                if n % of >= of - refuse {
                    Err(Overloaded::new().into())
                } else {
                    Ok(())
                }
            }
            Backend::Broken => Err(io::Error::other("disk on fire").into()),
        };
        std::future::ready(result)
    };
    service_fn(Box::new(respond))
}

fn layer(k: f64) -> AdaptiveThrottleLayer {
    AdaptiveThrottleLayer::builder()
        .k(k)
        .seed(42)
        .build()
        .unwrap()
}

const MINUTE: Duration = Duration::from_secs(60);

fn assert_near(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual:.4}, expected {expected:.4} ± {tolerance}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_healthy_backend_is_never_throttled() {
    let layer = layer(2.0);
    let tally = run(
        &layer,
        Backend::Capacity(1_000),
        100,
        10 * MINUTE,
        10 * MINUTE,
    )
    .await;
    assert_eq!(tally.throttled, 0);
    assert_eq!(tally.sent, 60_000);
    let stats = layer.stats();
    // The window holds the current bucket and the 11 before it: here 110 s at 100/s.
    assert_eq!(stats.requests, 11_000);
    assert_eq!(stats.accepts, 11_000);
    assert_eq!(stats.reject_probability, 0.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn errors_that_are_not_overload_count_as_accepted() {
    // A broken backend is not an overloaded one: sending less would not help it.
    let layer = layer(2.0);
    let tally = run(&layer, Backend::Broken, 100, 5 * MINUTE, 5 * MINUTE).await;
    assert_eq!(tally.throttled, 0);
    assert_eq!(layer.stats().accepts, layer.stats().requests);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn converges_to_the_formula_under_a_backend_of_limited_capacity() {
    // Offered 100/s, the backend accepts 20/s: the client sends K·20 = 40/s and throttles
    // the rest, 1 − K·C/L = 0.6 (the backend itself refuses half of what it gets).
    let layer = layer(2.0);
    let tally = run(&layer, Backend::Capacity(20), 100, 10 * MINUTE, 5 * MINUTE).await;
    assert_near(tally.throttled_fraction(), 0.6, 0.03, "throttled fraction");

    let stats = layer.stats();
    assert_near(stats.reject_probability, 0.6, 0.03, "reported probability");
    assert_eq!(
        stats.reject_probability,
        throttle_reject_probability(stats.requests, stats.accepts, 2.0),
        "below the cap the layer applies the formula as is"
    );
    // 110 to 120 s of the backend's 20 accepts per second.
    assert_near(
        stats.accepts as f64,
        20.0 * 115.0,
        120.0,
        "accepts in the window",
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn k_sets_the_aggressiveness() {
    // Lower K throttles more: 1 − K·20/100 for K = 1.25, 2 and 4.
    let mut fractions = Vec::new();
    for (k, expected) in [(1.25, 0.75), (2.0, 0.6), (4.0, 0.2)] {
        let tally = run(
            &layer(k),
            Backend::Capacity(20),
            100,
            10 * MINUTE,
            5 * MINUTE,
        )
        .await;
        assert_near(
            tally.throttled_fraction(),
            expected,
            0.03,
            &format!("K = {k}"),
        );
        fractions.push(tally.throttled_fraction());
    }
    assert!(fractions.windows(2).all(|w| w[0] > w[1]), "{fractions:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_fixed_refusal_rate_throttles_nothing_or_up_to_the_cap() {
    // 25% refused: requests − 2·accepts < 0, nothing is throttled, ever.
    let tally = run(
        &layer(2.0),
        Backend::Refuses { refuse: 1, of: 4 },
        100,
        5 * MINUTE,
        5 * MINUTE,
    )
    .await;
    assert_eq!(tally.throttled, 0);

    // 75% refused: K·(accepted share) < 1, so the formula climbs until the cap holds it.
    let tally = run(
        &layer(2.0),
        Backend::Refuses { refuse: 3, of: 4 },
        100,
        5 * MINUTE,
        3 * MINUTE,
    )
    .await;
    assert_near(tally.throttled_fraction(), 0.8, 0.02, "capped at 0.8");

    // Without the cap (the SRE book's formula as is), almost nothing leaves.
    let uncapped = AdaptiveThrottleLayer::builder()
        .max_reject_probability(1.0)
        .seed(42)
        .build()
        .unwrap();
    let tally = run(
        &uncapped,
        Backend::Refuses { refuse: 3, of: 4 },
        100,
        5 * MINUTE,
        5 * MINUTE,
    )
    .await;
    assert!(tally.throttled_fraction() > 0.98, "{tally:?}");
    assert!(tally.sent > 0, "the formula never reaches 1: {tally:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_window_forgets_old_refusals() {
    let layer = layer(2.0);
    // 30 s of outage at the start: 100/s, all refused.
    let tally = run(
        &layer,
        Backend::Refuses { refuse: 1, of: 1 },
        100,
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    assert!(tally.throttled > 2_000, "{tally:?}");
    assert_near(
        layer.reject_probability(),
        0.8,
        1e-9,
        "capped during the outage",
    );

    // Still remembered at 119 s (the window is 120 s, in 10 s buckets)...
    tokio::time::advance(Duration::from_secs(89)).await;
    assert_eq!(layer.stats().requests, 3_000);
    assert_near(
        layer.reject_probability(),
        0.8,
        1e-9,
        "before the window passed",
    );
    // ...one bucket at a time forgotten after that...
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(layer.stats().requests, 1_000);
    // ...and gone once the window has passed.
    tokio::time::advance(Duration::from_secs(20)).await;
    let stats = layer.stats();
    assert_eq!((stats.requests, stats.accepts), (0, 0));
    assert_eq!(stats.reject_probability, 0.0);

    // The recovered backend gets everything.
    let tally = run(&layer, Backend::Capacity(1_000), 100, MINUTE, MINUTE).await;
    assert_eq!(tally.throttled, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn below_the_minimum_rate_nothing_is_throttled() {
    // 10 requests per second over 120 s: at least 1200 requests before any throttling.
    let layer = AdaptiveThrottleLayer::builder()
        .min_rate(10.0)
        .seed(42)
        .build()
        .unwrap();
    let down = Backend::Refuses { refuse: 1, of: 1 };
    let tally = run(&layer, down, 5, 2 * MINUTE, 2 * MINUTE).await;
    assert_eq!(
        tally.throttled, 0,
        "5 requests per second is below the minimum"
    );
    assert_eq!(layer.reject_probability(), 0.0);

    let tally = run(&layer, down, 50, MINUTE, Duration::from_secs(30)).await;
    assert_near(tally.throttled_fraction(), 0.8, 0.03, "above the minimum");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_throttled_request_never_reaches_the_backend_nor_waits_for_it() {
    let layer = AdaptiveThrottleLayer::builder()
        .max_reject_probability(1.0)
        .seed(3)
        .build()
        .unwrap();
    // Fill the window with refusals.
    run(
        &layer,
        Backend::Refuses { refuse: 1, of: 1 },
        100,
        Duration::from_secs(10),
        Duration::from_secs(10),
    )
    .await;
    assert!(layer.reject_probability() > 0.99);

    // A backend that is never ready: a throttled request does not wait for it.
    let (inner, handle) = mock::pair::<String, String>();
    handle.set_capacity(0);
    let client = layer.layer(inner);
    let waker = CountingWaker::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut service = client.clone();
        if let Poll::Ready(ready) = service.poll_ready(&mut waker.context()) {
            ready.unwrap();
            let err = service.call("ping".into()).await.unwrap_err();
            let throttled = err.downcast_ref::<Throttled>().expect("a local refusal");
            assert!(throttled.probability() > 0.99);
            refused += 1;
        }
    }
    assert!(refused >= 95, "{refused}");
    assert_eq!(handle.calls(), 0, "nothing reached the backend");
    drop(client);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_throttled_error_is_told_apart_from_a_server_rejection_but_is_an_overload() {
    let layer = AdaptiveThrottleLayer::builder()
        .max_reject_probability(1.0)
        .seed(5)
        .build()
        .unwrap();
    let mut client = layer.layer(backend_service(Backend::Refuses { refuse: 1, of: 1 }));
    let (mut local, mut remote) = (None, None);
    while local.is_none() || remote.is_none() {
        let err = client.ready().await.unwrap().call(()).await.unwrap_err();
        if err.is::<Throttled>() {
            local = Some(err);
        } else {
            remote = Some(err);
        }
    }
    let (local, remote) = (local.unwrap(), remote.unwrap());
    assert!(remote.is::<Overloaded>());
    assert!(!local.is::<Overloaded>());
    assert!(local.source().unwrap().is::<Overloaded>());
    // Classifiers (the retry layer's, the limiter's) see an overload.
    assert_eq!(classify_error(&*local).outcome(), Outcome::Overload);
    assert!(local.to_string().starts_with("request throttled locally"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn responses_are_classified_by_the_classifier() {
    // With the HTTP classifier a 503 is a refusal and a 500 is not.
    let layer = AdaptiveThrottleLayer::builder()
        .classifier(HttpClassifier::new())
        .seed(42)
        .build()
        .unwrap();
    let status = Rc::new(Cell::new(503u16));
    let backend = {
        let status = Rc::clone(&status);
        service_fn(move |()| {
            let response = http::Response::builder()
                .status(status.get())
                .body(())
                .unwrap();
            std::future::ready(Ok::<_, BoxError>(response))
        })
    };
    let mut client = layer.layer(backend);
    let mut throttled = 0;
    for _ in 0..200 {
        match client.ready().await.unwrap().call(()).await {
            Err(err) if err.is::<Throttled>() => throttled += 1,
            other => assert_eq!(other.unwrap().status(), 503),
        }
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(throttled > 100, "503 counts as a refusal: {throttled}");

    status.set(500);
    tokio::time::advance(Duration::from_secs(130)).await;
    for _ in 0..200 {
        let response = client.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(response.status(), 500);
    }
    assert_eq!(layer.stats().accepts, 200, "500 is not a refusal");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cancelled_call_counts_nothing() {
    let layer = layer(2.0);
    let (inner, handle) = mock::pair::<String, String>();
    handle.respond_manually();
    let mut client = layer.layer(inner);
    let future = client.ready().await.unwrap().call("ping".into());
    drop(future);
    let stats = layer.stats();
    assert_eq!((stats.requests, stats.accepts), (0, 0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn keeps_the_tower_service_contract() {
    contract::check_layer(AdaptiveThrottleLayer::new()).await;
    contract::check_http_layer(
        AdaptiveThrottleLayer::builder()
            .classifier(HttpClassifier::new())
            .build()
            .unwrap(),
    )
    .await;
}

#[test]
fn service_and_future_are_send() {
    type Svc = steadfast_shed::AdaptiveThrottle<mock::MockService<String, String>>;
    assert_send::<Svc>();
    assert_send::<<Svc as Service<String>>::Future>();
    assert_send::<AdaptiveThrottleLayer>();
    fn sync<T: Sync>() {}
    sync::<AdaptiveThrottleLayer>();
}

#[test]
fn bad_configuration_is_a_typed_error() {
    type B = AdaptiveThrottleLayerBuilder<steadfast_core::classify::ErrorsAsFailures>;
    type Configure = fn(B) -> B;
    let cases: [(&str, Configure); 9] = [
        ("k below 1", |b| b.k(0.5)),
        ("k NaN", |b| b.k(f64::NAN)),
        ("k infinite", |b| b.k(f64::INFINITY)),
        ("no buckets", |b| b.buckets(0)),
        ("too many buckets", |b| b.buckets(B::MAX_BUCKETS + 1)),
        ("empty window", |b| b.window(Duration::ZERO)),
        ("negative rate", |b| b.min_rate(-1.0)),
        ("probability above 1", |b| b.max_reject_probability(1.5)),
        ("probability NaN", |b| b.max_reject_probability(f64::NAN)),
    ];
    for (what, configure) in cases {
        let err: InvalidThrottleConfig = configure(AdaptiveThrottleLayer::builder())
            .build()
            .expect_err(what);
        assert!(!err.reason().is_empty(), "{what}");
        assert!(err.to_string().contains(err.reason()));
    }
    // The edges are valid.
    AdaptiveThrottleLayer::builder()
        .k(1.0)
        .buckets(B::MAX_BUCKETS)
        .window(Duration::from_nanos(B::MAX_BUCKETS as u64))
        .min_rate(0.0)
        .max_reject_probability(0.0)
        .build()
        .unwrap();
}

proptest! {
    #[test]
    fn the_probability_follows_the_sre_formula(
        requests in 0u64..1_000_000,
        accepts_share in 0.0f64..=1.0,
        k in 1.0f64..10.0,
    ) {
        let accepts = (requests as f64 * accepts_share) as u64;
        let p = throttle_reject_probability(requests, accepts, k);
        prop_assert!((0.0..1.0).contains(&p), "{p}");
        let expected = ((requests as f64 - k * accepts as f64) / (requests as f64 + 1.0)).max(0.0);
        prop_assert!((p - expected).abs() < 1e-12);
        // Zero exactly while the backend accepts at least 1/K of the requests.
        prop_assert_eq!(p == 0.0, requests as f64 <= k * accepts as f64);
        // More requests (refused or not) never lower it; more accepts and a higher K never
        // raise it.
        prop_assert!(throttle_reject_probability(requests + 1, accepts, k) >= p);
        if accepts < requests {
            prop_assert!(throttle_reject_probability(requests, accepts + 1, k) <= p);
        }
        prop_assert!(throttle_reject_probability(requests, accepts, k + 0.5) <= p);
    }
}
