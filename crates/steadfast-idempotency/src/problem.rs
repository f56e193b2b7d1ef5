//! The layer's own answers (RFC 9457 problem details) and replayed responses.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::ResponseBody;
use crate::store::StoredResponse;

/// The header marking a replayed response, as Stripe sends it.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A refusal, with the draft's titles (§2.7) where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    MissingKey,
    InvalidKey,
    MultipleKeys,
    BodyTooLarge,
    BodyUnreadable,
    InFlight,
    Mismatch,
    StoreUnavailable,
}

impl Problem {
    fn status(self) -> StatusCode {
        match self {
            Problem::MissingKey
            | Problem::InvalidKey
            | Problem::MultipleKeys
            | Problem::BodyUnreadable => StatusCode::BAD_REQUEST,
            Problem::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::InFlight => StatusCode::CONFLICT,
            Problem::Mismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Problem::MissingKey => "Idempotency-Key is missing",
            Problem::InvalidKey | Problem::MultipleKeys => "Idempotency-Key is invalid",
            Problem::BodyTooLarge => "Request body is too large",
            Problem::BodyUnreadable => "Request body could not be read",
            Problem::InFlight => "A request is outstanding for this Idempotency-Key",
            Problem::Mismatch => "Idempotency-Key is already used",
            Problem::StoreUnavailable => "Idempotency store is unavailable",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Problem::MissingKey => "This operation requires an Idempotency-Key header.",
            Problem::InvalidKey => "The Idempotency-Key header is malformed.",
            Problem::MultipleKeys => "Send exactly one Idempotency-Key header.",
            Problem::BodyTooLarge => {
                "The body of a request with an Idempotency-Key exceeds the size limit."
            }
            Problem::BodyUnreadable => "The request body failed while it was being received.",
            Problem::InFlight => {
                "The first request with this key is still being processed; retry later."
            }
            Problem::Mismatch => {
                "This key was used with a different request; use a new key for a new request."
            }
            Problem::StoreUnavailable => {
                "The request was not processed because its key could not be recorded; retry later."
            }
        }
    }

    /// The answer: `application/problem+json`, with `Retry-After` in whole seconds (rounded
    /// up, at least 1) when given. `extra` is appended to the detail; it must not contain
    /// characters that need escaping in JSON (it is checked, and dropped if it does).
    pub(crate) fn response<B>(
        self,
        retry_after: Option<Duration>,
        extra: Option<&dyn std::fmt::Display>,
    ) -> Response<ResponseBody<B>> {
        let status = self.status();
        let mut detail = String::from(self.detail());
        if let Some(extra) = extra {
            let mut text = String::new();
            let _ = write!(text, "{extra}");
            if text
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            {
                let _ = write!(detail, " {text}.");
            }
        }
        let json = format!(
            r#"{{"title":"{}","status":{},"detail":"{}"}}"#,
            self.title(),
            status.as_u16(),
            detail
        );
        let mut response = Response::new(ResponseBody::full(Bytes::from(json), None));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = retry_after {
            let secs = (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A stored response, replayed: its status, stored headers, body and trailers, plus
/// `Idempotent-Replayed: true` and a `Content-Length`.
pub(crate) fn replay<B>(stored: &StoredResponse) -> Response<ResponseBody<B>> {
    let (status, headers, body, trailers) = stored.replay_parts();
    let mut response = Response::new(ResponseBody::full(body, trailers));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_json_with_retry_after() {
        let response: Response<ResponseBody<()>> =
            Problem::InFlight.response(Some(Duration::from_millis(1500)), None);
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = response.body().buffered_bytes().unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.starts_with(r#"{"title":"A request is outstanding"#),
            "{text}"
        );
        assert!(text.contains(r#""status":409"#), "{text}");
    }

    #[test]
    fn unsafe_extra_detail_is_dropped() {
        let response: Response<ResponseBody<()>> =
            Problem::InvalidKey.response(None, Some(&"has a \" quote"));
        let body = response.body().buffered_bytes().unwrap();
        assert!(!std::str::from_utf8(&body).unwrap().contains("quote"));
    }
}
