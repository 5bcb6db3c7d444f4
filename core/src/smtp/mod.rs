//! The SMTP proxy of the Clientmodul (gemSpec_CM_KOMLE §3.2) as a sans-IO state machine.
//!
//! One [`SmtpSession`] per client connection. The runtime feeds it bytes from the client and the
//! MTA, the results of the actions it asked for and the current time, and drains [`SmtpAction`]s:
//! bytes to write, an MTA to connect to, a recipient to check, a message to protect, a side to
//! close. [`SmtpSession::poll_timeout`] says when to call [`SmtpSession::handle_timeout`].
//!
//! The session also speaks the protocol-neutral words of
//! [`ProxySession`](crate::proxy_session::ProxySession) (one `Input` in, one `Output` out, a
//! final `Ended { reason }`), implemented by delegation to the methods below.
//!
//! ```text
//!   client bytes ──► handle_client_data ─┐                ┌─► SendToClient / SendToUpstream
//!   MTA bytes ─────► handle_upstream_data├─► SmtpSession ─┤   ConnectUpstream / CheckRecipient
//!   SmtpEvent ─────► handle_event ───────┤                │   Protect / CloseClient / CloseUpstream
//!   now ───────────► handle_timeout ─────┘                └─► poll_timeout
//! ```

pub mod command;
mod config;
mod connect;
pub mod data;
mod event;
mod proxy;
mod proxy_session;
pub mod reply;
mod session;
mod upstream_login;

pub use config::MIN_ADVERTISED_SIZE;
pub use config::SmtpConfig;
pub use event::{
    Notice, ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction,
    SmtpEvent,
};
pub use session::SmtpSession;
