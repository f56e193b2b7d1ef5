//! The response future of [`Idempotency`](crate::Idempotency).

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use steadfast_core::error::BoxError;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody, poll_bytes};
use crate::layer::Config;
use crate::problem::{Problem, replay};
use crate::scope::FingerprintHasher;
use crate::stats::Event;
use crate::store::{
    Claim, FencingToken, Fingerprint, IdempotencyStore, Record, StoreKey, StoredResponse,
    WriteOutcome,
};

/// The first interval between store polls while waiting for an in-flight request.
const FIRST_WAIT_STEP: Duration = Duration::from_millis(5);
/// The longest interval between store polls while waiting.
const MAX_WAIT_STEP: Duration = Duration::from_millis(200);

type Output<ResB, E> = Result<Response<ResponseBody<ResB>>, E>;

pin_project! {
    /// Response future of [`Idempotency`](crate::Idempotency): reads a keyed request's body,
    /// claims its key, and runs the handler and stores its response, or answers from the
    /// store.
    ///
    /// Dropping it before it finishes releases a claim it holds (through
    /// [`IdempotencyStore::abandon`]), so a retry with the same key can run at once. A claim
    /// whose answer had not arrived yet (a network store, the future dropped while claiming)
    /// may still have been granted by the store; it lasts until its lease expires.
    pub struct ResponseFuture<S, B, ResB, St, X>
    where
        S: Service<Request<RequestBody<B>>>,
        St: IdempotencyStore,
    {
        #[pin]
        state: State<
            S::Future,
            B,
            ResB,
            <St as IdempotencyStore>::Future<Claim>,
            <St as IdempotencyStore>::Future<WriteOutcome>,
            S::Error,
        >,
        // The inner service `poll_ready` readied, until the key is claimed.
        service: Option<S>,
        keyed: Option<Keyed>,
        // Armed while this future holds a claim.
        guard: Option<ClaimGuard<St, X>>,
        config: Arc<Config<St, X>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, ResB, CF, WF, E> {
        // Not handled by the layer, or failing open: the inner call, body untouched.
        Passthrough { #[pin] future: F },
        // Reading the request body into memory while hashing it.
        Reading {
            body: B,
            parts: Option<Parts>,
            hasher: Option<FingerprintHasher>,
            chunks: Vec<Bytes>,
            len: usize,
            trailers: Option<HeaderMap>,
        },
        Claiming { #[pin] claim: CF, request: Option<Request<RequestBody<B>>> },
        // Waiting for an in-flight first request (wait mode), without the inner service's
        // readiness: a permit of a layer below is not held while nothing runs.
        Waiting { #[pin] sleep: Sleep, request: Option<Request<RequestBody<B>>> },
        // Making the inner service ready again before claiming once more.
        Readying { request: Option<Request<RequestBody<B>>> },
        // The handler runs under the claim.
        Running { #[pin] future: F },
        // Reading a response to store into memory.
        Buffering {
            head: Option<http::response::Parts>,
            body: Option<ResB>,
            chunks: Vec<Bytes>,
            len: usize,
            trailers: Option<HeaderMap>,
        },
        // Completing (storing) or releasing the claim, then returning `output`.
        Writing { #[pin] write: WF, completing: bool, output: Option<Output<ResB, E>> },
        Ready { output: Option<Output<ResB, E>> },
        Done,
    }
}

/// What a keyed request knows about itself.
#[derive(Debug)]
struct Keyed {
    key: StoreKey,
    fingerprint: Option<Fingerprint>,
    wait_until: Option<Instant>,
    wait_step: Duration,
}

/// Releases a claim when dropped while armed.
struct ClaimGuard<St: IdempotencyStore, X> {
    config: Arc<Config<St, X>>,
    key: StoreKey,
    token: FencingToken,
    armed: bool,
}

impl<St: IdempotencyStore, X> ClaimGuard<St, X> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<St: IdempotencyStore, X> Drop for ClaimGuard<St, X> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let config = &*self.config;
        config.stats.record(Event::Abandoned, &config.name);
        tracing::debug!(
            target: "steadfast_idempotency",
            name = %config.name,
            token = self.token.get(),
            "response future dropped; releasing its claim"
        );
        config.store.abandon(&self.key, self.token);
    }
}

impl<S, B, ResB, St, X> ResponseFuture<S, B, ResB, St, X>
where
    S: Service<Request<RequestBody<B>>>,
    St: IdempotencyStore,
{
    pub(crate) fn passthrough(future: S::Future, config: Arc<Config<St, X>>) -> Self {
        Self {
            state: State::Passthrough { future },
            service: None,
            keyed: None,
            guard: None,
            config,
        }
    }

    pub(crate) fn ready(
        response: Response<ResponseBody<ResB>>,
        config: Arc<Config<St, X>>,
    ) -> Self {
        Self {
            state: State::Ready {
                output: Some(Ok(response)),
            },
            service: None,
            keyed: None,
            guard: None,
            config,
        }
    }

    pub(crate) fn keyed(
        service: S,
        parts: Parts,
        body: B,
        hasher: FingerprintHasher,
        key: StoreKey,
        config: Arc<Config<St, X>>,
    ) -> Self {
        Self {
            state: State::Reading {
                body,
                parts: Some(parts),
                hasher: Some(hasher),
                chunks: Vec::new(),
                len: 0,
                trailers: None,
            },
            service: Some(service),
            keyed: Some(Keyed {
                key,
                fingerprint: None,
                wait_until: None,
                wait_step: FIRST_WAIT_STEP,
            }),
            guard: None,
            config,
        }
    }
}

impl<S, B, ResB, St, X> Future for ResponseFuture<S, B, ResB, St, X>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Clone,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
    St: IdempotencyStore,
{
    type Output = Output<ResB, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let config = &**this.config;
            let next = match this.state.as_mut().project() {
                StateProj::Passthrough { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    return Poll::Ready(result.map(|r| r.map(ResponseBody::passthrough)));
                }
                StateProj::Ready { output } => {
                    let output = output.take().expect("output is set with the Ready state");
                    this.state.set(State::Done);
                    return Poll::Ready(output);
                }
                StateProj::Reading {
                    body,
                    parts,
                    hasher,
                    chunks,
                    len,
                    trailers,
                } => {
                    let hash = hasher.as_mut().expect("hasher is set while reading");
                    match ready!(read_request(body, hash, chunks, len, trailers, config, cx)) {
                        Err(problem) => State::Ready {
                            output: Some(Ok(problem.response(None, None))),
                        },
                        Ok(()) => {
                            let fingerprint = hasher.take().expect("checked above").finish();
                            let body =
                                RequestBody::buffered(mem::take(chunks), *len, trailers.take());
                            let parts = parts.take().expect("parts are set while reading");
                            let keyed = this.keyed.as_mut().expect("keyed requests read bodies");
                            keyed.fingerprint = Some(fingerprint);
                            State::Claiming {
                                claim: config.store.claim(&keyed.key, &fingerprint, config.lease),
                                request: Some(Request::from_parts(parts, body)),
                            }
                        }
                    }
                }
                StateProj::Claiming { claim, request } => {
                    let result = ready!(claim.poll(cx));
                    let keyed = this.keyed.as_mut().expect("keyed requests claim");
                    let request = request.take().expect("the request waits in the state");
                    match result {
                        Ok(Claim::Acquired(token)) => {
                            config.stats.record(Event::Execution, &config.name);
                            *this.guard = Some(ClaimGuard {
                                config: this.config.clone(),
                                key: keyed.key,
                                token,
                                armed: true,
                            });
                            let mut service = this.service.take().expect("called once");
                            State::Running {
                                future: service.call(request),
                            }
                        }
                        Ok(Claim::Existing(record)) => {
                            let next = on_existing(record, keyed, request, config);
                            if matches!(next, State::Waiting { .. })
                                && let Some(service) = this.service.as_mut()
                            {
                                // Give up the readiness while waiting: keep an unready clone.
                                let fresh = service.clone();
                                drop(mem::replace(service, fresh));
                            }
                            next
                        }
                        Err(err) => {
                            config.stats.record(Event::StoreError, &config.name);
                            if config.fail_open {
                                config.stats.record(Event::FailedOpen, &config.name);
                                tracing::warn!(
                                    target: "steadfast_idempotency",
                                    name = %config.name,
                                    error = %err,
                                    "idempotency store failed; running the request without protection (fail open)"
                                );
                                let mut service = this.service.take().expect("called once");
                                State::Passthrough {
                                    future: service.call(request),
                                }
                            } else {
                                config.stats.record(Event::FailedClosed, &config.name);
                                tracing::warn!(
                                    target: "steadfast_idempotency",
                                    name = %config.name,
                                    error = %err,
                                    "idempotency store failed; refusing the request (fail closed)"
                                );
                                State::Ready {
                                    output: Some(Ok(Problem::StoreUnavailable.response(
                                        Some(crate::layer::DEFAULT_UNAVAILABLE_RETRY_AFTER),
                                        None,
                                    ))),
                                }
                            }
                        }
                    }
                }
                StateProj::Waiting { sleep, request } => {
                    ready!(sleep.poll(cx));
                    State::Readying {
                        request: request.take(),
                    }
                }
                StateProj::Readying { request } => {
                    let service = this.service.as_mut().expect("kept while waiting");
                    match ready!(service.poll_ready(cx)) {
                        Err(err) => State::Ready {
                            output: Some(Err(err)),
                        },
                        Ok(()) => {
                            let keyed = this.keyed.as_ref().expect("keyed requests wait");
                            let fingerprint = keyed.fingerprint.expect("set before claiming");
                            State::Claiming {
                                claim: config.store.claim(&keyed.key, &fingerprint, config.lease),
                                request: request.take(),
                            }
                        }
                    }
                }
                StateProj::Running { future } => {
                    let result = ready!(future.poll(cx));
                    match result {
                        Err(err) => release(this.guard.as_ref(), Err(err), config),
                        Ok(response) if !config.policy.stores(response.status()) => release(
                            this.guard.as_ref(),
                            Ok(response.map(ResponseBody::passthrough)),
                            config,
                        ),
                        Ok(response)
                            if response.body().size_hint().lower()
                                > config.max_response_body as u64 =>
                        {
                            config.stats.record(Event::ResponseTooLarge, &config.name);
                            trace_too_large(config);
                            release(
                                this.guard.as_ref(),
                                Ok(response.map(ResponseBody::passthrough)),
                                config,
                            )
                        }
                        Ok(response) => {
                            let (head, body) = response.into_parts();
                            State::Buffering {
                                head: Some(head),
                                body: Some(body),
                                chunks: Vec::new(),
                                len: 0,
                                trailers: None,
                            }
                        }
                    }
                }
                StateProj::Buffering {
                    head,
                    body,
                    chunks,
                    len,
                    trailers,
                } => {
                    let read = ready!(read_response(body, chunks, len, trailers, config, cx));
                    let head = head.take().expect("head is set while buffering");
                    let chunks = mem::take(chunks);
                    match read {
                        ResponseRead::TooLarge => {
                            config.stats.record(Event::ResponseTooLarge, &config.name);
                            trace_too_large(config);
                            let body = ResponseBody::prefixed(chunks, *len, body.take(), None);
                            release(
                                this.guard.as_ref(),
                                Ok(Response::from_parts(head, body)),
                                config,
                            )
                        }
                        ResponseRead::Failed(err) => {
                            let body = ResponseBody::prefixed(chunks, *len, None, Some(err));
                            release(
                                this.guard.as_ref(),
                                Ok(Response::from_parts(head, body)),
                                config,
                            )
                        }
                        ResponseRead::Complete => {
                            let trailers = trailers.take();
                            let data = concat(chunks, *len);
                            let stored = to_stored(&head, data.clone(), trailers.clone(), config);
                            let response =
                                Response::from_parts(head, ResponseBody::full(data, trailers));
                            match this.guard.as_ref() {
                                Some(guard) => State::Writing {
                                    write: config.store.complete(
                                        &guard.key,
                                        guard.token,
                                        stored,
                                        config.ttl,
                                    ),
                                    completing: true,
                                    output: Some(Ok(response)),
                                },
                                None => State::Ready {
                                    output: Some(Ok(response)),
                                },
                            }
                        }
                    }
                }
                StateProj::Writing {
                    write,
                    completing,
                    output,
                } => {
                    let result = ready!(write.poll(cx));
                    let output = output.take().expect("output waits in the state");
                    let completing = *completing;
                    match result {
                        Ok(outcome) => {
                            if completing {
                                on_completed(outcome, this.guard.as_ref(), config);
                            }
                            if let Some(guard) = this.guard.take() {
                                guard.disarm();
                            }
                            State::Ready {
                                output: Some(output),
                            }
                        }
                        Err(err) => {
                            config.stats.record(Event::StoreError, &config.name);
                            tracing::warn!(
                                target: "steadfast_idempotency",
                                name = %config.name,
                                error = %err,
                                operation = if completing { "complete" } else { "release" },
                                "idempotency store failed after the handler ran"
                            );
                            if completing {
                                // Not stored: release the claim rather than wedge the key
                                // until its lease expires.
                                release(this.guard.as_ref(), output, config)
                            } else {
                                // The lease expires in the end.
                                if let Some(guard) = this.guard.take() {
                                    guard.disarm();
                                }
                                State::Ready {
                                    output: Some(output),
                                }
                            }
                        }
                    }
                }
                StateProj::Done => panic!("idempotency ResponseFuture polled after completion"),
            };
            this.state.set(next);
        }
    }
}

/// Reads the request body into `chunks`, hashing it, up to the cap.
fn read_request<B, St, X>(
    body: &mut B,
    hasher: &mut FingerprintHasher,
    chunks: &mut Vec<Bytes>,
    len: &mut usize,
    trailers: &mut Option<HeaderMap>,
    config: &Config<St, X>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Problem>>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    loop {
        match ready!(poll_bytes(Pin::new(&mut *body), cx)) {
            None => return Poll::Ready(Ok(())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    *len += data.len();
                    if *len > config.max_request_body {
                        config.stats.record(Event::BodyTooLarge, &config.name);
                        return Poll::Ready(Err(Problem::BodyTooLarge));
                    }
                    hasher.update(&data);
                    if !data.is_empty() {
                        chunks.push(data);
                    }
                }
                Err(frame) => {
                    if let Ok(more) = frame.into_trailers() {
                        merge(trailers, more);
                    }
                }
            },
            Some(Err(err)) => {
                config.stats.record(Event::BodyUnreadable, &config.name);
                tracing::debug!(
                    target: "steadfast_idempotency",
                    name = %config.name,
                    error = %err,
                    "request body failed while being read"
                );
                return Poll::Ready(Err(Problem::BodyUnreadable));
            }
        }
    }
}

enum ResponseRead {
    Complete,
    TooLarge,
    Failed(BoxError),
}

/// Reads a response body into `chunks`, up to the cap.
fn read_response<ResB, St, X>(
    body: &mut Option<ResB>,
    chunks: &mut Vec<Bytes>,
    len: &mut usize,
    trailers: &mut Option<HeaderMap>,
    config: &Config<St, X>,
    cx: &mut Context<'_>,
) -> Poll<ResponseRead>
where
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
{
    let Some(reading) = body.as_mut() else {
        return Poll::Ready(ResponseRead::Complete);
    };
    loop {
        match ready!(poll_bytes(Pin::new(&mut *reading), cx)) {
            None => {
                *body = None;
                return Poll::Ready(ResponseRead::Complete);
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    *len += data.len();
                    if !data.is_empty() {
                        chunks.push(data);
                    }
                    if *len > config.max_response_body {
                        return Poll::Ready(ResponseRead::TooLarge);
                    }
                }
                Err(frame) => {
                    if let Ok(more) = frame.into_trailers() {
                        merge(trailers, more);
                    }
                }
            },
            Some(Err(err)) => {
                *body = None;
                tracing::debug!(
                    target: "steadfast_idempotency",
                    name = %config.name,
                    error = %err,
                    "response body failed while being stored; releasing the claim"
                );
                return Poll::Ready(ResponseRead::Failed(err));
            }
        }
    }
}

