//! Retry budgets: Finagle's TPS budget, gRPC throttling, the AWS retry quota.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use steadfast_retry::budget::{
    AwsRetryQuota, GrpcThrottle, NoBudget, RetryBudget, RetryCause, RetryPermit, TpsBudget,
};
use tokio::time::advance;

const SECOND: Duration = Duration::from_secs(1);

/// Takes retries until the budget refuses; returns how many it granted.
fn drain(budget: &dyn RetryBudget) -> u64 {
    let mut granted = 0;
    while budget.try_retry(RetryCause::Failure).is_some() {
        granted += 1;
        assert!(granted <= 10_000_000, "the budget never ran out");
    }
    granted
}

fn requests(budget: &dyn RetryBudget, n: u64) {
    for _ in 0..n {
        budget.on_request();
    }
}

// ---------------------------------------------------------------------------------------
// TpsBudget

#[test]
fn tps_ratio_is_exact_where_tower_truncates() {
    // (ratio, numerator, denominator): tower allows 33 %, 50 % and 100 % for these.
    let ratios = [(0.3, 3, 10), (0.4, 2, 5), (0.7, 7, 10)];
    for (ratio, num, den) in ratios {
        for n in [10u64, 100, 1_000, 10_000] {
            let budget = TpsBudget::new(10 * SECOND, 0, ratio).unwrap();
            requests(&budget, n);
            assert_eq!(
                budget.balance(),
                n * num / den,
                "ratio {ratio}, {n} requests"
            );
            assert_eq!(drain(&budget), n * num / den, "ratio {ratio}, {n} requests");
            assert_eq!(budget.balance(), 0);
        }
    }
}

#[test]
fn tps_ratio_floors_partial_retries() {
    // 0.15: 16 % with tower. 7 requests × 0.15 = 1.05 retries → 1; 0.35 → 0.
    let budget = TpsBudget::new(10 * SECOND, 0, 0.15).unwrap();
    requests(&budget, 7);
    assert_eq!(drain(&budget), 1);
    // The remaining 0.05 carries over: 13 more requests make 20 × 0.15 = 3 in total.
    requests(&budget, 13);
    assert_eq!(drain(&budget), 2);
    // Ratios above 1 are allowed (up to Finagle's 1000).
    let generous = TpsBudget::new(10 * SECOND, 0, 2.5).unwrap();
    requests(&generous, 3);
    assert_eq!(drain(&generous), 7);
}

#[test]
fn tps_reserve_is_available_with_zero_traffic() {
    // Defaults: 10 retries/s × 10 s.
    let budget = TpsBudget::default();
    assert_eq!(budget.ttl(), 10 * SECOND);
    assert_eq!(budget.min_retries_per_sec(), 10);
    assert_eq!(budget.retry_ratio(), 0.2);
    assert_eq!(budget.balance(), 100);
    assert_eq!(drain(&budget), 100);

    let budget = TpsBudget::new(2 * SECOND, 3, 0.0).unwrap();
    assert_eq!(drain(&budget), 6);
    // A ratio of zero: requests earn nothing.
    requests(&budget, 1_000);
    assert_eq!(drain(&budget), 0);
}

#[test]
fn tps_reserve_and_deposits_add_up() {
    let budget = TpsBudget::new(10 * SECOND, 1, 0.5).unwrap();
    requests(&budget, 5); // 2.5 retries + 10 in reserve
    assert_eq!(drain(&budget), 12);
    budget.on_request(); // the remaining half retry becomes a whole one
    assert_eq!(drain(&budget), 1);
}

#[test]
fn tps_zero_ratio_and_zero_reserve_never_retries() {
    let budget = TpsBudget::new(SECOND, 0, 0.0).unwrap();
    requests(&budget, 100);
    assert_eq!(drain(&budget), 0);
}

#[tokio::test(start_paused = true)]
async fn tps_deposits_expire_after_ttl() {
    let budget = TpsBudget::new(10 * SECOND, 0, 0.5).unwrap();
    requests(&budget, 10);
    assert_eq!(budget.balance(), 5);
    advance(10 * SECOND - Duration::from_millis(1)).await;
    assert_eq!(budget.balance(), 5, "still within ttl");
    advance(Duration::from_millis(1)).await;
    assert_eq!(budget.balance(), 0, "expired at ttl");
    assert!(budget.try_retry(RetryCause::Failure).is_none());
    requests(&budget, 2);
    assert_eq!(drain(&budget), 1, "new deposits count");
}

