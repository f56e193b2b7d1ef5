//! The byte encoding network stores use for stored responses and header maps.
//!
//! Every integer is big-endian; every variable-length field is preceded by its length.
//!
//! ```text
//! header map = count: u32, then count × (name length: u16, name, value length: u32, value)
//! response   = version: u8 (1), status: u16, headers: header map,
//!              body length: u32, body, has trailers: u8 (0 or 1), [trailers: header map]
//! ```
//!
//! Decoding checks every length against the bytes left, every name and value with `http`'s
//! own validation, the status range and that nothing is left over: corrupt or hostile bytes
//! give a [`CorruptRecord`], never a panic and never an allocation larger than the input.

// Redis stores whole responses, PostgreSQL header maps in their own columns: with one of
// the two features only, part of the codec is unused.
#![cfg_attr(not(all(feature = "redis", feature = "postgres")), allow(dead_code))]

use std::fmt;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::store::StoredResponse;

/// The encoding's version byte.
const VERSION: u8 = 1;

/// A record read back from a store could not be decoded: the bytes are not a record this
/// crate wrote (a different version, a truncated value, a key written by something else).
///
/// The store operation fails with it (as a [`BoxError`](steadfast_core::error::BoxError);
/// match with `err.is::<CorruptRecord>()`), so the layer treats the key as unavailable
/// (`503` when failing closed) until the record expires or is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord {
    reason: &'static str,
}

impl CorruptRecord {
    pub(crate) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// What was wrong with the bytes.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for CorruptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt idempotency record: {}", self.reason)
    }
}

impl std::error::Error for CorruptRecord {}

/// A response too large for the encoding's 32-bit lengths (4 GiB), refused when stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response too large to store (a length over 4 GiB)")
    }
}

impl std::error::Error for TooLarge {}

fn len_u32(len: usize) -> Result<u32, TooLarge> {
    u32::try_from(len).map_err(|_| TooLarge)
}

/// Appends `map` to `out`.
pub(crate) fn encode_map(map: &HeaderMap, out: &mut Vec<u8>) -> Result<(), TooLarge> {
    out.extend_from_slice(&len_u32(map.len())?.to_be_bytes());
    for (name, value) in map {
        // Header names are at most 64 KiB by `http`'s own limit.
        let name_len = u16::try_from(name.as_str().len()).map_err(|_| TooLarge)?;
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&len_u32(value.len())?.to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    Ok(())
}

/// `response` in the response encoding.
pub(crate) fn encode_response(response: &StoredResponse) -> Result<Vec<u8>, TooLarge> {
    let mut out = Vec::with_capacity(response.approximate_size() + 16);
    out.push(VERSION);
    out.extend_from_slice(&response.status().as_u16().to_be_bytes());
    encode_map(response.headers(), &mut out)?;
    out.extend_from_slice(&len_u32(response.body().len())?.to_be_bytes());
    out.extend_from_slice(response.body());
    match response.trailers() {
        Some(trailers) => {
            out.push(1);
            encode_map(trailers, &mut out)?;
        }
        None => out.push(0),
    }
    Ok(out)
}

/// A cursor over untrusted bytes: every read checks what is left.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.bytes.len() < n {
            return Err(CorruptRecord::new("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CorruptRecord> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<usize, CorruptRecord> {
        let b = self.take(4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .map_err(|_| CorruptRecord::new("length out of range"))
    }

    fn map(&mut self) -> Result<HeaderMap, CorruptRecord> {
        let count = self.u32()?;
        // Each entry takes at least 7 bytes: a count beyond that is a lie, and must not
        // size an allocation.
        if count > self.bytes.len() / 7 {
            return Err(CorruptRecord::new("header count exceeds the record"));
        }
        let mut map = HeaderMap::with_capacity(count);
        for _ in 0..count {
            let name_len = usize::from(self.u16()?);
            let name = HeaderName::from_bytes(self.take(name_len)?)
                .map_err(|_| CorruptRecord::new("invalid header name"))?;
            let value_len = self.u32()?;
            let value = HeaderValue::from_bytes(self.take(value_len)?)
                .map_err(|_| CorruptRecord::new("invalid header value"))?;
            map.append(name, value);
        }
        Ok(map)
    }

    fn finish(&self) -> Result<(), CorruptRecord> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CorruptRecord::new("trailing bytes"))
        }
    }
}

