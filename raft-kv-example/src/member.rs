//! Where a member can be reached: its Raft address and its API address,
//! stored together in the cluster configuration as one string,
//! `RAFT_ADDR@API_ADDR` (the form `--initial-members` takes).
//!
//! Why in the configuration's address rather than a table of the key-value
//! map: the configuration is the one place every node already learns a
//! member from, at the same log index as the member itself, through
//! snapshots too; a separate table would be written by a second proposal
//! that could be lost or reordered against the membership change, leaving a
//! member without an API address. The transports want a plain socket
//! address, so [`KvTransport`] hands them only the Raft half.

use raft_core::runtime::{Envelope, Transport};
use raft_core::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;

/// A member's two addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberAddr {
    /// Where its peers reach its Raft transport.
    pub raft: SocketAddr,
    /// Where clients reach its HTTP API.
    pub api: SocketAddr,
}

impl std::fmt::Display for MemberAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.raft, self.api)
    }
}

/// A member address that is not `RAFT_ADDR@API_ADDR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not RAFT_HOST:PORT@API_HOST:PORT")]
pub struct BadMemberAddr(pub String);

impl FromStr for MemberAddr {
    type Err = BadMemberAddr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMemberAddr(s.to_string());
        let (raft, api) = s.split_once('@').ok_or_else(bad)?;
        Ok(Self { raft: raft.parse().map_err(|_| bad())?, api: api.parse().map_err(|_| bad())? })
    }
}

/// Parses `--initial-members`: `1=RAFT@API,2=RAFT@API,...`.
pub fn parse_members(s: &str) -> Result<BTreeMap<NodeId, MemberAddr>, String> {
    let mut members = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("{part:?} is not ID=RAFT@API"))?;
        let id: NodeId = id.trim().parse().map_err(|_| format!("{id:?} is not a node id"))?;
        if id == 0 {
            return Err("node id 0 is reserved".into());
        }
        let addr: MemberAddr = addr.trim().parse().map_err(|e: BadMemberAddr| e.to_string())?;
        if members.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if members.is_empty() {
        return Err("no members given".into());
    }
    Ok(members)
}

/// The transport a node runs: TCP (plain or TLS) or QUIC.
#[derive(Clone)]
pub enum Inner {
    /// Over TCP.
    Tcp(raft_net_tcp::TcpTransport),
    /// Over TCP with mutual TLS.
    TcpTls(raft_net_tcp::TcpTransport<raft_net_tcp::TlsLayer>),
    /// Over QUIC, with mutual TLS.
    Quic(raft_net_quic::QuicTransport),
}

/// Parses the hidden test flag `--peer-via`: `ID=HOST:PORT,...`, the
/// address to dial each listed peer at instead of the one its
/// configuration names (the fault-test tool puts a proxy there).
pub fn parse_peer_via(s: &str) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut via = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("{part:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id.trim().parse().map_err(|_| format!("{id:?} is not a node id"))?;
        let addr: SocketAddr = addr.trim().parse().map_err(|_| format!("{addr:?} is not HOST:PORT"))?;
        if via.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    Ok(via)
}

/// A transport that reads the Raft half of the configuration's addresses.
#[derive(Clone)]
pub struct KvTransport {
    /// The transport itself.
    pub inner: Inner,
    /// Peers dialed at an address of their own rather than the
    /// configuration's (`--peer-via`; empty outside fault tests).
    pub via: BTreeMap<NodeId, SocketAddr>,
}

impl KvTransport {
    /// Wraps `inner`, dialing the peers in `via` at the addresses given
    /// there.
    pub fn new(inner: Inner, via: BTreeMap<NodeId, SocketAddr>) -> Self {
        Self { inner, via }
    }

    /// Stops listening and closes every connection.
    pub fn close(&self) {
        match &self.inner {
            Inner::Tcp(t) => t.close(),
            Inner::TcpTls(t) => t.close(),
            Inner::Quic(t) => t.close(),
        }
    }

    /// Sets a peer's Raft address.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        let addr = self.via.get(&id).copied().unwrap_or(addr);
        match &self.inner {
            Inner::Tcp(t) => t.set_peer(id, addr),
            Inner::TcpTls(t) => t.set_peer(id, addr),
            Inner::Quic(t) => t.set_peer(id, addr),
        }
    }
}

impl Transport for KvTransport {
    fn send(&self, envelope: Envelope) {
        match &self.inner {
            Inner::Tcp(t) => t.send(envelope),
            Inner::TcpTls(t) => t.send(envelope),
            Inner::Quic(t) => t.send(envelope),
        }
    }

    fn update_addresses(&self, addresses: &BTreeMap<NodeId, String>) {
        let raft = addresses
            .iter()
            .filter_map(|(&id, addr)| match addr.parse::<MemberAddr>() {
                Ok(addr) => Some((id, self.via.get(&id).copied().unwrap_or(addr.raft).to_string())),
                Err(error) => {
                    tracing::warn!(id, %error, "configuration address ignored");
                    None
                }
            })
            .collect();
        match &self.inner {
            Inner::Tcp(t) => t.update_addresses(&raft),
            Inner::TcpTls(t) => t.update_addresses(&raft),
            Inner::Quic(t) => t.update_addresses(&raft),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses_round_trip_and_bad_ones_are_refused() {
        let addr: MemberAddr = "127.0.0.1:7001@127.0.0.1:8001".parse().unwrap();
        assert_eq!(addr.to_string().parse::<MemberAddr>().unwrap(), addr);
        for bad in ["127.0.0.1:7001", "x@127.0.0.1:1", "127.0.0.1:1@", "@"] {
            assert!(bad.parse::<MemberAddr>().is_err(), "{bad}");
        }
        let members = parse_members("1=127.0.0.1:1@127.0.0.1:2, 2=127.0.0.1:3@127.0.0.1:4").unwrap();
        assert_eq!(members.len(), 2);
        assert!(parse_members("1=127.0.0.1:1@127.0.0.1:2,1=127.0.0.1:3@127.0.0.1:4").is_err());
        assert!(parse_members("0=127.0.0.1:1@127.0.0.1:2").is_err());
        assert!(parse_members("").is_err());
        assert!(parse_members("a=b").is_err());
    }

    #[test]
    fn peer_via_parses_and_refuses_bad_input() {
        let via = parse_peer_via("2=127.0.0.1:9002, 3=127.0.0.1:9003").unwrap();
        assert_eq!(via.get(&3), Some(&"127.0.0.1:9003".parse().unwrap()));
        assert!(parse_peer_via("").unwrap().is_empty());
        for bad in ["2", "x=127.0.0.1:1", "2=nowhere", "2=127.0.0.1:1,2=127.0.0.1:2"] {
            assert!(parse_peer_via(bad).is_err(), "{bad}");
        }
    }
}
