//! The harness's TLS material works for a strict Rust client (rustls/webpki, as the Clientmodul
//! uses), for both the IP address and the name `localhost`, and only with the test CA.

mod servers_support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use servers_support::*;

fn config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Connects with implicit TLS and returns the server's first line (greeting) or the error text.
fn greeting(
    addr: std::net::SocketAddr,
    name: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(cfg, server_name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(line)
}

#[test]
fn rustls_verifies_smtps_and_pop3s_by_ip_and_by_localhost() {
    let s = start_two_users();
    let cfg = config(s.tls().rustls_root_store().expect("root store"));
    for name in ["127.0.0.1", "localhost"] {
        let smtp = greeting(s.smtps_addr(), name, cfg.clone()).expect("SMTPS handshake");
        assert!(smtp.starts_with("220 "), "{name}: {smtp}");
        let pop = greeting(s.pop3s_addr(), name, cfg.clone()).expect("POP3S handshake");
        assert!(pop.starts_with("+OK"), "{name}: {pop}");
    }
}

#[test]
fn rustls_rejects_a_wrong_name_and_a_foreign_ca() {
    let s = start_two_users();
    let cfg = config(s.tls().rustls_root_store().expect("root store"));
    let err = greeting(s.smtps_addr(), "mail.example", cfg).expect_err("name mismatch");
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for"),
        "{err}"
    );

    // Another instance's CA must not be trusted for this one.
    let other = start_two_users();
    let foreign = config(other.tls().rustls_root_store().expect("root store"));
    let err = greeting(s.pop3s_addr(), "127.0.0.1", foreign).expect_err("unknown issuer");
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown issuer"),
        "{err}"
    );
}
