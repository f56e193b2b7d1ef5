//! A hybrid logical clock (HLC) for tower services: timestamps that follow wall-clock time
//! yet order every event after its causes, across machines whose clocks disagree.
//!
//! # Overview
//!
//! - [`Hlc`]: a lock-free clock (one atomic). [`Hlc::now`] issues unique, strictly
//!   increasing [`Timestamp`]s; [`Hlc::update`] merges a timestamp from another node and
//!   refuses one further ahead than the max offset (500 ms by default) with
//!   [`ClockOffsetExceeded`].
//! - [`Timestamp`]: 64 bits, 52 of microseconds and 12 of logical counter, compared as
//!   integers; big-endian bytes that sort like time; `Display`/`FromStr` as RFC 3339 plus
//!   the counter; serde behind the `serde` feature.
//! - [`HlcLayer`]: carries timestamps in an HTTP header (`hlc-timestamp`), merging on the
//!   way in and stamping on the way out, as server or client middleware.
//! - [`version_vector`]: version vectors, for when you must detect concurrent updates rather
//!   than order them.
//!
//! Why an HLC: wall clocks on different machines disagree by milliseconds, so ordering
//! events by wall time can put an effect before its cause. A logical (Lamport) clock orders
//! causes correctly but its numbers mean nothing to a human. An HLC is both: it stays within
//! the clock skew of physical time and never orders an effect before its cause.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use steadfast_core::clock::ManualClock;
//! use steadfast_hlc::Hlc;
//!
//! // Node b's wall clock runs 80 ms behind node a's.
//! let a = Hlc::with_clock(ManualClock::new(UNIX_EPOCH + Duration::from_millis(10_080)));
//! let b = Hlc::with_clock(ManualClock::new(UNIX_EPOCH + Duration::from_millis(10_000)));
//!
//! let request = a.now();                             // a sends
//! let reply = b.update_and_now(request).unwrap();    // b receives, then replies
//! assert!(reply > request);                          // by wall clock it would be 80 ms earlier
//! assert!(a.update_and_now(reply).unwrap() > reply);
//! ```
//!
//! # Feature flags
//!
//! - `serde`: `Serialize`/`Deserialize` for [`Timestamp`], [`NodeId`], [`UniqueTimestamp`]
//!   and [`VersionVector`](version_vector::VersionVector).
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod future;
pub mod header;
mod hlc;
mod layer;
mod sync;
mod timestamp;
pub mod version_vector;

pub use crate::hlc::{
    ClockOffsetExceeded, DEFAULT_MAX_OFFSET, Hlc, HlcBuilder, InvalidMaxOffset, MAX_MAX_OFFSET,
};
pub use crate::layer::{HlcLayer, HlcService};
pub use crate::timestamp::{NodeId, ParseTimestampError, Timestamp, UniqueTimestamp};
