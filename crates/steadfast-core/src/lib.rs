//! The small shared vocabulary of the steadfast crates.
//!
//! Every steadfast crate depends on this one, so it stays small and stable: it holds only
//! what two or more crates need.
//!
//! - [`classify`]: what a finished call means ([`Outcome`](classify::Outcome): success,
//!   failure, overload; retryable; retry-after), with HTTP and gRPC classifiers.
//! - [`error`]: the shared [`Overloaded`](error::Overloaded) error and how it maps to HTTP
//!   `503` and gRPC `RESOURCE_EXHAUSTED`.
//! - [`retry_after`]: a `Retry-After` parser (delta-seconds and all three HTTP-date forms).
//! - [`clock`]: the [`WallClock`](clock::WallClock) trait, the system clock and a manual
//!   clock for tests.
//!
//! # Example
//!
//! A layer that sheds load returns [`Overloaded`](error::Overloaded); a client stack
//! classifies the `503` it becomes and learns when to come back:
//!
//! ```
//! use std::time::Duration;
//! use steadfast_core::classify::{Classify, HttpClassifier, Outcome};
//! use steadfast_core::error::Overloaded;
//!
//! let rejection = Overloaded::with_retry_after(Duration::from_secs(2));
//! let response: http::Response<()> = rejection.to_http_response();
//!
//! let class = HttpClassifier::new().classify_response(&response);
//! assert_eq!(class.outcome(), Outcome::Overload);
//! assert_eq!(class.retry_after(), Some(Duration::from_secs(2)));
//! ```
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.88; see the workspace README for the policy.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod classify;
pub mod clock;
pub mod error;
pub mod retry_after;
pub mod splitmix;
