//! TLS for a node's HTTP API, from the same cluster CA as the Raft links.
//!
//! The Raft links name their peers by node id (`node-<id>`); an HTTP client
//! dials a host name or an address instead. So an API server certificate
//! names hosts and addresses ([`ClusterCa::issue_for_hosts`]), and a client
//! certificate names its holder ([`ClusterCa::issue_client`]). A server
//! configured with [`server_config`] and a client CA accepts only clients
//! holding a certificate that CA signed: the cluster's clients and nodes.
//! Both sides speak TLS 1.2 or 1.3 (curl and browsers included) over
//! HTTP/1.1.

use super::{create_dir, offset_date_time, provider, write_file};
use super::{parse_certificates, parse_key, single_certificate, ClusterCa, TlsError, Validity};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// The ALPN protocol the API speaks.
const HTTP_1_1: &[u8] = b"http/1.1";

/// A certificate and its key, in PEM, as [`ClusterCa`] issues them for the
/// API.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate").finish_non_exhaustive()
    }
}

impl IssuedCertificate {
    /// Writes `<stem>.pem` and `<stem>-key.pem` (owner-only on Unix) into
    /// `dir`, creating it if needed.
    pub fn write_pem_files(&self, dir: &Path, stem: &str) -> Result<(), TlsError> {
        create_dir(dir)?;
        write_file(&dir.join(format!("{stem}.pem")), self.cert_pem.as_bytes(), false)?;
        write_file(&dir.join(format!("{stem}-key.pem")), self.key_pem.as_bytes(), true)
    }
}

impl ClusterCa {
    /// A certificate for an HTTP server reached as any of `hosts` (DNS names,
    /// or IP addresses, which become IP subject alternative names), with a
    /// fresh key. It also serves as a client certificate, so that a node can
    /// present it when it calls another node's API.
    pub fn issue_for_hosts(
        &self,
        common_name: &str,
        hosts: &[String],
        validity: Validity,
    ) -> Result<IssuedCertificate, TlsError> {
        let usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue_named(common_name, hosts.to_vec(), usages, validity)
    }

    /// A client certificate for `holder` (its common name), with a fresh key.
    pub fn issue_client(&self, holder: &str, validity: Validity) -> Result<IssuedCertificate, TlsError> {
        self.issue_named(holder, Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth], validity)
    }

    /// A certificate naming `common_name`, with `alt_names` as its subject
    /// alternative names, for `usages`, signed by this CA, with a fresh key.
    pub(crate) fn issue_named(
        &self,
        common_name: &str,
        alt_names: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        validity: Validity,
    ) -> Result<IssuedCertificate, TlsError> {
        let mut params = CertificateParams::new(alt_names)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        params.not_before = offset_date_time(validity.not_before)?;
        params.not_after = offset_date_time(validity.not_after)?;
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCertificate { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

fn roots(what: &str, ca_pem: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(single_certificate(what, ca_pem)?)
        .map_err(|e| TlsError::MalformedCertificate { what: what.to_owned(), reason: e.to_string() })?;
    Ok(Arc::new(roots))
}

/// A rustls server configuration for the API: the certificate chain and key
/// in `cert_pem` and `key_pem`; with `client_ca_pem`, client certificates
/// are required and must chain to that CA.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(provider());
    let chain = parse_certificates("the API certificate", cert_pem)?;
    let key = parse_key("the API key", key_pem)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots("the client CA", ca)?, provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(config)
}

/// A rustls client configuration for the API: servers verified against the
/// CA in `ca_pem`; with `identity` (certificate and key in PEM), that
/// certificate is presented to servers that ask for one.
pub fn client_config(ca_pem: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots("the CA certificate", ca_pem)?);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                parse_certificates("the client certificate", cert)?,
                parse_key("the client key", key)?,
            )
            .map_err(|e| TlsError::Config(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(config)
}
