//! Loading identities (every error a person can cause) and mutual TLS
//! handshakes in memory (every refusal an intruder can meet).

use raft_net_tls::{
    generate_cluster_files, ClusterCa, IdentityPaths, NodeIdentity, TlsError, Validity, ALPN_PROTOCOL,
};
use rustls::{ClientConnection, ServerConnection};
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A fresh directory under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raft-net-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn valid() -> Validity {
    Validity::days_from_now(30)
}

fn identity(ca: &ClusterCa, node: u64) -> NodeIdentity {
    let cert = ca.issue(node, valid()).expect("issue");
    NodeIdentity::from_pem(node, ca.cert_pem().as_bytes(), cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .expect("a valid identity")
}

#[test]
fn generated_files_load_back() {
    let dir = scratch("generated");
    let paths = generate_cluster_files(&dir, "test", &[1, 2, 3], valid()).expect("generate");
    assert_eq!(paths[1], IdentityPaths::in_dir(&dir, 2));
    for (node, paths) in (1..=3).zip(&paths) {
        let identity = NodeIdentity::load(paths, node).expect("load");
        assert_eq!(identity.node(), node);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths[0].node_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "a key file must be readable by its owner only");
    }
    // The CA reads back and issues certificates that the others accept.
    let ca = ClusterCa::read_pem_files("test", &dir).expect("read the CA");
    let four = identity(&ca, 4);
    let one = NodeIdentity::load(&paths[0], 1).unwrap();
    handshake(&one, &four, 4).expect("a node issued later joins");
}

#[test]
fn a_ca_read_under_another_cluster_name_or_key_is_refused() {
    let dir = scratch("ca-mismatch");
    let ca = ClusterCa::generate("test", valid()).unwrap();
    ca.write_pem_files(&dir).unwrap();
    let error = ClusterCa::read_pem_files("other", &dir).unwrap_err();
    assert!(matches!(error, TlsError::CaMismatch { .. }), "{error}");
    let other = ClusterCa::generate("test", valid()).unwrap();
    let error = ClusterCa::from_pem("test", ca.cert_pem(), &other.key_pem()).unwrap_err();
    assert!(matches!(error, TlsError::CaMismatch { .. }), "{error}");
}

#[test]
fn an_unreadable_file_is_a_read_error_naming_it() {
    let dir = scratch("unreadable");
    let paths = IdentityPaths::in_dir(&dir, 1);
    let error = NodeIdentity::load(&paths, 1).unwrap_err();
    match &error {
        TlsError::Read { path, .. } => assert_eq!(path, &paths.ca_cert),
        other => panic!("expected a read error, got {other}"),
    }
    assert!(error.to_string().contains("ca.pem"), "{error}");
}

#[test]
fn malformed_pem_is_refused() {
    let ca = ClusterCa::generate("test", valid()).unwrap();
    let cert = ca.issue(1, valid()).unwrap();
    let ca_pem = ca.cert_pem().as_bytes();
    let truncated = &cert.cert_pem.as_bytes()[..cert.cert_pem.len() / 2];
    /// CA, node certificate and key PEM, and which kind of PEM is refused.
    type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a str);
    let cases: [Case; 5] = [
        (b"not pem at all", cert.cert_pem.as_bytes(), cert.key_pem.as_bytes(), "certificate"),
        (ca_pem, truncated, cert.key_pem.as_bytes(), "certificate"),
        (ca_pem, cert.key_pem.as_bytes(), cert.key_pem.as_bytes(), "certificate"),
        (ca_pem, cert.cert_pem.as_bytes(), b"", "private key"),
        (ca_pem, cert.cert_pem.as_bytes(), cert.cert_pem.as_bytes(), "private key"),
    ];
    for (ca, node, key, expected_kind) in cases {
        let error = NodeIdentity::from_pem(1, ca, node, key).unwrap_err();
        assert!(
            matches!(&error, TlsError::MalformedPem { kind, .. } if *kind == expected_kind),
            "expected a malformed {expected_kind}, got {error}"
        );
    }
    // Valid PEM around bytes that are no certificate.
    let junk = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    let error = NodeIdentity::from_pem(1, ca_pem, junk.as_bytes(), cert.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(error, TlsError::MalformedCertificate { .. }), "{error}");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let ca = ClusterCa::generate("test", Validity::days_from_now(3650)).unwrap();
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let expired = ca.issue(1, Validity { not_before: now - 10 * day, not_after: now - day }).unwrap();
    let error = NodeIdentity::from_pem(
        1,
        ca.cert_pem().as_bytes(),
        expired.cert_pem.as_bytes(),
        expired.key_pem.as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(error, TlsError::Expired { .. }), "{error}");
    let future = ca.issue(1, Validity { not_before: now + day, not_after: now + 10 * day }).unwrap();
    let error = NodeIdentity::from_pem(
        1,
        ca.cert_pem().as_bytes(),
        future.cert_pem.as_bytes(),
        future.key_pem.as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(error, TlsError::NotYetValid { .. }), "{error}");
}

#[test]
fn a_certificate_from_another_ca_is_refused_even_under_the_same_cluster_name() {
    let ca = ClusterCa::generate("test", valid()).unwrap();
    let other = ClusterCa::generate("test", valid()).unwrap();
    let foreign = other.issue(1, valid()).unwrap();
    let error = NodeIdentity::from_pem(
        1,
        ca.cert_pem().as_bytes(),
        foreign.cert_pem.as_bytes(),
        foreign.key_pem.as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(error, TlsError::NotSignedByCa { .. }), "{error}");
    let elsewhere = ClusterCa::generate("elsewhere", valid()).unwrap().issue(1, valid()).unwrap();
    let error = NodeIdentity::from_pem(
        1,
        ca.cert_pem().as_bytes(),
        elsewhere.cert_pem.as_bytes(),
        elsewhere.key_pem.as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(error, TlsError::NotSignedByCa { .. }), "{error}");
}