fn merge(trailers: &mut Option<HeaderMap>, more: HeaderMap) {
    match trailers {
        Some(existing) => existing.extend(more),
        None => *trailers = Some(more),
    }
}

fn concat(chunks: Vec<Bytes>, len: usize) -> Bytes {
    match <[Bytes; 1]>::try_from(chunks) {
        Ok([only]) => only,
        Err(chunks) => {
            let mut data = BytesMut::with_capacity(len);
            for chunk in chunks {
                data.extend_from_slice(&chunk);
            }
            data.freeze()
        }
    }
}

/// What is kept of a response: status, allow-listed headers, body, trailers.
fn to_stored<St, X>(
    head: &http::response::Parts,
    body: Bytes,
    trailers: Option<HeaderMap>,
    config: &Config<St, X>,
) -> StoredResponse {
    let mut headers = HeaderMap::new();
    for name in &config.stored_headers {
        for value in head.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    StoredResponse::with_parts(head.status, headers, body, trailers)
}

/// The key is taken: replay, 422, wait, or 409.
fn on_existing<F, B, ResB, CF, WF, E, St, X>(
    record: Record,
    keyed: &mut Keyed,
    request: Request<RequestBody<B>>,
    config: &Config<St, X>,
) -> State<F, B, ResB, CF, WF, E> {
    let problem = |problem: Problem, retry_after| State::Ready {
        output: Some(Ok(problem.response(retry_after, None))),
    };
    if Some(record.fingerprint()) != keyed.fingerprint.as_ref() {
        config.stats.record(Event::Mismatch, &config.name);
        tracing::debug!(
            target: "steadfast_idempotency",
            name = %config.name,
            "idempotency key reused with a different request"
        );
        return problem(Problem::Mismatch, None);
    }
    match record {
        Record::Completed { response, .. } => {
            config.stats.record(Event::Replay, &config.name);
            tracing::debug!(
                target: "steadfast_idempotency",
                name = %config.name,
                status = response.status().as_u16(),
                "replaying the stored response"
            );
            State::Ready {
                output: Some(Ok(replay(response))),
            }
        }
        Record::InFlight { .. } => {
            let now = Instant::now();
            if let Some(max_wait) = config.max_wait {
                let until = *keyed.wait_until.get_or_insert_with(|| {
                    config.stats.record(Event::Wait, &config.name);
                    now + max_wait
                });
                if now < until {
                    let step = keyed.wait_step;
                    keyed.wait_step = (step * 2).min(MAX_WAIT_STEP);
                    return State::Waiting {
                        sleep: tokio::time::sleep_until((now + step).min(until)),
                        request: Some(request),
                    };
                }
            }
            config.stats.record(Event::Conflict, &config.name);
            tracing::debug!(
                target: "steadfast_idempotency",
                name = %config.name,
                "a request with this idempotency key is in flight"
            );
            problem(Problem::InFlight, Some(config.conflict_retry_after))
        }
    }
}

/// Releases the claim (if held), then returns `output`.
fn release<F, B, ResB, CF, E, St, X>(
    guard: Option<&ClaimGuard<St, X>>,
    output: Output<ResB, E>,
    config: &Config<St, X>,
) -> State<F, B, ResB, CF, St::Future<WriteOutcome>, E>
where
    St: IdempotencyStore,
{
    match guard {
        Some(guard) => {
            config.stats.record(Event::Released, &config.name);
            State::Writing {
                write: config.store.release(&guard.key, guard.token),
                completing: false,
                output: Some(output),
            }
        }
        None => State::Ready {
            output: Some(output),
        },
    }
}

fn on_completed<St: IdempotencyStore, X>(
    outcome: WriteOutcome,
    guard: Option<&ClaimGuard<St, X>>,
    config: &Config<St, X>,
) {
    match outcome {
        WriteOutcome::Applied => config.stats.record(Event::Stored, &config.name),
        WriteOutcome::Superseded => {
            config.stats.record(Event::Superseded, &config.name);
            tracing::warn!(
                target: "steadfast_idempotency",
                name = %config.name,
                token = guard.map(|g| g.token.get()),
                "response not stored: the claim's lease expired and the key was claimed again"
            );
        }
    }
}

fn trace_too_large<St, X>(config: &Config<St, X>) {
    tracing::warn!(
        target: "steadfast_idempotency",
        name = %config.name,
        cap = config.max_response_body,
        "response larger than the stored-response cap; passed through unstored, claim released"
    );
}

impl<S, B, ResB, St, X> fmt::Debug for ResponseFuture<S, B, ResB, St, X>
where
    S: Service<Request<RequestBody<B>>>,
    St: IdempotencyStore,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Passthrough { .. } => "passthrough",
            State::Reading { .. } => "reading request body",
            State::Claiming { .. } => "claiming",
            State::Waiting { .. } => "waiting for the first request",
            State::Readying { .. } => "readying the inner service",
            State::Running { .. } => "running",
            State::Buffering { .. } => "reading response body",
            State::Writing { .. } => "writing to the store",
            State::Ready { .. } => "ready",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("claimed", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl<St: IdempotencyStore, X> fmt::Debug for ClaimGuard<St, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimGuard")
            .field("token", &self.token)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}
