//! A retry layer for tower services (work in progress).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod backoff;
pub mod body;
pub mod budget;
mod error;
pub mod future;
pub mod hedge;
mod layer;
pub mod policy;
pub mod replay;
pub mod rng;
mod service;
mod stats;

pub use crate::error::{AttemptTimedOut, DeadlineExceeded, InvalidRetryConfig};
pub use crate::layer::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RETRY_AFTER, RetryLayer, RetryLayerBuilder,
};
pub use crate::service::Retry;
pub use crate::stats::RetryStats;