/// A header map from its encoding (the whole of `bytes`).
pub(crate) fn decode_map(bytes: &[u8]) -> Result<HeaderMap, CorruptRecord> {
    let mut reader = Reader::new(bytes);
    let map = reader.map()?;
    reader.finish()?;
    Ok(map)
}

/// A status code from its number.
pub(crate) fn decode_status(status: u16) -> Result<StatusCode, CorruptRecord> {
    StatusCode::from_u16(status).map_err(|_| CorruptRecord::new("invalid status code"))
}

/// A response from its encoding (the whole of `bytes`).
pub(crate) fn decode_response(bytes: &[u8]) -> Result<StoredResponse, CorruptRecord> {
    let mut reader = Reader::new(bytes);
    if reader.u8()? != VERSION {
        return Err(CorruptRecord::new("unknown encoding version"));
    }
    let status = decode_status(reader.u16()?)?;
    let headers = reader.map()?;
    let body_len = reader.u32()?;
    let body = Bytes::from(BytesMut::from(reader.take(body_len)?));
    let trailers = match reader.u8()? {
        0 => None,
        1 => Some(reader.map()?),
        _ => return Err(CorruptRecord::new("invalid trailers flag")),
    };
    reader.finish()?;
    Ok(StoredResponse::with_parts(status, headers, body, trailers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn map_strategy() -> impl Strategy<Value = HeaderMap> {
        vec(("[a-z][a-z0-9-]{0,20}", "[ -~]{0,40}"), 0..8).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            map
        })
    }

    fn response_strategy() -> impl Strategy<Value = StoredResponse> {
        (
            100u16..1000,
            map_strategy(),
            vec(any::<u8>(), 0..512),
            proptest::option::of(map_strategy()),
        )
            .prop_map(|(status, headers, body, trailers)| {
                StoredResponse::with_parts(
                    StatusCode::from_u16(status).unwrap(),
                    headers,
                    Bytes::from(body),
                    trailers,
                )
            })
    }

    proptest! {
        #[test]
        fn responses_round_trip(response in response_strategy()) {
            let bytes = encode_response(&response).unwrap();
            prop_assert_eq!(decode_response(&bytes).unwrap(), response);
        }

        #[test]
        fn maps_round_trip(map in map_strategy()) {
            let mut bytes = Vec::new();
            encode_map(&map, &mut bytes).unwrap();
            prop_assert_eq!(decode_map(&bytes).unwrap(), map);
        }

        /// Any bytes at all: a typed error or a response, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode_response(&bytes);
            let _ = decode_map(&bytes);
        }

        /// Every strict prefix of a valid encoding is refused.
        #[test]
        fn truncations_are_refused(response in response_strategy(), cut in any::<prop::sample::Index>()) {
            let bytes = encode_response(&response).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(decode_response(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn corrupt_inputs_get_typed_errors() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        let response =
            StoredResponse::new(StatusCode::CREATED, headers, Bytes::from_static(b"hello"));
        let good = encode_response(&response).unwrap();
        let reason = |bytes: &[u8]| decode_response(bytes).unwrap_err().reason();

        assert_eq!(reason(&[]), "truncated");
        let mut version = good.clone();
        version[0] = 9;
        assert_eq!(reason(&version), "unknown encoding version");
        let mut status = good.clone();
        status[1..3].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(reason(&status), "invalid status code");
        let mut count = good.clone();
        count[3..7].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(reason(&count), "header count exceeds the record");
        let mut name = good.clone();
        name[9] = b' '; // the first byte of "content-type"
        assert_eq!(reason(&name), "invalid header name");
        let mut value = good.clone();
        let at = good.iter().position(|&b| b == b'/').unwrap(); // inside "text/plain"
        value[at] = b'\n';
        assert_eq!(reason(&value), "invalid header value");
        let mut body = good.clone();
        let body_at = good.len() - 1 - 5 - 4;
        body[body_at..body_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(reason(&body), "truncated");
        let mut flag = good.clone();
        *flag.last_mut().unwrap() = 7;
        assert_eq!(reason(&flag), "invalid trailers flag");
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(reason(&trailing), "trailing bytes");
        assert_eq!(decode_response(&good).unwrap(), response);
        assert!(
            CorruptRecord::new("truncated")
                .to_string()
                .contains("truncated")
        );
    }
}
