//! Backoff schedules: how long to wait before each retry.
//!
//! A [`Backoff`] is an immutable description of a schedule; the per-request progress (how
//! many retries so far, the previous delay) lives in a [`BackoffState`], and the jitter comes
//! from an injected [`RandomSource`]. [`Backoff::delay`] computes the delay before the next
//! retry and advances the state.
//!
//! In the formulas, `n` is the retry number, `0` for the first retry (it is
//! [`BackoffState::retries`]), and `U(a, b)` is a uniform draw between `a` and `b`.
//!
//! | schedule | delay before retry `n` | source |
//! |---|---|---|
//! | [`constant`](Backoff::constant) | `delay` | |
//! | [`exponential`](Backoff::exponential) | `min(cap, base · 2ⁿ)` | [AWS blog] |
//! | [`full_jitter`](Backoff::full_jitter) | `U(0, min(cap, base · 2ⁿ))` | [AWS blog], AWS SDKs |
//! | [`equal_jitter`](Backoff::equal_jitter) | `v = min(cap, base · 2ⁿ)`; `v/2 + U(0, v/2)` | [AWS blog] |
//! | [`decorrelated_jitter`](Backoff::decorrelated_jitter) | `sleep₋₁ = base`; `sleepₙ = min(cap, U(base, 3 · sleepₙ₋₁))` | [AWS blog] |
//! | [`decorrelated_jitter_v2`](Backoff::decorrelated_jitter_v2) | `t = n + U(0, 1)`; `fₙ = 2ᵗ · tanh(√(4t))`; `min(cap, (fₙ − fₙ₋₁) / 1.4 · median_first)`, `f₋₁ = 0` | [Polly] v8 |
//! | [`proportional_jitter`](Backoff::proportional_jitter) | `min(cap, initial · multiplierⁿ) · U(0.8, 1.2)` | [gRPC A6] (2024) |
//!
//! The formulas are those of the sources' code: the [AWS blog]'s simulator, Polly's
//! `RetryHelper.DecorrelatedJitterBackoffV2` and the 2024 revision of [gRPC A6]. Arithmetic
//! is done in `u128` nanoseconds, or in `f64` where the formula needs it; results saturate at
//! the cap (or [`Duration::MAX`]) and never panic, whatever `n`.
//!
//! [AWS blog]: https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
//! [Polly]: https://github.com/App-vNext/Polly/blob/main/src/Polly.Core/Retry/RetryHelper.cs
//! [gRPC A6]: https://github.com/grpc/proposal/blob/master/A6-client-retries.md
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast_retry::backoff::{Backoff, BackoffState};
//! use steadfast_retry::rng::SplitMix64;
//!
//! let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1))?;
//! let rng = SplitMix64::new(7);
//! let mut state = BackoffState::new();
//! let delays: Vec<_> = (0..5).map(|_| backoff.delay(&mut state, &rng)).collect();
//! assert_eq!(delays, [100, 200, 400, 800, 1000].map(Duration::from_millis));
//! assert_eq!(state.retries(), 5);
//!
//! // Jittered: each delay is drawn from [0, min(cap, base · 2ⁿ)].
//! let backoff = Backoff::full_jitter(Duration::from_millis(50), Duration::from_secs(1))?;
//! let mut state = BackoffState::new();
//! for n in 0..8 {
//!     let bound = Duration::from_millis(50 << n).min(Duration::from_secs(1));
//!     assert!(backoff.delay(&mut state, &rng) <= bound);
//! }
//!
//! // After a server hint (Retry-After, gRPC pushback) the schedule starts again.
//! state.reset();
//! assert!(backoff.delay(&mut state, &rng) <= Duration::from_millis(50));
//! # Ok::<(), steadfast_retry::backoff::InvalidBackoff>(())
//! ```

use std::fmt;
use std::time::Duration;

use crate::rng::RandomSource;

