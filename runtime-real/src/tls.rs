//! Mutual TLS for the cluster transport, and the cluster's certificate authority.
//!
//! Every node holds a certificate signed by the cluster CA whose only name is
//! `node-<id>.hamster` (the admin tools hold `admin.hamster`). A caller checks that the
//! peer it dialled presents the certificate of the node id it meant to reach; the
//! listener checks the caller's chain against the CA during the handshake (a caller with
//! no certificate, or one from another CA, never gets a byte through) and then that the
//! certificate names the node id the caller declares. So a node's identity on the wire
//! is its certificate, not a number it chose.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use engine::env::NodeId;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Node id that admin tools declare; their certificate is named [`ADMIN_NAME`].
pub const ADMIN_ID: NodeId = 0;
pub const ADMIN_NAME: &str = "admin.hamster";

/// The name a node's certificate carries.
pub fn peer_name(id: NodeId) -> String {
    if id == ADMIN_ID {
        ADMIN_NAME.to_string()
    } else {
        format!("node-{id}.hamster")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client and server TLS configurations of one node (or admin tool).
pub struct Tls {
    pub(crate) client: tokio_rustls::TlsConnector,
    pub(crate) server: tokio_rustls::TlsAcceptor,
}

impl Tls {
    /// From PEM text: the cluster CA, this holder's certificate chain and private key.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca) {
            roots
                .add(ca.context("CA certificate does not parse")?)
                .context("CA certificate refused")?;
        }
        if roots.is_empty() {
            return Err(anyhow!("no CA certificate found"));
        }
        let roots = Arc::new(roots);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .context("certificate does not parse")?;
        if chain.is_empty() {
            return Err(anyhow!("no certificate found"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).context("private key does not parse")?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .context("client verifier")?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .context("certificate and key do not match")?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .context("certificate and key do not match")?;
        Ok(Self {
            client: tokio_rustls::TlsConnector::from(Arc::new(client)),
            server: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// From PEM files.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        Self::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
    }
}

/// HTTPS for the S3 API (`--tls-cert FILE --tls-key FILE`): the server's certificate
/// chain and private key, PEM. No client certificates are asked for.
pub fn s3_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let read = |p: &Path, what: &str| {
        std::fs::read(p)
            .with_context(|| format!("reading the {what} {} (--tls-{what})", p.display()))
    };
    let (cert_pem, key_pem) = (read(cert, "cert")?, read(key, "key")?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        return Err(anyhow!(
            "{} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| {
        format!(
            "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| {
            format!(
                "the key {} does not match the certificate {}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

pub(crate) fn server_name(id: NodeId) -> ServerName<'static> {
    ServerName::try_from(peer_name(id)).expect("node names are valid DNS names")
}

/// Whether `cert` (already verified against the CA) names node `id`.
pub(crate) fn certificate_names(cert: &CertificateDer<'_>, id: NodeId) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&server_name(id))
        .is_ok()
}

/// A cluster certificate authority, able to issue node and admin certificates.
pub struct Authority {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A PEM certificate and its PEM private key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Authority {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for node `id` (or the admin tools, [`ADMIN_ID`]), usable both to
    /// serve and to call.
    pub fn issue(&self, id: NodeId) -> anyhow::Result<Issued> {
        let key = rcgen::KeyPair::generate()?;
        let name = peer_name(id);
        let mut params = rcgen::CertificateParams::new(vec![name.clone()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// TLS configurations for holder `id`, straight from this CA (tests and tools).
    pub fn tls_for(&self, id: NodeId) -> anyhow::Result<Tls> {
        let issued = self.issue(id)?;
        Tls::from_pem(
            self.cert_pem().as_bytes(),
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
    }
}
