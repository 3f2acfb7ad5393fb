//! The clients: concurrent workers doing puts, linearizable and lease
//! gets, compare-and-sets, deletes and two-key transactions on a few keys
//! through every node's HTTP API, in the proportions of a [`Mix`], each
//! operation recorded with its invocation and completion times and what
//! the client can know of its outcome.
//!
//! Outcomes, from the API's contract (README, "The HTTP API"):
//! `ok` (200, and 404 for a get or a delete: the key is absent), `fail` (definitely not
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

/// How often each kind of operation is drawn: weights, `--mix
/// put=3,get=2,lease-get=2,cas=1,delete=1,txn=1` (the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
}

impl Default for Mix {
    fn default() -> Self {
        use Kind::*;
        Mix { weights: vec![(Put, 3), (Get, 2), (LeaseGet, 2), (Cas, 1), (Delete, 1), (Txn, 1)] }
    }
}

impl Mix {
    /// The mix `text` names (`kind=weight,...`; kinds not named keep their
    /// default weight, 0 leaves one out).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut mix = Mix::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or(format!("{part:?} is not kind=weight"))?;
            let kind = match name {
                "put" => Kind::Put,
                "get" => Kind::Get,
                "lease-get" => Kind::LeaseGet,
                "cas" => Kind::Cas,
                "delete" => Kind::Delete,
                "txn" => Kind::Txn,
                _ => return Err(format!("unknown kind {name:?} (put, get, lease-get, cas, delete, txn)")),
            };
            let weight = weight.parse().map_err(|_| format!("{weight:?} is not a weight"))?;
            mix.set(kind, weight);
        }
        if mix.total() == 0 {
            return Err("every weight is 0".into());
        }
        Ok(mix)
    }

    /// Sets `kind`'s weight.
    pub fn set(&mut self, kind: Kind, weight: u32) {
        if let Some(entry) = self.weights.iter_mut().find(|(k, _)| *k == kind) {
            entry.1 = weight;
        }
    }

    /// `kind`'s weight.
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights.iter().find(|(k, _)| *k == kind).map_or(0, |(_, w)| *w)
    }

    fn total(&self) -> u32 {
        self.weights.iter().map(|(_, w)| w).sum()
    }

    fn draw(&self, rng: &mut impl Rng) -> Kind {
        let mut roll = rng.random_range(0..self.total().max(1));
        for &(kind, weight) in &self.weights {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        Kind::Get
    }
}

