//! The HTTP API (axum) in front of one `Raft<KvState>` handle. Any node
//! accepts any request: writes reaching a follower are forwarded to the
//! leader over the Raft transport (`propose_or_forward`), linearizable reads
//! are served where they arrive (ReadIndex, confirmed by the leader), and
//! admin requests a follower gets are relayed to the leader's API.
//!
//! Handlers are thin: they check the input, call one `Raft` method, and map
//! its typed result to a status code; every error is an [`ApiError`].

mod admin;
pub mod error;
pub mod types;

use crate::member::MemberAddr;
use crate::state::{Command, KvState, Op, Outcome, RequestId, Txn, TxnOp};
pub use error::{ApiError, Code, ErrorBody};
use types::{CasRequest, Item, LeaderRef, ListResult, TxnRequest, TxnResult, WriteResult};

use axum::body::Body;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use raft_core::runtime::{Raft, ReadConsistency};
use raft_core::NodeId;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The header naming a write's client and sequence number: `CLIENT:SEQ`.
pub const REQUEST_ID: &str = "request-id";
/// The header carrying a key's revision (0: absent).
pub const REVISION: &str = "x-raft-revision";
/// The header carrying the answering node's applied index.
pub const APPLIED_INDEX: &str = "x-raft-applied-index";
/// The header carrying the leader's id, as the answering node knows it.
pub const LEADER: &str = "x-raft-leader";
/// Set on admin requests a follower relays to the leader (relayed once).
pub const FORWARDED: &str = "x-raft-forwarded";

/// The largest backup `POST /restore` takes: it travels as one log entry,
/// which must fit the transports' frames (QUIC's default is 16 MiB).
pub const MAX_RESTORE_BYTES: usize = 8 << 20;

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest key, in bytes.
    pub max_key_bytes: usize,
    /// The largest value, in bytes.
    pub max_value_bytes: usize,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests served at once; beyond, `unavailable`.
    pub max_concurrent: usize,
    /// The most operations and comparisons in one transaction.
    pub max_txn_ops: usize,
    /// The most keys one list answer holds.
    pub max_list: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
            max_body_bytes: 2 << 20,
            max_concurrent: 1024,
            max_txn_ops: 128,
            max_list: 1000,
        }
    }
}

/// What every handler shares.
pub struct ApiState {
    /// The node.
    pub raft: Raft<KvState>,
    /// Its id.
    pub id: NodeId,
    /// Its cluster's id.
    pub cluster_id: u64,
    /// The limits.
    pub limits: Limits,
    /// A client for relaying admin requests to the leader, and asking peers
    /// for their status.
    pub http: reqwest::Client,
    /// How peers' APIs are reached: `http`, or `https` when this node
    /// serves its API over TLS (see [`ApiState::with_tls`]).
    pub scheme: &'static str,
    /// How long an admin request waits (a learner catching up, say).
    pub admin_timeout: Duration,
    /// Renders what the `metrics` facade recorded, for `GET /metrics`.
    pub prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// A deliberate bug for fault tests (`--unsafe-local-reads-for-testing`):
    /// linearizable reads of a key are served from local state without
    /// ReadIndex. Always false outside them.
    pub unsafe_local_reads: bool,
    slots: Semaphore,
}

impl ApiState {
    /// The shared state of a node's API.
    pub fn new(raft: Raft<KvState>, id: NodeId, cluster_id: u64, limits: Limits) -> Self {
        Self {
            raft,
            id,
            cluster_id,
            limits,
            http: crate::tls::http_client(None, Duration::from_secs(120)),
            scheme: "http",
            admin_timeout: Duration::from_secs(60),
            prometheus: None,
            unsafe_local_reads: false,
            slots: Semaphore::new(limits.max_concurrent),
        }
    }

    /// Calls peers' APIs over HTTPS with `client` (the node's own API
    /// certificate, trusting the cluster CA).
    pub fn with_tls(mut self, client: rustls::ClientConfig) -> Self {
        self.http = crate::tls::http_client(Some(client), Duration::from_secs(120));
        self.scheme = "https";
        self
    }

