//! loom model of concurrent `now()` and `update()`: every interleaving of two threads gives
//! unique timestamps, increasing on each thread, and each after any merged remote.
//!
//! Run with `RUSTFLAGS="--cfg steadfast_loom" cargo test -p steadfast-hlc --test loom --release`.
#![cfg(steadfast_loom)]

use std::time::{Duration, UNIX_EPOCH};

use loom::sync::Arc;
use loom::thread;
use steadfast_core::clock::ManualClock;
use steadfast_hlc::{Hlc, Timestamp};

fn hlc() -> Arc<Hlc<ManualClock>> {
    // A frozen wall clock forces every timestamp onto the contended logical path.
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
    Arc::new(Hlc::with_clock(clock))
}

#[test]
fn concurrent_now_is_unique_and_monotonic() {
    loom::model(|| {
        let hlc = hlc();
        let other = hlc.clone();
        let t = thread::spawn(move || [other.now(), other.now()]);
        let mine = [hlc.now(), hlc.now()];
        let theirs = t.join().expect("thread");
        assert!(mine[0] < mine[1] && theirs[0] < theirs[1]);
        let mut all = [mine[0], mine[1], theirs[0], theirs[1]];
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "duplicate: {all:?}");
    });
}

#[test]
fn update_racing_now_orders_later_events_after_the_remote() {
    loom::model(|| {
        let hlc = hlc();
        let remote = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1_000_200));
        let other = hlc.clone();
        let t = thread::spawn(move || {
            other.update(remote).expect("within max offset");
            other.now()
        });
        let first = hlc.now();
        let second = hlc.now();
        let after_update = t.join().expect("thread");
        assert!(after_update > remote);
        assert!(first < second);
        assert!(after_update != first && after_update != second);
    });
}

#[test]
fn ticks_racing_a_new_microsecond_stay_at_or_above_physical_time() {
    use steadfast_core::clock::WallClock;
    loom::model(|| {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
        let hlc = Arc::new(Hlc::with_clock(clock.clone()));
        let (other, other_clock) = (hlc.clone(), clock.clone());
        let t = thread::spawn(move || {
            let mut out = Vec::new();
            for _ in 0..2 {
                let floor = other_clock.since_epoch().as_micros() as u64;
                out.push((floor, other.now()));
            }
            out
        });
        let mut mine = Vec::new();
        for _ in 0..2 {
            let floor = clock.since_epoch().as_micros() as u64;
            mine.push((floor, hlc.now()));
            clock.advance(Duration::from_micros(1));
        }
        let theirs = t.join().expect("thread");
        let mut all: Vec<Timestamp> = Vec::new();
        for (floor, ts) in mine.iter().chain(theirs.iter()) {
            assert!(
                ts.physical_micros() >= *floor,
                "{ts} below physical {floor}"
            );
            all.push(*ts);
        }
        assert!(mine[0].1 < mine[1].1 && theirs[0].1 < theirs[1].1);
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "duplicate: {all:?}");
    });
}
