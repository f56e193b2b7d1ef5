//! Rendezvous (HRW): minimal disruption, replicas, weighted shares, top-k = full sort.

use proptest::prelude::*;
use steadfast_hash::rendezvous::Rendezvous;
use steadfast_hash::stable::fmix64;
use steadfast_hash::{BuildError, Placement, moves, stable_hash64};

fn hashes(count: u64) -> impl Iterator<Item = u64> {
    (0..count).map(|k| stable_hash64(&k))
}

/// The documented ranking, computed independently: highest `-w / ln(u)` (skipped when all
/// weights are equal), then highest raw score, then earliest member.
fn full_ranking(ids: &[u64], weights: &[f64], hash: u64) -> Vec<usize> {
    let uniform = weights.windows(2).all(|w| w[0] == w[1]);
    let key = |i: usize| {
        let raw = fmix64(hash ^ stable_hash64(&ids[i]));
        let u = ((raw >> 11) | 1) as f64 / 2f64.powi(53);
        let weighted = if uniform { 0.0 } else { -weights[i] / u.ln() };
        (weighted, raw)
    };
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| key(b).partial_cmp(&key(a)).unwrap().then(a.cmp(&b)));
    order
}

#[test]
fn adding_moves_keys_only_to_the_new_member() {
    let before = Rendezvous::new(0..10u64).unwrap();
    let mut after = before.clone();
    after.add(10).unwrap();
    let moved: Vec<_> = moves(&before, &after, hashes(50_000)).collect();
    assert!(moved.iter().all(|m| m.to == Some(10)));
    let share = moved.len() as f64 / 50_000.0;
    assert!((share - 1.0 / 11.0).abs() < 0.01, "moved {share}");
}

#[test]
fn removing_moves_only_its_keys() {
    let before = Rendezvous::new(["a", "b", "c", "d", "e"]).unwrap();
    let mut after = before.clone();
    assert_eq!(after.remove(&"c"), Ok(2));
    assert_eq!(after.members(), ["a", "b", "d", "e"]);
    for h in hashes(50_000) {
        let (was, now) = (
            before.get_by_hash(h).unwrap(),
            after.get_by_hash(h).unwrap(),
        );
        if *was != "c" {
            assert_eq!(was, now);
        } else {
            // The runner-up takes over.
            let mut top = [0; 2];
            before.replicas(h, &mut top);
            assert_eq!(*now, before.members()[top[1]]);
        }
    }
}

#[test]
fn weighted_shares_match_weights() {
    const KEYS: u64 = 1_000_000;
    let r = Rendezvous::weighted([("w1", 1.0), ("w2", 2.0), ("w3", 3.0), ("w4", 4.0)]).unwrap();
    let mut counts = [0u64; 4];
    for h in hashes(KEYS) {
        counts[r.place(h).unwrap()] += 1;
    }
    for (i, &c) in counts.iter().enumerate() {
        let share = c as f64 / KEYS as f64;
        let want = (i + 1) as f64 / 10.0;
        println!(
            "weight {}: share {share:.5} (want {want}, ratio {:.4})",
            i + 1,
            share / want
        );
        assert!(
            (share / want - 1.0).abs() < 0.01,
            "weight {}: share {share}",
            i + 1
        );
    }
}

#[test]
fn unweighted_balance_is_at_the_noise_floor() {
    const KEYS: u64 = 1_000_000;
    let r = Rendezvous::new(0..10u32).unwrap();
    let mut counts = [0u64; 10];
    for h in hashes(KEYS) {
        counts[r.place(h).unwrap()] += 1;
    }
    let mean = KEYS as f64 / 10.0;
    let stddev = (counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / 10.0)
        .sqrt()
        / mean;
    let peak = *counts.iter().max().unwrap() as f64 / mean;
    let floor = (10.0 / KEYS as f64).sqrt();
    println!("rendezvous n=10: peak/mean {peak:.4}, stddev/mean {stddev:.4} (floor {floor:.4})");
    assert!(stddev <= 1.5 * floor, "{stddev} vs {floor}");
}

#[test]
fn equal_weights_place_like_unweighted() {
    let plain = Rendezvous::new(["a", "b", "c"]).unwrap();
    let heavy = Rendezvous::weighted([("a", 2.5), ("b", 2.5), ("c", 2.5)]).unwrap();
    // Same members with unequal weights take the `ln` path; scaling all weights keeps it.
    let uneven = Rendezvous::weighted([("a", 1.0), ("b", 2.0), ("c", 3.0)]).unwrap();
    let scaled = Rendezvous::weighted([("a", 4.0), ("b", 8.0), ("c", 12.0)]).unwrap();
    for h in hashes(20_000) {
        assert_eq!(plain.place(h), heavy.place(h));
        assert_eq!(uneven.place(h), scaled.place(h));
    }
}

