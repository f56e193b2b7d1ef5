//! A sharded cache over HTTP: three in-memory key-value nodes (axum servers on loopback
//! ports) behind a [`HashRouter`] that sends each key to its owner under rendezvous hashing.
//!
//! The demo writes 300 keys through the router and reads them all back (every read hits,
//! so every key went to the same node both times), prints how many keys each node holds,
//! then shows that removing `node-c` moves only `node-c`'s keys, and that with bounded
//! loads a burst of requests for one hot key spills over from its owner to the next nodes.
//!
//! Run it with `cargo run -p example-sharded-cache`. It talks only to 127.0.0.1 and stops by
//! itself; apart from the ports, the output is the same on every run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast_core::error::BoxError;
use steadfast_hash::bounded::BoundedLoad;
use steadfast_hash::rendezvous::Rendezvous;
use steadfast_hash::router::HashRouter;
use steadfast_hash::{moves, stable_hash64};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::{Service, ServiceExt};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const KEYS: usize = 300;
const HOT_KEY: &str = "key-7";
const BURST: usize = 30;

type Body = Full<Bytes>;

// === The cache nodes ===

/// One cache node: its name (sent back in an `x-node` header) and its entries.
#[derive(Clone)]
struct Node {
    name: &'static str,
    store: Arc<Mutex<HashMap<String, Bytes>>>,
}

/// Starts a node on an ephemeral loopback port.
async fn start_node(name: &'static str) -> Result<(SocketAddr, JoinHandle<()>), BoxError> {
    let node = Node {
        name,
        store: Arc::default(),
    };
    let app = Router::new()
        .route("/kv/{key}", get(get_key).put(put_key))
        .route("/stats", get(stats))
        .with_state(node);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server runs");
    });
    Ok((addr, server))
}

async fn get_key(State(node): State<Node>, Path(key): Path<String>) -> impl IntoResponse {
    let value = node.store.lock().expect("store").get(&key).cloned();
    let status = match value {
        Some(_) => StatusCode::OK,
        None => StatusCode::NOT_FOUND,
    };
    (status, [("x-node", node.name)], value.unwrap_or_default())
}

async fn put_key(State(node): State<Node>, Path(key): Path<String>, value: Bytes) -> StatusCode {
    node.store.lock().expect("store").insert(key, value);
    StatusCode::NO_CONTENT
}

/// The node's key count, as text.
async fn stats(State(node): State<Node>) -> String {
    node.store.lock().expect("store").len().to_string()
}

// === The client side ===

fn request(method: Method, path: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .expect("valid request")
}

/// The routing key: the `{key}` of `/kv/{key}`.
fn cache_key(request: &Request<Body>) -> String {
    let path = request.uri().path();
    path.strip_prefix("/kv/").unwrap_or(path).to_owned()
}

/// Which node served a response.
fn served_by(response: &Response<impl Sized>) -> usize {
    let name = response.headers()["x-node"].as_bytes();
    NODES
        .iter()
        .position(|node| node.as_bytes() == name)
        .expect("a known node")
}

async fn body_text<B>(response: Response<B>) -> Result<String, BoxError>
where
    B: BodyExt,
    B::Error: Into<BoxError>,
{
    let bytes = response.into_body().collect().await.map_err(Into::into)?;
    Ok(String::from_utf8(bytes.to_bytes().to_vec())?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for name in NODES {
        let (addr, server) = start_node(name).await?;
        println!("{name} listening on {addr}");
        addrs.push(addr);
        servers.push(server);
    }

    // One HTTP client per node; each member service points its requests at its node.
    let members: Vec<_> = addrs
        .iter()
        .map(|&addr| {
            let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
            client.map_request(move |mut request: Request<Body>| {
                let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
                *request.uri_mut() = format!("http://{addr}{path}").parse().expect("valid uri");
                request
            })
        })
        .collect();
    let mut router = HashRouter::new(members, Rendezvous::new(NODES)?, cache_key);

    // Write every key through the router, then read it back.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let put = request(Method::PUT, &format!("/kv/{key}"), format!("value-{i}"));
        let response = router.ready().await?.call(put).await?;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    for (i, key) in keys.iter().enumerate() {
        let get = request(Method::GET, &format!("/kv/{key}"), "");
        let owner = router.owner(&get).expect("members");
        let response = router.ready().await?.call(get).await?;
        assert_eq!(response.status(), StatusCode::OK, "{key} not found");
        assert_eq!(served_by(&response), owner, "{key} read from another node");
        assert_eq!(body_text(response).await?, format!("value-{i}"));
    }
    println!("\nwrote {KEYS} keys and read them all back: every read found its value");

    let mut held = Vec::new();
    for member in router.services() {
        let response = member
            .clone()
            .oneshot(request(Method::GET, "/stats", ""))
            .await?;
        held.push(body_text(response).await?.parse::<usize>()?);
    }
    let expected = KEYS / NODES.len();
    println!("\nnode     keys  share   (expected about {expected} each, 33.3%)");
    for (name, &count) in NODES.iter().zip(&held) {
        let share = 100.0 * count as f64 / KEYS as f64;
        println!("{name}  {count:>5}  {share:>5.1}%");
    }

    // Membership change: what would move if node-c left?
    let before = router.placement();
    let after = Rendezvous::new(["node-a", "node-b"])?;
    let hashes = keys.iter().map(|key| stable_hash64(key.as_str()));
    let moved: Vec<_> = moves(before, &after, hashes).collect();
    let node_c = before.index_of(&"node-c").expect("a member");
    let from_c = moved.iter().filter(|m| m.from == Some(node_c)).count();
    let to = |name| {
        let index = after.index_of(&name);
        moved.iter().filter(|m| m.to == index).count()
    };
    println!(
        "\nwithout node-c: {} of {KEYS} keys move, {from_c} of them from node-c (which held {}); \
         {} go to node-a, {} to node-b",
        moved.len(),
        held[node_c],
        to("node-a"),
        to("node-b"),
    );
    assert_eq!(from_c, moved.len(), "only node-c's keys move");
    assert_eq!(moved.len(), held[node_c], "all of node-c's keys move");

    // Bounded loads: a burst for one hot key, all dispatched before any completes.
    let mut hot = router.clone().bounded_load(BoundedLoad::new(NODES.len()));
    let mut pending = Vec::new();
    for _ in 0..BURST {
        let get = request(Method::GET, &format!("/kv/{HOT_KEY}"), "");
        pending.push(hot.ready().await?.call(get));
    }
    let load = hot.load().expect("a bounded load");
    let owner = before.get(HOT_KEY).expect("members");
    println!(
        "\n{BURST} concurrent GETs for {HOT_KEY} (owner {owner}), bounded load c = {}:",
        load.factor()
    );
    let in_flight: Vec<usize> = (0..NODES.len()).map(|i| load.in_flight(i)).collect();
    let mut tasks = JoinSet::new();
    for future in pending {
        tasks.spawn(future);
    }
    let (mut served, mut hits) = ([0; NODES.len()], [0; NODES.len()]);
    while let Some(result) = tasks.join_next().await {
        let response = result??;
        let node = served_by(&response);
        served[node] += 1;
        hits[node] += usize::from(response.status() == StatusCode::OK);
    }
    println!("node     in flight  served  hits");
    for (i, name) in NODES.iter().enumerate() {
        println!(
            "{name}  {:>9}  {:>6}  {:>4}",
            in_flight[i], served[i], hits[i]
        );
    }
    println!("(only the owner holds the key: the overflow misses, as a real cache would once)");
    assert_eq!(load.total_in_flight(), 0);

    for server in servers {
        server.abort();
    }
    Ok(())
}
