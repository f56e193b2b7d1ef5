//! [`AdaptiveConcurrencyLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::classify::ErrorsAsFailures;
use tower_layer::Layer;

use crate::algorithm::{Gradient2, LimitAlgorithm};
use crate::error::InvalidLimitConfig;
use crate::limiter::{LimitStats, Limiter};
use crate::partition::{NoPartitions, Partitions};
use crate::service::AdaptiveConcurrency;
use crate::window::WindowConfig;

/// What a service does when no permit is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// `poll_ready` stays `Pending` until a permit is free, like tower's
    /// `ConcurrencyLimit`: the caller waits. Wrap the layer in a load shedder (tower's
    /// `LoadShedLayer`) to turn waiting into immediate rejection. The default: it keeps
    /// the tower contract ("not ready" means "no capacity") and composes with any shedder.
    #[default]
    Backpressure,
    /// `poll_ready` is always ready; a `call` made without a free permit fails at once with
    /// [`Overloaded`](steadfast_core::error::Overloaded) (HTTP 503, gRPC
    /// `RESOURCE_EXHAUSTED`) without reaching the inner service, like Netflix's
    /// `SimpleLimiter` and Envoy's filter.
    ///
    /// The permit is reserved in `poll_ready` (tower's reserve-then-call rule), so the
    /// decision to refuse is taken there: a service found without a permit refuses its
    /// next call even if a permit frees up in between, unless `poll_ready` is called again.
    FailFast,
    /// Wait for a permit in a bounded queue, for a bounded time: like
    /// [`Backpressure`](Self::Backpressure) while fewer than `capacity` services wait, like
    /// [`FailFast`](Self::FailFast) beyond that or once a service has waited `timeout`
    /// (its `poll_ready` turns `Ready` and its call fails with
    /// [`Overloaded`](steadfast_core::error::Overloaded)). See [`WaitQueue`].
    Queue(WaitQueue),
}

/// A bounded wait for a permit, [`Mode::Queue`]: Netflix's `LifoBlockingLimiter` (and
/// `BlockingLimiter` in FIFO order).
///
/// LIFO (the default) serves the newest waiter first: under a standing overload the
/// oldest waiters are the ones whose callers are most likely to have given up, so serving
/// the newest keeps the answers that are still wanted on time and lets the old ones time
/// out (Facebook's "adaptive LIFO", Netflix's `LifoBlockingLimiter`). FIFO is fairer when
/// waits are short.
///
/// The timer is allocated once per service, the first time it waits, and reused.
///
/// # Defaults
///
/// | setting | default | source |
/// |---|---|---|
/// | capacity | 100 waiting services | Netflix `LifoBlockingLimiter` `backlogSize` |
/// | timeout | 1 s | Netflix `backlogTimeout` |
/// | order | [`QueueOrder::Lifo`] | Netflix `LifoBlockingLimiter` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitQueue {
    pub(crate) capacity: usize,
    pub(crate) timeout: Duration,
    pub(crate) order: QueueOrder,
}

/// Which waiter a freed permit goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueueOrder {
    /// The newest waiter first.
    #[default]
    Lifo,
    /// The oldest waiter first.
    Fifo,
}

impl WaitQueue {
    /// Netflix's default backlog size.
    pub const DEFAULT_CAPACITY: usize = 100;
    /// Netflix's default backlog timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// A LIFO queue of at most `capacity` waiters, each waiting at most `timeout`.
    pub const fn lifo(capacity: usize, timeout: Duration) -> Self {
        Self {
            capacity,
            timeout,
            order: QueueOrder::Lifo,
        }
    }

    /// A FIFO queue of at most `capacity` waiters, each waiting at most `timeout`.
    pub const fn fifo(capacity: usize, timeout: Duration) -> Self {
        Self {
            capacity,
            timeout,
            order: QueueOrder::Fifo,
        }
    }

    /// The most services that wait at once.
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// The longest a service waits.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Who gets a freed permit.
    pub const fn order(&self) -> QueueOrder {
        self.order
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::lifo(Self::DEFAULT_CAPACITY, Self::DEFAULT_TIMEOUT)
    }
}

