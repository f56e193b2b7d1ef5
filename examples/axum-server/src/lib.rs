//! An axum server with steadfast's whole server stack in front of a backend of fixed
//! capacity; the binary (`src/main.rs`) serves it, `tests/e2e.rs` loads it over HTTP.
//!
//! The stack, outermost first (the README explains the order):
//!
//! 1. [`OverloadResponseLayer`]: overload and deadline errors become `503` with
//!    `Retry-After` and `504`, so the stack is infallible, as `Router::layer` needs;
//! 2. [`HlcLayer::server`]: merges the caller's `hlc-timestamp`, stamps the response;
//! 3. [`ShedLayer`]: a short controlled-delay queue, priorities from
//!    `x-request-criticality`, deadlines from `x-request-timeout` / `grpc-timeout`;
//! 4. [`AdaptiveConcurrencyLayer`] (backpressure): learns how many requests may run;
//! 5. [`IdempotencyLayer`]: keyed `POST`s run once, bodies capped (`413`);
//! 6. the handlers, on a backend of `workers` workers, each request holding one for
//!    `service_time`: its capacity is `workers / service_time` requests a second.
//!
//! Routes: `GET /work` (one unit of backend work), `POST /orders` (idempotent, keyed,
//! counts its executions), and `GET /stats` (outside the stack, never shed).
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::body::Body;
//! use example_axum_server::{Config, app};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config = Config {
//!     service_time: Duration::from_millis(1),
//!     ..Config::default()
//! };
//! let router = app(&config)?;
//! let order = Request::post("/orders")
//!     .header("idempotency-key", "order-1")
//!     .body(Body::from("2 widgets"))?;
//! let response = router.clone().oneshot(order).await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert!(response.headers().contains_key("hlc-timestamp"));
//!
//! // A caller whose deadline has passed is answered 504 before any work.
//! let late = Request::get("/work").header("x-request-timeout", "0").body(Body::empty())?;
//! assert_eq!(router.oneshot(late).await?.status(), StatusCode::GATEWAY_TIMEOUT);
//! # Ok(())
//! # }
//! ```

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use steadfast::idempotency::{IdempotencyStats, IdempotencyStore, InvalidIdempotencyConfig};
use steadfast::limit::InvalidLimitConfig;
use steadfast::prelude::*;
use steadfast::shed::error::InvalidShedConfig;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;

/// Backend workers by default: with [`DEFAULT_SERVICE_TIME`], 200 requests a second.
pub const DEFAULT_WORKERS: usize = 4;
/// How long a request holds a worker by default.
pub const DEFAULT_SERVICE_TIME: Duration = Duration::from_millis(20);
/// The largest keyed request body by default (64 KiB); larger ones get `413`.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// The address the binary listens on by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// The `Retry-After` the shedder advertises on `503`.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The server's settings.
///
/// | setting | default |
/// |---|---|
/// | `workers` | [`DEFAULT_WORKERS`] (4) |
/// | `service_time` | [`DEFAULT_SERVICE_TIME`] (20 ms) |
/// | `unprotected` | `false` |
/// | `max_body` | [`DEFAULT_MAX_BODY`] (64 KiB) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Backend workers: requests served at once. At least 1.
    pub workers: usize,
    /// How long each request holds a worker.
    pub service_time: Duration,
    /// Leaves out the overload protection (overload responses, shedder, adaptive limit):
    /// requests then queue for a worker without bound. HLC and idempotency stay.
    pub unprotected: bool,
    /// The largest body of a keyed request, in bytes; larger ones get `413`. At least 1.
    pub max_body: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            workers: DEFAULT_WORKERS,
            service_time: DEFAULT_SERVICE_TIME,
            unprotected: false,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl Config {
    /// The backend's capacity in requests a second: `workers / service_time` (infinite
    /// for a zero service time).
    pub fn capacity_rps(&self) -> f64 {
        self.workers as f64 / self.service_time.as_secs_f64()
    }

    /// The stack, outermost first, as the binary prints it.
    pub fn describe(&self) -> String {
        let backend = format!(
            "backend: {} workers x {} ms = {:.0} requests/s",
            self.workers,
            self.service_time.as_millis(),
            self.capacity_rps()
        );
        let idempotency = format!(
            "IdempotencyLayer (POST /orders needs Idempotency-Key; bodies over {} bytes: 413)",
            self.max_body
        );
        let layers: Vec<String> = if self.unprotected {
            vec![
                "HlcLayer::server (hlc-timestamp)".into(),
                idempotency,
                "no overload protection: requests queue for a worker without bound".into(),
                backend,
            ]
        } else {
            vec![
                "OverloadResponseLayer::http (Overloaded: 503 + Retry-After, DeadlineExceeded: 504)"
                    .into(),
                "HlcLayer::server (hlc-timestamp)".into(),
                "ShedLayer (CoDel queue; x-request-criticality; x-request-timeout, grpc-timeout)"
                    .into(),
                "AdaptiveConcurrencyLayer (Gradient2, backpressure)".into(),
                idempotency,
                backend,
            ]
        };
        layers
            .iter()
            .enumerate()
            .map(|(i, layer)| format!("{}{layer}", "  ".repeat(i + 1)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Why the app could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppError {
    /// `workers` is 0: the backend could serve nothing.
    NoWorkers,
    /// `max_body` is 0.
    NoBody,
    /// The shedder's configuration was refused.
    Shed(InvalidShedConfig),
    /// The adaptive limit's configuration was refused.
    Limit(InvalidLimitConfig),
    /// The idempotency layer's configuration was refused.
    Idempotency(InvalidIdempotencyConfig),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoWorkers => f.write_str("the backend needs at least one worker"),
            Self::NoBody => f.write_str("the body cap must be at least one byte"),
            Self::Shed(err) => write!(f, "load shedder: {err}"),
            Self::Limit(err) => write!(f, "adaptive limit: {err}"),
            Self::Idempotency(err) => write!(f, "idempotency layer: {err}"),
        }
    }
}

impl Error for AppError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::NoWorkers | Self::NoBody => None,
            Self::Shed(err) => Some(err),
            Self::Limit(err) => Some(err),
            Self::Idempotency(err) => Some(err),
        }
    }
}

