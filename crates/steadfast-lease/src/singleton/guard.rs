//! [`LeaseGuard`]: what a job gets while its singleton holds the lease.

use std::fmt;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::lease::{FencingToken, Lease};
use crate::util::{Either, first};

/// What the runner tells the guards of one term.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signal {
    /// The local deadline: last successful send + ttl − margin.
    pub(crate) deadline: Instant,
    /// The term is over: lost (conflict or deadline) or released after the job.
    pub(crate) over: bool,
    /// Shutdown was requested: the job should finish.
    pub(crate) shutdown: bool,
}

/// The lease a [`Singleton`](crate::Singleton) job runs under: its
/// [`token`](Self::token) to pass to the resource, and the signals to stop on.
///
/// - [`is_valid`](Self::is_valid) answers from the local deadline at the moment it is
///   called, so a job that checks it right before a side effect does not act on a lease it
///   could have lost while it was paused (even if the runner itself has not run since).
/// - [`lost`](Self::lost) resolves when the term is over: a renewal found the lease taken
///   (compare-and-set failed), or the deadline passed with no successful renewal (the store
///   is unreachable or slow), or the runner released the lease after the job, or the runner
///   was dropped.
/// - [`shutdown_requested`](Self::shutdown_requested) resolves when the singleton is asked
///   to shut down (or the term is over): finish the work in hand and return.
///
/// Checking the guard narrows the window in which a paused holder can act on a lost lease,
/// but cannot close it: pass the token to the resource and check it there
/// ([`FenceGate`](crate::FenceGate)).
///
/// # Clone
///
/// Clones observe the same term: hand one to each task the job spawns.
#[derive(Clone)]
pub struct LeaseGuard {
    lease: Lease,
    signal: watch::Receiver<Signal>,
}

impl LeaseGuard {
    pub(crate) fn new(lease: Lease, signal: watch::Receiver<Signal>) -> Self {
        Self { lease, signal }
    }

    /// The fencing token of this term.
    pub fn token(&self) -> FencingToken {
        self.lease.token()
    }

    /// The lease as it was acquired.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        self.lease.name()
    }

    /// This replica's holder id.
    pub fn holder(&self) -> &str {
        self.lease.holder()
    }

    /// The current local deadline: the send time of the last successful renewal (or of the
    /// acquisition) plus the ttl minus the safety margin. It moves forward with each
    /// renewal.
    pub fn deadline(&self) -> Instant {
        self.signal.borrow().deadline
    }

    /// Whether the lease is still believed held, now: the term is not over and the
    /// deadline has not passed.
    pub fn is_valid(&self) -> bool {
        let signal = *self.signal.borrow();
        !signal.over && Instant::now() < signal.deadline && self.signal.has_changed().is_ok()
    }

    /// Whether shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        self.signal.borrow().shutdown
    }

    /// Resolves when the term is over (see the [type docs](Self)); at once if it already
    /// is. Never resolves while the lease is held and renewed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing; call it again.
    pub async fn lost(&self) {
        self.wait(|_| false).await;
    }

    /// Resolves when shutdown is requested or the term is over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn shutdown_requested(&self) {
        self.wait(|signal| signal.shutdown).await;
    }

    /// Waits until `done(signal)`, the term is over, or the deadline passes.
    async fn wait(&self, done: impl Fn(&Signal) -> bool) {
        let mut signal = self.signal.clone();
        loop {
            let now = *signal.borrow_and_update();
            if now.over || done(&now) || Instant::now() >= now.deadline {
                return;
            }
            let deadline = tokio::time::sleep_until(now.deadline);
            match first(signal.changed(), deadline).await {
                // The runner is gone: nobody renews the lease any more.
                Either::Left(Err(_)) => return,
                Either::Left(Ok(())) | Either::Right(()) => {}
            }
        }
    }
}

impl fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signal = *self.signal.borrow();
        f.debug_struct("LeaseGuard")
            .field("name", &self.lease.name())
            .field("holder", &self.lease.holder())
            .field("token", &self.lease.token())
            .field("deadline", &signal.deadline)
            .field("over", &signal.over)
            .field("shutdown", &signal.shutdown)
            .finish()
    }
}
