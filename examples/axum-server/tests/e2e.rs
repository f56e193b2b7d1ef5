//! End to end, over real HTTP on loopback: the example server under about 4x its capacity,
//! with and without protection; duplicate orders; HLC headers; the body cap.
//!
//! Bounded: every phase sends a fixed number of requests in a few seconds, to 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use example_axum_server::{Config, app};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::hlc::{Hlc, Timestamp, header};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// W = 4 workers, S = 20 ms: 200 requests a second, 800 at 4x, which two busy cores can
/// drive in a debug build.
const WORKERS: usize = 4;
const SERVICE_TIME: Duration = Duration::from_millis(20);
/// The client's deadline, also sent as `x-request-timeout`.
const DEADLINE: Duration = Duration::from_millis(300);
const OVERLOAD: f64 = 4.0;
const PHASE: Duration = Duration::from_secs(3);

fn config(unprotected: bool) -> Config {
    Config {
        workers: WORKERS,
        service_time: SERVICE_TIME,
        unprotected,
        ..Config::default()
    }
}

/// Serves `config` on 127.0.0.1, on a port of the system's choosing.
async fn start(config: &Config) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(config).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What a load phase saw.
#[derive(Debug, Default)]
struct Outcome {
    sent: u64,
    /// 2xx within the deadline.
    good: u64,
    /// 2xx after the deadline (wasted work).
    late: u64,
    /// No answer within the deadline.
    timed_out: u64,
    /// 503, each with `Retry-After`.
    shed: u64,
    shed_without_retry_after: u64,
    /// 504.
    deadline_exceeded: u64,
    other: u64,
}

impl Outcome {
    fn goodput(&self, window: Duration) -> f64 {
        self.good as f64 / window.as_secs_f64()
    }
}

enum Answer {
    Status(StatusCode, bool, Duration),
    TimedOut,
    Failed,
}

/// One `GET /work` with the deadline; the answer and how long it took.
async fn one_work(client: HttpClient, addr: SocketAddr) -> Answer {
    let started = Instant::now();
    let request = Request::get(format!("http://{addr}/work"))
        .header("x-request-timeout", DEADLINE.as_millis().to_string())
        .body(Full::default())
        .unwrap();
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        let retry_after = response.headers().contains_key("retry-after");
        response.into_body().collect().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, retry_after))
    };
    match tokio::time::timeout(DEADLINE * 2, exchange).await {
        Ok(Ok((status, retry_after))) => Answer::Status(status, retry_after, started.elapsed()),
        Ok(Err(_)) => Answer::Failed,
        Err(_) => Answer::TimedOut,
    }
}

/// An open-loop generator: `rate` requests a second, paced, for `window`, whatever the
/// server answers; each request waits for its answer on its own task.
async fn open_loop(addr: SocketAddr, rate: f64, window: Duration) -> Outcome {
    let client = client();
    let count = (rate * window.as_secs_f64()).round() as u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        ticker.tick().await;
        tasks.spawn(one_work(client.clone(), addr));
    }
    let mut outcome = Outcome {
        sent: count,
        ..Outcome::default()
    };
    while let Some(answer) = tasks.join_next().await {
        match answer.unwrap() {
            Answer::Status(status, _, took) if status.is_success() => {
                if took <= DEADLINE {
                    outcome.good += 1;
                } else {
                    outcome.late += 1;
                }
            }
            Answer::Status(StatusCode::SERVICE_UNAVAILABLE, retry_after, _) => {
                outcome.shed += 1;
                if !retry_after {
                    outcome.shed_without_retry_after += 1;
                }
            }
            Answer::Status(StatusCode::GATEWAY_TIMEOUT, _, _) => outcome.deadline_exceeded += 1,
            Answer::TimedOut => outcome.timed_out += 1,
            Answer::Status(..) | Answer::Failed => outcome.other += 1,
        }
    }
    outcome
}

/// A closed loop of `2 × WORKERS` callers for `window`: the backend is always busy, so
/// the completions a second are its capacity.
async fn measure_capacity(addr: SocketAddr, window: Duration) -> f64 {
    let client = client();
    let end = Instant::now() + window;
    let mut callers = JoinSet::new();
    for _ in 0..2 * WORKERS {
        let client = client.clone();
        callers.spawn(async move {
            let mut served = 0u64;
            while Instant::now() < end {
                if let Answer::Status(status, _, _) = one_work(client.clone(), addr).await
                    && status.is_success()
                {
                    served += 1;
                }
            }
            served
        });
    }
    let mut served = 0;
    while let Some(n) = callers.join_next().await {
        served += n.unwrap();
    }
    served as f64 / window.as_secs_f64()
}

