//! The gRPC example's promises: overload is answered with `RESOURCE_EXHAUSTED` and a
//! pushback, which the client retries within its budget; an expired deadline gets
//! `DEADLINE_EXCEEDED` before any work; HLC timestamps move forward across the call.
//! Loopback only, a few dozen calls, about a second in a debug build.

use example_grpc::proto::WorkRequest;
use example_grpc::{ClientConfig, ServerConfig, connect, start_server};
use steadfast::hlc::Timestamp;
use tokio::task::JoinSet;
use tonic::Code;
use tonic::metadata::MetadataValue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_resource_exhausted_and_retried_within_the_budget() {
    let server = start_server(ServerConfig::default()).await.unwrap();
    let config = ClientConfig::default();
    let client = connect(server.addr(), config.clone()).await.unwrap();

    let mut calls = JoinSet::new();
    for i in 0..24 {
        let mut client = client.clone();
        calls.spawn(async move {
            let request = tonic::Request::new(WorkRequest::new(format!("burst-{i}"), 20));
            client.work(request).await
        });
    }
    let (mut ok, mut ok_after_retry, mut exhausted) = (0, 0, 0);
    while let Some(result) = calls.join_next().await {
        match result.unwrap() {
            Ok(reply) => {
                ok += 1;
                ok_after_retry += usize::from(reply.get_ref().attempt > 0);
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                exhausted += 1;
            }
        }
    }
    let stats = client.retry_stats();
    let refused = server.shed_stats().refused;
    assert!(refused > 0, "the burst overloaded the server");
    // Every refusal was a RESOURCE_EXHAUSTED with a pushback, so each one was retried
    // or the budget (or the attempt limit) stopped it.
    assert!(
        stats.retries() > 0,
        "RESOURCE_EXHAUSTED with a pushback is retried"
    );
    assert!(ok_after_retry > 0, "some retries succeeded");
    assert!(
        stats.retries() <= client.retry_allowance(&config),
        "{} retries, allowance {}",
        stats.retries(),
        client.retry_allowance(&config)
    );
    // Every attempt the server saw was a first attempt or a retry.
    assert_eq!(stats.attempts(), 24 + stats.retries());
    assert_eq!(ok + exhausted, 24);
    // What the client got as RESOURCE_EXHAUSTED, the server refused.
    assert!(exhausted as u64 <= refused);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_deadline_is_deadline_exceeded_and_not_retried() {
    let server = start_server(ServerConfig::default()).await.unwrap();
    let mut client = connect(server.addr(), ClientConfig::default())
        .await
        .unwrap();

    // The caller's deadline has passed (the shedder takes the earlier of this and the
    // client's grpc-timeout).
    let mut request = tonic::Request::new(WorkRequest::new("late", 1));
    request
        .metadata_mut()
        .insert("x-request-timeout", MetadataValue::from_static("0"));
    let status = client.work(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(server.shed_stats().deadline_exceeded, 1);
    assert_eq!(client.retry_stats().retries(), 0);

    // The client's default timeout is sent as grpc-timeout: a normal call is served.
    let reply = client
        .work(tonic::Request::new(WorkRequest::new("on time", 1)))
        .await
        .unwrap();
    assert_eq!(reply.get_ref().message, "done: on time");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlc_timestamps_move_forward_across_the_call() {
    let server = start_server(ServerConfig::default()).await.unwrap();
    let mut client = connect(server.addr(), ClientConfig::default())
        .await
        .unwrap();

    let mut last = client.hlc().now();
    for i in 0..5 {
        let reply = client
            .work(tonic::Request::new(WorkRequest::new(
                format!("call-{i}"),
                0,
            )))
            .await
            .unwrap()
            .into_inner();
        let received = Timestamp::from_u64(reply.received_at);
        // The server merged the client's stamp before it received the request, and the
        // client merged the server's stamp from the response.
        assert!(received > last, "{received} after {last}");
        let after = client.hlc().now();
        assert!(after > received, "{after} after {received}");
        last = after;
    }
    server.stop().await.unwrap();
}
