//! The [`DiscoverRouter`] service: members from a tower [`Discover`] stream.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use steadfast_core::error::BoxError;
use tower::discover::{Change, Discover};
use tower_service::Service;

use super::future::{ResponseFuture, route};
use super::{DEFAULT_FALLBACKS, MAX_FALLBACKS};
use crate::bounded::BoundedLoad;
use crate::placement::Placement;
use crate::stable::{StableHash, stable_hash64};

/// Routes each request to the member that owns its key, with members inserted and removed
/// by a tower [`Discover`] stream. See the [module docs](super) for readiness, fallback and
/// errors.
///
/// `poll_ready` applies every change the stream has ready, then calls `rebuild` once with the
/// current member keys, in member order, to build the new placement: member `i` of the
/// placement must be `keys()[i]`. An insert appends a member (or replaces the service of a
/// member with the same key, keeping the placement); a remove shifts the later members down.
/// With no members, calls fail with [`NoMembers`](super::NoMembers) and `rebuild` is not
/// called.
///
/// Requests already routed keep their own clone of their member's service, so removing a
/// member does not cancel them; with a bounded load they stop counting towards the average
/// at once (see [`BoundedLoad::remove`]).
///
/// When the stream ends, the members stay as they are.
///
/// Not `Clone` (a `Discover` stream has one consumer): put it behind a `Buffer` to share it.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
///
/// use steadfast_hash::Placement;
/// use steadfast_hash::router::DiscoverRouter;
/// use tower::discover::ServiceList;
/// use tower::{Service, ServiceExt, service_fn};
/// # /// Member `hash % n`, then the next ones: use a ring, Maglev or rendezvous instead.
/// # struct Modulo(usize);
/// # impl Placement for Modulo {
/// #     fn len(&self) -> usize { self.0 }
/// #     fn place(&self, h: u64) -> Option<usize> { (self.0 > 0).then(|| (h % self.0 as u64) as usize) }
/// #     fn replicas(&self, h: u64, out: &mut [usize]) -> usize {
/// #         let k = out.len().min(self.0);
/// #         for (i, slot) in out[..k].iter_mut().enumerate() { *slot = ((h % self.0 as u64) as usize + i) % self.0; }
/// #         k
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), steadfast_core::error::BoxError> {
/// let shard = |name: &'static str| {
///     service_fn(move |key: u64| async move { Ok::<_, Infallible>(format!("{key} on {name}")) })
/// };
/// // A fixed list for the example; in production, a stream of inserts and removals from
/// // service discovery. `ServiceList` numbers its members 0, 1, ...
/// let members = ServiceList::new([shard("a"), shard("b")]);
/// let mut router = DiscoverRouter::new(
///     members,
///     |keys: &[usize]| Ok::<_, Infallible>(Modulo(keys.len())),
///     |key: &u64| *key,
/// );
///
/// let answer = router.ready().await?.call(7).await?;
/// assert_eq!(router.keys(), [0, 1]);
/// let owner = router.owner(&7).expect("members");
/// assert_eq!(answer, format!("7 on {}", ["a", "b"][owner]));
/// # Ok(())
/// # }
/// ```
pub struct DiscoverRouter<D, P, F, R>
where
    D: Discover,
{
    discover: D,
    discover_done: bool,
    rebuild: R,
    keys: Vec<D::Key>,
    services: Vec<D::Service>,
    placement: Option<P>,
    key_fn: F,
    load: Option<BoundedLoad>,
    fallbacks: usize,
}

impl<D, P, F, R> DiscoverRouter<D, P, F, R>
where
    D: Discover,
{
    /// A router with no members yet: they come from `discover` at the first `poll_ready`.
    /// `rebuild` builds a placement over the given member keys (it may fail, e.g. on weights
    /// it derives); `key_fn` takes each request's key.
    pub fn new(discover: D, rebuild: R, key_fn: F) -> Self {
        Self {
            discover,
            discover_done: false,
            rebuild,
            keys: Vec::new(),
            services: Vec::new(),
            placement: None,
            key_fn,
            load: None,
            fallbacks: DEFAULT_FALLBACKS,
        }
    }

    /// Tries up to `fallbacks` more members when the owner is not ready right now; see
    /// [`HashRouter::fallbacks`](super::HashRouter::fallbacks).
    pub fn fallbacks(mut self, fallbacks: usize) -> Self {
        self.fallbacks = fallbacks.min(MAX_FALLBACKS);
        self
    }

    /// Strict affinity; see [`HashRouter::strict`](super::HashRouter::strict).
    pub fn strict(self) -> Self {
        self.fallbacks(0)
    }

    /// Bounds the load with `load`'s balance factor: members at their cap are skipped. `load`
    /// is resized to the current members and follows membership changes (new members get
    /// weight 1).
    pub fn bounded_load(mut self, mut load: BoundedLoad) -> Self {
        load.resize(self.services.len());
        self.load = Some(load);
        self
    }

    /// The member keys, by index.
    pub fn keys(&self) -> &[D::Key] {
        &self.keys
    }

    /// The member services, by index.
    pub fn services(&self) -> &[D::Service] {
        &self.services
    }

    /// The current placement; `None` with no members.
    pub fn placement(&self) -> Option<&P> {
        self.placement.as_ref()
    }

    /// The in-flight counters, with a bounded load.
    pub fn load(&self) -> Option<&BoundedLoad> {
        self.load.as_ref()
    }

    /// The in-flight counters, mutably (to set weights).
    pub fn load_mut(&mut self) -> Option<&mut BoundedLoad> {
        self.load.as_mut()
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
        let placement = self.placement.as_ref()?;
        placement.place(stable_hash64(&(self.key_fn)(request)))
    }

    /// Applies one change; returns whether the member keys changed.
    fn apply(&mut self, change: Change<D::Key, D::Service>) -> bool {
        match change {
            Change::Insert(key, service) => {
                if let Some(index) = self.keys.iter().position(|k| *k == key) {
                    self.services[index] = service;
                    return false;
                }
                self.keys.push(key);
                self.services.push(service);
                if let Some(load) = &mut self.load {
                    load.resize(self.services.len());
                }
                true
            }
            Change::Remove(key) => {
                let Some(index) = self.keys.iter().position(|k| *k == key) else {
                    return false;
                };
                self.keys.remove(index);
                self.services.remove(index);
                if let Some(load) = &mut self.load {
                    load.remove(index);
                }
                true
            }
        }
    }

    /// Rebuilds the placement for the current keys. On error the router has no placement
    /// (calls fail with `NoMembers`) until a later change rebuilds it.
    fn rebuild_placement<E>(&mut self) -> Result<(), BoxError>
    where
        R: Fn(&[D::Key]) -> Result<P, E>,
        E: Into<BoxError>,
    {
        self.placement = None;
        if !self.keys.is_empty() {
            self.placement = Some((self.rebuild)(&self.keys).map_err(Into::into)?);
        }
        Ok(())
    }
}

impl<D, P, F, R, E, K, Req> Service<Req> for DiscoverRouter<D, P, F, R>
where
    D: Discover + Unpin,
    D::Error: Into<BoxError>,
    D::Service: Service<Req> + Clone,
    <D::Service as Service<Req>>::Error: Into<BoxError>,
    R: Fn(&[D::Key]) -> Result<P, E>,
    E: Into<BoxError>,
    P: Placement,
    F: Fn(&Req) -> K,
    K: StableHash,
{
    type Response = <D::Service as Service<Req>>::Response;
    type Error = BoxError;
    type Future = ResponseFuture<D::Service, Req>;

    /// Applies the membership changes the stream has ready, then is ready: the key is not
    /// known yet, so readiness is driven per request by the response future. Fails with the
    /// stream's error, or with `rebuild`'s.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let mut changed = false;
        let mut failed = None;
        while !self.discover_done {
            match Pin::new(&mut self.discover).poll_discover(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.discover_done = true,
                Poll::Ready(Some(Ok(change))) => changed |= self.apply(change),
                Poll::Ready(Some(Err(error))) => {
                    failed = Some(error.into());
                    break;
                }
            }
        }
        if changed {
            self.rebuild_placement()?;
        }
        match failed {
            Some(error) => Poll::Ready(Err(error)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let hash = stable_hash64(&(self.key_fn)(&request));
        route(
            &self.services,
            self.placement.as_ref(),
            self.load.as_ref(),
            self.fallbacks,
            hash,
            request,
        )
    }
}

impl<D, P, F, R> fmt::Debug for DiscoverRouter<D, P, F, R>
where
    D: Discover,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoverRouter")
            .field("members", &self.keys.len())
            .field("discover_done", &self.discover_done)
            .field("fallbacks", &self.fallbacks)
            .field("load", &self.load)
            .finish_non_exhaustive()
    }
}
