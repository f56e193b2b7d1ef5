//! Fuzzes the deadline header parsers (`grpc-timeout`, `x-request-timeout`): never a panic;
//! a parsed `grpc-timeout` formats to a value that parses back to at least the same
//! timeout (formatting rounds up to fit 8 digits) and formats again to the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_shed::deadline::{format_grpc_timeout, parse_grpc_timeout, parse_timeout_ms};

fuzz_target!(|data: &[u8]| {
    if let Ok(timeout) = parse_grpc_timeout(data) {
        let text = format_grpc_timeout(timeout);
        let back = parse_grpc_timeout(text.as_bytes()).expect("our own format parses");
        assert!(back >= timeout, "{data:?}: {timeout:?} -> {text} -> {back:?}");
        assert_eq!(format_grpc_timeout(back), text, "{data:?}");
    }
    let _ = parse_timeout_ms(data);
});
