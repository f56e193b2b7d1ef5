//! Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016): a lookup table of prime size `M` filled from per-member
//! permutations, so a lookup is one multiplication and one table read.
//!
//! # Building the table
//!
//! Each member has a permutation of the slots, `offset + j × skip (mod M)`, from its id's
//! [stable hash](crate::stable) `h`:
//!
//! - `offset = (h, 0u32).stable_hash64() % M`,
//! - `skip = (h, 1u32).stable_hash64() % (M − 1) + 1` (so, `M` being prime, the
//!   permutation visits every slot).
//!
//! Members take turns claiming the next free slot of their permutation until the table is
//! full, in rounds `r = 0, 1, 2, …`. In each round the members go in order of their id
//! hashes, and a member that has taken `k` turns takes one more when
//! `k × w_max ≤ r × w` (in `f64`), `w` being its weight and `w_max` the largest: the
//! heaviest members take a turn every round, one of half their weight every other round
//! (like Envoy's weighted Maglev). With equal weights this is the paper's round
//! robin; with weights, each member's slot count is proportional to its weight, give or take
//! one slot, and never below one (everyone takes a turn in round 0). The table depends only
//! on the set of `(id, weight)` pairs and `M`, not on the order members were added in.
//! These rules are pinned by golden vectors: **changing them is a breaking change**.
//!
//! Building takes O(M log M) expected time (finding free slots) and O(M + n) memory: one
//! `u32` per slot plus a cursor per member, no n×M permutation matrix. Scheduling the turns
//! adds O(M) for weights up to 16× their mean and O(M log n) beyond (a heap). Measured on a
//! 2-vCPU VM, release: 20 ms for 1000 equal members at `M` = 655373, 23 ms with weights
//! 1 to 7. [`Maglev::add`] and [`Maglev::remove`]
//! rebuild the table.
//!
//! # Lookups
//!
//! A key with hash `h` belongs to `table[(h × M) >> 64]` (fast range reduction, no `%`): no
//! branches beyond the bounds check, and no allocation.
//!
//! # Table size, balance and disruption
//!
//! Unweighted, every member gets `⌊M/n⌋` or `⌈M/n⌉` slots, so balance is at the sampling-noise
//! floor. `M` must be prime and at least the number of members; use at least `100 × n`.
//! The default, [`DEFAULT_TABLE_SIZE`] = 65537 (the paper's small table, 256 KiB), suits
//! up to ≈ 650 members; the paper's large size is 655373.
//!
//! Maglev is **not minimally disruptive**: a membership change also moves some keys between
//! members that stayed. Removing 1 of 100 members at `M` = 65537 moves 0.56% of keys
//! needlessly on average (0.5–0.62% depending on which member goes) on top of the 1% that
//! must move; adding a 101st moves about as many. A larger table moves fewer (Envoy:
//! "Increasing the table size reduces the amount of disruption"). Use the
//! [ring](crate::ring) or rendezvous hashing when every needless move is costly.
//!
//! # Replicas
//!
//! [`Placement::replicas`] walks the table forward from the key's slot, skipping members
//! already chosen. The fallbacks are therefore *not independent* of the owner: keys in
//! neighbouring slots share them, and when a member fails its keys spread over only the few
//! members that follow its slots, not over all members. Use rendezvous hashing when that
//! matters.
//!
//! # Empty tables
//!
//! As for the [ring](crate::ring#empty-rings): building with no members fails with
//! [`BuildError::NoMembers`], removing the last member leaves an empty placement whose
//! lookups return `None`.
//!
//! # Example
//!
//! ```
//! use steadfast_hash::maglev::Maglev;
//!
//! let mut maglev = Maglev::new([("backend-a", 1.0), ("backend-b", 1.0), ("backend-c", 2.0)])?;
//! let owner = *maglev.get("flow:10.0.0.1:443").unwrap();
//!
//! let mut replicas = [None; 2];
//! assert_eq!(maglev.get_replicas("flow:10.0.0.1:443", &mut replicas), 2);
//! assert_eq!(replicas[0], Some(&owner));
//!
//! // Weight 2 of 4 in total: half of the table.
//! let slots = maglev.table().iter().filter(|&&i| i == 2).count();
//! assert!(slots.abs_diff(65537 / 2) <= 2);
//!
//! let before = maglev.clone();
//! maglev.remove(&"backend-a")?;
//! let moved: u128 = before.diff(&maglev).iter().map(|r| r.width()).sum();
//! assert!(moved < u128::from(u64::MAX) / 3); // about a quarter, plus a little disruption
//! # Ok::<(), steadfast_hash::BuildError>(())
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use crate::error::BuildError;
use crate::members::Members;
use crate::placement::Placement;
use crate::ring::{HashRange, derive, diff_steps, distinct_walk, index_map};
use crate::stable::StableHash;