    /// The leader this node knows of, with its API address.
    pub fn leader(&self) -> Option<LeaderRef> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let id = metrics.leader?;
        let api = metrics
            .membership
            .address(id)
            .and_then(|a| a.parse::<MemberAddr>().ok())
            .map(|a| a.api.to_string());
        Some(LeaderRef { id, api })
    }

    fn error(&self, error: impl Into<ApiError>) -> ApiError {
        error.into().with_leader(self.leader())
    }
}

type Shared = Arc<ApiState>;

/// The API's routes.
pub fn router(state: Shared) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/kv", get(list))
        .route("/kv/{*key}", get(get_key).put(put_key).delete(delete_key).post(cas_key))
        .route("/txn", post(txn))
        .route("/metrics", get(admin::metrics))
        .route("/health", get(admin::health))
        .route("/ready", get(admin::ready))
        .route("/status", get(admin::status))
        .route("/cluster", get(admin::cluster))
        .route("/cluster/learners", post(admin::add_learner))
        .route("/cluster/membership", post(admin::set_membership))
        .route("/cluster/members/{id}", delete(admin::remove_member))
        .route("/cluster/members/{id}/promote", post(admin::promote_member))
        .route("/cluster/transfer-leader", post(admin::transfer_leader))
        .route("/cluster/snapshot", post(admin::snapshot))
        .route("/backup", get(admin::backup))
        .route("/restore", post(restore).layer(DefaultBodyLimit::max(MAX_RESTORE_BYTES)))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Admits a request if a slot is free, times it (histogram
/// `raft_kv_request_seconds` by route, method and status), and stamps every
/// answer with the node's applied index and leader.
async fn admit(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let mut response = match state.slots.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            state.error(ApiError::new(Code::Unavailable, "too many requests at once; retry")).into_response()
        }
    };
    let status = response.status().as_u16().to_string();
    metrics::histogram!("raft_kv_request_seconds", "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    let (applied, leader) = {
        let metrics = state.raft.metrics();
        let metrics = metrics.borrow();
        (metrics.applied_index, metrics.leader)
    };
    let headers = response.headers_mut();
    headers.insert(APPLIED_INDEX, HeaderValue::from(applied));
    if let Some(leader) = leader {
        headers.insert(LEADER, HeaderValue::from(leader));
    }
    response
}

fn check_key(state: &ApiState, key: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(key) = key.map_err(|e| ApiError::bad_request(format!("invalid key: {}", e.body_text())))?;
    if key.is_empty() {
        return Err(ApiError::bad_request("invalid key: empty"));
    }
    if key.len() > state.limits.max_key_bytes {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("key of {} bytes is over the limit of {}", key.len(), state.limits.max_key_bytes),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid key: control characters are not allowed"));
    }
    Ok(key)
}

fn check_value(state: &ApiState, len: usize) -> Result<(), ApiError> {
    if len > state.limits.max_value_bytes {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("value of {len} bytes is over the limit of {}", state.limits.max_value_bytes),
        ));
    }
    Ok(())
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("request body over the limit: {}", rejection.body_text()),
        )
    } else {
        ApiError::bad_request(format!("cannot read the body: {}", rejection.body_text()))
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("request body over the limit: {}", rejection.body_text()),
        )
    } else {
        ApiError::bad_request(format!("bad JSON body: {}", rejection.body_text()))
    }
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))
}

/// Parses the `Request-Id` header, `CLIENT:SEQ`.
pub fn request_id(headers: &HeaderMap) -> Result<Option<RequestId>, ApiError> {
    let Some(value) = headers.get(REQUEST_ID) else { return Ok(None) };
    let bad = || {
        ApiError::bad_request("Request-Id must be CLIENT:SEQ (CLIENT up to 64 of A-Z a-z 0-9 _ -, SEQ >= 1)")
    };
    let value = value.to_str().map_err(|_| bad())?;
    let (client, seq) = value.rsplit_once(':').ok_or_else(bad)?;
    let valid = !client.is_empty()
        && client.len() <= 64
        && client.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    if !valid || seq == 0 {
        return Err(bad());
    }
    Ok(Some(RequestId { client: client.to_string(), seq }))
}

