//! The [`IdempotencyStore`] trait and the records it keeps.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use steadfast_core::error::BoxError;

/// The storage key of one idempotent operation: SHA-256 over the scope (principal or
/// tenant), the method, the path and the client's key. Stores see only this hash, never
/// the raw key: the size is fixed and nothing a client sends reaches a store query.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// A key from its 32 bytes (for stores reading keys back).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The fingerprint of a request: SHA-256 over its method, path, query, selected headers and
/// body. A key reused with a different fingerprint is answered with `422`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// A fingerprint from its 32 bytes (for stores reading records back).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The fingerprint's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn hex(f: &mut fmt::Formatter<'_>, name: &str, bytes: &[u8; 32]) -> fmt::Result {
    write!(f, "{name}(")?;
    for b in &bytes[..8] {
        write!(f, "{b:02x}")?;
    }
    f.write_str("…)")
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(f, "StoreKey", &self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(f, "Fingerprint", &self.0)
    }
}

/// The token of one claim. Every claim a store grants gets a token greater than any it
/// granted before, so a stale owner (whose lease expired and whose key was claimed again)
/// holds a smaller token than the current owner and its writes are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FencingToken(u64);

impl FencingToken {
    /// A token from its number (for stores).
    pub const fn new(token: u64) -> Self {
        Self(token)
    }

    /// The token's number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A response kept for replay: the status, the allow-listed headers, the body and the
/// trailers, if any.
///
/// Cloning is cheap (one reference count): a store can hand out the response it holds.
/// Clones share the headers of a replay too, made by the first replay and reused by the
/// next ones.
#[derive(Clone, PartialEq)]
pub struct StoredResponse {
    inner: Arc<StoredInner>,
}

#[derive(Clone)]
struct StoredInner {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
    /// `headers` plus `Idempotent-Replayed: true` and `Content-Length` (without trailers),
    /// made once: a replay then clones them instead of inserting into a copy.
    replay_headers: OnceLock<HeaderMap>,
}

impl PartialEq for StoredInner {
    fn eq(&self, other: &Self) -> bool {
        // The replay headers follow from the rest.
        self.status == other.status
            && self.headers == other.headers
            && self.body == other.body
            && self.trailers == other.trailers
    }
}

impl fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("StoredResponse")
            .field("status", &inner.status)
            .field("headers", &inner.headers)
            .field("body", &inner.body)
            .field("trailers", &inner.trailers)
            .finish()
    }
}

impl StoredResponse {
    /// A stored response without trailers.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self::with_parts(status, headers, body, None)
    }

    /// A stored response with trailers, if `trailers` is `Some`.
    pub fn with_parts(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Self {
        Self {
            inner: Arc::new(StoredInner {
                status,
                headers,
                body,
                trailers,
                replay_headers: OnceLock::new(),
            }),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The stored headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.inner.body
    }

    /// The trailers, if the response had any.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.inner.trailers.as_ref()
    }

    /// The parts: status, headers, body and trailers (copying the headers if the response
    /// is shared).
    pub fn into_parts(self) -> (StatusCode, HeaderMap, Bytes, Option<HeaderMap>) {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| (*shared).clone());
        (inner.status, inner.headers, inner.body, inner.trailers)
    }

    /// The parts of a replay: the status, the stored headers plus `Idempotent-Replayed:
    /// true` and (without trailers) `Content-Length`, the body and the trailers. The
    /// headers are made at the first replay and cloned afterwards.
    pub(crate) fn replay_parts(&self) -> (StatusCode, HeaderMap, Bytes, Option<HeaderMap>) {
        let inner = &*self.inner;
        let headers = inner.replay_headers.get_or_init(|| {
            let mut headers = HeaderMap::with_capacity(inner.headers.len() + 2);
            for (name, value) in &inner.headers {
                headers.append(name, value.clone());
            }
            headers.insert(
                crate::problem::IDEMPOTENT_REPLAYED,
                HeaderValue::from_static("true"),
            );
            if inner.trailers.is_none() {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(inner.body.len()));
            }
            headers
        });
        (
            inner.status,
            headers.clone(),
            inner.body.clone(),
            inner.trailers.clone(),
        )
    }

    /// An estimate of the memory the response takes: the body, every header name and value
    /// plus a per-entry overhead.
    pub fn approximate_size(&self) -> usize {
        fn map_size(map: &HeaderMap) -> usize {
            map.iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 32)
                .sum()
        }
        let inner = &*self.inner;
        inner.body.len() + map_size(&inner.headers) + inner.trailers.as_ref().map_or(0, map_size)
    }
}

/// What a store holds for a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A request holds the claim and its handler is running (or its owner crashed and the
    /// lease has not expired yet).
    InFlight {
        /// The fingerprint of the request that holds the claim.
        fingerprint: Fingerprint,
        /// The claim's token.
        token: FencingToken,
    },
    /// The first request finished and its response is kept for replay.
    Completed {
        /// The fingerprint of the request that completed.
        fingerprint: Fingerprint,
        /// The response to replay.
        response: StoredResponse,
    },
}

impl Record {
    /// The fingerprint of the request the record belongs to.
    pub fn fingerprint(&self) -> &Fingerprint {
        match self {
            Record::InFlight { fingerprint, .. } | Record::Completed { fingerprint, .. } => {
                fingerprint
            }
        }
    }
}

/// The result of [`IdempotencyStore::claim`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key was free (never used, released, or expired): the caller owns it now.
    Acquired(FencingToken),
    /// The key is taken; here is what it holds. Nothing was changed.
    Existing(Record),
}

