//! Jump consistent hash and JumpBackHash: golden vectors, consistency, balance, no panics.

use proptest::prelude::*;
use steadfast_hash::jump::{Jump, JumpBack, jump, jump_back};
use steadfast_hash::{BuildError, Placement, stable_hash64};

/// Guava's `HashingTest.testConsistentHash_linearCongruentialGeneratorCompatibility`, also
/// used by go-jump and the C ports: the paper's algorithm across languages.
#[test]
fn jump_golden_vectors() {
    let golden100 = [
        0, 55, 62, 8, 45, 59, 86, 97, 82, 59, 73, 37, 17, 56, 86, 21, 90, 37, 38, 83,
    ];
    for (key, want) in golden100.into_iter().enumerate() {
        assert_eq!(jump(key as u64, 100), Some(want), "key {key}");
    }
    let cases: [(u64, u32, u32); 6] = [
        (10_863_919_174_838_991, 11, 6),
        (2_016_238_256_797_177_309, 11, 3),
        (1_673_758_223_894_951_030, 11, 5),
        (2, 100_001, 80_343),
        (2201, 100_001, 22_152),
        (2202, 100_001, 15_018),
    ];
    for (key, n, want) in cases {
        assert_eq!(jump(key, n), Some(want), "jump({key}, {n})");
    }
}

const JB_BUCKETS: [u32; 10] = [2, 3, 10, 17, 100, 1000, 1025, 65_537, 1 << 20, 0x7fff_ffff];

/// Computed by a Java transliteration of hash4j's `AbstractConsistentJumpBackBucketHasher`
/// with SplitMix64 (Java's signed ints and `>>>`), run independently of this crate.
const JB_GOLDEN: [(u64, [u32; 10]); 8] = [
    (
        0x0000_0000_0000_0000,
        [0, 0, 7, 7, 25, 313, 313, 19887, 567_353, 454_938_031],
    ),
    (
        0x0000_0000_0000_0001,
        [1, 1, 5, 12, 33, 492, 492, 23745, 667_116, 285_879_788],
    ),
    (
        0x0000_0000_0000_0002,
        [0, 0, 0, 0, 30, 990, 990, 30174, 538_078, 211_244_750],
    ),
    (
        0x0000_0000_0000_002a,
        [1, 2, 3, 3, 53, 166, 166, 29222, 995_878, 500_642_342],
    ),
    (
        0xffff_ffff_ffff_ffff,
        [1, 2, 7, 16, 73, 288, 288, 27680, 863_264, 1_533_357_088],
    ),
    (
        0x0123_4567_89ab_cdef,
        [0, 2, 3, 13, 23, 519, 519, 47111, 407_559, 613_395_101],
    ),
    (
        0x9e37_79b9_7f4a_7c15,
        [0, 2, 8, 10, 20, 618, 618, 58868, 106_090, 1_639_540_212],
    ),
    (
        0xdead_beef_cafe_babe,
        [0, 0, 6, 6, 6, 854, 854, 37718, 338_386, 5_843_410],
    ),
];

#[test]
fn jump_back_golden_vectors() {
    for (key, wants) in JB_GOLDEN {
        for (n, want) in JB_BUCKETS.into_iter().zip(wants) {
            assert_eq!(jump_back(key, n), Some(want), "jump_back({key:#x}, {n})");
        }
    }
}

/// Java's `java.util.SplittableRandom`, to replay the reference's checksum input stream.
struct SplittableRandom(u64);

impl SplittableRandom {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    fn next_seed(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        self.0
    }

