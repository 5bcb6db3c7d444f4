//! What every session of a listener shares, runtime-neutral: the core's session settings
//! (from the configuration), the TLS client configuration towards the mail service, the
//! services behind the [contracts](crate::contracts) and the clock. A listener turns a
//! [`SessionContext`] or [`Pop3Context`] into a [`Proxy`](crate::proxy_server::Proxy) for the
//! one [driver](crate::driver).

use std::sync::Arc;
use std::time::Duration;

use komle_core::pop3::Pop3Config;
use komle_core::smtp::SmtpConfig;
use rustls::ClientConfig;

use crate::config::Config;
use crate::contracts::{Opener, Protector, RecipientChecker};

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
    // KIM 1.5: mails over 15 MiB go to the KAS (A_19357-02), up to its limit.
    if let Some(kas) = &config.kas {
        s.max_message_size = s.max_message_size.max(kas.max_mail_size);
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
