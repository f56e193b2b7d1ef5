//! The Singleton runner under the faults of issue 8, on paused tokio time.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast_core::clock::ManualClock;
use steadfast_lease::faulty::{Fault, FaultyStore, Op};
use steadfast_lease::singleton::default_safety_margin;
use steadfast_lease::{
    FencingToken, LeaderState, LeaseGuard, LeaseStore, LeaseTerms, MemoryLeaseStore,
    ShutdownHandle, Singleton, Stopped,
};
use support::{Checker, Pause, settle, sleep};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(15);
const RENEW: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(2);

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A job that writes through the checker every `every` until shutdown or loss, checking
/// its guard right before each write.
fn writing_job(
    checker: &Checker,
    every: Duration,
) -> impl FnMut(LeaseGuard) -> Job + Send + 'static {
    let checker = checker.clone();
    move |guard: LeaseGuard| {
        let checker = checker.clone();
        Box::pin(async move {
            let _term = checker.begin(guard.holder(), guard.token());
            loop {
                tokio::select! {
                    biased;
                    _ = guard.shutdown_requested() => return,
                    _ = sleep(every) => {}
                }
                if !guard.is_valid() {
                    return;
                }
                let _ = checker.write(guard.holder(), guard.token());
            }
        })
    }
}

struct Replica {
    state: watch::Receiver<LeaderState>,
    shutdown: ShutdownHandle,
    task: JoinHandle<Result<(), Stopped>>,
}

impl Replica {
    /// A replica with the default settings, writing every 200 ms.
    fn start<S: LeaseStore + 'static>(
        store: S,
        holder: &str,
        checker: &Checker,
        seed: u64,
    ) -> Self {
        let singleton = Singleton::builder(store, "job", holder)
            .jitter_seed(seed)
            .build()
            .unwrap();
        Self::spawn(singleton, checker)
    }

    fn spawn<S: LeaseStore + 'static>(singleton: Singleton<S>, checker: &Checker) -> Self {
        let state = singleton.state();
        let shutdown = singleton.shutdown_handle();
        let task = tokio::spawn(singleton.run(writing_job(checker, Duration::from_millis(200))));
        Self {
            state,
            shutdown,
            task,
        }
    }

    fn is_leading(&self) -> bool {
        self.state.borrow().is_leading()
    }

    fn token(&self) -> Option<FencingToken> {
        self.state.borrow().token()
    }
}

#[tokio::test(start_paused = true)]
async fn leader_runs_the_job_and_renews_every_third_of_the_ttl() {
    let _t = steadfast_test_support::trace_init();
    let store = FaultyStore::new(MemoryLeaseStore::new());
    let checker = Checker::default();
    let a = Replica::start(store.clone(), "a", &checker, 1);
    settle().await;
    assert!(a.is_leading());
    assert_eq!(a.token(), Some(FencingToken::new(1)));

    sleep(Duration::from_secs(59)).await;
    // Renewals at 5, 10, ..., 55 s.
    assert_eq!(store.count(Op::Renew), 11);
    let renewals: Vec<_> = store
        .calls()
        .into_iter()
        .filter(|call| call.op == Op::Renew)
        .map(|call| call.at)
        .collect();
    for pair in renewals.windows(2) {
        assert_eq!(pair[1] - pair[0], RENEW);
    }
    assert!(a.is_leading());
    let holder = store.current("job").await.unwrap().unwrap();
    assert_eq!((holder.id(), holder.token()), ("a", FencingToken::new(1)));
    // The deadline published is the last renewal's send + ttl - margin.
    let LeaderState::Leading { deadline, .. } = *a.state.borrow() else {
        panic!("not leading")
    };
    assert_eq!(
        deadline,
        *renewals.last().unwrap() + TTL - default_safety_margin(TTL)
    );
    checker.check_tokens();
    checker.check_no_overlap();
    assert!(checker.writes().iter().all(|w| w.accepted));
    assert!(checker.writes().len() >= 290);
}

