//! LeaderOnlyLayer: refusals, the tower contract, and the state a Singleton publishes.

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderName, Request, Response, StatusCode};
use steadfast_core::error::BoxError;
use steadfast_lease::{
    FencingToken, LeaderOnlyLayer, LeaderState, LeaseGuard, LeaseHolder, LeaseStore, LeaseTerms,
    MemoryLeaseStore, NotLeader, Singleton,
};
use steadfast_test_support::{CountingWaker, assert_send, contract, mock};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_layer::Layer;
use tower_service::Service;

fn leading() -> LeaderState {
    LeaderState::Leading {
        token: FencingToken::new(3),
        deadline: Instant::now() + Duration::from_secs(3_600),
    }
}

fn following(leader: Option<&str>) -> LeaderState {
    LeaderState::Following {
        leader: leader.map(|id| LeaseHolder::new(id, FencingToken::new(9))),
    }
}

fn ok_service()
-> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future = impl Send>
+ Clone
+ Send {
    service_fn(
        |req: Request<String>| async move { Ok(Response::new(format!("served {}", req.body()))) },
    )
}

#[tokio::test(start_paused = true)]
async fn leader_keeps_the_tower_contract_in_both_modes() {
    let _t = steadfast_test_support::trace_init();
    let (_state, receiver) = watch::channel(leading());
    contract::check_http_layer(LeaderOnlyLayer::http(receiver.clone())).await;
    contract::check_layer(LeaderOnlyLayer::error(receiver)).await;
}

#[tokio::test(start_paused = true)]
async fn follower_answers_503_naming_the_leader() {
    let (state, receiver) = watch::channel(following(Some("replica-b")));
    let svc = LeaderOnlyLayer::http(receiver).layer(ok_service());

    let response = svc
        .clone()
        .oneshot(Request::new(String::from("x")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-leader"], "replica-b");
    assert_eq!(response.body(), "");

    // Unknown leader: no header.
    state.send_replace(following(None));
    let response = svc
        .clone()
        .oneshot(Request::new(String::from("x")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("x-leader").is_none());

    // A stopped singleton leads nowhere.
    state.send_replace(LeaderState::Stopped);
    let response = svc
        .clone()
        .oneshot(Request::new(String::from("x")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Leading: served.
    state.send_replace(leading());
    let response = svc.oneshot(Request::new(String::from("x"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "served x");
}

#[tokio::test(start_paused = true)]
async fn the_leader_header_can_be_renamed_and_invalid_ids_are_left_out() {
    let (state, receiver) = watch::channel(following(Some("replica-b")));
    let layer = LeaderOnlyLayer::http(receiver).leader_header(HeaderName::from_static("x-primary"));
    let svc = layer.layer(ok_service());
    let response = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-primary"], "replica-b");
    assert!(response.headers().get("x-leader").is_none());

    state.send_replace(following(Some("bad\nid")));
    let response = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("x-primary").is_none());
}

#[tokio::test(start_paused = true)]
async fn error_mode_returns_a_downcastable_not_leader() {
    let (_state, receiver) = watch::channel(following(Some("replica-b")));
    let svc = ServiceBuilder::new()
        .layer(LeaderOnlyLayer::error(receiver))
        .service(service_fn(
            |n: u32| async move { Ok::<_, Infallible>(n + 1) },
        ));
    let err: BoxError = svc.oneshot(1).await.unwrap_err();
    let not_leader = err.downcast_ref::<NotLeader>().expect("a NotLeader");
    assert_eq!(not_leader.leader().map(LeaseHolder::id), Some("replica-b"));
    assert_eq!(not_leader.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        not_leader.to_string(),
        "not the leader; the leader is replica-b (token 9)"
    );
    let grpc: Response<()> = not_leader.to_grpc_response();
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "14");
    assert_eq!(grpc.headers()["x-leader"], "replica-b");
    let http: Response<()> = not_leader.to_http_response();
    assert_eq!(http.headers()["x-leader"], "replica-b");
}

#[tokio::test(start_paused = true)]
async fn a_leading_state_past_its_deadline_is_refused() {
    // The runner stalled and never published the loss: the deadline still decides.
    let (_state, receiver) = watch::channel(LeaderState::Leading {
        token: FencingToken::new(3),
        deadline: Instant::now() + Duration::from_secs(10),
    });
    let svc = LeaderOnlyLayer::http(receiver).layer(ok_service());
    let response = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::advance(Duration::from_secs(10)).await;
    let response = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn follower_is_ready_without_the_inner_service_and_never_calls_it() {
    let (state, receiver) = watch::channel(following(Some("b")));
    let (inner, handle) = mock::pair::<Request<String>, Response<String>>();
    handle.set_capacity(0);
    let mut svc = LeaderOnlyLayer::http(receiver).layer(inner);
    let waker = CountingWaker::new();
    assert!(svc.poll_ready(&mut waker.context()).is_ready());
    let response = svc.call(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!((handle.calls(), handle.reserved()), (0, 0));

    // Leading: poll_ready waits for the inner service's permit.
    state.send_replace(leading());
    assert!(svc.poll_ready(&mut waker.context()).is_pending());
}

#[tokio::test(start_paused = true)]
async fn leadership_lost_between_poll_ready_and_call_refuses_the_request() {
    let (state, receiver) = watch::channel(leading());
    let (inner, handle) = mock::pair::<Request<String>, Response<String>>();
    handle.respond_with(|_req: &Request<String>| Ok(Response::new(String::from("served"))));
    let mut svc = LeaderOnlyLayer::http(receiver).layer(inner);
    let waker = CountingWaker::new();
    assert!(svc.poll_ready(&mut waker.context()).is_ready());
    state.send_replace(following(Some("b")));
    let response = svc.call(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(handle.calls(), 0);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "poll_ready must be called before call")]
async fn call_without_poll_ready_panics() {
    let (_state, receiver) = watch::channel(leading());
    let mut svc = LeaderOnlyLayer::http(receiver).layer(ok_service());
    let _ = svc.call(Request::new(String::new()));
}

#[tokio::test(start_paused = true)]
async fn follows_the_state_a_singleton_publishes() {
    let _t = steadfast_test_support::trace_init();
    let store = MemoryLeaseStore::new();
    let other = store
        .try_acquire(
            "cron",
            "replica-b",
            LeaseTerms::new(Duration::from_secs(15)),
        )
        .await
        .unwrap()
        .unwrap();
    let singleton = Singleton::builder(store.clone(), "cron", "replica-a")
        .jitter_seed(1)
        .build()
        .unwrap();
    let svc = LeaderOnlyLayer::http(singleton.state()).layer(ok_service());
    let shutdown = singleton.shutdown_handle();
    let task = tokio::spawn(singleton.run(|guard: LeaseGuard| async move {
        guard.shutdown_requested().await;
    }));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let response = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-leader"], "replica-b");

    store.release(&other).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let response = svc
        .clone()
        .oneshot(Request::new(String::from("tick")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    shutdown.shutdown();
    task.await.unwrap().unwrap();
    let response = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn services_and_futures_are_send() {
    type Http = steadfast_lease::LeaderOnly<
        mock::MockService<Request<String>, Response<String>>,
        steadfast_lease::RejectHttp,
    >;
    type Errors = steadfast_lease::LeaderOnly<
        mock::MockService<String, String>,
        steadfast_lease::RejectError,
    >;
    assert_send::<Http>();
    assert_send::<<Http as Service<Request<String>>>::Future>();
    assert_send::<Errors>();
    assert_send::<<Errors as Service<String>>::Future>();
    assert_send::<LeaderOnlyLayer>();
}
