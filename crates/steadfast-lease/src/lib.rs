//! Leases that are safe to rely on: fencing tokens, a lease-guarded [`Singleton`] runner, a
//! resource-side [`FenceGate`] and a [`LeaderOnlyLayer`] for tower.
//!
//! Leader-election crates usually hand out "you are the leader" and nothing else. That is
//! not enough: a leader can pause (GC, `SIGSTOP`, a VM migration, a slow disk, a delayed
//! packet) past the end of its lease while another replica takes over, then wake up and
//! write. etcd's documentation, Jepsen's etcd analysis and Kleppmann's "How to do
//! distributed locking" all conclude the same: **a lease cannot give mutual exclusion
//! without a fencing token checked at the resource.** This crate gives every lease a token
//! and ships the check.
//!
//! # Overview
//!
//! - [`LeaseStore`]: the backend trait. Acquire, renew, release and read the holder; every
//!   transition a compare-and-set; tokens ([`FencingToken`]) strictly increasing per name
//!   across changes of holder and never reset; expiry decided by the store's own clock.
//! - [`MemoryLeaseStore`]: the embedded default (tokio's monotonic clock, so tests can
//!   pause time). `RedisLeaseStore` (feature `redis`), `PostgresLeaseStore` (feature
//!   `postgres`) and `EtcdLeaseStore` (feature `etcd`) for fleets.
//! - [`Singleton`]: runs a job only while this replica holds the lease. It campaigns with
//!   jitter, renews every ttl/3, computes its own deadline from the instant the last
//!   successful renewal was **sent** (ttl minus a safety margin, on the monotonic clock),
//!   cancels the job before the store can expire the lease even if the store never
//!   answers, campaigns again after a loss, and on shutdown lets the job finish, then
//!   releases. The job gets a [`LeaseGuard`] with the token and the stop signals.
//! - [`FenceGate`]: the resource-side check: per resource, the highest token accepted and
//!   its holder; a lower token, or an equal token from another holder, is refused
//!   ([`Fenced`]).
//! - [`LeaderOnlyLayer`]: a tower layer that serves only on the leader and otherwise
//!   answers `503` with `x-leader: <holder>` (HTTP) or [`NotLeader`] (any protocol).
//! - `faulty::FaultyStore` (feature `test-util`): a fault-injecting store wrapper for tests.
//!
//! # Example
//!
//! Two replicas share a store; the first leads. It pauses longer than the ttl (here: its
//! task is simply not polled), the second takes over with a higher token, and the first
//! one's late write is refused by the resource.
//!
//! ```
//! use std::time::Duration;
//! use steadfast_lease::{Fenced, FenceGate, LeaseStore, LeaseTerms, MemoryLeaseStore, Singleton};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let store = MemoryLeaseStore::new();
//! let gate = FenceGate::new();
//! let ttl = Duration::from_secs(15);
//!
//! // Replica A acquires by hand and writes with its token.
//! let a = store.try_acquire("job", "a", LeaseTerms::new(ttl)).await?.expect("free");
//! gate.admit("table", "a", a.token())?;
//!
//! // A pauses for 20 s without renewing; B's singleton takes the lease over.
//! tokio::time::sleep(Duration::from_secs(20)).await;
//! let b = Singleton::builder(store.clone(), "job", "b").ttl(ttl).build()?;
//! let resource = &gate;
//! let b_token = b
//!     .run(|guard| async move {
//!         resource.admit("table", guard.holder(), guard.token())?;
//!         Ok::<_, Fenced>(guard.token()) // done: the runner releases the lease
//!     })
//!     .await??;
//! assert!(b_token > a.token());
//!
//! // A wakes up and writes with its old token: refused.
//! let refused = gate.admit("table", "a", a.token()).unwrap_err();
//! assert_eq!(refused.latest(), b_token);
//! // And its renewal fails: the lease is lost, not merely unreachable.
//! assert!(store.renew(&a).await.unwrap_err().is_lost());
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! | setting | default | source and reason |
//! |---|---|---|
//! | ttl | 15 s | client-go `LeaseDuration` for the Kubernetes control plane |
//! | renewal | every ttl/3 (5 s) | etcd's Go client keep-alive (`nextKeepAlive = now + TTL/3`); two more tries fit before the deadline |
//! | safety margin | ttl/100 + 2 ms (152 ms) | Redlock's clock-drift allowance (rslock); tolerates a holder clock 1% slower than the store's. Network delay needs none: the deadline counts from the *send* |
//! | retry period | 2 s (or ttl/3 if shorter), jittered in [½, 1] | client-go `RetryPeriod`; jitter inside one period keeps a graceful handoff within one period (client-go's own 1.2 jitter factor can wait 2.2 periods) |
//! | store call timeout | ttl/3 | an answer later than that is of no use to the next renewal |
//! | takeover delay | 0 | Chubby's lock-delay defaults to 1 min for servers that cannot check sequencers; with a [`FenceGate`] it is not needed |
//!
//! # Time
//!
//! Expiry is measured on monotonic clocks only: the store's own (tokio's `Instant` for the
//! memory store, Redis's `PX` expiry, PostgreSQL's `clock_timestamp()`, etcd's lessor) for
//! when the lease ends, and the holder's own for its deadline. No decision compares a wall time
//! written by one machine with another machine's clock (the pitfall of
//! `kube-leader-election` and `kube-lease-manager`), so wall-clock steps do not change who
//! holds a lease. Clock *rate* differences are what the safety margin absorbs.
//!
//! # Backends
//!
//! | backend | feature | acquire | token |
//! |---|---|---|---|
//! | Redis | `redis` | one Lua script: `SET key holder:token NX PX ttl` + `INCR counter`; renew and release compare holder and token | the `INCR`ed counter; a failover can lose it, which is why [`FenceGate`] also refuses an equal token from another holder |
//! | PostgreSQL | `postgres` | `INSERT … ON CONFLICT … WHERE expires_at <= clock_timestamp()`; rows never deleted | the `token` column |
//! | etcd | `etcd` | lease grant (`ceil(ttl)` whole seconds) + txn on `create_revision == 0` putting the holder with the lease; renew = txn compare (create revision, holder) + one keep-alive, every ttl/3 | the key's create revision: strictly increasing, never reset, not consecutive |
//!
//! # Feature flags
//!
//! - `test-util`: the `faulty` module: `FaultyStore`, a fault-injecting [`LeaseStore`]
//!   wrapper (unreachable, hanging, slow, lost replies, conflicts) with a call log.
//! - `redis`: `RedisLeaseStore` (the `redis` crate, async, a `ConnectionManager`).
//! - `postgres`: `PostgresLeaseStore` (`tokio-postgres`), with `ensure_schema()` and
//!   `fence_predicate()` for fenced writes inside the database.
//! - `etcd`: `EtcdLeaseStore` (`etcd-client`; its build needs `protoc`, Debian's
//!   `protobuf-compiler`).
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod error;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
mod etcd;
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod faulty;
mod fence;
pub mod future;
mod layer;
mod lease;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;
mod rng;
mod service;
pub mod singleton;
mod state;
mod store;
mod util;

#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use self::etcd::EtcdLeaseStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::PostgresLeaseStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisLeaseStore;
pub use error::{Fenced, LeaseError, LeaseLost, NotLeader, Stopped, StoreError};
pub use fence::FenceGate;
pub use layer::{LeaderOnlyLayer, RejectError, RejectHttp};
pub use lease::{FencingToken, Lease, LeaseHolder, LeaseTerms};
pub use memory::MemoryLeaseStore;
pub use service::LeaderOnly;
pub use singleton::{LeaseGuard, ShutdownHandle, Singleton, SingletonBuilder};
pub use state::LeaderState;
pub use store::LeaseStore;
