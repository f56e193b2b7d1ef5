//! Shared helpers: a counting handler built on `tower::service_fn`, request builders, a
//! streaming body without a size hint, and a store wrapper that can be slow or fail.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use steadfast_core::error::BoxError;
use steadfast_idempotency::body::{RequestBody, ResponseBody};
use steadfast_idempotency::{
    BoxStoreFuture, Claim, FencingToken, Fingerprint, IdempotencyStore, MemoryStore, Record,
    StoreKey, StoredResponse, WriteOutcome,
};
use tower::{Service, service_fn};

pub const KEY: &str = "8e03978e-40d5-43e8-bc93-6894a57f9324";

/// What the handler does on one call.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    /// Pad the body to this many bytes.
    pub size: Option<usize>,
    /// Fail with an error instead of answering.
    pub error: bool,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            size: None,
            error: false,
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn sized(mut self, size: usize) -> Self {
        self.size = Some(size);
        self
    }

    pub fn error() -> Self {
        Self {
            error: true,
            ..Self::status(500)
        }
    }
}

/// A handler that counts its runs and answers each with the next scripted reply (201 when
/// the script runs out), with the body `run {n}: {request body}`.
#[derive(Clone, Default)]
pub struct Backend {
    runs: Arc<AtomicUsize>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Backend {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn script(replies: impl IntoIterator<Item = Reply>) -> Self {
        let backend = Self::new();
        backend.script.lock().unwrap().extend(replies);
        backend
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// The handler as a `service_fn`, for any request body.
    pub fn service<B>(
        &self,
    ) -> impl Service<
        Request<RequestBody<B>>,
        Response = Response<String>,
        Error = BoxError,
        Future = impl Future<Output = Result<Response<String>, BoxError>> + Send,
    > + Clone
    + Send
    + Sync
    + 'static
    where
        B: Body + Unpin + Send + Sync + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let backend = self.clone();
        service_fn(move |request: Request<RequestBody<B>>| {
            let run = backend.runs.fetch_add(1, Ordering::SeqCst) + 1;
            let reply = backend
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Reply::status(201));
            async move {
                let body = request.into_body().collect().await?.to_bytes();
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                if reply.error {
                    return Err(BoxError::from(format!("handler failed on run {run}")));
                }
                let mut text = format!("run {run}: {}", String::from_utf8_lossy(&body));
                if let Some(size) = reply.size {
                    text = format!("{text:.<size$}");
                }
                let response = Response::builder()
                    .status(reply.status)
                    .header("content-type", "text/plain")
                    .header("location", format!("/orders/{run}"))
                    .header("set-cookie", format!("session=run-{run}"))
                    .header("x-run", run)
                    .body(text)?;
                Ok(response)
            }
        })
    }
}

/// A keyed `POST /orders` with a JSON content type.
pub fn post(key: Option<&str>, body: &str) -> Request<String> {
    let mut builder = Request::post("/orders").header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(body.to_owned()).unwrap()
}

pub async fn body_of<B>(response: Response<ResponseBody<B>>) -> Bytes
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    response.into_body().collect().await.unwrap().to_bytes()
}

pub async fn text_of<B>(response: Response<ResponseBody<B>>) -> String
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    String::from_utf8(body_of(response).await.to_vec()).unwrap()
}

pub fn replayed<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// A body that yields its chunks one by one and gives no size hint, like a chunked upload.
#[derive(Debug, Default)]
pub struct Chunked {
    chunks: VecDeque<Bytes>,
}

impl Chunked {
    pub fn new(chunks: &[&str]) -> Self {
        Self {
            chunks: chunks
                .iter()
                .map(|c| Bytes::copy_from_slice(c.as_bytes()))
                .collect(),
        }
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A `MemoryStore` behind boxed futures that take `latency` (so the layer sees `Pending`
/// store futures, as with a network store) and that fail on demand. Uses the trait's
/// default `abandon`, which spawns the release.
#[derive(Clone, Debug, Default)]
pub struct TestStore {
    pub inner: MemoryStore,
    pub latency: Duration,
    pub fail_claims: Arc<AtomicBool>,
    pub fail_writes: Arc<AtomicBool>,
    pub calls: Arc<AtomicUsize>,
}

impl TestStore {
    pub fn slow(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    pub fn set_failing(&self, claims: bool, writes: bool) {
        self.fail_claims.store(claims, Ordering::SeqCst);
        self.fail_writes.store(writes, Ordering::SeqCst);
    }

    fn run<T: Send + 'static>(
        &self,
        fail: bool,
        op: impl FnOnce(&MemoryStore) -> Result<T, BoxError> + Send + 'static,
    ) -> BoxStoreFuture<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.clone();
        let latency = self.latency;
        Box::pin(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if fail {
                return Err(BoxError::from("store unavailable"));
            }
            op(&inner)
        })
    }
}

impl IdempotencyStore for TestStore {
    type Future<T: Send + 'static> = BoxStoreFuture<T>;

    fn claim(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Self::Future<Claim> {
        let (key, fingerprint) = (*key, *fingerprint);
        let fail = self.fail_claims.load(Ordering::SeqCst);
        self.run(fail, move |store| {
            store
                .try_claim(&key, &fingerprint, lease)
                .map_err(Into::into)
        })
    }

    fn complete(
        &self,
        key: &StoreKey,
        token: FencingToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Self::Future<WriteOutcome> {
        let key = *key;
        let fail = self.fail_writes.load(Ordering::SeqCst);
        self.run(fail, move |store| {
            store
                .try_complete(&key, token, response, ttl)
                .map_err(Into::into)
        })
    }

    fn release(&self, key: &StoreKey, token: FencingToken) -> Self::Future<WriteOutcome> {
        let key = *key;
        let fail = self.fail_writes.load(Ordering::SeqCst);
        self.run(fail, move |store| Ok(store.release_now(&key, token)))
    }

    fn get(&self, key: &StoreKey) -> Self::Future<Option<Record>> {
        let key = *key;
        self.run(false, move |store| Ok(store.get_now(&key)))
    }
}

/// Polls `future` once, to let it reach its first `Pending`.
pub async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

/// Lets spawned tasks and timers at the current instant run.
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

pub fn status_of<B>(response: &Response<B>) -> StatusCode {
    response.status()
}

pub fn headers_of<B>(response: &Response<B>) -> &HeaderMap {
    response.headers()
}

/// The layered service the tests send requests to, boxed for brevity.
pub type Svc = tower::util::BoxCloneSyncService<
    Request<String>,
    Response<ResponseBody<String>>,
    steadfast_core::error::BoxError,
>;

/// `backend` behind `layer`, boxed.
pub fn stack<St, X>(layer: steadfast_idempotency::IdempotencyLayer<St, X>, backend: &Backend) -> Svc
where
    St: steadfast_idempotency::IdempotencyStore + Send + Sync + 'static,
    X: steadfast_idempotency::ScopeExtractor + 'static,
{
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(backend.service::<String>());
    tower::util::BoxCloneSyncService::new(service)
}
