//! Version vectors (vector clocks): tell causally ordered updates from concurrent ones.
//!
//! A version vector maps every actor (a replica, a node, a writer: anything that makes
//! updates independently) to a counter: how many of that actor's updates the holder has
//! seen. An actor that makes an update increments its own entry; a replica that receives
//! another's state [merges](VersionVector::merge) the two vectors by taking the maximum of
//! each entry. Comparing two vectors then tells how the states they describe are related
//! (see [`Causality`]):
//!
//! - **before / after**: one state has seen everything the other has (and more), so it
//!   supersedes it and the older one can be discarded;
//! - **equal**: both have seen exactly the same updates;
//! - **concurrent**: each has seen an update the other has not. Neither supersedes the
//!   other: this is a conflict the application must resolve (keep both siblings,
//!   last-writer-wins, a CRDT merge, ...).
//!
//! # Version vectors and the hybrid logical clock
//!
//! The hybrid logical clock in this crate gives every event a small, fixed-size timestamp,
//! and timestamps are *totally* ordered consistently with causality: if `a` happened before
//! `b` then `ts(a) < ts(b)`. The converse does not hold, so an HLC cannot tell whether two
//! events are causally related or merely concurrent: it always picks an order. A version
//! vector detects concurrency exactly, at a size cost: one entry per actor that has ever
//! written, rather than a constant. Use the HLC to order events and bound staleness; use a
//! version vector when concurrent writes must be detected rather than silently ordered.
//!
//! # Representation
//!
//! [`VersionVector`] stores its entries in a `Vec` sorted by actor, without zero counters
//! (an actor that is not present has counter 0). [`VersionVector::new`] does not allocate;
//! comparing and merging walk both sorted lists once, in `O(n + m)`; lookups and increments
//! use a binary search. Every way of building a vector (including [`FromIterator`],
//! [`Extend`] and, with the `serde` feature, deserialization) normalises its input, so the
//! invariant holds even for untrusted data.
//!
//! Each actor must have an identity of its own that is never reused, and should only
//! increment its own entry.
//!
//! # Example
//!
//! Two replicas start from the same state, then both accept a write without hearing from
//! each other. The version vectors detect the conflict; once resolved, the merged state
//! supersedes both.
//!
//! ```
//! use steadfast_hlc::version_vector::{Causality, VersionVector};
//!
//! // Replica "a" makes a write, and replica "b" copies its state.
//! let mut a: VersionVector<&str> = VersionVector::new();
//! a.increment("a");
//! let mut b = a.clone();
//! assert_eq!(a.compare(&b), Causality::Equal);
//!
//! // Both accept a write independently.
//! assert_eq!(a.increment("a"), 2);
//! assert_eq!(b.increment("b"), 1);
//! assert_eq!(a.compare(&b), Causality::Concurrent);
//! assert!(a.is_concurrent(&b));
//! assert_eq!(a.partial_cmp(&b), None);
//!
//! // Replica "a" receives b's state, resolves the conflict and records that as a write.
//! a.merge(&b);
//! a.increment("a");
//! assert_eq!(a.get(&"a"), 3);
//! assert_eq!(a.get(&"b"), 1);
//! assert_eq!(b.compare(&a), Causality::Before);
//! assert!(b.happened_before(&a));
//! assert!(b < a);
//! ```

use std::borrow::Borrow;
use std::cmp::{self, Ordering};
use std::fmt;
use std::iter::FusedIterator;
use std::mem;
use std::slice;

/// How two version vectors (and the states they describe) are causally related.
///
/// Returned by [`VersionVector::compare`], always from the point of view of the receiver:
/// `a.compare(&b)` says where `a` stands relative to `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Causality {
    /// The receiver happened before the other: every counter is less than or equal to the
    /// other's, and at least one is strictly less. The other supersedes the receiver.
    Before,
    /// The receiver happened after the other: every counter is greater than or equal to the
    /// other's, and at least one is strictly greater. The receiver supersedes the other.
    After,
    /// Both vectors are identical: they have seen exactly the same updates.
    Equal,
    /// Neither happened before the other: each has seen at least one update the other has
    /// not. The states conflict and must be reconciled.
    Concurrent,
}