/// The backend: a fixed pool of workers, and what it has done.
#[derive(Debug)]
struct Backend {
    workers: Semaphore,
    service_time: Duration,
    /// `GET /work` requests served.
    work_served: AtomicU64,
    /// `POST /orders` handler executions.
    executions: AtomicU64,
}

impl Backend {
    /// Holds a worker for the service time. The wait for a worker is unbounded and FIFO,
    /// as in a server without overload protection.
    async fn serve(&self) -> Result<(), StatusCode> {
        let _worker = self
            .workers
            .acquire()
            .await
            .map_err(|_closed| StatusCode::SERVICE_UNAVAILABLE)?;
        tokio::time::sleep(self.service_time).await;
        Ok(())
    }
}

/// What `GET /stats` reports.
#[derive(Clone)]
struct AppState {
    backend: Arc<Backend>,
    shed: Option<ShedLayer<FromHeader, HttpDeadline>>,
    limit: Option<AdaptiveConcurrencyLayer>,
    idempotency: Arc<IdempotencyStats>,
}

/// The app with the in-memory idempotency store.
///
/// # Errors
///
/// [`AppError`] when `config` is invalid.
pub fn app(config: &Config) -> Result<Router, AppError> {
    app_with_store(config, MemoryStore::new())
}

/// The app with `store` for idempotency records (Redis, PostgreSQL, or your own).
///
/// # Errors
///
/// [`AppError`] when `config` is invalid.
pub fn app_with_store<St>(config: &Config, store: St) -> Result<Router, AppError>
where
    St: IdempotencyStore + Clone + Send + Sync + 'static,
{
    if config.workers == 0 {
        return Err(AppError::NoWorkers);
    }
    if config.max_body == 0 {
        return Err(AppError::NoBody);
    }
    let backend = Arc::new(Backend {
        workers: Semaphore::new(config.workers),
        service_time: config.service_time,
        work_served: AtomicU64::new(0),
        executions: AtomicU64::new(0),
    });
    let idempotency = IdempotencyLayer::builder(store)
        .require_key(true)
        .max_request_body(config.max_body)
        .build()
        .map_err(AppError::Idempotency)?;
    let hlc = Arc::new(Hlc::new());
    let routes = Router::new()
        .route("/work", get(work))
        .route("/orders", post(create_order));

    let mut state = AppState {
        backend,
        shed: None,
        limit: None,
        idempotency: idempotency.stats(),
    };
    let routes = if config.unprotected {
        routes.layer(
            ServiceBuilder::new()
                .hlc_server(hlc)
                .idempotency(idempotency),
        )
    } else {
        let shed = ShedLayer::builder()
            .priority(FromHeader::new())
            .deadline(HttpDeadline)
            .retry_after(RETRY_AFTER)
            .build()
            .map_err(AppError::Shed)?;
        let limit = AdaptiveConcurrencyLayer::builder()
            .name("backend")
            .build()
            .map_err(AppError::Limit)?;
        state.shed = Some(shed.clone());
        state.limit = Some(limit.clone());
        routes.layer(
            ServiceBuilder::new()
                .overload_response(OverloadResponseLayer::http())
                .hlc_server(hlc)
                .shed(shed)
                .adaptive_concurrency(limit)
                .idempotency(idempotency),
        )
    };
    Ok(routes.route("/stats", get(stats)).with_state(state))
}

