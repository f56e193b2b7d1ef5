//! The client-side key layer, alone and in front of `steadfast_retry`'s retry layer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Ready;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::Full;
use steadfast_idempotency::{AddIdempotencyKey, IdempotencyKeyLayer, KeyGenerator, UuidV4Keys};
use steadfast_retry::RetryLayer;
use steadfast_retry::rng::SplitMix64;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// A backend that answers each call with the next scripted status (200 once the script
/// runs out) and records the headers of every request it saw.
#[derive(Clone, Default)]
struct Backend {
    script: Arc<Mutex<VecDeque<u16>>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Backend {
    fn new(script: &[u16]) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            ..Self::default()
        }
    }

    fn seen(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

impl<B> Service<Request<B>> for Backend {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.seen.lock().unwrap().push(req.headers().clone());
        let status = self.script.lock().unwrap().pop_front().unwrap_or(200);
        let res = Response::builder()
            .status(status)
            .body(String::new())
            .expect("valid response");
        std::future::ready(Ok(res))
    }
}

/// Keys `key-1`, `key-2`, ... in order.
fn counting_keys() -> impl KeyGenerator {
    let n = AtomicUsize::new(0);
    move || format!("key-{}", n.fetch_add(1, Ordering::SeqCst) + 1)
}

fn request(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/payments")
        .body(Full::new(Bytes::from_static(b"amount=100")))
        .expect("valid request")
}

const KEY: &str = "idempotency-key";

/// Calls `svc` once when it is ready.
async fn send<S>(svc: &mut S, req: Request<Full<Bytes>>) -> S::Response
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn adds_a_key_to_post_and_patch_only() {
    let backend = Backend::new(&[]);
    let mut svc = IdempotencyKeyLayer::new()
        .key_generator(counting_keys())
        .layer(backend.clone());
    let methods = [
        Method::GET,
        Method::POST,
        Method::HEAD,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    for method in methods.clone() {
        send(&mut svc, request(method)).await;
    }
    let seen = backend.seen();
    let keys: Vec<_> = seen.iter().map(|h| h.get(KEY).cloned()).collect();
    for (method, key) in methods.iter().zip(&keys) {
        match *method {
            Method::POST => assert_eq!(key.as_ref().unwrap(), "key-1"),
            Method::PATCH => assert_eq!(key.as_ref().unwrap(), "key-2"),
            _ => assert!(key.is_none(), "{method} got a key"),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn default_keys_are_fresh_uuid_v4s() {
    let backend = Backend::new(&[]);
    let mut svc = IdempotencyKeyLayer::new().layer(backend.clone());
    for _ in 0..2 {
        send(&mut svc, request(Method::POST)).await;
    }
    let seen = backend.seen();
    let a = seen[0][KEY].to_str().unwrap();
    let b = seen[1][KEY].to_str().unwrap();
    assert_ne!(a, b, "each request gets its own key");
    for key in [a, b] {
        assert_eq!(key.len(), 36);
        assert_eq!(&key[14..15], "4", "version 4: {key}");
        // The server side of this crate accepts the generated key as it is.
        steadfast_idempotency::parse_idempotency_key(key.as_bytes(), true).unwrap();
    }
    assert_eq!(UuidV4Keys.generate().len(), 36);
}

#[tokio::test(flavor = "current_thread")]
async fn an_existing_key_is_kept() {
    let backend = Backend::new(&[]);
    let svc = IdempotencyKeyLayer::new()
        .key_generator(counting_keys())
        .layer(backend.clone());
    let mut req = request(Method::POST);
    req.headers_mut().insert(KEY, "mine".parse().unwrap());
    svc.oneshot(req).await.unwrap();
    let seen = backend.seen();
    let keys: Vec<_> = seen[0].get_all(KEY).iter().collect();
    assert_eq!(keys, ["mine"], "kept, not replaced or duplicated");
}

#[tokio::test(flavor = "current_thread")]
async fn custom_header_and_methods() {
    let header = HeaderName::from_static("x-request-key");
    let backend = Backend::new(&[]);
    let mut svc = IdempotencyKeyLayer::new()
        .header(header.clone())
        .methods([Method::PUT])
        .key_generator(|| "fixed".to_owned())
        .layer(backend.clone());
    for method in [Method::POST, Method::PUT] {
        send(&mut svc, request(method)).await;
    }
    let seen = backend.seen();
    assert!(seen[0].get(&header).is_none(), "POST is no longer tagged");
    assert_eq!(seen[1][&header], "fixed");
    assert!(seen.iter().all(|h| h.get(KEY).is_none()));

    // An existing value of the custom header is kept too.
    let mut req = request(Method::PUT);
    req.headers_mut()
        .insert(header.clone(), "own".parse().unwrap());
    send(&mut svc, req).await;
    assert_eq!(backend.seen()[2][&header], "own");
}

#[tokio::test(flavor = "current_thread")]
async fn an_invalid_generated_key_is_not_sent() {
    let backend = Backend::new(&[]);
    let svc = IdempotencyKeyLayer::new()
        .key_generator(|| "bad\nkey".to_owned())
        .layer(backend.clone());
    svc.oneshot(request(Method::POST)).await.unwrap();
    assert!(backend.seen()[0].get(KEY).is_none());
}

#[test]
fn the_future_is_the_inner_future() {
    fn same<S: Service<Request<()>>>(
        f: <AddIdempotencyKey<S> as Service<Request<()>>>::Future,
    ) -> S::Future {
        f
    }
    let _ = same::<Backend>;
}

fn seeded_retry() -> RetryLayer<
    steadfast_core::classify::HttpClassifier,
    steadfast_retry::policy::IdempotentRequests,
    steadfast_retry::body::ReplayHttpBody,
> {
    RetryLayer::http()
        .rng(Arc::new(SplitMix64::new(7)))
        .build()
        .expect("valid")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn outside_the_retry_layer_every_attempt_reuses_one_key() {
    let backend = Backend::new(&[503]);
    let retry = seeded_retry();
    let stats = retry.stats();
    let client = ServiceBuilder::new()
        .layer(IdempotencyKeyLayer::new().key_generator(counting_keys()))
        .layer(retry)
        .service(backend.clone());

    let res = client.oneshot(request(Method::POST)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the keyed POST was retried");
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(stats.retries(), 1);
    assert_eq!(seen[0][KEY], "key-1");
    assert_eq!(seen[1][KEY], "key-1", "the retry carries the same key");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_the_default_generator_both_attempts_carry_the_same_key() {
    let backend = Backend::new(&[503]);
    let client = ServiceBuilder::new()
        .layer(IdempotencyKeyLayer::new())
        .layer(seeded_retry())
        .service(backend.clone());
    let res = client.oneshot(request(Method::PATCH)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0][KEY], seen[1][KEY]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn without_the_key_layer_a_post_is_not_retried() {
    let backend = Backend::new(&[503]);
    let client = ServiceBuilder::new()
        .layer(seeded_retry())
        .service(backend.clone());
    let res = client.oneshot(request(Method::POST)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let seen = backend.seen();
    assert_eq!(seen.len(), 1, "an unkeyed POST is sent once");
    assert!(seen[0].get(KEY).is_none());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn inside_the_retry_layer_the_key_comes_too_late() {
    // The wrong order: the retry layer sees an unkeyed POST and sends it once.
    let backend = Backend::new(&[503]);
    let client = ServiceBuilder::new()
        .layer(seeded_retry())
        .layer(IdempotencyKeyLayer::new().key_generator(counting_keys()))
        .service(backend.clone());
    let res = client.oneshot(request(Method::POST)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0][KEY], "key-1");
}
