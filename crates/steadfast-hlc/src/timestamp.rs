//! The 64-bit HLC timestamp and its encodings.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bits of the logical counter, the low bits of a [`Timestamp`].
pub(crate) const LOGICAL_BITS: u32 = 12;
/// Mask of the logical counter.
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// The largest physical time a timestamp holds: 2^52 - 1 microseconds after the Unix epoch
/// (2112-09-17T23:53:47.370495Z).
pub(crate) const MAX_PHYSICAL_MICROS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

/// A hybrid logical clock timestamp: 52 bits of physical time and 12 bits of logical counter
/// in one `u64`.
///
/// # Layout
///
/// ```text
///  63                                                  12 11          0
/// +------------------------------------------------------+-------------+
/// |  physical: microseconds since the Unix epoch (52 bit) | logical (12)|
/// +------------------------------------------------------+-------------+
/// ```
///
/// This is YugabyteDB's and Kudu's `HybridTime` layout. We chose it over the HLC paper's
/// 48-bit NTP-fraction time plus 16-bit counter because:
///
/// - microseconds read and print as themselves (the paper's 48 bits of NTP time tick every
///   15.26 µs and need a conversion to print);
/// - 12 logical bits allow 4,096 events per microsecond per node before a carry, which no
///   single clock reaches (one `now()` costs tens of nanoseconds), so the logical part stays
///   tiny, as the paper predicts;
/// - 52 bits of microseconds last until the year 2112.
///
/// Comparing two timestamps is comparing two integers, so the derived `Ord` is the HLC order
/// (physical first, then logical). When the logical counter overflows, the carry moves into
/// the physical part: `(t, 4095) + 1 = (t + 1 µs, 0)`, which keeps the order and costs one
/// microsecond of drift ahead of physical time, never a step back.
///
/// [`to_be_bytes`](Self::to_be_bytes) gives bytes that sort like time (for keys in ordered
/// stores); [`Display`](fmt::Display) prints RFC 3339 with microseconds, a comma and the
/// logical counter, e.g. `2026-11-26T22:26:27.123456Z,5`, and [`FromStr`] reads that form.
///
/// Timestamps are not unique across nodes: pair one with a [`NodeId`] in a
/// [`UniqueTimestamp`] for a total order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch with logical 0: smaller than every other timestamp.
    pub const ZERO: Self = Self(0);
    /// The largest timestamp.
    pub const MAX: Self = Self(u64::MAX);

    /// A timestamp from its physical part (microseconds since the Unix epoch) and its logical
    /// counter, or `None` when `physical_micros` exceeds 52 bits or `logical` exceeds 12 bits.
    pub const fn new(physical_micros: u64, logical: u16) -> Option<Self> {
        if physical_micros > MAX_PHYSICAL_MICROS || logical as u64 > LOGICAL_MASK {
            return None;
        }
        Some(Self((physical_micros << LOGICAL_BITS) | logical as u64))
    }

    /// The timestamp whose packed representation is `bits`.
    pub const fn from_u64(bits: u64) -> Self {
        Self(bits)
    }

    /// The packed representation: compare these to compare timestamps.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The physical part, in microseconds since the Unix epoch.
    pub const fn physical_micros(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter (0 to 4095).
    pub const fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The physical part as a wall time.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.physical_micros())
    }

    /// The timestamp of `time` with logical 0, truncated to the microsecond; a time before the
    /// epoch gives [`Timestamp::ZERO`] and one after 2112 the largest physical time.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self::from_physical(since)
    }

    /// The timestamp `since` after the epoch with logical 0, saturating at 2112.
    pub(crate) fn from_physical(since: Duration) -> Self {
        Self(physical_micros_saturating(since) << LOGICAL_BITS)
    }

    /// Big-endian bytes: byte-wise order equals timestamp order.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The timestamp from [`to_be_bytes`](Self::to_be_bytes) output.
    pub const fn from_be_bytes(bytes: [u8; 8]) -> Self {
        Self(u64::from_be_bytes(bytes))
    }
}

/// Microseconds since the epoch, saturating at the largest physical time.
#[inline]
pub(crate) fn physical_micros_saturating(since: Duration) -> u64 {
    // u64 arithmetic: cheaper than `as_micros`' u128 on the hot path.
    since
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(since.subsec_micros()))
        .min(MAX_PHYSICAL_MICROS)
}

