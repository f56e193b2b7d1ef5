//! Consistent-hashing lookups (and Maglev builds): steadfast-hash against peer crates, side
//! by side in one run.
//!
//! Every lookup starts from a raw `u64` key and **includes the key hashing** each library
//! does by default:
//!
//! - steadfast: `StableHash` of the `u64` (XXH3-64 of its 8 little-endian bytes), then the
//!   algorithm. The row `key_hash/stable_hash64` is that hash alone.
//! - `hashring` 0.3: std `Hash` through SipHash-2-4 with a zero key.
//! - `consistent_hash_ring` 0.8: std `Hash` through FNV-1a.
//! - `jump-consistent-hash` 0.1: takes a ready-made hash; it is given the same
//!   `stable_hash64` of the key as steadfast's `jump` and `jump_back`.
//! - `maglev-hash` 0.1 and `maglev` 0.2: std `Hash` through `DefaultHasher` (SipHash-1-3).
//! - `hrw-hash` 0.2: rapidhash of the key, then fmix64 per node (as steadfast); allocates
//!   and sorts a `Vec` of all nodes per lookup.
//! - `rendezvous_hash` 0.3: `DefaultHasher` over (key, node) per node; allocates and sorts.
//! - `anchorhash` 0.2: its default `RandomState` (SipHash-1-3), truncated to 32 bits.
//!
//! Keys: 4096 random `u64`s (a fixed SplitMix64 sequence), cycled through one per
//! iteration, so neither the branch predictor nor the caches can learn a single key. Each
//! iteration is one independent lookup, so consecutive lookups may overlap in the CPU: the
//! figures are throughput per lookup, as in a loop over many keys.
//!
//! Groups:
//!
//! - `key_hash`: `stable_hash64` of a `u64` alone, for reference.
//! - `ring/n=100,vnodes=100`: steadfast `Ring` (`points_per_weight(100)`), `hashring` (100
//!   virtual nodes per node added by hand, as its users must), `consistent_hash_ring`
//!   (`vnodes(100)`).
//! - `jump/<n>`: steadfast `jump_back` and `jump`, and `jump-consistent-hash`.
//! - `maglev_lookup/n=100,M=65537`: steadfast `Maglev`, `maglev-hash`, `maglev` 0.2.
//! - `maglev_build/n=1000,M=655373`: steadfast and `maglev-hash`. `maglev` 0.2 is left out:
//!   it materializes every node's full permutation (n × M `usize`s, 5.2 GB here).
//! - `rendezvous/<n>`: steadfast `Rendezvous` top-1 for n = 10, 100, 1000; `hrw-hash` and
//!   `rendezvous_hash` for n = 10 and 100. Throughput is in members, so criterion's
//!   `elem/s` is members scored per second.
//! - `removal/n=1000`: steadfast `Memento` with none and 10% of the buckets removed;
//!   `anchorhash` with capacity 2n, with none and 10% removed.
//!
//! Run with `cargo bench -p steadfast-benches --bench hash`; see `benches/README.md`.

use std::hint::black_box;

use consistent_hash_ring::RingBuilder as ChrRingBuilder;
use criterion::{
    BatchSize, Bencher, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use maglev::ConsistentHasher as _;
use rendezvous_hash::{DefaultNodeHasher, IdNode, RendezvousNodes};
use steadfast_hash::jump::{jump, jump_back};
use steadfast_hash::maglev::Maglev;
use steadfast_hash::memento::Memento;
use steadfast_hash::rendezvous::Rendezvous;
use steadfast_hash::ring::Ring;
use steadfast_hash::stable_hash64;

/// How many distinct keys each benchmark cycles through (a power of two).
const KEY_COUNT: usize = 4096;

/// Virtual nodes (points) per node for every ring.
const VNODES: u32 = 100;

/// SplitMix64: a fixed, well-mixed sequence for keys and for picking removed buckets.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        steadfast_core::splitmix::next(&mut self.0)
    }
}

fn random_keys() -> Vec<u64> {
    let mut rng = SplitMix64(0x5eed_f00d_ca11_ab1e);
    (0..KEY_COUNT).map(|_| rng.next()).collect()
}

