//! What the Konnektor's verdict on a mail server's TLS certificate means for the connection
//! (KOM-LE-A_2075-01) and which reply the client then gets (Tab_SMTP_Verbindung,
//! Tab_POP3_Verbindung).
//!
//! Decisions, from the spec:
//! - `VALID`: the connection is used; the result may be cached (A_22348).
//! - `INCONCLUSIVE`: the connection is used, nothing is cached. A_2075-01 demands the abort
//!   only for `INVALID`; `INCONCLUSIVE` typically means the revocation status could not be
//!   fetched, and refusing all mail then would turn an OCSP outage into a mail outage.
//! - `INVALID`: the connection is aborted (A_2075-01). The client hears "the connection to the
//!   server cannot be established": SMTP `454 4.7.0`, POP3 `-ERR`.
//! - No verdict (Konnektor unreachable after the A_2076 refresh and retry, a SOAP fault, an
//!   answer we cannot read): A_2075-01 says the check MUST be done with VerifyCertificate, so
//!   an unchecked server is not used either. The cause is temporary, so the reply is the same
//!   temporary `454 4.7.0` / `-ERR`; the client retries later.
//! - A fault with code 4004–4006 (the call context is wrong): Tab_SMTP_Verbindung gives
//!   `501` for exactly that case, POP3 `-ERR`.
//!
//! No variant carries certificate content or host names: the texts may go to the client and to
//! the log as they are.

use std::fmt;

use super::call::TransportError;
use super::error::KonnektorError;
use super::verify_certificate::{VerificationResult, VerifyCertificateResponse};
use crate::proxy_session::Input;

/// The certificate may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCertAccepted {
    /// `VALID`: cacheable until at most notAfter (A_22348).
    Valid,
    /// `INCONCLUSIVE`: used this once, never cached; `code` is the Konnektor's reason.
    Inconclusive { code: Option<i64> },
}

/// Why a check produced no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoVerdict {
    /// The Konnektor could not be reached (after refreshing its service directory, A_2076).
    Transport(TransportError),
    /// The Konnektor answered with a fault or an `ERROR` status; its gematik code if any.
    Konnektor { code: Option<i64> },
    /// The answer could not be read.
    UnreadableAnswer,
    /// `connector.sds` names no CertificateService this client can use.
    NoEndpoint,
    /// The connection offered no server certificate to check.
    NoServerCertificate,
}

/// The connection to the mail server must not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCertRejected {
    /// `INVALID` (A_2075-01); `code` is the Konnektor's reason (TUC_KON_037 code) if sent.
    Invalid { code: Option<i64> },
    /// The Konnektor rejected the call context (codes 4004–4006).
    ContextRejected { code: i64 },
    /// The certificate could not be checked.
    NotChecked(NoVerdict),
}

/// A single-line SMTP reply of the connect phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpConnectReply {
    pub code: u16,
    /// Enhanced status code and text, as Tab_SMTP_Verbindung names them.
    pub text: &'static str,
}

impl SmtpConnectReply {
    /// `454 4.7.0 ...`: "Die Verbindung ... kann nicht aufgebaut werden".
    pub const CANNOT_CONNECT: SmtpConnectReply = SmtpConnectReply {
        code: 454,
        text: "4.7.0 Temporary authentication failure",
    };
    /// `501 5.5.4 ...`: SOAP fault 4004–4006 for the call context.
    pub const CONTEXT_REJECTED: SmtpConnectReply = SmtpConnectReply {
        code: 501,
        text: "5.5.4 Invalid command arguments",
    };

    /// The reply line with CRLF.
    pub fn line(&self) -> Vec<u8> {
        crate::smtp::reply::line(self.code, self.text)
    }
}

/// Gematik codes for a wrong call context (Mandant, client system, workplace).
const CONTEXT_CODES: std::ops::RangeInclusive<i64> = 4004..=4006;

/// Turns a parsed answer (or the parse error) into the connection decision.
pub fn judge(
    answer: Result<VerifyCertificateResponse, KonnektorError>,
) -> Result<ServerCertAccepted, ServerCertRejected> {
    match answer {
        Ok(r) => match r.result {
            VerificationResult::Valid => Ok(ServerCertAccepted::Valid),
            VerificationResult::Inconclusive => Ok(ServerCertAccepted::Inconclusive {
                code: r.reason_code(),
            }),
            VerificationResult::Invalid => Err(ServerCertRejected::Invalid {
                code: r.reason_code(),
            }),
        },
        Err(e) => Err(rejected_by_error(&e)),
    }
}

/// The rejection for a Konnektor error (fault, `ERROR` status, unreadable answer).
pub fn rejected_by_error(e: &KonnektorError) -> ServerCertRejected {
    if let Some(code) = e.gematik_code()
        && CONTEXT_CODES.contains(&code)
    {
        return ServerCertRejected::ContextRejected { code };
    }
    if matches!(e, KonnektorError::NoUsableEndpoint(_)) {
        return ServerCertRejected::NotChecked(NoVerdict::NoEndpoint);
    }
    if e.is_reported_by_konnektor() {
        ServerCertRejected::NotChecked(NoVerdict::Konnektor {
            code: e.gematik_code(),
        })
    } else {
        ServerCertRejected::NotChecked(NoVerdict::UnreadableAnswer)
    }
}

