//! A leader-elected periodic job. Three replicas run a [`Singleton`] on the same store and
//! lease name. Each replica is a thread with its own current-thread tokio runtime and its
//! own store connection, as a separate process would have. Only the leader runs the job,
//! which ticks every 200 ms and appends to a shared report through a [`FenceGate`],
//! carrying its fencing token. The ttl is 1 s, so the leader renews every 333 ms and
//! followers try to acquire every 167–333 ms.
//!
//! The run then stops leaders in the three ways a leader stops:
//!
//! 1. **Graceful shutdown** (at 2 s): the job finishes the tick in hand, the runner releases
//!    the lease, and a follower takes over within one retry period.
//! 2. **A stall** (a GC pause, a `SIGSTOP`; here the replica's thread sleeps): the new
//!    leader freezes for 1.8 s between checking its lease and writing. It cannot renew, so
//!    the store expires its lease and another replica takes over with a higher token and
//!    writes. When the stalled replica wakes, its write carries the old token and the
//!    `FenceGate` refuses it; its runner then sees that its own deadline has passed,
//!    cancels the job and campaigns again as a follower.
//! 3. **A crash** (the replica's `run` future is dropped, and its runtime and connection
//!    with it: no release, no more renewals): the remaining replica takes over once the
//!    lease has expired, about a ttl later.
//!
//! Run it with `cargo run -p example-leader-job` (in-memory store), or against real servers
//! with `-- --redis redis://127.0.0.1:6379` or
//! `-- --postgres postgres://postgres@127.0.0.1:5432/test` (it creates the
//! `steadfast_leases` table if needed). It connects only to servers on the loopback
//! interface and stops by itself after about 7 s. The real backends keep their token
//! counters across runs (tokens never reset), so their tokens grow from run to run.

