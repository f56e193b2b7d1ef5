//! MementoHash: minimal disruption on arbitrary removal, LIFO restore, determinism, balance.

use proptest::prelude::*;
use steadfast_hash::jump::jump_back;
use steadfast_hash::memento::Memento;
use steadfast_hash::stable::fmix64;
use steadfast_hash::{BuildError, Placement, stable_hash64};

fn sample_hashes(count: u64) -> Vec<u64> {
    (0..count).map(|k| stable_hash64(&k)).collect()
}

fn placement(m: &Memento, hashes: &[u64]) -> Vec<Option<u32>> {
    hashes.iter().map(|&h| m.get(h)).collect()
}

/// Removing `bucket` moves exactly the keys that were on it, each to a working bucket.
fn assert_minimal_removal(before: &[Option<u32>], after: &[Option<u32>], bucket: u32, m: &Memento) {
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        if *b == Some(bucket) {
            if m.is_empty() {
                assert_eq!(*a, None);
            } else {
                let a = a.expect("working buckets remain");
                assert_ne!(a, bucket, "key {i} still on removed bucket");
                assert!(m.is_working(a), "key {i} moved to non-working {a}");
            }
        } else {
            assert_eq!(b, a, "key {i} moved although its bucket {b:?} stayed");
        }
    }
}

#[test]
fn no_removals_is_jump_back() {
    let m = Memento::new(37).unwrap();
    for h in sample_hashes(10_000) {
        assert_eq!(m.get(h), jump_back(h, 37));
        assert_eq!(m.place(h), jump_back(h, 37).map(|b| b as usize));
    }
}

#[test]
fn remove_moves_only_that_buckets_keys_and_add_restores_them() {
    let hashes = sample_hashes(20_000);
    let mut m = Memento::new(10).unwrap();
    let mut history = vec![(m.clone(), placement(&m, &hashes))];
    for bucket in [3, 7, 0, 9, 8, 5] {
        let before = placement(&m, &hashes);
        m.remove(bucket).unwrap();
        assert_minimal_removal(&before, &placement(&m, &hashes), bucket, &m);
        history.push((m.clone(), placement(&m, &hashes)));
    }
    assert_eq!(m.len(), 4);
    assert_eq!(m.removed().collect::<Vec<_>>(), [5, 8, 9, 0, 7, 3]);
    history.pop();
    for want in [5, 8, 9, 0, 7, 3] {
        assert_eq!(m.add(), Ok(want));
        let (state, keys) = history.pop().unwrap();
        assert_eq!(m, state, "state after restoring {want}");
        assert_eq!(
            placement(&m, &hashes),
            keys,
            "placement after restoring {want}"
        );
    }
    // Nothing removed: grows at the end, like jump_back.
    assert_eq!(m.add(), Ok(10));
    assert_eq!(m.len(), 11);
    for &h in &hashes {
        assert_eq!(m.get(h), jump_back(h, 11));
    }
}

#[test]
fn errors_and_empty() {
    assert_eq!(Memento::new(0), Err(BuildError::NoMembers));
    let mut m = Memento::new(3).unwrap();
    assert_eq!(m.remove(3), Err(BuildError::UnknownMember));
    m.remove(1).unwrap();
    assert_eq!(m.remove(1), Err(BuildError::UnknownMember));
    m.remove(0).unwrap();
    m.remove(2).unwrap();
    assert!(m.is_empty());
    assert_eq!(Placement::len(&m), 0);
    assert_eq!(m.get(42), None);
    assert_eq!(m.place(42), None);
    assert_eq!(m.replicas(42, &mut [0; 2]), 0);
    assert_eq!(m.add(), Ok(2));
    assert_eq!(m.get(42), Some(2));
    assert_eq!(m.add(), Ok(0));
    assert_eq!(m.add(), Ok(1));
    assert_eq!(m, Memento::new(3).unwrap());

    // Removing the last bucket with nothing removed shrinks the range, like jump_back.
    let mut m = Memento::new(1).unwrap();
    m.remove(0).unwrap();
    assert_eq!((m.bucket_range(), m.len()), (0, 0));
    assert_eq!(m.get(7), None);
    assert_eq!(m.add(), Ok(0));
    assert_eq!(m, Memento::new(1).unwrap());
}

