//! Counters of what the retry layer did, shared by every service a layer made.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a retry layer did, counted since it was built. Shared by the layer's clones and
/// every service it made; read with [`RetryLayer::stats`](crate::RetryLayer::stats).
///
/// With the `metrics` feature the same events are also emitted as counters named
/// `steadfast_retry_<field>_total` with a `name` label (see
/// [`RetryLayerBuilder::name`](crate::RetryLayerBuilder::name)).
#[derive(Debug, Default)]
pub struct RetryStats {
    requests: AtomicU64,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    gave_up: AtomicU64,
    not_replayable: AtomicU64,
    hint_too_long: AtomicU64,
}

/// One kind of event, for the counters and the `metrics` names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Request,
    Retry,
    BudgetExhausted,
    GaveUp,
    NotReplayable,
    HintTooLong,
}

impl Event {
    #[cfg(feature = "metrics")]
    fn metric(self) -> &'static str {
        match self {
            Event::Request => "steadfast_retry_requests_total",
            Event::Retry => "steadfast_retry_retries_total",
            Event::BudgetExhausted => "steadfast_retry_budget_exhausted_total",
            Event::GaveUp => "steadfast_retry_gave_up_total",
            Event::NotReplayable => "steadfast_retry_not_replayable_total",
            Event::HintTooLong => "steadfast_retry_hint_too_long_total",
        }
    }
}

impl RetryStats {
    /// Requests seen (first attempts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Attempts sent, first attempts included: requests plus retries.
    pub fn attempts(&self) -> u64 {
        self.requests() + self.retries()
    }

    /// Retries sent (attempts after the first).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Retries refused because the budget was empty.
    pub fn budget_exhausted(&self) -> u64 {
        self.budget_exhausted.load(Ordering::Relaxed)
    }

    /// Requests that failed retryably on their last allowed attempt.
    pub fn gave_up(&self) -> u64 {
        self.gave_up.load(Ordering::Relaxed)
    }

    /// Retryable failures that could not be retried because the request could not be
    /// replayed: its body was over the replay cap, or was still held by the last attempt.
    pub fn not_replayable(&self) -> u64 {
        self.not_replayable.load(Ordering::Relaxed)
    }

    /// Retries not made because the server asked to wait longer than the hint cap or the
    /// deadline allows.
    pub fn hint_too_long(&self) -> u64 {
        self.hint_too_long.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, event: Event, _name: &std::sync::Arc<str>) {
        let counter = match event {
            Event::Request => &self.requests,
            Event::Retry => &self.retries,
            Event::BudgetExhausted => &self.budget_exhausted,
            Event::GaveUp => &self.gave_up,
            Event::NotReplayable => &self.not_replayable,
            Event::HintTooLong => &self.hint_too_long,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(event.metric(), "name" => _name.clone()).increment(1);
            // Every request and every retry is an attempt.
            if matches!(event, Event::Request | Event::Retry) {
                metrics::counter!("steadfast_retry_attempts_total", "name" => _name.clone())
                    .increment(1);
            }
        }
    }
}
