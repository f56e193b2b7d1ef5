//! [`HedgeLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::classify::HttpClassifier;
use tower_layer::Layer;

use super::delay::HedgeDelay;
use super::error::InvalidHedgeConfig;
use super::histogram::LatencyHistogram;
use super::service::Hedge;
use super::stats::HedgeStats;
use crate::budget::{RetryBudget, TpsBudget};

/// The default number of attempts, the first included: 2, one hedge (Polly's default
/// `MaxHedgedAttempts` of 1). A second copy is where most of the tail is cut; each further
/// one adds a full request of load.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;

/// The largest `max_attempts` accepted: 10. gRPC caps hedging at 5 attempts and Polly at 10
/// hedges (11 attempts); past a handful, more copies add load rather than cut latency.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;

/// The default latency window of [`HedgeDelay::Percentile`]: 10 s, so the percentile
/// follows the last 10 to 20 s (the window of the default [`TpsBudget`]).
pub const DEFAULT_LATENCY_WINDOW: Duration = Duration::from_secs(10);

const MIN_LATENCY_WINDOW: Duration = Duration::from_secs(1);
const MAX_LATENCY_WINDOW: Duration = Duration::from_secs(3600);

/// Everything a hedge layer's services and futures share.
pub(super) struct Config<C> {
    pub(super) classifier: C,
    pub(super) delay: HedgeDelay,
    pub(super) max_attempts: u32,
    pub(super) budget: Arc<dyn RetryBudget>,
    /// Only for [`HedgeDelay::Percentile`].
    pub(super) histogram: Option<LatencyHistogram>,
    pub(super) stats: Arc<HedgeStats>,
    pub(super) name: Arc<str>,
}

impl<C> Config<C> {
    /// The delay of a request called now.
    pub(super) fn current_delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed(delay) => delay,
            HedgeDelay::Percentile {
                percentile,
                min_samples,
                fallback,
            } => self
                .histogram
                .as_ref()
                .and_then(|h| h.quantile(percentile, min_samples))
                .unwrap_or(fallback),
        }
    }
}

/// A tower layer that hedges requests: when the first attempt has not answered after a
/// delay, it sends a copy of the request and takes whichever answers first. Build one with
/// [`HedgeLayer::builder`] or [`HedgeLayer::http`], then [`HedgeLayerBuilder::build`].
///
/// See the [module docs](super) for when to hedge, how a call runs and the defaults.
///
/// # Clone
///
/// Clones share the budget, the latency histogram and the [`HedgeStats`]: every service
/// made from the layer learns one delay and draws on one budget.
pub struct HedgeLayer<C> {
    config: Arc<Config<C>>,
}

impl<C> Clone for HedgeLayer<C> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<C> fmt::Debug for HedgeLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("name", &self.config.name)
            .field("max_attempts", &self.config.max_attempts)
            .field("delay", &self.config.delay)
            .field("histogram", &self.config.histogram)
            .field("budget", &self.config.budget)
            .finish_non_exhaustive()
    }
}

impl<C> HedgeLayer<C> {
    /// A builder for any request type that is `Clone`, classified by `classifier` (for
    /// example [`ErrorsAsFailures`](steadfast_core::classify::ErrorsAsFailures) or a
    /// closure). An answer is accepted when its outcome is
    /// [`Success`](steadfast_core::classify::Outcome::Success).
    pub fn builder(classifier: C) -> HedgeLayerBuilder<C> {
        HedgeLayerBuilder::new(classifier)
    }

    /// The counters of what this layer's services did.
    pub fn stats(&self) -> Arc<HedgeStats> {
        self.config.stats.clone()
    }

    /// The delay a request called now would wait before its first hedge: the fixed delay,
    /// or the learned percentile (the fallback until enough samples are known).
    pub fn current_delay(&self) -> Duration {
        self.config.current_delay()
    }
}

impl HedgeLayer<HttpClassifier> {
    /// A builder for `http::Request<B>` services with `B: Clone` (such as
    /// `http_body_util::Full<Bytes>` or `()`), classified by [`HttpClassifier`]: `502`,
    /// `503`, `504`, `408`, `429` and connection errors are retryable (the next hedge is
    /// sent at once), other `5xx` are returned at once, everything else is accepted.
    ///
    /// Every request is hedged: put the layer only in front of idempotent reads.
    pub fn http() -> HedgeLayerBuilder<HttpClassifier> {
        HedgeLayerBuilder::new(HttpClassifier::new())
    }
}

