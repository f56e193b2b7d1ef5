//! What a finished call means: success, failure or overload, and whether to retry it.
//!
//! Every steadfast layer that reacts to outcomes reads them through one trait, [`Classify`]:
//! the retry layer decides whether to try again, the adaptive limiter takes an RTT sample
//! from a [`Outcome::Success`] and a loss signal from an [`Outcome::Overload`], and the load
//! shedder reads both. One classifier configured once therefore means the same thing to every
//! layer of a stack.
//!
//! | classifier | for | success | failure (retryable) | overload (retryable) |
//! |---|---|---|---|---|
//! | [`HttpClassifier`] | `http::Response<B>` | 1xx-4xx except below | 502, 504, 408 (yes); other 5xx (no) | 429, 503 (yes), with `Retry-After` |
//! | [`GrpcClassifier`] | `http::Response<B>` carrying gRPC | `OK` and caller-side codes | `UNAVAILABLE` (yes); server-side codes (no) | `RESOURCE_EXHAUSTED` (only with a pushback) |
//! | [`ErrorsAsFailures`] | any response type | every `Ok` | see [`classify_error`] | see [`classify_error`] |
//!
//! "Success" means the service did its work normally, even when the answer is an
//! application-level refusal such as `404` or `NOT_FOUND`: such an answer says nothing about
//! the service's health, and retrying it cannot help.
//!
//! Errors (the `Err` side of a call) are classified by [`Classify::classify_error`], by default
//! [`classify_error`]: an [`Overloaded`] anywhere in the source chain is an overload, a
//! connection-level I/O error (refused, reset, aborted, timed out...) is a retryable failure,
//! anything else a failure that is not retried.
//!
//! Closures work as classifiers too: `|res: &MyResponse| Classification::success()`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Response, StatusCode};
//! use steadfast_core::classify::{Classify, HttpClassifier, Outcome};
//!
//! let classifier = HttpClassifier::new();
//! let res = Response::builder()
//!     .status(StatusCode::TOO_MANY_REQUESTS)
//!     .header("retry-after", "3")
//!     .body(())
//!     .unwrap();
//! let class = classifier.classify_response(&res);
//! assert_eq!(class.outcome(), Outcome::Overload);
//! assert!(class.is_retryable());
//! assert_eq!(class.retry_after(), Some(Duration::from_secs(3)));
//! ```

use std::error::Error;
use std::io;
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};

use crate::clock::{SystemClock, WallClock};
use crate::error::Overloaded;
use crate::retry_after::parse_retry_after;

/// What a finished call says about the service that answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The service did its work (the answer may still be an application-level refusal).
    Success,
    /// The service failed for a reason other than overload.
    Failure,
    /// The service refused or dropped the call because it is overloaded (HTTP 429 or 503,
    /// gRPC `RESOURCE_EXHAUSTED`, an [`Overloaded`] error). Limiters treat this as a loss
    /// signal.
    Overload,
}

