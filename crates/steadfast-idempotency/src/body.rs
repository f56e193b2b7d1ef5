//! The request and response bodies of the layered service.
//!
//! A keyed request's body is read (up to the cap) before the claim, to compute its
//! fingerprint; the handler then receives it from memory as a [`RequestBody`]. Requests
//! the layer does not handle (other methods, no key) pass their body through untouched.
//!
//! A response the layer will store is read (up to the cap) before it is returned; replays
//! and the layer's own answers (400, 409, 413, 422, 503) are bodies in memory. Both are a
//! [`ResponseBody`].
//!
//! Both bodies yield [`Bytes`] and fail with a
//! [`BoxError`], as axum and hyper expect.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use steadfast_core::error::BoxError;

/// Body chunks and trailers held in memory. The first chunk is kept apart, so that the
/// common one-chunk body (a replay, a small request) needs no queue allocation.
#[derive(Debug, Default)]
pub(crate) struct Buffered {
    first: Option<Bytes>,
    rest: VecDeque<Bytes>,
    len: usize,
    trailers: Option<Box<HeaderMap>>,
}

impl Buffered {
    /// Chunks read so far: the first one apart, the others queued.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        if chunk.is_empty() {
            return;
        }
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// The bytes held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds trailers, merging them with any already held.
    pub(crate) fn merge_trailers(&mut self, more: HeaderMap) {
        match &mut self.trailers {
            Some(existing) => existing.extend(more),
            None => self.trailers = Some(Box::new(more)),
        }
    }

    /// The trailers held, if any.
    pub(crate) fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_deref()
    }

    /// The data in one piece (no copy for one chunk).
    pub(crate) fn to_bytes(&self) -> Bytes {
        match (&self.first, self.rest.is_empty()) {
            (None, _) => Bytes::new(),
            (Some(first), true) => first.clone(),
            (Some(first), false) => {
                let mut data = bytes::BytesMut::with_capacity(self.len);
                data.extend_from_slice(first);
                for chunk in &self.rest {
                    data.extend_from_slice(chunk);
                }
                data.freeze()
            }
        }
    }

    fn poll_next(&mut self) -> Option<Frame<Bytes>> {
        if let Some(chunk) = self.first.take().or_else(|| self.rest.pop_front()) {
            self.len -= chunk.len();
            return Some(Frame::data(chunk));
        }
        self.trailers
            .take()
            .map(|trailers| Frame::trailers(*trailers))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_empty() && self.trailers.is_none()
    }
}

/// The request body the inner service receives.
pub struct RequestBody<B> {
    kind: RequestKind<B>,
}

enum RequestKind<B> {
    Passthrough(B),
    Buffered(Buffered),
}

impl<B> RequestBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: RequestKind::Passthrough(body),
        }
    }

    pub(crate) fn buffered(buffered: Buffered) -> Self {
        Self {
            kind: RequestKind::Buffered(buffered),
        }
    }
}

impl<B> Default for RequestBody<B> {
    /// An empty body.
    fn default() -> Self {
        Self::buffered(Buffered::default())
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            RequestKind::Passthrough(body) => poll_bytes(Pin::new(body), cx),
            RequestKind::Buffered(buffered) => Poll::Ready(buffered.poll_next().map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Passthrough(body) => body.is_end_stream(),
            RequestKind::Buffered(buffered) => buffered.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Passthrough(body) => body.size_hint(),
            RequestKind::Buffered(buffered) => SizeHint::with_exact(buffered.len as u64),
        }
    }
}

impl<B> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RequestKind::Passthrough(_) => f.write_str("RequestBody::Passthrough"),
            RequestKind::Buffered(buffered) => f
                .debug_struct("RequestBody::Buffered")
                .field("len", &buffered.len)
                .finish_non_exhaustive(),
        }
    }
}

/// The response body the layered service returns.
pub struct ResponseBody<B> {
    kind: ResponseKind<B>,
}

enum ResponseKind<B> {
    /// The handler's body, untouched.
    Passthrough(B),
    /// A body in memory: a stored or replayed response, or the layer's own answer.
    Buffered(Buffered),
    /// What was read of the handler's body before it outgrew the cap (or failed), then
    /// the rest of it (or its error). Boxed: rare, and it would make every body larger.
    Prefixed(Box<Prefixed<B>>),
}

struct Prefixed<B> {
    read: Buffered,
    rest: Option<B>,
    error: Option<BoxError>,
}

