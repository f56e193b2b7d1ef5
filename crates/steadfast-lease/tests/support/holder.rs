//! The real backends behind one type, a fenced resource in each, and the child holder: a
//! `Singleton` run in a separate process (this test binary re-executed) so that the parent
//! can `SIGSTOP` or `SIGKILL` it.
//!
//! # The fenced resource, per backend
//!
//! The in-memory [`FenceGate`](steadfast_lease::FenceGate) cannot be shared across
//! processes, so the resource lives in the backend itself and checks the token there, in
//! the same atomic step as the write. Every accepted write appends `(holder, token, unit)`
//! to a log the parent reads back in order.
//!
//! - **PostgreSQL**: the crate's documented "fenced write guarded inside PostgreSQL":
//!   `INSERT INTO writes … SELECT … WHERE <PostgresLeaseStore::fence_predicate>`, which
//!   holds only while the token is the live lease (its `FOR SHARE` lock keeps a takeover
//!   out until the write commits). Log order: a `bigserial`.
//! - **Redis**: the `FenceGate` rules in one Lua script over a hash `(token, holder)`:
//!   refuse a lower token, or an equal token from another holder; otherwise record the new
//!   maximum and `RPUSH` the write. Log order: the list.
//! - **etcd**: a transaction comparing the lease key's create revision with the token (the
//!   crate's documented fence inside etcd), putting the write under `writes/`. Log order:
//!   mod revisions.
//!
//! # The child holder
//!
//! [`spawn_holder`] starts the ignored test `child_holder` of the current test binary with
//! the variables below; [`child_main`] (that test's body) runs a `Singleton` whose job
//! prints one line per event (`EVENT <kind> <token> …`):
//!
//! - `lead <token>`: the job started (a new term);
//! - every [`WORK`]: it checks `guard.is_valid()`; if valid, `attempt <token> <unit>
//!   <checked_at_ns>` (the wall time of the check) and the fenced write, then `write <token>
//!   <unit> ok|rejected|error`; if not, `lost <token> check` and no more work;
//! - `lost <token> signal`: `guard.lost()` fired (a watcher task);
//! - `dropped <token>`: the runner dropped the job;
//! - with the stale probe: right after the loss, one deliberately stale write with the old
//!   token (a write that was delayed past the loss), `stale <token> ok|rejected`.

use std::sync::Arc;
use std::time::Duration;

use steadfast_core::clock::{SystemClock, WallClock};
#[cfg(feature = "etcd")]
use steadfast_lease::EtcdLeaseStore;
#[cfg(feature = "postgres")]
use steadfast_lease::PostgresLeaseStore;
#[cfg(feature = "redis")]
use steadfast_lease::RedisLeaseStore;
use steadfast_lease::{
    FencingToken, Lease, LeaseError, LeaseGuard, LeaseHolder, LeaseStore, LeaseTerms, Singleton,
    StoreError,
};

use super::process::{ChildProcess, backend_env, split_url, unique};

/// The lease every child holder contends for, unless told another.
pub const NAME: &str = "job";
/// How often the child's job does a unit of work.
pub const WORK: Duration = Duration::from_millis(50);
/// The unit number of the stale probe's write.
pub const STALE_UNIT: u64 = 999_999;

const CHILD: &str = "STEADFAST_LEASE_CHILD";
const CHILD_URL: &str = "STEADFAST_LEASE_CHILD_URL";
const CHILD_NAMESPACE: &str = "STEADFAST_LEASE_CHILD_NAMESPACE";
const CHILD_NAME: &str = "STEADFAST_LEASE_CHILD_NAME";
const CHILD_HOLDER: &str = "STEADFAST_LEASE_CHILD_HOLDER";
const CHILD_TTL_MS: &str = "STEADFAST_LEASE_CHILD_TTL_MS";
const CHILD_RETRY_MS: &str = "STEADFAST_LEASE_CHILD_RETRY_MS";
const CHILD_STALE_PROBE: &str = "STEADFAST_LEASE_CHILD_STALE_PROBE";

/// A real backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `RedisLeaseStore`.
    Redis,
    /// `PostgresLeaseStore`.
    Postgres,
    /// `EtcdLeaseStore`.
    Etcd,
}

