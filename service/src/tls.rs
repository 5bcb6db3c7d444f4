//! TLS set-up for the listeners (server side towards mail clients) and for the connections to
//! the mail service's MTA and POP3 server (client side).
//!
//! Towards the mail service the Clientmodul always uses implicit TLS with the server
//! certificate checked (A_2011; NOTES: "server certificate checked"): there is no option to
//! switch verification off and no plaintext fallback. Trust is the webpki roots plus one
//! configured CA file. The ring provider is set explicitly so the result never depends on which
//! other crate installed a process-wide default.

//!
//! Only the configurations are built here, runtime-neutral; the handshakes over sockets are the
//! runtimes' (`komle-smol`'s `tls_stream`, `komle-tokio`'s tokio-rustls).

use std::fmt;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;

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
