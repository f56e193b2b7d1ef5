//! [`Singleton`]: run a job only while this replica holds a lease.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::error::{InvalidLeaseConfig, LeaseError, Stopped};
use crate::lease::{FencingToken, Lease, LeaseTerms};
use crate::rng::SplitMix64;
use crate::state::LeaderState;
use crate::store::LeaseStore;
use crate::util::{Either, first, later};

mod guard;

pub use guard::LeaseGuard;
use guard::Signal;

/// The default lease duration: 15 s, client-go's `LeaseDuration` for the Kubernetes
/// control plane (kube-scheduler, kube-controller-manager). A crashed leader is replaced
/// within about one ttl plus one retry period.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// The default retry period: 2 s, client-go's `RetryPeriod`. Contenders try to acquire
/// once per period (jittered between half a period and a full one), so a released lease is
/// taken within one period; a failed renewal is retried as often (or every ttl/3 if that
/// is shorter).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// The fixed part of the default safety margin: 2 ms, as Redlock's clock-drift allowance
/// (`ttl × 1% + 2 ms`). It also covers tokio's 1 ms timer resolution.
pub const DEFAULT_MARGIN_FIXED: Duration = Duration::from_millis(2);

/// The default safety margin for a lease of `ttl`: `ttl / 100 + 2 ms`, Redlock's drift
/// allowance (rslock: `drift = ttl × 0.01 + 2`). It lets the holder's clock run up to 1%
/// slower than the store's (Gray & Cheriton's ε) and still stop before the store
/// expires the lease. Network delay needs no allowance: the deadline counts from when the
/// renewal was *sent*, which is before the store started its ttl.
///
/// ```
/// use std::time::Duration;
/// use steadfast_lease::singleton::default_safety_margin;
///
/// assert_eq!(default_safety_margin(Duration::from_secs(15)), Duration::from_millis(152));
/// ```
pub const fn default_safety_margin(ttl: Duration) -> Duration {
    let ratio = match ttl.checked_div(100) {
        Some(ratio) => ratio,
        None => Duration::ZERO,
    };
    ratio.saturating_add(DEFAULT_MARGIN_FIXED)
}

/// The longest ttl or takeover delay a [`SingletonBuilder`] accepts: one year.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// The runner's settings, validated.
#[derive(Debug, Clone, Copy)]
struct Config {
    ttl: Duration,
    margin: Option<Duration>,
    retry_period: Duration,
    takeover_delay: Duration,
}

impl Config {
    fn terms(&self) -> LeaseTerms {
        LeaseTerms::new(self.ttl).with_takeover_delay(self.takeover_delay)
    }

    fn margin(&self, ttl: Duration) -> Duration {
        self.margin.unwrap_or(default_safety_margin(ttl))
    }

    /// The local deadline for a lease of `ttl` whose acquisition or renewal was sent at
    /// `sent_at`.
    fn deadline(&self, sent_at: Instant, ttl: Duration) -> Instant {
        later(sent_at, ttl.saturating_sub(self.margin(ttl)))
    }
}

/// How often a holder renews a lease of `ttl`: every third of it, as etcd's client does
/// (`nextKeepAlive = now + TTL/3`). Also the timeout of each store call.
fn renew_every(ttl: Duration) -> Duration {
    ttl / 3
}

