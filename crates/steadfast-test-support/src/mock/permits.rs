//! The mock's readiness: a pool of permits, waiting clones, and a scripted readiness error.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use steadfast_core::error::BoxError;

use super::lock;

/// The shared pool. Permits are counted, not stored: a [`Permit`] is the right to one of
/// them, returned when it is dropped.
#[derive(Debug)]
pub(super) struct Pool {
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    capacity: usize,
    /// Permits held by service clones that polled ready and have not called yet.
    reserved: usize,
    /// Permits held by response futures that have not completed yet.
    in_flight: usize,
    /// Returned by the next `poll_ready`, whoever polls.
    ready_error: Option<BoxError>,
    /// The wakers of clones whose last `poll_ready` was `Pending`, by clone id.
    waiters: HashMap<u64, Waker>,
    next_id: u64,
}

impl PoolState {
    fn available(&self) -> usize {
        self.capacity
            .saturating_sub(self.reserved.saturating_add(self.in_flight))
    }

    fn take_waiters(&mut self) -> Vec<Waker> {
        self.waiters.drain().map(|(_, waker)| waker).collect()
    }
}

impl Pool {
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PoolState {
                capacity,
                reserved: 0,
                in_flight: 0,
                ready_error: None,
                waiters: HashMap::new(),
                next_id: 0,
            }),
        })
    }

    /// A new id for a service clone, under which its waker is kept while it waits.
    pub(super) fn register(&self) -> u64 {
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        id
    }

    /// Forgets the waker of a dropped clone.
    pub(super) fn deregister(&self, id: u64) {
        lock(&self.state).waiters.remove(&id);
    }

    /// Readiness for clone `id`: the scripted error if there is one; else `Ok(None)` if the
    /// clone already holds a permit, `Ok(Some(permit))` if one was free, or `Pending` with the
    /// clone's waker registered.
    pub(super) fn poll_acquire(
        self: &Arc<Self>,
        id: u64,
        holding: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Permit>, BoxError>> {
        let mut state = lock(&self.state);
        if let Some(error) = state.ready_error.take() {
            state.waiters.remove(&id);
            return Poll::Ready(Err(error));
        }
        if holding {
            return Poll::Ready(Ok(None));
        }
        if state.available() > 0 {
            state.reserved += 1;
            state.waiters.remove(&id);
            return Poll::Ready(Ok(Some(Permit {
                pool: Arc::clone(self),
                in_flight: false,
            })));
        }
        match state.waiters.entry(id) {
            Entry::Occupied(mut entry) => {
                if !entry.get().will_wake(cx.waker()) {
                    entry.insert(cx.waker().clone());
                }
            }
            Entry::Vacant(entry) => {
                entry.insert(cx.waker().clone());
            }
        }
        Poll::Pending
    }

    /// Sets the capacity; wakes the waiting clones if a permit became free.
    pub(super) fn set_capacity(&self, capacity: usize) {
        let wakers = {
            let mut state = lock(&self.state);
            state.capacity = capacity;
            if state.available() > 0 {
                state.take_waiters()
            } else {
                Vec::new()
            }
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Makes the next `poll_ready` fail with `error`; wakes the waiting clones to see it.
    pub(super) fn fail_next_ready(&self, error: BoxError) {
        let wakers = {
            let mut state = lock(&self.state);
            state.ready_error = Some(error);
            state.take_waiters()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    pub(super) fn capacity(&self) -> usize {
        lock(&self.state).capacity
    }

    pub(super) fn available(&self) -> usize {
        lock(&self.state).available()
    }

    pub(super) fn reserved(&self) -> usize {
        lock(&self.state).reserved
    }

    pub(super) fn in_flight(&self) -> usize {
        lock(&self.state).in_flight
    }

    fn start_call(&self) {
        let mut state = lock(&self.state);
        state.reserved -= 1;
        state.in_flight += 1;
    }

    fn release(&self, in_flight: bool) {
        let wakers = {
            let mut state = lock(&self.state);
            if in_flight {
                state.in_flight -= 1;
            } else {
                state.reserved -= 1;
            }
            state.take_waiters()
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// One permit from the pool: reserved by a ready clone, then in flight with a call. Dropping
/// it returns it to the pool and wakes the waiting clones.
#[derive(Debug)]
pub(super) struct Permit {
    pool: Arc<Pool>,
    in_flight: bool,
}

impl Permit {
    /// Moves the permit from "reserved" to "in flight".
    pub(super) fn start_call(&mut self) {
        if !self.in_flight {
            self.pool.start_call();
            self.in_flight = true;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.pool.release(self.in_flight);
    }
}
