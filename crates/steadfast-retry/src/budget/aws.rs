//! The AWS SDKs' retry quota (standard retry mode).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{InvalidBudget, RetryBudget, RetryCause, RetryPermit};

/// What a success without a retry adds back (smithy-rs `regenerate_a_token`).
const SUCCESS_REWARD: u32 = 1;

/// The AWS SDKs' retry quota (standard retry mode): a bucket of tokens that retries spend
/// and successes refill; an empty bucket fails fast.
///
/// - The bucket starts full, at `capacity` tokens.
/// - A retry costs `retry_cost` tokens, or `timeout_cost` if its [`RetryCause`] is
///   [`Timeout`](RetryCause::Timeout) (the SDKs' transient errors), or the overload cost
///   (by default `retry_cost`) for [`Overload`](RetryCause::Overload) (throttling errors).
///   If the bucket holds fewer tokens, [`try_retry`](RetryBudget::try_retry) returns
///   `None` and the failure is returned at once: the quota never delays.
/// - A successful retry refunds its permit's cost; any other success adds 1 token. The
///   bucket never holds more than `capacity`.
/// - Failures cost nothing by themselves, and the permit of a retry that failed is spent
///   for good.
///
/// With the defaults (500, 5, 10) a total outage stops retries after 100 retries (50 if
/// they all time out), and each success after it earns a fifth of a retry back.
///
/// The SDKs keep one quota per retry partition (usually per region, and per client): share
/// one `AwsRetryQuota` the same way.
///
/// # Example
///
/// ```
/// use steadfast_retry::budget::{AwsRetryQuota, RetryBudget, RetryCause};
///
/// let quota = AwsRetryQuota::default();
/// let permit = quota.try_retry(RetryCause::Timeout).unwrap();
/// assert_eq!(permit.cost(), 10);
/// assert_eq!(quota.available(), 490);
/// quota.on_success(Some(permit)); // the retry succeeded: refunded
/// assert_eq!(quota.available(), 500);
/// ```
pub struct AwsRetryQuota {
    capacity: u32,
    retry_cost: u32,
    timeout_cost: u32,
    overload_cost: u32,
    available: AtomicU32,
}

impl AwsRetryQuota {
    /// A full bucket of `capacity` tokens; a retry costs `retry_cost`, or `timeout_cost`
    /// after a [`Timeout`](RetryCause::Timeout). An [`Overload`](RetryCause::Overload)
    /// costs `retry_cost` (as AWS throttling errors do); change it with
    /// [`with_overload_cost`](Self::with_overload_cost).
    ///
    /// # Errors
    ///
    /// [`InvalidBudget`] if `capacity` is 0 or a cost is not within 1 ..= `capacity`.
    pub fn new(capacity: u32, retry_cost: u32, timeout_cost: u32) -> Result<Self, InvalidBudget> {
        if capacity == 0 {
            return Err(InvalidBudget::new(
                "AwsRetryQuota capacity must be at least 1",
            ));
        }
        let quota = Self {
            capacity,
            retry_cost: check_cost(retry_cost, capacity)?,
            timeout_cost: check_cost(timeout_cost, capacity)?,
            overload_cost: retry_cost,
            available: AtomicU32::new(capacity),
        };
        Ok(quota)
    }

    /// Charges `cost` for retries after an [`Overload`](RetryCause::Overload) instead of
    /// `retry_cost`.
    ///
    /// For example, the AWS SDKs' updated retry behaviour of 2026 charges 14 for
    /// non-throttling retries (timeouts included) and 5 for throttling ones:
    /// `AwsRetryQuota::new(500, 14, 14)?.with_overload_cost(5)?`.
    ///
    /// # Errors
    ///
    /// [`InvalidBudget`] if `cost` is not within 1 ..= `capacity`.
    pub fn with_overload_cost(self, cost: u32) -> Result<Self, InvalidBudget> {
        Ok(Self {
            overload_cost: check_cost(cost, self.capacity)?,
            ..self
        })
    }

    /// The most tokens the bucket holds, and where it starts.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The tokens in the bucket now.
    pub fn available(&self) -> u32 {
        self.available.load(Ordering::Relaxed)
    }

    /// What a retry for `cause` costs.
    pub fn cost(&self, cause: RetryCause) -> u32 {
        match cause {
            RetryCause::Failure => self.retry_cost,
            RetryCause::Timeout => self.timeout_cost,
            RetryCause::Overload => self.overload_cost,
        }
    }

    /// Adds `tokens`, up to `capacity`.
    fn refill(&self, tokens: u32) {
        let capacity = self.capacity;
        // Relaxed is enough: one variable, updated only by read-modify-writes.
        let _ = self
            .available
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(tokens).min(capacity))
            });
    }
}

fn check_cost(cost: u32, capacity: u32) -> Result<u32, InvalidBudget> {
    if (1..=capacity).contains(&cost) {
        Ok(cost)
    } else {
        Err(InvalidBudget::new(
            "AwsRetryQuota costs must be between 1 and the capacity",
        ))
    }
}

impl Default for AwsRetryQuota {
    /// The AWS SDKs' standard mode: capacity 500, retry cost 5, timeout cost 10
    /// (smithy-rs `aws-smithy-runtime` `client/retries/token_bucket.rs`; AWS SDKs and Tools
    /// Reference Guide, "Retry behavior").
    fn default() -> Self {
        Self::new(500, 5, 10).expect("the defaults are valid")
    }
}

impl fmt::Debug for AwsRetryQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsRetryQuota")
            .field("capacity", &self.capacity)
            .field("retry_cost", &self.retry_cost)
            .field("timeout_cost", &self.timeout_cost)
            .field("overload_cost", &self.overload_cost)
            .field("available", &self.available())
            .finish()
    }
}

impl RetryBudget for AwsRetryQuota {
    fn on_request(&self) {}

    fn try_retry(&self, cause: RetryCause) -> Option<RetryPermit> {
        let cost = self.cost(cause);
        self.available
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(cost)
            })
            .ok()
            .map(|_| RetryPermit::new(cost))
    }

    fn on_success(&self, permit: Option<RetryPermit>) {
        self.refill(permit.map_or(SUCCESS_REWARD, |p| p.cost()));
    }

    fn on_failure(&self) {}
}
