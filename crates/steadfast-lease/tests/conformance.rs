//! One conformance suite for every [`LeaseStore`] backend: the memory store always, Redis,
//! PostgreSQL and etcd with their features, against the servers named by
//! `STEADFAST_REDIS_URL`, `STEADFAST_POSTGRES_URL` and `STEADFAST_ETCD_ENDPOINTS` (a
//! comma-separated list; `.ci/run` starts them).
//!
//! With a variable unset, that backend's tests print `skipped: … not set` and pass, except
//! under `CI=true`, where they fail: CI must not silently skip a backend.
//!
//! The stores keep real time (Redis's and PostgreSQL's clocks cannot be paused), so the
//! timing checks use short ttls and real sleeps, and assert "still held" only when the
//! check's answer arrived before the ttl could have run out. Every test gets its own
//! namespace (a key prefix, a schema) so servers outliving runs never collide.
//!
//! etcd counts ttls in whole seconds (at least 2 s with its default election timeout) and
//! reaps expired leases every 500 ms, so its backend uses longer ttls and slack, and its
//! tokens (create revisions) increase but are not consecutive.

use std::sync::Arc;
use std::time::Duration;

use steadfast_lease::{
    FenceGate, FencingToken, Lease, LeaseStore, LeaseTerms, MemoryLeaseStore, Singleton,
};
#[cfg(any(feature = "redis", feature = "postgres", feature = "etcd"))]
use steadfast_test_support::backend::backend_env;
#[cfg_attr(
    not(any(feature = "redis", feature = "postgres", feature = "etcd")),
    allow(unused_imports)
)]
use steadfast_test_support::backend::unique;
use tokio::sync::{Barrier, mpsc};
use tokio::time::Instant;

/// A short ttl, for the checks that wait for an expiry.
const SHORT: Duration = Duration::from_millis(300);
/// Slack added after an expiry before checking it, for scheduling noise.
const SLACK: Duration = Duration::from_millis(150);
/// A ttl nothing in a test outlives.
const LONG: Duration = Duration::from_secs(30);
/// Contenders in a race, each with its own connection.
const CONTENDERS: usize = 8;

fn long() -> LeaseTerms {
    LeaseTerms::new(LONG)
}

fn short<B: Backend>() -> LeaseTerms {
    LeaseTerms::new(B::SHORT)
}

/// Checks that `token` follows `previous` (0: none yet): by one when the backend's tokens
/// are consecutive, otherwise just higher.
fn assert_next<B: Backend>(previous: u64, token: FencingToken, what: &str) {
    if B::CONSECUTIVE_TOKENS {
        assert_eq!(token.get(), previous + 1, "{what}");
    } else {
        assert!(token.get() > previous, "{what}: {token:?} after {previous}");
    }
}

/// A backend under test: an isolated namespace on one server.
trait Backend: Sized {
    type Store: LeaseStore + Clone + 'static;

    /// A short ttl, for the checks that wait for an expiry.
    const SHORT: Duration = SHORT;
    /// Slack added after an expiry before checking it.
    const SLACK: Duration = SLACK;
    /// The ttl of the renewal check (renewed after 5/8 of it).
    const RENEW_TTL: Duration = Duration::from_millis(400);
    /// The takeover delay of its check (more than `SLACK`).
    const TAKEOVER_DELAY: Duration = Duration::from_millis(400);
    /// The singletons' ttl in the failover check.
    const FAILOVER_TTL: Duration = Duration::from_millis(600);
    /// Whether tokens go up by exactly one per new holder (etcd's revisions do not).
    const CONSECUTIVE_TOKENS: bool = true;

    /// Sets up a fresh namespace for `test`, or `None` when the backend is skipped.
    async fn setup(test: &str) -> Option<Self>;

    /// A store on the namespace, with its own connection.
    async fn connect(&self) -> Self::Store;

    /// Removes the namespace (test data only: stores never delete their records).
    async fn teardown(self);
}

struct Memory(MemoryLeaseStore);

impl Backend for Memory {
    type Store = MemoryLeaseStore;

    async fn setup(_test: &str) -> Option<Self> {
        Some(Self(MemoryLeaseStore::new()))
    }

    async fn connect(&self) -> MemoryLeaseStore {
        self.0.clone()
    }

