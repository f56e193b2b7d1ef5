//! [`FaultyStore`]: a [`LeaseStore`] wrapper that injects faults, for tests.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{LeaseError, LeaseLost, StoreError};
use crate::lease::{Lease, LeaseHolder, LeaseTerms};
use crate::store::LeaseStore;

/// What a [`FaultyStore`] does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Forward the call (no fault).
    #[default]
    None,
    /// Fail at once with a [`StoreError`], without reaching the store (connection
    /// refused).
    Fail,
    /// Never answer, without reaching the store (a partition, a stopped server). The call
    /// stays pending until it is dropped.
    Hang,
    /// Wait this long, then forward the call (a slow network or server).
    Delay(Duration),
    /// Forward the call, so it **takes effect**, then never answer (the reply was lost).
    LoseReplies,
    /// Answer as if another holder had the lease: acquisitions find it held, renewals and
    /// releases fail with [`LeaseError::Lost`]. `current` is forwarded.
    Conflict,
}

/// A store operation, to aim a [`Fault`] at or to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`LeaseStore::try_acquire`].
    Acquire,
    /// [`LeaseStore::renew`].
    Renew,
    /// [`LeaseStore::release`].
    Release,
    /// [`LeaseStore::current`].
    Current,
}

impl Op {
    const ALL: [Self; 4] = [Self::Acquire, Self::Renew, Self::Release, Self::Current];

    const fn index(self) -> usize {
        self as usize
    }
}

/// One call seen by a [`FaultyStore`]: which operation, when it started (tokio time), and
/// the fault applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The operation.
    pub op: Op,
    /// When the call was first polled.
    pub at: Instant,
    /// The fault in force at that moment.
    pub fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    faults: [Fault; 4],
    log: Vec<Call>,
}

/// Wraps a [`LeaseStore`] and injects [`Fault`]s: make it unreachable, hang, slow, lose
/// replies or report conflicts, per operation, and see every call it got.
///
/// The fault is chosen when a call is first polled, so a test can change it between
/// calls. Available with the `test-util` feature.
///
/// # Clone
///
/// Clones share the faults and the call log (and the inner store if its clones do).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use steadfast_lease::faulty::{Fault, FaultyStore, Op};
/// use steadfast_lease::{LeaseStore, LeaseTerms, MemoryLeaseStore};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let store = FaultyStore::new(MemoryLeaseStore::new());
/// let terms = LeaseTerms::new(Duration::from_secs(10));
/// let lease = store.try_acquire("job", "a", terms).await.unwrap().unwrap();
///
/// store.set(Fault::Fail);
/// assert!(!store.renew(&lease).await.unwrap_err().is_lost()); // unknown, not lost
/// store.set_for(Op::Renew, Fault::Conflict);
/// assert!(store.renew(&lease).await.unwrap_err().is_lost());
/// store.heal();
/// store.renew(&lease).await.unwrap();
/// assert_eq!(store.count(Op::Renew), 3);
/// # }
/// ```
pub struct FaultyStore<S> {
    inner: S,
    state: Arc<Mutex<State>>,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`, with no fault.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `fault` to every operation.
    pub fn set(&self, fault: Fault) {
        self.state().faults = [fault; 4];
    }

    /// Applies `fault` to `op` only.
    pub fn set_for(&self, op: Op, fault: Fault) {
        self.state().faults[op.index()] = fault;
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.set(Fault::None);
    }

    /// The fault in force for `op`.
    pub fn fault(&self, op: Op) -> Fault {
        self.state().faults[op.index()]
    }

    /// How many `op` calls the store got, faulty or not.
    pub fn count(&self, op: Op) -> usize {
        self.state().log.iter().filter(|call| call.op == op).count()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().log.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Records a call to `op` and returns the fault to apply.
    fn begin(&self, op: Op) -> Fault {
        let mut state = self.state();
        let fault = state.faults[op.index()];
        state.log.push(Call {
            op,
            at: Instant::now(),
            fault,
        });
        fault
    }
}

fn unreachable_error() -> StoreError {
    StoreError::new("injected fault: store unreachable")
}

/// Runs the call `forward` makes under `fault`; `conflict` is the answer to
/// [`Fault::Conflict`]. The inner store is not called at all for `Fail`, `Hang` and
/// `Conflict`.
async fn apply<T, E: From<StoreError>, F: Future<Output = Result<T, E>>>(
    fault: Fault,
    forward: impl FnOnce() -> F,
    conflict: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    match fault {
        Fault::None => forward().await,
        Fault::Fail => Err(unreachable_error().into()),
        Fault::Hang => std::future::pending().await,
        Fault::Delay(by) => {
            tokio::time::sleep(by).await;
            forward().await
        }
        Fault::LoseReplies => {
            let _ = forward().await;
            std::future::pending().await
        }
        Fault::Conflict => conflict(),
    }
}

impl<S: LeaseStore> LeaseStore for FaultyStore<S> {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        let fault = self.begin(Op::Acquire);
        apply(
            fault,
            || self.inner.try_acquire(name, holder, terms),
            || Ok(None),
        )
        .await
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let fault = self.begin(Op::Renew);
        apply(
            fault,
            || self.inner.renew(lease),
            || Err(LeaseLost::new(lease.name(), lease.token()).into()),
        )
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        let fault = self.begin(Op::Release);
        apply(
            fault,
            || self.inner.release(lease),
            || Err(LeaseLost::new(lease.name(), lease.token()).into()),
        )
        .await
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let fault = match self.begin(Op::Current) {
            Fault::Conflict => Fault::None,
            other => other,
        };
        apply(fault, || self.inner.current(name), || Ok(None)).await
    }
}

impl<S: Clone> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        let faults: Vec<(Op, Fault)> = Op::ALL
            .iter()
            .map(|op| (*op, state.faults[op.index()]))
            .collect();
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("faults", &faults)
            .field("calls", &state.log.len())
            .finish()
    }
}
