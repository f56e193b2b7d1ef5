//! The error of [`HedgeLayerBuilder::build`](super::HedgeLayerBuilder::build).

use std::fmt;

/// The hedging configuration is invalid; returned by
/// [`HedgeLayerBuilder::build`](super::HedgeLayerBuilder::build).
///
/// Its `Display` says which setting and which range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHedgeConfig {
    reason: &'static str,
}

impl InvalidHedgeConfig {
    pub(super) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

impl fmt::Display for InvalidHedgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid hedge configuration: {}", self.reason)
    }
}

impl std::error::Error for InvalidHedgeConfig {}
