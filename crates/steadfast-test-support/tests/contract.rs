//! The contract check passes for well-behaved layers and fails, naming the rule, for broken
//! ones.

use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use steadfast_test_support::contract::{check_http_layer, check_layer, check_layer_with};
use tower::util::{MapRequestLayer, MapResponseLayer};
use tower_layer::{Identity, Layer, layer_fn};
use tower_service::Service;

#[tokio::test]
async fn identity_passes() {
    let _t = steadfast_test_support::trace_init();
    check_layer(Identity::new()).await;
    check_http_layer(Identity::new()).await;
}

#[tokio::test]
async fn map_layers_pass() {
    check_layer(MapRequestLayer::new(|request: String| request)).await;
    check_layer_with(
        MapResponseLayer::new(|response: String| response.to_uppercase()),
        || String::from("ping"),
        |request: &String| Ok(format!("pong to {request}")),
        |response: String| assert_eq!(response, "PONG TO PING"),
    )
    .await;
    check_http_layer(MapRequestLayer::new(
        |mut request: http::Request<String>| {
            request
                .headers_mut()
                .insert("x-mapped", http::HeaderValue::from_static("yes"));
            request
        },
    ))
    .await;
}

// Broken layers, one per rule.

/// Ready without asking the inner service.
#[derive(Clone)]
struct AlwaysReady<S>(S);

impl<S: Service<R>, R> Service<R> for AlwaysReady<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> S::Future {
        self.0.call(request)
    }
}

#[tokio::test]
#[should_panic(expected = "rule (a) violated")]
async fn ready_without_inner_permit_fails_rule_a() {
    check_layer(layer_fn(AlwaysReady)).await;
}

/// Never drops the inner service, so its reservation leaks.
struct LeakOnDrop<S>(ManuallyDrop<S>);

impl<S: Clone> Clone for LeakOnDrop<S> {
    fn clone(&self) -> Self {
        Self(ManuallyDrop::new(S::clone(&self.0)))
    }
}

impl<S: Service<R>, R> Service<R> for LeakOnDrop<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.0.call(request)
    }
}

#[tokio::test]
#[should_panic(expected = "rule (b) violated")]
async fn leaking_the_inner_service_fails_rule_b() {
    check_layer(layer_fn(|inner| LeakOnDrop(ManuallyDrop::new(inner)))).await;
}

/// Never drops the inner response future, so its permit leaks when the caller gives up.
#[derive(Clone)]
struct LeakFuture<S>(S);

struct LeakingFuture<F>(ManuallyDrop<F>);

impl<F: Future + Unpin> Future for LeakingFuture<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut *self.0).poll(cx)
    }
}

impl<S: Service<R>, R> Service<R> for LeakFuture<S>
where
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = LeakingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        LeakingFuture(ManuallyDrop::new(self.0.call(request)))
    }
}

#[tokio::test]
#[should_panic(expected = "rule (c) violated")]
async fn leaking_the_response_future_fails_rule_c() {
    check_layer(layer_fn(LeakFuture)).await;
}

/// Remembers readiness in a flag that `Clone` copies, so a clone skips the inner poll_ready.
#[derive(Clone)]
struct CopyReadyFlag<S> {
    inner: S,
    ready: bool,
}

impl<S: Service<R>, R> Service<R> for CopyReadyFlag<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if !self.ready {
            ready!(self.inner.poll_ready(cx))?;
            self.ready = true;
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> S::Future {
        self.ready = false;
        self.inner.call(request)
    }
}

#[tokio::test]
#[should_panic(expected = "rule (d) violated")]
async fn copying_readiness_on_clone_fails_rule_d() {
    check_layer(layer_fn(|inner| CopyReadyFlag {
        inner,
        ready: false,
    }))
    .await;
}

#[tokio::test]
#[should_panic(expected = "rule (e) violated")]
async fn changing_the_response_fails_rule_e() {
    check_layer(MapResponseLayer::new(|response: String| response + "!")).await;
}

#[tokio::test]
#[should_panic(expected = "rule (e) violated")]
async fn changing_the_http_response_fails_rule_e() {
    check_http_layer(MapResponseLayer::new(
        |mut response: http::Response<String>| {
            *response.status_mut() = http::StatusCode::ACCEPTED;
            response
        },
    ))
    .await;
}

/// The layers under test, wrapped by a `Layer` impl rather than a closure, also work.
#[derive(Debug, Clone, Copy)]
struct NamedIdentity;

impl<S> Layer<S> for NamedIdentity {
    type Service = S;

    fn layer(&self, inner: S) -> S {
        inner
    }
}

#[tokio::test]
async fn a_named_layer_passes() {
    check_layer(NamedIdentity).await;
}