impl From<Timestamp> for u64 {
    fn from(ts: Timestamp) -> Self {
        ts.0
    }
}

impl From<u64> for Timestamp {
    fn from(bits: u64) -> Self {
        Self(bits)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.physical_micros();
        let secs = micros / 1_000_000;
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z,{}",
            rem / 3_600,
            rem / 60 % 60,
            rem % 60,
            micros % 1_000_000,
            self.logical()
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// A string that is not a timestamp in the form [`Timestamp`]'s `Display` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTimestampError {
    reason: &'static str,
}

impl fmt::Display for ParseTimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid HLC timestamp ({}); expected e.g. 2026-11-26T22:26:27.123456Z,5",
            self.reason
        )
    }
}

impl std::error::Error for ParseTimestampError {}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    /// Parses `YYYY-MM-DDTHH:MM:SS.ffffffZ,L`: UTC, exactly six fractional digits, a logical
    /// counter from 0 to 4095, years 1970 to 2112.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseTimestampError { reason };
        let b = s.as_bytes();
        if b.len() < 29 || b.len() > 32 {
            return Err(err("wrong length"));
        }
        let shape_ok = b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[26] == b'Z'
            && b[27] == b','
            && b[28..].iter().all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(err("not YYYY-MM-DDTHH:MM:SS.ffffffZ,L"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<u64, ParseTimestampError> {
            b[range].iter().try_fold(0u64, |acc, &d| {
                if d.is_ascii_digit() {
                    Ok(acc * 10 + u64::from(d - b'0'))
                } else {
                    Err(err("expected a digit"))
                }
            })
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let (fraction, logical) = (num(20..26)?, num(28..b.len())?);
        if !(1970..=2112).contains(&year) || !(1..=12).contains(&month) {
            return Err(err("year or month out of range"));
        }
        if day == 0 || day > days_in_month(year as i64, month as u32) {
            return Err(err("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(err("time of day out of range"));
        }
        let days = days_from_civil(year as i64, month as u32, day as u32) as u64;
        let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
        let micros = secs * 1_000_000 + fraction;
        let logical = u16::try_from(logical).map_err(|_| err("logical counter too large"))?;
        Self::new(micros, logical).ok_or(err("beyond the timestamp range"))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the inverse of the above).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The identity of a node, to break ties between equal timestamps from different nodes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A timestamp and the node that issued it: a total order across nodes.
///
/// Ordered by timestamp, then node. Two nodes can issue the same [`Timestamp`]; with distinct
/// node ids, no two `UniqueTimestamp`s are equal.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UniqueTimestamp {
    /// The HLC timestamp.
    pub timestamp: Timestamp,
    /// The node that issued it.
    pub node: NodeId,
}

impl fmt::Display for UniqueTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.timestamp, self.node)
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

    /// Human-readable formats (JSON, TOML) get the `Display` string; binary formats the
    /// packed `u64`.
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl Serialize for Timestamp {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            if serializer.is_human_readable() {
                serializer.collect_str(self)
            } else {
                serializer.serialize_u64(self.as_u64())
            }
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<'de> Deserialize<'de> for Timestamp {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            if deserializer.is_human_readable() {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            } else {
                u64::deserialize(deserializer).map(Timestamp::from_u64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_packs_physical_then_logical() {
        let ts = Timestamp::new(1_000_000, 7).expect("in range");
        assert_eq!(ts.as_u64(), (1_000_000 << 12) | 7);
        assert_eq!(ts.physical_micros(), 1_000_000);
        assert_eq!(ts.logical(), 7);
        assert_eq!(Timestamp::new(MAX_PHYSICAL_MICROS + 1, 0), None);
        assert_eq!(Timestamp::new(0, 4096), None);
    }

    #[test]
    fn logical_overflow_carries_into_physical() {
        let ts = Timestamp::new(5, 4095).expect("in range");
        let next = Timestamp::from_u64(ts.as_u64() + 1);
        assert_eq!((next.physical_micros(), next.logical()), (6, 0));
        assert!(next > ts);
    }

    #[test]
    fn display_known_values() {
        assert_eq!(Timestamp::ZERO.to_string(), "1970-01-01T00:00:00.000000Z,0");
        let ts = Timestamp::new(784_111_777_000_042, 3).expect("in range");
        assert_eq!(ts.to_string(), "1994-11-06T08:49:37.000042Z,3");
        assert_eq!(
            Timestamp::new(MAX_PHYSICAL_MICROS, 4095)
                .expect("in range")
                .to_string(),
            "2112-09-17T23:53:47.370495Z,4095"
        );
        // 2000-02-29 is a leap day (divisible by 400).
        let leap = Timestamp::new(951_782_400_000_000, 0).expect("in range");
        assert_eq!(leap.to_string(), "2000-02-29T00:00:00.000000Z,0");
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in [
            "",
            "2026-11-26T22:26:27.123456Z",
            "2026-11-26T22:26:27.123456Z,",
            "2026-11-26T22:26:27.12345Z,1",
            "2026-11-26 22:26:27.123456Z,1",
            "2026-13-26T22:26:27.123456Z,1",
            "2026-02-29T22:26:27.123456Z,1",
            "2026-11-26T24:00:00.000000Z,1",
            "2026-11-26T22:26:60.000000Z,1",
            "1969-12-31T23:59:59.999999Z,0",
            "2113-01-01T00:00:00.000000Z,0",
            "2112-09-17T23:53:47.370496Z,0",
            "2026-11-26T22:26:27.123456Z,4096",
            "2026-11-26T22:26:27.123456Z,+1",
            "2026-11-26T22:26:27.123456Z,99999",
            "२०२६-11-26T22:26:27.123456Z,1",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn be_bytes_round_trip() {
        let ts = Timestamp::new(123_456_789, 42).expect("in range");
        assert_eq!(Timestamp::from_be_bytes(ts.to_be_bytes()), ts);
    }

    #[test]
    fn unique_timestamp_orders_by_time_then_node() {
        let t = Timestamp::new(10, 0).expect("in range");
        let a = UniqueTimestamp {
            timestamp: t,
            node: NodeId(2),
        };
        let b = UniqueTimestamp {
            timestamp: t,
            node: NodeId(1),
        };
        let c = UniqueTimestamp {
            timestamp: Timestamp::new(10, 1).expect("in range"),
            node: NodeId(0),
        };
        assert!(b < a && a < c);
        assert_eq!(a.to_string(), "1970-01-01T00:00:00.000010Z,0@2");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(physical in 0..=MAX_PHYSICAL_MICROS, logical in 0u16..4096) {
            let ts = Timestamp::new(physical, logical).expect("in range");
            prop_assert_eq!(ts.to_string().parse::<Timestamp>(), Ok(ts));
        }

        #[test]
        fn byte_order_is_time_order(a: u64, b: u64) {
            let (a, b) = (Timestamp::from_u64(a), Timestamp::from_u64(b));
            prop_assert_eq!(a.cmp(&b), a.to_be_bytes().cmp(&b.to_be_bytes()));
        }

        #[test]
        fn display_order_is_time_order_within_a_logical_width(
            a in 0..=MAX_PHYSICAL_MICROS, b in 0..=MAX_PHYSICAL_MICROS, l in 0u16..10,
        ) {
            // Same logical width, so the fixed-width prefix decides: strings sort like time.
            let (ta, tb) = (Timestamp::new(a, l).expect("in range"), Timestamp::new(b, l).expect("in range"));
            prop_assert_eq!(ta.cmp(&tb), ta.to_string().cmp(&tb.to_string()));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Timestamp>();
        }

        #[test]
        fn system_time_round_trip_truncates_to_micros(micros in 0..=MAX_PHYSICAL_MICROS, nanos in 0u64..1000) {
            let time = UNIX_EPOCH + Duration::from_micros(micros) + Duration::from_nanos(nanos);
            let ts = Timestamp::from_system_time(time);
            prop_assert_eq!(ts.physical_micros(), micros);
            prop_assert_eq!(ts.logical(), 0);
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_is_string_for_json() {
        let ts = Timestamp::new(784_111_777_000_042, 3).expect("in range");
        let json = serde_json::to_string(&ts).expect("serializes");
        assert_eq!(json, "\"1994-11-06T08:49:37.000042Z,3\"");
        assert_eq!(
            serde_json::from_str::<Timestamp>(&json).expect("parses"),
            ts
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
