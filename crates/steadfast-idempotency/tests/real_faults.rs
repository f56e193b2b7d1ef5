//! Redis goes away mid-test, for real: each test starts its own PRIVATE `redis-server`
//! child on a free loopback port (no persistence), so the shared server named by
//! `STEADFAST_REDIS_URL` is never disturbed, and kills it at the end.
//!
//! 1. Kill the server: the layer fails closed (the documented default) with `503` and
//!    `Retry-After`, never running the handler unprotected; a fail-open layer on the same
//!    store runs requests through. A new server on the same port: the layer protects
//!    requests again by itself.
//! 2. `SIGSTOP` the server (it accepts nothing and answers nothing): the same `503`, within
//!    the connection's response timeout; after `SIGCONT` the layer recovers.
//!
//! Without `redis-server` on `PATH` the tests print `skipped: …` and pass, except under
//! `CI=true`, where they fail.
#![cfg(feature = "redis")]

mod support;

use std::time::Duration;

use http::{Response, StatusCode};
use steadfast_idempotency::body::ResponseBody;
use steadfast_idempotency::{IdempotencyLayer, RedisStore};
use steadfast_test_support::backend::{RedisServer, free_port, program_available};
use tokio::time::Instant;
use tower::ServiceExt;

use support::{Backend, Svc, post, replayed};

/// How long a request may take to be refused while Redis is down: the manager's connection
/// attempts (2 retries from 100 ms) or its 500 ms response timeout, plus slack for a busy
/// 2-core machine.
const REFUSED_WITHIN: Duration = Duration::from_secs(3);
/// How long the layer may take to protect requests again once Redis is back.
const RECOVERS_WITHIN: Duration = Duration::from_secs(5);

fn service(store: RedisStore, fail_open: bool, handler: &Backend) -> Svc {
    let layer = IdempotencyLayer::builder(store)
        .fail_open(fail_open)
        .build()
        .unwrap();
    support::stack(layer, handler)
}

async fn send(service: &Svc, key: &str) -> (Response<ResponseBody<String>>, Duration) {
    let started = Instant::now();
    let response = service
        .clone()
        .oneshot(post(Some(key), "{}"))
        .await
        .unwrap();
    (response, started.elapsed())
}

/// While Redis is down: a fail-closed layer answers `503` with `Retry-After` quickly and
/// runs nothing; a fail-open layer runs the request unprotected.
async fn assert_unavailable(closed: &Svc, open: &Svc, handler: &Backend, what: &str) {
    let runs = handler.runs();
    for attempt in 0..2 {
        let (response, took) = send(closed, &format!("down-{what}-{attempt}")).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: fail closed"
        );
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(took <= REFUSED_WITHIN, "{what}: refused after {took:?}");
        eprintln!("{what}: 503 after {took:?}");
    }
    assert_eq!(
        handler.runs(),
        runs,
        "{what}: nothing ran while failing closed"
    );
    let (response, _) = send(open, &format!("open-{what}")).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{what}: fail open");
    assert!(!replayed(&response));
    assert_eq!(
        handler.runs(),
        runs + 1,
        "{what}: fail open ran the handler"
    );
}

/// Once Redis is back: requests are protected again (the first runs, its duplicate is
/// replayed) within `RECOVERS_WITHIN`. Returns how long recovery took.
async fn assert_recovers(closed: &Svc, handler: &Backend, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (response, _) = send(closed, key).await;
        if response.status() == StatusCode::CREATED {
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < RECOVERS_WITHIN,
            "not recovered after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = started.elapsed();
    let runs = handler.runs();
    let (again, _) = send(closed, key).await;
    assert!(replayed(&again), "protected again");
    assert_eq!(handler.runs(), runs);
    recovered
}

/// Kill Redis mid-test: fail closed (or open, if asked) while it is gone; a new server on
/// the same port is used again without restarting anything.
#[tokio::test]
async fn killed_redis_fails_closed_and_recovers_on_restart() {
    if !program_available("redis-server") {
        return;
    }
    let port = free_port();
    let server = RedisServer::start(port);
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let handler = Backend::new();
    let closed = service(store.clone(), false, &handler);
    let open = service(store, true, &handler);

    let (first, _) = send(&closed, "before").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(replayed(&send(&closed, "before").await.0));

    server.kill();
    assert_unavailable(&closed, &open, &handler, "killed").await;

    let server = RedisServer::start(port);
    let recovered = assert_recovers(&closed, &handler, "after").await;
    eprintln!("killed: protected again {recovered:?} after the restart");
    drop(server);
}

/// `SIGSTOP` Redis mid-test: the connection stays open but nothing answers; requests fail
/// closed once the response timeout passes; after `SIGCONT` the layer recovers.
#[tokio::test]
async fn stopped_redis_fails_closed_and_recovers_on_resume() {
    if !program_available("redis-server") {
        return;
    }
    let server = RedisServer::start(free_port());
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let handler = Backend::new();
    let closed = service(store.clone(), false, &handler);
    let open = service(store, true, &handler);

    let (first, _) = send(&closed, "before").await;
    assert_eq!(first.status(), StatusCode::CREATED);

    server.signal("-STOP");
    assert_unavailable(&closed, &open, &handler, "stopped").await;

    server.signal("-CONT");
    let recovered = assert_recovers(&closed, &handler, "after").await;
    eprintln!("stopped: protected again {recovered:?} after SIGCONT");
    // The record written before the stop survived it.
    assert!(replayed(&send(&closed, "before").await.0));
    drop(server);
}
