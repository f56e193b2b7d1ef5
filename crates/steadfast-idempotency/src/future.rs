//! The response future of [`Idempotency`](crate::Idempotency).

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use steadfast_core::error::BoxError;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::body::{Buffered, RequestBody, ResponseBody, poll_bytes};
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
        // Only the futures being polled: a transition moves nothing else.
        #[pin]
        state: State<
            S::Future,
            <St as IdempotencyStore>::Future<Claim>,
            <St as IdempotencyStore>::Future<WriteOutcome>,
        >,
        // Everything a request the layer handles carries between states, in one allocation
        // (none for a request passed through, whose future stays small).
        keyed: Option<Box<Keyed<S, B, ResB, S::Error, St, X>>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, CF, WF> {
        // Not handled by the layer, or failing open: the inner call, body untouched.
        Passthrough { #[pin] future: F },
        // Reading the request body into memory while hashing it.
        Reading,
        Claiming { #[pin] claim: CF },
        // Waiting for an in-flight first request (wait mode), without the inner service's
        // readiness: a permit of a layer below is not held while nothing runs.
        Waiting,
        // Making the inner service ready again before claiming once more.
        Readying,
        // The handler runs under the claim.
        Running { #[pin] future: F },
        // Reading a response to store into memory.
        Buffering,
        // Completing (storing) or releasing the claim, then returning the output.
        Writing { #[pin] write: WF, completing: bool },
        // Returning the output.
        Ready,
        Done,
    }
}

/// What a request the layer handles carries between states.
struct Keyed<S, B, ResB, E, St: IdempotencyStore, X> {
    config: Arc<Config<St, X>>,
    // The inner service `poll_ready` readied, until the key is claimed.
    service: Option<S>,
    key: StoreKey,
    fingerprint: Option<Fingerprint>,
    // The request head, and its body while it is read (then the chunks read).
    parts: Option<Parts>,
    body: Option<B>,
    hasher: Option<FingerprintHasher>,
    read: Buffered,
    // The handler's response while it is read to be stored.
    head: Option<http::response::Parts>,
    response_body: Option<ResB>,
    response_read: Buffered,
    // What the future returns once the store has been written, or at once.
    output: Option<Output<ResB, E>>,
    // Wait mode.
    wait_until: Option<Instant>,
    wait_step: Duration,
    /// Boxed on purpose: only a request that waits for an in-flight duplicate needs a
    /// timer, and `Sleep` is large; boxed, it is made once and `reset` for each wait step,
    /// and the state of every other request stays small.
    sleep: Option<Pin<Box<Sleep>>>,
    // Armed while this future holds a claim.
    guard: Option<ClaimGuard<St, X>>,
}

impl<S, B, ResB, E, St: IdempotencyStore, X> Keyed<S, B, ResB, E, St, X> {
    fn new(config: Arc<Config<St, X>>) -> Self {
        Self {
            config,
            service: None,
            key: StoreKey::from_bytes([0; 32]),
            fingerprint: None,
            parts: None,
            body: None,
            hasher: None,
            read: Buffered::default(),
            head: None,
            response_body: None,
            response_read: Buffered::default(),
            output: None,
            wait_until: None,
            wait_step: FIRST_WAIT_STEP,
            sleep: None,
            guard: None,
        }
    }

    /// The output is ready: returned by the `Ready` state.
    fn ready<F, CF, WF>(&mut self, output: Output<ResB, E>) -> State<F, CF, WF> {
        self.output = Some(output);
        State::Ready
    }
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
    pub(crate) fn passthrough(future: S::Future) -> Self {
        Self {
            state: State::Passthrough { future },
            keyed: None,
        }
    }

    pub(crate) fn ready(
        response: Response<ResponseBody<ResB>>,
        config: Arc<Config<St, X>>,
    ) -> Self {
        let mut keyed = Box::new(Keyed::new(config));
        keyed.output = Some(Ok(response));
        Self {
            state: State::Ready,
            keyed: Some(keyed),
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
        let mut keyed = Box::new(Keyed::new(config));
        keyed.service = Some(service);
        keyed.key = key;
        keyed.parts = Some(parts);
        keyed.body = Some(body);
        keyed.hasher = Some(hasher);
        Self {
            state: State::Reading,
            keyed: Some(keyed),
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
            let state = this.state.as_mut().project();
            let next = match state {
                StateProj::Passthrough { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    return Poll::Ready(result.map(|r| r.map(ResponseBody::passthrough)));
                }
                StateProj::Done => panic!("idempotency ResponseFuture polled after completion"),
                StateProj::Ready => {
                    let keyed = keyed_mut(this.keyed);
                    let output = keyed
                        .output
                        .take()
                        .expect("output is set with the Ready state");
                    this.state.set(State::Done);
                    return Poll::Ready(output);
                }
                StateProj::Reading => match ready!(read_request(keyed_mut(this.keyed), cx)) {
                    Err(problem) => keyed_mut(this.keyed).ready(Ok(problem.response(None, None))),
                    Ok(fingerprint) => {
                        let keyed = keyed_mut(this.keyed);
                        keyed.fingerprint = Some(fingerprint);
                        let config = &*keyed.config;
                        State::Claiming {
                            claim: config.store.claim(&keyed.key, &fingerprint, config.lease),
                        }
                    }
                },
                StateProj::Claiming { claim } => {
                    let result = ready!(claim.poll(cx));
                    on_claim(result, keyed_mut(this.keyed))
                }
                StateProj::Waiting => {
                    let keyed = keyed_mut(this.keyed);
                    let sleep = keyed.sleep.as_mut().expect("set while waiting");
                    ready!(sleep.as_mut().poll(cx));
                    State::Readying
                }
                StateProj::Readying => {
                    let keyed = keyed_mut(this.keyed);
                    let service = keyed.service.as_mut().expect("kept while waiting");
                    match ready!(service.poll_ready(cx)) {
                        Err(err) => keyed.ready(Err(err)),
                        Ok(()) => {
                            let fingerprint = keyed.fingerprint.expect("set before claiming");
                            let config = &*keyed.config;
                            State::Claiming {
                                claim: config.store.claim(&keyed.key, &fingerprint, config.lease),
                            }
                        }
                    }
                }
                StateProj::Running { future } => {
                    let result = ready!(future.poll(cx));
                    on_response(result, keyed_mut(this.keyed))
                }
                StateProj::Buffering => {
                    let keyed = keyed_mut(this.keyed);
                    let read = ready!(read_response(keyed, cx));
                    on_response_read(read, keyed)
                }
                StateProj::Writing { write, completing } => {
                    let result = ready!(write.poll(cx));
                    on_written(result, *completing, keyed_mut(this.keyed))
                }
            };
            this.state.set(next);
        }
    }
}

/// The data of a keyed state.
fn keyed_mut<T>(keyed: &mut Option<Box<T>>) -> &mut T {
    keyed.as_deref_mut().expect("keyed states carry their data")
}

type KeyedState<S, B, St> = State<
    <S as Service<Request<RequestBody<B>>>>::Future,
    <St as IdempotencyStore>::Future<Claim>,
    <St as IdempotencyStore>::Future<WriteOutcome>,
>;

/// The claim's answer: run the handler, replay, refuse, wait, or fail open or closed.
fn on_claim<S, B, ResB, St, X>(
    result: Result<Claim, BoxError>,
    keyed: &mut Keyed<S, B, ResB, S::Error, St, X>,
) -> KeyedState<S, B, St>
where
    S: Service<Request<RequestBody<B>>> + Clone,
    St: IdempotencyStore,
{
    let config = &*keyed.config;
    match result {
        Ok(Claim::Acquired(token)) => {
            config.stats.record(Event::Execution, &config.name);
            keyed.guard = Some(ClaimGuard {
                config: keyed.config.clone(),
                key: keyed.key,
                token,
                armed: true,
            });
            let request = take_request(keyed);
            let mut service = keyed.service.take().expect("called once");
            State::Running {
                future: service.call(request),
            }
        }
        Ok(Claim::Existing(record)) => on_existing(&record, keyed),
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
                let request = take_request(keyed);
                let mut service = keyed.service.take().expect("called once");
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
                let response = Problem::StoreUnavailable
                    .response(Some(crate::layer::DEFAULT_UNAVAILABLE_RETRY_AFTER), None);
                keyed.ready(Ok(response))
            }
        }
    }
}

/// The request for the inner service: the head and the body read into memory.
fn take_request<S, B, ResB, E, St: IdempotencyStore, X>(
    keyed: &mut Keyed<S, B, ResB, E, St, X>,
) -> Request<RequestBody<B>> {
    let parts = keyed
        .parts
        .take()
        .expect("the request head waits until the call");
    let body = RequestBody::buffered(mem::take(&mut keyed.read));
    Request::from_parts(parts, body)
}

/// The handler answered: store its response (after reading its body) or release the claim.
fn on_response<S, B, ResB, St, X>(
    result: Result<Response<ResB>, S::Error>,
    keyed: &mut Keyed<S, B, ResB, S::Error, St, X>,
) -> KeyedState<S, B, St>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
    ResB: Body,
    St: IdempotencyStore,
{
    let config = &*keyed.config;
    match result {
        Err(err) => release(keyed, Err(err)),
        Ok(response) if !config.policy.stores(response.status()) => {
            release(keyed, Ok(response.map(ResponseBody::passthrough)))
        }
        Ok(response) if response.body().size_hint().lower() > config.max_response_body as u64 => {
            config.stats.record(Event::ResponseTooLarge, &config.name);
            trace_too_large(config);
            release(keyed, Ok(response.map(ResponseBody::passthrough)))
        }
        Ok(response) => {
            let (head, body) = response.into_parts();
            keyed.head = Some(head);
            keyed.response_body = Some(body);
            State::Buffering
        }
    }
}

/// The response body is read: store it, or pass it on and release the claim.
fn on_response_read<S, B, ResB, St, X>(
    read: ResponseRead,
    keyed: &mut Keyed<S, B, ResB, S::Error, St, X>,
) -> KeyedState<S, B, St>
where
    S: Service<Request<RequestBody<B>>>,
    St: IdempotencyStore,
{
    let config = &*keyed.config;
    let head = keyed.head.take().expect("head is set while buffering");
    let buffered = mem::take(&mut keyed.response_read);
    match read {
        ResponseRead::TooLarge => {
            config.stats.record(Event::ResponseTooLarge, &config.name);
            trace_too_large(config);
            let body = ResponseBody::prefixed(buffered, keyed.response_body.take(), None);
            release(keyed, Ok(Response::from_parts(head, body)))
        }
        ResponseRead::Failed(err) => {
            let body = ResponseBody::prefixed(buffered, None, Some(err));
            release(keyed, Ok(Response::from_parts(head, body)))
        }
        ResponseRead::Complete => {
            let data = buffered.to_bytes();
            let trailers = buffered.trailers().cloned();
            let stored = to_stored(&head, data.clone(), trailers.clone(), config);
            let response = Response::from_parts(head, ResponseBody::full(data, trailers));
            match keyed.guard.as_ref() {
                Some(guard) => {
                    let write = config
                        .store
                        .complete(&guard.key, guard.token, stored, config.ttl);
                    keyed.output = Some(Ok(response));
                    State::Writing {
                        write,
                        completing: true,
                    }
                }
                None => keyed.ready(Ok(response)),
            }
        }
    }
}

/// The store was written (or failed to be): return the output.
fn on_written<S, B, ResB, St, X>(
    result: Result<WriteOutcome, BoxError>,
    completing: bool,
    keyed: &mut Keyed<S, B, ResB, S::Error, St, X>,
) -> KeyedState<S, B, St>
where
    S: Service<Request<RequestBody<B>>>,
    St: IdempotencyStore,
{
    let config = &*keyed.config;
    match result {
        Ok(outcome) => {
            if completing {
                on_completed(outcome, keyed.guard.as_ref(), config);
            }
            if let Some(guard) = keyed.guard.take() {
                guard.disarm();
            }
            State::Ready
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
                // Not stored: release the claim rather than wedge the key until its lease
                // expires.
                let output = keyed.output.take().expect("output waits in the state");
                release(keyed, output)
            } else {
                // The lease expires in the end.
                if let Some(guard) = keyed.guard.take() {
                    guard.disarm();
                }
                State::Ready
            }
        }
    }
}

/// Reads the request body into memory, hashing it, up to the cap; returns the fingerprint.
fn read_request<S, B, ResB, E, St: IdempotencyStore, X>(
    keyed: &mut Keyed<S, B, ResB, E, St, X>,
    cx: &mut Context<'_>,
) -> Poll<Result<Fingerprint, Problem>>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    let config = &*keyed.config;
    let body = keyed.body.as_mut().expect("the body is set while reading");
    let hasher = keyed
        .hasher
        .as_mut()
        .expect("the hasher is set while reading");
    loop {
        match ready!(poll_bytes(Pin::new(&mut *body), cx)) {
            None => {
                keyed.body = None;
                let hasher = keyed.hasher.take().expect("checked above");
                return Poll::Ready(Ok(hasher.finish()));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if keyed.read.len() + data.len() > config.max_request_body {
                        config.stats.record(Event::BodyTooLarge, &config.name);
                        return Poll::Ready(Err(Problem::BodyTooLarge));
                    }
                    hasher.update(&data);
                    keyed.read.push(data);
                }
                Err(frame) => {
                    if let Ok(more) = frame.into_trailers() {
                        keyed.read.merge_trailers(more);
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

/// Reads the handler's response body into memory, up to the cap.
fn read_response<S, B, ResB, E, St: IdempotencyStore, X>(
    keyed: &mut Keyed<S, B, ResB, E, St, X>,
    cx: &mut Context<'_>,
) -> Poll<ResponseRead>
where
    ResB: Body + Unpin,
    ResB::Error: Into<BoxError>,
{
    let config = &*keyed.config;
    let Some(reading) = keyed.response_body.as_mut() else {
        return Poll::Ready(ResponseRead::Complete);
    };
    loop {
        match ready!(poll_bytes(Pin::new(&mut *reading), cx)) {
            None => {
                keyed.response_body = None;
                return Poll::Ready(ResponseRead::Complete);
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    keyed.response_read.push(data);
                    if keyed.response_read.len() > config.max_response_body {
                        return Poll::Ready(ResponseRead::TooLarge);
                    }
                }
                Err(frame) => {
                    if let Ok(more) = frame.into_trailers() {
                        keyed.response_read.merge_trailers(more);
                    }
                }
            },
            Some(Err(err)) => {
                keyed.response_body = None;
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
fn on_existing<S, B, ResB, St, X>(
    record: &Record,
    keyed: &mut Keyed<S, B, ResB, S::Error, St, X>,
) -> KeyedState<S, B, St>
where
    S: Service<Request<RequestBody<B>>> + Clone,
    St: IdempotencyStore,
{
    let config = &*keyed.config;
    if Some(record.fingerprint()) != keyed.fingerprint.as_ref() {
        config.stats.record(Event::Mismatch, &config.name);
        tracing::debug!(
            target: "steadfast_idempotency",
            name = %config.name,
            "idempotency key reused with a different request"
        );
        return keyed.ready(Ok(Problem::Mismatch.response(None, None)));
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
            keyed.ready(Ok(replay(response)))
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
                    let deadline = (now + step).min(until);
                    match keyed.sleep.as_mut() {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => keyed.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    if let Some(service) = keyed.service.as_mut() {
                        // Give up the readiness while waiting: keep an unready clone.
                        let fresh = service.clone();
                        drop(mem::replace(service, fresh));
                    }
                    return State::Waiting;
                }
            }
            config.stats.record(Event::Conflict, &config.name);
            tracing::debug!(
                target: "steadfast_idempotency",
                name = %config.name,
                "a request with this idempotency key is in flight"
            );
            let response = Problem::InFlight.response(Some(config.conflict_retry_after), None);
            keyed.ready(Ok(response))
        }
    }
}

/// Releases the claim (if held), then returns `output`.
fn release<S, B, ResB, St, X>(
    keyed: &mut Keyed<S, B, ResB, S::Error, St, X>,
    output: Output<ResB, S::Error>,
) -> KeyedState<S, B, St>
where
    S: Service<Request<RequestBody<B>>>,
    St: IdempotencyStore,
{
    let config = &*keyed.config;
    match keyed.guard.as_ref() {
        Some(guard) => {
            config.stats.record(Event::Released, &config.name);
            let write = config.store.release(&guard.key, guard.token);
            keyed.output = Some(output);
            State::Writing {
                write,
                completing: false,
            }
        }
        None => keyed.ready(output),
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
            State::Reading => "reading request body",
            State::Claiming { .. } => "claiming",
            State::Waiting => "waiting for the first request",
            State::Readying => "readying the inner service",
            State::Running { .. } => "running",
            State::Buffering => "reading response body",
            State::Writing { .. } => "writing to the store",
            State::Ready => "ready",
            State::Done => "done",
        };
        let claimed = self.keyed.as_ref().is_some_and(|k| k.guard.is_some());
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("claimed", &claimed)
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
