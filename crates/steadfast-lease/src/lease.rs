//! The values a [`LeaseStore`](crate::LeaseStore) hands out: [`FencingToken`], [`Lease`],
//! [`LeaseTerms`] and [`LeaseHolder`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A fencing token: a number the store increases every time the lease of a name changes
/// holder (Kleppmann, "How to do distributed locking"; Chubby's lock generation number).
///
/// Pass it with every write to the protected resource, and have the resource refuse a
/// token lower than one it has already accepted ([`FenceGate`](crate::FenceGate)). A lease
/// alone cannot give mutual exclusion: a holder can pause (GC, `SIGSTOP`, a VM migration, a
/// delayed packet) past its expiry and write afterwards; the token is what lets the
/// resource tell that write from the new holder's.
///
/// Tokens are per lease name, start at 1 and never go back, not even after a release.
///
/// ```
/// use steadfast_lease::FencingToken;
///
/// let older = FencingToken::new(33);
/// let newer = FencingToken::new(34);
/// assert!(older < newer);
/// assert_eq!(newer.get(), 34);
/// assert_eq!(newer.to_string(), "34");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FencingToken(u64);

impl FencingToken {
    /// The token with value `value`.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The token's value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for FencingToken {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl From<FencingToken> for u64 {
    fn from(token: FencingToken) -> Self {
        token.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What a contender asks for when it acquires a lease: how long the lease lasts without a
/// renewal, and an optional takeover delay.
///
/// The **takeover delay** is Chubby's *lock-delay*: if the lease *expires* (its holder
/// failed or became unreachable, as opposed to releasing it), the store lets nobody take it
/// for this long after the expiry, so that requests the failed holder already sent can
/// drain from the network before a new holder starts. A released lease is free at once.
/// Chubby's default is one minute, for servers that cannot check fencing tokens; with a
/// [`FenceGate`](crate::FenceGate) at the resource it is not needed, so the default here is
/// zero.
///
/// ```
/// use std::time::Duration;
/// use steadfast_lease::LeaseTerms;
///
/// let terms = LeaseTerms::new(Duration::from_secs(15)).with_takeover_delay(Duration::from_secs(5));
/// assert_eq!(terms.ttl(), Duration::from_secs(15));
/// assert_eq!(terms.takeover_delay(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseTerms {
    ttl: Duration,
    takeover_delay: Duration,
}

impl LeaseTerms {
    /// Terms for a lease of `ttl`, with no takeover delay.
    pub const fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            takeover_delay: Duration::ZERO,
        }
    }

    /// Sets the takeover delay after an expiry (default zero).
    #[must_use]
    pub const fn with_takeover_delay(mut self, delay: Duration) -> Self {
        self.takeover_delay = delay;
        self
    }

    /// How long the lease lasts after an acquisition or renewal reaches the store.
    pub const fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long nobody may take the lease after it expires.
    pub const fn takeover_delay(&self) -> Duration {
        self.takeover_delay
    }
}

/// A lease held by one holder: its name, the holder, the fencing token and the terms.
///
/// A `Lease` is a *claim*, not proof of ownership: the store may have expired it since it
/// was returned. Renew it with [`LeaseStore::renew`](crate::LeaseStore::renew), pass its
/// [`token`](Self::token) to the resource, and stop using it by the deadline you compute
/// from the moment the acquisition or the last successful renewal was *sent* (the
/// [`Singleton`](crate::Singleton) does all this).
///
/// Cloning is cheap: the strings are shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    name: Arc<str>,
    holder: Arc<str>,
    token: FencingToken,
    terms: LeaseTerms,
    handle: Option<u64>,
}

impl Lease {
    /// A lease as a store returns it. For [`LeaseStore`](crate::LeaseStore) implementations.
    ///
    /// `terms.ttl()` must be the duration *the store* will honour from the moment it
    /// handled the request, never more: a holder computes its deadline from it. A store
    /// that rounds the requested ttl up (etcd grants whole seconds) may report the
    /// requested one; a store that grants less must report what it granted.
    pub fn new(
        name: impl Into<Arc<str>>,
        holder: impl Into<Arc<str>>,
        token: FencingToken,
        terms: LeaseTerms,
    ) -> Self {
        Self {
            name: name.into(),
            holder: holder.into(),
            token,
            terms,
            handle: None,
        }
    }

    /// Attaches an opaque number the store needs to renew or release the lease later, such
    /// as etcd's lease id. For [`LeaseStore`](crate::LeaseStore) implementations.
    #[must_use]
    pub fn with_handle(mut self, handle: u64) -> Self {
        self.handle = Some(handle);
        self
    }

    /// The lease's name: what it protects (one job, one resource, one shard).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who holds it.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token of this holder's term.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// How long the lease lasts after an acquisition or renewal reaches the store.
    pub fn ttl(&self) -> Duration {
        self.terms.ttl
    }

    /// The terms it was acquired with.
    pub fn terms(&self) -> LeaseTerms {
        self.terms
    }

    /// The opaque number a store attached with [`with_handle`](Self::with_handle), if any.
    pub fn handle(&self) -> Option<u64> {
        self.handle
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }
}

/// Who holds a lease right now, as the store sees it: the answer of
/// [`LeaseStore::current`](crate::LeaseStore::current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    id: Arc<str>,
    token: FencingToken,
    acquired_at: Option<SystemTime>,
}

impl LeaseHolder {
    /// A holder as a store reports it. For [`LeaseStore`](crate::LeaseStore)
    /// implementations.
    pub fn new(id: impl Into<Arc<str>>, token: FencingToken) -> Self {
        Self {
            id: id.into(),
            token,
            acquired_at: None,
        }
    }

    /// Adds the wall time at which this holder acquired the lease, for display.
    #[must_use]
    pub fn with_acquired_at(mut self, at: SystemTime) -> Self {
        self.acquired_at = Some(at);
        self
    }

    /// The holder's identity.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fencing token of its term.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// When it acquired the lease, by the store's wall clock, if the store says.
    ///
    /// For people reading logs and dashboards only: no expiry decision ever uses it.
    pub fn acquired_at(&self) -> Option<SystemTime> {
        self.acquired_at
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (token {})", self.id, self.token)
    }
}