/// Runs a job only while this replica holds a lease, and tells the job when it must stop.
///
/// [`run`](Self::run) loops:
///
/// 1. **Campaign**: try to acquire the lease; if someone else holds it (or the store does
///    not answer), learn who leads, publish it, and try again after a jittered
///    [retry period](SingletonBuilder::retry_period).
/// 2. **Lead**: start the job with a [`LeaseGuard`] (token and stop signals). Renew every
///    ttl/3. After each successful renewal the local **deadline** becomes *the instant that
///    renewal was sent* + ttl − [safety margin](SingletonBuilder::safety_margin), on the
///    monotonic tokio clock. A failed or unanswered renewal is retried until the deadline.
/// 3. **Lose**: if a renewal finds the lease taken (compare-and-set failed), or the
///    deadline passes without a successful renewal (whether or not the store ever
///    answers), the term is over: the guard's [`lost`](LeaseGuard::lost) fires, the job's
///    future is **dropped** (cancelled at its current `.await`), and the runner campaigns
///    again. The store cannot expire the lease before the deadline (as long as the two
///    clocks' rates differ by less than the margin allows), so the job never runs while the
///    store already considers the lease free.
/// 4. **Finish**: when the job returns, the runner releases the lease (so the next holder
///    takes over within one retry period) and `run` returns the job's output.
///
/// **Shutdown** ([`ShutdownHandle::shutdown`], or the signal given to
/// [`run_until`](Self::run_until)): while campaigning, `run` returns [`Stopped`] at once;
/// while leading, the guard's [`shutdown_requested`](LeaseGuard::shutdown_requested) fires
/// and the runner keeps renewing until the job returns, then releases the lease and
/// returns the job's output. Dropping the `run` future instead cancels the job and leaves
/// the lease to expire.
///
/// Leadership is also published as a [`LeaderState`] on a watch channel
/// ([`state`](Self::state)), which [`LeaderOnlyLayer`](crate::LeaderOnlyLayer) reads.
///
/// The holder id must be unique per replica *and per process incarnation* (for example
/// `hostname-pid-random`): a store treats an acquisition by the current holder as a renewal.
///
/// # Cancel safety
///
/// Dropping the `run` future drops the job at once and does not release the lease (it
/// expires after the ttl); prefer a shutdown, which lets the job finish.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use steadfast_lease::{FenceGate, MemoryLeaseStore, Singleton};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = MemoryLeaseStore::new();
/// let gate = Arc::new(FenceGate::new()); // lives with the resource
///
/// let singleton = Singleton::builder(store, "compaction", "replica-a")
///     .ttl(Duration::from_secs(15))
///     .build()?;
/// let shutdown = singleton.shutdown_handle();
///
/// let runner = tokio::spawn(singleton.run(move |guard| {
///     let gate = gate.clone();
///     async move {
///         let mut compactions = 0;
///         loop {
///             // Every write carries the token; the resource checks it.
///             gate.admit("segments", guard.holder(), guard.token())?;
///             compactions += 1;
///             tokio::select! {
///                 _ = guard.shutdown_requested() => return Ok::<_, steadfast_lease::Fenced>(compactions),
///                 _ = tokio::time::sleep(Duration::from_secs(60)) => {}
///             }
///         }
///     }
/// }));
///
/// tokio::time::sleep(Duration::from_secs(630)).await; // renewed every 5 s meanwhile
/// shutdown.shutdown(); // the job finishes its sleep's select, returns; the lease is released
/// let compactions = runner.await???;
/// assert_eq!(compactions, 11);
/// # Ok(())
/// # }
/// ```
pub struct Singleton<S> {
    store: S,
    name: Arc<str>,
    holder: Arc<str>,
    config: Config,
    state: watch::Sender<LeaderState>,
    shutdown: Arc<watch::Sender<bool>>,
    rng: SplitMix64,
}