/// A tower layer that limits the requests in flight to a limit that adapts to the inner
/// service's latency and losses: Netflix's AIMD, Vegas or Gradient2 over sampling windows.
///
/// Build it with [`AdaptiveConcurrencyLayer::builder`]. See the [crate docs](crate) for an
/// example and the defaults.
///
/// # Clone
///
/// Clones share one [`Limiter`]: every service made from the layer or from any of its
/// clones counts against the same limit, which is what a server wants (one limit for one
/// backend). Build a second layer for an independent limit.
pub struct AdaptiveConcurrencyLayer<C = ErrorsAsFailures, P = NoPartitions> {
    limiter: Arc<Limiter>,
    classifier: C,
    mode: Mode,
    timeout: Option<Duration>,
    partitioner: P,
}

impl<C: Clone, P: Clone> Clone for AdaptiveConcurrencyLayer<C, P> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
            classifier: self.classifier.clone(),
            mode: self.mode,
            timeout: self.timeout,
            partitioner: self.partitioner.clone(),
        }
    }
}

impl<C, P> fmt::Debug for AdaptiveConcurrencyLayer<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveConcurrencyLayer")
            .field("limiter", &self.limiter)
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AdaptiveConcurrencyLayer {
    /// A builder with the defaults: [`Gradient2`], Netflix's windows, backpressure, no
    /// timeout, [`ErrorsAsFailures`] classification.
    pub fn builder() -> AdaptiveConcurrencyLayerBuilder<ErrorsAsFailures> {
        AdaptiveConcurrencyLayerBuilder {
            algorithm: Box::new(Gradient2::new()),
            window: WindowConfig::new(),
            mode: Mode::Backpressure,
            timeout: None,
            classifier: ErrorsAsFailures,
            name: Arc::from("default"),
            partitions: Partitions::new(),
            partitioner: NoPartitions,
        }
    }
}

impl<C, P> AdaptiveConcurrencyLayer<C, P> {
    /// The limiter shared by every service of this layer.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// A snapshot of the limit, the requests in flight and the counters.
    pub fn stats(&self) -> LimitStats {
        self.limiter.stats()
    }
}

impl<S, C: Clone, P: Clone> Layer<S> for AdaptiveConcurrencyLayer<C, P> {
    type Service = AdaptiveConcurrency<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveConcurrency::new(
            inner,
            Arc::clone(&self.limiter),
            self.classifier.clone(),
            self.mode,
            self.timeout,
            self.partitioner.clone(),
        )
    }
}

/// Configures an [`AdaptiveConcurrencyLayer`]; every setting has a documented default.
pub struct AdaptiveConcurrencyLayerBuilder<C, P = NoPartitions> {
    algorithm: Box<dyn LimitAlgorithm>,
    window: WindowConfig,
    mode: Mode,
    timeout: Option<Duration>,
    classifier: C,
    name: Arc<str>,
    partitions: Partitions,
    partitioner: P,
}