#[tokio::test(start_paused = true)]
async fn tps_window_slides() {
    let budget = TpsBudget::new(10 * SECOND, 0, 0.5).unwrap();
    requests(&budget, 10); // t = 0 s
    advance(5 * SECOND).await;
    requests(&budget, 4); // t = 5 s
    assert_eq!(budget.balance(), 7);
    advance(5 * SECOND).await; // t = 10 s: the first batch expires
    assert_eq!(budget.balance(), 2);
    advance(5 * SECOND).await; // t = 15 s: all expired
    assert_eq!(budget.balance(), 0);
}

#[tokio::test(start_paused = true)]
async fn tps_deposits_count_at_least_99_percent_of_ttl() {
    // Granularity ttl / 100: a deposit made late in a 100 ms slot still counts 9.9 s.
    let budget = TpsBudget::new(10 * SECOND, 0, 1.0).unwrap();
    advance(Duration::from_millis(99)).await;
    budget.on_request();
    advance(Duration::from_millis(9_900)).await; // 9.999 s
    assert_eq!(budget.balance(), 1);
    advance(Duration::from_millis(1)).await; // 10 s: the slot of 0..100 ms expires
    assert_eq!(budget.balance(), 0);
}

#[tokio::test(start_paused = true)]
async fn tps_reserve_refills_at_min_retries_per_sec() {
    let budget = TpsBudget::new(10 * SECOND, 1, 0.0).unwrap();
    assert_eq!(drain(&budget), 10);
    advance(5 * SECOND).await;
    assert_eq!(drain(&budget), 0, "withdrawals count for ttl");
    advance(5 * SECOND).await;
    assert_eq!(drain(&budget), 10, "and then expire");
}

#[tokio::test(start_paused = true)]
async fn tps_idle_longer_than_ttl_resets() {
    let budget = TpsBudget::new(SECOND, 2, 1.0).unwrap();
    requests(&budget, 3);
    assert_eq!(drain(&budget), 5);
    advance(3_600 * SECOND).await;
    assert_eq!(budget.balance(), 2);
}

#[test]
fn tps_validates_like_finagle() {
    assert!(TpsBudget::new(Duration::from_millis(999), 10, 0.2).is_err());
    assert!(TpsBudget::new(Duration::from_millis(60_001), 10, 0.2).is_err());
    assert!(TpsBudget::new(SECOND, 10, 0.2).is_ok());
    assert!(TpsBudget::new(60 * SECOND, 10, 0.2).is_ok());
    for bad in [-0.01, 1000.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = TpsBudget::new(10 * SECOND, 10, bad).unwrap_err();
        assert!(err.to_string().contains("retry_ratio"), "{err}");
    }
    assert!(TpsBudget::new(10 * SECOND, 10, 0.0).is_ok());
    assert!(TpsBudget::new(10 * SECOND, u32::MAX, 1000.0).is_ok());
    let err = TpsBudget::new(Duration::ZERO, 10, 0.2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid retry budget: TpsBudget ttl must be between 1 s and 60 s"
    );
}

#[test]
fn tps_concurrent_withdrawals_never_exceed_deposits_and_reserve() {
    // No tokio runtime: tokio's Instant reads the real clock, and the test ends far
    // within the 60 s ttl.
    const THREADS: u64 = 8;
    let budget = Arc::new(TpsBudget::new(60 * SECOND, 1, 0.25).unwrap()); // reserve 60
    requests(&*budget, 1_000); // + 250
    let granted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..1_000 {
                    if budget.try_retry(RetryCause::Failure).is_some() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(granted.load(Ordering::Relaxed), 310);
    assert_eq!(budget.balance(), 0);
}

#[test]
fn tps_concurrent_deposits_and_withdrawals_balance_exactly() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 5_000;
    let budget = Arc::new(TpsBudget::new(60 * SECOND, 1, 0.25).unwrap());
    let granted = AtomicU64::new(0);
    let requested = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..PER_THREAD {
                    requested.fetch_add(1, Ordering::SeqCst);
                    budget.on_request();
                    for _ in 0..2 {
                        if budget.try_retry(RetryCause::Failure).is_some() {
                            // `requested` is at least the deposits made so far.
                            let g = granted.fetch_add(1, Ordering::SeqCst) + 1;
                            let r = requested.load(Ordering::SeqCst);
                            assert!(g <= r / 4 + 60, "{g} retries after {r} requests");
                        }
                    }
                }
            });
        }
    });
    // Deposits: 40 000 × 0.25 = 10 000, reserve 60; every one either granted or left.
    let granted = granted.load(Ordering::SeqCst);
    assert!(granted <= 10_060);
    assert_eq!(granted + budget.balance(), 10_060);
}

