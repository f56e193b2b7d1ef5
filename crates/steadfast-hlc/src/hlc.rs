//! The clock: [`Hlc`], its builder and its error.

use std::fmt;
use std::time::Duration;

use steadfast_core::clock::{SystemClock, WallClock};

use crate::sync::{AtomicU64, Ordering};
use crate::timestamp::physical_micros_saturating;
use crate::timestamp::{LOGICAL_BITS, NodeId, Timestamp, UniqueTimestamp};

/// The default bound on how far ahead of our physical clock a remote timestamp may be:
/// 500 ms, as in CockroachDB (`DefaultMaxClockOffset`), uhlc and YugabyteDB.
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_millis(500);

/// The largest accepted max offset (one day). A larger bound would let a single bad remote
/// clock drag every node's timestamps far from real time.
pub const MAX_MAX_OFFSET: Duration = Duration::from_secs(86_400);

/// Once the packed state passes this (about one second before the end of the timestamp
/// range, in 2112), ticks saturate at [`SATURATED`] instead of ever wrapping. No real clock
/// gets here; a manual clock in a test might.
const SATURATION_GUARD: u64 = u64::MAX - (1 << 32);
/// Where saturated ticks stay: above every value issued before saturation, far enough below
/// `u64::MAX` that concurrent `fetch_add`s cannot wrap.
const SATURATED: u64 = u64::MAX - (1 << 31);
/// The latest wall-clock reading used, so physical timestamps stay below the guard.
const MAX_CLOCK_MICROS: u64 = (SATURATION_GUARD >> LOGICAL_BITS) - 1;

/// Keeps a value on a cache line (and its neighbour, which x86 prefetches in pairs) of its
/// own, so writes to the fields around it do not evict it from other cores.
#[repr(align(128))]
struct CacheLine<T>(T);

/// A hybrid logical clock: timestamps that follow physical time, never go backwards, and
/// order every event after the events that caused it, across nodes.
///
/// The whole state is one [`AtomicU64`](std::sync::atomic::AtomicU64) holding the last
/// [`Timestamp`] issued or learned, so the clock is lock-free and shared by reference (wrap
/// it in an [`Arc`](std::sync::Arc) to share it between tasks and layers).
///
/// - [`now`](Self::now) issues a timestamp: unique and strictly increasing across every
///   thread that uses this clock, at least the physical time.
/// - [`update`](Self::update) merges a timestamp received from another node (CockroachDB's
///   rule: the next `now()` ticks past it); [`update_and_now`](Self::update_and_now) merges
///   and issues in one step (the HLC paper's rule: receiving is an event).
/// - A remote timestamp more than [`max_offset`](HlcBuilder::max_offset) ahead of our
///   physical clock is refused with [`ClockOffsetExceeded`] and leaves the clock untouched:
///   one node with a broken clock cannot drag the others into the future.
/// - A physical clock that steps backwards (an NTP step, a VM migration) never makes
///   timestamps go backwards: the clock keeps counting on its logical part until physical
///   time catches up. A step back by more than a tenth of the max offset is counted
///   ([`backward_jumps`](Self::backward_jumps)) and traced as a warning (target
///   `steadfast_hlc`), as CockroachDB does.
///
/// The properties the HLC paper proves (for every timestamp `l` issued at physical time
/// `pt`: `l ≥ pt`, `l − pt ≤ ε` where ε bounds the skew between nodes, and `e → f ⇒ l.e <
/// l.f`) are checked by this crate's property tests over simulated networks with skewed and
/// jumping clocks.
///
/// # Example
///
/// ```
/// use steadfast_hlc::Hlc;
///
/// let a = Hlc::new();
/// let b = Hlc::new();
/// let sent = a.now();                             // an event on node a
/// let received = b.update_and_now(sent).unwrap(); // b receives it
/// assert!(received > sent);                       // ordered after its cause
/// assert!(b.now() > received);
/// ```
pub struct Hlc<C = SystemClock> {
    /// The last timestamp issued or learned.
    state: AtomicU64,
    /// The highest physical reading (µs) seen, stored only after `state` reached it, so a
    /// reading at or below it can tick without touching the physical part. Also notices
    /// the wall clock stepping backwards. On its own cache line: read on every call,
    /// written about once per microsecond.
    mark: CacheLine<AtomicU64>,
    backward_jumps: AtomicU64,
    clock: C,
    max_offset_micros: u64,
    jump_threshold_micros: u64,
    node: NodeId,
}

impl Hlc {
    /// A clock on the system wall clock with the default max offset (500 ms) and node id 0.
    pub fn new() -> Self {
        Self::builder().build_unchecked()
    }

    /// A builder, starting from the system clock and the defaults.
    pub fn builder() -> HlcBuilder {
        HlcBuilder {
            clock: SystemClock,
            max_offset: DEFAULT_MAX_OFFSET,
            node: NodeId(0),
        }
    }
}

