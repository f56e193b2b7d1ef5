//! A consistent-hash ring with virtual nodes (Karger et al., 1997), kept in flat sorted
//! arrays.
//!
//! Every member owns a number of *points* on a 64-bit ring; a key belongs to the member of
//! the first point at or after the key's hash, wrapping around past `u64::MAX`. Adding a
//! member only takes keys that now fall just before its points; removing one only hands its
//! keys to the next points. This is the scheme of Envoy's `RING_HASH`, HAProxy and nginx.
//!
//! # Points
//!
//! - Member `m` with weight `w` gets `max(1, round(points_per_weight × w))` points.
//! - Its point `i` (counting from 0) is `(m.stable_hash64(), i as u32).stable_hash64()`:
//!   XXH3-64 of the id's 8-byte little-endian hash followed by `i` as 4 little-endian bytes.
//!   This is pinned by golden vectors: **changing it is a breaking change**.
//! - Points are sorted by hash; equal hashes (which need a 64-bit collision) are ordered by
//!   the owners' id hashes, so placement depends on the set of members and weights, not on
//!   the order they were added in. Member *indices* do follow insertion order.
//!
//! # Balance and the default
//!
//! A member with `p` points owns a share whose relative standard deviation is about
//! `1/√p`: 100 points per member give ≈ 10%, 1000 give ≈ 3.2% (measured 3.06% at 100
//! members). The default, [`DEFAULT_POINTS_PER_WEIGHT`] = 256, gives ≈ 6% (the busiest of
//! 100 equal members takes about 1.15× the mean) at 3 KiB per member, between nginx's 160
//! per weight unit and the 1000+ needed for 3%. Raise it with
//! [`RingBuilder::points_per_weight`] when balance matters more than memory and lookup time
//! (a lookup is a binary search over all points), or use [`Maglev`](crate::maglev) or
//! jump-class hashing, whose balance is at the sampling-noise floor.
//!
//! Weights are honoured only as point counts, so weighted shares carry the same `1/√p`
//! noise: with 1000 points per weight unit, a weight-1 member's share is within about
//! ±10% (3σ) of its nominal value, a weight-4 member's within ±5%.
//!
//! # Complexity
//!
//! With `P` points in total: lookups are one binary search, O(log P), and never allocate;
//! [`Ring::add`] sorts only the new member's points and merges them in, O(p log p + P);
//! [`Ring::remove`] filters, O(P); memory is 12 bytes per point. `P` is limited to
//! [`MAX_POINTS`].
//!
//! # Empty rings
//!
//! Building a ring with no members fails with [`BuildError::NoMembers`]. Removing the last
//! member, though, succeeds and leaves an empty ring on which every lookup returns `None`
//! (membership from service discovery can drop to zero for a while); adding a member
//! brings it back. An empty ring also round-trips through serde.
//!
//! # Example
//!
//! ```
//! use steadfast_hash::ring::Ring;
//!
//! let mut ring = Ring::new([("cache-a", 1.0), ("cache-b", 1.0), ("cache-c", 2.0)])?;
//! let owner = *ring.get("user:1234").unwrap();
//!
//! // Two distinct members, owner first: where to write a second copy.
//! let mut replicas = [None; 2];
//! assert_eq!(ring.get_replicas("user:1234", &mut replicas), 2);
//! assert_eq!(replicas[0], Some(&owner));
//! assert_ne!(replicas[0], replicas[1]);
//!
//! // Adding a member moves only the keys it now owns.
//! let before = ring.clone();
//! ring.add("cache-d", 1.0)?;
//! for range in before.diff(&ring) {
//!     assert_eq!(ring.member(range.to.unwrap()), Some(&"cache-d"));
//! }
//! # Ok::<(), steadfast_hash::BuildError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::ops::RangeInclusive;

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{BuildError, check_weight};
use crate::members::Members;
use crate::placement::Placement;
use crate::stable::StableHash;

/// Points per unit of weight when not set: ≈ 6% standard deviation of the members' shares.
/// See the [module docs](self#balance-and-the-default).
pub const DEFAULT_POINTS_PER_WEIGHT: u32 = 256;