// ---------------------------------------------------------------------------------------
// GrpcThrottle

#[test]
fn grpc_threshold_is_strictly_greater_than_half() {
    let throttle = GrpcThrottle::new(10, 0.1).unwrap();
    assert_eq!(throttle.milli_tokens(), 10_000);
    for left in (6..10).rev() {
        throttle.on_failure();
        assert_eq!(throttle.milli_tokens(), left * 1_000);
        assert!(
            throttle.try_retry(RetryCause::Failure).is_some(),
            "{left} > 5"
        );
    }
    throttle.on_failure();
    assert_eq!(throttle.token_count(), 5.0);
    assert!(
        throttle.try_retry(RetryCause::Failure).is_none(),
        "5 is not > 5"
    );
    throttle.on_success(None);
    assert_eq!(throttle.milli_tokens(), 5_100);
    assert!(throttle.try_retry(RetryCause::Failure).is_some(), "5.1 > 5");
}

#[test]
fn grpc_try_retry_takes_no_token() {
    let throttle = GrpcThrottle::default();
    for _ in 0..1_000 {
        let permit = throttle.try_retry(RetryCause::Overload).unwrap();
        assert_eq!(permit.cost(), 0);
    }
    assert_eq!(throttle.milli_tokens(), 10_000);
}

#[test]
fn grpc_odd_max_tokens_threshold() {
    // Threshold 1.5, exact in thousandths.
    let throttle = GrpcThrottle::new(3, 0.25).unwrap();
    throttle.on_failure(); // 2
    assert!(throttle.try_retry(RetryCause::Failure).is_some());
    throttle.on_failure(); // 1
    assert!(throttle.try_retry(RetryCause::Failure).is_none());
    throttle.on_success(None); // 1.25
    throttle.on_success(None); // 1.5
    assert_eq!(throttle.milli_tokens(), 1_500);
    assert!(
        throttle.try_retry(RetryCause::Failure).is_none(),
        "1.5 is not > 1.5"
    );
    throttle.on_success(None); // 1.75
    assert!(throttle.try_retry(RetryCause::Failure).is_some());
}

#[test]
fn grpc_successes_do_not_drift() {
    let throttle = GrpcThrottle::new(10, 0.1).unwrap();
    for _ in 0..10 {
        throttle.on_failure();
    }
    for _ in 0..30 {
        throttle.on_success(None);
    }
    // 0 + 30 × 0.1 is exactly 3 (in f64 it would be 3.0000000000000013).
    assert_eq!(throttle.milli_tokens(), 3_000);
}

#[test]
fn grpc_count_is_capped_at_max_and_floored_at_zero() {
    let throttle = GrpcThrottle::new(10, 0.7).unwrap();
    throttle.on_success(None);
    assert_eq!(throttle.milli_tokens(), 10_000, "capped at max_tokens");
    throttle.on_failure();
    throttle.on_success(Some(RetryPermit::new(0)));
    throttle.on_success(None);
    assert_eq!(throttle.milli_tokens(), 10_000, "9 + 0.7 + 0.7 capped");
    for _ in 0..25 {
        throttle.on_failure();
    }
    assert_eq!(throttle.milli_tokens(), 0, "floored at 0");
    throttle.on_success(None);
    assert_eq!(throttle.milli_tokens(), 700);
    // A ratio above max_tokens refills fully.
    let huge = GrpcThrottle::new(2, 1e12).unwrap();
    huge.on_failure();
    huge.on_failure();
    huge.on_success(None);
    assert_eq!(huge.milli_tokens(), 2_000);
}