#[tokio::test(start_paused = true)]
async fn stalled_holder_is_fenced_off_and_its_guard_reports_the_loss_before_more_work() {
    let _t = steadfast_test_support::trace_init();
    let store = MemoryLeaseStore::new();
    let checker = Checker::default();
    let pause_a = Pause::default();
    let start = Instant::now();

    // What A did, as (time, event).
    let events: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
    let log = {
        let events = events.clone();
        move |event: String| events.lock().unwrap().push((start.elapsed(), event))
    };

    // Replica A: the job writes itself, and hands a guard to a writer task of the same
    // "process" that prepares each write for 500 ms (the pause lands in there).
    let a = Singleton::builder(store.clone(), "job", "a")
        .jitter_seed(1)
        .build()
        .unwrap();
    let a_state = a.state();
    let job_a = {
        let checker = checker.clone();
        let pause_a = pause_a.clone();
        let log = log.clone();
        move |guard: LeaseGuard| {
            let checker = checker.clone();
            let log = log.clone();
            let writer = {
                let guard = guard.clone();
                let checker = checker.clone();
                let log = log.clone();
                async move {
                    loop {
                        if !guard.is_valid() {
                            log(String::from("writer: guard reports the loss"));
                            break;
                        }
                        let token = guard.token();
                        sleep(Duration::from_millis(500)).await; // prepare the write
                        match checker.write("a", token) {
                            Ok(()) => log(format!("writer: accepted {token}")),
                            Err(fenced) => log(format!(
                                "writer: fenced {} < {} from {}",
                                fenced.presented(),
                                fenced.latest(),
                                fenced.latest_holder()
                            )),
                        }
                    }
                    guard.lost().await;
                    log(String::from("writer: lost() resolved"));
                }
            };
            tokio::spawn(pause_a.wrap(writer));
            async move {
                let _term = checker.begin(guard.holder(), guard.token());
                loop {
                    sleep(Duration::from_millis(700)).await;
                    if !guard.is_valid() {
                        log(String::from("job: guard reports the loss"));
                        return;
                    }
                    let _ = checker.write("a", guard.token());
                    log(String::from("job: wrote"));
                }
            }
        }
    };
    let a_task = tokio::spawn(pause_a.wrap(a.run(job_a)));
    settle().await;
    assert_eq!(a_state.borrow().token(), Some(FencingToken::new(1)));

    // Replica B contends.
    let b = Replica::start(store.clone(), "b", &checker, 2);

    // A's process pauses at 3.2 s, while its writer prepares a write (3.0 - 3.5 s).
    sleep(Duration::from_millis(3_200)).await;
    pause_a.pause();
    let paused_writes = checker.writes().len();
    // 30 s: A's lease (last sent at 0 s) expires at 15 s in the store; B takes over.
    sleep(Duration::from_secs(30)).await;
    assert!(b.is_leading());
    assert_eq!(b.token(), Some(FencingToken::new(2)));
    // A's runner is frozen, so its last message still says Leading, but the deadline in
    // it has passed.
    assert!(a_state.borrow().token().is_some());
    assert!(!a_state.borrow().is_leading());
    events
        .lock()
        .unwrap()
        .push((start.elapsed(), String::from("resume")));
    pause_a.resume();
    settle().await;

    let events = events.lock().unwrap().clone();
    let resumed = events.iter().position(|(_, e)| e == "resume").unwrap();
    let after: Vec<&str> = events[resumed + 1..]
        .iter()
        .map(|(_, e)| e.as_str())
        .collect();
    // The one write already in hand is refused by the resource, the guard reports the
    // loss at the next check, and nothing else happens; the job itself never ran again.
    assert_eq!(
        after,
        [
            "writer: fenced 1 < 2 from b",
            "writer: guard reports the loss",
            "writer: lost() resolved"
        ],
        "{events:#?}"
    );
    assert!(
        events[resumed + 1..]
            .iter()
            .all(|(at, _)| *at == events[resumed].0)
    );
    let a_writes_after: Vec<_> = checker.writes()[paused_writes..]
        .iter()
        .filter(|w| w.holder == "a")
        .cloned()
        .collect();
    assert_eq!(a_writes_after.len(), 1);
    assert!(!a_writes_after[0].accepted);
    // A campaigns again and sees B.
    sleep(RETRY).await;
    assert_eq!(
        a_state.borrow().leader().map(|l| l.id().to_owned()),
        Some("b".into())
    );
    assert!(b.is_leading());

    checker.check_tokens();
    a_task.abort();
    b.task.abort();
}