/// A backoff schedule: the delay before each retry.
///
/// Build one with a constructor, one per formula (see the [module docs](self) for the table
/// of formulas and their sources). The schedule is `Copy` and holds no progress: keep one
/// [`BackoffState`] per request (or per retry loop) and pass it to [`delay`](Self::delay).
///
/// # The cap is applied before the jitter
///
/// As in the AWS blog, the AWS SDKs and gRPC, the cap bounds the *range* the jitter is drawn
/// from, not the jittered result:
///
/// - [`full_jitter`](Self::full_jitter) and [`equal_jitter`](Self::equal_jitter) draw from a
///   range whose top is `min(cap, base · 2ⁿ)`, so every delay is **at most `cap`**, and once
///   the exponential passes the cap, delays stay spread over the whole range instead of
///   collapsing onto the cap.
/// - [`decorrelated_jitter`](Self::decorrelated_jitter) and
///   [`decorrelated_jitter_v2`](Self::decorrelated_jitter_v2) clamp the drawn value, so they are
///   also at most `cap` (the AWS formula takes `min(cap, …)` of the draw; Polly's `MaxDelay`
///   clamps its result).
/// - [`proportional_jitter`](Self::proportional_jitter) multiplies `min(cap, initial ·
///   multiplierⁿ)` by `U(0.8, 1.2)`, so a delay can reach **`1.2 · cap`**, exactly as gRPC
///   does. Choose the cap with that in mind; [`max_delay`](Self::max_delay) reports it.
///
/// # Default
///
/// [`Backoff::default()`] is full jitter with a 50 ms base and a 1 s cap. These are
/// service-to-service RPC scales: tower's `ExponentialBackoff` defaults to a 50 ms minimum,
/// Envoy's retry back-off uses a 25 ms base and a 250 ms cap, and gRPC A6's example policy is
/// 100 ms initial and 1 s maximum. (The AWS SDKs' 1 s base and 20 s cap are meant for
/// throttled public APIs, a different regime.) Full jitter because in the AWS blog's
/// simulation it does the least work of all the schedules: re-run at 50 contending clients it
/// made 333 calls, against 347 for equal jitter, 374 for decorrelated jitter and 628 for
/// exponential backoff without jitter (at 100 clients: 795, 813, 1 004 and 1 859).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    kind: Kind,
}

/// The formula and its parameters, validated by the constructors.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Constant {
        delay: Duration,
    },
    Exponential {
        base: Duration,
        cap: Duration,
    },
    FullJitter {
        base: Duration,
        cap: Duration,
    },
    EqualJitter {
        base: Duration,
        cap: Duration,
    },
    Decorrelated {
        base: Duration,
        cap: Duration,
    },
    DecorrelatedV2 {
        median_first: Duration,
        cap: Duration,
    },
    Proportional {
        initial: Duration,
        /// Finite and at least 1.
        multiplier: f64,
        cap: Duration,
    },
}

/// Polly's `RpScalingFactor`: scales the formula so that median delays fall near
/// `median_first · 2ⁿ` rather than 1.4 times that.
const V2_SCALING: f64 = 1.0 / 1.4;

/// Polly's `PFactor`: smooths the first delay through `tanh(√(PFactor · t))`.
const V2_P_FACTOR: f64 = 4.0;

impl Backoff {
    /// The same delay before every retry. A zero delay retries immediately.
    pub const fn constant(delay: Duration) -> Self {
        Self {
            kind: Kind::Constant { delay },
        }
    }

    /// `min(cap, base · 2ⁿ)`: exponential backoff without jitter.
    ///
    /// Deterministic, so concurrent clients that failed together retry together; prefer a
    /// jittered schedule unless there is a single client.
    ///
    /// # Errors
    ///
    /// If `base` is zero or `cap` is less than `base`.
    pub fn exponential(base: Duration, cap: Duration) -> Result<Self, InvalidBackoff> {
        check(base, cap)?;
        Ok(Self {
            kind: Kind::Exponential { base, cap },
        })
    }

    /// `U(0, min(cap, base · 2ⁿ))`: the AWS blog's "Full Jitter", also used by the AWS SDKs.
    ///
    /// Every delay is at most `cap` (the cap is applied before the jitter).
    ///
    /// # Errors
    ///
    /// If `base` is zero or `cap` is less than `base`.
    pub fn full_jitter(base: Duration, cap: Duration) -> Result<Self, InvalidBackoff> {
        check(base, cap)?;
        Ok(Self {
            kind: Kind::FullJitter { base, cap },
        })
    }

    /// `v/2 + U(0, v/2)` with `v = min(cap, base · 2ⁿ)`: the AWS blog's "Equal Jitter".
    ///
    /// Every delay is between half of `v` and `v`, so at most `cap`.
    ///
    /// # Errors
    ///
    /// If `base` is zero or `cap` is less than `base`.
    pub fn equal_jitter(base: Duration, cap: Duration) -> Result<Self, InvalidBackoff> {
        check(base, cap)?;
        Ok(Self {
            kind: Kind::EqualJitter { base, cap },
        })
    }

    /// `sleep = min(cap, U(base, 3 · previous sleep))`, starting from `previous = base`: the
    /// AWS blog's "Decorrelated Jitter".
    ///
    /// Every delay is between `base` and `cap`, and at most three times the previous one. The
    /// delay depends on the previous delay (kept in the [`BackoffState`]) rather than on `n`.
    ///
    /// # Errors
    ///
    /// If `base` is zero or `cap` is less than `base`.
    pub fn decorrelated_jitter(base: Duration, cap: Duration) -> Result<Self, InvalidBackoff> {
        check(base, cap)?;
        Ok(Self {
            kind: Kind::Decorrelated { base, cap },
        })
    }

