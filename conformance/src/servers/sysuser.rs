//! Looks up the system users and groups the servers run as (`mail`, `postfix`, `postdrop`).
//!
//! WHY: we run as root, but Dovecot refuses to deliver mail as uid 0 and Postfix insists that its
//! queue directories belong to `mail_owner`. Reading `/etc/passwd` and `/etc/group` directly avoids
//! unsafe `getpwnam` calls and works for the Debian packages installed on CI.

use super::error::{Result, ServerError};

/// Numeric uid of a user from `/etc/passwd`.
pub fn uid(name: &str) -> Result<u32> {
    lookup("/etc/passwd", name, 2)
}

/// Numeric gid of a group from `/etc/group`.
pub fn gid(name: &str) -> Result<u32> {
    lookup("/etc/group", name, 2)
}

/// Primary gid of a user from `/etc/passwd`.
pub fn primary_gid(name: &str) -> Result<u32> {
    lookup("/etc/passwd", name, 3)
}

fn lookup(file: &str, name: &str, field: usize) -> Result<u32> {
    let text = std::fs::read_to_string(file).map_err(ServerError::io(format!("reading {file}")))?;
    parse(&text, name, field)
        .ok_or_else(|| ServerError::InvalidInput(format!("no entry {name:?} in {file}")))
}

fn parse(text: &str, name: &str, field: usize) -> Option<u32> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(field)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn finds_uid_and_gid_fields_by_name() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nmail:x:8:12:mail:/var/mail:/usr/sbin/nologin\n";
        assert_eq!(parse(passwd, "mail", 2), Some(8));
        assert_eq!(parse(passwd, "mail", 3), Some(12));
        assert_eq!(parse(passwd, "nobody", 2), None);
        assert_eq!(parse("broken:x:notanumber:0\n", "broken", 2), None);
    }
}