impl<B> ResponseBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: ResponseKind::Passthrough(body),
        }
    }

    /// A body in memory: `data` (no allocation), then `trailers`.
    pub(crate) fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        let mut buffered = Buffered::default();
        buffered.push(data);
        buffered.trailers = trailers.map(Box::new);
        Self::buffered(buffered)
    }

    pub(crate) fn buffered(buffered: Buffered) -> Self {
        Self {
            kind: ResponseKind::Buffered(buffered),
        }
    }

    /// `read` (its trailers dropped), then the rest of the handler's body or its error.
    pub(crate) fn prefixed(mut read: Buffered, rest: Option<B>, error: Option<BoxError>) -> Self {
        read.trailers = None;
        Self {
            kind: ResponseKind::Prefixed(Box::new(Prefixed { read, rest, error })),
        }
    }

    /// The bytes of a body held in memory (a stored, replayed or generated response) that
    /// have not been polled yet, in one piece; `None` for a body streamed from the handler.
    /// Meant for tests and for inspecting the layer's own answers.
    pub fn buffered_bytes(&self) -> Option<Bytes> {
        match &self.kind {
            ResponseKind::Buffered(buffered) => Some(buffered.to_bytes()),
            _ => None,
        }
    }
}

impl<B> Default for ResponseBody<B> {
    /// An empty body held in memory (what outer layers such as `OverloadResponseLayer`
    /// use for the responses they make themselves).
    fn default() -> Self {
        Self::buffered(Buffered::default())
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            ResponseKind::Passthrough(body) => poll_bytes(Pin::new(body), cx),
            ResponseKind::Buffered(buffered) => Poll::Ready(buffered.poll_next().map(Ok)),
            ResponseKind::Prefixed(prefixed) => {
                let Prefixed { read, rest, error } = &mut **prefixed;
                if let Some(frame) = read.poll_next() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                let Some(body) = rest else {
                    return Poll::Ready(None);
                };
                let frame = ready!(poll_bytes(Pin::new(body), cx));
                if !matches!(frame, Some(Ok(_))) {
                    *rest = None;
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Passthrough(body) => body.is_end_stream(),
            ResponseKind::Buffered(buffered) => buffered.is_end_stream(),
            ResponseKind::Prefixed(prefixed) => {
                let Prefixed { read, rest, error } = &**prefixed;
                read.is_end_stream()
                    && error.is_none()
                    && rest.as_ref().is_none_or(Body::is_end_stream)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Passthrough(body) => body.size_hint(),
            ResponseKind::Buffered(buffered) => SizeHint::with_exact(buffered.len as u64),
            ResponseKind::Prefixed(prefixed) => {
                let Prefixed { read, rest, .. } = &**prefixed;
                let rest = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
                let read = read.len as u64;
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ResponseKind::Passthrough(_) => f.write_str("ResponseBody::Passthrough"),
            ResponseKind::Buffered(buffered) => f
                .debug_struct("ResponseBody::Buffered")
                .field("len", &buffered.len)
                .finish_non_exhaustive(),
            ResponseKind::Prefixed(prefixed) => f
                .debug_struct("ResponseBody::Prefixed")
                .field("read", &prefixed.read.len)
                .finish_non_exhaustive(),
        }
    }
}

/// Polls `body`, turning its data into `Bytes` (free for `Bytes`) and its error into a
/// `BoxError`.
pub(crate) fn poll_bytes<B>(
    body: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let frame = ready!(body.poll_frame(cx));
    Poll::Ready(frame.map(|result| {
        result
            .map(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
            .map_err(Into::into)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(body: &mut ResponseBody<String>) -> Vec<Frame<Bytes>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(frame)) = Pin::new(&mut *body).poll_frame(&mut cx) {
            out.push(frame.expect("bodies in memory do not fail"));
        }
        out
    }

    #[test]
    fn the_default_response_body_is_empty_and_ended() {
        let mut body = ResponseBody::<String>::default();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert_eq!(body.buffered_bytes(), Some(Bytes::new()));
        assert!(frames(&mut body).is_empty());
        assert!(RequestBody::<String>::default().is_end_stream());
    }

    #[test]
    fn buffered_bodies_yield_their_chunks_then_trailers() {
        let mut read = Buffered::default();
        for chunk in ["ab", "", "cd", "e"] {
            read.push(Bytes::from(chunk));
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", http::HeaderValue::from_static("5"));
        read.merge_trailers(trailers);
        assert_eq!(read.to_bytes(), "abcde");
        let mut body = ResponseBody::<String>::buffered(read);
        assert_eq!(body.size_hint().exact(), Some(5));
        let frames = frames(&mut body);
        let data: Vec<_> = frames.iter().filter_map(Frame::data_ref).cloned().collect();
        assert_eq!(data, ["ab", "cd", "e"]);
        assert_eq!(
            frames.last().and_then(Frame::trailers_ref).unwrap()["x-sum"],
            "5"
        );
        assert!(body.is_end_stream());
    }
}