#[test]
fn grpc_ratio_is_rounded_to_three_decimals() {
    let cases = [
        (0.1, 100),
        (0.1234, 123),
        (0.1236, 124),
        (0.0006, 1),
        (1.0, 1_000),
        (2.5, 2_500),
    ];
    for (ratio, milli) in cases {
        let throttle = GrpcThrottle::new(1_000, ratio).unwrap();
        assert_eq!(throttle.token_ratio(), milli as f64 / 1000.0, "{ratio}");
        for _ in 0..3 {
            throttle.on_failure();
        }
        throttle.on_success(None);
        assert_eq!(throttle.milli_tokens(), 997_000 + milli, "{ratio}");
    }
}

#[test]
fn grpc_validates_like_a6() {
    assert!(GrpcThrottle::new(0, 0.1).is_err());
    assert!(GrpcThrottle::new(1_001, 0.1).is_err());
    assert!(GrpcThrottle::new(1, 0.1).is_ok());
    assert_eq!(GrpcThrottle::new(1_000, 0.1).unwrap().max_tokens(), 1_000);
    for bad in [0.0, -0.1, 0.0004, f64::NAN, f64::INFINITY] {
        let err = GrpcThrottle::new(10, bad).unwrap_err();
        assert!(err.to_string().contains("token_ratio"), "{bad}: {err}");
    }
    let default = GrpcThrottle::default();
    assert_eq!((default.max_tokens(), default.token_ratio()), (10, 0.1));
}

#[test]
fn grpc_concurrent_updates_are_not_lost() {
    let throttle = GrpcThrottle::new(1_000, 0.5).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    throttle.on_failure();
                    throttle.on_success(None);
                }
            });
        }
    });
    // Never at the cap or floor in between: 400 × (−1 + 0.5).
    assert_eq!(throttle.milli_tokens(), 800_000);
}

// ---------------------------------------------------------------------------------------
// AwsRetryQuota

#[test]
fn aws_costs_by_cause() {
    let quota = AwsRetryQuota::default();
    assert_eq!(quota.capacity(), 500);
    let failure = quota.try_retry(RetryCause::Failure).unwrap();
    let timeout = quota.try_retry(RetryCause::Timeout).unwrap();
    let overload = quota.try_retry(RetryCause::Overload).unwrap();
    assert_eq!(
        (failure.cost(), timeout.cost(), overload.cost()),
        (5, 10, 5)
    );
    assert_eq!(quota.available(), 480);
}

#[test]
fn aws_empty_quota_fails_fast() {
    let quota = AwsRetryQuota::default();
    assert_eq!(drain(&quota), 100);
    assert_eq!(quota.available(), 0);
    let quota = AwsRetryQuota::default();
    let mut timeouts = 0;
    while quota.try_retry(RetryCause::Timeout).is_some() {
        timeouts += 1;
    }
    assert_eq!(timeouts, 50);
}

#[test]
fn aws_cheaper_retry_fits_where_a_timeout_does_not() {
    let quota = AwsRetryQuota::default();
    for _ in 0..49 {
        let _ = quota.try_retry(RetryCause::Timeout).unwrap();
    }
    let _ = quota.try_retry(RetryCause::Failure).unwrap(); // 5 left
    assert!(quota.try_retry(RetryCause::Timeout).is_none());
    assert_eq!(quota.available(), 5, "a refused retry takes nothing");
    assert!(quota.try_retry(RetryCause::Failure).is_some());
}

#[test]
fn aws_successful_retry_refunds_its_permit() {
    let quota = AwsRetryQuota::default();
    let _first = quota.try_retry(RetryCause::Timeout).unwrap();
    let second = quota.try_retry(RetryCause::Failure).unwrap();
    assert_eq!(quota.available(), 485);
    // The first retry failed: its permit is spent. The second succeeded: refunded.
    quota.on_failure();
    quota.on_success(Some(second));
    assert_eq!(quota.available(), 490);
}

