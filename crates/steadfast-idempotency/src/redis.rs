//! [`RedisStore`]: idempotency records in one Redis server (feature `redis`).

use std::fmt;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use steadfast_core::error::BoxError;

use crate::codec::{self, CorruptRecord};
use crate::store::{
    BoxStoreFuture, Claim, FencingToken, Fingerprint, IdempotencyStore, Record, StoreKey,
    StoredResponse, WriteOutcome,
};

/// The key prefix when none is set.
const DEFAULT_PREFIX: &str = "steadfast:idem:";

/// The longest lease or ttl sent to Redis: one century, in milliseconds.
const MAX_MILLIS: u64 = 100 * 365 * 86_400 * 1_000;

/// Claim. KEYS: record, token counter. ARGV: fingerprint (32 bytes), lease in ms, `PX` of
/// the in-flight record in ms. Returns the new token (an integer) or the record (a string).
const CLAIM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, 1) ~= 'I' then return v end
  local deadline = tonumber(string.match(v, ':(%d+)$', 34))
  if not deadline or deadline > now then return v end
end
local token = redis.call('INCR', KEYS[2])
local record = 'I' .. ARGV[1] .. string.format('%d:%d', token, now + tonumber(ARGV[2]))
redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
return token
";

/// Complete. KEYS: record. ARGV: token (decimal), response, ttl in ms. Returns 1 or 0.
const COMPLETE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 1) ~= 'I' then return 0 end
if string.match(v, '^(%d+):', 34) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'C' .. string.sub(v, 2, 33) .. ARGV[2], 'PX', ARGV[3])
return 1
";

/// Release. KEYS: record. ARGV: token (decimal). Returns 1 or 0.
const RELEASE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 1) ~= 'I' then return 0 end
if string.match(v, '^(%d+):', 34) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// Get. KEYS: record. Returns the record, or nil when absent or in flight past its lease.
const GET: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == 'I' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local deadline = tonumber(string.match(v, ':(%d+)$', 34))
  if deadline and deadline <= now then return false end
end
return v
";

struct Scripts {
    claim: Script,
    complete: Script,
    release: Script,
    get: Script,
}

/// Hashed once per process (`Script::new` computes the SHA-1 for `EVALSHA`).
static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    claim: Script::new(CLAIM),
    complete: Script::new(COMPLETE),
    release: Script::new(RELEASE),
    get: Script::new(GET),
});

