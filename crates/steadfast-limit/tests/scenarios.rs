//! Overload scenarios in the deterministic simulator (`steadfast-sim`): Netflix's load
//! harness, a capacity drop and a capacity doubling, for each algorithm, failing fast; and
//! side-by-side tables of every stack (no limit, tower's static limit, tower-resilience's
//! adaptive layer, ours) at twice the capacity.
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

use std::sync::Arc;
use std::time::Duration;

use steadfast_limit::algorithm::{
    Aimd, Gradient2, LimitAlgorithm, Little, QueueSize, Vector, Vegas,
};
use steadfast_limit::{AdaptiveConcurrencyLayer, Mode, WindowConfig};
use steadfast_sim::{
    Backend, BackendConfig, Distribution, Envelope, Load, Metric, Report, Scenario, Schedule,
    SimRequest, SimResponse, Simulation, Summary,
};
use tower::load_shed::LoadShed;
use tower::{Layer, ServiceBuilder};
use tower_resilience_adaptive::{self as tr, AdaptiveService, ConcurrencyAlgorithm};

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
    /// Ours: Little's law (throughput × baseline RTT).
    Little,
    /// Vegas with its queue estimated from the requests in flight, not the limit.
    VegasMeasured,
    /// Vector's ARC, on Vector's one-RTT windows.
    Vector,
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
        Algo::Little => Box::new(Little::new()),
        Algo::VegasMeasured => Box::new(Vegas::new().seed(7).measured_queue(true)),
        Algo::Vector => Box::new(Vector::new()),
    }
}

/// The windows each algorithm runs on: Netflix's 1 s windows, but Vector's one-RTT ones
/// for Vector.
fn window_for(algo: Algo) -> WindowConfig {
    match algo {
        Algo::Vector => Vector::window_config(),
        _ => WindowConfig::new(),
    }
}

