//! Real processes for the fault tests: the backend variables, private server children, a
//! child holder re-executing the test binary (so it can be `SIGSTOP`ped or `SIGKILL`ed
//! while the parent keeps running), and a loopback proxy that counts round trips.
//!
//! Everything here is std only (threads, `std::process`, the `kill` command), so it
//! compiles into every test binary whatever the features.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

// The shared skip-or-fail rule and loopback helpers; each test binary uses only some of
// them (like the rest of `support`, see its `allow(dead_code)`).
#[allow(unused_imports)]
pub use steadfast_test_support::backend::{
    backend_env, free_port, program_available, unique, wait_listening,
};

/// Splits a `scheme://[userinfo@]host[:port][/path][?query]` URL into (the part before
/// the host, host, port, the rest); `default_port` when it names none.
pub fn split_url(url: &str, default_port: u16) -> (String, String, u16, String) {
    let (scheme, after) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("not a URL: {url}"));
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (format!("{userinfo}@"), host_port),
        None => (String::new(), authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().expect("a numeric port")),
        None => (host_port, default_port),
    };
    (
        format!("{scheme}://{userinfo}"),
        host.to_owned(),
        port,
        rest.to_owned(),
    )
}

/// One line `EVENT <kind> <fields…>` printed by a child holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `lead`, `attempt`, `write`, `lost`, `dropped` or `stale`.
    pub kind: String,
    /// The words after the kind; the first is the token.
    pub fields: Vec<String>,
}

impl Event {
    /// The first field as a number (the token, for every event a holder prints).
    pub fn token(&self) -> u64 {
        self.fields[0].parse().expect("a token")
    }

    /// Whether this is a `kind` event about `token`.
    pub fn is(&self, kind: &str, token: u64) -> bool {
        self.kind == kind && self.token() == token
    }
}

/// The events in `output`.
pub fn parse_events(output: &str) -> Vec<Event> {
    output
        .lines()
        // libtest may print `test child_holder ... ` on the same line, before the first.
        .filter_map(|line| line.find("EVENT ").map(|at| &line[at + "EVENT ".len()..]))
        .map(|line| {
            let mut words = line.split_whitespace().map(str::to_owned);
            Event {
                kind: words.next().unwrap_or_default(),
                fields: words.collect(),
            }
        })
        .collect()
}

/// A child process whose stdout and stderr go to files (so the parent can tell exactly
/// what it printed before a `SIGSTOP`), killed and reaped on drop, even while stopped.
/// When the parent panics, the drop prints the child's output.
pub struct ChildProcess {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    what: String,
}

