//! The JSON the API answers with and accepts: one set of types for the
//! server, the CLI's `--json` output and the tests, so they never disagree.

use crate::state::{Check, Compare, Txn, TxnOp, TxnOpResult, Versioned};
use base64::Engine;
use raft_core::{Index, NodeId};
use serde::{Deserialize, Serialize};

/// A leader as errors and `/cluster` name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRef {
    /// Its node id.
    pub id: NodeId,
    /// Its API address, if the configuration records one.
    pub api: Option<String>,
}

/// A key's value and revision in JSON. Binary-safe: `value_base64` always
/// holds the exact bytes (standard base64, padded); `value` holds them as
/// text too when they are valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The key (absent where the key is implied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value as UTF-8 text, if it is.
    pub value: Option<String>,
    /// The value's bytes in base64.
    pub value_base64: String,
    /// The key's revision.
    pub revision: Index,
}

impl Item {
    /// The item for `versioned`, under `key` if given.
    pub fn of(key: Option<String>, versioned: &Versioned) -> Self {
        Self {
            key,
            value: std::str::from_utf8(&versioned.value).ok().map(String::from),
            value_base64: base64::engine::general_purpose::STANDARD.encode(&versioned.value),
            revision: versioned.revision,
        }
    }

    /// The value's bytes.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD.decode(&self.value_base64).ok()
    }
}

/// The answer to a write: the key's revision after it (for a delete: the
/// index of the entry that removed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The revision.
    pub revision: Index,
}

/// `POST /kv/{key}/cas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasRequest {
    /// The value the key must hold (`null`: absent).
    pub expected: Option<String>,
    /// The value to store (`null`: delete the key).
    pub new: Option<String>,
}

/// The answer to `GET /kv?prefix=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResult {
    /// The keys, in order, with their values.
    pub items: Vec<Item>,
    /// Whether more keys follow: ask again with `after` = `next_after`.
    pub more: bool,
    /// The last key of this page.
    pub next_after: Option<String>,
}

/// The answer to `POST /txn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResult {
    /// Whether every comparison held (the success branch ran).
    pub succeeded: bool,
    /// The results of the branch's operations, in order.
    pub results: Vec<TxnOpResult>,
    /// The index of the entry the transaction was applied at.
    pub revision: Index,
}

/// One member of the configuration, with what it reports of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its node id.
    pub id: NodeId,
    /// `voter` or `learner`.
    pub kind: String,
    /// Its Raft address.
    pub raft_addr: Option<String>,
    /// Its API address.
    pub api_addr: Option<String>,
    /// Its role (`leader`, `follower`, ..., or `unreachable`).
    pub role: String,
    /// Its term, as it reports.
    pub term: Option<u64>,
    /// Its commit index.
    pub commit: Option<Index>,
    /// Its applied index.
    pub applied: Option<Index>,
    /// How far its applied index is behind the highest commit index seen.
    pub lag: Option<Index>,
}

/// `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's id.
    pub cluster_id: String,
    /// The node that answered.
    pub node: NodeId,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<LeaderRef>,
    /// Whether the configuration is joint (a change in progress).
    pub joint: bool,
    /// The voters and learners, by id.
    pub members: Vec<MemberStatus>,
}

/// `GET /status`: what one node reports of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its node id.
    pub id: NodeId,
    /// The cluster's id.
    pub cluster_id: String,
    /// Its role.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit: Index,
    /// Its applied index.
    pub applied: Index,
    /// Its last log index.
    pub last_log_index: Index,
}

/// `POST /cluster/learners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddLearner {
    /// The new node's id.
    pub id: NodeId,
    /// Its Raft address.
    pub raft_addr: String,
    /// Its API address.
    pub api_addr: String,
}

/// `POST /cluster/membership`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMembership {
    /// The voters.
    pub voters: Vec<NodeId>,
    /// The learners.
    #[serde(default)]
    pub learners: Vec<NodeId>,
}

/// `POST /cluster/transfer-leader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLeader {
    /// The node to hand leadership to.
    pub to: NodeId,
}

/// The answer to a membership change or snapshot: the log entry it is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// The entry's index.
    pub index: Index,
    /// The entry's term.
    pub term: u64,
}

/// `POST /txn`: etcd-style, `{"compare": [...], "success": [...],
/// "failure": [...]}`; each comparison names a key and one of
/// `"value": "v"` (or `null`: absent), `"revision": {"op": "eq", "value": 5}`
/// (`eq`, `ne`, `lt`, `gt`; 0 stands for absent), `"exists": true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnRequest {
    /// The conditions, all of which must hold.
    #[serde(default)]
    pub compare: Vec<CompareJson>,
    /// What runs if they all hold.
    #[serde(default)]
    pub success: Vec<TxnOp>,
    /// What runs otherwise.
    #[serde(default)]
    pub failure: Vec<TxnOp>,
}

/// One comparison of a [`TxnRequest`], flattened (`{"key": .., "value": ..}`)
/// as JSON reads best; the log holds [`Compare`], which bincode can encode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompareJson {
    /// The key.
    pub key: String,
    /// What must hold of it.
    #[serde(flatten)]
    pub check: Check,
}

impl From<TxnRequest> for Txn {
    fn from(request: TxnRequest) -> Self {
        Txn {
            compare: request.compare.into_iter().map(|c| Compare { key: c.key, check: c.check }).collect(),
            success: request.success,
            failure: request.failure,
        }
    }
}
