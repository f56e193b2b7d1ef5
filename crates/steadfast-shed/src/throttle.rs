//! Client-side adaptive throttling (Google SRE, "Handling Overload"): [`AdaptiveThrottleLayer`].
//!
//! A client that keeps sending to a backend that keeps refusing makes the overload worse:
//! every refusal still costs the backend a little work. The SRE book's answer is for each
//! client to count, over the last two minutes, how many requests it attempted (`requests`)
//! and how many the backend accepted (`accepts`), and to refuse new requests *locally*, before
//! they leave, with probability
//!
//! ```text
//! P = max(0, (requests − K·accepts) / (requests + 1))
//! ```
//!
//! With `K = 2` a client keeps sending while at least half its requests are accepted, and
//! beyond that sends about `K` times what the backend accepts: enough to notice when the
//! backend recovers, little enough not to bury it. Locally refused requests count in
//! `requests`, so the probability regulates itself.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use steadfast_core::classify::{Classify, ErrorsAsFailures, Outcome};
use steadfast_core::error::{BoxError, Overloaded};
use steadfast_core::splitmix;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// The rejection probability of the SRE formula, `max(0, (requests − k·accepts) / (requests + 1))`.
///
/// `requests` counts every request of the window, including those refused locally;
/// `accepts` those the backend accepted. The result is in `[0, 1)`: it never reaches 1, so
/// some requests always reach the backend. A NaN `k` gives 0. [`AdaptiveThrottleLayer`]
/// applies its [minimum rate](AdaptiveThrottleLayerBuilder::min_rate) and
/// [cap](AdaptiveThrottleLayerBuilder::max_reject_probability) around this.
///
/// ```
/// use steadfast_shed::throttle_reject_probability;
///
/// // 100 requests, 30 accepted, K = 2: (100 − 60) / 101.
/// assert!((throttle_reject_probability(100, 30, 2.0) - 40.0 / 101.0).abs() < 1e-12);
/// // Half accepted is enough with K = 2.
/// assert_eq!(throttle_reject_probability(100, 50, 2.0), 0.0);
/// ```
pub fn throttle_reject_probability(requests: u64, accepts: u64, k: f64) -> f64 {
    // As f64: exact up to 2^53 requests per window, far beyond any real count.
    let requests = requests as f64;
    let p = (requests - k * accepts as f64) / (requests + 1.0);
    if p > 0.0 { p } else { 0.0 }
}

/// A request refused locally by [`AdaptiveThrottleLayer`]: it never reached the backend.
///
/// Tell it apart from a rejection by the server with `err.is::<Throttled>()`. Its
/// [`source`](Error::source) is an [`Overloaded`], so everything that understands overload
/// treats it as one: `steadfast_core`'s classifiers call it a (retryable) overload, and
/// [`OverloadResponseLayer`](crate::OverloadResponseLayer) answers it with HTTP `503` or gRPC
/// `RESOURCE_EXHAUSTED`. `err.is::<Overloaded>()` on the error itself is `false`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttled {
    probability: f64,
}

/// The source of every [`Throttled`].
static OVERLOADED: Overloaded = Overloaded::new();

impl Throttled {
    /// The rejection probability in force when the request was refused.
    pub const fn probability(&self) -> f64 {
        self.probability
    }
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request throttled locally (reject probability {:.3})",
            self.probability
        )
    }
}

impl Error for Throttled {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&OVERLOADED)
    }
}

/// The throttle's configuration is invalid; returned by
/// [`AdaptiveThrottleLayerBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidThrottleConfig {
    reason: &'static str,
}

impl InvalidThrottleConfig {
    /// Which setting is wrong, and why.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidThrottleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid adaptive throttle configuration: {}",
            self.reason
        )
    }
}

impl Error for InvalidThrottleConfig {}

/// A snapshot of an [`AdaptiveThrottleLayer`]'s window; see [`AdaptiveThrottleLayer::stats`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ThrottleStats {
    /// Requests in the window: finished ones and locally refused ones.
    pub requests: u64,
    /// Requests in the window that the backend accepted (anything not classified as
    /// [`Outcome::Overload`]).
    pub accepts: u64,
    /// The probability with which the next request would be refused, after the minimum
    /// rate and the cap.
    pub reject_probability: f64,
    /// Requests refused locally since the layer was built (not only in the window).
    pub throttled: u64,
}

