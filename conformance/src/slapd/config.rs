//! The generated slapd.conf.

use std::path::Path;

use crate::pki::VZD_BASE_DN;

/// rootdn of the test directory; its password is [`ADMIN_PASSWORD`].
pub const ADMIN_DN: &str = "cn=admin,dc=data,dc=vzd";
/// Test-only password of [`ADMIN_DN`].
pub const ADMIN_PASSWORD: &str = "vzd-test-secret";

pub(crate) struct ConfParams<'a> {
    pub dir: &'a Path,
    pub db: &'a Path,
    pub schema: Option<&'a str>,
    /// (CA, certificate, key) PEM paths.
    pub tls: Option<(&'a str, &'a str, &'a str)>,
    pub require_bind: bool,
}

pub(crate) fn slapd_conf(p: &ConfParams<'_>) -> String {
    let mut c = String::new();
    for s in ["core", "cosine", "inetorgperson"] {
        c.push_str(&format!("include /etc/ldap/schema/{s}.schema\n"));
    }
    if let Some(s) = p.schema {
        c.push_str(&format!("include {s}\n"));
    }
    c.push_str("modulepath /usr/lib/ldap\nmoduleload back_mdb\n");
    c.push_str(&format!(
        "pidfile {}/slapd.pid\nargsfile {}/slapd.args\n",
        p.dir.display(),
        p.dir.display()
    ));
    if let Some((ca, cert, key)) = p.tls {
        c.push_str(&format!(
            "TLSCACertificateFile {ca}\nTLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n"
        ));
    }
    c.push_str(&format!(
        "database mdb\nmaxsize 104857600\nsuffix \"{VZD_BASE_DN}\"\nrootdn \"{ADMIN_DN}\"\nrootpw {ADMIN_PASSWORD}\ndirectory {}\nindex mail eq\nsizelimit 500\n",
        p.db.display()
    ));
    if p.require_bind {
        c.push_str("access to * by users read by anonymous auth\n");
    } else {
        c.push_str("access to * by * read\n");
    }
    c
}