/// The table size when not set: 65537, prime, the paper's small table (256 KiB). Enough
/// for about 650 members at the recommended `M ≥ 100 × n`.
pub const DEFAULT_TABLE_SIZE: u64 = 65_537;

/// The largest table size accepted (2²⁴, 64 MiB of table): more fails with
/// [`BuildError::TooLarge`]. Envoy caps its table at 5,000,011.
pub const MAX_TABLE_SIZE: u64 = 1 << 24;

/// A free slot while building (member indices are below `MAX_TABLE_SIZE`).
const FREE: u32 = u32::MAX;

/// A Maglev lookup table over members of type `M`.
///
/// See the [module docs](self) for the algorithm, its pinned permutations and its
/// defaults. Lookups ([`get`](Maglev::get), [`Placement::place`], [`Placement::replicas`])
/// never allocate.
#[derive(Clone, PartialEq)]
pub struct Maglev<M> {
    members: Members<M>,
    /// `M`: prime, at least the number of members, at most [`MAX_TABLE_SIZE`].
    size: u32,
    /// Slot → member index; empty when there are no members, else `size` long.
    table: Vec<u32>,
}

/// Configures and builds a [`Maglev`] table.
///
/// ```
/// use steadfast_hash::maglev::Maglev;
///
/// let maglev = Maglev::builder().table_size(655_373).build([("a", 1.0), ("b", 3.0)])?;
/// assert_eq!(maglev.table().len(), 655_373);
/// # Ok::<(), steadfast_hash::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevBuilder {
    table_size: u64,
}

impl Default for MaglevBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MaglevBuilder {
    /// A builder with [`DEFAULT_TABLE_SIZE`].
    pub const fn new() -> Self {
        Self {
            table_size: DEFAULT_TABLE_SIZE,
        }
    }

    /// The table size `M`: a prime, at least the number of members (use `100 × n` or more),
    /// at most [`MAX_TABLE_SIZE`]. Common choices are 65537 and 655373.
    #[must_use]
    pub const fn table_size(mut self, size: u64) -> Self {
        self.table_size = size;
        self
    }

    /// Builds the table over `(id, weight)` pairs, in order (the first is member 0).
    ///
    /// # Errors
    ///
    /// [`BuildError::TooLarge`] above [`MAX_TABLE_SIZE`], [`BuildError::TableSizeNotPrime`],
    /// [`BuildError::NoMembers`], [`BuildError::InvalidWeight`] for a weight that is not
    /// finite and positive, [`BuildError::DuplicateMember`] for a repeated id, and
    /// [`BuildError::TooSmall`] when the table has fewer slots than there are members.
    pub fn build<M, I>(self, members: I) -> Result<Maglev<M>, BuildError>
    where
        M: StableHash + PartialEq,
        I: IntoIterator<Item = (M, f64)>,
    {
        let size = check_size(self.table_size)?;
        let members = Members::new(members)?;
        if members.len() == 0 {
            return Err(BuildError::NoMembers);
        }
        Maglev::with_members(members, size)
    }
}

