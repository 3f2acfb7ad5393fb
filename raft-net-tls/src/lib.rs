//! Mutual TLS for raft transports: a cluster's certificates, and the rustls
//! configurations that require them on both sides of every connection.
//!
//! A cluster has one certificate authority (CA). Every node holds a
//! certificate signed by it that names the node: its subject alternative
//! name is the DNS name `node-<id>` ([`node_name`]). Both ends of a
//! connection present their certificate and refuse a peer whose certificate
//! the cluster CA did not sign, so only the cluster's own nodes talk to each
//! other:
//!
//! - a client dials node `n` under the server name `node-<n>`
//!   ([`server_name`]), so rustls checks that the server it reached is `n`;
//! - a server learns who the client claims to be from the transport's own
//!   hello, then checks the claim against the client's certificate with
//!   [`NodeIdentity::verify_peer`].
//!
//! Three parts:
//! - **certificates for people** ([`ClusterCa`], [`generate_cluster_files`]):
//!   a CA and node certificates for a local cluster, as PEM files;
//! - **loading a node's identity** ([`NodeIdentity::load`]): its CA, its
//!   certificate and its key, checked at load time (readable, well-formed,
//!   valid now, signed by the CA, naming this node, key matching) so that a
//!   misconfigured node fails at start with a [`TlsError`] that says why,
//!   not at its first handshake;
//! - **rustls configurations** ([`NodeIdentity::server_config`],
//!   [`NodeIdentity::client_config`]): TLS 1.3 only, the `ring` provider,
//!   client certificates required, ALPN [`ALPN_PROTOCOL`].
//!
//! ```
//! use raft_net_tls::{ClusterCa, NodeIdentity, Validity};
//!
//! let ca = ClusterCa::generate("demo", Validity::days_from_now(365))?;
//! let node = ca.issue(1, Validity::days_from_now(30))?;
//! let identity = NodeIdentity::from_pem(
//!     1,
//!     ca.cert_pem().as_bytes(),
//!     node.cert_pem.as_bytes(),
//!     node.key_pem.as_bytes(),
//! )?;
//! let server = identity.server_config()?;
//! assert_eq!(server.alpn_protocols, vec![raft_net_tls::ALPN_PROTOCOL.to_vec()]);
//! # Ok::<(), raft_net_tls::TlsError>(())
//! ```

#![forbid(unsafe_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// A node's id, as raft-core numbers nodes.
pub type NodeId = u64;

/// The ALPN protocol id both sides require: this project's raft wire
/// protocol, version 1.
pub const ALPN_PROTOCOL: &[u8] = b"raft/1";

pub mod https;
pub use https::IssuedCertificate;

/// The DNS name a node's certificate carries: `node-<id>`.
pub fn node_name(node: NodeId) -> String {
    format!("node-{node}")
}

/// The server name to dial node `node` under, so that rustls checks the
/// server's certificate names it.
pub fn server_name(node: NodeId) -> ServerName<'static> {
    // `node-<digits>` is always a valid DNS name.
    ServerName::try_from(node_name(node)).unwrap_or_else(|_| unreachable!("node-<id> is a DNS name"))
}

/// Why certificates could not be made, loaded, or accepted.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not PEM, or holds no item of the expected kind.
    #[error("{what} is not a valid PEM {kind}: {reason}")]
    MalformedPem {
        /// Where the text came from.
        what: String,
        /// What it should hold (`certificate`, `private key`).
        kind: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The PEM holds something that is not a well-formed certificate.
    #[error("{what} is not a well-formed certificate: {reason}")]
    MalformedCertificate {
        /// Where it came from.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// The certificate's validity ended.
    #[error("the certificate of {what} expired at {not_after:?}")]
    Expired {
        /// Whose certificate.
        what: String,
        /// When it stopped being valid.
        not_after: SystemTime,
    },
    /// The certificate's validity has not started.
    #[error("the certificate of {what} is not valid before {not_before:?}")]
    NotYetValid {
        /// Whose certificate.
        what: String,
        /// When it becomes valid.
        not_before: SystemTime,
    },
    /// The certificate does not chain to the cluster CA.
    #[error("the certificate of {what} is not signed by the cluster CA")]
    NotSignedByCa {
        /// Whose certificate.
        what: String,
    },
    /// The certificate is signed by the CA but does not name this node.
    #[error("the certificate of {what} does not name node {node} (`{}`)", node_name(*node))]
    WrongNode {
        /// Whose certificate.
        what: String,
        /// The node it should name.
        node: NodeId,
    },
    /// The certificate is refused for another reason (say, a missing key
    /// usage).
    #[error("the certificate of {what} is refused: {reason}")]
    Refused {
        /// Whose certificate.
        what: String,
        /// Why.
        reason: String,
    },
    /// The private key is unusable, or is not the certificate's key.
    #[error("the private key of {what} is unusable: {reason}")]
    Key {
        /// Whose key.
        what: String,
        /// Why.
        reason: String,
    },
    /// The CA's key does not match its certificate, or the cluster name
    /// given is not the one the CA was made for.
    #[error("the CA key and certificate do not belong together for cluster `{cluster}`")]
    CaMismatch {
        /// The cluster name given.
        cluster: String,
    },
    /// A validity time that a certificate cannot hold.
    #[error("invalid validity: {0}")]
    Validity(String),
    /// rcgen could not make a certificate or key.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused to build a configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first moment it is valid.
    pub not_before: SystemTime,
    /// The last moment it is valid.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (to tolerate clocks a little behind this one) until
    /// `days` days from now.
    pub fn days_from_now(days: u64) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now.checked_sub(Duration::from_secs(3600)).unwrap_or(now),
            not_after: now + Duration::from_secs(days.saturating_mul(86_400)),
        }
    }
}

