//! The retry layer through real tower stacks, on paused tokio time.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use steadfast_core::classify::ErrorsAsFailures;
use steadfast_core::error::BoxError;
use steadfast_retry::backoff::Backoff;
use steadfast_retry::body::ReplayBody;
use steadfast_retry::budget::{NoBudget, RetryBudget, TpsBudget};
use steadfast_retry::rng::SplitMix64;
use steadfast_retry::{AttemptTimedOut, DeadlineExceeded, RetryLayer};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A scripted answer: a status and an optional `Retry-After`.
type Script = Arc<Mutex<VecDeque<(u16, Option<&'static str>)>>>;

/// An HTTP backend that answers each attempt with the next scripted status (200 when the
/// script runs out), and records every body it read.
#[derive(Clone, Default)]
struct Backend {
    script: Script,
    bodies: Arc<Mutex<Vec<Bytes>>>,
    read_body: bool,
}

impl Backend {
    fn new(script: &[u16]) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.iter().map(|&s| (s, None)).collect())),
            read_body: true,
            ..Self::default()
        }
    }

    fn with_retry_after(status: u16, retry_after: &'static str) -> Self {
        let backend = Self::new(&[]);
        backend
            .script
            .lock()
            .unwrap()
            .push_back((status, Some(retry_after)));
        backend
    }

    fn attempts(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

impl<B> Service<Request<B>> for Backend
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<String>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<String>, BoxError>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (status, retry_after) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, None));
        let bodies = self.bodies.clone();
        let read_body = self.read_body;
        Box::pin(async move {
            let body = if read_body {
                req.into_body()
                    .collect()
                    .await
                    .map_err(Into::into)?
                    .to_bytes()
            } else {
                Bytes::new()
            };
            bodies.lock().unwrap().push(body);
            let mut builder = Response::builder().status(status);
            if let Some(after) = retry_after {
                builder = builder.header("retry-after", after);
            }
            Ok(builder.body(String::new()).expect("valid response"))
        })
    }
}

fn get() -> Request<Full<Bytes>> {
    Request::new(Full::new(Bytes::from_static(b"hello")))
}

