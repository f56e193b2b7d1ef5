//! A waker that counts its wake-ups, for polling futures by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};

/// A [`Waker`] that counts how often it was woken.
///
/// Poll a service or future by hand with [`context`](Self::context), then check
/// [`wakes`](Self::wakes) to see whether it asked to be polled again.
///
/// ```
/// use steadfast_test_support::CountingWaker;
///
/// let waker = CountingWaker::new();
/// waker.context().waker().wake_by_ref();
/// assert_eq!(waker.wakes(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct CountingWaker {
    counter: Arc<WakeCounter>,
    waker: Waker,
}

#[derive(Debug, Default)]
struct WakeCounter {
    wakes: AtomicUsize,
}

impl Wake for WakeCounter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    /// A waker that has not been woken yet.
    pub fn new() -> Self {
        let counter = Arc::new(WakeCounter::default());
        let waker = Waker::from(Arc::clone(&counter));
        Self { counter, waker }
    }

    /// How many times this waker (or a clone of it) was woken.
    pub fn wakes(&self) -> usize {
        self.counter.wakes.load(Ordering::SeqCst)
    }

    /// The waker itself.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// A task context that wakes this waker.
    pub fn context(&self) -> Context<'_> {
        Context::from_waker(&self.waker)
    }
}

impl Default for CountingWaker {
    fn default() -> Self {
        Self::new()
    }
}
