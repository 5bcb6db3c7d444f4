//! The TLS handshakes of the Clientmodul over any [`ServerRuntime`]: implicit TLS towards the mail
//! service's MTA and POP3 server (A_2011, certificate always checked) and the accept of a mail
//! client, each within a time limit. Written once with futures-rustls over the runtime's
//! `futures-io` TCP streams; the rustls configurations come from [`crate::tls`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::{TlsAcceptor, TlsConnector};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::runtime::{ServerRuntime, within};
use crate::tls::server_name;

/// Why a connection to the MTA or POP3 server could not be set up. The text names the kind
/// of failure and the library's reason, never content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
pub type UpstreamStream<R> = futures_rustls::client::TlsStream<<R as ServerRuntime>::Tcp>;
/// A TLS connection from a mail client.
pub type ClientStream<R> = futures_rustls::server::TlsStream<<R as ServerRuntime>::Tcp>;

/// Opens TCP to `host:port` and completes the TLS handshake (implicit TLS), all within
/// `timeout`.
pub async fn connect<R: ServerRuntime>(
    runtime: &R,
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<UpstreamStream<R>, ConnectError> {
    let name = server_name(host).map_err(|e| ConnectError::BadHost(e.0))?;
    let bare = match &name {
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => host.to_owned(),
    };
    let work = async {
        let tcp = runtime
            .connect(bare, port)
            .await
            .map_err(|e| ConnectError::Tcp(e.to_string()))?;
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectError::Tls(e.to_string()))
    };
    within(runtime, runtime.now() + timeout, work)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

/// Accepts the TLS handshake of a mail client within `timeout`.
pub async fn accept<R: ServerRuntime>(
    runtime: &R,
    acceptor: &TlsAcceptor,
    tcp: R::Tcp,
    timeout: Duration,
) -> Result<ClientStream<R>, ConnectError> {
    let work = async {
        acceptor
            .accept(tcp)
            .await
            .map_err(|e| ConnectError::Tls(e.to_string()))
    };
    within(runtime, runtime.now() + timeout, work)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}
