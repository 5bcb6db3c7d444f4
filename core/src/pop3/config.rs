//! Settings of a POP3 proxy session.

use std::time::Duration;

use crate::upstream_allow::UpstreamAllowList;

/// Settings of a POP3 proxy session; timeouts default to Tab_Konf_Param (5 min).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pop3Config {
    /// Text after `+OK ` in the greeting (gemSpec example: `+OK KOM-LE Clientmodul POP3`).
    pub greeting: String,
    /// Longest command line accepted from the client, CRLF included. RFC 2449 §4 allows 255
    /// octets, but a KOM-LE login name (A_2032) or an `AUTH PLAIN` line of it can be longer.
    pub max_line_length: usize,
    /// Longest single status line accepted from the server (RFC 2449 §4: 512 octets).
    pub max_reply_line_length: usize,
    /// Largest message (unstuffed) collected for `RETR`; a larger one is answered with `-ERR`.
    /// The default covers the 25 MB KOM-LE limit after base64 and CMS overhead.
    pub max_message_size: usize,
    /// Commands accepted in the CONNECT state; more and the client is cut off with `-ERR`.
    pub max_commands_before_auth: usize,
    /// Failed logins accepted on one connection before it is closed.
    pub max_failed_logins: u32,
    /// Commands forwarded but not yet answered; further pipelined commands wait unread.
    pub max_pipelined_commands: usize,
    /// How long the server may take to answer (or to connect) before the client gets
    /// `-ERR timeout` and both connections close (KOM-LE-A_2038).
    pub server_response_timeout: Duration,
    /// How long the server connection may sit without a new command before it is closed
    /// (KOM-LE-A_2039) — and with it the client connection (A_2038).
    pub server_idle_timeout: Duration,
    /// How long a client may stay silent while the session waits for it — in CONNECT and,
    /// after the login, whenever no reply is owed — before it gets `-ERR timeout` and both
    /// connections close. Counted from its last complete command line or the module's last
    /// complete answer; bytes of an unfinished line do not restart it.
    pub client_idle_timeout: Duration,
    /// The POP3 servers a login name may name (host:port). Empty by default: every login is
    /// refused with the reply of an unreachable server, and no connection is attempted.
    pub upstream_allow: UpstreamAllowList,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Self {
            greeting: "KOM-LE Clientmodul POP3".to_owned(),
            max_line_length: 4096,
            max_reply_line_length: 8192,
            max_message_size: 48 * 1024 * 1024,
            max_commands_before_auth: 50,
            max_failed_logins: 3,
            max_pipelined_commands: 64,
            server_response_timeout: Duration::from_secs(300),
            server_idle_timeout: Duration::from_secs(300),
            client_idle_timeout: Duration::from_secs(300),
            upstream_allow: UpstreamAllowList::deny_all(),
        }
    }
}
