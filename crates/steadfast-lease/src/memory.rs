//! [`MemoryLeaseStore`]: the embedded default backend.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use steadfast_core::clock::{SystemClock, WallClock};
use tokio::time::Instant;

use crate::error::{LeaseError, LeaseLost, StoreError};
use crate::lease::{FencingToken, Lease, LeaseHolder, LeaseTerms};
use crate::store::LeaseStore;
use crate::util::later;

/// A [`LeaseStore`] in this process's memory: for leader election among tasks of one
/// process, for tests, and as the reference the other backends are checked against.
///
/// - **Expiry** is decided by the store's own monotonic clock, [`tokio::time::Instant`],
///   read when the store handles each request (so `tokio::time::pause()` controls it in
///   tests). Wall-clock jumps change nothing.
/// - **Tokens** start at 1 per name and never reset: records are kept after a release or
///   an expiry, only their holder is cleared.
/// - Every transition happens under one mutex, so each is an atomic compare-and-set.
/// - The wall clock (default [`SystemClock`]) is read only to report
///   [`LeaseHolder::acquired_at`] for display.
///
/// # Clone
///
/// Clones share the same leases: hand one clone to each contender.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use steadfast_lease::{LeaseStore, LeaseTerms, MemoryLeaseStore};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = MemoryLeaseStore::new();
/// let terms = LeaseTerms::new(Duration::from_secs(10));
/// let a = store.try_acquire("job", "a", terms).await?.expect("free");
/// store.release(&a).await?;
/// let b = store.clone().try_acquire("job", "b", terms).await?.expect("released");
/// assert_eq!((a.token().get(), b.token().get()), (1, 2));
/// assert_eq!(store.current("job").await?.map(|h| h.token()), Some(b.token()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryLeaseStore {
    inner: Arc<Inner>,
}

struct Inner {
    records: Mutex<HashMap<Box<str>, Record>>,
    wall: Arc<dyn WallClock>,
}

/// One name's state. Kept forever so the token never resets.
#[derive(Debug)]
struct Record {
    /// The holder of the current or last term; `None` once released.
    holder: Option<Arc<str>>,
    /// The token of the current or last term; 0 before the first acquisition.
    token: u64,
    /// The lease is held while `now < expires_at`.
    expires_at: Instant,
    /// Nobody may take the lease before this (expiry plus the takeover delay).
    free_at: Instant,
    takeover_delay: std::time::Duration,
    acquired_at: SystemTime,
}

impl Record {
    fn held_by(&self, now: Instant) -> Option<&Arc<str>> {
        self.holder.as_ref().filter(|_| now < self.expires_at)
    }

    fn matches(&self, lease: &Lease, now: Instant) -> bool {
        self.token == lease.token().get()
            && self
                .held_by(now)
                .is_some_and(|holder| **holder == *lease.holder())
    }
}

impl MemoryLeaseStore {
    /// An empty store, reporting acquisition times from the system clock.
    pub fn new() -> Self {
        Self::with_wall_clock(SystemClock)
    }

    /// An empty store reporting acquisition times from `clock` (for tests that move the
    /// wall clock: expiry never reads it).
    pub fn with_wall_clock(clock: impl WallClock + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                records: Mutex::new(HashMap::new()),
                wall: Arc::new(clock),
            }),
        }
    }

    fn records(&self) -> MutexGuard<'_, HashMap<Box<str>, Record>> {
        // A panic while holding the lock cannot leave a record half-written: every
        // transition assigns whole fields after its checks.
        self.inner
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn acquire_now(&self, name: &str, holder: &str, terms: LeaseTerms) -> Option<Lease> {
        let now = Instant::now();
        let mut records = self.records();
        // Look up before inserting: the common case (the name exists) allocates nothing.
        if !records.contains_key(name) {
            let fresh = Record {
                holder: None,
                token: 0,
                expires_at: now,
                free_at: now,
                takeover_delay: terms.takeover_delay(),
                acquired_at: SystemTime::UNIX_EPOCH,
            };
            records.insert(Box::from(name), fresh);
        }
        let record = records.get_mut(name).expect("inserted above");
        let same_holder = match record.held_by(now) {
            Some(current) if **current == *holder => true,
            Some(_) => return None,
            None if now < record.free_at => return None,
            None => false,
        };
        let holder: Arc<str> = match (same_holder, &record.holder) {
            (true, Some(current)) => current.clone(),
            _ => Arc::from(holder),
        };
        if !same_holder {
            record.token += 1;
            record.holder = Some(holder.clone());
            record.acquired_at = self.inner.wall.now();
        }
        record.expires_at = later(now, terms.ttl());
        record.takeover_delay = terms.takeover_delay();
        record.free_at = later(record.expires_at, terms.takeover_delay());
        Some(Lease::new(
            name,
            holder,
            FencingToken::new(record.token),
            terms,
        ))
    }

    fn renew_now(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let now = Instant::now();
        let mut records = self.records();
        match records.get_mut(lease.name()) {
            Some(record) if record.matches(lease, now) => {
                record.expires_at = later(now, lease.ttl());
                record.free_at = later(record.expires_at, record.takeover_delay);
                Ok(lease.clone())
            }
            _ => Err(lost(lease)),
        }
    }

    fn release_now(&self, lease: &Lease) -> Result<(), LeaseError> {
        let now = Instant::now();
        let mut records = self.records();
        match records.get_mut(lease.name()) {
            Some(record) if record.matches(lease, now) => {
                record.holder = None;
                record.expires_at = now;
                record.free_at = now;
                Ok(())
            }
            _ => Err(lost(lease)),
        }
    }

    fn current_now(&self, name: &str) -> Option<LeaseHolder> {
        let now = Instant::now();
        let records = self.records();
        let record = records.get(name)?;
        record.held_by(now).map(|holder| {
            LeaseHolder::new(holder.clone(), FencingToken::new(record.token))
                .with_acquired_at(record.acquired_at)
        })
    }
}

