//! Stable, allocation-free consistent hashing, and a tower router by key (work in progress).
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
pub use crate::stable::{StableHash, StableHasher, stable_hash64};