fn offset_date_time(time: SystemTime) -> Result<time::OffsetDateTime, TlsError> {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| TlsError::Validity(format!("{time:?} cannot be written in a certificate: {e}")))
}

fn ca_params(cluster: &str, validity: Validity) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("{cluster} raft cluster CA"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = offset_date_time(validity.not_before)?;
    params.not_after = offset_date_time(validity.not_after)?;
    Ok(params)
}

/// A cluster's certificate authority: signs its nodes' certificates.
///
/// Its key signs every node of the cluster: keep `ca-key.pem` off the nodes
/// (they need only `ca.pem`).
pub struct ClusterCa {
    cluster: String,
    params: CertificateParams,
    key: KeyPair,
    cert: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new CA for the cluster named `cluster`, with a fresh ECDSA P-256
    /// key.
    pub fn generate(cluster: &str, validity: Validity) -> Result<Self, TlsError> {
        let params = ca_params(cluster, validity)?;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { cluster: cluster.to_owned(), cert_pem: cert.pem(), cert: cert.der().clone(), params, key })
    }

    /// The CA of `cluster` from its certificate and key in PEM. The cluster
    /// name must be the one the CA was generated for: the certificates it
    /// signs name their issuer after it. Refuses a key or name that does
    /// not match the certificate ([`TlsError::CaMismatch`]).
    pub fn from_pem(cluster: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let cert = parse_certificates("the CA certificate", cert_pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or_else(|| no_item("the CA certificate", "certificate"))?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| TlsError::Key { what: "the CA".into(), reason: e.to_string() })?;
        // The validity in the parameters is not used to issue: only the
        // name, key identifier method and key usages are.
        let params = ca_params(cluster, Validity::days_from_now(1))?;
        let ca = Self { cluster: cluster.to_owned(), params, key, cert, cert_pem: cert_pem.to_owned() };
        // A probe certificate shows whether this key and name produce
        // certificates that chain to this certificate.
        let probe = ca.issue(0, Validity::days_from_now(1))?;
        let probe = parse_certificates("a probe", probe.cert_pem.as_bytes())?;
        match verify_chain(&ca.cert, &probe, webpki::KeyUsage::client_auth(), "a probe", UnixTime::now()) {
            Ok(()) => Ok(ca),
            Err(TlsError::MalformedCertificate { what, reason }) if what == "the CA certificate" => {
                Err(TlsError::MalformedCertificate { what, reason })
            }
            Err(_) => Err(TlsError::CaMismatch { cluster: cluster.to_owned() }),
        }
    }

    /// [`ClusterCa::from_pem`] from the files [`ClusterCa::write_pem_files`]
    /// writes in `dir`.
    pub fn read_pem_files(cluster: &str, dir: &Path) -> Result<Self, TlsError> {
        let cert = read_text(&dir.join(CA_CERT_FILE))?;
        let key = read_text(&dir.join(CA_KEY_FILE))?;
        Self::from_pem(cluster, &cert, &key)
    }

    /// The cluster this CA is for.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA's certificate in PEM: what every node trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA's private key in PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for node `node`, with a fresh key: its subject and its
    /// DNS subject alternative name are `node-<id>`, and it serves both as a
    /// server and a client certificate.
    pub fn issue(&self, node: NodeId, validity: Validity) -> Result<NodeCertificate, TlsError> {
        let usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let issued = self.issue_named(&node_name(node), vec![node_name(node)], usages, validity)?;
        Ok(NodeCertificate { node, cert_pem: issued.cert_pem, key_pem: issued.key_pem })
    }

    /// Writes `ca.pem` and `ca-key.pem` (owner-only on Unix) into `dir`,
    /// creating it if needed.
    pub fn write_pem_files(&self, dir: &Path) -> Result<(), TlsError> {
        create_dir(dir)?;
        write_file(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes(), false)?;
        write_file(&dir.join(CA_KEY_FILE), self.key.serialize_pem().as_bytes(), true)
    }
}

