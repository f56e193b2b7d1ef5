//! Scoping keys to a principal, and the hashes the layer stores.
//!
//! # Why keys must be scoped
//!
//! A stored response is handed to whoever presents its key. If keys are global, a client
//! that sends (or guesses, or reads in a log) another client's key receives that client's
//! response: an order confirmation, a payment, personal data. Keys chosen by clients are
//! not secrets either, and clients pick weak ones. The draft's security section (§5)
//! therefore recommends a *composite* key: the client's key plus attributes of the caller
//! that only the server knows. Brandur's Postgres design and zero2prod key on
//! `(user_id, key)`; Stripe and Telnyx also compare the endpoint.
//!
//! The layer's storage key is SHA-256 over the scope (the bytes a [`ScopeExtractor`]
//! returns, typically the authenticated principal or tenant), the method, the path and the
//! client's key, so two principals using the same key never share a record, and neither
//! do two endpoints. Put the layer after authentication so that the principal is known.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, Method};
use sha2::{Digest, Sha256};

use crate::store::{Fingerprint, StoreKey};

/// Tells the layer whose request this is: the principal or tenant a key belongs to.
///
/// Implemented by closures `Fn(&http::request::Parts) -> T` where `T: AsRef<[u8]>`
/// (annotate the argument type so the closure accepts any lifetime), and by [`Unscoped`].
///
/// ```
/// use http::request::Parts;
/// use steadfast_idempotency::{IdempotencyLayer, MemoryStore};
///
/// #[derive(Clone)]
/// struct Principal(u64);
///
/// let _layer = IdempotencyLayer::builder(MemoryStore::new())
///     // Set by the authentication layer; requests without one share the scope `0`.
///     .scope(|parts: &Parts| {
///         parts.extensions.get::<Principal>().map_or(0, |p| p.0).to_be_bytes()
///     })
///     .build()?;
/// # Ok::<(), steadfast_idempotency::InvalidIdempotencyConfig>(())
/// ```
pub trait ScopeExtractor: Send + Sync {
    /// The scope's bytes.
    type Scope: AsRef<[u8]>;

    /// Reads the scope from the request head.
    fn extract(&self, parts: &Parts) -> Self::Scope;
}

impl<F, T> ScopeExtractor for F
where
    F: Fn(&Parts) -> T + Send + Sync,
    T: AsRef<[u8]>,
{
    type Scope = T;

    fn extract(&self, parts: &Parts) -> T {
        self(parts)
    }
}

/// No scope: every client shares one key space. Only for services with a single client
/// (or clients that trust each other); see the [module docs](self) for the risk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unscoped;

impl ScopeExtractor for Unscoped {
    type Scope = [u8; 0];

    fn extract(&self, _parts: &Parts) -> [u8; 0] {
        []
    }
}

/// The domain tag of storage keys, their first field.
const KEY_DOMAIN: &[u8] = b"steadfast-idempotency/v1/key";
/// The domain tag of fingerprints, their first field.
const FINGERPRINT_DOMAIN: &[u8] = b"steadfast-idempotency/v1/fingerprint";

/// SHA-256 with length-prefixed fields, so that field boundaries cannot be shifted
/// (`("ab", "c")` and `("a", "bc")` hash differently).
#[derive(Clone)]
pub(crate) struct FieldHasher(Sha256);

impl FieldHasher {
    pub(crate) fn new(domain: &[u8]) -> Self {
        let mut hasher = Self(Sha256::new());
        hasher.field(domain);
        hasher
    }

    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    /// Zero bytes up to the end of the current 64-byte SHA-256 block, `written` bytes
    /// having gone in so far: a state made once and cloned per key then holds whole blocks
    /// only, none left to copy into each clone's buffer.
    pub(crate) fn pad_block(&mut self, written: usize) {
        const BLOCK: usize = 64;
        let pad = written.next_multiple_of(BLOCK) - written;
        self.0.update(&[0; BLOCK][..pad]);
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The hasher states after the domain tags of the storage key and the fingerprint, made
/// once per layer and cloned per request. The hashes are the same as when the tags are
/// hashed each time: records in a shared store stay where they were. (Framing short
/// fields on the stack for one update each was tried and was slower: the block buffer
/// then copies them once more.)
#[derive(Clone)]
pub(crate) struct Prefixes {
    key: FieldHasher,
    fingerprint: FieldHasher,
}

impl Prefixes {
    pub(crate) fn new() -> Self {
        Self {
            key: FieldHasher::new(KEY_DOMAIN),
            fingerprint: FieldHasher::new(FINGERPRINT_DOMAIN),
        }
    }
}

impl std::fmt::Debug for Prefixes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefixes").finish_non_exhaustive()
    }
}

/// The storage key of a request: SHA-256 over scope, method, path and client key.
pub(crate) fn store_key(
    prefixes: &Prefixes,
    scope: &[u8],
    method: &Method,
    path: &str,
    key: &str,
) -> StoreKey {
    let mut hasher = prefixes.key.clone();
    hasher.field(scope);
    hasher.field(method.as_str().as_bytes());
    hasher.field(path.as_bytes());
    hasher.field(key.as_bytes());
    StoreKey::from_bytes(hasher.finish())
}

