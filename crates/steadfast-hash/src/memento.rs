//! MementoHash (Coluzzi, Brocco, Antonucci & Leidi, "MementoHash: A Stateful, Minimal Memory,
//! Best Performing Consistent Hash Algorithm", 2023): numbered shards with **arbitrary
//! removal**, on top of [`jump_back`].
//!
//! A range hash such as JumpBackHash can only grow or shrink at the end. Memento remembers
//! each removed bucket `b` with its *replacer* (the number of working buckets right after
//! the removal, which is also the bucket that conceptually takes `b`'s place) and the
//! bucket removed before it. A lookup runs `jump_back(hash, n)`; while the result is a
//! removed bucket it rehashes the key into `0..replacer`, following the replacement chain of
//! buckets removed earlier. Hence:
//!
//! - with nothing removed, it returns exactly [`jump_back`]'s buckets;
//! - removing a bucket moves only the keys that were on it, spread evenly over the rest;
//! - [`Memento::add`] restores the most recently removed bucket (LIFO), which gets back
//!   exactly the keys it had, or grows the range at the end when nothing is removed;
//! - memory is `O(removed)` (12 bytes per removed bucket, a sorted `Vec`: no hashing, no
//!   `RandomState`), so the same history of `add`/`remove` gives identical state in every
//!   process.
//!
//! Lookups are `O(1)` expected with nothing removed and grow slowly with the share removed
//! (`≈ (1 + ln(n/w))²` steps, each a binary search over the removed buckets).

use crate::error::BuildError;
use crate::jump::{fill_replicas, jump_back};
use crate::placement::Placement;
use crate::stable::fmix64;

/// A removed bucket: who replaced it, and which bucket was removed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Entry {
    bucket: u32,
    /// The number of working buckets right after the removal.
    replacer: u32,
    /// The bucket removed before this one, or the range size when it was the first.
    prev_removed: u32,
}

/// Numbered shards with arbitrary removal (MementoHash over [`jump_back`]).
///
/// Two numberings are involved:
///
/// - **bucket numbers**, from [`get`](Self::get), [`add`](Self::add) and
///   [`remove`](Self::remove): stable identities in `0..bucket_range()`, with holes where
///   buckets were removed. Map your shards by bucket number.
/// - **[`Placement`] indices**: the rank of a working bucket among the working buckets in
///   ascending order, so they are dense in `0..len()` as the trait requires (and as
///   bounded loads needs to count members). With nothing removed, index = bucket number.
///   Like member indices elsewhere in this crate, they shift when a bucket below is removed
///   or restored; convert with [`index_of`](Self::index_of) and
///   [`bucket_at`](Self::bucket_at).
///
/// ```
/// use steadfast_hash::memento::Memento;
/// let mut shards = Memento::new(5)?;
/// let key = 0x0123_4567_89ab_cdef;
/// let owner = shards.get(key).unwrap();
/// shards.remove(owner)?; // arbitrary removal: only this bucket's keys move
/// assert_ne!(shards.get(key), Some(owner));
/// assert_eq!(shards.len(), 4);
/// assert_eq!(shards.add()?, owner); // restores the last removed bucket...
/// assert_eq!(shards.get(key), Some(owner)); // ...with exactly its keys
/// # Ok::<(), steadfast_hash::BuildError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "MementoState", into = "MementoState")
)]
pub struct Memento {
    /// The range `0..range` that [`jump_back`] maps into (working or removed).
    range: u32,
    /// The most recently removed bucket, or `range` when none is.
    last_removed: u32,
    /// The removed buckets, sorted by bucket number.
    removed: Vec<Entry>,
}

impl Memento {
    /// `buckets` working buckets `0..buckets`, none removed. Fails with
    /// [`BuildError::NoMembers`] for 0 buckets.
    pub fn new(buckets: u32) -> Result<Self, BuildError> {
        if buckets == 0 {
            return Err(BuildError::NoMembers);
        }
        Ok(Self {
            range: buckets,
            last_removed: buckets,
            removed: Vec::new(),
        })
    }

    /// The number of working buckets.
    pub fn len(&self) -> usize {
        self.working() as usize
    }

    /// Whether no bucket is working (all were removed).
    pub fn is_empty(&self) -> bool {
        self.working() == 0
    }

    fn working(&self) -> u32 {
        // At most `range` buckets can be removed.
        self.range - self.removed.len() as u32
    }

    /// The bucket numbers in use, working or removed: `0..bucket_range()`.
    pub fn bucket_range(&self) -> u32 {
        self.range
    }

    /// How many buckets inside the range are removed (the state's size).
    pub fn removed_len(&self) -> usize {
        self.removed.len()
    }

