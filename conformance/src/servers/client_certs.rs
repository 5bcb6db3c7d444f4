//! The client side of mutual TLS with these servers (KOM-LE-A_2074, A_2182-01): the
//! Clientmodul's C.CM.TLS-CS identities as a practice has them after `komle-cm keys import`,
//! and the CA file that makes Postfix and Dovecot require them ([`Options`]).
//!
//! WHY through the real key store: the end-to-end beds should cover what an operator does —
//! the provider's password-protected PKCS#12 imported into komle-cm's store (A_18783,
//! A_2065), the daemon reading it at start — not a shortcut that hands komle-cm PEM files.
//! Test clients that talk to the servers directly (a baseline measurement, a comparison of
//! replies) get the valid identity as PEM files ([`ClientCertificates::cert_pem`]) or as a
//! rustls configuration built from the same store.
//!
//! Everything lives in the caller's temp dir; the key material is test material generated per
//! run, and it goes when the temp dir goes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use komle_core::secret::Password;
use komle_service::key_store::KeyStore;

use super::Options;
use super::error::{Result, ServerError};
use crate::pki::{CmTlsSet, KeyMaterial, pkcs12};

/// Key store alias of the valid C.CM.TLS-CS (what `[upstream] client_identity` names).
pub const VALID_ALIAS: &str = "kim";
/// Key store alias of a C.CM.TLS-CS from the same CA whose validity has ended.
pub const EXPIRED_ALIAS: &str = "expired";
/// Key store alias of a C.CM.TLS-CS from a CA the servers do not trust.
pub const WRONG_CA_ALIAS: &str = "wrong-ca";

/// Store password of the generated key store (test data).
const STORE_PASSWORD: &str = "komle-cm-test-store";
/// Transport password of the provider's PKCS#12 files (test data).
const TRANSPORT_PASSWORD: &str = "vom-Anbieter";

/// Files for mutual TLS, written by [`ClientCertificates::write`].
#[derive(Debug, Clone)]
pub struct ClientCertificates {
    /// PEM of the CA whose client certificates the servers accept (the test TI CA).
    pub client_ca_pem: PathBuf,
    /// komle-cm's key store (`[keys] store`, mode 0600) with the entries [`VALID_ALIAS`],
    /// [`EXPIRED_ALIAS`] and [`WRONG_CA_ALIAS`].
    pub store: PathBuf,
    /// The store password (`[keys] password_file`, mode 0600).
    pub password_file: PathBuf,
    /// The valid C.CM.TLS-CS certificate (PEM), for test clients that go straight to the servers.
    pub cert_pem: PathBuf,
    /// Its private key (PKCS#8 PEM, mode 0600).
    pub key_pem: PathBuf,
}

impl ClientCertificates {
    /// Writes the files into `dir` (which must exist): each identity of `set` as the
    /// provider's PKCS#12, imported into a new key store as an operator would.
    pub fn write(dir: &Path, set: &CmTlsSet) -> Result<ClientCertificates> {
        let files = ClientCertificates {
            client_ca_pem: dir.join("client-ca.pem"),
            store: dir.join("keys.p12"),
            password_file: dir.join("keys.password"),
            cert_pem: dir.join("cm-tls.pem"),
            key_pem: dir.join("cm-tls.key"),
        };
        write_mode(&files.client_ca_pem, set.ca.cert_pem().as_bytes(), 0o644)?;
        write_mode(&files.cert_pem, set.valid.cert_pem().as_bytes(), 0o644)?;
        write_mode(
            &files.key_pem,
            set.valid.private_key_pem().as_bytes(),
            0o600,
        )?;
        write_mode(
            &files.password_file,
            format!("{STORE_PASSWORD}\n").as_bytes(),
            0o600,
        )?;
        let failed = |what: &str| {
            let what = what.to_owned();
            move |e: komle_service::key_store::KeyStoreError| {
                ServerError::ClientCertificates(format!("{what}: {e}"))
            }
        };
        let mut store = KeyStore::open_or_create(&files.store, Password::new(STORE_PASSWORD))
            .map_err(failed("key store"))?;
        let entries: [(&str, &KeyMaterial, &KeyMaterial); 3] = [
            (VALID_ALIAS, &set.valid, &set.ca),
            (EXPIRED_ALIAS, &set.expired, &set.ca),
            (WRONG_CA_ALIAS, &set.wrong_ca, &set.wrong_ca_root),
        ];
        for (alias, leaf, issuer) in entries {
            let p12 = pkcs12(leaf, &[issuer], alias, TRANSPORT_PASSWORD)
                .map_err(|e| ServerError::ClientCertificates(format!("PKCS#12 {alias}: {e}")))?;
            let file = dir.join(format!("provider-{alias}.p12"));
            write_mode(&file, &p12, 0o600)?;
            store
                .import_pkcs12(alias, &file, &Password::new(TRANSPORT_PASSWORD), false)
                .map_err(failed(&format!("import {alias}")))?;
            // The provider's file is not needed after the import (as in the field).
            std::fs::remove_file(&file).map_err(ServerError::io_path("removing", &file))?;
        }
        store.save().map_err(failed("saving the key store"))?;
        Ok(files)
    }

    /// Server options that require a client certificate from [`Self::client_ca_pem`].
    pub fn server_options(&self) -> Options {
        Options::require_client_certificates(&self.client_ca_pem)
    }

    /// The `[keys]` section of a komle-cm configuration naming this store.
    pub fn keys_section(&self) -> String {
        format!(
            "[keys]\nstore = \"{}\"\npassword_file = \"{}\"\n",
            self.store.display(),
            self.password_file.display()
        )
    }

    /// A rustls client configuration that trusts `server_ca` (PEM) and presents the store's
    /// identity `alias`: for Rust test clients that talk to the servers directly.
    pub fn rustls_client_config(
        &self,
        server_ca: &Path,
        alias: &str,
    ) -> Result<Arc<rustls::ClientConfig>> {
        let identity = KeyStore::open(&self.store, Password::new(STORE_PASSWORD))
            .and_then(|store| store.client_identity(alias))
            .map_err(|e| ServerError::ClientCertificates(format!("key store: {e}")))?;
        komle_service::tls::client_config_with_identity(Some(server_ca), identity)
            .map_err(|e| ServerError::ClientCertificates(format!("TLS client: {e}")))
    }
}

/// Writes `bytes` to `path` with `mode` (the key store refuses a password file others can read).
fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    std::fs::write(path, bytes).map_err(ServerError::io_path("writing", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(ServerError::io_path("chmod", path))
}
