//! Issue 8, "the store becomes unreachable", against a real etcd: each test starts its own
//! PRIVATE single-member `etcd` child on free loopback ports (client and peer URLs, its
//! own temporary data directory), so the shared cluster named by `STEADFAST_ETCD_ENDPOINTS`
//! is never disturbed, and kills it at the end.
//!
//! 1. `SIGSTOP` the server mid-run: it never answers, yet the holder's guard reports the
//!    loss (and its job is dropped) by its own deadline: the send time of the last
//!    successful renewal + ttl − safety margin. After `SIGCONT` it leads again.
//! 2. Kill the server mid-run: same bound; restarted on the same data directory, it is
//!    led again, and a new key's token is higher than the old term's (etcd's revisions
//!    survive restarts, unlike a Redis without persistence).
//!
//! The private server runs with a 50 ms heartbeat and a 500 ms election timeout, so its
//! minimum lease ttl is 1 s (`ceil(1.5 × election timeout)`), the ttl used here.
//!
//! Without `etcd` on `PATH` the tests print `skipped: …` and pass, except under `CI=true`,
//! where they fail.
#![cfg(feature = "etcd")]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use steadfast_lease::{EtcdLeaseStore, FenceGate, LeaseStore, LeaseTerms};
use support::process::{ChildProcess, TempDir, free_port, program_available, wait_listening};
use support::recording::Recording;
use support::stepdown::{SLACK, TTL, assert_steps_down_by_deadline, lead, next_term};
use tokio::time::Instant;

/// A private single-member etcd, killed (and reaped) on drop, even while stopped.
struct EtcdServer {
    process: ChildProcess,
    client_port: u16,
}

impl EtcdServer {
    /// Starts a member with its data in `data`, serving clients on `client_port`, and waits
    /// until it accepts connections.
    fn start(data: &TempDir, client_port: u16) -> Self {
        let peer = format!("http://127.0.0.1:{}", free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let mut command = Command::new("etcd");
        command
            .args(["--name", "steadfast-test"])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("steadfast-test={peer}")])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--log-level", "error"]);
        let process = ChildProcess::spawn(command, "etcd");
        wait_listening(client_port, Duration::from_secs(10), "etcd");
        Self {
            process,
            client_port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

/// A store on the private server, once it serves requests (it elects itself first).
async fn ready_store(server: &EtcdServer) -> Recording<EtcdLeaseStore> {
    let store = EtcdLeaseStore::connect([server.url()]).await.unwrap();
    let started = Instant::now();
    while store.current("job").await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "etcd never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Recording::new(store)
}

/// SIGSTOP the server while `a` leads: no answer ever comes, yet `a` steps down by its
/// own deadline; after SIGCONT it leads again.
#[tokio::test]
async fn stopped_etcd_holder_steps_down_by_its_deadline() {
    if !program_available("etcd") {
        return;
    }
    let data = TempDir::new("etcd-stop");
    let server = EtcdServer::start(&data, free_port());
    let store = ready_store(&server).await;
    let gate = Arc::new(FenceGate::new());
    let mut leader = lead(store.clone(), gate.clone());
    let (guard, admitted) = next_term(&mut leader, Duration::from_secs(6)).await;
    admitted.unwrap();
    let old = guard.token();

    // A few renewals (every ttl/3) go through first.
    tokio::time::sleep(TTL).await;
    assert!(guard.is_valid());
    let _ = server.process.stop();
    let cut = Instant::now();
    assert_steps_down_by_deadline(&mut leader, &store, &guard, cut, "SIGSTOP").await;

    // Stay stopped past the lease's ttl by etcd's clock too.
    tokio::time::sleep_until(cut + TTL + SLACK).await;
    server.process.resume();
    let resumed = Instant::now();
    let (again, admitted) = next_term(&mut leader, Duration::from_secs(6)).await;
    // etcd revokes expired leases on a 500 ms tick: if `a` campaigns before the old lease
    // is revoked, it re-acquires its own key and keeps its token (the same holder
    // acquiring again); after the revocation the key is new, and so is the token.
    eprintln!(
        "SIGCONT: leads again after {:?}, token {} (was {})",
        resumed.elapsed(),
        again.token(),
        old
    );
    assert!(again.token() >= old);
    assert!(again.is_valid());
    admitted.unwrap();
    let holder = store.current("job").await.unwrap().expect("held");
    assert_eq!((holder.id(), holder.token()), ("a", again.token()));
    leader.task.abort();
}

/// Kill the server while `a` leads: `a` steps down by its own deadline; the server
/// restarted on the same data is led again, and tokens did not reset.
#[tokio::test]
async fn killed_etcd_holder_steps_down_and_resumes_after_a_restart() {
    if !program_available("etcd") {
        return;
    }
    let data = TempDir::new("etcd-kill");
    let port = free_port();
    let mut server = EtcdServer::start(&data, port);
    let store = ready_store(&server).await;
    let gate = Arc::new(FenceGate::new());
    let mut leader = lead(store.clone(), gate.clone());
    let (guard, admitted) = next_term(&mut leader, Duration::from_secs(6)).await;
    admitted.unwrap();
    let old = guard.token();

    tokio::time::sleep(TTL).await;
    assert!(guard.is_valid());
    server.process.kill();
    let cut = Instant::now();
    assert_steps_down_by_deadline(&mut leader, &store, &guard, cut, "kill").await;

    let restarted = Instant::now();
    let server = EtcdServer::start(&data, port);
    let (again, admitted) = next_term(&mut leader, Duration::from_secs(6)).await;
    eprintln!(
        "restart: leads again {:?} after the restart, token {} (was {})",
        restarted.elapsed(),
        again.token(),
        old
    );
    // etcd restores the old key and its lease (refreshed) from disk, so `a` may re-acquire
    // its own key and keep its token (the same holder acquiring again); the gate accepts it.
    assert!(again.token() >= old);
    admitted.unwrap();
    assert_eq!(gate.latest("resource").unwrap().0, again.token());
    // The revision counter survived the restart: a new key gets a higher token (a Redis
    // without persistence starts again at 1, see `real_faults.rs`).
    let fresh = store
        .try_acquire("fresh", "b", LeaseTerms::new(TTL))
        .await
        .unwrap()
        .expect("free");
    assert!(fresh.token() > old, "token {} after {old}", fresh.token());
    leader.task.abort();
    drop(server);
}
