//! The handshake that opens every connection, before any Raft message.
//!
//! The dialer sends a [`Hello`] naming its cluster, itself, the node it
//! means to reach and the [`Channel`] the connection carries; the acceptor
//! checks it and answers with its own `Hello` (which the dialer checks in
//! turn) or a [`Refusal`], then closes. The acceptor only accepts dialers
//! it knows as peers (whose address it was given): a node cannot talk to a
//! peer it cannot answer. Both frames use the project codec
//! ([`raft_core::codec`]) with a limit of [`MAX_HANDSHAKE_BYTES`], so a
//! hostile length prefix is refused from its four header bytes.
//!
//! The invariant the transport keeps: no message is read from a connection
//! until both sides have checked each other's cluster id and node id, and
//! every message on it must then be from the node the handshake named, to
//! the node that accepted it.

use crate::layer::PeerRejected;
use bytes::BytesMut;
use raft_core::codec::{encode_frame, FrameDecoder, FrameError};
use raft_core::NodeId;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The first bytes of every [`Hello`]: "this is a raft-net-tcp peer".
pub const MAGIC: [u8; 4] = *b"RAFT";

/// The largest handshake frame accepted (a `Hello` takes about 30 bytes).
pub const MAX_HANDSHAKE_BYTES: usize = 256;

/// What a connection carries. Snapshot chunks travel on their own
/// connection so that heartbeats are never stuck behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// Every envelope but snapshot chunks (forwarded requests included).
    Messages,
    /// [`raft_core::MessageBody::InstallSnapshot`] chunks.
    Snapshots,
}

/// A node introducing itself on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The cluster the sender belongs to.
    pub cluster_id: u64,
    /// The sender.
    pub from: NodeId,
    /// The node the sender means to reach.
    pub to: NodeId,
    /// What the connection carries.
    pub channel: Channel,
}

impl Hello {
    /// The `Hello` of node `from` of cluster `cluster_id`, reaching `to`.
    pub fn new(cluster_id: u64, from: NodeId, to: NodeId, channel: Channel) -> Self {
        Self { magic: MAGIC, cluster_id, from, to, channel }
    }

    /// Checks a `Hello` that node `me` of cluster `cluster_id` received.
    pub fn check(&self, cluster_id: u64, me: NodeId) -> Result<(), HandshakeError> {
        if self.magic != MAGIC {
            return Err(HandshakeError::NotRaft);
        }
        if self.cluster_id != cluster_id {
            return Err(HandshakeError::WrongCluster { ours: cluster_id, theirs: self.cluster_id });
        }
        if self.to != me {
            return Err(HandshakeError::WrongNode { expected: self.to, actual: me });
        }
        if self.from == me || self.from == 0 {
            return Err(HandshakeError::BadSender(self.from));
        }
        Ok(())
    }
}

/// Why the acceptor refused a connection (sent back to the dialer so that
/// both sides log the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The first frame was not a `Hello` with the right magic.
    NotRaft,
    /// The dialer belongs to another cluster.
    WrongCluster,
    /// The dialer meant to reach another node.
    WrongNode,
    /// The dialer claims an id it cannot have (0, or the acceptor's own).
    BadSender,
    /// The acceptor does not know the dialer as a peer.
    UnknownSender,
    /// The dialer could not prove it is the node it claims (with TLS: its
    /// certificate names another node).
    Unauthenticated,
}

/// A handshake frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// A node introducing itself (the dialer first, then the acceptor).
    Hello(Hello),
    /// The acceptor refuses the connection and closes it.
    Refused(Refusal),
}

