//! Issue 8's performance figures for the real backends, measured and asserted per backend:
//!
//! - **Failover time after the leader is killed** (target: at most ttl + one retry
//!   period). Memory: the leader is a task in this process, aborted (dropped without
//!   release). Redis, PostgreSQL, etcd: the leader is a **separate child process** (this
//!   test binary re-executed to run only the ignored test `child_holder`), `SIGKILL`ed; its
//!   connections die with it and nothing is released. A contender `Singleton` in this
//!   process has been campaigning all along; the failover time runs from the kill to the
//!   start of the contender's job. Three kills per backend; each is printed and asserted
//!   against the target plus scheduling slack for a busy 2-core machine (and, for etcd,
//!   its 500 ms expiry tick).
//! - **Round trips per operation**, counted on the wire: the store connects through a
//!   loopback proxy that counts request/answer turns (`support::process::CountingProxy`),
//!   and each operation's count is the difference around it. They are asserted equal to
//!   the numbers the backends document.
//!
//! The servers are named by `STEADFAST_REDIS_URL`, `STEADFAST_POSTGRES_URL` and
//! `STEADFAST_ETCD_ENDPOINTS`; without one, its tests print `skipped: … not set` (and fail
//! under `CI=true`). The figures are in `benches/README.md` ("lease"), with the command.

mod support;

use std::time::Duration;

use steadfast_lease::{FencingToken, LeaseStore, MemoryLeaseStore, Singleton};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const RETRY: Duration = Duration::from_millis(100);
/// The ttl for memory, Redis and PostgreSQL (as the conformance suite's failover check).
const TTL: Duration = Duration::from_millis(600);
/// Kills per backend.
const ROUNDS: usize = 3;
/// Scheduling slack on a busy 2-core machine (debug build, other builds running).
const SLACK: Duration = Duration::from_millis(300);

/// Runs a contender that reports (token, start instant) when its job starts and then
/// holds the lease until shut down; returns its shutdown handle, its task and the report.
#[allow(clippy::type_complexity)]
fn contender<S: LeaseStore + 'static>(
    store: S,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> (
    steadfast_lease::ShutdownHandle,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<(FencingToken, Instant)>,
) {
    let singleton = Singleton::builder(store, name, holder)
        .ttl(ttl)
        .retry_period(RETRY)
        .build()
        .unwrap();
    let shutdown = singleton.shutdown_handle();
    let (started, report) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let _ = singleton
            .run(move |guard| {
                let started = started.clone();
                async move {
                    let _ = started.send((guard.token(), Instant::now()));
                    guard.shutdown_requested().await;
                }
            })
            .await;
    });
    (shutdown, task, report)
}

/// Checks the failovers against ttl + retry period + `slack`, and prints them.
fn report(backend: &str, ttl: Duration, slack: Duration, failovers: &[Duration]) {
    let target = ttl + RETRY;
    eprintln!(
        "failover ({backend}, ttl {ttl:?}, retry period {RETRY:?}, target {target:?}, \
         asserted with slack {slack:?}): {}",
        failovers
            .iter()
            .map(|f| format!("{} ms", f.as_millis()))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    for failover in failovers {
        assert!(
            *failover <= target + slack,
            "{backend}: failover took {failover:?}, target {target:?} + slack {slack:?}"
        );
    }
}

/// Memory: the leader's task is aborted (no release, no more renewals).
#[tokio::test]
async fn memory_failover_after_the_leader_is_dropped() {
    let store = MemoryLeaseStore::new();
    let mut failovers = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("job{round}");
        let (_, leader, mut led) = contender(store.clone(), &name, "a", TTL);
        let (a_token, _) = led.recv().await.unwrap();
        let (shutdown, task, mut report_b) = contender(store.clone(), &name, "b", TTL);
        tokio::time::sleep(TTL).await; // a few renewals while b campaigns
        leader.abort();
        let killed = Instant::now();
        let (b_token, started) = timeout(TTL * 4, report_b.recv())
            .await
            .expect("b takes over")
            .unwrap();
        assert!(b_token > a_token);
        failovers.push(started - killed);
        shutdown.shutdown();
        task.await.unwrap();
    }
    report("memory", TTL, SLACK, &failovers);
}

