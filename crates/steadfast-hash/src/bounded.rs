//! Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, SODA 2018),
//! over any [`Placement`].
//!
//! Plain consistent hashing sends every request for a hot key to one member. Bounded loads
//! keep the affinity but cap what any member may hold: a member is **eligible** for a new
//! request while its in-flight count is below its cap
//!
//! ```text
//! cap = ⌈ c · (in_flight_total + 1) / n ⌉        (weighted: ⌈ c · (total + 1) · wᵢ / Σw ⌉)
//! ```
//!
//! where `c = 1 + ε` is the balance factor and the `+ 1` counts the request being placed
//! (HAProxy's `chash_server_is_eligible`). A key goes to its owner when the owner is under its
//! cap; otherwise to the next member of the key's preference order
//! ([`Placement::replicas`]) that is. So no member ever holds more than `⌈c · avg⌉`
//! requests, where `avg` includes the new one, and only keys whose owner is full move.
//!
//! Because `c > 1`, the caps add up to more than the requests in flight, so some member is
//! always under its cap. [`BoundedLoad::pick`] looks at the key's first
//! [`MAX_CANDIDATES`] (16) members in preference order, then, if all of those are full (rare:
//! it needs 16 full members, so only with `n > 16`), scans every member from a position
//! derived from the key and takes the first under its cap. The bound therefore always holds
//! for a single picker; see [Concurrency](#concurrency) for parallel ones.
//!
//! # The balance factor
//!
//! `c` must be finite and greater than 1; the default, [`DEFAULT_FACTOR`] = 1.25, is liblb's
//! and brpc's. Smaller values balance more tightly and move more keys off their owner (the
//! paper bounds the expected moves per update by O(1/ε²)); HAProxy's `hash-balance-factor
//! 150` is `c = 1.5`. Caps are computed in integers with `c` rounded to six decimal places,
//! so they are exact (no floating-point rounding at the ceiling).
//!
//! # Counting requests
//!
//! A pick returns a [`Ticket`]; the request counts as in flight until the ticket is dropped.
//! Counters are atomics shared through `Arc`s: picking and dropping tickets take `&self`,
//! never lock, and work from any thread (`BoundedLoad` and `Ticket` are `Send + Sync`). Share
//! one `BoundedLoad` between tasks with an `Arc` (the [router](crate::router) does this for
//! its clones).
//!
//! # Membership changes
//!
//! Member `i` of the placement is counter `i`. When membership changes, change the counters
//! the same way, with exclusive access (`&mut self`): [`resize`](BoundedLoad::resize) adds or
//! drops members at the end, [`remove`](BoundedLoad::remove) removes one and shifts the
//! later ones down (as `Vec::remove`, and as the crate's member lists do).
//!
//! Outstanding tickets stay valid across changes: a ticket counts on its member's own
//! counter, not on an index. The tickets of a **removed** member stop counting towards the
//! total (and so the average) at once; when they are dropped they decrement only that
//! member's detached counter and touch neither the remaining members nor the total. The
//! tickets of members that shift down keep counting on the same member.
//!
//! # Concurrency
//!
//! The check and the increment of a member's count are one compare-and-swap, so two picks
//! never both take a member's last slot. The cap is computed from the total the pick saw
//! when it started; picks running at the same time can each see a total that leaves room
//! nowhere, in which case the pick takes the least loaded member instead. So with `k`
//! concurrent picks a member can exceed the cap computed from the current total by at most
//! `k - 1`; with one picker at a time the bound is exact.
//!
//! # Example
//!
//! ```
//! use steadfast_hash::Placement;
//! use steadfast_hash::bounded::BoundedLoad;
//! # /// Member `hash % n`, then the next ones.
//! # struct Modulo(usize);
//! # impl Placement for Modulo {
//! #     fn len(&self) -> usize { self.0 }
//! #     fn place(&self, h: u64) -> Option<usize> { (self.0 > 0).then(|| (h % self.0 as u64) as usize) }
//! #     fn replicas(&self, h: u64, out: &mut [usize]) -> usize {
//! #         let k = out.len().min(self.0);
//! #         for (i, slot) in out[..k].iter_mut().enumerate() { *slot = (h as usize + i) % self.0; }
//! #         k
//! #     }
//! # }
//!
//! let placement = Modulo(4); // any Placement: a ring, Maglev, rendezvous...
//! let load = BoundedLoad::with_factor(placement.len(), 1.5)?;
//!
//! // A hot key (hash 1, owned by member 1) arrives four times while nothing completes.
//! let tickets: Vec<_> = (0..4).map(|_| load.pick(&placement, 1).expect("members")).collect();
//! let members: Vec<usize> = tickets.iter().map(|t| t.member()).collect();
//! // Caps: ⌈1.5·1/4⌉ = 1, ⌈1.5·2/4⌉ = 1, ⌈1.5·3/4⌉ = 2, ⌈1.5·4/4⌉ = 2.
//! assert_eq!(members, [1, 2, 1, 2]);
//! assert_eq!((load.in_flight(1), load.total_in_flight()), (2, 4));
//!
//! drop(tickets); // the requests completed
//! assert_eq!(load.total_in_flight(), 0);
//! # Ok::<(), steadfast_hash::BuildError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::BuildError;
use crate::placement::Placement;
use crate::stable::fmix64;

