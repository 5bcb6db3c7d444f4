//! Settings of an SMTP proxy session.

use std::time::Duration;

use crate::upstream_allow::UpstreamAllowList;

/// The smallest SIZE the Clientmodul may advertise (Tab_SMTP_Ant_Init): 25 MB net (A_2004)
/// times 1.37 for base64.
pub const MIN_ADVERTISED_SIZE: usize = 35_882_577;

/// Settings of an SMTP proxy session; defaults follow Tab_Konf_Param (5 min timeouts);
/// `data_timeout` (30 min) is the module's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Name in the greeting and the first EHLO line.
    pub hostname: String,
    /// SIZE advertised in EHLO and enforced on DATA. Tab_SMTP_Ant_Init requires at least
    /// [`MIN_ADVERTISED_SIZE`]; the runtime's configuration check enforces that, tests may go lower.
    pub max_message_size: usize,
    /// Longest command line accepted, CRLF included (RFC 5321 says 512; AUTH lines may be
    /// longer, RFC 4954 §4 suggests 12288).
    pub max_line_length: usize,
    /// Commands accepted before a successful login; more and the client is cut off (421).
    pub max_commands_before_auth: usize,
    /// Failed logins accepted on one connection before it is closed (421).
    pub max_failed_logins: u32,
    /// How long the MTA may take to answer a command before the client gets 421 (A_2016).
    pub mta_response_timeout: Duration,
    /// How long the MTA connection may sit without a command before it is closed (A_2017).
    pub mta_idle_timeout: Duration,
    /// How long the client may stay silent before the session ends with 421.
    pub client_idle_timeout: Duration,
    /// The MTAs a login name may name (host:port). Empty by default: every login is refused
    /// with the reply of an unreachable MTA, and no connection is attempted.
    pub upstream_allow: UpstreamAllowList,
    /// How long the client may take for a whole message after the 354 (421 `4.4.2` and close
    /// otherwise, nothing goes to the MTA). The idle timeout alone would let a client that
    /// sends a byte now and then hold the session for ever.
    pub data_timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            hostname: "KOM-LE-Clientmodul".to_owned(),
            max_message_size: MIN_ADVERTISED_SIZE,
            max_line_length: 12_288,
            max_commands_before_auth: 50,
            max_failed_logins: 3,
            mta_response_timeout: Duration::from_secs(300),
            mta_idle_timeout: Duration::from_secs(300),
            client_idle_timeout: Duration::from_secs(300),
            upstream_allow: UpstreamAllowList::deny_all(),
            data_timeout: Duration::from_secs(30 * 60),
        }
    }
}