    /// Polly v8's `DecorrelatedJitterBackoffV2` (by George Polevoy), capped at `cap`.
    ///
    /// With `t = n + U(0, 1)` and `fₙ = 2ᵗ · tanh(√(4t))`, the delay is
    /// `(fₙ − fₙ₋₁) / 1.4 · median_first` (with `f₋₁ = 0`), then `min(cap, delay)`. A result
    /// too large to represent gives `cap`.
    ///
    /// Because `f` increases and `tₙ` lies in `[n, n + 1)`, the uncapped delays telescope: the
    /// time from the first failure to retry `n` is `fₙ / 1.4 · median_first`, which lies
    /// between `f(n)` and `f(n + 1)` times `median_first / 1.4`. Retries are thus spread
    /// evenly in time, with medians near `median_first · 2ⁿ` and no clustering, and each delay
    /// is non-negative (it can be close to zero). The median first delay is about
    /// `0.9 · median_first`.
    ///
    /// # Errors
    ///
    /// If `median_first` is zero or `cap` is less than `median_first`.
    pub fn decorrelated_jitter_v2(
        median_first: Duration,
        cap: Duration,
    ) -> Result<Self, InvalidBackoff> {
        check(median_first, cap)?;
        Ok(Self {
            kind: Kind::DecorrelatedV2 { median_first, cap },
        })
    }

    /// `min(cap, initial · multiplierⁿ) · U(0.8, 1.2)`: gRPC A6's backoff since its 2024
    /// revision (±20 % jitter; it was full jitter before).
    ///
    /// The cap applies before the jitter, so a delay can reach `1.2 · cap`, as in gRPC.
    ///
    /// gRPC accepts any `backoffMultiplier > 0`; this constructor requires a finite multiplier
    /// of at least 1 so that the schedule never shrinks: a multiplier below 1 would make
    /// delays tend to zero, turning the later retries of a long outage into a busy loop.
    /// `1.0` gives a constant delay with ±20 % jitter.
    ///
    /// # Errors
    ///
    /// If `initial` is zero, `cap` is less than `initial`, or `multiplier` is NaN, infinite or
    /// less than 1.
    pub fn proportional_jitter(
        initial: Duration,
        multiplier: f64,
        cap: Duration,
    ) -> Result<Self, InvalidBackoff> {
        check(initial, cap)?;
        if !(multiplier.is_finite() && multiplier >= 1.0) {
            return Err(InvalidBackoff {
                reason: Reason::Multiplier(multiplier),
            });
        }
        Ok(Self {
            kind: Kind::Proportional {
                initial,
                multiplier,
                cap,
            },
        })
    }

    /// The largest delay this schedule can return: the constant delay, `1.2 · cap` for
    /// [`proportional_jitter`](Self::proportional_jitter) (saturating at [`Duration::MAX`]),
    /// and `cap` for the others.
    pub fn max_delay(&self) -> Duration {
        match self.kind {
            Kind::Constant { delay } => delay,
            Kind::Proportional { cap, .. } => {
                let (_, hi) = proportional_range(cap.as_nanos());
                from_nanos(hi)
            }
            Kind::Exponential { cap, .. }
            | Kind::FullJitter { cap, .. }
            | Kind::EqualJitter { cap, .. }
            | Kind::Decorrelated { cap, .. }
            | Kind::DecorrelatedV2 { cap, .. } => cap,
        }
    }

    /// Computes the delay before the next retry and advances `state`.
    ///
    /// The retry number `n` is [`state.retries()`](BackoffState::retries); afterwards it is
    /// one more (saturating at `u32::MAX`). Constant and exponential schedules draw nothing
    /// from `rng`; the others draw one `f64` per call.
    ///
    /// A state belongs to one schedule: using it with several gives delays that follow
    /// neither (though still within each schedule's bounds).
    pub fn delay(&self, state: &mut BackoffState, rng: &dyn RandomSource) -> Duration {
        let n = state.retries;
        state.retries = n.saturating_add(1);
        let nanos = match self.kind {
            Kind::Constant { delay } => return delay,
            Kind::Exponential { base, cap } => capped_exponential(base, cap, n),
            Kind::FullJitter { base, cap } => {
                uniform(0, capped_exponential(base, cap, n), rng.next_f64())
            }
            Kind::EqualJitter { base, cap } => {
                let v = capped_exponential(base, cap, n);
                uniform(v / 2, v, rng.next_f64())
            }
            Kind::Decorrelated { base, cap } => {
                let prev = state.prev_sleep.unwrap_or(base).as_nanos();
                let sleep = uniform(base.as_nanos(), prev.saturating_mul(3), rng.next_f64())
                    .min(cap.as_nanos());
                let sleep = from_nanos(sleep);
                state.prev_sleep = Some(sleep);
                return sleep;
            }
            Kind::DecorrelatedV2 { median_first, cap } => {
                let t = f64::from(n) + rng.next_f64();
                let next = 2f64.powf(t) * (V2_P_FACTOR * t).sqrt().tanh();
                let raw = (next - state.prev_v2) * V2_SCALING * median_first.as_nanos() as f64;
                state.prev_v2 = next;
                let cap = cap.as_nanos();
                // NaN only arises as ∞ − ∞, once 2ᵗ has overflowed: an overflow, so the cap.
                if raw.is_nan() || raw >= cap as f64 {
                    cap
                } else if raw > 0.0 {
                    (raw as u128).min(cap)
                } else {
                    0
                }
            }
            Kind::Proportional {
                initial,
                multiplier,
                cap,
            } => {
                let cap = cap.as_nanos();
                // multiplier ≥ 1 and finite, so this is ≥ initial, possibly +∞, never NaN.
                let grown = initial.as_nanos() as f64 * multiplier.powf(f64::from(n));
                let v = if grown < cap as f64 {
                    (grown as u128).min(cap)
                } else {
                    cap
                };
                let (lo, hi) = proportional_range(v);
                uniform(lo, hi, rng.next_f64())
            }
        };
        from_nanos(nanos)
    }
}

