//! [`PostgresStore`]: idempotency records in a PostgreSQL table (feature `postgres`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use steadfast_core::error::BoxError;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::codec::{self, CorruptRecord};
use crate::store::{
    BoxStoreFuture, Claim, FencingToken, Fingerprint, IdempotencyStore, Record, StoreKey,
    StoredResponse, WriteOutcome,
};

/// The longest lease or ttl sent to the database: one century, in microseconds.
const MAX_MICROS: i64 = 100 * 365 * 86_400 * 1_000_000;

/// The advisory lock [`PostgresStore::migrate`] serializes on ("STEADIDM").
const MIGRATION_LOCK: i64 = 0x5354_4541_4449_444d;

/// A claim's statement finds no row only when a concurrent transaction changed the row
/// after the statement's snapshot was taken; it is then run again, at most this often.
const CLAIM_ATTEMPTS: usize = 5;

type Connecting = Pin<Box<dyn Future<Output = Result<Client, tokio_postgres::Error>> + Send>>;
type Connector = Box<dyn Fn() -> Connecting + Send + Sync>;

enum Connection {
    /// A client given by the caller; never replaced.
    Fixed(Arc<Client>),
    /// A few clients, used in turn, each reconnected on demand after it closed.
    Pool {
        connect: Connector,
        slots: Box<[tokio::sync::Mutex<Option<Arc<Client>>>]>,
        next: AtomicUsize,
    },
}

impl Connection {
    async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        match self {
            Connection::Fixed(client) => Ok(client.clone()),
            Connection::Pool {
                connect,
                slots,
                next,
            } => {
                let slot = &slots[next.fetch_add(1, Ordering::Relaxed) % slots.len()];
                let mut slot = slot.lock().await;
                if let Some(current) = slot.as_ref().filter(|c| !c.is_closed()) {
                    return Ok(current.clone());
                }
                *slot = None;
                let fresh = Arc::new(connect().await?);
                *slot = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }
}

/// `"ident"`, with embedded quotes doubled: a PostgreSQL identifier taken literally.
fn quote_identifier(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `'text'`, with embedded quotes doubled: a string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The statements, built once per table name.
struct Sql {
    table_name: String,
    table: String,
    migrate: String,
    claim: String,
    complete: String,
    release: String,
    get: String,
    reap: String,
}

impl Sql {
    fn new(table_name: &str) -> Self {
        let table = quote_identifier(table_name);
        let sequence = quote_identifier(&format!("{table_name}_token_seq"));
        let index = quote_identifier(&format!("{table_name}_expires_at"));
        let next_token = format!("nextval({})", quote_literal(&sequence));
        // One simple-protocol message: the statements run as one implicit transaction.
        let migrate = format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS {table} (
                 key         bytea       PRIMARY KEY,
                 token       bigint      NOT NULL,
                 state       text        NOT NULL
                             CHECK (state IN ('in_flight', 'completed', 'released')),
                 fingerprint bytea       NOT NULL,
                 expires_at  timestamptz NOT NULL,
                 status      smallint,
                 headers     bytea,
                 body        bytea,
                 trailers    bytea
             );
             CREATE SEQUENCE IF NOT EXISTS {sequence} OWNED BY {table}.token;
             CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at);"
        );
        // `$n::int8 * interval '1 microsecond'`: durations travel as whole microseconds.
        let claim = format!(
            "WITH claimed AS (
                 INSERT INTO {table} AS r (key, token, state, fingerprint, expires_at)
                 VALUES ($1, {next_token}, 'in_flight', $2,
                         clock_timestamp() + $3::int8 * interval '1 microsecond')
                 ON CONFLICT (key) DO UPDATE SET
                     token = {next_token}, state = 'in_flight',
                     fingerprint = EXCLUDED.fingerprint,
                     expires_at = clock_timestamp() + $3::int8 * interval '1 microsecond',
                     status = NULL, headers = NULL, body = NULL, trailers = NULL
                 WHERE r.expires_at <= clock_timestamp()
                 RETURNING token
             )
             SELECT true, token, NULL::text, NULL::bytea, NULL::int2, NULL::bytea,
                    NULL::bytea, NULL::bytea
               FROM claimed
             UNION ALL
             SELECT false, token, state, fingerprint, status, headers, body, trailers
               FROM {table}
              WHERE key = $1 AND expires_at > clock_timestamp()
                AND NOT EXISTS (SELECT 1 FROM claimed)"
        );
        let complete = format!(
            "UPDATE {table} SET state = 'completed',
                 expires_at = clock_timestamp() + $3::int8 * interval '1 microsecond',
                 status = $4, headers = $5, body = $6, trailers = $7
             WHERE key = $1 AND token = $2 AND state = 'in_flight'"
        );
        let release = format!(
            "UPDATE {table} SET state = 'released', expires_at = '-infinity'
             WHERE key = $1 AND token = $2 AND state = 'in_flight'"
        );
        let get = format!(
            "SELECT false, token, state, fingerprint, status, headers, body, trailers
               FROM {table} WHERE key = $1 AND expires_at > clock_timestamp()"
        );
        let batch = PostgresStore::REAP_BATCH;
        let reap = format!(
            "WITH doomed AS (
                 SELECT key FROM {table} WHERE expires_at <= clock_timestamp()
                 ORDER BY expires_at LIMIT {batch} FOR UPDATE SKIP LOCKED
             )
             DELETE FROM {table} t USING doomed
              WHERE t.key = doomed.key AND t.expires_at <= clock_timestamp()"
        );
        Self {
            table_name: table_name.to_owned(),
            table,
            migrate,
            claim,
            complete,
            release,
            get,
            reap,
        }
    }
}