/// Why a handshake failed. The connection is closed either way.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The handshake frame is malformed, too large or of another version.
    #[error("malformed handshake: {0}")]
    Frame(#[from] FrameError),
    /// The peer does not speak this protocol.
    #[error("the peer is not a raft-net-tcp node")]
    NotRaft,
    /// The peer belongs to another cluster.
    #[error("the peer belongs to cluster {theirs}, this node to cluster {ours}")]
    WrongCluster {
        /// This node's cluster.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// The connection reached a node other than the one meant.
    #[error("node {expected} was expected at this address, but node {actual} answered")]
    WrongNode {
        /// The node the dialer meant to reach.
        expected: NodeId,
        /// The node that answered.
        actual: NodeId,
    },
    /// The peer claims an id it cannot have (0, or this node's own).
    #[error("the peer claims node id {0}, which it cannot have")]
    BadSender(NodeId),
    /// The peer claims to be a node this node does not know as a peer.
    #[error("node {0} is not a known peer of this node")]
    UnknownSender(NodeId),
    /// The stream layer refused the node id the peer claims (see
    /// [`crate::StreamLayer::verify_peer`]).
    #[error(transparent)]
    Unauthenticated(#[from] PeerRejected),
    /// The answer did not match the question (another channel, or a
    /// `Hello` where none was expected).
    #[error("unexpected handshake frame: {0:?}")]
    Unexpected(Handshake),
    /// The acceptor refused the connection.
    #[error("the peer refused the connection: {0:?}")]
    Refused(Refusal),
    /// The connection closed before the handshake ended.
    #[error("the connection closed during the handshake")]
    Closed,
    /// The handshake did not finish in time.
    #[error("the handshake timed out")]
    TimedOut,
    /// Reading or writing failed.
    #[error("i/o error during the handshake: {0}")]
    Io(#[from] std::io::Error),
}

impl HandshakeError {
    /// The refusal to send back to a dialer whose `Hello` failed the check.
    fn refusal(&self) -> Option<Refusal> {
        match self {
            HandshakeError::NotRaft | HandshakeError::Frame(_) | HandshakeError::Unexpected(_) => {
                Some(Refusal::NotRaft)
            }
            HandshakeError::WrongCluster { .. } => Some(Refusal::WrongCluster),
            HandshakeError::WrongNode { .. } => Some(Refusal::WrongNode),
            HandshakeError::BadSender(_) => Some(Refusal::BadSender),
            HandshakeError::UnknownSender(_) => Some(Refusal::UnknownSender),
            HandshakeError::Unauthenticated(_) => Some(Refusal::Unauthenticated),
            _ => None,
        }
    }
}

/// Encodes `handshake` as one frame.
pub fn encode(handshake: &Handshake) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(64);
    // A handshake is a few fixed-size integers: it always encodes.
    if encode_frame(handshake, &mut buffer).is_err() {
        buffer.clear();
    }
    buffer
}

/// Takes a handshake frame off the front of `buffer`: `Ok(None)` while it
/// is incomplete, an error as soon as it cannot be one.
pub fn decode(buffer: &mut BytesMut) -> Result<Option<Handshake>, HandshakeError> {
    Ok(FrameDecoder::new(MAX_HANDSHAKE_BYTES).decode(buffer)?)
}

/// Reads one handshake frame; bytes read past it stay in `buffer`.
async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut BytesMut,
) -> Result<Handshake, HandshakeError> {
    loop {
        if let Some(handshake) = decode(buffer)? {
            return Ok(handshake);
        }
        buffer.reserve(MAX_HANDSHAKE_BYTES);
        if stream.read_buf(buffer).await? == 0 {
            return Err(HandshakeError::Closed);
        }
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, handshake: &Handshake) -> std::io::Result<()> {
    stream.write_all(&encode(handshake)).await?;
    stream.flush().await
}

/// The dialer's side: sends `hello` on `stream` and checks the answer.
/// Bound it with a timeout: a peer that never answers never returns.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    hello: Hello,
) -> Result<(), HandshakeError> {
    write(stream, &Handshake::Hello(hello)).await?;
    let mut buffer = BytesMut::new();
    match read(stream, &mut buffer).await? {
        Handshake::Hello(answer) => {
            answer.check(hello.cluster_id, hello.from)?;
            if answer.from != hello.to {
                return Err(HandshakeError::WrongNode { expected: hello.to, actual: answer.from });
            }
            if answer.channel != hello.channel {
                return Err(HandshakeError::Unexpected(Handshake::Hello(answer)));
            }
            Ok(())
        }
        Handshake::Refused(refusal) => Err(HandshakeError::Refused(refusal)),
    }
}

/// The acceptor's side, for node `me` of cluster `cluster_id`: reads and
/// checks the dialer's `Hello` (its sender must be `known`) and answers it.
/// Returns the `Hello` and any bytes read past it. Bound it with a timeout.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cluster_id: u64,
    me: NodeId,
    known: impl Fn(NodeId) -> bool,
) -> Result<(Hello, BytesMut), HandshakeError> {
    accept_verified(stream, cluster_id, me, known, |_, _| Ok(())).await
}

