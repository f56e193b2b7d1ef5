//! [`MemoryStore`]: idempotency records in this process.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use steadfast_core::error::BoxError;
use tokio::time::Instant;

use crate::error::{CapacityExceeded, InvalidIdempotencyConfig};
use crate::store::{
    Claim, FencingToken, Fingerprint, IdempotencyStore, Record, StoreKey, StoredResponse,
    WriteOutcome,
};

/// The default bound on records: 100 000. With the default 24 h ttl that is a little over
/// one idempotent request per second kept for a day, or a burst of 100 000 distinct keys.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// The default bound on the memory records take, estimated: 128 MiB (100 000 records of
/// about 1.3 KiB each).
pub const DEFAULT_MAX_BYTES: usize = 128 * 1024 * 1024;

/// The default number of shards: 16, enough that requests on a few cores rarely wait for
/// each other's lock.
pub const DEFAULT_SHARDS: usize = 16;

/// What every record costs besides its response: the map entry, the expiry-queue entries,
/// the key and fingerprint.
const ENTRY_OVERHEAD: usize = 192;

/// Idempotency records in memory: a sharded map with lease and ttl expiry on the tokio
/// clock (pausable in tests), and bounds on records and bytes.
///
/// # Bounds
///
/// A new record, or a completion that makes a record larger, first takes room from the
/// store-wide record and byte budgets. When there is none, expired records are evicted
/// (cheaply: each shard keeps its records in expiry order) and, if the store is still full
/// of live records, the operation fails with [`CapacityExceeded`]; the layer then answers
/// `503` (failing closed) rather than forgetting a live record, which could run a request
/// twice. A flood of distinct keys therefore fills the store and is refused, it never
/// grows it.
///
/// Expired records are otherwise removed when their key is used again or when room is
/// needed; [`purge_expired`](Self::purge_expired) removes them all, for a periodic task.
///
/// # Clone
///
/// Clones share the records: give one store to several layers (or servers) to share keys.
///
/// # Example
///
/// ```
/// use steadfast_idempotency::MemoryStore;
///
/// let store = MemoryStore::builder().max_records(10_000).build()?;
/// let shared = store.clone();
/// assert_eq!(shared.len(), store.len());
/// # Ok::<(), steadfast_idempotency::InvalidIdempotencyConfig>(())
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    records: AtomicUsize,
    bytes: AtomicUsize,
    max_records: usize,
    max_bytes: usize,
    next_token: AtomicU64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<StoreKey, Entry>,
    /// Every entry's expiry, earliest first. Entries whose expiry changed leave stale items
    /// behind, skipped when popped; the heap is rebuilt when they outnumber live ones.
    expiries: BinaryHeap<Reverse<(Instant, StoreKey)>>,
}

struct Entry {
    record: Record,
    expires_at: Instant,
    size: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with the default bounds ([`DEFAULT_MAX_RECORDS`], [`DEFAULT_MAX_BYTES`]).
    pub fn new() -> Self {
        Self::from_builder(MemoryStoreBuilder::new())
    }