    /// Whether `bucket` is a working bucket.
    pub fn is_working(&self, bucket: u32) -> bool {
        bucket < self.range && self.find(bucket).is_err()
    }

    /// The removed buckets, most recently removed first: the order in which
    /// [`add`](Self::add) restores them.
    pub fn removed(&self) -> impl Iterator<Item = u32> + '_ {
        let mut next = self.last_removed;
        std::iter::from_fn(move || {
            let entry = self.entry(next)?;
            let bucket = next;
            next = entry.prev_removed;
            Some(bucket)
        })
    }

    #[inline]
    fn find(&self, bucket: u32) -> Result<usize, usize> {
        self.removed.binary_search_by_key(&bucket, |e| e.bucket)
    }

    #[inline]
    fn entry(&self, bucket: u32) -> Option<&Entry> {
        self.find(bucket).ok().map(|i| &self.removed[i])
    }

    #[inline]
    fn replacer(&self, bucket: u32) -> Option<u32> {
        self.entry(bucket).map(|e| e.replacer)
    }

    /// The working bucket for `hash`, or `None` when no bucket is working. Equal to
    /// [`jump_back(hash, n)`](jump_back) while nothing is removed.
    #[inline]
    pub fn get(&self, hash: u64) -> Option<u32> {
        let mut bucket = jump_back(hash, self.range)?;
        if self.removed.is_empty() {
            return Some(bucket);
        }
        if self.working() == 0 {
            return None;
        }
        let mut replacer = self.replacer(bucket);
        while let Some(size) = replacer {
            // `bucket` was removed when `size` buckets remained (size >= 1: entries with a
            // replacer of 0 exist only while nothing is working). Rehash into 0..size.
            bucket = reduce(rehash(hash, bucket), size);
            // Buckets removed before that point (replacer >= size) were replaced by their
            // replacer: follow the chain.
            let mut next = self.replacer(bucket);
            while let Some(r) = next {
                if r < size {
                    break;
                }
                bucket = r;
                next = self.replacer(bucket);
            }
            // A bucket removed later (replacer < size) needs another rehash.
            replacer = next;
        }
        Some(bucket)
    }

    /// The working bucket for `key`'s [stable hash](crate::stable_hash64).
    #[inline]
    pub fn get_by_key<K: crate::StableHash + ?Sized>(&self, key: &K) -> Option<u32> {
        self.get(key.stable_hash64())
    }

    /// Removes a working bucket: only its keys move, spread evenly over the working buckets.
    /// Fails with [`BuildError::UnknownMember`] if `bucket` is not working. Removing the last
    /// working bucket is allowed (lookups then return `None` until [`add`](Self::add)).
    pub fn remove(&mut self, bucket: u32) -> Result<(), BuildError> {
        if bucket >= self.range {
            return Err(BuildError::UnknownMember);
        }
        let slot = match self.find(bucket) {
            Ok(_) => return Err(BuildError::UnknownMember),
            Err(slot) => slot,
        };
        if self.removed.is_empty() && bucket == self.range - 1 {
            // Plain range shrink, as jump_back would: nothing to remember.
            self.range = bucket;
            self.last_removed = bucket;
            return Ok(());
        }
        self.removed.insert(
            slot,
            Entry {
                bucket,
                replacer: self.working() - 1,
                prev_removed: self.last_removed,
            },
        );
        self.last_removed = bucket;
        Ok(())
    }

    /// Adds a bucket and returns its number: the most recently removed bucket (which gets
    /// exactly its old keys back), or `bucket_range()` (growing the range at the end) when
    /// none is removed. Fails with [`BuildError::TooLarge`] only when the range would exceed
    /// `u32::MAX` buckets.
    pub fn add(&mut self) -> Result<u32, BuildError> {
        let bucket = self.last_removed;
        if self.removed.is_empty() {
            // last_removed == range: grow at the end.
            let range = bucket.checked_add(1).ok_or(BuildError::TooLarge {
                requested: u64::from(u32::MAX) + 1,
                limit: u64::from(u32::MAX),
            })?;
            self.range = range;
            self.last_removed = range;
            return Ok(bucket);
        }
        // Invariant: with something removed, last_removed is a removed bucket.
        let slot = self.find(bucket);
        debug_assert!(slot.is_ok(), "last removed bucket {bucket} has no entry");
        if let Ok(slot) = slot {
            let entry = self.removed.remove(slot);
            self.last_removed = entry.prev_removed;
        }
        Ok(bucket)
    }

    /// The [`Placement`] index of a working bucket: its rank among the working buckets.
    pub fn index_of(&self, bucket: u32) -> Option<usize> {
        match self.find(bucket) {
            Err(below) if bucket < self.range => Some(bucket as usize - below),
            _ => None,
        }
    }

    /// The working bucket with [`Placement`] index `index` (the inverse of
    /// [`index_of`](Self::index_of)).
    pub fn bucket_at(&self, index: usize) -> Option<u32> {
        if index >= self.len() {
            return None;
        }
        // The answer is index + (removed buckets below it). Entry i lies below the answer
        // iff fewer than index + 1 working buckets lie below it, i.e. bucket - i <= index;
        // bucket - i never decreases with i, so binary search for the count.
        let (mut lo, mut hi) = (0, self.removed.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.removed[mid].bucket as usize - mid <= index {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // index < len and lo <= removed: the sum is < range <= u32::MAX.
        Some((index + lo) as u32)
    }

    /// Converts a bucket number from [`get`](Self::get) to its dense index.
    #[inline]
    fn dense(&self, bucket: u32) -> usize {
        if self.removed.is_empty() {
            bucket as usize
        } else {
            bucket as usize - self.find(bucket).unwrap_or_else(|below| below)
        }
    }
}

/// The rehash of `hash` for removed bucket `bucket` (independent of [`jump_back`]'s draws).
#[inline]
fn rehash(hash: u64, bucket: u32) -> u64 {
    fmix64(hash ^ (u64::from(bucket) + 1).wrapping_mul(0xd6e8_feb8_6659_fd93))
}

/// Maps a 64-bit hash uniformly onto `0..n` (Lemire's multiply-shift: no division).
#[inline]
fn reduce(hash: u64, n: u32) -> u32 {
    ((u128::from(hash) * u128::from(n)) >> 64) as u32
}

impl Placement for Memento {
    /// The number of working buckets.
    fn len(&self) -> usize {
        Memento::len(self)
    }

    fn is_empty(&self) -> bool {
        Memento::is_empty(self)
    }

    /// The dense index (see [`Memento`]) of [`get`](Memento::get)'s bucket.
    #[inline]
    fn place(&self, hash: u64) -> Option<usize> {
        self.get(hash).map(|b| self.dense(b))
    }

    /// Distinct working buckets, as dense indices, in preference order: the owner, then the
    /// first bucket not yet chosen among `get(fmix64(hash ^ i·0x9e3779b97f4a7c15))` for
    /// `i = 1, 2, …` (at most 16 draws per rank, then a linear probe upwards over the
    /// working buckets). Each draw is a Memento lookup, so a removal moves only replicas
    /// that were on the removed bucket (and ranks below a collision). No allocation.
    fn replicas(&self, hash: u64, out: &mut [usize]) -> usize {
        let filled = fill_replicas(
            hash,
            out,
            self.len(),
            self.range as usize,
            |h| self.get(h).map(|b| b as usize),
            |b| self.is_working(b as u32),
        );
        for slot in &mut out[..filled] {
            *slot = self.dense(*slot as u32);
        }
        filled
    }
}

/// The serialized form: the range and the removed buckets in removal order (oldest first),
/// `4 + 4·removed` bytes of information like hash4j's. Replacers are rebuilt by replaying.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct MementoState {
    buckets: u32,
    removed: Vec<u32>,
}

