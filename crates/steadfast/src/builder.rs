//! [`ServiceBuilderExt`]: one method per steadfast layer on [`tower::ServiceBuilder`].

use tower::ServiceBuilder;
#[cfg(any(
    feature = "hlc",
    feature = "retry",
    feature = "limit",
    feature = "shed",
    feature = "idempotency",
    feature = "lease"
))]
use tower::layer::util::Stack;

mod sealed {
    pub trait Sealed<L> {}
}

impl<L> sealed::Sealed<L> for ServiceBuilder<L> {}

/// Adds a method per steadfast layer to [`tower::ServiceBuilder`].
///
/// Each method is behind the feature of its crate. Layers whose configuration is validated
/// (retry, hedging, adaptive concurrency, load shedding, idempotency) take the already built
/// layer, so the
/// error is handled where the layer is built. The trait is sealed: only
/// [`ServiceBuilder`] implements it.
///
/// Without any feature enabled the trait has no methods.
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds a server-side [`HlcLayer`](steadfast_hlc::HlcLayer) on `hlc`: it merges the
    /// timestamps of incoming requests and stamps responses.
    ///
    /// See [`steadfast_hlc`] for more details.
    #[cfg(feature = "hlc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hlc")))]
    fn hlc_server<C>(
        self,
        hlc: std::sync::Arc<steadfast_hlc::Hlc<C>>,
    ) -> ServiceBuilder<Stack<steadfast_hlc::HlcLayer<C>, L>>
    where
        C: steadfast_core::clock::WallClock;

    /// Adds a client-side [`HlcLayer`](steadfast_hlc::HlcLayer) on `hlc`: it stamps
    /// requests and merges the timestamps of responses.
    ///
    /// See [`steadfast_hlc`] for more details.
    #[cfg(feature = "hlc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hlc")))]
    fn hlc_client<C>(
        self,
        hlc: std::sync::Arc<steadfast_hlc::Hlc<C>>,
    ) -> ServiceBuilder<Stack<steadfast_hlc::HlcLayer<C>, L>>
    where
        C: steadfast_core::clock::WallClock;

    /// Adds an already configured [`HlcLayer`](steadfast_hlc::HlcLayer) (custom header
    /// name or policy).
    ///
    /// See [`steadfast_hlc`] for more details.
    #[cfg(feature = "hlc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hlc")))]
    fn hlc<C>(
        self,
        layer: steadfast_hlc::HlcLayer<C>,
    ) -> ServiceBuilder<Stack<steadfast_hlc::HlcLayer<C>, L>>;

    /// Adds a built [`RetryLayer`](steadfast_retry::RetryLayer).
    ///
    /// Named `with_retry`, not `retry`: tower's own `ServiceBuilder::retry` (tower's
    /// `retry` feature, which any crate in the build can switch on) is an inherent method,
    /// and inherent methods win over trait methods. It takes any value as a tower retry
    /// *policy*, so `.retry(steadfast_layer)` would compile and build the wrong thing.
    ///
    /// See [`steadfast_retry`] for more details.
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn with_retry<C, P, R>(
        self,
        layer: steadfast_retry::RetryLayer<C, P, R>,
    ) -> ServiceBuilder<Stack<steadfast_retry::RetryLayer<C, P, R>, L>>;

    /// Adds a built [`HedgeLayer`](steadfast_retry::HedgeLayer).
    ///
    /// See [`steadfast_retry::hedge`] for more details.
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn hedge<C>(
        self,
        layer: steadfast_retry::HedgeLayer<C>,
    ) -> ServiceBuilder<Stack<steadfast_retry::HedgeLayer<C>, L>>;

    /// Adds a built [`AdaptiveConcurrencyLayer`](steadfast_limit::AdaptiveConcurrencyLayer).
    ///
    /// See [`steadfast_limit`] for more details.
    #[cfg(feature = "limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
    fn adaptive_concurrency<C, P>(
        self,
        layer: steadfast_limit::AdaptiveConcurrencyLayer<C, P>,
    ) -> ServiceBuilder<Stack<steadfast_limit::AdaptiveConcurrencyLayer<C, P>, L>>;

    /// Adds a built [`ShedLayer`](steadfast_shed::ShedLayer): a short, bounded queue in
    /// front of a service that applies backpressure (such as
    /// [`adaptive_concurrency`](Self::adaptive_concurrency) in its default mode), shed by
    /// controlled delay, priority and deadline.
    ///
    /// See [`steadfast_shed`] for more details.
    #[cfg(feature = "shed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "shed")))]
    fn shed<P, D>(
        self,
        layer: steadfast_shed::ShedLayer<P, D>,
    ) -> ServiceBuilder<Stack<steadfast_shed::ShedLayer<P, D>, L>>;

    /// Adds an [`OverloadResponseLayer`](steadfast_shed::OverloadResponseLayer): overload
    /// and deadline errors from the layers inside become HTTP `503` (with `Retry-After`) and
    /// `504`, or the gRPC statuses. Put it outermost; with its default policy the service
    /// is infallible, as axum's `Router::layer` requires.
    ///
    /// See [`steadfast_shed::OverloadResponseLayer`] for more details.
    #[cfg(feature = "shed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "shed")))]
    fn overload_response<O>(
        self,
        layer: steadfast_shed::OverloadResponseLayer<O>,
    ) -> ServiceBuilder<Stack<steadfast_shed::OverloadResponseLayer<O>, L>>;

    /// Adds a built server-side [`IdempotencyLayer`](steadfast_idempotency::IdempotencyLayer).
    ///
    /// See [`steadfast_idempotency`] for more details.
    #[cfg(feature = "idempotency")]
    #[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
    fn idempotency<St, X>(
        self,
        layer: steadfast_idempotency::IdempotencyLayer<St, X>,
    ) -> ServiceBuilder<Stack<steadfast_idempotency::IdempotencyLayer<St, X>, L>>;

    /// Adds a client-side [`IdempotencyKeyLayer`](steadfast_idempotency::IdempotencyKeyLayer)
    /// with its defaults: a random key on each unsafe request that has none.
    ///
    /// See [`steadfast_idempotency::client`] for more details.
    #[cfg(feature = "idempotency")]
    #[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
    fn idempotency_key(
        self,
    ) -> ServiceBuilder<Stack<steadfast_idempotency::IdempotencyKeyLayer, L>>;

    /// Adds a [`LeaderOnlyLayer`](steadfast_lease::LeaderOnlyLayer): only the current
    /// leader serves requests.
    ///
    /// See [`steadfast_lease`] for more details.
    #[cfg(feature = "lease")]
    #[cfg_attr(docsrs, doc(cfg(feature = "lease")))]
    fn leader_only<M>(
        self,
        layer: steadfast_lease::LeaderOnlyLayer<M>,
    ) -> ServiceBuilder<Stack<steadfast_lease::LeaderOnlyLayer<M>, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "hlc")]
    fn hlc_server<C>(
        self,
        hlc: std::sync::Arc<steadfast_hlc::Hlc<C>>,
    ) -> ServiceBuilder<Stack<steadfast_hlc::HlcLayer<C>, L>>
    where
        C: steadfast_core::clock::WallClock,
    {
        self.layer(steadfast_hlc::HlcLayer::server(hlc))
    }

    #[cfg(feature = "hlc")]
    fn hlc_client<C>(
        self,
        hlc: std::sync::Arc<steadfast_hlc::Hlc<C>>,
    ) -> ServiceBuilder<Stack<steadfast_hlc::HlcLayer<C>, L>>
    where
        C: steadfast_core::clock::WallClock,
    {
        self.layer(steadfast_hlc::HlcLayer::client(hlc))
    }

    #[cfg(feature = "hlc")]
    fn hlc<C>(
        self,
        layer: steadfast_hlc::HlcLayer<C>,
    ) -> ServiceBuilder<Stack<steadfast_hlc::HlcLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn with_retry<C, P, R>(
        self,
        layer: steadfast_retry::RetryLayer<C, P, R>,
    ) -> ServiceBuilder<Stack<steadfast_retry::RetryLayer<C, P, R>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn hedge<C>(
        self,
        layer: steadfast_retry::HedgeLayer<C>,
    ) -> ServiceBuilder<Stack<steadfast_retry::HedgeLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "limit")]
    fn adaptive_concurrency<C, P>(
        self,
        layer: steadfast_limit::AdaptiveConcurrencyLayer<C, P>,
    ) -> ServiceBuilder<Stack<steadfast_limit::AdaptiveConcurrencyLayer<C, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "shed")]
    fn shed<P, D>(
        self,
        layer: steadfast_shed::ShedLayer<P, D>,
    ) -> ServiceBuilder<Stack<steadfast_shed::ShedLayer<P, D>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "shed")]
    fn overload_response<O>(
        self,
        layer: steadfast_shed::OverloadResponseLayer<O>,
    ) -> ServiceBuilder<Stack<steadfast_shed::OverloadResponseLayer<O>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "idempotency")]
    fn idempotency<St, X>(
        self,
        layer: steadfast_idempotency::IdempotencyLayer<St, X>,
    ) -> ServiceBuilder<Stack<steadfast_idempotency::IdempotencyLayer<St, X>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "idempotency")]
    fn idempotency_key(
        self,
    ) -> ServiceBuilder<Stack<steadfast_idempotency::IdempotencyKeyLayer, L>> {
        self.layer(steadfast_idempotency::IdempotencyKeyLayer::new())
    }

    #[cfg(feature = "lease")]
    fn leader_only<M>(
        self,
        layer: steadfast_lease::LeaderOnlyLayer<M>,
    ) -> ServiceBuilder<Stack<steadfast_lease::LeaderOnlyLayer<M>, L>> {
        self.layer(layer)
    }
}
