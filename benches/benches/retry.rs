//! The overhead per call of a retry layer around a ready no-op service: steadfast's
//! [`RetryLayer`] against `tower::retry::Retry` and tower-resilience-retry, each configured
//! for 3 attempts in all. The service always succeeds, so no retry ever happens: what is
//! measured is the path every successful call pays.
//!
//! Groups, each with the same request type in every row:
//!
//! - `retry_call/u64`: a `u64` request echoed back (`Clone` is free, so only the layer's own
//!   work shows).
//! - `retry_call/http`: an `http::Request<Full<Bytes>>` (a `GET` with a URI and two
//!   headers) answered with an empty `http::Response<()>`. Every row, the baseline
//!   included, clones a prepared request per call, since the layers consume theirs.
//!
//! Rows: `baseline` (the bare service), `tower` (`tower::retry::Retry` with the policy
//! below), `tower-resilience` (its defaults plus 3 attempts: no budget),
//! `tower-resilience+budget` (with its token-bucket budget) and `steadfast`.
//!
//! Every row is driven the same way, without a runtime: `poll_ready`, `call`, then one poll
//! of the response future with a no-op waker. Every service here is ready at once and
//! every future resolves on its first poll (anything else panics).
//!
//! Run with `cargo bench -p steadfast-benches --bench retry`; see `benches/README.md`.

use std::future::{self, Ready};
use std::hint::black_box;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use steadfast_benches::call_once;
use steadfast_core::classify::ErrorsAsFailures;
use steadfast_retry::RetryLayer;
use steadfast_retry::body::ReplayBody;
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::rng::HasherRng;
use tower::{Layer, service_fn};
use tower_resilience_retry::RetryBudgetBuilder;

/// Attempts in all, the first included: steadfast's default.
const MAX_ATTEMPTS: u32 = 3;

type HttpRequest = Request<Full<Bytes>>;

/// The connection-level I/O errors steadfast's `classify_error` retries.
fn retryable_io(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::TimedOut
    )
}

/// The statuses steadfast's `HttpClassifier` retries.
fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 502 | 503 | 504)
}

/// The HTTP methods steadfast's `IdempotentRequests` lets retry (RFC 9110 §9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// What the tower policy needs to know of a request and a response, to behave like
/// steadfast's `cloning(ErrorsAsFailures)` and `http()` layers.
trait Exchange<Res> {
    /// Whether the request may be sent more than once.
    fn may_retry(&self) -> bool;
    /// Whether a response (not an error) is a retryable failure.
    fn retryable_response(response: &Res) -> bool;
}

impl Exchange<u64> for u64 {
    fn may_retry(&self) -> bool {
        true
    }

    fn retryable_response(_: &u64) -> bool {
        false
    }
}

impl Exchange<Response<()>> for HttpRequest {
    fn may_retry(&self) -> bool {
        idempotent(self.method()) || self.headers().contains_key("idempotency-key")
    }

    fn retryable_response(response: &Response<()>) -> bool {
        retryable_status(response.status())
    }
}

/// A `tower::retry::Policy` as close to steadfast's defaults as tower allows: 3 attempts,
/// a shared `TpsBudget::default()` that every request deposits into once, exponential
/// backoff (50 ms to 1 s, jittered), requests cloned, and only retryable failures
/// retried. tower clones the policy for each request, so `attempts` and `backoff` are per
/// request.
#[derive(Clone)]
struct TowerPolicy {
    budget: Arc<TpsBudget>,
    backoff: ExponentialBackoff<HasherRng>,
    attempts: u32,
}

impl TowerPolicy {
    fn new() -> Self {
        let backoff = ExponentialBackoffMaker::new(
            Duration::from_millis(50),
            Duration::from_secs(1),
            1.0,
            HasherRng::default(),
        )
        .expect("valid backoff")
        .make_backoff();
        Self {
            budget: Arc::new(TpsBudget::default()),
            backoff,
            attempts: 1,
        }
    }
}

impl<Req, Res> tower::retry::Policy<Req, Res, io::Error> for TowerPolicy
where
    Req: Exchange<Res> + Clone,
{
    type Future = <ExponentialBackoff<HasherRng> as Backoff>::Future;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, io::Error>) -> Option<Self::Future> {
        if self.attempts == 1 {
            // The first outcome of each request: one deposit per request, as steadfast.
            self.budget.deposit();
        }
        let retryable = match result {
            Ok(response) => Req::retryable_response(response),
            Err(err) => retryable_io(err),
        };
        if !retryable || self.attempts >= MAX_ATTEMPTS || !self.budget.withdraw() {
            return None;
        }
        self.attempts += 1;
        Some(self.backoff.next_backoff())
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        request.may_retry().then(|| request.clone())
    }
}

