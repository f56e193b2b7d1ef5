//! [`RedisLeaseStore`]: leases in one Redis server (feature `redis`).

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};

use crate::error::{LeaseError, LeaseLost, StoreError};
use crate::lease::{FencingToken, Lease, LeaseHolder, LeaseTerms};
use crate::store::LeaseStore;

/// The key prefix when none is set: `steadfast:lease:`.
const DEFAULT_PREFIX: &str = "steadfast:lease:";

/// The longest ttl or takeover delay sent to Redis: one century, in milliseconds (far below
/// what `PX` accepts).
const MAX_MILLIS: u64 = 100 * 365 * 86_400 * 1_000;

/// Acquire (1 round trip: `EVALSHA`).
///
/// KEYS: lease, token counter, takeover-delay marker.
/// ARGV: holder, ttl in ms, ttl + takeover delay in ms (0: no delay).
///
/// - Held by `holder` (the value is `holder:token`): extend it, same token.
/// - Held by another, or expired and still within its takeover delay: `nil`.
/// - Free: `INCR` the counter (it never expires and is never deleted, so tokens never
///   reset) and `SET lease holder:token NX PX ttl`.
const ACQUIRE: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local holder, token = string.match(current, '^(.*):(%d+)$')
  if holder ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] ~= '0' then
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  else
    redis.call('DEL', KEYS[3])
  end
  return tonumber(token)
end
if redis.call('EXISTS', KEYS[3]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
if not redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'NX', 'PX', ARGV[2]) then
  return false
end
if ARGV[3] ~= '0' then redis.call('SET', KEYS[3], '1', 'PX', ARGV[3]) end
return token
";

/// Renew (1 round trip: `EVALSHA`): extend only if the value is still `holder:token`.
///
/// KEYS: lease, takeover-delay marker. ARGV: `holder:token`, ttl in ms, ttl + takeover delay
/// in ms (0: no delay). Returns 1, or 0 when the comparison failed.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '0' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) end
return 1
";

/// Release (1 round trip: `EVALSHA`): delete the lease (and its takeover-delay marker, so
/// the name is free at once) only if the value is still `holder:token`. The counter stays.
///
/// KEYS: lease, takeover-delay marker. ARGV: `holder:token`. Returns 1, or 0.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

struct Scripts {
    acquire: Script,
    renew: Script,
    release: Script,
}

/// Hashed once per process (`Script::new` computes the SHA-1 for `EVALSHA`).
static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    acquire: Script::new(ACQUIRE),
    renew: Script::new(RENEW),
    release: Script::new(RELEASE),
});

/// A [`LeaseStore`] in a single Redis (or Valkey) server: the recipe of the Redis
/// distributed-lock pattern, plus a fencing token.
///
/// # How it works
///
/// For a lease `name` under the key prefix `p` (default `steadfast:lease:`), three keys,
/// all with the hash tag `{name}` so they live in one cluster slot:
///
/// | key | value | expiry |
/// |---|---|---|
/// | `p{name}:lease` | `holder:token` | `PX ttl`: Redis's own clock decides when the lease ends |
/// | `p{name}:token` | the token counter | **never**; never deleted, so tokens never reset |
/// | `p{name}:delay` | `1` | `PX ttl + takeover delay`, only with a takeover delay |
///
/// Each transition is one Lua script, so one atomic compare-and-set on the server and **one
/// round trip** (`EVALSHA`; the first call on a server that does not have the script yet
/// takes three: `EVALSHA`, `SCRIPT LOAD`, `EVALSHA`):
///
/// - **acquire**: if the lease key holds `holder:<t>` for this holder, `PEXPIRE` it and
///   return `t` (same token, fresh ttl); if it holds another holder's value, or is absent
///   but the delay marker is not, return nothing; otherwise `INCR` the counter and
///   `SET lease holder:token NX PX ttl`.
/// - **renew**: `PEXPIRE` only if the value is still exactly `holder:token`.
/// - **release**: `DEL` only if the value is still exactly `holder:token`.
/// - **current**: one `GET` of the lease key.
///
/// A failed comparison is [`LeaseError::Lost`]; a connection, I/O or server error is a
/// [`StoreError`] (the outcome is unknown). Ttls are rounded up to whole milliseconds
/// (the store keeps the lease at least as long as asked) and capped at a century.
///
/// # Caveats (see the crate docs on fencing)
///
/// - Redis replication is asynchronous: a failover to a replica can lose the latest `INCR`
///   and the lease key, so two holders may get the same token. A
///   [`FenceGate`](crate::FenceGate) refuses an equal token from a different holder, which
///   is why it stores the holder too. To narrow the window, run with
///   `appendfsync always` and without failover, or `WAIT` for a replica.
/// - The counter keys have no expiry: with `maxmemory`, use `noeviction` or a `volatile-*`
///   policy, never `allkeys-*`, or an evicted counter restarts tokens at 1.
/// - Redis stores expiries as absolute Unix milliseconds: a wall-clock step on the Redis
///   host moves every expiry. Keep its clock slewed, not stepped.
///
/// # Connections
///
/// Generic over the connection `C`: by default a [`ConnectionManager`] (multiplexed,
/// reconnects after an I/O error; a request during an outage fails with a [`StoreError`]
/// once the manager's connection attempts or its response timeout run out, and the
/// [`Singleton`](crate::Singleton) bounds each call by ttl/3 anyway). A [`MultiplexedConnection`](::redis::aio::MultiplexedConnection) works
/// too. Cloning the store clones the connection handle (cheap, shared).
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use steadfast_lease::{LeaseStore, LeaseTerms, RedisLeaseStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = RedisLeaseStore::connect("redis://127.0.0.1:6379")
///     .await?
///     .with_prefix("myapp:lease:");
/// let terms = LeaseTerms::new(Duration::from_secs(15));
/// if let Some(lease) = store.try_acquire("compaction", "replica-a", terms).await? {
///     println!("leading with token {}", lease.token());
///     store.release(&lease).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisLeaseStore<C = ConnectionManager> {
    connection: C,
    prefix: Arc<str>,
}

