//! The fault-injecting proxies on the Raft links: one per directed link
//! (node `from` dialing node `to`), so that cutting one cuts exactly one
//! direction.
//!
//! Why one per directed link is enough: both transports send only on the
//! connection the sender dialed (raft-net-tcp writes on its outbound
//! connections and reads on the inbound ones; raft-net-quic's client is the
//! sender on each connection), and every node is started with
//! `--peer-via` naming, for each peer, the proxy of its own link to it. A
//! TCP proxy forwards a connection's bytes both ways (the handshake's answer
//! comes back on it); a UDP proxy (QUIC) forwards datagrams both ways
//! between the dialer's socket and the peer.
//!
//! A link's [`LinkState`] says what it does now: `cut` refuses new
//! connections, closes open ones and drops every datagram; `delay_ms`
//! holds each chunk or datagram back; `drop_per_mille` drops datagrams, and
//! for TCP (a byte stream cannot lose bytes in the middle) closes the
//! connection, losing what was in flight, as a reset would.

use crate::Layout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What a directed link does to its traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Nothing passes.
    pub cut: bool,
    /// Each chunk (TCP) or datagram (UDP) waits this long.
    pub delay_ms: u64,
    /// Chance in a thousand of dropping a datagram, or a TCP connection.
    pub drop_per_mille: u32,
}

/// Every directed link's proxy. Dropping it stops them all.
pub struct Proxies {
    links: BTreeMap<(u64, u64), watch::Sender<LinkState>>,
    _tasks: JoinSet<()>,
}

impl Proxies {
    /// Binds a proxy for every ordered pair of the `layout`'s nodes,
    /// forwarding to the destination's Raft address: UDP when `udp`
    /// (QUIC), else TCP.
    pub async fn start(layout: &Layout, udp: bool, seed: u64) -> std::io::Result<Self> {
        let mut links = BTreeMap::new();
        let mut tasks = JoinSet::new();
        for from in layout.ids() {
            for to in layout.ids().filter(|&to| to != from) {
                let (tx, rx) = watch::channel(LinkState::default());
                let listen = layout.proxy(from, to);
                let target = layout.raft(to);
                let rng = ChaCha8Rng::seed_from_u64(seed ^ (from << 32) ^ to);
                if udp {
                    let front = UdpSocket::bind(listen).await?;
                    let back = UdpSocket::bind("127.0.0.1:0").await?;
                    back.connect(target).await?;
                    tasks.spawn(udp_link(front, back, rx, rng));
                } else {
                    let listener = TcpListener::bind(listen).await?;
                    tasks.spawn(tcp_link(listener, target, rx, rng));
                }
                links.insert((from, to), tx);
            }
        }
        Ok(Self { links, _tasks: tasks })
    }

    /// Sets what the link from `from` to `to` does.
    pub fn set(&self, from: u64, to: u64, state: LinkState) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.send_replace(state);
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&self, a: u64, b: u64) {
        let cut = LinkState { cut: true, ..LinkState::default() };
        self.set(a, b, cut);
        self.set(b, a, cut);
    }

    /// Every link back to normal.
    pub fn heal_all(&self) {
        for link in self.links.values() {
            link.send_replace(LinkState::default());
        }
    }

    /// The directed links, in order.
    pub fn links(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.links.keys().copied()
    }
}

async fn tcp_link(
    listener: TcpListener,
    target: SocketAddr,
    state: watch::Receiver<LinkState>,
    mut rng: ChaCha8Rng,
) {
    // The connections live in this set: stopping the link stops them.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
        };
        let Ok((inbound, _)) = accepted else { continue };
        if state.borrow().cut {
            drop(inbound);
            continue;
        }
        let seed = rng.random();
        connections.spawn(tcp_connection(inbound, target, state.clone(), seed));
    }
}

async fn tcp_connection(
    inbound: TcpStream,
    target: SocketAddr,
    state: watch::Receiver<LinkState>,
    seed: u64,
) {
    let Ok(outbound) = TcpStream::connect(target).await else { return };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    // Either direction ending ends both: the halves drop, the sockets close.
    tokio::select! {
        () = pump(in_read, out_write, state.clone(), ChaCha8Rng::seed_from_u64(seed)) => {}
        () = pump(out_read, in_write, state, ChaCha8Rng::seed_from_u64(!seed)) => {}
    }
}

