//! Effectively-once processing of at-least-once messages: [`Consumer::process_once`].
//!
//! Queues and streams (SQS, RabbitMQ, Kafka, NATS, a Postgres outbox) deliver each message
//! *at least* once: a consumer that crashes, times out or loses its connection before it
//! acknowledges gets the message redelivered, sometimes to another replica while the first
//! is still working on it. [`Consumer::process_once`] runs a message's work under the same
//! claim a keyed HTTP request gets from [`IdempotencyLayer`](crate::IdempotencyLayer), in
//! the same [`IdempotencyStore`]:
//!
//! 1. The message key (its id, or a business key such as an order number) is hashed with
//!    the consumer's **name** into a [`StoreKey`], so two consumers (two queues, two
//!    handlers of one topic) never share a record even in one store. The payload's SHA-256
//!    is its [`Fingerprint`].
//! 2. The key is **claimed** (one atomic store operation, with a lease and a fencing
//!    token). If it is taken:
//!    - completed with the same payload: the work does not run, and the stored result is
//!      returned as [`Processed::Duplicate`];
//!    - with another payload: [`ProcessError::Mismatch`] (a producer reused an id);
//!    - in flight with the same payload: [`ProcessError::InFlight`] with a retry hint
//!      (another replica is working on it; redeliver later).
//! 3. The work runs. On `Ok`, its result is encoded with [`Codec`] and **stored**
//!    ([`Processed::Ran`]). On `Err`, the claim is **released**, so a redelivery runs the
//!    work again ([`ProcessError::Failed`]), or, with
//!    [`store_failures`](ConsumerBuilder::store_failures), the failure is stored and
//!    redeliveries get [`ProcessError::FailedBefore`].
//! 4. Dropping the future before it finished (a shutdown, a timeout around it) releases the
//!    claim through [`IdempotencyStore::abandon`]. A worker that dies or hangs keeps its
//!    claim until the lease expires, and then a redelivery runs the work; a hung worker
//!    that finishes after that has its result refused by the fencing token
//!    ([`Processed::Unrecorded`] with [`NotRecorded::Superseded`]), and the newer result
//!    stays.
//!
//! "Effectively once" holds while the work finishes within its lease: set the
//! [`lease`](ConsumerBuilder::lease) above the slowest run. The work's own side effects
//! and the stored result are not one transaction: a crash after the work but before the
//! result is stored leaves the key claimed until the lease expires and then runs the work
//! again. Work whose effects must never repeat should write them and the result in one
//! transaction of its own (Brandur's atomic phases).
//!
//! # Results
//!
//! The store keeps a [`StoredResponse`], so a result is kept as bytes: the work's `Ok`
//! type implements [`Codec`] (done for [`Bytes`], `Vec<u8>`, `String`, `()`, `u64` and
//! `i64`; implement it for your own types with any serializer). A stored failure keeps the
//! error's `Display` text.
//!
//! # Defaults
//!
//! | setting | default | source and reason |
//! |---|---|---|
//! | name | required | scopes keys per consumer (the draft's composite keys, §5; Powertools scopes by function name) |
//! | lease | 60 s ([`DEFAULT_LEASE`]) | as the layer; above the slowest run, like a queue's visibility timeout |
//! | ttl | 24 h ([`DEFAULT_TTL`]) | Stripe; set it above the broker's redelivery horizon (SQS keeps messages 4 days by default) |
//! | failures | released, not stored | AWS Powertools deletes the record when the handler raises, so a redelivery retries |
//! | in-flight retry hint | 1 s ([`DEFAULT_CONFLICT_RETRY_AFTER`]) | as the layer's `409` |
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use steadfast_idempotency::consumer::{Consumer, ProcessError, Processed};
//! use steadfast_idempotency::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let consumer = Consumer::builder(MemoryStore::new(), "payments-queue").build()?;
//! let charges = Arc::new(AtomicUsize::new(0));
//!
//! // What the consumer does with one message: charge once, return a receipt.
//! let handle = |id: &'static str, body: &'static str| {
//!     let charges = charges.clone();
//!     consumer.process_once(id, body, move || async move {
//!         let n = charges.fetch_add(1, Ordering::SeqCst) + 1;
//!         Ok::<_, std::io::Error>(format!("receipt {n} for {body}"))
//!     })
//! };
//!
//! // The first delivery runs the work; its result is stored.
//! let first = handle("msg-1", "charge 10 EUR").await?;
//! assert_eq!(first, Processed::Ran("receipt 1 for charge 10 EUR".to_owned()));
//!
//! // The broker redelivers (the ack was lost): the work does not run again.
//! let again = handle("msg-1", "charge 10 EUR").await?;
//! assert_eq!(again, Processed::Duplicate("receipt 1 for charge 10 EUR".to_owned()));
//!
//! // The same id with another payload is a producer bug.
//! let reused = handle("msg-1", "charge 99 EUR").await;
//! assert!(matches!(reused, Err(ProcessError::Mismatch)));
//!
//! assert_eq!(charges.load(Ordering::SeqCst), 1);
//! assert_eq!(consumer.stats().replays(), 1);
//! # Ok(())
//! # }
//! ```

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use steadfast_core::error::BoxError;

