//! How a request is sent again: by cloning it, or (HTTP) by replaying its body.

use http::HeaderName;

/// Turns a request into the request of each attempt.
///
/// Two strategies ship: [`CloneRequests`] for any `Req: Clone`, and
/// [`ReplayHttpBody`](crate::body::ReplayHttpBody) for `http::Request<B>` whose body need
/// not be `Clone`.
pub trait ReplayStrategy<Req> {
    /// The request type the inner service receives.
    type Attempt;
    /// What is kept between attempts to build the next one.
    type Saved;

    /// The first attempt, and what to keep to retry it (`None` when `retryable` is false or
    /// the request cannot be replayed).
    fn first(&self, request: Req, retryable: bool) -> (Self::Attempt, Option<Self::Saved>);

    /// The request of attempt number `attempt` (2 for the first retry), or `None` when it
    /// cannot be rebuilt (an HTTP body over the replay cap, say).
    fn again(&self, saved: &Self::Saved, attempt: u32) -> Option<Self::Attempt>;
}

/// Retries by cloning the request (for request types that are `Clone`).
///
/// The original is cloned once before the first attempt (only when the request may be
/// retried) and once per retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneRequests;

impl<Req: Clone> ReplayStrategy<Req> for CloneRequests {
    type Attempt = Req;
    type Saved = Req;

    fn first(&self, request: Req, retryable: bool) -> (Req, Option<Req>) {
        if retryable {
            (request.clone(), Some(request))
        } else {
            (request, None)
        }
    }

    fn again(&self, saved: &Req, _attempt: u32) -> Option<Req> {
        Some(saved.clone())
    }
}

/// Writes the attempt-count header: the number of attempts before this one, as
/// `grpc-previous-rpc-attempts` and `x-envoy-attempt-count` do. Absent on the first.
pub(crate) fn set_attempt_header(
    headers: &mut http::HeaderMap,
    name: Option<&HeaderName>,
    attempt: u32,
) {
    if let Some(name) = name {
        headers.insert(name.clone(), http::HeaderValue::from(attempt - 1));
    }
}