/// The holder's store stops answering (three ways) after the first renewal at 5 s.
async fn steps_down_by_its_own_deadline(fault: Fault) {
    let memory = MemoryLeaseStore::new();
    let store = FaultyStore::new(memory.clone());
    let start = Instant::now();
    let singleton = Singleton::builder(store.clone(), "job", "a")
        .jitter_seed(3)
        .build()
        .unwrap();
    let state = singleton.state();
    let (lost_tx, mut lost_rx) = tokio::sync::mpsc::unbounded_channel();
    let dropped: Arc<Mutex<Option<Instant>>> = Arc::default();
    let job = {
        let dropped = dropped.clone();
        move |guard: LeaseGuard| {
            // A task the job hands work to learns of the loss through a guard clone.
            let observer = guard.clone();
            let lost_tx = lost_tx.clone();
            tokio::spawn(async move {
                observer.lost().await;
                let _ = lost_tx.send((Instant::now(), observer.is_valid()));
            });
            let on_drop = DropFlag(dropped.clone());
            async move {
                let _on_drop = on_drop;
                std::future::pending::<()>().await;
            }
        }
    };
    let task = tokio::spawn(singleton.run(job));
    sleep(Duration::from_secs(7)).await;
    store.set(fault);
    let (lost_at, valid) = lost_rx.recv().await.unwrap();

    let last_sent = start + RENEW;
    let deadline = last_sent + TTL - default_safety_margin(TTL);
    assert_eq!(lost_at, deadline, "{fault:?}");
    assert!(!valid);
    assert_eq!(
        *dropped.lock().unwrap(),
        Some(deadline),
        "the job is cancelled at the deadline"
    );
    assert!(!state.borrow().is_leading());
    // The store still holds the lease for A: A stopped first.
    assert_eq!(
        memory
            .current("job")
            .await
            .unwrap()
            .map(|h| h.id().to_owned()),
        Some(String::from("a")),
        "{fault:?}"
    );
    // Renewals were retried until the deadline (or a reply awaited).
    assert!(store.count(Op::Renew) >= 2);

    // When the store is back, A campaigns and leads again.
    store.heal();
    sleep(TTL).await;
    assert!(state.borrow().is_leading(), "{fault:?}");
    task.abort();
}

