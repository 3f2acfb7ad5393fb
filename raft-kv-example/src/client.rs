//! The client verbs of the CLI: each sends one API request, trying the
//! `--endpoints` in turn, and prints text or (`--json`) the API's own JSON.
//!
//! Writes carry a `Request-Id` (a random client id and sequence number 1),
//! so a write whose outcome is unknown (a 504, a connection lost after the
//! request went out) is retried at the next endpoint without risk of a
//! second application: the state machine answers the retry with the first
//! outcome. Reads are retried freely; admin changes only when the request
//! was definitely not applied (503, or no connection).
//!
//! The exit code tells outcomes apart (see [`Exit`]).

use crate::api::types::{ClusterStatus, Item, ListResult, LogPosition, WriteResult};
use crate::api::{Code, ErrorBody, REQUEST_ID, REVISION};
use crate::cli::{ClientArgs, Command, Consistency};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;

/// The exit codes of the client verbs (2 is clap's, for bad usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// Anything else (an I/O error writing the output, say).
    Other = 1,
    /// The key (or member) does not exist.
    NotFound = 3,
    /// A compare-and-set or conditional put found something else.
    Conflict = 4,
    /// No node could serve the request; it was definitely not applied.
    Unavailable = 5,
    /// The write may or may not have been applied.
    OutcomeUnknown = 6,
    /// The request was refused as malformed or too large.
    BadRequest = 7,
    /// A retried request had been applied once, but its result was too large
    /// for its session to keep: read the keys to see it.
    ResultNotKept = 8,
}

/// A failed request: the exit code and what to print.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong.
    pub message: String,
    /// The API's error body, if one came.
    pub body: Option<ErrorBody>,
}

impl Failure {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, message: message.into(), body: None }
    }
}

/// What kind of request, for retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Safe to repeat.
    Read,
    /// Carries a Request-Id: safe to repeat after an unknown outcome.
    Write,
    /// Repeated only when definitely not applied.
    Admin,
}

/// A client over the endpoints.
pub struct Client {
    endpoints: Vec<String>,
    /// `https` with `--cacert`, else `http`, for endpoints given without one.
    scheme: &'static str,
    /// Why the TLS flags are unusable, if they are.
    tls_error: Option<String>,
    http: reqwest::Client,
    deadline: Instant,
    request_id: String,
}

/// A successful answer.
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: reqwest::header::HeaderMap,
    /// Its body.
    pub body: bytes::Bytes,
}

impl Client {
    /// A client for `args`: over HTTPS with `--cacert`. Bad certificate
    /// files fail its first request.
    pub fn new(args: &ClientArgs) -> Self {
        let endpoints = args
            .endpoints
            .iter()
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        let tls = args.tls();
        let (config, tls_error) = match tls.config() {
            Ok(config) => (config, None),
            Err(error) => (None, Some(error)),
        };
        Self {
            endpoints,
            scheme: if tls.enabled() { "https" } else { "http" },
            tls_error,
            http: crate::tls::http_client(config, Duration::from_secs(90)),
            deadline: Instant::now() + Duration::from_secs(args.timeout.max(1)),
            request_id: format!("cli-{:016x}:1", rand::random::<u64>()),
        }
    }

    /// How long one attempt at a read or a write may wait: its share of
    /// what is left of `--timeout` across the endpoints (at least a
    /// second), so that a node that hangs (stopped, or its answers lost)
    /// cannot use up the deadline before the next endpoint is tried. Both
    /// are safe to send again: reads freely, writes with their Request-Id.
    /// An admin change waits for its answer, as it is not sent again once
    /// it may have been applied.
    fn attempt_timeout(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(self.endpoints.len()).unwrap_or(u32::MAX);
        share.max(Duration::from_secs(1))
    }

