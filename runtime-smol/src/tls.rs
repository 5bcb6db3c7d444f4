//! TLS set-up for the listeners (server side towards mail clients) and for the connections to
//! the mail service's MTA and POP3 server (client side).
//!
//! Towards the mail service the Clientmodul always uses implicit TLS with the server
//! certificate checked (A_2011; NOTES: "server certificate checked"): there is no option to
//! switch verification off and no plaintext fallback. Trust is the webpki roots plus one
//! configured CA file. The ring provider is set explicitly so the result never depends on which
//! other crate installed a process-wide default.

use std::fmt;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::{TlsAcceptor, TlsConnector};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use smol::net::TcpStream;

/// A TLS set-up problem, naming the file involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads all certificates from a PEM file; an empty file is an error.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = std::fs::File::open(path)
        .map_err(|e| TlsError(format!("{}: cannot open: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no CERTIFICATE found in PEM file",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = std::fs::File::open(path)
        .map_err(|e| TlsError(format!("{}: cannot open: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| TlsError(format!("{}: bad PEM: {e}", path.display())))?
        .ok_or_else(|| {
            TlsError(format!(
                "{}: no PRIVATE KEY found in PEM file",
                path.display()
            ))
        })
}

/// The listeners' TLS configuration from the `[tls]` certificate chain and key.
pub fn server_config(
    certificate: &Path,
    private_key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certificates(certificate)?;
    let key = load_private_key(private_key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError(format!(
                "{} / {}: certificate and key do not fit: {e}",
                certificate.display(),
                private_key.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// Roots: webpki's plus every certificate in `extra_ca` (PEM).
pub fn root_store(extra_ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        for cert in load_certificates(path)? {
            roots.add(cert).map_err(|e| {
                TlsError(format!("{}: unusable CA certificate: {e}", path.display()))
            })?;
        }
    }
    Ok(roots)
}

/// The client configuration for the MTA and POP3 server: certificate verification always on.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_root_certificates(root_store(extra_ca)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the server certificate must carry: a DNS name, or an IP literal (also in brackets,
/// as `[::1]`), which rustls then matches against IP subjectAltNames and leaves out of SNI.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned())
        .map_err(|_| TlsError(format!("{host:?} is neither a host name nor an IP address")))
}

/// Why a connection to the MTA or POP3 server could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    Timeout,
    /// DNS, TCP connect.
    Tcp(String),
    /// Handshake, including certificate verification failures.
    Tls(String),
    BadHost(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connection timed out"),
            ConnectError::Tcp(e) => write!(f, "TCP connect failed: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnectError::BadHost(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ConnectError {}

/// A TLS connection to the mail service.
pub type UpstreamStream = futures_rustls::client::TlsStream<TcpStream>;
/// A TLS connection from a mail client.
pub type ClientStream = futures_rustls::server::TlsStream<TcpStream>;

/// Opens TCP to `host:port` and completes the TLS handshake (implicit TLS), all within
/// `timeout`.
pub async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<UpstreamStream, ConnectError> {
    let name = server_name(host).map_err(|e| ConnectError::BadHost(e.0))?;
    let bare = match &name {
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => host.to_owned(),
    };
    let work = async move {
        let tcp = TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| ConnectError::Tcp(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectError::Tls(e.to_string()))
    };
    smol::future::or(work, async {
        smol::Timer::after(timeout).await;
        Err(ConnectError::Timeout)
    })
    .await
}

/// Accepts the TLS handshake of a mail client within `timeout`.
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<ClientStream, ConnectError> {
    smol::future::or(
        async {
            acceptor
                .accept(tcp)
                .await
                .map_err(|e| ConnectError::Tls(e.to_string()))
        },
        async {
            smol::Timer::after(timeout).await;
            Err(ConnectError::Timeout)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use smol::net::TcpListener;

    const T: Duration = Duration::from_secs(10);

    /// Starts a TLS echo-once server; returns its port.
    async fn server(pki: &test_pki::TestPki) -> (u16, smol::Task<Result<Vec<u8>, ConnectError>>) {
        let acceptor =
            TlsAcceptor::from(server_config(&pki.server_cert(), &pki.server_key()).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = smol::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = accept(&acceptor, tcp, T).await?;
            let mut buf = vec![0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(b"pong!").await.unwrap();
            tls.flush().await.unwrap();
            Ok(buf)
        });
        (port, task)
    }

    #[test]
    fn a_2011_handshake_between_our_server_and_client_configs() {
        let pki = test_pki::make("Test CA");
        smol::block_on(async {
            for host in ["localhost", "127.0.0.1"] {
                let (port, task) = server(&pki).await;
                let config = client_config(Some(&pki.ca())).unwrap();
                let mut tls = connect(config, host, port, T).await.unwrap();
                tls.write_all(b"ping!").await.unwrap();
                tls.flush().await.unwrap();
                let mut buf = vec![0u8; 5];
                tls.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"pong!");
                assert_eq!(task.await.unwrap(), b"ping!");
            }
        });
    }

    #[test]
    fn a_2011_client_refuses_untrusted_server() {
        let pki = test_pki::make("Test CA");
        let other = test_pki::make("Other CA");
        smol::block_on(async {
            let (port, task) = server(&pki).await;
            let config = client_config(Some(&other.ca())).unwrap();
            let err = connect(config, "localhost", port, T).await.unwrap_err();
            assert!(
                matches!(err, ConnectError::Tls(ref m) if m.contains("certificate")),
                "{err:?}"
            );
            assert!(
                task.await.is_err(),
                "server must not see a completed handshake"
            );
        });
    }

    #[test]
    fn client_refuses_name_mismatch() {
        let pki = test_pki::make("Test CA");
        smol::block_on(async {
            let (port, _task) = server(&pki).await;
            let config = client_config(Some(&pki.ca())).unwrap();
            // The certificate is for localhost/127.0.0.1/::1, not for this name.
            let name_err = TlsConnector::from(config)
                .connect(
                    server_name("mta.example").unwrap(),
                    TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
                )
                .await
                .unwrap_err();
            assert!(name_err.to_string().contains("certificate"), "{name_err}");
        });
    }

    #[test]
    fn connection_refused_is_a_tcp_error() {
        smol::block_on(async {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                l.local_addr().unwrap().port()
            };
            let config = client_config(None).unwrap();
            let err = connect(config, "127.0.0.1", port, T).await.unwrap_err();
            assert!(matches!(err, ConnectError::Tcp(_)), "{err:?}");
        });
    }

    #[test]
    fn server_name_accepts_ip_literals() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("mta.kim.telematik"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad host").is_err());
    }

    #[test]
    fn missing_and_empty_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = server_config(&missing, &missing).unwrap_err();
        assert!(e.0.contains("nope.pem: cannot open"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(
            load_certificates(&empty)
                .unwrap_err()
                .0
                .contains("no CERTIFICATE")
        );
        assert!(
            load_private_key(&empty)
                .unwrap_err()
                .0
                .contains("no PRIVATE KEY")
        );
        let pki = test_pki::make("Test CA");
        // A key that does not belong to the certificate.
        let e = server_config(&pki.server_cert(), &pki.client_key()).unwrap_err();
        assert!(e.0.contains("do not fit"), "{e}");
    }
}
