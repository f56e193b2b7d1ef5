//! [`IdempotencyLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, header};
use tower_layer::Layer;

use crate::error::InvalidIdempotencyConfig;
use crate::policy::StorePolicy;
use crate::scope::{Prefixes, ScopeExtractor, Unscoped};
use crate::service::Idempotency;
use crate::stats::IdempotencyStats;
use crate::store::IdempotencyStore;

/// The default key header: `Idempotency-Key`, the IETF draft's field name.
pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The default cap on the request body read for the fingerprint: 1 MiB (nginx's
/// `client_max_body_size` default). Larger keyed requests get `413`.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 1024 * 1024;

/// The default cap on a stored response body: 1 MiB. Larger responses reach their client
/// but are not stored (and release the key). DynamoDB's 400 KB item limit is the tightest
/// common backend; typical API responses are a few KiB.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// The default in-flight lease: 60 s. Brandur's design locks keys for 90 s; a lease only
/// needs to outlast the slowest handler (set it above your request timeout), and a shorter
/// one unwedges a key sooner after a crash.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The default lifetime of a completed record: 24 h, Stripe's ("keys may be removed after
/// they're at least 24 hours old"). AWS Powertools keeps records 1 h.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The default `Retry-After` on a `409` for a request still in flight: 1 s, a short hint
/// that clients with jittered backoff (Stripe's starts at 0.5 s) wait anyway.
pub const DEFAULT_CONFLICT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The default `Retry-After` on a `503` when the store fails: 1 s.
pub const DEFAULT_UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The headers kept with a stored response by default: those describing the body and the
/// created resource. Never `Set-Cookie`, authentication or hop-by-hop headers (a replay
/// must not hand one client another's session); `Content-Length` is recomputed and `Date`
/// left to the server.
pub const DEFAULT_STORED_HEADERS: [HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LOCATION,
    header::LOCATION,
    header::ETAG,
    header::LAST_MODIFIED,
    header::LINK,
    header::CACHE_CONTROL,
];

/// The layer's settings, shared by its services and their futures.
pub(crate) struct Config<St, X> {
    pub(crate) store: St,
    pub(crate) scope: X,
    pub(crate) header: HeaderName,
    pub(crate) lenient: bool,
    pub(crate) methods: Vec<Method>,
    pub(crate) require_key: bool,
    pub(crate) fingerprint_headers: Vec<HeaderName>,
    pub(crate) stored_headers: Vec<HeaderName>,
    pub(crate) max_request_body: usize,
    pub(crate) max_response_body: usize,
    pub(crate) policy: StorePolicy,
    pub(crate) lease: Duration,
    pub(crate) ttl: Duration,
    pub(crate) conflict_retry_after: Duration,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) fail_open: bool,
    pub(crate) stats: Arc<IdempotencyStats>,
    pub(crate) name: Arc<str>,
    /// The hashers after the domain tags, cloned per request.
    pub(crate) prefixes: Prefixes,
}

/// A tower layer that makes `POST` and `PATCH` requests carrying an `Idempotency-Key`
/// safe to retry: the first request runs and its response is stored, duplicates get it
/// replayed. Build one with [`IdempotencyLayer::builder`].
///
/// See the [crate docs](crate) for the request flow and the defaults.
///
/// # Clone
///
/// Clones share the store, the configuration and the [`IdempotencyStats`].
pub struct IdempotencyLayer<St, X = Unscoped> {
    config: Arc<Config<St, X>>,
}

impl<St, X> Clone for IdempotencyLayer<St, X> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<St: fmt::Debug, X> fmt::Debug for IdempotencyLayer<St, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &*self.config;
        f.debug_struct("IdempotencyLayer")
            .field("name", &config.name)
            .field("store", &config.store)
            .field("header", &config.header)
            .field("methods", &config.methods)
            .field("policy", &config.policy)
            .field("lease", &config.lease)
            .field("ttl", &config.ttl)
            .field("fail_open", &config.fail_open)
            .finish_non_exhaustive()
    }
}