/// The default balance factor `c` = 1.25 (liblb's and brpc's): no member holds more than
/// 25% above the average (rounded up).
pub const DEFAULT_FACTOR: f64 = 1.25;

/// How many members of a key's preference order [`BoundedLoad::pick`] considers before it
/// scans all members (the candidates live in a stack buffer of this size).
pub const MAX_CANDIDATES: usize = 16;

/// The largest balance factor accepted. Larger factors would not bound anything in practice.
pub const MAX_FACTOR: f64 = 1_000_000.0;

/// The factor's fixed-point scale: caps use `c` rounded to millionths.
const SCALE: u128 = 1_000_000;

/// The top bit of a counter marks a removed member; the rest is its in-flight count.
const DETACHED: usize = 1 << (usize::BITS - 1);
const COUNT: usize = !DETACHED;

/// In-flight counters per member with a balance factor: picks a member for a key under the
/// bounded-loads rule. See the [module docs](self).
///
/// Not `Clone`: share it with an `Arc` (membership changes need exclusive access).
pub struct BoundedLoad {
    factor: f64,
    /// `factor` in millionths.
    factor_micros: u128,
    slots: Vec<Arc<Slot>>,
    weights: Vec<u32>,
    total_weight: u64,
    /// In flight on the current members; shared with every slot.
    total: Arc<AtomicUsize>,
}

/// One member's counter.
struct Slot {
    /// In-flight count, with [`DETACHED`] set once the member is removed.
    state: AtomicUsize,
    /// The owning `BoundedLoad`'s total, decremented by tickets while attached.
    total: Arc<AtomicUsize>,
}

impl Slot {
    fn count(&self) -> usize {
        self.state.load(Ordering::Acquire) & COUNT
    }

    /// Increments the count if it is below `cap` (and the member was not removed).
    fn try_increment(&self, cap: usize) -> bool {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current & DETACHED != 0 || current & COUNT >= cap {
                return false;
            }
            match self.state.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Counts one more request, whatever the cap, on the total too while attached.
    ///
    /// The total goes up before the count and down after it (in [`Ticket`]'s drop), so the
    /// total is never below the sum of attached counts and never wraps.
    fn acquire(self: &Arc<Self>, member: usize) -> Ticket {
        self.total.fetch_add(1, Ordering::AcqRel);
        if self.state.fetch_add(1, Ordering::AcqRel) & DETACHED != 0 {
            // Removed: its requests no longer count towards the total.
            self.total.fetch_sub(1, Ordering::AcqRel);
        }
        Ticket {
            slot: Arc::clone(self),
            member,
        }
    }

    /// Marks the member removed and takes its requests off the total.
    fn detach(&self) {
        let previous = self.state.fetch_or(DETACHED, Ordering::AcqRel);
        if previous & DETACHED == 0 {
            self.total.fetch_sub(previous & COUNT, Ordering::AcqRel);
        }
    }
}

/// A handle on one member's counter, for counting a request routed later (the router's
/// response futures hold these while they wait for readiness).
#[derive(Clone)]
pub(crate) struct LoadSlot {
    slot: Arc<Slot>,
    member: usize,
}

impl LoadSlot {
    /// Counts a request on this member, cap or not.
    pub(crate) fn acquire(&self) -> Ticket {
        self.slot.acquire(self.member)
    }
}

impl fmt::Debug for LoadSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadSlot")
            .field("member", &self.member)
            .field("in_flight", &self.slot.count())
            .finish()
    }
}

