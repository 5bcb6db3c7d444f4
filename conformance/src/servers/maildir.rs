//! Reading and writing the users' Maildirs directly.
//!
//! WHY: tests must see exactly the bytes a server stored (to prove delivery and byte-correct
//! retrieval), and POP3 tests need messages in a mailbox without going through SMTP. Dovecot
//! picks up files that appear in `new/` like any other Maildir delivery.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{Result, ServerError};

/// The Maildir of `address` under `mail_root`: `<mail_root>/<domain>/<local part>` (Dovecot's
/// `%d/%n`, lower-cased like `auth_username_format = %Lu`).
pub fn maildir_of(mail_root: &Path, address: &str) -> Result<PathBuf> {
    let lower = address.to_ascii_lowercase();
    let (local, domain) = split_address(&lower)?;
    Ok(mail_root.join(domain).join(local))
}

/// Splits `local@domain`, rejecting anything that could escape the mail root.
pub fn split_address(address: &str) -> Result<(&str, &str)> {
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| ServerError::InvalidInput(format!("{address:?} has no '@'")))?;
    let bad = |s: &str| s.is_empty() || s.contains(['/', '\0']) || s == "." || s == "..";
    if bad(local) || bad(domain) {
        return Err(ServerError::InvalidInput(format!(
            "{address:?} is not a usable mailbox address"
        )));
    }
    Ok((local, domain))
}

/// The files of all messages in `new/` and `cur/`, oldest delivery first.
pub fn message_files(maildir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let dir = maildir.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ServerError::io_path("listing", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(ServerError::io_path("listing", &dir))?;
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                files.push(entry.path());
            }
        }
    }
    files.sort_by_key(|p| delivery_key(p));
    Ok(files)
}

/// Sort key from a Maildir file name `<secs>.M<micros>P<pid>…`: numeric, because the
/// microsecond field is not zero-padded and a plain string sort would misorder it.
fn delivery_key(path: &Path) -> (u64, u64, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = name.splitn(2, '.');
    let secs = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let micros = parts
        .next()
        .and_then(|rest| rest.strip_prefix('M'))
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    (secs, micros, name)
}

/// Contents of all messages, oldest first.
pub fn read_messages(maildir: &Path) -> Result<Vec<Vec<u8>>> {
    message_files(maildir)?
        .iter()
        .map(|p| std::fs::read(p).map_err(ServerError::io_path("reading", p)))
        .collect()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Stores `bytes` unchanged as a new message: written to `tmp/`, then renamed into `new/` (the
/// Maildir delivery protocol, so Dovecot never sees a half-written file). The directories and
/// file are owned by `owner` (uid, gid), the user Dovecot accesses mail as.
pub fn deliver(maildir: &Path, bytes: &[u8], owner: (u32, u32)) -> Result<PathBuf> {
    ensure_maildir(maildir, owner)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "{}.M{}P{}Q{}.komle-harness,S={}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        bytes.len()
    );
    let tmp = maildir.join("tmp").join(&name);
    let new = maildir.join("new").join(&name);
    std::fs::write(&tmp, bytes).map_err(ServerError::io_path("writing", &tmp))?;
    chown(&tmp, Some(owner.0), Some(owner.1)).map_err(ServerError::io_path("chown", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(ServerError::io_path("chmod", &tmp))?;
    std::fs::rename(&tmp, &new).map_err(ServerError::io_path("renaming into", &new))?;
    Ok(new)
}

/// Creates `maildir/{cur,new,tmp}` (and the domain directory) owned by `owner`, mode 0700.
fn ensure_maildir(maildir: &Path, owner: (u32, u32)) -> Result<()> {
    let mut dirs = vec![];
    if let Some(parent) = maildir.parent() {
        dirs.push(parent.to_path_buf());
    }
    dirs.push(maildir.to_path_buf());
    for sub in ["cur", "new", "tmp"] {
        dirs.push(maildir.join(sub));
    }
    for d in dirs {
        if !d.exists() {
            std::fs::create_dir_all(&d).map_err(ServerError::io_path("creating", &d))?;
            chown(&d, Some(owner.0), Some(owner.1)).map_err(ServerError::io_path("chown", &d))?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                .map_err(ServerError::io_path("chmod", &d))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_address_rejects_path_escapes() {
        assert!(split_address("a@b.example").is_ok());
        assert!(split_address("no-at-sign").is_err());
        assert!(split_address("../x@b.example").is_err());
        assert!(split_address("a@..").is_err());
        assert!(split_address("@b.example").is_err());
    }

    #[test]
    fn delivery_order_is_numeric_not_lexical() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = dir.path().join("m");
        let uid = (0, 0);
        deliver(&md, b"first", uid).expect("deliver");
        // A later second with a shorter microsecond field must still sort after.
        std::fs::write(md.join("new").join("9999999999.M5P1.x,S=6"), b"second").expect("write");
        std::fs::write(md.join("cur").join("9999999999.M40P1.x,S=5:2,S"), b"third").expect("write");
        let msgs = read_messages(&md).expect("read");
        assert_eq!(
            msgs,
            vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
        );
    }
}
