//! Deadline and priority extraction: `grpc-timeout`, `x-request-timeout`, the `Deadline`
//! extension, the priority header and extension. Malformed input gives a typed error or
//! the documented fallback, never a panic.

use std::time::Duration;

use proptest::prelude::*;
use steadfast_shed::deadline::{
    InvalidTimeoutKind, format_grpc_timeout, parse_grpc_timeout, parse_timeout_ms,
};
use steadfast_shed::{
    Deadline, DeadlineOf, FromExtension, FromHeader, HttpDeadline, Priority, PriorityOf,
};
use tokio::time::Instant;

#[test]
fn grpc_timeout_units() {
    let cases: [(&[u8], Duration); 7] = [
        (b"1H", Duration::from_secs(3600)),
        (b"2M", Duration::from_secs(120)),
        (b"3S", Duration::from_secs(3)),
        (b"250m", Duration::from_millis(250)),
        (b"7u", Duration::from_micros(7)),
        (b"99999999n", Duration::from_nanos(99_999_999)),
        (b"0m", Duration::ZERO),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_grpc_timeout(value), Ok(expected), "{value:?}");
    }
    assert_eq!(
        parse_grpc_timeout(b"99999999H"),
        Ok(Duration::from_secs(99_999_999 * 3600))
    );
}

#[test]
fn malformed_grpc_timeouts_are_typed_errors() {
    let kind = |v: &[u8]| parse_grpc_timeout(v).map_err(|e| e.kind());
    assert_eq!(kind(b""), Err(InvalidTimeoutKind::Empty));
    assert_eq!(kind(b"S"), Err(InvalidTimeoutKind::Empty));
    assert_eq!(kind(b"123456789S"), Err(InvalidTimeoutKind::TooLong));
    assert_eq!(kind(b"10"), Err(InvalidTimeoutKind::InvalidUnit));
    assert_eq!(kind(b"10s"), Err(InvalidTimeoutKind::InvalidUnit));
    assert_eq!(kind(b"1 S"), Err(InvalidTimeoutKind::NotADigit));
    assert_eq!(kind(b"-1S"), Err(InvalidTimeoutKind::NotADigit));
    assert_eq!(kind(b"+1S"), Err(InvalidTimeoutKind::NotADigit));
}

#[test]
fn request_timeout_header_is_milliseconds() {
    assert_eq!(parse_timeout_ms(b"1500"), Ok(Duration::from_millis(1500)));
    assert_eq!(
        parse_timeout_ms(b"999999999999").map(|d| d.as_secs()),
        Ok(999_999_999)
    );
    let kind = |v: &[u8]| parse_timeout_ms(v).map_err(|e| e.kind());
    assert_eq!(kind(b"1000000000000"), Err(InvalidTimeoutKind::TooLong));
    assert_eq!(kind(b"1.5"), Err(InvalidTimeoutKind::NotADigit));
    assert_eq!(kind(b"15ms"), Err(InvalidTimeoutKind::NotADigit));
    assert_eq!(kind(b""), Err(InvalidTimeoutKind::Empty));
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        let _ = parse_grpc_timeout(&bytes);
        let _ = parse_timeout_ms(&bytes);
        let _ = Priority::from_bytes(&bytes);
    }

    #[test]
    fn grpc_timeout_round_trips(n in 0u64..100_000_000, unit in 0usize..6) {
        let (suffix, expected) = [
            ('n', Duration::from_nanos(n)),
            ('u', Duration::from_micros(n)),
            ('m', Duration::from_millis(n)),
            ('S', Duration::from_secs(n)),
            ('M', Duration::from_secs(n * 60)),
            ('H', Duration::from_secs(n * 3600)),
        ][unit];
        let text = format!("{n}{suffix}");
        prop_assert_eq!(parse_grpc_timeout(text.as_bytes()), Ok(expected));
        // Formatting never shortens the timeout, and stays within one unit of it.
        let back = parse_grpc_timeout(format_grpc_timeout(expected).as_bytes()).unwrap();
        prop_assert!(back >= expected);
        prop_assert!(back - expected < Duration::from_secs(3600));
    }

    #[test]
    fn formatted_timeouts_are_exact_below_100_ms(nanos in 0u64..100_000_000) {
        let d = Duration::from_nanos(nanos);
        prop_assert_eq!(parse_grpc_timeout(format_grpc_timeout(d).as_bytes()), Ok(d));
    }
}