impl Causality {
    /// The same relation seen from the other side: `Before` and `After` swap, `Equal` and
    /// `Concurrent` stay.
    ///
    /// `a.compare(&b).reverse() == b.compare(&a)` always holds.
    #[must_use]
    #[inline]
    pub const fn reverse(self) -> Self {
        match self {
            Self::Before => Self::After,
            Self::After => Self::Before,
            Self::Equal => Self::Equal,
            Self::Concurrent => Self::Concurrent,
        }
    }

    /// The relation as a partial order: `None` for [`Concurrent`](Self::Concurrent).
    #[inline]
    const fn to_ordering(self) -> Option<Ordering> {
        match self {
            Self::Before => Some(Ordering::Less),
            Self::After => Some(Ordering::Greater),
            Self::Equal => Some(Ordering::Equal),
            Self::Concurrent => None,
        }
    }
}

/// A version vector (vector clock): one update counter per actor.
///
/// `A` is the actor identifier: a node id, a replica name, anything `Ord` (and `Clone` for
/// [`merge`](Self::merge)). Entries are kept sorted by actor and zero counters are never
/// stored, so equal vectors have equal representations, and [`PartialEq`], [`Hash`] and
/// [`PartialOrd`] agree with each other.
///
/// The ordering is partial: `a < b` means `a` [happened before](Self::happened_before) `b`,
/// and [`partial_cmp`](PartialOrd::partial_cmp) returns `None` for concurrent vectors. Use
/// [`compare`](Self::compare) to get all four cases as a [`Causality`].
///
/// See the [module documentation](self) for what version vectors are for, and an example.
#[derive(PartialEq, Eq, Hash)]
pub struct VersionVector<A> {
    /// Sorted strictly by actor; no counter is zero.
    entries: Vec<(A, u64)>,
}

impl<A> VersionVector<A> {
    /// An empty version vector: every actor's counter is 0. Does not allocate.
    #[must_use]
    #[inline]
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// An empty version vector with room for `capacity` actors before it reallocates.
    #[must_use]
    #[inline]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// The number of actors with a non-zero counter.
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether every counter is zero (nothing has been seen yet).
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The actors with a non-zero counter and their counters, in ascending actor order.
    #[inline]
    pub fn iter(&self) -> Iter<'_, A> {
        Iter {
            inner: self.entries.iter(),
        }
    }
}