/// The most points a ring may hold (2²⁴, 192 MiB): more fails with
/// [`BuildError::TooLarge`]. Envoy caps its ring at 8M points.
pub const MAX_POINTS: usize = 1 << 24;

/// A consistent-hash ring with virtual nodes over members of type `M`.
///
/// See the [module docs](self) for the algorithm, its pinned point hashes and its defaults.
/// Lookups ([`get`](Ring::get), [`Placement::place`], [`Placement::replicas`]) never
/// allocate.
#[derive(Clone, PartialEq)]
pub struct Ring<M> {
    members: Members<M>,
    points_per_weight: u32,
    /// Point hashes, ascending (ties ordered by the owners' id hashes, then indices).
    points: Vec<u64>,
    /// `owners[k]` is the index of the member that owns `points[k]`.
    owners: Vec<u32>,
}

/// Configures and builds a [`Ring`].
///
/// ```
/// use steadfast_hash::ring::Ring;
///
/// let ring = Ring::builder().points_per_weight(1000).build([("a", 1.0), ("b", 1.0)])?;
/// assert_eq!(ring.point_count(), 2000);
/// # Ok::<(), steadfast_hash::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingBuilder {
    points_per_weight: u32,
}

impl Default for RingBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RingBuilder {
    /// A builder with [`DEFAULT_POINTS_PER_WEIGHT`].
    pub const fn new() -> Self {
        Self {
            points_per_weight: DEFAULT_POINTS_PER_WEIGHT,
        }
    }

    /// Points per unit of weight (at least 1): a member of weight `w` gets
    /// `max(1, round(n × w))` points.
    #[must_use]
    pub const fn points_per_weight(mut self, n: u32) -> Self {
        self.points_per_weight = n;
        self
    }

    /// Builds a ring over `(id, weight)` pairs, in order (the first is member 0).
    ///
    /// # Errors
    ///
    /// [`BuildError::NoMembers`] if there are none, [`BuildError::InvalidWeight`] for a
    /// weight that is not finite and positive, [`BuildError::DuplicateMember`] for a repeated
    /// id, [`BuildError::TooLarge`] beyond [`MAX_POINTS`] points, and
    /// [`BuildError::InvalidParameter`] if points per weight is 0.
    pub fn build<M, I>(self, members: I) -> Result<Ring<M>, BuildError>
    where
        M: StableHash + PartialEq,
        I: IntoIterator<Item = (M, f64)>,
    {
        let ring = self.build_allow_empty(members)?;
        if ring.is_empty() {
            return Err(BuildError::NoMembers);
        }
        Ok(ring)
    }

    fn build_allow_empty<M, I>(self, members: I) -> Result<Ring<M>, BuildError>
    where
        M: StableHash + PartialEq,
        I: IntoIterator<Item = (M, f64)>,
    {
        if self.points_per_weight == 0 {
            return Err(BuildError::InvalidParameter(
                "points per weight must be at least 1",
            ));
        }
        let members = Members::new(members)?;
        let counts: Vec<u64> = members
            .weights()
            .iter()
            .map(|&w| point_count(self.points_per_weight, w))
            .collect();
        let total = counts.iter().fold(0u64, |sum, &c| sum.saturating_add(c));
        check_total(total)?;
        let hashes = members.hashes();
        let mut points: Vec<(u64, u32)> = Vec::with_capacity(total as usize);
        for (index, (&id_hash, &count)) in hashes.iter().zip(&counts).enumerate() {
            // `count` ≤ MAX_POINTS and `index` < u32::MAX, both checked above.
            points.extend((0..count as u32).map(|i| (derive(id_hash, i), index as u32)));
        }
        points.sort_unstable_by(|a, b| point_order(hashes, *a, *b));
        let (points, owners) = points.into_iter().unzip();
        Ok(Ring {
            members,
            points_per_weight: self.points_per_weight,
            points,
            owners,
        })
    }
}

