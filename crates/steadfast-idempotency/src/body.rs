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

/// Body chunks and trailers held in memory.
#[derive(Debug, Default)]
struct Buffered {
    chunks: VecDeque<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
}

impl Buffered {
    fn poll_next(&mut self) -> Option<Frame<Bytes>> {
        if let Some(chunk) = self.chunks.pop_front() {
            self.len -= chunk.len();
            return Some(Frame::data(chunk));
        }
        self.trailers.take().map(Frame::trailers)
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
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

    pub(crate) fn buffered(chunks: Vec<Bytes>, len: usize, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: RequestKind::Buffered(Buffered {
                chunks: chunks.into(),
                len,
                trailers,
            }),
        }
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
    /// the rest of it (or its error).
    Prefixed {
        read: Buffered,
        rest: Option<B>,
        error: Option<BoxError>,
    },
}

impl<B> ResponseBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: ResponseKind::Passthrough(body),
        }
    }

    pub(crate) fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        let len = data.len();
        let chunks = if data.is_empty() {
            VecDeque::new()
        } else {
            VecDeque::from([data])
        };
        Self {
            kind: ResponseKind::Buffered(Buffered {
                chunks,
                len,
                trailers,
            }),
        }
    }

    pub(crate) fn prefixed(
        chunks: Vec<Bytes>,
        len: usize,
        rest: Option<B>,
        error: Option<BoxError>,
    ) -> Self {
        Self {
            kind: ResponseKind::Prefixed {
                read: Buffered {
                    chunks: chunks.into(),
                    len,
                    trailers: None,
                },
                rest,
                error,
            },
        }
    }

    /// The bytes of a body held in memory (a stored, replayed or generated response) that
    /// have not been polled yet, in one piece; `None` for a body streamed from the handler.
    /// Meant for tests and for inspecting the layer's own answers.
    pub fn buffered_bytes(&self) -> Option<Bytes> {
        match &self.kind {
            ResponseKind::Buffered(buffered) => Some(match buffered.chunks.len() {
                0 => Bytes::new(),
                1 => buffered.chunks[0].clone(),
                _ => buffered.chunks.iter().flatten().copied().collect(),
            }),
            _ => None,
        }
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
            ResponseKind::Prefixed { read, rest, error } => {
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
            ResponseKind::Prefixed { read, rest, error } => {
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
            ResponseKind::Prefixed { read, rest, .. } => {
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
            ResponseKind::Prefixed { read, .. } => f
                .debug_struct("ResponseBody::Prefixed")
                .field("read", &read.len)
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