impl<A: Ord> VersionVector<A> {
    /// How many of `actor`'s updates this vector has seen: 0 if the actor is absent.
    ///
    /// Like the standard maps, this accepts any borrowed form of the actor type, so a
    /// `VersionVector<String>` can be queried with a `&str`.
    #[must_use]
    pub fn get<Q>(&self, actor: &Q) -> u64
    where
        A: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.search(actor) {
            Ok(index) => self.entries[index].1,
            Err(_) => 0,
        }
    }

    /// Records one more update by `actor` and returns its new counter.
    ///
    /// An actor should only increment its own entry. Inserting a new actor shifts the
    /// entries after it, so it is `O(n)`; incrementing an existing actor is `O(log n)`.
    ///
    /// # Saturation
    ///
    /// The counter saturates at [`u64::MAX`] instead of overflowing or panicking. An
    /// increment at `u64::MAX` changes nothing, so the result is
    /// [`Equal`](Causality::Equal) to the vector before it rather than after it: that
    /// actor's later updates can no longer be told apart. Reaching it takes 2^64 updates by
    /// one actor, or a peer that sends (or deserializes) a counter near the maximum.
    pub fn increment(&mut self, actor: A) -> u64 {
        match self.search(&actor) {
            Ok(index) => {
                let counter = &mut self.entries[index].1;
                *counter = counter.saturating_add(1);
                *counter
            }
            Err(index) => {
                self.entries.insert(index, (actor, 1));
                1
            }
        }
    }

    /// How this vector is causally related to `other` (from this vector's side).
    ///
    /// Walks both vectors once, `O(n + m)`, and stops early once they are known to be
    /// concurrent.
    #[must_use]
    pub fn compare(&self, other: &Self) -> Causality {
        let mut mine = self.entries.iter().peekable();
        let mut theirs = other.entries.iter().peekable();
        // Whether some counter of ours is greater than theirs, and the other way round.
        let mut ahead = false;
        let mut behind = false;
        while !(ahead && behind) {
            match (mine.peek(), theirs.peek()) {
                (Some((my_actor, my_counter)), Some((their_actor, their_counter))) => {
                    match my_actor.cmp(their_actor) {
                        // An actor only we have seen (theirs is 0).
                        Ordering::Less => {
                            ahead = true;
                            mine.next();
                        }
                        // An actor only they have seen (ours is 0).
                        Ordering::Greater => {
                            behind = true;
                            theirs.next();
                        }
                        Ordering::Equal => {
                            match my_counter.cmp(their_counter) {
                                Ordering::Less => behind = true,
                                Ordering::Greater => ahead = true,
                                Ordering::Equal => {}
                            }
                            mine.next();
                            theirs.next();
                        }
                    }
                }
                (Some(_), None) => {
                    ahead = true;
                    break;
                }
                (None, Some(_)) => {
                    behind = true;
                    break;
                }
                (None, None) => break,
            }
        }
        match (ahead, behind) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Whether this vector strictly happened before `other`: `other` has seen everything
    /// this one has, and more. Same as `self < other`.
    #[must_use]
    #[inline]
    pub fn happened_before(&self, other: &Self) -> bool {
        self.compare(other) == Causality::Before
    }

    /// Whether this vector and `other` are concurrent: each has seen an update the other
    /// has not, so the states they describe conflict.
    #[must_use]
    #[inline]
    pub fn is_concurrent(&self, other: &Self) -> bool {
        self.compare(other) == Causality::Concurrent
    }

    /// Builds a vector from arbitrary entries: drops zero counters, sorts by actor and
    /// keeps the maximum counter of an actor that appears more than once.
    fn from_entries(mut entries: Vec<(A, u64)>) -> Self {
        entries.retain(|&(_, counter)| counter != 0);
        if !entries.is_sorted_by(|(a, _), (b, _)| a < b) {
            // Duplicates end up adjacent; the order among them does not matter.
            entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
            entries.dedup_by(|(actor, counter), (kept_actor, kept_counter)| {
                let duplicate = actor == kept_actor;
                if duplicate {
                    *kept_counter = cmp::max(*kept_counter, *counter);
                }
                duplicate
            });
        }
        Self { entries }
    }

    /// Binary search for `actor`: its index, or where it would be inserted.
    #[inline]
    fn search<Q>(&self, actor: &Q) -> Result<usize, usize>
    where
        A: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries
            .binary_search_by(|(probe, _)| probe.borrow().cmp(actor))
    }

    /// First half of a merge: raises the counters of the actors both vectors have to the
    /// maximum, in place, and returns how many actors of `other` this vector lacks.
    fn raise_shared(&mut self, other: &[(A, u64)]) -> usize {
        let mut missing = 0;
        let mut mine = self.entries.iter_mut().peekable();
        for (actor, counter) in other {
            while mine.next_if(|(my_actor, _)| my_actor < actor).is_some() {}
            match mine.next_if(|(my_actor, _)| my_actor == actor) {
                Some((_, my_counter)) => *my_counter = cmp::max(*my_counter, *counter),
                None => missing += 1,
            }
        }
        missing
    }

    /// Second half of a merge: inserts the `missing` actors of `theirs` (sorted, and
    /// already known to include exactly `missing` actors this vector lacks) in one pass.
    fn insert_missing<E: Entry<A>>(&mut self, theirs: impl IntoIterator<Item = E>, missing: usize) {
        if missing == 0 {
            return;
        }
        let mine = mem::take(&mut self.entries);
        // Keep any extra capacity the caller reserved.
        let capacity = cmp::max(mine.capacity(), mine.len() + missing);
        let mut merged = Vec::with_capacity(capacity);
        let mut theirs = theirs.into_iter().peekable();
        for (actor, counter) in mine {
            while let Some(entry) = theirs.next_if(|entry| *entry.actor() < actor) {
                merged.push(entry.into_entry());
            }
            // A shared actor: its counter was raised already.
            theirs.next_if(|entry| *entry.actor() == actor);
            merged.push((actor, counter));
        }
        merged.extend(theirs.map(Entry::into_entry));
        self.entries = merged;
    }
}

