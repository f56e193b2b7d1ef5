//! Bounded loads over a test-only placement: the cap bound, which keys move, membership
//! changes with outstanding tickets, and the counters under threads.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use proptest::prelude::*;
use steadfast_hash::bounded::{BoundedLoad, DEFAULT_FACTOR, MAX_CANDIDATES, Ticket};
use steadfast_hash::stable::fmix64;
use steadfast_hash::{BuildError, Placement};

/// A small rendezvous placement: member `i` has seed `seeds[i]`; a key's preference order is
/// the members by descending `fmix64(hash ^ seed)`.
#[derive(Debug, Clone)]
struct Hrw {
    seeds: Vec<u64>,
}

impl Hrw {
    fn new(n: usize) -> Self {
        Self {
            seeds: (0..n as u64).map(|i| fmix64(i + 1)).collect(),
        }
    }

    fn order(&self, hash: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.seeds.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(fmix64(hash ^ self.seeds[i])));
        order
    }
}

impl Placement for Hrw {
    fn len(&self) -> usize {
        self.seeds.len()
    }

    fn place(&self, hash: u64) -> Option<usize> {
        self.order(hash).first().copied()
    }

    fn replicas(&self, hash: u64, out: &mut [usize]) -> usize {
        let order = self.order(hash);
        let k = out.len().min(order.len());
        out[..k].copy_from_slice(&order[..k]);
        k
    }
}

/// `⌈(100 + pct) · total / (100 · n)⌉`: the cap for `c = 1 + pct/100`, in exact integers.
fn cap(pct: u64, total: usize, n: usize) -> usize {
    ((100 + pct) * total as u64).div_ceil(100 * n as u64) as usize
}

#[test]
fn counters_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BoundedLoad>();
    send_sync::<Ticket>();
}

#[test]
fn factor_is_validated() {
    for bad in [
        1.0,
        0.5,
        -2.0,
        1.000_000_1,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        2e6,
    ] {
        assert!(
            matches!(
                BoundedLoad::with_factor(3, bad),
                Err(BuildError::InvalidParameter(_))
            ),
            "factor {bad} accepted"
        );
    }
    assert_eq!(DEFAULT_FACTOR, 1.25);
    let load = BoundedLoad::new(3);
    assert_eq!((load.factor(), load.len()), (1.25, 3));
    assert!(BoundedLoad::with_factor(3, 1.000_001).is_ok());
}

#[test]
fn no_members_no_ticket() {
    let load = BoundedLoad::new(0);
    assert!(load.is_empty());
    assert!(load.pick(&Hrw::new(3), 7).is_none());
    let load = BoundedLoad::new(3);
    assert!(load.pick(&Hrw::new(0), 7).is_none());
    assert!(load.try_acquire(3).is_none());
    assert!(load.acquire(3).is_none());
    assert_eq!(load.total_in_flight(), 0);
}

#[test]
fn key_goes_to_its_owner_until_the_owner_is_at_cap() {
    let placement = Hrw::new(4);
    let load = BoundedLoad::with_factor(4, 1.5).expect("valid");
    let hash = 99;
    let order = placement.order(hash);
    // Caps for totals 1..=4 are 1, 1, 2, 2: the owner, then its second, alternately.
    let tickets: Vec<Ticket> = (0..4)
        .map(|_| load.pick(&placement, hash).expect("members"))
        .collect();
    let members: Vec<usize> = tickets.iter().map(Ticket::member).collect();
    assert_eq!(members, [order[0], order[1], order[0], order[1]]);
    drop(tickets);
    assert_eq!(load.total_in_flight(), 0);
    assert_eq!(
        load.pick(&placement, hash).map(|t| t.member()),
        Some(order[0])
    );
}

#[test]
fn try_acquire_respects_the_cap_and_acquire_does_not() {
    let load = BoundedLoad::with_factor(2, 1.5).expect("valid");
    let first = load.try_acquire(0).expect("room");
    assert_eq!(load.cap(0), 2); // ⌈1.5 · 2 / 2⌉
    let second = load.try_acquire(0).expect("room");
    assert_eq!(load.cap(0), 3); // ⌈1.5 · 3 / 2⌉ = 3: 2 < 3, still room
    let third = load.try_acquire(0).expect("room");
    assert_eq!(load.cap(0), 3); // ⌈1.5 · 4 / 2⌉ = 3, and 3 are in flight
    assert!(load.try_acquire(0).is_none());
    assert_eq!(load.total_in_flight(), 3);
    let forced = load.acquire(0).expect("member");
    assert_eq!((load.in_flight(0), load.total_in_flight()), (4, 4));
    drop((first, second, third, forced));
    assert_eq!((load.in_flight(0), load.total_in_flight()), (0, 0));
}

