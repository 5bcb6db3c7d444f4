//! Why a proxy session ended: what a driver logs and counts per session.

/// The reason carried by [`Output::Ended`](super::Output::Ended). It names the cause, never
/// content; the requirement that fixes the behaviour is given per variant.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The client said QUIT and the session closed in order (A_2016, A_2038).
    ClientQuit,
    /// The client closed its connection (A_2017, A_2039).
    ClientClosed,
    /// The upstream server closed its connection while the session was in use (A_2016, A_2038).
    UpstreamClosed,
    /// The upstream server did not answer in time (A_2016, A_2038).
    UpstreamTimeout,
    /// The upstream connection was idle for too long and was closed with the client's
    /// (A_2017, A_2039).
    UpstreamIdle,
    /// The upstream server sent something that is not a valid reply, or talked out of turn.
    UpstreamProtocolError,
    /// The client was silent for too long (LIMITS.md `client_idle_timeout`).
    ClientIdle,
    /// The message after DATA did not complete within `data_timeout` (SMTP).
    DataTimeout,
    /// The client sent too much without waiting for answers, or an overlong line.
    ClientFlood,
    /// Too many commands before logging in, or too many failed logins.
    LoginLimit,
    /// The login name or credentials cannot be used (A_21518, A_2031).
    InvalidLogin,
    /// Not recorded (kept for sessions that end through a path without a reason).
    Unspecified,
}

impl EndReason {
    /// A short stable name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientQuit => "client-quit",
            Self::ClientClosed => "client-closed",
            Self::UpstreamClosed => "upstream-closed",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::UpstreamIdle => "upstream-idle",
            Self::UpstreamProtocolError => "upstream-protocol-error",
            Self::ClientIdle => "client-idle",
            Self::DataTimeout => "data-timeout",
            Self::ClientFlood => "client-flood",
            Self::LoginLimit => "login-limit",
            Self::InvalidLogin => "invalid-login",
            Self::Unspecified => "unspecified",
        }
    }
}

impl core::fmt::Display for EndReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
