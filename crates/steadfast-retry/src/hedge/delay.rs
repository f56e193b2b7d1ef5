//! How long to wait before each hedge.

use std::time::Duration;

/// The default percentile of [`HedgeDelay::default`]: p95, Dean and Barroso's suggestion.
pub const DEFAULT_PERCENTILE: f64 = 0.95;

/// The default `min_samples` of [`HedgeDelay::default`]: 100, so the p95 rests on at least
/// five samples above it.
pub const DEFAULT_MIN_SAMPLES: u32 = 100;

/// The default `fallback` of [`HedgeDelay::default`]: 50 ms.
pub const DEFAULT_FALLBACK: Duration = Duration::from_millis(50);

/// How long the first attempt may run before a hedge is sent (and each hedge before the
/// next one).
///
/// The delay of a request is decided when it is called and used for each of its hedges:
/// the first hedge is due one delay after the call, and each later one a delay after the
/// previous hedge was sent. A retryable failure sends the next hedge at once instead; the
/// budget, a server hint or the inner service's readiness can hold one back.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// A fixed delay.
    ///
    /// `Duration::ZERO` sends every attempt at once (gRPC's `hedgingDelay` of 0 and Polly's
    /// parallel mode): `max_attempts` copies of every request, limited only by the budget.
    /// `Duration::MAX` never hedges on time: a new attempt is sent only when one fails
    /// retryably (Polly's fallback mode).
    Fixed(Duration),
    /// A percentile of recent latencies, learned by the layer.
    ///
    /// The layer keeps one sample per request: how long its first attempt took to succeed
    /// or, when a hedge answered first, how long the first attempt had been running then (a
    /// lower bound of its latency). This is the latency the delay is compared with. Keeping
    /// only the latencies of winners instead would drop exactly the slow first attempts that
    /// were hedged, so the estimate would drift down and hedge more than intended. Failed
    /// attempts are not sampled: a fast error says nothing about how long an answer takes.
    ///
    /// Samples are kept in a rolling histogram covering the last one to two
    /// [latency windows](super::HedgeLayerBuilder::latency_window), in log-linear buckets
    /// (exact to the microsecond below 32 µs, then 32 per power of two, up to about 67 s):
    /// the learned delay is never below the true sample percentile and at most 1/32
    /// (3.125 %) above it. One histogram is shared by every service the layer made.
    Percentile {
        /// The percentile as a fraction in (0, 1], e.g. `0.95` for p95.
        percentile: f64,
        /// How many samples the window must hold before the percentile is used (0 counts
        /// as 1).
        min_samples: u32,
        /// The delay while the window holds fewer than `min_samples` samples: after the
        /// layer is built, and again after a quiet spell of two latency windows.
        fallback: Duration,
    },
}

impl Default for HedgeDelay {
    /// The 95th percentile of the last 10–20 s, after 100 samples; 50 ms until then.
    ///
    /// A fixed delay has to be tuned per service and goes stale when the service's latency
    /// changes; a learned p95 follows it, and hedging at the p95 sends about 5 % extra
    /// requests on a steady latency distribution (the trade-off Dean and Barroso
    /// describe). The 50 ms fallback only applies while too few samples are known: it is
    /// short enough to help user-facing reads, long enough not to hedge most calls of a
    /// healthy in-datacenter service, and the budget bounds the extra load either way. Set
    /// it to the service's known p95 if you have one.
    fn default() -> Self {
        Self::Percentile {
            percentile: DEFAULT_PERCENTILE,
            min_samples: DEFAULT_MIN_SAMPLES,
            fallback: DEFAULT_FALLBACK,
        }
    }
}