/// Runs `scenario` against the layer in fail-fast mode, probing its limit.
async fn run(scenario: &Scenario, algo: Algo) -> Report {
    let layer = AdaptiveConcurrencyLayer::builder()
        .algorithm(algorithm(algo))
        .window(window_for(algo))
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

/// The target Netflix's Vegas misses: it reads the queueing a busy M/G/2 backend has at
/// 0.8× load (mean RTT about twice the no-load RTT) as `L / 2` queued requests and
/// settles near 13-15, under the ~20 that keeps rejections at 0.1%: it refuses 0.26%
/// (seed 12). Met with `Vegas::measured_queue` (next test); see the achieved envelope
/// of the default below.
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[ignore = "target not met by Netflix's Vegas: it rejects about 0.26% at 0.8x load"]
async fn vegas_rejects_at_most_a_thousandth_at_0_8x_load() {
    let rejected = light_load(Algo::Vegas).await;
    assert!(
        rejected <= 0.001,
        "reject rate at 0.8x {:.4}%",
        rejected * 100.0
    );
}

/// Vegas with its queue measured from the requests in flight (`measured_queue(true)`)
/// meets every target of Netflix's harness: none refused at 0.8× load (limit mean 25),
/// and at 2× goodput 100/s with an accepted p99 of 2.3× the unloaded p99. When the limit
/// is the bottleneck the requests in flight are the limit, so overload behaves as
/// Netflix's Vegas.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn vegas_with_a_measured_queue_meets_netflix_harness_targets() {
    let h = netflix(Algo::VegasMeasured).await;
    assert_overload_targets(&h);
    let rejected = light_load(Algo::VegasMeasured).await;
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

/// Our `Little` in Netflix's harness: it hugs L* = 2, so at 2× the accepted p99 stays at
/// the unloaded p99 (1.03×; Gradient2: 2.2×), but it misses two targets. Goodput at 2× is
/// 80.5/s (target 95): failing fast at a limit of 2 on 2 workers leaves a worker idle
/// while a freed permit waits for the next arrival (it was 89/s before the level profile
/// tightened the limit to L*, for the capacity-change targets). And it refuses 1.2% at
/// 0.8× (target 0.1%): Poisson bursts at 80/s on 2 workers need a limit of 15 or more,
/// and it gets there only one request per window. Pinned here so that a change shows.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn little_in_netflix_harness() {
    let h = netflix(Algo::Little).await;
    assert!(h.goodput >= 78.0, "goodput at 2x {:.1}/s", h.goodput);
    assert!(
        h.p99 <= 1.5 * h.unloaded_p99,
        "accepted p99 at 2x {:.0} ms vs unloaded {:.0} ms",
        h.p99,
        h.unloaded_p99
    );
    let rejected = light_load(Algo::Little).await;
    assert!(
        rejected <= 0.015,
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
    limits_from(report, CHANGE)
}

/// The limit at the end of each 1 s window (bucket) from `from` seconds on.
fn limits_from(report: &Report, from: u64) -> Vec<f64> {
    report.buckets()[from as usize..]
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

/// The target: back within [0.8, 1.25]·L* in at most 5 windows. Met by our
/// `Little` (next test); not by the others with their parameters: each settles in its
/// own band above L*, which is how they are designed: Vegas keeps alpha..beta (3..6)
/// requests queued, Gradient2 tolerates 1.5× the baseline RTT plus `sqrt(L)` queued, and
/// both step down slowly (Vegas by `log10(L)` per window, Gradient2 by at most ~10%).
/// Measured (seed 13): Gradient2 23 → 13 (2.6·L*) in 7 windows, Vegas 16 → 10 (2.0·L*) in
/// 5, AIMD 29 → 13..18 (3·L*) in 4, the tight Gradient2 12 → 6..7 (1.2-1.4·L*) in 3: fast
/// enough, but 7 > 1.25·L*; Vector's ARC (one-RTT windows) 32 → 35-47 (7-9·L*): its
/// deviation threshold follows the RTT up and a 20 ms link gives it 50 windows a second.
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[ignore = "target not met: limits settle at 1.2-9x L* after 3-7 windows"]
async fn limit_returns_within_a_quarter_of_l_star_in_five_windows() {
    for algo in [
        Algo::Gradient2,
        Algo::Vegas,
        Algo::Aimd,
        Algo::Gradient2Tight,
        Algo::Vector,
    ] {
        let (limits, _) = capacity_halves(algo).await;
        let settled = windows_to_settle(&limits, 0.8 * L_STAR_AFTER, 1.25 * L_STAR_AFTER);
        assert!(
            settled.is_some_and(|w| w <= 5),
            "{algo:?}: {settled:?} windows, limits {limits:?}"
        );
    }
}

/// The target met: `Little` is back within [0.8, 1.25]·L* one window after the capacity
/// halves (limits 4-6 from then on, L* = 5), over seeds 1-6 and 13.
/// It pays for hugging L* with goodput: failing fast, a freed permit waits for the next
/// arrival, so at a limit of 4-6 the 5 workers are busy 89-93% of the time (goodput
/// 223-233/s of 250, where the algorithms that settle 2-3× above L* reach 240+).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn little_returns_within_a_quarter_of_l_star_in_five_windows() {
    for seed in [13, 1, 2, 3, 4, 5, 6] {
        let report = run(&halving().with_seed(seed), Algo::Little).await;
        let limits = limits_after_change(&report);
        let settled = windows_to_settle(&limits, 0.8 * L_STAR_AFTER, 1.25 * L_STAR_AFTER);
        println!("Little, seed {seed}: settled after {settled:?} windows, limits {limits:?}");
        // The target is 5 windows; measured 1 on every seed, pinned at 2.
        assert!(
            settled.is_some_and(|w| w <= 2),
            "seed {seed}: {settled:?} windows, limits {limits:?}"
        );
        report
            .window(secs(CHANGE + 10), secs(80))
            .check(&[
                Envelope::at_least(Metric::GoodputRps, 215.0),
                Envelope::at_most(Metric::LatencyP99, 0.080),
                Envelope::at_most(Metric::TimeoutRatio, 0.0),
            ])
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
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

// === Side by side ===

/// Netflix's backend offered 200 requests per second (2× its capacity) from a cold start,
/// for 80 s; measured from 20 s on, once every limit has had twenty 1 s windows to adapt.
fn cold_double_load() -> Scenario {
    Scenario::new(
        "2x load from a cold start",
        netflix_backend(),
        Load::poisson(200.0),
    )
    .with_duration(secs(80))
    .with_seed(21)
}

/// tower-resilience's adaptive service around `backend`, behind tower's load shedder (it
/// only applies backpressure), and a probe of its limit.
fn resilience<A>(
    algorithm: A,
) -> (
    Arc<A>,
    impl FnOnce(Backend) -> LoadShed<AdaptiveService<Backend, A>>,
)
where
    A: ConcurrencyAlgorithm + 'static,
{
    let algorithm = Arc::new(algorithm);
    let shared = Arc::clone(&algorithm);
    let make = move |backend| LoadShed::new(AdaptiveService::new(backend, shared));
    (algorithm, make)
}

/// One row of a side-by-side table.
struct Row {
    name: String,
    window: Summary,
    ours: bool,
}

impl Row {
    fn print(&self, unloaded_p99: f64) {
        let s = &self.window;
        let p99 = ms_of(s.latency.p99);
        println!(
            "| {:<38} | {:>7.1} | {:>6.0} | {:>6.0} | {:>5.2} | {:>6.1}% | {:>6.1}% | {:>5} |",
            self.name,
            s.goodput_rps(),
            ms_of(s.latency.p50),
            p99,
            p99 / unloaded_p99,
            100.0 * s.get(Metric::RejectRatio).unwrap_or(0.0),
            100.0 * s.get(Metric::TimeoutRatio).unwrap_or(0.0),
            s.limit
                .as_ref()
                .map_or_else(|| "-".to_owned(), |l| format!("{:.1}", l.mean)),
        );
    }
}

type Probe = Box<dyn Fn() -> Option<f64>>;

async fn row<F, S>(
    scenario: &Scenario,
    (from, to): (u64, u64),
    name: &str,
    probe: Option<Probe>,
    make: F,
) -> Row
where
    F: FnOnce(Backend) -> S,
    S: tower::Service<SimRequest, Response = SimResponse>,
    S::Error: Into<steadfast_core::error::BoxError>,
{
    let mut simulation = Simulation::new(scenario.clone());
    if let Some(probe) = probe {
        simulation = simulation.limit_probe(probe);
    }
    let report = simulation.run(make).await.expect("the scenario runs");
    Row {
        name: name.to_owned(),
        window: report.window(secs(from), secs(to)),
        ours: false,
    }
}

/// Every stack on the same traffic (one seed), measured over `window`: no limit, tower's
/// static limit of 4 with load shedding, tower-resilience's adaptive layer (each of its
/// three algorithms with its defaults, behind tower's load shedder: it has no fail-fast
/// mode of its own), and each of ours failing fast. Prints the table.
///
/// Caveat on tower-resilience's rows: it times requests with `std::time::Instant`, which
/// does not follow tokio's paused clock, so in the simulator it sees the wall-clock time
/// the simulation takes to run (microseconds), not the simulated latency. Its rows show it
/// without a latency signal (AIMD only backs off on errors, so it grows to its maximum), and
/// they are not reproducible from run to run (its Gradient2 row varies). Ours and tower's
/// are exact.
async fn side_by_side(scenario: &Scenario, window: (u64, u64), unloaded: f64) -> Vec<Row> {
    let mut rows = vec![
        row(scenario, window, "no limit", None, |backend| backend).await,
        row(
            scenario,
            window,
            "tower ConcurrencyLimit(4) + LoadShed",
            Some(Box::new(|| Some(4.0))),
            |backend| {
                ServiceBuilder::new()
                    .load_shed()
                    .concurrency_limit(4)
                    .service(backend)
            },
        )
        .await,
    ];
    {
        let (algorithm, make) = resilience(tr::Aimd::builder().build().expect("valid"));
        let probe: Probe = Box::new(move || Some(algorithm.limit() as f64));
        let name = "tower-resilience AIMD + LoadShed";
        rows.push(row(scenario, window, name, Some(probe), make).await);
    }
    {
        let (algorithm, make) = resilience(tr::Vegas::builder().build().expect("valid"));
        let probe: Probe = Box::new(move || Some(algorithm.limit() as f64));
        let name = "tower-resilience Vegas + LoadShed";
        rows.push(row(scenario, window, name, Some(probe), make).await);
    }
    {
        let (algorithm, make) = resilience(tr::Gradient2::builder().build().expect("valid"));
        let probe: Probe = Box::new(move || Some(algorithm.limit() as f64));
        let name = "tower-resilience Gradient2 + LoadShed";
        rows.push(row(scenario, window, name, Some(probe), make).await);
    }
    for algo in [
        Algo::Aimd,
        Algo::Vegas,
        Algo::Gradient2,
        Algo::Gradient2Tight,
    ] {
        let layer = AdaptiveConcurrencyLayer::builder()
            .algorithm(algorithm(algo))
            .mode(Mode::FailFast)
            .build()
            .expect("valid configuration");
        let limiter = layer.limiter().clone();
        let probe: Probe = Box::new(move || Some(limiter.limit() as f64));
        let name = format!("steadfast {algo:?}");
        let mut r = row(scenario, window, &name, Some(probe), |b| layer.layer(b)).await;
        r.ours = true;
        rows.push(r);
    }

    println!(
        "{} (seed {}), {}-{} s; unloaded p99 {unloaded:.0} ms",
        scenario.name, scenario.seed, window.0, window.1
    );
    println!(
        "| {:<38} | goodput | p50 ms | p99 ms | p99/u | reject  | timeout | limit |",
        "stack"
    );
    println!(
        "|{:-<40}|--------:|-------:|-------:|------:|--------:|--------:|------:|",
        ""
    );
    for r in &rows {
        r.print(unloaded);
    }

    let bare = &rows[0].window;
    assert!(
        bare.goodput_rps() < 10.0,
        "the unprotected backend collapses: goodput {:.1}/s",
        bare.goodput_rps()
    );
    rows
}

/// The 2× phase of Netflix's harness (offered 200/s after 30 s at 50/s and 30 s at 90/s),
/// from its tenth second on: every stack side by side. Ours are held to the targets
/// (goodput at least 95/s, accepted p99 at most 3× the unloaded p99, no timeouts, about
/// half refused); the unprotected backend must collapse; the others are printed.
///
/// Run with `-- --nocapture` to see the table.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn side_by_side_in_netflix_harness_at_twice_the_capacity() {
    let unloaded = unloaded_p99().await;
    let rows = side_by_side(&netflix_harness(), OVERLOAD, unloaded).await;
    for r in rows.iter().filter(|r| r.ours) {
        r.window
            .check(&[
                Envelope::at_least(Metric::GoodputRps, 95.0),
                Envelope::at_most(Metric::LatencyP99, 3.0 * unloaded / 1e3),
                Envelope::at_most(Metric::TimeoutRatio, 0.0),
                // Offered twice the capacity: about half must be refused, not more.
                Envelope::new(Metric::RejectRatio, 0.45, 0.55),
            ])
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
    }
}

/// The same stacks offered 2× from the very start. Without a quiet period, the
/// delay-based algorithms never see the no-load RTT: their first windows already queue
/// behind an initial limit of 20, so Vegas' minimum and Gradient2's long average learn the
/// overloaded RTT as the baseline and hold the limit around 20-40 (accepted p99 5-9×
/// unloaded), although goodput stays at capacity. AIMD, whose signal is a latency
/// timeout, meets the latency target. Envelopes pin what each achieves.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn side_by_side_from_a_cold_start_at_twice_the_capacity() {
    let unloaded = unloaded_p99().await;
    let rows = side_by_side(&cold_double_load(), (20, 80), unloaded).await;
    for r in rows.iter().filter(|r| r.ours) {
        let p99_over_unloaded = if r.name.ends_with("Aimd") { 3.0 } else { 10.0 };
        r.window
            .check(&[
                Envelope::at_least(Metric::GoodputRps, 95.0),
                Envelope::at_most(Metric::LatencyP99, p99_over_unloaded * unloaded / 1e3),
                Envelope::at_most(Metric::TimeoutRatio, 0.0),
                Envelope::new(Metric::RejectRatio, 0.45, 0.55),
            ])
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
    }
}

// === Capacity doubles ===

/// 5 workers × 20 ms lognormal (250/s, L* = 5), warmed up at half load for 20 s, then
/// offered 600/s; at 50 s five more workers come (500/s, L* = 10) and the offered load is
/// 1.2× the new capacity.
fn doubling() -> Scenario {
    let backend = BackendConfig::new(5, Distribution::lognormal(20 * MS, 0.5))
        .with_capacity_change(secs(DOUBLE_AT), 10);
    let rate = Schedule::constant(125.0).then_at(secs(20), 600.0);
    Scenario::new("capacity doubles", backend, Load::poisson_schedule(rate))
        .with_duration(secs(90))
        .with_seed(14)
}

const DOUBLE_AT: u64 = 50;
const L_STAR_DOUBLED: f64 = 10.0;

async fn capacity_doubles(algo: Algo) -> (Vec<f64>, Summary) {
    let report = run(&doubling(), algo).await;
    let limits = limits_from(&report, DOUBLE_AT);
    let before = report.window(secs(30), secs(DOUBLE_AT));
    let after = report.window(secs(DOUBLE_AT + 20), secs(90));
    println!("{algo:?} before (L* 5):  {}", describe(&before));
    println!("{algo:?} after  (L* 10): {}", describe(&after));
    println!("{algo:?} limit per window after the change: {limits:?}");
    (limits, after)
}

/// The target: back within [0.8, 1.25]·L* in at most 10 windows after the
/// capacity doubles. Met by `Little` over seeds 1-14 (next test); the others
/// each climb into their own band above L* (measured, seed 14, L* = 10): Vegas 10 → 16
/// (1.6·L*) in 1 window, Gradient2 13 → 22-28 (2.2-2.8·L*) in 12, AIMD 16 → a 26-35
/// sawtooth (2.6-3.5·L*) in 10, the tight Gradient2 7 → 13-14 (1.3-1.4·L*) in 12, Vector's
/// ARC 36-58 (4-6·L*). None stays under 12.5.
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[ignore = "target not met: limits settle at 1.3-6x L* after 1-12 windows"]
async fn limit_returns_within_a_quarter_of_l_star_in_ten_windows_after_a_doubling() {
    for algo in [
        Algo::Gradient2,
        Algo::Vegas,
        Algo::Aimd,
        Algo::Gradient2Tight,
        Algo::Vector,
    ] {
        let (limits, _) = capacity_doubles(algo).await;
        let settled = windows_to_settle(&limits, 0.8 * L_STAR_DOUBLED, 1.25 * L_STAR_DOUBLED);
        assert!(
            settled.is_some_and(|w| w <= 10),
            "{algo:?}: {settled:?} windows, limits {limits:?}"
        );
    }
}

/// The target met by `Little` over seeds 1-14: within [0.8, 1.25]·L* 2-9 windows after
/// the capacity doubles (limits 8-12 from then on, L* = 10), goodput 436-448/s of 500
/// (offered 600/s: failing fast, some permits wait for arrivals).
///
/// How (2026-11-28): before, `Little` met it on 10 of these 14 seeds (31, 27 and 11
/// windows on seeds 1-3, never on 11). On 1 s windows of about 400 requests neither the
/// window's mean RTT (±3%) nor its throughput (±5%, Poisson) tells a limit of 8 from 12
/// on 10 workers, and a baseline taken from one lucky fast window (seed 11) made every
/// later window look queued. The window's RTTs by admission level tell it within the
/// window: requests admitted at a level above the backend's concurrency wait, the others
/// do not, so `Little` now calls a window queued only when its second-highest level is
/// slower than the levels below too (one waiting level is headroom), and probes one above
/// only when neither of its two top levels waits.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn little_returns_within_a_quarter_of_l_star_in_ten_windows_after_a_doubling() {
    for seed in 1..=14 {
        let report = run(&doubling().with_seed(seed), Algo::Little).await;
        let limits = limits_from(&report, DOUBLE_AT);
        let settled = windows_to_settle(&limits, 0.8 * L_STAR_DOUBLED, 1.25 * L_STAR_DOUBLED);
        assert!(
            settled.is_some_and(|w| w <= 10),
            "seed {seed}: {settled:?} windows, limits {limits:?}"
        );
        report
            .window(secs(DOUBLE_AT + 20), secs(90))
            .check(&[
                Envelope::at_least(Metric::GoodputRps, 430.0),
                Envelope::at_most(Metric::LatencyP99, 0.080),
                Envelope::at_most(Metric::TimeoutRatio, 0.0),
            ])
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// What each algorithm achieves after the capacity doubles: the band it settles in (as a
/// multiple of the new L* = 10), how many windows it takes, and that goodput reaches the
/// new capacity with short latency. Every limit was above the new L* before the change
/// except the tight Gradient2's (7), so none holds the backend below its new capacity for
/// long: goodput is at least 90% of it from 20 s after the change.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn limit_follows_a_capacity_doubling_into_a_band_above_l_star() {
    // (algorithm, band as a multiple of L*, most windows to settle in it)
    for (algo, lo, hi, windows) in [
        (Algo::Gradient2, 2.2, 3.0, 13),
        (Algo::Vegas, 1.5, 1.7, 2),
        (Algo::Aimd, 2.6, 3.6, 11),
        (Algo::Gradient2Tight, 1.3, 1.4, 13),
    ] {
        let (limits, after) = capacity_doubles(algo).await;
        let settled = windows_to_settle(&limits, lo * L_STAR_DOUBLED, hi * L_STAR_DOUBLED);
        println!("{algo:?}: settled in [{lo}, {hi}]·L* after {settled:?} windows");
        assert!(
            settled.is_some_and(|w| w <= windows),
            "{algo:?}: {settled:?} windows, limits {limits:?}"
        );
        after
            .check(&[
                Envelope::at_least(Metric::GoodputRps, 450.0),
                Envelope::at_most(Metric::LatencyP99, 0.150),
                Envelope::at_most(Metric::TimeoutRatio, 0.0),
            ])
            .unwrap_or_else(|e| panic!("{algo:?}: {e}"));
    }
}

/// `Little` over many seeds of every target at once (doubling: seeds 1-14; halving: 13
/// and 1-6; Netflix's harness and 0.8× load), printed: the sweep behind the figures in the
/// `Little` tests' docs. It asserts the halving target on every halving seed (met: one or
/// two windows each, one since 2026-11-28), so that a rule tried for the doubling cannot
/// silently lose it. About
/// 2 s in release: `cargo test --release -p steadfast-limit --test scenarios --
/// --ignored --nocapture little_sweep`.
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[ignore = "a sweep: prints the figures quoted in the Little tests' docs"]
async fn little_sweep() {
    sweep(Algo::Little).await;
}

async fn sweep(algo: Algo) {
    for seed in 1..=14 {
        let report = run(&doubling().with_seed(seed), algo).await;
        let limits = limits_from(&report, DOUBLE_AT);
        let settled = windows_to_settle(&limits, 0.8 * L_STAR_DOUBLED, 1.25 * L_STAR_DOUBLED);
        let after = report.window(secs(DOUBLE_AT + 20), secs(90));
        println!(
            "doubling seed {seed}: {settled:?} windows; {}; limits {limits:?}",
            describe(&after)
        );
    }
    for seed in [13, 1, 2, 3, 4, 5, 6] {
        let report = run(&halving().with_seed(seed), algo).await;
        let limits = limits_after_change(&report);
        let settled = windows_to_settle(&limits, 0.8 * L_STAR_AFTER, 1.25 * L_STAR_AFTER);
        let after = report.window(secs(CHANGE + 10), secs(80));
        println!(
            "halving seed {seed}: {settled:?} windows; {}; limits {limits:?}",
            describe(&after)
        );
        assert!(
            settled.is_some_and(|w| w <= 5),
            "halving, seed {seed}: {settled:?} windows, limits {limits:?}"
        );
    }
    netflix(algo).await;
    light_load(algo).await;
}
