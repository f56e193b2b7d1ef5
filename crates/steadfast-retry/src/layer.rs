//! [`RetryLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use steadfast_core::classify::{GrpcClassifier, HttpClassifier};
use tower_layer::Layer;

use crate::backoff::Backoff;
use crate::body::ReplayHttpBody;
use crate::budget::{RetryBudget, TpsBudget};
use crate::error::InvalidRetryConfig;
use crate::policy::{AllRequests, IdempotentRequests};
use crate::replay::CloneRequests;
use crate::rng::{RandomSource, SplitMix64};
use crate::service::Retry;
use crate::stats::RetryStats;

/// The default number of attempts, the first included: 3, as the AWS SDKs, gRPC's service
/// config examples cap at and Polly's default of 3 retries round to.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The default cap on a server's retry-after hint: 30 s. A server asking for longer is
/// answered with its own response rather than held by a sleeping client (Envoy discards
/// hints over its `max_interval`, 300 s; 30 s suits request-scoped retries).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Everything a retry layer's services and futures share.
pub(crate) struct Config<C, P, R> {
    pub(crate) classifier: C,
    pub(crate) predicate: P,
    pub(crate) strategy: R,
    pub(crate) backoff: Backoff,
    pub(crate) max_attempts: u32,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_retry_after: Duration,
    pub(crate) budget: Arc<dyn RetryBudget>,
    pub(crate) rng: Arc<dyn RandomSource>,
    pub(crate) stats: Arc<RetryStats>,
    pub(crate) name: Arc<str>,
}

/// A tower layer that retries failed calls: jittered backoff, a retry budget, per-attempt
/// timeouts, a total deadline, server hints, and (for HTTP) replay of bodies that are not
/// `Clone`. Build one with [`RetryLayer::http`], [`RetryLayer::grpc`] or
/// [`RetryLayer::cloning`], then [`RetryLayerBuilder::build`].
///
/// See the [crate docs](crate) for how a call is retried and the defaults.
///
/// # Clone
///
/// Clones share the budget, the random source and the [`RetryStats`]: a budget limits the
/// retries of every service made from the layer together.
pub struct RetryLayer<C, P, R> {
    config: Arc<Config<C, P, R>>,
}

impl<C, P, R> Clone for RetryLayer<C, P, R> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<C, P, R> fmt::Debug for RetryLayer<C, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("name", &self.config.name)
            .field("max_attempts", &self.config.max_attempts)
            .field("backoff", &self.config.backoff)
            .field("attempt_timeout", &self.config.attempt_timeout)
            .field("deadline", &self.config.deadline)
            .field("budget", &self.config.budget)
            .finish_non_exhaustive()
    }
}

impl RetryLayer<HttpClassifier, IdempotentRequests, ReplayHttpBody> {
    /// A builder for `http::Request<B>` services: HTTP status classification (502, 503,
    /// 504, 429, 408 and connection errors retried), only idempotent or keyed requests
    /// retried, bodies replayed up to 64 KiB.
    pub fn http() -> RetryLayerBuilder<HttpClassifier, IdempotentRequests, ReplayHttpBody> {
        RetryLayerBuilder::new(
            HttpClassifier::new(),
            IdempotentRequests,
            ReplayHttpBody::default(),
        )
    }
}

impl RetryLayer<GrpcClassifier, AllRequests, ReplayHttpBody> {
    /// A builder for gRPC over `http::Request<B>` (tonic channels): `UNAVAILABLE` retried,
    /// `RESOURCE_EXHAUSTED` only with a pushback. Every call is eligible (gRPC methods are
    /// all `POST`; use [`RetryLayerBuilder::retry_if`] to restrict to idempotent RPCs).
    pub fn grpc() -> RetryLayerBuilder<GrpcClassifier, AllRequests, ReplayHttpBody> {
        RetryLayerBuilder::new(
            GrpcClassifier::new(),
            AllRequests,
            ReplayHttpBody::default(),
        )
    }
}

impl<C> RetryLayer<C, AllRequests, CloneRequests> {
    /// A builder for any request type that is `Clone`, classified by `classifier` (for
    /// example [`ErrorsAsFailures`](steadfast_core::classify::ErrorsAsFailures) or a
    /// closure).
    pub fn cloning(classifier: C) -> RetryLayerBuilder<C, AllRequests, CloneRequests> {
        RetryLayerBuilder::new(classifier, AllRequests, CloneRequests)
    }
}

impl<C, P, R> RetryLayer<C, P, R> {
    /// The counters of what this layer's services did.
    pub fn stats(&self) -> Arc<RetryStats> {
        self.config.stats.clone()
    }
}

impl<S, C, P, R: Clone> Layer<S> for RetryLayer<C, P, R> {
    type Service = Retry<S, C, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.config.clone())
    }
}

/// Configures a [`RetryLayer`]; every setting has a documented default.
pub struct RetryLayerBuilder<C, P, R> {
    classifier: C,
    predicate: P,
    strategy: R,
    backoff: Backoff,
    max_attempts: u32,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
    max_retry_after: Duration,
    budget: Option<Arc<dyn RetryBudget>>,
    rng: Option<Arc<dyn RandomSource>>,
    name: Arc<str>,
}