impl<M: StableHash + PartialEq> Maglev<M> {
    /// A table of [`DEFAULT_TABLE_SIZE`] over `(id, weight)` pairs. Member indices follow
    /// the input order.
    ///
    /// # Errors
    ///
    /// As [`MaglevBuilder::build`]: no members, a bad weight, a duplicate id, or more than
    /// 65537 members.
    pub fn new<I>(members: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = (M, f64)>,
    {
        MaglevBuilder::new().build(members)
    }

    fn with_members(members: Members<M>, size: u32) -> Result<Self, BuildError> {
        check_fits(members.len(), size)?;
        let table = populate(members.hashes(), members.weights(), size);
        Ok(Self {
            members,
            size,
            table,
        })
    }

    /// Adds a member with `weight`, rebuilds the table, and returns the new member's index
    /// (the last one). On error nothing changes.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidWeight`], [`BuildError::DuplicateMember`], or
    /// [`BuildError::TooSmall`] if the table would have fewer slots than members.
    pub fn add(&mut self, id: M, weight: f64) -> Result<usize, BuildError> {
        check_fits(self.members.len() + 1, self.size)?;
        let index = self.members.push(id, weight)?;
        self.rebuild();
        Ok(index)
    }

    /// Removes a member, rebuilds the table, and returns the index it had; members after it
    /// move down by one. Removing the last member leaves an empty table (see the
    /// [module docs](self#empty-tables)).
    ///
    /// # Errors
    ///
    /// [`BuildError::UnknownMember`] if `id` is not a member; nothing changes.
    pub fn remove(&mut self, id: &M) -> Result<usize, BuildError> {
        let index = self.members.remove(id)?;
        self.rebuild();
        Ok(index)
    }

    /// The index of member `id`, if it is one.
    pub fn index_of(&self, id: &M) -> Option<usize> {
        self.members.index_of(id)
    }

    /// The hash ranges whose owner differs between `self` (before) and `other` (after):
    /// the slots that changed owner, as ranges of key hashes, ascending, adjacent ranges of
    /// the same change merged. Owners are compared by id; `from` indexes `self`'s members
    /// and `to` indexes `other`'s. Tables of different sizes can be compared too.
    ///
    /// O(M + M' + n log n); allocates the result.
    pub fn diff(&self, other: &Self) -> Vec<HashRange> {
        let map = index_map(&self.members, &other.members);
        diff_steps(self.steps(), other.steps(), |a, b| map[a] == Some(b))
    }

    fn rebuild(&mut self) {
        self.table = populate(self.members.hashes(), self.members.weights(), self.size);
    }
}

impl Maglev<()> {
    /// A builder, to set the table size: `Maglev::builder()` (the member type is chosen by
    /// [`build`](MaglevBuilder::build)).
    pub const fn builder() -> MaglevBuilder {
        MaglevBuilder::new()
    }
}

impl<M> Maglev<M> {
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

    /// The table size `M` (even while the table is empty).
    pub fn table_size(&self) -> u64 {
        u64::from(self.size)
    }

    /// The lookup table: slot → member index. Empty when there are no members.
    pub fn table(&self) -> &[u32] {
        &self.table
    }

    /// The member that owns `key`, or `None` if there are no members. Never allocates.
    #[inline]
    pub fn get<K: StableHash + ?Sized>(&self, key: &K) -> Option<&M> {
        self.get_by_hash(key.stable_hash64())
    }

    /// The member that owns a key with this [stable hash](crate::stable).
    #[inline]
    pub fn get_by_hash(&self, hash: u64) -> Option<&M> {
        let owner = *self.table.get(self.slot(hash))?;
        self.members.ids().get(owner as usize)
    }

    /// Writes up to `out.len()` distinct members for `key` into `out`: the owner, then the
    /// owners of the following slots, skipping members already written. Returns how many it
    /// wrote: the smaller of `out.len()` and [`len`](Maglev::len). Never allocates. See
    /// the [module docs](self#replicas) on why these fallbacks are not independent.
    pub fn get_replicas<'a, K: StableHash + ?Sized>(
        &'a self,
        key: &K,
        out: &mut [Option<&'a M>],
    ) -> usize {
        self.get_replicas_by_hash(key.stable_hash64(), out)
    }

