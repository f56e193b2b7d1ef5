//! The in-memory lease store's transitions and the resource-side fencing check, per call:
//! `MemoryLeaseStore` `try_acquire`, `renew` and `release`, and `FenceGate::admit`.
//!
//! The store's methods are `async`; the memory store's futures finish on their first poll.
//! Each sample runs its whole batch of `iters` calls inside **one** `block_on` of a
//! current-thread tokio runtime built once (criterion `iter_custom`), so the runtime's entry
//! and exit are paid once per sample, not per call. `lease_memory/renew_block_on_each`
//! shows what a `block_on` per call would add.
//!
//! Where a call needs the lease in a given state (free for `try_acquire/free`, held for
//! `release`), the batch cycles through 1024 names put into that state outside the timed
//! region, and restores them after it, also untimed.
//!
//! Run with `cargo bench -p steadfast-benches --bench lease`; see `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast_lease::{FenceGate, FencingToken, Lease, LeaseStore, LeaseTerms, MemoryLeaseStore};
use tokio::runtime::Runtime;
use tokio::time::Instant;

/// The lease duration asked for: the default, 15 s. Nothing here waits for an expiry.
const TTL: Duration = Duration::from_secs(15);
/// How many distinct names a batch cycles through when each call needs its own lease.
const NAMES: usize = 1024;

fn terms() -> LeaseTerms {
    LeaseTerms::new(TTL)
}

/// A current-thread runtime; the memory store needs no driver (it reads
/// `tokio::time::Instant::now()`, which works without one).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

fn names() -> Vec<String> {
    (0..NAMES).map(|i| format!("job-{i}")).collect()
}

/// How many calls of a batch are left, at most `NAMES`.
fn batch_len(left: u64) -> usize {
    usize::try_from(left).map_or(NAMES, |left| left.min(NAMES))
}

fn memory_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("lease_memory");
    let rt = runtime();
    let names = names();

    // Acquiring a free lease: the name's record exists (acquired and released once before),
    // nobody holds it, so the call takes it with the next token.
    let store = MemoryLeaseStore::new();
    rt.block_on(async {
        for name in &names {
            let lease = store
                .try_acquire(name, "a", terms())
                .await
                .unwrap()
                .unwrap();
            store.release(&lease).await.unwrap();
        }
    });
    let mut acquired = Vec::with_capacity(NAMES);
    group.bench_function("try_acquire/free", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = &names[..batch_len(left)];
                    let start = Instant::now();
                    for name in batch {
                        acquired.push(store.try_acquire(black_box(name), "a", terms()).await);
                    }
                    elapsed += start.elapsed();
                    // Untimed: free the names again.
                    for lease in acquired.drain(..) {
                        let lease = lease.unwrap().expect("was free");
                        store.release(&lease).await.unwrap();
                    }
                    left -= batch.len() as u64;
                }
                elapsed
            })
        })
    });

    // A follower's campaign attempt: the lease is held by another holder.
    let held = rt
        .block_on(store.try_acquire("held", "a", terms()))
        .unwrap()
        .unwrap();
    group.bench_function("try_acquire/held_by_other", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let outcome = store.try_acquire(black_box("held"), "b", terms()).await;
                    debug_assert!(matches!(outcome, Ok(None)));
                    let _ = black_box(outcome);
                }
                start.elapsed()
            })
        })
    });

    group.bench_function("renew", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(store.renew(black_box(&held)).await.unwrap());
                }
                start.elapsed()
            })
        })
    });

    // The same call with a `block_on` per call, as a naive bench would do it.
    group.bench_function("renew_block_on_each", |b| {
        b.iter(|| black_box(rt.block_on(store.renew(black_box(&held))).unwrap()))
    });

    // Releasing a held lease: each batch first acquires its names (untimed).
    let mut leases: Vec<Lease> = Vec::with_capacity(NAMES);
    let mut released = Vec::with_capacity(NAMES);
    group.bench_function("release", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    leases.clear();
                    for name in &names[..batch_len(left)] {
                        let lease = store.try_acquire(name, "a", terms()).await.unwrap();
                        leases.push(lease.expect("free"));
                    }
                    let start = Instant::now();
                    for lease in &leases {
                        released.push(store.release(black_box(lease)).await);
                    }
                    elapsed += start.elapsed();
                    for result in released.drain(..) {
                        result.expect("was held");
                    }
                    left -= leases.len() as u64;
                }
                elapsed
            })
        })
    });

    group.finish();
}

fn fence_gate(c: &mut Criterion) {
    let mut group = c.benchmark_group("fence_gate");

    // A leader's write within its term: the same token and holder as the last write.
    let gate = FenceGate::new();
    gate.admit("report", "a", FencingToken::new(7)).unwrap();
    group.bench_function("admit/same_term", |b| {
        b.iter(|| {
            gate.admit(black_box("report"), black_box("a"), FencingToken::new(7))
                .unwrap()
        })
    });

    // The first write of each new term: a higher token every call (the gate records the
    // new holder).
    let gate = FenceGate::new();
    let mut token = 0;
    group.bench_function("admit/new_term", |b| {
        b.iter(|| {
            token += 1;
            gate.admit(
                black_box("report"),
                black_box("a"),
                FencingToken::new(token),
            )
            .unwrap()
        })
    });

    // A stale holder's write: refused (builds the `Fenced` error).
    let gate = FenceGate::new();
    gate.admit("report", "b", FencingToken::new(100)).unwrap();
    group.bench_function("admit/stale", |b| {
        b.iter(|| {
            black_box(gate.admit(black_box("report"), black_box("a"), FencingToken::new(99)))
                .unwrap_err()
        })
    });

    group.finish();
}

criterion_group!(benches, memory_store, fence_gate);
criterion_main!(benches);
