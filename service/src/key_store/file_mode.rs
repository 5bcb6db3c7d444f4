//! The store file belongs to the daemon's user alone (KOM-LE-A_2065).
//!
//! A new store is written to a temporary file created with mode 0600 (never briefly
//! world-readable, as a `write` followed by `chmod` would be) and renamed over the old one, so
//! a crash mid-write leaves the previous store intact. A store (or password file) that group or
//! others can read or write is refused instead of silently tightened: someone made it so, and
//! the operator has to know that the key may have been copied.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::KeyStoreError;

/// Permission bits that must be clear: every bit for group and others.
const GROUP_AND_OTHERS: u32 = 0o077;

/// Refuses `path` when group or others have any access to it.
pub fn check_private(path: &Path) -> Result<(), KeyStoreError> {
    let meta = std::fs::metadata(path).map_err(KeyStoreError::io(path, "cannot open"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & GROUP_AND_OTHERS != 0 {
        return Err(KeyStoreError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, the file created with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "keys.p12".to_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    // A leftover from a crashed run of this same process id would make create_new fail.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(KeyStoreError::io(&tmp, "cannot create"))?;
        // The umask can only remove bits; set the mode explicitly anyway in case the file
        // system ignores the creation mode.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(KeyStoreError::io(&tmp, "cannot chmod"))?;
        file.write_all(bytes)
            .map_err(KeyStoreError::io(&tmp, "cannot write"))?;
        file.sync_all()
            .map_err(KeyStoreError::io(&tmp, "cannot sync"))?;
        std::fs::rename(&tmp, path).map_err(KeyStoreError::io(path, "cannot replace"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