/// Computes a request's fingerprint: the head when the request arrives, the body as it
/// streams in.
pub(crate) struct FingerprintHasher {
    hasher: FieldHasher,
    body_len: u64,
}

impl FingerprintHasher {
    pub(crate) fn new(prefixes: &Prefixes, parts: &Parts, headers: &[HeaderName]) -> Self {
        let mut hasher = prefixes.fingerprint.clone();
        hasher.field(parts.method.as_str().as_bytes());
        hasher.field(parts.uri.path().as_bytes());
        match parts.uri.query() {
            Some(query) => {
                hasher.field(b"?");
                hasher.field(query.as_bytes());
            }
            None => hasher.field(b""),
        }
        for name in headers {
            hasher.field(name.as_str().as_bytes());
            let values = parts.headers.get_all(name);
            hasher.field(&(values.iter().count() as u64).to_be_bytes());
            for value in values {
                hasher.field(value.as_bytes());
            }
        }
        Self {
            hasher,
            body_len: 0,
        }
    }

    /// Adds body bytes; chunk boundaries do not change the result.
    pub(crate) fn update(&mut self, chunk: &Bytes) {
        self.hasher.0.update(chunk);
        self.body_len += chunk.len() as u64;
    }

    pub(crate) fn finish(mut self) -> Fingerprint {
        // The body is the last field, so its length goes after it.
        self.hasher.0.update(self.body_len.to_be_bytes());
        Fingerprint::from_bytes(self.hasher.finish())
    }
}

impl std::fmt::Debug for FingerprintHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FingerprintHasher")
            .field("body_len", &self.body_len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> Parts {
        let (parts, ()) = http::Request::post(uri)
            .header("content-type", "application/json")
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    fn fingerprint(uri: &str, chunks: &[&'static [u8]]) -> Fingerprint {
        let prefixes = Prefixes::new();
        let mut hasher =
            FingerprintHasher::new(&prefixes, &parts(uri), &[http::header::CONTENT_TYPE]);
        for chunk in chunks {
            hasher.update(&Bytes::from_static(chunk));
        }
        hasher.finish()
    }

    fn key(scope: &[u8], method: &Method, path: &str, key: &str) -> StoreKey {
        store_key(&Prefixes::new(), scope, method, path, key)
    }

    /// SHA-256 over length-prefixed fields, written out byte by byte: the derivation as
    /// documented, independent of `FieldHasher`.
    fn framed(fields: &[&[u8]], tail: &[u8]) -> [u8; 32] {
        let mut bytes = Vec::new();
        for field in fields {
            bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
            bytes.extend_from_slice(field);
        }
        bytes.extend_from_slice(tail);
        Sha256::digest(&bytes).into()
    }

    #[test]
    fn hashes_keep_their_derivation() {
        // Records in Redis and PostgreSQL are found by these hashes: a change would orphan
        // them (a retry after an upgrade would run again) and turn every replay into a 422.
        let long_key = "k".repeat(200);
        for (scope, the_key) in [(&b""[..], "8e03978e-40d5"), (b"tenant-7", &long_key)] {
            assert_eq!(
                key(scope, &Method::POST, "/orders", the_key).as_bytes(),
                &framed(
                    &[KEY_DOMAIN, scope, b"POST", b"/orders", the_key.as_bytes()],
                    b""
                )
            );
        }
        let body = b"{\"sku\":1}";
        let expected = framed(
            &[
                FINGERPRINT_DOMAIN,
                b"POST",
                b"/a",
                b"?",
                b"x=1",
                b"content-type",
                &1u64.to_be_bytes(),
                b"application/json",
            ],
            &[&body[..], &(body.len() as u64).to_be_bytes()].concat(),
        );
        assert_eq!(
            fingerprint("/a?x=1", &[&body[..5], &body[5..]]).as_bytes(),
            &expected
        );
    }

    #[test]
    fn chunking_does_not_change_the_fingerprint() {
        assert_eq!(
            fingerprint("/a?x=1", &[b"hello world"]),
            fingerprint("/a?x=1", &[b"hello", b" ", b"world"])
        );
        assert_ne!(
            fingerprint("/a?x=1", &[b"hello"]),
            fingerprint("/a?x=2", &[b"hello"])
        );
        assert_ne!(fingerprint("/a", &[b""]), fingerprint("/a?", &[b""]));
        assert_ne!(fingerprint("/a", &[b"x"]), fingerprint("/a", &[b"y"]));
    }

    #[test]
    fn store_keys_separate_scope_method_path_and_key() {
        let base = key(b"alice", &Method::POST, "/orders", "k");
        assert_eq!(base, key(b"alice", &Method::POST, "/orders", "k"));
        assert_ne!(base, key(b"bob", &Method::POST, "/orders", "k"));
        assert_ne!(base, key(b"alice", &Method::PATCH, "/orders", "k"));
        assert_ne!(base, key(b"alice", &Method::POST, "/order", "k"));
        assert_ne!(base, key(b"alice", &Method::POST, "/orders", "j"));
        // Field boundaries matter.
        assert_ne!(
            key(b"alice/", &Method::POST, "orders", "k"),
            key(b"alice", &Method::POST, "/orders", "k")
        );
    }
}
