//! The [`LeaseStore`] trait: what a lease backend must provide.

use std::future::Future;
use std::sync::Arc;

use crate::error::{LeaseError, StoreError};
use crate::lease::{Lease, LeaseHolder, LeaseTerms};

/// A place that keeps leases: memory ([`MemoryLeaseStore`](crate::MemoryLeaseStore)),
/// Redis, PostgreSQL or etcd (behind their features).
///
/// # Contract
///
/// Every implementation keeps these rules; the [`Singleton`](crate::Singleton) and the
/// [`FenceGate`](crate::FenceGate) rely on them.
///
/// 1. **Every transition is one compare-and-set** on the store's side: acquire only when
///    the name is free (never held, released, or expired and past its takeover delay) or
///    already held by the same holder; renew and release only when the holder *and* the
///    token still match and the lease has not expired. Any failed comparison means the
///    lease is lost ([`LeaseError::Lost`]), immediately, never "retry later".
/// 2. **Fencing tokens strictly increase per name** whenever the holder changes, including
///    across releases, expiries and restarts of the store: records are never deleted and
///    counters never reset. A holder that acquires again while it still holds the lease
///    keeps its token (the acquisition is idempotent), so holder ids must be unique per
///    process incarnation.
/// 3. **Expiry is decided by the store's own clock**, measured from when the store handled
///    the acquisition or renewal, never by comparing a wall time sent by a client with
///    another machine's clock. The memory store uses the monotonic tokio clock; the
///    database backends use the database server's clock.
/// 4. [`Lease::ttl`] never promises more than the store will honour.
/// 5. A [`StoreError`] means "unknown": the request may or may not have taken effect.
///
/// Callers, for their part, compute a local deadline from the moment they **sent** the
/// acquisition or the last successful renewal, plus the ttl, minus a safety margin, and
/// stop acting on the lease by then even if the store never answers.
///
/// # Why `impl Future` and no trait objects
///
/// The methods return `impl Future + Send` (return-position `impl Trait` in traits), so a
/// renewal costs no allocation and stores can borrow their arguments. The trait is
/// therefore not dyn-compatible; [`Singleton`](crate::Singleton) is generic over
/// `S: LeaseStore`. To choose a backend at run time, wrap the candidates in an enum that
/// implements `LeaseStore` by delegating. `Arc<S>` and `&S` implement the trait when `S`
/// does.
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
///
/// let lease = store.try_acquire("compaction", "replica-a", terms).await?.expect("free");
/// assert!(store.try_acquire("compaction", "replica-b", terms).await?.is_none());
///
/// tokio::time::sleep(Duration::from_secs(11)).await; // no renewal: it expires
/// assert!(store.renew(&lease).await.unwrap_err().is_lost());
///
/// let next = store.try_acquire("compaction", "replica-b", terms).await?.expect("expired");
/// assert!(next.token() > lease.token());
/// # Ok(())
/// # }
/// ```
pub trait LeaseStore: Send + Sync {
    /// Acquires the lease `name` for `holder`, if it is free or already `holder`'s.
    ///
    /// Returns `Ok(None)` when another holder has it (or it is within its takeover delay
    /// after an expiry). A new holder gets a token greater than every earlier token of the
    /// name; the same holder acquiring again while it holds the lease gets its lease back
    /// with the same token and a fresh ttl.
    fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Extends `lease` by its ttl, counted from when the store handles the request, if it
    /// is still held by the same holder with the same token and has not expired.
    ///
    /// Returns the lease as the store now grants it (same token; a store may report a
    /// different ttl). [`LeaseError::Lost`] when the comparison fails.
    fn renew(&self, lease: &Lease) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Gives `lease` up, so that another holder can acquire it at once (no takeover
    /// delay). The name's token counter is kept.
    ///
    /// [`LeaseError::Lost`] when the lease was no longer this holder's (expired or taken);
    /// nothing changes then.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Who holds `name` now, if anyone (an expired lease is held by nobody).
    fn current(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LeaseHolder>, StoreError>> + Send;
}

impl<S: LeaseStore> LeaseStore for Arc<S> {
    fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send {
        (**self).try_acquire(name, holder, terms)
    }

    fn renew(&self, lease: &Lease) -> impl Future<Output = Result<Lease, LeaseError>> + Send {
        (**self).renew(lease)
    }

    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).release(lease)
    }

    fn current(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LeaseHolder>, StoreError>> + Send {
        (**self).current(name)
    }
}

impl<S: LeaseStore> LeaseStore for &S {
    fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send {
        (**self).try_acquire(name, holder, terms)
    }

    fn renew(&self, lease: &Lease) -> impl Future<Output = Result<Lease, LeaseError>> + Send {
        (**self).renew(lease)
    }

    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).release(lease)
    }

    fn current(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LeaseHolder>, StoreError>> + Send {
        (**self).current(name)
    }
}
