//! TLS material that SIGHUP can replace without a restart: the listeners' certificate and key
//! (`[tls]`), the extra CA trusted towards the mail service (`[upstream] ca`) and the client
//! certificate presented to it (`[upstream] client_identity` from the key store).
//!
//! WHY: certificates are renewed by tools that then send SIGHUP (logrotate-style); restarting
//! would cut every mail in flight. rustls asks a [`ResolvesServerCert`] for the certificate at
//! each handshake and a [`ServerCertVerifier`] for each server certificate, so both are built
//! here around a swappable `Arc`: a reload affects only handshakes that start afterwards,
//! sessions in flight keep the TLS state they negotiated. A reload that fails (missing file,
//! key not matching the certificate) keeps the previous material and reports why.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use crate::config::{KeySettings, ListenerIdentity};
use crate::tls::{self, TlsError};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a lock even if a panicking writer poisoned it: the value is always a complete `Arc`.
fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

/// The listeners' certificate chain and key, re-readable from their files.
pub struct ReloadableCertificate {
    source: CertificateSource,
    current: RwLock<Arc<CertifiedKey>>,
}

/// Where the listeners' certificate and key are read from, at start and at every SIGHUP.
#[derive(Debug)]
enum CertificateSource {
    Files {
        certificate: PathBuf,
        private_key: PathBuf,
    },
    KeyStore {
        keys: KeySettings,
        alias: String,
    },
}

impl CertificateSource {
    fn read(&self) -> Result<CertifiedKey, TlsError> {
        match self {
            Self::Files {
                certificate,
                private_key,
            } => certified_key(certificate, private_key),
            Self::KeyStore { keys, alias } => stored_key(keys, alias),
        }
    }
}

impl fmt::Debug for ReloadableCertificate {
    // Never the key: only where it comes from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCertificate")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ReloadableCertificate {
    /// Loads the files once; errors name the file, as [`tls::server_config`] does.
    pub fn load(certificate: &Path, private_key: &Path) -> Result<Arc<Self>, TlsError> {
        Self::from_source(CertificateSource::Files {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
        })
    }

    /// Reads the key store entry `alias` once (KOM-LE-A_2065: the listener's key in the
    /// password-protected store as well); errors name the store or the alias.
    pub fn from_key_store(keys: &KeySettings, alias: &str) -> Result<Arc<Self>, TlsError> {
        Self::from_source(CertificateSource::KeyStore {
            keys: keys.clone(),
            alias: alias.to_owned(),
        })
    }

    /// What `[tls]` configures: the PEM files or the `identity` entry of the `[keys]` store.
    pub fn configured(
        tls: &crate::config::TlsSettings,
        keys: Option<&KeySettings>,
    ) -> Result<Arc<Self>, TlsError> {
        match &tls.identity {
            ListenerIdentity::Files {
                certificate,
                private_key,
            } => Self::load(certificate, private_key),
            ListenerIdentity::KeyStore { alias } => {
                let keys = keys.ok_or_else(|| {
                    TlsError("[tls] identity is set but [keys] store is not".into())
                })?;
                Self::from_key_store(keys, alias)
            }
        }
    }

    fn from_source(source: CertificateSource) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(Arc::new(source.read()?));
        Ok(Arc::new(Self { source, current }))
    }

    /// Reads the files or the store again; on success new handshakes present the new
    /// certificate, on failure the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = self.source.read()?;
        write(&self.current, Arc::new(fresh));
        Ok(())
    }

    /// A server configuration that asks this resolver at every handshake; mail clients
    /// connect without a certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        self.server_config_for_clients(None)
    }

    /// As [`Self::server_config`]; with `client_ca`, every mail client must present a
    /// certificate issued by that CA (KOM-LE-A_2181: with or without client authentication).
    pub fn server_config_for_clients(
        self: &Arc<Self>,
        client_ca: Option<&Path>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in tls::load_certificates(path)? {
                    roots.add(cert).map_err(|e| {
                        TlsError(format!(
                            "{}: not a usable CA certificate: {e}",
                            path.display()
                        ))
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        Ok(Arc::new(builder.with_cert_resolver(self.clone())))
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(read(&self.current))
    }
}

fn certified_key(certificate: &Path, private_key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = tls::load_certificates(certificate)?;
    let key = tls::load_private_key(private_key)?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        TlsError(format!(
            "{} / {}: certificate and key do not fit: {e}",
            certificate.display(),
            private_key.display()
        ))
    })
}

