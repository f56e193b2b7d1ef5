//! The small helpers: tracing setup, the manual clock re-export, the counting waker.

use std::time::Duration;

use steadfast_core::clock::WallClock;
use steadfast_test_support::{CountingWaker, ManualClock, trace_init};

#[test]
fn trace_init_installs_a_subscriber_for_this_thread() {
    assert!(!tracing::enabled!(target: "steadfast_test", tracing::Level::DEBUG));
    let t = trace_init();
    assert!(tracing::enabled!(target: "steadfast_test", tracing::Level::DEBUG));
    if std::env::var_os("RUST_LOG").is_none() {
        assert!(!tracing::enabled!(target: "hyper", tracing::Level::DEBUG));
    }
    tracing::debug!(target: "steadfast_test", "visible with --nocapture");
    drop(t);
    assert!(!tracing::enabled!(target: "steadfast_test", tracing::Level::DEBUG));
}

#[test]
fn manual_clock_is_reexported() {
    let clock = ManualClock::from_epoch(Duration::from_secs(10));
    clock.advance(Duration::from_secs(1));
    assert_eq!(clock.since_epoch(), Duration::from_secs(11));
}

#[test]
fn counting_waker_counts_clones_too() {
    let waker = CountingWaker::new();
    let clone = waker.waker().clone();
    clone.wake();
    waker.waker().wake_by_ref();
    assert_eq!(waker.wakes(), 2);
}