fn lost(lease: &Lease) -> LeaseError {
    LeaseError::Lost(LeaseLost::new(lease.name_arc().clone(), lease.token()))
}

impl Default for MemoryLeaseStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLeaseStore")
            .field("names", &self.records().len())
            .field("wall_clock", &self.inner.wall)
            .finish()
    }
}

impl LeaseStore for MemoryLeaseStore {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        Ok(self.acquire_now(name, holder, terms))
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        self.renew_now(lease)
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.release_now(lease)
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        Ok(self.current_now(name))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn terms() -> LeaseTerms {
        LeaseTerms::new(TTL)
    }

    #[tokio::test(start_paused = true)]
    async fn same_holder_reacquires_with_the_same_token_and_a_fresh_ttl() {
        let store = MemoryLeaseStore::new();
        let first = store.try_acquire("n", "a", terms()).await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(8)).await;
        let again = store.try_acquire("n", "a", terms()).await.unwrap().unwrap();
        assert_eq!(again.token(), first.token());
        tokio::time::advance(Duration::from_secs(8)).await;
        // 16 s after the first acquisition, 8 s after the second: still held.
        assert_eq!(
            store.current("n").await.unwrap().map(|h| h.token()),
            Some(first.token())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_exactly_ttl_after_the_last_renewal() {
        let store = MemoryLeaseStore::new();
        let lease = store.try_acquire("n", "a", terms()).await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        store.renew(&lease).await.unwrap();
        tokio::time::advance(TTL - Duration::from_millis(1)).await;
        assert!(store.current("n").await.unwrap().is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(store.current("n").await.unwrap().is_none());
        assert!(store.renew(&lease).await.unwrap_err().is_lost());
        assert!(store.release(&lease).await.unwrap_err().is_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn renew_and_release_compare_holder_and_token() {
        let store = MemoryLeaseStore::new();
        let lease = store.try_acquire("n", "a", terms()).await.unwrap().unwrap();
        let forged_token = Lease::new("n", "a", FencingToken::new(7), terms());
        let forged_holder = Lease::new("n", "b", lease.token(), terms());
        let other_name = Lease::new("m", "a", lease.token(), terms());
        for forged in [&forged_token, &forged_holder, &other_name] {
            assert!(store.renew(forged).await.unwrap_err().is_lost());
            assert!(store.release(forged).await.unwrap_err().is_lost());
        }
        store.renew(&lease).await.unwrap();
        store.release(&lease).await.unwrap();
        assert!(store.release(&lease).await.unwrap_err().is_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_never_reset_across_releases_and_expiries() {
        let store = MemoryLeaseStore::new();
        let mut last = FencingToken::new(0);
        for round in 0..20u64 {
            let holder = format!("h{round}");
            let lease = store
                .try_acquire("n", &holder, terms())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(lease.token().get(), last.get() + 1);
            last = lease.token();
            if round % 2 == 0 {
                store.release(&lease).await.unwrap();
            } else {
                tokio::time::advance(TTL).await;
            }
        }
        // Another name has its own counter.
        let other = store.try_acquire("m", "x", terms()).await.unwrap().unwrap();
        assert_eq!(other.token().get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn takeover_delay_applies_after_expiry_but_not_after_release() {
        let store = MemoryLeaseStore::new();
        let delayed = terms().with_takeover_delay(Duration::from_secs(3));
        let a = store.try_acquire("n", "a", delayed).await.unwrap().unwrap();
        tokio::time::advance(TTL).await;
        // Expired: nobody holds it, but nobody may take it for 3 s.
        assert!(store.current("n").await.unwrap().is_none());
        assert!(
            store
                .try_acquire("n", "b", terms())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .try_acquire("n", "a", terms())
                .await
                .unwrap()
                .is_none()
        );
        tokio::time::advance(Duration::from_millis(2_999)).await;
        assert!(
            store
                .try_acquire("n", "b", terms())
                .await
                .unwrap()
                .is_none()
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let b = store.try_acquire("n", "b", delayed).await.unwrap().unwrap();
        assert!(b.token() > a.token());
        // A release frees it at once.
        store.release(&b).await.unwrap();
        let c = store.try_acquire("n", "c", terms()).await.unwrap().unwrap();
        assert!(c.token() > b.token());
    }

    #[tokio::test(start_paused = true)]
    async fn current_reports_the_wall_time_of_the_acquisition() {
        let clock = steadfast_core::clock::ManualClock::from_epoch(Duration::from_secs(1_000));
        let store = MemoryLeaseStore::with_wall_clock(clock.clone());
        store.try_acquire("n", "a", terms()).await.unwrap().unwrap();
        clock.advance(Duration::from_secs(5));
        store.try_acquire("n", "a", terms()).await.unwrap().unwrap();
        let holder = store.current("n").await.unwrap().unwrap();
        assert_eq!(holder.id(), "a");
        assert_eq!(
            holder.acquired_at(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000))
        );
        assert_eq!(holder.to_string(), "a (token 1)");
        assert!(format!("{store:?}").contains("names: 1"));
    }
}
