//! Overload errors as protocol responses: [`OverloadResponseLayer`].
//!
//! Load shedders and limiters fail a refused request with an error
//! ([`Overloaded`]), which a server framework cannot send. This layer, outermost in the
//! server's stack, turns those errors into the answer a client understands: HTTP `503`
//! with `Retry-After`, or a gRPC trailers-only `RESOURCE_EXHAUSTED` with
//! `grpc-retry-pushback-ms` (the responses of [`Overloaded::to_http_response`] and
//! [`Overloaded::to_grpc_response`]).

use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use steadfast_core::error::{BoxError, Overloaded, grpc_status_response};

use crate::error::{DeadlineExceeded, GRPC_DEADLINE_EXCEEDED};
use tower_layer::Layer;
use tower_service::Service;

/// Which protocol's responses [`OverloadResponseLayer`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseProtocol {
    /// HTTP status codes: `503 Service Unavailable` with `Retry-After`.
    Http,
    /// gRPC trailers-only responses (HTTP `200`, `grpc-status` in the headers):
    /// `RESOURCE_EXHAUSTED` (8) with `grpc-retry-pushback-ms`.
    Grpc,
}

/// gRPC `UNKNOWN`: what tonic reports for a service error that is not a `Status`.
const GRPC_UNKNOWN: u16 = 2;

/// What [`OverloadResponseLayer`] does with an error that is neither an overload nor a
/// timeout (see its table).
///
/// Two policies come with the crate: [`InternalServerError`] (the default; the service
/// cannot fail, as axum's `Router::layer` requires) and [`PassThrough`] (the error is
/// returned as is). Implement it for another mapping.
pub trait OtherErrors {
    /// The error type of the wrapped service.
    type Error;

    /// Turns `error`, which is neither an overload nor a timeout, into a response for
    /// `protocol`, or into the service's error.
    ///
    /// # Errors
    ///
    /// Whatever the policy returns instead of a response.
    fn other_error<B: Default>(
        error: BoxError,
        protocol: ResponseProtocol,
    ) -> Result<Response<B>, Self::Error>;
}

/// Other errors become HTTP `500 Internal Server Error` (empty body) or gRPC `UNKNOWN` (2,
/// the code tonic gives an error that is not a `Status`), and are logged at `error` level
/// with target `steadfast_shed`, since the response no longer carries them. The service's
/// error type is [`Infallible`]: the stack plugs straight into axum's `Router::layer`, no
/// `HandleErrorLayer` needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InternalServerError;

impl OtherErrors for InternalServerError {
    type Error = Infallible;

    fn other_error<B: Default>(
        error: BoxError,
        protocol: ResponseProtocol,
    ) -> Result<Response<B>, Infallible> {
        tracing::error!(
            target: "steadfast_shed",
            error = %error,
            "service error answered with an internal error"
        );
        Ok(match protocol {
            ResponseProtocol::Http => status_response(StatusCode::INTERNAL_SERVER_ERROR),
            ResponseProtocol::Grpc => grpc_status_response(GRPC_UNKNOWN, "internal%20error"),
        })
    }
}

/// Other errors are returned unchanged; the service's error type is [`BoxError`]. For
/// stacks with error handling of their own further out (tonic's server, hyper, a
/// `HandleErrorLayer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassThrough;

impl OtherErrors for PassThrough {
    type Error = BoxError;

    fn other_error<B: Default>(
        error: BoxError,
        _protocol: ResponseProtocol,
    ) -> Result<Response<B>, BoxError> {
        Err(error)
    }
}

fn status_response<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

