//! Parsing the `Retry-After` header (RFC 9110 §10.2.3).
//!
//! ```text
//! Retry-After = HTTP-date / delay-seconds
//! delay-seconds = 1*DIGIT
//! ```
//!
//! An HTTP-date may come in any of the three forms RFC 9110 §5.6.7 requires recipients to
//! accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
//! (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value into how long to wait from `now`.
///
/// - `delay-seconds` gives that many seconds; a number too large for a `u64` saturates at
///   `u64::MAX` seconds (callers cap hints anyway).
/// - An HTTP-date gives the time from `now` until that date; a date in the past gives zero.
///   Dates `httpdate` cannot represent (before 1970, or with leap second `:60`) give `None`.
/// - Surrounding spaces and tabs (HTTP's optional whitespace) are ignored.
/// - Anything else (empty, a sign, a fraction, other surrounding whitespace such as CR or
///   LF, an unknown date form, invalid UTF-8) gives `None`. This function never panics,
///   whatever the input.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast_core::retry_after::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // 1994-11-06T08:49:30Z
/// assert_eq!(parse_retry_after(b"120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
///     Some(Duration::from_secs(7)),
/// );
/// assert_eq!(parse_retry_after(b"soon", now), None);
/// ```
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = trim_ows(value);
    let (&first, &last) = (value.first()?, value.last()?);
    if value.iter().all(u8::is_ascii_digit) {
        return Some(Duration::from_secs(parse_saturating(value)));
    }
    // `httpdate` trims any whitespace (CR, LF, VT, FF too); only OWS may surround the value.
    if !first.is_ascii_graphic() || !last.is_ascii_graphic() {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Strips HTTP's optional whitespace (`OWS = *( SP / HTAB )`) from both ends.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Parses ASCII digits into a `u64`, saturating instead of overflowing.
fn parse_saturating(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// 1994-11-06T08:49:37Z, the date RFC 9110 uses in its examples.
    fn rfc_date() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn delay_seconds() {
        let now = rfc_date();
        assert_eq!(parse_retry_after(b"0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(b" 30\t", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(b"99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn all_three_date_forms() {
        let now = rfc_date() - Duration::from_secs(10);
        for form in [
            &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(form, now),
                Some(Duration::from_secs(10)),
                "{}",
                String::from_utf8_lossy(form)
            );
        }
    }

    #[test]
    fn past_date_is_zero() {
        let now = rfc_date() + Duration::from_secs(3_600);
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_none() {
        let now = rfc_date();
        for bad in [
            &b""[..],
            b"   ",
            b"-1",
            b"+5",
            b"1.5",
            b"10s",
            b"tomorrow",
            b"Sun, 06 Nov 1994 08:49:37",
            b"Sun, 32 Nov 1994 08:49:37 GMT",
            b"\xff\xfe",
            b"5\n",
            b"\r\n5",
            b"\x0c5",
            b"\x0bSun, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT\r\n",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
