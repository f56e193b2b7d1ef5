//! The idempotency layer through real tower stacks with `service_fn` handlers, on a
//! current-thread runtime with paused time where timing matters.

mod support;

use std::time::Duration;

use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use steadfast_idempotency::body::ResponseBody;
use steadfast_idempotency::{
    CapacityExceeded, IdempotencyLayer, IdempotencyStore, MAX_KEY_LEN, MemoryStore, StorePolicy,
};
use steadfast_test_support::trace_init;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

use support::{
    Backend, Chunked, KEY, Reply, Svc, TestStore, post, replayed, settle, stack, text_of,
};

async fn send(service: &mut Svc, request: Request<String>) -> Response<ResponseBody<String>> {
    service.ready().await.unwrap().call(request).await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn duplicate_gets_the_stored_response_replayed() {
    let _t = trace_init();
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    let first = send(&mut service, post(Some(KEY), r#"{"qty":2}"#)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!replayed(&first));
    // The first client gets every header, cookies included.
    assert_eq!(first.headers()["set-cookie"], "session=run-1");
    assert_eq!(text_of(first).await, r#"run 1: {"qty":2}"#);

    for _ in 0..3 {
        let again = send(&mut service, post(Some(KEY), r#"{"qty":2}"#)).await;
        assert_eq!(again.status(), StatusCode::CREATED);
        assert!(replayed(&again));
        // Allow-listed headers are replayed; cookies and custom headers are not.
        assert_eq!(again.headers()["content-type"], "text/plain");
        assert_eq!(again.headers()["location"], "/orders/1");
        assert!(again.headers().get("set-cookie").is_none());
        assert!(again.headers().get("x-run").is_none());
        assert_eq!(again.headers()["content-length"], "16");
        assert_eq!(text_of(again).await, r#"run 1: {"qty":2}"#);
    }
    assert_eq!(backend.runs(), 1);
    assert_eq!(
        (stats.executions(), stats.stored(), stats.replays()),
        (1, 1, 3)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn quoted_and_bare_forms_of_a_key_are_the_same_key() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);

    send(&mut service, post(Some("abc-123"), "{}")).await;
    let quoted = send(&mut service, post(Some(r#""abc-123""#), "{}")).await;
    assert!(replayed(&quoted));
    assert_eq!(backend.runs(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn concurrent_duplicate_gets_409_while_the_first_runs() {
    let _t = trace_init();
    let backend = Backend::script([Reply::status(201).after(Duration::from_secs(1))]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let stats = layer.stats();
    let service = stack(layer, &backend);

    let (first, second) = tokio::join!(
        service.clone().oneshot(post(Some(KEY), "{}")),
        service.clone().oneshot(post(Some(KEY), "{}")),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(second.headers()["retry-after"], "1");
    assert_eq!(second.headers()["content-type"], "application/problem+json");
    let problem = text_of(second).await;
    assert!(problem.contains(r#""status":409"#), "{problem}");
    assert!(problem.contains("outstanding"), "{problem}");

    // Once the first finished, the retry the 409 asked for gets the replay.
    let retry = service
        .clone()
        .oneshot(post(Some(KEY), "{}"))
        .await
        .unwrap();
    assert!(replayed(&retry));
    assert_eq!(backend.runs(), 1);
    assert_eq!((stats.conflicts(), stats.replays()), (1, 1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn concurrent_duplicate_can_wait_for_the_first_and_replay_it() {
    let backend = Backend::script([Reply::status(201).after(Duration::from_secs(1))]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .wait_for_in_flight(Duration::from_secs(5))
        .build()
        .unwrap();
    let stats = layer.stats();
    let service = stack(layer, &backend);

    let start = Instant::now();
    let (first, second) = tokio::join!(
        service.clone().oneshot(post(Some(KEY), "{}")),
        service.clone().oneshot(post(Some(KEY), "{}")),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CREATED);
    assert!(!replayed(&first) && replayed(&second));
    assert_eq!(text_of(second).await, "run 1: {}");
    // The waiter polled with a backoff capped at 200 ms: it answered soon after the first.
    assert!(
        start.elapsed() <= Duration::from_millis(1200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(backend.runs(), 1);
    assert_eq!((stats.waits(), stats.conflicts()), (1, 0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waiting_gives_up_with_409_after_the_bound() {
    let backend = Backend::script([Reply::status(201).after(Duration::from_secs(10))]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .wait_for_in_flight(Duration::from_secs(2))
        .build()
        .unwrap();
    let service = stack(layer, &backend);

    let first = tokio::spawn(service.clone().oneshot(post(Some(KEY), "{}")));
    settle().await;
    let start = Instant::now();
    let second = service
        .clone()
        .oneshot(post(Some(KEY), "{}"))
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::CREATED);
    assert_eq!(backend.runs(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_waiting_duplicate_runs_when_the_first_releases() {
    let backend = Backend::script([
        Reply::status(503).after(Duration::from_secs(1)),
        Reply::status(201),
    ]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .wait_for_in_flight(Duration::from_secs(5))
        .build()
        .unwrap();
    let service = stack(layer, &backend);

    let (first, second) = tokio::join!(
        service.clone().oneshot(post(Some(KEY), "{}")),
        service.clone().oneshot(post(Some(KEY), "{}")),
    );
    assert_eq!(first.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    let second = second.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    assert!(!replayed(&second));
    assert_eq!(backend.runs(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hundred_concurrent_duplicates_run_the_handler_once() {
    for wait in [false, true] {
        let backend = Backend::script([Reply::status(201).after(Duration::from_millis(300))]);
        // A store with latency, so that claims are in flight together.
        let store = TestStore::slow(Duration::from_millis(2));
        let mut builder = IdempotencyLayer::builder(store);
        if wait {
            builder = builder.wait_for_in_flight(Duration::from_secs(5));
        }
        let layer = builder.build().unwrap();
        let stats = layer.stats();
        let service = stack(layer, &backend);

        let mut tasks = JoinSet::new();
        for _ in 0..100 {
            tasks.spawn(service.clone().oneshot(post(Some(KEY), "{}")));
        }
        let mut by_status = std::collections::BTreeMap::<(u16, bool), usize>::new();
        while let Some(result) = tasks.join_next().await {
            let response = result.unwrap().unwrap();
            *by_status
                .entry((response.status().as_u16(), replayed(&response)))
                .or_default() += 1;
        }
        assert_eq!(backend.runs(), 1, "wait={wait}");
        assert_eq!(stats.executions(), 1);
        let expected = if wait {
            [((201, false), 1), ((201, true), 99)].into()
        } else {
            [((201, false), 1), ((409, false), 99)].into()
        };
        assert_eq!(by_status, expected, "wait={wait}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn same_key_with_another_request_is_422() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    send(&mut service, post(Some(KEY), r#"{"qty":2}"#)).await;

    let other_body = send(&mut service, post(Some(KEY), r#"{"qty":3}"#)).await;
    assert_eq!(other_body.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        other_body.headers()["content-type"],
        "application/problem+json"
    );
    assert!(text_of(other_body).await.contains("already used"));

    let mut other_query = post(Some(KEY), r#"{"qty":2}"#);
    *other_query.uri_mut() = "/orders?dry_run=1".parse().unwrap();
    let other_query = send(&mut service, other_query).await;
    assert_eq!(other_query.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let mut other_type = post(Some(KEY), r#"{"qty":2}"#);
    other_type
        .headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    let other_type = send(&mut service, other_type).await;
    assert_eq!(other_type.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Another path is another operation: the key is free there.
    let mut other_path = post(Some(KEY), r#"{"qty":3}"#);
    *other_path.uri_mut() = "/refunds".parse().unwrap();
    assert_eq!(
        send(&mut service, other_path).await.status(),
        StatusCode::CREATED
    );

    assert_eq!(backend.runs(), 2);
    assert_eq!(stats.mismatches(), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn another_request_while_the_first_is_in_flight_is_422_not_409() {
    let backend = Backend::script([Reply::status(201).after(Duration::from_secs(1))]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let service = stack(layer, &backend);

    let (first, second) = tokio::join!(
        service.clone().oneshot(post(Some(KEY), "a")),
        service.clone().oneshot(post(Some(KEY), "b")),
    );
    assert_eq!(first.unwrap().status(), StatusCode::CREATED);
    assert_eq!(second.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "current_thread")]
async fn the_fingerprint_does_not_depend_on_chunking() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(layer)
        .service(backend.service::<Chunked>());
    let request = |chunks: &[&str]| {
        Request::post("/orders")
            .header("idempotency-key", KEY)
            .body(Chunked::new(chunks))
            .unwrap()
    };

    let first = service
        .ready()
        .await
        .unwrap()
        .call(request(&["hel", "lo ", "world"]))
        .await
        .unwrap();
    // The handler read the whole body from memory.
    assert_eq!(text_of(first).await, "run 1: hello world");
    let second = service
        .ready()
        .await
        .unwrap()
        .call(request(&["hello", " world"]))
        .await
        .unwrap();
    assert!(replayed(&second));
    assert_eq!(backend.runs(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_keys_are_400_with_problem_details() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    let too_long = "k".repeat(MAX_KEY_LEN + 1);
    let bad: Vec<&[u8]> = vec![
        b"",
        b"   ",
        b"\"\"",
        too_long.as_bytes(),
        b"has space",
        b"a,b",
        b"\"unterminated",
        b"\"bad \\n escape\"",
        b"\"ok\" trailing",
        b"\"ok\";Bad=1",
        b"caf\xc3\xa9",
    ];
    for value in &bad {
        let mut request = post(None, "{}");
        request.headers_mut().insert(
            "idempotency-key",
            http::HeaderValue::from_bytes(value).unwrap(),
        );
        let response = send(&mut service, request).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{:?}",
            String::from_utf8_lossy(value)
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem = text_of(response).await;
        assert!(problem.contains("Idempotency-Key is invalid"), "{problem}");
    }

    // Two field lines: which one counts is ambiguous.
    let mut two = post(Some("a"), "{}");
    two.headers_mut()
        .append("idempotency-key", "b".parse().unwrap());
    assert_eq!(
        send(&mut service, two).await.status(),
        StatusCode::BAD_REQUEST
    );

    assert_eq!(backend.runs(), 0);
    assert_eq!(stats.invalid_key(), bad.len() as u64 + 1);
}

#[tokio::test(flavor = "current_thread")]
async fn strict_mode_requires_sf_strings() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .lenient(false)
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);

    let bare = send(&mut service, post(Some("abc"), "{}")).await;
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
    assert!(text_of(bare).await.contains("quoted"));
    let quoted = send(&mut service, post(Some(r#""abc""#), "{}")).await;
    assert_eq!(quoted.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "current_thread")]
async fn missing_keys_pass_through_unless_required() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);
    for _ in 0..2 {
        let response = send(&mut service, post(None, "{}")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(!replayed(&response));
    }
    assert_eq!(backend.runs(), 2);

    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .require_key(true)
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);
    let response = send(&mut service, post(None, "{}")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        text_of(response)
            .await
            .contains("Idempotency-Key is missing")
    );
    assert_eq!(backend.runs(), 2);
    assert_eq!(stats.missing_key(), 1);

    // Only for the handled methods.
    let get = Request::get("/orders").body(String::new()).unwrap();
    assert_eq!(send(&mut service, get).await.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "current_thread")]
async fn other_methods_pass_through_even_with_a_key() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);
    for _ in 0..2 {
        let mut request = post(Some(KEY), "{}");
        *request.method_mut() = Method::PUT;
        assert!(!replayed(&send(&mut service, request).await));
    }
    assert_eq!(backend.runs(), 2);

    // PUT can be opted in; safe methods cannot.
    assert!(
        IdempotencyLayer::builder(MemoryStore::new())
            .methods([Method::POST, Method::GET])
            .build()
            .is_err()
    );
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .methods([Method::PUT])
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);
    for _ in 0..2 {
        let mut request = post(Some(KEY), "{}");
        *request.method_mut() = Method::PUT;
        send(&mut service, request).await;
    }
    assert_eq!(backend.runs(), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn bodies_over_the_cap_are_413_and_never_buffered_beyond_it() {
    let backend = Backend::new();
    let store = MemoryStore::new();
    let layer = IdempotencyLayer::builder(store.clone())
        .max_request_body(16)
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer.clone(), &backend);

    // Known length: refused before reading.
    let response = send(&mut service, post(Some(KEY), &"x".repeat(17))).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // At the cap is fine.
    let response = send(&mut service, post(Some("other"), &"x".repeat(16))).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    // Unknown length: refused once the cap is passed while reading.
    let mut streaming = ServiceBuilder::new()
        .layer(layer)
        .service(backend.service::<Chunked>());
    let request = Request::post("/orders")
        .header("idempotency-key", "streamed")
        .body(Chunked::new(&["0123456789", "0123456789", "never read"]))
        .unwrap();
    let response = streaming
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(backend.runs(), 1);
    assert_eq!(stats.body_too_large(), 2);
    // Nothing was claimed for the refused requests.
    assert_eq!(store.len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn failures_release_the_key_and_final_answers_are_stored() {
    let _t = trace_init();
    let backend = Backend::script([
        Reply::status(500),
        Reply::status(201),
        Reply::status(429),
        Reply::status(404),
        Reply::error(),
        Reply::status(200),
    ]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    // 500: released, the retry runs and its 201 is stored.
    assert_eq!(
        send(&mut service, post(Some("a"), "{}")).await.status(),
        500
    );
    let retry = send(&mut service, post(Some("a"), "{}")).await;
    assert_eq!(
        (retry.status(), replayed(&retry)),
        (StatusCode::CREATED, false)
    );
    assert!(replayed(&send(&mut service, post(Some("a"), "{}")).await));

    // 429: released. 404: a final answer, stored.
    assert_eq!(
        send(&mut service, post(Some("b"), "{}")).await.status(),
        429
    );
    let retry = send(&mut service, post(Some("b"), "{}")).await;
    assert_eq!(
        (retry.status(), replayed(&retry)),
        (StatusCode::NOT_FOUND, false)
    );
    let again = send(&mut service, post(Some("b"), "{}")).await;
    assert_eq!(
        (again.status(), replayed(&again)),
        (StatusCode::NOT_FOUND, true)
    );

    // An inner error: passed on, released.
    let err = service
        .ready()
        .await
        .unwrap()
        .call(post(Some("c"), "{}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("handler failed"));
    assert_eq!(
        send(&mut service, post(Some("c"), "{}")).await.status(),
        200
    );

    assert_eq!(backend.runs(), 6);
    assert_eq!((stats.stored(), stats.released()), (3, 3));
}

#[tokio::test(flavor = "current_thread")]
async fn stripe_policy_stores_5xx_too() {
    let backend = Backend::script([Reply::status(500), Reply::error()]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .store_policy(StorePolicy::everything())
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);

    assert_eq!(
        send(&mut service, post(Some("a"), "{}")).await.status(),
        500
    );
    let replay = send(&mut service, post(Some("a"), "{}")).await;
    assert_eq!((replay.status().as_u16(), replayed(&replay)), (500, true));
    // Errors still release: there is nothing to replay.
    assert!(
        service
            .ready()
            .await
            .unwrap()
            .call(post(Some("b"), "{}"))
            .await
            .is_err()
    );
    assert_eq!(
        send(&mut service, post(Some("b"), "{}")).await.status(),
        201
    );
    assert_eq!(backend.runs(), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn responses_over_the_cap_pass_through_unstored() {
    let backend = Backend::script([Reply::status(201).sized(64), Reply::status(201).sized(64)]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .max_response_body(32)
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    let first = send(&mut service, post(Some(KEY), "{}")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(text_of(first).await.len(), 64);
    // Not stored, so the key was released and the retry runs.
    let second = send(&mut service, post(Some(KEY), "{}")).await;
    assert!(!replayed(&second));
    assert_eq!(text_of(second).await.len(), 64);
    assert_eq!(backend.runs(), 2);
    assert_eq!((stats.response_too_large(), stats.stored()), (2, 0));
}

#[tokio::test(flavor = "current_thread")]
async fn streamed_responses_over_the_cap_reach_the_client_whole() {
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .max_response_body(8)
        .build()
        .unwrap();
    let stats = layer.stats();
    let handler = tower::service_fn(|_req: Request<_>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Chunked::new(&[
            "0123", "4567", "89ab", "cdef",
        ])))
    });
    let mut service = ServiceBuilder::new().layer(layer).service(handler);
    let response = service
        .ready()
        .await
        .unwrap()
        .call(post(Some(KEY), "{}"))
        .await
        .unwrap();
    assert_eq!(text_of(response).await, "0123456789abcdef");
    assert_eq!(stats.response_too_large(), 1);

    // Under the cap, a streamed body is stored and replayed.
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let handler = tower::service_fn(|_req: Request<_>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Chunked::new(&["01", "23"])))
    });
    let mut service = ServiceBuilder::new().layer(layer).service(handler);
    for expect_replay in [false, true] {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(post(Some(KEY), "{}"))
            .await
            .unwrap();
        assert_eq!(replayed(&response), expect_replay);
        assert_eq!(text_of(response).await, "0123");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_response_future_mid_handler_releases_the_claim() {
    for store in [
        TestStore::default(),
        TestStore::slow(Duration::from_millis(5)),
    ] {
        let backend = Backend::script([Reply::status(201).after(Duration::from_secs(3600))]);
        let layer = IdempotencyLayer::builder(store.clone()).build().unwrap();
        let stats = layer.stats();
        let service = stack(layer, &backend);

        // The client gives up after 100 ms: the future is dropped while the handler runs.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            service.clone().oneshot(post(Some(KEY), "{}")),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(backend.runs(), 1);
        assert_eq!(stats.abandoned(), 1);
        // A network store releases in a spawned task.
        settle().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(store.inner.is_empty());

        // The retry runs at once instead of waiting for the lease.
        let retry = service
            .clone()
            .oneshot(post(Some(KEY), "{}"))
            .await
            .unwrap();
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert!(!replayed(&retry));
        assert_eq!(backend.runs(), 2);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_expired_lease_lets_a_retry_run_after_a_crash() {
    let backend = Backend::script([Reply::status(201).after(Duration::from_secs(3600))]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .lease(Duration::from_secs(60))
        .build()
        .unwrap();
    let service = stack(layer, &backend);

    // The owner "crashes": its future is leaked, so nothing ever releases the claim.
    let mut crashed = Box::pin(service.clone().oneshot(post(Some(KEY), "{}")));
    assert!(support::poll_once(&mut crashed).await.is_pending());
    std::mem::forget(crashed);
    assert_eq!(backend.runs(), 1);

    tokio::time::sleep(Duration::from_secs(59)).await;
    let early = service
        .clone()
        .oneshot(post(Some(KEY), "{}"))
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::CONFLICT);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let retry = service
        .clone()
        .oneshot(post(Some(KEY), "{}"))
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(backend.runs(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stale_owner_cannot_overwrite_the_new_owners_response() {
    let _t = trace_init();
    let backend = Backend::script([
        Reply::status(201).after(Duration::from_secs(15)),
        Reply::status(202),
    ]);
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .lease(Duration::from_secs(10))
        .build()
        .unwrap();
    let stats = layer.stats();
    let service = stack(layer, &backend);

    let slow = tokio::spawn(service.clone().oneshot(post(Some(KEY), "{}")));
    tokio::time::sleep(Duration::from_secs(11)).await;
    // The lease expired: a retry takes the key over and completes first.
    let takeover = service
        .clone()
        .oneshot(post(Some(KEY), "{}"))
        .await
        .unwrap();
    assert_eq!(takeover.status(), StatusCode::ACCEPTED);

    // The stale owner finishes: its client gets its response, the store keeps the new one.
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), StatusCode::CREATED);
    assert_eq!(text_of(slow).await, "run 1: {}");
    let replay = service
        .clone()
        .oneshot(post(Some(KEY), "{}"))
        .await
        .unwrap();
    assert_eq!(
        (replay.status(), replayed(&replay)),
        (StatusCode::ACCEPTED, true)
    );
    assert_eq!(text_of(replay).await, "run 2: {}");
    assert_eq!((stats.superseded(), stats.stored()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn keys_are_isolated_per_scope() {
    #[derive(Clone)]
    struct Principal(&'static str);

    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .scope(|parts: &Parts| {
            parts
                .extensions
                .get::<Principal>()
                .map_or("anonymous", |p| p.0)
                .to_owned()
        })
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);
    let as_user = |who: &'static str| {
        let mut request = post(Some(KEY), "{}");
        request.extensions_mut().insert(Principal(who));
        request
    };

    let alice = send(&mut service, as_user("alice")).await;
    let bob = send(&mut service, as_user("bob")).await;
    assert!(!replayed(&alice) && !replayed(&bob));
    assert_eq!(backend.runs(), 2);
    // Each principal gets their own response back, never the other's.
    assert_eq!(text_of(bob).await, "run 2: {}");
    let alice_again = send(&mut service, as_user("alice")).await;
    assert!(replayed(&alice_again));
    assert_eq!(text_of(alice_again).await, "run 1: {}");
    assert_eq!(backend.runs(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn store_failure_fails_closed_by_default() {
    let _t = trace_init();
    let store = TestStore::default();
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(store.clone()).build().unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    store.set_failing(true, true);
    for _ in 0..2 {
        let response = send(&mut service, post(Some(KEY), "{}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(text_of(response).await.contains("store is unavailable"));
    }
    assert_eq!(backend.runs(), 0);
    assert_eq!((stats.store_errors(), stats.failed_closed()), (2, 2));

    // Recovery: the store is back, requests are protected again.
    store.set_failing(false, false);
    send(&mut service, post(Some(KEY), "{}")).await;
    assert!(replayed(&send(&mut service, post(Some(KEY), "{}")).await));
    assert_eq!(backend.runs(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn store_failure_can_fail_open() {
    let store = TestStore::default();
    store.set_failing(true, true);
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(store.clone())
        .fail_open(true)
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    for _ in 0..2 {
        let response = send(&mut service, post(Some(KEY), "{}")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(!replayed(&response));
    }
    // Unprotected: both ran.
    assert_eq!(backend.runs(), 2);
    assert_eq!((stats.store_errors(), stats.failed_open()), (2, 2));
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_completion_still_returns_the_response() {
    let store = TestStore::default();
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(store.clone()).build().unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    // Claims work, writes fail: the completion fails, and so does the release after it.
    store.set_failing(false, true);
    let response = send(&mut service, post(Some(KEY), "{}")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(stats.store_errors(), 2);
    // The claim is left to its lease.
    store.set_failing(false, false);
    assert_eq!(
        send(&mut service, post(Some(KEY), "{}")).await.status(),
        StatusCode::CONFLICT
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_store_fails_closed_until_records_expire() {
    let store = MemoryStore::builder()
        .max_records(1)
        .shards(1)
        .build()
        .unwrap();
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(store.clone())
        .ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    let stats = layer.stats();
    let mut service = stack(layer, &backend);

    assert_eq!(
        send(&mut service, post(Some("a"), "{}")).await.status(),
        201
    );
    let full = send(&mut service, post(Some("b"), "{}")).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stats.failed_closed(), 1);
    // The error the store gave is typed.
    let err = store
        .claim(
            &steadfast_idempotency::StoreKey::from_bytes([7; 32]),
            &steadfast_idempotency::Fingerprint::from_bytes([0; 32]),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(err.is::<CapacityExceeded>());

    // Once the first record expires it is evicted to make room.
    tokio::time::sleep(Duration::from_secs(3601)).await;
    assert_eq!(
        send(&mut service, post(Some("b"), "{}")).await.status(),
        201
    );
    assert_eq!(store.len(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn completed_records_expire_after_the_ttl() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);

    send(&mut service, post(Some(KEY), "{}")).await;
    tokio::time::sleep(Duration::from_secs(24 * 3600 - 1)).await;
    assert!(replayed(&send(&mut service, post(Some(KEY), "{}")).await));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // After 24 h the key is new again, even with another payload.
    let fresh = send(&mut service, post(Some(KEY), "other")).await;
    assert!(!replayed(&fresh));
    assert_eq!(backend.runs(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn pending_store_futures_work_end_to_end() {
    let store = TestStore::slow(Duration::from_millis(3));
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(store.clone()).build().unwrap();
    let mut service = stack(layer, &backend);

    send(&mut service, post(Some(KEY), "{}")).await;
    let replay = send(&mut service, post(Some(KEY), "{}")).await;
    assert!(replayed(&replay));
    // Claim + complete, then one claim for the replay.
    assert_eq!(store.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(backend.runs(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_custom_header_name_is_honoured() {
    let backend = Backend::new();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .header(http::HeaderName::from_static("x-request-key"))
        .build()
        .unwrap();
    let mut service = stack(layer, &backend);
    for _ in 0..2 {
        let mut request = post(None, "{}");
        request
            .headers_mut()
            .insert("x-request-key", "abc".parse().unwrap());
        send(&mut service, request).await;
    }
    assert_eq!(backend.runs(), 1);
}

#[test]
fn the_layer_rejects_bad_configuration() {
    let zero = Duration::ZERO;
    let reasons = [
        IdempotencyLayer::builder(MemoryStore::new())
            .lease(zero)
            .build(),
        IdempotencyLayer::builder(MemoryStore::new())
            .ttl(zero)
            .build(),
        IdempotencyLayer::builder(MemoryStore::new())
            .max_request_body(0)
            .build(),
        IdempotencyLayer::builder(MemoryStore::new())
            .wait_for_in_flight(zero)
            .build(),
    ];
    for result in reasons {
        assert!(result.unwrap_err().reason().contains("must"));
    }
    assert!(MemoryStore::builder().max_records(0).build().is_err());
    assert!(MemoryStore::builder().shards(0).build().is_err());
}
