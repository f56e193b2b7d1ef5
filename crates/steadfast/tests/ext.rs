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

    let server = ServiceBuilder::new()
        .hlc_server(hlc.clone())
        .hlc(HlcLayer::server(hlc))
        .leader_only(LeaderOnlyLayer::http(rx))
        .adaptive_concurrency(limit)
        .idempotency(idempotency)
        .into_inner();
    let client = ServiceBuilder::new()
        .idempotency_key()
        .retry(retry)
        .hedge(hedge)
        .into_inner();

    let inner = service_fn(echo_headers);
    let _server = server.layer(inner);
    let _client = client.layer(inner);
}
