//! Rendezvous hashing, also called highest random weight (Thaler & Ravishankar, 1996/98).
//!
//! Every member scores every key and the highest score wins. A member's score for a key is
//! `fmix64(key_hash ^ id_hash)`, where `id_hash` is the member id's
//! [stable hash](crate::stable), computed once. So:
//!
//! - balance is perfect (only sampling noise), with no tables or virtual nodes;
//! - adding a member moves only the keys it now wins; removing one moves only its keys;
//! - replicas are simply the next-best scores, and failover order is natural: when the
//!   owner fails, the runner-up takes over, and each key's runner-up is independent;
//! - lookups are `O(n)` (about 2 ns per member unweighted); for hundreds of members or
//!   more, prefer a ring or Maglev.
//!
//! **Weights** use the logarithmic method: the score's top bits become `u` in `(0, 1)`
//! (odd multiples of 2⁻⁵³, so neither 0 nor 1) and the member maximises `−w / ln(u)`, which
//! makes each member's share exactly proportional to its weight. When all weights are equal
//! the `ln` is skipped: the ranking is the same, so equal weights of any value place keys
//! exactly as the unweighted algorithm does.
//!
//! Ties (two ids with the same 64-bit hash) go to the member added first.

use crate::error::BuildError;
#[cfg(feature = "serde")]
use crate::error::check_weight;
use crate::members::Members;
use crate::placement::Placement;
use crate::stable::{StableHash, fmix64};

/// Rendezvous (HRW) placement over members `M`, optionally weighted.
///
/// Indices are positions in insertion order; removing a member shifts the later ones down
/// by one (see [`members`](Self::members)).
///
/// ```
/// use steadfast_hash::rendezvous::Rendezvous;
/// let mut nodes = Rendezvous::new(["a", "b", "c"])?;
/// let owner = *nodes.get("user:1234").unwrap();
/// nodes.add("d")?;
/// let now = *nodes.get("user:1234").unwrap();
/// assert!(now == owner || now == "d"); // only keys that "d" wins move
///
/// let mut replicas = [0; 2];
/// assert_eq!(nodes.replicas(steadfast_hash::stable_hash64("user:1234"), &mut replicas), 2);
/// assert_eq!(nodes.members()[replicas[0]], now);
/// # Ok::<(), steadfast_hash::BuildError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rendezvous<M> {
    members: Members<M>,
    /// All weights equal: rank by the raw score and skip the `ln`.
    uniform: bool,
}

/// A member's weighted ranking key for one hash: the weighted score, then the raw score
/// (which only ties between ids with equal hashes). With equal weights the raw score alone
/// ranks in the same order.
type Score = (f64, u64);

/// `-w / ln(u)` with `u` an odd multiple of 2⁻⁵³ in `(0, 1)`, taken from `raw`'s top 52 bits.
/// Finite and positive for every finite positive weight.
#[inline]
fn weighted_score(raw: u64, weight: f64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    // ((raw >> 11) | 1) < 2^53 is exact in f64, so u is never 0 nor 1.
    let u = ((raw >> 11) | 1) as f64 * SCALE;
    -weight / u.ln()
}