impl<M: StableHash + PartialEq> Ring<M> {
    /// A ring over `(id, weight)` pairs with [`DEFAULT_POINTS_PER_WEIGHT`]. Member indices
    /// follow the input order.
    ///
    /// # Errors
    ///
    /// As [`RingBuilder::build`]: no members, a bad weight, a duplicate id, or too many
    /// points.
    pub fn new<I>(members: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = (M, f64)>,
    {
        RingBuilder::new().build(members)
    }

    /// Adds a member with `weight` and returns its index (the last one). Only keys that now
    /// fall before one of its points move, all of them to the new member.
    ///
    /// O(p log p + P) for `p` new points and `P` in total. On error the ring is unchanged.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidWeight`], [`BuildError::DuplicateMember`], or
    /// [`BuildError::TooLarge`] beyond [`MAX_POINTS`].
    pub fn add(&mut self, id: M, weight: f64) -> Result<usize, BuildError> {
        check_weight(self.members.len(), weight)?;
        let count = point_count(self.points_per_weight, weight);
        check_total((self.points.len() as u64).saturating_add(count))?;
        let index = self.members.push(id, weight)?;
        let hashes = self.members.hashes();
        let id_hash = hashes[index];
        let mut new: Vec<(u64, u32)> = (0..count as u32)
            .map(|i| (derive(id_hash, i), index as u32))
            .collect();
        new.sort_unstable_by(|a, b| point_order(hashes, *a, *b));

        let total = self.points.len() + new.len();
        let mut points = Vec::with_capacity(total);
        let mut owners = Vec::with_capacity(total);
        let mut old = self.points.iter().copied().zip(self.owners.iter().copied());
        let mut old_next = old.next();
        for n in new {
            while let Some(o) = old_next
                && point_order(hashes, o, n) == Ordering::Less
            {
                points.push(o.0);
                owners.push(o.1);
                old_next = old.next();
            }
            points.push(n.0);
            owners.push(n.1);
        }
        for o in old_next.into_iter().chain(old) {
            points.push(o.0);
            owners.push(o.1);
        }
        self.points = points;
        self.owners = owners;
        Ok(index)
    }

    /// Removes a member and returns the index it had; members after it move down by one.
    /// Only its keys move, each to the member of the next point. Removing the last member
    /// leaves an empty ring (see the [module docs](self#empty-rings)).
    ///
    /// O(P). On error the ring is unchanged.
    ///
    /// # Errors
    ///
    /// [`BuildError::UnknownMember`] if `id` is not a member.
    pub fn remove(&mut self, id: &M) -> Result<usize, BuildError> {
        let index = self.members.remove(id)?;
        let gone = index as u32;
        let mut kept = 0;
        for k in 0..self.points.len() {
            let owner = self.owners[k];
            if owner != gone {
                self.points[kept] = self.points[k];
                self.owners[kept] = if owner > gone { owner - 1 } else { owner };
                kept += 1;
            }
        }
        self.points.truncate(kept);
        self.owners.truncate(kept);
        Ok(index)
    }

    /// The index of member `id`, if it is one.
    pub fn index_of(&self, id: &M) -> Option<usize> {
        self.members.index_of(id)
    }

    /// The hash ranges whose owner differs between `self` (before) and `other` (after),
    /// ascending, with adjacent ranges of the same change merged: exactly the keys to hand
    /// over after a membership change. Owners are compared by id; `from` indexes `self`'s
    /// members and `to` indexes `other`'s. The ring wraps, so a range covering the wrap
    /// point appears as two: one ending at `u64::MAX`, one starting at 0.
    ///
    /// O(P + P' + n log n); allocates the result.
    pub fn diff(&self, other: &Self) -> Vec<HashRange> {
        let map = index_map(&self.members, &other.members);
        diff_steps(
            ring_steps(&self.points, &self.owners),
            ring_steps(&other.points, &other.owners),
            |a, b| map[a] == Some(b),
        )
    }
}

impl Ring<()> {
    /// A builder, to set the points per weight: `Ring::builder()` (the member type is chosen by
    /// [`build`](RingBuilder::build)).
    pub const fn builder() -> RingBuilder {
        RingBuilder::new()
    }
}

impl<M> Ring<M> {
    /// How many members there are.
    #[inline]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members (only after removing them all).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.members.len() == 0
    }

