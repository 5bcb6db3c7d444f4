//! CONNECT state towards the client: the dialog of Tab_SMTP_Ant_Init (KOM-LE-A_2008) and the
//! server side of SASL PLAIN and LOGIN (KOM-LE-A_2009), up to the point where the credentials
//! are known and the MTA connection starts (A_2010, A_2011).

use std::time::Instant;

use super::command::{self, AuthArgs, Command};
use super::event::SmtpAction;
use super::reply;
use super::session::{Phase, SmtpSession};
use super::upstream_login::PendingLogin;
use crate::login_name::LoginName;
use crate::proxy_session::EndReason;
use crate::sasl::{self, Credentials, SaslError, login, plain};
use crate::secret::Password;

/// Progress of an AUTH exchange with the client.
#[derive(Debug)]
pub(super) enum AuthStep {
    /// No AUTH in progress.
    Idle,
    /// AUTH PLAIN without initial response: waiting for the response line.
    PlainResponse,
    /// AUTH LOGIN: waiting for the user name.
    LoginUser,
    /// AUTH LOGIN: waiting for the password.
    LoginPassword { login: String },
}

impl SmtpSession {
    pub(super) fn on_connect_line(&mut self, line: &[u8], now: Instant) {
        let step = match &mut self.phase {
            Phase::Connect(step) => core::mem::replace(step, AuthStep::Idle),
            _ => return,
        };
        match step {
            AuthStep::Idle => self.on_connect_command(line, now),
            AuthStep::PlainResponse => match plain::decode_response(line) {
                Ok(creds) => self.credentials_received(creds),
                Err(e) => self.sasl_failed(e),
            },
            AuthStep::LoginUser => match sasl::decode_b64(line).and_then(utf8) {
                Ok(login) => self.ask_login_password(login),
                Err(e) => self.sasl_failed(e),
            },
            AuthStep::LoginPassword { login } => match sasl::decode_b64(line).and_then(utf8) {
                Ok(password) => self.credentials_received(Credentials {
                    login,
                    password: Password::new(password),
                }),
                Err(e) => self.sasl_failed(e),
            },
        }
    }

