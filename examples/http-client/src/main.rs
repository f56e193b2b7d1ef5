//! The HTTP client demo: three axum backends on 127.0.0.1 (`node-c` fails every other
//! request with `503`, then all three are overloaded for a while), and a client stack on
//! hyper-util that keys, retries within a budget, throttles, stamps HLC timestamps and
//! routes by key. See the README for the order of the layers.
//!
//! Run it with `cargo run -p example-http-client`. It stops by itself within a few seconds.

use std::collections::{BTreeMap, BTreeSet};

use example_http_client::{NODES, Phase, RunConfig, run, start_backends};
use steadfast::core::error::BoxError;

fn print_phase(title: &str, phase: &Phase) {
    println!(
        "\n{title}: {} POST /orders/{{id}}, one after the other",
        phase.requests
    );
    println!("  final answers: {:?}", phase.outcomes);
    let received: Vec<String> = NODES
        .iter()
        .zip(&phase.per_backend)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    println!(
        "  requests received (attempts included): {}",
        received.join(", ")
    );
    println!(
        "  retries: {} sent, {} refused by the budget; throttled locally: {} (rejection probability now {:.2})",
        phase.retries, phase.budget_refused, phase.throttled, phase.reject_probability
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let backends = start_backends().await?;
    for backend in &backends {
        println!("{} listening on {}", backend.name(), backend.addr());
    }
    let config = RunConfig::default();
    let report = run(&backends, &config).await?;

    print_phase("1. node-c fails every other request", &report.normal);
    print_phase("2. every backend overloaded (503)", &report.overload);
    println!(
        "\nretry budget: {} retries spent of {} allowed ({:.0}% of {} requests, no reserve)",
        report.retries,
        report.budget,
        config.retry_ratio * 100.0,
        report.requests
    );

    // Every attempt of one order carried the same key and reached the order's owner.
    let mut keys: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    let mut misrouted = 0;
    let mut retried = BTreeSet::new();
    for backend in &backends {
        for seen in backend.seen() {
            misrouted += usize::from(report.owners[&seen.order] != backend.name());
            if seen.attempt > 0 {
                retried.insert(seen.order.clone());
            }
            keys.entry(seen.order).or_default().insert(seen.key);
        }
    }
    let same_key = retried.iter().all(|order| {
        let set = &keys[order];
        set.len() == 1 && set.iter().all(Option::is_some)
    });
    println!(
        "{} retried POSTs; every attempt of each carried one Idempotency-Key: {same_key}",
        retried.len()
    );
    println!("requests that reached a backend other than the key's owner: {misrouted}");
    let monotonic = report.client_clock.windows(2).all(|w| w[0] < w[1]);
    println!(
        "client HLC after each call strictly increasing: {monotonic} ({} .. {})",
        report.client_clock.first().expect("some calls"),
        report.client_clock.last().expect("some calls"),
    );
    Ok(())
}