    /// As [`get_replicas`](Maglev::get_replicas), for a key with this stable hash.
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

    /// The slot of `hash`: `(hash × len) >> 64`, 0 for an empty table.
    #[inline]
    fn slot(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.table.len() as u128) >> 64) as usize
    }

    /// The owners of the slots from `hash`'s on, once round the table. Every member owns a
    /// slot, so this finds them all.
    #[inline]
    fn walk(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let (before, after) = self.table.split_at(self.slot(hash));
        after.iter().chain(before).copied()
    }

    /// Ownership as a step function: slot `s` holds the hashes from `⌈s × 2⁶⁴ / M⌉`.
    fn steps(&self) -> impl Iterator<Item = (u64, Option<usize>)> + '_ {
        let len = self.table.len() as u128;
        let empty = self.table.is_empty().then_some((0, None));
        empty.into_iter().chain(
            self.table
                .iter()
                .zip(0u128..)
                .map(move |(&owner, s)| ((s << 64).div_ceil(len) as u64, Some(owner as usize))),
        )
    }
}

impl<M> Placement for Maglev<M> {
    #[inline]
    fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    fn place(&self, hash: u64) -> Option<usize> {
        self.table.get(self.slot(hash)).map(|&owner| owner as usize)
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

impl<M: fmt::Debug> fmt::Debug for Maglev<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("members", &self.members.ids())
            .field("weights", &self.members.weights())
            .field("table_size", &self.size)
            .finish()
    }
}

