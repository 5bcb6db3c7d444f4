//! No core dumps: the daemon holds passwords (SMTP AUTH, POP3 PASS, Konnektor, directory) and
//! plaintext mail in memory; a crash that writes a core file would put them on disk, which
//! A_2005 forbids for message content. At start `komle-cm` therefore
//!
//! - sets `RLIMIT_CORE` to 0 (soft and hard, so nothing in the process can raise it again), and
//! - makes itself non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): no core even where the kernel's
//!   `core_pattern` pipes to a helper that ignores the limit, and no `ptrace` attach or
//!   `/proc/<pid>/mem` read by other processes of the same user.
//!
//! `[process] allow_core_dumps = true` leaves both untouched for debugging (logged as a
//! warning). Both calls go through `rustix` (safe wrappers), not raw libc.

use std::fmt;

/// What [`apply`] should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreDumps {
    /// The default: no core file, not dumpable.
    Forbidden,
    /// `[process] allow_core_dumps = true`: leave the process as started.
    Allowed,
}

/// A system call the hardening needs failed; the daemon refuses to start rather than run
/// without the protection it promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardeningError {
    /// The step that failed.
    pub step: &'static str,
    pub error: String,
}

impl fmt::Display for HardeningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process hardening: {}: {}", self.step, self.error)
    }
}

impl std::error::Error for HardeningError {}

/// Applies the policy to the current process. Call once, early in `main`.
pub fn apply(policy: CoreDumps) -> Result<(), HardeningError> {
    match policy {
        CoreDumps::Allowed => {
            log::warn!(
                "[process] allow_core_dumps = true: a crash may write passwords and mail content to a core file (debugging only)"
            );
            Ok(())
        }
        CoreDumps::Forbidden => {
            forbid_core_files()?;
            make_non_dumpable()
        }
    }
}

fn forbid_core_files() -> Result<(), HardeningError> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| HardeningError {
        step: "setrlimit(RLIMIT_CORE, 0)",
        error: e.to_string(),
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn make_non_dumpable() -> Result<(), HardeningError> {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    set_dumpable_behavior(DumpableBehavior::NotDumpable).map_err(|e| HardeningError {
        step: "prctl(PR_SET_DUMPABLE, 0)",
        error: e.to_string(),
    })
}

/// Elsewhere only the core limit applies (the daemon targets Linux).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn make_non_dumpable() -> Result<(), HardeningError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Forbidden` is observed from outside on the real binary (tests/process_hardening.rs):
    /// applied here it would change the whole test process.
    #[test]
    fn allowed_changes_nothing() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Core);
        apply(CoreDumps::Allowed).unwrap();
        assert_eq!(
            rustix::process::getrlimit(rustix::process::Resource::Core),
            before
        );
    }
}