/// The CA certificate's file name in a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name in a certificate directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// A node's certificate and key, as [`ClusterCa::issue`] makes them.
#[derive(Clone)]
pub struct NodeCertificate {
    /// The node it names.
    pub node: NodeId,
    /// The certificate, in PEM.
    pub cert_pem: String,
    /// The private key, in PEM (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCertificate").field("node", &self.node).finish_non_exhaustive()
    }
}

impl NodeCertificate {
    /// Writes `node-<id>.pem` and `node-<id>-key.pem` (owner-only on Unix)
    /// into `dir`, creating it if needed; returns where a node finds its
    /// identity there.
    pub fn write_pem_files(&self, dir: &Path) -> Result<IdentityPaths, TlsError> {
        create_dir(dir)?;
        let paths = IdentityPaths::in_dir(dir, self.node);
        write_file(&paths.node_cert, self.cert_pem.as_bytes(), false)?;
        write_file(&paths.node_key, self.key_pem.as_bytes(), true)?;
        Ok(paths)
    }
}

/// Makes a CA for `cluster` and a certificate for each of `nodes`, and
/// writes them all into `dir` (see [`IdentityPaths::in_dir`] for the
/// names). For a local cluster; in production, keep `ca-key.pem` elsewhere.
pub fn generate_cluster_files(
    dir: &Path,
    cluster: &str,
    nodes: &[NodeId],
    validity: Validity,
) -> Result<Vec<IdentityPaths>, TlsError> {
    let ca = ClusterCa::generate(cluster, validity)?;
    ca.write_pem_files(dir)?;
    nodes.iter().map(|&node| ca.issue(node, validity)?.write_pem_files(dir)).collect()
}

/// Where a node's identity lives on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPaths {
    /// The cluster CA's certificate.
    pub ca_cert: PathBuf,
    /// The node's certificate.
    pub node_cert: PathBuf,
    /// The node's private key.
    pub node_key: PathBuf,
}

impl IdentityPaths {
    /// The names [`generate_cluster_files`] uses in `dir`: `ca.pem`,
    /// `node-<id>.pem`, `node-<id>-key.pem`.
    pub fn in_dir(dir: &Path, node: NodeId) -> Self {
        Self {
            ca_cert: dir.join(CA_CERT_FILE),
            node_cert: dir.join(format!("{}.pem", node_name(node))),
            node_key: dir.join(format!("{}-key.pem", node_name(node))),
        }
    }
}

/// A node's identity: the cluster CA it trusts, its certificate chain and
/// its key, checked to belong together.
pub struct NodeIdentity {
    node: NodeId,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self { node: self.node, ca: self.ca.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity").field("node", &self.node).finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Loads node `node`'s identity from PEM files, and checks it: each file
    /// readable and well-formed, the certificate valid now, signed by the
    /// CA, naming `node-<node>`, usable as client and server certificate,
    /// and matching the key.
    ///
    /// The CA certificate's own validity period is not checked: as in
    /// rustls's path validation, a trust anchor is trusted as given.
    pub fn load(paths: &IdentityPaths, node: NodeId) -> Result<Self, TlsError> {
        let ca = read_bytes(&paths.ca_cert)?;
        let cert = read_bytes(&paths.node_cert)?;
        let key = read_bytes(&paths.node_key)?;
        let ca = single_certificate(&paths.ca_cert.display().to_string(), &ca)?;
        let chain = parse_certificates(&paths.node_cert.display().to_string(), &cert)?;
        let key = parse_key(&paths.node_key.display().to_string(), &key)?;
        Self::new(node, ca, chain, key, &paths.node_cert.display().to_string())
    }

    /// [`NodeIdentity::load`] from PEM text rather than files.
    pub fn from_pem(node: NodeId, ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let ca = single_certificate("the CA certificate", ca_pem)?;
        let chain = parse_certificates("the node certificate", cert_pem)?;
        let key = parse_key("the node key", key_pem)?;
        Self::new(node, ca, chain, key, "the node certificate")
    }

    fn new(
        node: NodeId,
        ca: CertificateDer<'static>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        what: &str,
    ) -> Result<Self, TlsError> {
        let now = UnixTime::now();
        verify_chain(&ca, &chain, webpki::KeyUsage::server_auth(), what, now)?;
        verify_chain(&ca, &chain, webpki::KeyUsage::client_auth(), what, now)?;
        verify_names(&chain, node, what)?;
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider())
            .map_err(|e| TlsError::Key { what: what.to_owned(), reason: e.to_string() })?;
        Ok(Self { node, ca, chain, key })
    }