/// The classification of one finished call: its [`Outcome`], whether retrying may help, and
/// how long the server asked the caller to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Classification {
    outcome: Outcome,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Classification {
    /// A success: not retryable, no hint.
    pub const fn success() -> Self {
        Self {
            outcome: Outcome::Success,
            retryable: false,
            retry_after: None,
        }
    }

    /// A failure that retrying will not fix (change with [`retryable`](Self::retryable)).
    pub const fn failure() -> Self {
        Self {
            outcome: Outcome::Failure,
            retryable: false,
            retry_after: None,
        }
    }

    /// An overload: retryable, since an overloaded service did no work
    /// (change with [`retryable`](Self::retryable)).
    pub const fn overload() -> Self {
        Self {
            outcome: Outcome::Overload,
            retryable: true,
            retry_after: None,
        }
    }

    /// Sets whether retrying may help.
    #[must_use]
    pub const fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Sets the server's hint of how long to wait before retrying.
    #[must_use]
    pub const fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The outcome.
    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether retrying the call may succeed.
    pub const fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// How long the server asked the caller to wait before retrying, if it said.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// Classifies the result of a call to a service whose responses are `Res`.
///
/// Implementations are cheap to clone and hold no per-call state; layers clone them freely.
pub trait Classify<Res> {
    /// Classifies a response (the `Ok` side of a call).
    fn classify_response(&self, response: &Res) -> Classification;

    /// Classifies an error (the `Err` side of a call). Layers convert the inner service's
    /// error into a [`BoxError`](crate::error::BoxError) first, so downcasting works.
    ///
    /// The default is [`classify_error`].
    fn classify_error(&self, error: &(dyn Error + 'static)) -> Classification {
        classify_error(error)
    }
}

impl<Res, F> Classify<Res> for F
where
    F: Fn(&Res) -> Classification,
{
    fn classify_response(&self, response: &Res) -> Classification {
        self(response)
    }
}

/// The default classification of an error, used by every built-in classifier.
///
/// Walks the error's [`source`](Error::source) chain:
/// - an [`Overloaded`] is an overload (retryable) carrying its retry-after;
/// - an [`io::Error`] of kind `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`,
///   `NotConnected`, `BrokenPipe` or `TimedOut` is a retryable failure: the request most
///   likely never reached the application, or (timed out) may be tried on a healthier path;
/// - anything else is a failure that is not retried.
pub fn classify_error(error: &(dyn Error + 'static)) -> Classification {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(overloaded) = err.downcast_ref::<Overloaded>() {
            return Classification::overload().with_retry_after(overloaded.retry_after());
        }
        if let Some(io) = err.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::TimedOut
            )
        {
            return Classification::failure().retryable(true);
        }
        current = err.source();
    }
    Classification::failure()
}

/// Every `Ok` is a success; errors go through [`classify_error`].
///
/// For services that are not HTTP or gRPC, where an `Ok` response cannot say anything about
/// health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorsAsFailures;

impl ErrorsAsFailures {
    /// The classifier.
    pub const fn new() -> Self {
        Self
    }
}

impl<Res> Classify<Res> for ErrorsAsFailures {
    fn classify_response(&self, _response: &Res) -> Classification {
        Classification::success()
    }
}

/// Classifies HTTP responses by status code, reading `Retry-After` on retryable ones.
///
/// | status | outcome | retryable |
/// |---|---|---|
/// | 429 Too Many Requests, 503 Service Unavailable | [`Outcome::Overload`] | yes |
/// | 502 Bad Gateway, 504 Gateway Timeout, 408 Request Timeout | [`Outcome::Failure`] | yes |
/// | any other 5xx | [`Outcome::Failure`] | no |
/// | anything else | [`Outcome::Success`] | no |
///
/// These are the statuses RFC 9110 and RFC 6585 describe as transient, the set the gRPC,
/// AWS and Envoy retry policies use. The clock `C` turns an HTTP-date `Retry-After` into a
/// delay; the default is the system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpClassifier<C = SystemClock> {
    clock: C,
}

impl HttpClassifier {
    /// A classifier that reads HTTP dates against the system clock.
    pub const fn new() -> Self {
        Self { clock: SystemClock }
    }
}

impl<C: WallClock> HttpClassifier<C> {
    /// A classifier that reads HTTP dates against `clock`.
    pub const fn with_clock(clock: C) -> Self {
        Self { clock }
    }

    /// Classifies a status code and its headers.
    pub fn classify_status(&self, status: StatusCode, headers: &HeaderMap) -> Classification {
        let class = match status.as_u16() {
            429 | 503 => Classification::overload(),
            408 | 502 | 504 => Classification::failure().retryable(true),
            500..=599 => return Classification::failure(),
            _ => return Classification::success(),
        };
        class.with_retry_after(self.retry_after(headers))
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get(http::header::RETRY_AFTER)?;
        parse_retry_after(value.as_bytes(), self.clock.now())
    }
}

impl<B, C: WallClock> Classify<Response<B>> for HttpClassifier<C> {
    fn classify_response(&self, response: &Response<B>) -> Classification {
        self.classify_status(response.status(), response.headers())
    }
}

/// gRPC status codes the classifiers distinguish (see the gRPC `statuscodes.md`).
mod grpc_code {
    pub(super) const OK: u32 = 0;
    pub(super) const CANCELLED: u32 = 1;
    pub(super) const UNKNOWN: u32 = 2;
    pub(super) const DEADLINE_EXCEEDED: u32 = 4;
    pub(super) const RESOURCE_EXHAUSTED: u32 = 8;
    pub(super) const UNIMPLEMENTED: u32 = 12;
    pub(super) const INTERNAL: u32 = 13;
    pub(super) const UNAVAILABLE: u32 = 14;
    pub(super) const DATA_LOSS: u32 = 15;
}