use crate::error::InvalidIdempotencyConfig;
use crate::layer::{DEFAULT_CONFLICT_RETRY_AFTER, DEFAULT_LEASE, DEFAULT_TTL};
use crate::scope::FieldHasher;
use crate::stats::{Event, IdempotencyStats};
use crate::store::{
    Claim, FencingToken, Fingerprint, IdempotencyStore, Record, StoreKey, StoredResponse,
    WriteOutcome,
};

/// The status a stored successful result is kept under.
const SUCCESS: StatusCode = StatusCode::OK;
/// The status a stored failure is kept under (with [`ConsumerBuilder::store_failures`]).
const FAILURE: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;

/// How a work's result is kept in the store: as bytes.
///
/// Implemented for [`Bytes`], `Vec<u8>`, `String`, `()`, and `u64` and `i64` (8 bytes,
/// big-endian). For your own types, encode with any serializer; decoding reads what an
/// earlier delivery (perhaps an older version of your program) stored, so it can fail.
///
/// ```
/// use bytes::Bytes;
/// use steadfast_core::error::BoxError;
/// use steadfast_idempotency::consumer::Codec;
///
/// /// A shipment created for an order message.
/// #[derive(Debug, PartialEq)]
/// struct Shipment {
///     id: u32,
/// }
///
/// impl Codec for Shipment {
///     fn encode(&self) -> Bytes {
///         Bytes::copy_from_slice(&self.id.to_be_bytes())
///     }
///
///     fn decode(bytes: Bytes) -> Result<Self, BoxError> {
///         let id = <[u8; 4]>::try_from(&bytes[..]).map_err(|_| "a shipment is 4 bytes")?;
///         Ok(Shipment { id: u32::from_be_bytes(id) })
///     }
/// }
///
/// let shipment = Shipment { id: 7 };
/// assert_eq!(Shipment::decode(shipment.encode()).unwrap(), shipment);
/// assert!(Shipment::decode(Bytes::from_static(b"?")).is_err());
/// ```
pub trait Codec: Sized {
    /// The bytes to store. Encoding cannot fail: a serializer that can should run inside
    /// the work, which then returns the bytes (or fails, releasing the claim).
    fn encode(&self) -> Bytes;

    /// The value back from stored bytes.
    ///
    /// # Errors
    ///
    /// Any error when the bytes are not a valid encoding; the delivery then fails with
    /// [`ProcessError::Decode`].
    fn decode(bytes: Bytes) -> Result<Self, BoxError>;
}

impl Codec for Bytes {
    fn encode(&self) -> Bytes {
        self.clone()
    }