/// A tower layer that answers overload errors with the protocol's overload response, so a
/// server needs no error handling of its own for them.
///
/// It wraps a service whose responses are `http::Response<B>` (with `B: Default`, for the
/// empty body of an error response) and whose errors convert into [`BoxError`], such as a
/// stack of load shedders and limiters, and maps its errors:
///
/// | error (anywhere in its `source` chain) | HTTP ([`http`](Self::http)) | gRPC ([`grpc`](Self::grpc)) |
/// |---|---|---|
/// | [`Overloaded`] (from `steadfast-shed`, `steadfast-limit`...), [`Throttled`](crate::Throttled) | `503`, `Retry-After` from the error's hint | `RESOURCE_EXHAUSTED`, `grpc-retry-pushback-ms` from the hint |
/// | [`DeadlineExceeded`] (the caller's deadline cannot be met) | `504 Gateway Timeout` | `DEADLINE_EXCEEDED` (4) |
/// | tower's `load_shed::error::Overloaded` (feature `tower`) | `503` | `RESOURCE_EXHAUSTED` |
/// | tower's `timeout::error::Elapsed` (feature `tower`) | `504 Gateway Timeout` | `DEADLINE_EXCEEDED` (4) |
/// | anything else | by the [`OtherErrors`] policy: `500` by default, or [passed through](Self::pass_through_other_errors) | `UNKNOWN` (2) by default, or passed through |
///
/// Without a hint in the error, [`default_retry_after`](Self::default_retry_after) (if set)
/// fills `Retry-After` and `grpc-retry-pushback-ms`. `Retry-After` is written in whole
/// seconds, rounded up. Responses of the inner service pass through untouched.
///
/// An error from the inner service's `poll_ready` (a closed buffer, say) is kept, the
/// service reports ready, and the next `call` answers with that error's response without
/// calling the inner service.
///
/// Only the types above are recognised: downcasting needs the concrete type, and this crate
/// depends on no other steadfast crate (steadfast-limit's `TimedOut`, for one, is an "other
/// error"). An error that means "overloaded" is recognised when it carries an
/// [`Overloaded`] in its source chain, as [`Throttled`](crate::Throttled) does.
///
/// # Defaults
///
/// | setting | default | reason |
/// |---|---|---|
/// | other errors | [`InternalServerError`]: `500` / `UNKNOWN`, error type [`Infallible`] | axum's `Router::layer` needs an infallible service |
/// | [`default_retry_after`](Self::default_retry_after) | none (no header without a hint) | a made-up delay would mislead clients that honour it |
///
/// # Example
///
/// axum, no `HandleErrorLayer`: the refused request gets `503` with `Retry-After`.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use axum::Router;
/// use axum::body::Body;
/// use axum::response::Response;
/// use axum::routing::get;
/// use http::{Request, StatusCode};
/// use steadfast_core::error::{BoxError, Overloaded};
/// use steadfast_shed::OverloadResponseLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(
///         ServiceBuilder::new()
///             .layer(OverloadResponseLayer::http())
///             // Stands for any shedder or limiter: refuses everything, asks for 2 s.
///             .map_result(|_: Result<Response, Infallible>| {
///                 let shed = Overloaded::with_retry_after(Duration::from_secs(2));
///                 Err::<Response, BoxError>(shed.into())
///             }),
///     );
///
/// let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(response.headers()["retry-after"], "2");
/// # }
/// ```
pub struct OverloadResponseLayer<O = InternalServerError> {
    protocol: ResponseProtocol,
    default_retry_after: Option<Duration>,
    _other: PhantomData<fn() -> O>,
}

impl<O> Clone for OverloadResponseLayer<O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O> Copy for OverloadResponseLayer<O> {}

impl<O> fmt::Debug for OverloadResponseLayer<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverloadResponseLayer")
            .field("protocol", &self.protocol)
            .field("default_retry_after", &self.default_retry_after)
            .field("other_errors", &std::any::type_name::<O>())
            .finish()
    }
}

impl OverloadResponseLayer {
    /// HTTP responses; other errors become `500` (see the [defaults](Self#defaults)).
    pub const fn http() -> Self {
        Self::new(ResponseProtocol::Http)
    }

    /// gRPC trailers-only responses; other errors become `UNKNOWN`.
    pub const fn grpc() -> Self {
        Self::new(ResponseProtocol::Grpc)
    }

    /// Responses for `protocol`; other errors become `500` / `UNKNOWN`.
    pub const fn new(protocol: ResponseProtocol) -> Self {
        Self {
            protocol,
            default_retry_after: None,
            _other: PhantomData,
        }
    }
}

impl<O> OverloadResponseLayer<O> {
    /// The retry-after to advertise when the error carries none (default: none, and then
    /// no `Retry-After` / `grpc-retry-pushback-ms` is sent).
    #[must_use]
    pub const fn default_retry_after(mut self, after: Duration) -> Self {
        self.default_retry_after = Some(after);
        self
    }

    /// Returns errors that are not overloads (or timeouts) unchanged, as [`BoxError`],
    /// instead of answering them with `500` / `UNKNOWN`.
    #[must_use]
    pub const fn pass_through_other_errors(self) -> OverloadResponseLayer<PassThrough> {
        self.other_errors::<PassThrough>()
    }

    /// Handles errors that are not overloads (or timeouts) with the policy `O2`.
    #[must_use]
    pub const fn other_errors<O2: OtherErrors>(self) -> OverloadResponseLayer<O2> {
        OverloadResponseLayer {
            protocol: self.protocol,
            default_retry_after: self.default_retry_after,
            _other: PhantomData,
        }
    }

    /// The protocol the responses are written for.
    pub const fn protocol(&self) -> ResponseProtocol {
        self.protocol
    }
}

impl<S, O> Layer<S> for OverloadResponseLayer<O> {
    type Service = OverloadResponse<S, O>;

