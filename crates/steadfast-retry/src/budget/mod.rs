//! Retry budgets: how many retries a client may send, across all of its requests.
//!
//! A retry layer asks its budget before every retry ([`RetryBudget::try_retry`]); when the
//! budget says no, the last failure is returned to the caller at once. One budget is shared
//! by every clone of a layer and every service it made, through an
//! `Arc<dyn RetryBudget>`, so the limit applies to the whole client, not to one request.
//!
//! # Why budgets and not max retries?
//!
//! A per-request limit ("at most 3 attempts") bounds how long one request may take, but not
//! how much extra load retries add. When a dependency is down every request fails, every
//! request is retried, and a client with 3 attempts sends **3×** its normal traffic to the
//! service that is already failing, exactly when it can least afford it. Clients in front of
//! clients multiply: three layers of 3 attempts each send 27× the load. This is a *retry
//! storm*, and it is how a short outage becomes a long one.
//!
//! A budget caps the extra load instead: retries may add at most a fixed *ratio* of the
//! normal traffic (20 % by default for [`TpsBudget`]), or retries stop altogether once too
//! many attempts fail ([`GrpcThrottle`], [`AwsRetryQuota`]). Occasional failures are still
//! retried as before; a storm is cut off after a bounded number of extra attempts. Keep a
//! max-attempts limit as well: the budget bounds the load, the attempt limit bounds latency.
//!
//! # The budgets
//!
//! |  | [`TpsBudget`] | [`GrpcThrottle`] | [`AwsRetryQuota`] |
//! |---|---|---|---|
//! | Origin | Finagle `RetryBudget`, Linkerd, tower | gRPC `retryThrottling` (gRFC A6) | AWS SDK standard retry mode |
//! | Earns | `retry_ratio` of a retry per request sent | `token_ratio` per successful attempt | +1 per success without a retry; a retry's cost back when it succeeds |
//! | Spends | 1 retry per retry | 1 token per retryable failure | 5 per retry, 10 per retried timeout |
//! | A retry is allowed while | at least one whole retry is available | tokens > `max_tokens / 2` | tokens ≥ the retry's cost |
//! | Forgets | deposits and withdrawals after `ttl` | never | never |
//! | Floor | `min_retries_per_sec` always available | none | none |
//! | Defaults | ttl 10 s, 10/s, ratio 0.2 | 10 tokens, ratio 0.1 (A6's example) | capacity 500 |
//! | In a total outage | per `ttl`: `retry_ratio` × requests + `min_retries_per_sec` × `ttl` retries | stops after `max_tokens / 2` failures | stops after 100 retries (50 timeouts) |
//!
//! [`TpsBudget`] is the one to choose when unsure: its cost scales with the traffic and it
//! recovers on its own after `ttl`. [`GrpcThrottle`] and [`AwsRetryQuota`] reproduce what
//! gRPC and AWS clients do, for services that expect their clients to behave that way.
//! [`NoBudget`] allows every retry; see its warning.
//!
//! # Sharing
//!
//! A budget is shared by putting it in an [`Arc`](std::sync::Arc): every clone of the `Arc`
//! sees the same counters, so retries by one clone use up the budget for all of them. Give
//! each downstream service (host, gRPC server name, AWS retry partition) its own budget, and
//! share it between every client of that service.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use steadfast_retry::budget::{InvalidBudget, RetryBudget, RetryCause, TpsBudget};
//!
//! // Retries may add 50 % to the traffic of the last 10 s, with no reserve.
//! let budget: Arc<dyn RetryBudget> = Arc::new(TpsBudget::new(Duration::from_secs(10), 0, 0.5)?);
//! let clone = Arc::clone(&budget);
//!
//! // Four requests through one clone earn two retries, for everyone.
//! for _ in 0..4 {
//!     budget.on_request();
//! }
//! assert!(clone.try_retry(RetryCause::Failure).is_some());
//! assert!(budget.try_retry(RetryCause::Timeout).is_some());
//! assert!(clone.try_retry(RetryCause::Failure).is_none()); // exhausted: fail fast
//! # Ok::<(), InvalidBudget>(())
//! ```

use std::fmt;

mod aws;
mod grpc;
mod tps;

pub use self::aws::AwsRetryQuota;
pub use self::grpc::GrpcThrottle;
pub use self::tps::TpsBudget;

