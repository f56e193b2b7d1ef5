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

use std::fmt;
use std::future::{self, Future, Ready};
use std::hint::black_box;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast_core::classify::ErrorsAsFailures;
use steadfast_limit::partition::Partitions;
use steadfast_limit::{AdaptiveConcurrencyLayer, Mode, WindowConfig};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service, service_fn};
use tower_resilience_adaptive::{AdaptiveLimiterLayer, Aimd};

use crate::two_threads::ThreadPair;

/// tower's static limit: high enough never to be reached.
const TOWER_LIMIT: usize = 1000;

fn echo(request: u64) -> Ready<Result<u64, io::Error>> {
    future::ready(Ok(request))
}

/// One request: `poll_ready`, `call`, and a single poll of the response future with a
/// no-op waker. Every service in this bench is ready at once and answers on the first poll.
fn call_once<S>(service: &mut S, request: u64) -> S::Response
where
    S: Service<u64>,
    S::Error: fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(err)) => panic!("poll_ready failed: {err:?}"),
        Poll::Pending => panic!("the service is not ready at once"),
    }
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(err)) => panic!("the call failed: {err:?}"),
        Poll::Pending => panic!("the response future is not ready on its first poll"),
    }
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
    let pair = ThreadPair::new(move || {
        let mut service = echo;
        move || call_once(&mut service, black_box(42))
    });
    group.bench_function("baseline", |b| b.iter_custom(|iters| pair.run(iters)));
    drop(pair);

    let tower = ConcurrencyLimitLayer::new(TOWER_LIMIT).layer(echo);
    let pair = ThreadPair::new(move || {
        let mut service = tower.clone();
        move || call_once(&mut service, black_box(42))
    });
    group.bench_function("tower", |b| b.iter_custom(|iters| pair.run(iters)));
    drop(pair);

    // tower-resilience makes a new semaphore in every `layer` call; clones share it.
    let resilience = resilience().layer(echo);
    let pair = ThreadPair::new(move || {
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
        let pair = ThreadPair::new(move || {
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
    let pair = ThreadPair::new(move || {
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

mod two_threads {
    //! Two worker threads, each calling its own function concurrently, timed from the first
    //! thread's start to the last thread's finish (the `hlc` bench's pair, with per-thread
    //! state: a `Service` needs `&mut self`).

    // Wall time across threads is what is measured here; tokio's pausable Instant has no
    // place in a benchmark.
    #![allow(clippy::disallowed_types, clippy::disallowed_methods)]

    use std::hint::black_box;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Barrier, Mutex};
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant};

    const THREADS: usize = 2;

    struct Shared {
        /// Releases the workers for a run (the workers and the benchmark thread).
        start: Barrier,
        /// Reached by everyone once both workers have finished a run.
        done: Barrier,
        iters: AtomicU64,
        stop: AtomicBool,
        /// Each worker's (start, end) of the last run.
        spans: Mutex<Vec<(Instant, Instant)>>,
    }

    /// A pair of threads parked between runs, so spawning is not measured.
    pub(crate) struct ThreadPair {
        shared: Arc<Shared>,
        workers: Vec<JoinHandle<()>>,
    }

    impl ThreadPair {
        /// `make` is called once on each thread for the function that thread calls.
        pub(crate) fn new<M, F, T>(make: M) -> Self
        where
            M: Fn() -> F + Send + Sync + 'static,
            F: FnMut() -> T,
        {
            let shared = Arc::new(Shared {
                start: Barrier::new(THREADS + 1),
                done: Barrier::new(THREADS + 1),
                iters: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                spans: Mutex::new(Vec::with_capacity(THREADS)),
            });
            let make = Arc::new(make);
            let workers = (0..THREADS)
                .map(|_| {
                    let shared = Arc::clone(&shared);
                    let make = Arc::clone(&make);
                    thread::spawn(move || {
                        let mut f = make();
                        loop {
                            shared.start.wait();
                            if shared.stop.load(Ordering::Acquire) {
                                return;
                            }
                            let iters = shared.iters.load(Ordering::Acquire);
                            let begin = Instant::now();
                            for _ in 0..iters {
                                black_box(f());
                            }
                            let end = Instant::now();
                            shared.spans.lock().expect("poisoned").push((begin, end));
                            shared.done.wait();
                        }
                    })
                })
                .collect();
            Self { shared, workers }
        }

        /// Both threads make `iters` calls; returns the wall time from the first thread
        /// starting to the last one finishing.
        pub(crate) fn run(&self, iters: u64) -> Duration {
            self.shared.spans.lock().expect("poisoned").clear();
            self.shared.iters.store(iters, Ordering::Release);
            self.shared.start.wait();
            self.shared.done.wait();
            let spans = self.shared.spans.lock().expect("poisoned");
            let begin = spans.iter().map(|s| s.0).min().expect("two spans");
            let end = spans.iter().map(|s| s.1).max().expect("two spans");
            end - begin
        }
    }

    impl Drop for ThreadPair {
        fn drop(&mut self) {
            self.shared.stop.store(true, Ordering::Release);
            self.shared.start.wait();
            for worker in self.workers.drain(..) {
                worker.join().expect("worker panicked");
            }
        }
    }
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
