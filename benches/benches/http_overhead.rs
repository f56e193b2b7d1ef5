//! What the whole server stack of `examples/axum-server` costs an axum app, against the
//! bare handler: per request in process, one layer at a time, and in requests a second
//! over real HTTP on loopback.
//!
//! Two parts, in one run:
//!
//! 1. **Loopback throughput** (printed before criterion starts): an axum server
//!    (`axum::serve`, hyper's HTTP/1) on one thread with a current-thread runtime, a
//!    hyper-util client on another thread, 16 keep-alive connections, each sending
//!    `GET /` back to back; a fixed 4,000 requests per round, 20 rounds each after one
//!    warm-up round each, in pairs (bare then full, full then bare, alternately). Both
//!    servers run on the same server thread, on two ports. Printed: the median of the
//!    pairs' full ÷ bare ratios, and the ratio of each variant's best round (the least
//!    disturbed by the rest of the machine). The handler does no work, so the
//!    cost of the layers is as large a share of the total as it can be; nothing is
//!    overloaded (the shedder forwards every request, the limit is never reached), the
//!    "normal load" of the target. Every answer must be 200 (anything else panics).
//! 2. **`http_stack/oneshot`** (criterion): one request through the router in process,
//!    the router built once with `with_state(())` as `axum::serve` does (see [`built`]),
//!    with the layers added one at a time from the outermost inwards, each stack under
//!    one `Router::layer` as in the example: `bare`, `+axum_layer` (an empty
//!    `ServiceBuilder` under `Router::layer`: what axum itself charges for wrapping a
//!    route in any layer, a boxed service clone and a boxed future per request),
//!    `+overload_response`, `+hlc`
//!    (`HlcLayer::server`; the request carries an `hlc-timestamp`), `+shed` (`ShedLayer`
//!    with priorities from `x-request-criticality` and deadlines from `x-request-timeout`,
//!    both headers present), `+limit` (`AdaptiveConcurrencyLayer`, defaults,
//!    backpressure), `+idempotency` (the full stack; a `GET`, which the layer passes
//!    through, plus the body adapter the example needs). Each row's difference from the
//!    one before is that layer's cost. Driven without waiting:
//!    `poll_ready`, `call`, one poll of the response future with a no-op waker (inside a
//!    runtime context, for the layers' `tokio::time` reads); the future must resolve at
//!    once or the row panics.
//! 3. **`http_stack/interleaved`** (printed after the loopback part): the same rows,
//!    interleaved in 30 rounds of 5,000 calls per row, so that a change in the machine's
//!    load hits every row alike; each row's fastest and median batch, and each layer's
//!    share (its fastest batch minus the previous row's). On a shared machine this is the
//!    steadier per-layer figure.
//!
//! Run with `cargo bench -p steadfast-benches --bench http_overhead`; see
//! `benches/README.md`. With criterion's `--profile-time <seconds>` (to profile one row,
//! e.g. under `perf record`) only that row runs, without parts 1 and 3.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast_benches::call_once;
use steadfast_hlc::{Hlc, HlcLayer};
use steadfast_idempotency::{IdempotencyLayer, MemoryStore};
use steadfast_limit::AdaptiveConcurrencyLayer;
use steadfast_shed::{FromHeader, HttpDeadline, OverloadResponseLayer, ShedLayer};
use tokio::sync::oneshot;
use tower::ServiceBuilder;

/// Requests per loopback round.
const REQUESTS: usize = 4_000;
/// Keep-alive connections of the loopback client.
const CONNECTIONS: usize = 16;
/// Measured rounds per variant (after one warm-up round each).
const ROUNDS: usize = 20;

/// How many of the stack's layers wrap the handler, from the outermost inwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layers {
    Bare,
    AxumLayer,
    OverloadResponse,
    Hlc,
    Shed,
    Limit,
    Full,
}

impl Layers {
    const ALL: [Self; 7] = [
        Self::Bare,
        Self::AxumLayer,
        Self::OverloadResponse,
        Self::Hlc,
        Self::Shed,
        Self::Limit,
        Self::Full,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::AxumLayer => "+axum_layer",
            Self::OverloadResponse => "+overload_response",
            Self::Hlc => "+hlc",
            Self::Shed => "+shed",
            Self::Limit => "+limit",
            Self::Full => "+idempotency",
        }
    }
}

