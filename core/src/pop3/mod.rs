//! The POP3 proxy of the Clientmodul (gemSpec_CM_KOMLE §3.3, V1.16 §3.4) as a sans-IO state
//! machine.
//!
//! One [`Pop3Session`] per client connection. The runtime feeds it bytes from the client and the
//! POP3 server, the results of the actions it asked for and the current time, and drains
//! [`Pop3Action`]s: bytes to write, a server to connect to, a message to open (decrypt and
//! verify), a side to close. [`Pop3Session::poll_timeout`] says when to call
//! [`Pop3Session::handle_timeout`].
//!
//! The session also speaks the protocol-neutral words of
//! [`ProxySession`](crate::proxy_session::ProxySession) (one `Input` in, one `Output` out, a
//! final `Ended { reason }`), implemented by delegation to the methods below.
//!
//! ```text
//!   client bytes ──► handle_client_data ─┐                ┌─► SendToClient / SendToUpstream
//!   server bytes ──► handle_upstream_data├─► Pop3Session ─┤   ConnectUpstream / Open
//!   Pop3Event ─────► handle_event ───────┤                │   CloseClient / CloseUpstream
//!   now ───────────► handle_timeout ─────┘                └─► poll_timeout
//! ```
//!
//! States (Abb_Status_CM_Empfang): CONNECT answers the client itself (Tab_POP3_Ant_Init,
//! KOM-LE-A_2030) until USER/PASS or AUTH PLAIN delivered the login name and password (A_2031);
//! the session then connects to the server named in the login name and logs in there
//! (module `upstream`, A_2033–A_2035), answering the client per Tab_POP3_Verbindung (A_2037). PROXY
//! relays replies unchanged and commands in their canonical form (A_2040) with `TOP n N` →
//! `TOP n 0` (A_2041). A `RETR` message is collected, handed out as [`Pop3Action::Open`]
//! (PROCESS) and its result sent to the client with its true size.
//!
//! **Default deny towards the server.** After the login only a [`CanonicalCommand`] reaches the
//! server: a line the module parsed strictly and wrote itself (keyword upper case, one space
//! between arguments, validated numbers). Lines with control characters, leading whitespace,
//! non-ASCII bytes, unknown keywords or login commands get `-ERR` locally, in command order.
//! A canonical line passes byte for byte as A_2040 asks; where the module deviates and why is
//! listed in [`CanonicalCommand`]'s module. In the CONNECT state nothing the client sends goes
//! to the server except the account name and the password, which must be free of control
//! characters (a CR or LF in them, e.g. smuggled through SASL PLAIN, would start a second
//! command).
//!
//! **Closing.** A client that hangs up gets its complete held-back commands relayed (A_2039),
//! but never a QUIT it did not send: QUIT commits its DELEs (RFC 1939 §6). A server that hangs
//! up while the client is owed an answer (in the middle of a RETR message or a multi-line
//! block, which is held until complete) makes the module answer `-ERR` with
//! [`SERVER_UNAVAILABLE`] before it closes the client, never half a block.
//!
//! **Timers.** A silent client gets `-ERR timeout` after `client_idle_timeout`, in CONNECT as
//! while the session waits for it after the login; only complete lines restart that clock.
//!
//! **STAT and LIST show the sizes of the encrypted messages.** They pass unchanged (A_2040): the
//! decrypted size is only known after fetching and decrypting a message with the card, which
//! nobody wants for a mere listing, and the server's numbers are the only consistent ones across
//! STAT, LIST and the server's own limits. Clients use them as estimates; the `+OK <n> octets`
//! of RETR is exact.

//! What the runtime owes the session: every [`Pop3Action::Open`] is answered with exactly one
//! [`Pop3Event::Opened`] (the Konnektor timeout lives there: the session sets no timer while a
//! message is being opened); `ConnectUpstream` means implicit TLS with the server certificate
//! checked; byte payloads are never logged (they carry `PASS` and message content).
//!
//! Pipelining: commands are forwarded as they come and their replies matched in order, except
//! that commands after a `RETR` wait until its message is delivered, so at most one message is
//! ever held in memory.

mod canonical;
mod command;
mod config;
mod connect;
mod event;
mod multiline;
mod proxy;
mod proxy_session;
mod replies;
mod reply;
mod session;
mod top_header;
mod upstream;

pub use canonical::{
    CanonicalCommand, MALFORMED, MAX_DIGITS, MAX_MESSAGE_NUMBER, MessageNumber, NOT_RELAYED,
    Refusal,
};
pub use command::{Command, CommandError, ReplyShape, parse as parse_command, top_with_zero_lines};
pub use config::Pop3Config;
pub use connect::{AUTH_FAILED, MECHANISM_UNSUPPORTED};
pub use event::{OpenFailure, OpenJob, OpenedMessage, Pop3Action, Pop3Event};
pub use multiline::{Fed, MultilineDecoder, dot_stuff, dot_stuff_in_place, normalize_line_ends};
pub use replies::TOO_BIG;
pub use reply::{Status, status};
pub use session::{Pop3Session, SERVER_UNAVAILABLE, SERVER_UNREACHABLE, TIMEOUT};
