//! The main types of every enabled crate, and [`ServiceBuilderExt`].
//!
//! ```
//! use steadfast::prelude::*;
//! ```

pub use crate::ServiceBuilderExt;

#[cfg(feature = "hash")]
#[cfg_attr(docsrs, doc(cfg(feature = "hash")))]
pub use steadfast_hash::{StableHash, router::HashRouter};

#[cfg(feature = "hlc")]
#[cfg_attr(docsrs, doc(cfg(feature = "hlc")))]
pub use steadfast_hlc::{Hlc, HlcLayer, NodeId, Timestamp};

#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub use steadfast_idempotency::{
    IdempotencyKey, IdempotencyKeyLayer, IdempotencyLayer, IdempotencyStore, MemoryStore,
};

#[cfg(feature = "lease")]
#[cfg_attr(docsrs, doc(cfg(feature = "lease")))]
pub use steadfast_lease::{
    FencingToken, LeaderOnlyLayer, LeaderState, LeaseStore, MemoryLeaseStore, Singleton,
};

#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub use steadfast_limit::AdaptiveConcurrencyLayer;

#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use steadfast_retry::{HedgeLayer, RetryLayer};

#[cfg(feature = "shed")]
#[cfg_attr(docsrs, doc(cfg(feature = "shed")))]
pub use steadfast_shed::{
    AdaptiveThrottleLayer, Deadline, FromHeader, HttpDeadline, LoadShedLayer,
    OverloadResponseLayer, Priority, ShedLayer,
};
