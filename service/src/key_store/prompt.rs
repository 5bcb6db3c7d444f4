//! Asking for a password on the terminal without echoing it (`komle-cm keys import`).
//!
//! When stdin is not a terminal (a script piping the password in), the line is read as it is,
//! without a prompt.

use std::io::Write;

use komle_core::secret::Password;
use rustix::termios::{self, LocalModes, OptionalActions};

use super::{KeyStoreError, password};

/// Reads one line from stdin; on a terminal it first prints `prompt` on stderr and switches
/// echo off while the password is typed. Piped input gets no prompt, so stderr keeps only the
/// one error line a script checks.
pub fn ask(prompt: &str, what: &'static str) -> Result<Password, KeyStoreError> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    let mut err = std::io::stderr();
    if let Some(saved) = &saved {
        let _ = write!(err, "{prompt}");
        let _ = err.flush();
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let _ = termios::tcsetattr(&stdin, OptionalActions::Now, &quiet);
    }
    let line = password::read_line(&mut stdin.lock(), what);
    if let Some(saved) = &saved {
        let _ = termios::tcsetattr(&stdin, OptionalActions::Now, saved);
        let _ = writeln!(err);
    }
    line
}
