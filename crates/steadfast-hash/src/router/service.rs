//! The [`HashRouter`] service: a fixed list of members.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use steadfast_core::error::BoxError;
use tower_service::Service;

use super::future::{ResponseFuture, route};
use super::{DEFAULT_FALLBACKS, MAX_FALLBACKS};
use crate::bounded::BoundedLoad;
use crate::error::BuildError;
use crate::placement::Placement;
use crate::stable::{StableHash, stable_hash64};

/// Routes each request to the member that owns its key, over a fixed list of member
/// services. See the [module docs](super) for readiness, fallback and errors.
///
/// Member `i` of the placement is `services[i]`.
///
/// # Clone
///
/// A clone clones every member service (`O(n)` clones: keep members cheap to clone, e.g.
/// behind a `Buffer` or as HTTP client handles) and shares the placement, the key function
/// and the [`BoundedLoad`] counters, so clones count each other's requests. The router keeps
/// no reservation of its own: every call clones its candidates from these prototypes, which
/// are never polled.
pub struct HashRouter<S, P, F> {
    services: Vec<S>,
    placement: Arc<P>,
    key_fn: F,
    load: Option<Arc<BoundedLoad>>,
    fallbacks: usize,
}

impl<S, P, F> HashRouter<S, P, F>
where
    P: Placement,
{
    /// A router over `services`, placing keys with `placement` (built over the same members,
    /// in the same order) and taking each request's key with `key_fn`. It falls back to
    /// [`DEFAULT_FALLBACKS`] more members when the owner is not ready, and has no load bound.
    ///
    /// # Panics
    ///
    /// If `placement.len() != services.len()`; [`try_new`](Self::try_new) returns an error
    /// instead.
    pub fn new(services: Vec<S>, placement: P, key_fn: F) -> Self {
        match Self::try_new(services, placement, key_fn) {
            Ok(router) => router,
            Err(error) => panic!("HashRouter::new: {error}"),
        }
    }

    /// As [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidParameter`] if `placement.len() != services.len()`.
    pub fn try_new(services: Vec<S>, placement: P, key_fn: F) -> Result<Self, BuildError> {
        if placement.len() != services.len() {
            return Err(BuildError::InvalidParameter(
                "the placement must have one member per service",
            ));
        }
        Ok(Self {
            services,
            placement: Arc::new(placement),
            key_fn,
            load: None,
            fallbacks: DEFAULT_FALLBACKS,
        })
    }
}

impl<S, P, F> HashRouter<S, P, F> {
    /// Tries up to `fallbacks` more members, in the key's preference order, when the owner
    /// is not ready right now (at most [`MAX_FALLBACKS`]; larger values are clamped). 0 is
    /// [`strict`](Self::strict).
    pub fn fallbacks(mut self, fallbacks: usize) -> Self {
        self.fallbacks = fallbacks.min(MAX_FALLBACKS);
        self
    }

    /// Strict affinity: every request goes to (and waits for) its owner, or with a bounded
    /// load the first member under its cap. The same as `fallbacks(0)`.
    pub fn strict(self) -> Self {
        self.fallbacks(0)
    }

    /// Bounds the load with `load`'s balance factor and weights: members at their cap are
    /// skipped. `load` is resized to the number of members; its counters are shared by the
    /// router's clones.
    pub fn bounded_load(mut self, mut load: BoundedLoad) -> Self {
        load.resize(self.services.len());
        self.load = Some(Arc::new(load));
        self
    }

    /// The member services, by index.
    pub fn services(&self) -> &[S] {
        &self.services
    }

    /// The placement.
    pub fn placement(&self) -> &P {
        &self.placement
    }

    /// The in-flight counters, with a bounded load.
    pub fn load(&self) -> Option<&BoundedLoad> {
        self.load.as_deref()
    }

    /// How many fallbacks a request may use.
    pub fn max_fallbacks(&self) -> usize {
        self.fallbacks
    }

    /// The member that owns `request`'s key (ignoring readiness and load), or `None` with no
    /// members.
    pub fn owner<Req, K>(&self, request: &Req) -> Option<usize>
    where
        P: Placement,
        F: Fn(&Req) -> K,
        K: StableHash,
    {
        self.placement.place(stable_hash64(&(self.key_fn)(request)))
    }

    /// Consumes the router, returning the member services.
    pub fn into_services(self) -> Vec<S> {
        self.services
    }
}

impl<S, P, F, K, Req> Service<Req> for HashRouter<S, P, F>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Placement,
    F: Fn(&Req) -> K,
    K: StableHash,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    /// Always ready: the key is not known yet, so readiness is driven per request by the
    /// response future (see the [module docs](super#readiness-and-fallback)).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let hash = stable_hash64(&(self.key_fn)(&request));
        route(
            &self.services,
            Some(&*self.placement),
            self.load.as_deref(),
            self.fallbacks,
            hash,
            request,
        )
    }
}

impl<S: Clone, P, F: Clone> Clone for HashRouter<S, P, F> {
    fn clone(&self) -> Self {
        Self {
            services: self.services.clone(),
            placement: Arc::clone(&self.placement),
            key_fn: self.key_fn.clone(),
            load: self.load.clone(),
            fallbacks: self.fallbacks,
        }
    }
}

impl<S, P, F> fmt::Debug for HashRouter<S, P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashRouter")
            .field("members", &self.services.len())
            .field("fallbacks", &self.fallbacks)
            .field("load", &self.load)
            .finish_non_exhaustive()
    }
}