/// One slice of the window.
#[derive(Debug)]
struct Bucket {
    /// The slot (bucket-long interval since the throttle was built) these counts belong to,
    /// or [`RESETTING`].
    slot: AtomicU64,
    requests: AtomicU64,
    /// Refused by the backend or locally: `accepts = requests − refused`. Counting the
    /// refusals rather than the accepts makes an accepted request one increment, not two.
    refused: AtomicU64,
}

/// A bucket being emptied for a new slot; readers skip it.
const RESETTING: u64 = u64::MAX;

/// The state shared by every service of one layer.
struct Shared {
    buckets: Box<[Bucket]>,
    bucket_nanos: u64,
    start: Instant,
    k: f64,
    min_requests: u64,
    max_reject_probability: f64,
    /// Seeds each service's generator: a SplitMix64 sequence, stepped once per service.
    seeds: AtomicU64,
    throttled: AtomicU64,
}

/// The next uniform `f64` in `[0, 1)` of the SplitMix64 generator whose state is `state`
/// (one per service, so drawing touches no shared memory).
#[inline]
fn unit_f64(state: &mut u64) -> f64 {
    splitmix::unit_f64(splitmix::next(state))
}

impl Shared {
    #[inline]
    fn slot_now(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos();
        // Saturates after 584 years of uptime.
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) / self.bucket_nanos
    }

    /// The bucket of `slot`, emptied first if it still holds an older slot's counts.
    ///
    /// Two threads that find the same stale bucket race for it: one empties it, the other
    /// counts into it, possibly before the emptying (its count is then lost). Counts are
    /// exact on one thread and may lose a few increments at bucket boundaries under
    /// contention, which the formula does not notice.
    #[inline]
    fn bucket(&self, slot: u64) -> &Bucket {
        // The modulo of a u64 by a usize bucket count fits a usize.
        let bucket = &self.buckets[(slot % self.buckets.len() as u64) as usize];
        let seen = bucket.slot.load(Ordering::Acquire);
        if seen < slot {
            Self::reset(bucket, seen, slot);
        }
        bucket
    }

    #[cold]
    fn reset(bucket: &Bucket, seen: u64, slot: u64) {
        if bucket
            .slot
            .compare_exchange(seen, RESETTING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            bucket.requests.store(0, Ordering::Relaxed);
            bucket.refused.store(0, Ordering::Relaxed);
            bucket.slot.store(slot, Ordering::Release);
        }
    }

    /// Requests and accepts in the window that ends with `slot`.
    #[inline]
    fn totals(&self, slot: u64) -> (u64, u64) {
        let len = self.buckets.len() as u64;
        let (mut requests, mut refused) = (0u64, 0u64);
        for bucket in self.buckets.iter() {
            let tag = bucket.slot.load(Ordering::Acquire);
            if tag <= slot && slot - tag < len {
                requests = requests.saturating_add(bucket.requests.load(Ordering::Relaxed));
                refused = refused.saturating_add(bucket.refused.load(Ordering::Relaxed));
            }
        }
        // Read while other threads count, the two sums may be off by the requests being
        // counted at that moment: clamp.
        (requests, requests.saturating_sub(refused))
    }

    /// The probability after the minimum rate and the cap.
    #[inline]
    fn probability(&self, requests: u64, accepts: u64) -> f64 {
        if requests < self.min_requests {
            return 0.0;
        }
        throttle_reject_probability(requests, accepts, self.k).min(self.max_reject_probability)
    }

    /// Whether to admit the next request, taken now.
    #[inline]
    fn decide(&self, rng: &mut u64) -> Decision {
        let slot = self.slot_now();
        let (requests, accepts) = self.totals(slot);
        let probability = self.probability(requests, accepts);
        // Drawn only when the probability is above zero: a healthy backend costs no draw.
        if probability > 0.0 && unit_f64(rng) < probability {
            Decision::Refuse { probability, slot }
        } else {
            Decision::Admit { slot }
        }
    }

    /// A seed for a new service's generator.
    fn seed(&self) -> u64 {
        splitmix::next_shared(&self.seeds)
    }

    // Outcomes are counted in the bucket of the decision (the clock is read once per
    // request): a response that arrives later still counts when its request was sent.
    fn record_throttled(&self, slot: u64) {
        let bucket = self.bucket(slot);
        bucket.requests.fetch_add(1, Ordering::Relaxed);
        bucket.refused.fetch_add(1, Ordering::Relaxed);
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    fn record_outcome(&self, slot: u64, outcome: Outcome) {
        let bucket = self.bucket(slot);
        bucket.requests.fetch_add(1, Ordering::Relaxed);
        if outcome == Outcome::Overload {
            bucket.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stats(&self) -> ThrottleStats {
        let (requests, accepts) = self.totals(self.slot_now());
        ThrottleStats {
            requests,
            accepts,
            reject_probability: self.probability(requests, accepts),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("window", &self.window())
            .field("buckets", &self.buckets.len())
            .field("k", &self.k)
            .field("min_requests", &self.min_requests)
            .field("max_reject_probability", &self.max_reject_probability)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn window(&self) -> Duration {
        Duration::from_nanos(self.bucket_nanos.saturating_mul(self.buckets.len() as u64))
    }
}

/// A tower layer for clients: refuses requests locally, with the SRE book's adaptive
/// probability, while the backend refuses too many of them.
///
/// Each finished call is classified with the layer's [`Classify`] (default
/// [`ErrorsAsFailures`]; use [`HttpClassifier`](steadfast_core::classify::HttpClassifier)
/// or [`GrpcClassifier`](steadfast_core::classify::GrpcClassifier) for 429, 503 and
/// `RESOURCE_EXHAUSTED` responses):
///
/// | result | counts as |
/// |---|---|
/// | [`Outcome::Overload`] (an [`Overloaded`] error, 429, 503, `RESOURCE_EXHAUSTED`, a [`Throttled`] from a throttle further in) | a request, not accepted |
/// | [`Outcome::Success`] or [`Outcome::Failure`] (the backend took the request, even if it failed) | a request, accepted |
/// | refused locally | a request, not accepted; the call fails with [`Throttled`] |
/// | the response future dropped before it finished | nothing: a cancellation says nothing about the backend |
///
/// Only overload counts against the backend, as in the SRE book ("rejected" requests):
/// errors that are not about load say nothing about whether sending less would help.
///
/// A request is counted in the bucket of the moment it was admitted or refused, when its
/// outcome is known: the clock is read once per request, and a slow response still counts
/// with the requests sent at the same time.
///
/// The decision is taken in `poll_ready`: a request to refuse does not wait for the inner
/// service to be ready (so it takes no permit of a concurrency limit further in), and its
/// `call` fails at once with [`Throttled`] without reaching the inner service. Otherwise
/// `poll_ready` drives the inner service's.
///
/// # Defaults
///
/// | setting | default | source and reason |
/// |---|---|---|
/// | [`k`](AdaptiveThrottleLayerBuilder::k) | 2.0 | SRE book (go-zero uses 1.5); lower refuses sooner |
/// | [`window`](AdaptiveThrottleLayerBuilder::window) | 120 s | SRE book ("the last two minutes") |
/// | [`buckets`](AdaptiveThrottleLayerBuilder::buckets) | 12 (the window slides in 10 s steps) | ours: each decision reads every bucket, so fewer is cheaper; go-zero uses 40 over 10 s |
/// | [`min_rate`](AdaptiveThrottleLayerBuilder::min_rate) | 0 requests per second (no minimum) | SRE book, Envoy `admission_control`'s `rps_threshold` default; set it for clients with little traffic |
/// | [`max_reject_probability`](AdaptiveThrottleLayerBuilder::max_reject_probability) | 0.8 | Envoy `admission_control`'s default: without a cap, a backend that refused everything gets almost no requests, and the client is slow to notice it recovered |
/// | [`classifier`](AdaptiveThrottleLayerBuilder::classifier) | [`ErrorsAsFailures`] | an `Overloaded` error is an overload; use the HTTP or gRPC classifier for responses |
/// | [`seed`](AdaptiveThrottleLayerBuilder::seed) | random per layer | seed it for reproducible tests |
///
/// # Clone
///
/// Clones share one window: every service made from the layer or from its clones counts
/// toward, and is throttled by, the same counts (one throttle per backend, as the SRE book
/// keeps them). Build a second layer for an independent throttle.
///
/// # Example
///
/// ```
/// use steadfast_core::error::{BoxError, Overloaded};
/// use steadfast_shed::{AdaptiveThrottleLayer, Throttled};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), BoxError> {
/// let throttle = AdaptiveThrottleLayer::builder().seed(7).build()?;
/// // A backend that is overloaded and refuses everything.
/// let mut client = ServiceBuilder::new()
///     .layer(throttle.clone())
///     .service(service_fn(|_: ()| async { Err::<(), _>(Overloaded::new()) }));
///
/// let mut refused_locally = 0;
/// for _ in 0..100 {
///     let err = client.ready().await?.call(()).await.unwrap_err();
///     if err.is::<Throttled>() {
///         refused_locally += 1;
///     }
/// }
/// // Most requests never left: the cap (80%) keeps a few probing the backend.
/// assert!(refused_locally > 60, "{refused_locally}");
/// assert_eq!(throttle.stats().throttled, refused_locally);
/// # Ok(())
/// # }
/// ```
pub struct AdaptiveThrottleLayer<C = ErrorsAsFailures> {
    shared: Arc<Shared>,
    classifier: C,
}

impl<C: Clone> Clone for AdaptiveThrottleLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for AdaptiveThrottleLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottleLayer")
            .field("throttle", &self.shared)
            .finish_non_exhaustive()
    }
}

impl AdaptiveThrottleLayer {
    /// The SRE book's throttle with the [defaults](Self#defaults).
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder starting from the [defaults](Self#defaults).
    pub fn builder() -> AdaptiveThrottleLayerBuilder<ErrorsAsFailures> {
        AdaptiveThrottleLayerBuilder {
            k: AdaptiveThrottleLayerBuilder::<ErrorsAsFailures>::DEFAULT_K,
            window: AdaptiveThrottleLayerBuilder::<ErrorsAsFailures>::DEFAULT_WINDOW,
            buckets: AdaptiveThrottleLayerBuilder::<ErrorsAsFailures>::DEFAULT_BUCKETS,
            min_rate: 0.0,
            max_reject_probability:
                AdaptiveThrottleLayerBuilder::<ErrorsAsFailures>::DEFAULT_MAX_REJECT_PROBABILITY,
            seed: None,
            classifier: ErrorsAsFailures,
        }
    }
}

impl Default for AdaptiveThrottleLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> AdaptiveThrottleLayer<C> {
    /// The window's counts and the current rejection probability.
    pub fn stats(&self) -> ThrottleStats {
        self.shared.stats()
    }

    /// The probability with which the next request would be refused.
    pub fn reject_probability(&self) -> f64 {
        self.shared.stats().reject_probability
    }
}

impl<S, C: Clone> Layer<S> for AdaptiveThrottleLayer<C> {
    type Service = AdaptiveThrottle<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveThrottle {
            inner,
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
            decision: Decision::Undecided,
            rng: self.shared.seed(),
        }
    }
}

/// Configures an [`AdaptiveThrottleLayer`]; see its [defaults](AdaptiveThrottleLayer#defaults).
#[derive(Debug, Clone)]
pub struct AdaptiveThrottleLayerBuilder<C> {
    k: f64,
    window: Duration,
    buckets: usize,
    min_rate: f64,
    max_reject_probability: f64,
    seed: Option<u64>,
    classifier: C,
}

impl<C> AdaptiveThrottleLayerBuilder<C> {
    /// The SRE book's `K`.
    pub const DEFAULT_K: f64 = 2.0;
    /// The SRE book's two minutes.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);
    /// Twelve buckets: the window slides in steps of a twelfth of it.
    pub const DEFAULT_BUCKETS: usize = 12;
    /// The most buckets a window may have: each decision reads every bucket.
    pub const MAX_BUCKETS: usize = 1024;
    /// Envoy `admission_control`'s `max_rejection_probability` default.
    pub const DEFAULT_MAX_REJECT_PROBABILITY: f64 = 0.8;

    /// The multiplier `K` (default 2.0): the client keeps sending freely while
    /// `requests ≤ K·accepts`, and otherwise sends about `K` times what the backend
    /// accepts. Lower is more aggressive (1.1 refuses once about one request in eleven is
    /// refused by the backend); must be finite and at least 1, or
    /// [`build`](Self::build) fails (below 1 it would throttle a healthy backend).
    #[must_use]
    pub fn k(mut self, k: f64) -> Self {
        self.k = k;
        self
    }

    /// How far back the counts reach (default 120 s). Must be at least one nanosecond per
    /// bucket.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many slices the window is kept in (default 12, between 1 and
    /// [`MAX_BUCKETS`](Self::MAX_BUCKETS)): the window slides one slice at a time, and
    /// memory is three counters per slice.
    #[must_use]
    pub fn buckets(mut self, buckets: usize) -> Self {
        self.buckets = buckets;
        self
    }

    /// Below this average rate over the window (requests per second, default 0), nothing
    /// is refused locally: like Envoy's `rps_threshold`, so that a handful of early
    /// failures on a quiet client does not throttle it. Must be finite and not negative.
    #[must_use]
    pub fn min_rate(mut self, requests_per_second: f64) -> Self {
        self.min_rate = requests_per_second;
        self
    }

    /// The highest rejection probability (default 0.8, Envoy's): at least
    /// `1 − max` of the requests always reach the backend, so the client notices soon
    /// when it recovers. Between 0 (never throttle) and 1 (the SRE book's uncapped
    /// formula).
    #[must_use]
    pub fn max_reject_probability(mut self, max: f64) -> Self {
        self.max_reject_probability = max;
        self
    }

    /// Seeds the random draws (default: random per layer), for reproducible tests. Each
    /// service (each clone too) draws from a generator of its own, seeded from this in the
    /// order the services are made, so the draws touch no shared memory.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How finished calls are classified (default [`ErrorsAsFailures`]: only an
    /// [`Overloaded`] error, or a [`Throttled`] one, is an overload). Use
    /// [`HttpClassifier`](steadfast_core::classify::HttpClassifier) for HTTP clients (429
    /// and 503 are overloads) or
    /// [`GrpcClassifier`](steadfast_core::classify::GrpcClassifier) for gRPC
    /// (`RESOURCE_EXHAUSTED`).
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> AdaptiveThrottleLayerBuilder<C2> {
        AdaptiveThrottleLayerBuilder {
            k: self.k,
            window: self.window,
            buckets: self.buckets,
            min_rate: self.min_rate,
            max_reject_probability: self.max_reject_probability,
            seed: self.seed,
            classifier,
        }
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`InvalidThrottleConfig`] when a setting is out of its documented range.
    pub fn build(self) -> Result<AdaptiveThrottleLayer<C>, InvalidThrottleConfig> {
        let invalid = |reason| Err(InvalidThrottleConfig { reason });
        if !(self.k.is_finite() && self.k >= 1.0) {
            return invalid("k must be finite and at least 1");
        }
        if !(1..=Self::MAX_BUCKETS).contains(&self.buckets) {
            return invalid("buckets must be between 1 and 1024");
        }
        let bucket_nanos = self.window.as_nanos() / self.buckets as u128;
        let Ok(bucket_nanos) = u64::try_from(bucket_nanos) else {
            return invalid("window is too long (more than 584 years per bucket)");
        };
        if bucket_nanos == 0 {
            return invalid("window must be at least one nanosecond per bucket");
        }
        if !(self.min_rate.is_finite() && self.min_rate >= 0.0) {
            return invalid("min_rate must be finite and not negative");
        }
        if !(0.0..=1.0).contains(&self.max_reject_probability) {
            return invalid("max_reject_probability must be between 0 and 1");
        }
        let window = Duration::from_nanos(bucket_nanos).as_secs_f64() * self.buckets as f64;
        // Saturating float-to-int conversion: a huge minimum simply never throttles.
        let min_requests = (self.min_rate * window).ceil() as u64;
        let seed = self.seed.unwrap_or_else(splitmix::entropy_seed);
        let buckets = (0..self.buckets)
            .map(|_| Bucket {
                slot: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            })
            .collect();
        Ok(AdaptiveThrottleLayer {
            shared: Arc::new(Shared {
                buckets,
                bucket_nanos,
                start: Instant::now(),
                k: self.k,
                min_requests,
                max_reject_probability: self.max_reject_probability,
                seeds: AtomicU64::new(seed),
                throttled: AtomicU64::new(0),
            }),
            classifier: self.classifier,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Decision {
    Undecided,
    Admit { slot: u64 },
    Refuse { probability: f64, slot: u64 },
}

/// The service made by [`AdaptiveThrottleLayer`]: refuses requests locally with the
/// throttle's probability, counts the outcome of the others.
///
/// # Clone
///
/// A clone shares the throttle's window and clones the inner service; it takes its own
/// decision in its own `poll_ready`.
///
/// # Panics
///
/// `call` panics if `poll_ready` did not return `Ready(Ok(()))` first (tower's contract).
pub struct AdaptiveThrottle<S, C = ErrorsAsFailures> {
    inner: S,
    shared: Arc<Shared>,
    classifier: C,
    decision: Decision,
    rng: u64,
}

impl<S: Clone, C: Clone> Clone for AdaptiveThrottle<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
            decision: Decision::Undecided,
            rng: self.shared.seed(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for AdaptiveThrottle<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("inner", &self.inner)
            .field("throttle", &self.shared)
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl<S, C> AdaptiveThrottle<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for AdaptiveThrottle<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AdaptiveThrottleFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.decision == Decision::Undecided {
            self.decision = self.shared.decide(&mut self.rng);
        }
        if let Decision::Refuse { .. } = self.decision {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.decision = Decision::Undecided;
                Poll::Ready(Err(err.into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match mem::replace(&mut self.decision, Decision::Undecided) {
            Decision::Admit { slot } => AdaptiveThrottleFuture {
                state: FutureState::Running {
                    future: self.inner.call(request),
                    shared: Arc::clone(&self.shared),
                    classifier: self.classifier.clone(),
                    slot,
                },
            },
            Decision::Refuse { probability, slot } => {
                self.shared.record_throttled(slot);
                tracing::trace!(
                    target: "steadfast_shed",
                    probability,
                    "request throttled locally"
                );
                AdaptiveThrottleFuture {
                    state: FutureState::Throttled { probability },
                }
            }
            Decision::Undecided => {
                panic!("AdaptiveThrottle::call without a successful poll_ready first")
            }
        }
    }
}

pin_project! {
    /// The response future of [`AdaptiveThrottle`]: fails at once with [`Throttled`] for a
    /// request refused locally; otherwise runs the call, classifies its result and counts
    /// it in the throttle's window. Dropped before it finishes, it counts nothing.
    pub struct AdaptiveThrottleFuture<F, C> {
        #[pin]
        state: FutureState<F, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum FutureState<F, C> {
        Running {
            #[pin]
            future: F,
            shared: Arc<Shared>,
            classifier: C,
            slot: u64,
        },
        Throttled {
            probability: f64,
        },
        Done,
    }
}

impl<F, C, T, E> Future for AdaptiveThrottleFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let result = match state.as_mut().project() {
            StateProj::Running {
                future,
                shared,
                classifier,
                slot,
            } => {
                let result = ready!(future.poll(cx));
                let (result, outcome) = match result {
                    Ok(response) => {
                        let outcome = classifier.classify_response(&response).outcome();
                        (Ok(response), outcome)
                    }
                    Err(err) => {
                        let err: BoxError = err.into();
                        let outcome = classifier.classify_error(&*err).outcome();
                        (Err(err), outcome)
                    }
                };
                shared.record_outcome(*slot, outcome);
                result
            }
            StateProj::Throttled { probability } => Err(Throttled {
                probability: *probability,
            }
            .into()),
            StateProj::Done => panic!("AdaptiveThrottleFuture polled after completion"),
        };
        state.set(FutureState::Done);
        Poll::Ready(result)
    }
}

impl<F, C> fmt::Debug for AdaptiveThrottleFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            FutureState::Running { .. } => "running",
            FutureState::Throttled { .. } => "throttled",
            FutureState::Done => "done",
        };
        f.debug_struct("AdaptiveThrottleFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(buckets: usize, window: Duration) -> Arc<Shared> {
        AdaptiveThrottleLayer::builder()
            .buckets(buckets)
            .window(window)
            .seed(1)
            .build()
            .unwrap()
            .shared
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn buckets_are_reused_and_emptied_as_the_window_slides() {
        let s = shared(4, Duration::from_secs(4));
        s.record_outcome(s.slot_now(), Outcome::Overload);
        s.record_outcome(s.slot_now(), Outcome::Success);
        assert_eq!(s.totals(s.slot_now()), (2, 1));
        tokio::time::advance(Duration::from_secs(3)).await;
        s.record_outcome(s.slot_now(), Outcome::Overload);
        assert_eq!(s.totals(s.slot_now()), (3, 1));
        // Slot 4 reuses slot 0's bucket: its two requests leave the window.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.totals(s.slot_now()), (1, 0));
        s.record_outcome(s.slot_now(), Outcome::Failure);
        assert_eq!(s.totals(s.slot_now()), (2, 1));
        // A late outcome of a request sent in slot 3 still counts there.
        s.record_outcome(3, Outcome::Success);
        assert_eq!(s.totals(s.slot_now()), (3, 2));
        // Long idle: everything is forgotten even though no bucket was written.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(s.totals(s.slot_now()), (0, 0));
    }

    #[test]
    fn draws_are_uniform_enough() {
        let mut state = shared(1, Duration::from_secs(1)).seed();
        let draws: Vec<f64> = (0..10_000).map(|_| unit_f64(&mut state)).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_quarter = draws.iter().filter(|d| **d < 0.25).count();
        assert!((2_300..2_700).contains(&below_quarter), "{below_quarter}");
    }
}
