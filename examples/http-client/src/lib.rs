//! An HTTP client stack on hyper-util's legacy `Client`, outermost first:
//!
//! ```text
//! IdempotencyKeyLayer -> RetryLayer::http (TpsBudget) -> AdaptiveThrottleLayer -> HlcLayer::client -> HashRouter (Rendezvous) -> hyper-util Client per backend
//! ```
//!
//! [`start_backends`] starts three axum backends on loopback (`node-c` answers every other
//! request with `503`); [`run`] sends `POST /orders/{id}` requests through the stack, then
//! more while every backend is overloaded, and returns a [`Report`] of what the backends
//! saw and what the layers counted. The README
//! explains the order of the layers; `cargo run -p example-http-client` runs the demo, and
//! `tests/` checks the promises.
//!
//! ```no_run
//! use example_http_client::{RunConfig, run, start_backends};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let backends = start_backends().await?;
//! let report = run(&backends, &RunConfig::default()).await?;
//! println!("{} retries, {} throttled", report.retries, report.overload.throttled);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast::ServiceBuilderExt;
use steadfast::core::classify::HttpClassifier;
use steadfast::core::error::BoxError;
use steadfast::hash::rendezvous::Rendezvous;
use steadfast::hash::router::HashRouter;
use steadfast::hlc::{Hlc, HlcLayer, Timestamp};
use steadfast::retry::RetryLayer;
use steadfast::retry::backoff::Backoff;
use steadfast::retry::body::ReplayBody;
use steadfast::retry::budget::{RetryBudget, TpsBudget};
use steadfast::shed::{AdaptiveThrottleLayer, Throttled};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The backends' names, in the order of [`start_backends`]'s result.
pub const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// The backend that answers every other request with `503 Service Unavailable`.
pub const FLAKY: &str = "node-c";
/// The header the retry layer sets on retries: the number of earlier attempts.
pub const ATTEMPT_HEADER: HeaderName = HeaderName::from_static("x-retry-attempt");

// === The backends ===

/// One request as a backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The order id, from `/orders/{id}`.
    pub order: String,
    /// The `Idempotency-Key` header, if any.
    pub key: Option<String>,
    /// The client's HLC stamp (`hlc-timestamp`), if any and well formed.
    pub stamp: Option<Timestamp>,
    /// Earlier attempts of the same call (`x-retry-attempt`; 0 on the first).
    pub attempt: u32,
    /// The status the backend answered.
    pub status: u16,
}

/// A backend's state: its name, whether it is flaky or overloaded, and what it saw.
#[derive(Clone)]
struct Node {
    name: &'static str,
    flaky: bool,
    overloaded: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A running backend (an axum server on 127.0.0.1). Dropping it stops it.
pub struct Backend {
    name: &'static str,
    addr: SocketAddr,
    overloaded: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// The backend's name (one of [`NODES`]).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes the backend answer every request with `503` (`true`) or behave normally again.
    pub fn set_overloaded(&self, overloaded: bool) {
        self.overloaded.store(overloaded, Ordering::Relaxed);
    }

    /// Every request it received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `POST /orders/{id}`: records the request; the flaky node fails every other one, an
/// overloaded node every one.
async fn create_order(
    State(node): State<Node>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let n = node.requests.fetch_add(1, Ordering::Relaxed);
    let status = if node.overloaded.load(Ordering::Relaxed) || (node.flaky && n % 2 == 0) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::CREATED
    };
    let seen = Seen {
        order: order.clone(),
        key: header_str(&headers, "idempotency-key").map(str::to_owned),
        stamp: headers
            .get("hlc-timestamp")
            .and_then(|value| steadfast::hlc::header::decode(value.as_bytes()).ok()),
        attempt: header_str(&headers, ATTEMPT_HEADER.as_str())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0),
        status: status.as_u16(),
    };
    node.seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(seen);
    (status, [("x-node", node.name)], format!("order {order}"))
}