#[test]
fn errors_and_empty() {
    assert_eq!(Rendezvous::<u32>::new([]), Err(BuildError::NoMembers));
    assert_eq!(
        Rendezvous::new(["a", "b", "a"]),
        Err(BuildError::DuplicateMember { index: 2 })
    );
    for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            Rendezvous::weighted([("a", 1.0), ("b", w)]),
            Err(BuildError::InvalidWeight { index: 1, .. })
        ));
    }
    let mut r = Rendezvous::new(["a"]).unwrap();
    assert_eq!(r.add("a"), Err(BuildError::DuplicateMember { index: 1 }));
    assert_eq!(r.remove(&"z"), Err(BuildError::UnknownMember));
    assert_eq!(r.get("k"), Some(&"a"));
    r.remove(&"a").unwrap();
    assert!(r.is_empty());
    assert_eq!(r.get("k"), None);
    assert_eq!(r.replicas(1, &mut [0; 3]), 0);
    assert_eq!(r.add_weighted("b", 2.0), Ok(0));
    assert_eq!(r.index_of(&"b"), Some(0));
    assert_eq!(r.weights(), [2.0]);
}

#[test]
fn get_by_key_and_index_agree() {
    let r = Rendezvous::weighted([("x".to_string(), 1.0), ("y".to_string(), 3.0)]).unwrap();
    for k in 0..1000u32 {
        let h = stable_hash64(&k);
        assert_eq!(r.get(&k), r.get_by_hash(h));
        assert_eq!(r.get(&k), r.index_by_hash(h).map(|i| &r.members()[i]));
    }
}

fn members() -> impl Strategy<Value = (Vec<u64>, Vec<f64>)> {
    (1usize..40).prop_flat_map(|n| {
        (
            proptest::collection::hash_set(any::<u64>(), n).prop_map(|s| {
                let mut v: Vec<u64> = s.into_iter().collect();
                v.sort_unstable();
                v
            }),
            prop_oneof![
                Just(vec![1.0; n]),
                proptest::collection::vec(0.01f64..100.0, n),
                proptest::collection::vec(prop_oneof![Just(1.0), Just(2.0)], n),
            ],
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Partial selection returns exactly the first k of a full sort, for every k.
    #[test]
    fn top_k_is_the_prefix_of_a_full_sort((ids, weights) in members(), hash in any::<u64>()) {
        let r = Rendezvous::weighted(ids.iter().copied().zip(weights.iter().copied())).unwrap();
        let full = full_ranking(&ids, &weights, hash);
        for k in 0..=ids.len() + 2 {
            let mut out = vec![usize::MAX; k];
            let written = r.replicas(hash, &mut out);
            prop_assert_eq!(written, k.min(ids.len()));
            prop_assert_eq!(&out[..written], &full[..written], "k = {}", k);
        }
        prop_assert_eq!(r.place(hash), Some(full[0]));
        let mut out = vec![0; 3];
        let written = Placement::replicas(&r, hash, &mut out);
        prop_assert_eq!(&out[..written], &full[..written]);
    }

    /// Replicas are distinct and start with the owner.
    #[test]
    fn replicas_are_distinct((ids, weights) in members(), hash in any::<u64>(), k in 0usize..8) {
        let r = Rendezvous::weighted(ids.into_iter().zip(weights)).unwrap();
        let mut out = vec![usize::MAX; k];
        let written = r.replicas(hash, &mut out);
        let got = &out[..written];
        if written > 0 {
            prop_assert_eq!(Some(got[0]), r.place(hash));
        }
        let mut sorted = got.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), written);
    }
}

#[cfg(feature = "serde")]
mod serde_state {
    use super::*;

    #[test]
    fn round_trip_rebuilds_hashes() {
        let r = Rendezvous::weighted([("a".to_string(), 1.0), ("b".to_string(), 2.5)]).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"ids":["a","b"],"weights":[1.0,2.5]}"#);
        let back: Rendezvous<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        for h in hashes(1000) {
            assert_eq!(back.place(h), r.place(h));
        }
        let empty: Rendezvous<String> = serde_json::from_str(r#"{"ids":[],"weights":[]}"#).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn invalid_membership_is_rejected() {
        for json in [
            r#"{"ids":["a","a"],"weights":[1.0,1.0]}"#,
            r#"{"ids":["a","b"],"weights":[1.0,0.0]}"#,
            r#"{"ids":["a","b"],"weights":[1.0,-2.0]}"#,
            r#"{"ids":["a","b"],"weights":[1.0]}"#,
        ] {
            let err = serde_json::from_str::<Rendezvous<String>>(json).unwrap_err();
            assert!(err.to_string().contains("rendezvous"), "{json}: {err}");
        }
    }
}