async fn handler() -> &'static str {
    "done"
}

fn shed() -> ShedLayer<FromHeader, HttpDeadline> {
    ShedLayer::builder()
        .priority(FromHeader::new())
        .deadline(HttpDeadline)
        .retry_after(Duration::from_secs(1))
        .build()
        .expect("valid shedder")
}

fn limit() -> AdaptiveConcurrencyLayer {
    AdaptiveConcurrencyLayer::builder()
        .build()
        .expect("valid limit")
}

fn hlc() -> HlcLayer {
    HlcLayer::server(Arc::new(Hlc::new()))
}

/// The app with the `layers` outermost layers of the example's stack (`Full`: all of
/// them, in the example's order), each stack under one `Router::layer` as in the example.
fn app(layers: Layers) -> Router {
    let router = Router::new().route("/", get(handler));
    let outer = ServiceBuilder::new().layer(OverloadResponseLayer::http());
    match layers {
        Layers::Bare => router,
        Layers::AxumLayer => router.layer(ServiceBuilder::new()),
        Layers::OverloadResponse => router.layer(outer),
        Layers::Hlc => router.layer(outer.layer(hlc())),
        Layers::Shed => router.layer(outer.layer(hlc()).layer(shed())),
        Layers::Limit => router.layer(outer.layer(hlc()).layer(shed()).layer(limit())),
        Layers::Full => router.layer(
            outer.layer(hlc()).layer(shed()).layer(limit()).layer(
                IdempotencyLayer::builder(MemoryStore::new())
                    .build()
                    .expect("valid idempotency layer"),
            ),
        ),
    }
}

/// [`app`] as `axum::serve` runs it: `with_state(())` turns every route's handler and its
/// layers into a built service once (what `serve` does for each connection, and what the
/// example's `with_state` does at start-up). Called as a `Service` without it, a `Router`
/// would rebuild the handler's route, running every layer's `Layer::layer`, on each
/// request, which no server does.
fn built(layers: Layers) -> Router {
    app(layers).with_state(())
}

fn request() -> Request<Body> {
    Request::get("/")
        .header("x-request-criticality", "critical")
        .header("x-request-timeout", "1000")
        .header("hlc-timestamp", "0000000000000000")
        .body(Body::empty())
        .expect("valid request")
}

fn http_stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let mut group = c.benchmark_group("http_stack/oneshot");
    for layers in Layers::ALL {
        let mut router = built(layers);
        let response = call_once(&mut router, request());
        assert_eq!(response.status(), StatusCode::OK, "{}", layers.name());
        group.bench_function(layers.name(), |b| {
            b.iter_batched(
                request,
                |req| black_box(call_once(&mut router, req)),
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// Serves every router on its own 127.0.0.1 port, all from one thread with a
/// current-thread runtime (so that every variant gets the same thread, wherever the
/// system places it); the sender stops them.
fn serve(
    routers: Vec<Router>,
) -> (
    Vec<SocketAddr>,
    oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let listeners: Vec<std::net::TcpListener> = routers
        .iter()
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            listener.set_nonblocking(true).expect("nonblocking");
            listener
        })
        .collect();
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr().expect("address"))
        .collect();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut servers = tokio::task::JoinSet::new();
            for (listener, router) in listeners.into_iter().zip(routers) {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                servers.spawn(async move { axum::serve(listener, router).await });
            }
            let _ = stopped.await;
            servers.abort_all();
        });
    });
    (addrs, stop, thread)
}

