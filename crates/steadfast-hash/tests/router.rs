//! The hash routers over mock members and a test-only placement: affinity, fallback when the
//! owner is not ready, strict waiting, errors, bounded loads and tickets, clones, Discover.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use steadfast_core::error::BoxError;
use steadfast_hash::bounded::BoundedLoad;
use steadfast_hash::router::future::ResponseFuture;
use steadfast_hash::router::{DiscoverRouter, HashRouter, MAX_FALLBACKS, NoMembers};
use steadfast_hash::stable::fmix64;
use steadfast_hash::{Placement, stable_hash64};
use steadfast_test_support::mock::{self, MockHandle, MockService};
use steadfast_test_support::{CountingWaker, assert_send};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower::discover::Change;
use tower_service::Service;

/// A small rendezvous placement over member ids.
#[derive(Debug, Clone)]
struct Hrw {
    seeds: Vec<u64>,
}

impl Hrw {
    fn new(n: usize) -> Self {
        Self::over((0..n as u64).collect::<Vec<_>>().as_slice())
    }

    fn over<K: steadfast_hash::StableHash>(ids: &[K]) -> Self {
        Self {
            seeds: ids.iter().map(stable_hash64).collect(),
        }
    }

    fn order(&self, hash: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.seeds.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(fmix64(hash ^ self.seeds[i])));
        order
    }
}

impl Placement for Hrw {
    fn len(&self) -> usize {
        self.seeds.len()
    }

    fn place(&self, hash: u64) -> Option<usize> {
        self.order(hash).first().copied()
    }

    fn replicas(&self, hash: u64, out: &mut [usize]) -> usize {
        let order = self.order(hash);
        let k = out.len().min(order.len());
        out[..k].copy_from_slice(&order[..k]);
        k
    }
}

type Shard = MockService<u64, String>;

/// `n` mock members; member `i` answers `"{i}:{key}"`.
fn shards(n: usize) -> (Vec<Shard>, Vec<MockHandle<u64, String>>) {
    (0..n)
        .map(|i| {
            let (service, handle) = mock::pair::<u64, String>();
            handle.respond_with(move |key: &u64| Ok(format!("{i}:{key}")));
            (service, handle)
        })
        .unzip()
}

fn key(request: &u64) -> u64 {
    *request
}

/// The member that answered.
fn member(answer: &str) -> usize {
    answer
        .split(':')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("member:key")
}

/// A key whose preference order starts with `owner`.
fn key_owned_by(placement: &Hrw, owner: usize) -> u64 {
    (0..)
        .find(|k: &u64| placement.place(stable_hash64(k)) == Some(owner))
        .expect("some key")
}

fn poll<F: Future>(future: Pin<&mut F>, waker: &CountingWaker) -> Poll<F::Output> {
    future.poll(&mut waker.context())
}

#[test]
fn router_and_future_are_send() {
    assert_send::<HashRouter<Shard, Hrw, fn(&u64) -> u64>>();
    assert_send::<ResponseFuture<Shard, u64>>();
}

