//! Throwaway PKI for tests, made with the `openssl` CLI in a temp dir: a CA, a server
//! certificate for `localhost` and 127.0.0.1, and a client certificate (for mutual TLS).

use std::path::PathBuf;
use std::process::Command;

pub struct TestPki {
    pub dir: tempfile::TempDir,
}

impl TestPki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.path("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.path("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh CA (named `cn`) with a server and a client certificate.
pub fn make(cn: &str) -> TestPki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let subj = format!("/CN={cn}");
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    for (name, eku, san) in [
        ("server", "serverAuth", "DNS:localhost,IP:127.0.0.1,IP:::1"),
        ("client", "clientAuth", "DNS:clientmodul"),
    ] {
        std::fs::write(
            d.join(format!("{name}.ext")),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={eku}\nsubjectAltName={san}\n"
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    TestPki { dir }
}
