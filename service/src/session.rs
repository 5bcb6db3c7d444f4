//! What every session of a listener shares, runtime-neutral: the core's session settings
//! (from the configuration), the TLS client configuration towards the mail service, the
//! services behind the [contracts](crate::contracts) and the clock. A runtime's driver takes a
//! [`SessionContext`] or [`Pop3Context`] and reports a [`SessionSummary`] or [`Pop3Summary`].

use std::sync::Arc;
use std::time::Duration;

use komle_core::pop3::Pop3Config;
use komle_core::smtp::SmtpConfig;
use rustls::ClientConfig;

use crate::config::Config;
use crate::contracts::{Opener, Protector, RecipientChecker};
use crate::time_sync::Clock;

/// What every session of a listener shares.
#[derive(Clone)]
pub struct SessionContext {
    pub session: SmtpConfig,
    /// TLS towards the MTA (webpki roots + `[upstream] ca`).
    pub upstream_tls: Arc<ClientConfig>,
    /// Limit for TCP connect plus TLS handshake towards the MTA.
    pub connect_timeout: Duration,
    pub checker: Arc<dyn RecipientChecker>,
    pub protector: Arc<dyn Protector>,
    /// Source of the `now` handed to the session.
    pub clock: Arc<Clock>,
}

/// How a session ended, for the one log line per session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSummary {
    /// Messages protected and handed to the MTA.
    pub messages_protected: u32,
    /// Protection attempts that failed (client got 451).
    pub protection_failures: u32,
    /// Whether the session ended without the state machine saying so (nothing left to wait for).
    pub stalled: bool,
}

/// What every session of a POP3 listener shares.
#[derive(Clone)]
pub struct Pop3Context {
    pub session: Pop3Config,
    /// TLS towards the POP3 server (webpki roots + `[upstream] ca`).
    pub upstream_tls: Arc<ClientConfig>,
    /// Limit for TCP connect plus TLS handshake towards the POP3 server.
    pub connect_timeout: Duration,
    pub opener: Arc<dyn Opener>,
    /// Source of the `now` handed to the session.
    pub clock: Arc<Clock>,
}

/// How a session ended, for the one log line per session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pop3Summary {
    /// Messages handed to the client after opening.
    pub messages_opened: u32,
    /// Opening attempts that ended in `-ERR` for the client.
    pub open_failures: u32,
    /// Whether the session ended without the state machine saying so.
    pub stalled: bool,
}

/// The core's session settings from the configuration.
pub fn smtp_session_config(config: &Config) -> SmtpConfig {
    let mut s = SmtpConfig {
        mta_response_timeout: config.timeouts.mta_response,
        mta_idle_timeout: config.timeouts.mta_idle,
        client_idle_timeout: config.timeouts.client_idle,
        upstream_allow: config.upstream.smtp_allow(),
        data_timeout: config.timeouts.data,
        ..SmtpConfig::default()
    };
    if let Some(smtp) = &config.smtp {
        s.hostname = smtp.hostname.clone();
    }
    s
}

/// The core's POP3 session settings from the configuration: the MTA timeouts (Tab_Konf_Param
/// gives SMTP and POP3 server the same 5 min) apply to the POP3 server (A_2038, A_2039).
pub fn pop3_session_config(config: &Config) -> Pop3Config {
    Pop3Config {
        server_response_timeout: config.timeouts.mta_response,
        server_idle_timeout: config.timeouts.mta_idle,
        client_idle_timeout: config.timeouts.client_idle,
        upstream_allow: config.upstream.pop3_allow(),
        ..Pop3Config::default()
    }
}