    /// The member ids, by index.
    pub fn members(&self) -> &[M] {
        self.members.ids()
    }

    /// The member weights, by index.
    pub fn weights(&self) -> &[f64] {
        self.members.weights()
    }

    /// The member at `index`.
    pub fn member(&self, index: usize) -> Option<&M> {
        self.members.ids().get(index)
    }

    /// Points per unit of weight.
    pub fn points_per_weight(&self) -> u32 {
        self.points_per_weight
    }

    /// How many points the ring holds.
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// The member that owns `key`, or `None` if the ring is empty. Never allocates.
    #[inline]
    pub fn get<K: StableHash + ?Sized>(&self, key: &K) -> Option<&M> {
        self.get_by_hash(key.stable_hash64())
    }

    /// The member that owns a key with this [stable hash](crate::stable).
    #[inline]
    pub fn get_by_hash(&self, hash: u64) -> Option<&M> {
        let owner = *self.owners.get(self.successor(hash))?;
        self.members.ids().get(owner as usize)
    }

    /// Writes up to `out.len()` distinct members for `key` into `out`, owner first, then the
    /// owners of the following points clockwise (skipping members already written): the
    /// members that take over, in order, when the ones before fail. Returns how many it
    /// wrote: the smaller of `out.len()` and [`len`](Ring::len). Never allocates.
    ///
    /// Walks the ring until it has found enough distinct members: O(k) steps of O(k) each
    /// for `k` replicas when `k` is much smaller than the number of members.
    pub fn get_replicas<'a, K: StableHash + ?Sized>(
        &'a self,
        key: &K,
        out: &mut [Option<&'a M>],
    ) -> usize {
        self.get_replicas_by_hash(key.stable_hash64(), out)
    }

    /// As [`get_replicas`](Ring::get_replicas), for a key with this stable hash.
    pub fn get_replicas_by_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a M>]) -> usize {
        let ids = self.members.ids();
        distinct_walk(
            self.walk(hash),
            self.len(),
            out,
            |o| ids.get(o as usize),
            |seen, o| seen.is_some_and(|m| std::ptr::eq(m, &ids[o as usize])),
        )
    }

    /// The index of the first point at or after `hash`, wrapping to 0.
    #[inline]
    fn successor(&self, hash: u64) -> usize {
        let k = self.points.partition_point(|&p| p < hash);
        if k == self.points.len() { 0 } else { k }
    }

    /// The owners of the points from `hash`'s successor on, once round the ring.
    #[inline]
    fn walk(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let (before, after) = self.owners.split_at(self.successor(hash));
        after.iter().chain(before).copied()
    }
}

impl<M> Placement for Ring<M> {
    #[inline]
    fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    fn place(&self, hash: u64) -> Option<usize> {
        self.owners
            .get(self.successor(hash))
            .map(|&owner| owner as usize)
    }

    fn replicas(&self, hash: u64, out: &mut [usize]) -> usize {
        distinct_walk(
            self.walk(hash),
            self.members.len(),
            out,
            |o| o as usize,
            |&seen, o| seen == o as usize,
        )
    }
}

impl<M: fmt::Debug> fmt::Debug for Ring<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("members", &self.members.ids())
            .field("weights", &self.members.weights())
            .field("points_per_weight", &self.points_per_weight)
            .field("points", &self.points.len())
            .finish()
    }
}

/// A range of key hashes whose owner changed, from [`Ring::diff`] or
/// [`Maglev::diff`](crate::maglev::Maglev::diff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRange {
    /// The first hash in the range.
    pub start: u64,
    /// The last hash in the range (inclusive, so a range can end at `u64::MAX`).
    pub end: u64,
    /// The owner before, as an index into the first placement's members (`None`: it had
    /// none).
    pub from: Option<usize>,
    /// The owner after, as an index into the second placement's members (`None`: it has
    /// none).
    pub to: Option<usize>,
}

