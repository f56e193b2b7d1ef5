//! Stable, allocation-free consistent hashing, and a tower router by key.
//!
//! Consistent hashing maps keys to members (cache nodes, shards, backends) so that a
//! membership change moves only the keys it must. Every Rust crate for it had a serious flaw:
//! placement that differs between processes (`RandomState`, `DefaultHasher`), an allocation
//! per lookup, duplicate replicas, O(n²) builds, poor balance. This crate fixes all of them:
//!
//! - **One pinned hash.** Keys are hashed through [`StableHash`]: a fixed little-endian,
//!   length-prefixed encoding hashed with XXH3-64, identical on every platform, process and
//!   Rust version, pinned by golden vectors (changing an output is a breaking change).
//! - **Lookups never allocate.** Replicas are written into the caller's buffer and are
//!   always distinct members.
//! - **Bad input is a typed [`BuildError`]** when a placement is built or changed (no
//!   members, a zero / NaN / infinite weight, a duplicate id, a Maglev size that is not
//!   prime); lookups never fail or panic.
//!
//! | algorithm | type | for | lookup | weights | arbitrary removal |
//! |---|---|---|---|---|---|
//! | ring with virtual nodes | [`ring::Ring`] | named members; compatible with Envoy / nginx-style rings | O(log points) | points ∝ weight | yes |
//! | Maglev | [`maglev::Maglev`] | named members, fastest lookup | O(1), one table read | turns ∝ weight | yes (rebuild) |
//! | rendezvous (HRW) | [`rendezvous::Rendezvous`] | named members, few of them; exact weights | O(n) | logarithmic method | yes |
//! | jump, JumpBackHash | [`jump::Jump`], [`jump::JumpBack`] | numbered shards `0..n` | O(1) expected (JumpBack) | no | no (grow and shrink at the end) |
//! | MementoHash | [`memento::Memento`] | numbered shards with arbitrary removal | ≈ jump | no | yes |
//! | bounded loads | [`bounded::BoundedLoad`] | a cap of ⌈(1+ε)·average⌉ in-flight over any of the above | candidates walk | yes | — |
//!
//! All of them implement [`Placement`] (key hash → member index, replicas into a buffer), so
//! [`bounded::BoundedLoad`] and the tower router [`router::HashRouter`] work with any.
//! [`moves`] lists the keys whose owner differs between two placements; `Ring::diff` and
//! `Maglev::diff` give the exact hash ranges that changed owner.
//!
//! # Example
//!
//! ```
//! use steadfast_hash::ring::Ring;
//! use steadfast_hash::{Placement, stable_hash64};
//!
//! let ring = Ring::new([("cache-a", 1.0), ("cache-b", 1.0), ("cache-c", 2.0)])?;
//! let owner = ring.get(&"user:1234").expect("members exist");
//!
//! // Two distinct members in failover order, with no allocation.
//! let mut replicas = [0usize; 2];
//! let n = ring.replicas(stable_hash64("user:1234"), &mut replicas);
//! assert_eq!(n, 2);
//! assert_ne!(replicas[0], replicas[1]);
//! assert_eq!(&ring.members()[replicas[0]], owner);
//! # Ok::<(), steadfast_hash::BuildError>(())
//! ```
//!
//! # tower
//!
//! [`router::HashRouter`] routes each request to the owner of its key (a key extractor
//! `Fn(&Req) -> K`), over a static list of services or a `tower::discover::Discover`
//! ([`router::DiscoverRouter`]). Unlike `tower::steer`, it does not wait for every service
//! to be ready: when the owner is not ready it falls back to the next replica (bounded),
//! and with a [`bounded::BoundedLoad`] it skips members over their cap.
//!
//! # Feature flags
//!
//! - `serde`: serialize and deserialize membership state (re-validated on load).
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod bounded;
mod error;
pub mod jump;
pub mod maglev;
mod members;
pub mod memento;
mod placement;
pub mod rendezvous;
pub mod ring;
pub mod router;
pub mod stable;

pub use crate::error::BuildError;
pub use crate::placement::{Move, Placement, moves};
pub use crate::ring::HashRange;
pub use crate::stable::{StableHash, StableHasher, stable_hash64};