    /// A builder to set the bounds.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::new()
    }

    fn from_builder(builder: MemoryStoreBuilder) -> Self {
        let shards = (0..builder.shards)
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                records: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                max_records: builder.max_records,
                max_bytes: builder.max_bytes,
                next_token: AtomicU64::new(1),
            }),
        }
    }

    /// Records held, expired ones not yet evicted included.
    pub fn len(&self) -> usize {
        self.inner.records.load(Ordering::Relaxed)
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The estimated bytes the records take.
    pub fn bytes(&self) -> usize {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Removes every expired record; returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = Instant::now();
        self.inner
            .shards
            .iter()
            .map(|shard| self.inner.evict_expired(&mut lock(shard), now))
            .sum()
    }

    /// Claims `key` (see [`IdempotencyStore::claim`]), synchronously.
    ///
    /// # Errors
    ///
    /// [`CapacityExceeded`] when the store is full of live records.
    pub fn try_claim(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claim, CapacityExceeded> {
        let inner = &*self.inner;
        for attempt in 0..2 {
            let now = Instant::now();
            let mut shard = inner.shard(key);
            let replaced_size = match shard.map.get(key) {
                Some(entry) if entry.expires_at > now => {
                    return Ok(Claim::Existing(entry.record.clone()));
                }
                Some(entry) => Some(entry.size),
                None => None,
            };
            let size = ENTRY_OVERHEAD;
            match replaced_size {
                // An expired record is replaced in place; it is never smaller than a claim.
                Some(old) => {
                    inner.bytes.fetch_sub(old - size, Ordering::Relaxed);
                }
                None => {
                    if !inner.reserve(1, size) {
                        inner.evict_expired(&mut shard, now);
                        if !inner.reserve(1, size) {
                            if attempt == 0 {
                                drop(shard);
                                self.purge_expired();
                                continue;
                            }
                            return Err(CapacityExceeded::new());
                        }
                    }
                }
            }
            let token = FencingToken::new(inner.next_token.fetch_add(1, Ordering::Relaxed));
            let expires_at = now + lease;
            shard.map.insert(
                *key,
                Entry {
                    record: Record::InFlight {
                        fingerprint: *fingerprint,
                        token,
                    },
                    expires_at,
                    size,
                },
            );
            shard.push_expiry(expires_at, *key);
            return Ok(Claim::Acquired(token));
        }
        Err(CapacityExceeded::new())
    }

    /// Completes the claim held with `token` (see [`IdempotencyStore::complete`]),
    /// synchronously.
    ///
    /// # Errors
    ///
    /// [`CapacityExceeded`] when the response does not fit; the claim is left in flight.
    pub fn try_complete(
        &self,
        key: &StoreKey,
        token: FencingToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<WriteOutcome, CapacityExceeded> {
        let inner = &*self.inner;
        let new_size = ENTRY_OVERHEAD + response.approximate_size();
        for attempt in 0..2 {
            let now = Instant::now();
            let mut shard = inner.shard(key);
            let Some(old_size) = shard.owned_by(key, token).map(|entry| entry.size) else {
                return Ok(WriteOutcome::Superseded);
            };
            let grow = new_size.saturating_sub(old_size);
            if !inner.reserve(0, grow) {
                inner.evict_expired(&mut shard, now);
                // Our own claim may have been evicted if its lease had passed.
                if shard.owned_by(key, token).is_none() {
                    return Ok(WriteOutcome::Superseded);
                }
                if !inner.reserve(0, grow) {
                    if attempt == 0 {
                        drop(shard);
                        self.purge_expired();
                        continue;
                    }
                    return Err(CapacityExceeded::new());
                }
            }
            let expires_at = now + ttl;
            let entry = shard.map.get_mut(key).expect("checked above");
            inner
                .bytes
                .fetch_sub(old_size.saturating_sub(new_size), Ordering::Relaxed);
            let fingerprint = *entry.record.fingerprint();
            entry.record = Record::Completed {
                fingerprint,
                response,
            };
            entry.expires_at = expires_at;
            entry.size = new_size;
            shard.push_expiry(expires_at, *key);
            return Ok(WriteOutcome::Applied);
        }
        Err(CapacityExceeded::new())
    }

    /// Releases the claim held with `token` (see [`IdempotencyStore::release`]),
    /// synchronously.
    pub fn release_now(&self, key: &StoreKey, token: FencingToken) -> WriteOutcome {
        let inner = &*self.inner;
        let mut shard = inner.shard(key);
        if shard.owned_by(key, token).is_none() {
            return WriteOutcome::Superseded;
        }
        let entry = shard.map.remove(key).expect("checked above");
        inner.forget(&entry);
        WriteOutcome::Applied
    }

    /// What `key` holds (see [`IdempotencyStore::get`]), synchronously.
    pub fn get_now(&self, key: &StoreKey) -> Option<Record> {
        let now = Instant::now();
        let shard = self.inner.shard(key);
        shard
            .map
            .get(key)
            .filter(|entry| entry.expires_at > now)
            .map(|entry| entry.record.clone())
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Every update under the lock is a few steps that cannot leave the map inconsistent
    // with the counters in a way that matters more than a lost record.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn shard(&self, key: &StoreKey) -> MutexGuard<'_, Shard> {
        // Keys are SHA-256 outputs: any byte is uniform. The map hashes the whole key.
        let index = usize::from(key.as_bytes()[31]) % self.shards.len();
        lock(&self.shards[index])
    }

    /// Takes `records` and `bytes` from the budgets, or nothing if either would overflow.
    fn reserve(&self, records: usize, bytes: usize) -> bool {
        if records > 0 {
            let before = self.records.fetch_add(records, Ordering::Relaxed);
            if before + records > self.max_records {
                self.records.fetch_sub(records, Ordering::Relaxed);
                return false;
            }
        }
        if bytes > 0 {
            let before = self.bytes.fetch_add(bytes, Ordering::Relaxed);
            if before + bytes > self.max_bytes {
                self.bytes.fetch_sub(bytes, Ordering::Relaxed);
                if records > 0 {
                    self.records.fetch_sub(records, Ordering::Relaxed);
                }
                return false;
            }
        }
        true
    }

    fn forget(&self, entry: &Entry) {
        self.records.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(entry.size, Ordering::Relaxed);
    }

    /// Removes the shard's expired records, earliest first; returns how many.
    fn evict_expired(&self, shard: &mut Shard, now: Instant) -> usize {
        let mut evicted = 0;
        while let Some(&Reverse((at, key))) = shard.expiries.peek() {
            if at > now {
                break;
            }
            shard.expiries.pop();
            // A stale item: the record was removed, or its expiry moved later.
            let expired = shard.map.get(&key).is_some_and(|e| e.expires_at <= now);
            if expired && let Some(entry) = shard.map.remove(&key) {
                self.forget(&entry);
                evicted += 1;
            }
        }
        evicted
    }
}

impl Shard {
    /// The entry of `key` if it is in flight with `token`.
    fn owned_by(&self, key: &StoreKey, token: FencingToken) -> Option<&Entry> {
        self.map
            .get(key)
            .filter(|entry| matches!(entry.record, Record::InFlight { token: t, .. } if t == token))
    }

    fn push_expiry(&mut self, at: Instant, key: StoreKey) {
        self.expiries.push(Reverse((at, key)));
        // Keep stale items from outgrowing the live ones (a flood of claims released after
        // a 5xx leaves one each); rebuilding is linear, so amortised constant.
        if self.expiries.len() > 2 * self.map.len() + 32 {
            self.expiries = self
                .map
                .iter()
                .map(|(key, entry)| Reverse((entry.expires_at, *key)))
                .collect();
        }
    }
}

impl IdempotencyStore for MemoryStore {
    type Future<T: Send + 'static> = Ready<Result<T, BoxError>>;

    fn claim(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Self::Future<Claim> {
        ready(self.try_claim(key, fingerprint, lease).map_err(Into::into))
    }

    fn complete(
        &self,
        key: &StoreKey,
        token: FencingToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Self::Future<WriteOutcome> {
        ready(
            self.try_complete(key, token, response, ttl)
                .map_err(Into::into),
        )
    }

    fn release(&self, key: &StoreKey, token: FencingToken) -> Self::Future<WriteOutcome> {
        ready(Ok(self.release_now(key, token)))
    }

    fn get(&self, key: &StoreKey) -> Self::Future<Option<Record>> {
        ready(Ok(self.get_now(key)))
    }

    fn abandon(&self, key: &StoreKey, token: FencingToken) {
        self.release_now(key, token);
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.len())
            .field("bytes", &self.bytes())
            .field("max_records", &self.inner.max_records)
            .field("max_bytes", &self.inner.max_bytes)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

/// Configures a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    max_records: usize,
    max_bytes: usize,
    shards: usize,
}

impl MemoryStoreBuilder {
    fn new() -> Self {
        Self {
            max_records: DEFAULT_MAX_RECORDS,
            max_bytes: DEFAULT_MAX_BYTES,
            shards: DEFAULT_SHARDS,
        }
    }

    /// The most records held at once, live or expired (default [`DEFAULT_MAX_RECORDS`]).
    pub fn max_records(mut self, records: usize) -> Self {
        self.max_records = records;
        self
    }

    /// The most memory the records may take, estimated (default [`DEFAULT_MAX_BYTES`]).
    /// Each record counts its stored response plus about 200 bytes.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The number of independently locked shards (default [`DEFAULT_SHARDS`]), 1 to 1024.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Builds the store.
    ///
    /// # Errors
    ///
    /// [`InvalidIdempotencyConfig`] when a bound is zero or the shard count out of range.
    pub fn build(self) -> Result<MemoryStore, InvalidIdempotencyConfig> {
        let invalid = |reason| Err(InvalidIdempotencyConfig { reason });
        if self.max_records == 0 {
            return invalid("max_records must be at least 1");
        }
        if self.max_bytes < ENTRY_OVERHEAD {
            return invalid("max_bytes must hold at least one record (192 bytes)");
        }
        if !(1..=1024).contains(&self.shards) {
            return invalid("shards must be between 1 and 1024");
        }
        Ok(MemoryStore::from_builder(self))
    }
}