    fn decode(bytes: Bytes) -> Result<Self, BoxError> {
        Ok(bytes)
    }
}

impl Codec for Vec<u8> {
    fn encode(&self) -> Bytes {
        Bytes::copy_from_slice(self)
    }

    fn decode(bytes: Bytes) -> Result<Self, BoxError> {
        Ok(bytes.into())
    }
}

impl Codec for String {
    fn encode(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }

    fn decode(bytes: Bytes) -> Result<Self, BoxError> {
        Ok(String::from_utf8(bytes.into())?)
    }
}

impl Codec for () {
    fn encode(&self) -> Bytes {
        Bytes::new()
    }

    fn decode(bytes: Bytes) -> Result<Self, BoxError> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err("a stored `()` has no bytes".into())
        }
    }
}

macro_rules! int_codec {
    ($($ty:ty),*) => {$(
        impl Codec for $ty {
            fn encode(&self) -> Bytes {
                Bytes::copy_from_slice(&self.to_be_bytes())
            }

            fn decode(bytes: Bytes) -> Result<Self, BoxError> {
                let array = <[u8; 8]>::try_from(&bytes[..])
                    .map_err(|_| concat!("a stored `", stringify!($ty), "` is 8 bytes"))?;
                Ok(<$ty>::from_be_bytes(array))
            }
        }
    )*};
}

int_codec!(u64, i64);

/// What [`Consumer::process_once`] did with a delivery whose work ran or had run.
#[derive(Debug)]
#[must_use]
pub enum Processed<T> {
    /// This delivery ran the work and its result is stored: later deliveries of the
    /// message get it as [`Duplicate`](Self::Duplicate). Acknowledge the message.
    Ran(T),
    /// An earlier delivery ran the work; this is its stored result, and the work did not
    /// run now. Acknowledge the message.
    Duplicate(T),
    /// This delivery ran the work and it succeeded, but its result is not stored, so a
    /// later delivery may run the work again (see [`NotRecorded`]). Acknowledge the
    /// message; the work's own effects happened.
    Unrecorded {
        /// The work's result.
        value: T,
        /// Why it was not stored.
        reason: NotRecorded,
    },
}

impl<T> Processed<T> {
    /// The result, whichever delivery produced it.
    pub fn value(&self) -> &T {
        match self {
            Processed::Ran(value)
            | Processed::Duplicate(value)
            | Processed::Unrecorded { value, .. } => value,
        }
    }

    /// The result, whichever delivery produced it.
    pub fn into_value(self) -> T {
        match self {
            Processed::Ran(value)
            | Processed::Duplicate(value)
            | Processed::Unrecorded { value, .. } => value,
        }
    }

    /// Whether this delivery ran the work ([`Ran`](Self::Ran) or
    /// [`Unrecorded`](Self::Unrecorded)).
    pub fn ran(&self) -> bool {
        !self.is_duplicate()
    }

    /// Whether the result is an earlier delivery's ([`Duplicate`](Self::Duplicate)).
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Processed::Duplicate(_))
    }
}

impl<T: PartialEq> PartialEq for Processed<T> {
    /// Equal when the variants and values are; an [`Unrecorded`](Self::Unrecorded) never
    /// equals anything, its [`NotRecorded::Store`] error not being comparable.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Processed::Ran(a), Processed::Ran(b))
            | (Processed::Duplicate(a), Processed::Duplicate(b)) => a == b,
            _ => false,
        }
    }
}

/// Why a successful run's result was not stored.
#[derive(Debug)]
#[non_exhaustive]
pub enum NotRecorded {
    /// The claim's lease expired while the work ran and another delivery claimed the
    /// message: the fencing token refused this (stale) result, and the other delivery's
    /// result is the one kept. The work ran twice; set the lease above the slowest run.
    Superseded,
    /// The store failed while storing the result (it may or may not have been stored). The
    /// claim was released, so a redelivery may run the work again.
    Store(BoxError),
}

