//! A tower service that routes each request by key to the member that owns it: sharded
//! caches, stateful backends, anything where the same key should reach the same member.
//!
//! - [`HashRouter`]: a fixed list of member services and a [`Placement`](crate::Placement)
//!   built over the same members (member `i` of the placement is service `i`).
//! - [`DiscoverRouter`]: members inserted and removed by a tower
//!   [`Discover`](tower::discover::Discover) stream; a `rebuild` callback builds the new
//!   placement from the current member keys after each batch of changes.
//!
//! Each request's key comes from a key function `Fn(&Req) -> K` with `K:`
//! [`StableHash`](crate::StableHash), hashed with [`stable_hash64`](crate::stable_hash64), so
//! every process routes a key to the same member. The key cannot borrow from the request; to
//! route by a borrowed key (a path, a header), return its hash:
//! `|req| stable_hash64(req.uri().path())` (the `u64` is hashed again, which keeps placement
//! stable and costs a few nanoseconds).
//!
//! # Readiness and fallback
//!
//! `poll_ready` cannot know the key, so it reserves nothing and is always ready
//! ([`DiscoverRouter`] applies membership changes there first). tower's `Steer` instead waits
//! for **every** member to be ready, so one slow member blocks all keys; here only the
//! requests that need it wait.
//!
//! Readiness is driven per request. `call` takes the key's **candidates**: its owner and up
//! to [`fallbacks`](HashRouter::fallbacks) more members in its preference order
//! ([`Placement::replicas`](crate::Placement::replicas); default [`DEFAULT_FALLBACKS`] = 1,
//! at most [`MAX_FALLBACKS`] = 3). It clones each candidate's service in turn and polls it
//! once, without a task: the first that is **ready right now** serves the request at once
//! (usually the owner, and then no other member is cloned). When none is, the
//! [response future](future::ResponseFuture) keeps the candidates' clones and polls them
//! with the caller's task, in preference order, until one is ready; that one serves it. So
//! the owner serves whenever it is ready when the request arrives or when several become
//! ready together, and a request falls back only when its owner is not ready right now.
//! Falling back trades affinity for latency; the next member in preference order is the one
//! that would take the key over if the owner left, so it is the natural second home.
//!
//! With [`strict`](HashRouter::strict) (`fallbacks(0)`) a request always goes to its owner
//! and waits for it.
//!
//! Members must be `Clone`, and their clones should share state (a `Buffer`, a connection
//! pool, an HTTP client): every call works on fresh clones, never on the router's own
//! services, which are never polled.
//!
//! # Bounded loads
//!
//! With a [`BoundedLoad`](crate::bounded::BoundedLoad)
//! ([`HashRouter::bounded_load`]), members at their cap are skipped: the candidates are the
//! first `1 + fallbacks` members **under their cap** in the key's preference order, checked
//! at `call`. A hot key thus spreads to the next members once its owner is at cap, and only
//! while it is. The request counts as in flight on the member that serves it from when it
//! is dispatched until its response future completes or is dropped (its
//! [`Ticket`](crate::bounded::Ticket) lives in the future). A request that waited for
//! readiness is counted on its member when it is dispatched, even if that member reached its
//! cap meanwhile; and calls made at the same moment on other threads (router clones share
//! the counters) can both take a member's last slot, so a cap can be exceeded by up to the
//! number of such concurrent calls. A streamed response body is not counted: the request
//! ends when its response future does.
//!
//! # Errors
//!
//! Both routers fail with a [`BoxError`](steadfast_core::error::BoxError):
//!
//! - [`NoMembers`] when there are no members (downcast to tell);
//! - the serving member's errors, from its `poll_ready` or its response future, as they came.
//!   A candidate whose `poll_ready` fails fails the request (no fallback on errors: tower
//!   treats such a service as broken; remove it through `Discover`, or wrap members in a
//!   reconnecting layer).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use steadfast_hash::Placement;
//! use steadfast_hash::bounded::BoundedLoad;
//! use steadfast_hash::router::HashRouter;
//! use tower::{ServiceExt, service_fn};
//! # /// Member `hash % n`, then the next ones: use a ring, Maglev or rendezvous instead.
//! # struct Modulo(usize);
//! # impl Placement for Modulo {
//! #     fn len(&self) -> usize { self.0 }
//! #     fn place(&self, h: u64) -> Option<usize> { (self.0 > 0).then(|| (h % self.0 as u64) as usize) }
//! #     fn replicas(&self, h: u64, out: &mut [usize]) -> usize {
//! #         let k = out.len().min(self.0);
//! #         for (i, slot) in out[..k].iter_mut().enumerate() { *slot = ((h % self.0 as u64) as usize + i) % self.0; }
//! #         k
//! #     }
//! # }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), steadfast_core::error::BoxError> {
//! // Three cache shards; each answers with its own name.
//! let shards: Vec<_> = ["a", "b", "c"]
//!     .into_iter()
//!     .map(|name| service_fn(move |key: String| async move {
//!         Ok::<_, Infallible>(format!("{key} from shard {name}"))
//!     }))
//!     .collect();
//!
//! let router = HashRouter::new(shards, Modulo(3), |key: &String| key.clone())
//!     .bounded_load(BoundedLoad::new(3));
//!
//! let owner = router.owner(&String::from("user:42")).expect("members");
//! let answer = router.clone().oneshot(String::from("user:42")).await?;
//! assert_eq!(answer, format!("user:42 from shard {}", ["a", "b", "c"][owner]));
//! // The response completed: nothing counts as in flight any more.
//! assert_eq!(router.load().map(|load| load.total_in_flight()), Some(0));
//! # Ok(())
//! # }
//! ```

mod discover;
pub mod error;
pub mod future;
mod service;

pub use self::discover::DiscoverRouter;
pub use self::error::NoMembers;
pub use self::service::HashRouter;

/// The most fallbacks a request may use (the owner plus this many candidates are kept in
/// the response future, without allocating).
pub const MAX_FALLBACKS: usize = 3;

/// Fallbacks used unless set: one, the member that would own the key if its owner left.
pub const DEFAULT_FALLBACKS: usize = 1;
