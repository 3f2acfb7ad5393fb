//! The admin routes: health, readiness, status, membership, leadership
//! transfer, snapshots and backups.
//!
//! Membership changes and transfers are the leader's to make; a follower
//! that gets one relays it once to the leader's API (marked with
//! [`super::FORWARDED`], so a relay is never relayed again) and passes the
//! answer back.

use super::types::{
    AddLearner, ClusterStatus, LeaderRef, LogPosition, MemberStatus, NodeStatus, SetMembership,
    TransferLeader,
};
use super::{json_error, ApiError, Code, Shared, FORWARDED};
use crate::member::MemberAddr;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::runtime::{Metrics, ReadConsistency};
use raft_core::{LogId, NodeId, Role};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The name of a role in JSON.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre_candidate",
    }
}

pub(super) async fn health(State(state): State<Shared>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "up", "id": state.id}))
}

/// Ready once there is a leader and this node has applied everything the
/// leader had committed when asked: a linearizable read confirms both.
pub(super) async fn ready(State(state): State<Shared>) -> Result<Json<serde_json::Value>, ApiError> {
    let read = state.raft.read(ReadConsistency::Linearizable, |_| ());
    match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(Ok(())) => {
            let applied = state.raft.metrics().borrow().applied_index;
            Ok(Json(serde_json::json!({"ready": true, "applied": applied})))
        }
        Ok(Err(error)) => {
            Err(ApiError::new(Code::Unavailable, format!("not ready: {error}")).with_leader(state.leader()))
        }
        Err(_) => Err(ApiError::new(Code::Unavailable, "not ready: no leader confirmed the read in time")),
    }
}

fn node_status(state: &super::ApiState, m: &Metrics) -> NodeStatus {
    NodeStatus {
        id: state.id,
        cluster_id: format!("{:016x}", state.cluster_id),
        role: role_name(m.role).to_string(),
        term: m.term,
        leader: m.leader,
        commit: m.commit_index,
        applied: m.applied_index,
        last_log_index: m.last_log_index,
    }
}

pub(super) async fn status(State(state): State<Shared>) -> Json<NodeStatus> {
    let metrics = state.raft.metrics().borrow().clone();
    Json(node_status(&state, &metrics))
}

/// The configuration, and each member's own report of itself (asked at its
/// API, a second at most; a member that does not answer is `unreachable`).
pub(super) async fn cluster(State(state): State<Shared>) -> Json<ClusterStatus> {
    let metrics = state.raft.metrics().borrow().clone();
    let membership = &metrics.membership;
    let mut kinds: BTreeMap<NodeId, &str> = BTreeMap::new();
    for id in membership.voters.iter().chain(&membership.outgoing) {
        kinds.insert(*id, "voter");
    }
    for id in &membership.learners {
        kinds.insert(*id, "learner");
    }
    let mut asks = tokio::task::JoinSet::new();
    for &id in kinds.keys() {
        let addr = membership.address(id).and_then(|a| a.parse::<MemberAddr>().ok());
        let (state, own) = (state.clone(), node_status(&state, &metrics));
        asks.spawn(async move {
            if id == state.id {
                return (id, addr, Some(own));
            }
            let Some(addr) = addr else { return (id, None, None) };
            let url = format!("{}://{}/status", state.scheme, addr.api);
            let answer = state.http.get(url).timeout(Duration::from_secs(1)).send().await;
            let status = match answer {
                Ok(response) => response.json::<NodeStatus>().await.ok(),
                Err(_) => None,
            };
            (id, Some(addr), status)
        });
    }
    let mut answers = asks.join_all().await;
    answers.sort_by_key(|(id, _, _)| *id);
    let highest = answers.iter().filter_map(|(_, _, s)| s.as_ref().map(|s| s.commit)).max().unwrap_or(0);
    let members = answers
        .into_iter()
        .map(|(id, addr, status)| MemberStatus {
            id,
            kind: kinds[&id].to_string(),
            raft_addr: addr.map(|a| a.raft.to_string()),
            api_addr: addr.map(|a| a.api.to_string()),
            role: status.as_ref().map_or("unreachable".into(), |s| s.role.clone()),
            term: status.as_ref().map(|s| s.term),
            commit: status.as_ref().map(|s| s.commit),
            applied: status.as_ref().map(|s| s.applied),
            lag: status.as_ref().map(|s| highest.saturating_sub(s.applied)),
        })
        .collect();
    Json(ClusterStatus {
        cluster_id: format!("{:016x}", state.cluster_id),
        node: state.id,
        term: metrics.term,
        leader: state.leader(),
        joint: membership.is_joint(),
        members,
    })
}

