//! The cost of load shedding per request, one thread: tower's `LoadShed` against
//! steadfast-shed's `LoadShedLayer`, on the path every accepted request pays and on the
//! reject path, plus the client-side `AdaptiveThrottleLayer`.
//!
//! Groups:
//!
//! - `shed_accepted/1_thread`: a ready no-op service (a `u64` echoed back) behind each
//!   layer; every request is accepted. Rows: `baseline` (the bare service), `tower`
//!   (`tower::load_shed::LoadShed`), `steadfast` (`LoadShedLayer::new()`), `throttle`
//!   (`AdaptiveThrottleLayer::new()`, the SRE defaults, healthy backend: the probability is
//!   0, so no random draw). `reference/clock_read` is not a layer: one
//!   `tokio::time::Instant::now()`, the clock read the throttle makes per request.
//! - `shed_reject/1_thread`: the reject path. For the shedders the inner service is never
//!   ready, so every call fails at once with the shedder's error: `tower`, `steadfast`
//!   (no retry-after hint) and `steadfast/retry_after` (a 1 s hint). For the throttle,
//!   `throttle` refuses locally with probability ≈ 1 (uncapped, its window full of
//!   refusals by an always-overloaded backend; about one call per window still passes).
//!
//! Every row is driven without a runtime: `poll_ready`, `call`, one poll of the response
//! future with a no-op waker (which must resolve at once), drop.
//!
//! Run with `cargo bench -p steadfast-benches --bench shed`; see `benches/README.md`.

use std::future::{self, Ready};
use std::hint::black_box;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast_benches::call_once;
use steadfast_core::error::{BoxError, Overloaded};
use steadfast_shed::{AdaptiveThrottleLayer, LoadShedLayer, Throttled};
use tower::load_shed::LoadShedLayer as TowerLoadShedLayer;
use tower::{Layer, Service, service_fn};

fn echo(request: u64) -> Ready<Result<u64, io::Error>> {
    future::ready(Ok(request))
}

/// Always overloaded: ready at once, refuses every call.
fn overloaded(_: u64) -> Ready<Result<u64, Overloaded>> {
    future::ready(Err(Overloaded::new()))
}

/// A service that is never ready: every request to a shedder in front of it is shed.
#[derive(Debug, Clone, Copy)]
struct NeverReady;

impl Service<u64> for NeverReady {
    type Response = u64;
    type Error = io::Error;
    type Future = Ready<Result<u64, io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Pending
    }

    fn call(&mut self, _request: u64) -> Self::Future {
        unreachable!("never ready, never called")
    }
}

/// One refused call: `poll_ready` (must be ready), `call`, one poll of the response future
/// (must fail at once). Returns the error, which the caller drops.
fn reject_once<S>(service: &mut S, request: u64) -> S::Error
where
    S: Service<u64>,
    S::Response: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(_)) => panic!("poll_ready failed"),
        Poll::Pending => panic!("a shedder must be ready at once"),
    }
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Err(err)) => err,
        Poll::Ready(Ok(response)) => panic!("not refused: {response:?}"),
        Poll::Pending => panic!("the refusal is not immediate"),
    }
}

fn accepted(c: &mut Criterion) {
    let mut group = c.benchmark_group("shed_accepted/1_thread");
    let echo = service_fn(echo);

    let mut baseline = echo;
    group.bench_function("baseline", |b| {
        b.iter(|| black_box(call_once(&mut baseline, black_box(42))))
    });

    let mut tower = TowerLoadShedLayer::new().layer(echo);
    group.bench_function("tower", |b| {
        b.iter(|| black_box(call_once(&mut tower, black_box(42))))
    });

    let mut steadfast = LoadShedLayer::new().layer(echo);
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut steadfast, black_box(42))))
    });

    // Not a layer: one read of the clock the throttle reads once per request.
    group.bench_function("reference/clock_read", |b| {
        b.iter(|| black_box(tokio::time::Instant::now()))
    });

    let throttle = AdaptiveThrottleLayer::new();
    let mut service = throttle.layer(echo);
    group.bench_function("throttle", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(42))))
    });
    let stats = throttle.stats();
    assert!(stats.requests > 0 && stats.accepts == stats.requests && stats.throttled == 0);

    group.finish();
}

fn reject(c: &mut Criterion) {
    let mut group = c.benchmark_group("shed_reject/1_thread");

    let mut tower = TowerLoadShedLayer::new().layer(NeverReady);
    let err: BoxError = reject_once(&mut tower, 42);
    assert!(err.is::<tower::load_shed::error::Overloaded>());
    group.bench_function("tower", |b| {
        b.iter(|| black_box(reject_once(&mut tower, black_box(42))))
    });

    let mut steadfast = LoadShedLayer::new().layer(NeverReady);
    assert!(reject_once(&mut steadfast, 42).is::<Overloaded>());
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(reject_once(&mut steadfast, black_box(42))))
    });

    let mut hinted = LoadShedLayer::new()
        .retry_after(Duration::from_secs(1))
        .layer(NeverReady);
    let err = reject_once(&mut hinted, 42);
    assert_eq!(
        err.downcast_ref::<Overloaded>()
            .and_then(Overloaded::retry_after),
        Some(Duration::from_secs(1))
    );
    group.bench_function("steadfast/retry_after", |b| {
        b.iter(|| black_box(reject_once(&mut hinted, black_box(42))))
    });

    // The throttle's window filled with refusals: it refuses locally almost every time.
    let throttle = AdaptiveThrottleLayer::builder()
        .max_reject_probability(1.0)
        .build()
        .expect("valid throttle");
    let mut service = throttle.layer(service_fn(overloaded));
    for _ in 0..10_000 {
        reject_once(&mut service, 42);
    }
    assert!(throttle.reject_probability() > 0.999);
    assert!(reject_once(&mut service, 42).is::<Throttled>());
    group.bench_function("throttle", |b| {
        b.iter(|| black_box(reject_once(&mut service, black_box(42))))
    });
    let stats = throttle.stats();
    eprintln!(
        "throttle: {} requests in the window, {} accepted, {} refused locally in all",
        stats.requests, stats.accepts, stats.throttled
    );

    group.finish();
}

criterion_group!(benches, accepted, reject);
criterion_main!(benches);