/// A failure of an earlier delivery, stored with
/// [`store_failures`](ConsumerBuilder::store_failures): the error's `Display` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFailure {
    message: String,
}

impl StoredFailure {
    /// The error's `Display` text, as the failed delivery stored it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoredFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an earlier delivery failed: {}", self.message)
    }
}

impl Error for StoredFailure {}

/// Why [`Consumer::process_once`] has no result for a delivery.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError<E> {
    /// The message key is empty; nothing was claimed.
    InvalidKey,
    /// The work ran and failed. Its claim was released, so a redelivery runs it again
    /// (or, with [`store_failures`](ConsumerBuilder::store_failures), the failure was
    /// stored and redeliveries get [`FailedBefore`](Self::FailedBefore)).
    Failed(E),
    /// An earlier delivery's work failed and its failure was stored
    /// ([`store_failures`](ConsumerBuilder::store_failures)); the work did not run now.
    FailedBefore(StoredFailure),
    /// Another delivery of the message holds the claim (its work is running, or its worker
    /// died and the lease has not expired yet); the work did not run. Redeliver after
    /// `retry_after`: the message is then a duplicate, or runs if the other delivery
    /// failed.
    InFlight {
        /// When to try again ([`ConsumerBuilder::in_flight_retry_after`]).
        retry_after: Duration,
    },
    /// The key was used before with a different payload; the work did not run. A producer
    /// reused a message id: do not redeliver.
    Mismatch,
    /// The store failed before the work ran (the claim may or may not have been made; a
    /// claim that was lasts until its lease expires); the work did not run.
    Store(BoxError),
    /// The stored result could not be decoded by [`Codec::decode`]; the work did not run.
    Decode(BoxError),
}

impl<E> ProcessError<E> {
    /// The retry hint of [`InFlight`](Self::InFlight), `None` for the other errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProcessError::InFlight { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ProcessError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::InvalidKey => f.write_str("the message key is empty"),
            ProcessError::Failed(err) => write!(f, "processing the message failed: {err}"),
            ProcessError::FailedBefore(failure) => fmt::Display::fmt(failure, f),
            ProcessError::InFlight { retry_after } => write!(
                f,
                "another delivery of the message is being processed; retry after {retry_after:?}"
            ),
            ProcessError::Mismatch => {
                f.write_str("the message key was already used with a different payload")
            }
            ProcessError::Store(err) => write!(f, "idempotency store failed: {err}"),
            ProcessError::Decode(err) => write!(f, "the stored result is unreadable: {err}"),
        }
    }
}

impl<E: Error + 'static> Error for ProcessError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ProcessError::Failed(err) => Some(err),
            ProcessError::FailedBefore(failure) => Some(failure),
            ProcessError::Store(err) | ProcessError::Decode(err) => Some(&**err),
            _ => None,
        }
    }
}

struct Config<St> {
    store: St,
    name: Arc<str>,
    key_prefix: FieldHasher,
    lease: Duration,
    ttl: Duration,
    store_failures: bool,
    retry_after: Duration,
    stats: Arc<IdempotencyStats>,
}

impl<St> Config<St> {
    fn record(&self, event: Event) {
        self.stats.record(event, &self.name);
    }
}

/// Processes at-least-once messages effectively once, keeping its records in an
/// [`IdempotencyStore`]. Build one with [`Consumer::builder`]; see the
/// [module docs](self) for the flow and the defaults.
///
/// # Clone
///
/// Clones share the store, the configuration and the [`IdempotencyStats`]. Replicas in
/// other processes share records through a shared store and the same name.
pub struct Consumer<St> {
    config: Arc<Config<St>>,
}

impl<St> Clone for Consumer<St> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for Consumer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &*self.config;
        f.debug_struct("Consumer")
            .field("name", &config.name)
            .field("store", &config.store)
            .field("lease", &config.lease)
            .field("ttl", &config.ttl)
            .field("store_failures", &config.store_failures)
            .field("in_flight_retry_after", &config.retry_after)
            .finish()
    }
}

