//! Logging into the MTA on the client's behalf (KOM-LE-A_2011 to A_2015): read the greeting,
//! EHLO with the client's domain, authenticate with the extracted user name and the client's
//! password as a SASL PLAIN or LOGIN client, and answer the client per Tab_SMTP_Verbindung.

use std::time::Instant;

use super::command::{CanonicalCommand, Domain};
use super::proxy::Proxy;
use super::reply::{self, Reply};
use super::session::{Phase, SmtpSession};
use crate::login_name::LoginName;
use crate::sasl::{self, plain};
use crate::secret::Password;

/// Credentials on their way to the MTA.
#[derive(Debug)]
pub(crate) struct PendingLogin {
    pub login: LoginName,
    pub password: Password,
}

/// A line of the module's own SASL client exchange with the MTA: `AUTH PLAIN <base64>`,
/// `AUTH LOGIN` or a base64 response. Built only from base64 the module encodes, so nothing of
/// the client's beyond its (encoded) credentials reaches the MTA here. Holds credentials:
/// wiped on drop, never shown by Debug.
pub(super) struct SaslLine(Vec<u8>);

impl SaslLine {
    fn auth_plain(initial_response: &str) -> Self {
        Self(format!("AUTH PLAIN {initial_response}\r\n").into_bytes())
    }

    fn auth_login() -> Self {
        Self(b"AUTH LOGIN\r\n".to_vec())
    }

    fn response(raw: &[u8]) -> Self {
        Self(format!("{}\r\n", sasl::encode_b64(raw)).into_bytes())
    }

    pub(super) fn into_bytes(mut self) -> Vec<u8> {
        core::mem::take(&mut self.0)
    }
}

impl Drop for SaslLine {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl core::fmt::Debug for SaslLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SaslLine(..)")
    }
}

/// Step of the MTA login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handshake {
    Greeting,
    Ehlo,
    AuthPlain,
    AuthLogin,
    LoginUserSent,
    LoginPasswordSent,
}

impl SmtpSession {
    pub(super) fn on_upstream_connected(&mut self, now: Instant) {
        let phase = core::mem::replace(&mut self.phase, Phase::Closed);
        match phase {
            Phase::Connecting(pending) => {
                self.phase = Phase::Handshake(pending, Handshake::Greeting);
                self.upstream_deadline = Some(now + self.config.mta_response_timeout);
            }
            other => self.phase = other,
        }
    }

    /// Tab_SMTP_Verbindung: the MTA cannot be reached → 454 4.7.0.
    /// The connection to the MTA did not come up (or its certificate was refused): the
    /// client's AUTH fails with `reply` (454, or 501 for a rejected call context).
    pub(super) fn on_upstream_failed(&mut self, reply: Vec<u8>) {
        if matches!(self.phase, Phase::Connecting(_)) {
            self.upstream_open = false;
            self.failed_login_attempt(reply);
        }
    }

    pub(super) fn on_handshake_reply(&mut self, r: Reply, now: Instant) {
        let Phase::Handshake(pending, step) = core::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return;
        };
        let next = match (step, r.code) {
            (Handshake::Greeting, 220) => {
                let domain = self.ehlo_domain.clone().unwrap_or_else(|| {
                    Domain::parse_helo(&self.config.hostname).unwrap_or_else(Domain::localhost)
                });
                self.command_upstream(CanonicalCommand::ehlo(&domain), now);
                Some(Handshake::Ehlo)
            }
            (Handshake::Ehlo, 250) => match choose_mechanism(&r) {
                Some(Mechanism::Plain) => {
                    let ir = plain::encode_response(&pending.login.user, &pending.password);
                    self.sasl_upstream(SaslLine::auth_plain(&ir), now);
                    Some(Handshake::AuthPlain)
                }
                Some(Mechanism::Login) => {
                    self.sasl_upstream(SaslLine::auth_login(), now);
                    Some(Handshake::AuthLogin)
                }
                None => None,
            },
            (Handshake::AuthLogin, 334) => {
                let user = SaslLine::response(pending.login.user.as_bytes());
                self.sasl_upstream(user, now);
                Some(Handshake::LoginUserSent)
            }
            (Handshake::LoginUserSent, 334) => {
                let pw = SaslLine::response(pending.password.expose().as_bytes());
                self.sasl_upstream(pw, now);
                Some(Handshake::LoginPasswordSent)
            }
            (Handshake::AuthPlain | Handshake::LoginPasswordSent, 235) => {
                self.logged_in(pending, now);
                return;
            }
            (Handshake::AuthPlain | Handshake::AuthLogin, 500..=599)
            | (Handshake::LoginUserSent | Handshake::LoginPasswordSent, 500..=599) => {
                // Tab_SMTP_Verbindung: the MTA refused the credentials → 535 5.7.8.
                self.quit_upstream();
                self.failed_login_attempt(reply::line(
                    535,
                    "5.7.8 Authentication credentials invalid",
                ));
                return;
            }
            _ => None,
        };
        match next {
            Some(step) => self.phase = Phase::Handshake(pending, step),
            None => {
                // Anything else (no greeting, EHLO refused, no usable mechanism, temporary
                // errors) means the MTA cannot be used right now → 454 4.7.0.
                self.quit_upstream();
                self.failed_login_attempt(reply::line(
                    454,
                    "4.7.0 Temporary authentication failure",
                ));
            }
        }
    }

    fn logged_in(&mut self, pending: PendingLogin, now: Instant) {
        self.upstream_last_command = Some(now);
        self.phase = Phase::Proxy(Proxy::Idle);
        self.login = Some(pending.login);
        self.send_client(reply::line(235, "2.7.0 Authentication successful"));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Login,
}

/// PLAIN when offered (one round trip), else LOGIN (A_2013).
fn choose_mechanism(ehlo: &Reply) -> Option<Mechanism> {
    let mut found = None;
    for text in ehlo.texts() {
        let upper = text.to_ascii_uppercase();
        let mut words = upper
            .split(|b| *b == b' ' || *b == b'=')
            .filter(|w| !w.is_empty());
        if words.next() != Some(b"AUTH") {
            continue;
        }
        for w in words {
            match w {
                b"PLAIN" => return Some(Mechanism::Plain),
                b"LOGIN" => found = Some(Mechanism::Login),
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::ReplyCollector;

    fn reply(bytes: &[&[u8]]) -> Reply {
        let mut c = ReplyCollector::default();
        let mut out = None;
        for l in bytes {
            out = c.push_line(l).unwrap();
        }
        out.unwrap()
    }

    #[test]
    fn a_2013_prefers_plain_and_falls_back_to_login() {
        let r = reply(&[
            b"250-mx\r\n",
            b"250-AUTH LOGIN PLAIN\r\n",
            b"250 8BITMIME\r\n",
        ]);
        assert_eq!(choose_mechanism(&r), Some(Mechanism::Plain));
        let r = reply(&[b"250-mx\r\n", b"250 AUTH=LOGIN CRAM-MD5\r\n"]);
        assert_eq!(choose_mechanism(&r), Some(Mechanism::Login));
        let r = reply(&[b"250-mx\r\n", b"250 AUTH CRAM-MD5\r\n"]);
        assert_eq!(choose_mechanism(&r), None);
    }
}
