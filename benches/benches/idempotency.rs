//! What steadfast's `IdempotencyLayer` adds to a request, over `MemoryStore` and a trivial
//! handler that answers `201 Created` with a 1 KiB JSON body; and the same for the message
//! consumer's `process_once`.
//!
//! Group `idempotency_layer`, every row a `POST /orders` with a 64-byte JSON body:
//!
//! - `baseline`: the bare handler, the keyed request cloned from a template per call.
//! - `replay_1KiB`: the layer answers a duplicate from the store: key parsed, body read
//!   and fingerprinted, storage key hashed, claim refused with the completed record, the
//!   stored 1 KiB response replayed. The handler does not run.
//! - `no_key`: a request without a key passes through the layer to the handler;
//!   `baseline/no_key` sends the same request to the bare handler.
//! - `get`: a `GET /orders` (a method the layer does not handle) passes through the
//!   layer; `baseline/get` sends it to the bare handler.
//! - `baseline/prebuilt` and `first_execution`: each call carries a new key (claim,
//!   handler, response read into memory, completion). Requests are built in chunks of
//!   4096 outside the timed region, and each chunk gets a fresh store and service (also
//!   untimed), so the store never fills; `baseline/prebuilt` times the bare handler over
//!   the same prebuilt requests.
//!
//! Group `idempotency_consumer`: `Consumer::process_once` over `MemoryStore` with a 64-byte
//! payload and a 1 KiB `Bytes` result: `duplicate` (the stored result returned) and
//! `first_execution` (a new key per call, chunked as above).
//!
//! Each group is run twice: timed by the wall clock (`idempotency_layer`,
//! `idempotency_consumer`), as every other bench here, and by the thread's CPU time
//! (`idempotency_layer_cpu`, `idempotency_consumer_cpu`), which does not count the time the
//! thread waits while other processes run on the shared cores. Every row uses
//! `iter_custom`, reading its clock once before and once after a batch of calls.
//!
//! Every layer row is driven without a runtime, as in the other benches: `poll_ready`,
//! `call`, then one poll of the response future with a no-op waker; everything here is
//! ready at once (anything else panics). Response bodies are not polled in any row.
//!
//! Run with `cargo bench -p steadfast-benches --bench idempotency`; see `benches/README.md`.

use std::convert::Infallible;
use std::future::{self, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use rustix::time::{ClockId, clock_gettime};
use steadfast_benches::call_once;
use steadfast_idempotency::consumer::{Consumer, ProcessError, Processed};
use steadfast_idempotency::{IdempotencyLayer, MemoryStore};
use tokio::time::Instant;
use tower::{Layer, service_fn};

/// The 1 KiB JSON body the handler answers with.
static RESPONSE: [u8; 1024] = {
    let mut body = [b' '; 1024];
    body[0] = b'{';
    body[1023] = b'}';
    body
};

/// A 64-byte JSON request body.
const REQUEST: &[u8; 64] =
    b"{\"sku\":\"widget-42\",\"quantity\":2,\"customer\":\"c-1234567890abcdef\"}";

/// Requests built per chunk in the first-execution rows.
const CHUNK: u64 = 4096;

type HttpRequest = Request<Full<Bytes>>;

fn request(key: Option<&str>) -> HttpRequest {
    let mut builder = Request::post("/orders").header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(Full::new(Bytes::from_static(REQUEST)))
        .expect("valid request")
}

fn keyed(n: u64) -> HttpRequest {
    request(Some(&format!("8e03978e-40d5-43e8-bc93-{n:012x}")))
}

/// A chunk of requests with distinct keys, to be taken with `pop`.
fn prebuilt() -> Vec<HttpRequest> {
    (0..CHUNK).rev().map(keyed).collect()
}

/// The handler: `201 Created`, `Content-Type: application/json`, the 1 KiB body.
fn create_order<B>(_request: Request<B>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from_static(&RESPONSE)));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    future::ready(Ok(response))
}

fn new_layer() -> IdempotencyLayer<MemoryStore> {
    IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .expect("valid layer")
}

/// What a row's time is read from.
#[derive(Clone, Copy)]
enum Clock {
    /// Elapsed time (`tokio::time::Instant`), as every other bench here.
    Wall,
    /// The thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): time the thread spent
    /// descheduled, while other processes ran on the shared cores, is not counted.
    ThreadCpu,
}

impl Clock {
    fn group(self, name: &str) -> String {
        match self {
            Clock::Wall => name.to_owned(),
            Clock::ThreadCpu => format!("{name}_cpu"),
        }
    }

    fn now(self) -> Duration {
        match self {
            Clock::Wall => {
                // Only differences are used: measure from a fixed origin.
                static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                ORIGIN.get_or_init(Instant::now).elapsed()
            }
            Clock::ThreadCpu => {
                let ts = clock_gettime(ClockId::ThreadCPUTime);
                Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
            }
        }
    }

    /// Times `iters` runs of `call`.
    fn time(self, iters: u64, mut call: impl FnMut()) -> Duration {
        let start = self.now();
        for _ in 0..iters {
            call();
        }
        self.now() - start
    }

    /// Times `iters` calls, `CHUNK` at a time, each chunk over a state (requests, a
    /// service, a store) made outside the timed region and dropped outside it too.
    fn chunked<S>(
        self,
        iters: u64,
        mut make: impl FnMut() -> S,
        mut call: impl FnMut(&mut S, u64),
    ) -> Duration {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = CHUNK.min(iters - done);
            let mut state = make();
            let start = self.now();
            for i in 0..n {
                call(&mut state, i);
            }
            total += self.now() - start;
            drop(state);
            done += n;
        }
        total
    }
}

