//! What happened to a mock service: calls, cancellations, dropped clones.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub(super) struct Counters {
    calls: AtomicUsize,
    cancelled: AtomicUsize,
    services_dropped: AtomicUsize,
}

impl Counters {
    pub(super) fn record_call(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn record_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn record_service_dropped(&self) {
        self.services_dropped.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(super) fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub(super) fn services_dropped(&self) -> usize {
        self.services_dropped.load(Ordering::SeqCst)
    }
}