impl<S> Singleton<S> {
    /// A builder for a singleton contending for the lease `name` in `store`, as `holder`.
    pub fn builder(
        store: S,
        name: impl Into<Arc<str>>,
        holder: impl Into<Arc<str>>,
    ) -> SingletonBuilder<S> {
        SingletonBuilder {
            store,
            name: name.into(),
            holder: holder.into(),
            ttl: DEFAULT_TTL,
            margin: None,
            retry_period: None,
            takeover_delay: Duration::ZERO,
            seed: None,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This replica's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease duration requested.
    pub fn ttl(&self) -> Duration {
        self.config.ttl
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// A receiver of this replica's [`LeaderState`], for
    /// [`LeaderOnlyLayer`](crate::LeaderOnlyLayer), health checks and metrics. It starts as
    /// `Following { leader: None }` and ends as `Stopped`.
    pub fn state(&self) -> watch::Receiver<LeaderState> {
        self.state.subscribe()
    }

    /// A handle that shuts the singleton down (see the [type docs](Self)).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            sender: self.shutdown.clone(),
        }
    }

    fn publish(&self, state: LeaderState) {
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// A wait of between half and all of `base`.
    fn jittered(&self, base: Duration) -> Duration {
        base.mul_f64(0.5 + 0.5 * self.rng.next_f64())
    }
}

impl<S: LeaseStore> Singleton<S> {
    /// Campaigns for the lease and runs `job` while holding it, until a job run returns or
    /// the singleton is shut down (see the [type docs](Self)).
    ///
    /// `job` is called once per term, with that term's guard; its future is dropped when
    /// the term is lost.
    ///
    /// # Errors
    ///
    /// [`Stopped`] when shut down while no job ran to completion.
    ///
    /// # Panics
    ///
    /// A panic in the job propagates out of `run` (the job runs in the caller's task). The
    /// guards then report the loss, the state becomes `Stopped`, and the lease is not
    /// released: it expires after its ttl.
    pub async fn run<F, Fut>(self, job: F) -> Result<Fut::Output, Stopped>
    where
        F: FnMut(LeaseGuard) -> Fut,
        Fut: Future,
    {
        self.run_until(std::future::pending(), job).await
    }

    /// Like [`run`](Self::run), also shutting down when `signal` completes (for example
    /// `async { tokio::signal::ctrl_c().await.ok(); }`).
    ///
    /// # Errors
    ///
    /// [`Stopped`] when shut down while no job ran to completion.
    pub async fn run_until<Sig, F, Fut>(
        self,
        signal: Sig,
        mut job: F,
    ) -> Result<Fut::Output, Stopped>
    where
        Sig: Future<Output = ()>,
        F: FnMut(LeaseGuard) -> Fut,
        Fut: Future,
    {
        let mut by_handle = self.shutdown.subscribe();
        let stop = async move {
            let from_handle = async move {
                let closed = by_handle.wait_for(|stop| *stop).await.is_err();
                if closed {
                    // Unreachable while `self` holds a sender; never a reason to stop.
                    std::future::pending::<()>().await;
                }
            };
            let _ = first(signal, from_handle).await;
        };
        let mut stop = Stop {
            future: pin!(stop),
            fired: false,
        };
        let _stopped = PublishStopped(&self.state);
        loop {
            let Some((lease, sent_at)) = self.campaign(&mut stop).await else {
                return Err(Stopped::new());
            };
            match self.lead(lease, sent_at, &mut job, &mut stop).await {
                Led::Finished(output) => return Ok(output),
                Led::Lost if stop.fired => return Err(Stopped::new()),
                Led::Lost => {}
            }
        }
    }

    /// Tries to acquire until it succeeds (returning the lease and when the successful
    /// attempt was sent) or shutdown is requested (`None`).
    async fn campaign<Sh>(&self, stop: &mut Stop<'_, Sh>) -> Option<(Lease, Instant)>
    where
        Sh: Future<Output = ()>,
    {
        let terms = self.config.terms();
        let timeout = renew_every(self.config.ttl);
        loop {
            if stop.fired {
                return None;
            }
            let sent_at = Instant::now();
            let attempt = self.store.try_acquire(&self.name, &self.holder, terms);
            match race(stop, attempt, sent_at + timeout).await {
                Race::Done(Ok(Some(lease))) => {
                    if stop.fired {
                        self.release_quietly(&lease).await;
                        return None;
                    }
                    if Instant::now() < self.config.deadline(sent_at, lease.ttl()) {
                        return Some((lease, sent_at));
                    }
                    tracing::warn!(
                        target: "steadfast_lease",
                        name = %self.name,
                        holder = %self.holder,
                        "the store granted the lease too late to use it; releasing it"
                    );
                    self.release_quietly(&lease).await;
                }
                Race::Done(Ok(None)) => self.observe(stop).await,
                Race::Done(Err(err)) => tracing::warn!(
                    target: "steadfast_lease",
                    name = %self.name,
                    holder = %self.holder,
                    error = %err,
                    "campaign: lease store unavailable"
                ),
                Race::TimedOut => tracing::warn!(
                    target: "steadfast_lease",
                    name = %self.name,
                    holder = %self.holder,
                    ?timeout,
                    "campaign: lease store did not answer"
                ),
                Race::Stopped => return None,
            }
            let wait = self.jittered(self.config.retry_period);
            if let Race::Stopped =
                race(stop, std::future::pending::<()>(), Instant::now() + wait).await
            {
                return None;
            }
        }
    }

    /// Learns who holds the lease, and publishes it.
    async fn observe<Sh>(&self, stop: &mut Stop<'_, Sh>)
    where
        Sh: Future<Output = ()>,
    {
        let timeout = Instant::now() + renew_every(self.config.ttl);
        if let Race::Done(Ok(leader)) = race(stop, self.store.current(&self.name), timeout).await {
            tracing::debug!(
                target: "steadfast_lease",
                name = %self.name,
                holder = %self.holder,
                leader = leader.as_ref().map(|l| l.id()),
                "campaign: lease held by another replica"
            );
            self.publish(LeaderState::Following { leader });
        }
    }

    /// Runs one term: the job, renewals, and the deadline.
    async fn lead<F, Fut, Sh>(
        &self,
        lease: Lease,
        sent_at: Instant,
        job: &mut F,
        stop: &mut Stop<'_, Sh>,
    ) -> Led<Fut::Output>
    where
        F: FnMut(LeaseGuard) -> Fut,
        Fut: Future,
        Sh: Future<Output = ()>,
    {
        let mut lease = lease;
        let token = lease.token();
        let mut deadline = self.config.deadline(sent_at, lease.ttl());
        let (signal, receiver) = watch::channel(Signal {
            deadline,
            over: false,
            shutdown: stop.fired,
        });
        tracing::info!(
            target: "steadfast_lease",
            name = %self.name,
            holder = %self.holder,
            token = token.get(),
            "acquired the lease; starting the job"
        );
        self.publish(LeaderState::Leading { token, deadline });

        let mut job = pin!(job(LeaseGuard::new(lease.clone(), receiver)));
        let mut deadline_timer = pin!(sleep_until(deadline));
        // Fires for the next renewal while idle, and as the attempt timeout while renewing.
        let mut renew_timer = pin!(sleep_until(sent_at + renew_every(lease.ttl())));
        let mut renewal = pin!(renewal(&self.store, None));
        let mut renewal_sent = sent_at;
        let mut shutdown_seen = stop.fired;

        loop {
            let event = poll_fn(|cx| {
                // The deadline first: after a stall, the job must not run another step.
                if Instant::now() >= deadline || deadline_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Deadline);
                }
                if let Some(pending) = renewal.as_mut().as_pin_mut()
                    && let Poll::Ready(result) = pending.poll(cx)
                {
                    return Poll::Ready(Event::Renewed(result));
                }
                if !shutdown_seen && stop.poll(cx).is_ready() {
                    return Poll::Ready(Event::Shutdown);
                }
                if let Poll::Ready(output) = job.as_mut().poll(cx) {
                    return Poll::Ready(Event::Finished(output));
                }
                if renew_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Timer);
                }
                Poll::Pending
            })
            .await;

            match event {
                Event::Deadline => {
                    return self.lose(
                        &signal,
                        token,
                        "no successful renewal before the local deadline",
                    );
                }
                Event::Renewed(Ok(renewed)) => {
                    renewal.set(self::renewal(&self.store, None));
                    let extended = self.config.deadline(renewal_sent, renewed.ttl());
                    if extended > deadline {
                        deadline = extended;
                        deadline_timer.as_mut().reset(deadline);
                        signal.send_modify(|signal| signal.deadline = deadline);
                    }
                    self.publish(LeaderState::Leading { token, deadline });
                    let next = renewal_sent + renew_every(renewed.ttl());
                    renew_timer.as_mut().reset(next.max(Instant::now()));
                    lease = renewed;
                    tracing::trace!(
                        target: "steadfast_lease",
                        name = %self.name,
                        holder = %self.holder,
                        token = token.get(),
                        "renewed the lease"
                    );
                }
                Event::Renewed(Err(LeaseError::Lost(_))) => {
                    return self.lose(
                        &signal,
                        token,
                        "the store says the lease was taken or expired",
                    );
                }
                Event::Renewed(Err(LeaseError::Store(err))) => {
                    renewal.set(self::renewal(&self.store, None));
                    let retry =
                        self.jittered(self.config.retry_period.min(renew_every(lease.ttl())));
                    renew_timer.as_mut().reset(Instant::now() + retry);
                    tracing::warn!(
                        target: "steadfast_lease",
                        name = %self.name,
                        holder = %self.holder,
                        token = token.get(),
                        error = %err,
                        ?deadline,
                        "renewal failed; retrying until the deadline"
                    );
                }
                Event::Timer => {
                    if renewal.is_some() {
                        tracing::warn!(
                            target: "steadfast_lease",
                            name = %self.name,
                            holder = %self.holder,
                            token = token.get(),
                            "renewal got no answer in time; sending another"
                        );
                    }
                    renewal_sent = Instant::now();
                    renewal.set(self::renewal(&self.store, Some(lease.clone())));
                    renew_timer
                        .as_mut()
                        .reset(renewal_sent + renew_every(lease.ttl()));
                }
                Event::Shutdown => {
                    shutdown_seen = true;
                    signal.send_modify(|signal| signal.shutdown = true);
                    tracing::info!(
                        target: "steadfast_lease",
                        name = %self.name,
                        holder = %self.holder,
                        token = token.get(),
                        "shutdown requested; waiting for the job to finish"
                    );
                }
                Event::Finished(output) => {
                    renewal.set(self::renewal(&self.store, None));
                    signal.send_modify(|signal| signal.over = true);
                    self.publish(LeaderState::Following { leader: None });
                    self.release_quietly(&lease).await;
                    return Led::Finished(output);
                }
            }
        }
    }

