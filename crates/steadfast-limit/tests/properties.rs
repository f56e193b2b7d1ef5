//! Properties of the limit algorithms, over random configurations and sample sequences.

use std::time::Duration;

use proptest::prelude::*;
use steadfast_limit::algorithm::{
    Aimd, Gradient2, LevelProfile, LimitAlgorithm, Little, Sample, Vegas,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Up to 200 requests at random admission levels (up to 64) and RTTs (up to 2 s), in a
/// profile sized for a random limit.
fn profile() -> impl Strategy<Value = (LevelProfile, Vec<(usize, u64)>)> {
    (
        1usize..200,
        prop::collection::vec((0usize..64, 1u64..2_000_000), 0..200),
    )
        .prop_map(|(limit, requests)| {
            let mut profile = LevelProfile::for_limit(limit);
            for &(level, micros) in &requests {
                profile.record(level, Duration::from_micros(micros));
            }
            (profile, requests)
        })
}

/// A random sample: RTT 1 ms to 2 s, up to 500 in flight, dropped one time in five, a
/// window of up to 2 s with up to 1000 successes, and a random level profile.
fn sample() -> impl Strategy<Value = Sample> {
    (
        1u64..2_000,
        0usize..500,
        prop::bool::weighted(0.2),
        0u64..2_000,
        0usize..1_000,
        profile(),
    )
        .prop_map(
            |(rtt, in_flight, dropped, window, successes, (profile, _))| {
                Sample::new(ms(rtt), in_flight, dropped)
                    .with_window(ms(window), successes)
                    .with_profile(profile)
            },
        )
}

/// `(min, initial, max)` with `1 <= min <= initial <= max <= 1000`.
fn bounds() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..100, 0usize..200, 0usize..800).prop_map(|(min, a, b)| (min, min + a, min + a + b))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Aimd,
    Vegas,
    Gradient2,
    Little,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Aimd),
        Just(Kind::Vegas),
        Just(Kind::Gradient2),
        Just(Kind::Little)
    ]
}