#[cfg(feature = "serde")]
impl From<Memento> for MementoState {
    fn from(memento: Memento) -> Self {
        let mut removed: Vec<u32> = memento.removed().collect();
        removed.reverse();
        Self {
            buckets: memento.range,
            removed,
        }
    }
}

#[cfg(feature = "serde")]
impl TryFrom<MementoState> for Memento {
    type Error = BuildError;

    fn try_from(state: MementoState) -> Result<Self, BuildError> {
        let range = state.buckets;
        if state.removed.len() > range as usize {
            return Err(BuildError::InvalidParameter(
                "memento state: more removed buckets than buckets",
            ));
        }
        if state.removed.first() == Some(&range.wrapping_sub(1)) {
            // A first removal of the last bucket shrinks the range instead.
            return Err(BuildError::InvalidParameter(
                "memento state: the first removed bucket is the last one",
            ));
        }
        let mut memento = Self {
            range,
            last_removed: range,
            removed: Vec::with_capacity(state.removed.len()),
        };
        for bucket in state.removed {
            if bucket >= range || memento.find(bucket).is_ok() {
                return Err(BuildError::InvalidParameter(
                    "memento state: removed bucket out of range or repeated",
                ));
            }
            memento.remove(bucket)?;
        }
        Ok(memento)
    }
}
