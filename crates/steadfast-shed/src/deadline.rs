//! Propagated deadlines: the `grpc-timeout` header, the `x-request-timeout` header, the
//! [`Deadline`] extension, and how the [`ShedLayer`](crate::ShedLayer) reads them.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use http::HeaderName;
use tokio::time::Instant;

/// The gRPC deadline header, `grpc-timeout`: 1 to 8 ASCII digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), as in the gRPC over HTTP/2 spec.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The HTTP deadline header this crate reads, `x-request-timeout`: the time the caller
/// still allows, in whole milliseconds, 1 to 12 ASCII digits (`250` is 250 ms). Envoy's
/// `x-envoy-expected-rq-timeout-ms` has the same format.
pub const REQUEST_TIMEOUT: HeaderName = HeaderName::from_static("x-request-timeout");

/// A request's deadline as a request extension: the instant (on tokio's clock) after which
/// its caller no longer wants the answer.
///
/// Insert it in an earlier layer (or in the client of an in-process service);
/// [`HttpDeadline`] prefers it to the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline `timeout` from now (about 30 years from now at most: a longer timeout
    /// saturates instead of overflowing).
    pub fn after(timeout: Duration) -> Self {
        Self(crate::codel::saturating_add(Instant::now(), timeout))
    }

    /// The instant.
    pub const fn instant(self) -> Instant {
        self.0
    }
}

/// A malformed timeout header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTimeout {
    kind: InvalidTimeoutKind,
}

/// What is wrong with a timeout header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTimeoutKind {
    /// No digits.
    Empty,
    /// More digits than the format allows (8 for `grpc-timeout`, 12 for
    /// `x-request-timeout`).
    TooLong,
    /// A byte that is not an ASCII digit where one was expected.
    NotADigit,
    /// A `grpc-timeout` value without a valid unit (`H`, `M`, `S`, `m`, `u`, `n`).
    InvalidUnit,
}

impl InvalidTimeout {
    const fn new(kind: InvalidTimeoutKind) -> Self {
        Self { kind }
    }

    /// What is wrong.
    pub const fn kind(&self) -> InvalidTimeoutKind {
        self.kind
    }
}

impl fmt::Display for InvalidTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            InvalidTimeoutKind::Empty => "invalid timeout: no digits",
            InvalidTimeoutKind::TooLong => "invalid timeout: too many digits",
            InvalidTimeoutKind::NotADigit => "invalid timeout: not a decimal number",
            InvalidTimeoutKind::InvalidUnit => {
                "invalid timeout: the unit must be one of H, M, S, m, u, n"
            }
        })
    }
}

impl Error for InvalidTimeout {}

/// Parses up to `max` ASCII digits.
fn digits(value: &[u8], max: usize) -> Result<u64, InvalidTimeout> {
    if value.is_empty() {
        return Err(InvalidTimeout::new(InvalidTimeoutKind::Empty));
    }
    if value.len() > max {
        return Err(InvalidTimeout::new(InvalidTimeoutKind::TooLong));
    }
    value.iter().try_fold(0_u64, |acc, &b| {
        if b.is_ascii_digit() {
            // At most 12 digits: no overflow.
            Ok(acc * 10 + u64::from(b - b'0'))
        } else {
            Err(InvalidTimeout::new(InvalidTimeoutKind::NotADigit))
        }
    })
}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits then one unit, `H` (hours), `M`
/// (minutes), `S` (seconds), `m` (milliseconds), `u` (microseconds) or `n` (nanoseconds).
///
/// The spec asks for a positive number; `0` is accepted too and means the deadline has
/// passed. No sign, space or other character is allowed.
///
/// ```
/// use std::time::Duration;
/// use steadfast_shed::deadline::parse_grpc_timeout;
///
/// assert_eq!(parse_grpc_timeout(b"250m"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout(b"3S"), Ok(Duration::from_secs(3)));
/// assert!(parse_grpc_timeout(b"123456789n").is_err()); // 9 digits
/// assert!(parse_grpc_timeout(b"10").is_err()); // no unit
/// ```
pub fn parse_grpc_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    let Some((&unit, number)) = value.split_last() else {
        return Err(InvalidTimeout::new(InvalidTimeoutKind::Empty));
    };
    let to_duration: fn(u64) -> Duration = match unit {
        b'H' => |n| Duration::from_secs(n * 3600),
        b'M' => |n| Duration::from_secs(n * 60),
        b'S' => Duration::from_secs,
        b'm' => Duration::from_millis,
        b'u' => Duration::from_micros,
        b'n' => Duration::from_nanos,
        _ => return Err(InvalidTimeout::new(InvalidTimeoutKind::InvalidUnit)),
    };
    // At most 8 digits: 99,999,999 hours fits in a u64 of seconds.
    digits(number, 8).map(to_duration)
}

