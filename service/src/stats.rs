//! Session and message counters of the SMTP and POP3 listeners, on every runtime, for the
//! daemon's and an embedding service's health and metrics endpoints.

use std::sync::atomic::{AtomicU64, Ordering};

/// Session and message counters (SMTP and POP3 listeners together).
#[derive(Debug, Default)]
pub struct Stats {
    pub sessions_total: AtomicU64,
    pub sessions_active: AtomicU64,
    pub sessions_refused: AtomicU64,
    pub messages_protected: AtomicU64,
    pub protection_failures: AtomicU64,
    pub messages_opened: AtomicU64,
    pub open_failures: AtomicU64,
}

impl Stats {
    /// The counters in Prometheus text format, each with HELP and TYPE.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 7] = [
            (
                "komle_sessions_total",
                "counter",
                "Client sessions accepted (TLS handshake done).",
                &self.sessions_total,
            ),
            (
                "komle_sessions_active",
                "gauge",
                "Client sessions running now.",
                &self.sessions_active,
            ),
            (
                "komle_sessions_refused_total",
                "counter",
                "Client connections refused over a session limit.",
                &self.sessions_refused,
            ),
            (
                "komle_messages_protected_total",
                "counter",
                "Messages signed, encrypted and handed to the MTA.",
                &self.messages_protected,
            ),
            (
                "komle_protection_failures_total",
                "counter",
                "Messages that could not be protected (client got 4xx/5xx).",
                &self.protection_failures,
            ),
            (
                "komle_messages_opened_total",
                "counter",
                "Retrieved messages decrypted and verified.",
                &self.messages_opened,
            ),
            (
                "komle_open_failures_total",
                "counter",
                "Retrieved messages that could not be opened.",
                &self.open_failures,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}
