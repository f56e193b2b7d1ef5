//! Fuzzes the `Idempotency-Key` header parser: never a panic, and whatever it accepts is a
//! key of 1 to 255 printable ASCII characters; strict mode accepts nothing lenient mode
//! refuses.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_idempotency::parse_idempotency_key;

fuzz_target!(|data: &[u8]| {
    let strict = parse_idempotency_key(data, false);
    let lenient = parse_idempotency_key(data, true);
    for key in [&strict, &lenient].into_iter().flatten() {
        let key = key.as_str();
        assert!((1..=255).contains(&key.len()), "{} bytes", key.len());
        assert!(key.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{key:?}");
    }
    if strict.is_ok() {
        assert!(lenient.is_ok(), "strict accepted what lenient refused: {data:?}");
    }
});