    async fn teardown(self) {}
}

#[cfg(feature = "redis")]
struct Redis {
    url: String,
    prefix: String,
}

#[cfg(feature = "redis")]
impl Backend for Redis {
    type Store = steadfast_lease::RedisLeaseStore;

    async fn setup(test: &str) -> Option<Self> {
        let url = backend_env("STEADFAST_REDIS_URL")?;
        let prefix = format!("steadfast-test:{}:", unique(test));
        Some(Self { url, prefix })
    }

    async fn connect(&self) -> Self::Store {
        steadfast_lease::RedisLeaseStore::connect(&self.url)
            .await
            .expect("connect to Redis")
            .with_prefix(self.prefix.as_str())
    }

    async fn teardown(self) {
        let store = self.connect().await;
        let mut connection = store.connection().clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
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
}

#[cfg(feature = "postgres")]
struct Postgres {
    url: String,
    schema: String,
}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    type Store = steadfast_lease::PostgresLeaseStore;

    async fn setup(test: &str) -> Option<Self> {
        let url = backend_env("STEADFAST_POSTGRES_URL")?;
        let mut schema = format!("steadfast_test_{}", unique(test));
        schema.truncate(63);
        let backend = Self { url, schema };
        backend
            .connect()
            .await
            .ensure_schema()
            .await
            .expect("create the lease table");
        Some(backend)
    }

    async fn connect(&self) -> Self::Store {
        steadfast_lease::PostgresLeaseStore::connect(&self.url)
            .await
            .expect("connect to PostgreSQL")
            .with_schema(&self.schema)
    }

    async fn teardown(self) {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .await
            .unwrap();
    }
}

#[cfg(feature = "etcd")]
struct Etcd {
    endpoints: Vec<String>,
    prefix: String,
}

#[cfg(feature = "etcd")]
impl Backend for Etcd {
    type Store = steadfast_lease::EtcdLeaseStore;

    // Whole seconds, at least etcd's default minimum ttl (2 s); expired leases are reaped
    // every 500 ms.
    const SHORT: Duration = Duration::from_secs(2);
    const SLACK: Duration = Duration::from_millis(800);
    const RENEW_TTL: Duration = Duration::from_secs(2);
    const TAKEOVER_DELAY: Duration = Duration::from_secs(2);
    const FAILOVER_TTL: Duration = Duration::from_secs(2);
    const CONSECUTIVE_TOKENS: bool = false;

    async fn setup(test: &str) -> Option<Self> {
        let endpoints = backend_env("STEADFAST_ETCD_ENDPOINTS")?;
        let endpoints = endpoints.split(',').map(str::to_owned).collect();
        let prefix = format!("steadfast-test/{}/", unique(test));
        Some(Self { endpoints, prefix })
    }

    async fn connect(&self) -> Self::Store {
        steadfast_lease::EtcdLeaseStore::connect(&self.endpoints)
            .await
            .expect("connect to etcd")
            .with_prefix(self.prefix.as_str())
    }

