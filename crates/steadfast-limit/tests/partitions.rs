//! Partitions of the limit (live 90%, batch 10%), enforced only when the limit is
//! saturated: borrowing below the limit, each partition's guaranteed share at it, the
//! unknown partition, and the layer in fail-fast mode, unit by unit and in the simulator.

use std::convert::Infallible;
use std::future::{Future, Pending, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use steadfast_core::error::Overloaded;
use steadfast_limit::algorithm::Aimd;
use steadfast_limit::partition::{PartitionStats, Partitions, UNKNOWN_PARTITION};
use steadfast_limit::{AdaptiveConcurrencyLayer, Limiter, Mode, Permit, WindowConfig};
use steadfast_sim::{BackendConfig, Distribution, Load, Metric, Scenario, SimRequest, Simulation};
use tower::{Layer, Service, ServiceExt, service_fn};

const LIMIT: usize = 10;

fn fixed(limit: usize) -> Aimd {
    Aimd::new()
        .initial_limit(limit)
        .min_limit(limit)
        .max_limit(limit)
}

fn live_batch() -> Partitions {
    Partitions::new()
        .partition("live", 0.9)
        .partition("batch", 0.1)
}

fn limiter(limit: usize) -> Arc<Limiter> {
    let limiter = Limiter::new(fixed(limit), WindowConfig::per_request())
        .and_then(|l| l.partitioned(live_batch()))
        .expect("valid");
    Arc::new(limiter)
}

fn take(limiter: &Arc<Limiter>, partition: &str, n: usize) -> Vec<Permit> {
    (0..n)
        .map_while(|_| limiter.try_acquire_in(partition))
        .collect()
}

fn stats(limiter: &Limiter, name: &str) -> PartitionStats {
    limiter
        .partition_stats()
        .into_iter()
        .find(|p| p.name == name)
        .expect("a partition")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn below_the_limit_any_partition_borrows_the_whole_limit() {
    let limiter = limiter(LIMIT);
    let batch = take(&limiter, "batch", 100);
    assert_eq!(
        batch.len(),
        LIMIT,
        "batch borrowed live's idle share, up to the limit"
    );
    assert_eq!(stats(&limiter, "batch").in_flight, LIMIT);
    drop(batch);
    let live = take(&limiter, "live", 100);
    assert_eq!(
        live.len(),
        9 + 1,
        "live: the limit, then its guaranteed share at it"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn at_saturation_each_partition_gets_its_guaranteed_share_and_no_more() {
    let limiter = limiter(LIMIT);
    // Batch bursts and takes the whole limit.
    let mut batch = take(&limiter, "batch", 100);
    assert_eq!(batch.len(), LIMIT);
    // Saturated: live still gets its guaranteed 9 (ceil(10 · 0.9)), beyond the limit...
    let live = take(&limiter, "live", 100);
    assert_eq!(live.len(), 9);
    assert_eq!(limiter.in_flight(), 19);
    // ...and batch, over its share, is refused.
    assert!(limiter.try_acquire_in("batch").is_none());
    // Batch gives back what it borrowed; while the limit stays saturated it is refused.
    for _ in 0..9 {
        batch.pop().expect("a permit").success();
        assert!(limiter.try_acquire_in("batch").is_none());
    }
    assert_eq!(limiter.in_flight(), 10);
    // Its last one back: below the limit, batch may take one again; then it is at its
    // share (1) and the limit is saturated.
    batch.pop().expect("a permit").success();
    assert_eq!(take(&limiter, "batch", 100).len(), 1);
    let s = stats(&limiter, "live");
    assert_eq!((s.limit, s.in_flight), (9, 9));
    let s = stats(&limiter, "batch");
    assert_eq!(
        (s.limit, s.in_flight),
        (1, 0),
        "the permits taken were dropped"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn undeclared_partitions_share_the_unknown_partition_of_one() {
    let limiter = limiter(LIMIT);
    let live = take(&limiter, "live", 100);
    assert_eq!(live.len(), LIMIT);
    let other = take(&limiter, "reports", 100);
    assert_eq!(
        other.len(),
        1,
        "unknown: a guaranteed limit of 1 at saturation"
    );
    assert!(
        limiter.try_acquire_in("metrics").is_none(),
        "the same unknown partition"
    );
    let unknown = stats(&limiter, UNKNOWN_PARTITION);
    assert_eq!(
        (unknown.share, unknown.limit, unknown.in_flight),
        (0.0, 1, 1)
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_limiter_without_partitions_ignores_the_partition() {
    let limiter = Arc::new(Limiter::new(fixed(2), WindowConfig::per_request()).expect("valid"));
    assert_eq!(take(&limiter, "live", 10).len(), 2);
    assert!(limiter.partition_stats().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever order requests of three partitions arrive and finish in: a request is
    /// refused only when the limit is saturated and its partition holds its guaranteed
    /// share; the in-flight count never exceeds the limit plus the guaranteed shares; and
    /// every partition can always get up to its guaranteed share.
    #[test]
    fn the_guarantee_holds_for_any_sequence(
        limit in 1usize..40,
        ops in prop::collection::vec((0usize..3, any::<bool>(), any::<prop::sample::Index>()), 1..300),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let _guard = rt.enter();
        let partitions = Partitions::new().partition("a", 0.5).partition("b", 0.3).partition("c", 0.2);
        let limiter = Arc::new(
            Limiter::new(fixed(limit), WindowConfig::per_request())
                .and_then(|l| l.partitioned(partitions))
                .expect("valid"),
        );
        let names = ["a", "b", "c"];
        let shares = [0.5, 0.3, 0.2];
        let guaranteed = |i: usize| ((limit as f64 * shares[i]).ceil() as usize).max(1);
        let bound = limit + (0..3).map(guaranteed).sum::<usize>();
        let mut held: Vec<Vec<Permit>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for (p, acquire, index) in ops {
            if acquire {
                let saturated = limiter.in_flight() >= limit;
                let under_share = held[p].len() < guaranteed(p);
                match limiter.try_acquire_in(names[p]) {
                    Some(permit) => {
                        prop_assert!(!saturated || under_share, "{} admitted over its share at saturation", names[p]);
                        held[p].push(permit);
                    }
                    None => prop_assert!(saturated && !under_share, "{} refused: saturated {saturated}, under its share {under_share}", names[p]),
                }
            } else if !held[p].is_empty() {
                let i = index.index(held[p].len());
                held[p].swap_remove(i).success();
            }
            prop_assert!(limiter.in_flight() <= bound);
            prop_assert_eq!(limiter.in_flight(), held.iter().map(Vec::len).sum::<usize>());
        }
    }
}

// === Through the layer ===

type Request = &'static str;

/// A backend that never answers: every admitted call holds its permit until dropped.
fn hanging()
-> impl Service<Request, Response = (), Error = Infallible, Future = Pending<Result<(), Infallible>>>
+ Clone {
    service_fn(|_: Request| pending::<Result<(), Infallible>>())
}

fn by_name(request: &Request) -> &'static str {
    request
}

fn partitioned_layer(
    limit: usize,
) -> AdaptiveConcurrencyLayer<
    steadfast_core::classify::ErrorsAsFailures,
    fn(&Request) -> &'static str,
> {
    AdaptiveConcurrencyLayer::builder()
        .algorithm(fixed(limit))
        .window(WindowConfig::per_request())
        .mode(Mode::FailFast)
        .partitions(live_batch(), by_name as fn(&Request) -> &'static str)
        .build()
        .expect("valid")
}

/// Calls and polls once: `Some` future still running (admitted), `None` if refused.
async fn send<S>(svc: &mut S, request: Request) -> Option<Pin<Box<S::Future>>>
where
    S: Service<Request>,
    S::Error: Into<steadfast_core::error::BoxError>,
{
    let svc = svc.ready().await.map_err(Into::into).expect("ready");
    let mut future = Box::pin(svc.call(request));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Pending => Some(future),
        Poll::Ready(Ok(_)) => panic!("the backend never answers"),
        Poll::Ready(Err(err)) => {
            assert!(err.into().is::<Overloaded>(), "refused as overloaded");
            None
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_layer_lends_below_the_limit_and_guarantees_shares_at_it() {
    let layer = partitioned_layer(LIMIT);
    let mut svc = layer.layer(hanging());
    let mut batch = Vec::new();
    for _ in 0..LIMIT {
        batch.push(send(&mut svc, "batch").await.expect("batch borrows"));
    }
    assert!(
        send(&mut svc, "batch").await.is_none(),
        "batch over its share"
    );
    let mut live = Vec::new();
    for _ in 0..9 {
        live.push(
            send(&mut svc, "live")
                .await
                .expect("live's guaranteed share"),
        );
    }
    assert!(send(&mut svc, "live").await.is_none(), "live at its share");
    let other = send(&mut svc, "other").await.expect("unknown: one");
    let stats = layer.stats();
    assert_eq!((stats.in_flight, stats.rejections), (20, 2));
    let per = layer.limiter().partition_stats();
    let rejections: Vec<_> = per
        .iter()
        .map(|p| (p.name.as_str(), p.in_flight, p.rejections))
        .collect();
    assert_eq!(
        rejections,
        [("live", 9, 1), ("batch", 10, 1), ("unknown", 1, 0)]
    );
    drop((batch, live));
    assert_eq!(layer.stats().in_flight, 1);
    drop(other);
    assert_eq!(layer.stats().in_flight, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn partitions_need_fail_fast() {
    for mode in [Mode::Backpressure, Mode::Queue(Default::default())] {
        let built = AdaptiveConcurrencyLayer::builder()
            .mode(mode)
            .partitions(live_batch(), by_name as fn(&Request) -> &'static str)
            .build();
        assert!(built.is_err(), "{mode:?}");
    }
    let bad = AdaptiveConcurrencyLayer::builder()
        .mode(Mode::FailFast)
        .partitions(
            Partitions::new()
                .partition("live", 0.9)
                .partition("batch", 0.2),
            by_name as fn(&Request) -> &'static str,
        )
        .build();
    assert!(bad.is_err(), "shares over 1");
}

// === In the simulator ===

/// 10 workers × 20 ms lognormal (500/s), a fixed limit of 10, offered 1000/s, half of it
/// live (class 0) and half batch (class 1). Without partitions both get about half the
/// capacity. With live 90% / batch 10%, batch holds one slot at saturation and live up to
/// nine; but nothing waits (fail fast), so a slot live frees is refilled only when the next
/// live request arrives, and in between, any request arriving under the limit (batch
/// included) may borrow it. Live's 500/s offered to its 9 slots of 20 ms is about 10
/// erlangs on 9 servers: it keeps about 7.3 in flight, and gets about 72% of the capacity
/// (341/s against 229/s with one shared limit), batch about 28%.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn under_overload_live_keeps_its_share_of_the_capacity() {
    let scenario = Scenario::new(
        "live and batch at 2x",
        BackendConfig::new(
            10,
            Distribution::lognormal(20 * Duration::from_millis(1), 0.5),
        ),
        Load::poisson(1000.0),
    )
    .with_classes([1.0, 1.0])
    .with_duration(Duration::from_secs(30))
    .with_seed(5);
    let class_name = |request: &SimRequest| if request.class == 0 { "live" } else { "batch" };

    let shared = AdaptiveConcurrencyLayer::builder()
        .algorithm(fixed(LIMIT))
        .mode(Mode::FailFast)
        .build()
        .expect("valid");
    let unpartitioned = Simulation::new(scenario.clone())
        .run(|backend| shared.layer(backend))
        .await
        .expect("runs");

    let partitioned = AdaptiveConcurrencyLayer::builder()
        .algorithm(fixed(LIMIT))
        .mode(Mode::FailFast)
        .partitions(live_batch(), class_name)
        .build()
        .expect("valid");
    let probe_limiter = partitioned.limiter().clone();
    let split = Simulation::new(scenario)
        .limit_probe(move || Some(probe_limiter.partition_stats()[0].in_flight as f64))
        .run(|backend| partitioned.layer(backend))
        .await
        .expect("runs");

    let window =
        |r: &steadfast_sim::Report| r.window(Duration::from_secs(5), Duration::from_secs(30));
    let (before, after) = (window(&unpartitioned), window(&split));
    let goodput = |s: &steadfast_sim::Summary, class: u8| {
        s.get(Metric::ClassGoodputRps(class)).unwrap_or(0.0)
    };
    let in_flight = |s: &steadfast_sim::Summary| s.get(Metric::StackInFlightMean).unwrap_or(0.0);
    let live_in_flight = after.limit.as_ref().map_or(0.0, |l| l.mean);
    println!(
        "one limit: live {:.0}/s, batch {:.0}/s, {:.1} in flight; \
         partitioned: live {:.0}/s, batch {:.0}/s, {:.1} in flight ({live_in_flight:.1} live)",
        goodput(&before, 0),
        goodput(&before, 1),
        in_flight(&before),
        goodput(&after, 0),
        goodput(&after, 1),
        in_flight(&after),
    );
    assert!(
        (200.0..300.0).contains(&goodput(&before, 0)),
        "one limit: an even split"
    );
    assert!((200.0..300.0).contains(&goodput(&before, 1)));
    assert!(
        goodput(&after, 0) >= 320.0,
        "live keeps about 70% of the capacity"
    );
    assert!(goodput(&after, 1) <= 160.0, "batch about 28%");
    assert!(live_in_flight >= 6.5, "live holds most of its 9 slots");
    assert!(in_flight(&after) <= 12.0, "borrowing stays small");
    assert!(after.goodput_rps() >= 470.0, "the backend stays busy");
}
