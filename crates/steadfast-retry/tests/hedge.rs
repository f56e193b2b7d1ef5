//! The hedge layer through real tower stacks, on paused tokio time.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast_core::classify::{Classification, ErrorsAsFailures};
use steadfast_core::error::BoxError;
use steadfast_retry::budget::{NoBudget, RetryBudget, RetryCause, RetryPermit};
use steadfast_retry::hedge::{HedgeDelay, HedgeLayer, HedgeStats};
use steadfast_test_support::{contract, mock};
use tokio::time::{Instant, sleep};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// The answer of one attempt: which attempt it was (0 = the first) and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reply {
    attempt: usize,
    status: u16,
}

/// 200 is a success, 503 and 504 are retryable, 429 is an overload with a 300 ms hint,
/// anything else is a failure that must not be hedged. Errors use the default rules.
fn classify(reply: &Reply) -> Classification {
    match reply.status {
        200 => Classification::success(),
        503 | 504 => Classification::failure().retryable(true),
        429 => Classification::overload().with_retry_after(Some(ms(300))),
        _ => Classification::failure(),
    }
}

type Classifier = fn(&Reply) -> Classification;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The status that makes an attempt fail with a connection-refused error instead.
const REFUSED: u16 = 0;

/// A backend whose attempts follow a script of `(latency, status)`; once the script runs
/// out, a request `n` is answered `200` after `n` ms. It records when each attempt was sent
/// and counts attempts dropped before they answered.
#[derive(Clone)]
struct Backend {
    script: Arc<Mutex<VecDeque<(Duration, u16)>>>,
    start: Instant,
    sent: Arc<Mutex<Vec<Duration>>>,
    cancelled: Arc<AtomicUsize>,
}

impl Backend {
    fn new(script: &[(u64, u16)]) -> Self {
        Self {
            script: Arc::new(Mutex::new(
                script.iter().map(|&(l, s)| (ms(l), s)).collect(),
            )),
            start: Instant::now(),
            sent: Arc::default(),
            cancelled: Arc::default(),
        }
    }

    /// When each attempt was sent, from the backend's creation.
    fn sent(&self) -> Vec<Duration> {
        self.sent.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Counts the attempt as cancelled if dropped before it answered.
struct Cancelled(Option<Arc<AtomicUsize>>);

impl Cancelled {
    /// The attempt answered.
    fn answered(&mut self) {
        self.0 = None;
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let Some(counter) = self.0.take() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Service<u64> for Backend {
    type Response = Reply;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u64) -> Self::Future {
        let attempt = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(Instant::now() - self.start);
            sent.len() - 1
        };
        let (latency, status) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((ms(request), 200));
        let mut guard = Cancelled(Some(self.cancelled.clone()));
        Box::pin(async move {
            sleep(latency).await;
            guard.answered();
            if status == REFUSED {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused).into());
            }
            Ok(Reply { attempt, status })
        })
    }
}

/// A budget that grants `grants` hedges and logs every call.
#[derive(Debug)]
struct LoggingBudget {
    grants: AtomicUsize,
    log: Mutex<Vec<String>>,
}

impl LoggingBudget {
    fn new(grants: usize) -> Arc<Self> {
        Arc::new(Self {
            grants: AtomicUsize::new(grants),
            log: Mutex::default(),
        })
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }
}

impl RetryBudget for LoggingBudget {
    fn on_request(&self) {
        self.push("request".into());
    }

    fn try_retry(&self, cause: RetryCause) -> Option<RetryPermit> {
        self.push(format!("try_retry {cause:?}"));
        let granted = self
            .grants
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |g| g.checked_sub(1))
            .is_ok();
        granted.then_some(RetryPermit::new(7))
    }

    fn on_success(&self, permit: Option<RetryPermit>) {
        self.push(format!("success {:?}", permit.map(|p| p.cost())));
    }

    fn on_failure(&self) {
        self.push("failure".into());
    }
}