    async fn teardown(self) {
        let store = self.connect().await;
        store
            .client()
            .kv_client()
            .delete(
                self.prefix.as_str(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await
            .unwrap();
    }
}

// --- The checks ------------------------------------------------------------------------

/// Acquire, renew, re-acquire by the same holder, release and `current`.
async fn basics<B: Backend>(backend: &B) {
    let store = backend.connect().await;
    assert!(store.current("job").await.unwrap().is_none());

    let a = store.try_acquire("job", "a", long()).await.unwrap();
    let a = a.expect("a free name is acquired");
    assert_eq!((a.name(), a.holder()), ("job", "a"));
    assert_next::<B>(0, a.token(), "first token");
    assert_eq!(a.ttl(), LONG);
    assert!(
        store
            .try_acquire("job", "b", long())
            .await
            .unwrap()
            .is_none()
    );

    let holder = store.current("job").await.unwrap().expect("held");
    assert_eq!((holder.id(), holder.token()), ("a", a.token()));

    let renewed = store.renew(&a).await.unwrap();
    assert_eq!(renewed.token(), a.token());
    let again = store.try_acquire("job", "a", long()).await.unwrap();
    assert_eq!(again.expect("same holder").token(), a.token());

    store.release(&a).await.unwrap();
    assert!(store.current("job").await.unwrap().is_none());
    assert!(store.release(&a).await.unwrap_err().is_lost());
    assert!(store.renew(&a).await.unwrap_err().is_lost());

    let b = store.try_acquire("job", "b", long()).await.unwrap();
    assert_next::<B>(
        a.token().get(),
        b.expect("released").token(),
        "after a release",
    );
    // Another name has its own counter.
    let other = store.try_acquire("other", "a", long()).await.unwrap();
    if B::CONSECUTIVE_TOKENS {
        assert_eq!(other.expect("free").token(), 1.into());
    } else {
        assert!(other.is_some(), "free");
    }
}

/// Renew and release compare name, holder and token: anything forged is lost.
async fn forged_leases_are_lost<B: Backend>(backend: &B) {
    let store = backend.connect().await;
    let lease = store.try_acquire("n", "a", long()).await.unwrap().unwrap();
    let forged = [
        Lease::new("n", "a", FencingToken::new(7), long()),
        Lease::new("n", "b", lease.token(), long()),
        Lease::new("n", "a:1", lease.token(), long()),
        Lease::new("m", "a", lease.token(), long()),
    ];
    for forged in &forged {
        assert!(
            store.renew(forged).await.unwrap_err().is_lost(),
            "{forged:?}"
        );
        assert!(
            store.release(forged).await.unwrap_err().is_lost(),
            "{forged:?}"
        );
    }
    store.renew(&lease).await.unwrap();
    store.release(&lease).await.unwrap();
}

/// Tokens go up by one with every change of holder, and after every release or expiry
/// (even for the same holder), never resetting.
async fn tokens_never_reset<B: Backend>(backend: &B) {
    let store = backend.connect().await;
    let mut last = 0;
    for round in 0..8u64 {
        // Holders change every other round: the same holder after its own release or
        // expiry still gets a new token.
        let holder = format!("h{}", round / 2);
        let terms = if round % 3 == 2 { short::<B>() } else { long() };
        let lease = store.try_acquire("n", &holder, terms).await.unwrap();
        let lease = lease.unwrap_or_else(|| panic!("round {round}: free"));
        assert_next::<B>(last, lease.token(), &format!("round {round}"));
        last = lease.token().get();
        if round % 3 == 2 {
            tokio::time::sleep(B::SHORT + B::SLACK).await; // expires
            assert!(store.current("n").await.unwrap().is_none());
        } else {
            store.release(&lease).await.unwrap();
        }
    }
}

/// `CONTENDERS` tasks, each with its own connection, try to acquire `name` at once;
/// returns the winners' tokens.
async fn race<S: LeaseStore + Clone + 'static>(
    stores: &[S],
    name: &str,
    terms: LeaseTerms,
) -> Vec<FencingToken> {
    let barrier = Arc::new(Barrier::new(stores.len()));
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let (store, barrier, name) = (store.clone(), barrier.clone(), name.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                let holder = format!("c{i}");
                store.try_acquire(&name, &holder, terms).await.unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(lease) = task.await.unwrap() {
            winners.push(lease.token());
        }
    }
    winners
}

/// Contenders racing for a fresh, a released and an expired lease: exactly one wins each
/// time, with the next token.
async fn contenders_race<B: Backend>(backend: &B) {
    let mut stores = Vec::new();
    for _ in 0..CONTENDERS {
        stores.push(backend.connect().await);
    }
    let one_winner = |winners: Vec<FencingToken>, previous: u64, what: &str| {
        assert_eq!(winners.len(), 1, "{what}: winners {winners:?}");
        assert_next::<B>(previous, winners[0], what);
        winners[0].get()
    };
    let mut r0 = 0;
    for name in ["r0", "r1", "r2", "r3"] {
        let token = one_winner(race(&stores, name, short::<B>()).await, 0, name);
        if name == "r0" {
            r0 = token;
        }
    }
    // Released: free at once.
    let holder = stores[0].current("r0").await.unwrap().expect("held");
    let lease = Lease::new("r0", holder.id(), holder.token(), short::<B>());
    stores[0].release(&lease).await.unwrap();
    let r0 = one_winner(race(&stores, "r0", short::<B>()).await, r0, "released");
    // Expired.
    tokio::time::sleep(B::SHORT + B::SLACK).await;
    one_winner(race(&stores, "r0", short::<B>()).await, r0, "expired");
}

/// A lease nobody renews expires after its ttl, by the store's clock: then nobody holds
/// it, its renew and release are lost, and the next holder gets a higher token.
async fn expires_after_ttl<B: Backend>(backend: &B) {
    let store = backend.connect().await;
    let sent = Instant::now();
    let a = store
        .try_acquire("n", "a", short::<B>())
        .await
        .unwrap()
        .unwrap();
    let acquired = Instant::now();
    let held = store.current("n").await.unwrap();
    if sent.elapsed() < B::SHORT {
        assert_eq!(held.expect("within the ttl").token(), a.token());
    }
    tokio::time::sleep_until(acquired + B::SHORT + B::SLACK).await;
    assert!(store.current("n").await.unwrap().is_none());
    assert!(store.renew(&a).await.unwrap_err().is_lost());
    assert!(store.release(&a).await.unwrap_err().is_lost());
    let b = store
        .try_acquire("n", "b", short::<B>())
        .await
        .unwrap()
        .unwrap();
    assert!(b.token() > a.token());
}

/// A renewal restarts the ttl from when the store handles it.
async fn renew_extends<B: Backend>(backend: &B) {
    let store = backend.connect().await;
    let terms = LeaseTerms::new(B::RENEW_TTL);
    let lease = store.try_acquire("n", "a", terms).await.unwrap().unwrap();
    tokio::time::sleep(B::RENEW_TTL * 5 / 8).await;
    let sent = Instant::now();
    store.renew(&lease).await.unwrap();
    let renewed = Instant::now();
    tokio::time::sleep(B::RENEW_TTL * 5 / 8).await; // past the first ttl
    let held = store.current("n").await.unwrap();
    if sent.elapsed() < terms.ttl() {
        assert_eq!(held.expect("renewed").token(), lease.token());
    }
    tokio::time::sleep_until(renewed + terms.ttl() + B::SLACK).await;
    assert!(store.current("n").await.unwrap().is_none());
}

/// A holder that paused past its ttl finds its lease taken: its renew and release are
/// lost, and the new holder's lease is untouched.
async fn stale_holder_is_lost<B: Backend>(backend: &B) {
    let a_store = backend.connect().await;
    let b_store = backend.connect().await;
    let a = a_store
        .try_acquire("n", "a", short::<B>())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(B::SHORT + B::SLACK).await;
    let b = b_store
        .try_acquire("n", "b", long())
        .await
        .unwrap()
        .unwrap();
    assert!(b.token() > a.token());
    assert!(a_store.renew(&a).await.unwrap_err().is_lost());
    assert!(a_store.release(&a).await.unwrap_err().is_lost());
    assert!(
        a_store
            .try_acquire("n", "a", long())
            .await
            .unwrap()
            .is_none()
    );
    b_store.renew(&b).await.unwrap();
    let holder = a_store.current("n").await.unwrap().expect("b holds it");
    assert_eq!((holder.id(), holder.token()), ("b", b.token()));
}

/// After an expiry nobody may take the lease for the takeover delay; after a release
/// anyone may at once.
async fn takeover_delay<B: Backend>(backend: &B) {
    let store = backend.connect().await;
    let delay = B::TAKEOVER_DELAY;
    let terms = short::<B>().with_takeover_delay(delay);
    let sent = Instant::now();
    let a = store.try_acquire("n", "a", terms).await.unwrap().unwrap();
    let acquired = Instant::now();
    tokio::time::sleep_until(acquired + B::SHORT + (B::SLACK + delay) / 2).await;
    assert!(store.current("n").await.unwrap().is_none());
    let b = store.try_acquire("n", "b", long()).await.unwrap();
    let a_again = store.try_acquire("n", "a", long()).await.unwrap();
    if sent.elapsed() < B::SHORT + delay {
        assert!(b.is_none(), "taken within the takeover delay");
        assert!(a_again.is_none(), "taken within the takeover delay");
    }
    tokio::time::sleep_until(acquired + B::SHORT + delay + B::SLACK).await;
    let b = store
        .try_acquire("n", "b", terms)
        .await
        .unwrap()
        .expect("free");
    assert!(b.token() > a.token());
    store.release(&b).await.unwrap();
    let c = store
        .try_acquire("n", "c", long())
        .await
        .unwrap()
        .expect("released");
    assert!(c.token() > b.token());
}

/// Two `Singleton`s: A leads until it is killed (its task aborted: no release, no more
/// renewals); B takes over with a higher token within about ttl + one retry period of the
/// kill, and the resource refuses A's old token. Prints the failover time.
async fn singleton_failover<B: Backend>(backend: &B) {
    let ttl = B::FAILOVER_TTL;
    const RETRY: Duration = Duration::from_millis(100);
    let gate = Arc::new(FenceGate::new());
    let (started, mut starts) = mpsc::unbounded_channel();

    let spawn = |store: B::Store, holder: &'static str| {
        let singleton = Singleton::builder(store, "singleton", holder)
            .ttl(ttl)
            .retry_period(RETRY)
            .build()
            .unwrap();
        let (gate, started) = (gate.clone(), started.clone());
        tokio::spawn(singleton.run(move |guard| {
            let (gate, started) = (gate.clone(), started.clone());
            async move {
                started.send((guard.holder().to_owned(), guard.token(), Instant::now()))?;
                loop {
                    gate.admit("resource", guard.holder(), guard.token())?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                #[allow(unreachable_code)]
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            }
        }))
    };

    let a = spawn(backend.connect().await, "a");
    let (holder, a_token, _) = starts.recv().await.unwrap();
    assert_eq!(holder, "a");
    let b = spawn(backend.connect().await, "b");
    // A leads through a few renewals while B campaigns.
    tokio::time::sleep(ttl).await;
    a.abort();
    let killed = Instant::now();
    let (holder, b_token, b_started) = tokio::time::timeout(ttl * 4, starts.recv())
        .await
        .unwrap()
        .unwrap();
    let failover = b_started - killed;
    eprintln!(
        "failover ({}): {failover:?} (ttl {ttl:?}, retry period {RETRY:?})",
        std::any::type_name::<B>()
    );
    assert_eq!(holder, "b");
    assert!(b_token > a_token);
    // A renews every ttl/3, so its lease ends at most a ttl after the kill, and B tries
    // once per retry period; allow some scheduling slack on a busy machine.
    assert!(
        failover <= ttl + RETRY + B::SLACK * 2,
        "failover took {failover:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await; // B has written
    let refused = gate.admit("resource", "a", a_token).unwrap_err();
    assert_eq!(refused.latest(), b_token);
    b.abort();
}

/// Times `ROUNDS` acquisitions (by the holder, so each is an extension) and renewals, and
/// prints the mean latency of each.
async fn latency<B: Backend>(backend: &B) {
    const ROUNDS: u32 = 200;
    let store = backend.connect().await;
    let lease = store.try_acquire("n", "a", long()).await.unwrap().unwrap();
    let start = Instant::now();
    for _ in 0..ROUNDS {
        store.try_acquire("n", "a", long()).await.unwrap().unwrap();
    }
    let acquire = start.elapsed() / ROUNDS;
    let start = Instant::now();
    for _ in 0..ROUNDS {
        store.renew(&lease).await.unwrap();
    }
    let renew = start.elapsed() / ROUNDS;
    eprintln!(
        "latency ({}): acquire {acquire:?}, renew {renew:?} (mean of {ROUNDS})",
        std::any::type_name::<B>()
    );
}

/// One `#[tokio::test]` per check for a backend, in module `$module`.
macro_rules! suite {
    ($module:ident, $backend:ty) => {
        mod $module {
            use super::*;

            suite!(@tests $backend; basics, forged_leases_are_lost, tokens_never_reset,
                contenders_race, expires_after_ttl, renew_extends, stale_holder_is_lost,
                takeover_delay, singleton_failover, latency);
        }
    };
    (@tests $backend:ty; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(backend) = <$backend>::setup(stringify!($check)).await else {
                    return;
                };
                super::$check(&backend).await;
                backend.teardown().await;
            }
        )*
    };
}

