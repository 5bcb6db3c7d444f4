//! TLS streams of the smol runtime: the implicit-TLS connect towards the mail service's MTA and
//! POP3 server and the accept of a mail client, each within a time limit.
//!
//! The rustls configurations themselves (certificate verification always on, A_2011) are built
//! by [`komle_service::tls`]; this module only runs the handshakes over smol sockets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::{TlsAcceptor, TlsConnector};
use komle_service::tls::server_name;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use smol::net::TcpStream;

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
    use komle_service::tls::{client_config, server_config};
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
