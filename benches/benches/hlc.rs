//! Issuing and merging hybrid-logical-clock timestamps: steadfast's [`Hlc`] against the raw
//! wall-clock read it is built on, and against the `uhlc` and `hlc-gen` crates.
//!
//! Groups:
//!
//! - `hlc_now/1_thread`: one call on one thread.
//! - `hlc_now/2_threads`: two threads calling concurrently on one shared instance. The
//!   reported time is the wall time for *each* thread to make one call (both threads make
//!   `iters` calls; elapsed wall time is divided by `iters`), so perfect scaling would
//!   report the one-thread figure. Thread start-up is kept out of the measurement.
//! - `hlc_update`: merging a remote timestamp 1 ms ahead of the local wall clock.
//!
//! Run with `cargo bench -p steadfast-benches --bench hlc`; see `benches/README.md`.

// The point of this bench is to compare against the raw system clock, so it calls
// `SystemTime::now` (and `Instant::now` to time the two-thread runs) on purpose, not through
// `steadfast_core::clock::WallClock`.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hlc_gen::{HlcGenerator, HlcTimestamp};
use steadfast_core::clock::{SystemClock, WallClock};
use steadfast_hlc::{Hlc, Timestamp};

use steadfast_benches::two_threads::ThreadPair;

/// hlc-gen's drift bound is in milliseconds; the same 500 ms as the others' defaults.
const HLC_GEN_MAX_DRIFT_MS: usize = 500;

/// How far ahead of the local wall clock the remote timestamps of `hlc_update` are.
const REMOTE_AHEAD: Duration = Duration::from_millis(1);

/// The raw clock read plus the conversion every HLC needs: microseconds since the epoch.
/// A second reference point, because on some machines the conversion is not free.
fn micros_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn now_one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("hlc_now/1_thread");

    group.bench_function("SystemTime::now", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });
    group.bench_function("SystemTime::now_as_micros", |b| {
        b.iter(|| black_box(micros_since_epoch()))
    });
    // steadfast-core's system clock: on Linux a direct CLOCK_REALTIME read.
    group.bench_function("SystemClock::since_epoch", |b| {
        b.iter(|| black_box(SystemClock.since_epoch()))
    });

    let steadfast = Hlc::new();
    group.bench_function("steadfast", |b| b.iter(|| black_box(steadfast.now())));

    let uhlc = uhlc::HLC::default();
    group.bench_function("uhlc", |b| b.iter(|| black_box(uhlc.new_timestamp())));

    let hlc_gen = HlcGenerator::new(HLC_GEN_MAX_DRIFT_MS);
    group.bench_function("hlc-gen", |b| {
        b.iter(|| black_box(hlc_gen.next_timestamp()))
    });

    group.finish();
}

fn now_two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("hlc_now/2_threads");

    // Each pair of threads lives for one benchmark and is reused across its samples.
    let raw = ThreadPair::new(SystemTime::now);
    group.bench_function("SystemTime::now", |b| b.iter_custom(|iters| raw.run(iters)));
    drop(raw);

    let raw_micros = ThreadPair::new(micros_since_epoch);
    group.bench_function("SystemTime::now_as_micros", |b| {
        b.iter_custom(|iters| raw_micros.run(iters))
    });
    drop(raw_micros);

    let raw_clock = ThreadPair::new(|| SystemClock.since_epoch());
    group.bench_function("SystemClock::since_epoch", |b| {
        b.iter_custom(|iters| raw_clock.run(iters))
    });
    drop(raw_clock);

    let steadfast = Arc::new(Hlc::new());
    let pair = ThreadPair::new(move || steadfast.now());
    group.bench_function("steadfast", |b| b.iter_custom(|iters| pair.run(iters)));
    drop(pair);

    let uhlc = Arc::new(uhlc::HLC::default());
    let pair = ThreadPair::new(move || uhlc.new_timestamp());
    group.bench_function("uhlc", |b| b.iter_custom(|iters| pair.run(iters)));
    drop(pair);

    let hlc_gen = Arc::new(HlcGenerator::new(HLC_GEN_MAX_DRIFT_MS));
    let pair = ThreadPair::new(move || hlc_gen.next_timestamp());
    group.bench_function("hlc-gen", |b| b.iter_custom(|iters| pair.run(iters)));
    drop(pair);

    group.finish();
}

/// Each call merges a fresh remote timestamp 1 ms ahead of the wall clock, made outside the
/// timed region, so every library takes its full merge path (reads the clock, checks the
/// offset, moves its state forward) rather than a "nothing new" shortcut.
fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("hlc_update");

    let steadfast = Hlc::new();
    let remote = Timestamp::from_system_time(SystemTime::now() + REMOTE_AHEAD);
    steadfast.update(remote).expect("1 ms ahead is accepted");
    let mut last = remote.as_u64();
    group.bench_function("steadfast", |b| {
        b.iter_batched(
            || {
                // Strictly increasing, so each remote is ahead of the state the last one left.
                let ahead = Timestamp::from_system_time(SystemTime::now() + REMOTE_AHEAD);
                last = ahead.as_u64().max(last + 1);
                Timestamp::from_u64(last)
            },
            |remote| black_box(steadfast.update(remote)),
            BatchSize::SmallInput,
        );
    });

    let uhlc = uhlc::HLC::default();
    let remote_id = uhlc::ID::try_from(1_u8).expect("non-zero id");
    let remote = uhlc::Timestamp::new(
        uhlc::system_time_clock() + uhlc::NTP64::from(REMOTE_AHEAD),
        remote_id,
    );
    uhlc.update_with_timestamp(&remote)
        .expect("1 ms ahead is accepted");
    group.bench_function("uhlc", |b| {
        b.iter_batched(
            || {
                let ahead = uhlc::system_time_clock() + uhlc::NTP64::from(REMOTE_AHEAD);
                uhlc::Timestamp::new(ahead, remote_id)
            },
            |remote| black_box(uhlc.update_with_timestamp(&remote)),
            BatchSize::SmallInput,
        );
    });

    let hlc_gen = HlcGenerator::new(HLC_GEN_MAX_DRIFT_MS);
    let hlc_gen_remote = || {
        let ahead = SystemTime::now() + REMOTE_AHEAD;
        let millis = ahead
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        HlcTimestamp::from_parts(millis as i64, 0).expect("in range")
    };
    hlc_gen
        .update(&hlc_gen_remote())
        .expect("1 ms ahead is accepted");
    group.bench_function("hlc-gen", |b| {
        b.iter_batched(
            hlc_gen_remote,
            |remote| black_box(hlc_gen.update(&remote)),
            BatchSize::SmallInput,
        );
    });

    group.finish();
}

criterion_group!(benches, now_one_thread, now_two_threads, update);
criterion_main!(benches);