fn tower_retry<S>(service: S) -> tower::retry::Retry<TowerPolicy, S> {
    tower::retry::RetryLayer::new(TowerPolicy::new()).layer(service)
}

/// tower-resilience's layer with its defaults (exponential backoff from 100 ms, no
/// budget) and 3 attempts, retrying the same errors and responses as the others.
fn resilience_builder<Req, Res>() -> tower_resilience_retry::RetryConfigBuilder<Req, Res, io::Error>
where
    Req: Exchange<Res>,
{
    tower_resilience_retry::RetryLayer::<Req, Res, io::Error>::builder()
        .max_attempts(MAX_ATTEMPTS as usize)
        .retry_on(retryable_io)
}

/// Its token-bucket budget with the builder's defaults (10 tokens a second, 100 at most),
/// deposited into on every success.
fn resilience_budget() -> Arc<dyn tower_resilience_retry::RetryBudget> {
    RetryBudgetBuilder::new()
        .token_bucket()
        .build()
        .expect("valid budget")
}

fn u64_calls(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_call/u64");
    let echo = service_fn(|request: u64| future::ready(Ok::<u64, io::Error>(request)));

    let mut baseline = echo;
    group.bench_function("baseline", |b| {
        b.iter(|| black_box(call_once(&mut baseline, black_box(42_u64))))
    });

    let mut tower = tower_retry(echo);
    group.bench_function("tower", |b| {
        b.iter(|| black_box(call_once(&mut tower, black_box(42_u64))))
    });

    let mut resilience = resilience_builder::<u64, u64>().build().layer(echo);
    group.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(call_once(&mut resilience, black_box(42_u64))))
    });

    let mut resilience_budgeted = resilience_builder::<u64, u64>()
        .budget(resilience_budget())
        .build()
        .layer(echo);
    group.bench_function("tower-resilience+budget", |b| {
        b.iter(|| black_box(call_once(&mut resilience_budgeted, black_box(42_u64))))
    });

    let layer = RetryLayer::cloning(ErrorsAsFailures)
        .build()
        .expect("valid layer");
    let stats = layer.stats();
    let mut steadfast = layer.layer(echo);
    assert_eq!(call_once(&mut steadfast, 42), 42);
    assert_eq!(stats.requests(), 1, "the call went through the retry layer");
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut steadfast, black_box(42_u64))))
    });
    assert_eq!(stats.retries(), 0, "the service never fails");

    group.finish();
}

/// A typical idempotent request: retryable by every layer, so each keeps a copy.
fn http_request() -> HttpRequest {
    Request::builder()
        .method(Method::GET)
        .uri("http://backend.internal/items/42")
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "steadfast-bench")
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

fn ok<T>(_request: T) -> Ready<Result<Response<()>, io::Error>> {
    future::ready(Ok(Response::new(())))
}

fn http_calls(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_call/http");
    let template = http_request();
    let backend = service_fn(ok::<HttpRequest>);

    let mut baseline = backend;
    group.bench_function("baseline", |b| {
        b.iter(|| black_box(call_once(&mut baseline, black_box(&template).clone())))
    });

    let mut tower = tower_retry(backend);
    group.bench_function("tower", |b| {
        b.iter(|| black_box(call_once(&mut tower, black_box(&template).clone())))
    });

    let mut resilience = resilience_builder::<HttpRequest, Response<()>>()
        .retry_on_response(|response: &Response<()>| retryable_status(response.status()))
        .build()
        .layer(backend);
    group.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(call_once(&mut resilience, black_box(&template).clone())))
    });

    let mut resilience_budgeted = resilience_builder::<HttpRequest, Response<()>>()
        .retry_on_response(|response: &Response<()>| retryable_status(response.status()))
        .budget(resilience_budget())
        .build()
        .layer(backend);
    group.bench_function("tower-resilience+budget", |b| {
        b.iter(|| {
            black_box(call_once(
                &mut resilience_budgeted,
                black_box(&template).clone(),
            ))
        })
    });

    // steadfast's inner service receives the body wrapped for replay.
    let layer = RetryLayer::http().build().expect("valid layer");
    let stats = layer.stats();
    let mut steadfast = layer.layer(service_fn(ok::<Request<ReplayBody<Full<Bytes>>>>));
    call_once(&mut steadfast, template.clone());
    assert_eq!(stats.requests(), 1, "the call went through the retry layer");
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut steadfast, black_box(&template).clone())))
    });
    assert_eq!(stats.retries(), 0, "the service never fails");

    group.finish();
}

criterion_group!(benches, u64_calls, http_calls);
criterion_main!(benches);
