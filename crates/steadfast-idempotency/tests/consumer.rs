//! `Consumer::process_once`: effectively-once processing of redelivered messages, on paused
//! tokio time (and, for one test, on 50 OS threads).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use steadfast_idempotency::consumer::{
    Consumer, NotRecorded, ProcessError, Processed, message_fingerprint,
};
use steadfast_idempotency::{IdempotencyStore, MemoryStore, Record};
use support::TestStore;

type Outcome = Result<Processed<String>, ProcessError<String>>;

/// Counts the runs of a message's work.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Work that counts its run, takes `delay` (tokio time), and succeeds with
    /// `"run {n}"`.
    fn work(
        &self,
        delay: Duration,
    ) -> impl FnOnce() -> std::pin::Pin<
        Box<dyn Future<Output = Result<String, String>> + Send + 'static>,
    > + Send
    + 'static {
        let runs = self.0.clone();
        move || {
            Box::pin(async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(format!("run {n}"))
            })
        }
    }

    /// Work that counts its run and fails with `"failure {n}"`.
    fn failing(
        &self,
    ) -> impl FnOnce() -> std::future::Ready<Result<String, String>> + Send + 'static {
        let runs = self.0.clone();
        move || {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(Err(format!("failure {n}")))
        }
    }
}

fn consumer() -> Consumer<MemoryStore> {
    Consumer::builder(MemoryStore::new(), "orders")
        .build()
        .unwrap()
}

fn ran(value: &str) -> Processed<String> {
    Processed::Ran(value.to_owned())
}

fn duplicate(value: &str) -> Processed<String> {
    Processed::Duplicate(value.to_owned())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_duplicate_delivery_gets_the_stored_result_and_the_work_runs_once() {
    let consumer = consumer();
    let runs = Runs::default();

    let first: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(first.unwrap(), ran("run 1"));
    for _ in 0..3 {
        let again: Outcome = consumer
            .process_once("msg-1", "payload", runs.work(Duration::ZERO))
            .await;
        assert_eq!(again.unwrap(), duplicate("run 1"));
    }
    assert_eq!(runs.get(), 1);

    // Another message runs its own work.
    let other: Outcome = consumer
        .process_once("msg-2", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(other.unwrap(), ran("run 2"));

    let stats = consumer.stats();
    assert_eq!(
        (stats.executions(), stats.stored(), stats.replays()),
        (2, 2, 3)
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fifty_concurrent_deliveries_run_the_work_once() {
    let consumer = Consumer::builder(MemoryStore::new(), "orders")
        .in_flight_retry_after(Duration::from_secs(5))
        .build()
        .unwrap();
    let runs = Runs::default();

    // The first delivery to claim holds the claim for 1 s; the others arrive meanwhile.
    let deliveries: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(consumer.process_once(
                "msg-1",
                "payload",
                runs.work(Duration::from_secs(1)),
            ))
        })
        .collect();
    let mut outcomes = Vec::new();
    for delivery in deliveries {
        outcomes.push(delivery.await.unwrap());
    }
    assert_eq!(runs.get(), 1);
    let ran_once: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(p) if p.ran()))
        .collect();
    assert_eq!(ran_once.len(), 1);
    let in_flight = outcomes
        .iter()
        .filter(|o| matches!(o, Err(e) if e.retry_after() == Some(Duration::from_secs(5))))
        .count();
    assert_eq!(in_flight, 49);

    // Redelivered after the hint, every one of them gets the stored result.
    for _ in 0..49 {
        let again: Outcome = consumer
            .process_once("msg-1", "payload", runs.work(Duration::ZERO))
            .await;
        assert_eq!(again.unwrap(), duplicate("run 1"));
    }
    assert_eq!(runs.get(), 1);
    assert_eq!(consumer.stats().conflicts(), 49);
}

