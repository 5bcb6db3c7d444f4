//! The Clientmodul's key store: the TLS keys and certificates it authenticates with, kept in
//! one password-protected file (KOM-LE-A_2065).
//!
//! The mail service provider hands the practice a password-protected PKCS#12 with the
//! C.CM.TLS-CS key and certificate chain (KOM-LE-A_2301-02, A_18783). `komle-cm keys import`
//! reads it with the transport password and stores its key under an alias in the store, itself
//! a PKCS#12 file holding several entries, re-encrypted under the store password. Nothing of
//! the key material ships with the software (KOM-LE-A_2300): the store is created on the
//! practice's machine by the import. The daemon opens the store at start and hands the entry
//! named by `[upstream] client_identity` to rustls as its client certificate towards the MTA
//! and the POP3 server (KOM-LE-A_2074, A_2182-01; see [`crate::tls::upstream_client_config`]).
//!
//! Protection: the store file is created with mode 0600 and a store readable by group or
//! others is refused ([`file_mode`]); the store password comes from a password file or the
//! environment, never the command line ([`password`]); keys live in wiped buffers and no
//! `Debug` output here shows key bytes or passwords.
//!
//! - [`KeyStore`]: open / create, import, list, remove, save, [`KeyStore::client_identity`].
//! - [`ClientIdentity`] / [`EntryInfo`]: what the store hands out ([`identity`]).
//! - [`KeyStoreError`]: one typed error, one line each ([`error`]).

pub mod error;
pub mod file_mode;
pub mod identity;
pub mod password;
mod pkcs12;
pub mod prompt;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use komle_core::secret::Password;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::{Zeroize, Zeroizing};

pub use error::KeyStoreError;
pub use identity::{ClientIdentity, EntryInfo};

use pkcs12::Source;

/// Longest alias accepted (they are names an operator types, not data).
const MAX_ALIAS_LEN: usize = 64;

/// One stored key with its chain.
struct Stored {
    key: Zeroizing<Vec<u8>>,
    chain: Vec<Vec<u8>>,
    info: EntryInfo,
}