impl Kind {
    /// The variable naming its server.
    pub fn var(self) -> &'static str {
        match self {
            Self::Redis => "STEADFAST_REDIS_URL",
            Self::Postgres => "STEADFAST_POSTGRES_URL",
            Self::Etcd => "STEADFAST_ETCD_ENDPOINTS",
        }
    }

    /// Its name in messages and in the child's variables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Postgres => "postgres",
            Self::Etcd => "etcd",
        }
    }

    fn parse(label: &str) -> Self {
        match label {
            "redis" => Self::Redis,
            "postgres" => Self::Postgres,
            "etcd" => Self::Etcd,
            other => panic!("unknown backend {other:?}"),
        }
    }

    /// The server's port when its URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Redis => 6379,
            Self::Postgres => 5432,
            Self::Etcd => 2379,
        }
    }
}

/// An isolated namespace (key prefix or schema) on one backend server.
#[derive(Debug, Clone)]
pub struct Target {
    /// The backend.
    pub kind: Kind,
    /// The URL (etcd: the first endpoint).
    pub url: String,
    /// Redis and etcd: the key prefix; PostgreSQL: the schema.
    pub namespace: String,
}

impl Target {
    /// A fresh namespace for `test` on the server named by the backend's variable, or
    /// `None` (after printing `skipped: …`) when it is unset.
    ///
    /// # Panics
    ///
    /// When the variable is unset and `CI=true`.
    pub fn from_env(kind: Kind, test: &str) -> Option<Self> {
        let url = backend_env(kind.var())?;
        let url = url.split(',').next().unwrap_or_default().trim().to_owned();
        let namespace = match kind {
            Kind::Redis => format!("steadfast-test:{}:", unique(test)),
            Kind::Postgres => {
                let mut schema = format!("steadfast_test_{}", unique(test));
                schema.truncate(63);
                schema
            }
            Kind::Etcd => format!("steadfast-test/{}/", unique(test)),
        };
        Some(Self {
            kind,
            url,
            namespace,
        })
    }

    /// The same namespace through `127.0.0.1:port` (a proxy); returns the upstream host
    /// and port too.
    pub fn via_port(&self, port: u16) -> (Self, String, u16) {
        let (head, host, upstream, rest) = split_url(&self.url, self.kind.default_port());
        let proxied = Self {
            url: format!("{head}127.0.0.1:{port}{rest}"),
            ..self.clone()
        };
        (proxied, host, upstream)
    }

    /// Creates what the namespace needs (PostgreSQL: the schema, the lease table and the
    /// resource's table).
    pub async fn setup(&self) {
        match self.kind {
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                let store = self.postgres_store().await;
                store.ensure_schema().await.expect("create the lease table");
                let client = pg_connect(&self.url).await;
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS \"{}\".writes (
                             seq    bigserial PRIMARY KEY,
                             holder text      NOT NULL,
                             token  bigint    NOT NULL,
                             unit   bigint    NOT NULL
                         )",
                        self.namespace
                    ))
                    .await
                    .expect("create the resource table");
            }
            _ => {}
        }
    }

    #[cfg(feature = "postgres")]
    async fn postgres_store(&self) -> PostgresLeaseStore {
        PostgresLeaseStore::connect(&self.url)
            .await
            .expect("connect to PostgreSQL")
            .with_schema(&self.namespace)
    }

    #[cfg(feature = "etcd")]
    async fn etcd_store(&self) -> EtcdLeaseStore {
        EtcdLeaseStore::connect([self.url.as_str()])
            .await
            .expect("connect to etcd")
            .with_prefix(self.namespace.as_str())
    }

    /// A store on the namespace, with its own connection.
    pub async fn store(&self) -> Store {
        match self.kind {
            #[cfg(feature = "redis")]
            Kind::Redis => Store::Redis(
                RedisLeaseStore::connect(&self.url)
                    .await
                    .expect("connect to Redis")
                    .with_prefix(self.namespace.as_str()),
            ),
            #[cfg(feature = "postgres")]
            Kind::Postgres => Store::Postgres(self.postgres_store().await),
            #[cfg(feature = "etcd")]
            Kind::Etcd => Store::Etcd(Box::new(self.etcd_store().await)),
            #[allow(unreachable_patterns)]
            other => panic!("the {} feature is off", other.label()),
        }
    }

    /// Removes the namespace (test data only: stores never delete their records).
    pub async fn teardown(&self) {
        match self.kind {
            #[cfg(feature = "redis")]
            Kind::Redis => {
                let mut connection = redis_connect(&self.url).await;
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.namespace))
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                if !keys.is_empty() {
                    let () = redis::cmd("DEL")
                        .arg(keys)
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                }
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                pg_connect(&self.url)
                    .await
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                        self.namespace
                    ))
                    .await
                    .unwrap();
            }
            #[cfg(feature = "etcd")]
            Kind::Etcd => {
                let store = self.etcd_store().await;
                store
                    .client()
                    .kv_client()
                    .delete(
                        self.namespace.as_str(),
                        Some(etcd_client::DeleteOptions::new().with_prefix()),
                    )
                    .await
                    .unwrap();
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (CHILD, self.kind.label().to_owned()),
            (CHILD_URL, self.url.clone()),
            (CHILD_NAMESPACE, self.namespace.clone()),
        ]
    }

    fn from_child_env() -> Option<Self> {
        let kind = Kind::parse(&std::env::var(CHILD).ok()?);
        Some(Self {
            kind,
            url: std::env::var(CHILD_URL).unwrap(),
            namespace: std::env::var(CHILD_NAMESPACE).unwrap(),
        })
    }
}