/// An [`IdempotencyStore`] in a single Redis (or Valkey) server: one Lua script per
/// operation, so one atomic compare-and-set and one round trip each.
///
/// # Data layout
///
/// Under the key prefix `p` (default `steadfast:idem:`), two kinds of keys:
///
/// | key | value | expiry |
/// |---|---|---|
/// | `p` `r:` + the [`StoreKey`] in hex | a record (below) | in flight: `PX` 2 × lease; completed: `PX` ttl |
/// | `p` `token` | the fencing-token counter | **never**; never deleted, so tokens never reset |
///
/// A record is one string value:
///
/// ```text
/// in flight = "I", fingerprint (32 bytes), "<token>:<lease deadline>"   (ASCII decimals)
/// completed = "C", fingerprint (32 bytes), response                     (the crate's response encoding)
/// ```
///
/// The lease deadline is in milliseconds of the Redis server's clock (`TIME`). The response
/// encoding is length-prefixed binary, integers big-endian:
///
/// ```text
/// header map = count: u32, then count × (name length: u16, name, value length: u32, value)
/// response   = version: u8 (1), status: u16, headers: header map,
///              body length: u32, body, has trailers: u8 (0 or 1), [trailers: header map]
/// ```
///
/// A value that does not decode (a truncated value, a key written by something else) is a
/// [`CorruptRecord`] error, never a panic.
///
/// # Round trips
///
/// Each operation is one Lua script sent with `EVALSHA`: one atomic compare-and-set on the
/// server and **one round trip** (the first call on a server that has not seen the script
/// yet takes two: `EVALSHA`, then `EVAL` with the source, which also caches it).
///
/// - **claim**: reads the record and `TIME`; if the key is free (absent, or in flight past
///   its lease deadline) it `INCR`s the counter and `SET`s an in-flight record with the new
///   token, `PX` 2 × lease, and returns the token; otherwise it returns the record as it
///   is (completed or in flight; the layer compares fingerprints).
/// - **complete**: `SET`s the completed record, `PX` ttl, only if the record is in flight
///   with the caller's token (before or after its lease deadline).
/// - **release**: `DEL`s the record only if it is in flight with the caller's token.
/// - **get**: the record, or nothing if it is absent or in flight past its deadline.
///
/// [`RedisStore::round_trips`] counts the commands sent, for tests and benchmarks.
///
/// # Clock and expiry
///
/// Redis's own clock decides: `PX` for completed records, the `TIME` inside the scripts
/// for leases. An in-flight record is kept for twice its lease, so an owner whose handler
/// ran past its lease can still complete as long as nobody claimed the key since (rule 3
/// of [`IdempotencyStore`]); after that the record is gone and a late completion is
/// [`WriteOutcome::Superseded`]. Nothing needs reaping.
///
/// Needs Redis 5 or newer (or Valkey): the scripts call `TIME` before writing, which
/// needs effect replication (the default since 5.0).
///
/// # Caveats
///
/// - Redis replication is asynchronous: a failover can lose a record or the latest
///   `INCR` (so a token may be issued twice). Run without failover, or with
///   `appendfsync always`, if a lost record (a request run twice) matters.
/// - The counter key has no expiry: with `maxmemory`, use `noeviction` or a `volatile-*`
///   policy, never `allkeys-*`.
/// - Redis Cluster: a script's keys must share a slot, so put a hash tag in the prefix
///   (`{idem}:`); that puts every record in one slot.
/// - Tokens are Lua numbers in the scripts: exact up to 2^53 claims per prefix.
///
/// # Connections
///
/// Generic over the connection `C`: by default a [`ConnectionManager`] (multiplexed,
/// reconnects after an I/O error). While the server is down each operation fails with the
/// `redis` crate's error once the manager's connection attempts or its response timeout
/// (500 ms) run out; the layer then answers `503` (failing closed, its default) or runs
/// the request unprotected (failing open), and recovers by itself when the server is back.
/// Cloning the store clones the connection handle (cheap, shared) and shares the
/// round-trip counter.
///
/// # Example
///
/// ```no_run
/// use steadfast_idempotency::{IdempotencyLayer, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379")
///     .await?
///     .with_prefix("orders:idem:");
/// let layer = IdempotencyLayer::builder(store).build()?;
/// # drop(layer);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore<C = ConnectionManager> {
    connection: C,
    prefix: Arc<str>,
    round_trips: Arc<AtomicU64>,
}

impl RedisStore<ConnectionManager> {
    /// How many times the manager made by [`connect`](Self::connect) retries a failed
    /// connection attempt (with exponential backoff from 100 ms): 2.
    pub const CONNECT_RETRIES: usize = 2;

    /// Connects to the Redis server at `url` (`redis://host:port/db`) with a
    /// [`ConnectionManager`], and the default key prefix `steadfast:idem:`.
    ///
    /// The manager keeps the `redis` crate's defaults (1 s connection timeout, 500 ms
    /// response timeout) except that it retries a failed connection attempt
    /// [`CONNECT_RETRIES`](Self::CONNECT_RETRIES) times instead of 6, so that a request
    /// during an outage gets its `503` within about a second instead of about ten. For
    /// other settings build the manager yourself and use [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// The `redis` crate's error when the URL is invalid or the first connection fails.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new().set_number_of_retries(Self::CONNECT_RETRIES);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self::new(connection))
    }
}

impl<C> RedisStore<C> {
    /// A store using `connection`, with the default key prefix `steadfast:idem:`.
    pub fn new(connection: C) -> Self {
        Self {
            connection,
            prefix: Arc::from(DEFAULT_PREFIX),
            round_trips: Arc::default(),
        }
    }

    /// Sets the prefix of every key this store uses (default `steadfast:idem:`), to keep
    /// applications, tenants of a shared server or test runs apart.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection, for other commands on the same server.
    pub fn connection(&self) -> &C {
        &self.connection
    }

