//! [`PostgresLeaseStore`]: leases in a PostgreSQL table (feature `postgres`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{LeaseError, LeaseLost, StoreError};
use crate::lease::{FencingToken, Lease, LeaseHolder, LeaseTerms};
use crate::store::LeaseStore;

/// The table name when none is set.
const DEFAULT_TABLE: &str = "steadfast_leases";

/// The longest ttl or takeover delay sent to the database: one century, in microseconds.
const MAX_MICROS: i64 = 100 * 365 * 86_400 * 1_000_000;

/// The advisory lock key `ensure_schema` serializes migrations on ("STEADFAS").
const MIGRATION_LOCK: i64 = 0x5354_4541_4446_4153;

type Connecting = Pin<Box<dyn Future<Output = Result<Client, tokio_postgres::Error>> + Send>>;
type Connector = Box<dyn Fn() -> Connecting + Send + Sync>;

enum Connection {
    /// A client given by the caller; never replaced.
    Fixed(Arc<Client>),
    /// Connects on demand, and again whenever the current client has closed.
    Reconnecting {
        connect: Connector,
        client: tokio::sync::Mutex<Option<Arc<Client>>>,
    },
}

/// The statements, built once per table name.
struct Sql {
    /// The schema as given, if any.
    schema_name: Option<String>,
    /// The table as given.
    table_name: String,
    /// The quoted, qualified table.
    table: String,
    /// The quoted schema, if any.
    schema: Option<String>,
    acquire: String,
    renew: String,
    release: String,
    current: String,
}

impl Sql {
    fn new(schema_name: Option<&str>, table_name: &str) -> Self {
        let schema = schema_name.map(quote_identifier);
        let table = match &schema {
            Some(schema) => format!("{schema}.{}", quote_identifier(table_name)),
            None => quote_identifier(table_name),
        };
        // `$n::int8 * interval '1 microsecond'`: durations travel as whole microseconds.
        let acquire = format!(
            "INSERT INTO {table} AS l (name, holder, token, expires_at, takeover_delay, acquired_at) \
             VALUES ($1, $2, 1, clock_timestamp() + $3::int8 * interval '1 microsecond', \
                     $4::int8 * interval '1 microsecond', clock_timestamp()) \
             ON CONFLICT (name) DO UPDATE SET \
               token = l.token + CASE WHEN l.holder = EXCLUDED.holder \
                                       AND l.expires_at > clock_timestamp() THEN 0 ELSE 1 END, \
               acquired_at = CASE WHEN l.holder = EXCLUDED.holder \
                                   AND l.expires_at > clock_timestamp() \
                                  THEN l.acquired_at ELSE clock_timestamp() END, \
               holder = EXCLUDED.holder, \
               expires_at = EXCLUDED.expires_at, \
               takeover_delay = EXCLUDED.takeover_delay \
             WHERE (l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()) \
                OR l.expires_at + l.takeover_delay <= clock_timestamp() \
             RETURNING token"
        );
        let renew = format!(
            "UPDATE {table} SET expires_at = clock_timestamp() + $4::int8 * interval '1 microsecond', \
                                takeover_delay = $5::int8 * interval '1 microsecond' \
             WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()"
        );
        let release = format!(
            "UPDATE {table} SET expires_at = '-infinity' \
             WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()"
        );
        let current = format!(
            "SELECT holder, token, acquired_at FROM {table} \
             WHERE name = $1 AND expires_at > clock_timestamp()"
        );
        Self {
            schema_name: schema_name.map(str::to_owned),
            table_name: table_name.to_owned(),
            table,
            schema,
            acquire,
            renew,
            release,
            current,
        }
    }
}