impl<A: Ord + Clone> VersionVector<A> {
    /// Merges `other` into this vector: every counter becomes the maximum of the two
    /// (the least upper bound). Afterwards this vector is [`After`](Causality::After) or
    /// [`Equal`](Causality::Equal) to both inputs.
    ///
    /// Walks both vectors once, `O(n + m)`. It does not allocate unless `other` has actors
    /// this vector lacks, and then allocates once; only those actors are cloned.
    pub fn merge(&mut self, other: &Self) {
        let missing = self.raise_shared(&other.entries);
        self.insert_missing(&other.entries, missing);
    }
}

/// An entry of another vector being merged in, by reference (cloned) or by value (moved).
trait Entry<A> {
    fn actor(&self) -> &A;
    fn into_entry(self) -> (A, u64);
}

impl<A> Entry<A> for (A, u64) {
    #[inline]
    fn actor(&self) -> &A {
        &self.0
    }
    #[inline]
    fn into_entry(self) -> (A, u64) {
        self
    }
}

impl<A: Clone> Entry<A> for &(A, u64) {
    #[inline]
    fn actor(&self) -> &A {
        &self.0
    }
    #[inline]
    fn into_entry(self) -> (A, u64) {
        (self.0.clone(), self.1)
    }
}

impl<A> Default for VersionVector<A> {
    /// An empty version vector, as [`new`](Self::new).
    #[inline]
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Clone> Clone for VersionVector<A> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
        }
    }

    /// Reuses this vector's allocation.
    #[inline]
    fn clone_from(&mut self, source: &Self) {
        self.entries.clone_from(&source.entries);
    }
}

impl<A: fmt::Debug> fmt::Debug for VersionVector<A> {
    /// Formats as `VersionVector {actor: counter, ...}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VersionVector ")?;
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<A: Ord> PartialOrd for VersionVector<A> {
    /// The causal (partial) order: `Less` if this vector happened before `other`,
    /// `Greater` if after, `Equal` if identical and `None` if they are concurrent.
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.compare(other).to_ordering()
    }
}

impl<A: Ord> FromIterator<(A, u64)> for VersionVector<A> {
    /// Builds a vector from `(actor, counter)` pairs in any order: zero counters are
    /// dropped and an actor that appears more than once keeps its maximum counter.
    fn from_iter<I: IntoIterator<Item = (A, u64)>>(iter: I) -> Self {
        Self::from_entries(iter.into_iter().collect())
    }
}

impl<A: Ord> Extend<(A, u64)> for VersionVector<A> {
    /// Merges `(actor, counter)` pairs in any order into this vector: each actor's counter
    /// becomes the maximum of its current value and the given ones (the counters are not
    /// added). Equivalent to merging with the vector [collected](FromIterator) from `iter`,
    /// and moves the actors instead of cloning them.
    fn extend<I: IntoIterator<Item = (A, u64)>>(&mut self, iter: I) {
        let other = Self::from_iter(iter);
        if self.is_empty() && self.entries.capacity() <= other.entries.capacity() {
            *self = other;
            return;
        }
        let missing = self.raise_shared(&other.entries);
        self.insert_missing(other.entries, missing);
    }
}

impl<'a, A> IntoIterator for &'a VersionVector<A> {
    type Item = (&'a A, u64);
    type IntoIter = Iter<'a, A>;

    #[inline]
    fn into_iter(self) -> Iter<'a, A> {
        self.iter()
    }
}

/// An iterator over the `(actor, counter)` entries of a [`VersionVector`], in ascending
/// actor order. Only actors with a non-zero counter appear.
///
/// Returned by [`VersionVector::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'a, A> {
    inner: slice::Iter<'a, (A, u64)>,
}

impl<'a, A> Iterator for Iter<'a, A> {
    type Item = (&'a A, u64);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(actor, counter)| (actor, *counter))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<A> DoubleEndedIterator for Iter<'_, A> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner
            .next_back()
            .map(|(actor, counter)| (actor, *counter))
    }
}

impl<A> ExactSizeIterator for Iter<'_, A> {}

impl<A> FusedIterator for Iter<'_, A> {}

#[cfg(feature = "serde")]
mod serde_impl {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::VersionVector;