    /// Ends a term that was lost. The caller drops the job right after.
    fn lose<T>(
        &self,
        signal: &watch::Sender<Signal>,
        token: FencingToken,
        reason: &'static str,
    ) -> Led<T> {
        signal.send_modify(|signal| signal.over = true);
        self.publish(LeaderState::Following { leader: None });
        tracing::warn!(
            target: "steadfast_lease",
            name = %self.name,
            holder = %self.holder,
            token = token.get(),
            reason,
            "lost the lease; cancelling the job"
        );
        Led::Lost
    }

    /// Releases `lease`, logging rather than returning failures: an unreleased lease
    /// expires after its ttl anyway.
    async fn release_quietly(&self, lease: &Lease) {
        let timeout = sleep_until(Instant::now() + renew_every(lease.ttl()));
        let outcome = match first(self.store.release(lease), timeout).await {
            Either::Left(Ok(())) => "released",
            Either::Left(Err(LeaseError::Lost(_))) => "already lost",
            Either::Left(Err(LeaseError::Store(_))) => "store unavailable; the lease will expire",
            Either::Right(()) => "no answer in time; the lease will expire",
        };
        tracing::info!(
            target: "steadfast_lease",
            name = %self.name,
            holder = %self.holder,
            token = lease.token().get(),
            outcome,
            "released the lease"
        );
    }
}

