//! Benchmarks of raft-core with its backends, and `cluster-bench`, a
//! closed-loop load generator against an in-process cluster, a running
//! `raft-kv` cluster or etcd (see [`cli`] and BENCHMARKS.md); and
//! [`hand::HandCluster`], `RawNode`s driven by hand with no runtime; and
//! `bench-plot`, PNG plots of the load generator's results ([`plot`]).

#![forbid(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod floor;
pub mod hand;
pub mod load;
pub mod plot;
pub mod target;

pub use cluster::Cluster;