/// Parses `?consistency=`.
fn consistency(value: Option<&str>) -> Result<ReadConsistency, ApiError> {
    match value {
        None | Some("linearizable") => Ok(ReadConsistency::Linearizable),
        Some("lease") => Ok(ReadConsistency::Lease),
        Some("stale") => Ok(ReadConsistency::Stale),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown consistency {other:?}: use linearizable, lease or stale"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    consistency: Option<String>,
}

async fn get_key(
    State(state): State<Shared>,
    key: Result<Path<String>, PathRejection>,
    params: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = check_key(&state, key)?;
    let mut consistency = consistency(query(params)?.consistency.as_deref())?;
    if state.unsafe_local_reads && matches!(consistency, ReadConsistency::Linearizable) {
        consistency = ReadConsistency::Stale;
    }
    let found =
        state.raft.read(consistency, move |kv| kv.get(&key).cloned()).await.map_err(|e| state.error(e))?;
    match found {
        Some(v) => Ok(([(REVISION, HeaderValue::from(v.revision))], Body::from(v.value)).into_response()),
        None => {
            let mut response = state.error(ApiError::not_found("no such key")).into_response();
            response.headers_mut().insert(REVISION, HeaderValue::from(0));
            Ok(response)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutQuery {
    if_revision: Option<u64>,
}

/// Proposes `op` (with the request's id, if any) and maps its outcome.
async fn write(state: &ApiState, headers: &HeaderMap, op: Op) -> Result<Outcome, ApiError> {
    let command = Command { request: request_id(headers)?, op };
    match state.raft.propose_or_forward(command).await.map_err(|e| state.error(e))? {
        Outcome::StaleRequest { latest } => Err(ApiError::bad_request(format!(
            "Request-Id is older than its session's latest request ({latest}); its outcome is no longer known"
        ))),
        Outcome::ResultNotKept { revision, succeeded } => Err(ApiError::result_not_kept(revision, succeeded)),
        outcome => Ok(outcome),
    }
}

fn written(revision: u64) -> Response {
    ([(REVISION, HeaderValue::from(revision))], Json(WriteResult { revision })).into_response()
}

fn write_answer(state: &ApiState, key: &str, outcome: Outcome) -> Result<Response, ApiError> {
    match outcome {
        Outcome::Written { revision } | Outcome::Deleted { revision } => Ok(written(revision)),
        Outcome::NotFound => Err(state.error(ApiError::not_found("no such key"))),
        Outcome::CasFailed { current } => {
            Err(ApiError::cas_failed(current.map(|v| Item::of(Some(key.to_string()), &v)))
                .with_leader(state.leader()))
        }
        other => Err(ApiError::bad_request(format!("unexpected outcome {other:?}"))),
    }
}

async fn put_key(
    State(state): State<Shared>,
    key: Result<Path<String>, PathRejection>,
    params: Result<Query<PutQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = check_key(&state, key)?;
    let if_revision = query(params)?.if_revision;
    let value = body.map_err(body_error)?;
    check_value(&state, value.len())?;
    let outcome = write(&state, &headers, Op::Put { key: key.clone(), value, if_revision }).await?;
    write_answer(&state, &key, outcome)
}

async fn delete_key(
    State(state): State<Shared>,
    key: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = check_key(&state, key)?;
    let outcome = write(&state, &headers, Op::Delete { key: key.clone() }).await?;
    write_answer(&state, &key, outcome)
}

/// `POST /kv/{key}/cas`: the route captures `{key}/cas` as one path.
async fn cas_key(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<CasRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(path)) = path else { return Err(ApiError::bad_request("invalid key")) };
    let Some(key) = path.strip_suffix("/cas") else {
        return Err(ApiError::not_found("no such route: POST /kv/{key}/cas is the only POST under /kv"));
    };
    let key = check_key(&state, Ok(Path(key.to_string())))?;
    let Json(cas) = body.map_err(json_error)?;
    for value in [&cas.expected, &cas.new].into_iter().flatten() {
        check_value(&state, value.len())?;
    }
    let op =
        Op::Cas { key: key.clone(), expected: cas.expected.map(Bytes::from), new: cas.new.map(Bytes::from) };
    let outcome = write(&state, &headers, op).await?;
    write_answer(&state, &key, outcome)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
    after: Option<String>,
    consistency: Option<String>,
}

async fn list(
    State(state): State<Shared>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListResult>, ApiError> {
    let params = query(params)?;
    let consistency = consistency(params.consistency.as_deref())?;
    let max = state.limits.max_list;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(format!("limit must be 1 to {max}")));
    }
    let (prefix, after) = (params.prefix, params.after);
    let (page, more) = state
        .raft
        .read(consistency, move |kv| kv.list(&prefix, after.as_deref(), limit))
        .await
        .map_err(|e| state.error(e))?;
    let next_after = page.last().map(|(k, _)| k.clone());
    let items = page.into_iter().map(|(k, v)| Item::of(Some(k), &v)).collect();
    Ok(Json(ListResult { items, more, next_after }))
}

fn check_txn(state: &ApiState, txn: &Txn) -> Result<(), ApiError> {
    let ops = txn.compare.len() + txn.success.len() + txn.failure.len();
    if ops > state.limits.max_txn_ops {
        return Err(ApiError::bad_request(format!(
            "{ops} comparisons and operations; at most {}",
            state.limits.max_txn_ops
        )));
    }
    let keys =
        txn.compare.iter().map(|c| &c.key).chain(txn.success.iter().chain(&txn.failure).map(|op| match op {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Get { key } => key,
        }));
    for key in keys {
        check_key(state, Ok(Path(key.clone())))?;
    }
    for op in txn.success.iter().chain(&txn.failure) {
        if let TxnOp::Put { value, .. } = op {
            check_value(state, value.len())?;
        }
    }
    Ok(())
}

async fn txn(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<TxnRequest>, JsonRejection>,
) -> Result<Json<TxnResult>, ApiError> {
    let Json(txn) = body.map_err(json_error)?;
    let txn = Txn::from(txn);
    check_txn(&state, &txn)?;
    let command = Command { request: request_id(&headers)?, op: Op::Txn(txn) };
    let applied = state.raft.propose_or_forward(command).await.map_err(|e| state.error(e))?;
    match applied {
        Outcome::Txn { revision, succeeded, results } => Ok(Json(TxnResult { succeeded, results, revision })),
        Outcome::StaleRequest { latest } => Err(ApiError::bad_request(format!(
            "Request-Id is older than its session's latest request ({latest})"
        ))),
        Outcome::ResultNotKept { revision, succeeded } => Err(ApiError::result_not_kept(revision, succeeded)),
        other => Err(ApiError::bad_request(format!("unexpected outcome {other:?}"))),
    }
}

/// `POST /restore`: loads a backup (from `GET /backup`) into a new, empty
/// cluster, through the log.
async fn restore(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let backup = body.map_err(body_error)?;
    let command = Command { request: request_id(&headers)?, op: Op::Restore(backup) };
    match state.raft.propose_or_forward(command).await.map_err(|e| state.error(e))? {
        Outcome::Restored { keys, revision } => {
            Ok(Json(serde_json::json!({"keys": keys, "revision": revision})))
        }
        Outcome::RestoreRefused { reason } => {
            Err(ApiError::bad_request(format!("backup not restored: {reason}")))
        }
        other => Err(ApiError::bad_request(format!("unexpected outcome {other:?}"))),
    }
}
