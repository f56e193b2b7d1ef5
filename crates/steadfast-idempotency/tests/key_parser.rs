//! Property tests of `parse_idempotency_key`: it never panics, accepts every valid key,
//! and only returns keys within the limits.

use proptest::prelude::*;
use steadfast_idempotency::{KeyError, MAX_KEY_LEN, parse_idempotency_key};

/// Encodes `key` as an RFC 8941 sf-string.
fn sf_string(key: &str) -> String {
    let mut out = String::from("\"");
    for c in key.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn printable(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(0x20u8..=0x7e, len)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

fn bare(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(0x21u8..=0x7e, len).prop_map(|bytes| {
        bytes
            .into_iter()
            .filter(|b| *b != b'"' && *b != b',')
            .map(char::from)
            .collect()
    })
}

/// Valid RFC 8941 parameters.
fn parameters() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(String::new()),
        (-999_999i64..999_999).prop_map(|n| format!("={n}")),
        Just("=1.5".to_owned()),
        Just("=?1".to_owned()),
        Just("=:aGVsbG8=:".to_owned()),
        Just("=tok/en".to_owned()),
        printable(0..=20).prop_map(|s| format!("={}", sf_string(&s))),
    ];
    proptest::collection::vec(("[a-z*][a-z0-9_.*-]{0,5}", value), 0..3).prop_map(|params| {
        params
            .into_iter()
            .map(|(key, value)| format!(";{key}{value}"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_and_accepted_keys_are_within_limits(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        lenient: bool,
    ) {
        if let Ok(key) = parse_idempotency_key(&input, lenient) {
            let key = key.as_str();
            prop_assert!((1..=MAX_KEY_LEN).contains(&key.len()));
            prop_assert!(key.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        }
    }

    #[test]
    fn never_panics_on_near_valid_input(
        key in printable(0..=300),
        params in parameters(),
        junk in proptest::collection::vec(any::<u8>(), 0..4),
        cut in 0usize..400,
    ) {
        let mut input = format!("{}{params}", sf_string(&key)).into_bytes();
        input.extend(junk);
        input.truncate(cut.min(input.len()));
        let _ = parse_idempotency_key(&input, true);
        let _ = parse_idempotency_key(&input, false);
    }

    #[test]
    fn every_sf_string_key_is_accepted(
        key in printable(1..=MAX_KEY_LEN),
        params in parameters(),
        before in "[ \t]{0,2}",
        after in "[ \t]{0,2}",
        lenient: bool,
    ) {
        let value = format!("{before}{}{params}{after}", sf_string(&key));
        let parsed = parse_idempotency_key(value.as_bytes(), lenient);
        prop_assert_eq!(parsed.map(|k| k.as_str().to_owned()), Ok(key));
    }

    #[test]
    fn bare_keys_are_accepted_only_when_lenient(key in bare(1..=MAX_KEY_LEN)) {
        prop_assume!(!key.is_empty());
        let parsed = parse_idempotency_key(key.as_bytes(), true);
        prop_assert_eq!(parsed.map(|k| k.as_str().to_owned()), Ok(key.clone()));
        prop_assert_eq!(
            parse_idempotency_key(key.as_bytes(), false),
            Err(KeyError::NotAString)
        );
    }

    #[test]
    fn keys_over_the_limit_are_refused(key in printable(MAX_KEY_LEN + 1..=MAX_KEY_LEN + 100)) {
        prop_assert_eq!(
            parse_idempotency_key(sf_string(&key).as_bytes(), false),
            Err(KeyError::TooLong)
        );
    }
}
