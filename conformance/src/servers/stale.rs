//! Clean-up of instances whose test process died without running `Drop` (SIGKILL, CI timeout,
//! `abort`): their Postfix and Dovecot would otherwise live on, holding ports and CPU.
//!
//! WHY a record file instead of `PR_SET_PDEATHSIG`: the death signal fires when the *thread*
//! that spawned the server exits, which would kill servers that a test created on one thread and
//! uses on another (thread pools, `smol::unblock`). Instead every instance writes
//! `<dir>/instance` (owner pid, process groups), and each new start reaps instances whose owner
//! is gone. A group is only signalled if its leader's command line still names the instance's
//! directory, so a recycled pid can never hit an unrelated process.

use std::path::{Path, PathBuf};

use super::error::{Result, ServerError};

/// Name prefix of the harness's temp dirs (under [`std::env::temp_dir`]).
pub const DIR_PREFIX: &str = "komle-mail-";

const RECORD: &str = "instance";

/// Writes (or rewrites) the record of `dir`: the current process as owner, and `pgids`.
pub fn record(dir: &Path, pgids: &[i32]) -> Result<()> {
    let mut text = format!("owner={}\n", std::process::id());
    for p in pgids {
        text.push_str(&format!("pgid={p}\n"));
    }
    let path = dir.join(RECORD);
    std::fs::write(&path, text).map_err(ServerError::io_path("writing", &path))
}

/// Kills the process groups of every harness instance in the temp dir whose owner process no
/// longer exists, and removes its directory. Returns the directories reaped. Errors on single
/// entries are skipped: reaping is best effort and must never fail a test's start.
pub fn reap_stale() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut reaped = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_ours = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if is_ours && reap_if_stale(&dir) {
            reaped.push(dir);
        }
    }
    reaped
}

fn reap_if_stale(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(RECORD)) else {
        return false; // starting right now, or not ours: leave it alone
    };
    let (owner, pgids) = parse(&text);
    let Some(owner) = owner else { return false };
    if Path::new(&format!("/proc/{owner}")).exists() {
        return false;
    }
    let needle = dir.to_string_lossy().into_owned();
    for pgid in pgids {
        let cmdline = std::fs::read(format!("/proc/{pgid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if pgid > 1 && cmdline.contains(&needle) {
            // SAFETY: kill(2) only sends a signal.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
    std::fs::remove_dir_all(dir).is_ok()
}

fn parse(text: &str) -> (Option<u32>, Vec<i32>) {
    let mut owner = None;
    let mut pgids = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("owner=") {
            owner = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("pgid=")
            && let Ok(p) = v.trim().parse()
        {
            pgids.push(p);
        }
    }
    (owner, pgids)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn record_parsing_ignores_garbage() {
        let (owner, pgids) = parse("owner=42\npgid=7\npgid=x\nnoise\npgid=9\n");
        assert_eq!(owner, Some(42));
        assert_eq!(pgids, vec![7, 9]);
        assert_eq!(parse("pgid=3\n").0, None);
    }
}
