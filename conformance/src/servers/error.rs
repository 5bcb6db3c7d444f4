//! The one error type of the server harness.
//!
//! WHY: a test that cannot start its servers must say *which* server failed and *why* (the log
//! tail), otherwise a flaky CI run is undiagnosable. Every failure path therefore carries enough
//! context to be read without re-running.

use std::fmt;
use std::path::PathBuf;

/// What went wrong while preparing, starting, using or stopping the test mail servers.
#[derive(Debug)]
pub enum ServerError {
    /// A file-system or socket operation failed; `context` names the operation and path.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// An external helper tool (`openssl`, …) exited unsuccessfully.
    Tool {
        tool: &'static str,
        status: String,
        output: String,
    },
    /// A server did not become ready in time or exited early; `log_tail` holds its last log lines.
    NotReady {
        server: &'static str,
        reason: String,
        log_tail: String,
    },
    /// The caller passed something the harness cannot use (e.g. an address without `@`).
    InvalidInput(String),
    /// Delivery through LMTP was refused by Dovecot.
    Lmtp { reply: String },
    /// The Clientmodul's client-certificate material (test PKI, PKCS#12, key store) could not
    /// be prepared; the text names the step.
    ClientCertificates(String),
    /// `wait_for_messages` gave up; `found` messages were present when the time ran out.
    Timeout {
        address: String,
        wanted: usize,
        found: usize,
    },
}

impl ServerError {
    /// Wraps an I/O error with a human-readable description of what was attempted.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| ServerError::Io { context, source }
    }

    /// Shorthand for I/O errors on a path.
    pub(crate) fn io_path(
        what: &str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        Self::io(format!("{what} {}", path.display()))
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Io { context, source } => write!(f, "{context}: {source}"),
            ServerError::Tool {
                tool,
                status,
                output,
            } => write!(f, "{tool} failed ({status}):\n{output}"),
            ServerError::NotReady {
                server,
                reason,
                log_tail,
            } => write!(
                f,
                "{server} did not come up: {reason}\n--- {server} log tail ---\n{log_tail}"
            ),
            ServerError::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            ServerError::Lmtp { reply } => write!(f, "LMTP delivery refused: {reply}"),
            ServerError::ClientCertificates(msg) => {
                write!(f, "client certificate material: {msg}")
            }
            ServerError::Timeout {
                address,
                wanted,
                found,
            } => write!(
                f,
                "timed out waiting for {wanted} message(s) for {address}; found {found}"
            ),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result alias for the harness.
pub type Result<T> = std::result::Result<T, ServerError>;

/// The last `max_lines` lines of each given log file, concatenated with headers; missing files
/// are reported as such instead of failing (the log tail is diagnostics, never the error itself).
pub(crate) fn log_tail(files: &[PathBuf], max_lines: usize) -> String {
    let mut out = String::new();
    for file in files {
        out.push_str(&format!("==> {} <==\n", file.display()));
        match std::fs::read(file) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(max_lines);
                for line in &lines[start..] {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Err(e) => out.push_str(&format!("(unreadable: {e})\n")),
        }
    }
    out
}