impl<M: StableHash + PartialEq> Rendezvous<M> {
    /// Unweighted members (every weight 1). Fails with [`BuildError::NoMembers`] when empty
    /// and [`BuildError::DuplicateMember`] on a repeated id.
    pub fn new<I>(members: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = M>,
    {
        Self::weighted(members.into_iter().map(|id| (id, 1.0)))
    }

    /// Weighted members: each gets a share of keys proportional to its weight. Fails with
    /// [`BuildError::NoMembers`] when empty, [`BuildError::InvalidWeight`] for a weight that
    /// is not finite and positive, and [`BuildError::DuplicateMember`] on a repeated id.
    pub fn weighted<I>(members: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = (M, f64)>,
    {
        let members = Members::new(members)?;
        if members.len() == 0 {
            return Err(BuildError::NoMembers);
        }
        Ok(Self::from_members(members))
    }

    fn from_members(members: Members<M>) -> Self {
        let mut this = Self {
            members,
            uniform: true,
        };
        this.update_uniform();
        this
    }

    fn update_uniform(&mut self) {
        let weights = self.members.weights();
        self.uniform = weights.windows(2).all(|w| w[0] == w[1]);
    }

    /// Adds a member with weight 1 and returns its index. Only keys it now wins move to it.
    pub fn add(&mut self, id: M) -> Result<usize, BuildError> {
        self.add_weighted(id, 1.0)
    }

    /// Adds a weighted member and returns its index.
    pub fn add_weighted(&mut self, id: M, weight: f64) -> Result<usize, BuildError> {
        let index = self.members.push(id, weight)?;
        self.update_uniform();
        Ok(index)
    }

    /// Removes a member and returns the index it had (later members shift down by one).
    /// Only its keys move, each to its runner-up. Removing the last member is allowed;
    /// lookups then return `None`.
    pub fn remove(&mut self, id: &M) -> Result<usize, BuildError> {
        let index = self.members.remove(id)?;
        self.update_uniform();
        Ok(index)
    }

    /// The index of member `id`, if it is one.
    pub fn index_of(&self, id: &M) -> Option<usize> {
        self.members.index_of(id)
    }
}

impl<M> Rendezvous<M> {
    /// The members, by index.
    pub fn members(&self) -> &[M] {
        self.members.ids()
    }

    /// The weights, by index.
    pub fn weights(&self) -> &[f64] {
        self.members.weights()
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.len() == 0
    }

    /// The member that owns `key`, or `None` when there are no members.
    #[inline]
    pub fn get<K: StableHash + ?Sized>(&self, key: &K) -> Option<&M> {
        self.get_by_hash(key.stable_hash64())
    }

    /// The member that owns the key with this [stable hash](crate::stable_hash64).
    #[inline]
    pub fn get_by_hash(&self, hash: u64) -> Option<&M> {
        self.index_by_hash(hash).map(|i| &self.members.ids()[i])
    }

    /// The index of the member that owns `hash`. No allocation; one `ln` per member when
    /// weights differ, none when they are equal.
    #[inline]
    pub fn index_by_hash(&self, hash: u64) -> Option<usize> {
        let hashes = self.members.hashes();
        let (&first, rest) = hashes.split_first()?;
        let mut best = 0;
        if self.uniform {
            let mut best_score = fmix64(hash ^ first);
            for (i, &id_hash) in rest.iter().enumerate() {
                let score = fmix64(hash ^ id_hash);
                // Strictly greater: ties keep the earlier member.
                if score > best_score {
                    best = i + 1;
                    best_score = score;
                }
            }
        } else {
            let weights = self.members.weights();
            let raw = fmix64(hash ^ first);
            let mut best_score: Score = (weighted_score(raw, weights[0]), raw);
            for (i, (&id_hash, &weight)) in rest.iter().zip(&weights[1..]).enumerate() {
                let raw = fmix64(hash ^ id_hash);
                let score: Score = (weighted_score(raw, weight), raw);
                if score > best_score {
                    best = i + 1;
                    best_score = score;
                }
            }
        }
        Some(best)
    }

    /// Writes the indices of the `min(out.len(), len())` highest-scoring members for `hash`
    /// into `out`, best first, and returns how many. `out[0]` is the owner; each next entry
    /// is who takes over if all before it fail.
    ///
    /// Partial selection in one pass that keeps the best `k` in `out` itself: no allocation
    /// and no sort of all members. For `k ≤ 16` the kept scores live in a stack buffer;
    /// beyond that they are recomputed when needed (`O(n + k·log k·log(n/k))` expected score
    /// computations).
    pub fn replicas(&self, hash: u64, out: &mut [usize]) -> usize {
        let k = out.len().min(self.len());
        if k <= 1 {
            return match (k, self.index_by_hash(hash)) {
                (1, Some(i)) => {
                    out[0] = i;
                    1
                }
                _ => 0,
            };
        }
        let top = &mut out[..k];
        let hashes = self.members.hashes();
        if self.uniform {
            select_top(hashes.len(), top, |i| fmix64(hash ^ hashes[i]));
        } else {
            let weights = self.members.weights();
            select_top(hashes.len(), top, |i| {
                let raw = fmix64(hash ^ hashes[i]);
                (weighted_score(raw, weights[i]), raw)
            });
        }
        k
    }
}

/// How many kept scores [`select_top`] holds on the stack.
const STACK_TOP: usize = 16;

/// Fills `top` (`2 <= top.len() <= len`) with the indices in `0..len` of the highest
/// `score`s, best first; among equal scores the lower index ranks first. Scores are never
/// NaN.
fn select_top<S: PartialOrd + Copy>(len: usize, top: &mut [usize], score: impl Fn(usize) -> S) {
    let k = top.len();
    if k <= STACK_TOP {
        let mut kept = [score(0); STACK_TOP];
        top[0] = 0;
        let mut filled = 1;
        for i in 1..len {
            let s = score(i);
            if filled == k && s <= kept[k - 1] {
                continue; // not better than the k-th: ties keep the earlier member
            }
            let mut pos = if filled < k {
                filled += 1;
                filled - 1
            } else {
                k - 1 // evict the k-th
            };
            while pos > 0 && kept[pos - 1] < s {
                kept[pos] = kept[pos - 1];
                top[pos] = top[pos - 1];
                pos -= 1;
            }
            kept[pos] = s;
            top[pos] = i;
        }
    } else {
        // Only the k-th score is cached; the others are recomputed for the binary search.
        let mut filled = 0;
        let mut threshold = score(0);
        for i in 0..len {
            let s = score(i);
            if filled == k && s <= threshold {
                continue;
            }
            let pos = top[..filled].partition_point(|&j| score(j) >= s);
            let end = if filled < k {
                filled += 1;
                filled - 1
            } else {
                k - 1
            };
            top.copy_within(pos..end, pos + 1);
            top[pos] = i;
            if filled == k {
                threshold = score(top[k - 1]);
            }
        }
    }
}

impl<M> Placement for Rendezvous<M> {
    fn len(&self) -> usize {
        Rendezvous::len(self)
    }

    #[inline]
    fn place(&self, hash: u64) -> Option<usize> {
        self.index_by_hash(hash)
    }

    fn replicas(&self, hash: u64, out: &mut [usize]) -> usize {
        Rendezvous::replicas(self, hash, out)
    }
}

/// Serialized as the member list: `{"ids": [...], "weights": [...]}`. Id hashes are not
/// stored; they are recomputed and the list re-validated (weights, unique ids) on
/// deserialization.
#[cfg(feature = "serde")]
impl<M: serde::Serialize> serde::Serialize for Rendezvous<M> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.members.serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de, M> serde::Deserialize<'de> for Rendezvous<M>
where
    M: serde::Deserialize<'de> + StableHash + PartialEq,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        let mut members = Members::<M>::deserialize(deserializer)?;
        let (ids, weights) = (members.ids().len(), members.weights().len());
        if ids != weights {
            return Err(D::Error::custom(format_args!(
                "rendezvous: {ids} ids but {weights} weights"
            )));
        }
        members.rehash();
        // Re-validate what `Members::new` checks. An empty list is accepted: it is the state
        // after removing every member.
        for (index, &weight) in members.weights().iter().enumerate() {
            check_weight(index, weight)
                .map_err(|e| D::Error::custom(format_args!("rendezvous: {e}")))?;
        }
        for (index, id) in members.ids().iter().enumerate() {
            if members.index_of(id) != Some(index) {
                return Err(D::Error::custom(format_args!(
                    "rendezvous: {}",
                    BuildError::DuplicateMember { index }
                )));
            }
        }
        Ok(Self::from_members(members))
    }
}
