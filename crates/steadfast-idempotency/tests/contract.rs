//! The layer keeps the tower `Service` contract (readiness, reservations, cancellation,
//! `Clone`), for keyed requests and for requests it passes through.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use http::{Request, Response, StatusCode};
use http_body::Body;
use steadfast_idempotency::body::{RequestBody, ResponseBody};
use steadfast_idempotency::{IdempotencyLayer, MemoryStore};
use steadfast_test_support::{contract, trace_init};

/// Reads a body held in memory without a runtime (the layer buffers stored responses).
fn read_now(body: ResponseBody<String>) -> String {
    let mut body = std::pin::pin!(body);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match Pin::as_mut(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(None) => break,
            other => panic!("body not in memory: {other:?}"),
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn keyed_requests_keep_the_service_contract() {
    let _t = trace_init();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    // A fresh key per request, so that every rule reaches the inner service.
    let next = AtomicUsize::new(0);
    contract::check_layer_with(
        layer,
        move || {
            let n = next.fetch_add(1, Ordering::SeqCst);
            Request::post("/contract")
                .header("idempotency-key", format!("key-{n}"))
                .body(String::from("ping"))
                .unwrap()
        },
        |request: &Request<RequestBody<String>>| {
            assert_eq!(request.body().size_hint().exact(), Some(4));
            Ok(Response::new(String::from("pong")))
        },
        |response: Response<ResponseBody<String>>| {
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(read_now(response.into_body()), "pong");
        },
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn passed_through_requests_keep_the_service_contract() {
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    contract::check_layer_with(
        layer,
        || {
            Request::post("/contract")
                .body(String::from("ping"))
                .unwrap()
        },
        |_request: &Request<RequestBody<String>>| Ok(Response::new(String::from("pong"))),
        |response: Response<ResponseBody<String>>| {
            assert_eq!(response.status(), StatusCode::OK);
        },
    )
    .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_waiting_duplicate_gives_up_the_inner_readiness() {
    use std::time::Duration;
    use steadfast_test_support::mock;
    use tower::{Layer, Service, ServiceExt};

    let (inner, handle) = mock::pair::<Request<RequestBody<String>>, Response<String>>();
    handle.set_capacity(2);
    handle.respond_manually();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .wait_for_in_flight(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut service = layer.layer(inner);
    let request = || {
        Request::post("/orders")
            .header("idempotency-key", "k")
            .body(String::from("ping"))
            .unwrap()
    };
    let poll_once = |future: &mut Pin<Box<dyn std::future::Future<Output = _> + Send>>| {
        let mut cx = Context::from_waker(Waker::noop());
        future.as_mut().poll(&mut cx).is_pending()
    };

    let mut first: Pin<Box<dyn std::future::Future<Output = _> + Send>> = Box::pin(
        ServiceExt::<Request<String>>::ready(&mut service)
            .await
            .unwrap()
            .call(request()),
    );
    assert!(poll_once(&mut first));
    assert_eq!(handle.in_flight(), 1);

    let mut second: Pin<Box<dyn std::future::Future<Output = _> + Send>> = Box::pin(
        ServiceExt::<Request<String>>::ready(&mut service)
            .await
            .unwrap()
            .call(request()),
    );
    assert!(poll_once(&mut second));
    // The duplicate waits for the first without holding the permit it was readied with.
    assert_eq!(handle.reserved(), 0);
    assert_eq!(handle.available_permits(), 1);

    let (_request, responder) = handle.try_next_request().unwrap();
    responder.ok(Response::new(String::from("pong")));
    let first: Response<ResponseBody<String>> = first.await.unwrap();
    assert_eq!(read_now(first.into_body()), "pong");
    let second: Response<ResponseBody<String>> = second.await.unwrap();
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(read_now(second.into_body()), "pong");
    assert_eq!(handle.calls(), 1);
}