    fn next_long(&mut self) -> u64 {
        let mut z = self.next_seed();
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_int(&mut self) -> u32 {
        let mut z = self.next_seed();
        z = (z ^ (z >> 33)).wrapping_mul(0x62a9_d9ed_7997_05f5);
        ((z ^ (z >> 28)).wrapping_mul(0xcb24_d0a5_c88c_35b3) >> 32) as u32
    }
}

/// hash4j's checksum stream (1M random bucket counts over the whole `int` range, heavily
/// skewed to small ones, and random hashes), folded with `acc * 31 + bucket` by the same
/// Java transliteration.
#[test]
fn jump_back_matches_reference_over_random_inputs() {
    let mut random = SplittableRandom(0x0a55_871a_9d91_03b7);
    let mut acc = 0u64;
    for _ in 0..1_000_000 {
        let a = random.next_int() >> 1;
        let s = random.next_int() & 31;
        let n = (a >> s).max(1);
        let hash = random.next_long();
        let bucket = jump_back(hash, n).expect("n >= 1");
        acc = acc.wrapping_mul(31).wrapping_add(u64::from(bucket));
    }
    assert_eq!(acc, 0x61fc_5812_ca56_66b5);
}

#[test]
fn zero_buckets_is_none_and_one_is_zero() {
    for h in [0, 1, u64::MAX, 0x1234_5678] {
        assert_eq!(jump(h, 0), None);
        assert_eq!(jump_back(h, 0), None);
        assert_eq!(jump(h, 1), Some(0));
        assert_eq!(jump_back(h, 1), Some(0));
    }
}

/// Keys either stay or move to the new bucket when the count grows by one, for every count
/// up to 2000.
#[test]
fn growing_moves_keys_only_to_the_new_bucket() {
    for key in 0..200u64 {
        let h = stable_hash64(&key);
        let (mut prev_j, mut prev_jb) = (0, 0);
        for n in 1..=2000u32 {
            let (j, jb) = (jump(h, n).unwrap(), jump_back(h, n).unwrap());
            assert!(j == prev_j || j == n - 1, "jump key {key} n {n}");
            assert!(jb == prev_jb || jb == n - 1, "jump_back key {key} n {n}");
            (prev_j, prev_jb) = (j, jb);
        }
    }
}

#[test]
fn about_one_in_n_plus_one_keys_move() {
    const KEYS: u64 = 200_000;
    for n in [10u32, 100, 1000] {
        for (name, f) in [
            ("jump", jump as fn(u64, u32) -> Option<u32>),
            ("jump_back", jump_back),
        ] {
            let moved = (0..KEYS)
                .map(|k| stable_hash64(&k))
                .filter(|&h| f(h, n) != f(h, n + 1))
                .count() as f64;
            let expected = KEYS as f64 / f64::from(n + 1);
            // Binomial: 4 standard deviations (plus slack for small expectations).
            let tolerance = 4.0 * expected.sqrt() + 1.0;
            assert!(
                (moved - expected).abs() <= tolerance,
                "{name} n={n}: moved {moved}, expected {expected:.0} ± {tolerance:.0}"
            );
        }
    }
}

/// (peak/mean, stddev/mean) of per-bucket counts.
fn balance(counts: &[u64]) -> (f64, f64) {
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<u64>() as f64 / n;
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let peak = *counts.iter().max().unwrap() as f64;
    (peak / mean, var.sqrt() / mean)
}

/// n=100, 10⁶ keys: the spread is at the sampling-noise floor sqrt(n/keys) = 1.0%.
#[test]
fn balance_is_at_the_noise_floor() {
    const KEYS: u64 = 1_000_000;
    const N: u32 = 100;
    let floor = (f64::from(N) / KEYS as f64).sqrt();
    for (name, f) in [
        ("jump", jump as fn(u64, u32) -> Option<u32>),
        ("jump_back", jump_back),
    ] {
        let mut counts = vec![0u64; N as usize];
        for k in 0..KEYS {
            counts[f(stable_hash64(&k), N).unwrap() as usize] += 1;
        }
        let (peak, stddev) = balance(&counts);
        println!(
            "{name} n={N} keys={KEYS}: peak/mean {peak:.4}, stddev/mean {stddev:.4} (floor {floor:.4})"
        );
        assert!(
            stddev <= 1.2 * floor,
            "{name}: stddev/mean {stddev} > 1.2 × {floor}"
        );
    }
}

/// n just above a power of two is JumpBackHash's hardest case (most redraws): still uniform.
#[test]
fn jump_back_balance_above_a_power_of_two() {
    const KEYS: u64 = 400_000;
    for n in [17u32, 33, 129] {
        let mut counts = vec![0u64; n as usize];
        for k in 0..KEYS {
            counts[jump_back(stable_hash64(&k), n).unwrap() as usize] += 1;
        }
        let (peak, stddev) = balance(&counts);
        let floor = (f64::from(n) / KEYS as f64).sqrt();
        println!(
            "jump_back n={n}: peak/mean {peak:.4}, stddev/mean {stddev:.4} (floor {floor:.4})"
        );
        assert!(stddev <= 1.35 * floor, "n={n}: {stddev} vs floor {floor}");
    }
}

fn bucket_counts() -> impl Strategy<Value = u32> {
    prop_oneof![
        1u32..=(1 << 20),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just((1 << 31) + 1),
        Just(1 << 31),
        Just((1 << 31) - 1),
        (1u32 << 20)..=u32::MAX,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any key and any count: no panic (debug overflow checks are on in tests), result < n.
    #[test]
    fn results_are_in_range(hash in any::<u64>(), n in bucket_counts()) {
        prop_assert!(jump(hash, n).unwrap() < n);
        prop_assert!(jump_back(hash, n).unwrap() < n);
    }

    /// Consistency for arbitrary counts, including ones Java cannot express (≥ 2^31).
    #[test]
    fn growing_by_one_is_consistent(hash in any::<u64>(), n in bucket_counts()) {
        prop_assume!(n < u32::MAX);
        for f in [jump as fn(u64, u32) -> Option<u32>, jump_back] {
            let (before, after) = (f(hash, n).unwrap(), f(hash, n + 1).unwrap());
            prop_assert!(after == before || after == n, "n {} before {} after {}", n, before, after);
        }
    }

    #[test]
    fn replicas_are_distinct_and_start_with_the_owner(
        hash in any::<u64>(),
        n in 1u32..40,
        k in 0usize..12,
    ) {
        let placements: [&dyn Placement; 2] = [&JumpBack::new(n).unwrap(), &Jump::new(n).unwrap()];
        for p in placements {
            let mut out = vec![usize::MAX; k];
            let written = p.replicas(hash, &mut out);
            prop_assert_eq!(written, k.min(n as usize));
            let got = &out[..written];
            if written > 0 {
                prop_assert_eq!(Some(got[0]), p.place(hash));
            }
            prop_assert!(got.iter().all(|&b| b < n as usize));
            let mut sorted = got.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), written);
            // A longer buffer extends the same preference order.
            let mut longer = vec![usize::MAX; k + 3];
            let more = p.replicas(hash, &mut longer);
            prop_assert_eq!(&longer[..written], got);
            prop_assert_eq!(more, (k + 3).min(n as usize));
        }
    }
}

