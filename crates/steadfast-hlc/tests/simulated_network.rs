//! The HLC paper's invariants, checked over a simulated network of nodes whose wall clocks
//! are skewed, drift and step backwards (within the skew bound ε), exchanging messages in
//! arbitrary order.
//!
//! For every event e with HLC timestamp l.e issued when its node's physical clock read pt.e:
//! - `l.e ≥ pt.e` (the HLC is never behind physical time);
//! - `l.e − pt.e ≤ ε` (it is never further ahead than the skew bound);
//! - `e → f ⇒ l.e < l.f` (happens-before implies order; checked on every local succession
//!   and every message edge, which by transitivity covers the whole relation);
//! - timestamps of one node never go backwards, and no two events share a timestamp on a node.

use std::collections::VecDeque;
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use steadfast_core::clock::{ManualClock, WallClock};
use steadfast_hlc::{Hlc, Timestamp};

/// The skew bound ε in microseconds: every clock stays within ±ε/2 of true time.
const EPSILON_US: i64 = 200_000;
const START_US: u64 = 1_700_000_000_000_000;

#[derive(Debug, Clone)]
enum Action {
    /// A local event on a node.
    Local(usize),
    /// A node sends a message to another.
    Send { from: usize, to: usize },
    /// A node receives its oldest pending message, if any.
    Receive(usize),
    /// True time moves forward.
    Advance(u64),
    /// A node's clock moves to another skew within the bound (steps back or forward).
    Reskew { node: usize, skew: i64 },
}

fn action(nodes: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..nodes).prop_map(Action::Local),
        3 => (0..nodes, 0..nodes).prop_map(|(from, to)| Action::Send { from, to }),
        3 => (0..nodes).prop_map(Action::Receive),
        // Zero often, so many events share a physical microsecond and the logical part works.
        3 => prop_oneof![Just(0u64), 0..50u64, 0..5_000u64].prop_map(Action::Advance),
        1 => (0..nodes, -EPSILON_US / 2..=EPSILON_US / 2)
            .prop_map(|(node, skew)| Action::Reskew { node, skew }),
    ]
}

struct Node {
    hlc: Hlc<ManualClock>,
    clock: ManualClock,
    skew: i64,
    last: Timestamp,
    inbox: VecDeque<Timestamp>,
}

struct Network {
    true_us: u64,
    nodes: Vec<Node>,
}

impl Network {
    fn new(skews: &[i64]) -> Self {
        let nodes = skews
            .iter()
            .map(|&skew| {
                let clock = ManualClock::from_epoch(Duration::ZERO);
                Node {
                    hlc: Hlc::with_clock(clock.clone()),
                    clock,
                    skew,
                    last: Timestamp::ZERO,
                    inbox: VecDeque::new(),
                }
            })
            .collect();
        let mut net = Self {
            true_us: START_US,
            nodes,
        };
        net.sync_clocks();
        net
    }

    fn sync_clocks(&mut self) {
        for node in &self.nodes {
            let pt = self.true_us.saturating_add_signed(node.skew);
            node.clock.set(UNIX_EPOCH + Duration::from_micros(pt));
        }
    }

    fn pt(&self, node: usize) -> u64 {
        self.true_us.saturating_add_signed(self.nodes[node].skew)
    }

    /// Records an event's timestamp and checks the invariants that involve only it.
    fn event(&mut self, node: usize, ts: Timestamp) -> Result<(), TestCaseError> {
        let pt = self.pt(node);
        let n = &mut self.nodes[node];
        prop_assert!(
            ts > n.last,
            "node {node} went backwards: {} then {}",
            n.last,
            ts
        );
        prop_assert!(
            ts.physical_micros() >= pt,
            "l < pt on node {node}: {ts} at pt {pt}"
        );
        prop_assert!(
            ts.physical_micros() - pt <= EPSILON_US as u64,
            "l - pt > ε on node {node}: {ts} at pt {pt}"
        );
        n.last = ts;
        Ok(())
    }

    fn apply(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Local(node) => {
                let ts = self.nodes[node].hlc.now();
                self.event(node, ts)?;
            }
            Action::Send { from, to } => {
                let ts = self.nodes[from].hlc.now();
                self.event(from, ts)?;
                self.nodes[to].inbox.push_back(ts);
            }
            Action::Receive(node) => {
                if let Some(sent) = self.nodes[node].inbox.pop_front() {
                    let received = self.nodes[node]
                        .hlc
                        .update_and_now(sent)
                        .map_err(|e| TestCaseError::fail(format!("within ε yet refused: {e}")))?;
                    prop_assert!(received > sent, "receive {received} not after send {sent}");
                    self.event(node, received)?;
                }
            }
            Action::Advance(us) => {
                self.true_us += us;
                self.sync_clocks();
            }
            Action::Reskew { node, skew } => {
                self.nodes[node].skew = skew;
                self.sync_clocks();
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn paper_invariants_hold_under_skew_and_backward_steps(
        (skews, actions) in (2usize..6).prop_flat_map(|n| (
            proptest::collection::vec(-EPSILON_US / 2..=EPSILON_US / 2, n),
            proptest::collection::vec(action(n), 1..300),
        ))
    ) {
        let mut net = Network::new(&skews);
        for action in actions {
            net.apply(action)?;
        }
    }

    /// A clock stepping back, by a little or far beyond ε (as a broken NTP server can
    /// cause), never makes a node's timestamps go backwards, and every fall of more than
    /// max_offset/10 below the clock's high-water mark is counted once.
    #[test]
    fn large_backward_steps_never_reverse_time(
        steps in proptest::collection::vec((prop_oneof![0u64..100_000, 0u64..10_000_000], 0..5usize), 1..50)
    ) {
        let clock = ManualClock::from_epoch(Duration::from_micros(START_US));
        let hlc = Hlc::with_clock(clock.clone());
        let mut last = hlc.now();
        let mut high_mark = START_US;
        let mut big_steps = 0;
        for (back_us, ticks) in steps {
            clock.rewind(Duration::from_micros(back_us));
            // Counted when a reading falls more than max_offset / 10 below the highest
            // reading since the last counted step.
            let reading = clock.since_epoch().as_micros() as u64;
            if reading > high_mark {
                high_mark = reading;
            } else if high_mark - reading > 50_000 {
                big_steps += 1;
                high_mark = reading;
            }
            for _ in 0..=ticks {
                let next = hlc.now();
                prop_assert!(next > last);
                last = next;
            }
            clock.advance(Duration::from_micros(back_us / 2));
        }
        prop_assert_eq!(hlc.backward_jumps(), big_steps);
    }
}