impl<St: IdempotencyStore> Consumer<St> {
    /// A builder with every default, keeping records in `store` under the consumer's
    /// `name` (a queue, a topic and consumer group, a handler): consumers with different
    /// names never share a record.
    pub fn builder(store: St, name: impl Into<Arc<str>>) -> ConsumerBuilder<St> {
        ConsumerBuilder {
            store,
            name: name.into(),
            lease: DEFAULT_LEASE,
            ttl: DEFAULT_TTL,
            store_failures: false,
            retry_after: DEFAULT_CONFLICT_RETRY_AFTER,
        }
    }
}

impl<St> Consumer<St> {
    /// The consumer's name: the scope of its keys, and its label in traces and metrics.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.config.store
    }

    /// The counters of what this consumer did: `executions` (runs of the work), `replays`
    /// (duplicates answered from the store, stored failures included), `conflicts`
    /// (deliveries refused as in flight), `mismatches`, `stored`, `released`,
    /// `abandoned` (futures dropped while holding a claim), `superseded` and
    /// `store_errors`. With the `metrics` feature they are also emitted, labelled with the
    /// consumer's name.
    pub fn stats(&self) -> Arc<IdempotencyStats> {
        self.config.stats.clone()
    }

    /// The storage key of the message `key` for this consumer: SHA-256 over a domain tag
    /// and the consumer's name (length-prefixed, zero-padded to a whole 64-byte block, so
    /// that this part is hashed once when the consumer is built), then the key,
    /// length-prefixed. Never equal to a key of the HTTP layer, so one store can serve
    /// both.
    pub fn store_key(&self, key: impl AsRef<[u8]>) -> StoreKey {
        let mut hasher = self.config.key_prefix.clone();
        hasher.field(key.as_ref());
        StoreKey::from_bytes(hasher.finish())
    }
}

/// The hasher state after a consumer's part of every storage key.
fn key_prefix(name: &str) -> FieldHasher {
    const DOMAIN: &[u8] = b"steadfast-idempotency/v1/message-key";
    let mut hasher = FieldHasher::new(DOMAIN);
    hasher.field(name.as_bytes());
    // Each field is its 8-byte length and its bytes.
    hasher.pad_block(8 + DOMAIN.len() + 8 + name.len());
    hasher
}

/// The fingerprint [`Consumer::process_once`] computes for a message's `payload`: the
/// payload's SHA-256, nothing else (a fingerprint is only ever compared with the one stored
/// under the same key, so it needs no domain tag), which any tool can reproduce.
pub fn message_fingerprint(payload: impl AsRef<[u8]>) -> Fingerprint {
    Fingerprint::from_bytes(Sha256::digest(payload.as_ref()).into())
}

impl<St: IdempotencyStore + 'static> Consumer<St> {
    /// Runs `work` for the message `key` unless a delivery of it already ran, and returns
    /// the result (this delivery's or the stored one). `payload` is the message body (or
    /// whatever identifies its content): a key seen before with another payload is a
    /// [`ProcessError::Mismatch`].
    ///
    /// `work` is called at most once, and only when this delivery holds the claim. The
    /// returned future owns what it needs (a clone of the consumer's shared state), and is
    /// `Send` when `work`, its future, `T` and `E` are, so it can be spawned; dropping it
    /// before it finishes releases a claim it holds.
    ///
    /// # Errors
    ///
    /// See [`ProcessError`]: an empty key, the work's failure (claim released), a stored
    /// failure, another delivery in flight, a payload mismatch, a store failure before the
    /// work ran, or a stored result [`Codec::decode`] refuses.
    pub fn process_once<T, E, F, Fut>(
        &self,
        key: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
        work: F,
    ) -> impl Future<Output = Result<Processed<T>, ProcessError<E>>> + 'static
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: Codec + 'static,
        E: fmt::Display + 'static,
    {
        self.process_fingerprinted(key, message_fingerprint(payload), work)
    }

    /// [`process_once`](Self::process_once) with a fingerprint of your own making, for
    /// payloads you do not hold in one piece (a checksum the broker computed, a hash of
    /// selected fields): build it with [`Fingerprint::from_bytes`], or from bytes with
    /// [`message_fingerprint`].
    ///
    /// # Errors
    ///
    /// As [`process_once`](Self::process_once).
    pub fn process_fingerprinted<T, E, F, Fut>(
        &self,
        key: impl AsRef<[u8]>,
        fingerprint: Fingerprint,
        work: F,
    ) -> impl Future<Output = Result<Processed<T>, ProcessError<E>>> + 'static
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: Codec + 'static,
        E: fmt::Display + 'static,
    {
        let key = key.as_ref();
        let store_key = (!key.is_empty()).then(|| self.store_key(key));
        let config = self.config.clone();
        async move {
            let Some(key) = store_key else {
                return Err(ProcessError::InvalidKey);
            };
            process(&config, key, fingerprint, work).await
        }
    }
}

