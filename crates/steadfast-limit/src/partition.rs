//! Partitions of the limit (for example live 90%, batch 10%), enforced only when the limit
//! is saturated: Netflix's `AbstractPartitionedLimiter`.
//!
//! # Semantics
//!
//! Each partition has a share `pct` of the limit `L`; its guaranteed limit is
//! `max(1, ceil(L · pct))`, recomputed from the current `L` at every admission (so it
//! follows the adaptive limit). A request resolved to a partition is admitted
//!
//! 1. whenever fewer than `L` requests are in flight, whatever its partition: an idle
//!    partition's share is lent to the others (**borrowing**);
//! 2. when `L` or more are in flight (**saturated**), only if its partition holds fewer than
//!    its guaranteed limit, even though that takes the total above `L` for a while: a
//!    partition's share is **guaranteed** to it, and the partitions that borrowed give it
//!    back as their requests finish, since they are refused until they are under their own
//!    share again.
//!
//! So at saturation every partition is held to its share, and no partition can be starved
//! by another's burst: it always gets at least `min(its demand, its guaranteed limit)`. The
//! total in flight is at most `L` plus the sum of the guaranteed limits (about `2L`), and
//! it comes back to `L` as borrowed permits are returned. Requests whose partition is not
//! declared go to an implicit `unknown` partition with a share of 0 (a guaranteed limit of
//! 1), as in Netflix.
//!
//! Netflix's optional `partitionRejectDelay` (sleeping before a rejection) is not
//! implemented.
//!
//! # With the layer
//!
//! The partition of a request is only known at `call`, after `poll_ready` reserved (or
//! failed to reserve) a permit, so partitions need [`Mode::FailFast`](crate::Mode::FailFast):
//! `poll_ready` reserves a permit when the limit is not saturated (any partition may use
//! it); when it is, `call` asks the request's partition for its guaranteed share and
//! refuses the call with [`Overloaded`](steadfast_core::error::Overloaded) if the partition
//! has used it up.

use std::fmt;

use crate::error::InvalidLimitConfig;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// The name of the implicit partition of requests whose partition is not declared.
pub const UNKNOWN_PARTITION: &str = "unknown";

/// The partitions of a limit and their shares; see the [module docs](self).
///
/// ```
/// use steadfast_limit::partition::Partitions;
///
/// let partitions = Partitions::new().partition("live", 0.9).partition("batch", 0.1);
/// assert!(partitions.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partitions {
    entries: Vec<(String, f64)>,
}

impl Partitions {
    /// No partitions yet.
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Adds the partition `name` with `share` of the limit, in `(0, 1]`. The shares must
    /// add up to at most 1.
    #[must_use]
    pub fn partition(mut self, name: impl Into<String>, share: f64) -> Self {
        self.entries.push((name.into(), share));
        self
    }

    /// Whether no partition is declared.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the shares and names.
    ///
    /// # Errors
    ///
    /// [`InvalidLimitConfig`] when a share is not in `(0, 1]`, the shares add up to more
    /// than 1, a name is empty, repeated or [`UNKNOWN_PARTITION`].
    pub fn validate(&self) -> Result<(), InvalidLimitConfig> {
        let mut total = 0.0;
        for (i, (name, share)) in self.entries.iter().enumerate() {
            if !(*share > 0.0 && *share <= 1.0) {
                return Err(InvalidLimitConfig::new(
                    "a partition's share must be in (0, 1]",
                ));
            }
            if name.is_empty() || name == UNKNOWN_PARTITION {
                return Err(InvalidLimitConfig::new(
                    "a partition needs a name other than \"\" and \"unknown\"",
                ));
            }
            if self.entries[..i].iter().any(|(other, _)| other == name) {
                return Err(InvalidLimitConfig::new("partition names must be unique"));
            }
            total += share;
        }
        // A little slack for shares like 0.7 + 0.2 + 0.1 that do not add up exactly.
        if total > 1.0 + 1e-9 {
            return Err(InvalidLimitConfig::new(
                "partition shares must add up to at most 1",
            ));
        }
        Ok(())
    }
}

/// Picks a request's partition, by name; a name not declared in the [`Partitions`] (or
/// `None`) goes to the [`UNKNOWN_PARTITION`].
///
/// Any `Fn(&Req) -> &'static str` is a partitioner:
///
/// ```
/// use steadfast_limit::partition::Partitioner;
///
/// let by_path = |path: &String| if path.starts_with("/batch/") { "batch" } else { "live" };
/// assert_eq!(by_path.partition(&"/batch/export".to_owned()), Some("batch"));
/// ```
pub trait Partitioner<Req> {
    /// The name of `request`'s partition.
    fn partition<'a>(&'a self, request: &'a Req) -> Option<&'a str>;
}

impl<Req, F> Partitioner<Req> for F
where
    F: Fn(&Req) -> &'static str,
{
    fn partition<'a>(&'a self, request: &'a Req) -> Option<&'a str> {
        Some(self(request))
    }
}

