//! Fuzzes the HLC header decoder and the timestamp's `FromStr`: never a panic, and whatever
//! decodes re-encodes to the same canonical form.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_hlc::Timestamp;
use steadfast_hlc::header::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(ts) = decode(data) {
        // Canonical form: lower-case hex of the same bits, which decodes to the same value.
        let canonical = encode(ts);
        let trimmed = data.trim_ascii();
        assert!(canonical.as_bytes().eq_ignore_ascii_case(trimmed), "{data:?}");
        assert_eq!(decode(canonical.as_bytes()), Ok(ts));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ts) = text.parse::<Timestamp>() {
            // Display is the one canonical text form; it parses back to the same timestamp.
            assert_eq!(ts.to_string(), text);
        }
    }
});
