//! Overload scenarios in the deterministic simulator (`steadfast-sim`): Netflix's load
//! harness and a capacity drop, for each algorithm, failing fast.
//!
//! Every run is seeded and runs on paused tokio time, so the numbers below are exact and
//! reproducible. Where an algorithm misses a target, the target stays in an `#[ignore]`d
//! test (run them with `cargo test -p steadfast-limit --test scenarios -- --ignored`) and
//! a passing test pins what it achieves today, so a regression or an improvement shows.
//!
//! Configurations: our defaults (Netflix's parameters, minimum limit 1, Gradient2's queue
//! allowance `sqrt(L)`), Netflix's 1 s windows of at least 10 requests, `Mode::FailFast`.
//! AIMD sees no latency, only losses, so it gets the one setting it needs: an RTT above
//! 60 ms (3× the mean service time) counts as a drop.

use std::time::Duration;

use steadfast_limit::algorithm::{Aimd, Gradient2, LimitAlgorithm, QueueSize, Vegas};
use steadfast_limit::{AdaptiveConcurrencyLayer, Mode, WindowConfig};
use steadfast_sim::{
    BackendConfig, Distribution, Envelope, Load, Metric, Report, Scenario, Schedule, Simulation,
    Summary,
};
use tower::Layer;

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[derive(Debug, Clone, Copy)]
enum Algo {
    Aimd,
    Vegas,
    Gradient2,
    /// Gradient2 with Netflix's constant queue allowance of 4 instead of our `sqrt(L)`.
    Gradient2Constant4,
    /// Gradient2 tuned to hug L*: no latency tolerance, a queue allowance of 1, and
    /// smoothing 0.5 so that it steps down up to 25% per window.
    Gradient2Tight,
}

fn algorithm(algo: Algo) -> Box<dyn LimitAlgorithm> {
    match algo {
        Algo::Aimd => Box::new(Aimd::new().timeout(60 * MS)),
        Algo::Vegas => Box::new(Vegas::new().seed(7)),
        Algo::Gradient2 => Box::new(Gradient2::new()),
        Algo::Gradient2Constant4 => Box::new(Gradient2::new().queue_size(QueueSize::Constant(4))),
        Algo::Gradient2Tight => Box::new(
            Gradient2::new()
                .tolerance(1.0)
                .queue_size(QueueSize::Constant(1))
                .smoothing(0.5),
        ),
    }
}

/// Runs `scenario` against the layer in fail-fast mode, probing its limit.
async fn run(scenario: &Scenario, algo: Algo) -> Report {
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(algorithm(algo))
        .window(WindowConfig::new())
        .mode(Mode::FailFast)
        .build()
        .expect("valid configuration");
    let limiter = layer.limiter().clone();
    Simulation::new(scenario.clone())
        .limit_probe(move || Some(limiter.limit() as f64))
        .run(|backend| layer.layer(backend))
        .await
        .expect("the scenario runs")
}

