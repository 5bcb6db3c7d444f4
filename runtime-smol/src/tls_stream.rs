//! The TLS handshakes on smol: [`komle_service::tls_io`] (written once over any runtime) with
//! [`SmolRuntime`], for callers (tests, tools) that want a smol TLS stream to a mail server or
//! from a client. The rustls configurations (certificate verification always on, A_2011) are
//! built by [`komle_service::tls`].

use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsAcceptor;
use komle_service::tls_io;
pub use komle_service::tls_io::ConnectError;
use rustls::ClientConfig;
use smol::net::TcpStream;

use crate::runtime::SmolRuntime;

/// A TLS connection to the mail service.
pub type UpstreamStream = tls_io::UpstreamStream<SmolRuntime>;
/// A TLS connection from a mail client.
pub type ClientStream = tls_io::ClientStream<SmolRuntime>;

/// Opens TCP to `host:port` and completes the TLS handshake (implicit TLS), all within
/// `timeout`.
pub async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<UpstreamStream, ConnectError> {
    tls_io::connect(&SmolRuntime, config, host, port, timeout).await
}

/// Accepts the TLS handshake of a mail client within `timeout`.
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<ClientStream, ConnectError> {
    tls_io::accept(&SmolRuntime, acceptor, tcp, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use futures_rustls::TlsConnector;
    use komle_service::tls::{client_config, server_config, server_name};
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
}
