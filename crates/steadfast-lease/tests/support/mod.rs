//! Shared test support: a process-pause switch and the lease checker; real processes
//! (`process`), a store recording its last successful send (`recording`), and the real
//! backends with a child holder process (`holder`).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast_lease::{FenceGate, Fenced, FencingToken};
use tokio::time::Instant;

#[cfg(any(feature = "redis", feature = "postgres", feature = "etcd"))]
pub mod holder;
pub mod process;
pub mod recording;
pub mod stepdown;

/// Simulates pausing a whole process (GC, `SIGSTOP`, a VM migration): every future
/// wrapped with [`Pause::wrap`] stops being polled while paused, whatever it waits on,
/// and tokio time goes on for everyone else.
#[derive(Clone, Default)]
pub struct Pause {
    inner: Arc<PauseInner>,
}

#[derive(Default)]
struct PauseInner {
    paused: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Pause {
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
        for waker in self.inner.wakers.lock().unwrap().drain(..) {
            waker.wake();
        }
    }

    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::SeqCst)
    }

    /// `future`, frozen while this switch is paused.
    pub fn wrap<F: Future>(&self, future: F) -> Paused<F> {
        Paused {
            future: Box::pin(future),
            pause: self.clone(),
        }
    }
}

pub struct Paused<F> {
    future: Pin<Box<F>>,
    pause: Pause,
}

impl<F: Future> Future for Paused<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.pause.is_paused() {
            self.pause
                .inner
                .wakers
                .lock()
                .unwrap()
                .push(cx.waker().clone());
            return Poll::Pending;
        }
        self.future.as_mut().poll(cx)
    }
}

/// One term as its holder believed it: from the job's start to the job's end (or drop).
#[derive(Debug, Clone)]
pub struct Term {
    pub holder: String,
    pub token: FencingToken,
    pub start: Instant,
    pub end: Option<Instant>,
}

/// One write presented to the resource.
#[derive(Debug, Clone)]
pub struct Write {
    pub holder: String,
    pub token: FencingToken,
    pub at: Instant,
    pub accepted: bool,
}

#[derive(Debug, Default)]
struct Log {
    terms: Vec<Term>,
    writes: Vec<Write>,
}

/// Records every term (holder, token, believed interval) and every write presented to a
/// [`FenceGate`], and checks the invariants of issue 8.
#[derive(Clone, Default)]
pub struct Checker {
    log: Arc<Mutex<Log>>,
    gate: Arc<FenceGate>,
}

/// Ends its term when dropped: keep it alive in the job future, so a job cancelled by the
/// runner ends its term at the moment it is dropped.
pub struct TermRecord {
    log: Arc<Mutex<Log>>,
    index: usize,
}

impl Drop for TermRecord {
    fn drop(&mut self) {
        self.log.lock().unwrap().terms[self.index].end = Some(Instant::now());
    }
}

pub const RESOURCE: &str = "resource";

impl Checker {
    pub fn gate(&self) -> &FenceGate {
        &self.gate
    }

    /// Starts a term; it ends when the returned record is dropped.
    pub fn begin(&self, holder: &str, token: FencingToken) -> TermRecord {
        let mut log = self.log.lock().unwrap();
        log.terms.push(Term {
            holder: holder.to_owned(),
            token,
            start: Instant::now(),
            end: None,
        });
        TermRecord {
            log: self.log.clone(),
            index: log.terms.len() - 1,
        }
    }

    /// Presents a write to the gate and records the outcome.
    pub fn write(&self, holder: &str, token: FencingToken) -> Result<(), Fenced> {
        let mut log = self.log.lock().unwrap();
        let result = self.gate.admit(RESOURCE, holder, token);
        log.writes.push(Write {
            holder: holder.to_owned(),
            token,
            at: Instant::now(),
            accepted: result.is_ok(),
        });
        result
    }

    pub fn terms(&self) -> Vec<Term> {
        let mut terms = self.log.lock().unwrap().terms.clone();
        terms.sort_by_key(|term| term.start);
        terms
    }

    pub fn writes(&self) -> Vec<Write> {
        self.log.lock().unwrap().writes.clone()
    }

    /// The invariants that hold under every fault:
    ///
    /// - ordered by start, tokens never go down, and strictly increase whenever the
    ///   holder changes;
    /// - no token is accepted from two holders;
    /// - accepted tokens never go down;
    /// - every accepted write comes from a term with that holder and token.
    pub fn check_tokens(&self) {
        let terms = self.terms();
        for pair in terms.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.holder == b.holder {
                assert!(
                    b.token >= a.token,
                    "token went down within {}: {a:?} then {b:?}",
                    a.holder
                );
            } else {
                assert!(
                    b.token > a.token,
                    "token did not increase with a change of holder: {a:?} then {b:?}"
                );
            }
        }
        let writes = self.writes();
        let mut owner: BTreeMap<FencingToken, &str> = BTreeMap::new();
        let mut highest = FencingToken::new(0);
        for write in writes.iter().filter(|w| w.accepted) {
            let first = *owner.entry(write.token).or_insert(&write.holder);
            assert_eq!(
                first, write.holder,
                "token {} accepted from two holders",
                write.token
            );
            assert!(
                write.token >= highest,
                "accepted token went down: {write:?}"
            );
            highest = write.token;
            assert!(
                terms
                    .iter()
                    .any(|t| t.holder == write.holder && t.token == write.token),
                "accepted write from no term: {write:?}"
            );
        }
    }

    /// In fault-free runs: no two believed intervals overlap.
    pub fn check_no_overlap(&self) {
        let terms = self.terms();
        for pair in terms.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let end = a
                .end
                .unwrap_or_else(|| panic!("a term other than the last never ended: {a:?}"));
            assert!(
                end <= b.start,
                "believed intervals overlap: {a:?} and {b:?}"
            );
        }
    }
}

/// Sleeps `by` of tokio time.
pub async fn sleep(by: Duration) {
    tokio::time::sleep(by).await;
}

/// Lets every ready task run without moving time.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
