//! Overload errors as protocol responses: HTTP 503 + Retry-After, gRPC RESOURCE_EXHAUSTED,
//! an axum stack without `HandleErrorLayer`, and what happens to other errors.

use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use steadfast_core::classify::{Classify, GrpcClassifier, HttpClassifier, Outcome};
use steadfast_core::error::{BoxError, Overloaded};
use steadfast_limit::AdaptiveConcurrencyLayer;
use steadfast_limit::algorithm::Aimd;
use steadfast_shed::error::DeadlineExceeded;
use steadfast_shed::{
    AdaptiveThrottleLayer, InternalServerError, LoadShedLayer, OtherErrors, OverloadResponseLayer,
    ResponseProtocol, Throttled,
};
use steadfast_test_support::{assert_send, contract, mock};
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// A service that fails every call with `error()`.
fn failing<F>(
    error: F,
) -> impl Service<(), Response = Response<String>, Error = BoxError, Future: Send> + Clone
where
    F: Fn() -> BoxError + Clone + Send + 'static,
{
    service_fn(move |()| {
        let error = error.clone();
        async move { Err::<Response<String>, _>(error()) }
    })
}

async fn answer<L, S>(
    layer: L,
    inner: S,
) -> Result<Response<String>, <L::Service as Service<()>>::Error>
where
    L: Layer<S>,
    L::Service: Service<(), Response = Response<String>>,
{
    layer.layer(inner).oneshot(()).await
}

#[tokio::test]
async fn an_axum_router_takes_the_stack_without_handle_error_layer() {
    // One request at a time, waiting in the handler until released.
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let handler = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        move || async move {
            entered.notify_one();
            release.notified().await;
            "done"
        }
    };
    let limit = AdaptiveConcurrencyLayer::builder()
        .algorithm(Aimd::new().initial_limit(1).min_limit(1).max_limit(1))
        .build()
        .unwrap();
    let app = Router::new().route("/", get(handler)).layer(
        ServiceBuilder::new()
            .layer(OverloadResponseLayer::http())
            .layer(LoadShedLayer::new().retry_after(Duration::from_secs(2)))
            .layer(limit),
    );

    let first = tokio::spawn(app.clone().oneshot(Request::new(Body::empty())));
    // The first request reaches the handler and holds the only permit.
    entered.notified().await;

    let shed = app
        .clone()
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "2");
    let class = HttpClassifier::new().classify_response(&shed);
    assert_eq!(class.outcome(), Outcome::Overload);
    assert_eq!(class.retry_after(), Some(Duration::from_secs(2)));

    release.notify_one();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
}

#[tokio::test]
async fn grpc_gets_a_trailers_only_resource_exhausted_with_pushback() {
    let response = answer(
        OverloadResponseLayer::grpc(),
        failing(|| Overloaded::with_retry_after(Duration::from_millis(250)).into()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "8");
    assert_eq!(response.headers()["grpc-retry-pushback-ms"], "250");
    assert!(response.body().is_empty());
    // A gRPC client stack reads it back as an overload with the same pushback.
    let class = GrpcClassifier::new().classify_response(&response);
    assert_eq!(class.outcome(), Outcome::Overload);
    assert_eq!(class.retry_after(), Some(Duration::from_millis(250)));
}

#[tokio::test]
async fn the_default_retry_after_fills_in_only_when_the_error_has_none() {
    let layer = OverloadResponseLayer::http().default_retry_after(Duration::from_millis(1_500));
    let response = answer(layer, failing(|| Overloaded::new().into()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "2", "rounded up");

    let response = answer(
        layer,
        failing(|| Overloaded::with_retry_after(Duration::from_secs(7)).into()),
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers()["retry-after"],
        "7",
        "the error's hint wins"
    );

    // No hint and no default: no header.
    let response = answer(
        OverloadResponseLayer::http(),
        failing(|| Overloaded::new().into()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_none());
}

#[derive(Debug)]
struct Wrapped(BoxError);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[tokio::test]
async fn overloads_are_found_in_the_source_chain_and_throttling_is_one() {
    let wrapped = || Wrapped(Overloaded::with_retry_after(Duration::from_secs(3)).into()).into();
    let response = answer(OverloadResponseLayer::http(), failing(wrapped))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "3");

    // A request the client-side throttle refused, behind a proxy: 503 as well.
    let throttle = AdaptiveThrottleLayer::builder()
        .max_reject_probability(1.0)
        .seed(1)
        .build()
        .unwrap();
    let mut proxy = ServiceBuilder::new()
        .layer(OverloadResponseLayer::http())
        .layer(throttle)
        .service(failing(|| Overloaded::new().into()));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            proxy
                .ready()
                .await
                .unwrap()
                .call(())
                .await
                .unwrap()
                .status(),
        );
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE)
    );
    let mut throttle_only = AdaptiveThrottleLayer::builder()
        .max_reject_probability(1.0)
        .seed(1)
        .build()
        .unwrap()
        .layer(failing(|| Overloaded::new().into()));
    let mut throttled = 0;
    for _ in 0..20 {
        let err = throttle_only
            .ready()
            .await
            .unwrap()
            .call(())
            .await
            .unwrap_err();
        throttled += usize::from(err.is::<Throttled>());
    }
    assert!(
        throttled > 10,
        "the same sequence threw Throttled errors: {throttled}"
    );
}

