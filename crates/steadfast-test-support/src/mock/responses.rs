//! How the mock answers calls: by a closure, or one by one from the test.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use steadfast_core::error::BoxError;
use tokio::sync::{Notify, oneshot};

use super::future::Reply;
use super::lock;

type RespondFn<Req, Res> = dyn Fn(&Req) -> Result<Res, BoxError> + Send + Sync;

pub(super) struct Responses<Req, Res> {
    state: Mutex<ResponsesState<Req, Res>>,
    /// Notified when a call is queued in manual mode.
    arrived: Notify,
}

struct ResponsesState<Req, Res> {
    mode: Mode<Req, Res>,
    /// Manual-mode calls the test has not taken yet.
    queue: VecDeque<(Req, Responder<Res>)>,
}

enum Mode<Req, Res> {
    Unset,
    Closure(Arc<RespondFn<Req, Res>>),
    Manual,
}

const NO_RESPONDER: &str = "the mock service has no responder: \
     call MockHandle::respond_with or MockHandle::respond_manually";

impl<Req, Res> Responses<Req, Res> {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(ResponsesState {
                mode: Mode::Unset,
                queue: VecDeque::new(),
            }),
            arrived: Notify::new(),
        }
    }

    pub(super) fn respond_with(&self, respond: Arc<RespondFn<Req, Res>>) {
        lock(&self.state).mode = Mode::Closure(respond);
    }

    pub(super) fn respond_manually(&self) {
        lock(&self.state).mode = Mode::Manual;
    }

    /// Answers (or queues) one call.
    pub(super) fn dispatch(&self, request: Req) -> Reply<Res> {
        let mut state = lock(&self.state);
        match &state.mode {
            Mode::Unset => Reply::ready(Err(NO_RESPONDER.into())),
            Mode::Closure(respond) => {
                let respond = Arc::clone(respond);
                // The closure may use the handle: do not hold the lock while it runs.
                drop(state);
                Reply::ready(respond(&request))
            }
            Mode::Manual => {
                let (tx, rx) = oneshot::channel();
                state.queue.push_back((request, Responder { tx }));
                drop(state);
                self.arrived.notify_one();
                Reply::waiting(rx)
            }
        }
    }

    pub(super) fn try_next(&self) -> Option<(Req, Responder<Res>)> {
        lock(&self.state).queue.pop_front()
    }

    pub(super) async fn next(&self) -> (Req, Responder<Res>) {
        loop {
            if let Some(next) = self.try_next() {
                return next;
            }
            // `notify_one` keeps a permit when nobody waits, so a call queued between the
            // check above and this await is not missed.
            self.arrived.notified().await;
        }
    }

    pub(super) fn waiting(&self) -> usize {
        lock(&self.state).queue.len()
    }
}

impl<Req, Res> fmt::Debug for Responses<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        let mode = match state.mode {
            Mode::Unset => "unset",
            Mode::Closure(_) => "closure",
            Mode::Manual => "manual",
        };
        f.debug_struct("Responses")
            .field("mode", &mode)
            .field("waiting", &state.queue.len())
            .finish()
    }
}

/// Answers one call made to a mock service in manual mode; see
/// [`MockHandle::next_request`](super::MockHandle::next_request).
///
/// Dropping it without answering fails the call with an error.
pub struct Responder<Res> {
    tx: oneshot::Sender<Result<Res, BoxError>>,
}

impl<Res> Responder<Res> {
    /// Completes the call with `result`. Returns `false` if the response future was already
    /// dropped (nobody will see the result).
    pub fn send(self, result: Result<Res, BoxError>) -> bool {
        self.tx.send(result).is_ok()
    }

    /// Completes the call with the response `response`; see [`send`](Self::send).
    pub fn ok(self, response: Res) -> bool {
        self.send(Ok(response))
    }

    /// Fails the call with `error`; see [`send`](Self::send).
    pub fn err(self, error: impl Into<BoxError>) -> bool {
        self.send(Err(error.into()))
    }

    /// Whether the response future was dropped, so an answer would go nowhere.
    pub fn is_cancelled(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<Res> fmt::Debug for Responder<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