impl RedisLeaseStore<ConnectionManager> {
    /// How many times the manager made by [`connect`](Self::connect) retries a failed
    /// connection attempt (with exponential backoff from 100 ms): 2.
    pub const CONNECT_RETRIES: usize = 2;

    /// Connects to the Redis server at `url` (`redis://host:port/db`; `rediss://` needs a
    /// TLS feature of the `redis` crate) with a [`ConnectionManager`], and the default key
    /// prefix.
    ///
    /// The manager keeps the `redis` crate's defaults (1 s connection timeout, 500 ms
    /// response timeout) except that it retries a failed connection attempt
    /// [`CONNECT_RETRIES`](Self::CONNECT_RETRIES) times instead of 6, so an unreachable server is reported within
    /// about a second instead of about ten; the next request after a failure starts a new
    /// attempt. For other settings build the manager yourself and use [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the URL is invalid or the first connection fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(store_error)?;
        let config = ConnectionManagerConfig::new().set_number_of_retries(Self::CONNECT_RETRIES);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(store_error)?;
        Ok(Self::new(connection))
    }
}

impl<C> RedisLeaseStore<C> {
    /// A store using `connection`, with the default key prefix `steadfast:lease:`.
    pub fn new(connection: C) -> Self {
        Self {
            connection,
            prefix: Arc::from(DEFAULT_PREFIX),
        }
    }

    /// Sets the prefix of every key this store uses (default `steadfast:lease:`), to keep
    /// applications or test runs sharing a server apart.
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

    /// The key holding `name`'s lease value (`holder:token`), with its `PX` expiry.
    pub fn lease_key(&self, name: &str) -> String {
        self.key(name, "lease")
    }

    /// The key holding `name`'s token counter (no expiry, never deleted).
    pub fn token_key(&self, name: &str) -> String {
        self.key(name, "token")
    }

    fn delay_key(&self, name: &str) -> String {
        self.key(name, "delay")
    }

    fn key(&self, name: &str, kind: &str) -> String {
        format!("{}{{{name}}}:{kind}", self.prefix)
    }
}