#[cfg(feature = "postgres")]
async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

#[cfg(feature = "redis")]
async fn redis_connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// One of the real stores, chosen at run time (the trait is not dyn-compatible: an enum
/// delegating to the backends, as the `LeaseStore` docs suggest).
#[derive(Clone)]
pub enum Store {
    /// Redis.
    #[cfg(feature = "redis")]
    Redis(RedisLeaseStore),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PostgresLeaseStore),
    /// Boxed: an etcd client is a few kilobytes.
    #[cfg(feature = "etcd")]
    Etcd(Box<EtcdLeaseStore>),
}

macro_rules! each {
    ($store:expr, $inner:ident => $call:expr) => {
        match $store {
            #[cfg(feature = "redis")]
            Store::Redis($inner) => $call,
            #[cfg(feature = "postgres")]
            Store::Postgres($inner) => $call,
            #[cfg(feature = "etcd")]
            Store::Etcd($inner) => $call,
        }
    };
}

impl LeaseStore for Store {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        each!(self, store => store.try_acquire(name, holder, terms).await)
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        each!(self, store => store.renew(lease).await)
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        each!(self, store => store.release(lease).await)
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        each!(self, store => store.current(name).await)
    }
}

/// `FenceGate`'s rules inside Redis. KEYS: the gate's hash, the log list. ARGV: holder,
/// token, unit. Returns 1 (written) or 0 (fenced off).
#[cfg(feature = "redis")]
const REDIS_FENCED_WRITE: &str = r"
local token = tonumber(ARGV[2])
local max = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
local holder = redis.call('HGET', KEYS[1], 'holder')
if token < max or (token == max and holder ~= ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'holder', ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
return 1
";

/// The protected resource of a namespace, fenced inside its backend (see the module docs).
pub enum Resource {
    /// The gate hash and the log list, written by [`REDIS_FENCED_WRITE`].
    #[cfg(feature = "redis")]
    Redis {
        connection: redis::aio::MultiplexedConnection,
        script: redis::Script,
        gate: String,
        log: String,
    },
    /// The `writes` table; `write` is the fenced `INSERT`, `log` the ordered `SELECT`.
    #[cfg(feature = "postgres")]
    Postgres {
        client: tokio_postgres::Client,
        write: String,
        log: String,
    },
    /// Keys under the `log` prefix, put by transactions on the lease key's create
    /// revision.
    #[cfg(feature = "etcd")]
    Etcd {
        store: Box<EtcdLeaseStore>,
        log: String,
    },
}

/// One accepted write, as the resource logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Who wrote.
    pub holder: String,
    /// With which token.
    pub token: u64,
    /// Which unit of work (the parent writes 0, the stale probe [`STALE_UNIT`]).
    pub unit: u64,
}

impl Written {
    fn parse(value: &str) -> Self {
        let mut words = value.split(' ');
        let mut next = || words.next().expect("holder token unit");
        let holder = next().to_owned();
        Self {
            holder,
            token: next().parse().unwrap(),
            unit: next().parse().unwrap(),
        }
    }
}

