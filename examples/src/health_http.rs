//! A tiny HTTP/1.1 endpoint for `/health` and `/metrics`, standing in for whatever web
//! framework the embedding service already uses.

use std::future::Future;
use std::sync::Arc;

use komle_tokio::Stats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `/health` (200 `ok`) and `/metrics` (the Clientmodul's counters) until `shutdown`.
pub async fn serve(listener: TcpListener, stats: Arc<Stats>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (mut conn, _) = tokio::select! {
            a = listener.accept() => match a { Ok(c) => c, Err(_) => continue },
            () = &mut shutdown => return,
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split(' ').nth(1).unwrap_or("");
            let (status, body) = match path {
                "/health" => ("200 OK", "ok\n".to_owned()),
                "/metrics" => ("200 OK", stats.render()),
                _ => ("404 Not Found", "not found\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}