/// The renewal in flight, if any. One function, so every renewal future has one type and
/// fits one pinned slot.
fn renewal<S: LeaseStore>(
    store: &S,
    lease: Option<Lease>,
) -> Option<impl Future<Output = Result<Lease, LeaseError>> + '_> {
    lease.map(|lease| async move { store.renew(&lease).await })
}

impl<S> fmt::Debug for Singleton<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Singleton")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("ttl", &self.config.ttl)
            .field("safety_margin", &self.config.margin(self.config.ttl))
            .field("retry_period", &self.config.retry_period)
            .field("takeover_delay", &self.config.takeover_delay)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

/// How a term ended.
enum Led<T> {
    Finished(T),
    Lost,
}

enum Event<T> {
    Deadline,
    Renewed(Result<Lease, LeaseError>),
    Shutdown,
    Finished(T),
    Timer,
}

/// The shutdown signal, remembered once fired.
struct Stop<'a, F> {
    future: Pin<&'a mut F>,
    fired: bool,
}

impl<F: Future<Output = ()>> Stop<'_, F> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.fired && self.future.as_mut().poll(cx).is_ready() {
            self.fired = true;
        }
        if self.fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

enum Race<T> {
    Done(T),
    TimedOut,
    Stopped,
}

/// Waits for `future`, shutdown, or `timeout`, in that order of preference.
async fn race<T, Sh: Future<Output = ()>>(
    stop: &mut Stop<'_, Sh>,
    future: impl Future<Output = T>,
    timeout: Instant,
) -> Race<T> {
    let mut future = pin!(future);
    let mut timer = pin!(sleep_until(timeout));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Race::Done(output));
        }
        if stop.poll(cx).is_ready() {
            return Poll::Ready(Race::Stopped);
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Race::TimedOut);
        }
        Poll::Pending
    })
    .await
}