suite!(memory, Memory);
#[cfg(feature = "redis")]
suite!(redis_store, Redis);
#[cfg(feature = "postgres")]
suite!(postgres_store, Postgres);
#[cfg(feature = "etcd")]
suite!(etcd_store, Etcd);

/// The documented fenced write inside PostgreSQL: a write guarded by the lease row
/// applies for the live token and is refused for a stale one.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_fenced_write() {
    let Some(backend) = Postgres::setup("fenced_write").await else {
        return;
    };
    let store = backend.connect().await;
    let (client, connection) = tokio_postgres::connect(&backend.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let jobs = format!("\"{}\".jobs", backend.schema);
    client
        .batch_execute(&format!(
            "CREATE TABLE {jobs} (id int PRIMARY KEY, writer text);
             INSERT INTO {jobs} VALUES (1, 'nobody');"
        ))
        .await
        .unwrap();
    let write = format!(
        "UPDATE {jobs} SET writer = $3 WHERE id = 1 AND {}",
        store.fence_predicate("$1", "$2")
    );
    let fenced_write = |holder: &'static str, token: FencingToken| {
        let (client, write) = (&client, &write);
        async move {
            let token = i64::try_from(token.get()).unwrap();
            client
                .execute(write.as_str(), &[&"job", &token, &holder])
                .await
                .unwrap()
        }
    };

    let a = store
        .try_acquire("job", "a", short::<Postgres>())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fenced_write("a", a.token()).await, 1);
    tokio::time::sleep(SHORT + SLACK).await;
    // Expired: even before anyone takes over, A's write is refused.
    assert_eq!(fenced_write("a", a.token()).await, 0);
    let b = store
        .try_acquire("job", "b", long())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fenced_write("b", b.token()).await, 1);
    assert_eq!(fenced_write("a", a.token()).await, 0);
    let writer: String = client
        .query_one(&format!("SELECT writer FROM {jobs} WHERE id = 1"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(writer, "b");
    drop(client);
    backend.teardown().await;
}

/// Released rows are kept (`expires_at = '-infinity'`), so the token survives.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_keeps_released_rows() {
    let Some(backend) = Postgres::setup("keeps_rows").await else {
        return;
    };
    let store = backend.connect().await;
    let a = store
        .try_acquire("job", "a", long())
        .await
        .unwrap()
        .unwrap();
    store.release(&a).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&backend.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            &format!(
                "SELECT token, expires_at = '-infinity' FROM {} WHERE name = 'job'",
                store.table()
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, bool>(1)), (1, true));
    drop(client);
    backend.teardown().await;
}