/// `GET /work`: one unit of backend work.
async fn work(State(state): State<AppState>) -> Result<&'static str, StatusCode> {
    state.backend.serve().await?;
    state.backend.work_served.fetch_add(1, Ordering::Relaxed);
    Ok("done\n")
}

/// `POST /orders`: creates an order (one unit of backend work) and counts the execution.
async fn create_order(
    State(state): State<AppState>,
    body: String,
) -> Result<(StatusCode, String), StatusCode> {
    let n = state.backend.executions.fetch_add(1, Ordering::SeqCst) + 1;
    state.backend.serve().await?;
    Ok((StatusCode::CREATED, format!("order {n}: {body}\n")))
}

/// `GET /stats`: the backend's counters, and the shedder's, the limit's and the
/// idempotency layer's.
async fn stats(State(state): State<AppState>) -> Response {
    let backend = &state.backend;
    let shed = state.shed.as_ref().map(|shed| {
        let s = shed.stats();
        serde_json::json!({
            "forwarded": s.forwarded, "queued": s.queued, "served": s.served,
            "refused": s.refused, "sloughed": s.sloughed, "timed_out": s.timed_out,
            "evicted": s.evicted, "deadline_exceeded": s.deadline_exceeded,
            "waiting": s.waiting, "overloaded": s.overloaded,
        })
    });
    let limit = state.limit.as_ref().map(|limit| {
        let s = limit.stats();
        serde_json::json!({
            "limit": s.limit, "in_flight": s.in_flight, "successes": s.successes,
            "drops": s.drops, "ignored": s.ignored, "rejections": s.rejections,
            "updates": s.updates,
        })
    });
    let i = &state.idempotency;
    let body = serde_json::json!({
        "executions": backend.executions.load(Ordering::SeqCst),
        "work_served": backend.work_served.load(Ordering::Relaxed),
        "shed": shed,
        "limit": limit,
        "idempotency": {
            "keyed": i.keyed(), "executions": i.executions(), "replays": i.replays(),
            "conflicts": i.conflicts(), "mismatches": i.mismatches(),
            "body_too_large": i.body_too_large(), "missing_key": i.missing_key(),
        },
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Where idempotency records are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreChoice {
    /// In this process ([`MemoryStore`]), the default.
    Memory,
    /// In Redis at this URL (feature `redis`).
    Redis(String),
    /// In PostgreSQL at this URL or `key=value` string (feature `postgres`).
    Postgres(String),
}

/// The binary's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--addr`: where to listen (default [`DEFAULT_ADDR`]).
    pub addr: SocketAddr,
    /// `--workers`, `--service-ms`, `--unprotected`, `--max-body`.
    pub config: Config,
    /// `--redis URL` or `--postgres URL`; in memory by default.
    pub store: StoreChoice,
}

/// A command line the binary cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgsError {
    /// A flag this binary does not know.
    UnknownFlag(String),
    /// A flag that takes a value came last.
    MissingValue(&'static str),
    /// A flag's value does not parse.
    InvalidValue {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
    },
    /// `--redis` or `--postgres` in a binary built without that feature.
    NotBuilt(&'static str),
    /// Both `--redis` and `--postgres`.
    TwoStores,
    /// `--help`: not an error, the caller prints [`USAGE`].
    Help,
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFlag(flag) => write!(f, "unknown flag {flag:?}"),
            Self::MissingValue(flag) => write!(f, "{flag} needs a value"),
            Self::InvalidValue { flag, value } => write!(f, "invalid value {value:?} for {flag}"),
            Self::NotBuilt(feature) => write!(
                f,
                "--{feature} needs the `{feature}` feature: cargo run -p example-axum-server --features {feature} -- ..."
            ),
            Self::TwoStores => f.write_str("--redis and --postgres exclude each other"),
            Self::Help => f.write_str(USAGE),
        }
    }
}

impl Error for ArgsError {}

/// The binary's usage text.
pub const USAGE: &str = "usage: example-axum-server [--addr ADDR] [--workers N] [--service-ms MS] \
[--max-body BYTES] [--unprotected] [--redis URL | --postgres URL]";

impl Options {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    ///
    /// [`ArgsError`] for an unknown flag, a missing or invalid value, a store whose feature
    /// is not built, or `--help`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ArgsError> {
        let mut options = Self {
            addr: DEFAULT_ADDR.parse().map_err(|_| ArgsError::InvalidValue {
                flag: "--addr",
                value: DEFAULT_ADDR.into(),
            })?,
            config: Config::default(),
            store: StoreChoice::Memory,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--addr" => options.addr = value(&mut args, "--addr")?,
                "--workers" => options.config.workers = value(&mut args, "--workers")?,
                "--service-ms" => {
                    let ms: u64 = value(&mut args, "--service-ms")?;
                    options.config.service_time = Duration::from_millis(ms);
                }
                "--max-body" => options.config.max_body = value(&mut args, "--max-body")?,
                "--unprotected" => options.config.unprotected = true,
                "--redis" => {
                    let url: String = value(&mut args, "--redis")?;
                    if !cfg!(feature = "redis") {
                        return Err(ArgsError::NotBuilt("redis"));
                    }
                    options.set_store(StoreChoice::Redis(url))?;
                }
                "--postgres" => {
                    let url: String = value(&mut args, "--postgres")?;
                    if !cfg!(feature = "postgres") {
                        return Err(ArgsError::NotBuilt("postgres"));
                    }
                    options.set_store(StoreChoice::Postgres(url))?;
                }
                "--help" | "-h" => return Err(ArgsError::Help),
                _ => return Err(ArgsError::UnknownFlag(flag)),
            }
        }
        Ok(options)
    }

    fn set_store(&mut self, store: StoreChoice) -> Result<(), ArgsError> {
        if self.store != StoreChoice::Memory {
            return Err(ArgsError::TwoStores);
        }
        self.store = store;
        Ok(())
    }
}