/// An opened key store: its entries in memory, written back by [`KeyStore::save`].
pub struct KeyStore {
    path: PathBuf,
    password: Password,
    entries: BTreeMap<String, Stored>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("aliases", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Opens an existing store: refused when group or others may access the file, or when
    /// the password does not open it ([`KeyStoreError::WrongStorePassword`]).
    pub fn open(path: &Path, password: Password) -> Result<KeyStore, KeyStoreError> {
        if password.expose().is_empty() {
            return Err(KeyStoreError::EmptyPassword {
                what: "key store password",
            });
        }
        file_mode::check_private(path)?;
        let bytes = std::fs::read(path).map_err(KeyStoreError::io(path, "cannot read"))?;
        let mut entries = BTreeMap::new();
        for e in pkcs12::read(&bytes, &password, path, Source::Store)? {
            let stored = validate(&e.alias, e.key, e.chain).map_err(|detail| {
                KeyStoreError::MalformedStore {
                    path: path.to_path_buf(),
                    detail,
                }
            })?;
            entries.insert(e.alias, stored);
        }
        Ok(KeyStore {
            path: path.to_path_buf(),
            password,
            entries,
        })
    }

    /// A new, empty store at `path` (nothing is written before [`KeyStore::save`]). A store
    /// already there is opened instead, so the password must fit it.
    pub fn open_or_create(path: &Path, password: Password) -> Result<KeyStore, KeyStoreError> {
        if path.exists() {
            return Self::open(path, password);
        }
        if password.expose().is_empty() {
            return Err(KeyStoreError::EmptyPassword {
                what: "key store password",
            });
        }
        Ok(KeyStore {
            path: path.to_path_buf(),
            password,
            entries: BTreeMap::new(),
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry: alias, subject, notAfter (sorted by alias). No key material.
    pub fn list(&self) -> Vec<EntryInfo> {
        self.entries.values().map(|s| s.info.clone()).collect()
    }

    /// Imports the key and chain of the provider's PKCS#12 file under `alias` (A_18783). The
    /// file must hold exactly one key with its certificate, of a type the TLS stack can use
    /// and matching the certificate. An existing alias is only overwritten with `replace`.
    /// Call [`KeyStore::save`] to write the store.
    pub fn import_pkcs12(
        &mut self,
        alias: &str,
        pkcs12_file: &Path,
        pkcs12_password: &Password,
        replace: bool,
    ) -> Result<EntryInfo, KeyStoreError> {
        check_alias(alias)?;
        if !replace && self.entries.contains_key(alias) {
            return Err(KeyStoreError::AliasExists {
                alias: alias.to_owned(),
            });
        }
        let bytes =
            std::fs::read(pkcs12_file).map_err(KeyStoreError::io(pkcs12_file, "cannot read"))?;
        let mut keys = pkcs12::read(&bytes, pkcs12_password, pkcs12_file, Source::Provider)?;
        let entry = match keys.len() {
            0 => {
                return Err(KeyStoreError::NoPrivateKey {
                    path: pkcs12_file.to_path_buf(),
                });
            }
            1 => keys.remove(0),
            count => {
                return Err(KeyStoreError::SeveralPrivateKeys {
                    path: pkcs12_file.to_path_buf(),
                    count,
                });
            }
        };
        let stored = validate(alias, entry.key, entry.chain).map_err(|detail| {
            KeyStoreError::UnsupportedKey {
                alias: alias.to_owned(),
                detail,
            }
        })?;
        let info = stored.info.clone();
        self.entries.insert(alias.to_owned(), stored);
        Ok(info)
    }

    /// Removes the entry (call [`KeyStore::save`] to write the store).
    pub fn remove(&mut self, alias: &str) -> Result<EntryInfo, KeyStoreError> {
        self.entries
            .remove(alias)
            .map(|s| s.info.clone())
            .ok_or_else(|| KeyStoreError::UnknownAlias {
                alias: alias.to_owned(),
            })
    }

    /// Writes the store (mode 0600, atomically replacing the old file).
    pub fn save(&self) -> Result<(), KeyStoreError> {
        let bytes = pkcs12::write(
            self.entries
                .iter()
                .map(|(alias, s)| (alias.as_str(), s.key.as_slice(), s.chain.as_slice())),
            &self.password,
            &self.path,
        )?;
        file_mode::write_private(&self.path, &bytes)
    }

    /// What `keys list` shows about `alias`.
    pub fn info(&self, alias: &str) -> Result<EntryInfo, KeyStoreError> {
        self.entries
            .get(alias)
            .map(|s| s.info.clone())
            .ok_or_else(|| KeyStoreError::UnknownAlias {
                alias: alias.to_owned(),
            })
    }

    /// The chain and key stored under `alias`, for rustls (KOM-LE-A_2182-01).
    pub fn client_identity(&self, alias: &str) -> Result<ClientIdentity, KeyStoreError> {
        let s = self
            .entries
            .get(alias)
            .ok_or_else(|| KeyStoreError::UnknownAlias {
                alias: alias.to_owned(),
            })?;
        Ok(ClientIdentity::new(s.chain.clone(), &s.key))
    }
}

/// Aliases are names an operator types and reads in `keys list`: printable, no surrounding
/// blanks, bounded.
fn check_alias(alias: &str) -> Result<(), KeyStoreError> {
    let ok = !alias.is_empty()
        && alias.chars().count() <= MAX_ALIAS_LEN
        && alias.trim() == alias
        && !alias.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(KeyStoreError::InvalidAlias {
            alias: alias.chars().take(MAX_ALIAS_LEN).collect(),
        })
    }
}

/// Checks that rustls can use the key and that it belongs to the leaf certificate.
fn validate(alias: &str, key: Zeroizing<Vec<u8>>, chain: Vec<Vec<u8>>) -> Result<Stored, String> {
    let leaf = chain.first().ok_or("no certificate for the key")?;
    let info = EntryInfo::from_leaf(alias, leaf, chain.len())?;
    let certs: Vec<CertificateDer<'static>> =
        chain.iter().cloned().map(CertificateDer::from).collect();
    let mut der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec()));
    // The key type must be one ring signs with (RSA, ECDSA P-256/P-384, Ed25519; not
    // brainpool), and the key must belong to the leaf certificate.
    let signer = rustls::crypto::ring::sign::any_supported_type(&der);
    der.zeroize();
    let signer = signer.map_err(|e| e.to_string())?;
    match rustls::sign::CertifiedKey::new(certs, signer).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(Stored { key, chain, info })
}

#[cfg(test)]
mod tests;
