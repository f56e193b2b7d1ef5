//! Property tests for `steadfast_core::retry_after::parse_retry_after`.
//!
//! Every time here is fixed (`UNIX_EPOCH + Duration`): the wall clock is never read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use steadfast_core::retry_after::parse_retry_after;

/// 9999-12-31T23:59:59Z, the last instant `httpdate` can format or parse.
const MAX_SECS: u64 = 253_402_300_799;

/// 2069-12-31T23:59:59Z, the last instant an RFC 850 date can denote when parsed by `httpdate`.
///
/// RFC 850 dates carry a two-digit year. `httpdate` 1.0.3 (`parse_rfc850_date` in
/// `src/date.rs`) uses a fixed pivot: `00..=69` means 2000..=2069 and `70..=99` means
/// 1970..=1999. Only 1970..=2069 therefore round-trip through that form, so the RFC 850
/// properties stay inside it. (RFC 9110 §5.6.7 instead asks for a sliding window: a year
/// that appears more than 50 years in the future is taken as the most recent past year
/// with the same last two digits. The two rules agree for the current century, but e.g.
/// in 2026 `-70` means 1970 to `httpdate` and 2070 to RFC 9110.)
const RFC850_MAX_SECS: u64 = 3_155_759_999;

const WDAY_ABBR: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const WDAY_FULL: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A UTC instant broken into the fields an HTTP-date shows.
struct Civil {
    /// 0 = Sunday.
    wday: usize,
    day: u64,
    /// 1..=12.
    month: usize,
    year: u64,
    hour: u64,
    min: u64,
    sec: u64,
}

impl Civil {
    /// Splits whole seconds since the epoch, independently of `httpdate`
    /// (Howard Hinnant's `civil_from_days`).
    fn from_secs(secs: u64) -> Self {
        let days = secs / 86_400;
        let of_day = secs % 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        Self {
            // 1970-01-01 was a Thursday.
            wday: usize::try_from((days + 4) % 7).unwrap(),
            day,
            month: usize::try_from(month).unwrap(),
            year,
            hour: of_day / 3_600,
            min: of_day % 3_600 / 60,
            sec: of_day % 60,
        }
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    fn imf_fixdate(&self) -> String {
        format!(
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            WDAY_ABBR[self.wday],
            self.day,
            MONTHS[self.month - 1],
            self.year,
            self.hour,
            self.min,
            self.sec
        )
    }

    /// `Sunday, 06-Nov-94 08:49:37 GMT`
    fn rfc850(&self) -> String {
        format!(
            "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} GMT",
            WDAY_FULL[self.wday],
            self.day,
            MONTHS[self.month - 1],
            self.year % 100,
            self.hour,
            self.min,
            self.sec
        )
    }

    /// `Sun Nov  6 08:49:37 1994`
    fn asctime(&self) -> String {
        format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {:04}",
            WDAY_ABBR[self.wday],
            MONTHS[self.month - 1],
            self.day,
            self.hour,
            self.min,
            self.sec,
            self.year
        )
    }
}

/// Optional whitespace as HTTP defines it: spaces and tabs.
fn ows() -> impl Strategy<Value = String> {
    "[ \t]{0,3}"
}

/// Inputs worth throwing at the parser: raw bytes, date-alphabet soup, and valid dates with
/// one byte overwritten.
fn messy_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48),
        "[A-Za-z0-9 ,:\t-]{0,40}".prop_map(String::into_bytes),
        (
            0..=MAX_SECS,
            0usize..3,
            any::<prop::sample::Index>(),
            any::<u8>()
        )
            .prop_map(|(t, form, i, b)| {
                let civil = Civil::from_secs(t);
                let mut s = match form {
                    0 => civil.imf_fixdate(),
                    1 => civil.rfc850(),
                    _ => civil.asctime(),
                }
                .into_bytes();
                let i = i.index(s.len());
                s[i] = b;
                s
            }),
    ]
}

