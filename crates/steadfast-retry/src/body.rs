//! Replaying HTTP request bodies that are not `Clone`.
//!
//! The first attempt streams the body to the inner service as it arrives, and keeps a copy
//! of each chunk (cheap: `Bytes` are reference counted) until the copy reaches the replay
//! cap. A retry replays the copy and, if the first attempt stopped reading early (a server
//! that answers `503` before reading the body), continues from the original body where it
//! left off. Once the body outgrows the cap the copy is dropped and the request is sent
//! once, never retried ([`RetryStats::not_replayable`](crate::RetryStats::not_replayable)).
//! A body whose size hint already exceeds the cap is never buffered at all, and one
//! already at its end (an empty `GET`) needs no copy: its retries send an empty body.
//!
//! The default cap, 64 KiB, is linkerd's: large enough for typical API payloads, small
//! enough that a burst of retried uploads cannot exhaust memory.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderName, Request};
use http_body::{Body, Frame, SizeHint};
use steadfast_core::error::BoxError;

use crate::replay::{ReplayStrategy, set_attempt_header};

/// The default replay cap: 64 KiB, as linkerd.
pub const DEFAULT_BODY_CAP: usize = 64 * 1024;

/// Retries `http::Request<B>` by replaying its body; `B` need not be `Clone` but must be
/// `Unpin` (box it otherwise). The inner service receives `http::Request<ReplayBody<B>>`.
#[derive(Debug, Clone)]
pub struct ReplayHttpBody {
    pub(crate) cap: usize,
    pub(crate) attempt_header: Option<HeaderName>,
}

impl Default for ReplayHttpBody {
    fn default() -> Self {
        Self {
            cap: DEFAULT_BODY_CAP,
            attempt_header: None,
        }
    }
}

/// What the HTTP strategy keeps to rebuild a request: its head (inline, as tower keeps its
/// cloned request), and the body's shared replay state unless the body was empty (most
/// `GET`s: nothing to replay, so nothing to allocate).
#[derive(Debug)]
pub struct SavedRequest<B> {
    head: Head,
    shared: Option<Arc<Shared<B>>>,
}

/// The request's head, kept for retries.
#[derive(Debug)]
struct Head {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: HeaderMap,
    extensions: http::Extensions,
}

impl<B> ReplayStrategy<Request<B>> for ReplayHttpBody
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Attempt = Request<ReplayBody<B>>;
    type Saved = SavedRequest<B>;

    #[inline]
    fn first(&self, request: Request<B>, retryable: bool) -> (Self::Attempt, Option<Self::Saved>) {
        let too_big = request.body().size_hint().lower() > self.cap as u64;
        if !retryable || too_big {
            return (request.map(ReplayBody::passthrough), None);
        }
        let head = Head {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            extensions: request.extensions().clone(),
        };
        if request.body().is_end_stream() {
            // No data and no trailers will come: retries send an empty body, and the head
            // is all there is to keep.
            let saved = SavedRequest { head, shared: None };
            return (request.map(ReplayBody::passthrough), Some(saved));
        }
        let (parts, body) = request.into_parts();
        let shared = Arc::new(Shared::new(body, self.cap));
        let attempt = Request::from_parts(parts, ReplayBody::replaying(shared.clone()));
        let shared = Some(shared);
        (attempt, Some(SavedRequest { head, shared }))
    }

    fn again(&self, saved: &Self::Saved, attempt: u32) -> Option<Self::Attempt> {
        let body = match &saved.shared {
            None => ReplayBody {
                inner: Inner::Empty,
            },
            Some(shared) if shared.replayable() => ReplayBody::replaying(shared.clone()),
            Some(_) => return None,
        };
        let head = &saved.head;
        let mut request = Request::new(body);
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = head.uri.clone();
        *request.version_mut() = head.version;
        *request.headers_mut() = head.headers.clone();
        *request.extensions_mut() = head.extensions.clone();
        set_attempt_header(request.headers_mut(), self.attempt_header.as_ref(), attempt);
        Some(request)
    }
}

/// The state every attempt's body shares.
pub struct Shared<B> {
    state: Mutex<State<B>>,
    cap: usize,
    initial_hint: SizeHint,
}

struct State<B> {
    /// The original body, when no attempt is reading it and it has not ended.
    original: Option<B>,
    /// Every chunk read so far, while the total is within the cap.
    chunks: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    /// The original body ended and everything it yielded is in `chunks`.
    complete: bool,
    /// The copy was dropped (over the cap, or the original failed): no more replays.
    abandoned: bool,
}

impl<B: Body> Shared<B> {
    fn new(body: B, cap: usize) -> Self {
        Self {
            initial_hint: body.size_hint(),
            state: Mutex::new(State {
                original: Some(body),
                chunks: Vec::new(),
                len: 0,
                trailers: None,
                complete: false,
                abandoned: false,
            }),
            cap,
        }
    }
}

impl<B> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // A panic while holding the lock leaves consistent data (every update is one step).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a new attempt can be given the whole body.
    fn replayable(&self) -> bool {
        let state = self.lock();
        !state.abandoned && (state.complete || state.original.is_some())
    }
}