impl Default for Backoff {
    /// Full jitter with a 50 ms base and a 1 s cap; see [`Backoff`] for why.
    fn default() -> Self {
        Self {
            kind: Kind::FullJitter {
                base: Duration::from_millis(50),
                cap: Duration::from_secs(1),
            },
        }
    }
}

/// Progress through a [`Backoff`] schedule: one per request or retry loop.
///
/// Holds the retry number `n` and, for the decorrelated schedules, the previous value their
/// formula depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackoffState {
    /// Delays computed since creation or the last reset: `n` for the next delay.
    retries: u32,
    /// The previous delay of [`Backoff::decorrelated_jitter`]; `None` stands for `base`.
    prev_sleep: Option<Duration>,
    /// The previous `fₙ` of [`Backoff::decorrelated_jitter_v2`] (Polly's `prev`), 0 at first.
    prev_v2: f64,
}

impl BackoffState {
    /// A state before the first retry.
    pub const fn new() -> Self {
        Self {
            retries: 0,
            prev_sleep: None,
            prev_v2: 0.0,
        }
    }

    /// Starts the schedule again: the next delay is computed as the first one was.
    ///
    /// Call it after waiting for a server hint (`Retry-After`, gRPC pushback): gRPC A6 resets
    /// the backoff to its initial value after a pushback, since the server has just said when
    /// it is ready again.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The number of delays computed since creation or the last [`reset`](Self::reset),
    /// saturating at `u32::MAX`; the next delay is that of retry number `retries()`.
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

/// A [`Backoff`] constructor was given parameters outside its domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidBackoff {
    reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reason {
    ZeroBase,
    CapBelowBase { base: Duration, cap: Duration },
    Multiplier(f64),
}

impl fmt::Display for InvalidBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reason::ZeroBase => f.write_str("backoff base delay must be greater than zero"),
            Reason::CapBelowBase { base, cap } => {
                write!(
                    f,
                    "backoff cap {cap:?} is less than the base delay {base:?}"
                )
            }
            Reason::Multiplier(m) => {
                write!(f, "backoff multiplier {m} must be finite and at least 1")
            }
        }
    }
}

impl std::error::Error for InvalidBackoff {}