    /// The Redis key holding `key`'s record: the prefix, `r:` and the key in hex.
    pub fn record_key(&self, key: &StoreKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 2 + 64);
        out.push_str(&self.prefix);
        out.push_str("r:");
        for byte in key.as_bytes() {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    /// The Redis key holding the token counter (no expiry, never deleted).
    pub fn token_key(&self) -> String {
        format!("{}token", self.prefix)
    }

    /// Commands sent to Redis by this store and its clones so far: one per operation,
    /// plus one whenever a script had to be sent in full (`NOSCRIPT`).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Runs `script` (`EVALSHA`, then `EVAL` on `NOSCRIPT`) and counts the round trips.
    fn eval(
        &self,
        script: &'static Script,
        source: &'static str,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Value, RedisError>> + Send + 'static {
        let mut connection = self.connection.clone();
        let round_trips = self.round_trips.clone();
        async move {
            let command = |first: &str, script_arg: &str| {
                let mut cmd = ::redis::cmd(first);
                cmd.arg(script_arg).arg(keys.len()).arg(&keys).arg(&args);
                cmd
            };
            round_trips.fetch_add(1, Ordering::Relaxed);
            match command("EVALSHA", script.get_hash())
                .query_async(&mut connection)
                .await
            {
                Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    round_trips.fetch_add(1, Ordering::Relaxed);
                    command("EVAL", source).query_async(&mut connection).await
                }
                other => other,
            }
        }
    }
}

/// The milliseconds sent for `duration`: rounded up, at least 1, at most a century.
fn millis(duration: Duration) -> u64 {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(millis)
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MILLIS)
}

/// A record value as the scripts store it.
fn decode_record(value: &[u8]) -> Result<Record, CorruptRecord> {
    if value.len() < 33 {
        return Err(CorruptRecord::new("truncated"));
    }
    let mut fingerprint = [0; 32];
    fingerprint.copy_from_slice(&value[1..33]);
    let fingerprint = Fingerprint::from_bytes(fingerprint);
    let rest = &value[33..];
    match value[0] {
        b'I' => {
            let text =
                std::str::from_utf8(rest).map_err(|_| CorruptRecord::new("invalid lease"))?;
            let token = text
                .split_once(':')
                .filter(|(_, deadline)| deadline.parse::<u64>().is_ok())
                .and_then(|(token, _)| token.parse::<u64>().ok())
                .ok_or(CorruptRecord::new("invalid lease"))?;
            Ok(Record::InFlight {
                fingerprint,
                token: FencingToken::new(token),
            })
        }
        b'C' => Ok(Record::Completed {
            fingerprint,
            response: codec::decode_response(rest)?,
        }),
        _ => Err(CorruptRecord::new("unknown record kind")),
    }
}

/// A script's reply: a record (a string) or nothing.
/// The store's future for a script's `reply` and its `decode`: the one place it boxes
/// (see the `Future` type of its `IdempotencyStore` impl for why).
fn decoded<T: Send + 'static>(
    reply: impl Future<Output = Result<Value, RedisError>> + Send + 'static,
    decode: fn(Value) -> Result<T, BoxError>,
) -> BoxStoreFuture<T> {
    Box::pin(async move { decode(reply.await?) })
}

fn claim_reply(value: Value) -> Result<Claim, BoxError> {
    match value {
        Value::Int(token) => {
            let token = u64::try_from(token).map_err(|_| unexpected(&Value::Int(token)))?;
            Ok(Claim::Acquired(FencingToken::new(token)))
        }
        other => match record_reply(other)? {
            Some(record) => Ok(Claim::Existing(record)),
            None => Err(unexpected(&Value::Nil)),
        },
    }
}

fn record_reply(value: Value) -> Result<Option<Record>, BoxError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(decode_record(&bytes)?)),
        other => Err(unexpected(&other)),
    }
}