/// What every worker shares.
pub struct Workload {
    /// The nodes' ports.
    pub layout: Layout,
    /// How many keys (`k0`..).
    pub keys: u64,
    /// The operations' proportions.
    pub mix: Mix,
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
    pub fn new(layout: Layout, keys: u64, mix: Mix, think_ms: u64, clock: Clock) -> Self {
        let http = crate::http_client(Duration::from_secs(2));
        Self {
            layout,
            keys,
            mix,
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

    fn value(&self) -> u64 {
        self.next_value.fetch_add(1, Ordering::Relaxed)
    }
}

/// What a worker is about to do: the kind, its key (and a transaction's
/// second key), and the value it expects there (for a cas or a txn).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// What.
    pub kind: Kind,
    /// On which key.
    pub key: u64,
    /// A transaction's second key.
    pub key2: Option<u64>,
    /// What a cas or txn compares the key with.
    pub expected: Option<u64>,
}

impl Plan {
    /// A plan of `kind` on `key` alone.
    pub fn on(kind: Kind, key: u64) -> Self {
        Plan { kind, key, key2: None, expected: None }
    }
}

/// Runs worker `client` until the workload stops; its choices come from
/// `seed` (the values it writes and the timing do not replay).
pub async fn worker(work: Arc<Workload>, client: u64, seed: u64) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (client + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // What this worker last saw each key hold: its guess for a cas or txn.
    let mut seen: Vec<Option<u64>> = vec![None; work.keys as usize];
    let mut records = Vec::new();
    while !work.stop.load(Ordering::Relaxed) {
        let node = rng.random_range(1..=work.layout.nodes);
        let key = rng.random_range(0..work.keys);
        let kind = work.mix.draw(&mut rng);
        let key2 =
            (kind == Kind::Txn && work.keys > 1).then(|| (key + rng.random_range(1..work.keys)) % work.keys);
        let plan = Plan { kind, key, key2, expected: seen[key as usize] };
        let record = run_op(&work, client, node, plan).await;
        learn(&mut seen, &record);
        records.push(record);
        let think = rng.random_range(0..=work.think_ms);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
    records
}

/// Updates a worker's idea of what each key holds from what `record` told.
fn learn(seen: &mut [Option<u64>], record: &Record) {
    let (key, key2) = (record.key as usize, record.key2.map(|k| k as usize));
    match (record.status, record.succeeded) {
        (Status::Ok, Some(true)) => {
            seen[key] = record.value;
            if let Some(k) = key2 {
                seen[k] = record.value2;
            }
        }
        (Status::Ok, Some(false)) => {
            seen[key] = record.read.flatten();
            if let (Some(k), Some(read)) = (key2, record.read2) {
                seen[k] = read;
            }
        }
        (Status::Ok, None) => seen[key] = record.value.or(record.read.flatten()),
        _ => {
            if let Some(current) = record.read {
                seen[key] = current;
            }
        }
    }
}

/// One operation, from invocation to what its answer tells.
pub async fn run_op(work: &Workload, client: u64, node: u64, plan: Plan) -> Record {
    let key = plan.key;
    let mut record = Record::new(client, node, plan.kind, key);
    record.key2 = plan.key2;
    if matches!(plan.kind, Kind::Put | Kind::Cas | Kind::Txn) {
        record.value = Some(work.value());
    }
    if matches!(plan.kind, Kind::Cas | Kind::Txn) {
        record.expected = Some(plan.expected);
    }
    if plan.kind == Kind::Txn {
        record.value2 = Some(work.value());
    }
    let text = |v: Option<u64>| v.map(|v| v.to_string());
    let request = match plan.kind {
        Kind::Put => work.http.put(work.url(node, key, "")).body(record.value.unwrap_or(0).to_string()),
        Kind::Get | Kind::FinalGet => work.http.get(work.url(node, key, "?consistency=linearizable")),
        Kind::LeaseGet => work.http.get(work.url(node, key, "?consistency=lease")),
        Kind::Cas => work.http.post(work.url(node, key, "/cas")).json(&serde_json::json!({
            "expected": text(plan.expected),
            "new": text(record.value),
        })),
        Kind::Delete => work.http.delete(work.url(node, key, "")),
        Kind::Txn => {
            let (a, b) = (format!("k{key}"), format!("k{}", plan.key2.unwrap_or(key)));
            let body = serde_json::json!({
                "compare": [{"key": a, "value": text(plan.expected)}],
                "success": [
                    {"put": {"key": a, "value": text(record.value)}},
                    {"put": {"key": b, "value": text(record.value2)}},
                ],
                "failure": [{"get": {"key": a}}, {"get": {"key": b}}],
            });
            work.http.post(format!("http://{}/txn", work.layout.api(node))).json(&body)
        }
    };
    record.invoke_us = work.clock.now_us();
    let answer = request.send().await;
    let answer = match answer {
        Ok(response) => interpret(plan.kind, response).await,
        Err(error) if error.is_connect() => Answer::status(Status::Fail),
        Err(_) => Answer::status(Status::Unknown),
    };
    record.complete_us = work.clock.now_us();
    record.status = answer.status;
    record.read = answer.read;
    record.read2 = answer.read2;
    record.succeeded = answer.succeeded;
    record
}

/// What an answer says.
struct Answer {
    status: Status,
    /// For a get (or a failed cas, whose 409 names what the key held when
    /// the cas was applied; or a txn's failure branch) the value read; for
    /// a delete's 404, absent.
    read: Option<Option<u64>>,
    /// A txn's failure branch's read of its second key.
    read2: Option<Option<u64>>,
    /// Whether a txn's comparison held.
    succeeded: Option<bool>,
}

impl Answer {
    fn status(status: Status) -> Self {
        Answer { status, read: None, read2: None, succeeded: None }
    }

    fn read(read: Option<u64>) -> Self {
        Answer { read: Some(read), ..Answer::status(Status::Ok) }
    }
}

async fn interpret(kind: Kind, response: reqwest::Response) -> Answer {
    let code = response.status().as_u16();
    let reads = matches!(kind, Kind::Get | Kind::LeaseGet | Kind::FinalGet);
    match code {
        200 if reads => match response.text().await {
            Ok(body) => Answer::read(Some(parse_value(&body))),
            Err(_) => Answer::status(Status::Unknown),
        },
        200 if kind == Kind::Txn => match response.json::<serde_json::Value>().await {
            Ok(body) => txn_answer(&body),
            Err(_) => Answer::status(Status::Unknown),
        },
        200 => match response.bytes().await {
            Ok(_) => Answer::status(Status::Ok),
            Err(_) => Answer::status(Status::Unknown),
        },
        404 if reads || kind == Kind::Delete => Answer::read(None),
        409 if kind == Kind::Cas => match response.json::<serde_json::Value>().await {
            Ok(body) if body["error"] == "cas_failed" => {
                let current = match &body["current"] {
                    serde_json::Value::Null => None,
                    item => Some(parse_value(item["value"].as_str().unwrap_or(""))),
                };
                Answer { read: Some(current), ..Answer::status(Status::Fail) }
            }
            _ => Answer::status(Status::Unknown),
        },
        503 => Answer::status(Status::Fail),
        _ => Answer::status(Status::Unknown),
    }
}

/// A 200 to a txn: which branch ran, and what its failure branch read
/// (anything unexpected leaves the outcome unknown, which is sound).
fn txn_answer(body: &serde_json::Value) -> Answer {
    let unknown = Answer::status(Status::Unknown);
    match body["succeeded"].as_bool() {
        Some(true) => Answer { succeeded: Some(true), ..Answer::status(Status::Ok) },
        Some(false) => {
            let got = |i: usize| -> Option<Option<u64>> {
                match &body["results"][i]["get"]["value"] {
                    serde_json::Value::Null if body["results"][i]["get"].is_object() => Some(None),
                    serde_json::Value::String(text) => Some(Some(parse_value(text))),
                    _ => None,
                }
            };
            match (got(0), got(1)) {
                (Some(read), Some(read2)) => Answer {
                    status: Status::Ok,
                    read: Some(read),
                    read2: Some(read2),
                    succeeded: Some(false),
                },
                _ => unknown,
            }
        }
        None => unknown,
    }
}

/// A value as the tool wrote it; anything else (no client wrote it) reads
/// as `u64::MAX`, which no put writes, so the checker refutes the read.
fn parse_value(text: &str) -> u64 {
    text.parse().unwrap_or(u64::MAX)
}
