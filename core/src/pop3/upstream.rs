//! Logging in to the POP3 server on the user's behalf (KOM-LE-A_2033–A_2035).
//!
//! The Clientmodul cannot check credentials itself; only the server can (§3.4.2.2). So it
//! replays them: greeting, `CAPA`, then `USER`/`PASS` — or `AUTH PLAIN` with an initial
//! response (RFC 5034) when the server offers SASL PLAIN but not USER. Both are the client parts
//! A_2035 requires. USER/PASS is preferred because gematik's own example (§3.4.5) uses it and
//! every POP3 server that allows plaintext login supports it.

use super::reply::{self, Status};
use crate::login_name::LoginName;
use crate::sasl::plain;
use crate::secret::Password;

/// Whether the account name and password can be written into `USER`/`PASS` lines.
///
/// They are the only client input the CONNECT state sends to the server, and `USER`/`PASS`
/// carry them verbatim. A CR or LF would end the line early and start a second command (the
/// client line itself ends at LF, but SASL PLAIN decodes to arbitrary bytes); a NUL cuts the
/// value short in C servers; other control characters and DEL have no place in a name or
/// password either. The account name also must not contain a space (`USER` takes one
/// argument). Such credentials are treated as a failed login (A_2037) without contacting the
/// server.
pub fn credentials_are_clean(user: &str, password: &str) -> bool {
    let clean = |s: &str| !s.chars().any(|c| c.is_control());
    clean(user) && !user.is_empty() && !user.contains(' ') && clean(password)
}

/// Progress of a login after one line from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginStep {
    /// Write these bytes to the server and wait for its answer.
    Send(Vec<u8>),
    /// More lines of the current reply are expected.
    Wait,
    /// Logged in; the server's final `+OK` line (CRLF included), to be relayed to the client
    /// as in gematik's example (§3.4.5).
    LoggedIn(Vec<u8>),
    /// The server refused the credentials (A_2037).
    Rejected,
    /// The server refused the session or spoke no POP3.
    Unavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Await {
    Greeting,
    CapaStatus,
    CapaList,
    User,
    Pass,
    AuthPlain,
    /// A `+ ` continuation was answered with the PLAIN response; its result follows.
    AuthPlainResult,
}

/// The client side of the login towards the POP3 server.
#[derive(Debug)]
pub struct UpstreamLogin {
    login: LoginName,
    password: Password,
    awaiting: Await,
    offers_user: bool,
    offers_plain: bool,
}

impl UpstreamLogin {
    pub fn new(login: LoginName, password: Password) -> Self {
        Self {
            login,
            password,
            awaiting: Await::Greeting,
            offers_user: false,
            offers_plain: false,
        }
    }

    /// The parsed login name, handed on to the PROXY state once logged in.
    pub fn into_login(self) -> LoginName {
        self.login
    }

    /// Feeds one complete line from the server (CRLF included).
    pub fn on_line(&mut self, line: &[u8]) -> LoginStep {
        let status = reply::status(line);
        match self.awaiting {
            Await::Greeting => match status {
                Status::Ok => self.send(Await::CapaStatus, b"CAPA\r\n".to_vec()),
                _ => LoginStep::Unavailable,
            },
            Await::CapaStatus => match status {
                Status::Ok => {
                    self.awaiting = Await::CapaList;
                    LoginStep::Wait
                }
                // RFC 2449 is optional: a server without CAPA still knows USER/PASS.
                Status::Err => self.start_user(),
                _ => LoginStep::Unavailable,
            },
            Await::CapaList => {
                let capability = reply::trim_eol(line);
                if capability == b"." {
                    return if self.offers_user || !self.offers_plain {
                        self.start_user()
                    } else {
                        let response = plain::encode_response(&self.login.user, &self.password);
                        self.send(
                            Await::AuthPlain,
                            format!("AUTH PLAIN {response}\r\n").into_bytes(),
                        )
                    };
                }
                self.note_capability(capability);
                LoginStep::Wait
            }
            Await::User => match status {
                Status::Ok => {
                    let mut pass = b"PASS ".to_vec();
                    pass.extend_from_slice(self.password.expose().as_bytes());
                    pass.extend_from_slice(b"\r\n");
                    self.send(Await::Pass, pass)
                }
                Status::Err => LoginStep::Rejected,
                _ => LoginStep::Unavailable,
            },
            Await::AuthPlain if status == Status::Continue => {
                // A server that ignores the initial response asks for it again (RFC 5034 §4).
                let response = plain::encode_response(&self.login.user, &self.password);
                self.send(
                    Await::AuthPlainResult,
                    format!("{response}\r\n").into_bytes(),
                )
            }
            Await::Pass | Await::AuthPlain | Await::AuthPlainResult => match status {
                Status::Ok => LoginStep::LoggedIn(line.to_vec()),
                Status::Err => LoginStep::Rejected,
                _ => LoginStep::Unavailable,
            },
        }
    }