fn request() -> http::request::Builder {
    http::Request::builder()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn http_deadline_prefers_the_extension_then_the_earliest_header() {
    let now = Instant::now();
    let both = request()
        .header("grpc-timeout", "2S")
        .header("x-request-timeout", "500")
        .body(())
        .unwrap();
    assert_eq!(
        HttpDeadline.deadline_of(&both, now),
        Some(now + Duration::from_millis(500))
    );
    let grpc = request().header("grpc-timeout", "20m").body(()).unwrap();
    assert_eq!(
        HttpDeadline.deadline_of(&grpc, now),
        Some(now + Duration::from_millis(20))
    );
    let mut extended = request().header("grpc-timeout", "20m").body(()).unwrap();
    let at = now + Duration::from_secs(9);
    extended.extensions_mut().insert(Deadline(at));
    assert_eq!(HttpDeadline.deadline_of(&extended, now), Some(at));
    let none = request().body(()).unwrap();
    assert_eq!(HttpDeadline.deadline_of(&none, now), None);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn malformed_deadline_headers_are_ignored() {
    let now = Instant::now();
    let bad = request()
        .header("grpc-timeout", "soon")
        .header("x-request-timeout", "300")
        .body(())
        .unwrap();
    assert_eq!(
        HttpDeadline.deadline_of(&bad, now),
        Some(now + Duration::from_millis(300))
    );
    let all_bad = request()
        .header("x-request-timeout", "-1")
        .body(())
        .unwrap();
    assert_eq!(HttpDeadline.deadline_of(&all_bad, now), None);
}

#[test]
fn priority_names_parse_strictly() {
    for p in Priority::ALL {
        assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
        assert_eq!(p.as_str().to_uppercase().parse::<Priority>(), Ok(p));
    }
    for bad in [
        "",
        "Critical",
        "critical ",
        "CRITICALPLUS",
        "critical-plus",
        "high",
    ] {
        assert!(bad.parse::<Priority>().is_err(), "{bad:?}");
    }
    assert!(Priority::CriticalPlus > Priority::Critical);
    assert!(Priority::SheddablePlus > Priority::Sheddable);
    assert_eq!(Priority::default(), Priority::Critical);
}

#[test]
fn priority_header_falls_back_on_bad_values() {
    let from = FromHeader::new().with_fallback(Priority::SheddablePlus);
    let of = |value: Option<&[&str]>| {
        let mut b = request();
        for v in value.unwrap_or_default() {
            b = b.header("x-request-criticality", *v);
        }
        from.priority_of(&b.body(()).unwrap())
    };
    assert_eq!(of(Some(&["sheddable"])), Priority::Sheddable);
    assert_eq!(of(Some(&["CRITICAL_PLUS"])), Priority::CriticalPlus);
    assert_eq!(of(None), Priority::SheddablePlus);
    assert_eq!(of(Some(&["urgent"])), Priority::SheddablePlus);
    assert_eq!(of(Some(&["critical", "critical"])), Priority::Critical);
    assert_eq!(
        of(Some(&["critical_plus", "sheddable"])),
        Priority::SheddablePlus
    );
    let custom = FromHeader::new().with_header(http::HeaderName::from_static("x-tier"));
    let req = request().header("x-tier", "sheddable").body(()).unwrap();
    assert_eq!(custom.priority_of(&req), Priority::Sheddable);
}

#[test]
fn priority_extension_and_closures() {
    let mut req = request().body(()).unwrap();
    assert_eq!(FromExtension::new().priority_of(&req), Priority::Critical);
    req.extensions_mut().insert(Priority::Sheddable);
    assert_eq!(FromExtension::new().priority_of(&req), Priority::Sheddable);
    let by_len = |s: &String| {
        if s.len() > 3 {
            Priority::Sheddable
        } else {
            Priority::CriticalPlus
        }
    };
    assert_eq!(by_len.priority_of(&"long".to_owned()), Priority::Sheddable);
    assert_eq!(
        Priority::SheddablePlus.priority_of(&()),
        Priority::SheddablePlus
    );
}