/// Formats `timeout` as a `grpc-timeout` value: the finest unit (of `n`, `u`, `m`, `S`,
/// `M`, `H`) whose count fits in 8 digits, rounding up so that the deadline sent is never
/// shorter than `timeout`. Timeouts beyond 99,999,999 hours are capped there.
///
/// ```
/// use std::time::Duration;
/// use steadfast_shed::deadline::{format_grpc_timeout, parse_grpc_timeout};
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(30)), "30000000u");
/// let back = parse_grpc_timeout(format_grpc_timeout(Duration::from_secs(30)).as_bytes());
/// assert_eq!(back, Ok(Duration::from_secs(30)));
/// ```
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in units {
        let count = nanos.div_ceil(per);
        if count <= MAX {
            return format!("{count}{unit}");
        }
    }
    format!("{MAX}H")
}

/// Parses an `x-request-timeout` value: 1 to 12 ASCII digits, in milliseconds.
///
/// ```
/// use std::time::Duration;
/// use steadfast_shed::deadline::parse_timeout_ms;
///
/// assert_eq!(parse_timeout_ms(b"1500"), Ok(Duration::from_millis(1500)));
/// assert!(parse_timeout_ms(b"1.5").is_err());
/// assert!(parse_timeout_ms(b"").is_err());
/// ```
pub fn parse_timeout_ms(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    digits(value, 12).map(Duration::from_millis)
}

/// Tells the [`ShedLayer`](crate::ShedLayer) a request's deadline.
///
/// Implemented by:
///
/// - [`NoDeadline`] (the layer's default): requests have none;
/// - [`HttpDeadline`]: the [`Deadline`] extension, else `grpc-timeout`, else
///   `x-request-timeout`;
/// - any `Fn(&Req, Instant) -> Option<Instant>` closure, given the request and the time it
///   reached the layer (for `steadfast_sim::SimRequest`: `|r: &SimRequest, _| Some(r.deadline)`).
pub trait DeadlineOf<Req> {
    /// The instant after which `request`'s caller no longer wants the answer, if known;
    /// `now` is when the request reached the layer (relative timeouts count from it).
    fn deadline_of(&self, request: &Req, now: Instant) -> Option<Instant>;
}

impl<F, Req> DeadlineOf<Req> for F
where
    F: Fn(&Req, Instant) -> Option<Instant>,
{
    #[inline]
    fn deadline_of(&self, request: &Req, now: Instant) -> Option<Instant> {
        self(request, now)
    }
}

/// Requests have no deadline: only queueing-delay rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoDeadline;

impl<Req> DeadlineOf<Req> for NoDeadline {
    #[inline]
    fn deadline_of(&self, _: &Req, _: Instant) -> Option<Instant> {
        None
    }
}

/// The deadline of an `http::Request`: its [`Deadline`] extension if it has one, else
/// the earlier of [`GRPC_TIMEOUT`] and [`REQUEST_TIMEOUT`] counted from the moment the
/// request reached the layer.
///
/// A malformed header is ignored (as if absent; logged at `debug` level, target
/// `steadfast_shed`): a bad header never fails a request by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpDeadline;

impl<B> DeadlineOf<http::Request<B>> for HttpDeadline {
    fn deadline_of(&self, request: &http::Request<B>, now: Instant) -> Option<Instant> {
        if let Some(deadline) = request.extensions().get::<Deadline>() {
            return Some(deadline.0);
        }
        let headers = request.headers();
        let grpc = headers.get(GRPC_TIMEOUT).and_then(|v| {
            parse_grpc_timeout(v.as_bytes())
                .inspect_err(|e| tracing::debug!(target: "steadfast_shed", error = %e, "ignoring grpc-timeout"))
                .ok()
        });
        let http = headers.get(REQUEST_TIMEOUT).and_then(|v| {
            parse_timeout_ms(v.as_bytes())
                .inspect_err(|e| tracing::debug!(target: "steadfast_shed", error = %e, "ignoring x-request-timeout"))
                .ok()
        });
        let timeout = match (grpc, http) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        // A timeout too large to add is no deadline at all.
        now.checked_add(timeout)
    }
}
