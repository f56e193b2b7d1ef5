//! End-to-end behaviour of the simulator: determinism, collapse, protection, retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast_sim::{
    BackendConfig, Distribution, Envelope, Knee, Load, Metric, OnTimeout, RetryPolicy, Scenario,
    ScenarioError, Schedule, Simulation,
};
use tower::ServiceBuilder;

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Netflix's harness backend: 2 workers, lognormal with a 20 ms mean: 100 requests/s.
fn netflix_backend() -> BackendConfig {
    BackendConfig::new(2, Distribution::lognormal(20 * MS, 0.5))
}

fn print(report: &steadfast_sim::Report) {
    println!("{}", report.summary());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn same_seed_same_report_different_seed_different_report() {
    let scenario = Scenario::new("determinism", netflix_backend(), Load::poisson(150.0))
        .with_duration(secs(20))
        .with_retry(RetryPolicy::new(2, 50 * MS).with_jitter(0.5))
        .with_classes(vec![0.7, 0.3])
        .with_seed(42);
    let stack = |b| {
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(4)
            .service(b)
    };
    let a = scenario.run(stack).await.unwrap();
    let b = scenario.run(stack).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_csv(), b.to_csv());
    let c = scenario.clone().with_seed(43).run(stack).await.unwrap();
    assert_ne!(a.summary(), c.summary());
    assert!(a.summary().rejected > 0 && a.summary().retries > 0);
}

