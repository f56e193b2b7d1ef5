//! The HLC header: its name, its value format, and what to do with a bad one.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};

use crate::Timestamp;

/// The default header carrying HLC timestamps: `hlc-timestamp`.
///
/// Its value is the packed [`Timestamp`] as exactly 16 hexadecimal digits (for example
/// `hlc-timestamp: 0651a1c2d3e4f005`): fixed width, cheap to parse, and it sorts like time.
/// Upper- and lower-case digits are accepted, surrounding ASCII whitespace is ignored,
/// anything else is malformed.
pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("hlc-timestamp");

/// Encodes a timestamp as a header value (16 lower-case hex digits).
pub fn encode(ts: Timestamp) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = ts.as_u64();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = HEX[((bits >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0000000000000000"))
}

/// Decodes a header value written by [`encode`].
///
/// # Errors
///
/// [`MalformedHeader`] unless the value is exactly 16 hex digits (after trimming ASCII
/// whitespace). Never panics.
pub fn decode(value: &[u8]) -> Result<Timestamp, MalformedHeader> {
    let digits = value.trim_ascii();
    if digits.len() != 16 {
        return Err(MalformedHeader(()));
    }
    let mut bits = 0u64;
    for &d in digits {
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(MalformedHeader(())),
        };
        bits = (bits << 4) | u64::from(nibble);
    }
    Ok(Timestamp::from_u64(bits))
}

/// The HLC header was not 16 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedHeader(());

impl fmt::Display for MalformedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed HLC header: expected 16 hexadecimal digits")
    }
}

impl std::error::Error for MalformedHeader {}

/// What the server side of [`HlcLayer`](crate::HlcLayer) does with a request whose HLC
/// header is malformed or further ahead than the max offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderPolicy {
    /// Serve the request as if the header were absent; count it in [`HeaderStats`] and
    /// trace it (target `steadfast_hlc`, level `warn`). The default: a bad clock on a caller
    /// should not take the service down with it.
    #[default]
    Ignore,
    /// Answer `400 Bad Request` without calling the inner service (and count and trace).
    Reject,
}

/// Counts of bad HLC headers seen by an [`HlcLayer`](crate::HlcLayer), shared by every
/// service the layer made.
#[derive(Debug, Default)]
pub struct HeaderStats {
    malformed: AtomicU64,
    too_far_ahead: AtomicU64,
}

impl HeaderStats {
    /// Headers that were not 16 hex digits.
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// Well-formed headers further ahead of physical time than the max offset.
    pub fn too_far_ahead(&self) -> u64 {
        self.too_far_ahead.load(Ordering::Relaxed)
    }

    pub(crate) fn count_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_too_far_ahead(&self) {
        self.too_far_ahead.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encoding() {
        let ts = Timestamp::from_u64(0x0651_a1c2_d3e4_f005);
        assert_eq!(encode(ts), "0651a1c2d3e4f005");
        assert_eq!(decode(b" 0651A1C2D3E4F005\t"), Ok(ts));
    }

    #[test]
    fn malformed_values() {
        for bad in [
            &b""[..],
            b"0651a1c2d3e4f00",
            b"0651a1c2d3e4f0055",
            b"0x51a1c2d3e4f005",
            b"0651a1c2d3e4f00g",
            b"+651a1c2d3e4f005",
            b"0651a1c2 3e4f005",
        ] {
            assert_eq!(decode(bad), Err(MalformedHeader(())), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(bits: u64) {
            let ts = Timestamp::from_u64(bits);
            prop_assert_eq!(decode(encode(ts).as_bytes()), Ok(ts));
        }

        #[test]
        fn encoding_sorts_like_time(a: u64, b: u64) {
            let (ea, eb) = (encode(Timestamp::from_u64(a)), encode(Timestamp::from_u64(b)));
            prop_assert_eq!(a.cmp(&b), ea.as_bytes().cmp(eb.as_bytes()));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode(&bytes);
        }
    }
}
