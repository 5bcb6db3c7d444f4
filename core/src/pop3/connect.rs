//! The CONNECT state (§3.4.2): Tab_POP3_Ant_Init towards the client (KOM-LE-A_2030) and the
//! server parts of USER/PASS and SASL PLAIN (A_2031) that collect the login name and password.

use std::time::Instant;

use super::command::{self, Command};
use super::event::Pop3Action;
use super::reply;
use super::session::{Phase, Pop3Session};
use super::upstream;
use crate::login_name::LoginName;
use crate::proxy_session::EndReason;
use crate::sasl::{SaslError, plain};
use crate::secret::Password;

/// The capabilities of the CONNECT state, exactly Tab_POP3_Ant_Init (KOM-LE-A_2030).
const CONNECT_CAPA: &[u8] =
    b"+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN\r\nUIDL\r\n.\r\n";
/// A_2037 (Tab_POP3_Verbindung): the server refused the credentials.
pub const AUTH_FAILED: &str = "Der Nutzer konnte nicht authentifiziert werden";
/// A_2037: the client asked for a mechanism other than USER/PASS or PLAIN.
pub const MECHANISM_UNSUPPORTED: &str = "Authentifizierungsmechanismus wird nicht unterstuetzt";

impl Pop3Session {
    /// CONNECT state: Tab_POP3_Ant_Init (KOM-LE-A_2030).
    pub(super) fn connect_line(&mut self, line: &[u8], now: Instant) {
        self.commands_before_auth += 1;
        if self.commands_before_auth > self.config.max_commands_before_auth {
            self.send_client(&reply::err("Zu viele Kommandos"));
            self.finish(EndReason::LoginLimit);
            return;
        }
        let text = reply::trim_eol(line);
        if let Phase::Connect { plain_pending, .. } = &mut self.phase
            && *plain_pending
        {
            *plain_pending = false;
            self.plain_response(text, now);
            return;
        }
        match command::parse(text) {
            Ok(Command::Capa) => self.send_client(CONNECT_CAPA),
            Ok(Command::User(name)) => match LoginName::parse_pop3(name) {
                // A_21518: an incomplete login name aborts the session.
                Err(e) => {
                    self.send_client(&reply::err(&e.to_string()));
                    self.finish(EndReason::InvalidLogin);
                }
                Ok(login) => {
                    if let Phase::Connect { user, .. } = &mut self.phase {
                        *user = Some(login);
                    }
                    self.send_client(&reply::ok(""));
                }
            },
            Ok(Command::Pass(password)) => {
                let user = match &mut self.phase {
                    Phase::Connect { user, .. } => user.take(),
                    _ => None,
                };
                match user {
                    Some(login) => self.start_login(login, Password::new(password), now),
                    None => self.send_client(&reply::err("Zuerst USER senden")),
                }
            }
            Ok(Command::Auth {
                mechanism,
                initial_response,
            }) if mechanism.eq_ignore_ascii_case("PLAIN") => match initial_response {
                Some(response) => self.plain_response(response.as_bytes(), now),
                None => {
                    if let Phase::Connect { plain_pending, .. } = &mut self.phase {
                        *plain_pending = true;
                    }
                    self.send_client(b"+ \r\n");
                }
            },
            Ok(Command::Auth { .. }) => self.send_client(&reply::err(MECHANISM_UNSUPPORTED)),
            // A_2038: QUIT before a server connection exists: +OK and close.
            Ok(Command::Quit) => {
                self.send_client(&reply::ok("KOM-LE Clientmodul beendet die Verbindung"));
                self.finish(EndReason::ClientQuit);
            }
            _ => self.send_client(&reply::err("Kommando vor der Anmeldung nicht erlaubt")),
        }
    }

    /// The SASL PLAIN response (RFC 4616) carries the login name and the password (A_2031).
    pub(super) fn plain_response(&mut self, response: &[u8], now: Instant) {
        match plain::decode_response(response) {
            Ok(credentials) => match LoginName::parse_pop3(&credentials.login) {
                Ok(login) => self.start_login(login, credentials.password, now),
                Err(e) => {
                    self.send_client(&reply::err(&e.to_string()));
                    self.finish(EndReason::InvalidLogin);
                }
            },
            Err(SaslError::Cancelled) => {
                self.send_client(&reply::err("Authentifizierung abgebrochen"));
            }
            Err(SaslError::Malformed) => self.login_failed(now),
        }
    }

    pub(super) fn start_login(&mut self, login: LoginName, password: Password, now: Instant) {
        // A_2034: name and password go into USER/PASS lines; a control character in them would
        // write a command of the client's choosing to the server.
        if !upstream::credentials_are_clean(&login.user, password.expose()) {
            self.login_failed(now);
            return;
        }
        if !self.config.upstream_allow.permits(&login.host, login.port) {
            // Not an allowed server: answered exactly like an unreachable one, without any
            // connection attempt (see `upstream_allow`).
            self.phase = Phase::Connecting { login, password };
            let reason = crate::upstream_allow::UNREACHABLE_REASON.to_owned();
            self.handle_event(super::event::Pop3Event::UpstreamFailed { reason }, now);
            return;
        }
        // A_2033: the server named in the login name, with implicit TLS.
        self.actions.push_back(Pop3Action::ConnectUpstream {
            host: login.host.clone(),
            port: login.port,
            context: login.call_context(),
            konnektor_id: login.konnektor_id.clone(),
        });
        self.upstream_open = true;
        self.upstream_gone = false;
        self.server_owes_since = Some(now);
        self.phase = Phase::Connecting { login, password };
    }

    /// A_2037: the server refused the credentials. The session stays in CONNECT (§3.4.2.2:
    /// "Anderenfalls bleibt das Clientmodul im CONNECT-Zustand") until too many failures.
    pub(super) fn login_failed(&mut self, now: Instant) {
        self.failed_logins += 1;
        if self.failed_logins >= self.config.max_failed_logins {
            self.send_client(&reply::err(AUTH_FAILED));
            self.finish(EndReason::LoginLimit);
        } else {
            self.back_to_connect(AUTH_FAILED, now);
        }
    }
}