/// Starts the three backends of [`NODES`] on ephemeral loopback ports, each behind a
/// server-side [`HlcLayer`] (so responses carry its clock); [`FLAKY`] answers every other
/// request with `503`.
///
/// # Errors
///
/// Binding a port.
pub async fn start_backends() -> Result<Vec<Backend>, BoxError> {
    let mut backends = Vec::with_capacity(NODES.len());
    for name in NODES {
        let node = Node {
            name,
            flaky: name == FLAKY,
            overloaded: Arc::default(),
            requests: Arc::default(),
            seen: Arc::default(),
        };
        let seen = node.seen.clone();
        let overloaded = node.overloaded.clone();
        let app = Router::new()
            .route("/orders/{id}", post(create_order))
            .with_state(node)
            .layer(HlcLayer::server(Arc::new(Hlc::new())));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("{name} stopped: {err}");
            }
        });
        backends.push(Backend {
            name,
            addr,
            overloaded,
            seen,
            task,
        });
    }
    Ok(backends)
}

// === The client ===

/// The request body the stack takes.
pub type RequestBody = Full<Bytes>;
/// The response body the stack returns (hyper's, boxed: the HLC layer needs a body with a
/// `Default`, for the responses it makes itself).
pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// The routing key: the `{id}` of `/orders/{id}`.
pub fn order_key<B>(request: &Request<B>) -> String {
    let path = request.uri().path();
    path.strip_prefix("/orders/").unwrap_or(path).to_owned()
}

/// A hyper-util client that sends every request to `addr` (the request's URI is only a
/// path).
fn member(
    addr: SocketAddr,
) -> impl Service<
    Request<ReplayBody<RequestBody>>,
    Response = Response<ResponseBody>,
    Error = hyper_util::client::legacy::Error,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<RequestBody>>();
    client
        .map_request(move |mut request: Request<ReplayBody<RequestBody>>| {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = format!("http://{addr}{path}")
                .parse()
                .expect("an address and a path make a valid URI");
            request
        })
        .map_response(|response| response.map(|body| body.map_err(BoxError::from).boxed()))
}

/// The demo's settings.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Requests of the first phase, where only [`FLAKY`] fails (every other request)
    /// (default 300).
    pub requests: usize,
    /// Requests of the second phase, where every backend is overloaded and answers `503`
    /// (default 100).
    pub overload_requests: usize,
    /// The retry budget's share of recent requests (default 0.2, no reserve).
    pub retry_ratio: f64,
    /// The throttle's `K` (default 2.0, the SRE book's): the client refuses locally once
    /// the backends accept less than half of its requests.
    pub throttle_k: f64,
    /// The throttle's window (default 1 s, in 10 buckets; the SRE book's 120 s suits a
    /// long-running client). The run pauses this long between its phases, so that the
    /// overload phase is judged on its own.
    pub throttle_window: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            requests: 300,
            overload_requests: 100,
            retry_ratio: 0.2,
            throttle_k: 2.0,
            throttle_window: Duration::from_secs(1),
        }
    }
}

/// The retry budget's window: the demo runs well within it, so the budget is exact.
pub const BUDGET_TTL: Duration = Duration::from_secs(10);

/// What one phase of a run did.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Requests sent by the caller.
    pub requests: u64,
    /// Final answers by status, and `"throttled"` / `"error"` for calls that failed.
    pub outcomes: BTreeMap<String, u64>,
    /// Requests each backend received (attempts included), in the order of [`NODES`].
    pub per_backend: Vec<u64>,
    /// Retries the retry layer sent.
    pub retries: u64,
    /// Retries the budget refused.
    pub budget_refused: u64,
    /// Attempts refused locally by the throttle (they never left the client).
    pub throttled: u64,
    /// The throttle's rejection probability at the end of the phase.
    pub reject_probability: f64,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The first phase: [`FLAKY`] fails every other request.
    pub normal: Phase,
    /// The second phase: every backend is overloaded.
    pub overload: Phase,
    /// Requests of both phases.
    pub requests: u64,
    /// Retries of both phases.
    pub retries: u64,
    /// The most retries the budget allows for them: `retry_ratio` × requests, rounded down
    /// (no reserve, and the run is shorter than [`BUDGET_TTL`]).
    pub budget: u64,
    /// For each order id, the backend that owns it under rendezvous hashing.
    pub owners: BTreeMap<String, &'static str>,
    /// The client's HLC reading after each call, in order.
    pub client_clock: Vec<Timestamp>,
}