impl ChildProcess {
    /// Spawns `command`, naming it `what` in messages.
    pub fn spawn(mut command: Command, what: &str) -> Self {
        let base = std::env::temp_dir().join(format!("steadfast-lease-{}", unique(what)));
        let stdout = base.with_extension("out");
        let stderr = base.with_extension("err");
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|err| panic!("start {what}: {err}"));
        Self {
            child,
            stdout,
            stderr,
            what: what.to_owned(),
        }
    }

    /// Re-executes this test binary to run only the ignored test `test`, with `envs`.
    pub fn spawn_test(test: &str, envs: &[(&str, String)], what: &str) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        command.envs(envs.iter().map(|(key, value)| (key, value)));
        Self::spawn(command, what)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-KILL`, …) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", self.what);
    }

    /// The process state letter in `/proc/<pid>/stat` (`T`: stopped).
    fn state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // `pid (comm) S …`: the state follows the last `)`.
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    /// `SIGSTOP`s the child and waits until the kernel reports it stopped. Returns how
    /// many bytes it had printed by then: everything after that offset was printed after
    /// it was resumed.
    pub fn stop(&self) -> u64 {
        self.signal("-STOP");
        let stopped = (0..500).any(|_| {
            let stopped = self.state() == Some('T');
            if !stopped {
                std::thread::sleep(Duration::from_millis(2));
            }
            stopped
        });
        assert!(stopped, "{} did not stop", self.what);
        std::fs::metadata(&self.stdout).unwrap().len()
    }

    /// `SIGCONT`s the child.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// `SIGKILL`s the child and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Everything the child printed on stdout so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap()
    }

    /// The events the child printed so far.
    pub fn events(&self) -> Vec<Event> {
        parse_events(&self.output())
    }

    fn raw_output(&self) -> Vec<u8> {
        let mut output = Vec::new();
        File::open(&self.stdout)
            .unwrap()
            .read_to_end(&mut output)
            .unwrap();
        output
    }

    /// The events the child printed after the first `offset` bytes of its output.
    pub fn events_after(&self, offset: u64) -> Vec<Event> {
        let output = self.raw_output();
        let offset = usize::try_from(offset).unwrap().min(output.len());
        parse_events(&String::from_utf8_lossy(&output[offset..]))
    }

    /// The events among the first `offset` bytes of its output.
    pub fn events_before(&self, offset: u64) -> Vec<Event> {
        let output = self.raw_output();
        let offset = usize::try_from(offset).unwrap().min(output.len());
        parse_events(&String::from_utf8_lossy(&output[..offset]))
    }

    /// Waits (tokio time, polling every 10 ms) up to `limit` for an event matching `found`
    /// among those printed after `offset` bytes; returns it.
    pub async fn wait_event(
        &mut self,
        offset: u64,
        limit: Duration,
        found: impl Fn(&Event) -> bool,
    ) -> Event {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if let Some(event) = self.events_after(offset).into_iter().find(&found) {
                return event;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before the awaited event", self.what);
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{}: no awaited event within {limit:?}",
                self.what
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped process; CONT first anyway, harmlessly.
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            eprintln!(
                "--- {} stdout ---\n{out}--- {} stderr ---\n{err}---",
                self.what, self.what
            );
        }
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory named after `what`.
    pub fn new(what: &str) -> Self {
        let path = std::env::temp_dir().join(format!("steadfast-lease-{}", unique(what)));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback TCP proxy to one upstream that counts **round trips**: every time data
/// arrives from the server after the client sent something it had not yet answered, one
/// more. A request pipelined in one flush (however many protocol messages) and its
/// answer count one; a request that needs an answer before the next can be sent counts
/// two. Counts are per proxy, over all its connections.
///
/// For HTTP/2 (gRPC), where either side also sends control frames (window updates, pings,
/// settings) at any time, [`streams`](Self::streams) counts what matters instead: the
/// streams the client opens, one per call (with calls made one after another, one round
/// trip each).
pub struct CountingProxy {
    port: u16,
    round_trips: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

/// Counts the streams a client opens in an HTTP/2 byte stream: `HEADERS` frames on a
/// stream id above every earlier one.
#[derive(Default)]
struct Http2Streams {
    preface_left: usize,
    buffer: Vec<u8>,
    last_stream: u32,
}

impl Http2Streams {
    fn new() -> Self {
        Self {
            preface_left: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".len(),
            ..Self::default()
        }
    }

    /// Feeds the next bytes; returns how many streams they opened.
    fn feed(&mut self, mut bytes: &[u8]) -> usize {
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = &bytes[skip..];
        self.buffer.extend_from_slice(bytes);
        let mut opened = 0;
        while self.buffer.len() >= 9 {
            let length = usize::from(self.buffer[0]) << 16
                | usize::from(self.buffer[1]) << 8
                | usize::from(self.buffer[2]);
            if self.buffer.len() < 9 + length {
                break;
            }
            let kind = self.buffer[3];
            let stream = u32::from_be_bytes([
                self.buffer[5] & 0x7f,
                self.buffer[6],
                self.buffer[7],
                self.buffer[8],
            ]);
            if kind == 1 && stream > self.last_stream {
                self.last_stream = stream;
                opened += 1;
            }
            self.buffer.drain(..9 + length);
        }
        opened
    }
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards every connection to `host:port`;
    /// `http2`: the clients speak HTTP/2 (count their streams too).
    pub fn start(host: &str, port: u16, http2: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap().port();
        let round_trips = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let upstream = format!("{host}:{port}");
        let (count, opened, stop) = (round_trips.clone(), streams.clone(), closed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let awaiting = Arc::new(AtomicBool::new(false));
                let up = (
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    awaiting.clone(),
                );
                let opened = opened.clone();
                std::thread::spawn(move || {
                    let (mut from, mut to, awaiting) = up;
                    let mut http2_streams = Http2Streams::new();
                    pump(&mut from, &mut to, |bytes| {
                        if http2 {
                            opened.fetch_add(http2_streams.feed(bytes), Ordering::SeqCst);
                        }
                        awaiting.store(true, Ordering::SeqCst);
                    });
                });
                let count = count.clone();
                std::thread::spawn(move || {
                    let (mut from, mut to) = (server, client);
                    pump(&mut from, &mut to, |_| {
                        if awaiting.swap(false, Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                });
            }
        });
        Self {
            port: local,
            round_trips,
            streams,
            closed,
        }
    }

    /// HTTP/2 streams opened by the clients so far (with `http2` only).
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }

    /// The loopback port to connect to instead of the upstream.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Round trips so far.
    pub fn round_trips(&self) -> usize {
        self.round_trips.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until either side closes, calling `seen` before forwarding each
/// chunk.
fn pump(from: &mut TcpStream, to: &mut TcpStream, mut seen: impl FnMut(&[u8])) {
    let mut buffer = [0; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(&buffer[..n]);
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