impl Resource {
    /// Connects to the resource of `target` (set up by [`Target::setup`]).
    pub async fn connect(target: &Target) -> Self {
        let ns = &target.namespace;
        match target.kind {
            #[cfg(feature = "redis")]
            Kind::Redis => Self::Redis {
                connection: redis_connect(&target.url).await,
                script: redis::Script::new(REDIS_FENCED_WRITE),
                gate: format!("{ns}gate"),
                log: format!("{ns}writes"),
            },
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                let store = target.postgres_store().await;
                let write = format!(
                    "INSERT INTO \"{ns}\".writes (holder, token, unit) \
                     SELECT ($3)::text, ($2)::int8, ($4)::int8 WHERE {}",
                    store.fence_predicate("$1", "$2")
                );
                Self::Postgres {
                    client: pg_connect(&target.url).await,
                    write,
                    log: format!("SELECT holder, token, unit FROM \"{ns}\".writes ORDER BY seq"),
                }
            }
            #[cfg(feature = "etcd")]
            Kind::Etcd => Self::Etcd {
                store: Box::new(target.etcd_store().await),
                log: format!("{ns}writes/"),
            },
            #[allow(unreachable_patterns)]
            other => panic!("the {} feature is off", other.label()),
        }
    }

    /// Writes `unit` as `holder` with `token` if the fence admits it: `Ok(true)` when
    /// written, `Ok(false)` when fenced off.
    pub async fn write(
        &self,
        name: &str,
        holder: &str,
        token: FencingToken,
        unit: u64,
    ) -> Result<bool, String> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis {
                connection,
                script,
                gate,
                log,
            } => {
                let _ = name; // the gate is the resource's own, whatever the lease
                let written: i64 = script
                    .key(gate)
                    .key(log)
                    .arg(holder)
                    .arg(token.get())
                    .arg(unit)
                    .invoke_async(&mut connection.clone())
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(written == 1)
            }
            #[cfg(feature = "postgres")]
            Self::Postgres { client, write, .. } => {
                let token = i64::try_from(token.get()).unwrap();
                let unit = i64::try_from(unit).unwrap();
                let written = client
                    .execute(write.as_str(), &[&name, &token, &holder, &unit])
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(written == 1)
            }
            #[cfg(feature = "etcd")]
            Self::Etcd { store, log } => {
                use etcd_client::{Compare, CompareOp, Txn, TxnOp};
                let revision = i64::try_from(token.get()).unwrap();
                let txn = Txn::new()
                    .when([Compare::create_revision(
                        store.lease_key(name),
                        CompareOp::Equal,
                        revision,
                    )])
                    .and_then([TxnOp::put(
                        format!("{log}{holder}/{unit:08}"),
                        format!("{holder} {token} {unit}"),
                        None,
                    )]);
                let response = store
                    .client()
                    .kv_client()
                    .txn(txn)
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(response.succeeded())
            }
        }
    }

    /// Every accepted write, in the order the resource accepted them.
    pub async fn log(&self) -> Vec<Written> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis {
                connection, log, ..
            } => {
                let values: Vec<String> = redis::cmd("LRANGE")
                    .arg(log)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut connection.clone())
                    .await
                    .unwrap();
                values.iter().map(|value| Written::parse(value)).collect()
            }
            #[cfg(feature = "postgres")]
            Self::Postgres { client, log, .. } => client
                .query(log.as_str(), &[])
                .await
                .unwrap()
                .iter()
                .map(|row| Written {
                    holder: row.get(0),
                    token: u64::try_from(row.get::<_, i64>(1)).unwrap(),
                    unit: u64::try_from(row.get::<_, i64>(2)).unwrap(),
                })
                .collect(),
            #[cfg(feature = "etcd")]
            Self::Etcd { store, log } => {
                let response = store
                    .client()
                    .kv_client()
                    .get(
                        log.as_str(),
                        Some(etcd_client::GetOptions::new().with_prefix()),
                    )
                    .await
                    .unwrap();
                let mut kvs: Vec<_> = response
                    .kvs()
                    .iter()
                    .map(|kv| (kv.mod_revision(), Written::parse(kv.value_str().unwrap())))
                    .collect();
                kvs.sort_by_key(|(revision, _)| *revision);
                kvs.into_iter().map(|(_, written)| written).collect()
            }
        }
    }
}