async fn pump<R, W>(mut from: R, mut to: W, mut state: watch::Receiver<LinkState>, mut rng: ChaCha8Rng)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = state.changed() => {
                if changed.is_err() || state.borrow().cut {
                    return;
                }
                continue;
            }
        };
        let now = *state.borrow();
        if now.cut || rng.random_range(0..1000) < now.drop_per_mille {
            return;
        }
        if now.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(now.delay_ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Whether a datagram passes, and after how long.
fn verdict(state: &watch::Receiver<LinkState>, rng: &mut ChaCha8Rng) -> Option<u64> {
    let now = *state.borrow();
    (!now.cut && rng.random_range(0..1000) >= now.drop_per_mille).then_some(now.delay_ms)
}

async fn udp_link(front: UdpSocket, back: UdpSocket, state: watch::Receiver<LinkState>, mut rng: ChaCha8Rng) {
    let (front, back) = (Arc::new(front), Arc::new(back));
    // The dialer's socket: only the node this link belongs to sends here.
    let mut dialer: Option<SocketAddr> = None;
    let mut delayed = JoinSet::new();
    let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
    loop {
        tokio::select! {
            received = front.recv_from(&mut up) => {
                let Ok((n, from)) = received else { continue };
                dialer = Some(from);
                match verdict(&state, &mut rng) {
                    Some(0) => drop(back.send(&up[..n]).await),
                    Some(delay) => send_later(&mut delayed, back.clone(), None, up[..n].to_vec(), delay),
                    None => {}
                }
            }
            received = back.recv(&mut down) => {
                let (Ok(n), Some(to)) = (received, dialer) else { continue };
                match verdict(&state, &mut rng) {
                    Some(0) => drop(front.send_to(&down[..n], to).await),
                    Some(delay) => send_later(&mut delayed, front.clone(), Some(to), down[..n].to_vec(), delay),
                    None => {}
                }
            }
            Some(_) = delayed.join_next() => {}
        }
    }
}

fn send_later(
    tasks: &mut JoinSet<()>,
    socket: Arc<UdpSocket>,
    to: Option<SocketAddr>,
    data: Vec<u8>,
    delay_ms: u64,
) {
    tasks.spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = match to {
            Some(to) => socket.send_to(&data, to).await,
            None => socket.send(&data).await,
        };
    });
}

#[cfg(test)]
mod tests {
    //! Ports 25400 to 25499.
    use super::*;

    async fn echo_tcp(listener: TcpListener) {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    if socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    /// Whether a round trip through the link from 1 to 2 works on `socket`.
    async fn round_trip(socket: &mut TcpStream) -> bool {
        if socket.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        socket.read_exact(&mut buf).await.is_ok() && &buf == b"ping"
    }

    #[tokio::test]
    async fn a_cut_tcp_link_closes_its_connections_and_refuses_new_ones_until_healed() {
        let layout = Layout { base: 25400, nodes: 2 };
        tokio::spawn(echo_tcp(TcpListener::bind(layout.raft(2)).await.unwrap()));
        let proxies = Proxies::start(&layout, false, 1).await.unwrap();
        let mut open = TcpStream::connect(layout.proxy(1, 2)).await.unwrap();
        assert!(round_trip(&mut open).await);
        proxies.set(1, 2, LinkState { cut: true, ..LinkState::default() });
        assert!(!round_trip(&mut open).await, "an open connection survived the cut");
        let mut refused = TcpStream::connect(layout.proxy(1, 2)).await.unwrap();
        assert!(!round_trip(&mut refused).await, "a new connection passed the cut");
        let mut other_way = TcpStream::connect(layout.proxy(2, 1)).await.unwrap();
        assert!(
            !round_trip(&mut other_way).await,
            "nothing listens at node 1: the link 2 to 1 is not this one"
        );
        proxies.heal_all();
        let mut healed = TcpStream::connect(layout.proxy(1, 2)).await.unwrap();
        assert!(round_trip(&mut healed).await);
    }

    async fn echo(client: &UdpSocket) -> bool {
        let mut buf = [0u8; 64];
        let _ = client.send(b"ping").await;
        tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await.is_ok()
    }

    #[tokio::test]
    async fn a_cut_udp_link_drops_datagrams_until_healed() {
        let layout = Layout { base: 25450, nodes: 2 };
        let node = UdpSocket::bind(layout.raft(2)).await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = node.recv_from(&mut buf).await {
                let _ = node.send_to(&buf[..n], from).await;
            }
        });
        let proxies = Proxies::start(&layout, true, 1).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(layout.proxy(1, 2)).await.unwrap();
        assert!(echo(&client).await);
        proxies.set(1, 2, LinkState { cut: true, ..LinkState::default() });
        // Only ever passes wrongly on a machine too slow to echo in 500 ms;
        // a working cut cannot fail it.
        assert!(!echo(&client).await, "a datagram passed the cut");
        proxies.heal_all();
        assert!(echo(&client).await);
    }
}
