//! The memory store under real thread contention.

use std::sync::Barrier;
use std::time::Duration;

use steadfast_lease::{FencingToken, LeaseStore, LeaseTerms, MemoryLeaseStore};

const THREADS: usize = 8;
const ROUNDS: usize = 200;

/// Every thread tries to acquire `name` at once; returns the winners' tokens.
fn race(store: &MemoryLeaseStore, name: &str) -> Vec<FencingToken> {
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .unwrap();
                    barrier.wait();
                    runtime.block_on(async {
                        store
                            .try_acquire(
                                name,
                                &format!("t{i}"),
                                LeaseTerms::new(Duration::from_secs(60)),
                            )
                            .await
                            .unwrap()
                            .map(|lease| lease.token())
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().unwrap())
            .collect()
    })
}

#[test]
fn threads_racing_for_an_empty_lease_elect_exactly_one() {
    let store = MemoryLeaseStore::new();
    for round in 0..ROUNDS {
        let winners = race(&store, &format!("n{round}"));
        assert_eq!(winners, [FencingToken::new(1)], "round {round}");
    }
}

#[test]
fn threads_racing_for_a_released_lease_elect_exactly_one_with_the_next_token() {
    let store = MemoryLeaseStore::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for round in 0..ROUNDS as u64 {
        let winners = race(&store, "shared");
        assert_eq!(winners, [FencingToken::new(round + 1)], "round {round}");
        let holder = runtime
            .block_on(store.current("shared"))
            .unwrap()
            .expect("held");
        let lease = steadfast_lease::Lease::new(
            "shared",
            holder.id(),
            holder.token(),
            LeaseTerms::new(Duration::from_secs(60)),
        );
        runtime.block_on(store.release(&lease)).unwrap();
    }
}
