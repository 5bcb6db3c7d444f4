//! The words the Konnektor pipelines ([`Protection`](crate::protect::Protection) and
//! [`Reception`](crate::open::Reception)) share with their driver: the call they hand out,
//! the typed transport failure the driver answers with instead of a body, and the guard that
//! keeps a pipeline from handing out a second call before the first one was answered.
//!
//! The driver loop is the same for both: `step()` gives the next [`KonnektorCall`] (or the
//! result); the driver POSTs it and feeds either `konnektor_answer(store, body)` or
//! `transport_failed(store, error)`; repeat.

use super::SoapRequest;

/// A Konnektor call for the runtime: POST `request.body` to `url` with `request`'s
/// SOAPAction. The body may carry message content (SignDocument, DecryptDocument): the
/// runtime must not log or keep it.
#[derive(Debug)]
pub struct KonnektorCall {
    pub url: String,
    pub request: SoapRequest,
}

/// Why a Konnektor call got no answer body. It names the kind of failure only: its `Display`
/// carries no host, no body, no error text from below, so it may end up in a mail note or a
/// log line as it is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportError {
    /// No complete answer within the configured Konnektor timeout.
    Timeout,
    /// No connection could be made (refused, unknown host, unreachable).
    Unreachable,
    /// The connection broke before a complete answer arrived.
    ConnectionLost,
    /// The TLS handshake failed (untrusted Konnektor certificate, client certificate refused).
    Tls,
    /// An HTTP status other than 2xx and the SOAP fault status 500.
    HttpStatus(u16),
    /// The answer exceeded the size the runtime accepts.
    TooLarge,
    /// Any other transport failure, or one the runtime does not classify.
    Other,
}

impl core::fmt::Display for TransportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Timeout => f.write_str("keine Antwort in der Wartezeit"),
            Self::Unreachable => f.write_str("keine Verbindung"),
            Self::ConnectionLost => f.write_str("Verbindung abgebrochen"),
            Self::Tls => f.write_str("TLS-Fehler"),
            Self::HttpStatus(s) => write!(f, "HTTP-Status {s}"),
            Self::TooLarge => f.write_str("Antwort zu gross"),
            Self::Other => f.write_str("Transportfehler"),
        }
    }
}

impl std::error::Error for TransportError {}

/// What a pipeline waits for after handing out a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Awaited {
    /// A [`KonnektorCall`]: `konnektor_answer` or `transport_failed`.
    Konnektor,
    /// A directory lookup (protection only): `directory_answer`.
    Directory,
}

/// A step or an answer out of turn: a driver bug, which the pipeline turns into a clean
/// failure instead of building a request from state that is being waited on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutOfTurn {
    /// `step()` again while an answer is pending.
    StepWhilePending,
    /// An answer no step asked for (or of the other kind).
    UnaskedAnswer,
}

impl OutOfTurn {
    /// The failure text (one line, no content).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::StepWhilePending => "Interner Fehler: die Antwort des Konnektors steht noch aus",
            Self::UnaskedAnswer => "Interner Fehler: Antwort ohne Anfrage",
        }
    }
}

/// The pending-answer guard both pipelines use: at most one step is outstanding, and an
/// answer must match it. One place, so the fix of commit 680d8b3 (a second `step()` while
/// EncryptDocument was pending sent an empty document) holds for every pipeline.
#[derive(Debug, Default)]
pub(crate) struct PendingAnswer(Option<Awaited>);

impl PendingAnswer {
    /// Before a step is computed: refused while another answer is pending.
    pub(crate) fn ensure_free(&self) -> Result<(), OutOfTurn> {
        match self.0 {
            Some(_) => Err(OutOfTurn::StepWhilePending),
            None => Ok(()),
        }
    }

    /// A step asking for `kind` was handed out.
    pub(crate) fn handed_out(&mut self, kind: Awaited) {
        self.0 = Some(kind);
    }

    /// An answer of `kind` came: accepted only when that is what is pending.
    pub(crate) fn accept(&mut self, kind: Awaited) -> Result<(), OutOfTurn> {
        if self.0 == Some(kind) {
            self.0 = None;
            Ok(())
        } else {
            Err(OutOfTurn::UnaskedAnswer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_at_a_time_and_answers_must_match() {
        let mut g = PendingAnswer::default();
        assert_eq!(g.accept(Awaited::Konnektor), Err(OutOfTurn::UnaskedAnswer));
        g.ensure_free().unwrap();
        g.handed_out(Awaited::Directory);
        assert_eq!(g.ensure_free(), Err(OutOfTurn::StepWhilePending));
        assert_eq!(g.accept(Awaited::Konnektor), Err(OutOfTurn::UnaskedAnswer));
        g.accept(Awaited::Directory).unwrap();
        g.ensure_free().unwrap();
    }

    #[test]
    fn transport_error_text_names_the_kind_only() {
        assert_eq!(
            TransportError::HttpStatus(503).to_string(),
            "HTTP-Status 503"
        );
        assert_eq!(
            TransportError::Timeout.to_string(),
            "keine Antwort in der Wartezeit"
        );
    }
}