/// One request counted as in flight on a member; dropping it ends the count.
///
/// The count belongs to the member, not to its index: if the member is later removed, the
/// ticket decrements only the removed member's counter (see the
/// [module docs](self#membership-changes)).
#[must_use = "the request stops counting as in flight when the ticket is dropped"]
pub struct Ticket {
    slot: Arc<Slot>,
    member: usize,
}

impl Ticket {
    /// The member the request went to: its index when the ticket was issued.
    pub fn member(&self) -> usize {
        self.member
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let previous = self.slot.state.fetch_sub(1, Ordering::AcqRel);
        if previous & DETACHED == 0 {
            self.slot.total.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("member", &self.member)
            .finish()
    }
}

// === impl BoundedLoad ===

impl BoundedLoad {
    /// Counters for `members` members with weight 1 each and the [`DEFAULT_FACTOR`].
    pub fn new(members: usize) -> Self {
        Self::with_factor(members, DEFAULT_FACTOR).expect("the default factor is valid")
    }

    /// Counters for `members` members with weight 1 each and the balance factor `factor`
    /// (`c = 1 + ε`).
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidParameter`] unless `factor` is finite, greater than 1 (by at least
    /// 10⁻⁶, the precision caps use) and at most [`MAX_FACTOR`].
    pub fn with_factor(members: usize, factor: f64) -> Result<Self, BuildError> {
        if !factor.is_finite() || factor > MAX_FACTOR {
            return Err(BuildError::InvalidParameter(
                "the bounded-load factor must be finite and at most 1e6",
            ));
        }
        let micros = (factor * SCALE as f64).round();
        if micros <= SCALE as f64 {
            return Err(BuildError::InvalidParameter(
                "the bounded-load factor must be greater than 1 (by at least 1e-6)",
            ));
        }
        let mut load = Self {
            factor,
            factor_micros: micros as u128,
            slots: Vec::new(),
            weights: Vec::new(),
            total_weight: 0,
            total: Arc::new(AtomicUsize::new(0)),
        };
        load.resize(members);
        Ok(load)
    }

    /// The balance factor `c`.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// How many members are counted.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no members are counted.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Requests in flight on `member`.
    ///
    /// # Panics
    ///
    /// If `member >= len()`.
    pub fn in_flight(&self, member: usize) -> usize {
        self.slots[member].count()
    }

    /// Requests in flight on all current members (not counting removed members').
    pub fn total_in_flight(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// The cap a new request would see on `member` now: it is eligible while
    /// [`in_flight`](Self::in_flight) is below this.
    ///
    /// # Panics
    ///
    /// If `member >= len()`.
    pub fn cap(&self, member: usize) -> usize {
        assert!(member < self.len(), "member {member} out of range");
        self.cap_at(member, self.total_in_flight() + 1)
    }

    /// `member`'s weight (1 unless set).
    ///
    /// # Panics
    ///
    /// If `member >= len()`.
    pub fn weight(&self, member: usize) -> u32 {
        self.weights[member]
    }

    /// Sets `member`'s weight: its cap becomes `⌈c · (total + 1) · w / Σw⌉`. Use the same
    /// proportions as the placement's weights (HAProxy's server weights are integers too).
    ///
    /// # Errors
    ///
    /// [`BuildError::UnknownMember`] if `member >= len()`, [`BuildError::InvalidWeight`] if
    /// `weight` is 0.
    pub fn set_weight(&mut self, member: usize, weight: u32) -> Result<(), BuildError> {
        let Some(slot) = self.weights.get_mut(member) else {
            return Err(BuildError::UnknownMember);
        };
        if weight == 0 {
            return Err(BuildError::InvalidWeight {
                index: member,
                weight: 0.0,
            });
        }
        self.total_weight = self.total_weight - u64::from(*slot) + u64::from(weight);
        *slot = weight;
        Ok(())
    }

    /// Grows to `members` members (the new ones last, with weight 1 and nothing in flight)
    /// or drops the members from `members` on, as if each were [removed](Self::remove).
    pub fn resize(&mut self, members: usize) {
        while self.slots.len() > members {
            let last = self.slots.len() - 1;
            self.remove(last);
        }
        while self.slots.len() < members {
            self.slots.push(Arc::new(Slot {
                state: AtomicUsize::new(0),
                total: Arc::clone(&self.total),
            }));
            self.weights.push(1);
            self.total_weight += 1;
        }
    }

    /// Removes `member`; the members after it shift down by one. Its in-flight requests stop
    /// counting towards the total now, and its outstanding tickets decrement only its own
    /// (detached) counter when dropped.
    ///
    /// # Panics
    ///
    /// If `member >= len()`.
    pub fn remove(&mut self, member: usize) {
        let slot = self.slots.remove(member);
        slot.detach();
        self.total_weight -= u64::from(self.weights.remove(member));
    }

    /// Picks the member for a key with stable hash `hash` and counts the request there: the
    /// first member in the key's preference order under its cap (see the
    /// [module docs](self)). `None` when there are no members.
    ///
    /// `placement` must be built over the same members (index `i` is counter `i`); members it
    /// returns that are out of range are skipped.
    pub fn pick<P>(&self, placement: &P, hash: u64) -> Option<Ticket>
    where
        P: Placement + ?Sized,
    {
        let n = self.len();
        if n == 0 || placement.is_empty() {
            return None;
        }
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        let mut chosen = None;
        let mut least = Least::default();
        self.walk(placement, hash, 1, |member| {
            let slot = &self.slots[member];
            if slot.try_increment(self.cap_at(member, total)) {
                chosen = Some(member);
                return true;
            }
            least.offer(member, slot.count(), self.weights[member]);
            false
        });
        let member = match chosen {
            Some(member) => member,
            None => {
                // Only reachable when concurrent picks filled every member meanwhile.
                let member = least.member.unwrap_or(0);
                self.slots[member].state.fetch_add(1, Ordering::AcqRel);
                member
            }
        };
        Some(Ticket {
            slot: Arc::clone(&self.slots[member]),
            member,
        })
    }

    /// Counts a request on `member` if it is under its cap. `None` if it is at its cap or
    /// not a member.
    pub fn try_acquire(&self, member: usize) -> Option<Ticket> {
        let slot = self.slots.get(member)?;
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        if slot.try_increment(self.cap_at(member, total)) {
            Some(Ticket {
                slot: Arc::clone(slot),
                member,
            })
        } else {
            self.total.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }

    /// Counts a request on `member` whatever its cap (for a request routed by other means).
    /// `None` if it is not a member.
    pub fn acquire(&self, member: usize) -> Option<Ticket> {
        self.slots.get(member).map(|slot| slot.acquire(member))
    }

    /// A handle to count a request on `member` later, even after membership changes.
    pub(crate) fn slot(&self, member: usize) -> Option<LoadSlot> {
        self.slots.get(member).map(|slot| LoadSlot {
            slot: Arc::clone(slot),
            member,
        })
    }

    /// Writes up to `out.len()` members under their cap now, in the key's preference order
    /// (the first [`MAX_CANDIDATES`], then the scan), and returns how many. Counts nothing.
    /// When no member has room (only under concurrency) it writes the least loaded one; it
    /// writes none only when there are no members.
    pub(crate) fn eligible<P>(&self, placement: &P, hash: u64, out: &mut [usize]) -> usize
    where
        P: Placement + ?Sized,
    {
        if out.is_empty() || self.is_empty() || placement.is_empty() {
            return 0;
        }
        let total = self.total_in_flight() + 1;
        let mut written = 0;
        let mut least = Least::default();
        let wanted = out.len();
        self.walk(placement, hash, wanted, |member| {
            let count = self.slots[member].count();
            if count < self.cap_at(member, total) {
                if !out[..written].contains(&member) {
                    out[written] = member;
                    written += 1;
                }
            } else {
                least.offer(member, count, self.weights[member]);
            }
            written == wanted
        });
        if written == 0
            && let Some(member) = least.member
        {
            out[0] = member;
            written = 1;
        }
        written
    }

    /// `⌈c · total · w / Σw⌉`, where `total` includes the request being placed.
    fn cap_at(&self, member: usize, total: usize) -> usize {
        let numerator = (total as u128)
            .saturating_mul(self.factor_micros)
            .saturating_mul(u128::from(self.weights[member]));
        let denominator = u128::from(self.total_weight.max(1)) * SCALE;
        usize::try_from(numerator.div_ceil(denominator)).unwrap_or(usize::MAX)
    }

    /// Visits the key's candidates until `visit` returns `true`: the first `first` members of
    /// its preference order, then up to [`MAX_CANDIDATES`], then (when those are not all the
    /// members) every member from a key-derived position. Members may be visited twice;
    /// members out of range are skipped. Returns whether `visit` stopped the walk.
    fn walk<P>(
        &self,
        placement: &P,
        hash: u64,
        first: usize,
        mut visit: impl FnMut(usize) -> bool,
    ) -> bool
    where
        P: Placement + ?Sized,
    {
        let n = self.len();
        let mut buf = [0usize; MAX_CANDIDATES];
        let first = first.clamp(1, MAX_CANDIDATES);
        let got = placement.replicas(hash, &mut buf[..first]);
        for &member in &buf[..got] {
            if member < n && visit(member) {
                return true;
            }
        }
        let mut seen = got;
        if got == first && first < MAX_CANDIDATES && placement.len() > got {
            let mut earlier = [0usize; MAX_CANDIDATES];
            earlier[..got].copy_from_slice(&buf[..got]);
            seen = placement.replicas(hash, &mut buf);
            for &member in &buf[..seen] {
                if member < n && !earlier[..got].contains(&member) && visit(member) {
                    return true;
                }
            }
        }
        let covered = buf[..seen].iter().filter(|&&m| m < n).count();
        if covered < n {
            // Overflow: every candidate is full. Scan from a key-derived start so that the
            // overflow of different keys spreads out.
            let start = ((u128::from(fmix64(hash)) * n as u128) >> 64) as usize;
            for member in (start..n).chain(0..start) {
                if visit(member) {
                    return true;
                }
            }
        }
        false
    }
}

/// The least loaded member seen (relative to weight), for when no member has room.
#[derive(Default)]
struct Least {
    member: Option<usize>,
    count: usize,
    weight: u32,
}

impl Least {
    fn offer(&mut self, member: usize, count: usize, weight: u32) {
        // count / weight < self.count / self.weight, without division.
        let lower = self.member.is_none()
            || (count as u128) * u128::from(self.weight)
                < (self.count as u128) * u128::from(weight);
        if lower {
            *self = Self {
                member: Some(member),
                count,
                weight,
            };
        }
    }
}

impl fmt::Debug for BoundedLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Counts<'a>(&'a [Arc<Slot>]);
        impl fmt::Debug for Counts<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|s| s.count()))
                    .finish()
            }
        }
        f.debug_struct("BoundedLoad")
            .field("factor", &self.factor)
            .field("total_in_flight", &self.total_in_flight())
            .field("in_flight", &Counts(&self.slots))
            .field("weights", &self.weights)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_exact_integers() {
        let load = BoundedLoad::with_factor(5, 1.25).expect("valid");
        // 1.25 · 4 / 5 = 1 exactly: the ceiling must not round it up to 2.
        assert_eq!(load.cap_at(0, 4), 1);
        assert_eq!(load.cap_at(0, 5), 2);
        assert_eq!(load.cap_at(0, 1), 1);
        let load = BoundedLoad::with_factor(3, 1.1).expect("valid");
        // 1.1 · 30 / 3 = 11 exactly.
        assert_eq!(load.cap_at(0, 30), 11);
    }

    #[test]
    fn weighted_caps() {
        let mut load = BoundedLoad::with_factor(2, 1.5).expect("valid");
        load.set_weight(1, 3).expect("member");
        // Σw = 4: member 0 gets ⌈1.5·8·1/4⌉ = 3, member 1 ⌈1.5·8·3/4⌉ = 9.
        assert_eq!((load.cap_at(0, 8), load.cap_at(1, 8)), (3, 9));
        assert_eq!(load.set_weight(2, 1), Err(BuildError::UnknownMember));
        assert!(load.set_weight(0, 0).is_err());
    }
}