use std::error::Error;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use steadfast_lease::{
    FenceGate, FencingToken, LeaderState, Lease, LeaseError, LeaseGuard, LeaseHolder, LeaseStore,
    LeaseTerms, MemoryLeaseStore, PostgresLeaseStore, RedisLeaseStore, ShutdownHandle, Singleton,
    StoreError,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

type BoxError = Box<dyn Error + Send + Sync>;

/// The lease the replicas contend for.
const LEASE: &str = "example-leader-job";
/// The resource the job writes to, as the `FenceGate` knows it.
const RESOURCE: &str = "report";
const REPLICAS: usize = 3;
/// The lease duration: renewals every ttl/3, a retry period of ttl/3 (the default when the
/// ttl is short), a safety margin of ttl/100 + 2 ms.
const TTL: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(200);
/// When the first leader is shut down, counted from the start.
const FIRST_STOP: Duration = Duration::from_secs(2);
/// How long the second leader stalls: longer than the ttl plus a retry period, so its
/// lease has expired and another replica has written when it wakes.
const STALL: Duration = Duration::from_millis(1_800);
/// How long each new leader runs before the next event.
const BETWEEN: Duration = Duration::from_millis(400);
/// The longest the demo waits for any handoff before giving up.
const PATIENCE: Duration = Duration::from_secs(3);

const USAGE: &str = "\
usage: example-leader-job [--redis URL | --postgres URL]

  (no flag)       the in-memory store (MemoryLeaseStore)
  --redis URL     RedisLeaseStore, e.g. redis://127.0.0.1:6379
  --postgres URL  PostgresLeaseStore, e.g. postgres://postgres@127.0.0.1:5432/test

Only servers on the loopback interface (127.0.0.0/8, ::1, localhost) are accepted.
";

// === Choosing the backend ===

/// Where the leases live, and how each replica connects.
#[derive(Clone)]
enum Backend {
    /// One in-memory store shared by the replicas' threads.
    Memory(MemoryLeaseStore),
    Redis(String),
    Postgres(String),
}

impl Backend {
    fn describe(&self) -> String {
        match self {
            Self::Memory(_) => "memory store".to_owned(),
            Self::Redis(url) => format!("Redis at {url}"),
            Self::Postgres(url) => format!("PostgreSQL at {url}"),
        }
    }

    /// A store with its own connection (made on the calling replica's runtime).
    async fn connect(&self) -> Result<Store, StoreError> {
        Ok(match self {
            Self::Memory(store) => Store::Memory(store.clone()),
            Self::Redis(url) => Store::Redis(RedisLeaseStore::connect(url).await?),
            Self::Postgres(url) => {
                let store = PostgresLeaseStore::connect(url).await?;
                // Safe from every replica at once: it serializes on an advisory lock.
                store.ensure_schema().await?;
                Store::Postgres(store)
            }
        })
    }
}

/// Any of the three stores, as one type. `LeaseStore` returns `impl Future`, so it is not
/// dyn-compatible; an enum that delegates is how to pick a backend at run time.
#[derive(Clone)]
enum Store {
    Memory(MemoryLeaseStore),
    Redis(RedisLeaseStore),
    Postgres(PostgresLeaseStore),
}

impl LeaseStore for Store {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<Option<Lease>, StoreError> {
        match self {
            Self::Memory(store) => store.try_acquire(name, holder, terms).await,
            Self::Redis(store) => store.try_acquire(name, holder, terms).await,
            Self::Postgres(store) => store.try_acquire(name, holder, terms).await,
        }
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        match self {
            Self::Memory(store) => store.renew(lease).await,
            Self::Redis(store) => store.renew(lease).await,
            Self::Postgres(store) => store.renew(lease).await,
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        match self {
            Self::Memory(store) => store.release(lease).await,
            Self::Redis(store) => store.release(lease).await,
            Self::Postgres(store) => store.release(lease).await,
        }
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        match self {
            Self::Memory(store) => store.current(name).await,
            Self::Redis(store) => store.current(name).await,
            Self::Postgres(store) => store.current(name).await,
        }
    }
}

/// Parses the command line; `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Backend>, String> {
    let mut backend = None;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let redis = match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--redis" => true,
            "--postgres" => false,
            "--etcd" => return Err("the etcd backend is not implemented yet".to_owned()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        if backend.is_some() {
            return Err("give at most one of --redis and --postgres".to_owned());
        }
        let url = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a URL"))?;
        check_loopback(&url)?;
        backend = Some(if redis {
            Backend::Redis(url)
        } else {
            Backend::Postgres(url)
        });
    }
    Ok(Some(backend.unwrap_or_else(|| {
        Backend::Memory(MemoryLeaseStore::new())
    })))
}

/// Accepts only `scheme://[user[:password]@]host[:port][/…]` URLs whose host is a loopback
/// address: the demo writes keys and a table, and has no business on a shared server.
fn check_loopback(url: &str) -> Result<(), String> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{url:?} is not a URL (scheme://host…)"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{url:?}: this demo connects only to loopback servers, not {host:?}"
        ))
    }
}

// === The replicas and their job ===

/// Prints lines stamped with the time since the start.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
}

impl Clock {
    fn log(&self, line: impl Display) {
        let at = self.start.elapsed().as_secs_f64();
        println!("[{at:5.2}s] {line}");
    }
}

/// One write of the job: the protected resource is a list of these.
struct Entry {
    token: FencingToken,
    replica: usize,
}

/// What the replicas' jobs tell the demo.
enum Event {
    Leads {
        replica: usize,
        token: FencingToken,
        at: Instant,
    },
    Stalled {
        replica: usize,
        at: Instant,
    },
    Refused {
        replica: usize,
    },
}

/// What every replica shares: the resource (the gate and the report behind it), and the
/// line back to the demo.
struct Shared {
    clock: Clock,
    gate: FenceGate,
    report: Mutex<Vec<Entry>>,
    events: mpsc::UnboundedSender<Event>,
}

/// One replica, as its own thread sees it.
struct Me {
    index: usize,
    name: String,
    /// Set by the demo: stall in the middle of the next tick.
    stall: AtomicBool,
    /// Notified by the demo: crash (drop the `run` future).
    crash: Notify,
}

/// What a replica hands the demo once it has connected.
struct Control {
    shutdown: ShutdownHandle,
    state: watch::Receiver<LeaderState>,
}