#[test]
fn aws_success_without_retry_adds_one_up_to_capacity() {
    let quota = AwsRetryQuota::default();
    quota.on_success(None);
    assert_eq!(quota.available(), 500, "capped at capacity");
    let _ = quota.try_retry(RetryCause::Failure).unwrap();
    quota.on_success(None);
    assert_eq!(quota.available(), 496);
    for _ in 0..10 {
        quota.on_success(None);
    }
    assert_eq!(quota.available(), 500);
    // A refund never overfills either.
    let permit = quota.try_retry(RetryCause::Failure).unwrap();
    quota.on_success(None);
    quota.on_success(Some(permit));
    assert_eq!(quota.available(), 500);
}

#[test]
fn aws_failures_and_requests_cost_nothing() {
    let quota = AwsRetryQuota::default();
    for _ in 0..1_000 {
        quota.on_request();
        quota.on_failure();
    }
    assert_eq!(quota.available(), 500);
}

#[test]
fn aws_overload_cost_can_differ() {
    // The 2026 behaviour: 14 for other retries, 5 for throttling.
    let quota = AwsRetryQuota::new(500, 14, 14)
        .unwrap()
        .with_overload_cost(5)
        .unwrap();
    assert_eq!(quota.cost(RetryCause::Failure), 14);
    assert_eq!(quota.cost(RetryCause::Timeout), 14);
    assert_eq!(quota.try_retry(RetryCause::Overload).unwrap().cost(), 5);
    assert_eq!(quota.available(), 495);
}

#[test]
fn aws_validates() {
    assert!(AwsRetryQuota::new(0, 5, 10).is_err());
    assert!(AwsRetryQuota::new(500, 0, 10).is_err());
    assert!(AwsRetryQuota::new(500, 5, 0).is_err());
    assert!(AwsRetryQuota::new(500, 501, 10).is_err());
    assert!(AwsRetryQuota::new(10, 5, 10).is_ok());
    assert!(AwsRetryQuota::default().with_overload_cost(0).is_err());
    assert!(AwsRetryQuota::default().with_overload_cost(501).is_err());
}

#[test]
fn aws_concurrent_retries_never_overdraw() {
    let quota = AwsRetryQuota::default();
    let granted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    if quota.try_retry(RetryCause::Failure).is_some() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(granted.load(Ordering::Relaxed), 100);
    assert_eq!(quota.available(), 0);
}

// ---------------------------------------------------------------------------------------
// Shared

#[test]
fn no_budget_always_allows() {
    let budget = NoBudget;
    for _ in 0..10_000 {
        budget.on_failure();
        assert_eq!(
            budget.try_retry(RetryCause::Timeout).map(|p| p.cost()),
            Some(0)
        );
    }
}

#[test]
fn clones_of_an_arc_share_one_budget() {
    let budgets: [Arc<dyn RetryBudget>; 3] = [
        Arc::new(TpsBudget::new(10 * SECOND, 0, 0.5).unwrap()),
        Arc::new(GrpcThrottle::new(4, 0.1).unwrap()),
        Arc::new(AwsRetryQuota::new(10, 5, 10).unwrap()),
    ];
    for budget in budgets {
        let clone = Arc::clone(&budget);
        requests(&*clone, 4);
        // TPS: 2 retries earned; gRPC: 4 → 3 after one failure; AWS: 10 tokens.
        clone.on_failure();
        assert!(
            budget.try_retry(RetryCause::Failure).is_some(),
            "{budget:?}"
        );
        assert!(clone.try_retry(RetryCause::Failure).is_some(), "{budget:?}");
        budget.on_failure();
        assert!(clone.try_retry(RetryCause::Failure).is_none(), "{budget:?}");
    }
}

#[test]
fn budgets_are_debug() {
    let tps = format!("{:?}", TpsBudget::default());
    assert!(
        tps.contains("TpsBudget") && tps.contains("retry_ratio: 0.2"),
        "{tps}"
    );
    let grpc = format!("{:?}", GrpcThrottle::default());
    assert!(grpc.contains("token_count: 10.0"), "{grpc}");
    let aws = format!("{:?}", AwsRetryQuota::default());
    assert!(aws.contains("available: 500"), "{aws}");
}
