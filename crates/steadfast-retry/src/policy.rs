//! Which requests may be retried at all.
//!
//! Retrying a request that is not idempotent can apply it twice (charge a card twice). RFC
//! 9110 §9.2.2: "A client SHOULD NOT automatically retry a request with a non-idempotent
//! method unless it has some means to know that the request semantics are actually
//! idempotent". So by default the HTTP layer retries only idempotent methods (`GET`,
//! `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`) and requests that carry an
//! `Idempotency-Key` header (which promises the server deduplicates them; Go's `net/http`
//! follows the same rule).

use http::{Method, Request};

/// Decides whether a request may be retried. Checked once per request, before its first
/// attempt.
///
/// Closures `Fn(&Req) -> bool` implement it.
pub trait RetryPredicate<Req> {
    /// Whether `request` may be sent more than once.
    fn may_retry(&self, request: &Req) -> bool;
}

impl<Req, F> RetryPredicate<Req> for F
where
    F: Fn(&Req) -> bool,
{
    fn may_retry(&self, request: &Req) -> bool {
        self(request)
    }
}

/// Every request may be retried: for request types without HTTP method semantics.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllRequests;

impl<Req> RetryPredicate<Req> for AllRequests {
    fn may_retry(&self, _request: &Req) -> bool {
        true
    }
}

/// HTTP requests with an idempotent method (RFC 9110 §9.2.2) or an `Idempotency-Key`
/// header may be retried; the default of the HTTP layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdempotentRequests;

/// The `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

impl<B> RetryPredicate<Request<B>> for IdempotentRequests {
    fn may_retry(&self, request: &Request<B>) -> bool {
        is_idempotent(request.method()) || request.headers().contains_key(IDEMPOTENCY_KEY)
    }
}

/// Whether RFC 9110 calls `method` idempotent: the safe methods (`GET`, `HEAD`, `OPTIONS`,
/// `TRACE`) plus `PUT` and `DELETE`.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, key: bool) -> Request<()> {
        let mut builder = Request::builder().method(method);
        if key {
            builder = builder.header(IDEMPOTENCY_KEY, "k-1");
        }
        builder.body(()).expect("valid request")
    }

    #[test]
    fn only_idempotent_or_keyed_requests() {
        let p = IdempotentRequests;
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(p.may_retry(&req(m, false)));
        }
        assert!(!p.may_retry(&req(Method::POST, false)));
        assert!(!p.may_retry(&req(Method::PATCH, false)));
        assert!(p.may_retry(&req(Method::POST, true)));
        assert!(p.may_retry(&req(Method::PATCH, true)));
    }

    #[test]
    fn closures_are_predicates() {
        let only_get = |r: &Request<()>| r.method() == Method::GET;
        assert!(only_get.may_retry(&req(Method::GET, false)));
        assert!(!only_get.may_retry(&req(Method::PUT, false)));
        assert!(RetryPredicate::<u8>::may_retry(&AllRequests, &1));
    }
}
