//! TLS material for the KAS simulator: a throw-away CA, the KAS server certificate for
//! `localhost`/127.0.0.1 and a client certificate for the Clientmodul (mutual TLS, A_19362,
//! A_19368). ECDSA P-256 via rcgen, so ring verifies both sides.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// The CA, the server identity and one client identity.
pub struct KasTls {
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
    /// The Clientmodul's certificate (PEM) for `add_Attachment` / `read_Attachment`.
    pub client_cert_pem: String,
    /// Its PKCS#8 key (PEM). Test material only.
    pub client_key_pem: String,
    pub client_cert_der: CertificateDer<'static>,
    client_key_der: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for KasTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KasTls(..)")
    }
}

impl KasTls {
    /// Fresh material (a few milliseconds).
    pub fn generate() -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "KAS simulator test CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kas.localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&server_key, &issuer)?;

        let client_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "komle-cm test client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = params.signed_by(&client_key, &issuer)?;

        Ok(Self {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            server_cert: server.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
            client_cert_der: client.der().clone(),
            client_key_der: PrivatePkcs8KeyDer::from(client_key.serialize_der()),
        })
    }

    /// The client identity as rustls types (what a key store hands the KAS client).
    pub fn client_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.client_cert_der.clone()],
            PrivateKeyDer::Pkcs8(self.client_key_der.clone_key()),
        )
    }

    /// Server configuration that requires a client certificate from this CA.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server_cert.clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )?;
        Ok(Arc::new(config))
    }
}