/// Classifies gRPC responses by `grpc-status`, reading `grpc-retry-pushback-ms`.
///
/// | `grpc-status` | outcome | retryable |
/// |---|---|---|
/// | `OK`, and the caller-side codes (`INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, `PERMISSION_DENIED`, `FAILED_PRECONDITION`, `ABORTED`, `OUT_OF_RANGE`, `UNAUTHENTICATED`) | [`Outcome::Success`] | no |
/// | `UNAVAILABLE` (14) | [`Outcome::Failure`] | yes |
/// | `RESOURCE_EXHAUSTED` (8) | [`Outcome::Overload`] | only with a non-negative pushback |
/// | `CANCELLED`, `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `DATA_LOSS`, unparsable | [`Outcome::Failure`] | no |
///
/// These are gRPC A6's rules: `UNAVAILABLE` is the one code safe to retry by default, and a
/// server-pushback header is honoured: `grpc-retry-pushback-ms: N` (N ≥ 0) asks to wait N
/// milliseconds, a negative or malformed value means "do not retry".
///
/// # Limitation: trailers
///
/// A normal gRPC response carries its status in the HTTP trailers, after the body. This
/// classifier reads headers only, which covers "trailers-only" responses: the shape servers
/// (tonic included) use for an error before any message, which is how `UNAVAILABLE` and
/// `RESOURCE_EXHAUSTED` from a load shedder arrive. A response without `grpc-status` in its
/// headers is classified by its HTTP status with [`HttpClassifier`] (so a proxy's `503`
/// counts), and a `200` without it as a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcClassifier<C = SystemClock> {
    http: HttpClassifier<C>,
}

impl GrpcClassifier {
    /// A gRPC classifier; HTTP dates (for non-gRPC error answers) use the system clock.
    pub const fn new() -> Self {
        Self {
            http: HttpClassifier::new(),
        }
    }
}

impl<C: WallClock> GrpcClassifier<C> {
    /// A gRPC classifier that reads HTTP dates against `clock`.
    pub const fn with_clock(clock: C) -> Self {
        Self {
            http: HttpClassifier::with_clock(clock),
        }
    }

    /// Classifies gRPC response headers (or trailers: the fields are the same).
    pub fn classify_headers(&self, status: StatusCode, headers: &HeaderMap) -> Classification {
        let Some(code) = headers.get("grpc-status") else {
            return self.http.classify_status(status, headers);
        };
        let code = std::str::from_utf8(code.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(grpc_code::UNKNOWN);
        let pushback = Pushback::read(headers);
        match code {
            grpc_code::OK => Classification::success(),
            grpc_code::UNAVAILABLE => pushback.apply(Classification::failure().retryable(true)),
            grpc_code::RESOURCE_EXHAUSTED => match pushback {
                Pushback::After(after) => Classification::overload().with_retry_after(Some(after)),
                Pushback::Absent | Pushback::DoNotRetry => {
                    Classification::overload().retryable(false)
                }
            },
            grpc_code::CANCELLED
            | grpc_code::UNKNOWN
            | grpc_code::DEADLINE_EXCEEDED
            | grpc_code::UNIMPLEMENTED
            | grpc_code::INTERNAL
            | grpc_code::DATA_LOSS => Classification::failure(),
            // Codes 3, 5, 6, 7, 9, 10, 11, 16: the caller's request was answered.
            3..=16 => Classification::success(),
            _ => Classification::failure(),
        }
    }
}

impl<B, C: WallClock> Classify<Response<B>> for GrpcClassifier<C> {
    fn classify_response(&self, response: &Response<B>) -> Classification {
        self.classify_headers(response.status(), response.headers())
    }
}

/// The `grpc-retry-pushback-ms` header, as gRPC A6 reads it.
enum Pushback {
    Absent,
    After(Duration),
    DoNotRetry,
}

impl Pushback {
    fn read(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get("grpc-retry-pushback-ms") else {
            return Self::Absent;
        };
        match std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
        {
            Some(ms) if ms >= 0 => Self::After(Duration::from_millis(ms.unsigned_abs())),
            // A6: "a negative value or a value that cannot be parsed means do not retry".
            _ => Self::DoNotRetry,
        }
    }