#[cfg(any(feature = "redis", feature = "postgres", feature = "etcd"))]
mod real {
    use std::collections::BTreeMap;
    use std::future::Future;

    use crate::support::holder::{HolderSpec, Kind, Target, spawn_holder};
    use crate::support::process::{CountingProxy, split_url};
    use steadfast_lease::{Lease, LeaseTerms};

    use super::*;

    /// The ignored test the children run.
    const CHILD_TEST: &str = "real::child_holder";

    /// The child holder's body: does nothing unless started by a test below.
    #[tokio::test]
    #[ignore = "a child process of the tests in this file; on its own it does nothing"]
    async fn child_holder() {
        crate::support::holder::child_main().await;
    }

    /// Kills a child leader `ROUNDS` times and measures how soon a contender leads.
    async fn failover_after_sigkill(kind: Kind, ttl: Duration, slack: Duration) {
        let Some(target) = Target::from_env(kind, "failover") else {
            return;
        };
        target.setup().await;
        let store = target.store().await;
        let mut failovers = Vec::new();
        for round in 0..ROUNDS {
            let name = format!("job{round}");
            let spec = HolderSpec {
                name: name.clone(),
                holder: format!("child{round}"),
                ttl,
                retry: RETRY,
                stale_probe: false,
            };
            let mut child = spawn_holder(CHILD_TEST, &target, &spec);
            let child_token = child
                .wait_event(0, Duration::from_secs(15), |e| e.kind == "lead")
                .await
                .token();
            let holder = format!("parent{round}");
            let (shutdown, task, mut led) = contender(store.clone(), &name, &holder, ttl);
            tokio::time::sleep(ttl).await; // a few renewals while the contender campaigns
            let current = store.current(&name).await.unwrap().expect("held");
            assert_eq!(
                current.id(),
                spec.holder,
                "the child leads until it is killed"
            );
            child.kill();
            let killed = Instant::now();
            let (token, started) = timeout(ttl * 4 + Duration::from_secs(2), led.recv())
                .await
                .expect("the contender takes over")
                .unwrap();
            assert!(token.get() > child_token);
            failovers.push(started - killed);
            shutdown.shutdown();
            task.await.unwrap();
        }
        report(kind.label(), ttl, slack, &failovers);
        target.teardown().await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_failover_after_the_leader_is_killed() {
        failover_after_sigkill(Kind::Redis, TTL, SLACK).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_failover_after_the_leader_is_killed() {
        failover_after_sigkill(Kind::Postgres, TTL, SLACK).await;
    }

    /// etcd: ttls are whole seconds, at least 2 with its default election timeout, and
    /// expired leases are revoked on a 500 ms tick, which the slack includes.
    #[cfg(feature = "etcd")]
    #[tokio::test]
    async fn etcd_failover_after_the_leader_is_killed() {
        failover_after_sigkill(
            Kind::Etcd,
            Duration::from_secs(2),
            SLACK + Duration::from_millis(500),
        )
        .await;
    }

    /// Round trips of each operation, as the backends document them.
    struct Expected {
        acquire_free: usize,
        acquire_own: usize,
        acquire_taken: usize,
        renew: usize,
        release: usize,
        current: usize,
    }

    /// Counts the round trips of `operation` through `proxy`: request/answer turns, or for
    /// etcd (gRPC over HTTP/2, with control frames either way at any time) the calls, each
    /// awaited before the next.
    async fn count<T>(
        proxy: &CountingProxy,
        kind: Kind,
        operation: impl Future<Output = T>,
    ) -> (T, usize) {
        let read = || match kind {
            Kind::Etcd => proxy.streams(),
            _ => proxy.round_trips(),
        };
        let before = read();
        let output = operation.await;
        (output, read() - before)
    }

    /// Counts each operation's round trips `ROUNDS + 1` times (the first, which may load
    /// scripts, is reported apart), prints them and checks them against `expected`.
    async fn round_trips(kind: Kind, expected: Expected) {
        const ROUNDS: usize = 10;
        let Some(target) = Target::from_env(kind, "round_trips") else {
            return;
        };
        target.setup().await;
        let (_, host, port, _) = split_url(&target.url, kind.default_port());
        let proxy = CountingProxy::start(&host, port, kind == Kind::Etcd);
        let (proxied, _, _) = target.via_port(proxy.port());
        let store = proxied.store().await;
        // Connection set-up (handshakes, authentication) is not counted.
        store.current("warm-up").await.unwrap();
        let terms = LeaseTerms::new(Duration::from_secs(30));
        let mut counts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for round in 0..=ROUNDS {
            let name = format!("n{round}");
            let (lease, n) = count(&proxy, kind, store.try_acquire(&name, "a", terms)).await;
            let lease: Lease = lease.unwrap().expect("free");
            counts.entry("acquire (free)").or_default().push(n);
            let (renewed, n) = count(&proxy, kind, store.renew(&lease)).await;
            renewed.unwrap();
            counts.entry("renew").or_default().push(n);
            let (own, n) = count(&proxy, kind, store.try_acquire(&name, "a", terms)).await;
            assert_eq!(own.unwrap().expect("own").token(), lease.token());
            counts.entry("acquire (own)").or_default().push(n);
            let (taken, n) = count(&proxy, kind, store.try_acquire(&name, "b", terms)).await;
            assert!(taken.unwrap().is_none());
            counts.entry("acquire (taken)").or_default().push(n);
            let (holder, n) = count(&proxy, kind, store.current(&name)).await;
            assert_eq!(holder.unwrap().expect("held").token(), lease.token());
            counts.entry("current").or_default().push(n);
            let (released, n) = count(&proxy, kind, store.release(&lease)).await;
            released.unwrap();
            counts.entry("release").or_default().push(n);
        }
        let mut line = Vec::new();
        for (operation, counts) in &counts {
            let steady: Vec<usize> = counts[1..].to_vec();
            let (min, max) = (steady.iter().min().unwrap(), steady.iter().max().unwrap());
            line.push(format!(
                "{operation} {min}{} (first {})",
                if min == max {
                    String::new()
                } else {
                    format!("–{max}")
                },
                counts[0]
            ));
        }
        eprintln!("round trips ({}): {}", kind.label(), line.join(", "));
        let expect = [
            ("acquire (free)", expected.acquire_free),
            ("acquire (own)", expected.acquire_own),
            ("acquire (taken)", expected.acquire_taken),
            ("renew", expected.renew),
            ("release", expected.release),
            ("current", expected.current),
        ];
        for (operation, want) in expect {
            assert!(
                counts[operation][1..].iter().all(|&n| n == want),
                "{}: {operation} took {:?} round trips, documented {want}",
                kind.label(),
                &counts[operation][1..]
            );
        }
        drop(store);
        target.teardown().await;
    }

    /// One `EVALSHA` per transition (after the script is loaded), one `GET` for `current`.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_round_trips() {
        let one = Expected {
            acquire_free: 1,
            acquire_own: 1,
            acquire_taken: 1,
            renew: 1,
            release: 1,
            current: 1,
        };
        round_trips(Kind::Redis, one).await;
    }

    /// One statement per operation, pipelined (Parse, Bind, Describe, Execute, Sync).
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_round_trips() {
        let one = Expected {
            acquire_free: 1,
            acquire_own: 1,
            acquire_taken: 1,
            renew: 1,
            release: 1,
            current: 1,
        };
        round_trips(Kind::Postgres, one).await;
    }

    /// Acquire: `LeaseGrant` + `Txn` (+ `LeaseRevoke` when taken); renew: `Txn` +
    /// `LeaseKeepAlive`; release: `Txn` + `LeaseRevoke`; current: `Range`.
    #[cfg(feature = "etcd")]
    #[tokio::test]
    async fn etcd_round_trips() {
        let etcd = Expected {
            acquire_free: 2,
            acquire_own: 2,
            acquire_taken: 3,
            renew: 2,
            release: 2,
            current: 1,
        };
        round_trips(Kind::Etcd, etcd).await;
    }
}