/// A layer with a fixed delay of `delay_ms`, `max_attempts` attempts and `budget`.
fn fixed(delay_ms: u64, max_attempts: u32, budget: Arc<dyn RetryBudget>) -> HedgeLayer<Classifier> {
    HedgeLayer::builder(classify as Classifier)
        .delay(HedgeDelay::Fixed(ms(delay_ms)))
        .max_attempts(max_attempts)
        .budget(budget)
        .build()
        .expect("valid")
}

fn counts(stats: &HedgeStats) -> (u64, u64, u64, u64) {
    (
        stats.requests(),
        stats.hedges_sent(),
        stats.hedge_wins(),
        stats.budget_exhausted(),
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_slow_first_attempt_is_hedged_after_exactly_the_delay_and_the_hedge_wins() {
    let backend = Backend::new(&[(1_000, 200), (10, 200)]);
    let budget = LoggingBudget::new(10);
    let layer = fixed(100, 2, budget.clone());
    let stats = layer.stats();
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

    assert_eq!(
        reply,
        Reply {
            attempt: 1,
            status: 200
        }
    );
    assert_eq!(start.elapsed(), ms(110));
    assert_eq!(backend.sent(), [ms(0), ms(100)]);
    assert_eq!(backend.cancelled(), 1, "the first attempt was dropped");
    assert_eq!(counts(&stats), (1, 1, 1, 0));
    assert_eq!(
        budget.log(),
        ["request", "try_retry Failure", "success Some(7)"]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_fast_first_attempt_sends_no_hedge() {
    let backend = Backend::new(&[(50, 200)]);
    let budget = LoggingBudget::new(10);
    let layer = fixed(100, 3, budget.clone());
    let stats = layer.stats();
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

    assert_eq!(
        reply,
        Reply {
            attempt: 0,
            status: 200
        }
    );
    assert_eq!(start.elapsed(), ms(50));
    sleep(ms(1_000)).await;
    assert_eq!(backend.calls(), 1);
    assert_eq!(counts(&stats), (1, 0, 0, 0));
    assert_eq!(budget.log(), ["request", "success None"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_retryable_failure_sends_the_next_hedge_at_once() {
    // A retryable status, then a retryable error.
    for failure in [503, REFUSED] {
        let backend = Backend::new(&[(20, failure), (10, 200)]);
        let budget = LoggingBudget::new(10);
        let layer = fixed(100, 3, budget.clone());
        let start = Instant::now();
        let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

        assert_eq!(
            reply,
            Reply {
                attempt: 1,
                status: 200
            },
            "{failure}"
        );
        assert_eq!(start.elapsed(), ms(30));
        assert_eq!(
            backend.sent(),
            [ms(0), ms(20)],
            "not after the 100 ms delay"
        );
        assert_eq!(
            budget.log(),
            ["request", "failure", "try_retry Failure", "success Some(7)"]
        );
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_non_retryable_failure_returns_at_once_and_cancels_the_rest() {
    let backend = Backend::new(&[(1_000, 200), (20, 500)]);
    let budget = LoggingBudget::new(10);
    let layer = fixed(100, 3, budget.clone());
    let stats = layer.stats();
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

    assert_eq!(
        reply,
        Reply {
            attempt: 1,
            status: 500
        }
    );
    assert_eq!(start.elapsed(), ms(120));
    assert_eq!(backend.cancelled(), 1, "the first attempt was dropped");
    sleep(ms(1_000)).await;
    assert_eq!(backend.calls(), 2, "no hedge after a fatal failure");
    assert_eq!(counts(&stats), (1, 1, 0, 0));
    assert_eq!(budget.log(), ["request", "try_retry Failure"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_empty_budget_sends_no_hedge_and_counts_it() {
    let backend = Backend::new(&[(1_000, 200)]);
    let budget = LoggingBudget::new(0);
    let layer = fixed(100, 3, budget.clone());
    let stats = layer.stats();
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

    assert_eq!(
        reply,
        Reply {
            attempt: 0,
            status: 200
        }
    );
    assert_eq!(start.elapsed(), ms(1_000));
    assert_eq!(backend.calls(), 1);
    // Refused once; the timer does not ask again for this request.
    assert_eq!(counts(&stats), (1, 0, 0, 1));
    assert_eq!(
        budget.log(),
        ["request", "try_retry Failure", "success None"]
    );

    // A retryable failure with an empty budget and nothing else in flight is returned.
    let backend = Backend::new(&[(10, 503)]);
    let layer = fixed(100, 3, LoggingBudget::new(0));
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");
    assert_eq!(
        reply,
        Reply {
            attempt: 0,
            status: 503
        }
    );
    assert_eq!(backend.calls(), 1);
    assert_eq!(layer.stats().budget_exhausted(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn max_attempts_bounds_the_hedges() {
    let backend = Backend::new(&[(1_000, 200), (1_000, 200), (1_000, 200), (1_000, 200)]);
    let layer = fixed(100, 3, Arc::new(NoBudget));
    let stats = layer.stats();
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

    assert_eq!(
        reply,
        Reply {
            attempt: 0,
            status: 200
        }
    );
    assert_eq!(start.elapsed(), ms(1_000));
    assert_eq!(backend.sent(), [ms(0), ms(100), ms(200)]);
    assert_eq!(backend.cancelled(), 2, "both hedges were dropped");
    assert_eq!(counts(&stats), (1, 2, 0, 0));

    // One attempt turns hedging off.
    let backend = Backend::new(&[(1_000, 503)]);
    let layer = fixed(100, 1, Arc::new(NoBudget));
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");
    assert_eq!(
        reply,
        Reply {
            attempt: 0,
            status: 503
        }
    );
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn when_every_attempt_fails_the_last_failure_is_returned() {
    let backend = Backend::new(&[(10, 503), (20, 504), (5, 200)]);
    let budget = LoggingBudget::new(10);
    let layer = fixed(100, 2, budget.clone());
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

    assert_eq!(
        reply,
        Reply {
            attempt: 1,
            status: 504
        }
    );
    assert_eq!(start.elapsed(), ms(30));
    assert_eq!(backend.calls(), 2);
    assert_eq!(
        budget.log(),
        ["request", "failure", "try_retry Failure", "failure"]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_zero_delay_sends_every_attempt_at_once() {
    let backend = Backend::new(&[(50, 200), (30, 200), (40, 200)]);
    let layer = fixed(0, 3, Arc::new(NoBudget));
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");

    assert_eq!(
        reply,
        Reply {
            attempt: 1,
            status: 200
        }
    );
    assert_eq!(start.elapsed(), ms(30));
    assert_eq!(backend.sent(), [ms(0), ms(0), ms(0)]);
    assert_eq!(backend.cancelled(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_server_hint_holds_the_next_hedge_back() {
    // The hedge at 100 ms is refused with a 300 ms hint at 110 ms: the next one waits until
    // 410 ms instead of going at once (or at 200 ms).
    let backend = Backend::new(&[(1_000, 200), (10, 429), (10, 200)]);
    let layer = fixed(100, 3, Arc::new(NoBudget));
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");
    assert_eq!(
        reply,
        Reply {
            attempt: 2,
            status: 200
        }
    );
    assert_eq!(start.elapsed(), ms(420));
    assert_eq!(backend.sent(), [ms(0), ms(100), ms(410)]);

    // With nothing else in flight, the hinted failure is returned rather than slept on.
    let backend = Backend::new(&[(10, 429)]);
    let layer = fixed(100, 3, Arc::new(NoBudget));
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");
    assert_eq!(
        reply,
        Reply {
            attempt: 0,
            status: 429
        }
    );
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_response_future_cancels_every_attempt() {
    let backend = Backend::new(&[(1_000, 200), (1_000, 200), (1_000, 200)]);
    let layer = fixed(100, 3, Arc::new(NoBudget));
    let call = layer.layer(backend.clone()).oneshot(1);
    tokio::time::timeout(ms(250), call)
        .await
        .expect_err("still running after 250 ms");

    assert_eq!(backend.calls(), 3);
    assert_eq!(backend.cancelled(), 3);
    sleep(ms(2_000)).await;
    assert_eq!(backend.calls(), 3, "nothing is sent after the drop");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_percentile_delay_follows_the_p95_of_recent_latencies() {
    let window = Duration::from_secs(10);
    let layer = HedgeLayer::builder(classify as Classifier)
        .delay(HedgeDelay::Percentile {
            percentile: 0.95,
            min_samples: 100,
            fallback: ms(50),
        })
        .budget(Arc::new(NoBudget))
        .latency_window(window)
        .build()
        .expect("valid");
    // The backend answers request `n` after `n` ms.
    let backend = Backend::new(&[]);
    let svc = ServiceBuilder::new().layer(layer.clone()).service(backend);
    let run = |latency: u64, times: usize| {
        let svc = svc.clone();
        async move {
            for _ in 0..times {
                svc.clone().oneshot(latency).await.expect("ok");
            }
        }
    };
    let within = |got: Duration, exact: Duration| got >= exact && got <= exact + exact / 32;

    assert_eq!(
        layer.current_delay(),
        ms(50),
        "the fallback until 100 samples"
    );
    run(10, 99).await;
    assert_eq!(layer.current_delay(), ms(50));
    run(10, 1).await;
    assert!(
        within(layer.current_delay(), ms(10)),
        "{:?}",
        layer.current_delay()
    );

    // 100 at 10 ms and 5 at 100 ms: 95.2 % took 10 ms, so the p95 is still 10 ms.
    run(100, 5).await;
    let delay = layer.current_delay();
    assert!(within(delay, ms(10)), "{delay:?}");

    // A slow request is now hedged after the learned delay (rounded up to tokio's 1 ms
    // timer tick), not after the 50 ms fallback.
    let backend = Backend::new(&[]);
    let probe = ServiceBuilder::new()
        .layer(layer.clone())
        .service(backend.clone());
    probe.oneshot(30).await.expect("ok");
    let hedged_at = backend.sent()[1];
    assert!(
        hedged_at >= delay && hedged_at < delay + ms(1),
        "{hedged_at:?}"
    );

    // 101 fast and 11 slow: under 95 % are fast, the p95 moves to 100 ms.
    run(100, 6).await;
    let delay = layer.current_delay();
    assert!(within(delay, ms(100)), "{delay:?}");
    assert_eq!(
        layer.stats().hedge_wins(),
        0,
        "slow first attempts still won"
    );

    // After two quiet windows the samples have expired: back to the fallback.
    sleep(window * 2).await;
    assert_eq!(layer.current_delay(), ms(50));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hedge_waits_for_inner_readiness_without_holding_up_the_first_attempt() {
    let layer = HedgeLayer::builder(ErrorsAsFailures)
        .delay(HedgeDelay::Fixed(ms(100)))
        .budget(Arc::new(NoBudget))
        .build()
        .expect("valid");

    // One inner permit, taken by the first attempt: the hedge waits for a second one.
    let (inner, handle) = mock::pair::<u32, u32>();
    handle.set_capacity(1);
    handle.respond_manually();
    let call = tokio::spawn(layer.layer(inner).oneshot(7));
    let (request, first) = handle.next_request().await;
    assert_eq!(request, 7);
    sleep(ms(150)).await;
    assert_eq!(handle.calls(), 1, "no permit for the hedge yet");
    handle.set_capacity(2);
    let (request, hedge) = handle.next_request().await;
    assert_eq!(request, 7);
    hedge.ok(2);
    assert_eq!(call.await.expect("no panic").expect("ok"), 2);
    assert!(first.is_cancelled());
    assert_eq!(handle.available_permits(), 2);

    // The first attempt answers while the hedge still waits for a permit.
    let (inner, handle) = mock::pair::<u32, u32>();
    handle.set_capacity(1);
    handle.respond_manually();
    let call = tokio::spawn(layer.layer(inner).oneshot(7));
    let (_, first) = handle.next_request().await;
    sleep(ms(150)).await;
    first.ok(1);
    assert_eq!(call.await.expect("no panic").expect("ok"), 1);
    assert_eq!(handle.calls(), 1);
    assert_eq!(handle.available_permits(), 1);

    // The inner service fails to become ready for the hedge: the first attempt still
    // answers.
    let (inner, handle) = mock::pair::<u32, u32>();
    handle.respond_manually();
    let call = tokio::spawn(layer.layer(inner).oneshot(7));
    let (_, first) = handle.next_request().await;
    handle.fail_ready_with(io::Error::other("connection pool closed"));
    sleep(ms(150)).await;
    first.ok(1);
    assert_eq!(call.await.expect("no panic").expect("ok"), 1);
    assert_eq!(handle.calls(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_layer_keeps_the_tower_service_contract() {
    let _t = steadfast_test_support::trace_init();
    contract::check_layer(
        HedgeLayer::builder(ErrorsAsFailures)
            .build()
            .expect("valid"),
    )
    .await;
    // Every attempt at once, so hedges compete for the inner permits.
    contract::check_layer(
        HedgeLayer::builder(ErrorsAsFailures)
            .delay(HedgeDelay::Fixed(Duration::ZERO))
            .max_attempts(3)
            .budget(Arc::new(NoBudget))
            .build()
            .expect("valid"),
    )
    .await;
}

#[test]
fn invalid_configurations_are_rejected() {
    let build = |attempts: u32, delay: HedgeDelay, window: Duration| {
        HedgeLayer::builder(ErrorsAsFailures)
            .max_attempts(attempts)
            .delay(delay)
            .latency_window(window)
            .build()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let p = |percentile: f64| HedgeDelay::Percentile {
        percentile,
        min_samples: 10,
        fallback: ms(10),
    };
    let ok_window = Duration::from_secs(10);
    assert!(build(1, p(1.0), ok_window).is_ok());
    assert!(build(10, HedgeDelay::Fixed(Duration::MAX), ok_window).is_ok());
    assert_eq!(
        build(0, p(0.95), ok_window),
        Err("invalid hedge configuration: max_attempts must be between 1 and 10".into())
    );
    assert!(build(11, p(0.95), ok_window).is_err());
    for bad in [0.0, -0.5, 1.5, 95.0, f64::NAN, f64::INFINITY] {
        assert!(build(2, p(bad), ok_window).is_err(), "{bad}");
    }
    assert!(build(2, p(0.95), ms(10)).is_err());
    assert!(
        build(2, HedgeDelay::Fixed(ms(1)), ms(10)).is_ok(),
        "window unused"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_infinite_delay_hedges_only_after_failures() {
    let backend = Backend::new(&[(1_000, 503), (20, 200)]);
    let layer = fixed(u64::MAX, 2, Arc::new(NoBudget));
    let start = Instant::now();
    let reply = layer.layer(backend.clone()).oneshot(1).await.expect("ok");
    assert_eq!(
        reply,
        Reply {
            attempt: 1,
            status: 200
        }
    );
    assert_eq!(start.elapsed(), ms(1_020));
    assert_eq!(backend.sent(), [ms(0), ms(1_000)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_percentile_is_learned_with_hedging_off() {
    let layer = HedgeLayer::builder(classify as Classifier)
        .delay(HedgeDelay::Percentile {
            percentile: 0.5,
            min_samples: 3,
            fallback: ms(50),
        })
        .max_attempts(1)
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Backend::new(&[]));
    for latency in [20, 20, 200] {
        svc.clone().oneshot(latency).await.expect("ok");
    }
    let delay = layer.current_delay();
    assert!(
        delay >= ms(20) && delay <= ms(20) + ms(20) / 32,
        "{delay:?}"
    );
    assert_eq!(layer.stats().hedges_sent(), 0);
}