impl<S, C> Layer<S> for HedgeLayer<C> {
    type Service = Hedge<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new(inner, self.config.clone())
    }
}

/// Configures a [`HedgeLayer`]; every setting has a documented default.
pub struct HedgeLayerBuilder<C> {
    classifier: C,
    delay: HedgeDelay,
    max_attempts: u32,
    budget: Option<Arc<dyn RetryBudget>>,
    latency_window: Duration,
    name: Arc<str>,
}

impl<C> fmt::Debug for HedgeLayerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayerBuilder")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts)
            .field("delay", &self.delay)
            .field("latency_window", &self.latency_window)
            .finish_non_exhaustive()
    }
}

impl<C> HedgeLayerBuilder<C> {
    fn new(classifier: C) -> Self {
        Self {
            classifier,
            delay: HedgeDelay::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            budget: None,
            latency_window: DEFAULT_LATENCY_WINDOW,
            name: Arc::from("default"),
        }
    }

    /// How long to wait before each hedge (default [`HedgeDelay::default`]: the p95 of
    /// recent latencies, 50 ms until 100 are known).
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// Attempts in all, the first included (default [`DEFAULT_MAX_ATTEMPTS`], 2: one
    /// hedge). Must be between 1 (hedging off) and [`MAX_ATTEMPTS_LIMIT`] (10).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The budget hedges draw on, shared by every service of the layer (default
    /// [`TpsBudget::default`]: hedges may add 20 % to the requests of the last 10 s, plus
    /// 10 per second). Pass the `Arc` given to a
    /// [`RetryLayerBuilder::budget`](crate::RetryLayerBuilder::budget) to make retries and
    /// hedges share one budget.
    pub fn budget(mut self, budget: Arc<dyn RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The length of each window of the latency histogram of [`HedgeDelay::Percentile`]
    /// (default [`DEFAULT_LATENCY_WINDOW`], 10 s): the percentile is read over the last
    /// one to two windows. Between 1 s and 1 h. Unused with [`HedgeDelay::Fixed`].
    pub fn latency_window(mut self, window: Duration) -> Self {
        self.latency_window = window;
        self
    }

    /// The name of this layer in traces and metrics labels (default `"default"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Replaces the classifier: which answers are accepted, and which failures send the
    /// next hedge at once.
    pub fn classifier<C2>(self, classifier: C2) -> HedgeLayerBuilder<C2> {
        HedgeLayerBuilder {
            classifier,
            delay: self.delay,
            max_attempts: self.max_attempts,
            budget: self.budget,
            latency_window: self.latency_window,
            name: self.name,
        }
    }

    fn validate(&self) -> Result<(), InvalidHedgeConfig> {
        let invalid = |reason| Err(InvalidHedgeConfig::new(reason));
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return invalid("max_attempts must be between 1 and 10");
        }
        if let HedgeDelay::Percentile { percentile, .. } = self.delay {
            // False for NaN.
            if !(percentile > 0.0 && percentile <= 1.0) {
                return invalid("percentile must be a fraction in (0, 1], e.g. 0.95 for p95");
            }
            if !(MIN_LATENCY_WINDOW..=MAX_LATENCY_WINDOW).contains(&self.latency_window) {
                return invalid("latency_window must be between 1 s and 1 h");
            }
        }
        Ok(())
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`InvalidHedgeConfig`] when a setting is out of range.
    pub fn build(self) -> Result<HedgeLayer<C>, InvalidHedgeConfig> {
        self.validate()?;
        let histogram = matches!(self.delay, HedgeDelay::Percentile { .. })
            .then(|| LatencyHistogram::new(self.latency_window));
        let config = Config {
            classifier: self.classifier,
            delay: self.delay,
            max_attempts: self.max_attempts,
            budget: self
                .budget
                .unwrap_or_else(|| Arc::new(TpsBudget::default())),
            histogram,
            stats: Arc::default(),
            name: self.name,
        };
        Ok(HedgeLayer {
            config: Arc::new(config),
        })
    }
}