/// An [`IdempotencyStore`] in a PostgreSQL table, timed by the database server's clock.
///
/// # The table
///
/// [`migrate`](Self::migrate) creates it (default name
/// [`DEFAULT_TABLE`](Self::DEFAULT_TABLE), in the connection's `search_path`):
///
/// ```sql
/// CREATE TABLE steadfast_idempotency (
///     key         bytea       PRIMARY KEY,  -- the 32-byte StoreKey (a SHA-256)
///     token       bigint      NOT NULL,     -- the fencing token, from the sequence below
///     state       text        NOT NULL      -- 'in_flight', 'completed' or 'released'
///                 CHECK (state IN ('in_flight', 'completed', 'released')),
///     fingerprint bytea       NOT NULL,     -- 32 bytes (a SHA-256)
///     expires_at  timestamptz NOT NULL,     -- lease or ttl end, by clock_timestamp()
///     status      smallint,                 -- completed only: the response
///     headers     bytea,                    --   (header maps length-prefixed, see below)
///     body        bytea,
///     trailers    bytea                     --   NULL: no trailers
/// );
/// CREATE SEQUENCE steadfast_idempotency_token_seq OWNED BY steadfast_idempotency.token;
/// CREATE INDEX steadfast_idempotency_expires_at ON steadfast_idempotency (expires_at);
/// ```
///
/// A header map is `count: u32`, then per entry `name length: u16, name, value length:
/// u32, value` (big-endian). A row that does not decode is a [`CorruptRecord`] error.
///
/// # Statements and round trips
///
/// Each operation is one statement, so one atomic step and **one round trip** (sent with
/// `query_typed`/`execute_typed`: Parse, Bind, Describe, Execute and Sync in one flush):
///
/// - **claim**: `WITH claimed AS (INSERT … ON CONFLICT (key) DO UPDATE … WHERE
///   expires_at <= clock_timestamp() RETURNING token) SELECT … FROM claimed UNION ALL
///   SELECT … FROM the table WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM claimed)`: a new
///   or expired key is taken with a fresh token, otherwise the live row comes back. Two
///   claims of one key serialize on its index entry, so exactly one wins. When a
///   concurrent claim changed the row after the statement's snapshot, the statement sees
///   no row and is run again (a second round trip, only under such a race).
/// - **complete**: `UPDATE … WHERE key = $1 AND token = $2 AND state = 'in_flight'`.
/// - **release**: the same condition, setting `state = 'released'` and `expires_at =
///   '-infinity'`: the key is free at once and the row is left for the reaper.
/// - **get**: `SELECT … WHERE key = $1 AND expires_at > clock_timestamp()`.
///
/// [`round_trips`](Self::round_trips) counts the statements sent, for tests and benchmarks.
///
/// # Clock, tokens and expiry
///
/// Every time is the database's `clock_timestamp()`: one clock decides expiry, whatever the
/// clients' clocks say. Durations are sent as whole microseconds (rounded up, capped at a
/// century).
///
/// Tokens come from the table's sequence; a reclaim draws its token after it has locked the
/// row, so it is greater than every token granted before for that key. (A new row's token
/// is drawn when its statement starts; only if, within that statement, the same key were
/// claimed, released or expired, and reaped by another session could the new token be the
/// smaller one. Tokens are compared for equality, so fencing holds either way.)
///
/// An in-flight row whose lease passed stays until it is claimed again or reaped, so its
/// owner can still complete it (rule 3 of [`IdempotencyStore`]).
///
/// **Expired rows are not deleted by themselves**: run [`reap_expired`](Self::reap_expired)
/// periodically (every few minutes, from one replica or all: concurrent reapers skip each
/// other's rows), or the table grows by every key ever used.
///
/// # Connections
///
/// [`connect`](Self::connect) and [`with_connector`](Self::with_connector) keep a small pool:
/// [`DEFAULT_POOL_SIZE`](Self::DEFAULT_POOL_SIZE) clients, used in turn, each reconnected
/// on demand after its connection closed (so the store outlives a database restart; a request during the
/// outage fails, and the layer answers `503` when failing closed). Statements sent to one
/// client are pipelined. [`new`](Self::new) uses one client you created, never replaced.
/// Clones share the clients and the round-trip counter.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use steadfast_idempotency::{IdempotencyLayer, PostgresStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let (client, connection) =
///     tokio_postgres::connect("postgres://postgres@127.0.0.1/app", tokio_postgres::NoTls).await?;
/// tokio::spawn(connection);
/// PostgresStore::migrate(&client, "steadfast_idempotency").await?; // at startup
///
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
/// let reaper = store.clone();
/// tokio::spawn(async move {
///     let mut every = tokio::time::interval(Duration::from_secs(300));
///     loop {
///         every.tick().await;
///         let _ = reaper.reap_expired().await;
///     }
/// });
/// let layer = IdempotencyLayer::builder(store).build()?;
/// # drop(layer);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    connection: Arc<Connection>,
    sql: Arc<Sql>,
    round_trips: Arc<AtomicU64>,
}

