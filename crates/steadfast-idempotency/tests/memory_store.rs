//! `MemoryStore` against the `IdempotencyStore` contract, on paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use steadfast_idempotency::{
    CapacityExceeded, Claim, FencingToken, Fingerprint, IdempotencyStore, MemoryStore, Record,
    StoreKey, StoredResponse, WriteOutcome,
};

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(3600);

fn key(n: u32) -> StoreKey {
    let mut bytes = [0; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[31] = n as u8;
    StoreKey::from_bytes(bytes)
}

const FP: Fingerprint = Fingerprint::from_bytes([1; 32]);

fn response(body: &'static str) -> StoredResponse {
    StoredResponse::new(StatusCode::CREATED, HeaderMap::new(), Bytes::from(body))
}

fn acquired(claim: Claim) -> FencingToken {
    match claim {
        Claim::Acquired(token) => token,
        other => panic!("expected the claim to be acquired, got {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_claim_is_exclusive_until_completed_or_released() {
    let store = MemoryStore::new();
    let token = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    assert_eq!(
        store.claim(&key(1), &FP, LEASE).await.unwrap(),
        Claim::Existing(Record::InFlight {
            fingerprint: FP,
            token
        })
    );

    assert_eq!(
        store
            .complete(&key(1), token, response("done"), TTL)
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    match store.claim(&key(1), &FP, LEASE).await.unwrap() {
        Claim::Existing(Record::Completed {
            fingerprint,
            response,
        }) => {
            assert_eq!(fingerprint, FP);
            assert_eq!(response.body(), "done");
        }
        other => panic!("{other:?}"),
    }
    // A completed record cannot be released or completed again.
    assert_eq!(
        store.release(&key(1), token).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store
            .complete(&key(1), token, response("again"), TTL)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn release_frees_the_key_and_tokens_keep_increasing() {
    let store = MemoryStore::new();
    let first = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    assert_eq!(
        store
            .release(&key(1), FencingToken::new(first.get() + 99))
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store.release(&key(1), first).await.unwrap(),
        WriteOutcome::Applied
    );
    assert!(store.get(&key(1)).await.unwrap().is_none());
    let second = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    assert!(second > first);
    // The stale token can neither release nor complete the new claim.
    assert_eq!(
        store.release(&key(1), first).await.unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store
            .complete(&key(1), first, response("stale"), TTL)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    assert!(matches!(
        store.get(&key(1)).await.unwrap(),
        Some(Record::InFlight { token, .. }) if token == second
    ));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_expired_lease_can_be_taken_over_and_the_stale_owner_is_fenced() {
    let store = MemoryStore::new();
    let stale = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    tokio::time::sleep(LEASE).await;
    let other = Fingerprint::from_bytes([2; 32]);
    let fresh = acquired(store.claim(&key(1), &other, LEASE).await.unwrap());
    assert!(fresh > stale);
    assert_eq!(
        store
            .complete(&key(1), stale, response("stale"), TTL)
            .await
            .unwrap(),
        WriteOutcome::Superseded
    );
    assert_eq!(
        store
            .complete(&key(1), fresh, response("fresh"), TTL)
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    match store.get(&key(1)).await.unwrap() {
        Some(Record::Completed {
            fingerprint,
            response,
        }) => {
            assert_eq!(fingerprint, other);
            assert_eq!(response.body(), "fresh");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_owner_past_its_lease_may_still_complete_if_nobody_claimed() {
    let store = MemoryStore::new();
    let token = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    tokio::time::sleep(LEASE * 2).await;
    assert!(store.get(&key(1)).await.unwrap().is_none(), "expired");
    assert_eq!(
        store
            .complete(&key(1), token, response("late"), TTL)
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    assert!(matches!(
        store.get(&key(1)).await.unwrap(),
        Some(Record::Completed { .. })
    ));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn completed_records_expire_after_their_ttl() {
    let store = MemoryStore::new();
    let token = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    store
        .complete(&key(1), token, response("done"), TTL)
        .await
        .unwrap();
    tokio::time::sleep(TTL - Duration::from_millis(1)).await;
    assert!(store.get(&key(1)).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(store.get(&key(1)).await.unwrap().is_none());
    let again = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    assert!(again > token);
    assert_eq!(store.len(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_flood_of_distinct_keys_is_bounded() {
    let store = MemoryStore::builder().max_records(1000).build().unwrap();
    let mut refused = 0;
    for n in 0..10_000 {
        match store.claim(&key(n), &FP, LEASE).await {
            Ok(claim) => {
                acquired(claim);
            }
            Err(err) => {
                assert!(err.is::<CapacityExceeded>());
                refused += 1;
            }
        }
        assert!(store.len() <= 1000);
    }
    assert_eq!(refused, 9000);

    // Expired records make room again, and are evicted for it.
    tokio::time::sleep(LEASE).await;
    for n in 10_000..11_000 {
        acquired(store.claim(&key(n), &FP, LEASE).await.unwrap());
    }
    assert_eq!(store.len(), 1000);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_byte_bound_refuses_large_completions() {
    let store = MemoryStore::builder()
        .max_bytes(4096)
        .shards(1)
        .build()
        .unwrap();
    let token = acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    let big = StoredResponse::new(StatusCode::OK, HeaderMap::new(), Bytes::from(vec![0; 8192]));
    let err = store.complete(&key(1), token, big, TTL).await.unwrap_err();
    assert!(err.is::<CapacityExceeded>());
    // The claim is still in flight, and a small response fits.
    assert_eq!(
        store
            .complete(&key(1), token, response("small"), TTL)
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    assert!(store.bytes() <= 4096);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn purge_removes_expired_records_and_their_bytes() {
    let store = MemoryStore::new();
    for n in 0..100 {
        let token = acquired(store.claim(&key(n), &FP, LEASE).await.unwrap());
        if n % 2 == 0 {
            store
                .complete(&key(n), token, response("done"), TTL)
                .await
                .unwrap();
        }
    }
    assert_eq!(store.len(), 100);
    tokio::time::sleep(LEASE).await;
    assert_eq!(store.purge_expired(), 50);
    tokio::time::sleep(TTL).await;
    assert_eq!(store.purge_expired(), 50);
    assert!(store.is_empty());
    assert_eq!(store.bytes(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn churn_of_released_claims_does_not_grow_the_store() {
    let store = MemoryStore::builder().max_records(10).build().unwrap();
    for n in 0..100_000 {
        let token = acquired(store.claim(&key(n), &FP, LEASE).await.unwrap());
        store.release(&key(n), token).await.unwrap();
    }
    assert!(store.is_empty());
    assert_eq!(store.bytes(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn clones_share_records() {
    let store = MemoryStore::new();
    let clone = store.clone();
    acquired(store.claim(&key(1), &FP, LEASE).await.unwrap());
    assert!(matches!(
        clone.claim(&key(1), &FP, LEASE).await.unwrap(),
        Claim::Existing(_)
    ));
}

#[test]
fn concurrent_claims_from_threads_grant_one_owner() {
    let store = MemoryStore::new();
    let winners = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, winners, barrier) = (store.clone(), winners.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                if let Claim::Acquired(_) = store.try_claim(&key(42), &FP, LEASE).unwrap() {
                    winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(winners.load(std::sync::atomic::Ordering::SeqCst), 1);
}