#[test]
fn dense_indices() {
    let mut m = Memento::new(8).unwrap();
    for b in [2, 5, 6] {
        m.remove(b).unwrap();
    }
    let working: Vec<u32> = (0..8).filter(|&b| m.is_working(b)).collect();
    assert_eq!(working, [0, 1, 3, 4, 7]);
    for (i, &b) in working.iter().enumerate() {
        assert_eq!(m.index_of(b), Some(i));
        assert_eq!(m.bucket_at(i), Some(b));
    }
    assert_eq!(m.index_of(2), None);
    assert_eq!(m.index_of(8), None);
    assert_eq!(m.bucket_at(5), None);
    for h in sample_hashes(5_000) {
        let bucket = m.get(h).unwrap();
        assert_eq!(m.place(h), m.index_of(bucket));
    }
}

/// n=100 with 20 removed, 10⁶ keys: the 80 working buckets are at the noise floor.
#[test]
fn balance_over_working_buckets() {
    const KEYS: u64 = 1_000_000;
    let mut m = Memento::new(100).unwrap();
    // A fixed pseudo-random choice of 20 buckets.
    let mut removed = 0;
    let mut i = 0u64;
    while removed < 20 {
        i += 1;
        let b = (fmix64(i) % 100) as u32;
        if m.remove(b).is_ok() {
            removed += 1;
        }
    }
    let mut counts = vec![0u64; 100];
    for k in 0..KEYS {
        counts[m.get(stable_hash64(&k)).unwrap() as usize] += 1;
    }
    let working: Vec<u64> = (0..100u32)
        .filter(|&b| m.is_working(b))
        .map(|b| counts[b as usize])
        .collect();
    assert_eq!(working.len(), 80);
    assert_eq!(
        working.iter().sum::<u64>(),
        KEYS,
        "removed buckets got keys"
    );
    let mean = KEYS as f64 / 80.0;
    let stddev = (working
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / 80.0)
        .sqrt()
        / mean;
    let peak = *working.iter().max().unwrap() as f64 / mean;
    let floor = (80.0 / KEYS as f64).sqrt();
    println!(
        "memento n=100, 20 removed: peak/mean {peak:.4}, stddev/mean {stddev:.4} (floor {floor:.4})"
    );
    assert!(
        stddev <= 1.2 * floor,
        "stddev/mean {stddev} vs floor {floor}"
    );
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Remove the working bucket at this position (modulo the working count).
    Remove(usize),
    Add,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![3 => any::<usize>().prop_map(Op::Remove), 2 => Just(Op::Add)],
        0..60,
    )
}