    fn url(&self, endpoint: &str, path: &str) -> String {
        if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
            format!("{endpoint}{path}")
        } else {
            format!("{}://{endpoint}{path}", self.scheme)
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        json: bool,
        kind: Kind,
    ) -> Result<Answer, Failure> {
        if self.endpoints.is_empty() {
            return Err(Failure::new(Exit::BadRequest, "no --endpoints given"));
        }
        if let Some(error) = &self.tls_error {
            return Err(Failure::new(Exit::BadRequest, error.clone()));
        }
        let mut unknown = None::<String>;
        let mut last = String::new();
        for attempt in 0usize.. {
            let endpoint = &self.endpoints[attempt % self.endpoints.len()];
            let mut request = self.http.request(method.clone(), self.url(endpoint, path));
            if kind == Kind::Write {
                request = request.header(REQUEST_ID, &self.request_id);
            }
            if kind != Kind::Admin {
                request = request.timeout(self.attempt_timeout());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
                if json {
                    request = request.header("content-type", "application/json");
                }
            }
            match request.send().await {
                Ok(response) => {
                    let (status, headers) = (response.status(), response.headers().clone());
                    let bytes = response.bytes().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(Answer { status, headers, body: bytes });
                    }
                    let error: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
                    let code = error.as_ref().map(|e| e.error);
                    let message = error.as_ref().map_or_else(|| format!("{status}"), |e| e.message.clone());
                    match code {
                        Some(Code::Unavailable) => last = format!("{endpoint}: {message}"),
                        Some(Code::OutcomeUnknown) if kind != Kind::Admin => {
                            unknown = Some(format!("{endpoint}: {message}"));
                        }
                        Some(Code::OutcomeUnknown) => {
                            return Err(Failure { exit: Exit::OutcomeUnknown, message, body: error })
                        }
                        Some(code) => {
                            let exit = match code {
                                Code::NotFound => Exit::NotFound,
                                Code::CasFailed => Exit::Conflict,
                                Code::ResultNotKept => Exit::ResultNotKept,
                                _ => Exit::BadRequest,
                            };
                            return Err(Failure { exit, message, body: error });
                        }
                        None => {
                            return Err(Failure::new(Exit::Other, format!("{endpoint}: {status}: {message}")))
                        }
                    }
                }
                Err(error) if error.is_connect() => last = format!("{endpoint}: {error}"),
                Err(error) if kind == Kind::Admin => {
                    return Err(Failure::new(Exit::OutcomeUnknown, format!("{endpoint}: {error}")))
                }
                Err(error) => unknown = Some(format!("{endpoint}: {error}")),
            }
            if Instant::now() >= self.deadline {
                break;
            }
            if (attempt + 1) % self.endpoints.len() == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Err(Self::gave_up(kind, unknown, last))
    }

    /// The failure once the deadline passed: a write that may have been
    /// applied somewhere is of unknown outcome, anything else unavailable.
    fn gave_up(kind: Kind, unknown: Option<String>, last: String) -> Failure {
        match unknown {
            Some(message) if kind == Kind::Write => {
                Failure::new(Exit::OutcomeUnknown, format!("the outcome is unknown: {message}"))
            }
            unknown => {
                // A read whose every attempt timed out names the last.
                let last = if last.is_empty() { unknown.unwrap_or_default() } else { last };
                Failure::new(Exit::Unavailable, format!("no node could serve the request: {last}"))
            }
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        kind: Kind,
    ) -> Result<T, Failure> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let answer = self.send(method, path, body, true, kind).await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| Failure::new(Exit::Other, format!("bad answer: {e}")))
    }
}

/// Percent-encodes a key for a URL path (slashes kept, as the route takes
/// them).
pub fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn encode_query(value: &str) -> String {
    encode_key(value).replace('/', "%2F")
}

fn print_json(value: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Runs a client verb; returns the exit code.
pub async fn run(command: Command) -> Exit {
    match run_verb(command).await {
        Ok(()) => Exit::Ok,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if let Some(ErrorBody { current: Some(current), .. }) = &failure.body {
                match current {
                    Some(item) => eprintln!(
                        "current value: {} (revision {})",
                        item.value.as_deref().unwrap_or("<binary>"),
                        item.revision
                    ),
                    None => eprintln!("current value: none (the key is absent)"),
                }
            }
            failure.exit
        }
    }
}