impl ServerCertRejected {
    /// The reply an SMTP client gets instead of `235` (Tab_SMTP_Verbindung, KOM-LE-A_2015-01).
    pub fn smtp_reply(&self) -> SmtpConnectReply {
        match self {
            ServerCertRejected::ContextRejected { .. } => SmtpConnectReply::CONTEXT_REJECTED,
            ServerCertRejected::Invalid { .. } | ServerCertRejected::NotChecked(_) => {
                SmtpConnectReply::CANNOT_CONNECT
            }
        }
    }

    /// The text after `-ERR` for a POP3 client (Tab_POP3_Verbindung, KOM-LE-A_2037-01); the
    /// POP3 session prefixes it with [`SERVER_UNREACHABLE`](crate::pop3::SERVER_UNREACHABLE)
    /// when it comes as [`Input::UpstreamFailed`].
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// The input for the session whose connect this was: the connection counts as not
    /// established, and the session answers with [`Self::smtp_reply`] / [`Self::reason`].
    pub fn to_input(&self) -> Input<'static> {
        Input::ServerCertificateRejected(*self)
    }

    /// A short word for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerCertRejected::Invalid { .. } => "invalid",
            ServerCertRejected::ContextRejected { .. } => "context-rejected",
            ServerCertRejected::NotChecked(_) => "not-checked",
        }
    }
}

impl fmt::Display for ServerCertRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerCertRejected::Invalid { code: Some(c) } => write!(
                f,
                "TLS-Serverzertifikat vom Konnektor als ungueltig bewertet (Code {c})"
            ),
            ServerCertRejected::Invalid { code: None } => {
                f.write_str("TLS-Serverzertifikat vom Konnektor als ungueltig bewertet")
            }
            ServerCertRejected::ContextRejected { code } => {
                write!(f, "Aufrufkontext vom Konnektor abgelehnt (Code {code})")
            }
            ServerCertRejected::NotChecked(why) => {
                f.write_str("TLS-Serverzertifikat nicht pruefbar: ")?;
                match why {
                    NoVerdict::Transport(t) => write!(f, "Konnektor: {t}"),
                    NoVerdict::Konnektor { code: Some(c) } => {
                        write!(f, "Konnektor-Fehler {c}")
                    }
                    NoVerdict::Konnektor { code: None } => f.write_str("Konnektor-Fehler"),
                    NoVerdict::UnreadableAnswer => f.write_str("Antwort nicht lesbar"),
                    NoVerdict::NoEndpoint => {
                        f.write_str("kein CertificateService im Dienstverzeichnis")
                    }
                    NoVerdict::NoServerCertificate => f.write_str("kein Serverzertifikat"),
                }
            }
        }
    }
}

impl std::error::Error for ServerCertRejected {}

#[cfg(test)]
mod tests {
    use super::super::status::Status;
    use super::super::telematik_error::{TelematikError, Trace};
    use super::*;

    fn answer(result: VerificationResult, code: Option<i64>) -> VerifyCertificateResponse {
        VerifyCertificateResponse {
            status: Status::default(),
            result,
            error: code.map(|code| TelematikError {
                traces: vec![Trace {
                    code,
                    ..Trace::default()
                }],
                ..TelematikError::default()
            }),
            roles: Vec::new(),
        }
    }

    #[test]
    fn a_2075_01_only_invalid_aborts() {
        assert_eq!(
            judge(Ok(answer(VerificationResult::Valid, None))),
            Ok(ServerCertAccepted::Valid)
        );
        assert_eq!(
            judge(Ok(answer(VerificationResult::Inconclusive, Some(4264)))),
            Ok(ServerCertAccepted::Inconclusive { code: Some(4264) })
        );
        let invalid = judge(Ok(answer(VerificationResult::Invalid, Some(1047)))).unwrap_err();
        assert_eq!(invalid, ServerCertRejected::Invalid { code: Some(1047) });
        assert_eq!(
            invalid.smtp_reply().line(),
            b"454 4.7.0 Temporary authentication failure\r\n"
        );
        assert!(invalid.reason().contains("1047"), "{invalid}");
    }

    #[test]
    fn a_2075_01_tab_smtp_verbindung_context_fault_gets_501() {
        let fault = KonnektorError::Status(Box::new(TelematikError {
            traces: vec![Trace {
                code: 4005,
                ..Trace::default()
            }],
            ..TelematikError::default()
        }));
        let r = judge(Err(fault)).unwrap_err();
        assert_eq!(r, ServerCertRejected::ContextRejected { code: 4005 });
        assert_eq!(r.smtp_reply().code, 501);
        assert_eq!(r.smtp_reply().text, "5.5.4 Invalid command arguments");
    }

    #[test]
    fn a_2075_01_no_verdict_is_a_temporary_refusal() {
        let unreadable = judge(Err(KonnektorError::MissingElement("x"))).unwrap_err();
        assert_eq!(
            unreadable,
            ServerCertRejected::NotChecked(NoVerdict::UnreadableAnswer)
        );
        assert_eq!(unreadable.smtp_reply(), SmtpConnectReply::CANNOT_CONNECT);
        let down =
            ServerCertRejected::NotChecked(NoVerdict::Transport(TransportError::Unreachable));
        assert_eq!(down.smtp_reply().code, 454);
        match down.to_input() {
            Input::ServerCertificateRejected(r) => {
                assert_eq!(r, down);
                assert_eq!(
                    r.reason(),
                    "TLS-Serverzertifikat nicht pruefbar: Konnektor: keine Verbindung"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rejected_by_error(&KonnektorError::NoUsableEndpoint("CertificateService")),
            ServerCertRejected::NotChecked(NoVerdict::NoEndpoint)
        );
    }
}