fn check(base: Duration, cap: Duration) -> Result<(), InvalidBackoff> {
    let reason = if base.is_zero() {
        Reason::ZeroBase
    } else if cap < base {
        Reason::CapBelowBase { base, cap }
    } else {
        return Ok(());
    };
    Err(InvalidBackoff { reason })
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Nanoseconds to a `Duration`, saturating at [`Duration::MAX`].
fn from_nanos(nanos: u128) -> Duration {
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below 10⁹, so it fits in a u32.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// `min(cap, base · 2ⁿ)` in nanoseconds, exact and without overflow.
fn capped_exponential(base: Duration, cap: Duration, n: u32) -> u128 {
    let base = base.as_nanos();
    let grown = if base == 0 {
        0
    } else if n > base.leading_zeros() {
        u128::MAX
    } else {
        // n ≤ leading zeros, so no set bit is shifted out.
        base << n
    };
    grown.min(cap.as_nanos())
}

/// `lo + ⌊r · (hi − lo)⌋`, a uniform draw in `[lo, hi]` for `r` in `[0, 1)`; `lo` if
/// `hi < lo`.
fn uniform(lo: u128, hi: u128, r: f64) -> u128 {
    let span = hi.saturating_sub(lo);
    // `as` saturates; the `min` guards against `span as f64` rounding up.
    let offset = (span as f64 * r) as u128;
    lo + offset.min(span)
}

/// The ±20 % range around `v` nanoseconds: `(⌊0.8 · v⌋, ⌊1.2 · v⌋)`. `v` is at most
/// `Duration::MAX` in nanoseconds (below 2⁹⁵), so the products cannot overflow.
fn proportional_range(v: u128) -> (u128, u128) {
    (v * 4 / 5, v * 6 / 5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A source that always returns the same bits.
    #[derive(Debug)]
    struct Fixed(u64);

    impl RandomSource for Fixed {
        fn next_u64(&self) -> u64 {
            self.0
        }
    }

    fn run(backoff: Backoff, seed: u64, count: usize) -> Vec<Duration> {
        let rng = SplitMix64::new(seed);
        let mut state = BackoffState::new();
        (0..count)
            .map(|_| backoff.delay(&mut state, &rng))
            .collect()
    }

    /// Polly's `f(t) = 2ᵗ · tanh(√(4t))`, written independently of the implementation.
    fn polly_f(t: f64) -> f64 {
        2f64.powf(t) * (4.0 * t).sqrt().tanh()
    }

    #[test]
    fn constant_and_exponential_by_hand() {
        let constant = Backoff::constant(ms(30));
        assert_eq!(run(constant, 1, 4), [ms(30); 4]);
        assert_eq!(
            run(Backoff::constant(Duration::ZERO), 1, 2),
            [Duration::ZERO; 2]
        );

        let exp = Backoff::exponential(ms(100), Duration::from_secs(1)).unwrap();
        let expected = [100, 200, 400, 800, 1000, 1000].map(ms);
        assert_eq!(run(exp, 1, 6), expected);

        // A cap that is not a power-of-two multiple of the base.
        let exp = Backoff::exponential(ms(3), ms(20)).unwrap();
        assert_eq!(run(exp, 1, 5), [3, 6, 12, 20, 20].map(ms));
    }

    #[test]
    fn deterministic_schedules_draw_nothing() {
        let rng = SplitMix64::new(5);
        let mut state = BackoffState::new();
        Backoff::constant(MS).delay(&mut state, &rng);
        Backoff::exponential(MS, MS)
            .unwrap()
            .delay(&mut state, &rng);
        assert_eq!(rng.next_u64(), SplitMix64::new(5).next_u64());
    }

    #[test]
    fn jitter_extremes_by_hand() {
        // r = 0 and r = 1 − 2⁻⁵³ hit the bottom and (just under) the top of each range.
        let lo = Fixed(0);
        let hi = Fixed(u64::MAX);
        let base = ms(100);
        let cap = Duration::from_secs(1);
        let at = |b: Backoff, rng: &Fixed, n: u32| {
            let mut state = BackoffState::new();
            state.retries = n;
            b.delay(&mut state, rng)
        };
        let full = Backoff::full_jitter(base, cap).unwrap();
        assert_eq!(at(full, &lo, 2), Duration::ZERO);
        assert_eq!(at(full, &hi, 2), ms(400) - Duration::from_nanos(1));
        let equal = Backoff::equal_jitter(base, cap).unwrap();
        assert_eq!(at(equal, &lo, 3), ms(400));
        assert_eq!(at(equal, &hi, 3), ms(800) - Duration::from_nanos(1));
        let prop = Backoff::proportional_jitter(base, 2.0, cap).unwrap();
        assert_eq!(at(prop, &lo, 1), ms(160));
        assert_eq!(at(prop, &hi, 1), ms(240) - Duration::from_nanos(1));
        // Capped at 1 s before the jitter: up to 1.2 s.
        assert_eq!(at(prop, &lo, 9), ms(800));
        assert_eq!(at(prop, &hi, 9), ms(1200) - Duration::from_nanos(1));
        let dec = Backoff::decorrelated_jitter(base, cap).unwrap();
        assert_eq!(at(dec, &lo, 0), base);
        assert_eq!(at(dec, &hi, 0), ms(300) - Duration::from_nanos(1));
        // V2 at r = 0: t = 0, f = 0, so the first delay is zero.
        let v2 = Backoff::decorrelated_jitter_v2(base, cap).unwrap();
        assert_eq!(at(v2, &lo, 0), Duration::ZERO);
    }

    #[test]
    fn v2_first_delay_median_is_near_nine_tenths_of_median_first() {
        // f(0.5) / 1.4 = √2 · tanh(√2) / 1.4 ≈ 0.897: checks Polly's constants.
        let v2 = Backoff::decorrelated_jitter_v2(Duration::from_secs(1), Duration::MAX).unwrap();
        let rng = SplitMix64::new(11);
        let mut firsts: Vec<Duration> = (0..10_001)
            .map(|_| v2.delay(&mut BackoffState::new(), &rng))
            .collect();
        firsts.sort();
        let median = firsts[5_000].as_secs_f64();
        assert!((0.87..0.92).contains(&median), "{median}");
        let expected = polly_f(0.5) / 1.4;
        assert!((expected - 0.8974).abs() < 1e-3, "{expected}");
    }

    #[test]
    fn golden_values() {
        // Computed once from this implementation (seed 42) after checking the formulas by
        // hand; a change here means the schedule changed.
        let nanos = |b: Backoff| -> Vec<u64> {
            run(b, 42, 8)
                .iter()
                .map(|d| u64::try_from(d.as_nanos()).unwrap())
                .collect()
        };
        let base = ms(50);
        let cap = Duration::from_secs(1);
        // Each value was also reproduced by an independent Python transcription of the
        // formulas (and the first ones by hand: r₀ = 0.74156…, so full jitter gives
        // 0.74156 × 50 ms, equal 25 ms + 0.74156 × 25 ms, decorrelated 50 ms + 0.74156 ×
        // 100 ms, proportional 40 ms + 0.74156 × 20 ms).
        let golden: [(Backoff, [u64; 8]); 5] = [
            (
                Backoff::full_jitter(base, cap).unwrap(),
                [
                    37_078_243,
                    15_991_039,
                    55_720_226,
                    137_676_286,
                    30_424_134,
                    868_228_076,
                    218_405_193,
                    800_631_876,
                ],
            ),
            (
                Backoff::equal_jitter(base, cap).unwrap(),
                [
                    43_539_121,
                    57_995_519,
                    127_860_113,
                    268_838_143,
                    415_212_067,
                    934_114_038,
                    609_202_596,
                    900_315_938,
                ],
            ),
            (
                Backoff::decorrelated_jitter(base, cap).unwrap(),
                [
                    124_156_487,
                    101_566_218,
                    120_959_332,
                    157_689_701,
                    66_089_389,
                    178_730_585,
                    156_186_804,
                    385_112_808,
                ],
            ),
            (
                Backoff::decorrelated_jitter_v2(base, cap).unwrap(),
                [
                    56_019_816,
                    21_661_591,
                    94_781_834,
                    189_751_039,
                    224_098_877,
                    1_000_000_000,
                    573_123_794,
                    1_000_000_000,
                ],
            ),
            (
                Backoff::proportional_jitter(base, 2.0, cap).unwrap(),
                [
                    54_831_297,
                    86_396_415,
                    182_288_090,
                    375_070_514,
                    652_169_653,
                    1_147_291_230,
                    887_362_077,
                    1_120_252_750,
                ],
            ),
        ];
        for (backoff, expected) in golden {
            let got = nanos(backoff);
            // ±1 ns: the f64 transcendental functions may round differently elsewhere.
            let close = got.iter().zip(expected).all(|(&g, e)| g.abs_diff(e) <= 1);
            assert!(close, "{backoff:?}: got {got:?}");
        }
    }

    #[test]
    fn default_is_full_jitter_50ms_1s() {
        assert_eq!(
            Backoff::default(),
            Backoff::full_jitter(ms(50), Duration::from_secs(1)).unwrap()
        );
        assert_eq!(Backoff::default().max_delay(), Duration::from_secs(1));
    }

    #[test]
    fn max_delay() {
        assert_eq!(Backoff::constant(ms(7)).max_delay(), ms(7));
        let cap = Duration::from_secs(1);
        for b in [
            Backoff::exponential(MS, cap),
            Backoff::equal_jitter(MS, cap),
            Backoff::decorrelated_jitter(MS, cap),
            Backoff::decorrelated_jitter_v2(MS, cap),
        ] {
            assert_eq!(b.unwrap().max_delay(), cap);
        }
        let prop = Backoff::proportional_jitter(MS, 2.0, cap).unwrap();
        assert_eq!(prop.max_delay(), ms(1200));
        let prop = Backoff::proportional_jitter(MS, 2.0, Duration::MAX).unwrap();
        assert_eq!(prop.max_delay(), Duration::MAX);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let zero = Backoff::full_jitter(Duration::ZERO, ms(1)).unwrap_err();
        assert_eq!(
            zero.to_string(),
            "backoff base delay must be greater than zero"
        );
        let below = Backoff::exponential(ms(2), ms(1)).unwrap_err();
        assert_eq!(
            below.to_string(),
            "backoff cap 1ms is less than the base delay 2ms"
        );
        assert!(Backoff::equal_jitter(ms(2), ms(1)).is_err());
        assert!(Backoff::decorrelated_jitter(Duration::ZERO, ms(1)).is_err());
        assert!(Backoff::decorrelated_jitter_v2(ms(2), ms(1)).is_err());
        for m in [0.5, 0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = Backoff::proportional_jitter(MS, m, ms(10)).unwrap_err();
            assert!(err.to_string().contains("multiplier"), "{err}");
        }
        assert!(Backoff::proportional_jitter(Duration::ZERO, 2.0, MS).is_err());
        // The boundaries are allowed.
        assert!(Backoff::proportional_jitter(MS, 1.0, MS).is_ok());
        assert!(Backoff::exponential(Duration::from_nanos(1), Duration::from_nanos(1)).is_ok());
        let _: &dyn std::error::Error = &zero;
    }

    #[test]
    fn huge_retry_counts_and_caps_never_panic() {
        let big = Duration::MAX;
        let mut schedules = vec![Backoff::constant(big)];
        for (base, cap) in [(MS, big), (big, big), (Duration::from_nanos(1), MS)] {
            schedules.extend([
                Backoff::exponential(base, cap).unwrap(),
                Backoff::full_jitter(base, cap).unwrap(),
                Backoff::equal_jitter(base, cap).unwrap(),
                Backoff::decorrelated_jitter(base, cap).unwrap(),
                Backoff::decorrelated_jitter_v2(base, cap).unwrap(),
                Backoff::proportional_jitter(base, 1.0, cap).unwrap(),
                Backoff::proportional_jitter(base, 2.0, cap).unwrap(),
                Backoff::proportional_jitter(base, f64::MAX, cap).unwrap(),
            ]);
        }
        let rngs = [Fixed(0), Fixed(u64::MAX), Fixed(1 << 63)];
        for backoff in schedules {
            for rng in &rngs {
                for start in [0, 1, 63, 64, 127, 128, 1023, 1024, u32::MAX - 1, u32::MAX] {
                    let mut state = BackoffState::new();
                    state.retries = start;
                    for _ in 0..3 {
                        let d = backoff.delay(&mut state, rng);
                        assert!(d <= backoff.max_delay(), "{backoff:?} {start}: {d:?}");
                    }
                    assert_eq!(state.retries(), start.saturating_add(3));
                }
            }
        }
        // At u32::MAX the exponential schedules sit at the cap.
        let mut state = BackoffState::new();
        state.retries = u32::MAX;
        let exp = Backoff::exponential(MS, big).unwrap();
        assert_eq!(exp.delay(&mut state, &Fixed(0)), big);
        let v2 = Backoff::decorrelated_jitter_v2(MS, ms(5)).unwrap();
        assert_eq!(v2.delay(&mut state, &Fixed(0)), ms(5));
        assert_eq!(v2.delay(&mut state, &Fixed(0)), ms(5)); // ∞ − ∞ is the cap too
    }

    #[test]
    fn reset_starts_over() {
        let mut state = BackoffState::new();
        let rng = SplitMix64::new(1);
        let exp = Backoff::exponential(ms(10), Duration::from_secs(10)).unwrap();
        for _ in 0..5 {
            exp.delay(&mut state, &rng);
        }
        assert_eq!(state.retries(), 5);
        state.reset();
        assert_eq!(state, BackoffState::new());
        assert_eq!(exp.delay(&mut state, &rng), ms(10));
    }

    /// (base, cap) with base in 1 ns ..= 10 s and cap from base up to base + 100 s, or
    /// unbounded.
    fn base_and_cap() -> impl Strategy<Value = (Duration, Duration)> {
        (
            1u64..=10_000_000_000,
            prop_oneof![
                4 => (0u64..=100_000_000_000).prop_map(Some),
                1 => Just(None),
            ],
        )
            .prop_map(|(base, extra)| {
                let base = Duration::from_nanos(base);
                let cap = extra.map_or(Duration::MAX, |e| base + Duration::from_nanos(e));
                (base, cap)
            })
    }

    /// Any schedule, with random parameters.
    fn any_backoff() -> impl Strategy<Value = Backoff> {
        (base_and_cap(), 1.0f64..4.0, 0..7u8).prop_map(|((base, cap), m, which)| match which {
            0 => Backoff::constant(base),
            1 => Backoff::exponential(base, cap).unwrap(),
            2 => Backoff::full_jitter(base, cap).unwrap(),
            3 => Backoff::equal_jitter(base, cap).unwrap(),
            4 => Backoff::decorrelated_jitter(base, cap).unwrap(),
            5 => Backoff::decorrelated_jitter_v2(base, cap).unwrap(),
            _ => Backoff::proportional_jitter(base, m, cap).unwrap(),
        })
    }

    /// `min(cap, base · 2ⁿ)` in nanoseconds, for n < 40.
    fn expo(base: Duration, cap: Duration, n: u32) -> u128 {
        (base.as_nanos() * (1u128 << n)).min(cap.as_nanos())
    }

    const RETRIES: u32 = 40;

    proptest! {
        #[test]
        fn exponential_is_exact((base, cap) in base_and_cap()) {
            let b = Backoff::exponential(base, cap).unwrap();
            let mut state = BackoffState::new();
            for n in 0..RETRIES {
                let d = b.delay(&mut state, &Fixed(0));
                prop_assert_eq!(d.as_nanos(), expo(base, cap, n));
            }
        }

        #[test]
        fn full_jitter_is_within_zero_and_the_capped_exponential(
            (base, cap) in base_and_cap(),
            seed: u64,
        ) {
            let b = Backoff::full_jitter(base, cap).unwrap();
            for (n, d) in (0..RETRIES).zip(run(b, seed, RETRIES as usize)) {
                prop_assert!(d.as_nanos() <= expo(base, cap, n));
                prop_assert!(d <= cap);
            }
        }

        #[test]
        fn equal_jitter_is_within_half_and_all_of_the_capped_exponential(
            (base, cap) in base_and_cap(),
            seed: u64,
        ) {
            let b = Backoff::equal_jitter(base, cap).unwrap();
            for (n, d) in (0..RETRIES).zip(run(b, seed, RETRIES as usize)) {
                let v = expo(base, cap, n);
                prop_assert!((v / 2..=v).contains(&d.as_nanos()), "{n}: {d:?} vs {v}");
            }
        }

        #[test]
        fn decorrelated_jitter_stays_within_base_cap_and_thrice_the_previous(
            (base, cap) in base_and_cap(),
            seed: u64,
        ) {
            let b = Backoff::decorrelated_jitter(base, cap).unwrap();
            let mut prev = base;
            for d in run(b, seed, RETRIES as usize) {
                prop_assert!(base <= d && d <= cap, "{d:?}");
                prop_assert!(d <= prev.saturating_mul(3), "{d:?} > 3 × {prev:?}");
                prev = d;
            }
        }

        #[test]
        fn proportional_jitter_is_within_twenty_percent_of_the_capped_growth(
            (base, cap) in base_and_cap(),
            multiplier in 1.0f64..4.0,
            seed: u64,
        ) {
            let b = Backoff::proportional_jitter(base, multiplier, cap).unwrap();
            let cap_f = cap.as_nanos() as f64;
            for (n, d) in (0..RETRIES).zip(run(b, seed, RETRIES as usize)) {
                let v = (base.as_nanos() as f64 * multiplier.powi(n as i32)).min(cap_f);
                let d = d.as_nanos() as f64;
                // Integer nanoseconds and f64 rounding: 1 ns plus a relative 1e-12.
                let slack = 1.0 + v * 1e-12;
                prop_assert!(0.8 * v - slack <= d && d <= 1.2 * v + slack, "{n}: {d} vs {v}");
            }
        }

        #[test]
        fn decorrelated_v2_is_bounded_and_telescopes(
            (median, cap) in base_and_cap(),
            seed: u64,
        ) {
            let b = Backoff::decorrelated_jitter_v2(median, cap).unwrap();
            let m = median.as_nanos() as f64 / 1.4;
            let mut total = Duration::ZERO;
            for (n, d) in (0..RETRIES).zip(run(b, seed, RETRIES as usize)) {
                prop_assert!(d <= cap);
                let previous_total = total;
                total += d;
                prop_assert!(total >= previous_total);
                // Polly's per-retry bound: fₙ − fₙ₋₁ < f(n + 1) − f(n − 1).
                let n = f64::from(n);
                let bound = m * (polly_f(n + 1.0) - if n == 0.0 { 0.0 } else { polly_f(n - 1.0) });
                let slack = 1.0 + bound * 1e-12;
                prop_assert!((d.as_nanos() as f64) <= bound + slack, "{n}: {d:?} > {bound}");
                if cap == Duration::MAX {
                    // Uncapped, the time to retry n is f(tₙ) · m with tₙ in [n, n + 1).
                    let total = total.as_nanos() as f64;
                    let slack = (n + 1.0) + total * 1e-12;
                    prop_assert!(m * polly_f(n) - slack <= total, "{n}: {total}");
                    prop_assert!(total <= m * polly_f(n + 1.0) + slack, "{n}: {total}");
                }
            }
        }

        #[test]
        fn reset_makes_the_next_delay_a_first_delay(
            backoff in any_backoff(),
            advance in 0..50u32,
            seed: u64,
            other_seed: u64,
        ) {
            // The first delay from a fresh state ...
            let fresh = backoff.delay(&mut BackoffState::new(), &SplitMix64::new(seed));
            // ... equals the delay after a reset, given the same random draw: after a reset
            // the delay is the same function of the draw, so it has the same distribution.
            let mut state = BackoffState::new();
            let other = SplitMix64::new(other_seed);
            for _ in 0..advance {
                backoff.delay(&mut state, &other);
            }
            state.reset();
            prop_assert_eq!(state.retries(), 0);
            prop_assert_eq!(backoff.delay(&mut state, &SplitMix64::new(seed)), fresh);
            prop_assert_eq!(state.retries(), 1);
        }

        #[test]
        fn every_delay_is_at_most_max_delay(
            backoff in any_backoff(),
            seed: u64,
            start in prop_oneof![0..64u32, Just(u32::MAX - 2)],
        ) {
            let rng = SplitMix64::new(seed);
            let mut state = BackoffState::new();
            state.retries = start;
            for _ in 0..3 {
                prop_assert!(backoff.delay(&mut state, &rng) <= backoff.max_delay());
            }
        }
    }
}
