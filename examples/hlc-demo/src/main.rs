//! Three nodes whose wall clocks disagree pass a value around; the demo prints every event
//! with its wall-clock reading and its HLC timestamp, then orders the events both ways and
//! counts how often each order puts a message's receipt before its sending.
//!
//! Run it with `cargo run -p example-hlc-demo`. Everything is simulated with manual clocks,
//! so the output is the same on every run.

use std::time::{Duration, UNIX_EPOCH};

use steadfast_core::clock::{ManualClock, WallClock};
use steadfast_hlc::{Hlc, Timestamp};

/// 2026-11-26T12:00:00Z, the simulation's true start time.
const START: Duration = Duration::from_secs(1_795_694_400);

struct Node {
    name: &'static str,
    skew_ms: i64,
    clock: ManualClock,
    hlc: Hlc<ManualClock>,
}

struct Event {
    node: &'static str,
    what: String,
    wall: Duration,
    hlc: Timestamp,
    /// For a receive: the index of the matching send.
    received_from: Option<usize>,
}

struct World {
    true_time: Duration,
    nodes: Vec<Node>,
    events: Vec<Event>,
}

impl World {
    fn new(skews: &[(&'static str, i64)]) -> Self {
        let nodes = skews
            .iter()
            .map(|&(name, skew_ms)| {
                let clock = ManualClock::from_epoch(START);
                Node {
                    name,
                    skew_ms,
                    hlc: Hlc::with_clock(clock.clone()),
                    clock,
                }
            })
            .collect();
        let mut world = Self {
            true_time: START,
            nodes,
            events: Vec::new(),
        };
        world.advance(Duration::ZERO);
        world
    }

    /// Moves true time forward; every node's wall clock follows with its own skew.
    fn advance(&mut self, by: Duration) {
        self.true_time += by;
        for node in &self.nodes {
            let skew = Duration::from_millis(node.skew_ms.unsigned_abs());
            let wall = if node.skew_ms < 0 {
                self.true_time - skew
            } else {
                self.true_time + skew
            };
            node.clock.set(UNIX_EPOCH + wall);
        }
    }

    fn record(&mut self, node: usize, what: String, hlc: Timestamp, from: Option<usize>) -> usize {
        let n = &self.nodes[node];
        self.events.push(Event {
            node: n.name,
            what,
            wall: n.clock.since_epoch(),
            hlc,
            received_from: from,
        });
        self.events.len() - 1
    }

    fn local(&mut self, node: usize, what: &str) {
        let ts = self.nodes[node].hlc.now();
        self.record(node, what.to_owned(), ts, None);
    }

    /// Sends from `from`; returns the send event and the timestamp carried by the message.
    fn send(&mut self, from: usize, to: usize) -> (usize, Timestamp) {
        let ts = self.nodes[from].hlc.now();
        let what = format!("send to {}", self.nodes[to].name);
        (self.record(from, what, ts, None), ts)
    }

    fn receive(&mut self, node: usize, (send, carried): (usize, Timestamp)) {
        let what = format!("receive from {}", self.events[send].node);
        match self.nodes[node].hlc.update_and_now(carried) {
            Ok(ts) => {
                self.record(node, what, ts, Some(send));
            }
            Err(err) => println!("  {} refuses the message: {err}\n", self.nodes[node].name),
        }
    }
}

/// The time of day of a wall-clock reading, `HH:MM:SS.mmm` (UTC).
fn wall_string(wall: Duration) -> String {
    let ms = wall.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000
    )
}

/// How many receives the ordering puts before their own send.
fn causality_violations(world: &World, order: &[usize]) -> usize {
    let position = |event: usize| order.iter().position(|&e| e == event);
    world
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.received_from.map(|send| (send, i)))
        .filter(|&(send, recv)| position(recv) < position(send))
        .count()
}

fn print_order(world: &World, title: &str, order: &[usize]) {
    println!("{title}");
    for &i in order {
        let e = &world.events[i];
        let late = e
            .received_from
            .filter(|send| {
                order.iter().position(|x| x == send) > order.iter().position(|x| *x == i)
            })
            .map(|_| "   <-- received before it was sent!")
            .unwrap_or("");
        println!("  #{:<2} {:<2} {}{late}", i + 1, e.node, e.what);
    }
    println!(
        "  causality violations: {}\n",
        causality_violations(world, order)
    );
}

fn main() {
    // Clock skews within the HLC's default 500 ms max offset: b runs 150 ms behind, c 60 ms ahead.
    let mut world = World::new(&[("a", 0), ("b", -150), ("c", 60)]);
    let ms = Duration::from_millis;

    world.local(0, "write x = 1");
    world.advance(ms(1));
    let msg = world.send(0, 1);
    world.advance(ms(2));
    world.receive(1, msg);
    world.local(1, "write x = x + 1");
    world.advance(ms(1));
    let msg = world.send(1, 2);
    world.advance(ms(5));
    world.receive(2, msg);
    world.advance(ms(1));
    let msg = world.send(2, 0);
    world.advance(ms(2));
    world.receive(0, msg);
    world.local(0, "write x = x * 10");

    println!("Three nodes, wall clocks skewed: a exact, b 150 ms slow, c 60 ms fast.\n");
    println!("  #   node event              wall clock      HLC timestamp");
    for (i, e) in world.events.iter().enumerate() {
        println!(
            "  #{:<2} {:<4} {:<18} {:<15} {}",
            i + 1,
            e.node,
            e.what,
            wall_string(e.wall),
            e.hlc
        );
    }
    println!();

    let mut by_wall: Vec<usize> = (0..world.events.len()).collect();
    by_wall.sort_by_key(|&i| world.events[i].wall);
    print_order(&world, "Ordered by wall clock:", &by_wall);

    let mut by_hlc: Vec<usize> = (0..world.events.len()).collect();
    by_hlc.sort_by_key(|&i| world.events[i].hlc);
    print_order(&world, "Ordered by HLC timestamp:", &by_hlc);

    let worst = world
        .events
        .iter()
        .map(|e| e.hlc.physical_micros() as i64 - e.wall.as_micros() as i64)
        .max()
        .unwrap_or(0);
    println!(
        "The HLC never ran more than {:.3} ms ahead of a node's own wall clock (bounded by the skew).\n",
        worst as f64 / 1000.0
    );

    // A node whose clock is 2 s fast: its timestamps are refused rather than merged, so it
    // cannot drag the others into the future.
    world.nodes.push({
        let clock = ManualClock::from_epoch(world.true_time + Duration::from_secs(2));
        Node {
            name: "d",
            skew_ms: 2_000,
            hlc: Hlc::with_clock(clock.clone()),
            clock,
        }
    });
    println!("Node d's clock is 2 s fast (beyond the 500 ms max offset) and it messages a:");
    let msg = world.send(3, 0);
    world.receive(0, msg);
}