#[test]
fn removed_members_tickets_stop_counting() {
    let mut load = BoundedLoad::new(3);
    let on_0 = load.acquire(0).expect("member");
    let on_1 = load.acquire(1).expect("member");
    let on_2 = [
        load.acquire(2).expect("member"),
        load.acquire(2).expect("member"),
    ];
    assert_eq!(load.total_in_flight(), 4);

    load.remove(1);
    // Member 1's request no longer counts; member 2 is now index 1 with its two requests.
    assert_eq!((load.len(), load.total_in_flight()), (2, 3));
    assert_eq!((load.in_flight(0), load.in_flight(1)), (1, 2));
    assert_eq!(on_1.member(), 1); // the index it had
    drop(on_1);
    assert_eq!(load.total_in_flight(), 3);
    assert_eq!((load.in_flight(0), load.in_flight(1)), (1, 2));

    drop(on_2);
    assert_eq!((load.in_flight(1), load.total_in_flight()), (0, 1));

    // Shrinking detaches the dropped members the same way; growing adds empty members.
    load.resize(0);
    assert_eq!(load.total_in_flight(), 0);
    drop(on_0);
    assert_eq!(load.total_in_flight(), 0);
    load.resize(2);
    assert_eq!(
        (load.in_flight(0), load.in_flight(1), load.weight(1)),
        (0, 0, 1)
    );
}

#[test]
fn weights_scale_caps() {
    let placement = Hrw::new(2);
    let mut load = BoundedLoad::with_factor(2, 1.25).expect("valid");
    load.set_weight(0, 3).expect("member");
    let mut tickets = Vec::new();
    for hash in 0..400u64 {
        tickets.push(load.pick(&placement, hash).expect("members"));
        let total = load.total_in_flight();
        // Member 0 may hold ⌈1.25 · total · 3/4⌉, member 1 ⌈1.25 · total / 4⌉.
        assert!(load.in_flight(0) <= (125 * 3 * total).div_ceil(400));
        assert!(load.in_flight(1) <= (125 * total).div_ceil(400));
    }
    // Member 1 is capped near a quarter of the load.
    assert!(load.in_flight(1) <= 126, "{load:?}");
}

#[test]
fn overflow_scans_past_the_candidates() {
    // 40 members and one hot key: after the first 16 candidates fill up, the pick keeps
    // finding members under their cap.
    let placement = Hrw::new(40);
    let load = BoundedLoad::with_factor(40, 1.1).expect("valid");
    let mut tickets = Vec::new();
    for _ in 0..400 {
        tickets.push(load.pick(&placement, 5).expect("members"));
        let total = load.total_in_flight();
        for member in 0..40 {
            assert!(load.in_flight(member) <= cap(10, total, 40));
        }
    }
    let beyond: Vec<usize> = placement.order(5)[MAX_CANDIDATES..].to_vec();
    assert!(beyond.iter().any(|&m| load.in_flight(m) > 0));
}

#[derive(Debug, Clone)]
enum Op {
    Pick(u64),
    Release(usize),
    Remove(usize),
    Push,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u64>().prop_map(|h| Op::Pick(h % 64)),
        4 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => Just(Op::Push),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of picks, releases and membership changes: each pick goes to the first
    /// member of the key's order under its cap (so to its owner whenever the owner has room),
    /// never beyond `⌈c · avg⌉` with the new request in the average, and the counters always
    /// equal the tickets held on current members.
    #[test]
    fn picks_stay_within_the_cap_and_move_only_overflow(
        pct in 1u64..=100,
        start in 1usize..24,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut load = BoundedLoad::with_factor(start, 1.0 + pct as f64 / 100.0).expect("valid");
        let mut placement = Hrw::new(start);
        let mut next_seed = start as u64 + 1;
        // Tickets held, with the seed (identity) of their member.
        let mut held: Vec<(Ticket, u64)> = Vec::new();

        for op in ops {
            match op {
                Op::Pick(hash) => {
                    let n = placement.len();
                    let before: Vec<usize> = (0..n).map(|m| load.in_flight(m)).collect();
                    let total = load.total_in_flight() + 1;
                    let Some(ticket) = load.pick(&placement, hash) else {
                        prop_assert_eq!(n, 0);
                        continue;
                    };
                    let member = ticket.member();
                    let limit = cap(pct, total, n);
                    let had = before[member];
                    prop_assert!(had < limit, "member {member} held {had} of cap {limit}");
                    prop_assert_eq!(load.in_flight(member), before[member] + 1);
                    prop_assert_eq!(load.total_in_flight(), total);
                    // The first candidate with room wins; past the candidates, any with room.
                    let order = placement.order(hash);
                    let candidates = &order[..order.len().min(MAX_CANDIDATES)];
                    match candidates.iter().find(|&&m| before[m] < limit) {
                        Some(&first) => prop_assert_eq!(member, first),
                        None => prop_assert!(!candidates.contains(&member)),
                    }
                    held.push((ticket, placement.seeds[member]));
                }
                Op::Release(i) => {
                    if !held.is_empty() {
                        let i = i % held.len();
                        drop(held.swap_remove(i));
                    }
                }
                Op::Remove(i) => {
                    if !placement.seeds.is_empty() {
                        let i = i % placement.seeds.len();
                        load.remove(i);
                        placement.seeds.remove(i);
                    }
                }
                Op::Push => {
                    if placement.len() < 40 {
                        load.resize(load.len() + 1);
                        placement.seeds.push(fmix64(next_seed));
                        next_seed += 1;
                    }
                }
            }
            // The counters are exactly the tickets held on current members.
            let mut attached = 0;
            for (m, seed) in placement.seeds.iter().enumerate() {
                let on_member = held.iter().filter(|(_, s)| s == seed).count();
                prop_assert_eq!(load.in_flight(m), on_member);
                attached += on_member;
            }
            prop_assert_eq!(load.total_in_flight(), attached);
        }
        drop(held);
        prop_assert_eq!(load.total_in_flight(), 0);
        for m in 0..load.len() {
            prop_assert_eq!(load.in_flight(m), 0);
        }
    }
}