impl PostgresStore {
    /// The table name when none is set: `steadfast_idempotency`.
    pub const DEFAULT_TABLE: &'static str = "steadfast_idempotency";

    /// The clients [`connect`](Self::connect) keeps: 4, enough to keep a few statements
    /// executing at once on the server (each connection runs one at a time) without
    /// taking many of its connection slots.
    pub const DEFAULT_POOL_SIZE: usize = 4;

    /// Rows [`reap_expired`](Self::reap_expired) deletes per statement: 10 000, so no
    /// single statement locks a large part of the table.
    pub const REAP_BATCH: i64 = 10_000;

    /// Creates the table `table` (taken literally, quoted), its token sequence and its
    /// expiry index, if they do not exist (see the type docs for the schema). Safe to run
    /// from every replica at startup: concurrent runs serialize on an advisory lock, in
    /// one transaction. It never drops or alters anything.
    ///
    /// # Errors
    ///
    /// The database's error (unreachable, no `CREATE` privilege).
    pub async fn migrate(client: &Client, table: &str) -> Result<(), tokio_postgres::Error> {
        client.batch_execute(&Sql::new(table).migrate).await
    }

    /// A store on `client` (whose connection future the caller has spawned), using the
    /// table [`DEFAULT_TABLE`](Self::DEFAULT_TABLE). The client is never replaced: once its
    /// connection closes, every operation fails.
    pub fn new(client: impl Into<Arc<Client>>) -> Self {
        Self::with_connection(Connection::Fixed(client.into()))
    }