    /// One row of Tab_SMTP_Ant_Init per verb.
    fn on_connect_command(&mut self, line: &[u8], _now: Instant) {
        self.commands_before_auth += 1;
        if self.commands_before_auth > self.config.max_commands_before_auth {
            self.send_client(reply::line(421, "4.7.0 Zu viele Kommandos ohne Anmeldung"));
            self.close_both(EndReason::LoginLimit);
            return;
        }
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                self.send_client(e.reply());
                return;
            }
        };
        match cmd {
            Command::Helo(domain) => {
                // Only a validated domain is repeated to the MTA (in canonical form).
                self.ehlo_domain = Some(domain);
                let text = format!("{} OK", self.config.hostname);
                self.send_client(reply::line(250, &text));
            }
            Command::Ehlo(domain) => {
                self.ehlo_domain = Some(domain);
                let size = format!("SIZE {}", self.config.max_message_size);
                let lines = [
                    self.config.hostname.as_str(),
                    size.as_str(),
                    "AUTH LOGIN PLAIN",
                    "8BITMIME",
                    "ENHANCEDSTATUSCODES",
                    "DSN",
                ];
                self.send_client(reply::multiline(250, &lines));
            }
            Command::Rset | Command::Noop => self.send_client(reply::line(250, "2.0.0 OK")),
            Command::Mail(..) | Command::Rcpt(..) | Command::Data => {
                self.send_client(reply::line(530, "5.7.0 Authentication required"))
            }
            Command::Quit => {
                // A_2016, third case: QUIT before any MTA connection.
                self.send_client(reply::line(221, "2.0.0 OK"));
                self.close_both(EndReason::ClientQuit);
            }
            Command::Auth(args) => self.on_auth(args),
            Command::Starttls | Command::NotRelayed(_) => {
                self.send_client(reply::line(502, "5.5.1 Invalid command"))
            }
        }
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954).
    fn on_auth(&mut self, args: AuthArgs) {
        let initial = args.initial_response.as_deref().map(str::as_bytes);
        match (args.mechanism.as_bytes(), initial) {
            (b"PLAIN", None) => {
                self.phase = Phase::Connect(AuthStep::PlainResponse);
                self.send_client(b"334 \r\n".to_vec());
            }
            (b"PLAIN", Some(b"=")) => self.sasl_failed(SaslError::Malformed),
            (b"PLAIN", Some(ir)) => match plain::decode_response(ir) {
                Ok(creds) => self.credentials_received(creds),
                Err(e) => self.sasl_failed(e),
            },
            (b"LOGIN", None) => {
                self.phase = Phase::Connect(AuthStep::LoginUser);
                self.send_client(reply::line(334, login::USERNAME_CHALLENGE));
            }
            (b"LOGIN", Some(ir)) => match sasl::decode_b64(ir).and_then(utf8) {
                Ok(login) => self.ask_login_password(login),
                Err(e) => self.sasl_failed(e),
            },
            // A_2009: challenge–response mechanisms hide the password.
            (_, _) => self.send_client(reply::line(504, "5.7.4 Security features not supported")),
        }
    }

    fn ask_login_password(&mut self, login: String) {
        self.phase = Phase::Connect(AuthStep::LoginPassword { login });
        self.send_client(reply::line(334, login::PASSWORD_CHALLENGE));
    }

    fn sasl_failed(&mut self, e: SaslError) {
        self.phase = Phase::Connect(AuthStep::Idle);
        match e {
            SaslError::Cancelled => {
                self.send_client(reply::line(501, "5.7.0 Authentication cancelled"))
            }
            SaslError::Malformed => {
                self.send_client(reply::line(501, "5.5.2 Cannot decode response"))
            }
        }
    }

    /// A_2010/A_2011: split the login name and connect to the MTA it names. An incomplete
    /// name ends the session with 501 5.5.4 (Tab_SMTP_Verbindung, example in §3.2.5).
    fn credentials_received(&mut self, creds: Credentials) {
        // The user part and the password go to the MTA inside SASL PLAIN, where NUL separates
        // the fields: a NUL (or any control character in the user part) would let the client
        // shape the MTA login beyond its own credentials.
        let user_ok = |l: &LoginName| !l.user.chars().any(char::is_control);
        let password_ok = !creds.password.expose().contains('\0');
        match LoginName::parse_smtp(&creds.login) {
            Ok(login) if !(user_ok(&login) && password_ok) => {
                self.send_client(reply::line(
                    501,
                    "5.5.4 Benutzername oder Passwort ungueltig",
                ));
                self.close_both(EndReason::InvalidLogin);
            }
            Ok(login) => {
                let host = login.host.clone();
                let port = login.port;
                let context = login.call_context();
                let konnektor_id = login.konnektor_id.clone();
                let permitted = self.config.upstream_allow.permits(&host, port);
                self.phase = Phase::Connecting(PendingLogin {
                    login,
                    password: creds.password,
                });
                if !permitted {
                    // Not an allowed MTA: answered exactly like an unreachable one, without
                    // any connection attempt (see `upstream_allow`).
                    self.on_upstream_failed(
                        crate::konnektor::SmtpConnectReply::CANNOT_CONNECT.line(),
                    );
                    return;
                }
                self.upstream_open = true;
                self.actions.push_back(SmtpAction::ConnectUpstream {
                    host,
                    port,
                    context,
                    konnektor_id,
                });
            }
            Err(e) => {
                let text = format!("5.5.4 {e}");
                self.send_client(reply::line(501, &text));
                self.close_both(EndReason::InvalidLogin);
            }
        }
    }

    /// A failed login (454 or 535) keeps the session in CONNECT, up to a limit.
    pub(super) fn failed_login_attempt(&mut self, reply_bytes: Vec<u8>) {
        self.close_upstream();
        self.phase = Phase::Connect(AuthStep::Idle);
        self.send_client(reply_bytes);
        self.failed_logins += 1;
        if self.failed_logins >= self.config.max_failed_logins {
            self.send_client(reply::line(
                421,
                "4.7.0 Zu viele fehlgeschlagene Anmeldungen",
            ));
            self.close_both(EndReason::LoginLimit);
        }
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, SaslError> {
    String::from_utf8(bytes).map_err(|_| SaslError::Malformed)
}