/// Why a retry is wanted; some budgets charge differently.
///
/// Only [`AwsRetryQuota`] looks at it: a [`Timeout`](RetryCause::Timeout) costs twice as
/// much as other retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryCause {
    /// The attempt failed with an error or response the classifier calls retryable
    /// (a connection error, `503`, gRPC `UNAVAILABLE`).
    Failure,
    /// The attempt timed out, or failed with a transient transport error (the AWS SDKs'
    /// `TransientError`).
    Timeout,
    /// The server said it is overloaded or throttling (`429`, gRPC `RESOURCE_EXHAUSTED`,
    /// AWS throttling errors).
    Overload,
}

/// What a granted retry cost, handed back on success (AWS refunds it).
///
/// Returned by [`RetryBudget::try_retry`]. The retry layer keeps the permit of the retry in
/// flight and passes it to [`RetryBudget::on_success`] if that retry succeeds; if it fails,
/// the permit is dropped and its cost is spent for good.
///
/// The cost is in the budget's own units: tokens for [`AwsRetryQuota`], one retry for
/// [`TpsBudget`], and zero for budgets that do not charge at retry time ([`GrpcThrottle`],
/// [`NoBudget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPermit {
    cost: u32,
}

impl RetryPermit {
    /// A permit for a retry that cost `cost` units; for implementations of
    /// [`RetryBudget`].
    pub const fn new(cost: u32) -> Self {
        Self { cost }
    }

    /// What the retry cost, in the budget's units.
    pub const fn cost(&self) -> u32 {
        self.cost
    }
}

/// A budget of retries, shared by every request of a client.
///
/// Methods take `&self` and never block: implementations use atomics or a short lock. A
/// retry layer calls them in this order for each request:
///
/// 1. [`on_request`](Self::on_request), once, before the first attempt.
/// 2. After each attempt:
///    - on success, [`on_success`](Self::on_success) with the permit of the retry that
///      produced it (`None` for the first attempt);
///    - on a failure the classifier calls retryable, [`on_failure`](Self::on_failure)
///      **first**, even when no retry will follow (attempts exhausted, body not
///      replayable), and then, if the layer would retry, [`try_retry`](Self::try_retry):
///      `None` means the budget is exhausted and the failure is returned as it is;
///    - on any other failure, nothing: failures the classifier does not retry (`400`,
///      gRPC `INVALID_ARGUMENT`) say nothing about the server's health.
///
/// The order matters for [`GrpcThrottle`], whose `try_retry` looks at the token count
/// *after* the failure was recorded, as gRPC does.
pub trait RetryBudget: Send + Sync + fmt::Debug {
    /// A request's first attempt is about to be sent (Finagle deposits here).
    fn on_request(&self);

    /// May this request be retried now? `Some(permit)` = yes (tokens taken); `None` =
    /// budget exhausted. Never blocks.
    #[must_use = "a granted permit has already been paid for; keep it for on_success"]
    fn try_retry(&self, cause: RetryCause) -> Option<RetryPermit>;

    /// An attempt succeeded; `permit` is the permit of the retry that produced it (`None`
    /// for a first attempt).
    fn on_success(&self, permit: Option<RetryPermit>);

    /// An attempt failed in a way the classifier calls retryable (gRPC takes a token here).
    fn on_failure(&self);
}

/// A budget that allows every retry; the number of attempts is then the only limit.
///
/// **Dangerous:** during an outage every request is retried up to the attempt limit, so a
/// client with 3 attempts sends 3× its normal load to a service that is already failing
/// (see [Why budgets and not max retries?](crate::budget#why-budgets-and-not-max-retries)). Use it
/// only for tests, or when something else (a rate limit, a circuit breaker, a caller that
/// sends little) already bounds the load.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBudget;

impl RetryBudget for NoBudget {
    fn on_request(&self) {}

    fn try_retry(&self, _cause: RetryCause) -> Option<RetryPermit> {
        Some(RetryPermit::new(0))
    }

    fn on_success(&self, _permit: Option<RetryPermit>) {}

    fn on_failure(&self) {}
}

/// A budget's parameters are out of range; returned by the budgets' `new` constructors.
///
/// Its `Display` says which parameter and which range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidBudget {
    reason: &'static str,
}

impl InvalidBudget {
    pub(crate) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

impl fmt::Display for InvalidBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid retry budget: {}", self.reason)
    }
}

impl std::error::Error for InvalidBudget {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_budget_always_allows() {
        let b = NoBudget;
        for _ in 0..10_000 {
            b.on_failure();
            assert_eq!(b.try_retry(RetryCause::Overload), Some(RetryPermit::new(0)));
        }
    }

    #[test]
    fn invalid_budget_displays_its_reason() {
        let e = InvalidBudget::new("x must be positive");
        assert_eq!(e.to_string(), "invalid retry budget: x must be positive");
    }
}
