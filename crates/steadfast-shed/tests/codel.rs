//! The controlled-delay detector on paused tokio time.

use std::time::Duration;

use steadfast_shed::Codel;
use tokio::time::{Instant, advance};

const MS: Duration = Duration::from_millis(1);

/// Observes one request per 10 ms for one 100 ms interval, each having waited `delay`.
async fn interval_of(codel: &mut Codel, delay: Duration) -> Vec<bool> {
    let mut verdicts = Vec::new();
    for _ in 0..10 {
        verdicts.push(codel.observe(delay, Instant::now()));
        advance(10 * MS).await;
    }
    verdicts
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_burst_is_not_overload() {
    let mut codel = Codel::default();
    // Long waits, but one request got through fast in every interval: a burst, not a
    // standing queue.
    for _ in 0..5 {
        codel.observe(MS, Instant::now());
        let verdicts = interval_of(&mut codel, 50 * MS).await;
        assert!(verdicts.iter().all(|slough| !slough));
        assert!(!codel.is_overloaded());
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_standing_queue_is_overload_and_long_waits_are_sloughed() {
    let mut codel = Codel::default();
    let first = interval_of(&mut codel, 6 * MS).await;
    assert!(first.iter().all(|slough| !slough), "not overloaded yet");
    advance(MS).await;
    // The interval's smallest delay, 6 ms, exceeded the 5 ms target.
    assert!(
        !codel.observe(30 * MS, Instant::now()),
        "the first of an interval never is"
    );
    assert!(codel.is_overloaded());
    assert_eq!(codel.last_min_delay(), 6 * MS);
    assert!(
        codel.observe(11 * MS, Instant::now()),
        "over 2 x target: sloughed"
    );
    assert!(
        !codel.observe(10 * MS, Instant::now()),
        "at 2 x target: kept"
    );
    assert!(codel.should_slough(11 * MS));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn overload_ends_after_an_interval_with_a_short_wait() {
    let mut codel = Codel::default();
    interval_of(&mut codel, 20 * MS).await;
    interval_of(&mut codel, 20 * MS).await;
    assert!(codel.is_overloaded());
    // One quick request in this interval...
    interval_of(&mut codel, 2 * MS).await;
    advance(MS).await;
    codel.observe(20 * MS, Instant::now());
    // ...and the next interval is not overloaded.
    assert!(!codel.is_overloaded());
    assert!(!codel.observe(50 * MS, Instant::now()));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn load_is_the_minimum_delay_over_the_slough_threshold() {
    let mut codel = Codel::new(10 * MS, 100 * MS);
    assert_eq!(codel.slough_threshold(), 20 * MS);
    codel.observe(15 * MS, Instant::now());
    codel.observe(10 * MS, Instant::now());
    assert_eq!(codel.load_percent(), 50);
    codel.observe(Duration::ZERO, Instant::now());
    assert_eq!(codel.load_percent(), 0);
    let mut saturated = Codel::new(MS, 100 * MS);
    saturated.observe(Duration::from_secs(5), Instant::now());
    assert_eq!(saturated.load_percent(), 100);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_overload_verdict_goes_stale_without_observations() {
    let mut codel = Codel::default();
    interval_of(&mut codel, 20 * MS).await;
    advance(MS).await;
    codel.observe(20 * MS, Instant::now());
    assert!(codel.is_overloaded_at(Instant::now()));
    // Nothing leaves the queue for a whole interval: the verdict no longer holds.
    advance(101 * MS).await;
    assert!(codel.is_overloaded());
    assert!(!codel.is_overloaded_at(Instant::now()));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_longest_durations_do_not_overflow() {
    let mut codel = Codel::new(MS, Duration::MAX);
    let now = Instant::now();
    assert!(!codel.observe(6 * MS, now));
    assert!(!codel.observe(6 * MS, now + MS));
    assert!(!codel.should_slough_at(6 * MS, now + MS));
    let deadline = steadfast_shed::Deadline::after(Duration::MAX);
    assert!(deadline.instant() > now + Duration::from_secs(86_400 * 365));
}