/// Whether this node leads; if not, relays the request to the leader
/// (once) and returns its answer.
async fn relay_unless_leader<T: Serialize>(
    state: &Shared,
    headers: &HeaderMap,
    method: Method,
    path: &str,
    body: Option<&T>,
) -> Option<Result<Response, ApiError>> {
    let leader = state.raft.metrics().borrow().leader;
    if leader == Some(state.id) {
        return None;
    }
    let unavailable = |message: String| ApiError::new(Code::Unavailable, message).with_leader(state.leader());
    if headers.contains_key(FORWARDED) {
        return Some(Err(unavailable("relayed to a node that does not lead; retry".into())));
    }
    let Some(LeaderRef { api: Some(api), .. }) = state.leader() else {
        return Some(Err(unavailable("no leader known; retry".into())));
    };
    let mut request =
        state.http.request(method, format!("{}://{api}{path}", state.scheme)).header(FORWARDED, "1");
    if let Some(body) = body {
        request = request.json(body);
    }
    let answer = match request.timeout(state.admin_timeout + Duration::from_secs(5)).send().await {
        Ok(answer) => answer,
        Err(error) if error.is_connect() => {
            return Some(Err(unavailable(format!("cannot reach the leader: {error}"))))
        }
        Err(error) => {
            return Some(Err(ApiError::new(
                Code::OutcomeUnknown,
                format!("the leader did not answer: {error}"),
            )))
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = answer.bytes().await.unwrap_or_default();
    Some(Ok((status, [("content-type", "application/json")], Body::from(bytes)).into_response()))
}

/// Bounds an admin wait: past it, the change may or may not complete.
async fn bounded<T>(
    state: &Shared,
    work: impl std::future::Future<Output = Result<T, raft_core::runtime::RaftError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(state.admin_timeout, work).await {
        Ok(result) => result.map_err(|e| state.error(e)),
        Err(_) => {
            Err(ApiError::new(Code::OutcomeUnknown, "the change did not complete in time; it may still"))
        }
    }
}

fn position(id: LogId) -> Json<LogPosition> {
    Json(LogPosition { index: id.index, term: id.term })
}

pub(super) async fn add_learner(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<AddLearner>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(add) = body.map_err(json_error)?;
    let addr: MemberAddr = format!("{}@{}", add.raft_addr, add.api_addr)
        .parse()
        .map_err(|_| ApiError::bad_request("raft_addr and api_addr must be HOST:PORT socket addresses"))?;
    if add.id == 0 {
        return Err(ApiError::bad_request("node id 0 is reserved"));
    }
    if let Some(relayed) =
        relay_unless_leader(&state, &headers, Method::POST, "/cluster/learners", Some(&add)).await
    {
        return relayed;
    }
    let added = bounded(&state, state.raft.add_learner(add.id, Some(addr.to_string()), true)).await?;
    tracing::info!(learner = add.id, %addr, "learner added and caught up");
    Ok(position(added).into_response())
}

pub(super) async fn set_membership(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<SetMembership>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(set) = body.map_err(json_error)?;
    if let Some(relayed) =
        relay_unless_leader(&state, &headers, Method::POST, "/cluster/membership", Some(&set)).await
    {
        return relayed;
    }
    let changed =
        bounded(&state, state.raft.change_membership(set.voters.clone(), set.learners.clone())).await?;
    tracing::info!(voters = ?set.voters, learners = ?set.learners, "membership changed");
    Ok(position(changed).into_response())
}

/// `POST /cluster/members/{id}/promote`: makes learner `id` a voter. The
/// leader computes the new configuration from the one it has in force, so
/// a client never sends a list built from another node's (possibly stale)
/// view, which could drop a member added meanwhile.
pub(super) async fn promote_member(
    State(state): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(format!("invalid node id: {}", e.body_text())))?;
    let path = format!("/cluster/members/{id}/promote");
    if let Some(relayed) = relay_unless_leader::<()>(&state, &headers, Method::POST, &path, None).await {
        return relayed;
    }
    let membership = state.raft.metrics().borrow().membership.clone();
    if membership.is_joint() {
        let message = "a membership change is in progress; retry";
        return Err(ApiError::new(Code::Unavailable, message).with_leader(state.leader()));
    }
    if !membership.learners.contains(&id) {
        let what = if membership.voters.contains(&id) { "already a voter" } else { "not a member" };
        return Err(
            ApiError::not_found(format!("node {id} is {what}, not a learner")).with_leader(state.leader())
        );
    }
    let mut voters = membership.voters.clone();
    voters.insert(id);
    let learners = membership.learners.iter().copied().filter(|&l| l != id);
    let promoted = bounded(&state, state.raft.change_membership(voters, learners)).await?;
    tracing::info!(node = id, "learner promoted to voter");
    Ok(position(promoted).into_response())
}

pub(super) async fn remove_member(
    State(state): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(format!("invalid node id: {}", e.body_text())))?;
    let known = state.raft.metrics().borrow().membership.contains(id);
    if !known {
        return Err(ApiError::not_found(format!("node {id} is not a member")).with_leader(state.leader()));
    }
    let path = format!("/cluster/members/{id}");
    if let Some(relayed) = relay_unless_leader::<()>(&state, &headers, Method::DELETE, &path, None).await {
        return relayed;
    }
    let removed = bounded(&state, state.raft.remove_node(id)).await?;
    tracing::info!(node = id, "member removed");
    Ok(position(removed).into_response())
}