fn apply(m: &mut Memento, op: Op) -> Option<u32> {
    match op {
        Op::Remove(pos) if !m.is_empty() => {
            let bucket = m.bucket_at(pos % m.len()).unwrap();
            m.remove(bucket).unwrap();
            Some(bucket)
        }
        Op::Remove(_) => None,
        Op::Add => {
            m.add().unwrap();
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any history: removals move only the removed bucket's keys; adds undo the last
    /// removal exactly (state and placement) or grow the range consistently.
    #[test]
    fn histories_are_minimal_and_reversible(n in 1u32..64, ops in ops()) {
        let hashes = sample_hashes(2_000);
        let mut m = Memento::new(n).unwrap();
        let mut undo: Vec<Memento> = Vec::new();
        for op in ops {
            let before_state = m.clone();
            let before = placement(&m, &hashes);
            match apply(&mut m, op) {
                Some(bucket) => {
                    assert_minimal_removal(&before, &placement(&m, &hashes), bucket, &m);
                    undo.push(before_state);
                }
                None if matches!(op, Op::Add) => match undo.pop() {
                    Some(previous) => {
                        prop_assert_eq!(&m, &previous);
                    }
                    None => {
                        // Grew at the end: keys stay or move to the new bucket.
                        let added = m.bucket_range() - 1;
                        for (b, a) in before.iter().zip(placement(&m, &hashes)) {
                            prop_assert!(*b == a || a == Some(added));
                        }
                    }
                },
                None => {}
            }
            prop_assert_eq!(m.removed_len() + m.len(), m.bucket_range() as usize);
            for h in hashes.iter().take(200) {
                if let Some(b) = m.get(*h) {
                    prop_assert!(m.is_working(b));
                    prop_assert!(m.place(*h).unwrap() < m.len());
                }
            }
        }
    }

    /// Replaying the same history gives identical state (no per-process randomness).
    #[test]
    fn replay_is_deterministic(n in 1u32..64, ops in ops()) {
        let (mut a, mut b) = (Memento::new(n).unwrap(), Memento::new(n).unwrap());
        for &op in &ops {
            apply(&mut a, op);
        }
        for &op in &ops {
            apply(&mut b, op);
        }
        prop_assert_eq!(&a, &b);
        for h in sample_hashes(500) {
            prop_assert_eq!(a.get(h), b.get(h));
        }
    }

    #[test]
    fn replicas_are_distinct_working_indices(n in 1u32..40, ops in ops(), hash in any::<u64>(), k in 0usize..10) {
        let mut m = Memento::new(n).unwrap();
        for op in ops {
            apply(&mut m, op);
        }
        let mut out = vec![usize::MAX; k];
        let written = m.replicas(hash, &mut out);
        prop_assert_eq!(written, k.min(m.len()));
        let got = &out[..written];
        if written > 0 {
            prop_assert_eq!(Some(got[0]), m.place(hash));
        }
        prop_assert!(got.iter().all(|&i| i < m.len()));
        let mut sorted = got.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), written);
    }
}

/// A removal changes only replicas that were on the removed bucket, or that a collision
/// with the newly drawn replacement pushes down.
#[test]
fn replicas_move_little_on_removal() {
    const KEYS: u64 = 20_000;
    let a = Memento::new(50).unwrap();
    let mut b = a.clone();
    b.remove(17).unwrap();
    let mut changed = 0;
    for k in 0..KEYS {
        let h = stable_hash64(&k);
        let (mut x, mut y) = ([0; 3], [0; 3]);
        a.replicas(h, &mut x);
        b.replicas(h, &mut y);
        // Compare bucket numbers, not dense indices.
        let x = x.map(|i| a.bucket_at(i).unwrap());
        let y = y.map(|i| b.bucket_at(i).unwrap());
        assert!(!y.contains(&17));
        if !x.contains(&17) {
            assert_eq!(x, y, "key {k}: replicas changed although none was on 17");
        }
        changed += x.iter().zip(&y).filter(|(p, q)| p != q).count();
    }
    let rate = changed as f64 / (3 * KEYS) as f64;
    assert!(rate < 1.5 / 50.0, "replica change rate {rate}");
}

#[cfg(feature = "serde")]
mod serde_state {
    use super::*;

    #[test]
    fn round_trip_keeps_history() {
        let mut m = Memento::new(10).unwrap();
        for b in [3, 7, 0] {
            m.remove(b).unwrap();
        }
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"buckets":10,"removed":[3,7,0]}"#);
        let mut back: Memento = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!((back.add(), m.add()), (Ok(0), Ok(0)));
        assert_eq!(back, m);

        // Shrunk ranges round-trip too.
        let mut m = Memento::new(4).unwrap();
        m.remove(3).unwrap();
        m.remove(0).unwrap();
        let back: Memento = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn invalid_states_are_rejected() {
        for json in [
            r#"{"buckets":3,"removed":[1,1]}"#,
            r#"{"buckets":3,"removed":[3]}"#,
            r#"{"buckets":3,"removed":[2]}"#,
            r#"{"buckets":1,"removed":[0,0]}"#,
        ] {
            assert!(serde_json::from_str::<Memento>(json).is_err(), "{json}");
        }
        let ok: Memento = serde_json::from_str(r#"{"buckets":0,"removed":[]}"#).unwrap();
        assert!(ok.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_history_round_trips(n in 1u32..64, ops in ops()) {
            let mut m = Memento::new(n).unwrap();
            for op in ops {
                apply(&mut m, op);
            }
            let back: Memento = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            prop_assert_eq!(back, m);
        }
    }
}
