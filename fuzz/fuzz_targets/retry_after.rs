//! Fuzzes `parse_retry_after`: it must never panic, and must agree with simple models.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use steadfast_core::retry_after::parse_retry_after;

/// 1994-11-06T08:49:37Z, the date RFC 9110 uses in its examples.
const NOW_SECS: u64 = 784_111_777;
/// 9999-12-31T23:59:59Z, the latest HTTP-date there is (the year has four digits).
const MAX_DATE_SECS: u64 = 253_402_300_799;

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let parsed = parse_retry_after(data, now);

    // Surrounding spaces and tabs (OWS) never change the result.
    let trimmed = trim_ows(data);
    assert_eq!(parse_retry_after(trimmed, now), parsed);

    if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit) {
        // delay-seconds: exactly that many seconds, saturating at u64::MAX.
        let text = std::str::from_utf8(trimmed).expect("ASCII digits are UTF-8");
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(parsed, Some(Duration::from_secs(secs)), "{text:?}");
    } else if let Some(wait) = parsed {
        // Otherwise it can only have been an HTTP-date: ASCII, and no later than year 9999.
        assert!(trimmed.is_ascii(), "{trimmed:?}");
        assert!(
            wait <= Duration::from_secs(MAX_DATE_SECS - NOW_SECS),
            "{wait:?}"
        );
    }
});

/// Strips spaces and tabs from both ends.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}
