//! Range hashes for numbered shards `0..n`: jump consistent hash (Lamping & Veach 2014) and
//! JumpBackHash (Ertl 2024), plus the [`Jump`] and [`JumpBack`] placements built on them.
//!
//! Both functions take a key's 64-bit hash (it must already be well mixed: use
//! [`stable_hash64`](crate::stable_hash64)) and a bucket count `n`, and return a bucket in
//! `0..n`. They need no memory, balance perfectly (only sampling noise), and are consistent:
//! when `n` grows to `n + 1`, a key either stays where it was or moves to the new bucket
//! `n`, and about `1/(n + 1)` of the keys move. Shrinking is the reverse. Buckets can only
//! be added or removed at the end; for arbitrary removal use [`Memento`](crate::memento::Memento).
//!
//! - [`jump`] is the paper's algorithm exactly (its LCG and floating-point division), so it
//!   returns the same buckets as Guava's `Hashing.consistentHash`, Go's `go-jump` and every
//!   other faithful port. It takes `O(ln n)` steps.
//! - [`jump_back`] is JumpBackHash, bit for bit as hash4j's
//!   `ConsistentHashing.jumpBackHash` with SplitMix64 (and the paper's optimized code): integers
//!   only and a small constant expected number of steps, so it is several times faster for
//!   large `n`. It is a different function, so it assigns keys to different buckets than
//!   [`jump`]; prefer it unless you need compatibility with existing jump deployments.
//!
//! **Outputs are pinned**: changing the bucket any hash maps to is a breaking change.

use steadfast_core::splitmix::{GOLDEN_GAMMA, mix};

use crate::error::BuildError;
use crate::placement::Placement;
use crate::stable::fmix64;

/// Jump consistent hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash
/// Algorithm", 2014): the bucket in `0..buckets` for `hash`, or `None` for 0 buckets.
///
/// This is the paper's code exactly: the 64-bit LCG `key * 2862933555777941757 + 1` and the
/// double-precision jump `(b + 1) * (2^31 / ((key >> 33) + 1))`, so it agrees with other
/// faithful implementations (Guava, go-jump). Arithmetic wraps as in C: it never panics.
///
/// ```
/// use steadfast_hash::jump::jump;
/// assert_eq!(jump(2201, 100_001), Some(22152)); // the cross-language golden vector
/// assert_eq!(jump(42, 0), None);
/// ```
#[inline]
pub fn jump(hash: u64, buckets: u32) -> Option<u32> {
    if buckets == 0 {
        return None;
    }
    let n = i64::from(buckets);
    let mut key = hash;
    // The paper starts from b = -1, j = 0; the loop always runs once, so b starts at 0.
    // Signed integers, as the paper's C: i64 <-> f64 conversions are one instruction each
    // on x86-64, where u64's take several.
    let mut b: i64 = 0;
    let mut j: i64 = 0;
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // (b + 1) <= 2^32 and the quotient <= 2^31, so the product <= 2^63: the float-to-int
        // conversion is exact truncation (Rust's `as` saturates, C's would be the same here).
        // `key >> 33` < 2^31, so it fits an i64 exactly.
        j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) as i64 + 1) as f64)) as i64;
    }
    // b < n <= u32::MAX.
    Some(b as u32)
}

