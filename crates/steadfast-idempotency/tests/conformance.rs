//! One conformance suite for every [`IdempotencyStore`]: the memory store always, Redis and
//! PostgreSQL with their features, against the servers named by `STEADFAST_REDIS_URL` and
//! `STEADFAST_POSTGRES_URL` (`.ci/run` starts them).
//!
//! With a variable unset, that backend's tests print `skipped: … not set` and pass, except
//! under `CI=true`, where they fail: CI must not silently skip a backend.
//!
//! Redis's and PostgreSQL's clocks cannot be paused, so the expiry checks use short leases
//! and real sleeps on those backends; the memory store runs the same checks on paused
//! tokio time. Every test gets its own namespace (a key prefix, a table) so servers
//! outliving runs never collide. The suite also runs the layer end to end over each store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use steadfast_idempotency::body::ResponseBody;
use steadfast_idempotency::{
    Claim, FencingToken, Fingerprint, IdempotencyLayer, IdempotencyStore, MemoryStore, Record,
    StoreKey, StoredResponse, WriteOutcome,
};
#[cfg(any(feature = "redis", feature = "postgres"))]
use steadfast_test_support::backend::backend_env;
#[cfg_attr(
    not(any(feature = "redis", feature = "postgres")),
    allow(unused_imports)
)]
use steadfast_test_support::backend::unique;
use tokio::sync::Barrier;
use tower::ServiceExt;

use support::{KEY, post, replayed, text_of};

/// A short lease or ttl, for the checks that wait for an expiry.
const SHORT: Duration = Duration::from_millis(300);
/// Slack added after an expiry before checking it, for scheduling noise.
const SLACK: Duration = Duration::from_millis(150);
/// A lease or ttl nothing in a test outlives.
const LONG: Duration = Duration::from_secs(60);
/// Stores (each with its own connections) sharing the concurrent claims.
const CONTENDERS: usize = 4;
/// Concurrent claims of one key.
const CLAIMS: usize = 100;

const FP: Fingerprint = Fingerprint::from_bytes([1; 32]);
const OTHER_FP: Fingerprint = Fingerprint::from_bytes([2; 32]);

fn key(n: u8) -> StoreKey {
    let mut bytes = [0xa5; 32];
    bytes[0] = n;
    bytes[31] = n;
    StoreKey::from_bytes(bytes)
}

/// A response with repeated headers, a binary body and trailers: everything a store must
/// give back unchanged.
fn full_response() -> StoredResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.append("link", HeaderValue::from_static("</a>; rel=\"next\""));
    headers.append("link", HeaderValue::from_static("</b>; rel=\"prev\""));
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    StoredResponse::with_parts(
        StatusCode::CREATED,
        headers,
        Bytes::from_static(b"{\"id\":1}\x00\xff"),
        Some(trailers),
    )
}

fn response(body: &'static str) -> StoredResponse {
    StoredResponse::new(StatusCode::OK, HeaderMap::new(), Bytes::from(body))
}

fn acquired(claim: Claim) -> FencingToken {
    match claim {
        Claim::Acquired(token) => token,
        other => panic!("expected the claim to be acquired, got {other:?}"),
    }
}

fn completed(record: Option<Record>) -> (Fingerprint, StoredResponse) {
    match record {
        Some(Record::Completed {
            fingerprint,
            response,
        }) => (fingerprint, response),
        other => panic!("expected a completed record, got {other:?}"),
    }
}

/// A backend under test: an isolated namespace on one server.
trait Server: Sized {
    type Store: IdempotencyStore + Clone + Send + Sync + 'static;

    /// Sets up a fresh namespace for `test`, or `None` when the backend is skipped.
    async fn setup(test: &str) -> Option<Self>;

    /// A store on the namespace, with its own connections.
    async fn connect(&self) -> Self::Store;

    /// The store's round trips so far, if it counts them.
    fn round_trips(_store: &Self::Store) -> Option<u64> {
        None
    }

