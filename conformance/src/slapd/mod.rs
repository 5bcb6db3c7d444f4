//! OpenLDAP slapd started from a temp dir as the directory service (VZD) for tests.
//!
//! slapd.conf (`-f`) rather than cn=config: one small generated file is all a throw-away test
//! server needs. The database (mdb) is filled with `slapadd` before the server starts, so the
//! server is complete the moment it accepts connections. The process is killed on Drop.

mod config;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::{KOM_LE_SCHEMA, TestPki, VZD_BASE_DN, pem};

pub use config::{ADMIN_DN, ADMIN_PASSWORD};

/// Why slapd could not be started.
#[derive(Debug)]
pub enum SlapdError {
    Io(std::io::Error),
    /// slapadd or slapd exited with an error; stderr attached.
    Failed(String),
    /// Did not accept connections within the start timeout.
    Timeout,
}

impl std::fmt::Display for SlapdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlapdError::Io(e) => write!(f, "I/O: {e}"),
            SlapdError::Failed(e) => write!(f, "slapd failed: {e}"),
            SlapdError::Timeout => f.write_str("slapd did not answer in time"),
        }
    }
}

impl std::error::Error for SlapdError {}

impl From<std::io::Error> for SlapdError {
    fn from(e: std::io::Error) -> Self {
        SlapdError::Io(e)
    }
}

/// PEM files for ldaps.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// What to serve.
#[derive(Debug, Clone, Default)]
pub struct SlapdConfig {
    /// Entries below `dc=data,dc=vzd` (including the base entry).
    pub ldif: String,
    /// Also listen with ldaps using these files.
    pub tls: Option<TlsFiles>,
    /// Load the `komLeData` test schema.
    pub kom_le_schema: bool,
    /// Refuse anonymous reads (binds with [`ADMIN_DN`]/[`ADMIN_PASSWORD`] still work).
    pub require_bind: bool,
}

/// A running slapd; killed on Drop.
pub struct Slapd {
    child: Option<Child>,
    /// The config and database; `None` only inside [`Slapd::spawn`].
    _dir: Option<tempfile::TempDir>,
    url: String,
    ldaps_url: Option<String>,
}

/// A port for slapd (see [`crate::servers::process::free_port`] for why not port 0).
fn free_port() -> std::io::Result<u16> {
    crate::servers::process::free_port().map_err(|e| std::io::Error::other(e.to_string()))
}

fn write(dir: &Path, name: &str, text: &str) -> std::io::Result<String> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p.to_string_lossy().into_owned())
}

impl Slapd {
    /// Starts slapd for the whole test PKI directory (with komLeData), optionally with ldaps.
    pub fn start_with_pki(pki: &TestPki, tls: bool) -> Result<Slapd, SlapdError> {
        Slapd::start(SlapdConfig {
            ldif: pki.ldif(true),
            tls: tls.then(|| TlsFiles {
                ca_pem: pki.ca.cert_pem(),
                cert_pem: pki.tls_server.cert_pem(),
                key_pem: pem("PRIVATE KEY", &pki.tls_server.private_key_pkcs8_der),
            }),
            kom_le_schema: true,
            require_bind: false,
        })
    }

    pub fn start(config: SlapdConfig) -> Result<Slapd, SlapdError> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("db");
        std::fs::create_dir(&db)?;
        let schema = config
            .kom_le_schema
            .then(|| write(dir.path(), "komle.schema", KOM_LE_SCHEMA))
            .transpose()?;
        let tls = match &config.tls {
            Some(t) => Some((
                write(dir.path(), "ca.pem", &t.ca_pem)?,
                write(dir.path(), "server.pem", &t.cert_pem)?,
                write(dir.path(), "server.key", &t.key_pem)?,
            )),
            None => None,
        };
        let conf_text = config::slapd_conf(&config::ConfParams {
            dir: dir.path(),
            db: &db,
            schema: schema.as_deref(),
            tls: tls
                .as_ref()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
            require_bind: config.require_bind,
        });
        let conf = write(dir.path(), "slapd.conf", &conf_text)?;
        let ldif = write(dir.path(), "data.ldif", &config.ldif)?;

        let out = Command::new("/usr/sbin/slapadd")
            .args(["-f", &conf, "-l", &ldif])
            .output()?;
        if !out.status.success() {
            return Err(SlapdError::Failed(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }

        // A port taken by another test's server between the pick and slapd's bind makes slapd
        // exit at once: pick again (the failed attempt's child is reaped by its Drop).
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::spawn(&conf, tls.is_some()) {
                Ok(mut slapd) => {
                    slapd._dir = Some(dir);
                    return Ok(slapd);
                }
                Err(SlapdError::Failed(_)) if attempt < 3 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts slapd on freshly picked ports and waits until it listens; the caller hands it its
    /// temp dir.
    fn spawn(conf: &str, tls: bool) -> Result<Slapd, SlapdError> {
        let port = free_port()?;
        let url = format!("ldap://127.0.0.1:{port}");
        let ldaps_port = if tls { Some(free_port()?) } else { None };
        let ldaps_url = ldaps_port.map(|p| format!("ldaps://127.0.0.1:{p}"));
        let mut listen = format!("{url}/");
        if let Some(u) = &ldaps_url {
            listen.push_str(&format!(" {u}/"));
        }
        // `-d 0` keeps slapd in the foreground (so it is our child and dies with the test)
        // without debug output.
        let child = Command::new("/usr/sbin/slapd")
            .args(["-f", conf, "-h", &listen, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut slapd = Slapd {
            child: Some(child),
            _dir: None,
            url,
            ldaps_url,
        };
        slapd.wait_until_listening(port)?;
        if let Some(p) = ldaps_port {
            slapd.wait_until_listening(p)?;
        }
        Ok(slapd)
    }

    fn wait_until_listening(&mut self, port: u16) -> Result<(), SlapdError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(SlapdError::Failed(format!("exited with {status}: {err}")));
            }
            if Instant::now() > deadline {
                return Err(SlapdError::Timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ldap://127.0.0.1:<port>`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `ldaps://127.0.0.1:<port>` when started with TLS.
    pub fn ldaps_url(&self) -> Option<&str> {
        self.ldaps_url.as_deref()
    }

    pub fn base_dn(&self) -> &'static str {
        VZD_BASE_DN
    }

    /// Stops the server now (the "directory down" case); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