/// Checks a table size: at most [`MAX_TABLE_SIZE`], and prime.
fn check_size(size: u64) -> Result<u32, BuildError> {
    if size > MAX_TABLE_SIZE {
        return Err(BuildError::TooLarge {
            requested: size,
            limit: MAX_TABLE_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(BuildError::TableSizeNotPrime { size });
    }
    Ok(size as u32)
}

/// Every member needs a slot of its own.
fn check_fits(members: usize, size: u32) -> Result<(), BuildError> {
    if members as u64 > u64::from(size) {
        return Err(BuildError::TooSmall {
            size: u64::from(size),
            minimum: members as u64,
        });
    }
    Ok(())
}

/// Trial division: sizes are at most 2²⁴, so at most ~700 divisions.
fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// Fills the table: see the [module docs](self#building-the-table).
fn populate(hashes: &[u64], weights: &[f64], size: u32) -> Vec<u32> {
    if hashes.is_empty() {
        return Vec::new();
    }
    if weights.windows(2).all(|w| w[0] == w[1]) {
        round_robin(hashes, size)
    } else {
        weighted(hashes, weights, size)
    }
}

/// Members in the order they take turns within a round: by id hash (then index, for the
/// 2⁻⁶⁴ chance of equal hashes).
fn turn_order(hashes: &[u64]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..hashes.len() as u32).collect();
    order.sort_unstable_by_key(|&i| (hashes[i as usize], i));
    order
}

/// Equal weights: every member takes a turn each round. The same table as the weighted
/// builders give with equal weights, faster.
fn round_robin(hashes: &[u64], size: u32) -> Vec<u32> {
    let mut fill = Filler::new(hashes, size);
    let order = turn_order(hashes);
    loop {
        for &i in &order {
            if fill.claim(i) {
                return fill.table;
            }
        }
    }
}

/// Weighted rounds, by whichever of [`weighted_scan`] and [`weighted_heap`] is faster for
/// these weights (they build the same table).
fn weighted(hashes: &[u64], weights: &[f64], size: u32) -> Vec<u32> {
    let max = weights.iter().copied().fold(0.0, f64::max);
    let total: f64 = weights.iter().sum();
    // The scan visits every member in each of about `size × max / total` rounds.
    if max * hashes.len() as f64 <= SCAN_SKEW * total {
        weighted_scan(hashes, weights, max, size)
    } else {
        weighted_heap(hashes, weights, max, size)
    }
}

/// Up to this ratio of the largest weight to the mean, scanning every member in every round
/// (`SCAN_SKEW × size` cheap checks at most) beats a heap of next turns.
const SCAN_SKEW: f64 = 16.0;

/// Weighted rounds, straight from the rule: each round, every member in turn order.
fn weighted_scan(hashes: &[u64], weights: &[f64], max: f64, size: u32) -> Vec<u32> {
    let mut fill = Filler::new(hashes, size);
    let order = turn_order(hashes);
    let weights: Vec<f64> = order.iter().map(|&i| weights[i as usize]).collect();
    let mut turns = vec![0u32; order.len()];
    let mut round = 0u64;
    loop {
        let r = round as f64;
        for (position, &i) in order.iter().enumerate() {
            if f64::from(turns[position]) * max <= r * weights[position] {
                if fill.claim(i) {
                    return fill.table;
                }
                turns[position] += 1;
            }
        }
        round += 1;
    }
}

/// Weighted rounds with a min-heap of each member's next turn, keyed by `round << 32 |
/// position in turn order`: for skewed weights, where most members sit out most rounds.
/// The heaviest member takes a turn every round, so the table is full within `size` rounds
/// and later rounds are never reached.
fn weighted_heap(hashes: &[u64], weights: &[f64], max: f64, size: u32) -> Vec<u32> {
    let mut fill = Filler::new(hashes, size);
    let order = turn_order(hashes);
    let never = u64::from(size) + 1;
    let mut turns = vec![0u32; hashes.len()];
    let mut heap: BinaryHeap<Reverse<u64>> = (0..order.len() as u64).map(Reverse).collect();
    while let Some(mut next) = heap.peek_mut() {
        let (round, position) = (next.0 >> 32, next.0 & 0xffff_ffff);
        let i = order[position as usize];
        if fill.claim(i) {
            break;
        }
        let taken = &mut turns[i as usize];
        *taken += 1;
        // At most one turn per round, as in the scan.
        let round = next_round(*taken, max, weights[i as usize], never).max(round + 1);
        // Sifts down when `next` is dropped.
        next.0 = round << 32 | position;
    }
    fill.table
}

/// The first round `r` in which a member of weight `w` that has taken `taken` turns takes
/// another: the least `r` with `taken × max ≤ r × w`, or `never` if it is not below that.
fn next_round(taken: u32, max: f64, w: f64, never: u64) -> u64 {
    let due = |r: u64| f64::from(taken) * max <= r as f64 * w;
    let guess = (f64::from(taken) * max / w).ceil();
    // Finite and positive (or +∞): `taken` ≥ 1 and 0 < w ≤ max.
    if guess >= never as f64 {
        return never;
    }
    let mut r = guess as u64;
    // The quotient may be off by a rounding: settle on the exact least round.
    while r < never && !due(r) {
        r += 1;
    }
    while r > 0 && due(r - 1) {
        r -= 1;
    }
    r
}

/// The table being filled and each member's place in its permutation.
struct Filler {
    table: Vec<u32>,
    size: u32,
    next: Vec<u32>,
    skip: Vec<u32>,
    free: u32,
}

impl Filler {
    fn new(hashes: &[u64], size: u32) -> Self {
        let m = u64::from(size);
        Self {
            table: vec![FREE; size as usize],
            size,
            next: hashes.iter().map(|&h| (derive(h, 0) % m) as u32).collect(),
            // `size` ≥ 2, being prime.
            skip: hashes
                .iter()
                .map(|&h| (derive(h, 1) % (m - 1)) as u32 + 1)
                .collect(),
            free: size,
        }
    }

    /// Member `i` claims the next free slot of its permutation; returns whether the table
    /// is now full. The table has a free slot, and the permutation visits every slot.
    #[inline]
    fn claim(&mut self, i: u32) -> bool {
        let (i, size) = (i as usize, self.size);
        let skip = self.skip[i];
        let mut c = self.next[i];
        while self.table[c as usize] != FREE {
            c += skip;
            if c >= size {
                c -= size;
            }
        }
        self.table[c as usize] = i as u32;
        c += skip;
        if c >= size {
            c -= size;
        }
        self.next[i] = c;
        self.free -= 1;
        self.free == 0
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! Membership state only: `{"table_size": m, "members": [[id, weight], ...]}`. The
    //! table is rebuilt, and the input re-validated, on deserialize.

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Maglev, check_size};
    use crate::members::Members;
    use crate::ring::MemberPairs;
    use crate::stable::StableHash;

    #[derive(Serialize)]
    struct MaglevRef<'a, M: Serialize> {
        table_size: u64,
        members: MemberPairs<'a, M>,
    }

    #[derive(Deserialize)]
    struct MaglevState<M> {
        table_size: u64,
        members: Vec<(M, f64)>,
    }

    impl<M: Serialize> Serialize for Maglev<M> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            MaglevRef {
                table_size: u64::from(self.size),
                members: MemberPairs(self.members.ids(), self.members.weights()),
            }
            .serialize(serializer)
        }
    }

    impl<'de, M> Deserialize<'de> for Maglev<M>
    where
        M: Deserialize<'de> + StableHash + PartialEq,
    {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let state = MaglevState::<M>::deserialize(deserializer)?;
            let size = check_size(state.table_size).map_err(D::Error::custom)?;
            let members = Members::new(state.members).map_err(D::Error::custom)?;
            Maglev::with_members(members, size).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..40).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        for p in [65_537, 655_373, 5_000_011, 16_777_213] {
            assert!(is_prime(p), "{p}");
        }
        for c in [65_535, 65_539 * 3, 16_777_215, 25, 49, 65_537 * 3] {
            assert!(!is_prime(c), "{c}");
        }
    }

    /// `next_round` finds the least round that satisfies the rule, or `never`.
    #[test]
    fn next_round_is_exact() {
        let weights = [1.0, 0.1, 0.3, 1.0 / 3.0, 2.5, 7.0, 1e-300, 1e300, 0.7];
        let max_weights = [7.0, 1e300, 0.7, 2.5];
        for &max in &max_weights {
            for &w in weights.iter().filter(|&&w| w <= max) {
                for taken in [1u32, 2, 3, 10, 999, 65_536] {
                    let never = 65_538;
                    let r = next_round(taken, max, w, never);
                    let due = |r: u64| f64::from(taken) * max <= r as f64 * w;
                    assert!(r == never || due(r), "{taken} {max} {w}: {r}");
                    assert!(r == 0 || !due(r - 1), "{taken} {max} {w}: {r}");
                    assert!(r <= never);
                }
            }
        }
    }

    /// The equal-weights fast path and both weighted builders agree.
    #[test]
    fn builders_agree() {
        let close = 1.0 - f64::EPSILON * 4.0;
        let cases: [&[f64]; 5] = [
            &[2.5; 37],
            &[1.0, 2.0, 3.0, 0.5, 7.0, 1.0 / 3.0],
            &[1.0, close, 1.0, close, 0.999_999_999_9],
            &[1000.0, 1.0, 1.0, 0.01, 3.0],
            &[0.1, 0.2, 0.30000000000000004, 0.3],
        ];
        for weights in cases {
            let hashes: Vec<u64> = (0..weights.len() as u64)
                .map(|i| i.stable_hash64())
                .collect();
            let max = weights.iter().copied().fold(0.0, f64::max);
            for size in [41, 4099] {
                let scan = weighted_scan(&hashes, weights, max, size);
                assert_eq!(
                    scan,
                    weighted_heap(&hashes, weights, max, size),
                    "{weights:?}"
                );
                if weights.windows(2).all(|w| w[0] == w[1]) {
                    assert_eq!(scan, round_robin(&hashes, size));
                }
            }
        }
    }
}
