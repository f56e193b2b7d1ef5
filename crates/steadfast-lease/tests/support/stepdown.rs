//! A holder that loses its store: the singleton runner, and the check that it steps down
//! by its own deadline, shared by the Redis (`real_faults.rs`) and etcd (`etcd_faults.rs`)
//! fault tests.

use std::sync::Arc;
use std::time::Duration;

use steadfast_lease::singleton::default_safety_margin;
use steadfast_lease::{FenceGate, Fenced, LeaseGuard, LeaseStore, Singleton};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::recording::Recording;

/// The lease's ttl in these tests.
pub const TTL: Duration = Duration::from_secs(1);
/// The campaign's retry period.
pub const RETRY: Duration = Duration::from_millis(100);
/// Scheduling slack on top of the deadline (a busy 2-core machine).
pub const SLACK: Duration = Duration::from_millis(150);

/// Sends the instant it is dropped: when the runner cancels the job.
struct OnDrop(mpsc::UnboundedSender<Instant>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Instant::now());
    }
}

/// A running singleton: each term's guard with the gate's verdict on its first write, and
/// the instants its job was dropped.
pub struct Leader {
    pub terms: mpsc::UnboundedReceiver<(LeaseGuard, Result<(), Fenced>)>,
    pub dropped: mpsc::UnboundedReceiver<Instant>,
    pub task: JoinHandle<()>,
}

/// Runs a singleton (holder `a`) whose job writes through `gate` with its token, reports
/// each term's guard with the gate's verdict, and reports when it is dropped.
pub fn lead<S>(store: Recording<S>, gate: Arc<FenceGate>) -> Leader
where
    S: LeaseStore + Send + Sync + 'static,
{
    let singleton = Singleton::builder(store, "job", "a")
        .ttl(TTL)
        .retry_period(RETRY)
        .build()
        .unwrap();
    let (term_tx, terms) = mpsc::unbounded_channel();
    let (drop_tx, dropped) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let _ = singleton
            .run(move |guard: LeaseGuard| {
                let (term_tx, gate) = (term_tx.clone(), gate.clone());
                let on_drop = OnDrop(drop_tx.clone());
                async move {
                    let _on_drop = on_drop;
                    let admitted = gate.admit("resource", guard.holder(), guard.token());
                    term_tx.send((guard, admitted)).unwrap();
                    std::future::pending::<()>().await;
                }
            })
            .await;
    });
    Leader {
        terms,
        dropped,
        task,
    }
}

/// The next term's guard and the gate's verdict on its first write, within `within`.
pub async fn next_term(leader: &mut Leader, within: Duration) -> (LeaseGuard, Result<(), Fenced>) {
    timeout(within, leader.terms.recv())
        .await
        .expect("leads within a few seconds")
        .unwrap()
}

/// After the store became unreachable at `cut`: checks that the guard reports the loss,
/// and the job is dropped, no later than the last successful send + ttl − margin (+ slack),
/// with no answer from the store. Returns the step-down time after `cut`.
pub async fn assert_steps_down_by_deadline<S>(
    leader: &mut Leader,
    store: &Recording<S>,
    guard: &LeaseGuard,
    cut: Instant,
    what: &str,
) -> Duration {
    timeout(TTL * 3, guard.lost())
        .await
        .expect("the guard reports the loss");
    let lost_at = Instant::now();
    let dropped_at = timeout(Duration::from_secs(1), leader.dropped.recv())
        .await
        .expect("the job is dropped")
        .unwrap();
    let last_send = store.last_ok_send();
    let bound = last_send + TTL - default_safety_margin(TTL);
    assert!(
        last_send <= cut,
        "{what}: a renewal succeeded after the cut"
    );
    assert!(
        lost_at <= bound + SLACK,
        "{what}: loss reported {:?} after the bound",
        lost_at - bound
    );
    assert!(
        dropped_at <= bound + SLACK,
        "{what}: job dropped {:?} after the bound",
        dropped_at - bound
    );
    assert!(!guard.is_valid());
    let step_down = lost_at - cut;
    eprintln!(
        "{what}: stepped down {step_down:?} after the cut; last successful send {:?} before \
         the cut; the bound (ttl {TTL:?} − margin {:?}) was {:?} after the cut; job dropped \
         {:?} after the cut",
        cut - last_send,
        default_safety_margin(TTL),
        bound.saturating_duration_since(cut),
        dropped_at.saturating_duration_since(cut),
    );
    step_down
}