impl<C, P> fmt::Debug for AdaptiveConcurrencyLayerBuilder<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveConcurrencyLayerBuilder")
            .field("algorithm", &self.algorithm)
            .field("window", &self.window)
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .field("name", &self.name)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl<C, P> AdaptiveConcurrencyLayerBuilder<C, P> {
    /// The limit algorithm (default [`Gradient2::new`]): [`Aimd`](crate::algorithm::Aimd),
    /// [`Vegas`](crate::algorithm::Vegas), [`Gradient2`], or your own
    /// [`LimitAlgorithm`].
    #[must_use]
    pub fn algorithm(mut self, algorithm: impl LimitAlgorithm) -> Self {
        self.algorithm = Box::new(algorithm);
        self
    }

    /// How samples are grouped into updates (default [`WindowConfig::new`]: Netflix's
    /// 1 s windows of at least 10 requests).
    #[must_use]
    pub fn window(mut self, window: WindowConfig) -> Self {
        self.window = window;
        self
    }

    /// What to do without a free permit (default [`Mode::Backpressure`]).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// A timeout for each call, from `call` (default none). A call that runs longer is
    /// cancelled, fails with [`TimedOut`](crate::TimedOut) and counts as a drop: the
    /// clearest loss signal for [`Aimd`](crate::algorithm::Aimd).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The name of this limiter in traces (default `"default"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Replaces the classifier that says which results are samples, drops or neither
    /// (default [`ErrorsAsFailures`]: every response is a success; an
    /// [`Overloaded`](steadfast_core::error::Overloaded) error is a drop; other errors are
    /// ignored). Use [`HttpClassifier`](steadfast_core::classify::HttpClassifier) or
    /// [`GrpcClassifier`](steadfast_core::classify::GrpcClassifier) to count 429/503 and
    /// `RESOURCE_EXHAUSTED` answers as drops.
    pub fn classifier<C2>(self, classifier: C2) -> AdaptiveConcurrencyLayerBuilder<C2, P> {
        AdaptiveConcurrencyLayerBuilder {
            algorithm: self.algorithm,
            window: self.window,
            mode: self.mode,
            timeout: self.timeout,
            classifier,
            name: self.name,
            partitions: self.partitions,
            partitioner: self.partitioner,
        }
    }

    /// Splits the limit into `partitions` (for example live 90%, batch 10%), with
    /// `partitioner` picking each request's partition: enforced only when the limit is
    /// saturated, as Netflix's partitioned limiter (see the [`partition`](crate::partition)
    /// module). Needs [`Mode::FailFast`]: the partition is known only at `call`.
    ///
    /// ```
    /// use steadfast_limit::partition::Partitions;
    /// use steadfast_limit::{AdaptiveConcurrencyLayer, Mode};
    ///
    /// let layer = AdaptiveConcurrencyLayer::builder()
    ///     .mode(Mode::FailFast)
    ///     .partitions(
    ///         Partitions::new().partition("live", 0.9).partition("batch", 0.1),
    ///         |path: &String| if path.starts_with("/batch/") { "batch" } else { "live" },
    ///     )
    ///     .build()
    ///     .expect("a valid configuration");
    /// assert_eq!(layer.limiter().partition_stats().len(), 3, "live, batch, unknown");
    /// ```
    pub fn partitions<P2>(
        self,
        partitions: Partitions,
        partitioner: P2,
    ) -> AdaptiveConcurrencyLayerBuilder<C, P2> {
        AdaptiveConcurrencyLayerBuilder {
            algorithm: self.algorithm,
            window: self.window,
            mode: self.mode,
            timeout: self.timeout,
            classifier: self.classifier,
            name: self.name,
            partitions,
            partitioner,
        }
    }

    /// Builds the layer and its limiter.
    ///
    /// # Errors
    ///
    /// [`InvalidLimitConfig`] when the algorithm or the window is misconfigured, a
    /// timeout or the wait queue's capacity is zero, or the partitions are invalid or set
    /// in a mode other than [`Mode::FailFast`].
    pub fn build(self) -> Result<AdaptiveConcurrencyLayer<C, P>, InvalidLimitConfig> {
        if let Mode::Queue(queue) = self.mode
            && (queue.capacity == 0 || queue.timeout.is_zero())
        {
            return Err(InvalidLimitConfig::new(
                "a wait queue needs a capacity and a timeout greater than zero",
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(InvalidLimitConfig::new("timeout must be greater than zero"));
        }
        if !self.partitions.is_empty() && self.mode != Mode::FailFast {
            return Err(InvalidLimitConfig::new(
                "partitions need Mode::FailFast: a request's partition is known only at call",
            ));
        }
        let limiter =
            Limiter::build(self.algorithm, self.window, self.name)?.partitioned(self.partitions)?;
        Ok(AdaptiveConcurrencyLayer {
            limiter: Arc::new(limiter),
            classifier: self.classifier,
            mode: self.mode,
            timeout: self.timeout,
            partitioner: self.partitioner,
        })
    }
}