/// An unreachable Redis is a `StoreError` (unknown), never a lost lease.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_unreachable_is_a_store_error() {
    let started = Instant::now();
    assert!(
        steadfast_lease::RedisLeaseStore::connect("redis://127.0.0.1:1")
            .await
            .is_err()
    );
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
    let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
    let manager = redis::aio::ConnectionManager::new_lazy_with_config(client, config).unwrap();
    let store = steadfast_lease::RedisLeaseStore::new(manager);
    assert!(store.try_acquire("n", "a", long()).await.is_err());
    assert!(store.current("n").await.is_err());
    let lease = Lease::new("n", "a", FencingToken::new(1), long());
    assert!(!store.renew(&lease).await.unwrap_err().is_lost());
    assert!(!store.release(&lease).await.unwrap_err().is_lost());
    eprintln!("redis unreachable: {:?}", started.elapsed());
}

/// An unreachable PostgreSQL is a `StoreError` (unknown), never a lost lease.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_unreachable_is_a_store_error() {
    let url = "postgres://postgres@127.0.0.1:1/test";
    assert!(
        steadfast_lease::PostgresLeaseStore::connect(url)
            .await
            .is_err()
    );
    let store = steadfast_lease::PostgresLeaseStore::with_connector(move || async move {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    });
    assert!(store.ensure_schema().await.is_err());
    assert!(store.try_acquire("n", "a", long()).await.is_err());
    assert!(store.current("n").await.is_err());
    let lease = Lease::new("n", "a", FencingToken::new(1), long());
    assert!(!store.renew(&lease).await.unwrap_err().is_lost());
    assert!(!store.release(&lease).await.unwrap_err().is_lost());
}

