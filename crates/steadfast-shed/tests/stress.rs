//! Many tasks on a multi-threaded runtime share one queue through clones of one service,
//! some dropping their calls mid-wait: every call ends (no lost wake-up), nothing is left
//! in the queue, and the inner limit is never exceeded nor leaked. A call may succeed or
//! be refused (queue full, evicted, not admitted for its priority), but with a one-minute
//! target and interval nothing times out or is sloughed: a waiter that ends by its timer
//! was never woken, a lost wake-up. The whole run is bounded (well under the shortest
//! queue timeout, 30 s), so a lost wake-up fails the test instead of hanging it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast_core::error::Overloaded;
use steadfast_shed::{Priority, ShedLayer};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const TASKS: u32 = 8;
const CALLS: u32 = 400;
const LIMIT: usize = 2;

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

struct InFlight(Arc<Gauge>);

impl InFlight {
    fn enter(gauge: &Arc<Gauge>) -> Self {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.max.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(gauge))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_ends_and_nothing_leaks() {
    let gauge = Arc::new(Gauge::default());
    let layer = ShedLayer::builder()
        .priority(|r: &u32| Priority::ALL[(*r % 4) as usize])
        .capacity(16)
        .target(Duration::from_secs(60))
        .interval(Duration::from_secs(60))
        .build()
        .expect("valid");
    let handler = {
        let gauge = Arc::clone(&gauge);
        service_fn(move |r: u32| {
            let guard = InFlight::enter(&gauge);
            async move {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                drop(guard);
                Ok::<_, std::convert::Infallible>(r)
            }
        })
    };
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(LIMIT))
        .service(handler);

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut shed, mut dropped) = (0, 0, 0);
            for i in 0..CALLS {
                let request = t * CALLS + i;
                let mut call = Box::pin(svc.ready().await.expect("always ready").call(request));
                if i % 3 == 0 {
                    // Give up after one yield: a cancellation, often while queued.
                    tokio::select! {
                        biased;
                        result = &mut call => match result {
                            Ok(r) => { assert_eq!(r, request); ok += 1 }
                            Err(e) => { assert!(e.is::<Overloaded>(), "{e}"); shed += 1 }
                        },
                        () = tokio::task::yield_now() => dropped += 1,
                    }
                } else {
                    match call.await {
                        Ok(r) => {
                            assert_eq!(r, request);
                            ok += 1;
                        }
                        Err(e) => {
                            assert!(e.is::<Overloaded>(), "{e}");
                            shed += 1;
                        }
                    }
                }
            }
            (ok, shed, dropped)
        }));
    }
    let mut total = (0, 0, 0);
    let all = async {
        for task in tasks {
            let (ok, shed, dropped) = task.await.expect("no task panicked");
            total = (total.0 + ok, total.1 + shed, total.2 + dropped);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("every call ended: a waiter was not woken");
    assert_eq!(total.0 + total.1 + total.2, TASKS * CALLS);
    assert!(total.0 > 0, "some calls succeeded: {total:?}");
    let stats = layer.stats();
    println!("ok, shed, dropped: {total:?}; {stats:?}");
    assert!(
        stats.queued > 0 && stats.served > 0,
        "the queue was used: {stats:?}"
    );
    assert_eq!(stats.waiting, 0, "{stats:?}");
    assert_eq!(
        (stats.timed_out, stats.sloughed),
        (0, 0),
        "every waiter was woken: {stats:?}"
    );
    assert_eq!(gauge.now.load(Ordering::SeqCst), 0);
    assert!(gauge.max.load(Ordering::SeqCst) <= LIMIT);
    // Every permit came back: LIMIT calls go straight through at once again (a call that
    // found no permit would queue instead of being forwarded).
    let mut probes = Vec::new();
    for i in 0..LIMIT {
        let mut probe = svc.clone();
        let request = u32::MAX - i as u32;
        let call = probe.ready().await.expect("ready").call(request);
        probes.push((request, call));
    }
    assert_eq!(layer.stats().forwarded, stats.forwarded + LIMIT as u64);
    for (request, call) in probes {
        assert_eq!(call.await.expect("served"), request);
    }
}
