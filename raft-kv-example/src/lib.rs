//! `raft-kv`: a replicated key-value node on `raft-core`.
//!
//! Three layers, each its own module: the state machine ([`state`]: keys
//! with revisions, client sessions for exactly-once writes, snapshots), the
//! HTTP API in front of one `Raft<KvState>` handle, and the process around
//! it (flags, configuration, the cluster supervisor, the client CLI).

#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod member;
pub mod node;
pub mod state;
pub mod tls;