async fn run_verb(command: Command) -> Result<(), Failure> {
    match command {
        Command::Put { key, value, if_revision, client } => {
            let value = if value == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .map_err(|e| Failure::new(Exit::Other, format!("cannot read stdin: {e}")))?;
                buf
            } else {
                value.into_bytes()
            };
            let path = match if_revision {
                Some(r) => format!("/kv/{}?if_revision={r}", encode_key(&key)),
                None => format!("/kv/{}", encode_key(&key)),
            };
            let c = Client::new(&client);
            let answer = c.send(Method::PUT, &path, Some(value), false, Kind::Write).await?;
            let result: WriteResult =
                serde_json::from_slice(&answer.body).map_err(|e| Failure::new(Exit::Other, e.to_string()))?;
            if client.json {
                print_json(&result)
            } else {
                println!("OK revision {}", result.revision)
            }
        }
        Command::Get { key, consistency, client } => get(&key, consistency, &client).await?,
        Command::Delete { key, client } => {
            let c = Client::new(&client);
            let result: WriteResult = c
                .json(Method::DELETE, &format!("/kv/{}", encode_key(&key)), None::<&()>, Kind::Write)
                .await?;
            if client.json {
                print_json(&result)
            } else {
                println!("deleted (revision {})", result.revision)
            }
        }
        Command::Cas { key, expected, absent, new_value, delete, client } => {
            if expected.is_none() && !absent {
                return Err(Failure::new(Exit::BadRequest, "give --expected VALUE, or --absent"));
            }
            if new_value.is_none() && !delete {
                return Err(Failure::new(Exit::BadRequest, "give --new VALUE, or --delete"));
            }
            let body = crate::api::types::CasRequest { expected, new: new_value };
            let c = Client::new(&client);
            let path = format!("/kv/{}/cas", encode_key(&key));
            let result: WriteResult = c.json(Method::POST, &path, Some(&body), Kind::Write).await?;
            if client.json {
                print_json(&result)
            } else {
                println!("OK revision {}", result.revision)
            }
        }
        Command::List { prefix, limit, client } => list(&prefix, limit, &client).await?,
        Command::Txn { file, client } => {
            let text = if file.as_os_str() == "-" {
                let mut buf = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf).map(|_| buf)
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| Failure::new(Exit::Other, format!("cannot read the transaction: {e}")))?;
            let c = Client::new(&client);
            let answer = c.send(Method::POST, "/txn", Some(text.into_bytes()), true, Kind::Write).await?;
            let result: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            print_json(&result);
        }
        other => return run_admin(other).await,
    }
    Ok(())
}

/// The admin verbs (membership, leadership, snapshots, backups).
async fn run_admin(command: Command) -> Result<(), Failure> {
    match command {
        Command::Status { client } => {
            let status: ClusterStatus =
                Client::new(&client).json(Method::GET, "/cluster", None::<&()>, Kind::Read).await?;
            if client.json {
                print_json(&status)
            } else {
                print_status(&status)
            }
        }
        Command::AddLearner { id, raft_addr, api_addr, client } => {
            let body = crate::api::types::AddLearner { id, raft_addr, api_addr };
            let p: LogPosition = Client::new(&client)
                .json(Method::POST, "/cluster/learners", Some(&body), Kind::Admin)
                .await?;
            if client.json {
                print_json(&p)
            } else {
                println!("node {id} added as a learner and caught up (entry {})", p.index)
            }
        }
        Command::Promote { id, client } => {
            let path = format!("/cluster/members/{id}/promote");
            let p: LogPosition =
                Client::new(&client).json(Method::POST, &path, None::<&()>, Kind::Admin).await?;
            if client.json {
                print_json(&p)
            } else {
                println!("node {id} is a voter (entry {})", p.index)
            }
        }
        Command::ChangeMembership { voters, learners, client } => {
            let body = crate::api::types::SetMembership { voters, learners };
            let p: LogPosition = Client::new(&client)
                .json(Method::POST, "/cluster/membership", Some(&body), Kind::Admin)
                .await?;
            if client.json {
                print_json(&p)
            } else {
                println!("membership changed (entry {})", p.index)
            }
        }
        Command::RemoveNode { id, client } => {
            let path = format!("/cluster/members/{id}");
            let p: LogPosition =
                Client::new(&client).json(Method::DELETE, &path, None::<&()>, Kind::Admin).await?;
            if client.json {
                print_json(&p)
            } else {
                println!("node {id} removed (entry {})", p.index)
            }
        }
        Command::TransferLeader { to, client } => {
            let body = crate::api::types::TransferLeader { to };
            let v: serde_json::Value = Client::new(&client)
                .json(Method::POST, "/cluster/transfer-leader", Some(&body), Kind::Admin)
                .await?;
            if client.json {
                print_json(&v)
            } else {
                println!("node {to} leads")
            }
        }
        Command::Snapshot { client } => {
            let p: LogPosition = Client::new(&client)
                .json(Method::POST, "/cluster/snapshot", None::<&()>, Kind::Admin)
                .await?;
            if client.json {
                print_json(&p)
            } else {
                println!("snapshot up to entry {} (term {})", p.index, p.term)
            }
        }
        Command::Backup { file, client } => {
            let answer = Client::new(&client).send(Method::GET, "/backup", None, false, Kind::Read).await?;
            std::fs::write(&file, &answer.body)
                .map_err(|e| Failure::new(Exit::Other, format!("cannot write {}: {e}", file.display())))?;
            if client.json {
                print_json(&serde_json::json!({"file": file, "bytes": answer.body.len()}))
            } else {
                println!("backup of {} bytes written to {}", answer.body.len(), file.display())
            }
        }
        Command::Restore { file, client } => {
            let backup = std::fs::read(&file)
                .map_err(|e| Failure::new(Exit::Other, format!("cannot read {}: {e}", file.display())))?;
            let answer =
                Client::new(&client).send(Method::POST, "/restore", Some(backup), false, Kind::Write).await?;
            let result: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            if client.json {
                print_json(&result)
            } else {
                println!("restored {} keys (revision {})", result["keys"], result["revision"])
            }
        }
        _ => return Err(Failure::new(Exit::Other, "not a client verb")),
    }
    Ok(())
}

