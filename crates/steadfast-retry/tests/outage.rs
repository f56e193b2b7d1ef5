//! What retries do to a backend in trouble: a full outage and 10% transient failures,
//! simulated on paused tokio time with open-loop arrivals (requests keep coming at a fixed
//! rate whatever happens to earlier ones, as real clients do).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use steadfast_retry::RetryLayer;
use steadfast_retry::body::ReplayBody;
use steadfast_retry::budget::{NoBudget, RetryBudget};
use steadfast_retry::rng::{RandomSource, SplitMix64};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const RATE_PER_SEC: u64 = 100;

struct Run {
    requests: usize,
    attempts: usize,
    succeeded: usize,
}

/// Sends `seconds × RATE_PER_SEC` GETs, one every 10 ms, to a backend that fails each
/// attempt with probability `failure_rate` (503), through the default HTTP retry layer.
async fn run(seconds: u64, failure_rate: f64, budget: Option<Arc<dyn RetryBudget>>) -> Run {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let dice = Arc::new(SplitMix64::new(2026));
    let backend = service_fn(move |_req: Request<ReplayBody<String>>| {
        counter.fetch_add(1, Ordering::Relaxed);
        let status = if dice.next_f64() < failure_rate {
            503
        } else {
            200
        };
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
        }
    });
    let mut builder = RetryLayer::http().rng(Arc::new(SplitMix64::new(7)));
    if let Some(budget) = budget {
        builder = builder.budget(budget);
    }
    let svc = ServiceBuilder::new()
        .layer(builder.build().expect("valid"))
        .service(backend);

    let requests = (seconds * RATE_PER_SEC) as usize;
    let succeeded = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let mut svc = svc.clone();
        let succeeded = succeeded.clone();
        tasks.push(tokio::spawn(async move {
            let svc = svc.ready().await.expect("ready");
            let res = svc
                .call(Request::new(String::new()))
                .await
                .expect("no error");
            if res.status().is_success() {
                succeeded.fetch_add(1, Ordering::Relaxed);
            }
        }));
        tokio::time::sleep(Duration::from_millis(1_000 / RATE_PER_SEC)).await;
    }
    for task in tasks {
        task.await.expect("task");
    }
    Run {
        requests,
        attempts: attempts.load(Ordering::Relaxed),
        succeeded: succeeded.load(Ordering::Relaxed),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn in_a_full_outage_the_default_budget_caps_extra_load() {
    let seconds = 60;
    let run = run(seconds, 1.0, None).await;
    let retries = run.attempts - run.requests;
    // Finagle's default: 20% of requests, plus 10 retries per second; the reserve of one
    // window (10 s × 10/s) is there from the start, so the run can use one window more.
    let allowed = run.requests / 5 + 10 * (seconds as usize + 10);
    println!(
        "full outage, default budget: {} requests, {} attempts ({:.2}x), {} retries (allowed {})",
        run.requests,
        run.attempts,
        run.attempts as f64 / run.requests as f64,
        retries,
        allowed
    );
    assert_eq!(run.succeeded, 0);
    assert!(retries <= allowed, "{retries} retries > {allowed}");
    // The budget is used, not just never touched: at least 20% plus 10/s.
    let floor = run.requests / 5 + 10 * seconds as usize;
    assert!(
        retries >= floor * 9 / 10,
        "{retries} retries, far below {floor}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn without_a_budget_a_full_outage_triples_the_load() {
    let run = run(60, 1.0, Some(Arc::new(NoBudget))).await;
    println!(
        "full outage, no budget: {} requests, {} attempts ({:.2}x)",
        run.requests,
        run.attempts,
        run.attempts as f64 / run.requests as f64
    );
    assert_eq!(run.attempts, 3 * run.requests);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_ten_percent_transient_failures_nearly_every_request_succeeds() {
    let run = run(200, 0.1, None).await;
    let rate = run.succeeded as f64 / run.requests as f64;
    println!(
        "10% transient failures, default budget: {} of {} succeeded ({:.3}%), {} attempts ({:.3}x)",
        run.succeeded,
        run.requests,
        rate * 100.0,
        run.attempts,
        run.attempts as f64 / run.requests as f64
    );
    // Three attempts fail together with probability 0.1³: 99.9% expected. The bound leaves
    // room for sampling noise over 20,000 requests (expected 20 failures, σ ≈ 4.5).
    assert!(rate >= 0.998, "success rate {rate}");
    // The budget (20%) never binds at a 10% failure rate: retries ≈ 11% of requests.
    assert!(run.attempts <= run.requests * 115 / 100);
}