/// JumpBackHash (Ertl, "JumpBackHash: Say Goodbye to the Modulo Operation to Distribute Keys
/// Uniformly to Buckets", 2024): the bucket in `0..buckets` for `hash`, or `None` for 0
/// buckets.
///
/// It walks jump's "active indices" backwards: one SplitMix64 value seeded with `hash`
/// decides, for each power-of-two range `[2^m, 2^(m+1))` below `buckets`, whether the key's
/// last jump landed there and where; only in the top range, which `buckets` cuts short, can
/// a candidate fall outside and be redrawn. Integer arithmetic only, a small constant
/// expected number of steps (worst for `buckets` just above a power of two).
///
/// Bit-identical to hash4j's `ConsistentHashing.jumpBackHash` with SplitMix64 for every
/// `buckets` Java can express (`< 2^31`); larger counts up to `u32::MAX` are supported too.
///
/// ```
/// use steadfast_hash::jump::jump_back;
/// assert_eq!(jump_back(42, 100), Some(53));
/// assert_eq!(jump_back(42, 1), Some(0));
/// assert_eq!(jump_back(42, 0), None);
/// ```
#[inline]
pub fn jump_back(hash: u64, buckets: u32) -> Option<u32> {
    match buckets {
        0 => return None,
        1 => return Some(0),
        _ => {}
    }
    let mut state = hash.wrapping_add(GOLDEN_GAMMA);
    let r0 = mix(state);
    // One bit per power-of-two range [2^m, 2^(m+1)) that lies (partly) below `buckets`: set
    // when the key's last jump within the range [0, 2^(m+1)) lands in it.
    let mut ranges = ((r0 ^ (r0 >> 32)) as u32) & (u32::MAX >> (buckets - 1).leading_zeros());
    while ranges != 0 {
        let low = 1u32 << (31 - ranges.leading_zeros()); // 2^m, the top active range
        // Which half of r0 supplies the offset alternates with the number of active ranges.
        let shift = (ranges.count_ones() & 1) << 5;
        let candidate = low + (((r0 >> shift) as u32) & (low - 1));
        if candidate < buckets {
            return Some(candidate);
        }
        // Only the top range can be cut short by `buckets`: redraw in [0, 2^(m+1)) until the
        // draw lands below 2^m (no jump in this range: go down) or below `buckets`.
        let mask = low | (low - 1);
        loop {
            state = state.wrapping_add(GOLDEN_GAMMA);
            let r1 = mix(state);
            let first = (r1 as u32) & mask;
            if first < low {
                break;
            }
            if first < buckets {
                return Some(first);
            }
            let second = ((r1 >> 32) as u32) & mask;
            if second < low {
                break;
            }
            if second < buckets {
                return Some(second);
            }
        }
        ranges ^= low;
    }
    Some(0)
}

/// How many fresh candidates a replica rank draws before it falls back to a linear probe.
const REPLICA_ATTEMPTS: u32 = 16;

/// The hash for the `i`-th extra replica candidate (`i >= 1`) of `hash`.
#[inline]
fn candidate_hash(hash: u64, i: u32) -> u64 {
    fmix64(hash ^ u64::from(i).wrapping_mul(GOLDEN_GAMMA))
}

/// Fills `out` with up to `working` distinct buckets for `hash`, in preference order.
///
/// Rank 0 is `pick(hash)`. Each further rank takes the first bucket not already chosen from
/// the key's candidate sequence `pick(candidate_hash(hash, 1)), pick(candidate_hash(hash,
/// 2)), …` (one sequence shared by all ranks, at most [`REPLICA_ATTEMPTS`] draws per rank);
/// if those are all taken it probes linearly upwards (wrapping at `range`) from the last
/// draw to the first working bucket not chosen. Every candidate is itself a consistent
/// placement, so replicas move as little as the primary when the buckets change.
///
/// `is_working(b)` tells whether bucket `b < range` can be returned; there must be at
/// least `working` such buckets, and `pick` must only return them.
pub(crate) fn fill_replicas(
    hash: u64,
    out: &mut [usize],
    working: usize,
    range: usize,
    pick: impl Fn(u64) -> Option<usize>,
    is_working: impl Fn(usize) -> bool,
) -> usize {
    let want = out.len().min(working);
    if want == 0 {
        return 0;
    }
    let Some(first) = pick(hash) else {
        return 0;
    };
    out[0] = first;
    let mut filled = 1;
    let mut seq = 0u32;
    while filled < want {
        let (chosen, rest) = out.split_at_mut(filled);
        let mut last = chosen[filled - 1];
        let mut found = None;
        for _ in 0..REPLICA_ATTEMPTS {
            seq = seq.wrapping_add(1);
            if let Some(candidate) = pick(candidate_hash(hash, seq)) {
                last = candidate;
                if !chosen.contains(&candidate) {
                    found = Some(candidate);
                    break;
                }
            }
        }
        let next = match found {
            Some(candidate) => candidate,
            None => {
                // Terminates: fewer than `working` buckets are chosen so far.
                let mut bucket = last;
                loop {
                    bucket += 1;
                    if bucket >= range {
                        bucket = 0;
                    }
                    if is_working(bucket) && !chosen.contains(&bucket) {
                        break bucket;
                    }
                }
            }
        };
        rest[0] = next;
        filled += 1;
    }
    filled
}