impl<St: IdempotencyStore> IdempotencyLayer<St, Unscoped> {
    /// A builder with every default, keeping records in `store`.
    pub fn builder(store: St) -> IdempotencyLayerBuilder<St, Unscoped> {
        IdempotencyLayerBuilder::new(store)
    }
}

impl<St, X> IdempotencyLayer<St, X> {
    /// The counters of what this layer's services did.
    pub fn stats(&self) -> Arc<IdempotencyStats> {
        self.config.stats.clone()
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.config.store
    }
}

impl<S, St, X> Layer<S> for IdempotencyLayer<St, X> {
    type Service = Idempotency<S, St, X>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::new(inner, self.config.clone())
    }
}

/// Configures an [`IdempotencyLayer`]; every setting has a documented default.
pub struct IdempotencyLayerBuilder<St, X> {
    store: St,
    scope: X,
    header: HeaderName,
    lenient: bool,
    methods: Vec<Method>,
    require_key: bool,
    fingerprint_headers: Vec<HeaderName>,
    stored_headers: Vec<HeaderName>,
    max_request_body: usize,
    max_response_body: usize,
    policy: StorePolicy,
    lease: Duration,
    ttl: Duration,
    conflict_retry_after: Duration,
    max_wait: Option<Duration>,
    fail_open: bool,
    name: Arc<str>,
}

impl<St: fmt::Debug, X> fmt::Debug for IdempotencyLayerBuilder<St, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayerBuilder")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("header", &self.header)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl<St> IdempotencyLayerBuilder<St, Unscoped> {
    fn new(store: St) -> Self {
        Self {
            store,
            scope: Unscoped,
            header: DEFAULT_HEADER,
            lenient: true,
            methods: vec![Method::POST, Method::PATCH],
            require_key: false,
            fingerprint_headers: vec![header::CONTENT_TYPE],
            stored_headers: DEFAULT_STORED_HEADERS.to_vec(),
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            policy: StorePolicy::final_responses(),
            lease: DEFAULT_LEASE,
            ttl: DEFAULT_TTL,
            conflict_retry_after: DEFAULT_CONFLICT_RETRY_AFTER,
            max_wait: None,
            fail_open: false,
            name: Arc::from("default"),
        }
    }
}

impl<St, X> IdempotencyLayerBuilder<St, X> {
    /// Whose requests these are (default [`Unscoped`]: one key space for every client).
    /// Set it whenever more than one client can reach the service, or one client can read
    /// another's responses by presenting its key; see [`scope`](crate::scope) for why.
    pub fn scope<X2: ScopeExtractor>(self, scope: X2) -> IdempotencyLayerBuilder<St, X2> {
        IdempotencyLayerBuilder {
            store: self.store,
            scope,
            header: self.header,
            lenient: self.lenient,
            methods: self.methods,
            require_key: self.require_key,
            fingerprint_headers: self.fingerprint_headers,
            stored_headers: self.stored_headers,
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            policy: self.policy,
            lease: self.lease,
            ttl: self.ttl,
            conflict_retry_after: self.conflict_retry_after,
            max_wait: self.max_wait,
            fail_open: self.fail_open,
            name: self.name,
        }
    }

    /// The key header (default [`DEFAULT_HEADER`], `Idempotency-Key`).
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Whether unquoted keys are accepted besides RFC 8941 sf-strings (default `true`:
    /// Stripe's SDKs and most clients send bare keys). See
    /// [`parse_idempotency_key`](crate::parse_idempotency_key).
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// The methods the layer handles (default `POST` and `PATCH`, the methods RFC 9110
    /// §9.2.2 does not make idempotent and the draft targets). Requests with other methods
    /// pass through untouched.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Whether a request without a key is refused with `400` (default `false`: it passes
    /// through unprotected, as with AWS Powertools' `raise_on_no_idempotency_key`).
    pub fn require_key(mut self, require: bool) -> Self {
        self.require_key = require;
        self
    }

    /// The request headers that are part of the fingerprint besides method, path, query
    /// and body (default `Content-Type`: the same bytes under another media type are
    /// another request).
    pub fn fingerprint_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.fingerprint_headers = names.into_iter().collect();
        self
    }