/// The client certificate towards the mail service (C.CM.TLS-CS, KOM-LE-A_2074, A_2182-01):
/// the key store entry `[upstream] client_identity`, re-readable, so a renewed certificate
/// imported with `komle-cm keys import --replace` is presented after SIGHUP without a restart.
/// The store password is read again from `[keys] password_file` or the environment; a reload
/// that cannot open the store keeps the previous identity.
pub struct ReloadableClientIdentity {
    keys: KeySettings,
    alias: String,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadableClientIdentity {
    // Never the key: only where it comes from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableClientIdentity")
            .field("store", &self.keys.store)
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

impl ReloadableClientIdentity {
    /// Opens the store once; errors are one line naming the store or the alias.
    pub fn load(keys: &KeySettings, alias: &str) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(Arc::new(stored_key(keys, alias)?));
        Ok(Arc::new(Self {
            keys: keys.clone(),
            alias: alias.to_owned(),
            current,
        }))
    }

    /// The identity `[upstream] client_identity` names in the `[keys]` store, re-readable;
    /// `None` when none is configured ([`tls::identity_source`]).
    pub fn configured(
        upstream: &crate::config::UpstreamSettings,
        keys: Option<&KeySettings>,
    ) -> Result<Option<Arc<Self>>, TlsError> {
        tls::identity_source(upstream, keys)?
            .map(|(keys, alias)| Self::load(keys, alias))
            .transpose()
    }

    /// Opens the store again; on success new connections present the new certificate, on
    /// failure the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = stored_key(&self.keys, &self.alias)?;
        write(&self.current, Arc::new(fresh));
        Ok(())
    }
}

impl ResolvesClientCert for ReloadableClientIdentity {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(read(&self.current))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn stored_key(keys: &KeySettings, alias: &str) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = tls::open_identity(keys, alias)?.into_parts();
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| TlsError(format!("key store entry \"{alias}\": {e}")))
}

/// Trust towards the mail service: the webpki roots plus the `[upstream] ca` file, re-readable.
/// Verification itself is rustls' WebPKI verifier; this only lets it be replaced.
pub struct ReloadableTrust {
    extra_ca: Option<PathBuf>,
    current: RwLock<Arc<WebPkiServerVerifier>>,
}

impl fmt::Debug for ReloadableTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableTrust")
            .field("extra_ca", &self.extra_ca)
            .finish_non_exhaustive()
    }
}

impl ReloadableTrust {
    pub fn load(extra_ca: Option<&Path>) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(verifier(extra_ca)?);
        Ok(Arc::new(Self {
            extra_ca: extra_ca.map(Path::to_owned),
            current,
        }))
    }

    /// Reads the CA file again (nothing to do without one); on failure the old trust stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        if self.extra_ca.is_some() {
            write(&self.current, verifier(self.extra_ca.as_deref())?);
        }
        Ok(())
    }

    /// The client configuration for the MTA and POP3 server; certificate verification always
    /// on (A_2011), against whatever trust was loaded last.
    pub fn client_config(self: &Arc<Self>) -> Result<Arc<ClientConfig>, TlsError> {
        self.client_config_with_reloadable_identity(None)
    }

    /// As [`ReloadableTrust::client_config`], presenting the re-readable `identity` (the key
    /// store's C.CM.TLS-CS, KOM-LE-A_2074, A_2182-01) as client certificate when given: what
    /// the daemon uses, so SIGHUP reaches the client certificate as it reaches the trust.
    pub fn client_config_with_reloadable_identity(
        self: &Arc<Self>,
        identity: Option<Arc<ReloadableClientIdentity>>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?
            // "dangerous" only in rustls' naming: the verifier is rustls' own WebPKI one.
            .dangerous()
            .with_custom_certificate_verifier(self.clone());
        let config = match identity {
            Some(identity) => builder.with_client_cert_resolver(identity),
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

fn verifier(extra_ca: Option<&Path>) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let roots = tls::root_store(extra_ca)?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError(format!("certificate verifier: {e}")))
}

