//! Where client-side keys come from.

/// Makes a fresh idempotency key for each request the [`IdempotencyKeyLayer`] tags.
///
/// The key must be a valid header value (visible ASCII) and must be unique and
/// unpredictable: a server that does not scope keys per client leaks one client's responses
/// to anyone who guesses its key (draft-ietf-httpapi-idempotency-key-header §5). The default,
/// [`UuidV4Keys`], draws 122 random bits from the operating system's CSPRNG.
///
/// Closures `Fn() -> String` implement it, which is how tests inject predictable keys.
///
/// [`IdempotencyKeyLayer`]: super::IdempotencyKeyLayer
pub trait KeyGenerator: Send + Sync + 'static {
    /// A new key, never returned before.
    fn generate(&self) -> String;
}

impl<F> KeyGenerator for F
where
    F: Fn() -> String + Send + Sync + 'static,
{
    fn generate(&self) -> String {
        self()
    }
}

/// The default [`KeyGenerator`]: a random (version 4) UUID in its lowercase hyphenated form,
/// such as `8e03978e-40d5-43e8-bc93-6894a57f9324`, the format the IETF draft and Stripe
/// recommend.
///
/// The 122 random bits come from the operating system (`getrandom`, through the `uuid`
/// crate), so keys cannot be predicted from earlier ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV4Keys;

impl KeyGenerator for UuidV4Keys {
    fn generate(&self) -> String {
        uuid::Uuid::new_v4().hyphenated().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v4_keys_are_fresh_and_well_formed() {
        let a = UuidV4Keys.generate();
        let b = UuidV4Keys.generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let bytes = a.as_bytes();
        for i in [8, 13, 18, 23] {
            assert_eq!(bytes[i], b'-');
        }
        // Version nibble 4, variant bits 10xx.
        assert_eq!(bytes[14], b'4');
        assert!(matches!(bytes[19], b'8' | b'9' | b'a' | b'b'));
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
    }
}
