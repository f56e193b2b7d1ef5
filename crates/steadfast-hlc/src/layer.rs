//! [`HlcLayer`]: HLC propagation through HTTP headers, for servers and clients.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use steadfast_core::clock::{SystemClock, WallClock};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::header::{self, DEFAULT_HEADER, HeaderPolicy, HeaderStats};
use crate::{Hlc, Timestamp};

/// Which side of a call the layer sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

/// What the layer's services and futures share, behind one `Arc`: cloning a service
/// (servers clone the stack for every connection, axum's `Router::layer` for every
/// request) or making a response future then costs one reference count, not one per
/// field.
pub(crate) struct Shared<C> {
    pub(crate) hlc: Arc<Hlc<C>>,
    pub(crate) header: HeaderName,
    pub(crate) policy: HeaderPolicy,
    pub(crate) stats: Arc<HeaderStats>,
    pub(crate) role: Role,
}

impl<C> Clone for Shared<C> {
    fn clone(&self) -> Self {
        Self {
            hlc: self.hlc.clone(),
            header: self.header.clone(),
            policy: self.policy,
            stats: self.stats.clone(),
            role: self.role,
        }
    }
}

impl<C: WallClock> Shared<C> {
    /// Merges the HLC header in `headers`, if any. `Err(())` means it was bad (already
    /// counted and traced).
    pub(crate) fn merge(&self, headers: &HeaderMap) -> Result<(), ()> {
        let Some(value) = headers.get(&self.header) else {
            return Ok(());
        };
        match header::decode(value.as_bytes()) {
            Ok(remote) => self.hlc.update(remote).map_err(|err| {
                self.stats.count_too_far_ahead();
                tracing::warn!(
                    target: "steadfast_hlc",
                    header = %self.header,
                    remote = %err.remote(),
                    ahead_by = ?err.offset(),
                    max_offset = ?err.max_offset(),
                    "HLC header too far ahead of physical time; not merged"
                );
            }),
            Err(_) => {
                self.stats.count_malformed();
                tracing::warn!(
                    target: "steadfast_hlc",
                    header = %self.header,
                    value = ?value,
                    "malformed HLC header; not merged"
                );
                Err(())
            }
        }
    }
}

/// A tower layer that propagates [`Hlc`] timestamps in an HTTP header
/// ([`DEFAULT_HEADER`], `hlc-timestamp`), on the server side or the client side of a call.
///
/// **Server** ([`HlcLayer::server`]), for each request:
/// 1. merges the caller's header into the clock (a request without one is fine);
/// 2. issues the timestamp of the receive event and puts it in the request's extensions, so
///    a handler reads it with `req.extensions().get::<Timestamp>()` (or axum's
///    `Extension<Timestamp>`);
/// 3. stamps the response with a fresh timestamp, issued when the response is ready.
///
/// A malformed header, or one further ahead of this node's physical time than the clock's
/// max offset, follows the [`HeaderPolicy`]: by default it is ignored, counted in
/// [`HeaderStats`] and traced; with [`HeaderPolicy::Reject`] the request is answered
/// `400 Bad Request` and never reaches the inner service.
///
/// **Client** ([`HlcLayer::client`]), for each request: stamps the request with a fresh
/// timestamp, and merges the response's header (a bad response header is always ignored,
/// counted and traced: a client cannot refuse an answer it already has).
///
/// The layer never changes the error type: errors of the inner service pass through, and
/// error responses are stamped like any other.
///
/// # Clone
///
/// Clones share the clock and the [`HeaderStats`].
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use http::{Request, Response};
/// use steadfast_hlc::{Hlc, HlcLayer, Timestamp};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let hlc = Arc::new(Hlc::new());
/// let server = ServiceBuilder::new()
///     .layer(HlcLayer::server(hlc.clone()))
///     .service(service_fn(|req: Request<String>| async move {
///         let at = req.extensions().get::<Timestamp>().copied();
///         Ok::<_, std::convert::Infallible>(Response::new(format!("handled at {at:?}")))
///     }));
///
/// let response = server.oneshot(Request::new(String::new())).await?;
/// let stamped = response.headers().get("hlc-timestamp").expect("stamped");
/// assert!(steadfast_hlc::header::decode(stamped.as_bytes())? <= hlc.now());
/// # Ok(())
/// # }
/// ```
pub struct HlcLayer<C = SystemClock> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for HlcLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<C: WallClock> HlcLayer<C> {
    /// A server-side layer on `hlc`.
    pub fn server(hlc: Arc<Hlc<C>>) -> Self {
        Self::new(hlc, Role::Server)
    }

    /// A client-side layer on `hlc`.
    pub fn client(hlc: Arc<Hlc<C>>) -> Self {
        Self::new(hlc, Role::Client)
    }

    fn new(hlc: Arc<Hlc<C>>, role: Role) -> Self {
        Self {
            shared: Arc::new(Shared {
                hlc,
                header: DEFAULT_HEADER,
                policy: HeaderPolicy::default(),
                stats: Arc::default(),
                role,
            }),
        }
    }

    /// Uses `header` instead of [`DEFAULT_HEADER`].
    #[must_use]
    pub fn header_name(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.shared).header = header;
        self
    }

    /// What a server does with a bad header (default [`HeaderPolicy::Ignore`]).
    #[must_use]
    pub fn policy(mut self, policy: HeaderPolicy) -> Self {
        Arc::make_mut(&mut self.shared).policy = policy;
        self
    }

    /// The counts of bad headers, shared by every service this layer makes.
    pub fn stats(&self) -> Arc<HeaderStats> {
        self.shared.stats.clone()
    }
}

impl<C> fmt::Debug for HlcLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HlcLayer")
            .field("role", &self.shared.role)
            .field("header", &self.shared.header)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl<S, C> Layer<S> for HlcLayer<C> {
    type Service = HlcService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        HlcService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`HlcLayer`].
pub struct HlcService<S, C = SystemClock> {
    inner: S,
    shared: Arc<Shared<C>>,
}

impl<S, C> HlcService<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C> Clone for HlcService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for HlcService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HlcService")
            .field("inner", &self.inner)
            .field("role", &self.shared.role)
            .field("header", &self.shared.header)
            .finish_non_exhaustive()
    }
}

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for HlcService<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: WallClock,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        match shared.role {
            Role::Server => {
                let bad = shared.merge(req.headers()).is_err();
                if bad && shared.policy == HeaderPolicy::Reject {
                    let mut response = Response::new(ResBody::default());
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    return ResponseFuture::rejected(response, shared.clone());
                }
                let received: Timestamp = shared.hlc.now();
                req.extensions_mut().insert(received);
            }
            Role::Client => {
                let sent = shared.hlc.now();
                req.headers_mut()
                    .insert(shared.header.clone(), header::encode(sent));
            }
        }
        ResponseFuture::called(self.inner.call(req), shared.clone())
    }
}