pub(super) async fn transfer_leader(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<TransferLeader>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(transfer) = body.map_err(json_error)?;
    let path = "/cluster/transfer-leader";
    if let Some(relayed) = relay_unless_leader(&state, &headers, Method::POST, path, Some(&transfer)).await {
        return relayed;
    }
    bounded(&state, state.raft.transfer_leadership(transfer.to)).await?;
    // Wait (bounded) until the target leads, so the answer means it did.
    let mut metrics = state.raft.metrics();
    let moved = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if metrics.borrow_and_update().leader == Some(transfer.to) {
                return true;
            }
            if metrics.changed().await.is_err() {
                return false;
            }
        }
    })
    .await;
    match moved {
        Ok(true) => Ok(Json(serde_json::json!({"leader": transfer.to})).into_response()),
        _ => Err(ApiError::new(
            Code::OutcomeUnknown,
            format!("node {} did not take over in time", transfer.to),
        )),
    }
}

pub(super) async fn snapshot(State(state): State<Shared>) -> Result<Json<LogPosition>, ApiError> {
    let built = bounded(&state, state.raft.trigger_snapshot()).await?;
    tracing::info!(index = built.index, term = built.term, "snapshot built on request");
    Ok(position(built))
}

/// A consistent snapshot of the state machine (as of a linearizable read),
/// in the state machine's snapshot format, streamed out piece by piece.
pub(super) async fn backup(State(state): State<Shared>) -> Result<Response, ApiError> {
    let encoded = state.raft.read(ReadConsistency::Linearizable, |kv| kv.encode_snapshot()).await;
    let encoded = encoded.map_err(|e| state.error(e))?;
    let data =
        encoded.map_err(|e| ApiError::new(Code::Unavailable, format!("cannot encode the backup: {e}")))?;
    let pieces = data.pieces().to_vec().into_iter().map(Ok::<_, std::convert::Infallible>);
    let body = Body::from_stream(futures_util::stream::iter(pieces));
    Ok(([("content-type", "application/octet-stream")], body).into_response())
}

/// Prometheus text: the API's latency histograms, raft-core's counters and
/// histograms (see `raft_core::runtime::metrics`), and gauges of the node's
/// Raft state, set from its metrics as this is asked.
pub(super) async fn metrics(State(state): State<Shared>) -> Result<Response, ApiError> {
    let Some(prometheus) = &state.prometheus else {
        return Err(ApiError::not_found("metrics are not recorded in this process"));
    };
    let m = state.raft.metrics().borrow().clone();
    let node = state.id.to_string();
    let gauges = [
        ("raft_term", m.term as f64),
        ("raft_commit_index", m.commit_index as f64),
        ("raft_applied_index", m.applied_index as f64),
        ("raft_last_log_index", m.last_log_index as f64),
        ("raft_snapshot_index", m.snapshot.index as f64),
        ("raft_is_leader", f64::from(u8::from(m.role == Role::Leader))),
        ("raft_leader_id", m.leader.unwrap_or(0) as f64),
        ("raft_voters", m.membership.voters.len() as f64),
        ("raft_learners", m.membership.learners.len() as f64),
    ];
    for (name, value) in gauges {
        metrics::gauge!(name, "node" => node.clone()).set(value);
    }
    let text = prometheus.render();
    Ok(([("content-type", "text/plain; version=0.0.4")], text).into_response())
}
