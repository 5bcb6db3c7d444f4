//! Test TLS material made with the `openssl` command-line tool: a throw-away CA and a server
//! certificate for `127.0.0.1` and `localhost`.
//!
//! WHY the CLI and not the crate's own PKI: the servers (Postfix, Dovecot) read PEM files anyway,
//! and using the same tool an operator would use keeps this harness independent of the code under
//! test. ECDSA P-256 keys are generated because they take milliseconds, keeping startup fast.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{Result, ServerError};

/// Paths of the generated PEM files (all inside the harness's temp dir).
#[derive(Debug, Clone)]
pub struct TestTls {
    /// The CA certificate clients must trust to verify the servers.
    pub ca_pem: PathBuf,
    /// The server certificate (SAN `IP:127.0.0.1`, `DNS:localhost`, EKU serverAuth).
    pub server_cert_pem: PathBuf,
    /// The server's private key (unencrypted PKCS#8).
    pub server_key_pem: PathBuf,
}

impl TestTls {
    /// Generates a fresh CA and server certificate in `dir` (created if missing). `ca_label`
    /// goes into the CA's common name: distinct names per instance make a client that trusts
    /// the wrong instance's CA fail with "unknown issuer" instead of a confusing bad signature.
    pub fn generate(dir: &Path, ca_label: &str) -> Result<TestTls> {
        if ca_label.contains(['/', '=', '\\', '\n']) {
            return Err(ServerError::InvalidInput(format!("CA label {ca_label:?}")));
        }
        let ca_subject = format!("/CN=KOM-LE test mail CA {ca_label}");
        std::fs::create_dir_all(dir).map_err(ServerError::io_path("creating", dir))?;
        let ca_key = dir.join("ca.key");
        let ca_pem = dir.join("ca.pem");
        let server_key_pem = dir.join("server.key");
        let csr = dir.join("server.csr");
        let server_cert_pem = dir.join("server.pem");
        let ext = dir.join("server-ext.cnf");

        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path(&ca_key)?,
            "-out",
            path(&ca_pem)?,
            "-days",
            "3",
            "-subj",
            &ca_subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path(&server_key_pem)?,
            "-out",
            path(&csr)?,
            "-subj",
            "/CN=localhost",
        ])?;
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(ServerError::io_path("writing", &ext))?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr)?,
            "-CA",
            path(&ca_pem)?,
            "-CAkey",
            path(&ca_key)?,
            "-set_serial",
            "2",
            "-out",
            path(&server_cert_pem)?,
            "-days",
            "2",
            "-extfile",
            path(&ext)?,
        ])?;
        Ok(TestTls {
            ca_pem,
            server_cert_pem,
            server_key_pem,
        })
    }
}

impl TestTls {
    /// The test CA certificate (DER): the trust anchor a Konnektor needs to call the servers'
    /// certificate VALID in VerifyCertificate (KOM-LE-A_2075-01).
    pub fn ca_der(&self) -> Result<Vec<u8>> {
        first_certificate(&self.ca_pem)
    }

    /// The servers' certificate (DER), as both present it in the TLS handshake.
    pub fn server_cert_der(&self) -> Result<Vec<u8>> {
        first_certificate(&self.server_cert_pem)
    }

    /// The serial number of the servers' certificate as its DER content bytes: what a
    /// Konnektor's revocation list (the simulator's `revoked_serials`) holds.
    pub fn server_serial(&self) -> Result<Vec<u8>> {
        use der::Decode;
        let der = self.server_cert_der()?;
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| {
            ServerError::InvalidInput(format!("test server certificate unreadable: {e}"))
        })?;
        Ok(cert.tbs_certificate.serial_number.as_bytes().to_vec())
    }

    /// A rustls root store holding only the test CA: what a Rust client (such as the
    /// Clientmodul's SMTP/POP3 client side) needs to verify these servers.
    pub fn rustls_root_store(&self) -> Result<rustls::RootCertStore> {
        let pem =
            std::fs::read(&self.ca_pem).map_err(ServerError::io_path("reading", &self.ca_pem))?;
        let mut store = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(ServerError::io_path("parsing", &self.ca_pem))?;
            store.add(cert).map_err(|e| {
                ServerError::InvalidInput(format!("test CA rejected by rustls: {e}"))
            })?;
        }
        Ok(store)
    }
}

/// The first certificate of a PEM file, as DER.
fn first_certificate(pem: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(pem).map_err(ServerError::io_path("reading", pem))?;
    match rustls_pemfile::certs(&mut bytes.as_slice()).next() {
        Some(cert) => Ok(cert.map_err(ServerError::io_path("parsing", pem))?.to_vec()),
        None => Err(ServerError::InvalidInput(format!(
            "{}: no certificate",
            pem.display()
        ))),
    }
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| ServerError::InvalidInput(format!("non-UTF-8 path {}", p.display())))
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(ServerError::io("running openssl"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ServerError::Tool {
            tool: "openssl",
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
