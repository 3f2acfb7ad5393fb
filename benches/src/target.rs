//! Clusters reached over HTTP: `raft-kv`'s API, and etcd's v3 JSON gateway,
//! driven by the same client code.
//!
//! Each load-generating client has a connection of its own (its own
//! `reqwest` client, whose pool then holds the one connection it reuses), so
//! `--clients N` is N connections, spread over the endpoints in turn.
//!
//! - `raft-kv`: `PUT /kv/{key}` with the value as its body, `GET /kv/{key}`
//!   (linearizable, the API's default); anything but 200 is an error.
//! - etcd: `POST /v3/kv/put` with `{"key", "value"}` in base64, `POST
//!   /v3/kv/range` with `{"key"}` (linearizable, etcd's default); anything
//!   but 200, or a body naming an error, is an error, and so is a read that
//!   finds no key.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const JSON: reqwest::header::HeaderName = reqwest::header::CONTENT_TYPE;

/// Which API the endpoints speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `raft-kv`'s HTTP API.
    RaftKv,
    /// etcd's v3 JSON gateway (grpc-gateway).
    Etcd,
}

impl Api {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Api::RaftKv => "raft-kv",
            Api::Etcd => "etcd",
        }
    }
}

/// A malformed `--target` or `--etcd`.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// No endpoint in the list.
    #[error("no endpoint given")]
    Empty,
    /// An endpoint that is not `http://host:port`.
    #[error("endpoint {0:?} is not http://HOST:PORT (only plain HTTP is supported)")]
    NotHttp(String),
    /// The HTTP client could not be built.
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
}

/// Parses a comma-separated list of `http://host:port` endpoints.
pub fn parse_endpoints(list: &str) -> Result<Vec<String>, TargetError> {
    let endpoints: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| e.trim_end_matches('/').to_string())
        .collect();
    if endpoints.is_empty() {
        return Err(TargetError::Empty);
    }
    for endpoint in &endpoints {
        let rest = endpoint.strip_prefix("http://").ok_or_else(|| TargetError::NotHttp(endpoint.clone()))?;
        if rest.is_empty() || rest.contains('/') {
            return Err(TargetError::NotHttp(endpoint.clone()));
        }
    }
    Ok(endpoints)
}

/// One load-generating client: one connection to one endpoint.
#[derive(Clone)]
pub struct HttpClient {
    api: Api,
    base: String,
    http: reqwest::Client,
}

impl HttpClient {
    /// Client number `client` of `api` at `endpoints` (taken in turn).
    pub fn new(api: Api, endpoints: &[String], client: usize) -> Result<Self, TargetError> {
        // A build of the whole workspace enables more than one rustls crypto
        // backend, and reqwest then finds no process default and panics:
        // install ring's (the transports' own). An error only means one is
        // set already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TargetError::Client(e.to_string()))?;
        Ok(Self { api, base: endpoints[client % endpoints.len()].clone(), http })
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let request = match self.api {
            Api::RaftKv => self.http.put(format!("{}/kv/{key}", self.base)).body(value.to_vec()),
            Api::Etcd => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let body = serde_json::json!({ "key": b64.encode(key), "value": b64.encode(value) });
                self.http
                    .post(format!("{}/v3/kv/put", self.base))
                    .header(JSON, "application/json")
                    .body(body.to_string())
            }
        };
        self.send(request, false).await
    }

    /// Reads `key`, which must exist.
    pub async fn get(&self, key: &str) -> Result<(), String> {
        let request = match self.api {
            Api::RaftKv => self.http.get(format!("{}/kv/{key}", self.base)),
            Api::Etcd => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let body = serde_json::json!({ "key": b64.encode(key) });
                self.http
                    .post(format!("{}/v3/kv/range", self.base))
                    .header(JSON, "application/json")
                    .body(body.to_string())
            }
        };
        self.send(request, true).await
    }

    async fn send(&self, request: reqwest::RequestBuilder, read: bool) -> Result<(), String> {
        let response = request.send().await.map_err(|e| format!("{}: {e}", self.base))?;
        let status = response.status();
        // Read the whole body, so the connection can be reused.
        let body = response.bytes().await.map_err(|e| format!("{}: {e}", self.base))?;
        if status != reqwest::StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("{}: {status}: {}", self.base, text.chars().take(200).collect::<String>()));
        }
        if self.api == Api::Etcd {
            let json: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("{}: not JSON: {e}", self.base))?;
            if let Some(error) = json.get("error").or_else(|| json.get("message")) {
                return Err(format!("{}: {error}", self.base));
            }
            // etcd omits `count` (and `kvs`) when nothing matched.
            if read && json.get("kvs").is_none() {
                return Err(format!("{}: no such key", self.base));
            }
        }
        Ok(())
    }
}

