//! Two worker threads calling a function concurrently, timed from the first thread's start
//! to the last thread's finish; a pair is spawned once and parked between runs.

// Wall time across threads is what is measured here; tokio's pausable Instant has no
// place in a benchmark.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const THREADS: usize = 2;

struct Shared {
    /// Releases the workers for a run (the workers and the benchmark thread).
    start: Barrier,
    /// Reached by everyone once both workers have finished a run.
    done: Barrier,
    iters: AtomicU64,
    stop: AtomicBool,
    /// Each worker's (start, end) of the last run.
    spans: Mutex<Vec<(Instant, Instant)>>,
}

/// A pair of threads parked between runs, so spawning is not measured.
pub struct ThreadPair {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ThreadPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPair")
            .field("threads", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl ThreadPair {
    /// Both threads call `f` (shared).
    pub fn new<F, T>(f: F) -> Self
    where
        F: Fn() -> T + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Self::per_thread(move || {
            let f = Arc::clone(&f);
            move || f()
        })
    }

    /// `make` is called once on each thread for the function that thread calls (for
    /// per-thread state: a `Service` needs `&mut self`).
    pub fn per_thread<M, F, T>(make: M) -> Self
    where
        M: Fn() -> F + Send + Sync + 'static,
        F: FnMut() -> T,
    {
        let shared = Arc::new(Shared {
            start: Barrier::new(THREADS + 1),
            done: Barrier::new(THREADS + 1),
            iters: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            spans: Mutex::new(Vec::with_capacity(THREADS)),
        });
        let make = Arc::new(make);
        let workers = (0..THREADS)
            .map(|_| {
                let shared = Arc::clone(&shared);
                let make = Arc::clone(&make);
                thread::spawn(move || {
                    let mut f = make();
                    loop {
                        shared.start.wait();
                        if shared.stop.load(Ordering::Acquire) {
                            return;
                        }
                        let iters = shared.iters.load(Ordering::Acquire);
                        let begin = Instant::now();
                        for _ in 0..iters {
                            black_box(f());
                        }
                        let end = Instant::now();
                        shared.spans.lock().expect("poisoned").push((begin, end));
                        shared.done.wait();
                    }
                })
            })
            .collect();
        Self { shared, workers }
    }

    /// Both threads make `iters` calls; returns the wall time from the first thread
    /// starting to the last one finishing.
    pub fn run(&self, iters: u64) -> Duration {
        self.shared.spans.lock().expect("poisoned").clear();
        self.shared.iters.store(iters, Ordering::Release);
        self.shared.start.wait();
        self.shared.done.wait();
        let spans = self.shared.spans.lock().expect("poisoned");
        let begin = spans.iter().map(|s| s.0).min().expect("two spans");
        let end = spans.iter().map(|s| s.1).max().expect("two spans");
        end - begin
    }
}

impl Drop for ThreadPair {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.start.wait();
        for worker in self.workers.drain(..) {
            worker.join().expect("worker panicked");
        }
    }
}