#[test]
fn fifty_deliveries_on_fifty_threads_run_the_work_once() {
    let consumer = consumer();
    let runs = Runs::default();
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (consumer, runs, barrier) = (consumer.clone(), runs.clone(), barrier.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                barrier.wait();
                let outcome: Outcome = runtime.block_on(consumer.process_once(
                    "msg-1",
                    "payload",
                    runs.work(Duration::from_millis(1)),
                ));
                outcome
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    // However the threads interleave, exactly one runs the work; the others see it in
    // flight or get its result.
    assert_eq!(runs.get(), 1);
    let mut ran_count = 0;
    for outcome in outcomes {
        match outcome {
            Ok(Processed::Ran(value)) => {
                ran_count += 1;
                assert_eq!(value, "run 1");
            }
            Ok(Processed::Duplicate(value)) => assert_eq!(value, "run 1"),
            Err(ProcessError::InFlight { .. }) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(ran_count, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_run_releases_the_claim_so_a_redelivery_runs_again() {
    let consumer = consumer();
    let runs = Runs::default();

    let failed: Outcome = consumer
        .process_once("msg-1", "payload", runs.failing())
        .await;
    assert!(matches!(failed, Err(ProcessError::Failed(ref e)) if e == "failure 1"));

    let retried: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(retried.unwrap(), ran("run 2"));
    assert_eq!(runs.get(), 2);
    assert_eq!(consumer.stats().released(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_store_failures_a_redelivery_gets_the_stored_failure() {
    let consumer = Consumer::builder(MemoryStore::new(), "orders")
        .store_failures(true)
        .build()
        .unwrap();
    let runs = Runs::default();

    let failed: Outcome = consumer
        .process_once("msg-1", "payload", runs.failing())
        .await;
    assert!(matches!(failed, Err(ProcessError::Failed(ref e)) if e == "failure 1"));

    let again: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    match again {
        Err(ProcessError::FailedBefore(failure)) => assert_eq!(failure.message(), "failure 1"),
        other => panic!("expected the stored failure, got {other:?}"),
    }
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_future_mid_run_releases_the_claim() {
    let consumer = consumer();
    let runs = Runs::default();

    // Give up on a run after 1 s (a shutdown, a timeout around the handler).
    let cut = tokio::time::timeout(
        Duration::from_secs(1),
        consumer.process_once("msg-1", "payload", runs.work(Duration::from_secs(3600))),
    )
    .await;
    assert!(cut.is_err(), "the run was cut short");

    // The key is free at once, long before the 60 s lease would have expired.
    let again: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(again.unwrap(), ran("run 2"));
    assert_eq!(consumer.stats().abandoned(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panicking_run_releases_the_claim() {
    let consumer = consumer();
    async fn explode() -> Result<String, String> {
        panic!("the handler panicked (expected by this test)")
    }
    let panicked = tokio::spawn(consumer.process_once("msg-1", "payload", explode)).await;
    assert!(panicked.unwrap_err().is_panic());

    let runs = Runs::default();
    let again: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(again.unwrap(), ran("run 1"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_future_releases_through_a_network_store() {
    // Boxed, pending store futures, and the trait's default `abandon` (a spawned release).
    let consumer = Consumer::builder(TestStore::slow(Duration::from_millis(10)), "orders")
        .build()
        .unwrap();
    let runs = Runs::default();
    let cut = tokio::time::timeout(
        Duration::from_secs(1),
        consumer.process_once("msg-1", "payload", runs.work(Duration::from_secs(3600))),
    )
    .await;
    assert!(cut.is_err());
    assert_eq!(runs.get(), 1);
    // The release runs on a spawned task and takes one store round trip (10 ms); a
    // redelivery comes later than that, well before the 60 s lease would expire.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let again: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(again.unwrap(), ran("run 2"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_expired_lease_is_reclaimed_and_the_stale_result_refused() {
    let consumer = Consumer::builder(MemoryStore::new(), "orders")
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let runs = Runs::default();

    // The first worker hangs for 5 s, far past its 1 s lease.
    let stale =
        tokio::spawn(consumer.process_once("msg-1", "payload", runs.work(Duration::from_secs(5))));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert!(matches!(early, Err(ProcessError::InFlight { .. })));

    // After the lease, a redelivery claims the message and runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(fresh.unwrap(), ran("run 2"));

    // The stale worker finishes: its result is refused by the fencing token.
    match stale.await.unwrap() {
        Ok(Processed::Unrecorded {
            value,
            reason: NotRecorded::Superseded,
        }) => assert_eq!(value, "run 1"),
        other => panic!("expected a superseded result, got {other:?}"),
    }
    // The newer result stays.
    let later: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(later.unwrap(), duplicate("run 2"));
    assert_eq!(consumer.stats().superseded(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_key_reused_with_another_payload_is_a_mismatch() {
    let consumer = consumer();
    let runs = Runs::default();
    let first: Outcome = consumer
        .process_once("msg-1", "charge 10", runs.work(Duration::ZERO))
        .await;
    assert!(first.is_ok());
    let reused: Outcome = consumer
        .process_once("msg-1", "charge 99", runs.work(Duration::ZERO))
        .await;
    assert!(matches!(reused, Err(ProcessError::Mismatch)));

    // A fingerprint of one's own, computed the same way, matches.
    let same: Outcome = consumer
        .process_fingerprinted(
            "msg-1",
            message_fingerprint("charge 10"),
            runs.work(Duration::ZERO),
        )
        .await;
    assert_eq!(same.unwrap(), duplicate("run 1"));
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn consumers_with_different_names_do_not_share_records() {
    let store = MemoryStore::new();
    let orders = Consumer::builder(store.clone(), "orders").build().unwrap();
    let orders_replica = Consumer::builder(store.clone(), "orders").build().unwrap();
    let invoices = Consumer::builder(store.clone(), "invoices")
        .build()
        .unwrap();
    let runs = Runs::default();

    let a: Outcome = orders
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(a.unwrap(), ran("run 1"));
    let b: Outcome = invoices
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(b.unwrap(), ran("run 2"));
    let c: Outcome = orders_replica
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(c.unwrap(), duplicate("run 1"));
    assert_ne!(orders.store_key("msg-1"), invoices.store_key("msg-1"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stored_result_the_codec_refuses_is_a_decode_error() {
    let store = MemoryStore::new();
    let raw = Consumer::builder(store.clone(), "orders").build().unwrap();
    let text = Consumer::builder(store, "orders").build().unwrap();
    let stored: Result<Processed<Bytes>, ProcessError<String>> = raw
        .process_once("msg-1", "payload", || async {
            Ok(Bytes::from_static(&[0xff, 0xfe]))
        })
        .await;
    assert!(stored.is_ok());

    let runs = Runs::default();
    let read: Outcome = text
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert!(matches!(read, Err(ProcessError::Decode(_))));
    assert_eq!(runs.get(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_store_failure_before_the_run_does_not_run_the_work() {
    let store = TestStore::default();
    store.set_failing(true, false);
    let consumer = Consumer::builder(store, "orders").build().unwrap();
    let runs = Runs::default();
    let failed: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert!(matches!(failed, Err(ProcessError::Store(_))));
    assert_eq!(runs.get(), 0);
    assert_eq!(consumer.stats().store_errors(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_result_the_store_cannot_keep_is_returned_unrecorded() {
    let store = TestStore::default();
    let consumer = Consumer::builder(store.clone(), "orders")
        .lease(Duration::from_secs(10))
        .build()
        .unwrap();
    let runs = Runs::default();
    store.set_failing(false, true);
    let outcome: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    match outcome {
        Ok(Processed::Unrecorded {
            value,
            reason: NotRecorded::Store(_),
        }) => assert_eq!(value, "run 1"),
        other => panic!("expected an unrecorded result, got {other:?}"),
    }
    // Completion and release both failed: the claim lasts until its lease expires.
    assert_eq!(consumer.stats().store_errors(), 2);
    store.set_failing(false, false);
    let key = consumer.store_key("msg-1");
    assert!(matches!(
        store.get(&key).await.unwrap(),
        Some(Record::InFlight { .. })
    ));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let again: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(again.unwrap(), ran("run 2"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn bad_configuration_and_empty_keys_are_refused() {
    let zero_lease = Consumer::builder(MemoryStore::new(), "orders")
        .lease(Duration::ZERO)
        .build();
    assert!(zero_lease.is_err());
    let zero_ttl = Consumer::builder(MemoryStore::new(), "orders")
        .ttl(Duration::ZERO)
        .build();
    assert!(zero_ttl.is_err());
    let unnamed = Consumer::builder(MemoryStore::new(), "").build();
    assert_eq!(
        unnamed.unwrap_err().reason(),
        "the consumer's name must not be empty"
    );

    let consumer = consumer();
    let runs = Runs::default();
    let empty: Outcome = consumer
        .process_once("", "payload", runs.work(Duration::ZERO))
        .await;
    assert!(matches!(empty, Err(ProcessError::InvalidKey)));
    assert_eq!(runs.get(), 0);
    assert!(consumer.store().is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn results_expire_after_the_ttl() {
    let consumer = Consumer::builder(MemoryStore::new(), "orders")
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let runs = Runs::default();
    let first: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(first.unwrap(), ran("run 1"));
    tokio::time::sleep(Duration::from_secs(59)).await;
    let within: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(within.unwrap(), duplicate("run 1"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Outcome = consumer
        .process_once("msg-1", "payload", runs.work(Duration::ZERO))
        .await;
    assert_eq!(after.unwrap(), ran("run 2"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn work_that_is_not_send_runs_on_the_current_task() {
    // An `Rc` in the work (a `LocalSet` consumer): the future is simply not `Send`.
    let consumer = consumer();
    let local = std::rc::Rc::new("local state".to_owned());
    let outcome: Outcome = consumer
        .process_once(
            "msg-1",
            "payload",
            move || async move { Ok((*local).clone()) },
        )
        .await;
    assert_eq!(outcome.unwrap(), ran("local state"));
}
