//! Counters an embedding service can expose (health and metrics endpoints).

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
    /// The counters in Prometheus text format.
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "komle_sessions_total {}\nkomle_sessions_active {}\nkomle_sessions_refused_total {}\nkomle_messages_protected_total {}\nkomle_protection_failures_total {}\nkomle_messages_opened_total {}\nkomle_open_failures_total {}\n",
            g(&self.sessions_total),
            g(&self.sessions_active),
            g(&self.sessions_refused),
            g(&self.messages_protected),
            g(&self.protection_failures),
            g(&self.messages_opened),
            g(&self.open_failures),
        )
    }
}