    fn start_user(&mut self) -> LoginStep {
        self.send(
            Await::User,
            format!("USER {}\r\n", self.login.user).into_bytes(),
        )
    }

    fn send(&mut self, next: Await, bytes: Vec<u8>) -> LoginStep {
        self.awaiting = next;
        LoginStep::Send(bytes)
    }

    fn note_capability(&mut self, capability: &[u8]) {
        let Ok(capability) = core::str::from_utf8(capability) else {
            return;
        };
        let mut words = capability.split_ascii_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("USER") => self.offers_user = true,
            Some("SASL") => {
                self.offers_plain |= words.any(|m| m.eq_ignore_ascii_case("PLAIN"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> UpstreamLogin {
        UpstreamLogin::new(
            LoginName::parse("erik@komle.de#pop.komle.de:995#1#KOM_LE#7").unwrap(),
            Password::new("pass word"),
        )
    }

    fn send(s: &str) -> LoginStep {
        LoginStep::Send(s.as_bytes().to_vec())
    }

    #[test]
    fn a_2035_user_pass_as_in_the_gematik_example() {
        let mut l = login();
        assert_eq!(l.on_line(b"+OK POP Server Ready\r\n"), send("CAPA\r\n"));
        for cap in ["+OK Capability list follows\r\n", "TOP\r\n", "USER\r\n"] {
            assert_eq!(l.on_line(cap.as_bytes()), LoginStep::Wait);
        }
        assert_eq!(l.on_line(b"SASL PLAIN CRAM-MD5\r\n"), LoginStep::Wait);
        assert_eq!(l.on_line(b".\r\n"), send("USER erik@komle.de\r\n"));
        assert_eq!(l.on_line(b"+OK\r\n"), send("PASS pass word\r\n"));
        assert_eq!(
            l.on_line(b"+OK Maildrop ready\r\n"),
            LoginStep::LoggedIn(b"+OK Maildrop ready\r\n".to_vec())
        );
    }

    #[test]
    fn a_2035_auth_plain_when_user_is_not_offered() {
        let mut l = login();
        l.on_line(b"+OK hi\r\n");
        l.on_line(b"+OK\r\n");
        l.on_line(b"SASL plain\r\n");
        let expected = format!(
            "AUTH PLAIN {}\r\n",
            plain::encode_response("erik@komle.de", &Password::new("pass word"))
        );
        assert_eq!(l.on_line(b".\r\n"), send(&expected));
        assert!(matches!(l.on_line(b"+OK\r\n"), LoginStep::LoggedIn(_)));
    }

    #[test]
    fn a_2035_auth_plain_continuation_is_answered() {
        let mut l = login();
        l.on_line(b"+OK hi\r\n");
        l.on_line(b"+OK\r\n");
        l.on_line(b"SASL PLAIN\r\n");
        l.on_line(b".\r\n");
        let response = plain::encode_response("erik@komle.de", &Password::new("pass word"));
        assert_eq!(l.on_line(b"+ \r\n"), send(&format!("{response}\r\n")));
        assert_eq!(l.on_line(b"-ERR nope\r\n"), LoginStep::Rejected);
    }

    #[test]
    fn a_2035_server_without_capa_gets_user_pass() {
        let mut l = login();
        l.on_line(b"+OK\r\n");
        assert_eq!(
            l.on_line(b"-ERR unknown\r\n"),
            send("USER erik@komle.de\r\n")
        );
    }

    #[test]
    fn a_2034_credentials_with_control_characters_are_not_clean() {
        assert!(credentials_are_clean("erik@komle.de", "pass word"));
        assert!(credentials_are_clean("erik@komle.de", "pässwört"));
        for (user, password) in [
            ("erik\r\nDELE 1", "pw"),
            ("erik", "pw\r\nDELE 1"),
            ("erik", "pw\rx"),
            ("erik", "pw\0"),
            ("er\0ik", "pw"),
            ("erik", "pw\t"),
            ("erik", "pw\u{7f}"),
            ("erik", "pw\u{85}"),
            ("erik x", "pw"),
            ("", "pw"),
        ] {
            assert!(
                !credentials_are_clean(user, password),
                "{user:?} {password:?}"
            );
        }
    }

    #[test]
    fn a_2037_refusals() {
        let mut l = login();
        assert_eq!(l.on_line(b"-ERR go away\r\n"), LoginStep::Unavailable);
        let mut l = login();
        l.on_line(b"+OK\r\n");
        l.on_line(b"-ERR\r\n");
        assert_eq!(l.on_line(b"-ERR no such user\r\n"), LoginStep::Rejected);
        let mut l = login();
        l.on_line(b"+OK\r\n");
        l.on_line(b"-ERR\r\n");
        l.on_line(b"+OK\r\n");
        assert_eq!(l.on_line(b"-ERR wrong\r\n"), LoginStep::Rejected);
        let mut l = login();
        assert_eq!(l.on_line(b"* OK IMAP\r\n"), LoginStep::Unavailable);
    }
}