#[test]
fn placement_types() {
    assert_eq!(JumpBack::new(0), Err(BuildError::NoMembers));
    assert_eq!(Jump::new(0), Err(BuildError::NoMembers));
    let mut p = JumpBack::new(10).unwrap();
    assert_eq!(p.len(), 10);
    for k in 0..1000u64 {
        let h = stable_hash64(&k);
        assert_eq!(p.place(h), jump_back(h, 10).map(|b| b as usize));
        assert_eq!(p.get_by_key(&k), p.get(h));
    }
    let q = Jump::new(100_001).unwrap();
    assert_eq!(q.get(2201), Some(22_152));
    p.resize(0);
    assert!(p.is_empty());
    assert_eq!(p.place(1), None);
    assert_eq!(p.replicas(1, &mut [0; 3]), 0);
}

/// The replica ranks are each consistent: growing by one changes few replica sets.
#[test]
fn replicas_move_little_when_growing() {
    const KEYS: u64 = 20_000;
    let (a, b) = (JumpBack::new(50).unwrap(), JumpBack::new(51).unwrap());
    let mut changed = 0;
    for k in 0..KEYS {
        let h = stable_hash64(&k);
        let (mut x, mut y) = ([0; 3], [0; 3]);
        a.replicas(h, &mut x);
        b.replicas(h, &mut y);
        changed += x.iter().zip(&y).filter(|(p, q)| p != q).count();
        // The owner either stays or moves to the new bucket 50.
        assert!(x[0] == y[0] || y[0] == 50, "key {k}: {x:?} -> {y:?}");
    }
    // Each of 3 ranks moves with probability ≈ 1/51, plus rare knock-on changes.
    let rate = changed as f64 / (3 * KEYS) as f64;
    assert!(rate < 1.5 / 51.0, "replica change rate {rate}");
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip() {
    let p = JumpBack::new(12).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, r#"{"buckets":12}"#);
    assert_eq!(serde_json::from_str::<JumpBack>(&json).unwrap(), p);
}