/// Sends `config.requests` `POST /orders/{id}` through the full client stack to
/// `backends` (from [`start_backends`]), one after the other, then
/// `config.overload_requests` more while every backend is overloaded (after a pause of one
/// throttle window), and reports.
///
/// # Errors
///
/// An invalid configuration (a ratio or `K` out of range).
pub async fn run(backends: &[Backend], config: &RunConfig) -> Result<Report, BoxError> {
    let names: Vec<&'static str> = backends.iter().map(Backend::name).collect();
    let placement = Rendezvous::new(names)?;
    let members = backends.iter().map(|b| member(b.addr())).collect();
    let router = HashRouter::new(members, placement.clone(), order_key).strict();

    let hlc = Arc::new(Hlc::new());
    let throttle = AdaptiveThrottleLayer::builder()
        .classifier(HttpClassifier::new())
        .k(config.throttle_k)
        .window(config.throttle_window)
        .buckets(10)
        .seed(7)
        .build()?;
    let budget = Arc::new(TpsBudget::new(BUDGET_TTL, 0, config.retry_ratio)?);
    let retry = RetryLayer::http()
        .budget(budget as Arc<dyn RetryBudget>)
        .backoff(Backoff::full_jitter(
            Duration::from_millis(1),
            Duration::from_millis(10),
        )?)
        .attempt_header(ATTEMPT_HEADER)
        .build()?;
    let retry_stats = retry.stats();

    let mut client = ServiceBuilder::new()
        .idempotency_key()
        .with_retry(retry)
        .layer(throttle.clone())
        .hlc_client(hlc.clone())
        .service(router);

    let mut owners = BTreeMap::new();
    let mut client_clock = Vec::with_capacity(config.requests + config.overload_requests);
    let mut phases = Vec::with_capacity(2);
    let mut next_order = 0;
    for (count, overloaded) in [(config.requests, false), (config.overload_requests, true)] {
        if overloaded {
            // Let the throttle's window forget the first phase.
            tokio::time::sleep(config.throttle_window + config.throttle_window / 10).await;
        }
        for backend in backends {
            backend.set_overloaded(overloaded);
        }
        let before = (
            retry_stats.requests(),
            retry_stats.retries(),
            retry_stats.budget_exhausted(),
            throttle.stats().throttled,
            backends
                .iter()
                .map(|b| b.seen().len() as u64)
                .collect::<Vec<_>>(),
        );
        let mut outcomes = BTreeMap::new();
        for _ in 0..count {
            let order = format!("{next_order:04}");
            next_order += 1;
            let owner = placement.get(order.as_str()).expect("three members");
            owners.insert(order.clone(), *owner);
            let request = Request::post(format!("/orders/{order}"))
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(format!(
                    "2 widgets for order {order}"
                ))))?;
            let outcome = match client.ready().await?.call(request).await {
                Ok(response) => {
                    let status = response.status().as_u16().to_string();
                    response.into_body().collect().await?;
                    status
                }
                Err(err) if err.is::<Throttled>() => "throttled".to_owned(),
                Err(_) => "error".to_owned(),
            };
            *outcomes.entry(outcome).or_insert(0) += 1;
            client_clock.push(hlc.now());
        }
        phases.push(Phase {
            requests: retry_stats.requests() - before.0,
            outcomes,
            per_backend: backends
                .iter()
                .zip(&before.4)
                .map(|(b, earlier)| b.seen().len() as u64 - earlier)
                .collect(),
            retries: retry_stats.retries() - before.1,
            budget_refused: retry_stats.budget_exhausted() - before.2,
            throttled: throttle.stats().throttled - before.3,
            reject_probability: throttle.reject_probability(),
        });
    }
    for backend in backends {
        backend.set_overloaded(false);
    }

    let overload = phases.pop().unwrap_or_default();
    let normal = phases.pop().unwrap_or_default();
    let requests = retry_stats.requests();
    Ok(Report {
        normal,
        overload,
        requests,
        retries: retry_stats.retries(),
        budget: (requests as f64 * config.retry_ratio).floor() as u64,
        owners,
        client_clock,
    })
}