/// How a replica's run ended.
enum Outcome {
    /// Its job returned (after a shutdown), with its tick count; the lease was released.
    Finished(u64),
    /// Shut down while following.
    Stopped,
    /// Crashed: the `run` future was dropped.
    Crashed,
}

/// One replica, as the demo drives it.
struct Replica {
    me: Arc<Me>,
    control: Control,
    done: Option<oneshot::Receiver<Outcome>>,
    thread: thread::JoinHandle<()>,
}

/// The job of one term: a tick every 200 ms, each a write through the `FenceGate` with
/// this term's token, until shutdown. Returns the number of ticks.
async fn job(me: Arc<Me>, shared: Arc<Shared>, guard: LeaseGuard) -> u64 {
    let token = guard.token();
    let name = &me.name;
    let _ = shared.events.send(Event::Leads {
        replica: me.index,
        token,
        at: Instant::now(),
    });
    let mut ticks = 0;
    loop {
        ticks += 1;
        // Check the lease right before the side effect. This narrows the window for a
        // stale write, but cannot close it: the process can stall right after the check.
        if !guard.is_valid() {
            // The runner cancels this job at its deadline.
            std::future::pending::<()>().await;
        }
        if me.stall.swap(false, Ordering::Relaxed) {
            shared.clock.log(format_args!(
                "{name} checked its lease (valid, token {token}) and stalls for {STALL:?} \
                 before writing tick {ticks} (think GC pause, SIGSTOP)"
            ));
            let _ = shared.events.send(Event::Stalled {
                replica: me.index,
                at: Instant::now(),
            });
            // Freezes this replica's whole runtime: its runner cannot renew meanwhile.
            thread::sleep(STALL);
        }
        let written = shared.gate.write(RESOURCE, guard.holder(), token, || {
            let mut report = shared.report.lock().unwrap_or_else(PoisonError::into_inner);
            report.push(Entry {
                token,
                replica: me.index,
            });
        });
        match written {
            Ok(()) => shared.clock.log(format_args!(
                "{name} leads with token {token}, tick {ticks} accepted"
            )),
            Err(fenced) => {
                shared.clock.log(format_args!(
                    "{name} wakes up and writes tick {ticks} with token {token}: REFUSED by \
                     the FenceGate, which has accepted token {} from {} (its guard now says \
                     valid = {})",
                    fenced.latest(),
                    short(fenced.latest_holder()),
                    guard.is_valid(),
                ));
                let _ = shared.events.send(Event::Refused { replica: me.index });
                // The lease is gone; the runner cancels this job at its deadline.
                std::future::pending::<()>().await;
            }
        }
        tokio::select! {
            () = guard.shutdown_requested() => {
                if guard.is_shutting_down() {
                    shared.clock.log(format_args!(
                        "{name} was asked to shut down; its job returns after {ticks} ticks"
                    ));
                    return ticks;
                }
                // The term is over, not a shutdown: the runner cancels this job.
                std::future::pending::<()>().await;
            }
            () = sleep(TICK) => {}
        }
    }
}

/// The display name of a holder id (`replica-2@<pid>` → `replica-2`).
fn short(holder: &str) -> &str {
    holder.split('@').next().unwrap_or(holder)
}

/// A replica's life on its own runtime: connect, hand the demo its controls, run the
/// singleton until it returns or the demo crashes it.
async fn replica(
    me: Arc<Me>,
    backend: Backend,
    shared: Arc<Shared>,
    ready: oneshot::Sender<Result<Control, String>>,
    done: oneshot::Sender<Outcome>,
) {
    let store = match backend.connect().await {
        Ok(store) => store,
        Err(err) => {
            let _ = ready.send(Err(format!("{}: {err}", me.name)));
            return;
        }
    };
    // Unique per replica and per process incarnation, as the store requires.
    let holder = format!("{}@{}", me.name, std::process::id());
    let singleton = match Singleton::builder(store, LEASE, holder).ttl(TTL).build() {
        Ok(singleton) => singleton,
        Err(err) => {
            let _ = ready.send(Err(format!("{}: {err}", me.name)));
            return;
        }
    };
    let control = Control {
        shutdown: singleton.shutdown_handle(),
        state: singleton.state(),
    };
    if ready.send(Ok(control)).is_err() {
        return;
    }
    let job_me = me.clone();
    let run = singleton.run(move |guard| job(job_me.clone(), shared.clone(), guard));
    let outcome = tokio::select! {
        result = run => result.map_or(Outcome::Stopped, Outcome::Finished),
        // Dropping `run` drops the job and the lease with no release, like a crash.
        () = me.crash.notified() => Outcome::Crashed,
    };
    let _ = done.send(outcome);
}