/// An unreachable etcd is a `StoreError` (unknown), never a lost lease.
#[cfg(feature = "etcd")]
#[tokio::test]
async fn etcd_unreachable_is_a_store_error() {
    let started = Instant::now();
    // The client connects lazily: the first request reports the failure.
    let store = steadfast_lease::EtcdLeaseStore::connect(["http://127.0.0.1:1"])
        .await
        .unwrap();
    assert!(store.try_acquire("n", "a", long()).await.is_err());
    assert!(store.current("n").await.is_err());
    let lease = Lease::new("n", "a", FencingToken::new(1), long());
    assert!(!store.renew(&lease).await.unwrap_err().is_lost());
    assert!(!store.release(&lease).await.unwrap_err().is_lost());
    eprintln!("etcd unreachable: {:?}", started.elapsed());
}

/// The lease key's create revision fences writes inside etcd: a transaction comparing it
/// applies for the live holder and is refused once another holder took over.
#[cfg(feature = "etcd")]
#[tokio::test]
async fn etcd_fenced_write() {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let Some(backend) = Etcd::setup("fenced_write").await else {
        return;
    };
    let store = backend.connect().await;
    let data = format!("{}data", backend.prefix);
    let key = store.lease_key("job");
    let fenced_write = |writer: &'static str, token: FencingToken| {
        let (store, data, key) = (&store, &data, &key);
        async move {
            let token = i64::try_from(token.get()).unwrap();
            let txn = Txn::new()
                .when([Compare::create_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    token,
                )])
                .and_then([TxnOp::put(data.as_str(), writer, None)]);
            store
                .client()
                .kv_client()
                .txn(txn)
                .await
                .unwrap()
                .succeeded()
        }
    };
    let a = store
        .try_acquire("job", "a", long())
        .await
        .unwrap()
        .unwrap();
    assert!(fenced_write("a", a.token()).await);
    store.release(&a).await.unwrap();
    let b = store
        .try_acquire("job", "b", long())
        .await
        .unwrap()
        .unwrap();
    assert!(fenced_write("b", b.token()).await);
    assert!(!fenced_write("a", a.token()).await);
    let value = store
        .client()
        .kv_client()
        .get(data.as_str(), None)
        .await
        .unwrap();
    assert_eq!(value.kvs()[0].value(), b"b");
    backend.teardown().await;
}