fn node_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}")).collect()
}

/// One lookup per iteration, on the next of the precomputed keys.
fn lookups<R>(b: &mut Bencher<'_>, keys: &[u64], mut lookup: impl FnMut(u64) -> R) {
    debug_assert!(keys.len().is_power_of_two());
    let mask = keys.len() - 1;
    let mut i = 0;
    b.iter(|| {
        i = (i + 1) & mask;
        black_box(lookup(black_box(keys[i])))
    });
}

fn key_hash(c: &mut Criterion) {
    let keys = random_keys();
    let mut group = c.benchmark_group("key_hash");
    group.bench_function("stable_hash64", |b| {
        lookups(b, &keys, |k| stable_hash64(&k))
    });
    group.finish();
}

/// A virtual node for `hashring`, which has none of its own: its users add
/// `(node, replica)` entries and map the winner back to its node.
#[derive(Debug, Clone, Hash)]
struct VNode {
    node: String,
    replica: u32,
}

fn ring(c: &mut Criterion) {
    const N: usize = 100;
    let keys = random_keys();
    let names = node_names(N);
    let mut group = c.benchmark_group("ring/n=100,vnodes=100");

    let steadfast = Ring::builder()
        .points_per_weight(VNODES)
        .build(names.iter().map(|name| (name.clone(), 1.0)))
        .expect("valid ring");
    assert_eq!(steadfast.point_count(), N * VNODES as usize);
    group.bench_function("steadfast", |b| lookups(b, &keys, |k| steadfast.get(&k)));

    let mut hashring = hashring::HashRing::new();
    hashring.batch_add(
        names
            .iter()
            .flat_map(|name| {
                (0..VNODES).map(|replica| VNode {
                    node: name.clone(),
                    replica,
                })
            })
            .collect(),
    );
    assert_eq!(hashring.len(), N * VNODES as usize);
    group.bench_function("hashring", |b| {
        lookups(b, &keys, |k| hashring.get(&k).map(|v| &v.node))
    });

    let chr = ChrRingBuilder::default()
        .vnodes(VNODES as usize)
        .nodes_iter(names.iter().cloned())
        .build();
    assert_eq!(chr.vnodes(), N * VNODES as usize);
    group.bench_function("consistent_hash_ring", |b| {
        lookups(b, &keys, |k| chr.try_get(k))
    });

    group.finish();
}

fn jump_class(c: &mut Criterion) {
    let keys = random_keys();
    for n in [3u32, 17, 100, 1000, 65_537, 1 << 20] {
        let mut group = c.benchmark_group(format!("jump/{n}"));
        group.bench_function("steadfast_jump_back", |b| {
            lookups(b, &keys, |k| jump_back(stable_hash64(&k), n))
        });
        group.bench_function("steadfast_jump", |b| {
            lookups(b, &keys, |k| jump(stable_hash64(&k), n))
        });
        group.bench_function("jump-consistent-hash", |b| {
            lookups(b, &keys, |k| {
                jump_consistent_hash::hash(stable_hash64(&k), n as usize)
            })
        });
        group.finish();
    }
}

fn maglev_lookup(c: &mut Criterion) {
    const N: usize = 100;
    const M: u64 = 65_537;
    let keys = random_keys();
    let names = node_names(N);
    let mut group = c.benchmark_group("maglev_lookup/n=100,M=65537");

    let steadfast = Maglev::builder()
        .table_size(M)
        .build(names.iter().map(|name| (name.clone(), 1.0)))
        .expect("valid table");
    group.bench_function("steadfast", |b| lookups(b, &keys, |k| steadfast.get(&k)));

    let maglev_hash = maglev_hash::MaglevTable::with_capacity(names.clone(), M as usize);
    assert_eq!(maglev_hash.capacity(), M as usize);
    group.bench_function("maglev-hash", |b| {
        lookups(b, &keys, |k| maglev_hash.get(&k))
    });

    let maglev = maglev::Maglev::with_capacity(names.clone(), M as usize);
    assert_eq!(maglev.capacity(), M as usize);
    group.bench_function("maglev", |b| lookups(b, &keys, |k| maglev.get(&k)));
    drop(maglev);

    group.finish();
}