/// Sends [`REQUESTS`] requests over [`CONNECTIONS`] connections; requests a second.
fn round(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> f64 {
    runtime.block_on(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let uri: http::Uri = format!("http://{addr}/").parse().expect("uri");
        let started = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONNECTIONS {
            let (client, uri) = (client.clone(), uri.clone());
            tasks.spawn(async move {
                for _ in 0..REQUESTS / CONNECTIONS {
                    let req = Request::get(uri.clone())
                        .header("x-request-criticality", "critical")
                        .header("x-request-timeout", "1000")
                        .body(Empty::new())
                        .expect("request");
                    let response = client.request(req).await.expect("loopback request");
                    assert_eq!(response.status(), StatusCode::OK);
                    response.into_body().collect().await.expect("body");
                }
            });
        }
        while let Some(task) = tasks.join_next().await {
            task.expect("client task");
        }
        (REQUESTS / CONNECTIONS * CONNECTIONS) as f64 / started.elapsed().as_secs_f64()
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The loopback comparison, printed as a table.
fn loopback() {
    let (addrs, stop, server) = serve(vec![app(Layers::Bare), app(Layers::Full)]);
    let (bare_addr, full_addr) = (addrs[0], addrs[1]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    round(&runtime, bare_addr);
    round(&runtime, full_addr);
    let (mut bare, mut full) = (Vec::new(), Vec::new());
    for pair in 0..ROUNDS {
        // Alternate which goes first, so that a drift in the machine's load hits both.
        if pair % 2 == 0 {
            bare.push(round(&runtime, bare_addr));
            full.push(round(&runtime, full_addr));
        } else {
            full.push(round(&runtime, full_addr));
            bare.push(round(&runtime, bare_addr));
        }
    }
    let _ = stop.send(());
    server.join().expect("server thread");

    let mut ratios: Vec<f64> = bare.iter().zip(&full).map(|(b, f)| f / b).collect();
    println!(
        "http_loopback: {REQUESTS} requests per round over {CONNECTIONS} connections, {ROUNDS} rounds each"
    );
    let show = |values: &[f64], digits: usize| {
        values
            .iter()
            .map(|v| format!("{v:.digits$}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  bare requests/s: {}", show(&bare, 0));
    println!("  full requests/s: {}", show(&full, 0));
    println!("  full / bare:     {}", show(&ratios, 3));
    let (bare_median, full_median) = (median(&mut bare), median(&mut full));
    let ratio = median(&mut ratios);
    let best = |values: &[f64]| values.iter().copied().fold(0.0, f64::max);
    let (bare_best, full_best) = (best(&bare), best(&full));
    println!(
        "  medians: bare {bare_median:.0}/s, full {full_median:.0}/s; median full/bare {ratio:.3}: the stack costs {:.1}% of throughput",
        100.0 * (1.0 - ratio)
    );
    println!(
        "  best rounds: bare {bare_best:.0}/s, full {full_best:.0}/s: the stack costs {:.1}%",
        100.0 * (1.0 - full_best / bare_best)
    );
}

/// Calls per timed batch of [`interleaved`].
const BATCH: u32 = 5_000;
/// Batches per row of [`interleaved`].
const BATCHES: usize = 30;

/// The rows of `http_stack/oneshot` again, interleaved: each round times one batch of
/// every row in turn, so a change in the machine's load hits every row alike. Prints each
/// row's fastest batch (the least disturbed) and median batch, in ns per request, and
/// each layer's share: its row minus the row before.
fn interleaved() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let mut routers: Vec<Router> = Layers::ALL.iter().map(|&layers| built(layers)).collect();
    let mut samples = vec![Vec::with_capacity(BATCHES); routers.len()];
    for _ in 0..BATCHES {
        for (router, samples) in routers.iter_mut().zip(&mut samples) {
            // Requests are built before the clock starts; responses are dropped inside.
            let requests: Vec<Request<Body>> = (0..BATCH).map(|_| request()).collect();
            let started = tokio::time::Instant::now();
            for req in requests {
                black_box(call_once(router, req));
            }
            samples.push(started.elapsed().as_nanos() as f64 / f64::from(BATCH));
        }
    }
    println!("http_stack/interleaved: {BATCHES} rounds of {BATCH} calls per row, ns per request");
    println!(
        "  {:<20} {:>8} {:>8} {:>10}",
        "row", "fastest", "median", "layer"
    );
    let mut previous: Option<f64> = None;
    for (layers, samples) in Layers::ALL.iter().zip(&mut samples) {
        let fastest = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let median = median(samples);
        let layer = previous.map_or(String::from("-"), |p| format!("{:+.0}", fastest - p));
        println!(
            "  {:<20} {fastest:>8.0} {median:>8.0} {layer:>10}",
            layers.name()
        );
        previous = Some(fastest);
    }
}

criterion_group!(benches, http_stack);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then only
    // criterion's one-iteration test of each row runs. Under `--profile-time` (one row
    // run for a profiler) the printed parts are left out too, so that a profile holds
    // only the row asked for.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == "--bench") && !args.iter().any(|arg| arg == "--profile-time") {
        loopback();
        interleaved();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