#[test]
fn a_certificate_for_another_node_or_with_another_key_is_refused() {
    let ca = ClusterCa::generate("test", valid()).unwrap();
    let two = ca.issue(2, valid()).unwrap();
    let error =
        NodeIdentity::from_pem(1, ca.cert_pem().as_bytes(), two.cert_pem.as_bytes(), two.key_pem.as_bytes())
            .unwrap_err();
    assert!(matches!(error, TlsError::WrongNode { node: 1, .. }), "{error}");
    let one = ca.issue(1, valid()).unwrap();
    let error =
        NodeIdentity::from_pem(1, ca.cert_pem().as_bytes(), one.cert_pem.as_bytes(), two.key_pem.as_bytes())
            .unwrap_err();
    assert!(matches!(error, TlsError::Key { .. }), "{error}");
}

/// Which side of a handshake failed.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// A TLS handshake in memory between `client` and `server`, the client
/// dialling node `dial`. Returns the server's view of the client's chain.
fn handshake(
    client: &NodeIdentity,
    server: &NodeIdentity,
    dial: u64,
) -> Result<Vec<CertificateDer<'static>>, (Side, rustls::Error)> {
    handshake_with(client.client_config().unwrap(), server.server_config().unwrap(), dial)
}

fn handshake_with(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
    dial: u64,
) -> Result<Vec<CertificateDer<'static>>, (Side, rustls::Error)> {
    let name = ServerName::try_from(raft_net_tls::node_name(dial)).unwrap();
    let mut client = ClientConnection::new(Arc::new(client), name).unwrap();
    let mut server = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..16 {
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).unwrap();
        }
        let mut input = &bytes[..];
        while !input.is_empty() {
            server.read_tls(&mut input).unwrap();
            server.process_new_packets().map_err(|e| (Side::Server, e))?;
        }
        let mut bytes = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut bytes).unwrap();
        }
        let mut input = &bytes[..];
        while !input.is_empty() {
            client.read_tls(&mut input).unwrap();
            client.process_new_packets().map_err(|e| (Side::Client, e))?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            assert_eq!(client.alpn_protocol(), Some(ALPN_PROTOCOL));
            return Ok(server.peer_certificates().map(<[_]>::to_vec).unwrap_or_default());
        }
    }
    panic!("the handshake did not finish")
}

#[test]
fn nodes_of_one_cluster_authenticate_each_other_and_learn_the_peer_id() {
    let ca = ClusterCa::generate("test", valid()).unwrap();
    let (one, two) = (identity(&ca, 1), identity(&ca, 2));
    let chain = handshake(&one, &two, 2).expect("a handshake between nodes of the cluster");
    assert!(!chain.is_empty(), "the server sees the client's certificate");
    two.verify_peer(&chain, 1).expect("the client is node 1");
    let error = two.verify_peer(&chain, 3).unwrap_err();
    assert!(matches!(error, TlsError::WrongNode { node: 3, .. }), "{error}");
}

#[test]
fn a_client_dialling_one_node_refuses_a_server_that_is_another() {
    let ca = ClusterCa::generate("test", valid()).unwrap();
    let (one, two) = (identity(&ca, 1), identity(&ca, 2));
    let (side, _) = handshake(&one, &two, 3).expect_err("node 2 is not node 3");
    assert_eq!(side, Side::Client);
}

#[test]
fn a_server_refuses_a_client_from_another_ca_or_without_a_certificate() {
    let ca = ClusterCa::generate("test", valid()).unwrap();
    let other = ClusterCa::generate("test", valid()).unwrap();
    let server = identity(&ca, 2);
    let intruder = identity(&other, 1);
    // The intruder trusts our CA (so the client side would go on); its own
    // certificate is what the server must refuse.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.ca_certificate().clone()).unwrap();
    let intruder_cert = other.issue(1, valid()).unwrap();
    let chain: Vec<CertificateDer<'static>> =
        rustls_pki_types::pem::PemObject::pem_slice_iter(intruder_cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key: rustls_pki_types::PrivateKeyDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(intruder_cert.key_pem.as_bytes()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(Arc::new(roots));
    let mut foreign = builder.clone().with_client_auth_cert(chain.clone(), key).unwrap();
    foreign.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    let (side, error) = handshake_with(foreign, server.server_config().unwrap(), 2).expect_err("foreign CA");
    assert_eq!(side, Side::Server, "{error}");
    let mut anonymous = builder.with_no_client_auth();
    anonymous.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    let (side, error) =
        handshake_with(anonymous, server.server_config().unwrap(), 2).expect_err("no certificate");
    assert_eq!(side, Side::Server, "{error}");
    // And with its own configuration, the intruder refuses our server too.
    let (side, _) = handshake(&intruder, &server, 2).expect_err("mutual refusal");
    assert_eq!(side, Side::Client);
    // verify_peer refuses the foreign chain whatever it claims.
    let error = server.verify_peer(&chain, 1).unwrap_err();
    assert!(matches!(error, TlsError::NotSignedByCa { .. }), "{error}");
}