/// `"ident"`, with embedded quotes doubled: a PostgreSQL identifier taken literally.
fn quote_identifier(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A [`LeaseStore`] in a PostgreSQL table, timed by the database server's clock.
///
/// # The table
///
/// [`ensure_schema`](Self::ensure_schema) creates it (default name `steadfast_leases`, in
/// the connection's `search_path`; see [`with_table`](Self::with_table) and
/// [`with_schema`](Self::with_schema)):
///
/// ```sql
/// CREATE TABLE steadfast_leases (
///     name           text        PRIMARY KEY,
///     holder         text        NOT NULL,
///     token          bigint      NOT NULL,   -- the fencing token; never goes down
///     expires_at     timestamptz NOT NULL,   -- by the database's clock_timestamp()
///     takeover_delay interval    NOT NULL DEFAULT '0',
///     acquired_at    timestamptz NOT NULL DEFAULT clock_timestamp()  -- for display only
/// );
/// ```
///
/// **Rows are never deleted**: a released lease keeps its row with `expires_at =
/// '-infinity'`, so its token never resets. Do not clean the table up.
///
/// # Transitions
///
/// Each is one statement, so one atomic compare-and-set and **one round trip** (sent with
/// `query_typed`/`execute_typed`: Parse, Bind, Describe, Execute and Sync in one flush,
/// no separate prepare):
///
/// - **acquire**: `INSERT … ON CONFLICT (name) DO UPDATE … WHERE (same holder AND not
///   expired) OR expires_at + takeover_delay <= clock_timestamp() RETURNING token`. The
///   token goes up by one unless the same holder still held it. No row returned: someone
///   else holds it. Two contenders for a free name serialize on the row, so exactly one
///   wins.
/// - **renew**: `UPDATE … SET expires_at = clock_timestamp() + ttl WHERE name, holder and
///   token match AND expires_at > clock_timestamp()`; no row updated is
///   [`LeaseError::Lost`].
/// - **release**: the same comparison, setting `expires_at = '-infinity'`.
/// - **current**: `SELECT … WHERE name = $1 AND expires_at > clock_timestamp()`.
///
/// Every time is the database's `clock_timestamp()`: one clock decides expiry, whatever
/// the clients' clocks say. Durations are sent as whole microseconds (rounded up, capped
/// at a century). Connection and I/O errors, and any server error, are [`StoreError`]s.
///
/// # Fenced writes inside PostgreSQL
///
/// When the protected resource lives in the same database, the database can check the
/// token itself: guard each write with [`fence_predicate`](Self::fence_predicate), which
/// expands to
///
/// ```sql
/// EXISTS (SELECT 1 FROM steadfast_leases
///         WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp() FOR SHARE)
/// ```
///
/// `FOR SHARE` locks the lease row until the writing transaction ends, so a takeover
/// (which updates that row) waits for the write to commit and cannot slip in between the
/// check and the write. A write from a stale holder updates zero rows.
///
/// ```no_run
/// use std::time::Duration;
/// use steadfast_lease::{LeaseStore, LeaseTerms, PostgresLeaseStore};
/// use tokio_postgres::NoTls;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let (client, connection) =
///     tokio_postgres::connect("postgres://postgres@127.0.0.1/test", NoTls).await?;
/// tokio::spawn(connection);
/// let client = std::sync::Arc::new(client);
///
/// let store = PostgresLeaseStore::new(client.clone());
/// store.ensure_schema().await?;
/// let terms = LeaseTerms::new(Duration::from_secs(15));
/// let lease = store.try_acquire("billing", "replica-a", terms).await?.expect("free");
///
/// // The write applies only while this token is the live lease.
/// let sql = format!(
///     "UPDATE invoices SET state = 'sent' WHERE id = $3 AND {}",
///     store.fence_predicate("$1", "$2"),
/// );
/// let token = i64::try_from(lease.token().get())?;
/// let updated = client.execute(&sql, &[&lease.name(), &token, &42_i64]).await?;
/// if updated == 0 {
///     // Fenced off (or no such invoice): the lease is gone; stop.
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Connections
///
/// [`connect`](Self::connect) (no TLS) and [`with_connector`](Self::with_connector) (any
/// TLS) reconnect on demand after the connection closes, so the store outlives a database
/// restart; a request during the outage fails with a [`StoreError`].
/// [`new`](Self::new) uses a client you created, which it never replaces. Requests from
/// clones share the client and are pipelined on it.
#[derive(Clone)]
pub struct PostgresLeaseStore {
    connection: Arc<Connection>,
    sql: Arc<Sql>,
}

impl PostgresLeaseStore {
    /// A store on `client` (whose connection future the caller has spawned), using the
    /// table `steadfast_leases`. The client is never replaced: once its connection closes,
    /// every call fails with a [`StoreError`].
    pub fn new(client: impl Into<Arc<Client>>) -> Self {
        Self::with_connection(Connection::Fixed(client.into()))
    }

    /// Connects without TLS using `params` (a URL such as
    /// `postgres://user@host:5432/db`, or a `key=value` string), spawning the connection on
    /// the current tokio runtime, and reconnects the same way whenever the connection
    /// closes.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when `params` cannot be parsed or the first connection fails.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn connect(params: &str) -> Result<Self, StoreError> {
        let config: Config = params.parse().map_err(StoreError::new)?;
        let store = Self::with_connector(move || {
            let config = config.clone();
            async move {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::warn!(
                            target: "steadfast_lease",
                            error = %err,
                            "postgres lease store: connection closed"
                        );
                    }
                });
                Ok(client)
            }
        });
        store.client().await?;
        Ok(store)
    }

    /// A store that gets its clients from `connect` (which must spawn the connection
    /// future, as [`connect`](Self::connect) does): called on first use and again whenever
    /// the client has closed. Use it for TLS or custom settings. Connects lazily.
    pub fn with_connector<F, Fut>(connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Client, tokio_postgres::Error>> + Send + 'static,
    {
        Self::with_connection(Connection::Reconnecting {
            // Boxed once per reconnect, not per lease operation.
            connect: Box::new(move || Box::pin(connect())),
            client: tokio::sync::Mutex::new(None),
        })
    }

    fn with_connection(connection: Connection) -> Self {
        Self {
            connection: Arc::new(connection),
            sql: Arc::new(Sql::new(None, DEFAULT_TABLE)),
        }
    }

    /// Uses the table `table` (default `steadfast_leases`), taken literally (quoted).
    #[must_use]
    pub fn with_table(mut self, table: &str) -> Self {
        self.sql = Arc::new(Sql::new(self.sql.schema_name.as_deref(), table));
        self
    }

    /// Puts the table in the schema `schema` (default: none, so the connection's
    /// `search_path` decides), taken literally (quoted).
    /// [`ensure_schema`](Self::ensure_schema) creates the schema if needed.
    #[must_use]
    pub fn with_schema(mut self, schema: &str) -> Self {
        self.sql = Arc::new(Sql::new(Some(schema), &self.sql.table_name));
        self
    }

    /// The table as it appears in the statements: quoted, schema-qualified when a schema
    /// is set (for example `"app"."steadfast_leases"`).
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    /// Creates the schema (if one is set) and the lease table, if they do not exist. Safe
    /// to run from every replica at startup: concurrent runs serialize on an advisory
    /// lock, in one transaction. It never drops or alters anything.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database is unreachable or refuses (for example, no
    /// `CREATE` privilege).
    pub async fn ensure_schema(&self) -> Result<(), StoreError> {
        let create_schema = match &self.sql.schema {
            Some(schema) => format!("CREATE SCHEMA IF NOT EXISTS {schema};"),
            None => String::new(),
        };
        let table = &self.sql.table;
        // One simple-protocol message: the statements run as one implicit transaction.
        let migration = format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             {create_schema}
             CREATE TABLE IF NOT EXISTS {table} (
                 name           text        PRIMARY KEY,
                 holder         text        NOT NULL,
                 token          bigint      NOT NULL,
                 expires_at     timestamptz NOT NULL,
                 takeover_delay interval    NOT NULL DEFAULT '0',
                 acquired_at    timestamptz NOT NULL DEFAULT clock_timestamp()
             );"
        );
        let client = self.client().await?;
        client.batch_execute(&migration).await.map_err(store_error)
    }

    /// The SQL condition that holds only while `token` is the live lease of `name`: put it
    /// in the `WHERE` clause of a write to fence it inside PostgreSQL (see the type docs).
    /// `name_param` and `token_param` are the placeholders (or expressions) for the lease
    /// name (text) and the token (bigint), for example `"$1"` and `"$2"`.
    pub fn fence_predicate(&self, name_param: &str, token_param: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE name = ({name_param})::text \
             AND token = ({token_param})::int8 AND expires_at > clock_timestamp() FOR SHARE)",
            self.sql.table
        )
    }

    /// A client: the fixed one, or the current one (reconnecting if it has closed).
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        match &*self.connection {
            Connection::Fixed(client) => Ok(client.clone()),
            Connection::Reconnecting { connect, client } => {
                let mut slot = client.lock().await;
                if let Some(current) = slot.as_ref().filter(|c| !c.is_closed()) {
                    return Ok(current.clone());
                }
                *slot = None;
                let fresh = Arc::new(connect().await.map_err(store_error)?);
                *slot = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    async fn acquire_row(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        let (ttl, ttl_us) = granted(terms.ttl());
        let delay_us = micros_ceil(terms.takeover_delay());
        let params: [(&(dyn ToSql + Sync), Type); 4] = [
            (&name, Type::TEXT),
            (&holder, Type::TEXT),
            (&ttl_us, Type::INT8),
            (&delay_us, Type::INT8),
        ];
        let client = self.client().await?;
        let row = client
            .query_typed_opt(&self.sql.acquire, &params)
            .await
            .map_err(store_error)?;
        row.map(|row| {
            let token = token_from(row.try_get(0).map_err(store_error)?)?;
            Ok(Lease::new(
                name,
                holder,
                token,
                LeaseTerms::new(ttl).with_takeover_delay(terms.takeover_delay()),
            ))
        })
        .transpose()
    }

    /// Runs the renew (or, with `release`, the release) statement; `Ok(true)` when it
    /// matched the row.
    async fn compare_and_set(&self, release: bool, lease: &Lease) -> Result<bool, StoreError> {
        let token = i64::try_from(lease.token().get()).map_err(StoreError::new)?;
        let (_, ttl_us) = granted(lease.ttl());
        let delay_us = micros_ceil(lease.terms().takeover_delay());
        let name = lease.name();
        let holder = lease.holder();
        let all: [(&(dyn ToSql + Sync), Type); 5] = [
            (&name, Type::TEXT),
            (&holder, Type::TEXT),
            (&token, Type::INT8),
            (&ttl_us, Type::INT8),
            (&delay_us, Type::INT8),
        ];
        // Release uses the first three parameters only.
        let (sql, params) = if release {
            (&self.sql.release, &all[..3])
        } else {
            (&self.sql.renew, &all[..])
        };
        let client = self.client().await?;
        let updated = client
            .execute_typed(sql, params)
            .await
            .map_err(store_error)?;
        Ok(updated == 1)
    }

    async fn current_row(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_typed_opt(&self.sql.current, &[(&name, Type::TEXT)])
            .await
            .map_err(store_error)?;
        row.map(|row| {
            let holder: String = row.try_get(0).map_err(store_error)?;
            let token = token_from(row.try_get(1).map_err(store_error)?)?;
            let acquired_at: SystemTime = row.try_get(2).map_err(store_error)?;
            Ok(LeaseHolder::new(holder, token).with_acquired_at(acquired_at))
        })
        .transpose()
    }
}

fn token_from(value: i64) -> Result<FencingToken, StoreError> {
    u64::try_from(value)
        .map(FencingToken::new)
        .map_err(|_| StoreError::new(format!("negative lease token in the database: {value}")))
}

/// The ttl the store will honour (capped at a century) and the microseconds sent, rounded
/// up.
fn granted(ttl: Duration) -> (Duration, i64) {
    let micros = micros_ceil(ttl);
    let honoured = Duration::from_micros(u64::try_from(MAX_MICROS).unwrap_or(u64::MAX));
    (ttl.min(honoured), micros)
}

fn micros_ceil(duration: Duration) -> i64 {
    let micros = duration.as_nanos().div_ceil(1_000);
    i64::try_from(micros).unwrap_or(i64::MAX).min(MAX_MICROS)
}

fn store_error(err: tokio_postgres::Error) -> StoreError {
    StoreError::new(err)
}

fn lost(lease: &Lease) -> LeaseError {
    LeaseError::Lost(LeaseLost::new(lease.name_arc().clone(), lease.token()))
}

impl fmt::Debug for PostgresLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reconnecting = matches!(*self.connection, Connection::Reconnecting { .. });
        f.debug_struct("PostgresLeaseStore")
            .field("table", &self.sql.table)
            .field("reconnecting", &reconnecting)
            .finish_non_exhaustive()
    }
}

impl LeaseStore for PostgresLeaseStore {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        self.acquire_row(name, holder, terms).await
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        if self.compare_and_set(false, lease).await? {
            Ok(lease.clone())
        } else {
            Err(lost(lease))
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        if self.compare_and_set(true, lease).await? {
            Ok(())
        } else {
            Err(lost(lease))
        }
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        self.current_row(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        let sql = Sql::new(Some("my \"app\""), "leases");
        assert_eq!(sql.table, "\"my \"\"app\"\"\".\"leases\"");
        assert!(
            sql.acquire
                .starts_with("INSERT INTO \"my \"\"app\"\"\".\"leases\" AS l")
        );
        assert_eq!(Sql::new(None, "t").table, "\"t\"");
    }

    #[test]
    fn durations_round_up_to_whole_microseconds() {
        assert_eq!(granted(Duration::from_nanos(1_001)).1, 2);
        assert_eq!(granted(Duration::MAX).1, MAX_MICROS);
        assert_eq!(micros_ceil(Duration::ZERO), 0);
    }
}