/// Releases a claim when dropped while armed: the future was dropped mid-run, or the work
/// panicked.
struct ClaimGuard<'a, St: IdempotencyStore> {
    config: &'a Config<St>,
    key: StoreKey,
    token: FencingToken,
    armed: bool,
}

impl<St: IdempotencyStore> Drop for ClaimGuard<'_, St> {
    fn drop(&mut self) {
        if self.armed {
            let config = self.config;
            config.record(Event::Abandoned);
            tracing::debug!(
                target: "steadfast_idempotency",
                name = %config.name,
                token = self.token.get(),
                "message processing dropped; releasing its claim"
            );
            config.store.abandon(&self.key, self.token);
        }
    }
}

async fn process<St, T, E, F, Fut>(
    config: &Config<St>,
    key: StoreKey,
    fingerprint: Fingerprint,
    work: F,
) -> Result<Processed<T>, ProcessError<E>>
where
    St: IdempotencyStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    T: Codec,
    E: fmt::Display,
{
    let token = match config.store.claim(&key, &fingerprint, config.lease).await {
        Ok(Claim::Acquired(token)) => token,
        Ok(Claim::Existing(record)) => return on_existing(config, record, &fingerprint),
        Err(err) => {
            config.record(Event::StoreError);
            tracing::warn!(
                target: "steadfast_idempotency",
                name = %config.name,
                error = %err,
                "idempotency store failed before processing a message"
            );
            return Err(ProcessError::Store(err));
        }
    };
    config.record(Event::Execution);
    let mut guard = ClaimGuard {
        config,
        key,
        token,
        armed: true,
    };
    let result = work().await;
    let (stored, value) = match result {
        Ok(value) => (
            StoredResponse::new(SUCCESS, HeaderMap::new(), value.encode()),
            Ok(value),
        ),
        Err(error) if config.store_failures => (
            StoredResponse::new(FAILURE, HeaderMap::new(), Bytes::from(error.to_string())),
            Err(error),
        ),
        Err(error) => {
            release(config, &key, token).await;
            guard.armed = false;
            return Err(ProcessError::Failed(error));
        }
    };
    let outcome = config.store.complete(&key, token, stored, config.ttl).await;
    let not_recorded = match outcome {
        Ok(WriteOutcome::Applied) => {
            config.record(Event::Stored);
            None
        }
        Ok(WriteOutcome::Superseded) => {
            config.record(Event::Superseded);
            tracing::warn!(
                target: "steadfast_idempotency",
                name = %config.name,
                token = token.get(),
                "message result not stored: the claim's lease expired and another delivery claimed the message"
            );
            Some(NotRecorded::Superseded)
        }
        Err(err) => {
            config.record(Event::StoreError);
            tracing::warn!(
                target: "steadfast_idempotency",
                name = %config.name,
                error = %err,
                "idempotency store failed while storing a message result; releasing the claim"
            );
            // Not stored: release the claim rather than wedge the key until the lease ends.
            release(config, &key, token).await;
            Some(NotRecorded::Store(err))
        }
    };
    guard.armed = false;
    match (value, not_recorded) {
        (Ok(value), None) => Ok(Processed::Ran(value)),
        (Ok(value), Some(reason)) => Ok(Processed::Unrecorded { value, reason }),
        (Err(error), _) => Err(ProcessError::Failed(error)),
    }
}

