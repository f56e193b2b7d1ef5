//! Which responses are stored for replay, and which release the key.

use std::fmt;

use http::StatusCode;

/// Decides, from its status, whether a handler's response is stored (duplicates get it
/// replayed) or the claim is released (a retry with the same key runs the handler again).
///
/// The inner service's errors always release the claim: there is no response to replay.
#[derive(Clone, Copy)]
pub struct StorePolicy {
    stores: fn(StatusCode) -> bool,
    name: &'static str,
}

impl StorePolicy {
    /// The default: store 2xx, 3xx and 4xx responses except 408, 409, 425 and 429; release
    /// on 5xx.
    ///
    /// A 2xx or 3xx (a `303 See Other` after a `POST`) means the operation happened, and a
    /// 4xx that the client must fix stays the answer for that payload (the draft, §2.6:
    /// "respond with the result of the previously completed operation, success or an
    /// error"). 408, 409, 425 and 429 say "try again" (RFC 9110, RFC 8470, RFC 6585), and a
    /// 5xx usually means the operation did not complete, so those release the key for the
    /// retry the client is told to make, as AWS Powertools (which never stores failures)
    /// and Fullstory do.
    pub const fn final_responses() -> Self {
        Self {
            stores: |status| {
                status.is_success()
                    || status.is_redirection()
                    || (status.is_client_error()
                        && !matches!(status.as_u16(), 408 | 409 | 425 | 429))
            },
            name: "final_responses",
        }
    }

    /// Stripe's rule: store every response once the handler started, 5xx included, so that
    /// a retry after a `500` replays it and the client must use a new key to try again.
    /// Only errors of the inner service release the key.
    pub const fn everything() -> Self {
        Self {
            stores: |_| true,
            name: "everything",
        }
    }

    /// Store only 2xx responses (Telnyx's rule): every failure can be retried with the same
    /// key.
    pub const fn success_only() -> Self {
        Self {
            stores: |status| status.is_success(),
            name: "success_only",
        }
    }

    /// A policy of your own.
    pub const fn custom(stores: fn(StatusCode) -> bool) -> Self {
        Self {
            stores,
            name: "custom",
        }
    }

    /// Whether a response with `status` is stored.
    pub fn stores(&self, status: StatusCode) -> bool {
        (self.stores)(status)
    }
}

impl Default for StorePolicy {
    fn default() -> Self {
        Self::final_responses()
    }
}

impl fmt::Debug for StorePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StorePolicy").field(&self.name).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_stores_final_answers_only() {
        let policy = StorePolicy::default();
        for stored in [200, 201, 204, 303, 400, 404, 422] {
            assert!(
                policy.stores(StatusCode::from_u16(stored).unwrap()),
                "{stored}"
            );
        }
        for released in [408, 409, 425, 429, 500, 502, 503, 504] {
            assert!(
                !policy.stores(StatusCode::from_u16(released).unwrap()),
                "{released}"
            );
        }
        assert!(StorePolicy::everything().stores(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!StorePolicy::success_only().stores(StatusCode::NOT_FOUND));
    }
}
