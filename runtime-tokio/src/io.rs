//! The tokio I/O pieces both session drivers use: implicit-TLS connect towards the mail
//! service, bounded writes, and reads/timers that can be switched off in a `select!`.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS connection to the MTA or POP3 server.
pub(crate) type Upstream = TlsStream<TcpStream>;

/// TCP plus implicit TLS towards the MTA or POP3 server, certificate checked, within `timeout`.
pub(crate) async fn connect(
    config: Arc<ClientConfig>,
    host: String,
    port: u16,
    timeout: Duration,
) -> Result<Box<Upstream>, String> {
    let name = komle_service::tls::server_name(&host).map_err(|e| e.0)?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let attempt = async {
        let tcp = TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| format!("TCP: {e}"))?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map(Box::new)
            .map_err(|e| format!("TLS: {e}"))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// Writes and flushes within `limit`, so a peer that stops reading cannot hold the session.
pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> bool {
    let write = async {
        w.write_all(bytes).await?;
        w.flush().await
    };
    matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())))
}

pub(crate) async fn read_or_pending<R: AsyncRead + Unpin>(
    r: Option<&mut R>,
    buf: &mut [u8],
) -> usize {
    match r {
        Some(r) => r.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

pub(crate) async fn sleep_or_pending(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