/// Starts replica `index` on its own thread and runtime, and waits until it has connected.
async fn start_replica(
    index: usize,
    backend: &Backend,
    shared: &Arc<Shared>,
) -> Result<Replica, BoxError> {
    let me = Arc::new(Me {
        index,
        name: format!("replica-{}", index + 1),
        stall: AtomicBool::new(false),
        crash: Notify::new(),
    });
    let (ready_tx, ready) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let (thread_me, backend, shared) = (me.clone(), backend.clone(), shared.clone());
    let thread = thread::Builder::new()
        .name(me.name.clone())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    runtime.block_on(replica(thread_me, backend, shared, ready_tx, done_tx));
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(format!("tokio runtime: {err}")));
                }
            }
        })?;
    let control = ready.await.map_err(|_| "a replica thread died")??;
    Ok(Replica {
        me,
        control,
        done: Some(done),
        thread,
    })
}

// === The demo ===

/// Waits up to `within` for the first event `pick` accepts, discarding the others.
async fn next_event<T>(
    events: &mut mpsc::UnboundedReceiver<Event>,
    within: Duration,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Result<T, BoxError> {
    let deadline = Instant::now() + within;
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if let Some(picked) = pick(&event) {
                    return Ok(picked);
                }
            }
            Ok(None) => return Err(format!("every replica stopped before the {what}").into()),
            Err(_) => return Err(format!("no {what} within {within:?}").into()),
        }
    }
}

/// Waits for a replica not in `excluded` to start leading: (replica, token, when).
async fn next_leader(
    events: &mut mpsc::UnboundedReceiver<Event>,
    excluded: &[usize],
    within: Duration,
) -> Result<(usize, FencingToken, Instant), BoxError> {
    next_event(events, within, "new leader", |event| match *event {
        Event::Leads { replica, token, at } if !excluded.contains(&replica) => {
            Some((replica, token, at))
        }
        _ => None,
    })
    .await
}