/// The result of a write guarded by a fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The token held the claim and the write was made.
    Applied,
    /// The token no longer holds the claim (its lease expired and the key was claimed
    /// again, completed, released or purged): nothing was changed.
    Superseded,
}

/// A boxed store future, for implementations whose futures cannot be named (an `async`
/// block, a client library's boxed futures): `type Future<T: Send + 'static> =
/// BoxStoreFuture<T>;`.
pub type BoxStoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'static>>;

/// Where idempotency records live: [`MemoryStore`](crate::MemoryStore) in one process,
/// `RedisStore` (feature `redis`) or `PostgresStore` (feature `postgres`) for a fleet.
///
/// # Contract
///
/// Every implementation keeps these rules; the layer relies on them.
///
/// 1. **[`claim`](Self::claim) is one atomic compare-and-set**: it acquires the key when it
///    is absent or its record has expired (a completed record past its ttl, an in-flight
///    record past its lease), and otherwise returns the record unchanged. Two concurrent
///    claims of a free key never both succeed.
/// 2. **Fencing tokens increase**: every successful claim gets a token greater than every
///    token the store granted before for that key (a store-wide counter is the simple
///    way), across releases and expiries.
/// 3. **Writes are fenced**: [`complete`](Self::complete) and [`release`](Self::release)
///    change the record only if it is in flight with the caller's token, and report
///    [`WriteOutcome::Superseded`] otherwise. Completing after the lease has passed is
///    allowed as long as nobody claimed the key since.
/// 4. **Expiry is decided by the store's own clock**, measured from when it handled the
///    request (the memory store uses the tokio clock, database stores their server's).
/// 5. An **error means "unknown"**: the operation may or may not have taken effect.
///    Capacity refusals are errors too ([`CapacityExceeded`](crate::CapacityExceeded)).
///
/// # Why associated future types, not `impl Future`
///
/// The layer's response future is a named type (no `Box::pin` per request) that holds the
/// store's futures while they run, so it must be able to name them; a return-position
/// `impl Future` cannot be named in a struct on stable Rust. With an associated type, the
/// memory store returns [`std::future::Ready`] and costs no allocation, and a network store
/// can use [`BoxStoreFuture`]: one allocation next to a network round trip.
///
/// Futures own what they need (`'static`): the layer keeps them across polls.
pub trait IdempotencyStore: Send + Sync {
    /// The future of every operation.
    type Future<T: Send + 'static>: Future<Output = Result<T, BoxError>> + Send + 'static;

    /// Claims `key` for a request with `fingerprint`, with an in-flight lease of `lease`
    /// (rule 1), or returns what the key holds.
    fn claim(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Self::Future<Claim>;

    /// Replaces the in-flight record held with `token` by `response`, kept for `ttl` from
    /// now (rule 3).
    fn complete(
        &self,
        key: &StoreKey,
        token: FencingToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Self::Future<WriteOutcome>;

    /// Deletes the in-flight record held with `token`, so that the key can be claimed again
    /// at once (rule 3).
    fn release(&self, key: &StoreKey, token: FencingToken) -> Self::Future<WriteOutcome>;

    /// What `key` holds now, if anything (an expired record is nothing).
    fn get(&self, key: &StoreKey) -> Self::Future<Option<Record>>;

    /// Releases the claim held with `token` from `Drop`, when a response future is dropped
    /// before it finished (the client went away, a timeout fired).
    ///
    /// It must not block. The default runs [`release`](Self::release) on the current tokio
    /// runtime as a detached task, and does nothing outside one; either way the lease
    /// expires in the end. The memory store releases in place.
    fn abandon(&self, key: &StoreKey, token: FencingToken) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let release = self.release(key, token);
            drop(runtime.spawn(release));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_add_their_headers_without_changing_the_stored_response() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.append(header::LINK, HeaderValue::from_static("</a>"));
        headers.append(header::LINK, HeaderValue::from_static("</b>"));
        let stored = StoredResponse::new(StatusCode::CREATED, headers.clone(), Bytes::from("hi"));
        let fresh = stored.clone();
        for _ in 0..2 {
            let (status, replayed, body, trailers) = stored.replay_parts();
            assert_eq!(
                (status, &body[..], trailers),
                (StatusCode::CREATED, &b"hi"[..], None)
            );
            assert_eq!(replayed["idempotent-replayed"], "true");
            assert_eq!(replayed[header::CONTENT_LENGTH], "2");
            assert_eq!(replayed.get_all(header::LINK).iter().count(), 2);
            assert_eq!(replayed.len(), 5);
        }
        // What a store keeps (and encodes) is what was stored.
        assert_eq!(stored.headers(), &headers);
        assert_eq!(stored, fresh);
        assert_eq!(
            stored,
            StoredResponse::new(StatusCode::CREATED, headers, Bytes::from("hi"))
        );

        // With trailers the length is not announced.
        let with_trailers = StoredResponse::with_parts(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from("x"),
            Some(HeaderMap::new()),
        );
        let (_, replayed, _, trailers) = with_trailers.replay_parts();
        assert!(replayed.get(header::CONTENT_LENGTH).is_none());
        assert!(trailers.is_some());
    }

    #[test]
    fn boxed_futures_satisfy_the_trait_bounds() {
        fn assert_store_future<F: Future<Output = Result<u8, BoxError>> + Send + 'static>() {}
        assert_store_future::<BoxStoreFuture<u8>>();
        assert_store_future::<std::future::Ready<Result<u8, BoxError>>>();
    }
}