    /// Removes the namespace.
    async fn teardown(self);
}

struct Memory(MemoryStore);

impl Server for Memory {
    type Store = MemoryStore;

    async fn setup(_test: &str) -> Option<Self> {
        Some(Self(MemoryStore::new()))
    }

    async fn connect(&self) -> MemoryStore {
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
impl Server for Redis {
    type Store = steadfast_idempotency::RedisStore;

    async fn setup(test: &str) -> Option<Self> {
        let url = backend_env("STEADFAST_REDIS_URL")?;
        let prefix = format!("steadfast-test:idem:{}:", unique(test));
        Some(Self { url, prefix })
    }

    async fn connect(&self) -> Self::Store {
        steadfast_idempotency::RedisStore::connect(&self.url)
            .await
            .expect("connect to Redis")
            .with_prefix(self.prefix.as_str())
    }

    fn round_trips(store: &Self::Store) -> Option<u64> {
        Some(store.round_trips())
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
    table: String,
}

#[cfg(feature = "postgres")]
impl Postgres {
    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
    }
}

#[cfg(feature = "postgres")]
impl Server for Postgres {
    type Store = steadfast_idempotency::PostgresStore;

    async fn setup(test: &str) -> Option<Self> {
        let url = backend_env("STEADFAST_POSTGRES_URL")?;
        // Room for the sequence's `_token_seq` within PostgreSQL's 63-byte names.
        let mut table = format!("steadfast_test_{}", unique(test));
        table.truncate(50);
        let backend = Self { url, table };
        steadfast_idempotency::PostgresStore::migrate(&backend.client().await, &backend.table)
            .await
            .expect("create the table");
        Some(backend)
    }

    async fn connect(&self) -> Self::Store {
        steadfast_idempotency::PostgresStore::connect(&self.url)
            .await
            .expect("connect to PostgreSQL")
            .with_table(&self.table)
    }

    fn round_trips(store: &Self::Store) -> Option<u64> {
        Some(store.round_trips())
    }

    async fn teardown(self) {
        self.client()
            .await
            .batch_execute(&format!("DROP TABLE \"{}\"", self.table))
            .await
            .unwrap();
    }
}

/// Sleeps past a `SHORT` lease or ttl: real time on the network stores, paused tokio time
/// (advanced at once) on the memory store.
async fn outlive_short() {
    tokio::time::sleep(SHORT + SLACK).await;
}

// --- The store checks --------------------------------------------------------------------

/// Rule 1: a claim takes a free key; a duplicate, with the same or another fingerprint,
/// gets the in-flight record unchanged.
async fn claim_is_exclusive<B: Server>(server: &B) {
    let store = server.connect().await;
    assert!(store.get(&key(1)).await.unwrap().is_none());
    let token = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    let in_flight = Record::InFlight {
        fingerprint: FP,
        token,
    };
    for fingerprint in [FP, OTHER_FP] {
        assert_eq!(
            store.claim(&key(1), &fingerprint, LONG).await.unwrap(),
            Claim::Existing(in_flight.clone())
        );
    }
    assert_eq!(store.get(&key(1)).await.unwrap(), Some(in_flight));
}

/// A completed record replays exactly what was stored (status, repeated headers, binary
/// body, trailers) with the first fingerprint, so a different payload is a mismatch; it
/// can be neither completed nor released again.
async fn replay_after_complete<B: Server>(server: &B) {
    let store = server.connect().await;
    let token = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    assert_eq!(
        store
            .complete(&key(1), token, full_response(), LONG)
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    for fingerprint in [FP, OTHER_FP] {
        let Claim::Existing(record) = store.claim(&key(1), &fingerprint, LONG).await.unwrap()
        else {
            panic!("a completed key is not claimable");
        };
        let (stored_fp, replay) = completed(Some(record));
        assert_eq!(stored_fp, FP, "the first request's fingerprint is kept");
        assert_eq!(replay, full_response());
    }
    assert_eq!(
        completed(store.get(&key(1)).await.unwrap()).1,
        full_response()
    );
    assert_eq!(
        store
            .complete(&key(1), token, response("again"), LONG)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store.release(&key(1), token).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        completed(store.get(&key(1)).await.unwrap()).1,
        full_response()
    );
}

/// Rules 2 and 3 on release: only the owner's token releases; the key is free at once;
/// the next claim gets a greater token; the old token can change nothing any more.
async fn release_frees_the_key<B: Server>(server: &B) {
    let store = server.connect().await;
    let first = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    let forged = FencingToken::new(first.get() + 1_000);
    assert_eq!(
        store.release(&key(1), forged).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store
            .complete(&key(1), forged, response("forged"), LONG)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store.release(&key(1), first).await.unwrap(),
        WriteOutcome::Applied
    );
    assert!(store.get(&key(1)).await.unwrap().is_none());
    let second = acquired(store.claim(&key(1), &OTHER_FP, LONG).await.unwrap());
    assert!(second > first, "{second:?} after {first:?}");
    assert_eq!(
        store.release(&key(1), first).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store
            .complete(&key(1), first, response("stale"), LONG)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store.get(&key(1)).await.unwrap(),
        Some(Record::InFlight {
            fingerprint: OTHER_FP,
            token: second
        })
    );
}

/// Rules 1 to 4 on expiry: a claim past its lease (by the store's clock) is nothing to
/// `get` and can be claimed again with a greater token; the stale owner's completion and
/// release are refused, the new owner's completion applies.
async fn expired_claim_is_reclaimed_and_the_stale_owner_fenced<B: Server>(server: &B) {
    let store = server.connect().await;
    let stale = acquired(store.claim(&key(1), &FP, SHORT).await.unwrap());
    outlive_short().await;
    assert!(store.get(&key(1)).await.unwrap().is_none(), "expired");
    let fresh = acquired(store.claim(&key(1), &OTHER_FP, LONG).await.unwrap());
    assert!(fresh > stale, "{fresh:?} after {stale:?}");
    assert_eq!(
        store
            .complete(&key(1), stale, response("stale"), LONG)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store.release(&key(1), stale).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store
            .complete(&key(1), fresh, response("fresh"), LONG)
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    let (fingerprint, stored) = completed(store.get(&key(1)).await.unwrap());
    assert_eq!(
        (fingerprint, stored.body().as_ref()),
        (OTHER_FP, &b"fresh"[..])
    );
}

/// Rule 3: an owner past its lease may still complete while nobody claimed the key.
async fn late_owner_completes_if_nobody_claimed<B: Server>(server: &B) {
    let store = server.connect().await;
    let token = acquired(store.claim(&key(1), &FP, SHORT).await.unwrap());
    outlive_short().await;
    assert!(store.get(&key(1)).await.unwrap().is_none(), "expired");
    assert_eq!(
        store
            .complete(&key(1), token, response("late"), LONG)
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    assert_eq!(
        completed(store.get(&key(1)).await.unwrap()).1,
        response("late")
    );
}

/// A completed record lives for its ttl and is then gone: the key is new again, with a
/// greater token.
async fn completed_record_expires<B: Server>(server: &B) {
    let store = server.connect().await;
    let token = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    store
        .complete(&key(1), token, response("done"), SHORT)
        .await
        .unwrap();
    assert!(store.get(&key(1)).await.unwrap().is_some());
    outlive_short().await;
    assert!(store.get(&key(1)).await.unwrap().is_none());
    let again = acquired(store.claim(&key(1), &OTHER_FP, LONG).await.unwrap());
    assert!(again > token);
}

/// Distinct keys never affect each other, and tokens differ between them.
async fn distinct_keys_are_isolated<B: Server>(server: &B) {
    let store = server.connect().await;
    let a = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    let b = acquired(store.claim(&key(2), &FP, LONG).await.unwrap());
    assert_ne!(a, b);
    store
        .complete(&key(1), a, response("one"), LONG)
        .await
        .unwrap();
    assert_eq!(
        store.get(&key(2)).await.unwrap(),
        Some(Record::InFlight {
            fingerprint: FP,
            token: b
        })
    );
    // Key 1's token means nothing for key 2, and the other way round.
    assert_eq!(
        store.release(&key(2), a).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store.release(&key(1), b).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store.release(&key(2), b).await.unwrap(),
        WriteOutcome::Applied
    );
    assert_eq!(
        completed(store.get(&key(1)).await.unwrap()).1,
        response("one")
    );
    assert!(store.get(&key(2)).await.unwrap().is_none());
}

/// Rule 1 under contention: `CLAIMS` concurrent claims of one key, over `CONTENDERS`
/// stores with their own connections: exactly one wins, every other one sees its claim.
async fn concurrent_claims_have_one_winner<B: Server>(server: &B) {
    let mut stores = Vec::new();
    for _ in 0..CONTENDERS {
        stores.push(server.connect().await);
    }
    for round in 0..2u8 {
        let barrier = Arc::new(Barrier::new(CLAIMS));
        let tasks: Vec<_> = (0..CLAIMS)
            .map(|i| {
                let (store, barrier) = (stores[i % CONTENDERS].clone(), barrier.clone());
                let fingerprint = Fingerprint::from_bytes([i as u8; 32]);
                tokio::spawn(async move {
                    barrier.wait().await;
                    (
                        fingerprint,
                        store.claim(&key(10 + round), &fingerprint, LONG).await,
                    )
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut seen = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (fingerprint, Ok(Claim::Acquired(token))) => winners.push((fingerprint, token)),
                (_, Ok(Claim::Existing(Record::InFlight { fingerprint, token }))) => {
                    seen.push((fingerprint, token));
                }
                other => panic!("unexpected claim result: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(seen.len(), CLAIMS - 1);
        assert!(
            seen.iter().all(|s| *s == winners[0]),
            "every loser sees the winner's claim"
        );
    }
}

/// The documented round trips: claim 1, complete 1, replay 1, release 1, get 1.
async fn one_round_trip_per_operation<B: Server>(server: &B) {
    let store = server.connect().await;
    let Some(_) = B::round_trips(&store) else {
        return;
    };
    // Load every script (a server that never saw them costs one more round trip each).
    let token = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    store
        .complete(&key(1), token, response("x"), LONG)
        .await
        .unwrap();
    store.release(&key(1), token).await.unwrap();
    store.get(&key(1)).await.unwrap();

    let measure = || B::round_trips(&store).unwrap();
    let before = measure();
    let token = acquired(store.claim(&key(2), &FP, LONG).await.unwrap());
    let after_claim = measure();
    store
        .complete(&key(2), token, full_response(), LONG)
        .await
        .unwrap();
    let after_complete = measure();
    let Claim::Existing(_) = store.claim(&key(2), &FP, LONG).await.unwrap() else {
        panic!("replay expected");
    };
    let after_replay = measure();
    let token = acquired(store.claim(&key(3), &FP, LONG).await.unwrap());
    let before_release = measure();
    store.release(&key(3), token).await.unwrap();
    let after_release = measure();
    store.get(&key(3)).await.unwrap();
    let after_get = measure();
    let trips = [
        after_claim - before,
        after_complete - after_claim,
        after_replay - after_complete,
        after_release - before_release,
        after_get - after_release,
    ];
    eprintln!(
        "round trips ({}): claim, complete, replay, release, get = {trips:?}",
        std::any::type_name::<B>()
    );
    assert_eq!(trips, [1, 1, 1, 1, 1]);
}

// --- The layer over the store --------------------------------------------------------------

use support::Svc;

#[derive(Clone)]
struct Tenant(&'static str);

fn tenant_scope(parts: &Parts) -> String {
    parts
        .extensions
        .get::<Tenant>()
        .map_or("anonymous", |t| t.0)
        .to_owned()
}

fn as_tenant(tenant: &'static str, body: &str) -> Request<String> {
    let mut request = post(Some(KEY), body);
    request.extensions_mut().insert(Tenant(tenant));
    request
}

async fn send(service: &Svc, request: Request<String>) -> Response<ResponseBody<String>> {
    service.clone().oneshot(request).await.unwrap()
}

/// The layer over the store: the first request runs and is stored (a claim and a
/// completion: two round trips), a duplicate is replayed (one round trip) without running
/// the handler, another payload is `422`; two tenants sending the same key are isolated.
async fn layer_replays_and_isolates_tenants<B: Server>(server: &B) {
    let store = server.connect().await;
    let handler = support::Backend::new();
    let layer = IdempotencyLayer::builder(store.clone())
        .scope(tenant_scope)
        .build()
        .unwrap();
    let stats = layer.stats();
    let service = support::stack(layer, &handler);
    let trips = || B::round_trips(&store);

    let before = trips();
    let first = send(&service, as_tenant("acme", r#"{"qty":2}"#)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!replayed(&first));
    assert_eq!(text_of(first).await, r#"run 1: {"qty":2}"#);
    let after_first = trips();

    let again = send(&service, as_tenant("acme", r#"{"qty":2}"#)).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(replayed(&again));
    assert_eq!(again.headers()["location"], "/orders/1");
    assert_eq!(text_of(again).await, r#"run 1: {"qty":2}"#);
    let after_replay = trips();
    if let (Some(before), Some(after_first), Some(after_replay)) =
        (before, after_first, after_replay)
    {
        eprintln!(
            "layer round trips ({}): first request {}, replay {}",
            std::any::type_name::<B>(),
            after_first - before,
            after_replay - after_first
        );
        // A first request on a fresh server may load the scripts: at most one more each.
        assert!((2..=4).contains(&(after_first - before)));
        assert_eq!(after_replay - after_first, 1);
    }

    let reused = send(&service, as_tenant("acme", r#"{"qty":3}"#)).await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Another tenant, the same key: its own request runs, and each gets its own back.
    let other = send(&service, as_tenant("globex", r#"{"qty":2}"#)).await;
    assert!(!replayed(&other));
    assert_eq!(text_of(other).await, r#"run 2: {"qty":2}"#);
    let acme = send(&service, as_tenant("acme", r#"{"qty":2}"#)).await;
    assert_eq!(text_of(acme).await, r#"run 1: {"qty":2}"#);
    let globex = send(&service, as_tenant("globex", r#"{"qty":2}"#)).await;
    assert_eq!(text_of(globex).await, r#"run 2: {"qty":2}"#);

    assert_eq!(handler.runs(), 2);
    assert_eq!((stats.replays(), stats.mismatches()), (3, 1));
}

/// A duplicate arriving while the first request runs gets `409`; once the first finished,
/// a retry is replayed. A `5xx` releases the key, so its retry runs again.
async fn layer_conflicts_and_releases<B: Server>(server: &B) {
    let store = server.connect().await;
    let handler = support::Backend::script([
        support::Reply::status(201).after(Duration::from_millis(500)),
        support::Reply::status(503),
    ]);
    let layer = IdempotencyLayer::builder(store).build().unwrap();
    let service = support::stack(layer, &handler);
    let slow = tokio::spawn({
        let service = service.clone();
        async move { send(&service, post(Some(KEY), "{}")).await.status() }
    });
    // Wait until the first request holds the claim: its handler has started.
    for _ in 0..400 {
        if handler.runs() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(handler.runs(), 1, "the first request started within 2 s");
    let duplicate = send(&service, post(Some(KEY), "{}")).await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(slow.await.unwrap(), StatusCode::CREATED);
    assert!(replayed(&send(&service, post(Some(KEY), "{}")).await));

    let other_key = |body: &str| post(Some("another-key"), body);
    let failed = send(&service, other_key("{}")).await;
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retried = send(&service, other_key("{}")).await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(!replayed(&retried));
    assert_eq!(handler.runs(), 3);
}

/// One `#[tokio::test]` per check for a backend, in module `$module`, with the test
/// attribute's arguments `$args` (in parentheses).
macro_rules! suite {
    ($module:ident, $backend:ty, $args:tt) => {
        mod $module {
            use super::*;

            suite!(@tests $backend, $args; claim_is_exclusive, replay_after_complete,
                release_frees_the_key, expired_claim_is_reclaimed_and_the_stale_owner_fenced,
                late_owner_completes_if_nobody_claimed, completed_record_expires,
                distinct_keys_are_isolated, concurrent_claims_have_one_winner,
                one_round_trip_per_operation, layer_replays_and_isolates_tenants,
                layer_conflicts_and_releases);
        }
    };
    (@tests $backend:ty, $args:tt; $($check:ident),*) => {
        $(
            #[tokio::test $args]
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

suite!(memory, Memory, (start_paused = true));
#[cfg(feature = "redis")]
suite!(redis_store, Redis, ());
#[cfg(feature = "postgres")]
suite!(postgres_store, Postgres, ());

// --- Backend-specific checks ---------------------------------------------------------------

/// A Redis value that is not a record this crate wrote is a typed error, never a panic.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_corrupt_records_are_typed_errors() {
    let Some(server) = Redis::setup("corrupt").await else {
        return;
    };
    let store = server.connect().await;
    let mut connection = store.connection().clone();
    let mut completed = vec![b'C'];
    completed.extend_from_slice(&[1; 32]);
    completed.extend_from_slice(b"\x01\x00"); // truncated in the status
    for value in [&b"garbage"[..], &completed[..]] {
        let () = redis::cmd("SET")
            .arg(store.record_key(&key(1)))
            .arg(value)
            .query_async(&mut connection)
            .await
            .unwrap();
        let err = store.get(&key(1)).await.unwrap_err();
        assert!(err.is::<steadfast_idempotency::CorruptRecord>(), "{err}");
        let err = store.claim(&key(1), &FP, LONG).await.unwrap_err();
        assert!(err.is::<steadfast_idempotency::CorruptRecord>(), "{err}");
    }
    server.teardown().await;
}

/// An unreachable Redis is an error (unknown outcome) for every operation.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_unreachable_is_an_error() {
    assert!(
        steadfast_idempotency::RedisStore::connect("redis://127.0.0.1:1")
            .await
            .is_err()
    );
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
    let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
    let manager = redis::aio::ConnectionManager::new_lazy_with_config(client, config).unwrap();
    let store = steadfast_idempotency::RedisStore::new(manager);
    let token = FencingToken::new(1);
    assert!(store.claim(&key(1), &FP, LONG).await.is_err());
    assert!(store.get(&key(1)).await.is_err());
    assert!(store.release(&key(1), token).await.is_err());
    assert!(
        store
            .complete(&key(1), token, response("x"), LONG)
            .await
            .is_err()
    );
}

/// `reap_expired` deletes expired, completed-and-expired and released rows, and keeps
/// live ones; a reaped key is claimable again with a greater token.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_reaps_expired_rows() {
    let Some(server) = Postgres::setup("reap").await else {
        return;
    };
    let store = server.connect().await;
    let expired_claim = acquired(store.claim(&key(1), &FP, SHORT).await.unwrap());
    let expired_record = acquired(store.claim(&key(2), &FP, LONG).await.unwrap());
    store
        .complete(&key(2), expired_record, response("old"), SHORT)
        .await
        .unwrap();
    let released = acquired(store.claim(&key(3), &FP, LONG).await.unwrap());
    store.release(&key(3), released).await.unwrap();
    let live = acquired(store.claim(&key(4), &FP, LONG).await.unwrap());
    let live_record = acquired(store.claim(&key(5), &FP, LONG).await.unwrap());
    store
        .complete(&key(5), live_record, response("new"), LONG)
        .await
        .unwrap();
    outlive_short().await;

    assert_eq!(store.reap_expired().await.unwrap(), 3);
    assert_eq!(store.reap_expired().await.unwrap(), 0);
    let client = server.client().await;
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {}", store.table()), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);
    assert!(store.get(&key(4)).await.unwrap().is_some());
    assert!(store.get(&key(5)).await.unwrap().is_some());
    // The reaped owner is fenced, and the key is new again.
    assert_eq!(
        store
            .complete(&key(1), expired_claim, response("late"), LONG)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    let again = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    assert!(again > live);
    drop(client);
    server.teardown().await;
}

/// A row whose response columns do not decode is a typed error, never a panic.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_corrupt_rows_are_typed_errors() {
    let Some(server) = Postgres::setup("corrupt").await else {
        return;
    };
    let store = server.connect().await;
    let token = acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    store
        .complete(&key(1), token, full_response(), LONG)
        .await
        .unwrap();
    let client = server.client().await;
    for corruption in [
        "headers = '\\x00000009'::bytea",
        "status = 1000",
        "fingerprint = '\\x01'::bytea",
        "state = 'in_flight', token = -5",
    ] {
        client
            .batch_execute(&format!("UPDATE {} SET {corruption}", store.table()))
            .await
            .unwrap();
        let err = store.get(&key(1)).await.unwrap_err();
        assert!(
            err.is::<steadfast_idempotency::CorruptRecord>(),
            "{corruption}: {err}"
        );
    }
    drop(client);
    server.teardown().await;
}

/// An unreachable PostgreSQL is an error (unknown outcome) for every operation.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_unreachable_is_an_error() {
    let url = "postgres://postgres@127.0.0.1:1/test";
    assert!(
        steadfast_idempotency::PostgresStore::connect(url)
            .await
            .is_err()
    );
    let store = steadfast_idempotency::PostgresStore::with_connector(2, move || async move {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    });
    let token = FencingToken::new(1);
    assert!(store.claim(&key(1), &FP, LONG).await.is_err());
    assert!(store.get(&key(1)).await.is_err());
    assert!(store.release(&key(1), token).await.is_err());
    assert!(store.reap_expired().await.is_err());
}

/// When the server terminates the store's connections, operations fail (the layer answers
/// `503`) and the store reconnects.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_reconnects_after_the_connection_drops() {
    let Some(server) = Postgres::setup("reconnects").await else {
        return;
    };
    // A client of our own, not named like the store's connections.
    let client = server.client().await;
    let application = format!("steadfast_{}", unique("reconnects"));
    let base = server.url.clone();
    let separator = if base.contains('?') { '&' } else { '?' };
    let named = format!("{base}{separator}application_name={application}");
    // One connection, so that the next call uses the terminated one.
    let store = steadfast_idempotency::PostgresStore::with_connector(1, move || {
        let named = named.clone();
        async move {
            let (client, connection) =
                tokio_postgres::connect(&named, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok(client)
        }
    })
    .with_table(&server.table);
    acquired(store.claim(&key(1), &FP, LONG).await.unwrap());
    let terminated: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&application],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(terminated, 1);
    let mut failures = 0;
    let record = loop {
        match store.get(&key(1)).await {
            Ok(record) => break record,
            Err(_) => {
                failures += 1;
                assert!(failures < 20, "did not reconnect");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(matches!(record, Some(Record::InFlight { .. })));
    eprintln!("postgres: {failures} failed call(s) before reconnecting");
    drop(client);
    server.teardown().await;
}