async fn stats(addr: SocketAddr) -> serde_json::Value {
    let response = client()
        .request(
            Request::get(format!("http://{addr}/stats"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// The stack keeps goodput near capacity at 4x load; without it the server collapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_collapse_at_four_times_capacity() {
    let unprotected = config(true);
    let protected = config(false);

    let capacity = measure_capacity(start(&unprotected).await, Duration::from_millis(1500)).await;
    println!(
        "capacity: measured {capacity:.0} requests/s (W/S = {:.0})",
        protected.capacity_rps()
    );
    assert!(
        capacity > 0.5 * protected.capacity_rps() && capacity <= 1.05 * protected.capacity_rps(),
        "the closed loop should saturate the backend: {capacity:.0} requests/s"
    );
    let rate = OVERLOAD * capacity;

    let addr = start(&protected).await;
    let with_stack = open_loop(addr, rate, PHASE).await;
    let server = stats(addr).await;
    let goodput = with_stack.goodput(PHASE);
    println!(
        "protected:   offered {:.0}/s, goodput {goodput:.0}/s ({:.0}% of capacity) {with_stack:?}",
        with_stack.sent as f64 / PHASE.as_secs_f64(),
        100.0 * goodput / capacity
    );
    println!("protected server stats: {server}");

    let addr = start(&unprotected).await;
    let without = open_loop(addr, rate, PHASE).await;
    let collapsed = without.goodput(PHASE);
    println!(
        "unprotected: offered {:.0}/s, goodput {collapsed:.0}/s ({:.0}% of capacity) {without:?}",
        without.sent as f64 / PHASE.as_secs_f64(),
        100.0 * collapsed / capacity
    );

    assert!(
        goodput >= 0.85 * capacity,
        "goodput {goodput:.0}/s is below 85% of the capacity {capacity:.0}/s: {with_stack:?}"
    );
    assert!(
        with_stack.shed > 0 && with_stack.shed_without_retry_after == 0,
        "the excess is shed with 503 and Retry-After: {with_stack:?}"
    );
    assert!(
        collapsed < goodput,
        "without protection goodput should collapse: {collapsed:.0}/s vs {goodput:.0}/s"
    );
}

fn order(addr: SocketAddr, key: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}/orders"))
        .header("idempotency-key", key)
        .body(Full::new(body.into()))
        .unwrap()
}

/// 100 concurrent duplicates of one order run the handler once; the others are replayed
/// or told the first is still in flight (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_orders_run_once() {
    // A slow order, so that the duplicates arrive while the first still runs.
    let config = Config {
        service_time: Duration::from_millis(300),
        ..config(false)
    };
    let addr = start(&config).await;
    let client = client();
    let mut duplicates = JoinSet::new();
    for _ in 0..100 {
        let client = client.clone();
        duplicates.spawn(async move {
            let response = client.request(order(addr, "order-42", "2 widgets")).await?;
            let status = response.status();
            let replayed = response.headers().contains_key("idempotent-replayed");
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, replayed, body))
        });
    }
    let (mut created, mut replayed, mut in_flight) = (0, 0, 0);
    while let Some(result) = duplicates.join_next().await {
        let (status, was_replayed, body) = result.unwrap().unwrap();
        match status {
            StatusCode::CREATED => {
                assert_eq!(body, "order 1: 2 widgets\n");
                if was_replayed {
                    replayed += 1;
                } else {
                    created += 1;
                }
            }
            StatusCode::CONFLICT => in_flight += 1,
            other => panic!("unexpected {other} for a duplicate order"),
        }
    }
    println!("duplicates: {created} created, {replayed} replayed, {in_flight} in flight (409)");
    assert_eq!(created, 1, "exactly one duplicate runs");
    assert_eq!(created + replayed + in_flight, 100);

    // Once it has finished, a retry gets the stored answer.
    let retry = client
        .request(order(addr, "order-42", "2 widgets"))
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(stats(addr).await["executions"], 1);
}

/// The server merges the caller's `hlc-timestamp` and stamps its answers: each answer is
/// after the request that caused it, and the answers strictly increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlc_headers_round_trip_and_increase() {
    let addr = start(&config(false)).await;
    let client = client();
    let local = Arc::new(Hlc::new());
    let mut last = Timestamp::ZERO;
    for i in 0..20u64 {
        let sent = if i == 10 {
            // A caller whose clock is 200 ms ahead (within the 500 ms max offset): the
            // server's answer must still come after it.
            let now = local.now();
            Timestamp::new(now.physical_micros() + 200_000, 0).unwrap()
        } else {
            local.now()
        };
        let request = Request::get(format!("http://{addr}/work"))
            .header(header::DEFAULT_HEADER, header::encode(sent))
            .body(Full::default())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let stamp = response.headers()[header::DEFAULT_HEADER].as_bytes();
        let received = header::decode(stamp).unwrap();
        assert!(
            received > sent,
            "answer {received} is not after request {sent}"
        );
        assert!(received > last, "answer {received} is not after {last}");
        local.update(received).unwrap();
        last = received;
    }
}

/// A keyed order over the body cap is refused with 413 before the handler runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_gets_413() {
    let config = Config {
        max_body: 1024,
        ..config(false)
    };
    let addr = start(&config).await;
    let client = client();
    let too_big = client
        .request(order(addr, "big", vec![b'x'; 1025]))
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let fits = client
        .request(order(addr, "small", vec![b'x'; 1024]))
        .await
        .unwrap();
    assert_eq!(fits.status(), StatusCode::CREATED);
    assert_eq!(stats(addr).await["executions"], 1);
}