impl HashRange {
    /// Whether `hash` is in the range.
    #[inline]
    pub fn contains(&self, hash: u64) -> bool {
        self.start <= hash && hash <= self.end
    }

    /// How many hashes the range holds (up to 2⁶⁴, hence `u128`).
    pub fn width(&self) -> u128 {
        u128::from(self.end - self.start) + 1
    }

    /// The range as `start..=end`.
    pub fn range(&self) -> RangeInclusive<u64> {
        self.start..=self.end
    }
}

/// `(id_hash, i as u32).stable_hash64()`, without the streaming hasher: the ring's point
/// hashes and Maglev's offset and skip.
#[inline]
pub(crate) fn derive(id_hash: u64, i: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&id_hash.to_le_bytes());
    bytes[8..].copy_from_slice(&i.to_le_bytes());
    xxh3_64(&bytes)
}

/// `max(1, round(points_per_weight × weight))`, saturating (NaN counts as 0).
fn point_count(points_per_weight: u32, weight: f64) -> u64 {
    ((f64::from(points_per_weight) * weight).round() as u64).max(1)
}

fn check_total(total: u64) -> Result<(), BuildError> {
    if total > MAX_POINTS as u64 {
        return Err(BuildError::TooLarge {
            requested: total,
            limit: MAX_POINTS as u64,
        });
    }
    Ok(())
}

/// Points by hash, then by owner id hash, then by owner index.
#[inline]
fn point_order(id_hashes: &[u64], a: (u64, u32), b: (u64, u32)) -> Ordering {
    a.0.cmp(&b.0)
        .then_with(|| id_hashes[a.1 as usize].cmp(&id_hashes[b.1 as usize]))
        .then_with(|| a.1.cmp(&b.1))
}

/// Writes distinct owners from `owners` into `out` until it holds `min(out.len(), n)` of
/// them, and returns how many it wrote. `emit` turns an owner into the output item and
/// `same` tells whether an item already written is that owner.
#[inline]
pub(crate) fn distinct_walk<T>(
    owners: impl Iterator<Item = u32>,
    n: usize,
    out: &mut [T],
    emit: impl Fn(u32) -> T,
    same: impl Fn(&T, u32) -> bool,
) -> usize {
    let want = out.len().min(n);
    let mut written = 0;
    if want == 0 {
        return 0;
    }
    for owner in owners {
        if !out[..written].iter().any(|seen| same(seen, owner)) {
            out[written] = emit(owner);
            written += 1;
            if written == want {
                break;
            }
        }
    }
    written
}

/// For each member of `from`, its index in `to` (matched by id), if it is there.
pub(crate) fn index_map<M: PartialEq>(from: &Members<M>, to: &Members<M>) -> Vec<Option<usize>> {
    let mut by_hash: Vec<(u64, usize)> = to.hashes().iter().copied().zip(0..).collect();
    by_hash.sort_unstable();
    from.hashes()
        .iter()
        .zip(from.ids())
        .map(|(&hash, id)| {
            let first = by_hash.partition_point(|&(h, _)| h < hash);
            by_hash[first..]
                .iter()
                .take_while(|&&(h, _)| h == hash)
                .map(|&(_, j)| j)
                .find(|&j| to.ids()[j] == *id)
        })
        .collect()
}

/// A ring's ownership as a step function: `(first hash, owner)` for each run, the first
/// starting at 0, starts strictly ascending. `(p[k-1], p[k]]` belongs to `owners[k]`, and
/// `[0, p[0]]` and `(p[last], u64::MAX]` to `owners[0]`.
fn ring_steps<'a>(
    points: &'a [u64],
    owners: &'a [u32],
) -> impl Iterator<Item = (u64, Option<usize>)> + 'a {
    let first = owners.first().map(|&o| o as usize);
    let last = points.last().copied();
    std::iter::once((0, first))
        .chain(
            (1..points.len())
                .filter(move |&k| points[k] != points[k - 1])
                .map(move |k| (points[k - 1] + 1, Some(owners[k] as usize))),
        )
        .chain(last.filter(|&p| p != u64::MAX).map(move |p| (p + 1, first)))
}