fn ms(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

async fn demo(backend: Backend) -> Result<(), BoxError> {
    let clock = Clock {
        start: Instant::now(),
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        clock,
        gate: FenceGate::new(),
        report: Mutex::new(Vec::new()),
        events: events_tx,
    });
    clock.log(format_args!(
        "{}: {REPLICAS} replicas (one thread and runtime each) contend for lease {LEASE:?} \
         as replica-N@{}; ttl {TTL:?}, renewal every {}, retry period {} (each wait \
         jittered to {}–{})",
        backend.describe(),
        std::process::id(),
        ms(TTL / 3),
        ms(TTL / 3),
        ms(TTL / 6),
        ms(TTL / 3),
    ));
    let mut replicas = Vec::with_capacity(REPLICAS);
    for index in 0..REPLICAS {
        replicas.push(start_replica(index, &backend, &shared).await?);
    }
    let names: Vec<String> = replicas.iter().map(|r| r.me.name.clone()).collect();
    let name = |replica: usize| names[replica].as_str();

    // The first leader runs until 2 s.
    let (first, first_token, _) = next_leader(&mut events, &[], PATIENCE).await?;
    sleep_until(clock.start + FIRST_STOP).await;

    // 1. Graceful shutdown: the job finishes, the runner releases the lease.
    clock.log(format_args!(
        "== shutting {} down gracefully: its job finishes the tick in hand, then the runner \
         releases the lease",
        name(first)
    ));
    let stopped_at = Instant::now();
    replicas[first].control.shutdown.shutdown();
    let done = replicas[first].done.take().expect("running");
    if let Ok(Outcome::Finished(ticks)) = done.await {
        clock.log(format_args!(
            "{}'s run returned its job's {ticks} ticks; the lease is released",
            name(first)
        ));
    }
    let (second, second_token, at) = next_leader(&mut events, &[first], PATIENCE).await?;
    clock.log(format_args!(
        "== handoff: {} leads with token {second_token} (was {first_token}), {} after the \
         shutdown: a released lease is free at once, so it waits at most one retry period",
        name(second),
        ms(at - stopped_at)
    ));

    // 2. A stall between the lease check and the write: the fencing token catches it.
    sleep(BETWEEN).await;
    replicas[second].me.stall.store(true, Ordering::Relaxed);
    let stalled_at = next_event(&mut events, PATIENCE, "stall", |event| match *event {
        Event::Stalled { replica, at } if replica == second => Some(at),
        _ => None,
    })
    .await?;
    let (third, third_token, at) =
        next_leader(&mut events, &[first, second], STALL + PATIENCE).await?;
    clock.log(format_args!(
        "== takeover: {} leads with token {third_token} (was {second_token}), {} after {} \
         stalled: unrenewed, its lease expired in the store within the ttl",
        name(third),
        ms(at - stalled_at),
        name(second)
    ));
    let refused = next_event(&mut events, STALL + PATIENCE, "refusal", |event| {
        matches!(*event, Event::Refused { replica } if replica == second).then_some(())
    })
    .await;
    if refused.is_err() {
        clock.log(format_args!(
            "{}'s late write was NOT refused: the new leader had not written yet",
            name(second)
        ));
    }
    let mut state = replicas[second].control.state.clone();
    let following = timeout(
        PATIENCE,
        state.wait_for(|s| matches!(s, LeaderState::Following { leader: Some(_) })),
    )
    .await;
    if let Ok(Ok(state)) = following {
        let leader = state.leader().map_or("", |leader| short(leader.id()));
        clock.log(format_args!(
            "{}'s runner found its own deadline passed: it cancelled the job, campaigned \
             again and follows {leader}",
            name(second)
        ));
    }

    // 3. A crash: no release, so the lease must expire before anyone can take it.
    sleep(BETWEEN).await;
    clock.log(format_args!(
        "== crashing {} (its run future is dropped: no release, no more renewals)",
        name(third)
    ));
    let crashed_at = Instant::now();
    replicas[third].me.crash.notify_one();
    let (fourth, fourth_token, at) = next_leader(&mut events, &[first, third], PATIENCE).await?;
    clock.log(format_args!(
        "== takeover: {} leads with token {fourth_token} (was {third_token}), {} after the \
         crash: the lease expired (at most a ttl after the last renewal), then the next \
         retry took it",
        name(fourth),
        ms(at - crashed_at)
    ));

    sleep(BETWEEN).await;
    clock.log("== shutting the remaining replicas down");
    for replica in &replicas {
        replica.control.shutdown.shutdown();
    }
    for replica in &mut replicas {
        if let Some(done) = replica.done.take() {
            let _ = done.await;
        }
    }
    for replica in replicas {
        replica
            .thread
            .join()
            .map_err(|_| "a replica thread panicked")?;
    }

    // What the resource saw.
    let report = shared.report.lock().unwrap_or_else(PoisonError::into_inner);
    let mut terms: Vec<(FencingToken, usize, usize)> = Vec::new();
    for entry in report.iter() {
        match terms.last_mut() {
            Some((token, replica, count)) if *token == entry.token && *replica == entry.replica => {
                *count += 1;
            }
            _ => terms.push((entry.token, entry.replica, 1)),
        }
    }
    let summary: Vec<String> = terms
        .iter()
        .map(|(token, replica, count)| format!("{count} × token {token} ({})", name(*replica)))
        .collect();
    let increasing = terms.windows(2).all(|pair| pair[0].0 < pair[1].0);
    clock.log(format_args!(
        "report: {} writes accepted: {}; one run of writes per token, tokens increasing: \
         {increasing}",
        report.len(),
        summary.join(", ")
    ));
    if !increasing {
        return Err("the report holds writes out of token order".into());
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let backend = match parse_args(std::env::args().skip(1)) {
        Ok(Some(backend)) => backend,
        Ok(None) => {
            print!("{USAGE}");
            return Ok(());
        }
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    demo(backend).await
}
