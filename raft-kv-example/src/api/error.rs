//! The API's one error type, and the JSON every error answer carries:
//! `{"error": CODE, "message": ..., "leader": {"id": .., "api": ..}}`.
//!
//! Each code says what the client knows: `unavailable` means the request
//! was definitely not applied (retry anywhere), `outcome_unknown` that it
//! may or may not have been (retry with the same `Request-Id` to find out).

use super::types::{Item, LeaderRef};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::runtime::RaftError;
use raft_core::{MembershipChangeError, TransferError};
use serde::{Deserialize, Serialize};

/// The error codes, each with one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// 404: no such key (or member, or route).
    NotFound,
    /// 409: a compare-and-set found something else.
    CasFailed,
    /// 400: the request is malformed.
    BadRequest,
    /// 413: the body, key or value is over its limit.
    PayloadTooLarge,
    /// 503: not applied; safe to retry.
    Unavailable,
    /// 504: may or may not have been applied.
    OutcomeUnknown,
    /// 410: a retry of a request that was applied once, whose result was
    /// too large for its session to keep; it was not applied again.
    ResultNotKept,
}

impl Code {
    /// The HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::CasFailed => StatusCode::CONFLICT,
            Code::BadRequest => StatusCode::BAD_REQUEST,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
            Code::ResultNotKept => StatusCode::GONE,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, as a code.
    pub error: Code,
    /// What went wrong, for people.
    pub message: String,
    /// The leader the node knows of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderRef>,
    /// For `cas_failed`: what the key holds (`null`: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Option<Item>>,
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError(pub Box<ErrorBody>);

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody { error: code, message: message.into(), leader: None, current: None }))
    }

    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// A 410 `result_not_kept`: the retried request was applied at
    /// `revision` (its comparison held if `succeeded`), and not again.
    pub fn result_not_kept(revision: u64, succeeded: bool) -> Self {
        let held = if succeeded { "held" } else { "did not hold" };
        Self::new(
            Code::ResultNotKept,
            format!(
                "this Request-Id was applied once, at revision {revision} (its comparison {held}), and not again; \
                 its result was too large for the session to keep: read the keys to see it"
            ),
        )
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// A 409 with what the key holds.
    pub fn cas_failed(current: Option<Item>) -> Self {
        let mut error = Self::new(Code::CasFailed, "the comparison failed; nothing was changed");
        error.0.current = Some(current);
        error
    }

    /// Names the leader the answering node knows of.
    pub fn with_leader(mut self, leader: Option<LeaderRef>) -> Self {
        self.0.leader = leader;
        self
    }
}

impl From<RaftError> for ApiError {
    fn from(error: RaftError) -> Self {
        let message = error.to_string();
        let code = match &error {
            RaftError::NotLeader { .. }
            | RaftError::NotApplied
            | RaftError::ShutDown
            | RaftError::Timeout => Code::Unavailable,
            RaftError::OutcomeUnknown | RaftError::Failed(_) | RaftError::Response(_) => Code::OutcomeUnknown,
            RaftError::Encode(_) | RaftError::Read(_) => Code::BadRequest,
            RaftError::Transfer(TransferError::NotLeader { .. }) => Code::Unavailable,
            RaftError::Transfer(TransferError::UnknownNode(_)) => Code::NotFound,
            RaftError::Transfer(_) => Code::BadRequest,
            RaftError::Membership(change) => match change {
                MembershipChangeError::NotLeader { .. }
                | MembershipChangeError::ChangeInProgress
                | MembershipChangeError::TransferInProgress
                | MembershipChangeError::NotCaughtUp { .. } => Code::Unavailable,
                _ => Code::BadRequest,
            },
        };
        Self::new(code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0.error.status(), Json(*self.0)).into_response()
    }
}