/// A guarded write's reply: 1 applied, 0 superseded.
fn write_reply(value: Value) -> Result<WriteOutcome, BoxError> {
    match value {
        Value::Int(1) => Ok(WriteOutcome::Applied),
        Value::Int(0) => Ok(WriteOutcome::Superseded),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(value: &Value) -> BoxError {
    format!("unexpected reply from a Redis idempotency script: {value:?}").into()
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("round_trips", &self.round_trips())
            .finish_non_exhaustive()
    }
}

impl<C> IdempotencyStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    // Boxed on purpose: each operation is a network round trip to Redis, so one allocation
    // beside it is noise, and naming the client library's futures would tie our public
    // type to its internals (see `IdempotencyStore`, "Why associated future types").
    type Future<T: Send + 'static> = BoxStoreFuture<T>;

    fn claim(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Self::Future<Claim> {
        let lease = millis(lease);
        let keep = lease.saturating_mul(2).min(2 * MAX_MILLIS);
        let reply = self.eval(
            &SCRIPTS.claim,
            CLAIM,
            vec![self.record_key(key), self.token_key()],
            vec![
                fingerprint.as_bytes().to_vec(),
                lease.to_string().into_bytes(),
                keep.to_string().into_bytes(),
            ],
        );
        decoded(reply, claim_reply)
    }

    fn complete(
        &self,
        key: &StoreKey,
        token: FencingToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Self::Future<WriteOutcome> {
        let encoded = match codec::encode_response(&response) {
            Ok(encoded) => encoded,
            // Boxed too, to be the same type; only for a response too big to encode.
            Err(err) => return Box::pin(std::future::ready(Err(err.into()))),
        };
        let reply = self.eval(
            &SCRIPTS.complete,
            COMPLETE,
            vec![self.record_key(key)],
            vec![
                token.get().to_string().into_bytes(),
                encoded,
                millis(ttl).to_string().into_bytes(),
            ],
        );
        decoded(reply, write_reply)
    }

    fn release(&self, key: &StoreKey, token: FencingToken) -> Self::Future<WriteOutcome> {
        let reply = self.eval(
            &SCRIPTS.release,
            RELEASE,
            vec![self.record_key(key)],
            vec![token.get().to_string().into_bytes()],
        );
        decoded(reply, write_reply)
    }

    fn get(&self, key: &StoreKey) -> Self::Future<Option<Record>> {
        let reply = self.eval(&SCRIPTS.get, GET, vec![self.record_key(key)], Vec::new());
        decoded(reply, record_reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    proptest::proptest! {
        /// Whatever a key holds, reading it is a record or a typed error, never a panic.
        #[test]
        fn arbitrary_values_never_panic(
            kind in proptest::sample::select(vec![b'I', b'C', b'X']),
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
        ) {
            let mut value = vec![kind];
            value.extend_from_slice(&rest);
            let _ = decode_record(&value);
            let _ = record_reply(Value::BulkString(value));
        }
    }

    #[test]
    fn keys_are_prefixed_and_hex() {
        let store = RedisStore::new(()).with_prefix("p:");
        let key = StoreKey::from_bytes([0xab; 32]);
        assert_eq!(store.record_key(&key), format!("p:r:{}", "ab".repeat(32)));
        assert_eq!(store.token_key(), "p:token");
        assert_eq!(RedisStore::new(()).prefix(), DEFAULT_PREFIX);
    }

    #[test]
    fn durations_round_up_to_whole_milliseconds() {
        assert_eq!(millis(Duration::from_micros(1_500)), 2);
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::MAX), MAX_MILLIS);
    }

    #[test]
    fn records_decode_and_corrupt_ones_are_typed_errors() {
        let fp = [7; 32];
        let mut in_flight = vec![b'I'];
        in_flight.extend_from_slice(&fp);
        in_flight.extend_from_slice(b"42:1700000000000");
        assert_eq!(
            decode_record(&in_flight).unwrap(),
            Record::InFlight {
                fingerprint: Fingerprint::from_bytes(fp),
                token: FencingToken::new(42)
            }
        );
        let response = StoredResponse::new(StatusCode::OK, HeaderMap::new(), Bytes::from("x"));
        let mut completed = vec![b'C'];
        completed.extend_from_slice(&fp);
        completed.extend_from_slice(&codec::encode_response(&response).unwrap());
        assert!(matches!(
            decode_record(&completed).unwrap(),
            Record::Completed { response: r, .. } if r == response
        ));

        let reason = |bytes: &[u8]| decode_record(bytes).unwrap_err().reason();
        assert_eq!(reason(b"I"), "truncated");
        let mut bad_kind = in_flight.clone();
        bad_kind[0] = b'X';
        assert_eq!(reason(&bad_kind), "unknown record kind");
        let mut bad_lease = in_flight[..33].to_vec();
        bad_lease.extend_from_slice(b"42");
        assert_eq!(reason(&bad_lease), "invalid lease");
        completed.push(1);
        assert_eq!(reason(&completed), "trailing bytes");
        // A reply of the wrong type is an error too, not a panic.
        assert!(write_reply(Value::Okay).is_err());
        assert!(record_reply(Value::Int(3)).is_err());
    }
}