fn seeded() -> Arc<SplitMix64> {
    Arc::new(SplitMix64::new(7))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retries_a_retryable_status_until_success() {
    let backend = Backend::new(&[503, 502]);
    let layer = RetryLayer::http().rng(seeded()).build().expect("valid");
    let stats = layer.stats();
    let svc = ServiceBuilder::new().layer(layer).service(backend.clone());
    let res = svc.oneshot(get()).await.expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(backend.attempts(), 3);
    assert_eq!((stats.attempts(), stats.retries()), (3, 2));
    // Every attempt saw the same body.
    assert!(backend.bodies.lock().unwrap().iter().all(|b| b == "hello"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_response() {
    let backend = Backend::new(&[503, 503, 503, 503, 503]);
    let layer = RetryLayer::http().rng(seeded()).build().expect("valid");
    let stats = layer.stats();
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(get())
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(backend.attempts(), 3, "default max attempts is 3");
    assert_eq!(stats.gave_up(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn non_retryable_statuses_are_returned_at_once() {
    for status in [500, 501, 404] {
        let backend = Backend::new(&[status]);
        let res = ServiceBuilder::new()
            .layer(RetryLayer::http().build().expect("valid"))
            .service(backend.clone())
            .oneshot(get())
            .await
            .expect("ok");
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(backend.attempts(), 1, "{status}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn post_is_retried_only_with_an_idempotency_key() {
    let post = |key: bool| {
        let mut builder = Request::builder().method(Method::POST);
        if key {
            builder = builder.header("idempotency-key", "abc");
        }
        builder.body(Full::new(Bytes::from_static(b"pay"))).unwrap()
    };
    let layer = RetryLayer::http().rng(seeded()).build().expect("valid");

    let backend = Backend::new(&[503]);
    let res = ServiceBuilder::new()
        .layer(layer.clone())
        .service(backend.clone())
        .oneshot(post(false))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(backend.attempts(), 1);

    let backend = Backend::new(&[503]);
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(post(true))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(backend.attempts(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retry_after_is_honoured_exactly_and_capped() {
    let backend = Backend::with_retry_after(503, "2");
    let layer = RetryLayer::http().rng(seeded()).build().expect("valid");
    let start = Instant::now();
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(get())
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    // A hint over the cap returns the server's answer instead of waiting.
    let backend = Backend::with_retry_after(429, "120");
    let layer = RetryLayer::http().build().expect("valid");
    let stats = layer.stats();
    let start = Instant::now();
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(get())
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!((backend.attempts(), stats.hint_too_long()), (1, 1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hint_past_the_deadline_is_not_waited_for() {
    let backend = Backend::with_retry_after(503, "5");
    let layer = RetryLayer::http()
        .deadline(Duration::from_secs(3))
        .build()
        .expect("valid");
    let start = Instant::now();
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(get())
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// A backend that takes `latency` per call and fails with 503 for the first `fail` calls.
fn slow_backend(
    latency: Duration,
    fail: usize,
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<ReplayBody<String>>, Response = Response<String>, Error = Infallible> + Clone
{
    service_fn(move |_req: Request<ReplayBody<String>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(latency).await;
            let status = if n < fail { 503 } else { 200 };
            Ok(Response::builder()
                .status(status)
                .body(String::new())
                .unwrap())
        }
    })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_deadline_is_never_exceeded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RetryLayer::http()
        .max_attempts(10)
        .backoff(Backoff::constant(Duration::from_millis(100)))
        .deadline(Duration::from_secs(1))
        .budget(Arc::new(NoBudget))
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new().layer(layer).service(slow_backend(
        Duration::from_millis(300),
        usize::MAX,
        calls.clone(),
    ));
    let start = Instant::now();
    let err = svc
        .oneshot(Request::new(String::new()))
        .await
        .expect_err("deadline");
    assert!(
        start.elapsed() <= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let err = err
        .downcast::<DeadlineExceeded>()
        .expect("DeadlineExceeded");
    // 300 ms + 100 ms sleep per attempt: attempts start at 0, 400, 800 ms.
    assert_eq!(err.attempts(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_timed_out_attempt_is_cancelled_and_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |_req: Request<ReplayBody<String>>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            Ok::<_, Infallible>(Response::new(String::from("second")))
        }
    });
    let layer = RetryLayer::http()
        .attempt_timeout(Duration::from_millis(200))
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .build()
        .expect("valid");
    let start = Instant::now();
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .oneshot(Request::new(String::new()))
        .await
        .expect("ok");
    assert_eq!(res.body(), "second");
    assert_eq!(start.elapsed(), Duration::from_millis(210));

    // When every attempt times out, the last timeout is the error.
    let layer = RetryLayer::http()
        .attempt_timeout(Duration::from_millis(50))
        .build()
        .expect("valid");
    let hang = service_fn(|_req: Request<ReplayBody<String>>| async {
        std::future::pending::<Result<Response<String>, Infallible>>().await
    });
    let err = ServiceBuilder::new()
        .layer(layer)
        .service(hang)
        .oneshot(Request::new(String::new()))
        .await
        .expect_err("times out");
    assert!(err.is::<AttemptTimedOut>());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_empty_budget_stops_retries_and_is_shared_across_clones() {
    // No reserve and no ratio: Finagle's empty budget.
    let budget: Arc<dyn RetryBudget> =
        Arc::new(TpsBudget::new(Duration::from_secs(10), 0, 0.0).expect("valid"));
    let layer = RetryLayer::http().budget(budget).build().expect("valid");
    let stats = layer.stats();
    let backend = Backend::new(&[503, 503]);
    let mut a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(backend.clone());
    let mut b = a.clone();
    for svc in [&mut a, &mut b] {
        let res = ServiceExt::<Request<Full<Bytes>>>::ready(svc)
            .await
            .expect("ready")
            .call(get())
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(backend.attempts(), 2);
    assert_eq!(stats.budget_exhausted(), 2);

    // Ratio 0.5, no reserve: two requests earn exactly one retry, shared by the clones.
    let budget: Arc<dyn RetryBudget> =
        Arc::new(TpsBudget::new(Duration::from_secs(10), 0, 0.5).expect("valid"));
    let layer = RetryLayer::http().budget(budget).build().expect("valid");
    let stats = layer.stats();
    let backend = Backend::new(&[503, 503, 503]);
    let mut a = ServiceBuilder::new().layer(layer).service(backend.clone());
    let mut b = a.clone();
    ServiceExt::<Request<Full<Bytes>>>::ready(&mut a)
        .await
        .unwrap()
        .call(get())
        .await
        .unwrap();
    ServiceExt::<Request<Full<Bytes>>>::ready(&mut b)
        .await
        .unwrap()
        .call(get())
        .await
        .unwrap();
    assert_eq!(stats.retries(), 1);
}

/// A request body that arrives in chunks with no known length, like an upload.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

fn upload(chunks: usize, chunk_len: usize) -> Request<Chunks> {
    let chunks = (0..chunks)
        .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; chunk_len]))
        .collect();
    Request::builder()
        .method(Method::PUT)
        .body(Chunks(chunks))
        .unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_streamed_body_under_the_cap_is_replayed_byte_for_byte() {
    let backend = Backend::new(&[503, 503]);
    let layer = RetryLayer::http().rng(seeded()).build().expect("valid");
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(upload(8, 1024))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    let bodies = backend.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0].len(), 8 * 1024);
    assert!(bodies.iter().all(|b| *b == bodies[0]));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_body_over_the_cap_is_sent_once_and_counted() {
    let backend = Backend::new(&[503]);
    let layer = RetryLayer::http()
        .body_cap(4 * 1024)
        .build()
        .expect("valid");
    let stats = layer.stats();
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(upload(8, 1024))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(backend.attempts(), 1);
    assert_eq!(
        backend.bodies.lock().unwrap()[0].len(),
        8 * 1024,
        "streamed whole"
    );
    assert_eq!(stats.not_replayable(), 1);

    // A body whose size is known to exceed the cap is never buffered.
    let backend = Backend::new(&[503]);
    let layer = RetryLayer::http().body_cap(4).build().expect("valid");
    let stats = layer.stats();
    ServiceBuilder::new()
        .layer(layer)
        .service(backend.clone())
        .oneshot(get())
        .await
        .expect("ok");
    assert_eq!((backend.attempts(), stats.not_replayable()), (1, 1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_body_the_first_attempt_never_read_is_sent_whole_on_retry() {
    let mut backend = Backend::new(&[503]);
    backend.read_body = false;
    let reads = backend.clone();
    // The first attempt answers 503 without reading; the second reads everything.
    let flip = Arc::new(AtomicUsize::new(0));
    let svc = service_fn(move |req: Request<ReplayBody<Chunks>>| {
        let mut backend = backend.clone();
        backend.read_body = flip.fetch_add(1, Ordering::SeqCst) > 0;
        backend.call(req)
    });
    let layer = RetryLayer::http().rng(seeded()).build().expect("valid");
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(svc)
        .oneshot(upload(3, 10))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    let bodies = reads.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0].len(), 0);
    assert_eq!(bodies[1].len(), 30);
}

/// Counts `poll_ready` calls across all clones.
#[derive(Clone)]
struct CountsReadiness<S> {
    inner: S,
    readies: Arc<AtomicUsize>,
}

impl<S: Service<R>, R> Service<R> for CountsReadiness<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.readies.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn readiness_is_driven_before_every_attempt() {
    let readies = Arc::new(AtomicUsize::new(0));
    let backend = Backend::new(&[503, 503]);
    let inner = CountsReadiness {
        inner: backend.clone(),
        readies: readies.clone(),
    };
    let layer = RetryLayer::http().rng(seeded()).build().expect("valid");
    ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .oneshot(get())
        .await
        .expect("ok");
    assert_eq!(backend.attempts(), 3);
    assert_eq!(
        readies.load(Ordering::SeqCst),
        3,
        "one poll_ready per attempt"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_response_future_stops_all_attempts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RetryLayer::http()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .max_attempts(5)
        .budget(Arc::new(NoBudget))
        .build()
        .expect("valid");
    let mut svc = ServiceBuilder::new().layer(layer).service(slow_backend(
        Duration::from_millis(10),
        usize::MAX,
        calls.clone(),
    ));
    let future = ServiceExt::<Request<String>>::ready(&mut svc)
        .await
        .unwrap()
        .call(Request::new(String::new()));
    // Let the first attempt fail and the backoff sleep start, then drop the call.
    let _ = tokio::time::timeout(Duration::from_millis(500), future).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no attempt after the drop");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_attempt_header_counts_earlier_attempts() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let inner = service_fn(move |req: Request<ReplayBody<String>>| {
        let header = req
            .headers()
            .get("x-retry-attempt")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut seen = record.lock().unwrap();
        seen.push(header);
        let status = if seen.len() < 3 { 503 } else { 200 };
        async move { Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap()) }
    });
    let layer = RetryLayer::http()
        .attempt_header(http::HeaderName::from_static("x-retry-attempt"))
        .build()
        .expect("valid");
    ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .oneshot(Request::new(String::new()))
        .await
        .expect("ok");
    assert_eq!(
        *seen.lock().unwrap(),
        [None, Some("1".to_owned()), Some("2".to_owned())]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cloning_layer_retries_any_clonable_request_on_connection_errors() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |req: u32| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err::<u32, BoxError>(
                    std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
                )
            } else {
                Ok(req * 2)
            }
        }
    });
    let layer = RetryLayer::cloning(ErrorsAsFailures)
        .rng(seeded())
        .build()
        .expect("valid");
    let out = ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .oneshot(21)
        .await
        .expect("ok");
    assert_eq!((out, calls.load(Ordering::SeqCst)), (42, 2));

    // A non-retryable error is returned unchanged, once.
    let inner = service_fn(|_req: u32| async {
        Err::<u32, BoxError>(std::io::Error::other("disk on fire").into())
    });
    let err = ServiceBuilder::new()
        .layer(
            RetryLayer::cloning(ErrorsAsFailures)
                .build()
                .expect("valid"),
        )
        .service(inner)
        .oneshot(1)
        .await
        .expect_err("fails");
    assert_eq!(err.to_string(), "disk on fire");
}

#[test]
fn bad_configuration_is_rejected_when_built() {
    assert!(RetryLayer::http().max_attempts(0).build().is_err());
    assert!(RetryLayer::http().max_attempts(101).build().is_err());
    assert!(
        RetryLayer::http()
            .attempt_timeout(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(RetryLayer::http().deadline(Duration::ZERO).build().is_err());
    assert!(
        RetryLayer::cloning(ErrorsAsFailures)
            .max_attempts(1)
            .build()
            .is_ok()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_layers_keep_the_tower_service_contract() {
    let _t = steadfast_test_support::trace_init();
    steadfast_test_support::contract::check_layer(
        RetryLayer::cloning(ErrorsAsFailures)
            .build()
            .expect("valid"),
    )
    .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn grpc_pushback_is_waited_for_and_a_negative_one_stops_retries() {
    let grpc = |headers: &'static [(&'static str, &'static str)]| {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let svc = service_fn(move |_req: Request<ReplayBody<String>>| {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                let mut res = Response::builder().header("content-type", "application/grpc");
                let status_headers: &[(&str, &str)] = if first {
                    headers
                } else {
                    &[("grpc-status", "0")]
                };
                for (name, value) in status_headers {
                    res = res.header(*name, *value);
                }
                Ok::<_, Infallible>(res.body(String::new()).unwrap())
            }
        });
        (svc, calls)
    };
    let layer = RetryLayer::grpc().rng(seeded()).build().expect("valid");

    let (svc, calls) = grpc(&[("grpc-status", "8"), ("grpc-retry-pushback-ms", "250")]);
    let start = Instant::now();
    let res = ServiceBuilder::new()
        .layer(layer.clone())
        .service(svc)
        .oneshot(Request::new(String::new()))
        .await
        .expect("ok");
    assert_eq!(res.headers()["grpc-status"], "0");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(250));

    for headers in [
        &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "-1")][..],
        &[("grpc-status", "8")][..],
        &[("grpc-status", "3")][..],
    ] {
        let (svc, calls) = grpc(headers);
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(svc)
            .oneshot(Request::new(String::new()))
            .await
            .expect("ok");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{headers:?}");
    }

    let (svc, calls) = grpc(&[("grpc-status", "14")]);
    ServiceBuilder::new()
        .layer(layer)
        .service(svc)
        .oneshot(Request::new(String::new()))
        .await
        .expect("ok");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "UNAVAILABLE is retried");
}

/// A request with an empty body (a `GET` from a typical client) keeps no shared replay
/// state: every attempt still gets the same head and an empty body that says so up front.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_empty_body_is_retried_with_the_same_head_and_an_empty_body() {
    #[derive(Debug, Clone, PartialEq)]
    struct Tag(u32);
    type Seen = (
        Method,
        String,
        Option<String>,
        Option<Tag>,
        Option<String>,
        bool,
        Bytes,
    );
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let backend = service_fn(move |request: Request<ReplayBody<Full<Bytes>>>| {
        let record = record.clone();
        async move {
            let (parts, body) = request.into_parts();
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let empty_up_front = http_body::Body::is_end_stream(&body)
                && http_body::Body::size_hint(&body).exact() == Some(0);
            let bytes = body.collect().await.expect("an empty body").to_bytes();
            let mut seen = record.lock().unwrap();
            seen.push((
                parts.method,
                parts.uri.to_string(),
                header("accept"),
                parts.extensions.get::<Tag>().cloned(),
                header("x-attempt"),
                empty_up_front,
                bytes,
            ));
            let status = if seen.len() < 3 { 503 } else { 200 };
            Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
        }
    });
    let layer = RetryLayer::http()
        .attempt_header(http::HeaderName::from_static("x-attempt"))
        .rng(seeded())
        .build()
        .expect("valid");
    let mut request = Request::builder()
        .uri("http://backend.internal/items/42")
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request.extensions_mut().insert(Tag(7));
    let response = ServiceBuilder::new()
        .layer(layer)
        .service(backend)
        .oneshot(request)
        .await
        .expect("ok");
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (i, (method, uri, accept, tag, attempt, empty_up_front, bytes)) in seen.iter().enumerate() {
        assert_eq!(method, Method::GET);
        assert_eq!(uri, "http://backend.internal/items/42");
        assert_eq!(accept.as_deref(), Some("application/json"));
        assert_eq!(tag, &Some(Tag(7)));
        assert!(*empty_up_front, "attempt {i}");
        assert!(bytes.is_empty());
        // The number of earlier attempts, absent on the first.
        let expected = (i > 0).then(|| i.to_string());
        assert_eq!(attempt, &expected, "attempt {i}");
    }
}
