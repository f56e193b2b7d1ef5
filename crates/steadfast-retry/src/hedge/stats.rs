//! Counters of what a hedge layer did, shared by every service the layer made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a hedge layer did, counted since it was built. Shared by the layer's clones and
/// every service it made; read with [`HedgeLayer::stats`](super::HedgeLayer::stats).
///
/// `hedges_sent / requests` is the extra load hedging added (the
/// [`HedgeDelay::Percentile`](super::HedgeDelay::Percentile) delay at p95 aims for about 5 %
/// on a steady latency distribution), and `hedge_wins / hedges_sent` how often a hedge paid
/// off.
///
/// With the `metrics` feature the same events are also emitted as counters named
/// `steadfast_hedge_<field>_total` with a `name` label (see
/// [`HedgeLayerBuilder::name`](super::HedgeLayerBuilder::name)).
#[derive(Debug, Default)]
pub struct HedgeStats {
    requests: AtomicU64,
    hedges_sent: AtomicU64,
    hedge_wins: AtomicU64,
    budget_exhausted: AtomicU64,
}

/// One kind of event, for the counters and the `metrics` names.
#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    Request,
    HedgeSent,
    HedgeWin,
    BudgetExhausted,
}

impl Event {
    #[cfg(feature = "metrics")]
    fn metric(self) -> &'static str {
        match self {
            Event::Request => "steadfast_hedge_requests_total",
            Event::HedgeSent => "steadfast_hedge_hedges_sent_total",
            Event::HedgeWin => "steadfast_hedge_hedge_wins_total",
            Event::BudgetExhausted => "steadfast_hedge_budget_exhausted_total",
        }
    }
}

impl HedgeStats {
    /// Requests seen (calls of the hedge service).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Hedges sent: attempts after the first, whether sent because the delay passed or
    /// because an attempt failed retryably.
    pub fn hedges_sent(&self) -> u64 {
        self.hedges_sent.load(Ordering::Relaxed)
    }

    /// Requests answered by a hedge rather than by their first attempt.
    pub fn hedge_wins(&self) -> u64 {
        self.hedge_wins.load(Ordering::Relaxed)
    }

    /// Hedges not sent because the budget refused them.
    pub fn budget_exhausted(&self) -> u64 {
        self.budget_exhausted.load(Ordering::Relaxed)
    }

    pub(super) fn record(&self, event: Event, _name: &Arc<str>) {
        let counter = match event {
            Event::Request => &self.requests,
            Event::HedgeSent => &self.hedges_sent,
            Event::HedgeWin => &self.hedge_wins,
            Event::BudgetExhausted => &self.budget_exhausted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(event.metric(), "name" => _name.clone()).increment(1);
    }
}
