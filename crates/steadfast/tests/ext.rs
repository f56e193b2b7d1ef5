//! `ServiceBuilderExt` with every feature on.
#![cfg(feature = "full")]

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response};
use steadfast::prelude::*;
use tokio::sync::watch;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

async fn echo_headers(req: Request<String>) -> Result<Response<String>, Infallible> {
    let key = req.headers().contains_key("idempotency-key");
    let hlc = req
        .headers()
        .contains_key(steadfast::hlc::header::DEFAULT_HEADER);
    Ok(Response::new(format!("{key} {hlc}")))
}

#[tokio::test]
async fn client_stack_adds_key_and_timestamp() {
    let hlc = Arc::new(Hlc::new());
    let mut svc = ServiceBuilder::new()
        .idempotency_key()
        .hlc_client(hlc)
        .service_fn(echo_headers);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/")
        .body(String::new())
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.into_body(), "true true");
}

#[test]
fn every_layer_stacks() {
    let retry = RetryLayer::http().max_attempts(3).build().unwrap();
    let hedge = HedgeLayer::http().build().unwrap();
    let limit = AdaptiveConcurrencyLayer::builder().build().unwrap();
    let idempotency = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let (_tx, rx) = watch::channel(LeaderState::Stopped);
    let hlc = Arc::new(Hlc::new());
    let shed = ShedLayer::builder()
        .priority(FromHeader::new())
        .deadline(HttpDeadline)
        .build()
        .unwrap();

    let server = ServiceBuilder::new()
        .overload_response(OverloadResponseLayer::http())
        .hlc_server(hlc.clone())
        .hlc(HlcLayer::server(hlc))
        .leader_only(LeaderOnlyLayer::http(rx))
        .shed(shed)
        .adaptive_concurrency(limit)
        .idempotency(idempotency)
        .into_inner();
    let client = ServiceBuilder::new()
        .idempotency_key()
        .with_retry(retry)
        .hedge(hedge)
        .into_inner();

    let inner = service_fn(echo_headers);
    let _server = server.layer(inner);
    let _client = client.layer(inner);
}

/// The overload part of a server stack, built with the extension methods: the request the
/// limit and the queue cannot take is answered `503` with the shedder's `Retry-After`, and
/// the queued one is served once the running one finishes.
#[tokio::test(flavor = "current_thread")]
async fn shed_and_overload_response_answer_503() {
    let (open, gate) = watch::channel(false);
    let handler = service_fn(move |_req: Request<()>| {
        let mut gate = gate.clone();
        async move {
            gate.wait_for(|open| *open).await.unwrap();
            Ok::<_, Infallible>(Response::new(String::from("done")))
        }
    });
    let shed = ShedLayer::builder()
        .capacity(1)
        .retry_after(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let limit = AdaptiveConcurrencyLayer::builder()
        .algorithm(steadfast::limit::algorithm::Aimd::new().initial_limit(1))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .overload_response(OverloadResponseLayer::http())
        .shed(shed.clone())
        .adaptive_concurrency(limit)
        .service(handler);

    // One runs (the limit is 1), one waits (the queue holds 1), the third is refused.
    let running = svc.ready().await.unwrap().call(Request::new(()));
    let queued = svc.ready().await.unwrap().call(Request::new(()));
    let refused = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(refused.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "2");

    open.send(true).unwrap();
    let (running, queued) = tokio::join!(running, queued);
    assert_eq!(running.unwrap().into_body(), "done");
    assert_eq!(queued.unwrap().into_body(), "done");
    let stats = shed.stats();
    assert_eq!((stats.forwarded, stats.served, stats.refused), (1, 1, 1));
}

/// `with_retry` adds steadfast's `RetryLayer`, even when tower's `retry` feature is on in the
/// build (the workspace's benches switch it on): a `503` is retried through it, which tower's
/// `ServiceBuilder::retry`, taking our layer as its *policy*, could not do (that stack does
/// not even implement `Service`).
#[tokio::test(flavor = "current_thread")]
async fn with_retry_retries_through_steadfast() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    // The inner service sees the retry layer's replayable body.
    let flaky = service_fn(move |_req: Request<_>| {
        let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let status = if n == 0 { 503 } else { 200 };
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap(),
            )
        }
    });
    let retry = RetryLayer::http().max_attempts(3).build().unwrap();
    let mut client = ServiceBuilder::new().with_retry(retry).service(flaky);
    let request = Request::builder()
        .method(Method::GET)
        .uri("/")
        .body(String::new())
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}
