//! HTTPS for the API: the node's listener, and the clients that call it.
//!
//! `raft-kv certs` writes, beside the Raft links' certificates, an API
//! certificate per node (`api-<id>.pem`, naming `localhost`, `127.0.0.1`,
//! `::1` and the hosts given with `--api-hosts`) and one client certificate
//! (`client.pem`). A node started with `--api-tls-dir DIR` serves its API
//! over TLS with `DIR/api-<id>.pem`; with `--api-client-ca FILE` it also
//! requires every client to present a certificate that CA signed, so only
//! holders of a cluster-signed certificate can read or write. A node calls
//! other nodes' APIs (relays to the leader, `--join`) over HTTPS trusting
//! `DIR/ca.pem` and presenting its own API certificate.

use crate::node::Fatal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The CA certificate's name in a TLS directory.
pub const CA_FILE: &str = "ca.pem";
/// The client certificate `raft-kv certs` makes, and its key.
pub const CLIENT_CERT_FILE: &str = "client.pem";
/// The client key's name.
pub const CLIENT_KEY_FILE: &str = "client-key.pem";

/// The stem of node `id`'s API certificate files (`<stem>.pem`,
/// `<stem>-key.pem`).
pub fn api_stem(id: u64) -> String {
    format!("api-{id}")
}

fn read(path: &Path) -> Result<Vec<u8>, Fatal> {
    std::fs::read(path).map_err(|e| Fatal(format!("cannot read {}: {e}", path.display())))
}

/// A node's API TLS: what it serves with, and how it calls its peers.
pub struct NodeTls {
    /// The server side.
    pub acceptor: TlsAcceptor,
    /// The client side, for calls to other nodes' APIs.
    pub client: rustls::ClientConfig,
}

impl NodeTls {
    /// Loads node `id`'s API identity from `dir`, requiring client
    /// certificates signed by the CA in `client_ca` if given.
    pub fn load(dir: &Path, id: u64, client_ca: Option<&Path>) -> Result<Self, Fatal> {
        let cert = read(&dir.join(format!("{}.pem", api_stem(id))))?;
        let key = read(&dir.join(format!("{}-key.pem", api_stem(id))))?;
        let ca = read(&dir.join(CA_FILE))?;
        let client_ca = client_ca.map(read).transpose()?;
        let what = |e: raft_net_tls::TlsError| Fatal(format!("API TLS in {}: {e}", dir.display()));
        let server = raft_net_tls::https::server_config(&cert, &key, client_ca.as_deref()).map_err(what)?;
        let client = raft_net_tls::https::client_config(&ca, Some((&cert, &key))).map_err(what)?;
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(server)), client })
    }
}

/// What a CLI user gives to reach an API over HTTPS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CA that signed the servers' certificates.
    pub cacert: Option<PathBuf>,
    /// A client certificate, for servers that require one.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
}

impl ClientTls {
    /// Whether the endpoints are reached over HTTPS.
    pub fn enabled(&self) -> bool {
        self.cacert.is_some()
    }

    /// The rustls configuration, if HTTPS is on.
    pub fn config(&self) -> Result<Option<rustls::ClientConfig>, String> {
        let Some(cacert) = &self.cacert else {
            if self.cert.is_some() || self.key.is_some() {
                return Err("--cert and --key need --cacert (the CA that signed the servers)".into());
            }
            return Ok(None);
        };
        let read =
            |path: &PathBuf| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
        let ca = read(cacert)?;
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => return Err("--cert and --key go together".into()),
        };
        let identity = identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
        raft_net_tls::https::client_config(&ca, identity).map(Some).map_err(|e| e.to_string())
    }
}

/// Makes `ring` the process's default rustls provider, once. reqwest, built
/// with rustls, asks for one when it builds any client, even for plain
/// HTTP; every configuration this crate makes names its provider anyway.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client with `tls` (plain HTTP without), requests timing out
/// after `timeout`.
pub fn http_client(tls: Option<rustls::ClientConfig>, timeout: Duration) -> reqwest::Client {
    install_crypto_provider();
    let builder = reqwest::Client::builder().timeout(timeout);
    let builder = match tls {
        Some(config) => builder.use_preconfigured_tls(config),
        None => builder,
    };
    builder.build().unwrap_or_default()
}

/// How long a client may take over its TLS handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond it, new connections wait.
const MAX_HANDSHAKES: usize = 256;

/// A TLS listener for `axum::serve`: accepts TCP connections and completes
/// their handshakes in tasks of their own, so a slow or failing client
/// holds up no one; a failed handshake is logged and dropped.
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Serves TLS with `acceptor` on `listener`.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (done, ready) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => tracing::info!(%peer, %error, "API TLS handshake refused"),
                        Err(_) => tracing::info!(%peer, "API TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ends only when the runtime does.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