/// The leader's group commit over a measurement: the proposals it took and
/// the log writes that made them durable (on a durable store, one
/// `fdatasync` each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupCommit {
    /// Proposals the leader took during the measurement.
    pub proposals: u64,
    /// The leader's log writes during the measurement.
    pub log_writes: u64,
    /// `proposals / log_writes`.
    pub proposals_per_write: f64,
}

/// raft-core's counters of one node, read from its `GET /metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeCounters {
    /// `raft_proposals_total`.
    pub proposals: f64,
    /// `raft_log_writes_total`.
    pub log_writes: f64,
}

/// The counters in a Prometheus text page (summed over label sets; a node
/// exports only its own).
pub fn parse_counters(text: &str) -> NodeCounters {
    let mut counters = NodeCounters::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        match name {
            "raft_proposals_total" => counters.proposals += value,
            "raft_log_writes_total" => counters.log_writes += value,
            _ => {}
        }
    }
    counters
}

/// Each endpoint's counters, `None` where `/metrics` did not answer.
pub async fn scrape(endpoints: &[String]) -> Vec<Option<NodeCounters>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok();
    let mut counters = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let page = match &http {
            Some(http) => match http.get(format!("{endpoint}/metrics")).send().await {
                Ok(response) if response.status().is_success() => response.text().await.ok(),
                _ => None,
            },
            None => None,
        };
        counters.push(page.map(|p| parse_counters(&p)));
    }
    counters
}

/// The group commit of the node that took the most proposals between two
/// scrapes (the leader), or `None` if none took any or a scrape failed.
pub fn group_commit(before: &[Option<NodeCounters>], after: &[Option<NodeCounters>]) -> Option<GroupCommit> {
    let (proposals, log_writes) = before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| {
            let (b, a) = ((*b)?, (*a)?);
            Some((a.proposals - b.proposals, a.log_writes - b.log_writes))
        })
        .max_by(|x, y| x.0.total_cmp(&y.0))?;
    (proposals >= 1.0 && log_writes >= 1.0).then(|| GroupCommit {
        proposals: proposals as u64,
        log_writes: log_writes as u64,
        proposals_per_write: proposals / log_writes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_prometheus_text() {
        let page = "# HELP raft_proposals_total x\n# TYPE raft_proposals_total counter\n\
                    raft_proposals_total{node=\"2\"} 1500\nraft_log_writes_total{node=\"2\"} 12\n\
                    raft_log_writes_total_other 99\nraft_log_write_entries_sum{node=\"2\"} 7\n";
        assert_eq!(parse_counters(page), NodeCounters { proposals: 1500.0, log_writes: 12.0 });
    }

    #[test]
    fn the_group_commit_is_the_busiest_nodes() {
        let n = |proposals, log_writes| Some(NodeCounters { proposals, log_writes });
        let before = [n(10.0, 5.0), n(0.0, 0.0), None];
        let after = [n(1010.0, 15.0), n(0.0, 40.0), None];
        let g = group_commit(&before, &after).unwrap();
        assert_eq!((g.proposals, g.log_writes), (1000, 10));
        assert_eq!(g.proposals_per_write, 100.0);
        assert_eq!(group_commit(&[n(1.0, 1.0)], &[n(1.0, 9.0)]), None, "no proposals, no figure");
    }

    #[test]
    fn endpoints_are_plain_http_host_port() {
        assert_eq!(
            parse_endpoints("http://127.0.0.1:1/, http://b:2").unwrap(),
            ["http://127.0.0.1:1", "http://b:2"]
        );
        assert!(matches!(parse_endpoints(" , "), Err(TargetError::Empty)));
        assert!(matches!(parse_endpoints("https://a:1"), Err(TargetError::NotHttp(_))));
        assert!(matches!(parse_endpoints("http://a:1/kv"), Err(TargetError::NotHttp(_))));
        assert!(matches!(parse_endpoints("a:1"), Err(TargetError::NotHttp(_))));
    }
}
