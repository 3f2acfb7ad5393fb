//! The clients: concurrent workers doing puts, linearizable and lease
//! gets, and compare-and-sets on a few keys through every node's HTTP API,
//! each operation recorded with its invocation and completion times and
//! what the client can know of its outcome.
//!
//! Outcomes, from the API's contract (README, "The HTTP API"):
//! `ok` (200, and 404 for a get: the key is absent), `fail` (definitely not
//! applied: 503 `unavailable`, 409 `cas_failed`, or a connection that was
//! never made), `unknown` (504 `outcome_unknown`, a timeout, a connection
//! lost after the request went out, or any answer the contract does not
//! name: counted as possibly applied, which is always sound).

use crate::history::{Kind, Record, Status};
use crate::Layout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Monotonic time since the run began, in microseconds: the history's
/// clock (only ever read in this process, so one clock orders everything).
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Microseconds since the start.
    pub fn now_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// What every worker shares.
pub struct Workload {
    /// The nodes' ports.
    pub layout: Layout,
    /// How many keys (`k0`..).
    pub keys: u64,
    /// Whether to issue lease reads as well as linearizable ones.
    pub lease_reads: bool,
    /// Longest pause between one worker's operations, in milliseconds.
    pub think_ms: u64,
    /// The history's clock.
    pub clock: Clock,
    /// The next value to write: every value written is unique, which the
    /// checker uses (an unknown put no read saw can be left out).
    pub next_value: AtomicU64,
    /// Set when the workers should stop.
    pub stop: AtomicBool,
    /// Requests time out after this long (the outcome is then unknown).
    pub http: reqwest::Client,
}

impl Workload {
    /// A workload on `layout` with a 2 s request timeout.
    pub fn new(layout: Layout, keys: u64, lease_reads: bool, think_ms: u64, clock: Clock) -> Self {
        let http = crate::http_client(Duration::from_secs(2));
        Self {
            layout,
            keys,
            lease_reads,
            think_ms,
            clock,
            next_value: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            http,
        }
    }

    fn url(&self, node: u64, key: u64, suffix: &str) -> String {
        format!("http://{}/kv/k{key}{suffix}", self.layout.api(node))
    }
}

/// Runs worker `client` until the workload stops; its choices come from
/// `seed` (the values it writes and the timing do not replay).
pub async fn worker(work: Arc<Workload>, client: u64, seed: u64) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (client + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // What this worker last saw each key hold: its guess for a cas.
    let mut seen: Vec<Option<u64>> = vec![None; work.keys as usize];
    let mut records = Vec::new();
    while !work.stop.load(Ordering::Relaxed) {
        let node = rng.random_range(1..=work.layout.nodes);
        let key = rng.random_range(0..work.keys);
        let kind = match rng.random_range(0..10) {
            0..=3 => Kind::Put,
            4..=5 => Kind::Get,
            6..=7 if work.lease_reads => Kind::LeaseGet,
            6..=7 => Kind::Get,
            _ => Kind::Cas,
        };
        let expected = seen[key as usize];
        let record = run_op(&work, client, node, key, kind, expected).await;
        if record.status == Status::Ok {
            seen[key as usize] = record.value.or(record.read.flatten());
        } else if let Some(current) = record.read {
            seen[key as usize] = current;
        }
        records.push(record);
        let think = rng.random_range(0..=work.think_ms);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
    records
}

/// One operation, from invocation to what its answer tells.
pub async fn run_op(
    work: &Workload,
    client: u64,
    node: u64,
    key: u64,
    kind: Kind,
    expected: Option<u64>,
) -> Record {
    let value =
        matches!(kind, Kind::Put | Kind::Cas).then(|| work.next_value.fetch_add(1, Ordering::Relaxed));
    let request = match kind {
        Kind::Put => work.http.put(work.url(node, key, "")).body(value.unwrap_or(0).to_string()),
        Kind::Get | Kind::FinalGet => work.http.get(work.url(node, key, "?consistency=linearizable")),
        Kind::LeaseGet => work.http.get(work.url(node, key, "?consistency=lease")),
        Kind::Cas => work.http.post(work.url(node, key, "/cas")).json(&serde_json::json!({
            "expected": expected.map(|v| v.to_string()),
            "new": value.map(|v| v.to_string()),
        })),
    };
    let invoke_us = work.clock.now_us();
    let answer = request.send().await;
    let (status, read) = match answer {
        Ok(response) => interpret(kind, response).await,
        Err(error) if error.is_connect() => (Status::Fail, None),
        Err(_) => (Status::Unknown, None),
    };
    let complete_us = work.clock.now_us();
    let expected = (kind == Kind::Cas).then_some(expected);
    Record { client, node, kind, key, value, expected, read, status, invoke_us, complete_us }
}

/// What an answer says: the status, and for a get (or a failed cas, whose
/// 409 names what the key held when the cas was applied) the value read.
async fn interpret(kind: Kind, response: reqwest::Response) -> (Status, Option<Option<u64>>) {
    let code = response.status().as_u16();
    let reads = matches!(kind, Kind::Get | Kind::LeaseGet | Kind::FinalGet);
    match code {
        200 if reads => match response.text().await {
            Ok(body) => (Status::Ok, Some(Some(parse_value(&body)))),
            Err(_) => (Status::Unknown, None),
        },
        200 => match response.bytes().await {
            Ok(_) => (Status::Ok, None),
            Err(_) => (Status::Unknown, None),
        },
        404 if reads => (Status::Ok, Some(None)),
        409 if kind == Kind::Cas => match response.json::<serde_json::Value>().await {
            Ok(body) if body["error"] == "cas_failed" => {
                let current = match &body["current"] {
                    serde_json::Value::Null => None,
                    item => Some(parse_value(item["value"].as_str().unwrap_or(""))),
                };
                (Status::Fail, Some(current))
            }
            _ => (Status::Unknown, None),
        },
        503 => (Status::Fail, None),
        _ => (Status::Unknown, None),
    }
}

/// A value as the tool wrote it; anything else (no client wrote it) reads
/// as `u64::MAX`, which no put writes, so the checker refutes the read.
fn parse_value(text: &str) -> u64 {
    text.parse().unwrap_or(u64::MAX)
}
