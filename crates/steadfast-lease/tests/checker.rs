//! Long seeded runs checked by the lease checker: every term and every write recorded,
//! the invariants of issue 8 asserted at the end.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast_lease::faulty::{Fault, FaultyStore};
use steadfast_lease::{LeaseGuard, MemoryLeaseStore, ShutdownHandle, Singleton, Stopped};
use support::{Checker, Pause, sleep};
use tokio::task::JoinHandle;

const TTL: Duration = Duration::from_secs(3);

/// A tiny seeded generator for the fault schedule (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        steadfast_core::splitmix::next(&mut self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max) + 1)
    }
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Writes every 100 ms; each write is prepared for 50 ms after the guard check, so a pause
/// can land between the check and the write (time of check to time of use). With a
/// `network`, each write then travels to the resource with a delay drawn from it (a
/// delayed packet outlives the writer's lease now and then).
fn job(
    checker: &Checker,
    network: Option<Arc<Mutex<Rng>>>,
) -> impl FnMut(LeaseGuard) -> Job + Send + 'static {
    let checker = checker.clone();
    move |guard: LeaseGuard| {
        let checker = checker.clone();
        let network = network.clone();
        Box::pin(async move {
            let _term = checker.begin(guard.holder(), guard.token());
            loop {
                tokio::select! {
                    biased;
                    _ = guard.shutdown_requested() => return,
                    _ = sleep(Duration::from_millis(50)) => {}
                }
                if !guard.is_valid() {
                    return;
                }
                let token = guard.token();
                sleep(Duration::from_millis(50)).await;
                match &network {
                    None => {
                        let _ = checker.write(guard.holder(), token);
                    }
                    Some(network) => {
                        let delay = {
                            let mut rng = network.lock().unwrap();
                            if rng.below(20) == 0 {
                                rng.millis(2 * TTL.as_millis() as u64)
                            } else {
                                rng.millis(20)
                            }
                        };
                        let checker = checker.clone();
                        let holder = guard.holder().to_owned();
                        tokio::spawn(async move {
                            sleep(delay).await;
                            let _ = checker.write(&holder, token);
                        });
                    }
                }
            }
        })
    }
}

struct Replica {
    link: FaultyStore<MemoryLeaseStore>,
    pause: Pause,
    shutdown: ShutdownHandle,
    task: JoinHandle<Result<(), Stopped>>,
}

fn start(
    store: &MemoryLeaseStore,
    holder: &str,
    checker: &Checker,
    seed: u64,
    network: Option<Arc<Mutex<Rng>>>,
) -> Replica {
    let link = FaultyStore::new(store.clone());
    let pause = Pause::default();
    let singleton = Singleton::builder(link.clone(), "job", holder)
        .ttl(TTL)
        .retry_period(Duration::from_millis(500))
        .jitter_seed(seed)
        .build()
        .unwrap();
    let shutdown = singleton.shutdown_handle();
    let task = tokio::spawn(pause.wrap(singleton.run(job(checker, network))));
    Replica {
        link,
        pause,
        shutdown,
        task,
    }
}

#[tokio::test(start_paused = true)]
async fn fault_free_handoffs_never_overlap_and_every_write_is_accepted() {
    let store = MemoryLeaseStore::new();
    let checker = Checker::default();
    let mut rng = Rng(8);
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| start(&store, &format!("r{i}"), &checker, i, None))
        .collect();
    for next_id in 3..63 {
        sleep(rng.millis(10_000)).await;
        // Shut one replica down gracefully (the leader or not) and start a fresh one.
        let victim = replicas.remove(rng.below(replicas.len() as u64) as usize);
        victim.shutdown.shutdown();
        let _ = victim.task.await.unwrap();
        replicas.push(start(
            &store,
            &format!("r{next_id}"),
            &checker,
            next_id,
            None,
        ));
    }
    sleep(Duration::from_secs(5)).await;

    checker.check_tokens();
    checker.check_no_overlap();
    let terms = checker.terms();
    assert!(terms.len() >= 10, "only {} terms", terms.len());
    let writes = checker.writes();
    assert!(
        writes.iter().all(|w| w.accepted),
        "a write was fenced in a fault-free run"
    );
    assert!(writes.len() > 1_000);
    for replica in replicas {
        replica.task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn under_pauses_and_store_faults_tokens_stay_safe() {
    let store = MemoryLeaseStore::new();
    let checker = Checker::default();
    let mut rng = Rng(42);
    let network = Arc::new(Mutex::new(Rng(7)));
    let replicas: Vec<Replica> = (0..3)
        .map(|i| {
            start(
                &store,
                &format!("r{i}"),
                &checker,
                100 + i,
                Some(network.clone()),
            )
        })
        .collect();
    for _ in 0..300 {
        let replica = &replicas[rng.below(3) as usize];
        match rng.below(6) {
            // A process pause, often longer than the ttl.
            0 | 1 => {
                replica.pause.pause();
                sleep(rng.millis(3 * TTL.as_millis() as u64)).await;
                replica.pause.resume();
            }
            // The replica's link to the store fails in one of several ways, for a while.
            2..=4 => {
                let fault = match rng.below(4) {
                    0 => Fault::Fail,
                    1 => Fault::Hang,
                    2 => Fault::LoseReplies,
                    _ => Fault::Delay(rng.millis(2 * TTL.as_millis() as u64)),
                };
                replica.link.set(fault);
                sleep(rng.millis(2 * TTL.as_millis() as u64)).await;
                replica.link.heal();
            }
            // Quiet time.
            _ => sleep(rng.millis(TTL.as_millis() as u64)).await,
        }
    }
    for replica in &replicas {
        replica.pause.resume();
        replica.link.heal();
    }
    sleep(TTL * 3).await;

    checker.check_tokens();
    let terms = checker.terms();
    let writes = checker.writes();
    let fenced = writes.iter().filter(|w| !w.accepted).count();
    assert!(terms.len() >= 20, "only {} terms", terms.len());
    // Faults did bite: some writes arrived after a newer holder's and were refused.
    assert!(fenced > 0, "no write was fenced: the faults did not bite");
    for replica in replicas {
        replica.task.abort();
    }
}
