//! The example's health and metrics endpoint answers with the Clientmodul's counters.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use komle_tokio::Stats;

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn health_is_ok_and_metrics_show_the_counters() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    stats.messages_protected.fetch_add(3, Ordering::Relaxed);
    rt.spawn(komle_examples::health_http::serve(
        listener,
        stats,
        std::future::pending(),
    ));
    let health = get(addr, "/health");
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    let metrics = get(addr, "/metrics");
    assert!(
        metrics.contains("komle_messages_protected_total 3\n"),
        "{metrics}"
    );
    assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
}