/// No partitions: the default [`Partitioner`] of the layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoPartitions;

impl<Req> Partitioner<Req> for NoPartitions {
    #[inline]
    fn partition<'a>(&'a self, _: &'a Req) -> Option<&'a str> {
        None
    }
}

/// A snapshot of one partition, from
/// [`Limiter::partition_stats`](crate::Limiter::partition_stats).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The partition's name ([`UNKNOWN_PARTITION`] for undeclared ones).
    pub name: String,
    /// Its share of the limit (0 for the unknown partition).
    pub share: f64,
    /// Its guaranteed limit now: `max(1, ceil(limit · share))`.
    pub limit: usize,
    /// Its requests in flight now.
    pub in_flight: usize,
    /// Its requests refused since the limiter was built.
    pub rejections: u64,
}

/// The partitions' shared state, in the limiter.
pub(crate) struct Table {
    /// The declared partitions, then the unknown one (last).
    partitions: Box<[Partition]>,
}

struct Partition {
    name: String,
    share: f64,
    busy: AtomicUsize,
    rejections: AtomicU64,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.partitions.iter().map(|p| (&p.name, p.share)))
            .finish()
    }
}

impl Table {
    pub(crate) fn new(partitions: Partitions) -> Self {
        let declared = partitions.entries.into_iter();
        let unknown = std::iter::once((UNKNOWN_PARTITION.to_owned(), 0.0));
        Self {
            partitions: declared
                .chain(unknown)
                .map(|(name, share)| Partition {
                    name,
                    share,
                    busy: AtomicUsize::new(0),
                    rejections: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// The index of the partition called `name` (the unknown partition's for `None` or an
    /// undeclared name).
    pub(crate) fn index(&self, name: Option<&str>) -> u32 {
        let unknown = self.partitions.len() - 1;
        let index = name.map_or(unknown, |name| {
            self.partitions[..unknown]
                .iter()
                .position(|p| p.name == name)
                .unwrap_or(unknown)
        });
        // At most a handful of partitions: the index fits.
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn guaranteed(share: f64, limit: usize) -> usize {
        ((limit as f64 * share).ceil() as usize).max(1)
    }

    /// Counts a request of partition `index` admitted under the limit (borrowing allowed).
    pub(crate) fn enter(&self, index: u32) {
        self.partitions[index as usize]
            .busy
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request of partition `index` in if the partition holds fewer than its
    /// guaranteed share of `limit`; the limit is saturated.
    pub(crate) fn try_enter_guaranteed(&self, index: u32, limit: usize) -> bool {
        let partition = &self.partitions[index as usize];
        let guaranteed = Self::guaranteed(partition.share, limit);
        partition
            .busy
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |busy| {
                (busy < guaranteed).then_some(busy + 1)
            })
            .is_ok()
    }

    pub(crate) fn leave(&self, index: u32) {
        self.partitions[index as usize]
            .busy
            .fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn count_rejection(&self, index: u32) {
        self.partitions[index as usize]
            .rejections
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self, limit: usize) -> Vec<PartitionStats> {
        self.partitions
            .iter()
            .map(|p| PartitionStats {
                name: p.name.clone(),
                share: p.share,
                limit: Self::guaranteed(p.share, limit),
                in_flight: p.busy.load(Ordering::Relaxed),
                rejections: p.rejections.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ok = Partitions::new()
            .partition("live", 0.7)
            .partition("batch", 0.2);
        assert!(ok.clone().partition("bulk", 0.1).validate().is_ok());
        assert!(ok.clone().partition("bulk", 0.2).validate().is_err());
        assert!(ok.clone().partition("live", 0.05).validate().is_err());
        assert!(ok.clone().partition("unknown", 0.05).validate().is_err());
        assert!(ok.clone().partition("", 0.05).validate().is_err());
        assert!(ok.partition("none", 0.0).validate().is_err());
        assert!(Partitions::new().validate().is_ok());
    }

    #[test]
    fn guaranteed_limits_round_up_and_never_reach_zero() {
        assert_eq!(Table::guaranteed(0.9, 10), 9);
        assert_eq!(Table::guaranteed(0.1, 10), 1);
        assert_eq!(Table::guaranteed(0.1, 11), 2);
        assert_eq!(Table::guaranteed(0.0, 100), 1);
        assert_eq!(Table::guaranteed(0.5, 1), 1);
    }

    #[test]
    fn names_resolve_to_indices_and_the_rest_is_unknown() {
        let table = Table::new(
            Partitions::new()
                .partition("live", 0.9)
                .partition("batch", 0.1),
        );
        assert_eq!(table.index(Some("live")), 0);
        assert_eq!(table.index(Some("batch")), 1);
        assert_eq!(table.index(Some("other")), 2);
        assert_eq!(table.index(None), 2);
        assert!(table.try_enter_guaranteed(2, 100));
        assert!(
            !table.try_enter_guaranteed(2, 100),
            "unknown: a guaranteed limit of 1"
        );
    }
}