    fn apply(self, class: Classification) -> Classification {
        match self {
            Self::Absent => class,
            Self::After(after) => class.with_retry_after(Some(after)),
            Self::DoNotRetry => class.retryable(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::clock::ManualClock;

    fn http(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid test response")
    }

    #[test]
    fn http_statuses() {
        let c = HttpClassifier::new();
        let cases = [
            (200, Outcome::Success, false),
            (404, Outcome::Success, false),
            (408, Outcome::Failure, true),
            (429, Outcome::Overload, true),
            (500, Outcome::Failure, false),
            (501, Outcome::Failure, false),
            (502, Outcome::Failure, true),
            (503, Outcome::Overload, true),
            (504, Outcome::Failure, true),
        ];
        for (status, outcome, retryable) in cases {
            let class = c.classify_response(&http(status, &[]));
            assert_eq!(class.outcome(), outcome, "{status}");
            assert_eq!(class.is_retryable(), retryable, "{status}");
        }
    }

    #[test]
    fn http_retry_after_date_uses_the_injected_clock() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(784_111_777 - 5));
        let c = HttpClassifier::with_clock(clock);
        let res = http(503, &[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(
            c.classify_response(&res).retry_after(),
            Some(Duration::from_secs(5))
        );
        // A malformed hint is ignored, the status still counts.
        let res = http(503, &[("retry-after", "later")]);
        let class = c.classify_response(&res);
        assert_eq!(class.outcome(), Outcome::Overload);
        assert_eq!(class.retry_after(), None);
    }

    #[test]
    fn grpc_codes_and_pushback() {
        let c = GrpcClassifier::new();
        let class = |headers: &[(&str, &str)]| c.classify_response(&http(200, headers));

        assert_eq!(class(&[("grpc-status", "0")]), Classification::success());
        assert_eq!(class(&[("grpc-status", "5")]), Classification::success());
        assert_eq!(
            class(&[("grpc-status", "14")]),
            Classification::failure().retryable(true)
        );
        assert_eq!(
            class(&[("grpc-status", "14"), ("grpc-retry-pushback-ms", "-1")]),
            Classification::failure()
        );
        assert_eq!(
            class(&[("grpc-status", "8")]),
            Classification::overload().retryable(false)
        );
        assert_eq!(
            class(&[("grpc-status", "8"), ("grpc-retry-pushback-ms", "250")]),
            Classification::overload().with_retry_after(Some(Duration::from_millis(250)))
        );
        assert_eq!(
            class(&[("grpc-status", "8"), ("grpc-retry-pushback-ms", "soon")]),
            Classification::overload().retryable(false)
        );
        assert_eq!(class(&[("grpc-status", "13")]), Classification::failure());
        assert_eq!(class(&[("grpc-status", "x")]), Classification::failure());
        assert_eq!(class(&[("grpc-status", "99")]), Classification::failure());
        // No grpc-status: HTTP rules apply (a proxy's 503), a bare 200 is a success.
        assert_eq!(class(&[]), Classification::success());
        assert_eq!(
            c.classify_response(&http(503, &[])).outcome(),
            Outcome::Overload
        );
    }

    #[derive(Debug)]
    struct Wrapper(Box<dyn Error + 'static>);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn errors_walk_the_source_chain() {
        let overloaded = Wrapper(Box::new(Overloaded::with_retry_after(Duration::from_secs(
            2,
        ))));
        assert_eq!(
            classify_error(&overloaded),
            Classification::overload().with_retry_after(Some(Duration::from_secs(2)))
        );
        let refused = Wrapper(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(
            classify_error(&refused),
            Classification::failure().retryable(true)
        );
        let other = io::Error::other("disk on fire");
        assert_eq!(classify_error(&other), Classification::failure());
    }

    #[test]
    fn closures_and_errors_as_failures_are_classifiers() {
        let always_overload = |_: &u32| Classification::overload();
        assert_eq!(
            always_overload.classify_response(&1).outcome(),
            Outcome::Overload
        );
        assert_eq!(
            Classify::<u32>::classify_response(&ErrorsAsFailures, &1),
            Classification::success()
        );
    }
}
