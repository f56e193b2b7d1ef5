//! `HlcLayer` through real tower stacks: a client stack calling a server stack in-process.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use steadfast_core::clock::ManualClock;
use steadfast_hlc::header::{self, DEFAULT_HEADER, HeaderPolicy};
use steadfast_hlc::{Hlc, HlcLayer, Timestamp};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

type Clock = Arc<Hlc<ManualClock>>;

fn clock_at(millis: u64) -> Clock {
    Arc::new(Hlc::with_clock(ManualClock::new(
        UNIX_EPOCH + Duration::from_millis(millis),
    )))
}

/// A handler that echoes the timestamp the server layer gave it, and counts its calls.
fn handler(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(move |req: Request<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let seen = req.extensions().get::<Timestamp>().copied();
        async move {
            let body = seen.map(|ts| ts.as_u64().to_string()).unwrap_or_default();
            Ok::<_, Infallible>(Response::new(body))
        }
    })
}

fn request_with(header: &str) -> Request<String> {
    Request::builder()
        .header(DEFAULT_HEADER, header)
        .body(String::new())
        .expect("valid request")
}

#[tokio::test(flavor = "current_thread")]
async fn a_round_trip_orders_every_step_after_its_cause() {
    // The client's wall clock runs 100 ms ahead of the server's.
    let client_hlc = clock_at(1_000_100);
    let server_hlc = clock_at(1_000_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let server = ServiceBuilder::new()
        .layer(HlcLayer::server(server_hlc.clone()))
        .service(handler(calls.clone()));
    let client = ServiceBuilder::new()
        .layer(HlcLayer::client(client_hlc.clone()))
        .service(
            service_fn(move |req: Request<String>| {
                let sent = header::decode(req.headers()[&DEFAULT_HEADER].as_bytes())
                    .expect("client stamped the request");
                let server = server.clone();
                async move {
                    let response = server.oneshot(req).await?;
                    Ok::<_, Infallible>((sent, response))
                }
            })
            .map_response(|(sent, response): (Timestamp, Response<String>)| {
                // Carry the sent stamp to the test through an extension.
                let mut response = response;
                response.extensions_mut().insert(sent);
                response
            }),
        );

    let response = client
        .oneshot(Request::new(String::new()))
        .await
        .expect("ok");
    let sent = *response
        .extensions()
        .get::<Timestamp>()
        .expect("sent stamp");
    let handled = Timestamp::from_u64(response.body().parse().expect("handler saw a stamp"));
    let replied =
        header::decode(response.headers()[&DEFAULT_HEADER].as_bytes()).expect("stamped reply");

    assert!(handled > sent, "the handler runs after the send");
    assert!(
        replied > handled,
        "the reply is stamped after the handler ran"
    );
    assert!(client_hlc.now() > replied, "the client merged the reply");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn bad_headers_are_ignored_counted_and_the_request_is_served() {
    let hlc = clock_at(1_000_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = HlcLayer::server(hlc.clone());
    let stats = layer.stats();
    let mut server = ServiceBuilder::new()
        .layer(layer)
        .service(handler(calls.clone()));

    let before = hlc.now();
    let res = server
        .ready()
        .await
        .expect("ready")
        .call(request_with("not-a-timestamp"))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);

    // One second ahead: beyond the default 500 ms max offset.
    let far = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1_001_000));
    let res = server
        .ready()
        .await
        .expect("ready")
        .call(request_with(header::encode(far).to_str().expect("ascii")))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);

    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!((stats.malformed(), stats.too_far_ahead()), (1, 1));
    let after = hlc.now();
    assert!(after > before);
    assert!(after < far, "the far-ahead stamp was not merged");
}

#[tokio::test(flavor = "current_thread")]
async fn reject_policy_answers_400_without_calling_the_handler() {
    let hlc = clock_at(1_000_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = HlcLayer::server(hlc.clone()).policy(HeaderPolicy::Reject);
    let stats = layer.stats();
    let mut server = ServiceBuilder::new()
        .layer(layer)
        .service(handler(calls.clone()));

    let res = server
        .ready()
        .await
        .expect("ready")
        .call(request_with("zz"))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().contains_key(DEFAULT_HEADER), "still stamped");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(stats.malformed(), 1);

    // A good header, and no header at all, are served.
    let good = header::encode(hlc.now());
    let res = server
        .ready()
        .await
        .expect("ready")
        .call(request_with(good.to_str().expect("ascii")))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    let res = server
        .ready()
        .await
        .expect("ready")
        .call(Request::new(String::new()))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn custom_header_name_is_used_both_ways() {
    let name = HeaderName::from_static("x-causal-time");
    let server_hlc = clock_at(2_000_000);
    let remote = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(2_000_300));
    let server = ServiceBuilder::new()
        .layer(HlcLayer::server(server_hlc.clone()).header_name(name.clone()))
        .service(handler(Arc::default()));
    let req = Request::builder()
        .header(&name, header::encode(remote))
        .body(String::new())
        .expect("valid request");
    let res = server.oneshot(req).await.expect("ok");
    assert!(res.headers().contains_key(&name));
    assert!(!res.headers().contains_key(DEFAULT_HEADER));
    assert!(server_hlc.last() > remote, "merged from the custom header");
}

#[tokio::test(flavor = "current_thread")]
async fn client_ignores_a_bad_response_header_and_counts_it() {
    let hlc = clock_at(3_000_000);
    let layer = HlcLayer::client(hlc.clone());
    let stats = layer.stats();
    let client =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|_req: Request<String>| async {
                let mut res = Response::new(String::new());
                res.headers_mut()
                    .insert(DEFAULT_HEADER, HeaderValue::from_static("garbage"));
                Ok::<_, Infallible>(res)
            }));
    let res = client
        .oneshot(Request::new(String::new()))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(stats.malformed(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn inner_errors_pass_through_unchanged() {
    #[derive(Debug, PartialEq)]
    struct Boom;
    let server = ServiceBuilder::new()
        .layer(HlcLayer::server(clock_at(1)))
        .service(service_fn(|_req: Request<String>| async {
            Err::<Response<String>, _>(Boom)
        }));
    assert_eq!(
        server.oneshot(Request::new(String::new())).await.err(),
        Some(Boom)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn server_layer_keeps_the_tower_service_contract() {
    let _t = steadfast_test_support::trace_init();
    steadfast_test_support::contract::check_http_layer(HlcLayer::server(clock_at(1))).await;
}

#[tokio::test(flavor = "current_thread")]
async fn client_layer_keeps_the_tower_service_contract() {
    let _t = steadfast_test_support::trace_init();
    steadfast_test_support::contract::check_http_layer(HlcLayer::client(clock_at(1))).await;
}