#[test]
fn run_blocking_matches_an_async_run() {
    let scenario = Scenario::new("blocking", netflix_backend(), Load::poisson(80.0))
        .with_duration(secs(10))
        .with_seed(3);
    let blocking = scenario.run_blocking(|b| b).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let in_async = rt.block_on(scenario.run(|b| b)).unwrap();
    assert_eq!(blocking, in_async);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn half_load_latency_is_service_time_and_goodput_is_offered() {
    let backend = BackendConfig::new(2, Distribution::Constant(20 * MS));
    let report = Scenario::new("half load", backend, Load::poisson(50.0))
        .with_seed(1)
        .run(|b| b)
        .await
        .unwrap();
    print(&report);
    let s = report.summary();
    assert_eq!(s.rejected + s.timeouts + s.errors + s.late, 0);
    report
        .check(&[
            Envelope::new(Metric::OfferedRps, 45.0, 55.0),
            Envelope::new(Metric::GoodputRatio, 0.995, 1.0),
            Envelope::new(Metric::LatencyP50, 0.020, 0.021),
            // M/D/2 at ρ = 0.5: a third of arrivals wait, on average about 3 ms (half the
            // 6.7 ms of M/M/2).
            Envelope::new(Metric::LatencyMean, 0.022, 0.025),
            Envelope::at_most(Metric::LatencyP99, 0.060),
            Envelope::new(Metric::Utilisation, 0.45, 0.55),
            Envelope::at_most(Metric::WastedWork, 0.0),
            Envelope::at_most(Metric::QueueMean, 0.2),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    // Goodput per second tracks offered per second, bucket by bucket.
    for b in report.buckets() {
        assert!(b.goodput.abs_diff(b.requests) <= 5, "{b}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn unprotected_backend_collapses_at_twice_capacity() {
    let report = Scenario::new("2x unprotected", netflix_backend(), Load::poisson(200.0))
        .with_seed(2)
        .run(|b| b)
        .await
        .unwrap();
    print(&report);
    // The workers stay busy at capacity...
    report
        .check(&[
            Envelope::new(Metric::BackendThroughputRps, 92.0, 108.0),
            Envelope::at_least(Metric::Utilisation, 0.98),
            Envelope::at_least(Metric::QueueMax, 5_000.0),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    // ...but after the first seconds nothing they finish is in time.
    report
        .check_window(
            secs(10),
            secs(60),
            &[
                Envelope::at_most(Metric::GoodputRps, 1.0),
                Envelope::at_least(Metric::TimeoutRatio, 0.99),
                Envelope::at_least(Metric::WastedRatio, 0.99),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // The queue grows without bound: each bucket ends with a longer queue than the last.
    let queue: Vec<f64> = report
        .buckets()
        .iter()
        .map(|b| b.backend.queue.mean)
        .collect();
    assert!(queue.windows(2).all(|w| w[1] > w[0]), "{queue:?}");
    assert!(queue[59] > 5_000.0, "{}", queue[59]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn littles_law_holds() {
    let report = Scenario::new("little", netflix_backend(), Load::poisson(80.0))
        .with_seed(5)
        .with_duration(secs(120))
        .run(|b| b)
        .await
        .unwrap();
    let s = report.summary();
    assert_eq!(s.ok, s.attempts.min(s.ok));
    let rate = s.throughput_rps();
    let latency = s.latency.mean.unwrap().as_secs_f64();
    let l = s.stack_in_flight.mean;
    println!(
        "L = {l:.3}, λW = {:.3} ({rate:.1}/s × {latency:.4}s)",
        rate * latency
    );
    assert!(
        (l / (rate * latency) - 1.0).abs() < 0.03,
        "L {l} vs λW {}",
        rate * latency
    );
    // Nothing waits in front of an always-ready backend: the stack's in-flight is the
    // backend's.
    assert!((s.backend.in_flight.mean / l - 1.0).abs() < 0.01);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn static_limit_with_load_shedding_keeps_goodput_at_three_times_capacity() {
    let scenario = Scenario::new("3x", netflix_backend(), Load::poisson(300.0)).with_seed(3);
    let unprotected = scenario.run(|b| b).await.unwrap();
    let protected = scenario
        .run(|b| {
            ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(4)
                .service(b)
        })
        .await
        .unwrap();
    print(&unprotected);
    print(&protected);
    protected
        .check(&[
            Envelope::new(Metric::OfferedRps, 290.0, 310.0),
            Envelope::at_least(Metric::GoodputRps, 90.0),
            Envelope::new(Metric::RejectRatio, 0.6, 0.75),
            Envelope::at_most(Metric::TimeoutRatio, 0.0),
            // Latency: at most one request queued per worker.
            Envelope::at_most(Metric::LatencyP99, 0.120),
            // Rejections are immediate.
            Envelope::at_most(Metric::RejectLatencyMax, 0.0),
            Envelope::at_most(Metric::BackendInFlightMax, 4.0),
            Envelope::at_most(Metric::WastedWork, 0.0),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let goodput = |r: &steadfast_sim::Report| r.window(secs(10), secs(60)).goodput_rps();
    assert!(goodput(&protected) > 90.0);
    assert!(goodput(&unprotected) < 1.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn capacity_changes_show_in_per_bucket_throughput() {
    // 4 workers × 20 ms = 200/s; halved to 100/s between 20 s and 40 s. Offered 150/s,
    // shed above 16 in flight so the backlog stays small.
    let backend = BackendConfig::new(4, Distribution::exponential(20 * MS))
        .with_capacity_change(secs(20), 2)
        .with_capacity_change(secs(40), 4);
    let report = Scenario::new("capacity", backend, Load::poisson(150.0))
        .with_seed(4)
        .run(|b| {
            ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(16)
                .service(b)
        })
        .await
        .unwrap();
    let before = report.window(secs(2), secs(20));
    let during = report.window(secs(22), secs(40));
    let after = report.window(secs(42), secs(60));
    for (name, w) in [("before", &before), ("during", &during), ("after", &after)] {
        println!("{name}: {w}");
    }
    for w in [&before, &after] {
        assert!((w.request_rps() - 150.0).abs() < 10.0, "{w}");
        assert!(w.throughput_rps() > 0.95 * w.request_rps(), "{w}");
    }
    assert!((during.throughput_rps() - 100.0).abs() < 8.0, "{during}");
    assert!(during.reject_rps() > 40.0, "{during}");
    assert_eq!(before.backend.workers.mean, 4.0);
    assert_eq!(during.backend.workers.mean, 2.0);
    let workers: Vec<f64> = report
        .buckets()
        .iter()
        .map(|b| b.backend.workers.mean)
        .collect();
    assert_eq!(workers[19], 4.0);
    assert_eq!(workers[20], 2.0);
    assert_eq!(workers[40], 4.0);
    assert!(report.to_csv().lines().nth(21).unwrap().contains(",2.000,"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn client_retries_amplify_offered_load() {
    let base = Scenario::new("retries", netflix_backend(), Load::poisson(200.0))
        .with_seed(6)
        .with_duration(secs(30));
    let stack = |b| {
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(4)
            .service(b)
    };
    let without = base.run(stack).await.unwrap();
    let with = base
        .clone()
        .with_retry(RetryPolicy::new(3, 10 * MS))
        .run(stack)
        .await
        .unwrap();
    print(&without);
    print(&with);
    assert_eq!(
        without.summary().requests,
        with.summary().requests,
        "same arrivals"
    );
    assert_eq!(without.summary().get(Metric::Amplification), Some(1.0));
    with.check(&[
        Envelope::at_least(Metric::Amplification, 2.0),
        Envelope::at_least(Metric::OfferedRps, 400.0),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(with.summary().retries > with.summary().requests);

    // Unprotected, retries of timed-out requests pile more work on a collapsed backend.
    let storm = base
        .clone()
        .with_retry(RetryPolicy::new(3, 10 * MS))
        .run(|b| b)
        .await
        .unwrap();
    print(&storm);
    assert!(storm.summary().attempts > 2 * storm.summary().requests);
    assert!(storm.summary().backend.queue.max > without.summary().backend.queue.max);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn rate_schedule_is_followed_bucket_by_bucket() {
    let rate = Schedule::constant(50.0)
        .then_at(secs(10), 90.0)
        .then_at(secs(20), 0.0)
        .then_at(secs(25), 200.0);
    let report = Scenario::new("schedule", netflix_backend(), Load::poisson_schedule(rate))
        .with_duration(secs(30))
        .with_seed(8)
        .run(|b| {
            ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(2)
                .service(b)
        })
        .await
        .unwrap();
    let phase = |a, b| report.window(secs(a), secs(b)).request_rps();
    assert!((phase(0, 10) - 50.0).abs() < 6.0);
    assert!((phase(10, 20) - 90.0).abs() < 8.0);
    assert_eq!(phase(20, 25), 0.0);
    assert!((phase(25, 30) - 200.0).abs() < 15.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn periodic_arrivals_are_exact() {
    let backend = BackendConfig::new(1, Distribution::Constant(10 * MS));
    let report = Scenario::new("periodic", backend, Load::periodic(20.0))
        .with_duration(secs(10))
        .run(|b| b)
        .await
        .unwrap();
    let s = report.summary();
    // One every 50 ms, the first at 50 ms: 199 arrivals before 10 s (the 200th is at 10 s).
    assert_eq!(s.requests, 199);
    assert_eq!(s.latency.max, Some(10 * MS));
    assert_eq!(s.latency.p50, Some(10 * MS));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn closed_loop_clients_follow_the_response_time_law() {
    // N clients, think Z, response R: throughput X = N / (R + Z) (interactive response time law).
    let backend = BackendConfig::new(4, Distribution::exponential(20 * MS));
    let report = Scenario::new(
        "closed",
        backend,
        Load::closed(10, Distribution::exponential(100 * MS)),
    )
    .with_seed(9)
    .run(|b| b)
    .await
    .unwrap();
    print(&report);
    let s = report.summary();
    let r = s.latency.mean.unwrap().as_secs_f64();
    let expected = 10.0 / (r + 0.1);
    assert!(
        (s.throughput_rps() / expected - 1.0).abs() < 0.05,
        "X {} vs N/(R+Z) {expected}",
        s.throughput_rps()
    );
    assert!(s.stack_in_flight.max <= 10);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn closed_loop_with_instant_rejections_still_advances_time() {
    let backend = BackendConfig::new(0, Distribution::Constant(20 * MS));
    let report = Scenario::new(
        "outage",
        backend,
        Load::closed(3, Distribution::Constant(Duration::ZERO)),
    )
    .with_duration(secs(1))
    .run(|b| {
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1)
            .service(b)
    })
    .await
    .unwrap();
    // One client holds the only permit until its deadline; the other two are rejected
    // once per millisecond.
    let s = report.summary();
    assert!(s.rejected >= 1_900 && s.rejected <= 2_000, "{s}");
    assert_eq!(s.goodput, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waiting_clients_count_late_answers() {
    let report = Scenario::new("wait", netflix_backend(), Load::poisson(150.0))
        .with_duration(secs(20))
        .with_on_timeout(OnTimeout::Wait)
        .with_timeout(Duration::from_millis(200))
        .with_seed(10)
        .run(|b| b)
        .await
        .unwrap();
    print(&report);
    let s = report.summary();
    assert_eq!(s.timeouts, 0);
    assert!(s.late > s.goodput, "{s}");
    assert_eq!(s.ok, s.goodput + s.late);
    assert!(report.unfinished() > 500);
    assert_eq!(s.backend.wasted, s.late);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn deadline_and_cancellation_aware_backends_bound_the_queue_but_fifo_still_wastes() {
    let scenario = |backend| {
        Scenario::new("aware", backend, Load::poisson(200.0))
            .with_duration(secs(30))
            .with_timeout(Duration::from_millis(500))
            .with_seed(11)
    };
    let plain = scenario(netflix_backend()).run(|b| b).await.unwrap();
    let expired = scenario(netflix_backend().with_drop_expired(true))
        .run(|b| b)
        .await
        .unwrap();
    let cancelled = scenario(netflix_backend().with_skip_cancelled(true))
        .run(|b| b)
        .await
        .unwrap();
    for r in [&plain, &expired, &cancelled] {
        print(r);
    }
    let p = plain.summary();
    assert_eq!(p.backend.skipped, 0);
    // Skipping dead work bounds the queue at about rate × deadline (200/s × 0.5 s)...
    // ...but with a FIFO queue it helps goodput only so much: the requests that do get
    // served have waited almost their whole deadline, and most still finish too late.
    assert!(p.backend.queue.max > 2_500, "{p}");
    assert_eq!(expired.summary().goodput, cancelled.summary().goodput);
    for r in [&expired, &cancelled] {
        let s = r.summary();
        assert!(s.backend.skipped > 2_000, "{s}");
        assert!(s.backend.queue.max < 150, "{s}");
        assert!(s.goodput > 2 * p.goodput, "{s}");
        assert!(s.backend.wasted_work < p.backend.wasted_work, "{s}");
        assert!(s.get(Metric::WastedRatio).unwrap() > 0.5, "{s}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn knee_stretches_service_time_with_concurrency() {
    // Vector's "shallow knee" link: 100 ms, no queue, knee at 10 with exponent 1.1.
    let link = BackendConfig::unlimited(Distribution::Constant(100 * MS)).with_knee(Knee {
        start: 10,
        linear: 0.0,
        exponent: 1.1,
    });
    let low = Scenario::new("knee low", link.clone(), Load::periodic(50.0))
        .with_duration(secs(20))
        .run(|b| b)
        .await
        .unwrap();
    let high = Scenario::new("knee high", link, Load::periodic(150.0))
        .with_duration(secs(20))
        .run(|b| b)
        .await
        .unwrap();
    print(&low);
    print(&high);
    assert_eq!(low.summary().latency.max, Some(100 * MS));
    assert!(high.summary().latency.p50.unwrap() > 200 * MS);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn limit_probe_is_sampled_and_classes_are_split() {
    let permits = Arc::new(AtomicUsize::new(4));
    let probe = Arc::clone(&permits);
    let scenario = Scenario::new("probe", netflix_backend(), Load::poisson(300.0))
        .with_duration(secs(10))
        .with_classes(vec![3.0, 1.0])
        .with_seed(12);
    let report = Simulation::new(scenario)
        .limit_probe(move || Some(probe.load(Ordering::Relaxed) as f64))
        .run(|b| {
            ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(4)
                .service(b)
        })
        .await
        .unwrap();
    let s = report.summary();
    let limit = s.limit.as_ref().unwrap();
    assert_eq!(limit.samples, 1_000);
    assert_eq!(
        (limit.min, limit.max, limit.mode, limit.last),
        (4.0, 4.0, 4.0, 4.0)
    );
    assert_eq!(report.buckets()[3].limit.as_ref().unwrap().samples, 100);
    assert!(
        report
            .to_csv()
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",4.000,4.000,4.000")
    );
    let share = s.classes[0].requests as f64 / s.requests as f64;
    assert!((share - 0.75).abs() < 0.02, "{share}");
    assert_eq!(s.classes[0].requests + s.classes[1].requests, s.requests);
    // No probe, no limit.
    let none = Scenario::new("no probe", netflix_backend(), Load::poisson(10.0))
        .with_duration(secs(2))
        .run(|b| b)
        .await
        .unwrap();
    assert!(none.summary().limit.is_none());
    let err = none
        .check(&[Envelope::new(Metric::LimitMean, 1.0, 2.0)])
        .unwrap_err();
    assert!(err.to_string().contains("limit_mean has no value"), "{err}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn envelope_violations_say_what_and_where() {
    let report = Scenario::new("envelopes", netflix_backend(), Load::poisson(50.0))
        .with_duration(secs(5))
        .with_seed(13)
        .run(|b| b)
        .await
        .unwrap();
    let err = report
        .check(&[
            Envelope::new(Metric::OfferedRps, 40.0, 60.0),
            Envelope::at_least(Metric::GoodputRps, 1_000.0),
            Envelope::at_most(Metric::LatencyP99, 0.001),
        ])
        .unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert_eq!(err.failures.len(), 2);
    assert!(
        msg.starts_with(
            "scenario `envelopes` (seed 13, window 0ns..5s): 2 of 3 envelopes violated"
        )
    );
    assert!(msg.contains("\n  goodput_rps = "), "{msg}");
    assert!(msg.contains("expected [1000, inf]"), "{msg}");
    assert!(msg.contains("\n  latency_p99_s = "), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn refuses_a_multi_threaded_runtime() {
    let err = Scenario::new("mt", netflix_backend(), Load::poisson(1.0))
        .run(|b| b)
        .await
        .unwrap_err();
    assert_eq!(err, ScenarioError::NotCurrentThread);
}

#[tokio::test(flavor = "current_thread")]
async fn refuses_a_running_clock() {
    let err = Scenario::new("clock", netflix_backend(), Load::poisson(1.0))
        .run(|b| b)
        .await
        .unwrap_err();
    assert_eq!(err, ScenarioError::TimeNotPaused);
}

#[test]
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "measures the real time a simulated minute takes"
)]
fn a_simulated_minute_takes_well_under_a_second() {
    let scenario = Scenario::new("speed", netflix_backend(), Load::poisson(300.0)).with_seed(14);
    let start = std::time::Instant::now();
    let report = scenario
        .run_blocking(|b| {
            ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(4)
                .service(b)
        })
        .unwrap();
    let protected = start.elapsed();
    let start = std::time::Instant::now();
    let collapsed = scenario.run_blocking(|b| b).unwrap();
    let unprotected = start.elapsed();
    println!(
        "60 s at 300/s: protected {protected:?} ({} attempts), collapsed {unprotected:?} ({} attempts)",
        report.summary().attempts,
        collapsed.summary().attempts
    );
    // Generous bounds: debug builds on a shared, busy machine. Typical: well under 1 s.
    assert!(protected < Duration::from_secs(5), "{protected:?}");
    assert!(unprotected < Duration::from_secs(5), "{unprotected:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn backpressure_without_shedding_queues_in_front_of_the_stack() {
    // A concurrency limit alone applies backpressure: attempts wait for `poll_ready` in
    // front of the stack and time out there. But an attempt that times out inside the stack
    // releases its permit while the backend keeps working on it, so a backend that ignores
    // cancellation still gets more than the limit.
    let scenario = |backend| {
        Scenario::new("backpressure", backend, Load::poisson(200.0))
            .with_duration(secs(30))
            .with_seed(15)
    };
    let stack = |b| ServiceBuilder::new().concurrency_limit(4).service(b);
    let plain = scenario(netflix_backend()).run(stack).await.unwrap();
    let aware = scenario(netflix_backend().with_skip_cancelled(true))
        .run(stack)
        .await
        .unwrap();
    print(&plain);
    print(&aware);
    for r in [&plain, &aware] {
        let s = r.summary();
        assert_eq!(s.rejected, 0);
        assert_eq!(s.stack_in_flight.max, 4, "{s}");
        assert!(s.waiting.mean > 50.0, "{s}");
        assert!(s.timeouts > s.requests / 3, "{s}");
        assert!(r.unfinished() > 50);
    }
    assert!(plain.summary().backend.in_flight.max > 1_000);
    // Skipping cancelled work keeps the backend near the limit (its queue also holds
    // cancelled requests until a worker reaches them)...
    assert!(aware.summary().backend.in_flight.max <= 20);
    // ...but goodput stays poor: the FIFO in front of the stack makes every request wait
    // most of its deadline. Shedding, not backpressure, is what keeps goodput.
    assert!(aware.summary().goodput > 2 * plain.summary().goodput);
    assert!(aware.summary().goodput_rps() < 30.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn csv_has_one_row_per_bucket_and_consistent_columns() {
    let report = Scenario::new("csv", netflix_backend(), Load::poisson(120.0))
        .with_duration(Duration::from_millis(10_500))
        .with_bucket(Duration::from_millis(500))
        .with_seed(16)
        .run(|b| b)
        .await
        .unwrap();
    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 21);
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
    assert!(lines[1].starts_with("0.000,0.500,"));
    assert!(lines[21].starts_with("10.000,10.500,"));
    // Windows aggregate whole buckets; the buckets add up to the run.
    let all = report.window(Duration::ZERO, secs(11));
    assert_eq!(&all, report.summary());
    let total: u64 = report.buckets().iter().map(|b| b.requests).sum();
    assert_eq!(total, report.summary().requests);
    let half = report.window(secs(5), secs(6));
    assert_eq!(half.start, secs(5));
    assert_eq!(half.end, secs(6));
    assert_eq!(
        half.requests,
        report.buckets()[10].requests + report.buckets()[11].requests
    );
}
