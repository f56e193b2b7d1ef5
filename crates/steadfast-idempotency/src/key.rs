//! Parsing the `Idempotency-Key` header value.
//!
//! The IETF draft (`draft-ietf-httpapi-idempotency-key-header`, §2.1) makes the field an
//! RFC 8941 structured-field *Item* whose value is an sf-string:
//!
//! ```text
//! Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"
//! ```
//!
//! Most clients (Stripe's SDKs among them) send the key unquoted, so
//! [`parse_idempotency_key`] also accepts a bare value in *lenient* mode, which the layer
//! enables by default.
//!
//! The parser is a pure function over bytes: it never panics, never allocates more than the
//! key itself (at most [`MAX_KEY_LEN`] bytes), and is ready to be driven by a fuzzer.

use std::borrow::Cow;
use std::fmt;

/// The longest key accepted, in characters (all ASCII, so also in bytes): 255, Stripe's
/// limit, which the draft's examples fit comfortably.
pub const MAX_KEY_LEN: usize = 255;

/// A validated idempotency key: 1 to [`MAX_KEY_LEN`] printable ASCII characters, with any
/// sf-string escapes (`\"`, `\\`) resolved.
///
/// `Debug` shows only the length: a key is a capability (whoever knows it, within its scope,
/// can read the stored response), so it is kept out of logs. Use [`as_str`](Self::as_str)
/// to read it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Box<str>);

impl IdempotencyKey {
    /// The key's characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyKey")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// Why a header value is not an acceptable idempotency key. The layer answers all of them
/// with `400 Bad Request` and an `application/problem+json` body.
///
/// Positions are byte offsets into the header value as received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The value, or the string inside the quotes, is empty.
    Empty,
    /// The key has more than [`MAX_KEY_LEN`] characters.
    TooLong,
    /// A byte that may not appear there: a control character or non-ASCII byte anywhere, or
    /// in a bare key a space, a double quote or a comma (a comma means several field lines
    /// were combined).
    InvalidCharacter {
        /// Offset of the byte.
        at: usize,
    },
    /// Strict mode: the value is not a quoted sf-string.
    NotAString,
    /// The closing double quote is missing.
    UnterminatedString,
    /// A backslash not followed by `"` or `\`.
    InvalidEscape {
        /// Offset of the backslash.
        at: usize,
    },
    /// Malformed RFC 8941 parameters after the string, or other text after it.
    InvalidParameters {
        /// Offset where parsing failed.
        at: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No message quotes the key or uses characters that need escaping in JSON: the
        // layer puts it in a problem+json `detail`.
        match self {
            KeyError::Empty => f.write_str("the key is empty"),
            KeyError::TooLong => write!(f, "the key is longer than {MAX_KEY_LEN} characters"),
            KeyError::InvalidCharacter { at } => {
                write!(f, "invalid character at byte {at}")
            }
            KeyError::NotAString => {
                f.write_str("the key must be a quoted structured-field string (RFC 8941)")
            }
            KeyError::UnterminatedString => f.write_str("the closing double quote is missing"),
            KeyError::InvalidEscape { at } => write!(f, "invalid escape at byte {at}"),
            KeyError::InvalidParameters { at } => {
                write!(f, "invalid structured-field parameters at byte {at}")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Parses an `Idempotency-Key` field value.
///
/// - A value starting with `"` is an RFC 8941 sf-string: printable ASCII (`%x20-7E`) with
///   `\"` and `\\` escapes, optionally followed by RFC 8941 parameters, which are checked
///   and ignored (`"abc";v=1`).
/// - Otherwise, with `lenient` set, the whole value is the key: visible ASCII (`%x21-7E`)
///   except `"` and `,`. Without `lenient` such a value is [`KeyError::NotAString`].
///
/// Leading and trailing spaces and tabs are ignored. The key must have 1 to
/// [`MAX_KEY_LEN`] characters after unescaping.
///
/// # Errors
///
/// A [`KeyError`] saying what is wrong.
///
/// # Example
///
/// ```
/// use steadfast_idempotency::{KeyError, parse_idempotency_key};
///
/// let key = parse_idempotency_key(br#""8e03978e-40d5-43e8""#, false)?;
/// assert_eq!(key.as_str(), "8e03978e-40d5-43e8");
///
/// // Bare keys only in lenient mode.
/// assert_eq!(parse_idempotency_key(b"8e03978e", true)?.as_str(), "8e03978e");
/// assert_eq!(parse_idempotency_key(b"8e03978e", false), Err(KeyError::NotAString));
/// # Ok::<(), KeyError>(())
/// ```
pub fn parse_idempotency_key(value: &[u8], lenient: bool) -> Result<IdempotencyKey, KeyError> {
    parse_key(value, lenient).map(|key| IdempotencyKey(key.into()))
}

/// [`parse_idempotency_key`] without the copy: the key borrows `value` unless it has
/// escapes.
pub(crate) fn parse_key(value: &[u8], lenient: bool) -> Result<Cow<'_, str>, KeyError> {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    let trimmed = &value[start..end];
    let mut parser = Parser {
        input: value,
        pos: start,
        end,
    };
    match trimmed.first() {
        None => Err(KeyError::Empty),
        Some(b'"') => {
            let key = match parser.plain_string(MAX_KEY_LEN) {
                Some(key) => Cow::Borrowed(key),
                None => Cow::Owned(parser.sf_string(MAX_KEY_LEN)?),
            };
            parser.parameters()?;
            if key.is_empty() {
                return Err(KeyError::Empty);
            }
            Ok(key)
        }
        Some(_) if lenient => bare_key(trimmed, start),
        Some(_) => Err(KeyError::NotAString),
    }
}

fn bare_key(key: &[u8], offset: usize) -> Result<Cow<'_, str>, KeyError> {
    if let Some(i) = key
        .iter()
        .position(|&b| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b',')
    {
        return Err(KeyError::InvalidCharacter { at: offset + i });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    // Every byte is ASCII, checked above.
    let key = std::str::from_utf8(key).map_err(|_| KeyError::InvalidCharacter { at: offset })?;
    Ok(Cow::Borrowed(key))
}

/// A cursor over `input[pos..end]`.
struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    /// The common case of [`sf_string`](Self::sf_string), from the opening quote: a
    /// string without escapes, of at most `limit` characters, borrowed. `None` (and
    /// nothing consumed) for anything else, which `sf_string` then parses or refuses.
    fn plain_string(&mut self, limit: usize) -> Option<&'a str> {
        let from = self.pos + 1;
        let rest = self.input.get(from..self.end)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || !(0x20..=0x7e).contains(&b))?;
        if rest[len] != b'"' || len > limit {
            return None;
        }
        // Every byte is printable ASCII, checked above.
        let key = std::str::from_utf8(&rest[..len]).ok()?;
        self.pos = from + len + 1;
        Some(key)
    }

    fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.input[self.pos])
    }

    /// RFC 8941 §4.2.5, from the opening quote; `limit` bounds the unescaped length.
    fn sf_string(&mut self, limit: usize) -> Result<String, KeyError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(KeyError::UnterminatedString);
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let at = self.pos;
                    self.pos += 1;
                    match self.peek() {
                        Some(escaped @ (b'"' | b'\\')) => {
                            out.push(char::from(escaped));
                            self.pos += 1;
                        }
                        Some(_) => return Err(KeyError::InvalidEscape { at }),
                        None => return Err(KeyError::UnterminatedString),
                    }
                }
                0x20..=0x7e => {
                    out.push(char::from(c));
                    self.pos += 1;
                }
                _ => return Err(KeyError::InvalidCharacter { at: self.pos }),
            }
            if out.len() > limit {
                return Err(KeyError::TooLong);
            }
        }
    }

    /// RFC 8941 §4.2.3.2: `*( ";" *SP key [ "=" bare-item ] )` up to the end.
    fn parameters(&mut self) -> Result<(), KeyError> {
        while let Some(c) = self.peek() {
            if c != b';' {
                return Err(KeyError::InvalidParameters { at: self.pos });
            }
            self.pos += 1;
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            self.parameter_key()?;
            if self.peek() == Some(b'=') {
                self.pos += 1;
                self.bare_item()?;
            }
        }
        Ok(())
    }

    fn invalid(&self) -> KeyError {
        KeyError::InvalidParameters { at: self.pos }
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn parameter_key(&mut self) -> Result<(), KeyError> {
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.pos += 1,
            _ => return Err(self.invalid()),
        }
        while let Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') = self.peek() {
            self.pos += 1;
        }
        Ok(())
    }

    /// RFC 8941 §4.2.3.1: integer, decimal, string, token, byte sequence or boolean.
    fn bare_item(&mut self) -> Result<(), KeyError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => {
                // Parameter strings are checked, not kept; bound them like keys anyway.
                let at = self.pos;
                self.sf_string(MAX_KEY_LEN)
                    .map(drop)
                    .map_err(|_| KeyError::InvalidParameters { at })
            }
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'*') => {
                self.pos += 1;
                while let Some(c) = self.peek() {
                    if is_tchar(c) || c == b':' || c == b'/' {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Ok(())
            }
            Some(b':') => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        Some(b':') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=') => {
                            self.pos += 1;
                        }
                        _ => return Err(self.invalid()),
                    }
                }
            }
            Some(b'?') => {
                self.pos += 1;
                match self.peek() {
                    Some(b'0' | b'1') => {
                        self.pos += 1;
                        Ok(())
                    }
                    _ => Err(self.invalid()),
                }
            }
            _ => Err(self.invalid()),
        }
    }

    /// RFC 8941 §4.2.4: at most 15 integer digits, or 12 digits, a dot and 1 to 3 digits.
    fn number(&mut self) -> Result<(), KeyError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let mut digits = 0;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
            digits += 1;
            if digits > 15 {
                return Err(self.invalid());
            }
        }
        if digits == 0 {
            return Err(self.invalid());
        }
        if self.peek() != Some(b'.') {
            return Ok(());
        }
        if digits > 12 {
            return Err(self.invalid());
        }
        self.pos += 1;
        let mut fraction = 0;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
            fraction += 1;
        }
        if (1..=3).contains(&fraction) {
            Ok(())
        } else {
            Err(self.invalid())
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The borrowing fast path agrees with the full sf-string parser wherever it
        /// answers, and answers for every quoted key without escapes.
        #[test]
        fn plain_strings_parse_as_sf_strings(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'"', b'\\', b' ', b'~', 0x1f, 0x7f]),
                0..300,
            ),
        ) {
            let mut input = vec![b'"'];
            input.extend_from_slice(&bytes);
            let mut fast = Parser { input: &input, pos: 0, end: input.len() };
            let mut full = Parser { input: &input, pos: 0, end: input.len() };
            let expected = full.sf_string(MAX_KEY_LEN);
            match fast.plain_string(MAX_KEY_LEN) {
                Some(key) => {
                    proptest::prop_assert_eq!(expected, Ok(key.to_owned()));
                    proptest::prop_assert_eq!(fast.pos, full.pos);
                }
                None => {
                    proptest::prop_assert_eq!(fast.pos, 0);
                    let escaped = input.iter().skip(1).take_while(|&&b| b != b'"').any(|&b| b == b'\\');
                    proptest::prop_assert!(escaped || expected.is_err());
                }
            }
        }
    }

    fn parse(value: &str, lenient: bool) -> Result<String, KeyError> {
        parse_idempotency_key(value.as_bytes(), lenient).map(|k| k.as_str().to_owned())
    }

    #[test]
    fn sf_strings_with_escapes_and_parameters() {
        assert_eq!(parse(r#""abc""#, false).unwrap(), "abc");
        assert_eq!(parse(r#"  "a\"b\\c"  "#, false).unwrap(), r#"a"b\c"#);
        assert_eq!(parse(r#""a b""#, false).unwrap(), "a b");
        assert_eq!(
            parse(
                r#""k";v=1;w="x";t=tok/en:x;b=:aGk=:;f=?0;d=-1.25;*z"#,
                false
            )
            .unwrap(),
            "k"
        );
        assert_eq!(parse(r#""k"; v=1"#, false).unwrap(), "k");
    }

    #[test]
    fn malformed_strings_are_rejected() {
        assert_eq!(parse(r#""""#, true), Err(KeyError::Empty));
        assert_eq!(parse("", true), Err(KeyError::Empty));
        assert_eq!(parse(" \t ", true), Err(KeyError::Empty));
        assert_eq!(parse(r#""abc"#, true), Err(KeyError::UnterminatedString));
        assert_eq!(parse(r#""ab\"#, true), Err(KeyError::UnterminatedString));
        assert_eq!(
            parse(r#""a\nb""#, true),
            Err(KeyError::InvalidEscape { at: 2 })
        );
        assert_eq!(
            parse("\"a\u{7f}\"", true),
            Err(KeyError::InvalidCharacter { at: 2 })
        );
        assert_eq!(
            parse("\"é\"", true),
            Err(KeyError::InvalidCharacter { at: 1 })
        );
        assert_eq!(
            parse(r#""a" x"#, true),
            Err(KeyError::InvalidParameters { at: 3 })
        );
        assert_eq!(
            parse(r#""a";V=1"#, true),
            Err(KeyError::InvalidParameters { at: 4 })
        );
        assert_eq!(
            parse(r#""a";v="#, true),
            Err(KeyError::InvalidParameters { at: 6 })
        );
        assert_eq!(
            parse(r#""a";v=1.2345"#, true),
            Err(KeyError::InvalidParameters { at: 12 })
        );
        assert_eq!(
            parse(r#""a", "b""#, true),
            Err(KeyError::InvalidParameters { at: 3 })
        );
    }

    #[test]
    fn bare_keys_only_when_lenient() {
        assert_eq!(parse("8e03978e-40d5", true).unwrap(), "8e03978e-40d5");
        assert_eq!(parse("8e03978e-40d5", false), Err(KeyError::NotAString));
        assert_eq!(
            parse("a b", true),
            Err(KeyError::InvalidCharacter { at: 1 })
        );
        assert_eq!(
            parse("a,b", true),
            Err(KeyError::InvalidCharacter { at: 1 })
        );
        assert_eq!(
            parse("a\"b", true),
            Err(KeyError::InvalidCharacter { at: 1 })
        );
    }

    #[test]
    fn length_is_bounded() {
        let max = "k".repeat(MAX_KEY_LEN);
        assert_eq!(parse(&max, true).unwrap().len(), MAX_KEY_LEN);
        assert_eq!(
            parse(&format!("\"{max}\""), false).unwrap().len(),
            MAX_KEY_LEN
        );
        let over = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(parse(&over, true), Err(KeyError::TooLong));
        assert_eq!(parse(&format!("\"{over}\""), false), Err(KeyError::TooLong));
        // Escapes count once.
        let escaped = r"\\".repeat(MAX_KEY_LEN);
        assert_eq!(
            parse(&format!("\"{escaped}\""), false).unwrap().len(),
            MAX_KEY_LEN
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let key = parse_idempotency_key(b"secret-key", true).unwrap();
        assert!(!format!("{key:?}").contains("secret"));
    }
}