struct DropFlag(Arc<Mutex<Option<Instant>>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

#[tokio::test(start_paused = true)]
async fn unreachable_store_holder_steps_down_by_its_own_deadline() {
    let _t = steadfast_test_support::trace_init();
    steps_down_by_its_own_deadline(Fault::Fail).await;
}

#[tokio::test(start_paused = true)]
async fn hanging_store_holder_steps_down_by_its_own_deadline() {
    let _t = steadfast_test_support::trace_init();
    steps_down_by_its_own_deadline(Fault::Hang).await;
}

#[tokio::test(start_paused = true)]
async fn lost_replies_holder_steps_down_by_the_deadline_of_the_last_answered_renewal() {
    let _t = steadfast_test_support::trace_init();
    // Renewals reach the store and extend the lease there, but A never hears back: its
    // deadline still counts from the last renewal it got an answer for.
    steps_down_by_its_own_deadline(Fault::LoseReplies).await;
}

#[tokio::test(start_paused = true)]
async fn slow_store_keeps_the_lease_when_answers_come_before_the_deadline() {
    let _t = steadfast_test_support::trace_init();
    let store = FaultyStore::new(MemoryLeaseStore::new());
    let checker = Checker::default();
    let a = Replica::start(store.clone(), "a", &checker, 4);
    settle().await;
    // Every answer takes 4 s: still within the 5 s attempt timeout.
    store.set(Fault::Delay(Duration::from_secs(4)));
    // 124.5 s: the renewal sent at 120 s was answered at 124 s.
    sleep(Duration::from_millis(124_500)).await;
    assert!(a.is_leading());
    assert_eq!(a.token(), Some(FencingToken::new(1)));
    // The deadline counts from when that renewal was sent, not from when its answer
    // came (etcd's Go client counts from the answer, which is optimistic).
    let sent = store
        .calls()
        .iter()
        .rev()
        .find(|c| c.op == Op::Renew)
        .unwrap()
        .at;
    assert_eq!(sent.elapsed(), Duration::from_millis(4_500));
    let LeaderState::Leading { deadline, .. } = *a.state.borrow() else {
        panic!("not leading")
    };
    assert_eq!(deadline, sent + TTL - default_safety_margin(TTL));
    // Answers slower than the 5 s attempt timeout are abandoned and re-sent; none comes
    // back in time, so A steps down at its deadline.
    store.set(Fault::Delay(Duration::from_secs(6)));
    sleep(Duration::from_secs(20)).await;
    assert!(!a.is_leading());
    checker.check_tokens();
    a.task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_conflict_on_renewal_ends_the_term_at_once() {
    let _t = steadfast_test_support::trace_init();
    let store = FaultyStore::new(MemoryLeaseStore::new());
    let checker = Checker::default();
    let start = Instant::now();
    let a = Replica::start(store.clone(), "a", &checker, 5);
    sleep(Duration::from_secs(7)).await;
    // Renewals find the lease taken (and so would acquisitions).
    store.set(Fault::Conflict);
    sleep(Duration::from_secs(3)).await;
    settle().await;
    // The renewal at 10 s found the lease taken: lost then, long before the deadline.
    assert!(!a.is_leading());
    let terms = checker.terms();
    assert_eq!(terms[0].end, Some(start + Duration::from_secs(10)));
    a.task.abort();
}

#[tokio::test(start_paused = true)]
async fn contenders_racing_for_an_empty_lease_elect_exactly_one() {
    let _t = steadfast_test_support::trace_init();
    let store = MemoryLeaseStore::new();
    let checker = Checker::default();
    let replicas: Vec<Replica> = (0..8)
        .map(|i| Replica::start(store.clone(), &format!("r{i}"), &checker, i))
        .collect();
    for _ in 0..60 {
        sleep(Duration::from_secs(1)).await;
        let leaders = replicas.iter().filter(|r| r.is_leading()).count();
        assert_eq!(leaders, 1);
    }
    let terms = checker.terms();
    assert_eq!(terms.len(), 1, "{terms:?}");
    let leader = &terms[0].holder;
    // Every follower has learned who leads.
    for replica in &replicas {
        if !replica.is_leading() {
            assert_eq!(
                replica.state.borrow().leader().map(|l| l.id()),
                Some(leader.as_str())
            );
        }
    }
    checker.check_tokens();
    checker.check_no_overlap();
    for replica in replicas {
        replica.task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn contenders_racing_for_an_expired_lease_elect_exactly_one() {
    let _t = steadfast_test_support::trace_init();
    let store = MemoryLeaseStore::new();
    let checker = Checker::default();
    let start = Instant::now();
    // A holder that acquired and died.
    let ghost = store
        .try_acquire("job", "ghost", LeaseTerms::new(TTL))
        .await
        .unwrap()
        .unwrap();
    let replicas: Vec<Replica> = (0..8)
        .map(|i| Replica::start(store.clone(), &format!("r{i}"), &checker, 10 + i))
        .collect();
    sleep(TTL - Duration::from_millis(1)).await;
    assert!(replicas.iter().all(|r| !r.is_leading()));
    sleep(RETRY + Duration::from_millis(10)).await;
    let leaders: Vec<_> = replicas.iter().filter(|r| r.is_leading()).collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(
        leaders[0].token(),
        Some(FencingToken::new(ghost.token().get() + 1))
    );
    let terms = checker.terms();
    assert_eq!(terms.len(), 1);
    // Attempts are at most one retry period apart (tokio timers round up to 1 ms).
    assert!(terms[0].start >= start + TTL && terms[0].start <= start + TTL + RETRY);
    for replica in replicas {
        replica.task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn simultaneous_acquisitions_of_an_expired_lease_have_one_winner() {
    // All attempts reach the store at the same tokio instant.
    let memory = MemoryLeaseStore::new();
    let store = FaultyStore::new(memory.clone());
    memory
        .try_acquire("job", "ghost", LeaseTerms::new(TTL))
        .await
        .unwrap()
        .unwrap();
    store.set(Fault::Delay(TTL));
    let attempts: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .try_acquire("job", &format!("c{i}"), LeaseTerms::new(TTL))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        if let Some(lease) = attempt.await.unwrap() {
            winners.push(lease);
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].token(), FencingToken::new(2));
}

#[tokio::test(start_paused = true)]
async fn graceful_handoff_reaches_the_next_holder_within_one_retry_period() {
    let _t = steadfast_test_support::trace_init();
    let store = MemoryLeaseStore::new();
    let checker = Checker::default();
    let a = Replica::start(store.clone(), "a", &checker, 20);
    settle().await;
    let b = Replica::start(store.clone(), "b", &checker, 21);
    sleep(Duration::from_secs(30)).await;
    assert!(a.is_leading() && !b.is_leading());

    let released_at = Instant::now();
    a.shutdown.shutdown();
    // A's job finishes (it was waiting for the next write tick or the shutdown signal),
    // the runner releases, and run returns the job's output.
    assert_eq!(a.task.await.unwrap(), Ok(()));
    assert_eq!(*a.state.borrow(), LeaderState::Stopped);
    let mut state = b.state.clone();
    state.wait_for(LeaderState::is_leading).await.unwrap();
    let handoff = released_at.elapsed();
    assert!(handoff <= RETRY, "handoff took {handoff:?}");
    assert_eq!(b.token(), Some(FencingToken::new(2)));

    checker.check_tokens();
    checker.check_no_overlap();
    assert!(checker.writes().iter().all(|w| w.accepted));
    b.task.abort();
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_job_finish_its_work_while_renewing() {
    let _t = steadfast_test_support::trace_init();
    let store = FaultyStore::new(MemoryLeaseStore::new());
    let singleton = Singleton::builder(store.clone(), "job", "a")
        .build()
        .unwrap();
    let shutdown = singleton.shutdown_handle();
    let task = tokio::spawn(singleton.run(|guard: LeaseGuard| async move {
        guard.shutdown_requested().await;
        assert!(guard.is_shutting_down() && guard.is_valid());
        // Finishing takes two ttls; the runner keeps the lease meanwhile.
        sleep(TTL * 2).await;
        assert!(guard.is_valid());
        guard.token()
    }));
    sleep(Duration::from_secs(1)).await;
    shutdown.shutdown();
    assert!(shutdown.is_shutdown());
    let token = task.await.unwrap().unwrap();
    assert_eq!(token, FencingToken::new(1));
    assert!(store.count(Op::Renew) >= 5);
    assert_eq!(store.count(Op::Release), 1);
    assert!(store.current("job").await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_campaigning_returns_stopped() {
    let store = MemoryLeaseStore::new();
    store
        .try_acquire("job", "other", LeaseTerms::new(Duration::from_secs(3_600)))
        .await
        .unwrap()
        .unwrap();
    let singleton = Singleton::builder(store.clone(), "job", "a")
        .build()
        .unwrap();
    let state = singleton.state();
    let shutdown = singleton.shutdown_handle();
    let task = tokio::spawn(singleton.run(|_guard: LeaseGuard| async {}));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        state.borrow().leader().map(|l| l.id().to_owned()),
        Some("other".into())
    );
    shutdown.shutdown();
    assert_eq!(task.await.unwrap(), Err(Stopped::default()));
    assert_eq!(*state.borrow(), LeaderState::Stopped);

    // run_until stops on its own signal too.
    let singleton = Singleton::builder(store, "job", "b").build().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(singleton.run_until(
        async move {
            let _ = rx.await;
        },
        |_guard: LeaseGuard| async {},
    ));
    sleep(Duration::from_secs(5)).await;
    tx.send(()).unwrap();
    assert_eq!(task.await.unwrap(), Err(Stopped::default()));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_run_future_cancels_the_job_and_signals_the_guards() {
    let store = MemoryLeaseStore::new();
    let singleton = Singleton::builder(store.clone(), "job", "a")
        .build()
        .unwrap();
    let state = singleton.state();
    let (guard_tx, guard_rx) = tokio::sync::oneshot::channel();
    let mut guard_tx = Some(guard_tx);
    let task = tokio::spawn(singleton.run(move |guard: LeaseGuard| {
        let _ = guard_tx.take().unwrap().send(guard);
        std::future::pending::<()>()
    }));
    let guard = guard_rx.await.unwrap();
    assert!(guard.is_valid());
    task.abort();
    let _ = task.await;
    // The runner is gone: nobody renews, so the guard is no longer valid.
    guard.lost().await;
    assert!(!guard.is_valid());
    assert_eq!(*state.borrow(), LeaderState::Stopped);
    // The lease was not released: it expires by its ttl.
    assert!(store.current("job").await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn takeover_delay_holds_contenders_off_after_an_expiry_but_not_after_a_release() {
    let _t = steadfast_test_support::trace_init();
    let memory = MemoryLeaseStore::new();
    let checker = Checker::default();
    let start = Instant::now();
    let delay = Duration::from_secs(10);
    // A's own link to the store breaks at 7 s; B's and C's do not.
    let a_link = FaultyStore::new(memory.clone());
    let a = Singleton::builder(a_link.clone(), "job", "a")
        .takeover_delay(delay)
        .jitter_seed(30)
        .build()
        .unwrap();
    let a_state = a.state();
    let a_task = tokio::spawn(a.run(writing_job(&checker, Duration::from_millis(200))));
    settle().await;
    let b = Singleton::builder(memory.clone(), "job", "b")
        .takeover_delay(delay)
        .jitter_seed(31)
        .build()
        .unwrap();
    let b = Replica::spawn(b, &checker);
    sleep(Duration::from_secs(7)).await;
    a_link.set(Fault::Hang);
    // A's last renewal reached the store at 5 s: expiry at 20 s, takeover from 30 s.
    let mut b_state = b.state.clone();
    b_state.wait_for(LeaderState::is_leading).await.unwrap();
    let took_over = start.elapsed();
    assert!(
        took_over >= Duration::from_secs(30) && took_over <= Duration::from_secs(30) + RETRY,
        "{took_over:?}"
    );
    assert!(!a_state.borrow().is_leading());

    // B's release is taken at once, though B's terms carry the delay too.
    let c = Replica::start(memory.clone(), "c", &checker, 32);
    sleep(Duration::from_secs(10)).await;
    let released_at = Instant::now();
    b.shutdown.shutdown();
    let mut c_state = c.state.clone();
    c_state.wait_for(LeaderState::is_leading).await.unwrap();
    assert!(released_at.elapsed() <= RETRY);
    checker.check_tokens();
    a_task.abort();
    c.task.abort();
}

#[tokio::test(start_paused = true)]
async fn wall_clock_jumps_do_not_change_lease_validity() {
    let _t = steadfast_test_support::trace_init();
    let wall = ManualClock::from_epoch(Duration::from_secs(1_700_000_000));
    let memory = MemoryLeaseStore::with_wall_clock(wall.clone());
    let a_link = FaultyStore::new(memory.clone());
    let checker = Checker::default();
    let start = Instant::now();
    let a = Replica::start(a_link.clone(), "a", &checker, 40);
    settle().await;
    let b = Replica::start(memory.clone(), "b", &checker, 41);

    // NTP steps both ways, by much more than the ttl, while A leads.
    for step in 0..20 {
        sleep(Duration::from_secs(3)).await;
        if step % 2 == 0 {
            wall.advance(Duration::from_secs(3_600));
        } else {
            wall.rewind(Duration::from_secs(7_200));
        }
        assert!(a.is_leading() && !b.is_leading(), "step {step}");
    }
    // The wall clock is only read for display.
    let holder = memory.current("job").await.unwrap().unwrap();
    assert_eq!(
        holder.acquired_at(),
        Some(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );

    // A's link breaks at 61 s (after the renewal at 60 s); the lease expires exactly one
    // ttl after that renewal on the monotonic clock, jumps or not.
    sleep(Duration::from_secs(1)).await;
    a_link.set(Fault::Hang);
    wall.advance(Duration::from_secs(86_400));
    sleep(TTL - Duration::from_secs(1) - Duration::from_millis(1)).await;
    assert!(memory.current("job").await.unwrap().is_some());
    wall.rewind(Duration::from_secs(2 * 86_400));
    sleep(Duration::from_millis(1)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(75));
    assert!(memory.current("job").await.unwrap().is_none());
    let mut b_state = b.state.clone();
    b_state.wait_for(LeaderState::is_leading).await.unwrap();
    checker.check_tokens();
    checker.check_no_overlap();
    a.task.abort();
    b.task.abort();
}

#[test]
fn the_run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let singleton = Singleton::builder(MemoryLeaseStore::new(), "job", "a")
        .build()
        .unwrap();
    let run = singleton.run(|guard: LeaseGuard| async move {
        guard.lost().await;
        guard.shutdown_requested().await;
    });
    assert_send(&run);
    let faulty = Singleton::builder(FaultyStore::new(MemoryLeaseStore::new()), "job", "a")
        .build()
        .unwrap();
    assert_send(&faulty.run(|_guard: LeaseGuard| async {}));
}
