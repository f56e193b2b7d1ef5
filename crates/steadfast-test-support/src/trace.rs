//! Tracing output for tests.

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is not set: everything from steadfast crates at `debug`.
const DEFAULT_FILTER: &str = "steadfast=debug";

/// Shows `tracing` output for the current test, until the returned guard is dropped.
///
/// Installs a `tracing_subscriber` fmt subscriber that writes through the test harness
/// (so output is captured, and shown for failing tests or with `--nocapture`). The filter
/// comes from `RUST_LOG` when it is set and valid, else it is `debug` for every target
/// starting with `steadfast`.
///
/// The subscriber is the thread's default, so it sees events from the test's own thread:
/// use a current-thread runtime (the `#[tokio::test]` default).
///
/// ```
/// let _t = steadfast_test_support::trace_init();
/// tracing::debug!(target: "steadfast_example", "shown in the test's output");
/// ```
#[must_use = "output stops when the guard is dropped: bind it with `let _t = ...`"]
pub fn trace_init() -> DefaultGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .finish();
    tracing::subscriber::set_default(subscriber)
}