impl<C> RedisLeaseStore<C>
where
    C: ConnectionLike + Clone + Send + Sync,
{
    async fn acquire_script(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        let (ttl, ttl_ms) = granted(terms.ttl());
        let mut connection = self.connection.clone();
        let token: Option<u64> = SCRIPTS
            .acquire
            .key(self.lease_key(name))
            .key(self.token_key(name))
            .key(self.delay_key(name))
            .arg(holder)
            .arg(ttl_ms)
            .arg(delay_arg(ttl_ms, terms.takeover_delay()))
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(token.map(|token| {
            Lease::new(
                name,
                holder,
                FencingToken::new(token),
                LeaseTerms::new(ttl).with_takeover_delay(terms.takeover_delay()),
            )
        }))
    }

    async fn renew_script(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let (_, ttl_ms) = granted(lease.ttl());
        let mut connection = self.connection.clone();
        let renewed: i64 = SCRIPTS
            .renew
            .key(self.lease_key(lease.name()))
            .key(self.delay_key(lease.name()))
            .arg(value(lease))
            .arg(ttl_ms)
            .arg(delay_arg(ttl_ms, lease.terms().takeover_delay()))
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        if renewed == 1 {
            Ok(lease.clone())
        } else {
            Err(lost(lease))
        }
    }

    async fn release_script(&self, lease: &Lease) -> Result<(), LeaseError> {
        let mut connection = self.connection.clone();
        let released: i64 = SCRIPTS
            .release
            .key(self.lease_key(lease.name()))
            .key(self.delay_key(lease.name()))
            .arg(value(lease))
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        if released == 1 {
            Ok(())
        } else {
            Err(lost(lease))
        }
    }

    async fn get(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let mut connection = self.connection.clone();
        let value: Option<String> = ::redis::cmd("GET")
            .arg(self.lease_key(name))
            .query_async(&mut connection)
            .await
            .map_err(store_error)?;
        value.map(|value| parse_value(&value)).transpose()
    }
}

/// `holder:token`, as stored.
fn value(lease: &Lease) -> String {
    format!("{}:{}", lease.holder(), lease.token())
}

/// Splits `holder:token` at the last colon (holders may contain colons).
fn parse_value(value: &str) -> Result<LeaseHolder, StoreError> {
    value
        .rsplit_once(':')
        .and_then(|(holder, token)| Some((holder, token.parse::<u64>().ok()?)))
        .map(|(holder, token)| LeaseHolder::new(holder, FencingToken::new(token)))
        .ok_or_else(|| StoreError::new(format!("malformed lease value in Redis: {value:?}")))
}

/// The ttl the store will honour (capped at a century) and the `PX` argument: whole
/// milliseconds rounded up, at least 1.
fn granted(ttl: Duration) -> (Duration, u64) {
    let millis = millis_ceil(ttl).max(1);
    (ttl.min(Duration::from_millis(MAX_MILLIS)), millis)
}

/// The delay marker's `PX`: ttl plus the takeover delay, or 0 for no marker.
fn delay_arg(ttl_ms: u64, delay: Duration) -> u64 {
    if delay.is_zero() {
        0
    } else {
        ttl_ms
            .saturating_add(millis_ceil(delay))
            .min(2 * MAX_MILLIS)
    }
}

fn millis_ceil(duration: Duration) -> u64 {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(millis).unwrap_or(u64::MAX).min(MAX_MILLIS)
}

fn store_error(err: RedisError) -> StoreError {
    StoreError::new(err)
}

fn lost(lease: &Lease) -> LeaseError {
    LeaseError::Lost(LeaseLost::new(lease.name_arc().clone(), lease.token()))
}

impl<C> fmt::Debug for RedisLeaseStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLeaseStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<C> LeaseStore for RedisLeaseStore<C>
where
    C: ConnectionLike + Clone + Send + Sync,
{
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        self.acquire_script(name, holder, terms).await
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        self.renew_script(lease).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.release_script(lease).await
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        self.get(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_at_the_last_colon() {
        let holder = parse_value("host:42:pid:7").unwrap();
        assert_eq!((holder.id(), holder.token().get()), ("host:42:pid", 7));
        assert!(parse_value("no-token").is_err());
        assert!(parse_value("a:b").is_err());
    }

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(granted(Duration::from_micros(1_500)).1, 2);
        assert_eq!(granted(Duration::ZERO).1, 1);
        assert_eq!(granted(Duration::MAX).1, MAX_MILLIS);
        assert_eq!(granted(Duration::MAX).0, Duration::from_millis(MAX_MILLIS));
        assert_eq!(delay_arg(300, Duration::ZERO), 0);
        assert_eq!(delay_arg(300, Duration::from_millis(200)), 500);
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let store = RedisLeaseStore::new(()).with_prefix("p:");
        assert_eq!(store.lease_key("job"), "p:{job}:lease");
        assert_eq!(store.token_key("job"), "p:{job}:token");
        assert_eq!(store.delay_key("job"), "p:{job}:delay");
    }
}