    fn layer(&self, inner: S) -> Self::Service {
        OverloadResponse {
            inner,
            config: Config {
                protocol: self.protocol,
                default_retry_after: self.default_retry_after,
            },
            ready_error: None,
            _other: PhantomData,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Config {
    protocol: ResponseProtocol,
    default_retry_after: Option<Duration>,
}

impl Config {
    fn overloaded<B: Default>(&self, overloaded: &Overloaded) -> Response<B> {
        let retry_after = overloaded.retry_after().or(self.default_retry_after);
        let overloaded = Overloaded::from_retry_after(retry_after);
        match self.protocol {
            ResponseProtocol::Http => overloaded.to_http_response(),
            ResponseProtocol::Grpc => overloaded.to_grpc_response(),
        }
    }

    fn timed_out<B: Default>(&self) -> Response<B> {
        match self.protocol {
            ResponseProtocol::Http => status_response(StatusCode::GATEWAY_TIMEOUT),
            ResponseProtocol::Grpc => {
                grpc_status_response(GRPC_DEADLINE_EXCEEDED, "deadline%20exceeded")
            }
        }
    }

    /// The response for `error`, walking its source chain for an error we know.
    fn map<B: Default, O: OtherErrors>(&self, error: BoxError) -> Result<Response<B>, O::Error> {
        let mut current: Option<&(dyn Error + 'static)> = Some(&*error);
        while let Some(err) = current {
            if let Some(overloaded) = err.downcast_ref::<Overloaded>() {
                return Ok(self.overloaded(overloaded));
            }
            if err.is::<DeadlineExceeded>() {
                return Ok(self.timed_out());
            }
            #[cfg(feature = "tower")]
            {
                if err.is::<tower::load_shed::error::Overloaded>() {
                    return Ok(self.overloaded(&Overloaded::new()));
                }
                if err.is::<tower::timeout::error::Elapsed>() {
                    return Ok(self.timed_out());
                }
            }
            current = err.source();
        }
        O::other_error(error, self.protocol)
    }
}

/// The service made by [`OverloadResponseLayer`]: answers the inner service's overload
/// errors with `503` / `RESOURCE_EXHAUSTED` responses.
///
/// # Clone
///
/// A clone clones the inner service; an error kept from `poll_ready` stays with the
/// original.
pub struct OverloadResponse<S, O = InternalServerError> {
    inner: S,
    config: Config,
    ready_error: Option<BoxError>,
    _other: PhantomData<fn() -> O>,
}

impl<S: Clone, O> Clone for OverloadResponse<S, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config,
            ready_error: None,
            _other: PhantomData,
        }
    }
}

impl<S: fmt::Debug, O> fmt::Debug for OverloadResponse<S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverloadResponse")
            .field("inner", &self.inner)
            .field("protocol", &self.config.protocol)
            .field("default_retry_after", &self.config.default_retry_after)
            .field("ready_error", &self.ready_error)
            .finish()
    }
}

impl<S, O> OverloadResponse<S, O> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, O, Req, B> Service<Req> for OverloadResponse<S, O>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    O: OtherErrors,
    B: Default,
{
    type Response = Response<B>;
    type Error = O::Error;
    type Future = OverloadResponseFuture<S::Future, O>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.ready_error.is_none()
            && let Err(err) = ready!(self.inner.poll_ready(cx))
        {
            self.ready_error = Some(err.into());
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let state = match self.ready_error.take() {
            None => ResponseState::Inner {
                future: self.inner.call(request),
            },
            Some(error) => ResponseState::Failed { error: Some(error) },
        };
        OverloadResponseFuture {
            state,
            config: self.config,
            _other: PhantomData,
        }
    }
}

pin_project! {
    /// The response future of [`OverloadResponse`]: the inner response, or the response
    /// its error maps to.
    pub struct OverloadResponseFuture<F, O> {
        #[pin]
        state: ResponseState<F>,
        config: Config,
        _other: PhantomData<fn() -> O>,
    }
}

pin_project! {
    #[project = ResponseStateProj]
    enum ResponseState<F> {
        Inner {
            #[pin]
            future: F,
        },
        Failed {
            error: Option<BoxError>,
        },
    }
}

impl<F, O, B, E> Future for OverloadResponseFuture<F, O>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    O: OtherErrors,
    B: Default,
{
    type Output = Result<Response<B>, O::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let error = match this.state.project() {
            ResponseStateProj::Inner { future } => match ready!(future.poll(cx)) {
                Ok(response) => return Poll::Ready(Ok(response)),
                Err(error) => error.into(),
            },
            ResponseStateProj::Failed { error } => error
                .take()
                .expect("OverloadResponseFuture polled after completion"),
        };
        Poll::Ready(this.config.map::<B, O>(error))
    }
}

impl<F, O> fmt::Debug for OverloadResponseFuture<F, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverloadResponseFuture")
            .field("protocol", &self.config.protocol)
            .finish_non_exhaustive()
    }
}