/// Renews `lease` until one succeeds, for up to 3 s; every failure must be a store error,
/// never a loss. Returns how many failed.
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
async fn renew_through_reconnect<S: LeaseStore>(store: &S, lease: &Lease) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut failures = 0;
    loop {
        match store.renew(lease).await {
            Ok(renewed) => {
                assert_eq!(renewed.token(), lease.token());
                return failures;
            }
            Err(err) => {
                assert!(!err.is_lost(), "a dropped connection lost the lease: {err}");
                failures += 1;
                assert!(Instant::now() < deadline, "did not reconnect: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// When the server drops the store's connection, calls fail as unknown (not lost) and the
/// store reconnects.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_reconnects_after_the_connection_drops() {
    let Some(backend) = Redis::setup("reconnects").await else {
        return;
    };
    let store = backend.connect().await;
    let lease = store.try_acquire("n", "a", long()).await.unwrap().unwrap();
    let mut connection = store.connection().clone();
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut other = backend.connect().await.connection().clone();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut other)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let failures = renew_through_reconnect(&store, &lease).await;
    eprintln!("redis: {failures} failed renewal(s) before reconnecting");
    backend.teardown().await;
}

/// When the server terminates the store's connection, calls fail as unknown (not lost) and
/// the store reconnects.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_reconnects_after_the_connection_drops() {
    let Some(mut backend) = Postgres::setup("reconnects").await else {
        return;
    };
    let application = format!("steadfast_{}", unique("reconnects"));
    let base = backend.url.clone();
    let separator = if base.contains('?') { '&' } else { '?' };
    backend.url = format!("{base}{separator}application_name={application}");
    let store = backend.connect().await;
    let lease = store.try_acquire("n", "a", long()).await.unwrap().unwrap();
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let terminated = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&application],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(terminated, 1);
    let failures = renew_through_reconnect(&store, &lease).await;
    eprintln!("postgres: {failures} failed renewal(s) before reconnecting");
    drop(client);
    backend.teardown().await;
}
