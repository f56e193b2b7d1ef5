//! loom models of the lock-free admission and release: the in-flight counter's
//! compare-and-swap against the limit, racing acquires, releases and a shrinking limit.
//! Only the atomic path is modelled, not the waiter list: its lost-wake-up argument needs
//! sequentially consistent loads (store buffering), which loom treats as `AcqRel`, so a
//! model of it reports a false deadlock (loom README, "Unsupported features").
//!
//! Run with `RUSTFLAGS="--cfg steadfast_loom" cargo test -p steadfast-limit --test loom --release`.
#![cfg(steadfast_loom)]

use std::sync::Arc;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use steadfast_limit::algorithm::Aimd;
use steadfast_limit::{Limiter, WindowConfig};

/// A limiter with a fixed limit of `limit` unless a drop halves it.
fn limiter(limit: usize) -> Arc<Limiter> {
    let aimd = Aimd::new()
        .initial_limit(limit)
        .min_limit(1)
        .max_limit(limit)
        .backoff_ratio(0.5);
    Arc::new(Limiter::new(aimd, WindowConfig::per_request()).expect("valid config"))
}

/// Acquires (spinning until a permit frees), checks it is alone, releases.
fn exclusive_round(limiter: &Arc<Limiter>, inside: &AtomicUsize) {
    let permit = loop {
        match limiter.try_acquire() {
            Some(permit) => break permit,
            None => thread::yield_now(),
        }
    };
    assert_eq!(
        inside.fetch_add(1, Ordering::SeqCst),
        0,
        "two permits at limit 1"
    );
    assert_eq!(permit.in_flight(), 1);
    assert!(
        limiter.in_flight() <= 1,
        "in flight {}",
        limiter.in_flight()
    );
    inside.fetch_sub(1, Ordering::SeqCst);
    drop(permit);
}

#[test]
fn limit_one_admits_one_at_a_time_and_both_get_through() {
    loom::model(|| {
        let limiter = limiter(1);
        let inside = Arc::new(AtomicUsize::new(0));
        let (l, i) = (limiter.clone(), inside.clone());
        let t = thread::spawn(move || exclusive_round(&l, &i));
        exclusive_round(&limiter, &inside);
        t.join().expect("thread");
        assert_eq!(limiter.in_flight(), 0);
        assert!(limiter.try_acquire().is_some());
    });
}

#[test]
fn a_release_racing_an_acquire_never_loses_the_permit() {
    // Limit 1: the acquire gets the released permit or nothing; limit 2: it always gets
    // one, and its increment races the release's decrement.
    for limit in [1, 2] {
        loom::model(move || {
            let limiter = limiter(limit);
            let held = limiter.try_acquire().expect("free");
            let l = limiter.clone();
            let t = thread::spawn(move || {
                let permit = l.try_acquire();
                if let Some(permit) = &permit {
                    assert!((1..=limit).contains(&permit.in_flight()));
                    assert!(l.in_flight() <= limit);
                } else {
                    assert_eq!(limit, 1, "a free permit was refused");
                }
            });
            drop(held);
            t.join().expect("thread");
            assert_eq!(limiter.in_flight(), 0, "a permit was lost");
            let again: Vec<_> = (0..limit).map(|_| limiter.try_acquire()).collect();
            assert!(again.iter().all(Option::is_some), "the permit came back");
            assert!(limiter.try_acquire().is_none());
            drop(again);
            assert_eq!(limiter.in_flight(), 0);
        });
    }
}

#[test]
fn shrinking_the_limit_never_revokes_a_held_permit() {
    loom::model(|| {
        let limiter = limiter(3);
        let held = limiter.try_acquire().expect("free");
        let shrinker = limiter.try_acquire().expect("free");
        let l = limiter.clone();
        let t = thread::spawn(move || {
            // A drop halves the limit: floor(3 × 0.5) = 1.
            shrinker.dropped();
            assert_eq!(l.limit(), 1);
            // `held` is still in flight: at the new limit.
            assert!(l.try_acquire().is_none(), "admitted over the shrunk limit");
        });
        let mine = limiter.try_acquire();
        let in_flight = limiter.in_flight();
        assert!((1..=3).contains(&in_flight), "in flight {in_flight}");
        assert_eq!(held.in_flight(), 1);
        t.join().expect("thread");
        assert_eq!(limiter.limit(), 1);
        assert_eq!(limiter.in_flight(), 1 + usize::from(mine.is_some()));
        assert!(limiter.try_acquire().is_none());
        drop(mine);
        assert_eq!(limiter.in_flight(), 1, "the held permit was revoked");
        assert!(limiter.try_acquire().is_none());
        drop(held);
        assert_eq!(limiter.in_flight(), 0, "underflow");
        assert!(limiter.try_acquire().is_some());
    });
}
