//! The PKCS#12 format in and out, through the `p12-keystore` crate (no hand-written ASN.1 or
//! PBE: PKCS#12 has too many legacy corners, RC2/3DES bags, BMPString passwords, MAC variants,
//! to get right by hand).
//!
//! Reading accepts what providers hand out (PBES2/AES as OpenSSL 3 writes it, and the legacy
//! 3DES/RC2 schemes). The store is written with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and an
//! HMAC-SHA256 MAC, so `openssl pkcs12 -info -in keys.p12` can inspect it.
//!
//! The crate keeps its decrypted key bytes in plain `Vec`s that are not wiped when it drops
//! them; this module copies them into wiped buffers at once and drops the crate's structures
//! right away, so such copies live only for the duration of a call.

use std::path::Path;

use komle_core::secret::Password;
use p12_keystore::error::Error as P12Error;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore as P12Store, KeyStoreEntry, MacAlgorithm,
    PrivateKeyChain,
};
use zeroize::Zeroizing;

use super::KeyStoreError;

/// PBKDF2 iterations for the store's key bags and MAC: far above the crate's default of
/// 10 000, still only a fraction of a second when the daemon opens the store.
const ITERATIONS: u64 = 200_000;

/// One private key with its chain, as read from a PKCS#12 file.
pub(crate) struct KeyEntry {
    pub alias: String,
    /// PKCS#8 `PrivateKeyInfo` DER.
    pub key: Zeroizing<Vec<u8>>,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
}

/// Which file is being read: decides which error a wrong password becomes.
#[derive(Clone, Copy)]
pub(crate) enum Source {
    Store,
    Provider,
}

/// Every key entry of a PKCS#12 file (certificate-only entries are ignored).
pub(crate) fn read(
    bytes: &[u8],
    password: &Password,
    path: &Path,
    source: Source,
) -> Result<Vec<KeyEntry>, KeyStoreError> {
    let store =
        P12Store::from_pkcs12(bytes, password.expose()).map_err(|e| map_error(e, path, source))?;
    let mut out = Vec::new();
    for (alias, entry) in store.entries() {
        if let KeyStoreEntry::PrivateKeyChain(chain) = entry {
            out.push(KeyEntry {
                alias: alias.clone(),
                key: Zeroizing::new(chain.key().to_vec()),
                chain: chain.chain().iter().map(|c| c.as_der().to_vec()).collect(),
            });
        }
    }
    Ok(out)
}

/// The store file's bytes for `entries`, encrypted and MACed under `password`.
pub(crate) fn write<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a [u8], &'a [Vec<u8>])>,
    password: &Password,
    path: &Path,
) -> Result<Vec<u8>, KeyStoreError> {
    let mut store = P12Store::new();
    for (alias, key, chain) in entries {
        let certs = chain
            .iter()
            .map(|der| Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| KeyStoreError::MalformedStore {
                path: path.to_path_buf(),
                detail: format!("entry {alias:?}: certificate: {e}"),
            })?;
        // localKeyId links the key bag to its certificate bag; the alias is unique per store.
        let id = format!("komle-cm:{alias}");
        store.add_entry(
            alias,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key, id.as_bytes(), certs)),
        );
    }
    store
        .writer(password.expose())
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| KeyStoreError::MalformedStore {
            path: path.to_path_buf(),
            detail: format!("cannot encode: {e}"),
        })
}

fn map_error(e: P12Error, path: &Path, source: Source) -> KeyStoreError {
    let path = path.to_path_buf();
    // A wrong password fails the MAC check; files without a MAC fail to decrypt instead.
    let wrong_password = matches!(
        e,
        P12Error::MacError(_) | P12Error::UnpadError | P12Error::Pkcs5Error(_)
    );
    match (wrong_password, source) {
        (true, Source::Store) => KeyStoreError::WrongStorePassword { path },
        (true, Source::Provider) => KeyStoreError::WrongPkcs12Password { path },
        (false, Source::Store) => KeyStoreError::MalformedStore {
            path,
            detail: e.to_string(),
        },
        (false, Source::Provider) => KeyStoreError::MalformedPkcs12 {
            path,
            detail: e.to_string(),
        },
    }
}