fn layer_calls(c: &mut Criterion, clock: Clock) {
    let mut group = c.benchmark_group(clock.group("idempotency_layer"));
    let template = request(Some("8e03978e-40d5-43e8-bc93-6894a57f9324"));
    let unkeyed = request(None);

    let mut bare = service_fn(create_order::<Full<Bytes>>);
    group.bench_function("baseline", |b| {
        b.iter_custom(|iters| {
            clock.time(iters, || {
                black_box(call_once(&mut bare, black_box(&template).clone()));
            })
        })
    });

    // A duplicate: the first call stores the response, every timed call replays it.
    let layer = new_layer();
    let stats = layer.stats();
    let mut replaying = layer.layer(service_fn(create_order));
    let first = call_once(&mut replaying, template.clone());
    assert_eq!(first.status(), StatusCode::CREATED);
    let replay = call_once(&mut replaying, template.clone());
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.body().buffered_bytes().unwrap().len(), 1024);
    group.bench_function("replay_1KiB", |b| {
        b.iter_custom(|iters| {
            clock.time(iters, || {
                black_box(call_once(&mut replaying, black_box(&template).clone()));
            })
        })
    });
    assert_eq!(stats.executions(), 1, "only the first call ran the handler");

    group.bench_function("baseline/no_key", |b| {
        b.iter_custom(|iters| {
            clock.time(iters, || {
                black_box(call_once(&mut bare, black_box(&unkeyed).clone()));
            })
        })
    });

    let layer = new_layer();
    let stats = layer.stats();
    let mut passing = layer.layer(service_fn(create_order));
    group.bench_function("no_key", |b| {
        b.iter_custom(|iters| {
            clock.time(iters, || {
                black_box(call_once(&mut passing, black_box(&unkeyed).clone()));
            })
        })
    });
    assert_eq!(stats.keyed(), 0, "no request was keyed");

    let get = Request::get("/orders")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    group.bench_function("baseline/get", |b| {
        b.iter_custom(|iters| {
            clock.time(iters, || {
                black_box(call_once(&mut bare, black_box(&get).clone()));
            })
        })
    });
    group.bench_function("get", |b| {
        b.iter_custom(|iters| {
            clock.time(iters, || {
                black_box(call_once(&mut passing, black_box(&get).clone()));
            })
        })
    });
    assert_eq!(stats.keyed(), 0, "no request was keyed");

    group.bench_function("baseline/prebuilt", |b| {
        b.iter_custom(|iters| {
            clock.chunked(
                iters,
                || (service_fn(create_order::<Full<Bytes>>), prebuilt()),
                |(service, requests), _| {
                    let request = requests.pop().expect("one request per call");
                    black_box(call_once(service, request));
                },
            )
        })
    });

    // Checked once: a new key runs the handler and stores its response.
    let layer = new_layer();
    let stats = layer.stats();
    let mut fresh = layer.layer(service_fn(create_order));
    assert_eq!(
        call_once(&mut fresh, keyed(0)).status(),
        StatusCode::CREATED
    );
    assert_eq!((stats.executions(), stats.stored()), (1, 1));
    group.bench_function("first_execution", |b| {
        b.iter_custom(|iters| {
            clock.chunked(
                iters,
                || (new_layer().layer(service_fn(create_order)), prebuilt()),
                |(service, requests), _| {
                    let request = requests.pop().expect("one request per call");
                    black_box(call_once(service, request));
                },
            )
        })
    });

    group.finish();
}

/// Polls a future once with a no-op waker; panics unless it is ready.
fn ready_now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future is not ready on its first poll"),
    }
}

type Processing = Result<Processed<Bytes>, ProcessError<Infallible>>;

fn work() -> Ready<Result<Bytes, Infallible>> {
    future::ready(Ok(Bytes::from_static(&RESPONSE)))
}

fn consumer() -> Consumer<MemoryStore> {
    Consumer::builder(MemoryStore::new(), "orders")
        .build()
        .expect("valid consumer")
}

fn consumer_calls(c: &mut Criterion, clock: Clock) {
    let mut group = c.benchmark_group(clock.group("idempotency_consumer"));

    let duplicates = consumer();
    let first: Processing = ready_now(duplicates.process_once("msg-1", REQUEST, work));
    assert!(matches!(first, Ok(Processed::Ran(_))));
    let again: Processing = ready_now(duplicates.process_once("msg-1", REQUEST, work));
    assert!(matches!(again, Ok(Processed::Duplicate(_))));
    group.bench_function("duplicate", |b| {
        b.iter_custom(|iters| {
            clock.time(iters, || {
                let outcome: Processing = ready_now(duplicates.process_once(
                    black_box("msg-1"),
                    black_box(REQUEST),
                    work,
                ));
                let _ = black_box(outcome);
            })
        })
    });
    assert_eq!(duplicates.stats().executions(), 1);

    group.bench_function("first_execution", |b| {
        b.iter_custom(|iters| {
            clock.chunked(iters, consumer, |consumer, i| {
                let outcome: Processing =
                    ready_now(consumer.process_once(i.to_be_bytes(), REQUEST, work));
                let _ = black_box(outcome);
            })
        })
    });

    group.finish();
}

fn wall(c: &mut Criterion) {
    layer_calls(c, Clock::Wall);
    consumer_calls(c, Clock::Wall);
}

fn thread_cpu(c: &mut Criterion) {
    layer_calls(c, Clock::ThreadCpu);
    consumer_calls(c, Clock::ThreadCpu);
}

criterion_group!(benches, wall, thread_cpu);
criterion_main!(benches);