/// Releases the claim after the work failed (or its result could not be stored).
async fn release<St: IdempotencyStore>(config: &Config<St>, key: &StoreKey, token: FencingToken) {
    config.record(Event::Released);
    if let Err(err) = config.store.release(key, token).await {
        config.record(Event::StoreError);
        tracing::warn!(
            target: "steadfast_idempotency",
            name = %config.name,
            error = %err,
            "idempotency store failed to release a message's claim; it lasts until its lease expires"
        );
    }
}

/// The key is taken: the stored result, a stored failure, a mismatch, or in flight.
fn on_existing<St, T: Codec, E>(
    config: &Config<St>,
    record: Record,
    fingerprint: &Fingerprint,
) -> Result<Processed<T>, ProcessError<E>> {
    if record.fingerprint() != fingerprint {
        config.record(Event::Mismatch);
        tracing::debug!(
            target: "steadfast_idempotency",
            name = %config.name,
            "message key reused with a different payload"
        );
        return Err(ProcessError::Mismatch);
    }
    match record {
        Record::InFlight { .. } => {
            config.record(Event::Conflict);
            tracing::debug!(
                target: "steadfast_idempotency",
                name = %config.name,
                "another delivery of the message is in flight"
            );
            Err(ProcessError::InFlight {
                retry_after: config.retry_after,
            })
        }
        Record::Completed { response, .. } => {
            config.record(Event::Replay);
            tracing::debug!(
                target: "steadfast_idempotency",
                name = %config.name,
                "message already processed; returning the stored result"
            );
            match response.status() {
                SUCCESS => T::decode(response.body().clone())
                    .map(Processed::Duplicate)
                    .map_err(ProcessError::Decode),
                FAILURE => Err(ProcessError::FailedBefore(StoredFailure {
                    message: String::from_utf8_lossy(response.body()).into_owned(),
                })),
                other => Err(ProcessError::Decode(
                    format!("a stored message result has status {other}, not 200 or 500").into(),
                )),
            }
        }
    }
}

/// Configures a [`Consumer`]; every setting has a documented default (see the
/// [module docs](self)).
pub struct ConsumerBuilder<St> {
    store: St,
    name: Arc<str>,
    lease: Duration,
    ttl: Duration,
    store_failures: bool,
    retry_after: Duration,
}

impl<St: fmt::Debug> fmt::Debug for ConsumerBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("lease", &self.lease)
            .field("ttl", &self.ttl)
            .field("store_failures", &self.store_failures)
            .field("in_flight_retry_after", &self.retry_after)
            .finish()
    }
}

impl<St: IdempotencyStore> ConsumerBuilder<St> {
    /// How long a claim lasts if its worker never finishes (default
    /// [`DEFAULT_LEASE`], 60 s). Set it above the slowest run of the
    /// work: a run still going when its lease expires can be repeated by a redelivery (and
    /// its own result is then refused, [`NotRecorded::Superseded`]). A shorter lease
    /// unwedges a message sooner after a crash.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a result is kept (default [`DEFAULT_TTL`], 24 h). A
    /// delivery after it runs the work again: set it above the longest time your broker
    /// can redeliver a message after its first delivery (its retention, or a consumer
    /// group's replay window).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Whether a failed run is stored, so that redeliveries get
    /// [`ProcessError::FailedBefore`] instead of running the work again (default `false`:
    /// the claim is released, as AWS Powertools does). For permanent failures only (a
    /// message that can never succeed); to store some failures and retry others, return
    /// the permanent ones as an `Ok` value instead.
    pub fn store_failures(mut self, store: bool) -> Self {
        self.store_failures = store;
        self
    }