/// Publishes `Stopped` when `run` returns or its future is dropped.
struct PublishStopped<'a>(&'a watch::Sender<LeaderState>);

impl Drop for PublishStopped<'_> {
    fn drop(&mut self) {
        self.0.send_replace(LeaderState::Stopped);
    }
}

/// Shuts a [`Singleton`] down: see [`Singleton`] for what happens.
///
/// # Clone
///
/// Clones shut down the same singleton.
#[derive(Clone)]
pub struct ShutdownHandle {
    sender: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// Requests shutdown. Idempotent.
    pub fn shutdown(&self) {
        self.sender.send_replace(true);
    }

    /// Whether shutdown has been requested.
    pub fn is_shutdown(&self) -> bool {
        *self.sender.borrow()
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

/// Configures a [`Singleton`]; every setting has a documented default.
pub struct SingletonBuilder<S> {
    store: S,
    name: Arc<str>,
    holder: Arc<str>,
    ttl: Duration,
    margin: Option<Duration>,
    retry_period: Option<Duration>,
    takeover_delay: Duration,
    seed: Option<u64>,
}

impl<S> SingletonBuilder<S> {
    /// The lease duration (default [`DEFAULT_TTL`], 15 s). The holder renews every ttl/3
    /// and a crashed holder is replaced after about one ttl.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long before the store could expire the lease the holder stops believing it
    /// holds it (default [`default_safety_margin`]: ttl/100 + 2 ms). Raise it when the
    /// holder's clock may run more than 1% slower than the store's, or to give the job's
    /// cancellation more room. Must be less than half the ttl.
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// How often a contender tries to acquire, and how soon a failed renewal is retried
    /// (default [`DEFAULT_RETRY_PERIOD`], 2 s, or ttl/3 when shorter). Each wait is
    /// jittered uniformly between half a period and a full one. Must be positive and less
    /// than the ttl.
    pub fn retry_period(mut self, period: Duration) -> Self {
        self.retry_period = Some(period);
        self
    }

    /// Chubby's lock-delay: after this replica's lease *expires* (as opposed to being
    /// released), the store lets nobody take it for `delay` (default zero; see
    /// [`LeaseTerms`]).
    pub fn takeover_delay(mut self, delay: Duration) -> Self {
        self.takeover_delay = delay;
        self
    }

    /// Seeds the campaign jitter, for reproducible tests (default: seeded per process).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the singleton.
    ///
    /// # Errors
    ///
    /// [`InvalidLeaseConfig`] for an empty name or holder, a ttl of zero or over a year, a
    /// safety margin of half the ttl or more, a retry period of zero or at least the ttl,
    /// or a takeover delay over a year.
    pub fn build(self) -> Result<Singleton<S>, InvalidLeaseConfig> {
        let invalid = |reason| Err(InvalidLeaseConfig { reason });
        if self.name.is_empty() {
            return invalid("the lease name must not be empty");
        }
        if self.holder.is_empty() {
            return invalid("the holder id must not be empty");
        }
        if self.ttl.is_zero() || self.ttl > MAX_DURATION {
            return invalid("ttl must be greater than zero and at most one year");
        }
        let margin = self.margin.unwrap_or(default_safety_margin(self.ttl));
        if margin >= self.ttl / 2 {
            return invalid("the safety margin must be less than half the ttl");
        }
        let retry_period = self
            .retry_period
            .unwrap_or(DEFAULT_RETRY_PERIOD.min(renew_every(self.ttl)));
        if retry_period.is_zero() || retry_period >= self.ttl {
            return invalid("the retry period must be greater than zero and less than the ttl");
        }
        if self.takeover_delay > MAX_DURATION {
            return invalid("the takeover delay must be at most one year");
        }
        Ok(Singleton {
            store: self.store,
            name: self.name,
            holder: self.holder,
            config: Config {
                ttl: self.ttl,
                margin: self.margin,
                retry_period,
                takeover_delay: self.takeover_delay,
            },
            state: watch::Sender::new(LeaderState::Following { leader: None }),
            shutdown: Arc::new(watch::Sender::new(false)),
            rng: self
                .seed
                .map_or_else(SplitMix64::from_entropy, SplitMix64::new),
        })
    }
}

impl<S> fmt::Debug for SingletonBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingletonBuilder")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .field("safety_margin", &self.margin)
            .field("retry_period", &self.retry_period)
            .field("takeover_delay", &self.takeover_delay)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryLeaseStore;

    fn builder() -> SingletonBuilder<MemoryLeaseStore> {
        Singleton::builder(MemoryLeaseStore::new(), "n", "h")
    }

    #[test]
    fn defaults_follow_client_go_etcd_and_redlock() {
        let singleton = builder().build().unwrap();
        assert_eq!(singleton.config.ttl, Duration::from_secs(15));
        assert_eq!(renew_every(singleton.config.ttl), Duration::from_secs(5));
        assert_eq!(singleton.config.retry_period, Duration::from_secs(2));
        assert_eq!(
            singleton.config.margin(singleton.config.ttl),
            Duration::from_millis(152)
        );
        assert_eq!(singleton.config.takeover_delay, Duration::ZERO);
        // A short ttl shortens the default retry period to ttl/3.
        let short = builder().ttl(Duration::from_secs(3)).build().unwrap();
        assert_eq!(short.config.retry_period, Duration::from_secs(1));
    }

    #[test]
    fn bad_settings_are_rejected_at_build() {
        let cases: [(SingletonBuilder<MemoryLeaseStore>, &str); 8] = [
            (Singleton::builder(MemoryLeaseStore::new(), "", "h"), "name"),
            (
                Singleton::builder(MemoryLeaseStore::new(), "n", ""),
                "holder",
            ),
            (builder().ttl(Duration::ZERO), "ttl"),
            (builder().ttl(MAX_DURATION * 2), "ttl"),
            (
                builder().safety_margin(Duration::from_millis(7_500)),
                "margin",
            ),
            (builder().retry_period(Duration::ZERO), "retry period"),
            (
                builder().retry_period(Duration::from_secs(15)),
                "retry period",
            ),
            (builder().takeover_delay(MAX_DURATION * 2), "takeover delay"),
        ];
        for (builder, expected) in cases {
            let err = builder.build().unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        // A 4 ms ttl cannot fit the default margin (2.04 ms) under half of it.
        assert!(builder().ttl(Duration::from_millis(4)).build().is_err());
        assert!(builder().ttl(Duration::from_millis(5)).build().is_ok());
    }

    #[test]
    fn default_margin_is_one_percent_plus_two_ms() {
        assert_eq!(
            default_safety_margin(Duration::ZERO),
            Duration::from_millis(2)
        );
        assert_eq!(
            default_safety_margin(Duration::from_secs(60)),
            Duration::from_millis(602)
        );
        assert_eq!(
            default_safety_margin(Duration::MAX),
            (Duration::MAX / 100).saturating_add(Duration::from_millis(2))
        );
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_period() {
        let singleton = builder().jitter_seed(7).build().unwrap();
        let base = Duration::from_secs(2);
        for _ in 0..10_000 {
            let wait = singleton.jittered(base);
            assert!(wait >= base / 2 && wait < base, "{wait:?}");
        }
    }
}
