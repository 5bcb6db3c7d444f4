//! Where the passwords come from: the store password from a password file (systemd
//! credentials style, `[keys] password_file`) or the environment (`KOMLE_KEYSTORE_PASSWORD`),
//! the provider's PKCS#12 password from `KOMLE_PKCS12_PASSWORD` or a prompt.
//!
//! Never from the command line: arguments are visible to every user in `ps`. Every password is
//! held in a [`Password`], which wipes its memory on drop and prints as `<redacted>`.
//! (The environment's own copy of a variable stays in the process environment: removing it
//! needs `unsafe` in Rust 2024 and would not clear `/proc/PID/environ`; prefer the file.)

use std::io::BufRead;
use std::path::Path;

use komle_core::secret::Password;
use zeroize::Zeroizing;

use super::{KeyStoreError, file_mode};

/// Environment variable holding the key store password when no password file is configured.
pub const STORE_PASSWORD_ENV: &str = "KOMLE_KEYSTORE_PASSWORD";
/// Environment variable holding the provider's PKCS#12 password for `keys import`.
pub const PKCS12_PASSWORD_ENV: &str = "KOMLE_PKCS12_PASSWORD";

/// The store password: from `password_file` when given (which must then be readable by the
/// owner only, like the store), else from [`STORE_PASSWORD_ENV`].
pub fn store_password(password_file: Option<&Path>) -> Result<Password, KeyStoreError> {
    match password_file {
        Some(path) => read_password_file(path),
        None => from_env(STORE_PASSWORD_ENV, "key store password")?.ok_or_else(|| {
            KeyStoreError::NoPassword {
                what: "key store password",
                hint: format!(
                    "set [keys] password_file (or --password-file) or the environment variable {STORE_PASSWORD_ENV}"
                ),
            }
        }),
    }
}

/// A password file: its first line (a trailing newline is not part of the password).
pub fn read_password_file(path: &Path) -> Result<Password, KeyStoreError> {
    file_mode::check_private(path)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(KeyStoreError::io(path, "cannot read"))?,
    );
    let line = text.lines().next().unwrap_or("");
    non_empty(Password::new(line), "key store password")
}

/// The variable's value, `None` when it is not set.
pub fn from_env(var: &str, what: &'static str) -> Result<Option<Password>, KeyStoreError> {
    match std::env::var(var) {
        Ok(value) => non_empty(Password::new(value), what).map(Some),
        Err(_) => Ok(None),
    }
}

/// One line from `input` (the line end is not part of the password).
pub fn read_line(input: &mut impl BufRead, what: &'static str) -> Result<Password, KeyStoreError> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .map_err(KeyStoreError::io(Path::new("stdin"), "cannot read"))?;
    let trimmed = line.trim_end_matches(['\n', '\r']);
    non_empty(Password::new(trimmed), what)
}

fn non_empty(p: Password, what: &'static str) -> Result<Password, KeyStoreError> {
    if p.expose().is_empty() {
        Err(KeyStoreError::EmptyPassword { what })
    } else {
        Ok(p)
    }
}