fn maglev_build(c: &mut Criterion) {
    const N: usize = 1000;
    const M: u64 = 655_373;
    let names = node_names(N);
    let mut group = c.benchmark_group("maglev_build/n=1000,M=655373");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);

    let members: Vec<(String, f64)> = names.iter().map(|name| (name.clone(), 1.0)).collect();
    group.bench_function("steadfast", |b| {
        b.iter_batched(
            || members.clone(),
            |members| {
                Maglev::builder()
                    .table_size(M)
                    .build(members)
                    .expect("valid table")
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("maglev-hash", |b| {
        b.iter_batched(
            || names.clone(),
            |names| maglev_hash::MaglevTable::with_capacity(names, M as usize),
            BatchSize::LargeInput,
        )
    });

    group.finish();
}

fn rendezvous(c: &mut Criterion) {
    let keys = random_keys();
    for n in [10usize, 100, 1000] {
        let names = node_names(n);
        let mut group = c.benchmark_group(format!("rendezvous/{n}"));
        group.throughput(Throughput::Elements(n as u64));

        let steadfast = Rendezvous::new(names.iter().cloned()).expect("valid members");
        group.bench_function("steadfast", |b| lookups(b, &keys, |k| steadfast.get(&k)));

        // The peers allocate and sort all n nodes per lookup: only the small sizes.
        if n <= 100 {
            let hrw = hrw_hash::HrwNodes::new(names.iter().cloned());
            group.bench_function("hrw-hash", |b| lookups(b, &keys, |k| hrw.sorted(&k).next()));

            let mut rendezvous: RendezvousNodes<IdNode<String>, DefaultNodeHasher> =
                RendezvousNodes::default();
            for name in &names {
                rendezvous.insert(IdNode::new(name.clone()));
            }
            group.bench_function("rendezvous_hash", |b| {
                lookups(b, &keys, |k| rendezvous.calc_candidates(&k).next())
            });
        }

        group.finish();
    }
}

fn removal(c: &mut Criterion) {
    const N: u32 = 1000;
    const REMOVED: usize = N as usize / 10;
    let keys = random_keys();

    // The same 10% of the buckets for both, picked by a fixed random sequence.
    let mut rng = SplitMix64(0xdead_5eed);
    let mut removed: Vec<u32> = Vec::with_capacity(REMOVED);
    while removed.len() < REMOVED {
        let bucket = (rng.next() % u64::from(N)) as u32;
        if !removed.contains(&bucket) {
            removed.push(bucket);
        }
    }

    let mut group = c.benchmark_group("removal/n=1000");

    let intact = Memento::new(N).expect("valid size");
    group.bench_function("steadfast_memento/none_removed", |b| {
        lookups(b, &keys, |k| intact.get_by_key(&k))
    });
    let mut memento = intact.clone();
    for &bucket in &removed {
        memento.remove(bucket).expect("working bucket");
    }
    assert_eq!(memento.len(), N as usize - REMOVED);
    group.bench_function("steadfast_memento/10%_removed", |b| {
        lookups(b, &keys, |k| memento.get_by_key(&k))
    });

    let capacity = u16::try_from(2 * N).expect("fits anchorhash's u16 capacity");
    let anchor_intact: anchorhash::AnchorHash<u64, u32, _> = anchorhash::Builder::default()
        .with_resources(0..N)
        .build(capacity);
    group.bench_function("anchorhash_cap=2n/none_removed", |b| {
        lookups(b, &keys, |k| anchor_intact.get_resource(k))
    });
    let mut anchor = anchor_intact.clone();
    for bucket in &removed {
        anchor.remove_resource(bucket).expect("known resource");
    }
    group.bench_function("anchorhash_cap=2n/10%_removed", |b| {
        lookups(b, &keys, |k| anchor.get_resource(k))
    });

    group.finish();
}

criterion_group!(
    benches,
    key_hash,
    ring,
    jump_class,
    maglev_lookup,
    maglev_build,
    rendezvous,
    removal
);
criterion_main!(benches);