/// [`accept`], with `verify` also checking the dialer's claim to its id
/// against the stream (its TLS certificate, say) before the `Hello` is
/// answered.
pub(crate) async fn accept_verified<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cluster_id: u64,
    me: NodeId,
    known: impl Fn(NodeId) -> bool,
    verify: impl FnOnce(&S, NodeId) -> Result<(), PeerRejected>,
) -> Result<(Hello, BytesMut), HandshakeError> {
    let mut buffer = BytesMut::new();
    let checked = match read(stream, &mut buffer).await {
        Ok(Handshake::Hello(hello)) => hello.check(cluster_id, me).and_then(|()| {
            if !known(hello.from) {
                return Err(HandshakeError::UnknownSender(hello.from));
            }
            verify(stream, hello.from)?;
            Ok(hello)
        }),
        Ok(other) => Err(HandshakeError::Unexpected(other)),
        Err(error) => Err(error),
    };
    match checked {
        Ok(hello) => {
            let answer = Hello::new(cluster_id, me, hello.from, hello.channel);
            write(stream, &Handshake::Hello(answer)).await?;
            Ok((hello, buffer))
        }
        Err(error) => {
            if let Some(refusal) = error.refusal() {
                // Best effort: the dialer learns why; the connection closes anyway.
                let _ = write(stream, &Handshake::Refused(refusal)).await;
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_round_trip() {
        let hello = Handshake::Hello(Hello::new(7, 1, 2, Channel::Snapshots));
        let mut buffer = BytesMut::from(&encode(&hello)[..]);
        assert_eq!(decode(&mut buffer).unwrap(), Some(hello));
        assert!(buffer.is_empty());
        let refused = Handshake::Refused(Refusal::WrongCluster);
        assert_eq!(decode(&mut BytesMut::from(&encode(&refused)[..])).unwrap(), Some(refused));
    }

    #[test]
    fn checks_name_the_problem() {
        let hello = Hello::new(7, 1, 2, Channel::Messages);
        assert!(hello.check(7, 2).is_ok());
        assert!(matches!(hello.check(8, 2), Err(HandshakeError::WrongCluster { ours: 8, theirs: 7 })));
        assert!(matches!(hello.check(7, 3), Err(HandshakeError::WrongNode { expected: 2, actual: 3 })));
        assert!(matches!(
            Hello::new(7, 2, 2, Channel::Messages).check(7, 2),
            Err(HandshakeError::BadSender(2))
        ));
        let not_raft = Hello { magic: *b"HTTP", ..hello };
        assert!(matches!(not_raft.check(7, 2), Err(HandshakeError::NotRaft)));
    }

    #[test]
    fn an_oversized_handshake_is_refused_from_its_header() {
        let mut buffer = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0x7F][..]);
        assert!(matches!(decode(&mut buffer), Err(HandshakeError::Frame(FrameError::TooLarge { .. }))));
    }

    #[tokio::test]
    async fn dial_and_accept_agree_or_both_refuse() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let dialer = tokio::spawn(async move { dial(&mut a, Hello::new(7, 1, 2, Channel::Messages)).await });
        let (hello, rest) = accept(&mut b, 7, 2, |_| true).await.unwrap();
        assert_eq!((hello.from, hello.channel, rest.len()), (1, Channel::Messages, 0));
        assert!(dialer.await.unwrap().is_ok());

        let (mut a, mut b) = tokio::io::duplex(1024);
        let dialer = tokio::spawn(async move { dial(&mut a, Hello::new(8, 1, 2, Channel::Messages)).await });
        assert!(matches!(accept(&mut b, 7, 2, |_| true).await, Err(HandshakeError::WrongCluster { .. })));
        assert!(matches!(dialer.await.unwrap(), Err(HandshakeError::Refused(Refusal::WrongCluster))));

        let (mut a, mut b) = tokio::io::duplex(1024);
        let dialer = tokio::spawn(async move { dial(&mut a, Hello::new(7, 5, 2, Channel::Messages)).await });
        assert!(matches!(accept(&mut b, 7, 2, |id| id != 5).await, Err(HandshakeError::UnknownSender(5))));
        assert!(matches!(dialer.await.unwrap(), Err(HandshakeError::Refused(Refusal::UnknownSender))));
    }

    #[tokio::test]
    async fn a_claim_the_layer_rejects_is_refused_before_the_answer() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let dialer = tokio::spawn(async move { dial(&mut a, Hello::new(7, 1, 2, Channel::Messages)).await });
        let reject = |_: &tokio::io::DuplexStream, claimed| {
            Err(PeerRejected { claimed, reason: "a certificate of node 3".into() })
        };
        let accepted = accept_verified(&mut b, 7, 2, |_| true, reject).await;
        assert!(matches!(accepted, Err(HandshakeError::Unauthenticated(PeerRejected { claimed: 1, .. }))));
        assert!(matches!(dialer.await.unwrap(), Err(HandshakeError::Refused(Refusal::Unauthenticated))));
    }
}
