//! `examples/komle-cm.toml` made real: every file it names (listener certificate and key, CAs,
//! the Konnektor client certificate and key, the key store with the `kim` entry and its
//! password file) is generated in a temporary directory and the paths point there. WHY:
//! `--check-config` and the start open these files, so the example only checks "ok" where
//! they exist.

#![allow(dead_code)] // each test binary uses a different subset

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::pki::{TestPki, pkcs12};

pub fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/komle-cm.toml")
}

/// The example as shipped (its files under /etc/komle-cm do not exist here).
pub fn example_text() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

/// The example with its files generated in `dir` and its listeners on port 0.
pub struct InstalledExample {
    pub dir: tempfile::TempDir,
    pub text: String,
}

impl InstalledExample {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `text` (the example, possibly edited) written to the directory; its path.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.path("komle-cm.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

pub fn install() -> InstalledExample {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let listener = LoopbackTls::generate("komle-cm").unwrap();
    let other = LoopbackTls::generate("other CA").unwrap();
    let write = |n: &str, text: &str| std::fs::write(p(n), text).unwrap();
    write("server.pem", &listener.server_cert_pem);
    write("server.key", &listener.server_key_pem);
    write("kim-provider-ca.pem", &other.ca_pem);
    write("konnektor-ca.pem", &other.ca_pem);
    write("vzd-ca.pem", &other.ca_pem);
    write("cm-client.pem", &other.server_cert_pem);
    write("cm-client.key", &other.server_key_pem);
    write("keystore-password", "store-pw\n");
    std::fs::set_permissions(
        p("keystore-password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // The provider's PKCS#12 imported as the operator does it.
    let now = SystemTime::now();
    let pki = TestPki::generate(now).unwrap();
    let set = pki.cm_tls(now).unwrap();
    std::fs::write(
        p("provider.p12"),
        pkcs12(&set.valid, &[&set.ca], "x", "transport").unwrap(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_komle-cm"))
        .args(["keys", "import", "--alias", "kim", "--store"])
        .arg(p("keys.p12"))
        .arg("--pkcs12")
        .arg(p("provider.p12"))
        .arg("--password-file")
        .arg(p("keystore-password"))
        .env("KOMLE_PKCS12_PASSWORD", "transport")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = format!("{}/", dir.path().display());
    let text = example_text()
        .replace(
            "/run/credentials/komle-cm.service/keystore-password",
            &format!("{root}keystore-password"),
        )
        .replace("/etc/komle-cm/", &root)
        .replace("127.0.0.1:4650", "127.0.0.1:0")
        .replace("127.0.0.1:9950", "127.0.0.1:0")
        .replace("127.0.0.1:9465", "127.0.0.1:0");
    InstalledExample { dir, text }
}