/// What a child holder is told.
#[derive(Debug, Clone)]
pub struct HolderSpec {
    /// The lease's name.
    pub name: String,
    /// The child's holder id.
    pub holder: String,
    /// The child's ttl.
    pub ttl: Duration,
    /// The child's retry period.
    pub retry: Duration,
    /// Whether it attempts one stale write right after a loss.
    pub stale_probe: bool,
}

/// Starts the ignored test `child_test` of this test binary as a child holder on
/// `target` (see the module docs).
pub fn spawn_holder(child_test: &str, target: &Target, spec: &HolderSpec) -> ChildProcess {
    let mut envs = target.to_env();
    envs.extend([
        (CHILD_NAME, spec.name.clone()),
        (CHILD_HOLDER, spec.holder.clone()),
        (CHILD_TTL_MS, spec.ttl.as_millis().to_string()),
        (CHILD_RETRY_MS, spec.retry.as_millis().to_string()),
        (CHILD_STALE_PROBE, u8::from(spec.stale_probe).to_string()),
    ]);
    ChildProcess::spawn_test(child_test, &envs, &format!("child holder {}", spec.holder))
}

fn millis_var(var: &str) -> Duration {
    Duration::from_millis(std::env::var(var).unwrap().parse().unwrap())
}

/// Prints the instant it is dropped: when the runner cancels the job.
struct Dropped(u64);

impl Drop for Dropped {
    fn drop(&mut self) {
        println!("EVENT dropped {}", self.0);
    }
}

fn verdict(result: &Result<bool, String>) -> String {
    match result {
        Ok(true) => "ok".to_owned(),
        Ok(false) => "rejected".to_owned(),
        Err(err) => format!("error {err}"),
    }
}

/// The body of the child test: runs the holder described by the variables, forever (the
/// parent kills it). Without them (the ignored test run by hand), it returns at once.
pub async fn child_main() {
    let Some(target) = Target::from_child_env() else {
        eprintln!("not started by a fault test as a child holder: nothing to do");
        return;
    };
    let spec = HolderSpec {
        name: std::env::var(CHILD_NAME).unwrap(),
        holder: std::env::var(CHILD_HOLDER).unwrap(),
        ttl: millis_var(CHILD_TTL_MS),
        retry: millis_var(CHILD_RETRY_MS),
        stale_probe: std::env::var(CHILD_STALE_PROBE).is_ok_and(|probe| probe == "1"),
    };
    let store = target.store().await;
    let resource = Arc::new(Resource::connect(&target).await);
    let singleton = Singleton::builder(store, spec.name.as_str(), spec.holder.as_str())
        .ttl(spec.ttl)
        .retry_period(spec.retry)
        .build()
        .unwrap();
    let stale_probe = spec.stale_probe;
    let _ = singleton
        .run(move |guard: LeaseGuard| holder_job(guard, resource.clone(), stale_probe))
        .await;
}

async fn holder_job(guard: LeaseGuard, resource: Arc<Resource>, stale_probe: bool) {
    let token = guard.token();
    println!("EVENT lead {token}");
    let _dropped = Dropped(token.get());
    let watcher = guard.clone();
    let probe = resource.clone();
    tokio::spawn(async move {
        watcher.lost().await;
        println!("EVENT lost {token} signal");
        if stale_probe {
            let result = probe
                .write(watcher.name(), watcher.holder(), token, STALE_UNIT)
                .await;
            println!("EVENT stale {token} {}", verdict(&result));
        }
    });
    for unit in 1.. {
        tokio::select! {
            biased;
            () = guard.lost() => {}
            () = tokio::time::sleep(WORK) => {}
        }
        if !guard.is_valid() {
            println!("EVENT lost {token} check");
            std::future::pending::<()>().await;
        }
        let checked_at = SystemClock.since_epoch().as_nanos();
        println!("EVENT attempt {token} {unit} {checked_at}");
        let result = resource
            .write(guard.name(), guard.holder(), token, unit)
            .await;
        println!("EVENT write {token} {unit} {}", verdict(&result));
    }
}