impl<B> fmt::Debug for Shared<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Shared")
            .field("cap", &self.cap)
            .field("buffered", &state.len)
            .field("complete", &state.complete)
            .field("abandoned", &state.abandoned)
            .finish_non_exhaustive()
    }
}

/// The body each attempt of an HTTP request sends: the original body streamed through, or
/// replayed from the copy the first attempt kept.
pub struct ReplayBody<B> {
    inner: Inner<B>,
}

enum Inner<B> {
    /// Not retryable, or empty: the original body, untouched.
    Passthrough(B),
    /// A retry of a request whose body was empty.
    Empty,
    Replaying {
        shared: Arc<Shared<B>>,
        /// The next chunk of the copy to send.
        next_chunk: usize,
        /// The original body, while this attempt reads it.
        original: Option<B>,
        sent_trailers: bool,
        ended: bool,
    },
}

impl<B> ReplayBody<B> {
    fn passthrough(body: B) -> Self {
        Self {
            inner: Inner::Passthrough(body),
        }
    }

    fn replaying(shared: Arc<Shared<B>>) -> Self {
        Self {
            inner: Inner::Replaying {
                shared,
                next_chunk: 0,
                original: None,
                sent_trailers: false,
                ended: false,
            },
        }
    }
}

/// The original body is being read by a previous attempt that is still alive.
#[derive(Debug)]
struct BodyInUse;

impl fmt::Display for BodyInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body is still held by a previous attempt")
    }
}

impl std::error::Error for BodyInUse {}

impl<B> Body for ReplayBody<B>
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
        let (shared, next_chunk, original, sent_trailers, ended) = match &mut self.get_mut().inner {
            Inner::Passthrough(body) => {
                let frame = ready!(Pin::new(body).poll_frame(cx));
                return Poll::Ready(frame.map(|f| {
                    f.map(|frame| frame.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                        .map_err(Into::into)
                }));
            }
            Inner::Empty => return Poll::Ready(None),
            Inner::Replaying {
                shared,
                next_chunk,
                original,
                sent_trailers,
                ended,
            } => (shared, next_chunk, original, sent_trailers, ended),
        };
        if *ended {
            return Poll::Ready(None);
        }
        let mut state = shared.lock();

        // 1. Replay what earlier attempts read.
        if !state.abandoned && *next_chunk < state.chunks.len() {
            let chunk = state.chunks[*next_chunk].clone();
            *next_chunk += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if state.complete {
            if !*sent_trailers && let Some(trailers) = state.trailers.clone() {
                *sent_trailers = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            *ended = true;
            return Poll::Ready(None);
        }

        // 2. Continue with the original body.
        if original.is_none() {
            match state.original.take() {
                Some(body) => *original = Some(body),
                None => return Poll::Ready(Some(Err(BodyInUse.into()))),
            }
        }
        drop(state);
        let body = original.as_mut().expect("taken above");
        let frame = ready!(Pin::new(body).poll_frame(cx));
        let mut state = shared.lock();
        match frame {
            None => {
                *original = None;
                *ended = true;
                if !state.abandoned {
                    state.complete = true;
                }
                Poll::Ready(None)
            }
            Some(Err(err)) => {
                // A failed body cannot be replayed faithfully.
                state.abandoned = true;
                state.chunks = Vec::new();
                *original = None;
                *ended = true;
                Poll::Ready(Some(Err(err.into())))
            }
            Some(Ok(frame)) => {
                let frame = frame.map_data(|mut d| d.copy_to_bytes(d.remaining()));
                if !state.abandoned {
                    if let Some(data) = frame.data_ref() {
                        state.len += data.len();
                        if state.len > shared.cap {
                            state.abandoned = true;
                            state.chunks = Vec::new();
                        } else {
                            state.chunks.push(data.clone());
                            *next_chunk = state.chunks.len();
                        }
                    } else if let Some(trailers) = frame.trailers_ref() {
                        state.trailers = Some(trailers.clone());
                        *sent_trailers = true;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Passthrough(body) => body.is_end_stream(),
            Inner::Empty => true,
            Inner::Replaying { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Passthrough(body) => body.size_hint(),
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Replaying {
                shared,
                next_chunk,
                original,
                ..
            } => {
                let fresh = *next_chunk == 0 && original.is_none();
                if !fresh {
                    return SizeHint::default();
                }
                let state = shared.lock();
                if state.complete {
                    SizeHint::with_exact(state.len as u64)
                } else {
                    shared.initial_hint
                }
            }
        }
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        // Hand a partly read original back, so the next attempt can continue it.
        if let Inner::Replaying {
            shared, original, ..
        } = &mut self.inner
            && let Some(body) = original.take()
        {
            shared.lock().original = Some(body);
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Passthrough(_) => f.write_str("ReplayBody::Passthrough"),
            Inner::Empty => f.write_str("ReplayBody::Empty"),
            Inner::Replaying {
                next_chunk, ended, ..
            } => f
                .debug_struct("ReplayBody::Replaying")
                .field("next_chunk", next_chunk)
                .field("ended", ended)
                .finish_non_exhaustive(),
        }
    }
}