fn ms_of(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn describe(s: &Summary) -> String {
    format!(
        "goodput {:.1}/s, rejected {:.3}%, p50 {:.0} ms, p99 {:.0} ms, limit mean {:.1}",
        s.goodput_rps(),
        100.0 * s.get(Metric::RejectRatio).unwrap_or(0.0),
        ms_of(s.latency.p50),
        ms_of(s.latency.p99),
        s.limit.as_ref().map_or(f64::NAN, |l| l.mean),
    )
}

// === Netflix's harness ===

/// Netflix's example server: 2 workers, lognormal service time with a 20 ms mean: 100
/// requests per second.
fn netflix_backend() -> BackendConfig {
    BackendConfig::new(2, Distribution::lognormal(20 * MS, 0.5))
}

/// Netflix's driver (50, 90, 200, 100 requests per second), with shorter phases: 30 s,
/// 30 s, 90 s, 30 s.
fn netflix_harness() -> Scenario {
    let rate = Schedule::constant(50.0)
        .then_at(secs(30), 90.0)
        .then_at(secs(60), 200.0)
        .then_at(secs(150), 100.0);
    Scenario::new(
        "netflix harness",
        netflix_backend(),
        Load::poisson_schedule(rate),
    )
    .with_duration(secs(180))
    .with_seed(11)
}

/// The 2× phase after ten windows to adapt.
const OVERLOAD: (u64, u64) = (70, 150);

/// Unloaded p99: the bare backend at 5 requests per second.
async fn unloaded_p99() -> f64 {
    let report = Scenario::new("unloaded", netflix_backend(), Load::poisson(5.0))
        .with_duration(secs(200))
        .with_seed(11)
        .run(|backend| backend)
        .await
        .expect("the scenario runs");
    ms_of(report.summary().latency.p99)
}

/// The numbers the targets are about, for one algorithm.
struct Harness {
    goodput: f64,
    p99: f64,
    unloaded_p99: f64,
}

async fn netflix(algo: Algo) -> Harness {
    let unloaded_p99 = unloaded_p99().await;
    let report = run(&netflix_harness(), algo).await;
    for (from, to, what) in [
        (0, 30, "0.5x"),
        (30, 60, "0.9x"),
        (60, 70, "2x, first 10 s"),
        (OVERLOAD.0, OVERLOAD.1, "2x"),
        (150, 180, "1x"),
    ] {
        println!(
            "{algo:?} {what:>14}: {}",
            describe(&report.window(secs(from), secs(to)))
        );
    }
    let overload = report.window(secs(OVERLOAD.0), secs(OVERLOAD.1));
    let harness = Harness {
        goodput: overload.goodput_rps(),
        p99: ms_of(overload.latency.p99),
        unloaded_p99,
    };
    println!(
        "{algo:?}: at 2x goodput {:.1}/s, p99 {:.0} ms = {:.2}x unloaded p99 ({:.0} ms)",
        harness.goodput,
        harness.p99,
        harness.p99 / unloaded_p99,
        unloaded_p99
    );
    harness
}

/// At 0.8× capacity, from a cold start, for two minutes.
async fn light_load(algo: Algo) -> f64 {
    let scenario = Scenario::new("0.8x", netflix_backend(), Load::poisson(80.0))
        .with_duration(secs(120))
        .with_seed(12);
    let report = run(&scenario, algo).await;
    println!("{algo:?} at 0.8x: {}", describe(report.summary()));
    report.summary().get(Metric::RejectRatio).unwrap_or(0.0)
}

fn assert_overload_targets(h: &Harness) {
    assert!(h.goodput >= 95.0, "goodput at 2x {:.1}/s < 95/s", h.goodput);
    assert!(
        h.p99 <= 3.0 * h.unloaded_p99,
        "accepted p99 at 2x {:.0} ms > 3 x unloaded p99 {:.0} ms",
        h.p99,
        h.unloaded_p99
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn gradient2_meets_netflix_harness_targets() {
    let h = netflix(Algo::Gradient2).await;
    assert_overload_targets(&h);
    let rejected = light_load(Algo::Gradient2).await;
    assert!(
        rejected <= 0.001,
        "reject rate at 0.8x {:.4}%",
        rejected * 100.0
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn aimd_with_a_latency_timeout_meets_netflix_harness_targets() {
    let h = netflix(Algo::Aimd).await;
    assert_overload_targets(&h);
    let rejected = light_load(Algo::Aimd).await;
    assert!(
        rejected <= 0.001,
        "reject rate at 0.8x {:.4}%",
        rejected * 100.0
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn vegas_meets_the_overload_targets_of_netflix_harness() {
    let h = netflix(Algo::Vegas).await;
    assert_overload_targets(&h);
}

/// The target Vegas misses: it reads the queueing a busy M/G/2 backend has at 0.8× load
/// (mean RTT about twice the no-load RTT) as congestion and settles near 13, under the
/// ~20 that keeps rejections at 0.1%. See the achieved envelope below.
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[ignore = "target not met: Vegas rejects about 0.4% at 0.8x load"]
async fn vegas_rejects_at_most_a_thousandth_at_0_8x_load() {
    let rejected = light_load(Algo::Vegas).await;
    assert!(
        rejected <= 0.001,
        "reject rate at 0.8x {:.4}%",
        rejected * 100.0
    );
}

/// What Vegas achieves at 0.8× load (the target is 0.1%).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn vegas_rejects_under_one_percent_at_0_8x_load() {
    let rejected = light_load(Algo::Vegas).await;
    assert!(
        rejected <= 0.01,
        "reject rate at 0.8x {:.4}%",
        rejected * 100.0
    );
}

/// Why Gradient2's queue allowance defaults to `sqrt(L)`: under sustained overload the
/// gradient saturates at 0.5 and the limit stops falling at `2 · queue_size`, so
/// Netflix's constant 4 holds at least 8 requests in front of a 2-worker backend.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn gradient2_square_root_queue_beats_a_constant_4_at_2x() {
    let sqrt = netflix(Algo::Gradient2).await;
    let constant = netflix(Algo::Gradient2Constant4).await;
    assert!(
        sqrt.p99 < constant.p99,
        "p99 at 2x: sqrt {:.0} ms vs constant 4 {:.0} ms",
        sqrt.p99,
        constant.p99
    );
    assert!(sqrt.goodput >= 95.0 && constant.goodput >= 95.0);
}

// === Capacity halves ===

/// 10 workers × 20 ms lognormal (500/s, L* = capacity × no-load RTT = 10), warmed up at
/// half load for 20 s, then offered 600/s; at 50 s half the workers go (L* = 5) and the
/// offered load is 2.4× capacity.
fn halving() -> Scenario {
    let backend = BackendConfig::new(10, Distribution::lognormal(20 * MS, 0.5))
        .with_capacity_change(secs(CHANGE), 5);
    let rate = Schedule::constant(250.0).then_at(secs(20), 600.0);
    Scenario::new("capacity halves", backend, Load::poisson_schedule(rate))
        .with_duration(secs(80))
        .with_seed(13)
}

const CHANGE: u64 = 50;
const L_STAR_AFTER: f64 = 5.0;

/// The limit at the end of each 1 s window (bucket) from the capacity change on.
fn limits_after_change(report: &Report) -> Vec<f64> {
    report.buckets()[CHANGE as usize..]
        .iter()
        .map(|b| b.limit.as_ref().map_or(f64::NAN, |l| l.last))
        .collect()
}

/// The number of windows after the change until the limit enters `[lo, hi]` and stays
/// there to the end of the run, if it does.
fn windows_to_settle(limits: &[f64], lo: f64, hi: f64) -> Option<usize> {
    let outside = limits.iter().rposition(|l| !(lo..=hi).contains(l));
    match outside {
        None => Some(0),
        Some(i) if i + 1 < limits.len() => Some(i + 1),
        Some(_) => None,
    }
}

async fn capacity_halves(algo: Algo) -> (Vec<f64>, Summary) {
    let report = run(&halving(), algo).await;
    let limits = limits_after_change(&report);
    let before = report.window(secs(30), secs(CHANGE));
    let after = report.window(secs(CHANGE + 10), secs(80));
    println!("{algo:?} before (L* 10): {}", describe(&before));
    println!("{algo:?} after  (L* 5):  {}", describe(&after));
    println!("{algo:?} limit per window after the change: {limits:?}");
    (limits, after)
}

/// The target: back within [0.8, 1.25]·L* in at most 5 windows. No algorithm
/// meets it with Netflix's parameters; each settles in its own band above L*, which is how
/// they are designed: Vegas keeps alpha..beta (3..6) requests queued, Gradient2 tolerates
/// 1.5× the baseline RTT plus `sqrt(L)` queued, and both step down slowly (Vegas by
/// `log10(L)` per window, Gradient2 by at most ~10%). Measured (seed 13): Gradient2
/// 23 → 13 (2.6·L*) in 7 windows, Vegas 16 → 10 (2.0·L*) in 5, AIMD 29 → 13..18 (3·L*) in
/// 4, the tight Gradient2 12 → 6..7 (1.2-1.4·L*) in 3: fast enough, but 7 > 1.25·L*.
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[ignore = "target not met: limits settle at 1.2-3.6x L* after 3-7 windows"]
async fn limit_returns_within_a_quarter_of_l_star_in_five_windows() {
    for algo in [
        Algo::Gradient2,
        Algo::Vegas,
        Algo::Aimd,
        Algo::Gradient2Tight,
    ] {
        let (limits, _) = capacity_halves(algo).await;
        let settled = windows_to_settle(&limits, 0.8 * L_STAR_AFTER, 1.25 * L_STAR_AFTER);
        assert!(
            settled.is_some_and(|w| w <= 5),
            "{algo:?}: {settled:?} windows, limits {limits:?}"
        );
    }
}

/// What each algorithm achieves after the capacity halves: the band it settles in (as a
/// multiple of the new L* = 5), how many windows it takes, and that goodput stays at the
/// new capacity with short latency (the point of the limit).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn limit_follows_a_capacity_drop_into_a_band_above_l_star() {
    // (algorithm, band as a multiple of L*, most windows to settle in it)
    for (algo, lo, hi, windows) in [
        (Algo::Gradient2, 2.2, 3.0, 8),
        (Algo::Vegas, 1.8, 2.2, 6),
        (Algo::Aimd, 2.4, 3.6, 6),
        (Algo::Gradient2Tight, 1.2, 1.4, 4),
    ] {
        let (limits, after) = capacity_halves(algo).await;
        let settled = windows_to_settle(&limits, lo * L_STAR_AFTER, hi * L_STAR_AFTER);
        println!("{algo:?}: settled in [{lo}, {hi}]·L* after {settled:?} windows");
        assert!(
            settled.is_some_and(|w| w <= windows),
            "{algo:?}: {settled:?} windows, limits {limits:?}"
        );
        after
            .check(&[
                Envelope::at_least(Metric::GoodputRps, 240.0),
                Envelope::at_most(Metric::LatencyP99, 0.150),
                Envelope::at_most(Metric::TimeoutRatio, 0.0),
            ])
            .unwrap_or_else(|e| panic!("{algo:?}: {e}"));
    }
}