    /// The retry hint of [`ProcessError::InFlight`] (default
    /// [`DEFAULT_CONFLICT_RETRY_AFTER`], 1 s): how long
    /// to delay the message's redelivery (an SQS visibility change, a RabbitMQ delayed
    /// requeue).
    pub fn in_flight_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Builds the consumer.
    ///
    /// # Errors
    ///
    /// [`InvalidIdempotencyConfig`] when the name is empty or the lease or ttl is zero.
    pub fn build(self) -> Result<Consumer<St>, InvalidIdempotencyConfig> {
        let invalid = |reason| Err(InvalidIdempotencyConfig { reason });
        if self.name.is_empty() {
            return invalid("the consumer's name must not be empty");
        }
        if self.lease.is_zero() {
            return invalid("lease must be greater than zero");
        }
        if self.ttl.is_zero() {
            return invalid("ttl must be greater than zero");
        }
        Ok(Consumer {
            config: Arc::new(Config {
                store: self.store,
                key_prefix: key_prefix(&self.name),
                name: self.name,
                lease: self.lease,
                ttl: self.ttl,
                store_failures: self.store_failures,
                retry_after: self.retry_after,
                stats: Arc::default(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_separate_names_and_keys() {
        let consumer = |name: &str| {
            Consumer::builder(crate::MemoryStore::new(), name)
                .build()
                .unwrap()
        };
        let (ab, a) = (consumer("ab"), consumer("a"));
        assert_eq!(ab.store_key("c"), consumer("ab").store_key("c"));
        assert_ne!(ab.store_key("c"), a.store_key("bc"));
        assert_ne!(ab.store_key("c"), ab.store_key("d"));
        // A name that fills the first block exactly, and one past it.
        let long = "n".repeat(64 - 8 - 36 - 8);
        assert_ne!(
            consumer(&long).store_key("k"),
            consumer(&format!("{long}x")).store_key("k")
        );
        // The stored format, spelled out: the length-prefixed domain and name, zeros to the
        // end of the 64-byte block, then the length-prefixed key. Changing it moves every
        // record a consumer stored.
        for name in ["orders", long.as_str(), &format!("{long}x")] {
            let mut stream = Vec::new();
            for part in [
                &b"steadfast-idempotency/v1/message-key"[..],
                name.as_bytes(),
            ] {
                stream.extend_from_slice(&(part.len() as u64).to_be_bytes());
                stream.extend_from_slice(part);
            }
            stream.resize(stream.len().next_multiple_of(64), 0);
            stream.extend_from_slice(&3u64.to_be_bytes());
            stream.extend_from_slice(b"k-1");
            let expected: [u8; 32] = Sha256::digest(&stream).into();
            assert_eq!(
                consumer(name).store_key("k-1").as_bytes(),
                &expected,
                "{name}"
            );
        }
        assert_eq!(
            message_fingerprint(b"abc").as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf], // SHA-256("abc"), FIPS 180-2
        );
    }

    #[test]
    fn codecs_round_trip_and_refuse_bad_bytes() {
        assert_eq!(
            String::decode("héllo".to_owned().encode()).unwrap(),
            "héllo"
        );
        assert!(String::decode(Bytes::from_static(&[0xff])).is_err());
        assert_eq!(u64::decode(42u64.encode()).unwrap(), 42);
        assert_eq!(i64::decode((-7i64).encode()).unwrap(), -7);
        assert!(u64::decode(Bytes::from_static(b"1234567")).is_err());
        assert!(<()>::decode(().encode()).is_ok());
        assert!(<()>::decode(Bytes::from_static(b"x")).is_err());
        assert_eq!(Vec::<u8>::decode(vec![1, 2].encode()).unwrap(), [1, 2]);
    }
}