macro_rules! range_placement {
    ($(#[$doc:meta])* $name:ident, $func:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name {
            buckets: u32,
        }

        impl $name {
            /// A placement over buckets `0..buckets`. Fails with
            /// [`BuildError::NoMembers`] for 0 buckets.
            pub fn new(buckets: u32) -> Result<Self, BuildError> {
                if buckets == 0 {
                    return Err(BuildError::NoMembers);
                }
                Ok(Self { buckets })
            }

            /// The number of buckets.
            pub fn buckets(&self) -> u32 {
                self.buckets
            }

            /// Changes the number of buckets. Growing from `n` to `m` moves only keys that
            /// go to the new buckets `n..m` (about `(m - n) / m` of them); shrinking moves
            /// only the keys of the removed buckets. Resizing to 0 is allowed (every lookup
            /// then returns `None`) so that a router can follow its members down to none.
            pub fn resize(&mut self, buckets: u32) {
                self.buckets = buckets;
            }

            /// The bucket for `hash`, or `None` when there are no buckets.
            #[inline]
            pub fn get(&self, hash: u64) -> Option<u32> {
                $func(hash, self.buckets)
            }

            /// The bucket for `key`'s [stable hash](crate::stable_hash64).
            #[inline]
            pub fn get_by_key<K: crate::StableHash + ?Sized>(&self, key: &K) -> Option<u32> {
                self.get(key.stable_hash64())
            }
        }

        impl Placement for $name {
            fn len(&self) -> usize {
                self.buckets as usize
            }

            #[inline]
            fn place(&self, hash: u64) -> Option<usize> {
                self.get(hash).map(|b| b as usize)
            }

            /// Distinct buckets in preference order: the owner first, then each further
            /// rank is the first bucket not yet chosen among
            /// `get(fmix64(hash ^ i·0x9e3779b97f4a7c15))` for `i = 1, 2, …` (at most 16 draws
            /// per rank, then a linear probe upwards from the last draw). Each draw is a
            /// consistent placement of its own, so resizing moves replicas as little as
            /// owners. No allocation; `O(k²)` for `k` replicas, meant for small replication
            /// factors.
            fn replicas(&self, hash: u64, out: &mut [usize]) -> usize {
                let n = self.buckets;
                fill_replicas(
                    hash,
                    out,
                    n as usize,
                    n as usize,
                    |h| $func(h, n).map(|b| b as usize),
                    |_| true,
                )
            }
        }
    };
}

range_placement!(
    /// Numbered shards `0..n` placed by [`jump_back`] (JumpBackHash): the fastest
    /// consistent placement when shards are only added or removed at the end.
    ///
    /// [`Placement`] indices are the bucket numbers.
    ///
    /// ```
    /// use steadfast_hash::{Placement, jump::JumpBack};
    /// let mut shards = JumpBack::new(10)?;
    /// let before = shards.get(0x1234_5678_9abc_def0).unwrap();
    /// shards.resize(11);
    /// let after = shards.get(0x1234_5678_9abc_def0).unwrap();
    /// assert!(after == before || after == 10); // stays, or moves to the new shard
    /// let mut replicas = [0; 3];
    /// assert_eq!(shards.replicas(0x1234_5678_9abc_def0, &mut replicas), 3);
    /// assert_eq!(replicas[0], after as usize);
    /// # Ok::<(), steadfast_hash::BuildError>(())
    /// ```
    JumpBack,
    jump_back
);

range_placement!(
    /// Numbered shards `0..n` placed by [`jump`] (the original jump consistent hash), for
    /// compatibility with existing deployments that use it (Guava, go-jump, …). Prefer
    /// [`JumpBack`] otherwise: same guarantees, several times faster for large `n`.
    ///
    /// [`Placement`] indices are the bucket numbers.
    Jump,
    jump
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replicas_probes_when_draws_are_exhausted() {
        // A pick that always returns bucket 1 forces the linear probe for every rank.
        let mut out = [usize::MAX; 4];
        let n = fill_replicas(7, &mut out, 4, 4, |_| Some(1), |_| true);
        assert_eq!(n, 4);
        assert_eq!(out, [1, 2, 3, 0]);
        // The probe skips buckets that are not working.
        let mut out = [usize::MAX; 3];
        let n = fill_replicas(7, &mut out, 3, 5, |_| Some(3), |b| b != 4 && b != 0);
        assert_eq!(n, 3);
        assert_eq!(out, [3, 1, 2]);
    }
}
