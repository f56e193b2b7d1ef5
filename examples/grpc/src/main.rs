//! The gRPC demo: a tonic server with steadfast's server stack and a client with its client
//! stack, in one process on 127.0.0.1. See the README for the order of the layers.
//!
//! Run it with `cargo run -p example-grpc`. It stops by itself in about a second.

use example_grpc::proto::WorkRequest;
use example_grpc::{ClientConfig, ServerConfig, connect, start_server};
use steadfast::core::error::BoxError;
use steadfast::hlc::Timestamp;
use tokio::task::JoinSet;
use tonic::Code;
use tonic::metadata::MetadataValue;

/// Concurrent calls in the burst: well over the limit (2) plus the queue (4).
const BURST: usize = 24;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server_config = ServerConfig::default();
    let server = start_server(server_config.clone()).await?;
    println!(
        "server on {} (limit {}, queue {}, pushback {:?})",
        server.addr(),
        server.limit(),
        server_config.queue_capacity,
        server_config.retry_after
    );
    let client_config = ClientConfig::default();
    let client = connect(server.addr(), client_config.clone()).await?;

    // 1. A few plain calls; the server's HLC timestamps move forward.
    println!("\n1. calls, with the server's HLC timestamp of each receive event");
    let mut last = Timestamp::from_u64(0);
    for i in 0..3 {
        let reply = client
            .clone()
            .work(tonic::Request::new(WorkRequest::new(
                format!("call-{i}"),
                1,
            )))
            .await?;
        let reply = reply.into_inner();
        let at = Timestamp::from_u64(reply.received_at);
        println!("   {}: received at {at}", reply.message);
        assert!(at > last, "server timestamps move forward");
        last = at;
    }
    let client_now = client.hlc().now();
    println!(
        "   client clock after the calls: {client_now} (after the server's last: {})",
        client_now > last
    );

    // 2. A burst over the tiny limit: refusals come back as RESOURCE_EXHAUSTED with a
    //    pushback, and the client retries them within its budget.
    println!(
        "\n2. a burst of {BURST} concurrent calls of 20 ms each, half `critical`, half `sheddable`"
    );
    let mut calls = JoinSet::new();
    for i in 0..BURST {
        let mut client = client.clone();
        let priority = if i % 2 == 0 { "critical" } else { "sheddable" };
        calls.spawn(async move {
            let mut request = tonic::Request::new(WorkRequest::new(format!("burst-{i}"), 20));
            request.metadata_mut().insert(
                "x-request-criticality",
                MetadataValue::from_static(priority),
            );
            (priority, client.work(request).await)
        });
    }
    let (mut ok, mut ok_after_retry, mut exhausted, mut other) = (0, 0, 0, 0);
    let mut ok_by_priority = std::collections::BTreeMap::new();
    while let Some(result) = calls.join_next().await {
        let (priority, result) = result?;
        match result {
            Ok(reply) => {
                ok += 1;
                ok_after_retry += usize::from(reply.get_ref().attempt > 0);
                *ok_by_priority.entry(priority).or_insert(0) += 1;
            }
            Err(status) if status.code() == Code::ResourceExhausted => exhausted += 1,
            Err(status) => {
                println!("   unexpected: {status}");
                other += 1;
            }
        }
    }
    let shed = server.shed_stats();
    let stats = client.retry_stats();
    println!(
        "   server: refused {} (RESOURCE_EXHAUSTED + grpc-retry-pushback-ms), queued {}, sloughed {}, timed out {}",
        shed.refused, shed.queued, shed.sloughed, shed.timed_out
    );
    println!(
        "   client: {ok} OK ({ok_after_retry} of them after a retry), {exhausted} RESOURCE_EXHAUSTED, {other} other"
    );
    println!("   OK by priority: {ok_by_priority:?}");
    println!(
        "   retries: {} spent, {} refused by the budget; allowance so far {} (reserve {} + {:.0}% of {} requests)",
        stats.retries(),
        stats.budget_exhausted(),
        client.retry_allowance(&client_config),
        u64::from(client_config.min_retries_per_sec) * example_grpc::BUDGET_TTL.as_secs(),
        client_config.retry_ratio * 100.0,
        stats.requests()
    );

    // 3. A call whose deadline has already passed is refused before any work.
    // (x-request-timeout: the shedder takes the earlier of it and grpc-timeout. A
    // `grpc-timeout: 0n` would be refused by tonic's own channel before it is sent.)
    println!("\n3. a call with an expired deadline (x-request-timeout: 0)");
    let mut expired = tonic::Request::new(WorkRequest::new("late", 1));
    expired
        .metadata_mut()
        .insert("x-request-timeout", MetadataValue::from_static("0"));
    let status = client
        .clone()
        .work(expired)
        .await
        .expect_err("an expired deadline is refused");
    println!("   {:?}: {}", status.code(), status.message());
    println!(
        "   server deadline refusals: {}",
        server.shed_stats().deadline_exceeded
    );

    // 4. The clocks kept moving forward.
    let reply = client
        .clone()
        .work(tonic::Request::new(WorkRequest::new("last", 1)))
        .await?
        .into_inner();
    let at = Timestamp::from_u64(reply.received_at);
    println!(
        "\n4. HLC: the last call was received at {at}, after the first calls: {}",
        at > last
    );
    println!(
        "   server clock {} <= client clock {}",
        server.hlc().last(),
        client.hlc().now()
    );

    server.stop().await?;
    Ok(())
}