    /// The node this identity is for.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The cluster CA's certificate.
    pub fn ca_certificate(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// Checks that `peer_chain` (what a TLS peer presented, end-entity
    /// first) is signed by the cluster CA, valid now, and names node
    /// `node`: what a server does with the node id a client claims.
    pub fn verify_peer(&self, peer_chain: &[CertificateDer<'_>], node: NodeId) -> Result<(), TlsError> {
        let what = format!("peer {}", node_name(node));
        verify_chain(&self.ca, peer_chain, webpki::KeyUsage::client_auth(), &what, UnixTime::now())?;
        verify_names(peer_chain, node, &what)
    }

    /// A rustls server configuration: TLS 1.3, this node's certificate,
    /// client certificates required and verified against the cluster CA,
    /// ALPN [`ALPN_PROTOCOL`], no 0-RTT (rustls's default
    /// `max_early_data_size` of 0).
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        Ok(config)
    }

    /// A rustls client configuration: TLS 1.3, servers verified against the
    /// cluster CA (dial with [`server_name`] so the server's node id is
    /// checked too), this node's certificate presented, ALPN
    /// [`ALPN_PROTOCOL`], no early data.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        config.enable_early_data = false;
        Ok(config)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| TlsError::MalformedCertificate {
            what: "the CA certificate".into(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(roots))
    }
}

/// The crypto provider: `ring`, chosen explicitly so that no process-wide
/// default needs installing.
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn verify_chain(
    ca: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
    usage: webpki::KeyUsage,
    what: &str,
    now: UnixTime,
) -> Result<(), TlsError> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(no_item(what, "certificate"));
    };
    let anchor = webpki::anchor_from_trusted_cert(ca).map_err(|e| TlsError::MalformedCertificate {
        what: "the CA certificate".into(),
        reason: e.to_string(),
    })?;
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| TlsError::MalformedCertificate { what: what.to_owned(), reason: e.to_string() })?;
    cert.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &[anchor], intermediates, now, usage, None, None)
        .map(|_| ())
        .map_err(|error| refusal(error, what))
}

fn verify_names(chain: &[CertificateDer<'_>], node: NodeId, what: &str) -> Result<(), TlsError> {
    let Some(leaf) = chain.first() else {
        return Err(no_item(what, "certificate"));
    };
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| TlsError::MalformedCertificate { what: what.to_owned(), reason: e.to_string() })?;
    cert.verify_is_valid_for_subject_name(&server_name(node))
        .map_err(|_| TlsError::WrongNode { what: what.to_owned(), node })
}

fn system_time(time: UnixTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(time.as_secs())
}

fn refusal(error: webpki::Error, what: &str) -> TlsError {
    let what = what.to_owned();
    match error {
        webpki::Error::CertExpired { not_after, .. } => {
            TlsError::Expired { what, not_after: system_time(not_after) }
        }
        webpki::Error::CertNotValidYet { not_before, .. } => {
            TlsError::NotYetValid { what, not_before: system_time(not_before) }
        }
        // An issuer name no trust anchor has, or the CA's name with another
        // key's signature: either way, not our CA.
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            TlsError::NotSignedByCa { what }
        }
        webpki::Error::BadDer | webpki::Error::BadDerTime => {
            TlsError::MalformedCertificate { what, reason: error.to_string() }
        }
        other => TlsError::Refused { what, reason: other.to_string() },
    }
}

fn no_item(what: &str, kind: &'static str) -> TlsError {
    TlsError::MalformedPem { what: what.to_owned(), kind, reason: format!("no {kind} in it") }
}

fn parse_certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
        TlsError::MalformedPem { what: what.to_owned(), kind: "certificate", reason: e.to_string() }
    })?;
    if chain.is_empty() {
        return Err(no_item(what, "certificate"));
    }
    Ok(chain)
}

fn single_certificate(what: &str, pem: &[u8]) -> Result<CertificateDer<'static>, TlsError> {
    let mut certificates = parse_certificates(what, pem)?;
    if certificates.len() > 1 {
        return Err(TlsError::MalformedPem {
            what: what.to_owned(),
            kind: "certificate",
            reason: format!("{} certificates where one was expected", certificates.len()),
        });
    }
    Ok(certificates.remove(0))
}

fn parse_key(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::MalformedPem {
        what: what.to_owned(),
        kind: "private key",
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no private key in it".to_owned(),
            other => other.to_string(),
        },
    })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let error = |source| TlsError::Write { path: path.to_owned(), source };
    let mut file = options.open(path).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)
}
