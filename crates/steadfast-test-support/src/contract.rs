//! A reusable check that a layer keeps the tower `Service` contract.
//!
//! [`check_layer`], [`check_http_layer`] and the general [`check_layer_with`] wrap a fresh
//! [`MockService`] in the layer for each rule and assert:
//!
//! - **(a)** `poll_ready` is `Pending` while the inner service has no permit, and wakes the
//!   task when the inner service gets one (here: when its capacity is raised);
//! - **(b)** dropping a service that is ready but never called releases the inner service's
//!   reservation;
//! - **(c)** dropping a response future before it completes releases the inner service's
//!   permit;
//! - **(d)** a clone does not share the reservation of the service it was cloned from: with
//!   one inner permit, reserved by a ready service A, a clone B of A is `Pending`, and
//!   becomes ready once A is dropped;
//! - **(e)** a call goes through to the inner service and returns its response.
//!
//! A violation panics with a message naming the rule, e.g.
//! `tower Service contract, rule (b) violated: ...`. A failure that prevents checking a rule
//! (say, the layer rejects a request) panics with `while checking tower Service contract
//! rule (x): ...`.
//!
//! The check also requires, at compile time, the layered service and its response future
//! to be `Send` (the mock is `Send` when its request and response types are).
//!
//! Layers that legitimately answer `Ready` without an inner permit (a load shedder, a buffer
//! with its own queue) do not keep rules (a) and (d) as stated here; check them with their
//! own tests.
//!
//! Run the check on a current-thread tokio runtime (`#[tokio::test]`): it polls by hand with a
//! [`CountingWaker`](crate::CountingWaker) and yields to the runtime so that layers with
//! background tasks can make progress. Rule (e) awaits the response, so a layer that never
//! completes it hangs the test.
//!
//! ```
//! use steadfast_test_support::contract;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! contract::check_layer(tower_layer::Identity::new()).await;
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use steadfast_core::error::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::mock::{self, MockHandle, MockService};

mod drive;
mod rules;

/// Checks `layer` against the tower `Service` contract, with `String` requests and responses.
///
/// Each request is `"ping"`; the inner service answers `"pong to {request}"`, and the layered
/// service must return exactly that. See the [module docs](self) for the rules.
///
/// # Panics
///
/// If the layer breaks a rule, with a message naming it.
pub async fn check_layer<L>(layer: L)
where
    L: Layer<MockService<String, String>>,
    L::Service: Service<String, Response = String> + Clone + Send,
    <L::Service as Service<String>>::Error: Into<BoxError>,
    <L::Service as Service<String>>::Future: Send,
{
    check_layer_with(
        layer,
        || String::from("ping"),
        |request: &String| Ok(format!("pong to {request}")),
        |response: String| {
            assert_eq!(
                response,
                "pong to ping",
                "tower Service contract, rule (e) violated: {}",
                rules::Rule::E.statement()
            );
        },
    )
    .await;
}

/// Checks an HTTP `layer` against the tower `Service` contract, with
/// `http::Request<String>` and `http::Response<String>`.
///
/// Each request is `POST /contract` with the body `"ping"`; the inner service answers
/// `200 OK` with the body `"pong to {body}"`, and the layered service must return that
/// status and body (it may add headers). See the [module docs](self) for the rules.
///
/// # Panics
///
/// If the layer breaks a rule, with a message naming it.
pub async fn check_http_layer<L>(layer: L)
where
    L: Layer<MockService<http::Request<String>, http::Response<String>>>,
    L::Service: Service<http::Request<String>, Response = http::Response<String>> + Clone + Send,
    <L::Service as Service<http::Request<String>>>::Error: Into<BoxError>,
    <L::Service as Service<http::Request<String>>>::Future: Send,
{
    check_layer_with(
        layer,
        || {
            let mut request = http::Request::new(String::from("ping"));
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = http::Uri::from_static("/contract");
            request
        },
        |request: &http::Request<String>| {
            Ok(http::Response::new(format!("pong to {}", request.body())))
        },
        |response: http::Response<String>| {
            let statement = rules::Rule::E.statement();
            assert_eq!(
                response.status(),
                http::StatusCode::OK,
                "tower Service contract, rule (e) violated: {statement}"
            );
            assert_eq!(
                response.body(),
                "pong to ping",
                "tower Service contract, rule (e) violated: {statement}"
            );
        },
    )
    .await;
}

/// Checks `layer` against the tower `Service` contract, for any request and response types.
///
/// - `make_request` makes each request sent to the layered service (of type `In`; the layer
///   may turn it into the inner service's `Req`);
/// - `respond` is the inner service's answer (see
///   [`MockHandle::respond_with`](crate::mock::MockHandle::respond_with));
/// - `check_response` receives the layered service's response for rule (e) and should panic
///   if it is not what the inner response becomes through the layer.
///
/// See the [module docs](self) for the rules.
///
/// # Panics
///
/// If the layer breaks a rule, with a message naming it.
///
/// # Example
///
/// ```
/// use steadfast_test_support::contract;
/// use tower::util::MapResponseLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// contract::check_layer_with(
///     MapResponseLayer::new(|text: String| text.len()),
///     || 7_u32,
///     |n: &u32| Ok(n.to_string().repeat(3)),
///     |len: usize| assert_eq!(len, 3),
/// )
/// .await;
/// # }
/// ```
pub async fn check_layer_with<L, In, Req, Res, Out>(
    layer: L,
    mut make_request: impl FnMut() -> In,
    respond: impl Fn(&Req) -> Result<Res, BoxError> + Send + Sync + 'static,
    check_response: impl FnOnce(Out),
) where
    L: Layer<MockService<Req, Res>>,
    L::Service: Service<In, Response = Out> + Clone + Send,
    <L::Service as Service<In>>::Error: Into<BoxError>,
    <L::Service as Service<In>>::Future: Send,
    Req: 'static,
    Res: 'static,
{
    let respond = Arc::new(respond);
    let fresh = |capacity: usize| -> (L::Service, MockHandle<Req, Res>) {
        let (inner, handle) = mock::pair::<Req, Res>();
        handle.set_capacity(capacity);
        let respond = Arc::clone(&respond);
        handle.respond_with(move |request: &Req| respond(request));
        (layer.layer(inner), handle)
    };

    rules::a_pending_without_permit(&fresh).await;
    rules::b_drop_ready_releases(&fresh).await;
    rules::c_drop_future_releases(&fresh, &mut make_request).await;
    rules::d_clone_does_not_share(&fresh).await;
    rules::e_call_goes_through(&fresh, &mut make_request, check_response).await;
}

/// Describes a mock's permits for failure messages.
struct Permits<'a, Req, Res>(&'a MockHandle<Req, Res>);

impl<Req, Res> fmt::Display for Permits<'_, Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let handle = self.0;
        write!(
            f,
            "inner permits: {} of {} available, {} reserved, {} in flight",
            handle.available_permits(),
            handle.capacity(),
            handle.reserved(),
            handle.in_flight()
        )
    }
}
