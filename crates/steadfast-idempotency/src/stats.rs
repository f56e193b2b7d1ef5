//! Counters of what the idempotency layer did, shared by every service a layer made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What an idempotency layer did, counted since it was built. Shared by the layer's clones
/// and every service it made; read with
/// [`IdempotencyLayer::stats`](crate::IdempotencyLayer::stats).
///
/// With the `metrics` feature the same events are also emitted as counters named
/// `steadfast_idempotency_<field>_total` with a `name` label (see
/// [`IdempotencyLayerBuilder::name`](crate::IdempotencyLayerBuilder::name)).
#[derive(Debug, Default)]
pub struct IdempotencyStats {
    keyed: AtomicU64,
    missing_key: AtomicU64,
    invalid_key: AtomicU64,
    body_too_large: AtomicU64,
    body_unreadable: AtomicU64,
    executions: AtomicU64,
    replays: AtomicU64,
    conflicts: AtomicU64,
    mismatches: AtomicU64,
    waits: AtomicU64,
    stored: AtomicU64,
    released: AtomicU64,
    response_too_large: AtomicU64,
    abandoned: AtomicU64,
    superseded: AtomicU64,
    store_errors: AtomicU64,
    failed_open: AtomicU64,
    failed_closed: AtomicU64,
}

/// One kind of event, for the counters and the `metrics` names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Keyed,
    MissingKey,
    InvalidKey,
    BodyTooLarge,
    BodyUnreadable,
    Execution,
    Replay,
    Conflict,
    Mismatch,
    Wait,
    Stored,
    Released,
    ResponseTooLarge,
    Abandoned,
    Superseded,
    StoreError,
    FailedOpen,
    FailedClosed,
}

impl Event {
    #[cfg(feature = "metrics")]
    fn metric(self) -> &'static str {
        match self {
            Event::Keyed => "steadfast_idempotency_keyed_total",
            Event::MissingKey => "steadfast_idempotency_missing_key_total",
            Event::InvalidKey => "steadfast_idempotency_invalid_key_total",
            Event::BodyTooLarge => "steadfast_idempotency_body_too_large_total",
            Event::BodyUnreadable => "steadfast_idempotency_body_unreadable_total",
            Event::Execution => "steadfast_idempotency_executions_total",
            Event::Replay => "steadfast_idempotency_replays_total",
            Event::Conflict => "steadfast_idempotency_conflicts_total",
            Event::Mismatch => "steadfast_idempotency_mismatches_total",
            Event::Wait => "steadfast_idempotency_waits_total",
            Event::Stored => "steadfast_idempotency_stored_total",
            Event::Released => "steadfast_idempotency_released_total",
            Event::ResponseTooLarge => "steadfast_idempotency_response_too_large_total",
            Event::Abandoned => "steadfast_idempotency_abandoned_total",
            Event::Superseded => "steadfast_idempotency_superseded_total",
            Event::StoreError => "steadfast_idempotency_store_errors_total",
            Event::FailedOpen => "steadfast_idempotency_failed_open_total",
            Event::FailedClosed => "steadfast_idempotency_failed_closed_total",
        }
    }
}

impl IdempotencyStats {
    /// Requests with a valid key that the layer handled.
    pub fn keyed(&self) -> u64 {
        self.keyed.load(Ordering::Relaxed)
    }

    /// Requests refused with `400` for lack of a key (with `require_key`).
    pub fn missing_key(&self) -> u64 {
        self.missing_key.load(Ordering::Relaxed)
    }

    /// Requests refused with `400` for a malformed key, or several key field lines.
    pub fn invalid_key(&self) -> u64 {
        self.invalid_key.load(Ordering::Relaxed)
    }

    /// Requests refused with `413` because the body exceeded the cap.
    pub fn body_too_large(&self) -> u64 {
        self.body_too_large.load(Ordering::Relaxed)
    }

    /// Requests refused with `400` because their body failed while being read.
    pub fn body_unreadable(&self) -> u64 {
        self.body_unreadable.load(Ordering::Relaxed)
    }

    /// Handler runs under a claim (first executions, and re-executions after a release or
    /// an expired lease).
    pub fn executions(&self) -> u64 {
        self.executions.load(Ordering::Relaxed)
    }

    /// Duplicates answered with the stored response.
    pub fn replays(&self) -> u64 {
        self.replays.load(Ordering::Relaxed)
    }

    /// Duplicates answered with `409` because the first was still in flight.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// Requests answered with `422`: the key was used with a different request.
    pub fn mismatches(&self) -> u64 {
        self.mismatches.load(Ordering::Relaxed)
    }

    /// Duplicates that waited for an in-flight first request (wait mode).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Responses stored for replay.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Claims released after the handler ran: a response the policy does not store, a
    /// response over the cap, an inner error, or a failed completion.
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    /// Responses passed through unstored because their body exceeded the cap (their claim
    /// is released, so they are counted in [`released`](Self::released) too).
    pub fn response_too_large(&self) -> u64 {
        self.response_too_large.load(Ordering::Relaxed)
    }

    /// Claims released because a response future was dropped before it finished.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Completions refused by the fencing token: the lease had expired and another
    /// request had claimed the key. The stale owner's response still reached its client.
    pub fn superseded(&self) -> u64 {
        self.superseded.load(Ordering::Relaxed)
    }

    /// Store operations that failed (claims, completions, releases).
    pub fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }

    /// Requests run without idempotency because the store failed and the layer fails open.
    pub fn failed_open(&self) -> u64 {
        self.failed_open.load(Ordering::Relaxed)
    }

    /// Requests answered with `503` because the store failed and the layer fails closed.
    pub fn failed_closed(&self) -> u64 {
        self.failed_closed.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, event: Event, _name: &Arc<str>) {
        let counter = match event {
            Event::Keyed => &self.keyed,
            Event::MissingKey => &self.missing_key,
            Event::InvalidKey => &self.invalid_key,
            Event::BodyTooLarge => &self.body_too_large,
            Event::BodyUnreadable => &self.body_unreadable,
            Event::Execution => &self.executions,
            Event::Replay => &self.replays,
            Event::Conflict => &self.conflicts,
            Event::Mismatch => &self.mismatches,
            Event::Wait => &self.waits,
            Event::Stored => &self.stored,
            Event::Released => &self.released,
            Event::ResponseTooLarge => &self.response_too_large,
            Event::Abandoned => &self.abandoned,
            Event::Superseded => &self.superseded,
            Event::StoreError => &self.store_errors,
            Event::FailedOpen => &self.failed_open,
            Event::FailedClosed => &self.failed_closed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(event.metric(), "name" => _name.clone()).increment(1);
    }
}