fn value<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = String>,
    flag: &'static str,
) -> Result<T, ArgsError> {
    let value = args.next().ok_or(ArgsError::MissingValue(flag))?;
    value
        .parse()
        .map_err(|_| ArgsError::InvalidValue { flag, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, ArgsError> {
        Options::parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags_set_the_config() {
        let options = parse(&[
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "8",
            "--service-ms",
            "5",
            "--unprotected",
        ])
        .unwrap();
        assert_eq!(options.addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(options.config.workers, 8);
        assert_eq!(options.config.service_time, Duration::from_millis(5));
        assert!(options.config.unprotected);
        assert_eq!(options.store, StoreChoice::Memory);
        assert_eq!(parse(&[]).unwrap().config, Config::default());
    }

    #[test]
    fn bad_flags_are_typed_errors() {
        assert_eq!(
            parse(&["--workers", "many"]),
            Err(ArgsError::InvalidValue {
                flag: "--workers",
                value: "many".into()
            })
        );
        assert_eq!(parse(&["--addr"]), Err(ArgsError::MissingValue("--addr")));
        assert_eq!(
            parse(&["--fast"]),
            Err(ArgsError::UnknownFlag("--fast".into()))
        );
        if !cfg!(feature = "redis") {
            assert_eq!(
                parse(&["--redis", "redis://127.0.0.1/"]),
                Err(ArgsError::NotBuilt("redis"))
            );
        }
    }

    #[test]
    fn an_invalid_config_is_refused() {
        let config = Config {
            workers: 0,
            ..Config::default()
        };
        assert!(matches!(app(&config), Err(AppError::NoWorkers)));
        let config = Config {
            max_body: 0,
            ..Config::default()
        };
        assert!(matches!(app(&config), Err(AppError::NoBody)));
    }

    #[test]
    fn capacity_is_workers_over_service_time() {
        assert_eq!(Config::default().capacity_rps().round(), 200.0);
    }
}