impl Default for Hlc {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: WallClock> Hlc<C> {
    /// A clock on `clock` (for example a [`ManualClock`](steadfast_core::clock::ManualClock)
    /// in tests) with the default max offset and node id 0.
    pub fn with_clock(clock: C) -> Self {
        Hlc::<SystemClock>::builder().clock(clock).build_unchecked()
    }

    /// Issues a timestamp for a local or send event.
    ///
    /// The result is at least the current physical time, greater than every timestamp this
    /// clock issued or learned before, and unique: no two calls, on any threads, return the
    /// same value.
    #[inline]
    pub fn now(&self) -> Timestamp {
        let physical = self.clock_micros();
        // `mark` is the highest physical reading seen, stored only after `state` has reached
        // it (the `fetch_max` comes first). Many calls share a microsecond, and for those one
        // `fetch_add` on `state` issues the next logical tick: a single contended write per
        // call, the least any shared clock can do.
        let mark = self.mark.0.load(Ordering::Acquire);
        if physical > mark {
            let candidate = physical << LOGICAL_BITS;
            let prev = self.state.fetch_max(candidate, Ordering::AcqRel);
            self.mark.0.store(physical, Ordering::Release);
            if prev < candidate {
                return Timestamp::from_u64(candidate);
            }
        } else if mark - physical > self.jump_threshold_micros {
            self.note_backward_jump(mark, physical);
        }
        self.tick()
    }

    /// Issues the next logical tick: the state right after a strictly increasing change,
    /// hence unique and monotonic. `state` is already at or past the physical reading.
    #[inline]
    fn tick(&self) -> Timestamp {
        let prev = self.state.fetch_add(1, Ordering::AcqRel);
        if prev >= SATURATION_GUARD {
            return self.saturate();
        }
        Timestamp::from_u64(prev + 1)
    }

    /// [`now`](Self::now) with this clock's node id, for a total order across nodes.
    pub fn now_unique(&self) -> UniqueTimestamp {
        UniqueTimestamp {
            timestamp: self.now(),
            node: self.node,
        }
    }

    /// Merges a timestamp received from another node.
    ///
    /// Afterwards every [`now`](Self::now) is greater than `remote`. This does not itself
    /// issue a timestamp (CockroachDB's semantics); use [`update_and_now`](Self::update_and_now)
    /// for the receive event of the HLC paper.
    ///
    /// # Errors
    ///
    /// [`ClockOffsetExceeded`] when `remote` is more than the max offset ahead of this
    /// node's physical clock. The clock is left untouched.
    pub fn update(&self, remote: Timestamp) -> Result<(), ClockOffsetExceeded> {
        // Nothing to learn from a timestamp we are already past: no clock read needed.
        if remote.as_u64() <= self.state.load(Ordering::Acquire) {
            return Ok(());
        }
        let physical = self.clock_micros();
        // A remote at the very end of the range (2112) counts as too far ahead: merging it
        // would leave no room to tick.
        if remote.physical_micros() > physical.saturating_add(self.max_offset_micros)
            || remote.as_u64() >= SATURATION_GUARD
        {
            return Err(ClockOffsetExceeded {
                remote,
                physical: Timestamp::from_u64(physical << LOGICAL_BITS),
                max_offset: Duration::from_micros(self.max_offset_micros),
            });
        }
        self.state.fetch_max(remote.as_u64(), Ordering::AcqRel);
        Ok(())
    }

    /// Merges a received timestamp and issues the timestamp of the receive event, which is
    /// greater than both `remote` and everything this clock issued before (the HLC paper's
    /// receive rule).
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update); no timestamp is issued then.
    pub fn update_and_now(&self, remote: Timestamp) -> Result<Timestamp, ClockOffsetExceeded> {
        self.update(remote)?;
        Ok(self.now())
    }

    /// The last timestamp issued or learned, without issuing a new one.
    pub fn last(&self) -> Timestamp {
        Timestamp::from_u64(self.state.load(Ordering::Acquire))
    }

    /// How many times the physical clock was seen more than a tenth of the max offset below
    /// the highest reading since the last such step (each step is counted once).
    pub fn backward_jumps(&self) -> u64 {
        self.backward_jumps.load(Ordering::Relaxed)
    }

    /// The bound on how far ahead of physical time a remote timestamp may be.
    pub fn max_offset(&self) -> Duration {
        Duration::from_micros(self.max_offset_micros)
    }

    /// This clock's node id.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The wall clock this HLC reads.
    pub fn wall_clock(&self) -> &C {
        &self.clock
    }

    /// The wall clock in microseconds since the epoch.
    #[inline]
    fn clock_micros(&self) -> u64 {
        physical_micros_saturating(self.clock.since_epoch()).min(MAX_CLOCK_MICROS)
    }