    /// The most entries preallocated from a length the input claims, before any is read.
    const MAX_PREALLOCATED_ENTRIES: usize = 4096;

    /// Serializes as a sequence of `(actor, counter)` pairs in ascending actor order, e.g.
    /// `[["a",2],["b",1]]` in JSON. Zero counters are never written.
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<A: Serialize> Serialize for VersionVector<A> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(&self.entries)
        }
    }

    /// Deserializes a sequence of `(actor, counter)` pairs in any order and normalises it,
    /// as [`FromIterator`] does: zero counters are dropped, the entries are sorted and an
    /// actor that appears more than once keeps its maximum counter. Untrusted input cannot
    /// break the vector's invariants (but its size is only bounded by the input's).
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<'de, A: Deserialize<'de> + Ord> Deserialize<'de> for VersionVector<A> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_seq(EntriesVisitor(PhantomData))
        }
    }

    struct EntriesVisitor<A>(PhantomData<fn() -> A>);

    impl<'de, A: Deserialize<'de> + Ord> Visitor<'de> for EntriesVisitor<A> {
        type Value = VersionVector<A>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence of [actor, counter] pairs")
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            let capacity = seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED_ENTRIES);
            let mut entries = Vec::with_capacity(capacity);
            while let Some(entry) = seq.next_element::<(A, u64)>()? {
                entries.push(entry);
            }
            Ok(VersionVector::from_entries(entries))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    use proptest::prelude::*;

    use super::*;

    type Vv = VersionVector<u8>;

    fn vv(entries: &[(u8, u64)]) -> Vv {
        entries.iter().copied().collect()
    }

    /// The representation invariant: strictly sorted by actor, no zero counters.
    fn assert_normalised<A: Ord + fmt::Debug>(v: &VersionVector<A>) {
        assert!(
            v.entries.is_sorted_by(|(a, _), (b, _)| a < b),
            "not strictly sorted: {v:?}"
        );
        assert!(v.entries.iter().all(|&(_, c)| c != 0), "zero entry: {v:?}");
    }

    fn hash_of<T: Hash>(value: &T) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    /// A reference `compare`: the definition, over the union of both vectors' actors.
    fn model_compare(a: &Vv, b: &Vv) -> Causality {
        let actors: Vec<u8> = a.iter().chain(b.iter()).map(|(&x, _)| x).collect();
        let ahead = actors.iter().any(|x| a.get(x) > b.get(x));
        let behind = actors.iter().any(|x| a.get(x) < b.get(x));
        match (ahead, behind) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }

    #[test]
    fn new_is_empty_and_does_not_allocate() {
        let v = Vv::new();
        assert!(v.is_empty());
        assert_eq!(v.len(), 0);
        assert_eq!(v.entries.capacity(), 0);
        assert_eq!(v.get(&7), 0);
        assert_eq!(v, Vv::default());
        assert!(Vv::with_capacity(8).entries.capacity() >= 8);
    }

    #[test]
    fn increment_inserts_in_order_and_counts() {
        let mut v = Vv::new();
        assert_eq!(v.increment(5), 1);
        assert_eq!(v.increment(1), 1);
        assert_eq!(v.increment(3), 1);
        assert_eq!(v.increment(5), 2);
        assert_eq!(v.entries, vec![(1, 1), (3, 1), (5, 2)]);
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(&5), 2);
        assert_eq!(v.get(&4), 0);
    }

    #[test]
    fn increment_saturates_at_max() {
        let mut v = vv(&[(1, u64::MAX)]);
        let before = v.clone();
        assert_eq!(v.increment(1), u64::MAX);
        assert_eq!(v.get(&1), u64::MAX);
        assert_eq!(v.compare(&before), Causality::Equal);
    }

    #[test]
    fn get_accepts_borrowed_forms() {
        let mut v: VersionVector<String> = VersionVector::new();
        v.increment("node-1".to_owned());
        assert_eq!(v.get("node-1"), 1);
        assert_eq!(v.get(&"node-1".to_owned()), 1);
        assert_eq!(v.get("node-2"), 0);
    }

    #[test]
    fn compare_equal() {
        assert_eq!(Vv::new().compare(&Vv::new()), Causality::Equal);
        let a = vv(&[(1, 2), (3, 1)]);
        assert_eq!(a.compare(&a.clone()), Causality::Equal);
        assert_eq!(a.partial_cmp(&a), Some(Ordering::Equal));
        assert!(!a.happened_before(&a));
        assert!(!a.is_concurrent(&a));
    }

    #[test]
    fn compare_before_and_after() {
        let cases = [
            // Empty is before anything non-empty.
            (vec![], vec![(1, 1)]),
            // A smaller counter.
            (vec![(1, 1)], vec![(1, 2)]),
            // A missing actor, at the start, middle and end.
            (vec![(2, 1)], vec![(1, 1), (2, 1)]),
            (vec![(1, 1), (3, 1)], vec![(1, 1), (2, 1), (3, 1)]),
            (vec![(1, 1)], vec![(1, 1), (2, 1)]),
            // Both.
            (vec![(1, 1), (3, 4)], vec![(1, 2), (2, 1), (3, 4)]),
        ];
        for (older, newer) in cases {
            let (older, newer) = (vv(&older), vv(&newer));
            assert_eq!(
                older.compare(&newer),
                Causality::Before,
                "{older:?} {newer:?}"
            );
            assert_eq!(
                newer.compare(&older),
                Causality::After,
                "{older:?} {newer:?}"
            );
            assert!(older.happened_before(&newer));
            assert!(!newer.happened_before(&older));
            assert!(older < newer);
            assert!(newer > older);
            assert!(older <= newer);
            assert!(newer >= older);
        }
    }

    #[test]
    fn compare_concurrent() {
        let cases = [
            // Disjoint actors.
            (vec![(1, 1)], vec![(2, 1)]),
            // Each is ahead on a shared actor.
            (vec![(1, 2), (2, 1)], vec![(1, 1), (2, 2)]),
            // Ahead on a shared actor, behind on a missing one.
            (vec![(1, 2)], vec![(1, 1), (2, 1)]),
            // Only the last entries differ.
            (vec![(1, 1), (2, 1), (9, 1)], vec![(1, 1), (2, 1), (8, 1)]),
        ];
        for (a, b) in cases {
            let (a, b) = (vv(&a), vv(&b));
            assert_eq!(a.compare(&b), Causality::Concurrent, "{a:?} {b:?}");
            assert_eq!(b.compare(&a), Causality::Concurrent, "{a:?} {b:?}");
            assert!(a.is_concurrent(&b) && b.is_concurrent(&a));
            assert_eq!(a.partial_cmp(&b), None);
            // None of the comparison operators holds between concurrent vectors.
            let holds = [a < b, a > b, a <= b, a >= b, a == b];
            assert_eq!(holds, [false; 5], "{a:?} {b:?}");
        }
    }

    #[test]
    fn causality_reverse() {
        assert_eq!(Causality::Before.reverse(), Causality::After);
        assert_eq!(Causality::After.reverse(), Causality::Before);
        assert_eq!(Causality::Equal.reverse(), Causality::Equal);
        assert_eq!(Causality::Concurrent.reverse(), Causality::Concurrent);
    }

    #[test]
    fn merge_takes_pointwise_max() {
        let mut a = vv(&[(1, 3), (3, 1), (5, 2)]);
        let b = vv(&[(0, 1), (1, 1), (3, 4), (4, 1), (9, 9)]);
        a.merge(&b);
        assert_eq!(
            a.entries,
            vec![(0, 1), (1, 3), (3, 4), (4, 1), (5, 2), (9, 9)]
        );
    }

    #[test]
    fn merge_without_new_actors_does_not_reallocate() {
        let mut a = vv(&[(1, 1), (2, 1), (3, 1)]);
        let pointer = a.entries.as_ptr();
        a.merge(&vv(&[(1, 5), (3, 2)]));
        assert_eq!(a.entries.as_ptr(), pointer);
        assert_eq!(a.entries, vec![(1, 5), (2, 1), (3, 2)]);
    }

    #[test]
    fn merge_keeps_reserved_capacity() {
        let mut a = Vv::with_capacity(32);
        a.increment(1);
        a.merge(&vv(&[(2, 1), (3, 1)]));
        assert!(a.entries.capacity() >= 32);
    }

    #[test]
    fn from_iter_normalises() {
        let v = vv(&[(3, 1), (1, 0), (2, 4), (3, 7), (1, 2), (3, 2), (5, 0)]);
        assert_eq!(v.entries, vec![(1, 2), (2, 4), (3, 7)]);
        assert_eq!(vv(&[(1, 0), (2, 0)]), Vv::new());
    }

    #[test]
    fn extend_merges() {
        let mut v = vv(&[(1, 3), (4, 1)]);
        v.extend([(4, 0), (2, 1), (1, 1), (2, 5), (6, 1)]);
        assert_eq!(v.entries, vec![(1, 3), (2, 5), (4, 1), (6, 1)]);
        let mut empty = Vv::new();
        empty.extend([(2, 1), (1, 1)]);
        assert_eq!(empty.entries, vec![(1, 1), (2, 1)]);
    }

    #[test]
    fn iter_in_actor_order() {
        let v = vv(&[(3, 1), (1, 2)]);
        let entries: Vec<(&u8, u64)> = v.iter().collect();
        assert_eq!(entries, vec![(&1, 2), (&3, 1)]);
        assert_eq!(v.iter().len(), 2);
        assert_eq!(v.iter().next_back(), Some((&3, 1)));
        assert_eq!((&v).into_iter().count(), 2);
    }

    #[test]
    fn debug_format() {
        assert_eq!(
            format!("{:?}", vv(&[(2, 1), (1, 3)])),
            "VersionVector {1: 3, 2: 1}"
        );
        assert_eq!(format!("{:?}", Vv::new()), "VersionVector {}");
    }

    #[test]
    fn clone_from_reuses_allocation() {
        let mut target = Vv::with_capacity(16);
        let pointer = target.entries.as_ptr();
        target.clone_from(&vv(&[(1, 1), (2, 2)]));
        assert_eq!(target, vv(&[(1, 1), (2, 2)]));
        assert_eq!(target.entries.as_ptr(), pointer);
    }

    /// Vectors over a small actor space with small counters, so that shared actors,
    /// equal vectors and every comparison case come up often.
    fn arb_entries() -> impl Strategy<Value = Vec<(u8, u64)>> {
        prop::collection::vec((0u8..8, 0u64..4), 0..10)
    }

    fn arb_vv() -> impl Strategy<Value = Vv> {
        arb_entries().prop_map(Vv::from_iter)
    }

    fn merged(a: &Vv, b: &Vv) -> Vv {
        let mut out = a.clone();
        out.merge(b);
        out
    }

    proptest! {
        #[test]
        fn compare_matches_definition(a in arb_vv(), b in arb_vv()) {
            prop_assert_eq!(a.compare(&b), model_compare(&a, &b));
        }

        #[test]
        fn compare_is_antisymmetric(a in arb_vv(), b in arb_vv()) {
            let ab = a.compare(&b);
            let ba = b.compare(&a);
            prop_assert_eq!(ab == Causality::Before, ba == Causality::After);
            prop_assert_eq!(ab == Causality::After, ba == Causality::Before);
            prop_assert_eq!(ab.reverse(), ba);
            prop_assert_eq!(ab == Causality::Equal, a == b);
        }

        #[test]
        fn partial_ord_agrees_with_compare(a in arb_vv(), b in arb_vv()) {
            let expected = match a.compare(&b) {
                Causality::Before => Some(Ordering::Less),
                Causality::After => Some(Ordering::Greater),
                Causality::Equal => Some(Ordering::Equal),
                Causality::Concurrent => None,
            };
            prop_assert_eq!(a.partial_cmp(&b), expected);
            prop_assert_eq!(a < b, a.happened_before(&b));
            prop_assert_eq!(a.partial_cmp(&b).is_none(), a.is_concurrent(&b));
        }

        #[test]
        fn merge_is_commutative(a in arb_vv(), b in arb_vv()) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in arb_vv(), b in arb_vv(), c in arb_vv()) {
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_vv(), b in arb_vv()) {
            prop_assert_eq!(merged(&a, &a), a.clone());
            let ab = merged(&a, &b);
            prop_assert_eq!(merged(&ab, &b), ab);
        }

        #[test]
        fn merge_is_least_upper_bound(a in arb_vv(), b in arb_vv()) {
            let ab = merged(&a, &b);
            assert_normalised(&ab);
            prop_assert!(ab >= a);
            prop_assert!(ab >= b);
            for actor in 0u8..8 {
                prop_assert_eq!(ab.get(&actor), cmp::max(a.get(&actor), b.get(&actor)));
            }
            // Merging resolves concurrency: the result supersedes both sides.
            if a.is_concurrent(&b) {
                prop_assert!(a < ab && b < ab);
            }
        }

        #[test]
        fn increment_moves_strictly_after(a in arb_vv(), actor in 0u8..10) {
            let mut next = a.clone();
            let counter = next.increment(actor);
            assert_normalised(&next);
            prop_assert_eq!(counter, a.get(&actor) + 1);
            prop_assert_eq!(next.get(&actor), counter);
            prop_assert_eq!(next.compare(&a), Causality::After);
            prop_assert!(a.happened_before(&next));
        }

        #[test]
        fn from_iter_normalises_any_input(entries in arb_entries()) {
            let v = Vv::from_iter(entries.iter().copied());
            assert_normalised(&v);
            let mut model = BTreeMap::<u8, u64>::new();
            for &(actor, counter) in &entries {
                let slot = model.entry(actor).or_default();
                *slot = cmp::max(*slot, counter);
            }
            model.retain(|_, counter| *counter != 0);
            let expected: Vec<(u8, u64)> = model.into_iter().collect();
            prop_assert_eq!(&v.entries, &expected);
        }

        #[test]
        fn from_iter_ignores_order(
            (entries, shuffled) in arb_entries()
                .prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle()))
        ) {
            let a = Vv::from_iter(entries);
            let b = Vv::from_iter(shuffled);
            prop_assert_eq!(hash_of(&a), hash_of(&b));
            prop_assert_eq!(a, b);
        }

        #[test]
        fn extend_is_merge(a in arb_vv(), entries in arb_entries()) {
            let mut extended = a.clone();
            extended.extend(entries.iter().copied());
            assert_normalised(&extended);
            prop_assert_eq!(extended, merged(&a, &Vv::from_iter(entries)));
        }
    }

    #[cfg(feature = "serde")]
    mod serde_tests {
        use super::*;

        #[test]
        fn json_is_a_sequence_of_pairs() {
            let v: VersionVector<String> = [("b".to_owned(), 1), ("a".to_owned(), 2)]
                .into_iter()
                .collect();
            let json = serde_json::to_string(&v).expect("serializes");
            assert_eq!(json, r#"[["a",2],["b",1]]"#);
            let back: VersionVector<String> = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, v);
            assert_eq!(serde_json::to_string(&Vv::new()).expect("serializes"), "[]");
        }

        #[test]
        fn malformed_input_is_normalised() {
            let v: Vv =
                serde_json::from_str("[[3,1],[1,0],[2,4],[3,7],[2,1],[0,0]]").expect("parses");
            assert_normalised(&v);
            assert_eq!(v.entries, vec![(2, 4), (3, 7)]);
            let empty: Vv = serde_json::from_str("[[1,0]]").expect("parses");
            assert!(empty.is_empty());
        }

        #[test]
        fn invalid_input_is_rejected() {
            for json in [
                r#"{"1":1}"#,
                "[[1,-1]]",
                "[[1]]",
                "[[1,1,1]]",
                "[[256,1]]",
                r#"[["a",1]]"#,
                "[[1,18446744073709551616]]",
                "null",
            ] {
                assert!(serde_json::from_str::<Vv>(json).is_err(), "{json}");
            }
        }

        proptest! {
            #[test]
            fn json_round_trip(v in arb_vv()) {
                let json = serde_json::to_string(&v).expect("serializes");
                let back: Vv = serde_json::from_str(&json).expect("parses");
                prop_assert_eq!(back, v);
            }

            #[test]
            fn deserialize_normalises_any_input(entries in arb_entries()) {
                let json = serde_json::to_string(&entries).expect("serializes");
                let v: Vv = serde_json::from_str(&json).expect("parses");
                assert_normalised(&v);
                prop_assert_eq!(v, Vv::from_iter(entries));
            }
        }
    }
}