/// A tiny deterministic generator for the threads.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Threads pick and release concurrently. The check-and-increment is one CAS, so a member
/// exceeds the bound computed from the most that can be in flight only through the
/// documented race (all members full for a pick's view of the total), by less than the
/// number of threads; and every count returns to zero.
#[test]
fn counters_under_threads() {
    const THREADS: usize = 4;
    const HELD: usize = 8;
    const MEMBERS: usize = 8;
    let placement = Arc::new(Hrw::new(MEMBERS));
    let load = Arc::new(BoundedLoad::new(MEMBERS));
    // At most THREADS · HELD requests are ever in flight.
    let bound = (125 * THREADS * HELD).div_ceil(100 * MEMBERS) + THREADS - 1;

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (placement, load) = (Arc::clone(&placement), Arc::clone(&load));
            thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1);
                let mut held = VecDeque::new();
                for _ in 0..20_000 {
                    let r = xorshift(&mut rng);
                    if held.len() < HELD && (held.is_empty() || !r.is_multiple_of(3)) {
                        // A few hot keys, so members reach their caps.
                        let ticket = load.pick(&*placement, r % 5).expect("members");
                        let count = load.in_flight(ticket.member());
                        assert!(
                            count <= bound,
                            "member {} at {count} > {bound}",
                            ticket.member()
                        );
                        held.push_back(ticket);
                    } else {
                        held.pop_front();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    assert_eq!(load.total_in_flight(), 0);
    for member in 0..MEMBERS {
        assert_eq!(load.in_flight(member), 0);
    }
}

/// Tickets dropped on other threads while members are removed and added: the total never
/// counts a removed member's requests twice, and everything returns to zero.
#[test]
fn membership_changes_while_tickets_drop_on_threads() {
    const DROPPERS: usize = 3;
    let mut placement = Hrw::new(12);
    let mut load = BoundedLoad::new(12);
    let mut next_seed = 100u64;
    let (senders, droppers): (Vec<_>, Vec<_>) = (0..DROPPERS)
        .map(|_| {
            let (tx, rx) = mpsc::sync_channel::<Ticket>(64);
            let dropper = thread::spawn(move || {
                let mut rng = 0x1234_5678u64;
                let mut held = VecDeque::new();
                for ticket in rx {
                    held.push_back(ticket);
                    while held.len() > (xorshift(&mut rng) % 16) as usize {
                        held.pop_front();
                    }
                }
            });
            (tx, dropper)
        })
        .unzip();

    let mut rng = 42u64;
    for round in 0..20_000u64 {
        let r = xorshift(&mut rng);
        if let Some(ticket) = load.pick(&placement, r % 97) {
            senders[(r % DROPPERS as u64) as usize]
                .send(ticket)
                .expect("dropper alive");
        }
        if round.is_multiple_of(50) {
            if r.is_multiple_of(2) && placement.len() > 1 {
                let i = (r >> 8) as usize % placement.len();
                load.remove(i);
                placement.seeds.remove(i);
            } else if placement.len() < 20 {
                load.resize(load.len() + 1);
                placement.seeds.push(fmix64(next_seed));
                next_seed += 1;
            }
        }
        // The total is never below the counts of the current members (read the total first:
        // only the droppers run meanwhile, and they only lower counts).
        let total = load.total_in_flight();
        let sum: usize = (0..load.len()).map(|m| load.in_flight(m)).sum();
        assert!(sum <= total, "{sum} in flight on members, total {total}");
    }
    drop(senders);
    for dropper in droppers {
        dropper.join().expect("dropper");
    }
    assert_eq!(load.total_in_flight(), 0);
    for member in 0..load.len() {
        assert_eq!(load.in_flight(member), 0);
    }
}
