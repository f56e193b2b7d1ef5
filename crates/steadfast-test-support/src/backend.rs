//! Real backends for the integration tests: the variables naming the shared servers, the
//! skip-or-fail rule when something is missing, free loopback ports, and a private
//! `redis-server` child for fault tests.
//!
//! A missing backend or program makes a test print `skipped: …` and pass, except under
//! `CI=true`, where it panics: CI starts every backend, so a missing one is a bug.
//!
//! Everything here is std only (`std::process`, the `kill` command), so it compiles into
//! every test binary whatever the features.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether `CI=true`.
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// A unique suffix for namespaces (key prefixes, schemas, temp files): process id and
/// wall time, so concurrent and later runs against the same server never share anything.
pub fn unique(test: &str) -> String {
    use steadfast_core::clock::{SystemClock, WallClock};
    let nanos = SystemClock.since_epoch().as_nanos();
    format!("{}_{:x}_{test}", std::process::id(), nanos % (1 << 40))
}

/// The value of the variable `var` naming a backend server, or `None` (after printing
/// `skipped: … not set`) when it is unset or empty.
///
/// # Panics
///
/// When it is unset and `CI=true`: CI starts every backend, so a missing one is a bug.
pub fn backend_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if ci() => {
            panic!("{var} is not set, but CI=true: CI must test every backend (see .ci/run)")
        }
        _ => {
            eprintln!("skipped: {var} not set");
            None
        }
    }
}

/// Whether `program --version` can be run; `false` (after printing `skipped: …`) when it
/// is not on `PATH`.
///
/// # Panics
///
/// When it is missing and `CI=true`.
pub fn program_available(program: &str) -> bool {
    match Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(err) if ci() => {
            panic!("{program} cannot be run ({err}), but CI=true: CI must test real faults")
        }
        Err(err) => {
            eprintln!("skipped: {program} not on PATH ({err})");
            false
        }
    }
}

/// A free loopback port: bind port 0, read it, release it.
///
/// # Panics
///
/// When no loopback port can be bound.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits (std time, up to `limit`, in 10 ms steps) until `127.0.0.1:port` accepts
/// connections.
///
/// # Panics
///
/// When it does not within `limit`; the message names the server `what`.
pub fn wait_listening(port: u16, limit: Duration, what: &str) {
    let step = Duration::from_millis(10);
    let steps = limit.as_millis() / step.as_millis();
    let listening = (0..steps).any(|_| {
        let up = TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !up {
            std::thread::sleep(step);
        }
        up
    });
    assert!(listening, "{what} did not listen on port {port}");
}

/// A private `redis-server` child on a loopback port, without persistence, so a test can
/// stop or kill it without disturbing the shared server; killed (and reaped) on drop, even
/// while stopped.
///
/// Check [`program_available("redis-server")`](program_available) first.
///
/// ```no_run
/// use steadfast_test_support::backend::{RedisServer, free_port, program_available};
///
/// if program_available("redis-server") {
///     let server = RedisServer::start(free_port());
///     let _url = server.url();
///     server.signal("-STOP");
///     server.signal("-CONT");
///     server.kill();
/// }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts a server on `port` and waits (up to 5 s) until it accepts connections.
    ///
    /// # Panics
    ///
    /// When `redis-server` cannot be started or does not listen in time.
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = Self { child, port };
        // Std time: this runs outside the runtime's clock.
        wait_listening(port, Duration::from_secs(5), "redis-server");
        server
    }

    /// The URL to connect to it: `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (`-STOP`, `-CONT`, …) with `kill`.
    ///
    /// # Panics
    ///
    /// When `kill` cannot be run or fails.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the server (SIGKILL) and reaps it.
    ///
    /// # Panics
    ///
    /// When it cannot be killed or reaped.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped process; CONT first anyway, harmlessly.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