proptest! {
    #[test]
    fn never_panics(input in messy_input(), now in 0..=2 * MAX_SECS) {
        let _ = parse_retry_after(&input, at(now));
    }

    #[test]
    fn delay_seconds_round_trip(
        n in any::<u64>(),
        zeros in "0{0,3}",
        lead in ows(),
        trail in ows(),
        now in 0..=MAX_SECS,
    ) {
        let text = format!("{lead}{zeros}{n}{trail}");
        prop_assert_eq!(
            parse_retry_after(text.as_bytes(), at(now)),
            Some(Duration::from_secs(n))
        );
    }

    #[test]
    fn huge_delay_seconds_saturate(digits in "[1-9][0-9]{20,40}") {
        prop_assert_eq!(
            parse_retry_after(digits.as_bytes(), at(0)),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    /// Guards the test's own calendar code, which the RFC 850 and asctime properties rely on.
    #[test]
    fn test_formatter_agrees_with_httpdate(t in 0..=MAX_SECS) {
        prop_assert_eq!(Civil::from_secs(t).imf_fixdate(), httpdate::fmt_http_date(at(t)));
    }

    #[test]
    fn imf_fixdate_gives_time_until_date(t in 0..=MAX_SECS, d in any::<u64>(), lead in ows(), trail in ows()) {
        let d = d % (t + 1);
        let text = format!("{lead}{}{trail}", httpdate::fmt_http_date(at(t)));
        prop_assert_eq!(
            parse_retry_after(text.as_bytes(), at(t - d)),
            Some(Duration::from_secs(d))
        );
    }

    #[test]
    fn past_imf_fixdate_gives_zero(t in 0..=MAX_SECS, after in 0..=MAX_SECS) {
        let text = httpdate::fmt_http_date(at(t));
        prop_assert_eq!(parse_retry_after(text.as_bytes(), at(t + after)), Some(Duration::ZERO));
    }

    #[test]
    fn rfc850_matches_imf_fixdate(t in 0..=RFC850_MAX_SECS, now in 0..=MAX_SECS) {
        let civil = Civil::from_secs(t);
        let expected = parse_retry_after(civil.imf_fixdate().as_bytes(), at(now));
        prop_assert!(expected.is_some());
        prop_assert_eq!(parse_retry_after(civil.rfc850().as_bytes(), at(now)), expected);
    }

    #[test]
    fn asctime_matches_imf_fixdate(t in 0..=MAX_SECS, now in 0..=MAX_SECS) {
        let civil = Civil::from_secs(t);
        let expected = parse_retry_after(civil.imf_fixdate().as_bytes(), at(now));
        prop_assert!(expected.is_some());
        prop_assert_eq!(parse_retry_after(civil.asctime().as_bytes(), at(now)), expected);
    }

    #[test]
    fn signed_numbers_are_none(sign in "[+-]", digits in "[0-9]{1,25}", lead in ows()) {
        let text = format!("{lead}{sign}{digits}");
        prop_assert_eq!(parse_retry_after(text.as_bytes(), at(0)), None);
    }

    #[test]
    fn fractions_are_none(int in "[0-9]{0,12}", frac in "[0-9]{0,12}") {
        let text = format!("{int}.{frac}");
        prop_assert_eq!(parse_retry_after(text.as_bytes(), at(0)), None);
    }

    /// Anything after the digits other than spaces and tabs (HTTP's OWS) is garbage.
    #[test]
    fn trailing_garbage_is_none(
        digits in "[0-9]{1,25}",
        gap in ows(),
        garbage in non_digit_non_ows(),
        rest in any::<String>(),
    ) {
        let text = format!("{digits}{gap}{garbage}{rest}");
        prop_assert_eq!(parse_retry_after(text.as_bytes(), at(0)), None, "{:?}", text);
    }

    /// Only spaces and tabs may surround a value: not CR, LF, VT or FF (which `httpdate`
    /// would otherwise trim from a date itself).
    #[test]
    fn other_whitespace_around_value_is_none(
        t in 0..=MAX_SECS,
        as_date in any::<bool>(),
        ws in prop::sample::select(vec!['\r', '\n', '\x0b', '\x0c']),
        before in any::<bool>(),
        lead in ows(),
        trail in ows(),
    ) {
        let value = if as_date { httpdate::fmt_http_date(at(t)) } else { t.to_string() };
        let text = if before {
            format!("{lead}{ws}{value}{trail}")
        } else {
            format!("{lead}{value}{ws}{trail}")
        };
        prop_assert_eq!(parse_retry_after(text.as_bytes(), at(0)), None, "{:?}", text);
    }
}

/// A character that is neither an ASCII digit nor OWS, biased towards ASCII (controls included).
fn non_digit_non_ows() -> impl Strategy<Value = char> {
    prop_oneof![(0u8..0x80).prop_map(char::from), any::<char>()].prop_filter("digit or OWS", |c| {
        !c.is_ascii_digit() && !matches!(c, ' ' | '\t')
    })
}

#[test]
fn dates_httpdate_cannot_represent_are_none() {
    for date in [
        // Valid HTTP-dates by RFC 9110's grammar, but before 1970.
        "Wed, 31 Dec 1969 23:59:59 GMT",
        "Wed Dec 31 23:59:59 1969",
        // RFC 9110 §5.6.7 allows second 60 (a leap second); `httpdate` does not.
        "Sat, 31 Dec 2016 23:59:60 GMT",
    ] {
        assert_eq!(parse_retry_after(date.as_bytes(), at(0)), None, "{date}");
    }
}
