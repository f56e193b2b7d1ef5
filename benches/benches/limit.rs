//! The overhead per request of a concurrency limit around a ready no-op service: acquire a
//! permit, run the call, give the permit back. steadfast's [`AdaptiveConcurrencyLayer`]
//! against tower's static `ConcurrencyLimit` and tower-resilience's adaptive layer.
//!
//! Groups:
//!
//! - `limit_call/1_thread`: one service on one thread.
//! - `limit_call/2_threads`: two threads, each with its own clone of one service, so both
//!   count against one shared limit (one semaphore, one limiter). The figure is the time
//!   per request **per thread** (see `hlc`'s two-thread convention in `benches/README.md`).
//!
//! Rows: `baseline` (the bare service), `tower` (`ConcurrencyLimit`, limit 1000),
//! `tower-resilience` (`AdaptiveLimiterLayer` with its default AIMD), `steadfast` (the
//! layer's defaults: Gradient2 over 1 s windows, backpressure, about 1000 requests timed
//! per window), `steadfast/fail_fast` (the same in [`Mode::FailFast`]),
//! `steadfast/every_request_timed` (every request timed, as Netflix does: what each
//! request costs below about 2000 requests per window) and `steadfast/partitioned` (fail
//! fast with partitions live 90% / batch 10%, every request live). Every limit is far above the two requests that can be
//! in flight at once, so nobody waits or refuses: what is measured is the success path.
//!
//! Every row is driven the same way, without a runtime: `poll_ready`, `call`, then one poll
//! of the response future with a no-op waker; the future resolves on its first poll
//! (anything else panics) and is dropped, which gives the permit back.
//!
//! Run with `cargo bench -p steadfast-benches --bench limit`; see `benches/README.md`.

use std::future::{self, Ready};
use std::hint::black_box;
use std::io;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast_benches::call_once;
use steadfast_benches::two_threads::ThreadPair;
use steadfast_core::classify::ErrorsAsFailures;
use steadfast_limit::partition::Partitions;
use steadfast_limit::{AdaptiveConcurrencyLayer, Mode, WindowConfig};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, service_fn};
use tower_resilience_adaptive::{AdaptiveLimiterLayer, Aimd};

/// tower's static limit: high enough never to be reached.
const TOWER_LIMIT: usize = 1000;

fn echo(request: u64) -> Ready<Result<u64, io::Error>> {
    future::ready(Ok(request))
}

/// steadfast's rows: the layer's defaults in `mode`, timing every request or (the
/// default) about 1000 requests per window.
fn steadfast(mode: Mode, time_every_request: bool) -> AdaptiveConcurrencyLayer {
    let window = if time_every_request {
        WindowConfig::new().timed_per_window(0)
    } else {
        WindowConfig::new()
    };
    AdaptiveConcurrencyLayer::builder()
        .mode(mode)
        .window(window)
        .build()
        .expect("valid layer")
}

const STEADFAST_ROWS: [(&str, Mode, bool); 3] = [
    ("steadfast", Mode::Backpressure, false),
    ("steadfast/fail_fast", Mode::FailFast, false),
    ("steadfast/every_request_timed", Mode::Backpressure, true),
];

/// The request's partition in the `steadfast/partitioned` rows: every request is "live".
fn live_or_batch(request: &u64) -> &'static str {
    if request % 10 == 1 { "batch" } else { "live" }
}

/// steadfast's defaults in fail-fast mode with two partitions, live 90% and batch 10%.
fn partitioned() -> AdaptiveConcurrencyLayer<ErrorsAsFailures, fn(&u64) -> &'static str> {
    AdaptiveConcurrencyLayer::builder()
        .mode(Mode::FailFast)
        .partitions(
            Partitions::new()
                .partition("live", 0.9)
                .partition("batch", 0.1),
            live_or_batch as fn(&u64) -> &'static str,
        )
        .build()
        .expect("valid layer")
}

fn resilience() -> AdaptiveLimiterLayer<Aimd> {
    AdaptiveLimiterLayer::new(Aimd::builder().build().expect("valid AIMD"))
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("limit_call/1_thread");
    let echo = service_fn(echo);

    let mut baseline = echo;
    group.bench_function("baseline", |b| {
        b.iter(|| black_box(call_once(&mut baseline, black_box(42))))
    });

    let mut tower = ConcurrencyLimitLayer::new(TOWER_LIMIT).layer(echo);
    group.bench_function("tower", |b| {
        b.iter(|| black_box(call_once(&mut tower, black_box(42))))
    });

    let mut resilience = resilience().layer(echo);
    group.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(call_once(&mut resilience, black_box(42))))
    });

    for (name, mode, time_every_request) in STEADFAST_ROWS {
        let layer = steadfast(mode, time_every_request);
        let mut service = layer.layer(echo);
        call_once(&mut service, 42);
        assert_eq!(
            layer.stats().successes,
            1,
            "the call went through the limiter"
        );
        group.bench_function(name, |b| {
            b.iter(|| black_box(call_once(&mut service, black_box(42))))
        });
        let stats = layer.stats();
        assert_eq!((stats.in_flight, stats.rejections), (0, 0));
        eprintln!(
            "{name}: {} calls, every {}th timed at the end",
            stats.successes,
            layer.limiter().timed_stride()
        );
    }

    let layer = partitioned();
    let mut service = layer.layer(echo);
    group.bench_function("steadfast/partitioned", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(42))))
    });
    let live = &layer.limiter().partition_stats()[0];
    assert!(live.name == "live" && live.in_flight == 0);

    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("limit_call/2_threads");
    let echo = service_fn(echo);

    // Each pair of threads lives for one benchmark and is reused across its samples; each
    // thread drives its own clone of one service.
    let pair = ThreadPair::per_thread(move || {
        let mut service = echo;
        move || call_once(&mut service, black_box(42))
    });
    group.bench_function("baseline", |b| b.iter_custom(|iters| pair.run(iters)));
    drop(pair);

    let tower = ConcurrencyLimitLayer::new(TOWER_LIMIT).layer(echo);
    let pair = ThreadPair::per_thread(move || {
        let mut service = tower.clone();
        move || call_once(&mut service, black_box(42))
    });
    group.bench_function("tower", |b| b.iter_custom(|iters| pair.run(iters)));
    drop(pair);

    // tower-resilience makes a new semaphore in every `layer` call; clones share it.
    let resilience = resilience().layer(echo);
    let pair = ThreadPair::per_thread(move || {
        let mut service = resilience.clone();
        move || call_once(&mut service, black_box(42))
    });
    group.bench_function("tower-resilience", |b| {
        b.iter_custom(|iters| pair.run(iters))
    });
    drop(pair);

    for (name, mode, time_every_request) in STEADFAST_ROWS {
        let layer = steadfast(mode, time_every_request);
        let service = layer.layer(echo);
        let pair = ThreadPair::per_thread(move || {
            let mut service = service.clone();
            move || call_once(&mut service, black_box(42))
        });
        group.bench_function(name, |b| b.iter_custom(|iters| pair.run(iters)));
        drop(pair);
        let stats = layer.stats();
        assert_eq!((stats.in_flight, stats.rejections), (0, 0));
    }

    let layer = partitioned();
    let service = layer.layer(echo);
    let pair = ThreadPair::per_thread(move || {
        let mut service = service.clone();
        move || call_once(&mut service, black_box(42))
    });
    group.bench_function("steadfast/partitioned", |b| {
        b.iter_custom(|iters| pair.run(iters))
    });
    drop(pair);
    assert_eq!(layer.stats().in_flight, 0);

    group.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
