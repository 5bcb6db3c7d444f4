//! What can go wrong with the key store, as one typed error an operator reads as one line.
//!
//! The variants an operator fixes by giving different input (a password, an alias, a file with
//! other permissions) map to exit code 2, the ones the machine has to fix (a disk that cannot be
//! written) to 1, as for the configuration (see [`crate::cli`]). No variant carries a password
//! or key bytes, so printing one can never leak them.

use std::fmt;
use std::path::PathBuf;

/// A key store or PKCS#12 import problem.
#[derive(Debug)]
pub enum KeyStoreError {
    /// Reading or writing a file failed.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// The store (or the password file) is readable or writable by group or others
    /// (KOM-LE-A_2065: the store holds the private key; it must be the daemon's alone).
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// The store's integrity check failed: wrong store password (or a tampered file).
    WrongStorePassword { path: PathBuf },
    /// The provider's PKCS#12 did not open with the given password.
    WrongPkcs12Password { path: PathBuf },
    /// The store file is not a PKCS#12 this module can read.
    MalformedStore { path: PathBuf, detail: String },
    /// The provider's file is not a readable PKCS#12, or its contents are unusable.
    MalformedPkcs12 { path: PathBuf, detail: String },
    /// The provider's PKCS#12 holds no private key with its certificate.
    NoPrivateKey { path: PathBuf },
    /// The provider's PKCS#12 holds several keys; which one is meant is unclear.
    SeveralPrivateKeys { path: PathBuf, count: usize },
    /// The key's type cannot be used by the TLS stack (rustls with ring).
    UnsupportedKey { alias: String, detail: String },
    /// No entry under this alias.
    UnknownAlias { alias: String },
    /// An entry under this alias exists already (import with replace to overwrite it).
    AliasExists { alias: String },
    /// The alias is empty, too long or contains control characters.
    InvalidAlias { alias: String },
    /// No store password given: neither the password file nor the environment variable.
    NoPassword { what: &'static str, hint: String },
    /// An empty password was given where one is required.
    EmptyPassword { what: &'static str },
}

impl KeyStoreError {
    /// 2 for what the operator fixes by giving other input, 1 for I/O failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            KeyStoreError::Io { .. } => 1,
            _ => 2,
        }
    }

    pub(crate) fn io(
        path: &std::path::Path,
        action: &'static str,
    ) -> impl FnOnce(std::io::Error) -> KeyStoreError {
        let path = path.to_path_buf();
        move |source| KeyStoreError::Io {
            path,
            action,
            source,
        }
    }
}

impl fmt::Display for KeyStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KeyStoreError::*;
        match self {
            Io {
                path,
                action,
                source,
            } => write!(f, "{}: {action}: {source}", path.display()),
            InsecurePermissions { path, mode } => write!(
                f,
                "{}: readable or writable by others (mode {mode:04o}); allow the owner only: chmod 600 {}",
                path.display(),
                path.display()
            ),
            WrongStorePassword { path } => write!(
                f,
                "{}: wrong key store password (or the store was modified)",
                path.display()
            ),
            WrongPkcs12Password { path } => {
                write!(f, "{}: wrong PKCS#12 password", path.display())
            }
            MalformedStore { path, detail } => {
                write!(f, "{}: not a readable key store: {detail}", path.display())
            }
            MalformedPkcs12 { path, detail } => {
                write!(f, "{}: not a usable PKCS#12 file: {detail}", path.display())
            }
            NoPrivateKey { path } => write!(
                f,
                "{}: holds no private key with its certificate",
                path.display()
            ),
            SeveralPrivateKeys { path, count } => write!(
                f,
                "{}: holds {count} private keys; import a file with exactly one",
                path.display()
            ),
            UnsupportedKey { alias, detail } => {
                write!(f, "key {alias:?}: not usable for TLS: {detail}")
            }
            UnknownAlias { alias } => write!(f, "no key store entry {alias:?}"),
            AliasExists { alias } => write!(
                f,
                "key store entry {alias:?} exists already (remove it first or import with --replace)"
            ),
            InvalidAlias { alias } => write!(
                f,
                "alias {alias:?}: use 1 to 64 printable characters without spaces at either end"
            ),
            NoPassword { what, hint } => write!(f, "no {what} given: {hint}"),
            EmptyPassword { what } => write!(f, "the {what} is empty"),
        }
    }
}

impl std::error::Error for KeyStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyStoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
