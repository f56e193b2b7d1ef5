//! The layer under an axum `Router`: `Router::layer` needs an infallible, `Clone + Send +
//! Sync` service whose response implements `IntoResponse`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use steadfast_idempotency::{IdempotencyLayer, MemoryStore};
use tower::ServiceExt;

#[tokio::test(flavor = "current_thread")]
async fn the_layer_wraps_an_axum_router() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let app = Router::new()
        .route(
            "/orders",
            post(move |body: String| async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                (StatusCode::CREATED, format!("order {n}: {body}"))
            }),
        )
        .layer(
            IdempotencyLayer::builder(MemoryStore::new())
                .build()
                .unwrap(),
        );

    let request = || {
        Request::post("/orders")
            .header("idempotency-key", "abc")
            .body(Body::from("2 widgets"))
            .unwrap()
    };
    let first = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let body = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "order 1: 2 widgets");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