impl<C, P, R> fmt::Debug for RetryLayerBuilder<C, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayerBuilder")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl<C, P, R> RetryLayerBuilder<C, P, R> {
    fn new(classifier: C, predicate: P, strategy: R) -> Self {
        Self {
            classifier,
            predicate,
            strategy,
            backoff: Backoff::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            attempt_timeout: None,
            deadline: None,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            budget: None,
            rng: None,
            name: Arc::from("default"),
        }
    }

    /// Attempts in all, the first included (default [`DEFAULT_MAX_ATTEMPTS`], 3). Must be at
    /// least 1 (1 disables retries) and at most 100.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The backoff between attempts (default [`Backoff::default`]: full jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// A timeout for each attempt (default none). A timed-out attempt is cancelled and, if
    /// attempts and budget remain, retried; the last one fails with
    /// [`AttemptTimedOut`](crate::AttemptTimedOut).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// A deadline over all attempts and the sleeps between them, counted from the call
    /// (default none). No sleep is started that would end past it, and an attempt running
    /// when it passes fails with [`DeadlineExceeded`](crate::DeadlineExceeded).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The longest server hint (`Retry-After`, `grpc-retry-pushback-ms`) to wait for
    /// (default [`DEFAULT_MAX_RETRY_AFTER`], 30 s). A longer hint stops retrying and returns
    /// the server's response.
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// The retry budget, shared by every service of the layer (default
    /// [`TpsBudget::default`]: Finagle's 20% of requests plus 10 retries per second over a
    /// 10 s window). Pass one `Arc` to several layers to share a budget between them.
    pub fn budget(mut self, budget: Arc<dyn RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The random source for jitter (default [`SplitMix64::from_entropy`]); pass a seeded
    /// one for reproducible tests and simulations.
    pub fn rng(mut self, rng: Arc<dyn RandomSource>) -> Self {
        self.rng = Some(rng);
        self
    }

    /// The name of this layer in traces and metrics labels (default `"default"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Replaces the classifier: which outcomes are retryable.
    pub fn classifier<C2>(self, classifier: C2) -> RetryLayerBuilder<C2, P, R> {
        RetryLayerBuilder {
            classifier,
            predicate: self.predicate,
            strategy: self.strategy,
            backoff: self.backoff,
            max_attempts: self.max_attempts,
            attempt_timeout: self.attempt_timeout,
            deadline: self.deadline,
            max_retry_after: self.max_retry_after,
            budget: self.budget,
            rng: self.rng,
            name: self.name,
        }
    }

    /// Replaces the predicate deciding which requests may be retried at all, e.g.
    /// `|req: &http::Request<B>| req.uri().path().starts_with("/read")`.
    pub fn retry_if<P2>(self, predicate: P2) -> RetryLayerBuilder<C, P2, R> {
        RetryLayerBuilder {
            classifier: self.classifier,
            predicate,
            strategy: self.strategy,
            backoff: self.backoff,
            max_attempts: self.max_attempts,
            attempt_timeout: self.attempt_timeout,
            deadline: self.deadline,
            max_retry_after: self.max_retry_after,
            budget: self.budget,
            rng: self.rng,
            name: self.name,
        }
    }

    fn validate(&self) -> Result<(), InvalidRetryConfig> {
        let invalid = |reason| Err(InvalidRetryConfig { reason });
        if !(1..=100).contains(&self.max_attempts) {
            return invalid("max_attempts must be between 1 and 100");
        }
        if self.attempt_timeout == Some(Duration::ZERO) {
            return invalid("attempt_timeout must be greater than zero");
        }
        if self.deadline == Some(Duration::ZERO) {
            return invalid("deadline must be greater than zero");
        }
        Ok(())
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`InvalidRetryConfig`] when a setting is out of range.
    pub fn build(self) -> Result<RetryLayer<C, P, R>, InvalidRetryConfig> {
        self.validate()?;
        let config = Config {
            classifier: self.classifier,
            predicate: self.predicate,
            strategy: self.strategy,
            backoff: self.backoff,
            max_attempts: self.max_attempts,
            attempt_timeout: self.attempt_timeout,
            deadline: self.deadline,
            max_retry_after: self.max_retry_after,
            budget: self
                .budget
                .unwrap_or_else(|| Arc::new(TpsBudget::default())),
            rng: self
                .rng
                .unwrap_or_else(|| Arc::new(SplitMix64::from_entropy())),
            stats: Arc::default(),
            name: self.name,
        };
        Ok(RetryLayer {
            config: Arc::new(config),
        })
    }
}

impl<C, P> RetryLayerBuilder<C, P, ReplayHttpBody> {
    /// HTTP only: the largest request body kept for replay (default 64 KiB, as linkerd). A
    /// larger body is sent once and not retried.
    pub fn body_cap(mut self, bytes: usize) -> Self {
        self.strategy.cap = bytes;
        self
    }

    /// HTTP only: a header set on retries to the number of earlier attempts (absent on the
    /// first), e.g. `x-retry-attempt` or gRPC's `grpc-previous-rpc-attempts`. Default none.
    pub fn attempt_header(mut self, name: HeaderName) -> Self {
        self.strategy.attempt_header = Some(name);
        self
    }
}