#[tokio::test]
async fn a_missed_deadline_is_a_gateway_timeout() {
    let deadline = || DeadlineExceeded::expired().into();
    let response = answer(OverloadResponseLayer::http(), failing(deadline))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let response = answer(OverloadResponseLayer::grpc(), failing(deadline))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "4");
}

#[tokio::test]
async fn other_errors_become_internal_errors_by_default() {
    let broken = || io::Error::other("disk on fire").into();
    let response: Result<Response<String>, Infallible> =
        answer(OverloadResponseLayer::http(), failing(broken)).await;
    assert_eq!(
        response.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let response = answer(OverloadResponseLayer::grpc(), failing(broken))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "2", "UNKNOWN, as tonic");
}

#[tokio::test]
async fn other_errors_pass_through_when_asked() {
    let broken = || io::Error::other("disk on fire").into();
    let layer = OverloadResponseLayer::http().pass_through_other_errors();
    let err: BoxError = answer(layer, failing(broken)).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<io::Error>().unwrap().to_string(),
        "disk on fire"
    );
    // Overloads are still answered.
    let response = answer(layer, failing(|| Overloaded::new().into()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A policy of the user's own: other errors become `502`.
struct BadGateway;

impl OtherErrors for BadGateway {
    type Error = Infallible;

    fn other_error<B: Default>(
        _error: BoxError,
        protocol: ResponseProtocol,
    ) -> Result<Response<B>, Infallible> {
        assert_eq!(protocol, ResponseProtocol::Http);
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        Ok(response)
    }
}

#[tokio::test]
async fn the_policy_for_other_errors_is_pluggable() {
    let layer = OverloadResponseLayer::new(ResponseProtocol::Http).other_errors::<BadGateway>();
    let response = answer(layer, failing(|| io::Error::other("x").into()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn responses_pass_untouched() {
    let ok = service_fn(|()| async {
        let response = Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .body(String::from("slow down"))
            .unwrap();
        Ok::<_, BoxError>(response)
    });
    let response = answer(OverloadResponseLayer::http(), ok).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.body(), "slow down");
}

#[tokio::test]
async fn a_readiness_error_is_answered_by_the_next_call() {
    let (inner, handle) = mock::pair::<Request<String>, Response<String>>();
    handle.fail_ready_with(Overloaded::with_retry_after(Duration::from_secs(1)));
    let mut service = OverloadResponseLayer::http().layer(inner);
    let response = service
        .ready()
        .await
        .unwrap()
        .call(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(handle.calls(), 0, "the inner service was not called");
}

#[tokio::test]
async fn keeps_the_tower_service_contract() {
    contract::check_http_layer(OverloadResponseLayer::http()).await;
    contract::check_http_layer(OverloadResponseLayer::grpc().pass_through_other_errors()).await;
}

#[test]
fn service_and_future_are_send_and_the_layer_is_small() {
    type Svc =
        steadfast_shed::OverloadResponse<mock::MockService<Request<String>, Response<String>>>;
    assert_send::<Svc>();
    assert_send::<<Svc as Service<Request<String>>>::Future>();
    fn sync<T: Sync>() {}
    sync::<Svc>();
    let _: OverloadResponseLayer<InternalServerError> = OverloadResponseLayer::http();
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn towers_own_errors_are_mapped_with_the_tower_feature() {
    use tower::limit::ConcurrencyLimitLayer;
    use tower::load_shed::LoadShedLayer as TowerLoadShedLayer;
    use tower::timeout::TimeoutLayer;

    // tower's LoadShed over a limit of zero: every request is shed with tower's error.
    let (inner, _handle) = mock::pair::<Request<String>, Response<String>>();
    let response = ServiceBuilder::new()
        .layer(OverloadResponseLayer::http().default_retry_after(Duration::from_secs(5)))
        .layer(TowerLoadShedLayer::new())
        .layer(ConcurrencyLimitLayer::new(0))
        .service(inner)
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");

    // tower's Timeout: a gateway timeout.
    let (inner, handle) = mock::pair::<Request<String>, Response<String>>();
    handle.respond_manually();
    let response = ServiceBuilder::new()
        .layer(OverloadResponseLayer::grpc())
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(inner)
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "4");
}