impl ServerCertVerifier for ReloadableTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        read(&self.current).verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        read(&self.current).verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        read(&self.current).verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        read(&self.current).supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use futures_rustls::{TlsAcceptor, TlsConnector};
    use smol::net::{TcpListener, TcpStream};

    /// Accepts `n` handshakes on `config`, answering each with one byte.
    async fn serve(config: Arc<ServerConfig>, n: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = TlsAcceptor::from(config);
        smol::spawn(async move {
            for _ in 0..n {
                let (tcp, _) = listener.accept().await.unwrap();
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let _ = s.write_all(b"!").await;
                    let _ = s.flush().await;
                }
            }
        })
        .detach();
        port
    }

    /// The test's side of a handshake (the runtimes' own connect with its time limit is
    /// `komle-smol`'s `tls_stream::connect`; this crate has no sockets of its own).
    async fn connect(
        trust: Arc<ClientConfig>,
        port: u16,
    ) -> std::io::Result<futures_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(("localhost", port)).await?;
        let name = tls::server_name("localhost").map_err(std::io::Error::other)?;
        TlsConnector::from(trust).connect(name, tcp).await
    }

    async fn handshake(trust: Arc<ClientConfig>, port: u16) -> std::io::Result<()> {
        let mut s = connect(trust, port).await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        Ok(())
    }

    #[test]
    fn reload_swaps_the_listener_certificate_for_new_handshakes_only() {
        let first = test_pki::make("First CA");
        let second = test_pki::make("Second CA");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::copy(first.server_cert(), &cert).unwrap();
        std::fs::copy(first.server_key(), &key).unwrap();
        let reloadable = ReloadableCertificate::load(&cert, &key).unwrap();
        let trusts_first = tls::client_config(Some(&first.ca())).unwrap();
        let trusts_second = tls::client_config(Some(&second.ca())).unwrap();
        smol::block_on(async {
            let port = serve(reloadable.server_config().unwrap(), 4).await;
            // A session in flight across the reload.
            let mut before = connect(trusts_first.clone(), port).await.unwrap();
            handshake(trusts_first.clone(), port).await.unwrap();
            std::fs::copy(second.server_cert(), &cert).unwrap();
            std::fs::copy(second.server_key(), &key).unwrap();
            reloadable.reload().unwrap();
            handshake(trusts_second, port).await.unwrap();
            // A fresh client (no session ticket to resume) sees the new certificate only.
            let fresh_first = tls::client_config(Some(&first.ca())).unwrap();
            assert!(handshake(fresh_first, port).await.is_err());
            let mut b = [0u8; 1];
            before.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"!");
        });
    }

    #[test]
    fn failed_reload_keeps_the_old_certificate_and_names_the_file() {
        let pki = test_pki::make("CA");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::copy(pki.server_cert(), &cert).unwrap();
        std::fs::copy(pki.server_key(), &key).unwrap();
        let reloadable = ReloadableCertificate::load(&cert, &key).unwrap();
        let before = read(&reloadable.current);
        // A key that does not belong to the certificate.
        std::fs::copy(pki.client_key(), &key).unwrap();
        let e = reloadable.reload().unwrap_err();
        assert!(e.0.contains("do not fit"), "{e}");
        std::fs::remove_file(&cert).unwrap();
        let e = reloadable.reload().unwrap_err();
        assert!(e.0.contains("c.pem: cannot open"), "{e}");
        assert!(Arc::ptr_eq(&before, &read(&reloadable.current)));
        assert!(!format!("{reloadable:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_2011_reloaded_upstream_trust_applies_to_new_connections() {
        let first = test_pki::make("First CA");
        let second = test_pki::make("Second CA");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::copy(first.ca(), &ca).unwrap();
        let trust = ReloadableTrust::load(Some(&ca)).unwrap();
        // A new client configuration per connection: no TLS session resumption, every
        // handshake asks the verifier (a resumed session keeps its earlier verdict).
        let client = || trust.client_config().unwrap();
        let server_of = |pki: &test_pki::TestPki| {
            tls::server_config(&pki.server_cert(), &pki.server_key()).unwrap()
        };
        smol::block_on(async {
            let p1 = serve(server_of(&first), 2).await;
            let p2 = serve(server_of(&second), 2).await;
            handshake(client(), p1).await.unwrap();
            assert!(handshake(client(), p2).await.is_err(), "untrusted CA");
            std::fs::copy(second.ca(), &ca).unwrap();
            trust.reload().unwrap();
            handshake(client(), p2).await.unwrap();
            assert!(
                handshake(client(), p1).await.is_err(),
                "old CA no longer trusted"
            );
        });
    }

    /// A mail client's side with the client certificate of `pki`, trusting `server`'s CA.
    fn client_with_certificate(
        pki: &test_pki::TestPki,
        server: &test_pki::TestPki,
    ) -> Arc<ClientConfig> {
        let certs = tls::load_certificates(&pki.client_cert()).unwrap();
        let key = tls::load_private_key(&pki.client_key()).unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates({
                let mut roots = rustls::RootCertStore::empty();
                for c in tls::load_certificates(&server.ca()).unwrap() {
                    roots.add(c).unwrap();
                }
                roots
            })
            .with_client_auth_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }

    /// KOM-LE-A_2181: the listeners work with and without client authentication: without
    /// `[tls] client_ca` a client without certificate is served; with it, only a client
    /// presenting a certificate of that CA is (one of another CA and none at all are refused).
    #[test]
    fn a_2181_listeners_with_and_without_client_certificates() {
        let pki = test_pki::make("Listener CA");
        let other = test_pki::make("Other CA");
        let reloadable =
            ReloadableCertificate::load(&pki.server_cert(), &pki.server_key()).unwrap();
        let plain_client = tls::client_config(Some(&pki.ca())).unwrap();
        smol::block_on(async {
            let open = serve(reloadable.server_config_for_clients(None).unwrap(), 1).await;
            handshake(plain_client.clone(), open)
                .await
                .expect("no client authentication: a client without certificate is served");

            let strict = reloadable
                .server_config_for_clients(Some(&pki.ca()))
                .unwrap();
            let port = serve(strict, 3).await;
            handshake(client_with_certificate(&pki, &pki), port)
                .await
                .expect("a certificate of the configured CA is accepted");
            assert!(
                handshake(plain_client, port).await.is_err(),
                "no certificate: refused"
            );
            assert!(
                handshake(client_with_certificate(&other, &pki), port)
                    .await
                    .is_err(),
                "a certificate of another CA: refused"
            );
        });
    }
}