/// The ranges where two step functions (as from [`ring_steps`]) disagree, merged.
/// `same(a, b)` tells whether owner `a` of the first is owner `b` of the second.
pub(crate) fn diff_steps(
    a: impl Iterator<Item = (u64, Option<usize>)>,
    b: impl Iterator<Item = (u64, Option<usize>)>,
    same: impl Fn(usize, usize) -> bool,
) -> Vec<HashRange> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut from = a.next().and_then(|(_, o)| o);
    let mut to = b.next().and_then(|(_, o)| o);
    let mut start = 0u64;
    let mut out: Vec<HashRange> = Vec::new();
    loop {
        let next_a = a.peek().map(|&(s, _)| s);
        let next_b = b.peek().map(|&(s, _)| s);
        let next = match (next_a, next_b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let end = next.map_or(u64::MAX, |n| n - 1);
        let differs = match (from, to) {
            (Some(x), Some(y)) => !same(x, y),
            (None, None) => false,
            _ => true,
        };
        if differs {
            match out.last_mut() {
                Some(last)
                    if last.end.wrapping_add(1) == start && last.from == from && last.to == to =>
                {
                    last.end = end;
                }
                _ => out.push(HashRange {
                    start,
                    end,
                    from,
                    to,
                }),
            }
        }
        let Some(next) = next else { break };
        start = next;
        if next_a == Some(next) {
            from = a.next().and_then(|(_, o)| o);
        }
        if next_b == Some(next) {
            to = b.next().and_then(|(_, o)| o);
        }
    }
    out
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! Membership state only: `{"points_per_weight": n, "members": [[id, weight], ...]}`.
    //! The points are rebuilt, and the input re-validated, on deserialize.

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Ring, RingBuilder};
    use crate::stable::StableHash;

    /// `(id, weight)` pairs serialized straight from the member list.
    pub(crate) struct MemberPairs<'a, M>(pub(crate) &'a [M], pub(crate) &'a [f64]);

    impl<M: Serialize> Serialize for MemberPairs<'_, M> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().zip(self.1))
        }
    }

    #[derive(Serialize)]
    struct RingRef<'a, M: Serialize> {
        points_per_weight: u32,
        members: MemberPairs<'a, M>,
    }

    #[derive(Deserialize)]
    struct RingState<M> {
        points_per_weight: u32,
        members: Vec<(M, f64)>,
    }

    impl<M: Serialize> Serialize for Ring<M> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            RingRef {
                points_per_weight: self.points_per_weight,
                members: MemberPairs(self.members.ids(), self.members.weights()),
            }
            .serialize(serializer)
        }
    }

    impl<'de, M> Deserialize<'de> for Ring<M>
    where
        M: Deserialize<'de> + StableHash + PartialEq,
    {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let state = RingState::<M>::deserialize(deserializer)?;
            RingBuilder::new()
                .points_per_weight(state.points_per_weight)
                .build_allow_empty(state.members)
                .map_err(D::Error::custom)
        }
    }
}

#[cfg(feature = "serde")]
pub(crate) use serde_impl::MemberPairs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_is_the_tuple_hash() {
        for (h, i) in [(0u64, 0u32), (42, 7), (u64::MAX, u32::MAX)] {
            assert_eq!(derive(h, i), (h, i).stable_hash64());
        }
    }

    #[test]
    fn steps_cover_the_ring() {
        let points = [5u64, 5, 9, u64::MAX];
        let owners = [1u32, 2, 3, 4];
        let steps: Vec<_> = ring_steps(&points, &owners).collect();
        // [0, 5] → 1 (the first of the equal points), (5, 9] → 3, (9, MAX] → 4, no wrap.
        assert_eq!(steps, [(0, Some(1)), (6, Some(3)), (10, Some(4))]);
        let steps: Vec<_> = ring_steps(&[7], &[0]).collect();
        assert_eq!(steps, [(0, Some(0)), (8, Some(0))]);
        let steps: Vec<_> = ring_steps(&[], &[]).collect();
        assert_eq!(steps, [(0, None)]);
    }
}
