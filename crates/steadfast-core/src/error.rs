//! Errors shared by several steadfast crates.
//!
//! Fallible steadfast layers return [`BoxError`]; match on a concrete error by downcasting,
//! as with tower's own errors:
//!
//! ```
//! use steadfast_core::error::{BoxError, Overloaded};
//!
//! let err: BoxError = Overloaded::new().into();
//! assert!(err.is::<Overloaded>());
//! ```

use std::error::Error;
use std::fmt;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

/// A type-erased error, the same alias tower uses.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// The gRPC status code `RESOURCE_EXHAUSTED` (8).
pub const GRPC_RESOURCE_EXHAUSTED: u16 = 8;

/// The request was refused because the service is overloaded; it did no work for it.
///
/// Returned by load shedders and concurrency limiters when they reject a request. Because
/// nothing ran, the request is safe to retry later, ideally after [`retry_after`](Self::retry_after).
///
/// | protocol | maps to |
/// |---|---|
/// | HTTP | `503 Service Unavailable`, with `Retry-After` (whole seconds, rounded up) when known |
/// | gRPC | `RESOURCE_EXHAUSTED` (8), with `grpc-retry-pushback-ms` when a retry-after is known |
///
/// [`to_http_response`](Self::to_http_response) and
/// [`to_grpc_response`](Self::to_grpc_response) build those responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overloaded {
    retry_after: Option<Duration>,
}

impl Overloaded {
    /// An overload rejection with no retry-after hint.
    pub const fn new() -> Self {
        Self { retry_after: None }
    }

    /// An overload rejection that suggests retrying after `after`.
    pub const fn with_retry_after(after: Duration) -> Self {
        Self {
            retry_after: Some(after),
        }
    }

    /// An overload rejection with `retry_after` as its hint, if any.
    pub const fn from_retry_after(retry_after: Option<Duration>) -> Self {
        Self { retry_after }
    }

    /// How long the rejecting layer suggests waiting before a retry, if it said.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status this error maps to: `503 Service Unavailable`.
    pub const fn http_status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// An HTTP `503` response with an empty body and, when a retry-after is known,
    /// `Retry-After` in whole seconds rounded up (so a client never retries too early).
    pub fn to_http_response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.http_status();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    /// A gRPC "trailers-only" response: HTTP 200 with `grpc-status: 8`
    /// (`RESOURCE_EXHAUSTED`), a `grpc-message`, and `grpc-retry-pushback-ms` when a
    /// retry-after is known. This is the shape tonic sends for an error before any message.
    pub fn to_grpc_response<B: Default>(&self) -> Response<B> {
        let mut response = grpc_status_response(GRPC_RESOURCE_EXHAUSTED, "service%20overloaded");
        if let Some(after) = self.retry_after {
            let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            response
                .headers_mut()
                .insert("grpc-retry-pushback-ms", HeaderValue::from(millis));
        }
        response
    }
}

/// A gRPC "trailers-only" response: HTTP 200, `content-type: application/grpc`,
/// `grpc-status: <code>` and `grpc-message: <message>` in the headers and an empty body.
/// This is the shape a server (tonic included) sends for an error before any message.
/// `message` must already be percent-encoded, as the gRPC spec requires.
pub fn grpc_status_response<B: Default>(code: u16, message: &'static str) -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    response
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(after) => write!(f, "service overloaded; retry after {after:?}"),
            None => f.write_str("service overloaded"),
        }
    }
}

impl Error for Overloaded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_response_rounds_retry_after_up() {
        let res: Response<()> =
            Overloaded::with_retry_after(Duration::from_millis(1_200)).to_http_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");

        let res: Response<()> = Overloaded::new().to_http_response();
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn grpc_response_is_trailers_only_resource_exhausted() {
        let res: Response<()> =
            Overloaded::with_retry_after(Duration::from_millis(250)).to_grpc_response();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "8");
        assert_eq!(res.headers()["grpc-retry-pushback-ms"], "250");
    }

    #[test]
    fn is_downcastable_through_box_error() {
        let err: BoxError = Overloaded::with_retry_after(Duration::from_secs(1)).into();
        let back = err
            .downcast_ref::<Overloaded>()
            .map(Overloaded::retry_after);
        assert_eq!(back, Some(Some(Duration::from_secs(1))));
        assert_eq!(err.to_string(), "service overloaded; retry after 1s");
    }
}