/// One of the algorithms with bounds, with their default parameters and random bounds; Vegas'
/// smoothing stays at its default of 1 (none), under which its steps are whole.
fn algorithm(
    kind: Kind,
    (min, initial, max): (usize, usize, usize),
    seed: u64,
) -> Box<dyn LimitAlgorithm> {
    let algorithm: Box<dyn LimitAlgorithm> = match kind {
        Kind::Aimd => Box::new(
            Aimd::new()
                .min_limit(min)
                .initial_limit(initial)
                .max_limit(max),
        ),
        Kind::Vegas => Box::new(
            Vegas::new()
                .seed(seed)
                .min_limit(min)
                .initial_limit(initial)
                .max_limit(max),
        ),
        Kind::Gradient2 => Box::new(
            Gradient2::new()
                .min_limit(min)
                .initial_limit(initial)
                .max_limit(max),
        ),
        Kind::Little => Box::new(
            Little::new()
                .min_limit(min)
                .initial_limit(initial)
                .max_limit(max),
        ),
    };
    algorithm.validate().expect("valid bounds");
    algorithm
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A profile keeps every request, in the bucket of its level, in level order, and each
    /// bucket's mean lies between the fastest and slowest of its requests.
    #[test]
    fn level_profiles_keep_every_request_in_its_bucket((profile, requests) in profile()) {
        prop_assert_eq!(profile.count(), requests.len() as u64);
        let mut previous_last = 0;
        for bucket in profile.buckets() {
            prop_assert!(bucket.first > previous_last);
            previous_last = bucket.last;
            let last_bucket = bucket.first + profile.width() > LevelProfile::BUCKETS * profile.width();
            let mine: Vec<u64> = requests
                .iter()
                .filter(|(level, _)| {
                    let level = (*level).max(1);
                    (bucket.first..=bucket.last).contains(&level) || (last_bucket && level > bucket.last)
                })
                .map(|&(_, micros)| micros)
                .collect();
            prop_assert_eq!(mine.len(), bucket.count as usize);
            let lo = *mine.iter().min().expect("non-empty") as f64 * 1e-6;
            let hi = *mine.iter().max().expect("non-empty") as f64 * 1e-6;
            prop_assert!(bucket.mean >= lo - 1e-9 && bucket.mean <= hi + 1e-9);
        }
    }

    #[test]
    fn limits_stay_within_min_and_max(
        kind in kind(),
        bounds in bounds(),
        seed in any::<u64>(),
        samples in prop::collection::vec(sample(), 1..200),
    ) {
        let (min, _, max) = bounds;
        let mut a = algorithm(kind, bounds, seed);
        for s in &samples {
            let limit = a.update(s);
            prop_assert!((min..=max).contains(&limit), "{kind:?}: {limit} not in [{min}, {max}] after {s:?}");
            prop_assert_eq!(limit, a.limit());
        }
    }

    #[test]
    fn no_algorithm_grows_when_the_limit_is_not_used(
        kind in kind(),
        bounds in bounds(),
        seed in any::<u64>(),
        history in prop::collection::vec(sample(), 0..100),
        rtt in 1u64..2_000,
        fraction in 0.0f64..0.5,
    ) {
        let mut a = algorithm(kind, bounds, seed);
        for s in &history {
            a.update(s);
        }
        let before = a.limit();
        // Fewer than half the permits in use, nothing dropped.
        let in_flight = ((before as f64 * fraction).ceil() as usize).min(before.saturating_sub(1) / 2);
        let after = a.update(&Sample::new(ms(rtt), in_flight, false));
        prop_assert!(after <= before, "{kind:?}: {before} -> {after} with {in_flight} in flight");
    }

    #[test]
    fn drops_always_decrease_except_at_the_floor(
        kind in kind(),
        bounds in bounds(),
        seed in any::<u64>(),
        history in prop::collection::vec(sample(), 0..100),
        dropped in sample(),
    ) {
        let (min, _, _) = bounds;
        let mut a = algorithm(kind, bounds, seed);
        for s in &history {
            a.update(s);
        }
        let before = a.limit();
        let mut dropped = dropped;
        dropped.dropped = true;
        let after = a.update(&dropped);
        if before > min {
            prop_assert!(after < before, "{kind:?}: {before} -> {after} on a drop");
        } else {
            prop_assert_eq!(after, min);
        }
    }

    #[test]
    fn aimd_grows_by_one_when_used(
        bounds in bounds(),
        rtt in 1u64..5_000,
        extra in 0usize..100,
    ) {
        let (_, initial, max) = bounds;
        let mut a = algorithm(Kind::Aimd, bounds, 0);
        let in_flight = initial.div_ceil(2) + extra;
        let after = a.update(&Sample::new(ms(rtt), in_flight, false));
        prop_assert_eq!(after, (initial + 1).min(max));
    }

    #[test]
    fn delay_based_limits_shrink_when_rtt_rises_well_above_the_baseline(
        gradient in any::<bool>(),
        initial in 10usize..200,
        base in 5u64..200,
        factor in 4u64..20,
        seed in any::<u64>(),
    ) {
        let bounds = (1, initial, 1000);
        let mut a = algorithm(if gradient { Kind::Gradient2 } else { Kind::Vegas }, bounds, seed);
        // Learn the baseline while app-limited (the limit does not move).
        for _ in 0..10 {
            a.update(&Sample::new(ms(base), 0, false));
        }
        prop_assert_eq!(a.limit(), initial);
        let after = a.update(&Sample::new(ms(base * factor), initial, false));
        prop_assert!(after < initial, "gradient2 {gradient}: {initial} -> {after}");
    }

    #[test]
    fn delay_based_limits_grow_while_rtt_stays_at_the_baseline_and_the_limit_is_used(
        gradient in any::<bool>(),
        initial in 1usize..500,
        base in 5u64..200,
        seed in any::<u64>(),
    ) {
        let bounds = (1, initial, 1000);
        let mut a = algorithm(if gradient { Kind::Gradient2 } else { Kind::Vegas }, bounds, seed);
        // Vegas takes its first sample as the no-load RTT and moves from the second;
        // Gradient2 adds a fraction of its queue allowance per update.
        let mut limit = initial;
        for _ in 0..6 {
            limit = a.update(&Sample::new(ms(base), limit, false));
        }
        prop_assert!(limit > initial, "gradient2 {gradient}: {initial} -> {limit}");
    }
}