    /// The physical clock read `physical`, more than the jump threshold below `mark`.
    #[cold]
    fn note_backward_jump(&self, mark: u64, physical: u64) {
        // Count each step once: whoever moves the mark down reports it. `state` stays
        // above the lowered mark, so the mark's promise still holds.
        if self
            .mark
            .0
            .compare_exchange(mark, physical, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.backward_jumps.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "steadfast_hlc",
            backwards_by = ?Duration::from_micros(mark - physical),
            "wall clock stepped backwards; HLC timestamps keep increasing on the logical counter"
        );
    }

    /// At the end of the range: pin the state at [`SATURATED`] so it never wraps. Timestamps
    /// stop being unique there (they stay non-decreasing).
    #[cold]
    fn saturate(&self) -> Timestamp {
        self.state.fetch_min(SATURATED, Ordering::AcqRel);
        Timestamp::from_u64(SATURATED)
    }
}

impl<C: fmt::Debug> fmt::Debug for Hlc<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hlc")
            .field(
                "last",
                &Timestamp::from_u64(self.state.load(Ordering::Relaxed)),
            )
            .field("node", &self.node)
            .field("max_offset", &Duration::from_micros(self.max_offset_micros))
            .field("clock", &self.clock)
            .finish()
    }
}

/// Builds an [`Hlc`]: `Hlc::builder().clock(c).max_offset(d).node_id(n).build()?`.
#[derive(Debug, Clone)]
pub struct HlcBuilder<C = SystemClock> {
    clock: C,
    max_offset: Duration,
    node: NodeId,
}

impl<C> HlcBuilder<C> {
    /// The wall clock to read (default: the system clock).
    pub fn clock<C2: WallClock>(self, clock: C2) -> HlcBuilder<C2> {
        HlcBuilder {
            clock,
            max_offset: self.max_offset,
            node: self.node,
        }
    }

    /// How far ahead of this node's physical clock a remote timestamp may be before
    /// [`Hlc::update`] refuses it. Default [`DEFAULT_MAX_OFFSET`] (500 ms); must be between
    /// one microsecond and [`MAX_MAX_OFFSET`] (one day). Set it to the worst clock skew your
    /// fleet can have (CockroachDB notes 250 to 500 ms on public clouds).
    pub fn max_offset(mut self, max_offset: Duration) -> Self {
        self.max_offset = max_offset;
        self
    }

    /// The node id paired with timestamps by [`Hlc::now_unique`] (default 0).
    pub fn node_id(mut self, node: NodeId) -> Self {
        self.node = node;
        self
    }
}

impl<C: WallClock> HlcBuilder<C> {
    /// Builds the clock.
    ///
    /// # Errors
    ///
    /// [`InvalidMaxOffset`] when the max offset is below one microsecond or above
    /// [`MAX_MAX_OFFSET`].
    pub fn build(self) -> Result<Hlc<C>, InvalidMaxOffset> {
        if self.max_offset < Duration::from_micros(1) || self.max_offset > MAX_MAX_OFFSET {
            return Err(InvalidMaxOffset {
                max_offset: self.max_offset,
            });
        }
        Ok(self.build_unchecked())
    }

    fn build_unchecked(self) -> Hlc<C> {
        let max_offset_micros = self.max_offset.as_micros() as u64;
        Hlc {
            state: AtomicU64::new(0),
            mark: CacheLine(AtomicU64::new(0)),
            backward_jumps: AtomicU64::new(0),
            clock: self.clock,
            max_offset_micros,
            jump_threshold_micros: max_offset_micros / 10,
            node: self.node,
        }
    }
}

/// A remote timestamp was further ahead of this node's physical clock than the max offset.
///
/// The remote node's clock is probably wrong (or ours is far behind). The timestamp was not
/// merged. An HTTP server should answer `400 Bad Request` if it rejects such a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockOffsetExceeded {
    remote: Timestamp,
    physical: Timestamp,
    max_offset: Duration,
}

impl ClockOffsetExceeded {
    /// The refused remote timestamp.
    pub fn remote(&self) -> Timestamp {
        self.remote
    }

    /// This node's physical time when it refused.
    pub fn physical(&self) -> Timestamp {
        self.physical
    }

    /// How far ahead the remote was.
    pub fn offset(&self) -> Duration {
        Duration::from_micros(
            self.remote
                .physical_micros()
                .saturating_sub(self.physical.physical_micros()),
        )
    }

    /// The bound it exceeded.
    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }
}

impl fmt::Display for ClockOffsetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "remote HLC timestamp {} is {:?} ahead of physical time {}, more than the max offset {:?}",
            self.remote,
            self.offset(),
            self.physical,
            self.max_offset
        )
    }
}

impl std::error::Error for ClockOffsetExceeded {}

