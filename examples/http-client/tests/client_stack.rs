//! The HTTP client example's promises, checked on what the three loopback backends saw:
//! every attempt of a retried POST carries one Idempotency-Key, each key is routed to its
//! owner every time, retries stay within the budget, the client's HLC only moves forward,
//! and the throttle refuses locally only when the backends refuse most requests.
//! Each test sends 400 requests one after the other; about 2 s in a debug build.

use std::collections::{BTreeMap, BTreeSet};

use example_http_client::{Backend, Report, RunConfig, run, start_backends};

async fn run_demo() -> (Vec<Backend>, Report) {
    let backends = start_backends().await.unwrap();
    let report = run(&backends, &RunConfig::default()).await.unwrap();
    (backends, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_of_a_retried_post_carries_the_same_key() {
    let (backends, report) = run_demo().await;
    let mut keys: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for backend in &backends {
        for seen in backend.seen() {
            keys.entry(seen.order).or_default().push(seen.key);
        }
    }
    // Orders of which more than one attempt reached a backend (an attempt refused by the
    // throttle never does).
    let retried: Vec<_> = keys
        .iter()
        .filter(|(_, attempts)| attempts.len() > 1)
        .collect();
    assert!(retried.len() > 10, "only {} orders retried", retried.len());
    for (order, attempts) in retried {
        let first = attempts[0].as_deref().expect("a POST carries a key");
        assert!(
            attempts.iter().all(|key| key.as_deref() == Some(first)),
            "{order}: {attempts:?}"
        );
    }
    // Keys are per logical request: two orders never share one.
    let distinct: BTreeSet<_> = keys.values().map(|attempts| attempts[0].clone()).collect();
    assert_eq!(distinct.len(), keys.len());
    assert!(report.retries > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_always_goes_to_its_owner() {
    let (backends, report) = run_demo().await;
    let mut reached = 0;
    for backend in &backends {
        for seen in backend.seen() {
            assert_eq!(report.owners[&seen.order], backend.name(), "{}", seen.order);
            reached += 1;
        }
    }
    assert!(reached >= 300);
    // Rendezvous spreads the keys over all three backends.
    for name in example_http_client::NODES {
        let owned = report
            .owners
            .values()
            .filter(|owner| **owner == name)
            .count();
        assert!(owned > 80, "{name} owns only {owned} of 400 keys");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stay_within_the_budget() {
    let (_backends, report) = run_demo().await;
    assert_eq!(report.requests, 400);
    // 20% of 400 requests, no reserve: at most 80 retries, although far more failed.
    assert_eq!(report.budget, 80);
    assert!(
        report.retries <= report.budget,
        "{} > {}",
        report.retries,
        report.budget
    );
    assert!(report.normal.budget_refused + report.overload.budget_refused > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hlc_only_moves_forward() {
    let (backends, report) = run_demo().await;
    assert_eq!(report.client_clock.len(), 400);
    assert!(report.client_clock.windows(2).all(|w| w[0] < w[1]));
    // Calls are sequential: each backend saw the client's stamps in increasing order.
    for backend in &backends {
        let stamps: Vec<_> = backend
            .seen()
            .iter()
            .map(|seen| seen.stamp.expect("every request is stamped"))
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{}", backend.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttle_refuses_locally_only_under_overload() {
    let (_backends, report) = run_demo().await;
    // One half-failing backend in three: the backends accept far more than half.
    assert_eq!(report.normal.throttled, 0);
    assert_eq!(report.normal.outcomes.get("throttled"), None);
    // Every backend refusing: most attempts never leave the client.
    let overload = &report.overload;
    let reached: u64 = overload.per_backend.iter().sum();
    assert!(overload.throttled > 0);
    assert!(
        reached < overload.requests / 2,
        "{reached} of {} reached",
        overload.requests
    );
    assert!(overload.reject_probability > 0.5);
}
