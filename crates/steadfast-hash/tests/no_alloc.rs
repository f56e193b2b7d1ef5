//! Lookups and replica lookups never allocate, for every algorithm (a counting global
//! allocator, from the `allocation-counter` crate, watches them).

use allocation_counter::measure;
use steadfast_hash::bounded::BoundedLoad;
use steadfast_hash::jump::{Jump, JumpBack};
use steadfast_hash::maglev::Maglev;
use steadfast_hash::memento::Memento;
use steadfast_hash::rendezvous::Rendezvous;
use steadfast_hash::ring::Ring;
use steadfast_hash::{Placement, stable_hash64};

fn members(n: usize) -> Vec<(String, f64)> {
    (0..n)
        .map(|i| (format!("node-{i}"), 1.0 + (i % 3) as f64))
        .collect()
}

/// Looks up 1,000 keys (one-shot hash, owner, and 3 replicas) and counts allocations.
fn assert_no_alloc(name: &str, placement: &dyn Placement) {
    let keys: Vec<String> = (0..1_000).map(|i| format!("user:{i}")).collect();
    let mut out = [0usize; 3];
    let counts = measure(|| {
        for key in &keys {
            let hash = stable_hash64(key.as_str());
            std::hint::black_box(placement.place(hash));
            std::hint::black_box(placement.replicas(hash, &mut out));
        }
    });
    assert_eq!(counts.count_total, 0, "{name} allocated during lookups");
}

#[test]
fn lookups_never_allocate() {
    let ring = Ring::new(members(100)).expect("valid");
    let maglev = Maglev::new(members(100)).expect("valid");
    let hrw = Rendezvous::weighted(members(100)).expect("valid");
    let jump = Jump::new(100).expect("valid");
    let jump_back = JumpBack::new(100).expect("valid");
    let mut memento = Memento::new(100).expect("valid");
    memento.remove(17).expect("working bucket");
    memento.remove(42).expect("working bucket");
    assert_no_alloc("ring", &ring);
    assert_no_alloc("maglev", &maglev);
    assert_no_alloc("rendezvous", &hrw);
    assert_no_alloc("jump", &jump);
    assert_no_alloc("jump back", &jump_back);
    assert_no_alloc("memento", &memento);

    // Member lookups by key too.
    let counts = measure(|| {
        for i in 0..1_000u64 {
            std::hint::black_box(ring.get(&i));
            std::hint::black_box(maglev.get(&i));
            std::hint::black_box(hrw.get(&i));
        }
    });
    assert_eq!(counts.count_total, 0);

    // Bounded loads: picking and releasing tickets.
    let load = BoundedLoad::new(100);
    let counts = measure(|| {
        for i in 0..1_000u64 {
            let ticket = load.pick(&maglev, stable_hash64(&i));
            std::hint::black_box(&ticket);
        }
    });
    assert_eq!(counts.count_total, 0, "bounded load allocated");
}

#[test]
fn the_counter_does_see_allocations() {
    // Guards the test above against a counter that never counts.
    let counts = measure(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert!(counts.count_total >= 1);
}