/// The max offset given to [`HlcBuilder::max_offset`] is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMaxOffset {
    max_offset: Duration,
}

impl fmt::Display for InvalidMaxOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HLC max offset {:?} is out of range (1µs to {:?})",
            self.max_offset, MAX_MAX_OFFSET
        )
    }
}

impl std::error::Error for InvalidMaxOffset {}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;
    use steadfast_core::clock::ManualClock;

    fn at(secs: u64) -> ManualClock {
        ManualClock::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn now_follows_physical_time_and_ticks_within_a_microsecond() {
        let clock = at(1_000);
        let hlc = Hlc::with_clock(clock.clone());
        let a = hlc.now();
        let b = hlc.now();
        assert_eq!((a.physical_micros(), a.logical()), (1_000_000_000, 0));
        assert_eq!((b.physical_micros(), b.logical()), (1_000_000_000, 1));
        clock.advance(Duration::from_micros(3));
        let c = hlc.now();
        assert_eq!((c.physical_micros(), c.logical()), (1_000_000_003, 0));
    }

    #[test]
    fn backward_step_never_goes_backwards_and_is_counted() {
        let clock = at(1_000);
        let hlc = Hlc::with_clock(clock.clone());
        let before = hlc.now();
        clock.rewind(Duration::from_secs(5));
        let after = hlc.now();
        assert!(after > before);
        assert_eq!(after.physical_micros(), before.physical_micros());
        assert_eq!(hlc.backward_jumps(), 1);
        // Counted once per step, not once per read while behind.
        hlc.now();
        assert_eq!(hlc.backward_jumps(), 1);
        // A step below the threshold (max_offset / 10 = 50 ms) is not counted.
        clock.rewind(Duration::from_millis(10));
        hlc.now();
        assert_eq!(hlc.backward_jumps(), 1);
    }

    #[test]
    fn update_refuses_remote_too_far_ahead_and_leaves_the_clock_alone() {
        let clock = at(1_000);
        let hlc = Hlc::with_clock(clock.clone());
        let local = hlc.now();
        let far = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1_000_501));
        let err = hlc.update(far).expect_err("501 ms ahead");
        assert_eq!(err.offset(), Duration::from_millis(501));
        assert_eq!(err.remote(), far);
        assert_eq!(hlc.last(), local);

        let near = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1_000_500));
        hlc.update(near).expect("500 ms ahead is allowed");
        let next = hlc.now();
        assert!(next > near);
        assert_eq!(next.physical_micros(), near.physical_micros());
    }

    #[test]
    fn update_and_now_is_after_the_remote() {
        let hlc = Hlc::with_clock(at(1_000));
        let remote = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1_000_200));
        let received = hlc.update_and_now(remote).expect("within offset");
        assert!(received > remote);
        // A remote in the past changes nothing.
        let old = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_secs(1));
        assert!(hlc.update_and_now(old).expect("past is fine") > received);
    }

    #[test]
    fn ticks_saturate_at_the_end_of_time_instead_of_wrapping() {
        // A wall clock far past 2112 reads as the last usable microsecond.
        let clock = ManualClock::from_epoch(Duration::from_secs(u64::MAX / 1_000_000));
        let hlc = Hlc::with_clock(clock);
        let mut last = hlc.now();
        assert!(last.as_u64() < SATURATION_GUARD);
        hlc.state.store(SATURATION_GUARD - 2, Ordering::SeqCst);
        for _ in 0..10 {
            let next = hlc.now();
            assert!(next >= last, "{next:?} < {last:?}");
            last = next;
        }
        assert_eq!(last, Timestamp::from_u64(SATURATED));
        // Even a burst of ticks never wraps to a small value.
        hlc.state.store(u64::MAX - 5, Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(hlc.now(), Timestamp::from_u64(SATURATED));
        }
    }

    #[test]
    fn builder_validates_max_offset() {
        assert!(Hlc::builder().max_offset(Duration::ZERO).build().is_err());
        assert!(
            Hlc::builder()
                .max_offset(Duration::from_secs(86_401))
                .build()
                .is_err()
        );
        let hlc = Hlc::builder()
            .clock(at(5))
            .max_offset(Duration::from_millis(100))
            .node_id(NodeId(7))
            .build()
            .expect("valid");
        assert_eq!(hlc.max_offset(), Duration::from_millis(100));
        assert_eq!(hlc.now_unique().node, NodeId(7));
    }

    #[test]
    fn now_is_unique_across_threads() {
        let hlc = std::sync::Arc::new(Hlc::with_clock(at(1_000)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let hlc = hlc.clone();
                std::thread::spawn(move || {
                    let mut seen = Vec::with_capacity(10_000);
                    for _ in 0..10_000 {
                        seen.push(hlc.now());
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            let seen = handle.join().expect("thread");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "per-thread monotonic");
            all.extend(seen);
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "every timestamp unique");
    }
}
