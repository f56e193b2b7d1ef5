//! gRPC retry throttling (gRFC A6 `retryThrottling`).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{InvalidBudget, RetryBudget, RetryCause, RetryPermit};

/// Tokens are counted in thousandths, like gRPC's C core (`milli_tokens`).
const MILLI: u32 = 1000;
/// A6: `maxTokens` must be in `(0, 1000]`.
const MAX_MAX_TOKENS: u32 = 1000;

/// gRPC's retry throttling (gRFC A6 `retryThrottling`): retries stop while more than about
/// `token_ratio` of the attempts fail, and resume once enough succeed.
///
/// The token count starts at `max_tokens` and stays within `0 ..= max_tokens`:
///
/// - each attempt that fails retryably takes one token ([`on_failure`](RetryBudget::on_failure));
/// - each successful attempt adds `token_ratio` ([`on_success`](RetryBudget::on_success));
/// - a retry is allowed only while the count is **strictly greater** than `max_tokens / 2`.
///   [`try_retry`](RetryBudget::try_retry) does not take a token itself (its permit costs
///   0): the failure that led to the retry already did, so call `on_failure` first.
///
/// Every attempt counts, first attempts and retries alike, and the [`RetryCause`] is
/// ignored. Throttling stops retries after `max_tokens / 2` failures in a row, and a
/// steady state allows retries while failures stay below about `token_ratio / (1 +
/// token_ratio)` of the attempts (9 % with a ratio of 0.1). A6 applies one throttle per
/// server name, across all its methods: share one `GrpcThrottle` the same way.
///
/// Counts are integers in thousandths of a token, so there is no floating-point drift: ten
/// successes with a ratio of 0.1 add exactly one token. `token_ratio` is rounded to three
/// decimals, the precision A6 supports.
///
/// # Example
///
/// ```
/// use steadfast_retry::budget::{GrpcThrottle, RetryBudget, RetryCause};
///
/// let throttle = GrpcThrottle::new(10, 0.1).unwrap(); // A6's example
/// for _ in 0..5 {
///     throttle.on_failure();
/// }
/// // 5 tokens left: not more than 10 / 2.
/// assert!(throttle.try_retry(RetryCause::Failure).is_none());
/// throttle.on_success(None); // 5.1 > 5
/// assert!(throttle.try_retry(RetryCause::Failure).is_some());
/// ```
pub struct GrpcThrottle {
    max_milli_tokens: u32,
    milli_token_ratio: u32,
    milli_tokens: AtomicU32,
}

impl GrpcThrottle {
    /// A throttle with `max_tokens` tokens that adds `token_ratio` per success.
    ///
    /// `token_ratio` is rounded to three decimals (A6: "Up to 3 decimal places are
    /// supported"; gRPC's C core truncates the digits after the third of the JSON text,
    /// which is the same for any ratio written with at most three decimals).
    ///
    /// # Errors
    ///
    /// [`InvalidBudget`] if `max_tokens` is not within 1 ..= 1000, or `token_ratio`
    /// rounded to three decimals is not greater than 0 (or is not finite).
    pub fn new(max_tokens: u32, token_ratio: f64) -> Result<Self, InvalidBudget> {
        if !(1..=MAX_MAX_TOKENS).contains(&max_tokens) {
            return Err(InvalidBudget::new(
                "GrpcThrottle max_tokens must be between 1 and 1000",
            ));
        }
        let milli_ratio = (token_ratio * f64::from(MILLI)).round();
        if !token_ratio.is_finite() || milli_ratio < 1.0 {
            return Err(InvalidBudget::new(
                "GrpcThrottle token_ratio must be at least 0.001 (three decimals) and finite",
            ));
        }
        let max_milli_tokens = max_tokens * MILLI;
        Ok(Self {
            max_milli_tokens,
            // Saturating conversion: any ratio above max_tokens refills fully anyway.
            milli_token_ratio: milli_ratio as u32,
            milli_tokens: AtomicU32::new(max_milli_tokens),
        })
    }

    /// The most tokens the throttle holds, and where it starts.
    pub fn max_tokens(&self) -> u32 {
        self.max_milli_tokens / MILLI
    }

    /// What a success adds, as rounded to three decimals.
    pub fn token_ratio(&self) -> f64 {
        f64::from(self.milli_token_ratio) / f64::from(MILLI)
    }

    /// The current token count, in thousandths of a token (exact).
    pub fn milli_tokens(&self) -> u32 {
        self.milli_tokens.load(Ordering::Relaxed)
    }

    /// The current token count (`milli_tokens / 1000`).
    pub fn token_count(&self) -> f64 {
        f64::from(self.milli_tokens()) / f64::from(MILLI)
    }

    /// Whether `milli_tokens` is above the threshold `max_tokens / 2` (exact: `max_milli_tokens`
    /// is a multiple of 1000, so it is even).
    fn above_threshold(&self, milli_tokens: u32) -> bool {
        milli_tokens > self.max_milli_tokens / 2
    }

    /// Applies `f` to the count atomically.
    fn update(&self, f: impl Fn(u32) -> u32) {
        // Relaxed is enough: the count is one variable that publishes nothing else, and
        // every update is a read-modify-write, so none is lost.
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(f(t)));
    }
}

impl Default for GrpcThrottle {
    /// gRPC has no default (throttling is off unless the service config sets it); this is
    /// the example of gRFC A6 ("Throttling Configuration"): `max_tokens` 10, `token_ratio`
    /// 0.1.
    fn default() -> Self {
        Self::new(10, 0.1).expect("the defaults are valid")
    }
}

impl fmt::Debug for GrpcThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcThrottle")
            .field("max_tokens", &self.max_tokens())
            .field("token_ratio", &self.token_ratio())
            .field("token_count", &self.token_count())
            .finish()
    }
}

impl RetryBudget for GrpcThrottle {
    fn on_request(&self) {}

    fn try_retry(&self, _cause: RetryCause) -> Option<RetryPermit> {
        self.above_threshold(self.milli_tokens())
            .then_some(RetryPermit::new(0))
    }

    fn on_success(&self, _permit: Option<RetryPermit>) {
        let (ratio, max) = (self.milli_token_ratio, self.max_milli_tokens);
        self.update(|t| t.saturating_add(ratio).min(max));
    }

    fn on_failure(&self) {
        self.update(|t| t.saturating_sub(MILLI));
    }
}
