//! The POP3 proxy listener on smol: [`ProxyServer`] with [`SmolRuntime`]. Over the session
//! limit a client gets `-ERR [SYS/TEMP] Too many sessions` after the handshake, so it shows a
//! reason and retries.

pub use komle_service::limits::POP3_TOO_MANY_SESSIONS as TOO_MANY_SESSIONS;
pub use komle_service::limits::ServerLimits;
use komle_service::proxy_server::ProxyServer;

use crate::runtime::SmolRuntime;

/// The POP3 proxy listener on smol: bind with [`ProxyServer::bind`]`(SmolRuntime, addr, tls,
/// Pop3Context, limits)`.
pub type Pop3Server = ProxyServer<SmolRuntime>;