#[tokio::test(flavor = "current_thread")]
async fn routes_each_key_to_its_owner() {
    let (services, _handles) = shards(5);
    let router = HashRouter::new(services, Hrw::new(5), key);
    let (again, _handles) = shards(5);
    let other = HashRouter::new(again, Hrw::new(5), key);
    for k in 0..200u64 {
        let owner = Hrw::new(5).place(stable_hash64(&k)).expect("members");
        assert_eq!(router.owner(&k), Some(owner));
        let answer = router.clone().oneshot(k).await.expect("answer");
        assert_eq!(answer, format!("{owner}:{k}"));
        // Another router (another process) over the same members agrees.
        assert_eq!(
            member(&other.clone().oneshot(k).await.expect("answer")),
            owner
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn falls_back_to_the_next_member_when_the_owner_is_not_ready() {
    let placement = Hrw::new(4);
    let k = key_owned_by(&placement, 2);
    let second = placement.order(stable_hash64(&k))[1];
    let (services, handles) = shards(4);
    let router = HashRouter::new(services, placement, key);
    handles[2].set_capacity(0);

    let answer = router.clone().oneshot(k).await.expect("answer");
    assert_eq!(member(&answer), second);
    assert_eq!(handles[2].calls(), 0);
    // The owner's clone, not ready, was dropped with nothing reserved.
    assert_eq!((handles[2].reserved(), handles[second].in_flight()), (0, 0));

    // Ready again: the key goes home.
    handles[2].set_capacity(mock::UNLIMITED);
    assert_eq!(member(&router.clone().oneshot(k).await.expect("answer")), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn strict_mode_waits_for_the_owner() {
    let placement = Hrw::new(3);
    let k = key_owned_by(&placement, 0);
    let (services, handles) = shards(3);
    let mut router = HashRouter::new(services, placement, key).strict();
    assert_eq!(router.max_fallbacks(), 0);
    handles[0].set_capacity(0);

    router.ready().await.expect("always ready");
    let mut response = pin!(router.call(k));
    let waker = CountingWaker::new();
    assert!(poll(response.as_mut(), &waker).is_pending());
    assert!(handles.iter().all(|h| h.calls() == 0));

    handles[0].set_capacity(1);
    assert_eq!(waker.wakes(), 1);
    match poll(response.as_mut(), &waker) {
        Poll::Ready(Ok(answer)) => assert_eq!(answer, format!("0:{k}")),
        other => panic!("expected the owner's answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn waits_for_the_first_candidate_to_become_ready() {
    let placement = Hrw::new(4);
    let k = key_owned_by(&placement, 1);
    let order = placement.order(stable_hash64(&k));
    let (services, handles) = shards(4);
    let mut router = HashRouter::new(services, placement, key).fallbacks(1);
    handles[order[0]].set_capacity(0);
    handles[order[1]].set_capacity(0);

    let waker = CountingWaker::new();
    let mut response = pin!(router.call(k));
    assert!(poll(response.as_mut(), &waker).is_pending());
    // The second member becomes ready first: it serves, and the owner's waiting clone goes.
    handles[order[1]].set_capacity(1);
    assert_eq!(waker.wakes(), 1);
    match poll(response.as_mut(), &waker) {
        Poll::Ready(Ok(answer)) => assert_eq!(member(&answer), order[1]),
        other => panic!("expected the second member's answer, got {other:?}"),
    }
    handles[order[0]].set_capacity(1);
    assert_eq!(handles[order[0]].available_permits(), 1);

    // Both become ready together: the owner wins.
    handles[order[0]].set_capacity(0);
    handles[order[1]].set_capacity(0);
    let mut response = pin!(router.call(k));
    assert!(poll(response.as_mut(), &waker).is_pending());
    handles[order[1]].set_capacity(1);
    handles[order[0]].set_capacity(1);
    match poll(response.as_mut(), &waker) {
        Poll::Ready(Ok(answer)) => assert_eq!(member(&answer), order[0]),
        other => panic!("expected the owner's answer, got {other:?}"),
    }
    // Never beyond the candidates: the third member was not tried.
    assert_eq!(handles[order[2]].calls(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_waiting_future_releases_the_candidates() {
    let placement = Hrw::new(3);
    let k = key_owned_by(&placement, 0);
    let (services, handles) = shards(3);
    let mut router = HashRouter::new(services, placement, key).fallbacks(MAX_FALLBACKS + 5);
    assert_eq!(router.max_fallbacks(), MAX_FALLBACKS);
    for handle in &handles {
        handle.set_capacity(0);
    }
    let dropped_before: usize = handles.iter().map(MockHandle::services_dropped).sum();
    let waker = CountingWaker::new();
    {
        let mut response = pin!(router.call(k));
        assert!(poll(response.as_mut(), &waker).is_pending());
    }
    // All three candidates were cloned (only 3 members) and dropped with the future.
    let dropped_after: usize = handles.iter().map(MockHandle::services_dropped).sum();
    assert_eq!(dropped_after - dropped_before, 3);
    for handle in &handles {
        handle.set_capacity(1);
        assert_eq!((handle.reserved(), handle.calls()), (0, 0));
    }
    assert_eq!(waker.wakes(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn no_members_is_a_typed_error() {
    let router = HashRouter::new(Vec::<Shard>::new(), Hrw::new(0), key);
    let err = router.oneshot(7).await.expect_err("no members");
    assert!(err.is::<NoMembers>(), "{err}");

    let (tx, rx) = mpsc::unbounded_channel::<Result<Change<&str, Shard>, Infallible>>();
    let router = DiscoverRouter::new(Changes(rx), rebuild, key);
    let err = router.oneshot(7).await.expect_err("no members");
    assert!(err.is::<NoMembers>(), "{err}");
    drop(tx);
}

#[test]
fn mismatched_placement_is_rejected() {
    let (services, _handles) = shards(2);
    assert!(HashRouter::try_new(services, Hrw::new(3), key).is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn member_errors_pass_through() {
    let placement = Hrw::new(2);
    let k = key_owned_by(&placement, 1);
    let (services, handles) = shards(2);
    let router = HashRouter::new(services, placement, key);

    handles[1].respond_with(|_: &u64| Err("cache miss storm".into()));
    let err = router.clone().oneshot(k).await.expect_err("member error");
    assert_eq!(err.to_string(), "cache miss storm");

    // A readiness error of the candidate is returned, not routed around.
    handles[1].fail_ready_with("connection lost");
    let err = router
        .clone()
        .oneshot(k)
        .await
        .expect_err("readiness error");
    assert_eq!(err.to_string(), "connection lost");
    assert_eq!(handles[0].calls(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn bounded_load_spreads_a_hot_key_and_tickets_end_with_the_future() {
    let placement = Hrw::new(3);
    let k = key_owned_by(&placement, 0);
    let order = placement.order(stable_hash64(&k));
    let (services, handles) = shards(3);
    for handle in &handles {
        handle.respond_manually();
    }
    let mut router = HashRouter::new(services, placement, key).bounded_load(BoundedLoad::new(3));

    // Six requests for one key while none completes. Caps (c = 1.25, n = 3) for totals 1..=6
    // are 1, 1, 2, 2, 3, 3: the owner and its second take turns.
    let mut responses: Vec<_> = (0..6).map(|_| Box::pin(router.call(k))).collect();
    let load = router.load().expect("bounded");
    assert_eq!(load.total_in_flight(), 6);
    assert_eq!(
        (
            load.in_flight(order[0]),
            load.in_flight(order[1]),
            load.in_flight(order[2])
        ),
        (3, 3, 0)
    );
    assert_eq!(
        (handles[order[0]].calls(), handles[order[1]].calls()),
        (3, 3)
    );

    // Dropping a response future ends its request's count...
    responses.truncate(4);
    assert_eq!(router.load().expect("bounded").total_in_flight(), 4);
    // ...and so does completing one.
    let (request, responder) = handles[order[0]].try_next_request().expect("a call");
    responder.ok(format!("{}:{request}", order[0]));
    let waker = CountingWaker::new();
    let done = responses
        .iter_mut()
        .position(|r| poll(r.as_mut(), &waker).is_ready())
        .expect("the answered call completes");
    assert_eq!(router.load().expect("bounded").total_in_flight(), 3);
    responses.remove(done);
    drop(responses);
    let load = router.load().expect("bounded");
    assert_eq!(load.total_in_flight(), 0);
    assert!((0..3).all(|m| load.in_flight(m) == 0));
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_request_takes_its_ticket_when_dispatched() {
    let placement = Hrw::new(2);
    let k = key_owned_by(&placement, 0);
    let (services, handles) = shards(2);
    let mut router = HashRouter::new(services, placement, key)
        .strict()
        .bounded_load(BoundedLoad::new(2));
    handles[0].set_capacity(0);

    let waker = CountingWaker::new();
    let mut response = pin!(router.call(k));
    assert!(poll(response.as_mut(), &waker).is_pending());
    assert_eq!(router.load().expect("bounded").total_in_flight(), 0);
    handles[0].respond_manually();
    handles[0].set_capacity(1);
    assert!(poll(response.as_mut(), &waker).is_pending());
    assert_eq!(router.load().expect("bounded").in_flight(0), 1);
    let (_, responder) = handles[0].try_next_request().expect("dispatched");
    responder.ok(String::from("0:done"));
    assert!(poll(response.as_mut(), &waker).is_ready());
    assert_eq!(router.load().expect("bounded").total_in_flight(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn clones_share_the_load_and_route_alike() {
    let placement = Hrw::new(3);
    let k = key_owned_by(&placement, 2);
    let (services, handles) = shards(3);
    handles[2].respond_manually();
    let router = HashRouter::new(services, placement, key).bounded_load(BoundedLoad::new(3));
    let mut clone = router.clone();
    assert_eq!(clone.services().len(), 3);
    assert_eq!(clone.owner(&k), router.owner(&k));

    let in_flight = clone.call(k);
    // The original sees the clone's request.
    assert_eq!(router.load().expect("bounded").in_flight(2), 1);
    drop(router);
    // The clone works on its own.
    assert_eq!(clone.load().expect("bounded").total_in_flight(), 1);
    drop(in_flight);
    assert_eq!(clone.load().expect("bounded").total_in_flight(), 0);
    assert_eq!(handles[2].cancelled(), 1);
}

/// A `Discover` stream fed by a channel.
struct Changes<S>(mpsc::UnboundedReceiver<Result<Change<&'static str, S>, Infallible>>);

impl<S> futures_core::Stream for Changes<S> {
    type Item = Result<Change<&'static str, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn rebuild(keys: &[&'static str]) -> Result<Hrw, Infallible> {
    Ok(Hrw::over(keys))
}

#[tokio::test(flavor = "current_thread")]
async fn discover_inserts_and_removes_members() {
    let (tx, rx) = mpsc::unbounded_channel();
    let (services, handles) = shards(3);
    for (name, service) in ["a", "b", "c"].into_iter().zip(services) {
        tx.send(Ok(Change::Insert(name, service))).expect("open");
    }
    let mut router =
        DiscoverRouter::new(Changes(rx), rebuild, key).bounded_load(BoundedLoad::new(0));
    router.ready().await.expect("ready");
    assert_eq!(router.keys(), ["a", "b", "c"]);

    let owners: Vec<usize> = (0..60u64)
        .map(|k| router.owner(&k).expect("members"))
        .collect();
    for k in 0..60u64 {
        let answer = router
            .ready()
            .await
            .expect("ready")
            .call(k)
            .await
            .expect("answer");
        assert_eq!(member(&answer), owners[k as usize]);
    }

    // A request in flight on "b" when it leaves: it completes, and stops counting at once.
    let on_b = (0..)
        .find(|k: &u64| router.owner(k) == Some(1))
        .expect("a key of b");
    handles[1].respond_manually();
    let in_flight = router.ready().await.expect("ready").call(on_b);
    assert_eq!(router.load().expect("bounded").total_in_flight(), 1);
    tx.send(Ok(Change::Remove("b"))).expect("open");
    router.ready().await.expect("ready");
    assert_eq!(router.keys(), ["a", "c"]);
    assert_eq!(router.load().expect("bounded").total_in_flight(), 0);
    let (_, responder) = handles[1].try_next_request().expect("b's call");
    responder.ok(String::from("1:late"));
    assert_eq!(in_flight.await.expect("completes"), "1:late");

    // Only b's keys moved: a's stay on a (index 0), c's on c (now index 1).
    for k in 0..60u64 {
        let now = router.owner(&k).expect("members");
        match owners[k as usize] {
            0 => assert_eq!(now, 0),
            2 => assert_eq!(now, 1),
            _ => {}
        }
    }

    // Inserting a known key replaces its service and keeps the placement.
    let (replacement, replacement_handle) = mock::pair::<u64, String>();
    replacement_handle.respond_with(|k: &u64| Ok(format!("9:{k}")));
    tx.send(Ok(Change::Insert("c", replacement))).expect("open");
    router.ready().await.expect("ready");
    assert_eq!(router.keys(), ["a", "c"]);
    let on_c = (0..)
        .find(|k: &u64| router.owner(k) == Some(1))
        .expect("a key of c");
    let answer = router
        .ready()
        .await
        .expect("ready")
        .call(on_c)
        .await
        .expect("answer");
    assert_eq!(answer, format!("9:{on_c}"));
}

#[tokio::test(flavor = "current_thread")]
async fn discover_errors_fail_poll_ready() {
    #[derive(Debug)]
    struct Gone;
    impl std::fmt::Display for Gone {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("registry gone")
        }
    }
    impl std::error::Error for Gone {}

    struct Failing;
    impl futures_core::Stream for Failing {
        type Item = Result<Change<&'static str, Shard>, Gone>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(Some(Err(Gone)))
        }
    }

    let mut router = DiscoverRouter::new(Failing, rebuild, key);
    let err: BoxError = router.ready().await.expect_err("discover error");
    assert!(err.is::<Gone>());
}