    /// The response headers kept with a stored response (default
    /// [`DEFAULT_STORED_HEADERS`]). Others reach the first client only.
    pub fn stored_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.stored_headers = names.into_iter().collect();
        self
    }

    /// The largest keyed request body (default [`DEFAULT_MAX_REQUEST_BODY`], 1 MiB); a
    /// larger one is refused with `413`. It is held in memory while the request runs.
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// The largest response body stored (default [`DEFAULT_MAX_RESPONSE_BODY`], 1 MiB). A
    /// larger response is passed through unstored, counted in
    /// [`IdempotencyStats::response_too_large`], and its claim released: the layer cannot
    /// replay what it did not keep, so a retry runs the handler again. Set the cap above
    /// your largest response to an idempotent request.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// Which responses are stored (default [`StorePolicy::final_responses`]; Stripe's rule
    /// is [`StorePolicy::everything`]).
    pub fn store_policy(mut self, policy: StorePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long an in-flight claim lasts if its owner never finishes (default
    /// [`DEFAULT_LEASE`], 60 s). Set it above the handler's timeout: a handler still
    /// running when its lease expires can be run a second time by a retry (its own
    /// completion is then refused by the fencing token).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a completed record is kept (default [`DEFAULT_TTL`], 24 h). After it, the
    /// key is new again. Publish it to clients (draft §2.3).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The `Retry-After` of a `409` for a duplicate of an in-flight request (default
    /// [`DEFAULT_CONFLICT_RETRY_AFTER`], 1 s; sent in whole seconds, at least 1).
    pub fn conflict_retry_after(mut self, after: Duration) -> Self {
        self.conflict_retry_after = after;
        self
    }

    /// Instead of answering a duplicate of an in-flight request with `409` at once, wait up
    /// to `max_wait` for the first to finish and replay its response (default: do not
    /// wait). The store is polled, first after 5 ms and then at doubling intervals up to
    /// 200 ms. If the first request releases its claim, the waiting one claims the key and
    /// runs; if `max_wait` passes, it gets the `409`. A waiting request gives up the inner
    /// service's readiness (say, a concurrency permit of a layer below) and readies it again
    /// before each new claim.
    pub fn wait_for_in_flight(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// What to do when the store fails (default `false`: fail closed with `503` and
    /// `Retry-After`, so that a request is never run without protection; `true` runs it
    /// without idempotency). Both are traced and counted.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// The name of this layer in traces and metrics labels (default `"default"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    fn validate(&self) -> Result<(), InvalidIdempotencyConfig> {
        let invalid = |reason| Err(InvalidIdempotencyConfig { reason });
        if self.lease.is_zero() {
            return invalid("lease must be greater than zero");
        }
        if self.ttl.is_zero() {
            return invalid("ttl must be greater than zero");
        }
        if self.max_request_body == 0 {
            return invalid("max_request_body must be at least 1");
        }
        if self.max_wait.is_some_and(|wait| wait.is_zero()) {
            return invalid("wait_for_in_flight must be greater than zero");
        }
        if self.methods.iter().any(|m| m.is_safe()) {
            return invalid("methods must not include safe methods (GET, HEAD, OPTIONS, TRACE)");
        }
        Ok(())
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`InvalidIdempotencyConfig`] when a duration is zero, the request cap is zero, or a
    /// safe method is listed.
    pub fn build(self) -> Result<IdempotencyLayer<St, X>, InvalidIdempotencyConfig>
    where
        St: IdempotencyStore,
        X: ScopeExtractor,
    {
        self.validate()?;
        let config = Config {
            store: self.store,
            scope: self.scope,
            header: self.header,
            lenient: self.lenient,
            methods: self.methods,
            require_key: self.require_key,
            fingerprint_headers: self.fingerprint_headers,
            stored_headers: self.stored_headers,
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            policy: self.policy,
            lease: self.lease,
            ttl: self.ttl,
            conflict_retry_after: self.conflict_retry_after,
            max_wait: self.max_wait,
            fail_open: self.fail_open,
            stats: Arc::default(),
            name: self.name,
            prefixes: Prefixes::new(),
        };
        Ok(IdempotencyLayer {
            config: Arc::new(config),
        })
    }
}