    /// Connects without TLS using `params` (a URL such as `postgres://user@host:5432/db`,
    /// or a `key=value` string), with a pool of
    /// [`DEFAULT_POOL_SIZE`](Self::DEFAULT_POOL_SIZE) reconnecting clients; the first
    /// connects now, the others on first use. Each connection is spawned on the current
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// The database's error when `params` cannot be parsed or the first connection fails.
    pub async fn connect(params: &str) -> Result<Self, tokio_postgres::Error> {
        let config: Config = params.parse()?;
        let store = Self::with_connector(PostgresStore::DEFAULT_POOL_SIZE, move || {
            let config = config.clone();
            async move {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::warn!(
                            target: "steadfast_idempotency",
                            error = %err,
                            "postgres idempotency store: connection closed"
                        );
                    }
                });
                Ok(client)
            }
        });
        store.connection.client().await?;
        Ok(store)
    }

    /// A store with a pool of `size` clients (at least 1) from `connect`, which must spawn
    /// the connection future as [`connect`](Self::connect) does; it is called on a slot's
    /// first use and again whenever that slot's client has closed. Use it for TLS or
    /// custom settings. Connects lazily.
    pub fn with_connector<F, Fut>(size: usize, connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Client, tokio_postgres::Error>> + Send + 'static,
    {
        let slots = (0..size.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Self::with_connection(Connection::Pool {
            // Boxed once per connection, not per operation.
            connect: Box::new(move || Box::pin(connect())),
            slots,
            next: AtomicUsize::new(0),
        })
    }

    fn with_connection(connection: Connection) -> Self {
        Self {
            connection: Arc::new(connection),
            sql: Arc::new(Sql::new(PostgresStore::DEFAULT_TABLE)),
            round_trips: Arc::default(),
        }
    }

    /// Uses the table `table` (default [`DEFAULT_TABLE`](Self::DEFAULT_TABLE)), taken
    /// literally (quoted); create it with [`migrate`](Self::migrate).
    #[must_use]
    pub fn with_table(mut self, table: &str) -> Self {
        self.sql = Arc::new(Sql::new(table));
        self
    }

    /// The table as it appears in the statements, quoted.
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    /// Statements sent by this store and its clones so far (connecting not counted).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Deletes every row whose lease or ttl has passed (and every released row), in
    /// batches of [`REAP_BATCH`](Self::REAP_BATCH) rows per statement; returns how many.
    /// Rows locked by a concurrent claim or reaper are skipped.
    ///
    /// # Errors
    ///
    /// The database's error; the batches before it stay deleted.
    pub async fn reap_expired(&self) -> Result<u64, BoxError> {
        let client = self.connection.client().await?;
        let mut total = 0;
        loop {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let deleted = client.execute_typed(&self.sql.reap, &[]).await?;
            total += deleted;
            if deleted < PostgresStore::REAP_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// Runs `run` with a client, counting one round trip.
    fn op<T, F, Fut>(&self, run: F) -> BoxStoreFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Client>, Arc<Sql>, Arc<AtomicU64>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
    {
        let (connection, sql, round_trips) = (
            self.connection.clone(),
            self.sql.clone(),
            self.round_trips.clone(),
        );
        // The one place this store boxes (see the `Future` type of its `IdempotencyStore`
        // impl for why).
        Box::pin(async move {
            let client = connection.client().await?;
            run(client, sql, round_trips).await
        })
    }
}

/// Whole microseconds, rounded up, at most a century.
fn micros(duration: Duration) -> i64 {
    let micros = duration.as_nanos().div_ceil(1_000);
    i64::try_from(micros).unwrap_or(i64::MAX).min(MAX_MICROS)
}

fn token_param(token: FencingToken) -> Result<i64, BoxError> {
    i64::try_from(token.get()).map_err(|_| "fencing token out of PostgreSQL's bigint range".into())
}

fn token_from(value: i64) -> Result<FencingToken, CorruptRecord> {
    u64::try_from(value)
        .map(FencingToken::new)
        .map_err(|_| CorruptRecord::new("negative token"))
}

/// A row of `(acquired, token, state, fingerprint, status, headers, body, trailers)`.
fn decode_row(row: &Row) -> Result<Claim, BoxError> {
    let token = token_from(row.try_get(1)?)?;
    if row.try_get::<_, bool>(0)? {
        return Ok(Claim::Acquired(token));
    }
    let state: &str = row.try_get(2)?;
    let fingerprint: &[u8] = row.try_get(3)?;
    let fingerprint = Fingerprint::from_bytes(
        fingerprint
            .try_into()
            .map_err(|_| CorruptRecord::new("fingerprint is not 32 bytes"))?,
    );
    let record = match state {
        "in_flight" => Record::InFlight { fingerprint, token },
        "completed" => {
            let status: Option<i16> = row.try_get(4)?;
            let status = status
                .and_then(|s| u16::try_from(s).ok())
                .ok_or(CorruptRecord::new("invalid status code"))?;
            let headers: Option<&[u8]> = row.try_get(5)?;
            let body: Option<&[u8]> = row.try_get(6)?;
            let trailers: Option<&[u8]> = row.try_get(7)?;
            let headers = headers.map_or_else(|| Ok(HeaderMap::new()), codec::decode_map)?;
            let trailers = trailers.map(codec::decode_map).transpose()?;
            Record::Completed {
                fingerprint,
                response: StoredResponse::with_parts(
                    codec::decode_status(status)?,
                    headers,
                    Bytes::copy_from_slice(body.unwrap_or_default()),
                    trailers,
                ),
            }
        }
        _ => return Err(CorruptRecord::new("unknown state").into()),
    };
    Ok(Claim::Existing(record))
}

fn write_outcome(updated: u64) -> WriteOutcome {
    if updated == 1 {
        WriteOutcome::Applied
    } else {
        WriteOutcome::Superseded
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pool = match &*self.connection {
            Connection::Fixed(_) => 0,
            Connection::Pool { slots, .. } => slots.len(),
        };
        f.debug_struct("PostgresStore")
            .field("table", &self.sql.table_name)
            .field("pool", &pool)
            .field("round_trips", &self.round_trips())
            .finish_non_exhaustive()
    }
}

impl IdempotencyStore for PostgresStore {
    // Boxed on purpose: each operation is a network round trip to PostgreSQL, so one allocation
    // beside it is noise, and naming the client library's futures would tie our public
    // type to its internals (see `IdempotencyStore`, "Why associated future types").
    type Future<T: Send + 'static> = BoxStoreFuture<T>;

    fn claim(
        &self,
        key: &StoreKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Self::Future<Claim> {
        let (key, fingerprint, lease) = (*key, *fingerprint, micros(lease));
        self.op(move |client, sql, round_trips| async move {
            let key: &[u8] = key.as_bytes();
            let fingerprint: &[u8] = fingerprint.as_bytes();
            let params: [(&(dyn ToSql + Sync), Type); 3] = [
                (&key, Type::BYTEA),
                (&fingerprint, Type::BYTEA),
                (&lease, Type::INT8),
            ];
            for _ in 0..CLAIM_ATTEMPTS {
                round_trips.fetch_add(1, Ordering::Relaxed);
                let row = client.query_typed_opt(&sql.claim, &params).await?;
                if let Some(row) = row {
                    return decode_row(&row);
                }
            }
            Err("idempotency claim kept racing with concurrent changes of its row".into())
        })
    }

    fn complete(
        &self,
        key: &StoreKey,
        token: FencingToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Self::Future<WriteOutcome> {
        let (key, ttl) = (*key, micros(ttl));
        self.op(move |client, sql, round_trips| async move {
            let token = token_param(token)?;
            let status = i16::try_from(response.status().as_u16())?;
            let mut headers = Vec::new();
            codec::encode_map(response.headers(), &mut headers)?;
            let trailers = match response.trailers() {
                Some(map) => {
                    let mut out = Vec::new();
                    codec::encode_map(map, &mut out)?;
                    Some(out)
                }
                None => None,
            };
            let key: &[u8] = key.as_bytes();
            let body: &[u8] = response.body();
            let params: [(&(dyn ToSql + Sync), Type); 7] = [
                (&key, Type::BYTEA),
                (&token, Type::INT8),
                (&ttl, Type::INT8),
                (&status, Type::INT2),
                (&headers, Type::BYTEA),
                (&body, Type::BYTEA),
                (&trailers, Type::BYTEA),
            ];
            round_trips.fetch_add(1, Ordering::Relaxed);
            Ok(write_outcome(
                client.execute_typed(&sql.complete, &params).await?,
            ))
        })
    }

    fn release(&self, key: &StoreKey, token: FencingToken) -> Self::Future<WriteOutcome> {
        let key = *key;
        self.op(move |client, sql, round_trips| async move {
            let token = token_param(token)?;
            let key: &[u8] = key.as_bytes();
            let params: [(&(dyn ToSql + Sync), Type); 2] =
                [(&key, Type::BYTEA), (&token, Type::INT8)];
            round_trips.fetch_add(1, Ordering::Relaxed);
            Ok(write_outcome(
                client.execute_typed(&sql.release, &params).await?,
            ))
        })
    }

    fn get(&self, key: &StoreKey) -> Self::Future<Option<Record>> {
        let key = *key;
        self.op(move |client, sql, round_trips| async move {
            let key: &[u8] = key.as_bytes();
            round_trips.fetch_add(1, Ordering::Relaxed);
            let row = client
                .query_typed_opt(&sql.get, &[(&key, Type::BYTEA)])
                .await?;
            match row.map(|row| decode_row(&row)).transpose()? {
                Some(Claim::Existing(record)) => Ok(Some(record)),
                Some(Claim::Acquired(_)) => Err(CorruptRecord::new("unexpected row").into()),
                None => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        let sql = Sql::new("my \"idem's\"");
        assert_eq!(sql.table, "\"my \"\"idem's\"\"\"");
        assert!(
            sql.claim
                .contains("nextval('\"my \"\"idem''s\"\"_token_seq\"')")
        );
        assert!(sql.migrate.contains("OWNED BY \"my \"\"idem's\"\"\".token"));
    }

    #[test]
    fn durations_round_up_to_whole_microseconds() {
        assert_eq!(micros(Duration::from_nanos(1_001)), 2);
        assert_eq!(micros(Duration::MAX), MAX_MICROS);
        assert_eq!(micros(Duration::ZERO), 0);
    }

    #[test]
    fn tokens_out_of_range_are_errors() {
        assert!(token_param(FencingToken::new(u64::MAX)).is_err());
        assert_eq!(token_param(FencingToken::new(7)).unwrap(), 7);
        assert_eq!(token_from(-1).unwrap_err().reason(), "negative token");
    }
}