async fn get(key: &str, consistency: Consistency, client: &ClientArgs) -> Result<(), Failure> {
    let path = format!("/kv/{}?consistency={}", encode_key(key), consistency.as_str());
    let answer = Client::new(client).send(Method::GET, &path, None, false, Kind::Read).await?;
    let revision = answer.headers.get(REVISION).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    if client.json {
        let versioned = crate::state::Versioned { value: answer.body.clone(), revision };
        print_json(&Item::of(Some(key.to_string()), &versioned));
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&answer.body);
        if !answer.body.ends_with(b"\n") {
            let _ = out.write_all(b"\n");
        }
    }
    let _ = answer.status;
    Ok(())
}

async fn list(prefix: &str, limit: usize, client: &ClientArgs) -> Result<(), Failure> {
    let c = Client::new(client);
    let mut all = ListResult { items: Vec::new(), more: false, next_after: None };
    loop {
        let page_size = (limit - all.items.len()).min(1000);
        let mut path = format!("/kv?prefix={}&limit={page_size}", encode_query(prefix));
        if let Some(after) = &all.next_after {
            path.push_str(&format!("&after={}", encode_query(after)));
        }
        let page: ListResult = c.json(Method::GET, &path, None::<&()>, Kind::Read).await?;
        all.items.extend(page.items);
        all.more = page.more;
        all.next_after = page.next_after;
        if !all.more || all.items.len() >= limit {
            break;
        }
    }
    if client.json {
        print_json(&all);
    } else {
        for item in &all.items {
            let value = item.value.clone().unwrap_or_else(|| format!("base64:{}", item.value_base64));
            println!("{}\t{}", item.key.as_deref().unwrap_or(""), value);
        }
        if all.more {
            eprintln!("(more keys follow; raise --limit)");
        }
    }
    Ok(())
}

fn print_status(status: &ClusterStatus) {
    let leader = status.leader.as_ref().map_or("none".to_string(), |l| l.id.to_string());
    println!(
        "cluster {}  term {}  leader {}{}",
        status.cluster_id,
        status.term,
        leader,
        if status.joint { "  (joint configuration)" } else { "" }
    );
    println!(
        "{:>4}  {:<8} {:<12} {:>5} {:>8} {:>8} {:>6}  {:<21} {:<21}",
        "ID", "KIND", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "RAFT", "API"
    );
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for m in &status.members {
        println!(
            "{:>4}  {:<8} {:<12} {:>5} {:>8} {:>8} {:>6}  {:<21} {:<21}",
            m.id,
            m.kind,
            m.role,
            opt(m.term),
            opt(m.commit),
            opt(m.applied),
            opt(m.lag),
            m.raft_addr.as_deref().unwrap_or("-"),
            m.api_addr.as_deref().unwrap_or("-")
        );
    }
}
